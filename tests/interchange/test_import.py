"""QONNX import: every supported operator, quantizer kind and rounding mode, each graph built
with onnx.helper and checked against the same graph executed by qonnx, tensor by tensor
(golden layer on qonnx's input codes == qonnx's output codes, except exact ties, which are
counted and must lie within float32 reach of a rounding boundary), labels equal, and the golden
integer and float paths equal."""
import numpy as np
import pytest

from wrpn_rtl.interchange.convert import check_inputs
from wrpn_rtl.interchange.qonnx_check import compare_with_qonnx
from wrpn_rtl.interchange.qonnx_import import import_qonnx
from wrpn_rtl.job.network import golden_check

from .graphs import GraphBuilder

QONNX_MODES = ["ROUND", "HALF_EVEN", "HALF_UP", "HALF_DOWN", "FLOOR", "CEIL", "UP", "DOWN"]


def check(builder, tmp_path, count=48, seed=0):
    """Import the graph, compare it with qonnx on ``count`` inputs; returns the import."""
    path = builder.save(tmp_path / "model.onnx")
    imported = import_qonnx(path)
    inputs, _ = check_inputs(imported, count, seed=seed)
    agreement = compare_with_qonnx(imported, inputs)
    assert agreement.agrees, agreement.summary()
    assert agreement.labels_equal + agreement.label_ties == len(inputs)
    golden = golden_check(imported.network, imported.to_golden_layout(inputs))
    assert golden["integer_vs_float_mismatches"] == 0, golden
    return imported, agreement


def conv_net(rng, *, in_bits=8, in_scale=1 / 255, in_signed=False, channels=(3, 6),
             w_bits=3, a_bits=4, a_mode="ROUND", w_mode="ROUND", per_channel=True, pad=1,
             stride=1, kernel=3, size=8, narrow=True):
    c_in, c_out = channels
    g = GraphBuilder((c_in, size, size))
    g.quant(in_scale, in_bits, signed=in_signed)
    scale = rng.uniform(0.05, 0.2, (c_out, 1, 1, 1)) if per_channel else 0.1
    g.conv(rng.normal(0, 0.4, (c_out, c_in, kernel, kernel)), scale, w_bits,
           bias=rng.normal(0, 0.2, c_out), stride=stride, pad=pad, rounding=w_mode,
           narrow=narrow)
    g.batch_norm(rng.uniform(0.5, 1.5, c_out), rng.normal(0, 0.3, c_out),
                 rng.normal(0, 0.2, c_out), rng.uniform(0.5, 2, c_out))
    g.relu().quant(0.3, a_bits, rounding=a_mode)
    return g


def head(g, rng, features, classes=5, bits=3, **kwargs):
    g.flatten()
    g.gemm(rng.normal(0, 0.3, (classes, features)), 0.07, bits, **kwargs)
    return g


@pytest.mark.parametrize("mode", QONNX_MODES)
def test_activation_rounding_modes(mode, rng, tmp_path):
    g = head(conv_net(rng, a_mode=mode), rng, 6 * 64)
    imported, _ = check(g, tmp_path)
    expected = {"ROUND": "half_even", "HALF_EVEN": "half_even", "HALF_UP": "half_away",
                "HALF_DOWN": "half_down", "FLOOR": "floor", "CEIL": "ceil", "UP": "up",
                "DOWN": "down"}[mode]
    assert imported.network.layers[0].output.rounding == expected


@pytest.mark.parametrize("mode", QONNX_MODES)
def test_weight_and_input_rounding_modes(mode, rng, tmp_path):
    g = GraphBuilder((2, 6, 6))
    g.quant(0.1, 6, signed=True, rounding=mode)
    g.conv(rng.normal(0, 0.4, (4, 2, 3, 3)), 0.1, 4, rounding=mode, pad=0)
    g.relu().quant(0.25, 3, rounding=mode)
    imported, _ = check(head(g, rng, 4 * 16), tmp_path)
    assert imported.network.input_quantizer.rounding == imported.network.layers[0].output.rounding


@pytest.mark.parametrize("a_bits", [1, 2, 3, 5, 8, 12, 16])
def test_activation_widths(a_bits, rng, tmp_path):
    g = conv_net(rng, a_bits=a_bits, channels=(1, 3), size=5, w_bits=4)
    check(head(g, rng, 3 * 25), tmp_path, count=24)


