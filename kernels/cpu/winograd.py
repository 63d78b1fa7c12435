"""Winograd convolution kernels for 5x5 and 3x3 windows at stride 1, emitted as LLVM IR
(see :mod:`convkernels`).

A stride-1 5x5 convolution computes each 2x2 block of outputs from a 6x6 patch of
its input, a 3x3 one each 4x4 block. Winograd's minimal filtering algorithm (Lavin
and Gray, "Fast Algorithms for Convolutional Neural Networks", 2015) does that with
36 products per channel pair instead of 100 (5x5) or 144 (3x3): with ``d`` the
patch and ``g`` the filter of one channel pair,

    Y = A^T [(G g G^T) * (B^T d B)] A

(``*`` elementwise; F(2x2, 5x5) and F(4x4, 3x3), both on the points 0, 1, -1, 2, -2
and infinity, so B^T is one matrix: :class:`Scheme` holds the rest). Over channels
the 36 products become 36 independent matrix products ``M[xi] = V[xi] @ U[xi]`` of
the transformed patches ``V[xi]`` (tiles x C) with the transformed filter ``U[xi]``
(C x OC): 2.8x (5x5) and 4x (3x3) fewer multiply-adds than the direct kernels', for
a few transforms.

* :func:`kernel` (Conv2D; the input gradient is a convolution too) takes a block of
  tiles at a time: it transforms their patches into ``V`` (thread scratch, in L2),
  reading the unpadded input (padding is a select of zeros), runs the 36 products
  with register tiles as :mod:`convkernels`' into ``M``, and transforms those back
  into outputs, adding the bias and applying relu as the direct kernel's epilogue
  does. The filter's transform ``U[a*6 + b, c, oc] = (G f[:, :, c, oc] G^T)[a, b]`` is
  the caller's (``library._winograd_filter``, in float64 rounded once).
* :func:`wgrad_kernel` (the filter gradient) is F(5x5, 2x2) or F(3x3, 4x4): the taps
  from a 6x6 patch of the input and a tile of the output's gradient. Summed over
  tiles, ``M[xi] += V[xi]^T @ D[xi]`` (C x tiles by tiles x OC); the caller
  transforms the sums into taps once, in float64.

Rounding. The transforms mix a tile's whole patch, so an output's error is a
fraction of its tile's size rather than of its own terms'. Measured against float64
on random 6-15 pixel images (`SAME`), as a fraction of the outputs' own absolute
sums of terms, at most: 5x5 Conv2D 1.6e-6, input gradient 1.8e-6, filter gradient
6e-6; 3x3 5.5e-6, 2.9e-6 and 1.5e-6; the direct kernels 2-4e-7. Outputs with few
terms of their own round like their tile's others: a VALID convolution's input
gradient reached 3.4e-5 of a border pixel's own scale, and a few huge inputs 1.7e-5
of the largest scale among the tile's outputs (the tests bound every output by 1e-5
of that). An inf or NaN in a
patch spreads to all the outputs of its tile, where the direct sum puts it only in
the windows holding it: such tiles are flagged and the caller computes them again
directly; a filter gradient with any sum not finite is the direct kernel's.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from graphflow.kernels.cpu import convkernels as ck

__all__ = ["B_T", "BLOCK", "SCHEMES", "Scheme", "block_tiles", "kernel", "scratch_sizes",
           "takes", "wgrad_kernel"]

# The points 0, 1, -1, 2, -2 (and infinity) of every transform here: 6 of them, so each
# tile reads a 6x6 patch, F(2x2, 5x5) and F(4x4, 3x3) alike.
_POINTS = [Fraction(p) for p in (0, 1, -1, 2, -2)]
PATCH = 6
B_T = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], np.float64)
# Per point: the product of its distances to the others (1 for infinity).
_F = np.array([float(np.prod([p - q for q in _POINTS if q != p])) for p in _POINTS] + [1.0])


def _powers(k: int) -> np.ndarray:
    """``[6, k]``: row j is point j's powers 0..k-1; the last row (infinity) ``[0, .., 1]``."""
    return np.array([[float(p ** i) for i in range(k)] for p in _POINTS]
                    + [[0.0] * (k - 1) + [1.0]], np.float64)


