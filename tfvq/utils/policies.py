"""Keras' global dtype policy, set for a block of code and restored after it."""

import contextlib

import keras


@contextlib.contextmanager
def dtype_policy_scope(policy):
    """Makes `policy` Keras' global dtype policy inside the block, then restores the previous one.

    Keras layers take the global policy when they are made, and the sublayers a model makes in
    its constructor get no `dtype` of their own; Keras offers only the global setter
    (`keras.config.set_dtype_policy`), not a scope, hence this one.

    Args:
        policy: a policy name ("mixed_bfloat16"), a `keras.DTypePolicy` or its serialized
            config; None leaves the global policy as it is.

    Example:
    >>> with dtype_policy_scope("mixed_bfloat16"):
    ...     layer = keras.layers.Dense(2)
    >>> layer.dtype_policy.name, keras.config.dtype_policy().name
    ('mixed_bfloat16', 'float32')
    """
    previous = keras.config.dtype_policy()
    if policy is not None:
        keras.config.set_dtype_policy(keras.dtype_policies.get(policy))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
