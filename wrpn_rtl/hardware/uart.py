"""UART receiver and transmitter (8 data bits, no parity, one stop bit; least significant bit
first) with stream interfaces, for the board's host link (:mod:`wrpn_rtl.board.protocol`).

``divisor`` is the number of clock cycles per bit (clock frequency / baud rate, rounded); a
UART tolerates a rate error of a few percent, so ``round(f_clk / baud)`` suits any
``divisor >= 8``.
"""
import numbers

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UARTReceiver", "UARTTransmitter", "uart_divisor"]


def uart_divisor(clock_hz, baud):
    """Clock cycles per bit, ``round(clock_hz / baud)``.

    Raises
    ------
    ValueError
        Fewer than 8 cycles per bit, or a rate error above 2 %.
    """
    divisor = round(clock_hz / baud)
    if divisor < 8:
        raise ValueError(f"baud must leave at least 8 clock cycles per bit, not {baud!r} at "
                         f"{clock_hz / 1e6:g} MHz")
    error = abs(clock_hz / divisor - baud) / baud
    if error > 0.02:
        raise ValueError(f"baud {baud!r} is {error:.1%} off at {clock_hz / 1e6:g} MHz (at "
                         f"most 2 %)")
    return divisor


def _check_divisor(divisor):
    if isinstance(divisor, bool) or not isinstance(divisor, numbers.Integral):
        raise TypeError(f"divisor must be an integer, not {divisor!r}")
    if divisor < 8:
        raise ValueError(f"divisor must be at least 8 cycles per bit, not {divisor!r}")
    return int(divisor)


class UARTReceiver(wiring.Component):
    """Serial 8N1 in, a stream of bytes out.

    The line is synchronized by two flip-flops; a falling edge starts a byte, which is
    sampled in the middle of every bit. A start bit that is high again at its middle is a
    glitch and is ignored. A byte whose stop bit is low is dropped and pulses
    ``framing_error``; a byte that arrives while the previous one still waits (``bytes`` not
    ready) is dropped and pulses ``overrun``.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, >= 8.

    Members
    -------
    rx : In(1)
        The serial line (idle high).
    bytes : Out(stream.Signature(8))
    framing_error, overrun : Out(1)
        One-cycle pulses.
    """

    def __init__(self, *, divisor):
        self._divisor = _check_divisor(divisor)
        super().__init__({"rx": In(1, init=1), "bytes": Out(stream.Signature(8)),
                          "framing_error": Out(1), "overrun": Out(1)})

    divisor = property(lambda self: self._divisor)

    def elaborate(self, platform):
        m = Module()
        divisor = self._divisor
        line = Signal(3, init=0b111)               # two synchronizer stages, then the last value
        m.d.sync += line.eq(Cat(self.rx, line[:2]))
        level = line[1]
        timer = Signal(range(divisor), name="timer")
        bit = Signal(range(10), name="bit")        # 0 start, 1-8 data, 9 stop
        shift = Signal(8, name="shift")
        busy = Signal(name="busy")

        with m.If(self.bytes.ready):
            m.d.sync += self.bytes.valid.eq(0)
        m.d.sync += [self.framing_error.eq(0), self.overrun.eq(0)]
        with m.If(~busy):
            with m.If(line[2] & ~level):           # falling edge: a start bit
                m.d.sync += [busy.eq(1), bit.eq(0), timer.eq(divisor // 2 - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():                              # the middle of a bit
            m.d.sync += [timer.eq(divisor - 1), bit.eq(bit + 1)]
            with m.If(bit == 0):
                with m.If(level):                  # a glitch, not a start bit
                    m.d.sync += busy.eq(0)
            with m.Elif(bit < 9):
                m.d.sync += shift.eq(Cat(shift[1:], level))
            with m.Else():
                m.d.sync += busy.eq(0)
                with m.If(~level):
                    m.d.sync += self.framing_error.eq(1)
                with m.Elif(self.bytes.valid & ~self.bytes.ready):
                    m.d.sync += self.overrun.eq(1)
                with m.Else():
                    m.d.sync += [self.bytes.payload.eq(shift), self.bytes.valid.eq(1)]
        return m


class UARTTransmitter(wiring.Component):
    """A stream of bytes in, serial 8N1 out; one byte every ``10 * divisor`` cycles.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, >= 8.

    Members
    -------
    bytes : In(stream.Signature(8))
        Taken when the previous byte's stop bit has been sent.
    tx : Out(1)
        The serial line (idle high).
    """

    def __init__(self, *, divisor):
        self._divisor = _check_divisor(divisor)
        super().__init__({"bytes": In(stream.Signature(8)), "tx": Out(1, init=1)})

    divisor = property(lambda self: self._divisor)

    def elaborate(self, platform):
        m = Module()
        divisor = self._divisor
        timer = Signal(range(divisor), name="timer")
        frame = Signal(10, init=0x3FF, name="frame")   # stop, data (LSB first), start; LSB out
        left = Signal(range(11), name="left")          # bits still to send
        m.d.comb += [self.tx.eq(frame[0]), self.bytes.ready.eq(left == 0)]
        with m.If(self.bytes.valid & self.bytes.ready):
            m.d.sync += [frame.eq(Cat(Const(0, 1), self.bytes.payload, Const(1, 1))),
                         left.eq(10), timer.eq(divisor - 1)]
        with m.Elif(left != 0):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Else():
                m.d.sync += [frame.eq(Cat(frame[1:], Const(1, 1))), left.eq(left - 1),
                             timer.eq(divisor - 1)]
        return m
