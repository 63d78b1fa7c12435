"""embedding_lookup, IndexedSlices gradients and sparse optimizer updates.

The gradient of a gather/embedding lookup with respect to its table is an
IndexedSlices (TF1); its dense form must match finite differences, several of
them must concatenate, and the optimizers must apply them row by row with the
same result as the dense update (TF1's sparse semantics where they differ),
without any table-sized gradient in the graph.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_same, run

import graphflow as gf
from graphflow.framework.op_def import lookup
from graphflow.runtime.session import BACKENDS as SESSION_BACKENDS

rng = np.random.default_rng(0)
BACKENDS = [b for b in ("reference", "interpreter") if b in SESSION_BACKENDS]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


# --- the lookup ----------------------------------------------------------------------
def test_lookup_values_names_and_shapes():
    table = rng.standard_normal((7, 3)).astype(np.float32)
    w = gf.Variable(table, name="w")
    ids = np.array([[0, 6, 2], [2, 2, 5]])
    e = gf.nn.embedding_lookup(w, ids)
    assert e.name == "embedding_lookup/Identity:0"
    assert e.op.inputs[0].op.type == "GatherV2" and e.op.inputs[0].op.name == "embedding_lookup"
    assert e.shape.as_list() == [2, 3, 3]
    assert_same(run(e), table[ids])
    s = gf.nn.embedding_lookup(w, 4, name="one")
    assert s.shape.as_list() == [3] and s.name == "one/Identity:0"
    assert_same(run(s), table[4])


@pytest.mark.parametrize("strategy", ["mod", "div"])
@pytest.mark.parametrize("sizes", [(3, 3, 3), (4, 3, 3), (4, 4, 3)])
def test_sharded_lookup_matches_numpy(strategy, sizes):
    total = sum(sizes)
    full = rng.standard_normal((total, 2))
    n = len(sizes)
    if strategy == "mod":
        shards = [full[p::n] for p in range(n)]
    else:
        shards, start = [], 0
        for s in sizes:
            shards.append(full[start:start + s])
            start += s
    ps = [gf.constant(s) for s in shards]
    ids = rng.integers(0, total, size=(4, 5))
    e = gf.nn.embedding_lookup(ps, ids, partition_strategy=strategy)
    assert e.shape.as_list() == [4, 5, 2]
    assert_same(run(e), full[ids])
    grads = gf.gradients(gf.reduce_sum(e * 2.0), ps)
    assert all(isinstance(g, gf.IndexedSlices) for g in grads)
    dense = run([gf.convert_to_tensor(g) for g in grads])
    counts = np.bincount(ids.ravel(), minlength=total).astype(np.float64) * 2.0
    if strategy == "mod":
        want = [np.repeat(counts[p::n, None], 2, 1) for p in range(n)]
    else:
        cuts = np.cumsum([0, *sizes])
        want = [np.repeat(counts[a:b, None], 2, 1) for a, b in zip(cuts[:-1], cuts[1:])]
    for got, w in zip(dense, want):
        assert_same(got, w)


def test_max_norm_clips_each_embedding():
    table = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    e = gf.nn.embedding_lookup(gf.constant(table), [[0, 1], [2, 0]], max_norm=1.0)
    want = np.array([[[0.6, 0.8], [0.3, 0.4]], [[0.0, 0.0], [0.6, 0.8]]])
    np.testing.assert_allclose(run(e), want, rtol=1e-12)


def test_lookup_errors():
    w = gf.constant(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="partition strategy"):
        gf.nn.embedding_lookup(w, [0], partition_strategy="round_robin")
    with pytest.raises(ValueError, match="at least one"):
        gf.nn.embedding_lookup([], [0])
    with pytest.raises(TypeError, match="ids"):
        gf.nn.embedding_lookup(w, gf.constant([0.0]))
    with pytest.raises(gf.errors.InvalidArgumentError, match="not in"):
        run(gf.nn.embedding_lookup(w, [3]))


# --- IndexedSlices gradients -----------------------------------------------------------
def test_gradient_is_indexed_slices_with_rows_of_dy():
    w = gf.Variable(rng.standard_normal((6, 2)), name="w")
    ids = np.array([[1, 4], [1, 0], [5, 1]])
    e = gf.nn.embedding_lookup(w, ids)
    c = rng.standard_normal((3, 2, 2))
    (g,) = gf.gradients(gf.reduce_sum(e * c), w)
    assert isinstance(g, gf.IndexedSlices)
    assert g.dtype == gf.float64 and g.shape.as_list() == [6, 2]
    assert g.values.shape.as_list() == [6, 2] and g.indices.shape.as_list() == [6]
    v = run(g)
    assert isinstance(v, gf.IndexedSlicesValue)
    assert_same(v.indices, ids.reshape(-1).astype(np.int64).astype(v.indices.dtype))
    assert_same(v.values, c.reshape(6, 2))
    assert list(v.dense_shape) == [6, 2]
    # Nested fetches keep their structure.
    out = run({"g": [g], "n": gf.constant(1)})
    assert isinstance(out["g"][0], gf.IndexedSlicesValue)


def test_dense_conversion_matches_finite_differences():
    table = rng.standard_normal((5, 3))
    ids = np.array([0, 3, 3, 3, 1])
    p = gf.placeholder(gf.float64, [5, 3])
    y = gf.reduce_sum(gf.square(gf.nn.embedding_lookup(p, ids)) * np.arange(15.0).reshape(5, 3))
    (g,) = gf.gradients(y, p)
    assert isinstance(g, gf.IndexedSlices)
    dense = gf.convert_to_tensor(g)
    assert dense.op.type == "UnsortedSegmentSum" and dense.shape.as_list() == [5, 3]
    got = run(dense, {p: table})
    numeric = np.zeros_like(table)
    f = lambda t: float(run(y, {p: t}))  # noqa: E731
    for i in np.ndindex(*table.shape):
        d = np.zeros_like(table)
        d[i] = 1e-6
        numeric[i] = (f(table + d) - f(table - d)) / 2e-6
    np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-6)
    err = gf.test.compute_gradient_error(p, [5, 3], y, [], x_init_value=table)
    assert err < 1e-6


def test_sparse_gradients_concatenate_and_mixed_ones_become_dense():
    w = gf.Variable(np.ones((4, 2)), name="w")
    a = gf.nn.embedding_lookup(w, [0, 1])
    b = gf.nn.embedding_lookup(w, [1, 3, 3])
    (g,) = gf.gradients(gf.reduce_sum(a) + 2.0 * gf.reduce_sum(b), w)
    assert isinstance(g, gf.IndexedSlices)
    v = run(g)
    assert sorted(v.indices.tolist()) == [0, 1, 1, 3, 3]
    assert_same(run(gf.convert_to_tensor(g)), np.array([[1, 1], [3, 3], [0, 0], [4, 4.0]]))
    (d,) = gf.gradients(gf.reduce_sum(a) + gf.reduce_sum(w * w), w)
    assert isinstance(d, gf.Tensor)
    assert_same(run(d), np.array([[3, 3], [3, 3], [2, 2], [2, 2.0]]))


def test_only_axis0_gathers_are_sparse():
    x = gf.placeholder(gf.float64, [3, 4])
    (g,) = gf.gradients(gf.gather(x, [1, 2], axis=1), x)
    assert isinstance(g, gf.Tensor)
    (g0,) = gf.gradients(gf.gather(x, [[1, 2]]), x)
    assert isinstance(g0, gf.IndexedSlices)
    assert_same(run(gf.convert_to_tensor(g0), {x: np.zeros((3, 4))}),
                np.array([[0.0] * 4, [1.0] * 4, [1.0] * 4]))


# --- ops the sparse updates use --------------------------------------------------------
def test_unique_matches_numpy_first_occurrence_order():
    x = np.array([4, 1, 4, 9, 1, 1, 7])
    y, idx = gf.unique(x)
    yv, iv = run([y, idx])
    assert_same(yv, np.array([4, 1, 9, 7]))
    assert_same(iv, np.array([0, 1, 0, 2, 1, 1, 3], np.int32))
    y64, idx64 = gf.unique(gf.constant([2.5, 2.5]), out_idx=gf.int64)
    assert idx64.dtype == gf.int64 and y64.shape.as_list() == [None]


@pytest.mark.parametrize("op", ["add", "sub", "update"])
def test_scatter_ops_match_numpy_with_duplicates(op, backend):
    start = rng.standard_normal((5, 2))
    v = gf.Variable(start)
    idx = np.array([3, 0, 3])
    upd = rng.standard_normal((3, 2))
    out = getattr(gf, f"scatter_{op}")(v, idx, upd)
    want = start.copy()
    if op == "update":
        want[idx] = upd
    else:
        getattr(np, {"add": "add", "sub": "subtract"}[op]).at(want, idx, upd)
    with gf.Session(backend=backend) as s:
        s.run(v.initializer)
        assert_same(s.run(out), want)
        assert_same(s.run(v), want)
        with pytest.raises(gf.errors.InvalidArgumentError, match="not in"):
            s.run(getattr(gf, f"scatter_{op}")(v, [5], upd[:1]))
    with pytest.raises(ValueError, match="updates"):
        gf.scatter_add(v, [0, 1], np.zeros((3, 2)))


def _np_sparse(dense_update, state, lr_args, grad, idx):
    """TF's SparseApply* kernel: the dense formula row by row, in index order."""
    state = [s.copy() for s in state]
    for k, i in enumerate(idx):
        rows = dense_update([s[i:i + 1] for s in state], grad[k:k + 1], *lr_args)
        for s, r in zip(state, rows):
            s[i:i + 1] = r
    return state


