"""Model files: a quantized network in one ``.npz`` file (arrays) with a JSON structure inside.

Layout (``FORMAT_VERSION`` 1)
-----------------------------
* ``__structure__``: UTF-8 JSON as a uint8 array::

    {"format": "wrpn-rtl-network", "version": 1,
     "input_shape": [H, W, C], "input_bits": b, "metadata": {...},
     "layers": [{"type": "conv" | "dense" | "maxpool", "name": ..., "in_shape": [...],
                 "in_bits": ..., ...}, ...]}

  An imported model adds ``"input_quantizer": {"bits", "scale", "signed", "narrow",
  "rounding"}``, and a requantization output whose rule is not WRPN's adds ``"rounding"``
  and/or ``"levels"`` (absent: ``half_away`` and ``2**out_bits - 1``).

* per Conv/Dense layer ``<name>.weights`` (int8/int16/int32 codes, shape (C_out, K_h, K_w, C_in)),
  ``<name>.weight_scale`` (float64, (C_out,)), and either ``<name>.multiplier`` and
  ``<name>.offset`` (float64, (C_out,), hidden layers) or ``<name>.bias`` (int64, logits).

Optionally (``float_model``) the float network it was quantized from, so that it can be
quantized again at other bit widths: the structure gains ``"float_model": {"spec": {...},
"layers": [{"name": ..., "eps": ..., "batch_norm": bool}]}`` and each Conv/Dense layer the arrays
``<name>.float.weight``, ``.bias`` and, with batch norm, ``.gamma``, ``.beta``, ``.mean``, ``.var``.

Thresholds are not stored: they are derived again, deterministically, from the stored
multiplier and offset. Loading checks everything; any problem raises :class:`ModelFileError`
naming the file and what is wrong.
"""
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .layers import Logits, QuantConv2d, QuantDense, QuantMaxPool, Requantization
from .network import MaxPool, QuantizedNetwork
from .quant import InputQuantizer

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "ModelFileError", "save_network", "network_bytes",
           "load_network", "load_float_model"]

FORMAT_NAME = "wrpn-rtl-network"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file is missing, truncated, of another format or version, or inconsistent."""


def _smallest_int_dtype(codes):
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if codes.min() >= info.min and codes.max() <= info.max:
            return dtype
    return np.int64


def save_network(network, path, *, float_model=None):
    """Write ``network`` to ``path`` (atomically: nothing half-written on failure).

    Parameters
    ----------
    network : QuantizedNetwork
    path : str or os.PathLike
        Conventionally ending in ``.npz``.
    float_model : (NetworkSpec, list of LinearParams), optional
        The float network ``network`` was quantized from (kept for re-quantization).
    """
    with atomic_write(path) as handle:
        handle.write(network_bytes(network, float_model=float_model))


def network_bytes(network, *, float_model=None):
    """The model file of ``network`` (see :func:`save_network`) as bytes; the same network
    always gives the same bytes."""
    arrays, layers = {}, []
    for layer in network.layers:
        entry = {"name": layer.name, "in_shape": list(layer.in_shape), "in_bits": layer.in_bits}
        if isinstance(layer, QuantMaxPool):
            entry.update(type="maxpool", kernel=list(layer.kernel), stride=list(layer.stride),
                         padding=layer.padding)
        else:
            entry.update(type="dense" if isinstance(layer, QuantDense) else "conv",
                         weight_bits=layer.weight_bits)
            if not isinstance(layer, QuantDense):
                entry.update(stride=list(layer.stride), padding=layer.padding)
            arrays[f"{layer.name}.weights"] = layer.weights.astype(
                _smallest_int_dtype(layer.weights))
            arrays[f"{layer.name}.weight_scale"] = layer.weight_scale
            if layer.is_logits:
                entry["output"] = {"type": "logits", "scale": layer.output.scale}
                arrays[f"{layer.name}.bias"] = layer.output.bias
            else:
                entry["output"] = {"type": "requantization", "out_bits": layer.out_bits}
                if layer.output.rounding != "half_away":
                    entry["output"]["rounding"] = layer.output.rounding
                if layer.output.levels != (1 << layer.out_bits) - 1:
                    entry["output"]["levels"] = layer.output.levels
                arrays[f"{layer.name}.multiplier"] = layer.output.multiplier
                arrays[f"{layer.name}.offset"] = layer.output.offset
        layers.append(entry)
    structure = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
                 "input_shape": list(network.input_shape), "input_bits": network.input_bits,
                 "metadata": network.metadata, "layers": layers}
    if network.input_quantizer is not None:
        structure["input_quantizer"] = network.input_quantizer.to_dict()
    if float_model is not None:
        structure["float_model"] = _float_entries(*float_model, arrays)
    arrays["__structure__"] = np.frombuffer(json.dumps(structure, indent=1).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


_BN_FIELDS = ("gamma", "beta", "mean", "var")


def _float_entries(spec, params, arrays):
    """The float model's JSON entry; its arrays go into ``arrays``."""
    from .network import spec_to_dict
    entries = []
    names = [r.name for r in spec.resolve() if not isinstance(r.layer, MaxPool)]
    for name, p in zip(names, params):
        batch_norm = p.gamma is not None
        arrays[f"{name}.float.weight"] = np.asarray(p.weight, np.float64)
        arrays[f"{name}.float.bias"] = np.asarray(p.bias, np.float64)
        if batch_norm:
            for field in _BN_FIELDS:
                arrays[f"{name}.float.{field}"] = np.asarray(getattr(p, field), np.float64)
        entries.append({"name": name, "eps": float(p.eps), "batch_norm": batch_norm})
    return {"spec": spec_to_dict(spec), "layers": entries}


