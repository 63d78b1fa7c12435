"""The native pool (kernels/cpu/pool.py), its Numba entries (entries.py), OpenBLAS's
work on it (blas.use_pool) and the dense updates split over it (optimizers)."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest
import threadpoolctl
from conftest import run_threads

from graphflow.kernels.cpu import blas, entries, optimizers, pool

pytestmark = pytest.mark.skipif(not pool.available(),
                                reason="the native pool needs Linux on x86-64/AArch64 and "
                                       "two threads")

# A job adding its tag to every element of its slice: the gradient descent update
# ``var -= alpha * delta`` with delta ones and alpha minus the tag.
_ONES = np.ones(64)


@pytest.fixture(scope="module")
def add_entry() -> int:
    return entries.entry([np.float64, np.float64], ["float64", "float64"],
                         module=optimizers.__name__, name="_gradient_descent", returns=True)


def _blocks(slices: list[tuple[np.ndarray, int, float]]) -> np.ndarray:
    """A block per ``(array, first element, tag)``: the tag added to that element on."""
    blocks = np.zeros((len(slices), 7), np.int64)
    for row, (a, at, tag) in zip(blocks, slices):
        row[:4] = [a.ctypes.data + 8 * at, a.size - at, _ONES.ctypes.data, a.size - at]
        row[4:6].view(np.float64)[:] = [1.0, -tag]
    return blocks


def _section(fn: int, counts: np.ndarray, tags: list[float]) -> None:
    # Job i adds tags[i] to counts[i] (a one-element slice).
    blocks = _blocks([(counts, i, t) for i, t in enumerate(tags)])
    blocks[:, 1] = blocks[:, 3] = 1
    pool.run_table(fn, blocks)
    assert (blocks[:, -1] == 1).all()  # each job ran its update, none found an overlap


@pytest.mark.parametrize("n", [0, 1, 2, 7, 50])
def test_every_job_runs_exactly_once(add_entry, n):
    counts = np.zeros(max(n, 1))
    _section(add_entry, counts, [i + 1 for i in range(n)])
    np.testing.assert_array_equal(counts[:n], np.arange(1, n + 1))


def test_each_job_reads_its_own_block(add_entry):
    a, b = np.zeros(5), np.zeros(3)
    pool.run_table(add_entry, _blocks([(a, 0, 4.0), (b, 0, -2.0)]))
    np.testing.assert_array_equal(a, 4)
    np.testing.assert_array_equal(b, -2)


def test_sections_from_several_threads_all_finish(add_entry):
    # A caller that finds the pool busy runs its jobs itself: nothing is lost.
    counts = [np.zeros(6) for _ in range(4)]

    def caller(k: int) -> None:
        for _ in range(200):
            _section(add_entry, counts[k], [1] * 6)

    run_threads(caller, [(k,) for k in range(4)])
    for c in counts:
        np.testing.assert_array_equal(c, 200)


def test_a_private_pool_stops_and_its_workers_end(add_entry):
    p = pool._Pool(2)
    counts = np.zeros(3)
    blocks = _blocks([(counts, i, 5.0) for i in range(3)])
    blocks[:, 1] = blocks[:, 3] = 1
    table = np.empty(6, np.int64)
    table[0::2] = add_entry
    table[1::2] = [blocks.ctypes.data + 8 * blocks.shape[1] * i for i in range(3)]
    assert p.run(table, 3)
    p.stop()
    assert not any(t.is_alive() for t in p.threads)
    np.testing.assert_array_equal(counts, 5)


# --- OpenBLAS on the pool ------------------------------------------------------------------
def _in_thread(fn, timeout: float = 120.0):
    """``fn()`` on a thread, failing (instead of hanging) if it does not return."""
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "the call did not return: jobs that wait for each other hung"
    return out[0]


def _without_callback(fn):
    for setter in blas._pooled:
        setter(None)
    try:
        return fn()
    finally:
        for setter in blas._pooled:
            setter(pool.blas_callback())


needs_callback = pytest.mark.skipif(not blas.use_pool(),
                                    reason="OpenBLAS does not run on the pool here (no threads "
                                           "callback, or GRAPHFLOW_BLAS_POOL=0)")


@needs_callback
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True)])
def test_threaded_products_on_the_pool_are_openblas_own(dtype, ta, tb):
    rng = np.random.default_rng(3)
    m, k, n = 300, 257, 190
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    a, b = (a.T if ta else a), (b.T if tb else b)
    with threadpoolctl.threadpool_limits(pool.capacity(), user_api="blas"):
        own = _without_callback(lambda: a @ b)
        got = _in_thread(lambda: a @ b)
    np.testing.assert_array_equal(got, own)  # the same jobs, the same partition


@needs_callback
def test_more_blas_jobs_than_pool_threads_run_on_threads_of_their_own():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((400, 300))
    b = rng.standard_normal((300, 350))
    with threadpoolctl.threadpool_limits(pool.capacity() + 2, user_api="blas"):
        own = _without_callback(lambda: a @ b)
        got = _in_thread(lambda: a @ b)
    np.testing.assert_array_equal(got, own)


def _child_product(q) -> None:
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        a = np.ones((300, 300))
        q.put(float((a @ a).sum()))


@needs_callback
def test_a_forked_child_multiplies_without_the_parents_pool():
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_product, args=(q,))
    p.start()
    p.join(120)
    alive = p.is_alive()
    if alive:
        p.kill()
    assert not alive and p.exitcode == 0
    assert q.get(timeout=10) == 300.0 ** 3


# --- dense updates split over the pool -----------------------------------------------------
def _adam_inputs(n: int, dtype, seed: int) -> tuple[list[np.ndarray], list]:
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(n).astype(dtype) for _ in range(4)]
    arrays[2] = np.abs(arrays[2])
    if n > 10:
        arrays[3][:3] = [np.nan, np.inf, -1e30]
    scalars = [dtype(x) for x in (0.9 ** 3, 0.999 ** 3, 1e-3, 0.9, 0.999, 1e-8)]
    return arrays, scalars


@needs_callback
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("extra", [-1, 0, 17, 40001])
def test_a_split_update_equals_one_call(dtype, extra):
    dk = optimizers.DenseKernel("ApplyAdam", np.dtype(dtype), {})
    arrays, scalars = _adam_inputs(optimizers.SPLIT_MIN + extra, dtype, extra + 5)
    expect = [a.copy() for a in arrays]
    with optimizers.subnormals_flushed():
        assert optimizers._adam(*expect, dtype(1), *scalars, False)
    assert dk.call(arrays[:3], arrays[3], scalars)
    assert dk._split is (None if extra < 0 else True)  # decided at the first large call
    for got, want in zip(arrays, expect):
        np.testing.assert_array_equal(got, want)


@needs_callback
def test_a_split_update_of_overlapping_arrays_writes_nothing():
    dk = optimizers.DenseKernel("ApplyAdam", np.dtype(np.float32), {})
    n = optimizers.SPLIT_MIN * 2
    arrays, scalars = _adam_inputs(2 * n, np.float32, 9)
    buf = arrays[0]
    # The first moment starts 10 elements before the variable's end: each piece's own
    # slices are disjoint, but the last piece's variable is the first piece's moment.
    var, m = buf[:n], buf[n - 10:2 * n - 10]
    v, grad = np.abs(arrays[1][:n]), arrays[2][:n]
    before = [x.copy() for x in (buf, v, grad)]
    assert not dk.call([var, m, v], grad, scalars)
    for got, want in zip((buf, v, grad), before):
        np.testing.assert_array_equal(got, want)


@needs_callback
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_bound_group_runs_updates_as_one_call_each(dtype):
    # Large (split) and small updates in one section, run twice with new
    # hyperparameters and, the second time, another gradient array for one of them.
    sizes = [optimizers.SPLIT_MIN + 33, 5, 1, optimizers.SPLIT_MIN * 2, 40]
    dk = optimizers.DenseKernel("ApplyAdam", np.dtype(dtype), {})
    assert dk._splits()
    members = [_adam_inputs(n, dtype, 20 + k) for k, n in enumerate(sizes)]
    expect = [[a.copy() for a in arrays] for arrays, _ in members]
    bound = optimizers.BoundGroup(dk, [(arrays[:3], arrays[3]) for arrays, _ in members])
    assert bound.rows[0] == (0, pool.capacity()) and bound.rows[1][1] - bound.rows[1][0] == 1
    for step in range(2):
        scalars = [dtype(x) for x in (0.9 ** (step + 1), 0.999 ** (step + 1), 1e-3 * (step + 1),
                                      0.9, 0.999, 1e-8)]
        if step == 1:
            new = members[2][0][3] * 2
            expect[2][3] = new.copy()
            bound.rebind(2, new)
        with optimizers.subnormals_flushed():
            for want in expect:
                assert optimizers._adam(*want, dtype(1), *scalars, False)
        assert bound.run(scalars) == []
        for (arrays, _), want in zip(members, expect):
            for got, w in zip(arrays[:3], want[:3]):
                np.testing.assert_array_equal(got, w)


@needs_callback
def test_a_bound_group_leaves_an_update_of_overlapping_arrays_alone():
    dk = optimizers.DenseKernel("ApplyAdam", np.dtype(np.float32), {})
    assert dk._splits()
    n = optimizers.SPLIT_MIN * 2
    arrays, scalars = _adam_inputs(2 * n, np.float32, 9)
    buf = arrays[0]
    var, m = buf[:n], buf[n - 10:2 * n - 10]  # the variable overlaps its first moment
    v, grad = np.abs(arrays[1][:n]), arrays[2][:n]
    other, _ = _adam_inputs(100, np.float32, 10)
    before = [x.copy() for x in (buf, v, grad)]
    want = [a.copy() for a in other]
    with optimizers.subnormals_flushed():
        assert optimizers._adam(*want, np.float32(1), *scalars, False)
    bound = optimizers.BoundGroup(dk, [([var, m, v], grad), (other[:3], other[3])])
    assert bound.run(scalars) == [0]
    for got, w in zip((buf, v, grad), before):
        np.testing.assert_array_equal(got, w)
    for got, w in zip(other[:3], want[:3]):
        np.testing.assert_array_equal(got, w)


@needs_callback
def test_threaded_products_from_several_threads_at_once_are_all_right():
    # OpenBLAS gives each job of a call scratch by job number: calls through the pool
    # must not overlap (each waits for the pool), or they would share it.
    rng = np.random.default_rng(7)
    pairs = [(rng.standard_normal((200, 300)), rng.standard_normal((300, 250)))
             for _ in range(4)]
    with threadpoolctl.threadpool_limits(pool.capacity(), user_api="blas"):
        expect = _without_callback(lambda: [a @ b for a, b in pairs])
        bad: list[int] = []

        def caller(k: int) -> None:
            a, b = pairs[k]
            for _ in range(30):
                if not np.array_equal(a @ b, expect[k]):
                    bad.append(k)

        run_threads(caller, [(k,) for k in range(4)], timeout=120)
    assert bad == []
