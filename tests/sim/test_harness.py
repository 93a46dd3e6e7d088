"""The HDL stream harness and its cocotb bench: records, paths, the simulation benchmark."""
import json

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from wrpn_rtl.hardware.memories import memory_attrs
from wrpn_rtl.hardware.mvu import MatrixVectorUnit
from wrpn_rtl.compiler.export import write_verilog
from wrpn_rtl.sim.runner import run_stream_bench, split_sizes
from wrpn_rtl.sim.stream_bench import RecordError, read_record
from wrpn_rtl.toolchain import usable_cores
from tests.helpers import dense_layer, dense_reference as reference


def test_a_record_with_unknown_bits_or_no_end_is_an_error(tmp_path):
    record = tmp_path / "record.txt"
    record.write_text("i 5\no 9 1f\no 12 2f\nend 5 12 0\n")
    observed = read_record(record, [(4, False), (1, True)])
    assert observed["outputs"] == [[15, -1], [15, 0]]
    assert observed["output_cycles"] == [4, 7] and observed["cycles"] == 8
    assert observed["simulated_cycles"] == 13 and observed["image_starts"] == [0]
    record.write_text("o 9 1x\nend 5 12 0\n")
    with pytest.raises(RecordError, match=r"output word 0 \(cycle 9\) has unknown bits: 1x"):
        read_record(record, [(5, False)])
    record.write_text("o 9 1f\n")
    with pytest.raises(RecordError, match="stopped before writing its end line"):
        read_record(record, [(5, False)])


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_a_build_folder_with_a_space(simulator, tmp_path, rng):
    """Verilator's generated makefile cannot build under a path with a space: the bench
    builds elsewhere and runs there all the same."""
    layer = dense_layer(rng, in_features=6, out_features=4, weight_bits=2, in_bits=3,
                        out_bits=2)
    mvu = MatrixVectorUnit(layer, pe=2, simd=3)
    folder = tmp_path / "my designs" / "mvu one"
    verilog = write_verilog(mvu, folder / "mvu.v", name="mvu")
    vectors = rng.integers(0, 8, (5, 6))
    expected = reference(layer, vectors).reshape(-1, 2)
    result = run_stream_bench(verilog, toplevel="mvu", inputs=vectors.reshape(-1, 3),
                              expected=expected, in_width=3, out_lanes=2, out_width=2,
                              simulator=simulator, build_dir=folder / "bench", stall_in=0.3,
                              stall_out=0.3, seed=3)
    np.testing.assert_array_equal(np.array(result.outputs), expected)


def test_stall_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"stall_in must be a probability in \[0, 1\) or one "
                                         r"of alternate, bursts, not 'often'"):
        run_stream_bench(tmp_path / "x.v", toplevel="x", inputs=[[0]], expected=[[0]],
                         in_width=1, out_lanes=1, out_width=1, simulator="icarus",
                         build_dir=tmp_path, stall_in="often")


@pytest.mark.slow
def test_sim_bench_measures_both_simulators_against_the_python_driver(tmp_path):
    from wrpn_rtl.sim.bench import run_sim_bench
    report = run_sim_bench(tmp_path, quick=True)
    assert report["failures"] == []
    rows = {(row["simulator"], row["driver"], row["jobs"]): row for row in report["rows"]}
    cores = usable_cores()
    assert set(rows) == {(s, d, j) for s in ("icarus", "verilator")
                         for d, j in [("harness", 1), ("python", 1)]
                         + ([("harness", cores)] if cores > 1 else [])}
    for row in rows.values():
        assert row["mismatches"] == 0 and row["cycles_per_second"] > 0
        assert row["simulated_cycles"] >= row["images"] * report["design"]["cycles_per_image"]
    assert rows["verilator", "python", 1]["speedup"] == 1.0
    table = (tmp_path / "sim.md").read_text()
    assert "| verilator | HDL harness |" in table
    assert cores == 1 or f"| icarus | HDL harness, {cores} processes |" in table
    assert json.loads((tmp_path / "sim.json").read_text())["rows"] == report["rows"]


