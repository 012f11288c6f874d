"""Trains the tiny VQ-VAE for some epochs with `default_callbacks`, slowly enough to be killed.

Usage, from the repository root: python -m tests.training.resumable_train OUTPUT_DIR EPOCHS
Appends each epoch it starts to OUTPUT_DIR/epochs.txt and, when done, writes the final weights
to OUTPUT_DIR/final.npz. Killed and rerun, it resumes from OUTPUT_DIR/backup.
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfvq.training import default_callbacks  # noqa: E402

from ._common import images, tiny_vqvae  # noqa: E402

BATCHES_PER_EPOCH = 12
SECONDS_PER_BATCH = 0.08


class _Pace(keras.callbacks.Callback):
    """Records epochs and slows batches down, so that a kill lands inside an epoch."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_begin(self, epoch, logs=None):
        with open(self.path, "a") as f:
            f.write(f"{epoch}\n")

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(SECONDS_PER_BATCH)


def main(output_dir, epochs):
    keras.utils.set_random_seed(0)
    model = tiny_vqvae()
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    # Same batches in the same order every epoch: a resumed epoch sees what the lost one saw.
    data = tf.data.Dataset.from_tensor_slices(images(8 * BATCHES_PER_EPOCH)).batch(8)
    callbacks = default_callbacks(output_dir, model, images(4, seed=9), png=False)
    callbacks.append(_Pace(os.path.join(output_dir, "epochs.txt")))
    model.fit(data, epochs=epochs, callbacks=callbacks, verbose=0)
    np.savez(os.path.join(output_dir, "final.npz"), *model.get_weights())


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
