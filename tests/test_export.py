"""``gantrain export``: each export reloads in a fresh Python process that cannot import gantrain and
gives the images ``gantrain sample`` / ``gantrain translate`` give for the same inputs; the standard
layers that replace gantrain's own against numpy; and the mistakes exit 2 with one line.

Tiny runs (one or two steps of networks a few channels wide) on MNIST and on 16x16 images the tests
write. Tolerances: keras and SavedModel compute the same float32 ops as gantrain (atol 1e-5 on
images in [-1, 1]); TFLite float32 runs other kernels (atol 1e-5); TFLite float16 stores the
weights in half precision (atol 1e-2, and it must differ from float32: the flag did something).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from typer.testing import CliRunner

import gantrain
from gantrain.config import validate
from gantrain.cli import app
from gantrain.errors import UserError
from gantrain.export import (Generators, export, keras_export_model, pixel_shuffle_kernel, serving_function, standard_model,
                             standard_pixel_shuffle, standard_reflection_pad)
from gantrain.models.layers import MinibatchDiscrimination
from gantrain.rundir import build_model
from gantrain.sampling import load_model
from gantrain.translate import Translator
from tests.conftest import tiny_config, user_error

N = 3  # images per noise-family check
LOG = {"every": 1, "sample_every": 1, "checkpoint_every": 1, "num_samples": 2}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_dir):
    tmp = tmp_path_factory.mktemp("export_runs")
    dcgan = gantrain.fit(tiny_config(mnist_dir, steps=1, ema_decay=0.9), run_dir=tmp / "dcgan", progress=False)
    cgan_cfg = {**tiny_config(mnist_dir, steps=1), "model": {"family": "cgan", "latent_dim": 8, "g_widths": [8], "d_widths": [8]}}
    cgan = gantrain.fit(cgan_cfg, run_dir=tmp / "cgan", progress=False)
    rng = np.random.default_rng(0)
    for domain in "AB":
        (tmp / domain).mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp / domain / f"{i}.png")
    cyclegan = gantrain.fit({"seed": 1, "model": {"family": "cyclegan", "ngf": 4, "ndf": 4, "blocks": 1, "d_layers": 1, "pool_size": 2},
                             "data": {"loader": "unpaired_folders", "domain_a": str(tmp / "A"), "domain_b": str(tmp / "B"),
                                      "image_size": 16, "batch_size": 2},
                             "loss": {"name": "least_squares"}, "train": {"steps": 1, "ema_decay": 0.9}, "log": LOG},
                            run_dir=tmp / "cyclegan", progress=False)
    srresnet = gantrain.fit({"model": {"family": "srresnet", "width": 4, "blocks": 1, "scale": 2},
                             "data": {"loader": "image_folder", "root": str(tmp / "A"), "image_size": 16, "hr_size": 8, "batch_size": 2},
                             "train": {"steps": 1}, "log": LOG}, run_dir=tmp / "srresnet", progress=False)
    return {"dcgan": dcgan, "cgan": cgan, "cyclegan": cyclegan, "srresnet": srresnet}


# What the fresh process loads: (key, run, format, --out, extra flags). cyclegan writes OUT/g_ab.keras and OUT/g_ba.keras.
EXPORTS = [
    ("dcgan_keras", "dcgan", "keras", "dcgan.keras", []),
    ("dcgan_savedmodel", "dcgan", "savedmodel", "dcgan_savedmodel", []),
    ("dcgan_tflite", "dcgan", "tflite", "dcgan.tflite", []),
    ("dcgan_tflite16", "dcgan", "tflite", "dcgan16.tflite", ["--float16"]),
    ("cgan_keras", "cgan", "keras", "cgan.keras", []),
    ("cgan_savedmodel", "cgan", "savedmodel", "cgan_savedmodel", []),
    ("cgan_tflite", "cgan", "tflite", "cgan.tflite", []),
    ("cyclegan_keras", "cyclegan", "keras", "cyclegan", []),
    ("srresnet_keras", "srresnet", "keras", "srresnet.keras", []),
    ("srresnet_savedmodel", "srresnet", "savedmodel", "srresnet_savedmodel", []),
]

# Runs in a process where importing gantrain raises; loads every export and runs it on the saved inputs.
LOADER = r"""
import json, os, sys
class NoGantrain:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "gantrain":
            raise ImportError("gantrain must not be needed to load an export")