class _SameCycleEcho(wiring.Component):
    """A word per cycle written to a memory and read back from the same address in the same
    cycle, its answer used: marked ``no_rw_check`` (``broken=True``), it breaks the promise."""

    def __init__(self, *, broken):
        self._broken = broken
        super().__init__({"input": In(stream.Signature(4)), "output": Out(stream.Signature(4))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.store = store = Memory(
            shape=4, depth=16, init=[],
            attrs=memory_attrs(16, writable=True, collision_reads_unused=self._broken))
        write, read = store.write_port(), store.read_port()
        address = Signal(4)
        valid = Signal()
        m.d.comb += [self.input.ready.eq(1), write.addr.eq(address), read.addr.eq(address),
                     write.data.eq(self.input.payload), write.en.eq(self.input.valid),
                     self.output.payload.eq(read.data), self.output.valid.eq(valid)]
        m.d.sync += valid.eq(self.input.valid)
        with m.If(self.input.valid):
            m.d.sync += address.eq(address + 1)
        return m


@pytest.mark.parametrize("broken", [False, True])
def test_icarus_makes_a_used_collision_read_unknown(broken, tmp_path):
    """A memory marked ``no_rw_check`` whose collision reads are used fails its Icarus run
    with the unknown output word named; unmarked, the same design reads the old words."""
    verilog = write_verilog(_SameCycleEcho(broken=broken), tmp_path / "echo.v", name="echo")
    expected = [[0]] * 5           # the memory's initial words: read before each write
    run = lambda: run_stream_bench(verilog, toplevel="echo", inputs=[[i + 1] for i in range(5)],
                                   expected=expected, in_width=4, out_lanes=1, out_width=4,
                                   simulator="icarus", build_dir=tmp_path / "bench")
    if broken:
        with pytest.raises(Exception, match=r"output word 0 \(cycle \d+\) has unknown bits: x"):
            run()
    else:
        np.testing.assert_array_equal(np.array(run().outputs), expected)


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_images_split_over_processes_side_by_side(simulator, tmp_path, rng):
    """``jobs``: runs of consecutive vectors, each from its own reset in its own folder, under
    random stalls; the joined result holds every output in order and each run's own."""
    layer = dense_layer(rng, in_features=6, out_features=4, weight_bits=2, in_bits=3,
                        out_bits=2)
    verilog = write_verilog(MatrixVectorUnit(layer, pe=2, simd=3), tmp_path / "mvu.v",
                            name="mvu")
    vectors = rng.integers(0, 8, (5, 6))
    expected = reference(layer, vectors).reshape(-1, 2)       # two words per vector
    bench = dict(toplevel="mvu", inputs=vectors.reshape(-1, 3), expected=expected,
                 in_width=3, out_lanes=2, out_width=2, simulator=simulator,
                 build_dir=tmp_path / "bench", stall_in=0.3, stall_out=0.3, seed=5,
                 words_per_image=2)
    single = run_stream_bench(verilog, **bench)               # leaves a single run's files
    assert single.parts is None and (tmp_path / "bench" / "record.txt").exists()
    result = run_stream_bench(verilog, jobs=3, **bench)
    np.testing.assert_array_equal(np.array(result.outputs), expected)
    assert [len(part.outputs) for part in result.parts] == [4, 4, 2]   # vectors 2, 2, 1
    assert [len(part.image_starts) for part in result.parts] == [2, 2, 1]
    assert result.simulated_cycles == sum(part.simulated_cycles for part in result.parts)
    assert result.run_seconds == max(part.run_seconds for part in result.parts)
    for index in range(3):
        record = (tmp_path / "bench" / f"part{index}" / "record.txt").read_text()
        assert record.count("\no ") + record.startswith("o ") == len(result.parts[index].outputs)
    assert not (tmp_path / "bench" / "record.txt").exists()   # no single run's file beside
    again = run_stream_bench(verilog, jobs=1, **bench)         # and no parts after a single run
    assert again.outputs == single.outputs and not list((tmp_path / "bench").glob("part*"))


def test_split_runs_are_checked(tmp_path):
    bench = dict(toplevel="x", inputs=[[0]] * 4, expected=[[0]] * 4, in_width=1, out_lanes=1,
                 out_width=1, simulator="icarus", build_dir=tmp_path)
    with pytest.raises(ValueError, match=r"jobs must be a positive integer, not 0"):
        run_stream_bench(tmp_path / "x.v", jobs=0, **bench)
    with pytest.raises(ValueError, match=r"jobs must be 1 with the Python driver or a wave "
                                         r"\(one process records it\), not 2"):
        run_stream_bench(tmp_path / "x.v", jobs=2, wave=(tmp_path / "w.fst", 0, 9), **bench)
    with pytest.raises(ValueError, match=r"jobs must be 1 unless the 4 input words are whole "
                                         r"images of 3 words"):
        run_stream_bench(tmp_path / "x.v", jobs=2, words_per_image=3, **bench)
    assert split_sizes(5, 3) == [2, 2, 1] and split_sizes(2, 4) == [1, 1]
    assert split_sizes(7, 1) == [7]
