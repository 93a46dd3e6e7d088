"""The whole board top as built for the iCEBreaker (its pins, I/O buffers and PLL, with
simulation stand-ins for the vendor primitives; the host link; the UART at 115200 baud) in
Verilator under cocotb, its serial pins joined to a pseudo-terminal: the host's own code talks
to it through pyserial, as to a board. Images in and every output bit-exact against golden; a corrupted frame answered with
ERROR and the link in step after it; the self-test's cycle count and CRC; and
``wrpn-rtl infer --port sim`` end to end on a user's image file."""
import json
import time

import numpy as np
import pytest

from wrpn_rtl import golden as g
from wrpn_rtl.board import protocol
from wrpn_rtl.board.client import BoardClient
from wrpn_rtl.board.host import outputs_crc, word_fields
from wrpn_rtl.board.infer import expected_identity
from wrpn_rtl.board.client import open_port
from wrpn_rtl.board.simulated import SimulatedBoard
from wrpn_rtl.board.top import board_named
from wrpn_rtl.cli import main
from wrpn_rtl.compiler.manifest import expected_outputs, output_fields

from .test_top import small_accelerator

pytestmark = pytest.mark.slow


def test_the_simulated_board_answers_the_host_code_bit_exactly(rng, tmp_path):
    accelerator = small_accelerator(rng)
    network = accelerator.network
    images = rng.integers(0, 16, (6, 4, 4, 1))
    images[0] = 15
    held = rng.integers(0, 16, (5, 16))
    fields = output_fields(accelerator)
    expected = expected_outputs(accelerator, g.execute(network, images).outputs[-1])
    with SimulatedBoard(accelerator, tmp_path / "board", selftest_images=held,
                        board=board_named("icebreaker")) as board:
        port = open_port(board.port)
        try:
            client = BoardClient(port, timeout_s=30)
            identity = client.identity()
            assert identity == expected_identity(accelerator)
            for index in range(3):
                words = client.infer(images[index].ravel(), identity)
                assert [word_fields(w, fields) for w in words] == [expected[index]]
            # a frame corrupted on the wire: the board drops it and says why ...
            wire = bytearray(protocol.frame(protocol.IMAGE, bytes(16)))
            wire[5] ^= 0x04
            port.write(bytes(wire))
            deframer, answers, deadline = protocol.Deframer(), [], time.monotonic() + 30
            while not answers and time.monotonic() < deadline:
                answers += deframer.feed(port.read(64))
            assert answers == [(protocol.ERROR, bytes([1]))]
            # ... and the link is in step for the next images
            for index in range(3, 6):
                words = client.infer(images[index].ravel(), identity)
                assert [word_fields(w, fields) for w in words] == [expected[index]]
            report = client.selftest()
            assert client.repairs == []
        finally:
            port.close()
    held_expected = expected_outputs(accelerator, g.execute(
        network, held.reshape(5, 4, 4, 1)).outputs[-1])
    assert report.images == 5
    assert report.crc == outputs_crc(held_expected, fields)
    # back to back: the first image's latency, then one image per cycles_per_image
    assert 5 * accelerator.cycles_per_image <= report.cycles \
        <= 5 * accelerator.cycles_per_image + 200


def test_infer_on_the_simulated_board_from_the_command_line(rng, tmp_path, capsys):
    network = small_accelerator(rng).network
    model = tmp_path / "small.npz"
    model.write_bytes(g.network_bytes(network))
    codes = rng.integers(0, 16, (4, 4, 4))
    labels = g.execute(network, codes.reshape(4, 4, 4, 1)).classes
    labels[0] = (labels[0] + 1) % 3                    # one label the network gets wrong
    np.save(tmp_path / "images.npy", codes)
    np.save(tmp_path / "labels.npy", labels)
    out = tmp_path / "design"
    summary = main(["infer", str(tmp_path / "images.npy"), "--labels",
                    str(tmp_path / "labels.npy"), "--port", "sim", "--model", str(model),
                    "--selftest-images", "3", "--out", str(out), "--json"])
    assert summary == 0
    report = json.loads((out / "infer.json").read_text())
    assert report["bit_exact"] and report["images"] == 4 and report["mismatches"] == 0
    assert report["accuracy"] == report["golden_accuracy"] == 0.75
    assert report["labels"] == report["golden_labels"]
    assert report["selftest"]["images"] == 3 and report["selftest"]["crc_matches_golden"]
    assert report["port"] == "sim" and report["repairs"] == []
    assert report["design"]["manifest_sha256"]
