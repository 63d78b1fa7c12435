"""Algebraic simplification that is exact in IEEE arithmetic.

Every rule here leaves every result bit-identical, NaN, infinities and the
sign of zero included; rules that are only "mathematically" true stay out:

* ``x * 1``, ``1 * x``, ``x / 1`` -> ``x``: exact for every x.
* ``x + (-0.0)``, ``(-0.0) + x``, ``x - (+0.0)`` -> ``x``: exact. ``x + 0.0`` is
  *not* (``-0.0 + 0.0 = +0.0``), so it stays; for integers any zero goes.
* ``x + (-y)`` -> ``x - y`` and ``x - (-y)`` -> ``x + y``: IEEE defines
  subtraction as adding the negation.
* ``-(-x)`` -> ``x``; ``transpose(transpose(x, p), q)`` -> one transpose (none
  if the permutations cancel); ``reshape(reshape(x, a), b)`` -> ``reshape(x, b)``;
  a reshape or transpose that changes nothing -> ``x``; a reshape dropping exactly
  the dims a ``keep_dims`` reduction kept (a bias gradient: ``reshape(sum(g, [0],
  keep_dims=True), shape(b))``) -> the reduction without ``keep_dims``, when
  nothing else reads it.
* ``cast(cast(x, A), B)`` -> ``cast(x, B)`` when every value of x's dtype is
  exactly representable in A (the second cast then sees the same number);
  ``cast(x, dtype of x)`` -> ``x``.
* ``op(..., fill(shape(x), v), ..., x, ...)`` -> ``op(..., v, ..., x, ...)`` for an
  elementwise op: the filled operand has x's shape, so the op's own broadcasting
  of the scalar gives the same numbers (``where(c, dy, zeros_like(dy))`` in
  gradients stops materialising a tensor of zeros).
* ``where(r > 0, max_pool_grad(r, m, g), 0)`` -> ``_MaxPoolReluGrad(r, m, g)``: relu's
  gradient (``r`` its output) after max pooling's, as one op that routes a window's
  gradient only to a maximum above zero. The select keeps exactly the elements
  where ``r > 0``, and every element the pool gradient is not zero at is a
  window's maximum, so the two agree element for element (a NaN maximum is not
  above zero in either; the select's zero must be +0.0, the pool gradient's own).
* ``identity(x)``, ``stop_gradient(x)`` -> ``x`` (forward values are equal),
  except an identity of a variable: that is a *read*, and consumers would
  otherwise read later, possibly after a write.

A constant operand must never broadcast ``x`` to a larger shape: its every
dimension must be 1 and its rank at most x's.
"""

from __future__ import annotations

import numpy as np

from graphflow.compiler.fold import const_value
from graphflow.compiler.ir import Node, Value
from graphflow.compiler.options import CompilerOptions
from graphflow.compiler.pass_manager import Pass
from graphflow.compiler.rewrite import Rewriter, run_rules
from graphflow.framework import dtypes as _dt
from graphflow.framework import op_def as _op_def


def is_const_filled(v: Value, value: float, negative_zero: bool | None = None) -> bool:
    """True if ``v`` is a constant whose every element equals ``value``.

    Args:
      negative_zero: for float zero, require the sign bit set (True) or clear
        (False); None accepts either.
    """
    arr = const_value(v)
    if arr is None or arr.size == 0 or v[0].control_inputs:
        return False  # (a folded shape's control input keeps its producer running)
    if not np.all(arr == value):
        return False
    if negative_zero is not None and arr.dtype.kind == "f":
        return bool(np.all(np.signbit(arr) == negative_zero))
    return True


def keeps_shape(x: Value, c: Value) -> bool:
    """True if broadcasting ``x`` with constant ``c`` always gives x's shape."""
    cs = c[0].shapes[c[1]]
    xs = x[0].shapes[x[1]]
    if cs.ndims is None or xs.ndims is None or cs.ndims > xs.ndims:
        return False
    return all(d == 1 for d in cs.values)


def _binary_identity(n: Node, op: str, value: float, neg_zero: bool | None,
                     right_only: bool) -> Value | None:
    if n.type != op:
        return None
    a, b = n.inputs
    if is_const_filled(b, value, neg_zero) and keeps_shape(a, b):
        return a
    if not right_only and is_const_filled(a, value, neg_zero) and keeps_shape(b, a):
        return b
    return None


def mul_one(rw: Rewriter, n: Node) -> list[Value] | None:
    r = _binary_identity(n, "Mul", 1, None, right_only=False)
    return [r] if r is not None else None


