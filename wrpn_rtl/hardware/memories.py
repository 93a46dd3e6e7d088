"""Where a memory goes: the one rule for every generator's memories (and the cost rules), and
the ROM in logic that synthesis maps on its own (:class:`RegisteredROM`)."""
from amaranth.hdl import Cat, Const, Elaboratable, Module, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from wrpn_rtl.hardware.arithmetic import select

__all__ = ["memory_style", "memory_attrs", "BLOCK_ROM_MIN_DEPTH", "BLOCK_RAM_MIN_DEPTH",
           "CHOSEN_BLOCK_ROM_MIN_DEPTH", "LUT_RAM_FAMILIES", "LUT_RAM_MAX_DEPTH",
           "LUT_ROM_MAX_DEPTH", "MEMORY_STYLES", "RegisteredROM", "MAPPED_APART"]

#: A ROM (weights, thresholds) this deep or deeper goes to block RAM; shallower ones become
#: logic, where one LUT4 per output bit holds 16 words (a 4-deep, 512-bit-wide ROM costs 512
#: LUTs in logic but 32 iCE40 block RAMs). From 32 words a bit costs two LUT4s and a
#: multiplexer in logic: the digits network's 36 x 256-bit weight ROM (ECP5 design) measured
#: about 1,500 LUT4s in logic, where block RAM holds it in 8 ECP5 DP16KD or 16 iCE40 blocks.
BLOCK_ROM_MIN_DEPTH = 32
#: A table of constants this deep or deeper may be put in block RAM by choice where a device
#: has block RAM to spare (``Folding.tables``), although the rule above keeps it in logic: at
#: 16 rows a LUT4 holds 16 rows of one bit, so each 4-kbit block (16 bits wide) frees 16 LUT4s
#: or more; a shallower table's bits are nearly free in logic (2 rows: a constant or the
#: address bit) and would spread over many blocks.
CHOSEN_BLOCK_ROM_MIN_DEPTH = 16
#: A written memory (the input buffer) this deep or deeper goes to block RAM; shallower ones
#: become flip-flops (iCE40) or LUT RAM (ECP5).
BLOCK_RAM_MIN_DEPTH = 16

#: Device families whose logic can hold memory: an ECP5 slice is 16 words of 4 bits of LUT
#: RAM (Yosys ``ram_style = "distributed"``: TRELLIS_DPR16X4); iCE40 has none (Yosys refuses
#: the style there).
LUT_RAM_FAMILIES = ("ecp5",)
#: With LUT RAM (``lut_ram``), a written memory of 2 to LUT_RAM_MAX_DEPTH words goes to LUT
#: RAM (below 16 words too: a 2 x 128 buffer is 64 LUT4s and 128 flip-flops there, 256
#: flip-flops and a multiplexer per bit otherwise), and a ROM the rules above put in block RAM
#: goes to LUTs up to LUT_ROM_MAX_DEPTH words. For the clock: nextpnr times an ECP5 DP16KD
#: read at 5.8 ns clock-to-out whatever its output register, so a design that reads block RAM
#: cannot reach 150 MHz (the digits ECP5 design, 110-116 MHz, had the dense layer's weight
#: reads among its critical paths); a LUT RAM read is one LUT level. A 16 x 64 buffer takes
#: 16 DPR16X4 (32 LUT4s) and 64 flip-flops for the read register.
LUT_RAM_MAX_DEPTH = 64
LUT_ROM_MAX_DEPTH = 128
#: The places a memory can go (Yosys ``ram_style``): block RAM, LUT RAM, or logic (flip-flops
#: and multiplexers for a written memory, LUTs for a ROM).
MEMORY_STYLES = ("block", "distributed", "logic")


def memory_style(depth, *, writable, lut_ram=False):
    """Yosys ``ram_style`` for a memory of ``depth`` words: "block" where block RAM pays,
    "distributed" (LUT RAM, only with ``lut_ram``: see :data:`LUT_RAM_MAX_DEPTH`), else
    "logic" (the one rule for every generator's memories)."""
    if lut_ram and writable and 2 <= depth <= LUT_RAM_MAX_DEPTH:
        return "distributed"
    limit = BLOCK_RAM_MIN_DEPTH if writable else BLOCK_ROM_MIN_DEPTH
    if depth < limit or (lut_ram and not writable and depth <= LUT_ROM_MAX_DEPTH):
        return "logic"
    return "block"


