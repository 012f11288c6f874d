"""tfvq.data.transforms against NumPy formulas."""

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from tfvq.data import transforms

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def _random_uint8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


class NormalizeTest(parameterized.TestCase):
    def test_to_unit_divides_integers_by_255_and_keeps_floats(self):
        x = _random_uint8((2, 5, 5, 3))
        np.testing.assert_allclose(transforms.to_unit(x), x / 255.0, rtol=1e-6)
        # Integers wider than uint8 are still pixel values, not their dtype's full range.
        np.testing.assert_allclose(transforms.to_unit(x.astype(np.int64)), x / 255.0, rtol=1e-6)
        f = np.random.default_rng(1).random((4, 4, 1)).astype(np.float32)
        np.testing.assert_array_equal(transforms.to_unit(f), f)
        self.assertEqual(transforms.to_unit(x).dtype, tf.float32)

    def test_centered_range_formula_and_inverse(self):
        x = _random_uint8((3, 6, 6, 3))
        x[0, 0, 0] = [0, 255, 128]
        c = transforms.to_centered(x).numpy()
        np.testing.assert_allclose(c, x / 255.0 - 0.5, atol=1e-6)
        self.assertEqual((c.min(), c.max()), (-0.5, 0.5))
        np.testing.assert_allclose(transforms.from_centered(c), x / 255.0, atol=1e-6)

    @parameterized.parameters(np.uint8, np.float32)
    def test_standardize_imagenet_formula_and_round_trip(self, dtype):
        x = _random_uint8((2, 4, 4, 3))
        x_in = x if dtype == np.uint8 else (x / 255.0).astype(np.float32)
        y = transforms.standardize_imagenet(x_in)
        np.testing.assert_allclose(y, (x / 255.0 - MEAN) / STD, atol=1e-5)
        np.testing.assert_allclose(transforms.unstandardize_imagenet(y), x / 255.0, atol=1e-6)

    def test_standardize_imagenet_grayscale_uses_average_statistics(self):
        x = _random_uint8((4, 4, 1))
        y = transforms.standardize_imagenet(x)
        np.testing.assert_allclose(y, (x / 255.0 - MEAN.mean()) / STD.mean(), atol=1e-5)
        np.testing.assert_allclose(transforms.unstandardize_imagenet(y), x / 255.0, atol=1e-6)

    def test_standardize_imagenet_rejects_other_channel_counts(self):
        with self.assertRaisesRegex(ValueError, "1 or 3 channels; got 4"):
            transforms.standardize_imagenet(np.zeros((2, 2, 4), np.uint8))


