# amaranth: UnusedElaboratable=no
import itertools

import pytest

from wrpn_rtl.golden.ops import check_window
from wrpn_rtl.hardware.window import SlidingWindow

from wrpn_rtl.sim.amaranth_stream import run_stream
from tests.helpers import window_words


CASES = [
    # (H, W, C, kernel, stride, padding, simd)
    ((5, 7, 2), 3, 1, 1, 2),
    ((6, 5, 4), 3, 2, 0, 2),
    ((4, 6, 2), 5, 1, 2, 1),
    ((7, 4, 3), 1, 1, 0, 3),
    ((5, 5, 2), 1, 2, 1, 2),
    ((6, 6, 4), (3, 2), (2, 1), 1, 4),
    ((3, 8, 2), 5, 2, 2, 1),
    ((2, 3, 2), 3, 1, 1, 2),       # the kernel is taller than the image: all rows buffered
    ((8, 3, 1), 3, 1, 2, 1),
    ((5, 1, 2), 1, 1, 0, 2),       # every word ends an output row: back-to-back row steps
    ((6, 2, 1), (1, 2), (2, 1), 0, 1),
]


@pytest.mark.parametrize("held_output", [False, True])
@pytest.mark.parametrize("in_shape, kernel, stride, padding, simd", CASES)
def test_window_matches_im2col_over_frames_under_stalls(in_shape, kernel, stride, padding,
                                                        simd, held_output, rng):
    dut = SlidingWindow(in_shape=in_shape, kernel=kernel, stride=stride, padding=padding,
                        simd=simd, bits=3, held_output=held_output)
    images = rng.integers(0, 8, (3,) + in_shape)
    words_in = images.reshape(-1, simd).tolist()
    ref_words = window_words(images, dut.kernel, dut.stride, padding, simd)
    rtl_words, _ = run_stream(dut, words_in, len(ref_words), rng=rng, stall_in=0.3, stall_out=0.3,
                              width=simd)
    assert rtl_words == ref_words


@pytest.mark.parametrize("in_shape, simd, lut_ram, expected", [
    ((4, 4, 16), 16, False, "block"), ((4, 4, 16), 16, True, "distributed"),
    ((5, 7, 2), 2, True, "distributed"), ((3, 3, 1), 1, True, "distributed"),
    ((3, 3, 1), 1, False, "logic"),
    ((8, 32, 4), 1, True, "block")])
def test_line_buffer_goes_to_lut_ram_where_the_device_has_it(in_shape, simd, lut_ram, expected):
    """With ``lut_ram`` (ECP5) a line buffer of 2 to 64 words is LUT RAM instead of block
    RAM or flip-flops: in the Verilog's ram_style and in the estimate (no block RAM, a read
    register)."""
    from amaranth.back import rtlil
    window = SlidingWindow(in_shape=in_shape, kernel=3, padding=1, simd=simd, bits=4,
                           lut_ram=lut_ram)
    assert window.memory_style() == expected
    assert f'attribute \\ram_style "{expected}"' in rtlil.convert(window)
    assert (window.estimate()["block_rams"] > 0) == (expected == "block")


def test_lut_ram_cost_follows_its_slices():
    """LUT RAM: a TRELLIS_DPR16X4 (two LUT4s) per 16 words of 4 bits, a multiplexer per bit
    for each further 16 words, the read register; no block RAM (a 16 x 64 line buffer placed
    as 16 DPR16X4 and 64 flip-flops on ECP5)."""
    from wrpn_rtl.compiler import cost
    assert cost.memory(64, 16, writable=True, style="distributed") == {
        "logic_cells": 32, "flip_flops": 64, "memory_bits": 0, "block_rams": 0,
        "dsp_blocks": 0}
    assert cost.memory(6, 40, writable=True, style="distributed")["logic_cells"] == (
        2 * 2 * 3 + 6 * 2)


@pytest.mark.parametrize("held_output", [False, True])
@pytest.mark.parametrize("in_shape, kernel, stride, padding, simd", CASES)
def test_window_cycles_per_frame(in_shape, kernel, stride, padding, simd, held_output, rng):
    dut = SlidingWindow(in_shape=in_shape, kernel=kernel, stride=stride, padding=padding,
                        simd=simd, bits=2, held_output=held_output)
    frames = 4
    images = rng.integers(0, 4, (frames,) + in_shape)
    ref_words = window_words(images, dut.kernel, dut.stride, padding, simd)
    rtl_words, cycles = run_stream(dut, images.reshape(-1, simd).tolist(), len(ref_words), rng=rng,
                                   width=simd)
    assert rtl_words == ref_words
    expected = frames * dut.cycles_per_frame
    assert cycles <= 1.05 * expected + 10, (cycles, expected)


