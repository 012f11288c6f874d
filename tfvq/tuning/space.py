"""Search spaces as `{name: keras_tuner HyperParameter}`: built from plain dicts, checked up front.

A space maps a model argument (or `learning_rate`) to a keras-tuner hyperparameter. Users write
the part they change as a plain dict:

    {"hidden_channels": [32, 64],                # a list or tuple: a Choice
     "quantizer": "ema",                          # a single value: Fixed
     "learning_rate": {"min_value": 1e-4, "max_value": 1e-2, "sampling": "log"}}  # a range

or pass keras-tuner objects (`keras_tuner.HyperParameters`, or single `HyperParameter`s as
values). `check_space` refuses values that cannot give a valid model before any trial runs.
"""

import numbers

import keras_tuner as kt

from tfvq.layers import QUANTIZERS
from tfvq.layers.conv_blocks import DOWNSAMPLE_MODES
from tfvq.utils.checks import is_int

__all__ = ["as_hyperparameter", "check_space", "possible_values", "space_from"]

_DOWNSAMPLE_VALUES = DOWNSAMPLE_MODES + ("pool", "strided", "max", "avg")
_RANGE_KEYS = {"min_value", "max_value", "step", "sampling", "default"}

# name -> (kind, bound): what every value of a hyperparameter of that name must be.
RULES = {
    "hidden_channels": ("int", 1),
    "residual_channels": ("int", 1),
    "num_residual_layers": ("int", 0),
    "downsample_stages": ("int", 0),
    "latent_dim": ("int", 1),
    "latent_channels": ("int", 1),
    "num_embeddings": ("int", 1),
    "embedding_dim": ("int", 1),
    "downsample": ("choice", _DOWNSAMPLE_VALUES),
    # Read at check time, so that a quantizer registered later is a valid choice too.
    "quantizer": ("choice", lambda: tuple(QUANTIZERS)),
    "beta": ("float", 0.0),
    "commitment_cost": ("float", 0.0),
    "decay": ("unit", None),
    "learning_rate": ("positive", None),
}


def as_hyperparameter(name, value, owner="space"):
    """A keras-tuner hyperparameter named `name` from a plain value, list, range dict or HP.

    Args:
        name: the hyperparameter's name.
        value: a `keras_tuner` `HyperParameter` (renamed to `name`); a list or tuple of values
            (a `Choice`, its first value the default); a dict with `min_value` and `max_value`
            and optionally `step`, `sampling` ("linear", "log"), `default` (an `Int` when the
            bounds are ints, else a `Float`); or a single int, float, str or bool (`Fixed`).
        owner: who asks, to start error messages.

    Returns:
        A `keras_tuner.engine.hyperparameters.HyperParameter`.

    Example:
        >>> as_hyperparameter("hidden_channels", [32, 64]).values
        [32, 64]
    """
    if isinstance(value, kt.engine.hyperparameters.HyperParameter):
        config = dict(value.get_config(), name=name, conditions=[])
        return type(value).from_config(config)
    if isinstance(value, (list, tuple)):
        values = list(value)
        if not values:
            raise ValueError(f"{owner}: {name} must list at least one value; got {value!r}")
        if len(values) == 1:
            return kt.engine.hyperparameters.Fixed(name, values[0])
        kinds = {bool if isinstance(v, bool) else int if isinstance(v, numbers.Integral)
                 else float if isinstance(v, numbers.Real) else type(v) for v in values}
        if kinds == {int, float}:
            values = [float(v) for v in values]
        elif len(kinds) != 1 or not kinds <= {bool, int, float, str}:
            raise ValueError(
                f"{owner}: {name} choices must all be ints, floats, strings or bools; got "
                f"{value!r}"
            )
        return kt.engine.hyperparameters.Choice(name, values, default=values[0])
    if isinstance(value, dict):
        if not {"min_value", "max_value"} <= set(value) or not set(value) <= _RANGE_KEYS:
            raise ValueError(
                f"{owner}: a range for {name} must be a dict with min_value and max_value and "
                f"optionally {sorted(_RANGE_KEYS - {'min_value', 'max_value'})}; got {value!r}"
            )
        low, high = value["min_value"], value["max_value"]
        if not low <= high:
            raise ValueError(f"{owner}: {name} range needs min_value <= max_value; got {value!r}")
        ints = all(is_int(v) for v in (low, high, value.get("step", 1)))
        cls = kt.engine.hyperparameters.Int if ints else kt.engine.hyperparameters.Float
        return cls(name, **value)
    if isinstance(value, (bool, numbers.Real, str)):
        return kt.engine.hyperparameters.Fixed(name, value)
    raise ValueError(
        f"{owner}: {name} must be a value, a list of values, a range dict or a keras_tuner "
        f"HyperParameter; got {value!r} of type {type(value).__name__}"
    )


