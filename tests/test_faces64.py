"""The book's 64x64 DCGAN-anime family and image_folder's ``channels: auto`` / ``resize: pad`` (issue 16, part 7).

Architecture numbers are those of the book's code (parameter counts computed from it, and by hand); the forward
maths of a tiny instance is recomputed in numpy; resized images are recomputed with PIL and numpy
from geometry worked out by hand; ORL faces are the real grey PGM files in ../shared/data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image

from gantrain.config import validate
from gantrain.data import ImageSource, load_dataset, make_pipeline
from gantrain.data.image_folder import ImageFolder, load_image, resolve_channels
from gantrain.losses import get_loss
from gantrain.models.dcgan_anime import d_min_size
from gantrain.models.layers import SpectralNormalization
from gantrain.optimizers import build_optimizer
from gantrain.rundir import build_model, load_model
from gantrain.trainer import GANTrainer
from tests.conftest import SHARED_DATA, user_error

ORL = SHARED_DATA / "orl-faces"
# A CPU-sized instance: 32x32 from a 4x4 base, three D stages (minimum side 20).
TINY = {"family": "dcgan_anime", "latent_dim": 6, "g_dense": 8, "g_widths": [8, 4, 4], "d_widths": [4, 4, 4], "d_dense": 8}


def _count(variables) -> int:
    return int(sum(np.prod(v.shape) for v in variables))


def _cfg(model: dict, size=64, channels=3, root="/nonexistent") -> dict:
    return validate({"model": model, "data": {"loader": "image_folder", "root": root, "image_size": size, "channels": channels, "batch_size": 4}})


def _orl_file() -> Path:
    path = ORL / "s1" / "1.pgm"
    if not path.is_file():
        pytest.fail(f"the tests need the ORL faces at {ORL} (92x112 grey PGM, one folder per subject)", pytrace=False)
    return path


# ---------------------------------------------------------------------------------------------
# The family
# ---------------------------------------------------------------------------------------------
def test_book_defaults_have_the_books_parameter_counts_and_shapes():
    model = build_model(_cfg({"family": "dcgan_anime"}), (64, 64, 3), 0)
    G, D = model.generator, model.discriminator
    # The book's code: G 34,872,195 of which 32,768 are BN moving statistics; D 20,361,473, all trainable.
    # Ours drops the bias of G's second dense layer (16,384), which the batch norm right after cancels.
    assert _count(G.weights) == 34_872_195 - 16_384
    assert _count(G.non_trainable_weights) == 32_768
    assert _count(D.weights) == 20_361_473 and not D.non_trainable_weights
    # The same totals by hand, layer by layer (weights + biases; BN has 4 vectors of 16384).
    g_by_hand = (100 * 2048 + 2048) + (2048 * 16384) + 4 * 16384 + (25 * 256 * 128 + 128) + (25 * 128 * 64 + 64) + (25 * 64 * 3 + 3)
    d_by_hand = (25 * 3 * 128 + 128) + (9 * 128 * 256 + 256) + (9 * 256 * 512 + 512) + (6 * 6 * 512 * 1024 + 1024) + (1024 + 1)
    assert (g_by_hand, d_by_hand) == (34_872_195 - 16_384, 20_361_473)

    def shapes(net, kinds):
        return [(type(l).__name__, tuple(l.output.shape[1:])) for l in net.layers if type(l).__name__ in kinds]

    # The book's layer table: 8x8x256 -> 16 -> 32 -> 64, and D's 64 -> 32 -> 30 -> 15 -> 13 -> 6.
    assert shapes(G, ("Dense", "Reshape", "UpSampling2D", "Conv2D")) == [
        ("Dense", (2048,)), ("Dense", (16384,)), ("Reshape", (8, 8, 256)),
        ("UpSampling2D", (16, 16, 256)), ("Conv2D", (16, 16, 128)),
        ("UpSampling2D", (32, 32, 128)), ("Conv2D", (32, 32, 64)),
        ("UpSampling2D", (64, 64, 64)), ("Conv2D", (64, 64, 3)),
    ]
    assert shapes(D, ("Conv2D", "MaxPooling2D", "Flatten", "Dense")) == [
        ("Conv2D", (64, 64, 128)), ("MaxPooling2D", (32, 32, 128)), ("Conv2D", (30, 30, 256)), ("MaxPooling2D", (15, 15, 256)),
        ("Conv2D", (13, 13, 512)), ("MaxPooling2D", (6, 6, 512)), ("Flatten", (18432,)), ("Dense", (1024,)), ("Dense", (1,)),
    ]
    # One BN, on the second dense layer (none after the convs, as the book); D's head is a logit.
    assert [type(l).__name__ for l in G.layers].count("BatchNormalization") == 1
    assert D.layers[-1].activation is keras.activations.linear


# numpy versions of the layers, written from their definitions.
def _conv(x, kernel, bias, padding):
    k = kernel.shape[0]
    if padding == "same":
        x = np.pad(x, [(0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)])
    h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
    out = np.zeros((x.shape[0], h, w, kernel.shape[-1]))
    for i in range(k):
        for j in range(k):
            out += x[:, i:i + h, j:j + w, :] @ kernel[i, j]
    return out + bias


def _pool(x):
    h, w = x.shape[1] // 2, x.shape[2] // 2
    return x[:, :2 * h, :2 * w].reshape(x.shape[0], h, 2, w, 2, x.shape[3]).max(axis=(2, 4))


def _up(x):
    return x.repeat(2, axis=1).repeat(2, axis=2)


def _lrelu(x, slope=0.2):
    return np.where(x > 0, x, slope * x)


ACTIVATIONS = {"relu": lambda x: np.maximum(x, 0), "leaky_relu": _lrelu, "tanh": np.tanh}


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_tiny_networks_compute_the_books_layers_in_the_books_order(activation):
    cfg = _cfg({**TINY, "g_widths": [5, 4], "d_widths": [3, 4, 2], "g_activation": activation}, size=24, channels=1)
    model = build_model(cfg, (24, 24, 1), 0)  # base 6: 6 -> 12 -> 24
    G, D = model.generator, model.discriminator
    rng = np.random.default_rng(1)
    bn = next(l for l in G.layers if isinstance(l, keras.layers.BatchNormalization))
    gamma, beta, mean, var = (rng.uniform(0.5, 2, 6 * 6 * 5), rng.normal(size=6 * 6 * 5), rng.normal(size=6 * 6 * 5), rng.uniform(0.5, 2, 6 * 6 * 5))
    bn.set_weights([gamma, beta, mean, var])
    for layer in G.layers + D.layers:  # non-zero biases, so a missing or misplaced bias shows
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(size=layer.bias.shape) * 0.3)

    act = ACTIVATIONS[activation]
    z = rng.normal(size=(3, 6)).astype(np.float32)
    dense1, dense2 = [l for l in G.layers if isinstance(l, keras.layers.Dense)]
    convs = [l for l in G.layers if isinstance(l, keras.layers.Conv2D)]
    x = act(z @ dense1.kernel.numpy() + dense1.bias.numpy())
    assert dense2.bias is None  # the batch norm right after cancels a bias (layers.bias_before)
    x = x @ dense2.kernel.numpy()
    x = act(gamma * (x - mean) / np.sqrt(var + bn.epsilon) + beta).reshape(3, 6, 6, 5)
    x = act(_conv(_up(x), convs[0].kernel.numpy(), convs[0].bias.numpy(), "same"))
    expected = np.tanh(_conv(_up(x), convs[1].kernel.numpy(), convs[1].bias.numpy(), "same"))
    images = G(z, training=False).numpy()
    assert images.shape == (3, 24, 24, 1)
    np.testing.assert_allclose(images, expected, rtol=1e-4, atol=1e-5)

    c = [l for l in D.layers if isinstance(l, keras.layers.Conv2D)]
    d = [l for l in D.layers if isinstance(l, keras.layers.Dense)]
    x = _pool(_lrelu(_conv(images.astype(np.float64), c[0].kernel.numpy(), c[0].bias.numpy(), "same")))  # 24 -> 12
    x = _pool(_lrelu(_conv(x, c[1].kernel.numpy(), c[1].bias.numpy(), "valid")))  # 10 -> 5
    x = _pool(_lrelu(_conv(x, c[2].kernel.numpy(), c[2].bias.numpy(), "valid")))  # 3 -> 1
    x = _lrelu(x.reshape(3, -1) @ d[0].kernel.numpy() + d[0].bias.numpy())
    logits = x @ d[1].kernel.numpy() + d[1].bias.numpy()
    np.testing.assert_allclose(D(images, training=False).numpy(), logits, rtol=1e-4, atol=1e-5)


def test_d_min_size_is_the_smallest_side_with_a_non_empty_map():
    def final_side(side, stages):  # simulated: same conv, pool, then (valid 3x3 conv, pool) per stage
        side //= 2
        for _ in range(stages - 1):
            side = (side - 2) // 2 if side >= 3 else 0
        return side

    for stages in range(1, 5):
        smallest = next(s for s in range(1, 200) if final_side(s, stages) >= 1)
        assert d_min_size(stages) == smallest
    assert d_min_size(3) == 20  # the book's D: 20 -> 10 -> 8 -> 4 -> 2 -> 1


@pytest.mark.parametrize("size, parts", [
    (28, ["image size 28 is not a multiple of 2**len(g_widths) = 8", "use data.image_size 24 or 32"]),
    (16, ["image size 16 is below 20", "use data.image_size 24"]),
    ([64, 48], ["square"]),
])
def test_check_refuses_sizes_the_architecture_cannot_make(size, parts):
    user_error(lambda: _cfg({"family": "dcgan_anime"}, size=size), "dcgan_anime", *parts)


@pytest.mark.parametrize("size, channels", [(32, 1), (128, 3)])
def test_other_sizes_take_their_base_from_the_size(size, channels):
    model = build_model(_cfg(TINY, size=size, channels=channels), (size, size, channels), 0)
    reshape = next(l for l in model.generator.layers if isinstance(l, keras.layers.Reshape))
    assert tuple(reshape.output.shape[1:]) == (size // 8, size // 8, 8)
    images = model.generator(np.zeros((2, 6), np.float32), training=False)
    assert tuple(images.shape) == (2, size, size, channels)
    assert tuple(model.discriminator(images).shape) == (2, 1)


def test_spectral_norm_wraps_every_weight_layer_of_d():
    D = build_model(_cfg({**TINY, "d_norm": "spectral"}, size=32), (32, 32, 3), 0).discriminator
    plain = build_model(_cfg(TINY, size=32), (32, 32, 3), 0).discriminator
    wrapped = [type(l.layer).__name__ for l in D.layers if isinstance(l, SpectralNormalization)]
    assert wrapped == ["Conv2D"] * 3 + ["Dense"] * 2
    assert not [l.name for l in D.layers if l.weights and not isinstance(l, SpectralNormalization)]
    assert [tuple(v.shape) for v in D.trainable_weights] == [tuple(v.shape) for v in plain.trainable_weights]


def test_a_tiny_instance_trains_one_step_through_the_generic_trainer():
    cfg = _cfg(TINY, size=32, channels=1)
    model = build_model(cfg, (32, 32, 1), 0)
    rng = np.random.default_rng(0)
    source = ImageSource(rng.integers(0, 256, (8, 32, 32, 1), dtype=np.uint8), np.full(8, -1, np.int32))
    trainer = GANTrainer(model, build_optimizer(cfg["optimizer"]["generator"]), build_optimizer(cfg["optimizer"]["discriminator"]),
                         get_loss("non_saturating"), 4, seed=0)
    g0 = [v.numpy().copy() for v in model.generator.trainable_variables]
    d0 = [v.numpy().copy() for v in model.discriminator.trainable_variables]
    metrics = trainer.train_step(iter(make_pipeline(source, 4, seed=0)))
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    # Every variable of both networks moved: each gets a gradient (none is cut off the graph).
    assert all(not np.array_equal(a, v.numpy()) for a, v in zip(g0, model.generator.trainable_variables))
    assert all(not np.array_equal(a, v.numpy()) for a, v in zip(d0, model.discriminator.trainable_variables))


# ---------------------------------------------------------------------------------------------
# image_folder: resize
# ---------------------------------------------------------------------------------------------
def test_pad_keeps_the_whole_orl_face_and_repeats_its_edges():
    path = _orl_file()
    with Image.open(path) as img:
        assert (img.mode, img.size) == ("L", (92, 112))
        # 112 high -> 64: scale 4/7, so 92 wide -> round(52.57) = 53; 11 columns to add: 5 left, 6 right.
        face = np.asarray(img.resize((53, 64), Image.Resampling.LANCZOS), dtype=np.uint8)
        # center_crop instead: 92 wide -> 64, scale 16/23, so 112 high -> round(77.9) = 78; 14 rows cut: 7 top, 7 bottom.
        cropped = np.asarray(img.resize((64, 78), Image.Resampling.LANCZOS), dtype=np.uint8)[7:71]
    expected = np.concatenate([np.repeat(face[:, :1], 5, axis=1), face, np.repeat(face[:, -1:], 6, axis=1)], axis=1)
    out = load_image(path, (64, 64), 1, "pad")
    assert out.shape == (64, 64, 1)
    np.testing.assert_array_equal(out[..., 0], expected)
    # The default is still the centre crop (as paired_folder and unpaired_folders use it).
    np.testing.assert_array_equal(load_image(path, (64, 64), 1)[..., 0], cropped)
    np.testing.assert_array_equal(load_image(path, (64, 64), 1, "center_crop")[..., 0], cropped)


@pytest.mark.parametrize("height, top, bottom", [(10, 10, 10), (11, 9, 10)])
def test_pad_repeats_edge_rows_symmetrically(tmp_path, height, top, bottom):
    # 30 wide x `height` high, every row its own colour: fits 30x30 without scaling, so only rows are added.
    rows = (np.arange(height) * 20 + 10).astype(np.uint8)
    arr = np.stack([np.repeat(rows[:, None], 30, axis=1), np.full((height, 30), 7, np.uint8), np.repeat(rows[:, None], 30, axis=1)[::-1]], -1)
    Image.fromarray(arr).save(tmp_path / "wide.png")
    out = load_image(tmp_path / "wide.png", (30, 30), 3, "pad")
    expected = np.concatenate([np.repeat(arr[:1], top, axis=0), arr, np.repeat(arr[-1:], bottom, axis=0)], axis=0)
    np.testing.assert_array_equal(out, expected)


@pytest.fixture(scope="module")
def orl_padded() -> dict:
    """The ORL faces through the loader as a config names them: channels auto, pad, one subject in ten held out."""
    _orl_file()
    data = validate_data(root=str(ORL), image_size=32, channels="auto", resize="pad", holdout=0.1, holdout_by="class")
    return {"data": data, "train": load_dataset(data), "test": load_dataset(data, split="test")}


def validate_data(**data) -> dict:
    return validate({"model": {"family": "gan"}, "data": {"loader": "image_folder", **data}})["data"]


def test_orl_auto_is_grey_and_both_splits_are_padded_alike(orl_padded):
    train, test = orl_padded["train"], orl_padded["test"]
    assert orl_padded["data"]["channels"] == "auto"  # the config keeps what the user wrote ...
    assert resolve_channels(orl_padded["data"]) == 1  # ... the loader resolves it from the headers
    assert ImageFolder().image_shape(orl_padded["data"]) == (32, 32, 1)
    assert train.images.shape == (360, 32, 32, 1) and test.images.shape == (40, 32, 32, 1)
    assert train.image_shape == test.image_shape == (32, 32, 1)
    # The first held-out subject's first image, by hand: 112 high -> 32, 92 wide -> round(26.29) = 26, 3 + 3 columns of edge.
    subject = test.class_names[test.labels[0]]
    first = sorted((ORL / subject).glob("*.pgm"), key=lambda p: p.name)[0]
    with Image.open(first) as img:
        face = np.asarray(img.resize((26, 32), Image.Resampling.LANCZOS), dtype=np.uint8)
    expected = np.concatenate([np.repeat(face[:, :1], 3, axis=1), face, np.repeat(face[:, -1:], 3, axis=1)], axis=1)
    np.testing.assert_array_equal(test.images[0, ..., 0], expected)
    # Training images are padded the same way: every one has 3 repeated columns on each side.
    for images in (train.images, test.images):
        assert (images[:, :, :3] == images[:, :, 3:4]).all() and (images[:, :, -3:] == images[:, :, -4:-3]).all()


# ---------------------------------------------------------------------------------------------
# image_folder: channels auto
# ---------------------------------------------------------------------------------------------
def test_a_mixed_folder_is_rgb_and_grey_images_become_equal_channels(tmp_path):
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, (12, 12), dtype=np.uint8)
    rgb = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "a_grey.png")
    Image.fromarray(rgb).save(tmp_path / "b_rgb.png")
    data = validate_data(root=str(tmp_path), image_size=12, channels="auto")
    assert ImageFolder().image_shape(data) == (12, 12, 3)
    src = load_dataset(data)
    assert src.images.shape == (2, 12, 12, 3)
    np.testing.assert_array_equal(src.images[0], np.repeat(grey[..., None], 3, axis=-1))
    np.testing.assert_array_equal(src.images[1], rgb)


def test_every_grey_mode_counts_as_grey_and_a_new_colour_file_is_seen(tmp_path):
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(tmp_path / "l.png")  # L
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(tmp_path / "deep.png")  # I;16 (or I)
    Image.new("LA", (8, 8), (90, 255)).save(tmp_path / "la.png")
    Image.new("1", (8, 8), 1).save(tmp_path / "bits.png")
    modes = {p.name: Image.open(p).mode for p in tmp_path.iterdir()}
    assert modes["la.png"] == "LA" and modes["bits.png"] == "1" and modes["deep.png"].startswith("I"), modes
    data = validate_data(root=str(tmp_path), image_size=8, channels="auto")
    assert resolve_channels(data) == 1
    src = load_dataset(data)
    # Sorted names: bits, deep, l, la; 40000 // 257 = 155 (16 bits to 8).
    assert src.images[:, 0, 0, 0].tolist() == [255, 155, 200, 90]
    Image.fromarray(np.full((8, 8), 120.0, np.float32)).save(tmp_path / "m.tif")  # F: 32-bit float grey (scientific TIFFs)
    assert Image.open(tmp_path / "m.tif").mode == "F" and resolve_channels(data) == 1
    assert load_dataset(data).images[:, 0, 0, 0].tolist() == [255, 155, 200, 90, 120]
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "z.png")  # the cached answer must not hide it
    assert resolve_channels(data) == 3


def test_auto_with_the_folder_gone_still_validates_and_unreadable_files_follow_on_error(tmp_path):
    # Sampling a finished run rebuilds it from meta.json; its config must still validate without the data.
    assert ImageFolder().image_shape(validate_data(root=str(tmp_path / "gone"), image_size=32, channels="auto")) == (32, 32, 3)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"not a png")
    user_error(lambda: resolve_channels(validate_data(root=str(tmp_path), image_size=8, channels="auto")), "b.png", "data.on_error: skip")
    assert resolve_channels(validate_data(root=str(tmp_path), image_size=8, channels="auto", on_error="skip")) == 1


def test_channels_refuses_other_names(tmp_path):
    user_error(lambda: validate_data(root=str(tmp_path), channels="grey"), "data.channels", "1, 3, auto")
    user_error(lambda: validate_data(root=str(tmp_path), channels=2), "data.channels", "1, 3, auto")


# ---------------------------------------------------------------------------------------------
# End to end: one CLI run records the resolved channels, and sampling rebuilds from them
# ---------------------------------------------------------------------------------------------
def test_fit_on_orl_records_the_resolved_channels(tmp_path):
    _orl_file()
    config = {
        "name": "faces", "seed": 1,
        "model": dict(TINY),
        "data": {"loader": "image_folder", "root": str(ORL), "image_size": 32, "channels": "auto", "resize": "pad", "batch_size": 8},
        "train": {"steps": 2},
        "log": {"every": 1, "sample_every": 2, "checkpoint_every": 2, "num_samples": 4},
    }
    (tmp_path / "faces.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "gantrain", "fit", str(tmp_path / "faces.yaml"), "--run-dir", str(run), "-q"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((run / "meta.json").read_text())["image_shape"] == [32, 32, 1]
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["channels"] == "auto"
    model, _, step = load_model(run)
    assert step == 2 and model.image_shape == (32, 32, 1)
    assert tuple(model.generate(model.sample_latent(tf.random.Generator.from_seed(0), 2), training=False).shape) == (2, 32, 32, 1)
