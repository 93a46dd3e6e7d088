# amaranth: UnusedElaboratable=no
# (accelerators are built as cost models and exported; Amaranth's simulator never runs here.)
"""The steps of the main job, as plain functions (the CLI prints; tests call them directly).

``prepare_network`` (a model file or the built-in default, re-quantized or re-trained at the
chosen bits and width) -> ``generate`` (foldings, Verilog, ``manifest.json``) -> ``simulate``
(cocotb on Icarus or Verilator, every output against the golden model) -> ``synthesize``
(Yosys + nextpnr or the gate-level ASIC estimate). Each raises :class:`StepError` with a message
meant for the user; each returns a JSON-ready dict.
"""
from dataclasses import dataclass, replace
import json
from pathlib import Path
import time

import numpy as np

__all__ = ["StepError", "Prepared", "prepare_network", "train_digits", "sample_inputs",
           "sample_images", "golden_check",
           "generate", "simulate", "localize", "synthesize", "synth_markdown", "write_json",
           "DEFAULT_TARGETS", "FIT_MARGIN"]

#: ``flow`` with no arguments: the default network on these devices.
DEFAULT_TARGETS = ("ice40-up5k", "ecp5-25k")
#: Images the golden check runs for a model without labelled data (the digits have 360).
GOLDEN_IMAGES = 256
#: Share of the smallest device's logic cells the automatic folding may plan for (the
#: estimate is first-order; the rest is headroom for placement and estimate error).
FIT_MARGIN = 0.80


class StepError(Exception):
    """A step failed for a reason the user can act on; the message says which and why."""


def _quiet(message):
    pass


@dataclass
class Prepared:
    """The network a run works on, and where it came from."""

    network: object              # QuantizedNetwork
    source: str                  # "built-in default", a path, or "re-trained ..."
    weight_bits: object
    act_bits: object
    width: object
    float_model: object = None   # (NetworkSpec, [LinearParams]) when known


def _model_bits(network):
    from .golden.layers import QuantConv2d
    linear = [l for l in network.layers if isinstance(l, QuantConv2d)]
    weights = {l.weight_bits for l in linear}
    acts = {l.out_bits for l in linear if not l.is_logits}
    return (weights.pop() if len(weights) == 1 else None,
            acts.pop() if len(acts) == 1 else None)


def prepare_network(model=None, *, wbits=None, abits=None, width=None, train=False, epochs=40,
                    seed=0, progress=_quiet):
    """Load ``model`` (default: the built-in network) at the asked precision and width.

    Bits that differ from the model's are reached by re-quantizing its float parameters
    (stored in model files written by ``wrpn-rtl train``), or by re-training when ``train``;
    a different width always needs ``train``.

    Raises
    ------
    StepError
        An unreadable model file, or a change the model cannot make without re-training.
    """
    from .golden import ModelFileError, load_float_model, load_network, quantize_network
    from .golden.network import with_bits
    from .golden.zoo import default_model_path
    path = Path(model) if model is not None else default_model_path()
    source = str(path) if model is not None else "built-in default (digits CNN)"
    try:
        network = load_network(path)
        float_model = load_float_model(path)
    except ModelFileError as error:
        raise StepError(str(error)) from None
    model_w, model_a = _model_bits(network)
    model_width = float_model[0].width if float_model else network.metadata.get("width")
    want_w = model_w if wbits is None else wbits
    want_a = model_a if abits is None else abits
    want_width = model_width if width is None else width
    if train:
        if float_model is None:
            raise StepError(f"--train needs the float network the model came from; "
                            f"{source} has none (write it with wrpn-rtl train)")
        try:
            spec = with_bits(replace(float_model[0], width=want_width), weight_bits=want_w,
                             act_bits=want_a)
        except (TypeError, ValueError) as error:
            raise StepError(str(error)) from None
        network, float_model = train_digits(spec, epochs=epochs, seed=seed, progress=progress)
        return Prepared(network, f"re-trained from {source}", want_w, want_a, want_width,
                        float_model)
    if width is not None and width != model_width:
        raise StepError(f"--width {width:g} differs from the model's width "
                        f"{model_width if model_width is not None else 'unknown'}: a different "
                        f"width needs re-training; add --train")
    if (want_w, want_a) != (model_w, model_a):
        if float_model is None:
            raise StepError(f"--wbits/--abits {want_w}/{want_a} differ from the model's "
                            f"{model_w}/{model_a} and {source} keeps no float parameters to "
                            f"re-quantize from; add --train")
        try:
            spec = with_bits(float_model[0], weight_bits=want_w, act_bits=want_a)
            network = quantize_network(spec, float_model[1], metadata=dict(
                network.metadata, wbits=want_w, abits=want_a, requantized_from=[model_w,
                                                                                  model_a]))
        except (TypeError, ValueError) as error:
            raise StepError(f"cannot re-quantize to w{want_w}a{want_a}: {error}") from None
        float_model = (spec, float_model[1])
        source = f"{source}, re-quantized to w{want_w}a{want_a} (not re-trained)"
    return Prepared(network, source, want_w, want_a, want_width, float_model)


