"""One writer per run directory (review item 18): a second fit on a live run exits 2 naming the holder."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

from gantrain.errors import UserError
from gantrain.runlock import LOCK_NAME, RunLock
from tests.conftest import tiny_config


def _fit(args, **kw):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-m", "gantrain", "fit", *map(str, args), "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_two_fit_processes_on_one_run(tmp_path, mnist_dir):
    cfg = tiny_config(mnist_dir)
    cfg["train"]["steps"] = 100000  # the first process is still training when the second starts
    cfg["log"] = {"every": 50, "sample_every": 100000, "checkpoint_every": 20, "num_samples": 4}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    first = _fit([config, "--run-dir", run])
    try:
        deadline = time.time() + 120
        while not (run / "checkpoints" / "checkpoint").is_file():  # training, and past its first save
            assert first.poll() is None, first.communicate()[1][-2000:]
            assert time.time() < deadline
            time.sleep(0.5)
        holder = json.loads((run / LOCK_NAME).read_text())
        assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()

        second = _fit(["--resume", run])
        out, err = second.communicate(timeout=300)
        assert second.returncode == 2, err[-2000:]
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert f"process {first.pid} on {socket.gethostname()}" in lines[0] and "is being trained by" in lines[0]
        assert first.poll() is None  # the refusal did not disturb the run
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The holder died without releasing: its lock is stale, and the next fit takes it over.
    assert (run / LOCK_NAME).is_file()
    third = _fit(["--resume", run, "--set", "train.steps=100000", "--set", "log.checkpoint_every=1"], )
    killed_at = _latest_step(run)
    deadline = time.time() + 120
    while _latest_step(run) <= killed_at:  # training again (so its signal handler is in place)
        assert third.poll() is None and time.time() < deadline, third.stderr.read()[-2000:] if third.poll() is not None else "timeout"
        time.sleep(0.5)
    assert _lock_pid(run) == third.pid
    third.send_signal(signal.SIGINT)  # a clean stop releases the lock
    out, err = third.communicate(timeout=300)
    assert third.returncode == 130, err[-2000:]
    assert "took over the stale lock" in err and f"process {first.pid} is gone" in err
    assert not (run / LOCK_NAME).exists()


def _latest_step(run):
    text = (run / "checkpoints" / "checkpoint").read_text()
    return int(text.split('"')[1].rsplit("-", 1)[1])


def _lock_pid(run):
    try:
        return json.loads((run / LOCK_NAME).read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return None


def _write_lock(run, **owner):
    run.mkdir(exist_ok=True)
    (run / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "start": None, "since": 0, **owner}))


def test_live_lock_on_this_host_is_refused(tmp_path):
    _write_lock(tmp_path, pid=os.getppid())  # a live process that is not us
    with pytest.raises(UserError, match=f"process {os.getppid()} on"):
        RunLock(tmp_path).acquire()


def test_lock_of_a_dead_process_is_taken_over_and_released(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_lock(tmp_path, pid=dead.pid)
    lock = RunLock(tmp_path).acquire()
    assert _lock_pid(tmp_path) == os.getpid()
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_whose_pid_was_reused_is_stale(tmp_path):
    _write_lock(tmp_path, pid=os.getppid(), start="1")  # alive, but started at another time
    RunLock(tmp_path).acquire().release()


def test_other_hosts_lock_is_stale_only_after_the_timeout(tmp_path, monkeypatch):
    monkeypatch.setenv("GANTRAIN_LOCK_STALE_SECONDS", "60")
    _write_lock(tmp_path, host="elsewhere", pid=1)
    with pytest.raises(UserError, match="process 1 on elsewhere"):
        RunLock(tmp_path).acquire()
    old = time.time() - 61
    os.utime(tmp_path / LOCK_NAME, (old, old))  # its owner stopped refreshing it a minute ago
    RunLock(tmp_path).acquire().release()


def test_release_never_deletes_a_lock_someone_else_holds(tmp_path):
    lock = RunLock(tmp_path).acquire()
    _write_lock(tmp_path, pid=os.getppid())  # e.g. taken over after this process was presumed dead
    lock.release()
    assert _lock_pid(tmp_path) == os.getppid()


def test_a_takeover_never_removes_a_lock_taken_since_it_was_judged_stale(tmp_path):
    """Two restarts after a crash: both judge the dead process's lock stale; the one that looks second
    must not delete the lock the first has just taken."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_lock(tmp_path, pid=dead.pid)
    late, early = RunLock(tmp_path), RunLock(tmp_path)
    judged = late._read()
    assert late._stale_reason(judged) == f"its process {dead.pid} is gone"
    early.acquire()  # takes the stale lock over and holds it
    late._take_over(judged, "judged stale before the other took it")
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == early.me
    with pytest.raises(UserError, match="is being trained by"):
        late.acquire()
    early.release()


def test_the_holder_refreshes_its_lock(tmp_path, monkeypatch):
    import gantrain.runlock

    monkeypatch.setattr(gantrain.runlock, "HEARTBEAT_SECONDS", 0.05)
    lock = RunLock(tmp_path).acquire()
    old = time.time() - 1000
    os.utime(tmp_path / LOCK_NAME, (old, old))
    time.sleep(0.5)
    assert time.time() - (tmp_path / LOCK_NAME).stat().st_mtime < 5  # other hosts see it alive
    lock.release()


def test_overwrite_never_clears_a_run_being_trained(tmp_path, mnist_dir):
    from typer.testing import CliRunner

    import gantrain
    from gantrain.cli import app

    run = gantrain.fit(tiny_config(mnist_dir, steps=1), run_dir=tmp_path / "run", progress=False)
    _write_lock(run, pid=os.getppid())  # a live process holds it
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(mnist_dir, steps=1)))
    result = CliRunner().invoke(app, ["fit", str(config), "--run-dir", str(run), "--overwrite"])
    assert result.exit_code == 2 and "is being trained by" in result.output, result.output
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
