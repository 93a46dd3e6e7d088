"""Multi-threshold requantization: from an integer accumulator to the next layer's code.

A hidden layer's real pre-activation for output channel ``c`` is, by definition,

    ``y = fl(fl(acc * multiplier[c]) + offset[c])``        (float64, in that order)

where ``multiplier[c] = activation scale x weight scale[c] x batch-norm slope[c]`` and
``offset[c]`` is the folded bias / batch-norm shift. The next layer's activation code is
``quantize_activations(y, out_bits, rounding=..., levels=L)``: clip to [0, 1], then round
``L * y`` (``L = 2**out_bits - 1`` unless an imported quantizer stops lower) with the layer's
rounding rule (:data:`.quant.ROUNDING_MODES`; WRPN's is ``half_away``).

Because every step is monotone in ``acc``, that whole map is a staircase: for ``multiplier >= 0``

    ``code(acc) = #{ j in 1..L : acc >= T[c, j] }``,   ``L = 2**out_bits - 1``

and for ``multiplier < 0`` the same with ``-acc`` in place of ``acc``. :func:`derive_thresholds`
finds each ``T[c, j]`` by bisection on *that same float function*, so the integer thresholds
reproduce it exactly, rounding ties included. Thresholds are clamped to the reachable
accumulator range: ``T`` lies in ``[lo, hi + 1]`` of the value compared (``lo`` means "always",
``hi + 1`` "never"), which also bounds the comparator width. A channel with ``multiplier == 0``
is constant and gets ``direction = +1`` with thresholds ``lo`` (up to its level) and ``hi + 1``.

Arithmetic form
---------------
``L`` comparators per channel stop being practical beyond a few bits (``L = 65535`` at 16 bits),
so the same staircase is also given, where it is exact, as one multiply-add-shift:

    ``code(acc) = clip(floor((direction * acc * M[c] + B[c]) / 2**S), 0, L)``

with integers ``M[c] >= 0``, ``B[c]`` and one shift ``S`` per layer (:class:`AffineRequantizer`).
In real arithmetic the float function *is* such a map (``M / 2**S = L * |multiplier|``,
``B / 2**S = L * offset + 1/2``; float64 values are dyadic), and float rounding only moves a
threshold that sits within an ulp of a tie. :func:`derive_affine` looks for the smallest ``S``
whose rounded coefficients reproduce every derived threshold and accepts nothing else: both
maps are non-decreasing staircases in ``direction * acc``, and they agree on the whole reachable
range exactly when, for every ``j``, the least value reaching code ``j`` is the same - which is
checked for all ``L`` thresholds in exact integer arithmetic. Channels where no such form
exists (a float rounding anomaly) leave the layer with thresholds only.
"""
from fractions import Fraction
from dataclasses import dataclass
import functools

import numpy as np

from .quant import (ACTIVATION_BITS, activation_levels, check_bits, check_levels, check_rounding,
                    quantize_activations)

__all__ = ["Requantizer", "AffineRequantizer", "preactivation", "derive_thresholds",
           "apply_thresholds", "derive_affine"]


def preactivation(acc, multiplier, offset):
    """The layer's real pre-activation ``fl(fl(acc * multiplier) + offset)``, float64.

    Parameters
    ----------
    acc : array_like of int or integer-valued float, shape (..., C)
    multiplier, offset : array_like of float64, shape (C,)
    """
    acc = np.asarray(acc, dtype=np.float64)
    return acc * np.asarray(multiplier, dtype=np.float64) + np.asarray(offset, dtype=np.float64)


