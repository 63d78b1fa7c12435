"""The CPU backend's in-place optimizer kernels against the ops' reference evaluations.

The oracle is each op's ``OpDef.reference`` called as the reference backend calls it
(an :class:`~graphflow.compiler.ir.OpView` of the node, ``VarRef`` handles to a
variable store). The kernels must match it bit for bit in float32 and float64,
NaN for NaN, and raise where it raises, leaving the variables untouched.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphflow as gf
from graphflow.compiler.ir import Node, OpView
from graphflow.framework import errors
from graphflow.framework.op_def import lookup
from graphflow.framework.tensor_shape import TensorShape
from graphflow.kernels.cpu import optimizers
from graphflow.ops.state_ops import VarRef

DTYPES = ["float32", "float64"]
DENSE = sorted(optimizers.DENSE_OPS)
SPARSE = sorted(optimizers.SPARSE_OPS)
SCATTER = sorted(optimizers.SCATTER_OPS)
# Measured: 0 ulp in both dtypes (same operators, same order, same dtype, no FMA).
MAX_ULP = 0

# Bool attributes of each op; every combination is drawn.
ATTRS = {"ApplyMomentum": "use_nesterov", "ApplyAdam": "use_nesterov",
         "ApplyAdagrad": "update_slots", "SparseApplyMomentum": "use_nesterov",
         "SparseApplyAdagrad": "update_slots"}

# Few examples: each (op, dtype) pair is a Numba compile the first time it runs.
FEW = settings(max_examples=8)

SPECIALS = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan]
hyper = st.one_of(st.floats(-2.0, 2.0), st.floats(0.0, 1.0), st.sampled_from(SPECIALS))
shapes = st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple)


def _node(op_type, dtype, attrs=None, shape=None):
    return Node(0, op_type, lookup(op_type), {"use_locking": False, **(attrs or {})}, [],
                [gf.as_dtype(dtype)], [TensorShape(shape)], name=f"{op_type.lower()}_op")


def _random(rng, shape, dtype, specials):
    """Normal values, a few positive-only (second moments), and some inf/NaN/-0 when asked."""
    x = rng.standard_normal(shape).astype(dtype)
    if specials and x.size:
        mask = rng.random(shape) < 0.15
        x[mask] = rng.choice(np.array(SPECIALS, dtype), size=int(mask.sum()))
    return x


def _reference(op_type, dtype, attrs, values):
    """Runs the op's reference evaluation; returns the ref inputs' new values."""
    op_def = lookup(op_type)
    n_refs = len(op_def.ref_inputs)
    store = {}
    inputs = []
    for i, v in enumerate(values):
        if i < n_refs:
            var = Node(i + 1, "VariableV2", lookup("VariableV2"), {}, [], [gf.as_dtype(v.dtype)],
                       [TensorShape(v.shape)], name=f"v{i}")
            store[var.name] = np.array(v, copy=True)
            inputs.append(VarRef(store, OpView(var)))
        else:
            inputs.append(v)
    # The kernels flush subnormals to zero (as TF's and XLA's CPU kernels): so does the
    # oracle, whose NumPy arithmetic follows the thread's MXCSR too.
    with np.errstate(all="ignore"), optimizers.subnormals_flushed():
        op_def.reference(OpView(_node(op_type, dtype, attrs)), inputs, None)
    return [store[f"v{i}"] for i in range(n_refs)]


def _compiled(op_type, dtype, attrs, values):
    """Runs the kernel on copies of the ref inputs; returns them."""
    n_refs = len(lookup(op_type).ref_inputs)
    refs = [np.array(v, copy=True) for v in values[:n_refs]]
    update = optimizers.lower_apply(_node(op_type, dtype, attrs))
    assert update is not None
    update(refs + list(values[n_refs:]))
    return refs


def ulp_diff(a, b):
    """Largest distance in units in the last place; NaN vs NaN counts 0, NaN vs number inf."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if np.any(nan_a != nan_b):
        return np.inf
    if a.size == 0 or np.all(nan_a):
        return 0
    ints = np.int32 if a.dtype == np.float32 else np.int64
    # Sign-magnitude floats -> a monotonic integer line (so -0.0 and 0.0 are 0 apart).
    def line(x):
        i = x[~nan_a].view(ints).astype(np.int64)
        return np.where(i < 0, np.iinfo(ints).min - i, i)
    return int(np.max(np.abs(line(a) - line(b))))


