"""The CPU backend's buffer pool: large arrays are recycled, never while anything holds them."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import graphflow as gf
from graphflow.kernels.cpu import buffers

BIG = buffers.MIN_BYTES // 4  # float32 elements in the smallest pooled array


def _addr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


@pytest.fixture(autouse=True)
def _empty_pool():
    buffers.release()
    yield
    buffers.release()


def test_small_arrays_are_plain_numpy():
    a = buffers.empty((10, 3), np.float64)
    assert a.shape == (10, 3) and a.dtype == np.float64 and a.flags.owndata


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.complex128, np.bool_])
def test_shape_dtype_and_layout(dtype):
    shape = (3, BIG // 3 + 1, 4)
    a = buffers.empty(shape, dtype)
    assert a.shape == shape and a.dtype == dtype
    assert a.flags.c_contiguous and a.flags.writeable and a.flags.aligned
    z = buffers.zeros(shape, dtype)
    assert not z.any() and not np.shares_memory(a, z)
    # Vector loads never cross a cache line: every pooled array starts on one.
    assert _addr(a) % buffers.ALIGN == 0 and _addr(z) % buffers.ALIGN == 0
    del a
    assert _addr(buffers.empty(shape, dtype)) % buffers.ALIGN == 0  # a recycled one too


def test_a_dropped_array_is_reused_and_a_held_one_never():
    a = buffers.empty((BIG,), np.float32)
    first = _addr(a)
    del a
    b = buffers.empty((BIG,), np.float32)
    assert _addr(b) == first  # recycled: no new pages
    b[:] = 7
    c = buffers.empty((BIG,), np.float32)  # b is held: c must be other memory
    assert not np.shares_memory(b, c)
    c[:] = 1
    assert (b == 7).all()


def test_views_and_memoryviews_keep_their_buffer_in_use():
    a = buffers.empty((BIG,), np.float32)
    a[:] = 3
    view = a[10:20].reshape(2, 5)
    mem = memoryview(a[:4])
    del a
    b = buffers.empty((BIG,), np.float32)
    b[:] = -1
    assert (view == 3).all() and (np.frombuffer(mem, np.float32) == 3).all()
    del view, mem, b
    assert buffers.idle_bytes() == 2 * BIG * 4


def test_other_dtypes_of_the_same_byte_size_share_the_pool():
    a = buffers.empty((BIG,), np.float32)
    first = _addr(a)
    del a
    b = buffers.empty((BIG // 2,), np.float64)
    assert _addr(b) == first and b.dtype == np.float64


def test_release_and_idle_limit(monkeypatch):
    arrays = [buffers.empty((BIG + k,), np.float32) for k in range(3)]
    del arrays
    assert buffers.idle_bytes() == sum((BIG + k) * 4 for k in range(3))
    monkeypatch.setattr(buffers, "MAX_IDLE_BYTES", 2 * BIG * 4)
    held = buffers.empty((BIG + 10,), np.float32)  # trims the least recently used idle one
    assert buffers.idle_bytes() <= 2 * BIG * 4
    assert buffers.release() > 0 and buffers.idle_bytes() == 0
    assert held.shape == (BIG + 10,)


def test_per_size_cap_forgets_buffers_still_held(monkeypatch):
    monkeypatch.setattr(buffers, "PER_SIZE", 2)
    held = [buffers.empty((BIG,), np.float32) for _ in range(5)]
    for k, a in enumerate(held):
        a[:] = k
    assert all((a == k).all() for k, a in enumerate(held))
    assert len({_addr(a) for a in held}) == 5


def _ew_graph(n: int):
    g = gf.Graph()
    with g.as_default():
        x = gf.placeholder(gf.float32, [None], name="x")
        y = gf.tanh(x * 0.5 + 1.0) * gf.sigmoid(x) - x / (1.0 + gf.abs(x))
    return g, x, y


def _expected(xv: np.ndarray) -> np.ndarray:
    return np.tanh(xv * 0.5 + 1) * (1 / (1 + np.exp(-xv))) - xv / (1 + np.abs(xv))


def test_session_results_are_recycled_only_after_the_caller_drops_them():
    g, x, y = _ew_graph(BIG)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(BIG, dtype=np.float32) for _ in range(3)]
    with gf.Session(graph=g) as sess:
        r0 = sess.run(y, {x: xs[0]})
        r1 = sess.run(y, {x: xs[1]})
        assert not np.shares_memory(r0, r1)
        kept = r0.copy()
        addr1 = _addr(r1)
        del r1
        r2 = sess.run(y, {x: xs[2]})
        assert _addr(r2) == addr1  # the dropped result's memory, not fresh pages
        np.testing.assert_array_equal(r0, kept)
        np.testing.assert_allclose(r2, _expected(xs[2]), rtol=1e-5, atol=1e-6)


def test_results_fed_back_are_not_overwritten():
    g, x, y = _ew_graph(BIG)
    xv = np.random.default_rng(1).standard_normal(BIG, dtype=np.float32)
    with gf.Session(graph=g) as sess:
        r = sess.run(y, {x: xv})
        for _ in range(3):  # the result is the next feed: it must not be the output
            before = r.copy()
            r2 = sess.run(y, {x: r})
            np.testing.assert_array_equal(r, before)
            np.testing.assert_allclose(r2, _expected(before), rtol=1e-5, atol=1e-6)
            r = r2


def test_concurrent_runs_never_share_result_memory():
    g, x, y = _ew_graph(BIG)
    rng = np.random.default_rng(2)
    feeds = [rng.standard_normal(BIG, dtype=np.float32) for _ in range(4)]
    want = [_expected(f) for f in feeds]
    errors: list[str] = []
    with gf.Session(graph=g) as sess:
        sess.run(y, {x: feeds[0]})

        def work(k: int) -> None:
            kept = []
            for _ in range(6):
                kept.append(sess.run(y, {x: feeds[k]}))
                if len(kept) > 2:
                    kept.pop(0)
                for r in kept:
                    if not np.allclose(r, want[k], rtol=1e-5, atol=1e-6):
                        errors.append(f"thread {k}: a held result changed")
                        return

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors


def test_closing_a_session_returns_idle_buffers():
    g, x, y = _ew_graph(BIG)
    xv = np.ones(BIG, np.float32)
    sess = gf.Session(graph=g)
    kept = sess.run(y, {x: xv})
    sess.run(y, {x: xv})  # dropped at once: idle in the pool
    assert buffers.idle_bytes() == BIG * 4
    sess.close()
    assert buffers.idle_bytes() == 0
    np.testing.assert_allclose(kept, _expected(xv), rtol=1e-6)
