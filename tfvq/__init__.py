"""tfvq: AE, VAE and VQ-VAE image models built from reusable Keras 3 layers.

Example:
    >>> from tfvq import VQVAE
    >>> model = VQVAE(input_shape=(32, 32, 3), num_embeddings=512, embedding_dim=64)
"""

from tfvq import data, layers, losses, metrics, models, plots, training, tuning, utils
from tfvq.models import AE, VAE, VQVAE, PixelCNNPrior
from tfvq.models import Colorizer

__version__ = "0.1.0"

__all__ = [
    "AE",
    "Colorizer",
    "PixelCNNPrior",
    "VAE",
    "VQVAE",
    "data",
    "layers",
    "losses",
    "metrics",
    "models",
    "plots",
    "training",
    "tuning",
    "utils",
]
