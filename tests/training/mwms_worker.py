"""One worker of a local MultiWorkerMirroredStrategy run (started by test_distributed.py).

Usage, from the repository root: TF_CONFIG=... python -m tests.training.mwms_worker OUTPUT.npz
Trains the tiny VQ-VAE with `fit` for a few steps and writes its weights to OUTPUT.npz.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfvq.training import make_strategy  # noqa: E402

from ._common import images, tiny_vqvae  # noqa: E402


def main(output, steps=4):
    strategy = make_strategy("multiworker")  # first: before any other TensorFlow op
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = tiny_vqvae()
        model.compile(optimizer=keras.optimizers.SGD(0.1))
    data = tf.data.Dataset.from_tensor_slices(images(8 * steps)).batch(8)
    history = model.fit(data, epochs=1, verbose=0)
    np.savez(output, *model.get_weights(), loss=np.ravel(history.history["loss"]))


if __name__ == "__main__":
    main(sys.argv[1])
