"""Markdown for people: the synthesis table and the main job's results table."""

__all__ = ["synth_markdown", "flow_markdown", "foldings_text", "breakdown_markdown"]


def foldings_text(foldings):
    """``"2x9, 8x16 (table in BRAM), 1x4"``: PE x SIMD per Conv/Dense layer (manifest
    ``foldings`` entries), where a layer's table of constants or replay buffer was placed by
    choice, "(LUT RAM)" where its shallow memories are in LUT RAM, "(8 lanes in DSP)" where
    lanes of each PE multiply in DSP blocks, "(requantizer in DSP)" where its requantizer
    does."""
    where = {"block": " (table in BRAM)", "logic": " (table in logic)"}
    replay = {"block": " (replay in BRAM)", "logic": " (replay in logic)"}

    def text(f):
        dsp_lanes = 2 * f.get("dsp_pairs", 0)
        return (f"{f['pe']}x{f['simd']}{where.get(f.get('tables'), '')}"
                f"{replay.get(f.get('replay'), '')}{' (LUT RAM)' if f.get('lut_ram') else ''}"
                + (f" ({dsp_lanes} lanes in DSP)" if dsp_lanes else "")
                + (" (requantizer in DSP)" if f.get("dsp_requantizer") else "")
                + (f" (a requantizer per {f['pe_per_requantizer']} PEs)"
                   if f.get("pe_per_requantizer", 1) > 1 else "")
                + (" (queue in BRAM)" if f.get("queue") == "block" else ""))
    return ", ".join(text(f) for f in foldings)


