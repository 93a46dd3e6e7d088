"""Design folders: a folder holds one whole design with its own reports, `--design DIR` reuses
it as it is, and an interrupted `generate`, `sim` or `synth` never leaves a mix."""
import contextlib
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import pytest

from wrpn_rtl import golden as g
from wrpn_rtl.cli import main
from wrpn_rtl.job.design import design_problems, manifest_digest
from tests.helpers import model_file

SPEC = g.NetworkSpec((4, 4, 1), 4, [g.Conv(3, 3, padding=1, out_bits=2), g.MaxPool(2),
                                     g.Dense(3, out_bits=None, batch_norm=False)])


@pytest.fixture
def model(tmp_path, rng):
    return model_file(tmp_path / "m.npz", SPEC, rng)


def run(capsys, argv):
    code = main(argv + ["--json"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else None), captured.err


def test_sim_on_a_design_folder_as_it_is(model, tmp_path, capsys):
    design = tmp_path / "design"
    assert run(capsys, ["generate", "--model", model, "--out", str(design),
                        "--target-cycles", "200"])[0] == 0
    before = {p.name: p.read_bytes() for p in design.iterdir() if p.is_file()}
    code, summary, err = run(capsys, ["sim", "--design", str(design), "--images", "3"])
    assert code == 0, err
    assert summary["mismatches"] == 0 and summary["generate"]["cycles_per_image"] <= 200
    # the design is untouched; its new report names it
    assert all((design / name).read_bytes() == data for name, data in before.items())
    sim = json.loads((design / "sim.json").read_text())
    assert sim["design"]["manifest_sha256"] == manifest_digest(design)
    assert sim["simulated_cycles"] > 0 and sim["cycles_per_second"] > 0
    assert design_problems(design) == []


@pytest.mark.parametrize("extra, message", [
    (["--target-cycles", "300"], "--target-cycles cannot be given with it"),
    (["--out", "elsewhere"], "--out cannot be given with it"),
])
def test_design_refuses_flags_that_make_another_design(extra, message, model, tmp_path,
                                                       capsys):
    design = tmp_path / "design"
    main(["generate", "--model", model, "--out", str(design)])
    capsys.readouterr()
    assert main(["sim", "--design", str(design)] + extra) == 1
    assert message in capsys.readouterr().err


def test_design_folder_problems_are_named(model, tmp_path, capsys):
    design = tmp_path / "design"
    assert main(["sim", "--design", str(tmp_path / "none")]) == 1
    assert "must be a folder holding a design" in capsys.readouterr().err
    design.mkdir()
    assert main(["synth", "--design", str(design)]) == 1
    assert "no manifest.json (wrpn-rtl generate --out DIR writes one)" in capsys.readouterr().err
    main(["generate", "--model", model, "--out", str(design)])
    capsys.readouterr()
    with open(design / "wrpn_accel.v", "a") as handle:
        handle.write("// edited\n")
    assert main(["sim", "--design", str(design)]) == 1
    assert "wrpn_accel.v differs from the file the manifest records" in \
        capsys.readouterr().err


def test_reports_of_another_design_are_removed(model, tmp_path, capsys):
    design = tmp_path / "design"
    argv = ["sim", "--model", model, "--out", str(design), "--images", "2"]
    assert main(argv + ["--target-cycles", "200"]) == 0
    old = manifest_digest(design)
    # the same design again keeps its reports; another design removes them
    assert main(["generate", "--model", model, "--out", str(design),
                 "--target-cycles", "200"]) == 0
    assert manifest_digest(design) == old and (design / "sim.json").exists()
    assert main(["generate", "--model", model, "--out", str(design),
                 "--target-cycles", "2000"]) == 0
    assert manifest_digest(design) != old and not (design / "sim.json").exists()
    # a report of another design put back beside it is removed when the folder is reused
    (design / "synth.md").write_text(f"| old |\n\n(design: manifest.json sha256 {old})\n")
    (design / "summary.json").write_text(json.dumps({"design": {"manifest_sha256": old}}))
    assert design_problems(design) == ["synth.md describes another design",
                                       "summary.json describes another design"]
    capsys.readouterr()
    assert main(["sim", "--design", str(design), "--images", "1"]) == 0
    assert not (design / "synth.md").exists() and not (design / "summary.json").exists()
    assert design_problems(design) == []


def _default_sigint():
    """In the child: Ctrl-C as a terminal delivers it, even when the tests run in a shell
    that ignores SIGINT for background jobs (a child inherits the ignoring)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupted(argv, cwd, ready):
    """Run ``wrpn-rtl ARGV`` in its own process group and press Ctrl-C (SIGINT to the group)
    once ``ready()`` holds; its exit status (None: it finished first)."""
    script = Path(sys.executable).with_name("wrpn-rtl")
    # PYTHONFAULTHANDLER: a run that outlives the interrupt is stopped with SIGABRT, which
    # makes it print every thread's stack (the one such hang seen, in a CI run, said nothing)
    process = subprocess.Popen([str(script), *argv], cwd=cwd, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               preexec_fn=_default_sigint,
                               env=dict(os.environ, PYTHONFAULTHANDLER="1"))
    deadline = time.monotonic() + 120
    while process.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.02)
    if process.poll() is not None:
        return None
    os.killpg(process.pid, signal.SIGINT)
    # generous: an interrupt that lands while Yosys runs in-process (Amaranth's Verilog
    # export, WebAssembly) is handled when that call returns, over a minute on a loaded
    # machine with a cold WebAssembly cache (the full suite's run on 7a0870e)
    try:
        process.wait(240)
    except subprocess.TimeoutExpired:
        group = subprocess.run(["ps", "-o", "pid,stat,etime,args", "-g", str(process.pid)],
                               capture_output=True, text=True).stdout
        process.send_signal(signal.SIGABRT)
        _, err = process.communicate(timeout=30)
        with contextlib.suppress(ProcessLookupError):    # its tools, if any are left
            os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"wrpn-rtl {argv[0]} ran on for 240 s after Ctrl-C; its processes:\n"
                    f"{group}\nits stderr, ending with its stacks:\n{err.decode()[-6000:]}")
    return process.returncode


def _assert_whole(design, digests):
    assert design_problems(design) == []
    assert manifest_digest(design) in digests
    assert not list(design.glob(".*.partial"))


@pytest.mark.slow
@pytest.mark.parametrize("step", ["generate", "sim", "synth"])
def test_ctrl_c_leaves_the_old_design_or_the_new_one(step, model, tmp_path, capsys):
    """An older design with its reports, then ``step`` of another design interrupted at
    several moments: every time the folder holds one whole design and only its reports."""
    design = tmp_path / "design"
    new_argv = ["--model", model, "--target-cycles", "2000"]
    assert main(["sim", "--model", model, "--out", str(design), "--images", "2",
                 "--target-cycles", "200"]) == 0
    old = manifest_digest(design)
    assert main(["generate", "--out", str(tmp_path / "new")] + new_argv) == 0
    digests = {old, manifest_digest(tmp_path / "new")}
    capsys.readouterr()
    if step == "generate":
        # interrupt at fractions of a whole run's time, measured here (fixed delays landed
        # before Python's handler or after the end on a machine faster or slower than usual)
        began = time.monotonic()
        assert _interrupted(["generate", "--out", str(tmp_path / "timed")] + new_argv,
                            tmp_path, lambda: False) is None
        whole = time.monotonic() - began
        outcomes = []
        for delay in (whole * share for share in (0.5, 0.6, 0.7, 0.8, 0.9)):
            began = time.monotonic()
            outcomes.append(_interrupted(["generate", "--out", str(design)] + new_argv,
                                         tmp_path, lambda: time.monotonic() - began > delay))
            _assert_whole(design, digests)
        assert 130 in outcomes      # at least one interrupt landed during a run
        return
    work = design / ("sim_icarus" if step == "sim" else "synth_ice40-up5k")
    # sim: two simulator processes, each run in a folder of its own
    marker = work / ("part0/bench.json" if step == "sim" else "top.v")
    argv = ([step, "--out", str(design)] + new_argv
            + (["--images", "2000", "--jobs", "2"] if step == "sim"
               else ["--target", "ice40-up5k"]))
    for stale in work.glob("*"):
        stale.unlink() if stale.is_file() else None
    marker.unlink(missing_ok=True)
    code = _interrupted(argv, tmp_path, marker.exists)
    assert code == 130
    _assert_whole(design, digests)
    assert manifest_digest(design) != old            # the new design was written first...
    assert not (design / "sim.json").exists()        # ...without the old design's reports
    assert not (design / "synth.json").exists()
