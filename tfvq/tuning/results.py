"""A finished search as a table, a CSV, a JSON of the best hyperparameters and a plot.

Example:
    >>> rows = trials_table(tuner)                 # one dict per trial
    >>> write_trials_csv(tuner, "runs/tune/trials.csv")
    >>> plot_search(tuner, path="runs/tune/search.png")
"""

import csv
import json
import math
import os

import numpy as np
from matplotlib.figure import Figure

__all__ = ["best_hyperparameters", "plot_search", "trials_table", "write_best_hyperparameters",
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


def plot_search(tuner, figsize=(6.0, 4.0), dpi=100, path=None):
    """Objective against parameter count, one point per completed trial, the best one starred.

    Points are coloured by step time, so the cheapest of the good models stand out.

    Args:
        tuner: a keras-tuner `Tuner` (or its oracle) after a search.
        figsize, dpi: figure size in inches and resolution of the PNG.
        path: where to write a PNG, if given.

    Returns:
        A `matplotlib.figure.Figure` (built without pyplot: no window, no global state).
    """
    oracle = _oracle(tuner)
    name = oracle.objective.name
    rows = [r for r in trials_table(oracle)
            if r["status"] == "COMPLETED" and r[name] is not None and r["parameters"] is not None
            and math.isfinite(r[name])]
    if not rows:
        raise ValueError("plot_search: the search has no completed trial with a score to plot")
    params = np.array([r["parameters"] for r in rows], dtype=float)
    scores = np.array([r[name] for r in rows], dtype=float)
    times = np.array([np.nan if r["step_time"] is None else r["step_time"] * 1e3 for r in rows])
    best = int(np.argmax(scores) if oracle.objective.direction == "max" else np.argmin(scores))

    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.subplots()
    points = ax.scatter(params, scores, c=times, cmap="viridis", s=36, edgecolors="k",
                        linewidths=0.5)
    fig.colorbar(points, ax=ax, label="step time (ms)")
    ax.scatter(params[best:best + 1], scores[best:best + 1], marker="*", s=260,
               facecolors="none", edgecolors="red", linewidths=1.5,
               label=f"best: trial {rows[best]['trial_id']}")
    if params.max() / max(params.min(), 1) > 20:
        ax.set_xscale("log")
    ax.margins(0.1)
    ax.set_xlabel("parameters")
    ax.set_ylabel(f"{name} ({oracle.objective.direction})")
    ax.set_title(f"{len(rows)} trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="best")
    fig.tight_layout()
    if path is not None:
        os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
        fig.savefig(path, dpi=dpi, format="png")
    return fig
