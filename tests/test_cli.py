import json
import subprocess
import sys

import pytest

from wrpn_rtl import __version__
from wrpn_rtl.cli import main


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"wrpn-rtl {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("demo", "train", "golden"):
        assert command in out


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "wrpn_rtl", "--version"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"wrpn-rtl {__version__}"


def test_train_then_golden_round_trip(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "--epochs", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (tmp_path / "model.npz").is_file()
    assert 0.3 < summary["test_accuracy"] <= 1.0   # 3 epochs: far above chance (0.1)
    assert main(["golden", "--model", str(tmp_path / "model.npz"), "--json"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert checked["accuracy"] == pytest.approx(summary["test_accuracy"])
    assert checked["class_mismatches"] == 0
    assert set(checked["mismatches_by_layer"].values()) == {0}


def test_bad_inputs_are_reported(tmp_path, capsys):
    assert main(["golden", "--model", str(tmp_path / "missing.npz")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path), "--wbits", "0"]) == 1
    assert "weight_bits must be an integer in [1, 16], not 0" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path), "--width", "-1"]) == 1
    assert "--width must be > 0, not -1.0" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_demo_runs_the_rtl_bit_exact(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--epochs", "2", "--images", "3",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rtl_images"] == 3 and summary["rtl_mismatches"] == 0
    assert summary["class_mismatches"] == 0
    assert (tmp_path / "digits_cnn.v").read_text().count("module ") > 5
    assert summary["rtl_cycles_per_image"] <= 1.05 * summary["expected_cycles_per_image"] + 200
    assert main(["demo", "--out", str(tmp_path), "--images", "0"]) == 1
    assert "--images must be >= 1, not 0" in capsys.readouterr().err
