"""Content losses (gantrain/content.py): pixel MSE/L1, feature MSE through a frozen network, and their config errors.

Values against numpy: hand-computed tables for the pixel losses, a one-layer network with set
weights for FeatureContent, Keras's own ``vgg19.preprocess_input`` for the caffe preprocessing, and
the convs of a saved gantrain classifier recomputed with raw ops. VGG19 runs with random weights
only (nothing is downloaded); a weights file in the format of Keras's notop file is written here
from a random VGG19 to prove the loading path.
"""

from __future__ import annotations

import json

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from gantrain.content import (VGG_SCALE, FeatureContent, caffe_preprocess, classifier_layer_names, content_loss,
                              pixel_l1, pixel_mse, vgg19_features)
from gantrain.errors import UserError
from gantrain.extractors.classifier import build_classifier, sha256


def _random(shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _caffe(x):
    """[-1, 1] RGB -> [0, 255] BGR minus the ImageNet means, in numpy."""
    return ((x.astype(np.float64) + 1) * 127.5)[..., ::-1] - np.array([103.939, 116.779, 123.68])


# -- pixel losses ----------------------------------------------------------------------------------
@pytest.mark.parametrize("sr, hr, mse, l1", [
    ([[0.0, 1.0], [2.0, 3.0]], [[0.0, 0.0], [0.0, 0.0]], 3.5, 1.5),
    ([[1.0, -1.0], [0.5, 0.0]], [[0.0, 1.0], [0.5, -0.5]], (1 + 4 + 0 + 0.25) / 4, (1 + 2 + 0 + 0.5) / 4),
])
def test_pixel_losses_hand_computed(sr, hr, mse, l1):
    sr, hr = np.reshape(sr, (1, 2, 2, 1)), np.reshape(hr, (1, 2, 2, 1))
    assert float(pixel_mse(sr, hr)) == pytest.approx(mse, abs=1e-7)
    assert float(pixel_l1(sr, hr)) == pytest.approx(l1, abs=1e-7)


def test_pixel_losses_against_numpy_in_float32():
    sr, hr = _random((3, 8, 6, 3), 1), _random((3, 8, 6, 3), 2)
    for fn, ref in ((pixel_mse, np.mean((sr - hr) ** 2)), (pixel_l1, np.mean(np.abs(sr - hr)))):
        assert float(fn(sr, hr)) == pytest.approx(ref, rel=1e-6)
        half = fn(tf.constant(sr, tf.float16), tf.constant(hr, tf.float16))  # mixed precision in, float32 out
        assert half.dtype == tf.float32 and float(half) == pytest.approx(ref, rel=2e-3)


# -- FeatureContent --------------------------------------------------------------------------------
def _one_layer(c_in=3, c_out=2, seed=0):
    """A 1x1 conv + ReLU with set weights: phi(x) = max(x @ W + b, 0) per pixel."""
    rng = np.random.default_rng(seed)
    images = keras.Input((None, None, c_in))
    conv = layers.Conv2D(c_out, 1, activation="relu", name="probe")
    network = keras.Model(images, conv(images))
    w, b = rng.normal(0, 1, (c_in, c_out)).astype(np.float32), rng.normal(0, 0.5, c_out).astype(np.float32)
    conv.set_weights([w.reshape(1, 1, c_in, c_out), b])
    return network, w, b


def _phi(x, w, b):
    return np.maximum(x.astype(np.float64) @ w + b, 0)


def test_feature_content_by_hand():
    network, w, b = _one_layer()
    sr, hr = _random((2, 5, 4, 3), 3), _random((2, 5, 4, 3), 4)
    loss = FeatureContent(network, "probe", scale=0.5)
    assert float(loss(sr, hr)) == pytest.approx(np.mean((_phi(sr, w, b) - _phi(hr, w, b)) ** 2) * 0.5, rel=1e-5)
    assert float(loss(hr, hr)) == 0.0

    # caffe first: the network sees BGR minus the means on the [0, 255] scale
    network, w, b = _one_layer(seed=1)
    w = w / 100.0  # keep both sides of the ReLU in play at that scale
    network.layers[-1].set_weights([w.reshape(1, 1, 3, 2), b])
    caffe = FeatureContent(network, "probe", preprocess="caffe")
    expected = np.mean((_phi(_caffe(sr), w, b) - _phi(_caffe(hr), w, b)) ** 2)
    assert float(caffe(sr, hr)) == pytest.approx(expected, rel=1e-5)
    # grey images are repeated to the network's three channels
    grey_sr, grey_hr = sr[..., :1], hr[..., :1]
    rgb_sr, rgb_hr = np.repeat(grey_sr, 3, axis=-1), np.repeat(grey_hr, 3, axis=-1)
    expected = np.mean((_phi(_caffe(rgb_sr), w, b) - _phi(_caffe(rgb_hr), w, b)) ** 2)
    assert float(caffe(grey_sr, grey_hr)) == pytest.approx(expected, rel=1e-5)


def test_feature_content_trains_sr_only():
    network, _, _ = _one_layer(seed=2)
    before = [v.numpy().copy() for v in network.weights]
    loss = FeatureContent(network, "probe")
    assert network.trainable_variables == [] and loss.trainable_variables == []
    sr = tf.Variable(_random((1, 4, 4, 3), 5))
    hr = tf.constant(_random((1, 4, 4, 3), 6))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(hr)
        value = loss(sr, hr)
    grad_sr = tape.gradient(value, sr)
    assert np.abs(grad_sr.numpy()).sum() > 0
    grad_hr = tape.gradient(value, hr)
    assert grad_hr is None or not np.any(grad_hr.numpy())  # the target is a constant of the loss
    # a step over everything a trainer could collect moves sr and leaves phi as it was
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.apply_gradients([(grad_sr, sr)])
    assert float(loss(sr, hr)) < float(value)
    for old, new in zip(before, network.weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_check_shape():
    network, _, _ = _one_layer()
    loss = FeatureContent(network, "probe", description="probe net")
    assert loss.check_shape((12, 7, 3)) is None and loss.check_shape((12, 7, 1)) is None
    assert loss.check_shape((8, 8, 2)) == "the feature network probe net takes 3-channel images; these have 2"
    with pytest.raises(ValueError, match="preprocess must be one of caffe, none"):
        FeatureContent(network, "probe", preprocess="torch")


# -- caffe preprocessing ---------------------------------------------------------------------------
def test_caffe_preprocessing_is_keras_vgg19_preprocess_input():
    pixels = np.random.default_rng(7).integers(0, 256, (2, 5, 4, 3)).astype(np.float32)
    expected = keras.applications.vgg19.preprocess_input(pixels.copy())
    np.testing.assert_allclose(caffe_preprocess(pixels / 127.5 - 1.0).numpy(), expected, atol=1e-4)
    grey = pixels[..., :1]
    expected = keras.applications.vgg19.preprocess_input(np.repeat(grey, 3, axis=-1))
    np.testing.assert_allclose(caffe_preprocess(grey / 127.5 - 1.0).numpy(), expected, atol=1e-4)


# -- VGG19 (random weights only) ---------------------------------------------------------------------
def test_vgg19_random_weights_at_a_small_size():
    loss = vgg19_features("block2_conv2")
    sr, hr = _random((2, 32, 32, 3), 8), _random((2, 32, 32, 3), 9)
    assert tuple(loss.features(sr).shape) == (2, 16, 16, 128)  # after one 2x2 pool
    assert loss.scale == VGG_SCALE == pytest.approx(1 / 162.5625)
    f_sr, f_hr = (loss.network(_caffe(x).astype(np.float32), training=False).numpy() for x in (sr, hr))
    assert float(loss(sr, hr)) == pytest.approx(np.mean((f_sr.astype(np.float64) - f_hr) ** 2) / 12.75**2, rel=1e-4)
    assert tuple(loss.features(sr[:, :24, :16]).shape) == (2, 12, 8, 128)  # any size
    assert loss.protocol()["weights"]["path"] is None and "RANDOM" in loss.protocol()["network"]


def test_vgg19_weights_file_in_the_keras_notop_format_loads(tmp_path):
    from keras.src.legacy.saving import legacy_h5_format  # how Keras wrote vgg19_weights_..._notop.h5

    saved = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, saved)
    loss = content_loss({"name": "features", "network": "vgg19", "layer": "block1_conv2", "weights": str(path)})
    assert loss.preprocess == "caffe" and loss.scale == VGG_SCALE
    x = _random((1, 8, 12, 3), 10)
    reference = keras.Model(saved.input, saved.get_layer("block1_conv2").output)
    np.testing.assert_allclose(loss.features(x).numpy(), reference(_caffe(x).astype(np.float32)).numpy(), rtol=1e-5, atol=1e-3)
    assert loss.protocol()["weights"] == {"path": str(path), "sha256": sha256(path)}
    assert loss.protocol()["layer"] == "block1_conv2"


# -- the classifier stem ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def classifier_stem(tmp_path_factory):
    """A freshly built (untrained) classifier saved as ``gantrain classifier train`` saves one."""
    keras.utils.set_random_seed(11)
    model = build_classifier((16, 16, 3), 3)
    stem = tmp_path_factory.mktemp("classifier") / "tiny"
    weights = stem.with_name("tiny.weights.h5")
    model.save_weights(weights)
    record = {"image_shape": [16, 16, 3], "num_classes": 3, "class_names": None, "trained_on": "nothing (a test)",
              "test_accuracy": 0.0, "weights_sha256": sha256(weights)}
    stem.with_name("tiny.json").write_text(json.dumps(record), encoding="utf-8")
    return stem, model


def _conv_relu(x, conv):
    return np.maximum(tf.nn.conv2d(x, conv.kernel.numpy(), 1, "SAME").numpy() + conv.bias.numpy(), 0)


def _pool(x):
    n, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def test_classifier_stem_features_at_any_size(classifier_stem):
    stem, original = classifier_stem
    convs = [lyr for lyr in original.layers if isinstance(lyr, layers.Conv2D)]
    x = _random((2, 24, 20, 3), 12)  # not the classifier's 16x16: the convs take any size
    b1c1 = _conv_relu(x, convs[0])
    b1c2 = _conv_relu(b1c1, convs[1])
    b2c1 = _conv_relu(_pool(b1c2), convs[2])
    b2c2 = _conv_relu(b2c1, convs[3])
    for layer, expected in (("block1_conv1", b1c1), ("block1_conv2", b1c2), ("block2_conv1", b2c1), ("block2_conv2", b2c2)):
        loss = content_loss({"name": "features", "network": "classifier", "weights": str(stem), "layer": layer})
        assert loss.check_shape((24, 20, 3)) is None
        np.testing.assert_allclose(loss.features(x).numpy(), expected, rtol=1e-4, atol=1e-5)
    assert loss.layer == "block2_conv2" and loss.scale == 1.0 and loss.preprocess == "none"
    default = content_loss({"name": "features", "network": "classifier", "weights": str(stem)})
    assert default.layer == "block2_conv2"
    protocol = default.protocol()
    assert protocol["weights"]["sha256"] == sha256(stem.with_name("tiny.weights.h5"))
    assert protocol["weights"]["classifier_test_accuracy"] == 0.0 and "nothing (a test)" in protocol["network"]


def test_classifier_features_layer_takes_its_own_size_only(classifier_stem):
    stem, original = classifier_stem
    loss = content_loss({"name": "features", "network": "classifier", "weights": str(stem), "layer": "features"})
    x = _random((3, 16, 16, 3), 13)
    np.testing.assert_allclose(loss.features(x).numpy(), original(x, training=False)[1].numpy(), rtol=1e-5, atol=1e-6)
    assert loss.check_shape((16, 16, 3)) is None
    assert "takes 16x16 images only" in loss.check_shape((32, 32, 3))


def test_classifier_layer_names_by_position(classifier_stem):
    _, original = classifier_stem
    names = classifier_layer_names(original)
    assert list(names) == ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "features"]
    assert [names[n].filters for n in list(names)[:4]] == [32, 32, 64, 64]


