# amaranth: UnusedElaboratable=no
"""cocotb benches of the exported MVU Verilog, on Icarus and Verilator, against golden."""
import numpy as np
import pytest

from wrpn_rtl.compiler.export import write_verilog
from wrpn_rtl.hardware.mvu import MatrixVectorUnit
from wrpn_rtl.sim.runner import run_stream_bench

from tests.helpers import dense_layer, dense_reference as reference

CASES = [
    # (weight_bits, in_bits, out_bits, in_features, out_features, pe, simd)
    (1, 1, 2, 24, 6, 3, 8),
    (2, 4, 4, 15, 4, 2, 5),
    (4, 3, None, 12, 6, 6, 4),
    (8, 8, None, 9, 3, 1, 3),
]


def run_case(case, simulator, tmp_path, rng, *, stall, requantization=None):
    """``stall``: one setting for both streams, or ``(input, output)``."""
    stall_in, stall_out = stall if isinstance(stall, tuple) else (stall, stall)
    weight_bits, in_bits, out_bits, in_features, out_features, pe, simd = case
    layer = dense_layer(rng, in_features=in_features, out_features=out_features,
                        weight_bits=weight_bits, in_bits=in_bits, out_bits=out_bits)
    mvu = MatrixVectorUnit(layer, pe=pe, simd=simd, requantization=requantization)
    lane_shape = mvu.output.payload.shape().elem_shape
    verilog = write_verilog(mvu, tmp_path / "mvu.v", name="mvu")
    vectors = rng.integers(0, 1 << in_bits, (8, in_features))
    expected = reference(layer, vectors).reshape(-1, pe)
    result = run_stream_bench(
        verilog, toplevel="mvu", inputs=vectors.reshape(-1, simd), expected=expected,
        in_width=in_bits, out_lanes=pe, out_width=lane_shape.width,
        out_signed=lane_shape.signed, simulator=simulator, build_dir=tmp_path / "bench",
        stall_in=stall_in, stall_out=stall_out, seed=int(rng.integers(1 << 30)))
    np.testing.assert_array_equal(np.array(result.outputs), expected)
    return mvu, result


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "w{}a{}o{}_{}x{}_pe{}_simd{}".format(*c))
def test_exported_mvu_matches_golden_under_stalls(case, simulator, tmp_path, rng):
    run_case(case, simulator, tmp_path, rng, stall=0.4)


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("form", ["thresholds", "serial", "search", "affine"])
def test_exported_requantizers_match_golden(form, simulator, tmp_path, rng):
    """Each requantizer form in Verilog: SF = 12, NF = 4 (the serial form: 2 comparators per
    PE over 8 steps, a 32-row table read through a memory port; the search: 4 steps, a
    64-row table per PE)."""
    mvu, _ = run_case((2, 4, 4, 48, 8, 2, 4), simulator, tmp_path, rng, stall=0.3,
                      requantization=form)
    assert mvu.requantization == form


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("stall_in, stall_out", [("alternate", "bursts"),
                                                 ("bursts", "alternate")])
def test_exported_mvu_under_deterministic_stall_patterns(stall_in, stall_out, simulator,
                                                         tmp_path, rng):
    mvu, result = run_case(CASES[1], simulator, tmp_path, rng, stall=(stall_in, stall_out))
    # the patterns really throttle the stream: slower than the stall-free run
    assert result.cycles > 8 * mvu.cycles_per_vector + mvu.latency + 2


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_exported_mvu_runs_at_full_throughput(simulator, tmp_path, rng):
    mvu, result = run_case(CASES[1], simulator, tmp_path, rng, stall=0.0)
    expected_cycles = 8 * mvu.cycles_per_vector + mvu.latency
    assert expected_cycles <= result.cycles <= expected_cycles + 2


def test_a_wrong_expectation_fails_the_bench(tmp_path, rng):
    """The bench is not a rubber stamp: one wrong expected lane must fail the pytest test."""
    from wrpn_rtl.sim.runner import SimulationFailed
    layer = dense_layer(rng, in_features=4, out_features=2, weight_bits=2, in_bits=2, out_bits=2)
    mvu = MatrixVectorUnit(layer, pe=2, simd=4)
    verilog = write_verilog(mvu, tmp_path / "mvu.v", name="mvu")
    vectors = rng.integers(0, 4, (3, 4))
    expected = reference(layer, vectors).reshape(-1, 2)
    expected[1, 0] ^= 1
    with pytest.raises(SimulationFailed, match=r"1 of 3 output words differ; first at word 1"):
        run_stream_bench(verilog, toplevel="mvu", inputs=vectors, expected=expected, in_width=2,
                         out_lanes=2, out_width=2, out_signed=False, simulator="icarus",
                         build_dir=tmp_path / "bench")
