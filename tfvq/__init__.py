"""tfvq: AE, VAE and VQ-VAE image models built from reusable Keras 3 layers."""

from tfvq import layers

__version__ = "0.1.0"
