"""QONNX in and out: bring a network trained elsewhere (Brevitas, QKeras via qonnx) into the
golden model, and write golden networks as QONNX.

* :mod:`.onnx_file` - reading a model file as untrusted input: sizes checked before anything is
  allocated, external tensor data only from the model's own folder.
* :mod:`.qonnx_import` - a cleaned QONNX graph -> :class:`~wrpn_rtl.golden.QuantizedNetwork`.
* :mod:`.qonnx_export` - the reverse.
* :mod:`.qonnx_check` - the imported network against the graph executed by ``qonnx``, tensor by
  tensor.

Everything here raises :class:`InterchangeError` (a ``ValueError``) with a message naming the
file, the node and the rule.
"""


class InterchangeError(ValueError):
    """A model file that cannot be read, imported or written, with the reason."""
