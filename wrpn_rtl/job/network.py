"""The network a run works on: a model file or the built-in default, re-quantized or re-trained
at the asked precision and width; sample inputs; the golden check of both golden paths."""
from dataclasses import dataclass, replace
from pathlib import Path
import time

import numpy as np

from wrpn_rtl.job.common import StepError, quiet

__all__ = ["Prepared", "prepare_network", "load_model_file", "train_digits", "sample_inputs",
           "sample_images", "read_inputs", "load_npy",
           "golden_check", "golden_summary", "golden_accuracy", "reads_digits", "DIGITS_SHAPE",
           "GOLDEN_IMAGES"]

#: The input of the bundled digits (the only labelled data set here).
DIGITS_SHAPE = (8, 8, 1)
#: Images the golden check runs for a model without labelled data (the digits have 360).
GOLDEN_IMAGES = 256


def reads_digits(shape):
    """True when a network of input ``shape`` reads the bundled digits (labels known)."""
    return tuple(shape) == DIGITS_SHAPE


@dataclass
class Prepared:
    """The network a run works on, and where it came from."""

    network: object              # QuantizedNetwork
    source: str                  # "built-in default", a path, or "re-trained ..."
    weight_bits: object
    act_bits: object
    width: object
    float_model: object = None   # (NetworkSpec, [LinearParams]) when known


def _model_bits(network):
    from wrpn_rtl.golden.layers import QuantLinear
    linear = [l for l in network.layers if isinstance(l, QuantLinear)]
    weights = {l.weight_bits for l in linear}
    acts = {l.out_bits for l in linear if not l.is_logits}
    return (weights.pop() if len(weights) == 1 else None,
            acts.pop() if len(acts) == 1 else None)


def prepare_network(model=None, *, wbits=None, abits=None, width=None, train=False, epochs=40,
                    seed=0, progress=quiet):
    """Load ``model`` (default: the built-in network) at the asked precision and width.

    Bits that differ from the model's are reached by re-quantizing its float parameters
    (stored in model files written by ``wrpn-rtl train``), or by re-training when ``train``;
    a different width always needs ``train``.

    Raises
    ------
    StepError
        An unreadable model file, or a change the model cannot make without re-training.
    """
    from wrpn_rtl.golden import quantize_network
    from wrpn_rtl.golden.network import with_bits
    from wrpn_rtl.golden.zoo import default_model_path
    path = Path(model) if model is not None else default_model_path()
    source = str(path) if model is not None else "built-in default (digits CNN)"
    network, float_model = load_model_file(path, progress=progress)
    model_w, model_a = _model_bits(network)
    model_width = float_model[0].width if float_model else network.metadata.get("width")
    want_w = model_w if wbits is None else wbits
    want_a = model_a if abits is None else abits
    want_width = model_width if width is None else width
    if train:
        if float_model is None:
            raise StepError(f"--train needs the float network the model came from; "
                            f"{source} has none (write it with wrpn-rtl train)")
        try:
            spec = with_bits(replace(float_model[0], width=want_width), weight_bits=want_w,
                             act_bits=want_a)
        except (TypeError, ValueError) as error:
            raise StepError(str(error)) from None
        network, float_model = train_digits(spec, epochs=epochs, seed=seed, progress=progress)
        return Prepared(network, f"re-trained from {source}", want_w, want_a, want_width,
                        float_model)
    if width is not None and width != model_width:
        raise StepError(f"--width {width:g} differs from the model's width "
                        f"{model_width if model_width is not None else 'unknown'}: a different "
                        f"width needs re-training; add --train")
    if (want_w, want_a) != (model_w, model_a):
        if float_model is None:
            raise StepError(f"--wbits/--abits {want_w}/{want_a} differ from the model's "
                            f"{model_w}/{model_a} and {source} keeps no float parameters to "
                            f"re-quantize from; add --train")
        try:
            spec = with_bits(float_model[0], weight_bits=want_w, act_bits=want_a)
            network = quantize_network(spec, float_model[1], metadata=dict(
                network.metadata, wbits=want_w, abits=want_a, requantized_from=[model_w,
                                                                                  model_a]))
        except (TypeError, ValueError) as error:
            raise StepError(f"cannot re-quantize to w{want_w}a{want_a}: {error}") from None
        float_model = (spec, float_model[1])
        source = f"{source}, re-quantized to w{want_w}a{want_a} (not re-trained)"
    return Prepared(network, source, want_w, want_a, want_width, float_model)


def load_model_file(path, *, progress=quiet):
    """A model file: a wrpn-rtl ``.npz``, or a QONNX ``.onnx`` imported on the way in.

    Returns
    -------
    (QuantizedNetwork, float_model or None)
        ``float_model`` (for re-quantizing) only from ``.npz`` files written by ``train``.

    Raises
    ------
    StepError
        The file is unreadable, or the QONNX graph cannot be imported (the reason named).
    """
    from wrpn_rtl.golden import ModelFileError, load_float_model, load_network
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        from wrpn_rtl.interchange import InterchangeError
        from wrpn_rtl.interchange.qonnx_import import import_qonnx
        try:
            imported = import_qonnx(path)
        except InterchangeError as error:
            raise StepError(str(error)) from None
        for note in imported.notes:
            progress(f"  import: {note}")
        return imported.network, None
    try:
        return load_network(path), load_float_model(path)
    except ModelFileError as error:
        raise StepError(str(error)) from None


