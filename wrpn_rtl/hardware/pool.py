"""Streaming max-pool on activation codes: a sliding window and a lane-wise max reducer.

:class:`MaxPoolReducer` turns the window stream (``K_h * K_w * CG`` words per output pixel, in
the window order of :mod:`wrpn_rtl.golden.ops`) into ``CG`` words per output pixel, each the
lane-wise maximum of its channel group over the window. :class:`MaxPool2d` is the sliding
window followed by the reducer. Padding is code 0, which never exceeds a real code, as in the
golden ``max_pool2d``.
"""
from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from wrpn_rtl.compiler import cost
from wrpn_rtl.golden.checks import check_positive_int
from wrpn_rtl.golden.ops import check_window
from wrpn_rtl.golden.quant import ACTIVATION_BITS, check_bits
from wrpn_rtl.hardware.arithmetic import select
from wrpn_rtl.hardware.memories import memory_attrs, memory_style
from wrpn_rtl.hardware.streams import (FoldedMapWords, credit_slots, credited_queue,
                                       stream_members)
from wrpn_rtl.hardware.window import SlidingWindow, SlidingWindowGeometry, check_simd

__all__ = ["MaxPoolReducer", "MaxPool2dGeometry", "MaxPool2d", "BlockMaxPoolGeometry",
           "BlockMaxPool", "max_pool_geometry", "max_pool"]


class MaxPoolReducer(wiring.Component):
    """Lane-wise maximum over each window of a window stream.

    Parameters
    ----------
    window_size : int
        Kernel positions per window, ``K_h * K_w`` (>= 1).
    groups : int
        Channel groups per pixel, ``C / SIMD`` (>= 1).
    simd : int
        Codes per word.
    bits : int
        Code width, 1..16.

    Members
    -------
    input : In(stream.Signature(ArrayLayout(unsigned(bits), simd)))
        ``window_size * groups`` words per window, channel group fastest.
    output : Out(stream.Signature(ArrayLayout(unsigned(bits), simd)))
        ``groups`` words per window. ``valid`` is a register.
    """

    def __init__(self, *, window_size, groups, simd, bits):
        self._window_size = check_positive_int("window_size", window_size)
        self._groups = check_positive_int("groups", groups)
        self._simd = check_positive_int("simd", simd)
        self._bits = check_bits("bits", bits, ACTIVATION_BITS)
        word = data.ArrayLayout(unsigned(self._bits), simd)
        super().__init__({"input": In(stream.Signature(word)),
                          "output": Out(stream.Signature(word))})

    groups = property(lambda self: self._groups)
    simd = property(lambda self: self._simd)
    bits = property(lambda self: self._bits)

    def elaborate(self, platform):
        m = Module()
        simd, groups, size = self._simd, self._groups, self._window_size
        position = Signal(range(size), name="position")
        group = Signal(range(groups), name="group")
        running = [Signal(self.input.payload.shape(), name=f"max{i}", reset_less=True)
                   for i in range(groups)]
        last = position == size - 1
        m.d.comb += self.input.ready.eq(~last | ~self.output.valid | self.output.ready)
        take = self.input.valid & self.input.ready
        incoming = self.input.payload
        previous = self.input.payload.shape()(select(group, running))
        best = Signal(self.input.payload.shape(), name="best")
        for lane in range(simd):
            m.d.comb += best[lane].eq(Mux((position == 0) | (incoming[lane] > previous[lane]),
                                          incoming[lane], previous[lane]))
        with m.If(self.output.valid & self.output.ready):
            m.d.sync += self.output.valid.eq(0)
        with m.If(take):
            m.d.sync += group.eq(Mux(group == groups - 1, 0, group + 1))
            with m.If(group == groups - 1):
                m.d.sync += position.eq(Mux(last, 0, position + 1))
            with m.If(last):
                m.d.sync += [self.output.payload.eq(best), self.output.valid.eq(1)]
            with m.Else():
                for index in range(groups):
                    with m.If(group == index):
                        m.d.sync += running[index].eq(best)
        return m


