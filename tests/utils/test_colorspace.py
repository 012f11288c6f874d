"""rgb_to_lab / lab_to_rgb against scikit-image on its bundled photographs and the RGB cube."""

import warnings

import numpy as np
import pytest
import skimage.color
import skimage.data
import tensorflow as tf

from tfvq.utils import lab_to_rgb, rgb_to_lab

PHOTOS = ["astronaut", "chelsea", "coffee"]


def photo(name):
    # Every 4th pixel keeps the test fast and still covers the photo's colours.
    return getattr(skimage.data, name)()[::4, ::4] / 255.0


def cube_edges(n=65):
    """Points on the 12 edges of the RGB cube (corners included)."""
    t = np.linspace(0.0, 1.0, n)
    edges = []
    for axis in range(3):
        for u in (0.0, 1.0):
            for v in (0.0, 1.0):
                edge = np.empty((n, 3))
                edge[:, axis] = t
                edge[:, [i for i in range(3) if i != axis]] = (u, v)
                edges.append(edge)
    return np.concatenate(edges)


def sk_lab2rgb(lab):
    with warnings.catch_warnings():  # skimage warns when it clips negative Z
        warnings.simplefilter("ignore")
        return skimage.color.lab2rgb(lab)


@pytest.mark.parametrize("name", PHOTOS)
def test_photos_match_skimage(name):
    rgb = photo(name)
    lab_ref = skimage.color.rgb2lab(rgb)
    lab = np.asarray(rgb_to_lab(rgb.astype("float32")))
    np.testing.assert_allclose(lab, lab_ref, atol=1e-3)
    back = np.asarray(lab_to_rgb(lab_ref.astype("float32")))
    np.testing.assert_allclose(back, sk_lab2rgb(lab_ref), atol=1e-3)


def test_cube_edges_match_skimage():
    rgb = cube_edges()
    lab_ref = skimage.color.rgb2lab(rgb)
    np.testing.assert_allclose(rgb_to_lab(rgb.astype("float32")), lab_ref, atol=1e-3)
    np.testing.assert_allclose(lab_to_rgb(lab_ref.astype("float32")), rgb, atol=1e-3)


def test_known_values():
    # White, black and pure red in CIE Lab (D65), as tabulated by easyrgb/Wikipedia.
    rgb = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], "float32")
    expected = [[100.0, 0.0, 0.0], [0.0, 0.0, 0.0], [53.24, 80.09, 67.20]]
    np.testing.assert_allclose(rgb_to_lab(rgb), expected, atol=1e-2)


def test_out_of_gamut_lab_is_clipped_like_skimage():
    rng = np.random.default_rng(0)
    lab = np.stack(
        [rng.uniform(0, 100, 4000), rng.uniform(-128, 127, 4000), rng.uniform(-128, 127, 4000)],
        axis=-1,
    )
    rgb = np.asarray(lab_to_rgb(lab.astype("float32")))
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0
    np.testing.assert_allclose(rgb, sk_lab2rgb(lab), atol=1e-3)


def test_round_trip():
    rng = np.random.default_rng(1)
    rgb = rng.uniform(0, 1, (2000, 3)).astype("float32")
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(rgb)), rgb, atol=1e-4)
    rgb = photo("coffee")  # float64 in, float64 out, exact to rounding
    lab = rgb_to_lab(rgb)
    assert lab.dtype == tf.float64
    np.testing.assert_allclose(lab, skimage.color.rgb2lab(rgb), atol=1e-9)
    np.testing.assert_allclose(lab_to_rgb(lab), rgb, atol=1e-9)


@pytest.mark.parametrize("shape", [(3,), (7, 3), (2, 4, 5, 3), (1, 2, 3, 4, 3)])
def test_any_leading_dims(shape):
    rgb = np.random.default_rng(2).uniform(0, 1, shape)
    lab = rgb_to_lab(rgb.astype("float32"))
    assert tuple(lab.shape) == shape
    expected = skimage.color.rgb2lab(rgb.reshape(-1, 3)).reshape(shape)
    np.testing.assert_allclose(lab, expected, atol=1e-3)
    assert tuple(lab_to_rgb(lab).shape) == shape


def test_gradients_are_finite_at_black_knees_and_out_of_gamut():
    # Black, the sRGB knee, the Lab knee's neighbourhood, white, and slightly out-of-range values.
    rgb = tf.constant(
        [[0.0, 0.0, 0.0], [0.04045, 0.04045, 0.04045], [0.01, 0.5, 1.0], [1.0, 1.0, 1.0],
         [-0.1, 1.01, 0.5]],
        tf.float32,
    )
    lab = tf.constant(
        [[0.0, 0.0, 0.0], [8.0, 0.0, 0.0], [50.0, 200.0, -200.0], [100.0, 0.0, 0.0],
         [30.0, -128.0, 127.0]],
        tf.float32,
    )
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([rgb, lab])
        forward = tf.reduce_sum(rgb_to_lab(rgb))
        backward = tf.reduce_sum(lab_to_rgb(lab))
    for grad in (tape.gradient(forward, rgb), tape.gradient(backward, lab)):
        assert np.all(np.isfinite(grad.numpy()))
    # Inside the gamut the gradient is the real derivative, not zero.
    assert np.abs(tape.gradient(forward, rgb).numpy()[2]).sum() > 0


def test_xla_matches_eager():
    rgb = photo("chelsea").astype("float32")
    forward = tf.function(rgb_to_lab, jit_compile=True)
    backward = tf.function(lab_to_rgb, jit_compile=True)
    np.testing.assert_allclose(forward(rgb), rgb_to_lab(rgb), atol=1e-3)
    np.testing.assert_allclose(backward(forward(rgb)), rgb, atol=1e-4)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="floating-point.*uint8"):
        rgb_to_lab(np.zeros((2, 3), "uint8"))
    with pytest.raises(ValueError, match=r"3 channels.*\(2, 4\)"):
        rgb_to_lab(np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError, match=r"lab_to_rgb.*3 channels.*\(5, 2\)"):
        lab_to_rgb(np.zeros((5, 2), "float32"))
