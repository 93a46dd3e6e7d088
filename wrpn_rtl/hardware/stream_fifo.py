"""A shallow stream FIFO whose control is one LUT deep.

Amaranth's ``SyncFIFOBuffered`` decides ``r_rdy`` through a level counter and several logic
levels, which became the critical path of the MVU. This FIFO keeps its fill level as a
thermometer code (bit ``i`` set: more than ``i`` entries) and its pointers one-hot, so
``output.valid`` and ``input.ready`` are register bits and every control update is a single
LUT; the output payload is an AND-OR of the entries selected by the one-hot read pointer.
Meant for small depths (up to a few dozen entries, in flip-flops).
"""
import numbers

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StreamFIFO"]


class StreamFIFO(wiring.Component):
    """First-in first-out queue between two streams.

    Parameters
    ----------
    shape : ShapeLike
        Payload shape (a layout is fine).
    depth : int
        Entries, >= 1. A word written in cycle ``t`` is valid at the output in ``t + 1``.

    Members
    -------
    input : In(stream.Signature(shape))
        ``ready`` is a register bit: high while not full.
    output : Out(stream.Signature(shape))
        ``valid`` is a register bit: high while not empty.

    Raises
    ------
    TypeError, ValueError
        ``depth`` is not a positive integer.
    """

    def __init__(self, shape, *, depth):
        if isinstance(depth, bool) or not isinstance(depth, numbers.Integral):
            raise TypeError(f"depth must be a positive integer, not {depth!r}")
        if depth < 1:
            raise ValueError(f"depth must be a positive integer, not {depth!r}")
        self._depth = int(depth)
        super().__init__({"input": In(stream.Signature(shape)),
                          "output": Out(stream.Signature(shape))})

    depth = property(lambda self: self._depth)

    def elaborate(self, platform):
        m = Module()
        depth = self._depth
        width = len(Value.cast(self.input.payload))
        filled = Signal(depth, name="filled")            # thermometer fill level
        write_at = Signal(depth, init=1, name="write_at")  # one-hot pointers
        read_at = Signal(depth, init=1, name="read_at")
        entries = [Signal(width, name=f"entry{i}", reset_less=True) for i in range(depth)]

        m.d.comb += [self.input.ready.eq(~filled[-1]), self.output.valid.eq(filled[0])]
        push = self.input.valid & self.input.ready
        pop = self.output.valid & self.output.ready
        for index, entry in enumerate(entries):
            with m.If(push & write_at[index]):
                m.d.sync += entry.eq(Value.cast(self.input.payload))
        rotate = (lambda one_hot: Cat(one_hot[-1], one_hot[:-1])) if depth > 1 else (lambda x: x)
        with m.If(push):
            m.d.sync += write_at.eq(rotate(write_at))
        with m.If(pop):
            m.d.sync += read_at.eq(rotate(read_at))
        with m.If(push & ~pop):
            m.d.sync += filled.eq(Cat(1, filled[:-1]) if depth > 1 else 1)
        with m.Elif(pop & ~push):
            m.d.sync += filled.eq(filled[1:] if depth > 1 else 0)
        selected = 0
        for index, entry in enumerate(entries):
            selected = selected | (entry & read_at[index].replicate(width))
        m.d.comb += self.output.payload.eq(selected)
        return m
