"""Gradients of every nn op against float64 central differences (first and second order).

Each op's rule is checked with ``gf.test.check_gradients`` on hypothesis-drawn
shapes and values, the gradient primitives (BiasAddGrad, Conv2DBackpropInput,
Conv2DBackpropFilter, MaxPoolGrad, MaxPoolGradGrad, AvgPoolGrad) against loop
oracles, max-pool tie routing against TF's scan rule, large logits, unknown
batch dims, and the nn functions built from primitives (dropout, moments,
batch_normalization, sigmoid_cross_entropy_with_logits).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import graphflow as gf
from graphflow.ops.building import make

check = gf.test.check_gradients
seeds = st.integers(0, 2**32 - 1)


def rand(seed, shape, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def distinct(seed, shape, spacing=0.05):
    """Values at least ``spacing`` apart: max pool has no ties for finite differences."""
    n = int(np.prod(shape, dtype=np.int64))
    rng = np.random.default_rng(seed)
    return ((rng.permutation(n) - n / 2) * spacing + rng.uniform(0, spacing / 10, n)
            ).reshape(shape)


def distribution(seed, shape):
    p = np.random.default_rng(seed).uniform(0.1, 1.0, shape)
    return p / p.sum(axis=-1, keepdims=True)


def op_types(tensors):
    """Types of all ops the given tensors depend on."""
    seen, stack = set(), [t.op for t in tensors]
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        stack.extend(t.op for t in op.inputs)
    return {op.type for op in seen}


def dyn_check(fn, args, batch_axes, order=1, atol=1e-6, rtol=1e-5):
    """check_gradients with placeholders whose ``batch_axes`` dims are None.

    Returns the symbolic gradients (first order), for static-shape assertions.
    """
    g = gf.Graph()
    with g.as_default():
        phs = [gf.placeholder(gf.float64, [None if i in axes else d for i, d in enumerate(a.shape)])
               for a, axes in zip(args, batch_axes)]
        out = fn(*phs)
        grads = gf.gradients(out, phs)
        target, shape = out, np.shape(run(out, dict(zip(phs, args)), graph=g))
        if order == 2:
            rng = np.random.default_rng(7)
            terms = [gf.reduce_sum(gi * gf.constant(rng.standard_normal(a.shape)))
                     for gi, a in zip(grads, args) if gi is not None]
            target, shape = gf.add_n(terms), ()
        feeds = dict(zip(phs, args))
        for p, a in zip(phs, args):
            others = {q: v for q, v in feeds.items() if q is not p}
            theory, numeric = gf.test.compute_gradient(p, a.shape, target, shape,
                                                       x_init_value=a.copy(), delta=1e-6,
                                                       extra_feed_dict=others)
            np.testing.assert_allclose(theory, numeric, atol=atol, rtol=rtol)
        return grads


# --- softmax, log_softmax ------------------------------------------------------------------
@st.composite
def shape_and_axis(draw, max_dims=3):
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=max_dims))
    return shape, draw(st.integers(-len(shape), len(shape) - 1))


@pytest.mark.parametrize("fn", [gf.nn.softmax, gf.nn.log_softmax])
@given(sa=shape_and_axis(), seed=seeds)
def test_softmax_gradients(fn, sa, seed):
    shape, axis = sa
    x = rand(seed, shape, 2.0)
    check(lambda t: fn(t, axis=axis), [x])
    check(lambda t: fn(t, axis=axis), [x], order=2)


@pytest.mark.parametrize("fn", [gf.nn.softmax, gf.nn.log_softmax])
def test_softmax_second_order_through_nonlinear_loss(fn):
    x = rand(1, (3, 4), 2.0)
    check(lambda t: gf.sin(fn(t, axis=0)) * gf.constant(rand(2, (3, 4))), [x], order=2)


@pytest.mark.parametrize("fn", [gf.nn.softmax, gf.nn.log_softmax])
def test_softmax_large_logits_gradients_are_finite(fn):
    x = gf.constant(np.array([[1000.0, 0.0, -1000.0], [1e4, 1e4, -1e4]]))
    (g,) = gf.gradients(fn(x) * gf.constant(rand(3, (2, 3))), [x])
    assert np.all(np.isfinite(run(g)))


@pytest.mark.parametrize("fn", [gf.nn.softmax, gf.nn.log_softmax])
def test_softmax_gradients_unknown_batch(fn):
    x = rand(4, (3, 5))
    dyn_check(lambda t: fn(t) * gf.constant(rand(5, (3, 5))), [x], [{0}], order=2)
    grads = dyn_check(fn, [x], [{0}])
    assert grads[0].shape.as_list() == [None, 5]


# --- bias_add, l2_loss -----------------------------------------------------------------------
@given(rank=st.integers(2, 4), nchw=st.booleans(),
       dims=st.lists(st.integers(1, 3), min_size=4, max_size=4), seed=seeds)
def test_bias_add_gradients(rank, nchw, dims, seed):
    assume(not nchw or rank >= 3)
    shape = dims[:rank]
    c = shape[1] if nchw else shape[-1]
    x, b = rand(seed, shape), rand(seed + 1, [c])
    fmt = "NCHW" if nchw else None
    check(lambda v, bias: gf.nn.bias_add(v, bias, data_format=fmt), [x, b])
    check(lambda v, bias: gf.square(gf.nn.bias_add(v, bias, data_format=fmt)), [x, b],
          order=2)


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
def test_bias_add_grad_op(fmt):
    x = gf.placeholder(gf.float64, [None, 3, 4, 2])
    b = gf.placeholder(gf.float64, [3 if fmt == "NCHW" else 2])
    y = gf.nn.bias_add(x, b, data_format=fmt)
    dy = rand(6, (2, 3, 4, 2))
    gx, gb = gf.gradients(y, [x, b], grad_ys=gf.constant(dy))
    assert gb.op.type == "BiasAddGrad" and gb.shape.as_list() == b.shape.as_list()
    axes = (0, 2, 3) if fmt == "NCHW" else (0, 1, 2)
    vx, vb = run([gx, gb], {x: rand(7, (2, 3, 4, 2)), b: np.zeros(b.shape.as_list())})
    np.testing.assert_allclose(vx, dy)
    np.testing.assert_allclose(vb, dy.sum(axis=axes), rtol=1e-12)


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
def test_bias_add_gradients_unknown_batch(fmt):
    x, b = rand(8, (2, 3, 2)), rand(9, [3 if fmt == "NCHW" else 2])
    dyn_check(lambda v, bias: gf.square(gf.nn.bias_add(v, bias, data_format=fmt)), [x, b],
              [{0}, set()], order=2)


@given(shape=st.lists(st.integers(1, 4), max_size=3), seed=seeds)
def test_l2_loss_gradients(shape, seed):
    x = rand(seed, shape)
    check(gf.nn.l2_loss, [x])
    check(lambda t: gf.square(gf.nn.l2_loss(t)), [x], order=2)


def test_l2_loss_gradient_is_input_times_dy():
    x = gf.placeholder(gf.float64, [None, 3])
    (g,) = gf.gradients(3.0 * gf.nn.l2_loss(x), [x])
    v = rand(10, (2, 3))
    np.testing.assert_allclose(run(g, {x: v}), 3.0 * v)


# --- cross entropies -------------------------------------------------------------------------
xent = gf.nn.softmax_cross_entropy_with_logits_v2
sparse_xent = gf.nn.sparse_softmax_cross_entropy_with_logits


@given(batch=st.lists(st.integers(1, 3), max_size=2), classes=st.integers(1, 4), seed=seeds)
def test_softmax_xent_gradients(batch, classes, seed):
    shape = batch + [classes]
    x, y = rand(seed, shape, 2.0), distribution(seed + 1, shape)
    check(lambda a, b: xent(labels=b, logits=a), [x, y])
    check(lambda a, b: xent(labels=b, logits=a), [x, y], order=2)
    w = rand(seed + 2, batch)
    check(lambda a, b: gf.square(xent(labels=b, logits=a)) * gf.constant(w), [x, y], order=2)


def test_softmax_xent_gradient_values_match_tf_rule():
    # Labels that are not distributions still get TF's backprop, softmax - labels.
    x, y = rand(11, (3, 4), 2.0), 2 * distribution(12, (3, 4))
    dy = rand(13, (3,))
    lg, lb = gf.constant(x), gf.constant(y)
    gx, gy = gf.gradients(xent(labels=lb, logits=lg), [lg, lb], grad_ys=gf.constant(dy))
    e = np.exp(x - x.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True)
    vx, vy = run([gx, gy])
    np.testing.assert_allclose(vx, dy[:, None] * (p - y), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(vy, -dy[:, None] * np.log(p), rtol=1e-12)


def test_softmax_xent_broadcast_labels_and_axis():
    x, y = rand(14, (3, 4)), distribution(15, (4,))
    check(lambda a, b: xent(labels=b, logits=a), [x, y], order=2)
    check(lambda a, b: xent(labels=b, logits=a, axis=0), [x, distribution(16, (4, 3)).T.copy()],
          order=2)


def test_softmax_xent_v1_stops_label_gradient():
    lg, lb = gf.constant(rand(17, (2, 3))), gf.constant(distribution(18, (2, 3)))
    gx, gy = gf.gradients(gf.nn.softmax_cross_entropy_with_logits(labels=lb, logits=lg),
                          [lg, lb])
    assert gx is not None and gy is None


def test_softmax_xent_large_logits_gradients_finite():
    x = np.array([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 1000.0]])
    y = distribution(19, (2, 3))
    lg, lb = gf.constant(x), gf.constant(y)
    loss = xent(labels=lb, logits=lg)
    gx, gy = gf.gradients(loss, [lg, lb])
    (hx,) = gf.gradients(gf.reduce_sum(gx * gf.constant(rand(20, (2, 3)))), [lg])
    vx, vy, vh = run([gx, gy, hx])
    assert np.all(np.isfinite(vx)) and np.all(np.isfinite(vy)) and np.all(np.isfinite(vh))
    np.testing.assert_allclose(vx, np.array([[1, 0, 0], [0, 0.5, 0.5]]) - y, atol=1e-12)
    sp = sparse_xent(labels=gf.constant(np.array([2, 0])), logits=lg)
    (gs,) = gf.gradients(sp, [lg])
    np.testing.assert_allclose(run(gs), [[1, 0, -1], [-1, 0.5, 0.5]], atol=1e-12)


@given(batch=st.lists(st.integers(1, 3), max_size=2), classes=st.integers(1, 4), seed=seeds)
def test_sparse_softmax_xent_gradients(batch, classes, seed):
    x = rand(seed, batch + [classes], 2.0)
    labels = np.random.default_rng(seed).integers(0, classes, batch)
    w = rand(seed + 1, batch)

    def loss(a):
        return sparse_xent(labels=gf.constant(labels), logits=a)

    check(loss, [x])
    check(loss, [x], order=2)
    check(lambda a: gf.square(loss(a)) * gf.constant(w), [x], order=2)


def test_sparse_softmax_xent_labels_get_no_gradient():
    lg = gf.constant(rand(21, (2, 3)))
    lb = gf.constant(np.array([0, 2], np.int32))
    assert gf.gradients(sparse_xent(labels=lb, logits=lg), [lg, lb])[1] is None


def test_xent_gradients_unknown_batch():
    x, y = rand(22, (3, 4)), distribution(23, (3, 4))
    dyn_check(lambda a, b: xent(labels=b, logits=a) * gf.constant(rand(24, (3,))),
              [x, y], [{0}, {0}], order=2)
    grads = dyn_check(lambda a, b: xent(labels=b, logits=a), [x, y], [{0}, {0}])
    assert [g.shape.as_list() for g in grads] == [[None, 4], [None, 4]]
    with gf.Graph().as_default():
        labels = gf.placeholder(gf.int64, [None])
        lg = gf.placeholder(gf.float64, [None, 4])
        loss = gf.square(sparse_xent(labels=labels, logits=lg))
        (gx,) = gf.gradients(loss, [lg])
        target = gf.reduce_sum(gx * gf.constant(rand(25, (3, 4))))
        assert gx.shape.as_list() == [None, 4]
        for y_, shape in ((loss, (3,)), (target, ())):
            theory, numeric = gf.test.compute_gradient(
                lg, (3, 4), y_, shape, x.copy(), 1e-6, extra_feed_dict={labels: [1, 3, 0]})
            np.testing.assert_allclose(theory, numeric, atol=1e-6, rtol=1e-5)


def test_gradients_of_unknown_rank_inputs():
    v, lab, b = rand(55, (2, 3, 4)), distribution(56, (2, 3, 4)), rand(57, (3,))
    cases = [
        lambda t, y, c: gf.nn.softmax(t),
        lambda t, y, c: gf.nn.log_softmax(t),
        lambda t, y, c: xent(labels=y, logits=t),
        lambda t, y, c: gf.nn.bias_add(t, c, data_format="NCHW"),
    ]
    for fn in cases:
        with gf.Graph().as_default():
            x, y, c = (gf.placeholder(gf.float64) for _ in range(3))
            out = gf.sin(fn(x, y, c))
            feeds = {x: v, y: lab, c: b}
            shape = np.shape(run(out, feeds))
            for wrt in (x, c):
                (g,) = gf.gradients(out, [wrt])
                if g is None:
                    continue
                assert g.shape.ndims is None or wrt is c
                target = gf.reduce_sum(g * gf.constant(rand(58, feeds[wrt].shape)))
                others = {k: a for k, a in feeds.items() if k is not wrt}
                for t_, ts in ((out, shape), (target, ())):
                    theory, numeric = gf.test.compute_gradient(
                        wrt, feeds[wrt].shape, t_, ts, feeds[wrt].copy(), 1e-6,
                        extra_feed_dict=others)
                    np.testing.assert_allclose(theory, numeric, atol=1e-6, rtol=1e-5)


# --- conv2d ----------------------------------------------------------------------------------
@st.composite
def conv_cases(draw):
    n, c, oc = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    strides = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    dilations = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    padding = draw(st.sampled_from(["SAME", "VALID", "EXPLICIT"]))
    fmt = draw(st.sampled_from(["NHWC", "NCHW"]))
    if padding == "EXPLICIT":
        pads = [draw(st.integers(0, 2)) for _ in range(4)]
        padding = [[0, 0], pads[:2], pads[2:], [0, 0]]
        if fmt == "NCHW":
            padding = [[0, 0], [0, 0], pads[:2], pads[2:]]
        eh = h + pads[0] + pads[1]
        ew = w + pads[2] + pads[3]
    else:
        eh, ew = (h, w) if padding == "VALID" else (10**6, 10**6)
    assume(eh >= (kh - 1) * dilations[0] + 1 and ew >= (kw - 1) * dilations[1] + 1)
    x_shape = [n, h, w, c] if fmt == "NHWC" else [n, c, h, w]
    return x_shape, [kh, kw, c, oc], strides, dilations, padding, fmt


def _conv(case):
    _, _, strides, dilations, padding, fmt = case
    return lambda a, f: gf.nn.conv2d(a, f, strides, padding, data_format=fmt,
                                     dilations=dilations)


@given(case=conv_cases(), seed=seeds)
def test_conv2d_gradients(case, seed):
    x, f = rand(seed, case[0]), rand(seed + 1, case[1])
    check(_conv(case), [x, f])


@given(case=conv_cases(), seed=seeds)
@settings(max_examples=12)
def test_conv2d_second_order(case, seed):
    x, f = rand(seed, case[0]), rand(seed + 1, case[1])
    conv = _conv(case)
    check(lambda a, b: gf.square(conv(a, b)), [x, f], order=2)


def naive_conv_input_grad(dy, f, x_shape, strides, padding, dilations=(1, 1)):
    """Scatters each output pixel's gradient through the filter taps (NHWC, loops)."""
    n, h, w, c = x_shape
    kh, kw = f.shape[:2]
    (sh, sw), (dh, dw) = strides, dilations
    oh, ow = dy.shape[1:3]
    if padding == "SAME":
        top = max((oh - 1) * sh + (kh - 1) * dh + 1 - h, 0) // 2
        left = max((ow - 1) * sw + (kw - 1) * dw + 1 - w, 0) // 2
    else:
        top = left = 0
    dx = np.zeros(x_shape)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for di in range(kh):
                    for dj in range(kw):
                        r, q = i * sh + di * dh - top, j * sw + dj * dw - left
                        if 0 <= r < h and 0 <= q < w:
                            dx[b, r, q] += f[di, dj] @ dy[b, i, j]
    return dx


