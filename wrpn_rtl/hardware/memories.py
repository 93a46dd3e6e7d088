"""Where a memory goes: the one rule for every generator's memories (and the cost rules)."""

__all__ = ["memory_style", "memory_attrs", "BLOCK_ROM_MIN_DEPTH", "BLOCK_RAM_MIN_DEPTH",
           "CHOSEN_BLOCK_ROM_MIN_DEPTH"]

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


def memory_style(depth, *, writable):
    """Yosys ``ram_style`` for a memory of ``depth`` words: "block" where block RAM pays,
    else "logic" (the one rule for every generator's memories)."""
    limit = BLOCK_RAM_MIN_DEPTH if writable else BLOCK_ROM_MIN_DEPTH
    return "block" if depth >= limit else "logic"


def memory_attrs(depth, *, writable, collision_reads_unused=False, style=None):
    """The attributes of a memory of ``depth`` words: its ``ram_style`` (``style``, "block" or
    "logic", where the compiler chose; else :func:`memory_style`) and, where
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
