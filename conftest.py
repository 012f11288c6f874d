"""Runs the `Example:` sections of tfvq's docstrings as doctests, with tfvq, keras, np, tf at hand.

Only modules of the `tfvq` package are collected this way (pytest.ini puts `tfvq` in
`testpaths`), rather than through `--doctest-modules`, which would also import the helper
scripts under tests/ that are meant to run as their own processes.
"""

import re
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


# Examples that read a whole prepared dataset, run a search or train a model (each `fit` traces
# a training step, seconds on a 2-core CPU): in the slow set, like the tests that do.
_SLOW_EXAMPLE = re.compile(r"data\.load\(|pixel_variance\(|tuning\.search\(|\.fit\(")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if isinstance(item, DoctestItem) and _SLOW_EXAMPLE.search(
                "".join(example.source for example in item.dtest.examples)):
            item.add_marker(pytest.mark.slow)


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
    tmp_path = request.getfixturevalue("tmp_path")
    request.getfixturevalue("monkeypatch").chdir(tmp_path)
    if "photos/" in "".join(example.source for example in request.node.dtest.examples):
        _photo_folder(tmp_path / "photos")


def _photo_folder(root):
    """`photos/` for the examples that read a folder: real photos in two class folders."""
    from PIL import Image
    from skimage import data

    for label, photo in {"cats": data.chelsea(), "rockets": data.rocket()}.items():
        (root / label).mkdir(parents=True)
        for i in range(10):
            side = 140 + 12 * i
            Image.fromarray(photo[i * 5:i * 5 + side, i * 7:i * 7 + side]).save(
                root / label / f"{i:02d}.jpg", quality=90)
