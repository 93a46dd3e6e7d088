"""The host's client against a board modelled in Python (the protocol module's framing), with
faults injected on the wire both ways: every request still gets its own answer, and each
repair is recorded. Then the image and label files ``infer`` reads, and their errors."""
import re

import numpy as np
import pytest

from wrpn_rtl.board import protocol
from wrpn_rtl.board.client import BoardClient
from wrpn_rtl.board.host import Identity
from wrpn_rtl.job.network import read_inputs as read_images
from wrpn_rtl.job.common import StepError

IDENTITY = Identity(4, 8, 1, 16, 100)


class FakeBoard:
    """A serial port whose far end answers as the gateware does: PONG, RESULT (the sum of
    the image's codes as one 16-bit word), SELFTEST_RESULT, ERROR for a bad frame. ``faults``
    maps the number of a frame on the wire (host to board, counted from 0) to what goes
    wrong: "drop" (a byte of it is lost), "corrupt-answer" (a byte of its answer flips),
    "lose-answer" (the answer never comes), "late-answer" (the answer comes only after the
    next frame)."""

    def __init__(self, faults=None):
        self.timeout = None
        self._faults = dict(faults or {})
        self._deframer = protocol.Deframer()
        self._out = bytearray()
        self._late = b""
        self.frames_seen = 0
        self.requests = []

    in_waiting = property(lambda self: len(self._out))

    def write(self, data):
        data = bytes(data)
        if data.count(protocol.FLAG) >= 2:           # a whole frame: maybe faulted
            fault = self._faults.get(self.frames_seen)
            self.frames_seen += 1
            if fault == "drop":
                data = data[:3] + data[4:]
        else:
            fault = None
        for message in self._deframer.feed(data):
            answer = self._answer(message)
            if fault == "corrupt-answer":
                answer = bytearray(answer)
                answer[2] ^= 0x10
            if fault == "lose-answer":
                continue
            if fault == "late-answer":
                self._late = bytes(answer)
                continue
            self._out += answer + self._late
            self._late = b""

    def _answer(self, message):
        if isinstance(message, protocol.LinkError):
            return protocol.frame(protocol.ERROR, bytes([1]))
        kind, payload = message
        self.requests.append(kind)
        if kind == protocol.PING:
            i = IDENTITY
            return protocol.frame(protocol.PONG, i.input_codes.to_bytes(2, "little")
                                  + bytes([i.input_bits]) + i.output_words.to_bytes(2, "little")
                                  + bytes([i.output_bits])
                                  + i.cycles_per_image.to_bytes(4, "little"))
        if kind == protocol.IMAGE:
            if len(payload) != IDENTITY.input_codes:
                return protocol.frame(protocol.ERROR, bytes([2]))
            return protocol.frame(protocol.RESULT, sum(payload).to_bytes(2, "little"))
        if kind == protocol.SELFTEST:
            return protocol.frame(protocol.SELFTEST_RESULT, (400).to_bytes(4, "little")
                                  + (4).to_bytes(2, "little") + (0xBEEF).to_bytes(2, "little"))
        return protocol.frame(protocol.ERROR, bytes([3]))

    def read(self, count):
        data = bytes(self._out[:count])
        del self._out[:count]
        return data

    def reset_input_buffer(self):
        self._out.clear()


def test_requests_get_their_answers():
    client = BoardClient(FakeBoard(), timeout_s=0.1)
    assert client.identity() == IDENTITY
    assert client.infer([1, 2, 3, 0x7E], IDENTITY) == [6 + 0x7E]
    report = client.selftest()
    assert (report.cycles, report.images, report.crc) == (400, 4, 0xBEEF)
    assert client.repairs == []


@pytest.mark.parametrize("fault, repair", [
    ("drop", "the board dropped IMAGE: the frame's CRC failed"),
    ("corrupt-answer", "the answer to IMAGE was corrupted: the frame's CRC failed"),
    ("lose-answer", "no answer to IMAGE within 0.1 s"),
    ("late-answer", "no answer to IMAGE within 0.1 s"),
])
def test_a_fault_on_the_wire_is_repaired_and_each_image_keeps_its_own_answer(fault, repair):
    board = FakeBoard({2: fault})                  # frame 0: PING, 1: image 0, 2: image 1
    client = BoardClient(board, timeout_s=0.1)
    client.identity()
    answers = [client.infer([n, n, n, n], IDENTITY) for n in range(1, 6)]
    assert answers == [[4 * n] for n in range(1, 6)]
    assert client.repairs == [repair]


