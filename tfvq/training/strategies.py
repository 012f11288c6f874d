"""A `tf.distribute` strategy from one word, whether XLA can be used under it, and how its
workers agree on what only the chief holds (`chief_values`, `copy_from_chief`), and which of
them is the chief (`worker_index`).

Example:
    >>> from tfvq.training import make_strategy, jit_compile_for
    >>> strategy = make_strategy("auto")          # on a CPU-only machine: the default strategy
    >>> with strategy.scope():
    ...     model = tfvq.VQVAE(input_shape=(16, 16, 3), num_embeddings=16, embedding_dim=4,
    ...                        hidden_channels=8, residual_channels=4, num_residual_layers=1)
    ...     model.compile(optimizer="adam", jit_compile=jit_compile_for(strategy))
    >>> images = np.random.default_rng(0).uniform(0, 1, (8, 16, 16, 3)).astype("float32")
    >>> history = model.fit(images, epochs=1, batch_size=4, verbose=0)
"""

import json
import os

import tensorflow as tf
from absl import logging

from tfvq.utils.checks import is_int

__all__ = ["STRATEGIES", "chief_values", "copy_from_chief", "jit_compile_for", "make_strategy",
           "supports_xla", "worker_index"]

STRATEGIES = ("auto", "cpu", "mirrored", "multiworker")


def _device_names(kind):
    return [device.name for device in tf.config.list_logical_devices(kind)]


def _read_tf_config():
    """Parses and checks `TF_CONFIG`; raises ValueError saying what is missing or wrong."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            "make_strategy('multiworker') needs the TF_CONFIG environment variable, a JSON "
            'object like {"cluster": {"worker": ["host1:port", "host2:port"]}, '
            '"task": {"type": "worker", "index": 0}}; got it unset or empty'
        )
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG must be valid JSON; got {raw!r} ({error})") from error
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object; got {raw!r}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError(
            'TF_CONFIG must have a non-empty "cluster" mapping a job name ("worker", "chief") to '
            f"a list of host:port addresses; got cluster={cluster!r}"
        )
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise ValueError(
                f'TF_CONFIG cluster["{job}"] must be a non-empty list of host:port addresses; '
                f"got {addresses!r}"
            )
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError(
            'TF_CONFIG must have a "task" with "type" and "index", e.g. '
            f'{{"type": "worker", "index": 0}}; got task={task!r}'
        )
    job, index = task["type"], task["index"]
    if job not in cluster:
        raise ValueError(
            f'TF_CONFIG task type "{job}" is not a job of the cluster; expected one of '
            f"{sorted(cluster)}"
        )
    if not is_int(index, minimum=0) or index >= len(cluster[job]):
        raise ValueError(
            f'TF_CONFIG task index must be an integer in [0, {len(cluster[job])}) for job '
            f'"{job}"; got {index!r}'
        )
    return config


def make_strategy(name="auto", devices=None):
    """Builds the `tf.distribute` strategy a one-word choice stands for.

    Args:
        name: "auto": `MirroredStrategy` over all GPUs when there are several, else the default
            strategy (`tf.distribute.get_strategy()`, one device, no wrapping).
            "cpu": `OneDeviceStrategy` on the first CPU (or on `devices[0]`).
            "mirrored": `MirroredStrategy` over `devices`, by default all GPUs, or all logical
            CPUs when there is no GPU (e.g. two set up with
            `tf.config.set_logical_device_configuration` to test data parallelism on a laptop).
            "multiworker": `MultiWorkerMirroredStrategy` configured from `TF_CONFIG`. Create it
            at program start, before any other TensorFlow op runs.
        devices: device names for "mirrored" and "cpu"; must be None for the others.

    Returns:
        A `tf.distribute.Strategy`.
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy name must be one of {list(STRATEGIES)}; got {name!r}")
    if devices is not None and name not in ("mirrored", "cpu"):
        raise ValueError(
            f"devices can only be given for the 'mirrored' or 'cpu' strategy; got "
            f"devices={devices!r} with name={name!r}"
        )
    if devices is not None:
        devices = list(devices)
        if not devices:
            raise ValueError("devices must name at least one device; got an empty list")

    if name == "auto":
        gpus = _device_names("GPU")
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy(gpus)
        return tf.distribute.get_strategy()
    if name == "cpu":
        return tf.distribute.OneDeviceStrategy(devices[0] if devices else "/cpu:0")
    if name == "mirrored":
        if devices is None:
            devices = _device_names("GPU") or _device_names("CPU")
        return tf.distribute.MirroredStrategy(devices)
    _read_tf_config()
    return tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=tf.distribute.cluster_resolver.TFConfigClusterResolver()
    )


def _replica_devices(strategy):
    """The devices one worker computes replicas on (worker_devices of the strategy)."""
    try:
        return list(strategy.extended.worker_devices)
    except (AttributeError, RuntimeError, NotImplementedError):
        return []


