"""Golden network -> QONNX: a WRPN model trained here, readable by qonnx, Netron and FINN.

The graph is laid out as Brevitas' ``export_qonnx`` lays out a quantized network, NCHW:

* the input ``Quant``: the network's :class:`~wrpn_rtl.golden.InputQuantizer`, or for WRPN's
  own rule (images in [0, 1], ``round_half_away(L * x)``) an unsigned quantizer with scale
  ``1 / L`` and ``HALF_UP`` rounding;
* per linear layer: the weights as floats ``code * scale`` (one scale per output channel)
  through a weight ``Quant`` (signed, narrow range) or ``BipolarQuant`` (binary), the
  ``Conv`` or ``Gemm``, then ``Mul`` and ``Add`` by per-channel constants that make the real
  output the golden pre-activation, and the activation ``Quant`` with scale ``1 / L`` (so its
  codes are the golden codes); a logits layer ends with ``Mul``/``Add`` giving the real logits
  ``(acc + bias) * scale``;
* ``MaxPool`` as is; ``Flatten`` before the first dense layer (whose weight columns are
  permuted from the golden HWC order to the flattened CHW order).

In real arithmetic every quantizer of the exported graph computes the golden code, up to the
float32 rounding of its constants: a QONNX graph holds float32, the golden model float64, and
at 8 bits and more a threshold can move by one accumulator step when a constant is rounded.
So the export also records the golden parameters exactly (float64, as hexadecimal strings) in
the model's metadata (:data:`EXACT_KEY`); the import uses them where they agree with the
graph's own constants to float32 precision, so an export imports back as the same network.
Other tools ignore the entry and execute the float32 graph. qonnx executes in float32, so an
element whose golden value lies within float error of a rounding tie can round the other way
there (:mod:`.qonnx_check` shows such elements as ties).
"""
import json

import numpy as np

from wrpn_rtl.golden import QuantDense, QuantLinear, QuantMaxPool
from wrpn_rtl.golden.atomic import atomic_write
from wrpn_rtl.golden.quant import activation_levels

from . import InterchangeError

__all__ = ["QONNX_DOMAIN", "EXACT_KEY", "export_qonnx", "export_bytes"]

#: The metadata entry holding the golden parameters exactly: JSON ``{"input": "wrpn" | null,
#: "layers": [{"multiplier": [hex, ...], "offset": [...]} | {"logit_scale": hex}, ...]}`` with
#: one entry per Conv/Dense layer in order.
EXACT_KEY = "wrpn_rtl.exact"

QONNX_DOMAIN = "qonnx.custom_op.general"
_QONNX_ROUNDING_NAME = {"half_away": "HALF_UP", "half_even": "ROUND", "half_down": "HALF_DOWN",
                        "floor": "FLOOR", "ceil": "CEIL", "up": "UP", "down": "DOWN"}


class _Graph:
    def __init__(self):
        from onnx import TensorProto, helper
        self.helper, self.TensorProto = helper, TensorProto
        self.nodes, self.initializers, self.count = [], [], 0

    def const(self, name, value):
        from onnx import numpy_helper
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def node(self, op, inputs, output, domain=None, **attributes):
        self.count += 1
        self.nodes.append(self.helper.make_node(op, inputs, [output], name=f"{op}_{self.count}",
                                                domain=domain, **attributes))
        return output

    def quant(self, source, output, scale, bits, *, signed, narrow, rounding):
        prefix = output
        return self.node("Quant", [source, self.const(f"{prefix}_scale", scale),
                                   self.const(f"{prefix}_zeropt", 0.0),
                                   self.const(f"{prefix}_bitwidth", float(bits))],
                         output, domain=QONNX_DOMAIN, signed=int(signed), narrow=int(narrow),
                         rounding_mode=_QONNX_ROUNDING_NAME[rounding])