class MaxPool2dGeometry(FoldedMapWords):
    """A window max-pool's parameters, without building hardware: its window
    (:class:`~wrpn_rtl.hardware.window.SlidingWindowGeometry`), output shape, cycles and
    estimate.

    Parameters
    ----------
    in_shape : (H, W, C)
    kernel : int or (K_h, K_w)
    stride : int or (S_h, S_w) or None
        Defaults to the kernel.
    padding : int
    simd : int
        Codes per word; must divide ``C``.
    bits : int
    lut_ram : bool
        The device has LUT RAM (ECP5): the window's line buffer goes there where it is
        shallow. Default False.
    """

    def __init__(self, *, in_shape, kernel, stride=None, padding=0, simd, bits, lut_ram=False):
        check_window(tuple(in_shape), kernel, kernel if stride is None else stride, padding)
        check_simd(simd, in_shape[2])
        self._bits = check_bits("bits", bits, ACTIVATION_BITS)
        self._window = SlidingWindowGeometry(in_shape=in_shape, kernel=kernel,
                                             stride=kernel if stride is None else stride,
                                             padding=padding, simd=simd, bits=bits,
                                             lut_ram=lut_ram)
        self._simd, self._groups = int(simd), in_shape[2] // simd

    window = property(lambda self: self._window)

    @property
    def out_shape(self):
        return self._window.out_hw + (self._window.in_shape[2],)

    @property
    def cycles_per_frame(self):
        return self._window.cycles_per_frame

    def estimate(self):
        """The window's estimate plus the reducer's (:func:`wrpn_rtl.compiler.cost.max_pool_reducer`:
        ``groups`` running maxima of ``simd`` codes)."""
        stored = self._groups * self._simd * self._bits
        return cost.add(self._window.estimate(), cost.max_pool_reducer(stored_bits=stored))


class MaxPool2d(MaxPool2dGeometry, wiring.Component):
    """Streaming max-pool: :class:`~wrpn_rtl.hardware.window.SlidingWindow` then
    :class:`MaxPoolReducer`. Parameters: see :class:`MaxPool2dGeometry`.

    Members
    -------
    input, output : stream of ``ArrayLayout(unsigned(bits), simd)`` words, folded maps.
    """

    def __init__(self, *, in_shape, kernel, stride=None, padding=0, simd, bits, lut_ram=False):
        MaxPool2dGeometry.__init__(self, in_shape=in_shape, kernel=kernel, stride=stride,
                                   padding=padding, simd=simd, bits=bits, lut_ram=lut_ram)
        wiring.Component.__init__(self, stream_members(self))

    def elaborate(self, platform):
        m = Module()
        geometry = self._window
        k_h, k_w = geometry.kernel
        m.submodules.window = window = SlidingWindow(
            in_shape=geometry.in_shape, kernel=geometry.kernel, stride=geometry.stride,
            padding=geometry.padding, simd=self._simd, bits=self._bits,
            lut_ram=geometry.lut_ram)
        m.submodules.reducer = reducer = MaxPoolReducer(
            window_size=k_h * k_w, groups=self._groups, simd=self._simd, bits=self._bits)
        wiring.connect(m, wiring.flipped(self.input), window.input)
        wiring.connect(m, window.output, reducer.input)
        wiring.connect(m, reducer.output, wiring.flipped(self.output))
        return m


