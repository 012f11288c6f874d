"""Colorization metrics against NumPy and scikit-image statements of Zhang et al. 2016."""

import numpy as np
import pytest
import skimage.color
import skimage.data
from absl.testing import parameterized

from tfvq.metrics.color import (
    DEFAULT_THRESHOLDS,
    ab_accuracy,
    ab_accuracy_auc,
    ab_error,
    colorization_metrics,
    colorization_terms,
    gray_colorization,
)


def reference_curve(ab_true, ab_pred, thresholds):
    d = np.sqrt(((np.asarray(ab_true, "float64") - ab_pred) ** 2).sum(-1)).ravel()
    return np.array([(d <= t).mean() for t in thresholds])


def reference_auc(ab_true, ab_pred, thresholds=np.arange(151.0)):
    curve = reference_curve(ab_true, ab_pred, thresholds)
    return np.trapezoid(curve, thresholds) / (thresholds[-1] - thresholds[0])


def random_ab(shape, seed, scale=40.0):
    return np.random.default_rng(seed).normal(0, scale, shape).astype("float32")


def photos(step=16):
    """Real RGB photos in [0, 1], cropped to one size: (3, H, W, 3)."""
    images = [getattr(skimage.data, name)()[::step, ::step] for name in ("astronaut", "chelsea", "coffee")]
    h = min(i.shape[0] for i in images)
    w = min(i.shape[1] for i in images)
    return np.stack([i[:h, :w] for i in images]).astype("float32") / 255.0


class AbAccuracyTest(parameterized.TestCase):
    @parameterized.parameters(
        dict(shape=(2, 5, 7, 2), scale=10.0),
        dict(shape=(4, 6, 6, 2), scale=40.0),
        dict(shape=(300, 2), scale=120.0),
    )
    def test_curve_and_auc_match_numpy(self, shape, scale):
        ab_true, ab_pred = random_ab(shape, 0, scale), random_ab(shape, 1, scale)
        thresholds = np.arange(151.0)
        np.testing.assert_allclose(
            ab_accuracy(ab_true, ab_pred), reference_curve(ab_true, ab_pred, thresholds), atol=1e-6)
        np.testing.assert_allclose(
            ab_accuracy_auc(ab_true, ab_pred), reference_auc(ab_true, ab_pred), atol=1e-5)
        distance = np.sqrt(((ab_true.astype("float64") - ab_pred) ** 2).sum(-1))
        np.testing.assert_allclose(ab_error(ab_true, ab_pred), distance.mean(), rtol=1e-5)

    def test_uneven_thresholds(self):
        ab_true, ab_pred = random_ab((3, 8, 8, 2), 2), random_ab((3, 8, 8, 2), 3)
        thresholds = np.array([0.0, 2.0, 5.0, 20.0, 21.0, 60.0, 100.0])
        np.testing.assert_allclose(
            ab_accuracy_auc(ab_true, ab_pred, thresholds),
            reference_auc(ab_true, ab_pred, thresholds), atol=1e-5)

    def test_distances_on_thresholds_count_as_reached(self):
        # Pixels exactly at 0, 15 and 150 (3-4-5 triangles); accuracy is "within", i.e. <=.
        ab_true = np.zeros((3, 2), "float32")
        ab_pred = np.array([[0, 0], [9, 12], [90, 120]], "float32")
        curve = np.asarray(ab_accuracy(ab_true, ab_pred))
        np.testing.assert_allclose(curve[[0, 14, 15, 149, 150]], [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1.0],
                                   atol=1e-6)
        np.testing.assert_allclose(ab_accuracy_auc(ab_true, ab_pred),
                                   reference_auc(ab_true, ab_pred), atol=1e-6)

    def test_perfect_and_hopeless_predictions(self):
        ab = random_ab((2, 4, 4, 2), 4)
        self.assertAlmostEqual(float(ab_accuracy_auc(ab, ab)), 1.0, places=6)
        self.assertAlmostEqual(float(ab_error(ab, ab)), 0.0, places=6)
        self.assertAlmostEqual(float(ab_accuracy_auc(ab, ab + 200.0)), 0.0, places=6)

    def test_default_thresholds_are_the_papers(self):
        np.testing.assert_array_equal(DEFAULT_THRESHOLDS, np.arange(151))

    def test_bad_arguments(self):
        ab = np.zeros((4, 2), "float32")
        with self.assertRaisesRegex(ValueError, r"`thresholds`, a 1-D increasing.*got \[5.0, 1.0\]"):
            ab_accuracy_auc(ab, ab, thresholds=[5.0, 1.0])
        with self.assertRaisesRegex(ValueError, r"`ab_pred` whose last axis.*got shape \(4, 3\)"):
            ab_error(ab, np.zeros((4, 3), "float32"))
        with self.assertRaisesRegex(ValueError, r"same shape; got \(4, 2\) and \(5, 2\)"):
            ab_accuracy(ab, np.zeros((5, 2), "float32"))


