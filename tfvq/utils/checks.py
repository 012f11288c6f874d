"""Argument checks shared by layers and models, with errors naming argument, value and bound."""

import numbers


def is_int(value, minimum=None):
    """Whether `value` is an integer (a Python or NumPy one, not a bool), >= `minimum` if given."""
    return bool(not isinstance(value, bool) and isinstance(value, numbers.Integral)
                and (minimum is None or value >= minimum))


def check_int(owner, name, value, minimum=1):
    """Returns `value` if it is an integer (not a bool) >= `minimum`, else raises ValueError.

    Args:
        owner: who checks: an object being configured, whose class name starts the message,
            or a name such as "interpolate" or "PixelCNNPrior.sample".
        name: the argument's name.
        value: what was received.
        minimum: the smallest allowed value; None for any integer.

    Example:
    >>> check_int("interpolate", "steps", 8, minimum=2)
    8
    >>> check_int("interpolate", "steps", 1.5, minimum=2)
    Traceback (most recent call last):
    ...
    ValueError: interpolate expects steps >= 2 (an int); got 1.5
    """
    if not is_int(value, minimum):
        expected = f"an int {name}" if minimum is None else f"{name} >= {minimum} (an int)"
        raise ValueError(f"{_name(owner)} expects {expected}; got {value!r}")
    return value


def check_rate(owner, name, value):
    """Returns `value` as a float if it is a number in [0, 1), else raises ValueError.

    For dropout-like rates: 1 would drop everything.

    Args:
        owner: who checks, as in `check_int`.
        name: the argument's name.
        value: what was received.

    Example:
    >>> check_rate("GatedPixelCNNBlock", "dropout", 0.1)
    0.1
    >>> check_rate("GatedPixelCNNBlock", "dropout", 1)
    Traceback (most recent call last):
    ...
    ValueError: GatedPixelCNNBlock expects dropout in [0, 1); got 1
    """
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not 0 <= value < 1):
        raise ValueError(f"{_name(owner)} expects {name} in [0, 1); got {value!r}")
    return float(value)


def check_image_shape(owner, input_shape):
    """`input_shape` as a tuple `(height, width, channels)` of ints >= 1, else ValueError.

    Args:
        owner: who checks, as in `check_int`.
        input_shape: what was received: a tuple, list or other sequence of three sizes.

    Example:
    >>> check_image_shape("VQVAE", [32, 32, 3])
    (32, 32, 3)
    """
    try:
        shape = tuple(input_shape)
    except TypeError:  # not a sequence at all
        shape = ()
    if len(shape) != 3 or not all(is_int(d, 1) for d in shape):
        raise ValueError(f"{_name(owner)} expects input_shape (height, width, channels); got "
                         f"{input_shape!r}")
    return tuple(int(d) for d in shape)


def _name(owner):
    return owner if isinstance(owner, str) else type(owner).__name__
