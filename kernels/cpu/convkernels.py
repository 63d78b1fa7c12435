"""Register-blocked convolution kernels, emitted as LLVM IR and compiled with llvmlite.

A convolution is a matrix product whose left operand (the windows of the input)
never needs to be written out: each kernel below computes a tile of the result
in vector registers, reading the windows straight from the (padded) NHWC input,
which im2col would first copy into a matrix of ``kh * kw`` times the input's
size. The tile loops are written here in IR because that is the one way to
hold a tile of accumulators in registers: Numba's loops over arrays keep them
in memory (30 GFLOP/s against 157 GFLOP/s for the same 6x64 float32 tile on one
AVX-512 core here; OpenBLAS's GEMM on the im2col matrix reaches 84).

Two kernels, both with a tile of ``mr x nv`` vectors of accumulators:

* ``conv``: ``out[n, oy, ox, :] = sum_{i, k} x[n, oy*sh + i, ox*sw*C + k] *
  f[i, k, :]`` over ``k < kw * C`` (a window row is contiguous in NHWC). A tile
  is ``mr`` neighbouring output pixels by ``nv`` vectors of output channels.
  Conv2D, and Conv2DBackpropInput at stride 1 (a convolution of the padded
  gradient with the flipped, transposed filter), use it.
* ``wgrad``: ``df[i, k, :] = sum_{n, oy, ox} x[n, oy*sh + i, ox*sw*C + k] *
  dy[n, oy, ox, :]``: Conv2DBackpropFilter. A tile is ``mr`` neighbouring
  ``k`` by ``nv`` vectors of output channels, summed over a range of images.

Sums run in a different order from the reference's (per tap, then channel),
so results differ from it by rounding only. Strides and sizes are run-time
arguments; a module is compiled per (kernel, dtype, output channels), in
about 20-60 ms, kept for the process, and its machine code stored in the
kernel cache (:mod:`cache`: keyed by the IR text, versions and CPU, with a
checksum), so a later process loads it instead.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

import llvmlite.binding as llvm
import numpy as np

from graphflow.kernels.cpu import cache

__all__ = ["ACC", "BIAS", "RELU", "available", "conv_kernel", "lanes", "stats",
           "wgrad_kernel", "wgrad_spans"]

_lock = threading.Lock()
_machine: Any = None
_wide = False  # 64-byte vectors and 32 vector registers (AVX-512)
_engines: list[Any] = []  # compiled modules stay alive for the process
_kernels: dict[tuple, Callable[..., None]] = {}
# Modules this process compiled, or loaded from the kernel cache (for tests and tools).
stats = {"compiled": 0, "loaded": 0}


def _target() -> Any:
    global _machine, _wide
    if _machine is None:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        features = llvm.get_host_cpu_features()
        _wide = bool(features.get("avx512f", False))
        _machine = llvm.Target.from_default_triple().create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=features.flatten(), opt=3)
    return _machine


def lanes(dtype: np.dtype) -> int:
    """Elements per vector register for ``dtype`` on this CPU (channel counts must be
    multiples of it for the kernels here)."""
    _target()
    return (64 if _wide else 32) // np.dtype(dtype).itemsize


def _registers() -> int:
    _target()
    return 32 if _wide else 16


def available(dtype: Any) -> bool:
    """Whether the kernels handle ``dtype`` (float32 and float64)."""
    return np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.float64))


class _Fn:
    """One IR function being written: SSA names, blocks, loops with carried values."""

    def __init__(self, header: str) -> None:
        self.lines = [header, "entry:"]
        self.n = 0
        self.block = "entry"

    def name(self, prefix: str = "t") -> str:
        self.n += 1
        return f"%{prefix}{self.n}"

    def op(self, text: str, prefix: str = "t") -> str:
        v = self.name(prefix)
        self.lines.append(f"  {v} = {text}")
        return v

    def label(self, name: str) -> None:
        self.lines.append(f"{name}:")
        self.block = name

    def gep(self, t: str, ptr: str, off: str) -> str:
        return self.op(f"getelementptr inbounds {t}, {t}* {ptr}, i64 {off}", "p")

    def mul(self, a: str, b: str) -> str:
        return self.op(f"mul i64 {a}, {b}")

    def add(self, a: str, b: str) -> str:
        return self.op(f"add i64 {a}, {b}")

    def loop(self, start: str, end: str, carried: list[tuple[str, str]],
             body: Callable[[str, list[str]], list[str]], guard: bool) -> list[str]:
        """``for iv in [start, end)``: ``body(iv, values)`` returns the next values.

        ``carried`` holds (type, initial value) pairs. With ``guard`` the loop may
        run zero times (then the values leaving it are the initial ones); else it runs
        at least once.
        """
        head, done = self.name("L")[1:], self.name("D")[1:]
        pre = self.block
        if guard:
            ok = self.op(f"icmp slt i64 {start}, {end}")
            self.lines.append(f"  br i1 {ok}, label %{head}, label %{done}")
        else:
            self.lines.append(f"  br label %{head}")
        self.label(head)
        iv = self.name("i")
        phis = [self.name("c") for _ in carried]
        at = len(self.lines)
        self.lines += [""] * (1 + len(carried))  # the phis, written once the latch is known
        out = body(iv, phis)
        nxt = self.add(iv, "1")
        more = self.op(f"icmp slt i64 {nxt}, {end}")
        latch = self.block
        self.lines.append(f"  br i1 {more}, label %{head}, label %{done}")
        self.lines[at] = f"  {iv} = phi i64 [{start}, %{pre}], [{nxt}, %{latch}]"
        for k, ((t, init), p, o) in enumerate(zip(carried, phis, out)):
            self.lines[at + 1 + k] = f"  {p} = phi {t} [{init}, %{pre}], [{o}, %{latch}]"
        self.label(done)
        if not carried:
            return []
        # Values leaving the loop: through phis of the exit block.
        if guard:
            return [self.op(f"phi {t} [{o}, %{latch}], [{init}, %{pre}]")
                    for (t, init), o in zip(carried, out)]
        return [self.op(f"phi {t} [{o}, %{latch}]") for (t, _), o in zip(carried, out)]

    def choose(self, cond: str, value: str, body: Callable[[], str]) -> str:
        """``value if not cond else body()``: ``body`` writes code and returns an i64."""
        yes, done = self.name("Y")[1:], self.name("N")[1:]
        pre = self.block
        self.lines.append(f"  br i1 {cond}, label %{yes}, label %{done}")
        self.label(yes)
        new = body()
        end = self.block
        self.lines.append(f"  br label %{done}")
        self.label(done)
        return self.op(f"phi i64 [{value}, %{pre}], [{new}, %{end}]")

    def finish(self) -> str:
        self.lines += ["  ret void", "}"]
        return "\n".join(self.lines)


def _tile_sizes(mr: int) -> list[int]:
    """The tile heights a driver uses: ``mr``, then powers of two below it for the rest."""
    return [mr] + [s for s in (8, 4, 2, 1) if s < mr]


def _plan(oc: int, dtype: np.dtype) -> tuple[int, list[tuple[int, int]]]:
    """(max tile height, [(offset, vectors)] chunks of the ``oc`` channels)."""
    ln = lanes(dtype)
    nvec = oc // ln
    # Tiles of up to 4 vectors wide with 32 registers (6 x 4 accumulators), 2 with 16
    # (6 x 2: 4 wide would leave room for 2 rows only).
    nv = min(nvec, 4 if _registers() >= 32 else 2)
    chunks = []
    for v0 in range(0, nvec, nv):
        chunks.append((v0 * ln, min(nv, nvec - v0)))
    # Accumulators + a row of the other operand + one broadcast fit the registers.
    mr = max(1, min(14, (_registers() - 2 - nv) // nv))
    return mr, chunks


def _fma_step(fn: _Fn, t: str, vt: str, ln: int, rows: list[str], off: str, nv: int,
              bvec: str, acc: list[str]) -> list[str]:
    """One rank-1 update of a tile: ``acc[r][q] += rows[r][off] * bvec[q*ln:(q+1)*ln]``."""
    bs = []
    for q in range(nv):
        p = fn.gep(t, bvec, str(q * ln))
        pv = fn.op(f"bitcast {t}* {p} to {vt}*", "p")
        bs.append(fn.op(f"load {vt}, {vt}* {pv}, align {_align(t)}"))
    out = list(acc)
    for r, row in enumerate(rows):
        a = fn.op(f"load {t}, {t}* {fn.gep(t, row, off)}, align {_align(t)}")
        ins = fn.op(f"insertelement {vt} undef, {t} {a}, i32 0")
        splat = fn.op(f"shufflevector {vt} {ins}, {vt} undef, <{ln} x i32> zeroinitializer")
        for q in range(nv):
            k = r * nv + q
            out[k] = fn.op(f"call {vt} @llvm.fma.v{ln}{_suffix(t)}({vt} {splat}, {vt} {bs[q]}, "
                           f"{vt} {acc[k]})")
    return out


def _suffix(t: str) -> str:
    return "f32" if t == "float" else "f64"


def _align(t: str) -> int:
    return 4 if t == "float" else 8


def _load_tile(fn: _Fn, t: str, vt: str, ln: int, mr: int, nv: int, src: str,
               ld: str) -> list[str]:
    out = []
    for r in range(mr):
        row = fn.gep(t, src, fn.mul(ld, str(r)) if r else "0")
        for q in range(nv):
            pv = fn.op(f"bitcast {t}* {fn.gep(t, row, str(q * ln))} to {vt}*", "p")
            out.append(fn.op(f"load {vt}, {vt}* {pv}, align {_align(t)}"))
    return out


def _store_tile(fn: _Fn, t: str, vt: str, ln: int, mr: int, nv: int, dst: str, ld: str,
                acc: list[str]) -> None:
    for r in range(mr):
        row = fn.gep(t, dst, fn.mul(ld, str(r)) if r else "0")
        for q in range(nv):
            p = fn.gep(t, row, str(q * ln))
            pv = fn.op(f"bitcast {t}* {p} to {vt}*", "p")
            fn.lines.append(f"  store {vt} {acc[r * nv + q]}, {vt}* {pv}, align {_align(t)}")


def _ptr_params(t: str, mr: int, name: str) -> str:
    return ", ".join(f"{t}* %{name}{r}" for r in range(mr))


def _types(dtype: np.dtype, oc: int) -> tuple[str, int, str, int, list[tuple[int, int]]]:
    """(IR element type, lanes, vector type, max tile height, channel chunks)."""
    t = "float" if dtype == np.float32 else "double"
    ln = lanes(dtype)
    return (t, ln, f"<{ln} x {t}>", *_plan(oc, dtype))


def _conv_module(dtype: np.dtype, oc: int) -> str:
    t, ln, vt, mr_max, chunks = _types(dtype, oc)
    funcs = []
    # tile(xw0.., fw, ow, bw, i0, i1, kwc, wpc, mode): adds the window rows i0..i1 of
    # the tile's pixels to their outputs (mode & ACC) or writes them, then adds the bias
    # (mode & BIAS) and applies relu (mode & RELU). xw_r is the window of pixel r (its
    # top-left input element); fw = f + oc0, rows of oc; ow = out + oc0 at pixel 0, the
    # tile's pixels being consecutive in out; bw = bias + oc0.
    for mr in _tile_sizes(mr_max):
        for nv in sorted({nv for _, nv in chunks}):
            fn = _Fn(f"define internal void @tile_{mr}_{nv}({_ptr_params(t, mr, 'xw')}, "
                     f"{t}* noalias %fw, {t}* noalias %ow, {t}* noalias %bw, i64 %i0, "
                     "i64 %i1, i64 %kwc, i64 %wpc, i64 %mode) {")
            rows = [f"%xw{r}" for r in range(mr)]

            def over_i(i: str, acc: list[str], fn: _Fn = fn, nv: int = nv,
                       rows: list[str] = rows) -> list[str]:
                xi = fn.mul(i, "%wpc")
                fi = fn.gep(t, "%fw", fn.mul(fn.mul(i, "%kwc"), str(oc)))

                def over_k(k: str, acc: list[str]) -> list[str]:
                    return _fma_step(fn, t, vt, ln, rows, fn.add(xi, k), nv,
                                     fn.gep(t, fi, fn.mul(k, str(oc))), acc)

                return fn.loop("0", "%kwc", [(vt, a) for a in acc], over_k, guard=False)

            init = _load_or_zero(fn, t, vt, ln, mr, nv, "%ow", str(oc),
                                 fn.op(f"and i64 %mode, {ACC}"))
            acc = fn.loop("%i0", "%i1", [(vt, a) for a in init], over_i, guard=True)
            acc = _epilogue(fn, t, vt, ln, nv, acc, "%bw", "%mode")
            _store_tile(fn, t, vt, ln, mr, nv, "%ow", str(oc), acc)
            funcs.append(fn.finish())
    # conv(x, f, out, bias, p0, p1, oh, ow, shwpc, hpwpc, wpc, xs, kh, kwc, ib, epi, sh, rt,
    # rb): the output pixels p0..p1 of all images in order (p = (n*oh + oy)*ow + ox);
    # pixel p's window starts at x + n*hpwpc + oy*shwpc + ox*xs. Tiles run across row and
    # image ends, so only the range's last pixels need smaller tiles. Groups of _GROUP
    # tiles take the window ib rows at a time, so that block of the filter is read from
    # L1 by all of them instead of the whole filter from L2 by each (ib = kh: no
    # blocking). epi (BIAS | RELU bits) is applied once, by the block holding a tile's
    # last row. Rows of x outside [rt, rb) are padding (zeros): a tile skips the window
    # rows that are padding for all its pixels.
    fn = _Fn(f"define void @conv({t}* noalias %x, {t}* noalias %f, {t}* noalias %out, "
             f"{t}* noalias %bias, i64 %p0, i64 %p1, i64 %oh, i64 %ow, i64 %shwpc, "
             "i64 %hpwpc, i64 %wpc, i64 %xs, i64 %kh, i64 %kwc, i64 %ib, i64 %epi, i64 %sh, "
             "i64 %rt, i64 %rb) {")
    per_image = fn.mul("%oh", "%ow")

    def smin(a: str, b: str) -> str:
        return fn.op(f"select i1 {fn.op(f'icmp slt i64 {a}, {b}')}, i64 {a}, i64 {b}")

    def smax(a: str, b: str) -> str:
        return fn.op(f"select i1 {fn.op(f'icmp sgt i64 {a}, {b}')}, i64 {a}, i64 {b}")

    def windows(p: str, mr: int) -> tuple[list[str], list[tuple[str, str]]]:
        # Per pixel: its window's pointer and the window rows [lo, hi) that are not
        # padding ((kh, 0) when none is). Divisions for the first pixel only (tens of
        # cycles each: with a 5x5x1 window they cost more than the tile's arithmetic);
        # the next pixels step ox and wrap into oy and n with selects.
        n = fn.op(f"sdiv i64 {p}, {per_image}")
        rest = fn.op(f"srem i64 {p}, {per_image}")
        oy = fn.op(f"sdiv i64 {rest}, %ow")
        ox = fn.op(f"srem i64 {rest}, %ow")
        ptrs, rows = [], []
        for r in range(mr):
            if r:
                ox = fn.add(ox, "1")
                wrap = fn.op(f"icmp eq i64 {ox}, %ow")
                ox = fn.op(f"select i1 {wrap}, i64 0, i64 {ox}")
                oy = fn.op(f"add i64 {oy}, {fn.op(f'zext i1 {wrap} to i64')}")
                wrap = fn.op(f"icmp eq i64 {oy}, %oh")
                oy = fn.op(f"select i1 {wrap}, i64 0, i64 {oy}")
                n = fn.op(f"add i64 {n}, {fn.op(f'zext i1 {wrap} to i64')}")
            ptrs.append(fn.gep(t, "%x", fn.add(fn.add(fn.mul(n, "%hpwpc"), fn.mul(oy, "%shwpc")),
                                               fn.mul(ox, "%xs"))))
            y = fn.mul(oy, "%sh")
            lo = smax(fn.op(f"sub i64 %rt, {y}"), "0")
            hi = smin(fn.op(f"sub i64 %rb, {y}"), "%kh")
            some = fn.op(f"icmp slt i64 {lo}, {hi}")
            rows.append((fn.op(f"select i1 {some}, i64 {lo}, i64 %kh"),
                         fn.op(f"select i1 {some}, i64 {hi}, i64 0")))
        return ptrs, rows

    def tile_rows(rows: list[tuple[str, str]]) -> tuple[str, str, str]:
        """(lo, hi, last): the window rows [lo, hi) some pixel of a tile needs, and the
        row whose block applies the epilogue; (0, 0, 0) when no pixel needs any (the
        tile is then written by block 0: zeros, through the epilogue)."""
        lo, hi = rows[0]
        for a, b in rows[1:]:
            lo, hi = smin(lo, a), smax(hi, b)
        some = fn.op(f"icmp slt i64 {lo}, {hi}")
        lo = fn.op(f"select i1 {some}, i64 {lo}, i64 0")
        hi = fn.op(f"select i1 {some}, i64 {hi}, i64 0")
        return lo, hi, smax(fn.op(f"sub i64 {hi}, 1"), lo)

    def call(xs: list[str], p: str, c0: int, nv: int, i0: str, i1: str,
             rows: tuple[str, str, str]) -> None:
        # Block [i0, i1) of the window: the tile's rows in it; it writes (not adds) if
        # no earlier block had any, and applies the epilogue if it holds the last one.
        lo, hi, last = rows
        acc = fn.op(f"zext i1 {fn.op(f'icmp sgt i64 {i0}, {lo}')} to i64")
        holds = fn.op(f"and i1 {fn.op(f'icmp sle i64 {i0}, {last}')}, "
                      f"{fn.op(f'icmp slt i64 {last}, {i1}')}")
        mode = fn.op(f"or i64 {acc}, {fn.op(f'select i1 {holds}, i64 %epi, i64 0')}")
        args = ", ".join(f"{t}* {x}" for x in xs)
        fw = fn.gep(t, "%f", str(c0))
        oo = fn.gep(t, "%out", fn.add(fn.mul(p, str(oc)), str(c0)))
        bw = fn.gep(t, "%bias", str(c0))
        fn.lines.append(f"  call void @tile_{len(xs)}_{nv}({args}, {t}* {fw}, {t}* {oo}, "
                        f"{t}* {bw}, i64 {smax(i0, lo)}, i64 {smin(i1, hi)}, i64 %kwc, "
                        f"i64 %wpc, i64 {mode})")

    span = _GROUP * mr_max
    groups = fn.op(f"sdiv i64 {fn.op('sub i64 %p1, %p0')}, {span}")
    blocks = fn.op(f"sdiv i64 {fn.add('%kh', fn.op('sub i64 %ib, 1'))}, %ib")

    def over_g(g: str, _: list[str]) -> list[str]:
        gp = fn.add("%p0", fn.mul(g, str(span)))
        xs, rows = windows(gp, span)
        tiles = [tile_rows(rows[k * mr_max:(k + 1) * mr_max]) for k in range(_GROUP)]
        for c0, nv in chunks:
            def over_b(b: str, _: list[str], c0: int = c0, nv: int = nv) -> list[str]:
                i0 = fn.mul(b, "%ib")
                i1 = smin(fn.add(i0, "%ib"), "%kh")
                for k in range(_GROUP):
                    call(xs[k * mr_max:(k + 1) * mr_max], fn.add(gp, str(k * mr_max)), c0, nv,
                         i0, i1, tiles[k])
                return []

            fn.loop("0", blocks, [], over_b, guard=False)
        return []

    fn.loop("0", groups, [], over_g, guard=True)

    def tile(p: str, mr: int) -> None:
        xs, rows = windows(p, mr)
        span_rows = tile_rows(rows)
        for c0, nv in chunks:
            call(xs, p, c0, nv, "0", "%kh", span_rows)

    _tiled(fn, fn.add("%p0", fn.mul(groups, str(span))), "%p1", mr_max, tile)
    funcs.append(fn.finish())
    return _module(t, ln, funcs)


# Tiles that share a block of the filter (see ``conv``).
_GROUP = 4

# Bits of a conv tile's mode: add to the output (else write it); then add the bias;
# then relu.
ACC, BIAS, RELU = 1, 2, 4


def _epilogue(fn: _Fn, t: str, vt: str, ln: int, nv: int, acc: list[str], bias: str,
              mode: str) -> list[str]:
    """``acc`` (rows of ``nv`` vectors) plus the bias vectors at ``bias`` when ``mode &
    BIAS``, then through relu when ``mode & RELU``: ``x if x > 0 or x is NaN else +0``,
    NumPy's ``maximum(x, 0)`` (the reference's) bit for bit."""
    def when(bit: int, body: Callable[[], list[str]], acc: list[str]) -> list[str]:
        yes, done = fn.name("E")[1:], fn.name("F")[1:]
        pre = fn.block
        on = fn.op(f"icmp ne i64 {fn.op(f'and i64 {mode}, {bit}')}, 0")
        fn.lines.append(f"  br i1 {on}, label %{yes}, label %{done}")
        fn.label(yes)
        new = body()
        end = fn.block
        fn.lines.append(f"  br label %{done}")
        fn.label(done)
        return [fn.op(f"phi {vt} [{a}, %{pre}], [{b}, %{end}]") for a, b in zip(acc, new)]

    def add_bias(acc: list[str] = acc) -> list[str]:
        bs = []
        for q in range(nv):
            pv = fn.op(f"bitcast {t}* {fn.gep(t, bias, str(q * ln))} to {vt}*", "p")
            bs.append(fn.op(f"load {vt}, {vt}* {pv}, align {_align(t)}"))
        return [fn.op(f"fadd {vt} {a}, {bs[k % nv]}") for k, a in enumerate(acc)]

    acc = when(BIAS, add_bias, acc)

    def relu(acc: list[str] = acc) -> list[str]:
        out = []
        for a in acc:
            keep = fn.op(f"fcmp ugt {vt} {a}, zeroinitializer")
            out.append(fn.op(f"select <{ln} x i1> {keep}, {vt} {a}, {vt} zeroinitializer"))
        return out

    return when(RELU, relu, acc)


def _load_or_zero(fn: _Fn, t: str, vt: str, ln: int, mr: int, nv: int, src: str, ld: str,
                  flag: str) -> list[str]:
    """The tile at ``src`` when ``flag != 0``, else zeros."""
    load, zero, join = fn.name("A")[1:], fn.name("Z")[1:], fn.name("J")[1:]
    cond = fn.op(f"icmp ne i64 {flag}, 0")
    fn.lines.append(f"  br i1 {cond}, label %{load}, label %{zero}")
    fn.label(load)
    loaded = _load_tile(fn, t, vt, ln, mr, nv, src, ld)
    fn.lines.append(f"  br label %{join}")
    fn.label(zero)
    fn.lines.append(f"  br label %{join}")
    fn.label(join)
    return [fn.op(f"phi {vt} [{v}, %{load}], [zeroinitializer, %{zero}]") for v in loaded]


def _tiled(fn: _Fn, start: str, end: str, mr_max: int,
           emit: Callable[[str, int], None]) -> None:
    """Covers ``[start, end)`` with tiles of ``mr_max``, then of 8, 4, 2, 1 (those below
    ``mr_max``), biggest first: ``emit(first, size)`` writes one tile."""
    count = fn.op(f"sdiv i64 {fn.op(f'sub i64 {end}, {start}')}, {mr_max}")

    def over_t(tt: str, _: list[str]) -> list[str]:
        emit(fn.add(start, fn.mul(tt, str(mr_max))), mr_max)
        return []

    fn.loop("0", count, [], over_t, guard=True)
    at = fn.add(start, fn.mul(count, str(mr_max)))
    for size in _tile_sizes(mr_max)[1:]:
        left = fn.op(f"sub i64 {end}, {at}")
        big = fn.op(f"icmp sge i64 {left}, {size}")

        def one(at: str = at, size: int = size) -> str:
            emit(at, size)
            return fn.add(at, str(size))

        at = fn.choose(big, at, one)


def _wgrad_module(dtype: np.dtype, oc: int) -> str:
    t, ln, vt, mr_max, chunks = _types(dtype, oc)
    funcs = []
    # tile(xk0.., dyo, dfo, n0, n1, y0, y1, x0, x1, ow, shwpc, hpwpc, xs): adds to mr
    # consecutive rows of df (flat [kh * kw * C, oc], from dfo = df + row*oc + oc0) their
    # sums over images n0..n1 (n0 < n1) and output pixels [y0, y1) x [x0, x1) (may be
    # empty); row r reads x from xk_r = x + i*wpc + k for its (i, k).
    for mr in _tile_sizes(mr_max):
        for nv in sorted({nv for _, nv in chunks}):
            fn = _Fn(f"define internal void @tile_{mr}_{nv}({_ptr_params(t, mr, 'xk')}, "
                     f"{t}* noalias %dyo, {t}* noalias %dfo, i64 %n0, i64 %n1, i64 %oh, "
                     f"i64 %y0, i64 %y1, i64 %x0, i64 %x1, i64 %ow, i64 %shwpc, i64 %hpwpc, "
                     f"i64 %xs) {{")
            rows = [f"%xk{r}" for r in range(mr)]
            rowlen = fn.mul("%ow", str(oc))

            def over_n(n: str, acc: list[str], fn: _Fn = fn, nv: int = nv,
                       rows: list[str] = rows, rowlen: str = rowlen) -> list[str]:
                xn = fn.mul(n, "%hpwpc")
                dn = fn.gep(t, "%dyo", fn.mul(fn.mul(n, "%oh"), rowlen))

                def over_y(y: str, acc: list[str]) -> list[str]:
                    xy = fn.add(xn, fn.mul(y, "%shwpc"))
                    dyy = fn.gep(t, dn, fn.mul(y, rowlen))

                    def over_x(xx: str, acc: list[str]) -> list[str]:
                        return _fma_step(fn, t, vt, ln, rows, fn.add(xy, fn.mul(xx, "%xs")),
                                         nv, fn.gep(t, dyy, fn.mul(xx, str(oc))), acc)

                    return fn.loop("%x0", "%x1", [(vt, a) for a in acc], over_x, guard=True)

                return fn.loop("%y0", "%y1", [(vt, a) for a in acc], over_y, guard=True)

            init = _load_tile(fn, t, vt, ln, mr, nv, "%dfo", str(oc))
            acc = fn.loop("%n0", "%n1", [(vt, a) for a in init], over_n, guard=False)
            _store_tile(fn, t, vt, ln, mr, nv, "%dfo", str(oc), acc)
            funcs.append(fn.finish())
    # wgrad(x, dy, df, spans, db, n0, n1, oh, ow, shwpc, hpwpc, wpc, xs, kh, kwc): adds the
    # sum over images n0..n1 (oh, ow >= 1) onto df, one image at a time: its input and
    # gradient stay in cache while every tile adds its share (a sweep over all images
    # per tile ran 3x slower). Tiles run across the window's rows (flat index
    # i*kwc + k), so only the last rows of df need smaller tiles. spans (4 per df row:
    # y0, y1, x0, x1) bound the output pixels whose window puts that row on the input
    # rather than padding; a tile visits the box holding its rows', which skips padding
    # when the image's gradient is finite (padding's zeros times inf or NaN are NaN in
    # the reference's sum: such an image visits every pixel).
    fn = _Fn(f"define void @wgrad({t}* noalias %x, {t}* noalias %dy, {t}* noalias %df, "
             f"i64* noalias %spans, {t}* noalias %db, i64 %n0, i64 %n1, i64 %oh, i64 %ow, "
             "i64 %shwpc, i64 %hpwpc, i64 %wpc, i64 %xs, i64 %kh, i64 %kwc) {")
    total = fn.mul("%kh", "%kwc")
    nvec = oc // ln
    pixels = fn.mul("%oh", "%ow")
    with_bias = fn.op(f"icmp ne {t}* %db, null")

    def smin(a: str, b: str) -> str:
        return fn.op(f"select i1 {fn.op(f'icmp slt i64 {a}, {b}')}, i64 {a}, i64 {b}")

    def smax(a: str, b: str) -> str:
        return fn.op(f"select i1 {fn.op(f'icmp sgt i64 {a}, {b}')}, i64 {a}, i64 {b}")

    def vec(base: str, off: str) -> str:
        return fn.op(f"bitcast {t}* {fn.gep(t, base, off)} to {vt}*", "p")

    def over_n(n: str, _: list[str]) -> list[str]:
        n1 = fn.add(n, "1")
        # One pass over the image's gradient (which the tiles read next, from cache):
        # its sum per channel, the bias's gradient when db is given; a sum that is not
        # finite (an inf or NaN, or an overflow) turns padding skipping off.
        dn = fn.gep(t, "%dy", fn.mul(n, fn.mul(pixels, str(oc))))

        def scan(pix: str, acc: list[str]) -> list[str]:
            base = fn.gep(t, dn, fn.mul(pix, str(oc)))
            return [fn.op(f"fadd {vt} {acc[q]}, "
                          + fn.op(f"load {vt}, {vt}* {vec(base, str(q * ln))}, align {_align(t)}"))
                    for q in range(nvec)]

        sums = fn.loop("0", pixels, [(vt, "zeroinitializer")] * nvec, scan, guard=False)
        bad = None
        for v in sums:
            u = fn.op(f"fcmp uno {vt} {fn.op(f'fsub {vt} {v}, {v}')}, zeroinitializer")
            bad = u if bad is None else fn.op(f"or <{ln} x i1> {bad}, {u}")
        bits = fn.op(f"bitcast <{ln} x i1> {bad} to i{ln}")
        finite = fn.op(f"icmp eq i{ln} {bits}, 0")
        yes, done = fn.name("B")[1:], fn.name("C")[1:]
        fn.lines.append(f"  br i1 {with_bias}, label %{yes}, label %{done}")
        fn.label(yes)
        for q, v in enumerate(sums):
            p = vec("%db", str(q * ln))
            old = fn.op(f"load {vt}, {vt}* {p}, align {_align(t)}")
            fn.lines.append(f"  store {vt} {fn.op(f'fadd {vt} {old}, {v}')}, {vt}* {p}, "
                            f"align {_align(t)}")
        fn.lines.append(f"  br label %{done}")
        fn.label(done)

        def tile(row: str, mr: int) -> None:
            xs = []
            box = None
            for r in range(mr):
                flat = fn.add(row, str(r))
                i = fn.op(f"sdiv i64 {flat}, %kwc")
                k = fn.op(f"srem i64 {flat}, %kwc")
                xs.append(fn.gep(t, "%x", fn.add(fn.mul(i, "%wpc"), k)))
                at = fn.mul(flat, "4")
                span = []
                for q in range(4):
                    p = fn.op(f"getelementptr inbounds i64, i64* %spans, i64 {fn.add(at, str(q))}",
                              "p")
                    span.append(fn.op(f"load i64, i64* {p}"))
                box = span if box is None else [smin(box[0], span[0]), smax(box[1], span[1]),
                                                smin(box[2], span[2]), smax(box[3], span[3])]
            y0 = fn.op(f"select i1 {finite}, i64 {box[0]}, i64 0")
            y1 = fn.op(f"select i1 {finite}, i64 {box[1]}, i64 %oh")
            x0 = fn.op(f"select i1 {finite}, i64 {box[2]}, i64 0")
            x1 = fn.op(f"select i1 {finite}, i64 {box[3]}, i64 %ow")
            args = ", ".join(f"{t}* {x}" for x in xs)
            base = fn.mul(row, str(oc))
            for c0, nv in chunks:
                dy0 = fn.gep(t, "%dy", str(c0))
                df0 = fn.gep(t, "%df", fn.add(base, str(c0)))
                fn.lines.append(
                    f"  call void @tile_{mr}_{nv}({args}, {t}* {dy0}, {t}* {df0}, i64 {n}, "
                    f"i64 {n1}, i64 %oh, i64 {y0}, i64 {y1}, i64 {x0}, i64 {x1}, i64 %ow, "
                    f"i64 %shwpc, i64 %hpwpc, i64 %xs)")

        _tiled(fn, "0", total, mr_max, tile)
        return []

    fn.loop("%n0", "%n1", [], over_n, guard=True)
    funcs.append(fn.finish())
    return _module(t, ln, funcs)


def wgrad_spans(kh: int, kw: int, c: int, oh: int, ow: int, sh: int, sw: int,
                rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """Per row ``(i, k)`` of a filter gradient (``k = j*c + channel``): ``[y0, y1, x0,
    x1]``, the output pixels whose window element ``(i, j)`` lies on the input's real
    ``rows`` and ``cols`` (``[start, end)`` in padded coordinates) rather than padding;
    ``[oh, 0, ow, 0]`` (empty, neutral in a union) for none.

    Returns:
      An int64 array ``[kh * kw * c, 4]``.
    """
    i = np.arange(kh)
    j = np.arange(kw)
    # ceil(max(0, a) / s): the first output whose window row/column reaches a.
    y0 = -(-np.maximum(rows[0] - i, 0) // sh)
    y1 = np.minimum(-(-np.maximum(rows[1] - i, 0) // sh), oh)
    x0 = -(-np.maximum(cols[0] - j, 0) // sw)
    x1 = np.minimum(-(-np.maximum(cols[1] - j, 0) // sw), ow)
    out = np.empty((kh, kw, c, 4), np.int64)
    out[..., 0] = y0[:, None, None]
    out[..., 1] = y1[:, None, None]
    out[..., 2] = x0[None, :, None]
    out[..., 3] = x1[None, :, None]
    empty = (out[..., 0] >= out[..., 1]) | (out[..., 2] >= out[..., 3])
    out[empty] = (oh, 0, ow, 0)
    return out.reshape(-1, 4)


def _module(t: str, ln: int, funcs: list[str]) -> str:
    vt = f"<{ln} x {t}>"
    return (f"declare {vt} @llvm.fma.v{ln}{_suffix(t)}({vt}, {vt}, {vt})\n\n"
            + "\n\n".join(funcs) + "\n")


_ARGS = {"conv": (ctypes.c_void_p,) * 4 + (ctypes.c_int64,) * 15,
         "wgrad": (ctypes.c_void_p,) * 5 + (ctypes.c_int64,) * 10}


def _compile(kind: str, dtype: np.dtype, oc: int) -> Callable[..., None]:
    key = (kind, dtype.str, oc)
    fn = _kernels.get(key)
    if fn is not None:
        return fn
    return compile_module(key, lambda: (_conv_module if kind == "conv" else _wgrad_module)(
        dtype, oc), kind, _ARGS[kind])


def compile_module(key: tuple, source: Callable[[], str], entry: str,
                   argtypes: tuple) -> Callable[..., None]:
    """The function ``entry`` of the IR module ``source()`` (built on first use), compiled
    once per process per ``key`` and its machine code kept in the kernel cache.

    Args:
      key: names the module among this process's (kind, dtype, sizes).
      source: returns the module's IR text.
      entry: the function to return.
      argtypes: its ctypes argument types (it returns nothing).

    Returns:
      A ctypes function (called with the GIL released).
    """
    fn = _kernels.get(key)
    if fn is not None:
        return fn
    with _lock:
        fn = _kernels.get(key)
        if fn is None:
            machine = _target()
            text = source()
            mod = llvm.parse_assembly(text)
            mod.verify()
            engine = llvm.create_mcjit_compiler(mod, machine)
            # The machine code goes to the kernel cache: a later process loads it
            # instead of compiling (a damaged entry fails its checksum: compiled again).
            path = cache.object_path(text)
            cached = cache.read_object(path)

            def store(_module: Any, body: bytes) -> None:
                if cached is None:
                    cache.write_object(path, bytes(body))

            engine.set_object_cache(store, lambda _module: cached)
            engine.finalize_object()
            stats["loaded" if cached is not None else "compiled"] += 1
            _engines.append(engine)
            # ctypes releases the GIL for the call: pieces run in parallel threads.
            fn = ctypes.CFUNCTYPE(None, *argtypes)(engine.get_function_address(entry))
            _kernels[key] = fn
    return fn


def conv_kernel(dtype: Any, oc: int) -> Callable[..., None]:
    """The compiled ``conv`` kernel for ``dtype`` and ``oc`` output channels.

    Args:
      dtype: float32 or float64.
      oc: output channels, a multiple of :func:`lanes`.

    Returns:
      ``fn(x, f, out, bias, p0, p1, oh, ow, shwpc, hpwpc, wpc, xs, kh, kwc, ib, epi, sh,
      rt, rb)`` on data addresses: output pixels ``p0..p1`` (``p = (n*oh + oy)*ow +
      ox``), whose window element ``(i, k)`` is at ``x + n*hpwpc + oy*shwpc + ox*xs +
      i*wpc + k`` and meets filter row ``i*kwc + k``; ``ib`` window rows at a time (1 <=
      ib <= kh); ``epi``: :data:`BIAS` (add ``bias[oc]``, else ``bias`` may be null)
      and/or :data:`RELU`, applied to each finished output. Rows of ``x`` (per image)
      outside ``[rt, rb)`` must be zeros: windows skip them (``oy*sh + i`` is the row).
    """
    return _compile("conv", np.dtype(dtype), oc)


def wgrad_kernel(dtype: Any, oc: int) -> Callable[..., None]:
    """The compiled ``wgrad`` kernel for ``dtype`` and ``oc`` output channels.

    Args:
      dtype: float32 or float64.
      oc: output channels, a multiple of :func:`lanes`.

    Returns:
      ``fn(x, dy, df, spans, db, n0, n1, oh, ow, shwpc, hpwpc, wpc, xs, kh, kwc)``: adds
      onto ``df`` (flat ``[kh * kwc, oc]``) the products over images ``n0..n1`` of window
      element ``(i, k)`` at ``x + n*hpwpc + oy*shwpc + ox*xs + i*wpc + k`` with ``dy[n,
      oy, ox]``; ``spans`` (int64 ``[kh * kwc, 4]``: ``y0, y1, x0, x1``) bounds the
      pixels where row ``(i, k)`` is not padding (:func:`wgrad_spans`). Unless null,
      ``db`` (``[oc]``) gets each image's sum of ``dy`` over its pixels added.
    """
    return _compile("wgrad", np.dtype(dtype), oc)
