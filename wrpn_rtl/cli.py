"""The ``wrpn-rtl`` command line.

Subcommands
-----------
``generate``
    Verilog and ``manifest.json`` for a model file or the built-in default network, at the
    chosen bits and width; foldings from ``--folding FILE``, ``--target-cycles N``,
    ``--max-lc N``, or by default the fastest design that fits ``--target``.
``sim``
    Generate, then run ``--images N`` test images through the Verilog with cocotb
    (``--simulator icarus|verilator``): every output against the golden model, accuracy, and
    cycles per image measured against expected.
``synth``
    Generate, then synthesize for each ``--target`` (ice40-up5k, ice40-hx8k, ecp5-25k, ecp5-85k,
    asic): logic, flip-flops, BRAM, DSP, Fmax, images/s; JSON and a Markdown table.
``flow``
    generate -> golden check -> sim -> synth with one summary table. With no arguments: the
    built-in network on iCE40 UP5K and ECP5-25k (what ``make demo`` runs).
``train`` / ``golden``
    Train a WRPN digits CNN (and its full-precision baseline) / run a model's golden paths
    (the digits test set, or sample images with the extremes for any other input).
``bench mvu|window|conv|network|sim``
    Synthesis benchmarks of the building blocks against their baselines; ``network``: the
    default network folded per target, with the per-stage breakdown and the roofline line;
    ``sim``: simulated cycles per second on Icarus and Verilator against the per-cycle Python
    bench (the baseline).

Every subcommand spells the shared flags the same way. Progress goes to stderr; ``--json``
prints a machine-readable summary on stdout. Exit status is 0 only when everything asked for
succeeded (for ``sim``: zero mismatches).
"""
import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import NamedTuple

from wrpn_rtl import __version__

__all__ = ["main"]


class CommandError(Exception):
    """A user-facing failure: printed as ``wrpn-rtl: error: ...`` with exit status 1."""


def _progress(args, message):
    if not args.json:
        print(message, file=sys.stderr, flush=True)


# -- flags: one definition each, so every subcommand spells them the same way ---------------
def _flag_type(convert, rule, accepted):
    """An argparse type: ``convert`` the text, then require ``accepted(value)``; both failures
    say "must be <rule>, not <text>" (argparse prefixes the flag)."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rule}, not {text!r}") from None
        if not accepted(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, not {text}")
        return value
    return parse


_positive_int = _flag_type(int, "a positive integer", lambda value: value >= 1)
_non_negative_int = _flag_type(int, "a non-negative integer", lambda value: value >= 0)
_positive_float = _flag_type(float, "a positive finite number",
                             lambda value: value > 0 and math.isfinite(value))
_probability = _flag_type(float, "a probability in [0, 1)", lambda value: 0 <= value < 1)


_FLAGS = {
    "model": (["--model"], dict(type=Path, metavar="FILE",
                                help="model file (.npz; default: the built-in network)")),
    "wbits": (["--wbits"], dict(type=int, metavar="N", help="weight bits (default: the model's)")),
    "abits": (["--abits"], dict(type=int, metavar="N",
                                help="activation bits (default: the model's)")),
    "width": (["--width"], dict(type=_positive_float, metavar="X",
                                help="WRPN width multiplier (default: the model's)")),
    "train": (["--train"], dict(action="store_true",
                                help="re-train at the chosen bits and width (QAT on digits)")),
    "epochs": (["--epochs"], dict(type=_positive_int, default=40, metavar="N",
                                  help="training epochs (default 40)")),
    "seed": (["--seed"], dict(type=_non_negative_int, default=0, metavar="N",
                              help="seed (default 0)")),
    "out": (["--out"], dict(type=Path, metavar="DIR",
                            help="output folder (default: build/)")),
    "design": (["--design"], dict(type=Path, metavar="DIR",
                                  help="use the design in DIR as it is (a folder `generate` "
                                       "wrote) instead of generating one from network flags; "
                                       "reports go beside it")),
    "wave": (["--wave"], dict(nargs="?", const="failing", choices=["failing", "all"],
                              help="write the signals of the failing images (or all) to a "
                                   "wave file: VCD on Verilator, FST on Icarus")),
    "images": (["--images"], dict(type=_positive_int, default=20, metavar="N",
                                  help="test images simulated (default 20)")),
    "sim_jobs": (["--jobs"], dict(type=_positive_int, metavar="N",
                                  help="simulator processes side by side, each playing a run "
                                       "of consecutive images from its own reset (default: "
                                       "one per core; 1 with --wave)")),
    "inputs": (["--inputs"], dict(type=Path, metavar="FILE.npy",
                                  help="simulate these inputs (.npy: integer codes, or float values "
                                       "the model's input rule quantizes; (N, H, W, C) or an "
                                       "imported graph's own layout) instead of test images; "
                                       "--images caps how many")),
    "labels": (["--labels"], dict(type=Path, metavar="FILE.npy",
                                  help="the true labels of --inputs (N integers), for the "
                                       "accuracy")),
    "stall": (["--stall"], dict(type=_probability, default=0.0, metavar="P",
                                help="random stalls: each cycle the input idles and the output "
                                     "refuses with probability P (default 0)")),
    "simulator": (["--simulator"], dict(choices=["icarus", "verilator"], default="icarus",
                                        help="cocotb simulator (default icarus)")),
    "target": (["--target"], dict(action="append", metavar="NAME",
                                  help="ice40-up5k, ice40-hx8k, ecp5-25k, ecp5-85k or asic "
                                       "(repeatable)")),
    "freq": (["--freq"], dict(type=_positive_float, metavar="MHZ",
                              help="required Fmax: a lower one is a timing failure")),
    "seeds": (["--seeds"], dict(type=_positive_int, default=1, metavar="N",
                                help="place with nextpnr seeds 1..N, one per core at a time, "
                                     "and report the fastest (default 1)")),
    "folding": (["--folding"], dict(type=Path, metavar="FILE",
                                    help='foldings from a JSON file {"foldings": [{"pe": N, '
                                         '"simd": N}, ...]}')),
    "target_cycles": (["--target-cycles"], dict(type=_positive_int, metavar="N",
                                                help="balance the layers for N cycles per "
                                                     "image")),
    "max_lc": (["--max-lc"], dict(type=_positive_int, metavar="N",
                                  help="fastest design within N estimated logic cells")),
    "json": (["--json"], dict(action="store_true",
                              help="print a machine-readable summary on stdout")),
}

_NETWORK = ("model", "wbits", "abits", "width", "train", "epochs", "seed")
_DESIGN = ("folding", "target_cycles", "max_lc")


def _add(parser, *names):
    for name in names:
        flags, options = _FLAGS[name]
        parser.add_argument(*flags, dest=name, **options)


# -- the steps, with CLI errors ---------------------------------------------------------------
def _prepared(args):
    from wrpn_rtl.job.common import StepError
    from wrpn_rtl.job.network import prepare_network
    try:
        return prepare_network(args.model, wbits=args.wbits, abits=args.abits, width=args.width,
                               train=args.train, epochs=args.epochs, seed=args.seed,
                               progress=lambda text: _progress(args, text))
    except StepError as error:
        raise CommandError(str(error)) from None


def _golden(args, network):
    from wrpn_rtl.job.network import golden_summary
    return golden_summary(network, seed=args.seed, progress=lambda t: _progress(args, t))


def _targets(args, default):
    from wrpn_rtl.synth.flow import target_named
    targets = args.target or list(default)
    for target in targets:
        try:
            target_named(target, flag="--target")
        except ValueError as error:
            raise CommandError(str(error)) from None
    return targets


class _Design(NamedTuple):
    """One design a run builds: its folder, the targets it is synthesized for, the accelerator
    and :func:`~wrpn_rtl.job.design.generate`'s summary."""

    out: Path
    targets: list
    accelerator: object
    generated: dict


