"""Markdown for people: the synthesis table and the main job's results table."""

__all__ = ["synth_markdown", "flow_markdown"]


def synth_markdown(rows, failures=()):
    """People's table of :func:`synthesize` rows (and of the targets that failed)."""
    lines = ["| target | logic cells (of device) | estimate | FF | BRAM | DSP | Fmax MHz "
             "| images/s |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if row["target"] == "asic":
            lines.append(f"| asic | {row['cells']} generic cells, ~{row['transistors']} "
                         f"transistors | - | {row['flip_flops']} | - | - | - | - |")
            continue
        fmax = row["fmax_mhz"]
        lines.append(f"| {row['target']} | {row['logic_cells']} ({row['logic_capacity']}) | "
                     f"{row['estimate']['device_logic_cells']} | {row['flip_flops']} | "
                     f"{row['bram']} | {row['dsp']} | "
                     + (f"{fmax:.1f} | {row['images_per_second']} |" if fmax else "- | - |"))
    for failure in failures:
        lines.append(f"| failed | {failure} | | | | | | |")
    return "\n".join(lines) + "\n"


def flow_markdown(prepared, summary):
    """The main job's results table (``summary.md``): network, golden check, simulation, and
    the synthesis table."""
    network, generated, sim, golden = (prepared.network, summary["generate"], summary["sim"],
                                       summary["golden"])
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
    rows = [("network", f"{prepared.source}: {bits}{width}"),
            ("layers", layers),
            ("foldings (PE x SIMD)", ", ".join(f"{f['pe']}x{f['simd']}"
                                               for f in generated["foldings"])
             + f" ({generated['folding_rule']})")]
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
    rows += [(f"RTL vs golden, {sim['images']} images ({sim['simulator']})",
              f"{sim['mismatches']} mismatches"
              + (f", accuracy {sim['accuracy']:.4f}" if sim.get("accuracy") is not None else "")),
             ("cycles per image: measured (steady state) / expected",
              f"{sim['cycles_per_image']} / {sim['expected_cycles_per_image']}"),
             ("latency (first pixel in to label out), cycles", str(sim["latency_cycles"]))]
    lines = ["| what | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    lines += ["", synth_markdown(summary["synth"], summary["failures"]).rstrip("\n")]
    return "\n".join(lines) + "\n"
