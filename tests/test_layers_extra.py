"""gf.layers.conv2d_transpose / Conv2DTranspose: TF1 names, kernel layout, values vs NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run

import graphflow as gf

rng = np.random.default_rng(0)


def _np_conv_transpose(x, k, strides, padding, out_hw):
    """Scatter each input pixel times the kernel into the output (NHWC, kernel [kh,kw,f,c])."""
    n, h, w, _ = x.shape
    kh, kw, f, _ = k.shape
    sh, sw = strides
    full = np.zeros((n, (h - 1) * sh + kh + out_hw[0], (w - 1) * sw + kw + out_hw[1], f))
    for i in range(h):
        for j in range(w):
            full[:, i * sh:i * sh + kh, j * sw:j * sw + kw] += np.einsum("nc,abfc->nabf",
                                                                        x[:, i, j], k)
    if padding == "same":  # the forward conv's SAME padding of an out_hw-sized input
        top = (max((h - 1) * sh + kh - out_hw[0], 0) // 2,
               max((w - 1) * sw + kw - out_hw[1], 0) // 2)
    else:
        top = (0, 0)
    return full[:, top[0]:top[0] + out_hw[0], top[1]:top[1] + out_hw[1]]


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (3, 2)])
@pytest.mark.parametrize("kernel", [(3, 3), (2, 1)])
def test_conv2d_transpose_matches_numpy(padding, strides, kernel):
    x = gf.placeholder(gf.float64, [None, 4, 5, 2])
    y = gf.layers.conv2d_transpose(x, 3, kernel, strides=strides, padding=padding,
                                   bias_initializer=gf.random_normal_initializer(seed=1))
    k_var, b_var = gf.global_variables()
    assert k_var.op.name == "conv2d_transpose/kernel" and b_var.op.name == "conv2d_transpose/bias"
    assert k_var.shape.as_list() == [*kernel, 3, 2]  # [kh, kw, filters, in]
    if padding == "same":
        hw = (4 * strides[0], 5 * strides[1])
    else:
        hw = (4 * strides[0] + max(kernel[0] - strides[0], 0),
              5 * strides[1] + max(kernel[1] - strides[1], 0))
    assert y.shape.as_list() == [None, *hw, 3]
    xv = rng.standard_normal((2, 4, 5, 2))
    yv, k, b = run([y, k_var, b_var], {x: xv})
    np.testing.assert_allclose(yv, _np_conv_transpose(xv, k, strides, padding, hw) + b,
                               rtol=1e-10, atol=1e-12)


def test_conv2d_transpose_unknown_spatial_dims_and_activation():
    x = gf.placeholder(gf.float64, [None, None, None, 2])
    y = gf.layers.conv2d_transpose(x, 4, 3, strides=2, padding="valid", activation=gf.nn.relu,
                                   use_bias=False)
    assert y.shape.as_list() == [None, None, None, 4]
    xv = rng.standard_normal((1, 3, 2, 2))
    yv, k = run([y, gf.global_variables()[0]], {x: xv})
    assert yv.shape == (1, 7, 5, 4)
    want = np.maximum(_np_conv_transpose(xv, k, (2, 2), "valid", (7, 5)), 0)
    np.testing.assert_allclose(yv, want, rtol=1e-10, atol=1e-12)


def test_conv2d_transpose_channels_first_and_output_padding():
    xv = rng.standard_normal((2, 3, 3, 2))
    x = gf.constant(xv.transpose(0, 3, 1, 2))
    layer = gf.layers.Conv2DTranspose(2, 3, strides=2, padding="same",
                                      data_format="channels_first", output_padding=1)
    y = layer(x)
    assert y.shape.as_list() == [2, 2, 6, 6]  # (3 - 1) * 2 + 3 - 2 * 1 + 1
    yv, k, b = run([y, layer.kernel, layer.bias])
    want = _np_conv_transpose(xv, k, (2, 2), "same", (6, 6)) + b
    np.testing.assert_allclose(yv, want.transpose(0, 3, 1, 2), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="output padding"):
        gf.layers.Conv2DTranspose(2, 3, strides=1, output_padding=1)


def test_conv2d_transpose_reuse_and_uniquified_names():
    x = gf.placeholder(gf.float32, [None, 2, 2, 3])
    a = gf.layers.conv2d_transpose(x, 2, 2, name="up")
    b = gf.layers.conv2d_transpose(x, 2, 2, name="up", reuse=True)
    gf.layers.conv2d_transpose(x, 2, 2)
    gf.layers.conv2d_transpose(x, 2, 2)
    names = [v.op.name for v in gf.global_variables()]
    assert names == ["up/kernel", "up/bias", "conv2d_transpose/kernel", "conv2d_transpose/bias",
                     "conv2d_transpose_1/kernel", "conv2d_transpose_1/bias"]
    xv = rng.standard_normal((1, 2, 2, 3)).astype(np.float32)
    av, bv = run([a, b], {x: xv})
    np.testing.assert_array_equal(av, bv)
    with pytest.raises(ValueError, match="rank 4"):
        gf.layers.conv2d_transpose(gf.placeholder(gf.float32, [None, 3]), 2, 2)


def test_conv2d_transpose_is_the_adjoint_of_conv2d_and_trains():
    # <conv2d_transpose(x, K), y> == <x, conv2d(y, K)> for the same kernel variable.
    xv = rng.standard_normal((2, 3, 3, 4))
    yv = rng.standard_normal((2, 6, 6, 5))
    layer = gf.layers.Conv2DTranspose(5, 3, strides=2, padding="same", use_bias=False)
    up = layer(gf.constant(xv))
    down = gf.nn.conv2d(gf.constant(yv), layer.kernel, strides=[1, 2, 2, 1], padding="SAME")
    u, d = run([up, down])
    np.testing.assert_allclose(np.sum(u * yv), np.sum(xv * d), rtol=1e-10)
    err = gf.test.compute_gradient_error(
        layer.kernel.value(), [3, 3, 5, 4], gf.reduce_sum(gf.square(up)), [],
        x_init_value=rng.standard_normal((3, 3, 5, 4)))
    assert err < 1e-5
