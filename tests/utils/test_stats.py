"""Tests for tfvq.utils.stats: the Student-t interval over seeds, against known values."""

import pytest

from tfvq.utils.stats import mean_interval


def test_mean_interval_known_values():
    import numpy as np
    from scipy import stats

    rng = np.random.default_rng(0)
    random = rng.normal(0.8, 0.02, 5).tolist()
    cases = [[[1.0, 2.0, 3.0], 0.95], [random, 0.95], [[0.81, 0.79, 0.84], 0.90], [[0.7], 0.95],
             [[0.5, 0.5, 0.5], 0.95]]
    hand, scipy_case, ninety, single, constant = [mean_interval(*case) for case in cases]
    # By hand: mean 2, s = 1, t(0.975, 2 dof) = 4.302653 (printed t tables), so the
    # half-width is 4.302653 / sqrt(3) = 2.484138.
    assert hand["mean"] == 2.0 and hand["std"] == pytest.approx(1.0) and hand["n"] == 3
    assert hand["half_width"] == pytest.approx(2.484138, abs=1e-6)
    assert (hand["low"], hand["high"]) == pytest.approx((2.0 - 2.484138, 2.0 + 2.484138))
    expected = stats.t.interval(0.95, 4, loc=np.mean(random), scale=stats.sem(random))
    assert (scipy_case["low"], scipy_case["high"]) == pytest.approx(expected, rel=1e-12)
    # 90 %: t(0.95, 2 dof) = 2.919986; s = 0.025166 for (0.81, 0.79, 0.84).
    assert ninety["half_width"] == pytest.approx(2.919986 * 0.0251661 / 3**0.5, rel=1e-5)
    assert single["mean"] == 0.7 and single["low"] is None and single["half_width"] is None
    assert constant["low"] == constant["mean"] == constant["high"] == 0.5