class Scheme:
    """The matrices of one filter size ``taps`` (5 or 3), whose output tiles are ``m = 7 -
    taps`` wide.

    Attributes:
      taps, m: the filter's and an output tile's size.
      a_t: ``[m, 6]``, F(m x m, taps x taps)'s output transform A^T.
      g: ``[6, taps]``, its filter transform G (Lagrange bases over the points).
      g_wgrad: ``[6, m]``, the filter gradient's F(taps, m) transform of a tile of the
        output's gradient, integers (its denominators are in ``a_t_wgrad``).
      a_t_wgrad: ``[taps, 6]``, that gradient's output transform, divided by them.
    """

    def __init__(self, taps: int) -> None:
        self.taps, self.m = taps, PATCH + 1 - taps
        self.a_t = np.ascontiguousarray(_powers(self.m).T)
        self.g = _powers(taps) / _F[:, None]
        self.g_wgrad = _powers(self.m)
        self.a_t_wgrad = _powers(taps).T / _F[None, :]


SCHEMES = {5: Scheme(5), 3: Scheme(3)}
# About the tiles transformed, multiplied and transformed back at a time: their V
# and M (36 x tiles x channels each) stay in L2.
BLOCK = 48


def block_tiles(dtype: np.dtype, oc: int, wgrad: bool = False) -> int:
    """Tiles per block: whole register tiles of the convolution's products (whose rows are
    tiles), so none is cut short; :data:`BLOCK` for the filter gradient's (its rows are
    channels)."""
    if wgrad:
        return BLOCK
    mr = ck._plan(oc, np.dtype(dtype))[0]
    return mr * max(1, round(BLOCK / mr))


def takes(dtype: np.dtype, kh: int, kw: int, c: int, oc: int) -> bool:
    """Whether the kernels compute a stride-1 ``kh x kw`` convolution of ``c`` channels
    into ``oc``: 5x5 or 3x3, float32, channel counts in whole vectors. (float64 stays
    direct: who computes in it wants the direct sum's rounding.)"""
    if np.dtype(dtype) != np.float32 or kh != kw or kh not in SCHEMES or c == 0 or oc == 0:
        return False
    ln = ck.lanes(dtype)
    return c % ln == 0 and oc % ln == 0


def _splat(vt: str, t: str, c: float) -> str:
    """The constant vector of ``vt`` (``<ln x t>``) with every lane ``c`` (exact in ``t``)."""
    ln = int(vt[1:vt.index(" ")])
    return "<" + ", ".join([f"{t} {float(c)!r}"] * ln) + ">"


def _combo(fn: ck._Fn, vt: str, t: str, terms: list[tuple[float, str]]) -> str:
    """``sum(coef * vec)`` over ``terms`` (coefficients small integers, zeros left out)."""
    terms = [(c, v) for c, v in terms if c != 0]
    if not terms:
        return "zeroinitializer"

    def const(c: float) -> str:
        return _splat(vt, t, c)

    c0, v0 = terms[0]
    if c0 == 1:
        acc = v0
    elif c0 == -1:
        acc = fn.op(f"fneg {vt} {v0}")
    else:
        acc = fn.op(f"fmul {vt} {v0}, {const(c0)}")
    for c, v in terms[1:]:
        if c == 1:
            acc = fn.op(f"fadd {vt} {acc}, {v}")
        elif c == -1:
            acc = fn.op(f"fsub {vt} {acc}, {v}")
        else:
            ln = int(vt[1:vt.index(" ")])
            acc = fn.op(f"call {vt} @llvm.fma.v{ln}{ck._suffix(t)}({vt} {v}, {vt} {const(c)}, "
                        f"{vt} {acc})")
    return acc