def load_float_model(path):
    """The float model stored beside the network in ``path``, or None when it has none.

    Returns
    -------
    (NetworkSpec, list of LinearParams) or None

    Raises
    ------
    ModelFileError
        As :func:`load_network`, or a float model that does not fit its own spec.
    """
    from .network import LinearParams, spec_from_dict
    load_network(path)              # every check of the quantized part first
    with np.load(Path(path), allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    structure = json.loads(arrays["__structure__"].tobytes().decode())
    entry = structure.get("float_model")
    if entry is None:
        return None
    try:
        spec = spec_from_dict(entry["spec"])
        params = []
        for layer in entry["layers"]:
            name = layer["name"]
            fields = {f: arrays[f"{name}.float.{f}"] for f in _BN_FIELDS} \
                if layer["batch_norm"] else {}
            params.append(LinearParams(weight=arrays[f"{name}.float.weight"],
                                       bias=arrays[f"{name}.float.bias"], eps=layer["eps"],
                                       **fields))
        from .network import quantize_network
        quantize_network(spec, params)      # the shapes must fit the spec
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFileError(f"model file {str(path)!r}: float model is inconsistent: "
                             f"{type(error).__name__}: {error}") from None
    return spec, params


def load_network(path):
    """Read a network written by :func:`save_network`.

    Raises
    ------
    ModelFileError
        The file is missing, not a model file, truncated, of an unknown version, or its
        contents are inconsistent (shapes, bits, codes out of range); the message names the
        file and the problem.
    """
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"model file {str(path)!r} is a folder, not a model file (.npz)")
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} does not exist")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise ModelFileError(f"model file {str(path)!r} cannot be read: {error.strerror}") \
            from None
    if magic[:2] != b"PK":
        raise ModelFileError(f"model file {str(path)!r} is not a .npz archive (a zip file, "
                             f"starting with 'PK'; this one starts with {magic!r})")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as error:
        if "pickle" in str(error):        # numpy's advice to unpickle does not apply here
            raise ModelFileError(f"model file {str(path)!r} holds pickled (object) arrays; a "
                                 f"model file holds numeric arrays only, and wrpn-rtl never "
                                 f"unpickles") from None
        raise ModelFileError(f"model file {str(path)!r} is not a readable .npz archive "
                             f"(truncated or of another format): {error}") from None
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise ModelFileError(f"model file {str(path)!r} is not a readable .npz archive "
                             f"(truncated or of another format): {error}") from None
    try:
        return _build(arrays)
    except ModelFileError as error:
        raise ModelFileError(f"model file {str(path)!r}: {error}") from None
    except KeyError as error:
        raise ModelFileError(f"model file {str(path)!r} is inconsistent: its structure lacks "
                             f"the key {error.args[0]!r}") from None
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"model file {str(path)!r} is inconsistent: {error}") from None


