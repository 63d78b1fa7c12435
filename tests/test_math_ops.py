"""math_ops: elementwise unary/binary ops, operators, where/clip/cast, reductions, matmul.

Every op is checked against NumPy (the oracle) on hypothesis-generated shapes,
including size-0 dims and NaN/inf/-0.0/large magnitudes, for the dtypes it accepts,
and against TF1's build-time rules (no implicit promotion, dtype and shape errors).
"""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from conftest import assert_same, run
from hypothesis import given
from hypothesis import strategies as st

import graphflow as gf
from graphflow.ops.building import make

F32, F64, I8, I32, I64, U8 = np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8
FLOATS = [F32, F64]
TOL = {np.dtype(F32): dict(rtol=2e-6, atol=1e-37), np.dtype(F64): dict(rtol=1e-12, atol=1e-300)}

SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, 2.5, -2.5,
            1e-30, -1e-30, 88.5, -88.5, 1000.0, -1000.0, 1e30, -1e30]


# --- strategies ------------------------------------------------------------------------
def shapes(min_dims: int = 0, max_dims: int = 3, max_side: int = 4):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=max_side)


def float_arrays(dtype, shape, lo: float = -100.0, hi: float = 100.0, specials: bool = True):
    """Float arrays mixing ordinary values with NaN, +-inf, +-0.0 and huge/tiny magnitudes."""
    ordinary = st.floats(lo, hi, allow_nan=False)
    elements = st.one_of(st.sampled_from(SPECIALS), ordinary) if specials else ordinary
    return hnp.arrays(F64, shape, elements=elements).map(lambda a: a.astype(dtype))


def int_arrays(dtype, shape, lo: int = -50, hi: int = 50, nonzero: bool = False):
    elements = st.integers(lo, hi)
    if nonzero:
        elements = elements.filter(lambda v: v != 0)
    return hnp.arrays(dtype, shape, elements=elements)


def bool_arrays(shape):
    return hnp.arrays(np.bool_, shape)


def arrays_of(dtype, shape, **kw):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return float_arrays(dtype, shape, **kw)
    if dtype.kind == "b":
        return bool_arrays(shape)
    return int_arrays(dtype, shape, **kw)


def _resolve(path: str):
    obj = gf
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def op_fn(op_type: str, public: str | None = None, **attrs):
    """The public function of an op if graphflow has one, else a direct op builder."""
    fn = _resolve(public) if public else None
    if fn is not None:
        return (lambda x: fn(x, **attrs)) if attrs else fn
    return lambda x: make(op_type, [gf.convert_to_tensor(x)], attrs or None)


def f64_ref(fn):
    """A reference computed in float64 and rounded to the input's dtype."""
    return lambda x: np.asarray(fn(x.astype(F64))).astype(x.dtype)


def _erf64(x):
    return np.vectorize(math.erf, otypes=[F64])(x) if x.size else x.astype(F64)


SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


# (op type, builder, NumPy reference, exact same-dtype reference?, int dtypes accepted)
UNARY = [
    ("Neg", gf.negative, np.negative, True, True),
    ("Abs", gf.abs, np.abs, True, True),
    ("Sign", gf.sign, np.sign, True, True),
    ("Square", gf.square, np.square, True, True),
    ("Sqrt", gf.sqrt, np.sqrt, True, False),
    ("Rsqrt", gf.rsqrt, f64_ref(lambda x: 1.0 / np.sqrt(x)), False, False),
    ("Reciprocal", gf.reciprocal, f64_ref(lambda x: 1.0 / x), False, True),
    ("Exp", gf.exp, np.exp, True, False),
    ("Expm1", gf.expm1, np.expm1, True, False),
    ("Log", gf.log, np.log, True, False),
    ("Log1p", gf.log1p, np.log1p, True, False),
    ("Sin", gf.sin, np.sin, True, False),
    ("Cos", gf.cos, np.cos, True, False),
    ("Tan", gf.tan, np.tan, True, False),
    ("Tanh", gf.tanh, np.tanh, True, False),
    ("Sigmoid", gf.sigmoid, f64_ref(lambda x: np.exp(-np.logaddexp(0.0, -x))), False, False),
    ("Softplus", op_fn("Softplus", "nn.softplus"),
     f64_ref(lambda x: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))), False, False),
    ("Softsign", op_fn("Softsign", "nn.softsign"), f64_ref(lambda x: x / (1 + np.abs(x))),
     False, False),
    ("Erf", gf.erf, f64_ref(_erf64), False, False),
    ("Floor", gf.floor, np.floor, True, False),
    ("Ceil", gf.ceil, np.ceil, True, False),
    ("Round", gf.round, np.round, True, False),
    ("Relu", op_fn("Relu", "nn.relu"), lambda x: np.maximum(x, x.dtype.type(0)), True, True),
    ("Relu6", op_fn("Relu6", "nn.relu6"),
     lambda x: np.minimum(np.maximum(x, x.dtype.type(0)), x.dtype.type(6)), True, True),
    ("Elu", op_fn("Elu", "nn.elu"), f64_ref(lambda x: np.where(x > 0, x, np.expm1(x))),
     False, False),
    ("Selu", op_fn("Selu", "nn.selu"),
     f64_ref(lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x))), False, False),
    ("LeakyRelu", op_fn("LeakyRelu", "nn.leaky_relu", alpha=0.2),
     f64_ref(lambda x: np.where(x > 0, x, 0.2 * x)), False, False),
    ("Gelu", op_fn("Gelu", "nn.gelu", approximate=False),
     f64_ref(lambda x: 0.5 * x * (1 + _erf64(x / math.sqrt(2)))), False, False),
    ("GeluApprox", op_fn("Gelu", "nn.gelu", approximate=True),
     f64_ref(lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))),
     False, False),
    ("Identity", gf.identity, lambda x: x, True, True),
    ("StopGradient", gf.stop_gradient, lambda x: x, True, True),
]
UNARY_IDS = [u[0] for u in UNARY]
INT_REJECTING = [u for u in UNARY if not u[4] and u[0] != "Round"]
PREDICATES = [("IsNan", gf.is_nan, np.isnan), ("IsInf", gf.is_inf, np.isinf),
              ("IsFinite", gf.is_finite, np.isfinite)]


# --- unary elementwise -----------------------------------------------------------------
@pytest.mark.parametrize("op_type, fn, ref, exact, ints", UNARY, ids=UNARY_IDS)
@given(data=st.data())
def test_unary_float_ops_match_numpy(op_type, fn, ref, exact, ints, data):
    dtype = data.draw(st.sampled_from(FLOATS), label="dtype")
    x = data.draw(float_arrays(dtype, shapes()), label="x")
    y = fn(gf.constant(x))
    assert y.dtype == gf.as_dtype(dtype)
    assert y.shape.as_list() == list(x.shape)
    with np.errstate(all="ignore"):
        expected = ref(x)
    tol = dict(rtol=1e-6) if exact else TOL[np.dtype(dtype)]
    assert_same(run(y), expected.astype(dtype), **tol)


@pytest.mark.parametrize("op_type, fn, ref, exact, ints", [u for u in UNARY if u[4]],
                         ids=[u[0] for u in UNARY if u[4]])
@given(data=st.data())
def test_unary_int_ops_match_numpy(op_type, fn, ref, exact, ints, data):
    dtype = data.draw(st.sampled_from([I32, I64]), label="dtype")
    nonzero = op_type == "Reciprocal"
    x = data.draw(int_arrays(dtype, shapes(), -1000, 1000, nonzero=nonzero), label="x")
    if op_type == "Reciprocal":
        expected = np.reciprocal(x)  # integer reciprocal: 1 / x truncated, as TF
    else:
        expected = ref(x)
    assert_same(run(fn(gf.constant(x))), expected)


@pytest.mark.parametrize("name, fn, ref", PREDICATES, ids=[p[0] for p in PREDICATES])
@given(data=st.data())
def test_float_predicates(name, fn, ref, data):
    dtype = data.draw(st.sampled_from(FLOATS), label="dtype")
    x = data.draw(float_arrays(dtype, shapes()), label="x")
    y = fn(x if data.draw(st.booleans()) else gf.constant(x))
    assert y.dtype == gf.bool and y.shape.as_list() == list(x.shape)
    assert_same(run(y), ref(x))


@given(x=bool_arrays(shapes()))
def test_logical_not(x):
    assert_same(run(gf.logical_not(x)), np.logical_not(x))
    assert_same(run(~gf.constant(x)), np.logical_not(x))