def div_one(rw: Rewriter, n: Node) -> list[Value] | None:
    if n.type == "RealDiv" or (n.type == "Div" and n.dtypes[0].is_floating):
        a, b = n.inputs
        if is_const_filled(b, 1) and keeps_shape(a, b):
            return [a]
    if n.type in ("Div", "FloorDiv", "TruncateDiv") and n.dtypes[0].is_integer:
        a, b = n.inputs
        if is_const_filled(b, 1) and keeps_shape(a, b):
            return [a]
    return None


def add_zero(rw: Rewriter, n: Node) -> list[Value] | None:
    if n.type not in ("Add", "Sub"):
        return None
    floating = n.dtypes[0].is_floating
    if n.type == "Add":
        # x + (-0.0) == x for every x; x + (+0.0) turns -0.0 into +0.0.
        r = _binary_identity(n, "Add", 0, True if floating else None, right_only=False)
    else:
        # x - (+0.0) == x + (-0.0) == x; x - (-0.0) == x + 0.0 is not exact.
        r = _binary_identity(n, "Sub", 0, False if floating else None, right_only=True)
    return [r] if r is not None else None


def add_neg(rw: Rewriter, n: Node) -> list[Value] | None:
    if n.type not in ("Add", "Sub"):
        return None
    a, b = n.inputs
    if b[0].type == "Neg" and b[0].control_inputs == []:
        y = b[0].inputs[0]
        return [rw.make1("Sub" if n.type == "Add" else "Add", [a, y], like=n)]
    if n.type == "Add" and a[0].type == "Neg" and a[0].control_inputs == []:
        y = a[0].inputs[0]
        return [rw.make1("Sub", [b, y], like=n)]
    return None


def double_neg(rw: Rewriter, n: Node) -> list[Value] | None:
    if n.type == "Neg":
        p = n.inputs[0][0]
        if p.type == "Neg" and not p.control_inputs:
            return [p.inputs[0]]
    return None


def _shape_of(v: Value) -> tuple | None:
    s = v[0].shapes[v[1]]
    return s.values if s.is_fully_defined() else None


def transpose_chain(rw: Rewriter, n: Node) -> list[Value] | None:
    if n.type != "Transpose":
        return None
    perm = tuple(n.attrs["perm"])
    if perm == tuple(range(len(perm))):
        return [n.inputs[0]]
    p = n.inputs[0][0]
    if p.type == "Transpose" and not p.control_inputs:
        inner = tuple(p.attrs["perm"])
        combined = tuple(inner[i] for i in perm)
        x = p.inputs[0]
        if combined == tuple(range(len(combined))):
            return [x]
        return [rw.make1("Transpose", [x], {**n.attrs, "perm": combined}, like=n)]
    return None


def reshape_chain(rw: Rewriter, n: Node) -> list[Value] | None:
    if n.type != "Reshape":
        return None
    x, s = n.inputs
    out = n.shapes[0]
    if out.is_fully_defined() and _shape_of(x) == out.values:
        return [x]
    p = x[0]
    if p.type == "Reshape" and not p.control_inputs:
        return [rw.make1("Reshape", [p.inputs[0], s], dict(n.attrs), like=n)]
    if (p.type in _KEEP_DIMS_REDUCTIONS and p.attrs.get("keep_dims") and not p.control_inputs
            and out.is_fully_defined() and rw.use_count(p) == 1):
        src = p.inputs[0]
        dims = src[0].shapes[src[1]]
        axes = p.attrs.get("axis")
        if dims.ndims is None or (axes is not None and not all(
                isinstance(a, (int, np.integer)) and -dims.ndims <= a < dims.ndims for a in axes)):
            return None
        gone = set(range(dims.ndims)) if axes is None else {int(a) % dims.ndims for a in axes}
        kept = tuple(d for k, d in enumerate(dims.values) if k not in gone)
        if kept == out.values:
            return [rw.make1(p.type, [src], {**p.attrs, "keep_dims": False}, like=n)]
    return None


# Reductions whose result without keep_dims is the keep_dims one with those dims dropped.
_KEEP_DIMS_REDUCTIONS = frozenset({"Sum", "Mean", "Prod", "Max", "Min", "Any", "All"})


# dtype -> dtypes that hold each of its values exactly.
_EXACT_IN: dict[_dt.DType, tuple[_dt.DType, ...]] = {
    _dt.bool_: _dt.ALL,
    _dt.uint8: (_dt.uint8, _dt.int16, _dt.int32, _dt.int64, _dt.float16, _dt.float32,
                _dt.float64),
    _dt.int8: (_dt.int8, _dt.int16, _dt.int32, _dt.int64, _dt.float16, _dt.float32,
               _dt.float64),
    _dt.int16: (_dt.int16, _dt.int32, _dt.int64, _dt.float32, _dt.float64),
    _dt.int32: (_dt.int32, _dt.int64, _dt.float64),
    _dt.int64: (_dt.int64,),
    _dt.float16: (_dt.float16, _dt.float32, _dt.float64),
    _dt.float32: (_dt.float32, _dt.float64),
    _dt.float64: (_dt.float64,),
}


