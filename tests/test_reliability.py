"""Never lose a run: kills, signals, NaNs, full disks, determinism, and one clear line for every mistake."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml
from typer.testing import CliRunner

import gantrain
from gantrain.cli import app
from gantrain.errors import TrainingStopped
from tests.conftest import tiny_config

runner = CliRunner()


def _write(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def _start(args, env_extra=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "gantrain", "fit", *map(str, args), "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _published(run: Path):
    """(latest checkpoint step from the index file, set of ckpt-N.index files on disk)."""
    latest = tf.train.latest_checkpoint(str(run / "checkpoints"))
    steps = {int(p.name[5:-6]) for p in (run / "checkpoints").glob("ckpt-*.index")}
    return (int(Path(latest).name[5:]) if latest else None), steps


def _assert_loads(run: Path) -> int:
    """The published checkpoint restores into fresh networks; returns its step."""
    model, _, step = __import__("gantrain.sampling", fromlist=["load_model"]).load_model(run)
    assert np.all(np.isfinite(model.generator(model.sample_latent(tf.random.Generator.from_seed(0), 2)["z"], training=False)))
    return step


def test_sigkill_at_random_moments_never_loses_the_run(tmp_path, mnist_dir):
    cfg = tiny_config(mnist_dir)
    cfg["train"]["steps"] = 400
    cfg["log"] = {"every": 5, "sample_every": 50, "checkpoint_every": 5, "keep_checkpoints": 3, "num_samples": 4}
    config = _write(tmp_path / "c.yaml", cfg)
    run = tmp_path / "run"
    # Stretch each save between writing the data and publishing it in the index, so kills land mid-save.
    fault = {"GANTRAIN_FAULT_CHECKPOINT_DELAY": "0.2"}
    rng = random.Random(7)
    last_step, mid_save_kills = 0, 0
    for attempt in range(4):
        args = [config, "--run-dir", run] if attempt == 0 else ["--resume", run]
        proc = _start(args, fault)
        if attempt == 1:
            # Wait for a checkpoint whose files exist but which the index does not name yet: kill then.
            deadline = time.time() + 120
            while time.time() < deadline:
                latest, on_disk = _published(run)
                if on_disk and max(on_disk) > (latest or 0):
                    break
                time.sleep(0.01)
            mid_save_kills += 1
        else:
            # Random moment after start-up (start-up itself takes a few seconds).
            deadline = time.time() + 120
            while time.time() < deadline and _published(run)[0] in (None, last_step or None):
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        step = _assert_loads(run)
        assert step >= last_step, (attempt, step, last_step)  # the step only moves forward
        last_step = step
    assert mid_save_kills == 1
    proc = _start(["--resume", run])
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert _assert_loads(run) == 400
    rows = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines() if "d_loss" in line]
    assert rows == sorted(set(rows))  # no duplicated or out-of-order log lines after the resumes


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_save_and_explain(tmp_path, mnist_dir, sig, code):
    cfg = tiny_config(mnist_dir)
    cfg["train"]["steps"] = 100000
    cfg["log"]["checkpoint_every"] = 100000
    config = _write(tmp_path / "c.yaml", cfg)
    run = tmp_path / "run"
    proc = _start([config, "--run-dir", run])
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "metrics.jsonl").is_file():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"gantrain fit --resume {run}" in err and "checkpoint saved" in err
    step = _assert_loads(run)
    assert step > 0


def test_nan_stops_with_the_step_and_keeps_the_good_checkpoint(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("GANTRAIN_FAULT_NAN_STEP", "5")
    cfg = tiny_config(mnist_dir)
    cfg["log"] = {"every": 1, "sample_every": 100, "checkpoint_every": 2, "num_samples": 4}
    with pytest.raises(TrainingStopped, match=r"step 5: d_loss is nan .*ckpt-4"):
        gantrain.fit(cfg, run_dir=tmp_path / "stop", progress=False)
    latest, on_disk = _published(tmp_path / "stop")
    assert latest == 4 and max(on_disk) == 4  # nothing written from the poisoned weights
    result = runner.invoke(app, ["fit", "--resume", str(tmp_path / "stop")])  # the CLI prints one line, exit 3
    assert "Traceback" not in result.output


def test_nan_rollback_reloads_and_lowers_the_learning_rate(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("GANTRAIN_FAULT_NAN_STEP", "5")
    cfg = tiny_config(mnist_dir)
    cfg["train"].update(on_nan="rollback", nan_lr_factor=0.5)
    cfg["log"] = {"every": 1, "sample_every": 100, "checkpoint_every": 2, "num_samples": 4}
    run = gantrain.fit(cfg, run_dir=tmp_path / "rb", progress=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[3]["lr_d"] == pytest.approx(2e-4) and rows[4]["lr_d"] == pytest.approx(1e-4)
    assert all(np.isfinite(r["d_loss"]) for r in rows)
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run / "checkpoints")))
    key = next(n for n, _ in tf.train.list_variables(tf.train.latest_checkpoint(str(run / "checkpoints"))) if n.startswith("lr_scale/"))
    assert reader.get_tensor(key) == pytest.approx(0.5)


def _poison_weights_after_step(monkeypatch, at: int):
    """After the call that reaches step ``at``, a D weight becomes NaN while the losses it returned are finite
    (as after an infinite gradient step)."""
    import gantrain.run

    class Poisoning(gantrain.run.Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            compiled, done = self.train_steps, {"steps": 0, "poisoned": False}

            def train_steps(iterator, k, *rest):
                out = compiled(iterator, k, *rest)
                done["steps"] = int(self.optimizers["discriminator"].iterations.numpy())
                if done["steps"] >= at and not done["poisoned"]:
                    done["poisoned"] = True
                    var = self.model.discriminator.trainable_variables[0]
                    var.assign(tf.fill(var.shape, float("nan")))
                return out

            self.train_steps = train_steps

    monkeypatch.setattr(gantrain.run, "Trainer", Poisoning)


def test_rollback_also_covers_finite_losses_with_non_finite_weights(tmp_path, mnist_dir, monkeypatch):
    """Review item 9: with on_nan: rollback, NaN weights found at save time used to stop the run."""
    _poison_weights_after_step(monkeypatch, 4)
    cfg = tiny_config(mnist_dir, steps_per_call=1)
    cfg["train"].update(on_nan="rollback", nan_lr_factor=0.5)
    cfg["log"] = {"every": 1, "sample_every": 100, "checkpoint_every": 2, "num_samples": 4}
    run = gantrain.fit(cfg, run_dir=tmp_path / "rb", progress=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # steps 3-4 rolled back to ckpt-2 and retrained
    assert rows[1]["lr_d"] == pytest.approx(2e-4) and rows[2]["lr_d"] == pytest.approx(1e-4)
    latest, on_disk = _published(run)
    assert latest == 6 and _assert_loads(run) == 6


def test_rollback_when_an_evaluation_is_the_first_to_see_non_finite_weights(tmp_path, mnist_dir, monkeypatch):
    """Found in review: with eval.every off the checkpoint cadence, the evaluation (and its best-checkpoint save)
    met the NaN weights first and stopped the run."""
    _poison_weights_after_step(monkeypatch, 6)
    monkeypatch.setenv("GANTRAIN_CACHE", str(tmp_path / "cache"))
    cfg = tiny_config(mnist_dir, steps=8, steps_per_call=1, on_nan="rollback")
    cfg["log"] = {"every": 1, "sample_every": 100, "checkpoint_every": 4, "num_samples": 4}
    cfg["eval"] = {"metrics": ["fid"], "every": 3, "n": 100}
    run = gantrain.fit(cfg, run_dir=tmp_path / "ev", progress=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "d_loss" in r] == [1, 2, 3, 4, 5, 6, 7, 8]  # 5-6 rolled back to ckpt-4, retrained
    assert [r["step"] for r in rows if "eval/fid" in r] == [3, 6, 8] and all(np.isfinite(r["eval/fid"]) for r in rows if "eval/fid" in r)
    assert _published(run)[0] == 8


def test_stop_policy_names_non_finite_weights(tmp_path, mnist_dir, monkeypatch):
    _poison_weights_after_step(monkeypatch, 4)
    cfg = tiny_config(mnist_dir, steps_per_call=1)
    cfg["log"] = {"every": 1, "sample_every": 100, "checkpoint_every": 2, "num_samples": 4}
    with pytest.raises(TrainingStopped, match=r"step 4: a weight is nan .*ckpt-2"):
        gantrain.fit(cfg, run_dir=tmp_path / "stop", progress=False)
    assert _published(tmp_path / "stop")[0] == 2


def test_full_disk_stops_cleanly_and_keeps_earlier_checkpoints(tmp_path, mnist_dir, monkeypatch):
    real_save = tf.train.CheckpointManager.save
    calls = {"n": 0}

    def flaky_save(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", flaky_save)
    with pytest.raises(TrainingStopped, match="No space left on device.*earlier checkpoints are intact.*ckpt-3"):
        gantrain.fit(tiny_config(mnist_dir), run_dir=tmp_path / "full", progress=False)
    assert _published(tmp_path / "full")[0] == 3
    monkeypatch.setattr(tf.train.CheckpointManager, "save", real_save)
    assert _assert_loads(tmp_path / "full") == 3


def test_determinism_two_runs_identical(tmp_path, mnist_dir):
    cfg = tiny_config(mnist_dir, deterministic=True)
    cfg["log"]["every"] = 1
    a = gantrain.fit(cfg, run_dir=tmp_path / "a", progress=False)
    b = gantrain.fit(cfg, run_dir=tmp_path / "b", progress=False)
    strip = lambda run: [{k: v for k, v in json.loads(line).items() if k not in ("images_per_sec", "time")} for line in (run / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert strip(a) == strip(b)
    ra, rb = (tf.train.load_checkpoint(tf.train.latest_checkpoint(str(r / "checkpoints"))) for r in (a, b))
    names = [n for n, _ in tf.train.list_variables(tf.train.latest_checkpoint(str(a / "checkpoints"))) if "OBJECT_GRAPH" not in n]
    assert all(np.array_equal(ra.get_tensor(n), rb.get_tensor(n)) for n in names)


# ------------------------------------------------------------------------------------------------
# One clear line for every mistake: exit code 2, the offending key or file named, no traceback.
# ------------------------------------------------------------------------------------------------
GOOD = "model:\n  family: dcgan\ndata:\n  loader: mnist\n  root: {mnist}\n  batch_size: 8\ntrain:\n  steps: 1\n"

CONFIG_CASES = [
    ("empty", "", "empty"),
    ("comment-only", "# nothing\n", "empty"),
    ("list-document", "- a\n- b\n", "expected a mapping"),
    ("scalar-document", "42\n", "expected a mapping"),
    ("yaml-syntax", "model:\n  family: [dcgan\n", ":3:1: YAML syntax error"),
    ("tab-indent", "model:\n\tfamily: dcgan\n", "YAML syntax error"),
    ("unknown-top", GOOD + "trian: {}\n", "trian: unknown key (did you mean 'train'?)"),
    ("unknown-nested", GOOD.replace("steps: 1", "stepz: 1"), "train.stepz: unknown key (did you mean 'steps'?)"),
    ("unknown-model-key", GOOD.replace("family: dcgan", "family: dcgan\n  g_width: [8]"), "model.g_width: unknown key (did you mean 'g_widths'?)"),
    ("unknown-optimizer-key", GOOD + "optimizer:\n  generator: {learning_rat: 0.1}\n", "optimizer.generator.learning_rat"),
    ("wrong-type-int", GOOD.replace("steps: 1", "steps: many"), "train.steps: expected an integer"),
    ("float-for-int", GOOD.replace("steps: 1", "steps: 1.5"), "train.steps: expected an integer"),
    ("int-for-bool", GOOD + "  jit_compile: 1\n", "train.jit_compile: expected true or false"),
    ("list-for-number", GOOD + "optimizer:\n  generator: {learning_rate: [1]}\n", "optimizer.generator.learning_rate: expected a number"),
    ("zero-batch", GOOD.replace("batch_size: 8", "batch_size: 0"), "data.batch_size: must be >= 1"),
    ("negative-batch", GOOD.replace("batch_size: 8", "batch_size: -4"), "data.batch_size: must be >= 1"),
    ("zero-steps", GOOD.replace("steps: 1", "steps: 0"), "train.steps: must be >= 1"),
    ("negative-lr", GOOD + "optimizer:\n  generator: {learning_rate: -0.1}\n", "optimizer.generator.learning_rate: must be > 0"),
    ("nan-lr", GOOD + "optimizer:\n  generator: {learning_rate: .nan}\n", "expected a finite number"),
    ("beta-out-of-range", GOOD + "optimizer:\n  generator: {beta_1: 1.5}\n", "optimizer.generator.beta_1: must be <="),
    ("d-steps-range", GOOD.replace("steps: 1", "steps: 1\n  d_steps: 0"), "train.d_steps: must be >= 1"),
    ("unknown-family", GOOD.replace("family: dcgan", "family: dcgn"), "unknown model family 'dcgn' (did you mean 'dcgan'?)"),
    ("unknown-loader", GOOD.replace("loader: mnist", "loader: mnsit"), "unknown dataset 'mnsit'"),
    ("unknown-loss", GOOD + "loss: {name: wasserstien}\n", "unknown loss 'wasserstien'"),
    ("unknown-optimizer", GOOD + "optimizer:\n  generator: {name: adamw}\n", "unknown optimizer 'adamw'"),
    ("missing-family", "model: {}\ndata: {loader: mnist}\n", "model.family: required"),
    ("misspelt-family", "model: {famly: gan}\ndata: {loader: mnist}\n", "model.famly: unknown key (did you mean 'family'?); model.family is required"),
    ("image-size-impossible", "model: {family: dcgan}\ndata: {loader: image_folder, root: /tmp, image_size: 30}\n", "cannot produce 30x30x3"),
    ("image-size-non-square", "model: {family: dcgan}\ndata: {loader: image_folder, root: /tmp, image_size: [32, 48]}\n", "square"),
    ("channels", "model: {family: gan}\ndata: {loader: image_folder, root: /tmp, channels: 2}\n", "data.channels: 2 is not one of 1, 3"),
    ("clip-with-sigmoid", GOOD + "optimizer:\n  discriminator: {clip_value: 0.01}\n", "clipping only cripples it"),
    ("python-tag", "!!python/object/apply:os.system ['echo pwned']\n", "YAML syntax error"),
    ("recursive-alias", GOOD + "eval: &e {metrics: *e}\n", "eval.metrics"),
    # Data a config names must exist: validate checks it too (review item 14), not only fit.
    ("missing-data-root", GOOD.replace("{mnist}", "/nonexistent/mnist"), "data.root: /nonexistent/mnist is not a folder"),
    ("data-root-without-idx", GOOD.replace("{mnist}", "/tmp"), "train-images-idx3-ubyte.gz not found"),
    ("empty-image-folder", "model: {family: gan}\ndata: {loader: image_folder, root: /proc/self/fdinfo, image_size: 28}\n", "data.root: no images in"),
]
DATA_PATH_CASES = ("missing-data-root", "data-root-without-idx", "empty-image-folder")  # the loader's message names the folder


@pytest.mark.parametrize("name, text, needle", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_one_line(tmp_path, mnist_dir, name, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("{mnist}", str(mnist_dir)))
    for command in (["validate", str(path)], ["fit", str(path), "--run-dir", str(tmp_path / "r")]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        assert "Traceback" not in result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output
        assert needle in lines[0], lines[0]
        if name not in ("python-tag", "yaml-syntax", "tab-indent", *DATA_PATH_CASES):
            assert "bad.yaml" in lines[0] or "--set" in lines[0] or "config" in lines[0]
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
    RAN.append(("config", name))


SET_CASES = [
    (["--set", "=5"], "expected KEY.PATH=VALUE"),
    (["--set", "train.steps"], "expected KEY.PATH=VALUE"),
    (["--set", "train..steps=1"], "expected KEY.PATH=VALUE"),
    (["--set", "train.steps=[1"], "not valid YAML"),
    (["--set", "seed.x=1"], "--set seed.x=1: seed: expected an integer"),
    (["--set", "train.steps.x=1"], "train.steps is a value, not a section"),
    (["--set", "train.stepz=5"], "--set train.stepz=5: train.stepz: unknown key"),
]


@pytest.mark.parametrize("args, needle", SET_CASES)
def test_bad_set_one_line(tmp_path, mnist_dir, args, needle):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD.replace("{mnist}", str(mnist_dir)))
    result = runner.invoke(app, ["validate", str(path), *args])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert needle in result.output
    RAN.append(("set", " ".join(args)))


def _png(path: Path, value=128, size=(8, 8), mode="L"):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


def _gz(path: Path, raw: bytes):
    import gzip

    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(raw)


def _idx(magic: int, dims, payload: bytes) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + payload


def data_case(name: str, tmp: Path, mnist: Path):
    """Build a broken data folder; returns (--set overrides, text the message must contain)."""
    folder = tmp / name
    gan = ["--set", "model.family=gan", "--set", "data.loader=image_folder", "--set", f"data.root={folder}", "--set", "data.image_size=8", "--set", "data.channels=1"]
    if name == "missing-root":
        return gan, "not a folder"
    if name == "empty-folder":
        folder.mkdir()
        return gan, "no images"
    if name == "no-images":
        folder.mkdir()
        (folder / "notes.txt").write_text("hi")
        return gan, "no images"
    if name == "corrupt-image":
        _png(folder / "ok.png")
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
        return gan, "broken.png: cannot read image"
    if name == "truncated-image":
        _png(folder / "ok.png", size=(64, 64))
        data = (folder / "ok.png").read_bytes()
        (folder / "cut.png").write_bytes(data[: len(data) // 2])
        return gan, "cut.png: cannot read image"
    if name == "all-corrupt-skip":
        folder.mkdir()
        (folder / "a.png").write_bytes(b"nope")
        return gan + ["--set", "data.on_error=skip"], "none of the 1 image files"
    if name == "batch-larger-than-data":
        _png(folder / "a.png")
        return gan + ["--set", "data.batch_size=64"], "larger than the dataset (1 images)"
    if name == "labels-for-conditional":
        _png(folder / "a.png")
        _png(folder / "b.png")
        return gan + ["--set", "model.family=cgan", "--set", "data.batch_size=2"], "reads the data roles image, label in every step"
    mnist_dir = tmp / name
    mnist_dir.mkdir()
    files = {
        "train-images-idx3-ubyte.gz": _idx(2051, [2, 28, 28], np.random.default_rng(0).integers(0, 256, 2 * 784, dtype=np.uint8).tobytes()),
        "train-labels-idx1-ubyte.gz": _idx(2049, [2], bytes(2)),
    }
    if name == "idx-wrong-magic":
        files["train-images-idx3-ubyte.gz"] = _idx(2049, [2, 28, 28], bytes(2 * 784))
        needle = "wrong magic number"
    elif name == "idx-truncated-gz":
        import gzip

        (mnist_dir / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(files.pop("train-images-idx3-ubyte.gz"))[:200])
        needle = "train-images-idx3-ubyte.gz: cannot read IDX file"
    elif name == "idx-short-payload":
        files["train-images-idx3-ubyte.gz"] = _idx(2051, [2, 28, 28], bytes(784))
        needle = "truncated or padded"
    elif name == "idx-count-mismatch":
        files["train-labels-idx1-ubyte.gz"] = _idx(2049, [3], bytes(3))
        needle = "2 images in train-images-idx3-ubyte.gz but 3 labels"
    elif name == "idx-missing-file":
        files.pop("train-labels-idx1-ubyte.gz")
        needle = "train-labels-idx1-ubyte.gz not found"
    for fname, raw in files.items():
        _gz(mnist_dir / fname, raw)
    return ["--set", f"data.root={mnist_dir}", "--set", "data.batch_size=2"], needle


DATA_CASES = ["missing-root", "empty-folder", "no-images", "corrupt-image", "truncated-image", "all-corrupt-skip", "batch-larger-than-data",
              "labels-for-conditional", "idx-wrong-magic", "idx-truncated-gz", "idx-short-payload", "idx-count-mismatch", "idx-missing-file"]


@pytest.mark.parametrize("name", DATA_CASES)
def test_bad_data_one_line(tmp_path, mnist_dir, name):
    config = tmp_path / "good.yaml"
    config.write_text(GOOD.replace("{mnist}", str(mnist_dir)))
    overrides, needle = data_case(name, tmp_path, mnist_dir)
    result = runner.invoke(app, ["fit", str(config), "--run-dir", str(tmp_path / "run"), *overrides])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1 and needle in lines[0], result.output
    RAN.append(("data", name))


@pytest.fixture(scope="module")
def one_run(tmp_path_factory, mnist_dir):
    return gantrain.fit(tiny_config(mnist_dir), overrides=["train.steps=1"], run_dir=tmp_path_factory.mktemp("r") / "run", progress=False)


def test_run_directory_mistakes(tmp_path, one_run, mnist_dir):
    import shutil

    cases = []
    no_ckpt = tmp_path / "no_ckpt"
    no_ckpt.mkdir()
    cases.append((["sample", str(no_ckpt)], "no checkpoint found"))
    cases.append((["sample", str(tmp_path / "nowhere")], "no such run directory"))
    edited = tmp_path / "edited"
    shutil.copytree(one_run, edited)
    (edited / "config.yaml").write_text((edited / "config.yaml").read_text().replace("batch_size: 16", "batch_size: -1"))
    cases.append((["sample", str(edited)], "config.yaml:"))
    cases.append((["fit", "--resume", str(edited)], "data.batch_size: must be >= 1"))
    cases.append((["fit", "--resume", str(one_run), "--set", "model.latent_dim=9"], "model.latent_dim: 8 -> 9"))
    cases.append((["fit", "--resume", str(one_run), "--set", "seed=9"], "seed: 3 -> 9"))
    cases.append((["sample", str(one_run), "--out", str(tmp_path / "x.gif")], "unknown output type '.gif'"))
    cases.append((["fit", "--resume", str(tmp_path / "nowhere")], "no config.yaml there"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases.append((["fit", str(one_run / "config.yaml"), "--run-dir", str(afile)], "is a file, not a directory"))
    cases.append((["fit", str(one_run / "config.yaml"), "--run-dir", str(afile / "sub")], "cannot write the run directory"))
    cases.append((["fit", str(tmp_path / "missing.yaml")], "config file not found"))
    other = tmp_path / "other"
    shutil.copytree(one_run, other)
    saved = yaml.safe_load((other / "config.yaml").read_text())
    saved["model"] = {"family": "gan", "latent_dim": 8, "g_widths": [4], "d_widths": [4]}
    (other / "config.yaml").write_text(yaml.safe_dump(saved))
    cases.append((["sample", str(other)], "does not fit"))
    for args, needle in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
        assert needle in result.output, (args, result.output)
        RAN.append(("run-dir", needle))
    assert (one_run / "checkpoints" / "checkpoint").is_file()  # nothing of the original run was touched
    assert not (tmp_path / "x.gif").exists()  # an unknown suffix no longer becomes a folder


BAD_INPUT_TESTS = ("test_bad_config_one_line", "test_bad_set_one_line", "test_bad_data_one_line", "test_run_directory_mistakes")
RAN: list = []  # (kind, case) appended by each bad-input case once its assertions have passed


def test_at_least_forty_bad_input_cases_ran(request):
    """Counts the cases that actually ran and passed above (pytest runs a module's tests in file order)."""
    expected = len(CONFIG_CASES) + len(SET_CASES) + len(DATA_CASES) + 1
    selected = [item for item in request.session.items if item.module is sys.modules[__name__] and item.originalname in BAD_INPUT_TESTS]
    if len(selected) < expected:
        pytest.skip(f"only {len(selected)} of the {expected} bad-input tests were selected; run the whole module to count them")
    assert len(RAN) == len(set(RAN)) and len(RAN) >= 40, RAN


def test_overwrite_never_deletes_on_a_mistake_or_a_foreign_folder(tmp_path, mnist_dir, one_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(one_run, run)
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    config = tmp_path / "bad_data.yaml"
    config.write_text(GOOD.replace("{mnist}", str(tmp_path / "missing")))
    result = runner.invoke(app, ["fit", str(config), "--run-dir", str(run), "--overwrite"])
    assert result.exit_code == 2 and "not a folder" in result.output
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before  # the old run survived the mistake
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"x")
    good = tmp_path / "good.yaml"
    good.write_text(GOOD.replace("{mnist}", str(mnist_dir)))
    result = runner.invoke(app, ["fit", str(good), "--run-dir", str(foreign), "--overwrite"])
    assert result.exit_code == 2 and "not a gantrain run" in result.output
    assert (foreign / "holiday.jpg").is_file()
