import numpy as np
import pytest

from wrpn_rtl import golden as g


def random_network(rng, *, weight_bits, act_bits, input_bits=8, width=1.0, logits=True,
                   input_shape=(7, 6, 2)):
    spec = g.NetworkSpec(input_shape, input_bits, [
        g.Conv(3, kernel=3, padding=1, weight_bits=weight_bits, out_bits=act_bits),
        g.MaxPool(2, stride=2),
        g.Conv(5, kernel=(2, 3), stride=(1, 2), weight_bits=weight_bits, out_bits=act_bits),
        g.Dense(4, weight_bits=weight_bits, out_bits=None if logits else act_bits,
                batch_norm=not logits),
    ], width=width)
    return g.quantize_network(spec, g.random_parameters(spec, rng))


PRECISIONS = [(1, 1), (1, 2), (2, 2), (2, 4), (3, 3), (4, 4), (5, 2), (8, 8), (16, 16)]


@pytest.mark.parametrize("weight_bits, act_bits", PRECISIONS)
@pytest.mark.parametrize("logits", [True, False])
def test_integer_and_float_paths_agree(weight_bits, act_bits, logits, rng):
    for trial in range(3):
        net = random_network(rng, weight_bits=weight_bits, act_bits=act_bits, logits=logits,
                             width=[1.0, 2.0, 1.5][trial], input_bits=[8, 1, 4][trial])
        images = rng.random((6,) + net.input_shape)
        ref = g.execute(net, net.quantize_input(images))
        flt = g.execute_float(net, images)
        for layer, rtl_out, float_out, acc, facc in zip(net.layers, ref.outputs, flt.outputs,
                                                        ref.accumulators, flt.accumulators):
            assert rtl_out.shape == (6,) + layer.out_shape
            if layer.is_logits:
                np.testing.assert_array_equal(rtl_out * layer.output.scale, float_out)
            else:
                np.testing.assert_array_equal(rtl_out, float_out)
            if acc is not None:
                np.testing.assert_array_equal(acc, facc)
        np.testing.assert_array_equal(ref.classes, flt.classes)


def test_paths_agree_at_requantization_ties(rng):
    # Offsets placed so that many pre-activations sit exactly on a rounding midpoint of
    # 1-bit outputs (y = 0.5): multiplier 1/4 (a power of two) makes y exact.
    spec = g.NetworkSpec((5, 5, 1), 2, [g.Conv(4, 3, padding=1, weight_bits=2, out_bits=1,
                                                batch_norm=False),
                                         g.Dense(3, weight_bits=2, out_bits=None,
                                                 batch_norm=False)])
    params = g.random_parameters(spec, rng)
    net = g.quantize_network(spec, params)
    conv = net.layers[0]
    tie = g.Requantization(np.full(4, 0.25), np.array([0.0, 0.25, -0.25, 0.5]), 1)
    conv = g.QuantConv2d(name="tie", in_shape=conv.in_shape, in_bits=2, weights=conv.weights,
                         weight_bits=2, weight_scale=conv.weight_scale, padding=1, output=tie)
    net = g.QuantizedNetwork(input_shape=(5, 5, 1), input_bits=2, layers=[conv, net.layers[1]])
    images = rng.random((40, 5, 5, 1))
    ref, flt = g.execute(net, net.quantize_input(images)), g.execute_float(net, images)
    y = ref.accumulators[0] * 0.25 + np.array([0.0, 0.25, -0.25, 0.5])
    assert np.count_nonzero(y == 0.5) > 10                     # real ties happen
    assert np.all(ref.outputs[0][y == 0.5] == 1)               # and round up
    np.testing.assert_array_equal(ref.outputs[0], flt.outputs[0])
    np.testing.assert_array_equal(ref.classes, flt.classes)


def maximizing_input(layer, channel, position, top):
    """An input that drives ``channel`` at output ``position`` to its highest accumulator."""
    x = np.zeros((1,) + layer.in_shape, dtype=np.int64)
    oh, ow = position
    for kh in range(layer.kernel[0]):
        for kw in range(layer.kernel[1]):
            ih = oh * layer.stride[0] + kh - layer.padding
            iw = ow * layer.stride[1] + kw - layer.padding
            if 0 <= ih < layer.in_shape[0] and 0 <= iw < layer.in_shape[1]:
                x[0, ih, iw] = np.where(layer.weights[channel, kh, kw] > 0, top, 0)
    return x


@pytest.mark.parametrize("weight_bits, in_bits", [(1, 1), (2, 4), (4, 8), (8, 3)])
def test_accumulator_bound_is_exact_and_never_exceeded(weight_bits, in_bits, rng):
    spec = g.NetworkSpec((5, 4, 3), in_bits, [g.Conv(6, (3, 2), stride=(2, 1), padding=2,
                                                      weight_bits=weight_bits, out_bits=2)])
    net = g.quantize_network(spec, g.random_parameters(spec, rng))
    layer = net.layers[0]
    top = (1 << in_bits) - 1
    # never exceeded, on random and on extreme inputs
    x = np.concatenate([rng.integers(0, top + 1, (50,) + layer.in_shape),
                        np.full((1,) + layer.in_shape, top), np.zeros((1,) + layer.in_shape, int)])
    acc = layer.accumulate(x)
    assert np.all(acc >= layer.acc_low) and np.all(acc <= layer.acc_high)
    # attained: the bound is no looser than needed
    for channel in range(layer.out_channels):
        best = max(((oh, ow) for oh in range(layer.out_shape[0]) for ow in range(layer.out_shape[1])),
                   key=lambda p: layer.accumulate(maximizing_input(layer, channel, p, top))[0, p[0], p[1], channel])
        attained = layer.accumulate(maximizing_input(layer, channel, best, top))[0, best[0], best[1], channel]
        assert attained == layer.acc_high[channel]
    width, signed = layer.acc_shape
    low, high = int(layer.acc_low.min()), int(layer.acc_high.max())
    if signed:
        assert -(1 << (width - 1)) <= low and high < (1 << (width - 1))
        assert low < -(1 << (width - 2)) or high >= (1 << (width - 2))   # width - 1 too small
    else:
        assert low >= 0 and high < (1 << width) and high >= (1 << (width - 1))


