"""SRResNet and SRGAN through fit, eval and upscale: losses against hand computations, init_from,
the SR evaluation protocol recomputed by hand, tiled upscaling, and the user errors (exit 2, one
line). Tiny networks on 16x16 images the tests write."""

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
from gantrain.data.sr_pairs import bicubic_downscale, bicubic_upscale
from gantrain.losses import get_loss
from gantrain.rundir import build_model, family_source, init_from
from gantrain.trainer import Trainer, TrainOptions

TINY = {"width": 4, "blocks": 1, "scale": 2}
LOG = {"every": 1, "sample_every": 2, "checkpoint_every": 2, "num_samples": 4}


def _folder(tmp_path, n=10, size=16, mode="RGB"):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        # Smooth images (a few random blobs) so a 2-step model is not just fitting noise.
        base = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((size, size), Image.BICUBIC).convert(mode)
        img.save(folder / f"p{i}.png")
    return folder


def _cfg(folder, family="srresnet", steps=2, **model):
    return {"model": {"family": family, **TINY, **model},
            "data": {"loader": "image_folder", "root": str(folder), "image_size": 16, "holdout": 0.2, "hr_size": 8, "batch_size": 2},
            "train": {"steps": steps}, "log": LOG}


@pytest.fixture(scope="module")
def sr_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sr")
    folder = _folder(tmp)
    run = gantrain.fit(_cfg(folder), run_dir=tmp / "run", progress=False)
    return folder, run


def test_srresnet_trains_on_pixel_mse_and_writes_lr_bicubic_sr_hr_grids(sr_run):
    folder, run = sr_run
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "g_loss" in rows[0] and "d_loss" not in rows[0]
    grid = np.asarray(Image.open(run / "samples" / "step_000002.png"))
    # 2 held-out images (0.2 of 10), each a row of 4 tiles of 16x16 (LR nearest | bicubic | SR | HR).
    assert grid.shape[0] < grid.shape[1]


def test_srresnet_loss_is_pixel_mse_of_g_of_the_batch(tmp_path):
    folder = _folder(tmp_path)
    cfg = validate(_cfg(folder))
    source = family_source(cfg)
    model = build_model(cfg, source.image_shape, 0)
    trainer = Trainer(model, {"generator": keras.optimizers.SGD(0.0)}, get_loss("non_saturating"), 2, 0, options=TrainOptions.from_config(cfg))
    batch = next(iter(source.pipeline(2, 0)))
    out = trainer.update("generator", batch, {}, tf.constant([1, 2], tf.int64))
    sr = model.generator(batch["lr"], training=True).numpy()
    assert float(out["g_loss"]) == pytest.approx(float(np.mean((sr - batch["hr"].numpy()) ** 2)), rel=1e-5)
    assert np.array_equal(batch["lr"].numpy(), bicubic_downscale(batch["hr"], 2).numpy())


def test_srgan_losses_by_hand(tmp_path):
    """Ledig et al.: G = content + 1e-3 x -log D(G(LR)); D = BCE(D(HR), 1) + BCE(D(G(LR)), 0)."""
    folder = _folder(tmp_path)
    cfg = validate({**_cfg(folder, "srgan", d_width=2, d_dense=4), "loss": {"content": "pixel_l1"}, "train": {"update": "alternating", "steps": 1}})
    source = family_source(cfg)
    model = build_model(cfg, source.image_shape, 0)
    opts = {g.name: keras.optimizers.SGD(0.0) for g in model.groups}
    trainer = Trainer(model, opts, get_loss("non_saturating"), 2, 0, options=TrainOptions.from_config(cfg))
    batch = next(iter(source.pipeline(2, 0)))
    lr, hr = batch["lr"], batch["hr"].numpy()
    sr = model.generator(lr, training=True)
    fake = model.discriminator(sr, training=True).numpy()
    real = model.discriminator(hr, training=True).numpy()

    def softplus(x):
        return np.log1p(np.exp(x))

    g = trainer.update("generator", batch, {}, tf.constant([1, 2], tf.int64))
    assert float(g["g_content_loss"]) == pytest.approx(float(np.mean(np.abs(sr.numpy() - hr))), rel=1e-5)
    assert float(g["g_adv_loss"]) == pytest.approx(1e-3 * float(np.mean(softplus(-fake))), rel=1e-4)
    d = trainer.update("discriminator", batch, {}, tf.constant([1, 2], tf.int64))
    assert float(d["d_loss"]) == pytest.approx(float(np.mean(softplus(-real)) + np.mean(softplus(fake))), rel=1e-4)


