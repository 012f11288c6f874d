"""Bits per dimension of a test set under a VAE or a VQ-VAE with a PixelCNN prior.

Both are upper bounds on the true negative log-likelihood -log2 p(x) per dimension (a lower
number is a better model). Keras metrics average per-batch values during `evaluate`; these
bounds need more than one forward pass per image (several posterior samples, a prior over codes,
a scale fitted over the whole set), hence functions over a dataset rather than `keras.metrics`.
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from tensorflow_probability import distributions as tfd

from tfvq import losses
from tfvq.models.pixelcnn_prior import PixelCNNPrior
from tfvq.models.vae import VAE
from tfvq.models.vqvae import VQVAE
from tfvq.utils.checks import check_int
from tfvq.utils.elements import split_element

_FAMILIES = {"logistic": tfd.Logistic, "mse": tfd.Normal}


def bits_per_dim(model, dataset, prior=None, num_samples=1, max_batches=None, scale=None,
                 seed=None, return_terms=False):
    """Bits/dim of `dataset` under a VAE (ELBO or importance-weighted bound) or VQ-VAE + prior.

    All images are treated as 8-bit (256 levels per value, scaled to [0, 1]), and every
    likelihood is discretized over those levels, so the numbers compare with the VQ-VAE paper's
    (VAE 4.51, VQ-VAE 4.67 bits/dim on CIFAR-10) and are upper bounds on -log2 p(x) / dims:

    - VAE, `num_samples=1`: the negative ELBO, E_q[-log p(x|z)] + KL(q(z|x) || N(0, I)), with the
      KL in closed form and one sample for the first term (an unbiased estimate of the bound).
      The KL is counted in full whatever `beta` the model trained with.
    - VAE, `num_samples=k > 1`: the importance-weighted bound (Burda et al. 2016),
      -log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x): tighter than the ELBO, approaching
      the true NLL as k grows.
    - VQ-VAE: the paper's bound -log p(x|z_q) - log p(z_q), z_q the quantized code map of x and
      p(z_q) the PixelCNN `prior`'s likelihood of it (the one-hot posterior has KL = -log p(z_q)).
      `prior="uniform"` costs every position `quantizer.bits_per_position` =
      `num_codebooks * log2(codebook_size)` bits, for any quantizer. With several levels per
      position (residual VQ) a PixelCNN prior models the first level, and the later levels
      are counted as uniform: still an upper bound.

    The decoder's likelihood is the model's own for `reconstruction_loss="logistic"`. For
    `"mse"` the decoder output is the mean of a discretized Gaussian whose standard deviation
    `scale` (in [0, 1] units) is given, or else fitted as the root mean squared error over the
    evaluated images (a first pass; one parameter, so a negligible optimism). Any scale gives a
    valid bound. `"bce"` (a Bernoulli over [0, 1]) is no distribution over 256 levels: refused.

    Args:
        model: a trained `tfvq.VAE` or `tfvq.VQVAE`.
        dataset: a finite batched `tf.data.Dataset` of images, or of (images, labels) (the labels
            go to a class-conditional prior).
        prior: a `tfvq.PixelCNNPrior` over the VQ-VAE's codes, or "uniform" (one of the two is
            required for a VQ-VAE).
        num_samples: posterior samples per image for the VAE (1: ELBO; k > 1: IWAE bound).
        max_batches: evaluate only the first `max_batches` batches.
        scale: standard deviation of the discretized Gaussian for "mse" models; None fits it.
        seed: int seed of the VAE's posterior samples.
        return_terms: also return the parts of the bound (see Returns).

    Returns:
        The bound in bits per dimension (float). With `return_terms`, a dict with
        `bits_per_dim`, `reconstruction_bits_per_dim`, `kl_bits_per_dim` (VAE ELBO) or
        `prior_bits_per_dim` (VQ-VAE), `bound` ("elbo", "iwae" or "vqvae_prior"),
        `num_samples`, `num_images`, `scale` (None for "logistic").

    Example:
    >>> import numpy as np, tensorflow as tf, tfvq
    >>> vae = tfvq.VAE((8, 8, 1), latent_dim=2, reconstruction_loss="logistic",
    ...                hidden_channels=4, residual_channels=2, downsample_stages=1)
    >>> images = tf.data.Dataset.from_tensor_slices(np.zeros((4, 8, 8, 1), "float32")).batch(2)
    >>> bpd = tfvq.metrics.bits_per_dim(vae, images, num_samples=4, seed=0)
    """
    check_int("bits_per_dim", "num_samples", num_samples)
    if max_batches is not None:
        check_int("bits_per_dim", "max_batches", max_batches)
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(f"bits_per_dim expects a tf.data.Dataset; got {type(dataset).__name__}")
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY and max_batches is None:
        raise ValueError("bits_per_dim expects a finite dataset, or max_batches with a repeated one")
    if isinstance(model, VQVAE):
        if not (isinstance(prior, PixelCNNPrior) or (isinstance(prior, str) and prior == "uniform")):
            raise ValueError(
                "bits_per_dim of a VQVAE needs prior=a PixelCNNPrior over its codes, or "
                "'uniform' (the bound is -log p(x|z) - log p(z)); got "
                f"prior={prior!r}"
            )
        size = model.quantizer.codebook_size
        if isinstance(prior, PixelCNNPrior) and prior.num_embeddings != size:
            raise ValueError(
                f"bits_per_dim expects a prior over the quantizer's codebook_size={size} codes; "
                f"got a PixelCNNPrior with num_embeddings={prior.num_embeddings}"
            )
        if num_samples != 1:
            raise ValueError(
                f"bits_per_dim: a VQVAE's posterior is deterministic, num_samples must be 1; got "
                f"{num_samples}"
            )
    elif isinstance(model, VAE):
        if prior is not None:
            raise ValueError("bits_per_dim: a VAE's prior is its own N(0, I); pass prior=None")
    else:
        raise ValueError(
            f"bits_per_dim expects a tfvq.VAE or tfvq.VQVAE (an AE defines no p(x)); got "
            f"{type(model).__name__}"
        )
    name = model.likelihood.name
    if name not in _FAMILIES:
        raise ValueError(
            f"bits_per_dim needs a likelihood over 256 levels: a model trained with "
            f"reconstruction_loss 'logistic' or 'mse'; got {name!r}"
        )
    if scale is not None and (name != "mse" or not scale > 0):
        raise ValueError(f"bits_per_dim: scale (> 0) applies to 'mse' models only; got {scale!r} "
                         f"for {name!r}")

    batches = dataset if max_batches is None else dataset.take(max_batches)
    if name == "mse" and scale is None:
        scale = _fitted_scale(model, batches, seed)
    evaluator = _Evaluator(model, prior, num_samples, scale, seed)
    sums, count = {}, 0
    for element in batches:
        images, labels = split_element(element, "bits_per_dim")
        for key, values in evaluator(images, labels).items():
            sums[key] = sums.get(key, 0.0) + float(np.sum(ops.convert_to_numpy(values)))
        count += int(images.shape[0])
    if count == 0:
        raise ValueError("bits_per_dim got an empty dataset")

    to_bits = 1.0 / (count * losses.num_dims(model.image_shape) * math.log(2.0))
    terms = {f"{key}_bits_per_dim": value * to_bits for key, value in sums.items()}
    if isinstance(model, VQVAE):
        bound = "vqvae_prior"
    else:
        bound = "elbo" if num_samples == 1 else "iwae"
    terms.update(bound=bound, num_samples=int(num_samples), num_images=count,
                 scale=None if scale is None else float(scale))
    terms["bits_per_dim"] = terms.pop("total_bits_per_dim")
    return terms if return_terms else terms["bits_per_dim"]


def _images(model, images):
    return ops.cast(model._images(images), "float32")


def _fitted_scale(model, batches, seed):
    """Root mean squared error of the model's reconstructions over `batches`, in [0, 1] units."""
    squared, count = 0.0, 0
    generator = keras.random.SeedGenerator(seed)
    for element in batches:
        images, _ = split_element(element, "bits_per_dim")
        x = _images(model, images)
        if isinstance(model, VAE):
            mean, log_var = model.encode(x)
            noise = keras.random.normal(ops.shape(mean), seed=generator)
            output = model.decoder(mean + ops.exp(0.5 * log_var) * noise)
        else:
            output = model.decoder(model.quantizer(model.encoder(x)))
        location = model.likelihood.location(ops.cast(output, "float32"))
        squared += float(ops.sum(ops.square(x - location)))
        count += int(np.prod(x.shape))
    if count == 0:
        raise ValueError("bits_per_dim got an empty dataset")
    # Floor at a tenth of a level so that a perfect reconstruction keeps a finite density.
    return max(math.sqrt(squared / count), 0.1 / 255.0)


