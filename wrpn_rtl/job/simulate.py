"""Run images through the generated Verilog with cocotb, compare every output with the golden
model, and localize a mismatch by layer in Amaranth's simulator."""
from pathlib import Path
import time

import numpy as np

from wrpn_rtl.job.common import StepError, quiet

__all__ = ["simulate", "localize"]


def simulate(accelerator, verilog, *, images, labels, simulator, work_dir, progress=quiet,
             stall=0.0, seed=0, max_cycles=None, wave=None, driver="harness", jobs=1):
    """Run ``images`` through the generated Verilog with cocotb and compare every output word
    with the golden model. ``stall``: probability of an idle input / a refused output each
    cycle; ``max_cycles``: the simulation's limit (default: ample for the expected cycles);
    ``wave``: "failing" (after a mismatch, run again writing the signals from the first
    failing image's first input to the last failing image's last output) or "all" (the whole
    run), to ``work_dir/wave.vcd`` (Verilator) or ``wave.fst`` (Icarus); ``driver``:
    "harness", or "python" for the per-cycle Python baseline of ``wrpn-rtl bench sim``;
    ``jobs``: simulator processes side by side, each playing a run of consecutive images from
    its own reset (:func:`~wrpn_rtl.sim.runner.run_stream_bench`; 1 with a wave or the Python
    driver, and never more than the images).

    Returns
    -------
    dict
        ``mismatched_images`` (per image: which logits / codes differ, how many output words
        never arrived, the first differing field with its expected and actual value, and the
        labels), ``mismatches`` (count of differing fields, missing ones included),
        ``timed_out`` with ``words_received`` / ``words_expected`` (a run that hangs still
        compares every word that arrived), ``accuracy`` (RTL labels against the true labels,
        when known), ``golden_accuracy``, ``cycles_per_image`` (measured in steady state: from
        the first image's last output word to the last image's, per image),
        ``latency_cycles`` (first input to the first image's last output word),
        ``expected_cycles_per_image``, ``simulated_cycles`` (all, from reset),
        ``build_seconds``, ``run_seconds`` and ``cycles_per_second`` (the simulators' speed
        on this design: every part's cycles over the longest part's seconds), ``jobs`` (the
        simulator processes that ran), ``wave`` (the wave file, when written).
    """
    from wrpn_rtl.compiler.manifest import expected_outputs, output_fields
    from wrpn_rtl.golden import execute
    from wrpn_rtl.sim.runner import SimulationFailed, run_stream_bench, split_sizes
    from wrpn_rtl.toolchain import ToolMissing
    count = len(images)
    trace = execute(accelerator.network, images)
    expected = expected_outputs(accelerator, trace.outputs[-1])
    classify = accelerator.classifies
    progress(f"simulating {count} images through {Path(verilog).name} on {simulator} (cocotb, "
             f"HDL stream harness)"
             + (f", random stalls on both streams with probability {stall:g}" if stall else ""))
    if max_cycles is None:
        max_cycles = int((count + 2) * accelerator.cycles_per_image * (2 + 8 * stall) + 5000)
    words_in = np.asarray(images).reshape(-1, accelerator.input_simd)
    wave_path = Path(work_dir).resolve() / ("wave.vcd" if simulator == "verilator"
                                            else "wave.fst")
    wave_path.unlink(missing_ok=True)
    started = time.monotonic()

    jobs = 1 if wave or driver != "harness" else min(jobs, count)

    def run(wave_window=None):
        try:
            return run_stream_bench(
                verilog, toplevel=Path(verilog).stem, inputs=words_in, expected=expected,
                in_width=accelerator.network.input_bits, out_fields=output_fields(accelerator),
                simulator=simulator, build_dir=work_dir, stall_in=stall, stall_out=stall,
                seed=seed, check=False, max_cycles=max_cycles, driver=driver,
                words_per_image=len(words_in) // count, progress=progress, jobs=jobs,
                wave=None if wave_window is None else (wave_path, *wave_window))
        except ToolMissing as error:
            raise StepError(str(error)) from None
        except (SimulationFailed, ValueError) as error:
            raise StepError(f"simulation failed: {error}") from None

    result = run((0, max_cycles) if wave == "all" else None)
    per_word = len(expected) // count
    runs = result.parts or [result]
    mismatched, fields, first = [], 0, 0
    # each run's outputs against its own images' expected words
    for part, images_in_part in zip(runs, split_sizes(count, len(runs))):
        part_mismatched, part_fields = _compare(
            part.outputs, expected[first * per_word:(first + images_in_part) * per_word],
            images_in_part, classify)
        mismatched += [{**entry, "image": entry["image"] + first} for entry in part_mismatched]
        fields += part_fields
        first += images_in_part
    complete = len(runs[0].outputs) // per_word
    summary = {"simulator": simulator, "images": count, "mismatches": fields,
               "mismatched_images": mismatched, "timed_out": result.timed_out,
               "words_received": len(result.outputs), "words_expected": len(expected),
               "cycles_per_image": _steady_cycles(runs, per_word) if complete else None,
               "latency_cycles": result.output_cycles[per_word - 1] if complete else None,
               "expected_cycles_per_image": accelerator.cycles_per_image,
               "simulated_cycles": result.simulated_cycles,
               "build_seconds": result.build_seconds, "run_seconds": result.run_seconds,
               "cycles_per_second": (round(result.simulated_cycles / result.run_seconds)
                                     if result.run_seconds else None),
               "jobs": len(runs)}
    if result.timed_out:
        progress(f"  timeout: {len(result.outputs)} of {len(expected)} output words arrived "
                 f"within {max_cycles} cycles; comparing those")
    if mismatched and wave == "failing":
        window = _failing_window(result, mismatched, per_word, max_cycles)
        progress(f"  writing the signals of the failing images to {wave_path} (cycles "
                 f"{window[0]}..{window[1]} from reset)")
        run(window)
    if wave and wave_path.exists():
        summary["wave"] = str(wave_path)
        progress(f"  wave file: {wave_path}")
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
    summary["seconds"] = round(time.monotonic() - started, 1)
    progress(f"  {fields} mismatching fields in {len(mismatched)} of {count} images; "
             f"{summary['cycles_per_image']} cycles per image measured in steady state "
             f"({summary['expected_cycles_per_image']} expected"
             + (", with stalls" if stall else "") + f"), latency "
             f"{summary['latency_cycles']}; {result.simulated_cycles} cycles simulated in "
             f"{result.run_seconds:.2f} s ({summary['cycles_per_second']} cycles/s"
             + (f" over {len(runs)} processes" if len(runs) > 1 else "")
             + f"; build {result.build_seconds:.1f} s)")
    return summary


