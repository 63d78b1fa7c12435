"""In-place optimizer updates: each TF1 ``Apply*`` op as one fused Numba loop.

The reference evaluations in :mod:`graphflow.ops.training_ops` compute an update
with several NumPy passes (one temporary per operator) and replace the stored
arrays. Here each op is one loop over the flattened variable that reads an
element of the variable, its slots and the gradient, and writes the new values
back in place: one pass over memory, no temporaries.

Results are bit-identical to the reference in float32 and float64 (evaluated, as the
kernels run, with subnormals flushed to zero: see below): every
element runs the reference formula's operators in the reference's order, in the
variable's dtype (hyperparameters are passed as scalars of that dtype, so
float32 never widens), with ``fastmath`` off so LLVM neither contracts ``a*b+c``
into an FMA nor reassociates. Scalar combinations of hyperparameters (Adam's
``alpha``, ``1 - beta1``, ...) are computed once per call, in the kernel, with
the reference's expressions on scalars of the variable's dtype: IEEE operations
that round exactly as NumPy's do on the reference's 0-d arrays.

A kernel first checks that its arrays do not overlap (a gradient that views a
variable's buffer, one variable passed as two refs); if they do it writes
nothing and the call is repeated on private copies, written back in input order
as the reference's successive writes would be.

:func:`lower_apply` maps an IR node to an ``update(values)`` callable; the
``SparseApply*`` ops run the dense kernel on each row of ``indices`` in order,
which is the reference's semantics for repeated rows (one update per
occurrence), and ``ScatterAdd`` / ``ScatterSub`` / ``ScatterUpdate`` apply their
rows in order as ``np.add.at`` / ``np.subtract.at`` / fancy assignment do.
Indices are range-checked before anything is written, so a failing call leaves
the variable and its slots untouched, as the reference does.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from graphflow.compiler.ir import Node
from graphflow.framework.op_def import lookup

__all__ = ["DENSE_OPS", "SCATTER_OPS", "SPARSE_OPS", "DenseKernel", "dense_kernel", "lower_apply",
           "subnormals_flushed"]

# The options of codegen.PRELUDE. fastmath stays off: it would allow FMA contraction
# and reassociation, which change results by an ulp against the NumPy reference.
# error_model="numpy": 1/0 and sqrt(-1) give inf/NaN like NumPy instead of raising,
# and no zero-division branch keeps LLVM from vectorising.
_OPTS = dict(cache=True, nogil=True, error_model="numpy")

_FLOATS = ("float32", "float64")
_SCATTER_DTYPES = ("float32", "float64", "int32", "int64")


# --- subnormals ------------------------------------------------------------------------------
# The updates run with subnormal numbers flushed to zero (MXCSR's FTZ and DAZ, set for the
# kernel's loop and restored after it), as TensorFlow's CPU kernels and XLA's run: late in
# training Adam's second moment underflows into subnormals, on which each operation takes
# a microcode assist (~100 cycles); the mlp bench's w1 update ran 9x slower after 650
# steps. Results differ from the reference only where it has a subnormal (here: 0).
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")
_FTZ_DAZ = 0x8040


def _mxcsr(builder: Any, name: str, slot: Any) -> None:
    ptr = ir.IntType(8).as_pointer()
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [ptr]),
                                        f"llvm.x86.sse.{name}")
    builder.call(fn, [builder.bitcast(slot, ptr)])


@intrinsic
def _flush_subnormals(typingctx):
    """Sets FTZ and DAZ in this thread's MXCSR; returns its previous value (0 off x86)."""
    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        i32 = ir.IntType(32)
        if not _X86:
            return ir.Constant(i32, 0)
        slot = cgutils.alloca_once(builder, i32)
        _mxcsr(builder, "stmxcsr", slot)
        old = builder.load(slot)
        builder.store(builder.or_(old, ir.Constant(i32, _FTZ_DAZ)), slot)
        _mxcsr(builder, "ldmxcsr", slot)
        return old

    return types.uint32(), codegen


@intrinsic
def _restore_mxcsr(typingctx, old):
    """Puts back the MXCSR :func:`_flush_subnormals` returned."""
    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        if _X86:
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(args[0], slot)
            _mxcsr(builder, "ldmxcsr", slot)
        return context.get_dummy_value()

    return types.void(types.uint32), codegen