# -- config errors ---------------------------------------------------------------------------------
def test_content_loss_by_name():
    assert content_loss({"name": "pixel_mse"}) is pixel_mse
    assert content_loss({"name": "pixel_l1", "network": None, "weights": None}) is pixel_l1


def _one_line_error(spec, match):
    with pytest.raises(UserError, match=match) as err:
        content_loss(spec)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_user_errors(tmp_path, classifier_stem):
    stem, _ = classifier_stem
    message = _one_line_error({"name": "features", "network": "vgg19"}, "needs ImageNet weights from a local file")
    assert message.startswith("loss.content: features with vgg19 needs ImageNet weights from a local file "
                              "(loss.content_weights: PATH to vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5); "
                              "they cannot be downloaded here")
    missing = tmp_path / "nowhere" / "vgg19.h5"
    assert str(missing) in _one_line_error({"name": "features", "weights": str(missing)}, "no such file")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an HDF5 file" * 4)
    _one_line_error({"name": "features", "weights": str(junk)}, r"junk.h5 does not fit VGG19")
    other = tmp_path / "other.weights.h5"
    keras.Sequential([keras.Input((None, None, 3)), layers.Conv2D(2, 3)]).save_weights(other)
    _one_line_error({"name": "features", "weights": str(other)}, r"other.weights.h5 does not fit VGG19")
    _one_line_error({"name": "features", "network": "classifier"}, "features with classifier needs loss.content_weights: STEM")
    _one_line_error({"name": "features", "network": "classifier", "weights": str(tmp_path / "none")},
                    "classifier files not found")
    _one_line_error({"name": "features", "network": "classifier", "weights": str(stem), "layer": "block3_conv1"},
                    r"loss.content_layer: the classifier has no layer 'block3_conv1'; choose one of block1_conv1, "
                    r"block1_conv2, block2_conv1, block2_conv2, features$")
    _one_line_error({"name": "features", "network": "classifier", "weights": str(stem), "preprocess": "caffe"},
                    "takes images in \\[-1, 1\\] as they are; use none")
    _one_line_error({"name": "perceptual"},
                    "loss.content: unknown content loss 'perceptual'; choose one of pixel_mse, pixel_l1, features$")
    _one_line_error({"name": "features", "network": "vgg16"}, "unknown feature network 'vgg16'; choose one of vgg19, classifier$")
    _one_line_error({"name": "features", "preprocess": "torch"}, "unknown preprocessing 'torch'; choose one of caffe, none$")


def test_vgg19_unknown_layer_lists_the_names():
    with pytest.raises(UserError, match=r"VGG19 has no layer 'block6_conv1'; choose one of block1_conv1, block1_conv2, "
                                        r"block1_pool, .*block5_conv4, block5_pool$"):
        vgg19_features("block6_conv1")
