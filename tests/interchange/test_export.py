"""QONNX export: golden networks written as QONNX, executed by qonnx, imported back as the same
network; and the import / export commands (errors, nothing half-written)."""
import json
import re

import numpy as np
import pytest

from wrpn_rtl import golden as g
from wrpn_rtl.cli import main
from wrpn_rtl.golden.zoo import default_model_path
from wrpn_rtl.interchange.convert import check_inputs, network_differences
from wrpn_rtl.interchange.qonnx_check import compare_with_qonnx
from wrpn_rtl.interchange.qonnx_export import export_qonnx
from wrpn_rtl.interchange.qonnx_import import import_qonnx
from tests.helpers import model_file, random_network

from .graphs import GraphBuilder


def round_trip(network, tmp_path, count=32):
    path = tmp_path / "exported.onnx"
    export_qonnx(network, path)
    imported = import_qonnx(path)
    assert network_differences(network, imported.network) == []
    inputs, _ = check_inputs(imported, count)
    agreement = compare_with_qonnx(imported, inputs)
    assert agreement.agrees, agreement.summary()
    # the exported graph computes the original network's labels on the same inputs
    golden_inputs = imported.to_golden_layout(inputs)
    same = g.execute(network, imported.network.quantize_input(golden_inputs)).classes
    again = g.execute(imported.network, imported.network.quantize_input(golden_inputs)).classes
    assert np.array_equal(same, again)
    return imported


def test_the_shipped_model_round_trips(tmp_path):
    network = g.load_network(default_model_path())
    imported = round_trip(network, tmp_path, count=360)
    # WRPN's input rule is an unsigned 8-bit quantizer with scale 1/255 and ties away in the
    # graph; the exact metadata restores the rule itself (x * 255 rounded exactly)
    node = next(n for n in imported.model.graph.node if n.op_type == "Quant")
    assert [a.s for a in node.attribute if a.name == "rounding_mode"] == [b"HALF_UP"]
    assert imported.network.input_quantizer is None
    from wrpn_rtl.job.network import sample_inputs
    x, _ = sample_inputs(network, 360)
    assert np.array_equal(network.quantize_input(x), imported.network.quantize_input(x))


@pytest.mark.parametrize("weight_bits, act_bits, logits", [
    (1, 1, True), (1, 2, False), (2, 4, True), (3, 3, True), (4, 8, False), (8, 8, True)])
def test_random_networks_round_trip(weight_bits, act_bits, logits, rng, tmp_path):
    spec = g.NetworkSpec((6, 6, 2), 6, [
        g.Conv(4, kernel=3, padding=1, weight_bits=weight_bits, out_bits=act_bits),
        g.MaxPool(2),
        g.Conv(5, kernel=2, stride=1, weight_bits=weight_bits, out_bits=act_bits),
        g.Dense(3, weight_bits=weight_bits, out_bits=None if logits else act_bits,
                batch_norm=not logits)])
    round_trip(random_network(spec, rng), tmp_path)


def test_an_imported_network_exports_as_itself(rng, tmp_path):
    """Signed input, half-even and floor rules, narrow range: what an import brought survives."""
    b = GraphBuilder((2, 6, 6)).quant(1 / 63, 7, signed=True, narrow=True)
    b.conv(rng.normal(0, 0.4, (4, 2, 3, 3)), rng.uniform(0.05, 0.2, (4, 1, 1, 1)), 4)
    b.relu().quant(0.2, 3, narrow=True, rounding="FLOOR")
    b.flatten().gemm(rng.normal(0, 0.3, (3, 64)), 0.05, 3)
    original = import_qonnx(b.save(tmp_path / "original.onnx")).network
    imported = round_trip(original, tmp_path)
    assert imported.network.input_quantizer == original.input_quantizer
    assert imported.network.layers[0].output.rounding == "floor"
    assert imported.network.layers[0].output.levels == 6


# -- the commands ---------------------------------------------------------------------------
def test_export_then_import_commands(tmp_path, capsys):
    onnx_path, npz_path = tmp_path / "m.onnx", tmp_path / "m.npz"
    assert main(["export", str(default_model_path()), "--out", str(onnx_path), "--json",
                 "--check", "16"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["round_trip"] == "same network" and summary["check"]["agrees"]
    assert main(["import", str(onnx_path), "--out", str(npz_path), "--json", "--check",
                 "400"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["check"]["golden_accuracy"] == pytest.approx(0.975, abs=1e-9)
    assert network_differences(g.load_network(default_model_path()),
                               g.load_network(npz_path)) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "m.onnx"]
    # --model takes the .onnx file directly
    assert main(["golden", "--model", str(onnx_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(0.975, abs=1e-9)


@pytest.mark.parametrize("argv, pattern", [
    (["import", "{onnx}", "--out", "{tmp}/model.txt"], r"--out must name a \.npz file, not "),
    (["import", "{onnx}", "--out", "{tmp}"], r"--out must name a \.npz file, not "),
    (["import", "{onnx}", "--out", "{file}/x.npz"], r"--out must be a path that can be written, "
                                                    r"not .*: '.*' is a file"),
    (["import", "{tmp}/missing.onnx", "--out", "{tmp}/m.npz"], r"model file '.*missing\.onnx' "
                                                                r"does not exist"),
    (["export", "{tmp}/missing.npz", "--out", "{tmp}/m.onnx"], r"model file '.*missing\.npz' "
                                                                r"does not exist"),
    (["export", "{npz}", "--out", "{tmp}/m.npz"], r"--out must name a \.onnx file"),
])
def test_command_errors_name_the_flag_and_write_nothing(argv, pattern, tmp_path, capsys, rng):
    onnx_path = GraphBuilder((1, 4, 4)).quant(1 / 255, 8).flatten().gemm(
        rng.normal(0, 0.3, (3, 16)), 0.1, 3).save(tmp_path / "in.onnx")
    npz = model_file(tmp_path / "in.npz", g.NetworkSpec((4, 4, 1), 4, [g.Dense(3, out_bits=None,
                                                                                batch_norm=False)]),
                     rng)
    (tmp_path / "afile").write_text("x")
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [a.format(onnx=onnx_path, tmp=tmp_path, file=tmp_path / "afile", npz=npz)
            for a in argv]
    assert main(argv) == 1
    assert re.search(pattern, capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_unsupported_graph_writes_nothing(tmp_path, capsys, rng):
    b = GraphBuilder((1, 4, 4)).quant(1 / 255, 8).step("Sigmoid")
    b.save(tmp_path / "in.onnx")
    assert main(["import", str(tmp_path / "in.onnx"), "--out", str(tmp_path / "m.npz")]) == 1
    assert "has op type 'Sigmoid'" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()





def test_exact_metadata_that_disagrees_with_the_graph_is_not_used(tmp_path):
    import onnx
    from wrpn_rtl.interchange.qonnx_export import EXACT_KEY
    network = g.load_network(default_model_path())
    path = tmp_path / "m.onnx"
    export_qonnx(network, path)
    model = onnx.load(str(path))
    entry = next(p for p in model.metadata_props if p.key == EXACT_KEY)
    exact = json.loads(entry.value)
    exact["layers"][0]["multiplier"][0] = (2.0).hex()           # not what the graph computes
    entry.value = json.dumps(exact)
    onnx.save(model, str(path))
    imported = import_qonnx(path)
    assert any("metadata does not match the graph (layer0)" in note or
               "metadata does not match the graph (conv1)" in note for note in imported.notes)
    assert imported.network.input_quantizer is not None          # the graph's own input rule
