"""The checked-in Brevitas model (tools/brevitas_digits.py; both PyTorch exporters): imported
bit-exact against qonnx's execution, at the accuracy Brevitas itself reported, and its
generated design bit-exact in cocotb on Icarus and Verilator on its own test inputs."""
import json
from pathlib import Path

import numpy as np
import pytest

from wrpn_rtl.cli import main
from wrpn_rtl.interchange.convert import user_inputs
from wrpn_rtl.interchange.qonnx_check import compare_with_qonnx
from wrpn_rtl.interchange.qonnx_import import import_qonnx
from wrpn_rtl import golden as g

DATA = Path(__file__).parent.parent / "data" / "brevitas"
MODELS = {"torchscript": DATA / "digits_torchscript.onnx",
          "dynamo": DATA / "digits_dynamo" / "model.onnx"}
INPUTS, LABELS = DATA / "test_inputs.npy", DATA / "test_labels.npy"


def recorded_accuracy(imported):
    return float(next(p.value for p in imported.model.model.metadata_props
                      if p.key == "test_accuracy"))


@pytest.mark.parametrize("exporter", sorted(MODELS))
def test_brevitas_model_imports_bit_exact(exporter):
    imported = import_qonnx(MODELS[exporter])
    inputs, labels = user_inputs(imported, INPUTS, LABELS)
    agreement = compare_with_qonnx(imported, inputs)
    assert agreement.agrees, agreement.summary()
    assert agreement.end_to_end_equal == len(inputs) == 360
    network = imported.network
    classes = g.execute(network, network.quantize_input(imported.to_golden_layout(inputs))).classes
    accuracy = float((classes == labels).mean())
    assert accuracy == pytest.approx(recorded_accuracy(imported), abs=1e-6)   # Brevitas' own
    assert network.input_quantizer.signed and network.layers[0].weight_bits == 4
    assert network.layers[-1].is_logits


def test_both_exporters_give_the_same_network():
    from wrpn_rtl.interchange.convert import network_differences
    a, b = (import_qonnx(MODELS[name]).network for name in ("torchscript", "dynamo"))
    assert network_differences(a, b) == []


@pytest.mark.slow
@pytest.mark.parametrize("simulator, images", [("icarus", 12), ("verilator", 360)])
def test_brevitas_model_runs_bit_exact_in_rtl(simulator, images, tmp_path, capsys):
    model = tmp_path / "model.npz"
    assert main(["import", str(MODELS["torchscript"]), "--out", str(model), "--inputs",
                 str(INPUTS), "--labels", str(LABELS), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["check"]["golden_accuracy"] == pytest.approx(summary["framework_test_accuracy"],
                                                               abs=1e-6)
    assert main(["sim", "--model", str(model), "--inputs", str(INPUTS), "--labels", str(LABELS),
                 "--images", str(images), "--simulator", simulator, "--out",
                 str(tmp_path / "design"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mismatches"] == 0 and result["images"] == images
    assert result["cycles_per_image"] == result["expected_cycles_per_image"]
    if images == 360:
        assert result["accuracy"] == pytest.approx(summary["framework_test_accuracy"], abs=1e-6)


def test_generate_reports_the_accuracy_import_measured(tmp_path, capsys):
    """An imported model's inputs are its framework's ([-1, 1] here), not the digits in [0, 1]:
    generate reports the accuracy import measured on the labelled inputs, or none."""
    with_labels, without = tmp_path / "a.npz", tmp_path / "b.npz"
    assert main(["import", str(MODELS["torchscript"]), "--out", str(with_labels), "--inputs",
                 str(INPUTS), "--labels", str(LABELS)]) == 0
    assert main(["import", str(MODELS["torchscript"]), "--out", str(without)]) == 0
    capsys.readouterr()
    for model, expected in ((with_labels, 0.9778), (without, None)):
        assert main(["generate", "--model", str(model), "--out", str(tmp_path / model.stem),
                     "--json"]) == 0
        accuracy = json.loads(capsys.readouterr().out)["test_accuracy"]
        assert accuracy == (None if expected is None else pytest.approx(expected, abs=1e-4))
