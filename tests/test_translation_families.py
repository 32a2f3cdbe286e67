"""pix2pix and CycleGAN on the generic trainer: their losses against hand computations, an exact
resume of a CycleGAN run (history pools included), and ``gantrain translate`` on a folder and on
a larger image. Tiny networks on 16x16 images the tests write."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from typer.testing import CliRunner

import gantrain
from gantrain.cli import app
from gantrain.config import validate
from gantrain.data.pairs import PairedSource, UnpairedSource
from gantrain.losses import get_loss
from gantrain.rundir import build_model
from gantrain.trainer import Trainer, TrainOptions

TINY_CYCLE = {"family": "cyclegan", "ngf": 4, "ndf": 4, "blocks": 1, "d_layers": 1, "pool_size": 3}
TINY_P2P = {"family": "pix2pix", "ngf": 4, "ndf": 4, "depth": 3, "d_layers": 1}


def _images(seed, n, size=16, channels=3):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def _trainer(model_cfg, source, loss="least_squares", **train):
    cfg = validate({"model": model_cfg, "data": {"loader": "image_folder", "root": "unused", "image_size": 16, "batch_size": 2}, "loss": {"name": loss},
                    "train": {"update": "alternating", **train}})
    model = build_model(cfg, source.image_shape, 0)
    opts = {g.name: keras.optimizers.SGD(0.01) for g in model.groups}
    return model, Trainer(model, opts, get_loss(loss), 2, 0, options=TrainOptions.from_config(cfg))


def _clones(model):
    nets = {name: keras.models.clone_model(net) for name, net in model.networks.items()}
    for name, net in nets.items():
        net.set_weights(model.networks[name].get_weights())
    return nets


def _l1(x, y):
    return float(np.mean(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))


def test_cyclegan_generator_losses_by_hand():
    """Zhu et al.: MSE adversarial terms, lambda=10 cycle L1, 0.5 x lambda identity L1, at the initial weights."""
    source = UnpairedSource(_images(1, 4), _images(2, 4))
    model, trainer = _trainer(TINY_CYCLE, source)
    nets = _clones(model)
    batch = next(iter(source.pipeline(2, 0)))
    a, b = batch["domain_a"], batch["domain_b"]
    out = trainer.update("generator", batch, {}, tf.constant([1, 2], tf.int64))
    fb, fa = nets["g_ab"](a, training=True), nets["g_ba"](b, training=True)
    adv = np.mean((nets["d_b"](fb, training=True).numpy() - 1) ** 2) + np.mean((nets["d_a"](fa, training=True).numpy() - 1) ** 2)
    cycle = 10 * (_l1(nets["g_ba"](fb, training=True), a) + _l1(nets["g_ab"](fa, training=True), b))
    identity = 0.5 * 10 * (_l1(nets["g_ab"](b, training=True), b) + _l1(nets["g_ba"](a, training=True), a))
    assert float(out["g_adv_loss"]) == pytest.approx(adv, rel=1e-5)
    assert float(out["g_cycle_loss"]) == pytest.approx(cycle, rel=1e-5)
    assert float(out["g_identity_loss"]) == pytest.approx(identity, rel=1e-5)
    assert float(out["g_loss"]) == pytest.approx(adv + cycle + identity, rel=1e-5)
    # identity_weight 0 switches the term off.
    _, trainer = _trainer({**TINY_CYCLE, "identity_weight": 0.0}, source)
    assert "g_identity_loss" not in trainer.update("generator", batch, {}, tf.constant([1, 2], tf.int64))


def test_cyclegan_critics_learn_from_the_pool_with_halved_mse():
    """D's loss: (MSE(D(real), 1) + MSE(D(pooled fake), 0)) / 2 per critic; while the pool fills, the fakes themselves."""
    source = UnpairedSource(_images(1, 4), _images(2, 4))
    model, trainer = _trainer(TINY_CYCLE, source)
    nets = _clones(model)
    batch = next(iter(source.pipeline(2, 0)))
    a, b = batch["domain_a"], batch["domain_b"]
    out = trainer.update("discriminator", batch, {}, tf.constant([1, 2], tf.int64))
    fake_a, fake_b = nets["g_ba"](b, training=True), nets["g_ab"](a, training=True)
    d_a = 0.5 * np.mean((nets["d_a"](a, training=True).numpy() - 1) ** 2) + 0.5 * np.mean(nets["d_a"](fake_a, training=True).numpy() ** 2)
    d_b = 0.5 * np.mean((nets["d_b"](b, training=True).numpy() - 1) ** 2) + 0.5 * np.mean(nets["d_b"](fake_b, training=True).numpy() ** 2)
    assert float(out["d_a_loss"]) == pytest.approx(d_a, rel=1e-5)
    assert float(out["d_b_loss"]) == pytest.approx(d_b, rel=1e-5)
    assert int(model.pools["a"].count.numpy()) == 2  # the two fakes went into the pool


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_cyclegan_joint_step_losses_by_hand(norm):
    """The reference's step (train.update: auto) shares one critic pass per domain between D's reals,
    D's pooled fakes and G's fakes, and one generator pass between translation and identity, when
    the networks normalise per image; with batch norm (statistics over the batch) each input keeps
    its own call. Either way every loss equals the one computed with separate calls by hand."""
    source = UnpairedSource(_images(1, 4), _images(2, 4))
    model, trainer = _trainer({**TINY_CYCLE, "norm": norm}, source, update="auto")
    assert trainer.simultaneous and model.per_image == (norm == "instance")
    nets = _clones(model)
    batch = next(iter(source.pipeline(2, 0)))
    a, b = batch["domain_a"], batch["domain_b"]
    out = trainer.joint_update(batch, {}, {}, tf.constant([1, 2], tf.int64))
    fb, fa = nets["g_ab"](a, training=True), nets["g_ba"](b, training=True)
    adv = np.mean((nets["d_b"](fb, training=True).numpy() - 1) ** 2) + np.mean((nets["d_a"](fa, training=True).numpy() - 1) ** 2)
    cycle = 10 * (_l1(nets["g_ba"](fb, training=True), a) + _l1(nets["g_ab"](fa, training=True), b))
    identity = 0.5 * 10 * (_l1(nets["g_ab"](b, training=True), b) + _l1(nets["g_ba"](a, training=True), a))
    # The pools are filling (capacity 3, two images each), so D sees this step's fakes.
    d_a = 0.5 * np.mean((nets["d_a"](a, training=True).numpy() - 1) ** 2) + 0.5 * np.mean(nets["d_a"](fa, training=True).numpy() ** 2)
    d_b = 0.5 * np.mean((nets["d_b"](b, training=True).numpy() - 1) ** 2) + 0.5 * np.mean(nets["d_b"](fb, training=True).numpy() ** 2)
    for key, want in (("g_adv_loss", adv), ("g_cycle_loss", cycle), ("g_identity_loss", identity), ("d_a_loss", d_a), ("d_b_loss", d_b)):
        assert float(out[key]) == pytest.approx(want, rel=1e-5), key


