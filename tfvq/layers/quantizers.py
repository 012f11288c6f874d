"""Vector quantizers: nearest-codebook lookup with a straight-through or rotation gradient."""

import keras
import numpy as np
from keras import ops
from keras.src.backend.common.stateless_scope import in_stateless_scope

from tfvq.layers._distribute import cross_replica_sum
from tfvq.layers.quantizer import Quantizer
from tfvq.utils.checks import check_int, is_int

_DISTANCES = ("l2", "cosine")
_GRADIENTS = ("straight_through", "rotation")


class _VectorQuantizerBase(Quantizer):
    """Lookup, losses, codebook statistics and health tools shared by both quantizers.

    Subclasses say how the codebook learns: `_codebook_trainable` and `_update_codebook`.

    Every vector goes through one "search space" before the lookup: the projection to
    `codebook_dim` (factorized codes) and then, with `distance="cosine"`, l2-normalisation. The
    codebook, the search, the losses, the statistics, k-means and the restarts all live in that
    space; only the output goes back through `project_out`.
    """

    _codebook_trainable = True

    def __init__(
        self,
        num_embeddings,
        embedding_dim,
        commitment_cost=0.25,
        distance="l2",  # "cosine": l2-normalised inputs and codes (Yu et al. 2021, ViT-VQGAN)
        codebook_dim=None,  # factorized codes, looked up in a learned projection (Yu et al. 2021)
        gradient="straight_through",  # "rotation": the rotation trick (Fifty et al. 2024)
        kmeans_init=False,  # codebook from k-means on the first training batch (Łańcucki et al. 2020)
        kmeans_iters=10,
        dead_code_threshold=0.0,  # re-seed codes whose EMA usage falls below this (Dhariwal et al. 2020)
        seed=None,
        **kwargs,
    ):
        # Distances and codebook statistics stay float32 (float64 for a float64 layer) under
        # mixed precision: the layer casts itself instead of letting Keras cast inputs and
        # variables to float16.
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        name = type(self).__name__
        check_int(self, "num_embeddings", num_embeddings)
        check_int(self, "embedding_dim", embedding_dim)
        if commitment_cost < 0:
            raise ValueError(f"{name} expects commitment_cost >= 0; got {commitment_cost}")
        if dead_code_threshold < 0:
            raise ValueError(
                f"{name} expects dead_code_threshold >= 0; got {dead_code_threshold}"
            )
        check_int(self, "kmeans_iters", kmeans_iters)
        if distance not in _DISTANCES:
            raise ValueError(f"{name} expects distance in {_DISTANCES}; got {distance!r}")
        if gradient not in _GRADIENTS:
            raise ValueError(f"{name} expects gradient in {_GRADIENTS}; got {gradient!r}")
        if codebook_dim is not None:
            if not is_int(codebook_dim, 1) or codebook_dim > embedding_dim:
                raise ValueError(
                    f"{name} expects codebook_dim None or an int in [1, embedding_dim="
                    f"{embedding_dim}]; got {codebook_dim!r}"
                )
            codebook_dim = int(codebook_dim)
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.commitment_cost = float(commitment_cost)
        self.distance = distance
        self.codebook_dim = codebook_dim
        self.gradient = gradient
        self.kmeans_init = bool(kmeans_init)
        self.kmeans_iters = int(kmeans_iters)
        self.dead_code_threshold = float(dead_code_threshold)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # The statistics' dtype: float64 for a float64 layer, else float32 (also under
        # float16 / bfloat16 policies, where float16 counts and sums would lose the EMA).
        variable_dtype = keras.backend.standardize_dtype(self.dtype_policy.variable_dtype)
        self._stats_dtype = "float64" if variable_dtype == "float64" else "float32"

        if codebook_dim is not None:
            self.project_in = keras.layers.Dense(
                codebook_dim,
                kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
                dtype=self.dtype_policy,
                name="project_in",
            )
            self.project_out = keras.layers.Dense(
                embedding_dim,
                kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
                dtype=self.dtype_policy,
                name="project_out",
            )

    @property
    def codebook_size(self):
        return self.num_embeddings

    @property
    def _code_dim(self):
        """Size of the codes: `codebook_dim`, or `embedding_dim` without factorization."""
        return self.codebook_dim or self.embedding_dim

    @property
    def _stats_decay(self):
        raise NotImplementedError

    def build(self, input_shape):
        self._check_shape(input_shape)
        if self.codebook_dim is not None:
            self.project_in.build((None, self.embedding_dim))
            self.project_out.build((None, self.codebook_dim))
        # Uniform in +-sqrt(3 / code size): Sonnet's VarianceScaling on its (D, K) codebook;
        # on the unit sphere for cosine codes, as vector-quantize-pytorch starts them.
        initializer = keras.initializers.VarianceScaling(
            1.0, mode="fan_out", distribution="uniform", seed=self.seed
        )
        if self.distance == "cosine":
            uniform = initializer

            def initializer(shape, dtype=None):
                return _l2_normalize(uniform(shape, dtype))

        # "only_first_replica": every replica computes the same update from all-reduced
        # statistics, and the first replica's value is the one kept.
        self.codebook = self.add_weight(
            shape=(self.num_embeddings, self._code_dim),
            initializer=initializer,
            dtype=self._stats_dtype,
            trainable=self._codebook_trainable,
            autocast=False,
            aggregation="only_first_replica",
            name="codebook",
        )
        # EMA of how many vectors each code receives per batch; starts at one pseudo-observation
        # per code so that an unused code keeps its vector instead of collapsing to zero.
        self.cluster_size = self._state_weight((self.num_embeddings,), "ones", "cluster_size")
        if self._codebook_trainable:
            # Where k-means and restarts write a learned codebook when JAX trains statelessly
            # (`stateless_call`, Keras' JAX `fit`): that keeps the writes to non-trainable
            # variables only, and drops any to a trainable one. The codes are `codebook +
            # codebook_offset`; the offset is zero wherever variables can be assigned directly.
            self.codebook_offset = self._state_weight(
                (self.num_embeddings, self._code_dim), "zeros", "codebook_offset"
            )
        self.initialized = self._state_weight((), "zeros" if self.kmeans_init else "ones", "initialized")

    def _state_weight(self, shape, initializer, name):
        return self.add_weight(
            shape=shape,
            initializer=initializer,
            dtype=self._stats_dtype,
            trainable=False,
            autocast=False,
            aggregation="only_first_replica",
            name=name,
        )

    def _check_shape(self, shape):
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(
                f"{type(self).__name__} expects inputs of rank >= 2 (..., embedding_dim="
                f"{self.embedding_dim}); got shape {shape}"
            )
        if shape[-1] != self.embedding_dim:
            raise ValueError(
                f"{type(self).__name__} expects inputs whose last axis is embedding_dim="
                f"{self.embedding_dim}; got shape {shape}"
            )

    def _search_space(self, inputs):
        """`(z, valid)`: the (N, code size) vectors searched, and which of them are finite.

        `z` is projected (factorized codes), cast to the statistics' dtype and, for cosine,
        l2-normalised. A row is invalid when its input is non-finite or its projection or
        squared norm overflows.
        """
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        if "float" not in dtype:
            raise ValueError(
                f"{type(self).__name__} expects floating-point inputs; got dtype {dtype}"
            )
        self._check_shape(inputs.shape)
        if not self.built:
            self.build(inputs.shape)
        flat = ops.reshape(inputs, (-1, self.embedding_dim))
        if self.codebook_dim is not None:
            flat = self.project_in(flat)
        z = ops.cast(flat, self._stats_dtype)
        if self.distance != "cosine":
            return z, ops.all(ops.isfinite(z), axis=1)
        # A NaN or inf anywhere in a row makes its squared norm non-finite, as an overflow
        # does, so one test covers both, and the norm is reused by the normalisation.
        square_norm = ops.sum(ops.square(z), axis=1, keepdims=True)
        return _l2_normalize(z, square_norm), ops.isfinite(square_norm[:, 0])

    def _codebook_value(self):
        """The codebook as stored: the variable plus, for a learned one, `codebook_offset`."""
        codebook = ops.convert_to_tensor(self.codebook)
        if self._codebook_trainable:
            codebook = codebook + ops.convert_to_tensor(self.codebook_offset)
        return codebook

    def _write_codebook(self, values):
        """Makes `values` the stored codebook, also inside JAX's stateless training steps."""
        if self._codebook_trainable and in_stateless_scope():
            learned = ops.stop_gradient(ops.convert_to_tensor(self.codebook))
            self.codebook_offset.assign(values - learned)
            return
        self.codebook.assign(values)
        if self._codebook_trainable:
            self.codebook_offset.assign(ops.zeros_like(values))

    def get_codebook(self):
        """The codes searched, (num_embeddings, code size): unit vectors for cosine codes.

        Read this rather than the `codebook` variable: after training under JAX's stateless
        steps, a learned codebook's k-means and restarts sit in `codebook_offset`.
        """
        if not self.built:
            self.build((None, self.embedding_dim))
        return self._codes()

    def _codes(self):
        """The codebook as searched: the stored codes, l2-normalised for cosine codes."""
        codebook = self._codebook_value()
        return _l2_normalize(codebook) if self.distance == "cosine" else codebook

    def _score_operands(self, z, codes, doubled=False):
        """`(lhs, rhs)` whose product `lhs rhs^T` has the nearest code as each row's argmin.

        The scores are `0.5 |e|^2 - z.e`, the squared distance up to a per-row constant, for
        cosine codes too: for unit codes they are `-z.e` plus a constant, the same ranking,
        and one form keeps the distances one addition away for both. The norms ride in the
        matmul as one more column, `[z, 1] [-e, 0.5 |e|^2]^T`: a separate subtraction would
        be one more pass over the (N, K) scores, 10-40% of the search's time on CPU. With
        `doubled`, the scores are twice these: scaling by a power of two rounds nothing, so
        the argmin is the same, and the squared distances are one addition away
        (`_distances`) instead of a multiplication and an addition.
        """
        scale = 2.0 if doubled else 1.0
        norms = ops.sum(ops.square(codes), axis=1, keepdims=True)
        ones = ops.ones_like(z[:, :1])
        rhs = ops.concatenate([-scale * codes, (0.5 * scale) * norms], axis=1)
        return ops.concatenate([z, ones], axis=1), rhs

    def _distances(self, z, doubled_scores, valid):
        """Squared L2 distances in the search space (`2 - 2 cos` for unit vectors), NaN on the
        rows that are not `valid`, from the doubled scores of `_score_operands`.

        The NaN rides in the per-row term, so the (N, K) matrix is passed over once.
        """
        rows = ops.where(valid, ops.sum(ops.square(z), axis=1), float("nan"))
        return rows[:, None] + doubled_scores

    def _nearest(self, z, codes, return_scores=False):
        """Index of each row's nearest code, searching `_SEARCH_CHUNK` codes at a time.

        The same indices as the argmin of the scores (`_score_operands`) over the whole
        codebook (ties go to the lowest index), without an (N, K) matrix: at N = K = 8192
        that matrix is 256 MiB, and allocating and page-faulting it anew each step cost as much
        as the matmul itself. Under XLA the whole blocks run as one loop (`_looped_blocks`).
        With `return_scores`, also the (N, K) scores, doubled (`_score_operands`) and joined from
        the blocks already computed, so that the distances cost no second matmul.
        """
        num_codes = codes.shape[0]
        lhs, rhs = self._score_operands(z, codes, doubled=return_scores)
        if num_codes <= _SEARCH_CHUNK:
            if not return_scores and _row_chunked():
                return _chunked_rows_argmin(lhs, ops.transpose(rhs))
            scores = ops.matmul(lhs, ops.transpose(rhs))
            indices, _ = _row_argmin(scores)
            return (indices, scores) if return_scores else indices
        best = None
        blocks = []
        looped = 0  # codes searched by `_looped_blocks`; the rest block by block below
        if _xla_compiled() and num_codes >= 2 * _SEARCH_CHUNK:
            looped = (num_codes // _SEARCH_CHUNK) * _SEARCH_CHUNK
            best, scores = _looped_blocks(lhs, rhs[:looped], return_scores)
            if return_scores:
                blocks.append(scores)
        for start in range(looped, num_codes, _SEARCH_CHUNK):
            scores = ops.matmul(lhs, ops.transpose(rhs[start : start + _SEARCH_CHUNK]))
            if return_scores:
                blocks.append(scores)
            local, chunk_best = _row_argmin(scores)
            best = _better_block(best, chunk_best, local + start)
        best_indices = best[1]
        if return_scores:
            return best_indices, ops.concatenate(blocks, axis=1)
        return best_indices

    def encode(self, inputs):
        """Index of the nearest code for each vector: int32, `inputs.shape[:-1]`.

        Non-finite vectors get code 0, as in `call`.
        """
        z, valid = self._search_space(inputs)
        finite_z = ops.where(valid[:, None], z, ops.zeros_like(z))
        indices = ops.where(valid, self._nearest(finite_z, self._codes()), 0)
        return ops.reshape(indices, ops.shape(inputs)[:-1])

    def decode(self, indices):
        """Vectors for integer `indices`: shape `indices.shape + (embedding_dim,)`.

        The codes themselves (unit vectors for cosine), through `project_out` for factorized
        codes.
        """
        if not self.built:
            self.build((None, self.embedding_dim))
        vectors = ops.take(self._codes(), ops.cast(indices, "int32"), axis=0)
        if self.codebook_dim is not None:
            vectors = self.project_out(vectors)
        return vectors

    def set_codebook(self, values):
        """Replaces the codebook by `values` (num_embeddings, code size) and marks k-means done.

        Cosine codes are stored l2-normalised. The EMA quantizer also rescales its sums, so
        that its next update starts from these values.
        """
        if not self.built:
            self.build((None, self.embedding_dim))
        values = ops.convert_to_tensor(values)
        expected = (self.num_embeddings, self._code_dim)
        if tuple(values.shape) != expected:
            size = "codebook_dim" if self.codebook_dim is not None else "embedding_dim"
            raise ValueError(
                f"{type(self).__name__}.set_codebook expects values of shape (num_embeddings="
                f"{self.num_embeddings}, {size}={self._code_dim}); got shape {tuple(values.shape)}"
            )
        values = ops.cast(values, self.codebook.dtype)
        if self.distance == "cosine":
            values = _l2_normalize(values)
        self._write_codebook(values)
        self.initialized.assign(ops.ones(self.initialized.shape, self.initialized.dtype))

    def call(self, inputs, training=False, return_info=False):
        z, valid = self._search_space(inputs)
        num_vectors = ops.shape(z)[0]
        # Rows with a NaN or inf get code 0 and count nowhere, and a batch holding any such row
        # changes no statistic. The search itself sees zeros there: what argmin returns for a
        # NaN row differs between CPUs (AVX2 against AVX-512) and between XLA and not.
        finite_z = ops.where(valid[:, None], z, ops.zeros_like(z))
        if training and self.kmeans_init:
            self._maybe_kmeans_init(finite_z, num_vectors, ops.all(valid))
        # Searched, and the distances computed, before any update of the codebook (`codebook`
        # is the variable itself on TensorFlow, not a snapshot).
        codes = self._codes()
        if return_info:
            nearest, scores = self._nearest(finite_z, codes, return_scores=True)
            distances = self._distances(finite_z, scores, valid)
        else:
            nearest = self._nearest(finite_z, codes)
        indices = ops.where(valid, nearest, 0)
        quantized = ops.take(codes, indices, axis=0)

        count = ops.maximum(ops.cast(num_vectors, z.dtype), 1.0) * self._code_dim
        commitment_loss = ops.sum(ops.square(ops.stop_gradient(quantized) - z)) / count
        codebook_loss = ops.sum(ops.square(quantized - ops.stop_gradient(z))) / count
        loss = self._loss(codebook_loss, commitment_loss)
        self.add_loss(loss)

        counts = ops.segment_sum(
            ops.cast(valid, z.dtype), indices, num_segments=self.num_embeddings
        )
        if training:
            num_invalid = ops.sum(1.0 - ops.cast(valid, z.dtype))
            self._update_codebook(finite_z, indices, counts, num_vectors, num_invalid)

        outputs = z + ops.stop_gradient(quantized - z)  # straight-through estimator
        if self.gradient == "rotation":
            # The same values, bit for bit (the term added is exactly 0), and the rotation's
            # Jacobian backwards.
            rotation = _rotation_term(finite_z, ops.stop_gradient(quantized))
            outputs = ops.stop_gradient(outputs) + rotation
        if self.codebook_dim is not None:
            outputs = self.project_out(outputs)
        outputs = ops.reshape(outputs, ops.shape(inputs))
        outputs = ops.cast(outputs, self.compute_dtype)
        if not return_info:
            return outputs
        counts = ops.cast(counts, "float32")
        probs = counts / ops.maximum(ops.sum(counts), 1.0)
        leading = tuple(ops.shape(inputs)[:-1])
        return {
            "quantized": outputs,
            "indices": ops.reshape(indices, leading),
            "loss": loss,
            "counts": counts[None, :],
            "perplexity": ops.exp(-ops.sum(probs * ops.log(probs + 1e-10))),  # Sonnet's, per batch
            "usage": ops.mean(ops.cast(counts > 0, "float32")),
            "distances": ops.reshape(distances, leading + (self.num_embeddings,)),
        }

    def _loss(self, codebook_loss, commitment_loss):
        return codebook_loss + self.commitment_cost * commitment_loss

    def _update_codebook(self, flat, indices, counts, num_vectors, num_invalid):
        """Tracks code usage and restarts dead codes; the EMA quantizer also learns here.

        `flat` holds the search-space vectors with the non-finite rows zeroed; `num_invalid`
        counts those rows. The count is summed over replicas with the statistics, so that a NaN
        on one replica stops the update on all of them and the replicas' copies stay equal.
        """
        counts, num_invalid = cross_replica_sum(counts, num_invalid)
        finite = ops.logical_and(num_invalid == 0, ops.all(ops.isfinite(counts)))
        decay = self._stats_decay
        old_size = ops.convert_to_tensor(self.cluster_size)
        cluster_size = ops.where(finite, decay * old_size + (1.0 - decay) * counts, old_size)
        self._assign_stats(cluster_size, None, flat, num_vectors, finite)

    def _assign_stats(self, cluster_size, summed_vectors, flat, num_vectors, finite=True):
        """Writes new statistics, after replacing dead codes by finite vectors of this batch."""
        codebook = self._codebook_value()
        if summed_vectors is not None:
            means = _smoothed_means(cluster_size, summed_vectors, self.epsilon)
            if self.distance == "cosine":
                means = _l2_normalize(means)  # the EMA means, back on the unit sphere
            # Kept bit for bit on a skipped batch: recomputing the means could round otherwise.
            codebook = ops.where(finite, means, codebook)
        if self.dead_code_threshold > 0:
            rows = keras.random.randint(
                (self.num_embeddings,), 0, ops.maximum(num_vectors, 1), seed=self.seed_generator
            )
            # A zero row past the batch keeps the gather in range when the batch is empty.
            padded = ops.concatenate([flat, ops.zeros((1, self._code_dim), flat.dtype)], axis=0)
            fresh = ops.take(padded, rows, axis=0)
            # Never restart from an empty or non-finite batch, nor with a non-finite vector.
            dead = ops.logical_and(cluster_size < self.dead_code_threshold, num_vectors > 0)
            dead = ops.logical_and(dead, ops.all(ops.isfinite(fresh), axis=1))
            dead = ops.logical_and(dead, finite)
            codebook = ops.where(dead[:, None], fresh, codebook)
            cluster_size = ops.where(dead, self.dead_code_threshold, cluster_size)
            if summed_vectors is not None:
                summed_vectors = ops.where(
                    dead[:, None], fresh * self.dead_code_threshold, summed_vectors
                )
        if summed_vectors is not None or self.dead_code_threshold > 0:
            self._write_codebook(codebook)
        self.cluster_size.assign(cluster_size)
        if summed_vectors is not None:
            self.ema_dw.assign(summed_vectors)

    def _maybe_kmeans_init(self, flat, num_vectors, finite):
        """On the first non-empty, finite training batch, replaces the codebook by k-means."""
        # Variables are read into tensors before any op: JAX (0.7 and later) refuses a Keras
        # variable as a `jnp.where` operand ("Triggering __jax_array__() during
        # abstractification is no longer supported").
        initialized = ops.convert_to_tensor(self.initialized)
        run = ops.logical_and(initialized < 0.5, num_vectors > 0)
        run = ops.logical_and(run, finite)  # k-means of NaNs is NaN
        current = self._codebook_value()
        # The seeds are drawn outside the branch: a SeedGenerator advanced inside `jax.lax.cond`
        # would leak the branch's tracer into its state variable.
        rows = keras.random.randint(
            (self.num_embeddings,), 0, ops.maximum(num_vectors, 1), seed=self.seed_generator
        )
        centroids = ops.cond(run, lambda: self._kmeans(flat, rows), lambda: current)
        self._write_codebook(centroids)
        if hasattr(self, "ema_dw"):
            # One pseudo-observation of each centroid, as at construction.
            self.ema_dw.assign(ops.where(run, centroids, ops.convert_to_tensor(self.ema_dw)))
            self.cluster_size.assign(
                ops.where(run, 1.0, ops.convert_to_tensor(self.cluster_size))
            )
        self.initialized.assign(ops.where(run, 1.0, initialized))

    def _kmeans(self, flat, rows):
        """Lloyd's k-means in the search space (spherical k-means for cosine codes), started
        from the batch rows `rows`."""
        # A zero row past the batch keeps the gather in range (and XLA's shapes known) when
        # the batch is empty; k-means then does not run, but XLA compiles it all the same.
        padded = ops.concatenate([flat, ops.zeros((1, self._code_dim), flat.dtype)], axis=0)
        centroids = ops.take(padded, rows, axis=0)

        def step(_, centroids):
            indices = self._nearest(flat, centroids)
            sums = ops.segment_sum(flat, indices, num_segments=self.num_embeddings)
            counts = ops.segment_sum(
                ops.ones_like(indices, dtype=flat.dtype), indices, num_segments=self.num_embeddings
            )
            # A centroid that attracts nothing keeps its place rather than dividing by zero.
            means = sums / ops.maximum(counts, 1.0)[:, None]
            if self.distance == "cosine":
                means = _l2_normalize(means)
            return ops.where(counts[:, None] > 0, means, centroids)

        return ops.fori_loop(0, self.kmeans_iters, step, centroids)

    def get_config(self):
        config = super().get_config()
        config.pop("autocast", None)
        config.update(
            {
                "num_embeddings": self.num_embeddings,
                "embedding_dim": self.embedding_dim,
                "commitment_cost": self.commitment_cost,
                "distance": self.distance,
                "codebook_dim": self.codebook_dim,
                "gradient": self.gradient,
                "kmeans_init": self.kmeans_init,
                "kmeans_iters": self.kmeans_iters,
                "dead_code_threshold": self.dead_code_threshold,
                "seed": self.seed,
            }
        )
        return config



@keras.saving.register_keras_serializable(package="tfvq")
class VectorQuantizer(_VectorQuantizerBase):
    """Nearest-codebook quantization with a learned codebook and a straight-through gradient.

    The VQ-VAE bottleneck of van den Oord et al. 2017, "Neural Discrete Representation Learning"
    (eq. 3). Each input vector is replaced by its nearest codebook vector (squared L2, computed
    with one matmul, never an (N, K, D) tensor). The layer adds the loss
    `mean((sg[x] - e)^2) + commitment_cost * mean((x - sg[e])^2)`: the codebook learns from the
    first term only, the encoder from the straight-through gradient plus the commitment term.
    Outputs, loss, perplexity and indices equal DeepMind Sonnet 2's `snt.nets.VectorQuantizer`
    for the same inputs and codebook; Sonnet stores the codebook transposed, as (D, K), so
    `codebook` here is Sonnet's `embeddings` transposed.

    Three options of ViT-VQGAN and later work change the search space and the gradient. With
    `distance="cosine"` inputs and codes are l2-normalised first (the codebook variable stays
    free; its normalised rows are the codes), and with `codebook_dim` a learned projection
    takes the inputs to small codes and back. `gradient="rotation"` keeps the forward values
    and changes only the gradient that reaches the inputs.

    The codes are `get_codebook()`. That is the `codebook` variable, except after training
    under JAX's stateless steps (`stateless_call`, Keras' JAX `fit`), which keep no write to a
    trainable variable: there k-means and restarts go to the non-trainable `codebook_offset`,
    which `get_codebook()` adds.

    Args:
        num_embeddings: K, the number of codes.
        embedding_dim: D, the size of each input vector; the inputs' last axis.
        commitment_cost: beta, the weight of the commitment loss (0.25 in the paper).
        usage_decay: decay of the per-code usage EMA (`cluster_size`) used for monitoring and
            dead-code restarts.
        distance: "l2" (squared Euclidean) or "cosine": inputs and codes l2-normalised, the
            search by cosine similarity, and the output, the losses and the gradient on the
            normalised vectors (Yu et al. 2021, ViT-VQGAN, https://arxiv.org/abs/2110.04627).
        codebook_dim: None, or the size d of factorized codes, 1 <= d <= embedding_dim: a
            learned Dense projection `embedding_dim -> d` before the search and `d ->
            embedding_dim` after it (ViT-VQGAN). The codebook is (K, d), the losses are
            measured in d dimensions (after normalisation, for cosine), and `encode` / `decode`
            go through the projections.
        gradient: "straight_through" (the output's gradient reaches the inputs unchanged) or
            "rotation", the rotation trick (Fifty et al. 2024, https://arxiv.org/abs/2410.06424):
            the same output values, but backwards each vector e sees its code q as
            `sg(|q| / |e| * R) e`, with R the rotation taking e's direction onto q's,
            `R = I - 2 r r^T + 2 q^ e^T`, `r = (e^ + q^) / |e^ + q^|` (hats: unit vectors),
            applied with dot products, never as a (d, d) matrix. A vector with `|e| <= 1e-6`
            keeps the straight-through gradient; one opposite to its code is turned by pi in
            a plane through q.
        kmeans_init: initialise the codebook by k-means on the first training batch (spherical
            k-means for cosine codes).
        kmeans_iters: Lloyd iterations of that k-means.
        dead_code_threshold: codes whose usage EMA falls below this many vectors per batch are
            re-seeded from random vectors of the current batch (0 disables).
        seed: seed of the initializers and of the random choices.
        dtype: any floating policy. The codebook and its statistics are float32 (float64 for a
            "float64" layer), also under "mixed_float16"; the output is in the compute dtype.

    Call arguments:
        inputs: float tensor (..., embedding_dim).
        training: whether statistics (and k-means init / restarts) may change.
        return_info: return a dict instead of the quantized tensor: `quantized`, `indices`,
            `loss`, `counts` (float32 (1, K) histogram of this batch's codes, finite vectors
            only), `perplexity` (Sonnet's, of this batch), `usage` and `distances` (squared L2
            to every code in the search space; `2 - 2 cos` for cosine codes; NaN for
            non-finite vectors).

    Returns:
        The quantized tensor, shaped like `inputs`, or the dict above.

    Example:
    >>> q = VectorQuantizer(num_embeddings=16, embedding_dim=4)
    >>> y = q(keras.random.normal((2, 3, 3, 4)), training=True)
    >>> tuple(y.shape), len(q.losses)
    ((2, 3, 3, 4), 1)
    >>> q = VectorQuantizer(16, 8, distance="cosine", codebook_dim=2, gradient="rotation")
    >>> info = q(keras.random.normal((5, 8)), training=True, return_info=True)
    >>> tuple(info["quantized"].shape), tuple(q.codebook.shape), tuple(info["counts"].shape)
    ((5, 8), (16, 2), (1, 16))
    """

    def __init__(self, num_embeddings, embedding_dim, commitment_cost=0.25, usage_decay=0.99, **kwargs):
        super().__init__(num_embeddings, embedding_dim, commitment_cost=commitment_cost, **kwargs)
        _check_unit_interval("usage_decay", usage_decay, self)
        self.usage_decay = float(usage_decay)

    @property
    def _stats_decay(self):
        return self.usage_decay

    def get_config(self):
        return {**super().get_config(), "usage_decay": self.usage_decay}


@keras.saving.register_keras_serializable(package="tfvq")
class VectorQuantizerEMA(_VectorQuantizerBase):
    """Vector quantization whose codebook follows exponential moving averages of its clusters.

    Appendix A.1 of van den Oord et al. 2017 and Sonnet's `VectorQuantizerEMA`: with decay
    gamma, `N_i <- gamma N_i + (1 - gamma) n_i` and `m_i <- gamma m_i + (1 - gamma) sum_j x_ij`,
    then `e_i = m_i / N_i'` where `N_i'` is `N_i` with Laplace smoothing epsilon. The codebook
    gets no gradient; the loss is `commitment_cost * mean((x - sg[e])^2)`. Statistics change only
    with `training=True`, and under `tf.distribute` the counts and sums are summed over replicas
    first, so N replicas on a global batch reach the codebook one device reaches on it.
    Unlike Sonnet, whose bias-corrected averages set codes unused in the first batch to zero,
    each code starts with one pseudo-observation of its initial vector (`N_i = 1`,
    `m_i = e_i`), so unused codes keep a usable vector. A batch with any non-finite input
    vector (or statistics that overflow) leaves every statistic and the codebook unchanged, on
    every CPU and with or without XLA, so a NaN step cannot corrupt it; such vectors get code 0.

    With `distance="cosine"` the sums are of the normalised vectors and each mean is
    re-normalised, `e_i = m_i / |m_i|` (the smoothed size cancels but for empty clusters), as
    vector-quantize-pytorch's cosine codebook does; with `codebook_dim` the averages are of
    the projected vectors, so only the projections learn by gradient. `set_codebook` rescales
    the sums, `m_i = e_i N_i'`, so that the next update moves from the new codes.

    Args:
        num_embeddings: K, the number of codes.
        embedding_dim: D, the size of each input vector; the inputs' last axis.
        commitment_cost: beta, the weight of the commitment loss.
        decay: gamma in [0, 1], the EMA decay (0.99 in the paper).
        epsilon: Laplace smoothing of the cluster sizes.
        distance, codebook_dim, gradient, kmeans_init, kmeans_iters, dead_code_threshold,
            seed, dtype: as in `VectorQuantizer`.

    Call arguments:
        inputs, training, return_info: as in `VectorQuantizer`.

    Returns:
        The quantized tensor, shaped like `inputs`, or the info dict of `VectorQuantizer`.

    Example:
    >>> q = VectorQuantizerEMA(num_embeddings=16, embedding_dim=4, decay=0.9)
    >>> info = q(keras.random.normal((8, 4)), training=True, return_info=True)
    >>> tuple(info["indices"].shape)
    (8,)
    >>> q = VectorQuantizerEMA(16, 4, distance="cosine", gradient="rotation")
    >>> q.set_codebook(keras.random.normal((16, 4), seed=1))
    >>> y = q(keras.random.normal((8, 4)), training=True)
    >>> float(keras.ops.max(keras.ops.abs(keras.ops.norm(q.codebook, axis=1) - 1.0))) < 1e-5
    True
    """

    _codebook_trainable = False

    def __init__(self, num_embeddings, embedding_dim, commitment_cost=0.25, decay=0.99, epsilon=1e-5, **kwargs):
        super().__init__(num_embeddings, embedding_dim, commitment_cost=commitment_cost, **kwargs)
        _check_unit_interval("decay", decay, self)
        if epsilon < 0:
            raise ValueError(f"VectorQuantizerEMA expects epsilon >= 0; got {epsilon}")
        self.decay = float(decay)
        self.epsilon = float(epsilon)

    @property
    def _stats_decay(self):
        return self.decay

    def build(self, input_shape):
        super().build(input_shape)
        self.ema_dw = self._state_weight(
            (self.num_embeddings, self._code_dim),
            # A copy: on torch the codebook's tensor itself would become ema_dw's storage, and
            # every write to one would write the other.
            lambda shape, dtype=None: ops.copy(ops.convert_to_tensor(self.codebook)),
            "ema_dw",
        )

    def set_codebook(self, values):
        super().set_codebook(values)
        # Sums whose smoothed means are the new codes: without this the next update would
        # return to the old codebook's means.
        sizes = _smoothed_sizes(ops.convert_to_tensor(self.cluster_size), self.epsilon)
        self.ema_dw.assign(ops.convert_to_tensor(self.codebook) * sizes[:, None])

    def _loss(self, codebook_loss, commitment_loss):
        return self.commitment_cost * commitment_loss

    def _update_codebook(self, flat, indices, counts, num_vectors, num_invalid):
        summed = ops.segment_sum(flat, indices, num_segments=self.num_embeddings)
        counts, summed, num_invalid = cross_replica_sum(counts, summed, num_invalid)
        # Overflow to inf in the sums is checked too, not only non-finite inputs.
        finite = ops.logical_and(ops.all(ops.isfinite(counts)), ops.all(ops.isfinite(summed)))
        finite = ops.logical_and(finite, num_invalid == 0)
        decay = self.decay
        old_size = ops.convert_to_tensor(self.cluster_size)
        old_dw = ops.convert_to_tensor(self.ema_dw)
        cluster_size = ops.where(finite, decay * old_size + (1.0 - decay) * counts, old_size)
        ema_dw = ops.where(finite, decay * old_dw + (1.0 - decay) * summed, old_dw)
        self._assign_stats(cluster_size, ema_dw, flat, num_vectors, finite)

    def get_config(self):
        return {**super().get_config(), "decay": self.decay, "epsilon": self.epsilon}


# Codes searched per matmul in `_nearest`: an (N, 512) float32 block stays under glibc's 32 MiB
# mmap threshold up to N = 16384 vectors, so its memory is reused from step to step.
_SEARCH_CHUNK = 512

# Vectors searched per matmul by `_chunked_rows_argmin`: a (1024, 512) float32 block of scores
# (2 MiB) is read by the argmin while still in cache.
_ROW_CHUNK = 1024

# Columns per group in `_row_argmin`'s two-level search under XLA: 8, 16 and 32 time within
# 10% of each other there.
_ARGMIN_GROUP = 16

# Below this norm a vector has no direction to rotate: the rotation trick passes its gradient
# straight through (vector-quantize-pytorch clamps the norm at the same 1e-6 instead).
_ROTATION_MIN_NORM = 1e-6


def _argmin_rows(scores):
    """Index (int32) of each row's smallest score.

    On TensorFlow this is `tf.argmin` itself: `keras.ops.argmin` first rewrites -0.0 entries
    (a fix for flush-to-zero ties that cannot change which distance is smallest here) with five
    extra passes over the (N, K) score matrix, which doubled the layer's time at K = 8192.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.argmin(scores, axis=1, output_type=tf.int32)
    return ops.cast(ops.argmin(scores, axis=1), "int32")


def _row_argmin(scores):
    """`(index, minimum)` of each row of an (N, C) score block; ties go to the lowest index.

    Where XLA compiles the search (JAX always, TensorFlow under `jit_compile=True`), the block
    is read as groups of `_ARGMIN_GROUP` columns: a plain minimum per group, the argmin over
    the group minima, then the argmin inside the winning group alone. XLA's CPU backend turns
    a row argmin (a variadic reduce) into scalar code but a plain row minimum into vector code:
    8192 vectors searched against 8192 codes take 74 ms this way under XLA, 123 ms with a
    plain argmin under XLA, and 67 ms with `tf.argmin` without XLA (Intel Xeon, AVX-512, 2
    cores). Elsewhere the backend's own argmin is used: TensorFlow's kernel and torch's are
    vectorised already, and the grouped form's gathers cost more than they save there.
    """
    num_columns = scores.shape[1]
    group = _ARGMIN_GROUP
    if not _xla_compiled() or num_columns is None or num_columns % group:
        indices = _argmin_rows(scores)
        return indices, ops.take_along_axis(scores, indices[:, None], axis=1)[:, 0]
    groups = ops.reshape(scores, (-1, num_columns // group, group))
    group_minima = ops.min(groups, axis=2)
    best_group = _argmin_rows(group_minima)
    minimum = ops.take_along_axis(group_minima, best_group[:, None], axis=1)[:, 0]
    members = ops.take_along_axis(groups, best_group[:, None, None], axis=1)[:, 0]
    return best_group * group + _argmin_rows(members), minimum


def _better_block(best, block_minimum, block_indices):
    """`(minimum, index)` per row over the blocks searched so far and this one; `best` is None
    before the first block. Strict: an earlier block wins a tie, as the lowest index must."""
    if best is None:
        return block_minimum, block_indices
    better = block_minimum < best[0]
    return (ops.where(better, block_minimum, best[0]),
            ops.where(better, block_indices, best[1]))


def _looped_blocks(lhs, rhs, return_scores):
    """`_nearest`'s blocks as one loop, for XLA: `((minimum, index), scores)`, the best code
    per row of `lhs` over the `_SEARCH_CHUNK`-row blocks of `rhs` (a whole number of them),
    and with `return_scores` the (N, K) scores, written block by block into one buffer
    (None without).

    Unrolled, as `_nearest` writes them elsewhere, XLA's CPU backend compiles each block's
    matmul on a slice of the codebook into slower code: 8192 vectors against 2048 codes took
    73 ms that way under XLA against 28 ms as this loop, and 34 ms without XLA (AMD EPYC,
    AVX2, 2 cores; on AVX-512 the unrolled blocks were not slower). The loop runs on
    operands without a gradient (TensorFlow has none for the buffer's in-place update), and
    the scores get the matmul's own gradient back from `_with_matmul_gradient`.
    """
    num_blocks = rhs.shape[0] // _SEARCH_CHUNK
    num_rows = ops.shape(lhs)[0]
    lhs_value, rhs_value = ops.stop_gradient(lhs), ops.stop_gradient(rhs)

    def body(block, state):
        start = block * _SEARCH_CHUNK
        scores = ops.matmul(lhs_value, ops.transpose(
            ops.slice(rhs_value, (start, 0), (_SEARCH_CHUNK, rhs.shape[1]))))
        local, block_minimum = _row_argmin(scores)
        best = _better_block(state[:2], block_minimum, local + start)
        if return_scores:
            return best + (ops.slice_update(state[2], (0, start), scores),)
        return best

    state = (ops.full((num_rows,), float("inf"), dtype=lhs.dtype),
             ops.zeros((num_rows,), dtype="int32"))
    if return_scores:
        state += (ops.zeros((num_rows, rhs.shape[0]), dtype=lhs.dtype),)
    state = ops.fori_loop(0, num_blocks, body, state)  # Python bounds: a scan under JAX
    if not return_scores:
        return state, None
    return state[:2], _with_matmul_gradient(state[2], lhs, rhs)


def _with_matmul_gradient(scores, lhs, rhs):
    """`scores`, the value of `lhs @ rhs^T` computed without a gradient, with that matmul's
    gradient: `g @ rhs` for `lhs` and `g^T @ lhs` for `rhs`."""

    @ops.custom_gradient
    def attach(scores, lhs, rhs):
        def grad(*args, upstream=None):
            if upstream is None:  # the backends pass it by position or by name
                (upstream,) = args
            return (ops.zeros_like(upstream), ops.matmul(upstream, rhs),
                    ops.matmul(ops.transpose(upstream), lhs))

        return scores, grad

    return attach(scores, lhs, rhs)


def _row_chunked():
    """Whether `_nearest` searches a one-block codebook `_ROW_CHUNK` vectors at a time.

    Measured, not assumed (`benchmarks/search_rows.py`, Intel Xeon, AVX-512, 2 cores, K =
    512): with TensorFlow's own kernels the argmin reads each block of scores back from cache,
    and `encode` of 8192 vectors takes 5.9 ms against 8.4 ms in one block (2.4 against 2.8 ms
    for 2048); under XLA, one block is the faster form (the loop of blocks was slower there in
    a probe), and torch would run the blocks as a Python loop, so both keep one block. With
    `return_scores` (`return_info=True`, as the models train) the whole score matrix is needed
    for the distances, so that search is one block too.
    """
    return keras.backend.backend() == "tensorflow" and not _xla_compiled()


def _chunked_rows_argmin(lhs, rhs_t):
    """Row argmin of `lhs @ rhs_t`, `_ROW_CHUNK` rows per matmul: the same indices as one
    matmul and `_argmin_rows`, since each row's argmin is its own. TensorFlow only
    (`_row_chunked`): `tf.map_fn` with a declared output, because `keras.ops.map` reads the
    first block to learn it and fails on fewer than `_ROW_CHUNK` rows."""
    import tensorflow as tf

    num_rows = ops.shape(lhs)[0]
    full = (num_rows // _ROW_CHUNK) * _ROW_CHUNK
    blocks = ops.reshape(lhs[:full], (-1, _ROW_CHUNK, lhs.shape[1]))
    head = tf.map_fn(lambda block: _argmin_rows(ops.matmul(block, rhs_t)), blocks,
                     fn_output_signature=tf.int32)
    tail = _argmin_rows(ops.matmul(lhs[full:], rhs_t))
    return ops.concatenate([ops.reshape(head, (-1,)), tail], axis=0)


def _xla_compiled():
    """Whether the ops being built now will be compiled by XLA.

    JAX compiles everything with XLA. TensorFlow enters an XLA control-flow context while it
    traces a `tf.function(jit_compile=True)` (Keras' `jit_compile=True` included) and has no
    public way to ask for it, so this reads TensorFlow's own internal check, and says False if
    that ever moves: the search is then the plain argmin, correct and only slower under XLA.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        return True
    if backend != "tensorflow":
        return False
    try:
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - a TensorFlow that moved its internals
        return False
    return bool(control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph()))


def _l2_normalize(x, square_norm=None):
    """Rows scaled to unit L2 norm; zero rows stay zero, with a finite gradient there.

    Not `keras.ops.normalize`: its `minimum(rsqrt(s), 1 / eps)` has a NaN gradient at s = 0.
    The gradient is written by hand, `(g - y (g.y)) / |x|` (`g / eps` below the clamp, as the
    clamped formula's own), because autodiff of the division takes about twice as many passes
    over the (N, D) rows: measured, the cosine quantizer's training step spends them.

    Args:
        x: (..., D) floating rows.
        square_norm: `sum(x**2, axis=-1, keepdims=True)` where the caller has it already; it
            carries no gradient.

    Returns:
        `x / max(|x|, 1e-12)`, shaped like `x`.
    """
    if square_norm is None:
        square_norm = ops.sum(ops.square(x), axis=-1, keepdims=True)
    return _unit_rows(x, ops.stop_gradient(square_norm))


@ops.custom_gradient
def _unit_rows(x, square_norm):
    inv = ops.rsqrt(ops.maximum(square_norm, 1e-24))
    y = x * inv

    def grad(*args, upstream=None):
        if upstream is None:  # the backends pass it by position or by name
            (upstream,) = args
        along = ops.sum(upstream * y, axis=-1, keepdims=True)
        # Below the clamp the norm is a constant, so the gradient is the scaling alone; the
        # mask is on the (N, 1) projections, not on the (N, D) rows.
        along = ops.where(square_norm < 1e-24, ops.zeros_like(along), along)
        return (upstream - y * along) * inv, ops.zeros_like(square_norm)

    return y, grad


def _norm(x):
    return ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True))


