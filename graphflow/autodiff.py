"""Symbolic reverse-mode differentiation: ``gradients`` adds gradient ops to the graph.

Each op's rule lives in its registration (``OpDef.grad``); this module walks the
graph backwards from ``ys``, calls the rules and sums the partial gradients of
tensors used more than once. Gradients are ordinary ops, so they can be
differentiated again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from graphflow.framework import errors
from graphflow.framework.graph import Operation, Tensor, convert_to_tensor
from graphflow.framework.indexed_slices import IndexedSlices, concat_slices, to_dense
from graphflow.ops.building import graph_of


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _x_tensor(x: Any) -> Tensor:
    # A Variable is differentiated at its VariableV2 output, which its reads consume.
    ref = getattr(x, "_ref", None)
    if ref is not None:
        return ref()
    if not isinstance(x, Tensor):
        raise TypeError(f"gradients: xs must be Tensors or Variables, got {type(x).__name__}")
    return x


def gradients(ys: Any, xs: Any, grad_ys: Any = None, name: str = "gradients",
              colocate_gradients_with_ops: bool = False, gate_gradients: bool = False,
              aggregation_method: Any = None, stop_gradients: Any = None,
              unconnected_gradients: str = "none") -> list[Tensor | IndexedSlices | None]:
    """Symbolic gradients of ``sum(ys)`` with respect to each of ``xs`` (TF1's ``tf.gradients``).

    Args:
      ys: a Tensor or list of Tensors to differentiate.
      xs: a Tensor, Variable or list of them.
      grad_ys: optional list (one per y) of initial gradients; default ones.
      name: scope for the gradient ops.
      colocate_gradients_with_ops, gate_gradients, aggregation_method:
        accepted for TF1 compatibility.
      stop_gradients: tensors through which no gradient flows.
      unconnected_gradients: ``"none"`` gives None for an x that ys do not
        depend on, ``"zero"`` gives zeros.

    Returns:
      A list with one Tensor (or None) per x. As in TF1, an x reached only
      through ``gather`` along axis 0 (``embedding_lookup``), possibly via
      Identity reads, gets an :class:`~graphflow.IndexedSlices`.

    Raises:
      LookupError: if a float path goes through an op with no gradient rule.
      ValueError: for mismatched ``grad_ys`` or a bad ``unconnected_gradients``.
    """
    ys = [convert_to_tensor(y) for y in _as_list(ys)]
    xs = [_x_tensor(x) for x in _as_list(xs)]
    if unconnected_gradients not in ("none", "zero"):
        raise ValueError(f"unconnected_gradients must be 'none' or 'zero', got "
                         f"{unconnected_gradients!r}")
    if grad_ys is None:
        grad_ys = [None] * len(ys)
    else:
        grad_ys = _as_list(grad_ys)
        if len(grad_ys) != len(ys):
            raise ValueError(f"Passed {len(grad_ys)} grad_ys for {len(ys)} ys")
    stops = {_x_tensor(s).op for s in _as_list(stop_gradients)} if stop_gradients else set()
    g = graph_of(ys + xs)
    from graphflow.ops.array_ops import ones_like, zeros_like
    from graphflow.ops.math_ops import add_n

    with g.as_default(), g.name_scope(name):
        between = _ops_between(ys, xs)
        pending: dict[Tensor, list[Tensor]] = {}
        for i, (y, gy) in enumerate(zip(ys, grad_ys)):
            if gy is None:
                if not y.dtype.is_floating:
                    continue
                gy = ones_like(y, name=f"grad_ys_{i}")
            else:
                gy = convert_to_tensor(gy, dtype=y.dtype, name=f"grad_ys_{i}")
                if not y.shape.is_compatible_with(gy.shape):
                    raise ValueError(f"grad_ys[{i}] has shape {gy.shape}, incompatible with "
                                     f"{y.name} of shape {y.shape}")
            pending.setdefault(y, []).append(gy)
        x_set = set(xs)
        # Consumers are created after their inputs, so decreasing creation order is a
        # reverse topological order of the data edges.
        for op in sorted(between, key=lambda o: o._id, reverse=True):
            outs = op._outputs
            dys = [_aggregate(pending.pop(t, None), add_n) if t not in x_set else
                   _aggregate(pending.get(t), add_n) for t in outs]
            if all(d is None for d in dys) or op in stops:
                continue
            if not op._inputs:
                continue
            opdef = op._op_def
            if opdef.not_differentiable:
                continue
            if opdef.grad is None:
                if any(t.dtype.is_floating for t in op._inputs):
                    raise LookupError(f"No gradient defined for operation '{op.name}' (op "
                                      f"type: {op.type})\n{errors.describe_op(op)}")
                continue
            dys = [d if d is not None else (zeros_like(t) if t.dtype.is_floating else None)
                   for t, d in zip(outs, dys)]
            with g.name_scope(f"{op.name}_grad"):
                if op.type not in _TAKES_INDEXED_SLICES:
                    dys = [to_dense(d) if isinstance(d, IndexedSlices) else d for d in dys]
                in_grads = list(opdef.grad(op, *dys))
            if len(in_grads) != len(op._inputs):
                raise errors.InternalError(
                    None, op, f"gradient of {op.type} returned {len(in_grads)} values for "
                              f"{len(op._inputs)} inputs")
            for t, gi in zip(op._inputs, in_grads):
                if gi is None or not t.dtype.is_floating:
                    continue
                if gi.dtype is not t.dtype:
                    raise errors.InternalError(
                        None, op, f"gradient of {op.type} for {t.name} has dtype "
                                  f"{gi.dtype.name}, expected {t.dtype.name}")
                pending.setdefault(t, []).append(gi)
        result: list[Tensor | IndexedSlices | None] = []
        for x in xs:
            gx = _aggregate(pending.get(x), add_n)
            if gx is None and unconnected_gradients == "zero":
                gx = zeros_like(x) if x.op.type != "VariableV2" else zeros_like(
                    x.op.outputs[0])
            result.append(gx)
        return result


# Ops whose gradient rule forwards an IndexedSlices as it is (TF1's _IdGrad returns its dy),
# so a sparse gradient reaches a variable through its read; every other rule gets dense dys.
_TAKES_INDEXED_SLICES = frozenset({"Identity"})


def _aggregate(parts: list[Any] | None, add_n: Any) -> Any:
    """Sums partial gradients; sparse ones concatenate, mixed ones become dense (TF1's rule)."""
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(p, IndexedSlices) for p in parts):
        return concat_slices(parts)
    return add_n([to_dense(p) if isinstance(p, IndexedSlices) else p for p in parts])


def _ops_between(ys: Sequence[Tensor], xs: Sequence[Tensor]) -> set[Operation]:
    """Ops on a data path from some x to some y (TF1's ``_PendingCount`` reachability)."""
    forward: set[Operation] = set()
    stack = [c for x in xs for c in x.consumers()]
    x_ops = {x.op for x in xs}
    while stack:
        op = stack.pop()
        if op in forward:
            continue
        forward.add(op)
        for t in op._outputs:
            stack.extend(t.consumers())
    between: set[Operation] = set()
    stack = [y.op for y in ys]
    while stack:
        op = stack.pop()
        if op in between or (op not in forward and op not in x_ops):
            continue
        between.add(op)
        stack.extend(t.op for t in op._inputs)
    # x ops themselves only matter as sources.
    return {op for op in between if op in forward}


def unbroadcast(dy: Tensor, x: Tensor, *others: Tensor) -> Tensor:
    """Sums ``dy`` (of the broadcast shape of ``x`` and ``others``) down to ``x``'s shape.

    Static shapes decide which dims were broadcast where they can: a dim of ``x``
    that is unknown is left alone when every other operand has 1 there (or lacks
    the dim); otherwise only the run-time ``SumToShape`` op can tell.
    """
    from graphflow.ops.array_ops import reshape, shape
    from graphflow.ops.broadcast_ops import sum_to_shape
    from graphflow.ops.math_ops import reduce_sum

    xd, yd = x.shape.values, dy.shape.values
    ods = [o.shape.values for o in others]
    if xd is None or yd is None or any(od is None for od in ods):
        return sum_to_shape(dy, shape(x))
    lead = len(yd) - len(xd)
    axes = list(range(lead))
    for i, d in enumerate(xd):
        j = lead + i
        if d == 1:
            if yd[j] != 1:
                axes.append(j)
        elif d is None:
            for od in ods:
                k = j - (len(yd) - len(od))
                if k >= 0 and od[k] != 1:
                    return sum_to_shape(dy, shape(x))
    if not axes:
        return dy
    out = reduce_sum(dy, axis=axes, keepdims=True)
    if lead:
        out = reshape(out, list(xd) if x.shape.is_fully_defined() else shape(x))
    return out
