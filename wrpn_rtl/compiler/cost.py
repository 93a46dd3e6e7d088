"""First-order resource estimates: the one place their rules of thumb live.

Every component's ``estimate()`` returns ``{"logic_cells", "flip_flops", "memory_bits",
"block_rams", "dsp_blocks"}``: LUT4-with-carry cells of logic, flip-flops, bits held in block
RAM, the iCE40 4-kbit block RAMs (SB_RAM40_4K) those take, and hard multipliers (SB_MAC16). The rules below were
fitted to Yosys ``synth_ice40`` cell counts of the components (per-module statistics of the
digits network at two foldings); they steer the compiler's folding search and are printed
beside the synthesis measurement, never instead of it.
"""
import math

from wrpn_rtl.hardware.memories import memory_style

__all__ = ["ZERO", "add", "fifo", "memory", "device_logic_cells", "adder_tree",
           "threshold_requantizer", "serial_requantizer", "serial_control",
           "search_requantizer", "search_control", "requantization_price",
           "affine_requantizer", "logit_adder", "matrix_vector_unit",
           "sliding_window", "register_window", "max_pool_reducer", "block_max_pool", "vector_replay",
           "width_converter", "classifier_head", "block_queue"]

ZERO = {"logic_cells": 0, "flip_flops": 0, "memory_bits": 0, "block_rams": 0, "dsp_blocks": 0}

#: The iCE40 block RAM's shapes (depth, width): 4 kbit each.
ICE40_RAM_SHAPES = ((256, 16), (512, 8), (1024, 4), (2048, 2))

#: Logic cells an iCE40 design takes beyond its LUT4s, per flip-flop: a flip-flop shares a
#: cell with a LUT that drives only it, so one loaded from a register, a memory or a shared
#: LUT takes a cell of its own. 0.74 measured on the digits network before the flip-flop
#: packing work; on the placed UP5K digits designs at 1031 and 768 cycles per image (2977 and
#: 3693 logic cells) the estimate's LUT4s and flip-flops give 0.67 and 0.55 (a share of
#: flip-flops in the MAC lanes, which pack, that grows with the lanes; splitting the two
#: apart did not fit both better), so 0.6: the estimate within 5 % of either.
UNPAIRED_FLIP_FLOPS = 0.6


def add(*estimates):
    """Sum of estimates (missing keys count 0)."""
    return {key: int(sum(e.get(key, 0) for e in estimates)) for key in ZERO}


def fifo(width, depth):
    """A :class:`~wrpn_rtl.hardware.stream_fifo.StreamFIFO` of ``depth`` words of ``width`` bits."""
    return dict(ZERO, logic_cells=width * depth + 3 * depth, flip_flops=width * depth + 3 * depth)


def block_queue(width, depth):
    """A :class:`~wrpn_rtl.hardware.stream_fifo.BlockQueue` of ``depth`` words of ``width``
    bits: its block RAM (the next power of two above ``depth`` words), two pointers with their
    incrementers, their compare and the output flag."""
    words = 1 << depth.bit_length()
    bits = max(1, (words - 1).bit_length())
    return add(dict(ZERO, logic_cells=3 * bits + 2, flip_flops=2 * bits + 1),
               memory(width, words, writable=True, style="block"))


def memory(width, depth, *, writable, style=None):
    """A memory of ``depth`` words of ``width`` bits, placed by :func:`memory_style` (or in
    ``style``, one of :data:`~wrpn_rtl.hardware.memories.MEMORY_STYLES`): block RAM counts its
    bits; logic counts a LUT4 per bit per 16 words for a constant table (a LUT4 is a 16 x 1
    ROM) and a flip-flop plus a read multiplexer per bit for a writable buffer; LUT RAM (ECP5)
    counts two LUT4s per 16 words of 4 bits (a TRELLIS_DPR16X4), a multiplexer per bit for
    each further 16 words, and the read register."""
    if depth <= 1 and not writable:
        return dict(ZERO)
    style = style or memory_style(depth, writable=writable)
    if style == "block":
        blocks = min(math.ceil(width / w) * math.ceil(depth / d) for d, w in ICE40_RAM_SHAPES)
        return {"logic_cells": 0, "flip_flops": 0, "memory_bits": width * depth,
                "block_rams": blocks}
    if style == "distributed":
        slices = math.ceil(depth / 16)
        return dict(ZERO, logic_cells=2 * math.ceil(width / 4) * slices + width * (slices - 1),
                    flip_flops=width)
    if writable:
        return dict(ZERO, logic_cells=int(width * depth * 1.5), flip_flops=width * depth)
    return dict(ZERO, logic_cells=width * math.ceil(depth / 16) + width * (depth > 16))


