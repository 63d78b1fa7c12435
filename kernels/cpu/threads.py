"""Splitting one kernel call across cores: the kernels release the GIL (``nogil``).

A generated loop over a large output runs as several calls of the same compiled
kernel on disjoint slices of its leading axis, one per core, from a small
process-wide thread pool. The calling thread takes the first slice itself.

The pool's workers, and the caller waiting for them, spin for a while
(:data:`SPIN_US`) before they sleep (:mod:`spin`): the pieces of one run come
microseconds apart, and a sleeping thread costs an idle core's wake-up (about
0.1 ms on a VM, twice per hand-off) where a spinning one answers at once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphflow.kernels.cpu import cache, spin

__all__ = ["SPIN_US", "num_threads", "run_chunks", "run_parallel", "run_scaled_chunks", "split"]

# How long a worker waits for the next piece, and the caller for the workers, by
# spinning before sleeping.
SPIN_US = float(os.environ.get("GRAPHFLOW_SPIN_US", "200"))


def num_threads() -> int:
    """Cores this process may use (GRAPHFLOW_NUM_THREADS overrides)."""
    env = os.environ.get("GRAPHFLOW_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class _Pool:
    """Workers that run the pieces of one parallel section at a time.

    Two int64 words, a cache line apart, carry the hand-offs: the section count
    (the caller adds one when it has posted the pieces) and the number of workers
    done with the current section. Both are also guarded by a condition for the
    threads that stopped spinning and sleep.
    """

    def __init__(self, workers: int) -> None:
        self._words = np.zeros(16, np.int64)  # [0]: sections posted; [8]: workers done
        self._posted = self._words.ctypes.data
        self._done = self._posted + 64
        self._jobs: list[list[tuple[Callable[..., Any], tuple, list]]] = [[] for _ in
                                                                           range(workers)]
        self._cond = threading.Condition()
        self._section = threading.Lock()
        self._spins = spin.spins_for(SPIN_US)
        self._threads = [threading.Thread(target=self._work, args=(i,), daemon=True,
                                          name=f"graphflow-cpu-{i}") for i in range(workers)]
        for t in self._threads:
            t.start()

    def _work(self, i: int) -> None:
        seen = 0
        while True:
            now = spin.until_changed(self._posted, seen, self._spins)
            if now == seen:
                with self._cond:
                    while int(self._words[0]) == seen:
                        self._cond.wait()
                now = int(self._words[0])
            seen = now
            for fn, args, slot in self._jobs[i]:
                try:
                    slot[0] = fn(*args)
                except BaseException as e:  # handed to the caller, raised there
                    slot[1] = e
            with self._cond:
                self._words[8] += 1
                self._cond.notify_all()

    def run(self, calls: Sequence[tuple[Callable[..., Any], tuple]]) -> list[Any]:
        if not self._section.acquire(blocking=False):
            # Another thread's section is running: this one runs in the caller.
            return [fn(*args) for fn, args in calls]
        try:
            workers = len(self._jobs)
            slots: list[list[Any]] = [[None, None] for _ in calls]
            mine = []
            for job in self._jobs:
                job.clear()
            for j, (fn, args) in enumerate(calls):  # round robin, the caller first
                k = j % (workers + 1)
                (mine if k == 0 else self._jobs[k - 1]).append((fn, args, slots[j]))
            with self._cond:
                self._words[8] = 0
                self._words[0] += 1
                self._cond.notify_all()
            try:
                for fn, args, slot in mine:
                    slot[0] = fn(*args)
            finally:
                if spin.until_reached(self._done, workers, self._spins) < workers:
                    with self._cond:
                        while int(self._words[8]) < workers:
                            if not self._cond.wait(1.0) and not all(
                                    t.is_alive() for t in self._threads):
                                raise RuntimeError("a graphflow CPU worker thread died")
        finally:
            self._section.release()
        for _, error in slots:
            if error is not None:
                raise error
        return [result for result, _ in slots]


_pool: _Pool | None = None
_pool_lock = threading.Lock()


def run_parallel(calls: Sequence[tuple[Callable[..., Any], tuple]]) -> list[Any]:
    """Runs ``fn(*args)`` for each call, on the process-wide pool and the caller.

    Args:
      calls: ``(fn, args)`` pairs; the caller runs the first itself, and more calls
        than threads are shared out in turn.

    Returns:
      The results in order. An exception in any call is raised after all finished.
    """
    global _pool
    if len(calls) <= 1 or num_threads() <= 1:
        return [fn(*args) for fn, args in calls]
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = _Pool(num_threads() - 1)
    return _pool.run(calls)


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

    run_parallel([(cache.call_kernel, (fn, part(lo, hi))) for lo, hi in chunks])


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

    run_parallel([(cache.call_kernel, (fn, part(lo, hi))) for lo, hi in chunks])
