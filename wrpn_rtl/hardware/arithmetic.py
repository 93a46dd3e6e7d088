"""Pipelined arithmetic shared by the generators: exact sum shapes, registered adder trees,
delay lines.

Every register here is free-running (no clock enable, no reset on datapath values): flow
control is done with valid bits and output credit, so the datapath never fans a stall signal
out to its registers.
"""
from amaranth.hdl import Signal, signed, unsigned, Shape

__all__ = ["sum_shape", "pipelined_sum", "delay"]


def sum_shape(shapes):
    """Exact shape of the sum of values of the given shapes (never overflows)."""
    low = sum(-(1 << (s.width - 1)) if s.signed else 0 for s in shapes)
    high = sum((1 << (s.width - 1)) - 1 if s.signed else (1 << s.width) - 1 for s in shapes)
    if low >= 0:
        return unsigned(max(1, high.bit_length()))
    width = max(high.bit_length() + 1, (-low - 1).bit_length() + 1)
    return signed(width)


def pipelined_sum(m, leaves, *, name):
    """Sum ``leaves`` with a binary adder tree that has a register after every level (datapath
    registers: no reset).

    Parameters
    ----------
    m : amaranth.hdl.Module
    leaves : list of Value
        At least one. Leaves with the same position line up in time.
    name : str
        Prefix of the register names.

    Returns
    -------
    (Value, int)
        The sum (exact width) and the number of register levels (``ceil(log2(len(leaves)))``;
        0 for a single leaf, which is returned as it is).
    """
    level = list(leaves)
    depth = 0
    while len(level) > 1:
        nxt = []
        for index in range(0, len(level) - 1, 2):
            a, b = level[index], level[index + 1]
            shape = sum_shape([Shape.cast(a.shape()), Shape.cast(b.shape())])
            reg = Signal(shape, name=f"{name}_l{depth}_{index // 2}", reset_less=True)
            m.d.sync += reg.eq(a + b)
            nxt.append(reg)
        if len(level) % 2:
            last = level[-1]
            reg = Signal(last.shape(), name=f"{name}_l{depth}_{len(level) // 2}", reset_less=True)
            m.d.sync += reg.eq(last)
            nxt.append(reg)
        level = nxt
        depth += 1
    return level[0], depth


def delay(m, value, cycles, *, name, reset_less=False):
    """``value`` delayed by ``cycles`` registers (0 returns ``value``); datapath values pass
    ``reset_less=True``, valid bits keep their reset."""
    for index in range(cycles):
        reg = Signal(value.shape(), name=f"{name}_d{index}", reset_less=reset_less)
        m.d.sync += reg.eq(value)
        value = reg
    return value
