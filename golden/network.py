"""Network descriptions, WRPN quantization of float parameters, and the two execution paths.

A :class:`NetworkSpec` describes the layers (:class:`Conv`, :class:`Dense`, :class:`MaxPool`),
their weight and output bits, and the WRPN width multiplier applied to every hidden layer's
channels (never to the image's channels nor to the last layer's outputs). A layer's input bits
are the previous layer's output bits (the image's ``input_bits`` for the first), so they are
stated once.

:func:`quantize_network` turns float parameters (weights, bias, batch norm) into a
:class:`QuantizedNetwork` of :mod:`.layers` objects, which runs two ways that must agree exactly:

* :func:`execute` - the integer path: integer accumulators, integer thresholds, integer max.
  This is the oracle the RTL is compared with.
* :func:`execute_float` - the float quantized model as a quantization-aware training framework
  runs it: float64 BLAS convolutions on fake-quantized tensors kept as integer-valued grids plus
  a scale (like Brevitas' QuantTensor), real pre-activations ``acc * multiplier + offset``, and
  float clip-and-round requantization.
"""
from dataclasses import dataclass, field
import math
import numbers

import numpy as np

from .checks import check_positive_int
from .layers import (Logits, QuantConv2d, QuantDense, QuantLinear, QuantMaxPool,
                     Requantization)
from .ops import as_pair, check_window
from .quant import (ACTIVATION_BITS, WEIGHT_BITS, InputQuantizer, activation_levels, check_bits,
                    quantize_activations, quantize_weights, round_half_away)

__all__ = ["Conv", "Dense", "MaxPool", "NetworkSpec", "ResolvedLayer", "LinearParams",
           "QuantizedNetwork", "Trace", "quantize_network", "random_parameters",
           "execute", "execute_float", "BN_EPSILON", "spec_to_dict", "spec_from_dict",
           "with_bits"]

#: Batch-norm epsilon used when folding: ``slope = gamma / sqrt(var + BN_EPSILON)``.
BN_EPSILON = 1e-5


def _out_bits(value):
    return None if value is None else check_bits("out_bits", value, ACTIVATION_BITS)


@dataclass(frozen=True)
class Conv:
    """A convolution layer of a network description.

    Parameters
    ----------
    channels : int
        Output channels before the width multiplier.
    kernel : int or (int, int)
    stride : int or (int, int)
    padding : int
        Zero padding on every side.
    weight_bits : int
        1 (binary) .. 16.
    out_bits : int or None
        Output activation bits, or None for raw logits (last layer only).
    batch_norm : bool
        Whether a batch norm follows (folded into the thresholds); not allowed on logits.
    """

    channels: int
    kernel: object = 3
    stride: object = 1
    padding: int = 0
    weight_bits: int = 2
    out_bits: object = 4
    batch_norm: bool = True

    def __post_init__(self):
        check_positive_int("channels", self.channels)
        as_pair("kernel", self.kernel)
        as_pair("stride", self.stride)
        check_bits("weight_bits", self.weight_bits, WEIGHT_BITS)
        _out_bits(self.out_bits)
        if self.out_bits is None and self.batch_norm:
            raise ValueError("batch_norm must be False for a logits layer (out_bits=None), "
                             "not True")


@dataclass(frozen=True)
class Dense:
    """A fully connected layer (input flattened in HWC order); see :class:`Conv`."""

    features: int
    weight_bits: int = 2
    out_bits: object = 4
    batch_norm: bool = True

    def __post_init__(self):
        check_positive_int("features", self.features)
        check_bits("weight_bits", self.weight_bits, WEIGHT_BITS)
        _out_bits(self.out_bits)
        if self.out_bits is None and self.batch_norm:
            raise ValueError("batch_norm must be False for a logits layer (out_bits=None), "
                             "not True")


@dataclass(frozen=True)
class MaxPool:
    """A max-pool layer; ``stride`` defaults to the kernel."""

    kernel: object = 2
    stride: object = None
    padding: int = 0

    def __post_init__(self):
        as_pair("kernel", self.kernel)
        if self.stride is not None:
            as_pair("stride", self.stride)


