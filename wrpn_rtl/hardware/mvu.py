"""Matrix-vector unit: ``out = threshold(W @ x)`` (or raw accumulators) on streams, PE x SIMD folded.

Folding (as in FINN)
--------------------
``W`` is the golden layer's weight matrix, ``out_features x in_features`` with
``in_features = K_h * K_w * C_in`` in the window order of :mod:`wrpn_rtl.golden.ops`. ``PE``
output channels and ``SIMD`` input lanes work in parallel: a vector crosses the input stream as
``SF = in_features / SIMD`` words of ``SIMD`` codes (word ``sf`` holds elements
``sf*SIMD .. sf*SIMD+SIMD-1``), and its result leaves as ``NF = out_features / PE`` words of
``PE`` codes (word ``nf`` holds channels ``nf*PE .. nf*PE+PE-1``). The unit takes ``NF * SF``
cycles per vector, back to back with no bubble: the first neuron fold reads the input stream
and stores it; the other folds replay the stored words.

Datapath (one exact form for every precision)
---------------------------------------------
A weight code is sign-magnitude ``w = (-1)**s * m`` with ``P = max(1, weight_bits - 1)``
magnitude bit planes ``m = sum_b 2**b * m_b`` (binary weights have ``m = 1``: no planes are
stored). For an ``A``-bit activation ``a``, let ``u = a`` if ``s = 0`` else ``u = ~a`` (the
``A``-bit complement, ``2**A - 1 - a``); then ``w * a = m * u - s * m * (2**A - 1)``. So each PE
accumulates the unsigned

    ``X = sum over cycles of sum_b 2**b * sum_i m_ib * u_i``

and the true accumulator is ``acc = X + C`` with the per-channel constant
``C = -(2**A - 1) * sum_{w_i < 0} |w_i|``, known from the weights alone. Each leaf is an XOR
and an AND in front of a register; each plane is summed by an adder tree with a register after
every level, so the critical path is about one adder whatever ``SIMD`` is. This is the
conditional negate plus popcount of binary weights, the add / subtract / skip of ternary
weights and the sign-magnitude partial products of wider weights in one structure, with
unsigned operands throughout. ``C`` never costs an adder: it is folded into the thresholds, or
into the logit bias that a logits layer adds once per output. ``X`` lies in
``[acc_low - C, acc_high - C]`` of the golden bound (zero-padded inputs included), so its
register is exactly as wide as that range needs.

Requantization takes the cheapest of four exact forms (:attr:`requantization`):
*thresholds* compare ``X`` with the golden thresholds shifted by ``C`` (direction -1 channels
are folded in too: ``-acc >= T  <=>  not (X >= 1 - T - C)``), all in parallel, and count the
passed thresholds with a pipelined adder tree (``2**out_bits - 1`` comparators per PE, cheap at
a few bits and a single fold); the *serial* form uses the time between output words (a PE
finishes one every ``SF`` cycles): ``R = ceil((2**out_bits - 1) / SF)`` comparators per PE scan
the same thresholds ``R`` at a time over ``S = ceil((2**out_bits - 1) / R) <= SF`` cycles and
count the passes, reading them from a table of ``NF * S`` rows (one per output word and step,
deep and narrow, so it goes to block RAM where the parallel form's ``NF`` wide rows would be
logic); the *search* form finds the code bit by bit, most significant first, with one
comparator per PE: the number of thresholds ``X`` passes is ``m`` exactly when ``X`` passes
the ``m``-th smallest and not the ``m + 1``-th, so ``out_bits`` compares with the thresholds
on the search path give it, one per cycle, read from each PE's own table of its channels'
sorted thresholds (a row holds the two thresholds the next step may need, so the address
comes from registers and the compare only picks one); a channel whose
comparison is inverted takes the complement, ``L - m``, which is the bitwise NOT of ``m``
since ``L = 2**out_bits - 1``. It needs ``SF >= out_bits`` (one output word per PE every
``SF`` cycles); the *affine* form (:class:`~wrpn_rtl.golden.thresholds.AffineRequantizer`, proved
equal to the thresholds over the reachable range) computes
``clip((d * M * X + K) >> S, 0, L)`` with ``K = d * C * M + B``: one multiplier, one adder
and a clamp per PE in three registered steps, whatever the output bits.

Shared requantizers (``pe_per_requantizer = G > 1``): a PE finishes a word only every ``SF``
cycles, and its sum waits that long in the accumulators' result register, so ``PE / G``
requantizers of a pipelined form (thresholds or affine) can take the PEs' sums ``G`` at a time,
one group per cycle (``G <= SF``): unit ``u`` takes lane ``u * G + g`` in the ``g``-th cycle of
a word, reading row ``nf * G + g`` of a table ``G`` times deeper and narrower, and the codes
are gathered into the word. ``G`` times fewer comparators or multipliers (DSP blocks) for a
``G``-way multiplexer per accumulator bit and ``G + 1`` cycles of latency.

Flow control: all datapath registers are free-running; the unit issues a step only when the
output FIFO has room reserved for the word it will finish, so stalls on the output never reach
the pipeline, and ``valid`` never depends on ``ready``.
"""
import math
import numbers

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory

from wrpn_rtl.compiler import cost
from wrpn_rtl.golden.layers import QuantLinear, integer_range_shape
from wrpn_rtl.golden.quant import weight_code_range
from wrpn_rtl.hardware.arithmetic import delay, pipelined_product, pipelined_sum, select
from wrpn_rtl.hardware.lanes import (DSP_OPERAND_BITS, MacLanes, check_dsp_pairs,
                                     mac_lanes_latency)
from wrpn_rtl.hardware.memories import (LUT_ROM_MAX_DEPTH, RegisteredROM, memory_attrs,
                                        memory_style)
from wrpn_rtl.hardware.streams import credit_slots, credited_queue, stream_members

__all__ = ["MatrixVectorGeometry", "MatrixVectorUnit", "MAX_THRESHOLD_BITS", "REQUANTIZATIONS",
           "THRESHOLD_FORMS", "SHAREABLE_FORMS",
           "TABLE_STYLES", "QUEUE_STYLES", "REGISTERED_ROM_MIN_BITS", "REGISTERED_ROM_MAX_FLAT_DEPTH"]


#: Output bits up to which the threshold requantizers (a table of ``2**bits - 1`` thresholds
#: per channel) are built at all; wider outputs need the affine form.
MAX_THRESHOLD_BITS = 10

#: The requantizer forms (see the module docstring); all but "affine" read threshold tables.
REQUANTIZATIONS = ("thresholds", "serial", "search", "affine")

#: The forms that compare ``X`` with a table of thresholds.
THRESHOLD_FORMS = REQUANTIZATIONS[:3]

#: The forms that take a new accumulator every cycle, so PEs may share one in turn
#: (``pe_per_requantizer``).
SHAREABLE_FORMS = ("thresholds", "affine")

#: Where a per-fold table of constants may be asked to go (None: the default rule).
TABLE_STYLES = (None, "logic", "block")

#: ``queue`` values: the output queue in flip-flops (None) or in a block RAM.
QUEUE_STYLES = (None, "block")

#: A weight ROM in logic with a word this wide or wider, or deeper than
#: REGISTERED_ROM_MAX_FLAT_DEPTH words, is read into a register first
#: (:attr:`MatrixVectorGeometry.weights_registered`): the ECP5 design's 1,024-bit conv2 word
#: limited its clock when read straight into the leaves, its 144-bit conv1 word did not; its
#: dense layer's 80-word ROM (in LUTs since it has LUT RAM) is four LUT levels deep, and
#: read straight into the leaves it set the clock (7.6 ns). A ROM of up to 16 words is one
#: LUT4 per bit. The register costs a flip-flop per word bit (in the ROM LUTs' own cells) and
#: the operands' wait register (``SIMD x A`` flip-flops).
REGISTERED_ROM_MIN_BITS = 256
REGISTERED_ROM_MAX_FLAT_DEPTH = 16


