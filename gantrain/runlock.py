"""One writer per run directory: ``fit`` holds ``RUN_DIR/.lock`` while it trains.

Two ``fit`` processes on one directory (two terminals, or a scheduler restarting a job whose old
process is still alive) would interleave their checkpoints and duplicate metrics. The lock file
holds the owner's host, process id and that process's start time; it is written aside and published
whole by a hard link that fails when a lock exists, so exactly one of two racing processes creates it. A lock is stale, and is taken
over, when:

* its host is this machine and its process is gone (or the pid now belongs to another process:
  the start time differs), e.g. after SIGKILL or a power cut;
* its host is another machine and it has not been refreshed for ``GANTRAIN_LOCK_STALE_SECONDS``
  (default 600): the owner refreshes the file's modification time every 30 seconds from a
  background thread, so only a dead (or unreachable) owner lets it age.

``sample`` and ``eval`` only read a run and never take the lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

from gantrain.errors import UserError

LOCK_NAME = ".lock"
HEARTBEAT_SECONDS = 30.0


def stale_after() -> float:
    return float(os.environ.get("GANTRAIN_LOCK_STALE_SECONDS", "600"))


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _describe(owner: dict) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("since", 0)))
    return f"process {owner.get('pid')} on {owner.get('host')} (since {since})"


class RunLock:
    """``with RunLock(run_dir):`` ... ; raises UserError naming the holder when another process has it."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.me = {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid()), "since": time.time()}
        self._stop = threading.Event()
        self._thread = None

    # -- acquiring --------------------------------------------------------------------------------
    def acquire(self) -> "RunLock":
        for _ in range(20):  # a lost race for a stale lock, or another takeover in progress: look again
            if self._create():
                self._thread = threading.Thread(target=self._heartbeat, name="gantrain-run-lock", daemon=True)
                self._thread.start()
                return self
            owner = self._read()
            reason = self._stale_reason(owner)
            if reason is None:
                raise UserError(
                    f"{self.path.parent} is being trained by {_describe(owner)}; one process writes a run at a time. "
                    f"Wait for it to finish or stop it (a lock whose process is gone is taken over automatically; {self.path})"
                )
            self._take_over(owner, reason)
        raise UserError(f"{self.path}: could not take the run lock (other processes keep taking it over); try again")

    def _create(self) -> bool:
        """Publish a complete lock file atomically: written aside, then hard-linked into place (the
        link fails if a lock exists), so no reader ever sees a half-written one."""
        tmp = self.path.with_name(f"{LOCK_NAME}.{self.me['pid']}.tmp")
        try:
            tmp.write_text(json.dumps(self.me), encoding="utf-8")
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: exclusive create, then write
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.me, f)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # being written right now, or unreadable: treated by its age below

    def _stale_reason(self, owner: dict) -> str | None:
        if owner.get("host") == self.me["host"] and isinstance(owner.get("pid"), int):
            pid = owner["pid"]
            if not _alive(pid):
                return f"its process {pid} is gone"
            if owner.get("start") is not None and _start_time(pid) not in (None, owner["start"]):
                return f"pid {pid} now belongs to another process"
            return None
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return "it was just released"
        if age > stale_after():
            return f"not refreshed for {age:.0f} s (GANTRAIN_LOCK_STALE_SECONDS={stale_after():.0f})"
        return None

    def _take_over(self, stale: dict, reason: str) -> None:
        """Remove the stale lock ``stale``, and only that one.

        Two processes may judge the same lock stale; between one's judgement and its removal the
        other may already have replaced the lock with its own, fresh one. Takeovers therefore run
        one at a time under a guard file (O_EXCL), and re-read the lock under it: if it is no longer
        the one judged stale, nothing is removed and the caller looks again.
        """
        guard = self.path.with_name(f"{LOCK_NAME}.takeover")
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:  # a guard left by a process that died mid-takeover would block every later one
                if time.time() - guard.stat().st_mtime > 30:
                    guard.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            time.sleep(0.2)
            return
        try:
            if self._read() != stale:
                return
            self.path.unlink(missing_ok=True)
            print(f"note: took over the stale lock of {self.path.parent} ({reason})", file=sys.stderr, flush=True)
        finally:
            os.close(fd)
            guard.unlink(missing_ok=True)

    # -- holding ----------------------------------------------------------------------------------
    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            # The directory may have gone away (e.g. deleted by hand): then there is nothing to refresh.
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._read() == self.me:  # never delete a lock someone else now holds (same pid on another host included)
            self.path.unlink(missing_ok=True)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
