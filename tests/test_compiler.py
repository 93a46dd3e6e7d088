# amaranth: UnusedElaboratable=no
"""The folding search: budgets it accepts are met by the design it builds, for every network
shape (pools before the first layer, stand-alone pools after one, pools fused into a conv)."""
import json
import math
from dataclasses import replace as dataclass_replace
import re

import numpy as np
import pytest

from wrpn_rtl import golden as g
from wrpn_rtl.compiler.stages import Folding
from wrpn_rtl.hardware.accelerator import Accelerator
from wrpn_rtl.hardware.conv import ConvGeometry
from wrpn_rtl.hardware.replay import VectorReplayGeometry
from wrpn_rtl.compiler.folding import (choose_foldings, foldings_to_json, layer_options,
                                       read_foldings)
from wrpn_rtl.golden.zoo import load_default_model

NETWORKS = {
    # a pool reads the image stream: its cycles bound the design, whatever the foldings
    "pool-first": g.NetworkSpec((6, 6, 1), 3, [g.MaxPool(2), g.Conv(2, 1, out_bits=2),
                                              g.Dense(3, out_bits=None, batch_norm=False)]),
    "overlapping-pool-first": g.NetworkSpec((6, 6, 2), 3, [
        g.MaxPool(3, stride=1), g.Conv(4, 3, padding=1, out_bits=2),
        g.Dense(3, out_bits=None, batch_norm=False)]),
    # the second pool stands alone after the fused one and reads the conv's PE lanes
    "two-pools": g.NetworkSpec((8, 8, 1), 4, [g.Conv(4, 3, padding=1, out_bits=2),
                                             g.MaxPool(2), g.MaxPool(2, stride=1),
                                             g.Dense(3, out_bits=None, batch_norm=False)]),
    "digits-like": g.NetworkSpec((8, 8, 1), 8, [g.Conv(4, 3, padding=1, out_bits=3),
                                               g.MaxPool(2), g.Conv(6, 3, padding=1,
                                                                    out_bits=3),
                                               g.MaxPool(2),
                                               g.Dense(10, out_bits=None, batch_norm=False)]),
}


def build_accelerator(network, foldings):
    """The accelerator (built here, so this module's pragma covers the ones never elaborated)."""
    return Accelerator(network, foldings=foldings)


def quantized(spec, seed=0):
    return g.quantize_network(spec, g.random_parameters(spec, np.random.default_rng(seed)))


def fewest_cycles(network):
    """The floor that an impossible cycle target's error names."""
    with pytest.raises(ValueError, match=r"^target_cycles must be an integer >= \d+ ") as info:
        choose_foldings(network, target_cycles=1)
    return int(re.search(r">= (\d+)", str(info.value)).group(1))


@pytest.mark.parametrize("name", list(NETWORKS))
def test_every_accepted_cycle_target_is_met(name):
    network = quantized(NETWORKS[name])
    fewest = fewest_cycles(network)
    fastest = build_accelerator(network, choose_foldings(network, target_cycles=fewest))
    assert fastest.cycles_per_image == fewest        # the floor named is reached
    targets = sorted({fewest, fewest + 1, 2 * fewest, 10 * fewest})
    for target in targets:
        accelerator = build_accelerator(network, choose_foldings(network, target_cycles=target))
        assert accelerator.cycles_per_image <= target, (target, accelerator.cycles_per_image)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_a_logic_budget_gives_the_fastest_design(name):
    network = quantized(NETWORKS[name])
    fastest = build_accelerator(network, choose_foldings(network, max_logic_cells=10 ** 9))
    assert fastest.cycles_per_image == fewest_cycles(network)


def test_a_pool_on_the_image_stream_is_counted_in_cycles_and_cost():
    network = quantized(NETWORKS["pool-first"])
    pool_cycles = 6 * 6                                  # one image code per cycle
    conv_options = layer_options(network.layers[1])
    assert all(option.cycles < pool_cycles for option in conv_options)
    assert build_accelerator(network, choose_foldings(
        network, max_logic_cells=10 ** 9)).cycles_per_image == pool_cycles


