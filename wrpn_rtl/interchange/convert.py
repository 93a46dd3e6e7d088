"""``wrpn-rtl import`` and ``wrpn-rtl export``: files in, checked, files out (atomically).

Both commands check what they make before writing it: an import compares the golden network
with the graph executed by ``qonnx`` tensor by tensor (:mod:`.qonnx_check`); an export is
imported back, compared with ``qonnx``'s execution of the written graph the same way, and
compared with the original network layer by layer (:func:`network_differences`).
"""
import hashlib
import os
from pathlib import Path
import tempfile

import numpy as np

from wrpn_rtl.golden import QuantLinear, QuantMaxPool, save_network
from wrpn_rtl.job.common import quiet

from . import InterchangeError
from .qonnx_check import compare_with_qonnx, input_rule
from .qonnx_export import export_bytes
from .qonnx_import import import_qonnx

__all__ = ["check_inputs", "import_model_file", "export_model_file", "network_differences"]


def _check_destination(path, suffix, flag="--out"):
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise InterchangeError(f"{flag} must name a {suffix} file, not {str(path)!r}")
    if path.is_dir():
        raise InterchangeError(f"{flag} must name a {suffix} file, not the folder {str(path)!r}")
    folder = path.parent
    for parent in [folder, *folder.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise InterchangeError(f"{flag} must be a path that can be written, not "
                                       f"{str(path)!r}: {str(parent)!r} is a file")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise InterchangeError(f"{flag} must be a path that can be written, not "
                                       f"{str(path)!r}: {str(parent)!r} is not writable")
            break
    return path


def check_inputs(imported, count, *, seed=0):
    """Float inputs in the graph's layout for a check, and the labels of the first ones
    (None when no input has a known label).

    For an 8x8x1 input the digits test images (in [0, 1]) come first; the rest (or all, for
    any other input) are seeded: half on the input code grid over the full code range
    (extremes first), half uniform over the same range, so that the input quantizer's
    rounding is exercised too.
    """
    from wrpn_rtl.job.network import reads_digits, sample_inputs
    network = imported.network
    quantizer = input_rule(network)
    parts, labels = [], None
    if reads_digits(network.input_shape):
        images, labels = sample_inputs(network, count)
        parts.append(images)
    rest = count - sum(len(p) for p in parts)
    if rest > 0:
        rng = np.random.default_rng(seed)
        low, high = quantizer.q_range
        codes = rng.integers(low, high + 1, (rest,) + network.input_shape) + quantizer.zero_code
        codes[:1], codes[1:2] = low + quantizer.zero_code, high + quantizer.zero_code
        grid = quantizer.inputs_for(codes)
        uniform = rng.uniform((low - 0.5) * quantizer.scale, (high + 0.5) * quantizer.scale,
                              grid.shape)
        half = rest // 2
        parts.append(np.concatenate([grid[:rest - half], uniform[rest - half:]]))
    golden_inputs = np.concatenate(parts) if parts else np.zeros((0,) + network.input_shape)
    return imported.to_graph_layout(golden_inputs), labels


def _framework_accuracy(model):
    """A ``test_accuracy`` the exporting script recorded in the ONNX metadata, if any."""
    for prop in model.model.metadata_props:
        if prop.key == "test_accuracy":
            try:
                return float(prop.value)
            except ValueError:
                return None
    return None


def user_inputs(imported, inputs_path, labels_path=None):
    """A user's float inputs (``.npy``) in the graph input's layout, and labels or None.

    Accepted shapes: the graph input's own ``(N, ...)`` (e.g. ``(N, C, H, W)``) or golden
    ``(N, H, W, C)``.
    """
    from wrpn_rtl.job.common import StepError
    from wrpn_rtl.job.network import load_npy
    try:
        values = load_npy(inputs_path, "--inputs")
        labels = None if labels_path is None else load_npy(labels_path, "--labels")
    except StepError as error:
        raise InterchangeError(str(error)) from None
    golden_shape = tuple(imported.network.input_shape)
    graph_shape = tuple(imported.to_graph_layout(np.zeros((1,) + golden_shape)).shape[1:])
    if values.dtype.kind not in "iuf" or values.ndim < 2 or len(values) == 0 or \
            values.shape[1:] not in (graph_shape, golden_shape):
        raise InterchangeError(f"--inputs {str(inputs_path)!r} must hold numbers shaped "
                               f"(N, {', '.join(map(str, graph_shape))}) (the graph's input) or "
                               f"(N, {', '.join(map(str, golden_shape))}), not {values.dtype} "
                               f"shaped {values.shape}")
    if not np.all(np.isfinite(values)):
        raise InterchangeError(f"--inputs {str(inputs_path)!r} holds NaN or infinite values")
    if values.shape[1:] != graph_shape:
        values = imported.to_graph_layout(values)
    if labels is not None and (labels.dtype.kind not in "iu" or labels.shape != (len(values),)):
        raise InterchangeError(f"--labels {str(labels_path)!r} must hold {len(values)} integer "
                               f"labels, not {labels.dtype} shaped {labels.shape}")
    return values.astype(np.float64), labels


def _check(imported, count, seed, progress, what, given=None):
    """Compare on ``count`` inputs: the ``given`` ones (all when ``count`` is None) or
    :func:`check_inputs` (64 when None); ``count == 0``: no check (None)."""
    if count == 0:
        return None
    if given is not None:
        inputs, labels = given
        inputs, labels = inputs[:count], None if labels is None else labels[:count]
    else:
        inputs, labels = check_inputs(imported, 64 if count is None else count, seed=seed)
    progress(f"{what}: comparing the golden network with the graph executed by qonnx on "
             f"{len(inputs)} inputs, tensor by tensor")
    agreement = compare_with_qonnx(imported, inputs)
    for line in agreement.summary().splitlines():
        progress(f"  {line}")
    if not agreement.agrees:
        raise InterchangeError(f"{what}: the golden network disagrees with qonnx's execution "
                               f"of the graph beyond rounding ties; nothing written\n"
                               f"{agreement.summary()}")
    report = {"inputs": agreement.images, "agrees": True,
              "ties": {entry.layer: entry.ties for entry in [agreement.input] + agreement.layers
                       if entry.ties},
              "labels_equal": agreement.labels_equal}
    if labels is not None:
        from wrpn_rtl.golden import execute
        network = imported.network
        golden_inputs = imported.to_golden_layout(inputs)
        classes = execute(network, network.quantize_input(golden_inputs)).classes[:len(labels)]
        report["golden_accuracy"] = float((classes == labels).mean())
        report["labelled_inputs"] = int(len(labels))
        report["labels_from"] = "--labels" if given is not None else "digits test set"
    return report


def import_model_file(onnx_path, out_path, *, inputs=None, seed=0, inputs_path=None,
                      labels_path=None, progress=quiet):
    """Import ``onnx_path``, check it against qonnx on ``inputs`` inputs (the user's own from
    ``inputs_path``, with ``labels_path``, or :func:`check_inputs`), write ``out_path``.

    Returns
    -------
    dict
        The summary: layers, notes, the check's figures, accuracies where known.
    """
    out_path = _check_destination(out_path, ".npz")
    progress(f"importing {onnx_path}")
    imported = import_qonnx(onnx_path)
    network = imported.network
    for layer in network.layers:
        progress(f"  {layer!r}")
    for note in imported.notes:
        progress(f"  note: {note}")
    given = None if inputs_path is None else user_inputs(imported, inputs_path, labels_path)
    report = _check(imported, inputs, seed, progress, "import", given)
    digest = hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()
    framework = _framework_accuracy(imported.model)
    network.metadata.update(imported_sha256=digest, qonnx_check=report,
                            framework_test_accuracy=framework,
                            test_accuracy=(report or {}).get("golden_accuracy")
                            if inputs_path is not None and labels_path is not None else None)
    save_network(network, out_path)
    summary = {"model": str(out_path), "layers": [repr(layer) for layer in network.layers],
               "notes": imported.notes, "check": report,
               "framework_test_accuracy": framework}
    accuracy = (report or {}).get("golden_accuracy")
    on = ("on " + str(inputs_path) if inputs_path is not None else
          "on the digits test images in [0, 1]")
    progress(f"wrote {out_path}" + (f": golden accuracy {accuracy:.4f} {on}"
                                    if accuracy is not None else "")
             + (f" (the framework's own: {framework:.4f})" if framework is not None else ""))
    return summary


def network_differences(a, b):
    """How two golden networks differ in what the hardware computes (empty: the same).

    Compared: input shape and bits, each layer's kind, shapes, window, weight codes and bits,
    thresholds (hidden layers) or bias (logits), pool windows. Float scales are not compared
    (a QONNX file holds float32 constants), only what they decide.
    """
    found = []
    if a.input_shape != b.input_shape or a.input_bits != b.input_bits:
        found.append(f"input {a.input_shape} u{a.input_bits} vs {b.input_shape} u{b.input_bits}")
    if len(a.layers) != len(b.layers):
        return found + [f"{len(a.layers)} layers vs {len(b.layers)}"]
    for x, y in zip(a.layers, b.layers):
        where = f"layer {x.name} / {y.name}"
        if type(x) is not type(y) or x.in_shape != y.in_shape or x.out_shape != y.out_shape:
            found.append(f"{where}: {x!r} vs {y!r}")
            continue
        if isinstance(x, QuantMaxPool):
            if (x.kernel, x.stride, x.padding) != (y.kernel, y.stride, y.padding):
                found.append(f"{where}: pool window differs")
            continue
        if isinstance(x, QuantLinear):
            if x.weight_bits != y.weight_bits or not np.array_equal(x.weights, y.weights):
                found.append(f"{where}: weight codes differ")
            if (x.kernel, x.stride, x.padding) != (y.kernel, y.stride, y.padding):
                found.append(f"{where}: window differs")
            if x.is_logits != y.is_logits:
                found.append(f"{where}: one ends in logits")
            elif x.is_logits:
                if not np.array_equal(x.output.bias, y.output.bias):
                    found.append(f"{where}: logit bias differs")
            else:
                rx, ry = x.requantizer, y.requantizer
                if x.out_bits != y.out_bits or not (np.array_equal(rx.direction, ry.direction)
                                                    and np.array_equal(rx.thresholds,
                                                                       ry.thresholds)):
                    changed = int(np.sum(rx.thresholds != ry.thresholds)) \
                        if rx.thresholds.shape == ry.thresholds.shape else "all"
                    found.append(f"{where}: thresholds differ ({changed} of "
                                 f"{rx.thresholds.size})")
    return found


def export_model_file(model_path, out_path, *, inputs=None, seed=0, progress=quiet):
    """Export a model file as QONNX at ``out_path``, checked before it is put in place."""
    from wrpn_rtl.job.network import load_model_file
    out_path = _check_destination(out_path, ".onnx")
    network, _ = load_model_file(model_path)
    data = export_bytes(network)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".onnx",
                                         dir=out_path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        imported = import_qonnx(temporary)
        differences = network_differences(network, imported.network)
        if differences:
            raise InterchangeError("the exported graph, imported back, is not the same network: "
                                   + "; ".join(differences[:5]) + "; nothing written")
        report = _check(imported, inputs, seed, progress, "export")
        os.replace(temporary, out_path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    progress(f"wrote {out_path} ({len(data)} bytes); imported back it is the same network")
    return {"model": str(out_path), "bytes": len(data), "check": report,
            "round_trip": "same network"}
