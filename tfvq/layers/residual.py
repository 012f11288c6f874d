"""Residual vector quantization: each stage quantizes what the stages before it left over."""

import numbers

import keras
from keras import ops

from tfvq.layers.quantizer import Quantizer, code_statistics
from tfvq.layers.quantizers import VectorQuantizer, VectorQuantizerEMA
from tfvq.utils.checks import check_int, is_int

# The stage quantizers by name.
STAGES = {"vq": VectorQuantizer, "ema": VectorQuantizerEMA}

# Keyword arguments of keras.layers.Layer itself; every other one goes to the stages.
_LAYER_KWARGS = ("name", "dtype", "trainable", "activity_regularizer", "input_shape",
                 "input_dim", "batch_input_shape", "batch_size")


@keras.saving.register_keras_serializable(package="tfvq")
class ResidualVectorQuantizer(Quantizer):
    """Residual vector quantization: Q codebooks, each quantizing the previous stages' residual.

    SoundStream, Zeghidour et al. 2021, "SoundStream: An End-to-End Neural Audio Codec"
    (https://arxiv.org/abs/2107.03312), algorithm 1: with `r_1 = x`, stage i quantizes
    `q_i = Q_i(r_i)` and passes on `r_{i+1} = r_i - q_i`; the output is `sum_i q_i`, with a
    straight-through gradient (`x + sg(sum_i q_i - x)`, so the output's gradient reaches x
    once, not once per stage), and a position's code is its Q indices. Each stage is a
    `VectorQuantizer` ("vq") or `VectorQuantizerEMA` ("ema") sublayer built with its public
    constructor (`stage_0`, ...), so it brings its own options, losses and statistics: an EMA
    stage sums its counts and sums over replicas itself, so N replicas reach what one device
    does, and a batch with a non-finite vector changes no stage's statistics (such a vector
    has non-finite residuals at every stage: code 0 everywhere, a NaN output). Stage i's loss
    is its own (codebook and commitment terms on its residual, whose gradient reaches x since
    `r_i = x - sg(sum_{j<i} q_j)`), and the layer's loss is their sum.

    Quantize dropout (SoundStream sec. 3.3, structured dropout, per batch as in
    vector-quantize-pytorch's `quantize_dropout`): in training, with probability
    `quantize_dropout`, a number q of stages is drawn uniformly from 1..Q for the whole batch,
    and only the first q stages' vectors make the output and only their losses the loss. The
    other stages still run on their residuals (the same residuals as without dropout), so EMA
    and usage statistics keep learning every batch and the graph has no data-dependent branch
    (XLA and `tf.distribute` see one program; the replicas draw the same q, from seed
    generators that start and move together); vector-quantize-pytorch skips them instead.
    `indices` and `counts` report all Q stages.

    `shared_codebook=True` uses one "vq" stage for every level (one sublayer called Q times;
    its codebook learns from the sum of the Q losses, and its usage EMA `cluster_size` takes
    one step per level, Q per batch). It is refused for "ema": an EMA codebook moves at every
    call from that call's counts and sums, so shared by Q levels it would take Q successive
    updates per batch, each from one level's residuals, and later levels would search a
    codebook the earlier ones had just moved; a right shared EMA needs one update from the
    statistics of all levels pooled, which the EMA quantizer's interface does not offer.

    Args:
        num_quantizers: Q >= 1, the number of stages (levels of code per position).
        num_embeddings: K, the codes of each stage.
        embedding_dim: D, the inputs' last axis.
        quantizer: the stages, "ema" (`VectorQuantizerEMA`) or "vq" (`VectorQuantizer`).
        shared_codebook: one codebook for every stage ("vq" only).
        quantize_dropout: probability in [0, 1) that a training batch uses a random number of
            stages.
        commitment_cost: every stage's commitment weight.
        seed: seed of the dropout draws; stage i is built with `seed + i`.
        dtype: any floating policy. Stages are float32 (float64 for a float64 layer), so that
            residuals do not lose precision under mixed precision; the output is in the compute
            dtype.
        **quantizer_options: further options of every stage (`decay`, `epsilon`, `kmeans_init`,
            `dead_code_threshold`, `distance`, `codebook_dim`, `gradient`, ...).

    Call arguments:
        inputs: float tensor (..., embedding_dim).
        training: whether statistics may change and quantize dropout applies.
        return_info: return a dict instead of the quantized tensor: `quantized`, `indices`
            (int32, `inputs.shape[:-1] + (Q,)`), `loss` (the active stages' losses summed),
            `stage_losses` (Q, every stage's own), `active_quantizers` (q, int32), `counts`
            (float32 (Q, K), a histogram per stage), `perplexity` and `usage` (of `counts`,
            the mean over stages; see `code_statistics`), `distances` (`inputs.shape[:-1] +
            (Q, K)`, each stage's distances to its codes).

    Returns:
        The quantized tensor, shaped like `inputs`, or the dict above.

    Example:
    >>> q = ResidualVectorQuantizer(num_quantizers=3, num_embeddings=16, embedding_dim=4)
    >>> q.num_codebooks, q.codebook_size
    (3, 16)
    >>> x = keras.random.normal((2, 5, 4), seed=0)
    >>> info = q(x, training=True, return_info=True)
    >>> tuple(info["indices"].shape), tuple(info["counts"].shape)
    ((2, 5, 3), (3, 16))
    >>> tuple(q.decode(q.encode(x)[..., :2]).shape)  # the first two levels only
    (2, 5, 4)
    """

    def __init__(
        self,
        num_quantizers,  # Q stages (SoundStream, algorithm 1)
        num_embeddings,  # K codes per stage
        embedding_dim,  # D
        quantizer="ema",  # stage type: EMA codebooks (SoundStream) or learned ones (VQ-VAE)
        shared_codebook=False,  # one codebook for all stages (vector-quantize-pytorch's shared_codebook)
        quantize_dropout=0.0,  # structured quantizer dropout (SoundStream sec. 3.3)
        commitment_cost=0.25,  # beta of every stage (van den Oord et al. 2017)
        seed=None,  # dropout draws; stage i is seeded seed + i
        **quantizer_options,  # every stage's own options (VectorQuantizer / VectorQuantizerEMA)
    ):
        layer_kwargs = {k: quantizer_options.pop(k) for k in _LAYER_KWARGS if k in quantizer_options}
        # Residuals stay float32 under mixed precision: the layer casts itself.
        quantizer_options.pop("autocast", None)
        super().__init__(autocast=False, **layer_kwargs)
        check_int(self, "num_quantizers", num_quantizers)
        check_int(self, "num_embeddings", num_embeddings)
        check_int(self, "embedding_dim", embedding_dim)
        if quantizer not in STAGES:
            raise ValueError(
                f"ResidualVectorQuantizer expects quantizer in {tuple(STAGES)}; got {quantizer!r}"
            )
        if not isinstance(shared_codebook, bool):
            raise ValueError(
                f"ResidualVectorQuantizer expects shared_codebook True or False; got "
                f"{shared_codebook!r}"
            )
        if shared_codebook and quantizer == "ema":
            raise ValueError(
                "ResidualVectorQuantizer cannot share one codebook between stages with "
                "quantizer='ema': the EMA codebook would move once per stage, each time from "
                "that stage's residuals alone, instead of once from all stages' statistics. "
                "Use quantizer='vq' with shared_codebook=True, or separate EMA codebooks."
            )
        bad = isinstance(quantize_dropout, bool) or not isinstance(quantize_dropout, numbers.Real)
        if bad or not 0.0 <= quantize_dropout < 1.0:
            raise ValueError(
                f"ResidualVectorQuantizer expects quantize_dropout in [0, 1); got "
                f"{quantize_dropout!r}"
            )
        if seed is not None and not is_int(seed):
            raise ValueError(f"ResidualVectorQuantizer expects seed None or an int; got {seed!r}")
        self.num_quantizers = int(num_quantizers)
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.quantizer = quantizer
        self.shared_codebook = shared_codebook
        self.quantize_dropout = float(quantize_dropout)
        self.commitment_cost = float(commitment_cost)
        self.seed = seed
        self.quantizer_options = dict(quantizer_options)
        self.seed_generator = keras.random.SeedGenerator(seed)
        variable_dtype = keras.backend.standardize_dtype(self.dtype_policy.variable_dtype)
        self._work_dtype = "float64" if variable_dtype == "float64" else "float32"

        stage_cls = STAGES[quantizer]
        self.stages = [
            stage_cls(
                self.num_embeddings,
                self.embedding_dim,
                commitment_cost=self.commitment_cost,
                seed=None if seed is None else seed + i,
                dtype=self._work_dtype,
                name=f"stage_{i}",
                **self.quantizer_options,
            )
            for i in range(1 if shared_codebook else self.num_quantizers)
        ]

    @classmethod
    def from_sizes(cls, codebook_size, embedding_dim, commitment_cost=0.25, num_quantizers=4,
                   **options):
        """`num_quantizers` stages (4 unless `options` say otherwise) of `codebook_size` codes."""
        return cls(num_quantizers, codebook_size, embedding_dim, commitment_cost=commitment_cost,
                   **options)

    @property
    def codebook_size(self):
        return self.num_embeddings

    @property
    def num_codebooks(self):
        return self.num_quantizers

    def _stage(self, i):
        return self.stages[0 if self.shared_codebook else i]

    def build(self, input_shape):
        self._check_last_axis(input_shape)
        for stage in self.stages:
            if not stage.built:
                stage.build(tuple(input_shape))

    def _inputs(self, inputs):
        self._check_floating(inputs)
        self._check_last_axis(inputs.shape)
        if not self.built:
            self.build(inputs.shape)
        return ops.cast(inputs, self._work_dtype)

    def encode(self, inputs):
        """Each stage's index of its residual: int32, `inputs.shape[:-1] + (num_quantizers,)`."""
        residual = self._inputs(inputs)
        indices = []
        for i in range(self.num_quantizers):
            stage = self._stage(i)
            index = stage.encode(residual)
            indices.append(index)
            residual = residual - ops.cast(stage.decode(index), self._work_dtype)
        return ops.stack(indices, axis=-1)

    def decode(self, indices):
        """The sum of the stages' vectors for `indices` (..., q), any q <= num_quantizers.

        The first q levels give the coarser reconstruction those stages make.
        """
        if not self.built:
            self.build((None, self.embedding_dim))
        indices = ops.cast(indices, "int32")
        levels = indices.shape[-1] if len(indices.shape) else None
        if levels is None or not 1 <= levels <= self.num_quantizers:
            raise ValueError(
                f"ResidualVectorQuantizer.decode expects indices whose last axis holds 1 to "
                f"num_quantizers={self.num_quantizers} levels; got shape {tuple(indices.shape)}"
            )
        total = 0
        for i in range(levels):
            total = total + ops.cast(self._stage(i).decode(indices[..., i]), self._work_dtype)
        return ops.cast(total, self.compute_dtype)

    def set_codebook(self, values):
        """Sets every stage's codebook from values (Q, K, code size), or (K, code size) when shared."""
        values = ops.convert_to_tensor(values)
        if not self.built:
            self.build((None, self.embedding_dim))
        if self.shared_codebook:
            self.stages[0].set_codebook(values)
            return
        if len(values.shape) != 3 or values.shape[0] != self.num_quantizers:
            raise ValueError(
                f"ResidualVectorQuantizer.set_codebook expects values of shape (num_quantizers="
                f"{self.num_quantizers}, num_embeddings={self.num_embeddings}, code size); got "
                f"shape {tuple(values.shape)}"
            )
        for i, stage in enumerate(self.stages):
            stage.set_codebook(values[i])

    def _active_quantizers(self, training):
        """q, the number of stages used: all but in a training batch drawn for dropout."""
        if not (training and self.quantize_dropout > 0):
            return None
        drop = keras.random.uniform((), seed=self.seed_generator) < self.quantize_dropout
        drawn = keras.random.randint((), 1, self.num_quantizers + 1, seed=self.seed_generator)
        return ops.where(drop, ops.cast(drawn, "int32"), self.num_quantizers)

    def call(self, inputs, training=False, return_info=False):
        x = self._inputs(inputs)
        active_count = self._active_quantizers(training)
        residual = x
        total = ops.zeros_like(x)
        stage_losses, indices, counts, distances = [], [], [], []
        loss = ops.zeros((), self._work_dtype)
        for i in range(self.num_quantizers):
            info = self._stage(i)(residual, training=training, return_info=True)
            vectors = ops.stop_gradient(ops.cast(info["quantized"], self._work_dtype))
            stage_loss = ops.cast(info["loss"], self._work_dtype)
            if active_count is None:
                total = total + vectors
                loss = loss + stage_loss
            else:
                active = i < active_count
                total = total + ops.where(active, vectors, ops.zeros_like(vectors))
                loss = loss + ops.where(active, stage_loss, ops.zeros_like(stage_loss))
            # The next stage sees what this one left; its gradient still reaches x directly.
            residual = residual - vectors
            stage_losses.append(stage_loss)
            indices.append(info["indices"])
            counts.append(info["counts"])
            distances.append(info["distances"])
        if active_count is not None:
            # Every stage added its own loss to `losses`, dropped ones too; this term takes the
            # dropped ones back out, so that `losses` sum to `loss` (and give its gradients).
            self.add_loss(loss - sum(stage_losses))
        quantized = x + ops.stop_gradient(total - x)  # straight-through estimator
        # The whole vector NaN, not only the entries that were: the stages' codes for it are 0.
        valid = ops.all(ops.isfinite(x), axis=-1, keepdims=True)
        quantized = ops.where(valid, quantized, float("nan"))
        quantized = ops.cast(quantized, self.compute_dtype)
        if not return_info:
            return quantized
        counts = ops.cast(ops.concatenate(counts, axis=0), "float32")
        perplexity, usage = code_statistics(counts)
        return {
            "quantized": quantized,
            "indices": ops.stack(indices, axis=-1),
            "loss": loss,
            "stage_losses": ops.stack(stage_losses),
            "active_quantizers": (
                ops.convert_to_tensor(self.num_quantizers, "int32")
                if active_count is None else active_count
            ),
            "counts": counts,
            "perplexity": perplexity,
            "usage": usage,
            "distances": ops.stack(distances, axis=-2),
        }

    def get_config(self):
        config = super().get_config()
        config.pop("autocast", None)
        config.update(
            {
                "num_quantizers": self.num_quantizers,
                "num_embeddings": self.num_embeddings,
                "embedding_dim": self.embedding_dim,
                "quantizer": self.quantizer,
                "shared_codebook": self.shared_codebook,
                "quantize_dropout": self.quantize_dropout,
                "commitment_cost": self.commitment_cost,
                "seed": self.seed,
                **self.quantizer_options,
            }
        )
        return config