@pytest.mark.parametrize("low, high, shape", [(0, 0, (1, False)), (0, 1, (1, False)),
                                              (0, 255, (8, False)), (-1, 0, (1, True)),
                                              (-128, 127, (8, True)), (-129, 0, (9, True)),
                                              (-1, 128, (9, True))])
def test_integer_range_shape(low, high, shape):
    assert g.integer_range_shape(low, high) == shape


def test_width_multiplier_widens_hidden_layers_only():
    spec = g.NetworkSpec((8, 8, 1), 8, [g.Conv(8, 3), g.MaxPool(2), g.Dense(10, out_bits=None,
                                                                           batch_norm=False)],
                         width=2.0)
    shapes = [r.out_shape for r in spec.resolve()]
    assert shapes == [(6, 6, 16), (3, 3, 16), (1, 1, 10)]
    assert [r.in_bits for r in spec.resolve()] == [8, 4, 4]


def test_dense_flattens_in_hwc_order(rng):
    spec = g.NetworkSpec((2, 3, 2), 4, [g.Dense(3, weight_bits=4, out_bits=None, batch_norm=False)])
    net = g.quantize_network(spec, g.random_parameters(spec, rng))
    x = rng.integers(0, 16, (4, 2, 3, 2))
    acc = g.execute(net, x).accumulators[0]
    np.testing.assert_array_equal(acc[:, 0, 0, :], x.reshape(4, -1) @ net.layers[0].weight_matrix.T)


@pytest.mark.parametrize("make, error, message", [
    (lambda: g.NetworkSpec((8, 8, 1), 8, [g.Conv(4, 9)]), ValueError,
     r"^layer0 kernel must fit the padded input 8x8, not 9x9$"),
    (lambda: g.NetworkSpec((8, 8, 1), 8, [g.Conv(4, 3, out_bits=None, batch_norm=False),
                                          g.Conv(2, 3)]), ValueError,
     r"^layer0: out_bits must be set on all but the last layer, not None$"),
    (lambda: g.NetworkSpec((8, 8, 1), 0, [g.Conv(4, 3)]), ValueError,
     r"^input_bits must be an integer in \[1, 16\], not 0$"),
    (lambda: g.NetworkSpec((8, 8, 1), 8, [g.Conv(4, 3)], width=0), ValueError,
     r"^width must be a positive number, not 0$"),
    (lambda: g.NetworkSpec((8, 8, 1), 8, []), ValueError, r"^layers must not be empty$"),
    (lambda: g.Conv(0), ValueError, r"^channels must be a positive integer, not 0$"),
    (lambda: g.Conv(4, weight_bits=17), ValueError,
     r"^weight_bits must be an integer in \[1, 16\], not 17$"),
    (lambda: g.Dense(4, out_bits=None), ValueError,
     r"^batch_norm must be False for a logits layer \(out_bits=None\), not True$"),
])
def test_spec_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_layer_errors(rng):
    common = dict(name="c", in_shape=(4, 4, 2), in_bits=4, weight_scale=np.ones(3),
                  output=g.Logits(np.zeros(3, dtype=np.int64), 1.0))
    with pytest.raises(ValueError, match=r"^c: 2-bit weight codes must be in \[-1, 1\], not 2$"):
        g.QuantConv2d(weights=np.full((3, 3, 3, 2), 2), weight_bits=2, **common)
    with pytest.raises(ValueError, match=r"^c: 1-bit weight codes must be -1 or \+1, not 0$"):
        g.QuantConv2d(weights=np.zeros((3, 3, 3, 2), dtype=int), weight_bits=1, **common)
    with pytest.raises(ValueError, match=r"^c: weight input channels must match the input's 2, not 1$"):
        g.QuantConv2d(weights=np.ones((3, 3, 3, 1), dtype=int), weight_bits=2, **common)
    with pytest.raises(TypeError, match=r"^c: weight codes must be integers, not dtype float64$"):
        g.QuantConv2d(weights=np.ones((3, 3, 3, 2)), weight_bits=2, **common)
    net = random_network(rng, weight_bits=2, act_bits=2)
    with pytest.raises(ValueError, match=r"^images must have shape \(N, 7, 6, 2\), not \(1, 7, 6\)$"):
        g.execute(net, np.zeros((1, 7, 6), dtype=int))
    with pytest.raises(ValueError, match=r"^input codes must lie in \[0, 255\], not 256$"):
        g.execute(net, np.full((1, 7, 6, 2), 256))
    with pytest.raises(ValueError, match=r"^layer2: input shape must be the previous output \(7, 6, 3\), not \(3, 3, 3\)$"):
        g.QuantizedNetwork(input_shape=(7, 6, 2), input_bits=8,
                           layers=[net.layers[0], net.layers[2]])
