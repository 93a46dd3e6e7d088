# amaranth: UnusedElaboratable=no
import re

import numpy as np
import pytest
from amaranth.back import rtlil

from wrpn_rtl import golden as g
from wrpn_rtl.compiler import cost
from wrpn_rtl.hardware.mvu import MatrixVectorUnit, REQUANTIZATIONS

from wrpn_rtl.sim.amaranth_stream import run_stream
from tests.helpers import dense_layer, dense_reference as reference


def run_mvu(mvu, vectors, rng, *, stall_in=0.0, stall_out=0.0):
    """Stream ``vectors`` (N, in_features) through ``mvu``: (outputs (N, out_features), cycles
    from the first input to the last output transfer)."""
    count = len(vectors)
    words, cycles = run_stream(mvu, vectors.reshape(count * mvu.synapse_fold, mvu.simd).tolist(),
                               count * mvu.neuron_fold, width=mvu.pe, rng=rng,
                               stall_in=stall_in, stall_out=stall_out)
    return np.array(words).reshape(count, mvu.layer.out_channels), cycles


def check_stalled_and_back_to_back(mvu, vectors, rng, *, stall=0.3, count=6):
    """``mvu`` as golden on ``vectors`` under random stalls on both sides, then on ``count``
    random vectors back to back without stalls, in the cycles its latency promises (from the
    first input transfer to the last output's; with ``SF = 1`` the first vector's word is
    taken by its last fold)."""
    layer = mvu.layer
    rtl_out, _ = run_mvu(mvu, vectors, rng, stall_in=stall, stall_out=stall)
    np.testing.assert_array_equal(rtl_out, reference(layer, vectors))
    vectors = rng.integers(0, 1 << layer.in_bits, (count, vectors.shape[1]))
    rtl_out, cycles = run_mvu(mvu, vectors, rng)
    np.testing.assert_array_equal(rtl_out, reference(layer, vectors))
    first_take = mvu.neuron_fold - 1 if mvu.synapse_fold == 1 else 0
    expected = count * mvu.cycles_per_vector + mvu.latency - 1 - first_take
    assert expected <= cycles <= expected + 2


# Every precision pair, each with one of four foldings and output bits 1..4 in turn (the
# folding and output axes are covered in full by the tests below).
PRECISIONS = [(w, a, out, pe, simd) for index, (w, a) in
              enumerate((w, a) for w in (1, 2, 3, 4, 8) for a in (1, 2, 4, 8))
              for out, (pe, simd) in [(1 + index % 4, [(2, 4), (3, 3), (1, 12), (6, 2)][index % 4])]]


@pytest.mark.parametrize("weight_bits, in_bits, out_bits, pe, simd", PRECISIONS)
def test_mvu_matches_golden_under_stalls(weight_bits, in_bits, out_bits, pe, simd, rng):
    layer = dense_layer(rng, in_features=12, out_features=6, weight_bits=weight_bits,
                        in_bits=in_bits, out_bits=out_bits)
    mvu = MatrixVectorUnit(layer, pe=pe, simd=simd)
    vectors = rng.integers(0, 1 << in_bits, (4, 12))
    vectors[0] = (1 << in_bits) - 1     # an extreme vector: all inputs at full scale
    rtl_out, _ = run_mvu(mvu, vectors, rng, stall_in=0.3, stall_out=0.3)
    np.testing.assert_array_equal(rtl_out, reference(layer, vectors))


FOLDINGS = [
    # (in_features, out_features, pe, simd): odd sizes, non-powers of two, SF = 1, NF = 1
    (15, 9, 3, 5),
    (7, 5, 5, 7),
    (7, 5, 1, 1),
    (30, 4, 2, 6),
    (9, 6, 6, 1),
    (64, 3, 3, 16),
    (4, 6, 2, 4),      # SF = 1 with NF = 3: every fold reads the word in place
    (6, 8, 2, 3),      # SF = 2, NF = 4
]


# Each folding with its own precision (weight, input, output bits) in turn.
FOLDING_PRECISIONS = [folding + precision for folding, precision in zip(
    FOLDINGS, [(2, 4, 2), (1, 2, 3), (4, 3, 1), (5, 1, 2)] * 2)]


@pytest.mark.parametrize("in_features, out_features, pe, simd, weight_bits, in_bits, out_bits",
                         FOLDING_PRECISIONS)
@pytest.mark.parametrize("logits", [False, True])
@pytest.mark.parametrize("queue", [None, "block"])
def test_mvu_foldings_and_odd_sizes(in_features, out_features, pe, simd, weight_bits, in_bits,
                                    out_bits, logits, queue, rng):
    layer = dense_layer(rng, in_features=in_features, out_features=out_features,
                        weight_bits=weight_bits, in_bits=in_bits,
                        out_bits=None if logits else out_bits)
    mvu = MatrixVectorUnit(layer, pe=pe, simd=simd, queue=queue)
    vectors = rng.integers(0, 1 << in_bits, (5, in_features))
    rtl_out, _ = run_mvu(mvu, vectors, rng, stall_in=0.5, stall_out=0.5)
    np.testing.assert_array_equal(rtl_out, reference(layer, vectors))


