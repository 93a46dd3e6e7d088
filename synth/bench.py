"""``wrpn-rtl bench mvu``: the MVU against the naive dot product and the fabric limit.

For each (weight bits, activation bits) and PE, at SIMD = 16, in one run:

* the MVU of a dense layer with ``in_features = 4 * SIMD`` (SF = 4, so the weights change every
  cycle and cannot be folded into constants) and ``out_features = PE`` (NF = 1), raw
  accumulator output;
* the naive single-cycle ``sum(a[i] * w[i])`` of the same shape (PE x SIMD live multiplies);
* a registered adder of the MVU's accumulator width: the fabric limit for Fmax;

each inside the same serial harness, synthesized for iCE40 UP5K, ECP5-25k and the generic CMOS
gate library. Ratios are taken within this one run, so machine noise cancels.
"""
from concurrent.futures import ProcessPoolExecutor
import os
from pathlib import Path

import numpy as np

from wrpn_rtl.job.common import write_report
from wrpn_rtl.synth.flow import DEFAULT_TARGETS

__all__ = ["PRECISIONS", "run_mvu_bench", "mvu_markdown", "build_core", "conv_bench_layers"]

PRECISIONS = [(1, 1), (1, 2), (2, 2), (2, 4), (4, 4), (8, 8)]
SIMD = 16
PES = (1, 4)
FMAX_GOAL = 0.85        # of the registered adder's Fmax on the same fabric
LOGIC_GOAL = 2.0        # x the partial-product bound


def bench_layer(weight_bits, act_bits, pe, *, seed=0):
    """The golden dense layer benchmarked: ``4 * SIMD`` inputs, ``pe`` outputs, raw logits."""
    from wrpn_rtl.golden import Dense, NetworkSpec, quantize_network, random_parameters
    spec = NetworkSpec((1, 1, 4 * SIMD), act_bits,
                       [Dense(pe, weight_bits=weight_bits, out_bits=None, batch_norm=False)])
    params = random_parameters(spec, np.random.default_rng(seed))
    params[0].bias[:] = 0.0
    return quantize_network(spec, params).layers[0]


def build_core(kind, params):
    """The component a benchmark job synthesizes, rebuilt from picklable ``params``."""
    from wrpn_rtl.hardware.conv import ConvLayer
    from wrpn_rtl.hardware.mvu import MatrixVectorUnit
    from wrpn_rtl.hardware.window import SlidingWindow
    from wrpn_rtl.synth.harness import NaiveDotProduct, RegisteredAdder
    if kind == "mvu":
        return MatrixVectorUnit(bench_layer(params["w"], params["a"], params["pe"]),
                                pe=params["pe"], simd=SIMD)
    if kind == "naive":
        return NaiveDotProduct(a_bits=params["a"], w_bits=params["w"], simd=SIMD,
                               pe=params["pe"])
    if kind == "adder":
        return RegisteredAdder(width=params["width"])
    if kind == "window":
        return SlidingWindow(**{k: tuple(v) if isinstance(v, list) else v
                                for k, v in params.items()})
    if kind == "conv":
        layer, pool = conv_bench_layers(params)
        return ConvLayer(layer, pe=params["pe"], simd=params["simd"],
                         window_simd=params["window_simd"], pool=pool)
    raise ValueError(f"kind must be mvu, naive, adder, window or conv, not {kind!r}")


def conv_bench_layers(params):
    """Golden conv (and pool) of a conv benchmark point, with seeded random weights."""
    from wrpn_rtl.golden import Conv, MaxPool, NetworkSpec, quantize_network, random_parameters
    layers = [Conv(params["channels"], params["kernel"], stride=params["stride"],
                   padding=params["padding"], weight_bits=params["wbits"],
                   out_bits=params["out_bits"])]
    if params.get("pool"):
        layers.append(MaxPool(params["pool"]))
    spec = NetworkSpec(tuple(params["in_shape"]), params["in_bits"], layers)
    net = quantize_network(spec, random_parameters(spec, np.random.default_rng(params["seed"])))
    return net.layers[0], (net.layers[1] if params.get("pool") else None)