def _designs(args, prepared, targets):
    """The designs a run builds. With the default folding rule and several targets, one design
    per target, folded for that device, each in ``OUT/<target>/`` with its own manifest and
    reports (the top folder then holds no design of its own). Otherwise one design in ``OUT``
    for every target: chosen by ``--folding``, ``--target-cycles`` or ``--max-lc``, or for the
    only target."""
    from wrpn_rtl.job.design import REPORTS
    per_target = len(targets) > 1 and all(getattr(args, flag) is None for flag in _DESIGN)
    if not per_target:
        return [_Design(args.out, list(targets),
                        *_generate(args, prepared, args.out, _budget_target(targets)))]
    designs = [_Design(args.out / target, [target],
                       *_generate(args, prepared, args.out / target, target))
               for target in targets]
    # No design of an older run, nor its reports, beside the per-target designs' summary.
    for stale in ("manifest.json", "model.npz", "wrpn_accel.v") + REPORTS:
        (args.out / stale).unlink(missing_ok=True)
    return designs


def _budget_target(targets):
    """The target one design for all ``targets`` is folded for: the smallest FPGA (its logic
    sets the default budget and counts ``--max-lc``)."""
    from wrpn_rtl.synth.flow import TARGETS
    fpga = [t for t in targets if TARGETS[t].logic_capacity]
    return min(fpga, key=lambda t: TARGETS[t].logic_capacity) if fpga else targets[0]


def _generate(args, prepared, out, target):
    """Generate into ``out``, folded for ``target``."""
    from wrpn_rtl.job.common import StepError
    from wrpn_rtl.job.design import generate
    try:
        return generate(prepared, out, folding_file=args.folding,
                        target_cycles=args.target_cycles, max_lc=args.max_lc, target=target,
                        progress=lambda t: _progress(args, t))
    except StepError as error:
        raise CommandError(str(error)) from None


def _simulate(args, design):
    from wrpn_rtl.job.common import StepError, write_json
    from wrpn_rtl.job.design import design_stamp
    from wrpn_rtl.job.network import sample_images
    from wrpn_rtl.job.simulate import simulate
    from wrpn_rtl.toolchain import usable_cores
    if getattr(args, "inputs", None) is not None:
        from wrpn_rtl.job.network import read_inputs
        try:
            images, labels = read_inputs(design.accelerator.network, args.inputs, args.labels,
                                         flag="--inputs")
        except StepError as error:
            raise CommandError(str(error)) from None
        images, labels = images[:args.images], None if labels is None else labels[:args.images]
    else:
        if getattr(args, "labels", None) is not None:
            raise CommandError("--labels needs --inputs (the labels of those inputs)")
        images, labels = sample_images(design.accelerator.network, args.images, seed=args.seed)
    if len(images) < args.images:
        _progress(args, f"--images {args.images}: only {len(images)} "
                        f"{'inputs are in ' + str(args.inputs) if getattr(args, 'inputs', None) else 'test images exist'}; "
                        f"simulating those")
    try:
        summary = simulate(design.accelerator, design.generated["verilog"], images=images,
                           labels=labels, simulator=args.simulator,
                           work_dir=design.out / f"sim_{args.simulator}",
                           progress=lambda t: _progress(args, t), seed=args.seed,
                           stall=args.stall, wave=args.wave,
                           jobs=args.sim_jobs or usable_cores())
    except StepError as error:
        raise CommandError(str(error)) from None
    summary["design"] = design_stamp(design.out)
    write_json(design.out / "sim.json", summary)
    return summary


