"""Stream plumbing shared by the generators: output credit, the credited output queue, and
chaining stages."""
from amaranth.hdl import Cat, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wrpn_rtl.hardware.stream_fifo import BlockQueue, StreamFIFO

__all__ = ["output_credit", "credit_slots", "credited_queue", "held_read", "chain_stages", "FoldedMapWords",
           "stream_members"]

def output_credit(m, *, depth, taken, transfer, name="reserved"):
    """Credit for an output queue of ``depth`` words that a pipeline fills without stalling.

    A word may be started only while a slot is free; ``taken`` (a 1-bit Value) reserves one,
    an output ``transfer`` returns one a cycle later (conservative, and off the consumer's
    ``ready`` path). The count is a thermometer code (bit ``i``: more than ``i`` reserved), so
    no carry chain is involved, and the returned "room" is a register of its own.

    Returns
    -------
    Signal
        1 while fewer than ``depth`` words are reserved; 0 in the first cycle after reset or
        power-up (the pipeline's memories present their first read address then, so their
        read data is valid when the first word starts).
    """
    reserved = Signal(depth, name=name)
    returned = Signal(name=f"{name}_returned")
    room = Signal(name=f"{name}_room")
    m.d.sync += returned.eq(transfer)
    after = Mux(taken & ~returned, Cat(1, reserved[:-1]),
                Mux(returned & ~taken, reserved[1:], reserved))
    m.d.sync += [reserved.eq(after), room.eq(~after[-1])]
    return room


def credit_slots(latency, *, interval=1):
    """Output queue words (:func:`output_credit`'s ``depth``) that never throttle a pipeline
    whose words reach the queue's output ``latency`` cycles after they are taken and which
    takes at most one word per ``interval`` cycles, when the consumer is always ready: a
    slot taken in cycle ``t`` is free again in ``t + latency + 2`` (the transfer's return is
    registered, and so is ``room``), so ``ceil((latency + 2) / interval)`` slots.

    A consumer that is not always ready fills the queue sooner and stalls the pipeline for
    as long as it waits; the layer's rate is then the consumer's."""
    return -(-(latency + 2) // interval)


def credited_queue(m, component, *, depth, taken, name="out_fifo", block=False):
    """The output queue of a pipeline that never stalls: a :class:`StreamFIFO` of ``depth``
    words (with ``block``, a :class:`~wrpn_rtl.hardware.stream_fifo.BlockQueue` in block
    RAM, one cycle longer) in front of ``component.output``, and its credit
    (:func:`output_credit`).

    A word may start down the pipeline only while ``room`` is high; ``taken`` (a 1-bit Value)
    reserves its slot. The pipeline then drives ``queue_input.valid`` / ``.payload`` when the
    word arrives, whatever the consumer does meanwhile.

    Returns
    -------
    (room, queue_input)
    """
    queue_class = BlockQueue if block else StreamFIFO
    m.submodules[name] = queue = queue_class(component.output.payload.shape(), depth=depth)
    room = output_credit(m, depth=depth, taken=taken,
                         transfer=component.output.valid & component.output.ready)
    wiring.connect(m, queue.output, wiring.flipped(component.output))
    return room, queue.input


def held_read(m, component, read, want, *, name="held"):
    """A stage's output straight from a synchronous memory read port ``read``, no queue: the
    port's data is ``component.output``'s payload and holds, the
    port's enable low, while the consumer is not ready; ``output.valid`` is a register.

    A word is issued (its address presented, with ``want``, a 1-bit Value: the stage has one
    to read) whenever the output is empty or being taken, so an always-ready consumer gets a
    word per cycle. The consumer's ``ready`` reaches the port's enable and the issuing logic
    in the same cycle: meant for consumers whose ``ready`` is a register or a gate of
    registers (a :class:`StreamFIFO`, an MVU's input). Where an output queue behind the read
    would hold ``credit_slots(2) x width`` flip-flops, this holds none.

    Returns
    -------
    issue : Value
        1 in a cycle that reads a word (``want`` and the output free).
    """
    valid = Signal(name=f"{name}_valid")
    advance = Signal(name=f"{name}_advance")
    issue = Signal(name=f"{name}_issue")
    m.d.comb += [advance.eq(~valid | component.output.ready), issue.eq(want & advance),
                 read.en.eq(advance), component.output.valid.eq(valid),
                 component.output.payload.eq(read.data)]
    with m.If(advance):
        m.d.sync += valid.eq(want)
    return issue


def chain_stages(m, component, stages):
    """Add ``stages`` (``[(name, component)]``, each with ``input`` and ``output`` streams) to
    ``m`` as submodules and connect them in order between ``component``'s own ``input`` and
    ``output``."""
    source = wiring.flipped(component.input)
    for name, stage in stages:
        m.submodules[name] = stage
        wiring.connect(m, source, stage.input)
        source = stage.output
    wiring.connect(m, source, wiring.flipped(component.output))


class FoldedMapWords:
    """Stream layouts of a geometry that takes and gives folded maps of ``self._bits``-bit
    codes, ``self._simd`` per word (windows, pools)."""

    @property
    def word_layout(self):
        """``ArrayLayout(unsigned(bits), simd)``: one word in and out."""
        return data.ArrayLayout(unsigned(self._bits), self._simd)

    @property
    def input_layout(self):
        return self.word_layout

    @property
    def output_layout(self):
        return self.word_layout


def stream_members(geometry):
    """The signature members of a one-input, one-output stream component built on
    ``geometry``: ``input`` of its ``input_layout`` words, ``output`` of its
    ``output_layout``."""
    return {"input": In(stream.Signature(geometry.input_layout)),
            "output": Out(stream.Signature(geometry.output_layout))}
