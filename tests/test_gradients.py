"""gf.gradients: engine semantics and every math-op gradient against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphflow as gf
from graphflow.framework.op_def import OpDef, register

check = gf.test.check_gradients


def _away_from_zero(a, margin=0.2):
    # Keep inputs off the kinks (0 for abs/relu) so central differences are valid.
    return np.where(np.abs(a) < margin, np.sign(a + 1e-12) * margin + a, a)


def _rand(rng, shape, low=-2.0, high=2.0):
    return rng.uniform(low, high, size=shape)


shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)

# (function, input generator, check second order?)
SMOOTH_UNARY = {
    "negative": (gf.negative, lambda r, s: _rand(r, s)),
    "square": (gf.square, lambda r, s: _rand(r, s)),
    "sqrt": (gf.sqrt, lambda r, s: _rand(r, s, 0.5, 3)),
    "rsqrt": (gf.rsqrt, lambda r, s: _rand(r, s, 0.5, 3)),
    "reciprocal": (gf.reciprocal, lambda r, s: _rand(r, s, 0.5, 3)),
    "exp": (gf.exp, lambda r, s: _rand(r, s)),
    "expm1": (gf.expm1, lambda r, s: _rand(r, s)),
    "log": (gf.log, lambda r, s: _rand(r, s, 0.5, 3)),
    "log1p": (gf.log1p, lambda r, s: _rand(r, s, -0.5, 3)),
    "sin": (gf.sin, lambda r, s: _rand(r, s)),
    "cos": (gf.cos, lambda r, s: _rand(r, s)),
    "tan": (gf.tan, lambda r, s: _rand(r, s, -1, 1)),
    "tanh": (gf.tanh, lambda r, s: _rand(r, s)),
    "sigmoid": (gf.sigmoid, lambda r, s: _rand(r, s)),
    "softplus": (gf.nn.softplus, lambda r, s: _rand(r, s)),
    "softsign": (gf.nn.softsign, lambda r, s: _away_from_zero(_rand(r, s))),
    "erf": (gf.erf, lambda r, s: _rand(r, s)),
    "gelu": (gf.nn.gelu, lambda r, s: _rand(r, s)),
    "gelu_tanh": (lambda x: gf.nn.gelu(x, approximate=True), lambda r, s: _rand(r, s)),
    "elu": (gf.nn.elu, lambda r, s: _away_from_zero(_rand(r, s))),
    "selu": (gf.nn.selu, lambda r, s: _away_from_zero(_rand(r, s))),
    "identity": (gf.identity, lambda r, s: _rand(r, s)),
}
KINKED_UNARY = {
    "abs": (gf.abs, lambda r, s: _away_from_zero(_rand(r, s))),
    "relu": (gf.nn.relu, lambda r, s: _away_from_zero(_rand(r, s))),
    "relu6": (gf.nn.relu6, lambda r, s: _away_from_zero(_rand(r, s, -3, 9))),
    "leaky_relu": (gf.nn.leaky_relu, lambda r, s: _away_from_zero(_rand(r, s))),
    "cast": (lambda x: gf.cast(gf.cast(x, gf.float32), gf.float64),
             lambda r, s: _rand(r, s)),
}


@pytest.mark.parametrize("name", sorted(SMOOTH_UNARY))
@settings(max_examples=6)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_smooth_unary_first_and_second_order(name, shape, seed):
    fn, gen = SMOOTH_UNARY[name]
    x = gen(np.random.default_rng(seed), shape)
    check(fn, [x])
    if name != "identity":  # the identity's gradient does not depend on x
        check(fn, [x], order=2)


@pytest.mark.parametrize("name", sorted(KINKED_UNARY))
@settings(max_examples=8)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_piecewise_unary_first_order(name, shape, seed):
    fn, gen = KINKED_UNARY[name]
    x = gen(np.random.default_rng(seed), shape)
    check(fn, [x], atol=1e-4 if name == "cast" else 1e-6, delta=1e-3 if name == "cast" else
          1e-6)


BINARY = {
    "add": (gf.add, (-2, 2), (-2, 2)),
    "subtract": (gf.subtract, (-2, 2), (-2, 2)),
    "multiply": (gf.multiply, (-2, 2), (-2, 2)),
    "truediv": (gf.truediv, (-2, 2), (0.5, 2)),
    "div": (gf.div, (-2, 2), (0.5, 2)),
    "pow": (gf.pow, (0.5, 2), (-2, 2)),
    "squared_difference": (gf.squared_difference, (-2, 2), (-2, 2)),
    "floormod": (gf.floormod, (0.1, 0.9), (1.5, 2.5)),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@settings(max_examples=8)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                max_side=3),
       seed=st.integers(0, 2**16))
def test_binary_with_broadcasting(name, shapes, seed):
    fn, (xl, xh), (yl, yh) = BINARY[name]
    rng = np.random.default_rng(seed)
    x = rng.uniform(xl, xh, shapes.input_shapes[0])
    y = rng.uniform(yl, yh, shapes.input_shapes[1])
    check(fn, [x, y])
    if name not in ("floormod",):
        check(fn, [x, y], order=2)


@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                max_side=3),
       seed=st.integers(0, 2**16))
def test_maximum_minimum_route_to_the_winner(shapes, seed):
    rng = np.random.default_rng(seed)
    # Distinct values, so no ties and no kinks at the evaluation point.
    x = rng.permutation(64)[:int(np.prod(shapes.input_shapes[0]))].reshape(
        shapes.input_shapes[0]) * 0.5
    y = rng.permutation(64)[:int(np.prod(shapes.input_shapes[1]))].reshape(
        shapes.input_shapes[1]) * 0.5 + 0.25
    check(gf.maximum, [x.astype(float), y.astype(float)])
    check(gf.minimum, [x.astype(float), y.astype(float)])


def test_tie_conventions_follow_tf1():
    x = gf.constant([0.0, 1.0, 2.0], gf.float64)
    y = gf.constant([0.0, 1.0, 1.0], gf.float64)
    gx, gy = gf.gradients(gf.maximum(x, y), [x, y])
    mx, my = gf.gradients(gf.minimum(x, y), [x, y])
    (grelu,) = gf.gradients(gf.nn.relu(x), [x])
    (gabs,) = gf.gradients(gf.abs(x), [x])
    m = gf.constant([[1.0, 3.0, 3.0]], gf.float64)
    (gmax,) = gf.gradients(gf.reduce_max(m), [m])
    out = run([gx, gy, mx, my, grelu, gabs, gmax])
    np.testing.assert_array_equal(out[0], [1, 1, 1])  # ties go to x
    np.testing.assert_array_equal(out[1], [0, 0, 0])
    np.testing.assert_array_equal(out[2], [1, 1, 0])
    np.testing.assert_array_equal(out[3], [0, 0, 1])
    np.testing.assert_array_equal(out[4], [0, 1, 1])  # relu'(0) = 0
    np.testing.assert_array_equal(out[5], [0, 1, 1])  # abs'(0) = sign(0) = 0
    np.testing.assert_array_equal(out[6], [[0, 0.5, 0.5]])  # ties split evenly


@pytest.mark.parametrize("reducer", ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min"])
@settings(max_examples=10)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3),
       seed=st.integers(0, 2**16), keepdims=st.booleans(), data=st.data())
def test_reductions(reducer, shape, seed, keepdims, data):
    rng = np.random.default_rng(seed)
    x = rng.permutation(100)[:int(np.prod(shape))].reshape(shape) * 0.1
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                               st.lists(st.integers(0, len(shape) - 1), min_size=1,
                                        max_size=len(shape), unique=True)))
    fn = getattr(gf, reducer)
    check(lambda t: fn(t, axis=axis, keepdims=keepdims), [x.astype(float)])
    if reducer in ("reduce_sum", "reduce_mean"):
        check(lambda t: fn(t * t, axis=axis, keepdims=keepdims), [x.astype(float)], order=2)


@settings(max_examples=10)
@given(seed=st.integers(0, 2**16), ta=st.booleans(), tb=st.booleans(),
       m=st.integers(1, 3), k=st.integers(1, 3), n=st.integers(1, 3))
def test_matmul_all_transposes(seed, ta, tb, m, k, n):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if ta else (m, k))
    b = rng.standard_normal((n, k) if tb else (k, n))
    fn = lambda x, y: gf.matmul(x, y, transpose_a=ta, transpose_b=tb)  # noqa: E731
    check(fn, [a, b])
    check(lambda x, y: gf.tanh(fn(x, y)), [a, b], order=2)


def test_batched_matmul_with_broadcast_batch():
    rng = np.random.default_rng(0)
    check(gf.matmul, [rng.standard_normal((2, 1, 2, 3)), rng.standard_normal((3, 3, 2))])
    check(lambda a, b: gf.matmul(a, b, adjoint_a=True),
          [rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 3, 4))])


def test_select_and_where_v2_and_add_n():
    rng = np.random.default_rng(0)
    mask = [True, False, True]
    check(lambda x, y: gf.where(gf.constant(mask), x, y),
          [rng.standard_normal(3), rng.standard_normal(3)])
    check(lambda x, y: gf.where_v2(gf.constant(mask), x, y),
          [rng.standard_normal((2, 3)), rng.standard_normal(1)])
    check(lambda x, y: gf.add_n([x, y, x]), [rng.standard_normal(3), rng.standard_normal(3)])


# --- engine semantics -----------------------------------------------------------------
def test_paths_are_aggregated_and_several_ys_summed():
    x = gf.constant(3.0, gf.float64)
    y1 = x * x
    y2 = 2.0 * x
    (g,) = gf.gradients([y1, y2], [x])
    (g_both,) = gf.gradients(y1 + x * x, [x])
    assert run(g) == 8.0
    assert run(g_both) == 12.0


def test_unconnected_stop_gradient_and_integer_inputs():
    x = gf.constant(2.0)
    z = gf.constant(5.0)
    i = gf.constant(3)
    y = gf.stop_gradient(x * 3) + x * gf.cast(i, gf.float32)
    gx, gz, gi = gf.gradients(y, [x, z, i])
    assert gz is None and gi is None
    assert run(gx) == 3.0
    gz0 = gf.gradients(y, [z], unconnected_gradients="zero")[0]
    assert run(gz0) == 0.0
    with pytest.raises(ValueError):
        gf.gradients(y, [x], unconnected_gradients="maybe")
    a = x * x
    b = a * 3
    (ga,) = gf.gradients(b, [x], stop_gradients=[a])
    assert ga is None


def test_grad_ys_and_variables():
    w = gf.Variable([1.0, 2.0])
    y = w * w
    (g,) = gf.gradients(y, [w], grad_ys=[gf.constant([1.0, 10.0])])
    np.testing.assert_array_equal(run(g), [2.0, 40.0])
    with pytest.raises(ValueError):
        gf.gradients(y, [w], grad_ys=[gf.constant([1.0, 2.0, 3.0])])


@register
class _TestNoGradient(OpDef):
    """An op with no gradient rule, to test the engine's error."""

    type = "TestNoGradient"

    def infer(self, op):
        return [(op.inputs[0].dtype, op.inputs[0].shape)]

    def reference(self, op, inputs, ctx):
        return inputs[0]


