"""WRPN quantizers: float <-> integer code, in both directions.

The one rounding rule
---------------------
Every float -> integer step in wrpn-rtl rounds **to the nearest integer, ties away from zero**,
and it rounds the *exact* real product of the float64 input and the level count (the product is
not first rounded to float64). :func:`round_half_away` is that rule for a value that is already a
float; :func:`round_scaled` is the rule for ``x * n``. The integer thresholds of the hardware are
derived from these functions (see :mod:`.thresholds`), so the hardware matches them bit for bit.

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
import numbers

import numpy as np

__all__ = [
    "ACTIVATION_BITS", "WEIGHT_BITS",
    "check_bits", "activation_levels", "weight_levels", "weight_code_range",
    "round_half_away", "round_scaled",
    "quantize_activations", "dequantize_activations",
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


def round_scaled(x, n):
    """Round the exact real product ``x * n`` to the nearest integer, ties away from zero.

    Parameters
    ----------
    x : array_like of float
        Values with ``|x * n| < 2**50`` (quantizer inputs are clipped first, so always true).
    n : int or array_like of int
        Level count(s), broadcast against ``x``.

    Returns
    -------
    numpy.ndarray of int64, the shape of ``x`` broadcast with ``n``.
    """
    x = np.asarray(x, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    sign = np.sign(x)
    product, error = _two_product(np.abs(x), n)   # |x| * n == product + error exactly
    whole = np.floor(product)
    # (product - whole - 0.5) + error has the sign of the exact fractional part minus one half:
    # product - whole is exact, and when it lies near 0.5 so does the subtraction of 0.5.
    round_up = ((product - whole) - 0.5) + error >= 0
    return (sign * (whole + round_up)).astype(np.int64)


def quantize_activations(x, bits):
    """Quantize activations in [0, 1] to unsigned ``bits``-bit codes.

    ``code = round((2**bits - 1) * clip(x, 0, 1))`` with the module's rounding rule.

    Parameters
    ----------
    x : array_like of float
        Any shape. NaN is rejected.
    bits : int
        Code width, 1..16.

    Returns
    -------
    numpy.ndarray of int64, shape of ``x``, values in ``[0, 2**bits - 1]``.

    Raises
    ------
    TypeError, ValueError
        ``bits`` is not an integer in 1..16, or ``x`` holds NaN.
    """
    levels = activation_levels(bits)
    x = _as_float_array("activations", x)
    return round_scaled(np.clip(x, 0.0, 1.0), levels)


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
