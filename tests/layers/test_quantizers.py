"""Tests of tfvq.layers.quantizers against NumPy references written here, not the code's output."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvq.layers import VectorQuantizer, VectorQuantizerEMA

QUANTIZERS = [VectorQuantizer, VectorQuantizerEMA]


# --- NumPy references -------------------------------------------------------------------------


def np_quantize(x, codebook, beta, ema):
    """Everything the forward pass reports, in float64, from the VQ-VAE paper's definitions."""
    flat = np.asarray(x, np.float64).reshape(-1, codebook.shape[1])
    e = np.asarray(codebook, np.float64)
    distances = ((flat[:, None, :] - e[None, :, :]) ** 2).sum(-1)
    indices = distances.argmin(1)
    q = e[indices]
    mse = ((q - flat) ** 2).mean() if flat.size else 0.0
    codebook_loss, commitment_loss = mse, mse  # equal values; they differ in their gradients
    counts = np.bincount(indices, minlength=e.shape[0]).astype(np.float64)
    p = counts / max(counts.sum(), 1.0)
    return {
        "distances": distances.reshape(np.shape(x)[:-1] + (e.shape[0],)),
        "indices": indices.reshape(np.shape(x)[:-1]),
        "quantized": q.reshape(np.shape(x)),
        "loss": beta * commitment_loss if ema else codebook_loss + beta * commitment_loss,
        "perplexity": np.exp(-(p * np.log(p + 1e-10)).sum()),  # Sonnet's formula
        "usage": (counts > 0).mean(),
        "counts": counts,
    }


def np_ema_step(state, x, decay, eps):
    """One step of appendix A.1 (N, m, e) with Laplace smoothing, on float64 state."""
    n_prev, m_prev, e_prev = state
    flat = np.asarray(x, np.float64).reshape(-1, e_prev.shape[1])
    indices = ((flat[:, None, :] - e_prev[None]) ** 2).sum(-1).argmin(1)
    k = e_prev.shape[0]
    n = np.bincount(indices, minlength=k).astype(np.float64)
    sums = np.zeros_like(e_prev)
    np.add.at(sums, indices, flat)
    n_new = decay * n_prev + (1 - decay) * n
    m_new = decay * m_prev + (1 - decay) * sums
    total = n_new.sum()
    e_new = m_new / (((n_new + eps) / (total + k * eps)) * total)[:, None]
    return n_new, m_new, e_new


def make(cls, codebook, **kwargs):
    """A built quantizer whose codebook (and EMA state) starts at `codebook`."""
    codebook = np.asarray(codebook, np.float32)
    layer = cls(codebook.shape[0], codebook.shape[1], **kwargs)
    layer.build((None, codebook.shape[1]))
    layer.codebook.assign(codebook)
    if isinstance(layer, VectorQuantizerEMA):
        layer.ema_dw.assign(codebook)
    return layer


def rng_data(seed, *shape):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def variables(layer):
    return {v.path: np.array(v.numpy()) for v in layer.weights}


