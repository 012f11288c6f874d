"""A finished search as a table, a CSV and a JSON of the best hyperparameters.

Its figure (objective against parameter count) is `tfvq.plots.search_results`, beside the
other figures, so that tuning needs no matplotlib.
"""

import csv
import json
import os

__all__ = ["best_hyperparameters", "trials_table", "write_best_hyperparameters",
           "write_trials_csv"]

_COST_KEYS = ("parameters", "step_time")


def _oracle(tuner_or_oracle):
    return getattr(tuner_or_oracle, "oracle", tuner_or_oracle)


def _metric(trial, name):
    if not trial.metrics.exists(name):
        return None
    value = trial.metrics.get_last_value(name)
    return None if value is None else float(value)


def trials_table(tuner):
    """One row per trial, in trial order: id, status, objective, cost, then hyperparameters.

    Args:
        tuner: a keras-tuner `Tuner` (or its oracle) after a search.

    Returns:
        A list of dicts with keys `trial_id`, `status`, the objective's name (its best value in
        the trial, None unless completed), `parameters`, `step_time` (seconds per training
        step), then each hyperparameter by name.
    """
    oracle = _oracle(tuner)
    objective = oracle.objective.name
    rows = []
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        row = {"trial_id": trial_id, "status": trial.status,
               objective: None if trial.score is None else float(trial.score)}
        for key in _COST_KEYS:
            row[key] = _metric(trial, key)
        if row["parameters"] is not None:
            row["parameters"] = int(row["parameters"])
        row.update(trial.hyperparameters.values)
        rows.append(row)
    return rows


def write_trials_csv(tuner, path):
    """Writes `trials_table(tuner)` as CSV (columns: the union over trials) and returns the rows."""
    rows = trials_table(tuner)
    columns = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def best_hyperparameters(tuner):
    """The best completed trial's hyperparameter values (without keras-tuner's `tuner/` ones).

    Args:
        tuner: a keras-tuner `Tuner` (or its oracle) after a search.

    Returns:
        A dict of hyperparameter name -> value; `tuner.hypermodel.build` takes it back as
        `keras_tuner.HyperParameters` values.
    """
    best = [t for t in _oracle(tuner).get_best_trials(1) if t.status == "COMPLETED"]
    if not best:
        raise ValueError("best_hyperparameters: the search has no completed trial")
    return {k: v for k, v in best[0].hyperparameters.values.items() if not k.startswith("tuner/")}


def write_best_hyperparameters(tuner, path):
    """Writes `best_hyperparameters(tuner)` as JSON and returns it."""
    values = best_hyperparameters(tuner)
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(values, f, indent=2, sort_keys=True)
    return values
