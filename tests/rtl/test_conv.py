# amaranth: UnusedElaboratable=no
import pytest

from wrpn_rtl import golden as g
from wrpn_rtl.hardware.conv import ConvLayer

from wrpn_rtl.sim.amaranth_stream import run_stream
from tests.helpers import conv_network


CASES = [
    # in_shape, Conv(...), MaxPool or None, pe, simd, window_simd
    ((8, 8, 1), g.Conv(4, 3, padding=1, weight_bits=2, out_bits=4), g.MaxPool(2), 2, 9, 1),
    ((6, 5, 4), g.Conv(6, 3, stride=2, weight_bits=1, out_bits=2), None, 3, 4, 4),
    ((5, 7, 2), g.Conv(4, (3, 2), padding=2, weight_bits=3, out_bits=3), g.MaxPool(2, stride=1),
     4, 6, 2),
    ((6, 6, 3), g.Conv(2, 1, weight_bits=4, out_bits=None, batch_norm=False), None, 1, 3, 3),
    ((7, 7, 2), g.Conv(4, 5, padding=2, weight_bits=2, out_bits=2), g.MaxPool(3, stride=2,
                                                                               padding=1), 2, 10, 2),
    # register windows (window_simd = the whole window): repeated NF times, NF = 1, and
    # scattered by a converter into a replay
    ((8, 8, 1), g.Conv(4, 3, padding=1, weight_bits=2, out_bits=4), g.MaxPool(2), 2, 9, 9),
    ((8, 8, 1), g.Conv(4, 3, padding=1, weight_bits=2, out_bits=4), None, 4, 9, 9),
    ((6, 5, 2), g.Conv(6, 3, stride=2, weight_bits=1, out_bits=2), None, 3, 6, 18),
    ((5, 7, 2), g.Conv(4, (3, 2), padding=2, weight_bits=3, out_bits=3), g.MaxPool(2, stride=1),
     4, 12, 12),
]


@pytest.mark.parametrize("in_shape, conv, pool, pe, simd, window_simd", CASES)
def test_conv_layer_matches_golden_under_stalls(in_shape, conv, pool, pe, simd, window_simd, rng):
    layer, golden_pool = conv_network(rng, in_shape, conv, pool)
    dut = ConvLayer(layer, pe=pe, simd=simd, window_simd=window_simd, pool=golden_pool)
    images = rng.integers(0, 16, (2,) + in_shape)
    out = layer.integer_forward(images)[1]
    if golden_pool is not None:
        out = golden_pool.integer_forward(out)[1]
    assert out.shape[1:] == dut.out_shape
    ref_words = out.reshape(-1, pe).tolist()
    rtl_words, _ = run_stream(dut, images.reshape(-1, dut.input_layout.length).tolist(),
                              len(ref_words), rng=rng, stall_in=0.3, stall_out=0.3, width=pe)
    assert rtl_words == ref_words


def _steady_cycles_per_frame(dut, layer, golden_pool, in_shape, pe, rng):
    """Cycles per frame in steady state: runs of 3 and 7 frames without stalls, bit-exact,
    their difference over the 4 extra frames (no latency in it)."""
    runs = []
    for frames in (3, 7):
        images = rng.integers(0, 16, (frames,) + in_shape)
        out = layer.integer_forward(images)[1]
        if golden_pool is not None:
            out = golden_pool.integer_forward(out)[1]
        ref_words = out.reshape(-1, pe).tolist()
        words, cycles = run_stream(dut, images.reshape(-1, dut.input_layout.length).tolist(),
                                   len(ref_words), rng=rng, width=pe)
        assert words == ref_words
        runs.append(cycles)
    return (runs[1] - runs[0]) / 4


@pytest.mark.parametrize("index", [0, 1, 2, 5, 6, 7, 8])
def test_conv_layer_cycles_per_frame(index, rng):
    in_shape, conv, pool, pe, simd, window_simd = CASES[index]
    layer, golden_pool = conv_network(rng, in_shape, conv, pool)
    dut = ConvLayer(layer, pe=pe, simd=simd, window_simd=window_simd, pool=golden_pool)
    steady = _steady_cycles_per_frame(dut, layer, golden_pool, in_shape, pe, rng)
    assert steady <= 1.05 * dut.cycles_per_frame, (steady, dut.cycles_per_frame)


def test_conv_layer_errors(rng):
    layer, pool = conv_network(rng, (8, 8, 2), g.Conv(4, 3, padding=1), g.MaxPool(2))
    with pytest.raises(ValueError, match=r"^window_simd must be a positive divisor of the "
                                         r"channels 2 or the window size 18, not 3$"):
        ConvLayer(layer, pe=2, simd=6, window_simd=3)
    with pytest.raises(ValueError, match=r"^pe must be a positive divisor of out_features 4, "
                                         r"not 3$"):
        ConvLayer(layer, pe=3, simd=6)
    other, _ = conv_network(rng, (6, 6, 2), g.Conv(4, 3), None)
    with pytest.raises(ValueError, match=r"^pool input shape must be the layer's output "
                                         r"\(4, 4, 4\), not \(8, 8, 4\)$"):
        ConvLayer(other, pe=2, simd=6, pool=pool)


