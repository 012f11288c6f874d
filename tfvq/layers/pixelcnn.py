"""Causal convolutions for autoregressive priors: masked convolutions and gated PixelCNN blocks.

Both layers keep the raster-scan order of a 2-D map (row by row, left to right): the output at
position (i, j) never depends on the input at any later position, so a stack of them models
p(x) = prod_{i,j} p(x_ij | x_<ij).
"""

import keras
import numpy as np
from keras import ops

from tfvq.utils.checks import check_int, check_rate, is_int


def _check_mask_type(layer_name, mask_type):
    if mask_type not in ("A", "B"):
        raise ValueError(
            f'{layer_name} expects mask_type "A" (excludes the centre, for the first layer) or '
            f'"B" (includes it, for later layers); got {mask_type!r}'
        )


def _causal_mask(kernel_size, mask_type):
    """The raster-scan mask of van den Oord et al. (2016), shaped (kh, kw, 1, 1).

    Taps in rows above the centre are kept, as are taps left of the centre in the centre row;
    the centre itself is kept only for mask type "B".
    """
    height, width = kernel_size
    centre_row, centre_col = height // 2, width // 2
    mask = np.zeros((height, width), dtype="float32")
    mask[:centre_row, :] = 1.0
    mask[centre_row, :centre_col] = 1.0
    if mask_type == "B":
        mask[centre_row, centre_col] = 1.0
    return mask[:, :, None, None]


@keras.saving.register_keras_serializable(package="tfvq")
class MaskedConv2D(keras.layers.Conv2D):
    """2-D convolution whose kernel only sees earlier positions in raster-scan order.

    The masked convolution of PixelCNN ("Pixel Recurrent Neural Networks", van den Oord et al.,
    2016, section 3.5): kernel taps below the centre row, and right of the centre in the centre
    row, are zeroed before every convolution. Mask "A" also zeroes the centre, so the output at
    (i, j) depends only on inputs strictly before (i, j); use it on the first layer, whose input
    is the map being modelled. Mask "B" keeps the centre and is for later layers, whose input at
    (i, j) already only summarises earlier positions. A stack of one "A" layer followed by "B"
    layers is causal but has a blind spot (a wedge up and to the right that it never sees);
    `GatedPixelCNNBlock` removes it.

    The mask is spatial only (the same for every input and output channel): the modelled maps
    here are discrete code maps, not RGB pixels, so there is no channel ordering to respect.

    Args:
        filters: number of output channels.
        kernel_size: int or (kh, kw), odd.
        mask_type: "A" (centre excluded) or "B" (centre included).
        **kwargs: any other `keras.layers.Conv2D` argument; `padding` must stay "same" and
            `strides` 1, so that output (i, j) lines up with input (i, j).

    Call arguments:
        inputs: (B, H, W, C) feature map (channels last unless `data_format` says otherwise).

    Returns:
        (B, H, W, filters) feature map.

    Example:
    >>> import numpy as np
    >>> layer = MaskedConv2D(16, 5, mask_type="A")
    >>> tuple(layer(np.zeros((2, 8, 8, 3), "float32")).shape)
    (2, 8, 8, 16)
    """

    def __init__(self, filters, kernel_size, mask_type, **kwargs):
        _check_mask_type("MaskedConv2D", mask_type)
        padding = kwargs.pop("padding", "same")
        if str(padding).lower() != "same":
            raise ValueError(
                f'MaskedConv2D expects padding="same" so outputs line up with inputs; got '
                f"padding={padding!r}"
            )
        super().__init__(filters, kernel_size, padding="same", **kwargs)
        if any(stride != 1 for stride in self.strides):
            raise ValueError(f"MaskedConv2D expects strides=1; got strides={self.strides}")
        if any(size % 2 == 0 for size in self.kernel_size):
            raise ValueError(
                "MaskedConv2D expects an odd kernel_size so that it has a centre tap; got "
                f"kernel_size={self.kernel_size}"
            )
        self.mask_type = mask_type
        self._mask = _causal_mask(self.kernel_size, mask_type)

    def convolution_op(self, inputs, kernel):
        # Masking the kernel at every call (not once at build time) keeps masked taps at zero
        # whatever the optimizer, a weight load or a user does to the variable.
        mask = ops.convert_to_tensor(self._mask, dtype=kernel.dtype)
        return super().convolution_op(inputs, kernel * mask)

    def get_config(self):
        config = super().get_config()
        config["mask_type"] = self.mask_type
        return config


