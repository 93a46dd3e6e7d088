"""Reading an ONNX model file as untrusted input.

People download models, so a model file is treated as hostile until checked:

* nothing is unpickled or executed while reading (ONNX is protobuf; custom code never runs);
* the file (and its external data) must stay below :data:`MAX_MODEL_BYTES`;
* every tensor's stored size must match its declared shape and type *before* its data is read,
  and the sum of all declared tensor sizes is bounded too;
* external tensor data (``data_location = EXTERNAL``, as PyTorch's dynamo exporter writes for
  large models in ``<model>.onnx.data``) is read only from files inside the model's own folder:
  a ``location`` that is absolute or leaves the folder (``..``, a symbolic link out) is refused;
  the ``offset``/``length`` must lie inside that file.
"""
import os
from pathlib import Path

from . import InterchangeError

__all__ = ["MAX_MODEL_BYTES", "load_model"]

#: Largest model file plus external data accepted, and largest total of declared tensor bytes.
MAX_MODEL_BYTES = 1 << 30


def _element_bytes(data_type):
    from onnx import TensorProto, helper
    if data_type in (TensorProto.STRING, TensorProto.UNDEFINED, TensorProto.COMPLEX64,
                     TensorProto.COMPLEX128):
        return None
    try:
        return helper.tensor_dtype_to_np_dtype(data_type).itemsize
    except (KeyError, ValueError, TypeError):
        return None


def _typed_field_count(tensor):
    """How many values the tensor stores in its typed (non-raw) fields."""
    return max(len(tensor.float_data), len(tensor.int32_data), len(tensor.int64_data),
               len(tensor.double_data), len(tensor.uint64_data), len(tensor.string_data))


def _tensors(graph, where):
    """Every TensorProto of a graph (initializers, node attributes, subgraphs), with a name."""
    for tensor in graph.initializer:
        yield tensor, f"initializer {tensor.name!r}"
    if len(graph.sparse_initializer):
        raise InterchangeError(f"{where}: sparse initializers are not supported")
    for node in graph.node:
        for attribute in node.attribute:
            label = f"attribute {attribute.name!r} of node {node.name or node.op_type!r}"
            if attribute.HasField("t"):
                yield attribute.t, label
            for tensor in attribute.tensors:
                yield tensor, label
            if attribute.HasField("g"):
                yield from _tensors(attribute.g, label)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph, label)


def _external_entries(tensor, label, folder, shown):
    """Validated ``(file, offset, length)`` of an external tensor."""
    entries = {entry.key: entry.value for entry in tensor.external_data}
    location = entries.get("location")
    if not location:
        raise InterchangeError(f"{shown}: {label} is stored externally without a location")
    if os.path.isabs(location) or location.startswith(("/", "\\")) or ":" in location:
        raise InterchangeError(f"{shown}: {label} names external data at the absolute path "
                               f"{location!r}; external data must be a file in the model's own "
                               f"folder")
    parts = Path(location.replace("\\", "/")).parts
    if ".." in parts:
        raise InterchangeError(f"{shown}: {label} names external data {location!r}, which leaves "
                               f"the model's folder; external data must be a file in the model's "
                               f"own folder")
    target = (folder / Path(*parts)).resolve()
    if folder.resolve() not in target.parents:
        raise InterchangeError(f"{shown}: {label} names external data {location!r}, which "
                               f"resolves outside the model's folder ({target})")
    if not target.is_file():
        raise InterchangeError(f"{shown}: {label} names external data {location!r}, which does "
                               f"not exist beside the model")
    try:
        offset = int(entries.get("offset", 0))
        length = int(entries["length"]) if "length" in entries else None
    except ValueError:
        raise InterchangeError(f"{shown}: {label} has a non-integer external offset or length "
                               f"({entries.get('offset')!r}, {entries.get('length')!r})") from None
    size = target.stat().st_size
    if length is None:
        length = size - offset
    if offset < 0 or length < 0 or offset + length > size:
        raise InterchangeError(f"{shown}: {label} reads bytes {offset}..{offset + length} of "
                               f"{location!r}, which holds {size} bytes")
    return target, offset, length


def load_model(path):
    """Read and check an ONNX model file; returns an ``onnx.ModelProto`` with all tensor data.

    Raises
    ------
    InterchangeError
        The file is missing, a folder, too large, not ONNX, or a tensor is inconsistent or
        reads external data from outside the model's folder.
    """
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    shown = f"model file {str(path)!r}"
    if path.is_dir():
        raise InterchangeError(f"{shown} is a folder, not an ONNX model file")
    if not path.is_file():
        raise InterchangeError(f"{shown} does not exist")
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise InterchangeError(f"{shown} holds {size} bytes; model files must be at most "
                               f"{MAX_MODEL_BYTES} bytes")
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError, OSError) as error:
        raise InterchangeError(f"{shown} is not a readable ONNX model (protobuf): "
                               f"{error}") from None
    if not model.HasField("graph") or not model.graph.node:
        raise InterchangeError(f"{shown} is not an ONNX model: it has no graph nodes")

    folder = path.parent
    declared, external = 0, []
    for tensor, label in _tensors(model.graph, shown):
        element = _element_bytes(tensor.data_type)
        if element is None:
            raise InterchangeError(f"{shown}: {label} has data type {tensor.data_type}, not a "
                                   f"numeric type")
        if any(d < 0 for d in tensor.dims):
            raise InterchangeError(f"{shown}: {label} has negative dimensions {list(tensor.dims)}")
        count = 1
        for d in tensor.dims:
            count *= d
            if count * element > MAX_MODEL_BYTES:
                raise InterchangeError(f"{shown}: {label} declares shape {list(tensor.dims)}, "
                                       f"more than {MAX_MODEL_BYTES} bytes")
        declared += count * element
        if declared > MAX_MODEL_BYTES:
            raise InterchangeError(f"{shown}: its tensors declare more than {MAX_MODEL_BYTES} "
                                   f"bytes in all")
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            target, offset, length = _external_entries(tensor, label, folder, shown)
            if length != count * element:
                raise InterchangeError(f"{shown}: {label} declares shape {list(tensor.dims)} "
                                       f"({count * element} bytes) but its external data holds "
                                       f"{length}")
            external.append((tensor, target, offset, length))
        elif tensor.HasField("raw_data"):
            if len(tensor.raw_data) != count * element:
                raise InterchangeError(f"{shown}: {label} declares shape {list(tensor.dims)} "
                                       f"({count * element} bytes) but stores "
                                       f"{len(tensor.raw_data)} bytes")
        elif _typed_field_count(tensor) != count:
            raise InterchangeError(f"{shown}: {label} declares shape {list(tensor.dims)} "
                                   f"({count} values) but stores {_typed_field_count(tensor)}")
    if size + sum(length for *_, length in external) > MAX_MODEL_BYTES:
        raise InterchangeError(f"{shown}: the model and its external data exceed "
                               f"{MAX_MODEL_BYTES} bytes")
    for tensor, target, offset, length in external:
        with open(target, "rb") as handle:
            handle.seek(offset)
            data = handle.read(length)
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
        tensor.raw_data = data
    return model
