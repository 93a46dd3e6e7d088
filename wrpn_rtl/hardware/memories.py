"""Where a memory goes: the one rule for every generator's memories (and the cost rules)."""

__all__ = ["memory_style", "BLOCK_ROM_MIN_DEPTH", "BLOCK_RAM_MIN_DEPTH"]

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