def test_a_folding_file_without_window_simd_takes_the_searched_lanes(tmp_path):
    network = quantized(NETWORKS["digits-like"])
    path = tmp_path / "folding.json"
    path.write_text(json.dumps({"foldings": [{"pe": 2, "simd": 9}, {"pe": 3, "simd": 12},
                                             {"pe": 2, "simd": 8}]}))
    implicit = build_accelerator(network, read_foldings(path, network))
    explicit = Accelerator(network, foldings=[
        Folding(pe=2, simd=9, window_simd=math.gcd(9, 1)),
        Folding(pe=3, simd=12, window_simd=math.gcd(12, 4)), Folding(pe=2, simd=8)])
    assert implicit.cycles_per_image == explicit.cycles_per_image
    assert [stage.name for stage in implicit.plan] == [stage.name for stage in explicit.plan]


def test_designs_are_priced_per_device_family():
    from wrpn_rtl.compiler import cost
    estimate = {"logic_cells": 100, "flip_flops": 40, "memory_bits": 0, "block_rams": 0}
    assert cost.device_logic_cells(estimate, "ice40") == 124     # 0.6 cells per flip-flop
    assert cost.device_logic_cells(estimate, "ecp5") == 100      # a slice's FFs are apart
    with pytest.raises(ValueError, match=r"^family must be one of ice40, ecp5, asic, "
                                         r"not 'xilinx'$"):
        cost.device_logic_cells(estimate, "xilinx")
    # The same budget in ECP5 LUT4s buys a design that keeps its shallow memories in LUT RAM
    # (the clock, see lut_ram) and so reads fewer block RAMs than the iCE40 one, and the
    # default network folded for ECP5-25k is the fastest it allows.
    from wrpn_rtl.golden.zoo import load_default_model
    network = load_default_model()
    ice40 = build_accelerator(network, choose_foldings(network, max_logic_cells=4224))
    ecp5 = build_accelerator(network, choose_foldings(network, max_logic_cells=4224,
                                                      family="ecp5"))
    assert ecp5.estimate("ecp5")["block_rams"] < ice40.estimate()["block_rams"]
    assert ecp5.estimate("ecp5")["device_logic_cells"] <= 4224
    large = build_accelerator(network, choose_foldings(network, max_logic_cells=19430,
                                                       family="ecp5"))
    # conv1's register window emits a whole 3x3 window per word (its 8 x 8 x 8-bit map
    # needs a 176-bit chain), where the line buffer gives one pixel per word (9 x 64 = 576
    # cycles); conv2's map (a 896-bit chain) stays in its line buffer.
    assert large.cycles_per_image < 9 * 64
    assert [stage.folding.window_simd for stage in large.plan
            if stage.kind.name == "CONV"] == [9, 16]


def test_spare_block_rams_take_tables_and_a_tight_limit_gives_them_back():
    """Where a layer's table of constants is deep (the serial form's NF * S rows), block RAM
    the device has spare takes it instead of logic, so a logic budget buys a faster design;
    as the block RAM limit tightens the tables go back to logic (cheapest logic per block RAM
    freed first), and a limit no design meets is refused."""
    from wrpn_rtl.golden.zoo import load_default_model
    from wrpn_rtl.compiler import cost
    network = load_default_model()
    conv2 = layer_options(network.layers[2], network.layers[3])
    for option in conv2:
        twin = [o for o in conv2 if o.folding.pe == option.folding.pe
                and o.folding.simd == option.folding.simd
                and o.folding.window_simd == option.folding.window_simd
                and o.folding.replay == option.folding.replay
                and o.folding.pe_per_requantizer == option.folding.pe_per_requantizer]
        assert len(twin) in (1, 2)
        if len(twin) == 2:          # the table's two places: same cycles, logic for RAM
            logic, block = sorted(twin, key=lambda o: o.estimate["block_rams"])
            assert logic.cycles == block.cycles
            assert block.folding.tables == "block" or logic.folding.tables == "logic"

    def design(**limits):
        foldings = choose_foldings(network, max_logic_cells=3960, **limits)
        accelerator = build_accelerator(network, foldings)
        return foldings, accelerator, accelerator.estimate()

    spare, fast, fast_cost = design(max_block_rams=30)
    assert any(f.tables == "block" for f in spare)
    assert fast_cost["block_rams"] <= 30 and fast_cost["device_logic_cells"] <= 3960
    no_spare, slow, slow_cost = design(max_block_rams=fast_cost["block_rams"] - 1)
    assert slow_cost["block_rams"] < fast_cost["block_rams"]
    assert slow.cycles_per_image >= fast.cycles_per_image
    # the same foldings with every table where the default rule puts it cost more logic
    default = build_accelerator(network, [dataclass_replace(f, tables=None) for f in spare])
    assert default.estimate()["device_logic_cells"] > fast_cost["device_logic_cells"]
    assert default.cycles_per_image == fast.cycles_per_image
    with pytest.raises(ValueError, match=r"^target_cycles must allow a design within 0 block "
                                         r"RAMs, not 2304 \(its layers need more\)$"):
        choose_foldings(network, target_cycles=2304, max_block_rams=0)
    assert cost.ZERO["block_rams"] == 0


