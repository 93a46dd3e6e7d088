"""QONNX -> golden network: what a Brevitas (or QKeras via qonnx) model means, layer by layer.

The graph is first read as untrusted input (:func:`.onnx_file.load_model`) and cleaned by the
``qonnx`` package's own transformations (``cleanup_model``: shape inference, constant folding
around the quantizers, static graph inputs of the dynamo exporter removed, unique names; then
``BatchNormToAffine``, which turns an inference batch norm into ``Mul`` and ``Add``). What is
left must be one chain from the graph input to the graph output; this module walks it with
the current tensor in one of three states:

``_Raw``
    The float graph input; only ``Transpose``/``Identity`` and then the input ``Quant`` may
    follow (the datapath starts with codes).
``_Codes``
    A quantized tensor: ``value = (code - zero) * scale``. ``MaxPool``, layout changes and a
    positive ``Mul`` keep it codes; ``Conv``/``Gemm``/``MatMul`` start a linear layer.
``_Linear``
    A linear layer's output before its quantizer: ``value[c] = acc[c] * A[c] + B[c]`` with
    ``acc`` the integer accumulator of codes and weight codes. ``Mul``/``Div``/``Add``/``Sub``
    by constants (per tensor or per output channel; a folded batch norm is one of each) move
    ``A`` and ``B``; ``Relu`` is remembered; the next ``Quant`` ends the layer as a golden
    :class:`~wrpn_rtl.golden.Requantization`: with ``L`` the quantizer's top code,
    ``multiplier = A / (scale * L)`` and ``offset = B / (scale * L)``, so that the golden rule
    ``round(L * clip(acc * multiplier + offset, 0, 1))`` is, in real arithmetic, the
    quantizer's ``clip(round(value / scale), 0, L)``, with the quantizer's rounding mode. A chain
    that ends in ``_Linear`` ends in logits: ``acc + bias`` with ``bias = B / A`` in accumulator
    units (exact when the model quantized its bias to the accumulator scale, as Brevitas does
    with ``Int32Bias``; otherwise rounded, and the largest change is reported).

Codes map onto the hardware exactly:

* weight codes are what ``qonnx`` computes for the weight ``Quant`` (same float32 arithmetic);
  a signed quantizer that is not narrow range can produce ``-2**(b-1)``, outside the
  symmetric datapath range, so such a layer gets ``b + 1`` weight bits (said in the notes);
  an unsigned weight quantizer gets ``b + 1`` bits too; ``BipolarQuant`` weights are binary.
* a signed input (an image in [-1, 1], say) enters the unsigned datapath as ``q + 2**(b-1)``
  (:class:`~wrpn_rtl.golden.InputQuantizer`); the first linear layer subtracts
  ``2**(b-1) * sum(weights)`` through its offset, which is exact when it has no zero padding
  (padding would feed code 0, not the value 0; such a model is refused with the reason).
* activations inside the network are unsigned: a signed quantizer is accepted after a
  ``Relu`` (its codes are then ``b - 1`` bits), refused without one.

Supported operators: :data:`SUPPORTED_OPS`. Anything else is refused with the node's name, its
op type and the supported list, and nothing is written.
"""
from dataclasses import dataclass, field
import json
from pathlib import Path

import numpy as np

from wrpn_rtl.golden import (InputQuantizer, Logits, QuantConv2d, QuantDense, QuantLinear,
                             QuantMaxPool, QuantizedNetwork, Requantization)
from wrpn_rtl.golden.quant import QONNX_ROUNDING

from . import InterchangeError
from .onnx_file import load_model

__all__ = ["SUPPORTED_OPS", "Probe", "ImportedModel", "graph_to_golden", "clean_model",
           "import_qonnx"]

#: The operators an imported graph may contain (after qonnx's cleanup).
SUPPORTED_OPS = ("Quant", "IntQuant", "BipolarQuant", "Conv", "Gemm", "MatMul", "Add", "Sub",
                 "Mul", "Div", "BatchNormalization", "Relu", "MaxPool", "Flatten", "Reshape",
                 "Transpose", "Identity", "Dropout")

_QUANT_OPS = ("Quant", "IntQuant")


@dataclass(frozen=True)
class Probe:
    """Where a golden layer's output sits in the cleaned graph, and how to read it as codes.

    Members
    -------
    layer : str
        The golden layer's name (``"input"`` for the input codes).
    tensor : str
        The cleaned graph's tensor holding the layer's output (dequantized floats).
    scale : numpy.ndarray of float64
        Per channel (shape (C,)) or one value (shape ()): ``code = value / scale + zero``.
    zero : int
        The zero code (nonzero only for a signed input).
    logits : bool
        The tensor holds real logits, not codes.
    pre_tensor : str or None
        The tensor the quantizer rounded (to tell exact ties from disagreements).
    axes : str
        The golden axis of each ONNX axis of ``tensor`` after the batch (``"CHW"``, ``"HWC"``,
        or ``"F"`` for a flat tensor in golden order).
    """

    layer: str
    tensor: str
    scale: np.ndarray
    zero: int
    logits: bool
    pre_tensor: object
    axes: str