def test_init_from_loads_the_generator_and_refuses_mismatches(sr_run, tmp_path):
    folder, run = sr_run
    cfg = validate(_cfg(folder, "srgan", d_width=2, d_dense=4))
    model = build_model(cfg, (8, 8, 3), 0)
    message = init_from(model, run)
    assert "generator <- generator" in message
    from gantrain.translate import Translator

    trained = Translator(run).model.generator.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(model.generator.get_weights(), trained))
    # Through fit: a wider generator does not fit the checkpoint: exit 2, one line, nothing trained.
    wide = _cfg(folder, "srgan", steps=1, d_width=2, d_dense=4, width=8, init_from=str(run))
    import yaml

    path = tmp_path / "wide.yaml"
    path.write_text(yaml.safe_dump(wide))
    result = CliRunner().invoke(app, ["fit", str(path), "--run-dir", str(tmp_path / "wide")])
    assert result.exit_code == 2 and "init_from" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "wide" / "checkpoints").exists()


def test_eval_scores_psnr_and_ssim_on_y_against_bicubic_by_hand(sr_run):
    _, run = sr_run
    result = CliRunner().invoke(app, ["eval", str(run)])
    assert result.exit_code == 0, result.output
    by = {r["metric"]: r for r in json.loads((run / "eval.json").read_text())["results"]}
    assert set(by) == {"psnr", "ssim"} and by["psnr"]["images"] == 2
    from gantrain.metrics.similarity import sr_psnr, sr_ssim
    from gantrain.translate import Translator

    t = Translator(run)
    held = family_source(t.cfg, "test").examples(np.arange(2))
    hr = held["hr"]
    lr = bicubic_downscale(tf.constant(hr), 2)
    sr = np.clip(t.model.translate(lr).numpy(), -1, 1)
    assert by["psnr"]["value"] == pytest.approx(float(sr_psnr(sr, hr, 2).mean()), rel=1e-6)
    assert by["ssim"]["value"] == pytest.approx(float(sr_ssim(sr, hr, 2).mean()), rel=1e-6)
    assert by["psnr"]["bicubic_value"] == pytest.approx(float(sr_psnr(bicubic_upscale(lr, 2).numpy(), hr, 2).mean()), abs=1e-4)


def test_upscale_a_folder_and_a_large_image_in_tiles(sr_run, tmp_path):
    _, run = sr_run
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (20, 12, 3), dtype=np.uint8)).save(src / "a.png")
    Image.fromarray(rng.integers(0, 256, (9, 30), dtype=np.uint8), "L").save(src / "b.png")
    result = CliRunner().invoke(app, ["upscale", str(run), str(src), "--out", str(tmp_path / "out"), "--tile", "16", "--overlap", "4"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "a.png").size == (24, 40) and Image.open(tmp_path / "out" / "b.png").size == (60, 18)
    # A small image is one tile: the written file is the generator's output on the whole image.
    from gantrain.data.source import to_uint8
    from gantrain.translate import Translator, read_image

    whole = Translator(run).model.translate(read_image(src / "a.png", 3)[None]).numpy()[0]
    single = CliRunner().invoke(app, ["upscale", str(run), str(src / "a.png"), "--out", str(tmp_path / "one.png")])
    assert single.exit_code == 0, single.output
    assert np.abs(np.asarray(Image.open(tmp_path / "one.png"), int) - to_uint8(np.clip(whole, -1, 1)).astype(int)).max() <= 1
    # `translate` on a super-resolution run upscales the whole image too (it once cropped the output to the input's size).
    translated = CliRunner().invoke(app, ["translate", str(run), str(src / "a.png"), "--out", str(tmp_path / "t.png")])
    assert translated.exit_code == 0, translated.output
    assert Image.open(tmp_path / "t.png").size == (24, 40)


@pytest.mark.parametrize("change, needle", [
    ({"data": {"hr_size": 7}}, "multiple of model.scale"),
    ({"data": {"hr_size": 32}}, "larger than"),
    ({"loss": {"content": "features"}}, "content_weights"),
    ({"loss": {"content": "features", "content_weights": "/nonexistent/vgg19.h5"}}, "/nonexistent/vgg19.h5"),
    ({"model": {"scale": 5}}, "model.scale"),
    ({"loss": {"content_network": "classifier"}}, "loss.content is pixel_mse"),
    ({"train": {"d_steps": 2}}, "no discriminator"),
])
def test_sr_mistakes_exit_2_with_one_line(sr_run, tmp_path, change, needle):
    import yaml

    folder, _ = sr_run
    cfg = _cfg(folder, steps=1)
    for section, values in change.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["fit", str(path), "--run-dir", str(tmp_path / "bad")])
    assert result.exit_code == 2, result.output
    assert needle in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_a_feature_network_that_cannot_take_the_images_exits_2_before_anything_is_deleted(sr_run, tmp_path):
    """RGB images against a one-channel classifier: one line, exit 2, and --overwrite has not cleared the old run."""
    import shutil

    import yaml

    from gantrain.extractors.classifier import SHIPPED

    folder, run = sr_run
    keep = tmp_path / "keep"
    shutil.copytree(run, keep)
    cfg = _cfg(folder, steps=1)
    cfg["loss"] = {"content": "features", "content_network": "classifier", "content_weights": str(SHIPPED / "mnist_classifier")}
    path = tmp_path / "grey_net.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["fit", str(path), "--run-dir", str(keep), "--overwrite"])
    assert result.exit_code == 2 and "1-channel" in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert sorted(p.name for p in (keep / "checkpoints").iterdir()) == sorted(p.name for p in (run / "checkpoints").iterdir())


