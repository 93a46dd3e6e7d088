from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st

from wrpn_rtl.golden import (dequantize_activations, dequantize_weights, quantize_activations,
                             quantize_weights, round_half_away, round_scaled)


def exact_round(value):
    """Nearest integer to a Fraction, ties away from zero."""
    sign = -1 if value < 0 else 1
    magnitude = abs(value)
    whole = magnitude.numerator // magnitude.denominator
    return sign * (whole + (magnitude - whole >= Fraction(1, 2)))


def ref_activation_code(x, bits):
    clipped = min(max(Fraction(x), Fraction(0)), Fraction(1))
    return exact_round(clipped * ((1 << bits) - 1))


def ref_weight_code(w, bits):
    clipped = min(max(Fraction(w), Fraction(-1)), Fraction(1))
    return exact_round(clipped * ((1 << (bits - 1)) - 1))


def near_ties(levels):
    """Floats at and beside every rounding midpoint (j - 1/2) / levels."""
    values = []
    for j in range(1, min(levels, 64) + 1):
        middle = (j - 0.5) / levels
        values += [middle, np.nextafter(middle, 0), np.nextafter(middle, 1)]
    return np.array(values)


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 8, 12, 16])
def test_activation_codes_follow_the_formula(bits, rng):
    x = np.concatenate([rng.uniform(-0.5, 1.5, 300), near_ties((1 << bits) - 1),
                        [0.0, 1.0, -0.0, -3.0, 7.0]])
    codes = quantize_activations(x, bits)
    assert codes.dtype == np.int64
    assert [int(c) for c in codes] == [ref_activation_code(v, bits) for v in x]


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 8, 16])
def test_weight_codes_follow_the_formula(bits, rng):
    levels = (1 << (bits - 1)) - 1
    ties = near_ties(levels)
    w = np.concatenate([rng.uniform(-1.5, 1.5, 300), ties, -ties, [0.0, 1.0, -1.0]])
    codes, scale = quantize_weights(w.reshape(-1, 1), bits)
    assert [int(c) for c in codes.ravel()] == [ref_weight_code(v, bits) for v in w]
    np.testing.assert_array_equal(scale, np.full(len(w), 1.0 / levels))


def test_exact_ties_round_away_from_zero():
    # 0.5 * 1 is an exact tie: 1-bit activations and ternary weights.
    assert quantize_activations([0.5, np.nextafter(0.5, 0)], 1).tolist() == [1, 0]
    codes, _ = quantize_weights(np.array([[0.5], [-0.5], [0.49999999999999994]]), 2)
    assert codes.ravel().tolist() == [1, -1, 0]
    assert round_half_away([2.5, -2.5, 0.49999999999999994, -0.5, 1.4]).tolist() == [3, -3, 0, -1, 1]


def test_rounding_uses_the_exact_product_not_the_float_product():
    # Beside the midpoints (j - 1/2) / n, fl(x * n) can land on the other side of j - 1/2 (or
    # on it): the naive floor(x * n + 0.5) then disagrees with the exact rule. Find such x and
    # check that round_scaled follows the exact product everywhere.
    naive_wrong = 0
    for n in (3, 7, 15, 31, 63, 127, 255, 1023):
        for j in range(1, min(n, 200) + 1):
            x = (j - 0.5) / n
            candidates = [x]
            for direction in (0.0, 1.0):
                y = x
                for _ in range(3):
                    y = np.nextafter(y, direction)
                    candidates.append(y)
            for value in candidates:
                exact = exact_round(Fraction(float(value)) * n)
                assert round_scaled(value, n) == exact
                naive_wrong += int(np.floor(value * n + 0.5)) != exact
    assert naive_wrong > 0


def test_binary_weights_are_sign_with_per_channel_mean_scale(rng):
    w = rng.normal(size=(4, 3, 3, 2))
    w[1, 0, 0, 0] = 0.0
    codes, scale = quantize_weights(w, 1)
    np.testing.assert_array_equal(codes, np.where(w >= 0, 1, -1))
    np.testing.assert_allclose(scale, np.abs(w).reshape(4, -1).mean(axis=1), rtol=0, atol=0)
    _, tensor_scale = quantize_weights(w, 1, per_channel=False)
    np.testing.assert_array_equal(tensor_scale, np.full(4, np.abs(w).mean()))
    np.testing.assert_allclose(dequantize_weights(codes, scale, 1),
                               codes * scale[:, None, None, None])


@given(bits=st.integers(1, 16), data=st.data())
def test_activation_round_trip(bits, data):
    top = (1 << bits) - 1
    codes = np.array(data.draw(st.lists(st.integers(0, top), min_size=1, max_size=50)))
    assert np.array_equal(quantize_activations(dequantize_activations(codes, bits), bits), codes)


@given(bits=st.integers(2, 16), data=st.data())
def test_weight_round_trip(bits, data):
    top = (1 << (bits - 1)) - 1
    codes = np.array(data.draw(st.lists(st.integers(-top, top), min_size=1, max_size=50)))
    codes = codes.reshape(-1, 1)
    _, scale = quantize_weights(np.zeros_like(codes, dtype=float), bits)
    again, _ = quantize_weights(dequantize_weights(codes, scale, bits), bits)
    assert np.array_equal(again, codes)


@pytest.mark.parametrize("bits, error, message", [
    (0, ValueError, r"^activation bits must be an integer in \[1, 16\], not 0$"),
    (17, ValueError, r"^activation bits must be an integer in \[1, 16\], not 17$"),
    (2.0, TypeError, r"^activation bits must be an integer, not 2\.0$"),
    (True, TypeError, r"^activation bits must be an integer, not True$"),
])
def test_activation_bits_are_checked(bits, error, message):
    with pytest.raises(error, match=message):
        quantize_activations([0.5], bits)


def test_weight_errors():
    with pytest.raises(ValueError, match=r"^weight bits must be an integer in \[1, 16\], not 0$"):
        quantize_weights(np.ones((2, 2)), 0)
    with pytest.raises(ValueError, match=r"^weights must have the output channel on axis 0"):
        quantize_weights(np.ones((0, 3)), 2)
    with pytest.raises(ValueError, match=r"^weights must not contain NaN$"):
        quantize_weights(np.array([[np.nan]]), 2)
    with pytest.raises(ValueError, match=r"^weight codes must lie in \[-1, 1\], not 2$"):
        dequantize_weights(np.array([[2]]), np.ones(1), 2)
    with pytest.raises(ValueError, match=r"^binary weight codes must be -1 or \+1, not 0$"):
        dequantize_weights(np.array([[0]]), np.ones(1), 1)
    with pytest.raises(ValueError, match=r"^activation codes must lie in \[0, 3\], not 4$"):
        dequantize_activations([4], 2)