def export_bytes(network):
    """The QONNX model of ``network`` as bytes (see the module docstring)."""
    import onnx
    from onnx import helper

    graph = _Graph()
    h, w, c = network.input_shape
    quantizer = network.input_quantizer
    if quantizer is None:
        levels = activation_levels(network.input_bits)
        x = graph.quant("input", "input_codes", 1.0 / levels, network.input_bits, signed=False,
                        narrow=False, rounding="half_away")
        s_in, zero = 1.0 / levels, 0
    else:
        x = graph.quant("input", "input_codes", quantizer.scale, quantizer.bits,
                        signed=quantizer.signed, narrow=quantizer.narrow,
                        rounding=quantizer.rounding)
        s_in, zero = quantizer.scale, quantizer.zero_code
    flat = False
    exact = {"input": "wrpn" if quantizer is None else None, "layers": []}
    for layer in network.layers:
        name = layer.name
        if isinstance(layer, QuantMaxPool):
            x = graph.node("MaxPool", [x], f"{name}_out", kernel_shape=list(layer.kernel),
                           strides=list(layer.stride), pads=[layer.padding] * 4)
            continue
        if not isinstance(layer, QuantLinear):
            raise InterchangeError(f"layer {name!r} cannot be exported: {layer!r}")
        codes = layer.weights                                   # (C_out, K_h, K_w, C_in)
        channels = layer.out_channels
        w_scale = np.where(layer.weight_scale > 0, layer.weight_scale, 1.0)
        dense = isinstance(layer, QuantDense)
        if dense:
            if not flat:
                x = graph.node("Flatten", [x], f"{name}_flat", axis=1)
                flat = True
            # golden columns are in HWC order; the flattened NCHW tensor is in CHW order
            matrix = codes.transpose(0, 3, 1, 2).reshape(channels, -1)
            weight = matrix * w_scale[:, None]
            scale_shape, per_channel_shape = (channels, 1), (1, channels)
        else:
            weight = codes.transpose(0, 3, 1, 2) * w_scale[:, None, None, None]
            scale_shape, per_channel_shape = (channels, 1, 1, 1), (1, channels, 1, 1)
        raw = graph.const(f"{name}_weight", weight)
        if layer.weight_bits == 1:
            quantized = graph.node("BipolarQuant", [raw, graph.const(
                f"{name}_weight_scale", w_scale.reshape(scale_shape))], f"{name}_weight_q",
                domain=QONNX_DOMAIN)
        else:
            quantized = graph.quant(raw, f"{name}_weight_q", w_scale.reshape(scale_shape),
                                    layer.weight_bits, signed=True, narrow=True,
                                    rounding="half_even")
        if dense:
            x = graph.node("Gemm", [x, quantized], f"{name}_acc", transB=1)
        else:
            x = graph.node("Conv", [x, quantized], f"{name}_acc",
                           kernel_shape=list(layer.kernel), strides=list(layer.stride),
                           pads=[layer.padding] * 4)
        # the real output v = acc_q * s_in * w_scale, acc_q = acc - zero * sum(weights)
        sums = codes.reshape(channels, -1).sum(axis=1)
        per_unit = s_in * w_scale
        if layer.is_logits:
            exact["layers"].append({"logit_scale": float(layer.output.scale).hex()})
        else:
            exact["layers"].append({
                "multiplier": [float(v).hex() for v in layer.output.multiplier],
                "offset": [float(v).hex() for v in layer.output.offset]})
        if layer.is_logits:
            k = layer.output.scale / per_unit
            b = layer.output.scale * (zero * sums + layer.output.bias)
        else:
            k = layer.output.multiplier / per_unit
            b = layer.output.offset + layer.output.multiplier * zero * sums
        x = graph.node("Mul", [x, graph.const(f"{name}_mul", k.reshape(per_channel_shape))],
                       f"{name}_scaled")
        x = graph.node("Add", [x, graph.const(f"{name}_add", b.reshape(per_channel_shape))],
                       f"{name}_pre" if not layer.is_logits else "logits")
        if not layer.is_logits:
            rule = layer.output
            top = (1 << rule.out_bits) - 1
            if rule.levels not in (top, top - 1):
                raise InterchangeError(f"layer {name!r}: its top code {rule.levels} is neither "
                                       f"2**{rule.out_bits} - 1 nor - 2; QONNX cannot state it")
            x = graph.quant(x, f"{name}_out", 1.0 / rule.levels, rule.out_bits, signed=False,
                            narrow=rule.levels == top - 1, rounding=rule.rounding)
        s_in, zero = (1.0 / layer.output.levels if not layer.is_logits else None), 0
    inputs = [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, c, h, w])]
    out_shape = [1, network.output_shape[2]] if flat else \
        [1, network.output_shape[2], network.output_shape[0], network.output_shape[1]]
    outputs = [helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, out_shape)]
    model = helper.make_model(
        helper.make_graph(graph.nodes, network.metadata.get("name", "wrpn_network"), inputs,
                          outputs, graph.initializers),
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)],
        producer_name="wrpn-rtl")
    model.ir_version = 8
    helper.set_model_props(model, {EXACT_KEY: json.dumps(exact)})
    onnx.checker.check_model(model)
    return model.SerializeToString()


def export_qonnx(network, path):
    """Write ``network`` as a QONNX model file at ``path`` (atomically)."""
    data = export_bytes(network)
    with atomic_write(path) as handle:
        handle.write(data)
