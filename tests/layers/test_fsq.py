"""Tests of tfvq.layers.fsq against a NumPy version of Mentzer et al. 2023 written here."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvq.layers import QUANTIZERS, FiniteScalarQuantizer, Quantizer

LEVELS = [(8, 6, 5), (8, 5, 5, 5), (7, 5, 5, 5, 5), (2, 2, 2), (3,), (4, 9)]


# --- NumPy reference --------------------------------------------------------------------------


def np_fsq(x, levels, eps=1e-3):
    """The paper's bound, rounding and mixed-radix index, in float64."""
    x = np.asarray(x, np.float64)
    big_l = np.asarray(levels, np.float64)
    half_l = (big_l - 1) * (1 + eps) / 2
    offset = np.where(np.asarray(levels) % 2 == 0, 0.5, 0.0)
    shift = np.arctanh(offset / half_l)
    bounded = np.tanh(x + shift) * half_l - offset
    rounded = np.round(bounded)
    half_width = np.asarray(levels) // 2
    digits = (rounded + half_width).astype(np.int64)
    basis = np.cumprod([1] + list(levels[:-1]))
    return {
        "bounded": bounded,
        "quantized": rounded / half_width,
        "digits": digits,
        "indices": (digits * basis).sum(-1),
        # d quantized / d x with the rounding passed straight through.
        "jacobian": half_l * (1 - np.tanh(x + shift) ** 2) / half_width,
    }