def test_spare_block_rams_take_a_shallow_wide_replay():
    """A gathered convolution window replayed NF times keeps two vectors: conv2 at PE 2 x
    SIMD 36 holds 8 words of 144 bits, about 1,700 cells in flip-flops and multiplexers or 9
    block RAMs. The search offers both places (same cycles) and, within the UP5K's 30 block
    RAMs and 75 % of its logic, takes the block RAMs for the fastest design; with the
    replay where the default rule puts it, the same foldings exceed the logic budget."""
    from wrpn_rtl.golden.zoo import load_default_model
    network = load_default_model()
    conv2 = layer_options(network.layers[2], network.layers[3])
    replayed = [o for o in conv2 if o.folding.replay is not None]
    assert replayed
    for option in replayed:
        twin = [o for o in conv2 if o is not option and dataclass_replace(o.folding, replay=None)
                == dataclass_replace(option.folding, replay=None)]
        assert len(twin) == 1 and twin[0].cycles == option.cycles
        block, logic = sorted([option, twin[0]], key=lambda o: -o.estimate["block_rams"])
        assert block.estimate["block_rams"] > logic.estimate["block_rams"]
    wide = next(o for o in conv2 if (o.folding.pe, o.folding.simd, o.folding.replay,
                                     o.folding.tables) == (2, 36, "block", "block"))
    narrow = next(o for o in conv2 if (o.folding.pe, o.folding.simd, o.folding.replay,
                                       o.folding.tables) == (2, 36, None, "block"))
    assert narrow.logic_cells - wide.logic_cells > 1500
    foldings = choose_foldings(network, max_logic_cells=3960, max_block_rams=30)
    assert foldings[1].replay == "block"
    fast = build_accelerator(network, foldings)
    assert fast.estimate()["block_rams"] <= 30
    default = build_accelerator(network, [dataclass_replace(f, replay=None) for f in foldings])
    assert default.cycles_per_image == fast.cycles_per_image
    assert default.estimate()["device_logic_cells"] > 3960 >= fast.estimate()[
        "device_logic_cells"]


def test_a_folding_file_names_where_replays_go(tmp_path):
    """``replay`` in a folding file reaches the replay's memory (conv and dense), round trips,
    and a bad value is refused naming the layer, also where the layer has no replay."""
    network = quantized(NETWORKS["digits-like"])
    path = tmp_path / "folding.json"
    path.write_text(json.dumps({"foldings": [
        {"pe": 1, "simd": 9, "window_simd": 1, "replay": "block"}, {"pe": 1, "simd": 2},
        {"pe": 1, "simd": 1, "replay": "block"}]}))
    foldings = read_foldings(path, network)
    assert [f.replay for f in foldings] == ["block", None, "block"]
    assert foldings_to_json(foldings)["foldings"][0]["replay"] == "block"
    assert "replay" not in foldings_to_json(foldings)["foldings"][1]
    accelerator = build_accelerator(network, foldings)
    replays = [model for _, model in accelerator.stage_models
               if isinstance(model, VectorReplayGeometry)]
    replays += [dict(model.parts)["replay"] for _, model in accelerator.stage_models
                if isinstance(model, ConvGeometry) and "replay" in dict(model.parts)]
    assert replays and all(r.memory_style() == "block" for r in replays)
    for index in (0, 1, 2):
        entries = [{"pe": 1, "simd": 1}, {"pe": 1, "simd": 1}, {"pe": 1, "simd": 1}]
        entries[index]["replay"] = "bram"
        path.write_text(json.dumps({"foldings": entries}))
        with pytest.raises(ValueError, match=r"^layer\d+(_replay)?: replay must be None, "
                                             r"'logic' or 'block', not 'bram'$"):
            build_accelerator(network, read_foldings(path, network))