def _synth_job(job):
    """Build one design's Verilog and synthesize it (runs in a worker process)."""
    from wrpn_rtl.compiler.export import write_verilog
    from wrpn_rtl.synth.flow import SynthError, synthesize
    from wrpn_rtl.synth.harness import SerialHarness
    target, work = job["target"], Path(job["work"])
    core = build_core(job["kind"], job["params"])
    work.mkdir(parents=True, exist_ok=True)
    verilog = write_verilog(SerialHarness(core), work / "top.v", name="top")
    try:
        result = synthesize(verilog, target, work / target).as_dict()
        result["error"] = None
    except SynthError as error:
        result = {"target": target, "error": error.reason}
    return job["key"], result


def _run_jobs(jobs, progress, workers=None):
    results = {}
    workers = workers or max(1, min(2, os.cpu_count() or 1))
    progress(f"{len(jobs)} syntheses on {workers} worker(s)")
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for index, (key, result) in enumerate(pool.map(_synth_job, jobs), 1):
            results[key] = result
            fmax = result.get("fmax_mhz")
            what = result["error"] or (f"{result.get('core_logic')} core LUT/gates, "
                                       + (f"{fmax:.1f} MHz" if fmax else "no clock"))
            progress(f"  [{index}/{len(jobs)}] {key}: {what}")
    return results


def _jobs(precisions, pes, targets, work):
    from wrpn_rtl.hardware.mvu import MatrixVectorGeometry
    jobs, widths = [], {}
    for w, a in precisions:
        for pe in pes:
            mvu = MatrixVectorGeometry(bench_layer(w, a, pe), pe=pe, simd=SIMD)
            widths[(w, a, pe)] = mvu.accumulator_shape.width
            for kind in ("mvu", "naive"):
                for target in targets + ("asic",):
                    key = f"{kind}_w{w}a{a}_pe{pe}_{target}"
                    jobs.append({"key": key, "kind": kind, "target": target,
                                 "params": {"w": w, "a": a, "pe": pe},
                                 "work": str(work / f"{kind}_w{w}a{a}_pe{pe}")})
    for width in sorted(set(widths.values())):
        for target in targets:
            jobs.append({"key": f"adder{width}_{target}", "kind": "adder", "target": target,
                         "params": {"width": width}, "work": str(work / f"adder{width}")})
    return jobs, widths


def run_mvu_bench(out_dir, *, quick=False, progress=print, workers=None, precisions=None,
                  pes=None, fpga_targets=DEFAULT_TARGETS):
    """Run the benchmark; write ``out_dir/mvu.json`` and ``out_dir/mvu.md``; return the report.

    Parameters
    ----------
    quick : bool
        Only PE = 1 and precisions (1, 1), (2, 2), (4, 4): a smoke run of about a minute.
    precisions, pes, fpga_targets :
        Override the sets benchmarked (tests use a single point).
    """
    from wrpn_rtl.hardware.mvu import MatrixVectorGeometry
    out_dir = Path(out_dir)
    precisions = precisions or ([(1, 1), (2, 2), (4, 4)] if quick else PRECISIONS)
    pes = pes or ((1,) if quick else PES)
    fpga_targets = tuple(fpga_targets)
    work = (out_dir / "mvu_work").resolve()
    jobs, widths = _jobs(precisions, pes, fpga_targets, work)
    progress("bench mvu:")
    results = _run_jobs(jobs, progress, workers)

    rows = []
    for w, a in precisions:
        for pe in pes:
            mvu = MatrixVectorGeometry(bench_layer(w, a, pe), pe=pe, simd=SIMD)
            bound = SIMD * pe * a * max(1, w - 1)
            row = {"weight_bits": w, "act_bits": a, "pe": pe, "simd": SIMD,
                   "acc_bits": widths[(w, a, pe)], "partial_product_bound": bound,
                   "estimate": mvu.estimate(), "targets": {}}
            for target in fpga_targets + ("asic",):
                m = results[f"mvu_w{w}a{a}_pe{pe}_{target}"]
                n = results[f"naive_w{w}a{a}_pe{pe}_{target}"]
                entry = {"mvu": m, "naive": n}
                if target != "asic":
                    adder = results[f"adder{widths[(w, a, pe)]}_{target}"]
                    entry["fabric_limit_mhz"] = adder.get("fmax_mhz")
                    entry["fmax_vs_fabric"] = _ratio(m.get("fmax_mhz"), adder.get("fmax_mhz"))
                    entry["logic_vs_bound"] = _ratio(m.get("core_logic"), bound)
                    entry["macs_per_s_vs_naive"] = _ratio(m.get("fmax_mhz"), n.get("fmax_mhz"))
                    entry["meets_fmax_goal"] = (entry["fmax_vs_fabric"] or 0) >= FMAX_GOAL
                    entry["meets_logic_goal"] = (entry["logic_vs_bound"] or 1e9) <= LOGIC_GOAL
                entry["logic_vs_naive"] = _ratio(m.get("core_logic"), n.get("core_logic"))
                row["targets"][target] = entry
            rows.append(row)
    report = {"simd": SIMD, "fpga_targets": list(fpga_targets), "goals": {"fmax_vs_fabric": FMAX_GOAL, "logic_vs_bound": LOGIC_GOAL},
              "rows": rows}
    write_report(out_dir, "mvu", report, mvu_markdown(report))
    return report