def np_grid(levels):
    """Every code of the implicit codebook, in index order (channel 0 the fastest digit)."""
    values = [(np.arange(n) - n // 2) / (n // 2) for n in levels]
    return np.array([point[::-1] for point in itertools.product(*values[::-1])])


def rng_data(seed, *shape, scale=1.5):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


# --- Forward pass -----------------------------------------------------------------------------


@pytest.mark.parametrize("levels", LEVELS)
@pytest.mark.parametrize("shape", [(64,), (2, 5, 3)])
@pytest.mark.parametrize("training", [False, True])
def test_forward_matches_numpy(levels, shape, training):
    layer = FiniteScalarQuantizer(levels=levels)
    assert isinstance(layer, Quantizer)
    assert layer.embedding_dim == len(levels) and layer.num_codebooks == 1
    assert layer.codebook_size == int(np.prod(levels))
    x = rng_data(0, *shape, len(levels))
    ref = np_fsq(x, levels)
    np.testing.assert_allclose(layer(x), ref["quantized"], atol=1e-6)
    info = layer(x, training=training, return_info=True)
    np.testing.assert_allclose(info["quantized"], ref["quantized"], atol=1e-6)
    np.testing.assert_array_equal(info["indices"], ref["indices"])
    assert info["indices"].dtype == tf.int32 and tuple(info["indices"].shape) == shape
    counts = np.bincount(ref["indices"].ravel(), minlength=layer.codebook_size)
    np.testing.assert_array_equal(info["counts"], counts[None].astype(np.float32))
    assert info["counts"].dtype == tf.float32
    p = counts / counts.sum()
    np.testing.assert_allclose(info["perplexity"], np.exp(-(p[p > 0] * np.log(p[p > 0])).sum()), rtol=1e-5)
    np.testing.assert_allclose(info["usage"], (counts > 0).mean(), rtol=1e-6)
    assert float(info["loss"]) == 0.0
    assert len(layer.losses) == 1 and float(layer.losses[0]) == 0.0
    assert layer.weights == []  # no state to learn or to corrupt


@pytest.mark.parametrize("levels", LEVELS)
def test_each_channel_takes_exactly_its_levels(levels):
    # From far below to far above the bound, channel i goes through all L_i values, in order.
    ramp = np.linspace(-30, 30, 4001, dtype=np.float32)
    x = np.repeat(ramp[:, None], len(levels), axis=1)
    out = FiniteScalarQuantizer(levels=levels)(x).numpy()
    for i, n in enumerate(levels):
        expected = ((np.arange(n) - n // 2) / (n // 2)).astype(np.float32)
        np.testing.assert_array_equal(np.unique(out[:, i]), expected)
        assert (np.diff(out[:, i]) >= 0).all()
    assert out.min() == -1.0 and out.max() <= 1.0


@pytest.mark.parametrize("levels", LEVELS)
def test_index_is_the_position_in_the_grid(levels):
    layer = FiniteScalarQuantizer(levels=levels)
    grid = np_grid(levels)
    assert grid.shape == (layer.codebook_size, len(levels))
    # decode walks the grid in index order ...
    np.testing.assert_array_equal(layer.decode(np.arange(layer.codebook_size)), grid.astype(np.float32))
    # ... and encode gives each vector the row of its quantized value.
    x = rng_data(1, 200, len(levels))
    quantized = np_fsq(x, levels)["quantized"]
    rows = np.array([np.flatnonzero((grid == q).all(1))[0] for q in quantized])
    np.testing.assert_array_equal(layer.encode(x), rows)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("levels", [(8, 8, 8, 5, 5, 5), (8,) * 8, (8,) * 9, (5, 7) * 5 + (5,)])
def test_large_codebook_indices_match_numpy(levels, dtype):
    # About 2^16 and 2^24 codes (the float index), then 2^27 and 5^6 * 7^5 past float32's whole
    # numbers (the integer sum in float32, the float index in float64).
    layer = FiniteScalarQuantizer(levels=levels, dtype=dtype)
    x = rng_data(2, 3, 40, len(levels))
    reference = np_fsq(x, levels)["indices"]
    assert reference.max() > layer.codebook_size // 2
    np.testing.assert_array_equal(layer.encode(x), reference)
    if layer.codebook_size <= 2**16:  # the counts of a larger one would take 64 MiB or more
        info = layer(x, return_info=True)
        np.testing.assert_array_equal(info["indices"], reference)
        counts = np.asarray(info["counts"])[0]
        expected = np.bincount(reference.ravel(), minlength=layer.codebook_size)
        np.testing.assert_array_equal(counts, expected)


@pytest.mark.parametrize("levels", [(8, 5, 5, 5), (2, 3)])
def test_encode_decode(levels):
    layer = FiniteScalarQuantizer(levels=levels)
    x = rng_data(2, 2, 4, 3, len(levels))
    indices = layer.encode(x)
    assert tuple(indices.shape) == (2, 4, 3) and indices.dtype == tf.int32
    np.testing.assert_array_equal(indices, np_fsq(x, levels)["indices"])
    decoded = layer.decode(indices)
    assert tuple(decoded.shape) == (2, 4, 3, len(levels))
    np.testing.assert_array_equal(decoded, layer(x, training=False))


# --- Gradients --------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [(8, 5, 5, 5), (2, 7)])
def test_straight_through_gradient(levels):
    x = tf.constant(rng_data(3, 6, 5, len(levels)))
    w = rng_data(4, 6, 5, len(levels))
    layer = FiniteScalarQuantizer(levels=levels)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.reduce_sum(w * layer(x, training=True))
    # round() is the identity backwards; the bound's own derivative remains.
    expected = w * np_fsq(x.numpy(), levels)["jacobian"]
    np.testing.assert_allclose(tape.gradient(out, x), expected, rtol=1e-5, atol=1e-6)


# --- Sizes and the paper's table --------------------------------------------------------------


@pytest.mark.parametrize(
    "size, levels",
    [(2**8, (8, 6, 5)), (2**10, (8, 5, 5, 5)), (2**12, (7, 5, 5, 5, 5)), (2**14, (8, 8, 8, 6, 5)),
     (2**16, (8, 8, 8, 5, 5, 5))],
)
def test_levels_from_codebook_size(size, levels):
    layer = FiniteScalarQuantizer(codebook_size=size)
    assert layer.levels == levels and layer.embedding_dim == len(levels)
    # The paper's table gives about `size` codes (2^12: 7 * 5^4 = 4375).
    assert layer.codebook_size == int(np.prod(levels))
    assert 0.75 * size <= layer.codebook_size <= 1.1 * size
    # from_sizes ignores embedding_dim and commitment_cost.
    built = FiniteScalarQuantizer.from_sizes(size, 64, commitment_cost=0.5, name="q")
    assert built.levels == levels and built.name == "q"


def test_from_sizes_with_levels_and_registry():
    assert QUANTIZERS["fsq"] is FiniteScalarQuantizer
    layer = FiniteScalarQuantizer.from_sizes(512, 64, 0.25, levels=(4, 4, 3))
    assert layer.levels == (4, 4, 3) and layer.codebook_size == 48
    with pytest.raises(ValueError, match=r"2\^8, 2\^10, 2\^12, 2\^14, 2\^16.*codebook_size=512"):
        FiniteScalarQuantizer.from_sizes(512, 64)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"levels": (8, 1, 5)}, r"levels, a non-empty sequence of ints >= 2; got \(8, 1, 5\)"),
        ({"levels": (0,)}, "ints >= 2"),
        ({"levels": ()}, "non-empty"),
        ({"levels": (2.5, 3)}, "ints >= 2"),
        ({"levels": (True, 3)}, "ints >= 2"),
        ({"levels": "85"}, "ints >= 2"),
        ({"levels": 8}, "ints >= 2"),
        ({}, "codebook_size=None"),
        ({"codebook_size": 1000}, "table.*codebook_size=1000"),
        ({"levels": (8, 5), "codebook_size": 41}, r"prod\(levels\)=40"),
        ({"levels": (2,) * 31}, "int32"),
        ({"levels": (8, 5), "epsilon": -0.1}, "epsilon"),
        ({"levels": (8, 5), "epsilon": 1.0}, "epsilon"),
    ],
)
def test_bad_arguments(kwargs, words):
    with pytest.raises(ValueError, match=words):
        FiniteScalarQuantizer(**kwargs)