def _apply(fn: ck._Fn, vt: str, t: str, m: np.ndarray, col: list[str]) -> list[str]:
    """``m @ col`` for a column of vectors. B^T and A^T share terms between their rows
    (LLVM may not find them: it keeps the FP order of the sums as written), which takes
    B^T from 22 operations to 12."""
    ln = int(vt[1:vt.index(" ")])
    fma = f"@llvm.fma.v{ln}{ck._suffix(t)}"

    def mad(a: str, c: float, b: str) -> str:  # a * c + b
        return fn.op(f"call {vt} {fma}({vt} {a}, {vt} {_splat(vt, t, c)}, {vt} {b})")

    def op(name: str, a: str, b: str) -> str:
        return fn.op(f"{name} {vt} {a}, {b}")

    if m is B_T:
        d0, d1, d2, d3, d4, d5 = col
        t1, t2 = mad(d2, -4, d4), mad(d1, -4, d3)  # d4 - 4 d2, d3 - 4 d1
        t3, t4 = op("fsub", d4, d2), op("fsub", d3, d1)
        return [mad(d0, 4, mad(d2, -5, d4)), op("fadd", t1, t2), op("fsub", t1, t2),
                mad(t4, 2, t3), mad(t4, -2, t3), mad(d1, 4, mad(d3, -5, d5))]
    if m is SCHEMES[5].a_t:
        m0, m1, m2, m3, m4, m5 = col
        s12, d12 = op("fadd", m1, m2), op("fsub", m1, m2)
        s34, d34 = op("fadd", m3, m4), op("fsub", m3, m4)
        return [op("fadd", op("fadd", m0, s12), s34), op("fadd", mad(d34, 2, d12), m5)]
    return [_combo(fn, vt, t, [(m[a, i], col[i]) for i in range(len(col))])
            for a in range(m.shape[0])]


def _sandwich(fn: ck._Fn, vt: str, t: str, m: np.ndarray, d: list[list[str]]) -> list[list[str]]:
    """``m @ d @ m.T`` for a matrix of vectors ``d`` (columns, then rows)."""
    cols = [_apply(fn, vt, t, m, [d[i][j] for i in range(len(d))]) for j in range(len(d[0]))]
    # cols[j][a] = (m @ d)[a, j]
    return [_apply(fn, vt, t, m, [cols[j][a] for j in range(len(d[0]))])
            for a in range(m.shape[0])]


def _gemm_tiles(t: str, vt: str, ln: int, mr_max: int, nvs: list[int]) -> list[str]:
    """``tile_{mr}_{nv}(a0.., sak, b, sbk, m, ldc, k, acc)``: ``m[r] (+)= sum_j a_r[j*sak] *
    b[j*sbk]`` over ``j < k`` (``k >= 1``) for an ``mr x nv`` vector tile (``m`` rows
    ``ldc`` apart); ``acc != 0`` adds to ``m``, else writes it."""
    funcs = []
    for mr in ck._tile_sizes(mr_max):
        for nv in nvs:
            fn = ck._Fn(f"define internal void @tile_{mr}_{nv}({ck._ptr_params(t, mr, 'a')}, "
                        f"i64 %sak, {t}* noalias %b, i64 %sbk, {t}* noalias %m, i64 %ldc, "
                        "i64 %k, i64 %acc) {")
            rows = [f"%a{r}" for r in range(mr)]

            def over_k(j: str, acc: list[str], fn: ck._Fn = fn, nv: int = nv,
                       rows: list[str] = rows) -> list[str]:
                return ck._fma_step(fn, t, vt, ln, rows, fn.mul(j, "%sak"), nv,
                                    fn.gep(t, "%b", fn.mul(j, "%sbk")), acc)

            init = ck._load_or_zero(fn, t, vt, ln, mr, nv, "%m", "%ldc", "%acc")
            acc = fn.loop("0", "%k", [(vt, a) for a in init], over_k, guard=False)
            ck._store_tile(fn, t, vt, ln, mr, nv, "%m", "%ldc", acc)
            funcs.append(fn.finish())
    return funcs


