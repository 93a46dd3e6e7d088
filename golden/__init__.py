"""The golden quantized model of wrpn-rtl (NumPy only; never imports Amaranth).

Public entry points: :func:`quantize_activations`, :func:`quantize_weights`, their
``dequantize_*`` inverses, the layer objects, :func:`quantize_network`, :func:`execute` (the
integer oracle), :func:`execute_float` (the float quantized model), and model files.
"""
from .quant import (ACTIVATION_BITS, WEIGHT_BITS, activation_levels, weight_levels,
                    weight_code_range, round_half_away, round_scaled, round_divided,
                    ROUNDING_MODES, InputQuantizer,
                    quantize_activations, dequantize_activations,
                    quantize_weights, dequantize_weights)
from .ops import im2col, conv2d, max_pool2d, conv_output_size
from .thresholds import (AffineRequantizer, Requantizer, apply_thresholds, derive_affine,
                         derive_thresholds, preactivation)
from .layers import (Requantization, Logits, QuantLinear, QuantConv2d, QuantDense, QuantMaxPool,
                     integer_range_shape)
from .network import (Conv, Dense, MaxPool, NetworkSpec, LinearParams, QuantizedNetwork, Trace,
                      quantize_network, random_parameters, execute, execute_float,
                      spec_to_dict, spec_from_dict, with_bits)
from .modelfile import (ModelFileError, save_network, network_bytes, load_network,
                        load_float_model)
from .atomic import atomic_write

__all__ = [name for name in dir() if not name.startswith("_")]