def _assert_same(got, want):
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        if g.dtype.kind in "iu":
            np.testing.assert_array_equal(g, w)
        else:
            assert ulp_diff(g, w) <= MAX_ULP, (g, w)


def _dense_values(op_type, dtype, shape, rng, hyper_values, specials):
    op_def = lookup(op_type)
    values = []
    for i, name in enumerate(op_def.inputs):
        if i in op_def.ref_inputs or name == op_def.grad_input:
            x = _random(rng, shape, dtype, specials)
            # Mostly valid second moments; the specials still put negatives (NaN) in.
            if name in ("v", "ms", "accum") and not specials:
                x = np.abs(x)
            values.append(x)
        else:
            values.append(np.array(hyper_values.pop(), dtype))
    return values


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_type", DENSE)
@FEW
@given(shape=shapes, seed=st.integers(0, 2**32 - 1), flag=st.booleans(),
       specials=st.booleans(), hypers=st.lists(hyper, min_size=7, max_size=7))
def test_dense_matches_reference(op_type, dtype, shape, seed, flag, specials, hypers):
    rng = np.random.default_rng(seed)
    attrs = {ATTRS[op_type]: flag} if op_type in ATTRS else {}
    values = _dense_values(op_type, dtype, shape, rng, list(hypers), specials)
    _assert_same(_compiled(op_type, dtype, attrs, values),
                 _reference(op_type, dtype, attrs, values))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_type", ["ApplyAdam", "ApplyCenteredRMSProp"])
def test_typical_hyperparameters_are_bit_exact(op_type, dtype):
    """Ordinary training values over many elements (no specials), several steps in a row."""
    rng = np.random.default_rng(0)
    shape = (37, 29)
    if op_type == "ApplyAdam":
        hypers = [1e-8, 0.999, 0.9, 1e-3, 0.999 ** 3, 0.9 ** 3]  # popped from the end
    else:
        hypers = [1e-10, 0.9, 0.9, 1e-2]
    values = _dense_values(op_type, dtype, shape, rng, hypers, False)
    attrs = {"use_nesterov": True} if op_type == "ApplyAdam" else {}
    got = want = values[:len(lookup(op_type).ref_inputs)]
    for _ in range(3):
        grad = _random(rng, shape, dtype, False)
        grad_pos = lookup(op_type).inputs.index("grad")
        step = list(values)
        step[grad_pos] = grad
        got = _compiled(op_type, dtype, attrs, got + step[len(got):])
        want = _reference(op_type, dtype, attrs, want + step[len(want):])
        _assert_same(got, want)


def _sparse_values(op_type, dtype, shape, indices, rng, hypers, specials):
    op_def = lookup(op_type)
    values = []
    for i, name in enumerate(op_def.inputs):
        if i in op_def.ref_inputs:
            x = _random(rng, shape, dtype, specials)
            values.append(np.abs(x) if name in ("ms", "accum") and not specials else x)
        elif name == "indices":
            values.append(indices)
        elif name == op_def.grad_input:
            values.append(_random(rng, indices.shape + shape[1:], dtype, specials))
        else:
            values.append(np.array(hypers.pop(), dtype))
    return values


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_type", SPARSE)
@FEW
@given(shape=st.lists(st.integers(0, 4), min_size=1, max_size=3).map(tuple),
       seed=st.integers(0, 2**32 - 1), flag=st.booleans(), specials=st.booleans(),
       n=st.integers(0, 6), wide=st.booleans(), hypers=st.lists(hyper, min_size=4, max_size=4))
def test_sparse_matches_reference(op_type, dtype, shape, seed, flag, specials, n, wide, hypers):
    rng = np.random.default_rng(seed)
    # Rows drawn with replacement: repeated rows are updated once per occurrence.
    idx_dtype = np.int64 if wide else np.int32
    indices = rng.integers(0, shape[0], n).astype(idx_dtype) if shape[0] else \
        np.zeros(0, idx_dtype)
    attrs = {ATTRS[op_type]: flag} if op_type in ATTRS else {}
    values = _sparse_values(op_type, dtype, shape, indices, rng, list(hypers), specials)
    _assert_same(_compiled(op_type, dtype, attrs, values),
                 _reference(op_type, dtype, attrs, values))


