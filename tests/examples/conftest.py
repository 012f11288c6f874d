"""The example scripts imported in-process, and a training cut short, for the examples' tests."""

import contextlib
import importlib.util
import sys
from pathlib import Path

import keras
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _import(path, name):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def example():
    """`example("colorize")`: examples/colorize.py as a module, imported once per session
    (`example("common_flags")`: the module the scripts share).

    The scripts `import common_flags`, which a script finds beside itself (Python puts its
    folder first on its path); here it is imported from its file under that name first, so
    that no path edit is needed. The scripts define their flags only when run, so importing
    them here defines none.
    """

    def load(name):
        shared = _import(EXAMPLES / "common_flags.py", "common_flags")
        if name == "common_flags":
            return shared
        return _import(EXAMPLES / f"{name}.py", f"tfvq_example_{name}")

    return load


class Interrupted(Exception):
    """Stands for a training process killed between two epochs."""


class _Interrupt:
    error = Interrupted

    @contextlib.contextmanager
    def after(self, epoch):
        """Within: training stops with `Interrupted` once epoch `epoch` (from 0) is logged.

        `common_flags.fit_resumable` adds its CSVLogger last, so by then the epoch's backup,
        checkpoint and history row are written, as they are when a process dies between two
        epochs.
        """
        log_epoch = keras.callbacks.CSVLogger.on_epoch_end

        def log_then_stop(logger, index, logs=None):
            log_epoch(logger, index, logs)
            if index == epoch:
                raise Interrupted(f"interrupted after epoch {epoch}")

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(keras.callbacks.CSVLogger, "on_epoch_end", log_then_stop)
            yield


@pytest.fixture
def interrupt():
    """`with pytest.raises(interrupt.error), interrupt.after(0): train(...)`: a run cut short."""
    return _Interrupt()
