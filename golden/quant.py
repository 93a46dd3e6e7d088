"""WRPN quantizers: float <-> integer code, in both directions.

Rounding rules
--------------
WRPN's own quantizers (everything trained here) round **to the nearest integer, ties away from
zero**, and they round the *exact* real product of the float64 input and the level count (the
product is not first rounded to float64). :func:`round_half_away` is that rule for a value that
is already a float; :func:`round_scaled` is the rule for ``x * n``. Imported models bring the
rounding rule their framework trained with (QONNX's ``rounding_mode``): :data:`ROUNDING_MODES`
lists them, :func:`round_scaled` applies any of them to the exact product, and
:func:`round_divided` to the exact quotient ``x / scale`` of an input quantizer
(:class:`InputQuantizer`). The integer thresholds of the hardware are derived from these
functions (see :mod:`.thresholds`), so the hardware matches them bit for bit.

Codes
-----
* activations, ``k_a`` in 1..16 bits: ``code = round((2**k_a - 1) * clip(x, 0, 1))``, unsigned,
  in ``[0, 2**k_a - 1]``; the dequantized value is ``code / (2**k_a - 1)``.
* weights, ``k_w`` in 2..16 bits: ``code = round((2**(k_w-1) - 1) * clip(w, -1, 1))``, symmetric
  signed, in ``[-(2**(k_w-1) - 1), 2**(k_w-1) - 1]`` (``k_w = 2`` is ternary {-1, 0, +1}); the
  dequantized value is ``code * scale`` with ``scale = 1 / (2**(k_w-1) - 1)``.
* weights, ``k_w = 1``: binary (BWN) ``code = +1 if w >= 0 else -1`` and ``scale = mean(|w|)``
  per output channel (or per tensor), so the dequantized weight is ``code * scale``.
"""
from dataclasses import dataclass
from fractions import Fraction
import math
import numbers

import numpy as np

__all__ = [
    "ACTIVATION_BITS", "WEIGHT_BITS",
    "check_bits", "activation_levels", "weight_levels", "weight_code_range",
    "ROUNDING_MODES", "QONNX_ROUNDING", "check_rounding",
    "round_half_away", "round_scaled", "round_divided", "InputQuantizer",
    "quantize_activations", "dequantize_activations", "check_levels",
    "quantize_weights", "dequantize_weights",
]

#: Accepted activation (and input) code widths, inclusive.
ACTIVATION_BITS = (1, 16)
#: Accepted weight code widths, inclusive (1 = binary, 2 = ternary).
WEIGHT_BITS = (1, 16)


def check_bits(name, bits, valid_range):
    """Return ``bits`` as an int, or raise if it is not an integer in ``valid_range``.

    Raises
    ------
    TypeError
        ``bits`` is not an integer (bools are rejected too).
    ValueError
        ``bits`` lies outside ``valid_range`` (inclusive).
    """
    low, high = valid_range
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral):
        raise TypeError(f"{name} must be an integer, not {bits!r}")
    if not low <= bits <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], not {bits!r}")
    return int(bits)


#: Rounding rules of a quantizer, on signed values: ``half_away`` (nearest, ties away from zero:
#: WRPN's rule and QONNX ``HALF_UP``), ``half_even`` (nearest, ties to even: QONNX ``ROUND``,
#: NumPy's and PyTorch's ``round``), ``half_down`` (nearest, ties toward zero), ``floor``,
#: ``ceil``, ``up`` (away from zero) and ``down`` (toward zero, truncation).
ROUNDING_MODES = ("half_away", "half_even", "half_down", "floor", "ceil", "up", "down")

#: QONNX ``rounding_mode`` attribute values (upper case) -> :data:`ROUNDING_MODES`.
QONNX_ROUNDING = {"ROUND": "half_even", "HALF_EVEN": "half_even", "HALF_UP": "half_away",
                  "HALF_DOWN": "half_down", "FLOOR": "floor", "CEIL": "ceil", "UP": "up",
                  "DOWN": "down"}