@njit(**_OPTS)
def _enter_flushed():
    return _flush_subnormals()


@njit(**_OPTS)
def _leave_flushed(old):
    _restore_mxcsr(old)


@contextlib.contextmanager
def subnormals_flushed() -> Iterator[None]:
    """Runs the block with this thread's subnormals flushed to zero, as the update kernels
    run (the tests evaluate the reference so, to compare bit for bit)."""
    old = _enter_flushed()
    try:
        yield
    finally:
        _leave_flushed(old)


# --- dense kernels ---------------------------------------------------------------------------
@njit(inline="always", **_OPTS)
def _span(a):
    """The byte range ``[lo, hi)`` of a contiguous array; (0, 0) when empty."""
    if a.size == 0:
        return (0, 0)
    lo = a.ctypes.data
    return (lo, lo + a.size * a.itemsize)


@njit(inline="always", **_OPTS)
def _disjoint(spans):
    """True when no two of the byte ranges (from :func:`_span`) overlap.

    Checked in the kernel, not with np.may_share_memory, because the Python calls cost
    microseconds per pair and most variables are small: a gradient that is a view of the
    variable's own buffer, or one variable passed as two refs, takes the slow path.
    Ranges rather than arrays: a tuple mixing writable and read-only arrays (a constant
    gradient) has no common type in Numba.
    """
    n = len(spans)
    for i in range(n):
        lo, hi = spans[i]
        if lo == hi:
            continue
        for j in range(i + 1, n):
            b_lo, b_hi = spans[j]
            if b_lo != b_hi and lo < b_hi and b_lo < hi:
                return False
    return True


# The entry kernels: (refs..., grad, one, hyperparameters in op input order..., bool attrs),
# on 1-D C-contiguous arrays (flattened views of the storage). Each returns False, having
# written nothing, when its arrays overlap. ``one`` is 1 in the variable's dtype: a literal
# 1 would be an int64 in Numba and widen float32 arithmetic to float64. The scalar
# combinations are the reference's expressions in its order; NumPy's scalar arithmetic
# and Numba's are both plain IEEE operations in the variable's dtype, so they round
# identically. Each loop loads every input element before storing; a bool attr selects
# one of two loops rather than branching per element, which keeps both vectorisable.
# One function per op (no separate loop helper): each Numba function is a compile of its
# own, and the compile, not the run, dominates small programs and the tests.
@njit(**_OPTS)
def _gradient_descent(var, delta, one, alpha):
    if not _disjoint((_span(var), _span(delta))):
        return False
    csr = _flush_subnormals()
    for i in range(var.size):
        var[i] = var[i] - alpha * delta[i]
    _restore_mxcsr(csr)
    return True


@njit(**_OPTS)
def _momentum(var, accum, grad, one, lr, momentum, nesterov):
    if not _disjoint((_span(var), _span(accum), _span(grad))):
        return False
    csr = _flush_subnormals()
    if nesterov:
        for i in range(var.size):
            g = grad[i]
            a = accum[i] * momentum + g
            accum[i] = a
            var[i] = var[i] - (g * lr + a * momentum * lr)
    else:
        for i in range(var.size):
            a = accum[i] * momentum + grad[i]
            accum[i] = a
            var[i] = var[i] - a * lr
    _restore_mxcsr(csr)
    return True


@njit(**_OPTS)
def _adam(var, m, v, grad, one, beta1_power, beta2_power, lr, beta1, beta2, epsilon,
          nesterov):
    if not _disjoint((_span(var), _span(m), _span(v), _span(grad))):
        return False
    csr = _flush_subnormals()
    alpha = lr * np.sqrt(one - beta2_power) / (one - beta1_power)
    one_m_beta1 = one - beta1
    one_m_beta2 = one - beta2
    if nesterov:
        for i in range(var.size):
            g = grad[i]
            mi = m[i] + (g - m[i]) * one_m_beta1
            vi = v[i] + (g * g - v[i]) * one_m_beta2
            m[i] = mi
            v[i] = vi
            var[i] = var[i] - (g * one_m_beta1 + beta1 * mi) * alpha / (np.sqrt(vi) + epsilon)
    else:
        for i in range(var.size):
            g = grad[i]
            mi = m[i] + (g - m[i]) * one_m_beta1
            vi = v[i] + (g * g - v[i]) * one_m_beta2
            m[i] = mi
            v[i] = vi
            var[i] = var[i] - mi * alpha / (np.sqrt(vi) + epsilon)
    _restore_mxcsr(csr)
    return True


