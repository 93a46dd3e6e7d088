"""Built-in network descriptions."""
from .network import Conv, Dense, MaxPool, NetworkSpec

__all__ = ["digits_cnn", "DEFAULT_MODEL", "default_model_path", "load_default_model"]

#: The trained default network shipped in the package: ``digits_cnn()`` (2x wide, 2-bit
#: weights, 4-bit activations) trained by ``wrpn-rtl train`` with seed 0 and 40 epochs.
DEFAULT_MODEL = "digits_cnn_w2a4_x2.npz"


def digits_cnn(*, width=2.0, weight_bits=2, act_bits=4, input_bits=8):
    """The default WRPN CNN for scikit-learn's 8x8 digits (8-bit pixels in, 10 logits out).

    ``conv3x3(8·width) -> maxpool2 -> conv3x3(16·width) -> maxpool2 -> dense(10)``, padding 1,
    ``weight_bits``-bit weights everywhere and ``act_bits``-bit activations; the default is the
    WRPN point 2x wide, 2-bit (ternary) weights, 4-bit activations.
    """
    return NetworkSpec((8, 8, 1), input_bits, [
        Conv(8, 3, padding=1, weight_bits=weight_bits, out_bits=act_bits),
        MaxPool(2),
        Conv(16, 3, padding=1, weight_bits=weight_bits, out_bits=act_bits),
        MaxPool(2),
        Dense(10, weight_bits=weight_bits, out_bits=None, batch_norm=False),
    ], width=width)


def default_model_path():
    """Path of the shipped model file (inside the installed package)."""
    from importlib import resources
    from pathlib import Path
    return Path(str(resources.files("wrpn_rtl") / "data" / DEFAULT_MODEL))


def load_default_model():
    """The shipped trained default network (a :class:`QuantizedNetwork`); no training needed."""
    from .modelfile import load_network
    return load_network(default_model_path())
