# amaranth: UnusedElaboratable=no
import itertools

import numpy as np
import pytest

from wrpn_rtl.golden.ops import as_pair, max_pool2d
from amaranth.hdl import Fragment

from wrpn_rtl.hardware.pool import (BlockMaxPool, BlockMaxPoolGeometry, MaxPool2d,
                                    MaxPool2dGeometry, max_pool, max_pool_geometry)
from wrpn_rtl.sim.amaranth_stream import run_stream


@pytest.mark.parametrize("in_shape, kernel, simd, stall, input_interval", [
    ((8, 8, 16), 2, 1, 0.0, 1), ((8, 8, 16), 2, 4, 0.3, 1), ((4, 4, 32), 2, 2, 0.2, 1),
    ((5, 7, 3), 2, 1, 0.3, 1),          # odd sizes: the last row and column are dropped
    ((6, 6, 2), 3, 2, 0.0, 1), ((5, 6, 4), (2, 3), 2, 0.4, 1), ((3, 4, 1), 1, 1, 0.2, 1),
    ((4, 5, 6), (1, 2), 3, 0.3, 1), ((7, 3, 5), (3, 1), 5, 0.0, 1), ((2, 2, 1), 2, 1, 0.5, 1),
    # the queue sized for a slower producer: still exact when words come faster (at full
    # rate, or in bursts after a stall) and when the consumer stalls; only throttled
    ((4, 4, 32), 2, 4, 0.0, 8), ((4, 4, 32), 2, 4, 0.3, 8), ((8, 8, 16), 2, 2, 0.0, 3),
    ((8, 8, 16), 2, 2, 0.3, 3), ((5, 7, 3), 2, 1, 0.3, 2), ((6, 6, 2), 3, 2, 0.0, 5),
    ((6, 6, 2), 3, 2, 0.3, 5),
])
def test_block_pool_matches_golden(in_shape, kernel, simd, stall, input_interval, rng):
    dut = BlockMaxPool(in_shape=in_shape, kernel=kernel, simd=simd, bits=3,
                       input_interval=input_interval)
    frames = 3
    x = rng.integers(0, 8, (frames,) + in_shape)
    ref = max_pool2d(x, as_pair("kernel", kernel), as_pair("kernel", kernel), 0)
    rtl, cycles = run_stream(dut, x.reshape(-1, simd).tolist(), ref.size // simd, width=simd,
                             rng=rng, stall_in=stall, stall_out=stall)
    np.testing.assert_array_equal(np.array(rtl).reshape(ref.shape), ref)
    if stall == 0.0 and input_interval == 1:
        assert cycles <= frames * dut.cycles_per_frame + 8


def _block_pool_cases():
    """Every kernel of 1-3 by 1-3 on maps from one block to just past two blocks (the last
    rows and columns dropped), with one channel group (a block row's words consecutive, so
    the partial maximum written in one cycle is read back in the next: forwarded) and with
    two."""
    cases = []
    for k_h, k_w in itertools.product((1, 2, 3), repeat=2):
        for height, width in {(k_h, k_w), (k_h, 2 * k_w + 1), (2 * k_h + 1, k_w),
                              (2 * k_h, 2 * k_w)}:
            for channels, simd in ((2, 2), (4, 2)):
                cases.append(((height, width, channels), (k_h, k_w), simd))
    return cases


@pytest.mark.parametrize("in_shape, kernel, simd", _block_pool_cases())
def test_block_pool_sweep_of_kernels_maps_and_groups(in_shape, kernel, simd):
    """Three frames each, without stalls and under random stalls on both sides."""
    rng = np.random.default_rng(sum(in_shape) * 100 + kernel[0] * 10 + kernel[1] + simd)
    x = rng.integers(0, 8, (3,) + in_shape)
    ref = max_pool2d(x, kernel, kernel, 0)
    for stall in (0.0, 0.4):
        dut = BlockMaxPool(in_shape=in_shape, kernel=kernel, simd=simd, bits=3)
        rtl, _ = run_stream(dut, x.reshape(-1, simd).tolist(), ref.size // simd, width=simd,
                            rng=rng, stall_in=stall, stall_out=stall)
        np.testing.assert_array_equal(np.array(rtl).reshape(ref.shape), ref)


