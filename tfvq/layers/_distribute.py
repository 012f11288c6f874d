"""Cross-replica reductions that layers need, with a no-op fallback off TensorFlow.

Keras has no backend-neutral all-reduce, and the EMA codebook must see the statistics of the
whole global batch under `tf.distribute`, so this one TensorFlow-specific piece lives here.
"""

import keras


def cross_replica_sum(*tensors):
    """Sums each tensor over the replicas of the current `tf.distribute` replica context.

    Args:
        *tensors: tensors computed by every replica, same shapes on all of them.

    Returns:
        A tuple of the summed tensors (the inputs themselves outside a multi-replica context or
        off the TensorFlow backend).
    """
    if keras.backend.backend() != "tensorflow":
        return tensors
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tensors
    return tuple(context.all_reduce(tf.distribute.ReduceOp.SUM, list(tensors)))
