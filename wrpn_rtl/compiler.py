# amaranth: UnusedElaboratable=no
# (candidate stages are built as cost models while searching: widths, cycles and estimates.)
"""The network compiler: a golden :class:`QuantizedNetwork` -> folding -> accelerator -> files.

Folding
-------
Each Conv/Dense layer gets a :class:`~wrpn_rtl.accelerator.Folding` (PE output channels and SIMD
window codes per cycle). A stage of the stream takes as many cycles per image as its slowest
part (:attr:`Accelerator.cycles_per_image`), so a balanced design gives every layer the
*cheapest* folding that meets one cycle budget ``T``:

* ``choose_foldings(network, target_cycles=T)``: that design, or a ``ValueError`` naming the
  fastest ``T`` the network allows;
* ``choose_foldings(network, max_logic_cells=L, max_block_rams=B)``: the fastest such design
  whose estimated iCE40 logic cells (:func:`wrpn_rtl.cost.device_logic_cells`) stay within
  ``L`` and block RAMs within ``B`` (the cost of the cheapest design meeting ``T`` never grows
  with ``T``, so the smallest feasible ``T`` among the cycle counts the layers can take is the
  answer);
* ``read_foldings(path)``: foldings given explicitly, in a JSON file
  ``{"foldings": [{"pe": 4, "simd": 9, "window_simd": 1}, ...]}`` (one per Conv/Dense layer;
  ``window_simd`` optional: by default ``gcd(SIMD, C_in)``, as the search chooses).

Outputs
-------
:func:`write_design` writes ``<name>.v`` and ``manifest.json`` atomically (a temporary name,
then a rename), so an interrupted run never leaves a file that looks complete.
"""
import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from . import __version__, cost
from .accelerator import Accelerator, Folding
from .conv import ConvLayer
from .export import to_verilog
from .golden.atomic import atomic_write
from .golden.layers import QuantConv2d, QuantDense, QuantMaxPool
from .golden.network import QuantizedNetwork
from .mvu import MatrixVectorUnit
from .pool import max_pool
from .replay import replay_for

__all__ = ["choose_foldings", "LayerOption", "layer_options", "read_foldings", "foldings_to_json",
           "build_accelerator", "manifest", "write_design", "expected_outputs",
           "MANIFEST_VERSION"]

MANIFEST_VERSION = 1


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _linear_layers(network):
    """``[(layer, pool)]`` for each Conv/Dense layer, with the max-pool fused after it."""
    return [(layer, pool) for layer, pool, _ in _layer_groups(network)[1]]


def _layer_groups(network):
    """The network cut at its Conv/Dense layers.

    Returns
    -------
    (leading_pools, [(layer, fused_pool, trailing_pools)])
        ``leading_pools``: max-pools before the first Conv/Dense layer (they read the image
        stream). Per Conv/Dense layer: the max-pool fused into a convolution's stage (or None),
        and the stand-alone max-pools after it, which read its ``PE`` lanes.
    """
    leading, groups = [], []
    for layer in network.layers:
        if isinstance(layer, QuantConv2d):
            groups.append((layer, None, []))
        elif not groups:
            leading.append(layer)
        else:
            owner, fused, trailing = groups[-1]
            if fused is None and not trailing and not isinstance(owner, QuantDense):
                groups[-1] = (owner, layer, trailing)
            else:
                trailing.append(layer)
    return leading, groups


def _pool_stages(pools, *, lanes, bits):
    """Stand-alone max-pool stages reading ``lanes`` codes per word (as the accelerator builds
    them)."""
    return [max_pool(in_shape=pool.in_shape, kernel=pool.kernel, stride=pool.stride,
                     padding=pool.padding, simd=lanes, bits=bits) for pool in pools]


class LayerOption(NamedTuple):
    """One folding of one layer, with what it costs."""

    folding: Folding
    cycles: int          # per image
    logic_cells: int     # estimated iCE40 logic cells (cost.device_logic_cells)
    estimate: dict       # the stage's estimate()


def layer_options(layer, pool=None, trailing_pools=()):
    """Every folding of one Conv/Dense layer, with its cycles per image and estimate.

    Candidates: PE any divisor of the output channels, SIMD any divisor of the window size; a
    convolution's window gives ``gcd(SIMD, C_in)`` codes per word. ``trailing_pools``: stand-
    alone max-pools after the layer; they read its ``PE`` lanes, so their cycles and cost
    belong to the option.

    Returns
    -------
    list of LayerOption
        Sorted by cycles, then logic cells.
    """
    options = []
    for pe in _divisors(layer.out_channels):
        for simd in _divisors(layer.window_size):
            if isinstance(layer, QuantDense):
                folding = Folding(pe=pe, simd=simd)
                stage = MatrixVectorUnit(layer, pe=pe, simd=simd, replayed=True)
                cycles = stage.cycles_per_vector
                replay = replay_for(stage)
                estimate = cost.add(stage.estimate(),
                                    replay.estimate() if replay is not None else cost.ZERO)
            else:
                folding = Folding(pe=pe, simd=simd, window_simd=math.gcd(simd, layer.in_channels))
                stage = ConvLayer(layer, pe=pe, simd=simd, window_simd=folding.window_simd,
                                  pool=pool)
                cycles = stage.cycles_per_frame
                estimate = stage.estimate()
            pools = _pool_stages(trailing_pools, lanes=pe, bits=layer.out_bits)
            cycles = max([cycles] + [p.cycles_per_frame for p in pools])
            estimate = cost.add(estimate, *(p.estimate() for p in pools))
            options.append(LayerOption(folding, cycles, cost.device_logic_cells(estimate),
                                       estimate))
    options.sort(key=lambda option: (option.cycles, option.logic_cells))
    return options