@pytest.mark.parametrize("op_type", SCATTER)
@FEW
@given(dtype=st.sampled_from(["float32", "float64", "int32", "int64"]),
       shape=st.lists(st.integers(0, 4), min_size=1, max_size=3).map(tuple),
       index_shape=st.lists(st.integers(0, 3), min_size=0, max_size=2).map(tuple),
       seed=st.integers(0, 2**32 - 1))
def test_scatter_matches_reference(op_type, dtype, shape, index_shape, seed):
    rng = np.random.default_rng(seed)
    if shape[0] == 0:
        index_shape = (0,)
    indices = rng.integers(0, max(shape[0], 1), index_shape)
    scale = 1 if dtype.startswith("float") else 1000
    var = (rng.standard_normal(shape) * scale).astype(dtype)
    updates = (rng.standard_normal(index_shape + shape[1:]) * scale).astype(dtype)
    _assert_same(_compiled(op_type, dtype, {}, [var, indices, updates]),
                 _reference(op_type, dtype, {}, [var, indices, updates]))


def _adam_values(dtype, shape=(2, 3), grad_shape=None, slot_shape=None):
    v = np.ones(shape, dtype)
    hyp = [np.array(x, dtype) for x in (0.9, 0.999, 1e-3, 0.9, 0.999, 1e-8)]
    return [v, np.zeros(slot_shape or shape, dtype), np.zeros(shape, dtype), *hyp,
            np.ones(grad_shape or shape, dtype)]


def _momentum_sparse(indices, grad_shape=(2, 3), slot_shape=(4, 3)):
    return [np.ones((4, 3)), np.ones(slot_shape), np.array(0.1), np.ones(grad_shape),
            np.asarray(indices), np.array(0.9)]


ERRORS = [
    ("ApplyAdam", _adam_values("float64", slot_shape=(3, 2)), ["m", "[2, 3]", "[3, 2]"]),
    ("ApplyAdam", _adam_values("float32", grad_shape=(2, 3, 1)), ["grad", "[2, 3]",
                                                                   "[2, 3, 1]"]),
    ("ApplyGradientDescent", [np.ones(3), np.ones(2), np.ones(3)], ["alpha", "scalar", "[2]"]),
    ("ApplyAdam", _adam_values("float64")[:5] + [np.ones((1,))] + _adam_values("float64")[6:],
     ["lr", "scalar", "[1]"]),
    ("SparseApplyMomentum", _momentum_sparse([[0, 1]], grad_shape=(1, 2, 3)),
     ["one-dimensional", "[1, 2]"]),
    ("SparseApplyMomentum", _momentum_sparse([0, 1], grad_shape=(2, 4)),
     ["grad", "[2, 3]", "[2, 4]"]),
    ("SparseApplyMomentum", _momentum_sparse([0, 1], slot_shape=(4, 2)),
     ["accum", "[4, 3]", "[4, 2]"]),
    ("SparseApplyMomentum", _momentum_sparse([0, 4]), ["indices[1] = 4", "[0, 4)"]),
    ("SparseApplyMomentum", _momentum_sparse([-1, 2]), ["indices[0] = -1", "[0, 4)"]),
    ("ScatterSub", [np.ones((4, 3)), np.array([[0, 1], [5, 2]]), np.ones((2, 2, 3))],
     ["indices[1,0] = 5", "[0, 4)"]),
    ("ScatterAdd", [np.ones((4, 3)), np.array([0, 1]), np.ones((2, 2))],
     ["updates", "[2, 3]", "[2, 2]"]),
]


@pytest.mark.parametrize("op_type,values,words", ERRORS,
                         ids=[f"{t}-{w[0]}" for t, _, w in ERRORS])
def test_errors_match_reference(op_type, values, words):
    dtype = values[0].dtype.name
    with pytest.raises(errors.InvalidArgumentError):
        _reference(op_type, dtype, {}, values)
    n_refs = len(lookup(op_type).ref_inputs)
    refs = [np.array(v, copy=True) for v in values[:n_refs]]
    update = optimizers.lower_apply(_node(op_type, dtype))
    with pytest.raises(ValueError) as info:
        update(refs + list(values[n_refs:]))
    message = str(info.value)
    assert message.startswith(op_type + ":")
    for w in words:
        assert w in message
    # Nothing is written when the update fails.
    for r, v in zip(refs, values):
        np.testing.assert_array_equal(r, v)


