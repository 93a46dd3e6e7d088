"""The sweep's reports: ``sweep.json`` (everything), ``sweep.csv`` (one row per point and
target, every figure and failure), ``sweep.md`` (the accuracy grid width x precision, the
hardware table per target, WRPN's memory figures, the paragraph on the WRPN claim) and the
PNG plots: accuracy against images/s (FPGAs) and against logic (every target), the Pareto
front marked, each point labelled. Each PNG carries its plotted points as JSON in its
``Description`` text chunk, so what it shows can be checked without looking at it.
"""
import csv
import io
import json
from pathlib import Path

__all__ = ["write_sweep_reports", "pareto_front", "wrpn_claim", "accuracy_grid", "csv_rows",
           "sweep_markdown", "CSV_COLUMNS"]

CSV_COLUMNS = ("label", "width", "wbits", "abits", "accuracy_mean", "accuracy_std",
               "accuracy_min", "accuracy_max", "seeds", "integer_vs_float_mismatches",
               "weight_bits", "largest_fmap_bits", "target", "cycles_per_image", "foldings",
               "estimated_logic", "logic_cells", "logic_capacity", "flip_flops", "bram", "dsp",
               "fmax_mhz", "images_per_second", "cells", "transistors", "check_images",
               "check_mismatches", "bit_exact", "failure")
#: How FPGA family keys are written in prose.
FAMILY_NAMES = {"ice40": "iCE40", "ecp5": "ECP5"}


def write_sweep_reports(out, results):
    """Write every report of ``results`` (:func:`~wrpn_rtl.synth.sweep.gather`) into
    ``out``, each file atomically; returns the plot files written."""
    from wrpn_rtl.golden.atomic import atomic_write
    from wrpn_rtl.job.common import write_json
    out = Path(out)
    plots = write_plots(out, results)
    results = dict(results, plots=[p.name for p in plots])
    write_json(out / "sweep.json", results)
    with atomic_write(out / "sweep.csv", "w") as handle:
        handle.write(csv_text(results))
    with atomic_write(out / "sweep.md", "w") as handle:
        handle.write(sweep_markdown(results))
    return plots


# -- figures of one point on one target --------------------------------------------------------
def _accuracy(point):
    return (point.get("accuracy") or {}).get("mean")


def _hardware(point, target):
    """``(cost, images_per_second)`` of a point on a target, or Nones: the cost is logic
    cells on FPGAs, transistors on asic."""
    synth = point["targets"].get(target, {}).get("synth") or {}
    if target == "asic":
        return synth.get("transistors"), None
    return synth.get("logic_cells"), synth.get("images_per_second")


def pareto_front(items):
    """The items no other item beats: ``items`` are ``(label, cost, value)`` (lower cost and
    higher value are better); returns their labels in order of cost."""
    front = []
    for label, cost, value in items:
        beaten = any(c <= cost and v >= value and (c < cost or v > value)
                     for _, c, v in items)
        if not beaten:
            front.append((cost, label))
    return [label for _, label in sorted(front)]


# -- the accuracy grid and the claim -----------------------------------------------------------
def _fmt_accuracy(spread):
    if not spread:
        return "failed"
    if len(spread["seeds"]) > 1:
        return f"{spread['mean']:.4f} ± {spread['std']:.4f}"
    return f"{spread['mean']:.4f}"


