"""slice, strided_slice / Tensor.__getitem__, gather and gather_nd against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_same, run
from hypothesis import assume, given
from hypothesis import strategies as st

import graphflow as gf

# --- strategies ----------------------------------------------------------------------------
shapes = st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple)


def _array(shape, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 10).astype(dtype)


@st.composite
def index_keys(draw, shape):
    """A NumPy basic-indexing key valid for ``shape`` (ints in range, any slices, None, ...)."""
    rank = len(shape)
    n_dims = draw(st.integers(0, rank))
    entries = []
    for d in range(n_dims):
        dim = shape[d]
        kinds = ["slice"] + (["int"] if dim > 0 else [])
        if draw(st.sampled_from(kinds)) == "int":
            entries.append(draw(st.integers(-dim, dim - 1)))
        else:
            bound = st.one_of(st.none(), st.integers(-dim - 2, dim + 2))
            step = st.one_of(st.none(), st.integers(-3, 3).filter(bool))
            entries.append(slice(draw(bound), draw(bound), draw(step)))
    for _ in range(draw(st.integers(0, 2))):
        entries.insert(draw(st.integers(0, len(entries))), None)
    if draw(st.booleans()):
        # An ellipsis may stand anywhere; it covers the dims the other entries leave.
        entries.insert(draw(st.integers(0, len(entries))), Ellipsis)
    return tuple(entries)


def _numpy_or_reject(x, key):
    try:
        return x[key]
    except IndexError:
        assume(False)


@st.composite
def array_and_key(draw):
    shape = draw(shapes)
    return shape, draw(index_keys(shape))


# --- Tensor.__getitem__ against NumPy ------------------------------------------------------
@given(array_and_key())
def test_getitem_matches_numpy(case):
    shape, key = case
    x = _array(shape)
    with gf.Graph().as_default() as g:
        try:
            expected = x[key]
        except IndexError:  # an ellipsis moved an int onto a dim it does not fit
            with pytest.raises(gf.errors.OpError) as info:
                gf.constant(x)[key]
            assert isinstance(info.value, ValueError)
            return
        t = gf.constant(x)[key]
        assert t.shape.as_list() == list(expected.shape)
        assert t.op.type == "StridedSlice" and t.op.name == "strided_slice"
        assert_same(run(t, graph=g), expected)


@given(array_and_key())
def test_getitem_with_unknown_dims_and_rank(case):
    shape, key = case
    x = _array(shape, np.int32)
    expected = _numpy_or_reject(x, key)
    with gf.Graph().as_default() as g:
        some = gf.placeholder(gf.int32, [None] * len(shape))
        none = gf.placeholder(gf.int32, None)
        t1, t2 = some[key], none[key]
        assert t1.shape.is_compatible_with(expected.shape)
        assert t1.shape.ndims == expected.ndim
        assert t2.shape.ndims is None
        v1, v2 = run([t1, t2], {some: x, none: x}, graph=g)
    assert_same(v1, expected)
    assert_same(v2, expected)


@given(array_and_key(), st.sampled_from([gf.int32, gf.int64]))
def test_getitem_with_tensor_indices(case, dtype):
    shape, key = case
    x = _array(shape)
    expected = _numpy_or_reject(x, key)
    with gf.Graph().as_default() as g:
        feeds = {}

        def tensorize(v):
            if v is None or v is Ellipsis:
                return v
            p = gf.placeholder(dtype, [])
            feeds[p] = v
            return p

        tkey = tuple(slice(tensorize(k.start), tensorize(k.stop), tensorize(k.step))
                     if isinstance(k, slice) else k if k is None or k is Ellipsis
                     else tensorize(k) for k in key)
        t = gf.constant(x)[tkey]
        assert t.shape.is_compatible_with(expected.shape)
        assert_same(run(t, feeds, graph=g), expected)


def test_getitem_static_shapes():
    x = gf.placeholder(gf.float32, [None, 5, 6])
    i = gf.placeholder(gf.int32, [])
    assert x[0].shape.as_list() == [5, 6]
    assert x[:, 1].shape.as_list() == [None, 6]
    assert x[..., ::2].shape.as_list() == [None, 5, 3]
    assert x[:, ::-2, gf.newaxis].shape.as_list() == [None, 3, 1, 6]
    assert x[i].shape.as_list() == [5, 6]                 # an unknown int still drops a dim
    assert x[:, i:].shape.as_list() == [None, None, 6]   # an unknown bound: unknown size
    assert x[:, i:i].shape.as_list() == [None, None, 6]
    assert x[None, ..., None].shape.as_list() == [1, None, 5, 6, 1]
    assert x[1:, 10:, -100:100].shape.as_list() == [None, 0, 6]
    assert x[()].shape.as_list() == [None, 5, 6]
    # A list key acts as a tuple, as in TF1.
    assert x[[0, 1]].shape.as_list() == [6]
    # Shape inference follows gf.shape(x)[1] to x's static dim 1 even when dim 0 is unknown.
    assert gf.tile(x, [1, gf.shape(x)[1], 1]).shape.as_list() == [None, 25, 6]
    assert gf.one_hot([0], gf.shape(x)[-1]).shape.as_list() == [1, 6]
    assert gf.shape(x)[1:].shape.as_list() == [2]


def test_getitem_names_and_constants():
    x = gf.constant(np.zeros((3, 4), np.float32), name="x")
    t = x[1, :2]
    assert (t.op.type, t.op.name) == ("StridedSlice", "strided_slice")
    names = [i.op.name for i in t.op.inputs]
    assert names == ["x", "strided_slice/stack", "strided_slice/stack_1", "strided_slice/stack_2"]
    assert [i.op.type for i in t.op.inputs[1:]] == ["Const"] * 3
    assert t.op.get_attr("shrink_axis_mask") == 1
    assert t.op.get_attr("begin_mask") == 2
    assert x[0].op.name == "strided_slice_1"
    i = gf.placeholder(gf.int32, [], name="i")
    u = x[i]
    assert u.op.inputs[1].op.type == "Pack"
    assert u.op.inputs[2].op.inputs[0].op.name == "add"  # TF1 builds i + 1 outside the scope


def test_getitem_int64_and_wide_indices():
    x = np.arange(12).reshape(3, 4)
    i = gf.placeholder(gf.int64, [])
    t = gf.constant(x)[i, 1:]
    assert t.op.inputs[1].dtype == gf.int64 and t.op.inputs[2].dtype == gf.int64
    assert_same(run(t, {i: 2}), x[2, 1:])
    big = gf.constant(x)[: 2**40]  # a bound beyond int32 makes the spec int64
    assert big.op.inputs[2].dtype == gf.int64
    assert_same(run(big), x[: 2**40])
    assert_same(run(gf.constant(x)[np.int64(1), np.int32(-1)]), x[1, -1])


def test_getitem_on_variables_and_iteration():
    v = gf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))
    rows = list(gf.constant(np.arange(6).reshape(2, 3)))
    vals = run([v[1, ::-1], v[:, gf.newaxis, 0]] + rows)
    assert_same(vals[0], np.array([5, 4, 3], np.float32))
    assert_same(vals[1], np.array([[0], [3]], np.float32))
    assert_same(vals[2], np.array([0, 1, 2], np.int64))  # NumPy int64 stays int64
    assert_same(vals[3], np.array([3, 4, 5], np.int64))


@pytest.mark.parametrize("key, message", [
    ((5,), "out of bounds"),
    ((-4,), "out of bounds"),
    ((0, 0, 0), "Index out of range using input dim 2"),
    ((Ellipsis, 0, Ellipsis), "Multiple ellipses"),
    ((slice(None, None, 0),), "strides[0] must be non-zero"),
])
def test_getitem_build_errors(key, message):
    x = gf.constant(np.zeros((3, 4), np.float32))
    with pytest.raises(gf.errors.OpError) as info:
        x[key]
    assert isinstance(info.value, ValueError)
    assert message in str(info.value)
    assert "strided_slice" in str(info.value)
    assert info.value.op is not None and info.value.op.type == "StridedSlice"


@pytest.mark.parametrize("key", [1.5, "a", [[0]], slice(0.5, 2), np.array([1, 2]), True])
def test_getitem_rejects_invalid_index_types(key):
    x = gf.constant(np.zeros((3, 4), np.float32))
    with pytest.raises(gf.errors.OpError) as info:
        x[key]
    assert isinstance(info.value, TypeError)
    assert "strided_slice" in str(info.value)


@pytest.mark.parametrize("make_index", [lambda: gf.constant([1, 2]), lambda: gf.constant(1.0),
                                        lambda: gf.placeholder(gf.int32, [2])])
def test_getitem_rejects_bad_tensor_indices(make_index):
    x = gf.constant(np.zeros((3, 4), np.float32))
    with pytest.raises(gf.errors.OpError) as info:
        x[make_index()]
    assert isinstance(info.value, TypeError)


def test_getitem_run_time_errors():
    x = gf.placeholder(gf.float32, [None, 4])
    i = gf.placeholder(gf.int32, [])
    t = x[i]
    with pytest.raises(gf.errors.InvalidArgumentError) as info:
        run(t, {x: np.zeros((3, 4)), i: 3})
    msg = str(info.value)
    assert "slice index 3 of dimension 0 out of bounds" in msg and "strided_slice" in msg
    assert "test_indexing_ops.py" in msg  # the user's line that built the op
    s = gf.placeholder(gf.int32, [])
    with pytest.raises(gf.errors.InvalidArgumentError, match="must be non-zero"):
        run(x[::s], {x: np.zeros((3, 4)), s: 0})
    assert_same(run(x[i], {x: np.ones((3, 4)), i: -3}), np.ones(4, np.float32))


# --- strided_slice -------------------------------------------------------------------------
T = np.array([[[1, 1, 1], [2, 2, 2]], [[3, 3, 3], [4, 4, 4]], [[5, 5, 5], [6, 6, 6]]], np.int32)


@pytest.mark.parametrize("begin, end, strides, expected", [
    ([1, 0, 0], [2, 1, 3], [1, 1, 1], [[[3, 3, 3]]]),
    ([1, 0, 0], [2, 2, 3], [1, 1, 1], [[[3, 3, 3], [4, 4, 4]]]),
    ([1, -1, 0], [2, -3, 3], [1, -1, 1], [[[4, 4, 4], [3, 3, 3]]]),
])
def test_strided_slice_tf_doc_examples(begin, end, strides, expected):
    t = gf.strided_slice(T, begin, end, strides)
    assert (t.op.type, t.op.name) == ("StridedSlice", "StridedSlice")
    assert_same(run(t), np.array(expected, np.int32))


def test_strided_slice_masks():
    x = np.arange(60).reshape(3, 4, 5).astype(np.float32)
    c = gf.constant(x)
    cases = [
        (dict(begin=[0, 1], end=[0, 3], begin_mask=1, end_mask=1), x[:, 1:3]),
        (dict(begin=[1, 0], end=[2, 0], shrink_axis_mask=1, new_axis_mask=2), x[1, None]),
        (dict(begin=[0, 2], end=[0, 3], ellipsis_mask=1, shrink_axis_mask=2), x[..., 2]),
        (dict(begin=[0, 0, -1], end=[0, 0, 0], strides=[1, 1, -1], new_axis_mask=1,
              ellipsis_mask=2, end_mask=4), x[None, ..., ::-1]),
        (dict(begin=[-1], end=[0], strides=[-2], end_mask=1), x[-1::-2]),
        # The new axis and ellipsis bits win over the other masks on the same entry.
        (dict(begin=[0], end=[0], new_axis_mask=1, shrink_axis_mask=1), x[None]),
        (dict(begin=[], end=[]), x),
    ]
    for kw, expected in cases:
        begin, end = kw.pop("begin"), kw.pop("end")
        strides = kw.pop("strides", None)
        t = gf.strided_slice(c, begin, end, strides, **kw)
        assert t.shape.as_list() == list(expected.shape), kw
        assert_same(run(t), expected)


def test_strided_slice_with_tensor_bounds_and_unknown_length():
    x = np.arange(10, dtype=np.float32)
    b = gf.placeholder(gf.int32, [None])
    e = gf.placeholder(gf.int32, [None])
    t = gf.strided_slice(gf.constant(x), b, e)
    assert t.shape.ndims is None
    assert_same(run(t, {b: [2], e: [7]}), x[2:7])
    with pytest.raises(gf.errors.InvalidArgumentError, match="equal size"):
        run(t, {b: [2], e: [7, 8]})


def test_strided_slice_build_errors():
    with pytest.raises(gf.errors.OpError) as info:
        gf.strided_slice(T, [0, 0], [1, 1, 1], [1, 1])
    assert isinstance(info.value, ValueError) and "StridedSlice" in str(info.value)
    with pytest.raises(TypeError):
        gf.strided_slice(T, [0.5], [1.0], [1])
    with pytest.raises(gf.errors.OpError, match="only stride 1"):
        gf.strided_slice(T, [0], [1], [-1], shrink_axis_mask=1)


# --- slice -----------------------------------------------------------------------------
@st.composite
def slice_case(draw):
    shape = draw(shapes)
    begin, size = [], []
    for d in shape:
        b = draw(st.integers(0, d))
        begin.append(b)
        size.append(draw(st.sampled_from([-1, d - b])) if draw(st.booleans())
                    else draw(st.integers(0, d - b)))
    return shape, begin, size


@given(slice_case())
def test_slice_matches_numpy(case):
    shape, begin, size = case
    x = _array(shape)
    expected = x[tuple(slice(b, d if s == -1 else b + s) for b, s, d in zip(begin, size, shape))]
    with gf.Graph().as_default() as g:
        t = gf.slice(x, begin, size)
        assert (t.op.type, t.op.name) == ("Slice", "Slice")
        assert t.shape.as_list() == list(expected.shape)
        pb = gf.placeholder(gf.int64, [len(shape)])
        ps = gf.placeholder(gf.int64, [len(shape)])
        u = gf.slice(gf.placeholder_with_default(x, [None] * len(shape)), pb, ps)
        assert u.shape.as_list() == [None] * len(shape)
        v1, v2 = run([t, u], {pb: begin, ps: size}, graph=g)
    assert_same(v1, expected)
    assert_same(v2, expected)


def test_slice_static_shapes_and_errors():
    x = gf.placeholder(gf.float32, [None, 4, 5])
    assert gf.slice(x, [0, 1, 2], [-1, -1, 2]).shape.as_list() == [None, 3, 2]
    assert gf.slice(x, [0, 1, 2], [3, -1, -1]).shape.as_list() == [3, 3, 3]
    n = gf.placeholder(gf.int32, [])
    assert gf.slice(x, [0, 0, 0], [n, 2, -1]).shape.as_list() == [None, 2, 5]
    assert gf.slice(gf.placeholder(gf.float32), [0, 1], [2, 3]).shape.as_list() == [2, 3]
    for begin, size, msg in [([0, 3, 0], [1, 2, 1], "Expected size[1] in [0, 1]"),
                             ([0, 5, 0], [1, 0, 1], "Expected begin[1] in [0, 4]"),
                             ([0, 0, 0], [1, -2, 1], "Expected size[1] >= -1"),
                             ([0, 0], [1, 1], "Expected begin and size to have 3")]:
        with pytest.raises(gf.errors.OpError) as info:
            gf.slice(x, begin, size)
        assert isinstance(info.value, ValueError)
        assert msg in str(info.value) and "Slice" in str(info.value)
    with pytest.raises(gf.errors.InvalidArgumentError, match=r"Expected size\[0\] in \[0, 1\]"):
        run(gf.slice(x, [2, 0, 0], [2, -1, -1]), {x: np.zeros((3, 4, 5))})


# --- gather ----------------------------------------------------------------------------
@st.composite
def gather_case(draw):
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    ishape = draw(st.lists(st.integers(0, 3), min_size=0, max_size=2).map(tuple))
    n = shape[axis]
    indices = np.array(draw(st.lists(st.integers(0, n - 1), min_size=int(np.prod(ishape)),
                                     max_size=int(np.prod(ishape)))), np.int64).reshape(ishape)
    return shape, axis, indices


@given(gather_case(), st.sampled_from([np.int32, np.int64]))
def test_gather_matches_numpy(case, idtype):
    shape, axis, indices = case
    x = _array(shape)
    expected = np.take(x, indices, axis=axis)
    with gf.Graph().as_default() as g:
        t = gf.gather(x, indices.astype(idtype), axis=axis)
        assert (t.op.type, t.op.name) == ("GatherV2", "GatherV2")
        assert t.op.inputs[2].op.name == "GatherV2/axis"
        assert t.shape.as_list() == list(expected.shape)
        ph = gf.placeholder(gf.float32, [None] * len(shape))
        u = gf.gather(ph, gf.constant(indices.astype(idtype)), axis=axis)
        assert u.shape.ndims == expected.ndim
        v1, v2 = run([t, u], {ph: x}, graph=g)
    assert_same(v1, expected)
    assert_same(v2, expected)


def test_gather_static_shapes():
    p = gf.placeholder(gf.float32, [None, 5, 6])
    i = gf.placeholder(gf.int32, [2, None])
    a = gf.placeholder(gf.int32, [])
    assert gf.gather(p, i).shape.as_list() == [2, None, 5, 6]
    assert gf.gather(p, i, axis=-1).shape.as_list() == [None, 5, 2, None]
    assert gf.gather(p, 3, axis=1).shape.as_list() == [None, 6]
    assert gf.gather(p, i, axis=a).shape.as_list() == [None] * 4
    assert gf.gather(gf.placeholder(gf.float32), i).shape.ndims is None
    assert gf.gather(p, gf.placeholder(gf.int32)).shape.ndims is None


def test_gather_batch_dims():
    rng = np.random.default_rng(1)
    params = rng.standard_normal((2, 3, 4)).astype(np.float32)
    indices = rng.integers(0, 4, (2, 5))
    t = gf.gather(params, indices, axis=2, batch_dims=1)
    expected = np.stack([np.take(params[b], indices[b], axis=1) for b in range(2)])
    assert t.shape.as_list() == [2, 3, 5]
    assert_same(run(t), expected)
    idx2 = rng.integers(0, 3, (2, 4))
    u = gf.gather(params, idx2, batch_dims=1)  # axis defaults to batch_dims
    assert_same(run(u), np.stack([params[b][idx2[b]] for b in range(2)]))
    with pytest.raises(gf.errors.OpError, match="must be less than or equal to axis"):
        gf.gather(params, indices, axis=0, batch_dims=1)


def test_gather_errors():
    x = gf.constant(np.arange(10.0, dtype=np.float32).reshape(5, 2))
    with pytest.raises(gf.errors.OpError) as info:
        gf.gather(x, [0], axis=2)
    assert isinstance(info.value, ValueError) and "GatherV2" in str(info.value)
    assert "Expected axis in the range [-2, 2), but got 2" in str(info.value)
    with pytest.raises(gf.errors.OpError) as info:
        gf.gather(x, [0.5])
    assert isinstance(info.value, TypeError)
    idx = gf.placeholder(gf.int32, [None, 2])
    t = gf.gather(x, idx)
    with pytest.raises(gf.errors.InvalidArgumentError) as info:
        run(t, {idx: [[0, 1], [7, 2]]})
    assert "indices[1,0] = 7 is not in [0, 5)" in str(info.value)
    assert "GatherV2" in str(info.value)
    with pytest.raises(gf.errors.InvalidArgumentError, match=r"indices\[0\] = -1"):
        run(gf.gather(x, gf.placeholder_with_default([-1], [1])))


def test_tensordot_with_unknown_dims_uses_gather():
    a = gf.placeholder(gf.float32, [None, 3])
    b = np.ones((3, 2), np.float32)
    t = gf.tensordot(a, b, 1)
    xa = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert_same(run(t, {a: xa}), xa @ b)


# --- gather_nd -------------------------------------------------------------------------
@st.composite
def gather_nd_case(draw):
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
    q = draw(st.integers(0, len(shape)))
    outer = draw(st.lists(st.integers(0, 3), min_size=0, max_size=2).map(tuple))
    cols = [draw(st.lists(st.integers(0, shape[j] - 1), min_size=int(np.prod(outer)),
                          max_size=int(np.prod(outer)))) for j in range(q)]
    indices = np.array(cols, np.int64).T.reshape(outer + (q,)) if q else \
        np.zeros(outer + (0,), np.int64)
    return shape, indices


@given(gather_nd_case())
def test_gather_nd_matches_numpy(case):
    shape, indices = case
    x = _array(shape)
    q = indices.shape[-1]
    flat = indices.reshape(int(np.prod(indices.shape[:-1])), q)
    expected = np.array([x[tuple(r)] for r in flat], np.float32).reshape(
        indices.shape[:-1] + shape[q:])
    with gf.Graph().as_default() as g:
        t = gf.gather_nd(x, indices)
        assert (t.op.type, t.op.name) == ("GatherNd", "GatherNd")
        assert t.shape.as_list() == list(expected.shape)
        assert_same(run(t, graph=g), expected)


def test_gather_nd_shapes_and_errors():
    p = gf.placeholder(gf.float32, [None, 4, 5])
    assert gf.gather_nd(p, gf.placeholder(gf.int32, [3, 2])).shape.as_list() == [3, 5]
    assert gf.gather_nd(p, gf.placeholder(gf.int32, [3, None])).shape.ndims is None
    assert gf.gather_nd(gf.placeholder(gf.float32), [[0]]).shape.ndims is None
    with pytest.raises(gf.errors.OpError) as info:
        gf.gather_nd(p, [[0, 0, 0, 0]])
    assert isinstance(info.value, ValueError)
    assert "must be <= params rank; saw: 4 vs. 3" in str(info.value)
    with pytest.raises(gf.errors.OpError, match="at least a vector"):
        gf.gather_nd(p, 0)
    x = gf.constant(np.zeros((2, 3), np.float32))
    idx = gf.placeholder(gf.int32, [2, 2])
    with pytest.raises(gf.errors.InvalidArgumentError) as info:
        run(gf.gather_nd(x, idx), {idx: [[0, 0], [1, 3]]})
    assert "indices[1] = [1, 3] does not index into param shape [2, 3]" in str(info.value)
    with pytest.raises(gf.errors.UnimplementedError):
        gf.gather_nd(x, [[0]], batch_dims=1)
