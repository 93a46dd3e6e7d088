"""Amaranth-simulator stream helpers: producers and consumers with random stalls."""
import numpy as np


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