#: Device families the estimate knows how to count logic for.
FAMILIES = ("ice40", "ecp5", "asic")


def device_logic_cells(estimate, family="ice40"):
    """The logic an estimate is expected to take on a device ``family``: iCE40 logic cells
    (a LUT4 and a flip-flop share a cell, so flip-flops without a LUT of their own add cells);
    ECP5 LUT4s (``TRELLIS_COMB``; a slice's flip-flops are counted apart, and the ECP5 devices
    have as many as LUTs) and, for the asic target, the LUT4 count as a size measure."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, not {family!r}")
    if family == "ice40":
        return int(estimate["logic_cells"] + UNPAIRED_FLIP_FLOPS * estimate["flip_flops"])
    return int(estimate["logic_cells"])


# -- the components, as functions of their parameters ------------------------------------------
# Every fitted constant lives here. Each function returns an estimate dict (see :data:`ZERO`);
# the components' ``estimate()`` call them with their own parameters, and the folding search
# calls them through the components' pure-Python geometry.

#: Request generator, issuer and counters of a sliding window: a fixed part plus this much per
#: bit of the line buffer's address (its loops keep addresses, positions and offsets in
#: registers of about that width). Logic fitted to the placed windows of ``bench window`` and
#: the digits conv2 window at 16 lanes (4 to 10 address bits, iCE40 and ECP5): within 11 %
#: except the 5x5 window on ECP5 (19 % under); flip-flops to the conv2 window in the ECP5
#: network (within 2 %).
WINDOW_CONTROL = {"logic_cells": 100, "flip_flops": 60}
WINDOW_CONTROL_PER_ADDRESS_BIT = {"logic_cells": 22, "flip_flops": 14}
#: Pointers and flags of a vector replay.
REPLAY_CONTROL = {"logic_cells": 30, "flip_flops": 30}


def adder_tree(leaves, leaf_bits):
    """``(cells, flip_flops)`` of a binary adder tree registered at every level: level ``l``
    adds pairs of ``(leaf_bits + l)``-bit values; an odd value out is registered as it is."""
    cells = flops = 0
    width = leaf_bits
    while leaves > 1:
        pairs = leaves // 2
        cells += pairs * (width + 1)
        flops += (pairs + leaves % 2) * (width + 1)
        leaves, width = pairs + leaves % 2, width + 1
    return cells, flops


def threshold_requantizer(*, levels, compare_bits, out_bits):
    """One PE's parallel thresholds: a comparator (a cell per two bits) per level and the
    pipelined count of those passed."""
    return dict(ZERO, logic_cells=levels * compare_bits // 2 + levels,
                flip_flops=levels + out_bits)


def serial_requantizer(*, comparators, compare_bits, x_bits, out_bits):
    """One PE's serial requantizer: ``comparators`` comparators and their registers, the count
    of those passed, the running count and the held accumulator."""
    tree_cells, tree_flops = adder_tree(comparators, 1)
    return dict(ZERO, logic_cells=comparators * (compare_bits // 2 + 1) + tree_cells + out_bits,
                flip_flops=comparators + tree_flops + out_bits + x_bits)


def serial_control(*, table_words, steps):
    """The serial requantizers' shared control: the table address and step counters and the
    step markers."""
    bits = max(1, (table_words - 1).bit_length()) + max(1, (steps - 1).bit_length())
    return dict(ZERO, logic_cells=bits + 4, flip_flops=bits + 8)


def search_requantizer(*, compare_bits, x_bits, out_bits):
    """One PE's binary search (``out_bits`` steps): one comparator behind a multiplexer
    between the two thresholds read, the held accumulator, the decided bits with the next
    row's bits, and the code register with its complement."""
    return dict(ZERO, logic_cells=compare_bits // 2 + 1 + compare_bits + 2 * out_bits,
                flip_flops=x_bits + 2 * out_bits + 1)


def search_control(*, folds, out_bits):
    """The search requantizers' shared control: the one-hot step register and the fold being
    searched."""
    fold_bits = max(0, (folds - 1).bit_length())
    return dict(ZERO, logic_cells=out_bits + fold_bits, flip_flops=out_bits + fold_bits)


#: What a block RAM is worth in logic cells when a requantizer form or a table's place is
#: chosen: the same share of the smallest device (an iCE40 UP5K: 5280 logic cells, 30 block
#: RAMs), so a table moves to block RAM only where it saves at least that much logic.
BLOCK_RAM_PRICE = 5280 // 30


def requantization_price(estimate):
    """One number to choose a requantizer form by: iCE40 logic cells (flip-flops without a
    LUT add cells) plus :data:`BLOCK_RAM_PRICE` per block RAM."""
    return device_logic_cells(estimate, "ice40") + BLOCK_RAM_PRICE * estimate["block_rams"]


