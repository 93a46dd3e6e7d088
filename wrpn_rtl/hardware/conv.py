"""A streaming convolution layer: window -> (width converter) -> (replay) -> MVU -> (max-pool).

The input is the layer's folded map (``window_simd`` codes per word, or whole pixels for a
register window), the output the next map folded ``pe`` codes per word (after the optional
pool). The window emits ``window_simd`` lanes: a divisor of ``C_in`` from the line buffer
(:class:`~wrpn_rtl.hardware.window.SlidingWindow`), or the whole window
``K_h * K_w * C_in`` from a shift-register window
(:class:`~wrpn_rtl.hardware.register_window.RegisterWindow`, for small maps: a 1-channel image
then gives a 3x3 window per cycle instead of one pixel); the MVU takes ``simd`` lanes (a divisor of
``K_h * K_w * C_in``); a :class:`~wrpn_rtl.hardware.width_converter.WidthConverter` refolds between them when
they differ - e.g. a 1-channel image read one pixel per word while the MVU takes a whole 3x3
window per cycle. With more than one neuron fold the MVU reads each window ``NF`` times: a
window as wide as the MVU's words emits it ``NF`` times from its line buffer (no buffer of
its own is needed); a narrower one feeds a :class:`~wrpn_rtl.hardware.replay.VectorReplay`,
which replays each window while the window generator already produces the next one, and
gathers the window's words into its own buffer words where they divide the MVU's (no width
converter then). Either
way the layer runs at the MVU's ``NF * SF`` cycles per output pixel.
"""
import math

from amaranth.hdl import Module
from amaranth.lib import wiring

from wrpn_rtl.compiler import cost
from wrpn_rtl.golden.layers import QuantConv2d, QuantMaxPool
from wrpn_rtl.hardware.mvu import MatrixVectorGeometry, MatrixVectorUnit
from wrpn_rtl.hardware.pool import max_pool, max_pool_geometry
from wrpn_rtl.hardware.register_window import RegisterWindow, RegisterWindowGeometry
from wrpn_rtl.hardware.replay import check_buffer_style, replay_for
from wrpn_rtl.hardware.stream_fifo import StreamFIFOGeometry
from wrpn_rtl.hardware.streams import chain_stages, stream_members
from wrpn_rtl.hardware.width_converter import WidthConverter, WidthConverterGeometry
from wrpn_rtl.hardware.window import SlidingWindow, SlidingWindowGeometry, check_simd

__all__ = ["ConvGeometry", "ConvLayer", "conv_input_lanes", "is_register_window"]


def is_register_window(layer, window_simd):
    """Whether ``window_simd`` asks for a register window: the whole window per word, where
    that is more than the line buffer's words (divisors of ``C_in``) can hold."""
    return window_simd == layer.window_size and layer.in_channels % window_simd != 0


def conv_input_lanes(layer, window_simd):
    """Codes per input word of a convolution whose window emits ``window_simd`` codes:
    ``window_simd`` for the line buffer, one whole pixel (``C_in``) for a register window."""
    return layer.in_channels if is_register_window(layer, window_simd) else window_simd