@pytest.mark.parametrize("name", ["SparseApplyMomentum", "SparseApplyAdagrad",
                                  "SparseApplyRMSProp", "SparseApplyCenteredRMSProp"])
def test_sparse_apply_ops_match_numpy_row_by_row(name, backend):
    from graphflow.ops import training_ops

    nslots = len(lookup(name).ref_inputs)
    init = [rng.standard_normal((4, 3))] + [rng.uniform(0.5, 1.5, (4, 3))
                                            for _ in range(nslots - 1)]
    if name == "SparseApplyCenteredRMSProp":
        init[1] = rng.uniform(-0.2, 0.2, (4, 3))  # mg small enough for ms - mg^2 > 0
    vs = [gf.Variable(a) for a in init]
    grad = rng.standard_normal((4, 3))
    idx = np.array([2, 0, 2, 3])
    lr, mom, rho, eps = 0.1, 0.9, 0.8, 1e-3
    if name == "SparseApplyMomentum":
        t = training_ops.sparse_apply_momentum(*vs, lr, grad, idx, mom)

        def upd(s, g):
            acc = s[1] * mom + g
            return [s[0] - lr * acc, acc]
    elif name == "SparseApplyAdagrad":
        t = training_ops.sparse_apply_adagrad(*vs, lr, grad, idx)

        def upd(s, g):
            acc = s[1] + g * g
            return [s[0] - lr * g / np.sqrt(acc), acc]
    elif name == "SparseApplyRMSProp":
        t = training_ops.sparse_apply_rms_prop(*vs, lr, rho, mom, eps, grad, idx)

        def upd(s, g):
            ms = s[1] + (g * g - s[1]) * (1 - rho)
            m = s[2] * mom + lr * g / np.sqrt(ms + eps)
            return [s[0] - m, ms, m]
    else:
        t = training_ops.sparse_apply_centered_rms_prop(*vs, lr, rho, mom, eps, grad, idx)

        def upd(s, g):
            ms = s[2] + (g * g - s[2]) * (1 - rho)
            mg = s[1] + (g - s[1]) * (1 - rho)
            m = s[3] * mom + lr * g / np.sqrt(ms - mg * mg + eps)
            return [s[0] - m, mg, ms, m]
    want = _np_sparse(upd, init, (), grad, idx)
    with gf.Session(backend=backend) as s:
        s.run([v.initializer for v in vs])
        s.run(t)
        for got, w in zip(s.run(vs), want):
            np.testing.assert_allclose(got, w, rtol=1e-12)
    with pytest.raises(ValueError, match="grad must have shape"):
        training_ops.sparse_apply_adagrad(vs[0], vs[1], lr, grad[:3], idx)


