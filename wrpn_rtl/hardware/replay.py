"""Double-buffered vector replay: each input vector comes out ``times`` times, back to back.

A dense layer folded into ``NF > 1`` neuron folds reads its input vector ``NF`` times. An MVU
that buffers the vector itself refuses input while it replays folds 1..NF-1, which stalls the
layer before it for ``(NF - 1) * SF`` cycles per image. :class:`VectorReplay` holds two vectors
instead: while one is replayed, the next one is written, so the dense layer takes
``NF * SF`` cycles per image *in parallel* with the layer feeding it.

The memory holds ``2 * words`` words (block RAM from 16, or LUT RAM where the device has it,
:func:`~wrpn_rtl.hardware.memories.memory_style`, or where the compiler chose: a wide, shallow
buffer costs a flip-flop and a multiplexer per bit in logic, or a few block RAMs a device may
have spare);
its synchronous read is the output (:func:`~wrpn_rtl.hardware.streams.held_read`: the read data
holds while the consumer stalls, so no queue); ``valid`` and the input's ``ready`` are
registers, and any stall pattern is safe.

Behind a window that emits narrower words than the unit reads, the replay gathers them itself
(``slices > 1``): each input word is written straight into its slice of the buffer word (the
memory's write port has one enable per slice), so the gathered word never sits in flip-flops
(on iCE40 a width converter's gather register was a logic cell per bit, none of them packed
with a LUT).
"""
from amaranth.hdl import Cat, Module, Mux, Shape, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory

from wrpn_rtl.compiler import cost
from wrpn_rtl.golden.checks import check_positive_int
from wrpn_rtl.hardware.memories import memory_attrs, memory_style
from wrpn_rtl.hardware.streams import held_read, stream_members

__all__ = ["VectorReplayGeometry", "VectorReplay", "replay_for", "check_buffer_style"]

#: ``style`` values: the default rule, or a place the compiler chose.
BUFFER_STYLES = (None, "logic", "block")


def check_buffer_style(name, style):
    """``style`` if it is a :data:`BUFFER_STYLES` value, else raise naming ``name``."""
    if style not in BUFFER_STYLES:
        raise ValueError(f"{name} must be None, 'logic' or 'block', not {style!r}")
    return style


def replay_for(mvu, *, style=None, slices=1):
    """The :class:`VectorReplayGeometry` of the replay that feeds ``mvu`` (a
    :class:`~wrpn_rtl.hardware.mvu.MatrixVectorGeometry` with ``replayed=True``): each
    ``SF``-word vector ``NF`` times, its buffer in ``style`` (LUT RAM where the unit's own
    memories may use it: ``mvu.lut_ram``), taking each of the unit's words as ``slices``
    narrower words; None when the unit has a single neuron fold. Build it with
    :meth:`VectorReplayGeometry.build`."""
    if mvu.neuron_fold == 1:
        return None
    return VectorReplayGeometry(words=mvu.synapse_fold, times=mvu.neuron_fold,
                                shape=mvu.input_layout, style=style, lut_ram=mvu.lut_ram,
                                slices=slices)



