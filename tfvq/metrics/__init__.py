"""tfvq.metrics: evaluation quantities computed over a dataset (likelihood bounds, codes, colour)."""

from tfvq.metrics.codebook import summarize_codes
from tfvq.metrics.likelihood import bits_per_dim

__all__ = ["bits_per_dim", "summarize_codes"]

from tfvq.metrics.color import (  # noqa: E402
    ab_accuracy,
    ab_accuracy_auc,
    ab_error,
    colorization_metrics,
    gray_colorization,
)

__all__ += [
    "ab_accuracy",
    "ab_accuracy_auc",
    "ab_error",
    "colorization_metrics",
    "gray_colorization",
]
