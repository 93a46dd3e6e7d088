# amaranth: UnusedElaboratable=no
import pytest

from wrpn_rtl import golden as g
from wrpn_rtl.hardware.pool import MaxPool2d, MaxPoolReducer

from wrpn_rtl.sim.amaranth_stream import run_stream

CASES = [
    # (H, W, C, kernel, stride, padding, simd)
    ((6, 6, 4), 2, None, 0, 2),
    ((5, 7, 3), 3, 2, 1, 3),
    ((4, 4, 2), (2, 1), (2, 1), 0, 1),
    ((7, 5, 4), 3, 1, 1, 4),
    ((5, 5, 5), 2, None, 0, 1),         # 5 channel groups: an odd count for the group select
    ((4, 6, 6), (2, 3), None, 0, 2),    # 3 groups
]


@pytest.mark.parametrize("in_shape, kernel, stride, padding, simd", CASES)
def test_max_pool_matches_golden_under_stalls(in_shape, kernel, stride, padding, simd, rng):
    dut = MaxPool2d(in_shape=in_shape, kernel=kernel, stride=stride, padding=padding, simd=simd,
                    bits=4)
    images = rng.integers(0, 16, (3,) + in_shape)
    ref = g.max_pool2d(images, dut.window.kernel, dut.window.stride, padding)
    assert ref.shape[1:] == dut.out_shape
    ref_words = ref.reshape(-1, simd).tolist()
    rtl_words, _ = run_stream(dut, images.reshape(-1, simd).tolist(), len(ref_words), rng=rng,
                              stall_in=0.3, stall_out=0.4, width=simd)
    assert rtl_words == ref_words


def test_max_pool_runs_at_window_rate(rng):
    dut = MaxPool2d(in_shape=(8, 8, 4), kernel=2, simd=2, bits=3)
    images = rng.integers(0, 8, (4, 8, 8, 4))
    ref_words = g.max_pool2d(images, (2, 2), (2, 2), 0).reshape(-1, 2).tolist()
    rtl_words, cycles = run_stream(dut, images.reshape(-1, 2).tolist(), len(ref_words), rng=rng,
                                   width=2)
    assert rtl_words == ref_words
    assert cycles <= 1.05 * 4 * dut.cycles_per_frame + 10


def test_reducer_parameter_errors():
    with pytest.raises(ValueError, match=r"^groups must be a positive integer, not 0$"):
        MaxPoolReducer(window_size=4, groups=0, simd=2, bits=2)
    with pytest.raises(ValueError, match=r"^simd must be a positive divisor of the channels 3, "
                                         r"not 2$"):
        MaxPool2d(in_shape=(4, 4, 3), kernel=2, simd=2, bits=2)