@pytest.mark.parametrize("w_bits, narrow", [(2, True), (2, False), (3, False), (4, True),
                                            (8, True), (8, False), (16, True)])
def test_weight_widths_and_ranges(w_bits, narrow, rng, tmp_path):
    g = conv_net(rng, w_bits=w_bits, narrow=narrow, channels=(2, 4), size=6)
    imported, _ = check(head(g, rng, 4 * 36), tmp_path, count=24)
    layer = imported.network.layers[0]
    uses_bottom = layer.weights.min() == -(1 << (w_bits - 1)) if not narrow else False
    assert layer.weight_bits == w_bits + (1 if uses_bottom else 0)


def test_unsigned_weights_run_one_bit_wider(rng, tmp_path):
    g = GraphBuilder((1, 5, 5)).quant(1 / 15, 4)
    g.conv(np.abs(rng.normal(0, 0.4, (3, 1, 3, 3))), 0.1, 3, signed=False, narrow=False)
    g.relu().quant(0.5, 3)
    imported, _ = check(head(g, rng, 27), tmp_path)
    assert imported.network.layers[0].weight_bits == 4
    assert any("unsigned 3-bit weights" in note for note in imported.notes)


@pytest.mark.parametrize("how", ["bipolar", "quant1"])
def test_binary_weights(how, rng, tmp_path):
    g = GraphBuilder((2, 6, 6)).quant(1 / 255, 8)
    w = rng.normal(0, 0.4, (4, 2, 3, 3))
    if how == "bipolar":
        g.conv(w, rng.uniform(0.1, 0.3, (4, 1, 1, 1)), 1, bipolar=True)
    else:
        g.conv(w, 0.2, 1, signed=True, narrow=False)
    g.relu().quant(0.5, 2)
    imported, _ = check(head(g, rng, 4 * 16, bits=2), tmp_path)
    assert imported.network.layers[0].weight_bits == 1


@pytest.mark.parametrize("kernel, stride, pad, size", [(1, 1, 0, 5), (3, 2, 1, 7), (5, 1, 2, 6),
                                                       (2, 2, 0, 8), (3, 1, 0, 3), (4, 3, 1, 9)])
def test_conv_windows(kernel, stride, pad, size, rng, tmp_path):
    g = conv_net(rng, kernel=kernel, stride=stride, pad=pad, size=size, channels=(2, 3))
    out = (size + 2 * pad - kernel) // stride + 1
    check(head(g, rng, 3 * out * out), tmp_path, count=24)


@pytest.mark.parametrize("kernel, stride, pad", [(2, 2, 0), (3, 1, 1), (3, 2, 1), (2, 1, 0)])
def test_max_pool_windows(kernel, stride, pad, rng, tmp_path):
    g = conv_net(rng, channels=(1, 4), size=6)
    g.max_pool(kernel, stride, pad)
    out = (6 + 2 * pad - kernel) // stride + 1
    check(head(g, rng, 4 * out * out), tmp_path, count=24)


def test_per_tensor_and_per_channel_scales_and_mul(rng, tmp_path):
    g = conv_net(rng, per_channel=False, channels=(1, 4), size=5)
    g.flatten()
    g.matmul(rng.normal(0, 0.3, (100, 6)), rng.uniform(0.05, 0.1, (1, 6)), 4)
    g.step("Mul", rng.uniform(0.5, 2, (1, 6)))
    g.step("Add", rng.normal(0, 0.5, (1, 6)))
    g.relu().quant(rng.uniform(0.1, 0.3, (1, 6)), 4)        # per-channel output scale
    imported, _ = check(g, tmp_path)
    assert imported.network.layers[-1].out_bits == 4


@pytest.mark.parametrize("trans_b, alpha, beta", [(True, 1.0, 1.0), (False, 0.5, 2.0)])
def test_gemm_attributes_and_logit_bias(trans_b, alpha, beta, rng, tmp_path):
    g = conv_net(rng, channels=(1, 4), size=4)
    g.flatten()
    w = rng.normal(0, 0.3, (5, 64) if trans_b else (64, 5))
    weight = g.weights(w, 0.05, 3)
    # the bias on the accumulator grid (as Brevitas' Int32Bias makes it): exact in logits
    unit = 0.3 * 0.05 * alpha
    bias = g.const(rng.integers(-20, 20, 5) * unit / beta)
    g.x = g.node("Gemm", [g.x, weight, bias], transB=int(trans_b), alpha=alpha, beta=beta)
    imported, _ = check(g, tmp_path)
    assert not any("rounded" in note for note in imported.notes)


