"""What an import refuses, and how it says so: unsupported operators and constructs, malformed
and hostile files. Each error names the file, the node (or tensor) and the rule."""
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from wrpn_rtl.interchange import InterchangeError
from wrpn_rtl.interchange import onnx_file
from wrpn_rtl.interchange.qonnx_check import compare_with_qonnx
from wrpn_rtl.interchange.convert import check_inputs
from wrpn_rtl.interchange.qonnx_import import import_qonnx

from .graphs import GraphBuilder


def small(rng, **conv):
    g = GraphBuilder((1, 4, 4)).quant(1 / 255, 8)
    g.conv(rng.normal(0, 0.4, (2, 1, 3, 3)), 0.1, 3, **conv)
    return g


def refused(builder, tmp_path, pattern):
    path = builder.save(tmp_path / "model.onnx")
    with pytest.raises(InterchangeError, match=pattern):
        import_qonnx(path)


def test_unsupported_operator_is_named_with_the_supported_list(rng, tmp_path):
    g = small(rng).step("Sigmoid")
    refused(g, tmp_path, r"node 'Sigmoid_\d+' has op type 'Sigmoid', which wrpn-rtl does not "
                         r"import; supported: Quant, IntQuant, BipolarQuant, Conv, .*MaxPool")


def test_nonzero_zero_point(rng, tmp_path):
    g = GraphBuilder((1, 4, 4))
    g.x = g.node("Quant", ["input", g.const(0.1), g.const(3.0), g.const(8.0)],
                 domain="qonnx.custom_op.general", signed=0, narrow=0, rounding_mode="ROUND")
    refused(g, tmp_path, r"\(Quant\): the zero point must be 0 .*not \[3\.0\]")


def test_unknown_rounding_mode(rng, tmp_path):
    g = GraphBuilder((1, 4, 4)).quant(0.1, 8, rounding="STOCHASTIC")
    refused(g, tmp_path, r"rounding_mode must be one of ROUND, HALF_EVEN, .*not 'STOCHASTIC'")


def test_grouped_convolution(rng, tmp_path):
    g = GraphBuilder((2, 4, 4)).quant(1 / 255, 8)
    weight = g.weights(rng.normal(0, 0.4, (2, 1, 3, 3)), 0.1, 3)
    g.x = g.node("Conv", [g.x, weight], kernel_shape=[3, 3], group=2)
    refused(g, tmp_path, r"\(Conv\): group must be 1, not 2")


def test_asymmetric_padding(rng, tmp_path):
    g = GraphBuilder((1, 4, 4)).quant(1 / 255, 8)
    weight = g.weights(rng.normal(0, 0.4, (2, 1, 3, 3)), 0.1, 3)
    g.x = g.node("Conv", [g.x, weight], kernel_shape=[3, 3], pads=[1, 1, 0, 0])
    refused(g, tmp_path, r"pads must be the same on every side .*not \[1, 1, 0, 0\]")


