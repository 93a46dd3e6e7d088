# amaranth: UnusedElaboratable=no
"""The serial synthesis harness: every pin reaches the core, and every core signal reaches its
pin, through two registers (so a path of the core never includes a pin's register), and the
payloads still cross whole."""
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from wrpn_rtl.synth.harness import SerialHarness


class _Passthrough(wiring.Component):
    """One 3-bit register between the streams, its ``input.ready`` a pin of the test."""

    input: In(stream.Signature(unsigned(3)))
    output: Out(stream.Signature(unsigned(3)))

    def __init__(self):
        super().__init__()
        self.accepting = Signal(init=1)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.input.ready.eq(self.accepting & (~self.output.valid | self.output.ready))
        with m.If(self.output.valid & self.output.ready):
            m.d.sync += self.output.valid.eq(0)
        with m.If(self.input.valid & self.input.ready):
            m.d.sync += [self.output.payload.eq(self.input.payload), self.output.valid.eq(1)]
        return m


def test_pins_cross_two_registers_each_way_and_payloads_cross_whole():
    core = _Passthrough()
    harness = SerialHarness(core)
    trace = {}

    async def bench(ctx):
        await ctx.tick().repeat(3)
        ctx.set(core.accepting, 0)
        for cycle in range(4):
            trace.setdefault("accepted", []).append(ctx.get(harness.accepted))
            await ctx.tick()
        ctx.set(core.accepting, 1)
        for bit in (1, 0, 1):                     # shift 0b101 in, most significant first
            ctx.set(harness.serial_in, bit)
            ctx.set(harness.shift_in, 1)
            await ctx.tick()
        ctx.set(harness.shift_in, 0)
        await ctx.tick().repeat(2)
        ctx.set(harness.offer, 1)
        for cycle in range(3):
            trace.setdefault("offer_at_core", []).append(ctx.get(core.input.valid))
            await ctx.tick()
        ctx.set(harness.offer, 0)
        await ctx.tick().repeat(3)
        trace["produced"] = ctx.get(harness.produced)
        ctx.set(harness.take, 1)                  # 2 cycles in, the transfer, 2 out
        await ctx.tick().repeat(5)
        ctx.set(harness.take, 0)
        out = [ctx.get(harness.serial_out)]
        for _ in range(2):
            ctx.set(harness.shift_out, 1)         # one shift
            await ctx.tick()
            ctx.set(harness.shift_out, 0)
            await ctx.tick().repeat(5)            # 2 cycles in, the shift, 2 cycles out
            out.append(ctx.get(harness.serial_out))
        trace["out"] = out

    sim = Simulator(harness)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert trace["offer_at_core"] == [0, 0, 1]    # the offer reaches the core 2 cycles later
    assert trace["produced"] == 1
    assert trace["accepted"] == [1, 1, 0, 0]      # the core's ready reaches its pin 2 later
    assert trace["out"] == [1, 0, 1]              # captured 0b101, shifted out low bit first