@njit(**_OPTS)
def _rms_prop(var, ms, mom, grad, one, lr, rho, momentum, epsilon):
    if not _disjoint((_span(var), _span(ms), _span(mom), _span(grad))):
        return False
    csr = _flush_subnormals()
    one_m_rho = one - rho
    for i in range(var.size):
        g = grad[i]
        s = ms[i] + (g * g - ms[i]) * one_m_rho
        u = mom[i] * momentum + g * lr / np.sqrt(s + epsilon)
        ms[i] = s
        mom[i] = u
        var[i] = var[i] - u
    _restore_mxcsr(csr)
    return True


@njit(**_OPTS)
def _centered_rms_prop(var, mg, ms, mom, grad, one, lr, rho, momentum, epsilon):
    if not _disjoint((_span(var), _span(mg), _span(ms), _span(mom), _span(grad))):
        return False
    csr = _flush_subnormals()
    one_m_rho = one - rho
    for i in range(var.size):
        g = grad[i]
        s = ms[i] + (g * g - ms[i]) * one_m_rho
        a = mg[i] + (g - mg[i]) * one_m_rho
        u = mom[i] * momentum + g * lr / np.sqrt(s - a * a + epsilon)
        mg[i] = a
        ms[i] = s
        mom[i] = u
        var[i] = var[i] - u
    _restore_mxcsr(csr)
    return True


@njit(**_OPTS)
def _adagrad(var, accum, grad, one, lr, update_slots):
    if not _disjoint((_span(var), _span(accum), _span(grad))):
        return False
    csr = _flush_subnormals()
    if update_slots:
        for i in range(var.size):
            g = grad[i]
            a = accum[i] + g * g
            accum[i] = a
            var[i] = var[i] - g * lr / np.sqrt(a)
    else:
        for i in range(var.size):
            var[i] = var[i] - grad[i] * lr / np.sqrt(accum[i])
    _restore_mxcsr(csr)
    return True


# --- sparse kernels --------------------------------------------------------------------------
# 2-D [rows, row_size] views of the refs, grad [len(indices), row_size], int64 indices. The
# dense kernel (already compiled for the dtype, so these stay cheap to compile) runs on each
# listed row in order: a repeated row is updated once per occurrence, as the reference does.
# Each returns _OVERLAP or the position of the first index outside [0, rows), having written
# nothing, else _OK.
_OK = -1
_OVERLAP = -2


@njit(inline="always", **_OPTS)
def _first_bad_index(indices, limit):
    for k in range(indices.size):
        if indices[k] < 0 or indices[k] >= limit:
            return k
    return _OK


@njit(**_OPTS)
def _sparse_momentum(var, accum, grad, indices, one, lr, momentum, nesterov):
    if not _disjoint((_span(var), _span(accum), _span(grad))):
        return _OVERLAP
    bad = _first_bad_index(indices, var.shape[0])
    if bad == _OK:
        for k in range(indices.size):
            r = indices[k]
            _momentum(var[r], accum[r], grad[k], one, lr, momentum, nesterov)
    return bad


@njit(**_OPTS)
def _sparse_rms_prop(var, ms, mom, grad, indices, one, lr, rho, momentum, epsilon):
    if not _disjoint((_span(var), _span(ms), _span(mom), _span(grad))):
        return _OVERLAP
    bad = _first_bad_index(indices, var.shape[0])
    if bad == _OK:
        for k in range(indices.size):
            r = indices[k]
            _rms_prop(var[r], ms[r], mom[r], grad[k], one, lr, rho, momentum, epsilon)
    return bad


@njit(**_OPTS)
def _sparse_centered_rms_prop(var, mg, ms, mom, grad, indices, one, lr, rho, momentum,
                              epsilon):
    if not _disjoint((_span(var), _span(mg), _span(ms), _span(mom), _span(grad))):
        return _OVERLAP
    bad = _first_bad_index(indices, var.shape[0])
    if bad == _OK:
        for k in range(indices.size):
            r = indices[k]
            _centered_rms_prop(var[r], mg[r], ms[r], mom[r], grad[k], one, lr, rho, momentum,
                               epsilon)
    return bad


