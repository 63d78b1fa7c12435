"""Library kernels: hand-written CPU implementations of ops that do not fuse.

Convolutions, pooling, softmax and the cross entropies, the bias gradient,
``MatMul`` and ``UnsortedSegmentSum`` run here as small Numba loops, the
register-blocked tiles of :mod:`convkernels` and NumPy's BLAS. Each reproduces
its op's NumPy ``reference`` in :mod:`graphflow.ops.nn_ops` /
:mod:`graphflow.ops.segment_ops`:

* Convolutions whose result has whole vectors of channels (16 float32 on
  AVX-512) run on :mod:`convkernels` (Conv2DBackpropInput at stride 1 and
  with a finite filter); the rest are im2col + GEMM in chunks of 2^21 column
  elements. Results differ from the reference by the summation order of the
  products and fused multiply-adds only (measured |diff| <= ~5e-7 *
  sum|terms| in float32); products that overflow keep the first infinity
  where the reference, which rounds each product, may make NaN of two.
* MaxPool, MaxPoolGrad, AvgPoolGrad and UnsortedSegmentSum give exactly the
  reference's values: the gradients add each window's share in the
  reference's order (ascending taps), and max-pool gradients go to the first
  strict maximum of the window in row-major order, in-bounds elements only
  (TF's CPU rule). AvgPool sums each window in row-major order, which matched
  the reference exactly at the benchmark shapes; NumPy does not promise that
  order, so it is tested to rounding.
* Softmax, LogSoftmax, the cross entropies and BiasAddGrad accumulate float32
  sums in float64 (more accurate than the reference) and use graphflow's
  vectorisable ``exp`` (<= 0.93 ulp): within ~1e-6 relative of the reference.

NaN and inf behave as in the reference: NaN propagates through max pooling,
softmax rows with NaN or +inf become NaN, padding takes part in convolutions
as zeros (so an inf filter tap times padding gives NaN, as in the reference).

Parallelism: kernels are serial, ``nogil`` Numba functions over a range of
rows; large calls split the range over a small thread pool (one piece per
core), convolutions only when the BLAS is single-threaded. On the 2-core,
often shared machine this was tuned on, Numba's ``parallel=True`` runtime
cost milliseconds per small call waiting for a busy core; explicit splitting
pays only when the work is large, and keeps compile time low (one serial
compile per kernel and dtype, cached on disk; ~20 s CPU for all of them cold).

Anything a kernel does not handle (NCHW, EXPLICIT padding, dilations, float16,
integer dtypes, run-time shape errors) runs the op's reference evaluation, so
results and error messages are the reference's.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numba
import numpy as np
from numba import types
from numba.extending import overload

from graphflow.kernels.cpu import blas, buffers, convkernels, threads, winograd
from graphflow.kernels.cpu.fastmath import exp_f32, exp_f64
from graphflow.ops.nn_ops import NO_ROUTE

__all__ = ["LIBRARY", "lower_library"]

LibraryFn = Callable[[Any, list], list]

# error_model="numpy": no zero-division checks, so loops vectorise (and fastmath's exp
# inlines: it needs the caller compiled the same way). nogil: pieces run in threads.
_jit = numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=False)

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


# --- threads -----------------------------------------------------------------------------
_THREADS = min(threads.num_threads(), numba.config.NUMBA_NUM_THREADS)
# Work (multiply-adds or element visits) below which one thread runs a call: a hand-off
# costs tens of microseconds, more when the other core is busy.
_GRAIN = 1 << 19


def _split(fn: Callable[[int, int], Any], n: int, work: int) -> list[Any]:
    """Runs ``fn(lo, hi)`` over pieces of ``range(n)``, in parallel when ``work`` is large.

    Args:
      fn: processes rows ``[lo, hi)``; must release the GIL to gain from threads.
      n: the number of rows.
      work: an estimate of the call's cost in multiply-adds.

    Returns:
      The results of ``fn`` per piece, in order.
    """
    parts = min(_THREADS, n, max(1, work // _GRAIN))
    if parts <= 1:
        return [fn(0, n)]
    bounds = [n * k // parts for k in range(parts + 1)]
    return threads.run_parallel([(fn, (bounds[k], bounds[k + 1])) for k in range(parts)])


_SCRATCH = threading.local()


def _scratch(size: int, dtype: Any, slot: str = "") -> np.ndarray:
    """A 1-D work array of ``size`` elements, reused by this thread's later calls (per
    ``slot``: a caller holding one slot's array takes another's).

    The im2col/col2im buffers are megabytes; a fresh one per call came as new pages
    from the OS and page-faulted on every run (about 2,600 faults per cnn step).
    Only for scratch that never leaves the kernel: results are always fresh arrays.
    """
    pool = getattr(_SCRATCH, "arrays", None)
    if pool is None:
        pool = _SCRATCH.arrays = {}
    key = (slot, np.dtype(dtype))
    a = pool.get(key)
    if a is None or a.size < size:
        a = pool[key] = np.empty(size, key[1])
    return a[:size]


def _aligned(a: np.ndarray) -> np.ndarray:
    """``a`` C-contiguous from a multiple of :data:`buffers.ALIGN` bytes: itself when it is,
    else a copy in this thread's scratch (the kernels' vector loads of a filter row then
    never cross a cache line)."""
    if a.flags.c_contiguous and a.ctypes.data % buffers.ALIGN == 0:
        return a
    out = _aligned_scratch(a.size, a.dtype, "aligned").reshape(a.shape)
    out[...] = a
    return out


def _aligned_part(buf: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` elements of 1-D ``buf`` (``buffers.ALIGN`` bytes longer) that start on
    a multiple of ALIGN bytes."""
    start = -buf.ctypes.data % buffers.ALIGN // buf.itemsize
    return buf[start:start + size]


