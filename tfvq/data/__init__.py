"""tfvq.data: image pipelines (tensorflow-datasets or a folder of files) and their transforms.

Example:
    >>> import tfvq
    >>> train = tfvq.data.load("cifar10", "train", batch_size=128, normalize="centered")
    >>> variance = tfvq.data.pixel_variance("cifar10", max_examples=2000)
    >>> photos = tfvq.data.load("photos/", "train[:90%]", 32, image_size=128, augment="crop")
"""

from tfvq.data import folders, transforms
from tfvq.data.loading import (
    NORMALIZATIONS,
    DataNotFoundError,
    DatasetInfo,
    info,
    load,
    pixel_variance,
)
from tfvq.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    filter_min_size,
    from_centered,
    random_flip,
    random_resized_crop,
    resize,
    standardize_imagenet,
    to_centered,
    to_lab,
    to_unit,
    unstandardize_imagenet,
)

__all__ = [
    "DataNotFoundError",
    "DatasetInfo",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NORMALIZATIONS",
    "filter_min_size",
    "folders",
    "from_centered",
    "info",
    "load",
    "pixel_variance",
    "random_flip",
    "random_resized_crop",
    "resize",
    "standardize_imagenet",
    "to_centered",
    "to_lab",
    "to_unit",
    "transforms",
    "unstandardize_imagenet",
]
