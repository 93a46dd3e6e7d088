import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from wrpn_rtl.golden import (apply_thresholds, derive_thresholds, preactivation,
                             quantize_activations, Requantizer)

finite = st.floats(allow_nan=False, allow_infinity=False)
multipliers = st.one_of(
    st.just(0.0), st.just(-0.0),
    st.floats(1e-6, 10.0), st.floats(-10.0, -1e-6),
    st.sampled_from([0.25, -0.25, 1 / 3, 1 / 255, 1 / 7]),
)


def ref_codes(acc, multiplier, offset, out_bits):
    return quantize_activations(preactivation(acc, multiplier, offset), out_bits)


@given(multiplier=st.lists(multipliers, min_size=1, max_size=4), data=st.data(),
       out_bits=st.integers(1, 6))
def test_thresholds_reproduce_the_float_requantization(multiplier, data, out_bits):
    channels = len(multiplier)
    offset = np.array(data.draw(st.lists(st.floats(-3, 3), min_size=channels, max_size=channels)))
    low = np.array(data.draw(st.lists(st.integers(-300, 0), min_size=channels,
                                      max_size=channels)))
    span = np.array(data.draw(st.lists(st.integers(0, 300), min_size=channels,
                                       max_size=channels)))
    multiplier = np.array(multiplier)
    high = low + span
    req = Requantizer(multiplier, offset, out_bits, low, high)
    assert req.thresholds.shape == (channels, (1 << out_bits) - 1)
    assert np.all(np.diff(req.thresholds, axis=1) >= 0)
    for c in range(channels):
        acc = np.arange(low[c], high[c] + 1)
        column = np.zeros((acc.size, channels), dtype=np.int64)
        column[:, c] = acc
        rtl = req.integer_codes(column)[:, c]
        ref = ref_codes(acc, multiplier[c], offset[c], out_bits)
        np.testing.assert_array_equal(rtl, ref)
        value_low, value_high = sorted([low[c] * req.direction[c], high[c] * req.direction[c]])
        assert np.all(req.thresholds[c] >= value_low)
        assert np.all(req.thresholds[c] <= value_high + 1)


@pytest.mark.parametrize("out_bits", [1, 2, 4])
def test_ties_at_exact_midpoints(out_bits):
    # multiplier 1/(2n): y * n = acc / 2 exactly, so every odd acc is a tie (rounds up).
    levels = (1 << out_bits) - 1
    multiplier = np.array([1.0 / (2 * levels) if levels & (levels - 1) == 0 else 0.5])
    low, high = np.array([-4]), np.array([4 * levels])
    req = Requantizer(multiplier, np.array([0.0]), out_bits, low, high)
    acc = np.arange(-4, 4 * levels + 1)[:, None]
    np.testing.assert_array_equal(req.integer_codes(acc)[:, 0],
                                  ref_codes(acc[:, 0], multiplier[0], 0.0, out_bits))
    if out_bits == 1:
        assert req.thresholds.tolist() == [[1]]   # acc = 1 -> y = 0.5 exactly -> code 1


def test_negative_and_zero_slopes():
    req = Requantizer(np.array([-0.1, 0.0, 0.0]), np.array([1.0, 0.55, -2.0]), 2,
                      np.array([-20, -20, -20]), np.array([20, 20, 20]))
    assert req.direction.tolist() == [-1, 1, 1]
    acc = np.arange(-20, 21)
    codes = req.integer_codes(np.stack([acc] * 3, axis=1))
    assert codes[:, 1].tolist() == [2] * 41         # constant round(0.55 * 3) = 2
    assert codes[:, 2].tolist() == [0] * 41
    assert np.all(np.diff(codes[:, 0]) <= 0)         # decreasing in acc
    np.testing.assert_array_equal(codes[:, 0], ref_codes(acc, -0.1, 1.0, 2))
    # constant channels: thresholds are "always" (low) or "never" (high + 1)
    assert req.thresholds[1].tolist() == [-20, -20, 21]
    assert req.thresholds[2].tolist() == [21, 21, 21]


def test_huge_accumulator_ranges_and_sixteen_bit_outputs(rng):
    low, high = np.array([-(1 << 40)]), np.array([1 << 40])
    multiplier, offset = np.array([1.0 / (1 << 38)]), np.array([0.3])
    req = Requantizer(multiplier, offset, 3, low, high)
    acc = np.concatenate([rng.integers(-(1 << 40), 1 << 40, 2000),
                          req.thresholds[0], req.thresholds[0] - 1])[:, None]
    np.testing.assert_array_equal(req.integer_codes(acc)[:, 0],
                                  ref_codes(acc[:, 0], multiplier[0], offset[0], 3))
    wide = Requantizer(np.array([1e-5]), np.array([0.0]), 16, np.array([0]), np.array([200000]))
    acc = rng.integers(0, 200001, 5000)[:, None]
    np.testing.assert_array_equal(wide.integer_codes(acc)[:, 0],
                                  ref_codes(acc[:, 0], 1e-5, 0.0, 16))


def test_apply_thresholds_counts_passed_thresholds():
    codes = apply_thresholds(np.array([[-5, 5], [0, 0], [3, -1]]), np.array([1, -1]),
                             np.array([[0, 3, 3], [-2, 0, 1]]))
    assert codes.tolist() == [[0, 0], [1, 2], [3, 3]]


