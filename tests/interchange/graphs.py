"""Small QONNX graphs built with onnx.helper, the way Brevitas' export_qonnx lays them out:
``Quant`` nodes (domain qonnx.custom_op.general) on the input, on constant weights and after
activations; ``Conv``/``Gemm``/``MatMul`` with float weights through a weight ``Quant``."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

QONNX_DOMAIN = "qonnx.custom_op.general"


class GraphBuilder:
    """Append nodes to a chain; ``x`` is the current tensor's name."""

    def __init__(self, input_shape, opset=13):
        self.nodes, self.initializers = [], []
        self.input = helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                   [1] + list(input_shape))
        self.x = "input"
        self.count = 0
        self.opset = opset

    def name(self, what):
        self.count += 1
        return f"{what}_{self.count}"

    def const(self, value, what="const"):
        """An initializer: float32, or int64 for integer arrays (shapes)."""
        name = self.name(what)
        value = np.asarray(value)
        value = value if value.dtype == np.int64 else value.astype(np.float32)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op, inputs, domain=None, **attributes):
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name(op), domain=domain,
                                           **attributes))
        return out

    def step(self, op, *constants, **attributes):
        """``op(x, *constants)`` becomes the current tensor."""
        inputs = [self.x] + [c if isinstance(c, str) else self.const(c) for c in constants]
        self.x = self.node(op, inputs, **attributes)
        return self

    def quant_of(self, source, scale, bits, signed, narrow=False, rounding="ROUND"):
        return self.node("Quant", [source, self.const(scale, "scale"), self.const(0.0, "zeropt"),
                                   self.const(float(bits), "bitwidth")], domain=QONNX_DOMAIN,
                         signed=int(signed), narrow=int(narrow), rounding_mode=rounding)

    def quant(self, scale, bits, signed=False, narrow=False, rounding="ROUND"):
        self.x = self.quant_of(self.x, scale, bits, signed, narrow, rounding)
        return self

    def weights(self, w, scale, bits, signed=True, narrow=True, rounding="ROUND", bipolar=False):
        raw = self.const(w, "weight")
        if bipolar:
            return self.node("BipolarQuant", [raw, self.const(scale, "scale")], domain=QONNX_DOMAIN)
        return self.quant_of(raw, scale, bits, signed, narrow, rounding)

    def conv(self, w, w_scale, bits, bias=None, stride=1, pad=0, **quant):
        weight = self.weights(w, w_scale, bits, **quant)
        inputs = [self.x, weight] + ([self.const(bias, "bias")] if bias is not None else [])
        k = w.shape[2:]
        self.x = self.node("Conv", inputs, kernel_shape=list(k), strides=[stride, stride],
                           pads=[pad] * 4)
        return self

    def gemm(self, w, w_scale, bits, bias=None, trans_b=True, **quant):
        weight = self.weights(w, w_scale, bits, **quant)
        inputs = [self.x, weight] + ([self.const(bias, "bias")] if bias is not None else [])
        self.x = self.node("Gemm", inputs, transB=int(trans_b))
        return self

    def matmul(self, w, w_scale, bits, **quant):
        weight = self.weights(w, w_scale, bits, **quant)
        self.x = self.node("MatMul", [self.x, weight])
        return self

    def batch_norm(self, gamma, beta, mean, var):
        self.x = self.node("BatchNormalization", [self.x] + [self.const(v) for v in
                                                             (gamma, beta, mean, var)],
                           epsilon=1e-5)
        return self

    def relu(self):
        self.x = self.node("Relu", [self.x])
        return self

    def max_pool(self, kernel, stride=None, pad=0):
        self.x = self.node("MaxPool", [self.x], kernel_shape=[kernel, kernel],
                           strides=[stride or kernel] * 2, pads=[pad] * 4)
        return self

    def flatten(self):
        self.x = self.node("Flatten", [self.x], axis=1)
        return self

    def model(self):
        output = helper.make_tensor_value_info(self.x, TensorProto.FLOAT, None)
        graph = helper.make_graph(self.nodes, "test", [self.input], [output], self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset),
                                                        helper.make_opsetid(QONNX_DOMAIN, 1)])
        model.ir_version = 8
        return model

    def save(self, path):
        onnx.save(self.model(), str(path))
        return path
