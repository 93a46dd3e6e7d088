"""Multi-threshold requantization: from an integer accumulator to the next layer's code.

A hidden layer's real pre-activation for output channel ``c`` is, by definition,

    ``y = fl(fl(acc * multiplier[c]) + offset[c])``        (float64, in that order)

where ``multiplier[c] = activation scale x weight scale[c] x batch-norm slope[c]`` and
``offset[c]`` is the folded bias / batch-norm shift. The next layer's activation code is
``quantize_activations(y, out_bits)``: clip to [0, 1], then round ``(2**out_bits - 1) * y`` with
the one rounding rule of :mod:`.quant`.

Because every step is monotone in ``acc``, that whole map is a staircase: for ``multiplier >= 0``

    ``code(acc) = #{ j in 1..L : acc >= T[c, j] }``,   ``L = 2**out_bits - 1``

and for ``multiplier < 0`` the same with ``-acc`` in place of ``acc``. :func:`derive_thresholds`
finds each ``T[c, j]`` by bisection on *that same float function*, so the integer thresholds
reproduce it exactly, rounding ties included. Thresholds are clamped to the reachable
accumulator range: ``T`` lies in ``[lo, hi + 1]`` of the value compared (``lo`` means "always",
``hi + 1`` "never"), which also bounds the comparator width. A channel with ``multiplier == 0``
is constant and gets ``direction = +1`` with thresholds ``lo`` (up to its level) and ``hi + 1``.
"""
from dataclasses import dataclass

import numpy as np

from .quant import ACTIVATION_BITS, activation_levels, check_bits, quantize_activations

__all__ = ["Requantizer", "preactivation", "derive_thresholds", "apply_thresholds"]


def preactivation(acc, multiplier, offset):
    """The layer's real pre-activation ``fl(fl(acc * multiplier) + offset)``, float64.

    Parameters
    ----------
    acc : array_like of int or integer-valued float, shape (..., C)
    multiplier, offset : array_like of float64, shape (C,)
    """
    acc = np.asarray(acc, dtype=np.float64)
    return acc * np.asarray(multiplier, dtype=np.float64) + np.asarray(offset, dtype=np.float64)


def derive_thresholds(multiplier, offset, out_bits, acc_low, acc_high):
    """Integer thresholds that reproduce ``quantize_activations(preactivation(acc), out_bits)``.

    Parameters
    ----------
    multiplier, offset : array_like of float64, shape (C,)
    out_bits : int
        1..16; ``L = 2**out_bits - 1`` thresholds per channel.
    acc_low, acc_high : array_like of int, shape (C,)
        Reachable accumulator range per channel, ``acc_low <= acc_high``.

    Returns
    -------
    direction : numpy.ndarray of int64, shape (C,)
        +1 or -1: the thresholds compare ``direction * acc``.
    thresholds : numpy.ndarray of int64, shape (C, L)
        Non-decreasing along axis 1; within ``[lo, hi + 1]`` of ``direction * acc``.
    """
    levels = activation_levels(out_bits)
    multiplier = np.asarray(multiplier, dtype=np.float64)
    offset = np.asarray(offset, dtype=np.float64)
    acc_low = np.asarray(acc_low, dtype=np.int64)
    acc_high = np.asarray(acc_high, dtype=np.int64)
    channels = multiplier.shape[0]
    if not (offset.shape == acc_low.shape == acc_high.shape == (channels,)):
        raise ValueError("multiplier, offset, acc_low and acc_high must all have shape (C,)")
    if np.any(acc_low > acc_high):
        raise ValueError("acc_low must not exceed acc_high")
    if not (np.all(np.isfinite(multiplier)) and np.all(np.isfinite(offset))):
        raise ValueError("multiplier and offset must be finite")

    direction = np.where(multiplier < 0, -1, 1).astype(np.int64)
    # Range of the compared value v = direction * acc.
    v_low = np.where(direction > 0, acc_low, -acc_high)
    v_high = np.where(direction > 0, acc_high, -acc_low)

    def code_of(v):   # v: (C, L) int64 -> code of acc = direction * v
        acc = direction[:, None] * v
        y = preactivation(acc, multiplier[:, None], offset[:, None])
        return quantize_activations(y, out_bits)

    wanted = np.arange(1, levels + 1, dtype=np.int64)[None, :]
    # Bisection for the least v in [v_low, v_high + 1] with code(v) >= j; v_high + 1 = never.
    # Invariant: code(low - 1) < j (or low == v_low), and high satisfies it (or high == v_high + 1).
    low = np.broadcast_to(v_low[:, None], (channels, levels)).copy()
    high = np.broadcast_to(v_high[:, None] + 1, (channels, levels)).copy()
    while True:
        active = low < high
        if not active.any():
            break
        middle = low + (high - low) // 2
        reached = code_of(np.minimum(middle, v_high[:, None])) >= wanted
        high = np.where(active & reached, middle, high)
        low = np.where(active & ~reached, middle + 1, low)
    return direction, low


