"""A whole quantized network as one streaming accelerator, with explicit per-layer folding.

The stages come from the compiler's stage plan (:func:`~wrpn_rtl.compiler.stages.plan_stages`,
which states the fusion and naming rules once); this component builds one part per stage and
chains them: a :class:`~wrpn_rtl.hardware.conv.ConvLayer` per convolution (with its fused
max-pool), a :class:`~wrpn_rtl.hardware.mvu.MatrixVectorUnit` per dense layer reading the map as
it streams (the HWC stream order is the dense layer's window order), a
:class:`~wrpn_rtl.hardware.replay.VectorReplay` in front of a dense layer with several neuron
folds (so it never stalls the layer before it), :func:`~wrpn_rtl.hardware.pool.max_pool` for a
stand-alone max-pool, a :class:`~wrpn_rtl.hardware.width_converter.WidthConverter` where lanes
change, and the :class:`~wrpn_rtl.hardware.classifier.ClassifierHead` after logits.

The input is the image, ``input_simd`` codes per word (HWC order). When the last layer gives
logits, the output is one word per image: all logits (accumulator plus bias) and the index of
the largest; otherwise the last layer's codes, ``PE`` per word.
"""
from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wrpn_rtl.compiler import cost
from wrpn_rtl.compiler.stages import StageKind, plan_stages
from wrpn_rtl.hardware.classifier import ClassifierGeometry, ClassifierHead
from wrpn_rtl.hardware.conv import ConvGeometry, ConvLayer
from wrpn_rtl.hardware.mvu import MatrixVectorGeometry, MatrixVectorUnit
from wrpn_rtl.hardware.pool import max_pool, max_pool_geometry
from wrpn_rtl.hardware.replay import VectorReplay, VectorReplayGeometry, check_buffer_style
from wrpn_rtl.hardware.streams import chain_stages
from wrpn_rtl.hardware.width_converter import WidthConverter, WidthConverterGeometry

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """Streaming accelerator for a golden :class:`QuantizedNetwork`.

    Parameters
    ----------
    network : QuantizedNetwork
    foldings : sequence of Folding
        One per Conv/Dense layer, in order.
    input_simd : int
        Image codes per input word; must divide the image's channels.
    src_loc_at : int
        Frames above the caller counted as where the accelerator was created (Amaranth's
        unused-elaboratable report and its linter pragmas).

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

    def __init__(self, network, *, foldings, input_simd=1, src_loc_at=0):
        try:
            self._plan = plan_stages(network, foldings, input_simd=input_simd)
            self._models = []
            for stage in self._plan:
                try:
                    self._models.append(_geometry(stage))
                except (TypeError, ValueError) as error:     # name the layer
                    raise type(error)(f"{stage.name}: {error}") from None
        except (TypeError, ValueError):
            self._MustUse__silence = True    # never built, so not an unused elaboratable
            raise
        self._network, self._input_simd = network, int(input_simd)
        self._components = None
        super().__init__({"input": In(stream.Signature(self._models[0].input_layout)),
                          "output": Out(stream.Signature(self._models[-1].output_layout))},
                         src_loc_at=src_loc_at)

    network = property(lambda self: self._network)
    input_simd = property(lambda self: self._input_simd)

    @property
    def classifies(self):
        """True when the output is the classifier's word (logits and label) per image."""
        return self._plan[-1].kind is StageKind.CLASSIFY

    @property
    def plan(self):
        """The :class:`~wrpn_rtl.compiler.stages.Stage` list the accelerator was built from."""
        return list(self._plan)

    @property
    def stage_models(self):
        """``[(name, geometry)]`` in stream order: each stage's parameters, cycles and estimate
        without hardware (e.g. :class:`~wrpn_rtl.hardware.conv.ConvGeometry`)."""
        return [(stage.name, model) for stage, model in zip(self._plan, self._models)]

    @property
    def stages(self):
        """``[(name, component)]`` in stream order, one per stage of :attr:`plan`: built on first
        use (by elaboration, or to watch a stage's stream in simulation) and the same objects
        after that."""
        if self._components is None:
            self._components = [(stage.name, _build(stage)) for stage in self._plan]
        return list(self._components)

    def stage_cycles(self):
        """Expected steady-state cycles per image of each stage with no stall, in stream order
        (None for a converter, which keeps pace with its neighbours; a dense layer's vector is
        the whole image)."""
        cycles = []
        for stage, component in zip(self._plan, self._models):
            if stage.kind is StageKind.DENSE:
                cycles.append(component.cycles_per_vector)
            elif stage.kind is StageKind.CONVERT:
                cycles.append(None)
            else:
                cycles.append(component.cycles_per_frame)
        return cycles

    @property
    def cycles_per_image(self):
        """Expected steady-state cycles per image with no stall: the slowest stage, the image's
        own input words included."""
        height, width, channels = self._network.input_shape
        return max([height * width * channels // self._input_simd]
                   + [c for c in self.stage_cycles() if c is not None])

    def estimate(self, family="ice40"):
        """``logic_cells`` / ``flip_flops`` / ``memory_bits``: every stage's estimate added up,
        and ``device_logic_cells``, the logic they are expected to take on a device ``family``
        (:func:`~wrpn_rtl.compiler.cost.device_logic_cells`: iCE40 logic cells, ECP5 LUT4s)."""
        total = cost.add(*(model.estimate() for model in self._models))
        total["device_logic_cells"] = cost.device_logic_cells(total, family)
        total["family"] = family
        return total

    def elaborate(self, platform):
        m = Module()
        chain_stages(m, self, self.stages)
        return m


def _stage_parameters(stage):
    """``(args, kwargs)`` of a planned stage's geometry and component (the same for both)."""
    kind, fold = stage.kind, stage.folding
    if kind is StageKind.CONVERT:
        return (), {"in_lanes": stage.in_lanes, "out_lanes": stage.out_lanes, "bits": stage.bits}
    if kind is StageKind.CONV:
        return (stage.layer,), {"pe": fold.pe, "simd": fold.simd, "window_simd": fold.window_simd,
                                "pool": stage.pool, "tables": fold.tables,
                                "replay": fold.replay, "lut_ram": fold.lut_ram,
                                "dsp_pairs": fold.dsp_pairs,
                                "dsp_requantizer": fold.dsp_requantizer, "queue": fold.queue,
                                "pe_per_requantizer": fold.pe_per_requantizer}
    if kind is StageKind.REPLAY:
        return (), {"words": stage.layer.window_size // fold.simd,
                    "times": stage.layer.out_channels // fold.pe,
                    "shape": data.ArrayLayout(unsigned(stage.bits), fold.simd),
                    "style": fold.replay, "lut_ram": fold.lut_ram}
    if kind is StageKind.DENSE:
        check_buffer_style("replay", fold.replay)    # its replay is a stage of its own
        return (stage.layer,), {"pe": fold.pe, "simd": fold.simd, "replayed": True,
                                "tables": fold.tables, "lut_ram": fold.lut_ram,
                                "dsp_pairs": fold.dsp_pairs,
                                "dsp_requantizer": fold.dsp_requantizer, "queue": fold.queue,
                                "pe_per_requantizer": fold.pe_per_requantizer}
    if kind is StageKind.POOL:
        pool = stage.layer
        return (), {"in_shape": pool.in_shape, "kernel": pool.kernel, "stride": pool.stride,
                    "padding": pool.padding, "simd": stage.in_lanes, "bits": stage.bits}
    layer = stage.layer                      # CLASSIFY: the logits layer
    width, is_signed = layer.acc_shape       # a logit: the accumulator plus bias
    return (), {"classes": layer.out_channels * layer.out_shape[0] * layer.out_shape[1],
                "lanes": stage.in_lanes,
                "shape": signed(width) if is_signed else unsigned(width)}


#: Per stage kind: (geometry, component) - classes, or the max-pool factories.
_KINDS = {
    StageKind.CONVERT: (WidthConverterGeometry, WidthConverter),
    StageKind.CONV: (ConvGeometry, ConvLayer),
    StageKind.REPLAY: (VectorReplayGeometry, VectorReplay),
    StageKind.DENSE: (MatrixVectorGeometry, MatrixVectorUnit),
    StageKind.POOL: (max_pool_geometry, max_pool),
    StageKind.CLASSIFY: (ClassifierGeometry, ClassifierHead),
}


def _geometry(stage):
    """The geometry of one planned stage: parameters, cycles and estimate, no hardware."""
    args, kwargs = _stage_parameters(stage)
    return _KINDS[stage.kind][0](*args, **kwargs)


def _build(stage):
    """The component of one planned stage."""
    args, kwargs = _stage_parameters(stage)
    return _KINDS[stage.kind][1](*args, **kwargs)
