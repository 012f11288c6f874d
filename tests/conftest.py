"""Shared test set-up: two logical CPU devices, offline TFDS data dirs, quiet logs, free ports,
and multi-worker clusters of local processes."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices let MirroredStrategy run with 2 replicas on a CPU-only machine. This has
# to happen before TensorFlow initialises its devices, hence here at import time.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TFVQ_SHARED_DIR", ROOT.parent / "shared"))


def _data_dir_with(name):
    """The first known TFDS data dir that holds a prepared `name`, or None."""
    for candidate in (os.environ.get("TFDS_DATA_DIR"), SHARED / "tfds"):
        if candidate and (Path(candidate) / name).is_dir():
            return str(candidate)
    return None


@pytest.fixture(scope="session")
def mnist_data_dir():
    """A TFDS data dir holding prepared mnist and fashion_mnist; skips when there is none."""
    data_dir = _data_dir_with("mnist")
    if data_dir is None:
        pytest.skip(f"no prepared mnist in $TFDS_DATA_DIR or {SHARED / 'tfds'}")
    return data_dir


@pytest.fixture(scope="session")
def cifar10_data_dir(tmp_path_factory):
    """A TFDS data dir holding cifar10, built from ../shared when no prepared one exists."""
    data_dir = _data_dir_with("cifar10")
    if data_dir is not None:
        return data_dir
    tool = SHARED / "tools" / "prepare_tfds.py"
    if not tool.is_file():
        pytest.skip(f"no prepared cifar10 and no {tool} to build it")
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    subprocess.run(
        [sys.executable, str(tool), "--data_dir", data_dir, "--datasets", "cifar10"], check=True
    )
    return data_dir


@pytest.fixture(scope="session")
def bfloat16_convolutions():
    """Skips a test when TensorFlow cannot run a bfloat16 convolution on this machine.

    Every CPU TensorFlow supports runs one: with AVX-512, through oneDNN; without, through
    TensorFlow's own kernels. `scripts/as_avx2.sh` caps oneDNN at AVX2 while TensorFlow still
    reads AVX-512 in the CPU's flags and hands its bfloat16 convolutions to oneDNN, which then
    has no kernel for them ("could not create a primitive descriptor"). That is the emulation's
    gap, not a real CPU's, so the tests that need one skip there and say why.
    """
    try:
        tf.nn.conv2d(tf.ones((1, 4, 4, 3), tf.bfloat16), tf.ones((3, 3, 3, 4), tf.bfloat16), 1,
                     "SAME")
    except tf.errors.OpError as error:
        reason = error.message.split("message: ")[-1].split(". ")[0]  # past the kernel's name
        pytest.skip(f"TensorFlow runs no bfloat16 convolution here: {reason}")


@pytest.fixture(scope="session")
def mirrored_strategy():
    """The one 2-replica MirroredStrategy of the test session.

    A second MirroredStrategy over the same devices in one process can pair its collectives
    with stale ones of the first (TensorFlow's collective instance keys restart per strategy),
    failing with "Shape mismatch in the collective instance", so every test shares this one.
    """
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture
def free_ports():
    """`free_ports(n)`: n distinct TCP ports of 127.0.0.1, free for a local cluster's processes.

    The n sockets are bound together, so that no two get the same port, and closed again before
    the ports are handed out.
    """

    def ports(n):
        sockets = [socket.socket() for _ in range(n)]
        try:
            for s in sockets:
                s.bind(("127.0.0.1", 0))
            return [s.getsockname()[1] for s in sockets]
        finally:
            for s in sockets:
                s.close()

    return ports


@pytest.fixture
def run_workers(free_ports):
    """`run_workers(command, n=2, **popen_kwargs)`: the processes of one local
    MultiWorkerMirroredStrategy cluster; their outputs once all of them exited with 0.

    `command(index)` is worker `index`'s argument list; each process gets `TF_CONFIG` naming
    the n workers on free ports of 127.0.0.1 and itself (the chief is worker 0), on top of
    `env` (default: this environment with TensorFlow's C++ logs quiet). A worker that fails
    fails the test with the end of its output; any left running then are killed.
    """

    def run(command, n=2, env=None, timeout=400, **popen_kwargs):
        workers = [f"127.0.0.1:{port}" for port in free_ports(n)]
        base = env if env is not None else {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        processes = []
        try:
            for index in range(n):
                tf_config = {"cluster": {"worker": workers},
                             "task": {"type": "worker", "index": index}}
                processes.append(subprocess.Popen(
                    command(index), env={**base, "TF_CONFIG": json.dumps(tf_config)},
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen_kwargs))
            outputs = [p.communicate(timeout=timeout)[0] for p in processes]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        for index, (process, output) in enumerate(zip(processes, outputs)):
            assert process.returncode == 0, f"worker {index} failed:\n{output[-4000:]}"
        return outputs

    return run