def apply_thresholds(acc, direction, thresholds):
    """Integer requantization: ``code = #{ j : direction * acc >= thresholds[c, j] }``.

    Parameters
    ----------
    acc : array_like of int, shape (..., C)
    direction : array_like of int, shape (C,)
    thresholds : array_like of int, shape (C, L), non-decreasing along axis 1

    Returns
    -------
    numpy.ndarray of int64, shape of ``acc``, codes in ``[0, L]``.
    """
    acc = np.asarray(acc, dtype=np.int64)
    direction = np.asarray(direction, dtype=np.int64)
    thresholds = np.asarray(thresholds, dtype=np.int64)
    value = acc * direction
    codes = np.empty(value.shape, dtype=np.int64)
    for channel in range(thresholds.shape[0]):
        codes[..., channel] = np.searchsorted(thresholds[channel], value[..., channel],
                                              side="right")
    return codes


@dataclass(frozen=True, eq=False)
class Requantizer:
    """Per-channel requantization of one layer: accumulator -> ``out_bits``-bit activation code.

    Parameters
    ----------
    multiplier : numpy.ndarray of float64, shape (C,)
        Activation scale x weight scale x batch-norm slope; any sign, zero allowed.
    offset : numpy.ndarray of float64, shape (C,)
        Folded bias and batch-norm shift.
    out_bits : int
        Output code width, 1..16.
    acc_low, acc_high : numpy.ndarray of int64, shape (C,)
        Reachable accumulator range per channel (from the layer's exact bound).

    Members
    -------
    direction : numpy.ndarray of int64, shape (C,)
        +1 or -1; see :func:`derive_thresholds`.
    thresholds : numpy.ndarray of int64, shape (C, 2**out_bits - 1)
        Non-decreasing along axis 1.
    """

    multiplier: np.ndarray
    offset: np.ndarray
    out_bits: int
    acc_low: np.ndarray
    acc_high: np.ndarray

    def __post_init__(self):
        check_bits("out_bits", self.out_bits, ACTIVATION_BITS)
        for name in ("multiplier", "offset"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        for name in ("acc_low", "acc_high"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64))
        direction, thresholds = derive_thresholds(self.multiplier, self.offset, self.out_bits,
                                                  self.acc_low, self.acc_high)
        object.__setattr__(self, "direction", direction)
        object.__setattr__(self, "thresholds", thresholds)

    @property
    def channels(self):
        return self.multiplier.shape[0]

    def compared_range(self):
        """``(low, high)`` over all channels of ``direction * acc`` and of the thresholds."""
        v_low = np.where(self.direction > 0, self.acc_low, -self.acc_high)
        v_high = np.where(self.direction > 0, self.acc_high, -self.acc_low) + 1
        return int(v_low.min()), int(v_high.max())

    def float_codes(self, acc):
        """The float path: ``quantize_activations(preactivation(acc), out_bits)``."""
        return quantize_activations(preactivation(acc, self.multiplier, self.offset),
                                    self.out_bits)

    def integer_codes(self, acc):
        """The integer path: threshold comparisons on the accumulator."""
        return apply_thresholds(acc, self.direction, self.thresholds)
