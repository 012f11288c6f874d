"""examples/tune.py at a tiny setting on MNIST: every promised file is written."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

import tfvq  # noqa: F401  (registers the tfvq classes for load_model)

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "tune.py"
TINY_SPACE = {"hidden_channels": 8, "residual_channels": 4, "num_residual_layers": 1,
              "num_embeddings": [8, 16], "embedding_dim": 4, "downsample": "stride"}
TINY = dict(model="vqvae", tuner="random", max_trials=2, max_epochs=1, steps_per_epoch=3,
            batch_size=16, validation_examples=64, test_examples=64)


@pytest.mark.slow
def test_tune_command_line_writes_results_and_the_best_model(tmp_path, mnist_data_dir):
    # One search, from the command line (`search(config, workdir)` is what it runs): a second,
    # in-process search for the same files would double the test's cost.
    args = [sys.executable, str(SCRIPT), f"--directory={tmp_path}", f"--data_dir={mnist_data_dir}",
            *(f"--{name}={value}" for name, value in TINY.items()),
            f"--space={json.dumps(TINY_SPACE)}"]
    run = subprocess.run(args, capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Search space summary" in run.stdout and "Results summary" in run.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["trials"] == 2 and metrics["tuner"] == "random"

    with open(tmp_path / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    for row in rows:
        assert row["status"] == "COMPLETED"
        assert int(row["parameters"]) > 0 and float(row["step_time"]) > 0
        assert row["num_embeddings"] in ("8", "16") and row["hidden_channels"] == "8"
    best_row = min(rows, key=lambda r: float(r["val_reconstruction_loss"]))

    best = json.loads((tmp_path / "best_hyperparameters.json").read_text())
    assert best["num_embeddings"] == int(best_row["num_embeddings"])
    assert metrics["best_trial"] == best_row["trial_id"]
    assert metrics["best_objective"] == pytest.approx(float(best_row["val_reconstruction_loss"]))
    assert (tmp_path / "search.png").stat().st_size > 0

    model = keras.models.load_model(tmp_path / "best_model.keras")
    assert model.num_embeddings == best["num_embeddings"]
    assert model.count_params() == metrics["parameters"] == int(best_row["parameters"])