def test_bad_threshold_inputs():
    with pytest.raises(ValueError, match=r"^out_bits must be an integer in \[1, 16\], not 0$"):
        Requantizer(np.ones(1), np.zeros(1), 0, np.zeros(1), np.ones(1))
    with pytest.raises(ValueError, match=r"^acc_low must not exceed acc_high$"):
        derive_thresholds(np.ones(1), np.zeros(1), 2, np.array([3]), np.array([2]))
    with pytest.raises(ValueError, match=r"^multiplier and offset must be finite$"):
        derive_thresholds(np.array([np.inf]), np.zeros(1), 2, np.array([0]), np.array([2]))


@given(multiplier=st.lists(multipliers, min_size=1, max_size=3), data=st.data(),
       out_bits=st.sampled_from([1, 2, 3, 4, 6, 8, 10]))
def test_affine_form_equals_the_float_requantization_everywhere(multiplier, data, out_bits):
    """Where the affine form exists, it gives the float function's code for every reachable
    accumulator (checked exhaustively on small ranges); the two tests below say when it
    exists."""
    channels = len(multiplier)
    offset = np.array(data.draw(st.lists(st.floats(-3, 3), min_size=channels, max_size=channels)))
    low = np.array(data.draw(st.lists(st.integers(-2000, 0), min_size=channels,
                                      max_size=channels)))
    high = low + np.array(data.draw(st.lists(st.integers(0, 2000), min_size=channels,
                                             max_size=channels)))
    multiplier = np.array(multiplier)
    req = Requantizer(multiplier, offset, out_bits, low, high)
    affine = req.affine
    assume(affine is not None)         # a float rounding anomaly has none (see below)
    for c in range(channels):
        acc = np.zeros((high[c] - low[c] + 1, channels), dtype=np.int64)
        acc[:, c] = np.arange(low[c], high[c] + 1)
        np.testing.assert_array_equal(affine.codes(acc)[:, c],
                                      ref_codes(acc[:, c], multiplier[c], offset[c], out_bits))


@pytest.mark.parametrize("seed", range(4))
def test_affine_form_at_16_bits_on_every_step(seed):
    """16-bit codes over a wide accumulator range: every threshold, its left neighbour and
    random points agree with the float function (65,535 steps per channel)."""
    rng = np.random.default_rng(seed)
    channels = 3
    multiplier = rng.normal(0, 2e-5, channels) * [1, -1, 1]
    offset = rng.normal(0.5, 0.3, channels)
    low, high = -np.full(channels, 1 << 20), np.full(channels, 1 << 21)
    req = Requantizer(multiplier, offset, 16, low, high)
    affine = req.affine
    assert affine is not None
    for c in range(channels):
        value = np.unique(np.concatenate([req.thresholds[c], req.thresholds[c] - 1,
                                          rng.integers(low[c], high[c] + 1, 5000)]))
        acc_c = np.clip(value * req.direction[c], low[c], high[c])
        acc = np.zeros((acc_c.size, channels), dtype=np.int64)
        acc[:, c] = acc_c
        want = ref_codes(acc_c, multiplier[c], offset[c], 16)
        assert len(np.unique(want)) > 1000                 # the range spans many codes
        np.testing.assert_array_equal(affine.codes(acc)[:, c], want)
        np.testing.assert_array_equal(req.integer_codes(acc)[:, c], want)


def test_affine_form_is_rejected_when_it_does_not_reproduce_the_thresholds():
    """The derivation accepts only what it proves: a staircase whose steps cannot come from
    one line (two steps one apart, the next two hundred further) gets no affine form; one
    threshold moved by one still gets a form, and that form reproduces the moved staircase."""
    from wrpn_rtl.golden import derive_affine
    multiplier, offset = np.array([0.01]), np.array([0.1])
    low, high = np.array([0]), np.array([1000])
    direction, thresholds = derive_thresholds(multiplier, offset, 2, low, high)
    moved = thresholds + [[0, 1, 0]]
    affine = derive_affine(multiplier, offset, 2, direction, moved, low, high)
    acc = np.arange(0, 1001)[:, None]
    np.testing.assert_array_equal(affine.codes(acc), apply_thresholds(acc, direction, moved))
    crooked = np.array([[100, 101, 300]])
    assert derive_affine(multiplier, offset, 2, direction, crooked, low, high) is None


def test_affine_form_exists_for_generic_parameters():
    """Float multipliers and offsets that are not round numbers (as training produces) always
    had an affine form: 400 channels at 2..16 output bits."""
    rng = np.random.default_rng(7)
    for out_bits in (2, 4, 8, 12, 16):
        multiplier = rng.normal(0, 1, 80) * 10.0 ** rng.uniform(-5, 0, 80)
        offset = rng.normal(0.3, 0.5, 80)
        low, high = -rng.integers(0, 5000, 80), rng.integers(0, 5000, 80)
        assert Requantizer(multiplier, offset, out_bits, low, high).affine is not None


def test_a_float_rounding_anomaly_has_no_affine_form():
    """Multiplier 1/3 and offset 0.9 at 4 bits put every accumulator on a rounding tie in real
    arithmetic; float64 resolves them unevenly (codes 4, 8, 14 for -2, -1, 0: steps of 4 and
    6, which no line gives), so the layer keeps its thresholds."""
    req = Requantizer(np.array([1 / 3]), np.array([0.9]), 4, np.array([-2]), np.array([0]))
    acc = np.array([[-2], [-1], [0]])
    np.testing.assert_array_equal(req.integer_codes(acc)[:, 0], [4, 8, 14])
    assert req.affine is None
