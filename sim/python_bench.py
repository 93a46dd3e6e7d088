"""The naive baseline of ``wrpn-rtl bench sim``: the cocotb bench as it was before the HDL
stream harness, driving the design's ports from Python every clock cycle (a source, a sink and
a cycle counter coroutine, random stalls drawn in Python). Only the benchmark uses it;
:mod:`wrpn_rtl.sim.stream_bench` is the bench.

The DUT has Amaranth's flattened ports ``clk``, ``rst``, ``input__payload``, ``input__valid``,
``input__ready``, ``output__payload``, ``output__valid``, ``output__ready``; payloads are
arrays of lanes (lane ``i`` at bits ``[i*width, (i+1)*width)``).

The bench reads its case from the JSON file named by the plusarg ``+bench_config=FILE``
(written by :func:`wrpn_rtl.sim.runner.run_stream_bench` with ``driver="python"``): input
words, expected output words, the input lane width, the output fields, stall probabilities, a
seed and a cycle limit; it writes what arrived to ``observed.json`` as the harness bench does.
"""
import json
import random
from pathlib import Path
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from wrpn_rtl.sim.words import pack, unpack


def as_int(signal):
    """Unsigned value of a port, whether cocotb hands back a Logic (1 bit) or a LogicArray."""
    value = signal.value
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


def stall_schedule(setting, rng):
    """``cycle -> bool`` (True: stall this cycle) for a stall probability."""
    return lambda cycle: rng.random() < setting


class TB:
    """Clock, reset, a stalling source and a back-pressuring sink around the DUT."""

    def __init__(self, dut, config):
        self.dut = dut
        self.config = config
        self.rng = random.Random(config["seed"])
        self.cycle = 0
        self.first_input_cycle = None
        self.last_output_cycle = None
        self.output_cycles = []
        self.received = []
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        cocotb.start_soon(self._count_cycles())

    async def _count_cycles(self):
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1

    async def reset(self):
        self.dut.rst.value = 1
        self.dut.input__valid.value = 0
        self.dut.output__ready.value = 0
        for _ in range(3):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    async def source(self, words):
        config = self.config
        stall = stall_schedule(config["stall_in"], self.rng)
        for word in words:
            while stall(self.cycle):
                self.dut.input__valid.value = 0
                await RisingEdge(self.dut.clk)
            self.dut.input__payload.value = pack(word, config["in_width"])
            self.dut.input__valid.value = 1
            while True:
                await RisingEdge(self.dut.clk)
                if as_int(self.dut.input__ready):
                    if self.first_input_cycle is None:
                        self.first_input_cycle = self.cycle
                    break
        self.dut.input__valid.value = 0

    async def sink(self, count):
        stall = stall_schedule(self.config["stall_out"], self.rng)
        while len(self.received) < count:
            ready = not stall(self.cycle)
            self.dut.output__ready.value = int(ready)
            await RisingEdge(self.dut.clk)
            if ready and as_int(self.dut.output__valid):
                value = as_int(self.dut.output__payload)
                self.received.append(unpack(value, self.config["out_fields"]))
                self.last_output_cycle = self.cycle
                self.output_cycles.append(self.cycle)
        self.dut.output__ready.value = 0


@cocotb.test()
async def stream_driven_from_python(dut):
    """Drive the inputs and take the outputs from Python, cycle by cycle; record what
    arrived (the caller compares)."""
    config_path = Path(cocotb.plusargs["bench_config"])
    config = json.loads(config_path.read_text())
    tb = TB(dut, config)
    await tb.reset()
    started, start_cycle = time.perf_counter(), tb.cycle
    expected = config["expected"]
    cocotb.start_soon(tb.source(config["inputs"]))
    sink = cocotb.start_soon(tb.sink(len(expected)))
    timeout = config["max_cycles"]
    while not sink.done() and tb.cycle < timeout:
        await RisingEdge(dut.clk)
    first = tb.first_input_cycle or 0
    observed = {"outputs": tb.received, "timed_out": not sink.done(),
                "cycles": (tb.last_output_cycle - first + 1) if tb.received else None,
                "output_cycles": [c - first for c in tb.output_cycles], "image_starts": [],
                "first": first, "simulated_cycles": tb.cycle - start_cycle,
                "run_seconds": round(time.perf_counter() - started, 4)}
    (config_path.parent / "observed.json").write_text(json.dumps(observed))
