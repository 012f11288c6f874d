"""tfvq.metrics.summarize_codes against hand-counted codes."""

import math

import numpy as np
import pytest

from tfvq.metrics import summarize_codes


def test_uniform_codes_have_perplexity_k_and_full_usage():
    codes = np.tile(np.arange(8), 5).reshape(5, 2, 4)
    stats = summarize_codes(codes, 8)
    assert stats["perplexity"] == pytest.approx(8.0)
    assert stats["usage"] == 1.0
    assert stats["most_frequent_code_accuracy"] == pytest.approx(1 / 8)


def test_a_collapsed_codebook_makes_the_guess_accurate():
    codes = np.array([3] * 9 + [5])
    stats = summarize_codes(codes, 16)
    p = np.array([0.9, 0.1])
    assert stats["perplexity"] == pytest.approx(math.exp(-np.sum(p * np.log(p))))
    assert stats["usage"] == pytest.approx(2 / 16)
    assert stats["most_frequent_code"] == 3
    assert stats["most_frequent_code_accuracy"] == pytest.approx(0.9)


def test_the_guess_comes_from_the_reference_codes():
    test = np.array([1, 1, 1, 2])
    train = np.array([2, 2, 1])
    stats = summarize_codes(test, 4, reference=train)
    assert stats["most_frequent_code"] == 2
    assert stats["most_frequent_code_accuracy"] == pytest.approx(0.25)
    # Perplexity and usage describe `codes`, never the reference.
    assert stats == {**summarize_codes(test, 4), "most_frequent_code": 2,
                     "most_frequent_code_accuracy": 0.25}


@pytest.mark.parametrize("codes, k, match", [
    (np.array([0.0, 1.0]), 4, "integer"),
    (np.zeros((0, 2, 2), dtype="int32"), 4, "at least one"),
    (np.array([0, 4]), 4, r"\[0, 4\)"),
    (np.array([-1, 0]), 4, r"\[0, 4\)"),
    (np.array([0, 1]), 0, "positive integer"),
    (np.array([0, 1]), True, "positive integer"),
])
def test_bad_codes_are_refused(codes, k, match):
    with pytest.raises(ValueError, match=match):
        summarize_codes(codes, k)


def test_bad_reference_is_refused():
    with pytest.raises(ValueError, match="reference"):
        summarize_codes(np.array([0, 1]), 2, reference=np.array([2]))
