"""Results of a search (trials.csv, best hyperparameters, search.png) from a real keras-tuner
oracle whose trials are reported by hand, so no model has to train."""

import csv
import json

import keras_tuner as kt
import numpy as np
import pytest
from PIL import Image

import tfvq

# (objective value, parameters, step time) per trial; trial "1" is the best PSNR.
REPORTS = [(20.0, 1000, 0.01), (25.0, 5000, 0.03), (22.0, 200, 0.005)]


@pytest.fixture
def oracle(tmp_path):
    oracle = kt.oracles.RandomSearchOracle(objective=tfvq.tuning.make_objective("psnr"),
                                           max_trials=4, seed=0)
    oracle._set_project_dir(str(tmp_path), "project")
    hp = kt.HyperParameters()
    hp.Choice("hidden_channels", [8, 16, 32, 64])
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
    oracle.update_space(hp)
    for psnr, params, step in REPORTS:
        trial = oracle.create_trial("tuner0")
        oracle.update_trial(trial.trial_id,
                            {"val_psnr": psnr, "parameters": params, "step_time": step})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    failed = oracle.create_trial("tuner0")  # a fourth trial that failed: no score
    failed.status = "FAILED"
    oracle.end_trial(failed)
    return oracle


def test_trials_csv_has_one_row_per_trial_with_cost(oracle, tmp_path):
    path = tmp_path / "out" / "trials.csv"
    tfvq.tuning.write_trials_csv(oracle, path)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["trial_id"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["status"] for r in rows] == ["COMPLETED"] * 3 + ["FAILED"]
    for row, (psnr, params, step) in zip(rows, REPORTS):
        assert float(row["val_psnr"]) == psnr
        assert int(row["parameters"]) == params
        assert float(row["step_time"]) == step
        assert int(row["hidden_channels"]) in (8, 16, 32, 64)
        assert 1e-4 <= float(row["learning_rate"]) <= 1e-2
    assert rows[3]["val_psnr"] == "" and rows[3]["parameters"] == ""


def test_best_hyperparameters_follow_the_objective_direction(oracle, tmp_path):
    path = tmp_path / "best_hyperparameters.json"
    values = tfvq.tuning.write_best_hyperparameters(oracle, path)
    assert json.loads(path.read_text()) == values
    assert values == {k: v for k, v in oracle.trials["1"].hyperparameters.values.items()}


def test_search_plot_is_written(oracle, tmp_path):
    path = tmp_path / "search.png"
    fig = tfvq.plots.search_results(oracle, path=path)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "parameters"
    assert ax.get_ylabel() == "val_psnr (max)"
    best = ax.collections[1].get_offsets()
    np.testing.assert_allclose(best, [[5000, 25.0]])  # the star marks the best trial
    assert "trial 1" in ax.get_legend().get_texts()[0].get_text()
    with Image.open(path) as image:
        assert image.size == (600, 400)


def test_plot_refuses_a_search_without_scores(tmp_path):
    oracle = kt.oracles.RandomSearchOracle(objective="val_loss", max_trials=1)
    oracle._set_project_dir(str(tmp_path), "empty")
    with pytest.raises(ValueError, match="no completed trial"):
        tfvq.plots.search_results(oracle)