@pytest.mark.parametrize("dtype", [np.bool_, I8, U8, np.int16, I32, I64, np.float16, F32, F64])
def test_identity_and_stop_gradient_keep_every_dtype(dtype):
    x = np.arange(6).reshape(2, 3).astype(dtype)
    assert_same(run(gf.identity(x)), x)
    assert_same(run(gf.stop_gradient(gf.constant(x))), x)
    assert gf.identity(x).op.type == "Identity"
    assert gf.stop_gradient(x).op.type == "StopGradient"


@pytest.mark.parametrize("op_type, fn, ref, exact, ints", INT_REJECTING,
                         ids=[u[0] for u in INT_REJECTING])
def test_float_only_ops_reject_ints_at_build_time(op_type, fn, ref, exact, ints):
    x = gf.placeholder(gf.int32, [2], name="xi")
    if op_type == "LeakyRelu":  # tf.nn.leaky_relu casts ints to float32; the op does not
        fn = op_fn("LeakyRelu", None, alpha=0.2)
    with pytest.raises(TypeError) as info:
        fn(x)
    assert isinstance(info.value, gf.errors.OpError)
    assert ("Gelu" if op_type == "GeluApprox" else op_type) in str(info.value)
    assert "int32" in str(info.value)


@pytest.mark.parametrize("fn", [gf.is_nan, gf.is_inf, gf.is_finite, gf.floor, gf.ceil])
def test_float_predicates_and_rounding_reject_ints(fn):
    with pytest.raises(TypeError):
        fn(gf.constant([1, 2]))


@pytest.mark.parametrize("op_type, fn, ref, exact, ints",
                         [u for u in UNARY if u[0] not in ("Identity", "StopGradient")],
                         ids=[u[0] for u in UNARY if u[0] not in ("Identity", "StopGradient")])
def test_numeric_ops_reject_bool(op_type, fn, ref, exact, ints):
    with pytest.raises(TypeError) as info:
        fn(gf.constant([True, False]))
    assert isinstance(info.value, gf.errors.OpError)


def test_logical_not_rejects_numbers():
    with pytest.raises(TypeError, match="LogicalNot"):
        gf.logical_not(gf.constant([1.0]))


def test_unary_op_names_and_explicit_name():
    x = gf.placeholder(gf.float32, [None, 3], name="x")
    assert gf.sqrt(x).op.name == "Sqrt"
    assert gf.sqrt(x).op.name == "Sqrt_1"
    assert gf.exp(x, name="my_exp").op.name == "my_exp"
    assert gf.negative(x).op.type == "Neg" and gf.abs(x).op.type == "Abs"
    y = gf.tanh(x)
    assert y.shape.as_list() == [None, 3]
    out = run(y, {x: np.ones((2, 3), np.float32)})
    assert_same(out, np.tanh(np.ones((2, 3), np.float32)))


def test_unary_ops_accept_python_values_and_variables():
    assert_same(run(gf.square(3.0)), np.float32(9.0))
    assert_same(run(gf.abs([-1, 2])), np.array([1, 2], np.int32))
    v = gf.Variable([4.0, 9.0])
    assert_same(run(gf.sqrt(v)), np.array([2.0, 3.0], np.float32))


def test_float16_dtype_is_preserved():
    x = np.array([0.5, -1.0, 2.0], np.float16)
    for fn in (gf.exp, gf.sigmoid, gf.tanh, gf.square, gf.negative):
        y = fn(x)
        assert y.dtype == gf.float16
        assert run(y).dtype == np.float16


@pytest.mark.parametrize("dtype", FLOATS)
def test_sigmoid_is_finite_and_exact_at_the_extremes(dtype):
    out = run(gf.sigmoid(np.array([-1000.0, 1000.0, 0.0, -88.0, 88.0], dtype)))
    assert out.dtype == dtype and np.all(np.isfinite(out))
    assert out[0] == 0.0 and out[1] == 1.0 and out[2] == 0.5
    assert 0 < out[3] < 1e-30 and out[4] == 1.0


@pytest.mark.parametrize("dtype", FLOATS)
def test_softplus_is_stable(dtype):
    softplus = op_fn("Softplus", "nn.softplus")
    out = run(softplus(np.array([1000.0, -1000.0, 0.0, 30.0], dtype)))
    assert out.dtype == dtype and np.all(np.isfinite(out))
    assert out[0] == 1000.0 and out[1] == 0.0
    np.testing.assert_allclose(out[2], math.log(2), rtol=1e-6)
    np.testing.assert_allclose(out[3], 30.0, rtol=1e-6)


@pytest.mark.parametrize("dtype", FLOATS)
def test_exp_log_sqrt_special_values(dtype):
    big = 1000.0 if dtype == F64 else 100.0
    out = run(gf.exp(np.array([big, -1000.0, -np.inf, 0.0], dtype)))
    assert out[0] == np.inf and out[1] == 0.0 and out[2] == 0.0 and out[3] == 1.0
    logs = run(gf.log(np.array([0.0, -1.0, np.inf, 1.0], dtype)))
    assert logs[0] == -np.inf and np.isnan(logs[1]) and logs[2] == np.inf and logs[3] == 0.0
    assert run(gf.log1p(np.array([-1.0], dtype)))[0] == -np.inf
    assert run(gf.expm1(np.array([-np.inf], dtype)))[0] == -1.0
    roots = run(gf.sqrt(np.array([-0.0, -1.0, np.inf], dtype)))
    assert roots[0] == 0 and np.signbit(roots[0]) and np.isnan(roots[1]) and roots[2] == np.inf
    assert run(gf.rsqrt(np.array([0.0], dtype)))[0] == np.inf
    recips = run(gf.reciprocal(np.array([0.0, -0.0, np.inf], dtype)))
    assert recips[0] == np.inf and recips[1] == -np.inf and recips[2] == 0.0
    assert list(run(gf.tanh(np.array([-1000.0, 1000.0], dtype)))) == [-1.0, 1.0]


def test_negative_zero_sign_is_kept():
    neg = run(gf.negative(np.array([0.0], F32)))
    assert neg[0] == 0 and np.signbit(neg[0])
    assert not np.signbit(run(gf.abs(np.array([-0.0], F32)))[0])
    assert np.signbit(run(-gf.constant(0.0)))


@pytest.mark.parametrize("dtype", FLOATS)
def test_round_is_half_to_even(dtype):
    x = np.array([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, -2.5, 0.49999997, 2.5000002, -7.5], dtype)
    out = run(gf.round(x))
    assert_same(out, np.array([0, 2, 2, 4, -0, -2, -2, 0, 3, -8], dtype))


def test_round_returns_integer_tensors_unchanged():
    # TF1's tf.round: "if x.dtype.is_integer: return x".
    x = gf.constant([1, -2, 3])
    assert gf.round(x) is x


def test_erf_and_gelu_known_values():
    erf = run(gf.erf(np.array([0.0, 0.5, -1.0, np.inf, -np.inf, np.nan], F64)))
    np.testing.assert_allclose(erf[:5], [0.0, math.erf(0.5), math.erf(-1.0), 1.0, -1.0],
                               rtol=1e-15)
    assert np.isnan(erf[5])
    gelu = op_fn("Gelu", "nn.gelu", approximate=False)
    gelu_tanh = op_fn("Gelu", "nn.gelu", approximate=True)
    np.testing.assert_allclose(run(gelu(np.array([1.0, -1.0], F64))),
                               [0.8413447460685429, -0.15865525393145707], rtol=1e-12)
    np.testing.assert_allclose(run(gelu_tanh(np.array([1.0], F64))), [0.8411919906082768],
                               rtol=1e-12)


def test_activation_edge_values():
    relu6 = op_fn("Relu6", "nn.relu6")
    assert_same(run(relu6(np.array([-3, 0, 5, 6, 7, 100], I32))),
                np.array([0, 0, 5, 6, 6, 6], I32))
    elu = op_fn("Elu", "nn.elu")
    assert_same(run(elu(np.array([-np.inf, 0.0, 2.0], F32))), np.array([-1.0, 0.0, 2.0], F32))
    selu = op_fn("Selu", "nn.selu")
    out = run(selu(np.array([-np.inf, 1.0], F64)))
    np.testing.assert_allclose(out, [-SELU_SCALE * SELU_ALPHA, SELU_SCALE], rtol=1e-12)
    leaky = op_fn("LeakyRelu", "nn.leaky_relu", alpha=0.1)
    assert_same(run(leaky(np.array([-1.0, 2.0], F64))), np.array([-0.1, 2.0]))
    softsign = op_fn("Softsign", "nn.softsign")
    assert_same(run(softsign(np.array([-3.0, 1.0], F32))), np.array([-0.75, 0.5], F32))


def test_integer_reciprocal_of_zero_fails_at_run_time():
    y = gf.reciprocal(gf.constant([1, 0]))  # builds fine
    with pytest.raises(gf.errors.InvalidArgumentError, match="Reciprocal"):
        run(y)


