"""Choose the foldings of a run and write the design (Verilog, model and manifest); read a
design folder back; tie every report to the design it describes."""
import hashlib
import json
from pathlib import Path
import re

from wrpn_rtl.compiler.manifest import MANIFEST, MANIFEST_VERSION
from wrpn_rtl.job.common import StepError, quiet

__all__ = ["choose", "generate", "load_design", "FIT_MARGINS", "fit_margin", "REPORTS",
           "design_stamp", "design_problems", "remove_stale_reports"]

#: The reports a run writes beside a design. Each records the SHA-256 of the manifest it
#: describes (:func:`design_stamp`); a report whose design changed is removed
#: (:func:`remove_stale_reports`) when a new design is written or a folder is reused.
REPORTS = ("sim.json", "synth.json", "synth.md", "summary.json", "summary.md", "build.json",
           "build.md", "infer.json", "infer.md")
#: Share of a device's logic the automatic folding may plan for, per device family (the
#: estimate is first-order; the rest is headroom for placement and estimate error). Measured
#: on the digits designs: the estimate ran 3-18 % under the placed figures; nextpnr stalled
#: or failed on UP5K designs at 81 % and 85 % of its cells (another at 81 % placed). On ECP5
#: HeAP found no legal placement for a 77 % design and made no progress on 66-67 % ones for
#: 10-15 minutes; with nextpnr's static placer, and now with HeAP's early legalizer give-up
#: (:meth:`~wrpn_rtl.synth.flow.Target.placer`), the 65 % budget's design places in minutes
#: and runs its expected 156 cycles per image.
FIT_MARGINS = {"ice40": 0.75, "ecp5": 0.65}


def fit_margin(family):
    """The share of a device's logic the automatic folding plans for (:data:`FIT_MARGINS`;
    families without a device limit never ask)."""
    return FIT_MARGINS[family]


def choose(network, *, folding_file=None, target_cycles=None, max_lc=None,
           target="ice40-up5k", fill=None, reserve=None):
    """The foldings of a run and how they were chosen (a file, a cycle budget, a logic budget,
    or by default the fastest design within ``fill`` (a share; default :func:`fit_margin`) of
    ``target``'s logic, less ``reserve``: ``(logic, what)`` or ``(logic, what, block_rams)``
    that the device also holds beside the accelerator, e.g. a board's host link, whose block
    RAMs then come off the block-RAM budget too). Logic is priced for ``target``'s family:
    iCE40 logic cells, ECP5 LUT4s."""
    from wrpn_rtl.compiler.folding import BudgetTooSmall, choose_foldings, read_foldings
    from wrpn_rtl.synth.flow import TARGETS
    family = TARGETS[target].family
    given = [v is not None for v in (folding_file, target_cycles, max_lc)]
    if sum(given) > 1:
        raise StepError("give at most one of --folding, --target-cycles and --max-lc")
    try:
        if folding_file is not None:
            foldings = read_foldings(folding_file, network)
            _check_lut_ram(foldings, network, folding_file, target, family)
            _check_dsp_blocks(foldings, network, folding_file, target)
            return foldings, f"from {folding_file}"
        if target_cycles is not None:
            return (choose_foldings(network, target_cycles=target_cycles, family=family,
                                    max_block_rams=TARGETS[target].ram_capacity,
                                    max_dsp_blocks=TARGETS[target].dsp_capacity),
                    f"balanced for {target_cycles} cycles per image")
        if max_lc is None:
            capacity = TARGETS[target].logic_capacity
            if capacity is None:
                return (choose_foldings(network, max_logic_cells=10 ** 9, family=family),
                        "fastest design (no device limit)")
            margin = fit_margin(family) if fill is None else fill
            if not 0 < margin <= 1:
                raise StepError(f"the fill must be a share of the device in (0, 1], "
                                f"not {margin!r}")
            budget = int(capacity * margin)
            how = (f"fastest design within {margin:.0%} of {target}'s {capacity} "
                   f"{_logic_unit(family)}")
            rams = TARGETS[target].ram_capacity
            if reserve is not None:
                budget -= reserve[0]
                how += f" less {reserve[0]} for {reserve[1]}"
                if len(reserve) > 2 and rams is not None:
                    rams -= reserve[2]
                    how += f" (and {reserve[2]} block RAMs)"
            try:
                return (choose_foldings(network, max_logic_cells=budget, family=family,
                                        max_block_rams=rams,
                                        max_dsp_blocks=TARGETS[target].dsp_capacity), how)
            except BudgetTooSmall as error:
                problem = _default_budget_problem(network, target, budget, error, margin)
                raise StepError(problem) from None
        else:
            how = f"fastest design within {max_lc} {_logic_unit(family)} (estimated)"
        rams = TARGETS[target].ram_capacity
        return (choose_foldings(network, max_logic_cells=max_lc, max_block_rams=rams,
                                max_dsp_blocks=TARGETS[target].dsp_capacity, family=family),
                how)
    except ValueError as error:
        raise StepError(str(error).replace("target_cycles", "--target-cycles")
                        .replace("max_logic_cells", "--max-lc")) from None


