"""Compiled Numba kernels called through trampolines (kernels/cpu/native.py): found by
their argument types, run as native pool jobs or in a row, their status read back."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from graphflow.kernels.cpu import native, pool


@njit(nogil=True)
def _axpy(x, y, out, k):
    for i in range(x.shape[0]):
        out[i] = x[i] * k + y[i]


@njit(nogil=True)
def _double(x, out):
    for i in range(x.shape[0]):
        out[i] = 2 * x[i]


@njit(nogil=True)
def _rows(x, out, cols, shift):
    for i in range(x.shape[0] // cols):
        for j in range(cols):
            out[i * cols + j] = x[i * cols + j] + i + shift


@njit(nogil=True)
def _checked(x, out):
    for i in range(x.shape[0]):
        if x[i] < 0:
            raise ValueError("negative")
        out[i] = x[i]


@njit(nogil=True)
def _returns(x):
    return x.sum()


def _compiled(fn, *args):
    fn(*args)
    return native.kernel_address(fn, args)


def test_addresses_only_for_kernels_compiled_for_the_argument_types():
    x, y, out = np.arange(8.0), np.ones(8), np.zeros(8)
    assert isinstance(_compiled(_axpy, x, y, out, 3), int)
    assert native.kernel_address(_axpy, [x, y, out, 3.5]) is None  # not compiled for it
    assert native.kernel_address(_axpy, [x.astype(np.float32), y, out, 3]) is None
    assert native.kernel_address(_axpy, [x[::2], y[::2], out[::2], 3]) is None  # strided
    assert native.kernel_address(_axpy, [x, y, out[::-1].copy(), 3]) is not None
    _returns(x)
    assert native.kernel_address(_returns, [x]) is None  # returns a value
    assert native.kernel_address(np.add, [x, y]) is None  # not a Numba dispatcher


@njit(nogil=True)
def _grid(x, out, k):
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            for m in range(x.shape[2]):
                out[i, j, m] = x[i, j, m] * k + j


def test_arrays_of_any_rank_and_layout():
    # 3-D arrays, and strided views (a kernel compiled for layout "A"): the trampoline
    # passes each piece's extents and strides.
    x = np.arange(60.0).reshape(2, 6, 5)
    out = np.zeros((2, 6, 5))
    pieces = [[x[:, :4], out[:, :4], 3], [x[:, 4:], out[:, 4:], 3]]
    assert native.kernel_address(_grid, pieces[0]) is None  # only compiled for layout C
    _compiled(_grid, x, out, 3)
    address = _compiled(_grid, *pieces[0])
    assert address == native.kernel_address(_grid, pieces[1])
    native.Job(address, pieces).run_here()
    # Each piece numbers its rows from 0.
    np.testing.assert_array_equal(out, x * 3 + np.array([0, 1, 2, 3, 0, 1])[:, None])
    wide = np.arange(20.0)
    res = np.zeros(20)
    address = _compiled(_axpy, wide[::2], wide[1::2], res[::2], 1)
    assert address != native.kernel_address(_axpy, [wide[:10], wide[10:], res[:10], 1])
    native.Job(address, [[wide[0:8:2], wide[1:8:2], res[0:8:2], 2],
                         [wide[8::2], wide[9::2], res[8::2], 2]]).run_here()
    np.testing.assert_array_equal(res[::2], wide[::2] * 2 + wide[1::2])
    assert not res[1::2].any()


@pytest.mark.parametrize("where", ["pool", "here"])
def test_jobs_run_the_kernel_on_slices(where):
    if where == "pool" and not pool.available():
        pytest.skip("the native pool needs Linux on x86-64/AArch64 and two threads")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(101), rng.standard_normal(101)
    out = np.full(101, np.nan)
    address = _compiled(_axpy, x, y, out, 2)
    cuts = [0, 30, 31, 101]  # a piece of one element among them
    job = native.Job(address, [[x[a:b], y[a:b], out[a:b], 5] for a, b in zip(cuts, cuts[1:])])
    out[:] = np.nan
    if where == "pool":
        assert job.run()
    else:
        job.run_here()
    np.testing.assert_array_equal(out, x * 5 + y)
    assert not job.failed()


def test_no_ints_and_two_ints():
    x = np.arange(12, dtype=np.float32)
    out = np.zeros(12, np.float32)
    job = native.Job(_compiled(_double, x, out), [[x[:5], out[:5]], [x[5:], out[5:]]])
    out[:] = 0
    job.run_here()
    np.testing.assert_array_equal(out, 2 * x)
    job = native.Job(_compiled(_rows, x, out, 4, 0), [[x[:4], out[:4], 4, 10],
                                                      [x[4:], out[4:], 4, 20]])
    job.run_here()
    # Each piece numbers its own rows from 0: rows 0 | 0, 1 of the pieces, plus the shift.
    np.testing.assert_array_equal(out, x + np.repeat([10, 20, 21], 4))


def test_a_raising_kernel_reports_its_status():
    x, out = np.array([1.0, 2.0, -1.0, 4.0]), np.zeros(4)
    job = native.Job(_compiled(_checked, np.abs(x), out), [[x[:2], out[:2]], [x[2:], out[2:]]])
    out[:] = 0
    job.run_here()
    assert job.failed()
    assert list(job.blocks[:, -1] != 0) == [False, True]
    assert out[0] == 1.0 and out[1] == 2.0  # the first piece ran
    if pool.available():
        assert not job.run()  # the same on the pool


def test_a_job_only_when_one_overload_takes_every_piece():
    x, out = np.arange(12.0), np.zeros(12)
    _double(x, out)
    assert native.job(_double, [[x[:6], out[:6]], [x[6:], out[6:]]]) is not None
    # A strided piece (no overload for it compiled) or one of another dtype: no job.
    assert native.job(_double, [[x[:6], out[:6]], [x[6::2], out[6::2]]]) is None
    assert native.job(_double, [[x[:6], out[:6]], [x[6:].astype(np.float32), out[6:]]]) is None
