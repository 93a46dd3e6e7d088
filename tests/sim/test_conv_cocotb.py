# amaranth: UnusedElaboratable=no
"""cocotb benches of an exported convolution layer (window, converter, MVU, max-pool) and of a
stand-alone max-pool, on Icarus and Verilator, against the golden model."""
import numpy as np
import pytest

from wrpn_rtl import golden as g
from wrpn_rtl.hardware.conv import ConvLayer
from wrpn_rtl.compiler.export import write_verilog
from wrpn_rtl.hardware.pool import MaxPool2d
from wrpn_rtl.sim.runner import run_stream_bench

from tests.helpers import conv_network


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("window_simd", [1, 9], ids=["line_buffer", "register_window"])
def test_exported_conv_layer_matches_golden(window_simd, simulator, tmp_path, rng):
    layer, pool = conv_network(rng, (6, 6, 1), g.Conv(4, 3, padding=1, weight_bits=2,
                                                      out_bits=4), g.MaxPool(2))
    dut = ConvLayer(layer, pe=2, simd=9, window_simd=window_simd, pool=pool)
    verilog = write_verilog(dut, tmp_path / "conv.v", name="conv")
    images = rng.integers(0, 16, (2, 6, 6, 1))
    expected = pool.integer_forward(layer.integer_forward(images)[1])[1].reshape(-1, 2)
    result = run_stream_bench(verilog, toplevel="conv", inputs=images.reshape(-1, 1),
                              expected=expected, in_width=4, out_lanes=2, out_width=4,
                              out_signed=False, simulator=simulator, build_dir=tmp_path / "bench",
                              stall_in=0.3, stall_out=0.3, seed=int(rng.integers(1 << 30)))
    np.testing.assert_array_equal(np.array(result.outputs), expected)


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_exported_max_pool_matches_golden(simulator, tmp_path, rng):
    dut = MaxPool2d(in_shape=(5, 6, 4), kernel=3, stride=2, padding=1, simd=2, bits=3)
    verilog = write_verilog(dut, tmp_path / "pool.v", name="pool")
    images = rng.integers(0, 8, (2, 5, 6, 4))
    expected = g.max_pool2d(images, (3, 3), (2, 2), 1).reshape(-1, 2)
    result = run_stream_bench(verilog, toplevel="pool", inputs=images.reshape(-1, 2),
                              expected=expected, in_width=3, out_lanes=2, out_width=3,
                              out_signed=False, simulator=simulator, build_dir=tmp_path / "bench",
                              stall_in=0.3, stall_out=0.4, seed=int(rng.integers(1 << 30)))
    np.testing.assert_array_equal(np.array(result.outputs), expected)
