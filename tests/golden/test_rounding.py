"""Rounding rules of imported quantizers: every mode on exact products, exact quotients, and the
input quantizer; each against exact rational arithmetic, ties and their float neighbours."""
from fractions import Fraction
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from wrpn_rtl.golden import ROUNDING_MODES, InputQuantizer, round_divided, round_scaled
from wrpn_rtl.golden.quant import quantize_activations
from wrpn_rtl.golden.thresholds import Requantizer


def ref_round(value, mode):
    """``value`` (a Fraction) rounded by ``mode``, written from the rule's definition."""
    low = math.floor(value)
    high = math.ceil(value)
    if low == high:
        return low
    toward_zero, away = (low, high) if value > 0 else (high, low)
    if mode == "floor":
        return low
    if mode == "ceil":
        return high
    if mode == "down":
        return toward_zero
    if mode == "up":
        return away
    distance = value - low
    if distance != Fraction(1, 2):
        return low if distance < Fraction(1, 2) else high
    return {"half_away": away, "half_down": toward_zero,
            "half_even": low if low % 2 == 0 else high}[mode]


def ties_and_neighbours(n):
    """Floats at, just below and just above ``(j + 1/2) / n`` and ``j / n``, both signs."""
    values = []
    for j in range(-6, 7):
        for point in ((j + 0.5) / n, j / n):
            values += [point, np.nextafter(point, -np.inf), np.nextafter(point, np.inf)]
    return np.array(values)


@pytest.mark.parametrize("mode", ROUNDING_MODES)
@pytest.mark.parametrize("n", [1, 3, 7, 15, 255, 65535])
def test_round_scaled_rounds_the_exact_product(mode, n, rng):
    x = np.concatenate([ties_and_neighbours(n), rng.uniform(-3, 3, 200)])
    got = round_scaled(x, n, mode)
    for value, code in zip(x, got):
        assert code == ref_round(Fraction(float(value)) * n, mode), (value, mode)


@pytest.mark.parametrize("mode", ROUNDING_MODES)
@pytest.mark.parametrize("scale", [0.5, 0.1, 1 / 3, 2.0 ** -7, 0.0078125 * 3, 1e-3])
def test_round_divided_rounds_the_exact_quotient(mode, scale, rng):
    grid = np.arange(-20, 21) * 0.5 * scale          # float products near ties of x / scale
    x = np.concatenate([grid, np.nextafter(grid, -np.inf), np.nextafter(grid, np.inf),
                        rng.uniform(-30 * scale, 30 * scale, 200)])
    got = round_divided(x, scale, mode)
    for value, code in zip(x, got):
        assert code == ref_round(Fraction(float(value)) / Fraction(scale), mode), (value, mode)


@given(st.floats(-1e6, 1e6, allow_nan=False), st.floats(1e-6, 1e3),
       st.sampled_from(ROUNDING_MODES))
def test_round_divided_property(x, scale, mode):
    assert round_divided(x, scale, mode) == ref_round(Fraction(x) / Fraction(scale), mode)


def test_unknown_rounding_mode_is_named():
    with pytest.raises(ValueError, match=r"^rounding mode must be one of half_away, half_even, "
                                         r"half_down, floor, ceil, up, down, not 'nearest'$"):
        round_scaled(0.5, 3, "nearest")


@pytest.mark.parametrize("signed, narrow, bits, expected_range, zero", [
    (False, False, 4, (0, 15), 0), (False, True, 4, (0, 14), 0),
    (True, False, 4, (-8, 7), 8), (True, True, 4, (-7, 7), 8), (True, False, 2, (-2, 1), 2)])
