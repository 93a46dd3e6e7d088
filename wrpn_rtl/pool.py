# amaranth: UnusedElaboratable=no
# (inner components are always elaborated with the outer one; the outer one still warns.)
"""Streaming max-pool on activation codes: a sliding window and a lane-wise max reducer.

:class:`MaxPoolReducer` turns the window stream (``K_h * K_w * CG`` words per output pixel, in
the window order of :mod:`wrpn_rtl.golden.ops`) into ``CG`` words per output pixel, each the
lane-wise maximum of its channel group over the window. :class:`MaxPool2d` is the sliding
window followed by the reducer. Padding is code 0, which never exceeds a real code, as in the
golden ``max_pool2d``.
"""
from amaranth.hdl import Array, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import cost
from .golden.checks import check_positive_int
from .golden.ops import check_window
from .golden.quant import ACTIVATION_BITS, check_bits
from .window import SlidingWindow, check_simd

__all__ = ["MaxPoolReducer", "MaxPool2d"]


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
        running = Array(Signal(self.input.payload.shape(), name=f"max{i}", reset_less=True)
                        for i in range(groups))
        last = position == size - 1
        m.d.comb += self.input.ready.eq(~last | ~self.output.valid | self.output.ready)
        take = self.input.valid & self.input.ready
        incoming = self.input.payload
        previous = running[group]
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
                m.d.sync += running[group].eq(best)
        return m


class MaxPool2d(wiring.Component):
    """Streaming max-pool: :class:`~wrpn_rtl.window.SlidingWindow` then :class:`MaxPoolReducer`.

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

    Members
    -------
    input, output : stream of ``ArrayLayout(unsigned(bits), simd)`` words, folded maps.
    """

    def __init__(self, *, in_shape, kernel, stride=None, padding=0, simd, bits):
        check_window(tuple(in_shape), kernel, kernel if stride is None else stride, padding)
        check_simd(simd, in_shape[2])
        check_bits("bits", bits, ACTIVATION_BITS)
        self._window = SlidingWindow(in_shape=in_shape, kernel=kernel,
                                     stride=kernel if stride is None else stride,
                                     padding=padding, simd=simd, bits=bits)
        k_h, k_w = self._window.kernel
        self._reducer = MaxPoolReducer(window_size=k_h * k_w, groups=in_shape[2] // simd,
                                       simd=simd, bits=bits)
        word = data.ArrayLayout(unsigned(bits), simd)
        super().__init__({"input": In(stream.Signature(word)),
                          "output": Out(stream.Signature(word))})

    window = property(lambda self: self._window)

    @property
    def out_shape(self):
        return self._window.out_hw + (self._window.in_shape[2],)

    @property
    def cycles_per_frame(self):
        return self._window.cycles_per_frame

    def estimate(self):
        """``logic_cells`` / ``flip_flops`` / ``memory_bits``: the window's, plus the reducer's
        running maxima (``groups`` words of ``simd`` codes, a comparator and a LUT per bit)."""
        stored = self._reducer.groups * self._reducer.simd * self._reducer.bits
        reducer = {"logic_cells": stored + 40, "flip_flops": stored + 15, "memory_bits": 0}
        return cost.add(self._window.estimate(), reducer)

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = self._window
        m.submodules.reducer = self._reducer
        wiring.connect(m, wiring.flipped(self.input), self._window.input)
        wiring.connect(m, self._window.output, self._reducer.input)
        wiring.connect(m, self._reducer.output, wiring.flipped(self.output))
        return m
