"""Designs that exist only to be synthesized: a serial I/O harness and the reference circuits.

* :class:`SerialHarness` wraps any component with one input and one output stream so that it
  fits a small FPGA package: the input payload is shifted in one bit per cycle, the output
  payload is captured and shifted out. Every payload bit stays observable and controllable, so
  synthesis cannot trim the core, and the harness's own cost is reported apart from the core's
  (the core is kept as its own module, ``core``).
* :class:`NaiveDotProduct` - the baseline: ``PE`` single-cycle ``sum(a[i] * w[i])`` over ``SIMD``
  lanes (unsigned ``a``, signed ``w``, both live inputs), one result register.
* :class:`RegisteredAdder` - the fabric limit: one adder between registers.
"""
from amaranth.hdl import Cat, Module, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SerialHarness", "NaiveDotProduct", "RegisteredAdder"]


class SerialHarness(wiring.Component):
    """Serial-in, serial-out wrapper of a stream component (for synthesis only).

    Parameters
    ----------
    core : wiring.Component
        With members ``input`` (In stream) and ``output`` (Out stream).

    Members
    -------
    serial_in, shift_in : In(1)
        ``shift_in`` shifts ``serial_in`` into the input payload register.
    offer : In(1)
        Drives the core's ``input.valid``; ``accepted`` shows its ``input.ready``.
    take : In(1)
        Drives the core's ``output.ready``; while it is high the payload is captured (so the
        last transfer's payload stays when ``take`` falls right after it).
    serial_out, shift_out : Out(1) / In(1)
        ``shift_out`` shifts the captured output payload out of ``serial_out``.
    produced : Out(1)
        The core's ``output.valid``.
    """

    def __init__(self, core):
        self._core = core
        super().__init__({
            "serial_in": In(1), "shift_in": In(1), "offer": In(1), "accepted": Out(1),
            "take": In(1), "produced": Out(1), "shift_out": In(1), "serial_out": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self._core
        # Every pin goes through two registers: the one by the pin and the one by the core
        # can be placed apart, so no path of the core is stretched by I/O routing (the whole
        # network's output handshake, whose ready is a pin, looped from the core to a
        # register by the pin and back, 8.6-9.2 ns on ECP5); a register-to-register hop
        # takes the distance.
        pins = {}
        for name in ("serial_in", "shift_in", "offer", "take", "shift_out"):
            at_pin = Signal(name=f"{name}_q", reset_less=True)
            pins[name] = Signal(name=f"{name}_qq", reset_less=True)
            m.d.sync += [at_pin.eq(getattr(self, name)), pins[name].eq(at_pin)]
        in_bits = len(Value.cast(core.input.payload))
        out_bits = len(Value.cast(core.output.payload))
        # No register of the harness has a reset: on iCE40 a reset beside an enable costs a
        # LUT in front of the enable (SB_DFFESR resets only when enabled), which set the
        # clock of the smallest designs (the shifter's enable, 8.0 ns).
        shifter = Signal(in_bits, reset_less=True)
        with m.If(pins["shift_in"]):
            m.d.sync += shifter.eq(Cat(pins["serial_in"], shifter[:-1]) if in_bits > 1
                                   else pins["serial_in"])
        # Captured while `take` is high, transfer or not: its enable comes from registers of
        # the harness only, not through a LUT from the core's `output.valid` (one LUT and 5-7
        # ns of routing on iCE40, the critical path of the fabric adder's design).
        captured = Signal(out_bits, reset_less=True)
        with m.If(pins["take"]):
            m.d.sync += captured.eq(Value.cast(core.output.payload))
        with m.Elif(pins["shift_out"]):
            m.d.sync += captured.eq(captured >> 1)
        m.d.comb += [core.input.payload.eq(shifter), core.input.valid.eq(pins["offer"]),
                     core.output.ready.eq(pins["take"])]
        for pin, value in ((self.accepted, core.input.ready),
                           (self.produced, core.output.valid), (self.serial_out, captured[0])):
            by_core = Signal(name=f"{pin.name}_d", reset_less=True)
            m.d.sync += [by_core.eq(value), pin.eq(by_core)]
        return m


class NaiveDotProduct(wiring.Component):
    """``PE`` naive dot products ``sum_i a[i] * w[p][i]``, single cycle, registered.

    Members
    -------
    input : In(stream.Signature(StructLayout({"a": ArrayLayout(unsigned(a_bits), simd),
                                             "w": ArrayLayout(signed(w_bits), pe * simd)})))
    output : Out(stream.Signature(ArrayLayout(signed(acc_bits), pe)))
        Always ready; the result follows one cycle after the input.
    """

    def __init__(self, *, a_bits, w_bits, simd, pe):
        self._a_bits, self._w_bits, self._simd, self._pe = a_bits, w_bits, simd, pe
        # |sum| <= simd * (2**a - 1) * 2**(w - 1)
        self.acc_bits = (simd * ((1 << a_bits) - 1) * (1 << (w_bits - 1))).bit_length() + 1
        layout = data.StructLayout({"a": data.ArrayLayout(unsigned(a_bits), simd),
                                    "w": data.ArrayLayout(signed(w_bits), pe * simd)})
        super().__init__({
            "input": In(stream.Signature(layout)),
            "output": Out(stream.Signature(data.ArrayLayout(signed(self.acc_bits), pe))),
        })

    def elaborate(self, platform):
        m = Module()
        payload = self.input.payload
        for p in range(self._pe):
            total = sum(payload.a[i] * payload.w[p * self._simd + i] for i in range(self._simd))
            m.d.sync += self.output.payload[p].eq(total)
        m.d.sync += self.output.valid.eq(self.input.valid)
        m.d.comb += self.input.ready.eq(1)
        return m


class RegisteredAdder(wiring.Component):
    """``width``-bit adder between registers: the fastest arithmetic the fabric runs.

    Members
    -------
    input : In(stream.Signature(ArrayLayout(signed(width), 2)))
    output : Out(stream.Signature(signed(width + 1)))
    """

    def __init__(self, *, width):
        self._width = width
        super().__init__({
            "input": In(stream.Signature(data.ArrayLayout(signed(width), 2))),
            "output": Out(stream.Signature(signed(width + 1))),
        })

    def elaborate(self, platform):
        m = Module()
        a = Signal(signed(self._width))
        b = Signal(signed(self._width))
        m.d.sync += [a.eq(self.input.payload[0]), b.eq(self.input.payload[1]),
                     self.output.payload.eq(a + b), self.output.valid.eq(self.input.valid)]
        m.d.comb += self.input.ready.eq(1)
        return m