class ResizeAndCropTest(parameterized.TestCase):
    def test_resize_keeps_integer_dtype(self):
        out = transforms.resize(_random_uint8((2, 50, 40, 3)), (20, 10))
        self.assertEqual((out.shape, out.dtype), ((2, 20, 10, 3), tf.uint8))
        # A constant image stays constant through antialiased bilinear resampling.
        const = transforms.resize(np.full((37, 53, 1), 200, np.uint8), 16).numpy()
        np.testing.assert_array_equal(const, 200)

    @parameterized.parameters(((48, 64, 3), 32), ((20, 20, 1), 40), ((100, 30, 3), (24, 24)))
    def test_random_resized_crop_output_shape_and_dtype(self, shape, size):
        out = transforms.random_resized_crop(_random_uint8(shape), size, seed=3)
        side = size if isinstance(size, int) else size[0]
        self.assertEqual((out.shape, out.dtype), ((side, side, shape[-1]), tf.uint8))

    def test_crop_is_a_real_sub_window(self):
        # scale 0.25 of a 40x40 image is a 20x20 window; resizing it to 20 is the identity, so
        # the output must equal image[top:top + 20, left:left + 20] for some offset.
        image = _random_uint8((40, 40, 3), seed=5)
        windows = {
            (i, j): image[i : i + 20, j : j + 20] for i in range(21) for j in range(21)
        }
        offsets = set()
        for seed in range(12):
            out = transforms.random_resized_crop(image, 20, scale=(0.25, 0.25), seed=seed).numpy()
            matches = [k for k, w in windows.items() if np.array_equal(w, out)]
            self.assertLen(matches, 1)
            offsets.add(matches[0])
        self.assertGreater(len(offsets), 1)  # the offset is random, not always the corner

    def test_crop_covers_the_requested_area_range(self):
        # With output size = crop side, a full-area crop is the image itself.
        image = _random_uint8((16, 16, 1))
        full = transforms.random_resized_crop(image, 16, scale=(1.0, 1.0), seed=0)
        np.testing.assert_array_equal(full, image)

    def test_crop_fits_inside_narrow_images(self):
        # A square window of 100% area does not fit a 10x90 image: it shrinks to 10x10.
        image = np.tile(np.arange(90, dtype=np.uint8)[None, :, None], (10, 1, 1))
        out = transforms.random_resized_crop(image, 10, scale=(1.0, 1.0), seed=1).numpy()
        left = out[0, 0, 0]
        np.testing.assert_array_equal(out[..., 0], image[:, left : left + 10, 0])

    def test_crop_seed_is_deterministic(self):
        image = _random_uint8((32, 32, 3))
        a = transforms.random_resized_crop(image, 16, seed=7)
        b = transforms.random_resized_crop(image, 16, seed=(7, 0))
        c = transforms.random_resized_crop(image, 16, seed=8)
        np.testing.assert_array_equal(a, b)
        self.assertFalse(np.array_equal(a, c))

    @parameterized.parameters(None, 4)
    def test_crop_batch_draws_a_window_per_image(self, seed):
        batch = np.repeat(_random_uint8((1, 24, 24, 3)), 6, axis=0)
        out = transforms.random_resized_crop(batch, 12, seed=seed).numpy()
        self.assertEqual(out.shape, (6, 12, 12, 3))
        self.assertGreater(len({o.tobytes() for o in out}), 1)

    @parameterized.parameters(((6, 32, 32, 3), 32), ((4, 20, 28, 1), 32), ((3, 40, 40, 3), 24))
    def test_batch_crop_is_each_window_resized_with_antialiasing(self, shape, size):
        # The vectorised (upsampling) and per-image (downsampling) batch paths must both equal
        # tf.image.resize(antialias=True) of each image's own window.
        images = np.random.default_rng(2).random(shape).astype(np.float32)
        scale, ratio, seed = (0.1, 1.0), (0.5, 2.0), (5, 6)
        out = transforms.random_resized_crop(images, size, scale, ratio, seed=seed).numpy()
        u = tf.random.stateless_uniform((shape[0], 4), seed=seed)
        windows = transforms._crop_windows(shape[1], shape[2], u, scale, ratio)
        for i, (top, left, h, w) in enumerate(zip(*(v.numpy() for v in windows))):
            window = images[i, top : top + h, left : left + w]
            expected = tf.image.resize(window, (size, size), antialias=True)
            np.testing.assert_allclose(out[i], expected, atol=1e-5)
        single = transforms.random_resized_crop(images[0], size, scale, ratio, seed=seed)
        np.testing.assert_allclose(single, out[0], atol=1e-5)

    def test_random_flip_flips_or_keeps_each_image(self):
        batch = _random_uint8((16, 5, 7, 3))
        out = transforms.random_flip(batch, seed=2).numpy()
        flipped = [np.array_equal(o, b[:, ::-1]) for o, b in zip(out, batch)]
        kept = [np.array_equal(o, b) for o, b in zip(out, batch)]
        self.assertTrue(all(f or k for f, k in zip(flipped, kept)))
        self.assertTrue(any(flipped) and any(kept))
        np.testing.assert_array_equal(out, transforms.random_flip(batch, seed=2))


class FilterMinSizeTest(parameterized.TestCase):
    def test_predicate_on_images_tuples_and_dicts(self):
        keep = transforms.filter_min_size(32)
        self.assertTrue(keep(tf.zeros((32, 40, 3))))
        self.assertFalse(keep(tf.zeros((31, 100, 3))))
        self.assertFalse(keep(tf.zeros((100, 20, 1)), tf.constant(3)))
        self.assertTrue(keep({"image": tf.zeros((64, 64, 3)), "label": 1}))

    def test_filters_a_dataset_of_varying_sizes(self):
        sizes = [(10, 50), (32, 32), (40, 31), (64, 48), (33, 100)]
        ds = tf.data.Dataset.from_generator(
            lambda: (np.zeros((h, w, 3), np.uint8) for h, w in sizes),
            output_signature=tf.TensorSpec((None, None, 3), tf.uint8),
        )
        kept = [x.shape[:2] for x in ds.filter(transforms.filter_min_size(32))]
        self.assertEqual(kept, [(32, 32), (64, 48), (33, 100)])


class ToLabTest(parameterized.TestCase):
    # Last: tfvq.utils.colorspace is written alongside this module.
    def test_to_lab_matches_skimage(self):
        skimage_color = pytest.importorskip("skimage.color")
        x = _random_uint8((2, 6, 6, 3))
        np.testing.assert_allclose(transforms.to_lab(x), skimage_color.rgb2lab(x), atol=1e-2)

    def test_to_lab_of_grayscale_has_no_colour(self):
        skimage_color = pytest.importorskip("skimage.color")
        x = _random_uint8((6, 6, 1))
        lab = transforms.to_lab(x).numpy()
        expected = skimage_color.rgb2lab(np.repeat(x, 3, axis=-1))
        np.testing.assert_allclose(lab, expected, atol=1e-2)
        np.testing.assert_allclose(lab[..., 1:], 0.0, atol=1e-2)
