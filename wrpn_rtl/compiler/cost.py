"""First-order resource estimates: the one place their rules of thumb live.

Every component's ``estimate()`` returns ``{"logic_cells", "flip_flops", "memory_bits",
"block_rams"}``: LUT4-with-carry cells of logic, flip-flops, bits held in block RAM, and the
iCE40 4-kbit block RAMs (SB_RAM40_4K) those take. The rules below were
fitted to Yosys ``synth_ice40`` cell counts of the components (per-module statistics of the
digits network at two foldings); they steer the compiler's folding search and are printed
beside the synthesis measurement, never instead of it.
"""
import math

from wrpn_rtl.hardware.memories import memory_style

__all__ = ["ZERO", "add", "fifo", "memory", "device_logic_cells"]

ZERO = {"logic_cells": 0, "flip_flops": 0, "memory_bits": 0, "block_rams": 0}

#: The iCE40 block RAM's shapes (depth, width): 4 kbit each.
ICE40_RAM_SHAPES = ((256, 16), (512, 8), (1024, 4), (2048, 2))

# Share of flip-flops that find no LUT of their own to pair with in an iCE40 logic cell
# (pipeline copies, FIFO slots, operand registers): measured 0.74 on the digits network.
UNPAIRED_FLIP_FLOPS = 0.75


def add(*estimates):
    """Sum of estimates (missing keys count 0)."""
    return {key: int(sum(e.get(key, 0) for e in estimates)) for key in ZERO}


def fifo(width, depth):
    """A :class:`~wrpn_rtl.hardware.stream_fifo.StreamFIFO` of ``depth`` words of ``width`` bits."""
    return dict(ZERO, logic_cells=width * depth + 3 * depth, flip_flops=width * depth + 3 * depth)


def memory(width, depth, *, writable):
    """A memory of ``depth`` words of ``width`` bits, placed by :func:`memory_style`: block RAM
    counts its bits; logic counts a LUT4 per bit per 16 words for a constant table (a LUT4 is a
    16 x 1 ROM) and a flip-flop plus a read multiplexer per bit for a writable buffer."""
    if depth <= 1 and not writable:
        return dict(ZERO)
    if memory_style(depth, writable=writable) == "block":
        blocks = min(math.ceil(width / w) * math.ceil(depth / d) for d, w in ICE40_RAM_SHAPES)
        return {"logic_cells": 0, "flip_flops": 0, "memory_bits": width * depth,
                "block_rams": blocks}
    if writable:
        return dict(ZERO, logic_cells=int(width * depth * 1.5), flip_flops=width * depth)
    return dict(ZERO, logic_cells=width * math.ceil(depth / 16) + width * (depth > 16))


def device_logic_cells(estimate):
    """Expected iCE40 logic cells (LUT4 + flip-flop pairs) of an estimate."""
    return int(estimate["logic_cells"] + UNPAIRED_FLIP_FLOPS * estimate["flip_flops"])
