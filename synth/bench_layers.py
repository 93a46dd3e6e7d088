"""``wrpn-rtl bench window`` and ``wrpn-rtl bench conv``: representative layers, synthesized
(iCE40 UP5K, ECP5-25k) and simulated (cycles per frame, measured against expected).

For every layer: line-buffer bits stored beside the bare minimum ``((K_h - 1) * W + K_w) * C *
bits``, core logic, flip-flops, block RAM and Fmax from the same harness as ``bench mvu``, and
the cycles per frame measured in Amaranth's simulator over several back-to-back frames with no
stall, against the component's own ``cycles_per_frame``.
"""
from pathlib import Path

import numpy as np

from wrpn_rtl.job.common import write_report
from wrpn_rtl.synth.flow import DEFAULT_TARGETS
from wrpn_rtl.synth.bench import _fmt, _run_jobs, build_core, conv_bench_layers

__all__ = ["WINDOW_LAYERS", "CONV_LAYERS", "run_layer_bench"]

FRAMES = 3

#: (name, SlidingWindow parameters)
WINDOW_LAYERS = [
    ("digits conv1 8x8x1 k3 p1", dict(in_shape=[8, 8, 1], kernel=3, stride=1, padding=1,
                                       simd=1, bits=8)),
    ("digits conv2 4x4x16 k3 p1", dict(in_shape=[4, 4, 16], kernel=3, stride=1, padding=1,
                                        simd=4, bits=4)),
    ("32x32x16 k3 p1", dict(in_shape=[32, 32, 16], kernel=3, stride=1, padding=1, simd=4,
                            bits=4)),
    ("28x28x8 k5 p2", dict(in_shape=[28, 28, 8], kernel=5, stride=1, padding=2, simd=2,
                           bits=2)),
    ("16x16x32 k3 s2 p1", dict(in_shape=[16, 16, 32], kernel=3, stride=2, padding=1, simd=8,
                               bits=4)),
]

#: (name, conv benchmark parameters; see synth.bench.conv_bench_layers)
CONV_LAYERS = [
    ("digits conv1 + pool (w2, a8->4)", dict(in_shape=[8, 8, 1], channels=16, kernel=3,
                                             stride=1, padding=1, wbits=2, in_bits=8,
                                             out_bits=4, pool=2, pe=4, simd=9, window_simd=1,
                                             seed=1)),
    ("digits conv2 + pool (w2, a4->4)", dict(in_shape=[4, 4, 16], channels=32, kernel=3,
                                             stride=1, padding=1, wbits=2, in_bits=4,
                                             out_bits=4, pool=2, pe=4, simd=16,
                                             window_simd=16, seed=2)),
    ("16x16x16 -> 32 k3 p1 (w1, a2->2)", dict(in_shape=[16, 16, 16], channels=32, kernel=3,
                                              stride=1, padding=1, wbits=1, in_bits=2,
                                              out_bits=2, pool=None, pe=8, simd=16,
                                              window_simd=16, seed=3)),
]


def _measure_cycles(kind, params):
    """Cycles per frame of the component in Amaranth's simulator, no stall, FRAMES frames."""
    from wrpn_rtl.sim.amaranth_stream import run_stream
    dut = build_core(kind, params)
    rng = np.random.default_rng(0)
    shape = tuple(params["in_shape"])
    top = (1 << (params["bits"] if kind == "window" else params["in_bits"])) - 1
    images = rng.integers(0, top + 1, (FRAMES,) + shape)
    if kind == "window":
        words_in = images.reshape(-1, dut.simd).tolist()
        count, width = FRAMES * dut.words_out_per_frame, dut.simd
    else:
        words_in = images.reshape(-1, params["window_simd"]).tolist()
        layer, pool = conv_bench_layers(params)
        out = layer.integer_forward(images)[1]
        if pool is not None:
            out = pool.integer_forward(out)[1]
        count, width = out.size // params["pe"], params["pe"]
    outputs, cycles = run_stream(dut, words_in, count, width=width,
                                 max_cycles=4 * FRAMES * dut.cycles_per_frame + 2000)
    if kind == "conv":
        assert np.array_equal(np.array(outputs), out.reshape(-1, params["pe"])), \
            "conv layer output differs from the golden model"
    return cycles / FRAMES, dut.cycles_per_frame, dut