def train_digits(spec, *, epochs=40, seed=0, progress=_quiet):
    """QAT-train ``spec`` on the bundled digits; also the full-precision baseline.

    Returns
    -------
    (QuantizedNetwork, (NetworkSpec, [LinearParams]))
        The network's metadata holds ``test_accuracy``, ``float_test_accuracy`` (the same
        network in full precision) and ``float_width1_test_accuracy`` (full precision at width
        1: the baseline WRPN widens).
    """
    from .golden.train import TrainConfig, accuracy, float_accuracy, load_digits_split, train
    if tuple(spec.input_shape) != (8, 8, 1):
        raise StepError(f"training uses the 8x8 digits: the network input must be (8, 8, 1), "
                        f"not {tuple(spec.input_shape)}")
    x_train, y_train, x_test, y_test = load_digits_split()
    started = time.monotonic()

    def report(epoch, loss, acc):
        if (epoch + 1) % 10 == 0 or epoch == 0:
            progress(f"  epoch {epoch + 1:3d}/{epochs}: loss {loss:.3f}, "
                     f"train accuracy {acc:.3f}")

    weights, acts = _spec_bits(spec)
    progress(f"training the w{weights}a{acts} x{spec.width:g} WRPN digits CNN "
             f"({len(x_train)} train / {len(x_test)} test images, seed {seed})")
    result = train(spec, x_train, y_train, TrainConfig(epochs=epochs, seed=seed),
                   progress=report)
    network = result.network
    network.metadata.update(name="digits_cnn", wbits=weights, abits=acts,
                            test_accuracy=accuracy(network, x_test, y_test))
    progress(f"  trained in {time.monotonic() - started:.1f} s; training the full-precision "
             f"baseline")
    baseline = train(spec, x_train, y_train, TrainConfig(epochs=epochs, seed=seed,
                                                         float_model=True, learning_rate=0.01))
    network.metadata["float_test_accuracy"] = float_accuracy(spec, baseline.params, x_test,
                                                             y_test)
    narrow = replace(spec, width=1.0)
    if spec.width != 1.0:
        progress("  training the full-precision baseline at width 1")
        baseline = train(narrow, x_train, y_train, TrainConfig(
            epochs=epochs, seed=seed, float_model=True, learning_rate=0.01))
    network.metadata["float_width1_test_accuracy"] = float_accuracy(narrow, baseline.params,
                                                                    x_test, y_test)
    return network, (spec, result.params)


def _spec_bits(spec):
    from .golden.network import Conv, Dense
    linear = [l for l in spec.layers if isinstance(l, (Conv, Dense))]
    return linear[0].weight_bits, next((l.out_bits for l in linear if l.out_bits), None)


def sample_inputs(network, count, *, seed=0):
    """``count`` float images in [0, 1] for ``network``, and their labels.

    The digits test split for an 8x8x1 network (labels known). Otherwise (labels None) the
    extremes first - an all-zero and an all-maximum image - then seeded random images on the
    input code grid (``code / (2**input_bits - 1)``, so quantizing gives the codes back).
    """
    if network.input_shape == (8, 8, 1):
        from .golden.train import load_digits_split
        _, _, x_test, y_test = load_digits_split()
        count = min(count, len(x_test))
        return x_test[:count], y_test[:count]
    from .golden.quant import activation_levels
    top = activation_levels(network.input_bits)
    codes = np.random.default_rng(seed).integers(0, top + 1, (count,) + network.input_shape)
    codes[:1] = 0
    codes[1:2] = top
    return codes / top, None


def sample_images(network, count, *, seed=0):
    """:func:`sample_inputs` as input codes: ``(codes, labels)``."""
    images, labels = sample_inputs(network, count, seed=seed)
    return network.quantize_input(images), labels


