"""examples/experiments/augmentation.py's verdicts, read from intervals of known sign.

The interval itself (`tfvq.utils.stats.mean_interval`) is tested in tests/utils/test_stats.py.

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


@pytest.mark.slow  # the child process imports TensorFlow (through tfvq): 6-13 s for a table lookup
def test_verdict_reads_the_interval():
    intervals = [{"low": 0.01, "high": 0.03}, {"low": -0.03, "high": -0.01},
                 {"low": -0.01, "high": 0.02}, {"low": None, "high": None}]
    assert _call("verdict", [[i] for i in intervals]) == [
        "helps", "hurts", "no detectable difference", "undetermined (one seed)"]