REGISTER_SCATTER = [
    # in_shape, kernel, stride, padding: register windows scattered into narrower words
    ((6, 6, 1), 3, 1, 1), ((6, 6, 1), 3, 2, 1), ((5, 7, 2), (3, 2), 1, 2), ((4, 4, 2), 2, 1, 0),
    ((7, 5, 1), 3, 1, 0), ((6, 6, 1), 3, 1, 2), ((5, 5, 2), 3, 2, 0), ((8, 8, 1), 3, 1, 1),
]


@pytest.mark.parametrize("nf", [1, 2])
@pytest.mark.parametrize("in_shape, kernel, stride, padding", REGISTER_SCATTER)
def test_register_window_scattered_runs_at_its_expected_rate(in_shape, kernel, stride, padding,
                                                             nf, rng):
    """A register window whose windows a converter scatters into SIMD-wide words leaves the
    MVU idle across the padding and the frame boundary unless windows queue up before the
    converter; with the queue the layer runs at exactly its slowest stage, for every SIMD
    that divides the window."""
    conv = g.Conv(4, kernel, stride=stride, padding=padding, weight_bits=2, out_bits=2)
    layer, _ = conv_network(rng, in_shape, conv, None)
    window = layer.window_size
    for simd in [s for s in range(1, window) if window % s == 0][-3:]:
        dut = ConvLayer(layer, pe=4 // nf, simd=simd, window_simd=window)
        steady = _steady_cycles_per_frame(dut, layer, None, in_shape, 4 // nf, rng)
        assert steady == dut.cycles_per_frame, (simd, steady, dut.cycles_per_frame,
                                                 [name for name, _ in dut.parts])


@pytest.mark.parametrize("index", [0, 2, 5, 7])
def test_conv_layer_with_its_queue_in_block_ram(index, rng):
    """The MVU's output queue in a block RAM (``queue="block"``): bit-exact under stalls on
    both sides, at the layer's rate without them."""
    in_shape, conv, pool, pe, simd, window_simd = CASES[index]
    layer, golden_pool = conv_network(rng, in_shape, conv, pool)
    dut = ConvLayer(layer, pe=pe, simd=simd, window_simd=window_simd, pool=golden_pool,
                    queue="block")
    assert dut.mvu.queue == "block"
    images = rng.integers(0, 16, (2,) + in_shape)
    out = layer.integer_forward(images)[1]
    if golden_pool is not None:
        out = golden_pool.integer_forward(out)[1]
    ref_words = out.reshape(-1, pe).tolist()
    rtl_words, _ = run_stream(dut, images.reshape(-1, dut.input_layout.length).tolist(),
                              len(ref_words), rng=rng, stall_in=0.3, stall_out=0.3, width=pe,
                              max_cycles=20 * dut.cycles_per_frame)
    assert rtl_words == ref_words
    steady = _steady_cycles_per_frame(dut, layer, golden_pool, in_shape, pe, rng)
    assert steady <= 1.05 * dut.cycles_per_frame, (steady, dut.cycles_per_frame)


@pytest.mark.parametrize("index, share, dsp", [(1, 3, False), (2, 2, True), (7, 3, False),
                                               (7, 3, True)])
def test_conv_layer_with_shared_requantizers(index, share, dsp, rng):
    """PEs sharing requantizers inside a whole layer (window, replay or converter, MVU, pool;
    thresholds or affine, in DSP blocks or not): bit-exact under stalls on both sides, and at
    the layer's rate without them (the output queue's credit covers the longer output
    stage)."""
    in_shape, conv, pool, pe, simd, window_simd = CASES[index]
    layer, golden_pool = conv_network(rng, in_shape, conv, pool)
    if dsp and layer.requantizer.affine is None:
        pytest.skip("this random layer has no exact affine form")
    dut = ConvLayer(layer, pe=pe, simd=simd, window_simd=window_simd, pool=golden_pool,
                    dsp_requantizer=dsp, pe_per_requantizer=share)
    assert dut.mvu.requantizers == pe // share
    assert dut.mvu.requantization in (("affine",) if dsp else ("thresholds", "affine"))
    images = rng.integers(0, 16, (2,) + in_shape)
    out = layer.integer_forward(images)[1]
    if golden_pool is not None:
        out = golden_pool.integer_forward(out)[1]
    rtl_words, _ = run_stream(dut, images.reshape(-1, dut.input_layout.length).tolist(),
                              out.size // pe, rng=rng, stall_in=0.3, stall_out=0.3, width=pe)
    assert rtl_words == out.reshape(-1, pe).tolist()
    steady = _steady_cycles_per_frame(dut, layer, golden_pool, in_shape, pe, rng)
    assert steady <= 1.05 * dut.cycles_per_frame, (steady, dut.cycles_per_frame)
