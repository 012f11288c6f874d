"""benchmarks/quantizer.py end to end on tiny shapes: every row it promises is timed and written."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_every_quantizer_row_is_timed_and_written(tmp_path):
    pytest.importorskip("vector_quantize_pytorch")
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Other\n\nkept\n")
    command = [
        sys.executable, os.path.join(ROOT, "benchmarks", "quantizer.py"),
        "--shape=4,2,2,16", "--codebook_sizes=16",
        "--quantizers=vq,ema,cosine,factorized,rotation,rvq,fsq,lfq",
        "--libraries=tfvq,bare,vqtorch", "--runs=1", "--warmup=1", "--settle_ms=0",
        "--nomemory", "--return_info", "--lfq_bits=4", "--rvq_stages=2", "--rvq_codes=8",
        "--fsq_levels=3,3", f"--results={results}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    names = ["VectorQuantizer |", "VectorQuantizerEMA |", "cosine", "codebook_dim=8",
             "rotation trick", "ResidualVectorQuantizer", "FiniteScalarQuantizer",
             "LookupFreeQuantizer"]
    for name in names:
        libraries = {row.split(" | ")[0][2:] for row in rows if name in row}
        assert {"tfvq", "vector-quantize-pytorch"} <= libraries, (name, libraries)
    assert any(row.startswith("| bare search") for row in rows)
    text = results.read_text()
    from tfvq.utils.machine import cpu_info, vector_kind

    # This machine's own section, named by its CPU and its kind, next to the others.
    heading = f"## Quantizer, {cpu_info()[0]}, {vector_kind()} (issues 2, 16, 17)"
    assert heading in text and "## Other\n\nkept" in text
    assert text.count(heading) == 1 and text.count("| tfvq | LookupFreeQuantizer") == 1
    # The references' versions as installed, not as once written down.
    from importlib import metadata

    for name in ("vector-quantize-pytorch", "torch", "keras"):
        assert f"{name} {metadata.version(name)}" in text, name
