"""tfvq.models."""

__all__ = []

from tfvq.models.pixelcnn_prior import PixelCNNPrior, codes_dataset  # noqa: E402

__all__ += ["PixelCNNPrior", "codes_dataset"]
