# amaranth: UnusedElaboratable=no
import pytest

from wrpn_rtl.hardware.width_converter import WidthConverter

from wrpn_rtl.sim.amaranth_stream import run_stream


@pytest.mark.parametrize("in_lanes, out_lanes", [(1, 9), (9, 1), (4, 6), (6, 4), (2, 8),
                                                 (8, 2)])
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_width_converter_keeps_the_code_sequence(in_lanes, out_lanes, stall, rng):
    dut = WidthConverter(in_lanes=in_lanes, out_lanes=out_lanes, bits=3)
    codes = rng.integers(0, 8, dut.group * 12)
    words_out = codes.reshape(-1, out_lanes).tolist()
    rtl, cycles = run_stream(dut, codes.reshape(-1, in_lanes).tolist(), len(words_out), rng=rng,
                             stall_in=stall, stall_out=stall, width=out_lanes)
    assert rtl == words_out
    if stall == 0.0 and (in_lanes % out_lanes == 0 or out_lanes % in_lanes == 0):
        # one word per cycle on the busier side
        assert cycles <= max(len(codes) // in_lanes, len(words_out)) + 3


def test_width_converter_errors():
    with pytest.raises(ValueError, match=r"^in_lanes must be a positive integer, not 0$"):
        WidthConverter(in_lanes=0, out_lanes=2, bits=2)
    with pytest.raises(TypeError, match=r"^out_lanes must be a positive integer, not 1\.5$"):
        WidthConverter(in_lanes=1, out_lanes=1.5, bits=2)


def test_equal_widths_are_plain_wires():
    from amaranth.sim import Simulator
    dut = WidthConverter(in_lanes=3, out_lanes=3, bits=2)

    async def bench(ctx):
        ctx.set(dut.input.payload, [1, 2, 3])
        ctx.set(dut.input.valid, 1)
        ctx.set(dut.output.ready, 1)
        assert [ctx.get(dut.output.payload[i]) for i in range(3)] == [1, 2, 3]
        assert ctx.get(dut.output.valid) == 1 and ctx.get(dut.input.ready) == 1

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
