# amaranth: UnusedElaboratable=no
"""cocotb benches of the exported sliding window, on Icarus and Verilator, against im2col."""
import pytest

from wrpn_rtl.compiler.export import write_verilog
from wrpn_rtl.sim.runner import run_stream_bench
from wrpn_rtl.hardware.window import SlidingWindow

from tests.helpers import window_words

CASES = {
    "k3s1p1": ((5, 6, 4), 3, 1, 1, 2),
    "k3x2s2p2": ((6, 5, 2), (3, 2), 2, 2, 1),
    # padding deeper than the kernel: whole output rows above and below the image
    "k1x5s1p2": ((4, 5, 2), (1, 5), 1, 2, 2),
    "k1x3s2x1p2": ((5, 3, 1), (1, 3), (2, 1), 2, 1),
    # the kernel as tall as the map: one output row, frames overlap in the buffer
    "k3x1s1p0": ((3, 4, 2), (3, 1), 1, 0, 1),
}


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_exported_window_matches_im2col(case, simulator, tmp_path, rng):
    in_shape, kernel, stride, padding, simd = case
    dut = SlidingWindow(in_shape=in_shape, kernel=kernel, stride=stride, padding=padding,
                        simd=simd, bits=4)
    verilog = write_verilog(dut, tmp_path / "window.v", name="window")
    images = rng.integers(0, 16, (3,) + in_shape)
    expected = window_words(images, dut.kernel, dut.stride, padding, simd)
    result = run_stream_bench(verilog, toplevel="window", inputs=images.reshape(-1, simd),
                              expected=expected, in_width=4, out_lanes=simd, out_width=4,
                              out_signed=False, simulator=simulator,
                              build_dir=tmp_path / "bench", stall_in=0.3, stall_out=0.3,
                              seed=int(rng.integers(1 << 30)))
    assert result.outputs == expected
