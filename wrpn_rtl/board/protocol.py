"""The host link's framed protocol, stated once: the host side (``wrpn-rtl infer``) and the
board's gateware (:mod:`wrpn_rtl.hardware.link`) both follow this module. Pure Python.

Bytes travel over a UART, 8 data bits, no parity, one stop bit (8N1), least significant bit
first.

Framing
-------
A frame on the wire is ``FLAG body FLAG``: ``FLAG`` (0x7E) separates frames and any number of
flags may stand between two frames. Inside a frame a body byte equal to ``FLAG`` or ``ESC``
(0x7D) is sent as ``ESC, byte ^ 0x20`` (HDLC-style byte stuffing), so a flag on the wire
always means a frame boundary. The body is ``TYPE payload CRC``: one type byte, the payload,
and the CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
xor) of type and payload, high byte first. A receiver drops a body whose CRC fails, whose
type is unknown or whose payload has the wrong length for its type, answers ``ERROR`` naming
why, and waits for the next flag: a dropped or corrupted byte costs one frame, and the link is
in step again at the next flag.

Messages
--------
=============  =====  ==========================  ===============================================
message        type   payload                     answer
=============  =====  ==========================  ===============================================
``PING``       0x01   none                        ``PONG``: the design's identity (below)
``IMAGE``      0x02   the input codes             ``RESULT``: the output words
``SELFTEST``   0x03   none                        ``SELFTEST_RESULT``
``PONG``       0x81   identity                    -
``RESULT``     0x82   output words                -
``SELFTEST..`` 0x83   cycles (4 bytes), images    -
                      (2 bytes), output CRC (2)
``ERROR``      0xEE   one code byte               -
=============  =====  ==========================  ===============================================

Multi-byte numbers are little-endian. An image's codes go in the accelerator's input order
(row-major ``H x W x C``), each in ``code_bytes(input_bits)`` bytes; the result holds the
accelerator's output words in stream order, each in ``code_bytes(width)`` bytes of its
two's-complement or unsigned value as the manifest's output fields read it. The identity in
``PONG`` is: input codes per image (2 bytes), input bits (1), output words per image (2),
output word bits (1), expected cycles per image (4).
"""

__all__ = ["FLAG", "ESC", "PING", "IMAGE", "SELFTEST", "PONG", "RESULT", "SELFTEST_RESULT",
           "ERROR", "ERROR_CODES", "crc16", "code_bytes", "frame", "Deframer", "LinkError"]

FLAG = 0x7E
ESC = 0x7D
ESCAPE_XOR = 0x20

PING, IMAGE, SELFTEST = 0x01, 0x02, 0x03
PONG, RESULT, SELFTEST_RESULT = 0x81, 0x82, 0x83
ERROR = 0xEE
#: ``ERROR`` codes and what they mean.
ERROR_CODES = {1: "the frame's CRC failed", 2: "the payload has the wrong length for its type",
               3: "unknown message type", 4: "the frame is longer than any message"}

CRC_POLYNOMIAL = 0x1021
CRC_INITIAL = 0xFFFF


class LinkError(Exception):
    """A frame that breaks the protocol (the message says how)."""


def crc16_step(crc, byte):
    """The CRC-16/CCITT-FALSE register after one more byte (the hardware does the same
    eight shifts in one cycle)."""
    crc ^= byte << 8
    for _ in range(8):
        crc = ((crc << 1) ^ CRC_POLYNOMIAL) if crc & 0x8000 else (crc << 1)
        crc &= 0xFFFF
    return crc


def crc16(data):
    """CRC-16/CCITT-FALSE of ``data`` (``crc16(b"123456789") == 0x29B1``)."""
    crc = CRC_INITIAL
    for byte in data:
        crc = crc16_step(crc, byte)
    return crc


def code_bytes(bits):
    """Bytes that carry one code or word of ``bits`` bits."""
    if not isinstance(bits, int) or bits < 1:
        raise ValueError(f"bits must be a positive integer, not {bits!r}")
    return (bits + 7) // 8


def frame(kind, payload=b""):
    """The bytes on the wire for one message: flag, escaped body (type, payload, CRC),
    flag."""
    body = bytes([kind]) + bytes(payload)
    crc = crc16(body)
    body += bytes([crc >> 8, crc & 0xFF])
    wire = bytearray([FLAG])
    for byte in body:
        if byte in (FLAG, ESC):
            wire += bytes([ESC, byte ^ ESCAPE_XOR])
        else:
            wire.append(byte)
    wire.append(FLAG)
    return bytes(wire)


class Deframer:
    """Bytes from the wire in, whole messages out: ``feed(data)`` returns
    ``[(type, payload), ...]`` for every frame completed, and a :class:`LinkError` instance in
    place of each frame that was dropped (a bad CRC, a frame too short to hold a type and a
    CRC, an escape before a flag)."""

    def __init__(self):
        self._body, self._escaped, self._inside = bytearray(), False, False

    def feed(self, data):
        messages = []
        for byte in bytes(data):
            if byte == FLAG:
                if self._body or self._escaped:
                    messages.append(self._finish())
                self._body, self._escaped, self._inside = bytearray(), False, True
            elif not self._inside:
                continue                     # noise before the first flag
            elif byte == ESC:
                self._escaped = True
            else:
                self._body.append(byte ^ ESCAPE_XOR if self._escaped else byte)
                self._escaped = False
        return messages

    def _finish(self):
        body = bytes(self._body)
        if self._escaped:
            return LinkError("an escape byte ended the frame")
        if len(body) < 3:
            return LinkError(f"a frame of {len(body)} bytes is too short for a type and a CRC")
        if crc16(body[:-2]) != (body[-2] << 8 | body[-1]):
            return LinkError("the frame's CRC failed")
        return body[0], body[1:-2]
