"""Large result arrays recycled across runs once nothing outside the pool holds them.

A fresh multi-megabyte ``np.empty`` comes from ``mmap`` (glibc maps chunks over
its threshold, 32 MiB at most, and trims its heap when large chunks are freed),
so every run's outputs and intermediates page-fault as they are first written:
about 0.7 ns per byte here, as much as the arithmetic of a fused elementwise
loop over the same bytes. TensorFlow and XLA keep such memory in their own
allocators; this is graphflow's.

A buffer is handed out again only when the pool's own reference is the last one:
any array the user still holds (a fetched result, a view of it, a feed made from
it, a variable's value) keeps its base buffer's reference count up, so a
returned array is never overwritten by a later run.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from typing import Any

import numpy as np

# Arrays below this many bytes come from malloc's heap, which recycles them cheaply.
# From 64 KiB the pool's are worth its few microseconds: 64-byte aligned (malloc gives
# 16, and a vector load across a line costs two) and reused whole. The mlp step's
# 256x512 activations and masks (128-512 KiB) ran 1.2% faster per step from the pool
# (paired runs), the cnn's no slower.
MIN_BYTES = 1 << 16
# Buffers kept per byte size: a plan's results of one size that are alive at once.
PER_SIZE = 8
# Arrays handed out start at a multiple of this (a cache line, and AVX-512's vector):
# malloc gives 16, and a vector load that crosses a line costs two (the convolution
# kernels ran 7-10% slower on such operands).
ALIGN = 64
# Bytes of idle buffers kept; beyond it the least recently used idle ones are dropped.
MAX_IDLE_BYTES = int(os.environ.get("GRAPHFLOW_POOL_MB", "2048")) << 20

_lock = threading.Lock()
# byte size -> (buffer, aligned start)s, most recently used last
_pool: dict[int, list[tuple[np.ndarray, int]]] = {}
_getrefcount = sys.getrefcount
_held = [0]  # bytes of all pooled buffers, idle or not


def empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised C-contiguous array, reusing an idle pooled buffer when one fits.

    Args:
      shape: the array's shape.
      dtype: its NumPy dtype.

    Returns:
      A writable array that no other live array shares memory with.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype)
    with _lock:
        bufs = _pool.get(nbytes)
        if bufs is None:
            bufs = _pool[nbytes] = []
        entry = None
        for k in range(len(bufs)):
            if _idle(bufs, k):
                entry = bufs.pop(k)
                bufs.append(entry)
                break
        if entry is None:
            # The pool keeps the owner: a view of it (the array handed out) holds a
            # reference to it, which is what marks the buffer as in use. Its aligned
            # start is found once (``.ctypes`` costs ~15 us on a cold cache, as after
            # a large kernel, the usual time of a call here).
            b = np.empty(nbytes + ALIGN, np.uint8)
            entry = (b, -b.__array_interface__["data"][0] % ALIGN)
            if len(bufs) >= PER_SIZE:
                del bufs[0]  # the oldest: still held outside, the pool forgets it
                _held[0] -= nbytes
            bufs.append(entry)
            _held[0] += nbytes
        # Counting idle bytes walks the pool: only when all it holds may pass the limit.
        if _held[0] > MAX_IDLE_BYTES:
            _trim(MAX_IDLE_BYTES)
        b, start = entry
        out = b[start:start + nbytes].view(dtype).reshape(shape)
    return out


def zeros(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Like :func:`empty`, filled with zeros.

    Args:
      shape: the array's shape.
      dtype: its NumPy dtype.

    Returns:
      A writable zero array that no other live array shares memory with.
    """
    a = empty(shape, dtype)
    a.fill(0)
    return a


def _idle(bufs: list[tuple[np.ndarray, int]], k: int) -> bool:
    # References: the entry's and getrefcount's argument. Any more is an array built on
    # the buffer (views keep it as their base) or a caller holding it.
    return _getrefcount(bufs[k][0]) == 2


def _trim(limit: int) -> None:
    # Called with _lock held: drops idle buffers beyond ``limit`` bytes, the least
    # recently handed out (the front of each list) first.
    total = _idle_total()
    for n in list(_pool):
        bufs = _pool[n]
        k = 0
        while total > limit and k < len(bufs):
            if _idle(bufs, k):
                total -= n
                _held[0] -= n
                del bufs[k]
            else:
                k += 1
        if not bufs:
            del _pool[n]


def _idle_total() -> int:
    return sum(n for n, bufs in _pool.items() for k in range(len(bufs)) if _idle(bufs, k))


def release() -> int:
    """Drops every idle buffer (its memory returns to the OS); buffers in use stay.

    Returns:
      The number of bytes released.
    """
    with _lock:
        before = _idle_total()
        _trim(0)
    return before


def idle_bytes() -> int:
    """Bytes held by pooled buffers that nothing else references (for tests and tools)."""
    with _lock:
        return _idle_total()