def golden_check(network, images, labels=None):
    """Both golden paths on float ``images``: accuracy (None without labels) and mismatches
    between the integer and the float path per layer (all must be 0)."""
    from .golden import execute, execute_float
    ref = execute(network, network.quantize_input(images))
    flt = execute_float(network, images)
    by_layer = {}
    for layer, a, b in zip(network.layers, ref.outputs, flt.outputs):
        if getattr(layer, "is_logits", False):
            a = a * layer.output.scale
        by_layer[layer.name] = int(np.count_nonzero(a != b))
    class_mismatches = int(np.count_nonzero(ref.classes != flt.classes))

    def accuracy(classes):
        return None if labels is None else float((classes == labels).mean())
    return {"images": int(len(images)), "labelled": labels is not None,
            "accuracy": accuracy(ref.classes), "float_path_accuracy": accuracy(flt.classes),
            "full_precision_accuracy": network.metadata.get("float_test_accuracy"),
            "full_precision_width1_accuracy": network.metadata.get(
                "float_width1_test_accuracy"),
            "mismatches_by_layer": by_layer, "class_mismatches": class_mismatches,
            "integer_vs_float_mismatches": sum(by_layer.values()) + class_mismatches}


def choose(network, *, folding_file=None, target_cycles=None, max_lc=None,
           target="ice40-up5k"):
    """The foldings of a run and how they were chosen (a file, a cycle budget, a logic budget,
    or by default the fastest design within :data:`FIT_MARGIN` of ``target``'s logic)."""
    from .compiler import choose_foldings, read_foldings
    from .synth.flow import TARGETS
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
                return (choose_foldings(network, max_logic_cells=10 ** 9),
                        "fastest design (no device limit)")
            max_lc = int(capacity * FIT_MARGIN)
            how = f"fastest design within {FIT_MARGIN:.0%} of {target}'s {capacity} logic cells"
        else:
            how = f"fastest design within {max_lc} logic cells (estimated)"
        rams = TARGETS[target].ram_capacity
        return choose_foldings(network, max_logic_cells=max_lc, max_block_rams=rams), how
    except ValueError as error:
        raise StepError(str(error).replace("target_cycles", "--target-cycles")
                        .replace("max_logic_cells", "--max-lc")) from None


def generate(prepared, out_dir, *, folding_file=None, target_cycles=None, max_lc=None,
             target="ice40-up5k", name="wrpn_accel", progress=_quiet):
    """Choose foldings, build the accelerator, write ``<name>.v`` and ``manifest.json``.

    Returns
    -------
    (accelerator, summary dict)
    """
    from .compiler import build_accelerator, write_design
    foldings, how = choose(prepared.network, folding_file=folding_file,
                           target_cycles=target_cycles, max_lc=max_lc, target=target)
    progress(f"generating the accelerator: foldings {how}: "
             + ", ".join(f"PE {f.pe} x SIMD {f.simd}" for f in foldings))
    try:
        accelerator = build_accelerator(prepared.network, foldings)
    except (TypeError, ValueError) as error:
        raise StepError(f"the foldings do not fit the network: {error}") from None
    verilog, manifest_path, info = write_design(accelerator, out_dir, name=name,
                                                model=prepared.source)
    progress(f"  wrote {verilog} and {manifest_path}: {info['cycles_per_image']} cycles per "
             f"image expected, about {info['estimate']['device_logic_cells']} logic cells "
             f"estimated")
    return accelerator, {"verilog": str(verilog), "manifest": str(manifest_path),
                         "folding_rule": how, "foldings": info["foldings"],
                         "cycles_per_image": info["cycles_per_image"],
                         "estimate": info["estimate"], "top": name}


