"""Colour layers against scikit-image and NumPy statements of Zhang et al. 2016."""

import keras
import numpy as np
import pytest
import skimage.color
import skimage.data
import tensorflow as tf

from tfvq.layers import LabColorizationHead, LabToRGB, RGBToLab
from tfvq.layers.color import in_gamut_ab_bins


def photo_ab(name, step=8):
    return skimage.color.rgb2lab(getattr(skimage.data, name)()[::step, ::step])[..., 1:]


def round_trip(model, x, tmp_path):
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
    return loaded


def features(shape=(2, 6, 6, 8), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# --- RGBToLab / LabToRGB ---------------------------------------------------------------------


def test_conversion_layers_match_skimage():
    rgb = skimage.data.astronaut()[::16, ::16] / 255.0
    lab = RGBToLab()(rgb[None].astype("float32"))[0]
    np.testing.assert_allclose(lab, skimage.color.rgb2lab(rgb), atol=1e-3)
    np.testing.assert_allclose(LabToRGB()(lab[None])[0], rgb, atol=1e-4)


def test_conversion_layers_save(tmp_path):
    inputs = keras.Input((4, 4, 3))
    lab = RGBToLab()(inputs)
    model = keras.Model(inputs, [lab, LabToRGB()(lab)])
    x = np.random.default_rng(0).uniform(0, 1, (2, 4, 4, 3)).astype("float32")
    loaded = round_trip(model, x, tmp_path)
    assert [type(layer).__name__ for layer in loaded.layers[1:]] == ["RGBToLab", "LabToRGB"]


@pytest.mark.parametrize("layer", [RGBToLab, LabToRGB])
def test_conversion_layers_reject_wrong_channels(layer):
    with pytest.raises(ValueError, match=rf"{layer.__name__}.*=3; got shape \(None, 4, 4, 1\)"):
        layer()(keras.Input((4, 4, 1)))


# --- bins ------------------------------------------------------------------------------------


def test_bins_are_exactly_the_cells_srgb_reaches():
    bins = in_gamut_ab_bins()
    assert bins.shape == (262, 2)  # see the LabColorizationHead docstring for why not 313
    assert len(np.unique(bins, axis=0)) == len(bins)
    np.testing.assert_array_equal(bins % 10, 0)
    # Independent gamut: skimage's Lab of the RGB cube's faces (the ab projection of the cube is
    # that of its surface), at a finer sampling than the package uses.
    t = np.linspace(0, 1, 400)
    u, v = (g.ravel() for g in np.meshgrid(t, t))
    faces = np.concatenate(
        [np.insert(np.stack([u, v], 1), axis, value, 1) for axis in range(3) for value in (0, 1)]
    )
    ab = skimage.color.rgb2lab(faces)[:, 1:]
    reached = {tuple(cell) for cell in np.round(ab / 10).astype(int) * 10}
    assert {tuple(b) for b in bins.astype(int)} == reached


def test_head_has_one_logit_per_bin():
    head = LabColorizationHead()
    assert head.num_bins == 262
    assert tuple(head(features()).shape) == (2, 6, 6, 262)


# --- soft encoding and annealed mean ---------------------------------------------------------


def test_soft_encoding_matches_gaussian_over_five_nearest_bins():
    head = LabColorizationHead()
    ab = photo_ab("coffee", step=40).reshape(-1, 2)
    z = np.asarray(head.encode(ab))
    bins = in_gamut_ab_bins().astype("float64")
    d2 = ((ab[:, None] - bins[None]) ** 2).sum(-1)
    expected = np.zeros_like(d2)
    nearest = np.argsort(d2, axis=1)[:, :5]
    rows = np.arange(len(ab))[:, None]
    expected[rows, nearest] = np.exp(-d2[rows, nearest] / (2 * 5.0**2))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(z, expected, atol=1e-5)


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
def test_annealed_mean_of_soft_encoding_recovers_ab(name):
    head = LabColorizationHead()
    ab = photo_ab(name).astype("float32")
    decoded = np.asarray(head.decode(np.log(np.asarray(head.encode(ab)) + 1e-30)))
    assert np.abs(decoded - ab).max() < 2.5  # 1.92 measured
    assert np.abs(decoded - ab).mean() < 1.5


def test_annealed_mean_matches_formula():
    head = LabColorizationHead()
    logits = features((3, 262), seed=1) * 3
    bins = in_gamut_ab_bins().astype("float64")
    for temperature in (1.0, 0.38, 0.01):
        probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        scaled = np.exp(np.log(probs) / temperature)
        expected = (scaled / scaled.sum(-1, keepdims=True)) @ bins
        np.testing.assert_allclose(head.decode(logits, temperature), expected, atol=1e-3)
    # Near T=0 the annealed mean is the mode.
    np.testing.assert_allclose(head.decode(logits, 1e-4), bins[logits.argmax(-1)], atol=1e-3)


# --- class rebalancing -----------------------------------------------------------------------


def reference_rebalancing(ab, lam=0.5, sigma=5.0):
    bins = in_gamut_ab_bins().astype("float64")
    nearest = ((ab.reshape(-1, 1, 2) - bins[None]) ** 2).sum(-1).argmin(1)
    p = np.bincount(nearest, minlength=len(bins)) / len(nearest)
    gaussian = np.exp(-((bins[:, None] - bins[None]) ** 2).sum(-1) / (2 * sigma**2))
    smoothed = gaussian @ p
    smoothed /= smoothed.sum()
    w = 1 / ((1 - lam) * smoothed + lam / len(bins))
    return w / (smoothed * w).sum(), smoothed


def test_rebalancing_weights_follow_eq4_and_average_to_one():
    ab = np.concatenate([photo_ab(name).reshape(-1, 2) for name in ("astronaut", "coffee")])
    head = LabColorizationHead()
    weights = head.fit_rebalancing(ab)
    expected, smoothed = reference_rebalancing(ab)
    np.testing.assert_allclose(weights, expected, rtol=1e-5)
    np.testing.assert_allclose((smoothed * weights).sum(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(head.rebalancing_weights.numpy(), weights)
    # Rare colours weigh more than common ones.
    assert weights[smoothed.argmin()] > weights[smoothed.argmax()]


def test_rebalancing_from_dataset_matches_array():
    ab = photo_ab("chelsea").astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices(ab[None].repeat(4, 0)).batch(3)
    from_array = LabColorizationHead().fit_rebalancing(ab)
    from_dataset = LabColorizationHead().fit_rebalancing(dataset)
    np.testing.assert_allclose(from_dataset, from_array, rtol=1e-5)
    # lambda = 1 is a uniform prior: no rebalancing.
    uniform = LabColorizationHead(rebalance_lambda=1.0).fit_rebalancing(ab)
    np.testing.assert_allclose(uniform, 1.0, rtol=1e-5)


# --- losses ----------------------------------------------------------------------------------


def test_classification_loss_is_rebalanced_cross_entropy():
    head = LabColorizationHead()
    ab = photo_ab("astronaut", step=64).astype("float32")[None]
    weights = head.fit_rebalancing(photo_ab("coffee"))
    logits = features((*ab.shape[:-1], 262), seed=3)
    z = np.asarray(head.encode(ab), "float64")
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = np.mean(weights[z.argmax(-1)] * -(z * log_p).sum(-1))
    np.testing.assert_allclose(head.loss(ab, logits), expected, rtol=1e-5)


def test_regression_head_and_losses():
    ab = np.random.default_rng(4).uniform(-60, 60, (2, 6, 6, 2)).astype("float32")
    head = LabColorizationHead(mode="regression", ab_range=110.0)
    outputs = np.asarray(head(features() * 100))
    assert outputs.shape == (2, 6, 6, 2) and np.abs(outputs).max() <= 110.0
    assert head.decode(outputs) is outputs
    np.testing.assert_allclose(head.loss(ab, outputs), np.mean((ab - outputs) ** 2), rtol=1e-5)
    huber = LabColorizationHead(mode="regression", regression_loss="huber", huber_delta=2.0)
    expected = keras.losses.Huber(delta=2.0)(ab, outputs)
    np.testing.assert_allclose(huber.loss(ab, outputs), expected, rtol=1e-5)


@pytest.mark.parametrize("mode", ["classification", "regression"])
def test_loss_gradients_finite_and_xla(mode):
    head = LabColorizationHead(mode=mode)
    x = tf.constant(features())
    ab = tf.constant(np.random.default_rng(5).uniform(-80, 80, (2, 6, 6, 2)), tf.float32)

    @tf.function(jit_compile=True)
    def step(x, ab):
        with tf.GradientTape() as tape:
            outputs = head(x)
            loss = head.loss(ab, outputs)
        return loss, tape.gradient(loss, head.trainable_variables), head.decode(outputs)

    loss, grads, decoded = step(x, ab)
    assert np.isfinite(loss.numpy()) and all(np.all(np.isfinite(g.numpy())) for g in grads)
    np.testing.assert_allclose(decoded, head.decode(head(x)), atol=1e-3)


# --- saving ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["classification", "regression"])
def test_head_saves_with_config_and_rebalancing(mode, tmp_path):
    head = LabColorizationHead(mode=mode, temperature=0.5, sigma=4.0, name="head")
    inputs = keras.Input((6, 6, 8))
    model = keras.Model(inputs, head(inputs))
    if mode == "classification":
        head.fit_rebalancing(photo_ab("coffee"))
    loaded = round_trip(model, features(), tmp_path).get_layer("head")
    assert loaded.get_config() == head.get_config()
    if mode == "classification":
        np.testing.assert_allclose(loaded.rebalancing_weights, head.rebalancing_weights)


# --- bad inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "gan"}, "mode='classification' or 'regression'; got 'gan'"),
        ({"regression_loss": "l1"}, "regression_loss='mse' or 'huber'; got 'l1'"),
        ({"temperature": 0.0}, "temperature > 0; got temperature=0.0"),
        ({"sigma": -1.0}, "sigma > 0; got sigma=-1.0"),
        ({"rebalance_lambda": 1.5}, r"rebalance_lambda in \[0, 1\]; got rebalance_lambda=1.5"),
        ({"num_neighbors": 400}, r"num_neighbors in \[1, 262\].*got num_neighbors=400"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LabColorizationHead(**kwargs)


def test_bad_shapes_raise():
    head = LabColorizationHead()
    with pytest.raises(ValueError, match=r"\(batch, height, width, channels\).*\(2, 8\)"):
        head(np.zeros((2, 8), "float32"))
    with pytest.raises(ValueError, match=r"`ab` whose last axis is channels \(a, b\)=2.*\(4, 3\)"):
        head.encode(np.zeros((4, 3), "float32"))
    with pytest.raises(ValueError, match=r"`outputs` whose last axis is bins=262; got.*\(4, 2\)"):
        head.decode(np.zeros((4, 2), "float32"))
    with pytest.raises(ValueError, match="`ab_true` whose last axis"):
        head.loss(np.zeros((4, 1), "float32"), np.zeros((4, 262), "float32"))
    with pytest.raises(ValueError, match="at least one ab value"):
        head.fit_rebalancing([])
    with pytest.raises(ValueError, match="fit_rebalancing needs mode='classification'"):
        LabColorizationHead(mode="regression").fit_rebalancing(np.zeros((4, 2)))
