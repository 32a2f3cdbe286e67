"""tf.distribute: a mirrored step equals the single-device step for the same global batch, a
mirrored run resumes under the default strategy, two local worker processes train and checkpoint
once, and distribution mistakes are one-line errors.

Multi-device runs need logical devices or collectives configured before TensorFlow starts, so
they run in subprocesses.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml

from conftest import tiny_config
from gantrain.errors import UserError
from gantrain.run import fit

SCRIPTS = Path(__file__).parent / "scripts"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _gantrain(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gantrain", *map(str, args)], env=env or ENV, capture_output=True, text=True, timeout=timeout)


def _write(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def _weights(run: Path) -> dict:
    """Every network and optimizer tensor of a run's latest checkpoint, by checkpoint key."""
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run / "checkpoints")))
    keys = [k for k in reader.get_variable_to_shape_map() if k.split("/")[0] in ("generator", "discriminator", "g_optimizer", "d_optimizer")]
    return {k: reader.get_tensor(k) for k in keys}


def _max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64)))) for k in a if np.asarray(a[k]).dtype.kind == "f")


def _distributed_config(mnist_dir: Path, **distribute) -> dict:
    cfg = tiny_config(mnist_dir)
    cfg["model"]["dropout"] = 0.0  # dropout masks are drawn per replica: the only non-equivalent part of the step
    cfg["distribute"] = distribute
    return cfg


@pytest.mark.parametrize("case", ["dcgan", "wgan_gp", "wgan_clip", "cdcgan"])
def test_mirrored_step_equals_single_device_step(mnist_dir, case):
    """Two logical CPUs, global batch 8 split 4 + 4: weights after two steps match one device.

    One process per case: two MirroredStrategy objects in one process share collective keys.
    """
    out = subprocess.run([sys.executable, str(SCRIPTS / "mirrored_step.py"), str(mnist_dir), case], env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    (r,) = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert r["replicas"] == 2
    for net in ("generator", "discriminator", "ema_generator"):
        if net in r:
            # The step really moved the weights, and both strategies moved them to the same place.
            assert r[f"{net}_moved"] > 1e-3, (net, r)
            assert r[net] < 1e-4, (net, r)
    for key, (single, mirrored) in r["losses"].items():
        assert mirrored == pytest.approx(single, rel=1e-4, abs=1e-5), key


def test_mirrored_fit_resumes_under_the_default_strategy(tmp_path, mnist_dir):
    cfg = _distributed_config(mnist_dir, strategy="mirrored", devices=["/cpu:0", "/cpu:1"])
    run = tmp_path / "mirrored"
    out = _gantrain("fit", _write(tmp_path / "m.yaml", cfg), "--run-dir", run, "--quiet")
    assert out.returncode == 0, out.stderr[-3000:]
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-6")
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3
    # Checkpoints hold plain variables: a default-strategy process continues the mirrored run.
    fit(None, ["distribute.strategy=default", "distribute.devices=null", "train.steps=9"], resume=run, progress=False)
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-9")
    sample = _gantrain("sample", run, "--n", "4", "--out", tmp_path / "s.png")
    assert sample.returncode == 0, sample.stderr[-2000:]


def test_mirrored_batch_must_split_over_replicas(tmp_path, mnist_dir):
    cfg = _distributed_config(mnist_dir, strategy="mirrored", devices=["/cpu:0", "/cpu:1"])
    cfg["data"]["batch_size"] = 15
    out = _gantrain("fit", _write(tmp_path / "odd.yaml", cfg), "--run-dir", tmp_path / "odd", "--quiet")
    assert out.returncode == 2
    assert "data.batch_size: 15 is the global batch and must split evenly over the 2 replicas" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "odd").exists()


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_local_workers_train_and_checkpoint_once(tmp_path, mnist_dir):
    """Two worker processes on loopback (TF_CONFIG), one replica each: the chief writes the run, the
    other worker leaves nothing behind, and the weights equal a single-process run's."""
    cfg = _distributed_config(mnist_dir, strategy="multi_worker_mirrored")
    cfg["train"]["steps"] = 4
    cfg["log"].update(every=2, sample_every=4, checkpoint_every=4)
    config = _write(tmp_path / "mw.yaml", cfg)
    cluster = [f"localhost:{p}" for p in _free_ports(2)]
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})
        env = {**ENV, "TF_CONFIG": tf_config, "TMPDIR": str(scratch)}
        workers.append(subprocess.Popen([sys.executable, "-m", "gantrain", "fit", str(config), "--run-dir", str(tmp_path / "mw"), "--quiet"],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        results = [w.communicate(timeout=300) for w in workers]
    finally:
        for w in workers:
            w.kill()
    for w, (_, err) in zip(workers, results):
        assert w.returncode == 0, err[-3000:]
    run = tmp_path / "mw"
    assert sorted(p.name for p in (run / "checkpoints").glob("ckpt-*.index")) == ["ckpt-4.index"]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]  # logged once, by the chief
    assert list(scratch.iterdir()) == []  # the other worker's scratch folder is gone

    single = fit(_write(tmp_path / "single.yaml", {**cfg, "distribute": {"strategy": "default"}}), run_dir=tmp_path / "single", progress=False)
    assert _max_difference(_weights(run), _weights(single)) < 1e-4


@pytest.mark.parametrize("distribute, needle", [
    ({"strategy": "default", "devices": ["/gpu:0"]}, "distribute.devices: only the mirrored strategy takes a device list"),
    ({"strategy": "mirrored", "tpu": "grpc://10.0.0.2:8470"}, "distribute.tpu: a TPU address needs distribute.strategy: tpu"),
    ({"strategy": "multi_worker_mirrored"}, "needs the TF_CONFIG environment variable on every worker"),
    ({"strategy": "tpu"}, "distribute.strategy tpu: no TPU found"),
    ({"strategy": "mirroring"}, "distribute.strategy: 'mirroring' is not one of default, mirrored, multi_worker_mirrored, tpu"),
])
def test_distribution_mistakes_are_user_errors(tmp_path, mnist_dir, distribute, needle, monkeypatch):
    # In-process: every one of these is refused before TensorFlow state is touched (the CLI turns a
    # UserError into one line and exit code 2, tested for all user errors in test_reliability).
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(UserError, match=re.escape(needle)):
        fit(_distributed_config(mnist_dir, **distribute), run_dir=tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()
