"""The layering of DESIGN.md, as the import-linter contracts in `.importlinter`.

`lint-imports` reads imports statically (imports inside functions count too), so a lazy import
does not hide a dependency from it. The second test breaks the rules on a copy of the package,
so the first cannot pass because the contracts check nothing.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".importlinter"


def _lint_imports(cwd, pythonpath=None):
    """Runs `lint-imports` on `cwd`'s config (through this interpreter); returns (rc, output)."""
    env = dict(os.environ)
    if pythonpath is not None:
        # The copy under test must be found before the installed (editable) tfvq.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath),
                                                          os.environ.get("PYTHONPATH")]))
    # --no-cache: a cache written for one tree must not answer for another.
    command = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
               "lint_imports_command()", ".importlinter", "--no-cache"]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_contracts_are_kept():
    rc, output = _lint_imports(ROOT)
    assert rc == 0, f"an import-linter contract is broken:\n{output}"
    assert "0 broken" in output, output


@pytest.mark.parametrize(
    "module, violation, broken",
    [
        # The cycle of issue 15: models importing metrics, which import models.
        ("tfvq/models/colorizer.py", "from tfvq.metrics.color import ab_error",
         ["tfvq.models imports nothing from metrics", "No import cycles"]),
        ("tfvq/layers/conv_blocks.py", "import tfvq.models.vae",
         ["tfvq.layers imports nothing from models"]),
        ("tfvq/data/transforms.py", "from tfvq.models import base",
         ["tfvq.data imports nothing from models"]),
        ("tfvq/losses.py", "import tfvq.training", ["tfvq.losses (used by the models)"]),
        # No forbidden contract covers utils: only the acyclic one sees this cycle.
        ("tfvq/utils/checks.py", "import tfvq.layers.conv_blocks", ["No import cycles"]),
    ],
    ids=["models-metrics-cycle", "layers-models", "data-models", "losses-training",
         "utils-layers-cycle"],
)
def test_contracts_catch_a_violation(tmp_path, module, violation, broken):
    shutil.copytree(ROOT / "tfvq", tmp_path / "tfvq",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(CONFIG, tmp_path / ".importlinter")
    with open(tmp_path / module, "a") as f:
        f.write(f"\n{violation}  # deliberate violation\n")
    rc, output = _lint_imports(tmp_path, pythonpath=tmp_path)
    assert rc != 0, f"the contracts did not catch `{violation}` in {module}:\n{output}"
    # Each contract this import breaks is reported in the broken section (it may break more:
    # an upward import usually closes a cycle as well).
    section = output.split("Broken contracts", 1)[-1]
    for name in broken:
        assert name in section, output