def _synthesize(args, designs):
    """Synthesize every design for its targets; ``synth.json`` / ``synth.md`` beside each
    design and, with several designs, all of them in ``OUT``. Returns
    ``(rows, failures, table)``."""
    from wrpn_rtl.job.common import StepError
    from wrpn_rtl.job.reports import synth_markdown
    from wrpn_rtl.job.synthesize import synthesize
    all_rows, all_failures = [], []
    for design in designs:
        rows, failures = [], []
        for target in design.targets:
            try:
                rows.append(synthesize(design.accelerator, design.out, target,
                                       generated=design.generated, freq_mhz=args.freq,
                                       seeds=args.seeds,
                                       progress=lambda t: _progress(args, t)))
            except StepError as error:
                _progress(args, f"  {error}")
                failures.append(str(error))
                continue
            if rows[-1].get("failure"):      # measured, but below --freq: figures kept
                _progress(args, f"  {rows[-1]['failure']}")
                failures.append(rows[-1]["failure"])
        _write_synth(design.out, rows, failures, [design])
        all_rows += rows
        all_failures += failures
    if len(designs) > 1:
        _write_synth(args.out, all_rows, all_failures, designs)
    return all_rows, all_failures, synth_markdown(all_rows, all_failures)


def _write_report(out, name, data, markdown, designs):
    """``name.json`` and ``name.md`` in ``out``, each naming the design(s) it describes: the
    manifest hash of the one design in ``out`` (so a report never outlives its design), or of
    each design in the subfolders."""
    from wrpn_rtl.job.common import write_report
    from wrpn_rtl.job.design import design_stamp, manifest_digest, stamp_line
    if len(designs) == 1 and designs[0].out == out:
        data, markdown = {"design": design_stamp(out), **data}, markdown + stamp_line(out)
    else:
        data = {"designs": {str(d.out): manifest_digest(d.out) for d in designs}, **data}
    write_report(out, name, data, markdown)


def _write_synth(out, rows, failures, designs):
    from wrpn_rtl.job.reports import synth_markdown
    _write_report(out, "synth", {"rows": rows, "failures": failures},
                  synth_markdown(rows, failures), designs)


# -- subcommands -------------------------------------------------------------------------------
def cmd_generate(args):
    from wrpn_rtl.job.network import golden_accuracy
    prepared = _prepared(args)
    target = _budget_target(_targets(args, ["ice40-up5k"]))
    _, summary = _generate(args, prepared, args.out, target)
    summary["source"] = prepared.source
    summary["test_accuracy"] = golden_accuracy(prepared.network)
    if not args.json:
        accuracy = summary["test_accuracy"]
        print(f"{summary['verilog']}: {summary['cycles_per_image']} cycles per image; "
              f"foldings {summary['folding_rule']}"
              + (f"; golden test accuracy {accuracy:.4f}" if accuracy is not None else ""))
    return summary


def cmd_sim(args):
    design = _given_design(args)
    if design is None:
        prepared = _prepared(args)
        target = _budget_target(_targets(args, ["ice40-up5k"]))
        design = _Design(args.out, [target], *_generate(args, prepared, args.out, target))
    summary = _simulate(args, design)
    summary["generate"] = design.generated
    if not args.json:
        print(_sim_text(summary))
    problem = _sim_problem(summary)
    if problem:
        raise CommandError(f"{problem} (details in {design.out / 'sim.json'})")
    return summary


def _given_design(args):
    """The design of ``--design DIR`` as it is (None without the flag); the flags that would
    make another design are refused beside it."""
    from wrpn_rtl.job.common import StepError
    from wrpn_rtl.job.design import load_design
    if args.design is None:
        return None
    given = [flag for flag, value in (("--model", args.model), ("--wbits", args.wbits),
                                      ("--abits", args.abits), ("--width", args.width),
                                      ("--train", args.train), ("--folding", args.folding),
                                      ("--target-cycles", args.target_cycles),
                                      ("--max-lc", args.max_lc), ("--out", args.out))
             if value not in (None, False)]
    if given:
        raise CommandError(f"--design uses the design in {str(args.design)!r} as it is: "
                           f"{', '.join(given)} cannot be given with it (its reports go "
                           f"beside it)")
    try:
        accelerator, generated = load_design(args.design)
    except StepError as error:
        raise CommandError(str(error)) from None
    _check_out(args.design, flag="--design")
    args.out = args.design
    _progress(args, f"using the design in {args.design}: {generated['cycles_per_image']} "
                    f"cycles per image expected (manifest sha256 "
                    f"{generated['manifest_sha256'][:12]})")
    targets = _targets(args, [generated["target"] or "ice40-up5k"])
    return _Design(args.design, targets, accelerator, generated)


def _sim_problem(summary):
    """What went wrong in a simulation summary, or None."""
    if not summary["mismatches"]:
        return None
    first = summary["mismatched_images"][0]["image"]
    text = (f"the RTL disagrees with the golden model on {summary['mismatches']} outputs of "
            f"{len(summary['mismatched_images'])} images, first image {first}")
    if summary.get("timed_out"):
        text += (f"; it timed out with {summary['words_received']} of "
                 f"{summary['words_expected']} output words")
    return text


