"""The folding search: a golden :class:`QuantizedNetwork` -> one folding per Conv/Dense layer.

Folding
-------
Each Conv/Dense layer gets a :class:`~wrpn_rtl.compiler.stages.Folding` (PE output channels and SIMD
window codes per cycle). A stage of the stream takes as many cycles per image as its slowest
part (:attr:`Accelerator.cycles_per_image`), so a balanced design gives every layer the
*cheapest* folding that meets one cycle budget ``T``:

* ``choose_foldings(network, target_cycles=T)``: that design, or a ``ValueError`` naming the
  fastest ``T`` the network allows;
* ``choose_foldings(network, max_logic_cells=L, max_block_rams=B)``: the fastest such design
  whose estimated logic for a device family (iCE40 logic cells or ECP5 LUT4s,
  :func:`wrpn_rtl.compiler.cost.device_logic_cells`) stays within ``L`` and block RAMs within ``B`` (the cost of the cheapest design meeting ``T`` never grows
  with ``T``, so the smallest feasible ``T`` among the cycle counts the layers can take is the
  answer; budgets within :data:`CYCLES_TIE` of it count as equally fast, and the smallest
  design among them wins);
* ``read_foldings(path)``: foldings given explicitly, in a JSON file
  ``{"foldings": [{"pe": 4, "simd": 9, "window_simd": 1}, ...]}`` (one per Conv/Dense layer;
  ``window_simd`` optional: by default ``gcd(SIMD, C_in)``, as the search chooses;
  ``tables`` optional: "block" or "logic", where the layer's table of constants goes;
  ``replay`` likewise, where its vector replay's buffer goes; ``lut_ram`` optional: true to
  put the layer's shallow memories in LUT RAM, only for a device that has it, ECP5;
  ``dsp_pairs`` optional: lane pairs per PE in hard multipliers, and ``dsp_requantizer``
  optional: true for the affine requantizer with its multiplier in one per PE, both only for
  a device whose DSP blocks the compiler uses, iCE40 UP5K; ``queue`` optional: "block" for
  the layer's output queue in a block RAM; ``pe_per_requantizer`` optional: PEs that share
  each requantizer in turn, default 1).

Shared requantizers
-------------------
Where a layer's PEs finish a word only every ``SF >= 2`` cycles, every option is also priced
with the most PEs per requantizer that fits (the largest divisor ``G`` of ``PE`` with
``G <= SF``: :class:`~wrpn_rtl.hardware.mvu.MatrixVectorGeometry`), so the search takes
``PE / G`` requantizers wherever the multiplexers in front of them cost less than the
requantizers saved.

DSP blocks
----------
Given ``max_dsp_blocks``, the search hands the device's hard multipliers out after the
foldings are chosen, as DSP pairs (:class:`~wrpn_rtl.hardware.lanes.MacLanes`, one more pair
per PE of a layer at a time) or as a layer's affine requantizer multipliers (one per
requantizer, shared by as many PEs as fit where that saves more), each
time the move that saves the most estimated logic per block, while it saves at least
:data:`DSP_MIN_SAVING` cells per block; the design is then priced with them, so they can make
a faster design fit.
"""
import dataclasses
import itertools
import json
import math
from pathlib import Path
from typing import NamedTuple


from wrpn_rtl.compiler import cost
from wrpn_rtl.compiler.stages import Folding, group_layers
from wrpn_rtl.golden.layers import QuantDense
from wrpn_rtl.golden.network import QuantizedNetwork
from wrpn_rtl.hardware.conv import ConvGeometry, is_register_window
from wrpn_rtl.hardware.register_window import REGISTER_WINDOW_MAX_BITS, RegisterWindowGeometry
from wrpn_rtl.hardware.memories import (CHOSEN_BLOCK_ROM_MIN_DEPTH, LUT_RAM_FAMILIES,
                                         LUT_ROM_MAX_DEPTH)
from wrpn_rtl.hardware.mvu import MatrixVectorGeometry
from wrpn_rtl.hardware.pool import max_pool_geometry
from wrpn_rtl.hardware.replay import replay_for

