"""Tests for tfvq.layers.pixelcnn: causal masks, gated blocks against a NumPy reference, saving."""

import keras
import numpy as np
import pytest

from tfvq.layers.pixelcnn import GatedPixelCNNBlock, MaskedConv2D

RNG = np.random.default_rng(0)


def _raster_before(a, b):
    """Whether position a = (i, j) comes strictly before b in raster-scan order."""
    return a[0] < b[0] or (a[0] == b[0] and a[1] < b[1])


def _positions(height, width):
    return [(i, j) for i in range(height) for j in range(width)]


def _changed_positions(before, after, atol=1e-6):
    """Positions (i, j) of (1, H, W, C) maps whose values differ."""
    diff = np.abs(np.asarray(before) - np.asarray(after)).max(axis=-1)[0]
    return {tuple(p) for p in np.argwhere(diff > atol)}


# ----------------------------------------------------------------------------------------------
# MaskedConv2D


@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("kernel_size", [3, 5, (3, 5)])
def test_masked_conv_taps_are_the_causal_ones(mask_type, kernel_size):
    """The impulse response of an all-ones kernel shows exactly the taps the mask keeps."""
    layer = MaskedConv2D(1, kernel_size, mask_type=mask_type, kernel_initializer="ones",
                         use_bias=False)
    size = 9
    impulse = np.zeros((1, size, size, 1), "float32")
    centre = (size // 2, size // 2)
    impulse[0, centre[0], centre[1], 0] = 1.0
    response = keras.ops.convert_to_numpy(layer(impulse))[0, :, :, 0]
    # Output (i, j) sees input offset (dy, dx) = centre - (i, j) through its kernel tap.
    seen = {(centre[0] - i, centre[1] - j) for i, j in np.argwhere(response != 0)}

    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    expected = {
        (dy, dx)
        for dy in range(-(kh // 2), kh // 2 + 1)
        for dx in range(-(kw // 2), kw // 2 + 1)
        if _raster_before((dy, dx), (0, 0)) or (mask_type == "B" and (dy, dx) == (0, 0))
    }
    assert seen == expected
    assert ((0, 0) in seen) == (mask_type == "B")  # type A excludes the centre


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv_stack_is_causal(mask_type):
    """Perturbing input position p never changes outputs at earlier positions (nor p for A)."""
    layers = [MaskedConv2D(4, 3, mask_type=mask_type), MaskedConv2D(4, 3, mask_type="B")]

    def run(x):
        for layer in layers:
            x = layer(x)
        return keras.ops.convert_to_numpy(x)

    height, width = 5, 6
    x = RNG.normal(size=(1, height, width, 2)).astype("float32")
    base = run(x)
    for p in [(0, 0), (1, 3), (2, 0), (4, 5), (3, 2)]:
        perturbed = x.copy()
        perturbed[0, p[0], p[1]] += 1.0
        changed = _changed_positions(base, run(perturbed))
        for q in changed:
            assert _raster_before(p, q) or (mask_type == "B" and q == p), (p, q)
        assert (p in changed) == (mask_type == "B")


def test_masked_conv_keeps_masked_taps_out_whatever_the_kernel_holds():
    layer = MaskedConv2D(1, 3, mask_type="A", use_bias=False)
    x = RNG.normal(size=(1, 4, 4, 1)).astype("float32")
    layer(x)
    kernel = np.ones((3, 3, 1, 1), "float32")
    layer.kernel.assign(kernel)
    out = keras.ops.convert_to_numpy(layer(x))[0, :, :, 0]
    padded = np.pad(x[0, :, :, 0], 1)
    # Reference: sum of the 3 taps above and the 1 tap to the left.
    expected = np.array(
        [[padded[i, j : j + 3].sum() + padded[i + 1, j] for j in range(4)] for i in range(4)]
    )
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mask_type": "C"}, 'mask_type "A"'),
        ({"mask_type": "a"}, "got 'a'"),
        ({"mask_type": "A", "padding": "valid"}, 'padding="same"'),
        ({"mask_type": "A", "strides": 2}, "strides=1"),
        ({"mask_type": "A", "kernel_size": 4}, "odd kernel_size"),
    ],
)
def test_masked_conv_rejects_bad_arguments(kwargs, message):
    kwargs = {"kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        MaskedConv2D(4, **kwargs)


def test_masked_conv_config_round_trip():
    layer = MaskedConv2D(4, (3, 5), mask_type="A", dilation_rate=2, name="masked")
    clone = MaskedConv2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.mask_type == "A"


# ----------------------------------------------------------------------------------------------
# GatedPixelCNNBlock


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _reference_block(block, vertical, horizontal, condition=None):
    """The block written from the paper's receptive fields, position by position, in NumPy.

    Vertical taps: rows dy in [-k//2, 0] ([-k//2, -1] for mask A), columns dx in [-k//2, k//2].
    Horizontal taps: row 0, columns dx in [-k//2, 0] ([-k//2, -1] for mask A).
    """
    w = {v.path.split("/", 1)[1]: keras.ops.convert_to_numpy(v) for v in block.weights}
    k, half, f = block.kernel_size, block.kernel_size // 2, block.filters
    type_a = block.mask_type == "A"
    batch, height, width, _ = vertical.shape

    def at(x, i, j):
        inside = 0 <= i < height and 0 <= j < width
        return x[:, i, j] if inside else np.zeros_like(x[:, 0, 0])

    def gate(x):
        return np.tanh(x[..., :f]) * _sigmoid(x[..., f:])

    v_pre = np.zeros((batch, height, width, 2 * f))
    h_pre = np.zeros((batch, height, width, 2 * f))
    v_kernel = w["vertical_conv/kernel"]  # (rows above ... current, k, C, 2f)
    h_kernel = w["horizontal_conv/kernel"][0]  # (k, C, 2f), only columns <= centre used
    for i in range(height):
        for j in range(width):
            acc = w["vertical_conv/bias"].copy()
            for dy in range(-half, 0 if type_a else 1):
                row = dy + half  # kernel row 0 is the topmost row above
                for dx in range(-half, half + 1):
                    acc = acc + at(vertical, i + dy, j + dx) @ v_kernel[row, dx + half]
            v_pre[:, i, j] = acc
            acc = w["horizontal_conv/bias"].copy()
            for dx in range(-half, 0 if type_a else 1):
                acc = acc + at(horizontal, i, j + dx) @ h_kernel[dx + half]
            h_pre[:, i, j] = acc
    if condition is not None:
        v_pre += (condition @ w["vertical_condition/kernel"])[:, None, None]
    link = v_pre @ w["vertical_to_horizontal/kernel"][0, 0] + w["vertical_to_horizontal/bias"]
    h_pre += link
    if condition is not None:
        h_pre += (condition @ w["horizontal_condition/kernel"])[:, None, None]
    h_out = gate(h_pre) @ w["horizontal_output/kernel"][0, 0] + w["horizontal_output/bias"]
    if not type_a:
        h_out = h_out + horizontal
    return gate(v_pre), h_out


def _randomize(layer):
    # Non-zero biases too, so the reference checks them.
    for variable in layer.weights:
        variable.assign(RNG.normal(scale=0.3, size=variable.shape).astype("float32"))


@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("conditional", [False, True])
def test_gated_block_matches_numpy_reference(mask_type, conditional):
    block = GatedPixelCNNBlock(4, kernel_size=3, mask_type=mask_type)
    vertical = RNG.normal(size=(2, 4, 5, 4)).astype("float32")
    horizontal = RNG.normal(size=(2, 4, 5, 4)).astype("float32")
    condition = RNG.normal(size=(2, 3)).astype("float32") if conditional else None
    block(vertical, horizontal, condition)
    _randomize(block)
    v_out, h_out = block(vertical, horizontal, condition)
    v_ref, h_ref = _reference_block(block, vertical, horizontal, condition)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(v_out), v_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(h_out), h_ref, rtol=1e-4, atol=1e-5)


def _gated_stack(num_blocks, kernel_size=3, channels=4):
    blocks = [
        GatedPixelCNNBlock(channels, kernel_size, mask_type="A" if n == 0 else "B")
        for n in range(num_blocks)
    ]

    def run(x):
        vertical = horizontal = x
        for block in blocks:
            vertical, horizontal = block(vertical, horizontal)
        return keras.ops.convert_to_numpy(vertical), keras.ops.convert_to_numpy(horizontal)

    return run


def test_gated_stack_is_causal_and_vertical_stack_sees_only_rows_above():
    run = _gated_stack(3)
    height, width = 5, 5
    x = RNG.normal(size=(1, height, width, 4)).astype("float32")
    v_base, h_base = run(x)
    for p in _positions(height, width):
        perturbed = x.copy()
        perturbed[0, p[0], p[1]] += 1.0
        v_new, h_new = run(perturbed)
        for q in _changed_positions(h_base, h_new):
            assert _raster_before(p, q), (p, q)
        for q in _changed_positions(v_base, v_new):
            assert q[0] > p[0], (p, q)


def test_gated_stack_has_no_blind_spot_where_masked_convs_do():
    """Output (2, 2) after two layers: the gated stack sees input (1, 4); masked convs do not."""
    x = RNG.normal(size=(1, 5, 6, 4)).astype("float32")
    perturbed = x.copy()
    perturbed[0, 1, 4] += 1.0

    gated = _gated_stack(2)
    assert (2, 2) in _changed_positions(gated(x)[1], gated(perturbed)[1])

    masked = [MaskedConv2D(4, 3, mask_type="A"), MaskedConv2D(4, 3, mask_type="B")]

    def run_masked(x):
        return keras.ops.convert_to_numpy(masked[1](masked[0](x)))

    assert (2, 2) not in _changed_positions(run_masked(x), run_masked(perturbed))


def test_gated_block_condition_changes_output_and_must_match_build():
    block = GatedPixelCNNBlock(4, mask_type="B")
    x = RNG.normal(size=(2, 3, 3, 4)).astype("float32")
    c0, c1 = np.zeros((2, 5), "float32"), np.ones((2, 5), "float32")
    _, h0 = block(x, x, c0)
    _, h1 = block(x, x, c1)
    assert not np.allclose(keras.ops.convert_to_numpy(h0), keras.ops.convert_to_numpy(h1))
    with pytest.raises(ValueError, match="built with a condition and is now called without"):
        block(x, x)
    unconditional = GatedPixelCNNBlock(4, mask_type="B")
    unconditional(x, x)
    with pytest.raises(ValueError, match="built without a condition"):
        unconditional(x, x, c0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mask_type": "C"}, 'mask_type "A"'),
        ({"kernel_size": 4}, "odd integer kernel_size >= 3"),
        ({"kernel_size": 1}, "odd integer kernel_size >= 3"),
        ({"filters": 0}, r"GatedPixelCNNBlock expects filters >= 1 \(an int\); got 0"),
        ({"dropout": 1.0}, r"GatedPixelCNNBlock expects dropout in \[0, 1\); got 1.0"),
        ({"dropout": -0.1}, r"expects dropout in \[0, 1\)"),
        ({"dropout": "0.1"}, r"expects dropout in \[0, 1\)"),
    ],
)
def test_gated_block_rejects_bad_arguments(kwargs, message):
    kwargs = {"filters": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        GatedPixelCNNBlock(**kwargs)


def test_gated_block_dropout_acts_in_training_only():
    block = GatedPixelCNNBlock(16, mask_type="B", dropout=0.5)
    reference = GatedPixelCNNBlock(16, mask_type="B")
    x = RNG.normal(size=(2, 4, 4, 16)).astype("float32")
    reference(x, x)
    block(x, x)
    block.set_weights(reference.get_weights())
    expected = [keras.ops.convert_to_numpy(t) for t in reference(x, x)]

    # Inference, by default and when asked: the block is the one without dropout.
    for training in (None, False):
        kwargs = {} if training is None else {"training": training}
        outputs = [keras.ops.convert_to_numpy(t) for t in block(x, x, **kwargs)]
        np.testing.assert_allclose(outputs[1], expected[1], rtol=1e-6, atol=1e-6)
    # The direct step a sampler runs is inference too.
    _, contribution = block.vertical_step(x)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(block.horizontal_step(x, contribution)), expected[1],
        rtol=1e-6, atol=1e-6)

    v, h = (keras.ops.convert_to_numpy(t) for t in block(x, x, training=True))
    # Only the horizontal stack drops: the vertical output is unchanged.
    np.testing.assert_allclose(v, expected[0], rtol=1e-6, atol=1e-6)
    assert not np.allclose(h, expected[1], atol=1e-3)


def test_gated_stack_with_dropout_stays_causal_in_training():
    blocks = [GatedPixelCNNBlock(4, mask_type="A", dropout=0.3),
              GatedPixelCNNBlock(4, mask_type="B", dropout=0.3)]
    height, width = 4, 4
    x = RNG.normal(size=(1, height, width, 4)).astype("float32")
    for block in blocks:
        block(x, x)  # builds the dropout layers
    generators = [block.horizontal_dropout.seed_generator for block in blocks]
    states = [keras.ops.convert_to_numpy(g.state) for g in generators]

    def run(x):
        # The same dropout masks for every input: each run restarts the layers' seed state.
        for generator, state in zip(generators, states):
            generator.state.assign(state)
        vertical = horizontal = x
        for block in blocks:
            vertical, horizontal = block(vertical, horizontal, training=True)
        return keras.ops.convert_to_numpy(horizontal)

    base = run(x)
    np.testing.assert_array_equal(run(x), base)  # the masks repeat, so differences are causal
    for p in _positions(height, width):
        perturbed = x.copy()
        perturbed[0, p[0], p[1]] += 1.0
        for q in _changed_positions(base, run(perturbed)):
            assert _raster_before(p, q), (p, q)


def test_gated_block_b_needs_matching_residual_channels():
    block = GatedPixelCNNBlock(4, mask_type="B")
    x = np.zeros((1, 3, 3, 6), "float32")
    with pytest.raises(ValueError, match="filters=4 channels"):
        block(x, x)


def test_gated_block_output_shape():
    block = GatedPixelCNNBlock(6, mask_type="A")
    v, h = block.compute_output_shape((None, 4, 4, 3), (None, 4, 4, 3))
    assert v == (None, 4, 4, 6) and h == (None, 4, 4, 6)


# ----------------------------------------------------------------------------------------------
# Saving


@pytest.mark.parametrize("conditional", [False, True])
def test_layers_keras_round_trip(tmp_path, conditional):
    codes = keras.Input((4, 5, 3))
    inputs = [codes]
    x = MaskedConv2D(6, 3, mask_type="A", name="first")(codes)
    condition = None
    if conditional:
        condition = keras.Input((2,))
        inputs.append(condition)
    v, h = GatedPixelCNNBlock(6, kernel_size=5, mask_type="A", name="gated_a")(x, x, condition)
    v, h = GatedPixelCNNBlock(6, mask_type="B", name="gated_b")(v, h, condition)
    model = keras.Model(inputs, [v, h])
    data = [RNG.normal(size=(2, 4, 5, 3)).astype("float32")]
    if conditional:
        data.append(RNG.normal(size=(2, 2)).astype("float32"))
    expected = model.predict(data, verbose=0)

    path = tmp_path / "pixelcnn_layers.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    for got, want in zip(loaded.predict(data, verbose=0), expected):
        np.testing.assert_array_equal(got, want)
    for name in ("first", "gated_a", "gated_b"):
        assert loaded.get_layer(name).get_config() == model.get_layer(name).get_config()
    assert type(loaded.get_layer("gated_a")) is GatedPixelCNNBlock
