"""The steps of a sweep, as they run in a worker process (local or on a Dask cluster).

Each step is a pure function of JSON arguments and input files, run by :func:`run_step`:
it works in a temporary folder of its own and returns its result (a JSON object) and the
files it made as bytes, so workers need no file system shared with the sweep; the sweep
stores both in its cache (:mod:`~wrpn_rtl.synth.sweep_cache`).

A failure that belongs to the point (a design that does not fit, precision a layer does not
support) is a result, ``{"failure": reason}``: it is cached like any other, since running it
again gives the same answer. Anything else raises and is reported without being cached.

=============  =========================================  ======================================
kind           arguments                                  result (+ files)
=============  =========================================  ======================================
``train``      width, wbits, abits, seed, epochs          accuracy, golden check (+ model.npz)
``float``      width, seed, epochs                        full-precision accuracy
``requantize`` wbits, abits (input: source.npz)           as ``train`` (+ model.npz)
``build``      target, target_cycles (input: model.npz)   the design (foldings, cycles,
                                                          estimate) and its synthesis (logic,
                                                          FF, BRAM, DSP, Fmax, images/s), the
                                                          attempts nextpnr could not place
                                                          (+ model.npz, wrpn_accel.v,
                                                          manifest.json)
``check``      target, images, seed (input: the           Verilator against golden
               design's files)
=============  =========================================  ======================================
"""
from pathlib import Path
import tempfile
import time

__all__ = ["run_step", "DESIGN_FILES", "STEPS"]

#: The files of a design folder that ``build`` makes and ``check`` receives.
DESIGN_FILES = ("model.npz", "wrpn_accel.v", "manifest.json")


def run_step(kind, args, inputs):
    """Run one step in a temporary folder.

    Parameters
    ----------
    kind : str
        A key of :data:`STEPS`.
    args : dict
        The step's JSON arguments.
    inputs : dict
        ``{file name: bytes}`` the step reads.

    Returns
    -------
    dict
        ``{"result": dict, "files": {name: bytes}, "seconds": float}``.
    """
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"wrpn-sweep-{kind}-") as work:
        work = Path(work)
        for name, data in inputs.items():
            (work / name).write_bytes(data)
        result, files = STEPS[kind](work, **args)
    return {"result": result, "files": files, "seconds": round(time.monotonic() - started, 2)}


def _network_entry(network):
    """Accuracy and golden check of a trained or re-quantized network on the digits test set
    (integer and float quantized paths must agree), and its memory as WRPN counts it."""
    from wrpn_rtl.job.network import golden_summary
    check = golden_summary(network)
    return {"test_accuracy": check["accuracy"],
            "integer_vs_float_mismatches": check["integer_vs_float_mismatches"],
            "memory": network_memory(network)}


def network_memory(network):
    """The memory a network needs, as WRPN counts it.

    Returns
    -------
    dict
        ``weight_bits``: every weight code's bits, all layers; ``largest_fmap_bits``: the
        largest input plus output feature map of one layer, in bits (logits counted at their
        accumulator width); ``layers``: both per layer.
    """
    import math
    layers = []
    for layer in network.layers:
        out_bits = layer.out_bits
        if out_bits is None:                       # logits: the accumulator
            out_bits = layer.acc_shape[0]
        weights = getattr(layer, "weights", None)
        layers.append({"layer": layer.name,
                       "weight_bits": 0 if weights is None else int(weights.size
                                                                     * layer.weight_bits),
                       "fmap_bits": int(math.prod(layer.in_shape) * layer.in_bits
                                        + math.prod(layer.out_shape) * out_bits)})
    return {"weight_bits": sum(entry["weight_bits"] for entry in layers),
            "largest_fmap_bits": max(entry["fmap_bits"] for entry in layers),
            "layers": layers}


def _train(work, *, width, wbits, abits, seed, epochs):
    from wrpn_rtl.golden import network_bytes
    from wrpn_rtl.golden.train import TrainConfig, load_digits_split, train
    from wrpn_rtl.golden.zoo import digits_cnn
    try:
        spec = digits_cnn(width=width, weight_bits=wbits, act_bits=abits)
    except (TypeError, ValueError) as error:
        return {"failure": f"w{wbits}a{abits} x{width:g}: {error}"}, {}
    x_train, y_train, _, _ = load_digits_split()
    trained = train(spec, x_train, y_train, TrainConfig(epochs=epochs, seed=seed))
    trained.network.metadata.update(name="digits_cnn", wbits=wbits, abits=abits,
                                    width=width, seed=seed)
    return _network_entry(trained.network), {
        "model.npz": network_bytes(trained.network, float_model=(spec, trained.params))}


def _float(work, *, width, seed, epochs):
    """Full precision at ``width`` (float weights, ReLU1 activations), as ``train`` trains
    the baseline that WRPN widens."""
    from wrpn_rtl.golden.train import (TrainConfig, float_accuracy, load_digits_split,
                                       train)
    from wrpn_rtl.golden.zoo import digits_cnn
    x_train, y_train, x_test, y_test = load_digits_split()
    spec = digits_cnn(width=width)
    trained = train(spec, x_train, y_train, TrainConfig(epochs=epochs, seed=seed,
                                                        float_model=True, learning_rate=0.01))
    return {"test_accuracy": float_accuracy(spec, trained.params, x_test, y_test)}, {}


