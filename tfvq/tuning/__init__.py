"""tfvq.tuning: keras-tuner hypermodels for AE, VAE and VQ-VAE, a search helper, and results.

Example:
    >>> import tfvq
    >>> images = np.random.default_rng(0).uniform(0, 1, (16, 16, 16, 1)).astype("float32")
    >>> train = tf.data.Dataset.from_tensor_slices(images).batch(8)
    >>> tiny = {"hidden_channels": 8, "residual_channels": 4, "num_residual_layers": 1,
    ...         "downsample": "stride", "num_embeddings": [8, 16], "embedding_dim": 4}
    >>> tuner = tfvq.tuning.search("vqvae", train, train, tuner="random", max_trials=2,
    ...                            max_epochs=1, space=tiny, directory="runs/tune", seed=0,
    ...                            verbose=0)
    >>> rows = tfvq.tuning.write_trials_csv(tuner, "runs/tune/trials.csv")
    >>> [row["status"] for row in rows]
    ['COMPLETED', 'COMPLETED']
    >>> fig = tfvq.plots.search_results(tuner, path="runs/tune/search.png")  # the figure
"""

from tfvq.tuning.hypermodels import AEHyperModel, TrialCost, VAEHyperModel, VQVAEHyperModel
from tfvq.tuning.results import (
    best_hyperparameters,
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
    "role",
    "search",
    "trials_table",
    "write_best_hyperparameters",
    "write_trials_csv",
]