def _sim_text(summary):
    text = (f"{summary['simulator']}: {summary['images']} images, {summary['mismatches']} "
            f"mismatching outputs")
    if summary.get("timed_out"):
        text += (f"\n  timeout: {summary['words_received']} of {summary['words_expected']} "
                 f"output words arrived; those were compared")
    for entry in summary["mismatched_images"][:10]:
        text += f"\n  image {entry['image']}: output fields {entry['fields']} differ"
        if entry.get("first_difference"):
            first = entry["first_difference"]
            text += (f" (field {first['field']}: expected {first['expected']}, got "
                     f"{first['actual']})")
        if entry.get("missing_words"):
            text += f", {entry['missing_words']} output words missing"
        if "rtl_label" in entry:
            text += f" (label {entry['rtl_label']}, golden {entry['golden_label']})"
    for entry in summary.get("by_layer", []):
        text += (f"\n  in Amaranth's simulator, stage {entry['stage']} (golden {entry['layer']}): "
                 f"{entry['mismatching_words']} of {entry['words']} words differ")
    if summary.get("by_layer") and not any(e["mismatching_words"] for e in summary["by_layer"]):
        text += ("\n  (Amaranth's simulator agrees with the golden model at every layer: the "
                 "difference is in the exported Verilog or the simulator)")
    if summary.get("wave"):
        text += f"\n  wave file: {summary['wave']}"
    if summary.get("accuracy") is not None:
        text += f"; accuracy {summary['accuracy']:.4f} (golden {summary['golden_accuracy']:.4f})"
    text += (f"; {summary['cycles_per_image']} cycles per image measured in steady state, "
             f"{summary['expected_cycles_per_image']} expected; latency "
             f"{summary['latency_cycles']} cycles")
    return text


def cmd_synth(args):
    given = _given_design(args)
    if given is not None:
        designs = [given]
    else:
        designs = _designs(args, _prepared(args), _targets(args, ["ice40-up5k"]))
    rows, failures, table = _synthesize(args, designs)
    if not args.json:
        print(table)
    if failures:
        raise CommandError("; ".join(failures))
    return {"designs": [_design_entry(design) for design in designs], "rows": rows}


def _design_entry(design, sim=None):
    entry = {"out": str(design.out), "targets": design.targets, "generate": design.generated}
    if sim is not None:
        entry["sim"] = sim
    return entry


def cmd_flow(args):
    from wrpn_rtl.job.reports import flow_markdown
    from wrpn_rtl.synth.flow import DEFAULT_TARGETS
    targets = _targets(args, DEFAULT_TARGETS)
    prepared = _prepared(args)
    golden = _golden(args, prepared.network)
    designs = _designs(args, prepared, targets)
    sims = [_simulate(args, design) for design in designs]
    rows, failures, table = _synthesize(args, designs)
    summary = {"source": prepared.source, "golden": golden,
               "designs": [_design_entry(design, sim) for design, sim in zip(designs, sims)],
               "synth": rows, "failures": failures}
    markdown = flow_markdown(prepared, summary)
    _write_report(args.out, "summary", summary, markdown, designs)
    if not args.json:
        print(markdown)
    problems = list(failures)
    for design, sim in zip(designs, sims):
        if _sim_problem(sim):
            problems.append(f"{design.out}: {_sim_problem(sim)}")
    if golden and golden["integer_vs_float_mismatches"]:
        problems.append("the integer and float golden paths disagree")
    if problems:
        raise CommandError("; ".join(problems))
    return summary


def cmd_train(args):
    from wrpn_rtl.golden import save_network
    from wrpn_rtl.golden.zoo import digits_cnn
    from wrpn_rtl.job.common import StepError
    from wrpn_rtl.job.network import train_digits
    try:
        spec = digits_cnn(width=2.0 if args.width is None else args.width,
                          weight_bits=2 if args.wbits is None else args.wbits,
                          act_bits=4 if args.abits is None else args.abits)
        network, float_model = train_digits(spec, epochs=args.epochs, seed=args.seed,
                                            progress=lambda t: _progress(args, t))
    except (TypeError, ValueError, StepError) as error:
        raise CommandError(str(error).replace("weight_bits", "--wbits")
                           .replace("out_bits", "--abits")) from None
    network.metadata["remake"] = _remake_record(spec, args)
    path = args.out / "model.npz"
    save_network(network, path, float_model=float_model)
    summary = {"model": str(path), **{k: network.metadata[k] for k in
                                       ("test_accuracy", "float_test_accuracy",
                                        "float_width1_test_accuracy")}}
    _progress(args, f"wrote {path}: test accuracy {summary['test_accuracy']:.4f} (full "
                    f"precision {summary['float_test_accuracy']:.4f}; at width 1 "
                    f"{summary['float_width1_test_accuracy']:.4f})")
    return summary


def _remake_record(spec, args):
    """What a model file records to be made again: the ``wrpn-rtl train`` arguments that
    made it and the versions of the packages its arithmetic ran on."""
    from importlib.metadata import version
    bits = {"--wbits": spec.layers[0].weight_bits,
            "--abits": next(layer.out_bits for layer in spec.layers
                            if getattr(layer, "out_bits", None))}
    argv = ["train"] + [str(v) for flag, value in (*bits.items(), ("--width", spec.width),
                                                   ("--epochs", args.epochs),
                                                   ("--seed", args.seed))
                        for v in (flag, value)]
    return {"command": argv, "packages": {name: version(name) for name in
                                          ("wrpn-rtl", "numpy", "scikit-learn")}}


def cmd_golden(args):
    from wrpn_rtl.golden.zoo import default_model_path
    from wrpn_rtl.job.common import StepError
    from wrpn_rtl.job.network import load_model_file
    try:
        network, _ = load_model_file(args.model or default_model_path(),
                                     progress=lambda t: _progress(args, t))
    except StepError as error:
        raise CommandError(str(error)) from None
    summary = _golden(args, network)
    if summary["integer_vs_float_mismatches"]:
        raise CommandError("the integer and float golden paths disagree")
    return summary


