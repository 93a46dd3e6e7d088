"""A board's top level: the accelerator behind the host link, clocked by a PLL.

``BoardTop`` elaborates for an amaranth-boards platform (its oscillator into the PLL, its
USB UART pins) or, without a platform, for simulation: ``clk``, ``rst``, ``uart_rx`` and
``uart_tx`` become ports and the PLL is left out (the simulator's clock stands for its
output).
"""
from dataclasses import dataclass
import importlib

from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.build import ResourceError
from amaranth.lib import io, wiring

from wrpn_rtl.hardware.link import HostLink, LinkGeometry
from wrpn_rtl.hardware.uart import UARTReceiver, UARTTransmitter, uart_divisor

__all__ = ["Board", "BOARDS", "board_named", "BoardTop", "SerialLink"]


@dataclass(frozen=True)
class Board:
    """A supported board: its amaranth-boards platform (``module:Class``), the target its
    design is folded for, and the command that programs it (``{bitstream}`` stands for the
    file)."""

    name: str
    platform: str
    target: str
    programmer: tuple

    def platform_class(self):
        module, _, name = self.platform.partition(":")
        return getattr(importlib.import_module(module), name)


BOARDS = {board.name: board for board in [
    Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40-up5k",
          ("iceprog", "{bitstream}")),
    Board("ulx3s-25f", "amaranth_boards.ulx3s:ULX3S_25F_Platform", "ecp5-25k",
          ("openFPGALoader", "--board", "ulx3s", "{bitstream}")),
    Board("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5-85k",
          ("openFPGALoader", "--board", "ulx3s", "{bitstream}")),
]}


def board_named(name, *, flag="--board"):
    """The :class:`Board` called ``name``, or a ValueError naming ``flag`` and the known
    ones."""
    if name not in BOARDS:
        raise ValueError(f"{flag} must be one of {', '.join(BOARDS)}, not {name!r}")
    return BOARDS[name]


