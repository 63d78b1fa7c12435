"""Gradients of the array and indexing ops, and the primitives their gradients use.

Every differentiable op is checked against float64 central differences with
``gf.test.check_gradients`` on hypothesis-drawn shapes and values, to second order
through a square (so the gradient ops are themselves differentiated), plus edge
cases and partly unknown shapes. The new primitives (MirrorPadGrad,
StridedSliceGrad, UnsortedSegmentSum, ScatterNd) are also checked directly: values
against NumPy, and each against its adjoint (``<A x, w> == <x, A^T w>``).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_same, run
from hypothesis import given, settings
from hypothesis import strategies as st

import graphflow as gf
from graphflow.framework.op_def import lookup
from graphflow.test import check_gradients

F64 = np.float64
FEW = settings(max_examples=8)
SOME = settings(max_examples=12)


def _values(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


def _dense(g):
    """A gradient as a dense Tensor (gather's gradient is an IndexedSlices, as in TF1)."""
    return gf.convert_to_tensor(g) if isinstance(g, gf.IndexedSlices) else g


def check(fn, *args, order2=True):
    """First order of ``fn``, and second order of ``square(fn)`` (grads of grads)."""
    args = [np.asarray(a, dtype=F64) for a in args]
    check_gradients(fn, args)
    if order2:
        check_gradients(lambda *xs: gf.square(fn(*xs)), args, order=2)


seeds = st.integers(0, 2**16)
dims = st.integers(0, 3)


def shapes(min_rank=0, max_rank=3, min_dim=0, max_dim=3):
    return st.lists(st.integers(min_dim, max_dim), min_size=min_rank,
                    max_size=max_rank).map(tuple)


# --- reshape, transpose, expand/squeeze --------------------------------------------------
@FEW
@given(shape=shapes(1, 3), seed=seeds, data=st.data())
def test_reshape_grad(shape, seed, data):
    target = list(shape[::-1]) if data.draw(st.booleans()) else [-1]
    check(lambda x: gf.reshape(x, target), _values(shape, seed))


@FEW
@given(shape=shapes(1, 3), seed=seeds, data=st.data())
def test_transpose_grad(shape, seed, data):
    perm = data.draw(st.permutations(range(len(shape))))
    check(lambda x: gf.transpose(x, perm), _values(shape, seed))


@FEW
@given(shape=shapes(0, 3), seed=seeds, data=st.data())
def test_expand_dims_and_squeeze_grad(shape, seed, data):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    x = _values(shape, seed)
    check(lambda t: gf.expand_dims(t, axis) * 2.0, x)
    check(lambda t: gf.squeeze(gf.expand_dims(t, axis), [axis]), x)
    check(lambda t: gf.squeeze(t), _values(tuple(d or 1 for d in shape) + (1,), seed))


# --- concat, stack, unstack, split ---------------------------------------------------------
@SOME
@given(shape=shapes(1, 3), n=st.integers(2, 3), seed=seeds, data=st.data())
def test_concat_grad(shape, n, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    a = axis % len(shape)
    parts = []
    for i in range(n):
        s = list(shape)
        s[a] = data.draw(dims)  # sizes along the axis differ, 0 included
        parts.append(_values(s, seed + i))
    check(lambda *ts: gf.concat(list(ts), axis), *parts)


@FEW
@given(shape=shapes(0, 2, 1), n=st.integers(1, 3), seed=seeds, data=st.data())
def test_stack_and_unstack_grad(shape, n, seed, data):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    parts = [_values(shape, seed + i) for i in range(n)]
    check(lambda *ts: gf.stack([t * float(i + 1) for i, t in enumerate(ts)], axis), *parts)
    x = _values((n,) + shape, seed)
    # Only some outputs are used: the others contribute zeros.
    check(lambda t: gf.unstack(t, axis=0)[-1] * 3.0, x)
    if shape:
        k = data.draw(st.integers(-len(shape) - 1, len(shape)))
        check(lambda t: gf.add_n(gf.unstack(t, axis=k)[:2]), x)


@FEW
@given(shape=shapes(1, 3, 1), n=st.integers(1, 3), seed=seeds, data=st.data())
def test_split_grad(shape, n, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    s = list(shape)
    s[axis] *= n
    x = _values(s, seed)
    check(lambda t: gf.split(t, n, axis=axis)[-1] * 2.0, x)
    sizes = data.draw(st.lists(dims, min_size=1, max_size=3))
    s[axis] = sum(sizes)
    y = _values(s, seed)
    k = data.draw(st.integers(0, len(sizes) - 1))
    if data.draw(st.booleans()):
        sizes = sizes[:k] + [-1] + sizes[k + 1:]
    check(lambda t: gf.concat([gf.split(t, sizes, axis=axis)[k]] * 2, axis), y)


# --- fill, tile, pad ------------------------------------------------------------------------
@FEW
@given(shape=shapes(0, 3), seed=seeds)
def test_fill_grad(shape, seed):
    v = _values((), seed)
    check(lambda t: gf.fill(list(shape), t), v)
    with gf.Graph().as_default():
        d = gf.placeholder(gf.int32, [len(shape)])
        t = gf.placeholder(gf.float64, [])
        g_dims, g_v = gf.gradients(gf.fill(d, t), [d, t])
        assert g_dims is None
        assert_same(run(g_v, {d: shape, t: 1.0}), np.float64(np.prod(shape)))


@SOME
@given(shape=shapes(0, 3), seed=seeds, data=st.data())
def test_tile_grad(shape, seed, data):
    mults = data.draw(st.lists(st.integers(0, 3), min_size=len(shape), max_size=len(shape)))
    dtype = data.draw(st.sampled_from([np.int32, np.int64]))
    check(lambda t: gf.tile(t, np.array(mults, dtype)), _values(shape, seed))


@SOME
@given(shape=shapes(0, 3), seed=seeds, data=st.data())
def test_pad_grad(shape, seed, data):
    pads = [[data.draw(dims), data.draw(dims)] for _ in shape]
    x = _values(shape, seed)
    check(lambda t: gf.pad(t, pads), x)
    check(lambda t: gf.pad(t, pads, constant_values=1.5), x)


def test_padv2_constant_values_get_no_gradient():
    # TF1's _PadGrad returns None for constant_values.
    x = gf.placeholder(gf.float64, [2])
    c = gf.placeholder(gf.float64, [])
    y = gf.pad(x, [[1, 1]], constant_values=c)
    assert y.op.type == "PadV2"
    gx, gc = gf.gradients(y, [x, c])
    assert gc is None
    assert_same(run(gx, {x: [1.0, 2.0], c: 0.5}), np.ones(2))


@SOME
@given(shape=shapes(1, 3, 1), seed=seeds, data=st.data())
def test_mirror_pad_grad(shape, seed, data):
    mode = data.draw(st.sampled_from(["REFLECT", "SYMMETRIC"]))
    limit = 1 if mode == "REFLECT" else 0
    pads = [[data.draw(st.integers(0, max(d - limit, 0))),
             data.draw(st.integers(0, max(d - limit, 0)))] for d in shape]
    check(lambda t: gf.pad(t, pads, mode=mode), _values(shape, seed))


# --- slice, strided_slice -------------------------------------------------------------------
@SOME
@given(shape=shapes(0, 3), seed=seeds, data=st.data())
def test_slice_grad(shape, seed, data):
    begin = [data.draw(st.integers(0, d)) for d in shape]
    size = [data.draw(st.integers(-1, d - b)) for d, b in zip(shape, begin)]
    check(lambda t: gf.slice(t, begin, size), _values(shape, seed))


@st.composite
def index_keys(draw, shape):
    """A basic-indexing key for ``shape``: ints, any slices (negative steps), None, ``...``."""
    entries = []
    for d in shape[:draw(st.integers(0, len(shape)))]:
        if min(shape) > 0 and draw(st.booleans()):  # an ellipsis may move ints to other dims
            entries.append(draw(st.integers(-d, d - 1)))
        else:
            bound = st.one_of(st.none(), st.integers(-d - 2, d + 2))
            step = st.one_of(st.none(), st.integers(-3, 3).filter(bool))
            entries.append(slice(draw(bound), draw(bound), draw(step)))
    if draw(st.booleans()):
        entries.insert(draw(st.integers(0, len(entries))), None)
    if draw(st.booleans()):
        entries.insert(draw(st.integers(0, len(entries))), Ellipsis)
    return tuple(entries)


@settings(max_examples=20)
@given(shape=shapes(1, 3), seed=seeds, data=st.data())
def test_strided_slice_grad(shape, seed, data):
    key = data.draw(index_keys(shape))
    x = _values(shape, seed)
    check(lambda t: t[key], x)


@pytest.mark.parametrize("key", [
    (slice(None, None, -1),), (slice(-10, 10), slice(None, None, -2)), (1, slice(3, 0, -2)),
    (Ellipsis, 2), (None, slice(1, None), None), (slice(2, 1),), (-1, -1),
])
def test_strided_slice_grad_edges(key):
    # Reversed, clamped out-of-range bounds, empty results, shrinks and new axes.
    check(lambda t: t[key], _values((3, 4), 0))


# --- gather, gather_nd ----------------------------------------------------------------------
@settings(max_examples=15)
@given(pshape=shapes(1, 3, 1), seed=seeds, data=st.data())
def test_gather_grad(pshape, seed, data):
    r = len(pshape)
    batch_dims = data.draw(st.integers(0, r - 1))
    axis = data.draw(st.integers(batch_dims, r - 1))
    ishape = list(pshape[:batch_dims]) + data.draw(st.lists(dims, max_size=2))
    n = pshape[axis]
    # Few distinct rows so that indices repeat and their gradients must add up.
    idx = np.random.default_rng(seed).integers(0, n, size=ishape)
    idx = idx.astype(data.draw(st.sampled_from([np.int32, np.int64])))
    neg_axis = data.draw(st.booleans()) and batch_dims == 0
    a = axis - r if neg_axis else axis
    check(lambda t: gf.gather(t, idx, axis=a, batch_dims=batch_dims), _values(pshape, seed))


def test_gather_grad_aggregates_repeated_indices():
    x = gf.placeholder(gf.float64, [4, 2])
    (g,) = gf.gradients(gf.gather(x, [1, 3, 1, 1]), x)
    assert isinstance(g, gf.IndexedSlices)
    g = _dense(g)
    assert g.shape.as_list() == [4, 2]
    assert_same(run(g, {x: np.zeros((4, 2))}), np.array([[0, 0], [3, 3], [0, 0], [1, 1.]]))
    (g1,) = gf.gradients(gf.gather(x, [[0, 0], [0, 1]], axis=1), x)
    assert_same(run(g1, {x: np.zeros((4, 2))}), np.tile([[3.0, 1.0]], [4, 1]))


def test_gather_grad_out_of_range_index_fails_at_run_time():
    x = gf.placeholder(gf.float64, [3])
    y = gf.gather(x, [0, 5])
    g = _dense(gf.gradients(y, x)[0])
    with pytest.raises(gf.errors.InvalidArgumentError, match="out of range"):
        run(g, {x: np.zeros(3)})
    with pytest.raises(gf.errors.InvalidArgumentError):
        run([y, g], {x: np.zeros(3)})


@SOME
@given(pshape=shapes(1, 3, 1), seed=seeds, data=st.data())
def test_gather_nd_grad(pshape, seed, data):
    q = data.draw(st.integers(0, len(pshape)))
    outer = data.draw(st.lists(dims, max_size=2))
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.integers(0, d, size=outer) for d in pshape[:q]], axis=-1) if q else \
        np.zeros(outer + [0], np.int64)
    check(lambda t: gf.gather_nd(t, idx.astype(np.int32)), _values(pshape, seed))


def test_gather_nd_grad_aggregates_repeated_indices():
    x = gf.placeholder(gf.float64, [2, 3])
    (g,) = gf.gradients(gf.gather_nd(x, [[1, 2], [1, 2], [0, 0]]), x)
    assert_same(run(g, {x: np.zeros((2, 3))}), np.array([[1, 0, 0], [0, 0, 2.]]))


# --- unsorted_segment_sum -------------------------------------------------------------------
def _np_segment_sum(data, ids, n):
    out = np.zeros((n,) + data.shape[ids.ndim:], data.dtype)
    for j in np.ndindex(*ids.shape):
        if ids[j] >= 0:
            out[ids[j]] += data[j]
    return out


@SOME
@given(dshape=shapes(1, 3), seed=seeds, data=st.data())
def test_unsorted_segment_sum_values_and_grad(dshape, seed, data):
    k = data.draw(st.integers(1, len(dshape)))
    n = data.draw(st.integers(0, 4))
    rng = np.random.default_rng(seed)
    ids = rng.integers(-1, max(n, 1) if n else 0, size=dshape[:k])  # -1 is dropped
    if n == 0:
        ids = np.full(dshape[:k], -1)
    ids = ids.astype(data.draw(st.sampled_from([np.int32, np.int64])))
    x = _values(dshape, seed)
    y = gf.unsorted_segment_sum(gf.constant(x), ids, n)
    assert y.shape.as_list() == [n, *dshape[k:]]
    assert_same(run(y), _np_segment_sum(x, ids, n))
    check(lambda t: gf.unsorted_segment_sum(t, ids, n), x)


def test_unsorted_segment_sum_api_and_errors():
    assert gf.math.unsorted_segment_sum is gf.unsorted_segment_sum
    out = gf.unsorted_segment_sum([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [2, 0, 2], 4)
    assert out.op.type == "UnsortedSegmentSum"
    assert_same(run(out), np.array([[3, 4], [0, 0], [6, 8], [0, 0]], np.float32))
    ids = gf.placeholder(gf.int32, [None])
    dyn = gf.unsorted_segment_sum(gf.ones([3, 2]), ids, gf.constant(2))
    assert dyn.shape.as_list() == [2, 2]
    with pytest.raises(gf.errors.InvalidArgumentError, match=r"segment_ids\[1\] = 2 is out of "):
        run(dyn, {ids: [0, 2, 1]})
    with pytest.raises(ValueError, match="does not start with"):
        gf.unsorted_segment_sum(gf.ones([3, 2]), [0, 1], 2)
    with pytest.raises(ValueError, match="non-negative"):
        gf.unsorted_segment_sum(gf.ones([3]), [0, 1, 2], -1)
    with pytest.raises(TypeError):
        gf.unsorted_segment_sum(gf.ones([3]), [0.0, 1.0, 2.0], 3)


# --- scatter_nd -----------------------------------------------------------------------------
@SOME
@given(oshape=shapes(1, 3, 1), seed=seeds, data=st.data())
def test_scatter_nd_values_and_grad(oshape, seed, data):
    q = data.draw(st.integers(0, len(oshape)))
    outer = data.draw(st.lists(dims, max_size=2))
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.integers(0, d, size=outer) for d in oshape[:q]], axis=-1) if q else \
        np.zeros(outer + [0], np.int64)
    idx = idx.astype(data.draw(st.sampled_from([np.int32, np.int64])))
    u = _values(outer + list(oshape[q:]), seed)
    y = gf.scatter_nd(idx, gf.constant(u), list(oshape))
    assert y.shape.as_list() == list(oshape)
    expected = np.zeros(oshape)
    for j in np.ndindex(*outer):
        expected[tuple(idx[j])] += u[j]
    assert_same(run(y), expected)
    check(lambda t: gf.scatter_nd(idx, t, list(oshape)), u)


