"""Shape and layout ops against NumPy: values, dtypes, static shapes, names and errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_same, run
from hypothesis import given
from hypothesis import strategies as st

import graphflow as gf

shapes = st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple)
nonempty_rank = st.lists(st.integers(0, 4), min_size=1, max_size=4).map(tuple)
dtypes = st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.bool_])


def _array(shape, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 10).astype(dtype)


def _build_error(fn, kind=ValueError):
    """Runs ``fn`` expecting a build-time error; returns its message."""
    with pytest.raises(gf.errors.OpError) as info:
        fn()
    assert isinstance(info.value, kind), type(info.value)
    return str(info.value)


# --- shape / size / rank ---------------------------------------------------------------
@given(shapes, dtypes)
def test_shape_size_rank(shape, dtype):
    x = _array(shape, dtype)
    with gf.Graph().as_default() as g:
        p = gf.placeholder(dtype, [None] * len(shape))
        u = gf.placeholder(dtype)
        fetch = [gf.shape(p), gf.size(p), gf.rank(p), gf.shape(u, out_type=gf.int64),
                 gf.size(u, out_type=gf.int64), gf.rank(u)]
        assert [t.op.type for t in fetch] == ["Shape", "Size", "Rank"] * 2
        assert fetch[0].shape.as_list() == [len(shape)]
        assert fetch[3].shape.as_list() == [None]
        vals = run(fetch, {p: x, u: x}, graph=g)
    assert_same(vals[0], np.array(shape, np.int32))
    assert_same(vals[1], np.int32(x.size))
    assert_same(vals[2], np.int32(x.ndim))
    assert_same(vals[3], np.array(shape, np.int64))
    assert_same(vals[4], np.int64(x.size))
    assert_same(vals[5], np.int32(x.ndim))


def test_metadata_names():
    x = gf.constant([1.0])
    assert [gf.shape(x).op.name, gf.size(x).op.name, gf.rank(x).op.name] == [
        "Shape", "Size", "Rank"]
    assert gf.identity(x).op.name == "Identity"
    assert gf.stop_gradient(x).op.name == "StopGradient"
    assert gf.identity(x, name="out").op.name == "out"


@given(shapes, dtypes)
def test_identity_and_stop_gradient(shape, dtype):
    x = _array(shape, dtype)
    with gf.Graph().as_default() as g:
        a, b = gf.identity(x), gf.stop_gradient(x)
        assert a.shape.as_list() == list(shape) and a.dtype == gf.as_dtype(dtype)
        va, vb = run([a, b], graph=g)
    assert_same(va, x)
    assert_same(vb, x)


# --- reshape ---------------------------------------------------------------------------
@given(shapes, st.data())
def test_reshape_matches_numpy(shape, data):
    x = _array(shape)
    n = x.size
    divisors = [d for d in range(1, n + 1) if n % d == 0] or [0]
    a = data.draw(st.sampled_from(divisors))
    target = [a, -1] if n else [0, 3]
    expected = x.reshape(target) if n else x.reshape(0, 3)
    with gf.Graph().as_default() as g:
        t = gf.reshape(x, target)
        assert (t.op.type, t.op.name) == ("Reshape", "Reshape")
        assert t.shape.as_list() == list(expected.shape)
        p = gf.placeholder(gf.float32, [None] * len(shape))
        # TF: -1 cannot be inferred for an empty tensor when another size is 0.
        dims = [gf.shape(p)[0], -1] if shape and shape[0] else [x.size]
        u = gf.reshape(p, dims)
        vt, vu = run([t, u], {p: x}, graph=g)
    assert_same(vt, expected)
    assert_same(vu, x.reshape(shape[0], -1) if shape and shape[0] else x.reshape(x.size))


def test_reshape_static_shapes_and_errors():
    x = gf.placeholder(gf.float32, [None, 3, 4])
    assert gf.reshape(x, [-1, 12]).shape.as_list() == [None, 12]
    # TF1's flatten idiom keeps the known part: the unknown batch dims cancel.
    assert gf.reshape(x, [gf.shape(x)[0], -1]).shape.as_list() == [None, 12]
    assert gf.reshape(x, [-1, 2, gf.shape(x)[0]]).shape.as_list() == [6, 2, None]
    assert gf.reshape(x, [gf.shape(x)[1], -1]).shape.as_list() == [3, None]
    y = gf.zeros([2, 3, 4])
    assert gf.reshape(y, [gf.shape(y)[0], -1]).shape.as_list() == [2, 12]
    z = gf.placeholder(gf.float32, [None, None, 4])
    assert gf.reshape(z, [gf.shape(z)[0], gf.shape(z)[1], -1]).shape.as_list() == [
        None, None, 4]
    assert gf.reshape(z, [gf.shape(z)[0], -1]).shape.as_list() == [None, None]
    assert gf.reshape(z, [gf.shape(x)[0], -1]).shape.as_list() == [None, None]
    assert_same(run(gf.reshape(x, [gf.shape(x)[0], -1]), {x: np.ones((2, 3, 4))}),
                np.ones((2, 12), np.float32))
    assert gf.reshape(gf.zeros([2, 6]), [3, -1]).shape.as_list() == [3, 4]
    assert gf.reshape(gf.zeros([2, 6]), gf.TensorShape([4, 3])).shape.as_list() == [4, 3]
    assert gf.reshape(5.0, []).shape.as_list() == []
    msg = _build_error(lambda: gf.reshape(gf.zeros([2, 6]), [5, -1]))
    assert "Reshape" in msg
    _build_error(lambda: gf.reshape(gf.zeros([2, 6]), [5, 2]))
    _build_error(lambda: gf.reshape(gf.zeros([2, 6]), [-1, -1]))
    t = gf.reshape(x, [5, -1])
    with pytest.raises(gf.errors.InvalidArgumentError, match="Reshape"):
        run(t, {x: np.zeros((2, 3, 4))})


# --- transpose -------------------------------------------------------------------------
@given(shapes, st.randoms(use_true_random=False))
def test_transpose_matches_numpy(shape, rnd):
    x = _array(shape)
    perm = list(range(len(shape)))
    rnd.shuffle(perm)
    with gf.Graph().as_default() as g:
        t = gf.transpose(x, perm)
        d = gf.transpose(x)
        assert (t.op.type, t.op.name) == ("Transpose", "transpose")
        assert t.shape.as_list() == list(np.transpose(x, perm).shape)
        vt, vd = run([t, d], graph=g)
    assert_same(vt, np.transpose(x, perm))
    assert_same(vd, x.T)


def test_transpose_errors_and_unknown_rank():
    _build_error(lambda: gf.transpose(gf.zeros([2, 3]), [0, 0]))
    _build_error(lambda: gf.transpose(gf.placeholder(gf.float32)))
    t = gf.transpose(gf.placeholder(gf.float32), [1, 0])
    assert t.shape.as_list() == [None, None]


# --- concat / stack / unstack ------------------------------------------------------------
@given(nonempty_rank, st.integers(1, 3), st.data())
def test_concat_and_stack_match_numpy(shape, n, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    xs = [_array(shape, seed=i) for i in range(n)]
    with gf.Graph().as_default() as g:
        c = gf.concat(xs, axis)
        s = gf.stack(xs, axis=axis)
        assert c.op.name == "concat" and s.op.name == "stack"
        assert c.op.type == ("ConcatV2" if n > 1 else "Identity")
        assert s.op.type == "Pack"
        assert c.shape.as_list() == list(np.concatenate(xs, axis).shape)
        assert s.shape.as_list() == list(np.stack(xs, axis).shape)
        vc, vs = run([c, s], graph=g)
    assert_same(vc, np.concatenate(xs, axis))
    assert_same(vs, np.stack(xs, axis))


def test_concat_stack_static_shapes_and_errors():
    a = gf.placeholder(gf.float32, [None, 3])
    b = gf.placeholder(gf.float32, [2, None])
    assert gf.concat([a, b], 0).shape.as_list() == [None, 3]
    assert gf.concat([a, b], 1).shape.as_list() == [2, None]
    assert gf.concat([a, gf.placeholder(gf.float32)], -1).shape.as_list() == [None, None]
    assert gf.stack([a, b]).shape.as_list() == [2, 2, 3]
    assert "concat" in _build_error(lambda: gf.concat([gf.zeros([2, 3]), gf.zeros([3, 2])], 0))
    _build_error(lambda: gf.concat([gf.zeros([2]), gf.zeros([2, 1])], 0))
    _build_error(lambda: gf.concat([gf.zeros([2]), gf.zeros([2], gf.int32)], 0), TypeError)
    _build_error(lambda: gf.stack([gf.zeros([2]), gf.zeros([3])]))
    _build_error(lambda: gf.stack([gf.zeros([2])], axis=3))


@given(nonempty_rank, st.data())
def test_unstack_matches_numpy(shape, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = _array(shape)
    expected = [np.take(x, i, axis=axis) for i in range(shape[axis])]
    with gf.Graph().as_default() as g:
        ts = gf.unstack(x, axis=axis)
        assert isinstance(ts, list) and len(ts) == shape[axis]
        assert all(t.shape.as_list() == list(e.shape) for t, e in zip(ts, expected))
        if ts:
            assert (ts[0].op.type, ts[0].op.name) == ("Unpack", "unstack")
        vals = run(ts, graph=g)
    for v, e in zip(vals, expected):
        assert_same(v, e)


def test_unstack_unknown_dims_and_errors():
    x = gf.placeholder(gf.float32, [None, 2])
    ts = gf.unstack(x, axis=1)
    assert [t.shape.as_list() for t in ts] == [[None], [None]]
    msg = _build_error(lambda: gf.unstack(x))
    assert "Cannot infer num" in msg and "unstack" in msg
    _build_error(lambda: gf.unstack(x, num=3, axis=1))
    _build_error(lambda: gf.unstack(x, axis=2))
    one = gf.unstack(x, num=1)
    assert isinstance(one, list) and len(one) == 1
    with pytest.raises(gf.errors.InvalidArgumentError, match="must equal 1"):
        run(one, {x: np.zeros((3, 2))})
    u = gf.unstack(gf.placeholder(gf.float32), num=2, axis=-1)
    assert u[0].shape.ndims is None
    assert_same(run(u[1], {u[1].op.inputs[0]: np.eye(2)}), np.array([0, 1], np.float32))


# --- split ---------------------------------------------------------------------------------
@given(nonempty_rank, st.data())
def test_split_matches_numpy(shape, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    d = shape[axis]
    x = _array(shape)
    divisors = [k for k in range(1, d + 1) if d % k == 0] or [1]
    n = data.draw(st.sampled_from(divisors))
    cuts = sorted(data.draw(st.lists(st.integers(0, d), max_size=3)))
    sizes = list(np.diff([0, *cuts, d]))
    use_minus = data.draw(st.booleans())
    given_sizes = [int(s) for s in sizes]
    if use_minus:
        given_sizes[data.draw(st.integers(0, len(sizes) - 1))] = -1
    with gf.Graph().as_default() as g:
        eq = gf.split(x, n, axis)
        parts = gf.split(x, given_sizes, axis=axis)
        assert (eq[0].op.type, eq[0].op.name) == ("Split", "split")
        assert (parts[0].op.type, parts[0].op.name) == ("SplitV", "split_1")
        e_eq = np.split(x, n, axis)
        e_parts = np.split(x, np.cumsum(sizes)[:-1], axis)
        assert [t.shape.as_list() for t in eq] == [list(e.shape) for e in e_eq]
        assert [t.shape.as_list() for t in parts] == [list(e.shape) for e in e_parts]
        v_eq, v_parts = run([eq, parts], graph=g)
    for v, e in zip(v_eq + v_parts, e_eq + e_parts):
        assert_same(v, e)


def test_split_unknown_dims_and_errors():
    x = gf.placeholder(gf.float32, [None, 6])
    assert [t.shape.as_list() for t in gf.split(x, 3, axis=1)] == [[None, 2]] * 3
    assert [t.shape.as_list() for t in gf.split(x, [1, -1], 1)] == [[None, 1], [None, 5]]
    axis = gf.placeholder(gf.int32, [])
    dyn = gf.split(x, 2, axis)
    assert [t.shape.as_list() for t in dyn] == [[None, None]] * 2
    vals = run(dyn, {x: np.arange(12.0).reshape(2, 6), axis: 0})
    assert_same(vals[1], np.arange(6.0, 12.0, dtype=np.float32).reshape(1, 6))
    one = gf.split(x, 1, 0)
    assert isinstance(one, list) and len(one) == 1
    for fn in [lambda: gf.split(x, 4, 1), lambda: gf.split(x, [2, 5], 1),
               lambda: gf.split(x, [2, -1, -1], 1), lambda: gf.split(x, [7, -1], 1),
               lambda: gf.split(x, 2, 2), lambda: gf.split(x, 0, 1),
               lambda: gf.split(x, gf.placeholder(gf.int32, [None]), 1)]:
        assert "split" in _build_error(fn)
    uneven = gf.split(x, 4, 0)
    with pytest.raises(gf.errors.InvalidArgumentError, match="evenly divide"):
        run(uneven, {x: np.zeros((3, 6))})
    sizes = gf.placeholder(gf.int32, [2])
    with pytest.raises(gf.errors.InvalidArgumentError, match="split"):
        run(gf.split(x, sizes, 1), {x: np.zeros((3, 6)), sizes: [2, 3]})


# --- expand_dims / squeeze ---------------------------------------------------------------
@given(shapes, st.data())
def test_expand_dims_and_squeeze(shape, data):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    x = _array(shape)
    e = np.expand_dims(x, axis)
    with gf.Graph().as_default() as g:
        t = gf.expand_dims(x, axis)
        s = gf.squeeze(t, [axis])
        s_all = gf.squeeze(t)
        assert (t.op.type, t.op.name) == ("ExpandDims", "ExpandDims")
        assert (s.op.type, s.op.name) == ("Squeeze", "Squeeze")
        assert t.shape.as_list() == list(e.shape) and s.shape.as_list() == list(shape)
        vt, vs, va = run([t, s, s_all], graph=g)
    assert_same(vt, e)
    assert_same(vs, x)
    assert_same(va, np.squeeze(e))


def test_squeeze_unknown_dims_and_errors():
    x = gf.placeholder(gf.float32, [None, 1, 3])
    assert gf.squeeze(x, [1]).shape.as_list() == [None, 3]
    assert gf.squeeze(x).shape.ndims is None  # an unknown dim may be 1 as well
    assert gf.expand_dims(gf.placeholder(gf.float32), 0).shape.ndims is None
    assert "Squeeze" in _build_error(lambda: gf.squeeze(x, [2]))
    with pytest.raises(gf.errors.InvalidArgumentError, match="squeeze"):
        run(gf.squeeze(x, [0]), {x: np.zeros((2, 1, 3))})


# --- fills ---------------------------------------------------------------------------------
@given(shapes, dtypes)
def test_fills_match_numpy(shape, dtype):
    x = _array(shape, dtype)
    with gf.Graph().as_default() as g:
        p = gf.placeholder(dtype, [None] * len(shape))
        ts = [gf.zeros(shape, dtype), gf.ones(list(shape), dtype), gf.zeros_like(x),
              gf.ones_like(p), gf.zeros_like(p, dtype=gf.float64), gf.fill(shape, x.flat[0])
              if x.size else gf.fill(shape, np.zeros((), dtype)), gf.zeros(gf.shape(p), dtype)]
        assert [t.op.name for t in ts[:5]] == ["zeros", "ones", "zeros_like", "ones_like",
                                               "zeros_like_1"]
        assert ts[0].shape.as_list() == list(shape)
        assert ts[3].shape.as_list() == [None] * len(shape)
        vals = run(ts, {p: x}, graph=g)
    assert_same(vals[0], np.zeros(shape, dtype))
    assert_same(vals[1], np.ones(shape, dtype))
    assert_same(vals[2], np.zeros_like(x))
    assert_same(vals[3], np.ones_like(x))
    assert_same(vals[4], np.zeros(shape, np.float64))
    assert_same(vals[5], np.full(shape, x.flat[0] if x.size else 0, dtype))
    assert_same(vals[6], np.zeros(shape, dtype))


def test_large_and_bool_fills():
    # Large fills and fills of unknown shape use Fill; bool values must convert (bug fixed).
    big = gf.zeros([50, 50], gf.bool)
    assert big.op.type == "Fill"
    b = gf.placeholder(gf.bool, [None, 2])
    z = gf.zeros_like(b)
    assert z.op.type == "Fill" and z.dtype == gf.bool
    vals = run([big, z, gf.ones_like(b)], {b: [[True, False]]})
    assert_same(vals[0], np.zeros((50, 50), bool))
    assert_same(vals[1], np.zeros((1, 2), bool))
    assert_same(vals[2], np.ones((1, 2), bool))
    assert gf.fill([2, 3], 1.5).op.name == "Fill"
    with pytest.raises(gf.errors.InvalidArgumentError, match="Fill"):
        run(gf.fill(gf.placeholder_with_default([-1], [1]), 1.0))


# --- tile ----------------------------------------------------------------------------------
@given(shapes, st.data())
def test_tile_matches_numpy(shape, data):
    mult = data.draw(st.lists(st.integers(0, 3), min_size=len(shape), max_size=len(shape)))
    x = _array(shape, np.int32)
    expected = np.tile(x, mult) if shape else x
    with gf.Graph().as_default() as g:
        t = gf.tile(x, mult)
        assert (t.op.type, t.op.name) == ("Tile", "Tile")
        assert t.shape.as_list() == list(expected.shape)
        m = gf.placeholder(gf.int64, [len(shape)])
        u = gf.tile(gf.placeholder_with_default(x, [None] * len(shape)), m)
        assert u.shape.as_list() == [None] * len(shape)
        vt, vu = run([t, u], {m: mult}, graph=g)
    assert_same(vt, expected)
    assert_same(vu, expected)


def test_tile_static_shapes_and_errors():
    x = gf.placeholder(gf.float32, [None, 1, 3])
    assert gf.tile(x, [2, 4, 1]).shape.as_list() == [None, 4, 3]
    assert gf.tile(x, [0, 2, 2]).shape.as_list() == [0, 2, 6]
    assert gf.tile(x, [1, gf.shape(x)[2], 1]).shape.as_list() == [None, 3, 3]
    assert gf.tile(gf.placeholder(gf.float32), [1, 2]).shape.as_list() == [None, None]
    assert "Tile" in _build_error(lambda: gf.tile(x, [1, 2]))
    _build_error(lambda: gf.tile(x, [1, -1, 2]))
    _build_error(lambda: gf.tile(x, [1.0, 1.0, 1.0]), TypeError)
    m = gf.placeholder(gf.int32, [None])
    with pytest.raises(gf.errors.InvalidArgumentError, match="length 3"):
        run(gf.tile(x, m), {x: np.zeros((1, 1, 3)), m: [1, 2]})


# --- pad -----------------------------------------------------------------------------------
@given(shapes, st.sampled_from(["CONSTANT", "REFLECT", "SYMMETRIC", "constant"]), st.data())
def test_pad_matches_numpy(shape, mode, data):
    limit = {"REFLECT": 1, "SYMMETRIC": 0}.get(mode, None)
    pads = []
    for d in shape:
        hi = 3 if limit is None else max(d - limit, 0)
        pads.append([data.draw(st.integers(0, hi)), data.draw(st.integers(0, hi))])
    value = data.draw(st.sampled_from([0, 0.0, 2.5]))
    x = _array(shape)
    np_mode = "constant" if limit is None else mode.lower()
    kw = {"constant_values": np.float32(value)} if limit is None else {}
    expected = np.pad(x, pads, mode=np_mode, **kw) if any(map(any, pads)) else x
    with gf.Graph().as_default() as g:
        if mode == "REFLECT" and 0 in shape:  # TF: REFLECT needs padding < dim, even for 0
            assert "MirrorPad" in _build_error(lambda: gf.pad(x, pads, mode))
            return
        t = gf.pad(x, pads, mode, constant_values=value)
        want = {None: "PadV2" if value else "Pad"}.get(limit, "MirrorPad")
        assert (t.op.type, t.op.name) == (want, want)
        assert t.shape.as_list() == list(expected.shape)
        p = gf.placeholder(gf.int32, [len(shape), 2])
        u = gf.pad(gf.placeholder_with_default(x, [None] * len(shape)), p, mode,
                   constant_values=value)
        assert u.shape.as_list() == [None] * len(shape)
        vt, vu = run([t, u], {p: np.array(pads, np.int32).reshape(len(shape), 2)}, graph=g)
    assert_same(vt, expected)
    assert_same(vu, expected)


def test_pad_static_shapes_and_errors():
    x = gf.placeholder(gf.float32, [None, 3])
    assert gf.pad(x, [[1, 2], [0, 1]]).shape.as_list() == [None, 4]
    assert gf.pad(x, [[0, 0], [gf.shape(x)[1], 1]]).shape.as_list() == [None, 7]
    assert gf.pad(gf.placeholder(gf.float32), [[1, 1]]).shape.as_list() == [None]
    assert gf.pad(x, [[1, 1], [1, 1]], constant_values=gf.constant(1.0)).op.type == "PadV2"
    assert "Pad" in _build_error(lambda: gf.pad(x, [[1, 1]]))
    _build_error(lambda: gf.pad(x, [[0, 0], [-1, 0]]))
    assert "MirrorPad" in _build_error(lambda: gf.pad(x, [[0, 0], [3, 0]], "REFLECT"))
    _build_error(lambda: gf.pad(x, [[0, 0], [4, 0]], "SYMMETRIC"))
    assert "padding mode" in _build_error(lambda: gf.pad(x, [[0, 0], [0, 0]], "WRAP"))
    _build_error(lambda: gf.pad(x, [[0, 0], [0, 0]], constant_values=gf.constant(1)),
                 TypeError)
    t = gf.pad(x, [[2, 0], [0, 0]], "REFLECT")
    with pytest.raises(gf.errors.InvalidArgumentError, match="less than the dimension size"):
        run(t, {x: np.zeros((2, 3))})


# --- range ---------------------------------------------------------------------------------
@given(st.integers(-10, 10), st.integers(-10, 10), st.integers(-4, 4).filter(bool))
def test_range_ints_match_numpy(start, limit, delta):
    expected = np.arange(start, limit, delta, dtype=np.int32)
    ok = not (start > limit and delta > 0 or start < limit and delta < 0)
    with gf.Graph().as_default() as g:
        if not ok:
            assert "range" in _build_error(lambda: gf.range(start, limit, delta))
            return
        t = gf.range(start, limit, delta)
        assert (t.op.type, t.op.name, t.dtype) == ("Range", "range", gf.int32)
        assert t.shape.as_list() == [expected.size]
        n = gf.placeholder(gf.int64, [])
        u = gf.range(start, n, delta)
        assert u.dtype == gf.int64 and u.shape.as_list() == [None]
        vt, vu = run([t, u], {n: limit}, graph=g)
    assert_same(vt, expected)
    assert_same(vu, expected.astype(np.int64))


@given(st.floats(-5, 5, width=32), st.floats(-5, 5, width=32),
       st.sampled_from([0.25, 0.5, 1.5, -0.5, -1.0]))
def test_range_floats(start, limit, delta):
    ok = not (start > limit and delta > 0 or start < limit and delta < 0)
    with gf.Graph().as_default() as g:
        if not ok:
            _build_error(lambda: gf.range(start, limit, delta))
            return
        t = gf.range(start, limit, delta)
        assert t.dtype == gf.float32
        n = int(np.ceil(np.abs((np.float32(limit) - np.float32(start)) / np.float32(delta))))
        assert t.shape.as_list() == [n]
        v = run(t, graph=g)
    assert v.dtype == np.float32
    np.testing.assert_allclose(v, np.float32(start) + np.float32(delta) * np.arange(n),
                               rtol=1e-5, atol=1e-5)


def test_range_dtypes_names_and_errors():
    assert gf.range(5).dtype == gf.int32
    assert gf.range(5).op.inputs[1].op.name == "range_1/limit"
    assert gf.range(0.0, 1.0, 0.25).dtype == gf.float32
    assert gf.range(1, 2.0).dtype == gf.float32
    assert gf.range(gf.constant(1, gf.int64), 5).dtype == gf.int64
    assert gf.range(3, dtype=gf.float64).dtype == gf.float64
    assert gf.range(3, name="r").op.name == "r"
    assert_same(run(gf.range(1, 2, 0.25)), np.array([1, 1.25, 1.5, 1.75], np.float32))
    assert_same(run(gf.range(5, 0, -2, dtype=gf.int64)), np.array([5, 3, 1], np.int64))
    assert_same(run(gf.range(0)), np.zeros(0, np.int32))
    assert "delta != 0" in _build_error(lambda: gf.range(1, 5, 0))
    _build_error(lambda: gf.range(5, 1))
    _build_error(lambda: gf.range(1.5, dtype=gf.int32), TypeError)
    _build_error(lambda: gf.range(gf.constant(3, gf.int8)), TypeError)
    _build_error(lambda: gf.range(gf.zeros([2], gf.int32)))
    n = gf.placeholder(gf.int32, [])
    with pytest.raises(gf.errors.InvalidArgumentError, match="Requires start >= limit"):
        run(gf.range(0, n, -1), {n: 3})
    with pytest.raises(gf.errors.InvalidArgumentError, match="delta != 0"):
        run(gf.range(0, 5, n), {n: 0})


# --- eye -----------------------------------------------------------------------------------
@given(st.integers(0, 4), st.one_of(st.none(), st.integers(0, 4)),
       st.one_of(st.none(), st.lists(st.integers(0, 3), max_size=2)),
       st.sampled_from([gf.float32, gf.int32, gf.bool, gf.float64]))
def test_eye_matches_numpy(rows, cols, batch, dtype):
    e = np.eye(rows, cols, dtype=dtype.np)
    expected = np.broadcast_to(e, tuple(batch or []) + e.shape)
    with gf.Graph().as_default() as g:
        t = gf.eye(rows, cols, batch, dtype=dtype)
        assert t.op.name == "eye" and t.dtype == dtype
        assert t.shape.as_list() == list(expected.shape)
        n = gf.placeholder(gf.int32, [])
        u = gf.eye(n, cols, batch, dtype=dtype)
        vt, vu = run([t, u], {n: rows}, graph=g)
    assert_same(vt, expected)
    assert_same(vu, expected)


def test_eye_errors():
    _build_error(lambda: gf.eye(2.0), TypeError)
    assert "eye" in _build_error(lambda: gf.eye(-1))
    _build_error(lambda: gf.eye(2, batch_shape=gf.placeholder(gf.int32, [None])))


# --- one_hot ---------------------------------------------------------------------------------
@given(st.lists(st.integers(0, 3), max_size=2).map(tuple), st.integers(0, 4), st.data())
def test_one_hot_matches_numpy(ishape, depth, data):
    axis = data.draw(st.integers(-1, len(ishape)))
    n = int(np.prod(ishape))
    idx = np.array(data.draw(st.lists(st.integers(-2, depth + 1), min_size=n, max_size=n)),
                   np.int64).reshape(ishape)
    on, off = data.draw(st.sampled_from([(None, None), (5, -1), (2.5, 0.5)]))
    hot = idx[..., None] == np.arange(depth)
    want = np.float32 if on is None or isinstance(on, float) else np.int32
    expected = np.where(hot, 1 if on is None else on, 0 if off is None else off).astype(want)
    expected = np.moveaxis(expected, -1, len(ishape) if axis == -1 else axis)
    with gf.Graph().as_default() as g:
        t = gf.one_hot(idx, depth, on, off, axis=axis)
        assert (t.op.type, t.op.name) == ("OneHot", "one_hot")
        assert t.shape.as_list() == list(expected.shape)
        d = gf.placeholder(gf.int32, [])
        u = gf.one_hot(gf.placeholder_with_default(idx.astype(np.int32), [None] * len(ishape)),
                       d, on, off, axis=axis)
        vt, vu = run([t, u], {d: depth}, graph=g)
    assert_same(vt, expected)
    assert_same(vu, expected)


def test_one_hot_dtypes_and_errors():
    assert gf.one_hot([1], 3).dtype == gf.float32
    assert gf.one_hot([1], 3, on_value=5).dtype == gf.int32
    assert gf.one_hot([1], 3, off_value=gf.constant(0.0, gf.float64)).dtype == gf.float64
    assert gf.one_hot([1], 3, dtype=gf.int64).dtype == gf.int64
    assert gf.one_hot([1], 3, on_value=5, dtype=gf.float32).dtype == gf.float32
    assert_same(run(gf.one_hot(np.array([0, 2], np.uint8), 3, dtype=gf.bool)),
                np.eye(3, dtype=bool)[[0, 2]])
    assert gf.one_hot(gf.placeholder(gf.int32), 3).shape.ndims is None
    msg = _build_error(lambda: gf.one_hot([1], 3, on_value=gf.constant(1), dtype=gf.float32),
                       TypeError)
    assert "one_hot" in msg
    _build_error(lambda: gf.one_hot([1], 3, on_value=1.0, off_value=gf.constant(0)), TypeError)
    _build_error(lambda: gf.one_hot([1.0], 3), TypeError)
    assert "OneHot" in _build_error(lambda: gf.one_hot([1], 3, axis=2))
    _build_error(lambda: gf.one_hot([1], -1))
    d = gf.placeholder(gf.int32, [])
    with pytest.raises(gf.errors.InvalidArgumentError, match="depth must be non-negative"):
        run(gf.one_hot([1], d), {d: -2})


# --- exports ---------------------------------------------------------------------------------
def test_exports():
    from graphflow.ops import array_ops, indexing_ops

    for name in array_ops.__all__ + indexing_ops.__all__:
        assert callable(getattr(gf, name)), name
    assert gf.range.__name__ == "range"
    assert array_ops.gather is indexing_ops.gather  # TF1 keeps gather in array_ops
    assert not hasattr(gf, "np") and not hasattr(gf, "OpDef")
    with pytest.raises(AttributeError):
        array_ops.no_such_function  # noqa: B018


def test_stack_of_nothing_is_a_clear_error():
    with pytest.raises(ValueError, match="at least one"):
        gf.stack([])


def test_shape_tensors_built_from_slices_of_shapes_are_known_statically():
    y = gf.placeholder(gf.float32, [3, 5])
    assert gf.zeros([gf.shape(y)[1]]).shape.as_list() == [5]
    assert gf.fill([gf.shape(y)[0], 2], 1.0).shape.as_list() == [3, 2]