@pytest.mark.parametrize("dtype", DTYPES)
def test_updates_flush_subnormals_and_leave_the_thread_as_it_was(dtype):
    # Late in training Adam's second moment underflows: 0.001 * g * g below the smallest
    # normal number is 0 in the kernel, where IEEE arithmetic keeps a subnormal.
    tiny = np.finfo(dtype).tiny
    g = np.array([np.sqrt(tiny) / 4, 1.0, np.sqrt(tiny) / 64], dtype)
    hyper = [np.array(h, dtype) for h in (0.9, 0.999, 1e-3, 0.9, 0.999, 1e-8)]
    values = [np.ones(3, dtype), np.zeros(3, dtype), np.zeros(3, dtype), *hyper, g]
    _, _, v = _compiled("ApplyAdam", dtype, {}, values)
    ieee = (g * g - 0) * (np.array(1, dtype) - hyper[4])
    assert 0 < ieee[0] < tiny and 0 < ieee[2] < tiny  # subnormals without the flush
    assert v[0] == 0 and v[2] == 0 and v[1] == ieee[1]
    # The caller's thread computes with subnormals again.
    assert np.multiply(np.array(tiny, dtype), np.array(0.5, dtype)) > 0


def test_gradient_is_the_variable_itself():
    """``var -= alpha * var``: the kernel must read the old values, not its own writes."""
    var = np.arange(6.0).reshape(2, 3)
    update = optimizers.lower_apply(_node("ApplyGradientDescent", "float64"))
    update([var, np.array(0.5), var])
    np.testing.assert_array_equal(var, np.arange(6.0).reshape(2, 3) * 0.5)


def test_same_variable_as_var_and_slot_matches_reference():
    """Both refs name one store entry: the reference's last write (the slot's) wins."""
    x = np.linspace(-1, 1, 5)
    store = {}
    node = Node(1, "VariableV2", lookup("VariableV2"), {}, [], [gf.float64], [TensorShape([5])],
                name="v")
    store["v"] = x.copy()
    ref = VarRef(store, OpView(node))
    lookup("ApplyMomentum").reference(
        OpView(_node("ApplyMomentum", "float64", {"use_nesterov": False})),
        [ref, ref, np.array(0.1), np.ones(5), np.array(0.9)], None)
    storage = x.copy()
    optimizers.lower_apply(_node("ApplyMomentum", "float64", {"use_nesterov": False}))(
        [storage, storage, np.array(0.1), np.ones(5), np.array(0.9)])
    np.testing.assert_array_equal(storage, store["v"])


def test_scatter_updates_viewing_the_variable_match_reference():
    """Rows swapped through a view of the variable: the kernel must not read its writes."""
    var = np.arange(12.0).reshape(4, 3)
    want = _reference("ScatterUpdate", "float64", {}, [var, np.array([1, 0]), var[:2].copy()])
    optimizers.lower_apply(_node("ScatterUpdate", "float64"))([var, np.array([1, 0]), var[:2]])
    _assert_same([var], want)


def test_non_contiguous_gradient_and_zero_d_variable():
    var = np.array(2.0, np.float32)
    update = optimizers.lower_apply(_node("ApplyAdagrad", "float32", {"update_slots": True}))
    accum = np.array(1.0, np.float32)
    update([var, accum, np.array(0.5, np.float32), np.array(3.0, np.float32)])
    want = _reference("ApplyAdagrad", "float32", {"update_slots": True},
                      [np.array(2.0, np.float32), np.array(1.0, np.float32),
                       np.array(0.5, np.float32), np.array(3.0, np.float32)])
    _assert_same([var, accum], want)
    var = np.ones((3, 4))
    grad = np.arange(24.0).reshape(3, 8)[:, ::2]  # a strided view
    optimizers.lower_apply(_node("ApplyGradientDescent", "float64"))([var, np.array(0.5), grad])
    np.testing.assert_array_equal(var, 1.0 - 0.5 * grad)


@pytest.mark.parametrize("op_type,dtype", [("ApplyAdam", "float16"), ("ApplyAdam", "int32"),
                                           ("Add", "float32"), ("ScatterAdd", "bool"),
                                           ("SparseApplyAdagrad", "float16")])
def test_unhandled_returns_none(op_type, dtype):
    node = Node(0, op_type, lookup(op_type), {}, [], [gf.as_dtype(dtype)], [TensorShape(None)],
                name="n")
    assert optimizers.lower_apply(node) is None