def test_a_folding_file_names_where_tables_go(tmp_path):
    network = quantized(NETWORKS["digits-like"])
    path = tmp_path / "folding.json"
    path.write_text(json.dumps({"foldings": [
        {"pe": 1, "simd": 1, "tables": "block"}, {"pe": 1, "simd": 2, "tables": "logic"},
        {"pe": 1, "simd": 1}]}))
    foldings = read_foldings(path, network)
    assert [f.tables for f in foldings] == ["block", "logic", None]
    assert foldings_to_json(foldings)["foldings"][0]["tables"] == "block"
    assert "tables" not in foldings_to_json(foldings)["foldings"][2]
    accelerator = build_accelerator(network, foldings)
    mvus = [model.mvu if hasattr(model, "mvu") else model
            for stage, (_, model) in zip(accelerator.plan, accelerator.stage_models)
            if stage.kind.name in ("CONV", "DENSE")]
    assert [mvu.memory_styles()["thresholds"] for mvu in mvus[:2]] == ["block", "logic"]
    path.write_text(json.dumps({"foldings": [{"pe": 1, "simd": 1, "tables": "bram"},
                                             {"pe": 1, "simd": 1}, {"pe": 1, "simd": 1}]}))
    with pytest.raises(ValueError, match=r"^layer0: tables must be None, 'logic' or 'block', "
                                         r"not 'bram'$"):
        build_accelerator(network, read_foldings(path, network))


def test_lut_ram_keeps_the_ecp5_design_off_block_ram(tmp_path):
    """On ECP5 (LUT RAM) every option has ``lut_ram``: the default network's design there
    reads no block RAM (its line buffer, replay and pools' partial maxima in LUT RAM, the
    dense weights in LUTs), the estimate counts the logic they take, and a folding file round
    trips it; iCE40 options
    never have it."""
    from wrpn_rtl.golden.zoo import load_default_model
    network = load_default_model()
    assert all(o.folding.lut_ram for o in layer_options(network.layers[4], family="ecp5"))
    assert not any(o.folding.lut_ram for o in layer_options(network.layers[4]))
    foldings = choose_foldings(network, max_logic_cells=15787, family="ecp5")
    assert all(f.lut_ram for f in foldings)
    design = build_accelerator(network, foldings)
    assert design.estimate("ecp5")["block_rams"] == 0
    blocked = build_accelerator(network, [dataclass_replace(f, lut_ram=False)
                                          for f in foldings])
    assert blocked.estimate("ecp5")["block_rams"] > 0
    # conv2's 16-word line buffer moves from block RAM to LUT RAM, which the estimate counts
    windows = [model.window.estimate() for accelerator in (design, blocked)
               for _, model in accelerator.stage_models if isinstance(model, ConvGeometry)
               and model.layer is network.layers[2]]
    assert windows[0]["logic_cells"] > windows[1]["logic_cells"]
    assert windows[0]["block_rams"] == 0 < windows[1]["block_rams"]
    path = tmp_path / "folding.json"
    path.write_text(json.dumps(foldings_to_json(foldings)))
    assert read_foldings(path, network) == foldings
    assert "lut_ram" not in foldings_to_json([dataclass_replace(foldings[0], lut_ram=False)])[
        "foldings"][0]


