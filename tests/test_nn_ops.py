"""gf.nn: every function against an independent NumPy implementation, plus edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_same, run
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import graphflow as gf

FLOAT_DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}
CONV_TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}

seeds = st.integers(0, 2**32 - 1)
float_dtypes = st.sampled_from(FLOAT_DTYPES)


def rand(seed, shape, dtype=np.float64, scale=3.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def shapes(min_dims=1, max_dims=3, min_side=1, max_side=5):
    return st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims)


def build_error(exc_type, match, fn):
    """The build-time error is exc_type (ValueError/TypeError) and a gf.errors.OpError."""
    with pytest.raises(exc_type, match=match) as info:
        fn()
    assert isinstance(info.value, gf.errors.OpError)
    return info.value


# --- independent NumPy implementations ----------------------------------------------------
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_erf = np.vectorize(math.erf)


def np_gelu(x, approximate):
    if approximate:
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


ACTIVATIONS = {
    "relu": lambda x: np.where(x > 0, x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "elu": lambda x: np.where(x > 0, x, np.exp(np.minimum(x, 0)) - 1),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * (np.exp(np.minimum(x, 0)) - 1)),
    "softplus": lambda x: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "gelu": lambda x: np_gelu(x, False),
}
OP_TYPES = {"relu": "Relu", "relu6": "Relu6", "elu": "Elu", "selu": "Selu",
            "softplus": "Softplus", "softsign": "Softsign", "leaky_relu": "LeakyRelu",
            "gelu": "Gelu"}


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def naive_conv2d(x, f, strides, padding, dilations=(1, 1)):
    """Loops over output pixels and taps; ``padding`` is SAME, VALID or ((t, b), (l, r))."""
    n, h, w, c = x.shape
    kh, kw, _, o = f.shape
    (sh, sw), (dh, dw) = strides, dilations
    ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if padding == "SAME":
        oh, ow = -(-h // sh), -(-w // sw)
        top = max((oh - 1) * sh + ekh - h, 0) // 2
        left = max((ow - 1) * sw + ekw - w, 0) // 2
    elif padding == "VALID":
        oh, ow, top, left = (h - ekh) // sh + 1, (w - ekw) // sw + 1, 0, 0
    else:
        (top, bottom), (left, right) = padding
        oh = (h + top + bottom - ekh) // sh + 1
        ow = (w + left + right - ekw) // sw + 1
    out = np.zeros((n, oh, ow, o))
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for di in range(kh):
                    for dj in range(kw):
                        r, q = i * sh + di * dh - top, j * sw + dj * dw - left
                        if 0 <= r < h and 0 <= q < w:
                            out[b, i, j] += x[b, r, q].astype(np.float64) @ f[di, dj]
    return out


def naive_pool(x, k, s, padding, kind):
    """Pools the valid (non-padded) elements of each window with loops."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw) = k, s
    if padding == "SAME":
        oh, ow = -(-h // sh), -(-w // sw)
        top = max((oh - 1) * sh + kh - h, 0) // 2
        left = max((ow - 1) * sw + kw - w, 0) // 2
    else:
        oh, ow, top, left = (h - kh) // sh + 1, (w - kw) // sw + 1, 0, 0
    out = np.zeros((n, oh, ow, c), np.float64 if kind == "avg" else x.dtype)
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * sh - top, j * sw - left
            win = x[:, max(r0, 0):r0 + kh, max(c0, 0):c0 + kw, :]
            out[:, i, j] = win.max(axis=(1, 2)) if kind == "max" else \
                win.astype(np.float64).mean(axis=(1, 2))
    return out


# --- activations --------------------------------------------------------------------------
@pytest.mark.parametrize("fn", sorted(ACTIVATIONS))
@given(shape=shapes(0, 3), seed=seeds, dtype=float_dtypes)
@settings(max_examples=8)
def test_activations_match_numpy(fn, shape, seed, dtype):
    with gf.Graph().as_default():
        x = rand(seed, shape, dtype)
        y = getattr(gf.nn, fn)(gf.constant(x))
        assert y.op.type == OP_TYPES[fn] and y.op.name == OP_TYPES[fn]
        assert y.shape == gf.TensorShape(shape) and y.dtype == gf.as_dtype(dtype)
        expected = ACTIVATIONS[fn](x.astype(np.float64)).astype(dtype)
        assert_same(run(y), expected, **TOL[dtype])


@pytest.mark.parametrize("fn", sorted(ACTIVATIONS))
def test_activations_extreme_values(fn):
    x = np.array([-np.inf, -1e4, -1.0, 0.0, 1.0, 1e4, np.inf], np.float32)
    got = run(getattr(gf.nn, fn)(x))
    with np.errstate(all="ignore"):
        expected = ACTIVATIONS[fn](x.astype(np.float64))
    if fn == "softplus":  # log1p(exp(-inf)) + max(inf, 0)
        expected[-1] = np.inf
    # softsign(+-inf) is inf / inf = NaN, as TF's kernel x / (|x| + 1).
    assert_same(got, expected.astype(np.float32), rtol=1e-6)


def test_leaky_relu_alpha_and_int_input():
    x = np.array([-2.0, -0.5, 0.0, 3.0])
    assert_same(run(gf.nn.leaky_relu(x, alpha=0.01)), np.where(x > 0, x, 0.01 * x))
    y = gf.nn.leaky_relu(gf.constant([-3, 4]), alpha=np.array(0.5))
    assert y.dtype == gf.float32 and y.op.get_attr("alpha") == 0.5
    assert_same(run(y), np.array([-1.5, 4.0], np.float32))


def test_gelu_approximate_and_int_relu():
    x = np.linspace(-6, 6, 25)
    assert_same(run(gf.nn.gelu(x, approximate=True)), np_gelu(x, True), rtol=1e-12,
                atol=1e-15)
    assert_same(run(gf.nn.gelu(x.astype(np.float32))), np_gelu(x, False).astype(np.float32),
                rtol=1e-6, atol=1e-7)
    assert gf.nn.gelu(x, approximate=True).op.get_attr("approximate") is True
    assert_same(run(gf.nn.relu(gf.constant([-3, 0, 5]))), np.array([0, 0, 5], np.int32))
    assert_same(run(gf.nn.relu6(gf.constant([-3, 5, 9], gf.int64))), np.array([0, 5, 6]))
    build_error(TypeError, "Gelu", lambda: gf.nn.gelu(gf.constant([1, 2])))
    build_error(TypeError, "Elu", lambda: gf.nn.elu(gf.constant([1, 2])))


# --- softmax / log_softmax ----------------------------------------------------------------
@given(shape=shapes(1, 3), seed=seeds, dtype=float_dtypes, data=st.data())
@settings(max_examples=20)
def test_softmax_and_log_softmax_match_numpy(shape, seed, dtype, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    with gf.Graph().as_default():
        x = rand(seed, shape, dtype, scale=10)
        s, ls = gf.nn.softmax(x, axis=axis), gf.nn.log_softmax(x, axis)
        assert s.op.type == "Softmax" and ls.op.type == "LogSoftmax"
        assert s.op.get_attr("axis") == axis % len(shape)
        got_s, got_ls = run([s, ls])
        x64 = x.astype(np.float64)
        assert_same(got_s, np_softmax(x64, axis).astype(dtype), **TOL[dtype])
        assert_same(got_ls, np_log_softmax(x64, axis).astype(dtype),
                    rtol=TOL[dtype]["rtol"], atol=1e-5 if dtype == np.float32 else 1e-12)


def test_softmax_stable_nan_inf_and_empty():
    x = np.array([[1000.0, 999.0, -1000.0],
                  [np.nan, 1.0, 2.0],
                  [np.inf, 1.0, 2.0],
                  [-np.inf, 0.0, 0.0],
                  [1e4, 1e4, 1e4]], np.float32)
    s, ls = run([gf.nn.softmax(x), gf.nn.log_softmax(x)])
    assert np.all(np.isfinite(s[0])) and np.all(np.isfinite(ls[0]))
    np.testing.assert_allclose(s[0], np_softmax(x[:1].astype(np.float64), -1)[0], rtol=1e-6)
    assert np.all(np.isnan(s[1])) and np.all(np.isnan(ls[1]))
    assert np.all(np.isnan(s[2]))  # inf - inf, as TF
    np.testing.assert_allclose(s[3], [0.0, 0.5, 0.5])
    assert ls[3][0] == -np.inf
    np.testing.assert_allclose(s[4], [1 / 3] * 3, rtol=1e-6)
    empty = np.zeros((0, 4), np.float64)
    assert_same(run(gf.nn.softmax(empty)), empty)
    assert_same(run(gf.nn.log_softmax(np.zeros((3, 0)))), np.zeros((3, 0)))


def test_softmax_dim_alias_static_shape_and_errors():
    x = gf.placeholder(gf.float32, [None, 3, None])
    assert gf.nn.softmax(x, dim=1).shape.as_list() == [None, 3, None]
    assert gf.nn.softmax(x, dim=1).op.get_attr("axis") == 1
    v = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert_same(run(gf.nn.softmax(v, dim=0)), np_softmax(v.astype(np.float64), 0)
                .astype(np.float32), rtol=1e-6)
    u = gf.placeholder(gf.float32)  # unknown rank: axis kept as given
    assert_same(run(gf.nn.log_softmax(u), {u: v}),
                np_log_softmax(v.astype(np.float64), -1).astype(np.float32), rtol=1e-6)
    build_error(ValueError, "Softmax.*axis 2", lambda: gf.nn.softmax(gf.zeros([2, 2]), axis=2))
    build_error(ValueError, "Softmax.*rank", lambda: gf.nn.softmax(gf.constant(1.0)))
    build_error(TypeError, "LogSoftmax.*int32", lambda: gf.nn.log_softmax(gf.constant([1, 2])))
    with pytest.raises(ValueError):
        gf.nn.softmax(v, axis=0, dim=0)


def test_composite_expansions_match_reference():
    x = rand(3, (3, 4), np.float64, scale=50)
    for t in (gf.nn.softmax(x, axis=0), gf.nn.log_softmax(x), gf.nn.l2_loss(x)):
        expanded = t.op.op_def.composite(t.op, *t.op.inputs)
        a, b = run([t, expanded[0]])
        np.testing.assert_allclose(a, b, rtol=1e-12)


# --- bias_add / l2_loss -------------------------------------------------------------------
@given(shape=shapes(2, 4), seed=seeds, dtype=float_dtypes, nchw=st.booleans())
@settings(max_examples=15)
def test_bias_add_matches_numpy(shape, seed, dtype, nchw):
    assume(not nchw or len(shape) >= 3)
    with gf.Graph().as_default():
        x = rand(seed, shape, dtype)
        c = 1 if nchw else len(shape) - 1
        b = rand(seed + 1, [shape[c]], dtype)
        y = gf.nn.bias_add(x, b, data_format="NCHW" if nchw else None)
        assert y.op.type == "BiasAdd" and y.shape == gf.TensorShape(shape)
        bshape = [1] * len(shape)
        bshape[c] = -1
        assert_same(run(y), x + b.reshape(bshape), **TOL[dtype])


def test_bias_add_shapes_and_errors():
    x = gf.placeholder(gf.float32, [None, None])
    assert gf.nn.bias_add(x, [1.0, 2.0, 3.0]).shape.as_list() == [None, 3]
    assert gf.nn.bias_add(gf.placeholder(gf.float32, [None, None, 5]), np.zeros(2, np.float32),
                          data_format="NCW").shape.as_list() == [None, 2, 5]
    assert_same(run(gf.nn.bias_add(gf.constant([[1, 2]]), [10, 20])), np.array([[11, 22]],
                                                                               np.int32))
    build_error(ValueError, "BiasAdd.*Dimensions must be equal",
                lambda: gf.nn.bias_add(gf.zeros([2, 3]), gf.zeros([4])))
    build_error(ValueError, "BiasAdd.*rank 1", lambda: gf.nn.bias_add(gf.zeros([2, 3]),
                                                                       gf.zeros([1, 3])))
    build_error(ValueError, "BiasAdd.*rank >= 2", lambda: gf.nn.bias_add(gf.zeros([3]),
                                                                          gf.zeros([3])))
    build_error(TypeError, "BiasAdd", lambda: gf.nn.bias_add(gf.zeros([2, 3]),
                                                              gf.zeros([3], gf.float64)))
    with pytest.raises(ValueError, match="data_format"):
        gf.nn.bias_add(gf.zeros([2, 3]), gf.zeros([3]), data_format="HWC")
    p = gf.placeholder(gf.float32, [None, None])
    with pytest.raises(gf.errors.InvalidArgumentError, match="biases"):
        run(gf.nn.bias_add(p, [1.0, 2.0]), {p: np.zeros((2, 3), np.float32)})


@given(shape=shapes(0, 3, 0), seed=seeds, dtype=float_dtypes)
@settings(max_examples=10)
def test_l2_loss_matches_numpy(shape, seed, dtype):
    with gf.Graph().as_default():
        x = rand(seed, shape, dtype)
        y = gf.nn.l2_loss(x)
        assert y.op.type == "L2Loss" and y.shape == gf.TensorShape([])
        assert_same(run(y), np.asarray((x.astype(np.float64) ** 2).sum() / 2, dtype),
                    **TOL[dtype])


def test_l2_loss_half_and_int_error():
    assert_same(run(gf.nn.l2_loss(np.array([3.0, 4.0], np.float16))), np.float16(12.5))
    build_error(TypeError, "L2Loss", lambda: gf.nn.l2_loss(gf.constant([1, 2])))


# --- cross entropies ----------------------------------------------------------------------
@given(shape=shapes(1, 3, 1, 4), seed=seeds, dtype=float_dtypes, data=st.data())
@settings(max_examples=20)
def test_softmax_cross_entropy_matches_numpy(shape, seed, dtype, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    with gf.Graph().as_default():
        logits = rand(seed, shape, dtype, scale=5)
        labels = np_softmax(rand(seed + 1, shape), axis).astype(dtype)
        loss = gf.nn.softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits,
                                                          axis=axis)
        loss_v1 = gf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits,
                                                          dim=axis)
        expected_shape = [d for i, d in enumerate(shape) if i != axis % len(shape)]
        assert loss.shape.as_list() == expected_shape and loss.dtype == gf.as_dtype(dtype)
        expected = -(labels.astype(np.float64) * np_log_softmax(logits.astype(np.float64),
                                                                 axis)).sum(axis=axis)
        got, got_v1 = run([loss, loss_v1])
        tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else TOL[dtype]
        assert_same(got, expected.astype(dtype), **tol)
        assert_same(got_v1, expected.astype(dtype), **tol)


def test_softmax_cross_entropy_op_outputs_and_stability():
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0]], np.float32)
    labels = np.array([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]], np.float32)
    loss = gf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    assert loss.op.type == "SoftmaxCrossEntropyWithLogits" and len(loss.op.outputs) == 2
    assert loss.op.inputs[1].op.type == "StopGradient"
    got_loss, backprop = run([loss, loss.op.outputs[1]])
    assert np.all(np.isfinite(got_loss))
    np.testing.assert_allclose(got_loss, [1e4, math.log(3)], rtol=1e-6)
    np.testing.assert_allclose(backprop, np_softmax(logits.astype(np.float64), -1) - labels,
                               atol=1e-6)
    v2 = gf.nn.softmax_cross_entropy_with_logits_v2(labels, logits)
    assert v2.op.inputs[1].op.type == "Const"
    assert_same(run(v2), got_loss)
    half = gf.nn.softmax_cross_entropy_with_logits_v2([[0.0, 1.0]], np.float16([[1.0, 2.0]]))
    assert half.dtype == gf.float16
    np.testing.assert_allclose(run(half), [math.log1p(math.exp(-1.0))], rtol=1e-3)
    empty = gf.nn.softmax_cross_entropy_with_logits_v2(np.zeros((0, 3)), np.zeros((0, 3)))
    assert_same(run(empty), np.zeros((0,)))