class SerialLink(Elaboratable):
    """The host link (:class:`~wrpn_rtl.hardware.link.HostLink`) behind a UART: what a board
    adds to the accelerator. ``link`` faces the accelerator (its ``image`` and ``result``
    streams); ``uart_rx`` / ``uart_tx`` are the serial lines. The board top uses it, and
    :func:`~wrpn_rtl.board.build.link_logic` synthesizes it alone to measure it."""

    def __init__(self, geometry, *, divisor, selftest_images=None):
        self.link = HostLink(geometry, selftest_images=selftest_images)
        self._divisor = divisor
        self.uart_rx = Signal(init=1)
        self.uart_tx = Signal(init=1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self.link
        m.submodules.uart_rx = receiver = UARTReceiver(divisor=self._divisor)
        m.submodules.uart_tx = transmitter = UARTTransmitter(divisor=self._divisor)
        m.d.comb += [receiver.rx.eq(self.uart_rx), self.uart_tx.eq(transmitter.tx)]
        wiring.connect(m, receiver.bytes, link.rx)
        wiring.connect(m, link.tx, transmitter.bytes)
        return m


class BoardTop(Elaboratable):
    """The accelerator, the host link and a UART, on a board (or in simulation).

    Parameters
    ----------
    accelerator : Accelerator
    clock_hz : float
        The design's clock: the PLL's output on a board, the simulator's clock otherwise (it
        sets the UART's divisor).
    pll : PLLSettings or None
        The PLL primitive and parameters (:mod:`wrpn_rtl.board.pll`); needed on a board.
    baud : int
        The UART's rate (8N1).
    selftest_images : array-like or None
        Input codes ``(N, input_codes)`` held for ``SELFTEST`` (see
        :class:`~wrpn_rtl.hardware.link.HostLink`).

    Members
    -------
    uart_rx, uart_tx : Signal
        Without a platform: the serial lines (the board's pins otherwise).
    """

    #: Cycles the design stays in reset after the PLL locks: iCE40 block RAMs read as zero
    #: for a few microseconds after configuration.
    RESET_CYCLES = 1024

    def __init__(self, accelerator, *, clock_hz, pll=None, baud=115200, selftest_images=None):
        self._accelerator = accelerator
        self._clock_hz = float(clock_hz)
        self._pll = pll
        self._divisor = uart_divisor(self._clock_hz, baud)
        self._baud = baud
        self._selftest_images = selftest_images
        self.uart_rx = Signal(init=1)
        self.uart_tx = Signal(init=1)

    accelerator = property(lambda self: self._accelerator)
    clock_hz = property(lambda self: self._clock_hz)
    baud = property(lambda self: self._baud)
    divisor = property(lambda self: self._divisor)

    def elaborate(self, platform):
        m = Module()
        if platform is not None:
            self._clocking(m, platform)
            uart = platform.request("uart", 0, dir="-")
            m.submodules.rx_buffer = rx_buffer = io.Buffer("i", uart.rx)
            m.submodules.tx_buffer = tx_buffer = io.Buffer("o", uart.tx)
            m.d.comb += [self.uart_rx.eq(rx_buffer.i), tx_buffer.o.eq(self.uart_tx)]
            try:
                enable = platform.request("uart_tx_enable", 0, dir="-")
            except ResourceError:        # a board without the enable
                pass
            else:
                m.submodules.tx_enable = tx_enable = io.Buffer("o", enable)
                m.d.comb += tx_enable.o.eq(1)
        accelerator = self._accelerator
        m.submodules.accelerator = accelerator
        m.submodules.serial = serial = SerialLink(LinkGeometry.of(accelerator),
                                                  divisor=self._divisor,
                                                  selftest_images=self._selftest_images)
        link = serial.link
        m.d.comb += [serial.uart_rx.eq(self.uart_rx), self.uart_tx.eq(serial.uart_tx)]
        wiring.connect(m, link.image, accelerator.input)
        m.d.comb += [link.result.payload.eq(accelerator.output.payload.as_value()),
                     link.result.valid.eq(accelerator.output.valid),
                     accelerator.output.ready.eq(link.result.ready)]
        return m

    def _clocking(self, m, platform):
        """The PLL from the board's oscillator into the ``sync`` domain, held in reset until
        it locks and :data:`RESET_CYCLES` more."""
        if self._pll is None:
            raise ValueError("pll must be given to build for a board")
        m.domains.sync = sync = ClockDomain("sync")
        m.domains.startup = startup = ClockDomain("startup", local=True)
        locked = Signal()
        pll = self._pll
        parameters = {f"p_{name}": value for name, value in pll.parameters.items()}
        if pll.primitive.startswith("SB_PLL40"):
            m.submodules.pll = Instance(
                pll.primitive, **parameters,
                i_PACKAGEPIN=platform.request(platform.default_clk, dir="-").io,
                i_RESETB=1, i_BYPASS=0, o_PLLOUTGLOBAL=sync.clk, o_LOCK=locked)
        else:
            m.submodules.oscillator = oscillator_buffer = io.Buffer(
                "i", platform.request(platform.default_clk, dir="-"))
            oscillator = oscillator_buffer.i
            m.submodules.pll = Instance(
                pll.primitive, **parameters, i_CLKI=oscillator, i_CLKFB=sync.clk,
                o_CLKOP=sync.clk, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
                i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0,
                i_ENCLKOP=0, o_LOCK=locked)
        platform.add_clock_constraint(sync.clk, pll.frequency_hz)
        count = Signal(range(self.RESET_CYCLES + 1))
        m.d.comb += [startup.clk.eq(sync.clk), startup.rst.eq(~locked),
                     sync.rst.eq(count != self.RESET_CYCLES)]
        with m.If(count != self.RESET_CYCLES):
            m.d.startup += count.eq(count + 1)
