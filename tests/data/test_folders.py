"""tfvq.data.load / info / pixel_variance on folders of real photos (skimage), broken files too.

References are independent: every image is decoded again with Pillow and converted with NumPy.
"""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import tfvq.data
from tfvq.data import folders

skdata = pytest.importorskip("skimage.data")
skimage_transform = pytest.importorskip("skimage.transform")

GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140])
CLASSES = ["cats", "objects", "people"]


def _resized(image, height, width):
    out = skimage_transform.resize(image, (height, width), anti_aliasing=True, preserve_range=True)
    return np.round(out).astype(np.uint8)


def _sixteen_bit(gray):
    """A uint16 image from a gray photo, with low bytes that make v >> 8 differ from v / 257."""
    wide = gray.astype(np.uint16) * 257
    return wide + np.random.default_rng(0).integers(0, 200, gray.shape).astype(np.uint16)


def _save(path, array, mode=None, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        image = Image.fromarray(array.astype(np.uint16))  # Pillow stores this as mode I;16
        assert image.mode == "I;16"
    else:
        image = Image.fromarray(array)
        if mode is not None:
            image = image.convert(mode)
    image.save(path, **kwargs)


def _photos():
    chelsea, astronaut, coffee = skdata.chelsea(), skdata.astronaut(), skdata.coffee()
    camera, rocket = skdata.camera(), skdata.rocket()
    return {
        # relative path: (array, Pillow mode to save in)
        "cats/chelsea.jpg": (chelsea[:, :300], None),
        "cats/chelsea_rgba.png": (chelsea[50:250, 100:300], "RGBA"),
        "cats/chelsea_small.png": (_resized(chelsea, 20, 30), None),  # below min_size=32
        "cats/sub/chelsea.gif": (chelsea[::2, ::2], None),  # nested: still class "cats"
        "objects/coffee.jpg": (coffee[100:300, 150:450], None),
        "objects/coffee_gray.bmp": (coffee[:240, :320], "L"),
        "objects/rocket.png": (_resized(rocket, 160, 240), None),
        "people/astronaut.jpg": (_resized(astronaut, 200, 200), None),
        "people/astronaut.bmp": (astronaut[100:260, 150:330], None),
        "people/camera_gray.png": (camera[::2, ::2], None),
        "people/camera16.png": (_sixteen_bit(camera[100:300, 100:260]), "I;16"),
    }


def _write_photos(root, photos):
    for rel, (array, mode) in photos.items():
        _save(root / rel, array, mode, **({"quality": 95} if rel.endswith(".jpg") else {}))


def _reference(path, channels):
    """uint8 (H, W, channels) decoded by Pillow and converted by NumPy."""
    image = Image.open(path)
    image.seek(0)
    if image.mode in ("I;16", "I;16B", "I"):
        array = np.round(np.asarray(image).astype(np.float64) / 257.0).astype(np.uint8)
    elif image.mode in ("L", "RGB"):
        array = np.asarray(image)
    elif image.mode == "RGBA":
        array = np.asarray(image)[..., :3]
    else:  # palette (GIF)
        array = np.asarray(image.convert("RGB"))
    if array.ndim == 2:
        array = array[..., None]
    if channels == 3 and array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if channels == 1 and array.shape[-1] == 3:
        array = np.round(array.astype(np.float64) @ GRAY_WEIGHTS)[..., None].astype(np.uint8)
    return array


def _parts(rel):
    return Path(rel).parts


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """Class folders of real photos in every format and mode, plus every kind of broken file."""
    root = tmp_path_factory.mktemp("photos")
    _write_photos(root, _photos())
    jpeg = (root / "cats/chelsea.jpg").read_bytes()
    (root / "cats/truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "objects/empty.png").write_bytes(b"")
    (root / "people/garbage.jpg").write_text("this is not a JPEG\n" * 20)
    (root / "notes.txt").write_text("photos from skimage.data\n")
    (root / ".DS_Store").write_bytes(b"\0\1\2")  # hidden: ignored without a word
    return root


BAD = ["cats/truncated.jpg", "notes.txt", "objects/empty.png", "people/garbage.jpg"]


def _good():
    return sorted(_photos(), key=_parts)


def _unbatched(ds):
    return [tuple(np.asarray(x) for x in item) if isinstance(item, tuple) else np.asarray(item)
            for item in ds.as_numpy_iterator()]  # fmt: skip


def _load(root, *args, **kwargs):
    """`load` with the warning about the broken files expected and swallowed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return tfvq.data.load(str(root), *args, **kwargs)


def test_images_labels_and_pixels_match_pillow(photo_dir):
    items = _unbatched(_load(photo_dir, batch_size=None, with_labels=True, normalize=None,
                             shuffle=False))  # fmt: skip
    good = _good()
    assert len(items) == len(good) == 11
    for rel, (image, label) in zip(good, items):
        assert image.dtype == np.uint8 and image.shape[-1] == 3  # colour in the folder: 3
        assert label == CLASSES.index(_parts(rel)[0]), rel
        expected = _reference(photo_dir / rel, 3)
        assert image.shape == expected.shape, rel
        diff = np.abs(image.astype(int) - expected)
        if rel.endswith(".jpg"):  # libjpeg's DCT variants differ by a few levels
            assert diff.mean() < 2.0 and diff.max() <= 24, rel
        else:
            assert diff.max() == 0, rel


def test_one_warning_names_the_broken_files(photo_dir):
    with pytest.warns(UserWarning) as record:
        ds = tfvq.data.load(str(photo_dir), batch_size=None, normalize=None)
    messages = [str(w.message) for w in record if "not readable images" in str(w.message)]
    assert len(messages) == 1
    assert f"skipping {len(BAD)} of {len(BAD) + 11} files" in messages[0]
    for rel in BAD:
        assert str(photo_dir / rel) in messages[0]
    assert ".DS_Store" not in messages[0]
    assert sum(1 for _ in ds) == 11


def test_warning_lists_five_paths_then_counts(tmp_path):
    _save(tmp_path / "ok.png", skdata.camera()[:64, :64])
    for i in range(7):
        (tmp_path / f"bad{i}.png").write_text("garbage")
    with pytest.warns(UserWarning, match="skipping 7 of 8 files") as record:
        tfvq.data.load(str(tmp_path), batch_size=None)
    message = str(record[0].message)
    assert all(str(tmp_path / f"bad{i}.png") in message for i in range(5))
    assert "bad5.png" not in message and "and 2 more" in message


def test_on_error_raise_names_the_file(photo_dir):
    first_bad = str(photo_dir / sorted(BAD, key=_parts)[0])
    with pytest.raises(ValueError, match=re.escape(repr(first_bad))):
        tfvq.data.load(str(photo_dir), on_error="raise")
    with pytest.raises(ValueError, match="on_error must be one of"):
        tfvq.data.load(str(photo_dir), on_error="ignore")


def test_info(photo_dir):
    with pytest.warns(UserWarning, match="skipping 4"):
        info = tfvq.data.info(photo_dir)
    assert info.name == info.data_dir == str(photo_dir)
    assert info.version is None and info.image_shape is None  # sizes vary
    assert info.num_examples == {"train": 11}
    assert info.class_names == CLASSES


def test_info_of_one_size_gray_folder_and_channels(tmp_path):
    camera, coffee = skdata.camera(), skdata.coffee()
    _save(tmp_path / "a.png", camera[:48, :64])
    _save(tmp_path / "b.jpg", coffee[:48, :64], "L", quality=95)
    info = tfvq.data.info(str(tmp_path))
    assert info.image_shape == (48, 64, 1) and info.class_names is None
    gray = next(iter(tfvq.data.load(str(tmp_path), batch_size=2, normalize=None, shuffle=False)))
    assert gray.shape == (2, 48, 64, 1)  # channels=None on a gray folder: 1
    np.testing.assert_array_equal(gray[0], _reference(tmp_path / "a.png", 1))
    rgb = next(iter(tfvq.data.load(str(tmp_path), batch_size=2, normalize=None, shuffle=False,
                                   channels=3)))  # fmt: skip
    np.testing.assert_array_equal(rgb[0], _reference(tmp_path / "a.png", 3))
    with pytest.raises(ValueError, match="no class subfolders"):
        tfvq.data.load(str(tmp_path), with_labels=True)


def test_channels_one_converts_colour_and_drops_alpha(photo_dir):
    items = _unbatched(_load(photo_dir, batch_size=None, normalize=None, shuffle=False,
                             channels=1))  # fmt: skip
    for rel, image in zip(_good(), items):
        expected = _reference(photo_dir / rel, 1)
        assert image.shape == expected.shape, rel
        tolerance = 16 if rel.endswith(".jpg") else 1  # rounding of the gray weights
        assert np.abs(image.astype(int) - expected).max() <= tolerance, rel


def test_sixteen_bit_png_rounds_to_nearest(tmp_path):
    wide = _sixteen_bit(skdata.camera()[:40, :50])
    _save(tmp_path / "deep.png", wide, "I;16")
    image = next(iter(tfvq.data.load(str(tmp_path), batch_size=1, normalize=None)))[0].numpy()
    expected = np.round(wide / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(image[..., 0], expected)
    assert not np.array_equal(expected, (wide >> 8).astype(np.uint8))  # the test can tell


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    """tfds ImageFolder layout, lossless files only: train/ and test/, two classes each."""
    root = tmp_path_factory.mktemp("splits")
    camera, astronaut, rocket = skdata.camera(), skdata.astronaut(), skdata.rocket()
    for i in range(6):
        top, left = 40 * i, 30 * i
        _save(root / f"train/gray/camera{i}.png", camera[top : top + 90, left : left + 100])
        _save(root / f"train/rgb/astronaut{i}.bmp", astronaut[50 * i : 50 * i + 80, :96])
    _save(root / "test/rgb/rocket.png", rocket[:70, :90])
    _save(root / "test/rgb/rocket.gif", rocket[100:170, 200:290])
    _save(root / "test/gray/camera.png", camera[300:380, 100:190])
    (root / "test/gray/broken.png").write_bytes((root / "test/rgb/rocket.png").read_bytes()[:200])
    return root


def _split_files(root, split):
    return sorted((p for p in (root / split).rglob("*") if p.is_file() and "broken" not in p.name),
                  key=lambda p: p.relative_to(root / split).parts)  # fmt: skip


def test_split_folders_and_slices(split_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the broken file is in test/, not train/
        train = _unbatched(tfvq.data.load(str(split_dir), "train", None, normalize=None,
                                          shuffle=False, with_labels=True))  # fmt: skip
    files = _split_files(split_dir, "train")
    assert len(train) == 12
    for path, (image, label) in zip(files, train):
        np.testing.assert_array_equal(image, _reference(path, 3))
        assert label == ["gray", "rgb"].index(path.parent.name)
    with pytest.warns(UserWarning, match="broken.png"):
        info = tfvq.data.info(split_dir)
    assert info.num_examples == {"train": 12, "test": 3}
    assert info.class_names == ["gray", "rgb"]

    def sliced(spec):
        return _unbatched(tfvq.data.load(str(split_dir), spec, None, normalize=None,
                                         shuffle=False))  # fmt: skip

    everything = [image for image, _ in train]
    for spec, expected in [("train[:50%]", everything[:6]), ("train[-5:]", everything[-5:]),
                           ("train[:3]", everything[:3]), ("train[25%:75%]", everything[3:9])]:
        got = sliced(spec)
        assert len(got) == len(expected), spec
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
    with pytest.warns(UserWarning, match="broken.png"):
        assert len(sliced("test")) == 3


def test_unknown_split_names_the_available_ones(split_dir, photo_dir):
    with pytest.raises(ValueError, match=r"'validation'.*\['train', 'test'\]"):
        tfvq.data.load(str(split_dir), "validation")
    with pytest.raises(ValueError, match=r"'test'.*\['train'\]"):
        _load(photo_dir, "test")


def test_pixel_variance_matches_numpy(split_dir):
    images = [_reference(p, 3).astype(np.float64) / 255.0 for p in _split_files(split_dir, "train")]
    expected = np.var(np.concatenate([x.ravel() for x in images]))
    variance = tfvq.data.pixel_variance(str(split_dir), "train", normalize="unit")
    np.testing.assert_allclose(variance, expected, rtol=1e-6)
    centered = tfvq.data.pixel_variance(str(split_dir), "train[:4]", normalize="centered")
    head = np.concatenate([x.ravel() for x in images[:4]])
    np.testing.assert_allclose(centered, np.var(head), rtol=1e-6)


def test_min_size_drops_small_images(photo_dir):
    items = _unbatched(_load(photo_dir, batch_size=None, normalize=None, min_size=32))
    assert len(items) == 10 and min(min(x.shape[:2]) for x in items) >= 32
    items = _unbatched(_load(photo_dir, batch_size=None, normalize=None, min_size=201))
    expected = [r for r in _photos() if min(_photos()[r][0].shape[:2]) >= 201]
    assert len(items) == len(expected) > 0


def test_varying_sizes_need_image_size(photo_dir):
    with pytest.raises(ValueError, match="varying size.*image_size"):
        _load(photo_dir, batch_size=4)
    with pytest.raises(ValueError, match="needs image_size"):
        _load(photo_dir, batch_size=4, augment="crop")


def test_crop_augmentation_epochs_and_seed(photo_dir):
    def epoch(ds):
        batches = list(ds.as_numpy_iterator())
        return np.concatenate(batches)

    ds = _load(photo_dir, batch_size=4, image_size=64, augment="crop", min_size=32, seed=0)
    first, second = epoch(ds), epoch(ds)  # two full epochs, broken files and all
    assert first.shape == second.shape == (10, 64, 64, 3) and first.dtype == np.float32
    assert 0.0 <= first.min() and first.max() <= 1.0
    assert not np.array_equal(first, second)  # new crops (and order) every epoch
    again = epoch(_load(photo_dir, batch_size=4, image_size=64, augment="crop", min_size=32,
                        seed=0))  # fmt: skip
    np.testing.assert_array_equal(first, again)


def test_image_size_resizes_and_shuffle_is_a_permutation(photo_dir):
    ordered = np.concatenate(list(_load(photo_dir, batch_size=5, image_size=(40, 48),
                                        normalize=None, shuffle=False).as_numpy_iterator()))
    shuffled = np.concatenate(list(_load(photo_dir, batch_size=5, image_size=(40, 48),
                                         normalize=None, seed=1).as_numpy_iterator()))
    assert ordered.shape == (11, 40, 48, 3) and ordered.dtype == np.uint8
    assert not np.array_equal(ordered, shuffled)  # "train" shuffles by default
    key = lambda x: x.reshape(len(x), -1).sum(axis=1)  # noqa: E731
    np.testing.assert_array_equal(np.sort(key(ordered)), np.sort(key(shuffled)))
    labels = np.concatenate([b[1] for b in _load(photo_dir, batch_size=5, image_size=32,
                                                 with_labels=True, seed=1)])  # fmt: skip
    assert sorted(labels.tolist()) == sorted(CLASSES.index(_parts(r)[0]) for r in _good())


def test_cache_on_disk(photo_dir, tmp_path):
    cache = tmp_path / "cache"
    ds = _load(photo_dir, batch_size=4, image_size=32, cache=str(cache), shuffle=False)
    first = np.concatenate(list(ds.as_numpy_iterator()))
    second = np.concatenate(list(ds.as_numpy_iterator()))
    assert first.shape == (11, 32, 32, 3)
    np.testing.assert_array_equal(first, second)
    assert any(p.name.startswith("cache") for p in tmp_path.iterdir())


def test_too_large_to_cache_streams(photo_dir, monkeypatch):
    from tfvq.data import loading

    monkeypatch.setattr(loading, "_MAX_CACHE_BYTES", 1000)
    ds = _load(photo_dir, batch_size=4, image_size=32, augment="crop", seed=0)
    assert sum(len(b) for b in ds) == sum(len(b) for b in ds) == 11


def test_scan_is_remembered_until_the_folder_changes(tmp_path, monkeypatch):
    _save(tmp_path / "a.png", skdata.camera()[:40, :40])
    calls = []
    decode_all = folders._decode_all
    monkeypatch.setattr(folders, "_decode_all", lambda paths: calls.append(len(paths))
                        or decode_all(paths))  # fmt: skip
    tfvq.data.info(str(tmp_path))
    tfvq.data.load(str(tmp_path), batch_size=1)
    tfvq.data.pixel_variance(str(tmp_path))
    assert calls == [1]
    _save(tmp_path / "b.png", skdata.camera()[:40, :40])
    assert tfvq.data.info(str(tmp_path)).num_examples == {"train": 2}
    assert calls == [1, 2]


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(tfvq.data.DataNotFoundError, match="No directory"):
        tfvq.data.load(str(tmp_path / "nowhere"))


def test_mocked_lfw_goes_through_the_same_pipeline(tmp_path):
    # lfw: 250x250x3 photos whose "label" is a Text feature (a name), not a ClassLabel.
    with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
        info = tfvq.data.info("lfw", data_dir=str(tmp_path))
        ds = tfvq.data.load("lfw", batch_size=4, data_dir=str(tmp_path), image_size=64,
                            augment=True, seed=0)  # fmt: skip
        images = np.concatenate(list(ds.as_numpy_iterator()))
        pairs = list(tfvq.data.load("lfw", batch_size=None, data_dir=str(tmp_path),
                                    with_labels=True, normalize=None).as_numpy_iterator())
    assert info.image_shape == (250, 250, 3) and info.class_names is None
    assert images.shape == (5, 64, 64, 3) and images.dtype == np.float32
    assert pairs[0][0].shape == (250, 250, 3) and isinstance(pairs[0][1], bytes)
