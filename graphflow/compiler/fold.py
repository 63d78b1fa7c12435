"""Constant folding: evaluate at compile time what depends only on constants.

Values come from the ops' own NumPy reference functions, so a folded constant
is bit-for-bit what the run would have computed. Never folded: stateful or
random ops, sources (a Placeholder has no inputs but must be fed), ops with
control inputs, ops whose evaluation fails (the error is left to the run,
which names the op), and results larger than ``fold_max_bytes``.

``Shape``, ``Size`` and ``Rank`` of a tensor whose static shape is fully known
fold too (shape materialisation, as TF's Grappler does). As there, the new
constant keeps a control input on the tensor's producer, and constants folded
from it inherit it: the producer still runs, so an error it must report (an
unfed placeholder, an uninitialized variable, a division by zero) is still
raised, while everything computed from the shape no longer waits for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphflow.compiler.ir import Node, Value
from graphflow.compiler.options import CompilerOptions
from graphflow.compiler.pass_manager import Pass
from graphflow.compiler.rewrite import Rewriter
from graphflow.framework import errors
from graphflow.framework.op_def import SOURCE
from graphflow.framework.tensor_shape import TensorShape

_SHAPE_OPS = ("Shape", "Size", "Rank")


class _NoState:
    """The run context folding passes to reference functions: pure ops never use it."""

    variables: dict[str, Any] = {}

    def rng(self, op: Any) -> Any:
        raise RuntimeError("constant folding evaluated a random op")


_NO_STATE = _NoState()


def const_value(v: Value) -> np.ndarray | None:
    """The array a value holds if it is a Const node's output, else None."""
    n = v[0]
    return n.attrs["value"] if n.type == "Const" else None


def make_const(rw: Rewriter, arr: np.ndarray, like: Node, index: int,
               control: list[Node] | None = None) -> Value:
    """Places a Const node holding ``arr`` (made read-only), standing for ``like:index``."""
    arr = np.array(arr, dtype=like.dtypes[index].np, copy=True)
    arr.flags.writeable = False
    v = rw.make1("Const", [], {"value": arr, "dtype": like.dtypes[index]}, like=like,
                 dtypes=[like.dtypes[index]], shapes=[TensorShape(arr.shape)],
                 name=f"{like.name}/folded" + (f"_{index}" if index else ""))
    if control:
        v[0].control_inputs = control
    return v


def _fold_shape(n: Node) -> tuple[np.ndarray, list[Node]] | None:
    """``(value, control inputs)`` of a Shape/Size/Rank known from static shapes."""
    p, i = n.inputs[0]
    if p.produces_ref:
        return None  # a variable handle: only the run can say if it is initialized
    shape = p.shapes[i]
    control = [] if p.type in ("Feed", "Const") else [p]
    if n.type == "Rank":
        if shape.ndims is None:
            return None
        return np.array(shape.ndims, np.int32), control
    if not shape.is_fully_defined():
        return None
    if n.type == "Shape":
        return np.array(shape.values, dtype=n.dtypes[0].np), control
    return np.array(shape.num_elements(), dtype=n.dtypes[0].np), control


def _evaluate(n: Node) -> list[np.ndarray] | None:
    args = [n_.attrs["value"] for n_, _ in n.inputs]
    try:
        with np.errstate(all="ignore"):
            result = n.op_def.reference(n.ref_op(), args, _NO_STATE)
    except (errors.OpError, ValueError, TypeError, IndexError, ArithmeticError,
            MemoryError, RuntimeError, NotImplementedError):
        return None  # the run raises it, naming the op and its line
    results = [result] if n.num_outputs == 1 else list(result)
    out = []
    for v, dt, shape in zip(results, n.dtypes, n.shapes):
        if not isinstance(v, (np.ndarray, np.generic, int, float, bool)):
            return None
        v = np.asarray(v)
        if v.dtype != dt.np:
            v = v.astype(dt.np)
        if not shape.is_compatible_with(v.shape):
            return None
        out.append(v)
    return out


class ConstantFolding(Pass):
    """Replaces pure ops on constants by Const nodes of their values."""

    name = "constant_folding"

    def run(self, program, options: CompilerOptions):
        cap = options.fold_max_bytes
        folded = 0

        def visit(rw: Rewriter, n: Node) -> list[Value] | None:
            nonlocal folded
            if n.control_inputs or n.num_outputs == 0 or n.kind == SOURCE:
                return None
            if n.type in _SHAPE_OPS:
                found = _fold_shape(n)
                if found is None:
                    return None
                values, control = [found[0]], found[1]
            else:
                if not n.inputs or any(p.type != "Const" for p, _ in n.inputs):
                    return None
                control = list(dict.fromkeys(c for p, _ in n.inputs for c in p.control_inputs))
                known = [s.num_elements() for s in n.shapes]
                if any(k is not None and k * d.np.itemsize > cap
                       for k, d in zip(known, n.dtypes)):
                    return None
                values = _evaluate(n)
                if values is None or sum(v.nbytes for v in values) > cap:
                    return None
            folded += 1
            rw.fired("folded")
            return [make_const(rw, v, n, i, control) for i, v in enumerate(values)]

        rw = Rewriter(program, visit)
        removed = rw.run()
        return {"folded": folded, "removed": removed}