@dataclass(frozen=True)
class ResolvedLayer:
    """One layer of a spec with shapes and bits worked out (see :meth:`NetworkSpec.resolve`)."""

    name: str
    layer: object          # the Conv / Dense / MaxPool
    in_shape: tuple        # (H, W, C)
    out_shape: tuple       # (H_out, W_out, C_out), C_out after the width multiplier
    in_bits: int
    out_bits: object       # int, or None for logits


@dataclass(frozen=True)
class NetworkSpec:
    """A WRPN network description.

    Parameters
    ----------
    input_shape : (H, W, C)
        The image.
    input_bits : int
        Unsigned code width of the image (e.g. 8 for 8-bit pixels), 1..16.
    layers : sequence of Conv, Dense, MaxPool
        Only the last layer may have ``out_bits=None`` (logits).
    width : float
        WRPN width multiplier (> 0) for hidden channels: ``round(channels * width)``, at least 1.
    """

    input_shape: tuple
    input_bits: int
    layers: tuple
    width: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        object.__setattr__(self, "layers", tuple(self.layers))
        check_bits("input_bits", self.input_bits, ACTIVATION_BITS)
        if not (isinstance(self.width, numbers.Real) and math.isfinite(self.width)
                and self.width > 0):
            raise ValueError(f"width must be a positive number, not {self.width!r}")
        if not self.layers:
            raise ValueError("layers must not be empty")
        for layer in self.layers:
            if not isinstance(layer, (Conv, Dense, MaxPool)):
                raise TypeError(f"layers must be Conv, Dense or MaxPool, not {layer!r}")
        self.resolve()   # validates shapes

    def hidden_channels(self, channels):
        """Channels of a hidden layer after the width multiplier."""
        return max(1, int(math.floor(channels * self.width + 0.5)))

    def resolve(self):
        """Shapes and bits of every layer, in order.

        Returns
        -------
        list of ResolvedLayer

        Raises
        ------
        ValueError
            A kernel larger than the padded input, logits before the last layer, ...
        """
        shape, bits = self.input_shape, self.input_bits
        resolved = []
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            name = f"layer{index}"
            if isinstance(layer, MaxPool):
                _, _, _, out_hw = check_window(shape, layer.kernel,
                                               layer.kernel if layer.stride is None else layer.stride,
                                               layer.padding, what=f"{name} pool kernel")
                out_shape, out_bits = (out_hw[0], out_hw[1], shape[2]), bits
            else:
                count = layer.channels if isinstance(layer, Conv) else layer.features
                channels = count if index == last else self.hidden_channels(count)
                if layer.out_bits is None and index != last:
                    raise ValueError(f"{name}: out_bits must be set on all but the last layer, "
                                     f"not None")
                if isinstance(layer, Conv):
                    _, _, _, out_hw = check_window(shape, layer.kernel, layer.stride,
                                                   layer.padding, what=f"{name} kernel")
                else:
                    out_hw = (1, 1)
                out_shape, out_bits = (out_hw[0], out_hw[1], channels), layer.out_bits
            resolved.append(ResolvedLayer(name, layer, tuple(shape), out_shape, bits, out_bits))
            shape, bits = out_shape, out_bits
        return resolved


_LAYER_KINDS = {"conv": Conv, "dense": Dense, "maxpool": MaxPool}


def spec_to_dict(spec):
    """A JSON-ready description of ``spec`` (read back by :func:`spec_from_dict`)."""
    from dataclasses import asdict
    kinds = {cls: name for name, cls in _LAYER_KINDS.items()}
    return {"input_shape": list(spec.input_shape), "input_bits": spec.input_bits,
            "width": spec.width,
            "layers": [{"type": kinds[type(layer)], **{k: list(v) if isinstance(v, tuple) else v
                                                       for k, v in asdict(layer).items()}}
                       for layer in spec.layers]}


def spec_from_dict(entry):
    """The :class:`NetworkSpec` of a :func:`spec_to_dict` description.

    Raises
    ------
    KeyError, TypeError, ValueError
        An unknown layer type or field, or a description the spec itself rejects.
    """
    layers = []
    for layer in entry["layers"]:
        fields = dict(layer)
        kind = fields.pop("type")
        if kind not in _LAYER_KINDS:
            raise ValueError(f"layer type must be one of {', '.join(_LAYER_KINDS)}, "
                             f"not {kind!r}")
        layers.append(_LAYER_KINDS[kind](**{k: tuple(v) if isinstance(v, list) else v
                                            for k, v in fields.items()}))
    return NetworkSpec(tuple(entry["input_shape"]), entry["input_bits"], layers,
                       width=entry["width"])