def cmd_import(args):
    from wrpn_rtl.interchange import InterchangeError
    from wrpn_rtl.interchange.convert import import_model_file
    try:
        return import_model_file(args.onnx_file, args.model_out, inputs=args.check,
                                 seed=args.seed, inputs_path=args.inputs,
                                 labels_path=args.labels,
                                 progress=lambda t: _progress(args, t))
    except InterchangeError as error:
        raise CommandError(str(error)) from None


def cmd_export(args):
    from wrpn_rtl.interchange import InterchangeError
    from wrpn_rtl.interchange.convert import export_model_file
    from wrpn_rtl.job.common import StepError
    try:
        return export_model_file(args.npz_file, args.model_out, inputs=args.check,
                                 seed=args.seed, progress=lambda t: _progress(args, t))
    except (InterchangeError, StepError) as error:
        raise CommandError(str(error)) from None


def cmd_bench(args):
    from wrpn_rtl.synth.bench import run_mvu_bench
    from wrpn_rtl.synth.bench_network import run_network_bench
    from wrpn_rtl.synth.bench_layers import run_layer_bench
    from wrpn_rtl.sim.bench import run_sim_bench
    from wrpn_rtl.toolchain import ToolMissing
    progress = lambda text: _progress(args, text)   # noqa: E731
    try:
        if args.what == "network":
            report = run_network_bench(args.out, quick=args.quick, progress=progress)
        elif args.what == "sim":
            report = run_sim_bench(args.out, quick=args.quick, progress=progress)
        elif args.what == "mvu":
            report = run_mvu_bench(args.out, quick=args.quick, progress=progress)
        else:
            report = run_layer_bench(args.what, args.out, quick=args.quick, progress=progress)
    except ToolMissing as error:
        raise CommandError(str(error)) from None
    if not args.json:
        print((args.out / f"{args.what}.md").read_text())
    return report


def _board_design(args):
    """The board of ``--board`` and its design: ``--design DIR`` as it is, or generated from
    the network flags folded for the board's device, leaving room for the host link
    (``build`` and ``infer`` alike, so the same flags give the same design); and the test
    images held on chip for the self-test."""
    from wrpn_rtl.board.top import board_named
    from wrpn_rtl.job.common import StepError
    from wrpn_rtl.job.design import generate
    from wrpn_rtl.job.network import sample_images
    try:
        board = board_named(args.board)
    except ValueError as error:
        raise CommandError(str(error)) from None
    args.target = [board.target]
    design = _given_design(args)
    if design is not None:
        codes, _ = sample_images(design.accelerator.network, args.selftest_images,
                                 seed=args.seed)
        return board, design, codes
    prepared = _prepared(args)
    codes, _ = sample_images(prepared.network, args.selftest_images, seed=args.seed)

    def fold(reserve=None):
        try:
            return generate(prepared, args.out, target=board.target, folding_file=args.folding,
                            target_cycles=args.target_cycles, max_lc=args.max_lc,
                            reserve=reserve, progress=lambda t: _progress(args, t))
        except StepError as error:
            raise CommandError(str(error)) from None
    accelerator, generated = fold()
    if args.folding is None and args.target_cycles is None and args.max_lc is None:
        # the default budget: fold again, leaving room for the link (its size follows the
        # network's input and output words, measured on the design just made)
        cells, rams = _link_logic(args, accelerator, board, codes)
        accelerator, generated = fold((cells, "the host link and UART", rams))
    return board, _Design(args.out, [board.target], accelerator, generated), codes


def _link_logic(args, accelerator, board, codes):
    """``(logic, block_rams)`` the board's host link and UART take beside ``accelerator``,
    measured."""
    import tempfile
    from wrpn_rtl.board.build import link_logic
    from wrpn_rtl.job.common import StepError
    try:
        with tempfile.TemporaryDirectory(prefix="wrpn-link-") as work:
            cells, rams = link_logic(accelerator, board, work, baud=args.baud,
                                     selftest_images=codes.reshape(len(codes), -1))
    except StepError as error:
        raise CommandError(str(error)) from None
    _progress(args, f"the host link and UART take {cells} of {board.name}'s logic and {rams} "
                    f"block RAMs (measured); folding the accelerator again for the rest")
    return cells, rams


def cmd_build(args):
    from wrpn_rtl.board.build import build_board
    from wrpn_rtl.job.common import StepError
    board, design, codes = _board_design(args)
    try:
        summary = build_board(design.accelerator, board, design.out / f"board_{board.name}",
                              baud=args.baud, selftest_images=codes.reshape(len(codes), -1),
                              progress=lambda text: _progress(args, text))
    except StepError as error:
        raise CommandError(str(error)) from None
    summary["selftest_images"] = len(codes)
    summary["program"] = _program(args, board, summary["bitstream"])
    markdown = (f"# {board.name}\n\n| what | value |\n|---|---|\n"
                f"| bitstream | {summary['bitstream']} |\n"
                f"| clock (PLL) | {summary['clock_mhz']} MHz (Fmax {summary['fmax_mhz']:.1f}) |\n"
                f"| cycles per image | {summary['cycles_per_image']} |\n"
                f"| images/s on chip | {summary['images_per_second']:,} |\n"
                f"| UART | {summary['baud']} baud, 8N1 |\n"
                f"| build | {summary['seconds']} s, {len(summary['passes'])} passes |\n")
    _write_report(design.out, "build", summary, markdown, [design])
    if not args.json:
        print(markdown)
        print(summary["program"])
    return summary