def train_digits(spec, *, epochs=40, seed=0, progress=quiet):
    """QAT-train ``spec`` on the bundled digits; also the full-precision baseline.

    Returns
    -------
    (QuantizedNetwork, (NetworkSpec, [LinearParams]))
        The network's metadata holds ``test_accuracy``, ``float_test_accuracy`` (the same
        network in full precision) and ``float_width1_test_accuracy`` (full precision at width
        1: the baseline WRPN widens).
    """
    from wrpn_rtl.golden.train import TrainConfig, accuracy, float_accuracy, load_digits_split, train
    if not reads_digits(spec.input_shape):
        raise StepError(f"training uses the 8x8 digits: the network input must be {DIGITS_SHAPE}, "
                        f"not {tuple(spec.input_shape)}")
    x_train, y_train, x_test, y_test = load_digits_split()
    started = time.monotonic()

    def report(epoch, loss, acc):
        if (epoch + 1) % 10 == 0 or epoch == 0:
            progress(f"  epoch {epoch + 1:3d}/{epochs}: loss {loss:.3f}, "
                     f"train accuracy {acc:.3f}")

    weights, acts = _spec_bits(spec)
    progress(f"training the w{weights}a{acts} x{spec.width:g} WRPN digits CNN "
             f"({len(x_train)} train / {len(x_test)} test images, seed {seed})")
    result = train(spec, x_train, y_train, TrainConfig(epochs=epochs, seed=seed),
                   progress=report)
    network = result.network
    network.metadata.update(name="digits_cnn", wbits=weights, abits=acts,
                            test_accuracy=accuracy(network, x_test, y_test))
    progress(f"  trained in {time.monotonic() - started:.1f} s; training the full-precision "
             f"baseline")
    baseline = train(spec, x_train, y_train, TrainConfig(epochs=epochs, seed=seed,
                                                         float_model=True, learning_rate=0.01))
    network.metadata["float_test_accuracy"] = float_accuracy(spec, baseline.params, x_test,
                                                             y_test)
    narrow = replace(spec, width=1.0)
    if spec.width != 1.0:
        progress("  training the full-precision baseline at width 1")
        baseline = train(narrow, x_train, y_train, TrainConfig(
            epochs=epochs, seed=seed, float_model=True, learning_rate=0.01))
    network.metadata["float_width1_test_accuracy"] = float_accuracy(narrow, baseline.params,
                                                                    x_test, y_test)
    return network, (spec, result.params)


def _spec_bits(spec):
    from wrpn_rtl.golden.network import Conv, Dense
    linear = [l for l in spec.layers if isinstance(l, (Conv, Dense))]
    return linear[0].weight_bits, next((l.out_bits for l in linear if l.out_bits), None)


def sample_inputs(network, count, *, seed=0):
    """``count`` float inputs for ``network``, and their labels.

    The digits test split (images in [0, 1]) for an 8x8x1 network (labels known). Otherwise
    (labels None) the extremes first - all lowest codes and all highest codes - then seeded
    random inputs over the full code range, as values on the input code grid (``code / (2**
    input_bits - 1)``, or the input quantizer's value of the code), so quantizing gives the
    codes back.
    """
    if reads_digits(network.input_shape):
        from wrpn_rtl.golden.train import load_digits_split
        _, _, x_test, y_test = load_digits_split()
        count = min(count, len(x_test))
        return x_test[:count], y_test[:count]
    from wrpn_rtl.golden.quant import activation_levels
    quantizer = network.input_quantizer
    if quantizer is None:
        low, top = 0, activation_levels(network.input_bits)
    else:
        low, top = (v + quantizer.zero_code for v in quantizer.q_range)
    codes = np.random.default_rng(seed).integers(low, top + 1, (count,) + network.input_shape)
    codes[:1] = low
    codes[1:2] = top
    if quantizer is not None:
        return quantizer.inputs_for(codes), None
    return codes / top, None


def sample_images(network, count, *, seed=0):
    """:func:`sample_inputs` as input codes: ``(codes, labels)``."""
    images, labels = sample_inputs(network, count, seed=seed)
    return network.quantize_input(images), labels


def golden_check(network, images, labels=None):
    """Both golden paths on float ``images``: accuracy (None without labels) and mismatches
    between the integer and the float path per layer (all must be 0)."""
    from wrpn_rtl.golden import execute, execute_float
    ref = execute(network, network.quantize_input(images))
    flt = execute_float(network, images)
    by_layer = {}
    for layer, a, b in zip(network.layers, ref.outputs, flt.outputs):
        if getattr(layer, "is_logits", False):
            a = a * layer.output.scale
        by_layer[layer.name] = int(np.count_nonzero(a != b))
    class_mismatches = int(np.count_nonzero(ref.classes != flt.classes))

    def accuracy(classes):
        return None if labels is None else float((classes == labels).mean())
    return {"images": int(len(images)), "labelled": labels is not None,
            "accuracy": accuracy(ref.classes), "float_path_accuracy": accuracy(flt.classes),
            "full_precision_accuracy": network.metadata.get("float_test_accuracy"),
            "full_precision_width1_accuracy": network.metadata.get(
                "float_width1_test_accuracy"),
            "mismatches_by_layer": by_layer, "class_mismatches": class_mismatches,
            "integer_vs_float_mismatches": sum(by_layer.values()) + class_mismatches}


