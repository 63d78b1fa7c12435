"""constant_op: gf.constant's dtype inference, dtype= and shape= handling, errors;
placeholders and placeholder_with_default."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from conftest import assert_same, run
from hypothesis import given
from hypothesis import strategies as st

import graphflow as gf

SUPPORTED_NP = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
                np.float16, np.float32, np.float64]


# --- dtype inference ----------------------------------------------------------------------
@pytest.mark.parametrize("value, dtype, shape", [
    (1, gf.int32, []),
    (-7, gf.int32, []),
    (1.0, gf.float32, []),
    (True, gf.bool, []),
    (np.float64(1.5), gf.float64, []),
    (np.float32(1.5), gf.float32, []),
    (np.int64(3), gf.int64, []),
    (np.int16(3), gf.int16, []),
    (np.uint8(3), gf.uint8, []),
    (np.bool_(False), gf.bool, []),
    (2**31 - 1, gf.int32, []),
    (-(2**31), gf.int32, []),
    (2**31, gf.int64, []),
    (2**40, gf.int64, []),
    (-(2**40), gf.int64, []),
    ([1, 2**40], gf.int64, [2]),
    ([[1, 2], [3, 4]], gf.int32, [2, 2]),
    ([[1.0, 2], [3, 4]], gf.float32, [2, 2]),
    ([True, False], gf.bool, [2]),
    ((1, 2, 3), gf.int32, [3]),
    ([], gf.float32, [0]),
    ([[], []], gf.float32, [2, 0]),
    (np.zeros((2, 0, 3)), gf.float64, [2, 0, 3]),
    (np.arange(6).reshape(2, 3), gf.int64, [2, 3]),
    (np.array(2.5, np.float16), gf.float16, []),
])
def test_dtype_and_shape_inference(value, dtype, shape):
    t = gf.constant(value)
    assert t.dtype == dtype
    assert t.shape.as_list() == shape
    out = run(t)
    assert np.asarray(out).dtype == dtype.as_numpy_dtype
    np.testing.assert_array_equal(out, np.asarray(value).astype(dtype.as_numpy_dtype))


@given(x=st.sampled_from(SUPPORTED_NP).flatmap(
    lambda d: hnp.arrays(d, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))))
def test_numpy_arrays_round_trip_exactly(x):
    t = gf.constant(x)
    assert t.dtype == gf.as_dtype(x.dtype) and t.shape.as_list() == list(x.shape)
    out = run(t)
    assert np.asarray(out).dtype == x.dtype
    np.testing.assert_array_equal(out, x)  # NaN == NaN here


@given(data=st.data())
def test_nested_python_lists(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3))
    kind = data.draw(st.sampled_from(["int", "float", "bool"]))
    elements = {"int": st.integers(-(2**31), 2**31 - 1),
                "float": st.floats(-1e30, 1e30, allow_nan=False),
                "bool": st.booleans()}[kind]
    arr = data.draw(hnp.arrays(object, shape, elements=elements))
    value = arr.tolist()
    t = gf.constant(value)
    expected = {"int": np.int32, "float": np.float32, "bool": np.bool_}[kind]
    assert t.dtype == gf.as_dtype(expected) and t.shape.as_list() == list(shape)
    assert_same(run(t), np.array(value).astype(expected))


# --- dtype= ---------------------------------------------------------------------------------
def test_explicit_dtype_converts_without_losing_data():
    assert_same(run(gf.constant(1, dtype=gf.float32)), np.float32(1))
    assert_same(run(gf.constant([1, 2], dtype=gf.float64)), np.array([1.0, 2.0]))
    assert_same(run(gf.constant([1, 2], dtype="int64")), np.array([1, 2], np.int64))
    assert_same(run(gf.constant(3, dtype=np.uint8)), np.uint8(3))
    assert_same(run(gf.constant(1.5, dtype=gf.float64)), np.float64(1.5))
    assert_same(run(gf.constant(np.float64(0.1), dtype=gf.float32)), np.float32(0.1))
    assert_same(run(gf.constant(np.array([2.0, -3.0]), dtype=gf.int32)),
                np.array([2, -3], np.int32))
    assert_same(run(gf.constant([True], dtype=gf.bool)), np.array([True]))
    assert_same(run(gf.constant(np.int64(5), dtype=gf.int32)), np.int32(5))
    assert gf.constant(1, dtype=float).dtype == gf.float32
    assert gf.constant(1, dtype=gf.double).dtype == gf.float64


def test_empty_lists_take_any_requested_dtype():
    for dtype in (gf.int32, gf.int64, gf.bool, gf.float64, gf.uint8):
        t = gf.constant([], dtype=dtype)
        assert t.dtype == dtype and t.shape.as_list() == [0]
        assert_same(run(t), np.zeros(0, dtype.as_numpy_dtype))
    # ... which is what shape arguments built from empty lists need.
    assert run(gf.reshape(gf.constant([3.0]), [])) == np.float32(3.0)


@pytest.mark.parametrize("value, dtype", [
    (1.5, gf.int32),
    (1.0, gf.int32),            # TF1: Python floats never become int tensors
    ([1, 2.5], gf.int64),
    (np.array([1.5]), gf.int32),  # a non-integral array
    (np.array([np.nan]), gf.int32),
    (True, gf.int32),
    ([True, False], gf.float32),
    (1, gf.bool),
    (0.0, gf.bool),
    (300, gf.uint8),
    (-1, gf.uint8),
    (128, gf.int8),
    (2**31, gf.int32),
    (2**63, gf.int64),
])
def test_values_that_do_not_fit_the_dtype_raise_type_error(value, dtype):
    with pytest.raises(TypeError) as info:
        gf.constant(value, dtype=dtype)
    assert isinstance(info.value, gf.errors.OpError)
    assert dtype.name in str(info.value)


@pytest.mark.parametrize("value", [
    [[1, 2], [3]],
    [1, [2, 3]],
    "abc",
    ["a", "b"],
    b"bytes",
    None,
    {"a": 1},
    object(),
    [1, None],
    np.array(["x"]),
    np.array([1 + 2j]),
    np.arange(3, dtype=np.uint16),
    np.array(["2020-01-01"], dtype="datetime64[D]"),
    2**70,
])
def test_unconvertible_values_raise(value):
    with pytest.raises((TypeError, ValueError)) as info:
        gf.constant(value)
    assert isinstance(info.value, gf.errors.OpError)


def test_unknown_dtype_name_raises_type_error():
    with pytest.raises(TypeError):
        gf.constant(1, dtype="string")


# --- shape= and verify_shape ------------------------------------------------------------
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
       value=st.one_of(st.integers(-100, 100), st.floats(-1e3, 1e3), st.booleans()))
def test_a_scalar_is_broadcast_to_the_shape(shape, value):
    t = gf.constant(value, shape=list(shape))
    assert t.shape.as_list() == list(shape)
    expected = np.full(shape, value, dtype=t.dtype.as_numpy_dtype)
    assert_same(run(t), expected)


@given(data=st.data())
def test_a_value_with_as_many_elements_is_reshaped(data):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4))
    n = int(np.prod(shape))
    values = np.arange(n).astype(data.draw(st.sampled_from([np.int32, np.float64])))
    as_list = data.draw(st.booleans())
    t = gf.constant(values.tolist() if as_list else values, shape=shape)
    expected = values.reshape(shape)
    if as_list and values.dtype == np.float64:
        expected = expected.astype(np.float32)
    assert t.shape.as_list() == list(shape)
    assert_same(run(t), expected)


def test_shape_argument_forms_and_padding():
    assert_same(run(gf.constant(7, shape=(2, 3))), np.full((2, 3), 7, np.int32))
    assert_same(run(gf.constant([7], shape=gf.TensorShape([2]))), np.array([7, 7], np.int32))
    assert_same(run(gf.constant(np.ones((2, 2)), shape=[4])), np.ones(4))
    assert_same(run(gf.constant(1.0, shape=[])), np.float32(1.0))
    # TF1: fewer values than the shape holds are padded with the last value.
    assert_same(run(gf.constant([1, 2, 3], shape=[2, 3])),
                np.array([[1, 2, 3], [3, 3, 3]], np.int32))
    assert_same(run(gf.constant([1.0, 2.0], shape=[5], dtype=gf.float64)),
                np.array([1.0, 2.0, 2.0, 2.0, 2.0]))
    # The constant keeps its own read-only copy of the value.
    src = np.array([1.0, 2.0], np.float32)
    t = gf.constant(src)
    src[0] = 100.0
    assert_same(run(t), np.array([1.0, 2.0], np.float32))
    assert not t.op.get_attr("value").flags.writeable


def test_shape_errors():
    with pytest.raises(ValueError) as info:
        gf.constant([1, 2, 3], shape=[2])  # too many values
    assert isinstance(info.value, gf.errors.OpError)
    with pytest.raises(ValueError):
        gf.constant([1, 2, 3, 4, 5], shape=[2, 2])
    with pytest.raises(ValueError):
        gf.constant(1, shape=[None, 2])  # must be fully defined
    with pytest.raises((TypeError, ValueError)):
        gf.constant(1, shape=[-1])
    assert_same(run(gf.constant([[1, 2]], shape=[1, 2], verify_shape=True)),
                np.array([[1, 2]], np.int32))
    for value, shape in (([1, 2, 3, 4], [2, 2]), (1, [3]), ([1, 2], [3])):
        with pytest.raises((TypeError, ValueError)) as info:
            gf.constant(value, shape=shape, verify_shape=True)
        assert isinstance(info.value, gf.errors.OpError)


def test_constant_names():
    assert gf.constant(1).op.name == "Const"
    assert gf.constant(1).op.name == "Const_1"
    assert gf.constant(1, name="c").op.name == "c"
    assert gf.constant(1, name="c").op.name == "c_1"
    t = gf.constant([1.0, 2.0], name="vals")
    assert t.name == "vals:0" and t.op.type == "Const"
    assert t.op.get_attr("dtype") == gf.float32
    with gf.name_scope("scope"):
        assert gf.constant(1).op.name == "scope/Const"
    with pytest.raises(ValueError):
        gf.constant(1, name="bad name")


# --- placeholder ----------------------------------------------------------------------------
def test_placeholder_static_shape_dtype_and_name():
    p = gf.placeholder(gf.float32, [None, 3])
    assert p.op.name == "Placeholder" and p.op.type == "Placeholder"
    assert p.dtype == gf.float32 and p.shape.as_list() == [None, 3]
    assert gf.placeholder(gf.int64).shape.ndims is None
    assert gf.placeholder("float64", (2,), name="x").op.name == "x"
    assert gf.placeholder(np.int32, []).shape.as_list() == []
    assert gf.placeholder(gf.bool, gf.TensorShape([None])).dtype == gf.bool
    assert gf.placeholder(gf.float32, name="x").op.name == "x_1"
    with pytest.raises(TypeError):
        gf.placeholder("complex64")


def test_placeholder_feeding():
    p = gf.placeholder(gf.float32, [None, 2], name="p")
    y = p * 2.0
    out = run(y, {p: [[1, 2], [3, 4], [5, 6]]})
    assert_same(out, np.array([[2, 4], [6, 8], [10, 12]], np.float32))
    assert_same(run(y, {p: np.zeros((0, 2))}), np.zeros((0, 2), np.float32))
    with pytest.raises(gf.errors.InvalidArgumentError, match="p"):
        run(y)
    with pytest.raises(ValueError):
        run(y, {p: np.zeros((2, 3))})
    i = gf.placeholder(gf.int32, [2])
    with pytest.raises(TypeError):
        run(i, {i: [1.5, 2.5]})
    assert_same(run(i, {i: np.array([1, 2], np.int64)}), np.array([1, 2], np.int32))
    u = gf.placeholder(gf.float64)
    assert_same(run(u, {u: 3}), np.float64(3))
    assert_same(run(u, {u: np.ones((1, 1, 1))}), np.ones((1, 1, 1)))


# --- placeholder_with_default --------------------------------------------------------------
def test_placeholder_with_default_unfed_and_fed():
    p = gf.placeholder_with_default([1.0, 2.0], shape=[None])
    assert p.op.type == "PlaceholderWithDefault" and p.op.name == "PlaceholderWithDefault"
    assert p.dtype == gf.float32 and p.shape.as_list() == [None]
    y = p + 1.0
    assert_same(run(y), np.array([2.0, 3.0], np.float32))
    assert_same(run(y, {p: [10.0, 20.0, 30.0]}), np.array([11.0, 21.0, 31.0], np.float32))
    assert_same(run(p), np.array([1.0, 2.0], np.float32))
    with pytest.raises(ValueError):
        run(p, {p: [[1.0]]})  # rank 2 does not fit [None]


def test_placeholder_with_default_shapes_and_dtypes():
    full = gf.placeholder_with_default(np.zeros((2, 3), np.float64), shape=[2, 3], name="pd")
    assert full.op.name == "pd" and full.dtype == gf.float64 and full.shape.as_list() == [2, 3]
    anyshape = gf.placeholder_with_default(gf.constant(5), shape=None)
    assert anyshape.shape.ndims is None and anyshape.dtype == gf.int32
    assert_same(run(anyshape), np.int32(5))
    assert_same(run(anyshape, {anyshape: [[1, 2]]}), np.array([[1, 2]], np.int32))
    x = gf.placeholder(gf.float32, [None, 4])
    from_tensor = gf.placeholder_with_default(x, shape=[None, None])
    assert from_tensor.shape.as_list() == [None, None]
    with pytest.raises(ValueError) as info:
        gf.placeholder_with_default([1, 2, 3], shape=[2])
    assert isinstance(info.value, gf.errors.OpError)
    assert "PlaceholderWithDefault" in str(info.value)
    with pytest.raises(ValueError):
        gf.placeholder_with_default([[1.0, 2.0]], shape=[2])
    with pytest.raises(ValueError):
        gf.placeholder_with_default(x, shape=[None, 3])