def test_softmax_cross_entropy_errors_and_static_shape():
    x = gf.placeholder(gf.float32, [None, 10])
    y = gf.placeholder(gf.float32, [None, 10])
    assert gf.nn.softmax_cross_entropy_with_logits_v2(y, x).shape.as_list() == [None]
    with pytest.raises(ValueError, match="named arguments"):
        gf.nn.softmax_cross_entropy_with_logits(y, x)
    with pytest.raises(ValueError, match="both labels and logits"):
        gf.nn.softmax_cross_entropy_with_logits(logits=x)
    build_error(ValueError, "SoftmaxCrossEntropyWithLogits.*broadcast",
                lambda: gf.nn.softmax_cross_entropy_with_logits_v2(gf.zeros([2, 3]),
                                                                    gf.zeros([2, 4])))
    build_error(TypeError, "SoftmaxCrossEntropyWithLogits.*int32",
                lambda: gf.nn.softmax_cross_entropy_with_logits_v2([[1]], gf.constant([[1]])))
    build_error(ValueError, "axis", lambda: gf.nn.softmax_cross_entropy_with_logits_v2(
        gf.zeros([2, 3]), gf.zeros([2, 3]), axis=2))


@given(shape=shapes(0, 2, 0, 4), classes=st.integers(1, 5), seed=seeds, dtype=float_dtypes,
       label_dtype=st.sampled_from([np.int32, np.int64]))
