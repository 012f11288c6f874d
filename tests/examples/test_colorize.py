"""examples/colorize.py at a tiny setting: metrics for the model and the gray baseline, resumption,
two workers."""

import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "colorize.py"
TINY = dict(epochs=1, steps_per_epoch=2, batch_size=8, train_examples=64, eval_examples=32,
            num_images=4, hidden_channels=8, residual_channels=4, num_residual_layers=1,
            feature_channels=8)


@pytest.mark.slow
def test_command_line_on_two_workers_sharing_the_output_folder(tmp_path, cifar10_data_dir,
                                                               run_workers):
    # The classification head, from the command line, as two machines run it on a shared
    # folder. Before, both workers took themselves for the chief, and both wrote model.keras
    # (one failed on the file's lock); the scores then saw both workers' predictions (64 rows
    # for a batch of 32).
    args = [
        sys.executable, str(SCRIPT), f"--output_dir={tmp_path}", f"--data_dir={cifar10_data_dir}",
        "--strategy=multiworker", "--head=classification", "--epochs=1", "--steps_per_epoch=2",
        "--batch_size=8", "--train_examples=64", "--rebalance_examples=64", "--eval_examples=32",
        "--num_images=4", "--hidden_channels=8", "--residual_channels=4",
        "--num_residual_layers=1", "--feature_channels=8",
    ]
    run_workers(lambda index: args)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["head"] == "classification"
    assert metrics["replicas"] == 2
    for who in ("model", "gray_baseline"):
        assert metrics[who]["num_images"] == 32
        assert 0.0 <= metrics[who]["ab_auc"] <= 1.0
    assert len(metrics["train_history"]["loss"]) == 1
    for name in ("colorized.png", "model.keras", "history.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "colorized.png", "history.csv", "metrics.json", "model.keras"]  # no backup left


def _run(colorize, workdir, data_dir, **overrides):
    config = colorize.Config(data_dir=data_dir, **{**TINY, **overrides})
    return colorize.train_and_evaluate(config, str(workdir))


@pytest.mark.slow
def test_train_and_evaluate_scores_and_does_not_retrain_a_finished_run(example, tmp_path,
                                                                      cifar10_data_dir):
    colorize = example("colorize")
    metrics = _run(colorize, tmp_path, cifar10_data_dir)
    for who in ("model", "gray_baseline"):
        assert set(metrics[who]) == {"psnr", "ab_error", "ab_auc", "num_images"}, who
        assert metrics[who]["num_images"] == 32
        assert 0.0 <= metrics[who]["ab_auc"] <= 1.0
    assert set(metrics["model_beats_gray"]) == {"psnr", "ab_error", "ab_auc"}
    assert metrics["steps"] == 2 and metrics["head"] == "regression"
    assert len(metrics["train_history"]["loss"]) == 1
    for name in ("colorized.png", "model.keras", "history.csv", "metrics.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert not (tmp_path / "backup").exists()

    # The same run again loads the trained model: no step taken, the same scores.
    again = _run(colorize, tmp_path, cifar10_data_dir)
    assert again["steps"] == 2 and again["train_seconds"] == 0.0
    assert again["train_history"] == metrics["train_history"]
    assert again["model"] == pytest.approx(metrics["model"])

    # One more epoch continues the finished run.
    longer = _run(colorize, tmp_path, cifar10_data_dir, epochs=2)
    assert longer["steps"] == 4 and len(longer["train_history"]["loss"]) == 2


@pytest.mark.slow
def test_train_and_evaluate_resumes_an_interrupted_run(example, tmp_path, cifar10_data_dir,
                                                       interrupt):
    colorize = example("colorize")
    with pytest.raises(interrupt.error), interrupt.after(0):
        _run(colorize, tmp_path, cifar10_data_dir, epochs=2)
    assert (tmp_path / "backup").is_dir() and not (tmp_path / "metrics.json").exists()

    metrics = _run(colorize, tmp_path, cifar10_data_dir, epochs=2)
    # Restarted from scratch, it would have logged two more epochs after the first one.
    assert metrics["steps"] == 4 and len(metrics["train_history"]["loss"]) == 2
    assert not (tmp_path / "backup").exists()
