"""Merging a module's register blocks for Icarus keeps the Verilog's meaning: the merged text
of a real design has one clocked block per module and clock, the same assignments, and
leaves anything it does not recognise alone. (Every Icarus test of the RTL then checks the
merged design bit for bit against the golden model.)"""
import re

import pytest

from wrpn_rtl.compiler.export import to_verilog
from wrpn_rtl.sim.icarus import merge_clocked_blocks, poison_collision_reads

SAMPLE = """module a(clk, x, y);
  always @(posedge clk)
    x <= y;
  always @(posedge clk)
    \\$signal$3  <= x;
  always @(posedge clk)
    z[3:0] <= y[3:0];
  always @(posedge other)
    w <= 1'h0;
  always @(posedge clk)
    q = a <= b;
  always @(posedge clk) begin
    m <= mem[addr];
  end
endmodule
module b(clk);
  assign u = v;
endmodule
"""


def test_one_block_per_module_and_clock_with_the_same_statements():
    merged = merge_clocked_blocks(SAMPLE)
    first, second = merged.split("module b")
    assert first.count("always @(posedge clk) begin") == 2       # the merged + the memory's
    assert first.count("always @(posedge other) begin") == 1
    assert ("  always @(posedge clk) begin\n    x <= y;\n    \\$signal$3  <= x;\n"
            "    z[3:0] <= y[3:0];\n  end\n") in first
    # a blocking assignment is not a register block: left as it was
    assert "  always @(posedge clk)\n    q = a <= b;\n" in first
    assert second == SAMPLE.split("module b")[1]


def test_a_real_design_keeps_every_assignment(rng):
    from tests.board.test_top import small_accelerator
    text = to_verilog(small_accelerator(rng), name="wrpn_accel")
    merged = merge_clocked_blocks(text)
    before = sorted(re.findall(r"^\s+(\S.*<=.*;)$", text, re.M))
    after = sorted(re.findall(r"^\s+(\S.*<=.*;)$", merged, re.M))
    assert before == after
    modules = len(re.findall(r"^module ", text, re.M))
    assert len(re.findall(r"always @\(posedge", merged)) < len(re.findall(
        r"always @\(posedge", text)) and modules == len(re.findall(r"^module ", merged, re.M))


def test_collision_reads_of_an_unrecognised_memory_layout_are_refused():
    """A ``no_rw_check`` memory the rewrite cannot find the ports of is an error, not a
    memory left unchecked."""
    escaped = ("module m(clk);\n  (* no_rw_check = 32'd1 *)\n  reg [3:0] \\odd.name  [15:0];\n"
               "endmodule\n")
    with pytest.raises(ValueError, match="not in Amaranth's layout"):
        poison_collision_reads(escaped)
    no_write = ("module m(clk);\n  (* no_rw_check = 32'd1 *)\n  reg [3:0] store [15:0];\n"
                "  always @(posedge clk) begin\n    q <= store[a];\n  end\nendmodule\n")
    with pytest.raises(ValueError, match="memory store: expected one write port"):
        poison_collision_reads(no_write)
    assert poison_collision_reads(SAMPLE) == SAMPLE


def test_collision_reads_of_a_memory_written_in_slices_are_poisoned():
    """A memory with a write granularity (a replay gathering its words) has one write line per
    slice at one address: a read of that address while any slice is written gives ``x``."""
    from amaranth.hdl import unsigned
    from amaranth.lib import data
    from wrpn_rtl.hardware.replay import VectorReplay
    replay = VectorReplay(words=3, times=2, slices=3, shape=data.ArrayLayout(unsigned(4), 6),
                          style="logic")
    text = to_verilog(replay, name="replay")
    poisoned = poison_collision_reads(text)
    reads = [line for line in poisoned.splitlines() if "{24{1'bx}}" in line]
    assert len(reads) == 1 and reads[0].count(" || ") == 2
    with pytest.raises(ValueError, match=r"found 2 writes at 2 addresses"):
        poison_collision_reads(
            "module m(clk);\n  (* no_rw_check = 32'd1 *)\n  reg [7:0] store [15:0];\n"
            "  always @(posedge clk) begin\n    if (a)\n      store[p][3:0] <= d;\n"
            "    if (b)\n      store[q][7:4] <= d;\n  end\n"
            "  always @(posedge clk) begin\n    r <= store[x];\n  end\nendmodule\n")
