"""``wrpn-rtl bench sim``: how fast the simulators run the default network's design.

The default network's design (the one ``sim`` builds: folded for the UP5K) runs test images on
Icarus and on Verilator in the HDL stream harness, every output checked against the golden
model. In the same run, the naive baseline: the cocotb bench as it was before the harness,
driving the design's ports from Python every cycle (:mod:`wrpn_rtl.sim.python_bench`, built
as cocotb's runner builds by default). Reported per simulator and driver: simulated cycles,
build and run seconds, cycles per second, and the ratio to the baseline. Ratios within one run mean something on a shared machine; absolute figures vary.
On a machine with several cores, the harness also runs with the images split over one
simulator process per core (``jobs``: cycles per second are every process's cycles over the
longest process's seconds).
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
        ``{"design": generate summary, "rows": [{"simulator", "driver", "jobs", "images",
        "simulated_cycles", "build_seconds", "run_seconds", "cycles_per_second",
        "mismatches", "speedup"}], "failures": [str]}`` (``driver``: "harness" or "python";
        ``jobs``: simulator processes; ``speedup``: cycles per second over the Python
        driver's).
    """
    from wrpn_rtl.job.design import generate
    from wrpn_rtl.job.network import prepare_network, sample_images
    from wrpn_rtl.job.simulate import simulate
    from wrpn_rtl.toolchain import usable_cores
    out_dir = Path(out_dir)
    cores = usable_cores()
    prepared = prepare_network(None)
    accelerator, generated = generate(prepared, out_dir / "sim_design", target="ice40-up5k",
                                      progress=progress)
    rows, failures = [], []
    for simulator, (harness_images, baseline_images) in IMAGES[quick].items():
        measured = {}
        runs = [("python", baseline_images, 1), ("harness", harness_images, 1)]
        if cores > 1:
            runs.append(("harness", harness_images, cores))
        for driver, count, jobs in runs:
            images, labels = sample_images(prepared.network, count)
            folder = f"{simulator}_{driver}" + (f"_{jobs}" if jobs > 1 else "")
            try:
                result = simulate(accelerator, generated["verilog"], images=images,
                                  labels=labels, simulator=simulator, progress=progress,
                                  work_dir=out_dir / "sim_design" / folder, driver=driver,
                                  jobs=jobs)
            except StepError as error:
                failures.append(f"{simulator}, {driver} driver, {jobs} processes: {error}")
                continue
            measured.setdefault(driver, result["cycles_per_second"])
            rows.append({"simulator": simulator, "driver": driver, "jobs": jobs,
                         "images": count,
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
        if row.get("jobs", 1) > 1:
            driver += f", {row['jobs']} processes"
        lines.append(f"| {row['simulator']} | {driver} | {row['images']} | "
                     f"{row['simulated_cycles']} | {row['build_seconds']:.1f} | "
                     f"{row['run_seconds']:.2f} | {row['cycles_per_second']} | "
                     f"{row.get('speedup', '-')} | {row['mismatches']} |")
    for failure in report["failures"]:
        lines.append(f"| failed | {failure} | | | | | | | |")
    return "\n".join(lines) + "\n"
