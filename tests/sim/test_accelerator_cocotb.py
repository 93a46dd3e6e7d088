# amaranth: UnusedElaboratable=no
"""cocotb benches of the exported default digits accelerator on Icarus and Verilator."""
import numpy as np
import pytest

from wrpn_rtl import golden as g
from wrpn_rtl.accelerator import Accelerator, Folding
from wrpn_rtl.export import write_verilog
from wrpn_rtl.golden.zoo import digits_cnn
from wrpn_rtl.sim.runner import run_stream_bench


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_exported_default_network_matches_golden(simulator, tmp_path, rng):
    spec = digits_cnn()
    net = g.quantize_network(spec, g.random_parameters(spec, rng))
    dut = Accelerator(net, foldings=[Folding(pe=4, simd=9, window_simd=1),
                                     Folding(pe=4, simd=16), Folding(pe=2, simd=16)])
    lane = dut.output.payload.shape().elem_shape
    verilog = write_verilog(dut, tmp_path / "net.v", name="net")
    images = rng.integers(0, 256, (3, 8, 8, 1))
    expected = g.execute(net, images).outputs[-1].reshape(-1, 2)
    result = run_stream_bench(verilog, toplevel="net", inputs=images.reshape(-1, 1),
                              expected=expected, in_width=8, out_lanes=2,
                              out_width=lane.width, out_signed=lane.signed, simulator=simulator,
                              build_dir=tmp_path / "bench", stall_in=0.2, stall_out=0.3,
                              seed=int(rng.integers(1 << 30)), max_cycles=20_000)
    np.testing.assert_array_equal(np.array(result.outputs), expected)
