"""``wrpn-rtl sweep``: flags, the step cache, the scheduling (with a pool that fakes the
steps), the reports and the claim paragraph; then the real quick sweep - interrupted and
resumed, run again from the cache, and on a Dask LocalCluster with the same results."""
import concurrent.futures
import csv
import io
import json
import os
import re
from pathlib import Path
import signal
import subprocess
import sys
import time

import pytest

from wrpn_rtl.cli import main
from wrpn_rtl.synth.sweep import (DEFAULT_BITS, DEFAULT_FILL, Point, QUICK, SweepConfig,
                                  estimate_remaining, parse_bits, parse_fill, parse_widths,
                                  plan_steps, run_sweep)
from wrpn_rtl.synth.sweep_cache import StepCache, step_key
from wrpn_rtl.synth.sweep_report import (CSV_COLUMNS, accuracy_grid, csv_rows, pareto_front,
                                         write_sweep_reports, wrpn_claim)
from wrpn_rtl.synth.sweep_steps import DESIGN_FILES, network_memory

WRPN_RTL = Path(sys.executable).with_name("wrpn-rtl")


# -- flags ---------------------------------------------------------------------------------------
def test_bits_and_widths_lists():
    assert parse_bits("2/4, 8/8,2/4") == ((2, 4), (8, 8))
    assert parse_widths("1,2.5") == (1.0, 2.5)
    for bad in ("2x4", "2/4/1", "0/4", "2/17", ""):
        with pytest.raises(ValueError, match=r"^must be weight/activation bit pairs of 1\.\.16"):
            parse_bits(bad)
    for bad in ("0", "1,-2", "inf", "a"):
        with pytest.raises(ValueError, match=r"^must be positive numbers separated by commas"):
            parse_widths(bad)
    assert dict(parse_fill("ecp5=0.65")) == dict(DEFAULT_FILL, ecp5=0.65)
    assert dict(parse_fill("ice40=0.7, ecp5=1")) == {"ice40": 0.7, "ecp5": 1.0}
    for bad in ("ecp5", "ecp5=0", "ecp5=1.5", "asic=0.5", "ecp5=x", "ecp5=nan"):
        with pytest.raises(ValueError, match=r"^must be FAMILY=SHARE pairs \(families ice40, "
                                             r"ecp5, shares in \(0, 1\]\)"):
            parse_fill(bad)


@pytest.mark.parametrize("argv, message", [
    (["--bits", "2x4"], r"--bits: must be weight/activation bit pairs of 1\.\.16 .* not '2x4'"),
    (["--widths", "0"], r"--widths: must be positive numbers .* not '0'"),
    (["--jobs", "0"], r"--jobs: must be a positive integer, not 0"),
    (["--seeds", "-1"], r"--seeds: must be a positive integer, not -1"),
    (["--fill", "ecp5=2"], r"--fill: must be FAMILY=SHARE pairs .* not 'ecp5=2'"),
])
def test_bad_flags_name_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", *argv])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_bad_combinations_are_errors(tmp_path, capsys):
    out = ["--out", str(tmp_path / "out")]
    assert main(["sweep", "--jobs", "2", "--scheduler", "tcp://127.0.0.1:1", *out]) == 1
    assert "give --jobs or --scheduler, not both" in capsys.readouterr().err
    assert main(["sweep", "--target", "ice40-up9k", *out]) == 1
    assert "--target must be one of ice40-up5k" in capsys.readouterr().err
    assert main(["sweep", "--model", str(tmp_path), *out]) == 1
    assert "is a folder, not a model file" in capsys.readouterr().err
    from wrpn_rtl.golden.zoo import default_model_path
    assert main(["sweep", "--model", str(default_model_path()), "--widths", "3", *out]) == 1
    assert ("--widths must be the model's own width 2 with --model, not 3"
            in capsys.readouterr().err)
    (tmp_path / "m.onnx").write_bytes(b"")
    assert main(["sweep", "--model", str(tmp_path / "m.onnx"), *out]) == 1
    assert "is a QONNX model: the sweep re-quantizes float parameters" in capsys.readouterr().err
    assert not (tmp_path / "out" / "sweep.json").exists()