def test_missing_rule_raises_lookup_error_naming_the_op():
    x = gf.constant([1.0, 2.0])
    y = gf.get_default_graph().create_op("TestNoGradient", [x], name="nograd").outputs[0]
    with pytest.raises(LookupError, match="nograd.*TestNoGradient"):
        gf.gradients(y * 2.0, [x])


@settings(max_examples=10)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3),
       seed=st.integers(0, 2**16), keepdims=st.booleans(), data=st.data())
def test_reduce_prod_gradient_handles_zeros(shape, seed, keepdims, data):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 1.5, shape) * rng.choice([0.0, 1.0, 1.0], shape)
    axis = data.draw(st.one_of(st.none(), st.lists(st.integers(0, len(shape) - 1), min_size=1,
                                                   max_size=len(shape), unique=True)))
    check(lambda t: gf.reduce_prod(t, axis=axis, keepdims=keepdims), [x])


def test_reduce_prod_gradient_with_unknown_dims():
    xv = np.array([[1.0, 2.0, 0.0], [3.0, 4.0, 5.0]])
    x = gf.placeholder(gf.float64, [None, None])
    (g,) = gf.gradients(gf.reduce_prod(x, axis=1), [x])
    np.testing.assert_allclose(run(g, {x: xv}), [[0, 0, 2], [20, 15, 12]])


