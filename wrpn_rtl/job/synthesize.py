"""Synthesize a design for one target, and the people's table of the results."""
from pathlib import Path
import time

from wrpn_rtl.job.common import StepError, quiet

__all__ = ["synthesize", "PlacementFailed", "stage_breakdown", "roofline", "macs_per_image",
           "padding_macs_per_image"]


class PlacementFailed(StepError):
    """The design did not fit the device, or nextpnr could not place it in time: a smaller
    design may."""

#: The name of the MAC-lane modules (:class:`~wrpn_rtl.hardware.lanes.MacLanes`).
LANES = "lanes"


def synthesize(accelerator, out_dir, target, *, generated, freq_mhz=None, progress=quiet,
               breakdown=True, nextpnr_timeout_s=None, seeds=1):
    """Synthesize the accelerator (inside the serial I/O harness) for ``target``;
    ``generated`` is :func:`~wrpn_rtl.job.design.generate`'s summary of it. ``breakdown``:
    also the per-stage figures (``stages``, ``roofline``) from a second, unflattened Yosys
    run and the core's own; without it (the sweep) Yosys runs once, on the whole design.
    ``seeds``: place with nextpnr's seeds 1 to ``seeds`` and report the fastest
    (:func:`~wrpn_rtl.synth.flow.synthesize`; each seed's Fmax in ``seed_fmax_mhz``).

    Returns
    -------
    dict
        Measured logic cells / LUT4, flip-flops, BRAM, DSP, Fmax and images per second at
        Fmax (FPGAs), or generic cells and transistors (asic); the estimate beside them. An
        Fmax below ``freq_mhz`` keeps every figure and adds ``failure`` (the message).

    Raises
    ------
    StepError
        An unknown target or missing tools.
    PlacementFailed
        A design that does not fit (naming the resource and the numbers), or that nextpnr
        could not place within ``nextpnr_timeout_s`` (default
        :data:`~wrpn_rtl.synth.flow.NEXTPNR_TIMEOUT_S`).
    """
    from wrpn_rtl.compiler.export import write_verilog
    from wrpn_rtl.synth.flow import (SynthError, module_statistics, synthesize as run_synthesis,
                                     target_named)
    from wrpn_rtl.synth.harness import SerialHarness
    from wrpn_rtl.toolchain import ToolMissing
    try:
        device = target_named(target, flag="--target")
    except ValueError as error:
        raise StepError(str(error)) from None
    work = Path(out_dir) / f"synth_{target}"
    work.mkdir(parents=True, exist_ok=True)
    verilog = write_verilog(SerialHarness(accelerator), work / "top.v", name="top")
    dsp = accelerator.estimate()["dsp_blocks"] > 0
    tool_log = work / "run" / ("yosys.log" if target == "asic" else
                               "nextpnr.log" if seeds == 1 else "nextpnr_seed<N>.log")
    progress(f"synthesizing for {target} (Yosys{'' if target == 'asic' else ' + nextpnr'}); "
             f"this takes minutes; the tools log as they go to {tool_log}")
    started = time.monotonic()

    def phase(text):
        progress(f"{text} (at {time.monotonic() - started:.0f} s)")
    try:
        result = run_synthesis(verilog, target, work / "run", freq_mhz=freq_mhz,
                               progress=phase, core=breakdown, seeds=seeds, dsp=dsp,
                               **({} if nextpnr_timeout_s is None
                                  else {"nextpnr_timeout_s": nextpnr_timeout_s}))
    except ToolMissing as error:
        raise StepError(str(error)) from None
    except SynthError as error:
        failure = PlacementFailed if error.placement else StepError
        raise failure(f"{target}: {error.reason} (see {error.log})") from None
    modules = None
    if breakdown:
        try:
            phase("    Yosys: per-stage statistics (hierarchy kept)")
            modules = module_statistics(work / "run" / "design.v", device, work / "run",
                                        top="top.core", dsp=dsp)
        except SynthError as error:
            raise StepError(f"{target}: per-module statistics: {error.reason} (see "
                            f"{error.log})") from None
    estimate = accelerator.estimate(device.family)
    cycles_per_image = generated["cycles_per_image"]
    row = {"target": target, "design": str(out_dir), "folded_for": generated.get("target"),
           "foldings": generated["foldings"], "cycles_per_image": cycles_per_image,
           "estimate": estimate,
           "seconds": round(time.monotonic() - started, 1), "lut_mapper": result.lut_mapper,
           "placer": result.placer, "seed": result.seed,
           "seed_fmax_mhz": result.seed_fmax_mhz,
           "stages": (stage_breakdown(accelerator, modules, core="top.core",
                                      family=device.family) if breakdown else None)}
    if target == "asic":
        row.update(cells=result.logic_cells, flip_flops=result.flip_flops,
                   transistors=result.transistors)
    else:
        fmax = result.fmax_mhz
        row.update(logic_cells=result.logic_cells, flip_flops=result.flip_flops,
                   bram=result.bram, dsp=result.dsp, fmax_mhz=fmax,
                   logic_capacity=device.logic_capacity,
                   images_per_second=(round(fmax * 1e6 / cycles_per_image)
                                      if fmax else None),
                   utilization=result.utilization,
                   roofline=(roofline(accelerator, row["stages"],
                                      cycles_per_image=cycles_per_image,
                                      logic_cells=result.logic_cells, fmax_mhz=fmax,
                                      logic_capacity=device.logic_capacity)
                             if breakdown else None))
        if freq_mhz and fmax is not None and fmax < freq_mhz:
            row["failure"] = (f"{target}: timing failed: Fmax {fmax:.1f} MHz is below the "
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


def stage_breakdown(accelerator, modules, *, core, family):
    """Measured resources per stage, part by part, beside the compiler's estimate.

    Parameters
    ----------
    accelerator : Accelerator
    modules : dict
        ``{module name: {"luts", "flip_flops", "block_rams", "dsps"}}`` of an unflattened
        synthesis (:func:`~wrpn_rtl.synth.flow.module_statistics`).
    core : str
        The accelerator's module name; its submodules are ``<core>.<stage>[.<part>...]``.
    family : str
        The device family (the estimate's logic is counted for it).

    Returns
    -------
    list of dict
        In stream order: ``{"stage", "kind", "parts": {part: resources}, "measured":
        resources, "lanes": resources, "estimate": {"luts", "flip_flops", "block_rams",
        "device_logic"}}``. A part is the module path below the stage ("mvu.lanes",
        "window.out_fifo"; "" is the stage's own module); ``lanes`` adds up its MAC lanes.
    """
    from wrpn_rtl.compiler import cost
    keys = ("luts", "flip_flops", "block_rams", "dsps")
    stages = []
    for stage, (_, geometry) in zip(accelerator.plan, accelerator.stage_models):
        estimate = geometry.estimate()
        prefix = f"{core}.{stage.name}"
        parts = {name[len(prefix) + 1:]: used for name, used in modules.items()
                 if name == prefix or name.startswith(prefix + ".")}
        lanes = [used for part, used in parts.items() if part.split(".")[-1] == LANES]
        stages.append({
            "stage": stage.name, "kind": stage.kind.name.lower(),
            "parts": {part: used for part, used in sorted(parts.items()) if any(used.values())},
            "measured": {k: sum(used[k] for used in parts.values()) for k in keys},
            "lanes": {k: sum(used[k] for used in lanes) for k in keys},
            "estimate": {"luts": estimate["logic_cells"],
                         "flip_flops": estimate["flip_flops"],
                         "block_rams": estimate["block_rams"],
                         "device_logic": cost.device_logic_cells(estimate, family)}})
    return stages


def macs_per_image(network):
    """Multiply-accumulates one image takes: every Conv/Dense output times its window."""
    import numpy as np
    from wrpn_rtl.golden.layers import QuantLinear
    return int(sum(np.prod(layer.out_shape) * layer.window_size for layer in network.layers
                   if isinstance(layer, QuantLinear)))


def padding_macs_per_image(network):
    """Of :func:`macs_per_image`, those whose operand is zero padding: a window position
    outside the map (row ``oh * S_h - pad + kh`` or column ``ow * S_w - pad + kw`` off it),
    times the input and output channels. The lanes spend these cycles on known zeros."""
    from wrpn_rtl.golden.layers import QuantLinear

    def inside(out_size, kernel, stride, padding, size):
        """Kernel offsets inside the map, summed over the output positions of one axis."""
        return sum(1 for o in range(out_size) for k in range(kernel)
                   if 0 <= o * stride - padding + k < size)

    total = 0
    for layer in network.layers:
        if not isinstance(layer, QuantLinear):
            continue
        (height, width, channels), (out_h, out_w, out_channels) = layer.in_shape, layer.out_shape
        (k_h, k_w), (s_h, s_w), pad = layer.kernel, layer.stride, layer.padding
        positions = out_h * out_w * k_h * k_w
        held = inside(out_h, k_h, s_h, pad, height) * inside(out_w, k_w, s_w, pad, width)
        total += (positions - held) * channels * out_channels
    return int(total)


def roofline(accelerator, stages, *, cycles_per_image, logic_cells, fmax_mhz, logic_capacity):
    """How much of a placed design does the network's arithmetic.

    Returns
    -------
    dict
        ``mac_lanes`` (PE x SIMD summed over layers), ``macs_per_image`` (and
        ``padding_macs_per_image``, those on zero padding), ``macs_per_cycle``,
        ``macs_per_cycle_per_1k_logic`` (per 1000 placed logic cells or LUT4s),
        ``lane_lut_share`` / ``lane_ff_share`` (share of the unflattened synthesis' LUT4s and
        flip-flops inside the MAC lanes), ``lane_luts_per_lane``, ``input_floor_cycles`` (the
        image's words at one per cycle) and the images/s it would allow at this Fmax.
    """
    from wrpn_rtl.compiler.stages import StageKind
    lanes = sum(geometry_lanes(geometry)
                for stage, (_, geometry) in zip(accelerator.plan, accelerator.stage_models)
                if stage.kind in (StageKind.CONV, StageKind.DENSE))
    macs = macs_per_image(accelerator.network)
    total_luts = sum(stage["measured"]["luts"] for stage in stages)
    total_flops = sum(stage["measured"]["flip_flops"] for stage in stages)
    lane_luts = sum(stage["lanes"]["luts"] for stage in stages)
    lane_flops = sum(stage["lanes"]["flip_flops"] for stage in stages)
    height, width, channels = accelerator.network.input_shape
    floor = height * width * channels // accelerator.input_simd
    per_cycle = macs / cycles_per_image
    return {"mac_lanes": lanes, "macs_per_image": macs,
            "padding_macs_per_image": padding_macs_per_image(accelerator.network),
            "macs_per_cycle": round(per_cycle, 2),
            "macs_per_cycle_per_1k_logic": (round(1000 * per_cycle / logic_cells, 2)
                                            if logic_cells else None),
            "lane_lut_share": round(lane_luts / total_luts, 3) if total_luts else None,
            "lane_ff_share": round(lane_flops / total_flops, 3) if total_flops else None,
            "lane_luts_per_lane": round(lane_luts / lanes, 1) if lanes else None,
            "logic_share_of_device": (round(logic_cells / logic_capacity, 3)
                                      if logic_cells and logic_capacity else None),
            "input_floor_cycles": floor,
            "input_floor_images_per_second": (round(fmax_mhz * 1e6 / floor)
                                              if fmax_mhz else None)}


def geometry_lanes(geometry):
    """``PE x SIMD`` of a Conv/Dense stage's MVU geometry."""
    mvu = getattr(geometry, "mvu", geometry)
    return mvu.pe * mvu.simd