def cmd_infer(args):
    from wrpn_rtl.board.client import BoardClient, open_port
    from wrpn_rtl.board.infer import infer_markdown, run_infer
    from wrpn_rtl.job.network import read_inputs
    from wrpn_rtl.board.simulated import SimulatedBoard
    from wrpn_rtl.job.common import StepError
    from wrpn_rtl.job.network import sample_images
    if args.labels is not None and args.images_file is None:
        raise CommandError("--labels goes with an IMAGES file (the built-in test images come "
                           "with their labels)")
    board, design, selftest_codes = _board_design(args)
    network = design.accelerator.network
    try:
        if args.images_file is not None:
            codes, labels = read_inputs(network, args.images_file, args.labels)
        else:
            codes, labels = sample_images(network, args.images, seed=args.seed)
        built = _board_build_record(design.out, board)
        clock_hz = built["clock_mhz"] * 1e6 if built else None
        baud = built["baud"] if built else args.baud

        def over(path, timeout_s):
            port = open_port(path, baud=baud)
            try:
                return run_infer(BoardClient(port, timeout_s=args.timeout or timeout_s),
                                 design.accelerator, codes, labels=labels,
                                 selftest_codes=selftest_codes, clock_hz=clock_hz,
                                 progress=lambda t: _progress(args, t))
            finally:
                port.close()
        if args.port == "sim":
            with SimulatedBoard(design.accelerator, design.out / f"board_{board.name}_sim",
                                selftest_images=selftest_codes.reshape(len(selftest_codes), -1),
                                board=board, clock_hz=clock_hz, baud=baud,
                                progress=lambda t: _progress(args, t)) as simulated:
                summary = over(simulated.port, 60)
        else:
            summary = over(args.port, 2)
    except StepError as error:
        raise CommandError(str(error)) from None
    summary = {"port": args.port, "board": board.name, **summary}
    markdown = infer_markdown(summary)
    _write_report(design.out, "infer", summary, markdown, [design])
    if not args.json:
        print(markdown)
    problems = []
    if not summary["bit_exact"]:
        problems.append(f"{summary['mismatches']} of {summary['images']} images differ from "
                        f"golden (first: {summary['mismatched']})")
    if summary["selftest"].get("crc_matches_golden") is False:
        problems.append("the self-test's outputs differ from golden (was the board built "
                        "with other --selftest-images or --seed?)")
    if problems:
        raise CommandError("; ".join(problems))
    return summary


def _board_build_record(out, board):
    """What ``wrpn-rtl build`` recorded in ``out/build.json`` for ``board`` (clock, baud), or
    None when it did not build this board there."""
    import json
    try:
        record = json.loads((Path(out) / "build.json").read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("board") == board.name else None


def _program(args, board, bitstream):
    """Program the board with its usual programmer when asked and installed; otherwise the
    command to run."""
    import shutil
    import subprocess
    command = [part.format(bitstream=bitstream) for part in board.programmer]
    if not args.program:
        return "to program the board: " + " ".join(command)
    if shutil.which(command[0]) is None:
        return (f"{command[0]} is not installed; install it and run: " + " ".join(command))
    done = subprocess.run(command)
    if done.returncode != 0:
        raise CommandError(f"{' '.join(command)} failed with exit status {done.returncode}")
    return "programmed: " + " ".join(command)


def cmd_sweep(args):
    from wrpn_rtl.synth.sweep import QUICK, SweepConfig, run_sweep
    from wrpn_rtl.synth.sweep_report import sweep_markdown, write_sweep_reports
    if args.jobs is not None and args.scheduler:
        raise CommandError("give --jobs or --scheduler, not both: with --scheduler the "
                           "cluster's workers run the steps")
    chosen = dict(QUICK) if args.quick else {}
    given = dict(widths=args.widths, bits=args.bits, seeds=args.seeds, epochs=args.sweep_epochs,
                 targets=tuple(args.target) if args.target else None, images=args.sweep_images,
                 asic_cycles=args.asic_cycles, fill=args.fill)
    chosen.update({name: value for name, value in given.items() if value is not None})
    if args.model is not None:
        chosen.update(model=args.model, seeds=1, widths=_model_width(args))
    try:
        config = SweepConfig(**chosen)
        results = run_sweep(config, args.cache or args.out / "cache",
                            jobs=args.jobs or os.cpu_count() or 1, scheduler=args.scheduler,
                            progress=lambda text: _progress(args, text))
    except ValueError as error:
        raise CommandError(str(error).replace("targets must", "--target must")) from None
    write_sweep_reports(args.out, results)
    if not args.json:
        print(sweep_markdown(results))
        print(f"wrote {args.out / 'sweep.md'}, sweep.json, sweep.csv and the plots")
    problems = _sweep_problems(results)
    if problems:
        raise CommandError("; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)"
                                                      if len(problems) > 5 else ""))
    return results


def _model_width(args):
    """``--model``'s width, the only one its float parameters have (``--widths`` may only
    repeat it)."""
    from wrpn_rtl.golden import ModelFileError, load_float_model
    if Path(args.model).suffix.lower() == ".onnx":
        raise CommandError(f"--model {str(args.model)!r} is a QONNX model: the sweep re-quantizes "
                           f"float parameters at other bits, and an imported model is already "
                           f"quantized (its bits are the exporting framework's); give a model "
                           f"file from wrpn-rtl train")
    try:
        float_model = load_float_model(args.model)
    except ModelFileError as error:
        raise CommandError(str(error)) from None
    if float_model is None:
        raise CommandError(f"--model {str(args.model)!r} keeps no float parameters to "
                           f"re-quantize (model files from wrpn-rtl train keep them)")
    width = float(float_model[0].width)
    if args.widths is not None and args.widths != (width,):
        raise CommandError(f"--widths must be the model's own width {width:g} with --model, "
                           f"not {','.join(f'{w:g}' for w in args.widths)}: another width "
                           f"needs training (leave --model out to train the digits CNN)")
    return (width,)