def _check_lut_ram(foldings, network, folding_file, target, family):
    """Raise StepError where a folding asks for LUT RAM on a family that has none (Yosys
    would refuse the design only at synthesis)."""
    from wrpn_rtl.compiler.stages import group_layers
    from wrpn_rtl.hardware.memories import LUT_RAM_FAMILIES
    for folding, group in zip(foldings, group_layers(network)[1]):
        if folding.lut_ram and family not in LUT_RAM_FAMILIES:
            raise StepError(f"folding file {str(folding_file)!r}: {group.layer.name}: lut_ram "
                            f"needs a device with LUT RAM ({', '.join(LUT_RAM_FAMILIES)}), "
                            f"not {target} ({family})")


def _check_dsp_blocks(foldings, network, folding_file, target):
    """Raise StepError where a folding file asks for more DSP blocks (pairs, requantizers)
    than ``target`` offers the compiler (:attr:`~wrpn_rtl.synth.flow.Target.dsp_capacity`)."""
    from wrpn_rtl.compiler.stages import group_layers
    from wrpn_rtl.synth.flow import TARGETS
    capacity = TARGETS[target].dsp_capacity
    blocks = 0
    for folding, group in zip(foldings, group_layers(network)[1]):
        for name, value in (("dsp_pairs", folding.dsp_pairs),
                            ("dsp_requantizer", folding.dsp_requantizer)):
            if value and not capacity:
                raise StepError(f"folding file {str(folding_file)!r}: {group.layer.name}: "
                                f"{name} must be {0 if name == 'dsp_pairs' else 'false'} for "
                                f"{target} (the compiler uses no DSP blocks there), not "
                                f"{json.dumps(value)}")
        blocks += folding.dsp_blocks
    if blocks > capacity:
        raise StepError(f"folding file {str(folding_file)!r}: dsp_pairs and dsp_requantizer "
                        f"must take at most {target}'s {capacity} DSP blocks (PE x dsp_pairs "
                        f"+ PE / pe_per_requantizer with dsp_requantizer, over the layers), "
                        f"not {blocks}")


def generate(prepared, out_dir, *, folding_file=None, target_cycles=None, max_lc=None,
             target="ice40-up5k", fill=None, reserve=None, name="wrpn_accel",
             progress=quiet):
    """Choose foldings (:func:`choose`), build the accelerator, write ``model.npz`` (the network used, with its
    float parameters when known), ``<name>.v`` and ``manifest.json`` as one change, removing
    the reports of an older design with it. Nothing is written before the foldings are known
    to fit; an interrupt leaves the folder's older design as it was.

    Returns
    -------
    (accelerator, summary dict)
    """
    from wrpn_rtl.compiler.manifest import build_accelerator, write_design
    from wrpn_rtl.golden import network_bytes
    from wrpn_rtl.synth.flow import TARGETS
    foldings, how = choose(prepared.network, folding_file=folding_file,
                           target_cycles=target_cycles, max_lc=max_lc, target=target,
                           fill=fill, reserve=reserve)
    progress(f"generating the accelerator: foldings {how}: "
             + ", ".join(f.describe() for f in foldings))
    try:
        accelerator = build_accelerator(prepared.network, foldings)
    except (TypeError, ValueError) as error:
        raise StepError(f"the foldings do not fit the network: {error}") from None
    out_dir = Path(out_dir)
    family = TARGETS[target].family
    # model, Verilog and manifest as one change; the reports of an older design go with it
    model = network_bytes(prepared.network, float_model=prepared.float_model)
    verilog, manifest_path, info = write_design(
        accelerator, out_dir, name=name, model=prepared.source, target=target, family=family,
        files={"model.npz": model}, before_commit=lambda digest: remove_stale_reports(
            out_dir, digest))
    progress(f"  wrote {verilog} and {manifest_path}: {info['cycles_per_image']} cycles per "
             f"image expected, about {info['estimate']['device_logic_cells']} "
             f"{_logic_unit(family)} estimated")
    return accelerator, _design_summary(out_dir, info, how)


def _design_summary(out_dir, info, how):
    """What :func:`generate` and :func:`load_design` report about a design."""
    out_dir = Path(out_dir)
    return {"verilog": str(out_dir / f"{info['top']}.v"), "manifest": str(out_dir / MANIFEST),
            "model": str(out_dir / "model.npz"), "folding_rule": how,
            "foldings": info["foldings"], "cycles_per_image": info["cycles_per_image"],
            "estimate": info["estimate"], "top": info["top"], "target": info["target"],
            "manifest_sha256": manifest_digest(out_dir)}


