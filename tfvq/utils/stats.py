"""Summaries over repeated runs (seeds): a mean with its Student-t confidence interval."""


def mean_interval(values, confidence=0.95):
    """Mean of `values` with its Student-t interval: mean ± t(n - 1) * s / sqrt(n).

    Written here because scipy gives the interval (`stats.t.interval`) but NaN where every
    value is equal, and nothing at all for one value; experiments report both cases. s is the
    sample standard deviation (ddof 1). scipy comes with scikit-learn, a tfvq dependency.

    Args:
        values: the per-run numbers, e.g. one test accuracy per seed.
        confidence: the interval's coverage, in (0, 1).

    Returns:
        A dict with `mean`, `low`, `high`, `half_width`, `std`, `n` and `confidence`; with
        fewer than two values the spread is unknown and `low`, `high`, `half_width` and `std`
        are None.

    Example:
    >>> interval = mean_interval([1.0, 2.0, 3.0])
    >>> interval["mean"], round(interval["half_width"], 4)
    (2.0, 2.4841)
    >>> mean_interval([0.7])["low"] is None
    True
    """
    import numpy as np
    from scipy import stats

    x = np.asarray(values, np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return {"mean": mean, "low": None, "high": None, "half_width": None, "std": None,
                "n": len(x), "confidence": confidence}
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * std / np.sqrt(len(x)))
    return {"mean": mean, "low": mean - half, "high": mean + half, "half_width": half,
            "std": std, "n": len(x), "confidence": confidence}
