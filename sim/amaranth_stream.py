"""Amaranth-simulator drivers for one-input, one-output stream components.

The fast path of verification and the cycle measurements of the benchmarks: a producer offers
words with random idle cycles, a consumer takes them with random back-pressure, and the cycles
from the first input transfer to the last output transfer are counted.
"""
import numpy as np
from amaranth.sim import Simulator

from wrpn_rtl.sim.words import unpack

__all__ = ["stream_put", "stream_get", "lanes", "fields", "run_stream", "record_streams"]


async def stream_put(ctx, port, payload, *, rng=None, stall=0.0):
    """Offer ``payload`` on ``port`` (after a random number of idle cycles) until taken."""
    while rng is not None and rng.random() < stall:
        await ctx.tick()
    ctx.set(port.payload, payload)
    ctx.set(port.valid, 1)
    await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def stream_get(ctx, port, *, rng=None, stall=0.0):
    """Take one payload from ``port``, holding ``ready`` low on random cycles."""
    while True:
        ready = not (rng is not None and rng.random() < stall)
        ctx.set(port.ready, int(ready))
        _, _, payload, valid = await ctx.tick().sample(port.payload, port.valid)
        if ready and valid:
            ctx.set(port.ready, 0)
            return payload


def lanes(payload, count):
    """A sampled ArrayLayout payload as a list of ints."""
    return [int(payload[i]) for i in range(count)]


def fields(payload, layout_fields):
    """A sampled payload of any layout cut into ``[(width, signed)]`` fields (lowest first)."""
    return unpack(payload.as_bits(), layout_fields)


def run_stream(dut, words_in, count_out, *, width=None, out_fields=None, rng=None, stall_in=0.0,
               stall_out=0.0, max_cycles=None):
    """Drive ``words_in`` (lists of lane values) into ``dut`` and collect ``count_out`` words.

    Returns
    -------
    (outputs, cycles)
        Output words as lists of ``width`` lane values (or of the ``out_fields``, ``[(width,
        signed)]`` lowest bits first, for any other layout), and the cycles from the first input
        transfer to the last output transfer.

    Raises
    ------
    AssertionError
        Fewer than ``count_out`` words came out within ``max_cycles``.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    received, marks = [], {"cycle": 0}

    async def producer(ctx):
        for index, word in enumerate(words_in):
            await stream_put(ctx, dut.input, [int(v) for v in word], rng=rng, stall=stall_in)
            if index == 0:
                marks["first_in"] = marks["cycle"]

    async def consumer(ctx):
        for _ in range(count_out):
            payload = await stream_get(ctx, dut.output, rng=rng, stall=stall_out)
            received.append(lanes(payload, width) if out_fields is None
                            else fields(payload, out_fields))
        marks["last_out"] = marks["cycle"]

    async def clock(ctx):
        async for _ in ctx.tick():
            marks["cycle"] += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_testbench(clock, background=True)
    limit = max_cycles or int(8 * (len(words_in) + count_out)
                              * (1 + 3 * max(stall_in, stall_out)) + 200)
    sim.run_until(limit * 1e-8)
    assert len(received) == count_out, f"only {len(received)} of {count_out} words came out"
    return received, marks["last_out"] - marks["first_in"]


def record_streams(dut, words_in, count_out, *, taps, out_fields, max_cycles):
    """Like :func:`run_stream` without stalls, also recording every transfer on ``taps``.

    Parameters
    ----------
    taps : dict of name -> (stream port inside ``dut``, lane count)
        Internal streams to watch (e.g. each stage's output).

    Returns
    -------
    (outputs, {name: [lane lists]})
    """
    received, seen = [], {name: [] for name in taps}

    async def producer(ctx):
        for word in words_in:
            await stream_put(ctx, dut.input, [int(v) for v in word])

    async def consumer(ctx):
        for _ in range(count_out):
            received.append(fields(await stream_get(ctx, dut.output), out_fields))

    def monitor(name, port, count):
        async def watch(ctx):
            async for _, _, valid, ready, payload in ctx.tick().sample(port.valid, port.ready,
                                                                       port.payload):
                if valid and ready:
                    seen[name].append(lanes(payload, count))
        return watch

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    for name, (port, count) in taps.items():
        sim.add_testbench(monitor(name, port, count), background=True)
    sim.run_until(max_cycles * 1e-8)
    return received, seen
