"""The CPU backend: a Plan whose steps run as generated Numba loops and library kernels.

:class:`CpuExecutable` is the reference :class:`PlanExecutable` with its steps
replaced, where one applies, by: a :class:`FusedKernel` (an elementwise group as
one generated loop, see :mod:`.codegen`), an :class:`AnchorKernel` (a library op
or a reference-evaluated op such as MatMul, then its elementwise epilogue as one
loop), an :class:`ApplyKernel` (an optimizer or scatter update in place), a
reduction kernel (:mod:`.reduce`), or a :class:`SplitKernel` (a group mixing
elementwise and shape ops: its elementwise runs fused). Other steps keep the
reference evaluation. A kernel that meets a run-time case it does not handle
(inputs whose shapes do not broadcast, an output smaller than the loop) runs
the reference evaluation for that call, which also produces the reference's
error messages. The first ``JIT_WARMUP`` runs of a plan use the reference
evaluation throughout; the kernels are built on the run after.
"""
from __future__ import annotations

import math
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from graphflow.compiler.fusion import OPAQUE_GROUP, REDUCTION_GROUP
from graphflow.compiler.ir import Node, Value
from graphflow.compiler.plan import KernelStep, Plan
from graphflow.framework import errors
from graphflow.framework.op_def import REDUCTION
from graphflow.kernels.cpu import buffers, codegen
from graphflow.kernels.cpu.memo import Memo
from graphflow.ops.state_ops import VarRef
from graphflow.runtime import fperr
from graphflow.runtime.reference import (
    PASS_THROUGH,
    NodeEval,
    PlanExecutable,
    RunState,
    _CompiledKernel,
    _root,
    _user_op,
    input_users,
    read_inputs,
)

if TYPE_CHECKING:
    from graphflow.kernels.cpu.reduce import ReductionKernel

__all__ = ["AnchorKernel", "ApplyKernel", "CpuExecutable", "FusedKernel", "SplitKernel"]

# Loops whose work (elements x codegen.body_weight) reaches this are split across threads
# (the kernels release the GIL): below it, waking a worker (tens of microseconds here)
# costs more than the second core saves. Measured on 2 cores: relu(x*2+1) gains from
# about 1M elements, tanh(x*0.5+1)*sigmoid(x) from under 128K. Numba's parallel=True
# would split loops too but multiplies compile time by 3-4.
PARALLEL_MIN_SIZE = 1 << 20
# The same for a product's remembered epilogue, split over the native pool (see
# FusedKernel._native_bind): its hand-off costs a few microseconds.
NATIVE_EPILOGUE_MIN = 1 << 15
# Smaller loops run the reference evaluation (NumPy, op by op): below this size a
# compiled kernel saves less than its dispatch costs, and graphs of small tensors (most
# tests, toy models) start without compiling anything. GRAPHFLOW_JIT_MIN_SIZE=0 compiles
# every fusable loop.
JIT_MIN_SIZE = int(os.environ.get("GRAPHFLOW_JIT_MIN_SIZE", "4096"))
# Runs of a plan evaluated by the reference (NumPy) before its kernels are built: a plan
# run once (initialisers, a one-off evaluation) never waits for Numba, and a process
# has its first result before Numba is even imported. Later runs use the kernels; 0
# builds them with the plan (the tests do, so every run exercises them).
JIT_WARMUP = int(os.environ.get("GRAPHFLOW_JIT_WARMUP", "1"))