def accuracy_grid(results):
    """Markdown: rows are widths, columns (weight, activation) bits and full precision; each
    cell the golden test accuracy, mean ± standard deviation over the seeds."""
    bits = list(dict.fromkeys((p["wbits"], p["abits"]) for p in results["points"]))
    widths = list(dict.fromkeys(p["width"] for p in results["points"]))
    by_key = {(p["width"], p["wbits"], p["abits"]): p for p in results["points"]}
    floats = {b["width"]: b for b in results["float_baselines"]}
    lines = ["| width | " + " | ".join(f"w{w}a{a}" for w, a in bits) + " | full precision |",
             "|---" * (len(bits) + 2) + "|"]
    for width in widths:
        cells = [_fmt_accuracy(by_key[(width, w, a)]["accuracy"]) for w, a in bits]
        baseline = floats.get(width)
        cells.append(_fmt_accuracy(baseline["accuracy"]) if baseline else "-")
        lines.append(f"| {width:g}x | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _reference(results):
    """The full-precision baseline the claim is checked against: width 1, else the
    narrowest width swept."""
    baselines = [b for b in results["float_baselines"] if b["accuracy"]]
    if not baselines:
        return None
    return min(baselines, key=lambda b: (b["width"] != 1.0, b["width"]))


def _eight_bit(results):
    """The 8-bit point the costs are compared with: w8a8 at width 1, else at the narrowest
    width swept."""
    eights = [p for p in results["points"] if (p["wbits"], p["abits"]) == (8, 8)]
    return min(eights, key=lambda p: (p["width"] != 1.0, p["width"])) if eights else None


def wrpn_claim(results):
    """The paragraph on WRPN's claim, from the data: which points reach full-precision
    accuracy within the seed spread, and what the best of them cost against the 8-bit point
    on every target. It says plainly when the claim does not hold, or cannot be checked."""
    reference = _reference(results)
    if reference is None:
        return ("No full-precision baseline was measured (the model file keeps no float "
                "parameters of the digits task), so the WRPN claim is not checked here.")
    ref = reference["accuracy"]
    seeds = len(ref["seeds"])
    text = [f"Full precision at width {reference['width']:g} reaches "
            f"{_fmt_accuracy(ref)} ({seeds} seed{'s' if seeds > 1 else ''}). A point "
            f"\"reaches\" it when its mean accuracy is at least the baseline's mean less the "
            f"larger of the two standard deviations over seeds"
            + (" (one seed: no spread was measured, so the point must match or beat it)."
               if seeds == 1 else ".")]
    reaching, missing = [], []
    for point in results["points"]:
        accuracy = point["accuracy"]
        if not accuracy:
            continue
        tolerance = max(ref["std"], accuracy["std"])
        (reaching if accuracy["mean"] >= ref["mean"] - tolerance else missing).append(point)
    if reaching:
        text.append("Reaching it: " + ", ".join(f"{p['label']} ({_fmt_accuracy(p['accuracy'])})"
                                                 for p in reaching) + ".")
    else:
        text.append("No point reaches it.")
    if missing:
        text.append("Below it: " + ", ".join(f"{p['label']} ({p['accuracy']['mean']:.4f})"
                                             for p in missing) + ".")
    eight = _eight_bit(results)
    reduced = [p for p in reaching if max(p["wbits"], p["abits"]) < 8]
    targets = list(results["config"]["targets"])
    if eight is None:
        text.append("There is no 8-bit point in this sweep to compare costs with.")
        return " ".join(text)
    holds, fails = [], []
    for target in targets:
        sentence, better = _cost_sentence(target, reduced, eight)
        text.append(sentence)
        (holds if better else fails).append(target)
    claim = ("WRPN's claim (a wider network at reduced precision reaches full-precision "
             "accuracy and costs less than 8 bits)")
    if holds and not fails:
        text.append(f"{claim} holds here on {', '.join(holds)}.")
    elif holds:
        text.append(f"{claim} holds here on {', '.join(holds)}, not on {', '.join(fails)}.")
    else:
        text.append(f"{claim} does not hold here on {', '.join(fails)}.")
    return " ".join(text)


def _cost_sentence(target, reduced, eight):
    """``(sentence, reduced precision beats 8 bits)`` for one target."""
    base_cost, base_speed = _hardware(eight, target)
    measured = [(p, *_hardware(p, target)) for p in reduced]
    if target == "asic":
        measured = [m for m in measured if m[1]]
        if not measured:
            return "On asic no reduced-precision point that reaches it was synthesized.", False
        if not base_cost:
            return (f"On asic the 8-bit point {eight['label']} was not synthesized "
                    f"({eight['targets'][target]['failure']}).", False)
        best, cost, _ = min(measured, key=lambda m: m[1])
        cycles = [point["targets"][target]["design"]["cycles_per_image"]
                  for point in (best, eight)]
        return (f"On asic (designs balanced for one cycle budget: {cycles[0]} and {cycles[1]} "
                f"cycles per image), the smallest of them, {best['label']}, needs "
                f"{cost / base_cost:.2f}x the transistors of the 8-bit point {eight['label']} "
                f"({cost:,} against {base_cost:,})."), cost < base_cost
    measured = [m for m in measured if m[2]]
    if not measured:
        return (f"On {target} no reduced-precision point that reaches it was built.", False)
    best, cost, speed = max(measured, key=lambda m: m[2])
    if not base_speed:
        return (f"On {target} the fastest of them is {best['label']} at {speed:,} images/s; "
                f"the 8-bit point {eight['label']} was not built "
                f"({eight['targets'][target]['failure']}), so it runs where 8 bits does "
                f"not."), True
    return (f"On {target} the fastest of them, {best['label']}, runs {speed / base_speed:.1f}x "
            f"the images/s of the 8-bit point {eight['label']} ({speed:,} against "
            f"{base_speed:,}) in {cost / base_cost:.2f}x its logic cells."), speed > base_speed


# -- tables ------------------------------------------------------------------------------------
def _foldings(design):
    return ", ".join(f"{f['pe']}x{f['simd']}" for f in design["foldings"]) if design else ""


def hardware_table(results, target):
    """Markdown: one row per point on ``target``."""
    asic = target == "asic"
    head = (["point", "accuracy", "cycles/image", "PE x SIMD"]
            + (["cells", "FF", "transistors"] if asic else
               ["logic", "FF", "BRAM", "DSP", "Fmax MHz", "images/s"])
            + ["bit-exact", "note"])
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for point in results["points"]:
        entry = point["targets"][target]
        design, synth, check = entry["design"] or {}, entry["synth"] or {}, entry["check"]
        cells = [point["label"], _fmt_accuracy(point["accuracy"]),
                 str(design.get("cycles_per_image", "")), _foldings(entry["design"])]
        if asic:
            cells += [_num(synth.get("cells")), _num(synth.get("flip_flops")),
                      _num(synth.get("transistors"))]
        else:
            logic = synth.get("logic_cells")
            cells += [f"{logic} of {synth['logic_capacity']}" if logic else "",
                      _num(synth.get("flip_flops")), _num(synth.get("bram")),
                      _num(synth.get("dsp")),
                      f"{synth['fmax_mhz']:.1f}" if synth.get("fmax_mhz") else "",
                      _num(synth.get("images_per_second"))]
        cells.append("" if check is None else ("yes" if check["bit_exact"] else "NO"))
        cells.append((entry["failure"] or "").replace("|", "/"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _num(value):
    return "" if value is None else f"{value:,}"


def memory_table(results):
    lines = ["| point | weight bits | largest input + output feature map (bits) |",
             "|---|---|---|"]
    for point in results["points"]:
        memory = point["memory"]
        if memory:
            lines.append(f"| {point['label']} | {memory['weight_bits']:,} | "
                         f"{memory['largest_fmap_bits']:,} |")
    return "\n".join(lines)


def sweep_markdown(results):
    """``sweep.md``: the grid, the claim, the hardware per target, memory, plots, steps."""
    config, steps = results["config"], results["steps"]
    seeds = config["seeds"] if not config["model"] else 1
    source = (f"re-quantized from {config['model']}" if config["model"] else
              f"trained {config['epochs']} epochs, {seeds} seed{'s' if seeds > 1 else ''}")
    fill = config.get("fill") or {}
    planned = " and ".join(f"{share:.0%} of an {FAMILY_NAMES.get(family, family)}'s logic"
                           for family, share in fill.items())
    parts = [
        "# WRPN sweep: width x precision, accuracy against hardware\n",
        f"Digits CNN, {source}; golden test accuracy (integer path, 360 test images), mean ± "
        f"standard deviation over seeds. Hardware from the first seed's model: per FPGA the "
        f"fastest design that places, planned for {planned or 'the device'} (rebuilt smaller "
        f"when nextpnr cannot place it in time); asic designs balanced for "
        f"{config['asic_cycles']} "
        f"cycles per image. Every design built ran {config['images']} test images on "
        f"Verilator against the golden model.\n",
        "## Accuracy\n", accuracy_grid(results) + "\n",
        "## The WRPN claim, checked\n", wrpn_claim(results) + "\n"]
    for target in config["targets"]:
        parts += [f"## {target}\n", hardware_table(results, target) + "\n"]
    parts += ["## Memory (as WRPN counts it)\n", memory_table(results) + "\n"]
    if results.get("plots"):
        parts.append("## Plots\n")
        parts += [f"![{name}]({name})\n" for name in results["plots"]]
    parts.append(f"{steps['total']} steps: {steps['computed']} run, {steps['cached']} from the "
                 f"cache, {steps['failed']} failed; {results['seconds']:.0f} s on "
                 f"{results['where']}.\n")
    return "\n".join(parts)


def csv_rows(results):
    """One dict per point and target (and per full-precision baseline), keys
    :data:`CSV_COLUMNS`."""
    rows = []
    for point in results["points"]:
        accuracy, memory = point["accuracy"] or {}, point["memory"] or {}
        base = {"label": point["label"], "width": point["width"], "wbits": point["wbits"],
                "abits": point["abits"], "accuracy_mean": accuracy.get("mean"),
                "accuracy_std": accuracy.get("std"), "accuracy_min": accuracy.get("min"),
                "accuracy_max": accuracy.get("max"),
                "seeds": len(accuracy.get("seeds", [])),
                "integer_vs_float_mismatches": point["integer_vs_float_mismatches"],
                "weight_bits": memory.get("weight_bits"),
                "largest_fmap_bits": memory.get("largest_fmap_bits")}
        for target, entry in point["targets"].items():
            design, synth, check = entry["design"] or {}, entry["synth"] or {}, entry["check"]
            row = dict(base, target=target, cycles_per_image=design.get("cycles_per_image"),
                       foldings=_foldings(entry["design"]),
                       estimated_logic=(design.get("estimate") or {}).get("device_logic_cells"),
                       check_images=check and check["images"],
                       check_mismatches=check and check["mismatches"],
                       bit_exact=check and check["bit_exact"],
                       failure=entry["failure"] or "; ".join(point["failures"]))
            row.update({key: synth.get(key) for key in
                        ("logic_cells", "logic_capacity", "flip_flops", "bram", "dsp",
                         "fmax_mhz", "images_per_second", "cells", "transistors")})
            rows.append(row)
    for baseline in results["float_baselines"]:
        accuracy = baseline["accuracy"] or {}
        rows.append({"label": f"x{baseline['width']:g} float", "width": baseline["width"],
                     "wbits": "float", "abits": "float", "accuracy_mean": accuracy.get("mean"),
                     "accuracy_std": accuracy.get("std"), "accuracy_min": accuracy.get("min"),
                     "accuracy_max": accuracy.get("max"),
                     "seeds": len(accuracy.get("seeds", [])),
                     "failure": "; ".join(baseline["failures"])})
    return rows


def csv_text(results):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(results):
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buffer.getvalue()


# -- plots -------------------------------------------------------------------------------------
def plot_series(results, target, axis):
    """The points of one plot: ``axis`` "throughput" (images/s) or "logic" (logic cells;
    transistors on asic). Returns ``(plotted, omitted)``: ``[(label, x, accuracy, std)]`` and
    the labels without the figures (with the reason)."""
    plotted, omitted = [], []
    for point in results["points"]:
        cost, speed = _hardware(point, target)
        x = speed if axis == "throughput" else cost
        if x and _accuracy(point) is not None:
            plotted.append((point["label"], x, _accuracy(point), point["accuracy"]["std"]))
        else:
            omitted.append(f"{point['label']}: {point['targets'][target]['failure'] or 'no figure'}")
    return plotted, omitted


def write_plots(out, results):
    """Accuracy against images/s (FPGA targets) and against logic (every target); returns
    the PNG paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from wrpn_rtl.golden.atomic import atomic_write
    written = []
    reference = _reference(results)
    for target in results["config"]["targets"]:
        axes = (["throughput"] if target != "asic" else []) + ["logic"]
        for axis in axes:
            plotted, omitted = plot_series(results, target, axis)
            higher_x_better = axis == "throughput"
            front = pareto_front([(label, -x if higher_x_better else x, y)
                                  for label, x, y, _ in plotted])
            xlabel = ("images per second" if axis == "throughput" else
                      "transistors (estimate)" if target == "asic" else "logic cells (placed)")
            figure, ax = plt.subplots(figsize=(7, 4.8), dpi=100)
            for label, x, y, std in plotted:
                on_front = label in front
                ax.errorbar([x], [y], yerr=[std], fmt="o" if on_front else "s",
                            color="tab:red" if on_front else "tab:blue", capsize=3)
                ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4),
                            fontsize=8)
            line = sorted((x, y) for label, x, y, _ in plotted if label in front)
            if line:
                ax.plot(*zip(*line), color="tab:red", linewidth=1, label="Pareto front")
            if reference:
                ax.axhline(reference["accuracy"]["mean"], color="gray", linestyle="--",
                           linewidth=1,
                           label=f"full precision, width {reference['width']:g}")
            if plotted and min(x for _, x, _, _ in plotted) > 0:
                ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("test accuracy (golden)")
            ax.set_title(f"{target}: accuracy against "
                         f"{'throughput' if axis == 'throughput' else xlabel.split(' (')[0]}")
            ax.grid(True, which="both", alpha=0.3)
            if line or reference:
                ax.legend(fontsize=8, loc="lower right")
            description = json.dumps({"target": target, "x": xlabel, "points": [
                {"label": label, "x": x, "accuracy": y, "std": std}
                for label, x, y, std in plotted], "pareto": front, "omitted": omitted})
            path = Path(out) / f"accuracy_vs_{axis}_{target}.png"
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", metadata={"Description": description})
            plt.close(figure)
            with atomic_write(path, "wb") as handle:
                handle.write(buffer.getvalue())
            written.append(path)
    return written
