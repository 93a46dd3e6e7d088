"""``wrpn-rtl bench sim``: how fast the simulators run the default network's design.

The default network's design (the one ``sim`` builds: folded for the UP5K) runs test images on
Icarus and on Verilator in the HDL stream harness, every output checked against the golden
model. In the same run, the naive baseline: the cocotb bench as it was before the harness,
driving the design's ports from Python every cycle (:mod:`wrpn_rtl.sim.python_bench`, built
as cocotb's runner builds by default). Reported per simulator and driver: simulated cycles,
build and run seconds, cycles per second, and the ratio to the baseline. Ratios within one run mean something on a shared machine; absolute figures vary.
"""
from pathlib import Path

from wrpn_rtl.job.common import StepError, quiet, write_report

__all__ = ["run_sim_bench", "IMAGES"]

#: Images per run: (harness, baseline) per simulator, full and quick; enough that the run, not
#: the simulator's start-up, dominates the measured seconds.
IMAGES = {False: {"verilator": (360, 40), "icarus": (60, 10)},
          True: {"verilator": (40, 5), "icarus": (5, 2)}}


def run_sim_bench(out_dir, *, quick=False, progress=quiet):
    """Simulate the default network's design on both simulators, harness against baseline.

    Returns
    -------
    dict
        ``{"design": generate summary, "rows": [{"simulator", "driver", "images",
        "simulated_cycles", "build_seconds", "run_seconds", "cycles_per_second",
        "mismatches", "speedup"}], "failures": [str]}`` (``driver``: "harness" or "python";
        ``speedup``: cycles per second over the Python driver's).
    """
    from wrpn_rtl.job.design import generate
    from wrpn_rtl.job.network import prepare_network, sample_images
    from wrpn_rtl.job.simulate import simulate
    out_dir = Path(out_dir)
    prepared = prepare_network(None)
    accelerator, generated = generate(prepared, out_dir / "sim_design", target="ice40-up5k",
                                      progress=progress)
    rows, failures = [], []
    for simulator, (harness_images, baseline_images) in IMAGES[quick].items():
        measured = {}
        for driver, count in (("python", baseline_images), ("harness", harness_images)):
            images, labels = sample_images(prepared.network, count)
            try:
                result = simulate(accelerator, generated["verilog"], images=images,
                                  labels=labels, simulator=simulator, progress=progress,
                                  work_dir=out_dir / "sim_design" / f"{simulator}_{driver}",
                                  driver=driver)
            except StepError as error:
                failures.append(f"{simulator}, {driver} driver: {error}")
                continue
            measured[driver] = result["cycles_per_second"]
            rows.append({"simulator": simulator, "driver": driver, "images": count,
                         **{key: result[key] for key in (
                             "simulated_cycles", "build_seconds", "run_seconds",
                             "cycles_per_second", "mismatches")}})
            if result["mismatches"]:
                failures.append(f"{simulator}, {driver} driver: {result['mismatches']} outputs "
                                f"differ from the golden model")
        for row in rows:
            base = measured.get("python")
            if row["simulator"] == simulator and base and row["cycles_per_second"]:
                row["speedup"] = round(row["cycles_per_second"] / base, 1)
    report = {"design": generated, "rows": rows, "failures": failures}
    write_report(out_dir, "sim", report, sim_markdown(report))
    return report


def sim_markdown(report):
    """The bench's table."""
    design = report["design"]
    lines = ["# Simulation speed, default network", "",
             f"Design: the UP5K design ({design['cycles_per_image']} cycles per image), every "
             f"output checked against the golden model.", "",
             "| simulator | driver | images | cycles simulated | build s | run s | cycles/s | "
             "x Python driver | mismatches |", "|---|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        driver = ("HDL harness" if row["driver"] == "harness"
                  else "Python per cycle (baseline)")
        lines.append(f"| {row['simulator']} | {driver} | {row['images']} | "
                     f"{row['simulated_cycles']} | {row['build_seconds']:.1f} | "
                     f"{row['run_seconds']:.2f} | {row['cycles_per_second']} | "
                     f"{row.get('speedup', '-')} | {row['mismatches']} |")
    for failure in report["failures"]:
        lines.append(f"| failed | {failure} | | | | | | | |")
    return "\n".join(lines) + "\n"
