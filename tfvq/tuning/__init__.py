"""tfvq.tuning: keras-tuner hypermodels for AE, VAE and VQ-VAE, a search helper, and results.

Example:
    >>> import tfvq
    >>> tuner = tfvq.tuning.search("vqvae", train, test, tuner="hyperband", max_epochs=4,
    ...                            directory="runs/tune")
    >>> tfvq.tuning.write_trials_csv(tuner, "runs/tune/trials.csv")
"""

from tfvq.tuning.hypermodels import AEHyperModel, TrialCost, VAEHyperModel, VQVAEHyperModel
from tfvq.tuning.results import (
    best_hyperparameters,
    plot_search,
    trials_table,
    write_best_hyperparameters,
    write_trials_csv,
)
from tfvq.tuning.search import (
    HYPERMODELS,
    OBJECTIVES,
    TUNERS,
    make_objective,
    make_tuner,
    role,
    search,
)

__all__ = [
    "HYPERMODELS",
    "OBJECTIVES",
    "TUNERS",
    "AEHyperModel",
    "TrialCost",
    "VAEHyperModel",
    "VQVAEHyperModel",
    "best_hyperparameters",
    "make_objective",
    "make_tuner",
    "plot_search",
    "role",
    "search",
    "trials_table",
    "write_best_hyperparameters",
    "write_trials_csv",
]
