# amaranth: UnusedElaboratable=no
"""The board's end of the host link in Amaranth's simulator, against a stand-in accelerator
and the host-side protocol code: pings, images in and results out under random stalls, and
every kind of bad frame answered with its error code while the link stays in step."""
import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.lib import data
from amaranth.hdl import unsigned
from amaranth.sim import Simulator

from wrpn_rtl.board import protocol
from wrpn_rtl.hardware.link import HostLink, LinkGeometry
from wrpn_rtl.sim.amaranth_stream import stream_get, stream_put


class StandIn(wiring.Component):
    """Takes one image (``words`` input words), then gives ``outputs`` words: word ``k`` is
    ``(sum of the codes) * (k + 1)`` modulo ``2**output_bits``."""

    def __init__(self, geometry):
        self._g = geometry
        super().__init__({
            "input": In(stream.Signature(data.ArrayLayout(unsigned(geometry.input_bits),
                                                          geometry.input_simd))),
            "output": Out(stream.Signature(unsigned(geometry.output_bits)))})

    def elaborate(self, platform):
        m = Module()
        g = self._g
        total = Signal(32)
        taken = Signal(range(g.input_codes // g.input_simd + 1))
        given = Signal(range(g.output_words + 1))
        words = g.input_codes // g.input_simd
        m.d.comb += self.input.ready.eq(taken < words)
        with m.If(self.input.valid & self.input.ready):
            m.d.sync += [taken.eq(taken + 1),
                         total.eq(total + sum(self.input.payload[i] for i in range(g.input_simd)))]
        m.d.comb += [self.output.valid.eq((taken == words) & (given < g.output_words)),
                     self.output.payload.eq(total * (given + 1))]
        with m.If(self.output.valid & self.output.ready):
            m.d.sync += given.eq(given + 1)
            with m.If(given == g.output_words - 1):
                m.d.sync += [given.eq(0), taken.eq(0), total.eq(0)]
        return m


def expected_result(g, codes):
    total = sum(codes)
    width = protocol.code_bytes(g.output_bits)
    return b"".join(((total * (k + 1)) % (1 << g.output_bits)).to_bytes(width, "little")
                    for k in range(g.output_words))


def image_payload(g, codes):
    return b"".join(int(c).to_bytes(protocol.code_bytes(g.input_bits), "little") for c in codes)


def run_link(g, wire, answers, *, rng, stall=0.0, selftest_images=None):
    """Send ``wire`` into the link (bytes as the UART would deliver them), collect
    ``answers`` messages from its transmit stream."""
    m = Module()
    m.submodules.link = link = HostLink(g, selftest_images=selftest_images)
    m.submodules.accel = accel = StandIn(g)
    wiring.connect(m, link.image, accel.input)
    m.d.comb += [link.result.payload.eq(accel.output.payload),
                 link.result.valid.eq(accel.output.valid),
                 accel.output.ready.eq(link.result.ready)]
    received, deframer = [], protocol.Deframer()

    async def host_out(ctx):
        for byte in wire:
            await stream_put(ctx, link.rx, byte, rng=rng, stall=stall)

    async def host_in(ctx):
        while len(received) < answers:
            byte = await stream_get(ctx, link.tx, rng=rng, stall=stall)
            received.extend(deframer.feed(bytes([byte])))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(host_out)
    sim.add_testbench(host_in)
    sim.run_until(20 * len(wire) * 1e-8 + 200 * g.output_words * 1e-8 + 5e-5)
    assert len(received) == answers, received
    return received


GEOMETRIES = [
    LinkGeometry(input_bits=8, input_simd=1, input_codes=6, output_bits=16, output_words=3,
                 cycles_per_image=100),
    LinkGeometry(input_bits=4, input_simd=3, input_codes=9, output_bits=7, output_words=1,
                 cycles_per_image=5),
    LinkGeometry(input_bits=12, input_simd=2, input_codes=4, output_bits=40, output_words=2,
                 cycles_per_image=70000),
]


@pytest.mark.parametrize("g", GEOMETRIES, ids=["8b-simd1", "4b-simd3", "12b-simd2"])
@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_ping_and_images(g, stall, rng):
    images = [[int(c) for c in rng.integers(0, 1 << g.input_bits, g.input_codes)]
              for _ in range(3)]
    images[0] = [protocol.FLAG, protocol.ESC] * (g.input_codes // 2) \
        + [0] * (g.input_codes % 2)                # bytes that need stuffing
    wire = protocol.frame(protocol.PING)
    for codes in images:
        wire += protocol.frame(protocol.IMAGE, image_payload(g, codes))
    answers = run_link(g, wire, 1 + len(images), rng=rng, stall=stall)
    assert answers[0] == (protocol.PONG, g.identity())
    for codes, answer in zip(images, answers[1:]):
        assert answer == (protocol.RESULT, expected_result(g, codes))


def test_bad_frames_get_their_error_and_the_link_stays_in_step(rng):
    g = GEOMETRIES[0]
    codes = list(range(1, 7))
    good = protocol.frame(protocol.IMAGE, image_payload(g, codes))
    corrupt = bytearray(good)
    corrupt[3] ^= 0x10
    cases = [bytes(corrupt),                                          # 1: CRC
             protocol.frame(protocol.IMAGE, b"\x01\x02"),              # 2: wrong length
             protocol.frame(protocol.PING, b"\x00"),                   # 2: PING with payload
             protocol.frame(0x42, b""),                                # 3: unknown type
             protocol.frame(protocol.IMAGE, bytes(40)),                # 4: longer than any
             bytes([protocol.FLAG, 5, protocol.FLAG])]                 # 1: too short
    wire = b"".join(cases) + good
    answers = run_link(g, wire, len(cases) + 1, rng=rng)
    assert answers[:-1] == [(protocol.ERROR, bytes([code])) for code in (1, 2, 2, 3, 4, 1)]
    assert answers[-1] == (protocol.RESULT, expected_result(g, codes))


def test_geometry_rules():
    with pytest.raises(ValueError, match=r"^input_codes must be a multiple of input_simd 4, "
                                         r"not 6$"):
        LinkGeometry(input_bits=8, input_simd=4, input_codes=6, output_bits=8, output_words=1,
                     cycles_per_image=1)
    with pytest.raises(ValueError, match=r"^output_words must be a positive integer, not 0$"):
        LinkGeometry(input_bits=8, input_simd=1, input_codes=6, output_bits=8, output_words=0,
                     cycles_per_image=1)
    with pytest.raises(TypeError, match=r"^geometry must be a LinkGeometry, not 3$"):
        HostLink(3)


@pytest.mark.parametrize("nbytes", [1, 3, 15])
def test_crc_logic_matches_the_protocol(nbytes, rng):
    from wrpn_rtl.hardware.link import crc16_step
    m = Module()
    crc, data, out = Signal(16), Signal(8 * nbytes), Signal(16)
    m.d.comb += out.eq(crc16_step(crc, data))
    cases = [(0xFFFF, 0), (0, (1 << 8 * nbytes) - 1)] + [
        (int(c), int.from_bytes(rng.integers(0, 256, nbytes).astype("uint8").tobytes(),
                                "little")) for c in rng.integers(0, 1 << 16, 100)]

    async def bench(ctx):
        for ref_crc, ref_data in cases:
            ctx.set(crc, ref_crc)
            ctx.set(data, ref_data)
            expected = ref_crc
            for byte in ref_data.to_bytes(nbytes, "little"):
                expected = protocol.crc16_step(expected, byte)
            assert ctx.get(out) == expected

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def stand_in_rate(g):
    """``g`` with the stand-in accelerator's own cycles per image (a word a cycle in)."""
    return LinkGeometry(input_bits=g.input_bits, input_simd=g.input_simd,
                        input_codes=g.input_codes, output_bits=g.output_bits,
                        output_words=g.output_words,
                        cycles_per_image=g.input_codes // g.input_simd)


@pytest.mark.parametrize("g, crc_bytes", [(stand_in_rate(GEOMETRIES[0]), 2),
                                          (stand_in_rate(GEOMETRIES[1]), 1),
                                          (GEOMETRIES[0], 1)],
                         ids=["8b-simd1", "4b-simd3", "8b-simd1-byte-crc"])
def test_selftest_streams_the_held_images_back_to_back(g, crc_bytes, rng):
    """The CRC takes as many bytes a cycle as the geometry's output rate needs: the whole
    word where words come every other cycle, a byte a cycle where the geometry promises a
    word every 33 cycles (the stand-in, faster than that, is held for the CRC: the count
    then includes those cycles)."""
    assert HostLink.selftest_crc_bytes(g) == crc_bytes
    images = rng.integers(0, 1 << g.input_bits, (5, g.input_codes))
    wire = protocol.frame(protocol.SELFTEST) + protocol.frame(protocol.PING)
    answers = run_link(g, wire, 2, rng=rng, selftest_images=images)
    kind, payload = answers[0]
    assert kind == protocol.SELFTEST_RESULT and len(payload) == 8
    cycles = int.from_bytes(payload[:4], "little")
    assert int.from_bytes(payload[4:6], "little") == len(images)
    outputs = b"".join(expected_result(g, [int(c) for c in image]) for image in images)
    assert int.from_bytes(payload[6:], "little") == protocol.crc16(outputs)
    # the stand-in takes a word a cycle, then gives its words a cycle each (each held while
    # the CRC takes its bytes, when it takes fewer than a word a cycle)
    words = g.input_codes // g.input_simd
    steps = protocol.code_bytes(g.output_bits) // crc_bytes
    per_output = 1 if steps == 1 else steps + 1
    assert len(images) * words <= cycles <= len(images) * (words + g.output_words
                                                           * per_output) + 4
    assert answers[1] == (protocol.PONG, g.identity())     # the link goes on afterwards


def test_selftest_without_images_is_an_unknown_message(rng):
    answers = run_link(GEOMETRIES[0], protocol.frame(protocol.SELFTEST), 1, rng=rng)
    assert answers == [(protocol.ERROR, bytes([3]))]
    with pytest.raises(ValueError, match=r"^selftest_images must have shape \(N, 6\)"):
        HostLink(GEOMETRIES[0], selftest_images=[[1, 2, 3]])