def test_a_link_that_never_answers_is_an_error_naming_every_try():
    class Silent(FakeBoard):
        def write(self, data):
            pass
    client = BoardClient(Silent(), timeout_s=0.05, retries=1)
    with pytest.raises(protocol.LinkError, match=r"^the link did not come back in step"):
        client.identity()


def test_a_wrong_answer_type_is_an_error():
    class Confused(FakeBoard):
        def _answer(self, message):
            return protocol.frame(protocol.SELFTEST_RESULT, bytes(8))
    with pytest.raises(protocol.LinkError, match=r"^IMAGE was answered with SELFTEST_RESULT, "
                                                 r"not RESULT$"):
        BoardClient(Confused(), timeout_s=0.1).infer([0] * 4, IDENTITY)


# -- the files infer reads ------------------------------------------------------------------------
class Network:
    input_shape = (2, 2, 1)
    input_bits = 4


def test_images_in_every_accepted_shape(tmp_path):
    codes = np.arange(12).reshape(3, 2, 2, 1) % 16
    for shape in [(3, 2, 2, 1), (3, 2, 2), (3, 4)]:
        np.save(tmp_path / "images.npy", codes.reshape(shape).astype(np.uint8))
        got, labels = read_images(Network, tmp_path / "images.npy")
        assert got.shape == (3, 2, 2, 1) and (got == codes).all() and labels is None
    np.save(tmp_path / "labels.npy", np.array([1, 2, 3]))
    assert read_images(Network, tmp_path / "images.npy", tmp_path / "labels.npy")[1].tolist() \
        == [1, 2, 3]


@pytest.mark.parametrize("images, labels, message", [
    (np.full((2, 4), np.nan, np.float32), None, r"holds NaN or infinite values"),
    (np.zeros((2, 5), np.int64), None, r"must be shaped \(N, 2, 2, 1\) or \(N, 4\) with N >= "
                                       r"1 and hold integer codes or float values, not int64 "
                                       r"shaped \(2, 5\)"),
    (np.zeros((0, 4), np.int64), None, r"with N >= 1 .*shaped \(0, 4\)"),
    (np.full((2, 4), 16), None, r"holds codes from 16 to 16; the network's 4-bit input takes "
                                r"0\.\.15"),
    (np.zeros((2, 4), np.int64), np.array([1, 2, 3]), r"--labels .* must hold 2 integer "
                                                      r"labels \(one per input\), not int64 "
                                                      r"values shaped \(3,\)"),
])
def test_bad_image_files_are_named_errors(tmp_path, images, labels, message):
    np.save(tmp_path / "images.npy", images)
    if labels is not None:
        np.save(tmp_path / "labels.npy", labels)
    with pytest.raises(StepError, match=message):
        read_images(Network, tmp_path / "images.npy",
                    None if labels is None else tmp_path / "labels.npy")


def test_unreadable_image_files_are_named_errors(tmp_path):
    with pytest.raises(StepError, match=r"^IMAGES '.*nothing\.npy' does not exist$"):
        read_images(Network, tmp_path / "nothing.npy")
    with pytest.raises(StepError, match=r"is a folder, not a \.npy file$"):
        read_images(Network, tmp_path)
    (tmp_path / "text.npy").write_text("hello")
    with pytest.raises(StepError, match=r"^IMAGES '.*text\.npy' is not a readable \.npy "
                                        r"array"):
        read_images(Network, tmp_path / "text.npy")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(StepError, match=r"is not a readable \.npy array"):
        read_images(Network, tmp_path / "objects.npy")


def test_infer_command_errors_name_the_flag(tmp_path, capsys):
    from wrpn_rtl.cli import main
    out = ["--out", str(tmp_path / "design")]
    assert main(["infer", "--port", "sim", "--labels", str(tmp_path / "l.npy"), *out]) == 1
    assert ("--labels goes with an IMAGES file (the built-in test images come with their "
            "labels)") in capsys.readouterr().err
    assert main(["infer", "--port", str(tmp_path / "ttyNONE"), "--images", "2", *out]) == 1
    assert re.search(r"--port '.*ttyNONE' cannot be opened: .*No such file or directory",
                     capsys.readouterr().err)
    np.save(tmp_path / "images.npy", np.full((2, 8, 8), np.nan))
    assert main(["infer", str(tmp_path / "images.npy"), "--port", "sim", *out]) == 1
    assert "holds NaN or infinite values" in capsys.readouterr().err
    assert main(["infer", "--port", "sim", "--board", "arty", *out]) == 1
    assert "--board must be one of icebreaker, ulx3s-25f, ulx3s-85f, not 'arty'" \
        in capsys.readouterr().err
