"""Choose the foldings of a run and write the design (Verilog and manifest)."""
from wrpn_rtl.job.common import StepError, quiet

__all__ = ["choose", "generate", "FIT_MARGINS", "fit_margin", "REPORTS"]

#: The reports a run writes beside a design; generating a new design removes old ones.
REPORTS = ("sim.json", "synth.json", "synth.md", "summary.json", "summary.md")
#: Share of a device's logic the automatic folding may plan for, per device family (the
#: estimate is first-order; the rest is headroom for placement and estimate error). Measured
#: on the digits designs: the estimate ran 7-18 % under the placed figures; nextpnr stalled
#: or failed on UP5K designs at 81 % and 85 % of its cells (another at 81 % placed), and its
#: ECP5 placer (HeAP) found no legal placement for a 77 % design and was still placing a 67 %
#: one (with a large register window) after 15 minutes; a 60 % budget's design placed at
#: 71 % but ran 210 cycles per image in simulation against 192 expected (its gather, scatter
#: and replay do not overlap as the stage model assumes); the 50 % budget's design places at
#: 42 % in about two minutes and runs its expected cycles.
FIT_MARGINS = {"ice40": 0.75, "ecp5": 0.50}


def fit_margin(family):
    """The share of a device's logic the automatic folding plans for (:data:`FIT_MARGINS`;
    families without a device limit never ask)."""
    return FIT_MARGINS[family]


def choose(network, *, folding_file=None, target_cycles=None, max_lc=None,
           target="ice40-up5k"):
    """The foldings of a run and how they were chosen (a file, a cycle budget, a logic budget,
    or by default the fastest design within :func:`fit_margin` of ``target``'s logic). Logic
    is priced for ``target``'s family: iCE40 logic cells, ECP5 LUT4s."""
    from wrpn_rtl.compiler.folding import BudgetTooSmall, choose_foldings, read_foldings
    from wrpn_rtl.synth.flow import TARGETS
    family = TARGETS[target].family
    given = [v is not None for v in (folding_file, target_cycles, max_lc)]
    if sum(given) > 1:
        raise StepError("give at most one of --folding, --target-cycles and --max-lc")
    try:
        if folding_file is not None:
            return read_foldings(folding_file, network), f"from {folding_file}"
        if target_cycles is not None:
            return (choose_foldings(network, target_cycles=target_cycles),
                    f"balanced for {target_cycles} cycles per image")
        if max_lc is None:
            capacity = TARGETS[target].logic_capacity
            if capacity is None:
                return (choose_foldings(network, max_logic_cells=10 ** 9, family=family),
                        "fastest design (no device limit)")
            margin = fit_margin(family)
            budget = int(capacity * margin)
            how = (f"fastest design within {margin:.0%} of {target}'s {capacity} "
                   f"{_logic_unit(family)}")
            try:
                return (choose_foldings(network, max_logic_cells=budget, family=family,
                                        max_block_rams=TARGETS[target].ram_capacity), how)
            except BudgetTooSmall as error:
                raise StepError(_default_budget_problem(network, target, budget, error)) \
                    from None
        else:
            how = f"fastest design within {max_lc} {_logic_unit(family)} (estimated)"
        rams = TARGETS[target].ram_capacity
        return (choose_foldings(network, max_logic_cells=max_lc, max_block_rams=rams,
                                family=family), how)
    except ValueError as error:
        raise StepError(str(error).replace("target_cycles", "--target-cycles")
                        .replace("max_logic_cells", "--max-lc")) from None


def generate(prepared, out_dir, *, folding_file=None, target_cycles=None, max_lc=None,
             target="ice40-up5k", name="wrpn_accel", progress=quiet):
    """Choose foldings, build the accelerator, write ``model.npz`` (the network used, with its
    float parameters when known), ``<name>.v`` and ``manifest.json`` (last). Nothing is
    written before the foldings are known to fit.

    Returns
    -------
    (accelerator, summary dict)
    """
    from pathlib import Path
    from wrpn_rtl.compiler.manifest import build_accelerator, write_design
    from wrpn_rtl.golden import save_network
    from wrpn_rtl.synth.flow import TARGETS
    foldings, how = choose(prepared.network, folding_file=folding_file,
                           target_cycles=target_cycles, max_lc=max_lc, target=target)
    progress(f"generating the accelerator: foldings {how}: "
             + ", ".join(f"PE {f.pe} x SIMD {f.simd}" for f in foldings))
    try:
        accelerator = build_accelerator(prepared.network, foldings)
    except (TypeError, ValueError) as error:
        raise StepError(f"the foldings do not fit the network: {error}") from None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # No old manifest beside a new model, and no report of an older design beside a new one.
    for stale in ("manifest.json",) + REPORTS:
        (out_dir / stale).unlink(missing_ok=True)
    save_network(prepared.network, out_dir / "model.npz", float_model=prepared.float_model)
    family = TARGETS[target].family
    verilog, manifest_path, info = write_design(accelerator, out_dir, name=name,
                                                model=prepared.source, target=target,
                                                family=family)
    progress(f"  wrote {verilog} and {manifest_path}: {info['cycles_per_image']} cycles per "
             f"image expected, about {info['estimate']['device_logic_cells']} "
             f"{_logic_unit(family)} estimated")
    return accelerator, {"verilog": str(verilog), "manifest": str(manifest_path),
                         "model": str(out_dir / "model.npz"),
                         "folding_rule": how, "foldings": info["foldings"],
                         "cycles_per_image": info["cycles_per_image"],
                         "estimate": info["estimate"], "top": name, "target": target}


def _default_budget_problem(network, target, budget, error):
    """What to tell a user whose network does not fit the default budget of ``target`` (no
    ``--max-lc`` was given): the need, the budget and where it comes from, and the devices
    whose budget would hold the smallest design."""
    from wrpn_rtl.compiler.folding import choose_foldings
    from wrpn_rtl.synth.flow import TARGETS
    fits, margin = [], fit_margin(TARGETS[target].family)
    for name, device in TARGETS.items():
        if device.logic_capacity and device.logic_capacity > TARGETS[target].logic_capacity:
            try:
                choose_foldings(network, max_logic_cells=int(device.logic_capacity
                                                             * fit_margin(device.family)),
                                max_block_rams=device.ram_capacity, family=device.family)
                fits.append(name)
            except ValueError:
                pass
    advice = (f"; it fits --target {' or --target '.join(fits)}" if fits
              else "; no known device's default budget holds it: give --max-lc or --folding")
    if error.resource == "block_rams":
        return (f"no design of this network within the default budget of {budget} "
                f"{_logic_unit(TARGETS[target].family)} "
                f"({margin:.0%} of {target}'s {TARGETS[target].logic_capacity}) fits its "
                f"{TARGETS[target].ram_capacity} block RAMs{advice}")
    return (f"the smallest design of this network needs about {error.least_logic_cells} "
            f"{_logic_unit(TARGETS[target].family)} (estimated), "
            f"more than the default budget of {budget} ({margin:.0%} of {target}'s "
            f"{TARGETS[target].logic_capacity}; no --max-lc given){advice}")


def _logic_unit(family):
    """What a family's logic budget counts."""
    return "LUT4s" if family == "ecp5" else "logic cells"
