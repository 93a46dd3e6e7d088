"""Pipelined arithmetic shared by the generators: exact sum shapes, registered adder trees,
delay lines, and selecting one of several values by an index.

Every register here is free-running (no clock enable, no reset on datapath values): flow
control is done with valid bits and output credit, so the datapath never fans a stall signal
out to its registers.
"""
from amaranth.hdl import Const, Mux, Shape, Signal, Value, signed, unsigned

__all__ = ["sum_shape", "pipelined_sum", "pipelined_product", "delay", "select",
           "PRODUCT_CHUNK_BITS"]

#: Multiplier bits per partial product of :func:`pipelined_product`: an unsigned ``a`` times 4
#: bits is a sum of four shifted copies of ``a``, about three LUT4 adder levels.
PRODUCT_CHUNK_BITS = 4


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


def pipelined_product(m, a, b, *, name):
    """``a * b`` of two unsigned values over two register levels: ``a`` times each
    :data:`PRODUCT_CHUNK_BITS`-bit chunk of ``b``, registered, then the shifted sum of those,
    registered (an array multiplier in one cycle is as deep as ``b`` is wide: 13 bits took
    30 ns on an iCE40 UP5K). Returns the product register, valid two cycles after ``a`` and
    ``b``; exact width ``len(a) + len(b)``."""
    a, b = Value.cast(a), Value.cast(b)
    chunks = []
    for index, low in enumerate(range(0, len(b), PRODUCT_CHUNK_BITS)):
        part = b[low:low + PRODUCT_CHUNK_BITS]
        chunk = Signal(unsigned(len(a) + len(part)), name=f"{name}_chunk{index}",
                       reset_less=True)
        # shifted copies of a, not `a * part`: a design with DSP pairs is synthesized with
        # hard multipliers on, and these products are meant for logic
        m.d.sync += chunk.eq(sum(Mux(part[bit], a << bit, 0) for bit in range(len(part))))
        chunks.append((chunk, low))
    product = Signal(unsigned(len(a) + len(b)), name=name, reset_less=True)
    total = 0
    for chunk, low in chunks:
        total = total + (chunk << low)
    m.d.sync += product.eq(total)
    return product


def delay(m, value, cycles, *, name, reset_less=False):
    """``value`` delayed by ``cycles`` registers (0 returns ``value``); datapath values pass
    ``reset_less=True``, valid bits keep their reset."""
    value = Value.cast(value)
    for index in range(cycles):
        reg = Signal(value.shape(), name=f"{name}_d{index}", reset_less=reset_less)
        m.d.sync += reg.eq(value)
        value = reg
    return value


def select(index, values):
    """``values[index]`` (``index`` a Value, ``values`` a list of Values of one shape; an
    index past the end gives one of the values) as a balanced tree of multiplexers, one level
    per bit of ``index``: continuous assignments in Verilog, which Icarus evaluates from the
    start. An Array index or a Switch becomes an ``always @*`` block there, which Icarus runs
    only once its index first changes, so until then (a first word after reset, a table
    read at index 0) its output is undefined in Icarus though right in every other
    simulator. A chain of ``len(values)`` multiplexers would nest as deep in Amaranth's
    simulator, which compiles it to nested Python and fails from about 64 (a 64-row table in
    logic beside a wide ROM)."""
    index = Value.cast(index)
    level = [Value.cast(value) for value in values]
    for bit in range(max(1, (len(level) - 1).bit_length())):
        chosen = index[bit] if bit < len(index) else Const(0, 1)
        level = [Mux(chosen, level[i + 1], level[i]) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    return level[0]
