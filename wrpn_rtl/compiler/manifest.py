"""What the compiler writes: the accelerator for a network and foldings, its Verilog and its
``manifest.json`` (ports, stream widths, output fields, per-stage folding, bits, accumulator
widths, requantizer, memory styles, latency, cycles and estimates).

:func:`write_design` writes the design's files as one change (temporary names, then renames
with the manifest last and Ctrl-C held back), so a folder with a manifest always holds one
whole design, and the manifest records each file's hash.
"""
import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
from amaranth.lib import data

from wrpn_rtl import __version__
from wrpn_rtl.compiler import cost
from wrpn_rtl.compiler.export import to_verilog
from wrpn_rtl.compiler.folding import folding_entry
from wrpn_rtl.compiler.stages import StageKind
from wrpn_rtl.golden.atomic import atomic_files
from wrpn_rtl.hardware.accelerator import Accelerator
from wrpn_rtl.hardware.conv import is_register_window

__all__ = ["build_accelerator", "output_fields", "output_words_per_image", "expected_outputs",
           "manifest", "write_design", "MANIFEST", "MANIFEST_VERSION"]

#: The manifest's file name: a folder holding it holds one whole design.
MANIFEST = "manifest.json"

#: 2: a stage's "kind" is its stage kind (convert, conv, replay, dense, pool, classify), not a
#: class name; per-stage "requantization". 3: "target" (the device the foldings were chosen
#: for) and the estimate's "family"; a conv stage's "window" ("line_buffer" or "register").
#: 4: "files", the SHA-256 of every file of the design (Verilog, model file).
MANIFEST_VERSION = 4


def build_accelerator(network, foldings):
    """The accelerator, one image code per input word (counted as created by the caller, so
    an unused one is reported, or silenced by a linter pragma, where it was asked for)."""
    return Accelerator(network, foldings=foldings, input_simd=1, src_loc_at=1)


def _stream_ports(accelerator):
    """Port names and widths of the flattened Verilog top (Amaranth's naming)."""
    in_shape = accelerator.input.payload.shape()
    out_shape = accelerator.output.payload.shape()
    ports = {"clk": 1, "rst": 1, "input__payload": in_shape.size, "input__valid": 1,
             "input__ready": 1, "output__payload": out_shape.size, "output__valid": 1,
             "output__ready": 1}
    return [{"name": name, "width": width,
             "direction": "out" if name in ("input__ready", "output__payload", "output__valid")
             else "in"} for name, width in ports.items()]


def output_fields(accelerator):
    """``[(width, signed)]`` of the output word, lowest bits first (logits, then the label; or
    ``PE`` codes)."""
    layout = accelerator.output.payload.shape()
    if isinstance(layout, data.StructLayout):             # the classifier head's word
        members = dict(layout.members)
        logits = members["logits"]
        return ([(logits.elem_shape.width, logits.elem_shape.signed)] * logits.length
                + [(members["label"].width, False)])
    return [(layout.elem_shape.width, layout.elem_shape.signed)] * layout.length


def expected_outputs(accelerator, trace_outputs):
    """The output words the accelerator must give for golden ``execute(...).outputs[-1]``
    (``(N, H, W, C)``): per image all logits and ``argmax``; or the codes ``PE`` per word."""
    last = np.asarray(trace_outputs)
    fields = output_fields(accelerator)
    flat = last.reshape(len(last), -1)
    if accelerator.classifies:
        return [list(map(int, row)) + [int(np.argmax(row))] for row in flat]
    return flat.reshape(-1, len(fields)).tolist()


