"""Reduction fusion groups as generated Numba loops (kernels/cpu/reduce.py) vs the reference.

Each test compiles a plan, replaces its reduction steps by ReductionKernels and runs it
next to the reference PlanExecutable on the same feeds. Tolerances: the kernels
accumulate float32 in float64 where NumPy sums float32 pairwise (or row by row) in
float32, so float32 results agree to rtol 1e-5 / atol 3e-5 (inputs of magnitude <= ~4,
rows <= ~100); float64 to rtol 1e-12 / atol 1e-12. NaN/inf positions must match exactly.

Numba compile time is the cost here: one kernel cache dir for the module, few distinct
graph structures (a kernel's source depends on the group's ops, not on shapes or on
which axes form its rows or columns), small example counts.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import graphflow as gf
from graphflow import compiler
from graphflow.compiler.fusion import REDUCTION_GROUP
from graphflow.framework import errors
from graphflow.kernels.cpu import backend, reduce
from graphflow.runtime.reference import PlanExecutable, RunState

TOL = {np.dtype(np.float32): (1e-5, 3e-5), np.dtype(np.float64): (1e-12, 1e-12)}


# One kernel cache per module: its kernels compile once, away from the user's cache.
pytestmark = pytest.mark.usefixtures("module_kernel_cache")


@pytest.fixture(autouse=True)
def _compile_every_loop(monkeypatch):
    monkeypatch.setattr(backend, "JIT_MIN_SIZE", 0)


def lowered(fetches, feeds, min_size=0):
    """(plan, compiled-step executable, reference executable, the ReductionKernels)."""
    plan = compiler.explain(fetches, list(feeds)).plan
    exe, ref = PlanExecutable(plan), PlanExecutable(plan)
    kernels = []
    for k, step in enumerate(plan.steps):
        if step.pattern == REDUCTION_GROUP:
            rk = reduce.lower_reduction(step, exe._kernels[k], True, min_size)
            if rk is not None:
                exe._kernels[k] = rk
                kernels.append(rk)
    return plan, exe, ref, kernels


def run_both(exe, ref, feeds, variables=None):
    out = []
    for e in (exe, ref):
        state = RunState()
        state.variables.update(variables or {})
        with np.errstate(all="ignore"):
            out.append(e.run(feeds, state))
    return out


def assert_match(got, want):
    for a, b in zip(got, want):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, a.shape, b.dtype, b.shape)
        if a.dtype.kind in "biu":
            np.testing.assert_array_equal(a, b)
            continue
        rtol, atol = TOL[a.dtype]
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_array_equal(np.isposinf(a), np.isposinf(b))
        np.testing.assert_array_equal(np.isneginf(a), np.isneginf(b))
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)


def check(fetches, feeds, n_kernels=None, variables=None):
    """Runs both ways, compares; returns the ReductionKernels."""
    fetches = fetches if isinstance(fetches, list) else [fetches]
    _, exe, ref, kernels = lowered(fetches, feeds)
    if n_kernels is not None:
        assert len(kernels) == n_kernels
    got, want = run_both(exe, ref, feeds, variables)
    assert_match(got, want)
    return kernels


def modes(kernel):
    """The loop modes a kernel has compiled: "rows", "cols" or (rank, axes)."""
    return {key[2] for key in kernel._fns}


def data(shape, dtype=np.float32, seed=0, lo=-2.0, hi=2.0):
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(dtype)


def test_rows_with_prologue_and_epilogue():
    x = gf.placeholder(gf.float32, [None, None])
    y = gf.placeholder(gf.float32, [None, None])
    z = gf.sqrt(gf.reduce_sum(gf.square(x - y), axis=1) + 1)
    _, exe, ref, (k,) = lowered([z], [x, y])
    assert [n.type for n in k.step.nodes] == ["Sub", "Square", "Sum", "Add", "Sqrt"]
    # Rows shorter than the lanes, exactly one block, blocks plus a tail, one long row.
    for shape in [(5, 3), (4, 32), (3, 97), (1, 300), (6, 1)]:
        xs, ys = data(shape, seed=1), data(shape, seed=2)
        xs.flat[::7] = np.resize([np.nan, np.inf, -np.inf, 0.0], xs.flat[::7].size)
        assert_match(*run_both(exe, ref, {x: xs, y: ys}))
    assert modes(k) == {"rows"} and len(k.dispatchers) == 1


def test_long_float32_rows_are_accurate():
    x = gf.placeholder(gf.float32, [None, None])
    y = gf.placeholder(gf.float32, [None, None])
    z = gf.sqrt(gf.reduce_sum(gf.square(x - y), axis=1) + 1)  # the same kernel as above
    xs, ys = data((8, 20000), seed=3), data((8, 20000), seed=4)
    _, exe, ref, _ = lowered([z], [x, y])
    (got,), (want,) = run_both(exe, ref, {x: xs, y: ys})
    exact = np.sqrt(np.sum(np.square(xs.astype(np.float64) - ys), axis=1) + 1)
    np.testing.assert_allclose(got, exact, rtol=1e-7)
    np.testing.assert_allclose(want, exact, rtol=1e-5)


def test_columns_and_inner_blocks():
    x = gf.placeholder(gf.float32)
    y = gf.placeholder(gf.float32)
    feeds = {}
    for axis, shape in [(0, (50, 7)), (0, (3, 40)), (1, (4, 6, 5)), ([1, 2], (3, 4, 5, 2)),
                        (0, (9, 1, 6))]:
        z = gf.reduce_sum(x * y, axis=axis)
        feeds = {x: data(shape, seed=5), y: data(shape, seed=6)}
        (k,) = check(z, feeds, n_kernels=1)
        assert modes(k) == {"cols"}


@pytest.mark.parametrize("keepdims", [False, True])
def test_all_axes_max_min_propagate_nan(keepdims):
    x = gf.placeholder(gf.float32, [None, None])
    y = gf.placeholder(gf.float32, [None, None])
    fetches = [gf.reduce_max(x - y, keepdims=keepdims), gf.reduce_min(x - y, keepdims=keepdims)]
    _, exe, ref, kernels = lowered(fetches, [x, y])
    assert len(kernels) == 2
    base = data((9, 11), seed=7)
    ys = np.zeros_like(base)
    for where in [None, 0, 50, 98]:  # first element, inside a lane block, in the tail
        xs = base.copy()
        if where is not None:
            xs.flat[where] = np.nan
        xs.flat[3], xs.flat[60] = np.inf, -np.inf
        got, want = run_both(exe, ref, {x: xs, y: ys})
        assert_match(got, want)
        assert np.isnan(got[0]).all() == (where is not None)
    allneg = np.full((2, 3), -np.inf, np.float32)
    assert_match(*run_both(exe, ref, {x: allneg, y: np.zeros_like(allneg)}))


def test_mean_negative_axis_and_prod_float64():
    x = gf.placeholder(gf.float64, [None, None, None])
    fetches = [gf.reduce_mean(x, axis=-1), gf.reduce_prod(x, axis=-3, keepdims=True)]
    _, exe, ref, kernels = lowered(fetches, [x])
    assert len(kernels) == 2
    for shape in [(2, 3, 40), (5, 1, 3), (1, 1, 1)]:
        xs = data(shape, np.float64, seed=8, lo=0.5, hi=1.5)
        xs.flat[-1] = np.inf
        assert_match(*run_both(exe, ref, {x: xs}))


def test_prologue_values_written_and_broadcast_inputs():
    # Layer-norm style rows: (x - mean) is both fetched and reduced; the mean is [N, 1].
    x = gf.placeholder(gf.float32, [None, None])
    m = gf.placeholder(gf.float32, [None, 1])
    d = x - m
    var = gf.reduce_mean(gf.square(d), axis=1, keepdims=True)
    xs = data((6, 37), seed=9)
    ms = xs.mean(axis=1, keepdims=True)
    (k,) = check([d, var], {x: xs, m: ms}, n_kernels=1)
    assert modes(k) == {"rows"} and len(k.group.outputs) == 2
    # Columns with a bias broadcast along the reduced rows.
    b = gf.placeholder(gf.float32, [None])
    col = gf.reduce_sum(gf.square(x - b), axis=0)
    (k,) = check(col, {x: xs, b: data(37, seed=10)}, n_kernels=1)
    assert modes(k) == {"cols"}


def test_rank_n_layouts_and_epilogue_inputs():
    x = gf.placeholder(gf.float32, [None, None, None])
    w = gf.placeholder(gf.float32, [None, None])
    z = gf.placeholder(gf.float32, [None])
    outer = gf.reduce_sum(x * 2.0, axis=[0, 2])  # reduced, kept, reduced
    (k,) = check(outer, {x: data((3, 4, 5), seed=11)}, n_kernels=1)
    assert modes(k) == {(3, (0, 2))}
    # w broadcasts along dim 0 of the kept block: its strides do not collapse.
    inner = gf.reduce_sum(x * w, axis=2) + z
    feeds = {x: data((2, 3, 4), seed=12), w: data((3, 4), seed=13), z: data(3, seed=14)}
    (k,) = check(inner, feeds, n_kernels=1)
    assert modes(k) == {(3, (2,))}
    # Contiguous inputs take the 3-D loop, with the epilogue input read per row.
    feeds[w] = data((2, 3, 4), seed=15)[0]
    feeds[x] = data((1, 3, 4), seed=16)
    check(inner, feeds, n_kernels=1)


def test_bias_add_grad_nhwc_and_nchw():
    b = gf.Variable(np.zeros(3, np.float32))
    x2 = gf.placeholder(gf.float32, [None, 3])
    x4 = gf.placeholder(gf.float32, [None, 3, 4, 5])
    g2 = gf.gradients(gf.nn.bias_add(x2, b), [b], grad_ys=[gf.square(x2)])[0]
    g4 = gf.gradients(gf.nn.bias_add(x4, b, data_format="NCHW"), [b],
                      grad_ys=[gf.square(x4)])[0]
    feeds = {x2: data((40, 3), seed=17), x4: data((2, 3, 4, 5), seed=18)}
    kernels = check([g2, g4], feeds, n_kernels=2)
    assert {m for k in kernels for m in modes(k)} == {"cols", (4, (0, 2, 3))}


def test_any_all():
    x = gf.placeholder(gf.float32, [None, None])
    x3 = gf.placeholder(gf.float32, [None, None, None])
    fetches = [gf.reduce_any(x > 1.5, axis=1), gf.reduce_all(x3 > -1.9, axis=[0, 2])]
    kernels = check(fetches, {x: data((45, 33), seed=19), x3: data((4, 5, 6), seed=20)},
                    n_kernels=2)
    assert [modes(k) for k in kernels] == [{"rows"}, {(3, (0, 2))}]


def test_variable_inputs_are_read():
    v = gf.Variable(np.ones((4, 5), np.float32), name="v")
    x = gf.placeholder(gf.float32, [None, 5])
    z = gf.reduce_sum(v * x, axis=1)
    check(z, {x: data((4, 5), seed=20)}, n_kernels=1,
          variables={"v": data((4, 5), seed=21)})


@given(op=st.sampled_from(["Sum", "Max"]), dims=st.lists(st.sampled_from([1, 2, 3, 5, 33]),
                                                         min_size=1, max_size=3),
       axes=st.one_of(st.none(), st.lists(st.integers(-3, 2), min_size=1, max_size=3)),
       keepdims=st.booleans(), special=st.sampled_from([None, np.nan, np.inf, -np.inf]),
       seed=st.integers(0, 2**16))
def test_random_shapes_and_axes(op, dims, axes, keepdims, special, seed):
    gf.reset_default_graph()
    rank = len(dims)
    if axes is not None:
        axes = sorted({a % rank for a in axes if -rank <= a < rank}) or None
        if axes is not None and seed % 2:
            axes = [a - rank for a in axes]  # negative spelling
    x = gf.placeholder(gf.float32, [None] * rank)
    y = gf.placeholder(gf.float32, [None] * rank)
    fn = gf.reduce_sum if op == "Sum" else gf.reduce_max
    z = fn(x * y + 1.5, axis=axes, keepdims=keepdims) * 0.5
    xs, ys = data(dims, seed=seed), data(dims, seed=seed + 1)
    if special is not None:
        xs.flat[seed % xs.size] = special
    check(z, {x: xs, y: ys}, n_kernels=1)


def test_fallbacks_match_the_reference():
    x = gf.placeholder(gf.float32)
    y = gf.placeholder(gf.float32)
    fetches = [gf.reduce_sum(x * y, axis=1), gf.reduce_max(x + y, axis=1),
               gf.reduce_mean(x - y, axis=1)]
    _, exe, ref, kernels = lowered(fetches, [x, y])
    assert len(kernels) == 3
    # Empty loops: Sum 0, Max -inf, Mean NaN, as NumPy gives them.
    for shape in [(0, 3), (3, 0), (2, 0, 4)]:
        e = np.zeros(shape, np.float32)
        assert_match(*run_both(exe, ref, {x: e, y: e}))
    # A wrong-dtype feed (the reference computes in float64 and casts).
    xs = data((3, 4), np.float64, seed=22)
    assert_match(*run_both(exe, ref, {x: xs, y: xs}))
    assert not any(k.dispatchers for k in kernels)
    # Shapes that do not broadcast, an axis beyond the rank: the reference's errors.
    for a, b in [(data((3, 4)), data((2, 4))), (data(4), data(4))]:
        msgs = []
        for e in (exe, ref):
            with pytest.raises(errors.InvalidArgumentError) as info:
                run_both(e, e, {x: a, y: b})
            msgs.append(str(info.value))
        assert msgs[0] == msgs[1]
    # Loops under min_size run the reference without compiling.
    _, small, ref, (k, *_) = lowered(fetches, [x, y], min_size=1000)
    assert_match(*run_both(small, ref, {x: data((3, 4)), y: data((3, 4))}))
    assert not k.dispatchers


def test_groups_that_do_not_lower():
    t = gf.placeholder(gf.float32, [None, 4])
    fetches = [gf.reduce_sum(gf.transpose(t) * 2.0, axis=0),  # an injective prologue
               gf.argmax(t * 2.0, axis=1),  # not a reducer
               gf.reduce_sum(gf.cast(t, gf.int32) * 2, axis=1)]  # int32 accumulation
    plan, _, _, kernels = lowered(fetches, [t])
    assert sum(s.pattern == REDUCTION_GROUP for s in plan.steps) == 3 and not kernels


def test_large_rows_split_across_threads(monkeypatch):
    monkeypatch.setattr(backend, "PARALLEL_MIN_SIZE", 8)
    monkeypatch.setenv("GRAPHFLOW_NUM_THREADS", "3")
    x = gf.placeholder(gf.float32, [None, None])
    y = gf.placeholder(gf.float32, [None, None])
    z = gf.sqrt(gf.reduce_sum(gf.square(x - y), axis=1) + 1)  # the first test's kernel
    calls = []
    real = reduce._run_chunks
    monkeypatch.setattr(reduce, "_run_chunks",
                        lambda fn, v, n, e, chunks: calls.append(chunks) or real(fn, v, n, e,
                                                                                 chunks))
    check(z, {x: data((7, 40), seed=23), y: data((7, 40), seed=24)}, n_kernels=1)
    assert calls == [[(0, 3), (3, 6), (6, 7)]]


def test_session_cpu_backend_matches_reference():
    # Through Session(backend="cpu"): once the backend lowers reduction steps, it uses
    # this module (CpuExecutable.reduced); until then this checks the reference path.
    x = gf.placeholder(gf.float32, [None, None])
    y = gf.placeholder(gf.float32, [None, None])
    z = gf.sqrt(gf.reduce_sum(gf.square(x - y), axis=1) + 1)
    feeds = {x: data((5, 40), seed=25), y: data((5, 40), seed=26)}
    out = []
    for be in ("cpu", "reference"):
        with gf.Session(backend=be) as s:
            out.append([s.run(z, feeds)])
            exe = next(iter(s._cache.values()))
            if be == "cpu" and hasattr(exe, "reduced"):
                assert exe.reduced and exe.reduced[0].dispatchers
    assert_match(*out)


# --- a reduction in a library op's epilogue --------------------------------------------------
def anchored(fetches, feeds, min_size=0):
    """(CpuExecutable with its kernels built, reference executable, its MatMul steps'
    AnchorKernels) of ``fetches``."""
    plan = compiler.explain(fetches, list(feeds)).plan
    exe = backend.CpuExecutable(plan, min_size=min_size, warmup=0)
    return exe, PlanExecutable(plan), [k for k in exe.anchored if k.anchor.type == "MatMul"]


def _masked_product(dtype=gf.float32):
    a = gf.placeholder(dtype, [None, 6])
    w = gf.placeholder(dtype, [6, 9])
    mask = gf.placeholder(gf.bool, [None, 9])
    m = gf.matmul(a, w)
    return a, w, mask, gf.where_v2(mask, m, gf.zeros_like(m))  # relu's gradient form


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_reduction_joins_a_matmuls_epilogue(dtype):
    # A bias gradient: the product, the select and the column sum are one step; one pass
    # stores the selected values (read by others) and sums them.
    a, w, mask, dz = _masked_product(gf.as_dtype(dtype))
    db = gf.reduce_sum(dz, axis=0)
    exe, ref, (ak,) = anchored([dz, db], [a, w, mask])
    assert [n.type for n in ak.step.nodes] == ["MatMul", "SelectV2", "Sum"]
    assert isinstance(ak.epilogue, reduce.ReductionKernel) and not exe.reduced
    rng = np.random.default_rng(30)
    for rows in (1, 7, 40):
        av = data((rows, 6), dtype, seed=rows)
        av[0, :2] = [np.nan, np.inf]  # a NaN row and an inf column reach the sums
        feeds = {a: av, w: data((6, 9), dtype, seed=31), mask: rng.random((rows, 9)) < 0.6}
        assert_match(*run_both(exe, ref, feeds))
    assert "cols" in modes(ak.epilogue)  # (one row: the reduced dim is 1, "rows")


def test_reduction_epilogue_variants():
    a, w, mask, dz = _masked_product()
    fetches = [gf.reduce_mean(dz, axis=0, keepdims=True) * 2.0,  # an epilogue after it
               gf.reduce_max(dz, axis=1)]  # rows; the second reduction is a group of its own
    exe, ref, (ak,) = anchored(fetches, [a, w, mask])
    types = [n.type for n in ak.step.nodes]
    assert types[:3] == ["MatMul", "SelectV2", "Mean"] and types[3] == "Mul"
    assert isinstance(ak.epilogue, reduce.ReductionKernel) and len(exe.reduced) == 1
    feeds = {a: data((33, 6), seed=32), w: data((6, 9), seed=33),
             mask: np.random.default_rng(34).random((33, 9)) < 0.5}
    assert_match(*run_both(exe, ref, feeds))


def test_reduction_epilogue_under_min_size_runs_the_reference():
    a, w, mask, dz = _masked_product()
    db = gf.reduce_sum(dz, axis=0)
    exe, ref, (ak,) = anchored([db, dz], [a, w, mask], min_size=1 << 20)
    feeds = {a: data((5, 6), seed=35), w: data((6, 9), seed=36),
             mask: np.ones((5, 9), bool)}
    assert_match(*run_both(exe, ref, feeds))
    assert not ak.epilogue.dispatchers  # nothing compiled: the reference ran


def test_a_later_op_reads_only_the_reduction_in_the_group():
    # After the sum, an op reading the loop's values (the select's, the product's) stays
    # out of the group: the epilogue after a reduction reads only the reduced values. An
    # op before it (the Mul) is the reduction's prologue, stored for the Add.
    a, w, mask, dz = _masked_product()
    db = gf.reduce_sum(dz, axis=0)
    late = dz * 3.0 + db
    plan = compiler.explain([late], [a, w, mask]).plan
    step = next(s for s in plan.steps if s.nodes[0].type == "MatMul")
    assert [n.type for n in step.nodes] == ["MatMul", "SelectV2", "Mul", "Sum"]
    exe, ref, (ak,) = anchored([late], [a, w, mask])
    assert isinstance(ak.epilogue, reduce.ReductionKernel)
    feeds = {a: data((12, 6), seed=37), w: data((6, 9), seed=38),
             mask: np.random.default_rng(39).random((12, 9)) < 0.5}
    assert_match(*run_both(exe, ref, feeds))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_relu_training_with_bias_gradients_in_matmul_epilogues(dtype):
    # A two-layer relu net trained by SGD: each hidden layer's bias gradient is summed in
    # the epilogue of the product that makes its activation gradient.
    rng = np.random.default_rng(40)
    x = gf.placeholder(dtype, [None, 12])
    w1 = gf.Variable((rng.standard_normal((12, 16)) * 0.4).astype(dtype))
    b1 = gf.Variable(np.full(16, 0.1, dtype))
    w2 = gf.Variable((rng.standard_normal((16, 16)) * 0.4).astype(dtype))
    b2 = gf.Variable(np.full(16, 0.1, dtype))
    w3 = gf.Variable((rng.standard_normal((16, 3)) * 0.4).astype(dtype))
    h = gf.nn.relu(gf.matmul(x, w1) + b1)
    h = gf.nn.relu(gf.matmul(h, w2) + b2)
    loss = gf.reduce_mean(gf.square(gf.matmul(h, w3)))
    train = gf.train.GradientDescentOptimizer(0.05).minimize(loss)
    xs = rng.standard_normal((24, 12)).astype(dtype)
    results = {}
    for be in ("cpu", "reference"):
        with gf.Session(backend=be) as s:
            s.run(gf.global_variables_initializer())
            results[be] = [s.run([train, loss], {x: xs})[1] for _ in range(3)]
            results[be] += s.run([w1, b1, w2, b2, w3])
            if be == "cpu":
                exe = next(e for e in s._cache.values() if getattr(e, "updates", None))
                summed = sorted(tuple(n.type for n in ak.step.nodes) for ak in exe.anchored
                                if isinstance(ak.epilogue, reduce.ReductionKernel))
                # Both bias gradients, and the loss's mean of the last product squared.
                assert summed == [("MatMul", "SelectV2", "Sum")] * 2 + [
                    ("MatMul", "Square", "Mean")], summed
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for got, want in zip(results["cpu"], results["reference"]):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_a_convolution_keeps_its_store_epilogue_before_a_reduction():
    # Global average pooling after conv + bias + relu: the conv applies bias and relu as
    # it stores, and the mean reads what it stored (a reduction joining the conv's group
    # would cost that store epilogue a pass).
    rng = np.random.default_rng(41)
    x = gf.placeholder(gf.float32, [None, 6, 6, 16])
    f = gf.constant((rng.standard_normal((3, 3, 16, 16)) * 0.3).astype(np.float32))
    b = gf.constant(np.full(16, 0.1, np.float32))
    h = gf.nn.relu(gf.nn.bias_add(gf.nn.conv2d(x, f, [1, 1, 1, 1], "SAME"), b))
    gap = gf.reduce_mean(h, axis=[1, 2])
    plan = compiler.explain([gap], [x]).plan
    exe = backend.CpuExecutable(plan, min_size=0, warmup=0)
    (conv,) = exe.anchored
    assert [n.type for n in conv.step.nodes] == ["Conv2D", "BiasAdd", "Relu"]
    assert conv.store_epilogue is not None and len(exe.reduced) == 1
    feeds = {x: data((3, 6, 6, 16), seed=42)}
    assert_match(*run_both(exe, PlanExecutable(plan), feeds))


def test_a_reduction_joins_a_batched_products_epilogue():
    a = gf.placeholder(gf.float32, [None, 5, 6])
    b = gf.placeholder(gf.float32, [None, 6, 9])
    p = gf.matmul(a, b)
    total = gf.reduce_sum(gf.tanh(p), axis=1) * 0.5
    plan = compiler.explain([total], [a, b]).plan
    step = next(s for s in plan.steps if s.nodes[0].type == "BatchMatMulV2")
    assert [n.type for n in step.nodes] == ["BatchMatMulV2", "Tanh", "Sum", "Mul"]
    exe, ref, _ = anchored([total], [a, b])
    feeds = {a: data((3, 5, 6), seed=43), b: data((3, 6, 9), seed=44)}
    assert_match(*run_both(exe, ref, feeds))
