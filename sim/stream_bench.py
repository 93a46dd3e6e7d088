"""cocotb bench for any exported component with one input and one output stream.

The DUT has Amaranth's flattened ports ``clk``, ``rst``, ``input__payload``, ``input__valid``,
``input__ready``, ``output__payload``, ``output__valid``, ``output__ready``; payloads are
arrays of lanes (lane ``i`` at bits ``[i*width, (i+1)*width)``). It runs inside the HDL stream
harness (``stream_harness.v``): the harness plays the input words from a memory, with random
or patterned idle cycles, takes outputs with random or patterned back-pressure (xorshift
generators, seeded), and records every output word with its cycle, all in the simulator.
cocotb is in charge of the run - it starts the clock, resets, waits for the harness to finish,
reads the record, and checks every output word - but no Python runs per clock cycle.

The bench reads its case from the JSON file named by the plusarg ``+bench_config=FILE``
(written by :func:`wrpn_rtl.sim.runner.run_stream_bench`): expected output words, the output
fields (``[width, signed]``, lowest bits first) and whether to fail on a mismatch or a timeout
(``check``; without it the words that did arrive are still written for the caller to compare).
It writes what it saw to ``observed.json`` beside the config (words and cycle counts).
"""
import json
from pathlib import Path
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from wrpn_rtl.sim.words import unpack

class RecordError(AssertionError):
    """The harness's record is incomplete or holds an output word with unknown (x/z) bits."""


def read_record(path, out_fields):
    """The harness's record as ``{"outputs", "output_cycles", "image_starts", "first",
    "timed_out", "cycles", "simulated_cycles"}``: output words unpacked into ``out_fields``,
    cycles counted from the first input transfer (``simulated_cycles``: all cycles after
    reset)."""
    outputs, output_cycles, image_starts, end = [], [], [], None
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        kind, *fields = line.split()
        if kind == "o":
            cycle, text = fields
            if any(c in text.lower() for c in "xz"):
                raise RecordError(f"output word {len(outputs)} (cycle {cycle}) has unknown "
                                  f"bits: {text}")
            outputs.append(unpack(int(text, 16), out_fields))
            output_cycles.append(int(cycle))
        elif kind == "i":
            image_starts.append(int(fields[0]))
        elif kind == "end":
            end = [int(value) for value in fields]
        else:
            raise RecordError(f"{path}:{number}: unexpected line {line!r}")
    if end is None:
        raise RecordError(f"{path}: the harness stopped before writing its end line")
    first, last, timed_out = end
    return {"outputs": outputs, "output_cycles": [c - first for c in output_cycles],
            "image_starts": [c - first for c in image_starts], "first": first,
            "timed_out": bool(timed_out), "simulated_cycles": last + 1,
            "cycles": (output_cycles[-1] - first + 1) if outputs else None}


@cocotb.test()
async def stream_matches_expected(dut):
    """Every output word equals the golden model's, under the configured stalls."""
    config_path = Path(cocotb.plusargs["bench_config"])
    config = json.loads(config_path.read_text())
    # the clock in the simulator's C++ (a Python coroutine per edge only as a benchmark's
    # baseline: ``python_clock``)
    Clock(dut.clk, 10, unit="ns", impl="py" if config.get("python_clock") else "gpi").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    started = time.perf_counter()
    while str(dut.done.value) != "1":
        await RisingEdge(dut.done)
    seconds = time.perf_counter() - started
    expected = config["expected"]
    observed = read_record(config_path.parent / config["record"], config["out_fields"])
    observed["run_seconds"] = round(seconds, 4)
    (config_path.parent / "observed.json").write_text(json.dumps(observed))
    if not config["check"]:
        return      # the caller compares what arrived, also after a timeout
    received = observed["outputs"]
    assert not observed["timed_out"], (f"timeout after {config['max_cycles']} cycles: "
                                       f"{len(received)} of {len(expected)} output words")
    mismatches = [i for i, (a, b) in enumerate(zip(received, expected)) if a != b]
    assert not mismatches, (f"{len(mismatches)} of {len(expected)} output words differ; first "
                            f"at word {mismatches[0]}: got {received[mismatches[0]]}, "
                            f"expected {expected[mismatches[0]]}")