@pytest.mark.parametrize(
    "inputs, words",
    [
        (np.zeros((3, 5), np.float32), r"embedding_dim=3; got shape \(3, 5\)"),
        (np.zeros((3,), np.float32), "rank >= 2"),
        (np.zeros((3, 3), np.int32), "floating-point inputs; got dtype int32"),
    ],
)
def test_bad_inputs(inputs, words):
    layer = FiniteScalarQuantizer(levels=(8, 6, 5))
    with pytest.raises(ValueError, match=words):
        layer(inputs)
    with pytest.raises(ValueError, match=words):
        layer.encode(inputs)


def test_set_codebook_raises():
    with pytest.raises(ValueError, match="FiniteScalarQuantizer has no codebook"):
        FiniteScalarQuantizer(levels=(3, 3)).set_codebook(np.zeros((9, 2), np.float32))


# --- Edge cases, dtypes, XLA, replicas --------------------------------------------------------


def test_non_finite_rows_get_code_0():
    layer = FiniteScalarQuantizer(levels=(8, 5, 5))
    x = rng_data(5, 10, 3)
    x[2, 1] = np.nan
    x[5, 0] = np.inf
    x[7] = -np.inf
    info = layer(x, training=True, return_info=True)
    bad = np.zeros(10, bool)
    bad[[2, 5, 7]] = True
    ref = np_fsq(x[~bad], (8, 5, 5))
    indices = info["indices"].numpy()
    assert (indices[bad] == 0).all()
    np.testing.assert_array_equal(indices[~bad], ref["indices"])
    assert np.isnan(info["quantized"].numpy()[bad]).all()
    np.testing.assert_allclose(info["quantized"].numpy()[~bad], ref["quantized"], atol=1e-6)
    counts = np.bincount(ref["indices"], minlength=200)  # the bad rows count nowhere
    np.testing.assert_array_equal(info["counts"], counts[None].astype(np.float32))
    assert np.isfinite(info["perplexity"].numpy()) and float(info["loss"]) == 0.0
    np.testing.assert_array_equal(layer.encode(x).numpy()[bad], 0)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_empty_batch(jit_compile):
    layer = FiniteScalarQuantizer(levels=(8, 5, 5))
    g = lambda v: layer(v, training=True, return_info=True)  # noqa: E731
    for call in (g, tf.function(g, jit_compile=jit_compile)):
        info = call(tf.zeros((0, 3)))
        assert tuple(info["quantized"].shape) == (0, 3) and tuple(info["indices"].shape) == (0,)
        assert float(info["loss"]) == 0.0 and np.isfinite(info["perplexity"].numpy())
        assert tuple(info["counts"].shape) == (1, 200) and float(tf.reduce_sum(info["counts"])) == 0.0
    assert tuple(layer.decode(np.zeros((0,), np.int32)).shape) == (0, 3)