def test_pix2pix_losses_by_hand():
    """Isola et al.: G = BCE(D(x, G(x)), 1) + 100 x L1; D = (BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)) / 2."""
    source = PairedSource(_images(3, 4, channels=1), _images(4, 4))
    batch = next(iter(source.pipeline(2, 0)))
    x = tf.repeat(batch["source"], 3, axis=-1)  # a grey input is repeated to the target's channels
    y = batch["target"]
    bce = lambda logits, t: float(tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.fill(tf.shape(logits), t), logits)))  # noqa: E731
    # Both losses at the same weights: the joint (tutorial) step computes them from one forward pass of G.
    # G's dropout draws differ between this and the hand pass, so compare with dropout off.
    model_cfg = {**TINY_P2P, "dropout": 0.0}
    model, trainer = _trainer(model_cfg, source, loss="non_saturating", update="simultaneous")
    nets = _clones(model)
    out = trainer.joint_update(batch, None, {}, tf.constant([1, 2], tf.int64))
    fake = nets["generator"](x, training=True)
    real_logits, fake_logits = nets["discriminator"]([y, x], training=True), nets["discriminator"]([fake, x], training=True)
    assert float(out["d_loss"]) == pytest.approx(0.5 * (bce(real_logits, 1.0) + bce(fake_logits, 0.0)), rel=1e-5)
    assert float(out["g_adv_loss"]) == pytest.approx(bce(fake_logits, 1.0), rel=1e-5)
    assert float(out["g_l1_loss"]) == pytest.approx(100 * _l1(y, fake), rel=1e-5)