@njit(**_OPTS)
def _sparse_adagrad(var, accum, grad, indices, one, lr, update_slots):
    if not _disjoint((_span(var), _span(accum), _span(grad))):
        return _OVERLAP
    bad = _first_bad_index(indices, var.shape[0])
    if bad == _OK:
        for k in range(indices.size):
            r = indices[k]
            _adagrad(var[r], accum[r], grad[k], one, lr, update_slots)
    return bad


@njit(**_OPTS)
def _scatter(var, updates, indices, mode):
    """mode 0: ``var[i] += u``, 1: ``var[i] -= u``, 2: ``var[i] = u``, rows in order, as
    ``np.add.at`` / ``np.subtract.at`` / fancy assignment (last write wins) do."""
    if not _disjoint((_span(var), _span(updates))):
        return _OVERLAP
    bad = _first_bad_index(indices, var.shape[0])
    if bad == _OK:
        n = var.shape[1]
        for k in range(indices.size):
            row = var[indices[k]]
            u = updates[k]
            if mode == 0:
                for j in range(n):
                    row[j] = row[j] + u[j]
            elif mode == 1:
                for j in range(n):
                    row[j] = row[j] - u[j]
            else:
                for j in range(n):
                    row[j] = u[j]
    return bad


# --- op tables -------------------------------------------------------------------------------
# Op type -> (entry kernel, its bool attrs with TF1's defaults, in kernel argument order).
DENSE_OPS: dict[str, tuple[Any, tuple[tuple[str, bool], ...]]] = {
    "ApplyGradientDescent": (_gradient_descent, ()),
    "ApplyMomentum": (_momentum, (("use_nesterov", False),)),
    "ApplyAdam": (_adam, (("use_nesterov", False),)),
    "ApplyRMSProp": (_rms_prop, ()),
    "ApplyCenteredRMSProp": (_centered_rms_prop, ()),
    "ApplyAdagrad": (_adagrad, (("update_slots", True),)),
}
"""Dense op type -> (kernel, bool attrs and their defaults)."""

SPARSE_OPS: dict[str, tuple[Any, tuple[tuple[str, bool], ...]]] = {
    "SparseApplyMomentum": (_sparse_momentum, (("use_nesterov", False),)),
    "SparseApplyRMSProp": (_sparse_rms_prop, ()),
    "SparseApplyCenteredRMSProp": (_sparse_centered_rms_prop, ()),
    "SparseApplyAdagrad": (_sparse_adagrad, (("update_slots", True),)),
}
"""Sparse op type -> (kernel, bool attrs and their defaults)."""

SCATTER_OPS: dict[str, int] = {"ScatterAdd": 0, "ScatterSub": 1, "ScatterUpdate": 2}
"""Scatter op type -> the ``mode`` of :func:`_scatter`."""


# --- the update callables --------------------------------------------------------------------
def _check_count(op_type: str, names: Sequence[str], values: Sequence[Any]) -> None:
    if len(values) != len(names):
        raise ValueError(f"{op_type}: takes {len(names)} inputs ({', '.join(names)}), "
                         f"got {len(values)}")


def _shape_error(op_type: str, what: str, expected: Sequence[int],
                 got: Sequence[int]) -> ValueError:
    return ValueError(f"{op_type}: var and {what} do not have the same shape: expected "
                      f"{list(expected)}, got {list(got)}")


def _scalar(op_type: str, what: str, v: Any, dtype: np.dtype) -> Any:
    """Hyperparameter ``v`` as a NumPy scalar of ``dtype``; raises if it is not a scalar."""
    # The usual case, kept cheap: it runs per hyperparameter per step. (Builtin dtypes are
    # singletons, so ``is`` suffices here; any other equal dtype takes the general path.)
    if type(v) is np.ndarray and v.dtype is dtype and v.ndim == 0:
        return v[()]
    v = np.asarray(v)
    if v.ndim != 0:
        raise ValueError(f"{op_type}: {what} is not a scalar: expected shape [], got "
                         f"{list(v.shape)}")
    return dtype.type(v)