def test_scatter_nd_api_and_errors():
    y = gf.scatter_nd([[1], [3], [1]], [1.0, 2.0, 4.0], [5])
    assert y.op.type == "ScatterNd"
    assert_same(run(y), np.array([0, 5, 0, 2, 0], np.float32))  # duplicates add
    idx = gf.placeholder(gf.int32, [None, 1])
    bad = gf.scatter_nd(idx, gf.ones([2]), [3])
    with pytest.raises(gf.errors.InvalidArgumentError, match=r"\[3\] does not index into"):
        run(bad, {idx: [[0], [3]]})
    with pytest.raises(ValueError, match="updates"):
        gf.scatter_nd([[0], [1]], gf.ones([3]), [4])
    with pytest.raises(ValueError, match="innermost"):
        gf.scatter_nd([[0, 0, 0]], gf.ones([1]), [4, 4])


# --- the new primitives checked against their adjoints ----------------------------------------
def _adjoint_check(forward, backward, x, w):
    """``<forward(x), w> == <x, backward(w)>``: backward is forward's transpose."""
    fx, bw = run([forward(gf.constant(x)), backward(gf.constant(w))])
    np.testing.assert_allclose(np.sum(fx * w), np.sum(x * bw), rtol=1e-10, atol=1e-10)


@SOME
@given(shape=shapes(1, 3, 1), seed=seeds, data=st.data())
def test_mirror_pad_grad_op_is_the_adjoint_of_mirror_pad(shape, seed, data):
    from graphflow.ops.array_ops import _mirror_pad_grad

    mode = data.draw(st.sampled_from(["REFLECT", "SYMMETRIC"]))
    limit = 1 if mode == "REFLECT" else 0
    pads = [[data.draw(st.integers(0, max(d - limit, 0))),
             data.draw(st.integers(0, max(d - limit, 0)))] for d in shape]
    padded = [d + a + b for d, (a, b) in zip(shape, pads)]
    p = gf.constant(pads)
    _adjoint_check(lambda t: gf.pad(t, p, mode=mode), lambda t: _mirror_pad_grad(t, p, mode),
                   _values(shape, seed), _values(padded, seed + 1))
    g = _mirror_pad_grad(gf.constant(_values(padded, seed)), p, mode)
    assert g.shape.as_list() == list(shape)


