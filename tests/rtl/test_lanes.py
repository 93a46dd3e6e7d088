# amaranth: UnusedElaboratable=no
"""``MacLanes`` on its own: every vector's ``X`` to the bit, one-step vectors (no running sum)
and longer ones, back to back or with gaps, and after a reset in the middle of a vector (the
running sum has no reset of its own), with either accumulator restart; ``done`` exactly
``latency`` cycles after a vector's last step, and ``sums`` held until the next ``done``."""
import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module, unsigned
from amaranth.lib import data
from amaranth.sim import Simulator

from wrpn_rtl.hardware.lanes import RESTARTS, MacLanes, mac_lanes_latency

SIMD, PE, IN_BITS = 3, 2, 4


def _lanes(planes, steps, dsp_pairs, restart="load"):
    fields = {"sign": unsigned(SIMD), "mask": data.ArrayLayout(unsigned(SIMD), planes)}
    layout = data.ArrayLayout(data.StructLayout(fields), PE)
    x_max = steps * SIMD * ((1 << planes) - 1) * ((1 << IN_BITS) - 1)
    return MacLanes(simd=SIMD, pe=PE, in_bits=IN_BITS, weight_layout=layout, planes=planes,
                    sum_shape=unsigned(x_max.bit_length()), steps=steps, dsp_pairs=dsp_pairs,
                    restart=restart)


def _expected_x(operands, signs, magnitudes):
    """X of one vector: operands (steps, SIMD), signs and magnitudes (steps, PE, SIMD)."""
    complement = (1 << IN_BITS) - 1 - operands
    u = np.where(signs == 1, complement[:, None, :], operands[:, None, :])
    return (magnitudes * u).sum(axis=(0, 2))


@pytest.mark.parametrize("restart", RESTARTS)
@pytest.mark.parametrize("planes, dsp_pairs", [(1, 0), (2, 0), (2, 1)])
@pytest.mark.parametrize("steps", [1, 2, 3, 5])
def test_every_vector_summed_across_gaps_and_a_reset(steps, planes, dsp_pairs, restart):
    rng = np.random.default_rng(steps * 10 + planes + dsp_pairs)
    lanes = _lanes(planes, steps, dsp_pairs, restart)
    count, interrupted = 24, 12
    operands = rng.integers(0, 1 << IN_BITS, (count, steps, SIMD))
    signs = rng.integers(0, 2, (count, steps, PE, SIMD))
    magnitudes = rng.integers(0, 1 << planes, (count, steps, PE, SIMD))
    operands[:4] = (1 << IN_BITS) - 1                  # full scale: the widest X
    signs[:4], magnitudes[:4] = 0, (1 << planes) - 1
    expected = [list(_expected_x(operands[k], signs[k], magnitudes[k]))
                for k in range(count) if k != interrupted]
    latency = mac_lanes_latency(simd=SIMD, planes=planes, dsp_pairs=dsp_pairs, steps=steps,
                                restart=restart)

    m = Module()
    m.domains.sync = domain = ClockDomain("sync")
    m.submodules.lanes = lanes
    seen = []
    last_steps, dones = [], []     # cycles (counted by the monitor)

    async def driver(ctx):
        for k in range(count):
            if k == interrupted:      # the vectors before it finish, then it starts
                ctx.set(lanes.valid, 0)
                await ctx.tick().repeat(latency + 2)
            for step in range(steps):
                if k == interrupted and step == steps - 1:
                    # its partial sums so far reach the running sum, then a reset
                    ctx.set(lanes.valid, 0)
                    await ctx.tick().repeat(latency)
                    ctx.set(domain.rst, 1)
                    await ctx.tick()
                    ctx.set(domain.rst, 0)
                    break
                while rng.random() < 0.3:
                    ctx.set(lanes.valid, 0)
                    await ctx.tick()
                ctx.set(lanes.operands, sum(int(v) << (IN_BITS * i)
                                            for i, v in enumerate(operands[k, step])))
                ctx.set(lanes.weights, [
                    {"sign": sum(int(b) << i for i, b in enumerate(signs[k, step, p])),
                     "mask": [sum(int((mag >> b) & 1) << i
                                  for i, mag in enumerate(magnitudes[k, step, p]))
                              for b in range(planes)]}
                    for p in range(PE)])
                ctx.set(lanes.valid, 1)
                ctx.set(lanes.last, int(step == steps - 1))
                await ctx.tick()
        ctx.set(lanes.valid, 0)
        await ctx.tick().repeat(latency + 4)

    async def monitor(ctx):
        held, cycle = None, 0
        async for _, reset, done, sums, valid, last in ctx.tick().sample(
                lanes.done, lanes.sums, lanes.valid, lanes.last):
            cycle += 1
            if reset:            # held sums are kept only from one done to the next
                held = None
            sums = [int(sums[p]) for p in range(PE)]
            if valid and last:
                last_steps.append(cycle)
            if done:
                seen.append(sums)
                dones.append(cycle)
                held = sums
            elif held is not None:
                assert sums == held, "sums changed between two dones"

    sim = Simulator(m)
    sim.add_clock(1e-8, domain="sync")
    sim.add_testbench(driver)
    sim.add_testbench(monitor, background=True)
    sim.run()
    assert seen == expected
    assert len(last_steps) == len(dones)
    assert [done - last for done, last in zip(dones, last_steps)] == [latency] * len(dones)


def test_steps_must_be_positive():
    with pytest.raises(ValueError, match="steps must be a positive integer, not 0"):
        _lanes(1, 0, 0)


def test_restart_must_be_a_known_form():
    with pytest.raises(ValueError, match="restart must be one of load, clear, not 'reset'"):
        _lanes(1, 2, 0, "reset")
