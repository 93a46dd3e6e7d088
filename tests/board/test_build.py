"""A bitstream for a board, from the pip-installed YoWASP tools: a small network on the
iCEBreaker, its PLL clock at or below the Fmax nextpnr measured, the packed file checked."""
import json

import numpy as np
import pytest

from wrpn_rtl.board.build import build_board
from wrpn_rtl.board.top import board_named

from .test_top import small_accelerator

pytestmark = pytest.mark.slow

#: The first bytes of every iCE40 bitstream ``icepack`` writes (comment start, 0x7EAA997E
#: preamble follows the comment).
ICE40_PREAMBLE = bytes([0x7E, 0xAA, 0x99, 0x7E])


def test_a_small_network_becomes_an_icebreaker_bitstream(rng, tmp_path):
    accelerator = small_accelerator(rng)
    summary = build_board(accelerator, board_named("icebreaker"), tmp_path,
                          selftest_images=rng.integers(0, 16, (2, 16)))
    bitstream = tmp_path / "wrpn_board.bin"
    assert summary["bitstream"] == str(bitstream)
    data = bitstream.read_bytes()
    assert ICE40_PREAMBLE in data[:64] and len(data) > 100_000   # a whole UP5K image
    assert summary["fmax_mhz"] >= summary["clock_mhz"] > 12
    assert summary["passes"][-1]["fmax_mhz"] == summary["fmax_mhz"]
    assert summary["pll"]["primitive"] == "SB_PLL40_PAD"
    used = summary["utilization"]
    assert used["ICESTORM_PLL"]["used"] == 1 and 0 < used["ICESTORM_LC"]["used"] < 5280
    assert summary["images_per_second"] == round(summary["clock_mhz"] * 1e6
                                                 / accelerator.cycles_per_image)
    json.dumps(summary)                                             # a plain record