def with_bits(spec, *, weight_bits=None, act_bits=None):
    """``spec`` with every Conv/Dense layer's weight bits and every hidden layer's output
    (activation) bits replaced (None keeps them); the image bits and logits stay."""
    from dataclasses import replace
    layers = []
    for layer in spec.layers:
        if isinstance(layer, (Conv, Dense)):
            changes = {}
            if weight_bits is not None:
                changes["weight_bits"] = weight_bits
            if act_bits is not None and layer.out_bits is not None:
                changes["out_bits"] = act_bits
            layer = replace(layer, **changes)
        layers.append(layer)
    return NetworkSpec(spec.input_shape, spec.input_bits, layers, width=spec.width)


@dataclass
class LinearParams:
    """Float parameters of one Conv or Dense layer.

    Members
    -------
    weight : numpy.ndarray of float, shape (C_out, K_h, K_w, C_in)
        Dense layers use ``K_h, K_w = H, W`` of their input (HWC flattening order).
    bias : numpy.ndarray of float, shape (C_out,)
    gamma, beta, mean, var : numpy.ndarray of float, shape (C_out,) or None
        Batch-norm parameters (None when the layer has none).
    eps : float
        Batch-norm epsilon: ``slope = gamma / sqrt(var + eps)``. A trained per-channel affine
        ``gamma * z + beta`` is exported exactly as ``mean = 0, var = 1, eps = 0``.
    """

    weight: np.ndarray
    bias: np.ndarray
    gamma: object = None
    beta: object = None
    mean: object = None
    var: object = None
    eps: float = BN_EPSILON


class QuantizedNetwork:
    """A chain of quantized layers from an image of codes to codes or logits.

    Parameters
    ----------
    input_shape : (H, W, C)
    input_bits : int
    layers : sequence of QuantConv2d, QuantDense, QuantMaxPool
        Each layer's ``in_shape`` and ``in_bits`` equal the previous layer's output; only the
        last may be a logits layer.
    metadata : dict, optional
        Free-form JSON-able facts (name, width, accuracy, training seed ...).
    input_quantizer : InputQuantizer, optional
        How float inputs become codes (an imported model's input ``Quant``); its ``bits`` must
        be ``input_bits``. None: WRPN's rule, images in [0, 1] quantized by
        :func:`.quant.quantize_activations`.

    Raises
    ------
    TypeError, ValueError
        A broken chain, naming the layer and the mismatch.
    """

    def __init__(self, *, input_shape, input_bits, layers, metadata=None, input_quantizer=None):
        self._input_shape = tuple(int(v) for v in input_shape)
        self._input_bits = check_bits("input_bits", input_bits, ACTIVATION_BITS)
        if input_quantizer is not None:
            if not isinstance(input_quantizer, InputQuantizer):
                raise TypeError(f"input_quantizer must be an InputQuantizer or None, "
                                f"not {input_quantizer!r}")
            if input_quantizer.bits != self._input_bits:
                raise ValueError(f"input_quantizer bits must be input_bits {self._input_bits}, "
                                 f"not {input_quantizer.bits}")
        self._input_quantizer = input_quantizer
        self._layers = tuple(layers)
        if not self._layers:
            raise ValueError("layers must not be empty")
        shape, bits = self._input_shape, self._input_bits
        for index, layer in enumerate(self._layers):
            if not isinstance(layer, (QuantLinear, QuantMaxPool)):
                raise TypeError(f"layer {index} must be a quantized layer, not {layer!r}")
            if layer.in_shape != shape:
                raise ValueError(f"{layer.name}: input shape must be the previous output "
                                 f"{shape}, not {layer.in_shape}")
            if layer.in_bits != bits:
                raise ValueError(f"{layer.name}: input bits must be the previous output "
                                 f"bits {bits}, not {layer.in_bits}")
            if layer.is_logits and index != len(self._layers) - 1:
                raise ValueError(f"{layer.name}: only the last layer may output logits")
            shape, bits = layer.out_shape, layer.out_bits
        self.metadata = dict(metadata or {})

    input_shape = property(lambda self: self._input_shape)
    input_bits = property(lambda self: self._input_bits)
    input_quantizer = property(lambda self: self._input_quantizer)
    layers = property(lambda self: self._layers)

    @property
    def output_shape(self):
        return self._layers[-1].out_shape

    @property
    def outputs_logits(self):
        return self._layers[-1].is_logits

    def quantize_input(self, images):
        """Float inputs, shape (N, H, W, C) -> input codes of ``input_bits``: the input
        quantizer's rule, or (none) images in [0, 1] by WRPN's."""
        images = np.asarray(images, dtype=np.float64)
        self._check_batch(images)
        if self._input_quantizer is not None:
            return self._input_quantizer.codes(images)
        return quantize_activations(images, self._input_bits)

    def _check_batch(self, images):
        if images.ndim != 4 or images.shape[1:] != self._input_shape:
            raise ValueError(f"images must have shape (N, {', '.join(map(str, self._input_shape))}), "
                             f"not {images.shape!r}")

    def __repr__(self):
        body = "\n".join(f"  {layer!r}" for layer in self._layers)
        return (f"QuantizedNetwork(input={self._input_shape} u{self._input_bits}, "
                f"{len(self._layers)} layers:\n{body})")