def _sweep_problems(results):
    """What makes a sweep's exit status 1: a step that crashed, RTL that disagrees with the
    golden model, golden paths that disagree. A design that does not fit a device is a
    result, not a problem."""
    problems = [f"{entry['label']}: {entry['failure']}" for entry in results["steps"]["list"]
                if (entry["failure"] or "").startswith("crashed:")]
    for point in results["points"]:
        if point["integer_vs_float_mismatches"]:
            problems.append(f"{point['label']}: the integer and float golden paths disagree")
        for target, entry in point["targets"].items():
            if entry["check"] is not None and not entry["check"]["bit_exact"]:
                problems.append(f"{point['label']} on {target}: {entry['failure']}")
    return problems


def build_parser():
    parser = argparse.ArgumentParser(
        prog="wrpn-rtl",
        description="Streaming RTL for wide reduced-precision neural networks (WRPN), "
                    "verified bit-exact against a NumPy golden model.")
    parser.add_argument("--version", action="version", version=f"wrpn-rtl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = [
        ("generate", cmd_generate, "Verilog + manifest.json for a network",
         _NETWORK + _DESIGN + ("target", "out", "json")),
        ("sim", cmd_sim, "generate (or take --design DIR), then simulate test images with "
                         "cocotb against golden",
         _NETWORK + _DESIGN + ("design", "images", "inputs", "labels", "stall", "simulator",
                                "sim_jobs", "wave", "target", "out", "json")),
        ("synth", cmd_synth, "generate (or take --design DIR), then synthesize (Yosys, "
                             "nextpnr, ASIC estimate)",
         _NETWORK + _DESIGN + ("design", "target", "freq", "seeds", "out", "json")),
        ("flow", cmd_flow, "generate -> golden -> sim -> synth; no arguments: the main job",
         _NETWORK + _DESIGN + ("images", "stall", "simulator", "sim_jobs", "wave", "target",
                                "freq", "seeds", "out", "json")),
        ("train", cmd_train, "train a WRPN digits CNN and write DIR/model.npz",
         ("wbits", "abits", "width", "epochs", "seed", "out", "json")),
        ("golden", cmd_golden, "a model's golden integer and float paths: on the digits test "
                               "set (with accuracy), or on sample images for any other input",
         ("model", "seed", "json")),
    ]
    for name, run, text, flags in commands:
        command = sub.add_parser(name, help=text, description=text)
        _add(command, *flags)
        command.set_defaults(run=run)
    _add_interchange(sub)
    _add_sweep(sub)
    _add_build(sub)
    _add_infer(sub)
    bench = sub.add_parser("bench", help="synthesis benchmarks against baselines")
    bench.add_argument("what", choices=["mvu", "window", "conv", "network", "sim"],
                       help="what to benchmark (sim: simulated cycles per second)")
    _add(bench, "out", "json")
    bench.add_argument("--quick", action="store_true",
                       help="a small subset (mvu: PE=1, w/a 1/1 2/2 4/4; window/conv: two "
                            "layers on iCE40; sim: few images)")
    bench.set_defaults(run=cmd_bench)
    return parser


def _add_interchange(sub):
    check = dict(type=_non_negative_int, metavar="N",
                 help="inputs on which the golden network is compared with the graph executed "
                      "by qonnx, tensor by tensor (default: all of --inputs, else 64: the "
                      "digits test set first for an 8x8x1 input, then random inputs over the "
                      "full code range; 0: no check)")
    text = ("a QONNX model (Brevitas export_qonnx, QKeras via qonnx) -> a wrpn-rtl model file, "
            "checked against the graph executed by qonnx")
    command = sub.add_parser("import", help=text, description=text)
    command.add_argument("onnx_file", type=Path, metavar="MODEL.onnx")
    command.add_argument("--out", dest="model_out", type=Path, required=True,
                         metavar="FILE.npz", help="the model file to write")
    command.add_argument("--check", **check)
    command.add_argument("--inputs", type=Path, metavar="FILE.npy",
                         help="check on these float inputs (the graph's input layout, e.g. "
                              "(N, C, H, W)) instead; --check N caps how many")
    command.add_argument("--labels", type=Path, metavar="FILE.npy",
                         help="their true labels: the golden accuracy is reported beside the "
                              "one the exporting script recorded")
    _add(command, "seed", "json")
    command.set_defaults(run=cmd_import)
    text = "a wrpn-rtl model file -> QONNX (qonnx, Netron, onnxruntime, FINN)"
    command = sub.add_parser("export", help=text, description=text)
    command.add_argument("npz_file", type=Path, metavar="MODEL.npz",
                         help="a model file (wrpn-rtl train, import)")
    command.add_argument("--out", dest="model_out", type=Path, required=True,
                         metavar="FILE.onnx", help="the QONNX file to write")
    command.add_argument("--check", **check)
    _add(command, "seed", "json")
    command.set_defaults(run=cmd_export)


def _add_build(sub):
    from wrpn_rtl.board.top import BOARDS
    text = ("a bitstream for a board: the design folded for its device, a UART host link and "
            "a PLL at the fastest clock that meets timing")
    build = sub.add_parser("build", help=text, description=text)
    build.add_argument("--board", required=True, metavar="NAME",
                       help=f"{', '.join(BOARDS)}")
    _add(build, *_NETWORK, *_DESIGN, "design", "out", "json")
    build.add_argument("--baud", type=_positive_int, default=115200, metavar="N",
                       help="the UART's rate (default 115200)")
    build.add_argument("--selftest-images", type=_positive_int, default=32, metavar="N",
                       help="test images held on chip for the self-test (default 32)")
    build.add_argument("--program", action="store_true",
                       help="program the board (iceprog / openFPGALoader) when installed")
    build.set_defaults(run=cmd_build)


