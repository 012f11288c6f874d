"""benchmarks/pause.py end to end on a tiny codebook: a row per (K, compiler), a cell per pause."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_times_each_compiler_after_each_pause():
    command = [sys.executable, os.path.join(ROOT, "benchmarks", "pause.py"),
               "--quantizers=ema", "--shape=4,2,2,16", "--codebook_sizes=16,32",
               "--pauses_ms=0,1,3", "--runs=2", "--threads=1", "--return_info"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.strip("| ").split(" | ") for line in done.stdout.splitlines()
            if line.startswith("| ") and "---" not in line]
    assert rows[0] == ["quantizer", "K", "compiler", "after 0 ms", "after 1 ms", "after 3 ms"]
    assert [row[:3] for row in rows[1:]] == [["ema", "16", "tf.function"], ["ema", "16", "XLA"],
                                            ["ema", "32", "tf.function"], ["ema", "32", "XLA"]]
    for row in rows[1:]:
        assert len(row) == 6 and all(float(cell) > 0 for cell in row[3:]), row
