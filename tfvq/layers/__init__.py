"""tfvq.layers: the reusable Keras layers (quantizers, conv blocks, colour, PixelCNN pieces)."""

from tfvq.layers.conv_blocks import ConvDecoder, ConvEncoder, ResidualBlock, ResidualStack
from tfvq.layers.quantizers import VectorQuantizer, VectorQuantizerEMA

__all__ = [
    "ConvDecoder",
    "ConvEncoder",
    "ResidualBlock",
    "ResidualStack",
    "VectorQuantizer",
    "VectorQuantizerEMA",
]

from tfvq.layers.color import LabColorizationHead, LabToRGB, RGBToLab  # noqa: E402

__all__ += ["LabColorizationHead", "LabToRGB", "RGBToLab"]

from tfvq.layers.pixelcnn import GatedPixelCNNBlock, MaskedConv2D  # noqa: E402

__all__ += ["GatedPixelCNNBlock", "MaskedConv2D"]
