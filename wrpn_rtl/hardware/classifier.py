"""The classifier head: a logits stream in, one word per image out (all logits and their argmax).

The last layer of a network streams its logits ``lanes`` per word, ``classes / lanes`` words
per image. :class:`ClassifierHead` shifts them in, then scans them one per cycle for the
largest (ties go to the lowest class index, as ``numpy.argmax``) by rotating them past the
comparators, and offers one word per
image: ``{"logits": classes logits, "label": index}``. Per image it takes
``classes / lanes + classes + 1`` cycles, far fewer than any convolution layer before it;
``valid`` is a register and never depends on ``ready``.
"""
from amaranth.hdl import Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, wiring

from wrpn_rtl.compiler import cost
from wrpn_rtl.golden.checks import check_positive_int
from wrpn_rtl.hardware.streams import stream_members

__all__ = ["ClassifierGeometry", "ClassifierHead"]


class ClassifierGeometry:
    """A classifier head's parameters, without building hardware: cycles and estimate
    (parameters and errors: see :class:`ClassifierHead`)."""

    def __init__(self, *, classes, lanes, shape):
        self._classes = check_positive_int("classes", classes)
        self._lanes = check_positive_int("lanes", lanes)
        if self._classes % self._lanes:
            raise ValueError(f"lanes must divide classes {self._classes}, not {self._lanes}")
        self._shape = Shape.cast(shape)
        self._label_shape = unsigned(max(1, (self._classes - 1).bit_length()))

    classes = property(lambda self: self._classes)
    lanes = property(lambda self: self._lanes)
    label_shape = property(lambda self: self._label_shape)

    @property
    def input_layout(self):
        return data.ArrayLayout(self._shape, self._lanes)

    @property
    def output_layout(self):
        return data.StructLayout({"logits": data.ArrayLayout(self._shape, self._classes),
                                  "label": self._label_shape})

    @property
    def cycles_per_frame(self):
        """Cycles per image with no stall: collect, scan, hand over."""
        return self._classes // self._lanes + self._classes + 1

    def estimate(self):
        """:func:`wrpn_rtl.compiler.cost.classifier_head`: the logit registers, two
        comparators, counters."""
        return cost.classifier_head(classes=self._classes, lanes=self._lanes,
                                    logit_bits=self._shape.width,
                                    label_bits=self._label_shape.width)


class ClassifierHead(ClassifierGeometry, wiring.Component):
    """Collect one image's logits and find the class with the largest one.

    Parameters
    ----------
    classes : int
        Logits per image, >= 1.
    lanes : int
        Logits per input word; must divide ``classes``.
    shape : Shape
        One logit (signed or unsigned).

    Members
    -------
    input : In(stream.Signature(ArrayLayout(shape, lanes)))
        ``classes / lanes`` words per image, class ``i`` in word ``i // lanes``, lane
        ``i % lanes``.
    output : Out(stream.Signature(StructLayout({"logits": ArrayLayout(shape, classes),
                                                "label": unsigned(ceil_log2(classes))})))
        One word per image; ``logits`` occupies the low bits, ``label`` the high bits.

    Raises
    ------
    TypeError, ValueError
        ``classes`` or ``lanes`` not a positive integer, ``lanes`` not dividing ``classes``.
    """

    def __init__(self, *, classes, lanes, shape):
        ClassifierGeometry.__init__(self, classes=classes, lanes=lanes, shape=shape)
        wiring.Component.__init__(self, stream_members(self))

    def elaborate(self, platform):
        m = Module()
        words = self._classes // self._lanes
        logits = self.output.payload.logits
        word_index = Signal(range(words), name="word_index")
        scanning = Signal(name="scanning")
        scan = Signal(range(self._classes), name="scan")
        best = Signal(self._shape, name="best", reset_less=True)

        classes, lanes = self._classes, self._lanes
        # The scan rotates the logits by one class per cycle and compares the one at the
        # front (no multiplexer in front of the comparator); after `classes` steps they are
        # back in order for the output word. The comparison is made a cycle ahead, into
        # registers, against both values `best` can take next (the front logit, if it is
        # taken now, or `best` as it is), so only a choice between two flags sits before the
        # registers' enables.
        candidate, following = logits[0], logits[1 % classes]
        beats_candidate, beats_best = Signal(name="beats_candidate"), Signal(name="beats_best")
        took = Signal(name="took")
        m.d.sync += [beats_candidate.eq(following > candidate), beats_best.eq(following > best)]
        greater = Mux(took, beats_candidate, beats_best)      # candidate > best, this cycle
        take = scanning & ((scan == 0) | greater)
        m.d.sync += took.eq(take)

        # The words shift in at the top (after the last word, class i is in `logits[i]`),
        # `lanes` classes per word; the scan rotates by one. With one lane per word both are
        # the same move, so a logit bit is a bare flip-flop with no LUT in front of it.
        m.d.comb += self.input.ready.eq(~scanning & ~self.output.valid)
        with m.If(self.input.valid & self.input.ready):
            m.d.sync += [logits[i].eq(logits[i + lanes]) for i in range(classes - lanes)]
            m.d.sync += [logits[classes - lanes + lane].eq(self.input.payload[lane])
                         for lane in range(lanes)]
            with m.If(word_index == words - 1):
                m.d.sync += [word_index.eq(0), scanning.eq(1)]
            with m.Else():
                m.d.sync += word_index.eq(word_index + 1)
        with m.Elif(scanning):
            m.d.sync += [logits[i].eq(logits[(i + 1) % classes]) for i in range(classes)]
            with m.If(take):
                m.d.sync += [best.eq(candidate), self.output.payload.label.eq(scan)]
            with m.If(scan == classes - 1):
                m.d.sync += [scan.eq(0), scanning.eq(0), self.output.valid.eq(1)]
            with m.Else():
                m.d.sync += scan.eq(scan + 1)

        with m.If(self.output.valid & self.output.ready):
            m.d.sync += self.output.valid.eq(0)
        return m