def lossless(src: _dt.DType, dst: _dt.DType) -> bool:
    """True if casting src to dst keeps every value exactly."""
    return dst in _EXACT_IN.get(src, ())


def cast_chain(rw: Rewriter, n: Node) -> list[Value] | None:
    if n.type != "Cast":
        return None
    x = n.inputs[0]
    src = x[0].dtypes[x[1]]
    dst = n.dtypes[0]
    if src is dst:
        return [x]
    p = x[0]
    if p.type == "Cast" and not p.control_inputs:
        y = p.inputs[0]
        y_dt = y[0].dtypes[y[1]]
        if lossless(y_dt, src):
            if y_dt is dst:
                return [y]
            return [rw.make1("Cast", [y], {**n.attrs, "SrcT": y_dt}, like=n)]
    return None


def identity(rw: Rewriter, n: Node) -> list[Value] | None:
    if n.type not in ("Identity", "StopGradient", "PlaceholderWithDefault"):
        return None
    if n.control_inputs:
        return None  # its consumers wait for the control inputs through it
    x = n.inputs[0]
    if x[0].produces_ref:
        return None  # a variable read: consumers must see the value as of now
    return [x]


def _fill_of_shape_of(v: Value, others: list[Value]) -> Value | None:
    """The fill value when ``v`` is ``Fill(dims, value)`` and ``dims`` is provably the
    shape of one of ``others`` (``Shape`` of it, or a constant equal to its static
    shape); else None."""
    f = v[0]
    if f.type != "Fill" or f.control_inputs:
        return None
    dims, value = f.inputs
    if dims[0].type == "Shape" and not dims[0].control_inputs:
        t = dims[0].inputs[0]
        if any(o[0] is t[0] and o[1] == t[1] for o in others):
            return value
        return None
    want = const_value(dims)
    if want is None or dims[0].control_inputs:
        return None
    for o in others:
        shape = o[0].shapes[o[1]].values
        if shape is not None and None not in shape and list(shape) == want.tolist():
            return value
    return None


def fill_operand(rw: Rewriter, n: Node) -> list[Value] | None:
    # where(c, dy, zeros_like(dy)) and friends: an operand filled to the shape of another
    # operand is its scalar value, broadcast by the op itself (the same numbers, no array).
    od = n.op_def
    if (od.scalar is None or od.stateful or od.kind not in (_op_def.ELEMENTWISE,
                                                           _op_def.BROADCAST)
            or len(n.inputs) < 2):
        return None
    for k, v in enumerate(n.inputs):
        value = _fill_of_shape_of(v, [o for j, o in enumerate(n.inputs) if j != k])
        if value is not None:
            ins = list(n.inputs)
            ins[k] = value
            return [rw.make1(n.type, ins, dict(n.attrs), like=n)]
    return None


def relu_max_pool_grad(rw: Rewriter, n: Node) -> list[Value] | None:
    if n.type != "SelectV2" or not n.dtypes[0].is_floating:
        return None
    cond, picked, zero = n.inputs
    mpg, gt = picked[0], cond[0]
    if (mpg.type != "MaxPoolGrad" or mpg.control_inputs or gt.type != "Greater"
            or gt.control_inputs or not is_const_filled(zero, 0, negative_zero=False)
            or not keeps_shape(picked, zero)):
        return None
    r, thresh = gt.inputs
    x = mpg.inputs[0]
    if (r[0] is not x[0] or r[1] != x[1] or not is_const_filled(thresh, 0)
            or not keeps_shape(r, thresh)):
        return None
    return [rw.make1("_MaxPoolReluGrad", list(mpg.inputs), dict(mpg.attrs), like=n)]


# (name, op types the rule looks at, rule), tried in this order.
RULES = [
    ("identity", ("Identity", "StopGradient", "PlaceholderWithDefault"), identity),
    ("mul_one", ("Mul",), mul_one),
    ("div_one", ("RealDiv", "Div", "FloorDiv", "TruncateDiv"), div_one),
    ("add_zero", ("Add", "Sub"), add_zero),
    ("add_neg", ("Add", "Sub"), add_neg),
    ("double_neg", ("Neg",), double_neg),
    ("transpose_chain", ("Transpose",), transpose_chain),
    ("reshape_chain", ("Reshape",), reshape_chain),
    ("cast_chain", ("Cast",), cast_chain),
    ("relu_max_pool_grad", ("SelectV2",), relu_max_pool_grad),
    ("fill_operand", None, fill_operand),
]


class AlgebraicSimplification(Pass):
    """Applies the exact rules above (see the module docstring)."""

    name = "simplify"

    def run(self, program, options: CompilerOptions):
        return run_rules(program, RULES)
