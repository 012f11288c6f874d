"""Convolutional encoder and decoder blocks of the VQ-VAE paper, with the seeds' variants."""

import keras

from tfvq.utils.checks import check_int

DOWNSAMPLE_MODES = ("stride", "max_pool", "avg_pool", "none")
_MODE_ALIASES = {"pool": "max_pool", "strided": "stride", "max": "max_pool", "avg": "avg_pool"}


def _mode(layer, downsample):
    mode = _MODE_ALIASES.get(downsample, downsample)
    if mode not in DOWNSAMPLE_MODES:
        raise ValueError(
            f"{type(layer).__name__} expects downsample in {DOWNSAMPLE_MODES} (or 'pool'); "
            f"got {downsample!r}"
        )
    return mode


def _kernel_initializer(initializer, transposed=False):
    """The initializer each convolution gets: `initializer`, or a fan-in one when it is None.

    The default is a truncated normal of variance 1 / fan-in (LeCun), Sonnet's default for
    convolutions, instead of Keras' Glorot uniform: on the VQ-VAE paper's CIFAR-10 model Glorot
    gives the first conv a 3x smaller scale (fan-in 48, fan-out 1024), and the fan-in scale
    trains that model faster (ablation in benchmarks/RESULTS.md). Keras stores a transposed
    convolution's kernel as (kh, kw, out, in), so its fan-in is Keras' "fan_out". A given
    initializer is copied per convolution, so that a seeded one does not repeat its values.
    """
    if initializer is not None:
        return keras.initializers.deserialize(
            keras.initializers.serialize(keras.initializers.get(initializer)))
    mode = "fan_out" if transposed else "fan_in"
    return keras.initializers.VarianceScaling(1.0, mode, "truncated_normal")


def _serialize_initializer(initializer):
    return None if initializer is None else keras.initializers.serialize(
        keras.initializers.get(initializer))


class _Sequence(keras.layers.Layer):
    """A layer that runs `self._steps` in order and builds them shape by shape."""

    def build(self, input_shape):
        shape = tuple(input_shape)
        for step in self._steps:
            step.build(shape)
            shape = tuple(step.compute_output_shape(shape))

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for step in self._steps:
            shape = tuple(step.compute_output_shape(shape))
        return shape

    def call(self, inputs):
        x = inputs
        for step in self._steps:
            x = step(x)
        return x


@keras.saving.register_keras_serializable(package="tfvq")
class ResidualBlock(keras.layers.Layer):
    """`x + conv1x1(relu(conv3x3(relu(x))))`: the residual unit of the VQ-VAE paper.

    Van den Oord et al. 2017, section 4.1: "residual 3x3 blocks (implemented as ReLU, 3x3 conv,
    ReLU, 1x1 conv)". The output has the input's channels.

    Args:
        residual_channels: channels of the inner 3x3 convolution.
        kernel_initializer: initializer of both kernels; None for a truncated normal of
            variance 1 / fan-in (Sonnet's default).

    Returns:
        A tensor shaped like the input.

    Example:
    >>> block = ResidualBlock(residual_channels=8)
    >>> tuple(block(keras.ops.zeros((2, 4, 4, 16))).shape)
    (2, 4, 4, 16)
    """

    def __init__(self, residual_channels, *, kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        check_int(self, "residual_channels", residual_channels, 1)
        self.residual_channels = residual_channels
        self.kernel_initializer = kernel_initializer
        self.inner = keras.layers.Conv2D(residual_channels, 3, padding="same", name="conv3x3",
                                         kernel_initializer=_kernel_initializer(kernel_initializer))
        self.outer = None

    def build(self, input_shape):
        self.outer = keras.layers.Conv2D(
            input_shape[-1], 1, name="conv1x1",
            kernel_initializer=_kernel_initializer(self.kernel_initializer))
        self.inner.build(input_shape)
        self.outer.build(tuple(input_shape[:-1]) + (self.residual_channels,))

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs):
        h = self.inner(keras.ops.relu(inputs))
        return inputs + self.outer(keras.ops.relu(h))

    def get_config(self):
        return {
            **super().get_config(),
            "residual_channels": self.residual_channels,
            "kernel_initializer": _serialize_initializer(self.kernel_initializer),
        }


