"""Tests of tfvq.layers.conv_blocks: shapes, an explicit residual computation, paper sizes."""

import keras
import numpy as np
import pytest

from tfvq.layers import ConvDecoder, ConvEncoder, ResidualBlock, ResidualStack

MODES = ["stride", "max_pool", "avg_pool", "none", "pool"]


def np_conv_same(x, kernel, bias):
    """Stride-1 'same' convolution (cross-correlation, as Keras) in plain NumPy: NHWC, HWIO."""
    kh, kw = kernel.shape[:2]
    top, left = (kh - 1) // 2, (kw - 1) // 2
    padded = np.pad(x, ((0, 0), (top, kh - 1 - top), (left, kw - 1 - left), (0, 0)))
    height, width = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (kernel.shape[3],))
    for i in range(kh):
        for j in range(kw):
            out += padded[:, i : i + height, j : j + width, :] @ kernel[i, j]
    return out + bias


def np_residual_block(x, block):
    relu = lambda v: np.maximum(v, 0.0)  # noqa: E731
    kernel3, bias3 = (np.asarray(w, np.float64) for w in block.inner.get_weights())
    kernel1, bias1 = (np.asarray(w, np.float64) for w in block.outer.get_weights())
    assert kernel3.shape[:2] == (3, 3) and kernel1.shape[:2] == (1, 1)
    return x + np_conv_same(relu(np_conv_same(relu(x), kernel3, bias3)), kernel1, bias1)


