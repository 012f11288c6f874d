"""tfvq: AE, VAE and VQ-VAE image models built from reusable Keras 3 layers.

`tfvq.tuning` (keras-tuner) and `tfvq.plots` (matplotlib) load on first use (PEP 562
`__getattr__`), so `import tfvq` costs only what the models need. Under `KERAS_BACKEND=jax` or
`torch` only `tfvq.layers` loads at once, so that importing it loads no TensorFlow.

Example:
    >>> from tfvq import VQVAE
    >>> model = VQVAE(input_shape=(32, 32, 3), num_embeddings=512, embedding_dim=64)
"""

import importlib

import keras

from tfvq import layers  # registers the layers with Keras' serialization on every backend

if keras.backend.backend() == "tensorflow":
    # The models register themselves too, so that `keras.models.load_model` finds them after a
    # plain `import tfvq`. They, `tfvq.data` and `tfvq.training` are TensorFlow only: on JAX or
    # torch they load on first use instead, and `import tfvq.layers` stays off TensorFlow.
    from tfvq import data, losses, metrics, models, training, utils  # noqa: F401
    from tfvq.models import AE, VAE, VQVAE, Colorizer, PixelCNNPrior  # noqa: F401

__version__ = "0.1.0"

_SUBMODULES = ("data", "layers", "losses", "metrics", "models", "plots", "training", "tuning", "utils")
_MODELS = ("AE", "Colorizer", "PixelCNNPrior", "VAE", "VQVAE")

__all__ = sorted(_MODELS + _SUBMODULES)


def __getattr__(name):
    if name in _SUBMODULES:
        # import_module also binds the submodule as an attribute of tfvq, so this runs once.
        return importlib.import_module(f"tfvq.{name}")
    if name in _MODELS:
        value = getattr(importlib.import_module("tfvq.models"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tfvq' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
