"""The host's side of the link (:mod:`~wrpn_rtl.board.protocol`): images to payloads, result
payloads to output words and their fields, the identity in ``PONG``, and the CRC a self-test
must report. Pure Python; ``wrpn-rtl infer`` and the tests share it."""
from dataclasses import dataclass

from wrpn_rtl.board import protocol

__all__ = ["Identity", "image_payload", "result_words", "word_fields", "outputs_crc"]


@dataclass(frozen=True)
class Identity:
    """What ``PONG`` says about the design on the board."""

    input_codes: int
    input_bits: int
    output_words: int
    output_bits: int
    cycles_per_image: int

    @classmethod
    def parse(cls, payload):
        """Read a ``PONG`` payload.

        Raises
        ------
        LinkError
            A payload of the wrong length.
        """
        if len(payload) != 10:
            raise protocol.LinkError(f"a PONG payload has 10 bytes, not {len(payload)}")
        return cls(int.from_bytes(payload[0:2], "little"), payload[2],
                   int.from_bytes(payload[3:5], "little"), payload[5],
                   int.from_bytes(payload[6:10], "little"))


def image_payload(codes, input_bits):
    """An ``IMAGE`` payload: ``codes`` (one image, in the accelerator's input order) of
    ``input_bits`` bits each, little-endian in ``code_bytes(input_bits)`` bytes."""
    width = protocol.code_bytes(input_bits)
    return b"".join(int(code).to_bytes(width, "little") for code in codes)


def result_words(payload, output_bits, count):
    """The ``count`` raw output words of a ``RESULT`` payload.

    Raises
    ------
    LinkError
        A payload of the wrong length.
    """
    width = protocol.code_bytes(output_bits)
    if len(payload) != width * count:
        raise protocol.LinkError(f"a RESULT of {count} words of {output_bits} bits has "
                                 f"{width * count} bytes, not {len(payload)}")
    return [int.from_bytes(payload[i * width:(i + 1) * width], "little")
            for i in range(count)]


def word_fields(word, fields):
    """A raw output word split into its fields, lowest bits first: ``fields`` is
    ``[(width, signed)]`` as :func:`~wrpn_rtl.compiler.manifest.output_fields` gives it."""
    values, shift = [], 0
    for width, signed in fields:
        value = (word >> shift) & ((1 << width) - 1)
        if signed and value >> (width - 1):
            value -= 1 << width
        values.append(value)
        shift += width
    return values


def outputs_crc(words, fields):
    """The CRC a ``SELFTEST`` must report for these expected output words (lists of field
    values, as :func:`~wrpn_rtl.compiler.manifest.expected_outputs` gives them)."""
    output_bits = sum(width for width, _ in fields)
    data = bytearray()
    for values in words:
        raw, shift = 0, 0
        for value, (width, _) in zip(values, fields):
            raw |= (int(value) & ((1 << width) - 1)) << shift
            shift += width
        data += raw.to_bytes(protocol.code_bytes(output_bits), "little")
    return protocol.crc16(bytes(data))
