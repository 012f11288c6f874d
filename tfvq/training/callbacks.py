"""Keras callbacks for watching autoencoders train: image grids, codebook health, defaults.

Example:
    >>> from tfvq.training import default_callbacks
    >>> images = np.random.default_rng(0).uniform(0, 1, (8, 16, 16, 1)).astype("float32")
    >>> model = tfvq.VQVAE((16, 16, 1), num_embeddings=16, embedding_dim=4, hidden_channels=8,
    ...                    residual_channels=4, num_residual_layers=1)
    >>> model.compile(optimizer="adam")
    >>> callbacks = default_callbacks("runs/demo", model, sample_images=images)
    >>> history = model.fit(images, epochs=1, batch_size=4, callbacks=callbacks, verbose=0)
    >>> sorted(os.listdir("runs/demo"))          # backup/ is removed when training completes
    ['images', 'logs', 'model.keras']
    >>> round(history.history["codebook_usage"][0], 2) > 0        # from the CodebookMonitor
    True
"""

import os

import keras
import numpy as np
import tensorflow as tf

from tfvq.layers import code_statistics
from tfvq.utils.checks import check_int

__all__ = ["CodebookMonitor", "ReconstructionImages", "backup_dir_for", "default_callbacks"]


def _fixed_images(images, name):
    array = np.asarray(keras.ops.convert_to_numpy(images), dtype=np.float32)
    if array.ndim != 4 or array.shape[0] < 1:
        raise ValueError(f"{name} must be a batch shaped (N, H, W, C) with N >= 1; got shape "
                         f"{array.shape}")
    return array


def _reconstruct(model, images):
    """The model's reconstruction of `images` in inference mode, as a NumPy array."""
    if hasattr(model, "reconstruct"):
        output = model.reconstruct(images)
    else:
        output = model(images, training=False)
    if isinstance(output, dict):
        output = output["reconstruction"]
    elif isinstance(output, (list, tuple)):
        output = output[0]
    return np.asarray(keras.ops.convert_to_numpy(output), dtype=np.float32)


def _tile(originals, reconstructions, value_range):
    """One (1, 2H, N*W, C) image: originals on the top row, reconstructions below, in [0, 1]."""
    low, high = value_range
    pair = np.stack([originals, reconstructions])  # (2, N, H, W, C)
    pair = np.clip((pair - low) / (high - low), 0.0, 1.0)
    rows, n, h, w, c = pair.shape
    return pair.transpose(0, 2, 1, 3, 4).reshape(1, rows * h, n * w, c)


