"""The host's side of the link over a serial port: one message in flight, every answer checked,
and a lost or corrupted frame in either direction repaired by resynchronizing and asking again.

``port`` is anything with pyserial's ``read(n)``, ``write(data)``, ``in_waiting``,
``reset_input_buffer()`` and a ``timeout`` attribute: a ``serial.Serial`` on a board's USB
UART, or on the pseudo-terminal of the simulated board (:mod:`wrpn_rtl.board.simulated`).
"""
import time

from wrpn_rtl.board import protocol
from wrpn_rtl.board.host import Identity, image_payload, result_words

__all__ = ["BoardClient", "SelftestReport", "open_port"]

#: The answer each request must get.
ANSWERS = {protocol.PING: protocol.PONG, protocol.IMAGE: protocol.RESULT,
           protocol.SELFTEST: protocol.SELFTEST_RESULT}
NAMES = {protocol.PING: "PING", protocol.IMAGE: "IMAGE", protocol.SELFTEST: "SELFTEST",
         protocol.PONG: "PONG", protocol.RESULT: "RESULT",
         protocol.SELFTEST_RESULT: "SELFTEST_RESULT", protocol.ERROR: "ERROR"}
#: Seconds a read may block, so the deadline of an answer is kept closely.
READ_SLICE_S = 0.05


class SelftestReport(tuple):
    """``(cycles, images, crc)`` of a ``SELFTEST_RESULT``."""

    __slots__ = ()

    def __new__(cls, payload):
        if len(payload) != 8:
            raise protocol.LinkError(f"a SELFTEST_RESULT payload has 8 bytes, not "
                                     f"{len(payload)}")
        return super().__new__(cls, (int.from_bytes(payload[0:4], "little"),
                                     int.from_bytes(payload[4:6], "little"),
                                     int.from_bytes(payload[6:8], "little")))

    cycles = property(lambda self: self[0])
    images = property(lambda self: self[1])
    crc = property(lambda self: self[2])


class BoardClient:
    """Requests to the design on a board, answered one at a time.

    Parameters
    ----------
    port :
        A serial port (see the module's docstring).
    timeout_s : float
        Seconds to wait for each answer (a simulated board needs far longer than a real one).
    retries : int
        Further tries of a request whose answer did not come, came corrupted, or was an
        ``ERROR`` (the board dropped the request).

    Members
    -------
    repairs : list of str
        What went wrong each time a request was sent again.
    """

    def __init__(self, port, *, timeout_s=2.0, retries=3):
        self._port = port
        self._timeout_s = float(timeout_s)
        self._retries = int(retries)
        self._deframer = protocol.Deframer()
        self._pending = []
        self.repairs = []
        port.timeout = READ_SLICE_S

    def identity(self):
        """The design's :class:`~wrpn_rtl.board.host.Identity` (``PING``)."""
        return Identity.parse(self.request(protocol.PING))

    def infer(self, codes, identity):
        """The raw output words of one image: ``codes`` in the accelerator's input order,
        ``identity`` the design's (for the code and word sizes)."""
        payload = self.request(protocol.IMAGE, image_payload(codes, identity.input_bits))
        return result_words(payload, identity.output_bits, identity.output_words)

    def selftest(self):
        """Run the images held on chip back to back: a :class:`SelftestReport`."""
        return SelftestReport(self.request(protocol.SELFTEST))

    def request(self, kind, payload=b""):
        """Send one message and return its answer's payload, sending it again (after
        resynchronizing) when the answer is missing, corrupted or an ``ERROR``.

        Raises
        ------
        LinkError
            No good answer after every retry (the problems named), or an answer of the
            wrong type.
        """
        problems = []
        for _ in range(self._retries + 1):
            self._write(protocol.frame(kind, payload))
            deadline = time.monotonic() + self._timeout_s
            answer = self._receive(deadline)
            while (kind != protocol.PING and isinstance(answer, tuple)
                   and answer[0] == protocol.PONG):
                answer = self._receive(deadline)      # a late answer to a resync's PING
            if isinstance(answer, tuple) and answer[0] == ANSWERS[kind]:
                return answer[1]
            if isinstance(answer, tuple) and answer[0] != protocol.ERROR:
                raise protocol.LinkError(f"{NAMES[kind]} was answered with "
                                         f"{NAMES.get(answer[0], hex(answer[0]))}, not "
                                         f"{NAMES[ANSWERS[kind]]}")
            problem = (f"no answer to {NAMES[kind]} within {self._timeout_s:g} s"
                       if answer is None else
                       f"the board dropped {NAMES[kind]}: "
                       f"{protocol.ERROR_CODES.get(answer[1][0], 'unknown error')}"
                       if isinstance(answer, tuple) else
                       f"the answer to {NAMES[kind]} was corrupted: {answer}")
            problems.append(problem)
            self.repairs.append(problem)
            self._resynchronize()
        raise protocol.LinkError(f"no good answer to {NAMES[kind]} in {self._retries + 1} "
                                 f"tries: " + "; ".join(problems))

    def _write(self, data):
        try:
            self._port.write(data)
        except OSError as error:                   # pyserial's SerialException among them
            raise protocol.LinkError(f"the port failed: {error}") from None

    def _receive(self, deadline):
        """The next message (``(type, payload)``), a LinkError for a dropped frame, or None
        when ``deadline`` passes first."""
        while not self._pending:
            if time.monotonic() > deadline:
                return None
            try:
                data = self._port.read(max(1, self._port.in_waiting))
            except OSError as error:               # pyserial's SerialException among them
                raise protocol.LinkError(f"the port failed: {error}") from None
            self._pending += self._deframer.feed(data)
        return self._pending.pop(0)

    def _resynchronize(self):
        """Bring both sides back in step: a lone flag ends any frame the board had half
        received (it answers ``ERROR`` for it), then ``PING`` until a ``PONG`` comes back.
        The board answers in order, so every late answer to an earlier request arrives before
        that ``PONG`` and is dropped with it."""
        self._write(bytes([protocol.FLAG]))
        for _ in range(self._retries + 1):
            self._write(protocol.frame(protocol.PING))
            deadline = time.monotonic() + self._timeout_s
            while True:
                answer = self._receive(deadline)
                if answer is None:
                    break
                if isinstance(answer, tuple) and answer[0] == protocol.PONG:
                    self._pending = []
                    return
        raise protocol.LinkError(f"the link did not come back in step: no PONG in "
                                 f"{self._retries + 1} tries of {self._timeout_s:g} s")


def open_port(path, *, baud=115200):
    """``serial.Serial`` on ``path`` (a board's UART or the simulated board's terminal).

    Raises
    ------
    StepError
        The port cannot be opened (the reason named).
    """
    import os
    import serial
    from wrpn_rtl.job.common import StepError
    try:
        return serial.Serial(os.fspath(path), baudrate=baud, timeout=READ_SLICE_S)
    except (serial.SerialException, ValueError) as error:
        raise StepError(f"--port {str(path)!r} cannot be opened: {error}") from None