def _contiguous(x: Any, dtype: np.dtype) -> np.ndarray:
    """``x`` as a C-contiguous array of ``dtype``, keeping its shape (even 0-d, which
    np.ascontiguousarray would turn into shape [1])."""
    if type(x) is np.ndarray and x.dtype is dtype and x.flags.c_contiguous:
        return x
    return np.asarray(x).astype(dtype, order="C", copy=False)


def _run_private(refs: list[np.ndarray], grad: np.ndarray,
                 call: Callable[[list[np.ndarray], np.ndarray], Any]) -> Any:
    """The slow path for overlapping arrays: ``call`` on a private copy of the gradient and
    of each ref, whose values are then written back in input order. When one variable is
    passed as two refs, its last ref's new value wins, as with the reference's successive
    ``ref.write`` calls."""
    copies = [np.array(r, copy=True) for r in refs]
    result = call(copies, grad.copy())
    for r, c in zip(refs, copies):
        np.copyto(r, c)
    return result


def _signature(table: dict, op_type: str, dtype: np.dtype, attrs: dict[str, Any]) -> tuple:
    """``(kernel, input names, ref count, gradient position, 1 in dtype, bool attrs)``
    of an update op, from its kernel table and registration."""
    kernel, flag_attrs = table[op_type]
    op_def = lookup(op_type)
    names = tuple(op_def.inputs)
    flags = tuple(bool(attrs.get(a, default)) for a, default in flag_attrs)
    return (kernel, names, len(op_def.ref_inputs), names.index(op_def.grad_input),
            dtype.type(1), flags)


# Elements from which a dense update is split over the native pool (pool.py): a
# memory-bound pass of ~50 us on one core, where a section costs ~7 us. Splitting
# only pays because OpenBLAS runs on the same pool (blas.use_pool): its own idle
# workers spin for 0.1 s after every product, on the core the second half needs.
SPLIT_MIN = 1 << 16


