# amaranth: UnusedElaboratable=no
import pytest
from amaranth.hdl import unsigned
from amaranth.sim import Simulator

from wrpn_rtl.hardware.stream_fifo import StreamFIFO

from wrpn_rtl.sim.amaranth_stream import stream_get, stream_put


@pytest.mark.parametrize("depth", [1, 2, 5])
@pytest.mark.parametrize("stall_in, stall_out", [(0.0, 0.0), (0.5, 0.0), (0.0, 0.6), (0.4, 0.4)])
def test_fifo_keeps_order_under_stalls(depth, stall_in, stall_out, rng):
    dut = StreamFIFO(unsigned(8), depth=depth)
    ref_words = [int(v) for v in rng.integers(0, 256, 60)]
    rtl_words = []

    async def producer(ctx):
        for word in ref_words:
            await stream_put(ctx, dut.input, word, rng=rng, stall=stall_in)

    async def consumer(ctx):
        for _ in ref_words:
            rtl_words.append(int(await stream_get(ctx, dut.output, rng=rng, stall=stall_out)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run_until(2000e-8)
    assert rtl_words == ref_words


def test_fifo_full_throughput_and_full_flag():
    dut = StreamFIFO(unsigned(4), depth=3)
    observed = []

    async def bench(ctx):
        ctx.set(dut.output.ready, 0)
        ctx.set(dut.input.valid, 1)
        for word in range(5):
            ctx.set(dut.input.payload, word)
            _, _, ready = await ctx.tick().sample(dut.input.ready)
            observed.append(ready)
        # full after three words: ready low; now drain and fill at the same time
        assert observed == [1, 1, 1, 0, 0]
        ctx.set(dut.output.ready, 1)
        ctx.set(dut.input.payload, 3)
        _, _, valid, payload = await ctx.tick().sample(dut.output.valid, dut.output.payload)
        assert (valid, payload) == (1, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_fifo_depth_errors():
    with pytest.raises(ValueError, match=r"^depth must be a positive integer, not 0$"):
        StreamFIFO(unsigned(4), depth=0)
    with pytest.raises(TypeError, match=r"^depth must be a positive integer, not 'x'$"):
        StreamFIFO(unsigned(4), depth="x")
