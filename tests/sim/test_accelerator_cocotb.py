# amaranth: UnusedElaboratable=no
"""cocotb benches of exported whole-network accelerators on Icarus and Verilator: the default
digits network (trained weights, compiler-chosen folding) and small random networks of odd
shapes and several precisions, every output word against the golden model."""
import numpy as np
import pytest

from wrpn_rtl import golden as g
from wrpn_rtl.compiler.stages import Folding
from wrpn_rtl.compiler.folding import choose_foldings
from wrpn_rtl.compiler.manifest import build_accelerator, expected_outputs, output_fields, write_design
from wrpn_rtl.golden.train import load_digits_split
from wrpn_rtl.golden.zoo import load_default_model
from wrpn_rtl.sim.runner import run_stream_bench

pytestmark = pytest.mark.slow     # whole networks through Verilator builds


def small_network(case, rng):
    """Small networks with odd sizes (one ends in codes, not logits) and tiny ones."""
    if case == "odd_w3a2":
        spec = g.NetworkSpec((5, 6, 2), 3, [
            g.Conv(3, (2, 3), padding=1, weight_bits=3, out_bits=2), g.MaxPool(2, stride=1),
            g.Dense(5, weight_bits=1, out_bits=3),
            g.Dense(3, weight_bits=2, out_bits=None, batch_norm=False)], width=1.5)
        foldings = [Folding(pe=5, simd=6, window_simd=2), Folding(pe=4, simd=5),
                    Folding(pe=3, simd=4)]
    elif case == "one_logit":
        # a 2 -> 1 lane converter first offers its word right after reset (an Array index
        # there came out undefined on Icarus), and a single class
        spec = g.NetworkSpec((3, 3, 3), 2, [
            g.Conv(2, 2, weight_bits=1, out_bits=1),
            g.Dense(1, weight_bits=1, out_bits=None, batch_norm=False)])
        foldings = [Folding(pe=2, simd=3, window_simd=3), Folding(pe=1, simd=1)]
    elif case == "one_pixel":
        # frames and rows of a single word through a window and a pool
        spec = g.NetworkSpec((1, 1, 2), 2, [
            g.MaxPool(1, stride=2), g.Conv(3, 1, weight_bits=2, out_bits=2),
            g.Dense(2, weight_bits=2, out_bits=None, batch_norm=False)])
        foldings = [Folding(pe=3, simd=2, window_simd=2), Folding(pe=2, simd=3)]
    elif case == "wide_a16":
        # 16- and 12-bit activations: the affine requantizer (65,535 thresholds per channel
        # would be impractical)
        spec = g.NetworkSpec((4, 3, 2), 8, [
            g.Conv(3, 3, padding=1, weight_bits=4, out_bits=16),
            g.Dense(4, weight_bits=8, out_bits=12),
            g.Dense(2, weight_bits=3, out_bits=None, batch_norm=False)])
        foldings = [Folding(pe=3, simd=6, window_simd=2), Folding(pe=2, simd=9),
                    Folding(pe=1, simd=4)]
    elif case == "dsp_w4a3":
        # DSP pairs beside lanes in logic (SIMD 9: lanes 6-8 in logic) in a convolution, and
        # every lane in pairs in the dense layer
        spec = g.NetworkSpec((4, 4, 3), 3, [
            g.Conv(4, 3, padding=1, weight_bits=4, out_bits=3), g.MaxPool(2),
            g.Dense(3, weight_bits=3, out_bits=None, batch_norm=False)])
        foldings = [Folding(pe=2, simd=9, window_simd=3, dsp_pairs=3),
                    Folding(pe=3, simd=4, dsp_pairs=2)]
    else:
        spec = g.NetworkSpec((7, 3, 3), 2, [
            g.Conv(5, 3, stride=2, padding=1, weight_bits=5, out_bits=1),
            g.Dense(6, weight_bits=4, out_bits=4)])
        foldings = [Folding(pe=5, simd=9, window_simd=3), Folding(pe=2, simd=10)]
    net = g.quantize_network(spec, g.random_parameters(spec, rng))
    return net, foldings


def run_case(net, foldings, images, simulator, tmp_path, rng, *, stall_in=0.2, stall_out=0.3):
    dut = build_accelerator(net, foldings)
    verilog, _, info = write_design(dut, tmp_path / "design", name="net")
    expected = expected_outputs(dut, g.execute(net, images).outputs[-1])
    result = run_stream_bench(verilog, toplevel="net", inputs=images.reshape(-1, 1),
                              expected=expected, in_width=net.input_bits,
                              out_fields=output_fields(dut), simulator=simulator,
                              build_dir=tmp_path / "bench", stall_in=stall_in, stall_out=stall_out,
                              seed=int(rng.integers(1 << 30)),
                              max_cycles=len(images) * info["cycles_per_image"] * 4 + 5000)
    assert result.outputs == expected
    return result, info


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_default_network_with_compiled_folding(simulator, tmp_path, rng):
    net = load_default_model()
    foldings = choose_foldings(net, target_cycles=2048)
    images = net.quantize_input(load_digits_split()[2][:3])
    result, info = run_case(net, foldings, images, simulator, tmp_path, rng)
    labels = [word[-1] for word in result.outputs]
    assert labels == list(np.argmax(g.execute(net, images).outputs[-1].reshape(3, -1), axis=1))


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_default_network_with_dsp_blocks(simulator, tmp_path, rng):
    """The UP5K's design as the search makes it with the device's DSP blocks: conv1's
    requantizer multiplies in one."""
    net = load_default_model()
    foldings = choose_foldings(net, max_logic_cells=3960, max_block_rams=30, max_dsp_blocks=8)
    assert foldings[0].dsp_requantizer
    images = net.quantize_input(load_digits_split()[2][3:6])
    _, info = run_case(net, foldings, images, simulator, tmp_path, rng)
    assert info["estimate"]["dsp_blocks"] >= 1


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("case", ["odd_w3a2", "codes_w5a2", "one_logit", "one_pixel",
                                  "wide_a16", "dsp_w4a3"])
def test_small_random_networks(case, simulator, tmp_path, rng):
    net, foldings = small_network(case, rng)
    images = rng.integers(0, 1 << net.input_bits, (6,) + net.input_shape)
    _, info = run_case(net, foldings, images, simulator, tmp_path, rng)
    if case == "dsp_w4a3":
        assert info["estimate"]["dsp_blocks"] == 2 * 3 + 3 * 2
    if case == "wide_a16":
        assert [stage.get("requantization") for stage in info["stages"]
                if "requantization" in stage] == ["affine", "affine", None]
    if case.startswith("one_"):
        # without stalls every stage takes a word the cycle it is offered
        run_case(net, foldings, images, simulator, tmp_path / "no_stall", rng, stall_in=0,
                 stall_out=0)
