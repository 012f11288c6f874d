"""VQ-VAE: conv encoder, vector quantizer, conv decoder (van den Oord et al. 2017)."""

import keras
from keras import ops

from tfvq.layers import QUANTIZERS, Quantizer
from tfvq.layers.quantizer import CodeUsage
from tfvq.models.base import ImageAutoencoder, conv_arguments


@keras.saving.register_keras_serializable(package="tfvq")
class VQVAE(ImageAutoencoder):
    """Vector-quantized VAE: images to a grid of discrete codes and back.

    "Neural Discrete Representation Learning", van den Oord et al. 2017. The defaults are the
    paper's CIFAR-10 model (two stride-2 stages, 128 hidden channels, 2 residual layers of 32
    channels, a 1x1 conv to `embedding_dim`), giving an 8x8 code map for 32x32 images. The loss
    is the reconstruction term plus the quantizer's loss; `fit` reports `loss`,
    `reconstruction_loss`, `mse`, `psnr`, `vq_loss`, `perplexity`, `usage` (and
    `normalized_mse` when `data_variance` is given). Perplexity and usage come from the code
    counts pooled over the whole epoch or `evaluate` pass (`tfvq.layers.CodeUsage`).

    Any `tfvq.layers.Quantizer` works: the model reads only its interface. The encoder's
    output channels are the quantizer's `embedding_dim` (4 for FSQ with levels (8, 5, 5, 5),
    whatever `embedding_dim` says), and code maps are `(B, h, w)`, or `(B, h, w, Q)` for a
    quantizer with `num_codebooks = Q > 1` (residual VQ).

    Args:
        input_shape: (height, width, channels).
        num_embeddings, embedding_dim: codebook size K and code size D.
        hidden_channels, residual_channels, num_residual_layers, downsample_stages, downsample:
            the conv stacks (see `tfvq.layers.ConvEncoder`).
        quantizer: a name in `tfvq.layers.QUANTIZERS` ("ema", "vq", ...), built with
            `from_sizes(num_embeddings, embedding_dim, commitment_cost, **quantizer_options)`,
            or a `tfvq.layers.Quantizer` instance.
        commitment_cost: beta of the commitment loss.
        decay: EMA decay (quantizer "ema").
        quantizer_options: extra keyword arguments of the quantizer (e.g. `kmeans_init`,
            `dead_code_threshold`).
        reconstruction_loss, data_variance, data_range, encoder, decoder: see `ImageAutoencoder`.

    Example:
    >>> m = VQVAE(input_shape=(16, 16, 1), num_embeddings=8, embedding_dim=4, hidden_channels=8,
    ...           residual_channels=4)
    >>> tuple(m.encode_to_indices(keras.ops.zeros((2, 16, 16, 1))).shape)
    (2, 4, 4)
    """

    # perplexity and usage follow, pooled over the pass (`CodeUsage`, added in __init__).
    metric_names = ImageAutoencoder.metric_names + ("vq_loss",)
    _layer_arguments = ImageAutoencoder._layer_arguments + ("quantizer",)

    def __init__(self, input_shape=(32, 32, 3), num_embeddings=512, embedding_dim=64,
                 hidden_channels=128, residual_channels=32, num_residual_layers=2,
                 downsample_stages=2, downsample="stride", quantizer="ema", commitment_cost=0.25,
                 decay=0.99, quantizer_options=None, reconstruction_loss="mse",
                 data_variance=None, data_range=1.0, encoder=None, decoder=None, **kwargs):
        super().__init__(input_shape, reconstruction_loss, data_variance, data_range, encoder,
                         decoder, **kwargs)
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.commitment_cost = commitment_cost
        self.decay = decay
        self.quantizer_options = dict(quantizer_options or {})
        conv = conv_arguments(self, hidden_channels, downsample_stages, downsample,
                              num_residual_layers, residual_channels)
        self.quantizer = self._make_quantizer(quantizer)
        self.quantizer_kind = quantizer if isinstance(quantizer, str) else None
        self.encoder = encoder or self._map_encoder(conv, self.quantizer.embedding_dim)
        self.decoder = decoder or self._map_decoder(conv)
        sizes = (self.quantizer.codebook_size, self.quantizer.num_codebooks)
        self._trackers["perplexity"] = CodeUsage(*sizes, statistic="perplexity")
        self._trackers["usage"] = CodeUsage(*sizes, statistic="usage")
        self._finish_init()

    def _make_quantizer(self, quantizer):
        if isinstance(quantizer, Quantizer):
            return quantizer
        if quantizer not in QUANTIZERS:
            raise ValueError(
                f"VQVAE expects quantizer in {tuple(QUANTIZERS)} or a tfvq.layers.Quantizer "
                f"instance; got {quantizer!r}"
            )
        options = dict(self.quantizer_options)
        if quantizer == "ema":
            options.setdefault("decay", self.decay)
        return QUANTIZERS[quantizer].from_sizes(
            self.num_embeddings, self.embedding_dim, commitment_cost=self.commitment_cost,
            name="quantizer", **options
        )

    def _encode(self, x, training):
        """The encoder's output, all NaN for an image that holds a non-finite pixel.

        IEEE arithmetic would carry the NaN through on its own, but CPU kernels do not always:
        oneDNN's ReLU turns NaN into 0 on some CPUs (AVX-512) and not on others, or under XLA.
        Marking the latents makes the quantizer skip such a batch on every machine.
        """
        latents = self.encoder(x, training=training)
        finite = ops.all(ops.isfinite(ops.reshape(x, (ops.shape(x)[0], -1))), axis=1)
        nan = ops.cast(float("nan"), latents.dtype)
        finite = ops.reshape(finite, (-1,) + (1,) * (len(latents.shape) - 1))
        return ops.where(finite, latents, nan)

    def encode_to_indices(self, x):
        """Code indices, int32: (B, h, w), or (B, h, w, Q) for Q > 1 levels per position."""
        return self.quantizer.encode(self.encode(x))

    def decode_indices(self, indices):
        """Images from code indices, shaped as `encode_to_indices` returns them."""
        return self.decode(self.quantizer.decode(indices))

    @property
    def latent_shape(self):
        """(h, w) of the code map of one image."""
        return tuple(int(d) for d in ops.shape(self.encode(ops.zeros((1,) + self.image_shape)))[1:3])

    def sample(self, n, prior, seed=None, temperature=1.0, labels=None):
        """`n` images decoded from code maps drawn from `prior` (a trained `PixelCNNPrior`).

        A prior models one (h, w) map of codes. For a quantizer with several levels per
        position (residual VQ), it models the first level, and the images are decoded from
        that level alone (`tfvq.data.codes_dataset(..., level=0)` makes its training data).
        """
        shape = self.latent_shape
        size = self.quantizer.codebook_size
        if tuple(prior.latent_shape) != shape or prior.num_embeddings != size:
            raise ValueError(
                f"VQVAE.sample expects a prior over the quantizer's codebook_size={size} codes "
                f"on a {shape} map; got num_embeddings={prior.num_embeddings}, "
                f"latent_shape={prior.latent_shape}"
            )
        codes = prior.sample(n, seed=seed, temperature=temperature, labels=labels)
        if self.quantizer.num_codebooks > 1:
            codes = codes[..., None]  # the first level of each position
        return self.decode_indices(codes)

    def call(self, inputs, training=False):
        latents = self.encode(inputs, training=training)
        return self.decode(self.quantizer(latents, training=training), training=training)

    def _loss_terms(self, x, training):
        info = self.quantizer(self._encode(x, training), training=training, return_info=True)
        output = self.decoder(info["quantized"], training=training)
        terms, _ = self._reconstruction_terms(x, output)
        loss = terms["reconstruction_loss"] + info["loss"] + self._regularization()
        terms.update(vq_loss=info["loss"], perplexity=info["counts"], usage=info["counts"])
        return loss, terms

    def get_config(self):
        quantizer = self.quantizer_kind or keras.saving.serialize_keras_object(self.quantizer)
        return {
            **self._base_config(),
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
            "quantizer": quantizer,
            "commitment_cost": self.commitment_cost,
            "decay": self.decay,
            "quantizer_options": self.quantizer_options,
        }
