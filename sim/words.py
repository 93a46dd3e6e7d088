"""Stream words as plain integers: the one place lanes and fields are packed and unpacked.

A word is cut into fields, lowest bits first, each ``(width, signed)``: an ``ArrayLayout`` of
``n`` lanes is ``n`` equal fields; the classifier's output is the logits, then the label.
"""

__all__ = ["pack", "unpack"]


def pack(lanes, width):
    """Lane values (two's complement for negatives) of ``width`` bits each -> one integer."""
    mask = (1 << width) - 1
    value = 0
    for index, lane in enumerate(lanes):
        value |= (int(lane) & mask) << (index * width)
    return value


def unpack(value, fields):
    """``value`` cut into ``fields`` (``[width, signed]`` pairs, lowest bits first)."""
    lanes, offset = [], 0
    for width, is_signed in fields:
        lane = (int(value) >> offset) & ((1 << width) - 1)
        if is_signed and lane >> (width - 1):
            lane -= 1 << width
        lanes.append(lane)
        offset += width
    return lanes