def check_rounding(name, mode):
    """Return ``mode`` if it is one of :data:`ROUNDING_MODES`, else raise ``ValueError``."""
    if mode not in ROUNDING_MODES:
        raise ValueError(f"{name} must be one of {', '.join(ROUNDING_MODES)}, not {mode!r}")
    return mode


def activation_levels(bits):
    """The largest activation code for ``bits``: ``2**bits - 1`` (also the quantization step count)."""
    bits = check_bits("activation bits", bits, ACTIVATION_BITS)
    return (1 << bits) - 1


def weight_levels(bits):
    """The largest weight code magnitude: ``2**(bits-1) - 1`` for bits >= 2, and 1 for binary."""
    bits = check_bits("weight bits", bits, WEIGHT_BITS)
    return 1 if bits == 1 else (1 << (bits - 1)) - 1


def weight_code_range(bits):
    """``(lowest, highest)`` weight code for ``bits`` (binary: -1 and +1, 0 not allowed)."""
    top = weight_levels(bits)
    return -top, top


def round_half_away(x):
    """Round float64 values to the nearest integer, ties away from zero (exact, no ``x + 0.5`` slip).

    Parameters
    ----------
    x : array_like of float

    Returns
    -------
    numpy.ndarray of float64, integer-valued, same shape as ``x``.
    """
    x = np.asarray(x, dtype=np.float64)
    magnitude = np.abs(x)
    whole = np.floor(magnitude)
    rounded = whole + (magnitude - whole >= 0.5)   # the difference is exact for |x| < 2**52
    return np.copysign(rounded, x)


_SPLITTER = 134217729.0  # 2**27 + 1, Dekker's constant for float64


def _split(a):
    c = _SPLITTER * a
    high = c - (c - a)
    return high, a - high


def _two_product(a, b):
    """``a * b == p + e`` exactly (Dekker), with ``p = fl(a * b)``."""
    p = a * b
    a_high, a_low = _split(a)
    b_high, b_low = _split(b)
    e = ((a_high * b_high - p) + a_high * b_low + a_low * b_high) + a_low * b_low
    return p, e


def _round_magnitude(whole, below, above, tie_sign, mode):
    """Round a magnitude ``m >= 0`` given exactly as: ``whole = floor(fl(m))``, ``below``
    (``m < whole``: only when ``fl(m)`` is an integer rounded up), ``above`` (``m > whole``) and
    ``tie_sign`` (the sign of ``m - whole - 1/2``); ``mode`` as rounded on magnitudes."""
    if mode == "down":
        return whole - below
    if mode == "up":
        return whole + above
    if mode == "half_away":
        return whole + (tie_sign >= 0)
    if mode == "half_down":
        return whole + (tie_sign > 0)
    odd = np.mod(whole, 2) == 1                     # half_even
    return whole + ((tie_sign > 0) | ((tie_sign == 0) & odd))


def _magnitude_mode(mode, negative):
    """The rule on magnitudes that ``mode`` is on signed values (floor/ceil depend on the sign)."""
    if mode == "floor":
        return np.where(negative, 1, 0)             # 1: "up" on the magnitude, 0: "down"
    if mode == "ceil":
        return np.where(negative, 0, 1)
    return None