def affine_requantizer(*, x_bits, multiplier_bits, sum_bits, out_bits, dsp=False):
    """One PE's affine requantizer: the operand's complement (a cell per bit), the multiplier
    in two levels (a cell per partial-product bit, then the sum of the 4-bit chunks'
    products: :func:`~wrpn_rtl.hardware.arithmetic.pipelined_product`), one adder, the clamp,
    and their registers (the table's bias delayed alongside). With ``dsp`` an SB_MAC16 takes
    the operand registers, the product, the adder and its register, and the bias's second
    delay (measured on the UP5K digits design: Yosys's inference absorbs all of them), so the
    complement, the clamp, the bias's first delay and the code stay in the fabric."""
    if dsp:
        return dict(ZERO, logic_cells=x_bits + out_bits, flip_flops=sum_bits + out_bits,
                    dsp_blocks=1)
    chunks = -(-multiplier_bits // 4)
    product_bits = x_bits + multiplier_bits
    return dict(ZERO, logic_cells=x_bits * multiplier_bits + (chunks - 1) * product_bits
                + x_bits + sum_bits + out_bits,
                flip_flops=chunks * (x_bits + 4) + product_bits + 3 * sum_bits + out_bits)


def requantizer_sharing(*, requantizers, pe_per_requantizer, x_bits, out_bits, table_rows):
    """What PEs sharing requantizers add (``pe_per_requantizer = G > 1``): per requantizer a
    ``G``-way multiplexer of the sums (``G - 1`` cells per bit) and its register; the gathered
    word (a flip-flop per code bit, loaded by enable); the group counter, the table's address
    counter and the one-hot slot of the gathering, with a cell per bit of each."""
    share = pe_per_requantizer
    control = (max(1, (share - 1).bit_length()) + max(1, (table_rows - 1).bit_length())
               + share)
    return dict(ZERO, logic_cells=requantizers * (share - 1) * x_bits + control,
                flip_flops=requantizers * (x_bits + share * out_bits) + control + 1)


def logit_adder(*, accumulator_bits):
    """One PE's bias adder of a logits layer and its register."""
    return dict(ZERO, logic_cells=accumulator_bits, flip_flops=accumulator_bits)


def matrix_vector_unit(*, simd, pe, in_bits, planes, x_bits, requantization, weight_word_bits,
                       weight_words, steps, buffered_words, output_word_bits, queue_depth,
                       queue_style=None,
                       weights_registered=False, memory_styles=None, dsp_pairs=0):
    """A matrix-vector unit: a cell per leaf, adder and plane-combine bit (the
    ``2 * dsp_pairs`` lanes per PE in hard multipliers take a DSP block per pair, the
    operands' complement LUTs, the operand and product registers, and an adder tree over
    the pairs' fields), the accumulator (``steps`` per vector: a result register for 1, else
    an adder, the running sum and the result register), the
    output stage (``requantization``: every PE's requantizer or bias adder with its table of
    constants), the weight ROM (``weights_registered``: and a flip-flop per word bit, plus the
    operands' wait register), the input buffer
    (``buffered_words`` of ``simd * in_bits``; 0 when replayed) and the output queue (in
    flip-flops, or with ``queue_style`` "block" a :func:`block_queue`); the
    memories where ``memory_styles`` (``{"weights", "input_buffer"}``) says, else by
    :func:`memory_style`. Adds
    ``partial_product_bound`` (``SIMD * PE * in_bits * planes``)."""
    logic_lanes = simd - 2 * dsp_pairs
    leaf_bits = logic_lanes * in_bits * planes * pe
    tree_cells, tree_flops = adder_tree(logic_lanes, in_bits)
    cells = leaf_bits + tree_cells * planes * pe
    flops = leaf_bits + tree_flops * planes * pe
    # A DSP pair: the two operands' complement LUTs, and its operand and product registers
    # in the fabric (Yosys's SB_MAC16 inference absorbs neither: the packed operands have
    # constant gaps and only the middle field of the product is used), then the fields' tree.
    field = in_bits + planes + 1
    dsp_cells, dsp_flops = adder_tree(dsp_pairs, field)
    cells += (dsp_cells + dsp_pairs * 2 * in_bits) * pe
    flops += (dsp_flops + dsp_pairs * (2 * in_bits + 2 * planes + field)) * pe
    terms = (planes if logic_lanes else 0) + (1 if dsp_pairs else 0)
    cells += (terms - 1) * x_bits * pe                    # plane combine
    flops += (terms - 1) * x_bits * pe
    cells += x_bits * pe if steps > 1 else 0              # accumulator
    flops += (2 if steps > 1 else 1) * x_bits * pe
    if weights_registered:
        flops += weight_word_bits + simd * in_bits + 3
    datapath = {"logic_cells": int(cells), "flip_flops": int(flops), "memory_bits": 0,
                "dsp_blocks": pe * dsp_pairs}
    styles = memory_styles or {}
    memories = [memory(weight_word_bits, weight_words, writable=False,
                       style=styles.get("weights"))]
    if buffered_words:
        memories.append(memory(simd * in_bits, buffered_words, writable=True,
                               style=styles.get("input_buffer")))
    queue = (block_queue(output_word_bits, queue_depth) if queue_style == "block"
             else fifo(output_word_bits, queue_depth))
    total = add(datapath, requantization, *memories, queue)
    total["partial_product_bound"] = simd * pe * in_bits * planes
    return total


def sliding_window(*, word_bits, buffer_words, queue_depth, style=None):
    """A sliding window: its control (:data:`WINDOW_CONTROL`, growing with the address width
    of the ``buffer_words`` words), the output queue and the line buffer (in ``style``, or by
    :func:`memory_style`)."""
    address_bits = max(1, (buffer_words - 1).bit_length())
    control = {key: WINDOW_CONTROL[key] + WINDOW_CONTROL_PER_ADDRESS_BIT[key] * address_bits
               for key in WINDOW_CONTROL}
    return add(dict(ZERO, **control), fifo(word_bits, queue_depth),
               memory(word_bits, buffer_words, writable=True, style=style))


def register_window(*, chain_bits, window_bits, positions):
    """A register window: the shift-register chain, the held window (its output register) and
    the pending one (with a multiplexer per bit in front of the hold), position counters and
    masks."""
    counters = 2 * max(1, (positions - 1).bit_length())
    control = dict(ZERO, logic_cells=counters + 14, flip_flops=counters + 9)
    chain = dict(ZERO, logic_cells=chain_bits // 4 + window_bits,
                 flip_flops=chain_bits + 2 * window_bits)
    return add(control, chain)


def max_pool_reducer(*, stored_bits):
    """The lane-wise max reducer behind a window: running maxima (``stored_bits``), a
    comparator and a LUT per bit, and counters."""
    return dict(ZERO, logic_cells=stored_bits + 40, flip_flops=stored_bits + 15)


def block_max_pool(*, word_bits, partial_words, queue_depth, style=None, forwarding=False):
    """A block max-pool: counters, the lane-wise max (twice with ``forwarding``: once against
    the memory, once against the forwarding register), three word registers, the
    partial-maximum memory of ``partial_words`` words (in ``style``, or by
    :func:`memory_style`) and the output queue."""
    max_cells = (3 if forwarding else 2) * word_bits
    control = dict(ZERO, logic_cells=50 + max_cells, flip_flops=40 + 3 * word_bits)
    return add(control, memory(word_bits, partial_words, writable=True, style=style),
               fifo(word_bits, queue_depth))


def vector_replay(*, word_bits, vector_words, style=None, slices=1):
    """A vector replay: two vectors of memory (its read port is the output; in ``style``, or
    by :func:`memory_style`), its control (:data:`REPLAY_CONTROL`) and, gathering ``slices >
    1`` input words per word, the one-hot slice register and its enables."""
    gather = {"logic_cells": slices, "flip_flops": slices} if slices > 1 else ZERO
    return add(dict(ZERO, **REPLAY_CONTROL), gather,
               memory(word_bits, 2 * vector_words, writable=True, style=style))


def width_converter(*, in_lanes, out_lanes, group_lanes, bits):
    """A width converter through ``group_lanes = lcm(in, out)`` lanes: the gather's word slots
    (its output word), the scatter's held word and its lane multiplexer."""
    wide = group_lanes * bits
    flops = cells = 0
    if group_lanes > in_lanes:
        flops, cells = flops + wide, cells + 12
    if group_lanes > out_lanes:
        flops += wide
        cells += out_lanes * bits * (group_lanes // out_lanes - 1) // 2 + 8
    return dict(ZERO, logic_cells=int(cells), flip_flops=int(flops))


def classifier_head(*, classes, lanes, logit_bits, label_bits):
    """The classifier head: the logit registers (shifted in, an enable and no LUT), the
    select of the lane compared (``lanes - 1`` multiplexers per logit bit), one comparator
    against the best (into a register), the class and lane counters; flip-flops: the logits,
    the best, the label, the counters and the compare's flags."""
    lane_bits = max(0, (lanes - 1).bit_length())
    return dict(ZERO, logic_cells=int(lanes * logit_bits + 2 * label_bits + lane_bits + 8),
                flip_flops=int(classes * logit_bits + logit_bits + 2 * label_bits + lane_bits
                               + 7))
