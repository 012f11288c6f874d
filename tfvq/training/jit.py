"""Whether XLA makes a model's train step faster on this machine: measured once, then cached.

XLA's CPU code and TensorFlow's oneDNN kernels rank differently from one CPU to the next: the
Sonnet-notebook VQ-VAE step is 1.7x faster with `jit_compile=True` on a 2-core AMD EPYC with
AVX2, and about 10% slower on an Intel Xeon with AVX-512. So the choice is timed, not assumed:
a few steps of each on a throwaway model, on one real batch. Keras' own `jit_compile="auto"`
decides from the model alone, never by timing.
"""

import hashlib
import json
import os
import statistics
import time

from absl import logging

from tfvq.utils.machine import describe_cpu

__all__ = ["choose_jit_compile", "default_cache_path"]


def default_cache_path():
    """`$TFVQ_CACHE_DIR/jit_compile.json`, or `~/.cache/tfvq/jit_compile.json`."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "tfvq")
    root = os.environ.get("TFVQ_CACHE_DIR") or default
    return os.path.join(root, "jit_compile.json")


def choose_jit_compile(make_model, batch, steps=5, warmup=2, cache_path=None):
    """True if `jit_compile=True` trains `make_model`'s model faster on this machine.

    Builds the model twice, `make_model(False)` and `make_model(True)` (each compiled with
    that `jit_compile`), runs `warmup` untimed `train_on_batch` steps of each (the first one
    traces and compiles), then `steps` timed steps of each in turn, and compares the medians.
    The answer is cached per CPU model, TensorFlow version, model config and batch shape, so
    that later runs on the same kind of machine skip the timing. Both timings and the choice
    are logged.

    Args:
        make_model: `jit_compile -> compiled keras.Model`, a fresh model for each call.
        batch: one batch of training inputs, as `train_on_batch` takes it.
        steps: timed steps of each variant.
        warmup: untimed steps of each variant first (at least 1: the compilation).
        cache_path: JSON file of earlier choices; None for `default_cache_path()`, "" to
            neither read nor write one.

    Returns:
        The `jit_compile` to train with: True or False.

    Example:
    >>> import keras, numpy as np
    >>> def make_model(jit_compile):
    ...     model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    ...     model.compile(optimizer="sgd", loss="mse", jit_compile=jit_compile)
    ...     return model
    >>> batch = (np.zeros((8, 4), "float32"), np.zeros((8, 2), "float32"))
    >>> choose_jit_compile(make_model, batch, steps=2, cache_path="") in (True, False)
    True
    """
    if steps < 1 or warmup < 1:
        raise ValueError(f"choose_jit_compile expects steps >= 1 and warmup >= 1; got "
                         f"steps={steps}, warmup={warmup}")
    cache_path = default_cache_path() if cache_path is None else cache_path
    models = {False: make_model(False), True: make_model(True)}
    key = _cache_key(models[False], batch)
    cache = _read(cache_path) if cache_path else {}
    if key in cache:
        choice = cache[key]["jit_compile"]
        logging.info("jit_compile=%s for this model on this CPU (cached in %s: %s)",
                     choice, cache_path, _summary(cache[key]["ms_per_step"]))
        return choice
    times = {False: [], True: []}
    for model in models.values():
        for _ in range(warmup):
            _step(model, batch)
    for _ in range(steps):
        for jit_compile, model in models.items():
            start = time.perf_counter()
            _step(model, batch)
            times[jit_compile].append(time.perf_counter() - start)
    ms = {str(k).lower(): 1e3 * statistics.median(v) for k, v in times.items()}
    choice = ms["true"] < ms["false"]
    logging.info("jit_compile=%s for this model on this CPU (%s, %s)", choice, describe_cpu(),
                 _summary(ms))
    if cache_path:
        cache[key] = {"jit_compile": choice, "ms_per_step": ms, "cpu": describe_cpu(),
                      "date": time.strftime("%Y-%m-%d")}
        _write(cache_path, cache)
    return choice


def _step(model, batch):
    if isinstance(batch, tuple):
        model.train_on_batch(*batch)
    else:
        model.train_on_batch(batch)


def _summary(ms):
    return f"{ms['true']:.1f} ms per step with XLA, {ms['false']:.1f} ms without"


def _cache_key(model, batch):
    import tensorflow as tf

    shapes = [tuple(getattr(x, "shape", ())) for x in tf.nest.flatten(batch)]
    described = json.dumps(
        [describe_cpu(), tf.__version__, type(model).__name__, _unnamed(model.get_config()),
         shapes],
        sort_keys=True, default=repr,
    )
    return hashlib.sha256(described.encode()).hexdigest()[:16]


def _unnamed(config):
    """`config` without its "name" entries: Keras numbers layer names per process (dense_1,
    dense_2, ...), so the same model gets other names in the next run."""
    if isinstance(config, dict):
        return {k: _unnamed(v) for k, v in config.items() if k != "name"}
    if isinstance(config, (list, tuple)):
        return [_unnamed(v) for v in config]
    return config


def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}  # no cache yet, or a damaged one: measure again


def _write(path, cache):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(cache, f, indent=1, sort_keys=True)
    os.replace(temporary, path)  # atomic: a concurrent reader sees the old or the new file
