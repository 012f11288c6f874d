"""Real (tiny) searches on MNIST: each tuner, MirroredStrategy trials, resuming after a kill,
and keras-tuner's chief/worker mode with two worker processes."""

import collections
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import tfvq

from .search_process import TINY_SPACE

SCRIPT = Path(__file__).with_name("search_process.py")
MNIST = (28, 28, 1)


def _data(data_dir):
    train = tfvq.data.load("mnist", "train[:256]", 32, data_dir=data_dir, seed=0).repeat()
    test = tfvq.data.load("mnist", "test[:64]", 64, data_dir=data_dir)
    return train, test


def _statuses(project):
    statuses = {}
    for path in Path(project).glob("trial_*/trial.json"):
        trial = json.loads(path.read_text())
        statuses[trial["trial_id"]] = trial["status"]
    return statuses


@pytest.mark.slow
@pytest.mark.parametrize("tuner_name", ["random", "bayesian", "hyperband"])
def test_tiny_search_on_mnist(tuner_name, tmp_path, mnist_data_dir, mirrored_strategy):
    train, test = _data(mnist_data_dir)
    # Random search's trials train under the 2-replica MirroredStrategy, as on several GPUs.
    strategy = mirrored_strategy if tuner_name == "random" else None
    objective = "psnr" if tuner_name == "bayesian" else "reconstruction_loss"
    extra = dict(factor=2, max_trials=3, max_epochs=2) if tuner_name == "hyperband" else dict(
        max_trials=2, max_epochs=1)
    hypermodel = tfvq.tuning.VQVAEHyperModel(MNIST, space=TINY_SPACE, jit_compile=False)
    tuner = tfvq.tuning.search(hypermodel, train, test, tuner=tuner_name, objective=objective,
                               steps_per_epoch=3, directory=tmp_path, seed=1, verbose=0,
                               distribution_strategy=strategy, **extra)

    rows = tfvq.tuning.trials_table(tuner)
    name = tuner.oracle.objective.name
    assert len(rows) == extra["max_trials"]
    assert all(row["status"] == "COMPLETED" and math.isfinite(row[name]) for row in rows)
    for row in rows:
        assert 0 < row["step_time"] < 60
        hp = tuner.oracle.trials[row["trial_id"]].hyperparameters
        assert row["parameters"] == tuner.hypermodel.build(hp).count_params()
    best = tuner.oracle.get_best_trials(1)[0]
    pick = max if objective == "psnr" else min
    assert best.score == pick(row[name] for row in rows)
    if tuner_name == "hyperband":
        # Successive halving: the third trial continues the better first-round model.
        first_round = [r for r in rows if r["tuner/round"] == 0]
        assert [r["tuner/epochs"] for r in first_round] == [1, 1]
        third = rows[2]
        assert (third["tuner/round"], third["tuner/initial_epoch"], third["tuner/epochs"]) == (1, 1, 2)
        parent = min(first_round, key=lambda r: r[name])
        assert third["tuner/trial_id"] == parent["trial_id"]
    if strategy is not None:
        model = tuner.get_best_models(1)[0]
        assert model.distribute_strategy is strategy


def _run(args, log, env=None):
    return subprocess.run([sys.executable, str(SCRIPT), *args, f"--log={log}"],
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_search_resumes_after_a_kill(tmp_path, mnist_data_dir):
    project = tmp_path / "search"
    args = [str(tmp_path), mnist_data_dir, "--max_trials=3"]
    killed = _run(args + ["--kill_in_trial=2"], tmp_path / "run1.log")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert _statuses(project) == {"0": "COMPLETED", "1": "RUNNING"}
    finished = (project / "trial_0" / "trial.json").read_text()
    checkpoint = project / "trial_0" / "checkpoint.weights.h5"
    mtime = checkpoint.stat().st_mtime_ns

    resumed = _run(args, tmp_path / "run2.log")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    started = [line.split()[1] for line in (tmp_path / "run2.log").read_text().splitlines()]
    # The interrupted trial runs again, the new one runs, the finished one is not redone.
    assert started == ["1", "2"]
    assert _statuses(project) == {"0": "COMPLETED", "1": "COMPLETED", "2": "COMPLETED"}
    assert (project / "trial_0" / "trial.json").read_text() == finished
    assert checkpoint.stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_chief_and_two_workers_share_trials(tmp_path, mnist_data_dir, free_ports):
    log = tmp_path / "trials.log"
    cluster = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_ports(1)[0])}
    args = [sys.executable, str(SCRIPT), str(tmp_path), mnist_data_dir, "--max_trials=3",
            f"--log={log}", "--barrier=2"]
    processes = {
        tuner_id: subprocess.Popen(args, env={**os.environ, **cluster, "KERASTUNER_TUNER_ID": tuner_id},
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for tuner_id in ("chief", "tuner0", "tuner1")
    }
    try:
        outputs = {tuner_id: p.communicate(timeout=300)[0] for tuner_id, p in processes.items()}
    finally:
        for p in processes.values():
            if p.poll() is None:
                p.kill()
    for tuner_id, p in processes.items():
        assert p.returncode == 0, f"{tuner_id}:\n{outputs[tuner_id][-3000:]}"

    runs = [line.split() for line in log.read_text().splitlines()]
    by_trial = collections.Counter(trial for _, trial in runs)
    assert set(by_trial) == {"0", "1", "2"}
    assert all(count == 1 for count in by_trial.values()), runs  # none ran twice
    assert {tuner for tuner, _ in runs} == {"tuner0", "tuner1"}  # shared between the workers
    assert _statuses(tmp_path / "search") == dict.fromkeys(["0", "1", "2"], "COMPLETED")
