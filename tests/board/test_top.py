# amaranth: UnusedElaboratable=no
"""The board top (without a platform: clock and UART lines as ports) in Amaranth's
simulator, a small network behind it, the host's side in Python over a serial line model:
images in and every output word against golden, a corrupted frame answered and the link in
step after it, the self-test's CRC against golden."""
import numpy as np
import pytest
from amaranth.sim import Simulator

from wrpn_rtl import golden as g
from wrpn_rtl.board import protocol
from wrpn_rtl.board.host import Identity, image_payload, outputs_crc, result_words, word_fields
from wrpn_rtl.board.top import BOARDS, BoardTop, board_named
from wrpn_rtl.compiler.manifest import expected_outputs, output_fields
from wrpn_rtl.compiler.stages import Folding
from wrpn_rtl.hardware.accelerator import Accelerator

BAUD = 115200
CLOCK_HZ = 8 * BAUD                      # 8 cycles per bit: the fastest the UART allows


def small_accelerator(rng):
    spec = g.NetworkSpec((4, 4, 1), 4, [g.Conv(3, 3, padding=1, weight_bits=2, out_bits=2),
                                         g.MaxPool(2),
                                         g.Dense(3, weight_bits=2, out_bits=None,
                                                 batch_norm=False)])
    network = g.quantize_network(spec, g.random_parameters(spec, rng))
    return Accelerator(network, foldings=[Folding(pe=3, simd=9, window_simd=1),
                                          Folding(pe=3, simd=6)])


def talk(top, frames, *, cycles):
    """Send each of ``frames`` over the serial line into ``top`` once the answer to the one
    before has arrived (one message in flight); the messages it sends back."""
    divisor = top.divisor
    received, deframer = [], protocol.Deframer()

    async def host_out(ctx):
        await ctx.tick().repeat(4)
        for number, wire in enumerate(frames):
            while len(received) < number:
                await ctx.tick()
            for byte in wire:
                for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                    ctx.set(top.uart_rx, bit)
                    await ctx.tick().repeat(divisor)

    async def host_in(ctx):
        while len(received) < len(frames):
            while ctx.get(top.uart_tx):
                await ctx.tick()
            await ctx.tick().repeat(divisor // 2)
            value = 0
            for index in range(8):
                await ctx.tick().repeat(divisor)
                value |= ctx.get(top.uart_tx) << index
            await ctx.tick().repeat(divisor)
            received.extend(deframer.feed(bytes([value])))

    sim = Simulator(top)
    sim.add_clock(1 / CLOCK_HZ)
    sim.add_testbench(host_out)
    sim.add_testbench(host_in)
    sim.run_until(cycles / CLOCK_HZ)
    return received


def test_images_through_the_board_top_match_golden(rng):
    accelerator = small_accelerator(rng)
    network = accelerator.network
    images = rng.integers(0, 16, (3, 4, 4, 1))
    images[0] = 15
    fields = output_fields(accelerator)
    expected = expected_outputs(accelerator, g.execute(network, images).outputs[-1])
    selftest = rng.integers(0, 16, (4, 4, 4, 1))
    top = BoardTop(accelerator, clock_hz=CLOCK_HZ, selftest_images=selftest.reshape(4, -1))
    good = protocol.frame(protocol.IMAGE, image_payload(images[1].ravel(), 4))
    corrupt = bytearray(good)
    corrupt[-3] ^= 0x01
    frames = [protocol.frame(protocol.PING),
              protocol.frame(protocol.IMAGE, image_payload(images[0].ravel(), 4)),
              bytes(corrupt), good,
              protocol.frame(protocol.IMAGE, image_payload(images[2].ravel(), 4)),
              protocol.frame(protocol.SELFTEST)]
    answers = talk(top, frames, cycles=sum(map(len, frames)) * 20 * top.divisor + 60000)
    assert [kind for kind, _ in answers] == [protocol.PONG, protocol.RESULT, protocol.ERROR,
                                             protocol.RESULT, protocol.RESULT,
                                             protocol.SELFTEST_RESULT]
    identity = Identity.parse(answers[0][1])
    assert identity == Identity(16, 4, 1, sum(w for w, _ in fields),
                                accelerator.cycles_per_image)
    assert answers[2][1] == bytes([1])               # the CRC failed
    for image, (_, payload) in zip((0, 1, 2), [answers[1], answers[3], answers[4]]):
        words = result_words(payload, identity.output_bits, identity.output_words)
        assert [word_fields(w, fields) for w in words] == [expected[image]]
    report = answers[5][1]
    selftest_expected = expected_outputs(accelerator,
                                         g.execute(network, selftest).outputs[-1])
    assert int.from_bytes(report[4:6], "little") == 4
    assert int.from_bytes(report[6:8], "little") == outputs_crc(selftest_expected, fields)
    cycles = int.from_bytes(report[:4], "little")
    assert 4 * accelerator.cycles_per_image <= cycles <= 6 * accelerator.cycles_per_image + 200


def test_boards_and_their_errors(rng):
    assert {b.target for b in BOARDS.values()} == {"ice40-up5k", "ecp5-25k", "ecp5-85k"}
    with pytest.raises(ValueError, match=r"^--board must be one of icebreaker, ulx3s-25f, "
                                         r"ulx3s-85f, not 'arty'$"):
        board_named("arty")
    with pytest.raises(ValueError, match=r"^baud must leave at least 8 clock cycles per bit"):
        BoardTop(small_accelerator(rng), clock_hz=1e6, baud=230400)