@dataclass
class Trace:
    """Per-layer results of one batch through a network.

    Members
    -------
    outputs : list of numpy.ndarray, one per layer, each (N, H, W, C)
        Integer path: int64 codes, or ``acc + bias`` for a logits layer. Float path: integer-
        valued float64 code grids, or the real logits for a logits layer.
    accumulators : list of numpy.ndarray or None, one per layer
        The accumulators of Conv/Dense layers (int64, or float64 on the float path).
    classes : numpy.ndarray of int64, shape (N,)
        Argmax of the last output flattened (first index on ties).
    """

    outputs: list = field(default_factory=list)
    accumulators: list = field(default_factory=list)
    classes: object = None


def _argmax(last):
    return np.argmax(last.reshape(last.shape[0], -1), axis=1).astype(np.int64)


def execute(network, codes):
    """The integer path (the oracle): input codes ``(N, H, W, C)`` through every layer.

    Raises
    ------
    ValueError
        Wrong shape, or a code outside ``[0, 2**input_bits - 1]``.
    """
    codes = np.asarray(codes)
    network._check_batch(codes)
    if codes.dtype.kind not in "iu":
        raise TypeError(f"input codes must be integers, not dtype {codes.dtype}")
    top = activation_levels(network.input_bits)
    if codes.size and (codes.min() < 0 or codes.max() > top):
        bad = codes[(codes < 0) | (codes > top)].flat[0]
        raise ValueError(f"input codes must lie in [0, {top}], not {int(bad)}")
    trace = Trace()
    x = codes.astype(np.int64)
    for layer in network.layers:
        acc, x = layer.integer_forward(x)
        trace.accumulators.append(acc)
        trace.outputs.append(x)
    trace.classes = _argmax(x)
    return trace


def execute_float(network, images):
    """The float quantized model: float images in [0, 1], shape (N, H, W, C)."""
    x = network.quantize_input(images).astype(np.float64)
    trace = Trace()
    for layer in network.layers:
        acc = layer.accumulate_float(x) if isinstance(layer, QuantLinear) else None
        x = layer.float_forward(x)
        trace.accumulators.append(acc)
        trace.outputs.append(x)
    trace.classes = _argmax(x)
    return trace


def quantize_network(spec, params, *, metadata=None):
    """WRPN-quantize float parameters into a :class:`QuantizedNetwork`.

    Hidden layers: ``multiplier = in_scale * weight_scale * slope`` and
    ``offset = beta + slope * (bias - mean)`` with ``slope = gamma / sqrt(var + eps)``
    (slope 1, offset = bias without batch norm). Logits layer: per-tensor weight scale,
    ``scale = in_scale * weight_scale`` and ``bias_code = round(bias / scale)``.

    Parameters
    ----------
    spec : NetworkSpec
    params : sequence of LinearParams, one per Conv/Dense layer in order

    Raises
    ------
    ValueError
        A parameter of the wrong shape, naming the layer.
    """
    resolved = spec.resolve()
    linear = [r for r in resolved if not isinstance(r.layer, MaxPool)]
    params = list(params)
    if len(params) != len(linear):
        raise ValueError(f"params must hold one entry per Conv/Dense layer ({len(linear)}), "
                         f"not {len(params)}")
    layers = []
    params_iter = iter(params)
    for r in resolved:
        if isinstance(r.layer, MaxPool):
            layers.append(QuantMaxPool(name=r.name, in_shape=r.in_shape, bits=r.in_bits,
                                       kernel=r.layer.kernel, stride=r.layer.stride,
                                       padding=r.layer.padding))
            continue
        p = next(params_iter)
        layers.append(_quantize_linear(r, p))
    meta = {"width": spec.width}
    meta.update(metadata or {})
    return QuantizedNetwork(input_shape=spec.input_shape, input_bits=spec.input_bits,
                            layers=layers, metadata=meta)