def simulate(accelerator, verilog, *, images, labels, simulator, work_dir, progress=_quiet,
             stall=0.0, seed=0, max_cycles=None):
    """Run ``images`` through the generated Verilog with cocotb and compare every output word
    with the golden model. ``stall``: probability of an idle input / a refused output each
    cycle; ``max_cycles``: the simulation's limit (default: ample for the expected cycles).

    Returns
    -------
    dict
        ``mismatched_images`` (per image: which logits / codes differ, how many output words
        never arrived, and the labels), ``mismatches`` (count of differing fields, missing
        ones included), ``timed_out`` with ``words_received`` / ``words_expected`` (a run that
        hangs still compares every word that arrived), ``accuracy`` (RTL labels against the true
        labels, when known), ``golden_accuracy``, ``cycles_per_image`` (measured in steady
        state: from the first image's last output word to the last image's, per image),
        ``latency_cycles`` (first input to the first image's last output word) and
        ``expected_cycles_per_image``.
    """
    from .compiler import expected_outputs, output_fields
    from .golden import execute
    from .sim.runner import SimulationFailed, run_stream_bench
    from .tools import ToolMissing
    count = len(images)
    trace = execute(accelerator.network, images)
    expected = expected_outputs(accelerator, trace.outputs[-1])
    classify = accelerator.classifies
    progress(f"simulating {count} images through {Path(verilog).name} on {simulator} (cocotb)"
             + (f", random stalls on both streams with probability {stall:g}" if stall else ""))
    if max_cycles is None:
        max_cycles = int((count + 2) * accelerator.cycles_per_image * (2 + 8 * stall) + 5000)
    started = time.monotonic()
    try:
        result = run_stream_bench(
            verilog, toplevel=Path(verilog).stem, inputs=np.asarray(images).reshape(-1, 1),
            expected=expected, in_width=accelerator.network.input_bits,
            out_fields=output_fields(accelerator), simulator=simulator, build_dir=work_dir,
            stall_in=stall, stall_out=stall, seed=seed, check=False, max_cycles=max_cycles)
    except ToolMissing as error:
        raise StepError(str(error)) from None
    except (SimulationFailed, ValueError) as error:
        raise StepError(f"simulation failed: {error}") from None
    per_word = len(expected) // count
    mismatched, fields = [], 0
    for index in range(count):
        got = result.outputs[index * per_word:(index + 1) * per_word]
        want = expected[index * per_word:(index + 1) * per_word]
        if got != want:
            diff = [i for i, (a, b) in enumerate(zip(np.ravel(got), np.ravel(want))) if a != b]
            missing = per_word - len(got)
            fields += len(diff) + missing * len(want[0])
            entry = {"image": index, "fields": diff, "missing_words": missing}
            if classify and got:
                entry.update(rtl_label=got[0][-1], golden_label=want[0][-1])
            mismatched.append(entry)
    complete = len(result.outputs) // per_word
    summary = {"simulator": simulator, "images": count, "mismatches": fields,
               "mismatched_images": mismatched, "timed_out": result.timed_out,
               "words_received": len(result.outputs), "words_expected": len(expected),
               "cycles_per_image": (_steady_cycles(result.output_cycles, complete, per_word)
                                    if complete else None),
               "latency_cycles": result.output_cycles[per_word - 1] if complete else None,
               "expected_cycles_per_image": accelerator.cycles_per_image,
               "seconds": round(time.monotonic() - started, 1)}
    if result.timed_out:
        progress(f"  timeout: {len(result.outputs)} of {len(expected)} output words arrived "
                 f"within {max_cycles} cycles; comparing those")
    if mismatched:
        last = mismatched[0]["image"] + 1
        progress(f"  localizing the first mismatch: every stage of images 0..{last - 1} in "
                 f"Amaranth's simulator against the golden layers")
        summary["by_layer"] = localize(accelerator, images[:last])
    if classify:
        rtl_labels = np.array([word[-1] for word in result.outputs])
        summary["golden_accuracy"] = (None if labels is None else
                                      float((trace.classes == labels).mean()))
        summary["accuracy"] = (None if labels is None or result.timed_out else
                               float((rtl_labels == np.asarray(labels)).mean()))
    progress(f"  {fields} mismatching fields in {len(mismatched)} of {count} images; "
             f"{summary['cycles_per_image']} cycles per image measured in steady state "
             f"({summary['expected_cycles_per_image']} expected"
             + (", with stalls" if stall else "") + f"), latency "
             f"{summary['latency_cycles']}; {summary['seconds']} s")
    return summary


