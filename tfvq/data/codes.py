"""Datasets of discrete codes: images encoded once by a VQ-VAE, for training a prior."""

import keras
import numpy as np
import tensorflow as tf

from tfvq.utils.checks import check_int
from tfvq.utils.elements import split_element


def codes_dataset(vqvae, image_ds, batch_size=None, level=0):
    """Encodes an image dataset once into a dataset of VQ-VAE code maps, for `PixelCNNPrior`.

    The images are encoded batch by batch with `vqvae.encode_to_indices`, eagerly and once, so
    that training the prior for many epochs does not re-run the encoder; the codes are kept in
    memory (4 * h * w bytes per image: 256 bytes for 8 x 8 codes).

    A quantizer with several levels per position (residual VQ: `(B, h, w, Q)` codes) yields
    the map of one level, `level`: a `PixelCNNPrior` models one map of codes, and the first
    level carries the coarse content that the later ones refine.

    Args:
        vqvae: any object with `encode_to_indices(images) -> (B, h, w)` integer codes, such as
            `tfvq.VQVAE`.
        image_ds: a finite, batched `tf.data.Dataset` of (B, H, W, C) images, of
            (images, labels) pairs, or of the other forms of `tfvq.utils.elements.split_element`
            (tfds-style {"image": ..., "label": ...} dicts).
        batch_size: batch size of the result; by default that of `image_ds`'s first batch.
        level: which level of multi-level `(B, h, w, Q)` codes to keep (ignored for one).

    Returns:
        A batched `tf.data.Dataset` of (B, h, w) int32 codes, or of (codes, labels) pairs when
        `image_ds` has labels, in the order of `image_ds`.

    Example:
    >>> import numpy as np, tensorflow as tf
    >>> class Encoder:  # stands in for a trained VQVAE
    ...     def encode_to_indices(self, images):
    ...         return tf.cast(images[:, ::4, ::4, 0] * 15, tf.int32)
    >>> images = tf.data.Dataset.from_tensor_slices(np.random.rand(10, 16, 16, 1)).batch(4)
    >>> [tuple(c.shape) for c in codes_dataset(Encoder(), images)]
    [(4, 4, 4), (4, 4, 4), (2, 4, 4)]
    """
    if not callable(getattr(vqvae, "encode_to_indices", None)):
        raise ValueError(
            f"codes_dataset expects a model with an encode_to_indices method; got "
            f"{type(vqvae).__name__}"
        )
    if not isinstance(image_ds, tf.data.Dataset):
        raise ValueError(f"codes_dataset expects a tf.data.Dataset; got {type(image_ds).__name__}")
    if image_ds.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError("codes_dataset expects a finite image_ds; drop its .repeat()")
    if batch_size is not None:
        check_int("codes_dataset", "batch_size", batch_size)
    check_int("codes_dataset", "level", level, minimum=0)
    spec = image_ds.element_spec
    image_spec, label_spec = split_element(spec, "codes_dataset")
    if not isinstance(image_spec, tf.TensorSpec) or image_spec.shape.rank != 4:
        raise ValueError(
            "codes_dataset expects batched (B, H, W, C) images or (images, labels) pairs; got "
            f"element_spec {spec} (call .batch() on an unbatched dataset)"
        )
    labelled = label_spec is not None

    codes, labels = [], []
    for element in image_ds:
        images, element_labels = split_element(element, "codes_dataset")
        indices = np.asarray(keras.ops.convert_to_numpy(vqvae.encode_to_indices(images)))
        if indices.ndim == 4:
            if level >= indices.shape[-1]:
                raise ValueError(
                    f"codes_dataset expects level in [0, {indices.shape[-1]}) for codes of "
                    f"shape {indices.shape}; got level={level!r}"
                )
            indices = indices[..., level]
        if indices.ndim != 3 or len(indices) != len(images):
            raise ValueError(
                f"codes_dataset expects encode_to_indices to return (B, h, w) = "
                f"({len(images)}, h, w) or (B, h, w, Q) codes; got shape {indices.shape}"
            )
        codes.append(indices.astype(np.int32))
        if labelled:
            labels.append(element_labels.numpy())
        if batch_size is None:
            batch_size = len(images)
    if not codes:
        raise ValueError("codes_dataset got an empty image_ds")

    tensors = np.concatenate(codes)
    if labelled:
        tensors = (tensors, np.concatenate(labels))
    return tf.data.Dataset.from_tensor_slices(tensors).batch(batch_size).prefetch(tf.data.AUTOTUNE)