def test_register_windows_are_offered_for_small_maps_only():
    """The folding search offers whole-window words (a register window) where the chain is
    within REGISTER_WINDOW_MAX_BITS: conv1 of the default network (8 x 8 x 1 at 8 bits: 176
    bits), not conv2 (4 x 4 x 16 at 4 bits: 896 bits); every option's cycles come from its
    own geometry."""
    from wrpn_rtl.compiler.folding import layer_options
    from wrpn_rtl.compiler.stages import group_layers
    from wrpn_rtl.golden.zoo import load_default_model
    from wrpn_rtl.hardware.register_window import REGISTER_WINDOW_MAX_BITS
    _, groups = group_layers(load_default_model())
    conv1, conv2 = (layer_options(group.layer, group.fused_pool, group.trailing_pools)
                    for group in groups[:2])
    register = [option for option in conv1 if option.folding.window_simd == 9]
    assert register and len(register) < len(conv1)
    assert all(option.folding.window_simd in (1, 9) for option in conv1)
    assert not any(option.folding.window_simd == 144 for option in conv2)
    # whole windows per word take conv1 under the line buffer's 576-cycle floor
    assert min(option.cycles for option in register) == 100 < 576 == min(
        option.cycles for option in conv1 if option.folding.window_simd == 1)
    assert REGISTER_WINDOW_MAX_BITS >= 176


def dsp_blocks_of(foldings):
    return sum(f.pe * f.dsp_pairs + f.requantizers * int(f.dsp_requantizer) for f in foldings)


def test_dsp_blocks_go_where_they_save_logic(tmp_path):
    """Given DSP blocks, the search hands them out (DSP pairs, requantizer multipliers) where a
    block saves logic, within the count, and priced into the design; no blocks means none."""
    spec = g.NetworkSpec((8, 8, 1), 4, [g.Conv(4, 3, padding=1, weight_bits=4, out_bits=4),
                                        g.MaxPool(2),
                                        g.Conv(6, 3, padding=1, weight_bits=4, out_bits=4),
                                        g.Dense(3, weight_bits=4, out_bits=None,
                                                batch_norm=False)])
    network = quantized(spec)
    plain = choose_foldings(network, target_cycles=512)
    assert dsp_blocks_of(plain) == 0
    for blocks in (1, 8, 30):
        foldings = choose_foldings(network, target_cycles=512, max_dsp_blocks=blocks)
        used = dsp_blocks_of(foldings)
        assert 0 < used <= blocks
        # one block goes to conv1's requantizer, which saves the most per block; more
        # go to DSP pairs too
        assert any(f.dsp_pairs for f in foldings) == (blocks > 1)
        # (a requantizer in a DSP block may be shared by more PEs than in logic)
        assert [dataclass_replace(f, dsp_pairs=0, dsp_requantizer=False,
                                  pe_per_requantizer=p.pe_per_requantizer)
                for f, p in zip(foldings, plain)] == plain
        with_dsp, without = (build_accelerator(network, fs).estimate() for fs in (foldings, plain))
        assert with_dsp["dsp_blocks"] == used
        assert with_dsp["device_logic_cells"] < without["device_logic_cells"]
    # round trip through a folding file
    path = tmp_path / "f.json"
    path.write_text(json.dumps(foldings_to_json(foldings)))
    assert read_foldings(path, network) == foldings
    # a logic budget the plain design misses, met with the blocks
    estimate = build_accelerator(network, foldings).estimate()["device_logic_cells"]
    fast = build_accelerator(network, choose_foldings(network, max_logic_cells=estimate,
                                                      max_dsp_blocks=30))
    slow = build_accelerator(network, choose_foldings(network, max_logic_cells=estimate))
    assert fast.cycles_per_image < slow.cycles_per_image
    with pytest.raises(ValueError, match="max_dsp_blocks must be a non-negative integer, "
                                         "not -1"):
        choose_foldings(network, target_cycles=512, max_dsp_blocks=-1)


