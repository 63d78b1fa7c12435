"""NumPy's BLAS as the CPU kernels call it: its thread count, and small products run serial.

A threaded OpenBLAS leaves its worker threads spinning for about 0.1 s after
every call it splits. On a 2-core machine they then take a core from
graphflow's own threads for the rest of the step: a cnn training step whose
only BLAS calls were three small products (64x3136x10) ran 46 ms instead of
31 ms. Products too small to gain from threads (:data:`SMALL`) therefore run
with the BLAS set to one thread for the call, so its workers stay asleep;
large ones keep the BLAS's own threading, which beat splitting them over
graphflow's threads (0.88 ms against 1.16 ms for 256x784x512, measured before
graphflow's pool spun between pieces, when each hand-off woke a sleeping core).

The BLAS is found and its thread count set through ``threadpoolctl``, which
knows the symbol names of OpenBLAS, MKL and BLIS builds.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

__all__ = ["SMALL", "matmul", "threads"]

# Multiply-adds below which a product runs on one BLAS thread (~0.2 ms on one core).
SMALL = 1 << 23

_lock = threading.Lock()
# threadpoolctl's controllers of every BLAS loaded (None until looked up). More than
# NumPy's may be loaded (SciPy's OpenBLAS comes with Numba's BLAS support), in either
# order, and which one NumPy calls is not recorded anywhere: all are set together.
_controllers: list[Any] | None = None
_serial_calls = 0  # calls inside a serial section now (several threads may be in one)
_saved: list[int] = []


def _blas() -> list[Any]:
    global _controllers
    if _controllers is None:
        with _lock:
            if _controllers is None:
                from threadpoolctl import ThreadpoolController

                _controllers = [c for c in ThreadpoolController().lib_controllers
                                if c.user_api == "blas"]
    return _controllers


def threads() -> int:
    """The most threads a loaded BLAS runs a large product on (1 when none is found)."""
    return max([c.get_num_threads() for c in _blas()], default=1)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = a @ b`` for 2-D float arrays, on one BLAS thread when the product is
    smaller than :data:`SMALL` multiply-adds.

    Args:
      a: ``[m, k]``.
      b: ``[k, n]``.
      out: ``[m, n]``, C-contiguous, of their dtype.
    """
    if a.shape[0] * a.shape[1] * b.shape[1] >= SMALL or not _blas():
        np.matmul(a, b, out=out)
        return
    global _serial_calls, _saved
    with _lock:
        if _serial_calls == 0:
            _saved = [c.get_num_threads() for c in _controllers]
            for c, n in zip(_controllers, _saved):
                if n > 1:
                    c.set_num_threads(1)
        _serial_calls += 1
    try:
        np.matmul(a, b, out=out)
    finally:
        with _lock:
            _serial_calls -= 1
            if _serial_calls == 0:
                for c, n in zip(_controllers, _saved):
                    if n > 1:
                        c.set_num_threads(n)
