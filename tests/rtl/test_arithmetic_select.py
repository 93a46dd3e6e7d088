# amaranth: UnusedElaboratable=no
"""``arithmetic.select``: values[index] for every index, at sizes whose multiplexer chain
would nest too deep for Amaranth's simulator."""
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from wrpn_rtl.hardware.arithmetic import less_than, select


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


def _every(shape):
    return (range(-(1 << (shape.width - 1)), 1 << (shape.width - 1)) if shape.signed
            else range(1 << shape.width))


@pytest.mark.parametrize("a_shape, b_shape", [
    (signed(4), signed(5)), (unsigned(3), signed(4)), (signed(3), unsigned(3)),
    (unsigned(3), unsigned(2)), (signed(1), unsigned(1)), (unsigned(1), unsigned(4)),
    (signed(6), signed(2))])
def test_less_than_in_gates_agrees_with_integers(a_shape, b_shape):
    """``less_than`` (and with ``or_equal``) on every pair of values of mixed signedness and
    widths."""
    a, b, below, at_most = Signal(a_shape), Signal(b_shape), Signal(), Signal()
    m = Module()
    m.d.comb += [below.eq(less_than(a, b)), at_most.eq(less_than(a, b, or_equal=True))]
    sim = Simulator(m)
    wrong = []

    async def bench(ctx):
        for x in _every(a_shape):
            for y in _every(b_shape):
                ctx.set(a, x)
                ctx.set(b, y)
                if (ctx.get(below), ctx.get(at_most)) != (x < y, x <= y):
                    wrong.append((x, y))
    sim.add_testbench(bench)
    sim.run()
    assert wrong == []