__all__ = ["choose_foldings", "BudgetTooSmall", "LayerOption", "layer_options",
           "most_pe_per_requantizer",
           "read_foldings", "foldings_to_json", "folding_entry", "DSP_MIN_SAVING"]

#: Estimated logic cells (of the design's family) a DSP block must save to be used. The
#: estimate prices a DSP pair's fabric registers and complement LUTs, and on ternary weights
#: with 4-bit operands a pair of lanes in logic is as cheap as the pair in a multiplier: a
#: 2 x 36 MVU with 8 SB_MAC16 measured 26 LUT4s fewer and 29 flip-flops more than without
#: (estimate: 5 cells saved per block); at 4-bit weights the same 8 blocks saved 182 LUT4s
#: and 319 flip-flops (estimate: 76 cells per block).
DSP_MIN_SAVING = 16

def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _pool_stages(pools, *, lanes, bits):
    """Stand-alone max-pool stages (``[(index, QuantMaxPool)]`` of
    :func:`~wrpn_rtl.compiler.stages.group_layers`) reading ``lanes`` codes per word, as the
    accelerator builds them."""
    return [max_pool_geometry(in_shape=pool.in_shape, kernel=pool.kernel, stride=pool.stride,
                              padding=pool.padding, simd=lanes, bits=bits) for _, pool in pools]


class LayerOption(NamedTuple):
    """One folding of one layer, with what it costs."""

    folding: Folding
    cycles: int          # per image
    logic_cells: int     # estimated logic of the device family (cost.device_logic_cells)
    estimate: dict       # the stage's estimate()


def layer_options(layer, pool=None, trailing_pools=(), *, family="ice40"):
    """Every folding of one Conv/Dense layer, with its cycles per image and estimate.

    Candidates: PE any divisor of the output channels, SIMD any divisor of the window size; a
    convolution's window gives ``gcd(SIMD, C_in)`` codes per word (or, where it fits, whole
    windows from a register window). Each comes with its table of constants where the default
    rule puts it and, where that differs, in the other place (``Folding.tables``), and so does
    its vector replay's buffer (``Folding.replay``): block RAM a device has spare is logic
    saved. On a family with LUT RAM (ECP5) every option has ``lut_ram`` (its shallow memories
    in LUT RAM or logic, not block RAM: :data:`~wrpn_rtl.hardware.memories.LUT_RAM_MAX_DEPTH`)
    and no shallow table is offered block RAM. ``pool``: the max-pool fused
    into a convolution; ``trailing_pools``: the stand-alone max-pools after the layer
    (``[(index, QuantMaxPool)]``, as :func:`~wrpn_rtl.compiler.stages.group_layers` gives
    them); they read its ``PE`` lanes, so their cycles and cost belong to the option.
    ``family``: the device family whose logic the options are priced in
    (:func:`~wrpn_rtl.compiler.cost.device_logic_cells`).

    Returns
    -------
    list of LayerOption
        Sorted by cycles, then logic cells.
    """
    options = []
    lut_ram = family in LUT_RAM_FAMILIES
    for pe in _divisors(layer.out_channels):
        for simd in _divisors(layer.window_size):
            candidates = []
            for share in sorted({1, most_pe_per_requantizer(layer, pe, simd)}):
                table_places = _table_choices(layer, pe, simd, lut_ram, share)
                for window_simd in ([None] if isinstance(layer, QuantDense)
                                    else _window_choices(layer, simd)):
                    for tables, replay_place in itertools.product(
                            table_places, _replay_choices(layer, pe, simd, window_simd, family)):
                        folding = Folding(pe=pe, simd=simd, window_simd=window_simd,
                                          tables=tables, replay=replay_place, lut_ram=lut_ram,
                                          pe_per_requantizer=share)
                        if isinstance(layer, QuantDense):
                            stage = MatrixVectorGeometry(layer, pe=pe, simd=simd, replayed=True,
                                                         tables=tables, lut_ram=lut_ram,
                                                         pe_per_requantizer=share)
                            replay = replay_for(stage, style=replay_place)
                            candidates.append((folding, stage.cycles_per_vector, cost.add(
                                stage.estimate(),
                                replay.estimate() if replay is not None else cost.ZERO)))
                        else:
                            stage = ConvGeometry(layer, pe=pe, simd=simd,
                                                 window_simd=window_simd, pool=pool,
                                                 tables=tables, replay=replay_place,
                                                 lut_ram=lut_ram, pe_per_requantizer=share)
                            candidates.append((folding, stage.cycles_per_frame,
                                               stage.estimate()))
            pools = _pool_stages(trailing_pools, lanes=pe, bits=layer.out_bits)
            for folding, cycles, estimate in candidates:
                cycles = max([cycles] + [p.cycles_per_frame for p in pools])
                estimate = cost.add(estimate, *(p.estimate() for p in pools))
                options.append(LayerOption(folding, cycles,
                                           cost.device_logic_cells(estimate, family), estimate))
    options.sort(key=lambda option: (option.cycles, option.logic_cells))
    return options


