"""tfvq.losses against independent numpy / scipy references (float64)."""

import numpy as np
import pytest
from scipy.special import expit

from tfvq import losses

RNG = np.random.default_rng(0)


def _np(x):
    return np.asarray(x, dtype=np.float64)


def test_mean_squared_error_per_example():
    x = RNG.uniform(size=(3, 4, 5, 2)).astype(np.float32)
    y = RNG.uniform(size=(3, 4, 5, 2)).astype(np.float32)
    expected = ((_np(x) - _np(y)) ** 2).reshape(3, -1).mean(axis=1)
    np.testing.assert_allclose(_np(losses.mean_squared_error(x, y)), expected, rtol=1e-5)


@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_psnr(data_range):
    x = RNG.uniform(size=(2, 6, 6, 1)).astype(np.float32) * data_range
    y = (x + RNG.normal(scale=0.05 * data_range, size=x.shape)).astype(np.float32)
    mse = ((_np(x) - _np(y)) ** 2).reshape(2, -1).mean(axis=1)
    expected = 10 * np.log10(data_range**2 / mse)
    np.testing.assert_allclose(_np(losses.psnr(x, y, data_range)), expected, rtol=1e-4)


def test_gaussian_kl_closed_form():
    mean = RNG.normal(size=(4, 3)).astype(np.float32)
    log_var = RNG.normal(size=(4, 3)).astype(np.float32)
    m, lv = _np(mean), _np(log_var)
    expected = 0.5 * np.sum(np.exp(lv) + m**2 - 1 - lv, axis=1)
    np.testing.assert_allclose(_np(losses.gaussian_kl(mean, log_var)), expected, rtol=1e-5)
    np.testing.assert_allclose(_np(losses.gaussian_kl(np.zeros((2, 3)), np.zeros((2, 3)))), 0.0,
                               atol=1e-7)


def test_bce_nll_is_summed_bce_with_logits():
    x = RNG.uniform(size=(3, 4, 4, 1)).astype(np.float32)
    logits = RNG.normal(scale=3, size=x.shape).astype(np.float32)
    p = expit(_np(logits))
    bce = -(_np(x) * np.log(p) + (1 - _np(x)) * np.log(1 - p))
    expected = bce.reshape(3, -1).sum(axis=1)
    np.testing.assert_allclose(_np(losses.Likelihood("bce").nll(x, logits)), expected, rtol=1e-4)


def test_mse_likelihood():
    lik = losses.Likelihood("mse")
    x = RNG.uniform(size=(2, 3, 3, 1)).astype(np.float32)
    y = RNG.uniform(size=x.shape).astype(np.float32)
    # The decoder predicts the offset from mid-gray: output y means the image y + 0.5.
    expected = ((_np(x) - _np(y) - 0.5) ** 2).reshape(2, -1).sum(1)
    np.testing.assert_allclose(_np(lik.nll(x, y)), expected, rtol=1e-5)
    assert lik.channel_multiplier == 1
    np.testing.assert_allclose(_np(lik.to_image(y)), y + 0.5)
    np.testing.assert_allclose(_np(lik.to_image(np.zeros_like(y))), 0.5)  # zero = mid-gray


def _discretized_logistic_nll(x, loc, log_scale):
    """PixelCNN++ single-component discretized logistic in float64, bins of width 1/255."""
    x, loc = _np(x), _np(loc)
    scale = np.exp(np.maximum(_np(log_scale), -7.0))
    k = np.round(x * 255.0)
    centre = k / 255.0

    def cdf(v):
        return expit((v - loc) / scale)

    p = cdf(centre + 0.5 / 255) - cdf(centre - 0.5 / 255)
    p = np.where(k == 0, cdf(0.5 / 255), p)
    p = np.where(k == 255, 1.0 - cdf(1.0 - 0.5 / 255), p)
    return -np.log(p).reshape(len(x), -1).sum(axis=1)


def test_logistic_nll_matches_discretized_logistic():
    rng = np.random.default_rng(1)
    n = 3
    levels = rng.integers(0, 256, size=(n, 4, 4, 2))
    levels[0, 0, 0] = 0
    levels[0, 0, 1] = 255
    levels[1, 1, :] = [1, 254]
    x = (levels / 255.0).astype(np.float32)
    # Locations near the data (within a few scales) keep the float64 reference out of underflow.
    loc = (x + rng.normal(scale=0.05, size=x.shape)).astype(np.float32)
    log_scale = rng.uniform(-3.5, -1.5, size=x.shape).astype(np.float32)
    output = np.concatenate([loc - 0.5, log_scale], axis=-1)  # locations relative to mid-gray
    lik = losses.Likelihood("logistic")
    assert lik.channel_multiplier == 2
    expected = _discretized_logistic_nll(x, loc, log_scale)
    np.testing.assert_allclose(_np(lik.nll(x, output)), expected, rtol=1e-4)
    np.testing.assert_allclose(_np(lik.to_image(output)), np.clip(loc, 0, 1), atol=1e-6)


def test_logistic_nll_edge_levels_symmetric():
    # A logistic centred at 0.5 gives levels 0 and 255 (and 1 and 254) the same probability.
    x = np.array([0, 255, 1, 254], np.float32).reshape(4, 1, 1, 1) / 255.0
    output = np.concatenate([np.zeros_like(x), np.full_like(x, np.log(0.05))], axis=-1)
    nll = _np(losses.Likelihood("logistic").nll(x, output))
    np.testing.assert_allclose(nll[0], nll[1], rtol=1e-5)
    expected = _discretized_logistic_nll(x, output[..., :1] + 0.5, output[..., 1:])
    np.testing.assert_allclose(nll, expected, rtol=1e-4)


def test_bits_per_dim():
    nll = np.array([100.0, 2000.0], np.float32)
    np.testing.assert_allclose(_np(losses.bits_per_dim(nll, 784)), nll / (784 * np.log(2)),
                               rtol=1e-6)


def test_num_dims():
    assert losses.num_dims((28, 28, 1)) == 784


def test_unknown_likelihood():
    with pytest.raises(ValueError, match="reconstruction_loss"):
        losses.Likelihood("l1")