def _add_infer(sub):
    from wrpn_rtl.board.top import BOARDS
    text = ("images through the design on a board (or the simulated board: --port sim), "
            "every output checked against golden; labels, accuracy, images/s")
    infer = sub.add_parser("infer", help=text, description=text)
    infer.add_argument("images_file", nargs="?", type=Path, metavar="IMAGES.npy",
                       help="integer input codes (N, H, W, C); default: --images test images")
    infer.add_argument("--port", required=True, metavar="PORT",
                       help="the board's serial port (e.g. /dev/ttyUSB1), or sim: the whole "
                            "board design (pins, PLL stand-in, UART) in Verilator behind a "
                            "pseudo-terminal")
    infer.add_argument("--board", default="icebreaker", metavar="NAME",
                       help=f"{', '.join(BOARDS)} (default icebreaker; sets the folding as "
                            f"build does)")
    infer.add_argument("--labels", type=Path, metavar="FILE.npy",
                       help="true labels of IMAGES.npy, for the accuracy")
    _add(infer, *_NETWORK, *_DESIGN, "design", "out", "images", "json")
    infer.add_argument("--baud", type=_positive_int, default=115200, metavar="N",
                       help="the UART's rate when build.json does not say (default 115200)")
    infer.add_argument("--selftest-images", type=_positive_int, default=32, metavar="N",
                       help="test images the board holds for the self-test, as built "
                            "(default 32)")
    infer.add_argument("--timeout", type=_positive_float, metavar="S",
                       help="seconds to wait for each answer (default 2; 60 with sim)")
    infer.set_defaults(run=cmd_infer)


def _add_sweep(sub):
    from wrpn_rtl.synth.sweep import (DEFAULT_ASIC_CYCLES, DEFAULT_BITS, DEFAULT_FILL,
                                      DEFAULT_TARGETS, DEFAULT_WIDTHS, QUICK, parse_bits,
                                      parse_fill, parse_widths)
    text = ("width x precision: train (several seeds), build the fastest design per target, "
            "synthesize, check on Verilator; accuracy grid, hardware table, plots")
    sweep = sub.add_parser("sweep", help=text, description=text,
                           epilog=f"default targets: {', '.join(DEFAULT_TARGETS)}")

    def listed(parse):
        def convert(value):
            try:
                return parse(value)
            except ValueError as error:
                raise argparse.ArgumentTypeError(str(error)) from None
        return convert
    sweep.add_argument("--widths", type=listed(parse_widths), metavar="LIST",
                       help="width multipliers (default "
                            f"{','.join(f'{w:g}' for w in DEFAULT_WIDTHS)})")
    sweep.add_argument("--bits", type=listed(parse_bits), metavar="LIST",
                       help="weight/activation bits (default "
                            f"{','.join(f'{w}/{a}' for w, a in DEFAULT_BITS)})")
    sweep.add_argument("--seeds", type=_positive_int, metavar="N",
                       help="training seeds per point (default 3)")
    sweep.add_argument("--epochs", dest="sweep_epochs", type=_positive_int, metavar="N",
                       help="training epochs (default 40)")
    _add(sweep, "target")
    sweep.add_argument("--model", type=Path, metavar="FILE",
                       help="sweep the bits of this model file's float parameters by "
                            "re-quantizing (no training; its own width)")
    sweep.add_argument("--images", dest="sweep_images", type=_positive_int, metavar="N",
                       help="test images each design runs on Verilator (default 4)")
    sweep.add_argument("--asic-cycles", type=_positive_int, metavar="N",
                       help=f"cycles per image of the asic designs (default "
                            f"{DEFAULT_ASIC_CYCLES})")
    sweep.add_argument("--fill", type=listed(parse_fill), metavar="LIST",
                       help="share of each FPGA family's logic the designs are planned for "
                            "(default " + ",".join(f"{family}={share:g}" for family, share
                                                   in DEFAULT_FILL) + ")")
    sweep.add_argument("--jobs", type=_positive_int, metavar="N",
                       help="local worker processes (default: all cores)")
    sweep.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the steps on this Dask distributed scheduler "
                            "(e.g. tcp://host:8786) instead")
    sweep.add_argument("--cache", type=Path, metavar="DIR",
                       help="the step cache (default OUT/cache)")
    sweep.add_argument("--quick", action="store_true",
                       help=f"a smoke run: widths {QUICK['widths']}, bits {QUICK['bits']}, "
                            f"{QUICK['seeds']} seed, {QUICK['epochs']} epochs, "
                            f"{QUICK['targets'][0]}")
    _add(sweep, "out", "json")
    sweep.set_defaults(run=cmd_sweep)


def _check_out(path, flag="--out"):
    """``--out`` must be a folder, or a path where one can be made and written."""
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                what = "is a file" if parent == path else f"lies under the file {str(parent)!r}"
                raise CommandError(f"{flag} must be a folder, not {str(path)!r}: it {what}")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise CommandError(f"{flag} must be a folder that can be written, not "
                                   f"{str(path)!r}: {str(parent)!r} is not writable")
            return


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if getattr(args, "design", None) is None and hasattr(args, "out") and args.out is None:
            args.out = Path("build")
        if getattr(args, "out", None) is not None:
            _check_out(args.out)
        summary = args.run(args)
    except CommandError as error:
        print(f"wrpn-rtl: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("wrpn-rtl: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