def _cheapest_within(options, budget):
    """The option with the fewest logic cells among those of at most ``budget`` cycles."""
    fitting = [option for option in options if option.cycles <= budget]
    return (min(fitting, key=lambda option: (option.logic_cells, option.cycles)) if fitting
            else None)


def choose_foldings(network, *, target_cycles=None, max_logic_cells=None, max_block_rams=None):
    """Balanced per-layer foldings for a cycle budget, or the fastest within a logic budget.

    Parameters
    ----------
    network : QuantizedNetwork
    target_cycles : int, optional
        Cycles per image every layer must meet.
    max_logic_cells : int, optional
        Estimated iCE40 logic cells the whole accelerator may take (exactly one of the two).
    max_block_rams : int, optional
        With ``max_logic_cells``: the 4-kbit block RAMs the design may take.

    Returns
    -------
    list of Folding
        One per Conv/Dense layer.

    Raises
    ------
    ValueError
        Neither or both budgets given, or a budget no folding can meet (the message names the
        best the network allows).
    """
    if not isinstance(network, QuantizedNetwork):
        raise TypeError(f"network must be a golden QuantizedNetwork, not {network!r}")
    if (target_cycles is None) == (max_logic_cells is None):
        raise ValueError("give exactly one of target_cycles and max_logic_cells")
    height, width, channels = network.input_shape
    leading, groups = _layer_groups(network)
    leading_pools = _pool_stages(leading, lanes=1, bits=network.input_bits)
    # one image code per input word, and the pools that read the image stream
    floor = max([height * width * channels] + [p.cycles_per_frame for p in leading_pools])
    per_layer = [layer_options(layer, pool, trailing) for layer, pool, trailing in groups]
    fastest = max([floor] + [options[0].cycles for options in per_layer])
    if target_cycles is not None:
        if not isinstance(target_cycles, int) or target_cycles < fastest:
            raise ValueError(f"target_cycles must be an integer >= {fastest} (the fewest cycles "
                             f"per image this network can take), not {target_cycles!r}")
        return [_cheapest_within(options, target_cycles).folding for options in per_layer]

    leading_cost = cost.add(cost.ZERO, *(p.estimate() for p in leading_pools))
    overhead = _fixed_cost(network) + cost.device_logic_cells(leading_cost)
    budgets = sorted({fastest} | {option.cycles for options in per_layer for option in options
                                  if option.cycles >= fastest})
    rams_allowed = float("inf") if max_block_rams is None else max_block_rams
    for budget in budgets:
        chosen = [_cheapest_within(options, budget) for options in per_layer]
        rams = leading_cost["block_rams"] + sum(option.estimate["block_rams"]
                                                for option in chosen)
        if sum(option.logic_cells for option in chosen) + overhead <= max_logic_cells \
                and rams <= rams_allowed:
            return [option.folding for option in chosen]
    slowest = [_cheapest_within(options, budgets[-1]) for options in per_layer]
    least = sum(option.logic_cells for option in slowest) + overhead
    if least <= max_logic_cells:
        raise ValueError(f"max_block_rams must be at least the block RAMs of a design within "
                         f"{max_logic_cells} logic cells, not {max_block_rams!r}")
    raise ValueError(f"max_logic_cells must be at least {least} (the estimate of the smallest "
                     f"design this network allows), not {max_logic_cells!r}")


def _fixed_cost(network):
    """Estimated logic cells outside the Conv/Dense stages: width converters between them
    depend on both neighbours' foldings and are small (10-30 cells on the digits network), so
    they get a flat 40 each; the classifier head is counted exactly."""
    from .classify import ClassifierHead
    last = network.layers[-1]
    head = 0
    if isinstance(last, QuantConv2d) and last.is_logits:
        width, is_signed = last.acc_shape         # a logit: the accumulator plus bias
        head = cost.device_logic_cells(ClassifierHead(
            classes=int(np.prod(last.out_shape)), lanes=1,
            shape=signed(width) if is_signed else unsigned(width)).estimate())
    converters = 40 * len(_linear_layers(network))
    return head + converters


