"""Vector quantizers: nearest-codebook lookup with a straight-through gradient."""

import keras
from keras import ops

from tfvq.layers._distribute import cross_replica_sum
from tfvq.layers.quantizer import Quantizer
from tfvq.utils.checks import check_int


class _VectorQuantizerBase(Quantizer):
    """Lookup, losses, codebook statistics and health tools shared by both quantizers.

    Subclasses say how the codebook learns: `_codebook_trainable` and `_update_codebook`.
    """

    _codebook_trainable = True

    def __init__(
        self,
        num_embeddings,
        embedding_dim,
        commitment_cost=0.25,
        kmeans_init=False,  # codebook from k-means on the first training batch (Łańcucki et al. 2020)
        kmeans_iters=10,
        dead_code_threshold=0.0,  # re-seed codes whose EMA usage falls below this (Dhariwal et al. 2020)
        seed=None,
        **kwargs,
    ):
        # Distances and codebook statistics stay float32 under mixed precision: the layer casts
        # itself instead of letting Keras cast inputs and variables to float16.
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        check_int(self, "num_embeddings", num_embeddings)
        check_int(self, "embedding_dim", embedding_dim)
        if commitment_cost < 0:
            raise ValueError(
                f"{type(self).__name__} expects commitment_cost >= 0; got {commitment_cost}"
            )
        if dead_code_threshold < 0:
            raise ValueError(
                f"{type(self).__name__} expects dead_code_threshold >= 0; got {dead_code_threshold}"
            )
        check_int(self, "kmeans_iters", kmeans_iters)
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.commitment_cost = float(commitment_cost)
        self.kmeans_init = bool(kmeans_init)
        self.kmeans_iters = int(kmeans_iters)
        self.dead_code_threshold = float(dead_code_threshold)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def codebook_size(self):
        return self.num_embeddings

    @property
    def _stats_decay(self):
        raise NotImplementedError

    def build(self, input_shape):
        self._check_shape(input_shape)
        # Uniform in +-sqrt(3 / embedding_dim): Sonnet's VarianceScaling on its (D, K) codebook.
        initializer = keras.initializers.VarianceScaling(
            1.0, mode="fan_out", distribution="uniform", seed=self.seed
        )
        # "only_first_replica": every replica computes the same update from all-reduced
        # statistics, and the first replica's value is the one kept.
        self.codebook = self.add_weight(
            shape=(self.num_embeddings, self.embedding_dim),
            initializer=initializer,
            trainable=self._codebook_trainable,
            autocast=False,
            aggregation="only_first_replica",
            name="codebook",
        )
        # EMA of how many vectors each code receives per batch; starts at one pseudo-observation
        # per code so that an unused code keeps its vector instead of collapsing to zero.
        self.cluster_size = self._state_weight((self.num_embeddings,), "ones", "cluster_size")
        self.initialized = self._state_weight((), "zeros" if self.kmeans_init else "ones", "initialized")

    def _state_weight(self, shape, initializer, name):
        return self.add_weight(
            shape=shape,
            initializer=initializer,
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

    def _flat(self, inputs):
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        if "float" not in dtype:
            raise ValueError(
                f"{type(self).__name__} expects floating-point inputs; got dtype {dtype}"
            )
        self._check_shape(inputs.shape)
        return ops.reshape(ops.cast(inputs, "float32"), (-1, self.embedding_dim))

    def _scores(self, flat, codebook):
        """`0.5 * |e|^2 - x.e`: the squared distance up to a per-row constant, one matmul."""
        half_norms = 0.5 * ops.sum(ops.square(codebook), axis=1)
        return half_norms[None, :] - ops.matmul(flat, ops.transpose(codebook))

    def _nearest(self, flat, codebook):
        """Index of each row's nearest code, searching `_SEARCH_CHUNK` codes at a time.

        The same indices as the argmin of `_scores` over the whole codebook (ties go to the
        lowest index), without an (N, K) matrix: at N = K = 8192 that matrix is 256 MiB, and
        allocating and page-faulting it anew each step cost as much as the matmul itself.
        """
        num_codes = codebook.shape[0]
        if num_codes <= _SEARCH_CHUNK:
            return _argmin_rows(self._scores(flat, codebook))
        best_scores = best_indices = None
        for start in range(0, num_codes, _SEARCH_CHUNK):
            scores = self._scores(flat, codebook[start : start + _SEARCH_CHUNK])
            indices = _argmin_rows(scores) + start
            chunk_best = ops.min(scores, axis=1)
            if best_indices is None:
                best_scores, best_indices = chunk_best, indices
                continue
            better = chunk_best < best_scores  # strict: an earlier chunk wins a tie
            best_scores = ops.where(better, chunk_best, best_scores)
            best_indices = ops.where(better, indices, best_indices)
        return best_indices

    def encode(self, inputs):
        """Index of the nearest code (squared L2) for each vector: int32, `inputs.shape[:-1]`."""
        indices = self._nearest(self._flat(inputs), ops.convert_to_tensor(self.codebook))
        return ops.reshape(indices, ops.shape(inputs)[:-1])

    def decode(self, indices):
        """Codebook vectors for integer `indices`: shape `indices.shape + (embedding_dim,)`."""
        return ops.take(ops.convert_to_tensor(self.codebook), ops.cast(indices, "int32"), axis=0)

    def call(self, inputs, training=False, return_info=False):
        flat = self._flat(inputs)
        num_vectors = ops.shape(flat)[0]
        # Rows with a NaN or inf get code 0 and count nowhere, and a batch holding any such row
        # changes no statistic. The search itself sees zeros there: what argmin returns for a
        # NaN row differs between CPUs (AVX2 against AVX-512) and between XLA and not.
        valid = ops.all(ops.isfinite(flat), axis=1)
        finite_flat = ops.where(valid[:, None], flat, 0.0)
        if training and self.kmeans_init:
            self._maybe_kmeans_init(finite_flat, num_vectors, ops.all(valid))
        codebook = ops.convert_to_tensor(self.codebook)
        indices = ops.where(valid, self._nearest(finite_flat, codebook), 0)
        quantized = ops.take(codebook, indices, axis=0)
        if return_info:
            # The full (N, K) matrix only when asked for, and before any update of the codebook
            # (`codebook` is the variable itself on TensorFlow, not a snapshot).
            scores = self._scores(flat, codebook)
            distances = ops.sum(ops.square(flat), axis=1, keepdims=True) + 2.0 * scores

        count = ops.maximum(ops.cast(num_vectors, "float32"), 1.0) * self.embedding_dim
        commitment_loss = ops.sum(ops.square(ops.stop_gradient(quantized) - flat)) / count
        codebook_loss = ops.sum(ops.square(quantized - ops.stop_gradient(flat))) / count
        loss = self._loss(codebook_loss, commitment_loss)
        self.add_loss(loss)

        counts = ops.segment_sum(
            ops.cast(valid, "float32"), indices, num_segments=self.num_embeddings
        )
        if training:
            num_invalid = ops.sum(1.0 - ops.cast(valid, "float32"))
            self._update_codebook(finite_flat, indices, counts, num_vectors, num_invalid)

        quantized = flat + ops.stop_gradient(quantized - flat)  # straight-through estimator
        quantized = ops.cast(ops.reshape(quantized, ops.shape(inputs)), self.compute_dtype)
        if not return_info:
            return quantized
        probs = counts / ops.maximum(ops.sum(counts), 1.0)
        leading = tuple(ops.shape(inputs)[:-1])
        return {
            "quantized": quantized,
            "indices": ops.reshape(indices, leading),
            "loss": loss,
            "perplexity": ops.exp(-ops.sum(probs * ops.log(probs + 1e-10))),
            "usage": ops.mean(ops.cast(counts > 0, "float32")),
            "distances": ops.reshape(distances, leading + (self.num_embeddings,)),
        }

    def _loss(self, codebook_loss, commitment_loss):
        return codebook_loss + self.commitment_cost * commitment_loss

    def _update_codebook(self, flat, indices, counts, num_vectors, num_invalid):
        """Tracks code usage and restarts dead codes; the EMA quantizer also learns here.

        `flat` has its non-finite rows zeroed; `num_invalid` counts them. The count is summed
        over replicas with the statistics, so that a NaN on one replica stops the update on all
        of them and the replicas' copies stay equal.
        """
        counts, num_invalid = cross_replica_sum(counts, num_invalid)
        finite = ops.logical_and(num_invalid == 0, ops.all(ops.isfinite(counts)))
        decay = self._stats_decay
        old_size = ops.convert_to_tensor(self.cluster_size)
        cluster_size = ops.where(finite, decay * old_size + (1.0 - decay) * counts, old_size)
        self._assign_stats(cluster_size, None, flat, num_vectors, finite)

    def _assign_stats(self, cluster_size, summed_vectors, flat, num_vectors, finite=True):
        """Writes new statistics, after replacing dead codes by finite vectors of this batch."""
        codebook = ops.convert_to_tensor(self.codebook)
        if summed_vectors is not None:
            # Kept bit for bit on a skipped batch: recomputing the means could round otherwise.
            codebook = ops.where(
                finite, _smoothed_means(cluster_size, summed_vectors, self.epsilon), codebook
            )
        if self.dead_code_threshold > 0:
            rows = keras.random.randint(
                (self.num_embeddings,), 0, ops.maximum(num_vectors, 1), seed=self.seed_generator
            )
            # A zero row past the batch keeps the gather in range when the batch is empty.
            padded = ops.concatenate([flat, ops.zeros((1, self.embedding_dim), flat.dtype)], axis=0)
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
            self.codebook.assign(codebook)
        self.cluster_size.assign(cluster_size)
        if summed_vectors is not None:
            self.ema_dw.assign(summed_vectors)

    def _maybe_kmeans_init(self, flat, num_vectors, finite):
        """On the first non-empty, finite training batch, replaces the codebook by k-means."""
        run = ops.logical_and(self.initialized < 0.5, num_vectors > 0)
        run = ops.logical_and(run, finite)  # k-means of NaNs is NaN
        current = ops.convert_to_tensor(self.codebook)
        centroids = ops.cond(
            run, lambda: self._kmeans(flat, num_vectors), lambda: current
        )
        self.codebook.assign(centroids)
        if hasattr(self, "ema_dw"):
            # One pseudo-observation of each centroid, as at construction.
            self.ema_dw.assign(ops.where(run, centroids, self.ema_dw))
            self.cluster_size.assign(ops.where(run, 1.0, self.cluster_size))
        self.initialized.assign(ops.where(run, 1.0, self.initialized))

    def _kmeans(self, flat, num_vectors):
        rows = keras.random.randint(
            (self.num_embeddings,), 0, ops.maximum(num_vectors, 1), seed=self.seed_generator
        )
        centroids = ops.take(flat, rows, axis=0)

        def step(_, centroids):
            indices = self._nearest(flat, centroids)
            sums = ops.segment_sum(flat, indices, num_segments=self.num_embeddings)
            counts = ops.segment_sum(
                ops.ones_like(indices, dtype="float32"), indices, num_segments=self.num_embeddings
            )
            # A centroid that attracts nothing keeps its place rather than dividing by zero.
            return ops.where(
                counts[:, None] > 0, sums / ops.maximum(counts, 1.0)[:, None], centroids
            )

        return ops.fori_loop(0, self.kmeans_iters, step, centroids)

    def get_config(self):
        config = super().get_config()
        config.pop("autocast", None)
        config.update(
            {
                "num_embeddings": self.num_embeddings,
                "embedding_dim": self.embedding_dim,
                "commitment_cost": self.commitment_cost,
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

    Args:
        num_embeddings: K, the number of codes.
        embedding_dim: D, the size of each code; the inputs' last axis.
        commitment_cost: beta, the weight of the commitment loss (0.25 in the paper).
        usage_decay: decay of the per-code usage EMA (`cluster_size`) used for monitoring and
            dead-code restarts.
        kmeans_init: initialise the codebook by k-means on the first training batch.
        kmeans_iters: Lloyd iterations of that k-means.
        dead_code_threshold: codes whose usage EMA falls below this many vectors per batch are
            re-seeded from random vectors of the current batch (0 disables).
        seed: seed of the initializer and of the random choices.

    Call arguments:
        inputs: float tensor (..., embedding_dim).
        training: whether statistics (and k-means init / restarts) may change.
        return_info: return a dict (`quantized`, `indices`, `loss`, `perplexity`, `usage`,
            `distances`) instead of the quantized tensor.

    Returns:
        The quantized tensor, shaped like `inputs`, or the dict above.

    Example:
    >>> q = VectorQuantizer(num_embeddings=16, embedding_dim=4)
    >>> y = q(keras.random.normal((2, 3, 3, 4)), training=True)
    >>> tuple(y.shape), len(q.losses)
    ((2, 3, 3, 4), 1)
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

    Args:
        num_embeddings: K, the number of codes.
        embedding_dim: D, the size of each code; the inputs' last axis.
        commitment_cost: beta, the weight of the commitment loss.
        decay: gamma in [0, 1], the EMA decay (0.99 in the paper).
        epsilon: Laplace smoothing of the cluster sizes.
        kmeans_init, kmeans_iters, dead_code_threshold, seed: as in `VectorQuantizer`.

    Call arguments:
        inputs, training, return_info: as in `VectorQuantizer`.

    Returns:
        The quantized tensor, shaped like `inputs`, or the info dict of `VectorQuantizer`.

    Example:
    >>> q = VectorQuantizerEMA(num_embeddings=16, embedding_dim=4, decay=0.9)
    >>> info = q(keras.random.normal((8, 4)), training=True, return_info=True)
    >>> tuple(info["indices"].shape)
    (8,)
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
            (self.num_embeddings, self.embedding_dim),
            lambda shape, dtype=None: ops.convert_to_tensor(self.codebook),
            "ema_dw",
        )

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


def _smoothed_means(cluster_size, summed_vectors, epsilon):
    """Cluster means with Laplace-smoothed sizes, so that an empty cluster never divides by 0."""
    total = ops.sum(cluster_size)
    num_codes = ops.cast(ops.shape(cluster_size)[0], "float32")
    smoothed = (cluster_size + epsilon) / (total + num_codes * epsilon) * total
    return summed_vectors / smoothed[:, None]


def _check_unit_interval(name, value, layer):
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{type(layer).__name__} expects {name} in [0, 1]; got {value}")
