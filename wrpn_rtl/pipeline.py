"""Small pipelined building blocks shared by the generators.

Every register here is free-running (no clock enable): flow control is done with valid bits
and output credit, so the datapath never fans a stall signal out to its registers.
"""
from amaranth.hdl import Cat, Signal, signed, unsigned, Shape
from amaranth.lib import wiring

__all__ = ["pipelined_sum", "delay", "sum_shape", "output_credit", "memory_style",
           "chain_stages", "BLOCK_ROM_MIN_DEPTH", "BLOCK_RAM_MIN_DEPTH"]

#: A ROM (weights, thresholds) this deep or deeper goes to block RAM; shallower ones become
#: logic, where one LUT4 per output bit holds 16 words (a 4-deep, 512-bit-wide ROM costs 512
#: LUTs in logic but 32 iCE40 block RAMs).
BLOCK_ROM_MIN_DEPTH = 64
#: A written memory (the input buffer) this deep or deeper goes to block RAM; shallower ones
#: become flip-flops (iCE40) or LUT RAM (ECP5).
BLOCK_RAM_MIN_DEPTH = 16


def memory_style(depth, *, writable):
    """Yosys ``ram_style`` for a memory of ``depth`` words: "block" where block RAM pays,
    else "logic" (the one rule for every generator's memories)."""
    limit = BLOCK_RAM_MIN_DEPTH if writable else BLOCK_ROM_MIN_DEPTH
    return "block" if depth >= limit else "logic"


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


def output_credit(m, *, depth, taken, transfer, name="reserved"):
    """Credit for an output queue of ``depth`` words that a pipeline fills without stalling.

    A word may be started only while a slot is free; ``taken`` (a 1-bit Value) reserves one,
    an output ``transfer`` returns one a cycle later (conservative, and off the consumer's
    ``ready`` path). The count is a thermometer code (bit ``i``: more than ``i`` reserved), so
    the returned "room" is a register bit and no carry chain is involved.

    Returns
    -------
    Value
        1 while fewer than ``depth`` words are reserved.
    """
    reserved = Signal(depth, name=name)
    returned = Signal(name=f"{name}_returned")
    m.d.sync += returned.eq(transfer)
    with m.If(taken & ~returned):
        m.d.sync += reserved.eq(Cat(1, reserved[:-1]))
    with m.Elif(returned & ~taken):
        m.d.sync += reserved.eq(reserved[1:])
    return ~reserved[-1]


def chain_stages(m, component, stages):
    """Add ``stages`` (``[(name, component)]``, each with ``input`` and ``output`` streams) to
    ``m`` as submodules and connect them in order between ``component``'s own ``input`` and
    ``output``."""
    source = wiring.flipped(component.input)
    for name, stage in stages:
        m.submodules[name] = stage
        wiring.connect(m, source, stage.input)
        source = stage.output
    wiring.connect(m, source, wiring.flipped(component.output))