@pytest.mark.parametrize("weight_bits, in_bits", [(16, 16), (12, 1), (1, 16)])
def test_mvu_widest_codes(weight_bits, in_bits, rng):
    layer = dense_layer(rng, in_features=8, out_features=4, weight_bits=weight_bits,
                        in_bits=in_bits, out_bits=None)
    mvu = MatrixVectorUnit(layer, pe=2, simd=4)
    vectors = np.concatenate([rng.integers(0, 1 << in_bits, (3, 8)),
                              np.full((1, 8), (1 << in_bits) - 1)])
    rtl_out, _ = run_mvu(mvu, vectors, rng, stall_in=0.2, stall_out=0.2)
    np.testing.assert_array_equal(rtl_out, reference(layer, vectors))


@pytest.mark.parametrize("in_shape, kernel, padding, out_bits", [
    ((5, 4, 3), 3, 1, 2),
    ((2, 2, 3), 3, 1, None),    # no window covers every tap: raw bounds are tighter than C
    ((3, 2, 2), (3, 2), 2, 1),
])
def test_mvu_on_convolution_windows(in_shape, kernel, padding, out_bits, rng):
    spec = g.NetworkSpec(in_shape, 4, [g.Conv(4, kernel, padding=padding, weight_bits=3,
                                              out_bits=out_bits, batch_norm=out_bits is not None)])
    layer = g.quantize_network(spec, g.random_parameters(spec, rng)).layers[0]
    mvu = MatrixVectorUnit(layer, pe=2, simd=layer.in_channels)
    images = rng.integers(0, 16, (2,) + in_shape)
    images[0] = 15
    windows = g.im2col(images, layer.kernel, layer.stride, layer.padding)
    rtl_out, _ = run_mvu(mvu, windows.reshape(-1, layer.window_size), rng, stall_in=0.3,
                         stall_out=0.3)
    expected = layer.integer_forward(images)[1].reshape(-1, 4)
    np.testing.assert_array_equal(rtl_out, expected)


@pytest.mark.parametrize("in_features, out_features, pe, simd", [(16, 4, 4, 16), (12, 6, 2, 4),
                                                                 (8, 2, 1, 1)])
@pytest.mark.parametrize("queue", [None, "block"])
def test_mvu_full_throughput_without_stalls(in_features, out_features, pe, simd, queue, rng):
    """Full rate with either output queue: the block-RAM one gives each word a cycle later
    and takes a credit slot more, so only the pipeline fill grows by one."""
    layer = dense_layer(rng, in_features=in_features, out_features=out_features, weight_bits=2,
                        in_bits=4, out_bits=4)
    mvu = MatrixVectorUnit(layer, pe=pe, simd=simd, queue=queue)
    count = 12
    vectors = rng.integers(0, 16, (count, in_features))
    rtl_out, cycles = run_mvu(mvu, vectors, rng)
    np.testing.assert_array_equal(rtl_out, reference(layer, vectors))
    # One step per cycle, back to back: vectors x NF x SF steps, plus the pipeline once,
    # counted from the cycle of the first input transfer (cycle 0) to the last output's.
    expected = count * mvu.cycles_per_vector + mvu.latency - 1 + int(queue == "block")
    assert expected <= cycles <= expected + 2


# (in_features, out_features, pe, simd, weight_bits): weight words in logic of 256 bits or
# more, read into a register first: SF = 1 with NF = 2 (every fold reads the word in place),
# SF = NF = 2 (buffered), binary weights, and three magnitude planes.
# wide words (256 bits and more), and a 20-word ROM (more than one LUT level)
REGISTERED_ROMS = [(16, 16, 8, 16, 2), (32, 24, 12, 16, 2), (64, 16, 16, 16, 1), (24, 6, 6, 12, 4),
             (20, 2, 1, 2, 2)]


@pytest.mark.parametrize("in_features, out_features, pe, simd, weight_bits", REGISTERED_ROMS)
@pytest.mark.parametrize("logits", [False, True])
def test_wide_or_deep_weight_rom_is_registered_and_exact(in_features, out_features, pe, simd,
                                                 weight_bits, logits, rng):
    layer = dense_layer(rng, in_features=in_features, out_features=out_features,
                        weight_bits=weight_bits, in_bits=3, out_bits=None if logits else 3)
    mvu = MatrixVectorUnit(layer, pe=pe, simd=simd)
    assert mvu.memory_styles()["weights"] == "logic" and mvu.weights_registered
    # multiplexers over constants, not a memory whose read register Yosys could move
    assert not re.search(r"^\s*memory .*\\weights", rtlil.convert(mvu), re.M)
    # without stalls one step per cycle, back to back, the register counted in the latency
    check_stalled_and_back_to_back(mvu, rng.integers(0, 8, (5, in_features)), rng, stall=0.4,
                                   count=8)


@pytest.mark.parametrize("in_features, out_features, pe, simd, styles, registered", [
    # weights 128 words (block RAM by default), input buffer 16 words
    (64, 8, 1, 4, {"weights": "logic", "input_buffer": "distributed"}, True),
    # weights 32 words of 256 bits: in logic, read into a register
    (128, 64, 16, 16, {"weights": "logic", "input_buffer": "distributed"}, True),
    # weights 1024 words stay in block RAM; the 64-word input buffer goes to LUT RAM
    (256, 32, 8, 4, {"weights": "block", "input_buffer": "distributed"}, False)])
