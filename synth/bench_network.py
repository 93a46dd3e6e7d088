"""``wrpn-rtl bench network``: the whole default network, one design per target, measured stage
by stage.

For every target the network is folded for that device (the fastest design within the default
budget), synthesized and placed, and synthesized again without flattening for the resources of
each stage and part (window, converter, replay, MVU and its MAC lanes, pool, queues), set
beside the compiler's estimate. The roofline line says how much of the placed design does the
network's arithmetic: MAC lanes, MACs per cycle per 1k logic cells, the share of logic inside
the MAC lanes, and the input floor (one image word per cycle) the design is measured against.
In the same run, the baseline: the smallest device's design on each larger target (what every
target got before designs were folded per device).
"""
from pathlib import Path

from wrpn_rtl.job.common import StepError, quiet, write_report
from wrpn_rtl.synth.flow import DEFAULT_TARGETS, TARGETS

__all__ = ["run_network_bench"]


def run_network_bench(out_dir, *, quick=False, targets=None, progress=quiet):
    """Fold, synthesize and break down the default network per target.

    Parameters
    ----------
    out_dir : path
        Gets ``network.json``, ``network.md`` and the designs in ``network_<target>/``.
    quick : bool
        Only the first target, and no baseline.
    targets : list of str, optional
        Default :data:`~wrpn_rtl.synth.flow.DEFAULT_TARGETS`.

    Returns
    -------
    dict
        ``{"rows": [synthesis rows with "stages" and "roofline"], "baseline": [rows],
        "failures": [str]}``.
    """
    from wrpn_rtl.job.design import generate
    from wrpn_rtl.job.network import prepare_network
    from wrpn_rtl.job.synthesize import synthesize
    out_dir = Path(out_dir)
    targets = list(targets or DEFAULT_TARGETS)[:1 if quick else None]
    prepared = prepare_network(None)
    rows, baseline, failures = [], [], []
    smallest = min(targets, key=lambda t: TARGETS[t].logic_capacity or float("inf"))
    designs = {}
    for target in targets:
        design_dir = out_dir / f"network_{target}"
        try:
            designs[target] = generate(prepared, design_dir, target=target, progress=progress)
            rows.append(synthesize(designs[target][0], design_dir, target,
                                   generated=designs[target][1], progress=progress))
        except StepError as error:
            progress(f"  {error}")
            failures.append(str(error))
    if not quick and smallest in designs:
        accelerator, generated = designs[smallest]
        for target in targets:
            if target == smallest or TARGETS[target].logic_capacity is None:
                continue
            try:
                baseline.append(synthesize(accelerator, out_dir / f"network_{smallest}",
                                           target, generated=generated, progress=progress))
            except StepError as error:
                failures.append(f"baseline: {error}")
    report = {"rows": rows, "baseline": baseline, "failures": failures}
    write_report(out_dir, "network", report, network_markdown(report))
    return report


def network_markdown(report):
    """The bench's tables: per target the design, measured against the baseline, then each
    design's per-stage breakdown and roofline line."""
    from wrpn_rtl.job.reports import breakdown_markdown, synth_markdown
    lines = ["# Default network, one design per target", "",
             synth_markdown(report["rows"], report["failures"])]
    if report["baseline"]:
        lines += ["Baseline, the smallest device's design on the larger targets:", "",
                  synth_markdown(report["baseline"])]
        for row in report["rows"]:
            for base in report["baseline"]:
                if base["target"] == row["target"] and base.get("images_per_second") \
                        and row.get("images_per_second"):
                    lines.append(f"{row['target']}: {row['images_per_second'] / base['images_per_second']:.1f}x "
                                 f"the images/s of the baseline design")
        lines.append("")
    for row in report["rows"]:
        lines += [f"## {row['target']}: per stage (unflattened synthesis)", "",
                  breakdown_markdown(row)]
    return "\n".join(lines)