sys.meta_path.insert(0, NoGantrain())
import numpy as np, keras, tensorflow as tf
out_dir, = sys.argv[1:]
x = dict(np.load(os.path.join(out_dir, "inputs.npz")))
noise = {"dcgan": {"z": x["dcgan_z"]}, "cgan": {"z": x["cgan_z"], "label": x["cgan_label"]}}
got = {}
for key, run, fmt, path in json.load(open(os.path.join(out_dir, "exports.json"))):
    if fmt == "keras" and run in noise:
        got[key] = keras.saving.load_model(path)(noise[run])
    elif fmt == "keras" and run == "cyclegan":
        for name in ("g_ab", "g_ba"):
            got[f"{key}_{name}"] = keras.saving.load_model(os.path.join(path, name + ".keras"))({"images": x[f"cyclegan_{name}_in"]})
    elif fmt == "keras":
        got[key] = keras.saving.load_model(path)({"images": x["srresnet_in"]})
    elif fmt == "savedmodel":
        serve = tf.saved_model.load(path).signatures["serving_default"]
        inputs = noise[run] if run in noise else {"images": x["srresnet_in"]}
        got[key] = serve(**{k: tf.constant(v) for k, v in inputs.items()})["images"]
    else:  # tflite: batch 1, one row at a time
        runner = tf.lite.Interpreter(model_path=path).get_signature_runner("serving_default")
        got[key] = np.concatenate([runner(**{k: v[i:i + 1] for k, v in noise[run].items()})["images"] for i in range(len(x["dcgan_z"]))])
