"""Quantized layers: the one parameter object per layer that the golden model and the RTL share.

Each layer knows its input/output feature-map shapes ``(H, W, C)``, its code widths and its
integer arithmetic; the RTL generator builds from the same object, so nothing about a layer's
arithmetic is decided twice.

* :class:`QuantLinear` - what a convolution and a dense layer share; either kind passes
  ``isinstance(layer, QuantLinear)``.
* :class:`QuantConv2d` - convolution on codes; output requantized by thresholds
  (:class:`~.thresholds.Requantizer`) or raw accumulators plus an integer bias (:class:`Logits`).
* :class:`QuantDense` - a fully connected layer: a convolution whose kernel covers the whole
  input map (so the input, flattened in HWC order, is exactly one window); output shape
  ``(1, 1, C_out)``.
* :class:`QuantMaxPool` - max-pool on codes.
"""
from dataclasses import dataclass
import numbers

import numpy as np

from .ops import check_window, conv2d, im2col, max_pool2d
from .quant import (ACTIVATION_BITS, WEIGHT_BITS, check_bits, check_levels, check_rounding,
                    activation_levels, weight_code_range)
from .thresholds import Requantizer

__all__ = ["Requantization", "Logits", "QuantLinear", "QuantConv2d", "QuantDense", "QuantMaxPool",
           "integer_range_shape",
           "FLOAT_EXACT_LIMIT"]

#: Accumulators must stay below this magnitude so the float path (float64) is exact.
FLOAT_EXACT_LIMIT = 1 << 52


def integer_range_shape(low, high):
    """Narrowest two's complement shape holding every integer in ``[low, high]``.

    Returns
    -------
    (width, signed) : (int, bool)
        ``signed`` is False when ``low >= 0``; width is at least 1.
    """
    low, high = int(low), int(high)
    if low > high:
        raise ValueError(f"range low must not exceed high, not [{low}, {high}]")
    if low >= 0:
        return max(1, high.bit_length()), False
    def bits(v):
        return (v.bit_length() + 1) if v >= 0 else ((-v - 1).bit_length() + 1)
    return max(bits(low), bits(high)), True


