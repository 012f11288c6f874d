"""examples/generate.py at a tiny setting: pictures and metrics written, saved models reused."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "generate.py"


def _run(output_dir, data_dir, *extra):
    args = [
        sys.executable, str(SCRIPT), f"--output_dir={output_dir}", f"--data_dir={data_dir}",
        "--train_examples=256", "--eval_examples=64", "--batch_size=32", "--vqvae_epochs=1",
        "--vqvae_steps_per_epoch=3", "--prior_epochs=1", "--prior_steps_per_epoch=3",
        "--num_embeddings=16", "--embedding_dim=4", "--hidden_channels=8", "--prior_channels=8",
        "--prior_layers=2", "--num_samples=4", *extra,
    ]
    subprocess.run(args, check=True, capture_output=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return json.loads((Path(output_dir) / "metrics.json").read_text())


@pytest.mark.slow
def test_generate_example_writes_pictures_and_bounds(tmp_path, mnist_data_dir):
    # Class-conditional, so that the labelled path (codes with labels, one sample per class)
    # is covered by the same run.
    metrics = _run(tmp_path, mnist_data_dir, "--class_conditional", "--num_samples=10")
    assert metrics["samples"] == 10  # one per class
    for name in ("samples.png", "interpolation.png", "reconstructions.png", "vqvae.keras",
                 "prior.keras", "history_vqvae.csv", "history_prior.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    terms = metrics["bits_per_dim_terms"]
    assert metrics["test_examples"] == 64
    assert metrics["bits_per_dim"] == pytest.approx(
        terms["reconstruction_bits_per_dim"] + terms["prior_bits_per_dim"])
    # A barely trained prior over 16 codes on a 7x7 map costs about log2(16) bits per code.
    assert terms["prior_bits_per_dim"] < 1.5 * 49 * math.log2(16) / 784
    assert 0.0 <= metrics["prior_val_accuracy"] <= 1.0
    assert metrics["keras_io_prior_val_accuracy"] == 0.673

    # A second run loads both saved models instead of training them again.
    again = _run(tmp_path, mnist_data_dir, "--class_conditional", "--num_samples=10")
    assert again["train_seconds"]["vqvae"] == 0.0 and again["train_seconds"]["prior"] == 0.0
    assert again["prior_val_accuracy"] == pytest.approx(metrics["prior_val_accuracy"])
