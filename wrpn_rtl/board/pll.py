"""PLL settings: the fastest clock a board's PLL makes from its oscillator without passing a
limit (the design's measured Fmax). Pure Python; the board top instantiates the primitive
with these parameters.

iCE40 ``SB_PLL40_*`` (simple feedback), as Lattice's sysCLOCK guide and ``icepll`` state it:
``f_pfd = f_in / (DIVR + 1)`` in 10..133 MHz, ``f_vco = f_pfd * (DIVF + 1)`` in 533..1066 MHz,
``f_out = f_vco / 2**DIVQ`` in 16..275 MHz with DIVR 0..15, DIVF 0..127, DIVQ 1..6; the loop
filter range follows ``f_pfd``.

ECP5 ``EHXPLLL`` (feedback from CLKOP), as ``ecppll`` states it: ``f_pfd = f_in / CLKI_DIV``
in 3.125..400 MHz, ``f_out = f_pfd * CLKFB_DIV`` in 3.125..400 MHz, ``f_vco = f_out *
CLKOP_DIV`` in 400..800 MHz, each divider 1..128.
"""
from dataclasses import dataclass

__all__ = ["PLLSettings", "ice40_pll", "ecp5_pll", "pll_for"]


@dataclass(frozen=True)
class PLLSettings:
    """A PLL's primitive, its parameters and the clock it makes (Hz)."""

    primitive: str
    parameters: dict
    frequency_hz: float


def _no_setting(family, f_in, f_max, lowest):
    return ValueError(f"the {family} PLL makes no clock at or below {f_max / 1e6:.3f} MHz "
                      f"from {f_in / 1e6:g} MHz (its lowest output is {lowest} MHz)")


def ice40_pll(f_in_hz, f_max_hz):
    """The iCE40 PLL setting whose output is the highest at or below ``f_max_hz``.

    Raises
    ------
    ValueError
        ``f_max_hz`` below what the PLL can make (16 MHz).
    """
    best = None
    for divr in range(16):
        f_pfd = f_in_hz / (divr + 1)
        if not 10e6 <= f_pfd <= 133e6:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533e6 <= f_vco <= 1066e6:
                continue
            for divq in range(1, 7):
                f_out = f_vco / (1 << divq)
                if 16e6 <= f_out <= min(f_max_hz, 275e6) and (best is None or f_out > best[0]):
                    best = (f_out, divr, divf, divq, f_pfd)
    if best is None:
        raise _no_setting("iCE40", f_in_hz, f_max_hz, 16)
    f_out, divr, divf, divq, f_pfd = best
    filter_range = 1 + sum(f_pfd >= limit for limit in (17e6, 26e6, 44e6, 66e6, 101e6))
    return PLLSettings("SB_PLL40_PAD", {"FEEDBACK_PATH": "SIMPLE", "DIVR": divr, "DIVF": divf,
                                        "DIVQ": divq, "FILTER_RANGE": filter_range}, f_out)


def ecp5_pll(f_in_hz, f_max_hz):
    """The ECP5 PLL setting whose output is the highest at or below ``f_max_hz``.

    Raises
    ------
    ValueError
        ``f_max_hz`` below what the PLL can make (3.125 MHz).
    """
    best = None
    for clki_div in range(1, 129):
        f_pfd = f_in_hz / clki_div
        if not 3.125e6 <= f_pfd <= 400e6:
            continue
        for clkfb_div in range(1, 129):
            f_out = f_pfd * clkfb_div
            if not 3.125e6 <= f_out <= min(f_max_hz, 400e6):
                continue
            # the VCO nearest the middle of its range
            dividers = [d for d in range(1, 129) if 400e6 <= f_out * d <= 800e6]
            clkop_div = min(dividers, key=lambda d: abs(f_out * d - 600e6), default=None)
            if clkop_div is not None and (best is None or f_out > best[0]):
                best = (f_out, clki_div, clkfb_div, clkop_div)
    if best is None:
        raise _no_setting("ECP5", f_in_hz, f_max_hz, 3.125)
    f_out, clki_div, clkfb_div, clkop_div = best
    return PLLSettings("EHXPLLL", {"CLKI_DIV": clki_div, "CLKFB_DIV": clkfb_div,
                                   "CLKOP_DIV": clkop_div, "CLKOP_CPHASE": clkop_div - 1,
                                   "CLKOP_FPHASE": 0, "FEEDBK_PATH": "CLKOP",
                                   "CLKOP_ENABLE": "ENABLED"}, f_out)


def pll_for(family, f_in_hz, f_max_hz):
    """:func:`ice40_pll` or :func:`ecp5_pll` by device family ("ice40", "ecp5")."""
    if family == "ice40":
        return ice40_pll(f_in_hz, f_max_hz)
    if family == "ecp5":
        return ecp5_pll(f_in_hz, f_max_hz)
    raise ValueError(f"family must be 'ice40' or 'ecp5', not {family!r}")
