"""Tests for tfvq.data.codes: image datasets encoded once into code maps."""

import numpy as np
import pytest
import tensorflow as tf

from tfvq.data.codes import codes_dataset
from tfvq.models import PixelCNNPrior

RNG = np.random.default_rng(0)


class _StandInVQVAE:
    """Codes = the quantised mean brightness of 4 x 4 patches; stands in for a trained VQVAE."""

    num_embeddings = 8

    def encode_to_indices(self, images):
        pooled = tf.nn.avg_pool2d(tf.reduce_mean(images, -1, keepdims=True), 4, 4, "VALID")
        return tf.cast(tf.minimum(pooled[..., 0] * 8, 7), tf.int32)


@pytest.mark.parametrize("labelled", [False, True])
def test_codes_dataset_encodes_every_batch_in_order(labelled):
    # Each 4 x 4 patch has brightness (code + 0.5) / 8, so the expected codes are known exactly.
    expected = RNG.integers(0, 8, size=(10, 2, 2)).astype(np.int32)
    patches = np.kron((expected + 0.5) / 8, np.ones((4, 4)))
    images = np.repeat(patches[..., None], 3, axis=-1).astype("float32")
    labels = np.arange(10) % 3
    slices = (images, labels) if labelled else images
    image_ds = tf.data.Dataset.from_tensor_slices(slices).batch(4)

    ds = codes_dataset(_StandInVQVAE(), image_ds)
    batches = list(ds.as_numpy_iterator())
    assert [len(b[0] if labelled else b) for b in batches] == [4, 4, 2]
    codes = np.concatenate([b[0] if labelled else b for b in batches])
    assert codes.dtype == np.int32
    np.testing.assert_array_equal(codes, expected)
    if labelled:
        np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), labels)

    prior = PixelCNNPrior(8, (2, 2), hidden_channels=4, num_layers=1,
                          num_classes=3 if labelled else None)
    prior.compile(optimizer="adam")
    prior.fit(ds, epochs=1, verbose=0)


def test_codes_dataset_batch_size_override():
    image_ds = tf.data.Dataset.from_tensor_slices(RNG.random((10, 8, 8, 1))).batch(4)
    ds = codes_dataset(_StandInVQVAE(), image_ds, batch_size=5)
    assert [len(b) for b in ds.as_numpy_iterator()] == [5, 5]


def test_codes_dataset_rejects_bad_inputs():
    images = RNG.random((4, 8, 8, 1)).astype("float32")
    batched = tf.data.Dataset.from_tensor_slices(images).batch(2)
    with pytest.raises(ValueError, match="encode_to_indices"):
        codes_dataset(object(), batched)
    with pytest.raises(ValueError, match=r"call \.batch\(\)"):
        codes_dataset(_StandInVQVAE(), tf.data.Dataset.from_tensor_slices(images))
    with pytest.raises(ValueError, match="finite"):
        codes_dataset(_StandInVQVAE(), batched.repeat())
    with pytest.raises(ValueError, match="tf.data.Dataset"):
        codes_dataset(_StandInVQVAE(), images)

    class FlatEncoder:
        def encode_to_indices(self, images):
            return tf.zeros((len(images), 4), tf.int32)

    with pytest.raises(ValueError, match=r"\(B, h, w\)"):
        codes_dataset(FlatEncoder(), batched)
    with pytest.raises(ValueError, match=r"codes_dataset expects batch_size >= 1 \(an int\); got 0"):
        codes_dataset(_StandInVQVAE(), batched, batch_size=0)
    with pytest.raises(ValueError, match=r"codes_dataset expects level >= 0 \(an int\); got -1"):
        codes_dataset(_StandInVQVAE(), batched, level=-1)


def test_codes_dataset_reads_tfds_style_dict_elements():
    # What tfds.load yields: images under "image", labels under "label", other features beside.
    images = RNG.random((6, 8, 8, 1)).astype("float32")
    labels = np.arange(6) % 2
    plain = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    feature_dicts = tf.data.Dataset.from_tensor_slices(
        {"image": images, "label": labels, "id": [str(i) for i in range(6)]}).batch(4)
    for expected, got in zip(codes_dataset(_StandInVQVAE(), plain).as_numpy_iterator(),
                             codes_dataset(_StandInVQVAE(), feature_dicts).as_numpy_iterator(),
                             strict=True):
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


class _TwoLevelVQVAE(_StandInVQVAE):
    """Residual-VQ-like codes: level 1 is level 0 reversed, so each level is recognisable."""

    def encode_to_indices(self, images):
        first = super().encode_to_indices(images)
        return tf.stack([first, 7 - first], axis=-1)


@pytest.mark.parametrize("level", [0, 1])
def test_codes_dataset_keeps_one_level_of_multi_level_codes(level):
    images = RNG.random((6, 8, 8, 1)).astype("float32")
    batched = tf.data.Dataset.from_tensor_slices(images).batch(4)
    single = np.concatenate(list(codes_dataset(_StandInVQVAE(), batched).as_numpy_iterator()))
    codes = np.concatenate(list(codes_dataset(_TwoLevelVQVAE(), batched, level=level)
                                .as_numpy_iterator()))
    np.testing.assert_array_equal(codes, single if level == 0 else 7 - single)
    with pytest.raises(ValueError, match=r"level in \[0, 2\).*got level=2"):
        codes_dataset(_TwoLevelVQVAE(), batched, level=2)