@dataclass(frozen=True, eq=False)
class Requantization:
    """Hidden-layer output: ``code = quantize_activations(acc * multiplier + offset, out_bits,
    rounding=rounding, levels=levels)``: ``round(L * clip(y, 0, 1))``.

    Parameters
    ----------
    multiplier : numpy.ndarray of float64, shape (C,)
        Activation scale x weight scale x batch-norm slope (any sign, zero allowed).
    offset : numpy.ndarray of float64, shape (C,)
        Folded bias and batch-norm shift.
    out_bits : int
        Output activation code width, 1..16.
    rounding : str
        The quantizer's rounding rule (:data:`.quant.ROUNDING_MODES`); WRPN's ``half_away``.
    levels : int or None
        ``L``, the largest code (the value 1.0); None: ``2**out_bits - 1``. Imported unsigned
        narrow-range quantizers stop at ``2**out_bits - 2``.
    """

    multiplier: np.ndarray
    offset: np.ndarray
    out_bits: int
    rounding: str = "half_away"
    levels: object = None

    def __post_init__(self):
        check_bits("out_bits", self.out_bits, ACTIVATION_BITS)
        check_rounding("rounding", self.rounding)
        object.__setattr__(self, "levels", check_levels(self.levels, self.out_bits))
        for name in ("multiplier", "offset"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.ndim != 1 or not np.all(np.isfinite(value)):
                raise ValueError(f"{name} must be a finite vector of shape (C,), "
                                 f"not shape {value.shape!r}")
            object.__setattr__(self, name, value)


@dataclass(frozen=True, eq=False)
class Logits:
    """Raw-accumulator output of a last layer: ``logit = (acc + bias) * scale``.

    Parameters
    ----------
    bias : numpy.ndarray of int64, shape (C,)
        Bias in accumulator units, added by the hardware.
    scale : float
        Positive scale shared by every channel, so the argmax of ``acc + bias`` is the argmax
        of the real logits.
    """

    bias: np.ndarray
    scale: float

    def __post_init__(self):
        bias = np.asarray(self.bias)
        if bias.dtype.kind not in "iu":
            raise TypeError(f"logit bias must be integers, not dtype {bias.dtype}")
        object.__setattr__(self, "bias", bias.astype(np.int64))
        if not (isinstance(self.scale, numbers.Real) and np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"logit scale must be a positive finite number, not {self.scale!r}")
        object.__setattr__(self, "scale", float(self.scale))


class QuantLinear:
    """A linear layer on activation codes with symmetric signed weight codes: the arithmetic
    that :class:`QuantConv2d` and :class:`QuantDense` share (a dense layer is a convolution
    whose kernel is the whole map). Test ``isinstance(layer, QuantLinear)`` for "a layer with
    weights"; the two kinds are siblings, so neither stands for the other.

    Parameters
    ----------
    name : str
    in_shape : (H, W, C_in)
        Input feature map.
    in_bits : int
        Unsigned input code width, 1..16 (``2**in_bits - 1`` is the value 1.0).
    weights : numpy.ndarray of int, shape (C_out, K_h, K_w, C_in)
        Weight codes in the range of ``weight_bits`` (binary: -1/+1 only).
    weight_bits : int
        1 (binary) .. 16.
    weight_scale : numpy.ndarray of float64, shape (C_out,)
        Dequantized weight = code x scale.
    stride : int or (int, int)
        >= 1.
    padding : int
        Zero padding (code 0) on every side, >= 0.
    output : Requantization or Logits
        Requantized ``out_bits`` codes, or raw accumulators plus bias (last layer only).

    Members
    -------
    kernel : (K_h, K_w)
    out_shape : (H_out, W_out, C_out)
    out_bits : int or None
        None for a logits layer.
    acc_low, acc_high : numpy.ndarray of int64, shape (C_out,)
        Exact reachable range of ``acc`` (plus bias for logits) per channel over every window,
        for input codes anywhere in ``[0, 2**in_bits - 1]``. Every partial sum of the
        accumulation lies inside it too.
    acc_shape : (width, signed)
        Narrowest two's complement accumulator for all channels.
    requantizer : Requantizer or None
        The integer thresholds derived over the exact accumulator range (None for logits).

    Raises
    ------
    TypeError, ValueError
        Any parameter outside its rule, naming the parameter and value.
    """

    def __init__(self, *, name, in_shape, in_bits, weights, weight_bits, weight_scale,
                 stride=1, padding=0, output):
        self._name = str(name)
        self._in_bits = check_bits(f"{name}: in_bits", in_bits, ACTIVATION_BITS)
        self._weight_bits = check_bits(f"{name}: weight_bits", weight_bits, WEIGHT_BITS)
        weights = np.asarray(weights)
        if weights.dtype.kind not in "iu":
            raise TypeError(f"{name}: weight codes must be integers, not dtype {weights.dtype}")
        if weights.ndim != 4 or min(weights.shape) < 1:
            raise ValueError(f"{name}: weight codes must have shape (C_out, K_h, K_w, C_in), "
                             f"not {weights.shape!r}")
        weights = weights.astype(np.int64)
        low, high = weight_code_range(self._weight_bits)
        if weights.min() < low or weights.max() > high or (self._weight_bits == 1
                                                            and np.any(weights == 0)):
            bad = weights[(weights < low) | (weights > high) |
                          ((weights == 0) & (self._weight_bits == 1))].flat[0]
            rule = "-1 or +1" if self._weight_bits == 1 else f"in [{low}, {high}]"
            raise ValueError(f"{name}: {self._weight_bits}-bit weight codes must be {rule}, "
                             f"not {int(bad)}")
        kernel, stride, padding, out_hw = check_window(tuple(in_shape), weights.shape[1:3],
                                                       stride, padding)
        if weights.shape[3] != in_shape[2]:
            raise ValueError(f"{name}: weight input channels must match the input's "
                             f"{in_shape[2]}, not {weights.shape[3]}")
        self._in_shape = tuple(int(v) for v in in_shape)
        self._weights = weights
        self._weights.setflags(write=False)
        self._kernel, self._stride, self._padding = kernel, stride, padding
        self._out_shape = (out_hw[0], out_hw[1], weights.shape[0])

        weight_scale = np.asarray(weight_scale, dtype=np.float64)
        if weight_scale.shape != (self.out_channels,):
            raise ValueError(self._per_channel_problem("weight_scale", weight_scale.shape))
        if not np.all(np.isfinite(weight_scale)) or np.any(weight_scale < 0):
            raise ValueError(f"{name}: weight_scale must be finite and >= 0")
        self._weight_scale = weight_scale

        self._raw_low, self._raw_high = self._exact_accumulator_range()
        if max(-int(self._raw_low.min()), int(self._raw_high.max())) >= FLOAT_EXACT_LIMIT:
            raise ValueError(f"{name}: accumulator range must stay below 2**52 for an exact "
                             f"float path, not [{self._raw_low.min()}, {self._raw_high.max()}]")
        if isinstance(output, Logits):
            if output.bias.shape != (self.out_channels,):
                raise ValueError(self._per_channel_problem("logit bias", output.bias.shape))
            self._requantizer = None
        elif isinstance(output, Requantization):
            for what, values in (("multiplier", output.multiplier), ("offset", output.offset)):
                if values.shape != (self.out_channels,):
                    raise ValueError(self._per_channel_problem(what, values.shape))
            self._requantizer = Requantizer(output.multiplier, output.offset, output.out_bits,
                                            self._raw_low, self._raw_high,
                                            rounding=output.rounding, levels=output.levels)
        else:
            raise TypeError(f"{name}: output must be a Requantization or Logits, not {output!r}")
        self._output = output

    def _per_channel_problem(self, what, shape):
        """A per-output-channel array whose shape does not match the weight codes: say both
        counts (the codes may be the wrong ones)."""
        return (f"{self._name}: {what} must hold one value per output channel of the weight "
                f"codes, which have {self.out_channels} (codes of shape "
                f"{tuple(self._weights.shape)}, output channel first), not shape {tuple(shape)}")

    def _exact_accumulator_range(self):
        top = activation_levels(self._in_bits)
        full = np.full((1,) + self._in_shape, top, dtype=np.int64)
        positive = conv2d(full, np.maximum(self._weights, 0), self._stride, self._padding)
        negative = conv2d(full, np.minimum(self._weights, 0), self._stride, self._padding)
        return (negative.reshape(-1, self.out_channels).min(axis=0),
                positive.reshape(-1, self.out_channels).max(axis=0))

    # -- read-only parameters ---------------------------------------------------------------
    name = property(lambda self: self._name)
    in_shape = property(lambda self: self._in_shape)
    out_shape = property(lambda self: self._out_shape)
    in_bits = property(lambda self: self._in_bits)
    weights = property(lambda self: self._weights)
    weight_bits = property(lambda self: self._weight_bits)
    weight_scale = property(lambda self: self._weight_scale)
    kernel = property(lambda self: self._kernel)
    stride = property(lambda self: self._stride)
    padding = property(lambda self: self._padding)
    output = property(lambda self: self._output)
    requantizer = property(lambda self: self._requantizer)

    @property
    def out_channels(self):
        return self._weights.shape[0]

    @property
    def in_channels(self):
        return self._in_shape[2]

    @property
    def is_logits(self):
        return isinstance(self._output, Logits)

    @property
    def out_bits(self):
        return None if self.is_logits else self._output.out_bits

    @property
    def window_size(self):
        """Elements of one window: ``K_h * K_w * C_in`` (the MVU's in_features)."""
        return self._kernel[0] * self._kernel[1] * self.in_channels

    @property
    def weight_matrix(self):
        """Weight codes as ``(C_out, K_h * K_w * C_in)`` in the window order of :mod:`.ops`."""
        return self._weights.reshape(self.out_channels, -1)

    @property
    def raw_acc_low(self):
        """Exact lowest ``acc`` (the weighted sum alone, no bias) per channel, shape (C_out,)."""
        return self._raw_low

    @property
    def raw_acc_high(self):
        """Exact highest ``acc`` (no bias) per channel, shape (C_out,)."""
        return self._raw_high

    @property
    def acc_low(self):
        bias = self._output.bias if self.is_logits else 0
        return self._raw_low + bias

    @property
    def acc_high(self):
        bias = self._output.bias if self.is_logits else 0
        return self._raw_high + bias

    @property
    def acc_shape(self):
        """``(width, signed)`` of an accumulator that never overflows for this layer."""
        low = min(int(self.acc_low.min()), int(self._raw_low.min()), 0)
        high = max(int(self.acc_high.max()), int(self._raw_high.max()), 0)
        return integer_range_shape(low, high)

    @property
    def in_scale(self):
        """Real value of input code 1: ``1 / (2**in_bits - 1)``."""
        return 1.0 / activation_levels(self._in_bits)

    # -- arithmetic -------------------------------------------------------------------------
    def accumulate(self, codes):
        """Integer path: exact accumulators ``(N, H_out, W_out, C_out)`` (no bias) of codes."""
        return conv2d(codes, self._weights, self._stride, self._padding)

    def accumulate_float(self, grid):
        """Float path: the same sum in float64 BLAS on integer-valued float maps."""
        cols = im2col(np.asarray(grid, dtype=np.float64), self._kernel, self._stride,
                      self._padding, pad_value=0.0)
        return cols @ self.weight_matrix.astype(np.float64).T

    def integer_forward(self, codes):
        """Codes ``(N, H, W, C_in)`` -> ``(accumulators, outputs)``; outputs are codes or
        ``acc + bias`` for a logits layer."""
        acc = self.accumulate(codes)
        if self.is_logits:
            return acc, acc + self._output.bias
        return acc, self._requantizer.integer_codes(acc)

    def float_forward(self, grid):
        """Integer-valued float maps -> float outputs: the next layer's code grid, or the real
        logits ``(acc + bias) * scale`` for a logits layer."""
        acc = self.accumulate_float(grid)
        if self.is_logits:
            return (acc + self._output.bias) * self._output.scale
        return self._requantizer.float_codes(acc).astype(np.float64)

    def __repr__(self):
        return (f"{type(self).__name__}({self._name!r}, in={self._in_shape}, out={self._out_shape}, "
                f"kernel={self._kernel}, stride={self._stride}, padding={self._padding}, "
                f"w{self._weight_bits}a{self._in_bits}->"
                f"{'logits' if self.is_logits else self.out_bits})")


class QuantConv2d(QuantLinear):
    """A convolution on activation codes (parameters: see :class:`QuantLinear`)."""


class QuantDense(QuantLinear):
    """A fully connected layer: a convolution whose kernel is the whole input map.

    Parameters are those of :class:`QuantLinear` except that ``weights`` has shape
    ``(C_out, H * W * C_in)`` (input flattened in HWC order) or ``(C_out, H, W, C_in)``, and
    there is no stride or padding. ``out_shape`` is ``(1, 1, C_out)``.
    """

    def __init__(self, *, name, in_shape, in_bits, weights, weight_bits, weight_scale, output):
        weights = np.asarray(weights)
        in_shape = tuple(in_shape)
        if weights.ndim == 2:
            if len(in_shape) != 3 or weights.shape[1] != int(np.prod(in_shape)):
                raise ValueError(f"{name}: dense weight codes must have shape "
                                 f"(C_out, {int(np.prod(in_shape))}), not {weights.shape!r}")
            weights = weights.reshape((weights.shape[0],) + in_shape)
        super().__init__(name=name, in_shape=in_shape, in_bits=in_bits, weights=weights,
                         weight_bits=weight_bits, weight_scale=weight_scale, stride=1,
                         padding=0, output=output)
        if self.kernel != in_shape[:2]:
            raise ValueError(f"{name}: dense weight codes must cover the input "
                             f"{in_shape[0]}x{in_shape[1]}, not {self.kernel[0]}x{self.kernel[1]}")


class QuantMaxPool:
    """Max-pool on activation codes (padding holds code 0).

    Parameters
    ----------
    name : str
    in_shape : (H, W, C)
    bits : int
        Code width in and out, 1..16.
    kernel : int or (int, int)
    stride : int or (int, int) or None
        Defaults to the kernel.
    padding : int
        >= 0.
    """

    def __init__(self, *, name, in_shape, bits, kernel, stride=None, padding=0):
        self._name = str(name)
        self._bits = check_bits(f"{name}: bits", bits, ACTIVATION_BITS)
        kernel, stride, padding, out_hw = check_window(
            tuple(in_shape), kernel, kernel if stride is None else stride, padding,
            what="pool kernel")
        self._in_shape = tuple(int(v) for v in in_shape)
        self._kernel, self._stride, self._padding = kernel, stride, padding
        self._out_shape = (out_hw[0], out_hw[1], self._in_shape[2])

    name = property(lambda self: self._name)
    in_shape = property(lambda self: self._in_shape)
    out_shape = property(lambda self: self._out_shape)
    kernel = property(lambda self: self._kernel)
    stride = property(lambda self: self._stride)
    padding = property(lambda self: self._padding)
    in_bits = property(lambda self: self._bits)
    out_bits = property(lambda self: self._bits)
    is_logits = False

    def integer_forward(self, codes):
        return None, max_pool2d(np.asarray(codes, dtype=np.int64), self._kernel,
                                self._stride, self._padding)

    def float_forward(self, grid):
        return max_pool2d(np.asarray(grid, dtype=np.float64), self._kernel, self._stride,
                          self._padding)

    def __repr__(self):
        return (f"QuantMaxPool({self._name!r}, in={self._in_shape}, out={self._out_shape}, "
                f"kernel={self._kernel}, stride={self._stride}, padding={self._padding})")
