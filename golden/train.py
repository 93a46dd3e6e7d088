"""WRPN quantization-aware training in NumPy (straight-through estimator), and the digits data.

The trained model is exported through :func:`~.network.quantize_network`, so the network that
the golden model and the hardware run is exactly the one whose accuracy is reported.

Training forward pass, per Conv/Dense layer (``x`` is the fake-quantized input in [0, 1]):

* weights ``w_q = dequantize(quantize_weights(w, k_w))`` (``k_w = 0`` keeps float weights);
* ``z = conv(x, w_q)``; hidden layers ``y = gamma * z + beta`` (a per-channel affine that
  exports as a folded batch norm), then ``a = fake_quantize(clip(y, 0, 1), k_out)``;
* the logits layer: ``logits = z + bias``.

Backward: the straight-through estimator passes gradients through the rounding unchanged and
through the clips only inside the clip range (``|w| <= 1``, ``0 <= y <= 1``). With
``float_model=True`` nothing is quantized (the full-precision baseline), activations are still
clipped to [0, 1] (a ReLU1), so the accuracy gap of quantization is measured like for like.
"""
from dataclasses import dataclass
import math

import numpy as np

from .network import Conv, LinearParams, MaxPool, quantize_network
from .ops import as_pair, im2col
from .quant import dequantize_weights, quantize_activations, quantize_weights

__all__ = ["load_digits_split", "TrainConfig", "TrainResult", "train", "accuracy", "float_accuracy"]


def load_digits_split(*, test_fraction=0.2, seed=0):
    """scikit-learn's bundled 8x8 digits (no download), as float images in [0, 1].

    Returns
    -------
    (x_train, y_train, x_test, y_test)
        Images of shape (N, 8, 8, 1), float64 in [0, 1] (pixel / 16); labels int64 in 0..9.
        The split is fixed by ``seed`` (stratified).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    images = (digits.images / 16.0)[..., None]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target.astype(np.int64), test_size=test_fraction, random_state=seed,
        stratify=digits.target)
    return x_train, y_train, x_test, y_test


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train` (defaults suit the 8x8 digits)."""

    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 0.03
    seed: int = 0
    float_model: bool = False


@dataclass
class TrainResult:
    """What :func:`train` returns: the quantized network and the float parameters."""

    network: object          # QuantizedNetwork
    params: list             # list of LinearParams
    history: list            # per epoch: (loss, train accuracy of the training forward pass)


def col2im(cols, x_shape, kernel, stride, padding):
    """Adjoint of :func:`~.ops.im2col`: scatter-add window gradients back onto the input."""
    (k_h, k_w), (s_h, s_w) = kernel, stride
    n, height, width, channels = x_shape
    padded = np.zeros((n, height + 2 * padding, width + 2 * padding, channels))
    out_h, out_w = cols.shape[1:3]
    cols = cols.reshape(n, out_h, out_w, k_h, k_w, channels)
    for kh in range(k_h):
        for kw in range(k_w):
            padded[:, kh:kh + s_h * (out_h - 1) + 1:s_h,
                   kw:kw + s_w * (out_w - 1) + 1:s_w, :] += cols[:, :, :, kh, kw, :]
    return padded[:, padding:padding + height, padding:padding + width, :]