@dataclass
class ImportedModel:
    """The result of an import.

    Members
    -------
    network : QuantizedNetwork
    model : qonnx.core.modelwrapper.ModelWrapper
        The cleaned graph the network was read from (execute it to compare).
    input_name : str
    input_axes : str
        The golden axes of the graph input after the batch, e.g. ``"CHW"`` (NCHW, PyTorch's) or
        ``"HWC"`` (NHWC) or ``"F"`` (a flat input: golden shape (1, 1, F)).
    probes : list of Probe
        The input codes first, then one per golden layer.
    notes : list of str
        Mappings that are exact but worth knowing, and any documented approximation.
    """

    network: QuantizedNetwork
    model: object
    input_name: str
    input_axes: str
    probes: list
    notes: list = field(default_factory=list)

    def to_golden_layout(self, inputs):
        """Inputs in the graph's own layout ``(N, ...)`` -> golden ``(N, H, W, C)``."""
        return graph_to_golden(np.asarray(inputs), self.input_axes, self.network.input_shape)

    def to_graph_layout(self, inputs):
        """Golden ``(N, H, W, C)`` inputs -> the graph input's layout."""
        inputs = np.asarray(inputs)
        if self.input_axes == "F":
            return inputs.reshape(inputs.shape[0], -1)
        return inputs.transpose([0] + [1 + "HWC".index(a) for a in self.input_axes])


def graph_to_golden(tensor, axes, golden_shape):
    """A graph tensor ``(N, ...)`` whose axes after the batch are the golden ``axes`` (e.g.
    ``"CHW"``, or ``"F"``: flat, in golden order) -> golden ``(N, H, W, C)``."""
    if axes == "F":
        return tensor.reshape((tensor.shape[0],) + tuple(golden_shape))
    return tensor.transpose([0] + [1 + axes.index(a) for a in "HWC"])


def clean_model(path):
    """Read ``path`` safely and clean it with qonnx's own transformations.

    Returns
    -------
    qonnx.core.modelwrapper.ModelWrapper
    """
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.batchnorm_to_affine import BatchNormToAffine
    from qonnx.transformation.general import SortGraph
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    shown = f"model file {str(path)!r}"
    model = ModelWrapper(load_model(path))
    for node in model.graph.node:
        if node.op_type not in SUPPORTED_OPS:
            raise InterchangeError(_unsupported(shown, node))
    try:
        model = cleanup_model(model)
        model = model.transform(BatchNormToAffine())
        model = model.transform(InferShapes())
        model = model.transform(SortGraph())
    except Exception as error:   # qonnx raises bare exceptions and assertions on odd graphs
        raise InterchangeError(f"{shown}: qonnx could not clean the graph "
                               f"({type(error).__name__}: {error})") from None
    return model


def _unsupported(shown, node):
    return (f"{shown}: node {node.name or '(unnamed)'!r} has op type {node.op_type!r}, which "
            f"wrpn-rtl does not import; supported: {', '.join(SUPPORTED_OPS)}")


def import_qonnx(path):
    """Import a QONNX model file as a golden network.

    Returns
    -------
    ImportedModel

    Raises
    ------
    InterchangeError
        The file is unsafe or malformed, or the graph uses an unsupported operator or
        construct; the message names the node and the rule.
    """
    path = Path(path)
    model = clean_model(path)
    walker = _Walker(model, path)
    try:
        return walker.run()
    except (TypeError, ValueError) as error:
        if isinstance(error, InterchangeError):
            raise
        raise InterchangeError(f"model file {str(path)!r}: {error}") from None


