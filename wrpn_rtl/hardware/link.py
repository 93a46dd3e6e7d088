"""The board's end of the host link (:mod:`wrpn_rtl.board.protocol`): frames from the UART's
byte stream, images into the accelerator, its outputs back as framed results.

One message is in flight at a time: the host sends a message and waits for its answer (the
bytes of a message that arrives before the answer has left are refused, and the UART drops
them). A received frame is held in a buffer until its CRC has been checked, so an image whose
frame is corrupt never reaches the accelerator.
"""
import numbers

from amaranth.hdl import Array, Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from wrpn_rtl.board import protocol

__all__ = ["FrameSender", "HostLink", "LinkGeometry"]


class FrameSender(wiring.Component):
    """A message body in (type byte first; ``last`` on its final byte), its frame out: flag,
    body and CRC-16 with flags and escapes stuffed, flag.

    Members
    -------
    body : In(stream.Signature(StructLayout({"byte": 8, "last": 1})))
    bytes : Out(stream.Signature(8))
        To the UART transmitter.
    """

    def __init__(self):
        super().__init__({
            "body": In(stream.Signature(data.StructLayout({"byte": 8, "last": 1}))),
            "bytes": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        crc = Signal(16, init=protocol.CRC_INITIAL, name="crc")
        pending = Signal(8, name="pending")      # the byte after an escape
        tail = Signal(range(3), name="tail")     # CRC bytes still to send after the body
        out = self.bytes
        sent = out.valid & out.ready

        def send(byte):
            m.d.sync += [out.payload.eq(byte), out.valid.eq(1)]

        def stuffed(byte, then):
            """Send ``byte`` (or ESC now and the escaped byte next), then go to ``then``."""
            with m.If((byte == protocol.FLAG) | (byte == protocol.ESC)):
                send(protocol.ESC)
                m.d.sync += pending.eq(byte ^ protocol.ESCAPE_XOR)
                m.next = "ESCAPED_" + then
            with m.Else():
                send(byte)
                m.next = then

        with m.If(sent):
            m.d.sync += out.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.body.valid & (~out.valid | sent)):
                    send(protocol.FLAG)
                    m.d.sync += crc.eq(protocol.CRC_INITIAL)
                    m.next = "BODY"
            with m.State("BODY"):
                m.d.comb += self.body.ready.eq(~out.valid | sent)
                with m.If(self.body.valid & self.body.ready):
                    m.d.sync += crc.eq(crc16_step(crc, self.body.payload.byte))
                    with m.If(self.body.payload.last):
                        m.d.sync += tail.eq(2)
                        stuffed(self.body.payload.byte, "CRC")
                    with m.Else():
                        stuffed(self.body.payload.byte, "BODY")
            for state in ("BODY", "CRC"):
                with m.State("ESCAPED_" + state):
                    with m.If(sent):
                        send(pending)
                        m.next = state
            with m.State("CRC"):
                with m.If(~out.valid | sent):
                    with m.If(tail == 2):
                        m.d.sync += tail.eq(1)
                        stuffed(crc[8:], "CRC")
                    with m.Elif(tail == 1):
                        m.d.sync += tail.eq(0)
                        stuffed(crc[:8], "CRC")
                    with m.Else():
                        send(protocol.FLAG)
                        m.next = "IDLE"
        return m


def crc16_step(crc, data):
    """The CRC-16/CCITT-FALSE register after the bytes of ``data`` (8 bits or a multiple,
    low byte first), as logic: the protocol's :func:`~wrpn_rtl.board.protocol.crc16_step`
    worked out symbolically over every shift, so each register bit is one flat XOR of
    register and data bits, however many bytes."""
    width = len(data)
    if width % 8:
        raise ValueError(f"data must be whole bytes, not {width} bits")
    terms = [{("crc", i)} for i in range(16)]
    for start in range(0, width, 8):
        for i in range(8):
            terms[8 + i] = terms[8 + i] ^ {("data", start + i)}
        for _ in range(8):
            top = terms[15]
            terms = [set()] + terms[:15]
            terms = [t ^ top if protocol.CRC_POLYNOMIAL >> bit & 1 else t
                     for bit, t in enumerate(terms)]
    sources = {"crc": crc, "data": data}
    bits = []
    for term in terms:
        value = Const(0, 1)
        for name, index in sorted(term):
            value = value ^ sources[name][index]
        bits.append(value)
    return Cat(*bits)


class LinkGeometry:
    """What the link needs to know about the accelerator behind it.

    Parameters
    ----------
    input_bits, input_simd : int
        Code width and codes per input word.
    input_codes : int
        Codes per image (a multiple of ``input_simd``).
    output_bits : int
        Width of one output word.
    output_words : int
        Output words per image.
    cycles_per_image : int
        Expected cycles (reported in ``PONG``).
    """

    def __init__(self, *, input_bits, input_simd, input_codes, output_bits, output_words,
                 cycles_per_image):
        for name, value in (("input_bits", input_bits), ("input_simd", input_simd),
                            ("input_codes", input_codes), ("output_bits", output_bits),
                            ("output_words", output_words),
                            ("cycles_per_image", cycles_per_image)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if input_bits > 16:
            raise ValueError(f"input_bits must be at most 16, not {input_bits}")
        if input_codes % input_simd:
            raise ValueError(f"input_codes must be a multiple of input_simd {input_simd}, not "
                             f"{input_codes}")
        self.input_bits, self.input_simd, self.input_codes = input_bits, input_simd, input_codes
        self.output_bits, self.output_words = output_bits, output_words
        self.cycles_per_image = cycles_per_image

    @classmethod
    def of(cls, accelerator):
        """The geometry of an :class:`~wrpn_rtl.hardware.accelerator.Accelerator`."""
        import math
        from wrpn_rtl.compiler.manifest import output_words_per_image
        network = accelerator.network
        return cls(input_bits=network.input_bits, input_simd=accelerator.input_simd,
                   input_codes=math.prod(network.input_shape),
                   output_bits=accelerator.output.payload.shape().size,
                   output_words=output_words_per_image(accelerator),
                   cycles_per_image=accelerator.cycles_per_image)

    @property
    def image_payload(self):
        """Bytes of an ``IMAGE`` payload."""
        return self.input_codes * protocol.code_bytes(self.input_bits)

    def identity(self):
        """The ``PONG`` payload (see :mod:`~wrpn_rtl.board.protocol`)."""
        return (self.input_codes.to_bytes(2, "little") + bytes([self.input_bits])
                + self.output_words.to_bytes(2, "little") + bytes([self.output_bits])
                + self.cycles_per_image.to_bytes(4, "little"))


class HostLink(wiring.Component):
    """UART bytes in and out on one side, the accelerator's streams on the other.

    Parameters
    ----------
    geometry : LinkGeometry

    Members
    -------
    rx : In(stream.Signature(8))
        From the UART receiver.
    tx : Out(stream.Signature(8))
        To the UART transmitter.
    image : Out(stream.Signature(ArrayLayout(unsigned(input_bits), input_simd)))
        The accelerator's input.
    result : In(stream.Signature(unsigned(output_bits)))
        The accelerator's output (its word as raw bits).

    Parameters
    ----------
    selftest_images : array-like of int, shape (N, input_codes), or None
        Images held in block RAM for ``SELFTEST``: streamed into the accelerator back to
        back; the answer holds the cycles from the first input word taken to the last output
        word, N, and the CRC-16 of the output bytes (as ``RESULT`` would carry them). Without
        them ``SELFTEST`` is an unknown message.
    """

    def __init__(self, geometry, *, selftest_images=None):
        if not isinstance(geometry, LinkGeometry):
            raise TypeError(f"geometry must be a LinkGeometry, not {geometry!r}")
        self._geometry = geometry
        self._selftest = None
        if selftest_images is not None:
            import numpy as np
            images = np.asarray(selftest_images)
            if (images.ndim != 2 or images.shape[1] != geometry.input_codes
                    or not 1 <= len(images) < 1 << 16):
                raise ValueError(f"selftest_images must have shape (N, "
                                 f"{geometry.input_codes}) with 1 <= N < 65536, not "
                                 f"{images.shape}")
            if images.min() < 0 or images.max() >= 1 << geometry.input_bits:
                raise ValueError(f"selftest_images must be {geometry.input_bits}-bit codes")
            self._selftest = images.astype(np.int64)
        super().__init__({
            "rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
            "image": Out(stream.Signature(data.ArrayLayout(unsigned(geometry.input_bits),
                                                           geometry.input_simd))),
            "result": In(stream.Signature(unsigned(geometry.output_bits)))})

    geometry = property(lambda self: self._geometry)

    def elaborate(self, platform):
        m = Module()
        g = self._geometry
        m.submodules.sender = sender = FrameSender()
        wiring.connect(m, sender.bytes, wiring.flipped(self.tx))
        # the image and result streams of the UART path and of the self-test, one at a time
        feed_out = stream.Signature(self.image.payload.shape()).create()
        test_out = stream.Signature(self.image.payload.shape()).create()
        result_in = stream.Signature(unsigned(g.output_bits)).create()
        test_in = stream.Signature(unsigned(g.output_bits)).create()
        capacity = 3 + max(g.image_payload, 0)        # type, payload, CRC
        m.submodules.buffer = buffer = memory.Memory(shape=8, depth=capacity, init=[])
        write, read = buffer.write_port(), buffer.read_port(transparent_for=())

        # -- receiving: unstuff, count, CRC, store ------------------------------------------
        length = Signal(range(capacity + 2), name="length")
        escaped = Signal(name="escaped")
        inside = Signal(name="inside")
        crc = Signal(16, init=protocol.CRC_INITIAL, name="rx_crc")
        kind = Signal(8, name="kind")
        ended = Signal(name="ended")                  # a frame ended: decide (one cycle)
        busy = Signal(name="busy")                    # answering a message
        byte = Signal(8)
        m.d.comb += [self.rx.ready.eq(~busy & ~ended),
                     byte.eq(self.rx.payload ^ Cat(Const(0, 5), escaped, Const(0, 2)))]
        m.d.sync += ended.eq(0)
        with m.If(self.rx.valid & self.rx.ready):
            with m.If(self.rx.payload == protocol.FLAG):
                m.d.sync += [ended.eq(inside & ((length != 0) | escaped)), inside.eq(1),
                             escaped.eq(0)]
            with m.Elif(inside & (self.rx.payload == protocol.ESC) & ~escaped):
                m.d.sync += escaped.eq(1)
            with m.Elif(inside):
                m.d.sync += [escaped.eq(0), crc.eq(crc16_step(crc, byte))]
                with m.If(length == 0):
                    m.d.sync += kind.eq(byte)
                with m.If(length < capacity):
                    m.d.comb += [write.addr.eq(length), write.data.eq(byte), write.en.eq(1)]
                with m.If(length <= capacity):
                    m.d.sync += length.eq(length + 1)

        # -- deciding ---------------------------------------------------------------------------
        error = Signal(8, name="error")
        answer = Signal(8, name="answer")             # the message type being answered
        with m.If(ended):
            m.d.sync += [busy.eq(1), length.eq(0), crc.eq(protocol.CRC_INITIAL)]
            with m.If(length > capacity):
                m.d.sync += [answer.eq(protocol.ERROR), error.eq(4)]
            with m.Elif((length < 3) | (crc != 0)):
                m.d.sync += [answer.eq(protocol.ERROR), error.eq(1)]
            with m.Elif(kind == protocol.PING):
                m.d.sync += answer.eq(protocol.PONG)
                with m.If(length != 3):
                    m.d.sync += [answer.eq(protocol.ERROR), error.eq(2)]
            with m.Elif(kind == protocol.IMAGE):
                m.d.sync += answer.eq(protocol.RESULT)
                with m.If(length != 3 + g.image_payload):
                    m.d.sync += [answer.eq(protocol.ERROR), error.eq(2)]
            with m.Elif((kind == protocol.SELFTEST) & (self._selftest is not None)):
                m.d.sync += answer.eq(protocol.SELFTEST_RESULT)
                with m.If(length != 3):
                    m.d.sync += [answer.eq(protocol.ERROR), error.eq(2)]
            with m.Else():
                m.d.sync += [answer.eq(protocol.ERROR), error.eq(3)]

        # -- answering: the body's bytes into the sender ----------------------------------------
        identity = Array(Const(b, 8) for b in g.identity())
        code_bytes = protocol.code_bytes(g.input_bits)
        out_bytes = protocol.code_bytes(g.output_bits)
        index = Signal(range(max(len(identity), g.image_payload, 2) + 1), name="index")
        started = Signal(name="started")              # the type byte has gone
        body = sender.body
        taken = body.valid & body.ready
        with m.If(taken):
            m.d.sync += body.valid.eq(0)
        free = ~body.valid | taken

        def put(value, last):
            m.d.sync += [body.payload.byte.eq(value), body.payload.last.eq(last),
                         body.valid.eq(1)]

        selftesting = busy & (answer == protocol.SELFTEST_RESULT)
        with m.If(selftesting):
            self._connect(m, test_out, self.image, test_in)
        with m.Else():
            self._connect(m, feed_out, self.image, result_in)
        tested, report = self._selftest_engine(m, selftesting, test_out, test_in, out_bytes)
        done = Signal()
        with m.If(busy & ~started & free):
            put(answer, 0)
            m.d.sync += [started.eq(1), index.eq(0)]
        with m.If(busy & started):
            with m.If(answer == protocol.ERROR):
                with m.If(free & (index == 0)):
                    put(error, 1)
                    m.d.sync += index.eq(1)
                with m.If((index == 1) & free):
                    m.d.comb += done.eq(1)
            with m.Elif(answer == protocol.PONG):
                with m.If(free & (index < len(identity))):
                    put(identity[index], index == len(identity) - 1)
                    m.d.sync += index.eq(index + 1)
                with m.If((index == len(identity)) & free):
                    m.d.comb += done.eq(1)
            with m.Elif(answer == protocol.RESULT):
                m.d.comb += done.eq(self._result(m, result_in, put, free, out_bytes))
            with m.Elif(answer == protocol.SELFTEST_RESULT):
                with m.If(tested & free & (index < len(report))):
                    put(Array(report)[index], index == len(report) - 1)
                    m.d.sync += index.eq(index + 1)
                with m.If((index == len(report)) & free):
                    m.d.comb += done.eq(1)
        with m.If(done):
            m.d.sync += [busy.eq(0), started.eq(0)]

        # -- feeding the image (while the result is sent) -----------------------------------------
        self._feed(m, read, feed_out, busy & (answer == protocol.RESULT), code_bytes)
        return m

    def _connect(self, m, source, image, sink):
        """``source`` drives the accelerator's ``image``; its ``result`` goes to ``sink``."""
        m.d.comb += [image.payload.eq(source.payload), image.valid.eq(source.valid),
                     source.ready.eq(image.ready), sink.payload.eq(self.result.payload),
                     sink.valid.eq(self.result.valid), self.result.ready.eq(sink.ready)]

    def _selftest_engine(self, m, running, image, result, out_bytes):
        """SELFTEST: the held images into ``image`` back to back (one word a cycle when the
        accelerator takes it), every output word from ``result`` taken at once. Returns
        ``(finished, report)``: high once the last output word arrived, and the answer's
        payload bytes (cycles, images, CRC; little-endian)."""
        g = self._geometry
        if self._selftest is None:
            return Const(0, 1), [Const(0, 8)]
        images = self._selftest
        per_word = g.input_simd
        words = images.reshape(-1, per_word)
        packed = [sum(int(code) << (g.input_bits * i) for i, code in enumerate(word))
                  for word in words]
        m.submodules.selftest_rom = rom = memory.Memory(
            shape=unsigned(g.input_bits * per_word), depth=len(packed), init=packed)
        port = rom.read_port()
        address = Signal(range(len(packed) + 1), name="selftest_address")
        wanted = len(images) * g.output_words
        received = Signal(range(wanted + 1), name="selftest_received")
        counting = Signal(name="selftest_counting")
        cycles = Signal(32, name="selftest_cycles")
        crc = Signal(16, init=protocol.CRC_INITIAL, name="selftest_crc")
        finished = Signal(name="selftest_finished")
        advance = ~image.valid | image.ready
        chunk = self.selftest_crc_bytes(g)
        steps = out_bytes // chunk
        pending = Signal(out_bytes * 8, name="selftest_pending")   # bytes not yet in the CRC
        left = Signal(range(steps + 1), name="selftest_left")
        m.d.comb += [port.addr.eq(address), port.en.eq(advance), image.payload.eq(port.data),
                     result.ready.eq(running & (left == 0))]
        with m.If(running & advance):
            m.d.sync += image.valid.eq(address < len(packed))
            with m.If(address < len(packed)):
                m.d.sync += address.eq(address + 1)
        with m.If(image.valid & image.ready):
            m.d.sync += counting.eq(1)
        with m.If(counting & (received != wanted)):
            m.d.sync += cycles.eq(cycles + 1)
        padded = Cat(result.payload, Const(0, out_bytes * 8 - g.output_bits))
        with m.If(result.valid & result.ready):
            m.d.sync += received.eq(received + 1)
            if steps == 1:
                m.d.sync += crc.eq(crc16_step(crc, padded))
            else:
                m.d.sync += [pending.eq(padded), left.eq(steps)]
        with m.If(left != 0):                       # one chunk of the word into the CRC
            m.d.sync += [crc.eq(crc16_step(crc, pending[:chunk * 8])),
                         pending.eq(pending >> (chunk * 8)), left.eq(left - 1)]
        with m.If((received == wanted) & (left == 0) & running):
            m.d.sync += finished.eq(1)
        with m.If(~running):
            m.d.sync += [address.eq(0), received.eq(0), counting.eq(0), cycles.eq(0),
                         crc.eq(protocol.CRC_INITIAL), finished.eq(0), image.valid.eq(0),
                         left.eq(0)]
        count = Const(len(images), 16)
        report = ([cycles.word_select(i, 8) for i in range(4)]
                  + [count.word_select(i, 8) for i in range(2)]
                  + [crc.word_select(i, 8) for i in range(2)])
        return finished, report

    @staticmethod
    def selftest_crc_bytes(geometry):
        """Bytes of an output word the self-test's CRC takes per cycle: the fewest (a divisor
        of the word's bytes) that still finish a word, plus the cycle that takes the next,
        within the cycles the accelerator spends per output word - so the CRC never holds
        the accelerator up in the steady state, and costs a byte's XOR network rather than a
        whole word's (for a 15-byte classifier word, about 500 LUT4s less)."""
        out_bytes = protocol.code_bytes(geometry.output_bits)
        interval = geometry.cycles_per_image // geometry.output_words
        for chunk in range(1, out_bytes + 1):
            if out_bytes % chunk == 0 and out_bytes // chunk + 1 <= interval:
                return chunk
        return out_bytes

    def _result(self, m, source, put, free, out_bytes):
        """RESULT: every output word of one image, ``out_bytes`` bytes each, low byte first;
        returns the signal that is high once the last byte went to the sender."""
        g = self._geometry
        word = Signal(g.output_bits, name="word")
        have = Signal(name="have_word")
        part = Signal(range(out_bytes), name="part")
        words = Signal(range(g.output_words + 1), name="words")
        finished = Signal(name="finished")
        m.d.comb += source.ready.eq(~have & ~finished & (words < g.output_words))
        with m.If(source.valid & source.ready):
            m.d.sync += [word.eq(source.payload), have.eq(1), part.eq(0)]
        with m.If(have & free):
            last_part = part == out_bytes - 1
            padded = Cat(word, Const(0, out_bytes * 8 - g.output_bits))
            put(padded.word_select(part, 8), last_part & (words == g.output_words - 1))
            m.d.sync += part.eq(part + 1)
            with m.If(last_part):
                m.d.sync += [have.eq(0), words.eq(words + 1)]
                with m.If(words == g.output_words - 1):
                    m.d.sync += finished.eq(1)
        done = Signal()
        with m.If(finished & free):
            m.d.comb += done.eq(1)
            m.d.sync += [finished.eq(0), words.eq(0)]
        return done

    def _feed(self, m, read, out, feeding, code_bytes):
        """The buffered payload (bytes 1.. of the frame) into ``image``: codes of
        ``code_bytes`` bytes, low byte first, ``input_simd`` codes per word. Two cycles a
        byte (read, then take) - the UART brings a byte every ten bit times."""
        g = self._geometry
        at = Signal(range(g.image_payload + 1), name="feed_at")      # next byte to read
        in_word = Signal(range(g.input_simd * code_bytes), name="feed_in_word")
        code_width = 8 * code_bytes
        word = Signal(g.input_simd * code_width, name="feed_word")
        assembled = Cat(word[8:], read.data)
        m.d.comb += read.addr.eq(1 + at)
        with m.If(out.valid & out.ready):
            m.d.sync += out.valid.eq(0)
        with m.FSM(name="feed"):
            with m.State("READ"):
                with m.If(feeding & (at < g.image_payload) & ~out.valid):
                    m.d.sync += at.eq(at + 1)        # the port reads every cycle
                    m.next = "TAKE"
            with m.State("TAKE"):
                m.d.sync += [word.eq(assembled), in_word.eq(in_word + 1)]
                with m.If(in_word == g.input_simd * code_bytes - 1):
                    m.d.sync += [in_word.eq(0), out.valid.eq(1), out.payload.eq(
                        Cat(assembled.word_select(i, code_width)[:g.input_bits]
                            for i in range(g.input_simd)))]
                m.next = "READ"
        with m.If(~feeding):
            m.d.sync += at.eq(0)
