"""examples/colorize.py end to end at a tiny setting: metrics for the model and the gray baseline."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "colorize.py"


@pytest.mark.slow
def test_colorize_example_writes_metrics_and_grid(tmp_path, cifar10_data_dir):
    args = [
        sys.executable, str(SCRIPT), f"--output_dir={tmp_path}", f"--data_dir={cifar10_data_dir}",
        "--head=classification", "--epochs=1", "--steps_per_epoch=2", "--batch_size=8",
        "--train_examples=64", "--rebalance_examples=64", "--eval_examples=32", "--num_images=4",
        "--hidden_channels=8", "--residual_channels=4", "--num_residual_layers=1",
        "--feature_channels=8",
    ]
    subprocess.run(args, check=True, capture_output=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for who in ("model", "gray_baseline"):
        assert set(metrics[who]) == {"psnr", "ab_error", "ab_auc", "num_images"}, who
        assert metrics[who]["num_images"] == 32
        assert 0.0 <= metrics[who]["ab_auc"] <= 1.0
    assert set(metrics["model_beats_gray"]) == {"psnr", "ab_error", "ab_auc"}
    assert metrics["steps"] == 2 and metrics["head"] == "classification"
    for name in ("colorized.png", "model.keras"):
        assert (tmp_path / name).stat().st_size > 0, name
