"""cocotb bench of the simulated board: the board top's serial lines joined to a
pseudo-terminal, so host code opens it as it opens a board's USB UART.

The design's clock, serial lines and (optional) reset are the top-level ports named by
``+clk=``, ``+rx=``, ``+tx=`` and ``+rst=``: ``clk``/``uart_rx``/``uart_tx``/``rst`` for the
board top without a platform, the board's pins (e.g. ``clk12_0__io``, ``uart_0__rx__io``) for
the top as built for a board, which holds itself in reset until its PLL locks.

The bench makes a pseudo-terminal pair, writes the path of its terminal side to the file
named by ``+pty_file=``, and from then on:

* bytes the host writes are sent into ``uart_rx`` bit by bit (8N1, ``+bit_ps=`` picoseconds each);
* every byte the design sends on ``uart_tx`` is read at the middle of its bits and written
  back to the host.

The bench ends when the host closes the terminal (after it has sent something), or when no
host has opened it within ``+connect_s=`` seconds of wall-clock time. Python runs once per
bit, not per clock cycle; the clock is cocotb's own.
"""
import os
import time
import tty

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import Event, FallingEdge, Timer

#: Bits an idle line waits between looks at the host's side.
IDLE_POLL_BITS = 20


@cocotb.test()
async def serve(dut):
    plusargs = cocotb.plusargs
    clock_ps = int(plusargs["clock_ps"])
    bit_ps = int(plusargs["bit_ps"])
    connect_s = float(plusargs.get("connect_s", 120))
    master, terminal = os.openpty()
    tty.setraw(terminal)
    os.set_blocking(master, False)
    path = os.ttyname(terminal)
    ready = plusargs["pty_file"]
    with open(ready + ".part", "w") as handle:
        handle.write(path)
    os.replace(ready + ".part", ready)

    clk, rx, tx = (getattr(dut, plusargs[name]) for name in ("clk", "rx", "tx"))
    reset = getattr(dut, plusargs["rst"]) if plusargs.get("rst") else None
    rx.value = 1
    if reset is not None:
        reset.value = 1
    cocotb.start_soon(Clock(clk, clock_ps, unit="ps").start())
    await Timer(10 * clock_ps, unit="ps")
    if reset is not None:
        reset.value = 0
    done = Event()
    state = {"connected": False, "terminal": terminal, "sent": 0, "received": 0}

    async def host_to_board():
        started = time.monotonic()
        pending = bytearray()
        while True:
            try:
                pending += os.read(master, 4096)
            except BlockingIOError:
                pass
            except OSError:                          # EIO: the host closed the terminal
                if state["connected"]:
                    done.set()
                    return
            if pending and not state["connected"]:
                # the host has the terminal open: from now on its closing ends the bench
                state["connected"] = True
                os.close(state["terminal"])
            if not pending:
                if not state["connected"] and time.monotonic() - started > connect_s:
                    dut._log.error(f"no host opened {path} within {connect_s:g} s")
                    done.set()
                    return
                await Timer(IDLE_POLL_BITS * bit_ps, unit="ps")
                continue
            byte = pending.pop(0)
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                rx.value = bit
                await Timer(bit_ps, unit="ps")
            state["sent"] += 1

    async def board_to_host():
        while True:
            await FallingEdge(tx)
            await Timer(bit_ps // 2, unit="ps")         # the middle of the start bit
            value = 0
            for index in range(8):
                await Timer(bit_ps, unit="ps")
                value |= int(tx.value) << index
            await Timer(bit_ps, unit="ps")             # the middle of the stop bit
            try:
                os.write(master, bytes([value]))
            except OSError:
                pass                                   # the host is gone
            state["received"] += 1

    cocotb.start_soon(host_to_board())
    cocotb.start_soon(board_to_host())
    await done.wait()
    dut._log.info(f"host link closed: {state['sent']} bytes in, {state['received']} out")
    os.close(master)
