"""Content losses for super-resolution (the SRGAN paper's l_X), as functions of (sr, hr) -> a float32 scalar.

``sr`` is the generator's output and ``hr`` the high-resolution target, both (B, H, W, C) in
[-1, 1]. Three kinds (Ledig et al. 2017, section 2.2):

- ``pixel_mse``: the mean squared error over every element (SRResNet's training loss);
- ``pixel_l1``: the mean absolute error;
- ``features``: :class:`FeatureContent`, the mean squared difference of the activations of one layer
  of a frozen network, phi(sr) against phi(hr). The network is never trained: its variables are
  not trainable and the target's features carry no gradient, so gradients reach ``sr`` only.

Feature networks (:func:`content_loss` picks one from a config dict):

- ``vgg19``: Keras's VGG19 without its classifier, cut at a named layer (post-ReLU, as the paper's
  phi_i,j): ``block5_conv4`` is the paper's VGG54, ``block2_conv2`` its VGG22, ``block3_conv3`` the
  book's. Its ImageNet weights must come from a local file (nothing is downloaded); random weights
  exist only for tests (``weights=None`` in :func:`vgg19_features`). Images get the "caffe"
  preprocessing those weights were trained with, and the loss is scaled by 1/12.75**2: the paper
  rescales the feature maps by 1/12.75 "to obtain VGG losses of a scale that is comparable to the
  MSE loss", which multiplies their squared difference by 1/12.75**2 ~= 0.00615.
- ``classifier``: the convolutional stem of a gantrain domain classifier
  (:mod:`gantrain.extractors.classifier`), which works offline: trained here, in [-1, 1], no
  preprocessing, scale 1.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import keras
import tensorflow as tf

from gantrain.errors import UserError
from gantrain.extractors.classifier import load_classifier, sha256

CONTENT_LOSSES = ("pixel_mse", "pixel_l1", "features")
NETWORKS = ("vgg19", "classifier")
PREPROCESSING = ("caffe", "none")
# The ImageNet channel means of "caffe" preprocessing, in BGR order (keras.applications.imagenet_utils).
CAFFE_MEANS_BGR = (103.939, 116.779, 123.68)
VGG_SCALE = 1.0 / 12.75**2  # the paper's rescaling of VGG feature maps by 1/12.75, squared by the MSE
VGG_WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
# The config keys each message names (the loss section of an SR family's config).
KEYS = {"name": "loss.content", "network": "loss.content_network", "layer": "loss.content_layer",
        "weights": "loss.content_weights", "preprocess": "loss.content_preprocess"}


def _f32(x) -> tf.Tensor:
    return tf.cast(x, tf.float32)


def pixel_mse(sr, hr) -> tf.Tensor:
    """Mean squared error over all elements.

    Args:
        sr: (B, H, W, C) super-resolved images.
        hr: the targets, same shape.

    Returns:
        A float32 scalar: ``mean((sr - hr)**2)``.
    """
    return tf.reduce_mean(tf.square(_f32(sr) - _f32(hr)))


def pixel_l1(sr, hr) -> tf.Tensor:
    """Mean absolute error over all elements: a float32 scalar ``mean(|sr - hr|)``."""
    return tf.reduce_mean(tf.abs(_f32(sr) - _f32(hr)))


def caffe_preprocess(images) -> tf.Tensor:
    """Images in [-1, 1] -> what Keras's ImageNet VGG19 expects ("caffe" mode).

    [-1, 1] -> [0, 255] RGB -> BGR, minus the ImageNet channel means (103.939, 116.779, 123.68):
    ``keras.applications.vgg19.preprocess_input`` on the [0, 255] image. One-channel (grey) images
    are repeated to three channels first.

    Args:
        images: (B, H, W, 1 or 3) in [-1, 1].

    Returns:
        (B, H, W, 3) float32.
    """
    x = _f32(images)
    if x.shape[-1] == 1:
        x = tf.repeat(x, 3, axis=-1)
    x = (x + 1.0) * 127.5
    return x[..., ::-1] - tf.constant(CAFFE_MEANS_BGR, tf.float32)


class FeatureContent:
    """MSE between the feature maps of a frozen network at one layer: the paper's VGG loss, any network.

    ``loss(sr, hr) = mean((phi(sr) - phi(hr))**2) * scale``, with phi = ``network`` (already cut at
    ``layer``) applied after ``preprocess``, in inference mode. The network is frozen here
    (``trainable = False``, so it has no trainable variables for a trainer to collect) and phi(hr)
    is a constant of the gradient, so a step moves the generator only.

    Images with one channel are repeated to three when the network takes three (grey data with an
    RGB feature network).
    """

    def __init__(self, network: keras.Model, layer: str, preprocess: str = "none", scale: float = 1.0,
                 description: str = "", weights: dict | None = None):
        """
        Args:
            network: images -> the feature maps of ``layer``; frozen here.
            layer: the layer's name, for the protocol.
            preprocess: ``none`` (images in [-1, 1] as they are) or ``caffe`` (:func:`caffe_preprocess`).
            scale: multiplies the mean squared difference.
            description: what the network is, for the protocol.
            weights: where its weights came from, for the protocol (``path`` and ``sha256`` when
                from a file); None: as given.
        """
        if preprocess not in PREPROCESSING:
            raise ValueError(f"preprocess must be one of {', '.join(PREPROCESSING)}; got {preprocess!r}")
        network.trainable = False
        self.network = network
        self.layer = layer
        self.preprocess = preprocess
        self.scale = float(scale)
        self.description = description or network.name
        self.weights = weights
        self.input_shape = tuple(network.input_shape[1:])  # (H or None, W or None, C)

    @property
    def trainable_variables(self) -> list:
        return []  # phi is fixed: nothing here is trained

    def check_shape(self, image_shape) -> str | None:
        """Why images of ``image_shape`` (H, W, C) cannot go through the network, or None."""
        h, w, c = self.input_shape
        ih, iw, ic = tuple(image_shape)
        if ic != c and not (ic == 1 and c == 3):
            return f"the feature network {self.description} takes {c}-channel images; these have {ic}"
        if (h, w) != (None, None) and (ih, iw) != (h, w):
            return (f"layer {self.layer!r} of {self.description} takes {h}x{w} images only (it follows the "
                    f"classifier's Flatten); these are {ih}x{iw}: choose a convolutional layer")
        return None

    def features(self, images) -> tf.Tensor:
        """phi(images): float32 feature maps of the chosen layer."""
        x = _f32(images)
        if x.shape[-1] == 1 and self.input_shape[-1] == 3:
            x = tf.repeat(x, 3, axis=-1)
        if self.preprocess == "caffe":
            x = caffe_preprocess(x)
        return _f32(self.network(x, training=False))

    def __call__(self, sr, hr) -> tf.Tensor:
        """The content loss, a float32 scalar: ``mean((phi(sr) - phi(hr))**2) * scale``."""
        target = tf.stop_gradient(self.features(hr))
        return tf.reduce_mean(tf.square(self.features(sr) - target)) * self.scale

    def protocol(self) -> dict:
        """What the loss is: network, layer, weights (path + SHA-256 when from a file), preprocessing, scale."""
        weights = self.weights or {"path": None, "note": "weights as given in memory"}
        return {"content": "features", "network": self.description, "layer": self.layer, "weights": weights,
                "preprocess": self.preprocess, "scale": self.scale,
                "what": f"mean squared difference of the {self.layer} activations of SR and HR, times {self.scale:.6g}"}


# -- VGG19 ---------------------------------------------------------------------------------------
def vgg19_features(layer: str = "block5_conv4", weights: str | None = None, preprocess: str = "caffe",
                   input_channels: int = 3, scale: float = VGG_SCALE) -> FeatureContent:
    """VGG19 (Simonyan & Zisserman 2015, Keras's, without the classifier) cut at ``layer``, as a content loss.

    Args:
        layer: a layer name of Keras's VGG19: ``block5_conv4`` (VGG54, the paper's SRGAN),
            ``block2_conv2`` (VGG22), ``block3_conv3`` (the book's), ...
        weights: a local file of ImageNet weights (Keras's ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``,
            or a ``.weights.h5`` saved from such a model); None gives RANDOM weights, only for tests
            and plumbing: :func:`content_loss` refuses it.
        preprocess: ``caffe`` for the ImageNet weights; ``none`` feeds [-1, 1] images as the book does.
        input_channels: channels of the images the loss sees, 1 (repeated to RGB) or 3.
        scale: multiplies the MSE; default 1/12.75**2, the paper's rescaling.

    Returns:
        A :class:`FeatureContent` taking images of any size (B, H, W, input_channels).

    Raises:
        UserError: unknown layer, missing weights file, or a file that does not fit VGG19.
    """
    if input_channels not in (1, 3):
        raise ValueError(f"input_channels must be 1 or 3; got {input_channels!r}")
    path = None if weights is None else Path(weights).expanduser()
    if path is not None and not path.is_file():
        raise UserError(f"{KEYS['weights']}: {path}: no such file (the VGG19 ImageNet weights, {VGG_WEIGHTS_FILE})")
    vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    names = [lyr.name for lyr in vgg.layers[1:]]
    if layer not in names:
        raise UserError(f"{KEYS['layer']}: VGG19 has no layer {layer!r}; choose one of {', '.join(names)}")
    network = keras.Model(vgg.input, vgg.get_layer(layer).output, name=f"vgg19_{layer}")
    if path is None:
        description = "VGG19 with RANDOM weights (tests only)"
        record = {"path": None, "note": "random weights: no file, for tests and plumbing only"}
    else:
        _load_weights(vgg, path)
        description = "VGG19 (ImageNet weights from a file)"
        record = {"path": str(path), "sha256": sha256(path)}
    grey = ", grey images repeated to RGB" if input_channels == 1 else ""
    return FeatureContent(network, layer, preprocess, scale, description + grey, record)


def _load_weights(vgg: keras.Model, path: Path) -> None:
    """Load a weights file into VGG19, or raise a one-line UserError when it does not fit."""
    # Keras warns object by object before it raises on a file that does not fit; the one-line error
    # says it all then, so the warnings are replayed only when the load succeeds.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            vgg.load_weights(path)
        except (ValueError, OSError, KeyError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UserError(f"{KEYS['weights']}: {path} does not fit VGG19 without its top layers (expected "
                            f"{VGG_WEIGHTS_FILE}): {first}") from None
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


# -- gantrain domain classifier ------------------------------------------------------------------
def classifier_layer_names(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """Names for the layers of a :func:`~gantrain.extractors.classifier.build_classifier` model, by position.

    The Conv2D layers in order as ``block{b}_conv{k}`` (block b = the max-pool stage, as VGG's
    names), then the 128-unit ``features`` layer. Keras gives them counter names (conv2d_7), which
    differ between processes, so a config cannot name them.
    """
    names, block, conv = {}, 1, 0
    for lyr in model.layers:
        if isinstance(lyr, keras.layers.Conv2D):
            conv += 1
            names[f"block{block}_conv{conv}"] = lyr
        elif isinstance(lyr, keras.layers.MaxPooling2D):
            block, conv = block + 1, 0
        elif lyr.name == "features":
            names["features"] = lyr
    return names


def classifier_features(stem, layer: str = "block2_conv2", preprocess: str = "none", scale: float = 1.0) -> FeatureContent:
    """The stem of a gantrain domain classifier (``STEM.weights.h5`` + ``STEM.json``) cut at ``layer``.

    The conv layers take any image size with the classifier's channel count: the sub-model is built
    on a ``(None, None, C)`` input and reuses the loaded layers (and so their weights). ``features``
    follows a Flatten, so it takes the classifier's own image size only.

    Args:
        stem: the classifier's path without the suffixes, as ``gantrain classifier train --out`` writes.
        layer: ``block1_conv1``, ``block1_conv2``, ``block2_conv1``, ``block2_conv2`` (the default:
            the deepest conv, the analogue of VGG54) or ``features``.
        preprocess: ``none`` only: the classifier takes images in [-1, 1].
        scale: multiplies the MSE.

    Raises:
        UserError: missing or mismatched classifier files, unknown layer, caffe preprocessing.
    """
    if preprocess != "none":
        raise UserError(f"{KEYS['preprocess']}: a gantrain classifier takes images in [-1, 1] as they are; "
                        f"use none, not {preprocess!r} (caffe is for VGG19's ImageNet weights)")
    model, meta, digest = load_classifier(Path(stem).expanduser())
    layers_by_name = classifier_layer_names(model)
    if layer not in layers_by_name:
        raise UserError(f"{KEYS['layer']}: the classifier has no layer {layer!r}; choose one of {', '.join(layers_by_name)}")
    target = layers_by_name[layer]
    image_shape = tuple(meta["image_shape"])
    images = keras.Input(image_shape if layer == "features" else (None, None, image_shape[-1]), name="images")
    x = images
    for lyr in model.layers[1:]:  # layers[0] is the input layer
        x = lyr(x)
        if lyr is target:
            break
    network = keras.Model(images, x, name=f"classifier_{layer}")
    matches = meta.get("weights_sha256") == digest
    description = f"gantrain classifier trained on {meta.get('trained_on', 'unknown data')}"
    accuracy = meta.get("test_accuracy") if matches else "unknown (the .json record was written for other weights)"
    weights = {"path": str(Path(stem)) + ".weights.h5", "sha256": digest, "classifier_test_accuracy": accuracy}
    return FeatureContent(network, layer, preprocess, scale, description, weights)


# -- from a config -------------------------------------------------------------------------------
def content_loss(spec: dict):
    """The content loss a config asks for: a function (sr, hr) -> float32 scalar.

    Args:
        spec: ``{"name": "pixel_mse" | "pixel_l1" | "features", "network": "vgg19" | "classifier",
            "layer": ..., "weights": PATH or None, "preprocess": "caffe" | "none", "scale": float}``;
            only ``name`` is needed for the pixel losses. Missing or None entries take the
            network's defaults: vgg19 ``block5_conv4``, caffe, 1/12.75**2; classifier
            ``block2_conv2``, none, 1.0. ``weights`` is required for both networks (a VGG19 weights
            file; a classifier stem).

    Returns:
        :func:`pixel_mse`, :func:`pixel_l1`, or a :class:`FeatureContent` (which has ``protocol()``).

    Raises:
        UserError: unknown name or network, missing weights, unknown layer, a file that does not fit.
    """
    spec = {k: v for k, v in spec.items() if v is not None}
    name = spec.get("name", "pixel_mse")
    if name == "pixel_mse":
        return pixel_mse
    if name == "pixel_l1":
        return pixel_l1
    if name != "features":
        raise UserError(f"{KEYS['name']}: unknown content loss {name!r}; choose one of {', '.join(CONTENT_LOSSES)}")
    network = spec.get("network", "vgg19")
    if network not in NETWORKS:
        raise UserError(f"{KEYS['network']}: unknown feature network {network!r}; choose one of {', '.join(NETWORKS)}")
    preprocess = spec.get("preprocess", "caffe" if network == "vgg19" else "none")
    if preprocess not in PREPROCESSING:
        raise UserError(f"{KEYS['preprocess']}: unknown preprocessing {preprocess!r}; choose one of {', '.join(PREPROCESSING)}")
    weights = spec.get("weights")
    if network == "vgg19":
        if weights is None:
            raise UserError(f"{KEYS['name']}: features with vgg19 needs ImageNet weights from a local file "
                            f"({KEYS['weights']}: PATH to {VGG_WEIGHTS_FILE}); they cannot be downloaded here. "
                            f"Without them use {KEYS['network']}: classifier (a classifier from `gantrain classifier train`) "
                            f"or {KEYS['name']}: pixel_mse")
        return vgg19_features(spec.get("layer", "block5_conv4"), weights, preprocess, scale=float(spec.get("scale", VGG_SCALE)))
    if weights is None:
        raise UserError(f"{KEYS['name']}: features with classifier needs {KEYS['weights']}: STEM, a classifier's path "
                        "without .weights.h5/.json (train one with `gantrain classifier train`)")
    return classifier_features(weights, spec.get("layer", "block2_conv2"), preprocess, float(spec.get("scale", 1.0)))
