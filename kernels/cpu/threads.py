"""Splitting one kernel call across cores: the kernels release the GIL (``nogil``).

A generated loop over a large output runs as several calls of the same compiled
kernel on disjoint slices of its leading axis, one per core, from a small
process-wide thread pool. The calling thread takes the first slice itself.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from graphflow.kernels.cpu import cache

__all__ = ["executor", "num_threads", "run_chunks", "run_scaled_chunks", "split"]


def num_threads() -> int:
    """Cores this process may use (GRAPHFLOW_NUM_THREADS overrides)."""
    env = os.environ.get("GRAPHFLOW_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def executor() -> ThreadPoolExecutor:
    """The process-wide pool the CPU kernels share (one worker per core but the caller's)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, num_threads() - 1),
                                       thread_name_prefix="graphflow-cpu")
        return _pool


def split(n: int) -> list[tuple[int, int]] | None:
    """``[lo, hi)`` slices of ``range(n)``, one per thread; None for a single thread."""
    t = min(num_threads(), n)
    if t <= 1:
        return None
    step = -(-n // t)
    return [(lo, min(lo + step, n)) for lo in range(0, n, step)]


def run_chunks(fn: Any, args: list[Any], chunks: list[tuple[int, int]],
               whole: list[bool]) -> None:
    """Calls ``fn`` on each chunk of the leading axis of ``args``.

    Args:
      fn: a compiled kernel.
      args: its arrays (inputs then outputs), all with the same leading axis except
        the inputs marked in ``whole``.
      chunks: from :func:`split`.
      whole: per input, True when it is passed unsliced (a one-element input).
    """
    whole = list(whole) + [False] * (len(args) - len(whole))

    def part(lo: int, hi: int) -> list[Any]:
        return [a if w else a[lo:hi] for a, w in zip(args, whole)]

    futures = [executor().submit(fn, *part(lo, hi)) for lo, hi in chunks[1:]]
    lo, hi = chunks[0]
    cache.call_kernel(fn, part(lo, hi))
    for f in futures:
        f.result()


def run_scaled_chunks(fn: Any, args: list[Any], chunks: list[tuple[int, int]],
                      scales: list[int | None], extra: tuple = ()) -> None:
    """Calls ``fn(*sliced args, *extra)`` on each chunk ``[lo, hi)`` of an outer loop.

    Args:
      fn: a compiled kernel.
      args: its 1-D arrays.
      chunks: from :func:`split`, over the outer loop's range.
      scales: per array, the elements it holds per outer iteration (sliced
        ``[lo*scale, hi*scale)``), or None when it is passed whole.
      extra: trailing arguments passed to every call unchanged.
    """
    def part(lo: int, hi: int) -> list[Any]:
        return [a if k is None else a[lo * k:hi * k] for a, k in zip(args, scales)] + list(extra)

    futures = [executor().submit(fn, *part(lo, hi)) for lo, hi in chunks[1:]]
    lo, hi = chunks[0]
    cache.call_kernel(fn, part(lo, hi))
    for f in futures:
        f.result()