@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_cumsum_cumprod_values_and_gradients(exclusive, reverse):
    xv = np.random.default_rng(0).uniform(0.5, 2, (3, 4))
    ref_in = np.flip(xv, 1) if reverse else xv
    for fn, npfn, ident in ((gf.cumsum, np.cumsum, 0.0), (gf.cumprod, np.cumprod, 1.0)):
        want = npfn(ref_in, axis=1)
        if exclusive:
            want = np.concatenate([np.full((3, 1), ident), want[:, :-1]], axis=1)
        if reverse:
            want = np.flip(want, 1)
        got = run(fn(gf.constant(xv), 1, exclusive=exclusive, reverse=reverse))
        np.testing.assert_allclose(got, want)
        check(lambda t, f=fn: f(t, 1, exclusive=exclusive, reverse=reverse), [xv])


def test_hessian_vector_product_and_second_derivative():
    x = gf.placeholder(gf.float64, [3])
    v = gf.constant([1.0, 0.0, 2.0], gf.float64)
    f = gf.reduce_sum(x * x * x)
    (g,) = gf.gradients(f, [x])
    (hv,) = gf.gradients(gf.reduce_sum(g * v), [x])
    xv = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(run(hv, {x: xv}), 6 * xv * np.array([1.0, 0.0, 2.0]))


def test_unknown_dims_broadcast_gradient_matches_static():
    rng = np.random.default_rng(0)
    av, bv = rng.standard_normal((4, 3)), rng.standard_normal((1, 3))
    a = gf.placeholder(gf.float64, [None, None])
    b = gf.placeholder(gf.float64, [None, None])
    ga, gb = gf.gradients(gf.reduce_sum(gf.tanh(a * b)), [a, b])
    got = run([ga, gb], {a: av, b: bv})
    t = np.tanh(av * bv)
    np.testing.assert_allclose(got[0], (1 - t * t) * bv)
    np.testing.assert_allclose(got[1], np.sum((1 - t * t) * av, axis=0, keepdims=True))


def test_gradient_ops_are_named_under_gradients_scope():
    x = gf.placeholder(gf.float32, [2], name="x")
    y = gf.reduce_sum(gf.tanh(x), name="loss")
    (g,) = gf.gradients(y, [x])
    assert g.name.startswith("gradients/")
    assert gf.get_default_graph().get_operation_by_name("gradients/loss_grad/Reshape")