class _Linear:
    def __init__(self, resolved, rng):
        layer = resolved.layer
        self.resolved = resolved
        self.is_conv = isinstance(layer, Conv)
        c_in = resolved.in_shape[2]
        if self.is_conv:
            self.kernel = as_pair("kernel", layer.kernel)
            self.stride = as_pair("stride", layer.stride)
            self.padding = layer.padding
        else:
            self.kernel, self.stride, self.padding = resolved.in_shape[:2], (1, 1), 0
        self.c_out = resolved.out_shape[2]
        fan_in = self.kernel[0] * self.kernel[1] * c_in
        self.weight_bits = layer.weight_bits
        self.out_bits = resolved.out_bits
        self.logits = resolved.out_bits is None
        self.w = rng.uniform(-1, 1, (self.c_out,) + self.kernel + (c_in,))
        if self.logits:
            self.params = {"w": self.w, "bias": np.zeros(self.c_out)}
        else:
            self.params = {"w": self.w, "gamma": np.full(self.c_out, 2.0 / math.sqrt(fan_in)),
                           "beta": np.full(self.c_out, 0.2)}

    def quantized_weight(self, float_model):
        w = self.params["w"]
        if float_model:
            return w, np.ones_like(w)
        codes, scale = quantize_weights(w, self.weight_bits, per_channel=not self.logits)
        return dequantize_weights(codes, scale, self.weight_bits), (np.abs(w) <= 1.0)

    def forward(self, x, float_model):
        w_q, self.w_pass = self.quantized_weight(float_model)
        self.x_shape = x.shape
        self.cols = im2col(x, self.kernel, self.stride, self.padding)
        self.w_matrix = w_q.reshape(self.c_out, -1)
        z = self.cols @ self.w_matrix.T
        if self.logits:
            return z + self.params["bias"]
        self.z = z
        y = self.params["gamma"] * z + self.params["beta"]
        self.y_pass = (y >= 0.0) & (y <= 1.0)
        clipped = np.clip(y, 0.0, 1.0)
        if float_model:
            return clipped
        levels = (1 << self.out_bits) - 1
        return quantize_activations(clipped, self.out_bits) / levels

    def backward(self, grad):
        grads = {}
        if self.logits:
            grads["bias"] = grad.sum(axis=(0, 1, 2))
            dz = grad
        else:
            dy = grad * self.y_pass
            grads["gamma"] = (dy * self.z).sum(axis=(0, 1, 2))
            grads["beta"] = dy.sum(axis=(0, 1, 2))
            dz = dy * self.params["gamma"]
        flat_dz = dz.reshape(-1, self.c_out)
        dw = (flat_dz.T @ self.cols.reshape(flat_dz.shape[0], -1)).reshape(self.params["w"].shape)
        grads["w"] = dw * self.w_pass
        dcols = dz @ self.w_matrix
        return col2im(dcols, self.x_shape, self.kernel, self.stride, self.padding), grads

    def export(self):
        if self.logits:
            return LinearParams(weight=self.params["w"].copy(), bias=self.params["bias"].copy())
        zeros = np.zeros(self.c_out)
        return LinearParams(weight=self.params["w"].copy(), bias=zeros,
                            gamma=self.params["gamma"].copy(), beta=self.params["beta"].copy(),
                            mean=zeros, var=np.ones(self.c_out), eps=0.0)


class _Pool:
    def __init__(self, resolved):
        layer = resolved.layer
        self.kernel = as_pair("kernel", layer.kernel)
        self.stride = as_pair("stride", layer.kernel if layer.stride is None else layer.stride)
        self.padding = layer.padding
        self.params = {}

    def forward(self, x, float_model):
        self.x_shape = x.shape
        cols = im2col(x, self.kernel, self.stride, self.padding)
        n, out_h, out_w, _ = cols.shape
        cols = cols.reshape(n, out_h, out_w, self.kernel[0] * self.kernel[1], x.shape[3])
        self.choice = cols.argmax(axis=3)
        self.window = cols.shape[3]
        return cols.max(axis=3)

    def backward(self, grad):
        onehot = (np.arange(self.window)[None, None, None, :, None]
                  == self.choice[:, :, :, None, :])
        dcols = (onehot * grad[:, :, :, None, :]).reshape(grad.shape[:3] + (-1,))
        return col2im(dcols, self.x_shape, self.kernel, self.stride, self.padding), {}


def _softmax_cross_entropy(logits, labels):
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    loss = -np.log(probabilities[np.arange(len(labels)), labels] + 1e-12).mean()
    grad = probabilities
    grad[np.arange(len(labels)), labels] -= 1.0
    return loss, grad / len(labels)