def _rotation_term(e, q):
    """Zeros shaped like `e`, whose gradient is the rotation trick's: `sg(|q| / |e| R)^T g`.

    `R = I - 2 r r^T + 2 q^ e^T` as in `_rotate_to`. Written out, `R^T g` is `g + a e + b q`
    with two numbers a, b per row, made of the dot products e.q, e.g and q.g and the norms, so
    a hand-written gradient needs no (N, D) intermediates: autodiff of `_rotate_to` added
    7.8-10.7 ms to the EMA layer's training step at K = 512 on (128, 8, 8, 64) inputs, this
    adds 2.9-3.0 ms (12.8-14.5 ms straight-through; two runs on an AMD EPYC with AVX2, 2
    cores).

    Through `r = (e^ + q^) / |e^ + q^|` and `|e^ + q^|^2 = 2 + 2 e^.q^` the closed form loses
    precision as e^ nears -q^, so a batch with any row where `2 + 2 e^.q^ < 1/2` (an angle
    over about 139 degrees) takes `_rotate_to` instead, which also handles e^ = -q^. A nearest
    code at such an angle needs an input much shorter than the codes around it, and in many
    dimensions it is rare; a batch of 2-4-dimensional factorized codes may hold one, and
    costs then what autodiff costs.

    Args:
        e: (N, D) inputs, which receive the gradient.
        q: (N, D) codes, carrying no gradient.

    Returns:
        (N, D) zeros in `e`'s dtype.
    """
    e_square = ops.sum(ops.square(e), axis=-1, keepdims=True)
    q_square = ops.sum(ops.square(q), axis=-1, keepdims=True)
    dot = ops.sum(e * q, axis=-1, keepdims=True)
    inv_e = ops.rsqrt(ops.maximum(e_square, _ROTATION_MIN_NORM**2))
    inv_q = ops.rsqrt(ops.maximum(q_square, 1e-30))  # a zero code has q^ = 0
    # |e^ + q^|^2, with |q^| = 0 for a zero code.
    bisector_square = (
        e_square * ops.square(inv_e) + q_square * ops.square(inv_q) + 2.0 * dot * inv_e * inv_q
    )
    # A row whose squared norm or dot product overflows is passed straight through, as a tiny
    # one is, rather than given a NaN gradient.
    moved = ops.logical_and(e_square > _ROTATION_MIN_NORM**2, ops.isfinite(bisector_square))
    wide = ops.logical_and(moved, bisector_square < 0.5)

    def exact():
        rotated = _rotate_to(e, q)
        return rotated - ops.stop_gradient(rotated)

    def fast():
        scale = ops.where(moved, ops.sqrt(q_square) * inv_e, ops.ones_like(inv_e))
        zero = ops.zeros_like(scale)
        # Per row: the scale, and the factors of e and q in R^T g; zero for the rows passed
        # straight through.
        rows = ops.concatenate(
            [
                scale,
                ops.where(moved, scale * inv_e, zero),
                ops.where(moved, scale * inv_q, zero),
                inv_e,
                inv_q,
                ops.where(moved, 1.0 / ops.maximum(bisector_square, 0.5), zero),
            ],
            axis=-1,
        )
        return _rotation_zeros(e, q, ops.stop_gradient(rows))

    return ops.cond(ops.any(wide), exact, fast)