# --- on images -------------------------------------------------------------------------------


def reference_terms(rgb_true, rgb_pred):
    """Per-image PSNR and per-pixel ab distances with skimage's Lab."""
    mse = ((rgb_true.astype("float64") - rgb_pred) ** 2).reshape(len(rgb_true), -1).mean(1)
    psnr = 10 * np.log10(1.0 / mse)
    ab_true = skimage.color.rgb2lab(rgb_true)[..., 1:]
    ab_pred = skimage.color.rgb2lab(rgb_pred)[..., 1:]
    return psnr, ab_true, ab_pred


def test_gray_colorization_keeps_lightness_and_drops_colour():
    rgb = photos()
    gray = np.asarray(gray_colorization(rgb))
    lab, lab_gray = skimage.color.rgb2lab(rgb), skimage.color.rgb2lab(gray)
    np.testing.assert_allclose(lab_gray[..., 0], lab[..., 0], atol=0.05)
    np.testing.assert_allclose(lab_gray[..., 1:], 0.0, atol=0.05)
    # uint8 input is read as 8-bit pixels.
    uint8 = np.round(rgb * 255).astype("uint8")
    np.testing.assert_allclose(gray_colorization(uint8), gray_colorization(uint8 / 255.0), atol=1e-5)


def test_terms_and_dataset_metrics_match_skimage_reference():
    truth = photos()
    prediction = np.roll(truth, 1, axis=0) * 0.5 + truth * 0.5  # mixed with other colours
    psnr, ab_true, ab_pred = reference_terms(truth, prediction)
    terms = colorization_terms(truth, prediction)
    np.testing.assert_allclose(terms["psnr"], psnr.mean(), rtol=1e-4)
    d = np.sqrt(((ab_true - ab_pred) ** 2).sum(-1))
    np.testing.assert_allclose(terms["ab_error"], d.mean(), rtol=1e-3)
    np.testing.assert_allclose(terms["ab_auc"], reference_auc(ab_true, ab_pred), atol=1e-3)

    # Over a dataset of uneven batches, images and pixels are pooled, not batch means averaged.
    lookup = {truth[i].tobytes(): prediction[i] for i in range(len(truth))}

    def recolor(batch):
        return np.stack([lookup[np.asarray(image).tobytes()] for image in batch])

    batches = [(truth[:1], "label"), (truth[1:], "label")]
    scores = colorization_metrics(recolor, batches)
    assert scores["num_images"] == 3
    for key in ("psnr", "ab_error", "ab_auc"):
        np.testing.assert_allclose(scores[key], float(terms[key]), rtol=1e-5, err_msg=key)


def test_gray_baseline_scores_the_papers_order_of_magnitude():
    # Zhang et al. 2016 Table 1: predicting gray scores AuC 89.1% on ImageNet photos.
    rgb = photos(step=4)
    scores = colorization_metrics(gray_colorization, [rgb])
    assert 0.8 < scores["ab_auc"] < 0.97
    perfect = colorization_metrics(lambda x: x, [rgb])
    assert perfect["ab_auc"] > 0.999 and perfect["ab_error"] < 0.05


def test_metrics_bad_arguments():
    rgb = photos()
    with pytest.raises(ValueError, match="`model_or_fn`, a keras.Model or a function; got int"):
        colorization_metrics(3, [rgb])
    with pytest.raises(ValueError, match="at least one image; got none"):
        colorization_metrics(gray_colorization, [])
    with pytest.raises(ValueError, match=r"shaped like its input \(3, \d+, \d+, 3\); got shape"):
        colorization_metrics(lambda x: x[:, :4], [rgb])
    with pytest.raises(ValueError, match=r"`dataset images` of shape \(batch, height, width, 3\)"):
        colorization_metrics(gray_colorization, [rgb[..., :1]])
    with pytest.raises(ValueError, match="float RGB in \\[0, 1\\] or uint8; got dtype int32"):
        colorization_terms(rgb.astype("int32"), rgb)