assert "gantrain" not in sys.modules, "loading the exports imported gantrain"
np.savez(os.path.join(out_dir, "outputs.npz"), **{k: np.asarray(v) for k, v in got.items()})
"""


def _latent(run, n, seed, labels=None):
    """The latent inputs ``gantrain.sample(run, n, seed, labels=labels)`` draws (one batch)."""
    model, _, _ = load_model(run)
    latent = model.sample_latent(tf.random.Generator.from_seed(seed), n, labels=None if labels is None else tf.constant(labels, tf.int32))
    return {k: v.numpy() for k, v in latent.items()}


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory):
    """Every export of EXPORTS through the CLI, reloaded and run in one fresh process; the CLI outputs,
    the inputs and what the exports returned."""
    out = tmp_path_factory.mktemp("exports")
    printed, listing = {}, []
    for key, run, fmt, path, flags in EXPORTS:
        result = CliRunner().invoke(app, ["export", str(runs[run]), "--format", fmt, "--out", str(out / path), *flags])
        assert result.exit_code == 0, result.output
        printed[key] = result.output
        listing.append((key, run, fmt, str(out / path)))
    labels = [2, 7, 0]
    dcgan, cgan = _latent(runs["dcgan"], N, 5), _latent(runs["cgan"], N, 6, labels)
    rng = np.random.default_rng(1)
    inputs = {"dcgan_z": dcgan["z"], "cgan_z": cgan["z"], "cgan_label": cgan["labels"],
              "cyclegan_g_ab_in": rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32),
              "cyclegan_g_ba_in": rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32),
              "srresnet_in": rng.uniform(-1, 1, (2, 5, 7, 3)).astype(np.float32)}  # any LR size: fully convolutional
    np.savez(out / "inputs.npz", **inputs)
    (out / "exports.json").write_text(json.dumps(listing))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run([sys.executable, "-c", LOADER, str(out)], cwd=str(out), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out / "outputs.npz") as f:
        got = dict(f)
    return {"printed": printed, "inputs": inputs, "got": got, "labels": labels, "out": out}


def test_noise_exports_reproduce_gantrain_sample(runs, exported):
    """Same z (and labels) -> the images of gantrain.sample (the EMA generator for the dcgan run)."""
    got = exported["got"]
    dcgan = gantrain.sample(runs["dcgan"], n=N, seed=5)
    cgan = gantrain.sample(runs["cgan"], n=N, seed=6, labels=exported["labels"])
    for key in ("dcgan_keras", "dcgan_savedmodel", "dcgan_tflite"):
        assert got[key].shape == dcgan.shape and got[key].dtype == np.float32
        np.testing.assert_allclose(got[key], dcgan, atol=1e-5, err_msg=key)
    for key in ("cgan_keras", "cgan_savedmodel", "cgan_tflite"):
        np.testing.assert_allclose(got[key], cgan, atol=1e-5, err_msg=key)
    # float16 weights: close, but not the float32 numbers (the quantisation happened).
    np.testing.assert_allclose(got["dcgan_tflite16"], dcgan, atol=1e-2)
    assert np.abs(got["dcgan_tflite16"] - dcgan).max() > 1e-6
    assert (exported["out"] / "dcgan16.tflite").stat().st_size < 0.75 * (exported["out"] / "dcgan.tflite").stat().st_size
    # The labels matter: another class gives other images.
    assert np.abs(gantrain.sample(runs["cgan"], n=N, seed=6, labels=[3, 3, 3]) - cgan).max() > 1e-3


def test_translation_exports_reproduce_gantrain_translate(runs, exported):
    """cyclegan: both EMA generators, named; srresnet: PixelShuffle rebuilt, any input size."""
    got, inputs = exported["got"], exported["inputs"]
    for name, direction in (("g_ab", "a2b"), ("g_ba", "b2a")):
        translator = Translator(runs["cyclegan"], direction)
        assert translator.weights_source == f"ema_{name}"
        expected = np.stack([translator(image) for image in inputs[f"cyclegan_{name}_in"]])
        np.testing.assert_allclose(got[f"cyclegan_keras_{name}"], expected, atol=1e-5, err_msg=name)
    assert np.abs(got["cyclegan_keras_g_ab"] - got["cyclegan_keras_g_ba"]).max() > 1e-4  # two different networks
    sr = Translator(runs["srresnet"], "a2b")
    expected = np.stack([sr(image) for image in inputs["srresnet_in"]])
    assert expected.shape == (2, 10, 14, 3)
    for key in ("srresnet_keras", "srresnet_savedmodel"):
        np.testing.assert_allclose(got[key], expected, atol=1e-5, err_msg=key)


def test_export_prints_the_serving_signature(exported):
    printed = exported["printed"]
    assert "z float32 [None, 8] -> images float32 [None, 28, 28, 1] in [-1, 1]" in printed["dcgan_savedmodel"]
    assert "z float32 [None, 8], label int32 [None] (0..9) -> images float32 [None, 28, 28, 1]" in printed["cgan_savedmodel"]
    assert "z float32 [1, 8] -> images float32 [1, 28, 28, 1]" in printed["dcgan_tflite"]
    assert "images float32 [None, None, None, 3] -> images float32 [None, None, None, 3]" in printed["srresnet_savedmodel"]
    assert "(ema_generator)" in printed["dcgan_keras"]
    cyclegan = printed["cyclegan_keras"]
    assert "g_ab from step 1 (ema_g_ab)" in cyclegan and "g_ba from step 1 (ema_g_ba)" in cyclegan


def _depth_to_space(x, r):
    """numpy reference of TensorFlow's NHWC depth_to_space."""
    b, h, w, c = x.shape
    return x.reshape(b, h, w, r, r, c // (r * r)).transpose(0, 1, 3, 2, 4, 5).reshape(b, h * r, w * r, c // (r * r))


@pytest.mark.parametrize("factor", [2, 3])
def test_standard_pixel_shuffle_is_depth_to_space(factor):
    x = np.random.default_rng(factor).standard_normal((2, 3, 4, factor * factor * 2)).astype(np.float32)
    inp = keras.Input((None, None, x.shape[-1]))
    model = keras.Model(inp, standard_pixel_shuffle(inp, factor, "shuffle"))
    np.testing.assert_array_equal(model(x).numpy(), _depth_to_space(x, factor))
    assert pixel_shuffle_kernel(factor, 2).sum() == factor * factor * 2  # a 0/1 permutation: one 1 per output channel
    assert not model.trainable_weights


@pytest.mark.parametrize("padding", [(3, 3), (1, 2)])
def test_standard_reflection_pad_is_numpy_reflect(padding):
    x = np.random.default_rng(0).standard_normal((2, 5, 6, 3)).astype(np.float32)
    inp = keras.Input(x.shape[1:])
    model = keras.Model(inp, standard_reflection_pad(inp, padding, "pad"))
    ph, pw = padding
    np.testing.assert_array_equal(model(x).numpy(), np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), mode="reflect"))


