"""The host link's framing: CRC check value, round trips of any payload (flags and escapes
inside), every corruption of a frame detected, and the link in step again after it."""
from hypothesis import given, strategies as st
import pytest

from wrpn_rtl.board.protocol import (ESC, FLAG, IMAGE, Deframer, LinkError, code_bytes, crc16,
                                     frame)


def test_crc_is_ccitt_false():
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF


@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=80)), max_size=6),
       st.integers(0, 3))
def test_frames_round_trip_with_any_bytes(messages, flags_between):
    wire = b"".join(frame(kind, payload) + bytes([FLAG]) * flags_between
                    for kind, payload in messages)
    assert Deframer().feed(wire) == [(kind, payload) for kind, payload in messages]


def test_flags_and_escapes_inside_are_stuffed():
    wire = frame(IMAGE, bytes([FLAG, ESC, 1]))
    assert wire.count(FLAG) == 2 and wire[0] == wire[-1] == FLAG
    assert bytes([ESC, FLAG ^ 0x20, ESC, ESC ^ 0x20]) in wire


@given(st.binary(min_size=1, max_size=40), st.data())
def test_every_corrupted_byte_is_caught_and_the_next_frame_arrives(payload, data):
    wire = bytearray(frame(IMAGE, payload))
    at = data.draw(st.integers(1, len(wire) - 2))           # inside the frame
    how = data.draw(st.sampled_from(["flip", "drop"]))
    if how == "flip":
        wire[at] ^= 1 << data.draw(st.integers(0, 7))
    else:
        del wire[at]
    received = Deframer().feed(bytes(wire) + frame(IMAGE, b"next"))
    assert received[-1] == (IMAGE, b"next")
    assert all(isinstance(m, LinkError) for m in received[:-1]) and received[:-1]


def test_noise_before_the_first_flag_and_short_frames():
    deframer = Deframer()
    assert deframer.feed(b"\x00\x13garbage") == []
    received = deframer.feed(bytes([FLAG, 1, 2, FLAG]) + frame(IMAGE, b"x"))
    assert str(received[0]) == "a frame of 2 bytes is too short for a type and a CRC"
    assert received[1] == (IMAGE, b"x")
    # a frame cut in two by the wire arrives whole
    wire = frame(IMAGE, b"split here")
    assert deframer.feed(wire[:5]) == [] and deframer.feed(wire[5:]) == [(IMAGE, b"split here")]


def test_code_bytes():
    assert [code_bytes(b) for b in (1, 8, 9, 16, 17)] == [1, 1, 2, 2, 3]
    with pytest.raises(ValueError, match=r"^bits must be a positive integer, not 0$"):
        code_bytes(0)