def test_under_xla_matches_eager():
    layer = FiniteScalarQuantizer(levels=(8, 5, 5, 5))

    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            info = layer(x, training=True, return_info=True)
            total = tf.reduce_sum(info["quantized"] * tf.range(4, dtype=tf.float32))
        return info, tape.gradient(total, x), layer.encode(x), layer.decode(info["indices"])

    x = rng_data(6, 32, 4)
    x[3, 1], x[9, 0], x[20] = np.nan, np.inf, -np.inf  # non-finite rows: zero gradient there
    x = tf.constant(x)
    (a, grad_a, enc_a, dec_a) = step(x)
    (b, grad_b, enc_b, dec_b) = tf.function(step, jit_compile=True)(x)
    for grad in (grad_a, grad_b):
        assert np.isfinite(grad).all()
        np.testing.assert_array_equal(grad.numpy()[[3, 9, 20]], 0.0)
        assert (grad.numpy()[[0, 1, 2]] != 0).any()
    np.testing.assert_array_equal(b["indices"], a["indices"])
    np.testing.assert_array_equal(enc_b, enc_a)
    np.testing.assert_array_equal(b["counts"], a["counts"])
    np.testing.assert_allclose(b["quantized"], a["quantized"], atol=1e-6)
    np.testing.assert_allclose(dec_b, dec_a, atol=0)
    np.testing.assert_allclose(grad_b, grad_a, rtol=1e-5, atol=1e-6)
    good = np.isfinite(x.numpy()).all(axis=1)
    np.testing.assert_array_equal(a["indices"].numpy()[~good], 0)
    np.testing.assert_array_equal(a["indices"].numpy()[good],
                                  np_fsq(x.numpy()[good], (8, 5, 5, 5))["indices"])


@pytest.mark.parametrize("how", ["global", "layer"])
def test_mixed_precision(how):
    x16 = rng_data(7, 4, 6, 4).astype(np.float16)
    if how == "global":
        keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            layer = FiniteScalarQuantizer(levels=(8, 5, 5, 5))
        finally:
            keras.mixed_precision.set_global_policy("float32")
    else:
        layer = FiniteScalarQuantizer(levels=(8, 5, 5, 5), dtype="mixed_float16")
    info = layer(x16, training=True, return_info=True)
    assert info["quantized"].dtype == tf.float16 and layer.decode(info["indices"]).dtype == tf.float16
    assert info["counts"].dtype == tf.float32 and info["perplexity"].dtype == tf.float32
    ref = np_fsq(x16.astype(np.float32), (8, 5, 5, 5))
    np.testing.assert_array_equal(info["indices"], ref["indices"])
    np.testing.assert_array_equal(info["quantized"], ref["quantized"].astype(np.float16))


def test_float64_matches_numpy():
    layer = FiniteScalarQuantizer(levels=(8, 6, 5), dtype="float64")
    x = np.random.default_rng(8).normal(size=(50, 3)) * 2
    ref = np_fsq(x, (8, 6, 5))
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        info = layer(x_t, training=True, return_info=True)
        total = tf.reduce_sum(info["quantized"])
    assert info["quantized"].dtype == tf.float64 and info["loss"].dtype == tf.float64
    assert info["counts"].dtype == tf.float32
    np.testing.assert_array_equal(info["indices"], ref["indices"])
    np.testing.assert_array_equal(info["quantized"], ref["quantized"])
    np.testing.assert_allclose(tape.gradient(total, x_t), ref["jacobian"], rtol=1e-10)


def test_mirrored_replicas_quantize_their_halves(mirrored_strategy):
    strategy = mirrored_strategy
    with strategy.scope():
        layer = FiniteScalarQuantizer(levels=(8, 5, 5))
    x = rng_data(9, 16, 3)
    halves = strategy.experimental_distribute_values_from_function(
        lambda ctx: x[8 * ctx.replica_id_in_sync_group : 8 * (ctx.replica_id_in_sync_group + 1)]
    )
    result = tf.function(
        lambda v: strategy.run(lambda u: layer(u, training=True, return_info=True)["indices"], (v,))
    )(halves)
    indices = np.concatenate(strategy.experimental_local_results(result))
    np.testing.assert_array_equal(indices, np_fsq(x, (8, 5, 5))["indices"])


# --- Saving -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{"levels": (7, 5, 3)}, {"codebook_size": 2**10, "epsilon": 1e-2}])
def test_keras_round_trip(kwargs, tmp_path):
    layer = FiniteScalarQuantizer(name="fsq", **kwargs)
    inputs = keras.Input((3, 3, layer.embedding_dim))
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    restored = loaded.get_layer("fsq")
    assert type(restored) is FiniteScalarQuantizer
    assert restored.get_config() == layer.get_config()
    assert restored.levels == layer.levels
    x = rng_data(10, 2, 3, 3, layer.embedding_dim)
    np.testing.assert_array_equal(loaded(x), model(x))