def test_mirror_pad_grad_op_values_and_errors():
    from graphflow.ops.array_ops import _mirror_pad_grad

    dy = gf.constant([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    # REFLECT [2, 2] of [a, b, c]: [c, b, a, b, c, b, a]
    assert_same(run(_mirror_pad_grad(dy, gf.constant([[2, 2]]), "REFLECT")),
                np.array([3 + 7, 2 + 4 + 6, 1 + 5], np.float32))
    # SYMMETRIC [3, 1] of [a, b, c]: [c, b, a, a, b, c, c]
    assert_same(run(_mirror_pad_grad(dy, gf.constant([[3, 1]]), "SYMMETRIC")),
                np.array([3 + 4, 2 + 5, 1 + 6 + 7], np.float32))
    with pytest.raises(ValueError, match="do not fit"):
        _mirror_pad_grad(dy, gf.constant([[3, 3]]), "REFLECT")
    p = gf.placeholder(gf.int32, [1, 2])
    with pytest.raises(gf.errors.InvalidArgumentError, match="do not fit"):
        run(_mirror_pad_grad(dy, p, "REFLECT"), {p: [[3, 3]]})
    x = gf.placeholder(gf.float64, [3])
    assert _mirror_pad_grad(x, gf.constant([[1, 0]]), "REFLECT").shape.as_list() == [2]
    # Its own gradient is MirrorPad (TF1's _MirrorPadGradGrad).
    check(lambda t: _mirror_pad_grad(t, gf.constant([[1, 1]]), "SYMMETRIC"), _values(4, 0))


@settings(max_examples=15)
@given(shape=shapes(1, 3), seed=seeds, data=st.data())
def test_strided_slice_grad_op_is_the_adjoint_of_strided_slice(shape, seed, data):
    key = data.draw(index_keys(shape))
    x = _values(shape, seed)
    w = _values(np.shape(x[key]), seed + 1)

    def backward(t):
        sliced = gf.constant(x)[key]
        op = sliced.op
        masks = {m: op.get_attr(m) for m in ("begin_mask", "end_mask", "ellipsis_mask",
                                             "new_axis_mask", "shrink_axis_mask")}
        from graphflow.ops.indexing_ops import _strided_slice_grad

        g = _strided_slice_grad(gf.constant(list(shape)), *op.inputs[1:], t, masks)
        assert g.shape.as_list() == list(shape)
        return g

    _adjoint_check(lambda t: t[key], backward, x, w)


def test_strided_slice_grad_op_values_and_errors():
    from graphflow.ops.indexing_ops import _strided_slice_grad

    masks = dict.fromkeys(("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask"), 0)
    masks["shrink_axis_mask"] = 0
    g = _strided_slice_grad(gf.constant([5]), gf.constant([4]), gf.constant([0]),
                            gf.constant([-2]), gf.constant([1.0, 2.0]), masks)
    assert_same(run(g), np.array([0, 0, 2, 0, 1], np.float32))  # x[4:0:-2] = x[4], x[2]
    with pytest.raises(ValueError, match="dy"):
        _strided_slice_grad(gf.constant([5]), gf.constant([4]), gf.constant([0]),
                            gf.constant([-2]), gf.constant([1.0, 2.0, 3.0]), masks)
    s = gf.placeholder(gf.int32, [1])
    dyn = _strided_slice_grad(s, gf.constant([4]), gf.constant([0]), gf.constant([-2]),
                              gf.constant([1.0, 2.0]), masks)
    with pytest.raises(gf.errors.InvalidArgumentError, match="does not match"):
        run(dyn, {s: [3]})


@SOME
@given(dshape=shapes(1, 3), seed=seeds, data=st.data())
def test_segment_sum_and_scatter_are_adjoints_of_gathers(dshape, seed, data):
    rng = np.random.default_rng(seed)
    n = data.draw(st.integers(1, 4))
    ids = rng.integers(0, n, size=dshape[:1])
    _adjoint_check(lambda t: gf.unsorted_segment_sum(t, ids, n), lambda t: gf.gather(t, ids),
                   _values(dshape, seed), _values((n,) + dshape[1:], seed + 1))
    idx = ids[:, None]
    _adjoint_check(lambda t: gf.scatter_nd(idx, t, [n, *dshape[1:]]),
                   lambda t: gf.gather_nd(t, idx),
                   _values(dshape, seed), _values((n,) + dshape[1:], seed + 1))


# --- partly unknown shapes --------------------------------------------------------------------
DYNAMIC_CASES = {
    "reshape": (lambda x: gf.reshape(x, [-1, 2]), (3, 4)),
    "transpose": (lambda x: gf.transpose(x, [1, 0, 2]), (2, 3, 2)),
    "concat": (lambda x: gf.concat([x, 2.0 * x, x[:1]], 0), (3, 4)),
    "concat_axis1": (lambda x: gf.concat([x, x[:, 1:]], -1), (3, 4)),
    "stack_unstack": (lambda x: gf.stack(gf.unstack(x, num=4, axis=1)[1:], -1), (3, 4)),
    "expand_squeeze": (lambda x: gf.squeeze(gf.expand_dims(x, 1), [1]) * 2.0, (3, 4)),
    "split": (lambda x: gf.split(x, 2, axis=1)[1], (3, 4)),
    "splitv": (lambda x: gf.split(x, [1, -1], axis=0)[1], (3, 4)),
    "tile": (lambda x: gf.tile(x, [2, 3]), (3, 4)),
    "tile_dynamic": (lambda x: gf.tile(x, gf.shape(x)), (2, 3)),
    "pad": (lambda x: gf.pad(x, [[1, 2], [0, 1]]), (3, 4)),
    "pad_dynamic": (lambda x: gf.pad(x, gf.stack([gf.shape(x) - 1, gf.shape(x) - 2], 1)),
                    (3, 4)),
    "mirror_pad": (lambda x: gf.pad(x, [[2, 1], [1, 2]], mode="REFLECT"), (3, 4)),
    "slice": (lambda x: gf.slice(x, [1, 0], [-1, 2]), (3, 4)),
    "slice_dynamic": (lambda x: gf.slice(x, [1, 1], gf.shape(x) - 1), (3, 4)),
    "strided_slice": (lambda x: x[::-2, 1:, None], (3, 4)),
    "strided_slice_dynamic": (lambda x: x[gf.shape(x)[0] - 2::-1, 1], (3, 4)),
    "gather": (lambda x: gf.gather(x, [0, 2, 2]), (3, 4)),
    "gather_axis": (lambda x: gf.gather(x, [[1, 1], [0, 3]], axis=-1), (3, 4)),
    "gather_batch": (lambda x: gf.gather(x, [[1, 1], [0, 3], [2, 2]], axis=1, batch_dims=1),
                     (3, 4)),
    "gather_nd": (lambda x: gf.gather_nd(x, [[0, 1], [2, 3], [0, 1]]), (3, 4)),
    "unsorted_segment_sum": (lambda x: gf.unsorted_segment_sum(x, [0, -1, 0], 4), (3, 4)),
    "scatter_nd": (lambda x: gf.scatter_nd([[1], [0], [1]], x, [2, 4]), (3, 4)),
}


def _first_and_second_grads(fn, x, shape):
    """Values of d sum(w * fn(x)^2)/dx and of the derivative of <that, v>."""
    with gf.Graph().as_default():
        p = gf.placeholder(gf.float64, shape)
        y = fn(p)
        w = gf.placeholder(gf.float64, None)
        g = _dense(gf.gradients(gf.reduce_sum(gf.square(y) * w), p)[0])
        h = _dense(gf.gradients(gf.reduce_sum(g * gf.constant(_values(x.shape, 7))), p)[0])
        y_val = run(y, {p: x})
        wv = _values(y_val.shape, 3)
        out = run([g, h], {p: x, w: wv})
        return out, [g.shape, h.shape]


@pytest.mark.parametrize("name", sorted(DYNAMIC_CASES))
def test_gradients_with_unknown_dims_match_static(name):
    fn, shape = DYNAMIC_CASES[name]
    x = _values(shape, 1)
    static, static_shapes = _first_and_second_grads(fn, x, shape)
    for s in static_shapes:
        assert s.as_list() == list(shape)  # static gradients keep the static shape
    for dyn_shape in ([None] * len(shape), [None] + list(shape[1:])):
        got, got_shapes = _first_and_second_grads(fn, x, dyn_shape)
        for a, b in zip(static, got):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
        for s in got_shapes:
            assert s.is_compatible_with(shape) and s.ndims == len(shape)


@pytest.mark.parametrize("name", ["reshape", "concat", "stack_unstack", "expand_squeeze",
                                  "split", "pad", "slice", "strided_slice", "gather",
                                  "gather_nd", "unsorted_segment_sum"])
def test_gradients_with_unknown_rank_match_static(name):
    fn, shape = DYNAMIC_CASES[name]
    x = _values(shape, 1)
    static, _ = _first_and_second_grads(fn, x, shape)
    got, _ = _first_and_second_grads(fn, x, None)
    for a, b in zip(static, got):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def test_gradients_needing_a_known_rank_say_so():
    x = gf.placeholder(gf.float64, None)
    with pytest.raises(ValueError, match="gradient of gather along axis > 0 needs"):
        gf.gradients(gf.gather(x, [0], axis=1), x)
    with pytest.raises(ValueError, match="gradient of Tile needs"):
        gf.gradients(gf.tile(x, gf.placeholder(gf.int32, None)), x)
    a = gf.placeholder(gf.int32, [])
    with pytest.raises(ValueError, match="gradient of Split needs its axis"):
        gf.gradients(gf.split(gf.ones([2, 2], gf.float64) * x, 2, axis=a)[0], x)


# --- ops through which no gradient flows --------------------------------------------------------
def test_not_differentiable_ops():
    for op_type in ("Shape", "Size", "Rank", "Range", "OneHot"):
        assert lookup(op_type).not_differentiable, op_type
    x = gf.placeholder(gf.float64, [2, 3])
    # Shape queries feeding a reshape neither raise nor contribute.
    (g,) = gf.gradients(gf.reshape(x, gf.shape(x)[::-1]) * gf.cast(gf.size(x), gf.float64), x)
    assert_same(run(g, {x: np.zeros((2, 3))}), np.full((2, 3), 6.0))
    on = gf.placeholder(gf.float64, [])
    start = gf.placeholder(gf.float64, [])
    y = gf.reduce_sum(gf.one_hot([0, 1], 3, on_value=on)) + gf.reduce_sum(gf.range(start, 3.0))
    assert gf.gradients(y, [on, start]) == [None, None]
    assert gf.gradients(gf.eye(3, dtype=gf.float64) * x[0, 0], x)[0] is not None


def test_integer_gathers_and_slices_have_no_gradient():
    x = gf.placeholder(gf.float64, [3])
    i = gf.cast(x, gf.int32)
    y = gf.cast(gf.gather(i, [0, 1]), gf.float64) + gf.gather(x, [2, 2])
    g = _dense(gf.gradients(gf.reduce_sum(y), x)[0])
    assert_same(run(g, {x: [1.0, 2.0, 3.0]}), np.array([0, 0, 2.0]))


def test_identity_like_ops_pass_gradients_through():
    x = gf.placeholder(gf.float64, [2])
    d = gf.placeholder_with_default(x * 3.0, [None])
    (g,) = gf.gradients(gf.identity(d) * 2.0, x)
    assert_same(run(g, {x: [1.0, 2.0]}), np.full(2, 6.0))
    (none,) = gf.gradients(gf.stop_gradient(x) * 2.0, x)
    assert none is None
