"""Stream width conversion between foldings: regroup lanes without changing their order.

A stream of codes folded ``in_lanes`` per word becomes the same sequence folded ``out_lanes``
per word. :class:`WidthConverter` gathers ``G / in_lanes`` words into ``G = lcm(in_lanes,
out_lanes)`` lanes and scatters them as ``G / out_lanes`` words (either stage is skipped when
its factor is 1), so the stream length must be a multiple of ``G`` - true whenever both
foldings divide the vector or channel count being streamed. Both stages take or give one word
per cycle; ``valid`` is always a register.
"""
import math

from amaranth.hdl import Cat, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wrpn_rtl.compiler import cost
from wrpn_rtl.golden.checks import check_positive_int
from wrpn_rtl.golden.quant import ACTIVATION_BITS, check_bits
from wrpn_rtl.hardware.arithmetic import select
from wrpn_rtl.hardware.streams import stream_members

__all__ = ["WidthConverterGeometry", "WidthConverter"]


class _Gather(wiring.Component):
    """``factor`` words of ``lanes`` codes -> one word of ``factor * lanes`` codes.

    The ``factor`` word slots are the output word itself (word ``i`` of a group in slot
    ``i``): no copy is kept, so a full output word refuses input until it is taken (in the
    cycle it is taken, the next group's first word may come in)."""

    def __init__(self, lanes, factor, bits):
        self._lanes, self._factor, self._bits = lanes, factor, bits
        super().__init__({
            "input": In(stream.Signature(data.ArrayLayout(unsigned(bits), lanes))),
            "output": Out(stream.Signature(data.ArrayLayout(unsigned(bits), lanes * factor)))})

    def elaborate(self, platform):
        m = Module()
        width = self._lanes * self._bits
        # The slot the next word goes to, one-hot: a slot's enable is then one LUT4 of
        # registers (input valid, output valid and ready, its own bit), where a binary count
        # put a decoder before the enable of every slot's flip-flops.
        slot_next = Signal(self._factor, init=1, name="slot_next")
        slots = [Signal(width, name=f"slot{i}", reset_less=True) for i in range(self._factor)]
        m.d.comb += [Value.cast(self.output.payload).eq(Cat(*slots)),
                     self.input.ready.eq(~self.output.valid | self.output.ready)]
        with m.If(self.output.valid & self.output.ready):
            m.d.sync += self.output.valid.eq(0)
        with m.If(self.input.valid & self.input.ready):
            for index, slot in enumerate(slots):
                with m.If(slot_next[index]):
                    m.d.sync += slot.eq(Value.cast(self.input.payload))
            m.d.sync += slot_next.eq(slot_next.rotate_left(1))
            with m.If(slot_next[-1]):
                m.d.sync += self.output.valid.eq(1)
        return m


class _Scatter(wiring.Component):
    """One word of ``factor * lanes`` codes -> ``factor`` words of ``lanes`` codes."""

    def __init__(self, lanes, factor, bits):
        self._lanes, self._factor, self._bits = lanes, factor, bits
        super().__init__({
            "input": In(stream.Signature(data.ArrayLayout(unsigned(bits), lanes * factor))),
            "output": Out(stream.Signature(data.ArrayLayout(unsigned(bits), lanes)))})

    def elaborate(self, platform):
        m = Module()
        width = self._lanes * self._bits
        hold = Signal(width * self._factor, name="hold", reset_less=True)
        index = Signal(range(self._factor), name="index")
        last = index == self._factor - 1
        selected = select(index, [hold[i * width:(i + 1) * width] for i in range(self._factor)])
        m.d.comb += [Value.cast(self.output.payload).eq(selected),
                     self.input.ready.eq(~self.output.valid | (self.output.ready & last))]
        with m.If(self.output.valid & self.output.ready):
            m.d.sync += index.eq(Mux(last, 0, index + 1))
            with m.If(last):
                m.d.sync += self.output.valid.eq(0)
        with m.If(self.input.valid & self.input.ready):
            m.d.sync += [hold.eq(Value.cast(self.input.payload)), index.eq(0),
                         self.output.valid.eq(1)]
        return m


class WidthConverterGeometry:
    """A width converter's parameters, without building hardware: its estimate (parameters:
    see :class:`WidthConverter`)."""

    def __init__(self, *, in_lanes, out_lanes, bits):
        self._in = check_positive_int("in_lanes", in_lanes)
        self._out = check_positive_int("out_lanes", out_lanes)
        self._bits = check_bits("bits", bits, ACTIVATION_BITS)
        self._group = math.lcm(self._in, self._out)

    @property
    def input_layout(self):
        return data.ArrayLayout(unsigned(self._bits), self._in)

    @property
    def output_layout(self):
        return data.ArrayLayout(unsigned(self._bits), self._out)

    @property
    def group(self):
        """``lcm(in_lanes, out_lanes)``: the stream length must be a multiple of it."""
        return self._group

    def estimate(self):
        """``logic_cells`` / ``flip_flops`` / ``memory_bits``: the gather's word slots (its output
        word), the scatter's held word and its lane multiplexer."""
        return cost.width_converter(in_lanes=self._in, out_lanes=self._out,
                                    group_lanes=self._group, bits=self._bits)


class WidthConverter(WidthConverterGeometry, wiring.Component):
    """Refold a stream of ``bits``-bit codes from ``in_lanes`` to ``out_lanes`` per word.

    Parameters
    ----------
    in_lanes, out_lanes : int
        Codes per word on each side (>= 1).
    bits : int
        Code width, 1..16.

    Members
    -------
    input : In(stream.Signature(ArrayLayout(unsigned(bits), in_lanes)))
    output : Out(stream.Signature(ArrayLayout(unsigned(bits), out_lanes)))
    """

    def __init__(self, *, in_lanes, out_lanes, bits):
        WidthConverterGeometry.__init__(self, in_lanes=in_lanes, out_lanes=out_lanes, bits=bits)
        wiring.Component.__init__(self, stream_members(self))

    def elaborate(self, platform):
        m = Module()
        if self._in == self._out:          # nothing to refold: plain wires
            wiring.connect(m, wiring.flipped(self.input), wiring.flipped(self.output))
            return m
        source = wiring.flipped(self.input)
        if self._group > self._in:
            m.submodules.gather = gather = _Gather(self._in, self._group // self._in, self._bits)
            wiring.connect(m, source, gather.input)
            source = gather.output
        if self._group > self._out:
            m.submodules.scatter = scatter = _Scatter(self._out, self._group // self._out,
                                                      self._bits)
            wiring.connect(m, source, scatter.input)
            source = scatter.output
        wiring.connect(m, source, wiring.flipped(self.output))
        return m
