"""tfvq.utils."""

from tfvq.utils.colorspace import lab_to_rgb, rgb_to_lab

__all__ = ["lab_to_rgb", "rgb_to_lab"]