def localize(accelerator, images, trace=None):
    """Each stage's output stream, simulated in Amaranth's simulator, against the golden
    output of the layer it computes (``trace``: ``golden.execute`` of ``images``, by default
    computed here).

    Returns
    -------
    list of dict
        In stream order: ``stage``, ``layer``, ``words`` compared, ``mismatching_words`` and
        ``first_image`` (the image of the first differing word, or None); the last entry is the
        accelerator's own output.
    """
    from .compiler import expected_outputs, output_fields
    from .conv import ConvLayer
    from .golden import execute
    from .golden.layers import QuantMaxPool
    from .sim.amaranth_stream import record_streams
    images = np.asarray(images)
    trace = trace if trace is not None else execute(accelerator.network, images)
    layers = accelerator.network.layers
    index_of = {layer.name: i for i, layer in enumerate(layers)}
    taps, golden = {}, {}
    for name, stage in accelerator.stages:
        if name not in index_of:
            continue
        index = index_of[name]
        if (isinstance(stage, ConvLayer) and index + 1 < len(layers)
                and isinstance(layers[index + 1], QuantMaxPool)
                and stage.out_shape == layers[index + 1].out_shape):
            index += 1                              # the pool fused into the conv stage
        count = stage.output.payload.shape().length
        taps[name] = (stage.output, count)
        golden[name] = (layers[index].name, trace.outputs[index].reshape(-1, count).tolist())
    expected = expected_outputs(accelerator, trace.outputs[-1])
    received, seen = record_streams(
        accelerator, images.reshape(-1, accelerator.input_simd).tolist(), len(expected),
        taps=taps, out_fields=output_fields(accelerator),
        max_cycles=(len(images) + 2) * accelerator.cycles_per_image * 2 + 5000)
    report = []
    for name, (layer_name, want) in list(golden.items()) + [("output", ("output", expected))]:
        got = received if name == "output" else seen[name]
        per_image = len(want) // len(images)
        wrong = [i for i in range(len(want)) if i >= len(got) or got[i] != want[i]]
        report.append({"stage": name, "layer": layer_name, "words": len(want),
                       "mismatching_words": len(wrong),
                       "first_image": wrong[0] // per_image if wrong else None})
    return report


def _steady_cycles(output_cycles, count, per_image):
    """Cycles per image between the first and the last image's final output words (one
    image: its latency)."""
    ends = output_cycles[per_image - 1::per_image]
    if count < 2:
        return float(ends[0])
    return round((ends[-1] - ends[0]) / (count - 1), 1)


def synthesize(accelerator, out_dir, target, *, cycles_per_image, freq_mhz=None,
               progress=_quiet):
    """Synthesize the accelerator (inside the serial I/O harness) for ``target``.

    Returns
    -------
    dict
        Measured logic cells / LUT4, flip-flops, BRAM, DSP, Fmax and images per second at
        Fmax (FPGAs), or generic cells and transistors (asic); the estimate beside them.

    Raises
    ------
    StepError
        An unknown target, missing tools, a design that does not fit (naming the resource and
        the numbers), or an Fmax below ``freq_mhz``.
    """
    from .export import write_verilog
    from .synth.flow import TARGETS, SynthError, synthesize as run_synthesis
    from .synth.harness import SerialHarness
    from .tools import ToolMissing
    if target not in TARGETS:
        raise StepError(f"--target must be one of {', '.join(TARGETS)}, not {target!r}")
    work = Path(out_dir) / f"synth_{target}"
    work.mkdir(parents=True, exist_ok=True)
    verilog = write_verilog(SerialHarness(accelerator), work / "top.v", name="top")
    tool_log = work / "run" / ("yosys.log" if target == "asic" else "nextpnr.log")
    progress(f"synthesizing for {target} (Yosys{'' if target == 'asic' else ' + nextpnr'}); "
             f"this takes minutes; the tools log as they go to {tool_log}")
    started = time.monotonic()
    try:
        result = run_synthesis(verilog, target, work / "run", freq_mhz=freq_mhz)
    except ToolMissing as error:
        raise StepError(str(error)) from None
    except SynthError as error:
        raise StepError(f"{target}: {error.reason} (see {error.log})") from None
    estimate = accelerator.estimate()
    row = {"target": target, "estimate": estimate,
           "seconds": round(time.monotonic() - started, 1), "lut_mapper": result.lut_mapper}
    if target == "asic":
        row.update(cells=result.logic_cells, flip_flops=result.flip_flops,
                   transistors=result.transistors)
    else:
        fmax = result.fmax_mhz
        row.update(logic_cells=result.logic_cells, flip_flops=result.flip_flops,
                   bram=result.bram, dsp=result.dsp, fmax_mhz=fmax,
                   logic_capacity=TARGETS[target].logic_capacity,
                   images_per_second=(round(fmax * 1e6 / cycles_per_image)
                                      if fmax else None),
                   utilization=result.utilization)
        if freq_mhz and fmax is not None and fmax < freq_mhz:
            raise StepError(f"{target}: timing failed: Fmax {fmax:.1f} MHz is below the "
                            f"--freq {freq_mhz:g} MHz asked for")
    progress(f"  {target}: " + _synth_line(row))
    return row


def _synth_line(row):
    if row["target"] == "asic":
        return f"{row['cells']} generic cells, about {row['transistors']} transistors"
    fmax = row["fmax_mhz"]
    return (f"{row['logic_cells']} of {row['logic_capacity']} logic cells, {row['bram']} BRAM, "
            f"{row['dsp']} DSP, " + (f"{fmax:.1f} MHz, {row['images_per_second']} images/s"
                                     if fmax else "no clock"))


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


def write_json(path, data):
    """``data`` as JSON at ``path``, atomically."""
    from .golden.atomic import atomic_write
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=1, default=str)