def _ratio(a, b):
    return None if not a or not b else round(a / b, 3)


def _fmt(value, digits=1):
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def mvu_markdown(report):
    """People's table of :func:`run_mvu_bench`'s report."""
    lines = ["# MVU benchmark (SIMD = 16, SF = 4, NF = 1, raw accumulators)", "",
             "Core logic is the design alone (synthesized out of context): LUT4s on FPGAs, "
             "CMOS gates (NAND/NOR/NOT) on asic. Fmax is for the design inside a serial harness. "
             "`bound` is SIMD x PE x a x max(1, w-1) cells; `fabric` is the Fmax of a registered "
             "adder of the accumulator width on the same FPGA, in the same run.", ""]
    for target in report.get("fpga_targets", DEFAULT_TARGETS):
        lines += [f"## {target}", "",
                  "| w/a | PE | MVU LUT | naive LUT | MVU/naive | MVU/bound | MVU FF | BRAM | DSP (MVU/naive) "
                  "| MVU MHz | naive MHz | fabric MHz | MVU/fabric | goals (Fmax, logic) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in report["rows"]:
            e = row["targets"][target]
            m, n = e["mvu"], e["naive"]
            goals = ("yes" if e.get("meets_fmax_goal") else "no") + ", " + \
                    ("yes" if e.get("meets_logic_goal") else "no")
            lines.append(
                f"| {row['weight_bits']}/{row['act_bits']} | {row['pe']} | "
                f"{m.get('error') or m.get('core_logic')} | {n.get('error') or n.get('core_logic')} | "
                f"{_fmt(e.get('logic_vs_naive'), 2)} | {_fmt(e.get('logic_vs_bound'), 2)} | "
                f"{_fmt(m.get('flip_flops'))} | {_fmt(m.get('bram'))} | "
                f"{_fmt(m.get('dsp'))}/{_fmt(n.get('dsp'))} | {_fmt(m.get('fmax_mhz'))} | "
                f"{_fmt(n.get('fmax_mhz'))} | {_fmt(e.get('fabric_limit_mhz'))} | "
                f"{_fmt(e.get('fmax_vs_fabric'), 2)} | {goals} |")
        lines.append("")
    lines += ["## asic (Yosys generic CMOS cells)", "",
              "| w/a | PE | MVU gates | naive gates | MVU/naive | MVU transistors | naive transistors |",
              "|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        e = row["targets"]["asic"]
        m, n = e["mvu"], e["naive"]
        lines.append(f"| {row['weight_bits']}/{row['act_bits']} | {row['pe']} | "
                     f"{m.get('error') or m.get('core_logic')} | {n.get('error') or n.get('core_logic')} | "
                     f"{_fmt(e.get('logic_vs_naive'), 2)} | {_fmt(m.get('transistors'))} | "
                     f"{_fmt(n.get('transistors'))} |")
    lines += ["", "Transistors: 4 per NAND/NOR, 2 per NOT, 24 per D flip-flop (whole design "
              "with harness). A `-` or a reason stands where a tool failed or a design did not "
              "fit.", ""]
    return "\n".join(lines)