def _xla_blocker(strategy):
    """Why XLA cannot run under `strategy`, or None when it can."""
    replicas = strategy.num_replicas_in_sync
    if replicas <= 1:
        return None
    cpu_devices = [d for d in _replica_devices(strategy) if "CPU" in d.upper()]
    if cpu_devices:
        # XLA-compiled steps with cross-replica collectives on CPU devices fail to compile or
        # hang in TensorFlow; Keras's own jit_compile="auto" also stays off under tf.distribute.
        return (
            f"{type(strategy).__name__} mirrors {replicas} replicas over CPU devices "
            f"({', '.join(cpu_devices)}), where XLA cannot compile the cross-replica all-reduce"
        )
    return None


def supports_xla(strategy):
    """Whether a `jit_compile=True` train step can run under `strategy`.

    False when the strategy mirrors several replicas over CPU devices (e.g. `MirroredStrategy`
    on logical CPUs, or `MultiWorkerMirroredStrategy` on CPU-only workers).
    """
    return _xla_blocker(strategy) is None


def jit_compile_for(strategy, requested="auto"):
    """The `jit_compile` argument for `Model.compile` under `strategy`.

    Args:
        strategy: the `tf.distribute.Strategy` the model is built and trained under.
        requested: what the user asked for, "auto" (Keras decides) or True.

    Returns:
        `requested` when XLA can run under the strategy, else False (logging why XLA is off).
    """
    if requested is False:
        return False
    reason = _xla_blocker(strategy)
    if reason is None:
        return requested
    logging.info("XLA is off (jit_compile=False): %s.", reason)
    return False


def worker_index(strategy=None):
    """This process's place among the workers of `strategy`: 0 on the chief, 1, 2, ... on the
    others, as the all-reduces of a multi-worker strategy number them.

    Under MultiWorkerMirroredStrategy the chief is the "chief" task of `TF_CONFIG`'s cluster,
    or, when the cluster has none, worker 0; with a chief, worker i is number i + 1. Any
    other strategy (or None) runs one worker: 0. What a run writes once (models, histories,
    pictures) is written where this is 0, and each worker keeps its own backup folder
    (`backup_dir_for`). TensorFlow numbers them so (`multi_worker_util.id_in_cluster`) in a
    private module only, hence this public one.

    Args:
        strategy: a `tf.distribute.Strategy`, or None.

    Returns:
        An int.

    Example:
        >>> worker_index(tf.distribute.get_strategy())
        0
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if task_type is None or task_type == "chief":
        return 0
    return int(resolver.task_id) + ("chief" in resolver.cluster_spec().jobs)


def _replica0_sums(strategy, tensors):
    """Each of `tensors` as global replica 0 (on the chief) holds it, on every worker.

    One all-reduce: replica 0 adds its values and every other replica zeros, so the sum is
    exact whatever the dtype (values travel as float64, exact for float32 and for integers up
    to 2^53) and however many replicas each worker runs.
    """
    dtypes = [tf.as_dtype(t.dtype) for t in tensors]
    values = [tf.cast(t, tf.float64) for t in tensors]

    @tf.function
    def reduce():
        def replica_fn():
            context = tf.distribute.get_replica_context()
            first = tf.equal(context.replica_id_in_sync_group, 0)
            mine = [tf.where(first, v, tf.zeros_like(v)) for v in values]
            return context.all_reduce(tf.distribute.ReduceOp.SUM, mine)

        return strategy.run(replica_fn)

    sums = reduce()
    return [tf.cast(strategy.experimental_local_results(s)[0], d) for s, d in zip(sums, dtypes)]


def chief_values(strategy, values):
    """The chief's `values` on every worker: how workers agree on what only the chief knows.

    A collective: every worker of `strategy` must call it, at the same point of its program.
    Under a one-machine strategy it returns `values`.

    Args:
        strategy: the `tf.distribute.Strategy` the workers run.
        values: a list of numbers (bool, int or float).

    Returns:
        A list of the chief's numbers, as Python numbers of the same types.

    Example:
        >>> chief_values(tf.distribute.get_strategy(), [True, 3, 0.5])
        [True, 3, 0.5]
    """
    kinds = [type(v) for v in values]
    sums = _replica0_sums(strategy, [tf.constant(float(v), tf.float64) for v in values])
    return [kind(s.numpy().item()) for kind, s in zip(kinds, sums)]


def copy_from_chief(strategy, variables):
    """Assigns each of `variables` the value it has on the chief, on every worker.

    For a worker that could not load what the chief loaded (its own output folder holds no
    saved model): after it builds the same model, this gives it the chief's weights and
    optimizer state, so that the workers' replicas start equal, as MultiWorkerMirroredStrategy
    needs. A collective, like `chief_values`.

    Args:
        strategy: the `tf.distribute.Strategy` the variables were created under.
        variables: Keras or TensorFlow variables, in the same order on every worker.

    Example:
        >>> v = keras.Variable([1.0, 2.0])
        >>> copy_from_chief(tf.distribute.get_strategy(), [v])
        >>> v.numpy().tolist()
        [1.0, 2.0]
    """
    variables = list(variables)
    if not variables:
        return
    values = _replica0_sums(strategy, [tf.convert_to_tensor(v) for v in variables])
    for variable, value in zip(variables, values):
        variable.assign(value)