class ReconstructionImages(keras.callbacks.Callback):
    """Writes originals above their reconstructions to TensorBoard every `every` epochs.

    Args:
        images: a fixed batch (N, H, W, C) of images, the same every epoch so that the pictures
            show progress rather than a change of data.
        log_dir: directory of the TensorBoard event file (a run of its own in TensorBoard).
        every: write every this many epochs (1: each epoch).
        max_images: show at most this many of `images`.
        value_range: (low, high) of the pixel values, mapped to [0, 1] for display.
        png_dir: if given, also save each grid there as `reconstructions_epoch{E:03d}.png` with
            `tfvq.plots.reconstruction_grid`.
        name: tag of the image summary.
    """

    def __init__(self, images, log_dir, every=1, max_images=8, value_range=(0.0, 1.0),
                 png_dir=None, name="reconstructions"):
        super().__init__()
        check_int(self, "every", every)
        check_int(self, "max_images", max_images)
        self.images = _fixed_images(images, "images")[:max_images]
        self.log_dir = log_dir
        self.every = every
        self.max_images = max_images
        self.value_range = tuple(value_range)
        self.png_dir = png_dir
        self.name = name
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        reconstructions = _reconstruct(self.model, self.images)
        if reconstructions.shape != self.images.shape:
            raise ValueError(
                "ReconstructionImages expects reconstructions shaped like the images "
                f"{self.images.shape}; got {reconstructions.shape}"
            )
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        grid = _tile(self.images, reconstructions, self.value_range)
        with self._writer.as_default():
            tf.summary.image(self.name, grid, step=epoch)
        self._writer.flush()
        if self.png_dir is not None:
            # Imported here so that `import tfvq` (which loads the callbacks) leaves matplotlib
            # unloaded until a PNG is actually asked for.
            from tfvq import plots

            os.makedirs(self.png_dir, exist_ok=True)
            plots.reconstruction_grid(
                self.images, reconstructions, n=len(self.images), value_range=self.value_range,
                path=os.path.join(self.png_dir, f"{self.name}_epoch{epoch + 1:03d}.png"),
            )

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class CodebookMonitor(keras.callbacks.Callback):
    """Measures the health of a VQ model's codebook on fixed images at the end of each epoch.

    Adds to the epoch's `logs` (so History, TensorBoard and checkpoint monitors placed after it
    see them) and, given `log_dir`, writes as TensorBoard scalars:
    `codebook_perplexity` (exp of the entropy of code use: K when uniform, 1 when collapsed),
    `codebook_usage` (fraction of the K codes used at least once) and `dead_codes` (how many
    were never used), all on `images` in inference mode, from the quantizer's code counts (any
    `tfvq.layers.Quantizer`; for Q levels per position, perplexity is the mean over levels and
    dead codes are counted over all Q * K).

    Args:
        images: a fixed batch (N, H, W, C), large enough that a healthy codebook uses most codes.
        log_dir: optional directory of a TensorBoard event file for the three scalars.
    """

    KEYS = ("codebook_perplexity", "codebook_usage", "dead_codes")

    def __init__(self, images, log_dir=None):
        super().__init__()
        self.images = _fixed_images(images, "images")
        self.log_dir = log_dir
        self._writer = None

    def measure(self):
        """The three statistics of the current codebook on `images`, as Python numbers."""
        quantizer = getattr(self.model, "quantizer", None)
        if quantizer is None:
            raise ValueError(
                f"CodebookMonitor needs a model with a `quantizer`; got {type(self.model).__name__}"
            )
        info = quantizer(self.model.encode(self.images), training=False, return_info=True)
        counts = keras.ops.reshape(info["counts"], (quantizer.num_codebooks,
                                                    quantizer.codebook_size))
        perplexity, usage = code_statistics(counts)
        return {
            "codebook_perplexity": float(keras.ops.convert_to_numpy(perplexity)),
            "codebook_usage": float(keras.ops.convert_to_numpy(usage)),
            "dead_codes": int(np.sum(keras.ops.convert_to_numpy(counts) == 0)),
        }

    def on_epoch_end(self, epoch, logs=None):
        values = self.measure()
        if logs is not None:
            logs.update(values)
        if self.log_dir is None:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            for key, value in values.items():
                tf.summary.scalar(key, value, step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def backup_dir_for(output_dir, worker_index=0):
    """The `BackupAndRestore` folder of one worker: each needs its own, the chief's is `backup`."""
    name = "backup" if worker_index == 0 else f"backup_worker{worker_index}"
    return os.path.join(output_dir, name)


def default_callbacks(output_dir, model, sample_images, worker_index=0, every=1,
                      checkpoint_name="model.keras", backup_save_freq="epoch", png=True):
    """The callbacks a user expects from an autoencoder training run writing to `output_dir`.

    On the chief (`worker_index=0`): `CodebookMonitor` (when the model has a `quantizer`; first,
    so its keys reach the others' logs), `TensorBoard` scalars in `output_dir/logs`,
    `ReconstructionImages` in `output_dir/logs/images` (and PNGs in `output_dir/images`), a
    `ModelCheckpoint` to `output_dir/<checkpoint_name>` each epoch, `BackupAndRestore` in
    `output_dir/backup`, and `TerminateOnNaN`. Other workers of a multi-worker run get only
    `CodebookMonitor`, `BackupAndRestore` in their own `output_dir/backup_worker{i}` (workers
    must not share a backup) and `TerminateOnNaN`, so that only the chief writes logs and models.

    Args:
        output_dir: directory of the run.
        model: the model to be trained (used to see whether it has a quantizer).
        sample_images: a fixed batch (N, H, W, C) for image grids and codebook statistics.
        worker_index: this worker's index in a multi-worker cluster (0: the chief).
        every: write image grids every this many epochs.
        checkpoint_name: file name of the saved model; must end in ".keras".
        backup_save_freq: `BackupAndRestore` save frequency, "epoch" or a number of batches.
        png: also save the image grids as PNGs.

    Returns:
        A list of `keras.callbacks.Callback`.
    """
    if not str(checkpoint_name).endswith(".keras"):
        raise ValueError(f"checkpoint_name must end in '.keras'; got {checkpoint_name!r}")
    check_int("default_callbacks", "worker_index", worker_index, minimum=0)
    chief = worker_index == 0
    log_dir = os.path.join(output_dir, "logs")
    callbacks = []
    if getattr(model, "quantizer", None) is not None:
        callbacks.append(CodebookMonitor(sample_images))
    if chief:
        callbacks += [
            keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False),
            ReconstructionImages(
                sample_images, os.path.join(log_dir, "images"), every=every,
                png_dir=os.path.join(output_dir, "images") if png else None,
            ),
            keras.callbacks.ModelCheckpoint(os.path.join(output_dir, checkpoint_name)),
        ]
    callbacks += [
        keras.callbacks.BackupAndRestore(
            backup_dir_for(output_dir, worker_index), save_freq=backup_save_freq
        ),
        keras.callbacks.TerminateOnNaN(),
    ]
    return callbacks