@settings(max_examples=20)
def test_sparse_softmax_cross_entropy_matches_numpy(shape, classes, seed, dtype, label_dtype):
    with gf.Graph().as_default():
        logits = rand(seed, shape + [classes], dtype, scale=5)
        labels = np.random.default_rng(seed).integers(0, classes, shape).astype(label_dtype)
        loss = gf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        assert loss.op.type == "SparseSoftmaxCrossEntropyWithLogits"
        assert loss.shape.as_list() == shape and loss.dtype == gf.as_dtype(dtype)
        lp = np_log_softmax(logits.astype(np.float64), -1).reshape(-1, classes)
        expected = -lp[np.arange(lp.shape[0]), labels.ravel()].reshape(shape)
        onehot = np.eye(classes)[labels]
        got, backprop = run([loss, loss.op.outputs[1]])
        assert_same(got, expected.astype(dtype), **TOL[dtype])
        assert_same(backprop, (np.exp(lp).reshape(onehot.shape) - onehot).astype(dtype),
                    **TOL[dtype])


def test_sparse_softmax_cross_entropy_stable_and_half():
    logits = np.array([[1000.0, 0.0], [0.0, 1000.0], [-1e4, 1e4]], np.float32)
    got = run(gf.nn.sparse_softmax_cross_entropy_with_logits(labels=[0, 0, 1], logits=logits))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, [0.0, 1000.0, 0.0])
    half = gf.nn.sparse_softmax_cross_entropy_with_logits(labels=[1], logits=np.float16([[0, 0]]))
    assert half.dtype == gf.float16
    np.testing.assert_allclose(run(half), [math.log(2)], rtol=1e-3)


