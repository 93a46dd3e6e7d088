import numpy as np
import pytest
from amaranth.sim import Simulator

from wrpn_rtl import golden as g
from wrpn_rtl.mvu import MatrixVectorUnit

from .streams import lanes, stream_get, stream_put


def dense_layer(rng, *, in_features, out_features, weight_bits, in_bits, out_bits):
    """A golden dense layer with random WRPN-quantized weights and requantization."""
    logits = out_bits is None
    spec = g.NetworkSpec((1, 1, in_features), in_bits,
                         [g.Dense(out_features, weight_bits=weight_bits, out_bits=out_bits,
                                  batch_norm=not logits)])
    return g.quantize_network(spec, g.random_parameters(spec, rng)).layers[0]


def run_mvu(mvu, vectors, rng, *, stall_in=0.0, stall_out=0.0, max_cycles=None):
    """Stream ``vectors`` (N, in_features) through ``mvu``; return (outputs (N, out), cycles)."""
    layer = mvu.layer
    count = len(vectors)
    words_in = vectors.reshape(count * mvu.synapse_fold, mvu.simd)
    words_out = count * mvu.neuron_fold
    received, finished = [], []

    async def producer(ctx):
        for word in words_in:
            await stream_put(ctx, mvu.input, [int(v) for v in word], rng=rng, stall=stall_in)

    async def consumer(ctx):
        cycles = 0
        for _ in range(words_out):
            payload = await stream_get(ctx, mvu.output, rng=rng, stall=stall_out)
            received.append(lanes(payload, mvu.pe))
        finished.append(True)

    async def counter(ctx):
        cycle = 0
        async for _ in ctx.tick():
            cycle += 1
            if finished:
                finished.append(cycle)
                return

    sim = Simulator(mvu)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_testbench(counter, background=True)
    limit = max_cycles or (4 * count * mvu.cycles_per_vector * (1 + 4 * max(stall_in, stall_out))
                           + 10 * mvu.latency + 100)
    sim.run_until(limit * 1e-8)
    assert len(received) == words_out, f"only {len(received)} of {words_out} output words"
    out = np.array(received).reshape(count, layer.out_channels)
    return out, finished[1] if len(finished) > 1 else None


def reference(layer, vectors):
    x = vectors.reshape((len(vectors),) + layer.in_shape)
    return layer.integer_forward(x)[1].reshape(len(vectors), -1)


PRECISIONS = [(w, a) for w in (1, 2, 3, 4, 8) for a in (1, 2, 4, 8)]


@pytest.mark.parametrize("weight_bits, in_bits", PRECISIONS)
def test_mvu_matches_golden_under_stalls(weight_bits, in_bits, rng):
    layer = dense_layer(rng, in_features=12, out_features=6, weight_bits=weight_bits,
                        in_bits=in_bits, out_bits=int(rng.integers(1, 5)))
    pe, simd = [(2, 4), (3, 3), (1, 12), (6, 2)][int(rng.integers(4))]
    mvu = MatrixVectorUnit(layer, pe=pe, simd=simd)
    vectors = rng.integers(0, 1 << in_bits, (4, 12))
    vectors[0] = (1 << in_bits) - 1     # an extreme vector: all inputs at full scale
    rtl_out, _ = run_mvu(mvu, vectors, rng, stall_in=0.3, stall_out=0.3)
    np.testing.assert_array_equal(rtl_out, reference(layer, vectors))
