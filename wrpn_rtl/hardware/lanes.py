"""The MAC lanes of a matrix-vector unit: ``PE x SIMD`` multiply-accumulate lanes, nothing else.

A module of its own so that synthesis reports it on its own line: the share of a design's
logic that sits here (leaves, adder trees, plane combine and accumulators) is the share doing
the arithmetic the network asks for; everything else (memories, control, requantization,
windows, queues) is overhead around it. See :mod:`wrpn_rtl.hardware.mvu` for the arithmetic.

DSP pairs
---------
A lane's product ``m * u`` (``P``-bit weight magnitude, ``A``-bit operand or its complement)
can go to a hard multiplier (iCE40 SB_MAC16) two lanes at a time: with ``k = A + P + 1``,

    ``(u0 + u1 * 2**k) * (m1 + m0 * 2**k) = u0*m1 + (u0*m0 + u1*m1) * 2**k + u1*m0 * 2**(2k)``

and since every term is unsigned, ``u0*m1 < 2**(A+P) <= 2**k`` and
``u0*m0 + u1*m1 < 2**(A+P+1) = 2**k``, so bits ``[k, 2k)`` of the product are exactly the
pair's sum: no carry reaches them from below and none leaves them. The packed operands are
``2A + P + 1`` and ``A + 2P + 1`` bits (:func:`dsp_operand_bits`), which must fit the
multiplier (:data:`DSP_OPERAND_BITS`). Each pair's field joins the PE's sum with weight 1, like
plane 0. The operand and product registers stay in the fabric: Yosys absorbs neither into the
SB_MAC16 (the packed operands have constant gaps, and only the product's middle field is
used), so on ternary weights a pair costs about what two lanes in logic cost; wider weights,
whose lanes take a leaf and a tree per magnitude plane, gain.

Accumulator restart
-------------------
A vector's running sum must start again from its first step, and its finished sum must stay
in a result register while the next vector accumulates. Two forms, each giving every adder
output one flip-flop to feed, so a packer can put the register in its adder's cell:

- "load" (iCE40, ASIC): the first step loads the running sum through a multiplexer
  (``first ? partial : running + partial``), and the result register copies the running sum in
  the cycle after the last step. On iCE40 Yosys folds the multiplexer into the adder's LUT
  (its fourth input is free beside the carry's), so each running-sum bit is one logic cell;
  measured on the default UP5K design, 65 fewer logic cells than "clear" and the same LUT4s.
- "clear" (ECP5): the running sum's register is cleared synchronously after the last step
  (its reset pin), and the result register takes the adder's output in that cycle. An ECP5
  adder is carry cells whose LUTs take no multiplexer, so "load" would add a LUT per bit in
  the loop (measured: 9 LUT4s on an 11-bit accumulator); "clear" is one cycle faster.
"""
import numbers

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from wrpn_rtl.hardware.arithmetic import delay, pipelined_sum

__all__ = ["MacLanes", "DSP_OPERAND_BITS", "RESTARTS", "check_dsp_pairs", "dsp_operand_bits",
           "mac_lanes_latency"]

#: The accumulator's restart forms (see the module docstring).
RESTARTS = ("load", "clear")

#: Operand bits of the hard multipliers DSP pairs use: the iCE40 SB_MAC16 multiplies 16 x 16
#: (ECP5's MULT18X18D 18 x 18).
DSP_OPERAND_BITS = 16


def dsp_operand_bits(in_bits, planes):
    """``(a, b)``: the packed operand widths of a DSP pair of ``in_bits``-bit operands and
    ``planes``-bit weight magnitudes (``2A + P + 1`` and ``A + 2P + 1``)."""
    field = in_bits + planes + 1
    return in_bits + field, planes + field


