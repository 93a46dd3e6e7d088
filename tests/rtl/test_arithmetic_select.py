# amaranth: UnusedElaboratable=no
"""``arithmetic.select``: values[index] for every index, at sizes whose multiplexer chain
would nest too deep for Amaranth's simulator."""
import pytest
from amaranth.hdl import Module, Signal, unsigned
from amaranth.sim import Simulator

from wrpn_rtl.hardware.arithmetic import select


@pytest.mark.parametrize("count", [1, 2, 3, 5, 16, 17, 64, 100, 128])
def test_select_gives_every_value(count):
    values = [(7 * i + 3) % 251 for i in range(count)]
    index = Signal(range(max(2, count)))
    out = Signal(unsigned(8))
    m = Module()
    m.d.comb += out.eq(select(index, values))
    sim = Simulator(m)
    seen = []

    async def bench(ctx):
        for i in range(count):
            ctx.set(index, i)
            seen.append(ctx.get(out))

    sim.add_testbench(bench)
    sim.run()
    assert seen == values