def space_from(space, owner="space"):
    """`{name: HyperParameter}` from a dict of plain values / HPs or a `HyperParameters`."""
    if space is None:
        return {}
    if isinstance(space, kt.HyperParameters):
        return {hp.name: as_hyperparameter(hp.name, hp, owner) for hp in space.space}
    if not isinstance(space, dict):
        raise ValueError(
            f"{owner}: space must be a dict or a keras_tuner.HyperParameters; got "
            f"{type(space).__name__}"
        )
    return {name: as_hyperparameter(name, value, owner) for name, value in space.items()}


def possible_values(hp):
    """Every value `hp` can take (for a Float, its two bounds, which is enough to check it)."""
    if isinstance(hp, kt.engine.hyperparameters.Float):
        return [hp.min_value, hp.max_value]
    if isinstance(hp, kt.engine.hyperparameters.Int):
        step = hp.step or 1
        if hp.sampling == "linear":
            return list(range(hp.min_value, hp.max_value + 1, step))
        return [hp.min_value, hp.max_value]  # log steps are multiplicative: the bounds suffice
    if isinstance(hp, kt.engine.hyperparameters.Fixed):
        return [hp.value]
    return list(hp.values)


def _check_value(owner, name, value, rule):
    kind, bound = rule
    bound = bound() if callable(bound) else bound
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if kind == "int" and not is_int(value, bound):
        expected = f"an int >= {bound}"
    elif kind == "float" and not (real and value >= bound):
        expected = f"a number >= {bound}"
    elif kind == "positive" and not (real and value > 0):
        expected = "a number > 0"
    elif kind == "unit" and not (real and 0 < value < 1):
        expected = "a number in (0, 1)"
    elif kind == "choice" and value not in bound:
        expected = f"one of {bound}"
    else:
        return
    raise ValueError(f"{owner}: {name}={value!r} cannot make a valid model; expected {expected}")


def check_space(space, input_shape, owner="space"):
    """Raises ValueError, naming the argument and value, if any point of `space` is invalid.

    Checks each known hyperparameter's values (`RULES`) and that height and width are divisible
    by `2**downsample_stages` for every stage count the space can pick (unless every downsample
    mode it can pick is "none").

    Args:
        space: `{name: HyperParameter}`.
        input_shape: (height, width, channels) of the images.
        owner: who asks, to start error messages.
    """
    for name, hp in space.items():
        if name in RULES:
            for value in possible_values(hp):
                _check_value(owner, name, value, RULES[name])
    modes = set(possible_values(space["downsample"])) if "downsample" in space else {"stride"}
    if modes == {"none"} or "downsample_stages" not in space:
        return
    height, width = input_shape[:2]
    valid = valid_stages(input_shape, range(max(possible_values(space["downsample_stages"])) + 1))
    for stages in possible_values(space["downsample_stages"]):
        if stages not in valid:
            raise ValueError(
                f"{owner}: downsample_stages={stages} cannot make a valid model for input_shape "
                f"{tuple(input_shape)}: height {height} and width {width} must be divisible by "
                f"2**downsample_stages = {2**stages}; expected downsample_stages in {valid} "
                "(or downsample='none')"
            )


def valid_stages(input_shape, candidates):
    """The stage counts among `candidates` whose 2**stages divides height and width."""
    height, width = input_shape[:2]
    return [s for s in candidates if height % 2**s == 0 and width % 2**s == 0]