def check_dsp_pairs(dsp_pairs, *, simd, in_bits, planes, binary):
    """Raise ValueError unless ``dsp_pairs`` DSP pairs per PE fit the lanes: an integer in
    ``[0, simd // 2]``, and 0 for binary weights (``binary``: no magnitude to multiply) or
    where the packed operands (:func:`dsp_operand_bits`) exceed :data:`DSP_OPERAND_BITS`."""
    if isinstance(dsp_pairs, bool) or not isinstance(dsp_pairs, numbers.Integral) \
            or not 0 <= dsp_pairs <= simd // 2:
        raise ValueError(f"dsp_pairs must be an integer in [0, {simd // 2}] (half the {simd} "
                         f"lanes), not {dsp_pairs!r}")
    if dsp_pairs and binary:
        raise ValueError(f"dsp_pairs must be 0 for 1-bit weights (no magnitude to multiply), "
                         f"not {dsp_pairs!r}")
    widths = dsp_operand_bits(in_bits, planes)
    if dsp_pairs and max(widths) > DSP_OPERAND_BITS:
        raise ValueError(f"dsp_pairs must be 0 for {in_bits}-bit operands and {planes}-bit "
                         f"weight magnitudes (packed operands of {widths[0]} and {widths[1]} "
                         f"bits exceed the {DSP_OPERAND_BITS}-bit multiplier), not "
                         f"{dsp_pairs!r}")
    return dsp_pairs


def mac_lanes_latency(*, simd, planes, dsp_pairs=0, steps=1, restart="load"):
    """Cycles from the operands to ``done`` of :class:`MacLanes`: the leaf registers and each
    plane's adder tree over the lanes in logic (or, for the DSP pairs, the operand and product
    registers and the tree over the pairs' fields, whichever is longer), the combine tree, and
    the accumulate (for one-step vectors the result register; for more, with ``restart``
    "load" the running sum and then the result register's copy, with "clear" one register)."""
    accumulate = 2 if steps > 1 and restart == "load" else 1
    return _partial_depth(simd, planes, dsp_pairs) + accumulate


def _partial_depth(simd, planes, dsp_pairs):
    logic_lanes = simd - 2 * dsp_pairs
    depths = ([1 + _levels(logic_lanes)] if logic_lanes else []) + \
        ([2 + _levels(dsp_pairs)] if dsp_pairs else [])
    terms = (planes if logic_lanes else 0) + (1 if dsp_pairs else 0)
    return max(depths) + _levels(terms)


