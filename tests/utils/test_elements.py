"""Tests for tfvq.utils.elements.split_element: every element form a dataset or user gives."""

import pytest

from tfvq.utils.elements import split_element


@pytest.mark.parametrize("element, expected", [
    ("x", ("x", None)),
    (("x",), ("x", None)),
    (("x", "y"), ("x", "y")),
    (("x", "y", "w"), ("x", "y")),
    ({"image": "x", "label": "y", "id": "i"}, ("x", "y")),
    ({"image": "x"}, ("x", None)),
    (({"image": "x", "label": "y"},), ("x", None)),
])
def test_forms(element, expected):
    assert split_element(element) == expected


def test_keys_choose_the_entry():
    assert split_element({"codes": 1, "labels": 2}, keys=("codes",)) == (1, 2)


def test_bad_forms_name_the_owner():
    with pytest.raises(ValueError, match=r"VQVAE expects a dict element with one of the keys "
                                         r"\['image', 'images'\]; got keys \['pixels'\]"):
        split_element({"pixels": 1}, "VQVAE")
    with pytest.raises(ValueError, match="got a tuple of 4 items"):
        split_element((1, 2, 3, 4))
