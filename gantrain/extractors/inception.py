"""ImageNet Inception extractors: Keras InceptionV3, and the 2015 TensorFlow graph of the original FID code.

Both are fed images in [-1, 1]; grey images are tiled to three channels and everything is resized
to 299x299 bilinearly.

Why two: published FID tables (Heusel et al.'s TTUR code, most papers, pytorch-fid) use the
2015-12-05 TensorFlow Inception graph (``pool_3``, 2048-d, a 1008-way softmax). Keras's
``InceptionV3`` ImageNet weights are a different training run of the same architecture, so its
FIDs are self-consistent but are NOT comparable with published numbers; use ``inception_tf2015``
for that. Neither can be downloaded on an offline machine: pass ``--weights PATH``.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from gantrain.data.download import DownloadError, fetch
from gantrain.errors import UserError
from gantrain.extractors.base import Extractor
from gantrain.extractors.classifier import sha256
from gantrain.registry import EXTRACTORS

KERAS_WEIGHTS = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/" + KERAS_WEIGHTS
TF2015_ORIGIN = "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"


def to_inception_input(images: tf.Tensor, size: int = 299) -> tf.Tensor:
    """[-1, 1] (N, H, W, 1 or 3) -> [-1, 1] (N, 299, 299, 3), bilinear; grey tiled to RGB."""
    images = tf.cast(images, tf.float32)
    if images.shape[-1] == 1:
        images = tf.tile(images, [1, 1, 1, 3])
    return tf.image.resize(images, (size, size), method="bilinear")


class KerasInceptionV3(Extractor):
    name = "inception_v3"
    has_probs = True

    def __init__(self, weights: str | None = None):
        import keras

        path = None
        if weights == "random":  # tests and plumbing checks only: numbers mean nothing
            source, self.identity = None, "random initialisation (plumbing test; numbers not comparable)"
        elif weights:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise UserError(f"--weights {path}: file not found (expected Keras's {KERAS_WEIGHTS})")
            source, self.identity = str(path), f"{path.name} sha256 {sha256(path)[:16]}"
        else:
            try:
                path = fetch(KERAS_WEIGHTS, KERAS_ORIGIN, "models")
            except DownloadError as err:
                raise UserError(
                    f"inception_v3: ImageNet weights are not in the Keras cache and the download failed ({err}). "
                    f"Offline, copy {KERAS_WEIGHTS} from an online machine and pass --weights PATH "
                    "(or put it in ~/.keras/models/)"
                ) from None
            source, self.identity = str(path), f"{path.name} sha256 {sha256(path)[:16]}"
        base = keras.applications.InceptionV3(include_top=True, weights=source, input_shape=(299, 299, 3))
        self.model = keras.Model(base.input, [base.get_layer("avg_pool").output, base.output])
        self._fn = tf.function(lambda x: self.model(to_inception_input(x), training=False))
        self.weights_sha256 = sha256(path) if path else _arrays_sha256(self.model.weights)

    def protocol(self) -> dict:
        return {"extractor": self.name, "weights": self.identity, "features": "2048-d avg_pool; probabilities: 1000-way ImageNet softmax",
                "preprocessing": "[-1, 1] -> bilinear resize to 299x299, grey tiled to RGB (Keras inception preprocessing range)"}

    def cache_identity(self) -> dict:
        # Random weights differ at every construction: their hash keeps one network's cached
        # features from being served to another.
        return {**self.protocol(), "weights_sha256": self.weights_sha256}

    def _batch(self, images):
        return self._fn(images)


def _arrays_sha256(variables) -> str:
    h = hashlib.sha256()
    for v in variables:
        h.update(np.ascontiguousarray(v.numpy()).tobytes())
    return h.hexdigest()


def load_graph_def(path: Path) -> bytes:
    """The serialized GraphDef from a ``.pb`` file or the ``inception-2015-12-05.tgz`` archive."""
    if not path.is_file():
        raise UserError(f"--weights {path}: file not found (expected classify_image_graph_def.pb or inception-2015-12-05.tgz)")
    if path.suffix in (".tgz", ".gz"):
        try:
            with tarfile.open(path, "r:gz") as tar:
                member = next(m for m in tar.getmembers() if m.name.endswith("classify_image_graph_def.pb"))
                return tar.extractfile(member).read()
        except (StopIteration, tarfile.TarError, OSError) as err:
            raise UserError(f"{path}: no classify_image_graph_def.pb inside ({err or 'missing'})") from None
    return path.read_bytes()


class TF2015Inception(Extractor):
    """The graph of the original FID code: feed ``ExpandDims:0`` (1, H, W, 3) in [0, 255], read ``pool_3:0``.

    The graph resizes to 299x299 itself and has batch size 1 built in, so images go one at a time
    (slow on a CPU, as the original code is; a GPU makes it quick).
    """

    name = "inception_tf2015"
    has_probs = True

    def __init__(self, weights: str | None = None):
        if weights:
            path = Path(weights).expanduser()
        else:
            try:
                path = fetch("inception-2015-12-05.tgz", TF2015_ORIGIN, "models")
            except DownloadError as err:
                raise UserError(
                    f"inception_tf2015: graph not cached and the download failed ({err}). Offline, pass --weights PATH to "
                    "inception-2015-12-05.tgz or its classify_image_graph_def.pb"
                ) from None
        raw = load_graph_def(path)
        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(raw)
        except Exception as err:  # protobuf raises its own DecodeError
            raise UserError(f"{path}: not a TensorFlow GraphDef ({err})") from None
        wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
        try:
            graph = wrapped.graph
            self._fn = wrapped.prune(graph.get_tensor_by_name("ExpandDims:0"), [graph.get_tensor_by_name("pool_3:0"), graph.get_tensor_by_name("softmax:0")])
        except KeyError as err:
            raise UserError(f"{path}: not the FID Inception graph (missing tensor {err})") from None
        self.graph_sha256 = hashlib.sha256(raw).hexdigest()
        self.identity = f"{path.name} graph sha256 {self.graph_sha256[:16]}"

    def cache_identity(self) -> dict:
        return {**self.protocol(), "graph_sha256": self.graph_sha256}

    def protocol(self) -> dict:
        return {"extractor": self.name, "weights": self.identity, "features": "2048-d pool_3; probabilities: 1008-way softmax",
                "preprocessing": "[-1, 1] -> [0, 255] float, grey tiled to RGB, fed one image at a time to ExpandDims:0 (the graph resizes to 299x299 bilinearly)"}

    def _batch(self, images):
        images = (tf.cast(images, tf.float32) + 1.0) * 127.5
        if images.shape[-1] == 1:
            images = tf.tile(images, [1, 1, 1, 3])
        feats, probs = [], []
        for i in range(images.shape[0]):
            f, p = self._fn(images[i : i + 1])
            feats.append(np.reshape(f.numpy(), [-1]))
            probs.append(np.reshape(p.numpy(), [-1]))
        return np.stack(feats), np.stack(probs)


EXTRACTORS.register("inception_v3", description="Keras InceptionV3 ImageNet, 2048-d avg_pool (--weights PATH offline)")(KerasInceptionV3)
EXTRACTORS.register("inception_tf2015", description="TF Inception 2015-12-05 graph of the original FID code (comparable with papers)")(TF2015Inception)
