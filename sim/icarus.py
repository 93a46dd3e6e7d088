"""Amaranth's Verilog, arranged for Icarus Verilog's speed (same behaviour).

Amaranth's Verilog (via Yosys's ``write_verilog``) gives every register a clocked block of
its own::

    always @(posedge clk)
      count <= \\$12 ;

The default network's design has 426 of them. Icarus runs each as a thread that wakes on
every clock edge, and that scheduling, not the logic, is most of its time.
:func:`merge_clocked_blocks` gathers each module's one-statement blocks of one clock into a
single block. Every statement is a nonblocking assignment on the same edge, so the order
inside the block cannot matter and the design behaves exactly as before (the RTL tests check
it bit for bit against the golden model on Icarus); measured on the default network: about
2x the simulated cycles per second. Verilator, which compiles the design, gains nothing and
gets the design as written.
"""
import re

__all__ = ["merge_clocked_blocks"]

#: One register's clocked block as Yosys writes it: the edge, then one nonblocking
#: assignment to a plain or escaped name, maybe bit-selected, on a line of its own.
_BLOCK = re.compile(r"^  always @\(posedge (?P<clock>[A-Za-z_][\w$]*|\\\S+ )\)\n"
                    r"(?P<statement>    (?:[A-Za-z_][\w$]*|\\\S+ )(?:\s*\[[^\]\n]*\])? <= "
                    r"[^\n;]*;)\n", re.M)


def merge_clocked_blocks(text):
    """``text`` (Verilog modules) with each module's one-statement ``always @(posedge c)``
    blocks of each clock ``c`` merged into one block at the module's end."""
    modules = re.split(r"(?=^module )", text, flags=re.M)
    return "".join(_merge_module(module) for module in modules)


def _merge_module(module):
    if "endmodule" not in module:
        return module
    by_clock = {}

    def take(match):
        by_clock.setdefault(match["clock"], []).append(match["statement"])
        return ""
    body = _BLOCK.sub(take, module)
    if not by_clock:
        return module
    merged = "".join(f"  always @(posedge {clock}) begin\n" + "\n".join(statements) + "\n"
                     "  end\n" for clock, statements in by_clock.items())
    end = body.rindex("endmodule")
    return body[:end] + merged + body[end:]
