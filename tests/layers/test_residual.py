"""Tests of tfvq.layers.residual against a NumPy version of SoundStream's residual recursion."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvq.layers import QUANTIZERS, Quantizer, ResidualVectorQuantizer, VectorQuantizer, VectorQuantizerEMA

# --- NumPy references -------------------------------------------------------------------------


def np_rvq(x, codebooks, beta=0.25, ema=True, active=None):
    """SoundStream's algorithm 1 in float64: r_1 = x, q_i = nearest(r_i), r_{i+1} = r_i - q_i."""
    x = np.asarray(x, np.float64)
    d = x.shape[-1]
    residual = x.reshape(-1, d)
    active = len(codebooks) if active is None else active
    total = np.zeros_like(residual)
    indices, losses, counts, distances, residuals = [], [], [], [], []
    for i, e in enumerate(np.asarray(codebooks, np.float64)):
        dist = ((residual[:, None, :] - e[None]) ** 2).sum(-1)
        index = dist.argmin(1)
        q = e[index]
        mse = ((q - residual) ** 2).mean() if residual.size else 0.0
        losses.append(beta * mse if ema else (1 + beta) * mse)
        residuals.append(residual)
        if i < active:
            total = total + q
        residual = residual - q
        indices.append(index)
        counts.append(np.bincount(index, minlength=e.shape[0]))
        distances.append(dist)
    leading = x.shape[:-1]
    k = np.shape(codebooks)[1]
    return {
        "quantized": total.reshape(x.shape),
        "indices": np.stack(indices, -1).reshape(leading + (len(codebooks),)),
        "loss": sum(losses[:active]),
        "stage_losses": np.array(losses),
        "counts": np.array(counts, np.float64),
        "distances": np.stack(distances, -2).reshape(leading + (len(codebooks), k)),
        "residuals": residuals,  # what each stage quantized
    }


def np_ema_step(state, residual, decay=0.99, eps=1e-5):
    """Appendix A.1 of van den Oord et al. 2017 on one stage: (N, m, e) with Laplace smoothing."""
    n_prev, m_prev, e_prev = state
    k = e_prev.shape[0]
    index = ((residual[:, None, :] - e_prev[None]) ** 2).sum(-1).argmin(1)
    n = np.bincount(index, minlength=k).astype(np.float64)
    sums = np.zeros_like(e_prev)
    np.add.at(sums, index, residual)
    n_new = decay * n_prev + (1 - decay) * n
    m_new = decay * m_prev + (1 - decay) * sums
    total = n_new.sum()
    return n_new, m_new, m_new / (((n_new + eps) / (total + k * eps)) * total)[:, None]


def np_statistics(counts):
    p = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    entropy = -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)).sum(1)
    return np.exp(entropy).mean(), (counts > 0).mean()


def rng_data(seed, *shape):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def make_codebooks(seed, q, k, d):
    """Stage i's codes at scale 0.5^i, the size of what the stages before it leave."""
    return np.stack([rng_data(seed + i, k, d) * 0.5**i for i in range(q)])


def make(q, k, d, quantizer="ema", codebooks=None, seed=0, **kwargs):
    layer = ResidualVectorQuantizer(q, k, d, quantizer=quantizer, seed=seed, **kwargs)
    layer.build((None, d))
    if codebooks is not None:
        layer.set_codebook(codebooks)
    return layer


def variables(layer):
    return {v.path: np.array(v.numpy()) for v in layer.weights if "seed_generator" not in v.path}


# --- Forward pass -----------------------------------------------------------------------------