def randomize(layer, seed):
    """Non-zero biases too, so that the reference checks them."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=0.3, size=w.shape) for w in layer.get_weights()])


def test_residual_block_matches_numpy():
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 4))
    block = ResidualBlock(residual_channels=3)
    block.build(x.shape)
    randomize(block, 1)
    np.testing.assert_allclose(block(x.astype(np.float32)), np_residual_block(x, block), atol=1e-5)


def test_residual_stack_matches_numpy():
    x = np.random.default_rng(2).normal(size=(1, 4, 4, 5))
    stack = ResidualStack(num_layers=2, residual_channels=3)
    stack.build(x.shape)
    randomize(stack, 3)
    blocks = [layer for layer in stack._steps if isinstance(layer, ResidualBlock)]
    assert len(blocks) == 2
    expected = np.maximum(np_residual_block(np_residual_block(x, blocks[0]), blocks[1]), 0.0)
    np.testing.assert_allclose(stack(x.astype(np.float32)), expected, atol=1e-5)
    # No blocks: a plain ReLU.
    np.testing.assert_allclose(ResidualStack(num_layers=0)(x.astype(np.float32)), np.maximum(x, 0), atol=1e-6)


@pytest.mark.parametrize("downsample", MODES)
@pytest.mark.parametrize("stages", [0, 1, 2, 3])
def test_encoder_decoder_shapes(downsample, stages):
    args = dict(hidden_channels=8, downsample_stages=stages, downsample=downsample,
                num_residual_layers=1, residual_channels=4)
    x = keras.random.normal((2, 16, 8, 3), seed=0)
    encoder = ConvEncoder(output_channels=5, **args)
    z = encoder(x)
    factor = 1 if downsample == "none" else 2**stages
    assert tuple(z.shape) == (2, 16 // factor, 8 // factor, 5)
    assert tuple(encoder.compute_output_shape((2, 16, 8, 3))) == (2, 16 // factor, 8 // factor, 5)
    assert tuple(ConvEncoder(**args)(x).shape) == (2, 16 // factor, 8 // factor, 8)
    decoder = ConvDecoder(output_channels=3, **args)
    assert tuple(decoder(z).shape) == (2, 16, 8, 3)


@pytest.mark.parametrize("downsample", ["stride", "max_pool", "avg_pool"])
def test_encoder_rejects_indivisible_sizes(downsample):
    encoder = ConvEncoder(hidden_channels=4, downsample_stages=2, downsample=downsample, residual_channels=2)
    with pytest.raises(ValueError, match="divisible by 4; got shape \\(1, 18, 16, 3\\)"):
        encoder(np.zeros((1, 18, 16, 3), np.float32))
    with pytest.raises(ValueError, match="divisible by 4"):
        encoder.build((None, 16, 10, 3))
    # No downsampling: any size.
    encoder = ConvEncoder(hidden_channels=4, downsample_stages=2, downsample="none", residual_channels=2)
    assert tuple(encoder(np.zeros((1, 7, 5, 3), np.float32)).shape) == (1, 7, 5, 4)


@pytest.mark.parametrize(
    "make_layer, argument",
    [
        (lambda: ConvEncoder(downsample="bilinear"), "downsample"),
        (lambda: ConvDecoder(3, downsample="bilinear"), "downsample"),
        (lambda: ConvEncoder(downsample_stages=-1), "downsample_stages"),
        (lambda: ConvEncoder(hidden_channels=0), "hidden_channels"),
        (lambda: ConvDecoder(0), "output_channels"),
        (lambda: ResidualBlock(0), "residual_channels"),
        (lambda: ResidualStack(num_layers=-1), "num_layers"),
    ],
)
def test_bad_arguments(make_layer, argument):
    with pytest.raises(ValueError, match=argument):
        make_layer()


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: ResidualBlock(4, None),
        lambda: ResidualStack(2, 4, None),
        lambda: ConvEncoder(8, 2),
        lambda: ConvDecoder(3, 8, 2),
    ],
    ids=["block", "stack", "encoder", "decoder"],
)
def test_arguments_after_the_sizes_are_keyword_only(make_layer):
    with pytest.raises(TypeError, match="positional argument"):
        make_layer()


def test_encoder_rejects_non_images():
    with pytest.raises(ValueError, match="ConvEncoder expects images"):
        ConvEncoder().build((None, 32, 3))


def test_pool_alias():
    assert ConvEncoder(downsample="pool").downsample == "max_pool"
    assert ConvDecoder(3, downsample="pool").get_config()["downsample"] == "max_pool"


def test_paper_parameter_counts():
    """The CIFAR-10 VQ-VAE of van den Oord et al. 2017 (the Sonnet notebook), counted by hand."""
    conv = lambda k, cin, cout: k * k * cin * cout + cout  # noqa: E731  kernel weights + biases
    residual_stack = 2 * (conv(3, 128, 32) + conv(1, 32, 128))
    encoder = conv(4, 3, 64) + conv(4, 64, 128) + conv(3, 128, 128) + residual_stack
    decoder = conv(3, 64, 128) + residual_stack + conv(4, 128, 64) + conv(4, 64, 3)
    assert (encoder, decoder) == (364160, 290307)  # the arithmetic itself, spelled out

    enc = ConvEncoder()
    enc.build((None, 32, 32, 3))
    assert enc.count_params() == encoder
    enc = ConvEncoder(output_channels=64)
    enc.build((None, 32, 32, 3))
    assert enc.count_params() == encoder + conv(1, 128, 64)
    dec = ConvDecoder(output_channels=3)
    dec.build((None, 8, 8, 64))
    assert dec.count_params() == decoder
    # Stride-2 stages use 4x4 kernels, as in the paper.
    kernels = [w.shape for w in enc.weights if w.path.endswith("kernel") and "down_" in w.path]
    assert kernels == [(4, 4, 3, 64), (4, 4, 64, 128)]


@pytest.mark.parametrize(
    "layer, shape",
    [
        (ResidualBlock(6, name="block"), (4, 4, 5)),
        (ResidualStack(2, 3, name="stack"), (4, 4, 5)),
        (ConvEncoder(8, downsample_stages=2, downsample="avg_pool", num_residual_layers=1,
                     residual_channels=4, output_channels=6, name="enc"), (8, 8, 3)),
        (ConvEncoder(8, downsample_stages=1, downsample="stride", num_residual_layers=0,
                     residual_channels=4, name="enc_stride"), (8, 8, 3)),
        (ConvDecoder(3, 8, downsample_stages=2, downsample="pool", num_residual_layers=1,
                     residual_channels=4, name="dec"), (2, 2, 6)),
        (ConvDecoder(2, 8, downsample_stages=1, downsample="stride", num_residual_layers=2,
                     residual_channels=4, name="dec_stride"), (4, 4, 6)),
        (ConvEncoder(8, downsample_stages=1, kernel_initializer="he_uniform", input_offset=-0.5,
                     name="enc_he"), (8, 8, 3)),
    ],
    ids=lambda v: getattr(v, "name", None),
)
def test_keras_round_trip(layer, shape, tmp_path):
    inputs = keras.Input(shape)
    model = keras.Model(inputs, layer(inputs))
    randomize(layer, 4)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    restored = loaded.get_layer(layer.name)
    assert type(restored) is type(layer)
    assert restored.get_config() == layer.get_config()
    for v, w in zip(layer.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(v.numpy(), w.numpy(), err_msg=v.path)
    x = np.random.default_rng(5).normal(size=(2,) + shape).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), model(x))


def kernels(layer):
    return {w.path: np.asarray(w) for w in layer.weights if w.path.endswith("kernel")}


def test_default_kernels_have_variance_one_over_fan_in():
    """Sonnet's default: std 1/sqrt(fan-in), the fan-in of a transposed conv counting its inputs."""
    keras.utils.set_random_seed(0)
    enc = ConvEncoder(output_channels=64)
    enc.build((None, 32, 32, 3))
    dec = ConvDecoder(output_channels=3)
    dec.build((None, 8, 8, 64))
    checked = 0
    for path, kernel in {**kernels(enc), **kernels(dec)}.items():
        kh, kw, a, b = kernel.shape
        transposed = "up_" in path
        fan_in = kh * kw * (b if transposed else a)  # Keras' transposed kernels are (.., out, in)
        expected = 1 / np.sqrt(fan_in)
        assert abs(kernel.std() / expected - 1) < 0.15, (path, kernel.std(), expected)
        assert np.abs(kernel).max() <= 2.01 * expected / 0.8796  # truncated at two std
        checked += 1
    assert checked == 15  # 8 encoder convs (with to_latent), 7 decoder convs
    # The first conv is 3x wider than Glorot uniform would make it (fan-in 48, fan-out 1024).
    (first,) = [k for path, k in kernels(enc).items() if "down_0" in path]
    assert first.std() > 2.5 * np.sqrt(2 / (48 + 1024))


def test_kernel_initializer_reaches_every_conv():
    keras.utils.set_random_seed(0)
    enc = ConvEncoder(8, downsample_stages=1, num_residual_layers=1, residual_channels=4,
                      output_channels=2, kernel_initializer="zeros")
    enc.build((None, 8, 8, 3))
    dec = ConvDecoder(3, 8, downsample_stages=1, num_residual_layers=1, residual_channels=4,
                      kernel_initializer=keras.initializers.Zeros())
    dec.build((None, 4, 4, 2))
    found = {**kernels(enc), **kernels(dec)}
    assert len(found) == 9  # encoder: down_0, conv3x3, 2 in the block, to_latent; decoder: 4
    assert all(not k.any() for k in found.values())
    assert dec.get_config()["kernel_initializer"]["class_name"] == "Zeros"
    assert ConvEncoder().get_config()["kernel_initializer"] is None