def train(spec, x_train, y_train, config=TrainConfig(), *, progress=None):
    """Train ``spec`` (last layer: logits) on float images in [0, 1]; return a TrainResult.

    Parameters
    ----------
    spec : NetworkSpec
        Its last layer must output logits (``out_bits=None``) with one output per class.
    x_train : numpy.ndarray of float, shape (N, H, W, C), values in [0, 1]
    y_train : numpy.ndarray of int, shape (N,)
    config : TrainConfig
    progress : callable(epoch, loss, accuracy) or None
        Called after every epoch.
    """
    resolved = spec.resolve()
    if resolved[-1].out_bits is not None:
        raise ValueError("the last layer must output logits (out_bits=None) to be trained, "
                         f"not out_bits={resolved[-1].out_bits}")
    rng = np.random.default_rng(config.seed)
    layers = [_Pool(r) if isinstance(r.layer, MaxPool) else _Linear(r, rng) for r in resolved]
    moments = [{k: (np.zeros_like(v), np.zeros_like(v)) for k, v in layer.params.items()}
               for layer in layers]
    beta1, beta2, step = 0.9, 0.999, 0
    levels_in = (1 << spec.input_bits) - 1
    x_codes = quantize_activations(x_train, spec.input_bits) / levels_in
    history = []
    for epoch in range(config.epochs):
        order = rng.permutation(len(x_codes))
        rate = config.learning_rate * 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
        total_loss, correct = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            batch = order[start:start + config.batch_size]
            x = x_codes[batch] if not config.float_model else x_train[batch]
            for layer in layers:
                x = layer.forward(x, config.float_model)
            logits = x.reshape(len(batch), -1)
            loss, grad = _softmax_cross_entropy(logits, y_train[batch])
            total_loss += loss * len(batch)
            correct += int((logits.argmax(axis=1) == y_train[batch]).sum())
            grad = grad.reshape(x.shape)
            step += 1
            for layer, moment in zip(reversed(layers), reversed(moments)):
                grad, grads = layer.backward(grad)
                for key, g in grads.items():
                    m, v = moment[key]
                    m *= beta1
                    m += (1 - beta1) * g
                    v *= beta2
                    v += (1 - beta2) * g * g
                    m_hat = m / (1 - beta1 ** step)
                    v_hat = v / (1 - beta2 ** step)
                    layer.params[key] -= rate * m_hat / (np.sqrt(v_hat) + 1e-8)
        history.append((total_loss / len(order), correct / len(order)))
        if progress is not None:
            progress(epoch, *history[-1])
    params = [layer.export() for layer in layers if isinstance(layer, _Linear)]
    network = quantize_network(spec, params, metadata={"train": {
        "epochs": config.epochs, "batch_size": config.batch_size,
        "learning_rate": config.learning_rate, "seed": config.seed}})
    return TrainResult(network=network, params=params, history=history)


def float_accuracy(spec, params, images, labels):
    """Accuracy of the full-precision model (float weights, ReLU1 activations) on images."""
    layers = []
    for r in spec.resolve():
        layers.append(_Pool(r) if isinstance(r.layer, MaxPool)
                      else _Linear(r, np.random.default_rng(0)))
    linear = iter(params)
    for layer in layers:
        if isinstance(layer, _Linear):
            p = next(linear)
            layer.params["w"] = p.weight
            if layer.logits:
                layer.params["bias"] = p.bias
            else:
                layer.params["gamma"], layer.params["beta"] = p.gamma, p.beta
    x = images
    for layer in layers:
        x = layer.forward(x, True)
    return float((x.reshape(len(x), -1).argmax(axis=1) == labels).mean())


def accuracy(network, images, labels):
    """Top-1 accuracy of the golden integer path on float images in [0, 1]."""
    from .network import execute
    trace = execute(network, network.quantize_input(images))
    return float((trace.classes == np.asarray(labels)).mean())
