"""Variational autoencoder with a Gaussian posterior (Kingma and Welling 2014)."""

import keras
from keras import ops

from tfvq import losses
from tfvq.models.base import ImageAutoencoder, conv_arguments
from tfvq.utils.checks import check_int


@keras.saving.register_keras_serializable(package="tfvq")
class VAE(ImageAutoencoder):
    """Conv VAE: Gaussian posterior q(z|x), N(0, I) prior, a chosen pixel likelihood.

    "Auto-Encoding Variational Bayes", Kingma and Welling 2014; `beta` weights the KL term
    (beta-VAE, Higgins et al. 2017). The loss is the negative ELBO per image,
    `E_q[-log p(x|z)] + beta * KL(q(z|x) || N(0, I))`, with one reparameterised sample, the
    reconstruction term summed over pixels. `fit` reports that term per image as
    `reconstruction_nll` and, like every tfvq model, per value (divided by H * W * C) as
    `reconstruction_loss`; `kl_loss` is per image. With `reconstruction_loss="logistic"` (a discretized
    logistic over 256 levels; data in [0, 1]) `bits_per_dim` is the ELBO's bound on
    -log2 p(x) per dimension: an upper bound on the true bits/dim (at beta = 1).

    Args:
        input_shape: (height, width, channels).
        latent_dim: size of z (2 to plot it directly).
        beta: weight of the KL term, >= 0.
        reconstruction_loss: "bce" (default), "mse" or "logistic".
        hidden_channels, residual_channels, num_residual_layers, downsample_stages, downsample:
            the conv stacks around the dense latent (see `tfvq.layers.ConvEncoder`).
        seed: seed of the reparameterisation noise.
        data_variance, data_range, encoder, decoder: see `ImageAutoencoder`; a custom encoder
            must output 2 * latent_dim values (mean, log-variance).

    `encode` gives the posterior's (mean, log_var), each (B, latent_dim).

    Example:
    >>> v = VAE(input_shape=(28, 28, 1), latent_dim=2, hidden_channels=8, residual_channels=4)
    >>> tuple(v.sample(3, seed=0).shape)
    (3, 28, 28, 1)
    """

    metric_names = ImageAutoencoder.metric_names + ("reconstruction_nll", "kl_loss")

    def __init__(self, input_shape=(28, 28, 1), latent_dim=2, beta=1.0, reconstruction_loss="bce",
                 hidden_channels=32, residual_channels=16, num_residual_layers=1,
                 downsample_stages=2, downsample="stride", seed=None, data_variance=None,
                 data_range=1.0, encoder=None, decoder=None, **kwargs):
        if reconstruction_loss == "logistic":
            self.metric_names = self.metric_names + ("bits_per_dim",)
        super().__init__(input_shape, reconstruction_loss, data_variance, data_range, encoder,
                         decoder, **kwargs)
        self.latent_dim = check_int(self, "latent_dim", latent_dim)
        if beta < 0:
            raise ValueError(f"VAE expects beta >= 0; got {beta}")
        self.beta = float(beta)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        conv = conv_arguments(self, hidden_channels, downsample_stages, downsample,
                              num_residual_layers, residual_channels)
        self.encoder = encoder or self._vector_encoder(conv, 2 * latent_dim)
        self.decoder = decoder or self._vector_decoder(conv)
        self._finish_init()

    def _encode(self, x, training):
        """Posterior parameters: (mean, log_var), each (B, latent_dim)."""
        mean, log_var = ops.split(self.encoder(x, training=training), 2, axis=-1)
        return mean, log_var

    def sample(self, n, seed=None):
        """`n` images decoded from prior samples z ~ N(0, I)."""
        check_int("VAE.sample", "n", n)
        seed = self.seed_generator if seed is None else seed
        return self.decode(keras.random.normal((n, self.latent_dim), seed=seed))

    def call(self, inputs, training=False):
        mean, log_var = self.encode(inputs, training=training)
        z = self._reparameterize(mean, log_var) if training else mean
        return self.decode(z, training=training)

    def _reparameterize(self, mean, log_var):
        noise = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * noise

    def _loss_terms(self, x, training):
        mean, log_var = self._encode(x, training)
        mean, log_var = ops.cast(mean, "float32"), ops.cast(log_var, "float32")
        output = self.decoder(self._reparameterize(mean, log_var), training=training)
        terms, nll = self._reconstruction_terms(x, output, reduce=ops.sum)
        # One unit for every model's reconstruction_loss (per value); the ELBO's per-image
        # terms keep names of their own.
        terms["reconstruction_nll"] = ops.mean(nll)
        terms["reconstruction_loss"] = terms["reconstruction_nll"] / losses.num_dims(
            self.image_shape)
        kl = losses.gaussian_kl(mean, log_var)
        loss = ops.mean(nll + self.beta * kl) + self._regularization()
        terms["kl_loss"] = ops.mean(kl)
        if "bits_per_dim" in self.metric_names:
            dims = losses.num_dims(self.image_shape)
            terms["bits_per_dim"] = ops.mean(losses.bits_per_dim(nll + kl, dims))
        return loss, terms

    # Keras saves no SeedGenerator state; without it a loaded VAE would draw other noise than
    # the original from the next step on, so resumed training would diverge.
    _SEED_KEY = "seed_generator_state"

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[self._SEED_KEY] = self.seed_generator.state

    def load_own_variables(self, store):
        keys = list(store.keys())
        if self._SEED_KEY in keys:
            self.seed_generator.state.assign(store[self._SEED_KEY])
            store = {key: store[key] for key in keys if key != self._SEED_KEY}
        super().load_own_variables(store)

    def get_config(self):
        return {
            **self._base_config(),
            "latent_dim": self.latent_dim,
            "beta": self.beta,
            "seed": self.seed,
        }