def test_sparse_softmax_cross_entropy_errors():
    logits = gf.placeholder(gf.float32, [None, 3])
    labels = gf.placeholder(gf.int64, [None])
    loss = gf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    assert loss.shape.as_list() == [None] and loss.op.outputs[1].shape.as_list() == [None, 3]
    feed = {logits: np.zeros((2, 3), np.float32)}
    for bad in (3, -1):
        with pytest.raises(gf.errors.InvalidArgumentError,
                           match=rf"label value of {bad} .*range of \[0, 3\)") as info:
            run(loss, {**feed, labels: np.array([0, bad])})
        assert "SparseSoftmaxCrossEntropyWithLogits" in str(info.value)
        assert info.value.op is loss.op
    build_error(ValueError, "SparseSoftmaxCrossEntropyWithLogits.*Rank mismatch",
                lambda: gf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=gf.zeros([2, 3], gf.int32), logits=gf.zeros([2, 3])))
    build_error(ValueError, "Shape mismatch",
                lambda: gf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=gf.zeros([4], gf.int32), logits=gf.zeros([2, 3])))
    build_error(TypeError, "SparseSoftmaxCrossEntropyWithLogits.*labels",
                lambda: gf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=gf.zeros([2]), logits=gf.zeros([2, 3])))
    build_error(ValueError, "scalars", lambda: gf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=gf.zeros([], gf.int32), logits=gf.constant(1.0)))
    with pytest.raises(ValueError, match="named arguments"):
        gf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)


