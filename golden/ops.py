"""Integer layer operations on feature maps of codes, and the one statement of window order.

Feature maps are NHWC: shape ``(N, H, W, C)`` (batch, rows, columns, channels). On a hardware
stream a map crosses as ``H * W * (C / SIMD)`` words of ``SIMD`` codes, rows first, then
columns, then channel groups (FINN's folding).

Window order
------------
:func:`im2col` states, once for the whole project, the order of the elements of a
``K_h x K_w`` window: kernel row ``kh`` outermost, then kernel column ``kw``, then input channel
``c`` fastest, i.e. element ``(kh * K_w + kw) * C + c``. Weight codes of shape
``(C_out, K_h, K_w, C_in)`` reshaped to ``(C_out, K_h * K_w * C_in)`` are in the same order, so
a convolution is ``im2col(x) @ W.T``. The sliding-window hardware emits windows in this order,
``SIMD`` consecutive elements per word, and the MVU's weight memory is laid out to match.
Zero padding inserts code 0 (the value of a zero activation).
"""
import numbers

import numpy as np

__all__ = ["as_pair", "conv_output_size", "check_window", "im2col", "conv2d", "max_pool2d"]


def as_pair(name, value):
    """``(a, b)`` from an int or a pair of ints (kernel sizes, strides)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value), int(value)
    if (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an integer or a pair of integers, not {value!r}")


def conv_output_size(size, kernel, stride, padding):
    """Output length along one axis: ``(size + 2 * padding - kernel) // stride + 1``."""
    return (size + 2 * padding - kernel) // stride + 1


def check_window(in_shape, kernel, stride, padding, *, what="kernel"):
    """Validate a window geometry; return ``(kernel, stride, padding, out_hw)`` normalized.

    Parameters
    ----------
    in_shape : tuple (H, W, C) of positive ints
    kernel, stride : int or (int, int)
        Kernel >= 1 and no larger than the padded input; stride >= 1.
    padding : int
        Zero padding >= 0 on every side (windows made only of padding are allowed).

    Raises
    ------
    TypeError, ValueError
        With the parameter, its value and the rule.
    """
    if (not isinstance(in_shape, (tuple, list)) or len(in_shape) != 3
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in in_shape)):
        raise TypeError(f"input shape must be a tuple (H, W, C) of integers, not {in_shape!r}")
    if min(in_shape) < 1:
        raise ValueError(f"input shape must have positive sizes, not {tuple(in_shape)!r}")
    kernel = as_pair(what, kernel)
    stride = as_pair("stride", stride)
    if isinstance(padding, bool) or not isinstance(padding, numbers.Integral):
        raise TypeError(f"padding must be an integer, not {padding!r}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, not {padding!r}")
    if min(kernel) < 1:
        raise ValueError(f"{what} must be >= 1, not {kernel!r}")
    if min(stride) < 1:
        raise ValueError(f"stride must be >= 1, not {stride!r}")
    height, width = in_shape[0], in_shape[1]
    if kernel[0] > height + 2 * padding or kernel[1] > width + 2 * padding:
        raise ValueError(f"{what} must fit the padded input {height + 2 * padding}x"
                         f"{width + 2 * padding}, not {kernel[0]}x{kernel[1]}")
    out_hw = (conv_output_size(height, kernel[0], stride[0], padding),
              conv_output_size(width, kernel[1], stride[1], padding))
    return kernel, stride, int(padding), out_hw


def im2col(x, kernel, stride, padding, pad_value=0):
    """Every window of ``x`` as a vector in the project's window order.

    Parameters
    ----------
    x : numpy.ndarray, shape (N, H, W, C)
    kernel, stride : (int, int)
    padding : int
    pad_value : scalar
        What the padding holds (code 0 for activations).

    Returns
    -------
    numpy.ndarray, shape (N, H_out, W_out, K_h * K_w * C), dtype of ``x``.
        Element ``(kh * K_w + kw) * C + c`` of the last axis is
        ``x_padded[n, oh * S_h + kh, ow * S_w + kw, c]``.
    """
    (k_h, k_w), (s_h, s_w) = kernel, stride
    if padding:
        x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)),
                   constant_values=pad_value)
    n, height, width, channels = x.shape
    out_h = (height - k_h) // s_h + 1
    out_w = (width - k_w) // s_w + 1
    cols = np.empty((n, out_h, out_w, k_h, k_w, channels), dtype=x.dtype)
    for kh in range(k_h):
        for kw in range(k_w):
            cols[:, :, :, kh, kw, :] = x[:, kh:kh + s_h * (out_h - 1) + 1:s_h,
                                         kw:kw + s_w * (out_w - 1) + 1:s_w, :]
    return cols.reshape(n, out_h, out_w, k_h * k_w * channels)


def conv2d(x, weights, stride, padding):
    """Integer convolution of activation codes with weight codes (zero padding = code 0).

    Parameters
    ----------
    x : numpy.ndarray of int, shape (N, H, W, C_in)
    weights : numpy.ndarray of int, shape (C_out, K_h, K_w, C_in)
    stride : (int, int)
    padding : int

    Returns
    -------
    numpy.ndarray of int64, shape (N, H_out, W_out, C_out): the exact accumulators.
    """
    c_out, k_h, k_w, _ = weights.shape
    cols = im2col(np.asarray(x, dtype=np.int64), (k_h, k_w), stride, padding)
    return cols @ np.asarray(weights, dtype=np.int64).reshape(c_out, -1).T


def max_pool2d(x, kernel, stride, padding=0):
    """Max-pool over windows of codes; padding holds code 0 (never above a real code).

    Parameters
    ----------
    x : numpy.ndarray, shape (N, H, W, C)
    kernel, stride : (int, int)
    padding : int

    Returns
    -------
    numpy.ndarray, shape (N, H_out, W_out, C), dtype of ``x``.
    """
    n, _, _, channels = x.shape
    cols = im2col(x, kernel, stride, padding)
    out_h, out_w = cols.shape[1:3]
    return cols.reshape(n, out_h, out_w, kernel[0] * kernel[1], channels).max(axis=3)