class _Evaluator:
    """Per-batch terms (nats per image) of the chosen bound, each sample one compiled call."""

    def __init__(self, model, prior, num_samples, scale, seed):
        self.model, self.prior = model, prior
        self.num_samples, self.scale = int(num_samples), scale
        self.generator = keras.random.SeedGenerator(seed)
        self._vae_sample = tf.function(self._vae_sample_eager)

    def __call__(self, images, labels):
        x = _images(self.model, images)
        if isinstance(self.model, VQVAE):
            return self._vqvae_terms(x, labels)
        if self.num_samples == 1:
            _, reconstruction, kl = self._vae_sample(x)
            return {"reconstruction": reconstruction, "kl": kl, "total": reconstruction + kl}
        # One compiled call per sample keeps the graph small for any k; the log-weights of all
        # k samples are combined at the end (k * B floats).
        samples = [self._vae_sample(x) for _ in range(self.num_samples)]
        log_weights = np.stack([ops.convert_to_numpy(s[0]) for s in samples]).astype("float64")
        peak = log_weights.max(axis=0)
        total = -(peak + np.log(np.mean(np.exp(log_weights - peak), axis=0)))
        # The IWAE bound does not split into reconstruction + KL; the mean sample's
        # reconstruction term is reported next to it for reference.
        reconstruction = np.mean([ops.convert_to_numpy(s[1]) for s in samples], axis=0)
        return {"reconstruction": reconstruction, "total": total}

    def _nll(self, x, output):
        output = ops.cast(output, "float32")
        if self.scale is None:
            return self.model.likelihood.nll(x, output)
        return losses.discretized_nll(tfd.Normal, x, self.model.likelihood.location(output),
                                      ops.full_like(output, self.scale))

    def _vqvae_terms(self, x, labels):
        model = self.model
        quantizer = model.quantizer
        codes = quantizer.encode(model.encoder(x))
        reconstruction = self._nll(x, model.decoder(quantizer.decode(codes)))
        positions = math.prod(codes.shape[1:3])  # h * w, read off the codes already computed
        if isinstance(self.prior, str):  # "uniform"
            bits = positions * quantizer.bits_per_position
            prior_nll = ops.full((ops.shape(x)[0],), bits * math.log(2.0))
        else:
            condition = labels if self.prior.num_classes is not None else None
            first = codes[..., 0] if quantizer.num_codebooks > 1 else codes
            prior_nll = -self.prior.log_prob(first, labels=condition)
            # Later levels, which the prior does not model, at their uniform cost.
            prior_nll += (quantizer.num_codebooks - 1) * positions * math.log(
                quantizer.codebook_size)
        return {"reconstruction": reconstruction, "prior": prior_nll,
                "total": reconstruction + prior_nll}

    def _vae_sample_eager(self, x):
        """One z ~ q(z|x) per image: log p(x, z) - log q(z|x), -log p(x|z) and KL, each (B,)."""
        mean, log_var = self.model.encode(x)
        mean, log_var = ops.cast(mean, "float32"), ops.cast(log_var, "float32")
        std = ops.exp(0.5 * log_var)
        z = mean + std * keras.random.normal(ops.shape(mean), seed=self.generator)
        reconstruction = self._nll(x, self.model.decoder(z))
        posterior = tfd.Independent(tfd.Normal(mean, std), reinterpreted_batch_ndims=1)
        prior = tfd.Independent(tfd.Normal(ops.zeros_like(mean), ops.ones_like(mean)),
                                reinterpreted_batch_ndims=1)
        log_weight = -reconstruction + prior.log_prob(z) - posterior.log_prob(z)
        return log_weight, reconstruction, losses.gaussian_kl(mean, log_var)


__all__ = ["bits_per_dim"]