@pytest.mark.parametrize("quantizer", ["vq", "ema"])
@pytest.mark.parametrize("num_quantizers", [1, 3])
@pytest.mark.parametrize("shape", [(24,), (2, 3, 4)])
@pytest.mark.parametrize("training", [False, True])
def test_forward_matches_numpy(quantizer, num_quantizers, shape, training):
    codebooks = make_codebooks(0, num_quantizers, 8, 3)
    layer = make(num_quantizers, 8, 3, quantizer, codebooks, commitment_cost=0.3)
    assert isinstance(layer, Quantizer)
    assert (layer.num_codebooks, layer.codebook_size, layer.embedding_dim) == (num_quantizers, 8, 3)
    x = rng_data(10, *shape, 3)
    ref = np_rvq(x, codebooks, 0.3, ema=quantizer == "ema")
    np.testing.assert_allclose(layer(x), ref["quantized"], atol=1e-5)
    # Stage i's update cannot change what stage j != i searches: one reference for both modes.
    info = layer(x, training=training, return_info=True)
    np.testing.assert_allclose(info["quantized"], ref["quantized"], atol=1e-5)
    np.testing.assert_array_equal(info["indices"], ref["indices"])
    assert info["indices"].dtype == tf.int32 and tuple(info["indices"].shape) == shape + (num_quantizers,)
    np.testing.assert_allclose(info["loss"], ref["loss"], rtol=1e-5)
    np.testing.assert_allclose(info["stage_losses"], ref["stage_losses"], rtol=1e-5)
    assert int(info["active_quantizers"]) == num_quantizers
    assert info["counts"].dtype == tf.float32 and tuple(info["counts"].shape) == (num_quantizers, 8)
    np.testing.assert_array_equal(info["counts"], ref["counts"])
    perplexity, usage = np_statistics(ref["counts"])
    np.testing.assert_allclose(info["perplexity"], perplexity, rtol=1e-5)
    np.testing.assert_allclose(info["usage"], usage, rtol=1e-6)
    np.testing.assert_allclose(info["distances"], ref["distances"], rtol=1e-5, atol=1e-5)
    # Each stage adds its own loss; they sum to the layer's.
    assert len(layer.losses) == num_quantizers
    np.testing.assert_allclose(sum(float(v) for v in layer.losses), ref["loss"], rtol=1e-5)