def derive_thresholds(multiplier, offset, out_bits, acc_low, acc_high, *, rounding="half_away",
                      levels=None):
    """Integer thresholds that reproduce ``quantize_activations(preactivation(acc), out_bits,
    rounding=rounding, levels=levels)``.

    Parameters
    ----------
    multiplier, offset : array_like of float64, shape (C,)
    out_bits : int
        1..16; ``2**out_bits - 1`` thresholds per channel (those above ``levels`` are "never").
    acc_low, acc_high : array_like of int, shape (C,)
        Reachable accumulator range per channel, ``acc_low <= acc_high``.
    rounding : str
    levels : int, optional
        The largest code; default ``2**out_bits - 1``.

    Returns
    -------
    direction : numpy.ndarray of int64, shape (C,)
        +1 or -1: the thresholds compare ``direction * acc``.
    thresholds : numpy.ndarray of int64, shape (C, L)
        Non-decreasing along axis 1; within ``[lo, hi + 1]`` of ``direction * acc``.
    """
    top = check_levels(levels, out_bits)
    check_rounding("rounding", rounding)
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
        return quantize_activations(y, out_bits, rounding=rounding, levels=top)

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


def _exact_integers(limit):
    """The NumPy dtype for exact integer arithmetic on magnitudes up to ``limit``: int64 while
    that is safe, Python integers (object) beyond."""
    return np.int64 if limit < (1 << 62) else object