def test_upscale_and_hr_folder_mistakes(sr_run, tmp_path):
    _, run = sr_run
    bad_tile = CliRunner().invoke(app, ["upscale", str(run), str(run), "--out", str(tmp_path / "o"), "--tile", "16", "--overlap", "8"])
    assert bad_tile.exit_code == 2 and "twice the overlap" in bad_tile.output
    empty = tmp_path / "empty"
    empty.mkdir()
    no_images = CliRunner().invoke(app, ["eval", str(run), "--hr-folder", str(empty)])
    assert no_images.exit_code == 2 and "no images" in no_images.output
    # A folder of HR images of any size (cropped to multiples of the scale) is scored like the held-out split.
    assert CliRunner().invoke(app, ["eval", str(run)]).exit_code == 0  # the run's own eval.json, which --hr-folder must not replace
    hr = tmp_path / "hr"
    hr.mkdir()
    rng = np.random.default_rng(9)
    Image.fromarray(rng.integers(0, 256, (21, 17, 3), dtype=np.uint8)).save(hr / "a.png")
    Image.fromarray(rng.integers(0, 256, (16, 30), dtype=np.uint8), "L").save(hr / "b.png")
    scored = CliRunner().invoke(app, ["eval", str(run), "--hr-folder", str(hr), "--json", str(tmp_path / "r.json")])
    assert scored.exit_code == 0, scored.output
    by = {r["metric"]: r for r in json.loads((tmp_path / "r.json").read_text())["results"]}
    assert by["psnr"]["images"] == 2 and "cropped to multiples of 2" in by["psnr"]["real_split"]
    assert json.loads((run / "eval.json").read_text())["results"][0].get("real_split", "").startswith("held-out")  # not replaced by the folder's
    assert CliRunner().invoke(app, ["eval", str(run), "--fid"]).exit_code == 2


def test_real_lr_folders_train_and_check_the_scale(tmp_path):
    rng = np.random.default_rng(5)
    hr_dir, lr_dir = tmp_path / "hr", tmp_path / "lr"
    hr_dir.mkdir(), lr_dir.mkdir()
    for i, (h, w) in enumerate([(16, 16), (20, 12), (18, 14)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(hr_dir / f"x{i}.png")
        Image.fromarray(rng.integers(0, 256, (h // 2, w // 2, 3), dtype=np.uint8)).save(lr_dir / f"x{i}.jpg")
    test_hr, test_lr = tmp_path / "test_hr", tmp_path / "test_lr"
    test_hr.mkdir(), test_lr.mkdir()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(test_hr / "t.png")
    small = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(small).save(test_lr / "t.png")
    cfg = {"model": {"family": "srresnet", **TINY}, "data": {"loader": "sr_folders", "hr_dir": str(hr_dir), "lr_dir": str(lr_dir), "hr_size": 8, "batch_size": 2,
                                                             "test_hr_dir": str(test_hr), "test_lr_dir": str(test_lr)},
           "train": {"steps": 1}, "log": LOG}
    run = gantrain.fit(cfg, run_dir=tmp_path / "run", progress=False)
    assert (run / "checkpoints").is_dir()
    # eval scores the model on the real LR test image, not on a bicubic downscale of its HR image.
    from gantrain.metrics.similarity import sr_psnr
    from gantrain.translate import Translator

    result = CliRunner().invoke(app, ["eval", str(run)])
    assert result.exit_code == 0, result.output
    by = {r["metric"]: r for r in json.loads((run / "eval.json").read_text())["results"]}
    assert "real LR" in by["psnr"]["lr_input"]
    hr = np.asarray(Image.open(test_hr / "t.png"), np.float32)[None] / 127.5 - 1
    sr = np.clip(Translator(run).model.translate(small[None].astype(np.float32) / 127.5 - 1).numpy(), -1, 1)
    assert by["psnr"]["value"] == pytest.approx(float(sr_psnr(sr, hr, 2)[0]), rel=1e-6)
    with pytest.raises(gantrain.errors.UserError, match="set model.scale: 2"):
        gantrain.fit({**cfg, "model": {**cfg["model"], "scale": 4}}, run_dir=tmp_path / "run4", progress=False)
