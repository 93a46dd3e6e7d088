"""Synthesize a design for one target, and the people's table of the results."""
from pathlib import Path
import time

from wrpn_rtl.job.common import StepError, quiet

__all__ = ["synthesize"]


def synthesize(accelerator, out_dir, target, *, cycles_per_image, freq_mhz=None,
               progress=quiet):
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
    from wrpn_rtl.compiler.export import write_verilog
    from wrpn_rtl.synth.flow import SynthError, synthesize as run_synthesis, target_named
    from wrpn_rtl.synth.harness import SerialHarness
    from wrpn_rtl.toolchain import ToolMissing
    try:
        device = target_named(target, flag="--target")
    except ValueError as error:
        raise StepError(str(error)) from None
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
                   logic_capacity=device.logic_capacity,
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