def test_the_default_network_takes_a_dsp_requantizer_not_dsp_pairs():
    """On the UP5K's budget the default network's conv1 requantizer (15 thresholds of 12 bits
    per output, a 16-row table in logic) becomes the affine form with its multiplier in a DSP
    block; its ternary lanes stay in logic (a pair in a multiplier is about as dear)."""
    network = load_default_model()
    plain = choose_foldings(network, max_logic_cells=3960, max_block_rams=30)
    foldings = choose_foldings(network, max_logic_cells=3960, max_block_rams=30,
                               max_dsp_blocks=8)
    assert not any(f.dsp_pairs for f in foldings)
    assert foldings[0].dsp_requantizer and 0 < dsp_blocks_of(foldings) <= 8
    # the blocks buy a faster design within the same budget, and at the plain design's
    # cycles a smaller one
    cycles = build_accelerator(network, plain).cycles_per_image
    assert build_accelerator(network, foldings).cycles_per_image < cycles
    same_rate = choose_foldings(network, target_cycles=cycles, max_block_rams=30,
                                max_dsp_blocks=8)
    assert same_rate[0].dsp_requantizer and not any(f.dsp_pairs for f in same_rate)
    assert (build_accelerator(network, same_rate).estimate()["device_logic_cells"]
            < build_accelerator(network, plain).estimate()["device_logic_cells"])


def test_spare_block_rams_take_output_queues_on_ice40(tmp_path):
    """On iCE40 (no LUT RAM) the search moves the MVU output queues that save the most logic
    to block RAMs it has spare, keeping one free; a tight limit, the ECP5 family or no
    block-RAM limit at all leaves them in flip-flops. The search prices each design with its
    queues. A folding file carries the choice."""
    from wrpn_rtl.compiler.folding import BLOCK_QUEUE_MIN_SAVING, QUEUE_SPARE_RAMS
    network = load_default_model()
    foldings = choose_foldings(network, max_logic_cells=3960, max_block_rams=30,
                               max_dsp_blocks=8)
    queued = [f for f in foldings if f.queue == "block"]
    assert queued
    plain = [dataclass_replace(f, queue=None) for f in foldings]
    with_queues, without = (build_accelerator(network, fs).estimate() for fs in (foldings, plain))
    assert with_queues["block_rams"] <= 30 - QUEUE_SPARE_RAMS
    assert with_queues["block_rams"] == without["block_rams"] + len(queued)
    assert (without["device_logic_cells"] - with_queues["device_logic_cells"]
            >= BLOCK_QUEUE_MIN_SAVING * len(queued))
    # the same cycle budget with one block RAM fewer than the queues need: none
    cycles = build_accelerator(network, foldings).cycles_per_image
    tight = choose_foldings(network, target_cycles=cycles, max_dsp_blocks=8,
                            max_block_rams=without["block_rams"] + QUEUE_SPARE_RAMS)
    assert [dataclass_replace(f, queue=None) for f in tight] == plain
    assert not any(f.queue for f in tight)
    # the logic budget then buys a slower design (its queues priced in, as built)
    slower = choose_foldings(network, max_logic_cells=3960, max_dsp_blocks=8,
                             max_block_rams=without["block_rams"] + QUEUE_SPARE_RAMS)
    assert build_accelerator(network, slower).cycles_per_image > cycles
    assert build_accelerator(network, slower).estimate()["device_logic_cells"] <= 3960
    assert not any(f.queue for f in choose_foldings(network, max_logic_cells=10 ** 9))
    assert not any(f.queue for f in choose_foldings(network, max_logic_cells=16000,
                                                    max_block_rams=56, family="ecp5"))
    path = tmp_path / "f.json"
    path.write_text(json.dumps(foldings_to_json(foldings)))
    assert read_foldings(path, network) == foldings
    assert '"queue": "block"' in path.read_text()


def test_a_reserve_takes_logic_and_block_rams_off_the_default_budget():
    """A board's host link (``reserve``: logic, what, block RAMs) comes off both budgets of
    the default fold: the design and the link's block RAMs together fit the device."""
    from wrpn_rtl.job.design import choose
    network = load_default_model()
    foldings, how = choose(network, target="ice40-up5k", reserve=(1000, "the link", 5))
    assert how.endswith("less 1000 for the link (and 5 block RAMs)")
    estimate = build_accelerator(network, foldings).estimate()
    assert estimate["block_rams"] <= 30 - 5
    assert estimate["device_logic_cells"] <= int(5280 * 0.75) - 1000