@keras.saving.register_keras_serializable(package="tfvq")
class GatedPixelCNNBlock(keras.layers.Layer):
    """One gated PixelCNN layer: a vertical and a horizontal stack with tanh * sigmoid gates.

    From "Conditional Image Generation with PixelCNN Decoders" (van den Oord et al., 2016,
    section 2.2, figure 2). Two stacks run side by side so that the receptive field has no
    blind spot:

    - the vertical stack sees the rows strictly above the current one, all columns within the
      kernel's reach: a (k // 2 + 1, k) convolution over the input padded on top (mask "A": a
      (k // 2, k) one that stops one row higher, since its input is the modelled map itself);
    - the horizontal stack sees the current row up to the current column: a 1 x k
      `MaskedConv2D`, plus a 1 x 1 projection of the vertical stack's pre-activation.

    Each stack computes y = tanh(W_f * x + V_f c) * sigmoid(W_g * x + V_g c), where c is an
    optional conditioning vector (e.g. a class embedding, the paper's h) added inside the gate.
    The horizontal output goes through a 1 x 1 convolution and, for mask "B", a residual
    connection. The mask "A" block has no residual: its horizontal input at (i, j) is the
    modelled value at (i, j) itself, which must not reach the output.

    Args:
        filters: channels of both output stacks.
        kernel_size: odd size k >= 3 of the vertical (k // 2 + 1) x k and horizontal 1 x k
            kernels.
        mask_type: "A" for the first block (outputs exclude the current position), "B" after.
        kernel_initializer: initializer of all convolution kernels.
        dropout: rate in [0, 1) of the dropout applied to the horizontal stack's gated
            activations before its 1 x 1 output convolution, in training only (0 = none). It
            acts per position and channel, so it never lets a position see its future.
        **kwargs: `keras.layers.Layer` arguments (name, dtype, ...).

    Call arguments:
        vertical: (B, H, W, C) input of the vertical stack.
        horizontal: (B, H, W, C) input of the horizontal stack (for mask "B", C == filters,
            for the residual connection).
        condition: optional (B, D) conditioning vector, required iff the block was built with
            one.

    Returns:
        A tuple (vertical, horizontal) of (B, H, W, filters) maps.

    Example:
    >>> import numpy as np
    >>> x = np.random.rand(2, 6, 6, 8).astype("float32")
    >>> v, h = GatedPixelCNNBlock(8, mask_type="A")(x, x)
    >>> v, h = GatedPixelCNNBlock(8, mask_type="B")(v, h)
    >>> tuple(h.shape)
    (2, 6, 6, 8)
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        mask_type="B",
        kernel_initializer="glorot_uniform",
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_mask_type("GatedPixelCNNBlock", mask_type)
        self.dropout = check_rate(self, "dropout", dropout)
        if not (is_int(kernel_size, minimum=3) and kernel_size % 2 == 1):
            raise ValueError(
                f"GatedPixelCNNBlock expects an odd integer kernel_size >= 3; got {kernel_size!r}"
            )
        self.filters = int(check_int(self, "filters", filters))
        self.kernel_size = int(kernel_size)
        self.mask_type = mask_type
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

        half = self.kernel_size // 2
        conv_args = dict(kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy)
        # Each convolution produces 2 * filters channels: the tanh half and the sigmoid half.
        self.vertical_conv = keras.layers.Conv2D(
            2 * self.filters,
            (half if mask_type == "A" else half + 1, self.kernel_size),
            padding="valid",
            name="vertical_conv",
            **conv_args,
        )
        self.horizontal_conv = MaskedConv2D(
            2 * self.filters, (1, self.kernel_size), mask_type=mask_type,
            name="horizontal_conv", **conv_args,
        )
        self.vertical_to_horizontal = keras.layers.Conv2D(
            2 * self.filters, 1, name="vertical_to_horizontal", **conv_args
        )
        self.horizontal_output = keras.layers.Conv2D(
            self.filters, 1, name="horizontal_output", **conv_args
        )
        # Called without `training`: Keras takes it from the enclosing call (a model's fit), and
        # a direct call from a sampler, outside any training call, is inference.
        self.horizontal_dropout = (
            keras.layers.Dropout(self.dropout, name="horizontal_dropout", dtype=self.dtype_policy)
            if self.dropout > 0 else None
        )
        self.vertical_condition = None
        self.horizontal_condition = None

    def build(self, vertical_shape, horizontal_shape, condition_shape=None):
        if len(vertical_shape) != 4 or len(horizontal_shape) != 4:
            raise ValueError(
                "GatedPixelCNNBlock expects (B, H, W, C) vertical and horizontal inputs; got "
                f"shapes {vertical_shape} and {horizontal_shape}"
            )
        if self.mask_type == "B" and horizontal_shape[-1] != self.filters:
            raise ValueError(
                f'GatedPixelCNNBlock with mask_type="B" adds its horizontal input back, so that '
                f"input needs filters={self.filters} channels; got shape {horizontal_shape}"
            )
        gate_shape = (None, None, None, 2 * self.filters)
        self.vertical_conv.build((None, None, None, vertical_shape[-1]))
        self.horizontal_conv.build((None, None, None, horizontal_shape[-1]))
        self.vertical_to_horizontal.build(gate_shape)
        self.horizontal_output.build((None, None, None, self.filters))
        if condition_shape is not None:
            # The paper's V^T h: a bias per gate channel computed from the condition.
            self.vertical_condition = keras.layers.Dense(
                2 * self.filters, use_bias=False, name="vertical_condition",
                dtype=self.dtype_policy,
            )
            self.horizontal_condition = keras.layers.Dense(
                2 * self.filters, use_bias=False, name="horizontal_condition",
                dtype=self.dtype_policy,
            )
            self.vertical_condition.build(condition_shape)
            self.horizontal_condition.build(condition_shape)

    @staticmethod
    def _conditioned(pre_activation, condition, condition_layer):
        if condition is None:
            return pre_activation
        return pre_activation + condition_layer(condition)[:, None, None, :]

    @staticmethod
    def _gate(x):
        tanh_half, sigmoid_half = ops.split(x, 2, axis=-1)
        return ops.tanh(tanh_half) * ops.sigmoid(sigmoid_half)

    def _check_condition(self, condition):
        if (condition is None) != (self.vertical_condition is None):
            built = "with" if self.vertical_condition is not None else "without"
            given = "without" if condition is None else "with"
            raise ValueError(
                f"GatedPixelCNNBlock {self.name!r} was built {built} a condition and is now "
                f"called {given} one"
            )

    def vertical_step(self, vertical, condition=None):
        """Runs the vertical stack alone.

        Returns (vertical output, its contribution to the horizontal stack's pre-activation),
        both (B, H, W, .) maps that depend only on rows strictly above each position. Splitting
        the stacks lets a sampler compute the vertical stack once per row.
        """
        self._check_condition(condition)
        half = self.kernel_size // 2
        # Pad so output row i covers input rows i - k // 2 .. i (mask "B"), and columns
        # j - k // 2 .. j + k // 2: the rows above, as wide as the kernel.
        padded = ops.pad(vertical, [[0, 0], [half, 0], [half, half], [0, 0]])
        if self.mask_type == "A":
            # Drop the last row: the (k // 2)-tall kernel at output row i then ends at input
            # row i - 1, so the current row of the modelled map is never seen.
            padded = padded[:, :-1]
        # The condition joins before the link to the horizontal stack, so that it also reaches
        # the output through the last block, whose vertical output nothing reads.
        pre_activation = self._conditioned(
            self.vertical_conv(padded), condition, self.vertical_condition
        )
        return self._gate(pre_activation), self.vertical_to_horizontal(pre_activation)

    def horizontal_step(self, horizontal, vertical_contribution, condition=None):
        """Runs the horizontal stack given `vertical_step`'s contribution at the same rows.

        Works on any number of rows, including a single (B, 1, W, C) row.
        """
        self._check_condition(condition)
        pre_activation = self._conditioned(
            self.horizontal_conv(horizontal) + vertical_contribution,
            condition,
            self.horizontal_condition,
        )
        gated = self._gate(pre_activation)
        if self.horizontal_dropout is not None:
            gated = self.horizontal_dropout(gated)
        out = self.horizontal_output(gated)
        if self.mask_type == "B":
            out = out + horizontal
        return out

    def call(self, vertical, horizontal, condition=None):
        vertical_out, contribution = self.vertical_step(vertical, condition)
        return vertical_out, self.horizontal_step(horizontal, contribution, condition)

    def compute_output_shape(self, vertical_shape, horizontal_shape, condition_shape=None):
        return (
            tuple(vertical_shape[:-1]) + (self.filters,),
            tuple(horizontal_shape[:-1]) + (self.filters,),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "mask_type": self.mask_type,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "dropout": self.dropout,
            }
        )
        return config