def _agrees(graph, exact, tolerance=1e-5):
    """Graph-derived float values (from float32 constants) agree with exact ones."""
    graph, exact = np.asarray(graph, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    return graph.shape == exact.shape and bool(np.all(
        np.abs(graph - exact) <= tolerance * np.maximum(np.abs(exact), 1e-30)))


def _agrees_offset(graph, exact, multiplier, tolerance=1e-5):
    """Offsets agree relative to their own size or to the multiplier's (an offset near 0)."""
    graph, exact = np.asarray(graph, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    scale = np.maximum(np.abs(exact), np.abs(np.asarray(multiplier, dtype=np.float64)))
    return graph.shape == exact.shape and bool(np.all(np.abs(graph - exact) <=
                                                      tolerance * np.maximum(scale, 1e-30)))


def _with_output(layer, output):
    """``layer`` (a golden Conv/Dense) with another output rule."""
    common = dict(name=layer.name, in_shape=layer.in_shape, in_bits=layer.in_bits,
                  weights=layer.weights, weight_bits=layer.weight_bits,
                  weight_scale=layer.weight_scale, output=output)
    if isinstance(layer, QuantDense):
        return QuantDense(**common)
    return QuantConv2d(**common, stride=layer.stride, padding=layer.padding)


@dataclass
class _QuantizedConstant:
    """A constant through a quantizer: ``value = codes * scale`` elementwise (same shapes)."""

    codes: np.ndarray
    scale: np.ndarray
    bits: int
    signed: bool
    narrow: bool
    bipolar: bool = False

    @property
    def value(self):
        return self.codes * self.scale


@dataclass
class _Raw:
    tensor: str
    shape: tuple            # ONNX shape after the batch
    axes: str               # provisional golden axes of each ONNX axis


@dataclass
class _Codes:
    tensor: str
    shape: tuple            # ONNX shape after the batch
    axes: str               # "CHW"-like labels, or "F" flat (golden order after `order`)
    golden_shape: tuple     # (H, W, C)
    bits: int
    scale: np.ndarray       # () or (C,)
    zero: int
    order: object = None    # flat: ONNX flat position -> golden HWC flat index


@dataclass
class _Linear:
    kind: str               # "conv" or "dense"
    tensor: str
    node: str
    codes_in: _Codes
    weights: np.ndarray     # golden (C_out, K_h, K_w, C_in) or (C_out, F) codes
    weight_bits: int
    weight_scale: np.ndarray
    stride: tuple
    padding: int
    A: np.ndarray
    B: np.ndarray
    out_shape: tuple        # ONNX shape after the batch
    relu: bool = False


class _Walker:
    def __init__(self, model, path):
        self.model = model
        self.path = Path(path)
        self.shown = f"model file {str(path)!r}"
        self.constants = {}          # name -> float ndarray or _QuantizedConstant
        for tensor in model.graph.initializer:
            self.constants[tensor.name] = model.get_initializer(tensor.name)
        self.layers, self.probes, self.notes = [], [], []
        self.counts = {}
        self.input_quantizer = None
        self.input_axes = None

    # -- helpers -----------------------------------------------------------------------------
    def fail(self, node, rule):
        raise InterchangeError(f"{self.shown}: node {node.name!r} ({node.op_type}): {rule}")

    def attribute(self, node, name, default=None):
        from onnx import helper
        for attribute in node.attribute:
            if attribute.name == name:
                value = helper.get_attribute_value(attribute)
                return value.decode() if isinstance(value, bytes) else value
        return default

    def shape(self, tensor):
        shape = self.model.get_tensor_shape(tensor)
        if shape is None:
            raise InterchangeError(f"{self.shown}: tensor {tensor!r} has no inferred shape")
        return tuple(int(d) for d in shape)

    def name(self, kind):
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"{kind}{self.counts[kind]}"

    def is_constant(self, name):
        return name == "" or name in self.constants

    def float_constant(self, node, name, what):
        value = self.constants.get(name)
        if value is None:
            self.fail(node, f"{what} must be a constant (an initializer), not the tensor {name!r}")
        if isinstance(value, _QuantizedConstant):
            return value.value.astype(np.float64)
        return np.asarray(value, dtype=np.float64)

    def integer_constant(self, node, name, what, low, high):
        value = self.float_constant(node, name, what)
        if value.size != 1 or value.reshape(-1)[0] != np.round(value.reshape(-1)[0]) or \
                not low <= value.reshape(-1)[0] <= high:
            self.fail(node, f"{what} must be one integer in [{low}, {high}], not "
                            f"{value.reshape(-1).tolist()[:4]}")
        return int(value.reshape(-1)[0])

    def per_channel(self, node, value, out_shape, channel_axis, what):
        """A constant broadcast against the tensor ``(1,) + out_shape`` -> (C,) or raise."""
        full_shape = (1,) + tuple(out_shape)
        try:
            full = np.broadcast_to(value, full_shape)
        except ValueError:
            self.fail(node, f"{what} of shape {list(value.shape)} must broadcast to the "
                            f"tensor's shape {list(full_shape)}")
        if value.ndim > len(full_shape):
            self.fail(node, f"{what} of shape {list(value.shape)} has more axes than the tensor")
        moved = np.moveaxis(full, channel_axis, 0).reshape(full_shape[channel_axis], -1)
        if not np.all(moved == moved[:, :1]):
            self.fail(node, f"{what} must be one value per tensor or per channel (axis "
                            f"{channel_axis}); it varies along other axes")
        return moved[:, 0].astype(np.float64)

    # -- constants ---------------------------------------------------------------------------
    def constant_node(self, node):
        op = node.op_type
        if op in _QUANT_OPS or op == "BipolarQuant":
            self.constants[node.output[0]] = self.quantize_constant(node)
            return
        value = self.constants[node.input[0]]
        if op in ("Identity", "Dropout"):
            result = value
        elif op in ("Transpose", "Reshape", "Flatten"):
            def reshape(array):
                if op == "Transpose":
                    perm = self.attribute(node, "perm", list(range(array.ndim))[::-1])
                    return np.transpose(array, perm)
                return array.reshape(self.shape(node.output[0]))
            if isinstance(value, _QuantizedConstant):
                result = _QuantizedConstant(reshape(value.codes), reshape(value.scale), value.bits,
                                            value.signed, value.narrow, value.bipolar)
            else:
                result = reshape(np.asarray(value))
        else:
            self.fail(node, f"a constant subgraph may only quantize, transpose or reshape "
                            f"weights (qonnx's cleanup folds the rest), not {op}")
        self.constants[node.output[0]] = result

    def quantizer_parameters(self, node, max_bits=16):
        """``(scale, bits, signed, narrow, rounding)`` of a Quant node (zero point must be 0);
        ``max_bits``: 16 for what the datapath carries, 32 for a constant (a bias)."""
        scale = self.float_constant(node, node.input[1], "the scale")
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            self.fail(node, f"the scale must be positive and finite, not "
                            f"{scale.reshape(-1).tolist()[:4]}")
        zero = self.float_constant(node, node.input[2], "the zero point")
        if np.any(zero != 0):
            self.fail(node, f"the zero point must be 0 (wrpn-rtl maps uniform quantizers "
                            f"without an offset), not {zero.reshape(-1).tolist()[:4]}")
        bits = self.integer_constant(node, node.input[3], "the bit width", 1, max_bits)
        signed = bool(self.attribute(node, "signed", 1))
        narrow = bool(self.attribute(node, "narrow", 0))
        mode = str(self.attribute(node, "rounding_mode", "ROUND")).upper()
        if mode not in QONNX_ROUNDING:
            self.fail(node, f"rounding_mode must be one of {', '.join(QONNX_ROUNDING)}, "
                            f"not {mode!r}")
        return scale, bits, signed, narrow, QONNX_ROUNDING[mode]

    def quantize_constant(self, node):
        """Weight codes exactly as qonnx computes them (float32, its own rounding functions)."""
        from qonnx.custom_op.general.quant import max_int, min_int, resolve_rounding_mode
        raw = self.constants[node.input[0]]
        if isinstance(raw, _QuantizedConstant):
            self.fail(node, "a constant must not be quantized twice")
        raw = np.asarray(raw)
        if node.op_type == "BipolarQuant":
            scale = self.float_constant(node, node.input[1], "the scale")
            codes = np.where(raw >= 0, 1, -1).astype(np.int64)
            return _QuantizedConstant(codes, np.broadcast_to(scale, codes.shape).astype(np.float64),
                                      1, True, False, bipolar=True)
        scale, bits, signed, narrow, _ = self.quantizer_parameters(node, max_bits=32)
        mode = str(self.attribute(node, "rounding_mode", "ROUND")).upper()
        scale32 = np.asarray(self.constants[node.input[1]])
        y = raw / scale32
        if bits == 1 and signed:
            codes = np.where(y >= 0, 1, -1).astype(np.int64)
            return _QuantizedConstant(codes, np.broadcast_to(scale, codes.shape).astype(np.float64),
                                      1, True, False, bipolar=True)
        low, high = min_int(signed, narrow, bits), max_int(signed, narrow, bits)
        y = np.where(y > high, np.array(high, dtype=y.dtype), y)
        y = np.where(y < low, np.array(low, dtype=y.dtype), y)
        codes = np.asarray(resolve_rounding_mode(mode)(y)).astype(np.int64)
        return _QuantizedConstant(codes, np.broadcast_to(scale, codes.shape).astype(np.float64),
                                  bits, signed, narrow)

    def weight_codes(self, node, name, channel_axis):
        """``(codes, weight_bits, per-channel scale)`` of a quantized weight constant."""
        weight = self.constants.get(name)
        if not isinstance(weight, _QuantizedConstant):
            self.fail(node, f"the weights must come from a Quant or BipolarQuant node on a "
                            f"constant (a quantized layer), not {name!r}")
        scale = np.moveaxis(weight.scale, channel_axis, 0).reshape(weight.scale.shape[channel_axis], -1)
        if not np.all(scale == scale[:, :1]):
            self.fail(node, "the weight scale must be one value per tensor or per output channel")
        codes = weight.codes
        if weight.bipolar:
            bits = 1
        elif not weight.signed:
            bits = weight.bits + 1
            self.notes.append(f"{node.name}: unsigned {weight.bits}-bit weights run as "
                              f"{bits}-bit signed codes")
        elif not weight.narrow and codes.min() == -(1 << (weight.bits - 1)):
            bits = weight.bits + 1
            self.notes.append(f"{node.name}: {weight.bits}-bit weights use the code "
                              f"{codes.min()} (not narrow range), so they run as {bits}-bit "
                              f"symmetric codes")
        else:
            bits = weight.bits
        if bits > 16:
            self.fail(node, f"the weights must be at most 16 bits in the datapath, not {bits}")
        return codes, bits, np.abs(scale[:, 0])

    # -- the chain ---------------------------------------------------------------------------
    def run(self):
        graph = self.model.graph
        inputs = [i.name for i in graph.input if i.name not in self.constants]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise InterchangeError(f"{self.shown}: the graph must have one input and one output "
                                   f"(after its weights are removed from the inputs), not "
                                   f"inputs {inputs} and {len(graph.output)} outputs")
        shape = self.shape(inputs[0])
        if len(shape) == 4:
            state = _Raw(inputs[0], shape[1:], "CHW")
        elif len(shape) == 2:
            state = _Raw(inputs[0], shape[1:], "F")
        else:
            raise InterchangeError(f"{self.shown}: the graph input must be 4-d (N, C, H, W) or "
                                   f"2-d (N, F), not shape {list(shape)}")
        self.input_name, self.graph_input_axes = inputs[0], state.axes
        for node in graph.node:
            if node.op_type not in SUPPORTED_OPS:
                raise InterchangeError(_unsupported(self.shown, node))
            data = [name for name in node.input if not self.is_constant(name)]
            if not data:
                self.constant_node(node)
                continue
            if data != [state.tensor] or (node.op_type not in ("Add", "Mul", "Sub", "Div") and
                                          node.input[0] != state.tensor):
                self.fail(node, f"the graph must be one chain of layers: this node reads "
                                f"{data}, and the chain is at {state.tensor!r} (branches and "
                                f"residual connections are not supported)")
            if len(node.output) > 1 and any(node.output[1:]):
                self.fail(node, "only the first output may be used")
            state = getattr(self, f"on_{type(state).__name__[1:].lower()}")(node, state)
        if graph.output[0].name != state.tensor:
            raise InterchangeError(f"{self.shown}: the graph output {graph.output[0].name!r} is "
                                   f"not the end of the chain {state.tensor!r}")
        if isinstance(state, _Raw):
            raise InterchangeError(f"{self.shown}: the graph has no quantized layer")
        if isinstance(state, _Linear):
            self.logits(state)
        return self.finish()

    def finish(self):
        input_shape = self.layers[0].in_shape if self.layers else None
        self.apply_exact_parameters()
        network = QuantizedNetwork(
            input_shape=input_shape, input_bits=self.input_quantizer.bits, layers=self.layers,
            input_quantizer=None if self.wrpn_input else self.input_quantizer,
            metadata={"imported_from": self.path.name, "import_notes": list(self.notes),
                      "input_axes": self.input_axes})
        probe = self.input_probe
        real = dict(zip(self.graph_input_axes, self.input_axes))   # provisional -> real labels
        quant_axes = "".join(real[a] for a in self.input_quant_axes)
        probes = [Probe("input", probe.tensor, probe.scale, probe.zero, False, probe.pre_tensor,
                        quant_axes)] + self.probes
        return ImportedModel(network, self.model, self.input_name, self.input_axes, probes,
                             list(self.notes))

    def apply_exact_parameters(self):
        """Golden float64 parameters a wrpn-rtl export recorded (:data:`.qonnx_export.EXACT_KEY`),
        used where the graph's own (float32) constants agree with them."""
        from .qonnx_export import EXACT_KEY
        self.wrpn_input = False
        entry = next((p.value for p in self.model.model.metadata_props if p.key == EXACT_KEY),
                     None)
        if entry is None:
            return
        try:
            exact = json.loads(entry)
            records = exact["layers"]
            linear = [i for i, layer in enumerate(self.layers) if isinstance(layer, QuantLinear)]
            if len(records) != len(linear):
                raise ValueError("layer count")
            replaced = {}
            for index, record in zip(linear, records):
                layer = self.layers[index]
                if layer.is_logits:
                    scale = float.fromhex(record["logit_scale"])
                    if not _agrees(layer.output.scale, scale):
                        raise ValueError(layer.name)
                    output = Logits(layer.output.bias, scale)
                else:
                    multiplier = np.array([float.fromhex(v) for v in record["multiplier"]])
                    offset = np.array([float.fromhex(v) for v in record["offset"]])
                    rule = layer.output
                    if not (_agrees(rule.multiplier, multiplier) and
                            _agrees_offset(rule.offset, offset, rule.multiplier)):
                        raise ValueError(layer.name)
                    output = Requantization(multiplier, offset, rule.out_bits,
                                            rounding=rule.rounding, levels=rule.levels)
                replaced[index] = _with_output(layer, output)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            self.notes.append(f"the model's {EXACT_KEY} metadata does not match the graph "
                              f"({error}); the graph's own constants are used")
            return
        for index, layer in replaced.items():
            self.layers[index] = layer
        quantizer = self.input_quantizer
        if exact.get("input") == "wrpn" and not quantizer.signed and not quantizer.narrow and \
                quantizer.rounding == "half_away" and \
                _agrees(quantizer.scale, 1.0 / ((1 << quantizer.bits) - 1)):
            self.wrpn_input = True

    # _Raw: the float input
    def on_raw(self, node, state):
        op = node.op_type
        if op in ("Identity", "Dropout"):
            return _Raw(node.output[0], state.shape, state.axes)
        if op == "Transpose" and state.axes != "F":
            perm = self.attribute(node, "perm")
            if perm is None or sorted(perm) != [0, 1, 2, 3] or perm[0] != 0:
                self.fail(node, f"a transpose must keep the batch first, not perm {perm}")
            return _Raw(node.output[0], tuple(state.shape[p - 1] for p in perm[1:]),
                        "".join(state.axes[p - 1] for p in perm[1:]))
        if op in _QUANT_OPS:
            scale, bits, signed, narrow, rounding = self.quantizer_parameters(node)
            if scale.size != 1:
                self.fail(node, "the input quantizer's scale must be one value per tensor: the "
                                "datapath adds input codes of all channels together")
            if signed and bits == 1:
                self.fail(node, "a 1-bit signed (bipolar) input is not supported")
            if not signed and narrow and bits == 1:
                self.fail(node, "a 1-bit unsigned narrow-range input has only the code 0")
            self.input_quantizer = InputQuantizer(bits=bits, scale=float(scale.reshape(-1)[0]),
                                                  signed=signed, narrow=narrow, rounding=rounding)
            if signed:
                self.notes.append(f"{node.name}: signed {bits}-bit input codes q enter the "
                                  f"datapath as q + {1 << (bits - 1)}")
            codes = _Codes(node.output[0], state.shape, state.axes, None, bits,
                           np.asarray(float(scale.reshape(-1)[0])), self.input_quantizer.zero_code)
            if state.axes == "F":
                codes.golden_shape = (1, 1, state.shape[0])
                codes.order = np.arange(state.shape[0])
            self.input_probe = Probe("input", node.output[0], codes.scale, codes.zero, False,
                                     node.input[0], None)
            self.input_axes = self.graph_input_axes     # relabelled when the layout is known
            self.input_quant_axes = state.axes
            return codes
        self.fail(node, f"the graph input must be quantized by a Quant node before any "
                        f"{op} (the datapath starts with codes)")

    def fix_layout(self, node, state):
        """``state`` reaches a spatial operator, which reads NCHW: the input's axes follow."""
        if state.golden_shape is not None:
            if state.axes != "CHW":
                self.fail(node, f"the input must be in NCHW order here, not a tensor whose axes "
                                f"are {state.axes} (after the batch)")
            return
        if state.axes == "F":
            self.fail(node, "a flat (N, F) tensor cannot enter a convolution or a pool")
        relabel = dict(zip(state.axes, "CHW"))
        self.input_axes = "".join(relabel[a] for a in self.input_axes)
        c, h, w = state.shape
        state.axes, state.golden_shape = "CHW", (h, w, c)

    # _Codes: a quantized tensor
    def on_codes(self, node, state):
        op = node.op_type
        if op in ("Identity", "Dropout"):
            return _Codes(**{**state.__dict__, "tensor": node.output[0]})
        if op == "Transpose":
            if state.axes == "F":
                self.fail(node, "a flat tensor must not be transposed")
            perm = self.attribute(node, "perm")
            if perm is None or sorted(perm) != [0, 1, 2, 3] or perm[0] != 0:
                self.fail(node, f"a transpose must keep the batch first, not perm {perm}")
            return _Codes(**{**state.__dict__, "tensor": node.output[0],
                             "shape": tuple(state.shape[p - 1] for p in perm[1:]),
                             "axes": "".join(state.axes[p - 1] for p in perm[1:])})
        if op in ("Flatten", "Reshape"):
            return self.flatten(node, state)
        if op in ("Mul", "Div"):
            other = [name for name in node.input if name != state.tensor][0]
            value = self.float_constant(node, other, "the factor")
            if value.size != 1 or value.reshape(-1)[0] <= 0 or (op == "Div" and
                                                               node.input[1] != other):
                self.fail(node, "a quantized tensor may only be scaled by one positive constant")
            factor = float(value.reshape(-1)[0])
            scale = state.scale * factor if op == "Mul" else state.scale / factor
            return _Codes(**{**state.__dict__, "tensor": node.output[0], "scale": scale})
        if op == "Relu":
            if state.zero != 0:
                self.fail(node, "a Relu on the signed input is not supported")
            return _Codes(**{**state.__dict__, "tensor": node.output[0]})
        if op == "MaxPool":
            return self.max_pool(node, state)
        if op in ("Conv", "Gemm", "MatMul"):
            return self.linear(node, state)
        if op in _QUANT_OPS:
            return self.requantize_codes(node, state)
        self.fail(node, f"{op} cannot follow a quantized tensor here (supported after a "
                        f"quantizer: MaxPool, Conv, Gemm, MatMul, Flatten, Reshape, Transpose, a "
                        f"positive Mul)")

    def requantize_codes(self, node, state):
        scale, bits, signed, narrow, _ = self.quantizer_parameters(node)
        same_scale = scale.size == 1 and state.scale.size == 1 and \
            float(scale.reshape(-1)[0]) == float(state.scale.reshape(-1)[0])
        top = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1 - narrow
        if state.zero == 0 and same_scale and top >= (1 << state.bits) - 1:
            return _Codes(**{**state.__dict__, "tensor": node.output[0]})
        self.fail(node, "a quantized tensor may only be quantized again with the same scale and "
                        "a range that holds its codes (an identity)")

    def flatten(self, node, state):
        out_shape = self.shape(node.output[0])
        if state.axes == "F":
            if out_shape[1:] != state.shape:
                self.fail(node, f"a flat tensor may not be reshaped to {list(out_shape)}")
            return _Codes(**{**state.__dict__, "tensor": node.output[0]})
        if node.op_type == "Flatten" and self.attribute(node, "axis", 1) != 1:
            self.fail(node, "Flatten must flatten everything after the batch (axis 1)")
        if len(out_shape) == 4 and out_shape[1:] == state.shape:
            return _Codes(**{**state.__dict__, "tensor": node.output[0]})
        if len(out_shape) != 2 or out_shape[1] != int(np.prod(state.shape)):
            self.fail(node, f"a reshape may only flatten (N, C, H, W) to (N, C*H*W), not to "
                            f"{list(out_shape)}")
        if state.golden_shape is None:
            # the input flattened before any spatial operator: (N, C, H, W) by ONNX convention
            state = _Codes(**state.__dict__)
            self.fix_layout(node, state)
        axes, golden_shape = state.axes, state.golden_shape
        index = np.arange(int(np.prod(golden_shape))).reshape(golden_shape)      # H, W, C
        order = index.transpose(["HWC".index(a) for a in axes]).reshape(-1)
        return _Codes(node.output[0], (out_shape[1],), "F", golden_shape, state.bits, state.scale,
                      state.zero, order)

    def window_attributes(self, node):
        """``(stride, padding)`` of a Conv or MaxPool, with the rules the datapath needs."""
        if self.attribute(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            self.fail(node, f"auto_pad must be NOTSET or VALID (give explicit pads), not "
                            f"{self.attribute(node, 'auto_pad')!r}")
        dilations = self.attribute(node, "dilations", [1, 1])
        if list(dilations) != [1, 1]:
            self.fail(node, f"dilations must be [1, 1], not {list(dilations)}")
        strides = tuple(self.attribute(node, "strides", [1, 1]))
        pads = list(self.attribute(node, "pads", [0, 0, 0, 0]))
        if len(set(pads)) != 1:
            self.fail(node, f"pads must be the same on every side (symmetric, as the datapath "
                            f"pads), not {pads}")
        return strides, int(pads[0])

    def max_pool(self, node, state):
        self.fix_layout(node, state)
        kernel = tuple(self.attribute(node, "kernel_shape"))
        stride, padding = self.window_attributes(node)
        if self.attribute(node, "ceil_mode", 0):
            self.fail(node, "ceil_mode must be 0")
        name = self.name("pool")
        layer = QuantMaxPool(name=name, in_shape=state.golden_shape, bits=state.bits,
                             kernel=kernel, stride=stride, padding=padding)
        self.layers.append(layer)
        h, w, c = layer.out_shape
        result = _Codes(node.output[0], (c, h, w), "CHW", layer.out_shape, state.bits,
                        state.scale, state.zero)
        self.probes.append(Probe(name, node.output[0], state.scale, state.zero, False, None, "CHW"))
        return result

    def linear(self, node, state):
        if state.scale.size != 1:
            self.fail(node, "the input's scale must be one value per tensor (the accumulator adds "
                            "codes of all channels), not one per channel")
        s_in = float(state.scale.reshape(-1)[0])
        out_shape = self.shape(node.output[0])[1:]
        if node.op_type == "Conv":
            self.fix_layout(node, state)
            if self.attribute(node, "group", 1) != 1:
                self.fail(node, f"group must be 1, not {self.attribute(node, 'group')}")
            codes, bits, w_scale = self.weight_codes(node, node.input[1], 0)
            if codes.ndim != 4:
                self.fail(node, f"the weights must be 4-d, not shape {list(codes.shape)}")
            stride, padding = self.window_attributes(node)
            weights = codes.transpose(0, 2, 3, 1)              # (C_out, K_h, K_w, C_in)
            kind, bias_name, A_extra = "conv", node.input[2] if len(node.input) > 2 else "", 1.0
        else:
            if state.axes != "F":
                self.fail(node, f"{node.op_type} needs a flat (N, F) input; flatten first")
            if node.op_type == "Gemm":
                if self.attribute(node, "transA", 0):
                    self.fail(node, "transA must be 0")
                trans_b = bool(self.attribute(node, "transB", 0))
                A_extra = float(self.attribute(node, "alpha", 1.0))
                beta = float(self.attribute(node, "beta", 1.0))
                bias_name = node.input[2] if len(node.input) > 2 else ""
            else:
                trans_b, A_extra, beta, bias_name = False, 1.0, 1.0, ""
            codes, bits, w_scale = self.weight_codes(node, node.input[1], 0 if trans_b else 1)
            matrix = codes if trans_b else codes.T                # (C_out, F) in ONNX order
            if matrix.ndim != 2 or matrix.shape[1] != state.shape[0]:
                self.fail(node, f"the weights must be ({state.shape[0]}, C_out), not "
                                f"{list(codes.shape)}")
            weights = np.zeros_like(matrix)
            weights[:, state.order] = matrix                      # columns in golden HWC order
            stride, padding, kind = (1, 1), 0, "dense"
        A = s_in * w_scale * A_extra
        B = np.zeros_like(A)
        if bias_name:
            bias = self.float_constant(node, bias_name, "the bias")
            if node.op_type == "Conv":          # one value per output channel, shape (C_out,)
                if bias.shape != (len(A),):
                    self.fail(node, f"the bias must have shape [{len(A)}], not {list(bias.shape)}")
                B = B + bias
            else:
                B = B + self.per_channel(node, bias, out_shape, 1, "the bias") * beta
        if state.zero:
            if padding:
                self.fail(node, f"a signed input must reach its first layer without zero padding: "
                                f"the datapath pads with code 0, which is the value "
                                f"{-state.zero * s_in:g} here, not 0 (pads {padding})")
            sums = weights.reshape(weights.shape[0], -1).sum(axis=1)
            B = B - state.zero * sums * A
        return _Linear(kind, node.output[0], node.name, state, weights, bits, w_scale,
                       stride, padding, A, B, out_shape)

    # _Linear: a layer's real output before its quantizer
    def on_linear(self, node, state):
        op = node.op_type
        if op in ("Identity", "Dropout"):
            return _Linear(**{**state.__dict__, "tensor": node.output[0]})
        if op == "Relu":
            return _Linear(**{**state.__dict__, "tensor": node.output[0], "relu": True})
        if op in ("Mul", "Div", "Add", "Sub"):
            if state.relu:
                self.fail(node, f"{op} after a Relu is not supported (the quantizer must follow)")
            other = [name for name in node.input if name != state.tensor][0]
            value = self.per_channel(node, self.float_constant(node, other, "the constant"),
                                     state.out_shape, 1, "the constant")
            first = node.input[0] == state.tensor
            A, B = state.A, state.B
            if op == "Mul":
                A, B = A * value, B * value
            elif op == "Div":
                if not first:
                    self.fail(node, "a constant divided by a layer's output is not linear")
                A, B = A / value, B / value
            elif op == "Add":
                B = B + value
            elif first:
                B = B - value
            else:
                A, B = -A, value - B
            return _Linear(**{**state.__dict__, "tensor": node.output[0], "A": A, "B": B})
        if op in _QUANT_OPS:
            return self.requantize(node, state)
        if op == "BipolarQuant":
            self.fail(node, "bipolar activations are not supported (the datapath's activations "
                            "are unsigned codes)")
        self.fail(node, f"{op} cannot follow a linear layer before its quantizer (supported: "
                        f"Mul, Div, Add, Sub by constants, BatchNormalization, Relu, Quant)")

    def golden_linear(self, state, output):
        name = self.name(state.kind)
        common = dict(name=name, in_shape=state.codes_in.golden_shape, in_bits=state.codes_in.bits,
                      weights=state.weights, weight_bits=state.weight_bits,
                      weight_scale=state.weight_scale, output=output)
        if state.kind == "dense":
            return QuantDense(**common)
        return QuantConv2d(**common, stride=state.stride, padding=state.padding)

    def requantize(self, node, state):
        scale, bits, signed, narrow, rounding = self.quantizer_parameters(node)
        if signed:
            if not state.relu:
                self.fail(node, "a signed activation quantizer needs a Relu before it: the "
                                "datapath's activations are unsigned codes")
            if bits < 2:
                self.fail(node, "a signed activation quantizer after a Relu needs at least 2 bits")
            out_bits, levels = bits - 1, (1 << (bits - 1)) - 1
            self.notes.append(f"{node.name}: signed {bits}-bit codes after a Relu are "
                              f"{out_bits}-bit unsigned codes")
        else:
            if narrow and bits == 1:
                self.fail(node, "a 1-bit unsigned narrow-range quantizer has only the code 0")
            out_bits, levels = bits, (1 << bits) - 1 - narrow
        s_out = self.per_channel(node, scale, state.out_shape, 1, "the scale")
        output = Requantization(state.A / (s_out * levels), state.B / (s_out * levels), out_bits,
                                rounding=rounding, levels=levels)
        layer = self.golden_linear(state, output)
        self.layers.append(layer)
        per_tensor = np.all(s_out == s_out[0])
        out_scale = np.asarray(s_out[0]) if per_tensor else s_out
        axes = "CHW" if state.kind == "conv" else "F"
        self.probes.append(Probe(layer.name, node.output[0], out_scale, 0, False, node.input[0],
                                 axes))
        h, w, c = layer.out_shape
        if state.kind == "conv":
            return _Codes(node.output[0], (c, h, w), "CHW", layer.out_shape, out_bits, out_scale, 0)
        return _Codes(node.output[0], (c,), "F", layer.out_shape, out_bits, out_scale, 0,
                      np.arange(c))

    def logits(self, state):
        where = f"{self.shown}: the output layer ({state.node})"
        if state.relu:
            raise InterchangeError(f"{where} ends in a Relu without a quantizer; end in logits "
                                   f"(no Relu) or quantize the output")
        if np.any(state.A <= 0) or not np.allclose(state.A, state.A[0], rtol=1e-9, atol=0):
            raise InterchangeError(f"{where} ends in logits whose scale per channel "
                                   f"(input scale x weight scale x factors) must be one positive "
                                   f"value for all channels, so that the argmax of the integer "
                                   f"accumulators is the argmax of the logits; it is "
                                   f"{state.A.tolist()[:4]}")
        scale = float(state.A[0])
        exact = state.B / scale
        bias = np.rint(exact).astype(np.int64)
        change = float(np.max(np.abs(exact - bias))) if bias.size else 0.0
        if change > 1e-4:               # float32 constants of an exact bias land well within
            self.notes.append(f"{state.node}: the logit bias is rounded to accumulator units "
                              f"({scale:.6g} per unit); the largest change is {change:.4f} units")
        layer = self.golden_linear(state, Logits(bias, scale))
        self.layers.append(layer)
        axes = "CHW" if state.kind == "conv" else "F"
        self.probes.append(Probe(layer.name, state.tensor, np.asarray(scale), 0, True, None, axes))