@given(shape=shapes(0, 3), seed=seeds, dtype=float_dtypes)
@settings(max_examples=12)
def test_sigmoid_cross_entropy_matches_numpy(shape, seed, dtype):
    with gf.Graph().as_default():
        x = rand(seed, shape, dtype, scale=4)
        z = np.random.default_rng(seed).random(shape).astype(dtype)
        loss = gf.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=x)
        assert loss.op.name == "logistic_loss" and loss.shape == gf.TensorShape(shape)
        x64, z64 = x.astype(np.float64), z.astype(np.float64)
        sig = 1 / (1 + np.exp(-x64))
        expected = -z64 * np.log(sig) - (1 - z64) * np.log(1 - sig)
        assert_same(run(loss), expected.astype(dtype), rtol=1e-5, atol=1e-6)


def test_sigmoid_cross_entropy_stable_and_errors():
    x = np.array([1000.0, -1000.0, 1e4, 0.0], np.float32)
    z = np.array([1.0, 0.0, 0.0, 0.5], np.float32)
    got = run(gf.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=x))
    np.testing.assert_allclose(got, [0.0, 0.0, 1e4, math.log(2)], rtol=1e-6)
    with pytest.raises(ValueError, match="same shape") as info:
        gf.nn.sigmoid_cross_entropy_with_logits(labels=gf.zeros([3]), logits=gf.zeros([2]))
    assert isinstance(info.value, gf.errors.OpError)
    with pytest.raises(ValueError, match="named arguments"):
        gf.nn.sigmoid_cross_entropy_with_logits(z, x)


