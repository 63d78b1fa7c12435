"""NumPy's BLAS as the CPU kernels call it: its thread count, and small products run serial.

A threaded OpenBLAS leaves its worker threads spinning for about 0.1 s after
every call it splits. On a 2-core machine they then take a core from
graphflow's own threads for the rest of the step: a cnn training step whose
only BLAS calls were three small products (64x3136x10) ran 46 ms instead of
31 ms. Products too small to gain from threads (:data:`SMALL`) therefore run
with the BLAS set to one thread for the call, so its workers stay asleep,
unless a large product ran less than :data:`SPINNING_S` ago: its workers are
still spinning, so threads cost nothing to start (the mlp's 256x512x10
products: 68-83 us on the BLAS's two threads right after a large product,
against 108-114 us on one). Large ones keep the BLAS's own threading, which
beat splitting them over graphflow's threads (0.88 ms against 1.16 ms for
256x784x512, measured before graphflow's pool spun between pieces, when each
hand-off woke a sleeping core).

An OpenBLAS that takes a threads callback (0.3.27 and later) runs its parallel
work on graphflow's native pool instead (:func:`use_pool`): OpenBLAS's own workers
then never run, so none is left spinning on a core that graphflow's next
kernel, split over the same pool, needs (an Adam update split in two right after
a product ran at the speed of one thread). The products' speed is OpenBLAS's
own: the callback runs the same jobs, with the same partition, all at once.

The BLAS is found through ``threadpoolctl``, which knows the symbol names of
OpenBLAS, MKL and BLIS builds. An OpenBLAS with its own threads has its count read
and set through its C functions directly: threadpoolctl's Python layers around them
cost ~35 us per small product right after a large kernel (cold caches), about as
much as the product itself, and its ``set_num_threads`` ignores callers on any thread
but the first one that set a limit.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from graphflow.kernels.cpu import threads as threads_

__all__ = ["SMALL", "matmul", "threads", "use_pool"]

# Multiply-adds below which a product runs on one BLAS thread (~0.2 ms on one core).
SMALL = 1 << 23
# Seconds after a large (threaded) product during which small ones keep the BLAS's
# threads: well inside OpenBLAS's spin before its workers sleep (2^28 cycles, ~0.1 s).
SPINNING_S = 0.01

# The same while the BLAS runs on graphflow's pool, whose workers spin for SPIN_US.
_POOL_SPINNING_S = threads_.SPIN_US * 1e-6

_lock = threading.Lock()
# threadpoolctl's controllers of every BLAS loaded (None until looked up). More than
# NumPy's may be loaded (SciPy's OpenBLAS comes with Numba's BLAS support), in either
# order, and which one NumPy calls is not recorded anywhere: all are set together.
# Each as the (get, set) functions of its thread count.
_controllers: list[tuple[Callable[[], int], Callable[[int], Any]]] | None = None
_serial_calls = 0  # calls inside a serial section now (several threads may be in one)
_saved: list[int] = []
_last_large = [-1.0]  # time.perf_counter() when the last large product finished
# The OpenBLAS libraries whose threads callback is graphflow's pool (their setters).
_pooled: list[Callable[[Any], Any]] = []
_pool_tried = [False]
# The setter's names, by build: NumPy's and SciPy's wheels prefix and suffix them.
_CALLBACK_SETTERS = ("scipy_openblas_set_threads_callback_function64_",
                     "openblas_set_threads_callback_function64_",
                     "scipy_openblas_set_threads_callback_function",
                     "openblas_set_threads_callback_function")


def _blas() -> list[tuple[Callable[[], int], Callable[[int], Any]]]:
    global _controllers
    if _controllers is None:
        with _lock:
            if _controllers is None:
                from threadpoolctl import ThreadpoolController

                _controllers = [_count_functions(c) for c in
                                ThreadpoolController().lib_controllers if c.user_api == "blas"]
    return _controllers


def _count_functions(c: Any) -> tuple[Callable[[], int], Callable[[int], Any]]:
    """``(get, set)`` of a controller's thread count: OpenBLAS's own C functions when
    it runs its own threads (not OpenMP's) and they are found, else threadpoolctl's."""
    if c.internal_api == "openblas" and getattr(c, "threading_layer", None) == "pthreads":
        symbol = getattr(c, "_get_symbol", None)
        if symbol is not None:
            get, set_ = symbol("openblas_get_num_threads"), symbol("openblas_set_num_threads")
            if get is not None and set_ is not None:
                return get, set_
    return c.get_num_threads, c.set_num_threads


def use_pool() -> bool:
    """Makes every OpenBLAS with its own threads run its parallel work on graphflow's
    native pool (:mod:`pool`), once per process; its thread count is capped at the
    pool's. Not where the pool is unavailable, for an OpenBLAS without the callback,
    or with ``GRAPHFLOW_BLAS_POOL=0``.

    Returns:
      Whether some BLAS now runs on the pool.
    """
    if _pool_tried[0]:
        return bool(_pooled)
    with _lock:
        if _pool_tried[0]:
            return bool(_pooled)
        _pool_tried[0] = True
        from graphflow.kernels.cpu import pool

        if os.environ.get("GRAPHFLOW_BLAS_POOL", "1") == "0" or not pool.available():
            return False
        from threadpoolctl import ThreadpoolController

        for c in ThreadpoolController().lib_controllers:
            if (c.user_api != "blas" or c.internal_api != "openblas"
                    or getattr(c, "threading_layer", None) != "pthreads"):
                continue
            try:
                lib = ctypes.CDLL(c.filepath)
            except OSError:
                continue
            setter = next((getattr(lib, n) for n in _CALLBACK_SETTERS if hasattr(lib, n)),
                          None)
            if setter is None:
                continue
            setter.argtypes, setter.restype = [ctypes.c_void_p], None
            # A job of OpenBLAS's waits for its others: it must not start more jobs
            # than the pool runs at once (the callback would start threads for them).
            get, set_ = _count_functions(c)
            if get() > pool.capacity():
                set_(pool.capacity())
            setter(pool.blas_callback())
            _pooled.append(setter)
    return bool(_pooled)


def _reset_after_fork() -> None:
    # The child has no pool threads: its OpenBLAS goes back to threads of its own.
    for setter in _pooled:
        setter(None)
    _pooled.clear()
    _pool_tried[0] = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def threads() -> int:
    """The most threads a loaded BLAS runs a large product on (1 when none is found)."""
    return max([get() for get, _ in _blas()], default=1)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = a @ b`` for 2-D float arrays, on one BLAS thread when the product is
    smaller than :data:`SMALL` multiply-adds.

    Args:
      a: ``[m, k]``.
      b: ``[k, n]``.
      out: ``[m, n]``, C-contiguous, of their dtype.
    """
    if a.shape[0] * a.shape[1] * b.shape[1] >= SMALL:
        np.matmul(a, b, out=out)
        _last_large[0] = time.perf_counter()
        return
    # On graphflow's pool the BLAS's workers are the pool's, which spin for less long.
    spinning = _POOL_SPINNING_S if _pooled else SPINNING_S
    if not _blas() or time.perf_counter() - _last_large[0] < spinning:
        np.matmul(a, b, out=out)
        return
    global _serial_calls, _saved
    with _lock:
        if _serial_calls == 0:
            _saved = [get() for get, _ in _controllers]
            for (_, set_), n in zip(_controllers, _saved):
                if n > 1:
                    set_(1)
        _serial_calls += 1
    try:
        np.matmul(a, b, out=out)
    finally:
        with _lock:
            _serial_calls -= 1
            if _serial_calls == 0:
                for (_, set_), n in zip(_controllers, _saved):
                    if n > 1:
                        set_(n)
