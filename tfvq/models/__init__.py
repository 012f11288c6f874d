"""tfvq.models: AE, VAE, VQ-VAE and the PixelCNN prior over VQ-VAE codes."""

from tfvq.models.ae import AE
from tfvq.models.base import ImageAutoencoder
from tfvq.models.interpolation import interpolate
from tfvq.models.vae import VAE
from tfvq.models.vqvae import VQVAE

__all__ = ["AE", "ImageAutoencoder", "VAE", "VQVAE", "interpolate"]

from tfvq.data.codes import codes_dataset  # noqa: E402  (kept here for compatibility)
from tfvq.models.pixelcnn_prior import PixelCNNPrior  # noqa: E402

__all__ += ["PixelCNNPrior", "codes_dataset"]

from tfvq.models.colorizer import Colorizer  # noqa: E402

__all__ += ["Colorizer"]
