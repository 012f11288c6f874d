"""tfvq.data.load / pixel_variance / info on real (offline) MNIST, mocked LFW and CIFAR-10."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tfvq.data

SPLIT = "test[:300]"
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def _raw(name, split, data_dir):
    """Images (uint8) and labels straight from tfds, in file order: the independent reference."""
    data = tfds.as_numpy(
        tfds.load(name, split=split, data_dir=data_dir, download=False, batch_size=-1)
    )
    return data["image"], data["label"]


def _collect(ds):
    batches = list(ds.as_numpy_iterator())
    if isinstance(batches[0], tuple):
        return tuple(np.concatenate(parts) for parts in zip(*batches))
    return np.concatenate(batches)


@pytest.fixture(scope="module")
def mnist_raw(mnist_data_dir):
    return _raw("mnist", SPLIT, mnist_data_dir)


@pytest.mark.parametrize(
    "normalize, dtype, reference",
    [
        (None, np.uint8, lambda x: x),
        ("unit", np.float32, lambda x: x / 255.0),
        ("centered", np.float32, lambda x: x / 255.0 - 0.5),
        ("imagenet", np.float32, lambda x: (x / 255.0 - MEAN.mean()) / STD.mean()),
    ],
)
def test_load_normalizations_match_numpy(mnist_data_dir, mnist_raw, normalize, dtype, reference):
    ds = tfvq.data.load("mnist", SPLIT, 128, data_dir=mnist_data_dir, normalize=normalize)
    first = next(iter(ds))
    assert first.shape == (128, 28, 28, 1) and first.dtype == dtype
    images = _collect(ds)
    np.testing.assert_allclose(images, reference(mnist_raw[0]), atol=1e-5)


def test_load_labels_in_order(mnist_data_dir, mnist_raw):
    images, labels = _collect(
        tfvq.data.load("mnist", SPLIT, 64, data_dir=mnist_data_dir, with_labels=True)
    )
    assert images.shape == (300, 28, 28, 1)  # last batch kept: 4 x 64 + 44
    np.testing.assert_array_equal(labels, mnist_raw[1])


def test_shuffle_defaults_by_split_and_is_seeded(mnist_data_dir):
    def labels(split, **kwargs):
        ds = tfvq.data.load("mnist", split, 100, data_dir=mnist_data_dir, with_labels=True,
                            **kwargs)  # fmt: skip
        return _collect(ds)[1]

    ordered = _raw("mnist", "train[:300]", mnist_data_dir)[1]
    a, b = labels("train[:300]", seed=1), labels("train[:300]", seed=1)
    c = labels("train[:300]", seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, ordered)
    np.testing.assert_array_equal(np.sort(a), np.sort(ordered))  # a permutation, nothing lost
    np.testing.assert_array_equal(labels("train[:300]", shuffle=False), ordered)


def test_epochs_reshuffle_with_a_seed(mnist_data_dir):
    ds = tfvq.data.load("mnist", "train[:200]", 200, data_dir=mnist_data_dir, seed=0,
                        normalize=None)  # fmt: skip
    first, second = (next(iter(ds)).numpy() for _ in range(2))
    assert not np.array_equal(first, second)


def test_augment_flip_is_seeded_and_only_flips(mnist_data_dir, mnist_raw):
    def load():
        return _collect(
            tfvq.data.load("mnist", SPLIT, 50, data_dir=mnist_data_dir, augment=True, seed=3)
        )

    out, raw = load(), mnist_raw[0] / 255.0
    flipped = np.array([np.allclose(o, r[:, ::-1]) for o, r in zip(out, raw)])
    kept = np.array([np.allclose(o, r) for o, r in zip(out, raw)])
    assert np.all(flipped | kept) and flipped.any() and kept.any()
    np.testing.assert_array_equal(out, load())


def test_peeking_does_not_truncate_the_next_epoch(mnist_data_dir):
    # Regression: with tf.data's shared in-memory cache filled lazily, a partly read iterator
    # made the next full pass come up short now and then.
    for _ in range(5):
        ds = tfvq.data.load("mnist", SPLIT, 128, data_dir=mnist_data_dir, normalize=None)
        next(iter(ds))
        assert sum(len(batch) for batch in ds) == 300


def test_augment_crop_is_seeded_per_batch(mnist_data_dir):
    def load(seed):
        return _collect(tfvq.data.load("mnist", SPLIT, 64, data_dir=mnist_data_dir,
                                       augment="crop", seed=seed, shuffle=False))  # fmt: skip

    a, b, c = load(1), load(1), load(2)
    assert a.shape == (300, 28, 28, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_image_size_channels_and_crop(mnist_data_dir):
    ds = tfvq.data.load(
        "mnist", SPLIT, 32, data_dir=mnist_data_dir, image_size=16, channels=3, augment="crop"
    )
    images = next(iter(ds)).numpy()
    assert images.shape == (32, 16, 16, 3)
    np.testing.assert_array_equal(images[..., 0], images[..., 2])  # gray stays gray
    assert 0.0 <= images.min() and images.max() <= 1.0


def test_min_size_filter(mnist_data_dir):
    kept = tfvq.data.load("mnist", "test[:10]", 4, data_dir=mnist_data_dir, min_size=28)
    dropped = tfvq.data.load("mnist", "test[:10]", 4, data_dir=mnist_data_dir, min_size=29)
    assert len(_collect(kept)) == 10 and list(dropped) == []


def test_tfds_data_dir_environment_variable(mnist_data_dir, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", mnist_data_dir)
    images = next(iter(tfvq.data.load("fashion_mnist", "test[:8]", 8)))
    assert images.shape == (8, 28, 28, 1)


def test_missing_data_raises_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    with pytest.raises(tfvq.data.DataNotFoundError) as err:
        tfvq.data.load("mnist", data_dir=str(tmp_path))
    message = str(err.value)
    for hint in (str(tmp_path), "data_dir", "TFDS_DATA_DIR", "prepare_tfds.py", "prepare_data.sh"):
        assert hint in message
    assert list(tmp_path.iterdir()) == []  # nothing downloaded or created


def test_bad_arguments_name_the_argument(mnist_data_dir):
    with pytest.raises(ValueError, match="normalize must be one of"):
        tfvq.data.load("mnist", data_dir=mnist_data_dir, normalize="zscore")
    with pytest.raises(ValueError, match="augment must be"):
        tfvq.data.load("mnist", data_dir=mnist_data_dir, augment="rotate")


def test_info(mnist_data_dir):
    info = tfvq.data.info("mnist", mnist_data_dir)
    assert info.image_shape == (28, 28, 1)
    assert info.num_examples == {"train": 60000, "test": 10000}
    assert info.class_names == [str(i) for i in range(10)]


@pytest.mark.parametrize("normalize, scale", [("unit", 1.0), ("centered", 1.0), (None, 255.0**2)])
def test_pixel_variance_matches_numpy(mnist_data_dir, mnist_raw, normalize, scale):
    # A batch size that does not divide the split checks the streaming merge of batch statistics.
    variance = tfvq.data.pixel_variance(
        "mnist", SPLIT, mnist_data_dir, normalize=normalize, batch_size=70
    )
    expected = np.var(mnist_raw[0].astype(np.float64) / 255.0) * scale
    np.testing.assert_allclose(variance, expected, rtol=1e-6)


def test_pixel_variance_max_examples(mnist_data_dir, mnist_raw):
    variance = tfvq.data.pixel_variance("mnist", "test", mnist_data_dir, max_examples=100)
    np.testing.assert_allclose(variance, np.var(mnist_raw[0][:100] / 255.0), rtol=1e-6)


def test_mocked_lfw_with_crop(tmp_path):
    # lfw's builder describes 250x250 RGB photos with a text label; mock_data fakes the records.
    with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
        ds = tfvq.data.load(
            "lfw", batch_size=4, data_dir=str(tmp_path), image_size=32, augment=("crop", "flip"),
            with_labels=True, normalize="imagenet", seed=0,
        )  # fmt: skip
        images, labels = _collect(ds)
    assert images.shape == (6, 32, 32, 3) and images.dtype == np.float32
    assert labels.dtype == object  # names of the people, as bytes


@pytest.mark.slow
def test_cifar10_load_and_variance(cifar10_data_dir):
    ds = tfvq.data.load("cifar10", "test[:500]", 128, data_dir=cifar10_data_dir, with_labels=True,
                        normalize="centered", augment=True, seed=0)  # fmt: skip
    images, labels = next(iter(ds))
    assert images.shape == (128, 32, 32, 3) and labels.shape == (128,)
    assert -0.5 <= images.numpy().min() and images.numpy().max() <= 0.5
    raw, _ = _raw("cifar10", "test[:2000]", cifar10_data_dir)
    variance = tfvq.data.pixel_variance("cifar10", "test[:2000]", cifar10_data_dir, "centered")
    np.testing.assert_allclose(variance, np.var(raw / 255.0), rtol=1e-6)


def test_lab_normalization(mnist_data_dir, mnist_raw):
    # Last: tfvq.utils.colorspace is written alongside this module.
    skimage_color = pytest.importorskip("skimage.color")
    ds = tfvq.data.load("mnist", "test[:16]", 16, data_dir=mnist_data_dir, normalize="lab")
    lab = next(iter(ds)).numpy()
    rgb = np.repeat(mnist_raw[0][:16], 3, axis=-1)
    np.testing.assert_allclose(lab, skimage_color.rgb2lab(rgb), atol=1e-2)
