# amaranth: UnusedElaboratable=no
"""cocotb benches of the exported width converter on Icarus and Verilator.

The first word is all zeros and nothing stalls: a converter whose output multiplexer came from
an Array index gave an undefined first word on Icarus (an ``always @*`` block that runs before
the registers' initial values and never again while its inputs keep them)."""
import pytest

from wrpn_rtl.hardware.width_converter import WidthConverter
from wrpn_rtl.compiler.export import write_verilog
from wrpn_rtl.sim.runner import run_stream_bench


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("in_lanes, out_lanes, bits", [(2, 1, 1), (3, 1, 2), (4, 2, 1),
                                                       (2, 3, 2), (1, 4, 3)])
def test_exported_converter_regroups_lanes(in_lanes, out_lanes, bits, simulator, tmp_path,
                                           rng):
    dut = WidthConverter(in_lanes=in_lanes, out_lanes=out_lanes, bits=bits)
    verilog = write_verilog(dut, tmp_path / "convert.v", name="convert")
    words = rng.integers(0, 1 << bits, (12, in_lanes))
    words[0] = 0
    expected = words.reshape(-1, out_lanes).tolist()
    result = run_stream_bench(verilog, toplevel="convert", inputs=words, expected=expected,
                              in_width=bits, out_lanes=out_lanes, out_width=bits,
                              simulator=simulator, build_dir=tmp_path / "bench")
    assert result.outputs == expected