# --- Forward pass -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("shape", [(32, 4), (2, 5, 3, 4)])
@pytest.mark.parametrize("training", [False, True])
def test_forward_matches_numpy(cls, shape, training):
    codebook = rng_data(0, 16, 4)
    x = rng_data(1, *shape)
    layer = make(cls, codebook, commitment_cost=0.3)
    ref = np_quantize(x, codebook, 0.3, ema=cls is VectorQuantizerEMA)
    # Without return_info, the quantized tensor alone.
    np.testing.assert_allclose(layer(x), ref["quantized"], atol=1e-6)
    info = layer(x, training=training, return_info=True)

    np.testing.assert_allclose(info["distances"], ref["distances"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(info["indices"], ref["indices"])
    assert info["indices"].dtype == tf.int32
    np.testing.assert_allclose(info["quantized"], ref["quantized"], atol=1e-6)
    np.testing.assert_allclose(info["loss"], ref["loss"], rtol=1e-5)
    np.testing.assert_allclose(info["perplexity"], ref["perplexity"], rtol=1e-5)
    np.testing.assert_allclose(info["usage"], ref["usage"], rtol=1e-6)
    # The loss also goes to the layer's `losses`, for Model.fit to collect.
    assert len(layer.losses) == 1
    np.testing.assert_allclose(layer.losses[0], ref["loss"], rtol=1e-5)


@pytest.mark.parametrize("jit_compile", [None, pytest.param(True, marks=pytest.mark.slow)])
@pytest.mark.parametrize("cls", QUANTIZERS)
def test_nearest_search_over_codebook_chunks(cls, jit_compile):
    # More codes than one search block (512), the last block partial. Under XLA the two whole
    # blocks run as a loop (`_looped_blocks`) and the partial one after it.
    def run(fn):
        return fn if jit_compile is None else tf.function(fn, jit_compile=True)

    codebook = rng_data(35, 1300, 6)
    x = rng_data(36, 300, 6)
    layer = make(cls, codebook)
    ref = np_quantize(x, codebook, 0.25, cls is VectorQuantizerEMA)
    np.testing.assert_array_equal(run(layer.encode)(x), ref["indices"])
    info = run(lambda x: layer(x, return_info=True))(x)
    np.testing.assert_array_equal(info["indices"], ref["indices"])
    np.testing.assert_allclose(info["distances"], ref["distances"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(info["quantized"], ref["quantized"], atol=1e-6)
    # Exact ties across blocks (small integers: every score is exact) go to the lowest index,
    # as in a single argmin.
    ints = np.random.default_rng(37).integers(-3, 4, size=(1300, 6)).astype(np.float32)
    ints[1100] = ints[7]
    ints[600] = ints[1299]
    layer = make(cls, ints)
    probe = ints[[7, 1100, 600, 1299]]
    expected = np_quantize(probe, ints, 0.25, False)["indices"]
    assert expected[0] <= 7 and expected[2] <= 600
    np.testing.assert_array_equal(run(layer.encode)(probe), expected)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_distances_over_codebook_chunks_have_the_matmul_gradient(jit_compile):
    # d/dx sum(d^2) with d_ik = |x_i - c_k|^2 is sum_k 4 d_ik (x_i - c_k); for the codebook,
    # -sum_i 4 d_ik (x_i - c_k). Under XLA the scores come from a loop without a gradient and
    # get the matmul's gradient back by hand (`_with_matmul_gradient`).
    codebook = rng_data(39, 1100, 5)
    x = rng_data(40, 64, 5)
    layer = make(VectorQuantizer, codebook)

    @tf.function(jit_compile=jit_compile)
    def gradients(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            distances = layer(x, return_info=True)["distances"]
            loss = tf.reduce_sum(tf.square(distances))
        return tape.gradient(loss, [x, layer.codebook])

    dx, dcodes = gradients(tf.constant(x))
    diff = x[:, None, :] - codebook[None]
    d = np.sum(np.square(diff), axis=-1)
    np.testing.assert_allclose(dx, np.sum(4 * d[..., None] * diff, axis=1), rtol=1e-4)
    np.testing.assert_allclose(tf.convert_to_tensor(dcodes),
                               -np.sum(4 * d[..., None] * diff, axis=0), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("columns", [512, 48, 37])
def test_row_argmin_is_numpy_argmin_with_its_ties(columns, jit_compile):
    # `_row_argmin` searches groups of 16 columns where the width allows (512, 48) and falls
    # back to one argmin where it does not (37). Small integers make many exact ties, within a
    # group and across groups; each must go to the lowest index, as NumPy's argmin does.
    from tfvq.layers.quantizers import _row_argmin

    scores = np.random.default_rng(38).integers(-2, 3, size=(200, columns)).astype(np.float32)
    scores[0] = 0.0
    scores[1, [5, columns - 1]] = -9.0
    from tfvq.layers.quantizers import _xla_compiled

    # The grouped path is taken under XLA only; that TensorFlow still tells it is checked here.
    seen = []
    tf.function(lambda: seen.append(_xla_compiled()) or tf.constant(0), jit_compile=jit_compile)()
    assert seen == [jit_compile]
    search = tf.function(_row_argmin, jit_compile=jit_compile)
    indices, minimum = search(tf.constant(scores))
    assert indices.dtype == tf.int32
    np.testing.assert_array_equal(indices, scores.argmin(axis=1))
    np.testing.assert_array_equal(minimum, scores.min(axis=1))


def test_perplexity_and_usage_known_values():
    codebook = np.eye(4, dtype=np.float32) * 10
    # Two codes hit, equally often: perplexity 2, usage 1/2.
    x = np.repeat(codebook[:2], 3, axis=0)
    info = make(VectorQuantizer, codebook)(x, return_info=True)
    np.testing.assert_allclose(info["perplexity"], 2.0, rtol=1e-5)
    np.testing.assert_allclose(info["usage"], 0.5)
    np.testing.assert_allclose(info["loss"], 0.0, atol=1e-7)


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_encode_decode(cls):
    codebook = rng_data(2, 12, 3)
    x = rng_data(3, 2, 4, 5, 3)
    layer = make(cls, codebook)
    indices = layer.encode(x)
    ref = np_quantize(x, codebook, 0.25, ema=False)
    assert tuple(indices.shape) == (2, 4, 5) and indices.dtype == tf.int32
    np.testing.assert_array_equal(indices, ref["indices"])
    decoded = layer.decode(indices)
    assert tuple(decoded.shape) == (2, 4, 5, 3)
    np.testing.assert_array_equal(decoded, codebook[ref["indices"]])
    np.testing.assert_array_equal(layer.decode(np.array([[0, 11]])), codebook[[[0, 11]]])
    np.testing.assert_allclose(layer(x), decoded, atol=1e-6)


# --- Codebook learning ------------------------------------------------------------------------


def test_ema_initial_state():
    layer = VectorQuantizerEMA(8, 3, seed=4)
    layer.build((None, 3))
    np.testing.assert_array_equal(layer.cluster_size, np.ones(8))
    np.testing.assert_array_equal(layer.ema_dw, layer.codebook)
    assert not layer.codebook.trainable
    assert layer.trainable_weights == []
    # Sonnet's initializer: uniform in +-sqrt(3 / D).
    assert np.abs(layer.codebook.numpy()).max() <= np.sqrt(3 / 3)


@pytest.mark.parametrize("epsilon", [1e-5, 0.1])
def test_ema_updates_match_equations(epsilon):
    decay = 0.9
    codebook = rng_data(5, 6, 3)
    layer = make(VectorQuantizerEMA, codebook, decay=decay, epsilon=epsilon)
    state = (np.ones(6), codebook.astype(np.float64), codebook.astype(np.float64))
    for step in range(3):
        x = rng_data(10 + step, 20, 3) + step  # drifting batches
        info = layer(x, training=True, return_info=True)
        # The lookup of this call used the codebook from before the update.
        np.testing.assert_array_equal(info["indices"], np_quantize(x, state[2], 0.25, True)["indices"])
        state = np_ema_step(state, x, decay, epsilon)
        np.testing.assert_allclose(layer.cluster_size, state[0], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(layer.ema_dw, state[1], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.codebook, state[2], rtol=1e-5, atol=1e-6)


def test_ema_unused_code_keeps_its_vector():
    codebook = np.array([[0, 0], [1, 0], [100, 100]], np.float32)
    x = np.array([[0.1, 0], [0.9, 0], [1.1, 0.1], [-0.1, 0]], np.float32)
    exact = make(VectorQuantizerEMA, codebook, decay=0.99, epsilon=0.0)
    smoothed = make(VectorQuantizerEMA, codebook, decay=0.99, epsilon=1e-5)
    for _ in range(3):
        exact(x, training=True)
        smoothed(x, training=True)
    # With no smoothing the unused code is exactly its initial vector; smoothing moves it by
    # O(epsilon), never towards zero as Sonnet's bias-corrected averages would.
    np.testing.assert_allclose(exact.codebook.numpy()[2], [100, 100], rtol=1e-6)
    np.testing.assert_allclose(smoothed.codebook.numpy()[2], [100, 100], rtol=1e-3)


def test_vector_quantizer_usage_ema_and_fixed_codebook():
    codebook = rng_data(6, 5, 2)
    layer = make(VectorQuantizer, codebook, usage_decay=0.8)
    size = np.ones(5)
    for step in range(3):
        x = rng_data(20 + step, 10, 2)
        layer(x, training=True)
        size = 0.8 * size + 0.2 * np_quantize(x, codebook, 0.25, False)["counts"]
        np.testing.assert_allclose(layer.cluster_size, size, rtol=1e-6)
    # Only gradients move this codebook.
    np.testing.assert_array_equal(layer.codebook, codebook)


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("options", [{}, {"kmeans_init": True}, {"dead_code_threshold": 5.0}])
def test_inference_changes_no_variable(cls, options):
    layer = make(cls, rng_data(7, 8, 3), **options)
    before = variables(layer)
    for _ in range(2):
        layer(rng_data(8, 16, 3), training=False)
        layer.encode(rng_data(9, 4, 3))
    after = variables(layer)
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)


# --- Gradients --------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [False, True])
def test_vector_quantizer_gradients(training):
    beta = 0.25
    codebook = rng_data(11, 7, 3)
    x = tf.constant(rng_data(12, 4, 5, 3))
    w = rng_data(13, 4, 5, 3)
    layer = make(VectorQuantizer, codebook, commitment_cost=beta)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        info = layer(x, training=training, return_info=True)
        weighted = tf.reduce_sum(w * info["quantized"])
        loss = info["loss"]
        total = weighted + loss
    (codebook_var,) = layer.trainable_weights
    ref = np_quantize(x.numpy(), codebook, beta, ema=False)
    e = ref["quantized"]
    numel = x.numpy().size
    # Straight-through: the output passes the upstream gradient to x unchanged ...
    np.testing.assert_allclose(tape.gradient(weighted, x), w, atol=1e-6)
    assert tape.gradient(weighted, codebook_var) is None
    # ... and the loss reaches x only through the commitment term ...
    np.testing.assert_allclose(
        tape.gradient(loss, x), 2 * beta * (x.numpy() - e) / numel, rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(tape.gradient(total, x), w + 2 * beta * (x.numpy() - e) / numel, rtol=1e-5, atol=1e-6)
    # ... and the codebook only through the codebook term, on the codes that were used.
    expected = np.zeros_like(codebook, np.float64)
    np.add.at(expected, ref["indices"].ravel(), 2 * (e - x.numpy()).reshape(-1, 3) / numel)
    grad = tf.convert_to_tensor(tape.gradient(total, codebook_var))
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)
    unused = ref["counts"] == 0
    assert unused.any()  # 20 vectors, 7 codes: make sure the scatter is tested
    np.testing.assert_array_equal(grad.numpy()[unused], 0.0)


def test_ema_gradients():
    beta = 0.5
    codebook = rng_data(14, 6, 2)
    x = tf.constant(rng_data(15, 9, 2))
    w = rng_data(16, 9, 2)
    layer = make(VectorQuantizerEMA, codebook, commitment_cost=beta)
    with tf.GradientTape() as tape:
        tape.watch(x)
        info = layer(x, training=True, return_info=True)
        total = tf.reduce_sum(w * info["quantized"]) + info["loss"]
    e = np_quantize(x.numpy(), codebook, beta, ema=True)["quantized"]
    expected = w + 2 * beta * (x.numpy() - e) / x.numpy().size
    np.testing.assert_allclose(tape.gradient(total, x), expected, rtol=1e-5, atol=1e-6)
    assert layer.trainable_weights == []


# --- Distribution -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strategy(mirrored_strategy):
    return mirrored_strategy


def test_mirrored_ema_matches_single_device(strategy):
    assert strategy.num_replicas_in_sync == 2
    k, d, decay = 8, 3, 0.9
    # Code 7 sits far away and is never hit: it must keep its vector on both set-ups.
    codebook = rng_data(17, k, d)
    codebook[7] = 50.0
    batches = [rng_data(30 + step, 16, d) for step in range(3)]

    single = make(VectorQuantizerEMA, codebook, decay=decay)
    with strategy.scope():
        mirrored = make(VectorQuantizerEMA, codebook, decay=decay)

    @tf.function
    def replicated_step(x):
        return strategy.run(lambda v: mirrored(v, training=True, return_info=True)["indices"], (x,))

    state = (np.ones(k), codebook.astype(np.float64), codebook.astype(np.float64))
    for x in batches:
        halves = strategy.experimental_distribute_values_from_function(
            lambda ctx, x=x: x[8 * ctx.replica_id_in_sync_group : 8 * (ctx.replica_id_in_sync_group + 1)]
        )
        indices = strategy.experimental_local_results(replicated_step(halves))
        single(x, training=True)
        expected_indices = np_quantize(x, state[2], 0.25, True)["indices"]
        np.testing.assert_array_equal(np.concatenate(indices), expected_indices)
        state = np_ema_step(state, x, decay, 1e-5)
        for name in ("codebook", "cluster_size", "ema_dw"):
            values = [v.numpy() for v in strategy.experimental_local_results(getattr(mirrored, name).value)]
            np.testing.assert_allclose(values[0], values[1], atol=0, err_msg=f"replicas disagree: {name}")
            np.testing.assert_allclose(values[0], getattr(single, name).numpy(), atol=1e-6, err_msg=name)
        np.testing.assert_allclose(mirrored.codebook.numpy(), state[2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mirrored.codebook.numpy()[7], codebook[7], rtol=1e-3)
    assert np.isfinite(mirrored.codebook.numpy()).all()


def test_mirrored_vector_quantizer_usage_matches_single_device(strategy):
    codebook = rng_data(18, 6, 2)
    x = rng_data(19, 12, 2)
    single = make(VectorQuantizer, codebook, usage_decay=0.7)
    with strategy.scope():
        mirrored = make(VectorQuantizer, codebook, usage_decay=0.7)
    halves = strategy.experimental_distribute_values_from_function(
        lambda ctx: x[6 * ctx.replica_id_in_sync_group : 6 * (ctx.replica_id_in_sync_group + 1)]
    )
    tf.function(lambda v: strategy.run(lambda u: mirrored(u, training=True), (v,)))(halves)
    single(x, training=True)
    np.testing.assert_allclose(mirrored.cluster_size.numpy(), single.cluster_size.numpy(), atol=1e-6)
    np.testing.assert_array_equal(mirrored.codebook.numpy(), codebook)


# --- Codebook health --------------------------------------------------------------------------


def _clusters(seed=0, per_cluster=25):
    centres = np.array([[10, 10], [-10, 10], [10, -10], [-10, -10]], np.float32)
    noise = np.random.default_rng(seed).normal(scale=0.5, size=(4, per_cluster, 2))
    points = (centres[:, None, :] + noise).astype(np.float32)
    return points.reshape(-1, 2), points.astype(np.float64).mean(1)


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_kmeans_init_on_first_batch_only(cls):
    x, means = _clusters()
    layer = cls(4, 2, kmeans_init=True, seed=3, **({"epsilon": 0.0} if cls is VectorQuantizerEMA else {}))
    layer.build((None, 2))
    assert float(layer.initialized.numpy()) == 0.0
    layer(x, training=False)  # inference never initialises
    assert float(layer.initialized.numpy()) == 0.0
    info = layer(x, training=True, return_info=True)
    assert float(layer.initialized.numpy()) == 1.0
    # Every code sits on the mean of one cluster, and every cluster has one code.
    codebook = layer.codebook.numpy()
    order = np.argmin(((codebook[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert sorted(order) == [0, 1, 2, 3]
    np.testing.assert_allclose(codebook, means[order], atol=1e-4)
    # The lookup of that first batch already used the centroids: perplexity 4.
    np.testing.assert_allclose(info["perplexity"], 4.0, rtol=1e-5)
    # A second batch from elsewhere does not re-run k-means.
    before = codebook.copy()
    layer(x + 3.0, training=True)
    if cls is VectorQuantizer:
        np.testing.assert_array_equal(layer.codebook.numpy(), before)
    else:
        # One EMA step towards the shifted clusters: 0.01 * 25 * 3 / N ~ 0.5, not a jump of 3.
        assert 0.1 < np.abs(layer.codebook.numpy() - before).max() < 1.0


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_dead_code_restart(cls):
    codebook = np.array([[10.0 * i, 0.0] for i in range(7)] + [[1000.0, 1000.0]], np.float32)
    x = np.repeat(codebook[:7], 3, axis=0) + rng_data(21, 21, 2) * 0.1
    # Used codes end at >= 0.99 + 0.01 * 3 = 1.02 vectors per batch; the unused one at 0.99.
    layer = make(cls, codebook, dead_code_threshold=1.0, seed=5)
    layer(x, training=True)
    new = layer.codebook.numpy()
    # The dead code now holds a vector of the batch ...
    assert np.min(np.abs(x - new[7]).sum(1)) == 0.0
    np.testing.assert_allclose(layer.cluster_size.numpy()[7], 1.0)
    if cls is VectorQuantizerEMA:
        np.testing.assert_allclose(layer.ema_dw.numpy()[7], new[7] * 1.0, rtol=1e-6)
    # ... and the live codes are untouched (VQ) or where the EMA puts them.
    if cls is VectorQuantizer:
        np.testing.assert_array_equal(new[:7], codebook[:7])
    else:
        state = np_ema_step((np.ones(8), codebook.astype(np.float64), codebook), x, 0.99, 1e-5)
        # Smoothing uses the sizes before the restart moved code 7's size from 0.99 to 1.
        np.testing.assert_allclose(new[:7], state[2][:7], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("threshold", [0.0, 2.0])
@pytest.mark.parametrize("warm", [False, True])
def test_non_finite_batch_leaves_ema_codebook_unchanged(threshold, warm):
    # A fresh layer with threshold 2 has every code "dead": the restart must not draw NaNs.
    layer = make(VectorQuantizerEMA, rng_data(22, 8, 3), dead_code_threshold=threshold)
    if warm:
        layer(rng_data(23, 16, 3), training=True)
    before = variables(layer)
    for bad in (np.full((16, 3), np.nan, np.float32), np.where(np.eye(16, 3) > 0, np.inf, rng_data(24, 16, 3))):
        layer(bad.astype(np.float32), training=True)
        after = variables(layer)
        for name in ("codebook", "cluster_size", "ema_dw"):
            path = next(p for p in before if p.endswith(name))
            np.testing.assert_array_equal(after[path], before[path], err_msg=name)


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_kmeans_init_waits_for_a_finite_batch(cls):
    layer = make(cls, rng_data(34, 4, 2), kmeans_init=True)
    layer.initialized.assign(0.0)
    layer(np.full((8, 2), np.nan, np.float32), training=True)
    assert float(layer.initialized.numpy()) == 0.0
    assert np.isfinite(layer.codebook.numpy()).all()
    layer(_clusters()[0], training=True)
    assert float(layer.initialized.numpy()) == 1.0


def test_dead_code_restart_skips_non_finite_vectors():
    codebook = rng_data(32, 8, 3)
    layer = make(VectorQuantizer, codebook, dead_code_threshold=2.0)  # every code starts dead
    x = rng_data(33, 64, 3)
    x[::2, 1] = np.nan
    layer(x, training=True)  # a batch with NaN rows restarts nothing
    np.testing.assert_array_equal(layer.codebook.numpy(), codebook)
    layer(x[1::2], training=True)  # its finite rows alone do
    new = layer.codebook.numpy()
    assert not np.array_equal(new, codebook)
    for row in new:  # each code is either a finite vector of the batch or its old vector
        assert (np.abs(x[1::2] - row).sum(1) == 0).any() or (np.abs(codebook - row).sum(1) == 0).any()


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("options", [{}, {"dead_code_threshold": 2.0}, {"kmeans_init": True}])
def test_rows_with_nan_or_inf_get_code_0_and_change_no_statistic(cls, jit_compile, options):
    # What argmin gives a NaN row differs between CPUs and between XLA and not; the layer
    # must not depend on it.
    layer = make(cls, rng_data(35, 8, 3), **options)
    if options.get("kmeans_init"):
        layer.initialized.assign(0.0)
    step = tf.function(lambda v: layer(v, training=True, return_info=True),
                       jit_compile=jit_compile)
    x = rng_data(36, 32, 3)
    x[3, 1] = np.nan
    x[7, 0] = np.inf
    x[9] = -np.inf
    before = variables(layer)
    info = step(x)
    after = variables(layer)
    for path, value in before.items():
        if "seed_generator" not in path:
            np.testing.assert_array_equal(after[path], value, err_msg=path)
    indices = info["indices"].numpy()
    assert indices[3] == indices[7] == indices[9] == 0
    good = np.ones(32, bool)
    good[[3, 7, 9]] = False
    # The other rows are searched as usual, against a NumPy nearest neighbour.
    codebook = layer.codebook.numpy()
    expected = np.argmin(((x[good][:, None] - codebook[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(indices[good], expected)


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("options", [{}, {"kmeans_init": True}, {"dead_code_threshold": 2.0}])
def test_empty_batch(cls, options):
    layer = make(cls, rng_data(25, 8, 3), **options)
    for call in (layer, tf.function(lambda v, **kw: layer(v, **kw))):
        info = call(np.zeros((0, 3), np.float32), training=True, return_info=True)
        assert tuple(info["quantized"].shape) == (0, 3)
        assert tuple(info["indices"].shape) == (0,)
        assert np.isfinite(info["loss"].numpy()) and float(info["loss"]) == 0.0
        assert np.isfinite(info["perplexity"].numpy())
    for v in layer.weights:
        assert np.isfinite(v.numpy()).all(), v.path
    if options.get("kmeans_init"):
        assert float(layer.initialized.numpy()) == 0.0  # waits for a batch with vectors


# --- Mixed precision --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_mixed_precision(cls):
    codebook = rng_data(26, 32, 8)
    x16 = rng_data(27, 4, 6, 8).astype(np.float16)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = make(cls, codebook)
        outputs = layer(x16)
        info = layer(x16, training=True, return_info=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert outputs.dtype == tf.float16 and info["quantized"].dtype == tf.float16
    assert layer.codebook.dtype == "float32" and layer.cluster_size.dtype == "float32"
    ref = np_quantize(x16.astype(np.float32), codebook, 0.25, cls is VectorQuantizerEMA)
    np.testing.assert_array_equal(info["indices"], ref["indices"])
    np.testing.assert_array_equal(layer(x16.astype(np.float32), return_info=True)["indices"], ref["indices"])
    np.testing.assert_allclose(info["loss"], ref["loss"], rtol=1e-4)
    np.testing.assert_allclose(outputs, ref["quantized"].astype(np.float16), rtol=1e-3, atol=1e-3)


# --- Saving and validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, options",
    [
        (VectorQuantizer, {"commitment_cost": 0.4, "usage_decay": 0.9, "dead_code_threshold": 0.1}),
        (VectorQuantizerEMA, {"decay": 0.8, "epsilon": 1e-3, "kmeans_init": True, "kmeans_iters": 3, "seed": 7}),
    ],
)
def test_keras_round_trip(cls, options, tmp_path):
    layer = cls(16, 4, name="vq", **options)
    inputs = keras.Input((3, 3, 4))
    model = keras.Model(inputs, layer(inputs))
    layer(rng_data(28, 10, 4), training=True)  # move the statistics away from their initial values
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    restored = loaded.get_layer("vq")
    assert type(restored) is cls
    assert restored.get_config() == layer.get_config()
    for v, w in zip(layer.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(v.numpy(), w.numpy(), err_msg=v.path)
    x = rng_data(29, 2, 3, 3, 4)
    np.testing.assert_array_equal(loaded(x), model(x))


@pytest.mark.parametrize(
    "make_layer, argument",
    [
        (lambda: VectorQuantizer(0, 4), "num_embeddings"),
        (lambda: VectorQuantizerEMA(-3, 4), "num_embeddings"),
        (lambda: VectorQuantizer(2.5, 4), "num_embeddings"),
        (lambda: VectorQuantizer(8, 0), "embedding_dim"),
        (lambda: VectorQuantizerEMA(8, 0), "embedding_dim"),
        (lambda: VectorQuantizerEMA(8, 4, decay=-0.1), "decay"),
        (lambda: VectorQuantizerEMA(8, 4, decay=1.5), "decay"),
        (lambda: VectorQuantizer(8, 4, usage_decay=2.0), "usage_decay"),
        (lambda: VectorQuantizer(8, 4, commitment_cost=-0.25), "commitment_cost"),
        (lambda: VectorQuantizerEMA(8, 4, commitment_cost=-1), "commitment_cost"),
        (lambda: VectorQuantizerEMA(8, 4, epsilon=-1e-5), "epsilon"),
        (lambda: VectorQuantizer(8, 4, dead_code_threshold=-1), "dead_code_threshold"),
        (lambda: VectorQuantizer(8, 4, kmeans_iters=0), "kmeans_iters"),
    ],
)
def test_bad_arguments(make_layer, argument):
    with pytest.raises(ValueError, match=argument):
        make_layer()


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize(
    "inputs, words",
    [
        (np.zeros((3, 5), np.float32), "embedding_dim=4; got shape \\(3, 5\\)"),
        (np.zeros((2, 2, 3), np.float32), "embedding_dim=4"),
        (np.zeros((4,), np.float32), "rank >= 2"),
        (np.zeros((3, 4), np.int32), "floating-point inputs; got dtype int32"),
    ],
)
def test_bad_inputs(cls, inputs, words):
    layer = cls(8, 4)
    with pytest.raises(ValueError, match=words):
        layer(inputs)
    with pytest.raises(ValueError, match=words):
        layer.encode(inputs)


def test_matches_sonnet():
    snt = pytest.importorskip("sonnet")
    codebook = rng_data(30, 64, 8)
    x = rng_data(31, 4, 5, 5, 8)
    ours = make(VectorQuantizer, codebook, commitment_cost=0.25)(x, training=True, return_info=True)
    theirs = snt.nets.VectorQuantizer(embedding_dim=8, num_embeddings=64, commitment_cost=0.25)
    theirs(x, is_training=False)
    theirs.embeddings.assign(codebook.T)  # Sonnet stores the codebook as (D, K)
    theirs = theirs(x, is_training=True)
    np.testing.assert_array_equal(ours["indices"], theirs["encoding_indices"])
    np.testing.assert_allclose(ours["quantized"], theirs["quantize"], atol=1e-6)
    np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=1e-6)
    np.testing.assert_allclose(ours["perplexity"], theirs["perplexity"], rtol=1e-6)
    np.testing.assert_allclose(
        np.reshape(ours["distances"], (-1, 64)), np.reshape(theirs["distances"], (-1, 64)), rtol=1e-5, atol=1e-5
    )


# --- Options: cosine distance, factorized codes, rotation trick (issue 16) ---------------------

# One layer of each kind per new option, and all of them together.
OPTIONS = [
    {"distance": "cosine"},
    {"codebook_dim": 2},
    {"gradient": "rotation"},
    {"distance": "cosine", "codebook_dim": 2, "gradient": "rotation"},
]
OPTION_IDS = ["cosine", "factorized", "rotation", "all"]
# For the tests that compile under XLA: "all" (every option at once) in the fast set, each
# option alone in the slow set.
OPTIONS_ALL_FAST = [
    pytest.param(o, id=i, marks=() if i == "all" else pytest.mark.slow)
    for o, i in zip(OPTIONS, OPTION_IDS, strict=True)
]


def np_unit(x):
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def np_search_space(layer, x):
    """The vectors the layer searches, in float64, from its projection weights."""
    flat = np.asarray(x, np.float64).reshape(-1, layer.embedding_dim)
    if layer.codebook_dim is not None:
        flat = flat @ layer.project_in.kernel.numpy().astype(np.float64) + layer.project_in.bias.numpy()
    return np_unit(flat) if layer.distance == "cosine" else flat


def np_project_out(layer, q):
    if layer.codebook_dim is None:
        return q
    return q @ layer.project_out.kernel.numpy().astype(np.float64) + layer.project_out.bias.numpy()


def np_quantize_options(layer, x, beta=0.25):
    """`np_quantize` in the layer's search space: projected, and normalised for cosine."""
    z = np_search_space(layer, x)
    e = np.asarray(layer.codebook.numpy(), np.float64)
    if layer.distance == "cosine":
        e = np_unit(e)
        indices = (z @ e.T).argmax(1)  # the largest cosine similarity
    else:
        indices = ((z[:, None, :] - e[None]) ** 2).sum(-1).argmin(1)
    q = e[indices]
    mse = ((q - z) ** 2).mean() if z.size else 0.0
    ema = isinstance(layer, VectorQuantizerEMA)
    counts = np.bincount(indices, minlength=e.shape[0]).astype(np.float64)
    p = counts / max(counts.sum(), 1.0)
    leading = np.shape(x)[:-1]
    return {
        "z": z,
        "distances": ((z[:, None, :] - e[None]) ** 2).sum(-1).reshape(leading + (e.shape[0],)),
        "indices": indices.reshape(leading),
        "codes": q,
        "quantized": np_project_out(layer, q).reshape(leading + (layer.embedding_dim,)),
        "loss": beta * mse if ema else (1 + beta) * mse,
        "perplexity": np.exp(-(p * np.log(p + 1e-10)).sum()),
        "counts": counts,
    }


def np_rotation_matrix(e, q):
    """Fifty et al. 2024: the (d, d) matrix |q| / |e| R with R e^ = q^, built explicitly."""
    e_hat, q_hat = e / np.linalg.norm(e), q / np.linalg.norm(q)
    r = (e_hat + q_hat) / np.linalg.norm(e_hat + q_hat)
    eye = np.eye(len(e))
    rotation = eye - 2 * np.outer(r, r) + 2 * np.outer(q_hat, e_hat)
    np.testing.assert_allclose(rotation @ e_hat, q_hat, atol=1e-12)  # the reference itself
    np.testing.assert_allclose(rotation.T @ rotation, eye, atol=1e-12)
    return np.linalg.norm(q) / np.linalg.norm(e) * rotation


def make_options(cls, num_embeddings=8, embedding_dim=4, seed=0, **options):
    """A built quantizer with random codes in its code space, EMA sums consistent with them."""
    layer = cls(num_embeddings, embedding_dim, seed=seed, **options)
    layer.build((None, embedding_dim))
    layer.set_codebook(rng_data(seed + 100, num_embeddings, options.get("codebook_dim") or embedding_dim))
    return layer


def copy_weights(source, target):
    for v, w in zip(source.weights, target.weights, strict=True):
        w.assign(v.numpy())


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("distance", ["l2", "cosine"])
@pytest.mark.parametrize("codebook_dim", [None, 2, 4])
@pytest.mark.parametrize("training", [False, True])
def test_options_forward_matches_numpy(cls, distance, codebook_dim, training):
    layer = make_options(cls, 16, 4, distance=distance, codebook_dim=codebook_dim, commitment_cost=0.3)
    x = rng_data(40, 2, 5, 4)
    ref = np_quantize_options(layer, x, beta=0.3)
    # The codebook lives in the code space; encode / decode go through the projections.
    assert tuple(layer.codebook.shape) == (16, codebook_dim or 4)
    np.testing.assert_array_equal(layer.encode(x), ref["indices"])
    np.testing.assert_allclose(layer.decode(ref["indices"]), ref["quantized"], rtol=1e-5, atol=1e-5)
    info = layer(x, training=training, return_info=True)  # searches before any update
    np.testing.assert_array_equal(info["indices"], ref["indices"])
    np.testing.assert_allclose(info["distances"], ref["distances"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(info["quantized"], ref["quantized"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(info["loss"], ref["loss"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(info["perplexity"], ref["perplexity"], rtol=1e-5)
    np.testing.assert_array_equal(info["counts"], ref["counts"][None])
    if distance == "cosine":
        np.testing.assert_allclose(np.linalg.norm(ref["codes"], axis=1), 1.0, rtol=1e-6)
        if codebook_dim is None:  # the output itself is on the unit sphere
            np.testing.assert_allclose(np.linalg.norm(info["quantized"], axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("distance", ["l2", "cosine"])
@pytest.mark.parametrize("codebook_dim", [None, 3])
def test_ema_options_update_matches_equations(distance, codebook_dim):
    decay, eps = 0.9, 1e-5
    layer = make_options(VectorQuantizerEMA, 6, 4, distance=distance, codebook_dim=codebook_dim, decay=decay)
    codebook = layer.codebook.numpy().astype(np.float64)
    state = (np.ones(6), codebook, codebook)
    for step in range(3):
        x = rng_data(41 + step, 20, 4) + step
        z = np_search_space(layer, x)  # the projections are not trained by the EMA
        layer(x, training=True)
        n, m, e = np_ema_step(state, z, decay, eps)
        if distance == "cosine":
            e = np_unit(e)  # the EMA means, re-normalised
        state = (n, m, e)
        np.testing.assert_allclose(layer.cluster_size, n, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(layer.ema_dw, m, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.codebook, e, rtol=1e-5, atol=1e-6)
    if distance == "cosine":
        np.testing.assert_allclose(np.linalg.norm(layer.codebook.numpy(), axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_l2_normalize_gradient_is_the_clamped_formulas(dtype):
    # The hand-written gradient against the Jacobian of x / max(|x|, 1e-12) in NumPy: on
    # ordinary rows (I - y y^T) / |x|, and below the clamp (zero and 1e-14 rows) I / 1e-12.
    from tfvq.layers.quantizers import _l2_normalize

    x = rng_data(48, 5, 4).astype(np.float64)
    x[1] = 0.0
    x[2] = 1e-14
    x[3] *= 1e5
    w = rng_data(49, 5, 4).astype(np.float64)
    xt = tf.constant(x, dtype)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = _l2_normalize(xt)
        out = tf.reduce_sum(y * tf.constant(w, dtype))
    grad = tape.gradient(out, xt).numpy()
    expected = []
    for x_row, w_row in zip(x, w, strict=True):
        norm = max(np.linalg.norm(x_row), 1e-12)
        unit = x_row / norm
        jacobian = np.eye(4) / norm
        if np.linalg.norm(x_row) >= 1e-12:
            jacobian -= np.outer(unit, unit) / norm
        expected.append(jacobian.T @ w_row)
    expected = np.array(expected)
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(y.numpy(), x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12), rtol=tolerance)
    np.testing.assert_allclose(grad / np.abs(expected).max(axis=1, keepdims=True),
                               expected / np.abs(expected).max(axis=1, keepdims=True), atol=tolerance)


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize(
    "options", [{}, {"distance": "cosine"}, {"codebook_dim": 2}, {"distance": "cosine", "codebook_dim": 3}]
)
@pytest.mark.parametrize("training", [False, True])
def test_rotation_forward_equals_straight_through(cls, options, training):
    straight = make_options(cls, **options)
    rotated = make_options(cls, gradient="rotation", **options)
    copy_weights(straight, rotated)
    x = rng_data(42, 3, 5, 4)
    x[0, 0] = 0.0  # the zero vector, whose gradient is passed straight through
    a = straight(x, training=training, return_info=True)
    b = rotated(x, training=training, return_info=True)
    for key in ("quantized", "indices", "loss", "counts", "distances"):
        np.testing.assert_array_equal(b[key], a[key], err_msg=key)
    for v, w in zip(straight.weights, rotated.weights, strict=True):
        np.testing.assert_array_equal(w.numpy(), v.numpy(), err_msg=v.path)


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("distance", ["l2", "cosine"])
def test_rotation_gradient_matches_householder_matrix(cls, distance):
    layer = make_options(cls, 8, 5, gradient="rotation", distance=distance)
    x = tf.constant(rng_data(43, 12, 5) * 2.0)
    w = rng_data(44, 12, 5)
    ref = np_quantize_options(layer, x.numpy())  # before the EMA moves the codes
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.reduce_sum(w * layer(x, training=True))
    grad = tape.gradient(out, x).numpy()
    expected = []
    for x_row, z_row, q_row, w_row in zip(x.numpy().astype(np.float64), ref["z"], ref["codes"], w, strict=True):
        jacobian = np_rotation_matrix(z_row, q_row)  # d out / d z
        if distance == "cosine":  # and z = x / |x|
            norm = np.linalg.norm(x_row)
            jacobian = jacobian @ (np.eye(5) - np.outer(z_row, z_row)) / norm
        expected.append(jacobian.T @ w_row)
    np.testing.assert_allclose(grad, np.array(expected), rtol=1e-4, atol=1e-5)
    # Not the straight-through gradient.
    assert np.abs(grad - w).max() > 0.1


@pytest.mark.parametrize("embedding_dim", [1, 4])
def test_rotation_gradient_degenerate_vectors(embedding_dim):
    # A single code q, the inputs 0 and -c q: no bisector r, and no direction for 0.
    q = rng_data(45, 1, embedding_dim) + 0.5
    layer = make(VectorQuantizer, q, gradient="rotation")
    x = tf.constant(np.concatenate([np.zeros((1, embedding_dim)), -0.5 * q, -3.0 * q]).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x, training=True)
    jacobians = tape.batch_jacobian(out, x).numpy()
    assert np.isfinite(jacobians).all()
    np.testing.assert_allclose(out, np.repeat(q, 3, axis=0), rtol=1e-6)
    np.testing.assert_allclose(jacobians[0], np.eye(embedding_dim), atol=1e-7)  # straight through
    for row, c in ((1, 0.5), (2, 3.0)):
        # Still |q| / |e| times an orthogonal map taking e onto q.
        scale = 1.0 / c
        j = jacobians[row] / scale
        np.testing.assert_allclose(j.T @ j, np.eye(embedding_dim), atol=1e-5)
        np.testing.assert_allclose(jacobians[row] @ x.numpy()[row], q[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("angle", [120.0, 150.0])  # the closed form, and the batch sent to _rotate_to
def test_rotation_term_gradient_is_the_householder_matrix(dtype, angle):
    # _rotation_term's value is 0 and its gradient the explicit |q| / |e| R, on rows at random
    # angles and one at `angle` degrees, plus a zero input (passed straight through) and a zero
    # code (a zero gradient).
    from tfvq.layers.quantizers import _rotation_term

    d = 6
    e = rng_data(51, 9, d).astype(np.float64)
    q = np.abs(rng_data(52, 9, d)).astype(np.float64) + 0.1
    e[:7] = np.abs(e[:7])  # within 90 degrees of their codes
    basis = np.linalg.qr(rng_data(53, d, 2).astype(np.float64))[0].T
    radians = np.deg2rad(angle)
    e[7], q[7] = 3.0 * basis[0], 0.5 * (np.cos(radians) * basis[0] + np.sin(radians) * basis[1])
    e[8], q[6] = 0.0, 0.0
    g = rng_data(54, 9, d).astype(np.float64)
    et = tf.constant(e, dtype)
    with tf.GradientTape() as tape:
        tape.watch(et)
        out = _rotation_term(et, tf.constant(q, dtype))
    grad = tape.gradient(out, et, output_gradients=tf.constant(g, dtype)).numpy()
    np.testing.assert_array_equal(out.numpy(), 0.0)
    expected = [np_rotation_matrix(e_row, q_row).T @ g_row for e_row, q_row, g_row in zip(e[:6], q[:6], g[:6])]
    expected += [np.zeros(d), np_rotation_matrix(e[7], q[7]).T @ g[7], g[8]]
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(grad, np.array(expected), rtol=tolerance, atol=tolerance)


def test_rotation_term_passes_overflowing_rows_straight_through():
    # |e|^2 overflows float32 in the middle row: its gradient is g, not NaN, and the other
    # rows keep theirs.
    from tfvq.layers.quantizers import _rotation_term

    e = np.abs(rng_data(55, 3, 4)).astype(np.float64) + 0.1
    q = np.abs(rng_data(56, 3, 4)).astype(np.float64) + 0.1
    e[1] = 3e19
    g = rng_data(57, 3, 4).astype(np.float64)
    et = tf.constant(e, "float32")
    with tf.GradientTape() as tape:
        tape.watch(et)
        out = _rotation_term(et, tf.constant(q, "float32"))
    grad = tape.gradient(out, et, output_gradients=tf.constant(g, "float32")).numpy()
    np.testing.assert_allclose(grad[1], g[1], rtol=1e-6)
    for row in (0, 2):
        np.testing.assert_allclose(grad[row], np_rotation_matrix(e[row], q[row]).T @ g[row], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("codebook_dim", [None, 2])
def test_factorized_codes_train_the_projections(cls, codebook_dim):
    layer = make_options(cls, codebook_dim=codebook_dim)
    x = tf.constant(rng_data(46, 10, 4))
    with tf.GradientTape() as tape:
        info = layer(x, training=True, return_info=True)
        total = tf.reduce_sum(info["quantized"] ** 2) + info["loss"]
    paths = [v.path for v in layer.trainable_weights]
    grads = dict(zip(paths, tape.gradient(total, layer.trainable_weights), strict=True))
    expected = {"codebook"} if cls is VectorQuantizer else set()
    if codebook_dim:
        expected |= {"project_in/kernel", "project_in/bias", "project_out/kernel", "project_out/bias"}
    assert {p.split("/", 1)[1] for p in grads} == expected
    for path, grad in grads.items():
        assert grad is not None and np.abs(np.asarray(tf.convert_to_tensor(grad))).max() > 0, path


# --- set_codebook -----------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [1e-5, 0.5])
def test_set_codebook_restarts_the_ema_from_the_new_values(epsilon):
    decay = 0.8
    layer = make(VectorQuantizerEMA, rng_data(47, 6, 3), decay=decay, epsilon=epsilon)
    for step in range(2):  # uneven cluster sizes, so that the smoothing matters
        layer(rng_data(48 + step, 30, 3) * 0.3, training=True)
    values = rng_data(50, 6, 3) * 2.0
    layer.set_codebook(values)
    np.testing.assert_array_equal(layer.codebook, values)
    n = layer.cluster_size.numpy().astype(np.float64)
    total = n.sum()
    smoothed = (n + epsilon) / (total + 6 * epsilon) * total
    x = rng_data(51, 25, 3)
    info = layer(x, training=True, return_info=True)
    np.testing.assert_array_equal(info["indices"], np_quantize(x, values, 0.25, True)["indices"])
    state = np_ema_step((n, values * smoothed[:, None], values.astype(np.float64)), x, decay, epsilon)
    np.testing.assert_allclose(layer.cluster_size, state[0], rtol=1e-6)
    np.testing.assert_allclose(layer.ema_dw, state[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.codebook, state[2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_set_codebook_marks_kmeans_done_and_validates(cls):
    x, _ = _clusters()
    layer = cls(4, 2, kmeans_init=True)
    values = rng_data(52, 4, 2)
    layer.set_codebook(values)  # builds the layer
    assert float(layer.initialized.numpy()) == 1.0
    layer(x, training=True)
    if cls is VectorQuantizer:  # no k-means replaced the values
        np.testing.assert_array_equal(layer.codebook, values)
    words = r"set_codebook expects values of shape \(num_embeddings=4, embedding_dim=2\); got shape \(4, 3\)"
    with pytest.raises(ValueError, match=words):
        layer.set_codebook(np.zeros((4, 3), np.float32))
    factorized = cls(4, 6, codebook_dim=2)
    with pytest.raises(ValueError, match=r"codebook_dim=2\); got shape \(4, 6\)"):
        factorized.set_codebook(np.zeros((4, 6), np.float32))
    cosine = cls(4, 2, distance="cosine")
    cosine.set_codebook(values)
    np.testing.assert_allclose(cosine.codebook, np_unit(values), rtol=1e-6)


# --- dtypes, counts, one matmul ---------------------------------------------------------------


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("input_dtype", ["float32", "float64"])
def test_float64_matches_numpy(cls, input_dtype):
    codebook = np.random.default_rng(53).normal(size=(16, 4))
    layer = cls(16, 4, commitment_cost=0.3, dtype="float64")
    layer.build((None, 4))
    layer.set_codebook(codebook)
    assert {v.dtype for v in layer.weights} == {"float64"}
    x = np.random.default_rng(54).normal(size=(3, 5, 4)).astype(input_dtype)
    ref = np_quantize(x, codebook, 0.3, cls is VectorQuantizerEMA)
    info = layer(x, training=True, return_info=True)
    assert info["quantized"].dtype == tf.float64 and info["loss"].dtype == tf.float64
    assert info["counts"].dtype == tf.float32
    np.testing.assert_array_equal(info["indices"], ref["indices"])
    np.testing.assert_allclose(info["quantized"], ref["quantized"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(info["distances"], ref["distances"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(info["loss"], ref["loss"], rtol=1e-10)
    if cls is VectorQuantizerEMA:
        state = np_ema_step((np.ones(16), codebook, codebook), x, 0.99, 1e-5)
        np.testing.assert_allclose(layer.codebook, state[2], rtol=1e-12, atol=1e-14)
    else:
        size = 0.99 + 0.01 * ref["counts"]
        np.testing.assert_allclose(layer.cluster_size, size, rtol=1e-14)


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("how", ["global", "layer"])
def test_mixed_precision_options(cls, options, how):
    x16 = rng_data(55, 2, 3, 4).astype(np.float16)
    if how == "global":
        keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            layer = make_options(cls, **options)
            info = layer(x16, training=True, return_info=True)
            outputs = layer(x16)
        finally:
            keras.mixed_precision.set_global_policy("float32")
    else:
        layer = make_options(cls, dtype="mixed_float16", **options)
        info = layer(x16, training=True, return_info=True)
        outputs = layer(x16)
    assert outputs.dtype == tf.float16 and info["quantized"].dtype == tf.float16
    assert layer.codebook.dtype == "float32" and layer.cluster_size.dtype == "float32"
    assert info["loss"].dtype == tf.float32 and info["counts"].dtype == tf.float32
    assert np.isfinite(info["quantized"].numpy()).all()
    if "codebook_dim" not in options:  # the float16 projection is not the float64 reference's
        layer32 = make_options(cls, **options)
        layer32.set_codebook(layer.codebook.numpy())
        np.testing.assert_array_equal(info["indices"], np_quantize_options(layer32, x16)["indices"])


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_counts_histogram_of_valid_rows(cls):
    codebook = rng_data(56, 6, 3)
    layer = make(cls, codebook)
    x = rng_data(57, 20, 3)
    x[4, 2] = np.nan
    info = layer(x, return_info=True)
    good = np.isfinite(x).all(1)
    expected = np.bincount(np_quantize(x[good], codebook, 0.25, False)["indices"], minlength=6)
    assert info["counts"].dtype == tf.float32 and tuple(info["counts"].shape) == (1, 6)
    np.testing.assert_array_equal(info["counts"], expected[None].astype(np.float32))
    assert np.isnan(info["distances"].numpy()[4]).all() and np.isfinite(info["distances"].numpy()[good]).all()


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("num_codes, matmuls", [(16, 1), (1300, 3)])
def test_return_info_runs_one_score_matmul_per_block(cls, num_codes, matmuls, monkeypatch):
    layer = make(cls, rng_data(58, num_codes, 3))
    calls = []
    original = keras.ops.matmul

    def counting(a, b):
        calls.append(tuple(b.shape))
        return original(a, b)

    # Every matmul of the call: the layer's own, as the codebook has no projection here.
    monkeypatch.setattr(keras.ops, "matmul", counting)
    x = rng_data(59, 40, 3)
    info = layer(x, return_info=True)
    monkeypatch.undo()
    assert len(calls) == matmuls and sum(shape[1] for shape in calls) == num_codes
    ref = np_quantize(x, layer.codebook.numpy(), 0.25, cls is VectorQuantizerEMA)
    np.testing.assert_array_equal(info["indices"], ref["indices"])
    np.testing.assert_allclose(info["distances"], ref["distances"], rtol=1e-5, atol=1e-4)


# --- XLA, replicas, empty and non-finite batches, with every option ----------------------------


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("options", OPTIONS_ALL_FAST)
def test_options_under_xla_match_eager(cls, options):
    eager = make_options(cls, dead_code_threshold=0.5, **options)
    compiled = make_options(cls, dead_code_threshold=0.5, **options)
    copy_weights(eager, compiled)

    def step(layer, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            info = layer(x, training=True, return_info=True)
            total = tf.reduce_sum(info["quantized"] * tf.range(4, dtype=tf.float32)) + info["loss"]
        return info, tape.gradient(total, x)

    xla_step = tf.function(lambda x: step(compiled, x), jit_compile=True)
    for seed in (60, 61):
        x = tf.constant(rng_data(seed, 16, 4))
        (a, grad_a), (b, grad_b) = step(eager, x), xla_step(x)
        np.testing.assert_array_equal(b["indices"], a["indices"])
        np.testing.assert_allclose(b["quantized"], a["quantized"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-5)
        np.testing.assert_allclose(grad_b, grad_a, rtol=1e-4, atol=1e-5)
    for v, w in zip(eager.weights, compiled.weights, strict=True):
        np.testing.assert_allclose(w.numpy(), v.numpy(), rtol=1e-5, atol=1e-5, err_msg=v.path)


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_mirrored_options_match_single_device(strategy, cls, options):
    options = {**options, "decay": 0.9} if cls is VectorQuantizerEMA else options
    single = make_options(cls, **options)
    with strategy.scope():
        mirrored = make_options(cls, **options)
    copy_weights(single, mirrored)

    @tf.function
    def replicated_step(x):
        return strategy.run(lambda v: mirrored(v, training=True, return_info=True)["indices"], (x,))

    for seed in (62, 63):
        x = rng_data(seed, 16, 4)
        halves = strategy.experimental_distribute_values_from_function(
            lambda ctx, x=x: x[8 * ctx.replica_id_in_sync_group : 8 * (ctx.replica_id_in_sync_group + 1)]
        )
        indices = np.concatenate(strategy.experimental_local_results(replicated_step(halves)))
        expected = single(x, training=True, return_info=True)["indices"]
        np.testing.assert_array_equal(indices, expected)
        for v, w in zip(single.weights, mirrored.weights, strict=True):
            values = [u.numpy() for u in strategy.experimental_local_results(w.value)]
            np.testing.assert_array_equal(values[0], values[1], err_msg=f"replicas disagree: {w.path}")
            np.testing.assert_allclose(values[0], v.numpy(), rtol=1e-5, atol=1e-6, err_msg=v.path)


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("options", OPTIONS_ALL_FAST)
def test_options_empty_batch(cls, options):
    layer = make_options(cls, kmeans_init=True, dead_code_threshold=1.0, **options)
    layer.initialized.assign(0.0)
    g = lambda v: layer(v, training=True, return_info=True)  # noqa: E731
    for call in (g, tf.function(g), tf.function(g, jit_compile=True)):
        info = call(tf.zeros((0, 4)))
        assert tuple(info["quantized"].shape) == (0, 4) and tuple(info["indices"].shape) == (0,)
        assert float(info["loss"]) == 0.0 and np.isfinite(info["perplexity"].numpy())
        assert tuple(info["counts"].shape) == (1, 8) and float(tf.reduce_sum(info["counts"])) == 0.0
    for v in layer.weights:
        assert np.isfinite(v.numpy()).all(), v.path
    assert float(layer.initialized.numpy()) == 0.0


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
def test_options_non_finite_rows_get_code_0_and_change_no_statistic(cls, options):
    layer = make_options(cls, **options)
    x = rng_data(64, 12, 4)
    x[2, 1] = np.nan
    x[5] = np.inf
    before = variables(layer)
    info = layer(x, training=True, return_info=True)
    for path, value in before.items():
        np.testing.assert_array_equal(variables(layer)[path], value, err_msg=path)
    assert info["indices"].numpy()[2] == info["indices"].numpy()[5] == 0
    good = np.isfinite(x).all(1)
    np.testing.assert_array_equal(info["indices"].numpy()[good], np_quantize_options(layer, x[good])["indices"])
    np.testing.assert_array_equal(layer.encode(x), info["indices"])


# --- Construction, config, saving -------------------------------------------------------------


@pytest.mark.parametrize("cls", QUANTIZERS)
def test_from_sizes_and_config_carry_the_options(cls):
    layer = cls.from_sizes(32, 8, 0.3, distance="cosine", codebook_dim=4, gradient="rotation")
    assert (layer.codebook_size, layer.embedding_dim, layer.commitment_cost) == (32, 8, 0.3)
    config = layer.get_config()
    assert {k: config[k] for k in ("distance", "codebook_dim", "gradient")} == {
        "distance": "cosine", "codebook_dim": 4, "gradient": "rotation"
    }
    assert cls.from_config(config).get_config() == config
    assert cls(8, 4).get_config()["codebook_dim"] is None


@pytest.mark.parametrize("cls", QUANTIZERS)
@pytest.mark.parametrize("distance", ["l2", "cosine"])
@pytest.mark.parametrize("codebook_dim", [None, 2])
@pytest.mark.parametrize("gradient", ["straight_through", "rotation"])
def test_keras_round_trip_every_option(cls, distance, codebook_dim, gradient, tmp_path):
    layer = cls(8, 4, name="vq", distance=distance, codebook_dim=codebook_dim, gradient=gradient, seed=3)
    inputs = keras.Input((3, 4))
    model = keras.Model(inputs, layer(inputs))
    layer(rng_data(65, 10, 4), training=True)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    restored = loaded.get_layer("vq")
    assert type(restored) is cls and restored.get_config() == layer.get_config()
    for v, w in zip(layer.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(v.numpy(), w.numpy(), err_msg=v.path)
    x = rng_data(66, 2, 3, 4)
    np.testing.assert_array_equal(loaded(x), model(x))


@pytest.mark.parametrize(
    "make_layer, words",
    [
        (lambda: VectorQuantizer(8, 4, distance="dot"), r"distance in \('l2', 'cosine'\); got 'dot'"),
        (lambda: VectorQuantizerEMA(8, 4, distance="L2"), r"distance in .*; got 'L2'"),
        (lambda: VectorQuantizer(8, 4, gradient="ste"),
         r"gradient in \('straight_through', 'rotation'\); got 'ste'"),
        (lambda: VectorQuantizerEMA(8, 4, gradient=None), r"gradient in .*; got None"),
        (lambda: VectorQuantizer(8, 4, codebook_dim=0),
         r"codebook_dim None or an int in \[1, embedding_dim=4\]; got 0"),
        (lambda: VectorQuantizerEMA(8, 4, codebook_dim=5), r"codebook_dim .*\[1, embedding_dim=4\]; got 5"),
        (lambda: VectorQuantizer(8, 4, codebook_dim=2.0), r"codebook_dim .*; got 2.0"),
        (lambda: VectorQuantizer(8, 4, codebook_dim=True), r"codebook_dim .*; got True"),
    ],
)
def test_bad_option_arguments(make_layer, words):
    with pytest.raises(ValueError, match=words):
        make_layer()


@pytest.mark.parametrize("num_vectors", [0, 7, 1024, 2500])
def test_the_row_chunked_search_gives_the_one_block_indices(num_vectors):
    import tensorflow as tf

    layer = VectorQuantizerEMA(512, 16, seed=0)
    x = np.random.default_rng(num_vectors).normal(size=(num_vectors, 16)).astype("float32")
    chunked = tf.function(layer.encode)(x)  # TensorFlow without XLA: 1024 rows per matmul
    z, _ = layer._search_space(tf.constant(x))
    one_block, _ = layer._nearest(z, layer._codes(), return_scores=True)
    np.testing.assert_array_equal(np.asarray(chunked), np.asarray(one_block))