def golden_summary(network, *, seed=0, progress=quiet):
    """:func:`golden_check` on the digits test set, or for any other input on
    :data:`GOLDEN_IMAGES` sample images (extremes first; no accuracy)."""
    count = 10 ** 6 if reads_digits(network.input_shape) else GOLDEN_IMAGES
    images, labels = sample_inputs(network, count, seed=seed)
    what = "test images" if labels is not None else "sample images (no labels)"
    progress(f"golden model: integer and float quantized paths on {len(images)} {what}")
    summary = golden_check(network, images, labels)
    progress((f"  accuracy {summary['accuracy']:.4f}; " if labels is not None else "  ")
             + f"integer vs float mismatches {summary['integer_vs_float_mismatches']}")
    return summary


def golden_accuracy(network):
    """Integer golden accuracy on the digits test set (None for other inputs). An imported
    network's inputs need not be the digits in [0, 1]: its accuracy is the one ``import``
    measured on the user's labelled inputs (None if it was given none)."""
    if "imported_from" in network.metadata:
        return network.metadata.get("test_accuracy")
    if not reads_digits(network.input_shape):
        return None
    from wrpn_rtl.golden import execute
    images, labels = sample_inputs(network, 10 ** 6)
    return float((execute(network, network.quantize_input(images)).classes == labels).mean())


def read_inputs(network, path, labels_path=None, *, flag="IMAGES"):
    """A user's inputs from ``.npy`` files: ``(codes (N, H, W, C), labels or None)``.

    The array holds either integer input codes (of the network's input bits) or float values,
    which the model's own input rule quantizes (an imported model's input quantizer; WRPN's
    [0, 1] rule otherwise). Shapes: ``(N, H, W, C)``; ``(N, H, W)`` for one channel;
    ``(N, H*W*C)`` flattened in that order; or, for an imported model, its graph input's own
    layout (``(N, C, H, W)`` for PyTorch's), which is preferred where both would fit. Labels:
    ``(N,)`` integers.

    Raises
    ------
    StepError
        A file that cannot be read, or values or shapes that break those rules (named).
    """
    shape = tuple(network.input_shape)
    values = load_npy(path, flag)
    count = len(values) if values.ndim else 0
    graph_axes = getattr(network, "metadata", {}).get("input_axes")
    graph_shape = (tuple(shape["HWC".index(a)] for a in graph_axes)
                   if graph_axes and graph_axes != "F" else None)
    accepted = f"(N, {', '.join(map(str, shape))}) or (N, {int(np.prod(shape))})" + (
        f" or the graph's (N, {', '.join(map(str, graph_shape))})" if graph_shape else "")
    if values.dtype.kind not in "iuf" or values.ndim < 2 or count == 0 or \
            int(np.prod(values.shape[1:])) != int(np.prod(shape)):
        raise StepError(f"{flag} {str(path)!r} must be shaped {accepted} with N >= 1 and hold "
                        f"integer codes or float values, not {values.dtype} shaped "
                        f"{values.shape}")
    if graph_shape and values.shape[1:] == graph_shape and graph_shape != shape:
        from wrpn_rtl.interchange.qonnx_import import graph_to_golden
        values = graph_to_golden(values, graph_axes, shape)
    values = values.reshape((count,) + shape)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)):
            raise StepError(f"{flag} {str(path)!r} holds NaN or infinite values")
        codes = network.quantize_input(values.astype(np.float64))
    else:
        top = (1 << network.input_bits) - 1
        if values.min() < 0 or values.max() > top:
            raise StepError(f"{flag} {str(path)!r} holds codes from {values.min()} to "
                            f"{values.max()}; the network's {network.input_bits}-bit input "
                            f"takes 0..{top} (float values are quantized by the model's input "
                            f"rule instead)")
        codes = values.astype(np.int64)
    labels = None
    if labels_path is not None:
        labels = load_npy(labels_path, "--labels")
        if labels.dtype.kind not in "iu" or labels.shape != (count,):
            raise StepError(f"--labels {str(labels_path)!r} must hold {count} integer labels "
                            f"(one per input), not {labels.dtype} values shaped "
                            f"{labels.shape}")
    return codes, labels


def load_npy(path, flag):
    """``np.load`` of a user's ``.npy`` file (no pickles), its problems as a StepError naming
    ``flag``."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise StepError(f"{flag} {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise StepError(f"{flag} {str(path)!r} is a folder, not a .npy file") from None
    except (ValueError, OSError) as error:
        raise StepError(f"{flag} {str(path)!r} is not a readable .npy array: "
                        f"{error}") from None
