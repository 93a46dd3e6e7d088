# amaranth: UnusedElaboratable=no
import numpy as np
import pytest

from wrpn_rtl import golden as g
from wrpn_rtl.compiler.stages import Folding
from wrpn_rtl.hardware.accelerator import Accelerator
from wrpn_rtl.compiler.manifest import expected_outputs, output_fields
from wrpn_rtl.golden.zoo import digits_cnn
from wrpn_rtl.sim.amaranth_stream import run_stream


def run_network(net, foldings, images, rng, *, input_simd=1, stall=0.0):
    dut = Accelerator(net, foldings=foldings, input_simd=input_simd)
    ref = expected_outputs(dut, g.execute(net, images).outputs[-1])
    words, cycles = run_stream(dut, images.reshape(-1, input_simd).tolist(), len(ref),
                               out_fields=output_fields(dut), rng=rng, stall_in=stall,
                               stall_out=stall,
                               max_cycles=len(images) * dut.cycles_per_image * 6 + 3000)
    return np.array(words), np.array(ref), cycles, dut


def test_default_digits_network_matches_golden(rng):
    spec = digits_cnn()
    net = g.quantize_network(spec, g.random_parameters(spec, rng))
    foldings = [Folding(pe=4, simd=9, window_simd=1), Folding(pe=4, simd=16),
                Folding(pe=2, simd=16)]
    images = rng.integers(0, 256, (3, 8, 8, 1))
    rtl, ref, cycles, dut = run_network(net, foldings, images, rng, stall=0.3)
    np.testing.assert_array_equal(rtl, ref)


def test_small_networks_with_odd_shapes(rng):
    spec = g.NetworkSpec((5, 6, 2), 3, [g.MaxPool(2, stride=1),
                                         g.Conv(3, (2, 3), padding=1, weight_bits=3, out_bits=2),
                                         g.Dense(5, weight_bits=1, out_bits=3),
                                         g.Dense(3, weight_bits=2, out_bits=None,
                                                 batch_norm=False)], width=1.5)
    net = g.quantize_network(spec, g.random_parameters(spec, rng))
    foldings = [Folding(pe=1, simd=6, window_simd=2), Folding(pe=4, simd=5),
                Folding(pe=3, simd=4)]
    images = rng.integers(0, 8, (2, 5, 6, 2))
    rtl, ref, _, _ = run_network(net, foldings, images, rng, input_simd=2, stall=0.4)
    np.testing.assert_array_equal(rtl, ref)


def test_accelerator_streams_images_back_to_back(rng):
    spec = digits_cnn(width=1.0)
    net = g.quantize_network(spec, g.random_parameters(spec, rng))
    foldings = [Folding(pe=8, simd=9, window_simd=1), Folding(pe=4, simd=8),
                Folding(pe=5, simd=16)]
    images = rng.integers(0, 256, (4, 8, 8, 1))
    rtl, ref, cycles, dut = run_network(net, foldings, images, rng)
    np.testing.assert_array_equal(rtl, ref)
    assert cycles <= 4 * dut.cycles_per_image * 1.05 + 400


def test_accelerator_errors(rng):
    spec = digits_cnn()
    net = g.quantize_network(spec, g.random_parameters(spec, rng))
    with pytest.raises(ValueError, match=r"^foldings must give one Folding per Conv/Dense "
                                         r"layer \(3\), not 2$"):
        Accelerator(net, foldings=[Folding(1, 1), Folding(1, 1)])
    with pytest.raises(ValueError, match=r"^layer0: pe must be a positive divisor of "
                                         r"out_features 16, not 3$"):
        Accelerator(net, foldings=[Folding(3, 9), Folding(1, 1), Folding(1, 1)])
    with pytest.raises(ValueError, match=r"^layer2: window_simd must be a positive divisor of "
                                         r"the channels 16 or the window size 144, not 3$"):
        Accelerator(net, foldings=[Folding(1, 9, 1), Folding(1, 9, 3), Folding(1, 1)])