def test_residual_shrinks_with_every_stage():
    # With codes learned for it, every further stage reconstructs better (SoundStream fig. 2).
    x = rng_data(11, 256, 2)
    layer = ResidualVectorQuantizer(4, 16, 2, decay=0.5, seed=1)
    for _ in range(15):
        layer(x, training=True)
    errors = [float(np.mean((layer.decode(layer.encode(x)[..., :q]).numpy() - x) ** 2)) for q in range(1, 5)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors


@pytest.mark.parametrize("quantizer", ["vq", "ema"])
def test_encode_decode(quantizer):
    codebooks = make_codebooks(1, 3, 6, 4)
    layer = make(3, 6, 4, quantizer, codebooks)
    x = rng_data(12, 2, 5, 4)
    ref = np_rvq(x, codebooks)
    indices = layer.encode(x)
    assert tuple(indices.shape) == (2, 5, 3) and indices.dtype == tf.int32
    np.testing.assert_array_equal(indices, ref["indices"])
    np.testing.assert_allclose(layer.decode(indices), layer(x, training=False), atol=1e-6)
    # The first q levels alone: the sum of the first q stages' codes.
    for q in (1, 2, 3):
        expected = sum(codebooks[i][ref["indices"][..., i]] for i in range(q))
        np.testing.assert_allclose(layer.decode(ref["indices"][..., :q]), expected, atol=1e-6)
    for bad in (np.zeros((2, 4), np.int32), np.zeros((2, 0), np.int32)):
        with pytest.raises(ValueError, match=r"1 to num_quantizers=3 levels; got shape \(2, \d\)"):
            layer.decode(bad)


# --- Statistics -------------------------------------------------------------------------------


def test_ema_stages_follow_their_residuals():
    decay = 0.8
    codebooks = make_codebooks(2, 3, 6, 3)
    layer = make(3, 6, 3, "ema", codebooks, decay=decay)
    states = [(np.ones(6), c.astype(np.float64), c.astype(np.float64)) for c in codebooks]
    for step in range(3):
        x = rng_data(20 + step, 30, 3)
        info = layer(x, training=True, return_info=True)
        ref = np_rvq(x, [s[2] for s in states])  # searched before the updates
        np.testing.assert_array_equal(info["indices"], ref["indices"])
        states = [np_ema_step(s, r, decay) for s, r in zip(states, ref["residuals"], strict=True)]
        for stage, (n, m, e) in zip(layer.stages, states, strict=True):
            np.testing.assert_allclose(stage.cluster_size, n, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(stage.ema_dw, m, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(stage.codebook, e, rtol=1e-5, atol=1e-5)


def test_shared_codebook():
    codebook = rng_data(3, 8, 2)
    layer = make(3, 8, 2, "vq", codebook, shared_codebook=True, usage_decay=0.9)
    assert len(layer.stages) == 1  # one sublayer, called once per level
    assert tuple(layer.stages[0].codebook.shape) == (8, 2)
    x = rng_data(13, 20, 2)
    ref = np_rvq(x, [codebook] * 3, ema=False)
    info = layer(x, training=True, return_info=True)
    np.testing.assert_allclose(info["quantized"], ref["quantized"], atol=1e-5)
    np.testing.assert_array_equal(info["indices"], ref["indices"])
    np.testing.assert_allclose(info["loss"], ref["loss"], rtol=1e-5)
    # A learned codebook does not move in the forward pass; its usage EMA steps once a level.
    np.testing.assert_array_equal(layer.stages[0].codebook, codebook)
    size = np.ones(8)
    for counts in ref["counts"]:
        size = 0.9 * size + 0.1 * counts
    np.testing.assert_allclose(layer.stages[0].cluster_size, size, rtol=1e-6)
    np.testing.assert_array_equal(layer.encode(x), ref["indices"])


def test_shared_codebook_gradient_sums_every_level():
    codebook = rng_data(4, 5, 2)
    layer = make(2, 5, 2, "vq", codebook, shared_codebook=True, commitment_cost=0.25)
    x = tf.constant(rng_data(14, 9, 2))
    with tf.GradientTape() as tape:
        loss = layer(x, training=True, return_info=True)["loss"]
    grad = tf.convert_to_tensor(tape.gradient(loss, layer.stages[0].codebook)).numpy()
    ref = np_rvq(x.numpy(), [codebook] * 2, ema=False)
    expected = np.zeros((5, 2))
    for level, residual in enumerate(ref["residuals"]):  # d/de of mean((e - sg r)^2) per level
        index = ref["indices"][:, level]
        np.add.at(expected, index, 2 * (codebook[index] - residual) / residual.size)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)


# --- Quantize dropout -------------------------------------------------------------------------


@pytest.mark.parametrize("quantizer", ["vq", "ema"])
def test_quantize_dropout_uses_the_first_q_stages(quantizer):
    codebooks = make_codebooks(5, 4, 6, 3)
    x = rng_data(15, 16, 3)
    seen = set()
    for seed in range(12):
        layer = make(4, 6, 3, quantizer, codebooks, seed=seed, quantize_dropout=0.999)
        info = layer(x, training=True, return_info=True)
        q = int(info["active_quantizers"])
        assert 1 <= q <= 4
        seen.add(q)
        ref = np_rvq(x, codebooks, ema=quantizer == "ema", active=q)
        np.testing.assert_allclose(info["quantized"], ref["quantized"], atol=1e-5)
        np.testing.assert_allclose(info["loss"], ref["loss"], rtol=1e-5)
        # Every stage still ran, and reports its codes and its loss.
        np.testing.assert_array_equal(info["indices"], ref["indices"])
        np.testing.assert_array_equal(info["counts"], ref["counts"])
        np.testing.assert_allclose(info["stage_losses"], ref["stage_losses"], rtol=1e-5)
        # `losses` sum to the loss of the stages used.
        np.testing.assert_allclose(sum(float(v) for v in layer.losses), ref["loss"], rtol=1e-5, atol=1e-7)
    assert len(seen) >= 2, seen
    # Never outside training.
    info = layer(x, training=False, return_info=True)
    assert int(info["active_quantizers"]) == 4
    np.testing.assert_allclose(info["quantized"], np_rvq(x, layer_codebooks(layer))["quantized"], atol=1e-5)


def layer_codebooks(layer):
    return np.stack([stage.codebook.numpy() for stage in layer.stages])


def test_quantize_dropout_rate():
    layer = make(4, 4, 2, "vq", make_codebooks(6, 4, 4, 2), seed=3, quantize_dropout=0.5)
    step = tf.function(lambda v: layer(v, training=True, return_info=True)["active_quantizers"])
    x = rng_data(16, 4, 2)
    draws = np.array([int(step(x)) for _ in range(400)])
    assert set(draws) == {1, 2, 3, 4}
    # P(q < 4) = 0.5 * 3 / 4; 400 draws put the rate within 0.06 of it with 99% probability.
    assert abs((draws < 4).mean() - 0.375) < 0.065
    assert np.isin(draws, [1, 2, 3, 4]).all()
    no_dropout = make(4, 4, 2, "vq", make_codebooks(6, 4, 4, 2))
    assert int(no_dropout(x, training=True, return_info=True)["active_quantizers"]) == 4


def test_quantize_dropout_gradient():
    codebooks = make_codebooks(7, 3, 5, 2)
    layer = make(3, 5, 2, "ema", codebooks, seed=2, quantize_dropout=0.999, commitment_cost=0.5)
    x = tf.constant(rng_data(17, 10, 2))
    w = rng_data(18, 10, 2)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        info = layer(x, training=True, return_info=True)
        out = tf.reduce_sum(w * info["quantized"])
        added = tf.add_n(layer.losses)
    q = int(info["active_quantizers"])
    ref = np_rvq(x.numpy(), codebooks, 0.5, active=q)
    np.testing.assert_allclose(tape.gradient(out, x), w, atol=1e-6)
    # Commitment gradients of the used stages only: 2 beta (r_i - q_i) / numel each.
    expected = sum(
        2 * 0.5 * (r - codebooks[i][ref["indices"][:, i]]) / r.size
        for i, r in enumerate(ref["residuals"][:q])
    )
    np.testing.assert_allclose(tape.gradient(info["loss"], x), expected, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(tape.gradient(added, x), expected, rtol=1e-4, atol=1e-6)


# --- Gradients --------------------------------------------------------------------------------


@pytest.mark.parametrize("quantizer", ["vq", "ema"])
def test_gradients(quantizer):
    beta = 0.25
    codebooks = make_codebooks(8, 3, 6, 3)
    layer = make(3, 6, 3, quantizer, codebooks, commitment_cost=beta)
    x = tf.constant(rng_data(19, 4, 5, 3))
    w = rng_data(20, 4, 5, 3)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        info = layer(x, training=True, return_info=True)
        out = tf.reduce_sum(w * info["quantized"])
    ref = np_rvq(x.numpy(), codebooks, beta, ema=quantizer == "ema")
    # Straight-through once for the whole sum, not once per stage.
    np.testing.assert_allclose(tape.gradient(out, x), w, atol=1e-6)
    expected = sum(
        2 * beta * (r - codebooks[i][ref["indices"].reshape(-1, 3)[:, i]]) / r.size
        for i, r in enumerate(ref["residuals"])
    )
    np.testing.assert_allclose(tape.gradient(info["loss"], x), expected.reshape(4, 5, 3), rtol=1e-4, atol=1e-7)
    if quantizer == "vq":  # each codebook from its own stage's codebook term
        for i, stage in enumerate(layer.stages):
            index = ref["indices"].reshape(-1, 3)[:, i]
            r = ref["residuals"][i]
            grad = np.zeros((6, 3))
            np.add.at(grad, index, 2 * (codebooks[i][index] - r) / r.size)
            np.testing.assert_allclose(
                tf.convert_to_tensor(tape.gradient(info["loss"], stage.codebook)), grad, rtol=1e-4, atol=1e-6
            )
    else:
        assert layer.trainable_weights == []


# --- Replicas, XLA, dtypes, edge cases --------------------------------------------------------


@pytest.mark.parametrize("quantize_dropout", [0.0, 0.6])
def test_mirrored_matches_single_device(mirrored_strategy, quantize_dropout):
    strategy = mirrored_strategy
    codebooks = make_codebooks(9, 3, 6, 3)
    options = dict(decay=0.8, seed=5, quantize_dropout=quantize_dropout)
    single = make(3, 6, 3, "ema", codebooks, **options)
    with strategy.scope():
        mirrored = make(3, 6, 3, "ema", codebooks, **options)

    @tf.function
    def replicated_step(x):
        def fn(v):
            info = mirrored(v, training=True, return_info=True)
            return info["indices"], info["active_quantizers"]

        return strategy.run(fn, (x,))

    for seed in range(3):
        x = rng_data(30 + seed, 16, 3)
        halves = strategy.experimental_distribute_values_from_function(
            lambda ctx, x=x: x[8 * ctx.replica_id_in_sync_group : 8 * (ctx.replica_id_in_sync_group + 1)]
        )
        indices, active = replicated_step(halves)
        expected = single(x, training=True, return_info=True)
        np.testing.assert_array_equal(np.concatenate(strategy.experimental_local_results(indices)), expected["indices"])
        # Both replicas drew the q one device drew.
        assert [int(a) for a in strategy.experimental_local_results(active)] == [int(expected["active_quantizers"])] * 2
        for v, w in zip(single.weights, mirrored.weights, strict=True):
            values = [u.numpy() for u in strategy.experimental_local_results(w.value)]
            np.testing.assert_array_equal(values[0], values[1], err_msg=f"replicas disagree: {w.path}")
            np.testing.assert_allclose(values[0], v.numpy(), rtol=1e-5, atol=1e-6, err_msg=v.path)


@pytest.mark.slow
@pytest.mark.parametrize("quantizer", ["vq", "ema"])
def test_under_xla_matches_eager(quantizer):
    codebooks = make_codebooks(10, 3, 6, 4)
    options = dict(seed=7, quantize_dropout=0.5, dead_code_threshold=0.3)
    eager = make(3, 6, 4, quantizer, codebooks, **options)
    compiled = make(3, 6, 4, quantizer, codebooks, **options)

    def step(layer, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            info = layer(x, training=True, return_info=True)
            total = tf.reduce_sum(info["quantized"] * tf.range(4, dtype=tf.float32)) + info["loss"]
        return info, tape.gradient(total, x)

    xla_step = tf.function(lambda x: step(compiled, x), jit_compile=True)
    for seed in (40, 41, 42):
        x = tf.constant(rng_data(seed, 16, 4))
        (a, grad_a), (b, grad_b) = step(eager, x), xla_step(x)
        assert int(a["active_quantizers"]) == int(b["active_quantizers"])
        np.testing.assert_array_equal(b["indices"], a["indices"])
        np.testing.assert_allclose(b["quantized"], a["quantized"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-5)
        np.testing.assert_allclose(grad_b, grad_a, rtol=1e-4, atol=1e-5)
    for v, w in zip(eager.weights, compiled.weights, strict=True):
        np.testing.assert_allclose(w.numpy(), v.numpy(), rtol=1e-5, atol=1e-5, err_msg=v.path)


@pytest.mark.parametrize("quantizer", ["vq", "ema"])
@pytest.mark.parametrize("how", ["global", "layer"])
def test_mixed_precision(quantizer, how):
    codebooks = make_codebooks(11, 2, 8, 4)
    x16 = rng_data(50, 3, 5, 4).astype(np.float16)
    if how == "global":
        keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            layer = make(2, 8, 4, quantizer, codebooks)
        finally:
            keras.mixed_precision.set_global_policy("float32")
    else:
        layer = make(2, 8, 4, quantizer, codebooks, dtype="mixed_float16")
    info = layer(x16, training=True, return_info=True)
    assert info["quantized"].dtype == tf.float16 and layer.decode(info["indices"]).dtype == tf.float16
    assert {v.dtype for v in layer.weights if "seed" not in v.path} == {"float32"}
    assert info["loss"].dtype == tf.float32 and info["counts"].dtype == tf.float32
    ref = np_rvq(x16.astype(np.float32), codebooks, ema=quantizer == "ema")
    np.testing.assert_array_equal(info["indices"], ref["indices"])
    np.testing.assert_allclose(info["loss"], ref["loss"], rtol=1e-4)
    np.testing.assert_allclose(info["quantized"], ref["quantized"].astype(np.float16), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("quantizer", ["vq", "ema"])
def test_float64_matches_numpy(quantizer):
    codebooks = np.random.default_rng(60).normal(size=(3, 8, 3)) * np.array([1, 0.5, 0.25])[:, None, None]
    layer = make(3, 8, 3, quantizer, codebooks, dtype="float64")
    assert {v.dtype for v in layer.weights if "seed" not in v.path} == {"float64"}
    x = np.random.default_rng(61).normal(size=(20, 3))
    info = layer(x, training=True, return_info=True)
    ref = np_rvq(x, codebooks, ema=quantizer == "ema")
    assert info["quantized"].dtype == tf.float64 and info["loss"].dtype == tf.float64
    assert info["counts"].dtype == tf.float32
    np.testing.assert_array_equal(info["indices"], ref["indices"])
    np.testing.assert_allclose(info["quantized"], ref["quantized"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(info["loss"], ref["loss"], rtol=1e-10)


@pytest.mark.parametrize("quantizer", ["vq", "ema"])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_empty_batch(quantizer, jit_compile):
    layer = make(3, 6, 2, quantizer, make_codebooks(12, 3, 6, 2), quantize_dropout=0.5, seed=1)
    g = lambda v: layer(v, training=True, return_info=True)  # noqa: E731
    for call in (g, tf.function(g, jit_compile=jit_compile)):
        info = call(tf.zeros((0, 2)))
        assert tuple(info["quantized"].shape) == (0, 2) and tuple(info["indices"].shape) == (0, 3)
        assert float(info["loss"]) == 0.0 and np.isfinite(info["perplexity"].numpy())
        assert tuple(info["counts"].shape) == (3, 6) and float(tf.reduce_sum(info["counts"])) == 0.0
    for v in layer.weights:
        assert np.isfinite(v.numpy()).all(), v.path
    assert tuple(layer.encode(np.zeros((0, 2), np.float32)).shape) == (0, 3)


@pytest.mark.parametrize("quantizer", ["vq", "ema"])
@pytest.mark.parametrize("jit_compile", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_non_finite_rows_change_no_statistic(quantizer, jit_compile):
    codebooks = make_codebooks(13, 3, 6, 3)
    layer = make(3, 6, 3, quantizer, codebooks, dead_code_threshold=2.0, quantize_dropout=0.5)
    step = tf.function(lambda v: layer(v, training=True, return_info=True), jit_compile=jit_compile)
    x = rng_data(70, 20, 3)
    x[2, 1] = np.nan
    x[5, 0] = np.inf
    x[9] = -np.inf
    bad = np.zeros(20, bool)
    bad[[2, 5, 9]] = True
    before = variables(layer)
    info = step(x)
    after = variables(layer)
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)
    indices = info["indices"].numpy()
    assert (indices[bad] == 0).all()  # code 0 at every level
    np.testing.assert_array_equal(indices[~bad], np_rvq(x[~bad], codebooks)["indices"])
    assert np.isnan(info["quantized"].numpy()[bad]).all()
    assert np.isfinite(info["quantized"].numpy()[~bad]).all()
    np.testing.assert_array_equal(info["counts"], np_rvq(x[~bad], codebooks)["counts"])


# --- Saving and validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    "quantizer, options",
    [
        ("ema", {"decay": 0.8, "epsilon": 1e-3, "quantize_dropout": 0.3, "seed": 4, "kmeans_init": True}),
        ("vq", {"shared_codebook": True, "commitment_cost": 0.4, "usage_decay": 0.9}),
        ("vq", {"codebook_dim": 2, "distance": "cosine"}),
    ],
)
def test_keras_round_trip(quantizer, options, tmp_path):
    layer = ResidualVectorQuantizer(3, 8, 4, quantizer=quantizer, name="rvq", **options)
    inputs = keras.Input((3, 3, 4))
    model = keras.Model(inputs, layer(inputs))
    layer(rng_data(80, 12, 4), training=True)  # move the statistics away from their initial values
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    restored = loaded.get_layer("rvq")
    assert type(restored) is ResidualVectorQuantizer
    assert restored.get_config() == layer.get_config()
    assert [type(s) for s in restored.stages] == [type(s) for s in layer.stages]
    for v, w in zip(layer.weights, restored.weights, strict=True):
        assert v.path == w.path
        np.testing.assert_array_equal(v.numpy(), w.numpy(), err_msg=v.path)
    x = rng_data(81, 2, 3, 3, 4)
    np.testing.assert_array_equal(loaded(x), model(x))
    np.testing.assert_array_equal(restored.encode(x), layer.encode(x))


def test_stages_get_the_options():
    layer = ResidualVectorQuantizer(2, 8, 4, decay=0.7, dead_code_threshold=0.5, commitment_cost=0.1, seed=3)
    assert [type(s) for s in layer.stages] == [VectorQuantizerEMA, VectorQuantizerEMA]
    assert [s.decay for s in layer.stages] == [0.7, 0.7]
    assert [s.seed for s in layer.stages] == [3, 4]
    assert {s.commitment_cost for s in layer.stages} == {0.1}
    assert {s.dead_code_threshold for s in layer.stages} == {0.5}
    assert layer.get_config()["decay"] == 0.7


def test_from_sizes_and_registry():
    assert QUANTIZERS["rvq"] is ResidualVectorQuantizer
    layer = ResidualVectorQuantizer.from_sizes(32, 8, commitment_cost=0.3, name="quantizer")
    assert (layer.num_quantizers, layer.codebook_size, layer.embedding_dim) == (4, 32, 8)
    assert layer.name == "quantizer" and layer.commitment_cost == 0.3
    layer = ResidualVectorQuantizer.from_sizes(32, 8, num_quantizers=2, quantizer="vq", usage_decay=0.5)
    assert layer.num_codebooks == 2 and [type(s) for s in layer.stages] == [VectorQuantizer] * 2


def test_set_codebook():
    layer = make(2, 4, 3, "ema")
    values = make_codebooks(14, 2, 4, 3)
    layer.set_codebook(values)
    for stage, v in zip(layer.stages, values, strict=True):
        np.testing.assert_allclose(stage.codebook, v, rtol=1e-6)
    with pytest.raises(ValueError, match=r"num_quantizers=2, num_embeddings=4, code size\); got shape \(4, 3\)"):
        layer.set_codebook(values[0])
    with pytest.raises(ValueError, match="shape"):
        layer.set_codebook(np.zeros((2, 4, 5), np.float32))  # the stage checks its own shape
    shared = make(3, 4, 3, "vq", shared_codebook=True)
    shared.set_codebook(values[1])
    np.testing.assert_allclose(shared.stages[0].codebook, values[1])


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"num_quantizers": 0}, "num_quantizers >= 1"),
        ({"num_quantizers": -2}, "num_quantizers >= 1"),
        ({"num_quantizers": 2.5}, "num_quantizers >= 1"),
        ({"num_embeddings": 0}, "num_embeddings >= 1"),
        ({"embedding_dim": 0}, "embedding_dim >= 1"),
        ({"quantizer": "kmeans"}, r"quantizer in \('vq', 'ema'\); got 'kmeans'"),
        ({"quantize_dropout": 1.0}, r"quantize_dropout in \[0, 1\); got 1.0"),
        ({"quantize_dropout": -0.1}, "quantize_dropout in"),
        ({"quantize_dropout": True}, "quantize_dropout in"),
        ({"shared_codebook": True}, "cannot share one codebook between stages with quantizer='ema'"),
        ({"shared_codebook": "yes", "quantizer": "vq"}, "shared_codebook True or False"),
        ({"seed": 1.5}, "seed None or an int"),
        ({"decay": 1.5}, "decay"),
        ({"quantizer": "vq", "distance": "l1"}, "distance"),
    ],
)
def test_bad_arguments(kwargs, words):
    args = {"num_quantizers": 2, "num_embeddings": 8, "embedding_dim": 4, **kwargs}
    with pytest.raises(ValueError, match=words):
        ResidualVectorQuantizer(**args)


@pytest.mark.parametrize(
    "inputs, words",
    [
        (np.zeros((3, 5), np.float32), r"embedding_dim=4; got shape \(3, 5\)"),
        (np.zeros((4,), np.float32), "rank >= 2"),
        (np.zeros((3, 4), np.int32), "floating-point inputs; got dtype int32"),
    ],
)
def test_bad_inputs(inputs, words):
    layer = ResidualVectorQuantizer(2, 8, 4)
    with pytest.raises(ValueError, match=words):
        layer(inputs)
    with pytest.raises(ValueError, match=words):
        layer.encode(inputs)
