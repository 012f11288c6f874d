"""An autoregressive PixelCNN prior over VQ-VAE code maps, and the dataset of codes it trains on.

The sampler is compiled with `tf.function` and draws with TensorFlow's stateless random ops,
so this module needs the TensorFlow backend (as do tf.data and tfvq's training code).
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfvq.layers.pixelcnn import GatedPixelCNNBlock
from tfvq.models.steps import SelfSupervisedModel
from tfvq.utils.checks import check_int, check_rate, is_int
from tfvq.utils.elements import split_element


def _is_concrete(tensor):
    """Whether `tensor` holds values now (eager), as opposed to being traced or symbolic."""
    return tf.executing_eagerly() and not isinstance(tensor, keras.KerasTensor)


def _codes_and_labels(structure):
    """Splits codes, (codes,), (codes, labels) or {"codes": ..., "labels": ...}."""
    if isinstance(structure, (tuple, list)) and not 1 <= len(structure) <= 2:
        raise ValueError(
            f"PixelCNNPrior expects codes or (codes, labels); got {len(structure)} items"
        )
    return split_element(structure, "PixelCNNPrior", keys=("codes",))


@keras.saving.register_keras_serializable(package="tfvq")
class PixelCNNPrior(SelfSupervisedModel):
    """Gated PixelCNN prior p(z) = prod_ij p(z_ij | z_<ij) over (B, h, w) maps of code indices.

    The prior of "Neural Discrete Representation Learning" (van den Oord et al., 2017, section
    3.2): after a VQ-VAE is trained, an autoregressive model is fitted to the code maps of the
    training set, then sampled code by code in raster order and decoded with
    `VQVAE.decode_indices`. The network is a stack of `GatedPixelCNNBlock`s ("Conditional Image
    Generation with PixelCNN Decoders", van den Oord et al., 2016) over a learned embedding of
    the codes: the first block has mask "A", so the logits at (i, j) depend only on the codes
    before (i, j), and the vertical/horizontal stacks leave no blind spot. With `num_classes`,
    a class embedding is added inside every gate (class-conditional prior p(z | y)).

    The model owns its training step: `model.compile(optimizer="adam"); model.fit(codes_ds)`
    works on a dataset of code maps (or of (codes, labels) pairs, see `codes_dataset`) and
    reports `loss`, the mean negative log-likelihood per code in nats (divide by log(2) for
    bits), and `accuracy`, how often the most likely code is the right one.

    Sampling costs h * w evaluations of the horizontal stack on one row and h evaluations of
    the vertical stack on the whole map (the vertical stack at row i depends only on rows above
    i, so it is computed once per row), in one compiled `tf.function`.

    Args:
        num_embeddings: codebook size K of the VQ-VAE; codes lie in [0, K).
        latent_shape: (h, w) of the code maps.
        hidden_channels: width of the code embedding and of every block.
        num_layers: number of gated blocks. The receptive field grows by kernel_size // 2 rows
            and columns per block; about max(h, w) blocks see the whole causal past.
        kernel_size: odd kernel size of the blocks (see `GatedPixelCNNBlock`).
        num_classes: number of classes for a class-conditional prior, or None.
        dropout: rate in [0, 1) of each block's dropout (see `GatedPixelCNNBlock`), active in
            `fit` only: `evaluate`, `log_prob` and `sample` see the whole network.
        **kwargs: `keras.Model` arguments (name, dtype, ...).

    Call arguments:
        inputs: (B, h, w) integer codes, or a tuple (codes, labels) with (B,) integer labels
            when `num_classes` is set.
        training: whether the blocks' dropout is active (only if `dropout` > 0).

    Returns:
        (B, h, w, K) float32 logits of p(z_ij | z_<ij).

    Example:
    >>> import numpy as np
    >>> prior = PixelCNNPrior(num_embeddings=16, latent_shape=(4, 4), hidden_channels=8,
    ...                       num_layers=2)
    >>> prior.compile(optimizer="adam")
    >>> codes = np.random.randint(0, 16, size=(8, 4, 4)).astype("int32")
    >>> _ = prior.fit(codes, epochs=1, verbose=0)
    >>> tuple(prior.sample(3, seed=0).shape)
    (3, 4, 4)
    >>> tuple(prior.log_prob(codes).shape)
    (8,)
    """

    def __init__(
        self,
        num_embeddings,
        latent_shape,
        hidden_channels=64,
        num_layers=8,
        kernel_size=3,
        num_classes=None,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_int(self, "num_embeddings", num_embeddings, minimum=2)
        latent_shape = tuple(latent_shape) if isinstance(latent_shape, (tuple, list)) else None
        if latent_shape is None or len(latent_shape) != 2 or not all(
            is_int(d, minimum=1) for d in latent_shape
        ):
            raise ValueError(
                "PixelCNNPrior expects latent_shape=(h, w), two positive integers; got "
                f"{latent_shape!r}"
            )
        check_int(self, "hidden_channels", hidden_channels)
        check_int(self, "num_layers", num_layers)
        if num_classes is not None:
            check_int(self, "num_classes", num_classes)

        # === Config ===
        self.num_embeddings = int(num_embeddings)
        self.latent_shape = tuple(int(d) for d in latent_shape)
        self.hidden_channels = int(hidden_channels)
        self.num_layers = int(num_layers)
        self.kernel_size = int(kernel_size)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.dropout = check_rate(self, "dropout", dropout)

        # === Layers ===
        self.code_embedding = keras.layers.Embedding(
            self.num_embeddings, self.hidden_channels, name="code_embedding"
        )
        self.label_embedding = None
        if self.num_classes is not None:
            self.label_embedding = keras.layers.Embedding(
                self.num_classes, self.hidden_channels, name="label_embedding"
            )
        self.gated_blocks = [
            GatedPixelCNNBlock(
                self.hidden_channels,
                self.kernel_size,
                mask_type="A" if index == 0 else "B",
                dropout=self.dropout,
                name=f"gated_block_{index}",
            )
            for index in range(self.num_layers)
        ]
        self.head_hidden = keras.layers.Conv2D(
            self.hidden_channels, 1, activation="relu", name="head_hidden"
        )
        self.head_logits = keras.layers.Conv2D(self.num_embeddings, 1, name="head_logits")

        # === Metrics ===
        # Both weighted by the examples of each batch, so that a whole pass is pooled exactly.
        self._trackers = {"loss": keras.metrics.Mean(name="loss"),
                          "accuracy": keras.metrics.Mean(name="accuracy")}

        # The shapes are all known from the config, so the weights exist from construction on:
        # summary(), count_params() and weight loading need no sample call first.
        self.build()
        self._sample_fn = None

    def build(self, input_shape=None):
        height, width = self.latent_shape
        map_shape = (None, height, width, self.hidden_channels)
        condition_shape = None
        self.code_embedding.build((None, height, width))
        if self.label_embedding is not None:
            self.label_embedding.build((None,))
            condition_shape = (None, self.hidden_channels)
        for block in self.gated_blocks:
            block.build(map_shape, map_shape, condition_shape)
        self.head_hidden.build(map_shape)
        self.head_logits.build(map_shape)
        self.built = True

    # ------------------------------------------------------------------------------------------
    # Inputs

    def _check_codes(self, codes):
        codes = ops.convert_to_tensor(codes)
        shape = tuple(codes.shape)
        if len(shape) != 3 or any(
            got is not None and got != want for got, want in zip(shape[1:], self.latent_shape)
        ):
            raise ValueError(
                f"PixelCNNPrior expects codes shaped (B, {', '.join(map(str, self.latent_shape))})"
                f" = (B, *latent_shape); got shape {shape}"
            )
        if _is_concrete(codes):
            values = ops.convert_to_numpy(codes)
            if np.any(values != np.round(values)):
                raise ValueError(
                    f"PixelCNNPrior expects integer codes; got non-integer values of dtype "
                    f"{values.dtype}"
                )
            if values.size and (values.min() < 0 or values.max() >= self.num_embeddings):
                raise ValueError(
                    f"PixelCNNPrior expects codes in [0, num_embeddings) = "
                    f"[0, {self.num_embeddings}); got values in [{values.min()}, {values.max()}]"
                )
        return ops.cast(codes, "int32")

    def _check_labels(self, labels, batch_size):
        if self.num_classes is None:
            if labels is not None:
                raise ValueError(
                    "PixelCNNPrior was built with num_classes=None (unconditional) but was "
                    "given labels"
                )
            return None
        if labels is None:
            raise ValueError(
                f"PixelCNNPrior was built with num_classes={self.num_classes} (class-"
                "conditional) and needs labels: pass (codes, labels)"
            )
        labels = ops.convert_to_tensor(labels)
        if len(labels.shape) == 2 and labels.shape[-1] == 1:
            labels = ops.squeeze(labels, axis=-1)
        if len(labels.shape) != 1 or (
            batch_size is not None and labels.shape[0] is not None and labels.shape[0] != batch_size
        ):
            raise ValueError(
                f"PixelCNNPrior expects labels shaped (B,) = ({batch_size},); got shape "
                f"{tuple(labels.shape)}"
            )
        if _is_concrete(labels):
            values = ops.convert_to_numpy(labels)
            if values.size and (values.min() < 0 or values.max() >= self.num_classes):
                raise ValueError(
                    f"PixelCNNPrior expects labels in [0, num_classes) = [0, {self.num_classes})"
                    f"; got values in [{values.min()}, {values.max()}]"
                )
        return ops.cast(labels, "int32")

    def _split_inputs(self, inputs):
        codes, labels = _codes_and_labels(inputs)
        if codes is None:
            raise ValueError("PixelCNNPrior expects codes; got None")
        codes = self._check_codes(codes)
        return codes, self._check_labels(labels, codes.shape[0])

    # ------------------------------------------------------------------------------------------
    # Forward pass

    def _condition(self, labels):
        return None if labels is None else self.label_embedding(labels)

    def _head(self, horizontal):
        logits = self.head_logits(self.head_hidden(ops.relu(horizontal)))
        # Log-likelihoods and sampling stay in float32 under a mixed-precision policy.
        return ops.cast(logits, "float32")

    def call(self, inputs, training=None):
        codes, labels = self._split_inputs(inputs)
        condition = self._condition(labels)
        vertical = horizontal = self.code_embedding(codes)
        for block in self.gated_blocks:
            vertical, horizontal = block(vertical, horizontal, condition)
        return self._head(horizontal)

    def compute_output_shape(self, input_shape):
        codes_shape = input_shape[0] if isinstance(input_shape[0], (tuple, list)) else input_shape
        return tuple(codes_shape[:1]) + self.latent_shape + (self.num_embeddings,)

    # ------------------------------------------------------------------------------------------
    # Training

    def _inputs_and_targets(self, data):
        """Turns a dataset element (codes or (codes, labels)) into Keras' (x, y)."""
        codes, labels = _codes_and_labels(data)
        if self.num_classes is None:
            # An unconditional prior may train on a labelled code dataset: labels are ignored.
            labels = None
        elif labels is None:
            raise ValueError(
                f"PixelCNNPrior with num_classes={self.num_classes} expects (codes, labels) "
                "dataset elements; got codes only"
            )
        inputs = codes if labels is None else (codes, labels)
        # The model predicts its own input: the targets are the codes themselves.
        return inputs, codes

    def _negative_log_likelihood(self, codes, logits):
        """Mean cross-entropy per code, in nats, over this replica's batch."""
        return ops.mean(
            keras.losses.sparse_categorical_crossentropy(codes, logits, from_logits=True)
        )

    def _step_inputs(self, data):
        return self._inputs_and_targets(data)

    def _loss_terms(self, data, training):
        inputs, codes = data
        logits = self(inputs, training=training)
        loss = self._negative_log_likelihood(codes, logits)
        if training and self.losses:
            loss = loss + ops.sum(self.losses)
        batch = ops.shape(codes)[0]
        predicted = ops.cast(ops.argmax(logits, axis=-1), "int32")
        correct = ops.cast(predicted == ops.cast(codes, "int32"), "float32")
        return loss, {"loss": (loss, batch), "accuracy": (ops.mean(correct), ops.size(codes))}

    def predict_step(self, data):
        inputs, _ = self._inputs_and_targets(data)
        return super().predict_step((inputs,))

    # ------------------------------------------------------------------------------------------
    # Likelihood and sampling

    def log_prob(self, indices, labels=None):
        """Log-likelihood log p(indices [| labels]) of each code map, in nats.

        Args:
            indices: (B, h, w) integer codes in [0, num_embeddings).
            labels: (B,) integer labels, for a class-conditional prior only.

        Returns:
            (B,) float32 sums over the h * w positions of log p(z_ij | z_<ij).
        """
        inputs = indices if labels is None else (indices, labels)
        codes, labels = self._split_inputs(inputs)
        logits = self(codes if labels is None else (codes, labels), training=False)
        log_probs = ops.log_softmax(logits, axis=-1)
        picked = ops.take_along_axis(log_probs, ops.expand_dims(codes, -1), axis=-1)
        return ops.sum(picked, axis=(1, 2, 3))

    def sample(self, n, seed=None, temperature=1.0, labels=None):
        """Draws code maps from the prior, one position at a time in raster order.

        Args:
            n: number of code maps.
            seed: int for reproducible draws; None draws a seed from NumPy's global generator
                (so `keras.utils.set_random_seed` makes it reproducible too).
            temperature: > 0; logits are divided by it (< 1 sharper, > 1 more diverse).
            labels: for a class-conditional prior, one int for all maps or (n,) ints.

        Returns:
            (n, h, w) int32 codes in [0, num_embeddings), ready for `VQVAE.decode_indices`.
        """
        check_int("PixelCNNPrior.sample", "n", n)
        temperature = float(temperature)
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ValueError(
                f"PixelCNNPrior.sample expects a finite temperature > 0; got {temperature}"
            )
        if labels is not None and self.num_classes is not None:
            labels = np.asarray(ops.convert_to_numpy(labels))
            if labels.ndim == 0:
                labels = np.full((n,), labels)
        labels = self._check_labels(labels, int(n))
        if seed is None:
            seed = np.random.randint(0, 2**31 - 1)
        else:
            check_int("PixelCNNPrior.sample", "seed", seed, minimum=None)

        if self._sample_fn is None:
            self._sample_fn = tf.function(self._sample_codes, reduce_retracing=True)
        codes = tf.zeros((int(n),) + self.latent_shape, dtype=tf.int32)
        return self._sample_fn(
            codes, labels, tf.constant(int(seed) % (2**31 - 1), tf.int32),
            tf.constant(temperature, tf.float32),
        )

    def _sample_codes(self, codes, labels, seed, temperature):
        height, width = self.latent_shape
        condition = self._condition(labels)

        def fill_row(row, codes):
            # The vertical stack at `row` sees only rows above it, all of which are final now,
            # so its contribution to this row is computed once and reused for every column.
            vertical = self.code_embedding(codes)
            contributions = []
            for block in self.gated_blocks:
                vertical, contribution = block.vertical_step(vertical, condition)
                contributions.append(contribution[:, row : row + 1])

            def fill_position(column, codes):
                horizontal = self.code_embedding(codes[:, row : row + 1])
                for block, contribution in zip(self.gated_blocks, contributions):
                    horizontal = block.horizontal_step(horizontal, contribution, condition)
                logits = self._head(horizontal[:, :, column : column + 1])[:, 0, 0]
                position = row * width + column
                draw = tf.random.stateless_categorical(
                    logits / temperature, 1, seed=tf.stack([seed, position]), dtype=tf.int32
                )
                # The position still holds 0, so adding the draw there writes it.
                where = ops.reshape(ops.one_hot(position, height * width, dtype="int32"),
                                    (1, height, width))
                return codes + where * draw[:, :, None]

            return ops.fori_loop(0, width, fill_position, codes)

        return ops.fori_loop(0, height, fill_row, codes)

    # ------------------------------------------------------------------------------------------
    # Saving

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_embeddings": self.num_embeddings,
                "latent_shape": self.latent_shape,
                "hidden_channels": self.hidden_channels,
                "num_layers": self.num_layers,
                "kernel_size": self.kernel_size,
                "num_classes": self.num_classes,
                "dropout": self.dropout,
            }
        )
        return config
