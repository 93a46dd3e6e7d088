"""Shared test helpers: golden layers and networks with random parameters, the golden words a
stream must carry, and model files. Test modules import from here, never from each other."""

from wrpn_rtl import golden as g


def random_network(spec, rng):
    """The golden network of ``spec`` with random WRPN-quantized parameters."""
    return g.quantize_network(spec, g.random_parameters(spec, rng))


def dense_layer(rng, *, in_features, out_features, weight_bits, in_bits, out_bits):
    """A golden dense layer with random WRPN-quantized weights and requantization (``out_bits``
    None: logits)."""
    logits = out_bits is None
    spec = g.NetworkSpec((1, 1, in_features), in_bits,
                         [g.Dense(out_features, weight_bits=weight_bits, out_bits=out_bits,
                                  batch_norm=not logits)])
    return random_network(spec, rng).layers[0]


def dense_reference(layer, vectors):
    """Golden outputs ``(N, out_features)`` of a dense ``layer`` for ``vectors`` ``(N, in)``."""
    x = vectors.reshape((len(vectors),) + layer.in_shape)
    return layer.integer_forward(x)[1].reshape(len(vectors), -1)


def conv_network(rng, in_shape, conv, pool=None, in_bits=4):
    """A golden convolution (and the max-pool after it, or None) with random parameters."""
    layers = [conv] + ([pool] if pool is not None else [])
    net = random_network(g.NetworkSpec(in_shape, in_bits, layers), rng)
    return net.layers[0], (net.layers[1] if pool is not None else None)


def window_words(images, kernel, stride, padding, simd):
    """The golden window stream of ``images`` (N, H, W, C): ``simd`` codes per word."""
    cols = g.im2col(images, kernel, stride, padding)
    return cols.reshape(-1, simd).tolist()


def model_file(path, spec, rng, *, with_float=True):
    """A model file of ``spec`` with random parameters (and its float model); its path."""
    params = g.random_parameters(spec, rng)
    g.save_network(g.quantize_network(spec, params), path,
                   float_model=(spec, params) if with_float else None)
    return str(path)
