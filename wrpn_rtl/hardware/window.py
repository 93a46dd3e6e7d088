"""Sliding-window generator (line buffer): a folded feature map in, every window out.

Streams
-------
Input: an ``H x W x C`` map as ``H * W * CG`` words of ``SIMD`` codes (``CG = C / SIMD``), rows
first, then columns, then channel groups. Output: for each output pixel ``(oh, ow)`` in row
order, its ``K_h x K_w`` window (``repeats`` times over) as ``K_h * K_w * CG`` words in the
window order of
:mod:`wrpn_rtl.golden.ops` (kernel row, kernel column, channel group), which is the order the
MVU's weight memory expects. Zero padding is generated (code 0), never stored. Frames follow
each other without a gap or a reset.

Line storage
------------
``R`` input rows live in one memory of ``R * W * CG`` words (row slots reused in turn). The
writer may start a row only when its slot is no longer needed by the window being read
(``ahead < R``); the reader emits a word only once the writer has passed it. ``R`` is the
larger of ``min(K_h, H) + S_h`` (rather than the bare minimum of ``K_h - 1`` rows plus a
window: the writer fills the next ``S_h`` rows while the current output row is read) and, at a
frame boundary, the rows the last output row still needs plus those the next frame's first
output row needs (``K_h - padding``), at most ``2 H`` (one more when a row is a single word).
So the reader never waits for the buffer, only for input that has not arrived yet. (With one row fewer a 3x3, stride-2,
unpadded window measured 13 % above its expected cycles per frame; with ``R <= H`` a kernel as
tall as the map ran up to 58 % above.)

The lowest row still needed is tracked clamped to ``[0, H]``: padding deeper than the kernel
puts whole windows above or below the image, and a window below it needs no row of its frame
(row ``H`` is the next frame's first row).
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory

from wrpn_rtl.compiler import cost
from wrpn_rtl.hardware.arithmetic import select
from wrpn_rtl.hardware.memories import memory_attrs, memory_style
from wrpn_rtl.hardware.streams import (FoldedMapWords, credit_slots, credited_queue,
                                       stream_members)
from wrpn_rtl.golden.checks import check_positive_int
from wrpn_rtl.golden.ops import check_window
from wrpn_rtl.golden.quant import ACTIVATION_BITS, check_bits

__all__ = ["SlidingWindowGeometry", "SlidingWindow", "check_simd"]

def check_simd(simd, channels, *, name="simd"):
    """``simd`` as an int, or raise (naming the parameter ``name``) unless it is a positive
    divisor of ``channels``."""
    simd = check_positive_int(name, simd)
    if channels % simd:
        raise ValueError(f"{name} must be a positive divisor of the channels {channels}, "
                         f"not {simd!r}")
    return int(simd)


def _last_flag(m, counter, total, moves, *, name):
    """A register equal to ``counter == total - 1`` for a loop counter that, in a cycle where
    ``moves``, steps on by one or wraps from ``total - 1`` to 0 (and is 0 after reset)."""
    flag = Signal(init=int(total == 1), name=name)
    if total > 1:
        with m.If(moves):
            m.d.sync += flag.eq(~flag & (counter == total - 2))
    return flag


def _signed_range(low, high):
    """A signed shape holding every integer in ``[low, high]``."""
    width = max(abs(low).bit_length(), abs(high).bit_length()) + 1
    return signed(width)


class SlidingWindowGeometry(FoldedMapWords):
    """Everything about a sliding window that follows from its parameters, without building
    hardware: output size, rows held, cycles and the resource estimate.

    Parameters
    ----------
    in_shape : (H, W, C)
    kernel : int or (K_h, K_w)
        No larger than the padded input.
    stride : int or (S_h, S_w)
        >= 1.
    padding : int
        Zero padding (code 0) on every side, >= 0.
    simd : int
        Codes per word; must divide ``C``.
    bits : int
        Code width, 1..16.
    repeats : int
        Copies of each window out, back to back (>= 1; default 1): a matrix-vector unit with
        ``NF`` neuron folds reads every window ``NF`` times, and the line buffer already holds
        it, so no replay buffer is needed behind the window.
    lut_ram : bool
        The device has LUT RAM (ECP5): a line buffer of 2 to
        :data:`~wrpn_rtl.hardware.memories.LUT_RAM_MAX_DEPTH` words goes there instead of
        block RAM or flip-flops (:func:`~wrpn_rtl.hardware.memories.memory_style`). Default
        False.
    held_output : bool
        The output is the line buffer's read port itself, held while the consumer stalls
        (:func:`~wrpn_rtl.hardware.streams.held_read`), instead of a
        :data:`QUEUE_DEPTH`-word output queue: the consumer's ``ready`` then joins the issue
        decision, so it is meant for a consumer whose ``ready`` is a register (a
        :class:`~wrpn_rtl.hardware.replay.VectorReplay`). Default False.

    Members
    -------
    word_layout : data.ArrayLayout
        ``ArrayLayout(unsigned(bits), simd)``: one word in and out.

    Raises
    ------
    TypeError, ValueError
        A bad shape, kernel, stride, padding, bits, or ``simd`` not dividing ``C``.
    """

    #: Output queue words: a word is read in the cycle its slot is taken and is at the
    #: queue's output two cycles later, and the window reads up to a word per cycle
    #: (:func:`~wrpn_rtl.hardware.streams.credit_slots`).
    QUEUE_DEPTH = credit_slots(2)

    def __init__(self, *, in_shape, kernel, stride=1, padding=0, simd, bits, repeats=1,
                 lut_ram=False, held_output=False):
        kernel, stride, padding, out_hw = check_window(tuple(in_shape), kernel, stride, padding)
        self._lut_ram = bool(lut_ram)
        self._held_output = bool(held_output)
        self._repeats = check_positive_int("repeats", repeats)
        self._bits = check_bits("bits", bits, ACTIVATION_BITS)
        simd = check_simd(simd, in_shape[2])
        self._in_shape = tuple(int(v) for v in in_shape)
        self._kernel, self._stride, self._padding = kernel, stride, padding
        self._out_hw = out_hw
        self._simd = int(simd)
        self._groups = self._in_shape[2] // self._simd
        self._rows = self._buffer_rows_needed()

    in_shape = property(lambda self: self._in_shape)
    kernel = property(lambda self: self._kernel)
    stride = property(lambda self: self._stride)
    padding = property(lambda self: self._padding)
    simd = property(lambda self: self._simd)
    repeats = property(lambda self: self._repeats)
    lut_ram = property(lambda self: self._lut_ram)
    held_output = property(lambda self: self._held_output)

    @property
    def out_hw(self):
        """``(H_out, W_out)``."""
        return self._out_hw

    @property
    def words_in_per_frame(self):
        height, width, _ = self._in_shape
        return height * width * self._groups

    @property
    def words_out_per_frame(self):
        return (self._out_hw[0] * self._out_hw[1] * self._kernel[0] * self._kernel[1]
                * self._groups * self._repeats)

    @property
    def cycles_per_frame(self):
        """Steady-state cycles per frame with no stall: the larger of the words in and out."""
        return max(self.words_in_per_frame, self.words_out_per_frame)

    @property
    def buffer_rows(self):
        """``R``: input rows held."""
        return self._rows

    def _buffer_rows_needed(self):
        """``R``, the fewest row slots with which only missing input stalls the reader.

        Inside a frame the window spans ``min(K_h, H)`` rows and the writer fills the next
        ``S_h``; at a frame boundary the last output row still holds the frame's bottom rows
        while the writer fills the rows the next frame's first output row needs. Never more
        than two whole frames.
        """
        height = self._in_shape[0]
        (k_h, _), (s_h, _), pad = self._kernel, self._stride, self._padding
        last_row_base = (self._out_hw[0] - 1) * s_h - pad
        rows_last = height - min(height, max(0, last_row_base))
        rows_first = max(0, min(height, k_h - pad))
        rows = min(2 * height, max(min(k_h, height) + s_h, rows_last + rows_first))
        # A row of one word is written and read in one cycle each, faster than the writer's
        # progress reaches the reader (`ahead` is a register, and a row step lands a cycle
        # late): one more slot keeps such maps at a word per cycle (measured 1.5 without).
        single_word_rows = self._in_shape[1] * self._groups == 1
        return rows + 1 if single_word_rows else rows

    def buffer_bits(self):
        """``(stored, minimum)``: bits of the line buffer, and the bare minimum
        ``((K_h - 1) * W + K_w) * C * bits`` of a stride-1 line buffer."""
        height, width, channels = self._in_shape
        stored = self._rows * width * channels * self._bits
        minimum = ((self._kernel[0] - 1) * width + self._kernel[1]) * channels * self._bits
        return stored, minimum

    def estimate(self):
        """Resource estimate (:func:`wrpn_rtl.compiler.cost.sliding_window`): control, the
        output queue and the line buffer."""
        return cost.sliding_window(word_bits=self._simd * self._bits,
                                   buffer_words=self._buffer_words(),
                                   queue_depth=0 if self._held_output else self.QUEUE_DEPTH,
                                   style=self.memory_style())

    def _buffer_words(self):
        """Words of the line buffer: ``R`` rows of ``W * C / SIMD`` words."""
        return self._rows * self._in_shape[1] * self._groups

    def memory_style(self):
        """Where the line buffer goes (:func:`~wrpn_rtl.hardware.memories.memory_style`)."""
        return memory_style(self._buffer_words(), writable=True, lut_ram=self._lut_ram)



class SlidingWindow(SlidingWindowGeometry, wiring.Component):
    """Line buffer emitting every ``K_h x K_w`` window of a folded feature map.

    Parameters and errors: see :class:`SlidingWindowGeometry`, whose members it has too.

    Members
    -------
    input : In(stream.Signature(ArrayLayout(unsigned(bits), simd)))
    output : Out(stream.Signature(ArrayLayout(unsigned(bits), simd)))
    """

    def __init__(self, *, in_shape, kernel, stride=1, padding=0, simd, bits, repeats=1,
                 lut_ram=False, held_output=False):
        SlidingWindowGeometry.__init__(self, in_shape=in_shape, kernel=kernel, stride=stride,
                                       padding=padding, simd=simd, bits=bits, repeats=repeats,
                                       lut_ram=lut_ram, held_output=held_output)
        wiring.Component.__init__(self, stream_members(self))

    def elaborate(self, platform):
        m = Module()
        width, groups, rows = self._in_shape[1], self._groups, self._rows
        row_words = width * groups
        m.submodules.lines = lines = Memory(
            shape=unsigned(self._simd * self._bits), depth=rows * row_words, init=[],
            # A word is read only once the writer has passed it, and the writer fills only
            # slots of rows no longer needed, so no read that is used meets a write to its
            # address (reads not fired, and padding, are dropped).
            attrs=memory_attrs(rows * row_words, writable=True, collision_reads_unused=True,
                               style=self.memory_style()))
        # `ahead`: input rows the writer has completed beyond the lowest row the reader still
        # needs (negative while the writer is behind the reader's frame).
        (k_h, _), (s_h, _), pad = self._kernel, self._stride, self._padding
        ahead = Signal(_signed_range(-(self._in_shape[0] + k_h + pad + s_h), rows + 1),
                       name="ahead")
        write = lines.write_port()
        read = lines.read_port()
        # `ahead < R`, the input's ready, in a register the issuer sets from `ahead`'s next
        # value (`ahead` is 0 after reset), so no compare lies on the ready path upstream
        input_ready = Signal(init=1, name="input_ready")
        writer = self._writer(m, write, input_ready)
        advance = Signal(name="req_advance")
        generated = self._request_generator(m, advance)
        fire = Signal(name="fire")
        queue = self._request_queue(m, generated, advance, fire)
        self._issuer(m, read, queue, fire, ahead, writer, input_ready)
        return m

    def _writer(self, m, write, input_ready):
        """One input word per cycle into the row slots, in turn, while the row's slot is free
        (``input_ready``: ``ahead < R``). Returns ``(w_col, push, row_done)``: the word within
        the row being written, whether a word is written this cycle, and the pulse of a row
        completing."""
        rows, row_words = self._rows, self._in_shape[1] * self._groups
        w_col = Signal(range(row_words), name="w_col")
        w_slot = Signal(range(rows), name="w_slot")
        m.d.comb += self.input.ready.eq(input_ready)
        push = self.input.valid & self.input.ready
        row_done = push & (w_col == row_words - 1)
        m.d.comb += [write.addr.eq(w_slot * row_words + w_col),
                     write.data.eq(self.input.payload.as_value()), write.en.eq(push)]
        with m.If(push):
            m.d.sync += w_col.eq(Mux(w_col == row_words - 1, 0, w_col + 1))
        with m.If(row_done):
            m.d.sync += w_slot.eq(Mux(w_slot == rows - 1, 0, w_slot + 1))
        return w_col, push, row_done

    def _row_schedule(self):
        """Per output row ``oh``: ``(top_offsets, leave_steps)``, two lists of ``H_out`` ints.

        ``top_offsets[oh]``: the window's top row ``oh * S_h - pad`` less the lowest row still
        needed, ``clamp(oh * S_h - pad)`` (negative over top padding, positive for a window
        wholly below the image). ``leave_steps[oh]``: how far that lowest row moves once the
        output row is left (to the next frame's first row after the last one). The lowest row
        is clamped to ``[0, H]``: a window wholly below the image needs no row of its frame,
        and row ``H`` is the next frame's first row.
        """
        height = self._in_shape[0]
        (_, _), (s_h, _), pad = self._kernel, self._stride, self._padding
        out_h = self._out_hw[0]

        def lowest(row):
            return min(max(row, 0), height)
        bases = [oh * s_h - pad for oh in range(out_h)]
        top_offsets = [base - lowest(base) for base in bases]
        leave_steps = [lowest(base + s_h) - lowest(base) for base in bases[:-1]]
        leave_steps.append(height - lowest(bases[-1]))
        return top_offsets, leave_steps

    def _request_generator(self, m, advance):
        """Stage A of the reader: loops ``oh, ow, rep, kh, kw, cg`` (``cg`` fastest; ``rep``
        counts the copies of a window), moving on while
        ``advance``, and describes the current word: its memory address, whether it is inside
        the map, its row offset above the lowest row still needed, and how far that lowest row
        moves once the word is read.

        Every part of the description is kept in registers that the loops step along (the
        address as its row's start plus the word within the row), so the description is one
        adder and a few compares from registers, and no arithmetic chain closes a loop: what
        depends on the output row (its top row's offset, the row step when it is left) comes
        from :meth:`_row_schedule`, loaded into registers when ``oh`` moves.

        Returns
        -------
        fresh
            The description (a request struct, combinational).
        """
        height, width = self._in_shape[:2]
        (k_h, k_w), (s_h, s_w), pad = self._kernel, self._stride, self._padding
        out_h, out_w = self._out_hw
        groups, rows = self._groups, self._rows
        row_words = width * groups
        buffer_words = rows * row_words
        top_offsets, leave_steps = self._row_schedule()
        max_step = max(leave_steps)
        layout = self._request_layout(max_step)
        offset_shape = layout["offset"].shape
        row_span = _signed_range(-pad, out_h * s_h + k_h + pad)
        pixel_span = _signed_range(-pad * groups, (out_w * s_w + k_w + pad + 1) * groups)
        oh = Signal(range(out_h), name="oh")
        kh = Signal(range(k_h), name="kh")
        kw = Signal(range(k_w), name="kw")
        cg = Signal(range(groups), name="cg")
        ow = Signal(range(out_w), name="ow")
        rep = Signal(range(self._repeats), name="rep")
        row_base = Signal(row_span, init=-pad, name="row_base")   # oh * S_h - pad
        ih = Signal(row_span, init=-pad, name="ih")               # row_base + kh
        # The word within its row, iw * CG + cg (iw = ow * S_w - pad + kw, the input column),
        # and that of the window's first column: a column is inside the map exactly when
        # its words are inside the row's words.
        col_pixel = Signal(pixel_span, init=-pad * groups, name="col_pixel")  # (ow S_w - pad) CG
        pixel = Signal(pixel_span, init=-pad * groups, name="pixel")
        # Row offsets from the lowest row still needed: the window's top row, and row `ih`.
        top_offset = Signal(offset_shape, init=top_offsets[0], name="top_offset")
        offset = Signal(offset_shape, init=top_offsets[0], name="offset")
        # The step the lowest row makes when this output row is left, in rows and in words.
        leave_step = Signal(range(max_step + 1), init=leave_steps[0], name="leave_step")
        leave_step_less_one = Signal(_signed_range(-1, max_step), init=leave_steps[0] - 1,
                                     name="leave_step_less_one")
        leave_words = Signal(range(max_step * row_words + 1), init=leave_steps[0] * row_words,
                             name="leave_words")
        # Memory address of the lowest row still needed (its slot times the row's words), and
        # of row `ih` once that is inside the rows held (it stays at the lowest row's while
        # `ih` is above it, in padding).
        base_addr = Signal(range(buffer_words), name="base_addr")
        row_addr = Signal(range(buffer_words), name="row_addr")

        def wrap(total):
            """``total mod buffer_words`` for ``total < 2 * buffer_words``."""
            return Mux(total >= buffer_words, total - buffer_words, total)

        def for_next_row(values, shape):
            """``values`` of the output row after ``oh`` (row 0 after the last)."""
            return select(oh, [Const(v, shape) for v in values[1:] + values[:1]])

        inside = (ih >= 0) & (ih < height) & (pixel >= 0) & (pixel < row_words)
        # Each loop's "at its last value" flag is a register kept as the loops move (a loop
        # moves when every faster loop is at its last value), so no counter compare lies
        # before the enables of the generator's registers.
        flags, carry = [], advance
        for counter, total in ((cg, groups), (kw, k_w), (kh, k_h), (rep, self._repeats),
                               (ow, out_w), (oh, out_h)):
            flag = _last_flag(m, counter, total, carry, name=f"{counter.name}_last")
            flags.append(flag)
            carry = carry & flag
        last_cg, last_kw, last_kh, last_rep, last_ow, last_oh = flags
        leave_row = last_cg & last_kw & last_kh & last_rep & last_ow

        fresh = Signal(layout, name="req_new")
        previous_step = Signal(range(max_step + 1), name="previous_step")  # 0 before the first
        m.d.comb += [fresh.addr.eq(row_addr + pixel), fresh.inside.eq(inside),
                     fresh.offset.eq(offset), fresh.pixel.eq(pixel),
                     fresh.step.eq(Mux(leave_row, leave_step, 0)),
                     fresh.step_less_one.eq(Mux(leave_row, leave_step_less_one, -1)),
                     fresh.seen.eq(offset + previous_step)]
        restart_window = [ih.eq(row_base), offset.eq(top_offset), row_addr.eq(base_addr)]
        with m.If(advance):
            m.d.sync += previous_step.eq(fresh.step)
            with m.If(~last_cg):
                m.d.sync += [cg.eq(cg + 1), pixel.eq(pixel + 1)]
            with m.Elif(~last_kw):
                m.d.sync += [cg.eq(0), kw.eq(kw + 1), pixel.eq(pixel + 1)]
            with m.Elif(~last_kh):
                m.d.sync += [cg.eq(0), kw.eq(0), kh.eq(kh + 1), ih.eq(ih + 1),
                             pixel.eq(col_pixel), offset.eq(offset + 1)]
                with m.If(offset >= 0):
                    m.d.sync += row_addr.eq(wrap(row_addr + row_words))
            with m.Elif(~last_rep):
                m.d.sync += [cg.eq(0), kw.eq(0), kh.eq(0), rep.eq(rep + 1),
                             pixel.eq(col_pixel), *restart_window]
            with m.Elif(~last_ow):
                m.d.sync += [cg.eq(0), kw.eq(0), kh.eq(0), rep.eq(0), ow.eq(ow + 1),
                             col_pixel.eq(col_pixel + s_w * groups),
                             pixel.eq(col_pixel + s_w * groups), *restart_window]
            with m.Else():
                next_top = for_next_row(top_offsets, offset_shape)
                new_base = wrap(base_addr + leave_words)
                m.d.sync += [cg.eq(0), kw.eq(0), kh.eq(0), rep.eq(0), ow.eq(0),
                             col_pixel.eq(-pad * groups),
                             pixel.eq(-pad * groups), top_offset.eq(next_top),
                             offset.eq(next_top), base_addr.eq(new_base), row_addr.eq(new_base),
                             leave_step.eq(for_next_row(leave_steps, leave_step.shape())),
                             leave_step_less_one.eq(for_next_row(
                                 [v - 1 for v in leave_steps], leave_step_less_one.shape())),
                             leave_words.eq(for_next_row([v * row_words for v in leave_steps],
                                                         leave_words.shape()))]
                with m.If(last_oh):
                    m.d.sync += [oh.eq(0), row_base.eq(-pad), ih.eq(-pad)]
                with m.Else():
                    m.d.sync += [oh.eq(oh + 1), row_base.eq(row_base + s_h),
                                 ih.eq(row_base + s_h)]
        return fresh

    def _request_layout(self, max_step):
        """One request: memory address, inside the map, row offset, word in its row, the row
        step it makes when read (and that step less one, so the issuer adds one to a difference
        without a second carry chain), and ``seen``: its offset plus the step of the request
        before it (its offset as the issuer judges it while that request is read)."""
        row_words = self._in_shape[1] * self._groups
        k_h, pad = self._kernel[0], self._padding
        return data.StructLayout({
            "addr": range(self._rows * row_words), "inside": 1,
            "offset": _signed_range(-pad, k_h + 1), "pixel": range(row_words + 1),
            "step": range(max_step + 1), "step_less_one": _signed_range(-1, max_step),
            "seen": _signed_range(-pad, k_h + 1 + max_step)})

    def _request_queue(self, m, generated, advance, fire):
        """The requests between the generator and the issuer: ``fresh``, the generator's
        request in a register (so its arithmetic ends there), then a two-entry queue (``head``,
        ``tail``). ``fresh`` moves on while the tail is free (a register bit) and the generator
        refills it in the same cycle, so the issue decision only moves the queue, never the
        generator's counters. Returns ``(head, head_valid, tail, tail_valid, fresh,
        fresh_valid)``; ``fresh_valid`` is low only in the first cycle after reset."""
        layout = generated.shape()
        fresh = Signal(layout, name="req_fresh", reset_less=True)
        fresh_valid = Signal(name="req_fresh_valid")
        head = Signal(layout, name="req_head")      # reset: step 0 while no head is valid
        tail = Signal(layout, name="req_tail", reset_less=True)
        head_valid = Signal(name="req_valid")
        tail_valid = Signal(name="req_tail_valid")
        moves = fresh_valid & ~tail_valid           # fresh moves into the queue this cycle
        m.d.comb += advance.eq(~fresh_valid | ~tail_valid)
        with m.If(advance):
            m.d.sync += [fresh.eq(generated), fresh_valid.eq(1)]
        with m.If(fire):
            following = Signal(layout, name="req_following")
            m.d.comb += following.eq(Mux(tail_valid, tail.as_value(), fresh.as_value()))
            m.d.sync += head.eq(following)
            with m.If(tail_valid):
                m.d.sync += tail_valid.eq(0)
            with m.Else():
                m.d.sync += head_valid.eq(moves)
        with m.Elif(moves):
            with m.If(head_valid):
                m.d.sync += [tail.eq(fresh), tail_valid.eq(1)]
            with m.Else():
                m.d.sync += [head.eq(fresh), head_valid.eq(1)]
        return head, head_valid, tail, tail_valid, fresh, fresh_valid

    def _issuer(self, m, read, request_queue, fire, ahead, writer, input_ready):
        """Stage B of the reader: reads the requested word once the writer has passed it
        (padding needs nothing), under the output queue's credit; the memory's read data
        arrives the next cycle and goes straight into the queue.

        A word that leaves an output row moves the lowest needed row on by its ``step``; that
        decrement of ``ahead`` is applied one cycle later (registered, off the issue path), and
        in that cycle the next request is judged by its offset from the old row.

        Whether the head request's word has been written (``available``) is decided a cycle
        ahead, into registers, for both heads the next cycle can have - the same one, or the
        one that moves up (after a read, or into an empty head; every candidate is a register)
        - against ``ahead``'s and the writer's next values; the issue path only picks one. So
        neither the writer's position compare nor the offset arithmetic lies on the path from
        ``fire`` to the queue's enables, which set the clock (the decision is the same).
        """
        head, head_valid, tail, tail_valid, fresh, _ = request_queue
        w_col, push, row_done = writer
        # `base` = `ahead` less the step of the word read last cycle (next cycle's `ahead`
        # without the writer's row_done), kept in a register of its own so no subtraction lies
        # before the comparisons.
        # `base_up` = base + 1, a register too, so no comparison waits for a carry chain.
        base = Signal(signed(len(ahead) + 1), name="ahead_less_step")
        base_up = Signal(signed(len(ahead) + 2), init=1, name="ahead_less_step_up")
        ahead_next = Signal.like(ahead, name="ahead_next")
        m.d.comb += ahead_next.eq(Mux(row_done, base_up, base))

        def written(offset, pixel):
            """The word is written by the next cycle: below the writer's row, or in it and
            before its next word. Compared against registers only; the writer's late signals
            (``push``, ``row_done``) just pick among the results."""
            below = Mux(row_done, offset <= base, offset < base)
            level = Mux(row_done, offset == base_up, offset == base)
            before = Mux(push, ~row_done & (pixel <= w_col), pixel < w_col)
            return below | (level & before)
        # The head moving up is seen from the row before the step the read head makes (that
        # step reaches `ahead` a cycle later): its offset plus the head's step, which the
        # generator added in already (`seen`: the head is always the request generated just
        # before the one moving up, and step 0 is the reset head's). Judged for the tail and
        # for `fresh` apart and chosen after, so no multiplexer or adder stands before the
        # comparisons.
        keep_written, move_written = Signal(name="keep_written"), Signal(name="move_written")
        moved = Signal(name="head_moved")
        m.d.sync += [keep_written.eq(written(head.offset, head.pixel)),
                     move_written.eq(Mux(tail_valid, written(tail.seen, tail.pixel),
                                         written(fresh.seen, fresh.pixel))),
                     moved.eq(fire | ~head_valid)]
        available = Mux(moved, move_written, keep_written)
        m.d.comb += read.addr.eq(head.addr)
        padded = Signal(name="padded", reset_less=True)
        if self._held_output:
            # the read port is the output register: a word is read when the output is empty
            # or being taken, and the port (and `padded`) hold while the consumer stalls
            out_valid = Signal(name="out_valid")
            advance = Signal(name="out_advance")
            m.d.comb += [advance.eq(~out_valid | self.output.ready), read.en.eq(advance),
                         fire.eq(head_valid & advance & (~head.inside | available)),
                         self.output.valid.eq(out_valid),
                         self.output.payload.eq(Mux(padded, 0, read.data))]
            with m.If(advance):
                m.d.sync += [out_valid.eq(fire), padded.eq(~head.inside)]
        else:
            room, queue = credited_queue(m, self, depth=self.QUEUE_DEPTH, taken=fire)
            m.d.comb += fire.eq(head_valid & room & (~head.inside | available))
            emitted = Signal(name="emitted")
            m.d.sync += [emitted.eq(fire), padded.eq(~head.inside)]
            m.d.comb += [queue.valid.eq(emitted), queue.payload.eq(Mux(padded, 0, read.data))]
        # A word read moves the lowest needed row on (to the next frame's first row after the
        # last output row); `ahead` follows, so the writer may reuse the slots left behind.
        # Both outcomes of the issue decision are computed from registers and `fire` only
        # picks one: `fire` through the subtractors' carry chains into `base` was the UP5K
        # design's critical path (23.1 ns).
        # Each candidate is one subtraction from registers (`base_up` = `base` + 1, and the
        # request carries its step less one), and `row_done` and `fire` only pick: with
        # `ahead_next - step` and then `+ 1` in series, two carry chains after the
        # `row_done` multiplexer were the ECP5 design's critical path (7.6 ns).
        less_step = Mux(row_done, base_up - head.step, base - head.step)
        less_step_up = Mux(row_done, base_up - head.step_less_one, base_up - head.step)
        m.d.sync += [ahead.eq(ahead_next),
                     base.eq(Mux(fire, less_step, ahead_next)),
                     base_up.eq(Mux(fire, less_step_up, Mux(row_done, base_up + 1, base_up))),
                     # next cycle's `ahead < R`, compared with constants before `row_done`
                     # picks one
                     input_ready.eq(Mux(row_done, base < self._rows - 1, base < self._rows))]
