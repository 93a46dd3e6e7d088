# amaranth: UnusedElaboratable=no
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wrpn_rtl import __version__
from wrpn_rtl import golden as g
from wrpn_rtl.cli import main
from wrpn_rtl.compiler.folding import choose_foldings
from wrpn_rtl.compiler.manifest import build_accelerator, write_design
from wrpn_rtl.job.design import fit_margin
from wrpn_rtl.job.reports import foldings_text
from wrpn_rtl.job.simulate import simulate
from tests.helpers import model_file


def run_json(capsys, argv):
    code = main(argv + ["--json"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else None), captured.err


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"wrpn-rtl {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    # each subcommand listed on a line of its own with its help text
    listed = set(re.findall(r"^\s{4}(\w+)\s{2,}\S", out, flags=re.M))
    assert listed == {"generate", "sim", "synth", "flow", "train", "golden", "bench", "sweep",
                      "build", "infer", "import", "export"}


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("wrpn-rtl")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == f"wrpn-rtl {__version__}"


def _flags(command, capsys):
    """The option strings of ``wrpn-rtl COMMAND --help`` (each as a whole word)."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", capsys.readouterr().out))


@pytest.mark.parametrize("command, extra", [
    ("generate", set()), ("synth", {"--freq", "--seeds", "--design"}),
    ("sim", {"--images", "--inputs", "--labels", "--stall", "--simulator", "--jobs", "--wave",
             "--design"}),
    ("flow", {"--images", "--stall", "--simulator", "--jobs", "--wave", "--freq", "--seeds"})])
def test_shared_flags_are_spelled_alike(command, extra, capsys):
    shared = {"--help", "--model", "--wbits", "--abits", "--width", "--train", "--epochs",
              "--seed", "--out", "--target", "--json", "--folding", "--target-cycles", "--max-lc"}
    assert _flags(command, capsys) == shared | extra


def test_generate_default_fits_the_up5k_budget(tmp_path, capsys):
    code, summary, _ = run_json(capsys, ["generate", "--out", str(tmp_path)])
    assert code == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["estimate"]["device_logic_cells"] <= fit_margin("ice40") * 5280
    assert manifest["cycles_per_image"] == summary["cycles_per_image"]
    assert len(manifest["foldings"]) == 3
    assert manifest["output"]["words_per_image"] == 1
    assert manifest["output"]["fields"][-1] == {"width": 4, "signed": False}   # the label
    assert [p["name"] for p in manifest["ports"]][:2] == ["clk", "rst"]
    assert all("accumulator_bits" in s for s in manifest["stages"] if "pe" in s)
    assert "module wrpn_accel" in (tmp_path / "wrpn_accel.v").read_text()
    assert g.load_network(tmp_path / "model.npz").layers[0].weight_bits == 2


def test_generate_from_a_folding_file_and_a_cycle_target(tmp_path, capsys):
    folding = tmp_path / "folding.json"
    folding.write_text(json.dumps({"foldings": [{"pe": 2, "simd": 3, "window_simd": 1},
                                                {"pe": 2, "simd": 8}, {"pe": 1, "simd": 8}]}))
    code, summary, _ = run_json(capsys, ["generate", "--out", str(tmp_path / "a"),
                                         "--folding", str(folding)])
    assert code == 0 and summary["cycles_per_image"] == 4608
    assert [f["pe"] for f in summary["foldings"]] == [2, 2, 1]
    code, summary, _ = run_json(capsys, ["generate", "--out", str(tmp_path / "b"),
                                         "--target-cycles", "1000"])
    assert code == 0 and summary["cycles_per_image"] <= 1000


def test_requantize_the_default_at_other_bits(tmp_path, capsys):
    code, summary, _ = run_json(capsys, ["generate", "--out", str(tmp_path), "--wbits", "1",
                                         "--abits", "3", "--target-cycles", "4096"])
    assert code == 0
    network = g.load_network(tmp_path / "model.npz")
    assert {layer.weight_bits for layer in network.layers if hasattr(layer, "weight_bits")} == {1}
    assert network.layers[0].out_bits == 3
    assert "re-quantized to w1a3" in json.loads((tmp_path / "manifest.json").read_text())["model"]
    assert 0.1 < summary["test_accuracy"] < 0.97       # not re-trained: it loses accuracy


@pytest.mark.parametrize("argv, message", [
    (["--target-cycles", "10"], r"--target-cycles must be an integer >= 144 \(the fewest "
                                r"cycles per image this network can take\), not 10"),
    (["--max-lc", "100"], r"--max-lc must be at least \d+ \(the estimate of the smallest design "
                          r"this network allows\), not 100"),
    (["--target", "xc7a35t"], r"--target must be one of ice40-up5k, ice40-hx8k, ecp5-25k, "
                              r"ecp5-85k, asic, not 'xc7a35t'"),
    (["--max-lc", "9000", "--target-cycles", "5000"], r"give at most one of --folding, "
                                                      r"--target-cycles and --max-lc"),
    (["--width", "3"], r"--width 3 differs from the model's width 2.0: a different width needs "
                       r"re-training; add --train"),
    (["--wbits", "0"], r"weight_bits must be an integer in \[1, 16\], not 0"),
    (["--model", "missing.npz"], r"model file 'missing.npz' does not exist"),
])
def test_generate_rejects_bad_input_and_writes_nothing(argv, message, tmp_path, capsys,
                                                       monkeypatch):
    import re
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--out", "out"] + argv) == 1
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert not (tmp_path / "out" / "wrpn_accel.v").exists()


@pytest.mark.parametrize("argv, code, message", [
    (["generate", "--out", "a_file"], 1,
     r"^wrpn-rtl: error: --out must be a folder, not 'a_file': it is a file$"),
    (["generate", "--out", "a_file/design"], 1,
     r"^wrpn-rtl: error: --out must be a folder, not 'a_file/design': it lies under the file "
     r"'a_file'$"),
    (["generate", "--out", "out", "--folding", "a_folder"], 1,
     r"^wrpn-rtl: error: folding file 'a_folder' must be a JSON file, not a folder$"),
    (["generate", "--train", "--seed", "-1"], 2,
     r"argument --seed: must be a non-negative integer, not -1$"),
    (["train", "--seed", "-1"], 2, r"argument --seed: must be a non-negative integer, not -1$"),
    (["synth", "--seeds", "0"], 2, r"argument --seeds: must be a positive integer, not 0$"),
    (["generate", "--width", "inf"], 2, r"argument --width: must be a positive finite number, "
                                        r"not inf$"),
    (["train", "--wbits", "0", "--out", "out"], 1,
     r"^wrpn-rtl: error: --wbits must be an integer in \[1, 16\], not 0$"),
])
def test_careless_input_gets_an_error_not_a_traceback(argv, code, message, tmp_path, capsys,
                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "a_folder").mkdir()
    try:
        status = main(argv)
    except SystemExit as exit_info:             # the parser's errors
        status = exit_info.code
    assert status == code
    err = capsys.readouterr().err.strip().splitlines()
    assert re.search(message, err[-1]), err
    assert not (tmp_path / "out" / "model.npz").exists()


def test_a_network_too_big_for_the_default_budget_is_told_where_it_fits(tmp_path, capsys,
                                                                          rng):
    spec = g.NetworkSpec((4, 4, 2), 16, [
        g.Conv(3, 3, padding=1, weight_bits=4, out_bits=16), g.MaxPool(2),
        g.Dense(2, weight_bits=8, out_bits=16), g.Dense(3, out_bits=None, batch_norm=False)])
    model = model_file(tmp_path / "wide.npz", spec, rng)
    assert main(["generate", "--model", model, "--out", str(tmp_path / "out")]) == 1
    assert re.search(r"^wrpn-rtl: error: the smallest design of this network needs about \d+ "
                     r"logic cells \(estimated\), more than the default budget of 3960 \(75% of "
                     r"ice40-up5k's 5280; no --max-lc given\); it fits --target \S+",
                     capsys.readouterr().err)
    assert not (tmp_path / "out" / "model.npz").exists()


def test_generate_removes_the_reports_of_an_older_design(tmp_path, capsys, rng):
    from wrpn_rtl.job.design import REPORTS
    spec = g.NetworkSpec((4, 4, 1), 4, [g.Conv(2, 3, padding=1, out_bits=2),
                                         g.Dense(3, out_bits=None, batch_norm=False)])
    model = model_file(tmp_path / "m.npz", spec, rng)
    out = tmp_path / "design"
    out.mkdir()
    for name in REPORTS:
        (out / name).write_text("{}")                 # reports of an older design
    (out / "notes.txt").write_text("mine")
    assert main(["generate", "--model", model, "--out", str(out)]) == 0
    assert not any((out / name).exists() for name in REPORTS)
    assert (out / "manifest.json").exists() and (out / "notes.txt").read_text() == "mine"


def test_bad_folding_files(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["generate", "--out", str(tmp_path), "--folding", str(bad)]) == 1
    assert "must be JSON" in capsys.readouterr().err
    bad.write_text(json.dumps({"foldings": [{"pe": 3, "simd": 9}, {"pe": 1, "simd": 1},
                                            {"pe": 1, "simd": 1}]}))
    assert main(["generate", "--out", str(tmp_path), "--folding", str(bad)]) == 1
    assert "pe must be a positive divisor of out_features 16, not 3" in capsys.readouterr().err
    bad.write_text(json.dumps({"foldings": [{"pe": 1, "simd": 1}]}))
    assert main(["generate", "--out", str(tmp_path), "--folding", str(bad)]) == 1
    assert "one folding per Conv/Dense layer (3), not 1" in capsys.readouterr().err
    bad.write_text(json.dumps({"foldings": [{"pe": 1, "simd": 1}, {"pe": 1, "simd": 1},
                                            {"pe": 1, "simd": 1, "lut_ram": "yes"}]}))
    assert main(["generate", "--out", str(tmp_path), "--folding", str(bad)]) == 1
    assert "layer4: lut_ram must be true or false, not 'yes'" in capsys.readouterr().err
    bad.write_text(json.dumps({"foldings": [{"pe": 1, "simd": 1, "lut_ram": True},
                                            {"pe": 1, "simd": 1}, {"pe": 1, "simd": 1}]}))
    assert main(["generate", "--out", str(tmp_path), "--folding", str(bad)]) == 1
    assert ("layer0: lut_ram needs a device with LUT RAM (ecp5), not ice40-up5k (ice40)"
            in capsys.readouterr().err)
    # DSP pairs: a count, where the compiler uses DSP blocks, within the device's
    for entry, target, message in [
            ({"pe": 2, "simd": 36, "dsp_pairs": -1}, "ice40-up5k",
             "layer2: dsp_pairs must be a non-negative integer, not -1"),
            ({"pe": 2, "simd": 36, "dsp_pairs": 1}, "ecp5-25k",
             "layer2: dsp_pairs must be 0 for ecp5-25k (the compiler uses no DSP blocks "
             "there), not 1"),
            ({"pe": 2, "simd": 36, "dsp_pairs": 5}, "ice40-up5k",
             "dsp_pairs and dsp_requantizer must take at most ice40-up5k's 8 DSP blocks (PE x "
             "dsp_pairs + PE / pe_per_requantizer with dsp_requantizer, over the layers), "
             "not 10"),
            ({"pe": 2, "simd": 36, "dsp_requantizer": True}, "ecp5-25k",
             "layer2: dsp_requantizer must be false for ecp5-25k (the compiler uses no DSP "
             "blocks there), not true"),
            ({"pe": 2, "simd": 36, "dsp_requantizer": 1}, "ice40-up5k",
             "layer2: dsp_requantizer must be true or false, not 1"),
            ({"pe": 2, "simd": 4, "dsp_pairs": 3}, "ice40-up5k",
             r"layer2: dsp_pairs must be an integer in [0, 2] (half the 4 lanes), not 3"),
            # shared requantizers: a divisor of PE, within SF, a form that takes a sum a cycle
            ({"pe": "4", "simd": 36}, "ice40-up5k",
             "layer2: pe must be a positive integer, not '4'"),
            ({"pe": 4, "simd": 0}, "ice40-up5k",
             "layer2: simd must be a positive integer, not 0"),
            ({"pe": 4, "simd": 36, "pe_per_requantizer": 3}, "ice40-up5k",
             "layer2: pe_per_requantizer must be a positive divisor of pe 4, not 3"),
            ({"pe": 4, "simd": 36, "pe_per_requantizer": True}, "ice40-up5k",
             "layer2: pe_per_requantizer must be a positive divisor of pe 4, not True"),
            ({"pe": 8, "simd": 36, "pe_per_requantizer": 8}, "ice40-up5k",
             "layer2: pe_per_requantizer must be 1 (a PE's words are SF = 4 cycles apart "
             "and the requantizer takes the 8 sums one per cycle), not 8")]:
        bad.write_text(json.dumps({"foldings": [{"pe": 1, "simd": 9}, entry,
                                                {"pe": 1, "simd": 2}]}))
        assert main(["generate", "--out", str(tmp_path), "--folding", str(bad),
                     "--target", target]) == 1
        assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("*.v"))


def test_flags_are_checked_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sim", "--images", "0"])
    assert exit_info.value.code == 2
    assert "--images: must be a positive integer, not 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sim", "--simulator", "modelsim"])
    assert "invalid choice: 'modelsim'" in capsys.readouterr().err


def test_sim_runs_test_images_bit_exact(tmp_path, capsys):
    code, summary, err = run_json(capsys, ["sim", "--out", str(tmp_path), "--images", "4",
                                           "--target-cycles", "2048"])
    assert code == 0, err
    assert summary["mismatches"] == 0 and summary["images"] == 4
    assert summary["accuracy"] == summary["golden_accuracy"]
    expected = summary["expected_cycles_per_image"]
    assert 0.98 * expected <= summary["cycles_per_image"] <= 1.02 * expected
    assert json.loads((tmp_path / "sim.json").read_text())["mismatches"] == 0


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_sim_reports_mismatches_by_image(simulator, tmp_path, rng):
    spec = g.NetworkSpec((4, 4, 1), 4, [g.Conv(3, 3, padding=1, out_bits=2),
                                         g.Dense(4, out_bits=None, batch_norm=False)])
    params = g.random_parameters(spec, rng)
    right = g.quantize_network(spec, params)
    params[-1].bias[:] += 100.0                  # a different last layer: wrong logits
    wrong = g.quantize_network(spec, params)
    foldings = choose_foldings(right, target_cycles=512)
    verilog, _, _ = write_design(build_accelerator(right, foldings), tmp_path, name="net")
    images = rng.integers(0, 16, (3, 4, 4, 1))
    summary = simulate(build_accelerator(wrong, foldings), verilog, images=images,
                       labels=None, simulator=simulator, work_dir=tmp_path / "sim",
                       wave="failing")
    assert [entry["image"] for entry in summary["mismatched_images"]] == [0, 1, 2]
    assert summary["mismatches"] > 0
    expected = g.execute(wrong, images).outputs[-1].reshape(3, -1)
    first = summary["mismatched_images"][0]["first_difference"]
    assert first["expected"] == expected[0, first["field"]] != first["actual"]
    # the failing images' signals, from the first image's first input word on
    wave = Path(summary["wave"])
    assert wave.name == ("wave.vcd" if simulator == "verilator" else "wave.fst")
    assert wave.stat().st_size > 1000
    # The design simulated in Amaranth is the one golden describes: no layer differs there,
    # so the difference lies in the Verilog (here: of another network).
    assert [e["mismatching_words"] for e in summary["by_layer"]] == [0, 0, 0]


def _small_design_and_images(tmp_path, rng):
    """A small conv + dense network's accelerator at 512 cycles, its Verilog in ``tmp_path``,
    and six random images."""
    spec = g.NetworkSpec((4, 4, 1), 4, [g.Conv(3, 3, padding=1, out_bits=2),
                                         g.Dense(4, out_bits=None, batch_norm=False)])
    network = g.quantize_network(spec, g.random_parameters(spec, rng))
    accelerator = build_accelerator(network, choose_foldings(network, target_cycles=512))
    verilog, _, _ = write_design(accelerator, tmp_path, name="net")
    return accelerator, verilog, rng.integers(0, 16, (6, 4, 4, 1))


def test_sim_compares_what_arrived_before_a_timeout(tmp_path, rng):
    accelerator, verilog, images = _small_design_and_images(tmp_path, rng)
    # a limit that only the first images can meet stands in for a design that hangs
    limit = 3 * accelerator.cycles_per_image
    summary = simulate(accelerator, verilog, images=images, labels=None, simulator="icarus",
                       work_dir=tmp_path / "sim", max_cycles=limit)
    assert summary["timed_out"] and 0 < summary["words_received"] < 6
    arrived = summary["words_received"]
    assert [e["image"] for e in summary["mismatched_images"]] == list(range(arrived, 6))
    assert all(e["missing_words"] == 1 for e in summary["mismatched_images"])
    assert summary["by_layer"][-1]["mismatching_words"] == 0     # Amaranth's run completes


def test_sim_split_over_processes_numbers_each_runs_images(tmp_path, rng):
    """Two simulator processes, three images each: every output is checked against its own
    image, a missing word is reported under its image's number in the whole set, and the
    steady-state cycles come from within each run."""
    accelerator, verilog, images = _small_design_and_images(tmp_path, rng)
    summary = simulate(accelerator, verilog, images=images, labels=None, simulator="icarus",
                       work_dir=tmp_path / "sim", jobs=2)
    assert summary["jobs"] == 2 and summary["mismatches"] == 0
    assert summary["cycles_per_image"] == accelerator.cycles_per_image
    # each run's limit lets only its first images through
    summary = simulate(accelerator, verilog, images=images, labels=None, simulator="icarus",
                       work_dir=tmp_path / "sim", jobs=2,
                       max_cycles=3 * accelerator.cycles_per_image)
    assert summary["timed_out"] and summary["words_received"] % 2 == 0
    arrived = summary["words_received"] // 2                  # in each run, the same
    assert 0 < arrived < 3
    assert [e["image"] for e in summary["mismatched_images"]] == [
        *range(arrived, 3), *range(3 + arrived, 6)]


def test_sim_with_stalls_from_the_command_line(tmp_path, capsys, rng):
    spec = g.NetworkSpec((5, 4, 2), 3, [g.Conv(3, 3, padding=2, out_bits=3), g.MaxPool(2),
                                         g.Dense(3, out_bits=None, batch_norm=False)])
    model = model_file(tmp_path / "m.npz", spec, rng)
    code, summary, err = run_json(capsys, ["sim", "--model", model, "--out",
                                           str(tmp_path / "o"), "--images", "5",
                                           "--stall", "0.4", "--target-cycles", "400",
                                           "--jobs", "2"])
    assert code == 0, err
    assert summary["mismatches"] == 0 and not summary["timed_out"] and summary["jobs"] == 2
    first_run = tmp_path / "o" / "sim_icarus" / "part0"          # images 0-2; 3-4 in part1
    config = json.loads((first_run / "bench.json").read_text())
    stall = f"={round(0.4 * 65536)}"
    assert {"+stall_in" + stall, "+stall_out" + stall} <= set(config["plusargs"])
    inputs = (first_run / "inputs.hex").read_text().split()
    assert len(inputs) == 3 * 40
    assert inputs[:40] == ["0"] * 40                             # the all-zero image first
    assert inputs[40:80] == ["7"] * 40                           # then the all-maximum one
    assert len((first_run.parent / "part1" / "inputs.hex").read_text().split()) == 2 * 40


@pytest.mark.parametrize("stall", ["1", "-0.1", "x"])
def test_stall_must_be_a_probability(stall, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sim", "--stall", stall])
    assert exit_info.value.code == 2
    assert re.search(r"argument --stall: must be a probability in \[0, 1\), not ",
                     capsys.readouterr().err)


def test_golden_on_a_model_that_is_not_the_digits(tmp_path, capsys, rng):
    spec = g.NetworkSpec((6, 5, 3), 6, [g.Conv(4, 3, stride=2, padding=1, out_bits=5),
                                         g.Dense(4, out_bits=None, batch_norm=False)])
    model = model_file(tmp_path / "m.npz", spec, rng)
    code, summary, err = run_json(capsys, ["golden", "--model", model])
    assert code == 0, err
    assert summary["accuracy"] is None and not summary["labelled"]
    assert summary["images"] > 100 and summary["integer_vs_float_mismatches"] == 0


@pytest.mark.slow
def test_train_then_golden_round_trip(tmp_path, capsys):
    code, summary, _ = run_json(capsys, ["train", "--out", str(tmp_path), "--epochs", "3"])
    assert code == 0 and (tmp_path / "model.npz").is_file()
    assert 0.3 < summary["test_accuracy"] <= 1.0   # 3 epochs: far above chance (0.1)
    assert g.load_float_model(tmp_path / "model.npz") is not None
    code, checked, _ = run_json(capsys, ["golden", "--model", str(tmp_path / "model.npz")])
    assert code == 0
    assert checked["accuracy"] == pytest.approx(summary["test_accuracy"])
    assert checked["integer_vs_float_mismatches"] == 0


@pytest.mark.slow
def test_retrain_at_another_width(tmp_path, capsys):
    code, summary, err = run_json(capsys, ["generate", "--out", str(tmp_path), "--train",
                                           "--width", "1", "--wbits", "1", "--epochs", "2",
                                           "--target-cycles", "2000"])
    assert code == 0, err
    network = g.load_network(tmp_path / "model.npz")
    assert network.layers[0].out_shape[2] == 8 and network.layers[0].weight_bits == 1
    assert "re-trained" in summary["source"]


def manifest_stages(folder):
    return json.loads((folder / "manifest.json").read_text())["stages"]


@pytest.mark.slow
def test_synth_a_small_model_on_ice40_and_asic(tmp_path, capsys, rng):
    spec = g.NetworkSpec((6, 6, 1), 4, [g.Conv(4, 3, padding=1, weight_bits=2, out_bits=2),
                                         g.MaxPool(2),
                                         g.Dense(3, weight_bits=2, out_bits=None,
                                                 batch_norm=False)])
    model = model_file(tmp_path / "tiny.npz", spec, rng)
    code, summary, err = run_json(capsys, ["synth", "--model", model,
                                           "--out", str(tmp_path / "out"), "--target",
                                           "ice40-up5k", "--target", "asic"])
    assert code == 0, err
    ice40, asic = summary["rows"]
    assert 0 < ice40["logic_cells"] < 5280 and ice40["fmax_mhz"] > 5
    assert ice40["images_per_second"] == round(ice40["fmax_mhz"] * 1e6
                                               / ice40["cycles_per_image"])
    assert asic["cells"] > 0 and asic["transistors"] > 4 * asic["cells"] // 2
    table = (tmp_path / "out" / "synth.md").read_text()
    assert "ice40-up5k" in table and "asic" in table
    # One design per target, each folded for its device, with its own manifest and report.
    for row, target in ((ice40, "ice40-up5k"), (asic, "asic")):
        folder = tmp_path / "out" / target
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["target"] == target and row["design"] == str(folder)
        assert row["cycles_per_image"] == manifest["cycles_per_image"]
        assert target in (folder / "synth.md").read_text()
    assert asic["cycles_per_image"] <= ice40["cycles_per_image"]   # no device limit: fastest
    # The per-stage breakdown: every stage measured, the MAC lanes apart.
    stages = {stage["stage"]: stage for stage in ice40["stages"]}
    assert set(stages) == {stage["name"] for stage in manifest_stages(tmp_path / "out" /
                                                                      "ice40-up5k")}
    assert stages["layer0"]["lanes"]["luts"] > 0 and "mvu.lanes" in stages["layer0"]["parts"]
    assert 0 < ice40["roofline"]["lane_lut_share"] < 1
    assert ice40["roofline"]["macs_per_image"] == 6 * 6 * 4 * 9 + 3 * 3 * 3 * 4
    # A timing target the design cannot meet is a failure with the numbers.
    assert main(["synth", "--model", model, "--out",
                 str(tmp_path / "out2"), "--target", "ice40-up5k", "--freq", "900"]) == 1
    assert "timing failed: Fmax" in capsys.readouterr().err
    # ... whose measured figures stay in the reports
    report = json.loads((tmp_path / "out2" / "synth.json").read_text())
    assert report["rows"][0]["logic_cells"] > 0 and "timing failed" in report["failures"][0]
    table = (tmp_path / "out2" / "synth.md").read_text()
    assert f"| ice40-up5k | {foldings_text(report['rows'][0]['foldings'])} |" in table
    assert "| failed | ice40-up5k: timing failed" in table
    # the tools' logs hold what they said
    assert "Executing" in (tmp_path / "out2" / "synth_ice40-up5k" / "run" /
                           "yosys.log").read_text()


def test_localize_names_the_first_layer_that_differs(rng):
    from wrpn_rtl.job.simulate import localize
    spec = g.NetworkSpec((4, 4, 2), 3, [g.Conv(3, 3, padding=1, out_bits=2), g.MaxPool(2),
                                         g.Dense(4, out_bits=None, batch_norm=False)])
    net = g.quantize_network(spec, g.random_parameters(spec, rng))
    dut = build_accelerator(net, choose_foldings(net, target_cycles=256))
    images = rng.integers(0, 8, (2, 4, 4, 2))
    trace = g.execute(net, images)
    clean = localize(dut, images, trace)
    assert [e["stage"] for e in clean] == ["layer0", "layer2", "output"]
    assert [e["layer"] for e in clean] == ["layer1", "layer2", "output"]   # the pool is fused
    assert all(e["mismatching_words"] == 0 for e in clean)
    trace.outputs[1][1, 0, 0, 0] += 1               # golden pool output of image 1 changed
    report = localize(dut, images, trace)
    assert report[0]["mismatching_words"] == 1 and report[0]["first_image"] == 1
    assert report[1]["mismatching_words"] == 0


def test_a_model_without_its_float_parameters_cannot_change_bits(tmp_path, capsys, rng):
    spec = g.NetworkSpec((4, 4, 1), 4, [g.Conv(2, 3, padding=1, out_bits=2),
                                         g.Dense(3, out_bits=None, batch_norm=False)])
    model = model_file(tmp_path / "codes_only.npz", spec, rng, with_float=False)
    assert main(["generate", "--model", model, "--out", str(tmp_path), "--wbits", "3"]) == 1
    assert ("--wbits/--abits 3/2 differ from the model's 2/2 and " + model
            + " keeps no float parameters to re-quantize from; add --train"
            ) in capsys.readouterr().err
    assert main(["generate", "--model", model, "--out", str(tmp_path), "--train"]) == 1
    assert f"--train needs the float network the model came from; {model} has none" \
        in capsys.readouterr().err
    # Its own bits need neither: the codes are compiled as they are.
    assert main(["generate", "--model", model, "--out", str(tmp_path)]) == 0


@pytest.mark.slow
def test_flow_on_a_model_file_with_the_asic_target(tmp_path, capsys, rng):
    spec = g.NetworkSpec((5, 5, 2), 3, [g.Conv(3, 3, padding=1, weight_bits=3, out_bits=2),
                                         g.MaxPool(2),
                                         g.Dense(4, weight_bits=2, out_bits=None,
                                                 batch_norm=False)])
    model = model_file(tmp_path / "small.npz", spec, rng)
    code, summary, err = run_json(capsys, ["flow", "--model", model,
                                           "--target", "asic", "--images", "3",
                                           "--out", str(tmp_path / "out")])
    assert code == 0, err
    golden = summary["golden"]                       # not a digits network: no test set,
    assert golden["accuracy"] is None and golden["integer_vs_float_mismatches"] == 0   # no labels
    assert "golden integer vs float mismatches (256 sample images) | 0" in (
        tmp_path / "out" / "summary.md").read_text()
    sim = summary["designs"][0]["sim"]
    assert sim["mismatches"] == 0 and sim["images"] == 3
    assert summary["synth"][0]["target"] == "asic" and summary["synth"][0]["cells"] > 0
    table = (tmp_path / "out" / "summary.md").read_text()
    assert "Conv2d(5, 5, 3) w3 a2 -> MaxPool(2, 2, 3) -> Dense(1, 1, 4) w2 logits" in table
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["failures"] == []


@pytest.mark.slow
def test_the_shipped_model_is_what_its_recorded_command_makes(tmp_path, capsys):
    """The default model file records the `wrpn-rtl train` command that made it; run again,
    the command gives the same network (every code, scale and threshold) and accuracies."""
    from wrpn_rtl.golden.zoo import load_default_model
    shipped = load_default_model()
    record = shipped.metadata["remake"]
    assert record["command"][0] == "train" and "--seed" in record["command"]
    assert main(record["command"] + ["--out", str(tmp_path)]) == 0
    capsys.readouterr()
    remade = g.load_network(tmp_path / "model.npz")
    for key in ("test_accuracy", "float_test_accuracy", "float_width1_test_accuracy"):
        assert remade.metadata[key] == shipped.metadata[key]
    for a, b in zip(shipped.layers, remade.layers):
        assert repr(a) == repr(b)
        for field in ("weights", "weight_scale"):
            if hasattr(a, field):
                np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        if getattr(a, "requantizer", None) is not None:
            np.testing.assert_array_equal(a.requantizer.thresholds, b.requantizer.thresholds)


def test_a_missing_simulator_names_its_package(tmp_path, capsys, monkeypatch, rng):
    """Without Icarus on PATH, `sim` says which Debian package to install (no traceback)."""
    spec = g.NetworkSpec((4, 4, 1), 4, [g.Conv(3, 3, padding=1, out_bits=2),
                                         g.Dense(3, out_bits=None, batch_norm=False)])
    model = model_file(tmp_path / "m.npz", spec, rng)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["sim", "--model", model, "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err.strip().endswith(
        "iverilog is not installed: install the Debian package 'iverilog' (apt-get install "
        "iverilog)")


def test_numpy_blas_kernels_are_pinned_before_numpy_loads():
    """Importing wrpn_rtl first pins OpenBLAS's kernels on x86-64 Linux with AVX2 and FMA (so
    training gives the same network on AVX2 and AVX-512 machines), and leaves a value the
    user set alone."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    probe = "import wrpn_rtl, os, numpy; print(os.environ.get('OPENBLAS_CORETYPE'))"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    seen = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                          text=True, check=True).stdout.strip()
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text().split() if cpuinfo.exists() else []
    pinned = sys.platform == "linux" and "avx2" in flags and "fma" in flags
    assert seen == ("Haswell" if pinned else "None")
    kept = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=dict(env, OPENBLAS_CORETYPE="Zen"), check=True).stdout.strip()
    assert kept == "Zen"
