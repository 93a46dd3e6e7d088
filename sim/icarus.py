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

:func:`poison_collision_reads` checks a promise the generators make to synthesis: a memory
marked ``no_rw_check`` (:func:`wrpn_rtl.hardware.memories.memory_attrs`) never uses what its
read port gives in a cycle that writes the same address, so block RAM may give anything
there. In the Verilog such a read gives the old word; for Icarus it gives all ``x``, which
reaches an output word (and fails the run, naming the word) if the promise is broken.
"""
import re

__all__ = ["merge_clocked_blocks", "poison_collision_reads"]

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


#: A memory Yosys may treat as collision-free: the attribute line(s), then its declaration.
_UNCHECKED_MEMORY = re.compile(r"^  \(\* no_rw_check = [^*]*\*\)\n(?:  \(\*[^\n]*\*\)\n)*"
                               r"  reg \[(?P<high>\d+):0\] (?P<name>[A-Za-z_][\w$]*) \[", re.M)


def poison_collision_reads(text):
    """``text`` (Verilog modules) with every read of a ``no_rw_check`` memory giving all
    ``x`` in a cycle whose write port writes the address read. Each such memory must have one
    write port: ``if (EN) NAME[ADDR] <= DATA;``, or with a write granularity one such line
    per slice (``NAME[ADDR][HIGH:LOW]``), all at the same address (a write of any slice
    then poisons the whole word); a memory whose ports are not found raises ValueError, so
    an unrecognised layout cannot pass unchecked."""
    modules = re.split(r"(?=^module )", text, flags=re.M)
    return "".join(_poison_module(module) for module in modules)


def _poison_module(module):
    memories = list(_UNCHECKED_MEMORY.finditer(module))
    if len(memories) != module.count("(* no_rw_check"):
        raise ValueError("a no_rw_check memory's declaration is not in Amaranth's layout")
    for memory in memories:
        name, width = memory["name"], int(memory["high"]) + 1
        quoted = re.escape(name)
        writes = re.findall(r"^\s+if \((?P<en>[^\n]+)\)\n\s+" + quoted +
                            r"\[(?P<addr>[^\n]+?)\](?:\[\d+:\d+\])? <= [^\n]+;$",
                            module, re.M)
        read = re.compile(r"^(?P<lead>\s+\S+ <= )" + quoted + r"\[(?P<addr>[^\n]+)\];$", re.M)
        addresses = {address for _, address in writes}
        if len(addresses) != 1 or not read.search(module):
            raise ValueError(f"memory {name}: expected one write port and a read port in "
                             f"Amaranth's layout, found {len(writes)} writes at "
                             f"{len(addresses)} addresses")
        write_address, = addresses
        enable = " || ".join(f"({en})" for en, _ in writes)
        module = read.sub(lambda r: (f"{r['lead']}(({enable}) && ({write_address}) == "
                                     f"({r['addr']})) ? {{{width}{{1'bx}}}} : "
                                     f"{name}[{r['addr']}];"), module)
    return module