def _affine_least_values(M, B, shift, levels, v_low, v_high):
    """For ``j = 1..levels``: the least ``v`` in ``[v_low, v_high + 1]`` with
    ``floor((v * M + B) / 2**shift) >= j`` (``v_high + 1``: none), in exact integers."""
    dtype = _exact_integers((levels << shift) + abs(B))
    need = (np.arange(1, levels + 1).astype(dtype) << shift) - B     # v * M >= need
    if M == 0:
        least = np.where(need <= 0, v_low, v_high + 1)
    else:
        least = -((-need) // M)                                         # ceil(need / M)
    return np.minimum(np.maximum(least, v_low), v_high + 1)


def _affine_for_channel(thresholds, slope, intercept, shift, v_low, v_high):
    """``(M, B)`` at ``shift`` reproducing ``thresholds`` on ``[v_low, v_high]``, or None.

    ``M`` is the real slope rounded (and its neighbours); ``B`` the least value the threshold
    inequalities allow for that ``M``."""
    levels = len(thresholds)
    centre = round(slope * (1 << shift))
    reach = max(abs(v_low), abs(v_high)) + 2
    dtype = _exact_integers(reach * (centre + 2) + (levels << shift))
    t = np.asarray(thresholds, dtype=np.int64).astype(dtype)
    j = np.arange(1, levels + 1).astype(dtype) << shift
    passes = t <= v_high                 # code j is reached at v = t: t*M + B >= j * 2**S
    below = t > v_low                    # ... and not at t - 1: (t-1)*M + B <= j * 2**S - 1
    for M in (centre, centre - 1, centre + 1):
        if M < 0:
            continue
        low = max((j - t * M)[passes], default=None)
        high = min((j - 1 - (t - 1) * M)[below], default=None)
        if low is None:
            B = high if high is not None else round(intercept * (1 << shift))
        elif high is not None and low > high:
            continue
        else:
            B = low
        B = int(B)
        if np.array_equal(_affine_least_values(M, B, shift, levels, v_low, v_high), t):
            return M, B
    return None


def derive_affine(multiplier, offset, out_bits, direction, thresholds, acc_low, acc_high, *,
                  levels=None):
    """The arithmetic form of the thresholds, exact over the reachable range, or None.

    Parameters
    ----------
    multiplier, offset : array_like of float64, shape (C,)
    out_bits : int
    direction, thresholds : the output of :func:`derive_thresholds` for these parameters.
    levels : int, optional
        The rule's largest code (its thresholds above it are "never").
    acc_low, acc_high : array_like of int, shape (C,)

    Returns
    -------
    AffineRequantizer or None
        None when some channel has no exact form with a shift of at most 96 bits.

    The search starts from the real slope and intercept of the nearest rules (the intercept
    carries ``+ 1/2``); every candidate is checked against all thresholds, so a rule that is
    not of this form at some reachable value (half-even at an exact tie, say) gives None rather
    than a wrong form.
    """
    top = check_levels(levels, out_bits)
    found = []
    for c in range(len(direction)):
        slope = Fraction(top) * abs(Fraction(float(multiplier[c])))
        intercept = Fraction(top) * Fraction(float(offset[c])) + Fraction(1, 2)
        v_low = int(acc_low[c]) if direction[c] > 0 else -int(acc_high[c])
        v_high = int(acc_high[c]) if direction[c] > 0 else -int(acc_low[c])
        # Doubling then bisection on the shift: a form exact at S is exact at S + 1 too
        # (M and B doubled), and every candidate is verified, so the search only affects how
        # small S gets.
        def attempt(shift):
            return _affine_for_channel(thresholds[c], slope, intercept, shift, v_low, v_high)
        shift, result, failed = 0, attempt(0), -1
        while result is None and shift < 96:
            failed, shift = shift, max(1, 2 * shift)
            result = attempt(min(shift, 96))
            shift = min(shift, 96)
        if result is None:
            return None
        while shift - failed > 1:
            middle = (failed + shift) // 2
            trial = attempt(middle)
            if trial is None:
                failed = middle
            else:
                shift, result = middle, trial
        found.append((shift, result))
    common = max(shift for shift, _ in found)
    return AffineRequantizer(
        multipliers=tuple(M << (common - shift) for shift, (M, _) in found),
        biases=tuple(B << (common - shift) for shift, (_, B) in found),
        shift=common, out_bits=out_bits, direction=tuple(int(d) for d in direction))


@dataclass(frozen=True)
class AffineRequantizer:
    """``code = clip(floor((direction[c] * acc * multipliers[c] + biases[c]) / 2**shift), 0, L)``.

    Parameters
    ----------
    multipliers : tuple of int, length C
        ``M[c] >= 0`` (Python ints: they may exceed 64 bits).
    biases : tuple of int, length C
    shift : int
        ``S``, shared by every channel.
    out_bits : int
    direction : tuple of int, length C
        +1 or -1, as in :func:`derive_thresholds`.
    """

    multipliers: tuple
    biases: tuple
    shift: int
    out_bits: int
    direction: tuple

    def codes(self, acc):
        """Integer codes of ``acc`` (array_like of int, shape (..., C)), exactly."""
        acc = np.asarray(acc, dtype=np.int64).astype(object)
        signed = acc * np.asarray(self.direction, dtype=object)
        value = (signed * np.asarray(self.multipliers, dtype=object)
                 + np.asarray(self.biases, dtype=object)) >> self.shift
        levels = activation_levels(self.out_bits)
        return np.clip(value, 0, levels).astype(np.int64)


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
    rounding : str
        The rounding rule (:data:`.quant.ROUNDING_MODES`), ``half_away`` for WRPN's.
    levels : int or None
        The largest code (the value 1.0); None means ``2**out_bits - 1``.

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
    rounding: str = "half_away"
    levels: object = None

    def __post_init__(self):
        check_bits("out_bits", self.out_bits, ACTIVATION_BITS)
        object.__setattr__(self, "levels", check_levels(self.levels, self.out_bits))
        check_rounding("rounding", self.rounding)
        for name in ("multiplier", "offset"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        for name in ("acc_low", "acc_high"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64))
        direction, thresholds = derive_thresholds(self.multiplier, self.offset, self.out_bits,
                                                  self.acc_low, self.acc_high,
                                                  rounding=self.rounding, levels=self.levels)
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
        """The float path: ``quantize_activations(preactivation(acc), out_bits, ...)``."""
        return quantize_activations(preactivation(acc, self.multiplier, self.offset),
                                    self.out_bits, rounding=self.rounding, levels=self.levels)

    def integer_codes(self, acc):
        """The integer path: threshold comparisons on the accumulator."""
        return apply_thresholds(acc, self.direction, self.thresholds)

    @functools.cached_property
    def affine(self):
        """The same map as one multiply-add-shift per channel (:class:`AffineRequantizer`),
        exact over ``[acc_low, acc_high]`` (proved threshold by threshold), or None."""
        return derive_affine(self.multiplier, self.offset, self.out_bits, self.direction,
                             self.thresholds, self.acc_low, self.acc_high, levels=self.levels)
