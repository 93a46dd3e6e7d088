# amaranth: UnusedElaboratable=no
"""The UART in Amaranth's simulator: bytes through the receiver from a serial line model
(rates off by up to 2 %, glitches, bad stop bits, a consumer that stalls), bytes out of the
transmitter read back by a line model, and the two back to back."""
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from wrpn_rtl.hardware.uart import UARTReceiver, UARTTransmitter, uart_divisor
from wrpn_rtl.sim.amaranth_stream import stream_get, stream_put


async def send_serial(ctx, line, byte, bit_cycles, *, stop=1):
    """Drive ``line`` with one 8N1 byte at ``bit_cycles`` cycles per bit (may be fractional:
    a sender whose rate is off)."""
    bits = [0] + [(byte >> i) & 1 for i in range(8)] + [stop]
    elapsed = 0.0
    for index, bit in enumerate(bits):
        ctx.set(line, bit)
        until = round((index + 1) * bit_cycles)
        await ctx.tick().repeat(until - round(elapsed))
        elapsed = until
    ctx.set(line, 1)


async def read_serial(ctx, line, bit_cycles):
    """One 8N1 byte from ``line``: wait for the start bit, sample mid-bit; (byte, stop bit)."""
    while ctx.get(line):
        await ctx.tick()
    await ctx.tick().repeat(bit_cycles // 2)
    assert ctx.get(line) == 0, "a start bit shorter than half a bit"
    value = 0
    for index in range(8):
        await ctx.tick().repeat(bit_cycles)
        value |= ctx.get(line) << index
    await ctx.tick().repeat(bit_cycles)
    return value, ctx.get(line)


@pytest.mark.parametrize("divisor, rate", [(8, 1.0), (13, 1.02), (13, 0.98), (104, 1.0)])
def test_receiver_takes_bytes_at_rates_a_few_percent_off(divisor, rate, rng):
    dut = UARTReceiver(divisor=divisor)
    ref_bytes = [0x00, 0xFF, 0x55, 0xAA] + [int(b) for b in rng.integers(0, 256, 12)]
    rtl_bytes = []

    async def line(ctx):
        await ctx.tick().repeat(5)
        for byte in ref_bytes:
            await send_serial(ctx, dut.rx, byte, divisor * rate)
            for _ in range(int(rng.integers(0, 3))):        # idle gaps of any length
                await ctx.tick()

    async def consumer(ctx):
        for _ in ref_bytes:
            rtl_bytes.append(await stream_get(ctx, dut.bytes, rng=rng, stall=0.3))

    _run(dut, [line, consumer], cycles=len(ref_bytes) * 12 * divisor + 100)
    assert rtl_bytes == ref_bytes


def test_receiver_drops_glitches_bad_stop_bits_and_overruns():
    divisor = 16
    dut = UARTReceiver(divisor=divisor)
    pulses = {"framing_error": 0, "overrun": 0}
    taken = []

    async def line(ctx):
        await ctx.tick().repeat(5)
        ctx.set(dut.rx, 0)                       # a glitch shorter than half a bit
        await ctx.tick().repeat(3)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(2 * divisor)
        await send_serial(ctx, dut.rx, 0x3C, divisor, stop=0)   # framing error
        await ctx.tick().repeat(2 * divisor)
        await send_serial(ctx, dut.rx, 0x11, divisor)          # waits: nobody reads
        await send_serial(ctx, dut.rx, 0x22, divisor)          # overrun: dropped
        await ctx.tick().repeat(4 * divisor)
        ctx.set(dut.bytes.ready, 1)
        await ctx.tick()
        ctx.set(dut.bytes.ready, 0)
        await send_serial(ctx, dut.rx, 0x33, divisor)
        await ctx.tick().repeat(2 * divisor)
        taken.append(await stream_get(ctx, dut.bytes))

    async def watch(ctx):
        async for _, _, framing, overrun, valid, ready, payload in ctx.tick().sample(
                dut.framing_error, dut.overrun, dut.bytes.valid, dut.bytes.ready,
                dut.bytes.payload):
            pulses["framing_error"] += framing
            pulses["overrun"] += overrun
            if valid and ready:
                taken.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(line)
    sim.add_testbench(watch, background=True)
    sim.run()
    assert pulses == {"framing_error": 1, "overrun": 1}
    assert taken[0] == 0x11 and taken[-1] == 0x33


@pytest.mark.parametrize("divisor", [8, 11, 50])
def test_transmitter_sends_8n1_and_back_to_back(divisor, rng):
    dut = UARTTransmitter(divisor=divisor)
    ref_bytes = [0x00, 0xFF, 0x7E] + [int(b) for b in rng.integers(0, 256, 8)]
    rtl_bytes = []

    async def producer(ctx):
        for byte in ref_bytes:
            await stream_put(ctx, dut.bytes, byte, rng=rng, stall=0.3)

    async def line(ctx):
        for _ in ref_bytes:
            value, stop = await read_serial(ctx, dut.tx, divisor)
            assert stop == 1
            rtl_bytes.append(value)

    _run(dut, [producer, line], cycles=len(ref_bytes) * 14 * divisor + 100)
    assert rtl_bytes == ref_bytes


def test_transmitter_into_receiver_at_full_rate(rng):
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(divisor=9)
    m.submodules.rx = rx = UARTReceiver(divisor=9)
    m.d.comb += rx.rx.eq(tx.tx)
    ref_bytes = [int(b) for b in rng.integers(0, 256, 40)]
    rtl_bytes = []

    async def producer(ctx):
        for byte in ref_bytes:
            await stream_put(ctx, tx.bytes, byte)

    async def consumer(ctx):
        for _ in ref_bytes:
            rtl_bytes.append(await stream_get(ctx, rx.bytes))

    _run(m, [producer, consumer], cycles=41 * 10 * 9 + 100)
    assert rtl_bytes == ref_bytes


def _run(dut, benches, *, cycles):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in benches:
        sim.add_testbench(bench)
    sim.run_until(cycles * 1e-8)


def test_divisor_rules():
    assert uart_divisor(12e6, 115200) == 104
    with pytest.raises(ValueError, match=r"^baud must leave at least 8 clock cycles per bit"):
        uart_divisor(12e6, 3_000_000)
    with pytest.raises(ValueError, match=r"^baud 1000000 is 4\.2% off at 12\.5 MHz"):
        uart_divisor(12.5e6, 1_000_000)
    with pytest.raises(ValueError, match=r"^divisor must be at least 8 cycles per bit, not 7$"):
        UARTReceiver(divisor=7)
    with pytest.raises(TypeError, match=r"^divisor must be an integer, not 8\.0$"):
        UARTTransmitter(divisor=8.0)