# --- conv2d -------------------------------------------------------------------------------
@st.composite
def conv_cases(draw):
    n, h, w = draw(st.integers(0, 2)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    c, o = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilations = draw(st.sampled_from([(1, 1), (1, 2), (2, 1), (2, 2)]))
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    if padding == "VALID":
        assume(h >= (kh - 1) * dilations[0] + 1 and w >= (kw - 1) * dilations[1] + 1)
    return (n, h, w, c), (kh, kw, c, o), strides, dilations, padding


@given(case=conv_cases(), seed=seeds, dtype=float_dtypes)
@settings(max_examples=30)
def test_conv2d_matches_naive_loops(case, seed, dtype):
    xshape, fshape, strides, dilations, padding = case
    with gf.Graph().as_default():
        x, f = rand(seed, xshape, dtype), rand(seed + 1, fshape, dtype)
        y = gf.nn.conv2d(x, f, strides=[1, *strides, 1], padding=padding,
                         dilations=[1, *dilations, 1])
        expected = naive_conv2d(x, f, strides, padding, dilations)
        assert y.op.type == "Conv2D" and y.shape.as_list() == list(expected.shape)
        assert_same(run(y), expected.astype(dtype), **CONV_TOL[dtype])


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv2d_odd_even_kernels_and_strides(k, stride, padding):
    x, f = rand(1, (2, 7, 6, 2)), rand(2, (k, k, 2, 3))
    got = run(gf.nn.conv2d(x, f, stride, padding))  # int strides, as TF1's _get_sequence
    assert_same(got, naive_conv2d(x, f, (stride, stride), padding), rtol=1e-10, atol=1e-12)


def test_conv2d_one_pixel_batch_zero_and_explicit_padding():
    x, f = rand(1, (2, 1, 1, 3), np.float32), rand(2, (3, 3, 3, 2), np.float32)
    y = gf.nn.conv2d(x, f, [1, 2], "SAME")  # 3x3 kernel on 1x1: only the centre tap
    assert y.shape.as_list() == [2, 1, 1, 2]
    assert_same(run(y), (x[:, 0, 0] @ f[1, 1])[:, None, None, :], rtol=1e-6)
    p = gf.placeholder(gf.float32, [None, 4, 4, 3])
    assert_same(run(gf.nn.conv2d(p, f, 1, "SAME"), {p: np.zeros((0, 4, 4, 3), np.float32)}),
                np.zeros((0, 4, 4, 2), np.float32))
    x = rand(3, (1, 5, 4, 2))
    f = rand(4, (3, 2, 2, 2))
    pads = [[0, 0], [2, 1], [0, 3], [0, 0]]
    y = gf.nn.conv2d(x, f, strides=2, padding=pads)
    assert y.op.get_attr("padding") == "EXPLICIT"
    assert_same(run(y), naive_conv2d(x, f, (2, 2), ((2, 1), (0, 3))), rtol=1e-12)


def test_conv2d_nchw_and_filters_alias():
    x, f = rand(5, (2, 6, 5, 3)), rand(6, (3, 2, 3, 4))
    nhwc = gf.nn.conv2d(x, filters=f, strides=[2, 1], padding="SAME", dilations=2)
    nchw = gf.nn.conv2d(x.transpose(0, 3, 1, 2), f, strides=[1, 1, 2, 1], padding="SAME",
                        data_format="NCHW", dilations=[1, 1, 2, 2])
    assert nchw.shape.as_list() == [2, 4, 3, 5]
    a, b = run([nhwc, nchw])
    assert_same(a, naive_conv2d(x, f, (2, 1), "SAME", (2, 2)), rtol=1e-12, atol=1e-12)
    assert_same(b, a.transpose(0, 3, 1, 2), rtol=1e-12, atol=1e-12)


def test_conv2d_static_shapes_with_unknown_dims():
    f = gf.zeros([3, 3, 3, 8])
    x = gf.placeholder(gf.float32, [None, 32, None, 3])
    assert gf.nn.conv2d(x, f, 2, "SAME").shape.as_list() == [None, 16, None, 8]
    assert gf.nn.conv2d(x, f, 1, "VALID", dilations=2).shape.as_list() == [None, 28, None, 8]
    assert gf.nn.conv2d(x, gf.placeholder(gf.float32, [None, None, 3, None]), 1,
                        "VALID").shape.as_list() == [None, None, None, None]
    u = gf.placeholder(gf.float32)
    y = gf.nn.conv2d(u, f, [1, 1, 1, 1], "SAME")
    assert y.shape.as_list() == [None, None, None, 8]
    assert run(y, {u: np.zeros((1, 5, 4, 3), np.float32)}).shape == (1, 5, 4, 8)


def test_conv2d_errors():
    x = gf.zeros([1, 5, 5, 3])
    build_error(ValueError, "Conv2D.*depth.*3 and 2",
                lambda: gf.nn.conv2d(x, gf.zeros([3, 3, 2, 4]), 1, "SAME"))
    build_error(ValueError, "Conv2D.*Negative dimension",
                lambda: gf.nn.conv2d(x, gf.zeros([6, 1, 3, 4]), 1, "VALID"))
    build_error(ValueError, "Conv2D.*strides.*batch and depth",
                lambda: gf.nn.conv2d(x, gf.zeros([3, 3, 3, 4]), [2, 1, 1, 1], "SAME"))
    build_error(ValueError, "Conv2D.*padding",
                lambda: gf.nn.conv2d(x, gf.zeros([3, 3, 3, 4]), 1, "same"))
    build_error(ValueError, "Conv2D.*rank 4",
                lambda: gf.nn.conv2d(gf.zeros([5, 5, 3]), gf.zeros([3, 3, 3, 4]), 1, "SAME"))
    build_error(TypeError, "Conv2D", lambda: gf.nn.conv2d(gf.zeros([1, 5, 5, 3], gf.int32),
                                                           gf.zeros([3, 3, 3, 4], gf.int32),
                                                           1, "SAME"))
    build_error(TypeError, "Conv2D", lambda: gf.nn.conv2d(x, gf.zeros([3, 3, 3, 4],
                                                                      gf.float64), 1, "SAME"))
    with pytest.raises(ValueError, match="length 1, 2 or 4"):
        gf.nn.conv2d(x, gf.zeros([3, 3, 3, 4]), [1, 1, 1], "SAME")
    p = gf.placeholder(gf.float32, [None, None, None, 3])
    y = gf.nn.conv2d(p, gf.zeros([3, 3, 3, 4]), 1, "VALID")
    with pytest.raises(gf.errors.InvalidArgumentError, match="negative") as info:
        run(y, {p: np.zeros((1, 2, 5, 3), np.float32)})
    assert "Conv2D" in str(info.value)
    q = gf.placeholder(gf.float32, [None, None, None, None])
    with pytest.raises(gf.errors.InvalidArgumentError, match="depth"):
        run(gf.nn.conv2d(q, gf.zeros([1, 1, 3, 4]), 1, "SAME"),
            {q: np.zeros((1, 2, 2, 2), np.float32)})


# --- pooling ------------------------------------------------------------------------------
@st.composite
def pool_cases(draw):
    n, h, w, c = (draw(st.integers(0, 2)), draw(st.integers(1, 6)), draw(st.integers(1, 6)),
                  draw(st.integers(1, 3)))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    if padding == "VALID":
        assume(h >= k[0] and w >= k[1])
    return (n, h, w, c), k, s, padding


@given(case=pool_cases(), seed=seeds, dtype=float_dtypes)
@settings(max_examples=25)
def test_pools_match_naive_loops(case, seed, dtype):
    shape, k, s, padding = case
    with gf.Graph().as_default():
        x = rand(seed, shape, dtype)
        mx = gf.nn.max_pool(x, [1, *k, 1], [1, *s, 1], padding)
        av = gf.nn.avg_pool(x, list(k), list(s), padding)
        assert mx.op.type == "MaxPool" and av.op.type == "AvgPool"
        exp_max = naive_pool(x, k, s, padding, "max")
        exp_avg = naive_pool(x, k, s, padding, "avg").astype(dtype)
        assert mx.shape.as_list() == list(exp_max.shape) == av.shape.as_list()
        got_max, got_avg = run([mx, av])
        assert_same(got_max, exp_max)
        assert_same(got_avg, exp_avg, **TOL[dtype])


def test_avg_pool_same_divides_by_valid_count_and_int_max_pool():
    x = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    got = run(gf.nn.avg_pool(x, 2, 1, "SAME"))[0, :, :, 0]
    # The last row/column of windows hang off the edge: divide by 2 or 1, not 4.
    np.testing.assert_allclose(got, [[2, 3, 3.5], [5, 6, 6.5], [6.5, 7.5, 8]])
    neg = -np.ones((1, 1, 1, 1), np.float32)
    assert run(gf.nn.max_pool(neg, 3, 1, "SAME"))[0, 0, 0, 0] == -1  # padding never wins
    assert run(gf.nn.avg_pool(neg, 3, 2, "SAME"))[0, 0, 0, 0] == -1
    xi = np.random.default_rng(0).integers(-100, 100, (2, 5, 5, 2)).astype(np.int32)
    assert_same(run(gf.nn.max_pool(xi, 2, 2, "SAME")), naive_pool(xi, (2, 2), (2, 2), "SAME",
                                                                   "max"))


def test_pools_nchw_static_shapes_and_errors():
    x = rand(7, (2, 5, 6, 3))
    for fn in (gf.nn.max_pool, gf.nn.avg_pool):
        a = fn(x, [3, 2], 2, "SAME")
        b = fn(x.transpose(0, 3, 1, 2), [1, 1, 3, 2], [1, 1, 2, 2], "SAME", data_format="NCHW")
        assert b.shape.as_list() == [2, 3, 3, 3]
        va, vb = run([a, b])
        assert_same(vb, va.transpose(0, 3, 1, 2))
    p = gf.placeholder(gf.float32, [None, 28, None, 16])
    assert gf.nn.max_pool(p, 2, 2, "VALID").shape.as_list() == [None, 14, None, 16]
    assert gf.nn.avg_pool(p, 3, 2, "SAME").shape.as_list() == [None, 14, None, 16]
    assert gf.nn.max_pool(p, ksize=3, strides=1, padding="VALID").shape.as_list() == \
        [None, 26, None, 16]
    build_error(ValueError, "MaxPool.*Negative dimension",
                lambda: gf.nn.max_pool(gf.zeros([1, 2, 2, 1]), 3, 1, "VALID"))
    build_error(ValueError, "AvgPool.*ksize.*batch and depth",
                lambda: gf.nn.avg_pool(gf.zeros([1, 4, 4, 2]), [1, 2, 2, 2], 1, "VALID"))
    build_error(ValueError, "MaxPool.*padding", lambda: gf.nn.max_pool(gf.zeros([1, 4, 4, 1]),
                                                                        2, 2, "FULL"))
    build_error(TypeError, "AvgPool", lambda: gf.nn.avg_pool(gf.zeros([1, 4, 4, 1], gf.int32),
                                                              2, 2, "SAME"))
    with pytest.raises(ValueError, match="ksize cannot be zero"):
        gf.nn.max_pool(gf.zeros([1, 4, 4, 1]), 0, 1, "SAME")
    q = gf.placeholder(gf.float32, [None, None, None, 1])
    with pytest.raises(gf.errors.InvalidArgumentError, match="negative"):
        run(gf.nn.avg_pool(q, 3, 1, "VALID"), {q: np.zeros((1, 2, 5, 1), np.float32)})


# --- dropout ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_dropout_keeps_scaled_values_or_zeros(dtype):
    x = rand(1, (200, 50), dtype) + 10  # never 0
    y = gf.nn.dropout(x, rate=0.3, seed=5)
    assert y.shape.as_list() == [200, 50] and y.dtype == gf.as_dtype(dtype)
    types = {op.type for op in gf.get_default_graph().get_operations()
             if op.name.startswith("dropout/")}
    assert {"RandomUniform", "GreaterEqual", "Cast", "Mul"} <= types
    got = run(y)
    kept = got != 0
    np.testing.assert_allclose(got[kept], (x / np.asarray(0.7, dtype))[kept], rtol=1e-6)
    assert abs(kept.mean() - 0.7) < 0.02
    assert_same(run(y), got)  # an op seed repeats the mask across sessions


def test_dropout_keep_prob_noise_shape_and_placeholders():
    x = np.ones((300, 4), np.float32)
    gf.set_random_seed(3)
    cols = run(gf.nn.dropout(x, keep_prob=0.5, noise_shape=[1, 4]))
    assert all(np.all(c == 0) or np.all(c == 2) for c in cols.T)
    rows = run(gf.nn.dropout(x, 0.5, noise_shape=[None, 1]))  # None takes x's dim: [300, 1]
    assert all(np.all(r == 0) or np.all(r == 2) for r in rows)
    assert 0.35 < (rows[:, 0] != 0).mean() < 0.65
    assert gf.nn.dropout(x, 0.5, noise_shape=[None, 1]).op.inputs[1].op.inputs[0].shape \
        .as_list() == [300, 1]
    kp = gf.placeholder(gf.float32, [])
    p = gf.placeholder(gf.float32, [None, 4])
    y = gf.nn.dropout(p, keep_prob=kp)
    assert y.shape.as_list() == [None, 4]
    assert_same(run(y, {p: x, kp: 1.0}), x)
    assert 0.15 < (run(y, {p: x, kp: 0.25}) != 0).mean() < 0.35


def test_dropout_identity_and_errors():
    x = gf.placeholder(gf.float32, [None, 3])
    assert gf.nn.dropout(x, rate=0.0) is x
    assert gf.nn.dropout(x, keep_prob=1.0) is x
    assert gf.nn.dropout(x, rate=gf.constant(0.0)) is x
    for kwargs, match in [({"rate": 1.0}, r"range \[0, 1\)"), ({"rate": -0.1}, "range"),
                          ({"keep_prob": 0.0}, "keep_prob"), ({}, "provide a rate"),
                          ({"rate": 0.5, "keep_prob": 0.5}, "both")]:
        with pytest.raises(ValueError, match=match) as info:
            gf.nn.dropout(x, **kwargs)
        assert isinstance(info.value, gf.errors.OpError)
    with pytest.raises(ValueError, match="floating point"):
        gf.nn.dropout(gf.constant([1, 2]), rate=0.5)
    with pytest.raises(ValueError, match="scalar"):
        gf.nn.dropout(x, rate=gf.constant([0.5, 0.5]))


# --- moments / batch_normalization ----------------------------------------------------------
@given(shape=shapes(1, 4, 1, 4), seed=seeds, dtype=float_dtypes, keep=st.booleans(),
       data=st.data())
@settings(max_examples=20)
def test_moments_match_numpy(shape, seed, dtype, keep, data):
    axes = data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True))
    with gf.Graph().as_default():
        x = rand(seed, shape, dtype) + 5
        mean, var = gf.nn.moments(x, axes, keepdims=keep)
        x64 = x.astype(np.float64)
        em, ev = x64.mean(axis=tuple(axes), keepdims=keep), x64.var(axis=tuple(axes),
                                                                     keepdims=keep)
        assert mean.shape.as_list() == list(em.shape) == var.shape.as_list()
        gm, gv = run([mean, var])
        tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else TOL[dtype]
        assert_same(gm, em.astype(dtype), **tol)
        assert_same(gv, ev.astype(dtype), **tol)


