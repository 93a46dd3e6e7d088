"""Whole windows per word: a shift-register window generator for small feature maps.

The line buffer (:mod:`wrpn_rtl.hardware.window`) reads one word of ``simd`` channels per cycle,
so a map with few channels - a 1-channel image above all - gives one code per cycle and a 3x3
window takes 9 cycles. This generator emits a whole ``K_h x K_w x C`` window per word (window
order of :mod:`wrpn_rtl.golden.ops`: kernel row, kernel column, channel), at up to one window
per cycle.

Streams
-------
Input: an ``H x W x C`` map as ``H * W`` words of ``C`` codes (one pixel per word, rows first).
Output: for each output pixel ``(oh, ow)`` in row order, its window ``repeats`` times over, one
word of ``K_h * K_w * C`` codes each. Frames follow each other without a gap or a reset.

How
---
The map is walked in *padded* raster order (``(H + 2P) x (W + 2P)`` positions per frame; a
padding position takes no input and enters a zero pixel). Every position shifts one pixel into
a register chain of ``(K_h - 1) * (W + 2P) + K_w`` pixels (the newest included), so the pixel
``d`` positions back is ``d`` registers down the chain, and the window whose bottom-right
corner just entered is a fixed set of taps: tap ``(kh, kw)`` is
``(K_h - 1 - kh) * (W + 2P) + (K_w - 1 - kw)`` back. The positions that complete a window
(window row and column on the stride grid) are constant masks indexed by the position
counters. A completed window is held in the output register and offered ``repeats`` times
(``valid`` is a register); one completed while the hold is busy waits in a second register,
and the next position that completes a window waits only while both are full (registers: the
consumer's ``ready`` never reaches the chain's enable, it only moves windows along; on ECP5
the path from conv1's MVU credit through the hold's free flag into the chain's enable, across
the die, was a critical path at 9.2 ns). Other positions keep shifting meanwhile, so the chain
runs up to a window ahead of the output, across the padding between frames above all. A frame
takes at least ``max((H + 2P) * (W + 2P), H_out * W_out * repeats)`` cycles
(``cycles_per_frame`` counts them exactly); the chain costs
``((K_h - 1) * (W + 2P) + K_w - 1) * C * bits`` flip-flops, which is why the compiler offers it
only for small maps.
"""
from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring

from wrpn_rtl.compiler import cost
from wrpn_rtl.golden.checks import check_positive_int
from wrpn_rtl.golden.ops import check_window
from wrpn_rtl.golden.quant import ACTIVATION_BITS, check_bits
from wrpn_rtl.hardware.streams import stream_members

__all__ = ["RegisterWindowGeometry", "RegisterWindow", "REGISTER_WINDOW_MAX_BITS"]

#: Largest shift-register chain (bits) the compiler offers a register window for: beyond it
#: the line buffer's block RAM is the cheaper store (an ECP5 design with an 896-bit chain and
#: a 576-bit window register, 16k LUT4s, did not finish placement in 15 minutes).
REGISTER_WINDOW_MAX_BITS = 512