def test_float_logit_bias_is_rounded_and_said(rng, tmp_path):
    g = head(conv_net(rng, channels=(1, 4), size=4), rng, 64, bias=rng.normal(0, 0.37, 5))
    imported = import_qonnx(g.save(tmp_path / "model.onnx"))
    assert any("logit bias is rounded to accumulator units" in note for note in imported.notes)


def test_quantized_bias_input(rng, tmp_path):
    """Brevitas quantizes a bias to the accumulator scale with a 32-bit Quant node."""
    g = GraphBuilder((1, 4, 4)).quant(1 / 255, 8)
    w_scale = 0.1
    weight = g.weights(rng.normal(0, 0.4, (3, 1, 3, 3)), w_scale, 4)
    bias = g.quant_of(g.const(rng.normal(0, 0.5, 3)), (1 / 255) * w_scale, 32, True)
    g.x = g.node("Conv", [g.x, weight, bias], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    g.relu().quant(0.2, 4)
    check(head(g, rng, 48), tmp_path)


def test_signed_input_in_minus_one_to_one(rng, tmp_path):
    g = GraphBuilder((1, 8, 8)).quant(1 / 127, 8, signed=True, narrow=True)
    g.conv(rng.normal(0, 0.4, (4, 1, 3, 3)), 0.1, 2, pad=0)
    g.relu().quant(0.25, 4)
    g.max_pool(2)
    imported, _ = check(head(g, rng, 4 * 9), tmp_path)
    quantizer = imported.network.input_quantizer
    assert (quantizer.signed, quantizer.zero_code, quantizer.q_range) == (True, 128, (-127, 127))
    assert any("enter the datapath as q + 128" in note for note in imported.notes)


def test_signed_input_through_a_pool_first(rng, tmp_path):
    g = GraphBuilder((2, 8, 8)).quant(0.05, 5, signed=True)
    g.max_pool(2, 2, 0)
    g.conv(rng.normal(0, 0.4, (3, 2, 3, 3)), 0.1, 3, pad=0)
    g.relu().quant(0.4, 3)
    check(head(g, rng, 3 * 4), tmp_path)


def test_signed_activation_after_relu_is_one_bit_narrower(rng, tmp_path):
    g = conv_net(rng, channels=(1, 3), size=5)
    g.nodes.pop()                                          # drop the unsigned activation Quant
    g.x = g.nodes[-1].output[0]
    g.quant(0.3, 5, signed=True, narrow=True)
    imported, _ = check(head(g, rng, 75), tmp_path)
    assert imported.network.layers[0].out_bits == 4


def test_unsigned_narrow_activation_stops_one_below(rng, tmp_path):
    g = conv_net(rng, channels=(1, 3), size=5)
    g.nodes.pop()
    g.x = g.nodes[-1].output[0]
    g.quant(0.1, 3, narrow=True)
    imported, _ = check(head(g, rng, 75), tmp_path)
    assert imported.network.layers[0].output.levels == 6


def test_nhwc_flatten_order(rng, tmp_path):
    """A Transpose to NHWC before the flatten: the dense weights are already in HWC order."""
    g = conv_net(rng, channels=(2, 3), size=4)
    g.step("Transpose", perm=[0, 2, 3, 1])
    check(head(g, rng, 48), tmp_path)


def test_reshape_flatten(rng, tmp_path):
    g = conv_net(rng, channels=(2, 3), size=4)
    g.step("Reshape", np.array([1, 48], dtype=np.int64))
    g.gemm(rng.normal(0, 0.3, (5, 48)), 0.05, 3)
    check(g, tmp_path)


def test_nhwc_input(rng, tmp_path):
    """A graph whose input is NHWC (QKeras' order) with a Transpose to NCHW."""
    g = GraphBuilder((6, 6, 2))
    g.step("Transpose", perm=[0, 3, 1, 2]).quant(1 / 255, 8)
    g.conv(rng.normal(0, 0.4, (3, 2, 3, 3)), 0.1, 3, pad=1)
    g.relu().quant(0.3, 4)
    imported, _ = check(head(g, rng, 108), tmp_path)
    assert imported.input_axes == "HWC"
    assert imported.network.input_shape == (6, 6, 2)


def test_mlp_on_a_flat_input(rng, tmp_path):
    g = GraphBuilder((20,))
    g.quant(0.1, 6, signed=True)
    g.gemm(rng.normal(0, 0.3, (12, 20)), 0.05, 4)
    g.batch_norm(rng.uniform(0.5, 1.5, 12), rng.normal(0, 0.3, 12), rng.normal(0, 0.2, 12),
                 rng.uniform(0.5, 2, 12))
    g.relu().quant(0.2, 3)
    g.matmul(rng.normal(0, 0.3, (12, 4)), 0.1, 2)
    imported, _ = check(g, tmp_path)
    assert imported.network.input_shape == (1, 1, 20) and imported.input_axes == "F"


def test_flatten_of_the_input_itself(rng, tmp_path):
    g = GraphBuilder((2, 3, 3)).quant(1 / 15, 4).flatten()
    g.gemm(rng.normal(0, 0.3, (4, 18)), 0.05, 3)
    imported, _ = check(g, tmp_path)
    assert imported.network.input_shape == (3, 3, 2)


def test_quantized_output_layer(rng, tmp_path):
    g = head(conv_net(rng, channels=(1, 3), size=4), rng, 48)
    g.relu().quant(0.2, 4)
    imported, _ = check(g, tmp_path)
    assert not imported.network.outputs_logits


def test_dynamo_export_layout_and_external_data(rng, tmp_path):
    """PyTorch's dynamo exporter lifts initializers into graph inputs and may keep tensors in
    an external file beside the model."""
    import onnx
    g = head(conv_net(rng, channels=(2, 8), size=8), rng, 8 * 64)
    model = g.model()
    for initializer in model.graph.initializer:
        model.graph.input.append(onnx.helper.make_tensor_value_info(
            initializer.name, initializer.data_type, list(initializer.dims)))
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.onnx.data", size_threshold=64)
    assert (tmp_path / "model.onnx.data").stat().st_size > 1000
    imported = import_qonnx(path)
    inputs, _ = check_inputs(imported, 16)
    assert compare_with_qonnx(imported, inputs).agrees


def test_ties_are_told_apart_from_disagreements(rng, tmp_path):
    """Inputs on the code grid, scales of powers of two and ceiling rounding put pre-activations
    exactly on rounding boundaries: float32 (qonnx) and the exact golden rule may round those
    either way. Every difference must be such a tie, one code apart, and is counted as one."""
    g = GraphBuilder((2, 6, 6))
    g.quant(0.125, 6, signed=True, rounding="CEIL")
    g.conv(rng.normal(0, 0.4, (4, 2, 3, 3)), 0.1, 4, rounding="CEIL", pad=0)
    g.relu().quant(0.25, 3, rounding="CEIL")
    imported, agreement = check(head(g, rng, 4 * 16), tmp_path, count=96)
    conv = agreement.layers[0]
    assert conv.ties > 0 and conv.mismatches == conv.ties
    assert 0 <= conv.worst_tie_distance < 1e-6


def test_identity_dropout_sub_div_and_intquant(rng, tmp_path):
    """The remaining operators: IntQuant (qonnx's newer name), Identity and Dropout on the
    chain, Sub and Div by constants (both operand orders of Sub) before the quantizer."""
    g = GraphBuilder((2, 5, 5))
    g.x = g.node("IntQuant", [g.x, g.const(1 / 255, "scale"), g.const(0.0, "zeropt"),
                              g.const(8.0, "bitwidth")], domain="qonnx.custom_op.general",
                 signed=0, narrow=0, rounding_mode="ROUND")
    g.step("Identity")
    g.conv(rng.normal(0, 0.4, (3, 2, 3, 3)), 0.1, 3, pad=1)
    g.step("Dropout")
    g.step("Sub", rng.normal(0, 0.2, (1, 3, 1, 1)))
    g.step("Div", rng.uniform(0.5, 2, (1, 3, 1, 1)))
    g.x = g.node("Sub", [g.const(rng.normal(0, 0.2, (1, 3, 1, 1))), g.x])     # c - x
    g.step("Mul", -1.0)
    g.relu().quant(0.2, 4)
    imported, _ = check(head(g, rng, 75), tmp_path)
    assert [type(layer).__name__ for layer in imported.network.layers] == ["QuantConv2d",
                                                                           "QuantDense"]