def most_pe_per_requantizer(layer, pe, simd):
    """The most PEs that may share each requantizer of ``layer`` folded ``pe`` x ``simd``:
    the largest divisor of ``PE`` that is at most ``SF`` (1 for a logits layer)."""
    if layer.is_logits:
        return 1
    synapse_fold = layer.window_size // simd
    return max(share for share in _divisors(pe) if share <= synapse_fold)


def _table_choices(layer, pe, simd, lut_ram, share=1):
    """``Folding.tables`` values worth pricing: None (the default rule) and, when the MVU's
    table of constants (with ``share`` PEs per requantizer) has at least
    :data:`~wrpn_rtl.hardware.memories.CHOSEN_BLOCK_ROM_MIN_DEPTH` rows (and, with
    ``lut_ram``, more than :data:`~wrpn_rtl.hardware.memories.LUT_ROM_MAX_DEPTH`), the place
    the default rule did not choose."""
    mvu = MatrixVectorGeometry(layer, pe=pe, simd=simd, replayed=True, lut_ram=lut_ram,
                               pe_per_requantizer=share)
    if (mvu.table_rows < CHOSEN_BLOCK_ROM_MIN_DEPTH
            or (lut_ram and mvu.table_rows <= LUT_ROM_MAX_DEPTH)):
        return [None]
    return [None, "logic" if mvu.memory_styles()["thresholds"] == "block" else "block"]


def _replay_choices(layer, pe, simd, window_simd, family):
    """``Folding.replay`` values worth pricing: None (the default rule) and, on iCE40, where
    the layer has a vector replay, the place the default rule did not choose (a shallow,
    wide buffer is a flip-flop and a multiplexer per bit there, or a few block RAMs).

    Not on ECP5: there a shallow buffer can sit in LUT RAM, and the block-RAM replay made
    very wide designs cheapest in the estimate (conv2 at PE 4 x SIMD 144, a 576-bit operand
    into 144-leaf adder trees), which placed at 71.7 MHz in 16,624 comb cells (estimate
    14,183) and did not route in 15 minutes once its weights were read from LUT ROMs; the
    PE 32 x SIMD 16 design of the same cycles placed at 82.7-91.0 MHz on three seeds."""
    if family != "ice40":
        return [None]
    if isinstance(layer, QuantDense):
        replay = replay_for(MatrixVectorGeometry(layer, pe=pe, simd=simd, replayed=True))
    else:
        replay = dict(ConvGeometry(layer, pe=pe, simd=simd, window_simd=window_simd).parts
                      ).get("replay")
    if replay is None:
        return [None]
    return [None, "logic" if replay.memory_style() == "block" else "block"]


def _window_choices(layer, simd):
    """The window words a convolution with MVU width ``simd`` may read: ``gcd(SIMD, C_in)``
    codes from the line buffer, and whole windows from a register window where the map is
    small enough (:data:`~wrpn_rtl.hardware.register_window.REGISTER_WINDOW_MAX_BITS`) and
    the MVU takes whole windows or a divisor of them."""
    choices = [math.gcd(simd, layer.in_channels)]
    if is_register_window(layer, layer.window_size):
        chain = RegisterWindowGeometry(in_shape=layer.in_shape, kernel=layer.kernel,
                                       stride=layer.stride, padding=layer.padding,
                                       bits=layer.in_bits)
        if chain.chain_bits() <= REGISTER_WINDOW_MAX_BITS:
            choices.append(layer.window_size)
    return choices


