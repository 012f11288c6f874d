"""Tests for tfvq.utils.checks: integer and image-shape arguments, and the errors they give."""

import numpy as np
import pytest

from tfvq.utils.checks import check_image_shape, check_int, check_rate, is_int


@pytest.mark.parametrize("value, minimum, expected", [
    (3, 1, True),
    (np.int64(3), 1, True),
    (0, 1, False),
    (0, 0, True),
    (-5, None, True),
    (True, 0, False),  # a bool is no count
    (2.0, 1, False),
    ("2", None, False),
    (None, None, False),
])
def test_is_int(value, minimum, expected):
    assert is_int(value, minimum) is expected


def test_check_int_returns_the_value_or_names_owner_argument_value_and_bound():
    class VQVAE:
        pass

    assert check_int(VQVAE(), "num_embeddings", 512) == 512
    with pytest.raises(ValueError, match=r"^VQVAE expects num_embeddings >= 1 \(an int\); got 0$"):
        check_int(VQVAE(), "num_embeddings", 0)
    with pytest.raises(ValueError, match=r"^interpolate expects steps >= 2 \(an int\); got True$"):
        check_int("interpolate", "steps", True, minimum=2)
    with pytest.raises(ValueError, match=r"^PixelCNNPrior.sample expects an int seed; got 'a'$"):
        check_int("PixelCNNPrior.sample", "seed", "a", minimum=None)


@pytest.mark.parametrize("bad", [(8, 8), (8, 8, 0), (8, 8.5, 1), 8, None, "abc"])
def test_check_image_shape(bad):
    assert check_image_shape("AE", [8, 8, np.int32(1)]) == (8, 8, 1)
    with pytest.raises(ValueError, match=r"^AE expects input_shape \(height, width, channels\)"):
        check_image_shape("AE", bad)


def test_check_rate_takes_zero_to_below_one_and_names_owner_argument_value():
    assert check_rate("PixelCNNPrior", "dropout", 0) == 0.0
    assert check_rate("PixelCNNPrior", "dropout", np.float32(0.25)) == 0.25
    for bad in (1, 1.5, -0.1, True, "0.1", None):
        with pytest.raises(ValueError,
                           match=rf"^PixelCNNPrior expects dropout in \[0, 1\); got {bad!r}$"):
            check_rate("PixelCNNPrior", "dropout", bad)