def _check_fold(name, value, total, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, not {value!r}")
    if value < 1 or total % value:
        raise ValueError(f"{name} must be a positive divisor of {what} {total}, not {value!r}")
    return int(value)


def _log2_ceil(n):
    return math.ceil(math.log2(n)) if n > 1 else 0


def _count_passed(m, value, entry, count, *, name):
    """How many of the first ``count`` thresholds of a table ``entry`` (``{"invert",
    "thresholds"}``) ``value`` passes: ``sum_j (value >= t_j) xor invert``, the compares
    registered and summed by a pipelined tree (``ceil(log2(count))`` more registers)."""
    passes = []
    for j in range(count):
        bit = Signal(name=f"{name}_cmp{j}", reset_less=True)
        m.d.sync += bit.eq((value >= entry.thresholds[j]) ^ entry.invert)
        passes.append(bit)
    total, _ = pipelined_sum(m, passes, name=f"{name}_passed")
    return total


def _multiplier_bits(affine):
    """Bits of the affine requantizer's multiplier operand: the largest of its per-channel
    multipliers ``M`` (non-negative; the direction is a separate negate flag)."""
    return max(1, max(affine.multipliers).bit_length())


class MatrixVectorGeometry:
    """Everything about a matrix-vector unit that follows from its layer and folding, without
    building hardware: folds, widths, tables, latency, cycles and the resource estimate. The
    folding search prices candidates with it; :class:`MatrixVectorUnit` is built on it.

    Parameters
    ----------
    layer : wrpn_rtl.golden.QuantConv2d or QuantDense
        Weight codes, bits, thresholds or logit bias, and the accumulator bound. For a
        convolution, every window is one vector (the sliding window feeds them).
    pe : int
        Output channels in parallel; must divide ``layer.out_channels``.
    simd : int
        Input lanes in parallel; must divide ``layer.window_size``.
    replayed : bool
        The input carries each vector once per neuron fold (``NF * SF`` words, e.g. from a
        :class:`~wrpn_rtl.hardware.replay.VectorReplay`), so the unit keeps no input buffer. Default
        False: ``SF`` words per vector, stored while fold 0 runs and replayed from the unit's
        own buffer for folds 1..NF-1 (input is refused meanwhile); a one-word vector
        (``SF = 1``) is read where it stands by every fold and taken by the last.
    requantization : None, "thresholds", "serial", "search" or "affine"
        The requantizer's form (see :attr:`requantization`); None picks the cheapest exact one.
        "search" needs ``SF >= out_bits``.
    tables : None, "logic" or "block"
        Where the per-fold table of constants (thresholds, affine constants or logit biases)
        goes when it has more than one row: block RAM or logic; None: the default rule
        (:meth:`_table_style`). Block RAM that a device has spare saves the logic a deep
        table takes (the folding search offers both where they differ).
    lut_ram : bool
        The device has LUT RAM (ECP5; :func:`~wrpn_rtl.hardware.memories.memory_style`):
        the weight ROM and the tables stay in logic up to ``LUT_ROM_MAX_DEPTH`` words,
        where the default rule would put the deeper ones in block RAM; an input buffer of
        2 to ``LUT_RAM_MAX_DEPTH`` words is LUT RAM (below 16 words it would otherwise be
        flip-flops), and the accumulators restart by a clear
        (:attr:`accumulator_restart`). Default False.
    dsp_pairs : int
        Lanes ``0 .. 2*dsp_pairs - 1`` of every PE multiply in hard multipliers, two lanes per
        multiplier (:class:`~wrpn_rtl.hardware.lanes.MacLanes`): ``PE * dsp_pairs`` DSP
        blocks. Default 0.
    dsp_requantizer : bool
        The requantizer is the affine form with its multiplier in a DSP block, one per PE
        (Yosys takes the operand registers into the block; the product register stays in the
        fabric). Needs a layer with an exact affine
        form whose accumulator and multipliers fit :data:`~wrpn_rtl.hardware.lanes.
        DSP_OPERAND_BITS`. Default False.
    queue : None or "block"
        Where the output queue goes: flip-flops (None, a
        :class:`~wrpn_rtl.hardware.stream_fifo.StreamFIFO`) or a block RAM ("block", a
        :class:`~wrpn_rtl.hardware.stream_fifo.BlockQueue`, one word deeper for its extra
        cycle). Default None.
    pe_per_requantizer : int
        ``G``: PEs that share one requantizer, in turn (see the module docstring): ``PE / G``
        requantizers (and DSP blocks with ``dsp_requantizer``). Must divide ``PE``, be at most
        ``SF`` and, above 1, go with a form in :data:`SHAREABLE_FORMS` (None picks the
        cheaper of them) and a requantized layer. Default 1.

    Members
    -------
    input_layout, output_layout : data.ArrayLayout
        One word of each stream of :class:`MatrixVectorUnit`.

    Raises
    ------
    TypeError, ValueError
        ``layer`` is not a golden Conv/Dense layer; ``pe`` or ``simd`` does not divide its
        dimension; weight codes do not fit ``weight_bits``; more than
        :data:`MAX_THRESHOLD_BITS` output bits in threshold form.
    """

    def __init__(self, layer, *, pe, simd, replayed=False, requantization=None, tables=None,
                 lut_ram=False, dsp_pairs=0, dsp_requantizer=False, queue=None,
                 pe_per_requantizer=1):
        if not isinstance(layer, QuantLinear):
            raise TypeError(f"layer must be a golden QuantConv2d or QuantDense, not {layer!r}")
        if requantization is not None and requantization not in REQUANTIZATIONS:
            raise ValueError(f"requantization must be None, 'thresholds', 'serial', "
                             f"'search' or 'affine', not {requantization!r}")
        if requantization is not None and layer.is_logits:
            raise ValueError(f"requantization must be None for a logits layer, "
                             f"not {requantization!r}")
        if requantization == "affine" and layer.requantizer.affine is None:
            raise ValueError(f"requantization must be 'thresholds', 'serial', 'search' or "
                             f"None for {layer.name}: its thresholds have no exact affine "
                             f"form, not 'affine'")
        if tables not in TABLE_STYLES:
            raise ValueError(f"tables must be None, 'logic' or 'block', not {tables!r}")
        if queue not in QUEUE_STYLES:
            raise ValueError(f"{layer.name}: queue must be None or 'block', not {queue!r}")
        self._queue = queue
        self._requantization_asked, self._tables = requantization, tables
        self._lut_ram = bool(lut_ram)
        if (not layer.is_logits and layer.out_bits > MAX_THRESHOLD_BITS
                and (requantization in THRESHOLD_FORMS
                     or layer.requantizer.affine is None)):
            why = ("asked for" if requantization in THRESHOLD_FORMS else
                   "the only exact form: its float staircase has a rounding anomaly, so there "
                   "is no affine form")
            raise ValueError(f"{layer.name}: out_bits must be at most {MAX_THRESHOLD_BITS} for "
                             f"threshold requantization ({why}), not {layer.out_bits}: "
                             f"{(1 << layer.out_bits) - 1} thresholds per channel")
        self._pe = _check_fold("pe", pe, layer.out_channels, "out_features")
        self._simd = _check_fold("simd", simd, layer.window_size, "in_features")
        low, high = weight_code_range(layer.weight_bits)
        matrix = layer.weight_matrix
        if matrix.min() < low or matrix.max() > high or (layer.weight_bits == 1
                                                          and np.any(matrix == 0)):
            raise ValueError(f"weight codes must fit {layer.weight_bits}-bit codes "
                             f"[{low}, {high}], not [{matrix.min()}, {matrix.max()}]")
        self._layer = layer
        self._sf = layer.window_size // self._simd
        self._nf = layer.out_channels // self._pe
        self._replayed = bool(replayed)
        # Several neuron folds read each vector: one word per vector is read where it stands
        # until the last fold takes it; more are stored in the unit's buffer.
        self._holds_input = self._nf > 1 and not self._replayed and self._sf == 1
        self._buffered = self._nf > 1 and not self._replayed and self._sf > 1
        self._planes = max(1, layer.weight_bits - 1)
        try:
            self._dsp_pairs = int(check_dsp_pairs(dsp_pairs, simd=self._simd,
                                                  in_bits=layer.in_bits, planes=self._planes,
                                                  binary=layer.weight_bits == 1))
        except ValueError as error:
            raise ValueError(f"{layer.name}: {error}") from None
        # acc = X + offset per channel; X >= 0 is what the hardware accumulates.
        top = (1 << layer.in_bits) - 1
        negative = np.where(matrix < 0, -matrix, 0).sum(axis=1)
        self._offset = -top * negative
        x_low = layer.raw_acc_low - self._offset
        x_high = layer.raw_acc_high - self._offset
        assert x_low.min() >= 0, "offset-binary accumulator must be non-negative"
        self._x_shape = unsigned(max(1, int(x_high.max()).bit_length()))
        self._x_high = x_high
        acc_width, acc_signed = layer.acc_shape
        self._acc_shape = signed(acc_width) if acc_signed else unsigned(acc_width)
        self._out_lane = self._acc_shape if layer.is_logits else unsigned(layer.out_bits)
        self._dsp_requantizer = self._check_dsp_requantizer(dsp_requantizer, requantization)
        self._share = self._check_share(pe_per_requantizer, requantization)
        if requantization == "search" and not self._searchable:
            raise ValueError(f"{layer.name}: requantization 'search' needs at least out_bits "
                             f"({layer.out_bits}) cycles per output word, one compare per "
                             f"code bit: SF = {self._sf} (simd {self._simd}) is too few")

    @property
    def input_layout(self):
        """One input word: ``ArrayLayout(unsigned(in_bits), simd)``."""
        return data.ArrayLayout(unsigned(self._layer.in_bits), self._simd)

    @property
    def output_layout(self):
        """One output word: ``ArrayLayout(lane, pe)``, lanes ``unsigned(out_bits)`` codes or
        the accumulator shape (logits)."""
        return data.ArrayLayout(self._out_lane, self._pe)

    # -- parameters ------------------------------------------------------------------------
    layer = property(lambda self: self._layer)
    pe = property(lambda self: self._pe)
    simd = property(lambda self: self._simd)
    replayed = property(lambda self: self._replayed)
    tables = property(lambda self: self._tables)
    lut_ram = property(lambda self: self._lut_ram)
    dsp_pairs = property(lambda self: self._dsp_pairs)
    dsp_requantizer = property(lambda self: self._dsp_requantizer)
    queue = property(lambda self: self._queue)
    pe_per_requantizer = property(lambda self: self._share)

    @property
    def accumulator_restart(self):
        """How the accumulators start each vector (:data:`~wrpn_rtl.hardware.lanes.RESTARTS`):
        "clear" on a device with LUT RAM (ECP5: its adders are carry cells whose LUTs take no
        multiplexer), else "load" (iCE40 folds the multiplexer into the adder's LUT)."""
        return "clear" if self._lut_ram else "load"

    @property
    def requantizers(self):
        """Requantizers (or logit bias adders) the unit has: ``PE / pe_per_requantizer``."""
        return self._pe // self._share

    @property
    def dsp_blocks(self):
        """Hard multipliers the unit takes: ``PE * dsp_pairs``, and one per requantizer with
        ``dsp_requantizer``."""
        return self._pe * self._dsp_pairs + self.requantizers * int(self._dsp_requantizer)

    def _check_share(self, share, requantization):
        """``pe_per_requantizer`` as an int, or ValueError naming the rule it breaks."""
        layer = self._layer
        if (isinstance(share, bool) or not isinstance(share, numbers.Integral) or share < 1
                or self._pe % share):
            raise ValueError(f"{layer.name}: pe_per_requantizer must be a positive divisor of "
                             f"PE {self._pe}, not {share!r}")
        share = int(share)
        if share == 1:
            return share
        why = ("a logits layer has no requantizer" if layer.is_logits else
               f"a PE's words are SF = {self._sf} cycles apart and the requantizer takes the "
               f"{share} sums one per cycle" if share > self._sf else
               f"requantization {requantization!r} takes more than one cycle per sum"
               if requantization not in (None, *SHAREABLE_FORMS) else None)
        if why is not None:
            raise ValueError(f"{layer.name}: pe_per_requantizer must be 1 ({why}), "
                             f"not {share}")
        return share

    def _check_dsp_requantizer(self, dsp_requantizer, requantization):
        """``dsp_requantizer`` as a bool, or ValueError naming why this layer cannot have it."""
        layer = self._layer
        if not isinstance(dsp_requantizer, bool):
            raise ValueError(f"{layer.name}: dsp_requantizer must be true or false, not "
                             f"{dsp_requantizer!r}")
        if not dsp_requantizer:
            return False
        affine = None if layer.is_logits else layer.requantizer.affine
        why = ("a logits layer has no requantizer" if layer.is_logits else
               "the layer has no exact affine form" if affine is None else
               f"requantization {requantization!r} was asked for"
               if requantization not in (None, "affine") else None)
        if why is None:
            widths = (self._x_shape.width, _multiplier_bits(affine))
            if max(widths) > DSP_OPERAND_BITS:
                why = (f"its {widths[0]}-bit accumulator times {widths[1]}-bit multipliers "
                       f"exceed the {DSP_OPERAND_BITS}-bit multiplier")
        if why is not None:
            raise ValueError(f"{layer.name}: dsp_requantizer must be false ({why}), not True")
        return True

    @property
    def synapse_fold(self):
        """``SF``: input words per vector."""
        return self._sf

    @property
    def neuron_fold(self):
        """``NF``: output words per vector."""
        return self._nf

    @property
    def cycles_per_vector(self):
        """Cycles per vector in steady state with no stall: ``NF * SF``."""
        return self._nf * self._sf

    @property
    def accumulator_shape(self):
        """Shape of the true accumulator ``acc`` (plus bias for logits): the golden bound."""
        return self._acc_shape

    @property
    def offset_accumulator_shape(self):
        """Shape of the register that accumulates ``X = acc - C`` (unsigned, golden-derived)."""
        return self._x_shape

    @property
    def accumulator_offset(self):
        """``C`` per channel, shape (out_features,): ``acc = X + C``."""
        return self._offset.copy()

    # -- pipeline geometry -----------------------------------------------------------------
    def _output_depth_of(self, form):
        """Cycles the output stage takes in requantization ``form`` (None: a logits layer), from
        the accumulators' ``done`` to the word: the requantizer's own and, when shared, the
        register in front of it, the ``G - 1`` groups after the first and the gathered
        word's register."""
        shared = self._share + 1 if self._share > 1 else 0
        return self._stage_depth_of(form) + shared

    @property
    def _stage_depth(self):
        return self._stage_depth_of(self.requantization)

    def _stage_depth_of(self, form):
        """Cycles one requantizer (or logit bias adder) in ``form`` takes, from a sum to its
        code."""
        if self._layer.is_logits:
            return 1
        if form == "affine":
            return 4
        if form == "serial":
            # table read, compare register, count tree, count register after the last step
            return self._serial_steps + 2 + _log2_ceil(self._serial_comparators)
        if form == "search":
            # the first table read, then one compare per code bit into the code register
            return self._layer.out_bits + 1
        return 1 + _log2_ceil(self._levels)

    @property
    def _levels(self):
        """Thresholds per channel: ``2**out_bits - 1``."""
        return (1 << self._layer.out_bits) - 1

    @property
    def _serial_comparators(self):
        """``R``: the serial form's comparators per PE, the fewest that scan every threshold
        within the ``SF`` cycles between a PE's output words."""
        return math.ceil(self._levels / self._sf)

    @property
    def _serial_steps(self):
        """``S``: cycles the serial form takes per output word (``<= SF``)."""
        return math.ceil(self._levels / self._serial_comparators)

    @property
    def _searchable(self):
        """Whether the search form fits: a PE's output words are ``SF`` cycles apart, and the
        search takes ``out_bits`` of them."""
        return not self._layer.is_logits and self._sf >= self._layer.out_bits

    @property
    def requantization(self):
        """How codes are made: "thresholds" (parallel comparators), "serial" (a few
        comparators scanning a threshold table over the ``SF`` cycles of a word), "search"
        (one comparator per PE deciding a code bit per cycle from sorted thresholds), "affine"
        (multiply, add, shift, clamp) or None for a logits layer - the form with the lowest
        :func:`~wrpn_rtl.compiler.cost.requantization_price` among those the golden model
        proves exact (unless one was asked for)."""
        if self._layer.is_logits:
            return None
        if self._requantization_asked is not None:
            return self._requantization_asked
        if self._dsp_requantizer:
            return "affine"
        if self._layer.out_bits > MAX_THRESHOLD_BITS:
            return "affine"
        forms = [form for form in REQUANTIZATIONS
                 if (form != "affine" or self._layer.requantizer.affine is not None)
                 and (form != "search" or self._searchable)
                 and (self._share == 1 or form in SHAREABLE_FORMS)]
        # each form with the output queue its latency needs (a longer output stage holds more
        # words in flight)
        prices = {form: cost.requantization_price(cost.add(self._requantization_cost(form),
                                                           self._queue_cost(form)))
                  for form in forms}
        return min(forms, key=lambda form: prices[form])    # ties: the earlier form

    def _queue_cost(self, form):
        """Estimate of the output queue when the output stage is in ``form``, to compare forms
        by (without the weight register's cycle, the same for every form: whether there is
        one depends on where the tables go, which depends on the form)."""
        depth = self._queue_depth_for(self._latency_after_weights(form))
        width = self.output_layout.size
        return (cost.block_queue(width, depth) if self._queue == "block"
                else cost.fifo(width, depth))

    def _latency_after_weights(self, form):
        """:attr:`latency` less the weight register, with the output stage in ``form``."""
        return (mac_lanes_latency(simd=self._simd, planes=self._planes,
                                  dsp_pairs=self._dsp_pairs, steps=self._sf,
                                  restart=self.accumulator_restart)
                + self._output_depth_of(form) + 1)

    @property
    def latency(self):
        """Cycles from issuing the last step of an output word to the word being valid at
        ``output`` (no stall): the weight register of a wide or deep ROM in logic (else the operands
        meet in the issue cycle), leaf register, adder tree, plane combine, accumulate,
        requantize, output FIFO."""
        return int(self.weights_registered) + self._latency_after_weights(self.requantization)

    @property
    def weights_registered(self):
        """Whether the weight word is read into a register first (and the operands wait a
        cycle for it): for a ROM in logic whose word has :data:`REGISTERED_ROM_MIN_BITS` bits
        or more, or that is deeper than :data:`REGISTERED_ROM_MAX_FLAT_DEPTH` words (more than
        one LUT level). Every bit of a wide word is a LUT on the step's address, so the address
        fans out to thousands of LUTs; read straight into the leaves, that net and the LUTs
        that Yosys shares between bits lay in front of every leaf register (the ECP5
        design's critical path, conv2's 1,024-bit word: 10.5 ns, 8.3 of it routing); a deep
        ROM's read is several LUT levels."""
        return (self.memory_styles()["weights"] != "block"
                and (self._weight_word_layout().size >= REGISTERED_ROM_MIN_BITS
                     or self._nf * self._sf > REGISTERED_ROM_MAX_FLAT_DEPTH))

    @property
    def fifo_depth(self):
        """Output FIFO words: enough that credit never throttles an always-ready consumer. A
        word's slot is reserved when its last step issues and free again ``latency + 2``
        cycles later (:func:`~wrpn_rtl.hardware.streams.output_credit`), and output words
        start at most one per ``SF`` cycles. A queue in block RAM gives a word a cycle later,
        so it takes a slot more."""
        return self._queue_depth_for(self.latency)

    def _queue_depth_for(self, latency):
        """:attr:`fifo_depth` for a unit of ``latency``."""
        return credit_slots(latency + int(self._queue == "block"), interval=self._sf)

    # -- constants derived from the layer ---------------------------------------------------
    def _weight_word_layout(self):
        fields = {"sign": unsigned(self._simd)}
        if self._layer.weight_bits > 1:
            fields["mask"] = data.ArrayLayout(unsigned(self._simd), self._planes)
        return data.ArrayLayout(data.StructLayout(fields), self._pe)

    def weight_words(self):
        """Weight memory contents: list over address ``nf * SF + sf`` of lists over PE of
        ``{"sign": int, "mask": [int] * P}`` (bit ``i`` is lane ``i``; binary: no mask)."""
        matrix = self._layer.weight_matrix
        words = []
        for nf in range(self._nf):
            for sf in range(self._sf):
                word = []
                for p in range(self._pe):
                    row = matrix[nf * self._pe + p, sf * self._simd:(sf + 1) * self._simd]
                    entry = {"sign": sum(1 << i for i, w in enumerate(row) if w < 0)}
                    if self._layer.weight_bits > 1:
                        magnitude = np.abs(row)
                        entry["mask"] = [sum(1 << i for i, v in enumerate(magnitude) if v >> b & 1)
                                         for b in range(self._planes)]
                    word.append(entry)
                words.append(word)
        return words

    def _threshold_tables(self):
        """Per channel ``(invert, thresholds)`` on ``X`` such that
        ``code = sum_j ((X >= t_j) xor invert)``; each ``t_j`` is clamped to
        ``[0, X_high + 1]`` (0: always true, ``X_high + 1``: never), which changes no result."""
        req = self._layer.requantizer
        tables = []
        for c in range(self._layer.out_channels):
            offset, limit = int(self._offset[c]), int(self._x_high[c]) + 1
            if req.direction[c] > 0:     # acc >= T  <=>  X >= T - C
                invert, values = 0, [int(t) - offset for t in req.thresholds[c]]
            else:                        # -acc >= T  <=>  not (X >= 1 - T - C)
                invert, values = 1, [1 - int(t) - offset for t in req.thresholds[c]]
            tables.append((invert, [min(max(v, 0), limit) for v in values]))
        return tables

    def _serial_rows(self):
        """The serial form's table: list over address ``nf * S + step`` of lists over PE of
        ``{"invert", "thresholds": [R values]}``; step ``s`` holds thresholds
        ``s*R .. s*R+R-1`` of the channel; the last step's spare slots hold a threshold that
        never counts (``X_high + 1`` passes never; 0 always passes, which ``invert`` undoes)."""
        tables = self._threshold_tables()
        comparators, steps = self._serial_comparators, self._serial_steps
        rows = []
        for nf in range(self._nf):
            for step in range(steps):
                row = []
                for p in range(self._pe):
                    c = nf * self._pe + p
                    invert, values = tables[c]
                    chunk = values[step * comparators:(step + 1) * comparators]
                    spare = 0 if invert else int(self._x_high[c]) + 1
                    row.append({"invert": invert,
                                "thresholds": chunk + [spare] * (comparators - len(chunk))})
                rows.append(row)
        return rows

    def _search_rows(self):
        """Every PE's table in the search form: list over PE ``p`` of lists over address
        ``nf * 2**out_bits + m`` of ``{"invert", "low", "high"}``, for channel
        ``c = nf * PE + p`` with its thresholds
        sorted, ``s_1 <= ... <= s_L``: the two thresholds the search may compare with after
        comparing with ``s_m``, ``s_(m - h)`` and ``s_(m + h)`` with ``h`` half the lowest set
        bit of ``m`` (0 and 0 where ``m`` is odd: the last step); row 0 holds the first
        step's, ``s_(2**(out_bits - 1))``, as both."""
        tables, bits = self._threshold_tables(), self._layer.out_bits
        per_pe = [[] for _ in range(self._pe)]
        for c, (invert, values) in enumerate(tables):
            ordered = [0, *sorted(int(t) for t in values)]     # ordered[m] = s_m
            root = ordered[1 << (bits - 1)]
            rows = per_pe[c % self._pe]                        # channels in fold order
            rows.append({"invert": invert, "low": root, "high": root})
            for m in range(1, 1 << bits):
                half = (m & -m) >> 1
                rows.append({"invert": invert, "low": ordered[m - half] if half else 0,
                             "high": ordered[m + half] if half else 0})
        return per_pe

    def _threshold_shape(self):
        return unsigned(max(1, (int(self._x_high.max()) + 1).bit_length()))

    def _affine_tables(self, affine):
        """Per channel ``(negate, M, K)`` with ``t = (-1)**negate * M * X + K`` equal to the
        golden ``direction * acc * M + B`` (``acc = X + C``)."""
        tables = []
        for c in range(self._layer.out_channels):
            d, M, B = affine.direction[c], affine.multipliers[c], affine.biases[c]
            tables.append((int(d < 0), M, d * int(self._offset[c]) * M + B))
        return tables

    def _affine_rows(self, affine):
        """Per channel the requantizer's table entry ``{"negate", "multiplier", "bias"}``:
        ``t = M * (X ^ mask) + bias  (mod 2**n)``, ``n`` the sum's width and ``mask`` all ones
        of ``X``'s width ``w`` where ``negate``. The complement ``~X = 2**w - 1 - X`` turns the
        subtraction into an addition (``K - M X = K - M (2**w - 1) + M ~X``), so one adder
        serves every channel; ``bias`` is kept modulo ``2**n`` (``t`` fits the sum's shape, so
        its low ``n`` bits are all of it)."""
        x_all_ones = (1 << self._x_shape.width) - 1
        sum_bits = self._affine_sum_shape(affine).width
        return [{"negate": negate, "multiplier": M,
                 "bias": (K - M * x_all_ones if negate else K) % (1 << sum_bits)}
                for negate, M, K in self._affine_tables(affine)]

    def _affine_sum_shape(self, affine):
        """Shape holding ``t`` for every channel and every reachable ``X``."""
        low = high = 0
        for c, (negate, M, K) in enumerate(self._affine_tables(affine)):
            reach = M * int(self._x_high[c])
            low = min(low, K - reach if negate else K)
            high = max(high, K if negate else K + reach)
        width, is_signed = integer_range_shape(low, high)
        return signed(width) if is_signed else unsigned(width)

    def memory_bits(self):
        """Bits of each memory: ``{"weights", "input_buffer", "thresholds"}`` (thresholds: the
        per-channel comparison table, or the logit bias table)."""
        weight_bits = self._weight_word_layout().size * self._nf * self._sf
        buffer_bits = self._simd * self._layer.in_bits * self._sf if self._buffered else 0
        if self._layer.is_logits:
            bias = self._layer.output.bias + self._offset
            width, _ = integer_range_shape(min(0, int(bias.min())), max(0, int(bias.max())))
            table_bits = self._layer.out_channels * width
        else:
            table_bits = (self._pe if self.requantization == "search" else self.requantizers) \
                * self._requantization_entry().size * self._table_words()
        return {"weights": weight_bits, "input_buffer": buffer_bits, "thresholds": table_bits}

    def _requantization_entry(self, form=None):
        """Layout of one channel's requantization constants in one table row, in ``form``
        (default: the unit's own)."""
        form = form or self.requantization
        if form == "affine":
            affine = self._layer.requantizer.affine
            return data.StructLayout({"negate": unsigned(1),
                                      "multiplier": unsigned(_multiplier_bits(affine)),
                                      "bias": unsigned(self._affine_sum_shape(affine).width)})
        if form == "search":
            return data.StructLayout({"invert": unsigned(1), "low": self._threshold_shape(),
                                      "high": self._threshold_shape()})
        per_row = self._serial_comparators if form == "serial" else self._levels
        return data.StructLayout({"invert": unsigned(1),
                                  "thresholds": data.ArrayLayout(self._threshold_shape(),
                                                                 per_row)})

    def _table_style(self, form=None):
        """Where the requantization (or logit bias) table goes in ``form`` (default: the
        unit's own): where ``tables`` says if the table has more than one row; by default by
        :func:`~wrpn_rtl.hardware.memories.memory_style`, except that the serial form's
        table, deep but as wide as ``PE`` thresholds, and the search form's ``PE`` deep and
        narrow tables go to whichever of block RAM and logic
        :func:`~wrpn_rtl.compiler.cost.requantization_price` finds cheaper."""
        form = form or self.requantization
        depth = self._table_words(form)
        if depth > 1 and self._tables is not None:
            return self._tables
        if form not in ("serial", "search") or depth <= 1:
            return memory_style(depth, writable=False, lut_ram=self._lut_ram)
        if self._lut_ram and depth <= LUT_ROM_MAX_DEPTH:
            return "logic"
        return min(("logic", "block"), key=lambda style: cost.requantization_price(
            self._table_cost(form, style)))

    def _table_cost(self, form, style):
        """Estimate of the requantization table in ``form`` placed in ``style``: one memory
        with a row of every requantizer's constants, or, in the search form, one memory per
        PE."""
        entry_bits, depth = self._requantization_entry(form).size, self._table_words(form)
        if form == "search":
            return cost.add(*[cost.memory(entry_bits, depth, writable=False, style=style)]
                            * self._pe)
        return cost.memory(self.requantizers * entry_bits, depth, writable=False, style=style)

    @property
    def table_rows(self):
        """Rows of the unit's per-fold table of constants (see :meth:`_table_words`)."""
        return self._table_words()

    def _table_words(self, form=None):
        """Rows of the requantization (or logit bias) table in ``form`` (default: the unit's
        own): one per fold (and per group of PEs sharing the requantizers), one per fold and
        step in the serial form, and in the search form ``2**out_bits`` per fold (row 0
        unused: the thresholds are numbered from 1) of each PE's own table."""
        form = form or self.requantization
        if form == "search":
            return self._nf << self._layer.out_bits
        return self._nf * (self._serial_steps if form == "serial" else self._share)

    def memory_styles(self):
        """Where each memory goes: ``{"weights", "input_buffer", "thresholds"}`` ->
        "block" (block RAM), "distributed" (LUT RAM), "logic", or None when the memory does
        not exist."""
        return {"weights": memory_style(self._nf * self._sf, writable=False,
                                        lut_ram=self._lut_ram),
                "input_buffer": (memory_style(self._sf, writable=True, lut_ram=self._lut_ram)
                                 if self._buffered else None),
                "thresholds": self._table_style() if self._table_words() > 1 else "logic"}

    # -- resource estimate -------------------------------------------------------------------
    def estimate(self):
        """First-order resource estimate, for reports beside the measurement.

        Counts one logic cell (LUT4 with carry) per adder, comparator and leaf bit, the
        pipeline registers, the output FIFO, and the memories by where they go
        (:func:`wrpn_rtl.compiler.cost.memory`: block RAM in ``memory_bits``, small ones in logic).

        Returns
        -------
        dict
            ``logic_cells``, ``flip_flops``, ``memory_bits`` (block RAM), and
            ``partial_product_bound`` (``SIMD * PE * in_bits * max(1, weight_bits - 1)``).
        """
        layer = self._layer
        return cost.matrix_vector_unit(
            simd=self._simd, pe=self._pe, in_bits=layer.in_bits, planes=self._planes,
            x_bits=self._x_shape.width, requantization=self._requantization_cost(),
            weight_word_bits=self._weight_word_layout().size,
            weight_words=self._nf * self._sf, steps=self._sf,
            weights_registered=self.weights_registered,
            memory_styles=self.memory_styles(), dsp_pairs=self._dsp_pairs,
            buffered_words=self._sf if self._buffered else 0,
            output_word_bits=self.output_layout.size, queue_depth=self.fifo_depth,
            queue_style=self._queue)

    def _requantization_cost(self, form=None):
        """Estimate of the output stage in ``form`` (default: the unit's own; a logits layer:
        the bias adders): every requantizer, the table of constants they read and, when PEs
        share them, the multiplexers in front and the gathered word."""
        if self._layer.is_logits:
            width = self._acc_shape.width
            return cost.add(*[cost.logit_adder(accumulator_bits=width)] * self._pe,
                            cost.memory(width * self._pe, self._nf, writable=False,
                                        style=self._table_style()))
        form = form or self.requantization
        table = self._table_cost(form, self._table_style(form))
        if self._share > 1:
            sharing = cost.requantizer_sharing(
                requantizers=self.requantizers, pe_per_requantizer=self._share,
                x_bits=self._x_shape.width, out_bits=self._layer.out_bits,
                table_rows=self._table_words(form))
            table = cost.add(table, sharing)
        if form == "affine":
            affine = self._layer.requantizer.affine
            per_pe = cost.affine_requantizer(
                x_bits=self._x_shape.width,
                multiplier_bits=_multiplier_bits(affine),
                sum_bits=self._affine_sum_shape(affine).width, out_bits=self._layer.out_bits,
                dsp=self._dsp_requantizer)
            return cost.add(*[per_pe] * self.requantizers, table)
        if form == "serial":
            per_pe = cost.serial_requantizer(
                comparators=self._serial_comparators, compare_bits=self._threshold_shape().width,
                x_bits=self._x_shape.width, out_bits=self._layer.out_bits)
            control = cost.serial_control(table_words=self._table_words(form),
                                          steps=self._serial_steps)
            return cost.add(*[per_pe] * self._pe, table, control)
        if form == "search":
            per_pe = cost.search_requantizer(compare_bits=self._threshold_shape().width,
                                             x_bits=self._x_shape.width,
                                             out_bits=self._layer.out_bits)
            control = cost.search_control(folds=self._nf, out_bits=self._layer.out_bits)
            return cost.add(*[per_pe] * self._pe, table, control)
        per_pe = cost.threshold_requantizer(levels=self._levels,
                                            compare_bits=self._threshold_shape().width,
                                            out_bits=self._layer.out_bits)
        return cost.add(*[per_pe] * self.requantizers, table)


class MatrixVectorUnit(MatrixVectorGeometry, wiring.Component):
    """Streaming matrix-vector unit for one golden Conv/Dense layer.

    Parameters and errors: see :class:`MatrixVectorGeometry`, whose members it has too.

    Members
    -------
    input : In(stream.Signature(ArrayLayout(unsigned(in_bits), simd)))
        ``SF`` words per vector (``NF * SF`` when ``replayed``); lane ``i`` of word ``sf`` is
        window element ``sf*simd + i``.
    output : Out(stream.Signature(ArrayLayout(shape, pe)))
        ``NF`` words per vector; lane ``p`` of word ``nf`` is channel ``nf*pe + p``. ``shape`` is
        ``unsigned(out_bits)`` codes, or the accumulator shape for a logits layer
        (``acc + bias``).
    """

    def __init__(self, layer, *, pe, simd, replayed=False, requantization=None, tables=None,
                 lut_ram=False, dsp_pairs=0, dsp_requantizer=False, queue=None,
                 pe_per_requantizer=1):
        MatrixVectorGeometry.__init__(self, layer, pe=pe, simd=simd, replayed=replayed,
                                      requantization=requantization, tables=tables,
                                      lut_ram=lut_ram, dsp_pairs=dsp_pairs,
                                      dsp_requantizer=dsp_requantizer, queue=queue,
                                      pe_per_requantizer=pe_per_requantizer)
        wiring.Component.__init__(self, stream_members(self))

    def elaborate(self, platform):
        m = Module()
        layer = self._layer
        sf_count, nf_count, pe, simd = self._sf, self._nf, self._pe, self._simd
        a_bits = layer.in_bits

        # ---- issue: counters, input buffer, credit -------------------------------------
        # The flags that decide whether a step issues are registers, so the issue decision
        # (and the input's ready) is one LUT deep. A step's operands meet in the cycle it
        # issues: the input word (or the buffer's word) and the weight word, which block RAM
        # read one cycle ahead (its address is the next step's whenever a step issues) or a
        # ROM in LUTs gives from the step's address register; both go straight into the
        # leaves' LUTs. No copy of either is kept: a copy of the input
        # word was a flip-flop per bit with no LUT of its own (a logic cell each on iCE40).
        sf = Signal(range(sf_count), name="sf")
        nf = Signal(range(nf_count), name="nf")
        waddr = Signal(range(nf_count * sf_count), name="weight_addr")
        last_step = Signal(init=int(sf_count == 1), name="last_step")     # sf == SF - 1
        from_stream = Signal(init=1, name="from_stream")                  # nf == 0
        last_fold = Signal(init=int(nf_count == 1), name="last_fold")     # nf == NF - 1
        room = Signal(name="room")   # an output-queue slot is free (see output_credit)
        # No step issues in the first cycle after reset or power-up, which presents the
        # memories' first read address: `room` is 0 then, and where steps other than the last
        # do not wait for it (SF > 1), `primed` holds them. `primed` is set from this unit's
        # own `last_step` (0 then) rather than a constant 1: Yosys merges every unit's
        # constant-input flag into one flip-flop that reaches across the device (measured on
        # ECP5: 3.9 ns of routing on the critical path).
        if sf_count == 1:
            credit_ok = room
        else:
            primed = Signal(name="primed")
            m.d.sync += primed.eq(primed | ~last_step)
            credit_ok = primed & (~last_step | room)
        # Which steps read the stream's word, and which of them take it: every step, or the
        # first neuron fold's (the buffer replays it), or, when one word is the whole vector
        # (SF = 1), every fold reads the word where it stands and the last one takes it.
        reads_stream = from_stream if self._buffered else 1
        takes_word = last_fold if self._holds_input else reads_stream
        m.d.comb += self.input.ready.eq(takes_word & credit_ok)
        fire = Signal(name="fire")
        m.d.comb += fire.eq(Mux(reads_stream, self.input.valid, 1) & credit_ok)
        next_sf = Mux(last_step, 0, sf + 1)
        next_waddr = Mux(waddr == nf_count * sf_count - 1, 0, waddr + 1)
        with m.If(fire):
            m.d.sync += [sf.eq(next_sf),
                         last_step.eq((sf_count == 1) | (~last_step & (sf == sf_count - 2))),
                         waddr.eq(next_waddr)]
            with m.If(last_step):
                m.d.sync += [nf.eq(Mux(nf == nf_count - 1, 0, nf + 1)),
                             from_stream.eq((not self._buffered) | (nf == nf_count - 1)),
                             last_fold.eq((nf_count == 1) | (nf == nf_count - 2))]

        credit, queue = credited_queue(m, self, depth=self.fifo_depth, taken=fire & last_step,
                                       block=self._queue == "block")
        m.d.comb += room.eq(credit)

        operands = self.input.payload.as_value()
        if self._buffered:
            # The first neuron fold stores its words; the other folds replay them. A word is
            # read at least SF - 1 >= 1 cycles after it was written, so no read that is used
            # meets the write of its address.
            m.submodules.input_buffer = buf = Memory(
                shape=unsigned(simd * a_bits), depth=sf_count, init=[],
                attrs=memory_attrs(sf_count, writable=True, collision_reads_unused=True,
                                   style=self.memory_styles()["input_buffer"]))
            write, read = buf.write_port(), buf.read_port()
            m.d.comb += [write.addr.eq(sf), write.data.eq(operands),
                         write.en.eq(fire & from_stream),
                         read.addr.eq(Mux(fire, next_sf, sf))]
            operands = Mux(from_stream, operands, read.data)

        layout = self._weight_word_layout()
        words = self.weight_words()
        style = self.memory_styles()["weights"]
        step_valid, step_last = fire, last_step
        if self.weights_registered:
            # A ROM in logic read into a register (a flip-flop behind each ROM LUT), the
            # step's operands and flags waiting a cycle for it; synthesis maps it as a module
            # of its own (RegisteredROM: multiplexers over constants, so Yosys cannot move
            # the register to the address side; mapped apart, so ABC9 cannot express a bit
            # through the LUTs of others).
            m.submodules.weight_rom = rom = RegisteredROM(layout, words)
            m.d.comb += rom.addr.eq(waddr)
            weights = rom.data
            operands = delay(m, operands, 1, name="operands", reset_less=True)
            step_valid = delay(m, fire, 1, name="step_valid")
            step_last = delay(m, last_step, 1, name="step_last", reset_less=True)
        else:
            m.submodules.weights = wmem = Memory(
                shape=layout, depth=len(words), init=words,
                attrs=memory_attrs(len(words), writable=False, style=style))
            if style == "block":
                # block RAM reads synchronously: its port reads the word after the current
                # one whenever a step issues (and word 0 in the first cycle after reset, when
                # no step issues), and holds it in between, so the address is a register of
                # its own that runs a word ahead, with no multiplexer before the port
                wread = wmem.read_port()
                read_at = Signal(range(len(words)), name="weight_read_addr")
                started = Signal(name="weights_started")
                reads = fire | ~started
                m.d.sync += started.eq(started | ~fire)
                m.d.comb += [wread.addr.eq(read_at), wread.en.eq(reads)]
                with m.If(reads):
                    m.d.sync += read_at.eq(Mux(read_at == len(words) - 1, 0, read_at + 1))
            else:
                # a ROM in LUTs is read as it stands from the step's own address register,
                # so `fire` does not reach its address (thousands of LUTs on a wide word)
                wread = wmem.read_port(domain="comb")
                m.d.comb += wread.addr.eq(waddr)
            weights = wread.data

        # ---- the MAC lanes: leaves, plane trees, combine, accumulate ------------------
        m.submodules.lanes = macs = MacLanes(
            simd=simd, pe=pe, in_bits=a_bits, weight_layout=layout, planes=self._planes,
            sum_shape=self._x_shape, steps=self._sf, dsp_pairs=self._dsp_pairs,
            restart=self.accumulator_restart)
        m.d.comb += [macs.operands.eq(operands), macs.weights.eq(weights),
                     macs.valid.eq(step_valid), macs.last.eq(step_last)]
        # the fold of the word the accumulators finish, beside them
        nf_a = delay(m, nf, macs.latency - 1 + int(self.weights_registered), name="nf_a",
                     reset_less=True)
        accumulators = list(macs.sums)
        done = macs.done
        done_nf = Signal(range(nf_count), name="acc_done_nf", reset_less=True)
        m.d.sync += done_nf.eq(nf_a)

        # ---- output stage: requantize or add the logit bias ---------------------------
        if self._share > 1:
            accumulators, done, nf_a, done_nf = self._shared_inputs(m, accumulators, done)
        if layer.is_logits:
            results, out_valid = self._logits_stage(m, accumulators, nf_a, done_nf, done)
        elif self.requantization == "affine":
            results, out_valid = self._affine_stage(m, accumulators, nf_a, done_nf, done)
        elif self.requantization == "serial":
            results, out_valid = self._serial_stage(m, accumulators, done)
        elif self.requantization == "search":
            results, out_valid = self._search_stage(m, accumulators, done_nf, done)
        else:
            results, out_valid = self._threshold_stage(m, accumulators, nf_a, done_nf, done)

        if self._share > 1:
            results, out_valid = self._gathered(m, results, out_valid)
        m.d.comb += [queue.valid.eq(out_valid), queue.payload.eq(Cat(*results))]
        return m

    def _requantizer_rows(self, per_channel):
        """``per_channel`` (a list over output channels) as rows of the requantizers' table:
        row ``nf * G + g`` lists, for requantizer ``u``, channel ``nf * PE + u * G + g``
        (``G = pe_per_requantizer``; with 1, row ``nf`` is the fold's channels)."""
        share = self._share
        return [[per_channel[nf * self._pe + u * share + g] for u in range(self.requantizers)]
                for nf in range(self._nf) for g in range(share)]

    def _shared_inputs(self, m, accumulators, done):
        """The requantizers' inputs when ``G`` PEs share each: in the ``G`` cycles from
        ``done`` (the accumulators' result registers hold the word's sums for ``SF >= G``
        cycles), requantizer ``u`` takes lane ``u * G + g`` in the ``g``-th, into a register.
        Returns ``(sums, valid, address, address_q)`` as the output stages take them: the
        registered sums (one per requantizer) and their valid, the table row of the sums
        being selected (``nf * G + g``: words finish in fold order, so one counter walks the
        rows) and that row registered, which is the sums' row."""
        share, rows = self._share, self._nf * self._share
        group = Signal(range(share), name="share_group")     # 0 between words
        selecting = Signal(name="share_selecting")
        m.d.comb += selecting.eq(done | (group != 0))
        address = Signal(range(rows), name="share_addr")
        with m.If(selecting):
            m.d.sync += [group.eq(Mux(group == share - 1, 0, group + 1)),
                         address.eq(Mux(address == rows - 1, 0, address + 1))]
        sums = []
        for u in range(self.requantizers):
            chosen = Signal(accumulators[0].shape(), name=f"rq{u}_sum", reset_less=True)
            m.d.sync += chosen.eq(select(group, accumulators[u * share:(u + 1) * share]))
            sums.append(chosen)
        valid = Signal(name="share_valid")
        address_q = Signal(range(rows), name="share_addr_q", reset_less=True)
        m.d.sync += [valid.eq(selecting), address_q.eq(address)]
        return sums, valid, address, address_q

    def _gathered(self, m, codes, valid):
        """The PE-wide output word from shared requantizers' ``codes``, which are ``valid``
        for ``G`` consecutive cycles per word (group ``g`` in the ``g``-th): each group's
        codes load their lanes' registers, and the word is valid the cycle after the last."""
        share = self._share
        slot = Signal(share, init=1, name="gather_slot")     # one-hot: the group arriving
        with m.If(valid):
            m.d.sync += slot.eq(slot.rotate_left(1))
        lanes = [None] * self._pe
        for u, code in enumerate(codes):
            for g in range(share):
                lane = Signal(code.shape(), name=f"pe{u * share + g}_out", reset_less=True)
                with m.If(valid & slot[g]):
                    m.d.sync += lane.eq(code)
                lanes[u * share + g] = lane
        word_valid = Signal(name="gather_valid")
        m.d.sync += word_valid.eq(valid & slot[share - 1])
        return lanes, word_valid

    def _per_fold_table(self, m, name, shape, rows, address, address_q):
        """A per-fold constant table (``rows[nf]``: a list over PE, or with shared requantizers
        ``rows[nf * G + g]`` a list over requantizers), valid in the cycle after ``address``
        (``address_q`` is that address registered). Deep tables are block-RAM ROMs
        read through their port; shallow ones are plain logic on ``address_q`` (no read
        register: the constants fold into the comparators), and a single fold is a constant."""
        layout = data.ArrayLayout(shape, len(rows[0]))
        if len(rows) == 1:
            return layout.const(rows[0])
        if self._table_style() == "logic":
            value = Signal(layout, name=name)
            m.d.comb += value.eq(select(address_q, [layout.const(row) for row in rows]))
            return value
        memory = Memory(shape=layout, depth=len(rows), init=rows,
                        attrs={"ram_style": "block"})
        m.submodules[name] = memory
        port = memory.read_port()
        m.d.comb += port.addr.eq(address)
        return port.data

    def _logits_stage(self, m, accumulators, nf_a, done_nf, done):
        # logit = acc + bias = X + (C + bias): one adder per output word
        bias = self._layer.output.bias + self._offset
        rows = [[int(bias[nf * self._pe + p]) for p in range(self._pe)] for nf in range(self._nf)]
        width, is_signed = integer_range_shape(min(0, int(bias.min())), max(0, int(bias.max())))
        table = self._per_fold_table(m, "logit_bias", signed(width) if is_signed else
                                     unsigned(width), rows, nf_a, done_nf)
        results = []
        for p, acc in enumerate(accumulators):
            out = Signal(self._acc_shape, name=f"pe{p}_logit", reset_less=True)
            m.d.sync += out.eq(acc + table[p])   # X + (C + bias), exact in acc_shape
            results.append(out)
        valid = Signal(name="logit_valid")
        m.d.sync += valid.eq(done)
        return results, valid

    def _threshold_stage(self, m, accumulators, nf_a, done_nf, done):
        tables = self._threshold_tables()
        levels = (1 << self._layer.out_bits) - 1
        entry = self._requantization_entry()
        rows = self._requantizer_rows([{"invert": invert, "thresholds": thresholds}
                                       for invert, thresholds in tables])
        table = self._per_fold_table(m, "thresholds", entry, rows, nf_a, done_nf)
        results = []
        for p, acc in enumerate(accumulators):
            code = _count_passed(m, acc, table[p], levels, name=f"pe{p}")
            results.append(code[:self._layer.out_bits] if levels > 1 else code)
        valid = delay(m, done, self._stage_depth, name="code_valid")
        return results, valid

    def _serial_stage(self, m, accumulators, done):
        # Output words finish in fold order, at least SF >= S cycles apart, so one address
        # counter walks the table (row nf * S + step) and a scan never overlaps the next.
        # Cycle 0 (done): hold X, present row 0; cycle s + 1: row s read, R compares; then
        # the compare register, the count tree and the running count.
        comparators, steps = self._serial_comparators, self._serial_steps
        rows = self._serial_rows()
        layout = data.ArrayLayout(self._requantization_entry(), self._pe)
        left = Signal(range(steps), name="scan_left")    # rows still to present after this one
        presenting = Signal(name="scan_present")
        final = Signal(name="scan_final")                 # presenting the word's last row
        m.d.comb += [presenting.eq(done | (left != 0)),
                     final.eq(Mux(done, steps == 1, left == 1))]
        with m.If(presenting):
            m.d.sync += left.eq(Mux(done, steps - 1, left - 1))
        if len(rows) == 1:
            table = layout.const(rows[0])
        else:
            address = Signal(range(len(rows)), name="scan_addr")
            with m.If(presenting):
                m.d.sync += address.eq(Mux(address == len(rows) - 1, 0, address + 1))
            m.submodules.thresholds = memory = Memory(
                shape=layout, depth=len(rows), init=rows,
                attrs={"ram_style": self._table_style()})
            port = memory.read_port()
            m.d.comb += port.addr.eq(address)
            table = port.data
        # step markers: (a row is read, it is the word's first, its last), one per stage
        step, first, last = Signal(name="scan_step"), Signal(name="scan_first"), \
            Signal(name="scan_last")
        m.d.sync += [step.eq(presenting), first.eq(done), last.eq(final)]
        compared = [Signal(name="scan_cmp_step"), Signal(name="scan_cmp_first"),
                    Signal(name="scan_cmp_last")]
        m.d.sync += [compared[0].eq(step), compared[1].eq(first), compared[2].eq(last)]
        depth = _log2_ceil(comparators)
        counted = [delay(m, marker, depth, name=f"scan_sum_{role}")
                   for marker, role in zip(compared, ("step", "first", "last"))]
        results = []
        for p, acc in enumerate(accumulators):
            held = Signal(acc.shape(), name=f"pe{p}_held", reset_less=True)
            with m.If(done):
                m.d.sync += held.eq(acc)
            passed = _count_passed(m, held, table[p], comparators, name=f"pe{p}")
            count = Signal(unsigned(self._layer.out_bits), name=f"pe{p}_count", reset_less=True)
            with m.If(counted[0]):
                m.d.sync += count.eq(Mux(counted[1], passed, count + passed))
            results.append(count)
        valid = Signal(name="code_valid")
        m.d.sync += valid.eq(counted[0] & counted[2])
        return results, valid

    def _search_stage(self, m, accumulators, done_nf, done):
        # Binary search for m = how many thresholds X passes, one code bit per cycle, most
        # significant first: bit i is 1 when X passes s_c, c = (the bits decided so far) +
        # 2**i. Row c of the table holds the two thresholds the step after c may need, so
        # the address is made from registers only (c) and the compare only picks one of the
        # two read (by the bit it decided last): no compare lies in front of the memory's
        # address. Cycle 0 (done): hold X, present row 0 (the first step's threshold as both);
        # cycle i + 1: compare, decide bit k-1-i, present row c; after the last step the code
        # (m, or NOT m for an inverted channel) is a register. Output words are SF >= k
        # cycles apart, so a search ends by the cycle the next one starts (the last compare
        # and the next word's first address share it).
        bits = self._layer.out_bits
        entry = self._requantization_entry()
        probe = Signal(bits, name="search_probe")     # the bit decided this cycle (one-hot)
        m.d.sync += probe.eq(Mux(done, 1 << (bits - 1), probe >> 1))
        fold = None
        if self._nf > 1:
            fold = Signal(range(self._nf), name="search_fold", reset_less=True)
            with m.If(done):
                m.d.sync += fold.eq(done_nf)
        results = []
        for p, (acc, rows) in enumerate(zip(accumulators, self._search_rows())):
            held = Signal(acc.shape(), name=f"pe{p}_held", reset_less=True)
            with m.If(done):
                m.d.sync += held.eq(acc)
            table = Memory(shape=entry, depth=self._table_words(), init=rows,
                           attrs={"ram_style": self._table_style()})
            m.submodules[f"pe{p}_thresholds"] = table
            port = table.read_port()
            so_far = Signal(bits, name=f"pe{p}_so_far", reset_less=True)
            went_high = Signal(name=f"pe{p}_went_high", reset_less=True)   # last bit decided
            passes = held >= Mux(went_high, port.data.high, port.data.low)
            decided = Signal(bits, name=f"pe{p}_decided")
            m.d.comb += decided.eq(so_far | Mux(passes, probe, 0))
            m.d.sync += [so_far.eq(Mux(done, 0, decided)), went_high.eq(passes)]
            row = Mux(done, 0, so_far | probe)
            m.d.comb += port.addr.eq(row if fold is None else
                                     Cat(row, Mux(done, done_nf, fold)))
            code = Signal(bits, name=f"pe{p}_code", reset_less=True)
            with m.If(probe[0]):
                # the last step decides bit 0 (0 in `so_far` until then); the others are
                # registers, so only bit 0 waits for the compare
                m.d.sync += code.eq(Cat(passes, so_far[1:]) ^ port.data.invert.replicate(bits))
            results.append(code)
        valid = delay(m, done, self._stage_depth, name="code_valid")
        return results, valid

    def _affine_stage(self, m, accumulators, nf_a, done_nf, done):
        # t = M * (X ^ mask) + bias (mod 2**n, :meth:`_affine_rows`); code = clip(t >> S, 0,
        # L): the complement, the product (two registered levels, :func:`pipelined_product`,
        # or a DSP block's), one adder, the clamp, each registered.
        affine = self._layer.requantizer.affine
        rows = self._requantizer_rows(self._affine_rows(affine))
        layout = self._requantization_entry()
        table = self._per_fold_table(m, "requantization", layout, rows, nf_a, done_nf)
        levels = (1 << self._layer.out_bits) - 1
        sum_shape = self._affine_sum_shape(affine)
        results = []
        for p, acc in enumerate(accumulators):
            entry = table[p]
            complemented = Mux(entry.negate, ~acc, acc)
            if self._dsp_requantizer:
                # operand registers and the product register: an SB_MAC16's own
                operand = delay(m, complemented, 1, name=f"pe{p}_factor", reset_less=True)
                multiplier = delay(m, entry.multiplier, 1, name=f"pe{p}_multiplier",
                                   reset_less=True)
                product = Signal(len(operand) + len(multiplier), name=f"pe{p}_product",
                                 reset_less=True)
                m.d.sync += product.eq(operand * multiplier)
            else:
                product = pipelined_product(m, complemented, entry.multiplier,
                                            name=f"pe{p}_product")
            bias = delay(m, entry.bias, 2, name=f"pe{p}_bias", reset_less=True)
            total = Signal(sum_shape, name=f"pe{p}_sum", reset_less=True)
            # the low n bits of the sum are exact (t fits the sum's shape)
            m.d.sync += total.eq((bias + product[:len(total)])[:len(total)])
            scaled = total.as_signed() >> affine.shift if sum_shape.signed else \
                total >> affine.shift
            code = Signal(unsigned(self._layer.out_bits), name=f"pe{p}_code", reset_less=True)
            if sum_shape.signed:
                clamped = Mux(scaled < 0, 0, Mux(scaled > levels, levels, scaled))
            else:
                clamped = Mux(scaled > levels, levels, scaled)
            m.d.sync += code.eq(clamped)
            results.append(code)
        valid = delay(m, done, self._stage_depth, name="code_valid")
        return results, valid
