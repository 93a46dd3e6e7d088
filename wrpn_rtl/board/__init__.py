"""Boards: the host link protocol, board tops, bitstreams and the host side (`infer`)."""