class VectorReplayGeometry:
    """A vector replay's parameters, without building hardware: cycles and estimate.

    Parameters
    ----------
    words : int
        Words per vector (>= 1).
    times : int
        Copies of each vector out (>= 1).
    shape : Shape or Layout
        One word (e.g. ``ArrayLayout(unsigned(bits), simd)``).
    style : None, "logic" or "block"
        Where the ``2 * words``-word buffer goes; None: block RAM from 16 words, or LUT RAM
        (``lut_ram``) up to :data:`~wrpn_rtl.hardware.memories.LUT_RAM_MAX_DEPTH` words
        (:func:`~wrpn_rtl.hardware.memories.memory_style`).
    lut_ram : bool
        The device has LUT RAM (ECP5). Default False.
    slices : int
        Input words per output word (>= 1; default 1). With more than one, ``shape`` must be
        an ``ArrayLayout`` whose length ``slices`` divides: input word ``i`` of each group
        holds elements ``[i * n, (i + 1) * n)`` of the output word (``n = length / slices``),
        so a vector comes in as ``words * slices`` words.

    Members
    -------
    input_layout : Layout
        ``shape``, or ``ArrayLayout(element, length / slices)`` with ``slices > 1``.
    output_layout : Layout
        ``shape``.

    Raises
    ------
    ValueError
        ``words``, ``times`` or ``slices`` not a positive integer, ``slices`` not dividing an
        ``ArrayLayout`` ``shape`` (or ``shape`` no ``ArrayLayout`` with ``slices > 1``), or
        another ``style``.
    """

    def __init__(self, *, words, times, shape, style=None, lut_ram=False, slices=1):
        self._lut_ram = bool(lut_ram)
        self._words = check_positive_int("words", words)
        self._times = check_positive_int("times", times)
        self._slices = check_positive_int("slices", slices)
        self._shape, self._style = shape, check_buffer_style("replay", style)
        if self._slices > 1:
            if not isinstance(shape, data.ArrayLayout) or shape.length % self._slices:
                raise ValueError(f"slices must divide the elements of an ArrayLayout word "
                                 f"(shape {shape!r}), not {slices!r}")
            self._input_layout = data.ArrayLayout(shape.elem_shape,
                                                  shape.length // self._slices)
        else:
            self._input_layout = shape

    words = property(lambda self: self._words)
    times = property(lambda self: self._times)
    slices = property(lambda self: self._slices)
    shape = property(lambda self: self._shape)
    input_layout = property(lambda self: self._input_layout)
    output_layout = property(lambda self: self._shape)
    style = property(lambda self: self._style)
    lut_ram = property(lambda self: self._lut_ram)

    def memory_style(self):
        """Where the buffer goes: "block", "distributed" or "logic"."""
        return self._style or memory_style(2 * self._words, writable=True,
                                           lut_ram=self._lut_ram)

    @property
    def cycles_per_frame(self):
        """Cycles per vector with no stall (the reading side): ``words * times``."""
        return self._words * self._times

    def estimate(self):
        """:func:`wrpn_rtl.compiler.cost.vector_replay`: the two-vector memory, the output
        queue, pointers and flags."""
        return cost.vector_replay(word_bits=Shape.cast(self._shape).width,
                                  vector_words=self._words, style=self.memory_style(),
                                  slices=self._slices)

    def build(self):
        """The :class:`VectorReplay` of these parameters."""
        return VectorReplay(words=self._words, times=self._times, shape=self._shape,
                            style=self._style, lut_ram=self._lut_ram, slices=self._slices)


class VectorReplay(VectorReplayGeometry, wiring.Component):
    """Take vectors of ``words`` words; give each one ``times`` times over (parameters: see
    :class:`VectorReplayGeometry`).

    Members
    -------
    input : In(stream.Signature(input_layout))
        ``words * slices`` words per vector.
    output : Out(stream.Signature(shape))
        ``times * words`` words per vector: the vector, ``times`` times in a row.
    """

    def __init__(self, *, words, times, shape, style=None, lut_ram=False, slices=1):
        VectorReplayGeometry.__init__(self, words=words, times=times, shape=shape, style=style,
                                      lut_ram=lut_ram, slices=slices)
        wiring.Component.__init__(self, stream_members(self))

    def elaborate(self, platform):
        m = Module()
        words, times = self._words, self._times
        depth = 2 * words
        # The read port works on a full half and the write port on the other one; a read of
        # the half being written (the port reads while no word is wanted) is never output.
        m.submodules.buffer = buffer = Memory(
            shape=self._shape, depth=depth, init=[],
            attrs=memory_attrs(depth, writable=True, collision_reads_unused=True,
                               style=self.memory_style()))
        slices = self._slices
        write = (buffer.write_port(granularity=self._shape.length // slices) if slices > 1
                 else buffer.write_port())
        read = buffer.read_port()

        # Writing: a half is "full" from its last word until its last replay has been read.
        # `ready` (the half being written is not full) is a register, set from the next
        # cycle's `full` and `write_half`, so it is no gate deep for the layer feeding it.
        # The counters' "last" flags are registers, set as the counters move, so no compare
        # lies between a handshake and the flags it updates.
        full = Signal(2, name="full")
        write_half = Signal(name="write_half")
        write_count = Signal(range(words), name="write_count")
        write_last = Signal(init=int(words == 1), name="write_last")    # write_count == W - 1
        ready = Signal(name="ready", init=1)
        take = self.input.valid & ready
        if slices == 1:
            word_done = take
            data_in, enable = self.input.payload, take
        else:
            # the slice the next input word goes to, one-hot (each slice's write enable is
            # then one gate of registers); the word is done with its last slice
            slice_next = Signal(slices, init=1, name="slice_next")
            word_done = take & slice_next[-1]
            data_in = Cat(*[self.input.payload.as_value()] * slices)
            enable = Mux(take, slice_next, 0)
            with m.If(take):
                m.d.sync += slice_next.eq(slice_next.rotate_left(1))
        m.d.comb += [self.input.ready.eq(ready),
                     write.addr.eq(Mux(write_half, words, 0) + write_count),
                     write.data.eq(data_in), write.en.eq(enable)]
        last_word = word_done & write_last
        set_full, clear_full = Signal(2), Signal(2)
        with m.If(word_done):
            m.d.sync += write_last.eq(_next_is_last(write_count, write_last, words))
            with m.If(write_last):
                m.d.sync += [write_count.eq(0), write_half.eq(~write_half)]
                m.d.comb += set_full.eq(Mux(write_half, 0b10, 0b01))
            with m.Else():
                m.d.sync += write_count.eq(write_count + 1)

        # Reading: `times` passes over the half, then release it.
        read_half = Signal(name="read_half")
        read_count = Signal(range(words), name="read_count")
        read_last = Signal(init=int(words == 1), name="read_last")       # read_count == W - 1
        read_pass = Signal(range(times), name="read_pass")
        pass_last = Signal(init=int(times == 1), name="pass_last")       # read_pass == T - 1
        issue = held_read(m, self, read, full.bit_select(read_half, 1), name="out")
        m.d.comb += read.addr.eq(Mux(read_half, words, 0) + read_count)
        with m.If(issue):
            m.d.sync += read_last.eq(_next_is_last(read_count, read_last, words))
            with m.If(read_last):
                m.d.sync += [read_count.eq(0),
                             pass_last.eq(_next_is_last(read_pass, pass_last, times))]
                with m.If(pass_last):
                    m.d.sync += [read_pass.eq(0), read_half.eq(~read_half)]
                    m.d.comb += clear_full.eq(Mux(read_half, 0b10, 0b01))
                with m.Else():
                    m.d.sync += read_pass.eq(read_pass + 1)
            with m.Else():
                m.d.sync += read_count.eq(read_count + 1)
        full_next = Signal(2, name="full_next")
        m.d.comb += full_next.eq((full | set_full) & ~clear_full)
        m.d.sync += [full.eq(full_next),
                     ready.eq(~full_next.bit_select(Mux(last_word, ~write_half, write_half), 1))]
        return m


def _next_is_last(count, last, total):
    """Whether a counter of ``total`` values (``count``, wrapping after ``total - 1``; ``last``:
    it is at ``total - 1``) is at its last value after one more step."""
    if total == 1:
        return 1
    return ~last & (count == total - 2)
