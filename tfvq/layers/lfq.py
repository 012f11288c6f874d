"""Lookup-free quantization: each channel to its sign, with MAGVIT-v2's entropy loss."""

import math
import numbers

import keras
import numpy as np
from keras import ops

from tfvq.layers.quantizer import Quantizer, code_counts, code_statistics
from tfvq.utils.checks import check_int, is_int

# `counts` is a (1, 2^embedding_dim) histogram; 2^24 float32 counts are 64 MiB.
MAX_EMBEDDING_DIM = 24

# Up to this many bits the batch entropy is computed over every one of the 2^D codes (exact);
# above it from the per-bit marginals (an upper bound, see the class docstring).
EXACT_ENTROPY_MAX_DIM = 16

# Codes per block of the exact batch entropy: an (N, 4096) block, not an (N, 2^16) matrix.
_ENTROPY_CHUNK = 4096


@keras.saving.register_keras_serializable(package="tfvq")
class LookupFreeQuantizer(Quantizer):
    """Lookup-free quantization: each channel replaced by its sign, +-1, with an entropy loss.

    MAGVIT-v2, Yu et al. 2023, "Language Model Beats Diffusion -- Tokenizer is Key to Visual
    Generation" (https://arxiv.org/abs/2310.05737), section 3.1. The codebook is implicit, the
    2^D corners of {-1, 1}^D: a vector z becomes `q = sign(z)` (0 maps to -1) with a
    straight-through gradient, and its index is its bits, channel i giving bit i
    (`index = sum_i [z_i > 0] 2^i`; vector-quantize-pytorch reads channel 0 as the most
    significant bit instead). The layer adds the loss

        commitment_cost * mean((z - sg(q))^2)
        + entropy_weight * (mean_n H(p_n) - diversity_gamma * H(mean_n p_n)),

    where p_n is the distribution over the 2^D codes c of `softmax_c(-|z_n - c|^2 / T)`, the
    paper's entropy penalty: confident per vector, diverse over the batch. As in
    vector-quantize-pytorch (`inv_temperature = 1 / T = 100`, `-distance = 2 z.c`, the
    constants of |z - c|^2 dropping out of the softmax), T = `temperature` = 0.01. Since
    `z.c = sum_i z_i c_i`, this distribution factorises over the bits, `p_n(c_i = 1) =
    sigmoid(4 z_ni / T)`, so the per-vector entropy is computed exactly as a sum of D binary
    entropies, never over 2^D codes. The batch-mean distribution does not factorise: for
    `embedding_dim <= 16` its entropy is computed exactly over all 2^D codes (in blocks of
    4096 codes, from the per-bit log-probabilities), and above 16 from the per-bit marginals,
    `sum_i H(mean_n p_n(c_i = 1))`, an upper bound that is exact when the bits are independent
    over the batch. vector-quantize-pytorch computes both terms over all codes and clamps
    probabilities at 1e-5 inside the log; here the log-probabilities are exact. The means
    are over this call's finite vectors; under `tf.distribute` they are per replica (each
    replica's own batch, not the global one). There is no state: nothing changes at
    `training=True`, and there is nothing to keep in sync between replicas.

    A vector with a NaN or inf gets code 0 and a NaN output, and is left out of the loss and of
    `counts`, so the loss stays finite (0 for an empty batch or one without finite vectors).
    The loss runs in float32 (float64 for a float64 layer), also under mixed precision; the
    output is in the layer's compute dtype.

    Args:
        embedding_dim: D, the number of bits; `codebook_size = 2^D`, 1 <= D <= 24.
        entropy_weight: weight of the entropy loss (0.1, as in vector-quantize-pytorch).
        commitment_cost: weight of the commitment loss (0.25).
        diversity_gamma: weight of the batch entropy inside the entropy loss (1).
        temperature: T of the code distribution (0.01).
        dtype: any floating policy.

    Call arguments:
        inputs: float tensor (..., embedding_dim).
        training: unused (nothing is learned in the layer); accepted for the interface.
        return_info: return a dict instead of the quantized tensor: `quantized`, `indices`
            (int32, `inputs.shape[:-1]`), `loss`, `commitment_loss`, `per_sample_entropy`,
            `batch_entropy` (the terms of the loss, in nats), `counts` (float32
            (1, 2^D) histogram of this batch's codes, finite vectors only), `perplexity` and
            `usage` (of `counts`, see `code_statistics`).

    Returns:
        The quantized tensor, shaped like `inputs`, or the dict above.

    Example:
    >>> q = LookupFreeQuantizer(embedding_dim=4)
    >>> q.codebook_size
    16
    >>> x = keras.ops.convert_to_tensor([[0.3, -1.2, 0.8, -0.1]])
    >>> keras.ops.convert_to_numpy(q(x)).tolist()
    [[1.0, -1.0, 1.0, -1.0]]
    >>> int(q.encode(x)[0])  # bits 0 and 2
    5
    >>> keras.ops.convert_to_numpy(q.decode([5, 8])).tolist()
    [[1.0, -1.0, 1.0, -1.0], [-1.0, -1.0, -1.0, 1.0]]
    """

    def __init__(
        self,
        embedding_dim,
        entropy_weight=0.1,  # entropy penalty weight (MAGVIT-v2 sec. 3.1; vector-quantize-pytorch)
        commitment_cost=0.25,  # commitment loss weight (van den Oord et al. 2017, as in MAGVIT-v2)
        diversity_gamma=1.0,  # batch-entropy weight inside the penalty (vector-quantize-pytorch)
        temperature=0.01,  # T of softmax(-|z - c|^2 / T) (vector-quantize-pytorch's 1 / 100)
        **kwargs,
    ):
        # The entropy terms stay float32 under mixed precision: float16 log-sigmoids at
        # 4 z / T = 400 z would overflow.
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        check_int(self, "embedding_dim", embedding_dim)
        if embedding_dim > MAX_EMBEDDING_DIM:
            raise ValueError(
                f"LookupFreeQuantizer expects embedding_dim <= {MAX_EMBEDDING_DIM} (its counts "
                f"are a (1, 2^embedding_dim) histogram); got {embedding_dim!r}"
            )
        for name, value in (("entropy_weight", entropy_weight), ("commitment_cost", commitment_cost),
                            ("diversity_gamma", diversity_gamma)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
                raise ValueError(f"LookupFreeQuantizer expects {name} >= 0; got {value!r}")
        bad = isinstance(temperature, bool) or not isinstance(temperature, numbers.Real)
        if bad or not temperature > 0:
            raise ValueError(f"LookupFreeQuantizer expects temperature > 0; got {temperature!r}")
        self.embedding_dim = int(embedding_dim)
        self.entropy_weight = float(entropy_weight)
        self.commitment_cost = float(commitment_cost)
        self.diversity_gamma = float(diversity_gamma)
        self.temperature = float(temperature)
        variable_dtype = keras.backend.standardize_dtype(self.dtype_policy.variable_dtype)
        self._work_dtype = "float64" if variable_dtype == "float64" else "float32"

    @classmethod
    def from_sizes(cls, codebook_size, embedding_dim=None, commitment_cost=0.25, **options):
        """`embedding_dim = log2(codebook_size)`; the `embedding_dim` passed is ignored."""
        bits = math.log2(codebook_size) if is_int(codebook_size, 2) else 0.5
        if not float(bits).is_integer():
            raise ValueError(
                f"LookupFreeQuantizer expects codebook_size a power of 2 (2^embedding_dim, at "
                f"least 2); got {codebook_size!r}"
            )
        return cls(int(bits), commitment_cost=commitment_cost, **options)

    @property
    def codebook_size(self):
        return 2**self.embedding_dim

    def build(self, input_shape):
        self._check_last_axis(input_shape)

    def _powers(self):
        return ops.convert_to_tensor(2 ** np.arange(self.embedding_dim), dtype="int32")

    def _bits(self, inputs):
        """`(z, valid, bits)`: the work-dtype inputs with non-finite rows zeroed, and signs."""
        z, valid = self._finite_rows(inputs, self._work_dtype)
        return z, valid, z > 0

    def _index(self, bits):
        return ops.sum(ops.cast(bits, "int32") * self._powers(), axis=-1)

    def encode(self, inputs):
        """The bits of each vector as an int32 index, `inputs.shape[:-1]` (0 if non-finite)."""
        _, _, bits = self._bits(inputs)
        return self._index(bits)

    def decode(self, indices):
        """The corner of {-1, 1}^D of each index: `indices.shape + (embedding_dim,)`."""
        indices = ops.cast(indices, "int32")[..., None]
        bits = ops.mod(ops.floor_divide(indices, self._powers()), 2)
        return ops.cast(2 * bits - 1, self.compute_dtype)

    def call(self, inputs, training=False, return_info=False):
        z, valid, bits = self._bits(inputs)
        codes = ops.where(bits, 1.0, -1.0)
        codes = ops.cast(codes, self._work_dtype)
        quantized = z + ops.stop_gradient(codes - z)  # straight-through estimator
        quantized = ops.where(valid[..., None], quantized, float("nan"))
        quantized = ops.cast(quantized, self.compute_dtype)

        flat_z = ops.reshape(z, (-1, self.embedding_dim))
        flat_codes = ops.reshape(codes, (-1, self.embedding_dim))
        weights = ops.cast(ops.reshape(valid, (-1,)), self._work_dtype)
        # Means over the finite vectors; 0 when there are none.
        weights = weights / ops.maximum(ops.sum(weights), 1.0)
        squared = ops.sum(ops.square(flat_z - ops.stop_gradient(flat_codes)), axis=1)
        commitment_loss = ops.sum(weights * squared) / self.embedding_dim
        per_sample_entropy, batch_entropy = self._entropies(flat_z, weights)
        entropy_loss = per_sample_entropy - self.diversity_gamma * batch_entropy
        loss = self.commitment_cost * commitment_loss + self.entropy_weight * entropy_loss
        self.add_loss(loss)
        if not return_info:
            return quantized
        indices = self._index(bits)
        counts = code_counts(indices, valid, self.codebook_size)
        perplexity, usage = code_statistics(counts)
        return {
            "quantized": quantized,
            "indices": indices,
            "loss": loss,
            "commitment_loss": commitment_loss,
            "per_sample_entropy": per_sample_entropy,
            "batch_entropy": batch_entropy,
            "counts": counts,
            "perplexity": perplexity,
            "usage": usage,
        }

    def _entropies(self, z, weights):
        """Mean per-vector entropy and entropy of the mean distribution, weighted by `weights`.

        `softmax_c(2 z.c / T)` over c in {-1, 1}^D is a product of Bernoullis with logits
        `a_i = 4 z_i / T`: `log p(c) = sum_i log_sigmoid(c_i a_i)`.
        """
        logits = z * (4.0 / self.temperature)
        log_p1 = ops.log_sigmoid(logits)  # log p(c_i = +1)
        log_p0 = ops.log_sigmoid(-logits)  # log p(c_i = -1)
        p1 = ops.exp(log_p1)
        p0 = ops.exp(log_p0)
        sample_entropy = -ops.sum(p1 * log_p1 + p0 * log_p0, axis=1)
        per_sample_entropy = ops.sum(weights * sample_entropy)
        if self.embedding_dim > EXACT_ENTROPY_MAX_DIM:
            mean_p1 = ops.sum(weights[:, None] * p1, axis=0)
            mean_p0 = ops.sum(weights[:, None] * p0, axis=0)
            return per_sample_entropy, ops.sum(_entropy_terms(mean_p1) + _entropy_terms(mean_p0))
        # log p_n(c) = sum_i log_p0_ni + sum_i b_ci (log_p1_ni - log_p0_ni), b_c the bits of c.
        base = ops.sum(log_p0, axis=1, keepdims=True)
        diff = log_p1 - log_p0
        batch_entropy = ops.zeros((), z.dtype)
        for start in range(0, self.codebook_size, _ENTROPY_CHUNK):
            stop = min(start + _ENTROPY_CHUNK, self.codebook_size)
            code_bits = (np.arange(start, stop)[:, None] >> np.arange(self.embedding_dim)) & 1
            code_bits = ops.convert_to_tensor(code_bits.T, dtype=z.dtype)  # (D, codes)
            log_probs = base + ops.matmul(diff, code_bits)
            mean_probs = ops.sum(weights[:, None] * ops.exp(log_probs), axis=0)
            batch_entropy = batch_entropy + ops.sum(_entropy_terms(mean_probs))
        return per_sample_entropy, batch_entropy

    def get_config(self):
        config = super().get_config()
        config.pop("autocast", None)
        config.update(
            {
                "embedding_dim": self.embedding_dim,
                "entropy_weight": self.entropy_weight,
                "commitment_cost": self.commitment_cost,
                "diversity_gamma": self.diversity_gamma,
                "temperature": self.temperature,
            }
        )
        return config


def _entropy_terms(p):
    """`-p log p`, 0 at p = 0 (with a finite gradient there)."""
    return -p * ops.log(ops.maximum(p, 1e-30))
