"""benchmarks/prior_sampling.py: the naive sampler it times draws what PixelCNNPrior.sample draws."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "prior_sampling.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmarks_prior_sampling", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_naive_and_fast_samplers_draw_the_same_codes(bench):
    result = bench.run(num_maps=3, latent_shape=(3, 4), num_embeddings=5, hidden_channels=8,
                       num_layers=2, runs=1)
    assert result["same"] == 1.0
    assert result["fast_s"] > 0 and result["naive_s"] > 0
    assert result["ratio"] == pytest.approx(result["naive_s"] / result["fast_s"])
    table = bench.format_result(result, 3, (3, 4))
    assert "| `PixelCNNPrior.sample` |" in table and "100.00% of the positions" in table