# --- cast --------------------------------------------------------------------------------
@given(x=float_arrays(F64, shapes(), -1e6, 1e6, specials=False),
       dst=st.sampled_from([I8, I32, I64, U8]))
def test_cast_float_to_int_truncates_toward_zero(x, dst):
    if np.dtype(dst).itemsize < 4:
        x = np.clip(x, np.iinfo(dst).min, np.iinfo(dst).max)
    y = gf.cast(x, gf.as_dtype(dst))
    assert y.op.type == "Cast" and y.dtype == gf.as_dtype(dst)
    assert_same(run(y), np.trunc(x).astype(dst))


def test_cast_examples_and_bool_conversions():
    assert_same(run(gf.cast([-1.7, -0.5, 0.5, 1.7, 2.99], gf.int32)),
                np.array([-1, 0, 0, 1, 2], I32))
    assert_same(run(gf.cast([True, False], gf.float32)), np.array([1.0, 0.0], F32))
    assert_same(run(gf.cast([True, False], gf.int64)), np.array([1, 0], I64))
    assert_same(run(gf.cast([0.0, -0.0, 0.1, -2.0, np.nan], gf.bool)),
                np.array([False, False, True, True, True]))
    assert_same(run(gf.cast([0, 3, -1], gf.bool)), np.array([False, True, True]))
    big = np.array([2**31, -(2**31) - 1, 5], I64)
    assert_same(run(gf.cast(big, gf.int32)), big.astype(I32))  # wraps like NumPy
    assert_same(run(gf.cast([1, 2], gf.float64)), np.array([1.0, 2.0]))
    assert_same(run(gf.cast(np.array([1e10], F64), gf.float32)), np.array([1e10], F32))


def test_cast_names_no_op_and_shapes():
    x = gf.placeholder(gf.float32, [None, 2], name="x")
    assert gf.cast(x, gf.float32) is x
    c = gf.cast(x, gf.int32)
    assert c.op.name == "Cast" and c.shape.as_list() == [None, 2]
    assert c.op.get_attr("DstT") == gf.int32 and c.op.get_attr("SrcT") == gf.float32
    assert gf.cast(x, "float64", name="c64").op.name == "c64"
    assert gf.to_float(gf.constant([1])).op.name == "ToFloat"
    assert gf.to_int32(x).dtype == gf.int32 and gf.to_int64(x).dtype == gf.int64
    v = gf.Variable([1.5, -2.5])
    assert_same(run(gf.cast(v, gf.int32)), np.array([1, -2], I32))


# --- binary elementwise ------------------------------------------------------------------
def _trunc_div(x, y):
    return np.trunc(x.astype(F64) / y).astype(x.dtype)


def _true_div(x, y):
    if x.dtype.kind in "iu":
        target = F64 if x.dtype.itemsize >= 4 else F32
        return x.astype(target) / y.astype(target)
    return x / y


NUMERIC = [F32, F64, I32, I64]
INTS = [I8, I32, I64]
# name: (function, NumPy reference, dtypes, nonzero divisor for ints)
BINARY = {
    "add": (gf.add, np.add, NUMERIC + [I8, U8, np.float16], False),
    "subtract": (gf.subtract, np.subtract, NUMERIC + [I8], False),
    "multiply": (gf.multiply, np.multiply, NUMERIC + [U8], False),
    "maximum": (gf.maximum, np.maximum, NUMERIC, False),
    "minimum": (gf.minimum, np.minimum, NUMERIC, False),
    "squared_difference": (gf.squared_difference, lambda x, y: np.square(x - y), NUMERIC, False),
    "truediv": (gf.truediv, _true_div, NUMERIC + [I8, U8], True),
    "divide": (gf.divide, _true_div, NUMERIC, True),
    "realdiv": (gf.realdiv, np.true_divide, FLOATS, False),
    "div": (gf.div, lambda x, y: np.floor_divide(x, y) if x.dtype.kind in "iu" else x / y,
            NUMERIC, True),
    "floordiv": (gf.floordiv, np.floor_divide, NUMERIC, True),
    "floor_div": (gf.floor_div, np.floor_divide, INTS, True),
    "floormod": (gf.floormod, np.mod, NUMERIC, True),
    "mod": (gf.mod, np.mod, INTS, True),
    "truncatediv": (gf.truncatediv, _trunc_div, INTS, True),
    "pow": (gf.pow, np.power, FLOATS, False),
    "equal": (gf.equal, np.equal, NUMERIC + [np.bool_], False),
    "not_equal": (gf.not_equal, np.not_equal, NUMERIC + [np.bool_], False),
    "less": (gf.less, np.less, NUMERIC, False),
    "less_equal": (gf.less_equal, np.less_equal, NUMERIC, False),
    "greater": (gf.greater, np.greater, NUMERIC, False),
    "greater_equal": (gf.greater_equal, np.greater_equal, NUMERIC, False),
    "logical_and": (gf.logical_and, np.logical_and, [np.bool_], False),
    "logical_or": (gf.logical_or, np.logical_or, [np.bool_], False),
    "logical_xor": (gf.logical_xor, np.logical_xor, [np.bool_], False),
}


@pytest.mark.parametrize("name", list(BINARY))
@given(data=st.data())
def test_binary_ops_broadcast_like_numpy(name, data):
    fn, ref, dtypes, nonzero = BINARY[name]
    dtype = np.dtype(data.draw(st.sampled_from(dtypes), label="dtype"))
    sx, sy = data.draw(hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=3, min_side=0, max_side=3), label="shapes").input_shapes
    if dtype.kind == "f":
        x = data.draw(float_arrays(dtype, sx), label="x")
        y = data.draw(float_arrays(dtype, sy), label="y")
    elif dtype.kind == "b":
        x, y = data.draw(bool_arrays(sx), label="x"), data.draw(bool_arrays(sy), label="y")
    else:
        lo = 0 if dtype.kind == "u" else -50
        x = data.draw(int_arrays(dtype, sx, lo, 50), label="x")
        y = data.draw(int_arrays(dtype, sy, max(lo, -50), 50, nonzero=nonzero), label="y")
    # Feed half the time, so both constants and fed values are exercised.
    if data.draw(st.booleans(), label="feed"):
        px = gf.placeholder(gf.as_dtype(dtype), [None] * x.ndim)
        py = gf.placeholder(gf.as_dtype(dtype), list(y.shape))
        z = fn(px, py)
        out = run(z, {px: x, py: y})
    else:
        z = fn(gf.constant(x), gf.constant(y))
        assert z.shape.as_list() == list(np.broadcast_shapes(x.shape, y.shape))
        out = run(z)
    with np.errstate(all="ignore"):
        expected = np.asarray(ref(x, y))
    assert z.dtype == gf.as_dtype(expected.dtype)
    assert_same(out, expected, rtol=1e-6)


@given(data=st.data())
def test_integer_pow_matches_numpy(data):
    dtype = data.draw(st.sampled_from([I32, I64]))
    sx, sy = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))\
        .input_shapes
    x = data.draw(int_arrays(dtype, sx, -5, 5))
    y = data.draw(int_arrays(dtype, sy, 0, 6))
    assert_same(run(gf.pow(x, y)), np.power(x, y))
    assert_same(run(gf.constant(x) ** y), np.power(x, y))


def test_integer_pow_with_negative_exponent_fails_at_run_time():
    z = gf.pow(gf.constant([2, 3]), gf.constant([1, -1]))
    with pytest.raises(gf.errors.InvalidArgumentError, match="negative"):
        run(z)
    assert_same(run(gf.pow(np.array([2.0, 0.0], F32), np.array([-1.0, -1.0], F32))),
                np.array([0.5, np.inf], F32))