def _write_domains(root, n_a=6, n_b=5):
    for name, seed, n in (("A", 5, n_a), ("B", 6, n_b)):
        for i, img in enumerate(_images(seed, n)):
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / name / f"{name.lower()}{i}.png")
    return root


def _cycle_config(root, steps):
    return {"seed": 1, "model": TINY_CYCLE,
            "data": {"loader": "unpaired_folders", "domain_a": str(root / "A"), "domain_b": str(root / "B"), "image_size": 16, "batch_size": 2,
                     "holdout": 0.4, "jitter": True},
            "loss": {"name": "least_squares"}, "train": {"steps": steps, "ema_decay": 0.9},
            "log": {"every": 1, "sample_every": 2, "checkpoint_every": 2, "num_samples": 4}}


@pytest.fixture(scope="module")
def cycle_runs(tmp_path_factory):
    root = _write_domains(tmp_path_factory.mktemp("domains"))
    full = gantrain.fit(_cycle_config(root, 4), run_dir=root / "full", progress=False)
    part = gantrain.fit(_cycle_config(root, 2), run_dir=root / "part", progress=False)
    gantrain.fit(_cycle_config(root, 4), resume=part, progress=False)
    return root, full, part


def _checkpoint(run):
    prefix = tf.train.latest_checkpoint(str(run / "checkpoints"))
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(prefix) if not name.startswith("_CHECKPOINTABLE")}


