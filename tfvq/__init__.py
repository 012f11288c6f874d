"""tfvq: AE, VAE and VQ-VAE image models built from reusable Keras 3 layers.

`tfvq.tuning` (keras-tuner) and `tfvq.plots` (matplotlib) load on first use, so that
`import tfvq` costs only what the models need.

Example:
    >>> from tfvq import VQVAE
    >>> model = VQVAE(input_shape=(32, 32, 3), num_embeddings=512, embedding_dim=64)
"""

import importlib

from tfvq import data, layers, losses, metrics, models, training, utils
from tfvq.models import AE, VAE, VQVAE, PixelCNNPrior
from tfvq.models import Colorizer

__version__ = "0.1.0"

# Subpackages whose dependencies (keras-tuner, matplotlib, scikit-learn) take seconds to import
# and that most uses of tfvq never touch: loaded by `__getattr__` (PEP 562) when first accessed.
_LAZY_SUBMODULES = ("plots", "tuning")

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


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        # import_module also binds the submodule as an attribute of tfvq, so this runs once.
        return importlib.import_module(f"tfvq.{name}")
    raise AttributeError(f"module 'tfvq' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
