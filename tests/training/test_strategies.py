"""Tests of tfvq.training.strategies (two logical CPUs come from tests/conftest.py)."""

import json
import logging
import types

import pytest
import tensorflow as tf

from tfvq.training import jit_compile_for, make_strategy, supports_xla, worker_index

ONE_WORKER = {"worker": ["localhost:1"]}


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="auto.*cpu.*mirrored.*multiworker.*got 'tpu'"):
        make_strategy("tpu")


def test_auto_without_gpus_is_the_default_strategy():
    assert make_strategy("auto") is tf.distribute.get_strategy()


def test_cpu_is_one_device_on_the_cpu():
    strategy = make_strategy("cpu")
    assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
    assert strategy.num_replicas_in_sync == 1
    assert "CPU:0" in strategy.extended.worker_devices[0]


def test_mirrored_uses_every_logical_cpu():
    strategy = make_strategy("mirrored")
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    assert strategy.num_replicas_in_sync == len(tf.config.list_logical_devices("CPU")) == 2


def test_mirrored_on_given_devices():
    strategy = make_strategy("mirrored", devices=["/cpu:0"])
    assert strategy.num_replicas_in_sync == 1


def test_devices_rejected_where_meaningless():
    with pytest.raises(ValueError, match="devices"):
        make_strategy("auto", devices=["/cpu:0"])


@pytest.mark.parametrize(
    "tf_config, message",
    [
        (None, "TF_CONFIG environment variable"),
        ("{not json", "valid JSON"),
        (json.dumps({"task": {"type": "worker", "index": 0}}), '"cluster"'),
        (json.dumps({"cluster": {"worker": ["localhost:1"]}}), '"task"'),
        (json.dumps({"cluster": ONE_WORKER, "task": {"type": "worker", "index": 3}}),
         r"index must be an integer in \[0, 1\)"),
        (json.dumps({"cluster": ONE_WORKER, "task": {"type": "chief", "index": 0}}),
         "not a job of the cluster"),
    ],
)
def test_multiworker_needs_a_valid_tf_config(monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match=message):
        make_strategy("multiworker")


def test_xla_on_for_one_device():
    strategy = make_strategy("auto")
    assert supports_xla(strategy)
    assert jit_compile_for(strategy) == "auto"
    assert jit_compile_for(strategy, requested=True) is True


def test_xla_off_and_logged_when_mirroring_over_cpus(caplog):
    strategy = make_strategy("mirrored")
    assert not supports_xla(strategy)
    with caplog.at_level(logging.INFO, logger="absl"):
        assert jit_compile_for(strategy, requested=True) is False
    assert any("XLA is off" in r.getMessage() and "CPU" in r.getMessage() for r in caplog.records)


def test_chief_values_and_copy_from_chief_keep_values_and_types(mirrored_strategy):
    # On one machine the replicas hold the same values, so this checks the round trip (bools,
    # ints past float32's whole numbers, float32 values through the float64 all-reduce, an
    # int64 variable) under a 2-replica strategy; that the chief's values win over another
    # worker's is checked with two processes, in tests/examples/test_cifar10_example.py.
    import keras
    import numpy as np

    from tfvq.training import chief_values, copy_from_chief

    assert chief_values(mirrored_strategy, [True, 7, 0.1]) == [True, 7, 0.1]
    assert chief_values(mirrored_strategy, [False, 2**40 + 1]) == [False, 2**40 + 1]
    with mirrored_strategy.scope():
        weights = keras.Variable(np.array([[0.1, -2.5], [3e-8, 1e30]], np.float32))
        steps = keras.Variable(np.int64(123), dtype="int64")
    before = weights.numpy().copy()
    copy_from_chief(mirrored_strategy, [weights, steps])
    np.testing.assert_array_equal(weights.numpy(), before)  # float32 through float64: exact
    assert steps.numpy() == 123 and steps.dtype == "int64"
    for replica_value in mirrored_strategy.experimental_local_results(weights.value):
        np.testing.assert_array_equal(replica_value.numpy(), before)


def _cluster_member(cluster, task_type, task_id):
    """A stand-in for a MultiWorkerMirroredStrategy of this task (creating one starts a server)."""
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id)
    return types.SimpleNamespace(cluster_resolver=resolver)


@pytest.mark.parametrize("cluster, task, expected", [
    # Workers only: worker 0 is the chief.
    ({"worker": ["a:1", "b:1", "c:1"]}, ("worker", 0), 0),
    ({"worker": ["a:1", "b:1", "c:1"]}, ("worker", 2), 2),
    # A chief task: it is 0, and worker i comes after it (TensorFlow's replica order).
    ({"chief": ["a:1"], "worker": ["b:1", "c:1"]}, ("chief", 0), 0),
    ({"chief": ["a:1"], "worker": ["b:1", "c:1"]}, ("worker", 0), 1),
    ({"chief": ["a:1"], "worker": ["b:1", "c:1"]}, ("worker", 1), 2),
    # No TF_CONFIG: a multi-worker strategy of one, with no task type.
    ({}, (None, 0), 0),
])
def test_worker_index_counts_the_chief_first(cluster, task, expected):
    assert worker_index(_cluster_member(cluster, *task)) == expected


def test_worker_index_of_one_machine_strategies(mirrored_strategy):
    assert worker_index(None) == 0
    assert worker_index(tf.distribute.get_strategy()) == 0
    assert worker_index(mirrored_strategy) == 0
