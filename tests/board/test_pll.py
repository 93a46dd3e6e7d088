"""PLL settings: the fastest clock within every limit of the primitive, at or below the
design's Fmax; the examples the vendor tools give."""
import pytest

from wrpn_rtl.board.pll import ecp5_pll, ice40_pll, pll_for


def test_ice40_matches_icepll():
    setting = ice40_pll(12e6, 40e6)        # icepll -i 12 -o 40: 39.750 MHz
    assert setting.primitive == "SB_PLL40_PAD"
    assert setting.parameters == {"FEEDBACK_PATH": "SIMPLE", "DIVR": 0, "DIVF": 52, "DIVQ": 4,
                                  "FILTER_RANGE": 1}
    assert setting.frequency_hz == pytest.approx(39.75e6)


@pytest.mark.parametrize("f_max_mhz", [17, 20.5, 33.3, 41.8, 48, 75, 120, 275, 400])
def test_ice40_stays_within_every_limit(f_max_mhz):
    setting = ice40_pll(12e6, f_max_mhz * 1e6)
    p = setting.parameters
    f_pfd = 12e6 / (p["DIVR"] + 1)
    f_vco = f_pfd * (p["DIVF"] + 1)
    assert 10e6 <= f_pfd <= 133e6 and 533e6 <= f_vco <= 1066e6 and 1 <= p["DIVQ"] <= 6
    assert setting.frequency_hz == f_vco / 2 ** p["DIVQ"] <= f_max_mhz * 1e6
    assert setting.frequency_hz >= min(f_max_mhz, 275) * 1e6 * 0.96   # a fine grid


@pytest.mark.parametrize("f_max_mhz", [5, 25, 50, 82.6, 133.3, 400, 500])
def test_ecp5_stays_within_every_limit(f_max_mhz):
    setting = ecp5_pll(25e6, f_max_mhz * 1e6)
    p = setting.parameters
    f_out = 25e6 / p["CLKI_DIV"] * p["CLKFB_DIV"]
    assert setting.frequency_hz == pytest.approx(f_out) and f_out <= f_max_mhz * 1e6
    assert 400e6 <= f_out * p["CLKOP_DIV"] <= 800e6
    assert p["CLKOP_CPHASE"] == p["CLKOP_DIV"] - 1
    assert f_out >= min(f_max_mhz, 400) * 1e6 * 0.97


def test_ecp5_exact_when_it_can_be():
    setting = ecp5_pll(25e6, 50e6)
    assert setting.frequency_hz == 50e6 and setting.parameters["CLKOP_DIV"] == 12


def test_too_slow_a_clock_is_named():
    with pytest.raises(ValueError, match=r"^the iCE40 PLL makes no clock at or below 15\.000 "
                                         r"MHz from 12 MHz \(its lowest output is 16 MHz\)$"):
        ice40_pll(12e6, 15e6)
    with pytest.raises(ValueError, match=r"^family must be 'ice40' or 'ecp5', not 'gowin'$"):
        pll_for("gowin", 12e6, 40e6)
