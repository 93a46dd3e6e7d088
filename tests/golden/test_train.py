import numpy as np
import pytest

from wrpn_rtl import golden as g
from wrpn_rtl.golden.train import TrainConfig, accuracy, col2im, load_digits_split, train
from wrpn_rtl.golden.zoo import digits_cnn


def test_digits_split_is_fixed_and_bundled():
    x_train, y_train, x_test, y_test = load_digits_split()
    assert x_train.shape == (1437, 8, 8, 1) and x_test.shape == (360, 8, 8, 1)
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    again = load_digits_split()
    np.testing.assert_array_equal(again[3], y_test)


def test_col2im_is_the_adjoint_of_im2col(rng):
    # <im2col(x), c> == <x, col2im(c)> for every x, c: the gradient of the window gather.
    for kernel, stride, padding in [((3, 3), (1, 1), 1), ((2, 3), (2, 1), 0), ((3, 3), (2, 2), 2)]:
        x = rng.normal(size=(2, 5, 6, 3))
        cols = g.im2col(x, kernel, stride, padding)
        c = rng.normal(size=cols.shape)
        assert np.isclose((cols * c).sum(), (x * col2im(c, x.shape, kernel, stride, padding)).sum())


@pytest.mark.slow
def test_short_training_learns_and_is_reproducible():
    x_train, y_train, x_test, y_test = load_digits_split()
    spec = digits_cnn(width=1.0)
    first = train(spec, x_train, y_train, TrainConfig(epochs=8, seed=3))
    second = train(spec, x_train, y_train, TrainConfig(epochs=8, seed=3))
    assert first.history == second.history
    assert first.history[-1][0] < first.history[0][0]
    assert accuracy(first.network, x_test, y_test) > 0.75


def test_shipped_default_model_is_the_trained_default_network():
    from wrpn_rtl.golden.zoo import load_default_model
    network = load_default_model()
    spec = digits_cnn()
    assert [layer.out_shape for layer in network.layers] == [r.out_shape for r in spec.resolve()]
    assert network.metadata["train"]["seed"] == 0
    _, _, x_test, y_test = load_digits_split()
    measured = accuracy(network, x_test, y_test)
    assert measured == network.metadata["test_accuracy"]
    assert measured > 0.95
