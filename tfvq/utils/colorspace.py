"""sRGB <-> CIE L*a*b* conversions written with `keras.ops`.

Both directions use the D65 white point and the 2 degree observer with the constants of the
easyrgb formulas that `skimage.color.rgb2lab` / `lab2rgb` use, so results agree with scikit-image
to about 1e-4 in float32. They work on any leading batch or spatial dimensions (channels last),
inside `tf.function(jit_compile=True)`, and have finite gradients everywhere, including at black
and at the seams of the piecewise sRGB and Lab curves.

Example:
    >>> import numpy as np
    >>> from tfvq.utils import lab_to_rgb, rgb_to_lab
    >>> lab = rgb_to_lab(np.array([[1.0, 0.0, 0.0]], "float32"))  # ~[[53.2, 80.1, 67.2]]
    >>> rgb = lab_to_rgb(lab)                                      # ~[[1.0, 0.0, 0.0]]
"""

import keras
import numpy as np
from keras import ops

# Linear sRGB -> XYZ (rows are X, Y, Z), the Rec. 709 primaries matrix used by skimage.
XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
RGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_RGB)
D65_WHITE = np.array([0.95047, 1.0, 1.08883])

# The Lab curve f(t) is a cube root above EPSILON and the line KAPPA * t + 16 / 116 below it;
# F_EPSILON = f(EPSILON) is where the inverse switches branch.
_EPSILON = 0.008856
_KAPPA = 7.787
_F_EPSILON = 0.2068966
# The sRGB transfer curve switches from linear to a power law at these points.
_SRGB_KNEE = 0.04045
_LINEAR_KNEE = 0.0031308


def _float_input(x, name, fn):
    x = ops.convert_to_tensor(x)
    dtype = keras.backend.standardize_dtype(x.dtype)
    if not keras.backend.is_float_dtype(dtype):
        hint = " (divide 8-bit images by 255 first)" if fn == "rgb_to_lab" else ""
        raise ValueError(
            f"{fn} expects a floating-point `{name}` tensor{hint}; got dtype {dtype}"
        )
    if x.shape[-1] is not None and x.shape[-1] != 3:
        raise ValueError(
            f"{fn} expects `{name}` with 3 channels on the last axis; got shape {tuple(x.shape)}"
        )
    return x, dtype


def _mix(x, matrix, dtype):
    # x @ matrix.T on the last axis, for any number of leading axes.
    return ops.einsum("...i,ji->...j", x, ops.convert_to_tensor(matrix, dtype=dtype))


def rgb_to_lab(rgb):
    """Converts sRGB in [0, 1] (channels last) to CIE L*a*b* (D65, 2 degree observer).

    Args:
        rgb: floating-point tensor of shape `(..., 3)`, gamma-encoded sRGB in [0, 1].

    Returns:
        Tensor of the same shape and dtype: L in [0, 100], a and b roughly in [-110, 110].
    """
    rgb, dtype = _float_input(rgb, "rgb", "rgb_to_lab")
    # Each branch only sees inputs from its own side of the knee, so the branch that `where`
    # discards cannot produce NaN/inf gradients (pow of a negative, cube root at 0).
    power = ops.power((ops.maximum(rgb, _SRGB_KNEE) + 0.055) / 1.055, 2.4)
    linear = ops.where(rgb > _SRGB_KNEE, power, ops.minimum(rgb, _SRGB_KNEE) / 12.92)
    t = _mix(linear, XYZ_FROM_RGB, dtype) / ops.convert_to_tensor(D65_WHITE, dtype=dtype)
    cube_root = ops.power(ops.maximum(t, _EPSILON), 1.0 / 3.0)
    f = ops.where(t > _EPSILON, cube_root, _KAPPA * ops.minimum(t, _EPSILON) + 16.0 / 116.0)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return ops.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab):
    """Converts CIE L*a*b* (D65, 2 degree observer, channels last) to sRGB in [0, 1].

    Lab values outside the sRGB gamut are clipped to [0, 1] per channel, as
    `skimage.color.lab2rgb` does (including its clipping of negative Z before the Lab curve).

    Args:
        lab: floating-point tensor of shape `(..., 3)` holding L, a, b.

    Returns:
        Tensor of the same shape and dtype, gamma-encoded sRGB in [0, 1].
    """
    lab, dtype = _float_input(lab, "lab", "lab_to_rgb")
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = fy + lab[..., 1] / 500.0
    fz = ops.maximum(fy - lab[..., 2] / 200.0, 0.0)
    f = ops.stack([fx, fy, fz], axis=-1)
    t = ops.where(f > _F_EPSILON, f**3, (f - 16.0 / 116.0) / _KAPPA)
    linear = _mix(t * ops.convert_to_tensor(D65_WHITE, dtype=dtype), RGB_FROM_XYZ, dtype)
    power = 1.055 * ops.power(ops.maximum(linear, _LINEAR_KNEE), 1.0 / 2.4) - 0.055
    rgb = ops.where(linear > _LINEAR_KNEE, power, 12.92 * ops.minimum(linear, _LINEAR_KNEE))
    return ops.clip(rgb, 0.0, 1.0)