def _geometry_sweep():
    """Every window geometry up to a bound: maps 3x4, 4x3 and the tiny 1x1, 2x1, 1x2,
    kernels 1..3, strides 1..3 and padding 0..3 on each axis independently, wherever the kernel
    fits the padded map. Padding deeper than the kernel puts whole output rows above or below
    the image, kernels as tall as the map leave one or two output rows per frame, and the
    tiny maps (with SIMD 2) have rows and frames of a single word. Half the geometries have
    the output held at the read port (``held_output``), half the output queue."""
    for height, width in [(3, 4), (4, 3), (1, 1), (2, 1), (1, 2)]:
        for kernel in itertools.product([1, 2, 3], repeat=2):
            for stride in itertools.product([1, 2, 3], repeat=2):
                for padding in range(4 if height * width > 2 else 2):
                    try:
                        check_window((height, width, 2), kernel, stride, padding)
                    except ValueError:
                        continue
                    simd = 1 + padding % 2
                    repeats = 1 + (kernel[0] + stride[1] + padding) % 3
                    held = (kernel[1] + stride[0] + padding + height) % 2 == 0
                    yield pytest.param((height, width, 2), kernel, stride, padding, simd,
                                       repeats, held,
                                       id=f"{height}x{width}-k{kernel[0]}x{kernel[1]}"
                                          f"-s{stride[0]}x{stride[1]}-p{padding}-simd{simd}"
                                          f"-x{repeats}" + ("-held" if held else ""))


def repeated_windows(words, window_words_per_pixel, repeats):
    """``words`` (every window once, in order) with each window ``repeats`` times over."""
    out = []
    for start in range(0, len(words), window_words_per_pixel):
        out += words[start:start + window_words_per_pixel] * repeats
    return out


@pytest.mark.parametrize("in_shape, kernel, stride, padding, simd, repeats, held_output",
                         list(_geometry_sweep()))
def test_window_geometry_sweep(in_shape, kernel, stride, padding, simd, repeats, held_output,
                               rng):
    """Four frames back to back, each window ``repeats`` times: bit-exact and within 5 % of
    ``cycles_per_frame`` without stalls, bit-exact under random stalls on both sides."""
    dut = SlidingWindow(in_shape=in_shape, kernel=kernel, stride=stride, padding=padding,
                        simd=simd, bits=3, repeats=repeats, held_output=held_output)
    frames = 4
    images = rng.integers(1, 8, (frames,) + in_shape)   # no zero codes: padding stands out
    words_in = images.reshape(-1, simd).tolist()
    ref_words = repeated_windows(window_words(images, kernel, stride, padding, simd),
                                 dut.kernel[0] * dut.kernel[1] * in_shape[2] // simd, repeats)
    rtl_words, cycles = run_stream(dut, words_in, len(ref_words), rng=rng, width=simd)
    assert rtl_words == ref_words
    expected = frames * dut.cycles_per_frame
    assert cycles <= 1.05 * expected + 10, (cycles, expected)
    rtl_words, _ = run_stream(dut, words_in, len(ref_words), rng=rng, stall_in=0.3, stall_out=0.3,
                              width=simd)
    assert rtl_words == ref_words


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(in_shape=(4, 4, 6), kernel=3, simd=4, bits=2), ValueError,
     r"^simd must be a positive divisor of the channels 6, not 4$"),
    (dict(in_shape=(4, 4, 2), kernel=5, simd=1, bits=2), ValueError,
     r"^kernel must fit the padded input 4x4, not 5x5$"),
    (dict(in_shape=(0, 4, 2), kernel=1, simd=1, bits=2), ValueError,
     r"^input shape must have positive sizes, not \(0, 4, 2\)$"),
    (dict(in_shape=(4, 4, 2), kernel=3, stride=0, simd=1, bits=2), ValueError,
     r"^stride must be >= 1, not \(0, 0\)$"),
    (dict(in_shape=(4, 4, 2), kernel=3, simd=1, bits=0), ValueError,
     r"^bits must be an integer in \[1, 16\], not 0$"),
])
def test_window_rejects_bad_shapes(kwargs, error, message):
    with pytest.raises(error, match=message):
        SlidingWindow(**kwargs)