def test_lut_ram_takes_shallow_memories_off_block_ram_and_stays_exact(
        in_features, out_features, pe, simd, styles, registered, rng):
    """With ``lut_ram`` (ECP5) a written memory of 2 to 64 words goes to LUT RAM, a ROM the
    default rule puts in block RAM to logic up to 128 words; the Verilog's ram_style, the
    estimate and the outputs under stalls follow."""
    from amaranth.back import rtlil
    layer = dense_layer(rng, in_features=in_features, out_features=out_features, weight_bits=2,
                        in_bits=3, out_bits=3)
    default = MatrixVectorUnit(layer, pe=pe, simd=simd)
    assert {key: default.memory_styles()[key] for key in styles} == {
        "weights": "block", "input_buffer": "block" if in_features // simd >= 16 else "logic"}
    mvu = MatrixVectorUnit(layer, pe=pe, simd=simd, lut_ram=True)
    assert {key: mvu.memory_styles()[key] for key in styles} == styles
    assert mvu.weights_registered == registered
    text = rtlil.convert(mvu)
    for style in set(styles.values()) - {"logic"}:
        assert f'attribute \\ram_style "{style}"' in text
    blocks = sum(style == "block" for style in styles.values())
    assert (mvu.estimate()["block_rams"] > 0) == (blocks > 0)
    assert mvu.estimate()["block_rams"] < default.estimate()["block_rams"]
    vectors = rng.integers(0, 8, (4, in_features))
    rtl_out, _ = run_mvu(mvu, vectors, rng, stall_in=0.3, stall_out=0.3)
    np.testing.assert_array_equal(rtl_out, reference(layer, vectors))


@pytest.mark.parametrize("out_features", [64, 100])
def test_many_folds_in_logic_are_exact(out_features, rng):
    """With ``lut_ram`` a layer of 64 or 100 neuron folds keeps its weight ROM and its
    threshold table (one row per fold) in logic; the table's multiplexers nest by index bit,
    so Amaranth's simulator compiles them (a chain as long as the table did not)."""
    layer = dense_layer(rng, in_features=4, out_features=out_features, weight_bits=2,
                        in_bits=3, out_bits=3)
    mvu = MatrixVectorUnit(layer, pe=1, simd=4, lut_ram=True)
    assert mvu.memory_styles()["weights"] == mvu.memory_styles()["thresholds"] == "logic"
    vectors = rng.integers(0, 8, (3, 4))
    rtl_out, _ = run_mvu(mvu, vectors, rng, stall_in=0.3, stall_out=0.3)
    np.testing.assert_array_equal(rtl_out, reference(layer, vectors))


def test_mvu_parameter_errors(rng):
    layer = dense_layer(rng, in_features=12, out_features=6, weight_bits=2, in_bits=4, out_bits=2)
    with pytest.raises(ValueError, match=r"^pe must be a positive divisor of out_features 6, not 4$"):
        MatrixVectorUnit(layer, pe=4, simd=4)
    with pytest.raises(ValueError, match=r"^simd must be a positive divisor of in_features 12, not 5$"):
        MatrixVectorUnit(layer, pe=2, simd=5)
    with pytest.raises(ValueError, match=r"^pe must be a positive divisor of out_features 6, not 0$"):
        MatrixVectorUnit(layer, pe=0, simd=4)
    with pytest.raises(TypeError, match=r"^simd must be a positive integer, not 2\.0$"):
        MatrixVectorUnit(layer, pe=2, simd=2.0)
    with pytest.raises(TypeError, match=r"^layer must be a golden QuantConv2d or QuantDense"):
        MatrixVectorUnit(np.ones((6, 12)), pe=2, simd=4)


def test_mvu_reports_its_cost(rng):
    layer = dense_layer(rng, in_features=64, out_features=8, weight_bits=2, in_bits=4, out_bits=4)
    mvu = MatrixVectorUnit(layer, pe=4, simd=16)
    assert (mvu.synapse_fold, mvu.neuron_fold, mvu.cycles_per_vector) == (4, 2, 8)
    estimate = mvu.estimate()
    assert estimate["partial_product_bound"] == 16 * 4 * 4 * 1
    assert estimate["logic_cells"] > estimate["partial_product_bound"]
    bits = mvu.memory_bits()
    assert bits["input_buffer"] == 16 * 4 * 4
    assert bits["weights"] >= 64 * 8 * 2


def test_mvu_memory_styles_follow_depth(rng):
    shallow = MatrixVectorUnit(dense_layer(rng, in_features=64, out_features=8, weight_bits=8,
                                           in_bits=8, out_bits=None), pe=8, simd=16)
    assert shallow.memory_styles() == {"weights": "logic", "input_buffer": None,
                                       "thresholds": "logic"}
    deep = MatrixVectorUnit(dense_layer(rng, in_features=256, out_features=32, weight_bits=2,
                                        in_bits=2, out_bits=2), pe=2, simd=4)
    assert deep.memory_styles() == {"weights": "block", "input_buffer": "block",
                                    "thresholds": "logic"}


REQUANTIZATION_CASES = [(1, 2, 3), (2, 3, 2), (4, 1, 6), (6, 6, 1), (8, 2, 6), (12, 3, 3),
                        (16, 2, 2)]


@pytest.mark.parametrize("out_bits, pe, simd, form", [
    case + (form,) for case in REQUANTIZATION_CASES for form in REQUANTIZATIONS
    if form == "affine" or case[0] <= 8 and (form != "search" or 6 // case[2] >= case[0])])
def test_mvu_requantization_forms(out_bits, pe, simd, form, rng):
    """The exact requantizers against golden, from 1 to 16 output bits (threshold tables only
    up to 8 bits: 65,535 thresholds per channel is what the affine form is for; the search
    only where a word's SF cycles hold its out_bits steps)."""
    layer = dense_layer(rng, in_features=6, out_features=6, weight_bits=3, in_bits=4,
                        out_bits=out_bits)
    mvu = MatrixVectorUnit(layer, pe=pe, simd=simd, requantization=form)
    assert mvu.requantization == form
    vectors = np.concatenate([rng.integers(0, 16, (6, 6)), np.zeros((1, 6), int),
                              np.full((1, 6), 15)])
    rtl_out, _ = run_mvu(mvu, vectors, rng, stall_in=0.3, stall_out=0.3)
    want = reference(layer, vectors)
    np.testing.assert_array_equal(rtl_out, want)
    assert len(np.unique(want)) > 2 or out_bits == 1       # the codes are not all clipped


@pytest.mark.parametrize("out_bits, pe, simd, form", [
    (2, 2, 16, "thresholds"),  # SF = 1: no time to scan, three comparators in parallel
    (4, 2, 8, "serial"),       # SF = 2: too few cycles to search 4 bits; 8 comparators scan
    (4, 4, 4, "search"),       # SF = 4: one comparator per PE decides a bit per cycle
    (8, 2, 4, "affine"), (16, 2, 4, "affine")])
def test_mvu_picks_the_cheaper_requantizer(out_bits, pe, simd, form, rng):
    layer = dense_layer(rng, in_features=16, out_features=4, weight_bits=2, in_bits=4,
                        out_bits=out_bits)
    mvu = MatrixVectorUnit(layer, pe=pe, simd=simd)
    assert mvu.requantization == form
    prices = {}
    for other in REQUANTIZATIONS:
        try:
            unit = MatrixVectorUnit(layer, pe=pe, simd=simd, requantization=other)
        except ValueError:      # no threshold table at 16 bits
            continue
        prices[other] = cost.requantization_price(unit.estimate())
    assert prices[form] == min(prices.values())


def test_serial_table_goes_where_it_is_cheaper(rng):
    """The serial form's table: deep and narrow (one PE) in block RAM, as wide as 16 PEs in
    logic, each where requantization_price is lower."""
    layer = dense_layer(rng, in_features=256, out_features=32, weight_bits=2, in_bits=4,
                        out_bits=4)
    narrow = MatrixVectorUnit(layer, pe=1, simd=16, requantization="serial")
    wide = MatrixVectorUnit(layer, pe=16, simd=16, requantization="serial")
    assert narrow.memory_styles()["thresholds"] == "block"     # 32 x 15 rows of 1 PE
    assert wide.memory_styles()["thresholds"] == "logic"       # 2 x 15 rows of 16 PEs
    for unit in (narrow, wide):
        bits = unit.memory_bits()["thresholds"]
        width, depth = bits // unit._table_words(), unit._table_words()
        chosen = unit.memory_styles()["thresholds"]
        other = "logic" if chosen == "block" else "block"
        price = {style: cost.requantization_price(cost.memory(width, depth, writable=False,
                                                              style=style))
                 for style in (chosen, other)}
        assert price[chosen] <= price[other]


@pytest.mark.parametrize("out_bits, sf, comparators, steps", [
    (4, 1, 15, 1), (4, 2, 8, 2), (4, 4, 4, 4), (4, 5, 3, 5), (4, 16, 1, 15), (2, 2, 2, 2),
    (1, 3, 1, 1), (3, 6, 2, 4)])
def test_serial_requantizer_scans_within_a_word(out_bits, sf, comparators, steps, rng):
    """R comparators per PE and S <= SF steps per word, over a table of NF * S rows; checked
    against golden under stalls, NF = 2, with and without back-to-back words."""
    layer = dense_layer(rng, in_features=2 * sf, out_features=4, weight_bits=2, in_bits=3,
                        out_bits=out_bits)
    mvu = MatrixVectorUnit(layer, pe=2, simd=2, requantization="serial")
    assert (mvu._serial_comparators, mvu._serial_steps) == (comparators, steps)
    assert mvu.memory_bits()["thresholds"] == \
        2 * mvu.neuron_fold * steps * (1 + comparators * mvu._threshold_shape().width)
    vectors = np.concatenate([rng.integers(0, 8, (7, 2 * sf)), np.full((1, 2 * sf), 7)])
    for stall in (0.0, 0.4):
        rtl_out, _ = run_mvu(mvu, vectors, rng, stall_in=stall, stall_out=stall)
        np.testing.assert_array_equal(rtl_out, reference(layer, vectors))


def search_order(rows, bits):
    """The thresholds ``s_1 .. s_L`` that one fold's rows of the search table hold: row 0
    holds ``s_(2**(bits-1))``, row ``m`` the two ``s_(m -+ h)`` of the step after ``m``
    (``h`` half the lowest set bit of ``m``); each must be held exactly once."""
    held = {1 << (bits - 1): rows[0]["low"]}
    assert rows[0]["high"] == rows[0]["low"]
    for m in range(1, 1 << bits):
        half = (m & -m) >> 1
        if half:
            for number, value in ((m - half, rows[m]["low"]), (m + half, rows[m]["high"])):
                assert number not in held
                held[number] = value
    assert sorted(held) == list(range(1, 1 << bits))
    return [held[number] for number in sorted(held)]


@pytest.mark.parametrize("out_bits, sf, nf, pe", [
    (1, 1, 3, 1), (1, 2, 1, 2), (2, 2, 3, 2), (2, 5, 2, 3), (3, 3, 2, 2), (3, 4, 1, 1),
    (4, 4, 4, 2), (4, 6, 3, 1), (5, 5, 2, 2), (6, 7, 2, 1), (8, 8, 1, 2)])
@pytest.mark.parametrize("tables", ["logic", "block"])
def test_search_requantizer_is_exact_whenever_it_fits(out_bits, sf, nf, pe, tables, rng):
    """The search form: every output bit width up to 8, SF from out_bits (a search ends in
    the cycle the next word's starts) upward, 1-4 folds, odd PE counts, either table place;
    against golden, with and without stalls, on vectors that reach both ends of the range.
    Its tables hold each channel's thresholds sorted, and channels of both directions occur."""
    layer = dense_layer(rng, in_features=2 * sf, out_features=nf * pe, weight_bits=2,
                        in_bits=3, out_bits=out_bits)
    mvu = MatrixVectorUnit(layer, pe=pe, simd=2, requantization="search", tables=tables)
    assert mvu.requantization == "search" and mvu.memory_styles()["thresholds"] == tables
    assert mvu.table_rows == nf << out_bits
    for p, rows in enumerate(mvu._search_rows()):
        for fold in range(nf):
            assert search_order(rows[fold << out_bits:(fold + 1) << out_bits], out_bits) == \
                sorted(mvu._threshold_tables()[fold * pe + p][1])
    vectors = np.concatenate([rng.integers(0, 8, (9, 2 * sf)), np.zeros((1, 2 * sf), int),
                              np.full((1, 2 * sf), 7)])
    want = reference(layer, vectors)
    for stall in (0.0, 0.4):
        rtl_out, _ = run_mvu(mvu, vectors, rng, stall_in=stall, stall_out=stall)
        np.testing.assert_array_equal(rtl_out, want)


def test_search_covers_inverted_channels(rng):
    """Across seeds, layers whose channels compare in either direction (``invert``) are
    searched exactly: the code of an inverted channel is the bitwise NOT of the count."""
    inverted = set()
    for _ in range(6):
        layer = dense_layer(rng, in_features=8, out_features=6, weight_bits=2, in_bits=3,
                            out_bits=3)
        mvu = MatrixVectorUnit(layer, pe=3, simd=2, requantization="search")
        inverted |= {row["invert"] for rows in mvu._search_rows() for row in rows}
        vectors = rng.integers(0, 8, (8, 8))
        rtl_out, _ = run_mvu(mvu, vectors, rng, stall_in=0.2, stall_out=0.2)
        np.testing.assert_array_equal(rtl_out, reference(layer, vectors))
    assert inverted == {0, 1}


def test_search_needs_a_cycle_per_output_bit(rng):
    layer = dense_layer(rng, in_features=6, out_features=2, weight_bits=2, in_bits=2,
                        out_bits=4)
    with pytest.raises(ValueError, match=r"^layer0: requantization 'search' needs at least "
                                         r"out_bits \(4\) cycles per output word, one compare "
                                         r"per code bit: SF = 3 \(simd 2\) is too few$"):
        MatrixVectorUnit(layer, pe=1, simd=2, requantization="search")
    assert MatrixVectorUnit(layer, pe=1, simd=2).requantization != "search"


@pytest.mark.parametrize("form", REQUANTIZATIONS + (None,))
@pytest.mark.parametrize("tables", ["logic", "block"])
def test_tables_go_where_asked_and_stay_exact(form, tables, rng):
    """``tables`` puts every form's per-fold table (and a logits layer's bias table) in logic
    or block RAM, as asked; the outputs stay golden under stalls either way (a block RAM is
    read a cycle earlier than a logic table's register)."""
    layer = dense_layer(rng, in_features=8, out_features=12, weight_bits=2, in_bits=3,
                        out_bits=3 if form else None)
    simd = 2 if form == "search" else 4          # the search's 3 steps need SF >= 3
    mvu = MatrixVectorUnit(layer, pe=2, simd=simd, requantization=form, tables=tables)
    assert mvu.table_rows > 1 and mvu.tables == tables
    assert mvu.memory_styles()["thresholds"] == tables
    block_rams = mvu.estimate()["block_rams"]
    logic = MatrixVectorUnit(layer, pe=2, simd=simd, requantization=form, tables="logic")
    assert (block_rams > logic.estimate()["block_rams"]) == (tables == "block")
    vectors = np.concatenate([rng.integers(0, 8, (7, 8)), np.full((1, 8), 7)])
    rtl_out, _ = run_mvu(mvu, vectors, rng, stall_in=0.3, stall_out=0.3)
    np.testing.assert_array_equal(rtl_out, reference(layer, vectors))


def test_mvu_rejects_a_bad_table_place(rng):
    layer = dense_layer(rng, in_features=4, out_features=2, weight_bits=2, in_bits=2,
                        out_bits=2)
    with pytest.raises(ValueError, match=r"^tables must be None, 'logic' or 'block', "
                                         r"not 'bram'$"):
        MatrixVectorUnit(layer, pe=1, simd=1, tables="bram")


def test_mvu_rejects_a_bad_requantization(rng):
    layer = dense_layer(rng, in_features=4, out_features=2, weight_bits=2, in_bits=2,
                        out_bits=2)
    with pytest.raises(ValueError, match=r"^requantization must be None, 'thresholds', "
                                         r"'serial', 'search' or 'affine', not 'lut'$"):
        MatrixVectorUnit(layer, pe=1, simd=1, requantization="lut")


def test_mvu_refuses_impractical_thresholds(rng):
    """Wide outputs need the affine form: asking for thresholds, or a layer whose staircase has
    no affine form, is refused by name instead of building 2**k - 1 comparators per PE."""
    layer = dense_layer(rng, in_features=4, out_features=2, weight_bits=2, in_bits=2,
                        out_bits=12)
    with pytest.raises(ValueError, match=r"^layer0: out_bits must be at most 10 for threshold "
                                         r"requantization \(asked for\), not 12: 4095 "
                                         r"thresholds per channel$"):
        MatrixVectorUnit(layer, pe=1, simd=1, requantization="thresholds")
    # multiplier 1/3, offset 0.9: accumulators -3..0 sit on rounding ties (see the golden
    # threshold tests)
    anomalous = g.QuantDense(
        name="tie", in_shape=(1, 1, 1), in_bits=2, weights=np.array([[-1]]), weight_bits=2,
        weight_scale=np.array([1.0]),
        output=g.Requantization(multiplier=np.array([1 / 3]), offset=np.array([0.9]),
                                out_bits=12))
    assert anomalous.requantizer.affine is None
    with pytest.raises(ValueError, match=r"^tie: out_bits must be at most 10 .* rounding "
                                         r"anomaly"):
        MatrixVectorUnit(anomalous, pe=1, simd=1)


# (weight_bits, in_bits, in_features, out_features, pe, simd, dsp_pairs): ternary and wider
# weights, one pair, some pairs beside lanes in logic (odd SIMD: one lane is always logic),
# every lane in pairs, the widest operands that pack into 16 bits (2A + P + 1 = 16)
DSP_CASES = [(2, 4, 12, 6, 2, 6, 1), (2, 4, 15, 4, 2, 5, 2), (3, 4, 12, 6, 3, 4, 2),
             (4, 4, 36, 4, 2, 12, 6), (4, 6, 8, 4, 4, 2, 1), (5, 2, 16, 3, 1, 16, 3),
             (2, 1, 9, 3, 3, 9, 4), (8, 1, 6, 2, 1, 6, 3)]


@pytest.mark.parametrize("weight_bits, in_bits, in_features, out_features, pe, simd, pairs",
                         DSP_CASES)
@pytest.mark.parametrize("logits", [False, True])
def test_dsp_pairs_are_exact_under_stalls(weight_bits, in_bits, in_features, out_features, pe,
                                          simd, pairs, logits, rng):
    layer = dense_layer(rng, in_features=in_features, out_features=out_features,
                        weight_bits=weight_bits, in_bits=in_bits,
                        out_bits=None if logits else 3)
    mvu = MatrixVectorUnit(layer, pe=pe, simd=simd, dsp_pairs=pairs)
    assert mvu.dsp_blocks == pe * pairs == mvu.estimate()["dsp_blocks"]
    vectors = rng.integers(0, 1 << in_bits, (5, in_features))
    vectors[0] = (1 << in_bits) - 1     # every operand at full scale: the widest fields
    check_stalled_and_back_to_back(mvu, vectors, rng)


def test_dsp_pairs_packing_holds_at_the_extremes():
    """The packed product's middle field is the pair's sum for every corner of the operand
    and magnitude ranges of each packable precision (the module docstring's bound)."""
    from wrpn_rtl.hardware.lanes import DSP_OPERAND_BITS, dsp_operand_bits
    for a_bits in range(1, 9):
        for planes in range(1, 8):
            if max(dsp_operand_bits(a_bits, planes)) > DSP_OPERAND_BITS:
                continue
            k = a_bits + planes + 1
            corners_u = [0, 1, (1 << a_bits) - 1]
            corners_m = [0, 1, (1 << planes) - 1]
            for u0 in corners_u:
                for u1 in corners_u:
                    for m0 in corners_m:
                        for m1 in corners_m:
                            product = (u0 + (u1 << k)) * (m1 + (m0 << k))
                            assert (product >> k) & ((1 << k) - 1) == u0 * m0 + u1 * m1


def test_dsp_pair_errors_name_the_parameter(rng):
    ternary = dense_layer(rng, in_features=12, out_features=4, weight_bits=2, in_bits=4,
                          out_bits=2)
    with pytest.raises(ValueError, match=r"layer0: dsp_pairs must be an integer in \[0, 3\] "
                                         r"\(half the 6 lanes\), not 4"):
        MatrixVectorUnit(ternary, pe=2, simd=6, dsp_pairs=4)
    with pytest.raises(ValueError, match="dsp_pairs must be an integer .* not 1.5"):
        MatrixVectorUnit(ternary, pe=2, simd=6, dsp_pairs=1.5)
    binary = dense_layer(rng, in_features=12, out_features=4, weight_bits=1, in_bits=4,
                         out_bits=2)
    with pytest.raises(ValueError, match="dsp_pairs must be 0 for 1-bit weights"):
        MatrixVectorUnit(binary, pe=2, simd=6, dsp_pairs=1)
    wide = dense_layer(rng, in_features=12, out_features=4, weight_bits=2, in_bits=8,
                       out_bits=2)
    with pytest.raises(ValueError, match=r"dsp_pairs must be 0 for 8-bit operands and 1-bit "
                                         r"weight magnitudes \(packed operands of 18 and 11 "
                                         r"bits exceed the 16-bit multiplier\), not 1"):
        MatrixVectorUnit(wide, pe=2, simd=6, dsp_pairs=1)


def test_dsp_pairs_move_lanes_out_of_the_estimated_logic(rng):
    """Wider weights: each pair takes a DSP block and saves logic; ternary at 4 bits the
    estimate sees the pair about as dear as two lanes in logic (measured so)."""
    def mvu_cells(weight_bits, pairs):
        layer = dense_layer(np.random.default_rng(3), in_features=36, out_features=8,
                            weight_bits=weight_bits, in_bits=4, out_bits=4)
        return cost.device_logic_cells(
            MatrixVectorUnit(layer, pe=2, simd=36, dsp_pairs=pairs).estimate())
    assert mvu_cells(4, 0) - mvu_cells(4, 4) > 8 * 50
    assert abs(mvu_cells(2, 0) - mvu_cells(2, 4)) < 8 * 16


def dsp_requantized(rng, *, pe, simd, tries=50, **layer_parameters):
    """An MVU with its affine requantizer in DSP blocks, on the first random layer whose
    affine form exists and fits the multiplier."""
    for _ in range(tries):
        layer = dense_layer(rng, **layer_parameters)
        try:
            return layer, MatrixVectorUnit(layer, pe=pe, simd=simd, dsp_requantizer=True)
        except ValueError:
            continue
    raise AssertionError(f"no random layer of {layer_parameters} fits")


@pytest.mark.parametrize("weight_bits, in_bits, out_bits, pe, simd", [
    (2, 4, 4, 2, 6), (4, 4, 6, 3, 4), (2, 8, 4, 1, 12), (3, 2, 2, 6, 3), (8, 4, 3, 2, 12)])
def test_affine_requantizer_in_dsp_blocks_is_exact(weight_bits, in_bits, out_bits, pe, simd):
    rng = np.random.default_rng(weight_bits * 100 + out_bits)
    layer, mvu = dsp_requantized(rng, pe=pe, simd=simd, in_features=12, out_features=6,
                                 weight_bits=weight_bits, in_bits=in_bits, out_bits=out_bits)
    assert mvu.requantization == "affine"
    assert mvu.dsp_blocks == pe == mvu.estimate()["dsp_blocks"]
    vectors = rng.integers(0, 1 << in_bits, (5, 12))
    vectors[0] = (1 << in_bits) - 1
    # the same latency as the multiplier in logic: back to back, in the promised cycles
    check_stalled_and_back_to_back(mvu, vectors, rng)
    assert mvu.latency == MatrixVectorUnit(layer, pe=pe, simd=simd,
                                           requantization="affine").latency
    # and cheaper in logic than the multiplier in logic
    in_logic = MatrixVectorUnit(layer, pe=pe, simd=simd, requantization="affine").estimate()
    assert mvu.estimate()["logic_cells"] < in_logic["logic_cells"]


def test_dsp_requantizer_errors_name_the_reason(rng):
    logits = dense_layer(rng, in_features=6, out_features=2, weight_bits=2, in_bits=4,
                         out_bits=None)
    with pytest.raises(ValueError, match=r"layer0: dsp_requantizer must be false \(a logits "
                                         r"layer has no requantizer\), not True"):
        MatrixVectorUnit(logits, pe=2, simd=6, dsp_requantizer=True)
    layer, _ = dsp_requantized(rng, pe=2, simd=6, in_features=6, out_features=2,
                               weight_bits=2, in_bits=4, out_bits=4)
    with pytest.raises(ValueError, match=r"dsp_requantizer must be false \(requantization "
                                         r"'serial' was asked for\), not True"):
        MatrixVectorUnit(layer, pe=2, simd=2, requantization="serial", dsp_requantizer=True)
    with pytest.raises(ValueError, match="dsp_requantizer must be true or false, not 1"):
        MatrixVectorUnit(layer, pe=2, simd=6, dsp_requantizer=1)
    wide = next(layer for layer in (
        dense_layer(rng, in_features=64, out_features=2, weight_bits=8, in_bits=8, out_bits=8)
        for _ in range(20)) if layer.requantizer.affine is not None)
    with pytest.raises(ValueError, match=r"dsp_requantizer must be false \(its \d+-bit "
                                         r"accumulator times \d+-bit multipliers exceed the "
                                         r"16-bit multiplier\), not True"):
        MatrixVectorUnit(wide, pe=2, simd=8, dsp_requantizer=True)


def test_block_queue_takes_a_block_ram_instead_of_flip_flops(rng):
    """``queue="block"``: the output queue is one block RAM in the estimate and in the
    Verilog (a ``ram_style "block"`` memory), a slot deeper, and far less logic; a bad place
    is refused naming the layer."""
    layer = dense_layer(rng, in_features=9, out_features=16, weight_bits=2, in_bits=8,
                        out_bits=4)
    flops, block = (MatrixVectorUnit(layer, pe=1, simd=9, queue=queue)
                    for queue in (None, "block"))
    assert block.fifo_depth == flops.fifo_depth + 1
    assert block.estimate()["block_rams"] == flops.estimate()["block_rams"] + 1
    assert block.estimate()["logic_cells"] < flops.estimate()["logic_cells"] - 40
    assert rtlil.convert(block).count('attribute \\ram_style "block"') == 1
    assert 'ram_style "block"' not in rtlil.convert(flops)
    with pytest.raises(ValueError, match=r"^layer0: queue must be None or 'block', "
                                         r"not 'logic'$"):
        MatrixVectorUnit(layer, pe=1, simd=9, queue="logic")


# (in_features, out_features, pe, simd, pe_per_requantizer, weight_bits, in_bits, out_bits):
# G = SF exactly and G < SF, one requantizer (G = PE) and several, one neuron fold and many,
# odd sizes (PE 9 by threes, PE 5 alone), 1 to 6 output bits.
SHARED = [(12, 6, 6, 2, 6, 2, 4, 4),      # SF 6, NF 1, one requantizer
          (12, 12, 4, 3, 2, 2, 4, 3),     # SF 4 > G 2, NF 3, two requantizers
          (15, 18, 9, 3, 3, 3, 2, 2),     # SF 5, NF 2, three requantizers of three PEs
          (10, 5, 5, 2, 5, 1, 3, 1),      # SF = G = 5, binary weights, one output bit
          (8, 8, 2, 1, 2, 4, 1, 6),       # SF 8, NF 4, one requantizer of two PEs
          (27, 6, 3, 9, 3, 2, 8, 4)]      # SF = G = 3


@pytest.mark.parametrize("in_features, out_features, pe, simd, share, weight_bits, in_bits, "
                         "out_bits", SHARED)
@pytest.mark.parametrize("form", ["thresholds", "affine"])
@pytest.mark.parametrize("tables", ["logic", "block"])
def test_shared_requantizers_are_exact_under_stalls(in_features, out_features, pe, simd, share,
                                                    weight_bits, in_bits, out_bits, form,
                                                    tables, rng):
    """``G`` PEs per requantizer, taking the word's sums one group per cycle: every code as
    golden under random stalls on both sides, with the table in logic or block RAM, and at
    full rate back to back in the promised cycles (``G + 1`` more latency)."""
    layer = dense_layer(rng, in_features=in_features, out_features=out_features,
                        weight_bits=weight_bits, in_bits=in_bits, out_bits=out_bits)
    if form == "affine" and layer.requantizer.affine is None:
        pytest.skip("this random layer has no exact affine form")
    mvu = MatrixVectorUnit(layer, pe=pe, simd=simd, requantization=form, tables=tables,
                           pe_per_requantizer=share)
    assert mvu.requantizers == pe // share and mvu.requantization == form
    vectors = rng.integers(0, 1 << in_bits, (6, in_features))
    vectors[0] = (1 << in_bits) - 1
    vectors[1] = 0
    check_stalled_and_back_to_back(mvu, vectors, rng, stall=0.4, count=8)
    alone = MatrixVectorUnit(layer, pe=pe, simd=simd, requantization=form, tables=tables)
    assert mvu.latency == alone.latency + share + 1


def test_shared_dsp_requantizer_takes_a_block_per_requantizer():
    """The affine requantizer in DSP blocks, shared: one block per requantizer, exact, and
    less logic than a requantizer per PE in DSP blocks or shared in logic."""
    rng = np.random.default_rng(7)
    layer, mvu = dsp_requantized(rng, pe=4, simd=2, in_features=12, out_features=8,
                                 weight_bits=2, in_bits=4, out_bits=4)
    shared = MatrixVectorUnit(layer, pe=4, simd=2, dsp_requantizer=True, pe_per_requantizer=4)
    assert shared.requantization == "affine"
    assert shared.dsp_blocks == 1 == shared.estimate()["dsp_blocks"] and mvu.dsp_blocks == 4
    vectors = rng.integers(0, 16, (6, 12))
    rtl_out, _ = run_mvu(shared, vectors, rng, stall_in=0.3, stall_out=0.3)
    np.testing.assert_array_equal(rtl_out, reference(layer, vectors))
    in_logic = MatrixVectorUnit(layer, pe=4, simd=2, requantization="affine",
                                pe_per_requantizer=4)
    for other in (mvu, in_logic):
        assert shared.estimate()["logic_cells"] < other.estimate()["logic_cells"]
    # one multiplier in the netlist instead of four
    assert [rtlil.convert(unit).count("cell $mul ") for unit in (shared, mvu)] == [1, 4]


def test_shared_requantizer_errors_name_the_rule(rng):
    layer = dense_layer(rng, in_features=12, out_features=8, weight_bits=2, in_bits=4,
                        out_bits=4)
    for share in (3, 0, True, 1.5):
        with pytest.raises(ValueError, match=rf"^layer0: pe_per_requantizer must be a positive "
                                             rf"divisor of PE 4, not {re.escape(repr(share))}$"):
            MatrixVectorUnit(layer, pe=4, simd=4, pe_per_requantizer=share)
    with pytest.raises(ValueError, match=r"^layer0: pe_per_requantizer must be 1 \(a PE's words "
                                         r"are SF = 3 cycles apart and the requantizer takes "
                                         r"the 4 sums one per cycle\), not 4$"):
        MatrixVectorUnit(layer, pe=4, simd=4, pe_per_requantizer=4)
    for form in ("serial", "search"):
        with pytest.raises(ValueError, match=rf"^layer0: pe_per_requantizer must be 1 "
                                             rf"\(requantization '{form}' takes more than one "
                                             rf"cycle per sum\), not 2$"):
            MatrixVectorUnit(layer, pe=4, simd=2, requantization=form, pe_per_requantizer=2)
    logits = dense_layer(rng, in_features=12, out_features=8, weight_bits=2, in_bits=4,
                         out_bits=None)
    with pytest.raises(ValueError, match=r"^layer0: pe_per_requantizer must be 1 \(a logits "
                                         r"layer has no requantizer\), not 2$"):
        MatrixVectorUnit(logits, pe=4, simd=2, pe_per_requantizer=2)
    # left to choose, a shared unit picks among the forms that take a sum per cycle
    assert MatrixVectorUnit(layer, pe=4, simd=2, pe_per_requantizer=2).requantization in (
        "thresholds", "affine")
