"""The stage plan: a golden network and its foldings -> the stages of the stream, in order.

The one place that decides how golden layers become stream stages, read by the accelerator
(which builds a component per stage), the folding search (which prices the layer groups), the
manifest and the simulation's localizer:

* a max-pool right after a convolution is fused into that convolution's stage;
* every other max-pool (before the first Conv/Dense layer, after a dense layer, a second pool
  in a row) is a stage of its own and reads the lanes of the stage before it;
* a dense layer with more than one neuron fold reads a vector replay in front of it;
* a width converter regroups the codes wherever a stage's output lanes differ from what the
  next stage takes;
* a network that ends in logits ends in the classifier head.

Names: a stage computing a golden layer carries that layer's name; a converter or a replay in
front of layer ``L`` is ``L_convert`` / ``L_replay``; the head is ``classify``.
"""
import dataclasses
from dataclasses import dataclass
import enum
import math

from wrpn_rtl.golden.checks import check_positive_int
from wrpn_rtl.golden.layers import QuantDense, QuantLinear
from wrpn_rtl.golden.network import QuantizedNetwork
from wrpn_rtl.hardware.conv import conv_input_lanes

__all__ = ["Folding", "StageKind", "Stage", "LayerGroup", "group_layers", "plan_stages"]


@dataclass(frozen=True)
class Folding:
    """PE x SIMD of one Conv/Dense layer (and the window's input lanes for a convolution).

    ``window_simd``: codes per word out of a convolution's window: a divisor of ``C_in``
    (the line buffer; its input words are as wide) or the whole window ``K_h * K_w * C_in``
    (a register window, whole pixels in); None means ``gcd(SIMD, C_in)``. A width converter
    in front regroups the stage before's lanes when they differ. Dense layers ignore it.

    ``tables``: where the MVU's per-fold table of constants (thresholds, affine constants or
    logit biases) goes when it has more than one row: "block" (block RAM) or "logic"; None
    means the default rule (see :class:`~wrpn_rtl.hardware.mvu.MatrixVectorGeometry`).

    ``replay``: where the layer's vector replay keeps its two vectors, where it has one (a
    dense layer or a gathered convolution window with more than one neuron fold): "block"
    or "logic"; None means the default rule (see
    :class:`~wrpn_rtl.hardware.replay.VectorReplayGeometry`).

    ``lut_ram``: the device has LUT RAM (ECP5), so the layer's written memories of 2 to 64
    words go to LUT RAM and its ROMs of up to 128 words to LUTs, never block RAM
    (:func:`~wrpn_rtl.hardware.memories.memory_style`); the folding search sets it for such
    a device. Its window, replay, MVU and fused pool memories follow it; a stand-alone
    pool's do not.

    ``dsp_pairs``: lanes ``0 .. 2*dsp_pairs - 1`` of every PE multiply in hard multipliers
    (iCE40 SB_MAC16), two lanes per multiplier, so the layer takes ``PE * dsp_pairs`` DSP
    blocks (:class:`~wrpn_rtl.hardware.lanes.MacLanes`); 0: every lane in logic.

    ``dsp_requantizer``: the layer's requantizer is the affine form with its multiplier in a
    DSP block, one per PE (:class:`~wrpn_rtl.hardware.mvu.MatrixVectorGeometry`).

    ``queue``: "block" puts the MVU's output queue in a block RAM
    (:class:`~wrpn_rtl.hardware.stream_fifo.BlockQueue`); None: flip-flops. The folding
    search hands spare block RAMs out to queues on a device without LUT RAM (iCE40).

    ``pe_per_requantizer``: PEs that share each requantizer in turn, one sum per cycle
    (:class:`~wrpn_rtl.hardware.mvu.MatrixVectorGeometry`): ``PE / pe_per_requantizer``
    requantizers (and DSP blocks with ``dsp_requantizer``); 1: one per PE.
    """

    pe: int
    simd: int
    window_simd: object = None
    tables: object = None
    replay: object = None
    lut_ram: bool = False
    dsp_pairs: int = 0
    dsp_requantizer: bool = False
    queue: object = None
    pe_per_requantizer: int = 1

    @property
    def requantizers(self):
        """The layer's requantizers: ``PE / pe_per_requantizer``."""
        return self.pe // self.pe_per_requantizer

    @property
    def dsp_blocks(self):
        """DSP blocks the layer takes: ``PE`` per DSP pair, and one per requantizer with
        ``dsp_requantizer``."""
        return self.pe * self.dsp_pairs + self.requantizers * int(self.dsp_requantizer is True)

    def describe(self):
        """``"PE 4 x SIMD 8"``, with ``" (table in block RAM)"`` or ``" (table in logic)"``
        where ``tables`` is set, likewise ``" (replay in block RAM)"`` for ``replay``, and
        ``" (LUT RAM)"`` with ``lut_ram``, ``" (4 lanes per PE in DSP blocks)"`` with
        ``dsp_pairs``, ``" (requantizer multiplier in DSP blocks)"`` with
        ``dsp_requantizer``, ``" (queue in block RAM)"`` with ``queue`` and
        ``" (a requantizer per 4 PEs)"`` with ``pe_per_requantizer``."""
        where = {"block": " (table in block RAM)", "logic": " (table in logic)"}
        replay = {"block": " (replay in block RAM)", "logic": " (replay in logic)"}
        return (f"PE {self.pe} x SIMD {self.simd}" + where.get(self.tables, "")
                + replay.get(self.replay, "") + (" (LUT RAM)" if self.lut_ram else "")
                + (f" ({2 * self.dsp_pairs} lanes per PE in DSP blocks)" if self.dsp_pairs
                   else "")
                + (" (requantizer multiplier in DSP blocks)" if self.dsp_requantizer else "")
                + (" (queue in block RAM)" if self.queue == "block" else "")
                + (f" (a requantizer per {self.pe_per_requantizer} PEs)"
                   if self.pe_per_requantizer > 1 else ""))


