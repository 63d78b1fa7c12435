"""Numerical stabilisation: rewrite forms that overflow or cancel into stable ops.

These rules change results, on purpose: they replace a naive formula with
the op computing the same mathematical function without its overflow or
cancellation (``log(softmax(1000 * x))`` is -inf naively, finite after).

* ``log(softmax(x))`` -> ``log_softmax(x)``
* ``log(1 + x)``, ``log(x + 1)`` -> ``log1p(x)``
* ``exp(x) - 1`` -> ``expm1(x)``
* ``log(sigmoid(x))`` -> ``-softplus(-x)``
* ``-reduce_sum(labels * log_softmax(logits), last axis)`` (also with the minus
  inside the sum or on either factor) -> the loss output of
  ``SoftmaxCrossEntropyWithLogits(logits, labels)``. Combined with the first
  rule this catches TF1's classic ``-reduce_sum(y_ * log(softmax(y)), 1)``.

A rule fires only for float dtypes and when a constant operand cannot
broadcast the other operand to a larger shape.
"""

from __future__ import annotations

from graphflow.compiler.ir import Node, Value
from graphflow.compiler.options import CompilerOptions
from graphflow.compiler.pass_manager import Pass
from graphflow.compiler.rewrite import Rewriter, run_rules
from graphflow.compiler.simplify import is_const_filled, keeps_shape


def _producer(v: Value, op_type: str) -> Node | None:
    """The node producing ``v`` if it is an ``op_type`` without control inputs."""
    n = v[0]
    if n.type == op_type and not n.control_inputs:
        return n
    return None


def log_softmax(rw: Rewriter, n: Node) -> list[Value] | None:
    if n.type != "Log":
        return None
    sm = _producer(n.inputs[0], "Softmax")
    if sm is None:
        return None
    return [rw.make1("LogSoftmax", [sm.inputs[0]], dict(sm.attrs), like=n)]


def log1p(rw: Rewriter, n: Node) -> list[Value] | None:
    if n.type != "Log":
        return None
    add = _producer(n.inputs[0], "Add")
    if add is None:
        return None
    a, b = add.inputs
    for one, x in ((a, b), (b, a)):
        if is_const_filled(one, 1) and keeps_shape(x, one):
            return [rw.make1("Log1p", [x], like=n)]
    return None


def expm1(rw: Rewriter, n: Node) -> list[Value] | None:
    if n.type != "Sub" or not n.dtypes[0].is_floating:
        return None
    e, one = n.inputs
    exp = _producer(e, "Exp")
    if exp is None or not is_const_filled(one, 1) or not keeps_shape(e, one):
        return None
    return [rw.make1("Expm1", [exp.inputs[0]], like=n)]


def log_sigmoid(rw: Rewriter, n: Node) -> list[Value] | None:
    if n.type != "Log":
        return None
    sig = _producer(n.inputs[0], "Sigmoid")
    if sig is None:
        return None
    neg_x = rw.make1("Neg", [sig.inputs[0]], like=n)
    sp = rw.make1("Softplus", [neg_x], like=n)
    return [rw.make1("Neg", [sp], like=n)]


def _xent_terms(v: Value) -> tuple[Value, Value, bool] | None:
    """``(labels, logits, negated)`` if ``v`` is ``±labels * log_softmax(logits)``."""
    sign = False
    neg = _producer(v, "Neg")
    if neg is not None:
        sign, v = True, neg.inputs[0]
    mul = _producer(v, "Mul")
    if mul is None:
        return None
    for ls_v, labels in (mul.inputs, mul.inputs[::-1]):
        s = sign
        neg = _producer(ls_v, "Neg")
        if neg is not None:
            s, ls_v = not s, neg.inputs[0]
        ls = _producer(ls_v, "LogSoftmax")
        if ls is None:
            continue
        neg = _producer(labels, "Neg")
        if neg is not None:
            s, labels = not s, neg.inputs[0]
        logits = ls.inputs[0]
        lshape = logits[0].shapes[logits[1]]
        yshape = labels[0].shapes[labels[1]]
        rank = lshape.ndims
        if rank is None or rank < 1 or ls.attrs.get("axis") not in (rank - 1, -1):
            continue
        # Softmax over logits' last dim must be the summed dim: logits must not be the
        # operand that broadcasts along it.
        c, cy = lshape.values[-1], yshape.values[-1] if yshape.ndims else None
        if c is None or cy is None or c != cy:
            continue
        return labels, logits, s
    return None


def softmax_cross_entropy(rw: Rewriter, n: Node) -> list[Value] | None:
    outer_neg = False
    s = n
    if n.type == "Neg":
        s = _producer(n.inputs[0], "Sum")
        if s is None:
            return None
        outer_neg = True
    elif n.type != "Sum":
        return None
    if s.attrs.get("keep_dims") or not n.dtypes[0].is_floating:
        return None
    terms = _xent_terms(s.inputs[0])
    if terms is None:
        return None
    labels, logits, negated = terms
    prod = s.inputs[0]
    rank = prod[0].shapes[prod[1]].ndims
    axis = s.attrs.get("axis")
    if rank is None or (axis is None and rank != 1) or \
            (axis is not None and tuple(axis) != (rank - 1,)):
        return None
    full = prod[0].shapes[prod[1]]
    loss, _ = rw.make("SoftmaxCrossEntropyWithLogits", [logits, labels], {}, like=n,
                      dtypes=[n.dtypes[0]] * 2, shapes=[full[:-1], full],
                      name=f"{n.name}/SoftmaxCrossEntropyWithLogits")
    # sum(labels * log_p) is minus the cross-entropy.
    if outer_neg != negated:
        return [loss]
    neg = rw.make1("Neg", [loss], like=n)
    _made_negs(rw).add(neg[0].id)
    return [neg]


def _made_negs(rw: Rewriter) -> set[int]:
    made = getattr(rw, "stabilize_negs", None)
    if made is None:
        made = rw.stabilize_negs = set()
    return made


def cancel_own_neg(rw: Rewriter, n: Node) -> list[Value] | None:
    """``-(-x)`` where this pass made the inner minus (a loss under the user's minus)."""
    if n.type == "Neg" and n.inputs[0][0].id in _made_negs(rw):
        return [n.inputs[0][0].inputs[0]]
    return None


# (name, op types the rule looks at, rule), tried in this order.
RULES = [
    ("cancel_own_neg", ("Neg",), cancel_own_neg),
    ("softmax_cross_entropy", ("Sum", "Neg"), softmax_cross_entropy),
    ("log_softmax", ("Log",), log_softmax),
    ("log1p", ("Log",), log1p),
    ("expm1", ("Sub",), expm1),
    ("log_sigmoid", ("Log",), log_sigmoid),
]


class NumericalStabilization(Pass):
    """Applies the rules above (see the module docstring)."""

    name = "stabilize"

    def run(self, program, options: CompilerOptions):
        return run_rules(program, RULES)