def _requantize(work, *, wbits, abits):
    """A model file's float parameters at other bits (no training)."""
    from wrpn_rtl.golden import network_bytes
    from wrpn_rtl.job.common import StepError
    from wrpn_rtl.job.network import prepare_network
    try:
        prepared = prepare_network(work / "source.npz", wbits=wbits, abits=abits)
    except StepError as error:
        return {"failure": str(error).replace(str(work / "source.npz"), "--model")}, {}
    entry = _network_entry(prepared.network)
    # the full-precision network that ``wrpn-rtl train`` trained beside it (its QAT float
    # parameters, run unquantized, are not a full-precision network)
    entry["float_test_accuracy"] = prepared.network.metadata.get("float_test_accuracy")
    return entry, {"model.npz": network_bytes(prepared.network,
                                              float_model=prepared.float_model)}


#: nextpnr's time limit in a sweep, per device family: a UP5K design places in about a
#: minute or stalls (one at 74 % of the UP5K ran 15 minutes without finishing; in the first
#: full sweep every UP5K build that finished did within 95 s, Yosys included). ECP5 designs
#: planned for half the device (:data:`DEFAULT_FILL <wrpn_rtl.synth.sweep.DEFAULT_FILL>`)
#: place with HeAP and its timing weight (:data:`~wrpn_rtl.synth.flow.TIMING_PLACER_FILL`),
#: which gives up early on a seed it cannot legalize: the default digits network's
#: half-device design (16x3, 8x48, 1x8; 15,004 comb cells) took nextpnr 466 s beside a test
#: run on both cores, past the 420 s this limit had when the static placer took 1-3 minutes.
#: A run past it is a failed placement: the design is built again smaller.
NEXTPNR_TIMEOUT_S = {"ice40": 180, "ecp5": 900}
#: A design nextpnr cannot place is built again within this share of its estimated logic,
#: at most ``BUILD_ATTEMPTS`` times in all.
SHRINK = 0.9
BUILD_ATTEMPTS = 3


def _build(work, *, target, target_cycles=None, fill=None, label):
    """The design for ``target`` (the fastest within ``fill`` of the device's logic, or
    balanced for ``target_cycles`` cycles per image) and its synthesis. A design that nextpnr cannot place
    (it does not fit, or its placer stalls) is built again smaller, within :data:`SHRINK` of
    its estimated logic; every attempt is recorded."""
    from wrpn_rtl.golden import ModelFileError, load_float_model, load_network
    from wrpn_rtl.job.common import StepError
    from wrpn_rtl.job.design import generate
    from wrpn_rtl.job.network import Prepared
    from wrpn_rtl.job.synthesize import PlacementFailed, synthesize
    from wrpn_rtl.synth.flow import TARGETS
    try:
        network = load_network(work / "model.npz")
        float_model = load_float_model(work / "model.npz")
    except ModelFileError as error:
        return {"failure": str(error)}, {}
    prepared = Prepared(network, f"sweep point {label}", None, None, None, float_model)
    family = TARGETS[target].family
    attempts, max_lc = [], None
    for attempt in range(BUILD_ATTEMPTS):
        out = work / f"design{attempt}"
        try:
            accelerator, generated = generate(
                prepared, out, target=target, target_cycles=target_cycles, max_lc=max_lc,
                fill=fill if max_lc is None else None)
        except StepError as error:
            return {"failure": str(error), "attempts": attempts}, {}
        design = {key: generated[key] for key in ("folding_rule", "foldings",
                                                  "cycles_per_image", "estimate",
                                                  "manifest_sha256")}
        try:
            row = synthesize(accelerator, out, target, generated=generated, breakdown=False,
                             nextpnr_timeout_s=NEXTPNR_TIMEOUT_S.get(family))
        except PlacementFailed as error:
            attempts.append(dict(design, failure=_plain(error, work)))
            if target_cycles is not None:
                break
            max_lc = int(generated["estimate"]["device_logic_cells"] * SHRINK)
            continue
        except StepError as error:
            return {"failure": _plain(error, work), "attempts": attempts}, {}
        for key in ("design", "foldings", "cycles_per_image", "estimate", "folded_for"):
            row.pop(key, None)
        return ({"design": design, "synth": row, "attempts": attempts},
                {name: (out / name).read_bytes() for name in DESIGN_FILES})
    return {"failure": f"no design placed in {len(attempts)} attempts; the last: "
                       f"{attempts[-1]['failure']}", "attempts": attempts}, {}


def _plain(error, work):
    """A step's error message without its temporary folder."""
    return str(error).replace(str(work), "<work>")


def _check(work, *, target, images, seed):
    """A few test images through the Verilog on Verilator, every output against golden
    (``target``: the device the design was folded for; it only names the step)."""
    from wrpn_rtl.job.design import load_design
    from wrpn_rtl.job.network import sample_images
    from wrpn_rtl.job.simulate import simulate
    accelerator, generated = load_design(work)
    codes, labels = sample_images(accelerator.network, images, seed=seed)
    summary = simulate(accelerator, generated["verilog"], images=codes, labels=labels,
                       simulator="verilator", work_dir=work / "sim", seed=seed)
    keep = ("images", "mismatches", "timed_out", "cycles_per_image",
            "expected_cycles_per_image", "latency_cycles", "accuracy", "golden_accuracy",
            "simulated_cycles", "build_seconds", "run_seconds")
    result = {key: summary.get(key) for key in keep}
    result["bit_exact"] = summary["mismatches"] == 0 and not summary.get("timed_out")
    if not result["bit_exact"]:
        result["mismatched_images"] = summary["mismatched_images"][:5]
    return result, {}


#: Every kind of step: ``function(work_folder, **args) -> (result, files)``.
STEPS = {"train": _train, "float": _float, "requantize": _requantize, "build": _build,
         "check": _check}
