"""An imported network against its graph executed by ``qonnx``, tensor by tensor.

The golden model decides every rounding in exact arithmetic; ``qonnx`` executes the graph in
float32 (as the training framework did). The two can only disagree where a value lies within
float32 error of a rounding boundary (an exact tie of the golden rule). So each layer is
checked *on its own*: the golden layer is fed the codes ``qonnx`` computed for its input, and
its output codes must equal the codes ``qonnx`` computed for its output, except where the
golden pre-activation lies within :data:`TIE_TOLERANCE` (relative) of a rounding boundary -
each such element is listed with its distance, so a report shows it is that and only that.
The labels the graph computes (argmax of its output) must equal the golden last layer's on the
graph's own input codes; end to end (the golden network on its own codes all the way), a label
may differ only for an input that met a tie somewhere.
"""
from dataclasses import dataclass, field

import numpy as np

from wrpn_rtl.golden import QuantLinear, execute

from . import InterchangeError
from .qonnx_import import graph_to_golden

__all__ = ["input_rule", "TIE_TOLERANCE", "LayerAgreement", "Agreement", "compare_with_qonnx"]

#: A golden pre-activation ``L * y`` this close (relative to ``max(1, |L * y|)``) to a rounding
#: boundary is a tie that float32 may round either way.
TIE_TOLERANCE = 1e-4


@dataclass
class LayerAgreement:
    """One layer's comparison.

    Members
    -------
    layer : str
    elements : int
        Output elements compared.
    mismatches : int
        Elements whose golden code (or logit) differs from qonnx's.
    ties : int
        Of those, how many are ties (golden pre-activation within tolerance of a boundary, and
        the codes one apart).
    worst_tie_distance : float
        The largest relative distance from a boundary among the ties (0 if none).
    first_disagreement : str or None
        The first mismatch that is not a tie, with its position and both values.
    """

    layer: str
    elements: int
    mismatches: int = 0
    ties: int = 0
    worst_tie_distance: float = 0.0
    first_disagreement: object = None

    @property
    def agrees(self):
        return self.mismatches == self.ties


@dataclass
class Agreement:
    """The whole comparison (see :func:`compare_with_qonnx`)."""

    images: int
    input: LayerAgreement
    layers: list = field(default_factory=list)
    labels_equal: int = 0
    label_ties: int = 0
    end_to_end_equal: int = 0
    end_to_end_unexplained: int = 0

    @property
    def agrees(self):
        return (self.input.agrees and all(layer.agrees for layer in self.layers)
                and self.labels_equal + self.label_ties == self.images
                and self.end_to_end_unexplained == 0)

    def summary(self):
        lines = [f"{'layer':10s} {'elements':>9s} {'equal':>9s} {'ties':>5s}  note"]
        for entry in [self.input] + self.layers:
            note = (entry.first_disagreement or
                    (f"ties within {entry.worst_tie_distance:.1e} of a boundary"
                     if entry.ties else ""))
            lines.append(f"{entry.layer:10s} {entry.elements:9d} "
                         f"{entry.elements - entry.mismatches:9d} {entry.ties:5d}  {note}")
        lines.append(f"labels: {self.labels_equal} of {self.images} equal"
                     + (f", {self.label_ties} at a tie of the two largest outputs"
                        if self.label_ties else ""))
        if self.end_to_end_equal != self.images:
            lines.append(f"end to end (golden on its own codes): {self.end_to_end_equal} of "
                         f"{self.images} labels equal; "
                         + (f"{self.end_to_end_unexplained} differ without a tie"
                            if self.end_to_end_unexplained else
                            "every other input met a tie upstream"))
        return "\n".join(lines)


def input_rule(network):
    """The network's input quantizer, or WRPN's rule stated as one (unsigned, scale
    ``1 / (2**bits - 1)``, ties away; the golden model itself rounds ``x * (2**bits - 1)``)."""
    from wrpn_rtl.golden import InputQuantizer
    if network.input_quantizer is not None:
        return network.input_quantizer
    bits = network.input_bits
    return InputQuantizer(bits=bits, scale=1.0 / ((1 << bits) - 1), rounding="half_away")


def _codes_of(probe, value):
    """Graph values of a probe -> codes (float64, rounded to the nearest integer)."""
    scale = probe.scale if probe.scale.ndim == 0 else _per_channel_view(probe, probe.scale, value)
    return np.rint(value / scale) + probe.zero


def _per_channel_view(probe, scale, value):
    if probe.axes == "F":
        return scale.reshape(1, -1)
    return scale.reshape([1] + [-1 if a == "C" else 1 for a in probe.axes])


def _golden_of(probe, tensor, golden_shape):
    """A graph tensor (N, ...) in the probe's axes -> golden (N, H, W, C)."""
    return graph_to_golden(tensor, probe.axes, golden_shape)


def _boundary_distance(t, rounding):
    """Relative distance of values ``t`` from the nearest rounding boundary of ``rounding``."""
    offset = 0.0 if rounding in ("floor", "ceil", "up", "down") else 0.5
    shifted = t - offset
    return np.abs(shifted - np.round(shifted)) / np.maximum(1.0, np.abs(t))