class ConvGeometry:
    """A convolution layer's parts, without building hardware: the geometry of its window,
    converter, replay, MVU and pool, its cycles and its estimate.

    Parameters
    ----------
    layer : wrpn_rtl.golden.QuantConv2d
        Requantized output (a logits convolution is allowed when there is no pool).
    pe, simd : int
        The MVU folding (see :class:`~wrpn_rtl.hardware.mvu.MatrixVectorUnit`).
    window_simd : int or None
        Codes per window word: a divisor of ``C_in`` (the line buffer, as many codes per input
        word) or ``K_h * K_w * C_in`` (a register window: whole windows out, whole pixels in).
        Defaults to ``gcd(simd, C_in)``.
    pool : wrpn_rtl.golden.QuantMaxPool or None
        A max-pool on this layer's output (its input shape must be the layer's output).
    tables : None, "logic" or "block"
        Where the MVU's per-fold table of constants goes (see
        :class:`~wrpn_rtl.hardware.mvu.MatrixVectorGeometry`).
    replay : None, "logic" or "block"
        Where the vector replay's buffer goes, where the layer has one (see
        :class:`~wrpn_rtl.hardware.replay.VectorReplayGeometry`).
    lut_ram : bool
        The device has LUT RAM (ECP5): the line buffer, the replay's buffer, the MVU's
        memories and the pool's go to LUT RAM or logic where they are shallow
        (:func:`~wrpn_rtl.hardware.memories.memory_style`). Default False.
    dsp_pairs, dsp_requantizer : int, bool
        Lane pairs per PE the MVU multiplies in hard multipliers, and whether its affine
        requantizer multiplies in one (see :class:`~wrpn_rtl.hardware.mvu.
        MatrixVectorGeometry`). Default 0, False.
    queue : None or "block"
        Where the MVU's output queue goes (see :class:`~wrpn_rtl.hardware.mvu.
        MatrixVectorGeometry`). Default None.
    pe_per_requantizer : int
        PEs that share each of the MVU's requantizers, in turn (see
        :class:`~wrpn_rtl.hardware.mvu.MatrixVectorGeometry`). Default 1.

    Members
    -------
    window : SlidingWindowGeometry
    mvu : MatrixVectorGeometry
    parts : list of (name, geometry)
        The parts that exist, in stream order: window, window_queue (see
        :meth:`window_queue_depth`), converter, replay, mvu, pool.
    """

    def __init__(self, layer, *, pe, simd, window_simd=None, pool=None, tables=None,
                 replay=None, lut_ram=False, dsp_pairs=0, dsp_requantizer=False, queue=None,
                 pe_per_requantizer=1):
        if not isinstance(layer, QuantConv2d):
            raise TypeError(f"layer must be a golden QuantConv2d, not {layer!r}")
        if window_simd is None:
            window_simd = math.gcd(simd, layer.in_channels) if isinstance(simd, int) else simd
        register = is_register_window(layer, window_simd)
        if not register:
            try:
                check_simd(window_simd, layer.in_channels, name="window_simd")
            except ValueError:
                raise ValueError(f"window_simd must be a positive divisor of the channels "
                                 f"{layer.in_channels} or the window size {layer.window_size}, "
                                 f"not {window_simd!r}") from None
        if pool is not None:
            if not isinstance(pool, QuantMaxPool):
                raise TypeError(f"pool must be a golden QuantMaxPool or None, not {pool!r}")
            if pool.in_shape != layer.out_shape:
                raise ValueError(f"pool input shape must be the layer's output "
                                 f"{layer.out_shape}, not {pool.in_shape}")
            if layer.is_logits:
                raise ValueError("pool must be None after a logits layer")
        check_buffer_style("replay", replay)
        self._mvu = MatrixVectorGeometry(layer, pe=pe, simd=simd, replayed=True, tables=tables,
                                         lut_ram=lut_ram, dsp_pairs=dsp_pairs,
                                         dsp_requantizer=dsp_requantizer, queue=queue,
                                         pe_per_requantizer=pe_per_requantizer)
        # A window read in MVU-wide words repeats itself once per neuron fold from its line
        # buffer; a narrower one is gathered first, and the gathered vector is replayed.
        self._window_repeats = self._mvu.neuron_fold if window_simd == self._mvu.simd else 1
        # Behind a narrower window the vector replay gathers the window's words itself (each
        # into its slice of the buffer word) where they divide the MVU's; a width converter
        # refolds otherwise (and where nothing is replayed).
        slices = (self._mvu.simd // window_simd if self._mvu.simd % window_simd == 0 else 1)
        replay_part = (replay_for(self._mvu, style=replay, slices=slices)
                       if self._window_repeats == 1 else None)
        # A line buffer feeding such a replay (whose `ready` is a register) gives its read
        # port as its output, no output queue.
        held = replay_part is not None and slices > 1
        self._window_parameters = dict(
            in_shape=layer.in_shape, kernel=layer.kernel, stride=layer.stride,
            padding=layer.padding, bits=layer.in_bits, repeats=self._window_repeats,
            **({} if register else {"simd": window_simd, "lut_ram": bool(lut_ram),
                                    "held_output": held}))
        self._window = (RegisterWindowGeometry if register else SlidingWindowGeometry)(
            **self._window_parameters)
        converter = (WidthConverterGeometry(in_lanes=window_simd, out_lanes=simd,
                                            bits=layer.in_bits)
                     if window_simd != simd and not held else None)
        queue_depth = self.window_queue_depth(self._window, self._window_repeats,
                                              self._mvu.cycles_per_vector)
        window_queue = (StreamFIFOGeometry(self._window.output_layout, depth=queue_depth)
                        if queue_depth else None)
        # The MVU starts an output word at most once per synapse fold.
        self._pool_parameters = (
            dict(in_shape=pool.in_shape, kernel=pool.kernel, stride=pool.stride,
                 padding=pool.padding, simd=self._mvu.pe, bits=layer.out_bits,
                 input_interval=self._mvu.synapse_fold, lut_ram=bool(lut_ram))
            if pool is not None else None)
        self._pool = (max_pool_geometry(**self._pool_parameters)
                      if pool is not None else None)
        self._parts = [(name, part) for name, part in [
            ("window", self._window), ("window_queue", window_queue), ("converter", converter),
            ("replay", replay_part),
            ("mvu", self._mvu), ("pool", self._pool)]
            if part is not None]
        self._layer, self._golden_pool = layer, pool
        self._pe, self._simd, self._window_simd = self._mvu.pe, self._mvu.simd, window_simd
        self._register_window = register

    @staticmethod
    def window_queue_depth(window, repeats, cycles_per_window):
        """Windows queued after a register window whose windows are scattered into narrower
        words (``repeats`` 1): the MVU spends ``cycles_per_window`` on each, and the window
        must not leave it idle while it walks a long run of positions without a window (the
        padding and rows between frames: the longest run of ``g`` positions takes ``g``
        cycles). ``ceil(g / cycles_per_window)`` queued windows cover it, so the layer runs at
        the slower of the walk and the MVU (one fewer falls short on some geometries: the
        register-window sweep in ``tests/rtl/test_conv.py``). 0 (no queue) when the window
        repeats its own output or no run is longer than one window's work."""
        if not isinstance(window, RegisterWindowGeometry) or repeats != 1:
            return 0
        longest = max(window.gaps())
        return 0 if longest <= cycles_per_window else -(-longest // cycles_per_window)

    layer = property(lambda self: self._layer)
    mvu = property(lambda self: self._mvu)
    window = property(lambda self: self._window)
    parts = property(lambda self: list(self._parts))
    input_layout = property(lambda self: self._window.input_layout)
    output_layout = property(lambda self: self._mvu.output_layout)

    @property
    def out_shape(self):
        return self._golden_pool.out_shape if self._golden_pool else self._layer.out_shape

    @property
    def cycles_per_frame(self):
        """Expected steady-state cycles per frame with no stall: the slowest stage."""
        out_h, out_w, _ = self._layer.out_shape
        stages = [self._window.cycles_per_frame, out_h * out_w * self._mvu.cycles_per_vector]
        if self._pool is not None:
            stages.append(self._pool.cycles_per_frame)
        return max(stages)

    def estimate(self):
        """``logic_cells`` / ``flip_flops`` / ``memory_bits``: the window, converter, replay, MVU
        and pool estimates added up."""
        return cost.add(*(part.estimate() for _, part in self._parts))



class ConvLayer(ConvGeometry, wiring.Component):
    """One golden convolution (and optionally the max-pool after it) as a streaming unit.

    Parameters and errors: see :class:`ConvGeometry`, whose members it has too.

    Members
    -------
    input : In(stream.Signature(ArrayLayout(unsigned(in_bits), window_simd)))
    output : Out(stream.Signature(ArrayLayout(<MVU output lane>, pe)))
    """

    def __init__(self, layer, *, pe, simd, window_simd=None, pool=None, tables=None,
                 replay=None, lut_ram=False, dsp_pairs=0, dsp_requantizer=False, queue=None,
                 pe_per_requantizer=1):
        ConvGeometry.__init__(self, layer, pe=pe, simd=simd, window_simd=window_simd, pool=pool,
                              tables=tables, replay=replay, lut_ram=lut_ram,
                              dsp_pairs=dsp_pairs, dsp_requantizer=dsp_requantizer,
                              queue=queue, pe_per_requantizer=pe_per_requantizer)
        wiring.Component.__init__(self, stream_members(self))

    def elaborate(self, platform):
        m = Module()
        layer = self._layer
        window_class = RegisterWindow if self._register_window else SlidingWindow
        built = {
            "window": lambda: window_class(**self._window_parameters),
            "window_queue": lambda: dict(self._parts)["window_queue"].build(),
            "converter": lambda: WidthConverter(in_lanes=self._window_simd,
                                                out_lanes=self._simd, bits=layer.in_bits),
            "replay": lambda: dict(self._parts)["replay"].build(),
            "mvu": lambda: MatrixVectorUnit(layer, pe=self._pe, simd=self._simd,
                                            replayed=True, tables=self._mvu.tables,
                                            lut_ram=self._mvu.lut_ram,
                                            dsp_pairs=self._mvu.dsp_pairs,
                                            dsp_requantizer=self._mvu.dsp_requantizer,
                                            queue=self._mvu.queue,
                                            pe_per_requantizer=self._mvu.pe_per_requantizer),
            "pool": lambda: max_pool(**self._pool_parameters),
        }
        chain_stages(m, self, [(name, built[name]()) for name, _ in self._parts])
        return m