def read_foldings(path, network):
    """Foldings from a JSON file ``{"foldings": [{"pe": .., "simd": .., "window_simd": ..}]}``.

    Raises
    ------
    ValueError
        A file that is not such JSON, or a count that does not match the network (the values
        themselves are checked when the accelerator is built).
    """
    path = Path(path)
    try:
        entries = json.loads(path.read_text())["foldings"]
        foldings = [Folding(pe=entry["pe"], simd=entry["simd"],
                            window_simd=entry.get("window_simd")) for entry in entries]
    except FileNotFoundError:
        raise ValueError(f"folding file {str(path)!r} does not exist") from None
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"folding file {str(path)!r} must be JSON "
                         f'{{"foldings": [{{"pe": N, "simd": N}}, ...]}}, not readable '
                         f"as that ({type(error).__name__}: {error})") from None
    count = len(_linear_layers(network))
    if len(foldings) != count:
        raise ValueError(f"folding file {str(path)!r} must give one folding per Conv/Dense "
                         f"layer ({count}), not {len(foldings)}")
    return foldings


def foldings_to_json(foldings):
    return {"foldings": [{"pe": f.pe, "simd": f.simd, "window_simd": f.window_simd}
                         for f in foldings]}


def build_accelerator(network, foldings):
    """The accelerator, one image code per input word."""
    return Accelerator(network, foldings=foldings, input_simd=1)


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


def manifest(accelerator, *, name, model=None):
    """Everything a user of the generated Verilog needs, as a JSON-ready dict."""
    network = accelerator.network
    stages, foldings = [], []
    linear = iter(_linear_layers(network))
    for stage_name, stage in accelerator.stages:
        entry = {"name": stage_name, "kind": type(stage).__name__}
        mvu = stage.mvu if isinstance(stage, ConvLayer) else (
            stage if isinstance(stage, MatrixVectorUnit) else None)
        if mvu is not None:
            layer, pool = next(linear)
            entry.update({
                "layer": repr(layer), "pool": repr(pool) if pool else None,
                "pe": mvu.pe, "simd": mvu.simd,
                "window_simd": stage.window.simd if isinstance(stage, ConvLayer) else None,
                "weight_bits": layer.weight_bits, "in_bits": layer.in_bits,
                "out_bits": layer.out_bits, "accumulator_bits": mvu.accumulator_shape.width,
                "accumulator_signed": mvu.accumulator_shape.signed,
                "requantization": mvu.requantization,
                "memory_styles": mvu.memory_styles(), "latency": mvu.latency})
            foldings.append({"pe": mvu.pe, "simd": mvu.simd,
                             "window_simd": entry["window_simd"]})
        cycles = getattr(stage, "cycles_per_frame", None)
        if cycles is None and isinstance(stage, MatrixVectorUnit):
            cycles = stage.cycles_per_vector
        entry["cycles_per_image"] = cycles
        entry["estimate"] = {k: v for k, v in stage.estimate().items()
                             if k in cost.ZERO}
        stages.append(entry)
    height, width, channels = network.input_shape
    return {
        "format": "wrpn-rtl manifest", "version": MANIFEST_VERSION,
        "generator": f"wrpn-rtl {__version__}", "top": name, "model": model,
        "network": {"input_shape": [height, width, channels], "input_bits": network.input_bits,
                    "layers": [repr(layer) for layer in network.layers]},
        "ports": _stream_ports(accelerator),
        "input": {"words_per_image": height * width * channels // accelerator.input_simd,
                  "lanes": accelerator.input_simd, "lane_bits": network.input_bits,
                  "order": "HWC (row, column, channel fastest), one image after another"},
        "output": {"fields": [{"width": w, "signed": s} for w, s in output_fields(accelerator)],
                   "words_per_image": _output_words_per_image(accelerator),
                   "meaning": ("per image: all logits (class 0 in the lowest bits), then the "
                               "label (argmax, lowest index on ties)")
                   if accelerator.classifies else
                   "the last layer's codes, HWC order"},
        "foldings": foldings,
        "stages": stages,
        "cycles_per_image": accelerator.cycles_per_image,
        "estimate": accelerator.estimate(),
    }


def _output_words_per_image(accelerator):
    if accelerator.classifies:
        return 1
    return int(np.prod(accelerator.network.layers[-1].out_shape)) // len(
        output_fields(accelerator))


def write_design(accelerator, out_dir, *, name="wrpn_accel", model=None):
    """Write ``out_dir/<name>.v`` and ``out_dir/manifest.json`` atomically.

    Returns
    -------
    (verilog_path, manifest_path, manifest_dict)
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = to_verilog(accelerator, name=name)
    info = manifest(accelerator, name=name, model=model)
    verilog_path, manifest_path = out_dir / f"{name}.v", out_dir / "manifest.json"
    manifest_path.unlink(missing_ok=True)    # the manifest, written last, marks a whole design
    with atomic_write(verilog_path, "w") as handle:
        handle.write(text)
    with atomic_write(manifest_path, "w") as handle:
        json.dump(info, handle, indent=1)
    return verilog_path, manifest_path, info
