"""Checkpoints: both networks, both optimizers, the noise RNG and the step, via tf.train.CheckpointManager.

Variables are keyed by their position in each network's variable list rather than by Keras's
auto-generated layer names (which depend on how many layers a process has built before), so a
checkpoint restores into freshly built networks in any process.

Writes are safe against a crash mid-save: TensorFlow writes the data files under temporary names
and renames them, and the ``checkpoint`` index file that names the latest checkpoint is replaced
atomically last, so a reader only ever sees complete checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from gantrain.errors import UserError


def _indexed(variables) -> dict:
    # Keras variables wrap a tf.Variable in `.value`; plain tf.Variables (whose `.value` is a method) go in as they are.
    return {f"{i:04d}": (v if isinstance(v, tf.Variable) else v.value) for i, v in enumerate(variables)}


def make_checkpoint(step: tf.Variable, rng: tf.random.Generator | None = None, **groups) -> tf.train.Checkpoint:
    """``groups``: name -> list of variables (e.g. generator=G.variables, g_optimizer=opt.variables)."""
    parts = {name: _indexed(variables) for name, variables in groups.items()}
    if rng is not None:
        parts["rng"] = rng
    return tf.train.Checkpoint(step=step, **parts)


def manager(ckpt: tf.train.Checkpoint, directory: Path, keep: int, step: tf.Variable) -> tf.train.CheckpointManager:
    return tf.train.CheckpointManager(ckpt, str(directory), max_to_keep=keep, step_counter=step, checkpoint_name="ckpt")


def find_checkpoint(path: Path, which: str | int = "latest") -> str:
    """Resolve a run directory, a checkpoints/ folder or a ``.../ckpt-N`` prefix to a checkpoint prefix."""
    path = Path(path)
    if path.name.startswith("ckpt-") and Path(str(path) + ".index").is_file():
        return str(path)
    if path.suffix == ".index" and path.is_file():
        return str(path.with_suffix(""))
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if not path.exists():
        raise UserError(f"{path}: no such run directory or checkpoint")
    if which == "best":
        best = tf.train.latest_checkpoint(str(folder / "best"))
        if best is None:
            raise UserError(f"{path}: no best checkpoint (kept only when the config's eval section runs metrics during training)")
        return best
    if which == "latest":
        latest = tf.train.latest_checkpoint(str(folder))
        if latest is None:
            raise UserError(f"{path}: no checkpoint found (train first, or give a run directory with checkpoints/)")
        return latest
    prefix = folder / f"ckpt-{int(which)}"
    if not Path(str(prefix) + ".index").is_file():
        have = sorted(int(p.name[5:-6]) for p in folder.glob("ckpt-*.index"))
        raise UserError(f"{path}: no checkpoint for step {which}; available steps: {have}")
    return str(prefix)


def run_dir_of(checkpoint_prefix: str) -> Path:
    """The run directory holding a checkpoint: checkpoints/ckpt-N or checkpoints/best/ckpt-N."""
    folder = Path(checkpoint_prefix).parent
    return folder.parent.parent if folder.name == "best" else folder.parent


def restore(ckpt: tf.train.Checkpoint, prefix: str, what: str = "run") -> None:
    """Restore everything in ``ckpt`` from ``prefix``; a shape or key mismatch is a user error."""
    try:
        status = ckpt.restore(prefix)
        status.assert_existing_objects_matched()
        status.expect_partial()  # sampling restores only G: the rest of the checkpoint is unused on purpose
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        first = str(err).strip().splitlines()[0][:300]
        raise UserError(f"{prefix}: checkpoint does not fit this {what}'s networks (was it written by another model family or config, or by an older gantrain whose networks differ?): {first}") from None
