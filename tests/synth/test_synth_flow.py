# amaranth: UnusedElaboratable=no
"""End-to-end synthesis smoke tests on a small representative design (the full sweep is
``wrpn-rtl bench mvu``, not a test)."""
import json

import numpy as np
import pytest

from wrpn_rtl.compiler.export import write_verilog
from wrpn_rtl.hardware.mvu import MatrixVectorUnit
from wrpn_rtl.synth.bench import run_mvu_bench
from wrpn_rtl.synth.flow import synthesize
from wrpn_rtl.synth.harness import SerialHarness

from tests.helpers import dense_layer


@pytest.fixture(scope="module")
def small_mvu_verilog(tmp_path_factory):
    layer = dense_layer(np.random.default_rng(7), in_features=16, out_features=4,
                        weight_bits=2, in_bits=2, out_bits=2)
    folder = tmp_path_factory.mktemp("synth")
    return write_verilog(SerialHarness(MatrixVectorUnit(layer, pe=2, simd=8)),
                         folder / "top.v", name="top"), folder


@pytest.mark.slow
@pytest.mark.parametrize("target", ["ice40-up5k", "asic"])
def test_synthesis_reports_real_figures(small_mvu_verilog, target):
    verilog, folder = small_mvu_verilog
    result = synthesize(verilog, target, folder / target)
    assert 0 < result.core_logic < result.logic_cells
    assert result.flip_flops > 0
    if target == "asic":
        assert result.transistors > 4 * result.logic_cells
    else:
        assert 20 < result.fmax_mhz < 500
        assert result.utilization["ICESTORM_LC"]["available"] == 5280


def test_unknown_target_is_rejected(small_mvu_verilog, tmp_path):
    verilog, _ = small_mvu_verilog
    with pytest.raises(ValueError, match=r"^target must be one of ice40-up5k, ice40-hx8k, "
                                         r"ecp5-25k, ecp5-85k, asic, not 'xc7'$"):
        synthesize(verilog, "xc7", tmp_path)


def test_dsp_pairs_are_mapped_to_hard_multipliers(tmp_path):
    """Yosys puts each DSP pair (and each requantizer multiplier meant for one) in an
    SB_MAC16 when asked (the flow asks for a design with DSP blocks), and a design without
    them, or not asked, in none."""
    from wrpn_rtl.synth.flow import module_statistics
    layer = dense_layer(np.random.default_rng(7), in_features=12, out_features=4,
                        weight_bits=4, in_bits=4, out_bits=2)
    for pairs, dsp, expected in [(3, True, 6), (3, False, 0), (0, True, 0)]:
        mvu = MatrixVectorUnit(layer, pe=2, simd=6, dsp_pairs=pairs)
        verilog = write_verilog(mvu, tmp_path / f"mvu{pairs}{dsp}.v", name="mvu")
        modules = module_statistics(verilog, "ice40-up5k", tmp_path / f"run{pairs}{dsp}",
                                    top="mvu", dsp=dsp)
        assert sum(m["dsps"] for m in modules.values()) == expected
        assert mvu.estimate()["dsp_blocks"] == 2 * pairs
    # the affine requantizer's multipliers, one per PE
    from tests.rtl.test_mvu import dsp_requantized
    _, mvu = dsp_requantized(np.random.default_rng(3), pe=2, simd=6, in_features=12,
                             out_features=4, weight_bits=2, in_bits=4, out_bits=4)
    verilog = write_verilog(mvu, tmp_path / "requantizer.v", name="mvu")
    modules = module_statistics(verilog, "ice40-up5k", tmp_path / "requantizer", top="mvu",
                                dsp=True)
    assert sum(m["dsps"] for m in modules.values()) == mvu.dsp_blocks == 2


@pytest.mark.slow
def test_bench_writes_json_and_markdown(tmp_path):
    report = run_mvu_bench(tmp_path, precisions=[(2, 2)], pes=(1,),
                           fpga_targets=("ice40-up5k",), progress=lambda text: None)
    saved = json.loads((tmp_path / "mvu.json").read_text())
    assert saved == json.loads(json.dumps(report))
    row = saved["rows"][0]
    ice40 = row["targets"]["ice40-up5k"]
    assert ice40["mvu"]["core_logic"] > 0 and ice40["naive"]["core_logic"] > 0
    assert ice40["fabric_limit_mhz"] > ice40["naive"]["fmax_mhz"]
    assert ice40["fmax_vs_fabric"] == pytest.approx(
        ice40["mvu"]["fmax_mhz"] / ice40["fabric_limit_mhz"], abs=1e-3)
    markdown = (tmp_path / "mvu.md").read_text()
    assert "| 2/2 | 1 |" in markdown and "## ice40-up5k" in markdown


@pytest.mark.slow
def test_window_bench_reports_buffer_cycles_and_synthesis(tmp_path):
    from wrpn_rtl.synth.bench_layers import run_layer_bench
    report = run_layer_bench("window", tmp_path, quick=True, progress=lambda text: None)
    row = report["rows"][0]
    assert row["buffer_min_bits"] < row["buffer_bits"]
    assert 0.99 <= row["cycles_vs_expected"] <= 1.05
    assert row["targets"]["ice40-up5k"]["core_logic"] > 0
    assert "| digits conv1 8x8x1 k3 p1 |" in (tmp_path / "window.md").read_text()
    with pytest.raises(ValueError, match=r"^kind must be window or conv, not 'mvu'$"):
        run_layer_bench("mvu", tmp_path)