class _Emit:
    """Helpers writing one kernel function: vector loads and stores, tile positions."""

    def __init__(self, fn: ck._Fn, t: str, ln: int) -> None:
        self.fn, self.t, self.ln = fn, t, ln
        self.vt = f"<{ln} x {t}>"
        self.al = ck._align(t)

    def ptr(self, base: str, off: str) -> str:
        return self.fn.op(f"bitcast {self.t}* {self.fn.gep(self.t, base, off)} to {self.vt}*",
                          "p")

    def load(self, base: str, off: str) -> str:
        return self.fn.op(f"load {self.vt}, {self.vt}* {self.ptr(base, off)}, align {self.al}")

    def store(self, val: str, base: str, off: str) -> None:
        self.fn.lines.append(f"  store {self.vt} {val}, {self.vt}* {self.ptr(base, off)}, "
                             f"align {self.al}")

    def where(self, tile: str) -> tuple[str, str, str]:
        """(image, tile row, tile column) of tile ``tile`` (``%tpi``, ``%tw`` per image, row)."""
        fn = self.fn
        n = fn.op(f"sdiv i64 {tile}, %tpi")
        r = fn.op(f"srem i64 {tile}, %tpi")
        return n, fn.op(f"sdiv i64 {r}, %tw"), fn.op(f"srem i64 {r}, %tw")

    def patches(self, b0: str, nb: str, c: int, vs: str, step: int) -> None:
        """``V[xi, j, :c] = (B^T d B)[xi]`` for the patches ``d`` of tiles ``b0 + j``, ``j <
        nb``, into ``%v`` (planes ``vs`` apart). Tile ``(n, ty, tx)``'s patch is rows
        ``step*ty - %top ..`` and columns ``step*tx - %left ..`` (6 each) of image ``n`` of ``%x``
        (``[N, %h, %w, c]``), zeros outside it: padding is never written out."""
        fn, t, ln, vt = self.fn, self.t, self.ln, self.vt
        image = fn.mul(fn.mul("%h", "%w"), str(c))
        row = fn.mul("%w", str(c))

        def over_tile(j: str, _: list[str]) -> list[str]:
            n, ty, tx = self.where(fn.add(b0, j))
            img = fn.gep(t, "%x", fn.mul(n, image))
            y0 = fn.op(f"sub i64 {fn.mul(ty, str(step))}, %top")
            x0 = fn.op(f"sub i64 {fn.mul(tx, str(step))}, %left")
            rows, cols = [], []
            for k in range(PATCH):
                # In bounds (unsigned: below zero is huge), and clamped for the load.
                yy, xx = fn.add(y0, str(k)), fn.add(x0, str(k))
                ok = fn.op(f"icmp ult i64 {yy}, %h")
                rows.append((ok, fn.mul(fn.op(f"select i1 {ok}, i64 {yy}, i64 0"), row)))
                ok = fn.op(f"icmp ult i64 {xx}, %w")
                cols.append((ok, fn.mul(fn.op(f"select i1 {ok}, i64 {xx}, i64 0"), str(c))))
            inside = [[fn.op(f"and i1 {r[0]}, {q[0]}") for q in cols] for r in rows]

            def over_q(q: str, _: list[str]) -> list[str]:
                base = fn.gep(t, img, fn.mul(q, str(ln)))
                d = [[fn.op(f"select i1 {inside[i][k]}, {vt} "
                            f"{self.load(base, fn.add(rows[i][1], cols[k][1]))}, "
                            f"{vt} zeroinitializer")
                      for k in range(PATCH)] for i in range(PATCH)]
                out = _sandwich(fn, vt, t, B_T, d)
                dst = fn.gep(t, "%v", fn.add(fn.mul(j, str(c)), fn.mul(q, str(ln))))
                for a in range(PATCH):
                    for b in range(PATCH):
                        self.store(out[a][b], dst, self.fn.mul(str(a * PATCH + b), vs))
                return []

            fn.loop("0", str(c // ln), [], over_q, guard=False)
            return []

        fn.loop("0", nb, [], over_tile, guard=False)

    def blocks(self, body: Callable[[str, str], None]) -> None:
        """``body(b0, nb)`` for the blocks of up to ``%bt`` tiles in ``[%tlo, %thi)``."""
        fn = self.fn
        count = fn.op(f"sdiv i64 {fn.add(fn.op('sub i64 %thi, %tlo'), fn.op('sub i64 %bt, 1'))}"
                      ", %bt")

        def over_block(blk: str, _: list[str]) -> list[str]:
            b0 = fn.add("%tlo", fn.mul(blk, "%bt"))
            b1 = fn.add(b0, "%bt")
            b1 = fn.op(f"select i1 {fn.op(f'icmp slt i64 {b1}, %thi')}, i64 {b1}, i64 %thi")
            body(b0, fn.op(f"sub i64 {b1}, {b0}"))
            return []

        fn.loop("0", count, [], over_block, guard=True)


def _plane(fn: ck._Fn, channels: int, ln: int) -> str:
    # Elements from one transformed plane (xi) of V or M to the next: a vector more than
    # the block's, so the 36 planes of a tile start in different cache sets (bt * c
    # elements apart they are often 4 KiB-aliased, and their loads and stores conflict).
    return fn.add(fn.mul("%bt", str(channels)), str(ln))


def scratch_sizes(dtype: np.dtype, c: int, oc: int, bt: int) -> tuple[int, int]:
    """Elements of the kernels' two scratch arrays for ``c`` -> ``oc`` channels and blocks
    of ``bt`` tiles."""
    ln = ck.lanes(dtype)
    return PATCH * PATCH * (bt * c + ln), PATCH * PATCH * (bt * oc + ln)


def _module(dtype: np.dtype, c: int, oc: int, taps: int) -> str:
    sch = SCHEMES[taps]
    step = sch.m
    t, ln, vt, mr_max, chunks = ck._types(dtype, oc)
    funcs = _gemm_tiles(t, vt, ln, mr_max, sorted({nv for _, nv in chunks}))
    # win(x, u, out, bias, v, m, flags, tlo, thi, tw, tpi, h, w, top, left, oh, ow, epi,
    # bt): output tiles tlo..thi (t = (n*th + ty)*tw + tx: rows m*ty .. m*ty + m-1 and
    # columns m*tx .. of image n, m = sch.m) from x ([n, h, w, c] placed at (top, left)
    # in zeros; see _Emit.patches), into out ([n, oh, ow, oc], pixels past oh/ow not
    # written), with u the filter's transform, bt tiles at a time; v, m: scratch
    # (scratch_sizes); flags[t - tlo] = 1 where an output is not finite.
    fn = ck._Fn(f"define void @win({t}* noalias %x, {t}* noalias %u, {t}* noalias %out, "
                f"{t}* noalias %bias, {t}* noalias %v, {t}* noalias %m, i8* noalias %flags, "
                "i64 %tlo, i64 %thi, i64 %tw, i64 %tpi, i64 %h, i64 %w, i64 %top, i64 %left, "
                "i64 %oh, i64 %ow, i64 %epi, i64 %bt) {")
    e = _Emit(fn, t, ln)
    vs, ms = _plane(fn, c, ln), _plane(fn, oc, ln)

    def block(b0: str, nb: str) -> None:
        e.patches(b0, nb, c, vs, step)

        # M[xi] = V[xi] @ U[xi], 36 products of nb x c by c x oc.
        def over_xi(xi: str, _: list[str]) -> list[str]:
            vx = fn.gep(t, "%v", fn.mul(xi, vs))
            ux = fn.gep(t, "%u", fn.mul(xi, str(c * oc)))
            mx = fn.gep(t, "%m", fn.mul(xi, ms))

            def emit(row: str, mr: int) -> None:
                rows = [fn.gep(t, vx, fn.mul(fn.add(row, str(r)), str(c))) for r in range(mr)]
                args = ", ".join(f"{t}* {x}" for x in rows)
                for c0, nv in chunks:
                    dst = fn.gep(t, mx, fn.add(fn.mul(row, str(oc)), str(c0)))
                    fn.lines.append(f"  call void @tile_{mr}_{nv}({args}, i64 1, "
                                    f"{t}* {fn.gep(t, ux, str(c0))}, i64 {oc}, {t}* {dst}, "
                                    f"i64 {oc}, i64 {c}, i64 0)")

            ck._tiled(fn, "0", nb, mr_max, emit)
            return []

        fn.loop("0", "36", [], over_xi, guard=False)

        # M -> outputs: A^T M A, then the epilogue; flags for tiles not finite.
        def over_out(j: str, _: list[str]) -> list[str]:
            tile = fn.add(b0, j)
            n, ty, tx = e.where(tile)
            oy, ox = fn.mul(ty, str(step)), fn.mul(tx, str(step))
            img = fn.mul(n, fn.mul(fn.mul("%oh", "%ow"), str(oc)))

            def over_q(q: str, bad: list[str]) -> list[str]:
                src = fn.gep(t, "%m", fn.add(fn.mul(j, str(oc)), fn.mul(q, str(ln))))
                mm = [[e.load(src, fn.mul(str(a * PATCH + b), ms)) for b in range(PATCH)]
                      for a in range(PATCH)]
                y = _sandwich(fn, vt, t, sch.a_t, mm)
                flat = [y[a][b] for a in range(step) for b in range(step)]
                acc = bad[0]
                for val in flat:
                    u = fn.op(f"fcmp uno {vt} {fn.op(f'fsub {vt} {val}, {val}')}, "
                              "zeroinitializer")
                    acc = fn.op(f"or <{ln} x i1> {acc}, {u}")
                flat = ck._epilogue(fn, t, vt, ln, 1, flat,
                                    fn.gep(t, "%bias", fn.mul(q, str(ln))), "%epi")
                for k, val in enumerate(flat):
                    py, px = fn.add(oy, str(k // step)), fn.add(ox, str(k % step))
                    inside = fn.op(f"and i1 {fn.op(f'icmp slt i64 {py}, %oh')}, "
                                   f"{fn.op(f'icmp slt i64 {px}, %ow')}")
                    yes, done = fn.name("S")[1:], fn.name("T")[1:]
                    fn.lines.append(f"  br i1 {inside}, label %{yes}, label %{done}")
                    fn.label(yes)
                    off = fn.add(img, fn.add(fn.mul(fn.add(fn.mul(py, "%ow"), px), str(oc)),
                                             fn.mul(q, str(ln))))
                    e.store(val, "%out", off)
                    fn.lines.append(f"  br label %{done}")
                    fn.label(done)
                return [acc]

            bad = fn.loop("0", str(oc // ln), [(f"<{ln} x i1>", "zeroinitializer")], over_q,
                          guard=False)[0]
            bits = fn.op(f"bitcast <{ln} x i1> {bad} to i{ln}")
            flag = fn.op(f"zext i1 {fn.op(f'icmp ne i{ln} {bits}, 0')} to i8")
            rel = fn.op(f"sub i64 {tile}, %tlo")
            at = fn.op(f"getelementptr inbounds i8, i8* %flags, i64 {rel}", "p")
            fn.lines.append(f"  store i8 {flag}, i8* {at}")
            return []

        fn.loop("0", nb, [], over_out, guard=False)

    e.blocks(block)
    funcs.append(fn.finish())
    return ck._module(t, ln, funcs)


def _wgrad_module(dtype: np.dtype, c: int, oc: int, taps: int) -> str:
    # The filter gradient's taps x taps from m x m tiles of dy: per channel pair, each
    # tile adds A^T [(G dy G^T) * (B^T x B)] A (F(taps, m); B^T the forward's; G's
    # denominators moved into A^T, which the caller applies once to the sums, in float64,
    # so the kernel's transforms keep integer coefficients), so over tiles and channels
    # M[xi] += V[xi]^T @ D[xi] (c x tiles by tiles x oc) and the taps are A^T M A.
    sch = SCHEMES[taps]
    step = sch.m
    t, ln, vt, mr_max, chunks = ck._types(dtype, oc)
    funcs = _gemm_tiles(t, vt, ln, mr_max, sorted({nv for _, nv in chunks}))
    # wgw(x, dy, m, db, v, d, tlo, thi, tw, tpi, h, w, top, left, oh, ow, bt): tiles as
    # win's (their patches of x), the tile's m x m pixels of dy ([n, oh, ow, oc];
    # pixels past oh/ow count as zeros); adds V[xi]^T @ D[xi] onto m ([36, c, oc]) and,
    # unless null, dy's sum over the tiles' pixels onto db ([oc]); v, d: scratch
    # (scratch_sizes(dtype, c, oc, bt)).
    fn = ck._Fn(f"define void @wgw({t}* noalias %x, {t}* noalias %dy, {t}* noalias %m, "
                f"{t}* noalias %db, {t}* noalias %v, {t}* noalias %d, i64 %tlo, i64 %thi, "
                "i64 %tw, i64 %tpi, i64 %h, i64 %w, i64 %top, i64 %left, i64 %oh, i64 %ow, "
                "i64 %bt) {")
    e = _Emit(fn, t, ln)
    vs, ds = _plane(fn, c, ln), _plane(fn, oc, ln)
    with_bias = fn.op(f"icmp ne {t}* %db, null")
    nq = oc // ln

    def block(b0: str, nb: str) -> None:
        e.patches(b0, nb, c, vs, step)

        # D[xi, j] = (G dy G^T)[xi] for the tiles' m x m gradients; their block sums.
        def over_tile(j: str, sums: list[str]) -> list[str]:
            n, ty, tx = e.where(fn.add(b0, j))
            oy, ox = fn.mul(ty, str(step)), fn.mul(tx, str(step))
            pix = []
            for k in range(step * step):
                py, px = fn.add(oy, str(k // step)), fn.add(ox, str(k % step))
                pix.append((fn.op(f"and i1 {fn.op(f'icmp slt i64 {py}, %oh')}, "
                                  f"{fn.op(f'icmp slt i64 {px}, %ow')}"),
                            fn.mul(fn.add(fn.mul(fn.add(fn.mul(n, "%oh"), py), "%ow"), px),
                                   str(oc))))
            out = []
            for q in range(nq):
                g = []
                for inside, at in pix:
                    yes, done = fn.name("S")[1:], fn.name("T")[1:]
                    pre = fn.block
                    fn.lines.append(f"  br i1 {inside}, label %{yes}, label %{done}")
                    fn.label(yes)
                    val = e.load("%dy", fn.add(at, str(q * ln)))
                    fn.lines.append(f"  br label %{done}")
                    fn.label(done)
                    g.append(fn.op(f"phi {vt} [{val}, %{yes}], [zeroinitializer, %{pre}]"))
                total = sums[q]
                for val in g:
                    total = fn.op(f"fadd {vt} {total}, {val}")
                out.append(total)
                gg = [g[a * step:(a + 1) * step] for a in range(step)]
                dd = _sandwich(fn, vt, t, sch.g_wgrad, gg)
                dst = fn.gep(t, "%d", fn.add(fn.mul(j, str(oc)), str(q * ln)))
                for a in range(PATCH):
                    for b in range(PATCH):
                        e.store(dd[a][b], dst, fn.mul(str(a * PATCH + b), ds))
            return out

        sums = fn.loop("0", nb, [(vt, "zeroinitializer")] * nq, over_tile, guard=False)
        yes, done = fn.name("B")[1:], fn.name("C")[1:]
        fn.lines.append(f"  br i1 {with_bias}, label %{yes}, label %{done}")
        fn.label(yes)
        for q, val in enumerate(sums):
            old = e.load("%db", str(q * ln))
            e.store(fn.op(f"fadd {vt} {old}, {val}"), "%db", str(q * ln))
        fn.lines.append(f"  br label %{done}")
        fn.label(done)

        # M[xi] += V[xi]^T @ D[xi]: rows of M are input channels, summed over the tiles.
        def over_xi(xi: str, _: list[str]) -> list[str]:
            vx = fn.gep(t, "%v", fn.mul(xi, vs))
            dx = fn.gep(t, "%d", fn.mul(xi, ds))
            mx = fn.gep(t, "%m", fn.mul(xi, str(c * oc)))

            def emit(row: str, mr: int) -> None:
                rows = [fn.gep(t, vx, fn.add(row, str(r))) for r in range(mr)]
                args = ", ".join(f"{t}* {x}" for x in rows)
                for c0, nv in chunks:
                    dst = fn.gep(t, mx, fn.add(fn.mul(row, str(oc)), str(c0)))
                    fn.lines.append(f"  call void @tile_{mr}_{nv}({args}, i64 {c}, "
                                    f"{t}* {fn.gep(t, dx, str(c0))}, i64 {oc}, {t}* {dst}, "
                                    f"i64 {oc}, i64 {nb}, i64 1)")

            ck._tiled(fn, "0", str(c), mr_max, emit)
            return []

        fn.loop("0", "36", [], over_xi, guard=False)

    e.blocks(block)
    funcs.append(fn.finish())
    return ck._module(t, ln, funcs)


_ARGS = {"win": (ctypes.c_void_p,) * 7 + (ctypes.c_int64,) * 12,
         "wgw": (ctypes.c_void_p,) * 6 + (ctypes.c_int64,) * 11}


def kernel(dtype: np.dtype, c: int, oc: int, taps: int = 5) -> Callable[..., None]:
    """The compiled Winograd convolution for ``dtype``, ``c`` -> ``oc`` channels and a
    ``taps x taps`` filter (5: F(2x2, 5x5); 3: F(4x4, 3x3); ``m`` = the scheme's tile).

    Args:
      dtype: float32 or float64.
      c, oc: input and output channels, multiples of :func:`convkernels.lanes`.
      taps: 5 or 3 (:data:`SCHEMES`).

    Returns:
      ``fn(x, u, out, bias, v, m, flags, t0, t1, tw, tpi, h, w, top, left, oh, ow, epi,
      bt)`` on data addresses: output tiles ``t0..t1`` (m x m pixels each, ``t = (n*th +
      ty)*tw + tx``, ``tpi = th*tw`` per image) of the stride-1 convolution of ``x``
      (``[N, h, w, c]``) placed at ``(top, left)`` in zeros (tile ``(ty, tx)`` reads rows
      ``m*ty - top ..`` and columns ``m*tx - left ..``, 6 each) with the filter whose
      transform (``[36, c, oc]``, see the module's doc) is ``u``, into ``out`` (``[N, oh,
      ow, oc]``), then ``epi`` as :func:`convkernels.conv_kernel`'s, ``bt`` tiles at a
      time; ``v`` and ``m``: scratch of :func:`scratch_sizes` elements; ``flags[t - t0]``
      (bytes) set to 1 where the tile has an output that is not finite (before the
      epilogue), else 0.
    """
    dtype = np.dtype(dtype)
    return ck.compile_module(("win", dtype.str, c, oc, taps),
                             lambda: _module(dtype, c, oc, taps), "win", _ARGS["win"])


def wgrad_kernel(dtype: np.dtype, c: int, oc: int, taps: int = 5) -> Callable[..., None]:
    """The compiled Winograd filter gradient for ``dtype``, ``c`` input and ``oc`` output
    channels (multiples of :func:`convkernels.lanes`) and a ``taps x taps`` filter.

    Returns:
      ``fn(x, dy, m, db, v, d, t0, t1, tw, tpi, h, w, top, left, oh, ow, bt)``: for the
      tiles ``t0..t1`` of :func:`kernel` (their patches of ``x`` and m x m pixels of
      ``dy``, ``[N, oh, ow, oc]``, pixels past ``oh``/``ow`` zeros), adds onto ``m``
      (``[36, c, oc]``) the sums ``V[xi]^T @ D[xi]`` over the tiles, ``V = B^T x B`` and
      ``D = G dy G^T`` (the scheme's ``g_wgrad``), and unless ``db`` is null the sum of
      ``dy`` over the tiles' pixels onto it (``[oc]``). The gradient is ``A^T M A`` per
      channel pair (``a_t_wgrad``). ``bt`` tiles at a time; ``v``, ``d``: scratch of
      :func:`scratch_sizes` elements.
    """
    dtype = np.dtype(dtype)
    return ck.compile_module(("wgw", dtype.str, c, oc, taps),
                             lambda: _wgrad_module(dtype, c, oc, taps), "wgw", _ARGS["wgw"])
