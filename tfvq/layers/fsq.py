"""Finite scalar quantization: each channel bounded and rounded to a few levels, no codebook."""

import math
import numbers

import keras
import numpy as np
from keras import ops

from tfvq.layers.quantizer import Quantizer, code_counts, code_statistics
from tfvq.utils.checks import is_int

# Mentzer et al. 2023, table 1: the levels recommended for each codebook size.
RECOMMENDED_LEVELS = {
    2**8: (8, 6, 5),
    2**10: (8, 5, 5, 5),
    2**12: (7, 5, 5, 5, 5),
    2**14: (8, 8, 8, 6, 5),
    2**16: (8, 8, 8, 5, 5, 5),
}

# Indices are int32.
_MAX_CODEBOOK_SIZE = 2**31 - 1

# Codebook sizes up to which every index, and each partial sum on the way to it, is a whole
# number the work dtype holds exactly: 2^24 in float32 (the paper's largest, 2^16, fits), and
# every int32 index in float64.
_EXACT_FLOAT_INDEX = {"float32": 2**24, "float64": _MAX_CODEBOOK_SIZE}


@keras.saving.register_keras_serializable(package="tfvq")
class FiniteScalarQuantizer(Quantizer):
    """Finite scalar quantization: every channel bounded, then rounded to one of L_i levels.

    Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made Simple"
    (https://arxiv.org/abs/2309.15505). Channel i of a vector z is bounded with the paper's
    `f(z) = tanh(z + s) * h - o`, where `h = (L_i - 1) (1 + epsilon) / 2`, `o = 0.5` for even
    L_i (else 0) and `s = atanh(o / h)`, so that `round(f(z))` takes exactly the L_i integer
    values `-floor(L_i / 2), ..., ceil(L_i / 2) - 1`. The rounding has a straight-through
    gradient (the gradient of `f` reaches z), and the result is divided by `floor(L_i / 2)`, so
    the output lies in [-1, 1]. The implicit codebook is the grid of all level combinations:
    `codebook_size = prod(L_i)`, and a vector's index is its digits `round(f(z_i)) +
    floor(L_i / 2)` read in mixed radix with channel 0 the least significant digit
    (`index = sum_i digit_i * prod_{j<i} L_j`), the order of the paper's reference code and of
    vector-quantize-pytorch. There is no auxiliary loss (`loss` is 0) and no state: nothing
    is learned here and nothing changes at `training=True`.

    A vector with a NaN or inf gets code 0 and a NaN output, and is left out of `counts`, as in
    `VectorQuantizer`. The bound and the rounding run in float32 (float64 for a float64 layer),
    also under mixed precision; the output is in the layer's compute dtype.

    Args:
        levels: the number of levels L_i of each channel, a sequence of ints >= 2; its length
            is `embedding_dim`. None to take the paper's levels for `codebook_size`.
        codebook_size: used when `levels` is None: one of 2^8, 2^10, 2^12, 2^14, 2^16, with
            the levels of the paper's table 1 (2^10 -> (8, 5, 5, 5)). The layer's
            `codebook_size` is then `prod(levels)`, close to the size asked for but not always
            equal (2^12 -> (7, 5, 5, 5, 5), 4375 codes). When both are given, `prod(levels)`
            must equal it.
        epsilon: the bound's margin, so that `tanh`'s open interval still reaches the outer
            levels after rounding (1e-3, as in the paper's reference code).
        dtype: any floating policy.

    Call arguments:
        inputs: float tensor (..., embedding_dim).
        training: unused (nothing is learned); accepted for the `Quantizer` interface.
        return_info: return a dict instead of the quantized tensor: `quantized`, `indices`
            (int32, `inputs.shape[:-1]`), `loss` (0), `counts` (float32 (1, codebook_size)
            histogram of this batch's codes, finite vectors only), `perplexity` and `usage`
            (of `counts`, see `code_statistics`).

    Returns:
        The quantized tensor, shaped like `inputs`, or the dict above.

    Example:
    >>> q = FiniteScalarQuantizer(levels=(8, 5, 5, 5))
    >>> q.codebook_size, q.embedding_dim, q.num_codebooks
    (1000, 4, 1)
    >>> x = keras.ops.convert_to_tensor([[0.1, -3.0, 0.4, 2.0]])
    >>> keras.ops.convert_to_numpy(q(x)).tolist()
    [[0.0, -1.0, 0.5, 1.0]]
    >>> int(q.encode(x)[0])  # digits (4, 0, 3, 4): 4 + 0 * 8 + 3 * 40 + 4 * 200
    924
    >>> keras.ops.convert_to_numpy(q.decode(q.encode(x))).tolist()
    [[0.0, -1.0, 0.5, 1.0]]
    >>> FiniteScalarQuantizer(codebook_size=2**10).levels
    (8, 5, 5, 5)
    """

    def __init__(
        self,
        levels=None,  # L_i per channel (Mentzer et al. 2023, sec. 3)
        codebook_size=None,  # or a size from the paper's table 1
        epsilon=1e-3,  # bound margin (the paper's reference code, appendix A.1)
        **kwargs,
    ):
        # The bound and the digits stay float32 under mixed precision: float16 cannot hold
        # the index arithmetic, and `round` near a level boundary would move.
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        self.levels = self._resolve_levels(levels, codebook_size)
        if not (isinstance(epsilon, numbers.Real) and 0 <= epsilon < 1):
            raise ValueError(f"FiniteScalarQuantizer expects epsilon in [0, 1); got {epsilon!r}")
        self.epsilon = float(epsilon)
        self.embedding_dim = len(self.levels)
        variable_dtype = keras.backend.standardize_dtype(self.dtype_policy.variable_dtype)
        self._work_dtype = "float64" if variable_dtype == "float64" else "float32"

        levels = np.asarray(self.levels, np.float64)
        half_levels = (levels - 1) * (1 + self.epsilon) / 2
        offsets = np.where(np.asarray(self.levels) % 2 == 0, 0.5, 0.0)
        self._half_levels = half_levels
        self._offsets = offsets
        self._shifts = np.arctanh(offsets / half_levels)
        self._half_widths = np.asarray(self.levels) // 2
        self._basis = np.cumprod([1] + list(self.levels[:-1])).astype(np.int64)

    @staticmethod
    def _resolve_levels(levels, codebook_size):
        if levels is None:
            if codebook_size not in RECOMMENDED_LEVELS:
                supported = ", ".join(f"2^{int(math.log2(k))}" for k in RECOMMENDED_LEVELS)
                raise ValueError(
                    f"FiniteScalarQuantizer expects levels, or a codebook_size with levels in "
                    f"the paper's table ({supported}); got levels=None, "
                    f"codebook_size={codebook_size!r}"
                )
            return RECOMMENDED_LEVELS[codebook_size]
        bad = isinstance(levels, (str, bytes)) or not hasattr(levels, "__len__") or len(levels) == 0
        if not bad:
            bad = not all(is_int(v, 2) for v in levels)
        if bad:
            raise ValueError(
                f"FiniteScalarQuantizer expects levels, a non-empty sequence of ints >= 2; "
                f"got {levels!r}"
            )
        levels = tuple(int(v) for v in levels)
        size = math.prod(levels)
        if size > _MAX_CODEBOOK_SIZE:
            raise ValueError(
                f"FiniteScalarQuantizer expects levels whose product (the codebook size) fits "
                f"int32 indices, at most {_MAX_CODEBOOK_SIZE}; got levels={levels}, product {size}"
            )
        if codebook_size is not None and codebook_size != size:
            raise ValueError(
                f"FiniteScalarQuantizer expects codebook_size equal to prod(levels)={size} when "
                f"both are given; got levels={levels}, codebook_size={codebook_size!r}"
            )
        return levels

    @classmethod
    def from_sizes(cls, codebook_size, embedding_dim=None, commitment_cost=0.25, **options):
        """The paper's levels for `codebook_size` (or `options["levels"]`).

        `embedding_dim` and `commitment_cost` are ignored: FSQ's size is `len(levels)` and it
        has no commitment loss.
        """
        if options.get("levels") is not None:
            return cls(**options)
        options.pop("levels", None)
        return cls(codebook_size=codebook_size, **options)

    @property
    def codebook_size(self):
        return math.prod(self.levels)

    def build(self, input_shape):
        self._check_last_axis(input_shape)

    def _constant(self, values, dtype=None):
        return ops.convert_to_tensor(np.asarray(values), dtype=dtype or self._work_dtype)

    def _digits(self, inputs):
        """`(bounded, valid)`: `f(z)` in the work dtype (non-finite rows zeroed) and finiteness."""
        z, valid = self._finite_rows(inputs, self._work_dtype)
        bounded = (
            ops.tanh(z + self._constant(self._shifts)) * self._constant(self._half_levels)
            - self._constant(self._offsets)
        )
        return bounded, valid

    def _index(self, rounded, valid):
        if self.codebook_size <= _EXACT_FLOAT_INDEX[self._work_dtype]:
            # A (..., d) x (d, 1) matmul of small whole numbers, exact below the dtype's
            # integer limit: TensorFlow's row sum over an axis of 3-6 digits took 2.5 ms
            # against 0.4 ms for it on 262,144 vectors (AMD EPYC, AVX-512, 2 cores). The
            # digits' offset `sum(half_widths * basis)` is added to the sums, one number a
            # row, rather than to the (..., d) values (every partial sum stays below the
            # codebook size in magnitude, so still exact).
            indices = ops.matmul(rounded, self._constant(self._basis[:, None]))[..., 0]
            offset = int(np.dot(self._half_widths, self._basis))
            indices = ops.cast(indices + self._constant(offset), "int32")
        else:
            digits = ops.cast(rounded, "int32") + self._constant(self._half_widths, "int32")
            indices = ops.sum(digits * self._constant(self._basis, "int32"), axis=-1)
        return ops.where(valid, indices, 0)

    def encode(self, inputs):
        """Mixed-radix index of each vector's levels: int32, `inputs.shape[:-1]` (0 if non-finite)."""
        bounded, valid = self._digits(inputs)
        return self._index(ops.round(bounded), valid)

    def decode(self, indices):
        """The grid point of each index, in [-1, 1]: `indices.shape + (embedding_dim,)`."""
        indices = ops.cast(indices, "int32")[..., None]
        digits = ops.mod(
            ops.floor_divide(indices, self._constant(self._basis, "int32")),
            self._constant(self.levels, "int32"),
        )
        half_widths = self._constant(self._half_widths, "int32")
        values = ops.cast(digits - half_widths, self._work_dtype) / ops.cast(
            half_widths, self._work_dtype
        )
        return ops.cast(values, self.compute_dtype)

    def call(self, inputs, training=False, return_info=False):
        bounded, valid = self._digits(inputs)
        rounded = ops.round(bounded)
        # Straight-through: the value of round(f(z)), the gradient of f(z).
        quantized = bounded + ops.stop_gradient(rounded - bounded)
        quantized = quantized / self._constant(self._half_widths)
        # NaN rows by adding a per-row 0 or NaN: a `where` over the (..., d) values is a
        # select that TensorFlow runs at about 2 ns a value, 4-5x an addition's time.
        nan_rows = ops.where(valid, ops.zeros((), quantized.dtype), float("nan"))
        quantized = quantized + nan_rows[..., None]
        quantized = ops.cast(quantized, self.compute_dtype)
        loss = ops.zeros((), self._work_dtype)  # FSQ needs no auxiliary loss
        self.add_loss(loss)
        if not return_info:
            return quantized
        indices = self._index(rounded, valid)
        counts = code_counts(indices, valid, self.codebook_size)
        perplexity, usage = code_statistics(counts)
        return {
            "quantized": quantized,
            "indices": indices,
            "loss": loss,
            "counts": counts,
            "perplexity": perplexity,
            "usage": usage,
        }

    def get_config(self):
        config = super().get_config()
        config.pop("autocast", None)
        config.update({"levels": list(self.levels), "epsilon": self.epsilon})
        return config
