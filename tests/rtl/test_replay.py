# amaranth: UnusedElaboratable=no
import pytest
from amaranth.hdl import unsigned
from amaranth.lib import data

from wrpn_rtl.hardware.replay import VectorReplay
from wrpn_rtl.sim.amaranth_stream import run_stream


@pytest.mark.parametrize("words, times, stall", [(1, 1, 0.0), (1, 4, 0.3), (5, 1, 0.3),
                                                 (7, 3, 0.0), (7, 3, 0.4), (20, 2, 0.2),
                                                 (3, 10, 0.5), (2, 2, 0.3)])
@pytest.mark.parametrize("style, lut_ram", [(None, False), ("block", False), ("logic", False),
                                            (None, True)])
def test_every_vector_comes_out_times_over(words, times, stall, style, lut_ram, rng):
    dut = VectorReplay(words=words, times=times, shape=data.ArrayLayout(unsigned(5), 2),
                       style=style, lut_ram=lut_ram)
    vectors = rng.integers(0, 32, (4, words, 2))
    rtl, _ = run_stream(dut, vectors.reshape(-1, 2).tolist(), 4 * words * times, width=2,
                        rng=rng, stall_in=stall, stall_out=stall)
    ref = [list(map(int, word)) for vector in vectors for _ in range(times) for word in vector]
    assert rtl == ref


def test_replay_overlaps_the_next_vector(rng):
    # Without stalls the output side never waits for input after the first vector: the
    # next vector is written while the current one is replayed.
    words, times, count = 6, 4, 5
    dut = VectorReplay(words=words, times=times, shape=data.ArrayLayout(unsigned(8), 1))
    vectors = rng.integers(0, 256, (count, words))
    rtl, cycles = run_stream(dut, [[v] for v in vectors.ravel()], count * words * times,
                             width=1)
    assert [w[0] for w in rtl] == [int(v) for vector in vectors for _ in range(times)
                                   for v in vector]
    assert cycles <= count * dut.cycles_per_frame + words + 6


@pytest.mark.parametrize("style, words, lut_ram, expected", [
    (None, 4, False, "logic"), (None, 8, False, "block"), ("block", 1, False, "block"),
    ("logic", 20, False, "logic"), (None, 1, True, "distributed"), (None, 4, True, "distributed"),
    (None, 8, True, "distributed"),
    (None, 32, True, "distributed"), (None, 33, True, "block"), ("block", 8, True, "block")])
def test_the_buffer_goes_where_asked(style, words, lut_ram, expected):
    """``style`` overrides the default rule (block RAM from 16 words; with ``lut_ram``, LUT
    RAM from 2 to 64); the estimate and the memory's ``ram_style`` attribute in the Verilog
    follow it."""
    from amaranth.back import rtlil
    dut = VectorReplay(words=words, times=2, shape=data.ArrayLayout(unsigned(4), 16),
                       style=style, lut_ram=lut_ram)
    assert dut.memory_style() == expected
    assert (dut.estimate()["block_rams"] > 0) == (expected == "block")
    assert f'attribute \\ram_style "{expected}"' in rtlil.convert(dut)


def test_replay_errors():
    with pytest.raises(ValueError, match=r"^replay must be None, 'logic' or 'block', "
                                         r"not 'bram'$"):
        VectorReplay(words=2, times=2, shape=unsigned(2), style="bram")
    with pytest.raises(ValueError, match=r"^words must be a positive integer, not 0$"):
        VectorReplay(words=0, times=1, shape=unsigned(2))
    with pytest.raises(TypeError, match=r"^times must be a positive integer, not 1.5$"):
        VectorReplay(words=1, times=1.5, shape=unsigned(2))


def test_writing_switches_halves_without_a_bubble(rng):
    """With one copy per vector and no stalls a word goes in every cycle: the input's ready
    (a register) already knows the half it switches to is free."""
    words, count = 2, 24
    dut = VectorReplay(words=words, times=1, shape=data.ArrayLayout(unsigned(4), 1))
    vectors = rng.integers(0, 16, (count, words))
    rtl, cycles = run_stream(dut, [[v] for v in vectors.ravel()], count * words, width=1)
    assert [w[0] for w in rtl] == [int(v) for v in vectors.ravel()]
    assert cycles <= count * words + 8


@pytest.mark.parametrize("words, times, slices, stall", [
    (1, 1, 2, 0.0), (1, 3, 3, 0.3), (4, 2, 2, 0.4), (3, 5, 4, 0.2), (2, 1, 6, 0.3),
    (5, 3, 3, 0.0), (9, 16, 9, 0.3)])
@pytest.mark.parametrize("style, lut_ram", [(None, False), ("block", False), ("logic", False),
                                            (None, True)])
def test_sliced_input_is_gathered_into_each_word(words, times, slices, stall, style, lut_ram,
                                                 rng):
    """``slices`` narrow words make one word (slice 0 the lowest elements), replayed as a
    whole: the same stream a width converter's gather would give, under stalls on both
    sides, for vectors of one word to many and every buffer style."""
    lanes = 2
    dut = VectorReplay(words=words, times=times, slices=slices, style=style, lut_ram=lut_ram,
                       shape=data.ArrayLayout(unsigned(3), lanes * slices))
    assert dut.input_layout == data.ArrayLayout(unsigned(3), lanes)
    vectors = rng.integers(0, 8, (4, words, lanes * slices))
    rtl, _ = run_stream(dut, vectors.reshape(-1, lanes).tolist(), 4 * words * times,
                        width=lanes * slices, rng=rng, stall_in=stall, stall_out=stall)
    ref = [list(map(int, word)) for vector in vectors for _ in range(times) for word in vector]
    assert rtl == ref


def test_sliced_replay_keeps_its_rate(rng):
    """Gathering costs no cycle: without stalls ``slices`` input words per word go in back to
    back and the output side replays at one word per cycle."""
    words, times, slices, count = 4, 4, 4, 6
    dut = VectorReplay(words=words, times=times, slices=slices,
                       shape=data.ArrayLayout(unsigned(4), slices))
    vectors = rng.integers(0, 16, (count, words * slices))
    rtl, cycles = run_stream(dut, [[v] for v in vectors.ravel()], count * words * times,
                             width=slices)
    assert rtl == [list(map(int, vector[w * slices:(w + 1) * slices]))
                   for vector in vectors for _ in range(times) for w in range(words)]
    assert cycles <= count * dut.cycles_per_frame + words * slices + 6


def test_sliced_replay_errors():
    with pytest.raises(ValueError, match=r"^slices must divide the elements of an ArrayLayout "
                                         r"word \(shape ArrayLayout\(unsigned\(2\), 6\)\), "
                                         r"not 4$"):
        VectorReplay(words=2, times=2, slices=4, shape=data.ArrayLayout(unsigned(2), 6))
    with pytest.raises(ValueError, match=r"^slices must divide the elements of an ArrayLayout "
                                         r"word \(shape unsigned\(8\)\), not 2$"):
        VectorReplay(words=2, times=2, slices=2, shape=unsigned(8))
    with pytest.raises(ValueError, match=r"^slices must be a positive integer, not 0$"):
        VectorReplay(words=2, times=2, slices=0, shape=unsigned(8))