def test_cyclegan_run_resumes_exactly_with_its_pools(cycle_runs):
    _, full, part = cycle_runs
    a, b = _checkpoint(full), _checkpoint(part)
    assert {k.split("/")[0] for k in a} >= {"g_ab", "g_ba", "d_a", "d_b", "g_optimizer", "d_optimizer", "ema_g_ab", "ema_g_ba", "pool_a", "pool_b"}
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    pool_count = next(v for k, v in a.items() if k.startswith("pool_a/0001"))
    assert int(pool_count) == 3  # capacity 3, full after 4 steps of 2 fakes
    rows = lambda run: [{k: v for k, v in json.loads(line).items() if k not in ("images_per_sec", "time")} for line in (run / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert rows(full) == rows(part)
    # The grid: A | G_AB(A) | G_BA(G_AB(A)) and B | G_BA(B) | G_AB(G_BA(B)) on the held-out images (two of each here).
    grid = np.asarray(Image.open(full / "samples" / "step_000004.png"))
    assert grid.shape[:2] == ((4 * 18 + 2) * 4, (3 * 18 + 2) * 4)  # 16 px images 2 px apart, shown 4x


def test_translate_a_folder_and_a_larger_image(cycle_runs, tmp_path):
    root, full, _ = cycle_runs
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(app, ["translate", str(full), str(root / "A"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (root / "A").iterdir())
    assert sorted(p.name for p in out.iterdir()) == names
    assert Image.open(out / names[0]).size == (16, 16)
    # The same run's G_AB on a 40x24 image: padded to 40x24 (multiples of 4 fit the ResNet), translated whole.
    big = tmp_path / "big.png"
    Image.fromarray(_images(9, 1, size=40)[0][:24]).save(big)
    result = runner.invoke(app, ["translate", str(full), str(big), "--out", str(tmp_path / "big_out.png"), "--direction", "b2a"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "big_out.png").size == (40, 24)
    # Same-size input: the rebuilt network equals the trained one on the training size.
    from gantrain.translate import Translator, read_image

    translator = Translator(full, "a2b")
    image = read_image(root / "A" / names[0], 3)
    trained = translator.model.translate(image[None], "a2b")[0].numpy()
    padded = np.pad(image, ((0, 8), (0, 8), (0, 0)), mode="reflect")
    assert translator(image).shape == (16, 16, 3)
    np.testing.assert_allclose(translator(image), trained, atol=1e-5)
    assert translator(padded).shape == (24, 24, 3)


@pytest.mark.parametrize("args,needle", [
    (["{run}", "{missing}", "--out", "{tmp}/o"], "no such image or folder"),
    (["{run}", "{img}", "--out", "{tmp}/o.txt"], "give an image file name"),
    (["{run}", "{img}", "--out", "{tmp}/o.png", "--direction", "c2d"], "--direction c2d: this cyclegan model translates a2b and b2a"),
    (["{mnist_run}", "{img}", "--out", "{tmp}/o.png"], "does not translate images"),
])
def test_translate_mistakes_exit_2_with_one_line(cycle_runs, tmp_path, args, needle, tiny_mnist_run):
    root, full, _ = cycle_runs
    img = next((root / "A").iterdir())
    fill = {"run": full, "missing": tmp_path / "nope", "tmp": tmp_path, "img": img, "mnist_run": tiny_mnist_run}
    result = CliRunner().invoke(app, ["translate", *[a.format(**fill) for a in args]])
    assert result.exit_code == 2, result.output
    assert needle in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_translate_never_overwrites_without_asking(cycle_runs, tmp_path):
    root, full, _ = cycle_runs
    img = next((root / "A").iterdir())
    out = tmp_path / "o.png"
    out.write_bytes(b"keep")
    result = CliRunner().invoke(app, ["translate", str(full), str(img), "--out", str(out)])
    assert result.exit_code == 2 and "already exist" in result.output
    assert out.read_bytes() == b"keep"
    assert CliRunner().invoke(app, ["translate", str(full), str(img), "--out", str(out), "--overwrite"]).exit_code == 0
    assert Image.open(out).size == (16, 16)


@pytest.fixture(scope="module")
def tiny_mnist_run(tmp_path_factory, mnist_dir):
    from tests.conftest import tiny_config

    return gantrain.fit(tiny_config(mnist_dir, steps=1), run_dir=tmp_path_factory.mktemp("m") / "run", progress=False)


def test_pix2pix_on_derived_pairs_from_an_image_folder(tmp_path):
    """Grey -> colour pairs computed from a folder, a held-out tenth for the grids; the model trains and translates."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, img in enumerate(_images(7, 10)):
        Image.fromarray(img).save(folder / f"p{i}.png")
    cfg = {"model": TINY_P2P, "data": {"loader": "image_folder", "root": str(folder), "image_size": 16, "holdout": 0.2, "pairs": "grey",
                                       "pairs_jitter": True, "batch_size": 2},
           "train": {"steps": 2}, "log": {"every": 1, "sample_every": 2, "checkpoint_every": 2, "num_samples": 4}}
    run = gantrain.fit(cfg, run_dir=tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"d_loss", "g_adv_loss", "g_l1_loss"} <= set(rows[0])
    assert (run / "samples" / "step_000002.png").is_file()
    out = tmp_path / "coloured.png"
    grey = tmp_path / "grey.png"
    Image.fromarray(_images(8, 1, size=32, channels=1)[0][..., 0], "L").save(grey)
    assert CliRunner().invoke(app, ["translate", str(run), str(grey), "--out", str(out)]).exit_code == 0
    assert Image.open(out).mode == "RGB" and Image.open(out).size == (32, 32)


def test_similarity_measures_against_independent_computations():
    from skimage.metrics import structural_similarity

    from gantrain.metrics.similarity import l1, psnr, ssim

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 16, 16, 3))
    y = np.clip(x + rng.normal(0, 0.2, x.shape), -1, 1)
    u, v = x / 2 + 0.5, y / 2 + 0.5
    np.testing.assert_allclose(l1(x, y), np.abs(u - v).mean(axis=(1, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(psnr(x, y), 10 * np.log10(1 / ((u - v) ** 2).mean(axis=(1, 2, 3))), rtol=1e-12)
    assert psnr(x, x).tolist() == [100.0, 100.0]
    sk = [structural_similarity(u[i], v[i], channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
          for i in range(2)]
    np.testing.assert_allclose(ssim(x, y), sk, rtol=2e-3)
    np.testing.assert_allclose(ssim(x, x), [1.0, 1.0], rtol=1e-6)


def test_eval_of_a_cyclegan_run_reports_cycle_l1_against_the_between_domain_l1(cycle_runs):
    _, full, _ = cycle_runs
    result = CliRunner().invoke(app, ["eval", str(full)])
    assert result.exit_code == 0, result.output
    report = json.loads((full / "eval.json").read_text())
    by = {r["metric"]: r for r in report["results"]}
    assert set(by) == {"cycle_l1_a", "cycle_l1_b"}
    # By hand on the held-out images: G_BA(G_AB(a)) against a, and random pairs of A and B.
    from gantrain.data import load_dataset
    from gantrain.metrics.similarity import l1
    from gantrain.translate import Translator

    forward, backward = Translator(full, "a2b"), Translator(full, "b2a")
    held = load_dataset(forward.cfg["data"], split="test")
    a = held.examples(np.arange(len(held.domain_a)), np.zeros(0, int))["domain_a"]
    rec = backward.model.translate(forward.model.translate(a, "a2b"), "b2a").numpy()
    assert by["cycle_l1_a"]["value"] == pytest.approx(float(l1(rec, a).mean()), rel=1e-5)
    assert by["cycle_l1_a"]["images_a"] == len(a) == 2  # round(0.4 x 6) held out
    assert CliRunner().invoke(app, ["eval", str(full), "--kid"]).exit_code == 2


def test_eval_of_a_pix2pix_run_puts_each_number_next_to_the_input_as_baseline(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, img in enumerate(_images(7, 10)):
        Image.fromarray(img).save(folder / f"p{i}.png")
    cfg = {"model": TINY_P2P, "data": {"loader": "image_folder", "root": str(folder), "image_size": 16, "holdout": 0.2, "pairs": "grey", "batch_size": 2},
           "train": {"steps": 1}, "log": {"every": 1, "sample_every": 1, "checkpoint_every": 1, "num_samples": 4}}
    run = gantrain.fit(cfg, run_dir=tmp_path / "run", progress=False)
    result = CliRunner().invoke(app, ["eval", str(run)])
    assert result.exit_code == 0, result.output
    by = {r["metric"]: r for r in json.loads((run / "eval.json").read_text())["results"]}
    assert set(by) == {"l1", "psnr", "ssim"} and by["l1"]["images"] == 2  # 0.2 of 10 held out
    from gantrain.data import load_dataset
    from gantrain.metrics.similarity import l1

    held = load_dataset(validate(cfg)["data"], split="test").examples(np.arange(2))
    grey3 = np.repeat(held["source"], 3, axis=-1)
    assert by["l1"]["baseline_value"] == pytest.approx(float(l1(grey3, held["target"]).mean()), abs=1e-5)


def test_paired_scores_leave_out_pairs_whose_input_is_already_the_target():
    """A greyscale photograph in a colourisation test set is its own answer: the grey copy's PSNR is
    infinite there (100 dB at the cap), which outweighed the model's gain on every other image (14
    such of CIFAR-10's 1,000 held-out images gave the grey copy +0.9 dB). Such pairs, equal to 8-bit
    precision, are left out of every measure and counted in the protocol; near-grey ones stay."""
    from gantrain.metrics.similarity import l1, psnr, ssim
    from gantrain.translation_eval import paired_scores

    rng = np.random.default_rng(1)
    target = rng.uniform(-1, 1, (4, 16, 16, 3))
    target[1] = target[1, ..., :1]  # a grey photograph: R = G = B
    near = target[2].mean(axis=-1, keepdims=True)
    target[2] = near + rng.choice([-2, 2], target[2].shape) / 255.0  # one 8-bit level from grey: a real test case
    baseline = np.repeat(target.mean(axis=-1, keepdims=True), 3, axis=-1)
    baseline[1] = target[1] + 0.4 / 255.0  # below half an 8-bit level: the same image
    output = np.clip(target + rng.normal(0, 0.05, target.shape), -1, 1)
    rows = {r["metric"]: r for r in paired_scores(output, baseline, target, {"images": 4})}
    keep = [0, 2, 3]
    for name, fn in (("l1", l1), ("psnr", psnr), ("ssim", ssim)):
        assert rows[name]["value"] == pytest.approx(float(fn(output[keep], target[keep]).mean()), rel=1e-9)
        assert rows[name]["baseline_value"] == pytest.approx(float(fn(baseline[keep], target[keep]).mean()), abs=1e-5)
        assert rows[name]["images"] == 3 and rows[name]["left_out_as_already_the_target"] == 1
    with pytest.raises(gantrain.errors.UserError, match="already"):
        paired_scores(output[1:2], baseline[1:2], target[1:2], {"images": 1})


def test_pix2pix_chroma_output_keeps_the_input_luminance_exactly():
    """output: chroma: G predicts U and V only; the assembled image's BT.601 luminance is the grey input's."""
    source = PairedSource(_images(3, 4, channels=1), _images(4, 4))
    model, trainer = _trainer({**TINY_P2P, "output": "chroma"}, source, loss="non_saturating")
    assert model.generator.output.shape[-1] == 2 and model.generator.input.shape[-1] == 1
    grey = next(iter(source.pipeline(2, 0)))["source"]
    rgb = model.translate(grey).numpy()
    luma = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114  # BT.601 on [-1, 1] is affine: same weights
    clipped = (np.abs(rgb) >= 1.0 - 1e-6).any(axis=-1)  # where a channel clipped, the luminance may move
    np.testing.assert_allclose(luma[~clipped], grey.numpy()[..., 0][~clipped], atol=2e-5)
    # An RGB input is reduced to its luminance first: the same output as its grey version.
    colour = tf.constant(_images(5, 1, channels=3)[None][0] / 127.5 - 1.0, tf.float32)
    y = tf.image.rgb_to_yuv(colour / 2 + 0.5)[..., :1] * 2 - 1
    np.testing.assert_allclose(model.translate(colour).numpy(), model.translate(y).numpy(), atol=1e-6)
    out = trainer.train_step(iter(source.pipeline(2, 0)))
    assert np.isfinite(float(out["g_l1_loss"]))


def test_eval_of_a_cyclegan_run_with_a_domain_classifier(cycle_runs, tmp_path):
    """FID of translated vs real images next to real A vs real B, and the share the classifier puts in the target domain."""
    from gantrain.config import validate as validate_cfg
    from gantrain.extractors.classifier import load_classifier, train_classifier

    root, full, _ = cycle_runs
    data = validate_cfg({"model": {"family": "dcgan"}, "data": {"loader": "image_folder", "root": str(root), "classes": ["A", "B"],
                                                                 "image_size": 16, "holdout": 0.2}})["data"]
    stem = tmp_path / "ab"
    train_classifier(data, stem, epochs=1, seed=0, batch_size=4, augment=("flip", "translation"))
    assert load_classifier(stem)[1]["augment"] == ["flip", "translation"]
    bad = CliRunner().invoke(app, ["classifier", "train", str(full / "config.yaml"), "--augment", "flip,rotate", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "rotate" in bad.output and not (tmp_path / "bad.json").exists()
    result = CliRunner().invoke(app, ["eval", str(full), "--extractor", "classifier", "--weights", str(stem)])
    assert result.exit_code == 0, result.output
    by = {r["metric"]: r for r in json.loads((full / "eval.json").read_text())["results"]}
    assert {"fid_fake_b", "fid_fake_a", "to_b", "to_a"} <= set(by)
    # The share by hand: the classifier's argmax on G_AB(held-out A) against class "B".
    from gantrain.data import load_dataset
    from gantrain.translate import Translator

    forward = Translator(full, "a2b")
    held = load_dataset(forward.cfg["data"], split="test")
    a = held.examples(np.arange(len(held.domain_a)), np.zeros(0, int))["domain_a"]
    classifier, meta, _ = load_classifier(stem)
    logits = classifier(forward.model.translate(a, "a2b"), training=False)[0].numpy()
    assert by["to_b"]["value"] == pytest.approx(float((logits.argmax(axis=1) == meta["class_names"].index("B")).mean()))
    assert by["fid_fake_b"]["real_a_vs_real_b_fid"] >= 0
