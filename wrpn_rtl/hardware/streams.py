"""Stream plumbing shared by the generators: output credit and chaining stages."""
from amaranth.hdl import Cat, Signal
from amaranth.lib import wiring

__all__ = ["output_credit", "chain_stages"]


def output_credit(m, *, depth, taken, transfer, name="reserved"):
    """Credit for an output queue of ``depth`` words that a pipeline fills without stalling.

    A word may be started only while a slot is free; ``taken`` (a 1-bit Value) reserves one,
    an output ``transfer`` returns one a cycle later (conservative, and off the consumer's
    ``ready`` path). The count is a thermometer code (bit ``i``: more than ``i`` reserved), so
    the returned "room" is a register bit and no carry chain is involved.

    Returns
    -------
    Value
        1 while fewer than ``depth`` words are reserved.
    """
    reserved = Signal(depth, name=name)
    returned = Signal(name=f"{name}_returned")
    m.d.sync += returned.eq(transfer)
    with m.If(taken & ~returned):
        m.d.sync += reserved.eq(Cat(1, reserved[:-1]))
    with m.Elif(returned & ~taken):
        m.d.sync += reserved.eq(reserved[1:])
    return ~reserved[-1]


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