def test_config_rules():
    with pytest.raises(ValueError, match=r"^bits must be \(weight bits, activation bits\)"):
        SweepConfig(bits=((2, 0),))
    with pytest.raises(ValueError, match=r"^seeds must be at least 1, not 0"):
        SweepConfig(seeds=0)
    with pytest.raises(ValueError, match=r"^targets must be one of"):
        SweepConfig(targets=("fpga",))
    assert len(SweepConfig().points()) == 18
    assert SweepConfig().bits == DEFAULT_BITS


def test_plan_has_every_step_once():
    config = SweepConfig()
    steps = plan_steps(config)
    kinds = [s.kind for s in steps]
    assert kinds.count("train") == 18 * 3 and kinds.count("float") == 3 * 3
    assert kinds.count("build") == kinds.count("check") == 18 * 3
    designs = [s for s in steps if s.kind == "build"]
    # every design is built from its point's first seed, asic at the fixed cycle budget
    assert all(s.needs["model.npz"][0].args["seed"] == 0 for s in designs)
    assert all(s.args.get("target_cycles") == config.asic_cycles
               for s in designs if s.args["target"] == "asic")
    assert all("target_cycles" not in s.args for s in designs if s.args["target"] != "asic")
    # FPGA designs are planned for the sweep's share of each family's logic
    assert {s.args["target"]: s.args.get("fill") for s in designs} == {
        "ice40-up5k": 0.75, "ecp5-25k": 0.5, "asic": None}
    other = SweepConfig(fill=parse_fill("ecp5=0.65"))
    assert {s.args["fill"] for s in plan_steps(other) if s.kind == "build"
            and s.args["target"] == "ecp5-25k"} == {0.65}
    with pytest.raises(ValueError, match=r"^fill must give shares in \(0, 1\]"):
        SweepConfig(fill=(("ecp5", 0.0),))


def test_the_fill_sets_the_planned_design_and_its_rule(tmp_path):
    """A sweep's fill reaches the folding: half of the ECP5 plans a slower, smaller design
    than the 65 % ``generate`` uses, and the rule says which share."""
    from wrpn_rtl.golden.zoo import load_default_model
    from wrpn_rtl.job.common import StepError
    from wrpn_rtl.job.design import choose
    network = load_default_model()
    half, half_rule = choose(network, target="ecp5-25k", fill=0.5)
    default, default_rule = choose(network, target="ecp5-25k")
    assert half_rule == "fastest design within 50% of ecp5-25k's 24288 LUT4s"
    assert default_rule == "fastest design within 65% of ecp5-25k's 24288 LUT4s"
    assert (sum(f.pe * f.simd for f in half) < sum(f.pe * f.simd for f in default))
    with pytest.raises(StepError, match=r"^the fill must be a share of the device in \(0, 1\]"):
        choose(network, target="ecp5-25k", fill=1.5)
    with pytest.raises(StepError, match=r"more than the default budget of 52 \(1% of "
                                        r"ice40-up5k's 5280; no --max-lc given\)"):
        choose(network, target="ice40-up5k", fill=0.01)


def test_network_memory_counts_weights_and_the_largest_feature_maps():
    from wrpn_rtl.golden.zoo import load_default_model
    network = load_default_model()
    memory = network_memory(network)
    conv1, pool1 = network.layers[0], network.layers[1]
    assert memory["layers"][0]["weight_bits"] == conv1.weights.size * 2
    assert memory["layers"][0]["fmap_bits"] == 8 * 8 * 8 + 8 * 8 * 16 * 4
    assert memory["layers"][1]["weight_bits"] == 0
    assert memory["weight_bits"] == sum(l.weights.size * 2 for l in network.layers
                                        if hasattr(l, "weights"))
    assert memory["largest_fmap_bits"] == max(e["fmap_bits"] for e in memory["layers"])


# -- the cache -----------------------------------------------------------------------------------
def test_cache_keeps_whole_entries_only(tmp_path):
    cache = StepCache(tmp_path / "cache")
    key = step_key("train", {"seed": 0}, {})
    assert cache.get("train", key) is None
    # a staging folder left by an interrupted write is not an entry
    (tmp_path / "cache" / "train" / f".{key}.123.staging").mkdir(parents=True)
    assert cache.get("train", key) is None
    entry = cache.put("train", key, {"test_accuracy": 0.9}, {"model.npz": b"abc"})
    assert entry.result == {"test_accuracy": 0.9}
    assert entry.file("model.npz").read_bytes() == b"abc"
    assert cache.get("train", key).result == {"test_accuracy": 0.9}
    assert not list((tmp_path / "cache" / "train").glob(f".{key}.{os.getpid()}.staging"))
    with pytest.raises(ValueError, match=r"^step file names must be plain"):
        cache.put("train", "k2", {}, {"../x": b""})


