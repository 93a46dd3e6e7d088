# amaranth: UnusedElaboratable=no
"""The shift-register window (whole windows per word) against golden im2col, over the window
geometry sweep of the line buffer, several frames, repeats, with and without stalls."""
import pytest

from wrpn_rtl.hardware.register_window import RegisterWindow

from wrpn_rtl.sim.amaranth_stream import run_stream
from tests.helpers import window_words
from tests.rtl.test_window import _geometry_sweep, repeated_windows


def _sweep():
    """The line buffer's geometry sweep (maps 3x4, 4x3, 1x1, 2x1, 1x2; kernels, strides 1..3
    per axis; padding 0..3), each with 1 or 2 channels and 1..3 repeats."""
    for param in _geometry_sweep():
        in_shape, kernel, stride, padding, simd, repeats, _held_output = param.values
        channels = simd        # 1 or 2 channels, alternating
        yield pytest.param((in_shape[0], in_shape[1], channels), kernel, stride, padding,
                           repeats, id=param.id.replace(f"-simd{simd}", f"-c{channels}")
                           .replace("-held", ""))


@pytest.mark.parametrize("in_shape, kernel, stride, padding, repeats", list(_sweep()))
def test_register_window_geometry_sweep(in_shape, kernel, stride, padding, repeats, rng):
    """Two and four frames back to back without stalls: bit-exact, and the two frames more
    take ``cycles_per_frame`` each in steady state (its model of the hardware, cycle by
    cycle); four frames bit-exact under random stalls on both sides."""
    dut = RegisterWindow(in_shape=in_shape, kernel=kernel, stride=stride, padding=padding,
                         bits=3, repeats=repeats)
    codes = dut.window_codes
    cycles = {}
    for frames in (2, 4):
        images = rng.integers(1, 8, (frames,) + in_shape)   # no zero codes: padding shows
        words_in = images.reshape(-1, in_shape[2]).tolist()
        ref_words = repeated_windows(window_words(images, dut.kernel, dut.stride, padding,
                                                  codes), 1, repeats)
        rtl_words, cycles[frames] = run_stream(dut, words_in, len(ref_words), rng=rng,
                                               width=codes)
        assert rtl_words == ref_words
    steady = (cycles[4] - cycles[2]) / 2
    assert dut.cycles_per_frame - 1 < steady <= dut.cycles_per_frame, (steady,
                                                                       dut.cycles_per_frame)
    rtl_words, _ = run_stream(dut, words_in, len(ref_words), rng=rng, stall_in=0.3,
                              stall_out=0.3, width=codes)
    assert rtl_words == ref_words


@pytest.mark.parametrize("in_shape, kernel, stride, padding, repeats", [
    ((8, 8, 1), 3, 1, 1, 1), ((8, 8, 1), 3, 1, 1, 2), ((7, 5, 3), (3, 2), (2, 1), 2, 3)])
def test_register_window_on_larger_maps(in_shape, kernel, stride, padding, repeats, rng):
    dut = RegisterWindow(in_shape=in_shape, kernel=kernel, stride=stride, padding=padding,
                         bits=8, repeats=repeats)
    images = rng.integers(0, 256, (3,) + in_shape)
    ref_words = repeated_windows(window_words(images, dut.kernel, dut.stride, padding,
                                              dut.window_codes), 1, repeats)
    for stall in (0.0, 0.4):
        rtl_words, cycles = run_stream(dut, images.reshape(-1, in_shape[2]).tolist(),
                                       len(ref_words), rng=rng, stall_in=stall,
                                       stall_out=stall, width=dut.window_codes)
        assert rtl_words == ref_words
        if stall == 0.0:
            assert cycles <= 1.05 * 3 * dut.cycles_per_frame + 10


@pytest.mark.parametrize("kwargs, message", [
    (dict(in_shape=(4, 4, 2), kernel=5, bits=2), r"^kernel must fit the padded input 4x4, "
                                                 r"not 5x5$"),
    (dict(in_shape=(4, 4, 2), kernel=3, bits=2, repeats=0), r"^repeats must be a positive "
                                                            r"integer"),
    (dict(in_shape=(4, 4, 2), kernel=3, bits=17), r"^bits must be an integer in \[1, 16\], "
                                                  r"not 17$"),
])
def test_register_window_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RegisterWindow(**kwargs)
