"""The CPU backend's steady-state path: kernels repeating their last call (memo.py).

A training step's products, their epilogues and reductions remember their last
compiled call and repeat it in place while their inputs are the same arrays (or
arrays of the same shape, dtype and strides). These tests train on the CPU
backend and on the reference with new, reused and in-place-modified feeds,
batch sizes that change, variables assigned between steps, and fetched
intermediates, and compare everything.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_threads
from hypothesis import given, settings
from hypothesis import strategies as st

import graphflow as gf
from graphflow.kernels.cpu import backend, reduce
from graphflow.kernels.cpu.memo import Memo

pytestmark = pytest.mark.usefixtures("module_kernel_cache")

# Every loop here has at least backend.JIT_MIN_SIZE (4096) elements: compiled kernels.
BATCH, N_IN, HIDDEN, N_OUT = 64, 32, 96, 4


def _model(dtype: type, fetch_hidden: bool = False, hidden: int = HIDDEN) -> tuple:
    rng = np.random.default_rng(7)
    g = gf.Graph()
    with g.as_default():
        x = gf.placeholder(dtype, [None, N_IN], name="x")
        y = gf.placeholder(gf.int64, [None], name="y")
        w1 = gf.Variable((rng.standard_normal((N_IN, hidden)) * 0.3).astype(dtype), name="w1")
        b1 = gf.Variable(np.full(hidden, 0.05, dtype), name="b1")
        w2 = gf.Variable((rng.standard_normal((hidden, hidden)) * 0.2).astype(dtype),
                         name="w2")
        b2 = gf.Variable(np.full(hidden, 0.05, dtype), name="b2")
        w3 = gf.Variable((rng.standard_normal((hidden, N_OUT)) * 0.2).astype(dtype), name="w3")
        b3 = gf.Variable(np.zeros(N_OUT, dtype), name="b3")
        h1 = gf.nn.relu(gf.matmul(x, w1) + b1)
        h2 = gf.nn.relu(gf.matmul(h1, w2) + b2)
        logits = gf.matmul(h2, w3) + b3
        loss = gf.reduce_mean(
            gf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        train = gf.train.AdamOptimizer(0.01).minimize(loss)
        init = gf.global_variables_initializer()
        fetches = [train, loss, h1] if fetch_hidden else [train, loss]
    return g, x, y, fetches, init, [w1, b1, w2, b2, w3, b3]


def _batches(dtype: type, sizes: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(8)
    return [(rng.standard_normal((n, N_IN)).astype(dtype), rng.integers(0, N_OUT, n))
            for n in sizes]


def _train(backend_name: str, dtype: type, feeds: str, sizes: list[int],
           hidden: int = HIDDEN) -> tuple:
    """Losses and final weights of one step per batch; ``feeds``: "new" (a new array
    per step), "inplace" (one array, overwritten with each batch) or "same" (one
    array object every step)."""
    g, x, y, fetches, init, weights = _model(dtype, hidden=hidden)
    data = _batches(dtype, sizes)
    losses = []
    with gf.Session(graph=g, backend=backend_name) as s:
        s.run(init)
        buf_x, buf_y = data[0][0].copy(), data[0][1].copy()
        for xs, ys in data:
            if feeds == "inplace" and xs.shape == buf_x.shape:
                buf_x[...], buf_y[...] = xs, ys
                xs, ys = buf_x, buf_y
            elif feeds == "same":
                xs, ys = buf_x, buf_y
            losses.append(s.run(fetches, {x: xs, y: ys})[1])
        final = s.run(weights)
        exe = next((e for e in s._cache.values() if getattr(e, "anchored", None)), None)
    return losses, final, exe


def _memos(exe: backend.CpuExecutable) -> list[str]:
    """The ops of each kernel that holds a memo."""
    out = []
    for k in exe._kernels:
        if getattr(k, "_memo", None) is not None:
            out.append(",".join(n.type for n in k.step.nodes))
    return sorted(out)


def _segments(exe: backend.CpuExecutable) -> list[tuple[list[str], int]]:
    """Per group of memos' calls in a segment: the first op of each of its steps, and
    its repeats."""
    out = []
    for _, run in sorted(exe._segments.values(), key=lambda e: e[0]):
        for group in run.__self__.groups or []:
            out.append(([k.step.nodes[0].type for k in group.kernels], group.repeats))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("feeds", ["new", "inplace", "same"])
def test_training_steps_match_the_reference(dtype, feeds):
    sizes = [BATCH] * 5
    got, got_w, exe = _train("cpu", dtype, feeds, sizes)
    want, want_w, _ = _train("reference", dtype, feeds, sizes)
    # float32: Adam divides by the root of the squared gradients' average, so a last-bit
    # difference in a near-zero gradient moves its weight by up to ~lr * 1e-2.
    tol = 1e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    for a, b in zip(got_w, want_w):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    # The products with their epilogues (bias gradients among them) repeat their calls.
    memos = _memos(exe)
    assert memos.count("MatMul,Add,Relu,Greater") == 2, memos
    assert memos.count("MatMul,SelectV2,Sum") == 2, memos
    assert "MatMul" in memos, memos
    assert "ApplyAdam" in memos, memos  # the optimizer's updates, bound to their arrays
    # Once every kernel has its memo, the products and the loss run as their memos'
    # calls alone, a new batch only rebinding them (the last layer's small bias add,
    # NumPy's, copied into the memo's arrays; the fetched mean loss a new array each
    # step, the losses above compared after all steps ran).
    segments = _segments(exe)
    assert [ops for ops, _ in segments] == [
        ["MatMul"] * 3 + ["_SoftmaxCrossEntropyMean"] + ["MatMul"] * 5], segments
    assert all(repeats >= 3 for _, repeats in segments), segments


def test_changing_batch_sizes_take_the_full_path_and_match():
    sizes = [BATCH, BATCH, 48, 48, BATCH, 80, BATCH]
    got, got_w, _ = _train("cpu", np.float64, "new", sizes)
    want, want_w, _ = _train("reference", np.float64, "new", sizes)
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)
    for a, b in zip(got_w, want_w):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)


def test_fetched_values_are_never_written_again():
    # h1 is fetched: its kernel keeps making new arrays, so a returned value stays as
    # it was; the kernels whose outputs are not fetched still repeat their calls.
    g, x, y, fetches, init, _ = _model(np.float32, fetch_hidden=True)
    (x1, y1), (x2, y2), (x3, y3) = _batches(np.float32, [BATCH] * 3)
    with gf.Session(graph=g) as s:
        s.run(init)
        first = s.run(fetches, {x: x1, y: y1})[2]
        kept = first.copy()
        second = s.run(fetches, {x: x2, y: y2})[2]
        s.run(fetches, {x: x3, y: y3})
        exe = next(e for e in s._cache.values() if getattr(e, "anchored", None))
        np.testing.assert_array_equal(first, kept)
        assert not np.shares_memory(first, second)
        layers = [k for k in exe.anchored
                  if [n.type for n in k.step.nodes] == ["MatMul", "Add", "Relu", "Greater"]]
        # The first hidden layer's kernel makes new arrays, the second repeats its call.
        assert [k.memo_ok for k in layers] == [False, True]
        assert _memos(exe).count("MatMul,SelectV2,Sum") == 2


def test_variables_assigned_between_steps():
    results = {}
    for be in ("cpu", "reference"):
        g, x, y, fetches, init, weights = _model(np.float64)
        batches = _batches(np.float64, [BATCH] * 4)
        with g.as_default():
            reset = [w.assign(w * 0.5) for w in weights[:2]]
        with gf.Session(graph=g, backend=be) as s:
            s.run(init)
            out = []
            for k, (xs, ys) in enumerate(batches):
                if k == 2:
                    s.run(reset)
                out.append(s.run(fetches, {x: xs, y: ys})[1])
            results[be] = out + s.run(weights)
    for a, b in zip(results["cpu"], results["reference"]):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)


def test_plans_that_write_nothing_remember_nothing():
    # Runs of a plan without state may overlap (threads): no kernel writes in place.
    g, x, y, fetches, init, _ = _model(np.float32)
    xs, ys = _batches(np.float32, [BATCH])[0]
    with gf.Session(graph=g) as s:
        s.run(init)
        loss = fetches[1]
        for _ in range(3):
            s.run(loss, {x: xs, y: ys})
        exe = next(e for e in s._cache.values() if getattr(e, "anchored", None))
        assert not exe.exclusive
        assert _memos(exe) == []
        assert not any(getattr(k, "memo_ok", False) for k in exe._kernels)


def test_memo_repeats_rebinds_and_declines():
    calls = []

    def prepare(ins: list, outs: list) -> tuple:
        calls.append("prepare")
        return (ins[0], outs[0])

    def call(args: tuple) -> None:
        np.add(args[0], 1, out=args[1])

    a = np.arange(6.0).reshape(2, 3)
    out = np.empty((2, 3))
    m = Memo([a], [out], prepare, call)
    assert m.run([a]) and calls == ["prepare"]  # the same array: no new arguments
    np.testing.assert_array_equal(out, a + 1)
    a[...] = 5  # new contents, same array
    assert m.run([a]) and calls == ["prepare"]
    np.testing.assert_array_equal(out, 6)
    b = np.zeros((2, 3))  # another array of the same kind: arguments rebound
    assert m.run([b]) and calls == ["prepare"] * 2
    np.testing.assert_array_equal(out, 1)
    assert not m.run([np.zeros((3, 2))])  # another shape
    assert not m.run([np.zeros((2, 3), np.float32)])  # another dtype
    assert not m.run([np.zeros((3, 6))[:, ::2]])  # other strides
    b.shape = (3, 2)  # the remembered array, reshaped in place
    assert not m.run([b])
    assert not Memo.applies([a, 1.0])


def test_memo_takes_another_input_in_place_of_one():
    calls = []

    def prepare(ins: list, outs: list) -> tuple:
        calls.append([x.copy() for x in ins])
        return (ins[0], ins[1], outs[0])

    def call(args: tuple) -> None:
        np.subtract(args[0], args[1], out=args[2])

    a, b = np.arange(6.0).reshape(2, 3), np.ones((2, 3))
    out = np.empty((2, 3))
    m = Memo([a, b], [out], prepare, call)
    assert m.holds(0, a) and m.holds(1, b) and not m.holds(0, b)
    assert m.accept(1, b) and len(calls) == 1  # already held: nothing rebound
    c = np.full((2, 3), 3.0)
    assert m.accept(0, c) and len(calls) == 2 and m.holds(0, c) and m.holds(1, b)
    m.call(m.args)
    np.testing.assert_array_equal(out, 2.0)  # c - b: the new input with the held one
    assert not m.accept(0, np.zeros((3, 2)))  # another shape
    assert not m.accept(0, np.zeros((2, 3), np.float32))  # another dtype
    assert not m.accept(1, [[0.0] * 3] * 2)  # not an array
    c.shape = (3, 2)  # the held array, reshaped in place
    assert not m.holds(0, c) and not m.accept(0, c)
    d = np.zeros((2, 3))
    # Input 0 is gone (nothing holds it: these arguments do not): nothing to rebind with.
    m2 = Memo([np.zeros((2, 3)), d], [out], lambda ins, outs: None, call)
    assert not m2.accept(1, np.ones((2, 3)))


def test_a_reduction_step_repeats_its_call():
    # Standalone reductions (a column mean of an elementwise product, and its gradient's
    # column sum) in a training step: remembered, and the same numbers as the reference.
    results = {}
    for be in ("cpu", "reference"):
        rng = np.random.default_rng(9)
        g = gf.Graph()
        with g.as_default():
            x = gf.placeholder(gf.float64, [None, 128])
            v = gf.Variable(rng.standard_normal(128))
            loss = gf.reduce_sum(gf.reduce_mean(gf.tanh(x * v), axis=0) ** 2)
            train = gf.train.GradientDescentOptimizer(0.1).minimize(loss)
            init = gf.global_variables_initializer()
        feeds = [np.random.default_rng(k).standard_normal((64, 128)) for k in range(4)]
        with gf.Session(graph=g, backend=be) as s:
            s.run(init)
            results[be] = [s.run([train, loss], {x: f})[1] for f in feeds] + [s.run(v)]
            if be == "cpu":
                exe = next(e for e in s._cache.values() if getattr(e, "reduced", None))
                assert any(isinstance(k, reduce.ReductionKernel) and k._memo is not None
                           for k in exe._kernels), _memos(exe)
    for a, b in zip(results["cpu"], results["reference"]):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("read", ["identity", "value"])
def test_a_fetched_variable_keeps_the_value_of_its_step(read):
    # A read of w1 fetched beside the update views w1's storage: the update must not
    # write into it in place (it copies), with or without bound calls.
    results = {}
    for be in ("cpu", "reference"):
        g, x, y, fetches, init, weights = _model(np.float64)
        with g.as_default():
            w = gf.identity(weights[0]) if read == "identity" else weights[0].read_value()
        batches = _batches(np.float64, [BATCH] * 4)
        with gf.Session(graph=g, backend=be) as s:
            s.run(init)
            results[be] = [s.run(fetches + [w], {x: xs, y: ys})[2] for xs, ys in batches]
    for a, b in zip(results["cpu"], results["reference"]):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
    assert not any(np.shares_memory(a, b) for a, b in zip(results["cpu"],
                                                           results["cpu"][1:]))


def test_new_gradient_arrays_rebind_the_bound_update():
    # The last bias's gradient is a small reduction's new array each run: its bound
    # update is rebound to it, and the numbers are the reference's.
    got, got_w, exe = _train("cpu", np.float64, "same", [BATCH] * 4)
    want, want_w, _ = _train("reference", np.float64, "same", [BATCH] * 4)
    group = next(k for k in exe._kernels if isinstance(k, backend.UpdateGroupKernel))
    assert group._memo is not None
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)
    for a, b in zip(got_w, want_w):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)


def test_a_group_with_a_large_update_runs_as_one_pool_section():
    # A 256x256 layer (optimizers.SPLIT_MIN elements) is split over the pool, so the
    # whole group runs as one section (optimizers.BoundGroup); a group of small updates
    # keeps its calls off the pool (its workers would then spin beside other work).
    from graphflow.kernels.cpu import blas, optimizers

    assert 256 * 256 >= optimizers.SPLIT_MIN
    got, got_w, exe = _train("cpu", np.float64, "new", [16] * 4, hidden=256)
    want, want_w, _ = _train("reference", np.float64, "new", [16] * 4, hidden=256)
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)
    for a, b in zip(got_w, want_w):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
    group = next(k for k in exe._kernels if isinstance(k, backend.UpdateGroupKernel))
    assert (group._memo[3] is not None) == blas.use_pool()
    _, _, small = _train("cpu", np.float64, "new", [BATCH] * 3)
    group = next(k for k in small._kernels if isinstance(k, backend.UpdateGroupKernel))
    assert group._memo is not None and group._memo[3] is None


def test_training_steps_from_several_threads_at_once():
    # Runs that update variables go one at a time, so the repeated calls never overlap:
    # twelve identical steps from four threads end where twelve in a row do.
    g, x, y, fetches, init, weights = _model(np.float64)
    xs, ys = _batches(np.float64, [BATCH])[0]
    with gf.Session(graph=g) as s:
        s.run(init)
        s.run(fetches, {x: xs, y: ys})  # builds the kernels

        def steps() -> None:
            for _ in range(3):
                s.run(fetches, {x: xs, y: ys})

        run_threads(steps, [()] * 4)
        got = s.run(weights)
    g, x, y, fetches, init, weights = _model(np.float64)
    with gf.Session(graph=g, backend="reference") as s:
        s.run(init)
        for _ in range(13):
            s.run(fetches, {x: xs, y: ys})
        want = s.run(weights)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_traced_steps_between_segment_runs():
    # A traced run calls each step's kernel (no segment); batches of another size in
    # traced runs replace the memos, and the untraced runs after them must not repeat
    # the segment's old calls.
    sizes = [BATCH, BATCH, BATCH, 48, 48, BATCH, BATCH, 48, BATCH]
    traced = {3, 4, 6}
    results = {}
    for be in ("cpu", "reference"):
        g, x, y, fetches, init, weights = _model(np.float64)
        with gf.Session(graph=g, backend=be) as s:
            s.run(init)
            out = []
            for k, (xs, ys) in enumerate(_batches(np.float64, sizes)):
                if k in traced:
                    md = gf.RunMetadata()
                    opts = gf.RunOptions(trace_level=gf.RunOptions.FULL_TRACE)
                    out.append(s.run(fetches, {x: xs, y: ys}, options=opts,
                                     run_metadata=md)[1])
                    assert md.step_stats
                else:
                    out.append(s.run(fetches, {x: xs, y: ys})[1])
            results[be] = out + s.run(weights)
            if be == "cpu":
                exe = next(e for e in s._cache.values() if getattr(e, "anchored", None))
                assert all(repeats >= 1 for _, repeats in _segments(exe))
    for a, b in zip(results["cpu"], results["reference"]):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)


@pytest.fixture
def two_blas_threads():
    """The BLAS on two threads, whatever the environment says (the suite sets one)."""
    import threadpoolctl

    from graphflow.kernels.cpu import blas

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        assert blas.threads() == 2
        yield


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_product_epilogues_run_split_over_the_native_pool(dtype, two_blas_threads):
    # Epilogues of products the BLAS splits over its threads (blas.SMALL multiply-adds
    # and more: 128x256x256) run in pieces on the native pool, through trampolines into
    # the compiled loops: the bias, relu and mask after the second layer's product, and
    # the relu mask with the bias gradient's column sum after its input gradient's.
    # The smaller products' epilogues stay one call each, and so do all of them on a
    # BLAS of one thread.
    from graphflow.kernels.cpu import blas, native, pool

    assert 128 * 256 * 256 >= blas.SMALL > 128 * 256 * N_IN
    sizes = [128] * 3 + [96] + [128] * 2  # a batch of another size: new memos, rebound
    got, got_w, exe = _train("cpu", dtype, "new", sizes, hidden=256)
    want, want_w, _ = _train("reference", dtype, "new", sizes, hidden=256)
    # float32: the pieces' column sums are rounded before they are added (and Adam
    # magnifies a last-bit difference in a near-zero gradient, see above).
    tol = 1e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    for a, b in zip(got_w, want_w):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    split = {}
    for k in exe._kernels:
        epi = getattr(k, "epilogue", None)
        if epi is not None:
            job = epi._memo.args[0] if epi._memo is not None else None
            split[k.anchor.name] = (isinstance(job, native.Job)
                                    and len(job.blocks) == pool.capacity())
    on = pool.available() and blas.threads() > 1
    assert split == {"MatMul": False, "MatMul_1": on, "MatMul_2": False,
                     "gradients/MatMul_2_grad/MatMul": False,
                     "gradients/MatMul_1_grad/MatMul": on}, split
    import threadpoolctl

    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        _, _, serial = _train("cpu", dtype, "new", sizes[:3], hidden=256)
    assert not any(isinstance(getattr(k.epilogue._memo, "args", [None])[0], native.Job)
                   for k in serial._kernels
                   if getattr(k, "epilogue", None) is not None and k.epilogue._memo)


def test_a_bad_label_in_a_remembered_step_raises_the_reference_error():
    g, x, y, fetches, init, weights = _model(np.float64)
    (xs, ys), = _batches(np.float64, [BATCH])
    with gf.Session(graph=g) as s:
        s.run(init)
        for _ in range(3):
            s.run(fetches, {x: xs, y: ys})
        bad = ys.copy()
        bad[5] = N_OUT  # out of range
        with pytest.raises(gf.errors.InvalidArgumentError, match="label"):
            s.run(fetches, {x: xs, y: bad})
        loss = s.run(fetches, {x: xs, y: ys})[1]
    assert np.isfinite(loss)


def test_the_remembered_loss_is_a_new_array_every_step():
    # The plan's own results (before the Session turns 0-d arrays into scalars): the
    # mean loss, which the plan returns, is never written in place by a later step.
    g, x, y, fetches, init, weights = _model(np.float64)
    data = _batches(np.float64, [BATCH] * 5)
    with gf.Session(graph=g) as s:
        s.run(init)
        s.run(fetches, {x: data[0][0], y: data[0][1]})
        exe = next(e for e in s._cache.values() if getattr(e, "anchored", None))
        kept = []
        for xs, ys in data:
            loss = exe.run({x: xs, y: ys}, s._state)[0]  # (the train op is no tensor)
            kept.append((loss, float(loss)))
        xent = next(k for k in exe._kernels
                    if getattr(k, "anchor", None) is not None
                    and k.anchor.type == "_SoftmaxCrossEntropyMean")
        assert xent._memo is not None
    assert len({id(a) for a, _ in kept}) == len(kept)
    assert [float(a) for a, _ in kept] == [v for _, v in kept]


@pytest.mark.parametrize("case", ["no pool", "failed piece"])
def test_split_epilogues_without_the_pool_or_with_a_failed_piece(case, monkeypatch,
                                                                 two_blas_threads):
    # Without the native pool the epilogues run as one call; a piece whose kernel
    # reports an error makes the whole loop run again through the dispatcher (which
    # would raise the kernel's error): the same numbers either way.
    from graphflow.kernels.cpu import native, pool

    if case == "no pool":
        monkeypatch.setattr(pool, "available", lambda: False)
    else:
        if not pool.available():
            pytest.skip("the native pool needs Linux on x86-64/AArch64 and two threads")
        # Pieces that do nothing and report failure: only the dispatcher's call computes.
        from numba import cfunc, types

        @cfunc(types.void(types.CPointer(types.int64)))
        def nothing(block):
            pass

        monkeypatch.setattr(native, "trampoline", lambda ranks, ints: nothing.address)
        monkeypatch.setattr(native.Job, "failed", lambda self: True)
    sizes = [128] * 4
    got, got_w, exe = _train("cpu", np.float64, "new", sizes, hidden=256)
    want, want_w, _ = _train("reference", np.float64, "new", sizes, hidden=256)
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)
    for a, b in zip(got_w, want_w):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
    jobs = [isinstance(k.epilogue._memo.args[0], native.Job) for k in exe._kernels
            if getattr(k, "epilogue", None) is not None and k.epilogue._memo is not None]
    assert any(jobs) == (case == "failed piece"), jobs


def _random_training(backend_name: str, dtype: type, n_in: int, hidden: int, act: str,
                     optimizer: str, sizes: list[int], feeds: str, seed: int) -> list:
    rng = np.random.default_rng(seed)
    g = gf.Graph()
    with g.as_default():
        x = gf.placeholder(dtype, [None, n_in])
        y = gf.placeholder(gf.int64, [None])
        w1 = gf.Variable((rng.standard_normal((n_in, hidden)) * 0.3).astype(dtype))
        b1 = gf.Variable(np.full(hidden, 0.05, dtype))
        w2 = gf.Variable((rng.standard_normal((hidden, N_OUT)) * 0.3).astype(dtype))
        b2 = gf.Variable(np.zeros(N_OUT, dtype))
        h = gf.matmul(x, w1) + b1
        h = gf.nn.relu(h) if act == "relu" else gf.tanh(h)
        loss = gf.reduce_mean(gf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=gf.matmul(h, w2) + b2))
        opt = {"adam": gf.train.AdamOptimizer(0.01),
               "sgd": gf.train.GradientDescentOptimizer(0.1),
               "momentum": gf.train.MomentumOptimizer(0.05, 0.9)}[optimizer]
        train = opt.minimize(loss)
        init = gf.global_variables_initializer()
    data = [(rng.standard_normal((n, n_in)).astype(dtype), rng.integers(0, N_OUT, n))
            for n in sizes]
    out = []
    with gf.Session(graph=g, backend=backend_name) as s:
        s.run(init)
        held = {}
        for xs, ys in data:
            if feeds == "inplace" and xs.shape in held:
                held[xs.shape][0][...], held[xs.shape][1][...] = xs, ys
                xs, ys = held[xs.shape]
            elif feeds == "inplace":
                held[xs.shape] = (xs, ys)
            out.append(s.run([train, loss], {x: xs, y: ys})[1])
        out += s.run([w1, b1, w2, b2])
    return out


@given(dtype=st.sampled_from([np.float32, np.float64]),
       n_in=st.sampled_from([5, 64, 300]), hidden=st.sampled_from([3, 40, 256]),
       act=st.sampled_from(["relu", "tanh"]),
       optimizer=st.sampled_from(["adam", "sgd", "momentum"]),
       sizes=st.lists(st.sampled_from([1, 9, 64, 130]), min_size=3, max_size=6),
       feeds=st.sampled_from(["new", "inplace"]), seed=st.integers(0, 2**31 - 1))
@settings(max_examples=12)
def test_random_training_runs_match_the_reference(dtype, n_in, hidden, act, optimizer,
                                                  sizes, feeds, seed):
    # Memos made, repeated, rebound and dropped as batch sizes come and go; small loops
    # (NumPy's, copied into memos) beside compiled ones; products large enough for the
    # split epilogues (300x256 layers, batches of 130) on a BLAS of two threads.
    import threadpoolctl

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        got = _random_training("cpu", dtype, n_in, hidden, act, optimizer, sizes, feeds,
                               seed)
    want = _random_training("reference", dtype, n_in, hidden, act, optimizer, sizes, feeds,
                            seed)
    tol = 2e-3 if dtype == np.float32 else 1e-9
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