def _compare(received, expected, count, classify):
    """Per image, the output fields that differ from the golden words (missing words
    counted): ``(mismatched images, differing fields)``."""
    per_word = len(expected) // count
    mismatched, fields = [], 0
    for index in range(count):
        got = received[index * per_word:(index + 1) * per_word]
        want = expected[index * per_word:(index + 1) * per_word]
        if got == want:
            continue
        flat_got, flat_want = np.ravel(got).tolist(), np.ravel(want).tolist()
        diff = [i for i, (a, b) in enumerate(zip(flat_got, flat_want)) if a != b]
        missing = per_word - len(got)
        fields += len(diff) + missing * len(want[0])
        entry = {"image": index, "fields": diff, "missing_words": missing}
        if diff:
            entry["first_difference"] = {"field": diff[0], "expected": flat_want[diff[0]],
                                         "actual": flat_got[diff[0]]}
        if classify and got:
            entry.update(rtl_label=got[0][-1], golden_label=want[0][-1])
        mismatched.append(entry)
    return mismatched, fields


def _failing_window(result, mismatched, per_word, max_cycles):
    """Cycles (from reset) from the first failing image's first input word to the last
    failing image's last output word (or the end of the run, when it never arrived)."""
    first_image, last_image = mismatched[0]["image"], mismatched[-1]["image"]
    offset = result.first_input_cycle
    starts = result.image_starts or [0]
    begin = starts[min(first_image, len(starts) - 1)] + offset
    last_word = (last_image + 1) * per_word - 1
    end = (result.output_cycles[last_word] + offset if last_word < len(result.output_cycles)
           else max_cycles)
    return begin, end + 1


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
    from wrpn_rtl.compiler.manifest import expected_outputs, output_fields
    from wrpn_rtl.golden import execute
    from wrpn_rtl.sim.amaranth_stream import record_streams
    images = np.asarray(images)
    trace = trace if trace is not None else execute(accelerator.network, images)
    layers = accelerator.network.layers
    taps, golden = {}, {}
    for stage, (name, component) in zip(accelerator.plan, accelerator.stages):
        if stage.golden_index is None:          # converters, replays, the head
            continue
        count = component.output.payload.shape().length
        taps[name] = (component.output, count)
        golden[name] = (layers[stage.golden_index].name,
                        trace.outputs[stage.golden_index].reshape(-1, count).tolist())
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


def _steady_cycles(runs, per_image):
    """Cycles per image between the first and the last image's final output words of each
    run, over all runs (each run starts from its own reset, so only its images after its
    first count; one image in every run: the first run's latency)."""
    span, intervals = 0, 0
    for run in runs:
        ends = run.output_cycles[per_image - 1::per_image]
        if len(ends) >= 2:
            span += ends[-1] - ends[0]
            intervals += len(ends) - 1
    if not intervals:
        return float(runs[0].output_cycles[per_image - 1])
    return round(span / intervals, 1)
