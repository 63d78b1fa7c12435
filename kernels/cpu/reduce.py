"""Reduction fusion groups as generated Numba loops.

A step of pattern ``"reduction"`` (:data:`graphflow.compiler.fusion.REDUCTION_GROUP`)
is an elementwise *prologue* over the group's inputs, one reduction node, and an
elementwise *epilogue* over the reduction's result (same shape). When every
prologue and epilogue node has a scalar expression (:func:`codegen.node_expression`)
and the reduction is one of :data:`REDUCERS` on float32/float64 (bool for Any/All),
:func:`lower_reduction` turns the step into a :class:`ReductionKernel`: one pass
over the prologue's loop shape ``S`` that computes the prologue per element (storing
the prologue values other steps read), folds it into accumulators, then computes the
epilogue per reduced element.

Three generated loops (each its own kernel, compiled when first needed), chosen per
call from the run-time shapes:

* **rows** and **cols** (the common cases): the dims of ``S`` that are not 1 must be
  ``kept* reduced* kept*`` and every input's strides must collapse to
  ``[K0, R, K1]`` (an input broadcast inside one of these blocks does not). Rows
  (``K1 == 1``: the last axes, or all axes) keep :data:`LANES` accumulators per
  row; cols (``K1 > 1``: ``axis=0`` of a matrix, a bias gradient) add each of the
  ``R`` rows into a vector of ``K1`` accumulators, innermost loop contiguous. Shapes
  are arguments, so these two kernels serve every shape and axis list of a group;
  a large ``K0`` is split across threads.
* **rank-N**: any other layout (e.g. reducing dims 0 and 2 of 3): nested loops over
  ``S`` with the rank and axes in the source, inputs as broadcast views.

Accumulation: Sum, Mean, Prod and BiasAddGrad accumulate in float64 (float32
inputs too: NumPy sums float32 pairwise in float32, so results differ from the
reference by float32 rounding, the compiled ones being the more accurate; a
float32 Prod whose float32 partial products overflow or underflow is finite here).
Mean is the sum divided by the element count. Max/Min compare in the input dtype
and propagate NaN as NumPy does. Any/All fold booleans.

Everything else runs the step's reference evaluation (``fallback``): inputs whose
dtypes differ from the static ones, shapes that do not broadcast or whose epilogue
would change the reduced shape, reduction axes out of range, empty loops (Sum of
nothing, Max's ``-inf``, Mean's NaN) and loops under ``min_size`` elements; the
reference also raises the errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from graphflow.compiler.ir import Node
from graphflow.compiler.plan import KernelStep
from graphflow.framework.op_def import REDUCTION
from graphflow.kernels.cpu import cache, codegen, threads
from graphflow.kernels.cpu.memo import Memo
from graphflow.runtime.reference import RunState, _CompiledKernel, input_users, read_inputs

__all__ = ["REDUCERS", "ReductionKernel", "lower_reduction"]

# Reduction op types that lower: (accumulator dtype or None for the input's, init).
REDUCERS = {
    "Sum": ("float64", "0.0"),
    "Mean": ("float64", "0.0"),
    "BiasAddGrad": ("float64", "0.0"),
    "Prod": ("float64", "1.0"),
    "Max": (None, "-np.inf"),
    "Min": (None, "np.inf"),
    "Any": ("bool_", "False"),
    "All": ("bool_", "True"),
}
_FLOATS = ("float32", "float64")
LANES = 32  # accumulators per row: SIMD lanes x unrolling (8 and 16 did not vectorise)
_FALLBACK = object()


def _update(op: str, acc: str, v: str) -> str:
    """The expression folding value ``v`` into accumulator ``acc``."""
    if op in ("Sum", "Mean", "BiasAddGrad"):
        return f"{acc} + np.float64({v})"
    if op == "Prod":
        return f"{acc} * np.float64({v})"
    if op == "Max":  # Numba's np.maximum: NaN-propagating selects (vectorisable)
        return f"np.maximum({acc}, {v})"
    if op == "Min":
        return f"np.minimum({acc}, {v})"
    if op == "Any":
        return f"{acc} | {v}"
    return f"{acc} & {v}"  # All


class _Group:
    """The parsed step: roles of inputs and outputs, and the generated statements."""

    def __init__(self, step: KernelStep, red: Node) -> None:
        self.red = red
        self.op = red.type
        nodes = step.nodes
        post = getattr(getattr(step, "group", None), "post", None) or set()
        at = nodes.index(red)
        self.prologue = [n for n in nodes[:at] if n.id not in post]
        self.epilogue = nodes[at + 1:]
        if len(self.prologue) + len(self.epilogue) + 1 != len(nodes):
            raise ValueError("unordered group")
        pos = {(n.id, i): j for j, (n, i) in enumerate(step.inputs)}
        # Prologue: x{j} inputs, t{k} nodes; deps = input positions per value.
        var: dict[tuple[int, int], str] = {}
        deps: dict[tuple[int, int], frozenset[int]] = {}
        self.p_inputs: list[int] = []
        self.p_lines: list[str] = []

        def p_arg(v: Any) -> str:
            key = (v[0].id, v[1])
            if key in pos:
                j = pos[key]
                if j not in self.p_inputs:
                    self.p_inputs.append(j)
                deps[key] = frozenset([j])
                return f"x{j}"
            if key not in var:
                raise ValueError("prologue reads a value from outside the prologue")
            return var[key]

        for k, n in enumerate(self.prologue):
            args = [p_arg(v) for v in n.inputs]
            expr = codegen.node_expression(n, args)
            if expr is None:
                raise ValueError(f"no scalar expression for {n.type}")
            var[(n.id, 0)] = f"t{k}"
            deps[(n.id, 0)] = frozenset().union(*[deps[(p.id, i)] for p, i in n.inputs])
            self.p_lines.append(f"t{k} = {expr}")
        src = red.inputs[0]
        self.red_var = p_arg(src)
        self.red_deps = sorted(deps[(src[0].id, src[1])])
        # Epilogue: y{j} inputs, u{k} nodes, the reduced value ``red``; deps: -1 = red.
        evar: dict[tuple[int, int], str] = {(red.id, 0): "red"}
        edeps: dict[tuple[int, int], frozenset[int]] = {(red.id, 0): frozenset([-1])}
        self.q_inputs: list[int] = []
        self.q_lines: list[str] = []
        for k, n in enumerate(self.epilogue):
            args = []
            for p, i in n.inputs:
                key = (p.id, i)
                if key in pos:
                    j = pos[key]
                    if j not in self.q_inputs:
                        self.q_inputs.append(j)
                    edeps[key] = frozenset([j])
                    args.append(f"y{j}")
                elif key in evar:
                    args.append(evar[key])
                else:
                    raise ValueError("epilogue reads a prologue value")
            expr = codegen.node_expression(n, args)
            if expr is None:
                raise ValueError(f"no scalar expression for {n.type}")
            evar[(n.id, 0)] = f"u{k}"
            edeps[(n.id, 0)] = frozenset().union(*[edeps[(p.id, i)] for p, i in n.inputs])
            self.q_lines.append(f"u{k} = {expr}")
        # Outputs: ("P", var, deps) prologue values of shape S; ("R", var, deps) reduced.
        self.outputs: list[tuple[str, str, list[int]]] = []
        for n, i in step.outputs:
            key = (n.id, i)
            if key in var:
                self.outputs.append(("P", var[key], sorted(deps[key])))
            elif key in evar:
                self.outputs.append(("R", evar[key], sorted(edeps[key])))
            else:
                raise ValueError("output is not computed by the group")
        self.p_inputs.sort()
        self.q_inputs.sort()


class _Source:
    """Writes the kernel module of one group in one loop mode: :meth:`rows`, :meth:`cols`
    or :meth:`nd` (chosen by :meth:`ReductionKernel._dispatch`)."""

    def __init__(self, g: _Group, sp: tuple[bool, ...], sq: tuple[bool, ...], acc_np: str,
                 out_np: str, init: str, fast_math: bool) -> None:
        self.g = g
        self.pin = dict(zip(g.p_inputs, sp))
        self.qin = dict(zip(g.q_inputs, sq))
        self.po = [k for k, o in enumerate(g.outputs) if o[0] == "P"]
        self.ro = [k for k, o in enumerate(g.outputs) if o[0] == "R"]
        self.acc_np = acc_np
        self.out_np = out_np
        self.init = f"np.{acc_np}({init})"
        self.fast_math = fast_math
        self.lines: list[str] = []

    def emit(self, ind: int, text: str) -> None:
        self.lines.append("    " * ind + text)

    def header(self, extra: list[str]) -> None:
        g = self.g
        params = ([f"p{j}" for j in g.p_inputs] + [f"q{j}" for j in g.q_inputs]
                  + [f"o{k}" for k in self.po + self.ro] + extra)
        self.lines += [codegen._PRELUDES[self.fast_math], "", "@njit(**_OPTS)",
                       f"def kernel({', '.join(params)}):"]
        for j in g.p_inputs:
            if self.pin[j]:
                self.emit(1, f"x{j} = p{j}[0]")
        for j in g.q_inputs:
            if self.qin[j]:
                self.emit(1, f"y{j} = q{j}[0]")

    def compute(self, ind: int, idx: str) -> None:
        """The prologue at element ``idx`` of S, its outputs stored."""
        g = self.g
        for j in g.p_inputs:
            if not self.pin[j]:
                self.emit(ind, f"x{j} = p{j}[{idx}]")
        for line in g.p_lines:
            self.emit(ind, line)
        for k in self.po:
            self.emit(ind, f"o{k}[{idx}] = {g.outputs[k][1]}")

    def fold(self, ind: int, idx: str, acc: str) -> None:
        """The prologue at element ``idx`` of S, folded into ``acc``."""
        self.compute(ind, idx)
        self.emit(ind, f"c = {acc}")
        self.emit(ind, f"{acc} = {_update(self.g.op, 'c', self.g.red_var)}")

    def finish(self, ind: int, acc: str, idx: str) -> None:
        """The epilogue of reduced element ``idx`` from accumulator ``acc``."""
        g = self.g
        if g.op == "Mean":
            self.emit(ind, f"red = np.{self.out_np}({acc} / np.float64(R))")
        else:
            self.emit(ind, f"red = np.{self.out_np}({acc})")
        for j in g.q_inputs:
            if not self.qin[j]:
                self.emit(ind, f"y{j} = q{j}[{idx}]")
        for line in g.q_lines:
            self.emit(ind, line)
        for k in self.ro:
            self.emit(ind, f"o{k}[{idx}] = {g.outputs[k][1]}")

    def rows(self) -> str:
        """[K0, R, 1]: LANES accumulators per row, element r into lane r % LANES (a loop
        LLVM vectorises), combined pairwise; rows shorter than LANES use lane 0 only."""
        emit = self.emit
        self.header(["K0", "R", "K1"])
        emit(1, f"acc = np.empty({LANES}, np.{self.acc_np})")
        emit(1, f"m = {LANES} if R >= {LANES} else 1")
        emit(1, f"n = R - R % {LANES}")
        emit(1, "for i0 in range(K0):")
        emit(2, "for lane in range(m):")
        emit(3, f"acc[lane] = {self.init}")
        emit(2, f"for b in range(0, n, {LANES}):")
        emit(3, f"for lane in range({LANES}):")
        emit(4, "r = b + lane")
        self.fold(4, "i0, r, 0", "acc[lane]")
        emit(2, "for r in range(n, R):")
        self.fold(3, "i0, r, 0", "acc[0]")
        emit(2, "w = m // 2")
        emit(2, "while w > 0:")
        emit(3, "for lane in range(w):")
        emit(4, "c = acc[lane]")
        emit(4, "d = acc[lane + w]")
        emit(4, f"acc[lane] = {_update(self.g.op, 'c', 'd')}")
        emit(3, "w //= 2")
        self.finish(2, "acc[0]", "i0, 0")
        return "\n".join(self.lines) + "\n"

    def cols(self) -> str:
        """[K0, R, K1 > 1]: each of the R rows added into K1 accumulators (contiguous).

        When the value reduced is also stored (a bias gradient: the relu-masked
        gradient is kept for the weight gradient's product), each row is computed and
        stored in one loop and added from the stored row in a second: the two loops
        vectorise where the one, storing into two arrays of different widths, did not
        (a 256x512 select + column sum 28 us against 42-48, the same sums bit for bit).
        """
        emit = self.emit
        g = self.g
        self.header(["K0", "R", "K1"])
        stored = next((k for k in self.po if g.outputs[k][1] == g.red_var), None)
        emit(1, f"acc = np.empty(K1, np.{self.acc_np})")
        emit(1, "for i0 in range(K0):")
        emit(2, "for i2 in range(K1):")
        emit(3, f"acc[i2] = {self.init}")
        emit(2, "for i1 in range(R):")
        emit(3, "for i2 in range(K1):")
        if stored is None:
            self.fold(4, "i0, i1, i2", "acc[i2]")
        else:
            self.compute(4, "i0, i1, i2")
            emit(3, "for i2 in range(K1):")
            emit(4, "c = acc[i2]")
            emit(4, f"acc[i2] = {_update(g.op, 'c', f'o{stored}[i0, i1, i2]')}")
        emit(2, "for i2 in range(K1):")
        self.finish(3, "acc[i2]", "i0, i2")
        return "\n".join(self.lines) + "\n"

    def nd(self, rank: int, axes: tuple[int, ...]) -> str:
        """Nested loops over rank-``rank`` S reducing ``axes`` into ``acc`` (keepdims
        shape), then the epilogue over ``acc``."""
        emit = self.emit
        self.header(["acc", "R"] + [f"n{d}" for d in range(rank)])
        idx = ", ".join(f"i{d}" for d in range(rank))
        aidx = ", ".join("0" if d in axes else f"i{d}" for d in range(rank))
        for d in range(rank):
            emit(1 + d, f"for i{d} in range(acc.shape[{d}]):")
        emit(1 + rank, f"acc[{idx}] = {self.init}")
        for d in range(rank):
            emit(1 + d, f"for i{d} in range(n{d}):")
        self.fold(1 + rank, idx, f"acc[{aidx}]")
        for d in range(rank):
            emit(1 + d, f"for i{d} in range(acc.shape[{d}]):")
        self.finish(1 + rank, f"acc[{idx}]", idx)
        return "\n".join(self.lines) + "\n"


def _collapse(shape: tuple[int, ...], strides: tuple[int, ...], blocks: list[list[int]]
              ) -> list[int] | None:
    """One stride per block of dims (their sizes multiply), or None if a block's dims
    are not laid out as one (e.g. an input broadcast along some of them)."""
    out = []
    for block in blocks:
        if not block:
            out.append(0)
            continue
        for a, b in zip(block, block[1:]):
            if strides[a] != strides[b] * shape[b]:
                return None
        out.append(strides[block[-1]])
    return out


def _readonly(a: np.ndarray, shape: tuple[int, ...] | None, strides: Any) -> np.ndarray:
    """A read-only view (every input reaches a kernel read-only: one Numba type); shape
    None: a one-element input as 1-D."""
    if shape is None:
        v = a.reshape(1)
        v.flags.writeable = False
        return v
    if a.shape == shape and a.strides == tuple(strides):
        v = a.view()
        v.flags.writeable = False
        return v
    if a.flags.c_contiguous and a.size == math.prod(shape) and _c_layout(shape, strides,
                                                                         a.itemsize):
        v = a.reshape(shape)  # a plain reshape: as_strided costs ~7 us a call
        v.flags.writeable = False
        return v
    return as_strided(a, shape, strides, writeable=False)


def _c_layout(shape: tuple[int, ...], strides: Any, itemsize: int) -> bool:
    """Whether ``strides`` lay ``shape`` out C-contiguously (dims of size 1, whose
    stride is never used, may have any)."""
    step = itemsize
    for n, st in zip(reversed(shape), reversed(tuple(strides))):
        if n != 1 and st != step:
            return False
        step *= n
    return True


class _Call:
    """How to run on inputs of one (shape, dtype, strides) signature."""

    __slots__ = ("fn", "mode", "s_shape", "out_shape", "p_views", "q_views", "p_out",
                 "r_out", "extra", "acc_shape", "chunks")


class ReductionKernel:
    """One reduction fusion group run as one generated Numba loop (module docstring).

    Args:
      step: a KernelStep of pattern ``"reduction"``.
      group: its parse (:func:`lower_reduction` makes it).
      fallback: the step's reference evaluation, for what the kernel does not handle.
      fast_math: graphflow's vectorisable math (True) or libm.
      min_size: loops over fewer elements run ``fallback``; None takes
        ``backend.JIT_MIN_SIZE``.
    """

    def __init__(self, step: KernelStep, group: _Group, fallback: _CompiledKernel,
                 fast_math: bool = codegen.DEFAULT_FAST_MATH, min_size: int | None = None
                 ) -> None:
        from graphflow.kernels.cpu import backend

        self.step = step
        self.group = group
        self.fallback = fallback
        self.fast_math = fast_math
        self.min_size = backend.JIT_MIN_SIZE if min_size is None else min_size
        self.parallel_min_size = backend.PARALLEL_MIN_SIZE
        self.in_buffers = list(step.in_buffers)
        self.out_buffers = list(step.out_buffers)
        self.in_dtypes = [n.dtypes[i].np for n, i in step.inputs]
        self.out_dtypes = [n.dtypes[i].np for n, i in step.outputs]
        self.in_users = input_users(step)  # to read variable handles
        red = group.red
        self.out_np = red.dtypes[0].name
        acc, self.init = REDUCERS[red.type]
        self.acc_np = acc or self.out_np
        self.axes = red.attrs.get("axis")
        self.keep_dims = bool(red.attrs.get("keep_dims", False))
        self.data_format = red.attrs.get("data_format")
        self._fns: dict[tuple, Any] = {}
        self._calls: dict[tuple, Any] = {}
        # The last call, repeated while its inputs match (see memo.py); only where the
        # executable set memo_ok: its outputs are then never held elsewhere.
        self.memo_ok = False
        self._memo: Memo | None = None
        self.memo_sources = self.in_buffers  # where the memo's inputs come from
        # Elements from which a remembered column sum runs split over the native pool
        # (see _native_split); None: never (set for a product's epilogue).
        self.native_split_min: int | None = None

    def memo_stores(self) -> list[tuple[int, int]]:
        """``(buffer, index in the memo's outs)`` per output (see :mod:`segment`)."""
        return [(b, k) for k, b in enumerate(self.out_buffers)]

    @property
    def dispatchers(self) -> list[Any]:
        return list(self._fns.values())

    @property
    def fresh(self) -> bool:
        """Whether every output is a new array, on the fallback path too (a prologue value
        among the outputs may be an input itself there, e.g. an Identity)."""
        return all(kind == "R" for kind, _, _ in self.group.outputs)

    def _kernel(self, sp: tuple[bool, ...], sq: tuple[bool, ...], mode: Any) -> Any:
        """The compiled kernel for one-element inputs ``sp``/``sq`` and ``mode``: "rows",
        "cols" or ``(rank, axes)`` (nested loops)."""
        key = (sp, sq, mode)
        fn = self._fns.get(key)
        if fn is None:
            w = _Source(self.group, sp, sq, self.acc_np, self.out_np, self.init,
                        self.fast_math)
            src = w.nd(*mode) if isinstance(mode, tuple) else getattr(w, mode)()
            sig = f"reduce:{[d.str for d in self.in_dtypes]}"
            fn = self._fns[key] = cache.load_kernel(src, sig)
        return fn

    def _axes_of(self, rank: int) -> tuple[int, ...] | None:
        """The reduced dims (sorted, non-negative) at this rank; None: let the reference
        decide (out of range)."""
        if self.data_format is not None:  # BiasAddGrad: all but the channel dim
            if self.data_format == "NHWC" and rank >= 2:
                return tuple(range(rank - 1))
            if self.data_format == "NCHW" and rank >= 3:
                return (0,) + tuple(range(2, rank))
            return None
        if self.axes is None:
            return tuple(range(rank))
        out = set()
        for a in self.axes:
            a = int(a)
            if not -rank <= a < rank:
                return None
            out.add(a % rank)
        return tuple(sorted(out))

    def run(self, env: list[Any], state: RunState) -> None:
        args = read_inputs(env, self.in_buffers, self.in_users)
        memo = self._memo
        if memo is not None and memo.run(args):
            for b, o in zip(self.out_buffers, memo.outs):
                env[b] = o
            return None
        key = tuple([(a.shape, a.dtype, a.strides) for a in args])
        call = self._calls.get(key)
        if call is None:
            if len(self._calls) > 64:
                self._calls.clear()
            call = self._calls[key] = self._dispatch(args)
        if call is _FALLBACK:
            return self.fallback.run(env, state)
        outs = self.outputs(call)
        prepare, run = self.bind(call)
        views = prepare(args, outs)
        run(views)
        for b, o in zip(self.out_buffers, outs):
            env[b] = o
        if self.memo_ok and Memo.applies(args):
            self._memo = Memo(args, outs, prepare, run, views)
        return None

    def outputs(self, call: _Call) -> list[np.ndarray]:
        """New output arrays for a call."""
        return [np.empty(call.s_shape if self.group.outputs[k][0] == "P" else call.out_shape,
                         dt) for k, dt in enumerate(self.out_dtypes)]

    def bind(self, call: _Call) -> tuple[Callable, Callable]:
        """``(prepare, run)`` of a call, as :class:`memo.Memo` takes them:
        ``prepare(inputs, outputs)`` makes the kernel's arguments (views of each),
        ``run(arguments)`` calls it."""
        g = self.group
        in_views = list(zip(g.p_inputs + g.q_inputs, call.p_views + call.q_views))
        out_shapes = [call.p_out if g.outputs[k][0] == "P" else call.r_out
                      for k in range(len(self.out_dtypes))]
        n_in = len(in_views)
        fn, extra = call.fn, call.extra

        def prepare(args: list[np.ndarray], outs: list[np.ndarray]) -> list[Any]:
            views = [_readonly(args[j], shape, strides) for j, (shape, strides) in in_views]
            views += [o.reshape(shape) for o, shape in zip(outs, out_shapes)]
            if call.mode == "nd":
                views.append(np.empty(call.acc_shape, np.dtype(self.acc_np)))
            return views + extra if call.mode == "nd" or not call.chunks else views

        split = self._native_split(call, prepare)
        if split is not None:
            return split
        if call.mode == "nd" or not call.chunks:
            def run(views: list[Any]) -> None:
                cache.call_kernel(fn, views)
        else:
            chunks = call.chunks

            def run(views: list[Any]) -> None:
                _run_chunks(fn, views, n_in, extra, chunks)

        return prepare, run

    def _native_split(self, call: _Call, whole: Callable) -> tuple | None:
        """``(prepare, run)`` of a column sum (a bias gradient: the 3-D loop with K1 > 1)
        in one piece of rows per thread of the native pool, each summing its rows into
        an output of its own, added up after (see :mod:`native`); None where that does
        not apply (not set for this kernel, another loop or reducer, an epilogue after
        the sum, too little work, no pool). ``whole`` prepares the one-call arguments.

        Each piece rounds its sums to the output dtype before they are added, so a
        float32 sum may differ from the one-call loop's in its last bit.
        """
        from graphflow.kernels.cpu import native, pool

        g = self.group
        if (self.native_split_min is None or call.mode != "3d" or call.chunks
                or g.op not in ("Sum", "BiasAddGrad") or g.epilogue
                or not pool.available()):
            return None
        k0, r, k1 = call.extra
        parts = pool.capacity()
        if k1 < 2 or k0 * r * k1 < self.native_split_min or r < 2 * parts:
            return None
        bounds = [r * k // parts for k in range(parts + 1)]
        # Per view: "P" sliced by rows, "R" a sum (a piece's own), "W" whole.
        kinds = ["W" if shape is None else "P" for _, (shape, _) in
                 zip(g.p_inputs, call.p_views)] + ["W"] * len(g.q_inputs)
        kinds += [g.outputs[k][0] for k in range(len(self.out_dtypes))]
        fn = call.fn

        def prepare(args: list[np.ndarray], outs: list[np.ndarray]) -> tuple:
            views = whole(args, outs)  # the arrays, then K0, R, K1
            sums = [(v, [np.empty_like(v) for _ in bounds[2:]])
                    for v, kind in zip(views[:len(kinds)], kinds) if kind == "R"]
            calls = []
            for p, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
                own = iter([v if p == 0 else extra[p - 1] for v, extra in sums])
                calls.append([v[:, lo:hi] if kind == "P" else next(own) if kind == "R" else v
                              for v, kind in zip(views[:len(kinds)], kinds)] + [k0, hi - lo, k1])
            return native.job(fn, calls), views, sums  # (no job: the dispatcher, one call)

        def run(bound: tuple) -> None:
            job, views, sums = bound
            if job is not None and job.run():
                for total, more in sums:
                    for part in more:
                        np.add(total, part, out=total)
                return
            cache.call_kernel(fn, views)  # (a failed piece: the dispatcher's error)

        return prepare, run

    def _dispatch(self, args: list[np.ndarray]) -> Any:
        """A :class:`_Call` for inputs like ``args``, or ``_FALLBACK``."""
        g = self.group
        if any(a.dtype != dt for a, dt in zip(args, self.in_dtypes)):
            return _FALLBACK
        shapes = [a.shape for a in args]
        try:
            s_shape = np.broadcast_shapes(*[shapes[j] for j in g.p_inputs])
            for deps in [g.red_deps] + [o[2] for o in g.outputs if o[0] == "P"]:
                if np.broadcast_shapes(*[shapes[j] for j in deps]) != s_shape:
                    return _FALLBACK
        except ValueError:
            return _FALLBACK
        size = math.prod(s_shape)
        if size == 0 or size < self.min_size:
            return _FALLBACK
        rank = len(s_shape)
        axes = self._axes_of(rank)
        if axes is None:
            return _FALLBACK
        keep_shape = tuple(1 if d in axes else n for d, n in enumerate(s_shape))
        keep = self.keep_dims and self.data_format is None
        out_shape = keep_shape if keep else tuple(
            n for d, n in enumerate(s_shape) if d not in axes)
        try:
            for j in g.q_inputs:
                if np.broadcast_shapes(out_shape, shapes[j]) != out_shape:
                    return _FALLBACK
            for kind, _, deps in g.outputs:
                if kind == "R" and np.broadcast_shapes(
                        out_shape, *[shapes[j] for j in deps if j >= 0]) != out_shape:
                    return _FALLBACK
        except ValueError:
            return _FALLBACK
        if any(kind == "R" and -1 not in deps for kind, _, deps in g.outputs):
            return _FALLBACK  # an epilogue value not made from the reduction
        sp = tuple(args[j].size == 1 for j in g.p_inputs)
        sq = tuple(args[j].size == 1 for j in g.q_inputs)
        # Keepdims-shaped strides of each epilogue input (reduced dims: size 1, stride 0).
        q_strides = []
        for j, sc in zip(g.q_inputs, sq):
            if sc:
                q_strides.append(None)
                continue
            b = np.broadcast_to(args[j], out_shape).strides
            if not keep:
                it = iter(b)
                b = tuple(0 if d in axes else next(it) for d in range(rank))
            q_strides.append(b)
        p_strides = [None if sc else np.broadcast_to(args[j], s_shape).strides
                     for j, sc in zip(g.p_inputs, sp)]
        call = _Call()
        call.s_shape, call.out_shape = s_shape, out_shape
        call.chunks = None
        # The 3-D layout: non-1 dims of S as kept* reduced* kept*, strides collapsing.
        dims = [d for d in range(rank) if s_shape[d] != 1]
        red = [d for d in dims if d in axes]
        blocks = None
        if not red:
            blocks = [dims, [], []]
        elif dims.index(red[-1]) - dims.index(red[0]) + 1 == len(red):
            lo, hi = dims.index(red[0]), dims.index(red[-1]) + 1
            blocks = [dims[:lo], dims[lo:hi], dims[hi:]]
        if blocks is not None:
            k0, r, k1 = (math.prod(s_shape[d] for d in b) for b in blocks)
            p_views = []
            for st in p_strides:
                c = None if st is None else _collapse(s_shape, st, blocks)
                if st is not None and c is None:
                    break
                p_views.append((None, None) if st is None else ((k0, r, k1), tuple(c)))
            else:
                q_views = []
                for st in q_strides:
                    c = None if st is None else _collapse(keep_shape, st, [blocks[0],
                                                                          blocks[2]])
                    if st is not None and c is None:
                        break
                    q_views.append((None, None) if st is None else ((k0, k1), (c[0], c[1])))
                else:
                    call.mode = "3d"
                    call.fn = self._kernel(sp, sq, "rows" if k1 == 1 else "cols")
                    call.p_views, call.q_views = p_views, q_views
                    call.p_out, call.r_out = (k0, r, k1), (k0, k1)
                    call.extra = [k0, r, k1]
                    if size >= self.parallel_min_size and k0 > 1:
                        call.chunks = threads.split(k0)
                    return call
        call.mode = "nd"
        call.fn = self._kernel(sp, sq, (rank, tuple(axes)))
        call.p_views = [(None, None) if st is None else (s_shape, st) for st in p_strides]
        call.q_views = [(None, None) if st is None else (keep_shape, st) for st in q_strides]
        call.p_out, call.r_out = s_shape, keep_shape
        call.acc_shape = keep_shape
        call.extra = [math.prod(s_shape[d] for d in axes)] + list(s_shape)
        return call


def _run_chunks(fn: Any, views: list[np.ndarray], n_in: int, extra: list[int],
                chunks: list[tuple[int, int]]) -> None:
    """Runs the 3-D kernel on slices ``[lo, hi)`` of ``K0``, one per thread."""
    whole = [v.ndim == 1 and k < n_in for k, v in enumerate(views)]  # hoisted scalars

    def part(lo: int, hi: int) -> list[Any]:
        return [v if w else v[lo:hi] for v, w in zip(views, whole)] + [hi - lo] + extra[1:]

    threads.run_parallel([(cache.call_kernel, (fn, part(lo, hi))) for lo, hi in chunks])


def lower_reduction(step: KernelStep, fallback: _CompiledKernel,
                    fast_math: bool = codegen.DEFAULT_FAST_MATH,
                    min_size: int | None = None) -> ReductionKernel | None:
    """A :class:`ReductionKernel` for a reduction step, or None (the step keeps its
    reference evaluation): a group with other than one reduction of :data:`REDUCERS`,
    a prologue or epilogue node without a scalar expression, unsupported dtypes."""
    if step.is_writer or not step.outputs or not step.inputs:
        return None
    reds = [n for n in step.nodes if n.op_def.kind == REDUCTION]
    if len(reds) != 1:
        return None
    red = reds[0]
    if (red.type not in REDUCERS or len(red.inputs) != 1 or len(red.dtypes) != 1
            or red.regions):
        return None
    want = ("bool",) if red.type in ("Any", "All") else _FLOATS
    p, i = red.inputs[0]
    if red.dtypes[0].name not in want or p.dtypes[i].name != red.dtypes[0].name:
        return None
    if red.type == "BiasAddGrad" and red.attrs.get("data_format") not in ("NHWC", "NCHW"):
        return None
    if red.type != "BiasAddGrad":
        axes = red.attrs.get("axis")
        if axes is not None and not all(isinstance(a, (int, np.integer)) for a in axes):
            return None
    try:
        group = _Group(step, red)
    except ValueError:
        return None
    return ReductionKernel(step, group, fallback, fast_math, min_size)
