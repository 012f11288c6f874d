"""Tests of tfvq.layers.lfq against a NumPy version of MAGVIT-v2's equations written here.

The reference searches every one of the 2^D codes explicitly, with the softmax of minus the
full squared distance, so it shares none of the layer's per-bit factorisation.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvq.layers import QUANTIZERS, LookupFreeQuantizer, Quantizer
from tfvq.layers import lfq as lfq_module

# --- NumPy reference --------------------------------------------------------------------------


def np_codes(d):
    """Row k: the code of index k, channel i = bit i of k, as +-1."""
    k = np.arange(2**d)
    return np.where((k[:, None] >> np.arange(d)) & 1, 1.0, -1.0)


def np_logsumexp(a, axis):
    m = a.max(axis=axis, keepdims=True)
    return m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))


def np_entropy(p):
    p = p[p > 0]
    return -(p * np.log(p)).sum()


def np_lfq(x, commitment_cost=0.25, entropy_weight=0.1, diversity_gamma=1.0, temperature=0.01):
    """Sign, bits, and the loss of MAGVIT-v2 sec. 3.1 over all 2^D codes, in float64."""
    x = np.asarray(x, np.float64)
    d = x.shape[-1]
    flat = x.reshape(-1, d)
    codes = np_codes(d)
    q = np.where(flat > 0, 1.0, -1.0)
    indices = ((flat > 0) * 2 ** np.arange(d)).sum(1)
    np.testing.assert_array_equal(codes[indices], q)  # the reference's own bit order
    out = {"quantized": q.reshape(x.shape), "indices": indices.reshape(x.shape[:-1])}
    if flat.shape[0] == 0:
        return {**out, "loss": 0.0, "per_sample_entropy": 0.0, "batch_entropy": 0.0, "commitment_loss": 0.0}
    logits = -((flat[:, None, :] - codes[None]) ** 2).sum(-1) / temperature
    log_p = logits - np_logsumexp(logits, axis=1)
    p = np.exp(log_p)
    per_sample = np.mean([-(row * lrow).sum() for row, lrow in zip(p, log_p, strict=True)])
    batch = np_entropy(p.mean(0))
    commitment = ((flat - q) ** 2).mean()
    loss = commitment_cost * commitment + entropy_weight * (per_sample - diversity_gamma * batch)
    return {**out, "loss": loss, "per_sample_entropy": per_sample, "batch_entropy": batch,
            "commitment_loss": commitment, "probs": p}


def np_marginal_batch_entropy(x, temperature=0.01):
    """The per-bit approximation: sum_i H(mean_n p_n(bit i = 1))."""
    p1 = 1 / (1 + np.exp(-4 * np.asarray(x, np.float64).reshape(-1, np.shape(x)[-1]) / temperature))
    mean = p1.mean(0)
    return sum(np_entropy(np.array([m, 1 - m])) for m in mean)


def rng_data(seed, *shape, scale=0.05):
    # Small values: at T = 0.01 the code distribution is then neither one-hot nor uniform.
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


# --- Forward pass -----------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 3, 6])
@pytest.mark.parametrize("shape", [(40,), (2, 3, 5)])
@pytest.mark.parametrize("training", [False, True])
def test_forward_matches_numpy(dim, shape, training):
    layer = LookupFreeQuantizer(dim, entropy_weight=0.2, commitment_cost=0.3, diversity_gamma=0.7)
    assert isinstance(layer, Quantizer)
    assert layer.codebook_size == 2**dim and layer.num_codebooks == 1 and layer.embedding_dim == dim
    x = rng_data(0, *shape, dim)
    ref = np_lfq(x, 0.3, 0.2, 0.7)
    np.testing.assert_array_equal(layer(x), ref["quantized"])
    info = layer(x, training=training, return_info=True)
    np.testing.assert_array_equal(info["quantized"], ref["quantized"])
    np.testing.assert_array_equal(info["indices"], ref["indices"])
    assert info["indices"].dtype == tf.int32 and tuple(info["indices"].shape) == shape
    for key in ("loss", "per_sample_entropy", "batch_entropy", "commitment_loss"):
        np.testing.assert_allclose(info[key], ref[key], rtol=2e-5, atol=1e-6, err_msg=key)
    counts = np.bincount(ref["indices"].ravel(), minlength=2**dim)
    np.testing.assert_array_equal(info["counts"], counts[None].astype(np.float32))
    assert info["counts"].dtype == tf.float32
    p = counts / counts.sum()
    np.testing.assert_allclose(info["perplexity"], np.exp(np_entropy(p)), rtol=1e-5)
    np.testing.assert_allclose(info["usage"], (counts > 0).mean())
    assert len(layer.losses) == 1
    np.testing.assert_allclose(layer.losses[0], ref["loss"], rtol=2e-5, atol=1e-6)
    assert layer.weights == []


@pytest.mark.parametrize("temperature", [0.01, 0.5, 3.0])
def test_temperature(temperature):
    x = rng_data(1, 30, 4, scale=0.5)
    info = LookupFreeQuantizer(4, temperature=temperature)(x, return_info=True)
    ref = np_lfq(x, temperature=temperature)
    for key in ("loss", "per_sample_entropy", "batch_entropy"):
        np.testing.assert_allclose(info[key], ref[key], rtol=2e-5, atol=1e-6, err_msg=key)


def test_entropy_known_values():
    # Every corner once, far from the boundaries: each vector is certain of its code
    # (per-sample entropy 0) and the batch uses all 16 equally (entropy log 16).
    x = np_codes(4).astype(np.float32)
    info = LookupFreeQuantizer(4, entropy_weight=1.0, commitment_cost=0.0)(x, return_info=True)
    np.testing.assert_allclose(info["per_sample_entropy"], 0.0, atol=1e-6)
    np.testing.assert_allclose(info["batch_entropy"], np.log(16), rtol=1e-6)
    np.testing.assert_allclose(info["loss"], -np.log(16), rtol=1e-6)
    np.testing.assert_allclose(info["perplexity"], 16, rtol=1e-5)
    # All at zero: every code equally likely for every vector, all coded 0 (the -1 corner).
    info = LookupFreeQuantizer(3)(np.zeros((5, 3), np.float32), return_info=True)
    np.testing.assert_allclose(info["per_sample_entropy"], np.log(8), rtol=1e-6)
    np.testing.assert_allclose(info["batch_entropy"], np.log(8), rtol=1e-6)
    np.testing.assert_array_equal(info["indices"], 0)
    np.testing.assert_array_equal(info["quantized"], -1.0)


def test_exact_batch_entropy_in_blocks(monkeypatch):
    # Blocks of 4 codes over 2^5 = 32 codes give the same entropy as one block.
    monkeypatch.setattr(lfq_module, "_ENTROPY_CHUNK", 4)
    x = rng_data(2, 25, 5)
    info = LookupFreeQuantizer(5)(x, return_info=True)
    np.testing.assert_allclose(info["batch_entropy"], np_lfq(x)["batch_entropy"], rtol=2e-5)


def test_marginal_batch_entropy_above_the_exact_limit(monkeypatch):
    monkeypatch.setattr(lfq_module, "EXACT_ENTROPY_MAX_DIM", 3)
    x = rng_data(3, 40, 5)
    info = LookupFreeQuantizer(5)(x, return_info=True)
    ref = np_lfq(x)
    np.testing.assert_allclose(info["batch_entropy"], np_marginal_batch_entropy(x), rtol=2e-5)
    assert float(info["batch_entropy"]) >= ref["batch_entropy"] - 1e-6  # an upper bound
    np.testing.assert_allclose(info["per_sample_entropy"], ref["per_sample_entropy"], rtol=2e-5)


def test_large_embedding_dim_uses_marginals():
    # D = 20: the exact entropy would need 2^20 codes per vector; the marginal one runs.
    x = rng_data(4, 8, 20)
    info = LookupFreeQuantizer(20)(x, return_info=True)
    np.testing.assert_allclose(info["batch_entropy"], np_marginal_batch_entropy(x), rtol=2e-5)
    assert tuple(info["counts"].shape) == (1, 2**20)
    np.testing.assert_array_equal(info["indices"], ((x > 0) * 2 ** np.arange(20)).sum(1))


def test_encode_decode():
    layer = LookupFreeQuantizer(5)
    x = rng_data(5, 2, 4, 3, 5)
    indices = layer.encode(x)
    assert tuple(indices.shape) == (2, 4, 3) and indices.dtype == tf.int32
    np.testing.assert_array_equal(indices, np_lfq(x)["indices"])
    decoded = layer.decode(indices)
    assert tuple(decoded.shape) == (2, 4, 3, 5)
    np.testing.assert_array_equal(decoded, layer(x, training=False))
    np.testing.assert_array_equal(layer.decode(np.arange(32)), np_codes(5))


# --- Gradients --------------------------------------------------------------------------------


def test_straight_through_gradient():
    x = tf.constant(rng_data(6, 6, 4, scale=1.0))
    w = rng_data(7, 6, 4)
    layer = LookupFreeQuantizer(4)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.reduce_sum(w * layer(x, training=True))
    np.testing.assert_allclose(tape.gradient(out, x), w, atol=1e-7)


@pytest.mark.parametrize("temperature", [1.0, 0.2])
def test_loss_gradient_matches_finite_differences(temperature):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(7, 3)) * 0.6
    x = np.where(np.abs(x) < 0.05, 0.1, x)  # away from the sign's jump
    options = dict(commitment_cost=0.3, entropy_weight=0.4, diversity_gamma=0.8, temperature=temperature)
    layer = LookupFreeQuantizer(3, dtype="float64", **options)
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        loss = layer(x_t, training=True, return_info=True)["loss"]
    grad = tape.gradient(loss, x_t).numpy()

    def f(v):
        return np_lfq(v, 0.3, 0.4, 0.8, temperature)["loss"]

    h = 1e-6
    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[idx] = h
        numeric[idx] = (f(x + step) - f(x - step)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


# --- Sizes, registry, arguments ---------------------------------------------------------------


def test_from_sizes_and_registry():
    assert QUANTIZERS["lfq"] is LookupFreeQuantizer
    layer = LookupFreeQuantizer.from_sizes(1024, 64, commitment_cost=0.5, name="q", entropy_weight=0.2)
    assert layer.embedding_dim == 10 and layer.codebook_size == 1024 and layer.name == "q"
    assert layer.commitment_cost == 0.5 and layer.entropy_weight == 0.2
    for bad in (512 + 1, 1, 0, 2.0**10):
        with pytest.raises(ValueError, match="codebook_size a power of 2"):
            LookupFreeQuantizer.from_sizes(bad, 64)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"embedding_dim": 0}, "embedding_dim >= 1"),
        ({"embedding_dim": 2.5}, "embedding_dim >= 1"),
        ({"embedding_dim": 25}, "embedding_dim <= 24"),
        ({"embedding_dim": 4, "entropy_weight": -0.1}, "entropy_weight >= 0"),
        ({"embedding_dim": 4, "commitment_cost": -1}, "commitment_cost >= 0"),
        ({"embedding_dim": 4, "diversity_gamma": float("nan")}, "diversity_gamma >= 0"),
        ({"embedding_dim": 4, "temperature": 0.0}, "temperature > 0; got 0.0"),
        ({"embedding_dim": 4, "temperature": "hot"}, "temperature > 0"),
    ],
)
def test_bad_arguments(kwargs, words):
    with pytest.raises(ValueError, match=words):
        LookupFreeQuantizer(**kwargs)


@pytest.mark.parametrize(
    "inputs, words",
    [
        (np.zeros((3, 5), np.float32), r"embedding_dim=4; got shape \(3, 5\)"),
        (np.zeros((4,), np.float32), "rank >= 2"),
        (np.zeros((3, 4), np.int32), "floating-point inputs; got dtype int32"),
    ],
)
def test_bad_inputs(inputs, words):
    layer = LookupFreeQuantizer(4)
    with pytest.raises(ValueError, match=words):
        layer(inputs)
    with pytest.raises(ValueError, match=words):
        layer.encode(inputs)


def test_set_codebook_raises():
    with pytest.raises(ValueError, match="LookupFreeQuantizer has no codebook"):
        LookupFreeQuantizer(2).set_codebook(np.zeros((4, 2), np.float32))


# --- Edge cases, dtypes, XLA, replicas --------------------------------------------------------


def test_non_finite_rows_get_code_0_and_leave_the_loss_finite():
    layer = LookupFreeQuantizer(3)
    x = rng_data(9, 12, 3)
    x[1, 2] = np.nan
    x[4, 0] = np.inf
    x[8] = -np.inf
    bad = np.zeros(12, bool)
    bad[[1, 4, 8]] = True
    info = layer(x, training=True, return_info=True)
    ref = np_lfq(x[~bad])  # the loss is that of the finite vectors alone
    assert (info["indices"].numpy()[bad] == 0).all()
    np.testing.assert_array_equal(info["indices"].numpy()[~bad], ref["indices"])
    assert np.isnan(info["quantized"].numpy()[bad]).all()
    np.testing.assert_array_equal(info["quantized"].numpy()[~bad], ref["quantized"])
    np.testing.assert_allclose(info["loss"], ref["loss"], rtol=2e-5, atol=1e-6)
    counts = np.bincount(ref["indices"], minlength=8)
    np.testing.assert_array_equal(info["counts"], counts[None].astype(np.float32))
    np.testing.assert_array_equal(layer.encode(x).numpy()[bad], 0)
    # Only non-finite vectors: a zero loss, no NaN.
    info = layer(np.full((4, 3), np.nan, np.float32), return_info=True)
    assert float(info["loss"]) == 0.0 and np.isfinite(info["perplexity"].numpy())


@pytest.mark.parametrize("jit_compile", [False, True])
def test_empty_batch(jit_compile):
    layer = LookupFreeQuantizer(4)
    g = lambda v: layer(v, training=True, return_info=True)  # noqa: E731
    for call in (g, tf.function(g, jit_compile=jit_compile)):
        x = tf.zeros((0, 4))
        with tf.GradientTape() as tape:
            tape.watch(x)
            info = call(x)
        assert tuple(info["quantized"].shape) == (0, 4) and tuple(info["indices"].shape) == (0,)
        assert float(info["loss"]) == 0.0 and np.isfinite(info["perplexity"].numpy())
        assert tuple(info["counts"].shape) == (1, 16) and float(tf.reduce_sum(info["counts"])) == 0.0
        assert tuple(tape.gradient(info["loss"], x).shape) == (0, 4)


def test_under_xla_matches_eager():
    layer = LookupFreeQuantizer(5)

    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            info = layer(x, training=True, return_info=True)
            total = tf.reduce_sum(info["quantized"] * tf.range(5, dtype=tf.float32)) + info["loss"]
        return info, tape.gradient(total, x), layer.encode(x)

    x = tf.constant(rng_data(10, 32, 5))
    a, grad_a, enc_a = step(x)
    b, grad_b, enc_b = tf.function(step, jit_compile=True)(x)
    np.testing.assert_array_equal(b["indices"], a["indices"])
    np.testing.assert_array_equal(enc_b, enc_a)
    np.testing.assert_array_equal(b["quantized"], a["quantized"])
    np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-5)
    np.testing.assert_allclose(grad_b, grad_a, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(a["loss"], np_lfq(x.numpy())["loss"], rtol=2e-5)


@pytest.mark.parametrize("how", ["global", "layer"])
def test_mixed_precision(how):
    x16 = rng_data(11, 4, 6, 4).astype(np.float16)
    if how == "global":
        keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            layer = LookupFreeQuantizer(4)
        finally:
            keras.mixed_precision.set_global_policy("float32")
    else:
        layer = LookupFreeQuantizer(4, dtype="mixed_float16")
    info = layer(x16, training=True, return_info=True)
    assert info["quantized"].dtype == tf.float16 and layer.decode(info["indices"]).dtype == tf.float16
    assert info["loss"].dtype == tf.float32 and info["counts"].dtype == tf.float32
    ref = np_lfq(x16.astype(np.float32))
    np.testing.assert_array_equal(info["indices"], ref["indices"])
    np.testing.assert_array_equal(info["quantized"], ref["quantized"].astype(np.float16))
    np.testing.assert_allclose(info["loss"], ref["loss"], rtol=2e-5)


def test_float64_matches_numpy():
    layer = LookupFreeQuantizer(4, dtype="float64")
    x = np.random.default_rng(12).normal(size=(30, 4)) * 0.05
    info = layer(x, training=True, return_info=True)
    ref = np_lfq(x)
    assert info["quantized"].dtype == tf.float64 and info["loss"].dtype == tf.float64
    assert info["counts"].dtype == tf.float32
    np.testing.assert_array_equal(info["indices"], ref["indices"])
    for key in ("loss", "per_sample_entropy", "batch_entropy", "commitment_loss"):
        np.testing.assert_allclose(info[key], ref[key], rtol=1e-10, err_msg=key)


def test_mirrored_replicas_use_their_own_batch(mirrored_strategy):
    # No state to synchronise; the batch entropy is each replica's own.
    strategy = mirrored_strategy
    with strategy.scope():
        layer = LookupFreeQuantizer(3)
    x = rng_data(13, 16, 3)

    def replica(v):
        info = layer(v, training=True, return_info=True)
        return info["indices"], info["loss"]

    halves = strategy.experimental_distribute_values_from_function(
        lambda ctx: x[8 * ctx.replica_id_in_sync_group : 8 * (ctx.replica_id_in_sync_group + 1)]
    )
    indices, losses = tf.function(lambda v: strategy.run(replica, (v,)))(halves)
    np.testing.assert_array_equal(
        np.concatenate(strategy.experimental_local_results(indices)), np_lfq(x)["indices"]
    )
    for half, loss in zip((x[:8], x[8:]), strategy.experimental_local_results(losses), strict=True):
        np.testing.assert_allclose(loss, np_lfq(half)["loss"], rtol=2e-5, atol=1e-6)


# --- Saving -----------------------------------------------------------------------------------


def test_keras_round_trip(tmp_path):
    layer = LookupFreeQuantizer(
        6, entropy_weight=0.3, commitment_cost=0.1, diversity_gamma=0.5, temperature=0.2, name="lfq"
    )
    inputs = keras.Input((3, 3, 6))
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    restored = loaded.get_layer("lfq")
    assert type(restored) is LookupFreeQuantizer
    assert restored.get_config() == layer.get_config()
    x = rng_data(14, 2, 3, 3, 6)
    np.testing.assert_array_equal(loaded(x), model(x))
    np.testing.assert_allclose(
        restored(x, return_info=True)["loss"], np_lfq(x, 0.1, 0.3, 0.5, 0.2)["loss"], rtol=2e-5
    )
