"""Verilog export of Amaranth components (Amaranth's builtin Yosys)."""
from amaranth.back import verilog

from wrpn_rtl.golden.atomic import atomic_write

__all__ = ["to_verilog", "write_verilog"]


def to_verilog(component, *, name):
    """Verilog text of ``component`` as module ``name`` (ports ``clk``, ``rst`` and the
    component's signature members, flattened as ``<member>__<field>``)."""
    return verilog.convert(component, name=name, emit_src=False)


def write_verilog(component, path, *, name):
    """Write :func:`to_verilog` to ``path`` atomically; return the path."""
    text = to_verilog(component, name=name)
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return path
