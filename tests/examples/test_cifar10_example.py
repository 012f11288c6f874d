"""The main job, end to end at a tiny setting: files written, resumption continues the run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "cifar10.py"


def _run(output_dir, data_dir, epochs):
    args = [
        sys.executable, str(SCRIPT), f"--output_dir={output_dir}", f"--data_dir={data_dir}",
        f"--epochs={epochs}", "--steps_per_epoch=3", "--batch_size=8", "--eval_examples=64",
        "--hidden_channels=8", "--residual_channels=4", "--num_residual_layers=1",
        "--num_embeddings=16", "--embedding_dim=4",
    ]
    subprocess.run(args, check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return json.loads((Path(output_dir) / "metrics.json").read_text())


@pytest.mark.slow
def test_cifar10_example_writes_outputs_and_resumes(tmp_path, cifar10_data_dir):
    metrics = _run(tmp_path, cifar10_data_dir, epochs=1)
    for name in ("metrics.json", "reconstructions.png", "training_curves.png", "model.keras",
                 "history.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "logs").is_dir()
    assert metrics["steps"] == 3
    for key in ("mse", "normalized_mse", "psnr", "perplexity", "usage"):
        assert key in metrics["test"]
    assert metrics["test"]["normalized_mse"] == pytest.approx(
        metrics["test"]["mse"] / metrics["data_variance"], rel=1e-4)

    # A second run with more epochs continues from the saved state instead of starting over.
    metrics = _run(tmp_path, cifar10_data_dir, epochs=2)
    assert metrics["steps"] == 6
    history = (tmp_path / "history.csv").read_text().strip().splitlines()
    assert len(history) == 3  # header + one row per epoch across both runs