def memory_attrs(depth, *, writable, collision_reads_unused=False, style=None):
    """The attributes of a memory of ``depth`` words: its ``ram_style`` (``style``, one of
    :data:`MEMORY_STYLES`, where the generator decided; else :func:`memory_style`) and, where
    ``collision_reads_unused``, Yosys's ``no_rw_check``.

    ``collision_reads_unused`` is the generator's promise that whatever the read port gives
    in a cycle that writes the same address is never used (the two ports work on disjoint
    parts, or a forwarding path replaces that read). Without it Yosys keeps the Verilog's
    read-before-write answer, which iCE40 block RAM does not give, so it adds a copy of the
    written word, an address compare and a multiplexer per bit: measured 232 flip-flops and
    126 LUT4s on the default network's UP5K design. Icarus runs check the promise:
    :func:`wrpn_rtl.sim.icarus.poison_collision_reads` makes such a read all ``x``.
    """
    attrs = {"ram_style": style or memory_style(depth, writable=writable)}
    if collision_reads_unused:
        attrs["no_rw_check"] = 1
    return attrs


#: The submodule name of the part of every :class:`RegisteredROM` that synthesis maps apart;
#: the synthesis scripts keep modules of this name out of flattening (Yosys
#: ``keep_hierarchy``) until their LUTs are mapped.
MAPPED_APART = "registered_rom"


class RegisteredROM(wiring.Component):
    """A ROM in logic read into a register: ``data`` is ``words[addr]`` one cycle after
    ``addr`` (an address past the end gives one of the words).

    Written as a balanced tree of multiplexers over constants (:func:`select`), not a Memory:
    Yosys moves a Memory's read register to its address side, which puts the address
    counter's next-state logic in front of the ROM's LUTs. The ROM proper, a register per
    distinct data-bit column (a bit's values over the addresses; equal columns are one
    register, constant ones none), is the submodule ``MAPPED_APART``, which the synthesis
    scripts map as a module of its own: each column is then a LUT function of the address
    alone (one LUT4 per column up to 16 words), whatever the rest of the design. Flattened
    with everything else, ABC9's area recovery re-expressed bits of conv2's 9-word, 1,024-bit
    weight ROM (ECP5 design) through the LUTs of other bits: four or five LUT levels, by how
    the rest of the design happened to map (the critical path in 5 of 17 placements,
    7.7-10.1 ns). The columns are made distinct here because Yosys's ABC9 flow left two
    flip-flops driving one net when a kept module's equal output bits were merged inside it.

    Parameters
    ----------
    layout : ShapeLike
        Shape of one word (a layout is fine).
    words : list
        The words, ``words[i]`` at address ``i`` (ints, or what ``layout.const`` takes); at
        least one.

    Members
    -------
    addr : In(range(len(words)))
    data : Out(layout)
        ``words[addr]`` of the previous cycle (constant bits are constants).
    """

    def __init__(self, layout, words):
        if not words:
            raise ValueError("a RegisteredROM needs at least one word")
        self._layout, self._words = layout, list(words)
        super().__init__({"addr": In(range(len(self._words))), "data": Out(layout)})

    def _columns(self):
        """``(distinct, source)``: the non-constant bit columns (each an int, bit ``i`` the
        bit at address ``i``) in first-use order, and for each data bit either its column's
        index in ``distinct`` or its constant value (a 1-bit ``Const``)."""
        if isinstance(self._layout, data.Layout):
            values = [self._layout.const(word).as_value().value for word in self._words]
        else:
            values = [Const(word, self._layout).value for word in self._words]
        width = len(Value.cast(self.data))
        every = (1 << len(values)) - 1
        distinct, index, source = [], {}, []
        for bit in range(width):
            column = sum(((value >> bit) & 1) << i for i, value in enumerate(values))
            if column in (0, every):
                source.append(Const(int(column == every), 1))
                continue
            if column not in index:
                index[column] = len(distinct)
                distinct.append(column)
            source.append(index[column])
        return distinct, source

    def elaborate(self, platform):
        m = Module()
        distinct, source = self._columns()
        if distinct:
            m.submodules[MAPPED_APART] = rom = _ColumnROM(distinct, len(self._words))
            m.d.comb += rom.addr.eq(self.addr)
        bits = [origin if isinstance(origin, Const) else rom.read[origin] for origin in source]
        m.d.comb += Value.cast(self.data).eq(Cat(*bits))
        return m


class _ColumnROM(Elaboratable):
    """``read`` (bit ``j``: column ``j`` at the address of the previous cycle), registered:
    the part of a :class:`RegisteredROM` that synthesis maps apart."""

    def __init__(self, columns, depth):
        self._columns, self._depth = columns, depth
        self.addr = Signal(range(depth), name="addr")
        self.read = Signal(len(columns), name="read", reset_less=True)

    def elaborate(self, platform):
        m = Module()
        words = [sum(((column >> address) & 1) << j for j, column in enumerate(self._columns))
                 for address in range(self._depth)]
        m.d.sync += self.read.eq(select(self.addr, [Const(word, len(self._columns))
                                                    for word in words]))
        return m