# --- optimizers ------------------------------------------------------------------------
OPTIMIZERS = {
    "sgd": lambda: gf.train.GradientDescentOptimizer(0.5),
    "momentum": lambda: gf.train.MomentumOptimizer(0.1, 0.9),
    "nesterov": lambda: gf.train.MomentumOptimizer(0.1, 0.9, use_nesterov=True),
    "adagrad": lambda: gf.train.AdagradOptimizer(0.3),
    "rmsprop": lambda: gf.train.RMSPropOptimizer(0.05, momentum=0.5),
    "rmsprop_centered": lambda: gf.train.RMSPropOptimizer(0.05, momentum=0.5,
                                                          centered=True),
    "adam": lambda: gf.train.AdamOptimizer(0.1),
}
SLOTS = {"momentum": ["momentum"], "nesterov": ["momentum"], "adagrad": ["accumulator"],
         "rmsprop": ["rms", "momentum"], "rmsprop_centered": ["rms", "mg", "momentum"],
         "adam": ["m", "v"], "sgd": []}
TABLE = rng.standard_normal((6, 3))
C = rng.standard_normal((8, 3))


def _train(opt_name, ids_per_step, sparse, backend):
    """Trains a pure-embedding model; returns the table and slots after each step."""
    g = gf.Graph()
    with g.as_default():
        w = gf.Variable(TABLE, name="table")
        ids = gf.placeholder(gf.int32, [8])
        e = gf.nn.embedding_lookup(w, ids)
        loss = gf.reduce_sum(gf.square(e - C)) * 0.5
        opt = OPTIMIZERS[opt_name]()
        ((grad, var),) = opt.compute_gradients(loss, [w])
        assert isinstance(grad, gf.IndexedSlices)
        if not sparse:
            grad = gf.convert_to_tensor(grad)
        train = opt.apply_gradients([(grad, var)])
        slots = [opt.get_slot(w, n) for n in SLOTS[opt_name]]
        out = []
        with gf.Session(backend=backend) as s:
            s.run(gf.global_variables_initializer())
            for step_ids in ids_per_step:
                s.run(train, {ids: step_ids})
                out.append(s.run([w, *slots]))
    return out