def naive_conv_filter_grad(x, dy, f_shape, strides, padding, dilations=(1, 1)):
    """Accumulates input pixel x output gradient products per filter tap (NHWC, loops)."""
    n, h, w, c = x.shape
    kh, kw = f_shape[:2]
    (sh, sw), (dh, dw) = strides, dilations
    oh, ow = dy.shape[1:3]
    if padding == "SAME":
        top = max((oh - 1) * sh + (kh - 1) * dh + 1 - h, 0) // 2
        left = max((ow - 1) * sw + (kw - 1) * dw + 1 - w, 0) // 2
    else:
        top = left = 0
    df = np.zeros(f_shape)
    for i in range(oh):
        for j in range(ow):
            for di in range(kh):
                for dj in range(kw):
                    r, q = i * sh + di * dh - top, j * sw + dj * dw - left
                    if 0 <= r < h and 0 <= q < w:
                        df[di, dj] += x[:, r, q].T @ dy[:, i, j]
    return df


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("strides,dilations", [((1, 1), (1, 1)), ((2, 2), (1, 1)),
                                               ((2, 1), (1, 1)), ((1, 1), (2, 2))])
def test_conv2d_backprop_ops_match_loops(padding, strides, dilations):
    x, f = rand(26, (2, 5, 6, 3)), rand(27, (3, 2, 3, 4))
    xt, ft = gf.constant(x), gf.constant(f)
    y = gf.nn.conv2d(xt, ft, strides, padding, dilations=dilations)
    dy = rand(28, y.shape.as_list())
    gx, gf_ = gf.gradients(y, [xt, ft], grad_ys=gf.constant(dy))
    assert gx.op.type == "Conv2DBackpropInput" and gf_.op.type == "Conv2DBackpropFilter"
    bi = gf.nn.conv2d_backprop_input([2, 5, 6, 3], ft, gf.constant(dy), strides, padding,
                                     dilations=dilations)
    bf = gf.nn.conv2d_backprop_filter(xt, [3, 2, 3, 4], gf.constant(dy), strides, padding,
                                      dilations=dilations)
    vx, vf, vbi, vbf = run([gx, gf_, bi, bf])
    expected = naive_conv_input_grad(dy, f, x.shape, strides, padding, dilations)
    np.testing.assert_allclose(vx, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(vbi, expected, rtol=1e-10, atol=1e-12)
    expected = naive_conv_filter_grad(x, dy, f.shape, strides, padding, dilations)
    np.testing.assert_allclose(vf, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(vbf, expected, rtol=1e-10, atol=1e-12)


def test_conv2d_backprop_ops_second_order():
    x, f, dy = rand(29, (1, 5, 5, 2)), rand(30, (3, 3, 2, 3)), rand(31, (1, 3, 3, 3))

    def bpi(filt, g):
        return gf.sin(gf.nn.conv2d_backprop_input([1, 5, 5, 2], filt, g, 2, "SAME"))

    def bpf(inp, g):
        return gf.sin(gf.nn.conv2d_backprop_filter(inp, [3, 3, 2, 3], g, 2, "SAME"))

    check(bpi, [f, dy], order=2)
    check(bpf, [x, dy], order=2)


def test_conv2d_transpose_matches_loops_and_differentiates():
    x, f = rand(32, (2, 3, 3, 4)), rand(33, (3, 3, 2, 4))  # [h, w, out, in]
    y = gf.nn.conv2d_transpose(gf.constant(x), gf.constant(f), [2, 6, 5, 2], 2, "SAME")
    assert y.shape.as_list() == [2, 6, 5, 2] and y.op.type == "Conv2DBackpropInput"
    np.testing.assert_allclose(run(y), naive_conv_input_grad(x, f, (2, 6, 5, 2), (2, 2), "SAME"),
                               rtol=1e-10, atol=1e-12)
    check(lambda a, b: gf.square(gf.nn.conv2d_transpose(a, b, [2, 6, 5, 2], 2, "SAME")),
          [x, f], order=2)
    with pytest.raises(ValueError, match="channels"):
        gf.nn.conv2d_transpose(gf.constant(x), gf.constant(f), [2, 6, 5, 3], 2, "SAME")


def test_conv2d_gradients_unknown_batch():
    x, f = rand(34, (2, 6, 5, 2)), rand(35, (3, 3, 2, 2))

    def fn(a, b):
        return gf.square(gf.nn.conv2d(a, b, 2, "SAME"))

    gx, gf_ = dyn_check(fn, [x, f], [{0}, set()])
    assert gx.shape.as_list() == [None, 6, 5, 2] and gf_.shape.as_list() == [3, 3, 2, 2]
    dyn_check(fn, [x, f], [{0}, set()], order=2)
    gx, gf_ = dyn_check(fn, [x, f], [{0, 1, 2}, set()])
    assert gx.shape.as_list() == [None, None, None, 2]


def test_conv2d_backprop_shape_errors():
    f = gf.constant(rand(36, (3, 3, 2, 4)))
    with pytest.raises(ValueError, match="out_backprop"):
        gf.nn.conv2d_backprop_input([1, 5, 5, 2], f, gf.zeros([1, 4, 4, 4], gf.float64), 1,
                                    "SAME")
    with pytest.raises(ValueError, match="input_sizes"):
        gf.nn.conv2d_backprop_input([1, 5, 5, 3], f, gf.zeros([1, 5, 5, 4], gf.float64), 1,
                                    "SAME")
    with pytest.raises(ValueError, match="filter_sizes"):
        gf.nn.conv2d_backprop_filter(gf.zeros([1, 5, 5, 2], gf.float64), [3, 3, 2, 5],
                                     gf.zeros([1, 5, 5, 4], gf.float64), 1, "SAME")
    sizes = gf.placeholder(gf.int32, [4])
    y = gf.nn.conv2d_backprop_input(sizes, f, gf.zeros([1, 5, 5, 4], gf.float64), 1, "SAME")
    assert y.shape.as_list() == [1, None, None, 2]
    with pytest.raises(gf.errors.InvalidArgumentError, match="out_backprop"):
        run(y, {sizes: [1, 7, 5, 2]})


# --- pooling ---------------------------------------------------------------------------------
@st.composite
def pool_cases(draw):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    k = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    s = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    fmt = draw(st.sampled_from(["NHWC", "NCHW"]))
    assume(padding == "SAME" or (h >= k[0] and w >= k[1]))
    return ([n, h, w, c] if fmt == "NHWC" else [n, c, h, w]), k, s, padding, fmt


def _pool(fn, case):
    _, k, s, padding, fmt = case
    return lambda a: fn(a, k, s, padding, data_format=fmt)


@given(case=pool_cases(), seed=seeds)
def test_max_pool_gradients(case, seed):
    x = distinct(seed, case[0])
    check(_pool(gf.nn.max_pool, case), [x])
    pool = _pool(gf.nn.max_pool, case)
    check(lambda a: gf.square(pool(a)), [x], order=2)


@given(case=pool_cases(), seed=seeds)
def test_avg_pool_gradients(case, seed):
    x = rand(seed, case[0])
    check(_pool(gf.nn.avg_pool, case), [x])
    pool = _pool(gf.nn.avg_pool, case)
    check(lambda a: gf.square(pool(a)), [x], order=2)


def tf_max_pool_grad(x, dy, k, s, padding):
    """TF's CPU rule with loops: each output's gradient goes to the first maximum of its
    window's in-bounds elements, scanned row by row (strictly greater replaces)."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw) = k, s
    oh, ow = dy.shape[1:3]
    if padding == "SAME":
        top, left = max((oh - 1) * sh + kh - h, 0) // 2, max((ow - 1) * sw + kw - w, 0) // 2
    else:
        top = left = 0
    dx = np.zeros_like(x)
    argmax = {}
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for d in range(c):
                    best = None
                    for r in range(i * sh - top, i * sh - top + kh):
                        for q in range(j * sw - left, j * sw - left + kw):
                            if 0 <= r < h and 0 <= q < w and (best is None or
                                                              x[b, best[0], best[1], d] <
                                                              x[b, r, q, d]):
                                best = (r, q)
                    dx[b, best[0], best[1], d] += dy[b, i, j, d]
                    argmax[b, i, j, d] = best
    return dx, argmax


@pytest.mark.parametrize("k,s,padding", [((2, 2), (2, 2), "VALID"), ((3, 3), (1, 1), "SAME"),
                                         ((3, 2), (2, 1), "SAME"), ((2, 3), (1, 2), "VALID")])
def test_max_pool_ties_go_to_first_maximum(k, s, padding):
    rng = np.random.default_rng(37)
    x = rng.integers(-2, 1, (2, 5, 6, 2)).astype(np.float64)  # many ties, all <= 0
    x[0, 0, :3, 0] = -np.inf  # -inf inputs still beat padding
    x[1, :, :, 1] = -1.0  # every window is one big tie
    x[0, :, :2, 1] = -np.inf  # SAME windows at the left edge: only -inf and padding
    xt = gf.constant(x)
    y = gf.nn.max_pool(xt, list(k), list(s), padding)
    dy = rng.standard_normal(y.shape.as_list())
    (gx,) = gf.gradients(y, [xt], grad_ys=gf.constant(dy))
    assert gx.op.type == "MaxPoolGrad"
    expected, argmax = tf_max_pool_grad(x, dy, k, s, padding)
    np.testing.assert_allclose(run(gx), expected, rtol=1e-12, atol=1e-15)
    # MaxPoolGradGrad picks the incoming (input-shaped) gradient at the same maxima.
    g2 = rng.standard_normal(x.shape)
    gg = make("MaxPoolGradGrad", [xt, y, gf.constant(g2)], gx.op.attrs)
    picked = np.zeros(dy.shape)
    for (b, i, j, d), (r, q) in argmax.items():
        picked[b, i, j, d] = g2[b, r, q, d]
    np.testing.assert_allclose(run(gg), picked)


def test_max_pool_grad_grad_rules_wire_up():
    x = gf.placeholder(gf.float64, [None, 4, 4, 1])
    y = gf.nn.max_pool(x, 2, 2, "VALID")
    (g1,) = gf.gradients(gf.reduce_sum(gf.square(y)), [x])
    (g2,) = gf.gradients(gf.reduce_sum(g1 * gf.constant(rand(38, (1, 4, 4, 1)))), [x])
    (g3,) = gf.gradients(gf.reduce_sum(g2 * gf.constant(rand(39, (1, 4, 4, 1)))), [x])
    assert {"MaxPoolGrad", "MaxPoolGradGrad"} <= op_types([g2])
    assert g1.shape.as_list() == g2.shape.as_list() == [None, 4, 4, 1]
    v = distinct(40, (1, 4, 4, 1))
    a, b, c = run([g1, g2, g3], {x: v})
    # d/dx sum(y^2) routes 2*max to each max; its Hessian is 2 on the maxima.
    np.testing.assert_allclose(b, 2 * rand(38, (1, 4, 4, 1)) * (a != 0))
    np.testing.assert_allclose(c, 0.0)


def test_avg_pool_grad_op():
    x = gf.placeholder(gf.float64, [None, 5, 4, 2])
    y = gf.nn.avg_pool(x, 3, 2, "SAME")
    assert gf.gradients(y, [x])[0].shape.as_list() == [None, 5, 4, 2]
    dy = rand(41, (2, 3, 2, 2))
    (gx,) = gf.gradients(y, [x], grad_ys=gf.constant(dy))
    assert gx.op.type == "AvgPoolGrad" and gx.shape.as_list() == [2, 5, 4, 2]
    # AvgPool is linear: its gradient is the adjoint, <avg_pool(v), dy> = <v, gx>.
    v = rand(42, (2, 5, 4, 2))
    yv, gv = run([y, gx], {x: v})
    np.testing.assert_allclose(np.sum(yv * dy), np.sum(v * gv), rtol=1e-12)


@pytest.mark.parametrize("fn", ["max_pool", "avg_pool"])
def test_pool_gradients_unknown_batch(fn):
    x = distinct(43, (2, 5, 5, 2))

    def pool(a):
        return gf.square(getattr(gf.nn, fn)(a, 2, 2, "SAME"))

    (g,) = dyn_check(pool, [x], [{0}], order=2)
    (g,) = dyn_check(pool, [x], [{0, 1, 2}])
    assert g.shape.as_list() == [None, None, None, 2]


# --- functions built from primitives -------------------------------------------------------
def test_dropout_gradient_is_the_kept_mask_scaled():
    x = gf.placeholder(gf.float64, [None, 50])
    rate = gf.placeholder(gf.float64, [])
    for r, kw in ((0.5, {"rate": 0.5}), (0.25, {"keep_prob": 0.75}), (0.4, {"rate": rate})):
        y = gf.nn.dropout(x, seed=3, **kw)
        w = rand(44, (2, 50))
        (g,) = gf.gradients(gf.reduce_sum(y * gf.constant(w)), [x])
        v = rand(45, (2, 50)) + 10.0  # never 0, so y != 0 exactly where kept
        yv, gv = run([y, g], {x: v, rate: 0.4})
        kept = yv != 0
        assert 0 < kept.sum() < kept.size
        np.testing.assert_allclose(gv, np.where(kept, w / (1 - r), 0.0))
        np.testing.assert_allclose(yv[kept], v[kept] / (1 - r))


def test_dropout_noise_shape_gradient():
    x = gf.placeholder(gf.float64, [4, 6])
    y = gf.nn.dropout(x, rate=0.5, noise_shape=[4, 1], seed=5)
    (g,) = gf.gradients(y, [x])
    v = rand(46, (4, 6)) + 10.0
    yv, gv = run([y, g], {x: v})
    np.testing.assert_allclose(gv, np.where(yv != 0, 2.0, 0.0))
    assert np.all((gv == 0).all(axis=1) | (gv != 0).all(axis=1))


@pytest.mark.parametrize("axes,keepdims", [([0], False), ([0, 1, 2], True), ([1], False)])
def test_moments_gradients(axes, keepdims):
    x = rand(47, (3, 2, 2, 2), 2.0)
    check(lambda a: gf.nn.moments(a, axes, keepdims=keepdims)[0], [x])
    check(lambda a: gf.nn.moments(a, axes, keepdims=keepdims)[1], [x])
    check(lambda a: gf.sin(gf.nn.moments(a, axes, keepdims=keepdims)[0]), [x], order=2)


def test_moments_variance_hessian_is_tf1s():
    # TF1's moments uses stop_gradient(mean) in the variance: exact at first order
    # (that term's gradient is zero) but the Hessian loses the -2/N^2 coupling.
    xt = gf.constant(rand(48, (4, 2)))
    var = gf.nn.moments(xt, [0])[1]
    (g,) = gf.gradients(var, [xt])
    w = rand(49, (4, 2))
    (h,) = gf.gradients(gf.reduce_sum(g * gf.constant(w)), [xt])
    np.testing.assert_allclose(run(h), 2 / 4 * w)  # TF1: 2/N * I, no mean coupling


@given(seed=seeds, scale=st.booleans(), offset=st.booleans())
@settings(max_examples=10)
def test_batch_normalization_gradients(seed, scale, offset):
    x, m = rand(seed, (3, 4)), rand(seed + 1, (4,))
    v = np.random.default_rng(seed).uniform(0.5, 2.0, (4,))
    extra = [rand(seed + 2, (4,))] * (int(scale) + int(offset))

    def fn(a, mean, var, *rest):
        rest = list(rest)
        sc = rest.pop() if scale else None
        of = rest.pop() if offset else None
        return gf.nn.batch_normalization(a, mean, var, of, sc, 1e-3)

    check(fn, [x, m, v] + extra)
    check(fn, [x, m, v] + extra, order=2)


def test_batch_normalization_with_batch_moments():
    x, s, o = rand(50, (5, 3)), rand(51, (3,)), rand(52, (3,))

    def fn(a, sc, of):
        mean, var = gf.nn.moments(a, [0])
        return gf.nn.batch_normalization(a, mean, var, of, sc, 1e-3)

    check(fn, [x, s, o], atol=1e-5)
    dyn_check(fn, [x, s, o], [{0}, set(), set()], atol=1e-5)


@given(shape=st.lists(st.integers(1, 4), max_size=3), seed=seeds)
def test_sigmoid_xent_gradients(shape, seed):
    x = rand(seed, shape, 3.0)
    z = np.random.default_rng(seed).uniform(0, 1, shape)
    check(lambda a, b: gf.nn.sigmoid_cross_entropy_with_logits(labels=b, logits=a), [x, z])
    check(lambda a, b: gf.nn.sigmoid_cross_entropy_with_logits(labels=b, logits=a), [x, z],
          order=2)


def test_sigmoid_xent_large_logits_gradients():
    x = gf.constant(np.array([1000.0, -1000.0, 0.0, 30.0]))
    z = gf.constant(np.array([0.0, 1.0, 0.5, 1.0]))
    gx, gz = gf.gradients(gf.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=x), [x, z])
    vx, vz = run([gx, gz])
    # sigmoid(x) - z and -x
    np.testing.assert_allclose(vx, [1.0, -1.0, 0.0, 1 / (1 + np.exp(-30.0)) - 1.0],
                               atol=1e-12)
    np.testing.assert_allclose(vz, [-1000.0, 1000.0, 0.0, -30.0])


# --- float32 and op types ----------------------------------------------------------------------
def test_float32_gradients_keep_dtype():
    x = gf.constant(rand(53, (1, 4, 4, 2)).astype(np.float32))
    f = gf.constant(rand(54, (2, 2, 2, 3)).astype(np.float32))
    b = gf.constant(np.zeros(3, np.float32))
    y = gf.nn.bias_add(gf.nn.conv2d(x, f, 1, "SAME"), b)
    y = gf.nn.max_pool(y, 2, 2, "VALID") + gf.nn.avg_pool(y, 2, 2, "VALID")
    logits = gf.reshape(y, [1, 12])
    loss = (gf.nn.softmax_cross_entropy_with_logits_v2(
        labels=gf.nn.softmax(logits), logits=gf.nn.log_softmax(logits)) + gf.nn.l2_loss(f))
    grads = gf.gradients(loss, [x, f, b])
    assert all(g.dtype == gf.float32 for g in grads)
    assert all(np.all(np.isfinite(v)) for v in run(grads))
    assert {"Conv2DBackpropInput", "Conv2DBackpropFilter", "BiasAddGrad", "MaxPoolGrad",
            "AvgPoolGrad"} <= op_types(grads)
