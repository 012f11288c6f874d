"""Argument checks shared by layers and models, with errors naming argument, value and bound."""

import numbers


def check_int(owner, name, value, minimum=1):
    """Returns `value` if it is an integer (not a bool) >= `minimum`, else raises ValueError.

    Args:
        owner: the object being configured; its class name starts the message.
        name: the argument's name.
        value: what was received.
        minimum: the smallest allowed value.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{type(owner).__name__} expects {name} >= {minimum} (an int); got {value!r}")
    return value