class FusedKernel:
    """One elementwise fusion group run as one generated Numba loop over its output."""

    def __init__(self, step: KernelStep, body: list[str], fallback: _CompiledKernel,
                 fast_math: bool = codegen.DEFAULT_FAST_MATH, min_size: int | None = None,
                 fixed: frozenset[int] | set[int] = frozenset()) -> None:
        # Imported here, not at module level: they import Numba (see JIT_WARMUP).
        from graphflow.kernels.cpu import cache, threads

        self._cache = cache
        self._threads = threads
        self.step = step
        self.fast_math = fast_math
        self.body = body
        self.fallback = fallback
        self.in_buffers = list(step.in_buffers)
        self.out_buffers = list(step.out_buffers)
        self.weight = codegen.body_weight(body)
        # The last compiled call, repeated while its inputs match (see memo.py); only
        # where the executable set memo_ok: its outputs are then never held elsewhere.
        self.memo_ok = False
        self._memo: Memo | None = None
        self.memo_sources = self.in_buffers  # where the memo's inputs come from
        # Work (elements x body_weight) from which a remembered loop runs split over
        # the native pool (see _native_bind); None: never (it is set for the epilogue
        # of a product, whose pool is awake and whose result is in both cores' caches).
        self.native_split_min: int | None = None
        self._reads_handles = False  # whether inputs include variable handles
        # Inputs whose buffers hold the plan's constants (``fixed``) never change, so the
        # per-run dispatch key leaves them out; None: every input is keyed.
        # The key is one flat tuple built by a generated function: a list comprehension
        # over the inputs cost more than the rest of a small loop's dispatch.
        vary = [j for j, b in enumerate(self.in_buffers) if b not in fixed]
        self._key = eval("lambda a: (" + "".join(
            f"a[{j}].shape, a[{j}].dtype.num, a[{j}].flags.c_contiguous, " for j in vary) + ")")
        self.out_dtypes = [n.dtypes[i].np for n, i in step.outputs]
        self.in_users = input_users(step)  # to read variable handles
        # Per output: the group inputs it depends on (its shape is their broadcast).
        deps: dict[int, set[int]] = {}
        pos = {(n.id, i): j for j, (n, i) in enumerate(step.inputs)}
        for n in step.nodes:
            s: set[int] = set()
            for p, i in n.inputs:
                if (p.id, i) in pos:
                    s.add(pos[(p.id, i)])
                else:
                    s |= deps[p.id]
            deps[n.id] = s
        self.out_deps = [sorted(deps[n.id]) for n, _ in step.outputs]
        self._fns: dict[tuple, Any] = {}
        self._plans: dict[tuple, Any] = {}  # input (shape, dtype, layout)s -> how to run
        self.min_size = JIT_MIN_SIZE if min_size is None else min_size
        # Small loops: each node's NumPy reference called straight on the group's input
        # arrays, without the per-op checks of the reference evaluation (which reruns
        # the group if anything raises, so errors still read the same).
        pos = {(n.id, i): j for j, (n, i) in enumerate(step.inputs)}
        local = {n.id: k for k, n in enumerate(step.nodes)}
        self._small = []
        for n in step.nodes:
            src = [(True, pos[(p.id, i)]) if (p.id, i) in pos else (False, local[p.id])
                   for p, i in n.inputs]
            self._small.append((n.op_def.reference, n.ref_op(), src, n.dtypes[0].np))
        self._small_outs = [local[n.id] for n, _ in step.outputs]
        self._small_fn: Any = None
        self._small_into: Any = None

    def _kernel(self, rank: int, dtypes: tuple, scalars: tuple[bool, ...]) -> Any:
        key = (rank, dtypes, scalars)
        fn = self._fns.get(key)
        if fn is None:
            src = codegen.kernel_source(self.body, len(self.in_buffers), len(self.out_buffers),
                                        rank, self.fast_math, scalars)
            fn = self._fns[key] = self._cache.load_kernel(src, f"{rank}:{dtypes}")
        return fn

    def _rowcol_kernel(self, kinds: str, dtypes: tuple) -> Any:
        key = ("rc", kinds, dtypes)
        fn = self._fns.get(key)
        if fn is None:
            src = codegen.rowcol_source(self.body, kinds, len(self.out_buffers), self.fast_math,
                                        [d.itemsize for d in self.out_dtypes])
            fn = self._fns[key] = self._cache.load_kernel(src, f"rc{kinds}:{dtypes}")
        return fn

    @property
    def dispatchers(self) -> list[Any]:
        return list(self._fns.values())

    def run(self, env: list[Any], state: RunState) -> None:
        args = [env[b] for b in self.in_buffers]
        memo = self._memo
        if memo is not None:
            if self._reads_handles:
                args = read_inputs(env, self.in_buffers, self.in_users)
            if memo.run(args):
                for b, o in zip(self.out_buffers, memo.outs):
                    env[b] = o
                return None
        try:
            key = self._key(args)
        except AttributeError:  # a variable handle (or a Python value): read it
            args = read_inputs(env, self.in_buffers, self.in_users)
            key = self._key(args)
            self._reads_handles = True
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._dispatch(args)
        if plan is _SMALL:
            small = self._small_fn
            if small is None:
                small = self._small_fn = self._make_small()
            try:
                small(args, env, state)  # stores the outputs in env
            except Exception:
                return self.fallback.run(env, state)
            if self.memo_ok and Memo.applies(args):
                self._remember_small(args, env)
            return None
        if plan is _FALLBACK:
            return self.fallback.run(env, state)
        fn, shape, flat, chunks = plan
        outs = [buffers.empty(shape, dt) for dt in self.out_dtypes]
        if flat is _ROWCOL:
            scales, cols = chunks
            kargs = [a.reshape(-1) for a in args] + [o.reshape(-1) for o in outs]
            rows = kargs[-1].shape[0] // cols
            splits = (self._threads.split(rows)
                      if rows * cols * self.weight >= PARALLEL_MIN_SIZE and rows > 1 else None)
            if splits:
                self._threads.run_scaled_chunks(fn, kargs, splits, scales, (cols,))
            else:
                self._cache.call_kernel(fn, kargs + [cols])
        elif fn is not None:
            if flat:
                kargs = [a.reshape(-1) for a in args] + [o.reshape(-1) for o in outs]
            else:
                kargs = [np.broadcast_to(a, shape) for a in args] + outs
            if chunks:
                self._threads.run_chunks(fn, kargs, chunks, [flat and a.size == 1 for a in args])
            else:
                self._cache.call_kernel(fn, kargs)
        for b, o in zip(self.out_buffers, outs):
            env[b] = o
        if self.memo_ok and fn is not None and Memo.applies(args):
            self._memo = Memo(args, outs, *self._bind(plan, args))

    def memo_stores(self) -> list[tuple[int, int]]:
        """``(buffer, index in the memo's outs)`` per output (see :mod:`segment`)."""
        return [(b, k) for k, b in enumerate(self.out_buffers)]

    def _bind(self, plan: tuple, args: list[np.ndarray]) -> tuple[Callable, Callable]:
        """``(prepare, call)`` of a compiled plan for inputs shaped like ``args``, as
        :class:`memo.Memo` takes them: the arguments and the calls :meth:`run` makes."""
        fn, shape, flat, chunks = plan
        cache_, threads_ = self._cache, self._threads
        if self.native_split_min is not None:
            bound = self._native_bind(plan, args)
            if bound is not None:
                return bound
        if flat is _ROWCOL:
            scales, cols = chunks
            rows = math.prod(shape) // cols
            if rows * cols * self.weight >= PARALLEL_MIN_SIZE and rows > 1:
                splits = threads_.split(rows)

                def prepare(args: list, outs: list) -> list:
                    return [a.reshape(-1) for a in args] + [o.reshape(-1) for o in outs]

                def call(kargs: list) -> None:
                    threads_.run_scaled_chunks(fn, kargs, splits, scales, (cols,))
            else:
                def prepare(args: list, outs: list) -> list:
                    return [a.reshape(-1) for a in args] + [o.reshape(-1) for o in outs] + [
                        cols]

                def call(kargs: list) -> None:
                    cache_.call_kernel(fn, kargs)
            return prepare, call
        if flat:
            def prepare(args: list, outs: list) -> list:
                return [a.reshape(-1) for a in args] + [o.reshape(-1) for o in outs]
        else:
            def prepare(args: list, outs: list) -> list:
                return [np.broadcast_to(a, shape) for a in args] + outs
        if chunks:
            whole = [flat and a.size == 1 for a in args]

            def call(kargs: list) -> None:
                threads_.run_chunks(fn, kargs, chunks, whole)
        else:
            def call(kargs: list) -> None:
                cache_.call_kernel(fn, kargs)
        return prepare, call

    def _native_bind(self, plan: tuple, args: list[np.ndarray]) -> tuple | None:
        """``(prepare, call)`` running a flat or row-by-column loop in one piece per
        thread of the native pool, each piece calling the compiled kernel through a
        trampoline (:mod:`native`); None where that does not apply (a rank-N loop, too
        little work, no pool).

        After a product split over both cores, a memory-bound epilogue run on one
        core reads half its input from the other core's cache: the mlp bench's bias,
        relu and mask over a 256x512 product took ~81 us after the product, ~38 us in
        two pieces (the next product no slower).
        """
        from graphflow.kernels.cpu import native, pool

        fn, shape, flat, chunks = plan
        size = math.prod(shape)
        if (fn is None or size * self.weight < self.native_split_min or not flat
                or not pool.available()):
            return None
        parts = pool.capacity()
        n_in = len(args)
        if flat is _ROWCOL:
            scales, cols = chunks
            n, extra = size // cols, [cols]
        else:
            scales = [None if a.size == 1 else 1 for a in args] + [1] * len(self.out_dtypes)
            n, extra = size, []
        if n < 2 * parts:
            return None
        bounds = [n * k // parts for k in range(parts + 1)]
        cache_ = self._cache

        def prepare(args: list, outs: list) -> tuple:
            flat_args = [a.reshape(-1) for a in args[:n_in]] + [o.reshape(-1) for o in outs]
            job = native.job(fn, [[a if s is None else a[lo * s:hi * s]
                                   for a, s in zip(flat_args, scales)] + extra
                                  for lo, hi in zip(bounds, bounds[1:])])
            return job, flat_args + extra  # (no job: the dispatcher, one call)

        def call(bound: tuple) -> None:
            job, whole = bound
            if job is None or not job.run():
                cache_.call_kernel(fn, whole)  # (a failed piece: the dispatcher's error)

        return prepare, call

    def _remember_small(self, args: list[np.ndarray], env: list[Any]) -> None:
        """Makes the memo of a small loop that just stored its results in ``env``: they
        are copied into arrays of the memo's own (the NumPy results may be an input or
        view one), which a repeat overwrites through :meth:`_make_small`'s "into"
        function. Only where every node's reference is a plain NumPy function."""
        into = self._small_into
        if into is None:
            if not all(n.op_def.plain_reference is not None for n in self.step.nodes):
                return
            into = self._small_into = self._make_small(into=True)
        outs = []
        for b, dt in zip(self.out_buffers, self.out_dtypes):
            v = env[b]
            if type(v) is not np.ndarray or v.dtype != dt:
                return
            outs.append(np.array(v))
        for b, o in zip(self.out_buffers, outs):
            env[b] = o

        def prepare(args: list, outs: list) -> tuple:
            return args, outs

        self._memo = Memo(args, outs, prepare, lambda bound: into(*bound))

    def _make_small(self, into: bool = False) -> Any:
        """The small-loop path as one Python function ``f(args, env, state)`` storing the
        outputs in ``env``: each node's NumPy reference called in order on the group's
        inputs, results cast to the node's dtype (the reference evaluation reruns the
        group if anything raises, so errors still read the same). With ``into``,
        ``f(args, outs)`` copying the results into the arrays ``outs`` (for plain NumPy
        references only)."""
        ns: dict[str, Any] = {"asarray": np.asarray, "copyto": np.copyto}
        lines = ["def small(args, outs):" if into else "def small(args, env, state):"]
        for k, ((ref, op, src, dt), node) in enumerate(zip(self._small, self.step.nodes)):
            ns[f"f{k}"], ns[f"op{k}"], ns[f"dt{k}"] = ref, op, dt
            operands = ", ".join(f"args[{a}]" if inp else f"r{a}" for inp, a in src)
            plain = node.op_def.plain_reference
            if plain is not None:  # a NumPy function of the inputs: called directly
                ns[f"f{k}"] = plain
                lines.append(f"    r{k} = asarray(f{k}({operands}))")
            else:
                lines.append(f"    r{k} = asarray(f{k}(op{k}, [{operands}], state))")
            lines += [f"    if r{k}.dtype is not dt{k} and r{k}.dtype != dt{k}:",
                      f"        r{k} = r{k}.astype(dt{k})"]
        for j, (b, k) in enumerate(zip(self.out_buffers, self._small_outs)):
            lines.append(f"    copyto(outs[{j}], r{k})" if into else f"    env[{b}] = r{k}")
        exec(compile("\n".join(lines), "<graphflow small loop>", "exec"), ns)
        return ns["small"]

    def _dispatch(self, args: list[np.ndarray]) -> Any:
        """How to run on inputs like ``args``: ``(kernel or None, out shape, flat)`` or
        ``_SMALL`` (loops under ``min_size``: NumPy) or ``_FALLBACK`` (the reference
        evaluation, for inputs that do not broadcast: it raises the error)."""
        if len(self._plans) > 64:
            self._plans.clear()
        shapes = [a.shape for a in args]
        shape = shapes[0]
        if any(s != shape for s in shapes):
            try:
                shape = np.broadcast_shapes(*shapes)
            except ValueError:
                return _FALLBACK
            for d in self.out_deps:
                if np.broadcast_shapes(*[shapes[j] for j in d]) != shape:
                    return _FALLBACK
        size = math.prod(shape)
        if size == 0:
            return (None, shape, True, None)
        if size < self.min_size:
            return _SMALL
        dtypes = tuple(a.dtype.str for a in args)
        scalars = tuple(a.size == 1 for a in args)
        if all(sc or (s == shape and a.flags.c_contiguous)
               for sc, s, a in zip(scalars, shapes, args)):
            # One flat loop over contiguous memory; one-element inputs hoisted.
            work = size * self.weight
            chunks = self._threads.split(size) if work >= PARALLEL_MIN_SIZE else None
            return (self._kernel(1, dtypes, scalars), shape, True, chunks)
        rowcol = _rowcol_kinds(shape, args)
        if rowcol is not None:
            kinds, cols = rowcol
            # Per array, elements per row (for splitting rows across threads); None: whole.
            scales = [cols if k == "F" else 1 if k == "C" else None for k in kinds]
            scales += [cols] * len(self.out_buffers)
            return (self._rowcol_kernel(kinds, dtypes), shape, _ROWCOL, (scales, cols))
        chunks = (self._threads.split(shape[0])
                  if size * self.weight >= PARALLEL_MIN_SIZE and shape[0] > 1 else None)
        return (self._kernel(len(shape), dtypes, ()), shape, False, chunks)


def _rowcol_kinds(shape: tuple[int, ...], args: list[np.ndarray]) -> tuple[str, int] | None:
    """Splits ``shape`` into rows x cols so that every input is contiguous and either the
    full shape (F), broadcast down the rows (R), along each row (C), or one element (S):
    ``(kinds, cols)``, or None when no split fits (the rank-N kernel runs)."""
    n = len(shape)
    if n < 2 or not all(a.flags.c_contiguous for a in args):
        return None
    padded = [(1,) * (n - a.ndim) + a.shape for a in args]
    for p in range(n - 1, 0, -1):  # the widest rows first: the longest inner loops
        lead, tail = shape[:p], shape[p:]
        kinds = []
        for a, s in zip(args, padded):
            if a.size == 1:
                kinds.append("S")
            elif s == shape:
                kinds.append("F")
            elif s[p:] == tail and all(d == 1 for d in s[:p]):
                kinds.append("R")
            elif s[:p] == lead and all(d == 1 for d in s[p:]):
                kinds.append("C")
            else:
                break
        else:
            return "".join(kinds), math.prod(tail)
    return None


_FALLBACK = object()
_ROWCOL = object()  # plan mode: the rows x cols kernel (codegen.rowcol_source)
_LOWER_LOCK = threading.Lock()
_SMALL = object()


class ApplyKernel:
    """A variable update (``Apply*``, ``SparseApply*``, ``Scatter*``) done in place.

    The reference evaluation replaces a variable's array; this kernel mutates it in
    one pass (:mod:`.optimizers`). Mutating is only safe on an array nobody else
    holds, so the kernel works on storage it created itself (``RunState.owned``):
    the first update after any other write (initializer, Assign, restore, feed)
    copies the value once and owns the copy. Values of this run that may still view
    the storage after this step (``suspects``: buffers read later or fetched, made by
    steps whose outputs are not fresh arrays) force a fresh copy too, so they keep the
    value they had, as with the reference. Fetched arrays that view variable
    storage are copied by ``PlanExecutable.run``.
    """

    def __init__(self, step: KernelStep, update: Any, suspects: list[int]) -> None:
        self.step = step
        self.node = node = step.nodes[0]
        self.update = update
        self.refs = frozenset(node.op_def.ref_inputs)
        where = {(v[0].id, v[1]): b for v, b in zip(step.inputs, step.in_buffers)}
        self.arg_buffers = [where[(p.id, i)] for p, i in node.inputs]
        self.out_buffers = list(step.out_buffers)
        self.dtype = node.dtypes[0].np
        self.suspects = suspects

    def _aliased(self, arr: np.ndarray, env: list[Any]) -> bool:
        for b in self.suspects:
            v = env[b]
            if type(v) is np.ndarray and _root(v) is arr:
                return True
        return False

    def storage(self, v: VarRef, env: list[Any], user: Any,
                owned: dict[str, np.ndarray]) -> np.ndarray:
        """The storage of ref input ``v`` this update may mutate (see the class doc)."""
        arr = v.read(user)
        name = v.op.name
        if owned.get(name) is not arr or self._aliased(arr, env):
            arr = np.array(arr, dtype=self.dtype, order="C", copy=True)
            v.write(arr)
            owned[name] = arr
        return arr

    def run(self, env: list[Any], state: RunState) -> None:
        user = _user_op(self.node)
        owned = state.owned
        values = []
        for i, b in enumerate(self.arg_buffers):
            v = env[b]
            if i in self.refs:
                values.append(self.storage(v, env, user, owned))
            else:
                values.append(v.read(user) if isinstance(v, VarRef) else v)
        try:
            self.update(values)
        except ValueError as e:
            raise errors.InvalidArgumentError(
                None, user, f"{user.type} op '{user.name}': {e}") from None
        for b in self.out_buffers:
            env[b] = values[0]


class UpdateGroupKernel:
    """Consecutive dense updates of one op type, dtype and attrs whose hyperparameters
    come from the same buffers (an optimizer's updates of all its variables), run as
    one step: the hyperparameters are read and checked once, then each variable's
    compiled update is called directly. An optimizer's small updates (biases, a last
    layer) cost 12-36 us each in a training step as separate steps, mostly the
    interpreter's work on caches a big kernel had just evicted.

    Each member is updated in turn, as the separate steps would be; anything unusual
    about one (a shape that differs, overlapping arrays) takes that member's
    :class:`ApplyKernel`, which raises or copies as it does alone.
    """

    def __init__(self, members: list[ApplyKernel], dense: Any) -> None:
        self.members = members
        self.dense = dense
        self.step = members[0].step
        self.scalar_buffers = [members[0].arg_buffers[i] for i in dense.scalars]
        # Each member's call bound to its arrays, and the possible aliases seen then
        # (see _remember); None until a run updated every member in place.
        self._memo: tuple | None = None
        # A trace shows the group's time on its first step, with every member's op.
        self.traced_nodes = [m.node for m in members]

    def run(self, env: list[Any], state: RunState) -> None:
        dense = self.dense
        first = self.members[0]
        user = _user_op(first.node)
        try:
            scalars = []
            for i, b in zip(dense.scalars, self.scalar_buffers):
                v = env[b]
                scalars.append(dense.scalar(i, v.read(user) if isinstance(v, VarRef) else v))
        except ValueError:
            for m in self.members:  # the first raises, naming its op
                m.run(env, state)
            return
        n_refs, grad_pos = dense.n_refs, dense.grad_pos
        owned = state.owned
        if self._memo is not None and self._run_memo(env, state, scalars):
            return
        plain = True  # every member updated in place by its compiled call
        for m in self.members:
            buffers_ = m.arg_buffers
            refs = [m.storage(env[buffers_[i]], env, user, owned) for i in range(n_refs)]
            g = env[buffers_[grad_pos]]
            if isinstance(g, VarRef):
                g = g.read(user)
            shape = refs[0].shape
            g = dense.gradient(g)
            if (g.shape != shape or any(r.shape != shape for r in refs)
                    or not dense.call(refs, g, scalars)):
                m.run(env, state)
                plain = False
                continue
            for b in m.out_buffers:
                env[b] = refs[0]
        if plain:
            self._remember(env, owned)

    def _remember(self, env: list[Any], owned: dict[str, np.ndarray]) -> None:
        """Binds each member's compiled call to the arrays it just updated, for runs
        where every storage, gradient and possible alias is the same object again
        (:meth:`_run_memo`): the checks of :meth:`ApplyKernel.storage` then give what
        they gave now, so they are skipped."""
        dense, members = self.dense, []
        suspects: dict[int, Any] = {}
        for m in self.members:
            buffers_ = m.arg_buffers
            handles = [env[buffers_[i]] for i in range(dense.n_refs)]
            g = env[buffers_[dense.grad_pos]]
            if (not all(type(h) is VarRef for h in handles) or type(g) is not np.ndarray
                    or dense.gradient(g) is not g):
                return
            names = [h.op.name for h in handles]
            arrays = [owned.get(name) for name in names]
            if any(a is None or m._aliased(a, env) for a in arrays):
                return
            for b in m.suspects:
                v = env[b]
                if type(v) is VarRef:
                    continue  # a handle aliases nothing until read
                if type(v) is not np.ndarray:
                    return
                suspects[b] = weakref.ref(v)
            members.append([[buffers_[i] for i in range(dense.n_refs)], names, arrays,
                            buffers_[dense.grad_pos], weakref.ref(g),
                            dense.bind(arrays, g), m])
        from graphflow.kernels.cpu import optimizers

        storage = {id(a) for member in members for a in member[2]}
        bound = None
        names = [n for member in members for n in member[1]]
        if (len(set(names)) == len(names)
                and any(member[2][0].size >= optimizers.SPLIT_MIN for member in members)
                and dense._splits()
                and not any(id(_root(member[4]())) in storage for member in members)):
            # One section for all: the updates touch different variables, and no
            # gradient views one, so running them at once is running them in turn.
            # Only where one of them is split anyway: a group of small updates (the
            # cnn's) would wake the pool's workers, whose spin and yield then compete
            # with the Python pool's convolution pieces (its step ran 35% slower).
            bound = optimizers.BoundGroup(dense, [(member[2], member[4]()) for member in members])
        self._memo = (members, list(suspects.items()), storage, bound)

    def _run_memo(self, env: list[Any], state: RunState, scalars: list[Any]) -> bool:
        """The members' bound calls, when every array is the one they were bound to;
        False, having written nothing, when one is not."""
        members, suspects, storage, bound = self._memo
        owned = state.owned
        for b, r in suspects:
            v = env[b]
            if v is r() or type(v) is VarRef:
                continue
            if type(v) is not np.ndarray or id(_root(v)) in storage:
                return False  # another value, which may view a storage
        dense = self.dense
        for k, member in enumerate(members):
            bufs, names, arrays, g_at, g = member[:5]
            for b, name, a in zip(bufs, names, arrays):
                h = env[b]
                if type(h) is not VarRef or h.store.get(name) is not a or owned.get(name) is not a:
                    return False
            v = env[g_at]
            if v is not g():  # another gradient array (a new one each run): rebind
                if (type(v) is not np.ndarray or v.shape != arrays[0].shape
                        or dense.gradient(v) is not v):
                    return False
                if bound is not None:
                    if id(_root(v)) in storage:
                        return False
                    bound.rebind(k, v)
                else:
                    member[5] = dense.bind(arrays, v)
                member[4] = weakref.ref(v)
        if bound is not None:
            failed = bound.run(scalars)
            for k, (_, _, arrays, _, _, _, m) in enumerate(members):
                if failed and k in failed:  # overlapping arrays: nothing written
                    m.run(env, state)
                else:
                    for b in m.out_buffers:
                        env[b] = arrays[0]
            return True
        for _, _, arrays, _, _, call, m in members:
            if call(scalars):
                for b in m.out_buffers:
                    env[b] = arrays[0]
            else:  # overlapping arrays: nothing written; the private copies' path
                m.run(env, state)
        return True


def _update_groups(kernels: list[Any]) -> list[tuple[int, int, Any]]:
    """``(start, end, DenseKernel)`` of each run of two or more neighbouring dense
    updates that :class:`UpdateGroupKernel` may run as one."""
    from graphflow.kernels.cpu import optimizers

    runs = []
    k = 0
    while k < len(kernels):
        a = kernels[k]
        dense = optimizers.dense_kernel(a.node) if isinstance(a, ApplyKernel) else None
        end = k + 1
        if dense is not None:
            key = (a.node.type, a.node.dtypes[0], dict(a.node.attrs),
                   [a.arg_buffers[i] for i in dense.scalars])
            while end < len(kernels):
                b = kernels[end]
                if not isinstance(b, ApplyKernel) or (
                        b.node.type, b.node.dtypes[0], dict(b.node.attrs),
                        [b.arg_buffers[i] for i in dense.scalars]) != key:
                    break
                end += 1
            if end - k > 1:
                runs.append((k, end, dense))
        k = end
    return runs


def _external_inputs(nodes: list[Node]) -> list[Value]:
    """The values ``nodes`` read that none of them makes, each once, in first-use order."""
    members = {n.id for n in nodes}
    ins: list[Value] = []
    for n in nodes:
        for v in n.inputs:
            if v[0].id not in members and all(v[0] is not u[0] or v[1] != u[1] for u in ins):
                ins.append(v)
    return ins


class _SubStep:
    """The elementwise epilogue of a step as a step of its own over a local buffer list:
    inputs first, then outputs (what :class:`FusedKernel` and the reference run)."""

    is_writer = False

    def __init__(self, nodes: list[Node], inputs: list[Value], outputs: list[Value]) -> None:
        self.nodes = nodes
        self.inputs = inputs
        self.outputs = outputs
        self.in_buffers = list(range(len(inputs)))
        self.out_buffers = list(range(len(inputs), len(inputs) + len(outputs)))


class AnchorKernel:
    """A step led by one op without a scalar expression (a library op such as a
    convolution, pool or softmax; or any other op, evaluated by the reference), then
    its elementwise epilogue (bias, activation) as one generated loop over the
    anchor's result, which may fold into a reduction (a bias gradient) in the same
    loop.

    Attributes:
      library: the anchor's library kernel, or None (reference evaluation).
      epilogue: the :class:`FusedKernel` of the epilogue, or the
        :class:`ReductionKernel` of an epilogue ending in a reduction, or None.
    """

    def __init__(self, step: KernelStep, lib: Any, epilogue: list[Node],
                 fast_math: bool, min_size: int | None) -> None:
        self.step = step
        self.anchor = anchor = step.nodes[0]
        self.library = lib
        self._eval = NodeEval(anchor)
        where = {(v[0].id, v[1]): b for v, b in zip(step.inputs, step.in_buffers)}
        self.anchor_buffers = [where[(p.id, i)] for p, i in anchor.inputs]
        out_at = {(v[0].id, v[1]): b for v, b in zip(step.outputs, step.out_buffers)}
        # Anchor outputs stored straight into the plan's buffers.
        self.anchor_stores = [(i, out_at[(anchor.id, i)]) for i in range(anchor.num_outputs)
                              if (anchor.id, i) in out_at]
        from graphflow.kernels.cpu import library

        self.epilogue: FusedKernel | ReductionKernel | None = None
        # Whether the epilogue's outputs are always new arrays (a reduction's prologue
        # value may be an input itself on its reference path).
        self.fresh_epilogue = True
        if epilogue:
            members = {n.id for n in epilogue}
            ins = _external_inputs(epilogue)
            outs = [v for v in step.outputs if v[0].id in members]
            sub = _SubStep(epilogue, ins, outs)
            ref = _CompiledKernel(sub)  # type: ignore[arg-type]
            if any(n.op_def.kind == REDUCTION for n in epilogue):
                # The anchor's result through an elementwise prologue into a reduction
                # (see fusion): one pass stores the prologue values and folds them.
                from graphflow.kernels.cpu import reduce

                self.epilogue = reduce.lower_reduction(
                    sub, ref, fast_math, min_size)  # type: ignore[arg-type]
                self.fresh_epilogue = self.epilogue is not None and self.epilogue.fresh
            else:
                body = lower_step(sub)  # type: ignore[arg-type]
                if body is not None:
                    self.epilogue = FusedKernel(sub, body, ref, fast_math, min_size)
            self._run_epilogue = (self.epilogue or ref).run
            # Where each epilogue input comes from: the anchor (output index) or a buffer.
            self.sources = [(True, v[1]) if v[0].id == anchor.id else (False, where[(v[0].id,
                                                                                   v[1])])
                            for v in ins]
            self.epilogue_stores = [out_at[(v[0].id, v[1])] for v in outs]
            self.local_size = len(ins) + len(outs)
        self.has_epilogue = bool(epilogue)
        # Where the memo's inputs come from: the product's operands, then the
        # epilogue's other inputs.
        self._epilogue_sources = ([src for from_anchor, src in self.sources if not from_anchor]
                                  if epilogue else [])
        self.memo_sources = self.anchor_buffers + self._epilogue_sources
        # The last product and epilogue, repeated while their inputs match (see memo.py);
        # only for a MatMul, where the executable set memo_ok.
        self._matmul = lib is library.matmul
        # Another library op's remembered call (library.MEMO_BINDERS), without epilogue.
        self._binder = (library.MEMO_BINDERS.get(anchor.type)
                        if lib is not None and not epilogue else None)
        self.fresh_outputs = (library.FRESH_OUTPUTS.get(anchor.type, frozenset())
                              if self._binder is not None else frozenset())
        # Whether a run may leave a memo (see segment.segmentable).
        self.remembers = self._matmul or self._binder is not None
        self.memo_ok = False
        self._memo: Memo | None = None
        self._memo_stores: list[tuple[int, int]] = []  # (env buffer, memo output)
        # (library fn, bias buffer or None, relu, store buffer): an epilogue the library
        # kernel applies as it stores its result (see _store_epilogue).
        self.store_epilogue = _store_epilogue(anchor, epilogue, where, self.anchor_stores,
                                              [out_at[(v[0].id, v[1])] for v in outs]
                                              if epilogue else [])

    def run(self, env: list[Any], state: RunState) -> None:
        args = []
        for b in self.anchor_buffers:
            v = env[b]
            if isinstance(v, VarRef):
                v = v.read(_user_op(self.anchor))
            args.append(v)
        memo = self._memo
        if memo is not None:
            if memo.run(args + [env[src] for src in self._epilogue_sources]):
                outs = memo.outs
                for b, k in self._memo_stores:
                    env[b] = outs[k]
                return
        if self.store_epilogue is not None:
            fn, bias_at, relu, store = self.store_epilogue
            bias = None
            if bias_at is not None:
                bias = env[bias_at]
                if isinstance(bias, VarRef):
                    bias = bias.read(_user_op(self.anchor))
            results = fn(self.anchor, args, bias, relu)
            if results is not None:
                env[store] = results[0]
                return
        if self.library is not None:
            results = self.library(self.anchor, args)
        else:
            results = self._eval(args, state)
        for i, b in self.anchor_stores:
            env[b] = results[i]
        if not self.has_epilogue:
            if self.memo_ok and self._matmul:
                self._remember(args, results[0], [])
            elif self.memo_ok and self._binder is not None:
                self._remember_library(args, results)
            return
        local: list[Any] = [None] * self.local_size
        for j, (from_anchor, src) in enumerate(self.sources):
            local[j] = results[src] if from_anchor else env[src]
        if self._matmul and self.epilogue is not None:
            self.epilogue.native_split_min = _spread_min(self.anchor, args, results[0])
        self._run_epilogue(local, state)
        n_in = len(self.sources)
        for k, b in enumerate(self.epilogue_stores):
            env[b] = local[n_in + k]
        if self.memo_ok and self._matmul:
            self._remember(args, results[0], local)

    def memo_stores(self) -> list[tuple[int, int]]:
        """``(buffer, index in the memo's outs)`` per output (see :mod:`segment`)."""
        return self._memo_stores

    def _remember_library(self, args: list[Any], results: list[Any]) -> None:
        """Makes the memo of a library op (:data:`library.MEMO_BINDERS`) that just made
        ``results`` from ``args``: their arrays are the ones its repeats write."""
        if not Memo.applies(args) or not all(type(r) is np.ndarray for r in results):
            return
        bound = self._binder(self.anchor, args)
        if bound is None:
            return
        self._memo = Memo(args, list(results), *bound)
        self._memo_stores = [(b, i) for i, b in self.anchor_stores]

    def _remember(self, args: list[Any], product: np.ndarray, local: list[Any]) -> None:
        """Makes the :class:`memo.Memo` of a product and its compiled epilogue, which
        just ran on ``args`` into ``product`` and ``local`` (the epilogue's values):
        one call repeating both (:meth:`CpuExecutable._enable_memos`)."""
        from graphflow.kernels.cpu import library

        if (library.matmul_operands(self.anchor, *args) is None  # it ran the reference
                or type(product) is not np.ndarray):
            return
        epi_sources = self.sources if self.has_epilogue else []
        n_in = len(epi_sources)
        if self.has_epilogue:
            epi = getattr(self.epilogue, "_memo", None)
            if epi is None or any(o is not v for o, v in zip(epi.outs, local[n_in:])):
                return  # the epilogue's last run was not its compiled loop
            e_outs, e_prepare, e_call = epi.outs, epi.prepare, epi.call
        else:
            e_outs, e_prepare, e_call = [], None, None
        # The memo's inputs: the product's operands, then the epilogue's other inputs;
        # ``places``: per epilogue input, None (the product) or its index among them.
        inputs, places = list(args), []
        for j, (from_anchor, _) in enumerate(epi_sources):
            places.append(None if from_anchor else len(inputs))
            if not from_anchor:
                inputs.append(local[j])
        if not Memo.applies(inputs):
            return
        ta = bool(self.anchor.attrs.get("transpose_a"))
        tb = bool(self.anchor.attrs.get("transpose_b"))
        matmul_into = library.matmul_into

        def prepare(ins: list[np.ndarray], outs: list[np.ndarray]) -> tuple:
            a, b, c = ins[0], ins[1], outs[0]
            e_args = None
            if e_prepare is not None:
                e_args = e_prepare([c if p is None else ins[p] for p in places], outs[1:])
            return (a.T if ta else a, b.T if tb else b, c, e_args)

        def call(bound: tuple) -> None:
            matmul_into(bound[0], bound[1], bound[2])
            if e_call is not None:
                e_call(bound[3])

        self._memo = Memo(inputs, [product] + list(e_outs), prepare, call)
        self._memo_stores = [(b, 0) for _, b in self.anchor_stores] + (
            [(b, 1 + k) for k, b in enumerate(self.epilogue_stores)] if self.has_epilogue
            else [])


def _spread_min(anchor: Node, args: list[Any], product: Any) -> int | None:
    """The ``native_split_min`` for the epilogue of a MatMul that made ``product`` from
    ``args``: :data:`NATIVE_EPILOGUE_MIN` when the BLAS splits the product over its
    threads (it has more than one, and the product has at least ``blas.SMALL``
    multiply-adds), so the product is spread over the cores' caches; else None.
    (Split after the mlp bench's 256x10x512 product, which is not, a bias
    gradient's column sum made its step 1.7% slower; after the 256x512x512 one,
    0.6% faster.)"""
    from graphflow.kernels.cpu import blas

    if type(product) is not np.ndarray or product.ndim != 2 or len(args) != 2:
        return None
    a = args[0]
    k = getattr(a, "shape", (0, 0))[0 if anchor.attrs.get("transpose_a") else -1]
    if product.size * k < blas.SMALL or blas.threads() < 2:
        return None
    return NATIVE_EPILOGUE_MIN


def _store_epilogue(anchor: Node, epilogue: list[Node], where: dict, anchor_stores: list,
                    stores: list[int]) -> tuple | None:
    """``(library fn, bias buffer or None, relu, store buffer)`` when ``epilogue`` is a
    bias add and/or a relu of the anchor's only result, which nothing else reads, and the
    library has a kernel applying them as it stores (:data:`library.STORE_EPILOGUE`);
    else None. The kernel may still decline at run time (then the step runs as usual)."""
    from graphflow.kernels.cpu import library

    fn = library.STORE_EPILOGUE.get(anchor.type)
    if fn is None or not epilogue or anchor_stores or len(stores) != 1 or len(epilogue) > 2:
        return None
    dtype = anchor.dtypes[0]
    if any(n.num_outputs != 1 or n.dtypes[0] is not dtype or n.control_inputs
           for n in epilogue):
        return None
    last, bias_at = (anchor, 0), None
    nodes = list(epilogue)
    first = nodes[0]
    if first.type in ("Add", "AddV2", "BiasAdd"):
        if first.type == "BiasAdd" and first.attrs.get("data_format", "NHWC") != "NHWC":
            return None
        a, b = first.inputs
        if b[0] is anchor:
            a, b = b, a
        if a[0] is not anchor or a[1] != 0 or b[0] is anchor or b[0].dtypes[b[1]] is not dtype:
            return None
        bias_at = where[(b[0].id, b[1])]
        last = (first, 0)
        nodes.pop(0)
    if nodes:
        relu = nodes[0]
        if relu.type != "Relu" or relu.inputs[0][0] is not last[0] or relu.inputs[0][1] != 0:
            return None
    elif bias_at is None:
        return None
    return fn, bias_at, bool(nodes), stores[0]


class SplitKernel:
    """A fusion group with ops that have no scalar expression (reshapes, expand_dims,
    broadcast_to, slices between elementwise ops): each run of consecutive ops that
    have one runs as a :class:`FusedKernel`, the others are evaluated one by one.

    Values live in a local list for the run: the group's inputs first, then every
    value its ops make.

    Attributes:
      parts: per part, a :class:`FusedKernel` or the :class:`NodeEval` of one op.
    """

    def __init__(self, step: KernelStep, fallback: _CompiledKernel, fast_math: bool,
                 min_size: int | None) -> None:
        self.step = step
        # Inputs all under min_size elements: the reference's straight-line evaluation,
        # which is what the parts would do anyway, without their bookkeeping.
        self.fallback = fallback
        self.min_size = JIT_MIN_SIZE if min_size is None else min_size
        slot: dict[tuple[int, int], int] = {}
        for j, v in enumerate(step.inputs):
            slot[(v[0].id, v[1])] = j
        for n in step.nodes:
            for i in range(n.num_outputs):
                slot[(n.id, i)] = len(slot)
        self.size = len(slot)
        self.in_buffers = list(step.in_buffers)
        self.stores = [(slot[(v[0].id, v[1])], b) for v, b in zip(step.outputs, step.out_buffers)]
        # Values read after the node that makes them by a later part, or stored.
        needed = {(v[0].id, v[1]) for v in step.outputs}
        segments: list[list[Node]] = []
        for n in step.nodes:
            fusable = _fusable(n)
            if fusable and segments and segments[-1][0] is not None:
                segments[-1].append(n)
            else:
                segments.append([n] if fusable else [None, n])
        self.parts: list[Any] = []
        self._calls: list[Any] = []
        for k, seg in enumerate(segments):
            later = {(p.id, i) for s in segments[k + 1:] for n in s if n is not None
                     for p, i in n.inputs} | needed
            if seg[0] is None:  # an op without a scalar expression
                node = seg[1]
                ev = NodeEval(node)
                srcs = [slot[(p.id, i)] for p, i in node.inputs]
                outs = [slot[(node.id, i)] for i in range(node.num_outputs)]
                self.parts.append(ev)
                self._calls.append(_node_call(ev, srcs, outs))
                continue
            ins = _external_inputs(seg)
            outs_v = [(n, 0) for n in seg if (n.id, 0) in later]
            sub = _SubStep(seg, ins, outs_v)
            sub.in_buffers = [slot[(v[0].id, v[1])] for v in ins]
            sub.out_buffers = [slot[(v[0].id, v[1])] for v in outs_v]
            body = lower_step(sub)  # type: ignore[arg-type]
            ref = _CompiledKernel(sub)  # type: ignore[arg-type]
            kernel = FusedKernel(sub, body, ref, fast_math, min_size) if body else ref
            self.parts.append(kernel)
            self._calls.append(kernel.run)

    @property
    def fused(self) -> list[FusedKernel]:
        return [p for p in self.parts if isinstance(p, FusedKernel)]

    def run(self, env: list[Any], state: RunState) -> None:
        for b in self.in_buffers:
            a = env[b]
            if type(a) is not np.ndarray or a.size >= self.min_size:
                break
        else:
            return self.fallback.run(env, state)
        local: list[Any] = [None] * self.size
        for j, b in enumerate(self.in_buffers):
            local[j] = env[b]
        for call in self._calls:
            call(local, state)
        for j, b in self.stores:
            env[b] = local[j]


def _node_call(ev: NodeEval, srcs: list[int], outs: list[int]) -> Any:
    def call(local: list[Any], state: RunState) -> None:
        results = ev([local[j] for j in srcs], state)
        for j, v in zip(outs, results):
            local[j] = v
    return call


def _fusable(node: Node) -> bool:
    """Whether ``node`` has a scalar expression a generated loop can evaluate."""
    return codegen.node_expression(node, ["x"] * len(node.inputs)) is not None


def _fusable_count(step: KernelStep) -> int:
    return sum(_fusable(n) for n in step.nodes)


class CpuExecutable(PlanExecutable):
    """Runs a Plan with generated Numba kernels for elementwise groups (reference otherwise).

    The first ``warmup`` runs evaluate the plan with the reference backend; the
    kernels are built (compiled, or loaded from the kernel cache) on the run after.

    Args:
      plan: the compiled plan.
      fast_math: use graphflow's vectorisable math functions (True) or libm
        (False); None takes the default (GRAPHFLOW_MATH=libm selects libm).
      min_size: loops over fewer elements run the reference evaluation; None takes
        ``JIT_MIN_SIZE`` (GRAPHFLOW_JIT_MIN_SIZE, default 4096).
      warmup: runs before the kernels are built; None takes ``JIT_WARMUP``
        (GRAPHFLOW_JIT_WARMUP, default 1).

    Attributes:
      fused: the steps that run as generated kernels (empty until built).
      lowered: whether the kernels are built.
    """

    def __init__(self, plan: Plan, fast_math: bool | None = None,
                 min_size: int | None = None, warmup: int | None = None) -> None:
        super().__init__(plan)
        if fast_math is None:
            fast_math = codegen.DEFAULT_FAST_MATH
        self.fast_math = fast_math
        self.min_size = min_size
        self.fused: list[FusedKernel] = []
        self.updates: list[ApplyKernel] = []
        self.anchored: list[AnchorKernel] = []
        self.reduced: list[ReductionKernel] = []
        self.split: list[SplitKernel] = []
        self.paired: list[PairKernel] = []
        self.lowered = False
        self._warmup = JIT_WARMUP if warmup is None else warmup
        if self._warmup <= 0:
            self._lower()
        else:
            # Until lowered; then the class's methods, with no check.
            self.run = self._warm_run
            self.run_inputs = self._warm_run_inputs

    def close(self) -> None:
        """Returns idle pooled result buffers to the OS (see :mod:`buffers`).

        The pool is the process's: other sessions' idle buffers go too, and are
        allocated afresh on their next run.
        """
        buffers.release()

    def _warm(self) -> None:
        # Reading runs may come from several threads at once: one of them lowers.
        with _LOWER_LOCK:
            if not self.lowered:
                if self._warmup > 0:
                    self._warmup -= 1
                else:
                    self._lower()
                    del self.run, self.run_inputs

    def _warm_run(self, feeds: dict[Any, np.ndarray], state: RunState,
                  trace: list[Any] | None = None) -> list[Any]:
        self._warm()
        values = [feeds[t] for t in self.input_tensors]
        if trace is None:
            return PlanExecutable.run_inputs(self, values, state)
        return PlanExecutable.run(self, feeds, state, trace)

    def _warm_run_inputs(self, values: list[Any], state: RunState) -> list[Any]:
        self._warm()
        return PlanExecutable.run_inputs(self, values, state)

    def _lower(self) -> None:
        """Replaces each step's reference evaluation by its kernel, where one applies."""
        from graphflow.kernels.cpu import blas, library, optimizers, reduce

        blas.use_pool()
        plan, fast_math, min_size = self.plan, self.fast_math, self.min_size
        fresh: set[int] = set()  # steps whose outputs are always new arrays
        for k, (step, ref) in enumerate(zip(plan.steps, self._kernels)):
            if step.is_writer:
                update = optimizers.lower_apply(step.nodes[0])
                if update is not None:
                    uk = ApplyKernel(step, update, _suspects(plan, k, fresh))
                    self._kernels[k] = uk
                    self.updates.append(uk)
                continue
            body = lower_step(step)
            if body is not None:
                fk = FusedKernel(step, body, ref, fast_math, min_size, self._const_buffers)
                self._kernels[k] = fk
                self.fused.append(fk)
                fresh.add(k)
                continue
            anchor = step.nodes[0]
            if step.pattern == OPAQUE_GROUP or len(step.nodes) == 1:
                lib = library.lower_library(anchor)
                if lib is not None or len(step.nodes) > 1:
                    ak = AnchorKernel(step, lib, step.nodes[1:], fast_math, min_size)
                    self._kernels[k] = ak
                    self.anchored.append(ak)
                    if lib is not None and ak.fresh_epilogue:
                        fresh.add(k)
            if step.pattern == REDUCTION_GROUP and self._kernels[k] is ref:
                rk = reduce.lower_reduction(step, ref, fast_math, min_size)
                if rk is not None:
                    self._kernels[k] = rk
                    self.reduced.append(rk)
                    if rk.fresh:
                        fresh.add(k)
            if self._kernels[k] is ref and len(step.nodes) > 1 and _fusable_count(step):
                sk = SplitKernel(step, ref, fast_math, min_size)
                self._kernels[k] = sk
                self.split.append(sk)
        self._pair()
        for start, end, dense in _update_groups(self._kernels):
            members = self._kernels[start:end]
            self._kernels[start] = UpdateGroupKernel(members, dense)
            for j in range(start + 1, end):
                self._kernels[j] = _Done(plan.steps[j])
        if self.exclusive:
            self._enable_memos()
            self._segment()
        self.lowered = True
        self._runner = None  # rebuilt over the new kernels

    def _enable_memos(self) -> None:
        """Lets kernels repeat their last call in place (:mod:`memo`) where that is
        safe: the plan's runs exclude each other (the caller checks), and each output
        buffer is neither fetched nor read by a kernel that may keep its input or
        hand it on as an output (the reference's steps, a pass-through read, a Cast)."""
        plan = self.plan
        runs: list[Any] = list(self._kernels)
        for k in self._kernels:  # a slot another kernel runs: charge it to that one
            if isinstance(k, UpdateGroupKernel):
                for m in k.members[1:]:
                    runs[plan.steps.index(m.step)] = k
            elif isinstance(k, PairKernel):
                runs[plan.steps.index(k.second.step)] = k
        # (step, buffer) of each value that may be held past its step: the memory plan
        # reuses buffers, so a value is its buffer from the step that writes it on.
        unsafe: set[tuple[int, int]] = set()
        writer: dict[int, int] = {}
        for j, (step, k) in enumerate(zip(plan.steps, runs)):
            if not _keeps_nothing(k):
                unsafe.update((writer.get(b, -1), b) for b in step.in_buffers)
            for b in step.out_buffers:
                writer[b] = j
        unsafe.update((writer.get(b, -1), b) for b in plan.outputs)
        from graphflow.kernels.cpu.reduce import ReductionKernel

        for j, k in enumerate(self._kernels):
            for kernel in (k.first, k.second) if isinstance(k, PairKernel) else (k,):
                at = plan.steps.index(kernel.step) if kernel is not k else j
                if isinstance(kernel, (FusedKernel, ReductionKernel)):
                    kernel.memo_ok = not any((at, b) in unsafe for b in kernel.out_buffers)
                elif isinstance(kernel, AnchorKernel):
                    # Outputs its memo makes anew on every call may be held anywhere.
                    stores = [b for i, b in kernel.anchor_stores
                              if i not in kernel.fresh_outputs]
                    if kernel.epilogue is not None:
                        stores += kernel.epilogue_stores
                    kernel.memo_ok = not any((at, b) in unsafe for b in stores)
                    if kernel.epilogue is not None:
                        kernel.epilogue.memo_ok = kernel.memo_ok

    def _segment(self) -> None:
        """Runs of two or more neighbouring steps whose kernels all remember their calls
        become :class:`segment.Segment` s, one call each in untraced runs."""
        from graphflow.kernels.cpu.segment import Segment, segmentable

        kernels, steps = self._kernels, self.plan.steps
        j = 0
        while j < len(kernels):
            end = j
            while end < len(kernels) and segmentable(kernels[end]):
                end += 1
            if end - j >= 2:
                seg = Segment(kernels[j:end], [steps[i].out_buffers for i in range(j, end)])
                self._segments[j] = (end, seg.run)
            j = max(end, j + 1)

    def _pair(self) -> None:
        """Neighbouring steps that are both convolution kernels and independent of each
        other (a convolution's input and filter gradients, typically) run at once, each
        on one core (see :class:`PairKernel`)."""
        steps, kernels = self.plan.steps, self._kernels
        k = 0
        while k + 1 < len(kernels):
            a, b = kernels[k], kernels[k + 1]
            if (isinstance(a, AnchorKernel) and isinstance(b, AnchorKernel)
                    and a.library is not None and b.library is not None
                    and a.anchor.type in _CONCURRENT and b.anchor.type in _CONCURRENT
                    and _independent(steps[k], steps[k + 1])):
                pk = PairKernel(a, b)
                kernels[k], kernels[k + 1] = pk, pk.second_done
                self.paired.append(pk)
                k += 2
            else:
                k += 1


# Library ops whose kernels are compute-bound: two of them side by side, one core each,
# beat one after the other on two (a convolution's two gradients: 10.2 against 10.6 ms
# for the cnn bench's second layer), as TensorFlow's inter-op threads run them.
_CONCURRENT = frozenset({"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter",
                         "_Conv2DBackpropFilterWithBias"})


def _independent(a: KernelStep, b: KernelStep) -> bool:
    """Whether steps ``a`` and ``b`` may run at once: neither reads a value the other
    makes, and they write different buffers."""
    made_a = {(n.id, i) for n, i in a.outputs}
    made_b = {(n.id, i) for n, i in b.outputs}
    return not (any((n.id, i) in made_a for n, i in b.inputs)
                or any((n.id, i) in made_b for n, i in a.inputs)
                or set(a.out_buffers) & set(b.out_buffers))


class PairKernel:
    """Two independent steps' kernels run at once, on the worker pool and the caller.

    Their own pieces then run in their thread (the pool takes one section at a time),
    so each has a core. Each reads and writes its own copy of the run's buffer list,
    whose outputs are then copied back: the memory plan may give the second a buffer
    the first reads last. The first step's slot in the plan runs the pair; the
    second's runs :attr:`second_done`, which does nothing: a traced run charges the
    pair's time to the first step. Errors from either are raised after both finish.

    Attributes:
      first, second: the two kernels, in plan order.
    """

    def __init__(self, first: Any, second: Any) -> None:
        self.first, self.second = first, second
        self.step = first.step
        self.second_done = _Done(second.step)
        self.traced_nodes = first.step.nodes + second.step.nodes

    def run(self, env: list[Any], state: RunState) -> None:
        from graphflow.kernels.cpu import threads

        env_a, env_b = env.copy(), env.copy()
        threads.run_parallel([(_quiet, (self.first, env_a, state)),
                              (_quiet, (self.second, env_b, state))])
        for b in self.first.step.out_buffers:
            env[b] = env_a[b]
        for b in self.second.step.out_buffers:
            env[b] = env_b[b]


# Ops whose reference evaluation may return an input array itself as its output.
_ALIASING = frozenset({"Identity", "StopGradient", "Snapshot", "PreventGradient", "Cast",
                       "CheckNumerics", "EnsureShape"})


def _keeps_nothing(kernel: Any) -> bool:
    """Whether a kernel neither keeps an input array past the run nor returns one as an
    output, on every path it may take (:meth:`CpuExecutable._enable_memos`)."""
    if isinstance(kernel, PairKernel):
        return _keeps_nothing(kernel.first) and _keeps_nothing(kernel.second)
    if isinstance(kernel, (UpdateGroupKernel, ApplyKernel)):
        return True  # reads its gradient; its outputs are the variables' storage
    if isinstance(kernel, FusedKernel):
        return not any(n.type in _ALIASING for n in kernel.step.nodes)
    from graphflow.kernels.cpu.reduce import ReductionKernel

    # A library op's results are new arrays; an epilogue's or a reduction's prologue
    # values are computed, unless an op may pass its input through.
    if (isinstance(kernel, AnchorKernel) and kernel.library is not None
            or isinstance(kernel, ReductionKernel)):
        return not any(n.type in _ALIASING for n in kernel.step.nodes)
    return False


def _quiet(kernel: Any, env: list[Any], state: RunState) -> None:
    # NumPy's error state is per thread (a context variable): the plan runner set it in
    # the caller only.
    token = fperr.ignore()
    try:
        kernel.run(env, state)
    finally:
        fperr.restore(token)


class _Done:
    """The plan slot of a step a kernel in an earlier slot already ran (the second of a
    :class:`PairKernel`, the later members of an :class:`UpdateGroupKernel`)."""

    # Traces leave it out: the kernel that ran the step names its ops and has its time;
    # the plan runner does not call it.
    untraced = True
    ran_earlier = True

    def __init__(self, step: KernelStep) -> None:
        self.step = step

    def run(self, env: list[Any], state: RunState) -> None:
        pass


def _suspects(plan: Plan, k: int, fresh: set[int]) -> list[int]:
    """Buffers holding values made before step ``k`` and used after it (or fetched) by
    steps whose outputs may view other arrays (not in ``fresh``)."""
    out = {a.buffer for a in plan.assignments
           if a.first < k < a.last and a.first not in fresh}
    return sorted(out)


def lower_step(step: KernelStep) -> list[str] | None:
    """The generated loop body of a step, or None when it runs the reference evaluation."""
    if step.is_writer or not step.outputs or not step.inputs:
        return None
    if all(n.type in PASS_THROUGH for n in step.nodes):
        return None  # a variable read, typically: free in the reference, a copy as a loop
    return codegen.group_body(step.nodes, step.inputs, step.outputs)
