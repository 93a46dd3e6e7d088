# amaranth: UnusedElaboratable=no
import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from wrpn_rtl.hardware.classifier import ClassifierHead
from wrpn_rtl.sim.amaranth_stream import run_stream


@pytest.mark.parametrize("classes, lanes, shape", [(10, 1, signed(6)), (10, 5, signed(3)),
                                                   (7, 7, unsigned(4)), (1, 1, signed(5)),
                                                   (12, 4, unsigned(2))])
def test_label_is_the_first_largest_logit(classes, lanes, shape, rng):
    dut = ClassifierHead(classes=classes, lanes=lanes, shape=shape)
    low, high = (-(1 << (shape.width - 1)), 1 << (shape.width - 1)) if shape.signed \
        else (0, 1 << shape.width)
    images = 12
    ref_logits = rng.integers(low, high, (images, classes))
    ref_logits[0] = high - 1                     # every class tied: class 0 wins
    ref_logits[1, -1] = ref_logits[1, 0] = high - 1
    words_in = ref_logits.reshape(-1, lanes).tolist()
    fields = [(shape.width, shape.signed)] * classes + [(dut.label_shape.width, False)]
    rtl, cycles = run_stream(dut, words_in, images, out_fields=fields, rng=rng,
                             stall_in=0.3, stall_out=0.4)
    ref = [list(row) + [int(np.argmax(row))] for row in ref_logits]
    assert rtl == ref
    assert rtl[1][-1] == 0


@pytest.mark.parametrize("classes, lanes", [(10, 1), (10, 2), (10, 5), (7, 7), (1, 1)])
def test_back_to_back_cycles(classes, lanes, rng):
    """With no stall an image takes exactly ``cycles_per_frame`` (``2 * classes + 2``): from
    the first word in to the last image's word out, every image but the last takes its
    period and the last one its ``classes`` two-cycle compares after the first word
    arrives."""
    dut = ClassifierHead(classes=classes, lanes=lanes, shape=signed(8))
    assert dut.cycles_per_frame == 2 * classes + 2
    images = 6
    logits = rng.integers(-128, 128, (images, classes))
    rtl, cycles = run_stream(dut, logits.reshape(-1, lanes).tolist(), images,
                             out_fields=[(8, True)] * classes + [(dut.label_shape.width, False)])
    assert [row[-1] for row in rtl] == list(np.argmax(logits, axis=1))
    assert [row[:-1] for row in rtl] == logits.tolist()
    assert cycles == (images - 1) * dut.cycles_per_frame + 2 * classes + 1


def test_classifier_errors():
    with pytest.raises(ValueError, match=r"^lanes must divide classes 10, not 3$"):
        ClassifierHead(classes=10, lanes=3, shape=signed(4))
    with pytest.raises(ValueError, match=r"^classes must be a positive integer, not 0$"):
        ClassifierHead(classes=0, lanes=1, shape=signed(4))
