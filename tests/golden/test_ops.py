import numpy as np
import pytest

from wrpn_rtl.golden import conv2d, im2col, max_pool2d
from wrpn_rtl.golden.ops import check_window


def ref_conv2d(x, w, stride, padding):
    """Direct loops, independent of im2col: the textbook definition."""
    n, height, width, c_in = x.shape
    c_out, k_h, k_w, _ = w.shape
    out_h = (height + 2 * padding - k_h) // stride[0] + 1
    out_w = (width + 2 * padding - k_w) // stride[1] + 1
    out = np.zeros((n, out_h, out_w, c_out), dtype=np.int64)
    for b in range(n):
        for oh in range(out_h):
            for ow in range(out_w):
                for co in range(c_out):
                    total = 0
                    for kh in range(k_h):
                        for kw in range(k_w):
                            ih = oh * stride[0] + kh - padding
                            iw = ow * stride[1] + kw - padding
                            if 0 <= ih < height and 0 <= iw < width:
                                for ci in range(c_in):
                                    total += int(x[b, ih, iw, ci]) * int(w[co, kh, kw, ci])
                    out[b, oh, ow, co] = total
    return out


def ref_max_pool(x, kernel, stride, padding):
    n, height, width, channels = x.shape
    out_h = (height + 2 * padding - kernel[0]) // stride[0] + 1
    out_w = (width + 2 * padding - kernel[1]) // stride[1] + 1
    out = np.zeros((n, out_h, out_w, channels), dtype=x.dtype)
    for b in range(n):
        for oh in range(out_h):
            for ow in range(out_w):
                for c in range(channels):
                    best = 0   # padding is code 0, and codes are >= 0
                    for kh in range(kernel[0]):
                        for kw in range(kernel[1]):
                            ih = oh * stride[0] + kh - padding
                            iw = ow * stride[1] + kw - padding
                            if 0 <= ih < height and 0 <= iw < width:
                                best = max(best, x[b, ih, iw, c])
                    out[b, oh, ow, c] = best
    return out


CONV_CASES = [
    # (H, W, C_in, C_out, K_h, K_w, stride, padding)
    (5, 7, 3, 2, 3, 3, (1, 1), 1),
    (6, 5, 2, 3, 5, 5, (2, 2), 2),
    (4, 4, 1, 1, 1, 1, (1, 1), 0),
    (4, 5, 2, 2, 1, 1, (2, 1), 2),
    (7, 3, 3, 4, 3, 2, (2, 1), 0),
    (3, 3, 2, 2, 5, 5, (1, 1), 1),
    (2, 9, 1, 3, 2, 4, (1, 3), 1),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_direct_loops(case, rng):
    height, width, c_in, c_out, k_h, k_w, stride, padding = case
    x = rng.integers(0, 16, (2, height, width, c_in))
    w = rng.integers(-7, 8, (c_out, k_h, k_w, c_in))
    np.testing.assert_array_equal(conv2d(x, w, stride, padding), ref_conv2d(x, w, stride, padding))


@pytest.mark.parametrize("kernel, stride, padding", [((2, 2), (2, 2), 0), ((3, 3), (2, 2), 1),
                                                     ((3, 2), (1, 2), 0), ((1, 1), (1, 1), 0),
                                                     ((3, 3), (1, 1), 2)])
def test_max_pool_matches_direct_loops(kernel, stride, padding, rng):
    x = rng.integers(0, 16, (2, 5, 6, 3))
    np.testing.assert_array_equal(max_pool2d(x, kernel, stride, padding),
                                  ref_max_pool(x, kernel, stride, padding))


def test_window_order_is_row_column_channel():
    # x[0, h, w, c] = 100 h + 10 w + c makes every element name its own position.
    h, w, c = np.meshgrid(np.arange(4), np.arange(4), np.arange(2), indexing="ij")
    x = (100 * h + 10 * w + c)[None]
    cols = im2col(x, (2, 3), (1, 1), 0)
    assert cols.shape == (1, 3, 2, 12)
    expected = [100 * (1 + kh) + 10 * (1 + kw) + ch
                for kh in range(2) for kw in range(3) for ch in range(2)]
    assert cols[0, 1, 1].tolist() == expected


@pytest.mark.parametrize("in_shape, kernel, stride, padding, error, message", [
    ((4, 4, 1), 5, 1, 0, ValueError, r"^kernel must fit the padded input 4x4, not 5x5$"),
    ((4, 4, 1), 7, 1, 1, ValueError, r"^kernel must fit the padded input 6x6, not 7x7$"),
    ((4, 4, 1), 0, 1, 0, ValueError, r"^kernel must be >= 1, not \(0, 0\)$"),
    ((4, 4, 1), 3, 0, 0, ValueError, r"^stride must be >= 1, not \(0, 0\)$"),
    ((4, 4, 1), 3, 1, -1, ValueError, r"^padding must be >= 0, not -1$"),
    ((4, 0, 1), 1, 1, 0, ValueError, r"^input shape must have positive sizes, not \(4, 0, 1\)$"),
    ((4, 4, 1), "3", 1, 0, TypeError, r"^kernel must be an integer or a pair of integers, not '3'$"),
    ((4, 4, 1), 3, 1, 1.5, TypeError, r"^padding must be an integer, not 1\.5$"),
])
def test_window_errors(in_shape, kernel, stride, padding, error, message):
    with pytest.raises(error, match=message):
        check_window(in_shape, kernel, stride, padding)