class StageKind(enum.Enum):
    """What a stage does."""

    CONVERT = "width converter"
    CONV = "convolution"        # window, converter, replay, MVU and an optional fused pool
    REPLAY = "vector replay"
    DENSE = "dense"
    POOL = "max-pool"
    CLASSIFY = "classifier head"


@dataclass(frozen=True)
class Stage:
    """One stage of the stream.

    Members
    -------
    name : str
    kind : StageKind
    layer : golden layer or None
        The Conv/Dense layer (CONV, DENSE, the REPLAY in front of a dense layer, and the
        logits layer for CLASSIFY) or the max-pool (POOL); None for CONVERT.
    pool : QuantMaxPool or None
        The max-pool fused into a CONV stage.
    folding : Folding or None
        CONV and DENSE stages (and the REPLAY in front of a dense layer); a CONV stage's
        ``window_simd`` is resolved (never None).
    in_lanes, out_lanes : int
        Codes per input / output word.
    bits : int
        Width of an input code.
    golden_index : int or None
        Index in ``network.layers`` of the golden layer whose output this stage's output
        stream carries (a fused pool's for a CONV stage with a pool); None for converters,
        replays and the head.
    """

    name: str
    kind: StageKind
    layer: object
    pool: object
    folding: object
    in_lanes: int
    out_lanes: int
    bits: int
    golden_index: object


@dataclass(frozen=True)
class LayerGroup:
    """A Conv/Dense layer with the pools that go with it.

    ``fused_pool``: the max-pool fused into a convolution's stage (or None); ``trailing_pools``:
    the stand-alone max-pools after it, which read its ``PE`` lanes; ``index``: the layer's
    index in the network.
    """

    layer: object
    fused_pool: object
    trailing_pools: tuple
    index: int


def group_layers(network):
    """The network cut at its Conv/Dense layers (the pool-fusion rule, stated once).

    Returns
    -------
    (leading_pools, [LayerGroup])
        ``leading_pools``: ``[(index, QuantMaxPool)]`` before the first Conv/Dense layer (they
        read the image stream).
    """
    leading, groups = [], []
    for index, layer in enumerate(network.layers):
        if isinstance(layer, QuantLinear):
            groups.append(LayerGroup(layer, None, (), index))
        elif not groups:
            leading.append((index, layer))
        else:
            group = groups[-1]
            fusable = (group.fused_pool is None and not group.trailing_pools
                       and not isinstance(group.layer, QuantDense))
            groups[-1] = (LayerGroup(group.layer, layer, (), group.index) if fusable else
                          LayerGroup(group.layer, group.fused_pool,
                                     group.trailing_pools + ((index, layer),), group.index))
    return leading, groups


def plan_stages(network, foldings, *, input_simd=1):
    """The stages of the accelerator for ``network`` at ``foldings``, in stream order.

    Parameters
    ----------
    network : QuantizedNetwork
    foldings : sequence of Folding
        One per Conv/Dense layer, in order.
    input_simd : int
        Image codes per input word; must divide the image's channels.

    Returns
    -------
    list of Stage

    Raises
    ------
    TypeError, ValueError
        A network that is not a golden one, a folding count that does not match, or an
        ``input_simd`` that does not divide the image channels.
    """
    if not isinstance(network, QuantizedNetwork):
        raise TypeError(f"network must be a golden QuantizedNetwork, not {network!r}")
    foldings = list(foldings)
    leading, groups = group_layers(network)
    if len(foldings) != len(groups):
        raise ValueError(f"foldings must give one Folding per Conv/Dense layer "
                         f"({len(groups)}), not {len(foldings)}")
    input_simd = check_positive_int("input_simd", input_simd)
    if network.input_shape[2] % input_simd:
        raise ValueError(f"input_simd must divide the image channels "
                         f"{network.input_shape[2]}, not {input_simd}")
    stages = []
    lanes, bits = input_simd, network.input_bits

    def pools(entries):
        for index, pool in entries:
            stages.append(Stage(pool.name, StageKind.POOL, pool, None, None, lanes, lanes, bits,
                                index))

    def convert(name, wanted):
        if lanes != wanted:
            stages.append(Stage(f"{name}_convert", StageKind.CONVERT, None, None, None, lanes,
                                wanted, bits, None))

    pools(leading)
    for group, fold in zip(groups, foldings):
        layer = group.layer
        if isinstance(layer, QuantDense):
            convert(layer.name, fold.simd)
            if layer.out_channels // fold.pe > 1:
                stages.append(Stage(f"{layer.name}_replay", StageKind.REPLAY, layer, None, fold,
                                    fold.simd, fold.simd, bits, None))
            stages.append(Stage(layer.name, StageKind.DENSE, layer, None, fold, fold.simd,
                                fold.pe, bits, group.index))
        else:
            window_simd = (fold.window_simd if fold.window_simd is not None
                           else math.gcd(fold.simd, layer.in_channels))
            fold = dataclasses.replace(fold, window_simd=window_simd)
            in_lanes = conv_input_lanes(layer, window_simd)
            convert(layer.name, in_lanes)
            golden_index = group.index + (group.fused_pool is not None)
            stages.append(Stage(layer.name, StageKind.CONV, layer, group.fused_pool, fold,
                                in_lanes, fold.pe, bits, golden_index))
        lanes, bits = fold.pe, layer.out_bits
        pools(group.trailing_pools)
    last = network.layers[-1]
    if isinstance(last, QuantLinear) and last.is_logits:
        stages.append(Stage("classify", StageKind.CLASSIFY, last, None, None, lanes, 1, bits,
                            None))
    return stages
