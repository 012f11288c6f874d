"""tfvq.training: a distribution strategy from one word, what its workers share with the chief,
and the callbacks a training run wants."""

from tfvq.training.callbacks import (
    CodebookMonitor,
    ReconstructionImages,
    backup_dir_for,
    default_callbacks,
)
from tfvq.training.jit import choose_jit_compile
from tfvq.training.strategies import (
    STRATEGIES,
    chief_values,
    copy_from_chief,
    jit_compile_for,
    make_strategy,
    supports_xla,
    worker_index,
)

__all__ = [
    "STRATEGIES",
    "CodebookMonitor",
    "ReconstructionImages",
    "backup_dir_for",
    "chief_values",
    "choose_jit_compile",
    "copy_from_chief",
    "default_callbacks",
    "jit_compile_for",
    "make_strategy",
    "supports_xla",
    "worker_index",
]
