"""benchmarks/search_rows.py runs and prints a time for each variant."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "search_rows.py"


@pytest.mark.slow  # a child process that imports TensorFlow and compiles with XLA: 12-14 s
def test_search_rows_prints_every_variant():
    run = subprocess.run([sys.executable, str(SCRIPT), "--num_vectors=1500", "--runs=1",
                          "--num_embeddings=16", "--jit_compile"],
                         capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(l for l in run.stdout.splitlines() if l.startswith("N=1500"))
    for name in ("row blocks", "one block", "one block, XLA"):
        assert re.search(re.escape(name) + r" \d+\.\d\d", line), line