def _quantize_linear(r, p):
    layer = r.layer
    c_out = r.out_shape[2]
    if isinstance(layer, Conv):
        k_h, k_w = as_pair("kernel", layer.kernel)
    else:
        k_h, k_w = r.in_shape[0], r.in_shape[1]
    want = (c_out, k_h, k_w, r.in_shape[2])
    weight = np.asarray(p.weight, dtype=np.float64)
    if weight.shape != want:
        raise ValueError(f"{r.name}: weight must have shape {want}, not {weight.shape}")
    bias = np.asarray(p.bias, dtype=np.float64)
    if bias.shape != (c_out,):
        raise ValueError(f"{r.name}: bias must have shape ({c_out},), not {bias.shape}")
    in_scale = 1.0 / activation_levels(r.in_bits)
    logits = r.out_bits is None
    codes, w_scale = quantize_weights(weight, layer.weight_bits, per_channel=not logits)
    if logits:
        scale = in_scale * float(w_scale[0])
        if scale <= 0:
            raise ValueError(f"{r.name}: logits layer weights must not all be zero")
        output = Logits(round_half_away(bias / scale).astype(np.int64), scale)
    else:
        if layer.batch_norm:
            bn = {name: np.asarray(getattr(p, name), dtype=np.float64)
                  for name in ("gamma", "beta", "mean", "var")}
            for name, value in bn.items():
                if value.shape != (c_out,):
                    raise ValueError(f"{r.name}: batch-norm {name} must have shape ({c_out},), "
                                     f"not {value.shape}")
            slope = bn["gamma"] / np.sqrt(bn["var"] + p.eps)
            offset = bn["beta"] + slope * (bias - bn["mean"])
        else:
            slope, offset = np.ones(c_out), bias
        output = Requantization(in_scale * w_scale * slope, offset, r.out_bits)
    common = dict(name=r.name, in_shape=r.in_shape, in_bits=r.in_bits, weights=codes,
                  weight_bits=layer.weight_bits, weight_scale=w_scale, output=output)
    if isinstance(layer, Conv):
        return QuantConv2d(**common, stride=layer.stride, padding=layer.padding)
    return QuantDense(**common)


def random_parameters(spec, rng, *, weight_spread=1.0):
    """Random float parameters for ``spec`` (tests and examples).

    Weights are uniform in ``[-weight_spread, weight_spread]``; batch-norm slopes take both
    signs (and sometimes zero) so requantization is exercised fully.

    Returns
    -------
    list of LinearParams
    """
    params = []
    for r in spec.resolve():
        if isinstance(r.layer, MaxPool):
            continue
        c_out = r.out_shape[2]
        if isinstance(r.layer, Conv):
            k_h, k_w = as_pair("kernel", r.layer.kernel)
        else:
            k_h, k_w = r.in_shape[:2]
        fan_in = k_h * k_w * r.in_shape[2]
        weight = rng.uniform(-weight_spread, weight_spread, (c_out, k_h, k_w, r.in_shape[2]))
        p = LinearParams(weight=weight, bias=rng.normal(0, 0.5, c_out))
        if r.out_bits is not None and r.layer.batch_norm:
            gamma = rng.normal(0, 1, c_out)
            gamma[rng.random(c_out) < 0.1] = 0.0
            p.gamma = gamma
            p.beta = rng.normal(0.5, 0.5, c_out)
            p.mean = rng.normal(0, 0.3 * math.sqrt(fan_in), c_out)
            p.var = rng.uniform(0.05, 1.0, c_out) * fan_in * 0.25
        params.append(p)
    return params