def run_layer_bench(kind, out_dir, *, quick=False, progress=print, workers=None,
                    targets=DEFAULT_TARGETS):
    """Benchmark the window or conv layers; write ``DIR/<kind>.json`` and ``DIR/<kind>.md``.

    Parameters
    ----------
    kind : "window" or "conv"
    quick : bool
        The first two layers only, iCE40 UP5K only.
    """
    if kind not in ("window", "conv"):
        raise ValueError(f"kind must be window or conv, not {kind!r}")
    layers = WINDOW_LAYERS if kind == "window" else CONV_LAYERS
    if quick:
        layers, targets = layers[:2], ("ice40-up5k",)
    out_dir = Path(out_dir)
    work = (out_dir / f"{kind}_work").resolve()
    jobs = [{"key": f"{index}_{target}", "kind": kind, "params": params, "target": target,
             "work": str(work / f"layer{index}")}
            for index, (_, params) in enumerate(layers) for target in targets]
    progress(f"bench {kind}:")
    results = _run_jobs(jobs, progress, workers)
    rows = []
    for index, (name, params) in enumerate(layers):
        measured, expected, dut = _measure_cycles(kind, params)
        progress(f"  {name}: {measured:.0f} cycles/frame measured, {expected} expected")
        window = dut if kind == "window" else dut.window
        stored, minimum = window.buffer_bits()
        rows.append({"name": name, "params": params,
                     "buffer_bits": stored, "buffer_min_bits": minimum,
                     "buffer_rows": window.buffer_rows, "memory_style": window.memory_style(),
                     "cycles_per_frame": measured, "expected_cycles_per_frame": expected,
                     "cycles_vs_expected": round(measured / expected, 4),
                     "targets": {t: results[f"{index}_{t}"] for t in targets}})
    report = {"kind": kind, "frames": FRAMES, "targets": list(targets), "rows": rows}
    write_report(out_dir, kind, report, layer_markdown(report))
    return report


def layer_markdown(report):
    """People's table of :func:`run_layer_bench`'s report."""
    kind = report["kind"]
    lines = [f"# {kind} benchmark", "",
             "Buffer: line-buffer bits stored / the bare minimum ((K_h - 1) * W + K_w) * C * bits. "
             "Cycles: per frame, measured in Amaranth's simulator over "
             f"{report['frames']} back-to-back frames without stalls, and expected. "
             "LUT: core LUT4s (the design alone); FF and BRAM: whole harnessed design.", ""]
    header = "| layer | buffer bits (min) | rows | cycles/frame (expected) | ratio |"
    rule = "|---|---|---|---|---|"
    for target in report["targets"]:
        header += f" {target} LUT / FF / BRAM / MHz |"
        rule += "---|"
    lines += [header, rule]
    for row in report["rows"]:
        line = (f"| {row['name']} | {row['buffer_bits']} ({row['buffer_min_bits']}) | "
                f"{row['buffer_rows']} ({row['memory_style']}) | "
                f"{row['cycles_per_frame']:.0f} ({row['expected_cycles_per_frame']}) | "
                f"{row['cycles_vs_expected']:.3f} |")
        for target in report["targets"]:
            r = row["targets"][target]
            if r.get("error"):
                line += f" {r['error']} |"
            else:
                line += (f" {r.get('core_logic')} / {_fmt(r.get('flip_flops'))} / "
                         f"{_fmt(r.get('bram'))} / {_fmt(r.get('fmax_mhz'))} |")
        lines.append(line)
    lines.append("")
    return "\n".join(lines)