def _with_dsp_blocks(groups, foldings, max_dsp_blocks, family):
    """``foldings`` with up to ``max_dsp_blocks`` DSP blocks handed out, greedily: each step
    takes the move that saves the most estimated logic per block, while that is at least
    :data:`DSP_MIN_SAVING` - one more DSP pair per PE of a layer (``PE`` blocks), or a
    layer's requantizers in DSP blocks (the affine form, a block per requantizer: as they
    are, or shared by the most PEs that fit)."""
    foldings = list(foldings)
    left = max_dsp_blocks

    def mvu_logic(layer, folding):
        try:
            mvu = MatrixVectorGeometry(layer, pe=folding.pe, simd=folding.simd, replayed=True,
                                       tables=folding.tables, lut_ram=folding.lut_ram,
                                       dsp_pairs=folding.dsp_pairs,
                                       dsp_requantizer=folding.dsp_requantizer,
                                       pe_per_requantizer=folding.pe_per_requantizer)
        except ValueError:
            return None
        return cost.device_logic_cells(mvu.estimate(), family)

    while True:
        best = None
        for index, (group, folding) in enumerate(zip(groups, foldings)):
            now = mvu_logic(group.layer, folding)
            moves = [dataclasses.replace(folding, dsp_pairs=folding.dsp_pairs + 1)]
            if not folding.dsp_requantizer:
                shares = sorted({folding.pe_per_requantizer,
                                 most_pe_per_requantizer(group.layer, folding.pe, folding.simd)})
                moves += [dataclasses.replace(folding, dsp_requantizer=True,
                                              pe_per_requantizer=share) for share in shares]
            for move in moves:
                blocks = move.dsp_blocks - folding.dsp_blocks
                if blocks > left:
                    continue
                after = mvu_logic(group.layer, move)
                if after is None:
                    continue
                saving = (now - after) / blocks
                if saving >= DSP_MIN_SAVING and (best is None or saving > best[0]):
                    best = (saving, index, move, blocks)
        if best is None:
            return foldings
        _, index, move, blocks = best
        foldings[index] = move
        left -= blocks


#: Cycle budgets within this fraction of the fastest design that fits a logic budget count
#: as that fast: of them, the design with the fewest logic cells wins. A design 0.7 % faster
#: in cycles (the default network's conv1 on a line buffer, 1024 against 1031 cycles) took
#: 9 % more logic cells on the UP5K and placed at a lower clock (45.5 against 46.3 MHz),
#: and the clock moves by more than 1 % between placements anyway.
CYCLES_TIE = 0.01


def _cheapest_within(options, budget):
    """The option with the fewest logic cells among those of at most ``budget`` cycles (then
    the fewest block RAMs, then the fewest cycles)."""
    fitting = [option for option in options if option.cycles <= budget]
    return (min(fitting, key=lambda option: (option.logic_cells, option.estimate["block_rams"],
                                             option.cycles)) if fitting else None)


def _design_within(per_layer, budget, rams_allowed, rams_elsewhere=0):
    """One option per layer, each of at most ``budget`` cycles, with the fewest logic cells
    whose block RAMs (with ``rams_elsewhere``) stay within ``rams_allowed``; None if none does.

    Each layer starts at its cheapest option in logic; while the block RAMs are over, the
    layer whose move to an option with fewer block RAMs costs the least logic per block RAM
    freed moves (greedy: the exact choice is a knapsack, and a few layers with two table
    places each are far from where greed goes wrong)."""
    chosen = [_cheapest_within(options, budget) for options in per_layer]
    if None in chosen:
        return None

    def rams(option):
        return option.estimate["block_rams"]

    while rams_elsewhere + sum(rams(option) for option in chosen) > rams_allowed:
        moves = [((option.logic_cells - current.logic_cells) / (rams(current) - rams(option)),
                  index, option)
                 for index, (options, current) in enumerate(zip(per_layer, chosen))
                 for option in options
                 if option.cycles <= budget and rams(option) < rams(current)]
        if not moves:
            return None
        _, index, option = min(moves, key=lambda move: move[:2])
        chosen[index] = option
    return chosen


