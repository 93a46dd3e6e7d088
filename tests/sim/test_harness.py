"""The HDL stream harness and its cocotb bench: records, paths, the simulation benchmark."""
import json

import numpy as np
import pytest

from wrpn_rtl.hardware.mvu import MatrixVectorUnit
from wrpn_rtl.compiler.export import write_verilog
from wrpn_rtl.sim.runner import run_stream_bench
from wrpn_rtl.sim.stream_bench import RecordError, read_record
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
    rows = {(row["simulator"], row["driver"]): row for row in report["rows"]}
    assert set(rows) == {(s, d) for s in ("icarus", "verilator") for d in ("harness", "python")}
    for row in rows.values():
        assert row["mismatches"] == 0 and row["cycles_per_second"] > 0
        assert row["simulated_cycles"] >= row["images"] * report["design"]["cycles_per_image"]
    assert rows["verilator", "python"]["speedup"] == 1.0
    assert "| verilator | HDL harness |" in (tmp_path / "sim.md").read_text()
    assert json.loads((tmp_path / "sim.json").read_text())["rows"] == report["rows"]
