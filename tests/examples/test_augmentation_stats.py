"""The interval behind examples/experiments/augmentation.py's verdicts, against known values.

The script is imported in a process of its own, as the experiments' tests run it: absl flags
are global to a process, and the script defines its flags on import.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[2] / "examples" / "experiments"


def _call(function, arguments):
    """[augmentation.<function>(*a) for a in arguments], in a fresh process."""
    program = ("import json, sys, augmentation; print(json.dumps([augmentation." + function
               + "(*a) for a in json.loads(sys.argv[1])]))")
    done = subprocess.run([sys.executable, "-c", program, json.dumps(arguments)],
                          cwd=EXPERIMENTS, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_mean_interval_known_values():
    import numpy as np
    from scipy import stats

    rng = np.random.default_rng(0)
    random = rng.normal(0.8, 0.02, 5).tolist()
    cases = [[[1.0, 2.0, 3.0], 0.95], [random, 0.95], [[0.81, 0.79, 0.84], 0.90], [[0.7], 0.95],
             [[0.5, 0.5, 0.5], 0.95]]
    hand, scipy_case, ninety, single, constant = _call("mean_interval", cases)
    # By hand: mean 2, s = 1, t(0.975, 2 dof) = 4.302653 (printed t tables), so the
    # half-width is 4.302653 / sqrt(3) = 2.484138.
    assert hand["mean"] == 2.0 and hand["std"] == pytest.approx(1.0) and hand["n"] == 3
    assert hand["half_width"] == pytest.approx(2.484138, abs=1e-6)
    assert (hand["low"], hand["high"]) == pytest.approx((2.0 - 2.484138, 2.0 + 2.484138))
    expected = stats.t.interval(0.95, 4, loc=np.mean(random), scale=stats.sem(random))
    assert (scipy_case["low"], scipy_case["high"]) == pytest.approx(expected, rel=1e-12)
    # 90 %: t(0.95, 2 dof) = 2.919986; s = 0.025166 for (0.81, 0.79, 0.84).
    assert ninety["half_width"] == pytest.approx(2.919986 * 0.0251661 / 3**0.5, rel=1e-5)
    assert single["mean"] == 0.7 and single["low"] is None and single["half_width"] is None
    assert constant["low"] == constant["mean"] == constant["high"] == 0.5


def test_verdict_reads_the_interval():
    intervals = [{"low": 0.01, "high": 0.03}, {"low": -0.03, "high": -0.01},
                 {"low": -0.01, "high": 0.02}, {"low": None, "high": None}]
    assert _call("verdict", [[i] for i in intervals]) == [
        "helps", "hurts", "no detectable difference", "undetermined (one seed)"]