class BlockMaxPoolGeometry(FoldedMapWords):
    """A block max-pool's parameters, without building hardware: output shape, cycles and
    estimate (parameters: see :class:`BlockMaxPool`)."""

    #: Cycles from taking the word that completes a block to its maximum at the output:
    #: the memory's read (stage B), the output register, the output queue.
    LATENCY = 3

    def __init__(self, *, in_shape, kernel, simd, bits, input_interval=1, lut_ram=False):
        kernel, _, _, out_hw = check_window(tuple(in_shape), kernel, kernel, 0)
        self._lut_ram = bool(lut_ram)
        check_simd(simd, in_shape[2])
        self._bits = check_bits("bits", bits, ACTIVATION_BITS)
        self._input_interval = check_positive_int("input_interval", input_interval)
        self._in_shape = tuple(int(v) for v in in_shape)
        self._kernel, self._out_hw, self._simd = kernel, out_hw, int(simd)
        self._groups = self._in_shape[2] // self._simd

    @property
    def out_shape(self):
        return self._out_hw + (self._in_shape[2],)

    input_interval = property(lambda self: self._input_interval)

    def memory_style(self):
        """Where the partial maxima go (:func:`~wrpn_rtl.hardware.memories.memory_style`)."""
        return memory_style(self._out_hw[1] * self._groups, writable=True,
                            lut_ram=self._lut_ram)

    @property
    def cycles_per_frame(self):
        """One input word per cycle: ``H * W * C / SIMD``."""
        return self._in_shape[0] * self._in_shape[1] * self._groups

    @property
    def queue_depth(self):
        """Output queue words: enough that its credit never throttles input arriving at most
        one word per ``input_interval`` cycles (:func:`~wrpn_rtl.hardware.streams.credit_slots`
        of :attr:`LATENCY`): 5 at one word per cycle, 1 behind an MVU that spends 8 or more
        cycles on each output word."""
        return credit_slots(self.LATENCY, interval=self._input_interval)

    def estimate(self):
        """:func:`wrpn_rtl.compiler.cost.block_max_pool`: counters, the lane-wise max (twice
        with one channel group, which forwards), three word registers, the partial-maximum
        memory and the output queue."""
        return cost.block_max_pool(word_bits=self._simd * self._bits,
                                   partial_words=self._out_hw[1] * self._groups,
                                   queue_depth=self.queue_depth, style=self.memory_style(),
                                   forwarding=self._groups == 1)


