"""The extractor interface, the domain-classifier extractors and the lookup by name."""

from __future__ import annotations

import abc
from pathlib import Path

import numpy as np
import tensorflow as tf

from gantrain.errors import UserError
from gantrain.extractors.classifier import SHIPPED, load_classifier
from gantrain.registry import EXTRACTORS


class Extractor(abc.ABC):
    name = "extractor"
    has_probs = False
    input_shape: tuple | None = None  # (H, W, C) when the network takes one size only; None: any (resized)
    class_names: list[str] | None = None  # what probability column k means, where the weights record it

    @abc.abstractmethod
    def protocol(self) -> dict:
        """What this extractor is: name, weights identity, features, preprocessing."""

    def cache_identity(self) -> dict:
        """What a feature cache must key on: by default the protocol (it names the weights' hash)."""
        return self.protocol()

    def check_shape(self, image_shape: tuple) -> None:
        """Refuse images of another shape than a fixed-input network takes (no silent resizing)."""
        if self.input_shape is not None and tuple(image_shape) != tuple(self.input_shape):
            raise UserError(
                f"extractor {self.name!r} takes {'x'.join(map(str, self.input_shape))} images, these are {'x'.join(map(str, image_shape))}; "
                "choose --extractor inception_v3, or train a classifier for this data with `gantrain classifier train`"
            )

    @abc.abstractmethod
    def _batch(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor | None]:
        """(features, class probabilities or None) for one batch of images in [-1, 1]."""

    def __call__(self, images, batch: int = 500) -> tuple[np.ndarray, np.ndarray | None]:
        feats, probs = [], []
        for i in range(0, len(images), batch):
            f, p = self._batch(tf.convert_to_tensor(images[i : i + batch], tf.float32))
            feats.append(np.asarray(f, np.float64))
            if p is not None:
                probs.append(np.asarray(p, np.float64))
        return np.concatenate(feats), (np.concatenate(probs) if probs else None)


class DomainClassifier(Extractor):
    has_probs = True

    def __init__(self, stem: Path, name: str):
        self.name = name
        self.stem = Path(stem)
        self.model, self.meta, self.weights_sha256 = load_classifier(self.stem)
        self.input_shape = tuple(self.meta["image_shape"])
        self.class_names = self.meta.get("class_names")
        self._fn = tf.function(lambda x: self.model(x, training=False))

    def protocol(self) -> dict:
        # The hash is of the weights file actually loaded; the record's test accuracy is only
        # reported when the record was written for these very weights.
        matches = self.meta.get("weights_sha256") == self.weights_sha256
        return {
            "extractor": self.name,
            "weights": str(self.stem) + ".weights.h5",
            "weights_sha256": self.weights_sha256[:16],
            "classifier_test_accuracy": self.meta["test_accuracy"] if matches else "unknown (the .json record was written for other weights)",
            "features": "128-d penultimate ReLU layer; probabilities: softmax of the logits",
            "preprocessing": f"images in [-1, 1] at {'x'.join(map(str, self.input_shape))}, no resizing",
        }

    def cache_identity(self) -> dict:
        return {**self.protocol(), "weights_sha256": self.weights_sha256}

    def _batch(self, images):
        logits, features = self._fn(images)
        return features, tf.nn.softmax(logits)


def _shipped(name: str):
    def factory(weights: str | None = None) -> Extractor:
        return DomainClassifier(Path(weights) if weights else SHIPPED / name, name)

    return factory


EXTRACTORS.register("mnist_classifier", description="shipped MNIST CNN (test accuracy in its .json), 128-d features")(_shipped("mnist_classifier"))
EXTRACTORS.register("fashion_mnist_classifier", description="shipped Fashion-MNIST CNN, 128-d features")(_shipped("fashion_mnist_classifier"))


def _own_classifier(weights: str | None = None) -> Extractor:
    if not weights:
        raise UserError("--extractor classifier needs --weights STEM (the output of `gantrain classifier train --out STEM`)")
    return DomainClassifier(Path(weights), "classifier")


EXTRACTORS.register("classifier", description="your own classifier from `gantrain classifier train` (--weights STEM)")(_own_classifier)

DEFAULTS = {"mnist": "mnist_classifier", "fashion_mnist": "fashion_mnist_classifier"}


def default_extractor_name(loader: str) -> str:
    return DEFAULTS.get(loader, "inception_v3")


def get_extractor(name: str, weights: str | None = None) -> Extractor:
    return EXTRACTORS.get(name, where="--extractor")(weights)