def test_keys_follow_arguments_inputs_and_kind():
    base = step_key("build", {"target": "asic"}, {"model.npz": "aa"})
    assert base == step_key("build", {"target": "asic"}, {"model.npz": "aa"})
    assert base != step_key("build", {"target": "ecp5-25k"}, {"model.npz": "aa"})
    assert base != step_key("build", {"target": "asic"}, {"model.npz": "ab"})
    assert base != step_key("check", {"target": "asic"}, {"model.npz": "aa"})


# -- scheduling, with steps faked in-process --------------------------------------------------------
class FakePool:
    """Runs "steps" at once in the test process: designs of 8-bit points do not fit, and the
    build of a model whose arguments hold ``crash`` raises (a crash, never cached)."""

    workers, where = 2, "a fake pool"

    def __init__(self, crash=None):
        self.submitted, self.crash = [], crash

    def submit(self, kind, args, inputs):
        self.submitted.append((kind, dict(args)))
        future = concurrent.futures.Future()
        label = args.get("label") or f"w{args.get('wbits')}a{args.get('abits')}"
        try:
            future.set_result(self._run(kind, args, inputs, label))
        except Exception as error:
            future.set_exception(error)
        return future

    def _run(self, kind, args, inputs, label):
        files = {}
        if kind == "train":
            accuracy = 0.9 + 0.01 * args["wbits"] - 0.001 * args["seed"]
            result = {"test_accuracy": accuracy, "integer_vs_float_mismatches": 0,
                      "memory": {"weight_bits": 100 * args["wbits"], "largest_fmap_bits": 50,
                                 "layers": []}}
            files = {"model.npz": json.dumps(args).encode()}
        elif kind == "requantize":
            result = {"test_accuracy": 0.9, "integer_vs_float_mismatches": 0, "memory": None,
                      "float_test_accuracy": 0.97}
            files = {"model.npz": json.dumps(args).encode()}
        elif kind == "float":
            result = {"test_accuracy": 0.93 - 0.002 * args["seed"]}
        elif kind == "build":
            if "w8a8" in label:
                result = {"failure": "needs about 4783 logic cells, more than the budget"}
            else:
                if self.crash and self.crash in inputs["model.npz"].decode():
                    raise RuntimeError("the worker died")
                bits = json.loads(inputs["model.npz"].decode())["wbits"]
                design = {"folding_rule": "fake", "foldings": [{"pe": 1, "simd": 1}],
                          "cycles_per_image": 1000, "estimate": {"device_logic_cells": 10},
                          "manifest_sha256": "0" * 64}
                synth = ({"cells": 1000 * bits, "flip_flops": 10, "transistors": 6000 * bits}
                         if args["target"] == "asic" else
                         {"logic_cells": 3000 + bits, "logic_capacity": 5280, "flip_flops": 10,
                          "bram": 1, "dsp": 0, "fmax_mhz": 40.0,
                          "images_per_second": 40000 // bits})
                result = {"design": design, "synth": synth, "attempts": []}
                files = {name: inputs["model.npz"] + name.encode() for name in DESIGN_FILES}
        else:
            result = {"images": 2, "mismatches": 0, "bit_exact": True}
        return {"result": result, "files": files, "seconds": 0.01}

    def wait(self, futures, timeout):
        return set(futures)

    def close(self, cancel=False):
        pass


def _fake_sweep(tmp_path, pool, **config):
    config = SweepConfig(**{**dict(widths=(1.0, 2.0), bits=((2, 4), (8, 8)), seeds=2,
                                   targets=("ice40-up5k", "asic")), **config})
    return run_sweep(config, tmp_path / "cache", pool=pool)


def test_a_failed_step_stops_its_point_only_and_a_crash_is_not_cached(tmp_path):
    pool = FakePool(crash='"width": 2.0, "wbits": 2')
    results = _fake_sweep(tmp_path, pool)
    by_label = {p["label"]: p for p in results["points"]}
    assert set(by_label) == {"x1 w2a4", "x1 w8a8", "x2 w2a4", "x2 w8a8"}
    ok = by_label["x1 w2a4"]
    assert ok["accuracy"]["seeds"] == pytest.approx([0.92, 0.919]) and ok["accuracy"]["std"] > 0
    assert ok["targets"]["asic"]["synth"]["transistors"] == 12000
    assert ok["targets"]["ice40-up5k"]["failure"] is None
    # the design that does not fit: synthesis and check skipped with its reason
    eight = by_label["x1 w8a8"]["targets"]["ice40-up5k"]
    assert eight["design"] is None and "more than the budget" in eight["failure"]
    assert eight["failure"].startswith("build x1 w8a8 ice40-up5k: ")
    assert eight["check"] is None
    # the crash is reported on its point and target, and kept out of the cache
    crashed = by_label["x2 w2a4"]["targets"]["ice40-up5k"]
    assert crashed["failure"] == "crashed: RuntimeError: the worker died"
    # w8a8 builds (2 points x 2 targets) and their checks, the 2 crashed builds and theirs
    assert results["steps"]["failed"] == 4 * 2 + 2 * 2
    # a rerun takes everything from the cache but the crashed steps (and their checks)
    again = FakePool()
    rerun = _fake_sweep(tmp_path, again)
    assert sorted(kind for kind, _ in again.submitted) == ["build", "build", "check", "check"]
    assert rerun["steps"]["cached"] == rerun["steps"]["total"] - 4 - 4
    assert rerun["points"][2]["targets"]["ice40-up5k"]["failure"] is None
    assert [b["accuracy"]["mean"] for b in rerun["float_baselines"]] == pytest.approx([0.929] * 2)


def test_a_model_file_is_requantized_not_trained(tmp_path):
    from wrpn_rtl.golden.zoo import default_model_path
    pool = FakePool()
    results = _fake_sweep(tmp_path, pool, model=default_model_path(), widths=(2.0,), seeds=1,
                          bits=((2, 4), (3, 5)))
    assert sorted({kind for kind, _ in pool.submitted}) == ["build", "check", "requantize"]
    assert results["float_baselines"] == [{"width": 2.0, "accuracy": {
        "seeds": [0.97], "mean": 0.97, "std": 0.0, "min": 0.97, "max": 0.97}, "failures": [],
        "from": "the full-precision network the model file records"}]


def test_the_requantize_step_on_the_shipped_model():
    from wrpn_rtl.golden import load_network
    from wrpn_rtl.golden.zoo import default_model_path
    from wrpn_rtl.synth.sweep_steps import run_step
    output = run_step("requantize", {"wbits": 3, "abits": 5},
                      {"source.npz": default_model_path().read_bytes()})
    result = output["result"]
    assert result["integer_vs_float_mismatches"] == 0
    assert 0.5 < result["test_accuracy"] <= 1
    shipped = load_network(default_model_path())
    assert result["float_test_accuracy"] == shipped.metadata["float_test_accuracy"]
    assert result["memory"]["weight_bits"] % 3 == 0
    failed = run_step("requantize", {"wbits": 3, "abits": 5}, {"source.npz": b"not a model"})
    assert failed["result"]["failure"].startswith("model file '--model'")
    assert failed["files"] == {}


def test_the_command_reports_everything_and_fails_on_a_crash(tmp_path, monkeypatch, capsys):
    import wrpn_rtl.synth.sweep as sweep
    monkeypatch.setattr(sweep, "LocalPool", lambda jobs: FakePool(crash='"wbits": 2'))
    out = tmp_path / "out"
    assert main(["sweep", "--widths", "1", "--bits", "2/4,8/8", "--seeds", "1", "--target",
                 "asic", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert re.search(r"error: build x1 w2a4 asic: crashed: RuntimeError: the worker died$",
                     err.strip())
    results = json.loads((out / "sweep.json").read_text())
    assert results["points"][1]["targets"]["asic"]["failure"].startswith("build x1 w8a8")
    assert (out / "sweep.md").exists() and (out / "accuracy_vs_logic_asic.png").exists()
    # without the crash: a design that does not fit is a result, not an error
    monkeypatch.setattr(sweep, "LocalPool", lambda jobs: FakePool())
    assert main(["sweep", "--widths", "1", "--bits", "2/4,8/8", "--seeds", "1", "--target",
                 "asic", "--out", str(out)]) == 0
    assert "## The WRPN claim, checked" in capsys.readouterr().out


def test_a_design_nextpnr_cannot_place_is_built_again_smaller(monkeypatch):
    """The build step (in this process, synthesis faked): placement fails above 80 % of the
    first design's estimated logic cells, so the design shrinks by 10 % per attempt until one
    places (the default network: 3960, 3400, then 3038 cells)."""
    import wrpn_rtl.job.synthesize as job_synthesize
    from wrpn_rtl.golden.zoo import default_model_path
    from wrpn_rtl.synth.sweep_steps import SHRINK, run_step
    placed, tried = [], []

    def synthesize(accelerator, out, target, *, generated, **options):
        logic = generated["estimate"]["device_logic_cells"]
        tried.append(logic)
        if logic > 0.8 * tried[0]:
            raise job_synthesize.PlacementFailed(f"{target}: nextpnr did not finish within "
                                                 f"300 s ({logic} estimated)")
        placed.append(logic)
        return {"target": target, "logic_cells": logic, "design": str(out)}

    monkeypatch.setattr(job_synthesize, "synthesize", synthesize)
    output = run_step("build", {"target": "ice40-up5k", "label": "x2 w2a4"},
                      {"model.npz": default_model_path().read_bytes()})
    result = output["result"]
    attempts = result["attempts"]
    assert attempts and all("did not finish within 300 s" in a["failure"] for a in attempts)
    sizes = [a["estimate"]["device_logic_cells"] for a in attempts] + placed
    assert all(later <= SHRINK * earlier for earlier, later in zip(sizes, sizes[1:]))
    assert result["synth"] == {"target": "ice40-up5k", "logic_cells": placed[0]}
    assert result["design"]["folding_rule"].startswith("fastest design within")
    assert sorted(output["files"]) == sorted(DESIGN_FILES)

    def never(accelerator, out, target, **options):
        raise job_synthesize.PlacementFailed(f"{target}: does not fit: ICESTORM_LC 6000 used "
                                             f"of 5280 (113%)")

    monkeypatch.setattr(job_synthesize, "synthesize", never)
    failed = run_step("build", {"target": "ice40-up5k", "label": "x2 w2a4"},
                      {"model.npz": default_model_path().read_bytes()})["result"]
    assert failed["failure"].startswith("no design placed in 3 attempts; the last: "
                                        "ice40-up5k: does not fit")


def test_first_seed_models_and_long_chains_start_first(tmp_path):
    pool = FakePool()
    _fake_sweep(tmp_path, pool, seeds=3)
    kinds = [kind for kind, _ in pool.submitted]
    first_design = kinds.index("build")
    # before the first design only first-seed models ran; floats come last
    assert all(args["seed"] == 0 for kind, args in pool.submitted[:first_design])
    assert kinds[-1] == "float"


def test_the_largest_builds_start_first():
    """Among ready steps of one kind the widest, most precise points go first, ECP5 builds
    before the others: the long builds do not trail at the end of the sweep."""
    from wrpn_rtl.synth.sweep import _priority
    steps = plan_steps(SweepConfig())
    builds = sorted((s for s in steps if s.kind == "build"), key=_priority)
    assert builds[0].label == "build x3 w8a8 ecp5-25k"
    assert [s.args["target"] for s in builds[:4]] == ["ecp5-25k"] * 4
    trains = sorted((s for s in steps if s.kind == "train"), key=_priority)
    assert trains[0].label == "train x3 w8a8 seed 0"
    assert all(s.args["seed"] == 0 for s in trains[:18])


def test_estimate_of_the_time_left(tmp_path):
    steps = plan_steps(SweepConfig(widths=(1.0,), bits=((2, 4),), seeds=1,
                                   targets=("asic",)))
    now = time.monotonic()
    assert estimate_remaining(steps, 1, now) == 8 + 150 + 20 + 6
    steps[0].state, steps[0].seconds = "done", 30.0          # train measured: 30 s
    steps[1].state, steps[1].started = "running", now - 10   # build running for 10 s
    assert estimate_remaining(steps, 2, now) == pytest.approx((140 + 20 + 6) / 2)


# -- reports -------------------------------------------------------------------------------------
def test_reports_of_a_faked_sweep(tmp_path):
    results = _fake_sweep(tmp_path, FakePool())
    plots = write_sweep_reports(tmp_path, results)
    assert sorted(p.name for p in plots) == [
        "accuracy_vs_logic_asic.png", "accuracy_vs_logic_ice40-up5k.png",
        "accuracy_vs_throughput_ice40-up5k.png"]
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert data["plots"] == [p.name for p in plots]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "sweep.csv").read_text())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 4 * 2 + 2                     # points x targets + full precision
    eight = [r for r in rows if r["label"] == "x1 w8a8" and r["target"] == "ice40-up5k"][0]
    assert eight["logic_cells"] == "" and "more than the budget" in eight["failure"]
    markdown = (tmp_path / "sweep.md").read_text()
    assert "| width | w2a4 | w8a8 | full precision |" in markdown
    assert "| 1x | 0.9195 ± 0.0007 |" in markdown
    assert "## ice40-up5k" in markdown and "## asic" in markdown
    for plot in plots:
        shown = _plot_description(plot)
        assert {p["label"] for p in shown["points"]} | {o.split(":")[0] for o in
                                                        shown["omitted"]} == {
            "x1 w2a4", "x1 w8a8", "x2 w2a4", "x2 w8a8"}
    throughput = _plot_description(tmp_path / "accuracy_vs_throughput_ice40-up5k.png")
    assert {p["label"] for p in throughput["points"]} == {"x1 w2a4", "x2 w2a4"}
    assert throughput["pareto"] == ["x1 w2a4", "x2 w2a4"]     # equal: neither beats the other


def _plot_description(path):
    """A PNG written by the sweep: valid, and the points it shows (its Description chunk)."""
    from PIL import Image
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.size[0] >= 400
        return json.loads(image.text["Description"])


def test_pareto_front():
    items = [("a", 1, 0.9), ("b", 2, 0.95), ("c", 3, 0.94), ("d", 1, 0.8), ("e", 2, 0.95)]
    assert pareto_front(items) == ["a", "b", "e"]
    assert pareto_front([]) == []


def _claim_results(points, baseline, targets=("ice40-up5k",)):
    """Results as :func:`gather` makes them, for the claim: points are
    ``(width, wbits, abits, accuracies, {target: (cost, images/s)})``."""
    entries = []
    for width, wbits, abits, accuracies, hardware in points:
        mean = sum(accuracies) / len(accuracies)
        std = (sum((a - mean) ** 2 for a in accuracies) / (len(accuracies) - 1)) ** 0.5 \
            if len(accuracies) > 1 else 0.0
        entry = {"label": Point(width, wbits, abits).label, "width": width, "wbits": wbits,
                 "abits": abits, "accuracy": {"seeds": accuracies, "mean": mean, "std": std},
                 "targets": {}}
        for target in targets:
            cost, speed = hardware.get(target, (None, None))
            synth = (None if cost is None else
                     {"transistors": cost} if target == "asic" else
                     {"logic_cells": cost, "images_per_second": speed})
            entry["targets"][target] = {"synth": synth, "failure": None if synth else
                                        "does not fit", "design": {"cycles_per_image": 2048}}
        entries.append(entry)
    return {"config": {"targets": list(targets)}, "points": entries,
            "float_baselines": [{"width": 1.0, "accuracy": {
                "seeds": baseline, "mean": sum(baseline) / len(baseline),
                "std": 0.01 if len(baseline) > 1 else 0.0}}]}


def test_claim_holds_when_a_reduced_point_reaches_full_precision_and_costs_less():
    results = _claim_results([
        (1.0, 8, 8, [0.95, 0.97], {"ice40-up5k": (3000, 5000), "asic": (90000, None)}),
        (2.0, 2, 4, [0.96, 0.97], {"ice40-up5k": (3500, 20000), "asic": (40000, None)}),
        (1.0, 1, 1, [0.80, 0.82], {"ice40-up5k": (3000, 90000), "asic": (5000, None)})],
        [0.96, 0.98], targets=("ice40-up5k", "asic"))
    text = wrpn_claim(results)
    assert "Reaching it: x1 w8a8 (0.9600 ± 0.0141), x2 w2a4 (0.9650 ± 0.0071)" in text
    assert "Below it: x1 w1a1 (0.8100)" in text
    assert "x2 w2a4, runs 4.0x the images/s of the 8-bit point x1 w8a8" in text
    assert "needs 0.44x the transistors of the 8-bit point" in text
    assert text.endswith("holds here on ice40-up5k, asic.")


def test_claim_fails_plainly():
    results = _claim_results([
        (1.0, 8, 8, [0.97], {"ice40-up5k": (3000, 5000)}),
        (2.0, 2, 4, [0.90], {"ice40-up5k": (3500, 20000)})], [0.97])
    text = wrpn_claim(results)
    assert "one seed: no spread was measured" in text
    assert "On ice40-up5k no reduced-precision point that reaches it was built." in text
    assert text.endswith("does not hold here on ice40-up5k.")
    no_eight = _claim_results([(2.0, 2, 4, [0.97], {"ice40-up5k": (3500, 20000)})], [0.97])
    assert wrpn_claim(no_eight).endswith("no 8-bit point in this sweep to compare costs with.")
    no_baseline = dict(no_eight, float_baselines=[])
    assert "not checked" in wrpn_claim(no_baseline)


def test_accuracy_grid_marks_failed_points():
    results = _claim_results([(1.0, 2, 4, [0.9], {}), (1.0, 8, 8, [0.95], {})], [0.97])
    results["points"][0]["accuracy"] = None
    assert accuracy_grid(results).splitlines()[2] == "| 1x | failed | 0.9500 | 0.9700 |"


def test_dask_pool_says_when_no_scheduler_answers():
    from wrpn_rtl.synth.sweep import DaskPool
    with pytest.raises(ValueError, match=r"^--scheduler 'tcp://127\.0\.0\.1:9': no Dask "
                                         r"scheduler answered there"):
        DaskPool("tcp://127.0.0.1:9", timeout="1s")


# -- the real quick sweep -------------------------------------------------------------------------
def _default_sigint():
    """In the child: Ctrl-C as a terminal delivers it, even when the tests run in a shell
    that ignores SIGINT for background jobs (a child inherits the ignoring)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run_sweep(argv, cwd):
    done = subprocess.run([str(WRPN_RTL), "sweep", "--quick", "--json", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=1800,
                          preexec_fn=_default_sigint)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _cached_entries(cache):
    return {(p.parent.parent.name, p.parent.name): p.stat().st_mtime_ns
            for p in Path(cache).glob("*/*/result.json")}


@pytest.mark.slow
def test_quick_sweep_interrupted_resumed_reported_and_cached(tmp_path):
    """The quick sweep, interrupted (Ctrl-C) once its first build is cached, then resumed
    without redoing a cached step; its reports; a third run entirely from the cache."""
    out = tmp_path / "local"
    process = subprocess.Popen([str(WRPN_RTL), "sweep", "--quick", "--out", str(out)],
                               cwd=tmp_path, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               preexec_fn=_default_sigint)
    deadline = time.monotonic() + 900
    while (process.poll() is None and time.monotonic() < deadline
           and not list((out / "cache" / "build").glob("*/result.json"))):
        time.sleep(0.1)
    assert process.poll() is None, "the sweep ended before it could be interrupted"
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(300) == 130, process.stderr.read()[-2000:]
    interrupted = _cached_entries(out / "cache")
    assert any(kind == "build" for kind, _ in interrupted)
    assert not (out / "sweep.json").exists()

    results = _run_sweep(["--out", str(out)], tmp_path)
    by_key = {(s["kind"], s["key"]): s for s in results["steps"]["list"]}
    for entry, mtime in interrupted.items():
        assert by_key[entry]["cached"], entry
        assert (out / "cache" / entry[0] / entry[1] / "result.json").stat().st_mtime_ns == mtime
    computed = [s for s in results["steps"]["list"] if not s["cached"] and s["key"]]
    assert len(computed) == results["steps"]["computed"] > 0
    assert not {(s["kind"], s["key"]) for s in computed} & set(interrupted)
    assert not list((out / "cache").glob("*/.*.staging"))
    _check_quick_reports(results, out)

    again = _run_sweep(["--out", str(out)], tmp_path)
    assert again["steps"]["computed"] == 0
    # every step that ran (a design that did not fit included) comes from the cache; only
    # the checks of those designs, skipped, have no key
    assert all(step["cached"] for step in again["steps"]["list"] if step["key"])
    assert again["steps"]["cached"] == again["steps"]["total"] - 2
    assert _comparable(again) == _comparable(results)


def _check_quick_reports(results, out):
    assert results["config"]["widths"] == list(QUICK["widths"])
    labels = [p["label"] for p in results["points"]]
    assert labels == ["x1 w2a4", "x1 w8a8", "x2 w2a4", "x2 w8a8"]
    for point in results["points"]:
        assert point["integer_vs_float_mismatches"] == 0
        assert 0.5 < point["accuracy"]["mean"] <= 1
        entry = point["targets"]["ice40-up5k"]
        if point["wbits"] == 8:      # 8-bit layers do not fit the UP5K: the reason is named
            assert "more than the default budget" in entry["failure"]
        else:
            assert entry["failure"] is None and entry["check"]["bit_exact"]
            assert entry["synth"]["logic_cells"] <= entry["synth"]["logic_capacity"]
            assert entry["synth"]["images_per_second"] > 0
    rows = list(csv.DictReader(io.StringIO((out / "sweep.csv").read_text())))
    assert [r["label"] for r in rows] == labels + ["x1 float", "x2 float"]
    markdown = (out / "sweep.md").read_text()
    assert "| width | w2a4 | w8a8 | full precision |" in markdown
    assert "## The WRPN claim, checked" in markdown and "## ice40-up5k" in markdown
    shown = _plot_description(out / "accuracy_vs_throughput_ice40-up5k.png")
    assert sorted(p["label"] for p in shown["points"]) == ["x1 w2a4", "x2 w2a4"]
    assert sorted(o.split(":")[0] for o in shown["omitted"]) == ["x1 w8a8", "x2 w8a8"]
    assert set(shown["pareto"]) <= {"x1 w2a4", "x2 w2a4"} and shown["pareto"]
    assert _plot_description(out / "accuracy_vs_logic_ice40-up5k.png")["points"]


@pytest.mark.slow
def test_quick_sweep_on_a_dask_cluster_gives_the_same_results(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        on_dask = _run_sweep(["--out", str(tmp_path / "dask"), "--scheduler",
                              cluster.scheduler_address], tmp_path)
    assert on_dask["where"].startswith("the Dask cluster at tcp://")
    assert on_dask["steps"]["cached"] == 0
    local = _run_sweep(["--out", str(tmp_path / "local")], tmp_path)
    assert local["steps"]["cached"] == 0
    assert _comparable(on_dask) == _comparable(local)
    # The clock too, wherever both placed with the same seed: a seed's share of nextpnr's time
    # limit is wall-clock time, so on a loaded machine one run may move on to the next seed.
    same_seed, local_timing_of = 0, _timing(local)
    for label, dask_targets in _timing(on_dask).items():
        for target, (seed, timing) in dask_targets.items():
            local_seed, local_timing = local_timing_of[label][target]
            if seed is not None and seed == local_seed:
                assert timing == local_timing, (label, target)
                same_seed += 1
    assert same_seed or all(
        seed is None for targets in local_timing_of.values() for seed, _ in targets.values())


def _timing(results):
    """``{label: {target: (placement seed, (Fmax, images/s))}}``."""
    return {point["label"]: {target: ((entry["synth"] or {}).get("seed"),
                                      tuple((entry["synth"] or {}).get(k)
                                            for k in ("fmax_mhz", "images_per_second")))
                             for target, entry in point["targets"].items()}
            for point in results["points"]}


def _comparable(results):
    """What must not depend on where or when the steps ran (the clock: see :func:`_timing`)."""
    keep = {}
    for point in results["points"]:
        targets = {}
        for target, entry in point["targets"].items():
            synth = entry["synth"] or {}
            targets[target] = (
                entry["failure"], (entry["design"] or {}).get("manifest_sha256"),
                {k: synth.get(k) for k in ("logic_cells", "flip_flops", "bram", "dsp",
                                           "transistors")},
                entry["check"] and entry["check"]["bit_exact"])
        keep[point["label"]] = (point["accuracy"], point["memory"], targets)
    return keep, results["float_baselines"]