ALL_ROWS = [np.array([0, 1, 2, 3, 4, 5, 1, 1]), np.array([5, 4, 3, 3, 2, 1, 0, 0]),
            np.array([2, 2, 2, 0, 1, 3, 4, 5])]
SOME_ROWS = [np.array([0, 1, 1, 3, 3, 3, 1, 0]), np.array([4, 4, 4, 4, 4, 4, 4, 4]),
             np.array([0, 1, 2, 2, 2, 0, 1, 0])]


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_sparse_updates_equal_dense_updates_when_every_row_is_used(opt_name, backend):
    sparse = _train(opt_name, ALL_ROWS, True, backend)
    dense = _train(opt_name, ALL_ROWS, False, backend)
    for got, want in zip(sparse, dense):
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("opt_name", ["sgd", "adagrad", "adam"])
def test_sparse_updates_equal_dense_updates_with_unused_rows(opt_name):
    # Zero gradient rows change nothing for these, so skipping them is exact (for
    # Adam because TF1's sparse Adam decays m and v densely).
    sparse = _train(opt_name, SOME_ROWS, True, "reference")
    dense = _train(opt_name, SOME_ROWS, False, "reference")
    for got, want in zip(sparse, dense):
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("opt_name", ["momentum", "rmsprop"])
def test_lazy_sparse_updates_leave_unused_rows_alone(opt_name):
    # TF1's SparseApplyMomentum/RMSProp touch only the gradient's rows (slots included).
    hist = _train(opt_name, SOME_ROWS, True, "reference")
    prev = [TABLE] + [None] * len(SLOTS[opt_name])
    for step, (ids, vals) in enumerate(zip(SOME_ROWS, hist)):
        unused = sorted(set(range(6)) - set(ids.tolist()))
        if step > 0:
            for a, b in zip(vals, prev):
                assert_same(a[unused], b[unused])
        prev = vals
    assert_same(hist[-1][0][5], TABLE[5])