def test_moments_graph_keep_dims_alias_and_half():
    x = gf.placeholder(gf.float32, [None, 4, 4, 3])
    mean, var = gf.nn.moments(x, [0, 1, 2])
    assert mean.op.name == "moments/Squeeze" and var.shape.as_list() == [3]
    types = {op.type for op in gf.get_default_graph().get_operations()}
    assert {"Mean", "SquaredDifference", "StopGradient", "Squeeze"} <= types
    m2, v2 = gf.nn.moments(x, [1, 2], keep_dims=True)
    assert m2.shape.as_list() == [None, 1, 1, 3]
    h = np.array([[1.0, 2.0], [3.0, 6.0]], np.float16)
    hm, hv = gf.nn.moments(h, [0])
    assert hm.dtype == gf.float16 and hv.dtype == gf.float16
    assert_same(run(hm), np.float16([2.0, 4.0]))
    assert_same(run(hv), np.float16([1.0, 4.0]))


@given(shape=shapes(1, 3, 1, 5), seed=seeds, dtype=float_dtypes,
       use_offset=st.booleans(), use_scale=st.booleans())
@settings(max_examples=15)
def test_batch_normalization_matches_numpy(shape, seed, dtype, use_offset, use_scale):
    with gf.Graph().as_default():
        x = rand(seed, shape, dtype)
        c = shape[-1]
        mean, offset, scale = (rand(seed + i, [c], dtype) for i in (1, 2, 3))
        var = np.abs(rand(seed + 4, [c], dtype)) + np.asarray(0.1, dtype)
        y = gf.nn.batch_normalization(x, mean, var, offset if use_offset else None,
                                      scale if use_scale else None, 1e-3)
        x64 = x.astype(np.float64)
        expected = (x64 - mean) / np.sqrt(var.astype(np.float64) + 1e-3)
        if use_scale:
            expected = expected * scale
        if use_offset:
            expected = expected + offset
        assert y.shape == gf.TensorShape(shape)
        assert_same(run(y), expected.astype(dtype), rtol=1e-4 if dtype == np.float32 else 1e-10,
                    atol=1e-5 if dtype == np.float32 else 1e-12)