def test_dilation_and_ceil_mode(rng, tmp_path):
    g = GraphBuilder((1, 6, 6)).quant(1 / 255, 8)
    weight = g.weights(rng.normal(0, 0.4, (2, 1, 3, 3)), 0.1, 3)
    g.x = g.node("Conv", [g.x, weight], kernel_shape=[3, 3], dilations=[2, 2])
    refused(g, tmp_path, r"dilations must be \[1, 1\], not \[2, 2\]")
    g = GraphBuilder((1, 5, 5)).quant(1 / 255, 8)
    g.x = g.node("MaxPool", [g.x], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    refused(g, tmp_path, r"ceil_mode must be 0")


def test_branches_are_refused(rng, tmp_path):
    g = small(rng).relu().quant(0.2, 4)
    first = g.x
    g.conv(rng.normal(0, 0.4, (2, 2, 1, 1)), 0.1, 3)
    g.x = g.node("Add", [g.x, first])
    refused(g, tmp_path, r"one chain of layers: this node reads .*branches and residual "
                         r"connections are not supported")


def test_input_must_be_quantized_first(rng, tmp_path):
    g = GraphBuilder((1, 4, 4))
    g.conv(rng.normal(0, 0.4, (2, 1, 3, 3)), 0.1, 3)
    refused(g, tmp_path, r"the graph input must be quantized by a Quant node before any Conv")


def test_per_channel_input_scale(rng, tmp_path):
    g = GraphBuilder((2, 4, 4)).quant(np.array([0.1, 0.2]).reshape(1, 2, 1, 1), 8)
    refused(g, tmp_path, r"the input quantizer's scale must be one value per tensor")


def test_signed_hidden_activation_without_relu(rng, tmp_path):
    g = small(rng).quant(0.2, 4, signed=True)
    refused(g, tmp_path, r"a signed activation quantizer needs a Relu before it")


def test_signed_input_with_padding(rng, tmp_path):
    g = GraphBuilder((1, 4, 4)).quant(0.1, 8, signed=True)
    g.conv(rng.normal(0, 0.4, (2, 1, 3, 3)), 0.1, 3, pad=1)
    refused(g, tmp_path, r"a signed input must reach its first layer without zero padding: the "
                         r"datapath pads with code 0, which is the value -12\.8 here")


def test_per_channel_logit_scale(rng, tmp_path):
    g = GraphBuilder((1, 4, 4)).quant(1 / 255, 8).flatten()
    g.gemm(rng.normal(0, 0.4, (3, 16)), np.array([[0.1], [0.2], [0.3]]), 3)
    refused(g, tmp_path, r"ends in logits whose scale per channel .* must be one positive value")


def test_per_channel_activation_scale_into_a_layer(rng, tmp_path):
    g = small(rng, pad=1).relu().quant(np.array([0.1, 0.2]).reshape(1, 2, 1, 1), 4)
    g.conv(rng.normal(0, 0.4, (2, 2, 1, 1)), 0.1, 3)
    refused(g, tmp_path, r"the input's scale must be one value per tensor .* not one per channel")


def test_relu_at_the_output_without_a_quantizer(rng, tmp_path):
    g = small(rng).relu()
    refused(g, tmp_path, r"ends in a Relu without a quantizer")


def test_bipolar_activations(rng, tmp_path):
    g = small(rng)
    g.x = g.node("BipolarQuant", [g.x, g.const(1.0)], domain="qonnx.custom_op.general")
    refused(g, tmp_path, r"bipolar activations are not supported")


def test_wide_weights(rng, tmp_path):
    g = GraphBuilder((1, 4, 4)).quant(1 / 255, 8)
    g.conv(rng.normal(0, 0.4, (2, 1, 3, 3)), 1e-6, 16, narrow=False)
    refused(g, tmp_path, r"the weights must be at most 16 bits in the datapath, not 17")


def test_a_checker_that_can_fail(rng, tmp_path):
    """A changed weight code in the imported network is a disagreement, not a tie."""
    g = small(rng, pad=1).relu().quant(0.3, 4).flatten()
    g.gemm(rng.normal(0, 0.3, (3, 32)), 0.05, 3)
    imported = import_qonnx(g.save(tmp_path / "model.onnx"))
    layer = imported.network.layers[0]
    weights = layer.weights.copy()
    weights[0, 1, 1, 0] = 3 if weights[0, 1, 1, 0] != 3 else -3
    from wrpn_rtl.golden import QuantConv2d, QuantizedNetwork
    changed = QuantConv2d(name=layer.name, in_shape=layer.in_shape, in_bits=layer.in_bits,
                          weights=weights, weight_bits=layer.weight_bits,
                          weight_scale=layer.weight_scale, stride=layer.stride,
                          padding=layer.padding, output=layer.output)
    imported.network = QuantizedNetwork(
        input_shape=imported.network.input_shape, input_bits=imported.network.input_bits,
        layers=(changed,) + imported.network.layers[1:],
        input_quantizer=imported.network.input_quantizer)
    inputs, _ = check_inputs(imported, 16)
    agreement = compare_with_qonnx(imported, inputs)
    assert not agreement.agrees
    assert agreement.layers[0].first_disagreement.startswith("first disagreement at")


# -- hostile and malformed files --------------------------------------------------------------
def test_missing_folder_and_non_onnx_files(tmp_path):
    with pytest.raises(InterchangeError, match=r"model file '.*nothere\.onnx' does not exist"):
        import_qonnx(tmp_path / "nothere.onnx")
    with pytest.raises(InterchangeError, match=r"is a folder, not an ONNX model file"):
        import_qonnx(tmp_path)
    (tmp_path / "text.onnx").write_text("hello, not protobuf at all\n" * 10)
    with pytest.raises(InterchangeError, match=r"is not (a readable ONNX model|an ONNX model)"):
        import_qonnx(tmp_path / "text.onnx")


def test_file_size_bound(rng, tmp_path, monkeypatch):
    path = small(rng).save(tmp_path / "model.onnx")
    monkeypatch.setattr(onnx_file, "MAX_MODEL_BYTES", 100)
    with pytest.raises(InterchangeError, match=r"holds \d+ bytes; model files must be at most 100"):
        import_qonnx(path)


def test_declared_shape_bound_before_allocation(rng, tmp_path):
    """A tensor declaring a huge shape is refused from its header, before any data is read."""
    model = small(rng).model()
    huge = onnx.TensorProto(name="huge", data_type=onnx.TensorProto.FLOAT, dims=[1 << 20, 1 << 12])
    huge.raw_data = b"\0" * 16
    model.graph.initializer.append(huge)
    onnx.save(model, str(tmp_path / "model.onnx"))
    with pytest.raises(InterchangeError, match=r"initializer 'huge' declares shape \[1048576, "
                                               r"4096\], more than \d+ bytes"):
        import_qonnx(tmp_path / "model.onnx")


def test_raw_data_must_match_the_shape(rng, tmp_path):
    model = small(rng).model()
    model.graph.initializer[0].raw_data = model.graph.initializer[0].raw_data[:-4]
    onnx.save(model, str(tmp_path / "model.onnx"))
    with pytest.raises(InterchangeError, match=r"declares shape .* bytes\) but stores \d+ bytes"):
        import_qonnx(tmp_path / "model.onnx")


def external(rng, tmp_path, location, length=None):
    model = small(rng).model()
    tensor = next(t for t in model.graph.initializer if t.name.startswith("weight"))
    data = tensor.raw_data
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"),
                       ("length", str(len(data) if length is None else length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    folder = tmp_path / "model"
    folder.mkdir()
    onnx.save(model, str(folder / "model.onnx"))
    return folder, data


def test_external_data_beside_the_model_is_read(rng, tmp_path):
    folder, data = external(rng, tmp_path, "weights.bin")
    (folder / "weights.bin").write_bytes(data)
    assert import_qonnx(folder / "model.onnx").network.layers


@pytest.mark.parametrize("location, pattern", [
    ("../secret.bin", r"names external data '\.\./secret\.bin', which leaves the model's folder"),
    ("/etc/passwd", r"names external data at the absolute path '/etc/passwd'"),
    ("sub/../../secret.bin", r"which leaves the model's folder"),
])
def test_external_data_outside_the_folder_is_refused(location, pattern, rng, tmp_path):
    folder, data = external(rng, tmp_path, location)
    (tmp_path / "secret.bin").write_bytes(data)
    with pytest.raises(InterchangeError, match=pattern):
        import_qonnx(folder / "model.onnx")


def test_external_data_through_a_symlink_out_is_refused(rng, tmp_path):
    folder, data = external(rng, tmp_path, "link.bin")
    (tmp_path / "secret.bin").write_bytes(data)
    (folder / "link.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(InterchangeError, match=r"resolves outside the model's folder"):
        import_qonnx(folder / "model.onnx")


def test_external_data_length_and_range(rng, tmp_path):
    folder, data = external(rng, tmp_path, "weights.bin", length=8)
    (folder / "weights.bin").write_bytes(data)
    with pytest.raises(InterchangeError, match=r"declares shape .* but its external data holds 8"):
        import_qonnx(folder / "model.onnx")


def test_external_data_past_the_end_of_its_file(rng, tmp_path):
    folder, data = external(rng, tmp_path, "weights.bin")
    (folder / "weights.bin").write_bytes(data[:-4])
    with pytest.raises(InterchangeError, match=r"reads bytes 0\.\.\d+ of 'weights\.bin', which "
                                               r"holds \d+ bytes"):
        import_qonnx(folder / "model.onnx")


def test_missing_external_file(rng, tmp_path):
    folder, _ = external(rng, tmp_path, "weights.bin")
    with pytest.raises(InterchangeError, match=r"which does not exist beside the model"):
        import_qonnx(folder / "model.onnx")