class DenseKernel:
    """A dense update's compiled kernel and how its inputs map to the kernel's arguments
    (for callers that check and convert the inputs themselves, e.g. once for several
    updates sharing their hyperparameters).

    A large update is split into a piece per core on the native pool (see
    :data:`SPLIT_MIN`): the same loop over consecutive ranges, each element computed
    exactly as in one call.

    Attributes:
      kernel: ``kernel(refs..., grad, one, scalars..., flags...) -> bool`` on 1-D
        C-contiguous arrays; False, having written nothing, when they overlap.
      names: the op's input names; n_refs: how many lead as refs; grad_pos: the
        gradient's position; scalars: the positions of the hyperparameters.
      one: 1 in the dtype; flags: the bool attrs, in kernel order.
    """

    def __init__(self, op_type: str, dtype: np.dtype, attrs: dict[str, Any]) -> None:
        (self.kernel, self.names, self.n_refs, self.grad_pos, self.one,
         self.flags) = _signature(DENSE_OPS, op_type, dtype, attrs)
        self.op_type = op_type
        self.dtype = dtype
        self.scalars = [i for i in range(len(self.names))
                        if i >= self.n_refs and i != self.grad_pos]
        self._entry: int | None = None  # the ranged native entry, once built
        self._split: bool | None = None  # whether to split (None: not decided yet)

    def scalar(self, i: int, v: Any) -> Any:
        """Input ``i`` (a hyperparameter) as a scalar of the dtype; ValueError if not one."""
        return _scalar(self.op_type, self.names[i], v, self.dtype)

    def gradient(self, v: Any) -> np.ndarray:
        """The gradient input as a C-contiguous array of the dtype."""
        return _contiguous(v, self.dtype)

    def call(self, refs: list[np.ndarray], grad: np.ndarray, scalars: list[Any]) -> bool:
        """The kernel on the refs' storage, the gradient and the converted
        hyperparameters, all checked; False, having written nothing, if arrays overlap."""
        return self.bind(refs, grad)(scalars)

    def bind(self, refs: list[np.ndarray], grad: np.ndarray) -> Callable[[list[Any]], bool]:
        """:meth:`call` on these arrays with only the hyperparameters left to give: a
        function of the converted scalars making the same call (the split's argument
        blocks built once)."""
        flat = [r.reshape(-1) for r in refs] + [grad.reshape(-1)]
        if grad.size >= SPLIT_MIN and self._splits():
            blocks, at = self._blocks(flat, [self.one] * len(self.scalars))
            numbers = blocks.view(np.float64)
            entry, n = self._entry, len(self.scalars)

            def call_split(scalars: list[Any]) -> bool:
                from graphflow.kernels.cpu import pool

                numbers[:, at + 1:at + 1 + n] = scalars
                pool.run_table(entry, blocks)
                return bool(blocks[:, -1].all())

            return call_split
        kernel, one, flags = self.kernel, self.one, self.flags

        def call(scalars: list[Any]) -> bool:
            return kernel(*flat, one, *scalars, *flags)

        return call

    def _splits(self) -> bool:
        if self._split is None:
            from graphflow.kernels.cpu import blas, entries

            # Only beside a BLAS on the pool: else its spinning workers hold the cores.
            self._split = blas.use_pool()
            if self._split:
                kind = self.dtype.name
                self._entry = entries.entry(
                    [self.dtype] * (self.n_refs + 1),
                    [kind] * (1 + len(self.scalars)) + ["bool"] * len(self.flags),
                    module=__name__, name=self.kernel.__name__, returns=True, ranged=True)
        return self._split

    def _blocks(self, arrays: list[np.ndarray], scalars: list[Any],
                parts: int | None = None) -> tuple[np.ndarray, int]:
        """The split's argument blocks, one per piece (``parts``, or one per pool
        thread), and where its numbers start."""
        from graphflow.kernels.cpu import pool

        n = arrays[0].shape[0]
        k = len(arrays)
        if parts is None:
            parts = pool.capacity()
        numbers = 1 + len(scalars) + len(self.flags)
        blocks = np.empty((parts, 2 * k + numbers + 3), np.int64)
        head = blocks[0]
        for j, a in enumerate(arrays):
            head[2 * j] = a.ctypes.data
            head[2 * j + 1] = a.shape[0]
        at = 2 * k
        head.view(np.float64)[at:at + 1 + len(scalars)] = [self.one, *scalars]
        head[at + 1 + len(scalars):at + numbers] = self.flags
        blocks[1:] = head
        # Ranges of whole cache lines, so no two pieces write to one line.
        step = (-(-n // parts) + 15) // 16 * 16
        lo = np.minimum(np.arange(parts, dtype=np.int64) * step, n)
        blocks[:, at + numbers] = lo
        blocks[:, at + numbers + 1] = np.minimum(lo + step, n)
        return blocks, at


class BoundGroup:
    """Updates of one :class:`DenseKernel` bound to their arrays and run as one section
    of the native pool: each large one split into a piece per thread, each small one a
    piece of its own, so the small ones run beside the large ones' pieces; only the
    hyperparameters are written in per run. Each piece checks its update's arrays for
    overlap, so an update with overlapping arrays writes nothing (its private copies'
    path is then the caller's); the updates themselves must be of different variables,
    with no gradient viewing a variable's storage (the caller checks).

    Args:
      dense: the updates' kernel; its native pool must be in use (``DenseKernel.bind``
        splits).
      members: per update, its refs' storage and its gradient.
    """

    def __init__(self, dense: DenseKernel, members: list[tuple[list[np.ndarray], np.ndarray]]
                 ) -> None:
        from graphflow.kernels.cpu import pool

        parts = []
        self.rows: list[tuple[int, int]] = []
        self._arrays = []  # the bound arrays, kept alive with the addresses taken
        at = 0
        for refs, grad in members:
            flat = [r.reshape(-1) for r in refs] + [grad.reshape(-1)]
            n = pool.capacity() if grad.size >= SPLIT_MIN else 1
            blocks, at = dense._blocks(flat, [dense.one] * len(dense.scalars), n)
            start = self.rows[-1][1] if self.rows else 0
            self.rows.append((start, start + n))
            parts.append(blocks)
            self._arrays.append(flat)
        self.blocks = np.concatenate(parts)
        self._numbers = self.blocks.view(np.float64)
        self._scalars = slice(at + 1, at + 1 + len(dense.scalars))
        self._grad = 2 * dense.n_refs  # the gradient's address column
        self._section = pool.Section(dense._entry, self.blocks)

    def rebind(self, k: int, grad: np.ndarray) -> None:
        """Gives update ``k`` another gradient array of the same shape and dtype."""
        flat = grad.reshape(-1)
        r0, r1 = self.rows[k]
        self.blocks[r0:r1, self._grad] = flat.ctypes.data
        self._arrays[k][-1] = flat

    def run(self, scalars: list[Any]) -> list[int]:
        """Runs every update with these converted hyperparameters; returns the indices of
        the updates that wrote nothing (overlapping arrays)."""
        self._numbers[:, self._scalars] = scalars
        self._section.run()
        done = self.blocks[:, -1]
        if done.all():
            return []
        return [k for k, (r0, r1) in enumerate(self.rows) if not done[r0:r1].all()]


def dense_kernel(node: Node) -> DenseKernel | None:
    """The :class:`DenseKernel` of a dense update node (float32/float64), else None."""
    name = getattr(node.dtypes[0], "name", None) if node.dtypes else None
    if node.type not in DENSE_OPS or name not in _FLOATS:
        return None
    return DenseKernel(node.type, np.dtype(name), dict(node.attrs))


def _dense_update(op_type: str, dtype: np.dtype, attrs: dict[str, Any],
                  ) -> Callable[[list], None]:
    dk = DenseKernel(op_type, dtype, attrs)
    names, n_refs = dk.names, dk.n_refs
    shaped = [i < n_refs or i == dk.grad_pos for i in range(len(names))]  # else a scalar

    def update(values: list) -> None:
        _check_count(op_type, names, values)
        shape = values[0].shape
        scalars = []
        # In input order, as the reference checks, so the same input is named first.
        for i, what in enumerate(names):
            v = values[i]
            if shaped[i]:
                got = v.shape if type(v) is np.ndarray else np.shape(v)
                if got != shape:
                    raise _shape_error(op_type, what, shape, got)
            else:
                scalars.append(dk.scalar(i, v))
        refs = list(values[:n_refs])
        grad = dk.gradient(values[dk.grad_pos])
        if not dk.call(refs, grad, scalars):
            _run_private(refs, grad, lambda rs, g: dk.call(rs, g, scalars))

    return update


def _indices(op_type: str, indices: Any) -> np.ndarray:
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise ValueError(f"{op_type}: indices must be int32 or int64, got {indices.dtype}")
    # Always int64: one kernel specialisation per dtype, not per index width too (the
    # copy is len(indices) integers, small next to the rows it updates).
    return _contiguous(indices, np.dtype(np.int64))


def _range_error(op_type: str, indices: np.ndarray, flat_pos: int, limit: int) -> ValueError:
    where = np.unravel_index(flat_pos, indices.shape)
    pos = ",".join(str(int(i)) for i in where)
    return ValueError(f"{op_type}: indices[{pos}] = {int(indices[where])} is not in "
                      f"[0, {limit})")


def _row_size(shape: tuple[int, ...]) -> int:
    # Not reshape(rows, -1): -1 is ambiguous when the array is empty.
    return int(np.prod(shape[1:], dtype=np.int64))


def _sparse_update(op_type: str, dtype: np.dtype, attrs: dict[str, Any],
                   ) -> Callable[[list], None]:
    kernel, names, n_refs, grad_pos, one, flags = _signature(SPARSE_OPS, op_type, dtype, attrs)
    idx_pos = names.index("indices")
    hyper = [(i, names[i]) for i in range(n_refs, len(names)) if i not in (grad_pos, idx_pos)]

    def update(values: list) -> None:
        _check_count(op_type, names, values)
        refs = list(values[:n_refs])
        var = refs[0]
        indices = _indices(op_type, values[idx_pos])
        grad_shape = np.shape(values[grad_pos])
        # The reference's order of checks: indices rank, grad shape, slot shapes.
        if indices.ndim != 1:
            raise ValueError(f"{op_type}: indices must be one-dimensional: expected rank 1, "
                             f"got shape {list(indices.shape)}")
        if var.ndim == 0:
            raise ValueError(f"{op_type}: var must be at least 1 dimensional: got shape []")
        want = indices.shape + var.shape[1:]
        if grad_shape != want:
            raise ValueError(f"{op_type}: grad must have shape [len(indices)] + var.shape[1:]"
                             f" = {list(want)}, got {list(grad_shape)}")
        for i in range(1, n_refs):
            if refs[i].shape != var.shape:
                raise _shape_error(op_type, names[i], var.shape, refs[i].shape)
        # Stricter than the sparse reference, which lets a non-scalar broadcast: the dense
        # reference and the ops' shape inference both reject it.
        scalars = [_scalar(op_type, what, values[i], dtype) for i, what in hyper]
        rows, row = var.shape[0], _row_size(var.shape)
        grad = _contiguous(values[grad_pos], dtype)

        def call(arrays: list[np.ndarray], g: np.ndarray) -> int:
            return kernel(*[a.reshape(rows, row) for a in arrays],
                          g.reshape(indices.size, row), indices, one, *scalars, *flags)

        bad = call(refs, grad)
        if bad == _OVERLAP:
            bad = _run_private(refs, grad, call)
        if bad != _OK:
            raise _range_error(op_type, indices, bad, rows)

    return update


def _scatter_update(op_type: str, dtype: np.dtype) -> Callable[[list], None]:
    mode = SCATTER_OPS[op_type]
    names = ("ref", "indices", "updates")

    def update(values: list) -> None:
        _check_count(op_type, names, values)
        var = values[0]
        indices = _indices(op_type, values[1])
        want = indices.shape + var.shape[1:]
        if np.shape(values[2]) != want:
            raise ValueError(f"{op_type}: updates must have shape indices.shape + "
                             f"ref.shape[1:] = {list(want)}, got {list(np.shape(values[2]))}")
        if var.ndim == 0:
            raise ValueError(f"{op_type}: variable must be at least 1-D: got shape []")
        rows, row = var.shape[0], _row_size(var.shape)
        flat = indices.reshape(-1)
        updates = _contiguous(values[2], dtype)

        def call(arrays: list[np.ndarray], u: np.ndarray) -> int:
            return _scatter(arrays[0].reshape(rows, row), u.reshape(flat.size, row), flat, mode)

        bad = call([var], updates)
        if bad == _OVERLAP:
            bad = _run_private([var], updates, call)
        if bad != _OK:
            raise _range_error(op_type, indices, bad, rows)

    return update


def lower_apply(node: Node) -> Callable[[list], None] | None:
    """An in-place update function for an optimizer or scatter node, or None.

    Handles ``ApplyGradientDescent``, ``ApplyMomentum``, ``ApplyAdam``,
    ``ApplyRMSProp``, ``ApplyCenteredRMSProp``, ``ApplyAdagrad`` and
    ``SparseApplyMomentum``, ``SparseApplyRMSProp``, ``SparseApplyCenteredRMSProp``,
    ``SparseApplyAdagrad`` for float32 and float64 variables, and ``ScatterAdd``,
    ``ScatterSub``, ``ScatterUpdate`` for float32, float64, int32 and int64 variables.
    The results equal the op's reference evaluation bit for bit.

    Args:
      node: the IR node; reads ``node.type``, ``node.attrs`` (``use_nesterov``,
        ``update_slots``) and ``node.dtypes[0]`` (the variable's dtype).

    Returns:
      None for other op types and dtypes (the caller keeps the reference
      evaluation), else ``update(values)``. ``values`` are the op's inputs in
      input order: the ref inputs (variable, then slots) as the variables' C-contiguous
      storage arrays of the variable's dtype, which ``update`` mutates in place; the
      others as arrays or 0-d arrays (hyperparameters, gradient, indices). ``update``
      returns None; the op's output is the variable's (mutated) storage array.

    Raises:
      ``update`` raises ValueError, naming the op type and the expected and actual
      shapes, where the reference raises InvalidArgumentError: a slot or gradient whose
      shape differs from the variable's, a non-scalar hyperparameter, non-1-D indices or
      a sparse gradient not of shape ``[len(indices)] + var.shape[1:]``, and an index
      outside ``[0, var.shape[0])``. Nothing is written when it raises.
    """
    if not node.dtypes:
        return None
    dtype_name = getattr(node.dtypes[0], "name", None)
    op_type = node.type
    if op_type in SCATTER_OPS:
        if dtype_name not in _SCATTER_DTYPES:
            return None
        return _scatter_update(op_type, np.dtype(dtype_name))
    if dtype_name not in _FLOATS:
        return None
    attrs = dict(node.attrs)
    if op_type in DENSE_OPS:
        return _dense_update(op_type, np.dtype(dtype_name), attrs)
    if op_type in SPARSE_OPS:
        return _sparse_update(op_type, np.dtype(dtype_name), attrs)
    return None