def test_batch_normalization_graph_and_python_values():
    x = gf.placeholder(gf.float64, [None, 2])
    y = gf.nn.batch_normalization(x, [1.0, 2.0], [4.0, 9.0], 0.5, 2.0, 0.0, name="bn")
    assert y.dtype == gf.float64 and y.op.name.startswith("bn/")
    assert "Rsqrt" in {op.type for op in gf.get_default_graph().get_operations()}
    # 2 * (3 - 1) / 2 + 0.5 and 2 * (5 - 2) / 3 + 0.5
    assert_same(run(y, {x: np.array([[3.0, 5.0]])}), np.array([[2.5, 2.5]]))


def test_namespace_is_tf1_nn():
    expected = {"relu", "relu6", "elu", "selu", "softplus", "softsign", "leaky_relu", "gelu",
                "softmax", "log_softmax", "bias_add", "l2_loss", "sigmoid", "tanh",
                "softmax_cross_entropy_with_logits", "softmax_cross_entropy_with_logits_v2",
                "sparse_softmax_cross_entropy_with_logits", "sigmoid_cross_entropy_with_logits",
                "conv2d", "max_pool", "avg_pool", "dropout", "moments", "batch_normalization"}
    missing = {n for n in expected if not callable(getattr(gf.nn, n, None))}
    assert not missing
    for fn in expected:
        assert getattr(gf.nn, fn).__doc__