@keras.saving.register_keras_serializable(package="tfvq")
class ResidualStack(_Sequence):
    """`num_layers` residual blocks followed by a ReLU, as in the VQ-VAE paper's encoder/decoder.

    Args:
        num_layers: number of `ResidualBlock`s (0 gives a plain ReLU).
        residual_channels: channels of each block's inner 3x3 convolution.
        kernel_initializer: as in `ResidualBlock`.

    Returns:
        A tensor shaped like the input.

    Example:
    >>> stack = ResidualStack(num_layers=2, residual_channels=8)
    >>> tuple(stack(keras.ops.zeros((1, 4, 4, 16))).shape)
    (1, 4, 4, 16)
    """

    def __init__(self, num_layers=2, residual_channels=32, *, kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        check_int(self, "num_layers", num_layers, 0)
        self.num_layers = num_layers
        self.residual_channels = residual_channels
        self.kernel_initializer = kernel_initializer
        self._steps = [
            ResidualBlock(residual_channels, kernel_initializer=kernel_initializer,
                          name=f"block_{i}")
            for i in range(num_layers)
        ] + [keras.layers.ReLU(name="relu")]

    def get_config(self):
        return {
            **super().get_config(),
            "num_layers": self.num_layers,
            "residual_channels": self.residual_channels,
            "kernel_initializer": _serialize_initializer(self.kernel_initializer),
        }


class _ConvStack(_Sequence):
    """Arguments and configuration shared by `ConvEncoder` and `ConvDecoder`."""

    def __init__(
        self,
        *,
        hidden_channels=128,
        downsample_stages=2,
        downsample="stride",
        num_residual_layers=2,
        residual_channels=32,
        kernel_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.kernel_initializer = kernel_initializer
        check_int(self, "hidden_channels", hidden_channels, 1)
        check_int(self, "downsample_stages", downsample_stages, 0)
        self.hidden_channels = hidden_channels
        self.downsample_stages = downsample_stages
        self.downsample = _mode(self, downsample)
        self.num_residual_layers = num_residual_layers
        self.residual_channels = residual_channels

    @property
    def factor(self):
        """How much each spatial side shrinks (encoder) or grows (decoder)."""
        return 1 if self.downsample == "none" else 2**self.downsample_stages

    def _conv(self, *args, **kwargs):
        return keras.layers.Conv2D(
            *args, kernel_initializer=_kernel_initializer(self.kernel_initializer), **kwargs)

    def _conv_transpose(self, *args, **kwargs):
        return keras.layers.Conv2DTranspose(
            *args, kernel_initializer=_kernel_initializer(self.kernel_initializer, True), **kwargs)

    def _residual_stack(self):
        return ResidualStack(self.num_residual_layers, self.residual_channels,
                             kernel_initializer=self.kernel_initializer, name="residual_stack")

    def _stage_channels(self, i):
        # Widths double towards the bottleneck: hidden / 2^(stages - 1 - i) at encoder stage i.
        return max(self.hidden_channels // 2 ** (self.downsample_stages - 1 - i), 1)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_channels": self.hidden_channels,
            "downsample_stages": self.downsample_stages,
            "downsample": self.downsample,
            "num_residual_layers": self.num_residual_layers,
            "residual_channels": self.residual_channels,
            "kernel_initializer": _serialize_initializer(self.kernel_initializer),
        }


@keras.saving.register_keras_serializable(package="tfvq")
class ConvEncoder(_ConvStack):
    """Image to latent map: downsampling convs, a 3x3 conv and a residual stack.

    The VQ-VAE paper's CIFAR-10 encoder by default (van den Oord et al. 2017, section 4.1; the
    Sonnet notebook's `Encoder`): two 4x4 stride-2 convolutions with ReLU (hidden/2 then hidden
    channels), a 3x3 convolution and a residual stack (the notebook also puts a ReLU after the
    3x3 convolution; it made no difference over the first 300 steps, so it is left out).
    `downsample` picks how each stage halves the resolution: `"stride"` (4x4 stride-2 conv),
    `"max_pool"` / `"avg_pool"` (3x3 conv then 2x2 pooling) or `"none"` (4x4 stride-1 conv, no
    downsampling) — the variants the seed experiments compare.

    Args:
        hidden_channels: width after the last stage.
        downsample_stages: number of stages (each halves height and width unless "none").
        downsample: "stride", "max_pool" (alias "pool"), "avg_pool" or "none".
        num_residual_layers: residual blocks in the stack.
        residual_channels: inner width of each residual block.
        output_channels: if set, a final 1x1 conv to this many channels (e.g. embedding_dim).
        input_offset: added to the inputs first; the models pass -0.5, so that images in
            [0, 1] reach the first conv centred, as in Sonnet's recipe.
        kernel_initializer: initializer of every conv kernel; None for a truncated normal of
            variance 1 / fan-in (Sonnet's default, see `_kernel_initializer`).

    Returns:
        A map (B, H / 2^stages, W / 2^stages, output_channels or hidden_channels).

    Example:
    >>> enc = ConvEncoder(hidden_channels=16, residual_channels=4, output_channels=8)
    >>> tuple(enc(keras.ops.zeros((2, 32, 32, 3))).shape)
    (2, 8, 8, 8)
    """

    def __init__(self, hidden_channels=128, *, downsample_stages=2, downsample="stride",
                 num_residual_layers=2, residual_channels=32, output_channels=None,
                 input_offset=0.0, kernel_initializer=None, **kwargs):
        super().__init__(hidden_channels=hidden_channels, downsample_stages=downsample_stages,
                         downsample=downsample, num_residual_layers=num_residual_layers,
                         residual_channels=residual_channels,
                         kernel_initializer=kernel_initializer, **kwargs)
        self.output_channels = output_channels
        self.input_offset = float(input_offset)
        steps = []
        for i in range(downsample_stages):
            channels = self._stage_channels(i)
            if self.downsample == "stride":
                steps.append(self._conv(channels, 4, strides=2, padding="same",
                                        activation="relu", name=f"down_{i}"))
            elif self.downsample == "none":
                steps.append(self._conv(channels, 4, padding="same",
                                        activation="relu", name=f"conv_{i}"))
            else:
                pool = keras.layers.MaxPooling2D if self.downsample == "max_pool" else keras.layers.AveragePooling2D
                steps.append(self._conv(channels, 3, padding="same",
                                        activation="relu", name=f"conv_{i}"))
                steps.append(pool(2, name=f"pool_{i}"))
        steps.append(self._conv(hidden_channels, 3, padding="same", name="conv3x3"))
        steps.append(self._residual_stack())
        if output_channels is not None:
            steps.append(self._conv(output_channels, 1, name="to_latent"))
        self._steps = steps

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"ConvEncoder expects images (batch, height, width, channels); got shape "
                f"{tuple(input_shape)}"
            )
        for side in input_shape[1:3]:
            if side is not None and side % self.factor:
                raise ValueError(
                    f"ConvEncoder with downsample_stages={self.downsample_stages} expects height "
                    f"and width divisible by {self.factor}; got shape {tuple(input_shape)}"
                )
        super().build(input_shape)

    def call(self, inputs):
        return super().call(inputs + self.input_offset if self.input_offset else inputs)

    def get_config(self):
        return {**super().get_config(), "output_channels": self.output_channels,
                "input_offset": self.input_offset}


@keras.saving.register_keras_serializable(package="tfvq")
class ConvDecoder(_ConvStack):
    """Latent map to image: the mirror of `ConvEncoder` given the same arguments.

    A 3x3 conv, a residual stack, then one upsampling stage per encoder stage (4x4 stride-2
    transposed convs for "stride", nearest upsampling and a 3x3 conv for the pooling modes, a
    4x4 conv for "none"), the last one producing `output_channels` with no activation.

    Args:
        output_channels: channels of the output (image channels, or more for likelihoods that
            predict several parameters per pixel).
        hidden_channels, downsample_stages, downsample, num_residual_layers, residual_channels,
            kernel_initializer: the encoder's arguments, undone in reverse.

    Returns:
        A map (B, h * 2^stages, w * 2^stages, output_channels).

    Example:
    >>> dec = ConvDecoder(output_channels=3, hidden_channels=16, residual_channels=4)
    >>> tuple(dec(keras.ops.zeros((2, 8, 8, 8))).shape)
    (2, 32, 32, 3)
    """

    def __init__(self, output_channels, hidden_channels=128, *, downsample_stages=2,
                 downsample="stride", num_residual_layers=2, residual_channels=32,
                 kernel_initializer=None, **kwargs):
        super().__init__(hidden_channels=hidden_channels, downsample_stages=downsample_stages,
                         downsample=downsample, num_residual_layers=num_residual_layers,
                         residual_channels=residual_channels,
                         kernel_initializer=kernel_initializer, **kwargs)
        check_int(self, "output_channels", output_channels, 1)
        self.output_channels = output_channels
        steps = [
            self._conv(hidden_channels, 3, padding="same", name="conv3x3"),
            self._residual_stack(),
        ]
        for i in reversed(range(downsample_stages)):
            last = i == 0
            channels = output_channels if last else self._stage_channels(i - 1)
            activation = None if last else "relu"
            if self.downsample == "stride":
                steps.append(self._conv_transpose(channels, 4, strides=2, padding="same",
                                                  activation=activation, name=f"up_{i}"))
            elif self.downsample == "none":
                steps.append(self._conv(channels, 4, padding="same",
                                        activation=activation, name=f"conv_{i}"))
            else:
                steps.append(keras.layers.UpSampling2D(2, name=f"upsample_{i}"))
                steps.append(self._conv(channels, 3, padding="same",
                                        activation=activation, name=f"conv_{i}"))
        if downsample_stages == 0:
            steps.append(self._conv(output_channels, 3, padding="same", name="to_image"))
        self._steps = steps

    def get_config(self):
        return {**super().get_config(), "output_channels": self.output_channels}