def test_input_quantizer_ranges_and_zero_code(signed, narrow, bits, expected_range, zero):
    quantizer = InputQuantizer(bits=bits, scale=0.25, signed=signed, narrow=narrow)
    assert quantizer.q_range == expected_range and quantizer.zero_code == zero
    codes = quantizer.codes(np.linspace(-10, 10, 401))
    low, high = expected_range
    assert codes.min() == low + zero and codes.max() == high + zero
    assert codes.min() >= 0 and codes.max() <= (1 << bits) - 1
    assert np.allclose(quantizer.values(codes), np.clip(np.linspace(-10, 10, 401), low * 0.25,
                                                        high * 0.25), atol=0.125 + 1e-12)


def test_input_quantizer_half_even_ties():
    quantizer = InputQuantizer(bits=8, scale=0.5, signed=True, rounding="half_even")
    assert list(quantizer.codes(np.array([0.25, 0.75, -0.25, -0.75]))) == [128, 130, 128, 126]


@pytest.mark.parametrize("kwargs, message", [
    (dict(bits=1, scale=1.0, signed=True), r"^input quantizer bits must be an integer in \[2, 16\], not 1$"),
    (dict(bits=4, scale=0.0), r"^input quantizer scale must be a positive finite number, not 0\.0$"),
    (dict(bits=4, scale=1.0, rounding="even"), r"^input quantizer rounding must be one of .*, not 'even'$"),
])
def test_input_quantizer_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InputQuantizer(**kwargs)


@pytest.mark.parametrize("mode", ROUNDING_MODES)
@pytest.mark.parametrize("bits, levels", [(2, 3), (3, 6), (4, 15)])
def test_thresholds_reproduce_every_mode_and_levels(mode, bits, levels, rng):
    """The integer staircase equals the float rule for every mode, on a range full of ties."""
    channels = 5
    # multiplier 1/(2 * levels) puts a tie of L * y at every odd accumulator
    multiplier = np.array([1 / (2 * levels), -1 / (2 * levels), 0.013, -0.2, 0.0])
    offset = np.array([0.0, 0.5, 0.1, 0.9, 0.4])
    low, high = np.full(channels, -40), np.full(channels, 40)
    requantizer = Requantizer(multiplier, offset, bits, low, high, rounding=mode, levels=levels)
    acc = np.arange(-40, 41)[:, None].repeat(channels, axis=1)
    expected = quantize_activations(acc * multiplier + offset, bits, rounding=mode, levels=levels)
    assert np.array_equal(requantizer.integer_codes(acc), expected)
    assert np.array_equal(requantizer.float_codes(acc), expected)
    assert expected.max() <= levels
    affine = requantizer.affine
    if affine is not None:
        assert np.array_equal(affine.codes(acc), expected)


@pytest.mark.parametrize("mode", ROUNDING_MODES)
def test_affine_form_of_each_mode(mode):
    """Dyadic parameters make L * y exact, with exact ties in the range: every rule but
    half-even is then a floor of an affine map and must be found; half-even is one only while
    its ties happen to round the same way (checked exactly whenever a form is given)."""
    levels = 15
    multiplier, offset = np.array([2.0 ** -5, -2.0 ** -6]), np.array([0.0, 0.75])
    low, high = np.full(2, -40), np.full(2, 40)
    requantizer = Requantizer(multiplier, offset, 4, low, high, rounding=mode, levels=levels)
    acc = np.arange(-40, 41)[:, None].repeat(2, axis=1)
    expected = quantize_activations(acc * multiplier + offset, 4, rounding=mode, levels=levels)
    affine = requantizer.affine
    assert mode == "half_even" or affine is not None
    if affine is not None:
        assert np.array_equal(affine.codes(acc), expected)


@pytest.mark.parametrize("mode", ROUNDING_MODES)
@pytest.mark.parametrize("signed, narrow", [(False, False), (True, False), (True, True)])
def test_inputs_for_codes_quantize_back(mode, signed, narrow):
    quantizer = InputQuantizer(bits=5, scale=0.1, signed=signed, narrow=narrow, rounding=mode)
    low, high = quantizer.q_range
    codes = np.arange(low, high + 1) + quantizer.zero_code
    assert np.array_equal(quantizer.codes(quantizer.inputs_for(codes)), codes)