def _aligned_scratch(size: int, dtype: Any, slot: str) -> np.ndarray:
    """:func:`_scratch` starting on a multiple of :data:`buffers.ALIGN` bytes."""
    return _aligned_part(_scratch(size + buffers.ALIGN // np.dtype(dtype).itemsize, dtype, slot),
                         size)


# --- fallback and attribute parsing -------------------------------------------------------
def _reference(node: Any, args: list) -> list:
    """The op's reference evaluation: its results, or its errors naming the user's op."""
    from graphflow.runtime.reference import eval_node

    return eval_node(node, list(args), None)


def _window(node: Any, name: str) -> tuple[int, int] | None:
    """The (h, w) entries of a 4-element NHWC attr (strides, ksize); None if unusual."""
    v = node.attrs.get(name)
    if v is None or len(v) != 4 or v[0] != 1 or v[3] != 1 or v[1] < 1 or v[2] < 1:
        return None
    return int(v[1]), int(v[2])


def _nhwc_config(node: Any, kernel_attr: str | None) -> tuple | None:
    """``(k, strides, padding)`` of an NHWC SAME/VALID window op, or None (use the reference).

    ``k`` is the (h, w) of attr ``kernel_attr`` (pools' ksize), or None for convolutions,
    which must have dilations 1.
    """
    a = node.attrs
    if a.get("data_format") != "NHWC" or a.get("padding") not in ("SAME", "VALID"):
        return None
    if kernel_attr is None:
        if tuple(a.get("dilations", (1, 1, 1, 1))) != (1, 1, 1, 1):
            return None
        k: tuple[int, int] | None = (0, 0)
    else:
        k = _window(node, kernel_attr)
    s = _window(node, "strides")
    if k is None or s is None:
        return None
    return k, s, a["padding"]


def _out_size(size: int, k: int, stride: int, padding: str) -> tuple[int, int]:
    """(output size, padding before) of one spatial dim by TF's rule; size -1 if negative.

    SAME: ``ceil(size / stride)`` outputs, ``max((out - 1) * stride + k - size, 0)``
    padding with the smaller half before. VALID: ``(size - k) // stride + 1``.
    """
    if padding == "SAME":
        out = -(-size // stride)
        return out, max((out - 1) * stride + k - size, 0) // 2
    span = size - k
    return (span // stride + 1 if span >= 0 else -1), 0


def _sizes(v: np.ndarray) -> tuple[int, ...] | None:
    """A shape-valued int input as 4 non-negative ints, or None (the reference reports it)."""
    if v.dtype.kind not in "iu" or v.size != 4:
        return None
    s = tuple(int(i) for i in v.ravel())
    return s if min(s) >= 0 else None


def _is_float(*arrays: np.ndarray) -> bool:
    """All arrays share float32 or float64 (the dtypes the kernels are compiled for)."""
    d = arrays[0].dtype
    return d in _FLOATS and all(a.dtype == d for a in arrays)


# --- scalar helpers ------------------------------------------------------------------------
def _exp(x):  # pragma: no cover - replaced by the overload inside Numba code
    return np.exp(x)


@overload(_exp)
def _exp_impl(x):
    """Vectorisable exp of the argument's own precision (see fastmath.py)."""
    if x == types.float32:
        return lambda x: exp_f32(x)
    return lambda x: exp_f64(x)


# Flat loops index with uint64: a signed index gets NumPy's negative-index wraparound
# check on every access, which keeps LLVM from vectorising the loop (im2col ran 3x
# slower). Loops are written out in each kernel rather than in small helper functions:
# every Numba function costs ~0.4 s to compile per dtype, and cold compile time counts.
_U = np.uint64


# --- convolution kernels -----------------------------------------------------------------
@_jit
def _im2col(x, cols, kh, kw, sh, sw, pt, pl, oh, ow, r0, r1):
    """Rows ``r0..r1`` of the im2col matrix of NHWC ``x`` into ``cols[:r1 - r0]``.

    Row ``(n, oy, ox)`` (flat) holds its window as ``[kh, kw, C]``, the order of a
    filter reshaped to ``[kh * kw * C, out]``; padding is written as zeros. Each
    window row is one contiguous copy of its in-bounds ``[lo, hi)`` part.
    """
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    xf, cf = x.reshape(-1), cols.reshape(-1)
    seg = kw * c
    kdim = kh * seg
    zero = np.zeros(1, cols.dtype)[0]
    for r in range(r0, r1):
        n = r // (oh * ow)
        q = r - n * oh * ow
        oy = q // ow
        x0 = (q - oy * ow) * sw - pl
        lo = max(0, -x0) * c
        hi = max(min(kw, w - x0) * c, lo)
        useg, ulo, un = _U(seg), _U(lo), _U(hi - lo)
        for i in range(kh):
            d = _U((r - r0) * kdim + i * seg)
            y = oy * sh - pt + i
            inside = 0 <= y < h
            if not inside or lo > 0 or hi < seg:  # some padding: zeros first
                for t in range(useg):
                    cf[d + t] = zero
            if inside:
                src, dst = _U(((n * h + y) * w + x0) * c + lo), d + ulo
                for t in range(un):
                    cf[dst + t] = xf[src + t]


@_jit
def _im2col_t(x, cols, kh, kw, sh, sw, pt, pl, oh, ow, r0, r1):
    """The transpose of :func:`_im2col`: ``cols[(i, j, ch), r - r0]`` for rows ``r0..r1``.

    For few channels a window row is only ``kw * C`` elements, too short a copy; here
    each run is one tap over consecutive outputs ``ox`` (up to ``ow`` elements read
    with stride ``sw * C``). Conv layers on images (C = 1 or 3) im2col 2-3x faster.
    """
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    xf, cf = x.reshape(-1), cols.reshape(-1)
    m = cols.shape[1]
    zero = np.zeros(1, cols.dtype)[0]
    # Per tap column j, the outputs ox reading inside the row: 0 <= ox * sw + j - pl < w
    # (computed once: integer divisions per run cost more than short copies).
    first = np.empty(kw, np.int64)
    last = np.empty(kw, np.int64)
    for j in range(kw):
        first[j] = -((j - pl) // sw)
        last[j] = (w - 1 - j + pl) // sw + 1
    r = r0
    while r < r1:
        n = r // (oh * ow)
        q = r - n * oh * ow
        oy = q // ow
        oxa = q - oy * ow  # this image row's outputs in the range: [oxa, oxb)
        oxb = min(ow, oxa + (r1 - r))
        col0 = r - r0 - oxa  # the column of output ox is col0 + ox
        for i in range(kh):
            y = oy * sh - pt + i
            for j in range(kw):
                a = max(oxa, first[j])
                b = max(min(oxb, last[j]), a)
                if y < 0 or y >= h:
                    a = b = oxb
                for ch in range(c):
                    d = ((i * kw + j) * c + ch) * m + col0
                    if a > oxa or b < oxb:  # some padding: zeros first
                        for t in range(_U(d + oxa), _U(d + oxb)):
                            cf[t] = zero
                    src = _U(((n * h + y) * w + a * sw + j - pl) * c + ch)
                    dst, step = _U(d + a), _U(sw * c)
                    if step == 1:  # one channel, stride 1: a plain copy, which vectorises
                        for t in range(_U(b - a)):
                            cf[dst + t] = xf[src + t]
                    else:
                        for t in range(_U(b - a)):
                            cf[dst + t] = xf[src + t * step]
        r += oxb - oxa


@_jit
def _col2im(dcols, dx, kh, kw, sh, sw, pt, pl, oh, ow, r0, r1):
    """Adds rows ``r0..r1`` of a window-gradient matrix (im2col layout) onto NHWC ``dx``.

    Rows are visited from last to first, so each element of ``dx`` receives its
    windows' contributions in ascending tap order, as the reference adds them.
    """
    h, w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    df, cf = dx.reshape(-1), dcols.reshape(-1)
    seg = kw * c
    kdim = kh * seg
    for r in range(r1 - 1, r0 - 1, -1):
        n = r // (oh * ow)
        q = r - n * oh * ow
        oy = q // ow
        x0 = (q - oy * ow) * sw - pl
        lo = max(0, -x0) * c
        hi = max(min(kw, w - x0) * c, lo)
        un = _U(hi - lo)
        for i in range(kh):
            y = oy * sh - pt + i
            if 0 <= y < h:
                dst = _U(((n * h + y) * w + x0) * c + lo)
                src = _U((r - r0) * kdim + i * seg + lo)
                for t in range(un):
                    df[dst + t] += cf[src + t]


# Elements of the column buffer per GEMM (8 MiB of float32): the buffer stays near the
# cache and the GEMMs stay large. Smaller chunks (1 MiB) were as fast with one BLAS
# thread but up to 5x slower with a multi-threaded OpenBLAS on a busy machine, where
# every GEMM call wakes and waits for its threads.
_CHUNK = 1 << 21


# Convolutions split over graphflow's threads only when the BLAS is serial; a threaded
# BLAS parallelises each GEMM itself, and two callers would oversubscribe the cores.
# None: ask the BLAS (its thread count can change at run time); tests force True.
_BLAS_SERIAL: bool | None = None


def _gemm_work(work: int) -> int:
    """The work to give :func:`_split` for a piece that calls BLAS (0: do not split)."""
    serial = _BLAS_SERIAL if _BLAS_SERIAL is not None else blas.threads() == 1
    return work if serial else 0


# Up to this many input channels im2col writes the transposed matrix (see _im2col_t).
_FEW_CHANNELS = 4


def _chunk_rows(kdim: int) -> int:
    return max(1, _CHUNK // max(kdim, 1))


def _conv_geometry(node: Any, x_shape: tuple, f_shape: tuple) -> tuple | None:
    """Checked sizes ``(sh, sw, oh, pt, ow, pl)`` of a convolution, or None (reference)."""
    cfg = _nhwc_config(node, None)
    if cfg is None or len(x_shape) != 4 or len(f_shape) != 4:
        return None
    _, (sh, sw), padding = cfg
    kh, kw, fc, _ = f_shape
    if kh == 0 or kw == 0 or x_shape[3] != fc:
        return None
    oh, pt = _out_size(x_shape[1], kh, sh, padding)
    ow, pl = _out_size(x_shape[2], kw, sw, padding)
    if oh < 0 or ow < 0:
        return None
    return sh, sw, oh, pt, ow, pl


def _direct(dtype: Any, channels: int) -> bool:
    """Whether the register-blocked kernels (:mod:`convkernels`) take a convolution whose
    result has ``channels`` channels: float, whole vectors of channels."""
    return convkernels.available(dtype) and channels % convkernels.lanes(dtype) == 0


class _Padding:
    """An NHWC input inside zeros of height ``hp`` and width ``wp`` at ``(top, left)``,
    made a few images at a time (:meth:`images`) where the kernels take them so: each
    thread pads its own images into its scratch right before convolving them (from
    cache), instead of one thread padding the whole batch first.

    Attributes:
      n, hp, wp, c: the padded shape; image_bytes: one padded image's size.
    """

    def __init__(self, x: np.ndarray, top: int, left: int, hp: int, wp: int) -> None:
        self.x = np.ascontiguousarray(x)
        self.top, self.left = top, left
        self.n, self.h, self.w, self.c = x.shape
        self.hp, self.wp = hp, wp
        self.image_bytes = hp * wp * self.c * x.dtype.itemsize
        self.same = top == left == 0 and (hp, wp) == (self.h, self.w)

    def images(self, n0: int, n1: int, slot: str = "pad") -> np.ndarray:
        """Images ``n0..n1`` padded (the caller's thread's scratch ``slot``, or ``x`` itself
        when there is no padding)."""
        x, top, left, h, w = self.x, self.top, self.left, self.h, self.w
        if self.same:
            return x[n0:n1]
        xp = _scratch((n1 - n0) * self.hp * self.wp * self.c, x.dtype, slot).reshape(
            n1 - n0, self.hp, self.wp, self.c)
        # Zeros for the border only: the interior is written once, by the copy.
        xp[:, :top] = 0
        xp[:, top + h:] = 0
        xp[:, top:top + h, :left] = 0
        xp[:, top:top + h, left + w:] = 0
        xp[:, top:top + h, left:left + w] = x[n0:n1]
        return xp


def _window_input(x: np.ndarray, kh: int, kw: int, geo: tuple) -> _Padding:
    """The convolution input padded so every output's ``kh x kw`` window lies inside it
    (``geo`` from :func:`_conv_geometry`)."""
    sh, sw, oh, pt, ow, pl = geo
    hp = max(pt + x.shape[1], (oh - 1) * sh + kh)
    wp = max(pl + x.shape[2], (ow - 1) * sw + kw)
    return _Padding(x, pt, pl, hp, wp)


# Padded images per kernel call when each thread pads its own (see _Padding): a chunk
# this size stays in L2 from the copy to the convolution.
_PAD_CHUNK_BYTES = 256 << 10


def _image_chunks(pad: _Padding, n0: int, n1: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(first image, count, padded images)`` covering images ``n0..n1`` of ``pad``."""
    chunk = max(1, _PAD_CHUNK_BYTES // max(pad.image_bytes, 1))
    for a in range(n0, n1, chunk):
        b = min(a + chunk, n1)
        yield a, b - a, pad.images(a, b)


def _real_rows(x: np.ndarray, f: np.ndarray, top: int) -> tuple[int, int]:
    """The rows of ``x`` padded at ``top`` that the kernels may not skip: those of ``x``
    itself, or all when ``f`` holds inf or NaN (whose products with padding's zeros are
    NaN in the reference's sum)."""
    if np.isfinite(f).all():
        return top, top + x.shape[1]
    return 0, top + x.shape[1] + f.shape[0]


# Filter-gradient pixel spans per geometry (small int arrays, the same every step).
_wgrad_spans = functools.lru_cache(maxsize=64)(convkernels.wgrad_spans)


# A filter up to this size is read from L1 by every tile of the register-blocked kernels.
_L1_BYTES = 32 << 10


def _conv_rows(pad: _Padding, f: np.ndarray, out: np.ndarray, sh: int, sw: int,
               real: tuple[int, int], bias: np.ndarray | None = None,
               relu: bool = False) -> None:
    """``out`` = the VALID convolution of the padded input (rows outside ``real = (top,
    bottom)`` zeros) by ``f`` (HWIO), plus ``bias`` ([oc], contiguous) and through relu if
    asked, with :func:`convkernels.conv_kernel`: whole images per thread, each padding
    its own chunks; a batch too small for that splits the output pixels instead."""
    n, hp, wp, c = pad.n, pad.hp, pad.wp, pad.c
    kh, kw, _, oc = f.shape
    _, oh, ow, _ = out.shape
    dtype = pad.x.dtype
    fn = convkernels.conv_kernel(dtype, oc)
    f = _aligned(f)
    fa, oa = f.ctypes.data, out.ctypes.data
    ba = None if bias is None else bias.ctypes.data
    # Window rows at a time when the filter outgrows L1 (then a block of it is read from
    # there by several tiles; see convkernels.conv).
    ib = 1 if f.nbytes > _L1_BYTES else kh
    epi = (0 if bias is None else convkernels.BIAS) | (convkernels.RELU if relu else 0)
    rest = (oh, ow, sh * wp * c, hp * wp * c, wp * c, sw * c, kh, kw * c, ib, epi, sh, *real)
    work = out.size * kh * kw * c
    image_out = oh * ow * oc * dtype.itemsize
    if n >= 4 * _THREADS:

        def images(n0: int, n1: int) -> None:
            for a, k, xp in _image_chunks(pad, n0, n1):
                fn(xp.ctypes.data, fa, oa + a * image_out, ba, 0, k * oh * ow, *rest)

        _split(images, n, work)
        return
    xa = pad.images(0, n, "").ctypes.data
    _split(lambda lo, hi: fn(xa, fa, oa, ba, lo, hi, *rest), n * oh * ow, work)


# --- Winograd convolutions ------------------------------------------------------------
# Stride-1 5x5 and 3x3 float32 convolutions (Conv2D, the input gradient as a
# convolution, and the filter gradient) run as Winograd's (:mod:`winograd`): 2.8x and 4x
# fewer multiply-adds, rounding 5-30x a direct sum's (see there).
# GRAPHFLOW_CONV_WINOGRAD=0 keeps every convolution direct.
WINOGRAD = os.environ.get("GRAPHFLOW_CONV_WINOGRAD", "1") != "0"
# Multiply-adds (of the direct convolution) below which the direct kernel runs: the
# filter's transform and the kernel's blocks cost more than they save on small ones.
_WINOGRAD_MIN_WORK = 1 << 22


def _winograd_takes(dtype: np.dtype, kh: int, kw: int, c: int, oc: int, work: int) -> bool:
    """Whether a stride-1 convolution (or gradient) of ``work`` direct multiply-adds goes
    the Winograd way (see :func:`winograd.takes`)."""
    return WINOGRAD and work >= _WINOGRAD_MIN_WORK and winograd.takes(dtype, kh, kw, c, oc)


def _split_tiles(fn: Callable[[int, int], Any], tiles: int, bt: int, work: int) -> list[Any]:
    """:func:`_split` of ``fn(t0, t1)`` over ``tiles`` Winograd tiles: whole blocks of ``bt``
    per thread where there are enough."""
    blocks = -(-tiles // bt)
    if blocks >= _THREADS:
        return _split(lambda b0, b1: fn(b0 * bt, min(b1 * bt, tiles)), blocks, work)
    return _split(fn, tiles, work)


@_jit
def _winograd_filter(f, g, u):
    """``u[a*r + b, x] = sum_ij g[a, i] g[b, j] f[i, j*size + x]`` in float64 (``r``, ``taps``
    = g's shape, ``size`` = u's columns), rounded once into ``u``'s dtype; ``x`` in
    chunks so the rows' pass stays in L1. The filter's transform, and (with A^T) the
    filter gradient's from its transformed sums."""
    r, taps, size = g.shape[0], g.shape[1], u.shape[1]
    chunk = 512
    t = np.empty((r * taps, chunk), np.float64)
    acc = np.empty(chunk, np.float64)
    for x0 in range(0, size, chunk):
        k = min(chunk, size - x0)
        for a in range(r):
            for j in range(taps):
                row = t[a * taps + j]
                for x in range(k):
                    row[x] = 0.0
                for i in range(taps):
                    ga = g[a, i]
                    if ga != 0.0:  # G and A^T are a third zeros
                        src = f[i, j * size + x0:j * size + x0 + k]
                        for x in range(k):
                            row[x] += ga * np.float64(src[x])
        for a in range(r):
            for b in range(r):
                for x in range(k):
                    acc[x] = 0.0
                for j in range(taps):
                    gb = g[b, j]
                    if gb != 0.0:
                        row = t[a * taps + j]
                        for x in range(k):
                            acc[x] += gb * row[x]
                out = u[a * r + b, x0:x0 + k]
                for x in range(k):
                    out[x] = acc[x]


def _conv_winograd(x: np.ndarray, top: int, left: int, f: np.ndarray, out: np.ndarray,
                   bias: np.ndarray | None = None, relu: bool = False) -> bool:
    """``out`` = the stride-1 convolution of ``x`` (placed at ``(top, left)`` in zeros) by
    ``f``, plus ``bias`` and through relu if asked, by :mod:`winograd` when it takes the
    case (5x5 or 3x3, float32, whole vectors of channels, a finite filter, enough work):
    returns whether it did. Tiles with an output that is not finite are computed again
    directly, so inf and NaN land where the direct sum puts them."""
    n, h, w, c = x.shape
    kh, kw, _, oc = f.shape
    _, oh, ow, _ = out.shape
    dtype = x.dtype
    work = n * oh * ow * kh * kw * c * oc
    if (f.dtype != dtype or not _winograd_takes(dtype, kh, kw, c, oc, work)
            or not np.isfinite(f).all()):
        return False
    sch = winograd.SCHEMES[kh]
    th, tw = -(-oh // sch.m), -(-ow // sch.m)
    u = np.empty((36, c * oc), dtype)
    _winograd_filter(np.ascontiguousarray(f).reshape(kh, kw * c * oc), sch.g, u)
    fn = winograd.kernel(dtype, c, oc, kh)
    tpi = th * tw
    bt = winograd.block_tiles(dtype, oc)
    vsize, msize = winograd.scratch_sizes(dtype, c, oc, bt)
    xa, ua, oa = x.ctypes.data, u.ctypes.data, out.ctypes.data
    ba = None if bias is None else bias.ctypes.data
    epi = (0 if bias is None else convkernels.BIAS) | (convkernels.RELU if relu else 0)
    geo = (tw, tpi, h, w, top, left, oh, ow, epi, bt)

    def tiles(t0: int, t1: int) -> None:
        v = _aligned_scratch(vsize, dtype, "winograd_v")
        m = _aligned_scratch(msize, dtype, "winograd_m")
        flags = _scratch(t1 - t0, np.uint8, "winograd_flags")
        fn(xa, ua, oa, ba, v.ctypes.data, m.ctypes.data, flags.ctypes.data, t0, t1, *geo)
        redo = np.flatnonzero(flags)
        if redo.size:
            _direct_tiles(x, top, left, f, out, ba, epi, redo + t0, tw, sch.m)

    _split_tiles(tiles, n * tpi, bt, work // 3)
    return True


def _direct_tiles(x: np.ndarray, top: int, left: int, f: np.ndarray, out: np.ndarray,
                  ba: int | None, epi: int, tiles: np.ndarray, tw: int, m: int) -> None:
    """The m x m output ``tiles`` of :func:`_conv_winograd` again (``ba``: the bias's
    address, ``epi``: its epilogue bits), by the direct kernel on their images, padded."""
    kh, kw, c, oc = f.shape
    _, oh, ow, _ = out.shape
    direct = convkernels.conv_kernel(x.dtype, oc)
    fa = _aligned(f).ctypes.data
    pad = _Padding(x, top, left, max(oh + kh - 1, top + x.shape[1]),
                   max(ow + kw - 1, left + x.shape[2]))
    hp, wp = pad.hp, pad.wp
    tpi = -(-oh // m) * tw
    for img in np.unique(tiles // tpi).tolist():
        xp = pad.images(img, img + 1, "winograd_redo").ctypes.data
        image_out = out.ctypes.data + img * oh * ow * oc * out.itemsize
        for t in (tiles[tiles // tpi == img] % tpi).tolist():
            ty, tx = t // tw, t % tw
            for oy in range(m * ty, min(m * ty + m, oh)):
                p0 = oy * ow + m * tx
                direct(xp, fa, image_out, ba, p0, p0 + min(m, ow - m * tx), oh, ow, wp * c,
                       hp * wp * c, wp * c, c, kh, kw * c, kh, epi, 1, 0, hp)


def conv2d(node: Any, args: list) -> list[np.ndarray]:
    """Conv2D (NHWC, SAME/VALID, dilation 1) by chunked im2col + GEMM.

    Args:
      node: the Conv2D IR node (attrs strides, padding, data_format, dilations).
      args: ``[input [N, H, W, C], filter [kh, kw, C, out]]``.

    Returns:
      ``[output [N, oh, ow, out]]``.
    """
    x, f = args
    if not _is_float(x, f) or x.ndim != 4 or f.ndim != 4:
        return _reference(node, args)
    geo = _conv_geometry(node, x.shape, f.shape)
    if geo is None:
        return _reference(node, args)
    sh, sw, oh, pt, ow, pl = geo
    n, _, _, c = x.shape
    kh, kw, _, oc = f.shape
    m, kdim = n * oh * ow, kh * kw * c
    # Every path below writes every element; only an empty window leaves zeros.
    out = (buffers.empty if kdim else buffers.zeros)((n, oh, ow, oc), x.dtype)
    if m == 0 or oc == 0 or kdim == 0:
        return [out]
    x = np.ascontiguousarray(x)
    fm = np.ascontiguousarray(f).reshape(kdim, oc)
    out2 = out.reshape(m, oc)
    if kh == kw == 1 and sh == sw == 1:  # a 1x1 stride-1 window is its input: one GEMM
        np.dot(x.reshape(m, c), fm, out=out2)
        return [out]
    if sh == sw == 1 and _conv_winograd(x, pt, pl, f, out):
        return [out]
    if _direct(x.dtype, oc):
        _conv_rows(_window_input(x, kh, kw, geo), f, out, sh, sw, _real_rows(x, f, pt))
        return [out]
    rows = _chunk_rows(kdim)
    few = c <= _FEW_CHANNELS

    def piece(r0: int, r1: int) -> None:
        buf = _scratch(min(rows, r1 - r0) * kdim, x.dtype)
        for a in range(r0, r1, rows):
            b = min(a + rows, r1)
            if few:
                cols_t = buf[:(b - a) * kdim].reshape(kdim, b - a)
                _im2col_t(x, cols_t, kh, kw, sh, sw, pt, pl, oh, ow, a, b)
                np.dot(cols_t.T, fm, out=out2[a:b])  # BLAS reads the transpose in place
            else:
                cols = buf[:(b - a) * kdim].reshape(b - a, kdim)
                _im2col(x, cols, kh, kw, sh, sw, pt, pl, oh, ow, a, b)
                np.dot(cols, fm, out=out2[a:b])

    _split(piece, m, _gemm_work(m * kdim * oc))
    return [out]


def conv2d_epilogue(node: Any, args: list, bias: np.ndarray | None,
                    relu: bool) -> list[np.ndarray] | None:
    """Conv2D, then ``+ bias`` (when given) and relu (when ``relu``), the two applied by
    the register-blocked kernel as it stores each output: the same numbers as the three
    ops one after the other, without two more passes over the result.

    Args:
      node: the Conv2D IR node.
      args: ``[input [N, H, W, C], filter [kh, kw, C, out]]``.
      bias: None, or the bias (``out`` elements, broadcast along the last axis).
      relu: whether relu follows.

    Returns:
      ``[relu(conv + bias)]``, or None when the kernel does not take the case (the
      caller then runs :func:`conv2d` and the epilogue).
    """
    x, f = args
    if not _is_float(x, f) or x.ndim != 4 or f.ndim != 4 or x.dtype != f.dtype:
        return None
    oc = f.shape[3]
    if bias is not None:
        # The add broadcasts [oc] or [1, ..., 1, oc] along the output's last axis only.
        if (bias.dtype != x.dtype or bias.ndim > 4 or bias.size != oc
                or (bias.ndim and bias.shape[-1] != oc)):
            return None
        bias = np.ascontiguousarray(bias).reshape(oc)
    geo = _conv_geometry(node, x.shape, f.shape)
    if geo is None or not _direct(x.dtype, oc):
        return None
    sh, sw, oh, pt, ow, pl = geo
    n, _, _, c = x.shape
    kh, kw = f.shape[:2]
    if n * oh * ow == 0 or kh * kw * c == 0:
        return None
    out = buffers.empty((n, oh, ow, oc), x.dtype)  # every element written
    x = np.ascontiguousarray(x)
    if sh == sw == 1 and _conv_winograd(x, pt, pl, f, out, bias, relu):
        return [out]
    _conv_rows(_window_input(x, kh, kw, geo), f, out, sh, sw, _real_rows(x, f, pt), bias, relu)
    return [out]


def conv2d_backprop_input(node: Any, args: list) -> list[np.ndarray]:
    """Conv2DBackpropInput: GEMM of out_backprop with the filter, then col2im.

    Args:
      node: the Conv2DBackpropInput IR node.
      args: ``[input_sizes (4 ints), filter [kh, kw, C, out], out_backprop [N, oh, ow, out]]``.

    Returns:
      ``[gradient of the input, of shape input_sizes]``.
    """
    sizes, f, dy = args
    shape = _sizes(np.asarray(sizes))
    if shape is None or not _is_float(f, dy) or f.ndim != 4 or dy.ndim != 4:
        return _reference(node, args)
    geo = _conv_geometry(node, shape, f.shape)
    if geo is None:
        return _reference(node, args)
    sh, sw, oh, pt, ow, pl = geo
    n, _, _, c = shape
    kh, kw, _, oc = f.shape
    if dy.shape != (n, oh, ow, oc):
        return _reference(node, args)
    m, kdim = n * oh * ow, kh * kw * c
    if m and kdim and oc and sh == sw == 1 and _direct(dy.dtype, c) and np.isfinite(f).all():
        # At stride 1 the input gradient is a convolution of the gradient, padded by
        # the window less the forward padding, with the flipped, transposed filter.
        # That padding is not the reference's (it adds in-bounds terms only), so a
        # filter with inf or NaN, whose products with it are NaN, goes the GEMM way.
        h, w = shape[1], shape[2]
        dx = buffers.empty(shape, dy.dtype)  # every element written
        flipped = f[::-1, ::-1].transpose(0, 1, 3, 2)
        dy = np.ascontiguousarray(dy)
        if _conv_winograd(dy, kh - 1 - pt, kw - 1 - pl, flipped, dx):
            return [dx]
        dyp = _Padding(dy, kh - 1 - pt, kw - 1 - pl, h + kh - 1, w + kw - 1)
        _conv_rows(dyp, flipped, dx, 1, 1, (kh - 1 - pt, kh - 1 - pt + oh))
        return [dx]
    dx = buffers.zeros(shape, dy.dtype)
    if m == 0 or kdim == 0 or oc == 0:
        return [dx]
    dy2 = np.ascontiguousarray(dy).reshape(m, oc)
    fmt = np.ascontiguousarray(f).reshape(kdim, oc).T  # [oc, kdim], a view BLAS reads as is
    if kh == kw == 1 and sh == sw == 1:
        np.dot(dy2, fmt, out=dx.reshape(m, c))
        return [dx]
    rows = _chunk_rows(kdim)
    per_image = oh * ow

    def piece(n0: int, n1: int) -> None:
        # Whole images per thread: windows of one image overlap, images never do.
        r0, r1 = n0 * per_image, n1 * per_image
        dcols = _scratch(min(rows, r1 - r0) * kdim, dy.dtype).reshape(-1, kdim)
        for a in range(r0, r1, rows):
            b = min(a + rows, r1)
            np.dot(dy2[a:b], fmt, out=dcols[:b - a])
            _col2im(dcols, dx, kh, kw, sh, sw, pt, pl, oh, ow, a, b)

    _split(piece, n, _gemm_work(m * kdim * oc))
    return [dx]


def _aligned_zeros(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A fresh zero array starting on a multiple of :data:`buffers.ALIGN` bytes."""
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    return _aligned_part(np.zeros(size + buffers.ALIGN // dtype.itemsize, dtype),
                         size).reshape(shape)


def _wgrad_winograd(x: np.ndarray, dy: np.ndarray, top: int, left: int, fshape: tuple,
                    with_bias: bool) -> list[np.ndarray] | None:
    """The stride-1 filter gradient (and the bias's) by :func:`winograd.wgrad_kernel` when
    it takes the case (as :func:`_conv_winograd`), else None. Any sum not finite (an
    inf or NaN in the input or gradient, or an overflow in the transforms) sends the
    whole gradient to the direct kernel: None."""
    n, h, w, c = x.shape
    _, oh, ow, oc = dy.shape
    kh, kw = fshape[:2]
    dtype = x.dtype
    work = n * oh * ow * kh * kw * c * oc
    if dy.dtype != dtype or not _winograd_takes(dtype, kh, kw, c, oc, work):
        return None
    sch = winograd.SCHEMES[kh]
    th, tw = -(-oh // sch.m), -(-ow // sch.m)
    fn = winograd.wgrad_kernel(dtype, c, oc, kh)
    tpi = th * tw
    bt = winograd.block_tiles(dtype, oc, wgrad=True)
    vsize, dsize = winograd.scratch_sizes(dtype, c, oc, bt)
    x = np.ascontiguousarray(x)
    dy = np.ascontiguousarray(dy)
    geo = (tw, tpi, h, w, top, left, oh, ow, bt)

    def tiles(t0: int, t1: int) -> tuple[np.ndarray, np.ndarray | None]:
        m = _aligned_zeros((36, c, oc), dtype)  # the kernel adds to them
        db = np.zeros(oc, dtype) if with_bias else None
        v = _aligned_scratch(vsize, dtype, "winograd_v")
        d = _aligned_scratch(dsize, dtype, "winograd_m")
        fn(x.ctypes.data, dy.ctypes.data, m.ctypes.data, None if db is None else db.ctypes.data,
           v.ctypes.data, d.ctypes.data, t0, t1, *geo)
        return m, db

    parts = _split_tiles(tiles, n * tpi, bt, work // 3)
    m, db = parts[0]
    for p, q in parts[1:]:
        m += p
        if db is not None:
            db += q
    if not np.isfinite(m).all():
        return None
    df = np.empty((kh * kw, c * oc), dtype)
    _winograd_filter(m.reshape(6, 6 * c * oc), sch.a_t_wgrad, df)
    df = df.reshape(fshape)
    return [df, db] if with_bias else [df]


def conv2d_backprop_filter_with_bias(node: Any, args: list) -> list[np.ndarray]:
    """_Conv2DBackpropFilterWithBias: the filter's gradient and ``sum(out_backprop, axis=(0,
    1, 2))``, the second summed per image (over its pixels, in the first's pass over
    the image) then over images, where the register-blocked kernel runs; else
    :func:`conv2d_backprop_filter` and the reference's sum.

    Args:
      node: the _Conv2DBackpropFilterWithBias IR node.
      args: as :func:`conv2d_backprop_filter`'s.

    Returns:
      ``[gradient of the filter, gradient of the bias [out] (or [1, 1, 1, out]: attr
      keep_dims)]``.
    """
    from graphflow.ops.nn_ops import conv_bias_grad

    out = conv2d_backprop_filter(node, args, with_bias=True)
    keep = node.attrs["bias_op"] == "Sum" and bool(node.attrs["keep_dims"])
    if len(out) == 1:
        return [out[0], conv_bias_grad(args[2], node.attrs["bias_op"], keep)]
    if keep and out[1].ndim == 1:
        return [out[0], out[1].reshape(1, 1, 1, -1)]
    return out


def conv2d_backprop_filter(node: Any, args: list, with_bias: bool = False) -> list[np.ndarray]:
    """Conv2DBackpropFilter: chunked im2col of the input, GEMM with out_backprop, summed.

    Args:
      node: the Conv2DBackpropFilter IR node.
      args: ``[input [N, H, W, C], filter_sizes (4 ints), out_backprop [N, oh, ow, out]]``.
      with_bias: also return the bias's gradient when the register-blocked kernel runs
        (:func:`conv2d_backprop_filter_with_bias`).

    Returns:
      ``[gradient of the filter, of shape filter_sizes]`` (and the bias's).
    """
    x, sizes, dy = args
    fshape = _sizes(np.asarray(sizes))
    if fshape is None or not _is_float(x, dy) or x.ndim != 4 or dy.ndim != 4:
        return _reference(node, args)
    geo = _conv_geometry(node, x.shape, fshape)
    if geo is None:
        return _reference(node, args)
    sh, sw, oh, pt, ow, pl = geo
    n, _, _, c = x.shape
    kh, kw, _, oc = fshape
    if dy.shape != (n, oh, ow, oc):
        return _reference(node, args)
    m, kdim = n * oh * ow, kh * kw * c
    if m == 0 or kdim == 0 or oc == 0:
        return [np.zeros(fshape, x.dtype)]
    x = np.ascontiguousarray(x)
    dy2 = np.ascontiguousarray(dy).reshape(m, oc)
    if kh == kw == 1 and sh == sw == 1:
        return [np.dot(x.reshape(m, c).T, dy2).reshape(fshape)]
    if sh == sw == 1:
        out = _wgrad_winograd(x, dy2.reshape(dy.shape), pt, pl, fshape, with_bias)
        if out is not None:
            return out
    if _direct(x.dtype, oc):
        pad = _window_input(x, kh, kw, geo)
        hp, wp = pad.hp, pad.wp
        fn = convkernels.wgrad_kernel(x.dtype, oc)
        spans = _wgrad_spans(kh, kw, c, oh, ow, sh, sw, (pt, pt + x.shape[1]),
                             (pl, pl + x.shape[2]))
        rest = (oh, ow, sh * wp * c, hp * wp * c, wp * c, sw * c, kh, kw * c)
        image_dy = oh * ow * oc * dy2.itemsize

        def images(n0: int, n1: int) -> tuple[np.ndarray, np.ndarray]:
            df = np.zeros(fshape, x.dtype)  # the kernel adds to them
            db = np.zeros(oc, x.dtype)
            for a, k, xp in _image_chunks(pad, n0, n1):
                fn(xp.ctypes.data, dy2.ctypes.data + a * image_dy, df.ctypes.data,
                   spans.ctypes.data, db.ctypes.data if with_bias else None, 0, k, *rest)
            return df, db

        parts = _split(images, n, m * kdim * oc)
        df, db = parts[0]
        for p, q in parts[1:]:
            df += p
            db += q
        return [df, db] if with_bias else [df]
    rows = _chunk_rows(kdim)

    few = c <= _FEW_CHANNELS

    def piece(r0: int, r1: int) -> np.ndarray:
        buf = _scratch(min(rows, r1 - r0) * kdim, x.dtype)
        acc = np.zeros((kdim, oc), x.dtype)
        for a in range(r0, r1, rows):
            b = min(a + rows, r1)
            if few:
                cols_t = buf[:(b - a) * kdim].reshape(kdim, b - a)
                _im2col_t(x, cols_t, kh, kw, sh, sw, pt, pl, oh, ow, a, b)
                acc += np.dot(cols_t, dy2[a:b])
            else:
                cols = buf[:(b - a) * kdim].reshape(b - a, kdim)
                _im2col(x, cols, kh, kw, sh, sw, pt, pl, oh, ow, a, b)
                acc += np.dot(cols.T, dy2[a:b])
        return acc

    parts = _split(piece, m, _gemm_work(m * kdim * oc))
    df = parts[0]
    for p in parts[1:]:
        df += p
    return [df.reshape(fshape)]


# --- matrix products -----------------------------------------------------------------------
def matmul(node: Any, args: list) -> list[np.ndarray]:
    """MatMul (2-D, float): NumPy's BLAS (:func:`blas.matmul`: small products on one
    BLAS thread), the rows split over graphflow's threads when the BLAS is serial.

    Args:
      node: the MatMul IR node (attrs transpose_a, transpose_b).
      args: ``[a, b]``.

    Returns:
      ``[a @ b]`` (each operand transposed first where its attr says).
    """
    operands = matmul_operands(node, *args)
    if operands is None:
        return _reference(node, args)
    a, b = operands
    out = buffers.empty((a.shape[0], b.shape[1]), a.dtype)
    matmul_into(a, b, out)
    return [out]


def matmul_operands(node: Any, a: Any, b: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """The operands of a MatMul as the BLAS reads them (views, transposed where the
    node's attrs say), or None when :func:`matmul` leaves the node to the reference
    (not 2-D floats of one dtype, or inner dimensions that differ)."""
    if not _is_float(a, b) or a.ndim != 2 or b.ndim != 2 or a.dtype != b.dtype:
        return None
    attrs = node.attrs
    if attrs.get("transpose_a"):
        a = a.T  # a view: BLAS reads the transpose in place
    if attrs.get("transpose_b"):
        b = b.T
    return (a, b) if a.shape[1] == b.shape[0] else None


def matmul_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = a @ b`` for :func:`matmul_operands`' operands, ``out`` C-contiguous."""
    m, k = a.shape
    work = m * k * b.shape[1]
    # _split's test first: the BLAS's thread count is only read for a product it would
    # split, and one it would not goes straight to the BLAS (this runs right after the
    # previous product, on caches it evicted: every line of Python here costs).
    if work < 2 * _GRAIN or _THREADS < 2 or m < 2 or not _gemm_work(work):
        blas.matmul(a, b, out)
        return

    def rows(lo: int, hi: int) -> None:
        blas.matmul(a[lo:hi], b, out[lo:hi])

    _split(rows, m, work)


# --- pooling kernels ---------------------------------------------------------------------
@_jit
def _pool(x, out, kh, kw, sh, sw, pt, pl, is_max, lo, hi):
    """Max or mean over the in-bounds part of each window, for output rows ``lo..hi``.

    A row is ``(n, oy)`` flat. Max propagates NaN (as NumPy's max); the mean divides
    the window's sum by its count of in-bounds elements, in the input's dtype.
    """
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    oh, ow = out.shape[1], out.shape[2]
    xf, of = x.reshape(-1), out.reshape(-1)
    cnt = np.empty(1, out.dtype)  # the count in the output's dtype, as the reference divides
    uc = _U(c)
    for q in range(lo, hi):
        n = q // oh
        oy = q - n * oh
        y0 = oy * sh - pt
        i0, i1 = max(0, -y0), min(kh, h - y0)
        for ox in range(ow):
            x0 = ox * sw - pl
            j0, j1 = max(0, -x0), min(kw, w - x0)
            o = _U((q * ow + ox) * c)
            first = True
            for i in range(i0, i1):
                for j in range(j0, j1):
                    s = _U(((n * h + y0 + i) * w + x0 + j) * c)
                    if first:
                        for t in range(uc):
                            of[o + t] = xf[s + t]
                        first = False
                    elif is_max:
                        # np.maximum propagates NaN like NumPy's max, and vectorises
                        # (a ternary select here ran 3x slower).
                        for t in range(uc):
                            of[o + t] = np.maximum(of[o + t], xf[s + t])
                    else:
                        for t in range(uc):
                            of[o + t] += xf[s + t]
            if not is_max:
                cnt[0] = (i1 - i0) * (j1 - j0)
                d = cnt[0]
                for t in range(uc):
                    of[o + t] = of[o + t] / d


@_jit
def _argmax_work(c, taps, x, dx):
    """Work arrays of :func:`_window_argmax`: per channel the max and the winning tap
    (held as a float of x's dtype: with the max in the same type, the update is
    branch-free arithmetic that vectorises, 2x faster), each tap's flat offset, and a
    one-element array of dx's dtype (ints are converted to it through memory)."""
    return (np.empty(c, x.dtype), np.empty(c, x.dtype), np.empty(taps, np.uint64),
            np.empty(1, dx.dtype))


@_jit
def _window_argmax(xf, base, w, c, i0, i1, j0, j1, best, arg, offs, scalar):
    """Per channel, the max (``best``) and the tap that holds it (``arg``, a float of x's
    dtype) over the in-bounds taps ``[i0, i1) x [j0, j1)`` of the window whose top-left
    element is at ``base`` in flat NHWC ``xf``; each tap's flat offset goes to ``offs``.

    The first strict maximum in row-major order wins; a NaN never compares greater,
    and a NaN that comes first stays. Returns the number of taps.
    """
    uc = _U(c)
    k = 0
    for i in range(i0, i1):
        for j in range(j0, j1):
            s = _U(base + (i * w + j) * c)
            offs[k] = s
            if k == 0:
                for t in range(uc):
                    best[t] = xf[s + t]
                    arg[t] = 0
            else:
                scalar[0] = k  # the tap as x's dtype through memory: the update vectorises
                kf = scalar[0]
                for t in range(uc):
                    v, b = xf[s + t], best[t]
                    arg[t] += (kf - arg[t]) * (b < v)
                    # = v if b < v else b, NaN-safe: a NaN best stays.
                    best[t] = np.maximum(b, np.fmax(v, b))
            k += 1
    return k


@_jit
def _pool_grad(x, g, dx, kh, kw, sh, sw, pt, pl, is_max, positive, lo, hi):
    """Adds each window's gradient ``g`` onto ``dx`` for images ``lo..hi``.

    Max: to the window's first strict maximum of ``x`` in row-major order (in-bounds
    elements only; a NaN first element keeps it, later NaNs never win); with
    ``positive``, only to a maximum above zero (_MaxPoolReluGrad). Mean: ``g /
    count`` to every in-bounds element. Windows are visited from last to first, so
    each element of ``dx`` sums its windows' shares in ascending tap order, exactly
    as the reference's one-slice-add-per-tap does. ``dx`` must be zeros.
    """
    h, w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    oh, ow = g.shape[1], g.shape[2]
    xf, gf, df = x.reshape(-1), g.reshape(-1), dx.reshape(-1)
    uc = _U(c)
    best, arg, offs, scalar = _argmax_work(c, kh * kw, x, dx)
    for n in range(lo, hi):
        for oy in range(oh - 1, -1, -1):
            y0 = oy * sh - pt
            i0, i1 = max(0, -y0), min(kh, h - y0)
            for ox in range(ow - 1, -1, -1):
                x0 = ox * sw - pl
                j0, j1 = max(0, -x0), min(kw, w - x0)
                if i0 >= i1 or j0 >= j1:
                    continue
                go = _U(((n * oh + oy) * ow + ox) * c)
                if is_max:
                    _window_argmax(xf, ((n * h + y0) * w + x0) * c, w, c, i0, i1, j0, j1,
                                   best, arg, offs, scalar)
                    for t in range(uc):
                        if not positive or best[t] > 0:
                            df[offs[np.int64(arg[t])] + t] += gf[go + t]
                else:
                    scalar[0] = (i1 - i0) * (j1 - j0)
                    d = scalar[0]
                    for i in range(i0, i1):
                        for j in range(j0, j1):
                            s = _U(((n * h + y0 + i) * w + x0 + j) * c)
                            for t in range(uc):
                                df[s + t] += gf[go + t] / d


@_jit
def _tiled_max_pool_grad(x, g, dx, kh, kw, pt, pl, positive, lo, hi):
    """MaxPoolGrad for windows that tile the input (stride = window) for images
    ``lo..hi``: each element of ``dx`` is in at most one window, so it is written once
    (its window's gradient at the winning tap, else 0) instead of zero-filled and then
    added to. ``dx`` must be zeros where no window reaches (the caller fills those).

    The winner and its NaN rules are :func:`_pool_grad`'s, ``positive`` too; ``zero +
    g`` gives the reference's ``0 + g`` (a -0.0 gradient lands as +0.0).
    """
    h, w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    oh, ow = g.shape[1], g.shape[2]
    xf, gf, df = x.reshape(-1), g.reshape(-1), dx.reshape(-1)
    uc = _U(c)
    best, arg, offs, scalar = _argmax_work(c, kh * kw, x, dx)
    zero = dx.dtype.type(0)
    for n in range(lo, hi):
        for oy in range(oh):
            y0 = oy * kh - pt
            i0, i1 = max(0, -y0), min(kh, h - y0)
            for ox in range(ow):
                x0 = ox * kw - pl
                j0, j1 = max(0, -x0), min(kw, w - x0)
                if i0 >= i1 or j0 >= j1:
                    continue
                go = _U(((n * oh + oy) * ow + ox) * c)
                taps = _window_argmax(xf, ((n * h + y0) * w + x0) * c, w, c, i0, i1, j0, j1,
                                      best, arg, offs, scalar)
                if positive:
                    # A window whose maximum is not above zero routes nothing: its
                    # winning tap is moved past the last one.
                    scalar[0] = taps
                    none = scalar[0]
                    for t in range(uc):
                        arg[t] = arg[t] if best[t] > 0 else none
                for k in range(taps):
                    s = offs[k]
                    scalar[0] = k
                    kf = scalar[0]
                    for t in range(uc):
                        df[s + t] = zero + gf[go + t] if arg[t] == kf else zero


@_jit
def _pool_route(x, out, route, kh, kw, sh, sw, pt, pl, positive, lo, hi):
    """MaxPool of output rows ``lo..hi`` (``(n, oy)`` flat) with each output's route: the
    tap ``i * kw + j`` of its window's first strict maximum (the rules of
    :func:`_window_argmax`), or :data:`NO_ROUTE` with ``positive`` when that maximum is not above
    zero. The max itself propagates NaN, as NumPy's max. One pass over each window,
    branch-free per channel (the tap is carried as a float of x's dtype)."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    oh, ow = out.shape[1], out.shape[2]
    xf, of, rf = x.reshape(-1), out.reshape(-1), route.reshape(-1)
    uc = _U(c)
    best, arg, _, scalar = _argmax_work(c, 1, x, out)
    for q in range(lo, hi):
        n = q // oh
        oy = q - n * oh
        y0 = oy * sh - pt
        i0, i1 = max(0, -y0), min(kh, h - y0)
        for ox in range(ow):
            x0 = ox * sw - pl
            j0, j1 = max(0, -x0), min(kw, w - x0)
            if i0 >= i1 or j0 >= j1:
                continue
            o = _U((q * ow + ox) * c)
            if i1 - i0 == 2 and j1 - j0 == 2:
                # A whole 2x2 window (the common pool): straight-line selects per channel,
                # the first strict maximum as in _window_argmax (NaN never compares
                # greater; a NaN first stays), which vectorise.
                s0 = _U(((n * h + y0 + i0) * w + x0 + j0) * c)
                s2 = s0 + _U(w * c)
                c0 = np.uint8(i0 * kw + j0)
                c1 = np.uint8(i0 * kw + j0 + 1)
                c2 = np.uint8((i0 + 1) * kw + j0)
                c3 = np.uint8((i0 + 1) * kw + j0 + 1)
                none = np.uint8(NO_ROUTE)
                for t in range(uc):
                    v0, v1, v2, v3 = xf[s0 + t], xf[s0 + uc + t], xf[s2 + t], xf[s2 + uc + t]
                    of[o + t] = np.maximum(np.maximum(np.maximum(v0, v1), v2), v3)
                    take = v0 < v1
                    a = c1 if take else c0
                    b = v1 if take else v0
                    take = b < v2
                    a = c2 if take else a
                    b = v2 if take else b
                    take = b < v3
                    a = c3 if take else a
                    b = v3 if take else b
                    rf[o + t] = a if b > 0 or not positive else none
                continue
            _route_window(xf, of, best, arg, scalar, n, h, w, c, y0, x0, i0, i1, j0, j1, kw, o)
            if positive:
                for t in range(uc):
                    rf[o + t] = np.uint8(arg[t]) if best[t] > 0 else np.uint8(NO_ROUTE)
            else:
                for t in range(uc):
                    rf[o + t] = np.uint8(arg[t])


@_jit
def _route_window(xf, of, best, arg, scalar, n, h, w, c, y0, x0, i0, i1, j0, j1, kw, o):
    """:func:`_pool_route` for one window of any size: its max into ``of[o:o+c]``, the
    first strict maximum and its tap into ``best`` and ``arg``."""
    uc = _U(c)
    first = True
    for i in range(i0, i1):
        for j in range(j0, j1):
            s = _U(((n * h + y0 + i) * w + x0 + j) * c)
            scalar[0] = i * kw + j
            tap = scalar[0]
            if first:
                for t in range(uc):
                    v = xf[s + t]
                    of[o + t] = v
                    best[t] = v
                    arg[t] = tap
                first = False
            else:
                for t in range(uc):
                    v, b = xf[s + t], best[t]
                    arg[t] += (tap - arg[t]) * (b < v)
                    best[t] = np.maximum(b, np.fmax(v, b))
                    of[o + t] = np.maximum(of[o + t], v)


@_jit
def _route_grad(route, g, dx, kh, kw, sh, sw, pt, pl, tiled, lo, hi):
    """MaxPoolGrad from routes (:func:`_pool_route`) for images ``lo..hi``. ``tiled``
    (stride = window): each element of ``dx`` is in at most one window and is written
    once (``dx`` must be zeros only where no window reaches); else each window's
    gradient is added at its route, windows from last to first (:func:`_pool_grad`'s
    order), onto zeros."""
    h, w, c = dx.shape[1], dx.shape[2], dx.shape[3]
    oh, ow = g.shape[1], g.shape[2]
    rf, gf, df = route.reshape(-1), g.reshape(-1), dx.reshape(-1)
    uc = _U(c)
    zero = dx.dtype.type(0)
    for n in range(lo, hi):
        for a in range(oh):
            oy = a if tiled else oh - 1 - a
            y0 = oy * sh - pt
            i0, i1 = max(0, -y0), min(kh, h - y0)
            for b in range(ow):
                ox = b if tiled else ow - 1 - b
                x0 = ox * sw - pl
                j0, j1 = max(0, -x0), min(kw, w - x0)
                go = _U(((n * oh + oy) * ow + ox) * c)
                if tiled:
                    for i in range(i0, i1):
                        for j in range(j0, j1):
                            s = _U(((n * h + y0 + i) * w + x0 + j) * c)
                            tap = i * kw + j
                            for t in range(uc):
                                df[s + t] = zero + gf[go + t] if rf[go + t] == tap else zero
                else:
                    for t in range(uc):
                        code = np.int64(rf[go + t])
                        if code != NO_ROUTE:
                            i = code // kw
                            j = code - i * kw
                            df[_U(((n * h + y0 + i) * w + x0 + j) * c) + t] += gf[go + t]


def max_pool_with_route(node: Any, args: list) -> list[np.ndarray]:
    """_MaxPoolWithRoute: MaxPool and each output's route (:func:`_pool_route`).

    Args:
      node: the _MaxPoolWithRoute IR node (MaxPool's attrs and ``positive``).
      args: ``[input [N, H, W, C]]``.

    Returns:
      ``[output [N, oh, ow, C], route (uint8, the same shape)]``.
    """
    pool = _pool_input(node, args)
    if pool is None:
        return _reference(node, args)
    x, (kh, kw, sh, sw, oh, pt, ow, pl), out = pool
    route = np.zeros(out.shape, np.uint8)
    if out.size:
        positive = bool(node.attrs.get("positive"))
        _split(lambda lo, hi: _pool_route(x, out, route, kh, kw, sh, sw, pt, pl, positive, lo,
                                          hi), x.shape[0] * oh, out.size * kh * kw)
    return [out, route]


def max_pool_grad_route(node: Any, args: list) -> list[np.ndarray]:
    """_MaxPoolGradRoute: each window's gradient at its route (bit-exact).

    Args:
      node: the _MaxPoolGradRoute IR node (pool attrs and ``orig_size``).
      args: ``[route (uint8) [N, oh, ow, C], grad [N, oh, ow, C]]``.

    Returns:
      ``[gradient of the pool's input [N, H, W, C]]``.
    """
    route, g = args
    if not _is_float(g) or g.ndim != 4 or route.shape != g.shape:
        return _reference(node, args)
    n, _, _, c = g.shape
    shape = (n, *node.attrs["orig_size"], c)
    geo = _pool_geometry(node, shape)
    if geo is None:
        return _reference(node, args)
    kh, kw, sh, sw, oh, pt, ow, pl = geo
    if g.shape != (n, oh, ow, c):
        return _reference(node, args)
    route, g = np.ascontiguousarray(route), np.ascontiguousarray(g)
    tiled = (sh, sw) == (kh, kw)
    covered = oh * kh - pt >= shape[1] and ow * kw - pl >= shape[2]
    dx = (buffers.empty if tiled and covered and g.size else buffers.zeros)(shape, g.dtype)
    if g.size == 0:
        return [dx]
    _split(lambda lo, hi: _route_grad(route, g, dx, kh, kw, sh, sw, pt, pl, tiled, lo, hi), n,
           dx.size if tiled else g.size * kh * kw)
    return [dx]


def _pool_geometry(node: Any, shape: tuple) -> tuple | None:
    """``(kh, kw, sh, sw, oh, pt, ow, pl)`` of an NHWC pool of an input of ``shape``."""
    cfg = _nhwc_config(node, "ksize")
    if cfg is None or len(shape) != 4:
        return None
    (kh, kw), (sh, sw), padding = cfg
    oh, pt = _out_size(shape[1], kh, sh, padding)
    ow, pl = _out_size(shape[2], kw, sw, padding)
    if oh < 0 or ow < 0:
        return None
    return kh, kw, sh, sw, oh, pt, ow, pl


def _pool_input(node: Any, args: list) -> tuple | None:
    """``(x, geometry, out)`` of a pool of a float NHWC input (``out``: zeros of the pooled
    shape), or None (the reference runs it)."""
    x = args[0]
    if not _is_float(x) or x.ndim != 4:
        return None
    geo = _pool_geometry(node, x.shape)
    if geo is None:
        return None
    oh, ow = geo[4], geo[6]
    out = buffers.zeros((x.shape[0], oh, ow, x.shape[3]), x.dtype)
    return np.ascontiguousarray(x), geo, out


def _pool_forward(node: Any, args: list, is_max: bool) -> list[np.ndarray]:
    pool = _pool_input(node, args)
    if pool is None:
        return _reference(node, args)
    x, (kh, kw, sh, sw, oh, pt, ow, pl), out = pool
    if out.size:
        _split(lambda lo, hi: _pool(x, out, kh, kw, sh, sw, pt, pl, is_max, lo, hi),
               x.shape[0] * oh, out.size * kh * kw)
    return [out]


def max_pool(node: Any, args: list) -> list[np.ndarray]:
    """MaxPool (NHWC, float): the max of each window's in-bounds elements; NaN wins.

    Args:
      node: the MaxPool IR node (attrs ksize, strides, padding, data_format).
      args: ``[input [N, H, W, C]]``.

    Returns:
      ``[output [N, oh, ow, C]]``.
    """
    return _pool_forward(node, args, True)


def avg_pool(node: Any, args: list) -> list[np.ndarray]:
    """AvgPool (NHWC): the mean of each window's in-bounds elements.

    Args:
      node: the AvgPool IR node.
      args: ``[input [N, H, W, C]]``.

    Returns:
      ``[output [N, oh, ow, C]]``.
    """
    return _pool_forward(node, args, False)


def max_pool_grad(node: Any, args: list) -> list[np.ndarray]:
    """MaxPoolGrad: ``grad`` routed to the first maximum of each window (bit-exact);
    _MaxPoolReluGrad: only to a maximum above zero.

    Args:
      node: the MaxPoolGrad or _MaxPoolReluGrad IR node.
      args: ``[orig_input, orig_output (not read, as the reference), grad]``.

    Returns:
      ``[gradient of orig_input]``.
    """
    x, _, g = args
    if not _is_float(x, g) or x.ndim != 4:
        return _reference(node, args)
    geo = _pool_geometry(node, x.shape)
    if geo is None:
        return _reference(node, args)
    kh, kw, sh, sw, oh, pt, ow, pl = geo
    n, _, _, c = x.shape
    if g.shape != (n, oh, ow, c):
        return _reference(node, args)
    x, g = np.ascontiguousarray(x), np.ascontiguousarray(g)
    positive = node.type == "_MaxPoolReluGrad"
    if (sh, sw) == (kh, kw) and g.size:
        # Windows tile the input: one write per element, no zero-fill pass. Only rows
        # and columns no window reaches (VALID pooling's remainder) need zeros.
        covered = oh * kh - pt >= x.shape[1] and ow * kw - pl >= x.shape[2]
        dx = (buffers.empty if covered else buffers.zeros)(x.shape, g.dtype)
        _split(lambda lo, hi: _tiled_max_pool_grad(x, g, dx, kh, kw, pt, pl, positive, lo,
                                                   hi), n, x.size)
        return [dx]
    dx = buffers.zeros(x.shape, g.dtype)
    if g.size == 0:
        return [dx]
    _split(lambda lo, hi: _pool_grad(x, g, dx, kh, kw, sh, sw, pt, pl, True, positive, lo,
                                     hi), n, g.size * kh * kw)
    return [dx]


def avg_pool_grad(node: Any, args: list) -> list[np.ndarray]:
    """AvgPoolGrad: each window's ``grad / count`` spread over it (bit-exact).

    Args:
      node: the AvgPoolGrad IR node.
      args: ``[orig_input_shape (4 ints), grad [N, oh, ow, C]]``.

    Returns:
      ``[gradient of the input, of shape orig_input_shape]``.
    """
    sizes, g = args
    shape = _sizes(np.asarray(sizes))
    if shape is None or not _is_float(g) or g.ndim != 4:
        return _reference(node, args)
    geo = _pool_geometry(node, shape)
    if geo is None:
        return _reference(node, args)
    kh, kw, sh, sw, oh, pt, ow, pl = geo
    n, _, _, c = shape
    if g.shape != (n, oh, ow, c):
        return _reference(node, args)
    dx = buffers.zeros(shape, g.dtype)
    if g.size == 0:
        return [dx]
    g = np.ascontiguousarray(g)
    # x is not read for the mean; g stands in so both modes share one compiled kernel.
    _split(lambda lo, hi: _pool_grad(g, g, dx, kh, kw, sh, sw, pt, pl, False, False, lo,
                                     hi), n, g.size * kh * kw)
    return [dx]


# --- softmax and cross entropies -----------------------------------------------------------
@_jit
def _softmax_rows(x, out, log, lo, hi):
    """Softmax (or log-softmax) of rows ``lo..hi`` of 2-D ``x`` into ``out``.

    As the reference: ``e = exp(x - max)`` (max NaN if the row holds one), then
    ``e / sum(e)`` or ``(x - max) - log(sum(e))``, the sum accumulated in float64
    and rounded to the dtype. Rows must be non-empty.
    """
    k = x.shape[1]
    xf, of = x.reshape(-1), out.reshape(-1)
    uk = _U(k)
    tmp = np.empty(1, x.dtype)  # float64 -> dtype rounding through memory
    for r in range(lo, hi):
        base = _U(r * k)
        m = xf[base]
        for j in range(_U(1), uk):
            m = np.maximum(m, xf[base + j])  # NaN-propagating and vectorisable
        for j in range(uk):
            of[base + j] = _exp(xf[base + j] - m)
        # Four accumulators, so the sum is not serialised on one add's latency.
        s0 = s1 = s2 = s3 = 0.0
        j = _U(0)
        while j + _U(4) <= uk:
            s0 += of[base + j]
            s1 += of[base + j + _U(1)]
            s2 += of[base + j + _U(2)]
            s3 += of[base + j + _U(3)]
            j += _U(4)
        while j < uk:
            s0 += of[base + j]
            j += _U(1)
        tmp[0] = (s0 + s1) + (s2 + s3)
        s = tmp[0]
        if log:
            ls = np.log(s)
            for j in range(uk):
                of[base + j] = (xf[base + j] - m) - ls
        else:
            for j in range(uk):
                of[base + j] = of[base + j] / s


def _log_softmax_rows(x: np.ndarray) -> np.ndarray:
    """Log-softmax of the rows of a non-empty C-contiguous 2-D float array."""
    out = buffers.empty(x.shape, x.dtype)
    rows, k = x.shape
    _split(lambda lo, hi: _softmax_rows(x, out, True, lo, hi), rows, 16 * rows * k)
    return out


def _softmax(node: Any, args: list, log: bool) -> list[np.ndarray]:
    x = args[0]
    if not _is_float(x) or x.ndim == 0:
        return _reference(node, args)
    axis = int(node.attrs.get("axis", -1))
    if not -x.ndim <= axis < x.ndim:
        return _reference(node, args)
    axis %= x.ndim
    last = axis == x.ndim - 1
    # The kernel works on rows: another axis is moved last (a copy) and back.
    xt = np.ascontiguousarray(x if last else np.moveaxis(x, axis, -1))
    out = buffers.empty(xt.shape, x.dtype)
    k = xt.shape[-1]
    rows = xt.size // k if k else 0
    if rows:
        x2, o2 = xt.reshape(rows, k), out.reshape(rows, k)
        _split(lambda lo, hi: _softmax_rows(x2, o2, log, lo, hi), rows, 16 * rows * k)
    if not last:
        out = np.ascontiguousarray(np.moveaxis(out, -1, axis))
    return [out]


def softmax(node: Any, args: list) -> list[np.ndarray]:
    """Softmax along attr ``axis`` (float32/float64).

    Args:
      node: the Softmax IR node.
      args: ``[logits]``.

    Returns:
      ``[softmax of logits]``.
    """
    return _softmax(node, args, False)


def log_softmax(node: Any, args: list) -> list[np.ndarray]:
    """LogSoftmax along attr ``axis`` (float32/float64).

    Args:
      node: the LogSoftmax IR node.
      args: ``[logits]``.

    Returns:
      ``[log-softmax of logits]``.
    """
    return _softmax(node, args, True)


def softmax_xent(node: Any, args: list) -> list[np.ndarray]:
    """SoftmaxCrossEntropyWithLogits of features and labels (classes last).

    The log-softmax kernel gives ``log_p``; then, as the reference, ``loss =
    -sum(labels * log_p)`` and ``backprop = exp(log_p) - labels`` (NumPy, no
    temporaries beyond the outputs). Broadcasting inputs are broadcast first.

    Args:
      node: the SoftmaxCrossEntropyWithLogits IR node.
      args: ``[features [..., C], labels (broadcastable to features)]``.

    Returns:
      ``[loss [...], backprop [..., C]]``.
    """
    x, y = args
    if not _is_float(x, y) or x.ndim == 0 or y.ndim == 0:
        return _reference(node, args)
    if x.shape != y.shape:
        try:
            shape = np.broadcast_shapes(x.shape, y.shape)
        except ValueError:
            return _reference(node, args)
        x, y = np.broadcast_to(x, shape), np.broadcast_to(y, shape)
    k = x.shape[-1]
    if x.size == 0:
        return [-np.zeros(x.shape[:-1], x.dtype), np.zeros(x.shape, x.dtype)]
    rows = x.size // k
    log_p = _log_softmax_rows(np.ascontiguousarray(x).reshape(rows, k)).reshape(x.shape)
    prod = np.multiply(y, log_p)
    # out=: an array even for rank-1 logits, where np.sum returns a NumPy scalar.
    loss = np.negative(np.sum(prod, axis=-1), out=np.empty(x.shape[:-1], x.dtype))
    backprop = np.exp(log_p, out=prod)
    backprop -= y
    return [loss, backprop]


def sparse_softmax_xent(node: Any, args: list) -> list[np.ndarray]:
    """SparseSoftmaxCrossEntropyWithLogits; bad labels or shapes run the reference (its error).

    ``loss = -log_softmax[label]`` and backprop ``softmax`` with 1 subtracted at the
    label, as the reference (one compiled pass per row: :func:`_sparse_xent_rows`).

    Args:
      node: the SparseSoftmaxCrossEntropyWithLogits IR node.
      args: ``[features [..., C], labels [...] (int32/int64)]``.

    Returns:
      ``[loss [...], backprop [..., C]]``.
    """
    x, labels = args
    if not _is_float(x) or x.ndim == 0 or labels.dtype.kind not in "iu":
        return _reference(node, args)
    k = x.shape[-1]
    if labels.shape != x.shape[:-1] or (labels.size and not _labels_in(labels.reshape(-1), k)):
        return _reference(node, args)
    rows = labels.size
    if rows == 0:
        return [np.zeros(labels.shape, x.dtype), np.zeros(x.shape, x.dtype)]
    x2 = np.ascontiguousarray(x).reshape(rows, k)
    lab = np.ascontiguousarray(labels).reshape(rows)
    loss = np.empty(rows, x.dtype)
    backprop = buffers.empty((rows, k), x.dtype)
    # One compiled pass: a dozen NumPy calls (label range, fancy indexing, exp) cost
    # ~100 us here for the mlp's 256 x 10 logits.
    one = x.dtype.type(1)  # the backprop unscaled (x * 1 is x, NaN included)
    _split(lambda lo, hi: _sparse_xent_rows(x2, lab, one, loss, backprop, lo, hi), rows,
           16 * rows * k)
    return [loss.reshape(labels.shape), backprop.reshape(x.shape)]


@_jit
def _labels_in(labels, k):
    """Whether every label is in ``[0, k)``."""
    for v in labels:
        if v < 0 or v >= k:
            return False
    return True


@_jit
def _sparse_xent_rows(x, labels, scale, loss, backprop, lo, hi):
    """Rows ``lo..hi``: ``e = exp(x - max)``, ``s = sum(e)`` as :func:`_softmax_rows`;
    ``loss = log(s) - (x - max)[label]`` (``-log_p[label]``) and ``backprop = e / s``
    less 1 at the label, times ``scale`` (1 for the op itself; the mean's gradient
    scale for :func:`softmax_xent_mean`, rounded as the reference's separate product
    rounds it): one exp per element, where taking ``exp(log_p)`` again cost a second
    (26 us for the mlp's 256 x 10). Returns ``(sum of the losses, column sums of the
    backprop)`` in float64 (the mean and the bias gradient of the fused op), the sum
    -1.0 at a label out of range (the rows from there are not written)."""
    k = x.shape[1]
    xf, bf = x.reshape(-1), backprop.reshape(-1)
    uk = _U(k)
    tmp = np.empty(1, x.dtype)  # float64 -> dtype rounding through memory
    total = 0.0
    sums = np.zeros(k, np.float64)
    for r in range(lo, hi):
        label = labels[r]
        if label < 0 or label >= k:
            return -1.0, sums
        base = _U(r * k)
        m = xf[base]
        for j in range(_U(1), uk):
            m = np.maximum(m, xf[base + j])
        for j in range(uk):  # apart from the sum, which would keep it from vectorising
            bf[base + j] = _exp(xf[base + j] - m)
        s = 0.0
        for j in range(uk):
            s += bf[base + j]
        tmp[0] = s
        sd = tmp[0]
        at = base + _U(label)
        loss[r] = np.log(sd) - (xf[at] - m)
        total += loss[r]
        for j in range(uk):
            bf[base + j] = bf[base + j] / sd
        bf[at] -= 1
        for j in range(uk):
            v = bf[base + j] * scale
            bf[base + j] = v
            sums[j] += v
    return total, sums


def softmax_xent_mean(node: Any, args: list) -> list[np.ndarray]:
    """_SoftmaxCrossEntropyMean: a cross entropy's mean loss and its scaled backprop.

    As the cross entropy kernels above, then ``upstream / count`` (computed as the
    reference does, in the logits' dtype) times the backprop in the same pass, and
    the mean of the loss accumulated in float64. Sparse labels take one compiled
    call (:func:`_sparse_xent_rows`, which also sums the columns). Empty batches,
    broadcast labels, bad labels and other unusual inputs run the reference.

    Args:
      node: the _SoftmaxCrossEntropyMean IR node.
      args: ``[features [..., C], labels, upstream (one element)]``.

    Returns:
      ``[mean loss [], features gradient [..., C]]``, then with attr ``sum_axis`` the
      gradient's sum over the batch ``[C]`` (accumulated in float64).
    """
    x, labels, up = args
    shape = _mean_shape(node, x, up)
    if shape is None:
        return _reference(node, args)
    attrs = node.attrs
    d = x.dtype
    rows, k, count = shape
    scale = up.reshape(-1)[0] / count
    if attrs["xent"] == "SparseSoftmaxCrossEntropyWithLogits":
        if not _sparse_labels(x, labels):
            return _reference(node, args)
        g = buffers.empty(x.shape, d)
        x2 = np.ascontiguousarray(x).reshape(rows, k)
        lab = np.ascontiguousarray(labels).reshape(rows)
        done = _sparse_mean(x2, lab, scale, np.empty(rows, d), g.reshape(rows, k))
        if done is None:  # a label out of range: its error
            return _reference(node, args)
        out = [np.array(done[0], d), g]
        if attrs["sum_axis"] is not None:
            out.append(done[1].astype(d))
        return out
    if labels.dtype != d or labels.shape != x.shape:
        return _reference(node, args)
    loss, g = softmax_xent(node, [x, labels])
    np.multiply(g, scale, out=g)
    out = [np.array(np.add.reduce(loss, axis=None, dtype=np.float64) / rows, d), g]
    if attrs["sum_axis"] is not None:
        out.append(np.add.reduce(g.reshape(rows, k), axis=0, dtype=np.float64).astype(d))
    return out


def _mean_shape(node: Any, x: np.ndarray, up: np.ndarray) -> tuple | None:
    """``(rows, classes, count)`` of a :func:`softmax_xent_mean` call its kernels take
    (float features with classes and rows, a one-element upstream of their dtype; the
    count as the replaced ops compute it, a NumPy scalar of that dtype), else None."""
    d = x.dtype
    if (d not in _FLOATS or x.ndim == 0 or up.size != 1 or up.dtype != d
            or x.shape[-1] == 0 or not x.size):
        return None
    k = x.shape[-1]
    rows = x.size // k
    attrs = node.attrs
    count = np.maximum(d.type(rows) / d.type(attrs["divisor"]), d.type(attrs["floor"]))
    return rows, k, count


def _sparse_labels(x: np.ndarray, labels: np.ndarray) -> bool:
    """Whether ``labels`` are integer class indices, one per row of ``x``."""
    return labels.dtype.kind in "iu" and labels.shape == x.shape[:-1]


def _sparse_mean(x2: np.ndarray, lab: np.ndarray, scale: Any, loss: np.ndarray,
                 g2: np.ndarray) -> tuple[float, np.ndarray] | None:
    """:func:`softmax_xent_mean`'s sparse case over ``[rows, classes]``: the backprop into
    ``g2``; returns the mean loss (a float) and the backprop's column sums (float64),
    or None when a label is out of range."""
    rows, k = x2.shape
    parts = _split(lambda lo, hi: _sparse_xent_rows(x2, lab, scale, loss, g2, lo, hi),
                   rows, 16 * rows * k)
    if any(total < 0 for total, _ in parts):
        return None
    sums = parts[0][1]
    for _, more in parts[1:]:
        sums += more
    return sum(total for total, _ in parts) / rows, sums


def bind_softmax_xent_mean(node: Any, args: list) -> tuple[Callable, Callable] | None:
    """:func:`softmax_xent_mean` as a remembered call (see ``memo.Memo``) for inputs like
    ``args``: ``(prepare, call)``, or None when the call would not take the sparse
    labels' compiled path (or its inputs are not contiguous).

    ``prepare(inputs, outs)`` binds views of the inputs and of ``outs`` (the op's
    outputs); each ``call`` writes the backprop and its sums into ``outs`` and puts a
    new array for the mean loss in ``outs[0]``, which may be fetched (see
    :data:`FRESH_OUTPUTS`). A label out of range takes the reference (its error).
    """
    x, labels, up = args
    shape = _mean_shape(node, x, up)
    if (shape is None or node.attrs["xent"] != "SparseSoftmaxCrossEntropyWithLogits"
            or not _sparse_labels(x, labels) or not x.flags.c_contiguous
            or not labels.flags.c_contiguous):
        return None
    d = x.dtype
    rows, k, count = shape
    sums = node.attrs["sum_axis"] is not None

    def prepare(ins: list, outs: list) -> tuple:
        x, labels, up = ins
        return (x.reshape(rows, k), labels.reshape(rows), up.reshape(-1), np.empty(rows, d),
                outs[1].reshape(rows, k), outs, ins)

    def call(bound: tuple) -> None:
        x2, lab, up1, loss, g2, outs, ins = bound
        done = _sparse_mean(x2, lab, up1[0] / count, loss, g2)
        if done is None:
            ref = _reference(node, list(ins))
            outs[0] = ref[0]
            for o, r in zip(outs[1:], ref[1:]):
                o[...] = r
            return
        outs[0] = np.array(done[0], d)
        if sums:
            np.copyto(outs[2], done[1], casting="same_kind")

    return prepare, call


# --- reductions ----------------------------------------------------------------------------
@_jit
def _column_sums(a, lo, hi):
    """Float64 sums of the columns of rows ``lo..hi`` of 2-D ``a``."""
    acc = np.zeros(a.shape[1], np.float64)
    for r in range(lo, hi):
        for j in range(a.shape[1]):
            acc[j] += a[r, j]
    return acc


def bias_add_grad(node: Any, args: list) -> list[np.ndarray]:
    """BiasAddGrad, channels last: the sum over all other dims, accumulated in float64.

    Args:
      node: the BiasAddGrad IR node (attr data_format NHWC).
      args: ``[out_backprop [..., C]]``.

    Returns:
      ``[gradient of the bias [C]]``.
    """
    dy = args[0]
    if node.attrs.get("data_format") != "NHWC" or not _is_float(dy) or dy.ndim < 2:
        return _reference(node, args)
    c = dy.shape[-1]
    rows = dy.size // c if c else 0
    if rows == 0:
        return [np.zeros(c, dy.dtype)]
    a = np.ascontiguousarray(dy).reshape(rows, c)
    parts = _split(lambda lo, hi: _column_sums(a, lo, hi), rows, rows * c)
    total = parts[0]
    for p in parts[1:]:
        total += p
    return [total.astype(dy.dtype)]


@_jit
def _segment_sum(data, ids, out, lo, hi):
    """``out[ids[r], lo:hi] += data[r, lo:hi]`` for every row in order; negative ids drop.

    Rows are added in index order, as ``np.add.at`` does, so sums are bit-identical.
    """
    for r in range(data.shape[0]):
        s = ids[r]
        if s < 0:
            continue
        for j in range(lo, hi):
            out[s, j] += data[r, j]


def unsorted_segment_sum(node: Any, args: list) -> list[np.ndarray]:
    """UnsortedSegmentSum of float data (bit-exact); bad ids or shapes run the reference.

    Args:
      node: the UnsortedSegmentSum IR node.
      args: ``[data, segment_ids (a prefix of data's shape), num_segments (scalar)]``.

    Returns:
      ``[sums [num_segments, *data.shape[ids.ndim:]]]``.
    """
    data, ids, num = args
    if not _is_float(data) or ids.dtype.kind not in "iu" or np.ndim(num) != 0:
        return _reference(node, args)
    n = int(num)
    k = ids.ndim
    if n < 0 or data.shape[:k] != ids.shape or (ids.size and ids.max() >= n):
        return _reference(node, args)
    tail = data.shape[k:]
    out = np.zeros((n,) + tail, data.dtype)
    width = math.prod(tail)
    if ids.size == 0 or width == 0 or n == 0:
        return [out]
    d2 = np.ascontiguousarray(data).reshape(ids.size, width)
    flat = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    o2 = out.reshape(n, width)
    # Threads split the columns: each keeps the row order, so sums stay exact.
    _split(lambda lo, hi: _segment_sum(d2, flat, o2, lo, hi), width, d2.size)
    return [out]


# --- lowering ------------------------------------------------------------------------------
LIBRARY: dict[str, LibraryFn] = {
    "MatMul": matmul,
    "Conv2D": conv2d,
    "Conv2DBackpropInput": conv2d_backprop_input,
    "Conv2DBackpropFilter": conv2d_backprop_filter,
    "_Conv2DBackpropFilterWithBias": conv2d_backprop_filter_with_bias,
    "MaxPool": max_pool,
    "MaxPoolGrad": max_pool_grad,
    "_MaxPoolReluGrad": max_pool_grad,
    "_MaxPoolWithRoute": max_pool_with_route,
    "_MaxPoolGradRoute": max_pool_grad_route,
    "AvgPool": avg_pool,
    "AvgPoolGrad": avg_pool_grad,
    "Softmax": softmax,
    "LogSoftmax": log_softmax,
    "SoftmaxCrossEntropyWithLogits": softmax_xent,
    "SparseSoftmaxCrossEntropyWithLogits": sparse_softmax_xent,
    "_SoftmaxCrossEntropyMean": softmax_xent_mean,
    "BiasAddGrad": bias_add_grad,
    "UnsortedSegmentSum": unsorted_segment_sum,
}
"""Op type -> ``fn(node, args) -> list of outputs``; each falls back to the reference
for run-time cases it does not handle."""

MEMO_BINDERS: dict[str, Callable[..., tuple | None]] = {
    "_SoftmaxCrossEntropyMean": bind_softmax_xent_mean,
}
"""Op type -> ``fn(node, args) -> (prepare, call)`` or None: the op's kernel for inputs
like ``args`` as a remembered call (``memo.Memo``) over the outputs of a call that
just ran; see :data:`FRESH_OUTPUTS`."""

FRESH_OUTPUTS: dict[str, frozenset[int]] = {
    "_SoftmaxCrossEntropyMean": frozenset({0}),
}
"""Op type -> the outputs its remembered call makes anew on every call (it replaces
them in the memo's ``outs``); the others it writes in place."""

STORE_EPILOGUE: dict[str, Callable[..., list[np.ndarray] | None]] = {
    "Conv2D": conv2d_epilogue,
}
"""Op type -> ``fn(node, args, bias, relu)``: the op then ``+ bias`` and relu, applied
as the kernel stores its result; None when it does not take the run-time case."""

_WINDOW_OPS = {"Conv2D": None, "Conv2DBackpropInput": None, "Conv2DBackpropFilter": None,
               "_Conv2DBackpropFilterWithBias": None,
               "MaxPool": "ksize", "MaxPoolGrad": "ksize", "_MaxPoolReluGrad": "ksize",
               "_MaxPoolWithRoute": "ksize", "_MaxPoolGradRoute": "ksize",
               "AvgPool": "ksize",
               "AvgPoolGrad": "ksize"}


def lower_library(node: Any) -> LibraryFn | None:
    """The library kernel for an IR node, or None when the reference should run it.

    A node qualifies when its type is in :data:`LIBRARY`, its (first) output is
    float32 or float64, and its attrs are ones the kernels implement: NHWC,
    SAME/VALID padding and dilations 1 for window ops, NHWC for BiasAddGrad.

    Args:
      node: a :class:`graphflow.compiler.ir.Node`.

    Returns:
      ``fn(node, args) -> list[np.ndarray]``, or None.
    """
    fn = LIBRARY.get(node.type)
    if fn is None or not node.dtypes or node.dtypes[0].np not in _FLOATS:
        return None
    if node.type in _WINDOW_OPS and _nhwc_config(node, _WINDOW_OPS[node.type]) is None:
        return None
    if node.type == "BiasAddGrad" and node.attrs.get("data_format") != "NHWC":
        return None
    return fn