def choose_foldings(network, *, target_cycles=None, max_logic_cells=None, max_block_rams=None,
                    max_dsp_blocks=0, family="ice40"):
    """Balanced per-layer foldings for a cycle budget, or the fastest within a logic budget.

    Parameters
    ----------
    network : QuantizedNetwork
    target_cycles : int, optional
        Cycles per image every layer must meet.
    max_logic_cells : int, optional
        Estimated logic the whole accelerator may take (exactly one of the two), counted for
        ``family`` (iCE40 logic cells, ECP5 LUT4s).
    max_block_rams : int, optional
        The 4-kbit block RAMs the design may take (default: no limit). Within it, each
        layer's table of constants goes to block RAM wherever that saves logic.
    max_dsp_blocks : int
        Hard multipliers the design may take, as DSP pairs or requantizer multipliers
        (default 0: none; see the module docstring).
    family : str
        The device family the design is priced for ("ice40", "ecp5" or "asic").

    Returns
    -------
    list of Folding
        One per Conv/Dense layer.

    Raises
    ------
    ValueError
        Neither or both budgets given, or a budget no folding can meet (the message names the
        best the network allows).
    """
    if not isinstance(network, QuantizedNetwork):
        raise TypeError(f"network must be a golden QuantizedNetwork, not {network!r}")
    if (target_cycles is None) == (max_logic_cells is None):
        raise ValueError("give exactly one of target_cycles and max_logic_cells")
    if isinstance(max_dsp_blocks, bool) or not isinstance(max_dsp_blocks, int) \
            or max_dsp_blocks < 0:
        raise ValueError(f"max_dsp_blocks must be a non-negative integer, not "
                         f"{max_dsp_blocks!r}")
    height, width, channels = network.input_shape
    leading, groups = group_layers(network)
    leading_pools = _pool_stages(leading, lanes=1, bits=network.input_bits)
    # one image code per input word, and the pools that read the image stream
    floor = max([height * width * channels] + [p.cycles_per_frame for p in leading_pools])
    per_layer = [layer_options(group.layer, group.fused_pool, group.trailing_pools,
                               family=family) for group in groups]
    fastest = max([floor] + [options[0].cycles for options in per_layer])
    leading_cost = cost.add(cost.ZERO, *(p.estimate() for p in leading_pools))
    leading_rams = leading_cost["block_rams"]
    rams_allowed = float("inf") if max_block_rams is None else max_block_rams
    if target_cycles is not None:
        if not isinstance(target_cycles, int) or target_cycles < fastest:
            raise ValueError(f"target_cycles must be an integer >= {fastest} (the fewest cycles "
                             f"per image this network can take), not {target_cycles!r}")
        chosen = _design_within(per_layer, target_cycles, rams_allowed, leading_rams)
        if chosen is None:
            raise ValueError(f"target_cycles must allow a design within {max_block_rams} block "
                             f"RAMs, not {target_cycles!r} (its layers need more)")
        return _with_block_queues(network, _with_dsp_blocks(
            groups, [option.folding for option in chosen], max_dsp_blocks, family),
            max_block_rams, family)

    budgets = sorted({fastest} | {option.cycles for options in per_layer for option in options
                                  if option.cycles >= fastest})
    fitting = []        # (logic cells, budget, foldings) of designs within the logic budget
    for budget in budgets:
        if fitting and budget > fitting[0][1] * (1 + CYCLES_TIE):
            break
        chosen = _design_within(per_layer, budget, rams_allowed, leading_rams)
        if chosen is None:
            continue
        # The layers were priced apart; the design is priced whole, as it will be built (its
        # DSP blocks and block-RAM queues handed out) and with the converters between the
        # layers (their cost depends on both neighbours' foldings), as its manifest will
        # state it. (Priced before the queue handout, the default network's 768-cycle UP5K
        # design, 3820 cells with its queues in block RAM, was over the 3960-cell budget.)
        foldings = _with_block_queues(network, _with_dsp_blocks(
            groups, [option.folding for option in chosen], max_dsp_blocks, family),
            max_block_rams, family)
        cells = _design_logic_cells(network, foldings, family)
        if cells <= max_logic_cells:
            fitting.append((cells, budget, foldings))
    if fitting:
        return min(fitting, key=lambda design: design[:2])[2]
    slowest = [_cheapest_within(options, budgets[-1]) for options in per_layer]
    least = _design_logic_cells(network, _with_dsp_blocks(
        groups, [option.folding for option in slowest], max_dsp_blocks, family), family)
    if least <= max_logic_cells:
        raise BudgetTooSmall(f"max_block_rams must be at least the block RAMs of a design "
                             f"within {max_logic_cells} logic cells, not {max_block_rams!r}",
                             resource="block_rams", least_logic_cells=least)
    raise BudgetTooSmall(f"max_logic_cells must be at least {least} (the estimate of the "
                         f"smallest design this network allows), not {max_logic_cells!r}",
                         resource="logic_cells", least_logic_cells=least)


