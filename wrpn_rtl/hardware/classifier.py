"""The classifier head: a logits stream in, one word per image out (all logits and their argmax).

The last layer of a network streams its logits ``lanes`` per word, ``classes / lanes`` words
per image. :class:`ClassifierHead` shifts them in and compares each new logit with the largest
so far as it arrives, one every two cycles (ties go to the lowest class index, as
``numpy.argmax``), then offers one word per image: ``{"logits": classes logits, "label":
index}``. Per image it takes ``2 * classes + 2`` cycles (a word every ``2 * lanes`` cycles, the
hand-over), far fewer than any convolution layer before it; ``valid`` and ``ready`` are
registers and never depend on the other side's.
"""
from amaranth.hdl import Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, wiring

from wrpn_rtl.compiler import cost
from wrpn_rtl.golden.checks import check_positive_int
from wrpn_rtl.hardware.arithmetic import select
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
        """Cycles per image with no stall: a two-cycle compare per class (a word arrives in
        the cycle its predecessor's last lane is decided), the hand-over and the cycle after
        it."""
        return 2 * self._classes + 2

    def estimate(self):
        """:func:`wrpn_rtl.compiler.cost.classifier_head`: the logit registers, the
        comparator and the lane select in front of it, counters."""
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
        classes, lanes = self._classes, self._lanes
        logits = self.output.payload.logits
        best = Signal(self._shape, name="best", reset_less=True)
        # A word's logits are compared one lane at a time after it arrives (`pending`), each
        # over two cycles: the compare into a register (`beats`), then the decision from
        # registers only, so the comparator's path ends at one flip-flop and the enables of
        # `best` and the label are one gate deep (the compare straight into those enables,
        # six LUT levels as mapped, set the UP5K design's clock). `lane` and `cls` count the
        # lane and the class compared, each with its "last value" flag as a register. The next
        # word may arrive in the cycle of the last lane's decision, unless that is the image's
        # last class: then the output word is made first.
        pending = Signal(name="pending")
        deciding = Signal(name="deciding")                # the second cycle of a compare
        beats = Signal(name="beats")
        lane = Signal(range(lanes), name="lane")
        lane_last = Signal(init=int(lanes == 1), name="lane_last")
        cls = Signal(range(classes), name="cls")
        cls_first = Signal(init=1, name="cls_first")
        cls_last = Signal(init=int(classes == 1), name="cls_last")

        ready = ~self.output.valid & (~pending | (deciding & lane_last & ~cls_last))
        m.d.comb += self.input.ready.eq(ready)
        arrives = self.input.valid & ready
        # The words shift in at the top (after the last word, class i is in `logits[i]`), a
        # bare flip-flop per logit bit with only an enable: the word arrived last is the top
        # `lanes` logits, compared from there while the next one waits.
        with m.If(arrives):
            m.d.sync += [logits[i].eq(logits[i + lanes]) for i in range(classes - lanes)]
            m.d.sync += [logits[classes - lanes + k].eq(self.input.payload[k])
                         for k in range(lanes)]
        m.d.sync += [pending.eq(arrives | (pending & ~(deciding & lane_last))),
                     deciding.eq(pending & ~deciding)]

        candidate = select(lane, [logits[classes - lanes + k] for k in range(lanes)])
        m.d.sync += beats.eq(candidate > best)
        with m.If(deciding):
            with m.If(cls_first | beats):
                m.d.sync += [best.eq(candidate), self.output.payload.label.eq(cls)]
            m.d.sync += [lane.eq(Mux(lane_last, 0, lane + 1)),
                         lane_last.eq((lanes == 1) | (~lane_last & (lane == lanes - 2))),
                         cls.eq(Mux(cls_last, 0, cls + 1)), cls_first.eq(cls_last),
                         cls_last.eq((classes == 1) | (~cls_last & (cls == classes - 2)))]
            with m.If(cls_last):
                m.d.sync += self.output.valid.eq(1)
        with m.If(self.output.valid & self.output.ready):
            m.d.sync += self.output.valid.eq(0)
        return m
