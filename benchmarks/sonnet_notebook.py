"""The VQ-VAE of Sonnet's example notebook, in Sonnet 2 modules: the same-data reference.

Sonnet's published curve (normalised MSE 0.105 / 0.061 / 0.056 at 1k / 5k / 10k steps) was
measured on the original CIFAR-10; the only copy here is a JPEG re-encoding. To tell how much of
a gap is the data and how much is tfvq, `benchmarks/quality.py --library=sonnet` trains this
model on the same batches and validates it the same way. The architecture follows the notebook
(examples/vqvae_example.ipynb): Sonnet's default initialisers, a ReLU after every encoder conv,
`snt.nets.VectorQuantizerEMA` (decay 0.99, its own zero-debiased averages), inputs scaled to
[-0.5, 0.5], loss = MSE / data variance + the quantizer's loss, `snt.optimizers.Adam`.
Written against the notebook's description rather than copied from it; used only by the
benchmarks, never by the package.
"""

import numpy as np
import sonnet as snt
import tensorflow as tf


class _ResidualStack(snt.Module):
    def __init__(self, hidden, residual, layers, name=None):
        super().__init__(name=name)
        self._blocks = [
            (snt.Conv2D(residual, 3, name=f"res3x3_{i}"), snt.Conv2D(hidden, 1, name=f"res1x1_{i}"))
            for i in range(layers)
        ]

    def __call__(self, x):
        for conv3, conv1 in self._blocks:
            x = x + conv1(tf.nn.relu(conv3(tf.nn.relu(x))))
        return tf.nn.relu(x)


class NotebookVQVAE(snt.Module):
    """Encoder, 1x1 conv to D, `snt.nets.VectorQuantizerEMA`, decoder."""

    def __init__(self, data_variance, num_embeddings=512, embedding_dim=64, hidden=128,
                 residual=32, layers=2, commitment_cost=0.25, decay=0.99, name=None):
        super().__init__(name=name)
        self.num_embeddings = num_embeddings
        self._variance = data_variance
        self._encoder = [snt.Conv2D(hidden // 2, 4, stride=2), snt.Conv2D(hidden, 4, stride=2),
                         snt.Conv2D(hidden, 3)]
        self._encoder_stack = _ResidualStack(hidden, residual, layers)
        self._to_vq = snt.Conv2D(embedding_dim, 1)
        self.quantizer = snt.nets.VectorQuantizerEMA(embedding_dim, num_embeddings,
                                                     commitment_cost, decay)
        self._decoder_in = snt.Conv2D(hidden, 3)
        self._decoder_stack = _ResidualStack(hidden, residual, layers)
        self._up = [snt.Conv2DTranspose(hidden // 2, kernel_shape=4, stride=2),
                    snt.Conv2DTranspose(3, kernel_shape=4, stride=2)]

    def latents(self, images):
        h = images - 0.5  # the notebook's [-0.5, 0.5]; `images` are in [0, 1] as for tfvq
        for conv in self._encoder:
            h = tf.nn.relu(conv(h))
        return self._to_vq(self._encoder_stack(h))

    def __call__(self, images, is_training):
        vq = self.quantizer(self.latents(images), is_training=is_training)
        h = self._decoder_stack(self._decoder_in(vq["quantize"]))
        recon = self._up[1](tf.nn.relu(self._up[0](h)))
        nmse = tf.reduce_mean(tf.square(recon - (images - 0.5))) / self._variance
        return dict(loss=nmse + vq["loss"], normalized_mse=nmse, perplexity=vq["perplexity"],
                    indices=vq["encoding_indices"])


class SonnetRun:
    """Trains `NotebookVQVAE` with Sonnet's Adam; the interface `quality.py` drives.

    Args:
        data_variance: variance of the training pixels in [0, 1].
        learning_rate: Adam's learning rate (the notebook: 3e-4), a float or a Keras schedule.
        jit_compile: XLA-compile the train step.
        **model_kwargs: `NotebookVQVAE` arguments.
    """

    def __init__(self, data_variance, learning_rate=3e-4, jit_compile=False, **model_kwargs):
        self.model = NotebookVQVAE(data_variance, **model_kwargs)
        self.num_embeddings = self.model.num_embeddings
        self._schedule = learning_rate if callable(learning_rate) else None
        self._lr = tf.Variable(float(learning_rate(0)) if self._schedule else learning_rate,
                               trainable=False)
        self._optimizer = snt.optimizers.Adam(learning_rate=self._lr)
        self._step = 0
        model = self.model

        @tf.function(jit_compile=jit_compile)
        def train_step(images):
            with tf.GradientTape() as tape:
                out = model(images, is_training=True)
            variables = model.trainable_variables
            self._optimizer.apply(tape.gradient(out["loss"], variables), variables)
            return out["normalized_mse"], out["perplexity"]

        @tf.function
        def evaluate(images):
            out = model(images, is_training=False)
            return out["normalized_mse"], out["perplexity"], out["indices"]

        self._train_step, self._evaluate = train_step, evaluate

    @property
    def num_params(self):
        return int(sum(np.prod(v.shape) for v in self.model.trainable_variables))

    def train(self, iterator, steps):
        """Runs `steps` steps; returns the mean training normalised MSE and perplexity."""
        values = []
        for _ in range(steps):
            if self._schedule is not None:
                self._lr.assign(float(self._schedule(self._step)))
            values.append(self._train_step(next(iterator)))
            self._step += 1
        nmse, perplexity = np.mean(np.asarray(values), axis=0)
        return dict(normalized_mse=float(nmse), perplexity=float(perplexity))

    def validate(self, val):
        """Mean over `val`'s batches of the normalised MSE and perplexity (as Keras `evaluate`)."""
        values = [self._evaluate(images)[:2] for images in val]
        nmse, perplexity = np.mean(np.asarray(values), axis=0)
        return dict(normalized_mse=float(nmse), perplexity=float(perplexity))

    def encode_to_indices(self, images):
        return self._evaluate(tf.convert_to_tensor(images))[2]