class RegisterWindowGeometry:
    """Everything about a register window that follows from its parameters, without building
    hardware.

    Parameters
    ----------
    in_shape : (H, W, C)
    kernel, stride, padding
        As :func:`wrpn_rtl.golden.ops.check_window` accepts them.
    bits : int
        Code width, 1..16.
    repeats : int
        Copies of each window out, back to back (>= 1).

    Members
    -------
    input_layout : data.ArrayLayout
        ``ArrayLayout(unsigned(bits), C)``: one pixel.
    output_layout : data.ArrayLayout
        ``ArrayLayout(unsigned(bits), K_h * K_w * C)``: one window.

    Raises
    ------
    TypeError, ValueError
        A bad shape, kernel, stride, padding, bits or repeats.
    """

    def __init__(self, *, in_shape, kernel, stride=1, padding=0, bits, repeats=1):
        kernel, stride, padding, out_hw = check_window(tuple(in_shape), kernel, stride, padding)
        self._repeats = check_positive_int("repeats", repeats)
        self._bits = check_bits("bits", bits, ACTIVATION_BITS)
        self._in_shape = tuple(int(v) for v in in_shape)
        self._kernel, self._stride, self._padding, self._out_hw = kernel, stride, padding, out_hw
        height, width, _ = self._in_shape
        self._padded = (height + 2 * padding, width + 2 * padding)

    in_shape = property(lambda self: self._in_shape)
    kernel = property(lambda self: self._kernel)
    stride = property(lambda self: self._stride)
    padding = property(lambda self: self._padding)
    repeats = property(lambda self: self._repeats)
    out_hw = property(lambda self: self._out_hw)

    @property
    def window_codes(self):
        """Codes per output word: ``K_h * K_w * C``."""
        return self._kernel[0] * self._kernel[1] * self._in_shape[2]

    @property
    def input_layout(self):
        return data.ArrayLayout(unsigned(self._bits), self._in_shape[2])

    @property
    def output_layout(self):
        return data.ArrayLayout(unsigned(self._bits), self.window_codes)

    @property
    def words_in_per_frame(self):
        return self._in_shape[0] * self._in_shape[1]

    @property
    def words_out_per_frame(self):
        return self._out_hw[0] * self._out_hw[1] * self._repeats

    @property
    def cycles_per_frame(self):
        """Steady-state cycles per frame with no stall (input always valid, output always
        ready), rounded up: :meth:`_walk` cycle by cycle until the state at a frame's start
        repeats, over the frames of that cycle. Padding positions shift one per cycle; a
        position that completes a window shifts while the held window and the pending one
        are not both full, so the chain runs up to a window ahead of the output (across the
        padding between frames, above all)."""
        seen, starts = {}, []
        state = (0, False)              # (copies left of the held window, pending full)
        cycles = 0
        while state not in seen:
            seen[state] = len(starts)
            starts.append(cycles)
            spent, state = self._walk(state)
            cycles += spent
        first = starts[seen[state]]
        frames = len(starts) - seen[state]
        return -(-(cycles - first) // frames)

    def _walk(self, state):
        """One frame of the hardware below with its input always valid and its output always
        ready, from ``state`` ``(copies, pending_full)`` at the frame's first position:
        ``(cycles, state at the next frame's first position)``."""
        (height_p, width_p), (k_h, k_w), (s_h, s_w) = self._padded, self._kernel, self._stride
        rows = self._completes(height_p, k_h, s_h)
        cols = self._completes(width_p, k_w, s_w)
        copies, pending_full = state
        cycles = 0
        for position in range(height_p * width_p):
            completes = rows >> (position // width_p) & 1 and cols >> (position % width_p) & 1
            while True:
                cycles += 1
                free = copies <= 1
                shifts = not completes or not pending_full or copies == 0
                arrives = shifts and completes
                if free and (pending_full or arrives):
                    copies = self._repeats
                elif copies:
                    copies -= 1
                if arrives and (pending_full or not free):
                    pending_full = True
                elif free:
                    pending_full = False
                if shifts:
                    break
        return cycles, (copies, pending_full)

    def gaps(self):
        """Positions from each window-completing position to the next, in walk order, the
        last one counted across the frame's end into the next frame (a window per gap)."""
        (height_p, width_p), (k_h, k_w), (s_h, s_w) = self._padded, self._kernel, self._stride
        rows = self._completes(height_p, k_h, s_h)
        cols = self._completes(width_p, k_w, s_w)
        completing = [r * width_p + c for r in range(height_p) for c in range(width_p)
                      if rows >> r & 1 and cols >> c & 1]
        positions = height_p * width_p
        return [(following - current) % positions or positions for current, following
                in zip(completing, completing[1:] + completing[:1])]

    @property
    def chain_pixels(self):
        """Pixels in the shift-register chain besides the newest: ``(K_h - 1) * (W + 2P) +
        K_w - 1``."""
        return (self._kernel[0] - 1) * self._padded[1] + self._kernel[1] - 1

    def chain_bits(self):
        """Flip-flops of the chain."""
        return self.chain_pixels * self._in_shape[2] * self._bits

    def estimate(self):
        """Resource estimate (:func:`wrpn_rtl.compiler.cost.register_window`)."""
        return cost.register_window(chain_bits=self.chain_bits(),
                                    window_bits=self.window_codes * self._bits,
                                    positions=self._padded[0] * self._padded[1])

    def _tap_distances(self):
        """Distance back along the chain (0: the newest pixel) of each window tap, in window
        order ``(kh, kw)``."""
        (k_h, k_w), width = self._kernel, self._padded[1]
        return [(k_h - 1 - kh) * width + (k_w - 1 - kw) for kh in range(k_h) for kw in range(k_w)]

    @staticmethod
    def _completes(size, kernel, stride):
        """Mask over the ``size`` padded positions along one axis: bit ``i`` set where a window
        whose last row (column) is ``i`` starts on the stride grid."""
        return sum(1 << i for i in range(kernel - 1, size) if (i - kernel + 1) % stride == 0)

    def _inside(self, original):
        """Mask over padded positions along one axis of ``original`` positions in the map:
        bit ``i`` set inside the map."""
        return sum(1 << i for i in range(self._padding, self._padding + original))


class RegisterWindow(RegisterWindowGeometry, wiring.Component):
    """Shift-register window generator: one pixel per input word, one whole window per output
    word.

    Parameters and errors: see :class:`RegisterWindowGeometry`, whose members it has too.

    Members
    -------
    input : In(stream.Signature(ArrayLayout(unsigned(bits), C)))
    output : Out(stream.Signature(ArrayLayout(unsigned(bits), K_h * K_w * C)))
    """

    def __init__(self, *, in_shape, kernel, stride=1, padding=0, bits, repeats=1):
        RegisterWindowGeometry.__init__(self, in_shape=in_shape, kernel=kernel, stride=stride,
                                        padding=padding, bits=bits, repeats=repeats)
        wiring.Component.__init__(self, stream_members(self))

    def elaborate(self, platform):
        m = Module()
        (height_p, width_p), (k_h, k_w), (s_h, s_w) = self._padded, self._kernel, self._stride
        height, width, channels = self._in_shape
        pixel_bits = channels * self._bits

        # the next padded position, and what it is: `inside` and `completes` are registers,
        # looked up for the position the counters move to, so the input's ready is one gate
        # from registers
        row = Signal(range(height_p), name="row")
        col = Signal(range(width_p), name="col")
        row_next = Mux(col == width_p - 1, Mux(row == height_p - 1, 0, row + 1), row)
        col_next = Mux(col == width_p - 1, 0, col + 1)

        def flags(r, c):
            inside = (Const(self._inside(height), height_p).bit_select(r, 1)
                      & Const(self._inside(width), width_p).bit_select(c, 1))
            completes = (Const(self._completes(height_p, k_h, s_h), height_p).bit_select(r, 1)
                         & Const(self._completes(width_p, k_w, s_w), width_p).bit_select(c, 1))
            return inside, completes
        first_inside = self._inside(height) & self._inside(width) & 1
        first_completes = (self._completes(height_p, k_h, s_h)
                           & self._completes(width_p, k_w, s_w) & 1)
        inside = Signal(name="inside", init=first_inside)
        completes = Signal(name="completes", init=first_completes)   # completes a window

        # The held window is the output register, valid while copies are left (a register);
        # a window completed while it is busy waits in `pending`. A completing position
        # shifts while the two are not both full (registers), so the chain's enable never
        # waits for the consumer's `ready`, which only moves windows along.
        window_bits = self.window_codes * self._bits
        held = Signal(window_bits, name="held", reset_less=True)
        copies = Signal(range(self._repeats + 1), name="copies")
        pending = Signal(window_bits, name="pending", reset_less=True)
        pending_full = Signal(name="pending_full")
        emit = Signal(name="emit")                # a copy of the held window goes out
        m.d.comb += [self.output.valid.eq(copies != 0), self.output.payload.eq(held),
                     emit.eq(self.output.valid & self.output.ready)]
        free = Signal(name="held_free")           # the held window may be replaced this cycle
        m.d.comb += free.eq((copies == 0) | ((copies == 1) & self.output.ready))
        room = Signal(name="window_room")         # a completed window has a place
        m.d.comb += room.eq(~pending_full | (copies == 0))

        # shift a position in: padding needs no input, a completing position room
        shift = Signal(name="shift")
        m.d.comb += [shift.eq((~inside | self.input.valid) & (~completes | room)),
                     self.input.ready.eq(inside & (~completes | room))]
        newest = Mux(inside, self.input.payload.as_value(), 0)
        chain = [Signal(pixel_bits, name=f"chain{i}", reset_less=True)
                 for i in range(self.chain_pixels)]
        taps = [newest] + chain          # taps[d]: the pixel d positions back, after the shift
        with m.If(shift):
            m.d.sync += [reg.eq(value) for reg, value in zip(chain, taps[:-1])]
            next_inside, next_completes = flags(row_next, col_next)
            m.d.sync += [col.eq(col_next), row.eq(row_next), inside.eq(next_inside),
                         completes.eq(next_completes)]
        window = Cat(*(taps[d] for d in self._tap_distances()))
        arrives = shift & completes
        # the held window: the pending one when it frees, else a new one when it frees
        with m.If(free & pending_full):
            m.d.sync += [held.eq(pending), copies.eq(self._repeats)]
        with m.Elif(free & arrives):
            m.d.sync += [held.eq(window), copies.eq(self._repeats)]
        with m.Elif(emit):
            m.d.sync += copies.eq(copies - 1)
        # pending: a new window that cannot go straight to the hold
        with m.If(arrives & (pending_full | ~free)):
            m.d.sync += [pending.eq(window), pending_full.eq(1)]
        with m.Elif(free):
            m.d.sync += pending_full.eq(0)
        return m