def _only_keras_layers(model):
    for layer in model.layers:
        assert type(layer).__module__.split(".")[0] == "keras", f"{layer.name}: {type(layer).__module__}"
        if isinstance(layer, keras.Model):
            _only_keras_layers(layer)


def _built(model_cfg, shape, classes=0):
    cfg = validate({"model": model_cfg, "data": {"loader": "image_folder", "root": "unused", "image_size": shape[0], "batch_size": 2}})
    model = build_model(cfg, shape, classes)
    return Generators(model, {"generator": model.generator}, model_cfg["family"], 0, {"generator": "generator"})


def test_infogan_and_chroma_keras_exports_take_the_serving_inputs(tmp_path):
    """InfoGAN's export one-hot encodes and concatenates its own codes; pix2pix chroma's joins the
    input's luminance to G's chroma: both equal the model, before and after a safe-mode reload."""
    info = _built({"family": "infogan", "latent_dim": 4, "g_base_channels": 4, "g_widths": [4, 4, 4], "d_widths": [4], "continuous_codes": 2},
                  (8, 8, 1), 5)
    latent = info.model.sample_latent(tf.random.Generator.from_seed(3), 4)
    expected = info.model.generate(latent, training=False).numpy()
    feed = {"z": latent["z"].numpy(), "label": latent["labels"].numpy(), "codes": latent["codes"].numpy()}
    served = serving_function(info, "generator")(*(tf.constant(feed[k]) for k in ("z", "label", "codes")))["images"]
    np.testing.assert_allclose(served.numpy(), expected, atol=1e-6)

    chroma = _built({"family": "pix2pix", "ngf": 4, "ndf": 4, "depth": 2, "d_layers": 1, "output": "chroma"}, (8, 8, 3))
    luma = np.random.default_rng(2).uniform(-1, 1, (2, 8, 8, 1)).astype(np.float32)
    chroma_expected = chroma.model.translate(luma).numpy()
    for gens, inputs, want in ((info, feed, expected), (chroma, luma, chroma_expected)):
        model = keras_export_model(gens, "generator")
        _only_keras_layers(model)
        np.testing.assert_allclose(model(inputs).numpy(), want, atol=1e-5)
        model.save(tmp_path / "m.keras")
        np.testing.assert_allclose(keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)(inputs).numpy(), want, atol=1e-5)
    assert chroma_expected.shape == (2, 8, 8, 3)


