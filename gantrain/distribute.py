"""tf.distribute plumbing: building the strategy, splitting the global batch, chief-only outputs.

The training step is written once for every strategy (the default one included):

* ``data.batch_size`` is the *global* batch. The input pipeline produces global batches in the
  same order whatever the strategy, and each replica takes its contiguous slice, so replica r of
  R sees rows ``[r * B/R, (r + 1) * B/R)`` of exactly the batch a single device would see.
* Noise is drawn once for the global batch in cross-replica context (from the trainer's
  generator, which is deliberately created outside the strategy scope) and sliced the same way.
* Each replica's loss is the mean over its slice divided by the number of replicas; Keras sums
  the gradients across replicas, so the update is the global-batch mean gradient.
* Every worker runs the same loop; only the chief writes the run directory (checkpoints, grids,
  logs). Other workers write into a scratch folder that is deleted at the end, so they make the
  same calls (checkpoint saves can need collective reads) without touching the run.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from gantrain.errors import UserError


def make_strategy(cfg: dict) -> tf.distribute.Strategy:
    """The strategy named by the config's ``distribute`` section.

    Must run before TensorFlow executes anything: multi-worker collectives and logical devices
    can only be configured at start-up.
    """
    name = cfg["strategy"]
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = cfg["devices"] or None
        if devices:
            _ensure_logical_cpus(devices)
        try:
            return tf.distribute.MirroredStrategy(devices=devices)
        except (ValueError, RuntimeError) as err:
            raise UserError(f"distribute.devices: {_first_line(err)}") from None
    if name == "multi_worker_mirrored":
        if "TF_CONFIG" not in os.environ:
            raise UserError(
                "distribute.strategy multi_worker_mirrored needs the TF_CONFIG environment variable on every worker, e.g. "
                'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}\''
            )
        tf_config = _parse_tf_config()
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except tf.errors.OpError as err:  # e.g. the port is taken
            raise UserError(f"distribute.strategy multi_worker_mirrored: {_first_line(err)}; check this worker's address in TF_CONFIG "
                            f"({_this_address(tf_config)}) is free and reachable") from None
        except (ValueError, RuntimeError) as err:
            raise UserError(f"distribute.strategy multi_worker_mirrored: {_first_line(err)} (create the strategy before any other TensorFlow work)") from None
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=cfg["tpu"] or None)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            return tf.distribute.TPUStrategy(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as err:
            where = f"at {cfg['tpu']!r}" if cfg["tpu"] else "(distribute.tpu is not set: looked for a local TPU VM or $TPU_NAME)"
            raise UserError(f"distribute.strategy tpu: no TPU found {where}: {_first_line(err)}") from None
    raise ValueError(f"unknown strategy {name!r}")  # config validation lists the choices


def _ensure_logical_cpus(devices: list[str]) -> None:
    """Naming /cpu:1 and up splits the host CPU into that many logical devices.

    There is one physical CPU device; logical ones make a multi-device run testable without GPUs.
    """
    indices = [int(d.rsplit(":", 1)[1]) for d in devices if "cpu:" in d.lower() and d.rsplit(":", 1)[1].isdigit()]
    wanted = max(indices, default=0) + 1
    if wanted <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    have = tf.config.get_logical_device_configuration(cpus[0])
    if have is not None and len(have) >= wanted:
        return
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * wanted)
    except RuntimeError:
        raise UserError(
            f"distribute.devices names {wanted} CPU devices, but TensorFlow has already started with "
            f"{len(tf.config.list_logical_devices('CPU'))}; logical CPU devices can only be set at start-up (run gantrain in a fresh process)"
        ) from None


def _parse_tf_config() -> dict:
    try:
        tf_config = json.loads(os.environ["TF_CONFIG"])
        workers = tf_config["cluster"]["worker"] if "worker" in tf_config["cluster"] else []
        task = tf_config["task"]
        task["type"], int(task["index"])  # raise for a missing type or a missing / non-numeric index
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"TF_CONFIG: not a valid cluster description ({err}); expected {{\"cluster\": {{\"worker\": [...]}}, \"task\": {{\"type\": \"worker\", \"index\": 0}}}}") from None
    if not workers and "chief" not in tf_config["cluster"]:
        raise UserError("TF_CONFIG: the cluster lists no workers")
    return tf_config


def _this_address(tf_config: dict) -> str:
    task = tf_config["task"]
    try:
        return tf_config["cluster"][task["type"]][int(task["index"])]
    except (KeyError, IndexError):
        return f"no address for task {task['type']} {task['index']} in the cluster"


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one process that owns the run directory (every process for single-worker strategies)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_label(strategy: tf.distribute.Strategy) -> str:
    resolver = getattr(strategy, "cluster_resolver", None)
    return f"{resolver.task_type}-{resolver.task_id}" if resolver is not None and resolver.task_type else "worker"


def num_replicas() -> int:
    ctx = tf.distribute.get_replica_context()
    return ctx.num_replicas_in_sync if ctx is not None else 1


def _replica_id():
    return tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.int32)


def replica_slice(tensor):
    """This replica's contiguous rows of a global-batch tensor (the whole tensor on one replica)."""
    n = num_replicas()
    if n == 1:
        return tensor
    per, r = tf.shape(tensor)[0] // n, _replica_id()
    return tensor[r * per:(r + 1) * per]


def replica_seed(seed):
    """A stateless seed that differs per replica (random augmentations must not repeat across slices)."""
    return seed if num_replicas() == 1 else tf.random.experimental.stateless_fold_in(seed, _replica_id())


def distribute_pipeline(strategy: tf.distribute.Strategy, make_global, global_batch: int):
    """Per-replica batches cut from the global-batch stream ``make_global()``.

    Each input pipeline (one per worker) builds the whole global stream, which costs nothing extra
    for in-memory sources, keeps its worker's rows, and hands consecutive slices to its local
    replicas: together the replicas cover each global batch exactly once, in order.
    """
    if strategy.num_replicas_in_sync == 1:
        return make_global()

    def dataset_fn(ctx: tf.distribute.InputContext):
        per_replica = ctx.get_per_replica_batch_size(global_batch)
        per_worker = global_batch // ctx.num_input_pipelines
        start = ctx.input_pipeline_id * per_worker
        ds = make_global()
        if ctx.num_input_pipelines > 1:
            ds = ds.map(lambda batch: {role: t[start:start + per_worker] for role, t in batch.items()})
        return ds.rebatch(per_replica, drop_remainder=True) if per_replica != per_worker else ds

    return strategy.distribute_datasets_from_function(dataset_fn)


def agree(strategy: tf.distribute.Strategy, value: int) -> int:
    """One integer every worker agrees on (the rounded mean of their proposals).

    Decisions that shape the compiled calls, like how many steps the next call runs, must match
    across workers or their collectives wait for each other forever; timing-based ones differ.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return value
    proposals = strategy.experimental_distribute_values_from_function(lambda ctx: tf.constant(float(value)))
    return max(1, int(round(float(strategy.reduce(tf.distribute.ReduceOp.MEAN, proposals, axis=None)))))


def check_batch(strategy: tf.distribute.Strategy, batch_size: int, key: str = "data.batch_size") -> None:
    n = strategy.num_replicas_in_sync
    if batch_size % n:
        raise UserError(f"{key}: {batch_size} is the global batch and must split evenly over the {n} replicas of this strategy; use a multiple of {n}")


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