class BlockMaxPool(BlockMaxPoolGeometry, wiring.Component):
    """Max-pool whose stride equals its kernel and which has no padding, straight off the map
    stream: no window generator.

    Each input word ``(row, col, group)`` is max-ed into a partial maximum kept per output
    column and channel group (``W_out * C / SIMD`` words, one memory: block RAM from 16 words),
    and the word that completes a block is sent out. Rows and columns past the last whole block
    are read and dropped, as in the golden ``max_pool2d``. The memory is read one cycle and
    written the next; with one channel group, a word whose partial maximum was written in the
    cycle before takes it from a forwarding register instead of the memory (with more, the
    same partial maximum never comes in consecutive cycles). Outputs go through a
    :class:`~wrpn_rtl.hardware.stream_fifo.StreamFIFO` under a credit counter (:attr:`queue_depth`
    words), so ``valid`` never depends on ``ready``.

    Parameters
    ----------
    in_shape : (H, W, C)
    kernel : int or (K_h, K_w)
        Also the stride.
    simd : int
        Codes per word; must divide ``C``.
    bits : int
        Code width, 1..16.
    input_interval : int
        The fewest cycles per input word the producer sustains (1: a word per cycle; an MVU:
        its synapse fold). Sizes the output queue (:attr:`queue_depth`); faster input is
        still pooled correctly, only throttled by the queue's credit.
    lut_ram : bool
        The device has LUT RAM (ECP5): the partial maxima go there
        (:func:`~wrpn_rtl.hardware.memories.memory_style`). Default False.

    Members
    -------
    input, output : stream of ``ArrayLayout(unsigned(bits), simd)`` words, folded maps in HWC
        order: ``H * W * C / SIMD`` words in, ``H_out * W_out * C / SIMD`` out.
    """

    def __init__(self, *, in_shape, kernel, simd, bits, input_interval=1, lut_ram=False):
        BlockMaxPoolGeometry.__init__(self, in_shape=in_shape, kernel=kernel, simd=simd,
                                      bits=bits, input_interval=input_interval,
                                      lut_ram=lut_ram)
        wiring.Component.__init__(self, stream_members(self))

    def elaborate(self, platform):
        m = Module()
        height, width, _ = self._in_shape
        (k_h, k_w), (out_h, out_w) = self._kernel, self._out_hw
        groups, word = self._groups, self.input.payload.shape()
        depth = out_w * groups
        # A read of the address that stage B writes in the same cycle (one channel group
        # only) is replaced by the forwarding register (`forward` below), so the memory's
        # answer to it is never used.
        m.submodules.partial = partial = Memory(
            shape=word, depth=depth, init=[],
            attrs=memory_attrs(depth, writable=True, collision_reads_unused=True,
                               style=self.memory_style()))
        write, read = partial.write_port(), partial.read_port()

        # Position of the incoming word: row (and its band of K_h rows), column (and its block
        # of K_w columns), channel group; `base` = block * groups addresses the partial maxima.
        row, col = Signal(range(height), name="row"), Signal(range(width), name="col")
        row_in_band = Signal(range(k_h), name="row_in_band")
        band = Signal(range(out_h + 1), name="band")          # out_h: rows being dropped
        col_in_block = Signal(range(k_w), name="col_in_block")
        block = Signal(range(out_w + 1), name="block")        # out_w: columns being dropped
        group = Signal(range(groups), name="group")
        base = Signal(range(depth + groups), name="base")

        room = Signal(name="room")
        m.d.comb += self.input.ready.eq(room)
        take = self.input.valid & room
        address = base + group
        inside = (block < out_w) & (band < out_h)
        completes = (row_in_band == k_h - 1) & (col_in_block == k_w - 1)
        m.d.comb += read.addr.eq(address)
        with m.If(take):
            m.d.sync += group.eq(Mux(group == groups - 1, 0, group + 1))
            with m.If((group == groups - 1) & (col == width - 1)):      # end of a row
                m.d.sync += [col.eq(0), col_in_block.eq(0), block.eq(0), base.eq(0)]
                with m.If(row == height - 1):                            # end of the frame
                    m.d.sync += [row.eq(0), row_in_band.eq(0), band.eq(0)]
                with m.Else():
                    m.d.sync += row.eq(row + 1)
                    with m.If(row_in_band == k_h - 1):
                        m.d.sync += [row_in_band.eq(0), band.eq(band + 1)]
                    with m.Else():
                        m.d.sync += row_in_band.eq(row_in_band + 1)
            with m.Elif(group == groups - 1):                            # next column
                m.d.sync += col.eq(col + 1)
                with m.If(col_in_block == k_w - 1):
                    m.d.sync += [col_in_block.eq(0), block.eq(block + 1),
                                 base.eq(base + groups)]
                with m.Else():
                    m.d.sync += col_in_block.eq(col_in_block + 1)

        # Stage B: the word, its flags and address, one cycle later with the memory's data.
        valid_b = Signal(name="valid_b")
        x_b = Signal(word, name="x_b", reset_less=True)
        address_b = Signal(range(depth + groups), name="address_b", reset_less=True)
        first_b, last_b = Signal(name="first_b"), Signal(name="last_b")
        m.d.sync += [valid_b.eq(take & inside), x_b.eq(self.input.payload),
                     address_b.eq(address),
                     first_b.eq((row_in_band == 0) & (col_in_block == 0)),
                     last_b.eq(completes)]
        value = Signal(word, name="value")
        if groups == 1:
            # Consecutive words can share a partial maximum (a block row's columns): whether
            # stage B must take it from stage C (the value written in the cycle B's word read
            # the memory, so the read missed it) is decided a cycle early, when B's word is
            # still at the input and C's is in B, so no address compare sits before the max.
            forward = Signal(name="forward")
            m.d.sync += forward.eq(valid_b & ~last_b & (address_b == address))
            # Stage C: the partial maximum written in the cycle before, for forwarding.
            # The maximum is taken with both candidates and `forward` picks one after: with
            # the pick in front of the compares, `forward` through them into the memory's
            # write data was the ECP5 design's critical path (6.9 ns).
            value_c = Signal(word, name="value_c", reset_less=True)
            m.d.comb += value.eq(Mux(forward, _lane_max(word, x_b, value_c, first_b),
                                     _lane_max(word, x_b, read.data, first_b)))
            m.d.sync += value_c.eq(value)
        else:
            # Consecutive words are different channel groups, so a partial maximum is
            # written at least a cycle before it is read again: no forwarding.
            m.d.comb += value.eq(_lane_max(word, x_b, read.data, first_b))
        m.d.comb += [write.addr.eq(address_b), write.data.eq(value),
                     write.en.eq(valid_b & ~last_b)]

        credit, queue = credited_queue(m, self, depth=self.queue_depth,
                                       taken=take & inside & completes)
        out_valid = Signal(name="out_valid")
        out_word = Signal(word, name="out_word", reset_less=True)
        m.d.sync += [out_valid.eq(valid_b & last_b), out_word.eq(value)]
        m.d.comb += [queue.valid.eq(out_valid), queue.payload.eq(out_word), room.eq(credit)]
        return m


