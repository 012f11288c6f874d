"""Runs the `Example:` sections of tfvq's docstrings as doctests, with tfvq, keras, np, tf at hand.

Only modules of the `tfvq` package are collected this way (pytest.ini puts `tfvq` in
`testpaths`), rather than through `--doctest-modules`, which would also import the helper
scripts under tests/ that are meant to run as their own processes.
"""

from pathlib import Path

import pytest
from _pytest.doctest import DoctestItem, DoctestModule

PACKAGE = Path(__file__).resolve().parent / "tfvq"


def pytest_collect_file(file_path, parent):
    if file_path.suffix != ".py" or PACKAGE not in file_path.parents:
        return None
    if parent.config.getoption("doctestmodules", False):
        return None  # --doctest-modules collects it already
    return DoctestModule.from_parent(parent, path=file_path)


@pytest.fixture(autouse=True)
def _doctest_setup(request):
    """For doctests only: tfvq, keras, np and tf in the namespace, and a scratch working
    directory, so that examples writing "runs/..." or "grid.png" leave the checkout clean."""
    if not isinstance(request.node, DoctestItem):
        return
    import keras
    import numpy as np
    import tensorflow as tf

    import tfvq

    request.getfixturevalue("doctest_namespace").update(tfvq=tfvq, keras=keras, np=np, tf=tf)
    request.getfixturevalue("monkeypatch").chdir(request.getfixturevalue("tmp_path"))