def synth_markdown(rows, failures=()):
    """People's table of :func:`synthesize` rows (and of the targets that failed)."""
    lines = ["| target | foldings (PE x SIMD) | cycles/image | logic cells (of device) | "
             "estimate | FF | BRAM | DSP | Fmax MHz | images/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        design = f"{foldings_text(row['foldings'])} | {row['cycles_per_image']}"
        if row["target"] == "asic":
            lines.append(f"| asic | {design} | {row['cells']} generic cells, "
                         f"~{row['transistors']} transistors | - | {row['flip_flops']} | - | "
                         f"- | - | - |")
            continue
        fmax = row["fmax_mhz"]
        lines.append(f"| {row['target']} | {design} | {row['logic_cells']} "
                     f"({row['logic_capacity']}) | {row['estimate']['device_logic_cells']} | "
                     f"{row['flip_flops']} | {row['bram']} | {row['dsp']} | "
                     + (f"{fmax:.1f} | {row['images_per_second']} |" if fmax else "- | - |"))
    for failure in failures:
        lines.append(f"| failed | {failure} | | | | | | | | |")
    notes = [_seeds_text(row) for row in rows if len(row.get("seed_fmax_mhz") or {}) > 1]
    return "\n".join(lines) + "\n" + "".join(f"\n{note}\n" for note in notes)


def _seeds_text(row):
    """One line on a seed sweep: each seed's Fmax, and which one the row reports."""
    each = ", ".join(f"seed {seed}: " + (f"{fmax:.1f} MHz" if fmax else "did not place")
                     for seed, fmax in row["seed_fmax_mhz"].items())
    return f"{row['target']}: placed with {each}; the fastest (seed {row['seed']}) reported."


def flow_markdown(prepared, summary):
    """The main job's results table (``summary.md``): network, golden check, simulation, and
    the synthesis table."""
    network, golden = prepared.network, summary["golden"]

    def describe(layer):
        text = f"{type(layer).__name__.replace('Quant', '')}{layer.out_shape}"
        if hasattr(layer, "weight_bits"):
            text += f" w{layer.weight_bits} " + ("logits" if layer.is_logits
                                                 else f"a{layer.out_bits}")
        return text

    layers = " -> ".join(describe(layer) for layer in network.layers)
    bits = (f"w{prepared.weight_bits}a{prepared.act_bits}"
            if None not in (prepared.weight_bits, prepared.act_bits) else "bits per layer")
    width = f", width x{prepared.width}" if prepared.width is not None else ""
    rows = [("network", f"{prepared.source}: {bits}{width}"), ("layers", layers)]
    if golden and not golden["labelled"]:
        rows += [(f"golden integer vs float mismatches ({golden['images']} sample images)",
                  str(golden["integer_vs_float_mismatches"]))]
    elif golden:
        full, narrow = (golden["full_precision_accuracy"],
                        golden["full_precision_width1_accuracy"])
        rows += [(f"test accuracy ({golden['images']} images): integer golden / float "
                  "quantized / full precision, same width / full precision, width 1",
                  f"{golden['accuracy']:.4f} / {golden['float_path_accuracy']:.4f} / "
                  + " / ".join(f"{v:.4f}" if v is not None else "-" for v in (full, narrow))),
                 ("golden integer vs float mismatches", str(golden["integer_vs_float_mismatches"]))]
    for design in summary["designs"]:
        generated, sim = design["generate"], design["sim"]
        which = (f" ({', '.join(design['targets'])} design)"
                 if len(summary["designs"]) > 1 else "")
        rows += [(f"foldings (PE x SIMD){which}",
                  f"{foldings_text(generated['foldings'])} ({generated['folding_rule']})"),
                 (f"RTL vs golden, {sim['images']} images ({sim['simulator']}){which}",
                  f"{sim['mismatches']} mismatches"
                  + (f", accuracy {sim['accuracy']:.4f}" if sim.get("accuracy") is not None
                     else "")),
                 (f"cycles per image: measured (steady state) / expected{which}",
                  f"{sim['cycles_per_image']} / {sim['expected_cycles_per_image']}"),
                 (f"latency (first pixel in to label out), cycles{which}",
                  str(sim["latency_cycles"]))]
    lines = ["| what | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    lines += ["", synth_markdown(summary["synth"], summary["failures"]).rstrip("\n")]
    return "\n".join(lines) + "\n"


def breakdown_markdown(row):
    """Per-stage measured resources of one synthesis row (its ``stages``, from the
    unflattened synthesis) beside the estimate, and the roofline line."""
    unit = "LUT4" if row["target"].startswith("ecp5") else "LUT4 (iCE40)"
    lines = [f"| stage | part | {unit} | FF | BRAM | DSP | estimate {unit} / FF / BRAM |",
             "|---|---|---|---|---|---|---|"]
    totals = dict.fromkeys(("luts", "flip_flops", "block_rams", "dsps"), 0)
    estimated = dict.fromkeys(("luts", "flip_flops", "block_rams"), 0)
    for stage in row["stages"]:
        est = stage["estimate"]
        for index, (part, used) in enumerate(stage["parts"].items()):
            label = f"{stage['stage']} ({stage['kind']})" if index == 0 else ""
            estimate = (f"{est['luts']} / {est['flip_flops']} / {est['block_rams']}"
                        if index == 0 else "")
            lines.append(f"| {label} | {part or '(control)'} | {used['luts']} | "
                         f"{used['flip_flops']} | {used['block_rams']} | {used['dsps']} | "
                         f"{estimate} |")
        for key in totals:
            totals[key] += stage["measured"][key]
        for key in estimated:
            estimated[key] += est[key]
    lines.append(f"| total | | {totals['luts']} | {totals['flip_flops']} | "
                 f"{totals['block_rams']} | {totals['dsps']} | {estimated['luts']} / "
                 f"{estimated['flip_flops']} / {estimated['block_rams']} |")
    roof = row.get("roofline")
    if roof:
        floor = roof["input_floor_images_per_second"]
        lines += ["", f"{roof['mac_lanes']} MAC lanes; {roof['macs_per_cycle']} MACs per cycle "
                  f"({roof['macs_per_image']} per image"
                  + (f", {roof['padding_macs_per_image']} of them on zero padding"
                     if roof.get("padding_macs_per_image") else "") + "); "
                  f"{roof['macs_per_cycle_per_1k_logic']} MACs per cycle per 1k placed logic "
                  f"cells; {_percent(roof['lane_lut_share'])} of the LUT4s and "
                  f"{_percent(roof['lane_ff_share'])} of the flip-flops in the MAC lanes "
                  f"({roof['lane_luts_per_lane']} LUT4s per lane); input floor "
                  f"{roof['input_floor_cycles']} cycles per image"
                  + (f" ({floor} images/s at this Fmax)" if floor else "")]
    return "\n".join(lines) + "\n"


def _percent(share):
    return "-" if share is None else f"{100 * share:.0f} %"