@pytest.mark.parametrize("kwargs, kind", [
    (dict(kernel=2), "block"), (dict(kernel=2, stride=(2, 2)), "block"),
    (dict(kernel=2, stride=1), "window"), (dict(kernel=2, padding=1), "window")])
def test_max_pool_picks_the_block_pool_only_when_it_applies(kwargs, kind):
    geometry = max_pool_geometry(in_shape=(4, 4, 2), simd=1, bits=2, **kwargs)
    component = max_pool(in_shape=(4, 4, 2), simd=1, bits=2, **kwargs)
    Fragment.get(component, None)                   # built, so used
    expected = (BlockMaxPoolGeometry, BlockMaxPool) if kind == "block" else (MaxPool2dGeometry,
                                                                             MaxPool2d)
    assert type(geometry) is expected[0] and type(component) is expected[1]


@pytest.mark.parametrize("kwargs", [dict(kernel=2), dict(kernel=2, stride=1)])
def test_a_pool_on_a_device_with_lut_ram_keeps_its_memory_there(kwargs, rng):
    """With ``lut_ram`` (ECP5) a pool's memory (the block pool's partial maxima, the window
    pool's line buffer) is LUT RAM: in the Verilog, in the estimate (no block RAM, and less
    logic than flip-flops) and exact under stalls."""
    from amaranth.back import rtlil
    shape = (4, 4, 2)
    plain = max_pool_geometry(in_shape=shape, simd=1, bits=2, **kwargs)
    component = max_pool(in_shape=shape, simd=1, bits=2, lut_ram=True, **kwargs)
    assert 'attribute \\ram_style "distributed"' in rtlil.convert(component)
    lut = max_pool_geometry(in_shape=shape, simd=1, bits=2, lut_ram=True, **kwargs)
    assert lut.estimate()["block_rams"] == 0
    if plain.estimate()["block_rams"] == 0:        # flip-flops before: LUT RAM is less logic
        assert lut.estimate()["logic_cells"] < plain.estimate()["logic_cells"]
    kernel = as_pair("kernel", kwargs["kernel"])
    stride = as_pair("stride", kwargs.get("stride", kwargs["kernel"]))
    x = rng.integers(0, 4, (2,) + shape)
    ref = max_pool2d(x, kernel, stride, 0)
    rtl, _ = run_stream(component, x.reshape(-1, 1).tolist(), ref.size, width=1, rng=rng,
                        stall_in=0.3, stall_out=0.3)
    np.testing.assert_array_equal(np.array(rtl).reshape(ref.shape), ref)


def test_block_pool_errors():
    with pytest.raises(ValueError, match=r"simd"):
        BlockMaxPool(in_shape=(4, 4, 6), kernel=2, simd=4, bits=2)
    with pytest.raises(ValueError, match=r"kernel"):
        BlockMaxPool(in_shape=(2, 2, 1), kernel=3, simd=1, bits=2)


@pytest.mark.parametrize("input_interval, depth", [(1, 5), (2, 3), (3, 2), (4, 2), (5, 1),
                                                   (8, 1)])
def test_block_pool_queue_covers_its_credit_at_the_input_rate(input_interval, depth):
    """A word's queue slot is in credit for LATENCY + 2 cycles; input at one word per
    ``input_interval`` cycles needs ceil((LATENCY + 2) / interval) of them."""
    pool = BlockMaxPoolGeometry(in_shape=(4, 4, 8), kernel=2, simd=2, bits=3,
                                input_interval=input_interval)
    assert pool.queue_depth == depth


def test_block_pool_input_interval_errors():
    with pytest.raises(ValueError, match=r"input_interval must be a positive integer, not 0"):
        BlockMaxPool(in_shape=(4, 4, 2), kernel=2, simd=1, bits=2, input_interval=0)
    with pytest.raises(ValueError, match=r"input_interval"):
        max_pool(in_shape=(4, 4, 2), kernel=2, stride=1, simd=1, bits=2, input_interval=-1)