class BudgetTooSmall(ValueError):
    """No design fits a logic budget: ``resource`` ("logic_cells" or "block_rams") ran out;
    ``least_logic_cells`` is the estimate of the smallest design the network allows."""

    def __init__(self, message, *, resource, least_logic_cells):
        super().__init__(message)
        self.resource, self.least_logic_cells = resource, least_logic_cells


#: Block RAMs the queue handout leaves free, a margin for what a device holds beside the
#: accelerator. A board build measures its host link's own (on the icebreaker with 32
#: self-test images: 5, the frame buffer and the self-test ROM) and folds with them taken off
#: the budget (:func:`wrpn_rtl.job.design.choose`'s ``reserve``), so one is kept (two were,
#: before board builds subtracted their link's; with two the default UP5K design's conv2
#: queue, 61 cells in the estimate, stayed in flip-flops).
QUEUE_SPARE_RAMS = 1

#: The fewest logic cells (of the device family) a block-RAM output queue must save over
#: the flip-flop one to be given a block RAM.
BLOCK_QUEUE_MIN_SAVING = 32

#: Device families whose MVU output queues may go to block RAM: iCE40 has no LUT RAM, so a
#: flip-flop queue there is a logic cell per stored bit.
BLOCK_QUEUE_FAMILIES = ("ice40",)


def _with_block_queues(network, foldings, max_block_rams, family):
    """``foldings`` with the MVU output queues that save the most logic moved to block RAM
    (``queue="block"``), one at a time, while the design's block RAMs stay within
    ``max_block_rams`` less :data:`QUEUE_SPARE_RAMS`; only on :data:`BLOCK_QUEUE_FAMILIES`
    and for queues saving at least :data:`BLOCK_QUEUE_MIN_SAVING` logic cells."""
    if family not in BLOCK_QUEUE_FAMILIES or max_block_rams is None:
        return foldings
    foldings = list(foldings)
    base = _design_estimate(network, foldings, family)
    rams = base["block_rams"]
    moves = []
    for index, folding in enumerate(foldings):
        if folding.queue == "block":
            continue
        moved = foldings[:index] + [dataclasses.replace(folding, queue="block")] \
            + foldings[index + 1:]
        after = _design_estimate(network, moved, family)
        saving = base["device_logic_cells"] - after["device_logic_cells"]
        if saving >= BLOCK_QUEUE_MIN_SAVING:
            moves.append((saving, index, after["block_rams"] - rams))
    for saving, index, more_rams in sorted(moves, reverse=True):
        if rams + more_rams <= max_block_rams - QUEUE_SPARE_RAMS:
            foldings[index] = dataclasses.replace(foldings[index], queue="block")
            rams += more_rams
    return foldings


def _design_estimate(network, foldings, family):
    """The whole design's estimate for ``family`` (see :func:`_design_logic_cells`)."""
    from wrpn_rtl.hardware.accelerator import Accelerator
    design = Accelerator(network, foldings=foldings)
    design._MustUse__silence = True                # priced, never elaborated
    return design.estimate(family)


def _design_logic_cells(network, foldings, family):
    """The whole design's estimated logic for ``family``, every stage priced with its
    neighbours known (:meth:`~wrpn_rtl.hardware.accelerator.Accelerator.estimate`)."""
    return _design_estimate(network, foldings, family)["device_logic_cells"]


