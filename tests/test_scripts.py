"""The helper scripts under scripts/ that no other test runs."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_REPORT = """
import os
import numpy as np
import tensorflow as tf
import torch
from numpy._core._multiarray_umath import __cpu_features__
tf.matmul(tf.ones((64, 64)), tf.ones((64, 64)))  # oneDNN reports its ISA on its first kernel
print("torch", torch.backends.cpu.get_cpu_capability())
print("numpy_v4", __cpu_features__.get("X86_V4"))
print("xla", os.environ["XLA_FLAGS"])
"""


@pytest.mark.slow
def test_as_avx2_caps_every_runtime_dispatching_library():
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "ONEDNN_VERBOSE": "1",
           "XLA_FLAGS": "--xla_cpu_enable_fast_math=false", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(["bash", str(ROOT / "scripts" / "as_avx2.sh"), sys.executable, "-c",
                             _REPORT], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    isa = [line for line in lines if line.startswith("onednn_verbose") and ",isa:" in line]
    assert isa and "AVX-512" not in isa[0] and "AVX512" not in isa[0], isa
    assert "torch AVX2" in lines or "torch DEFAULT" in lines  # DEFAULT: a CPU without AVX2
    assert "numpy_v4 True" not in lines  # False, or None for a NumPy without that level
    # Flags already set are kept, the cap appended.
    assert "xla --xla_cpu_enable_fast_math=false --xla_cpu_max_isa=AVX2" in lines


def test_as_avx2_without_a_command_says_how_to_call_it():
    result = subprocess.run(["bash", str(ROOT / "scripts" / "as_avx2.sh")], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2 and "usage: bash scripts/as_avx2.sh COMMAND" in result.stderr
