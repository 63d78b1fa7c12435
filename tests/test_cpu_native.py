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


def test_addresses_only_for_compiled_void_kernels_of_flat_arrays_and_ints():
    x, y, out = np.arange(8.0), np.ones(8), np.zeros(8)
    assert isinstance(_compiled(_axpy, x, y, out, 3), int)
    assert native.kernel_address(_axpy, [x, y, out, 3.5]) is None  # not compiled for it
    assert native.kernel_address(_axpy, [x.astype(np.float32), y, out, 3]) is None
    _axpy(x[::2], y[::2], out[::2], 3)  # compiled for strided arrays: not callable here
    assert native.kernel_address(_axpy, [x[::2], y[::2], out[::2], 3]) is None
    m = np.zeros((2, 4))
    _double(m, m)
    assert native.kernel_address(_double, [m, m]) is None  # 2-D
    _returns(x)
    assert native.kernel_address(_returns, [x]) is None  # returns a value
    assert native.kernel_address(np.add, [x, y]) is None  # not a Numba dispatcher


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
        pool.Section(job.fn, job.blocks).run()
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