def test_sgan_mlp_keras_export_folds_the_weight_normalised_layer_into_a_dense_one(tmp_path):
    """G's last layer is a WeightNormDense (g * v / ||v|| and b): the .keras file holds a plain Dense
    with that kernel, and draws what the model draws, before and after a safe-mode reload."""
    gens = _built({"family": "sgan_mlp", "latent_dim": 4, "g_widths": [6], "d_widths": [5]}, (4, 4, 1), 3)
    wn = next(layer for layer in gens.model.generator.layers if type(layer).__name__ == "WeightNormDense")
    wn.scale.assign(np.linspace(0.5, 2.0, wn.units).astype(np.float32))  # not the initial ones, so a dropped scale shows
    wn.bias.assign(np.linspace(-1.0, 1.0, wn.units).astype(np.float32))
    z = np.random.default_rng(4).normal(size=(3, 4)).astype(np.float32)
    want = gens.model.generator(z, training=False).numpy()
    model = keras_export_model(gens, "generator")
    _only_keras_layers(model)
    np.testing.assert_allclose(model(z).numpy(), want, atol=1e-6)
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)(z).numpy(), want, atol=1e-6)


def test_a_custom_layer_without_a_rewrite_is_refused_by_name():
    inp = keras.Input((4,))
    net = keras.Model(inp, MinibatchDiscrimination(2, 2, name="mbd")(inp))
    user_error(lambda: standard_model(net), "'mbd'", "MinibatchDiscrimination", "--format savedmodel or tflite")


@pytest.mark.parametrize("args,needle", [
    (["{empty}", "--format", "keras", "--out", "{tmp}/g.keras"], "no checkpoint found"),
    (["{dcgan}", "--format", "onnx", "--out", "{tmp}/g.onnx"], "--format 'onnx': choose one of keras, savedmodel, tflite"),
    (["{dcgan}", "--format", "keras", "--out", "{file}/g.keras"], "is a file, not a folder"),
    (["{dcgan}", "--format", "keras", "--out", "{file}"], "already exists; pass --overwrite"),
    (["{dcgan}", "--format", "keras", "--out", "{tmp}/g.keras", "--float16"], "--float16: quantises TFLite models only"),
    (["{cyclegan}", "--format", "keras", "--out", "{tmp}/g.keras"], "has 2 generators (g_ab, g_ba); give a folder"),
    (["{dcgan}", "--format", "keras", "--out", "{tmp}/g.keras", "--checkpoint", "7"], "no checkpoint for step 7"),
    (["{dcgan}", "--format", "tflite", "--out", "{tmp}/g.keras"], "a .keras name for --format tflite"),
    (["{dcgan}", "--format", "savedmodel", "--out", "{tmp}"], "not a SavedModel); choose a new folder name"),
])
def test_export_mistakes_exit_2_with_one_line(runs, tmp_path, args, needle):
    (tmp_path / "empty").mkdir()
    existing = tmp_path / "taken.keras"
    existing.write_bytes(b"keep")
    fill = {"empty": tmp_path / "empty", "tmp": tmp_path, "file": existing, "dcgan": runs["dcgan"], "cyclegan": runs["cyclegan"]}
    result = CliRunner().invoke(app, ["export", *[a.format(**fill) for a in args]])
    assert result.exit_code == 2, result.output
    assert needle in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert existing.read_bytes() == b"keep"


def test_overwrite_replaces_an_export_and_refuses_folders_that_are_not_savedmodels(runs, tmp_path):
    out = tmp_path / "g.keras"
    out.write_bytes(b"old")
    result = CliRunner().invoke(app, ["export", str(runs["dcgan"]), "--format", "keras", "--out", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    z = _latent(runs["dcgan"], 2, 9)["z"]
    np.testing.assert_allclose(keras.saving.load_model(out)(z).numpy(), gantrain.sample(runs["dcgan"], n=2, seed=9), atol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == ["g.keras"]  # no temporary file left behind
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    result = CliRunner().invoke(app, ["export", str(runs["dcgan"]), "--format", "savedmodel", "--out", str(folder), "--overwrite"])
    assert result.exit_code == 2 and "is not a SavedModel" in result.output, result.output
    assert (folder / "keep.txt").read_text() == "mine"
    with pytest.raises(UserError):  # the Python API raises what the CLI prints
        export(runs["dcgan"], "keras", out)
