# amaranth: UnusedElaboratable=no
"""``memories.RegisteredROM``: ``words[addr]`` one cycle after ``addr``, for plain and layout
words; and the synthesis scripts map it apart, one LUT4 per data bit up to 16 words, inside a
whole matrix-vector unit."""
import numpy as np
import pytest
from amaranth.hdl import Module, Signal, Value, unsigned
from amaranth.lib import data
from amaranth.sim import Simulator

from wrpn_rtl.hardware.memories import MAPPED_APART, RegisteredROM


def _read_all(rom, addresses):
    """``rom.data`` in the cycle after each of ``addresses`` was presented."""
    m = Module()   # with a clock domain of its own: a ROM of constant bits has no register
    m.submodules.rom = rom
    tick = Signal()
    m.d.sync += tick.eq(~tick)
    sim = Simulator(m)
    sim.add_clock(1e-6)
    seen = []

    async def bench(ctx):
        for address in addresses:
            ctx.set(rom.addr, address)
            await ctx.tick()
            seen.append(ctx.get(Value.cast(rom.data)))

    sim.add_testbench(bench)
    sim.run()
    return seen


@pytest.mark.parametrize("depth", [1, 2, 3, 9, 16, 17, 80])
def test_rom_reads_every_word_a_cycle_later(depth):
    """Random words with equal and constant bit columns among them."""
    rng = np.random.default_rng(depth)
    random = [int(w) for w in rng.integers(0, 1 << 10, depth)]
    words = [w | 1 << 10 | (w & 1) << 11 for w in random]   # bit 10 set, bit 11 = bit 0
    addresses = [int(a) for a in rng.integers(0, depth, 3 * depth)] + list(range(depth))
    assert _read_all(RegisteredROM(unsigned(12), words), addresses) == \
        [words[a] for a in addresses]


def test_rom_of_layout_words():
    layout = data.ArrayLayout(data.StructLayout({"sign": unsigned(3), "mask": unsigned(3)}), 2)
    words = [[{"sign": i % 8, "mask": (3 * i) % 8}, {"sign": (5 * i) % 8, "mask": 7 - i % 8}]
             for i in range(5)]
    addresses = [4, 0, 3, 1, 2, 2, 0]
    assert _read_all(RegisteredROM(layout, words), addresses) == \
        [layout.const(words[a]).as_value().value for a in addresses]


def test_rom_needs_a_word():
    with pytest.raises(ValueError, match="^a RegisteredROM needs at least one word$"):
        RegisteredROM(unsigned(4), [])


@pytest.mark.slow
def test_synthesis_maps_the_rom_apart_one_lut_per_bit(tmp_path):
    """The flow's Yosys script (ECP5, ABC9) on a whole unit whose 6-word weight ROM is read
    into a register: the netlist is flat (nextpnr reads it) and every LUT4 of the ROM takes
    its inputs from outside the ROM's LUTs (one level: no bit computed through another's LUT),
    at most one per data bit."""
    import json

    from wrpn_rtl.compiler.export import write_verilog
    from wrpn_rtl.hardware.mvu import MatrixVectorUnit
    from wrpn_rtl.synth.flow import TARGETS, _synthesize_netlists
    from tests.helpers import dense_layer

    layer = dense_layer(np.random.default_rng(5), in_features=72, out_features=64,
                        weight_bits=2, in_bits=4, out_bits=4)
    mvu = MatrixVectorUnit(layer, pe=32, simd=24, lut_ram=True)
    assert mvu.weights_registered and mvu.neuron_fold * mvu.synapse_fold == 6
    write_verilog(mvu, tmp_path / "design.v", name="top")
    _synthesize_netlists(tmp_path, TARGETS["ecp5-25k"], "top", core=False)
    netlist = json.loads((tmp_path / "netlist.json").read_text())
    assert not [name for name, module in netlist["modules"].items()
                if name != "top" and module.get("cells")
                and not module.get("attributes", {}).get("blackbox")]
    cells = netlist["modules"]["top"]["cells"]
    rom_luts = {name: cell for name, cell in cells.items()
                if cell["type"] == "LUT4" and f"{MAPPED_APART}." in name}
    driven_by_rom = {bit for cell in rom_luts.values() for bit in cell["connections"]["Z"]}
    inputs = {bit for cell in rom_luts.values() for port in "ABCD"
              for bit in cell["connections"][port] if isinstance(bit, int)}
    assert rom_luts and not inputs & driven_by_rom
    assert len(rom_luts) <= 32 * 24 * 2