@pytest.mark.parametrize("fn", [gf.floordiv, gf.floormod, gf.mod, gf.truncatediv, gf.div,
                                lambda a, b: a // b, lambda a, b: a % b])
@pytest.mark.parametrize("dtype", [gf.int32, gf.int64])
def test_integer_division_by_zero_fails_at_run_time(fn, dtype):
    z = fn(gf.constant([4, 5], dtype=dtype), gf.constant([2, 0], dtype=dtype))  # builds fine
    with pytest.raises(gf.errors.InvalidArgumentError, match="division by zero"):
        run(z)


def test_float_division_by_zero_gives_inf_and_nan():
    x = np.array([1.0, -1.0, 0.0], F32)
    y = np.zeros(3, F32)
    assert_same(run(gf.truediv(x, y)), np.array([np.inf, -np.inf, np.nan], F32))
    # Integer true division becomes float64 and divides by zero like floats.
    assert_same(run(gf.truediv(gf.constant([1, 0]), gf.constant([0, 0]))),
                np.array([np.inf, np.nan]))


def test_division_family_signs():
    x = np.array([-7, 7, -7, 7], I32)
    y = np.array([2, 2, -2, -2], I32)
    assert_same(run(gf.floordiv(x, y)), np.array([-4, 3, 3, -4], I32))
    assert_same(run(gf.truncatediv(x, y)), np.array([-3, 3, 3, -3], I32))
    # tf.div has Python 2 semantics: flooring for integers, true division for floats.
    assert_same(run(gf.div(x, y)), np.array([-4, 3, 3, -4], I32))
    assert gf.div(x, y).op.type == "FloorDiv" and gf.div(1.0, 2.0).op.type == "RealDiv"
    assert_same(run(gf.div(x.astype(F32), y.astype(F32))), np.array([-3.5, 3.5, 3.5, -3.5], F32))
    # floormod: the result takes the divisor's sign.
    m = np.array([3, 3, -3, -3], I32)
    assert_same(run(gf.floormod(x, m)), np.array([2, 1, -1, -2], I32))
    assert_same(run(gf.mod(x.astype(F64), m.astype(F64))), np.array([2.0, 1.0, -1.0, -2.0]))
    assert_same(run(gf.constant(x) % m), np.array([2, 1, -1, -2], I32))


def test_truediv_result_dtypes_follow_tf1():
    for src, dst in [(gf.int8, gf.float32), (gf.uint8, gf.float32), (gf.int16, gf.float32),
                     (gf.int32, gf.float64), (gf.int64, gf.float64),
                     (gf.float32, gf.float32), (gf.float64, gf.float64)]:
        a = gf.constant([3], dtype=src)
        assert gf.truediv(a, a).dtype == dst
        assert gf.divide(a, a).dtype == dst
        assert (a / a).dtype == dst
    assert_same(run(gf.constant([7, -7]) / 2), np.array([3.5, -3.5]))
    with pytest.raises(TypeError):
        gf.truediv(gf.constant([True]), gf.constant([False]))


def test_integer_overflow_wraps_like_numpy():
    imax = np.iinfo(I32).max
    assert run(gf.constant(imax) + 1) == np.int32(np.iinfo(I32).min)
    assert run(gf.constant(np.array([imax], I32)) * 2)[0] == np.int32(-2)
    assert run(gf.add(gf.constant(np.int8(127)), gf.constant(np.int8(1)))) == np.int8(-128)
    assert run(gf.subtract(gf.constant(np.uint8(0)), gf.constant(np.uint8(1)))) == np.uint8(255)
    assert run(gf.negative(gf.constant(np.iinfo(I64).min))) == np.iinfo(I64).min


def test_binary_static_shapes_with_unknown_dims():
    a = gf.placeholder(gf.float32, [None, 3])
    assert gf.add(a, gf.zeros([3])).shape.as_list() == [None, 3]
    assert gf.add(a, gf.zeros([4, 1, 1])).shape.as_list() == [4, None, 3]
    b = gf.placeholder(gf.float32, [None])
    assert gf.add(b, gf.zeros([1])).shape.as_list() == [None]
    assert gf.add(b, gf.zeros([5])).shape.as_list() == [5]
    assert gf.less(b, gf.placeholder(gf.float32)).shape.ndims is None
    out = run(gf.maximum(a, [0.0, 1.0, 2.0]), {a: np.ones((2, 3), F32)})
    assert_same(out, np.array([[1, 1, 2], [1, 1, 2]], F32))


def test_incompatible_shapes_fail_at_build_time():
    with pytest.raises(ValueError) as info:
        gf.add(gf.zeros([2, 3]), gf.zeros([4]))
    assert isinstance(info.value, gf.errors.OpError)
    assert "Add" in str(info.value) and "(2, 3)" in str(info.value)
    with pytest.raises(ValueError):
        gf.less(gf.zeros([2]), gf.zeros([3]))
    with pytest.raises(ValueError):
        gf.zeros([2]) * gf.zeros([3])


# --- TF1's "no implicit promotion" ---------------------------------------------------------
def test_mixed_tensor_dtypes_raise_type_error_at_build_time():
    f32 = gf.placeholder(gf.float32, [2], name="f")
    i32 = gf.placeholder(gf.int32, [2], name="i")
    f64 = gf.placeholder(gf.float64, [2], name="d")
    for build in (lambda: f32 + i32, lambda: i32 + f32, lambda: gf.add(f32, f64),
                  lambda: gf.multiply(i32, f64), lambda: gf.maximum(f32, i32),
                  lambda: gf.less(f32, i32), lambda: gf.truediv(f32, f64),
                  lambda: gf.pow(f32, i32), lambda: f32 @ f64,
                  lambda: gf.equal(i32, gf.constant([True, False]))):
        with pytest.raises(TypeError) as info:
            build()
        assert isinstance(info.value, gf.errors.OpError)


def test_python_scalars_take_the_tensor_dtype():
    xf = gf.constant([1.0, 2.0])
    xd = gf.constant([1.0, 2.0], dtype=gf.float64)
    xi = gf.constant([1, 2])
    assert (xf + 1).dtype == gf.float32 and (1 + xf).dtype == gf.float32
    assert (xd + 1).dtype == gf.float64 and (2 * xd).dtype == gf.float64
    assert (xi * 2).dtype == gf.int32
    assert_same(run(2 ** xf), np.array([2.0, 4.0], F32))
    assert_same(run(xf ** 2), np.array([1.0, 4.0], F32))
    assert_same(run(1 - xf), np.array([0.0, -1.0], F32))
    assert_same(run(xi + 1), np.array([2, 3], I32))
    assert_same(run(gf.add(1, xd)), np.array([2.0, 3.0]))
    assert_same(run(gf.add(xd, np.float32(0.5))), np.array([1.5, 2.5]))
    for build in (lambda: xi + 1.5, lambda: 1.5 * xi, lambda: gf.add(xi, 0.5),
                  lambda: xi + 2**40, lambda: gf.logical_and(gf.constant([True]), 1)):
        with pytest.raises(TypeError) as info:
            build()
        assert isinstance(info.value, gf.errors.OpError)


# --- Python operators and TF1 names -----------------------------------------------------
OPERATORS = [
    ("+", lambda a, b: a + b, "add", "Add", np.add),
    ("-", lambda a, b: a - b, "sub", "Sub", np.subtract),
    ("*", lambda a, b: a * b, "mul", "Mul", np.multiply),
    ("/", lambda a, b: a / b, "truediv", "RealDiv", np.true_divide),
    ("//", lambda a, b: a // b, "floordiv", "FloorDiv", np.floor_divide),
    ("%", lambda a, b: a % b, "mod", "FloorMod", np.mod),
    ("**", lambda a, b: a**b, "pow", "Pow", np.power),
    ("@", lambda a, b: a @ b, "matmul", "MatMul", np.matmul),
    ("<", lambda a, b: a < b, "Less", "Less", np.less),
    ("<=", lambda a, b: a <= b, "LessEqual", "LessEqual", np.less_equal),
    (">", lambda a, b: a > b, "Greater", "Greater", np.greater),
    (">=", lambda a, b: a >= b, "GreaterEqual", "GreaterEqual", np.greater_equal),
]


@pytest.mark.parametrize("sym, op, name, op_type, ref", OPERATORS, ids=[o[0] for o in OPERATORS])
def test_operators_on_tensors_have_tf1_names(sym, op, name, op_type, ref):
    xa = np.array([[1.5, -2.0], [3.0, 4.0]], F32)
    xb = np.array([[2.0, 0.5], [-1.0, 3.0]], F32)
    a, b = gf.constant(xa), gf.constant(xb)
    z = op(a, b)
    assert z.op.name == name and z.op.type == op_type
    assert op(a, b).op.name == f"{name}_1"
    with np.errstate(invalid="ignore"):
        expected = ref(xa, xb)
    assert_same(run(z), expected)


@pytest.mark.parametrize("sym, op, name, op_type, ref", OPERATORS, ids=[o[0] for o in OPERATORS])
def test_operators_on_variables(sym, op, name, op_type, ref):
    xa = np.array([[1.5, -2.0], [3.0, 4.0]], F32)
    xb = np.array([[2.0, 0.5], [-1.0, 3.0]], F32)
    va, vb = gf.Variable(xa, name="va"), gf.Variable(xb, name="vb")
    with np.errstate(invalid="ignore"):
        expected = ref(xa, xb)
    for z in (op(va, vb), op(va, gf.constant(xb)), op(gf.constant(xa), vb)):
        assert z.op.type == op_type
        assert_same(run(z), expected)


def test_reflected_operators_and_their_constant_names():
    x = gf.placeholder(gf.float32, [2], name="x")
    y = x + 1
    assert y.op.name == "add" and y.op.inputs[1].op.name == "add/y"
    r = 1 + x
    assert r.op.name == "add_1" and r.op.inputs[0].op.name == "add_1/x"
    feed = {x: np.array([2.0, 4.0], F32)}
    for expr, expected in [(3 - x, [1.0, -1.0]), (8 / x, [4.0, 2.0]), (9 // x, [4.0, 2.0]),
                           (9 % x, [1.0, 1.0]), (2**x, [4.0, 16.0]), (3 * x, [6.0, 12.0]),
                           (np.float32(2) * x, [4.0, 8.0])]:
        assert expr.dtype == gf.float32
        assert_same(run(expr, feed), np.array(expected, F32))
    assert_same(run(1 < x, feed), np.array([True, True]))
    assert_same(run(3 >= x, feed), np.array([True, False]))
    assert (1 < x).op.type == "Greater"
    m = np.array([[1.0, 2.0]], F32) @ gf.constant([[3.0], [4.0]])
    assert m.op.type == "MatMul"
    assert_same(run(m), np.array([[11.0]], F32))


def test_unary_operators_names_and_values():
    a = gf.constant([-1.5, 2.0])
    n = -a
    assert n.op.name == "Neg" and n.op.type == "Neg"
    assert (-a).op.name == "Neg_1"
    b = abs(a)
    assert b.op.name == "Abs" and b.op.type == "Abs"
    assert_same(run(n), np.array([1.5, -2.0], F32))
    assert_same(run(b), np.array([1.5, 2.0], F32))
    v = gf.Variable([3, -4])
    assert_same(run(-v), np.array([-3, 4], I32))
    assert_same(run(abs(v)), np.array([3, 4], I32))


def test_logical_operators():
    xp = np.array([True, True, False, False])
    xq = np.array([True, False, True, False])
    p, q = gf.constant(xp), gf.constant(xq)
    conj, disj, inv = p & q, p | q, ~p
    assert (conj.op.name, conj.op.type) == ("and", "LogicalAnd")
    assert (disj.op.name, disj.op.type) == ("or", "LogicalOr")
    assert (inv.op.name, inv.op.type) == ("LogicalNot", "LogicalNot")
    x = p ^ q
    assert x.op.type == "LogicalAnd"
    assert_same(run(conj), xp & xq)
    assert_same(run(disj), xp | xq)
    assert_same(run(inv), ~xp)
    assert_same(run(x), xp ^ xq)
    assert_same(run(True & p), xp)
    assert_same(run(False | q), xq)
    assert_same(run(True ^ p), ~xp)
    assert_same(run(p ^ False), xp)
    v = gf.Variable(xp)
    assert_same(run((v & q) | ~v), (xp & xq) | ~xp)
    assert_same(run(v ^ q), xp ^ xq)
    assert_same(run(False ^ v), xp)
    with pytest.raises(TypeError):
        gf.constant([1.0]) & gf.constant([2.0])


def test_logical_xor_is_built_as_tf1_builds_it():
    p, q = gf.constant([True, False]), gf.constant([True, True])
    x = gf.logical_xor(p, q)
    assert x.op.name == "LogicalXor" and x.op.type == "LogicalAnd"
    names = {o.name for o in gf.get_default_graph().get_operations()}
    assert {"LogicalOr", "LogicalAnd", "LogicalNot"} <= names
    assert gf.logical_xor(p, q, name="xx").op.name == "xx"
    assert_same(run(x), np.array([False, True]))


def test_public_binary_function_names():
    a, b = gf.constant([1.0, 2.0]), gf.constant([3.0, 4.0])
    expected = [(gf.add, "Add"), (gf.subtract, "Sub"), (gf.multiply, "Mul"),
                (gf.truediv, "truediv"), (gf.divide, "truediv_1"), (gf.div, "div"),
                (gf.realdiv, "RealDiv"), (gf.floordiv, "floordiv"), (gf.floor_div, "FloorDiv_1"),
                (gf.floormod, "FloorMod"), (gf.mod, "FloorMod_1"), (gf.pow, "Pow"),
                (gf.maximum, "Maximum"), (gf.minimum, "Minimum"),
                (gf.squared_difference, "SquaredDifference"), (gf.equal, "Equal"),
                (gf.not_equal, "NotEqual"), (gf.less, "Less"), (gf.less_equal, "LessEqual"),
                (gf.greater, "Greater"), (gf.greater_equal, "GreaterEqual"),
                (gf.add, "Add_1"), (gf.sub, "Sub_1"), (gf.mul, "Mul_1")]
    for fn, name in expected:
        assert fn(a, b).op.name == name, fn
    assert a.op.graph.get_operation_by_name("Add").type == "Add"
    # "add" (from +) and "Add" share one name space, ignoring case, as in TF1.
    assert (a + b).op.name == "add_2"
    assert gf.add(a, b, name="total").op.name == "total"
    assert gf.divide(a, b, name="q").op.name == "q"
    assert gf.truncatediv(gf.constant([1]), gf.constant([1])).op.name == "TruncateDiv"


# --- where / where_v2 --------------------------------------------------------------------
@given(data=st.data())
def test_where_v1_with_condition_of_x_shape(data):
    shape = data.draw(shapes())
    c = data.draw(bool_arrays(shape))
    x = data.draw(float_arrays(F32, shape))
    y = data.draw(float_arrays(F32, shape))
    z = gf.where(c, x, y)
    assert z.op.type == "Select" and z.op.name.startswith("Select")
    assert z.shape.as_list() == list(shape)
    assert_same(run(z), np.where(c, x, y))


@given(data=st.data())
def test_where_v1_with_vector_condition_over_the_first_dim(data):
    shape = data.draw(shapes(min_dims=2, max_dims=4))
    c = data.draw(bool_arrays(shape[:1]))
    x = data.draw(int_arrays(I64, shape))
    y = data.draw(int_arrays(I64, shape))
    expected = np.where(c.reshape((-1,) + (1,) * (len(shape) - 1)), x, y)
    assert_same(run(gf.where(c, x, y)), expected)


def test_where_v1_scalar_condition_and_shape_errors():
    x, y = np.array([[1, 2], [3, 4]], I32), np.array([[5, 6], [7, 8]], I32)
    assert_same(run(gf.where(True, x, y)), x)
    assert_same(run(gf.where(False, x, y)), y)
    assert_same(run(gf.where([True, False], x, y)), np.array([[1, 2], [7, 8]], I32))
    for cond in ([True, False, True], [[True], [False]]):
        with pytest.raises(ValueError, match="Select"):
            gf.where(cond, x, y)
    with pytest.raises(ValueError):
        gf.where([True, False], x, np.zeros((2, 3), I32))
    with pytest.raises(TypeError):
        gf.where([True, False], x, y.astype(F32))
    with pytest.raises(TypeError):
        gf.where([1, 0], x, y)
    with pytest.raises(ValueError):
        gf.where([True], x=x)
    # A mismatch only known at run time is an InvalidArgumentError then.
    pc = gf.placeholder(gf.bool, [None])
    z = gf.where(pc, x, y)
    with pytest.raises(gf.errors.InvalidArgumentError):
        run(z, {pc: [True, False, True]})


@given(data=st.data())
def test_where_one_argument_gives_int64_coordinates(data):
    shape = data.draw(shapes(max_dims=4))
    c = data.draw(bool_arrays(shape))
    w = gf.where(c)
    assert w.dtype == gf.int64 and w.shape.as_list() == [None, len(shape)]
    assert_same(run(w), np.argwhere(c).astype(I64))
    assert_same(run(gf.where_v2(c)), np.argwhere(c).astype(I64))


def test_where_one_argument_on_scalars_numbers_and_unknown_shapes():
    assert_same(run(gf.where(True)), np.zeros((1, 0), I64))
    assert_same(run(gf.where(False)), np.zeros((0, 0), I64))
    assert_same(run(gf.where([0.0, 2.0, -1.0])), np.array([[1], [2]], I64))
    p = gf.placeholder(gf.bool)
    w = gf.where(p)
    assert w.shape.as_list() == [None, None] or w.shape.ndims == 2
    assert_same(run(w, {p: [[True, False], [False, True]]}), np.array([[0, 0], [1, 1]], I64))


@given(data=st.data())
def test_where_v2_broadcasts_all_three(data):
    sc, sx, sy = data.draw(hnp.mutually_broadcastable_shapes(
        num_shapes=3, min_dims=0, max_dims=3, min_side=0, max_side=3)).input_shapes
    c = data.draw(bool_arrays(sc))
    x = data.draw(float_arrays(F64, sx))
    y = data.draw(float_arrays(F64, sy))
    z = gf.where_v2(c, x, y)
    assert z.op.type == "SelectV2"
    assert z.shape.as_list() == list(np.broadcast_shapes(sc, sx, sy))
    assert_same(run(z), np.where(c, x, y))


def test_where_v2_errors():
    with pytest.raises(ValueError):
        gf.where_v2([True, False], [1, 2, 3], 0)
    with pytest.raises(TypeError):
        gf.where_v2([True], gf.constant([1.0]), gf.constant([1]))
    with pytest.raises(ValueError):
        gf.where_v2([True], y=[1])


# --- clip_by_value, add_n, scalar_mul -------------------------------------------------
@given(data=st.data())
def test_clip_by_value_matches_numpy_and_keeps_nan(data):
    dtype = data.draw(st.sampled_from([F32, F64, I32]))
    x = data.draw(arrays_of(dtype, shapes()))
    lo, hi = sorted(data.draw(st.lists(st.integers(-60, 60), min_size=2, max_size=2)))
    z = gf.clip_by_value(gf.constant(x), lo, hi)
    assert z.dtype == gf.as_dtype(dtype) and z.shape.as_list() == list(x.shape)
    expected = np.maximum(np.minimum(x, dtype(hi)), dtype(lo))
    assert_same(run(z), expected)


def test_clip_by_value_details():
    x = np.array([np.nan, -5.0, 0.5, 5.0, np.inf, -np.inf], F32)
    z = gf.clip_by_value(x, -1.0, 1.0)
    assert z.op.name == "clip_by_value" and z.op.type == "Maximum"
    assert z.op.inputs[0].op.name == "clip_by_value/Minimum"
    assert_same(run(z), np.array([np.nan, -1.0, 0.5, 1.0, 1.0, -1.0], F32))
    # Per-element bounds that broadcast to t's shape are fine.
    out = run(gf.clip_by_value(np.array([[0.0, 5.0]], F32), [1.0, 2.0], [3.0, 4.0]))
    assert_same(out, np.array([[1.0, 4.0]], F32))
    with pytest.raises(ValueError):
        gf.clip_by_value(np.array([1.0], F32), [0.0, 0.0], 1.0)  # would change t's shape
    with pytest.raises(TypeError):
        gf.clip_by_value(gf.constant([1.0]), gf.constant(0), 1.0)


@given(data=st.data())
def test_add_n_sums_like_numpy(data):
    dtype = data.draw(st.sampled_from([F32, F64, I32, I64]))
    shape = data.draw(shapes())
    n = data.draw(st.integers(1, 5))
    xs = [data.draw(arrays_of(dtype, shape, specials=False) if np.dtype(dtype).kind == "f"
                    else arrays_of(dtype, shape)) for _ in range(n)]
    z = gf.add_n([gf.constant(x) for x in xs])
    assert z.op.type == ("AddN" if n > 1 else "Identity") and z.op.name.startswith("AddN")
    assert z.shape.as_list() == list(shape)
    expected = xs[0].copy()
    for x in xs[1:]:
        expected = expected + x
    assert_same(run(z), expected, rtol=1e-6)


def test_add_n_errors_and_mixed_inputs():
    a = gf.constant([1.0, 2.0])
    assert_same(run(gf.add_n([a, [3.0, 4.0], np.array([5.0, 6.0], F32)])),
                np.array([9.0, 12.0], F32))
    with pytest.raises(ValueError):
        gf.add_n([])
    with pytest.raises(ValueError):
        gf.add_n([a, gf.constant([1.0, 2.0, 3.0])])
    with pytest.raises(TypeError):
        gf.add_n([a, gf.constant([1, 2])])
    p = gf.placeholder(gf.float32, [None])
    s = gf.add_n([p, p, p])
    assert s.shape.as_list() == [None]
    assert_same(run(s, {p: [1.0, 2.0]}), np.array([3.0, 6.0], F32))


def test_scalar_mul():
    x = gf.constant([1.0, -2.0])
    assert_same(run(gf.scalar_mul(3, x)), np.array([3.0, -6.0], F32))
    assert_same(run(gf.scalar_mul(gf.constant(0.5), x)), np.array([0.5, -1.0], F32))
    assert gf.scalar_mul(2.0, x).op.type == "Mul"
    assert_same(run(gf.scalar_mul(2, gf.constant([1, 2]))), np.array([2, 4], I32))
    with pytest.raises(ValueError, match="scalar"):
        gf.scalar_mul([1.0, 2.0], x)
    with pytest.raises(TypeError):
        gf.scalar_mul(1.5, gf.constant([1, 2]))


# --- reductions -----------------------------------------------------------------------
def _axis_spec(draw, ndim):
    """None, an int (maybe negative), a list or tuple (maybe empty) of distinct axes."""
    if ndim == 0:
        return draw(st.sampled_from([None, [], ()]))
    kind = draw(st.sampled_from(["none", "int", "list", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    axes = draw(st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim))
    axes = [a - ndim if draw(st.booleans()) else a for a in axes]
    return axes if kind == "list" else tuple(axes)


def _np_axes(axis, ndim):
    if axis is None:
        return None
    if isinstance(axis, (list, tuple)):
        return tuple(a % ndim for a in axis) if ndim else ()
    return (axis % ndim,) if ndim else ()


def _ref_reduce(name, x, axes, keep):
    if name == "sum":
        return np.sum(x, axis=axes, keepdims=keep, dtype=x.dtype)
    if name == "prod":
        return np.prod(x, axis=axes, keepdims=keep, dtype=x.dtype)
    if name in ("max", "min"):
        if x.dtype.kind == "f":
            init = -np.inf if name == "max" else np.inf
        else:
            init = np.iinfo(x.dtype).min if name == "max" else np.iinfo(x.dtype).max
        fn = np.max if name == "max" else np.min
        return fn(x, axis=axes, keepdims=keep, initial=init)
    if name == "any":
        return np.any(x, axis=axes, keepdims=keep)
    if name == "all":
        return np.all(x, axis=axes, keepdims=keep)
    if name == "mean":
        s = np.sum(x.astype(F64), axis=axes, keepdims=keep)
        n = x.size // max(np.asarray(s).size, 1) if x.size else 0
        with np.errstate(all="ignore"):
            q = s / n if n else s * np.nan
        if x.dtype.kind in "iu":  # integer mean truncates toward zero, as TF
            return np.trunc(q).astype(x.dtype)
        return np.asarray(q).astype(x.dtype)
    raise AssertionError(name)


REDUCTIONS = {"sum": gf.reduce_sum, "prod": gf.reduce_prod, "max": gf.reduce_max,
              "min": gf.reduce_min, "mean": gf.reduce_mean, "any": gf.reduce_any,
              "all": gf.reduce_all}


@pytest.mark.parametrize("name", list(REDUCTIONS))
@given(data=st.data())
def test_reductions_match_numpy(name, data):
    fn = REDUCTIONS[name]
    if name in ("any", "all"):
        dtype = np.dtype(np.bool_)
    else:
        dtype = np.dtype(data.draw(st.sampled_from([F32, F64, I32, I64])))
    shape = data.draw(shapes(max_dims=4))
    if dtype.kind == "b":
        x = data.draw(bool_arrays(shape))
    elif name == "prod":  # powers of two: float products stay exact
        x = data.draw(hnp.arrays(dtype, shape, elements=st.sampled_from(
            [-2.0, -1.0, -0.5, 0.5, 1.0, 2.0] if dtype.kind == "f" else [-2, -1, 0, 1, 2, 3])))
    elif dtype.kind == "f":  # integer-valued floats: sums are exact in any order
        x = data.draw(int_arrays(I32, shape, -100, 100)).astype(dtype)
        if name in ("max", "min") and x.size and data.draw(st.booleans()):
            x.flat[0] = data.draw(st.sampled_from([np.inf, -np.inf]))
    else:
        x = data.draw(int_arrays(dtype, shape, -100, 100))
    if name == "mean" and dtype.kind in "iu" and x.size == 0:
        x = np.ones((1,) * len(shape), dtype)  # integer mean of nothing is undefined
    axis = _axis_spec(data.draw, x.ndim)
    keep = data.draw(st.sampled_from([None, False, True]))
    alias = data.draw(st.booleans())
    if alias:
        z = fn(gf.constant(x), reduction_indices=axis, keep_dims=keep)
    else:
        z = fn(gf.constant(x), axis=axis, keepdims=keep)
    expected = np.asarray(_ref_reduce(name, x, _np_axes(axis, x.ndim), bool(keep)))
    assert z.dtype == gf.as_dtype(dtype)
    assert z.shape.as_list() == list(expected.shape)
    assert_same(run(z), expected, rtol=1e-6)


def test_reductions_of_empty_inputs_follow_tf():
    e = np.zeros((0, 3), F32)
    assert_same(run(gf.reduce_sum(e)), np.float32(0))
    assert_same(run(gf.reduce_prod(e)), np.float32(1))
    assert_same(run(gf.reduce_max(e)), np.float32(-np.inf))
    assert_same(run(gf.reduce_min(e)), np.float32(np.inf))
    assert np.isnan(run(gf.reduce_mean(e)))
    assert_same(run(gf.reduce_sum(e, axis=0)), np.zeros(3, F32))
    assert_same(run(gf.reduce_prod(e, axis=0)), np.ones(3, F32))
    assert_same(run(gf.reduce_max(e, axis=0)), np.full(3, -np.inf, F32))
    assert_same(run(gf.reduce_max(e, axis=1)), np.zeros(0, F32))
    assert_same(run(gf.reduce_max(np.zeros((0,), I32))), np.int32(np.iinfo(I32).min))
    assert_same(run(gf.reduce_min(np.zeros((0,), I64))), np.int64(np.iinfo(I64).max))
    assert_same(run(gf.reduce_any(np.zeros((0,), bool))), np.False_)
    assert_same(run(gf.reduce_all(np.zeros((0,), bool))), np.True_)


def test_integer_mean_truncates_toward_zero():
    assert_same(run(gf.reduce_mean([-3, -4])), np.int32(-3))
    assert_same(run(gf.reduce_mean([3, 4])), np.int32(3))
    assert_same(run(gf.reduce_mean([[1, 2], [-5, -6]], axis=1)), np.array([1, -5], I32))
    assert_same(run(gf.reduce_mean(np.array([7, 8, 8], I64))), np.int64(7))


def test_reduction_axis_forms_names_and_aliases():
    x = np.arange(24, dtype=F32).reshape(2, 3, 4)
    t = gf.constant(x)
    z = gf.reduce_sum(t, axis=[0, -1])
    assert z.op.name == "Sum" and z.op.type == "Sum"
    assert_same(run(z), x.sum(axis=(0, 2)))
    assert_same(run(gf.reduce_sum(t, axis=np.array([2, 0]))), x.sum(axis=(0, 2)))
    assert_same(run(gf.reduce_sum(t, axis=gf.constant([1]))), x.sum(axis=1))
    assert_same(run(gf.reduce_sum(t, axis=gf.constant(-1), keepdims=True)),
                x.sum(axis=-1, keepdims=True))
    assert_same(run(gf.reduce_max(t, reduction_indices=(1,), keep_dims=True)),
                x.max(axis=1, keepdims=True))
    assert_same(run(gf.reduce_sum(t, axis=[])), x)
    assert_same(run(gf.reduce_sum([[1, 2], [3, 4]], 1)), np.array([3, 7], I32))
    assert gf.reduce_mean(t, name="m").op.name == "m"
    assert gf.reduce_mean(t).op.type == "Mean" and gf.reduce_prod(t).op.type == "Prod"
    assert gf.reduce_max(t).op.type == "Max" and gf.reduce_min(t).op.type == "Min"
    assert gf.reduce_any([True]).op.type == "Any" and gf.reduce_all([True]).op.type == "All"


def test_reduction_static_shapes_with_unknown_dims():
    p = gf.placeholder(gf.float32, [None, 3, 4])
    assert gf.reduce_sum(p, axis=[0, -1], keepdims=True).shape.as_list() == [1, 3, 1]
    assert gf.reduce_sum(p, axis=1).shape.as_list() == [None, 4]
    assert gf.reduce_max(p).shape.as_list() == []
    assert gf.reduce_min(p, keepdims=True).shape.as_list() == [1, 1, 1]
    assert gf.reduce_mean(p, axis=0).shape.as_list() == [3, 4]
    u = gf.placeholder(gf.float32)  # unknown rank
    assert gf.reduce_sum(u, axis=1).shape.ndims is None
    assert run(gf.reduce_sum(u), {u: np.ones((2, 3), F32)}) == np.float32(6)
    out = run(gf.reduce_sum(p, axis=0), {p: np.ones((5, 3, 4), F32)})
    assert_same(out, np.full((3, 4), 5, F32))


def test_reduction_errors_at_build_time():
    t = gf.zeros([2, 3])
    for axis in (2, -3, [0, 5]):
        with pytest.raises(ValueError) as info:
            gf.reduce_sum(t, axis=axis)
        assert isinstance(info.value, gf.errors.OpError)
        assert str(axis if isinstance(axis, int) else 5) in str(info.value)
    with pytest.raises(TypeError):
        gf.reduce_sum(gf.constant([True, False]))
    with pytest.raises(TypeError):
        gf.reduce_any(gf.constant([1.0]))
    with pytest.raises(ValueError):
        gf.reduce_sum(t, axis=gf.placeholder(gf.int32, []))  # axis must be known


@given(data=st.data())
def test_reduce_logsumexp_matches_a_stable_formula(data):
    dtype = data.draw(st.sampled_from(FLOATS))
    shape = data.draw(shapes(min_dims=1, max_dims=3))
    x = data.draw(float_arrays(dtype, shape, -1000.0, 1000.0, specials=False))
    axis = _axis_spec(data.draw, x.ndim)
    keep = data.draw(st.booleans())
    axes = _np_axes(axis, x.ndim)
    x64 = x.astype(F64)
    m = np.max(x64, axis=axes, keepdims=True, initial=-np.inf)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        expected = np.log(np.sum(np.exp(x64 - m), axis=axes, keepdims=True)) + m
    if not keep:
        expected = expected.reshape(np.sum(x64, axis=axes).shape)
    z = gf.reduce_logsumexp(x, axis=axis, keepdims=keep)
    assert z.dtype == gf.as_dtype(dtype)
    assert z.shape.as_list() == list(expected.shape)
    assert_same(run(z), expected.astype(dtype), **TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", FLOATS)
def test_reduce_logsumexp_special_inputs(dtype):
    z = gf.reduce_logsumexp(gf.placeholder(gf.as_dtype(dtype), [None, 3]), axis=1, keep_dims=True)
    assert z.op.name == "ReduceLogSumExp" and z.shape.as_list() == [None, 1]
    out = run(gf.reduce_logsumexp(np.array([1000.0, 1000.0], dtype)))
    np.testing.assert_allclose(out, 1000 + math.log(2), rtol=1e-6)
    out = run(gf.reduce_logsumexp(np.array([[-1000.0, -1000.0]], dtype), axis=1))
    np.testing.assert_allclose(out, [-1000 + math.log(2)], rtol=1e-6)
    assert run(gf.reduce_logsumexp(np.array([-np.inf, -np.inf], dtype))) == -np.inf
    assert run(gf.reduce_logsumexp(np.array([-np.inf, 0.0], dtype))) == 0.0
    assert run(gf.reduce_logsumexp(np.array([np.inf, 1.0], dtype))) == np.inf
    empty = run(gf.reduce_logsumexp(np.zeros((0, 2), dtype), axis=0))
    assert_same(empty, np.full(2, -np.inf, dtype))


# --- argmax / argmin ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["argmax", "argmin"])
@given(data=st.data())
def test_argmax_argmin_match_numpy_ties_first(name, data):
    dtype = data.draw(st.sampled_from([F32, F64, I32, I64, U8]))
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    x = data.draw(hnp.arrays(dtype, shape, elements=st.integers(0, 3)))  # many ties
    axis = data.draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1)))
    out_type = data.draw(st.sampled_from([None, gf.int32, gf.int64]))
    fn = getattr(gf, name)
    kwargs = {} if out_type is None else {"output_type": out_type}
    z = fn(x, axis=axis, **kwargs)
    npfn = getattr(np, name)
    expected = npfn(x, axis=0 if axis is None else axis)
    want = np.int32 if out_type is gf.int32 else np.int64
    assert z.op.type == ("ArgMax" if name == "argmax" else "ArgMin")
    assert z.shape.as_list() == list(expected.shape)
    assert_same(run(z), expected.astype(want))


def test_argmax_details():
    x = np.array([[1.0, 5.0, 5.0], [7.0, 7.0, 0.0]], F32)
    z = gf.argmax(x)
    assert z.op.name == "ArgMax" and z.dtype == gf.int64
    assert_same(run(z), np.array([1, 1, 0], I64))
    assert_same(run(gf.argmax(x, 1)), np.array([1, 0], I64))
    assert_same(run(gf.argmin(x, dimension=1, output_type=gf.int32)), np.array([0, 2], I32))
    assert_same(run(gf.argmax(x, axis=gf.constant(-1))), np.array([1, 0], I64))
    p = gf.placeholder(gf.float32, [None, 4, 5])
    assert gf.argmax(p, axis=-1).shape.as_list() == [None, 4]
    assert gf.argmin(p, axis=0).shape.as_list() == [4, 5]
    assert gf.argmax(gf.placeholder(gf.float32), axis=1).shape.ndims is None
    with pytest.raises(ValueError):
        gf.argmax(x, axis=2)
    with pytest.raises(ValueError):
        gf.argmax(gf.constant(1.0))
    with pytest.raises(ValueError):
        gf.argmax(np.zeros((0, 2), F32), axis=0)
    with pytest.raises(TypeError):
        gf.argmax(x, output_type=gf.float32)
    with pytest.raises(TypeError):
        gf.argmax(gf.constant([True, False]))


# --- matmul and tensordot ---------------------------------------------------------------------
@given(data=st.data())
def test_matmul_2d_matches_numpy(data):
    dtype = data.draw(st.sampled_from([F32, F64, I32, I64]))
    m, k, n = (data.draw(st.integers(0, 4)) for _ in range(3))
    ta, tb = data.draw(st.booleans()), data.draw(st.booleans())
    adj = data.draw(st.booleans())
    a = data.draw(int_arrays(dtype, (k, m) if ta else (m, k), -9, 9))
    b = data.draw(int_arrays(dtype, (n, k) if tb else (k, n), -9, 9))
    if adj:
        z = gf.matmul(a, b, adjoint_a=ta, adjoint_b=tb)
    else:
        z = gf.matmul(a, b, transpose_a=ta, transpose_b=tb)
    expected = np.matmul(a.T if ta else a, b.T if tb else b)
    assert z.op.type == "MatMul" and z.shape.as_list() == [m, n]
    assert_same(run(z), expected)


@given(data=st.data())
def test_batched_matmul_broadcasts_batch_dims(data):
    dtype = data.draw(st.sampled_from([F32, F64, I32]))
    ba, bb = data.draw(hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=2, min_side=0, max_side=3)).input_shapes
    if len(ba) + len(bb) == 0:
        ba = (2,)
    m, k, n = (data.draw(st.integers(1, 3)) for _ in range(3))
    ta, tb = data.draw(st.booleans()), data.draw(st.booleans())
    a = data.draw(int_arrays(dtype, ba + ((k, m) if ta else (m, k)), -9, 9))
    b = data.draw(int_arrays(dtype, bb + ((n, k) if tb else (k, n)), -9, 9))
    z = gf.matmul(a, b, transpose_a=ta, transpose_b=tb)
    expected = np.matmul(np.swapaxes(a, -1, -2) if ta else a, np.swapaxes(b, -1, -2) if tb else b)
    assert z.op.type == "BatchMatMulV2"
    assert z.shape.as_list() == list(expected.shape)
    assert_same(run(z), expected)


def test_matmul_static_shapes_with_unknown_dims_and_feeds():
    a = gf.placeholder(gf.float32, [None, 3])
    b = gf.placeholder(gf.float32, [3, None])
    z = gf.matmul(a, b)
    assert z.shape.as_list() == [None, None]
    assert gf.matmul(a, gf.zeros([3, 5])).shape.as_list() == [None, 5]
    assert gf.matmul(a, a, transpose_b=True).shape.as_list() == [None, None]
    assert gf.matmul(a, a, transpose_a=True).shape.as_list() == [3, 3]
    bat = gf.placeholder(gf.float32, [None, 2, 3])
    assert gf.matmul(bat, gf.zeros([3, 4])).shape.as_list() == [None, 2, 4]
    assert gf.matmul(gf.placeholder(gf.float32), gf.zeros([3, 4])).shape.ndims is None
    xa = np.arange(6, dtype=F32).reshape(2, 3)
    xb = np.arange(12, dtype=F32).reshape(3, 4)
    assert_same(run(z, {a: xa, b: xb}), xa @ xb)


def test_matmul_errors():
    a, b = gf.zeros([2, 3]), gf.zeros([4, 5])
    with pytest.raises(ValueError) as info:
        gf.matmul(a, b)
    msg = str(info.value)
    assert isinstance(info.value, gf.errors.OpError)
    assert "MatMul" in msg and str(a.shape) in msg and str(b.shape) in msg
    with pytest.raises(ValueError) as info:
        gf.matmul(gf.zeros([7, 2, 3]), b)
    assert "MatMul" in str(info.value)
    with pytest.raises(ValueError):
        gf.matmul(gf.zeros([2, 3, 4]), gf.zeros([3, 4, 5]))  # batch dims 2 and 3
    with pytest.raises(ValueError):
        gf.matmul(gf.zeros([3]), gf.zeros([3, 1]))  # rank 1
    with pytest.raises(ValueError):
        a @ b
    with pytest.raises(TypeError):
        gf.matmul(gf.zeros([2, 2]), gf.zeros([2, 2], dtype=gf.float64))
    with pytest.raises(TypeError):
        gf.matmul(gf.constant([[True]]), gf.constant([[True]]))
    p = gf.placeholder(gf.float32, [None, None])
    z = gf.matmul(p, p)
    with pytest.raises(gf.errors.InvalidArgumentError):
        run(z, {p: np.ones((2, 3), F32)})


def test_matmul_names():
    a, b = gf.constant([[1.0, 2.0]]), gf.constant([[3.0], [4.0]])
    assert (a @ b).op.name == "matmul" and (a @ b).op.name == "matmul_1"
    assert gf.matmul(a, b, name="mm").op.name == "mm"
    # Names are unique ignoring case, as in TF1: "MatMul" collides with "matmul".
    assert gf.matmul(a, b).op.name == "MatMul_2"
    assert_same(run(gf.matmul([[1, 2]], [[3], [4]])), np.array([[11]], I32))


@given(data=st.data())
def test_tensordot_matches_numpy(data):
    ra, rb = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    sa = list(data.draw(hnp.array_shapes(min_dims=ra, max_dims=ra, min_side=0, max_side=3)))
    sb = list(data.draw(hnp.array_shapes(min_dims=rb, max_dims=rb, min_side=0, max_side=3)))
    if data.draw(st.booleans()):
        n = data.draw(st.integers(0, min(ra, rb)))
        for i in range(n):
            sb[i] = sa[ra - n + i]
        axes = n
    else:
        k = data.draw(st.integers(0, min(ra, rb)))
        a_axes = data.draw(st.permutations(range(ra)))[:k]
        b_axes = data.draw(st.permutations(range(rb)))[:k]
        for i, j in zip(a_axes, b_axes):
            sb[j] = sa[i]
        if data.draw(st.booleans()):  # negative axes too
            a_axes = [i - ra for i in a_axes]
        axes = [list(a_axes), list(b_axes)]
    dtype = data.draw(st.sampled_from([F32, F64, I32]))
    a = data.draw(int_arrays(dtype, tuple(sa), -5, 5))
    b = data.draw(int_arrays(dtype, tuple(sb), -5, 5))
    z = gf.tensordot(a, b, axes)
    expected = np.tensordot(a, b, axes)
    assert z.shape.as_list() == list(expected.shape)
    assert_same(run(z), expected.astype(dtype))


def test_tensordot_details():
    a = np.arange(24, dtype=F32).reshape(2, 3, 4)
    b = np.arange(12, dtype=F32).reshape(4, 3)
    z = gf.tensordot(a, b, axes=[[1, 2], [1, 0]])
    assert z.op.name == "Tensordot"
    assert_same(run(z), np.tensordot(a, b, axes=[[1, 2], [1, 0]]))
    assert_same(run(gf.tensordot(a, b, axes=[2, 0])), np.tensordot(a, b, axes=[2, 0]))
    assert_same(run(gf.tensordot(a, b, axes=0)), np.tensordot(a, b, axes=0))
    assert_same(run(gf.tensordot(a, b, axes=1)), np.tensordot(a, b, axes=1))
    with pytest.raises(ValueError):
        gf.tensordot(a, b, axes=[[0], [0]])  # 2 vs 4
    with pytest.raises(ValueError):
        gf.tensordot(a, b, axes=3)
    with pytest.raises(ValueError):
        gf.tensordot(a, b, axes=[[0, 1], [0]])
    with pytest.raises(TypeError):
        gf.tensordot(a, b.astype(F64), axes=1)


def test_tensordot_with_unknown_dims_keeps_the_known_ones():
    x = gf.placeholder(gf.float32, [None, None, 3])
    w = np.arange(6, dtype=F32).reshape(3, 2)
    z = gf.tensordot(x, w, 1)
    assert z.shape.as_list() == [None, None, 2]
    xv = np.arange(60, dtype=F32).reshape(4, 5, 3)
    assert_same(run(z, {x: xv}), np.tensordot(xv, w, 1))
    y = gf.placeholder(gf.float32, [3, None])
    z2 = gf.tensordot(x, y, [[2], [0]])
    assert z2.shape.as_list() == [None, None, None]
    assert_same(run(z2, {x: xv, y: w}), np.tensordot(xv, w, [[2], [0]]))