def round_scaled(x, n, mode="half_away"):
    """Round the exact real product ``x * n`` to an integer with the rule ``mode``.

    Parameters
    ----------
    x : array_like of float
        Values with ``|x * n| < 2**50`` (quantizer inputs are clipped first, so always true).
    n : int or array_like of int
        Level count(s), broadcast against ``x``.
    mode : str
        One of :data:`ROUNDING_MODES`; WRPN's ``half_away`` by default.

    Returns
    -------
    numpy.ndarray of int64, the shape of ``x`` broadcast with ``n``.
    """
    check_rounding("rounding mode", mode)
    x = np.asarray(x, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    sign = np.sign(x)
    product, error = _two_product(np.abs(x), n)   # |x| * n == product + error exactly
    whole = np.floor(product)
    # (product - whole - 0.5) + error has the sign of the exact fractional part minus one half:
    # product - whole is exact, and when it lies near 0.5 so does the subtraction of 0.5; two
    # floats sum to zero only when they are exact negatives, so a zero is an exact tie.
    tie_sign = np.sign(((product - whole) - 0.5) + error)
    below = (product == whole) & (error < 0)
    above = (product > whole) | ((product == whole) & (error > 0))
    by_sign = _magnitude_mode(mode, sign < 0)
    if by_sign is None:
        magnitude = _round_magnitude(whole, below, above, tie_sign, mode)
    else:
        magnitude = np.where(by_sign == 1, _round_magnitude(whole, below, above, tie_sign, "up"),
                             _round_magnitude(whole, below, above, tie_sign, "down"))
    return (sign * magnitude).astype(np.int64)


def _round_fraction(value, mode):
    """Exact rounding of one :class:`fractions.Fraction` with ``mode``."""
    floor = math.floor(value)
    rest = value - floor                            # in [0, 1)
    if mode == "floor" or (mode == "down" and value >= 0) or (mode == "up" and value < 0):
        return floor
    if mode in ("ceil", "up", "down"):
        return floor + (rest > 0)
    if rest != Fraction(1, 2):
        return floor + (rest > Fraction(1, 2))
    if mode == "half_even":
        return floor + (floor % 2)
    away = value > 0
    return floor + (away if mode == "half_away" else not away)


def round_divided(x, scale, mode):
    """Round the exact real quotient ``x / scale`` to an integer with the rule ``mode``.

    The float64 quotient decides wherever it lies clearly away from a rounding boundary (an
    integer for ``floor``/``ceil``/``up``/``down``, a half-integer for the nearest rules); the
    few values within ``2**-30`` (relative) of one are decided in exact rational arithmetic.

    Parameters
    ----------
    x : array_like of float
    scale : float or array_like of float, broadcast against ``x``
        Positive.
    mode : str
        One of :data:`ROUNDING_MODES`.

    Returns
    -------
    numpy.ndarray of int64, the broadcast shape; |quotient| must stay below ``2**52``.
    """
    check_rounding("rounding mode", mode)
    x = np.asarray(x, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    quotient = x / scale
    if not np.all(np.isfinite(quotient)) or np.any(np.abs(quotient) >= 2.0 ** 52):
        raise ValueError("x / scale must be finite and below 2**52 in magnitude")
    boundary_offset = 0.0 if mode in ("floor", "ceil", "up", "down") else 0.5
    shifted = quotient - boundary_offset
    distance = np.abs(shifted - np.round(shifted))
    near = distance <= np.maximum(np.abs(quotient), 1.0) * 2.0 ** -30
    if mode == "half_even":
        result = np.round(quotient)
    elif mode in ("half_away", "half_down"):
        result = np.sign(quotient) * np.floor(np.abs(quotient) + 0.5)
    else:
        result = {"floor": np.floor, "ceil": np.ceil, "up": lambda q: np.sign(q) * np.ceil(np.abs(q)),
                  "down": np.trunc}[mode](quotient)
    result = np.array(result, dtype=np.float64)
    if np.any(near):
        x_b, scale_b = np.broadcast_arrays(x, scale)
        for index in zip(*np.nonzero(near)) if result.ndim else [()]:
            exact = Fraction(float(x_b[index])) / Fraction(float(scale_b[index]))
            result[index] = _round_fraction(exact, mode)
    return result.astype(np.int64)


def quantize_activations(x, bits, *, rounding="half_away", levels=None):
    """Quantize activations in [0, 1] to unsigned ``bits``-bit codes.

    ``code = round(L * clip(x, 0, 1))`` with ``L = levels`` (default ``2**bits - 1``), rounding
    the exact product with the rule ``rounding``.

    Parameters
    ----------
    x : array_like of float
        Any shape. NaN is rejected.
    bits : int
        Code width, 1..16.
    rounding : str
        One of :data:`ROUNDING_MODES`.
    levels : int, optional
        The largest code (the value 1.0), 1..``2**bits - 1``; imported unsigned "narrow range"
        quantizers stop at ``2**bits - 2``.

    Returns
    -------
    numpy.ndarray of int64, shape of ``x``, values in ``[0, 2**bits - 1]``.

    Raises
    ------
    TypeError, ValueError
        ``bits`` is not an integer in 1..16, or ``x`` holds NaN.
    """
    levels = check_levels(levels, bits)
    x = _as_float_array("activations", x)
    return round_scaled(np.clip(x, 0.0, 1.0), levels, rounding)


def check_levels(levels, bits):
    """``levels`` (default ``2**bits - 1``) as an int in ``[1, 2**bits - 1]``, else raise."""
    top = activation_levels(bits)
    if levels is None:
        return top
    if isinstance(levels, bool) or not isinstance(levels, numbers.Integral) or \
            not 1 <= levels <= top:
        raise ValueError(f"levels must be an integer in [1, {top}] for {bits} bits, "
                         f"not {levels!r}")
    return int(levels)


def dequantize_activations(codes, bits):
    """Float value of unsigned activation codes: ``codes / (2**bits - 1)``.

    Raises
    ------
    ValueError
        A code lies outside ``[0, 2**bits - 1]``.
    """
    levels = activation_levels(bits)
    codes = _as_code_array("activation codes", codes, 0, levels)
    return codes / levels


def quantize_weights(w, bits, *, per_channel=True):
    """Quantize float weights to symmetric signed codes and per-output-channel scales.

    Parameters
    ----------
    w : array_like of float, shape (C_out, ...)
        The output channel is on axis 0; any trailing shape.
    bits : int
        1 (binary, BWN), 2 (ternary) .. 16.
    per_channel : bool
        Binary only: ``scale[c] = mean(|w[c]|)`` when true, else one ``mean(|w|)`` for the whole
        tensor repeated per channel. For ``bits >= 2`` the scale is ``1 / (2**(bits-1) - 1)``
        either way.

    Returns
    -------
    codes : numpy.ndarray of int64, shape of ``w``
        In ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]``; binary codes are -1 or +1 (+1 for w >= 0).
    scale : numpy.ndarray of float64, shape (C_out,)
        ``codes * scale[:, None, ...]`` is the dequantized weight. A binary channel whose
        weights are all zero gets scale 0.

    Raises
    ------
    TypeError, ValueError
        ``bits`` is not an integer in 1..16; ``w`` is not at least 1-d, is empty, or holds NaN.
    """
    bits = check_bits("weight bits", bits, WEIGHT_BITS)
    w = _as_float_array("weights", w)
    if w.ndim < 1 or w.shape[0] == 0 or w.size == 0:
        raise ValueError(f"weights must have the output channel on axis 0 and at least one "
                         f"element, not shape {w.shape!r}")
    out_channels = w.shape[0]
    if bits == 1:
        codes = np.where(w >= 0, 1, -1).astype(np.int64)
        magnitude = np.abs(w).reshape(out_channels, -1)
        scale = magnitude.mean(axis=1) if per_channel else np.full(out_channels, magnitude.mean())
        return codes, scale.astype(np.float64)
    levels = weight_levels(bits)
    codes = round_scaled(np.clip(w, -1.0, 1.0), levels)
    return codes, np.full(out_channels, 1.0 / levels)


def dequantize_weights(codes, scale, bits):
    """Float weights ``codes * scale[:, None, ...]`` of codes from :func:`quantize_weights`.

    Raises
    ------
    ValueError
        A code is outside the range for ``bits`` (binary codes must be -1 or +1), or ``scale``
        is not one value per output channel.
    """
    low, high = weight_code_range(bits)
    codes = _as_code_array("weight codes", codes, low, high)
    if bits == 1 and np.any(codes == 0):
        raise ValueError("binary weight codes must be -1 or +1, not 0")
    scale = np.asarray(scale, dtype=np.float64)
    if codes.ndim < 1 or scale.shape != (codes.shape[0],):
        raise ValueError(f"weight scale must have one value per output channel "
                         f"{(codes.shape[:1])!r}, not shape {scale.shape!r}")
    return codes * scale.reshape((-1,) + (1,) * (codes.ndim - 1))


def _as_float_array(name, x):
    x = np.asarray(x, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError(f"{name} must not contain NaN")
    return x


def _as_code_array(name, codes, low, high):
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iub":
        if codes.dtype.kind == "f" and np.all(np.isfinite(codes)) and np.all(codes == np.round(codes)):
            codes = codes.astype(np.int64)
        else:
            raise TypeError(f"{name} must be integers, not dtype {codes.dtype}")
    codes = codes.astype(np.int64)
    if codes.size and (codes.min() < low or codes.max() > high):
        bad = codes[(codes < low) | (codes > high)].flat[0]
        raise ValueError(f"{name} must lie in [{low}, {high}], not {int(bad)}")
    return codes


@dataclass(frozen=True)
class InputQuantizer:
    """An imported network's input rule (QONNX ``Quant`` on the graph input).

    ``q = clip(round(x / scale), q_low, q_high)`` with the rule ``rounding``, where
    ``[q_low, q_high]`` is ``[0, 2**bits - 1]`` unsigned (``- 1`` at the top when ``narrow``) or
    ``[-2**(bits-1), 2**(bits-1) - 1]`` signed (``+ 1`` at the bottom when ``narrow``). The
    datapath is unsigned, so the hardware code is ``q + zero_code`` with ``zero_code`` 0
    unsigned and ``2**(bits-1)`` signed: codes always lie in ``[0, 2**bits - 1]``, and the
    real value of code ``u`` is ``(u - zero_code) * scale``.

    Parameters
    ----------
    bits : int
        1..16 (signed needs at least 2).
    scale : float
        Positive, finite.
    signed, narrow : bool
    rounding : str
        One of :data:`ROUNDING_MODES`.
    """

    bits: int
    scale: float
    signed: bool = False
    narrow: bool = False
    rounding: str = "half_even"

    def __post_init__(self):
        check_bits("input quantizer bits", self.bits, (2 if self.signed else 1,
                                                        ACTIVATION_BITS[1]))
        if not (isinstance(self.scale, numbers.Real) and math.isfinite(self.scale)
                and self.scale > 0):
            raise ValueError(f"input quantizer scale must be a positive finite number, "
                             f"not {self.scale!r}")
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "signed", bool(self.signed))
        object.__setattr__(self, "narrow", bool(self.narrow))
        check_rounding("input quantizer rounding", self.rounding)

    @property
    def q_range(self):
        """``(q_low, q_high)``: the integer range before the zero code is added."""
        if self.signed:
            half = 1 << (self.bits - 1)
            return -half + self.narrow, half - 1
        return 0, (1 << self.bits) - 1 - self.narrow

    @property
    def zero_code(self):
        """The hardware code of the value 0: ``2**(bits-1)`` signed, 0 unsigned."""
        return (1 << (self.bits - 1)) if self.signed else 0

    def codes(self, x):
        """Float inputs (any shape; NaN rejected) -> hardware codes (int64, same shape)."""
        x = _as_float_array("inputs", x)
        low, high = self.q_range
        bound = (max(abs(low), high) + 1) * self.scale
        q = round_divided(np.clip(x, -bound, bound), self.scale, self.rounding)
        return np.clip(q, low, high) + self.zero_code

    def values(self, codes):
        """The real values of hardware codes: ``(codes - zero_code) * scale`` (float64)."""
        return (np.asarray(codes, dtype=np.float64) - self.zero_code) * self.scale

    def inputs_for(self, codes):
        """A float input that quantizes to each hardware code: the middle of the code's
        rounding interval (``(u - zero_code) * scale`` for the nearest rules, half a step
        inside for floor, ceil, up and down)."""
        q = np.asarray(codes, dtype=np.float64) - self.zero_code
        shift = {"floor": 0.5, "ceil": -0.5, "down": 0.5 * np.sign(q),
                 "up": -0.5 * np.sign(q)}.get(self.rounding, 0.0)
        return (q + shift) * self.scale

    def to_dict(self):
        return {"bits": self.bits, "scale": self.scale, "signed": self.signed,
                "narrow": self.narrow, "rounding": self.rounding}
