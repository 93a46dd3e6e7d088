"""The MAC lanes of a matrix-vector unit: ``PE x SIMD`` multiply-accumulate lanes, nothing else.

A module of its own so that synthesis reports it on its own line: the share of a design's
logic that sits here (leaves, adder trees, plane combine and accumulators) is the share doing
the arithmetic the network asks for; everything else (memories, control, requantization,
windows, queues) is overhead around it. See :mod:`wrpn_rtl.hardware.mvu` for the arithmetic.
"""
from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from wrpn_rtl.hardware.arithmetic import delay, pipelined_sum

__all__ = ["MacLanes"]


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
    sum_shape : Shape
        Shape of the offset accumulator ``X`` (unsigned, from the golden bound).

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

    def __init__(self, *, simd, pe, in_bits, weight_layout, planes, sum_shape):
        self._simd, self._pe, self._in_bits = simd, pe, in_bits
        self._weight_layout, self._planes, self._sum_shape = weight_layout, planes, sum_shape
        super().__init__({
            "operands": In(unsigned(simd * in_bits)), "weights": In(weight_layout),
            "valid": In(1), "last": In(1),
            "sums": Out(data.ArrayLayout(sum_shape, pe)), "done": Out(1)})

    @property
    def latency(self):
        """Leaf register, tree levels, combine levels, accumulate."""
        return 1 + _levels(self._simd) + _levels(self._planes) + 1

    def elaborate(self, platform):
        m = Module()
        a_bits = self._in_bits
        lanes = [self.operands[i * a_bits:(i + 1) * a_bits] for i in range(self._simd)]
        partial_depth = 1 + _levels(self._simd) + _levels(self._planes)
        # The accumulators' enable and clear come straight from registers, so no gate lies
        # in front of the flip-flops' enable and reset pins, which span every PE.
        valid = delay(m, self.valid, partial_depth, name="valid_a")
        finish_before = delay(m, self.valid & self.last, partial_depth - 1, name="finish_a")
        # Set by reset, so the running sums, which have no reset of their own, start at 0.
        finish = Signal(init=1, name=f"finish_a_d{partial_depth - 1}")
        m.d.sync += finish.eq(finish_before)
        for p in range(self._pe):
            m.d.comb += self.sums[p].eq(self._pe_accumulator(m, p, lanes, valid, finish))
        m.d.sync += self.done.eq(valid & finish)
        return m

    def _pe_accumulator(self, m, p, lanes, valid, finish):
        """PE ``p``: a leaf per lane and magnitude plane, an adder tree per plane, the planes
        combined, and the running sum of ``X``. ``valid``: a partial sum arrives; ``finish``:
        it is the vector's last (or reset was applied). Returns the register that holds a
        finished ``X`` (valid the cycle after ``valid & finish``)."""
        a_bits, word = self._in_bits, self.weights[p]
        planes = []
        for b in range(self._planes):
            leaves = []
            for i, lane in enumerate(lanes):
                # u = a, or its A-bit complement for a negative weight; masked by the
                # magnitude bit. The XOR/AND sits in the LUT in front of the leaf register
                # (free on LUT+FF fabrics), so every tree level is a bare adder.
                term = lane ^ word.sign[i].replicate(a_bits)
                if "mask" in self._weight_layout.elem_shape.members:
                    term = Mux(word.mask[b][i], term, 0)
                leaf = Signal(a_bits, name=f"pe{p}_plane{b}_leaf{i}", reset_less=True)
                m.d.sync += leaf.eq(term)
                leaves.append(leaf)
            total, _ = pipelined_sum(m, leaves, name=f"pe{p}_plane{b}")
            planes.append(total)
        terms = [plane.shift_left(b) if b else plane for b, plane in enumerate(planes)]
        partial, _ = pipelined_sum(m, terms, name=f"pe{p}_combine")
        # The running sum restarts by a synchronous clear of its register after the last
        # step (the flip-flops' reset pin, driven by the `finish` register alone, not a
        # multiplexer in front of the adder); the finished sum is caught in `result` from
        # the same adder.
        running = Signal(self._sum_shape, name=f"pe{p}_running", reset_less=True)
        result = Signal(self._sum_shape, name=f"pe{p}_x", reset_less=True)
        total = running + partial
        with m.If(finish):
            m.d.sync += [running.eq(0), result.eq(total)]
        with m.Elif(valid):
            m.d.sync += running.eq(total)
        return result


def _levels(count):
    """Register levels of a pipelined sum of ``count`` values."""
    return (count - 1).bit_length() if count > 1 else 0