def _compare(name, golden, graph, tie_distance=None, tied_images=None):
    entry = LayerAgreement(name, int(golden.size))
    differ = golden != graph
    entry.mismatches = int(differ.sum())
    if not entry.mismatches:
        return entry
    ties = np.zeros_like(differ)
    if tie_distance is not None:
        ties = differ & (np.abs(golden - graph) == 1) & (tie_distance <= TIE_TOLERANCE)
        entry.ties = int(ties.sum())
        if entry.ties:
            entry.worst_tie_distance = float(tie_distance[ties].max())
            if tied_images is not None:
                tied_images |= ties.reshape(len(ties), -1).any(axis=1)
    other = differ & ~ties
    if other.any():
        where = tuple(int(i) for i in np.argwhere(other)[0])
        entry.first_disagreement = (f"first disagreement at (image, h, w, c) {where}: golden "
                                    f"{golden[where]:g}, qonnx {graph[where]:g}")
    return entry


def compare_with_qonnx(imported, inputs):
    """Run ``inputs`` through the cleaned graph (qonnx) and the golden network.

    Parameters
    ----------
    imported : ImportedModel
    inputs : numpy.ndarray of float, shape (N, ...) in the graph input's layout

    Returns
    -------
    Agreement
    """
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes
    network = imported.network
    inputs = np.asarray(inputs, dtype=np.float32)
    try:
        model = imported.model.transform(ChangeBatchSize(len(inputs))).transform(InferShapes())
        context = execute_onnx(model, {imported.input_name: inputs},
                               return_full_exec_context=True)
    except Exception as error:
        raise InterchangeError(f"qonnx could not execute the graph ({type(error).__name__}: "
                               f"{error})") from None
    golden_inputs = imported.to_golden_layout(inputs.astype(np.float64))
    golden_codes = network.quantize_input(golden_inputs)
    probe = imported.probes[0]
    graph_codes = _golden_of(probe, _codes_of(probe, context[probe.tensor]),
                             network.input_shape)
    quantizer = input_rule(network)
    pre = _golden_of(probe, np.asarray(context[probe.pre_tensor], dtype=np.float64),
                     network.input_shape)
    input_distance = _boundary_distance(pre / quantizer.scale, quantizer.rounding)
    tied_images = np.zeros(len(inputs), dtype=bool)
    agreement = Agreement(len(inputs), _compare("input", golden_codes, graph_codes,
                                                input_distance, tied_images))
    layer_input = graph_codes.astype(np.int64)
    for layer, probe in zip(network.layers, imported.probes[1:]):
        value = np.asarray(context[probe.tensor], dtype=np.float64)
        acc, golden = layer.integer_forward(layer_input)
        if probe.logits:
            graph = _golden_of(probe, value, layer.out_shape)
            real = (golden * layer.output.scale).astype(np.float64)
            tolerance = TIE_TOLERANCE * max(1.0, float(np.abs(real).max()))
            entry = LayerAgreement(layer.name, int(real.size))
            far = np.abs(real - graph) > tolerance
            entry.mismatches = int(far.sum())
            if far.any():
                where = tuple(int(i) for i in np.argwhere(far)[0])
                entry.first_disagreement = (f"first disagreement at {where}: golden logit "
                                            f"{real[where]:.6g}, qonnx {graph[where]:.6g}")
            agreement.layers.append(entry)
            layer_output = golden
        else:
            graph = _golden_of(probe, _codes_of(probe, value), layer.out_shape)
            distance = None
            if isinstance(layer, QuantLinear):
                rule = layer.output
                t = (acc * rule.multiplier + rule.offset) * rule.levels
                distance = _boundary_distance(t, rule.rounding)
            agreement.layers.append(_compare(layer.name, golden.astype(np.float64), graph,
                                             distance, tied_images))
            layer_output = graph
        layer_input = np.asarray(layer_output).astype(np.int64) if not probe.logits else None
    # labels: the golden last layer on the graph's codes, and the golden network end to end
    graph_out = np.asarray(context[imported.model.graph.output[0].name], dtype=np.float64)
    last = imported.probes[-1]
    graph_golden_order = _golden_of(last, graph_out, network.output_shape).reshape(
        len(inputs), -1)
    graph_labels = np.argmax(graph_golden_order, axis=1)
    local_labels = np.argmax(np.asarray(layer_output).reshape(len(inputs), -1), axis=1)
    agreement.labels_equal = int((local_labels == graph_labels).sum())
    top_two = np.sort(graph_golden_order, axis=1)[:, -2:]
    if top_two.shape[1] > 1:
        close = np.abs(top_two[:, 1] - top_two[:, 0]) <= TIE_TOLERANCE * np.maximum(
            1.0, np.abs(top_two[:, 1]))
        agreement.label_ties = int(((local_labels != graph_labels) & close).sum())
        tied_images |= close
    trace = execute(network, golden_codes)
    agreement.end_to_end_equal = int((trace.classes == graph_labels).sum())
    agreement.end_to_end_unexplained = int(((trace.classes != graph_labels) & ~tied_images).sum())
    return agreement
