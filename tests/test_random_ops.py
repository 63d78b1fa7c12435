"""random_ops: TF1 seeding rules, statistics, shapes and dtypes of the random tensors."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from conftest import run
from hypothesis import given
from hypothesis import strategies as st

import graphflow as gf
from graphflow.ops.random_ops import DEFAULT_GRAPH_SEED

N = 10_000
RANDOM_FNS = {
    "normal": lambda shape, **kw: gf.random_normal(shape, **kw),
    "truncated": lambda shape, **kw: gf.truncated_normal(shape, **kw),
    "uniform": lambda shape, **kw: gf.random_uniform(shape, **kw),
    "uniform_int": lambda shape, **kw: gf.random_uniform(shape, maxval=1000, dtype=gf.int32,
                                                         **kw),
}
KINDS = list(RANDOM_FNS)


def _build(kind: str, graph_seed: int | None, op_seed: int | None, shape=(4, 5)):
    """A fresh graph holding some unrelated ops and one random tensor."""
    g = gf.Graph()
    with g.as_default():
        if graph_seed is not None:
            gf.set_random_seed(graph_seed)
        gf.constant(1.0) + 2.0  # ops before the random op: derived seeds depend on them
        t = RANDOM_FNS[kind](list(shape), seed=op_seed)
    return g, t


# --- seeding --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("graph_seed, op_seed", [(7, 3), (7, None), (None, 3), (0, 0)])
def test_seeded_graphs_built_the_same_way_repeat_their_numbers(kind, graph_seed, op_seed):
    g1, t1 = _build(kind, graph_seed, op_seed)
    g2, t2 = _build(kind, graph_seed, op_seed)
    a = run(t1, graph=g1)
    b = run(t2, graph=g2)
    np.testing.assert_array_equal(a, b)
    # Two sessions on one graph give the same sequence of values, run after run.
    with gf.Session(graph=g1) as s1, gf.Session(graph=g1) as s2:
        first = [s1.run(t1), s1.run(t1)]
        second = [s2.run(t1), s2.run(t1)]
    np.testing.assert_array_equal(first[0], a)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    # ... and successive runs in one session differ.
    assert not np.array_equal(first[0], first[1])


@pytest.mark.parametrize("kind", KINDS)
def test_different_seeds_give_different_numbers(kind):
    _, a = _build(kind, 7, 3)
    ga, ta = _build(kind, 7, 3)
    gb, tb = _build(kind, 7, 4)
    gc, tc = _build(kind, 8, 3)
    va, vb, vc = run(ta, graph=ga), run(tb, graph=gb), run(tc, graph=gc)
    assert not np.array_equal(va, vb)
    assert not np.array_equal(va, vc)


@pytest.mark.parametrize("kind", KINDS)
def test_unseeded_ops_differ_between_sessions(kind):
    t = RANDOM_FNS[kind]([50])
    assert not np.array_equal(run(t), run(t))


def test_graph_seed_gives_each_op_its_own_stream():
    gf.set_random_seed(11)
    a = gf.random_normal([100])
    b = gf.random_normal([100])
    va, vb = run([a, b])
    assert not np.array_equal(va, vb)
    ops = [a.op.inputs[0].op.inputs[0].op, b.op.inputs[0].op.inputs[0].op]
    assert all(o.type == "RandomStandardNormal" for o in ops)
    assert ops[0].get_attr("seed") == ops[1].get_attr("seed") == 11
    assert ops[0].get_attr("seed2") != ops[1].get_attr("seed2")


def test_a_random_tensor_is_evaluated_once_per_run():
    t = gf.random_uniform([20])
    a, b, c = run([t, t, t * 1.0])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_seed_attributes_follow_tf1_rules():
    assert gf.get_seed(None) == (None, None)
    assert gf.get_seed(5) == (DEFAULT_GRAPH_SEED, 5)
    gf.set_random_seed(3)
    assert gf.get_default_graph().seed == 3
    assert gf.get_seed(9) == (3, 9)
    s1, s2 = gf.get_seed(None)
    assert s1 == 3 and isinstance(s2, int)
    gf.set_random_seed(0)
    assert gf.get_seed(0) == (0, 2**31 - 1)  # (0, 0) means "unseeded"; TF1 avoids it
    t = gf.random_normal([2], seed=0)
    rnd = t.graph.get_operation_by_name("random_normal/RandomStandardNormal")
    assert (rnd.get_attr("seed"), rnd.get_attr("seed2")) == (0, 2**31 - 1)
    gf.set_random_seed(None)
    assert gf.get_seed(None) == (None, None)
    g = gf.Graph()
    with g.as_default():
        gf.set_random_seed(42)
    assert g.seed == 42 and gf.get_default_graph().seed is None


# --- statistics -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [gf.float32, gf.float64])
def test_random_normal_statistics(dtype):
    t = gf.random_normal([N], mean=3.0, stddev=2.0, dtype=dtype, seed=1)
    x = run(t)
    assert t.dtype == dtype and x.dtype == dtype.as_numpy_dtype and x.shape == (N,)
    assert abs(x.mean() - 3.0) < 0.1
    assert abs(x.std() - 2.0) < 0.1
    assert x.min() < 3.0 - 2 * 2.0 < 3.0 + 2 * 2.0 < x.max()  # not truncated


@pytest.mark.parametrize("dtype", [gf.float32, gf.float64])
def test_truncated_normal_statistics_and_bounds(dtype):
    t = gf.truncated_normal([N], mean=-1.0, stddev=0.5, dtype=dtype, seed=2)
    x = run(t)
    assert t.dtype == dtype and x.dtype == dtype.as_numpy_dtype
    assert np.all(np.abs(x + 1.0) <= 2 * 0.5 + 1e-6)
    assert abs(x.mean() + 1.0) < 0.03
    # The standard deviation of a normal truncated at +-2 sigma is 0.8796 sigma.
    assert abs(x.std() - 0.8796 * 0.5) < 0.03
    assert np.abs(x + 1.0).max() > 0.9  # the tails up to the bound are reached


@pytest.mark.parametrize("dtype", [gf.float32, gf.float64])
def test_random_uniform_float_statistics(dtype):
    t = gf.random_uniform([N], minval=-2.0, maxval=6.0, dtype=dtype, seed=3)
    x = run(t)
    assert t.dtype == dtype and x.dtype == dtype.as_numpy_dtype
    assert x.min() >= -2.0 and x.max() < 6.0
    assert abs(x.mean() - 2.0) < 0.15
    assert abs(x.std() - 8.0 / math.sqrt(12)) < 0.1
    default = run(gf.random_uniform([N], dtype=dtype, seed=4))
    assert default.min() >= 0.0 and default.max() < 1.0 and abs(default.mean() - 0.5) < 0.02


@pytest.mark.parametrize("dtype", [gf.int32, gf.int64])
def test_random_uniform_int(dtype):
    t = gf.random_uniform([N], minval=-3, maxval=3, dtype=dtype, seed=5)
    x = run(t)
    assert t.dtype == dtype and x.dtype == dtype.as_numpy_dtype
    assert t.op.type == "RandomUniformInt"
    values, counts = np.unique(x, return_counts=True)
    assert list(values) == [-3, -2, -1, 0, 1, 2]
    assert np.all(np.abs(counts - N / 6) < 0.1 * N / 6)
    assert set(run(gf.random_uniform([200], maxval=2, dtype=dtype))) == {0, 1}


def test_mean_and_stddev_tensors_broadcast_against_the_output():
    x = run(gf.random_normal([N, 2], mean=[0.0, 10.0], stddev=[1.0, 0.1], seed=6))
    np.testing.assert_allclose(x.mean(axis=0), [0.0, 10.0], atol=0.05)
    np.testing.assert_allclose(x.std(axis=0), [1.0, 0.1], rtol=0.05)
    y = run(gf.random_uniform([N, 2], minval=[0.0, 5.0], maxval=[1.0, 6.0], seed=7))
    assert np.all((y[:, 0] >= 0) & (y[:, 0] < 1)) and np.all((y[:, 1] >= 5) & (y[:, 1] < 6))
    m = gf.placeholder(gf.float32, [])
    z = gf.random_normal([N], mean=m, stddev=0.01)
    assert abs(run(z, {m: 4.0}).mean() - 4.0) < 0.01


# --- shapes, dtypes, names, errors ------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
       form=st.sampled_from(["list", "tuple", "TensorShape", "const", "const64"]))
def test_shape_argument_forms(kind, shape, form):
    if form == "list":
        arg = list(shape)
    elif form == "tuple":
        arg = tuple(shape)
    elif form == "TensorShape":
        arg = gf.TensorShape(list(shape))
    else:
        arg = gf.constant(np.array(shape, np.int64 if form == "const64" else np.int32))
    t = RANDOM_FNS[kind](arg)
    assert t.shape.as_list() == list(shape)
    x = run(t)
    assert np.shape(x) == shape
    if kind == "truncated":
        assert np.all(np.abs(x) <= 2.0)
    elif kind == "uniform":
        assert np.all((x >= 0) & (x < 1))
    elif kind == "uniform_int":
        assert np.all((x >= 0) & (x < 1000))


@pytest.mark.parametrize("kind", KINDS)
def test_shape_from_a_fed_tensor(kind):
    s = gf.placeholder(gf.int32, [2])
    t = RANDOM_FNS[kind](s)
    assert t.shape.as_list() == [None, None]
    assert run(t, {s: [3, 2]}).shape == (3, 2)
    assert run(t, {s: [0, 5]}).shape == (0, 5)
    with pytest.raises(gf.errors.InvalidArgumentError):
        run(t, {s: [-1, 2]})
    partial = RANDOM_FNS[kind](gf.stack([gf.constant(4), gf.placeholder(gf.int32, [])]))
    assert partial.shape.as_list() == [4, None]


def test_names_types_and_statefulness():
    n = gf.random_normal([2])
    assert n.op.name == "random_normal" and n.op.type == "Add"
    g = n.graph
    rnd = g.get_operation_by_name("random_normal/RandomStandardNormal")
    assert rnd.op_def.stateful
    assert gf.random_normal([2]).op.name == "random_normal_1"
    tn = gf.truncated_normal([2], name="tn")
    assert tn.op.name == "tn" and g.get_operation_by_name("tn/TruncatedNormal").op_def.stateful
    u = gf.random_uniform([2])
    assert u.op.name == "random_uniform"
    assert g.get_operation_by_name("random_uniform/RandomUniform").op_def.stateful
    ui = gf.random_uniform([2], maxval=5, dtype=gf.int64)
    assert ui.op.name == "random_uniform_1" and ui.op.op_def.stateful


def test_dtype_errors():
    with pytest.raises(ValueError, match="maxval"):
        gf.random_uniform([3], dtype=gf.int32)
    with pytest.raises(TypeError):
        gf.random_normal([3], dtype=gf.int32)
    with pytest.raises(TypeError):
        gf.truncated_normal([3], dtype=gf.int64)
    with pytest.raises(TypeError):
        gf.random_uniform([3], dtype=gf.bool)
    with pytest.raises(TypeError):
        gf.random_normal([2.5])  # a float shape
    with pytest.raises(TypeError):
        gf.random_normal(gf.constant([2.0]))
    with pytest.raises(TypeError):
        gf.random_uniform([3], minval=0.5, maxval=3, dtype=gf.int32)  # a float bound for ints
    t = gf.random_uniform([3], minval=5, maxval=5, dtype=gf.int32)
    with pytest.raises(gf.errors.InvalidArgumentError, match="minval"):
        run(t)
