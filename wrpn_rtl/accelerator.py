# amaranth: UnusedElaboratable=no
# (the stages are always elaborated with the accelerator; the accelerator itself still warns.)
"""A whole quantized network as one streaming accelerator, with explicit per-layer folding.

Stages, in network order: each convolution becomes a :class:`~wrpn_rtl.conv.ConvLayer` (a max-
pool right after it is fused into it), a dense layer becomes a
:class:`~wrpn_rtl.mvu.MatrixVectorUnit` reading the map as it streams (the HWC stream order is
the dense layer's window order; with more than one neuron fold a
:class:`~wrpn_rtl.replay.VectorReplay` in front replays the map once per fold while taking the
next image's, so the dense layer never stalls the layer before it), and a max-pool with no
convolution before it becomes :func:`~wrpn_rtl.pool.max_pool` (a block pool when the stride is
the kernel). Where one stage's output folding differs from what the next takes, a
:class:`~wrpn_rtl.convert.WidthConverter` regroups the codes.

The input is the image, ``input_simd`` codes per word (HWC order). When the last layer gives
logits, a :class:`~wrpn_rtl.classify.ClassifierHead` ends the stream and the output is one word
per image: all logits (accumulator plus bias) and the index of the largest; otherwise the
output is the last layer's codes, ``PE`` per word.
"""
from dataclasses import dataclass

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import cost
from .classify import ClassifierHead
from .conv import ConvLayer
from .convert import WidthConverter
from .golden.checks import check_positive_int
from .golden.layers import QuantConv2d, QuantDense, QuantMaxPool
from .golden.network import QuantizedNetwork
from .mvu import MatrixVectorUnit
from .pipeline import chain_stages
from .pool import max_pool
from .replay import replay_for

__all__ = ["Folding", "Accelerator"]


@dataclass(frozen=True)
class Folding:
    """PE x SIMD of one Conv/Dense layer (and the window's input lanes for a convolution).

    ``window_simd``: codes per word into a convolution's sliding window (a divisor of
    ``C_in``); None means ``gcd(SIMD, C_in)``, what the compiler's search chooses (a width
    converter in front regroups the stage before's lanes when they differ). Dense layers
    ignore it.
    """

    pe: int
    simd: int
    window_simd: object = None


class Accelerator(wiring.Component):
    """Streaming accelerator for a golden :class:`QuantizedNetwork`.

    Parameters
    ----------
    network : QuantizedNetwork
    foldings : sequence of Folding
        One per Conv/Dense layer, in order.
    input_simd : int
        Image codes per input word; must divide the image's channels.

    Members
    -------
    input : In(stream.Signature(ArrayLayout(unsigned(input_bits), input_simd)))
        The image, ``H * W * C / input_simd`` words.
    output : Out(stream.Signature(...))
        A logits network: ``StructLayout({"logits": ArrayLayout(<logit shape>, classes),
        "label": unsigned(...)})``, one word per image. Otherwise the last layer's codes,
        ``ArrayLayout(unsigned(out_bits), last PE)``.

    Raises
    ------
    TypeError, ValueError
        A folding count or value that does not fit the network, naming the layer.
    """

    def __init__(self, network, *, foldings, input_simd=1):
        if not isinstance(network, QuantizedNetwork):
            raise TypeError(f"network must be a golden QuantizedNetwork, not {network!r}")
        foldings = list(foldings)
        linear = [l for l in network.layers if isinstance(l, QuantConv2d)]
        if len(foldings) != len(linear):
            raise ValueError(f"foldings must give one Folding per Conv/Dense layer "
                             f"({len(linear)}), not {len(foldings)}")
        input_simd = check_positive_int("input_simd", input_simd)
        if network.input_shape[2] % input_simd:
            raise ValueError(f"input_simd must divide the image channels "
                             f"{network.input_shape[2]}, not {input_simd}")
        self._network = network
        self._input_simd = input_simd
        self._stages = []       # (name, component)
        lanes, bits = input_simd, network.input_bits
        layers, folds = list(network.layers), iter(foldings)
        index = 0
        while index < len(layers):
            layer = layers[index]
            if isinstance(layer, QuantDense):
                fold = next(folds)
                self._convert(layer.name, lanes, fold.simd, bits)
                mvu = MatrixVectorUnit(layer, pe=fold.pe, simd=fold.simd, replayed=True)
                replay = replay_for(mvu)
                if replay is not None:
                    self._stages.append((f"{layer.name}_replay", replay))
                self._stages.append((layer.name, mvu))
                lanes, bits = fold.pe, layer.out_bits
            elif isinstance(layer, QuantConv2d):
                fold = next(folds)
                pool = None
                if index + 1 < len(layers) and isinstance(layers[index + 1], QuantMaxPool):
                    pool = layers[index + 1]
                    index += 1
                conv = ConvLayer(layer, pe=fold.pe, simd=fold.simd,
                                 window_simd=fold.window_simd, pool=pool)
                self._convert(layer.name, lanes, conv.input.payload.shape().length, bits)
                self._stages.append((layer.name, conv))
                lanes, bits = fold.pe, layer.out_bits
            else:
                self._stages.append((layer.name, max_pool(
                    in_shape=layer.in_shape, kernel=layer.kernel, stride=layer.stride,
                    padding=layer.padding, simd=lanes, bits=bits)))
            index += 1
        last_layer = layers[-1]
        if isinstance(last_layer, QuantConv2d) and last_layer.is_logits:
            mvu = self._stages[-1][1]
            self._stages.append(("classify", ClassifierHead(
                classes=last_layer.out_channels * last_layer.out_shape[0]
                * last_layer.out_shape[1], lanes=lanes,
                shape=mvu.output.payload.shape().elem_shape)))
        first, last = self._stages[0][1], self._stages[-1][1]
        super().__init__({"input": In(first.input.signature.flip()),
                          "output": Out(last.output.signature)})

    def _convert(self, name, lanes, wanted, bits):
        if lanes != wanted:
            self._stages.append((f"{name}_convert",
                                 WidthConverter(in_lanes=lanes, out_lanes=wanted, bits=bits)))

    network = property(lambda self: self._network)
    input_simd = property(lambda self: self._input_simd)

    @property
    def classifies(self):
        """True when the output is the classifier's word (logits and label) per image."""
        return self._stages[-1][0] == "classify"

    @property
    def stages(self):
        """``[(name, component)]`` in stream order."""
        return list(self._stages)

    @property
    def cycles_per_image(self):
        """Expected steady-state cycles per image with no stall: the slowest stage (the image's
        own input words included)."""
        height, width, channels = self._network.input_shape
        cycles = [height * width * channels // self._input_simd]
        for _, stage in self._stages:
            if isinstance(stage, MatrixVectorUnit):
                cycles.append(stage.cycles_per_vector)
            elif hasattr(stage, "cycles_per_frame"):
                cycles.append(stage.cycles_per_frame)
        return max(cycles)

    def estimate(self):
        """``logic_cells`` / ``flip_flops`` / ``memory_bits``: every stage's estimate added up,
        and ``device_logic_cells``, the iCE40 logic cells they are expected to take."""
        total = cost.add(*(stage.estimate() for _, stage in self._stages))
        total["device_logic_cells"] = cost.device_logic_cells(total)
        return total

    def elaborate(self, platform):
        m = Module()
        chain_stages(m, self, self._stages)
        return m