def read_foldings(path, network):
    """Foldings from a JSON file ``{"foldings": [{"pe": .., "simd": .., "window_simd": ..}]}``.

    Raises
    ------
    ValueError
        A file that is not such JSON, or a count that does not match the network (the values
        themselves are checked when the accelerator is built).
    """
    path = Path(path)
    try:
        entries = json.loads(path.read_text())["foldings"]
        foldings = [Folding(pe=entry["pe"], simd=entry["simd"],
                            window_simd=entry.get("window_simd"), tables=entry.get("tables"),
                            replay=entry.get("replay"), lut_ram=entry.get("lut_ram", False),
                            dsp_pairs=entry.get("dsp_pairs", 0),
                            dsp_requantizer=entry.get("dsp_requantizer", False),
                            queue=entry.get("queue"),
                            pe_per_requantizer=entry.get("pe_per_requantizer", 1))
                    for entry in entries]
    except FileNotFoundError:
        raise ValueError(f"folding file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"folding file {str(path)!r} must be a JSON file, not a folder") \
            from None
    except OSError as error:
        raise ValueError(f"folding file {str(path)!r} cannot be read: {error.strerror}") \
            from None
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"folding file {str(path)!r} must be JSON "
                         f'{{"foldings": [{{"pe": N, "simd": N}}, ...]}}, not readable '
                         f"as that ({type(error).__name__}: {error})") from None
    groups = group_layers(network)[1]
    if len(foldings) != len(groups):
        raise ValueError(f"folding file {str(path)!r} must give one folding per Conv/Dense "
                         f"layer ({len(groups)}), not {len(foldings)}")
    for folding, group in zip(foldings, groups):
        for name in ("pe", "simd"):
            value = getattr(folding, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"folding file {str(path)!r}: {group.layer.name}: {name} must "
                                 f"be a positive integer, not {value!r}")
        if not isinstance(folding.lut_ram, bool):
            raise ValueError(f"folding file {str(path)!r}: {group.layer.name}: lut_ram must "
                             f"be true or false, not {folding.lut_ram!r}")
        if isinstance(folding.dsp_pairs, bool) or not isinstance(folding.dsp_pairs, int) \
                or folding.dsp_pairs < 0:
            raise ValueError(f"folding file {str(path)!r}: {group.layer.name}: dsp_pairs must "
                             f"be a non-negative integer, not {folding.dsp_pairs!r}")
        if not isinstance(folding.dsp_requantizer, bool):
            raise ValueError(f"folding file {str(path)!r}: {group.layer.name}: "
                             f"dsp_requantizer must be true or false, not "
                             f"{folding.dsp_requantizer!r}")
        share = folding.pe_per_requantizer
        if (isinstance(share, bool) or not isinstance(share, int) or share < 1
                or folding.pe % share):
            raise ValueError(f"folding file {str(path)!r}: {group.layer.name}: "
                             f"pe_per_requantizer must be a positive divisor of pe "
                             f"{folding.pe!r}, not {share!r}")
    return foldings


def foldings_to_json(foldings):
    """The folding file's form of ``foldings`` (:func:`folding_entry` each)."""
    return {"foldings": [folding_entry(f) for f in foldings]}


def folding_entry(folding):
    """One folding as a folding file (and the manifest) writes it: ``pe``, ``simd``,
    ``window_simd``, and ``tables``, ``replay``, ``lut_ram``, ``dsp_pairs``,
    ``dsp_requantizer``, ``queue`` and ``pe_per_requantizer`` only where set."""
    return {"pe": folding.pe, "simd": folding.simd, "window_simd": folding.window_simd,
            **({"tables": folding.tables} if folding.tables else {}),
            **({"replay": folding.replay} if folding.replay else {}),
            **({"lut_ram": True} if folding.lut_ram else {}),
            **({"dsp_pairs": folding.dsp_pairs} if folding.dsp_pairs else {}),
            **({"dsp_requantizer": True} if folding.dsp_requantizer else {}),
            **({"queue": folding.queue} if folding.queue else {}),
            **({"pe_per_requantizer": folding.pe_per_requantizer}
               if folding.pe_per_requantizer != 1 else {})}