def test_gradient_descent_accumulates_duplicate_ids_with_one_scatter_sub():
    w = gf.Variable(np.zeros((3, 2)), name="w")
    e = gf.nn.embedding_lookup(w, [1, 1, 1, 2])
    train = gf.train.GradientDescentOptimizer(0.5).minimize(gf.reduce_sum(e))
    types = [op.type for op in gf.get_default_graph().get_operations()]
    assert "ScatterSub" in types and "UnsortedSegmentSum" not in types
    with gf.Session() as s:
        s.run(w.initializer)
        s.run(train)
        assert_same(s.run(w), np.array([[0, 0], [-1.5, -1.5], [-0.5, -0.5]]))


def _ancestors(ops):
    seen, stack = set(), list(ops)
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return seen


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_no_table_sized_gradient_feeds_the_update(opt_name):
    vocab, dim = 1000, 4
    w = gf.Variable(gf.zeros([vocab, dim]), name="table")
    ids = gf.placeholder(gf.int32, [None])
    labels = gf.placeholder(gf.float32, [None, dim])
    loss = gf.reduce_mean(gf.square(gf.nn.embedding_lookup(w, ids) - labels))
    train = OPTIMIZERS[opt_name]().minimize(loss)
    for op in _ancestors([train]):
        if op.type == "UnsortedSegmentSum":
            # Only the summing of duplicate rows: as many rows as distinct ids.
            assert op.outputs[0].shape.as_list()[0] is None, op.name
        assert op.type not in ("Fill", "ZerosLike", "Zeros"), op.name
        if op.name.startswith("gradients"):
            for t in op.outputs:
                assert t.shape.as_list() != [vocab, dim], (op.name, op.type)
        if opt_name != "adam":  # TF1's sparse Adam decays m and v densely
            for t in op.outputs:
                if t.shape.as_list() == [vocab, dim]:
                    assert op.type == "VariableV2" or (
                        op.type == "Identity" and op.name.endswith("/read")) or (
                        op.type.startswith(("SparseApply", "Scatter"))), (op.name, op.type)
    xs = rng.integers(0, vocab, 16)
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        before = s.run(loss, {ids: xs, labels: np.ones((16, dim))})
        for _ in range(5):
            s.run(train, {ids: xs, labels: np.ones((16, dim))})
        assert s.run(loss, {ids: xs, labels: np.ones((16, dim))}) < before


def test_constraint_on_a_sparse_variable_is_an_error():
    w = gf.Variable(np.ones((3, 2)), constraint=lambda t: t)
    loss = gf.reduce_sum(gf.nn.embedding_lookup(w, [0]))
    with pytest.raises(RuntimeError, match="constraint"):
        gf.train.GradientDescentOptimizer(0.1).minimize(loss)


def test_gate_graph_and_apply_gradients_keep_indexed_slices():
    w = gf.Variable(np.ones((3, 2)), name="w")
    b = gf.Variable(np.ones(2), name="b")
    loss = gf.reduce_sum(gf.nn.embedding_lookup(w, [0, 2]) * b)
    opt = gf.train.GradientDescentOptimizer(1.0)
    gv = opt.compute_gradients(loss, gate_gradients=opt.GATE_GRAPH)
    assert isinstance(gv[0][0], gf.IndexedSlices) and isinstance(gv[1][0], gf.Tensor)
    train = opt.apply_gradients(gv)
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        s.run(train)
        assert_same(s.run(w), np.array([[0, 0], [1, 1], [0, 0.0]]))
        assert_same(s.run(b), np.array([-1, -1.0]))