@ops.custom_gradient
def _rotation_zeros(e, q, rows):
    def grad(*args, upstream=None):
        if upstream is None:  # the backends pass it by position or by name
            (upstream,) = args
        scale, e_factor, q_factor, inv_e, inv_q, inv_bisector = (
            rows[:, i : i + 1] for i in range(6)
        )
        # R^T g = g - 2 r (r.g) + 2 e^ (q^.g) = g + e^ (2 q^.g - c) - q^ c, with
        # c = 2 (e^ + q^).g / |e^ + q^|^2.
        along_e = ops.sum(e * upstream, axis=-1, keepdims=True) * inv_e
        along_q = ops.sum(q * upstream, axis=-1, keepdims=True) * inv_q
        c = 2.0 * (along_e + along_q) * inv_bisector
        return (
            scale * upstream + (e_factor * (2.0 * along_q - c)) * e - (q_factor * c) * q,
            ops.zeros_like(q),
            ops.zeros_like(rows),
        )

    return ops.zeros_like(e), grad


def _rotate_to(e, q):
    """Rows of `e` rotated and rescaled onto the rows of `q`, the map held constant.

    Fifty et al. 2024, section 4.2: `sg(|q| / |e|) (e - 2 r (r.e) + 2 q^ (e^.e))`, which is
    `sg(|q| / |e| R) e` with `R = I - 2 r r^T + 2 q^ e^T` and `r = (e^ + q^) / |e^ + q^|`; its
    value is q (up to rounding) and its Jacobian `|q| / |e| R`. When e^ = -q^ no such r exists,
    and r is taken orthogonal to q^ (R then turns e^ by pi onto q^); in one dimension there is
    none, r = 0 and R = -1. Rows with `|e| <= _ROTATION_MIN_NORM` return `e` (identity
    Jacobian). `q` should carry no gradient.
    """
    tiny = 1e-30
    e_norm = _norm(e)
    q_norm = _norm(q)
    e_hat = ops.stop_gradient(e / ops.maximum(e_norm, _ROTATION_MIN_NORM))
    q_hat = ops.stop_gradient(q / ops.maximum(q_norm, tiny))
    bisector = e_hat + q_hat
    bisector_norm = _norm(bisector)
    # The unit axis along which q^ is smallest, made orthogonal to q^: |axis - q_i q^| >= the
    # square root of 1 - 1/d, away from zero for d >= 2.
    axis = ops.one_hot(_argmin_rows(ops.abs(q_hat)), ops.shape(q_hat)[1], dtype=q_hat.dtype)
    orthogonal = axis - ops.sum(axis * q_hat, axis=1, keepdims=True) * q_hat
    orthogonal = orthogonal / ops.maximum(_norm(orthogonal), tiny)
    # Below sqrt(machine epsilon) the bisector's direction is mostly rounding error.
    opposite = bisector_norm <= float(np.finfo(keras.backend.standardize_dtype(e.dtype)).eps) ** 0.5
    r = ops.stop_gradient(
        ops.where(opposite, orthogonal, bisector / ops.maximum(bisector_norm, tiny))
    )
    rotated = (
        e
        - 2.0 * r * ops.sum(r * e, axis=1, keepdims=True)
        + 2.0 * q_hat * ops.sum(e_hat * e, axis=1, keepdims=True)
    )
    scale = ops.stop_gradient(q_norm / ops.maximum(e_norm, _ROTATION_MIN_NORM))
    # A 0/1 mask, not `where`: the gradient would keep the boolean mask, and TensorFlow's type
    # inference warns when the two branches of `_rotation_term`'s cond keep different dtypes.
    moved = ops.cast(e_norm > _ROTATION_MIN_NORM, e.dtype)
    return moved * (scale * rotated) + (1.0 - moved) * e


def _smoothed_sizes(cluster_size, epsilon):
    """Laplace-smoothed cluster sizes with the same total, so that no cluster has size 0."""
    total = ops.sum(cluster_size)
    num_codes = ops.cast(ops.shape(cluster_size)[0], cluster_size.dtype)
    return (cluster_size + epsilon) / (total + num_codes * epsilon) * total


def _smoothed_means(cluster_size, summed_vectors, epsilon):
    """Cluster means with Laplace-smoothed sizes, so that an empty cluster never divides by 0."""
    return summed_vectors / _smoothed_sizes(cluster_size, epsilon)[:, None]


def _check_unit_interval(name, value, layer):
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{type(layer).__name__} expects {name} in [0, 1]; got {value}")