def manifest(accelerator, *, name, model=None, target=None, family="ice40"):
    """Everything a user of the generated Verilog needs, as a JSON-ready dict. ``target``: the
    device the foldings were chosen for (None: not chosen for a device); ``family``: the device
    family the whole-design estimate counts logic for."""
    network = accelerator.network
    stages, foldings = [], []
    for stage, (_, geometry), cycles in zip(accelerator.plan, accelerator.stage_models,
                                            accelerator.stage_cycles()):
        entry = {"name": stage.name, "kind": stage.kind.name.lower()}
        if stage.kind in (StageKind.CONV, StageKind.DENSE):
            layer = stage.layer
            mvu = geometry.mvu if stage.kind is StageKind.CONV else geometry
            window_simd = stage.folding.window_simd if stage.kind is StageKind.CONV else None
            entry.update({
                "layer": repr(layer), "pool": repr(stage.pool) if stage.pool else None,
                "pe": mvu.pe, "simd": mvu.simd, "window_simd": window_simd,
                "window": (("register" if is_register_window(layer, window_simd)
                            else "line_buffer") if window_simd is not None else None),
                "weight_bits": layer.weight_bits, "in_bits": layer.in_bits,
                "out_bits": layer.out_bits, "accumulator_bits": mvu.accumulator_shape.width,
                "accumulator_signed": mvu.accumulator_shape.signed,
                "requantization": mvu.requantization,
                "memory_styles": mvu.memory_styles(), "latency": mvu.latency})
            replay = (dict(geometry.parts).get("replay") if stage.kind is StageKind.CONV
                      else None)
            if replay is not None:          # a dense layer's replay is a stage of its own
                entry["memory_styles"]["replay"] = replay.memory_style()
            foldings.append(folding_entry(dataclasses.replace(stage.folding,
                                                              window_simd=window_simd)))
        if stage.kind is StageKind.REPLAY:
            entry["memory_styles"] = {"buffer": geometry.memory_style()}
        entry["cycles_per_image"] = cycles
        entry["estimate"] = {k: v for k, v in geometry.estimate().items() if k in cost.ZERO}
        stages.append(entry)
    height, width, channels = network.input_shape
    return {
        "format": "wrpn-rtl manifest", "version": MANIFEST_VERSION,
        "generator": f"wrpn-rtl {__version__}", "top": name, "model": model,
        "target": target,
        "network": {"input_shape": [height, width, channels], "input_bits": network.input_bits,
                    "layers": [repr(layer) for layer in network.layers]},
        "ports": _stream_ports(accelerator),
        "input": {"words_per_image": height * width * channels // accelerator.input_simd,
                  "lanes": accelerator.input_simd, "lane_bits": network.input_bits,
                  "order": "HWC (row, column, channel fastest), one image after another"},
        "output": {"fields": [{"width": w, "signed": s} for w, s in output_fields(accelerator)],
                   "words_per_image": output_words_per_image(accelerator),
                   "meaning": ("per image: all logits (class 0 in the lowest bits), then the "
                               "label (argmax, lowest index on ties)")
                   if accelerator.classifies else
                   "the last layer's codes, HWC order"},
        "foldings": foldings,
        "stages": stages,
        "cycles_per_image": accelerator.cycles_per_image,
        "estimate": accelerator.estimate(family),
    }


def output_words_per_image(accelerator):
    if accelerator.classifies:
        return 1
    return int(np.prod(accelerator.network.layers[-1].out_shape)) // len(
        output_fields(accelerator))


def write_design(accelerator, out_dir, *, name="wrpn_accel", model=None, target=None,
                 family="ice40", files=None, before_commit=None):
    """Write ``out_dir/<name>.v``, the ``files`` given (``{file name: bytes}``, e.g. the model
    file) and ``out_dir/manifest.json`` as one change (:func:`~wrpn_rtl.golden.atomic.
    atomic_files`: staged under temporary names, then renamed with the manifest last and
    Ctrl-C held back), so a folder holds the old design or the new one, whole. The manifest
    records every file's SHA-256 (``"files"``); ``target``, ``family``: see :func:`manifest`;
    ``before_commit(digest)`` runs just before the renames with the new manifest's SHA-256
    (e.g. to remove the reports of other designs).

    Returns
    -------
    (verilog_path, manifest_path, manifest_dict)
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    contents = {f"{name}.v": to_verilog(accelerator, name=name).encode(), **(files or {})}
    info = manifest(accelerator, name=name, model=model, target=target, family=family)
    info["files"] = {file: hashlib.sha256(data).hexdigest() for file, data in contents.items()}
    verilog_path, manifest_path = out_dir / f"{name}.v", out_dir / MANIFEST
    text = json.dumps(info, indent=1).encode()
    digest = hashlib.sha256(text).hexdigest()
    with atomic_files(lambda: before_commit and before_commit(digest)) as group:
        for file, data in contents.items():
            group.write(out_dir / file, data)
        group.write(manifest_path, text)
    return verilog_path, manifest_path, info