def manifest_digest(out_dir):
    """SHA-256 (hex) of ``out_dir``'s manifest: the identity of the design there (None when
    the folder holds no design)."""
    try:
        return hashlib.sha256((Path(out_dir) / MANIFEST).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def design_stamp(out_dir):
    """What a report records of the design it describes: ``{"manifest_sha256": ...}``."""
    return {"manifest_sha256": manifest_digest(out_dir)}


def stamp_line(out_dir):
    """The Markdown reports' last line, naming the design they describe."""
    return f"\n(design: manifest.json sha256 {manifest_digest(out_dir)})\n"


def _recorded_digest(path):
    """The manifest digest a report records (None: none readable)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return None
    if path.suffix == ".json":
        try:
            return json.loads(text)["design"]["manifest_sha256"]
        except (ValueError, KeyError, TypeError):
            return None
    found = re.findall(r"manifest\.json sha256 ([0-9a-f]{64})", text)
    return found[-1] if found else None


def remove_stale_reports(out_dir, digest):
    """Remove the reports in ``out_dir`` that do not record the design ``digest`` (a manifest
    SHA-256), so no report stands beside a design it does not describe."""
    for name in REPORTS:
        path = Path(out_dir) / name
        if path.exists() and _recorded_digest(path) != digest:
            path.unlink(missing_ok=True)


def design_problems(out_dir, *, reports=True):
    """What makes ``out_dir`` not one whole design with its own reports: a missing or
    unreadable manifest, a file whose hash differs from the manifest's record, and (with
    ``reports``) a report of another design. Empty when the folder is consistent."""
    out_dir = Path(out_dir)
    try:
        info = json.loads((out_dir / MANIFEST).read_text())
    except FileNotFoundError:
        return [f"no {MANIFEST}"]
    except (OSError, ValueError) as error:
        return [f"{MANIFEST} cannot be read: {error}"]
    problems = []
    if info.get("version") != MANIFEST_VERSION:
        problems.append(f"{MANIFEST} has version {info.get('version')!r}, this wrpn-rtl writes "
                        f"{MANIFEST_VERSION}")
    for name, digest in (info.get("files") or {}).items():
        try:
            actual = hashlib.sha256((out_dir / name).read_bytes()).hexdigest()
        except OSError:
            problems.append(f"{name} is missing")
            continue
        if actual != digest:
            problems.append(f"{name} differs from the file the manifest records")
    if not info.get("files"):
        problems.append(f"{MANIFEST} records no file hashes")
    if not reports:
        return problems
    digest = manifest_digest(out_dir)
    for name in REPORTS:
        if (out_dir / name).exists() and _recorded_digest(out_dir / name) != digest:
            problems.append(f"{name} describes another design")
    return problems


def load_design(out_dir):
    """The design a folder holds (``--design DIR``), as :func:`generate` returns it: checked
    against its manifest (every file's hash; the model and foldings must give the very same
    Verilog), with the reports of any other design removed.

    Returns
    -------
    (accelerator, summary dict)

    Raises
    ------
    StepError
        No design there, a file changed or missing, a manifest of another version, or a model
        that does not give the manifest's design.
    """
    from wrpn_rtl.compiler.export import to_verilog
    from wrpn_rtl.compiler.folding import read_foldings
    from wrpn_rtl.compiler.manifest import build_accelerator
    from wrpn_rtl.golden import ModelFileError, load_network
    out_dir = Path(out_dir)
    where = f"--design {str(out_dir)!r}"
    if not out_dir.is_dir():
        raise StepError(f"{where} must be a folder holding a design (wrpn-rtl generate --out "
                        f"DIR writes one), not {'a file' if out_dir.exists() else 'missing'}")
    problems = design_problems(out_dir, reports=False)    # other reports are removed below
    if problems:
        hint = ("wrpn-rtl generate --out DIR writes one" if problems == [f"no {MANIFEST}"]
                else "generate it again")
        raise StepError(f"{where} does not hold one whole design: {'; '.join(problems)} "
                        f"({hint})")
    info = json.loads((out_dir / MANIFEST).read_text())
    try:
        network = load_network(out_dir / "model.npz")
        accelerator = build_accelerator(network, read_foldings(out_dir / MANIFEST, network))
    except (ModelFileError, TypeError, ValueError) as error:
        raise StepError(f"{where}: its model and manifest do not give a design: {error}") \
            from None
    # the model and foldings must give this very Verilog (which also builds the accelerator
    # the simulation's expectations and localization come from)
    verilog = to_verilog(accelerator, name=info["top"]).encode()
    if hashlib.sha256(verilog).hexdigest() != info["files"].get(f"{info['top']}.v"):
        raise StepError(f"{where}: its model and foldings give other Verilog with this "
                        f"wrpn-rtl than the design holds (written by another version?): "
                        f"generate it again")
    remove_stale_reports(out_dir, manifest_digest(out_dir))
    return accelerator, _design_summary(out_dir, info, f"the design in {out_dir}")


def _default_budget_problem(network, target, budget, error, margin):
    """What to tell a user whose network does not fit the default budget of ``target`` (no
    ``--max-lc`` was given): the need, the budget and where it comes from, and the devices
    whose budget would hold the smallest design."""
    from wrpn_rtl.compiler.folding import choose_foldings
    from wrpn_rtl.synth.flow import TARGETS
    fits = []
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