class MacLanes(wiring.Component):
    """``PE`` sums of ``SIMD`` sign-magnitude products per cycle, accumulated over a vector.

    Parameters
    ----------
    simd, pe : int
        Lanes per PE and PEs.
    in_bits : int
        Activation code width ``A``.
    weight_layout : data.ArrayLayout
        One weight word: ``pe`` entries of ``{"sign": unsigned(simd)}`` and, for weights wider
        than 1 bit, ``"mask": ArrayLayout(unsigned(simd), planes)`` (bit ``i``: lane ``i``).
    planes : int
        Magnitude bit planes ``P`` (1 for binary and ternary weights).
    dsp_pairs : int
        Lanes ``0 .. 2*dsp_pairs - 1`` of every PE multiply in hard multipliers, two per
        multiplier (see the module docstring; needs weights wider than 1 bit and packed
        operands within :data:`DSP_OPERAND_BITS`); the rest in logic. Default 0.
    sum_shape : Shape
        Shape of the offset accumulator ``X`` (unsigned, from the golden bound).
    steps : int
        Steps per vector (the unit's ``SF``). With 1, each partial sum is a whole vector's
        and the result register takes it (no adder, no running sum); with more, a running
        sum accumulates them.
    restart : "load" or "clear"
        How the running sum starts each vector (:data:`RESTARTS`, see the module docstring).
        Default "load".

    Members
    -------
    operands : In(unsigned(simd * in_bits))
        Lane ``i`` is bits ``[i*A, (i+1)*A)``. Like ``weights``, a register or a memory's
        read data outside: both feed the leaf LUTs directly.
    weights : In(weight_layout)
    valid, last : In(1)
        The step's operands are present; it is the last step of a vector.
    sums : Out(ArrayLayout(sum_shape, pe))
        The finished ``X`` of each PE, held until the next vector finishes.
    done : Out(1)
        ``sums`` was updated in this cycle (one cycle after it became final).
    latency : int
        Cycles from ``valid & last`` on the inputs to ``done``.
    """

    def __init__(self, *, simd, pe, in_bits, weight_layout, planes, sum_shape, steps,
                 dsp_pairs=0, restart="load"):
        check_dsp_pairs(dsp_pairs, simd=simd, in_bits=in_bits, planes=planes,
                        binary="mask" not in weight_layout.elem_shape.members)
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
            raise ValueError(f"steps must be a positive integer, not {steps!r}")
        if restart not in RESTARTS:
            raise ValueError(f"restart must be one of {', '.join(RESTARTS)}, not {restart!r}")
        self._dsp_pairs, self._steps, self._restart = dsp_pairs, int(steps), restart
        self._simd, self._pe, self._in_bits = simd, pe, in_bits
        self._weight_layout, self._planes, self._sum_shape = weight_layout, planes, sum_shape
        super().__init__({
            "operands": In(unsigned(simd * in_bits)), "weights": In(weight_layout),
            "valid": In(1), "last": In(1),
            "sums": Out(data.ArrayLayout(sum_shape, pe)), "done": Out(1)})

    @property
    def latency(self):
        """Leaf register, tree levels, combine levels, accumulate
        (:func:`mac_lanes_latency`)."""
        return mac_lanes_latency(simd=self._simd, planes=self._planes,
                                 dsp_pairs=self._dsp_pairs, steps=self._steps,
                                 restart=self._restart)

    def elaborate(self, platform):
        m = Module()
        a_bits = self._in_bits
        lanes = [self.operands[i * a_bits:(i + 1) * a_bits] for i in range(self._simd)]
        partial_depth = _partial_depth(self._simd, self._planes, self._dsp_pairs)
        # The accumulators' enable and clear come straight from registers, so no gate lies
        # in front of the flip-flops' enable and reset pins, which span every PE.
        valid = delay(m, self.valid, partial_depth, name="valid_a")
        if self._steps == 1:
            # every partial sum is a whole vector's: the result register takes it
            for p in range(self._pe):
                partial = self._pe_partial(m, p, lanes)
                result = Signal(self._sum_shape, name=f"pe{p}_x", reset_less=True)
                with m.If(valid):
                    m.d.sync += result.eq(partial)
                m.d.comb += self.sums[p].eq(result)
            m.d.sync += self.done.eq(valid)
            return m
        if self._restart == "load":
            done = self._accumulate_by_load(m, lanes, valid, partial_depth)
        else:
            done = self._accumulate_by_clear(m, lanes, valid, partial_depth)
        m.d.sync += self.done.eq(done)
        return m

    def _accumulate_by_load(self, m, lanes, valid, partial_depth):
        """Restart "load": a vector's first step loads the running sum, the others add to it
        (the multiplexer's select is the register `first`, set by reset, so the running sums
        need no reset of their own); the result register copies the running sum in the cycle
        after the last step. Returns the bit that is high in the cycle the copy is made."""
        last = delay(m, self.valid & self.last, partial_depth, name="last_a")
        first = Signal(init=1, name="first_a")
        finished = Signal(name="finished_a")
        with m.If(valid):
            m.d.sync += first.eq(last)
        m.d.sync += finished.eq(valid & last)
        for p in range(self._pe):
            partial = self._pe_partial(m, p, lanes)
            running = Signal(self._sum_shape, name=f"pe{p}_running", reset_less=True)
            result = Signal(self._sum_shape, name=f"pe{p}_x", reset_less=True)
            with m.If(valid):
                m.d.sync += running.eq(Mux(first, partial, running + partial))
            with m.If(finished):
                m.d.sync += result.eq(running)
            m.d.comb += self.sums[p].eq(result)
        return finished

    def _accumulate_by_clear(self, m, lanes, valid, partial_depth):
        """Restart "clear": the running sum's register is cleared synchronously after the
        last step (its reset pin, driven by the `finish` register alone, not a multiplexer in
        front of the adder), and the result register takes the adder's output in that
        cycle. Returns the bit that is high in the cycle the result is taken."""
        finish_before = delay(m, self.valid & self.last, partial_depth - 1, name="finish_a")
        # Set by reset, so the running sums, which have no reset of their own, start at 0.
        finish = Signal(init=1, name=f"finish_a_d{partial_depth - 1}")
        m.d.sync += finish.eq(finish_before)
        for p in range(self._pe):
            partial = self._pe_partial(m, p, lanes)
            running = Signal(self._sum_shape, name=f"pe{p}_running", reset_less=True)
            result = Signal(self._sum_shape, name=f"pe{p}_x", reset_less=True)
            total = running + partial
            with m.If(finish):
                m.d.sync += [running.eq(0), result.eq(total)]
            with m.Elif(valid):
                m.d.sync += running.eq(total)
            m.d.comb += self.sums[p].eq(result)
        return valid & finish

    def _pe_partial(self, m, p, lanes):
        """PE ``p``: a leaf per lane and magnitude plane, an adder tree per plane, and the
        planes combined. Returns the registered partial sum of one step, valid
        :func:`_partial_depth` cycles after the step's operands."""
        a_bits, word = self._in_bits, self.weights[p]
        has_mask = "mask" in self._weight_layout.elem_shape.members
        pairs = self._dsp_pairs

        def operand(i):
            # u = a, or its A-bit complement for a negative weight
            return lanes[i] ^ word.sign[i].replicate(a_bits)

        logic_lanes = range(2 * pairs, self._simd)
        planes = []
        for b in range(self._planes if logic_lanes else 0):
            leaves = []
            for i in logic_lanes:
                # the operand masked by the magnitude bit: the XOR/AND sits in the LUT in
                # front of the leaf register (free on LUT+FF fabrics), so every tree level is
                # a bare adder
                term = Mux(word.mask[b][i], operand(i), 0) if has_mask else operand(i)
                leaf = Signal(a_bits, name=f"pe{p}_plane{b}_leaf{i}", reset_less=True)
                m.d.sync += leaf.eq(term)
                leaves.append(leaf)
            total, _ = pipelined_sum(m, leaves, name=f"pe{p}_plane{b}")
            planes.append(total)
        terms = [plane.shift_left(b) if b else plane for b, plane in enumerate(planes)]
        if pairs:
            dsp_sum = self._dsp_pairs_sum(m, p, operand, word)
            logic_depth = 1 + _levels(len(logic_lanes)) if logic_lanes else 0
            dsp_depth = 2 + _levels(pairs)
            depth = max(logic_depth, dsp_depth)
            terms = [delay(m, term, depth - logic_depth, name=f"pe{p}_plane{b}_wait",
                           reset_less=True) for b, term in enumerate(terms)]
            terms.append(delay(m, dsp_sum, depth - dsp_depth, name=f"pe{p}_dsp_wait",
                               reset_less=True))
        partial, _ = pipelined_sum(m, terms, name=f"pe{p}_combine")
        return partial

    def _dsp_pairs_sum(self, m, p, operand, word):
        """PE ``p``'s DSP pairs: lanes ``2j`` and ``2j+1`` packed into one product (see the
        module docstring) between an operand register and a product register, the field
        ``[k, 2k)`` of each, and their adder tree. Returns the sum, valid
        ``2 + levels(pairs)`` cycles after the operands."""
        a_bits, planes = self._in_bits, self._planes
        field = a_bits + planes + 1
        a_width, b_width = dsp_operand_bits(a_bits, planes)
        fields = []
        for j in range(self._dsp_pairs):
            low, high = 2 * j, 2 * j + 1
            magnitude = [Cat(*(word.mask[b][i] for b in range(planes))) for i in (low, high)]
            packed_u = Signal(a_width, name=f"pe{p}_dsp{j}_u", reset_less=True)
            packed_m = Signal(b_width, name=f"pe{p}_dsp{j}_m", reset_less=True)
            product = Signal(a_width + b_width, name=f"pe{p}_dsp{j}_product", reset_less=True)
            m.d.sync += [packed_u.eq(Cat(operand(low), Const(0, field - a_bits), operand(high))),
                         packed_m.eq(Cat(magnitude[1], Const(0, field - planes), magnitude[0])),
                         product.eq(packed_u * packed_m)]
            fields.append(product[field:2 * field])
        total, _ = pipelined_sum(m, fields, name=f"pe{p}_dsp")
        return total


def _levels(count):
    """Register levels of a pipelined sum of ``count`` values."""
    return (count - 1).bit_length() if count > 1 else 0