def _build(arrays):
    if "__structure__" not in arrays:
        raise ModelFileError("has no __structure__ entry (not a wrpn-rtl model file)")
    try:
        structure = json.loads(arrays["__structure__"].tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"structure is not valid JSON: {error}") from None
    if not isinstance(structure, dict) or structure.get("format") != FORMAT_NAME:
        raise ModelFileError(f"format must be {FORMAT_NAME!r}, not "
                             f"{structure.get('format') if isinstance(structure, dict) else structure!r}")
    if structure.get("version") != FORMAT_VERSION:
        raise ModelFileError(f"format version must be {FORMAT_VERSION}, not "
                             f"{structure.get('version')!r}")

    def array(name, key):
        full = f"{name}.{key}"
        if full not in arrays:
            raise ModelFileError(f"array {full!r} is missing")
        return arrays[full]

    layers = []
    for index, entry in enumerate(structure["layers"]):
        try:
            layers.append(_build_layer(entry, array))
        except KeyError as error:
            raise ModelFileError(f"layer {entry.get('name', index)!r}: its structure lacks "
                                 f"the key {error.args[0]!r}") from None
    quantizer = structure.get("input_quantizer")
    if quantizer is not None:
        if not isinstance(quantizer, dict) or set(quantizer) != _INPUT_QUANTIZER_KEYS:
            raise ModelFileError(f"input_quantizer must be an object with the keys "
                                 f"{', '.join(sorted(_INPUT_QUANTIZER_KEYS))}, not {quantizer!r}")
        quantizer = InputQuantizer(**quantizer)
    return QuantizedNetwork(input_shape=tuple(structure["input_shape"]),
                            input_bits=structure["input_bits"], layers=layers,
                            metadata=structure.get("metadata", {}), input_quantizer=quantizer)


_INPUT_QUANTIZER_KEYS = {"bits", "scale", "signed", "narrow", "rounding"}


def _build_layer(entry, array):
    """One golden layer from its structure entry; ``array(name, key)`` reads its arrays."""
    name, kind = entry["name"], entry["type"]
    common = dict(name=name, in_shape=tuple(entry["in_shape"]))
    if kind == "maxpool":
        return QuantMaxPool(**common, bits=entry["in_bits"], kernel=tuple(entry["kernel"]),
                            stride=tuple(entry["stride"]), padding=entry["padding"])
    if kind not in ("conv", "dense"):
        raise ModelFileError(f"layer {name!r}: type must be conv, dense or maxpool, "
                             f"not {kind!r}")
    output = entry["output"]
    if output["type"] == "logits":
        out = Logits(array(name, "bias"), output["scale"])
    elif output["type"] == "requantization":
        out = Requantization(array(name, "multiplier"), array(name, "offset"),
                             output["out_bits"], rounding=output.get("rounding", "half_away"),
                             levels=output.get("levels"))
    else:
        raise ModelFileError(f"layer {name!r}: output type must be logits or "
                             f"requantization, not {output['type']!r}")
    common.update(in_bits=entry["in_bits"], weights=array(name, "weights"),
                  weight_bits=entry["weight_bits"], weight_scale=array(name, "weight_scale"),
                  output=out)
    if kind == "dense":
        return QuantDense(**common)
    return QuantConv2d(**common, stride=tuple(entry["stride"]), padding=entry["padding"])
