"""tfvq.layers: the reusable Keras layers (quantizers, conv blocks, colour, PixelCNN pieces)."""

from tfvq.layers.conv_blocks import ConvDecoder, ConvEncoder, ResidualBlock, ResidualStack
from tfvq.layers.quantizer import CodeUsage, Quantizer, code_statistics
from tfvq.layers.quantizers import VectorQuantizer, VectorQuantizerEMA
from tfvq.layers.fsq import FiniteScalarQuantizer
from tfvq.layers.lfq import LookupFreeQuantizer
from tfvq.layers.residual import ResidualVectorQuantizer

# Quantizers by the name that `VQVAE(quantizer=...)`, the example flags and the tuning space use.
QUANTIZERS = {"vq": VectorQuantizer, "ema": VectorQuantizerEMA, "fsq": FiniteScalarQuantizer,
              "lfq": LookupFreeQuantizer, "rvq": ResidualVectorQuantizer}

__all__ = [
    "CodeUsage",
    "ConvDecoder",
    "ConvEncoder",
    "FiniteScalarQuantizer",
    "LookupFreeQuantizer",
    "QUANTIZERS",
    "Quantizer",
    "ResidualBlock",
    "ResidualVectorQuantizer",
    "ResidualStack",
    "VectorQuantizer",
    "VectorQuantizerEMA",
    "code_statistics",
]

from tfvq.layers.color import LabColorizationHead, LabToRGB, RGBToLab  # noqa: E402

__all__ += ["LabColorizationHead", "LabToRGB", "RGBToLab"]

from tfvq.layers.pixelcnn import GatedPixelCNNBlock, MaskedConv2D  # noqa: E402

__all__ += ["GatedPixelCNNBlock", "MaskedConv2D"]