def _lane_max(layout, x, previous, first):
    """Lane by lane, ``x`` where ``first`` or ``x > previous``, else ``previous`` (both
    views of ``layout``, an array of codes): ``x`` max-ed into a partial maximum. Returns a
    plain value of ``layout``'s width (lane ``i`` at bits ``[i*bits, (i+1)*bits)``)."""
    return Cat(*(Mux(first | (x[lane] > previous[lane]), x[lane], previous[lane])
                 for lane in range(layout.length)))


def _pool_class(kernel, stride, padding, input_interval):
    """(geometry, component) classes of the cheapest max-pool for these parameters, and
    their keyword arguments besides ``in_shape``, ``simd`` and ``bits``."""
    from wrpn_rtl.golden.ops import as_pair
    kernel_pair = as_pair("kernel", kernel)
    stride_pair = kernel_pair if stride is None else as_pair("stride", stride)
    if stride_pair == kernel_pair and padding == 0:
        return BlockMaxPoolGeometry, BlockMaxPool, {"kernel": kernel_pair,
                                                    "input_interval": input_interval}
    # The sliding window reads each input word K_h x K_w times, so its queue runs at one
    # word per cycle whatever the input's rate.
    check_positive_int("input_interval", input_interval)
    return MaxPool2dGeometry, MaxPool2d, {"kernel": kernel, "stride": stride,
                                          "padding": padding}


def max_pool_geometry(*, in_shape, kernel, stride=None, padding=0, simd, bits,
                      input_interval=1, lut_ram=False):
    """The geometry of what :func:`max_pool` builds for these parameters."""
    geometry, _, kwargs = _pool_class(kernel, stride, padding, input_interval)
    return geometry(in_shape=in_shape, simd=simd, bits=bits, lut_ram=lut_ram, **kwargs)


def max_pool(*, in_shape, kernel, stride=None, padding=0, simd, bits, input_interval=1,
             lut_ram=False):
    """The cheapest streaming max-pool for these parameters: :class:`BlockMaxPool` when the
    stride is the kernel and there is no padding, else :class:`MaxPool2d`.
    ``input_interval``: the fewest cycles per input word the producer sustains (sizes the
    block pool's output queue); ``lut_ram``: the device has LUT RAM (its memory goes there,
    :func:`~wrpn_rtl.hardware.memories.memory_style`)."""
    _, component, kwargs = _pool_class(kernel, stride, padding, input_interval)
    return component(in_shape=in_shape, simd=simd, bits=bits, lut_ram=lut_ram, **kwargs)
