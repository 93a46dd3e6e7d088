"""The whole board design in simulation, reachable as a serial port: ``wrpn-rtl infer --port
sim`` and the tests run the host code against it unchanged.

:class:`SimulatedBoard` writes the board top as Verilog, builds it with Verilator, and runs it
under cocotb (:mod:`wrpn_rtl.board.uart_bench`) in a thread; the bench joins the UART lines to
a pseudo-terminal whose path :attr:`SimulatedBoard.port` gives. Closing the host's port ends
the simulation. The top is the design exactly as ``wrpn-rtl build`` hands it to Yosys - the
board's platform with its pins, I/O buffers, PLL, the reset held until lock, the UART at the
build's baud rate - with stand-ins for the vendor primitives (``sim_primitives.v``: buffers
pass through, the PLL passes the oscillator's clock through and locks at once).
"""
from pathlib import Path
import threading
import time

from wrpn_rtl.job.common import StepError, quiet

__all__ = ["SimulatedBoard"]
#: Seconds the bench waits for the host to open the port, and this side for the bench to
#: offer it (the Verilator build comes first).
CONNECT_S = 120
BUILD_WAIT_S = 1800
#: The PLL clock a board's simulated top is built for when no build says (it sets the UART's
#: divisor, nothing else: the simulation runs at the oscillator's rate).
DEFAULT_PLL_HZ = {"ice40": 30e6, "ecp5": 50e6}
#: Simulation stand-ins for the vendor primitives of a board top.
PRIMITIVES = Path(__file__).with_name("sim_primitives.v")


class SimulatedBoard:
    """The board top of ``accelerator`` in Verilator, in a background thread.

    Use as a context manager; inside it, :attr:`port` is the pseudo-terminal to open with
    ``serial.Serial``. Leaving the block waits for the simulation to end (close the port
    first) and raises :class:`~wrpn_rtl.job.common.StepError` if it failed.

    Parameters
    ----------
    accelerator : Accelerator
    build_dir : path
        Verilog, the Verilator model and the logs (``build.log``, ``sim.log``).
    board : Board
        The board whose top is simulated (:data:`~wrpn_rtl.board.top.BOARDS`).
    selftest_images : array-like or None
        Input codes ``(N, input_codes)`` held on chip for ``SELFTEST``.
    clock_hz : float or None
        The PLL clock the top is built for (the build's; it sets the UART's divisor only).
    baud : int
        The UART's rate.
    """

    def __init__(self, accelerator, build_dir, *, board, selftest_images=None, clock_hz=None,
                 baud=115200, progress=quiet):
        self._board, self._board_clock_hz, self._board_baud = board, clock_hz, baud
        self._accelerator = accelerator
        self._build_dir = Path(build_dir).resolve()
        self._selftest_images = selftest_images
        self._progress = progress
        self._thread = None
        self._outcome = {}
        self.port = None

    def __enter__(self):
        self._build_dir.mkdir(parents=True, exist_ok=True)
        source = self._build_dir / "wrpn_board.v"
        bench = self._write_top(source)
        ready = self._build_dir / "pty.txt"
        ready.unlink(missing_ok=True)
        self._thread = threading.Thread(target=self._simulate, args=(source, ready, bench),
                                        daemon=True)
        self._progress(f"building the simulated board (Verilator) in {self._build_dir}")
        started = time.monotonic()
        self._thread.start()
        while not ready.exists():
            if not self._thread.is_alive():
                self._raise_failure("before it offered a port")
            if time.monotonic() - started > BUILD_WAIT_S:
                raise StepError(f"the simulated board offered no port within "
                                f"{BUILD_WAIT_S} s; see {self._build_dir}")
            time.sleep(0.1)
        self.port = ready.read_text().strip()
        self._progress(f"  the simulated board is up after {time.monotonic() - started:.0f} s "
                       f"on {self.port} ({bench['what']})")
        return self

    def _write_top(self, source):
        """Write the top's Verilog to ``source``; what the bench needs to drive it."""
        from wrpn_rtl.board.pll import pll_for
        from wrpn_rtl.board.top import BoardTop
        from wrpn_rtl.golden.atomic import atomic_write
        from wrpn_rtl.synth.flow import TARGETS
        platform = self._board.platform_class()()
        clock_hz = platform.default_clk_frequency
        family = TARGETS[self._board.target].family
        pll = pll_for(family, clock_hz, self._board_clock_hz or DEFAULT_PLL_HZ[family])
        top = BoardTop(self._accelerator, clock_hz=pll.frequency_hz, pll=pll,
                       baud=self._board_baud, selftest_images=self._selftest_images)
        text = platform.prepare(top, name="wrpn_board", debug_verilog=True).files[
            "wrpn_board.debug.v"]
        pins = dict(clk=f"{platform.default_clk}_0__io", rx="uart_0__rx__io",
                    tx="uart_0__tx__io", rst="")
        what = (f"{self._board.name} with its pins and PLL (built for "
                f"{pll.frequency_hz / 1e6:.3f} MHz, simulated at the oscillator's "
                f"{clock_hz / 1e6:g}), {self._board_baud:,} baud")
        with atomic_write(source, "w") as handle:
            handle.write(text)
        # whole picoseconds (the simulator's precision), even so both halves are whole
        clock_ps = 2 * round(1e12 / clock_hz / 2)
        return dict(pins, clock_ps=clock_ps, bit_ps=clock_ps * top.divisor, what=what)

    def __exit__(self, kind, value, traceback):
        self._thread.join(CONNECT_S + 60)
        if kind is None and (self._thread.is_alive() or "error" in self._outcome):
            self._raise_failure("")

    def _simulate(self, source, ready, bench):
        from cocotb_tools.runner import get_results
        from wrpn_rtl.sim.runner import _runner, _simulator_build_dir, _verilator_make_fix
        try:
            runner = _runner("verilator")
            sources = [source, PRIMITIVES]
            with _simulator_build_dir("verilator", self._build_dir) as sim_dir:
                with _verilator_make_fix("verilator"):
                    runner.build(sources=sources, hdl_toplevel="wrpn_board",
                                 build_dir=sim_dir, timescale=("1ns", "1ps"),
                                 build_args=["-Wno-fatal", "-Wno-WIDTH", "-Wno-UNOPTFLAT",
                                             "--public-depth", "1"],
                                 always=True, log_file=self._build_dir / "build.log")
                results = runner.test(
                    hdl_toplevel="wrpn_board", hdl_toplevel_lang="verilog",
                    test_module="wrpn_rtl.board.uart_bench", build_dir=sim_dir,
                    test_dir=self._build_dir, log_file=self._build_dir / "sim.log",
                    plusargs=[f"+pty_file={ready}", f"+clock_ps={bench['clock_ps']}",
                              f"+bit_ps={bench['bit_ps']}", f"+connect_s={CONNECT_S}",
                              *(f"+{name}={bench[name]}" for name in ("clk", "rx", "tx", "rst"))])
            total, failed = get_results(results)
            if total == 0 or failed:
                self._outcome["error"] = f"{failed} of {total} cocotb tests failed"
        except SystemExit as error:
            self._outcome["error"] = f"the cocotb bench failed (exit {error.code})"
        except Exception as error:
            self._outcome["error"] = f"{type(error).__name__}: {error}"

    def _raise_failure(self, when):
        from wrpn_rtl.sim.runner import _log_tail
        problem = self._outcome.get("error", "it is still running")
        raise StepError(f"the simulated board failed{' ' + when if when else ''}: {problem}\n"
                        f"{_log_tail(self._build_dir)}")

