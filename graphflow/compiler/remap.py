"""Remapping: ops that read the same input become one op that reads it once.

* ``Conv2DBackpropFilter(x, sizes, dy)`` and ``Sum(dy, axis=(0, 1, 2))`` or
  ``BiasAddGrad(dy)`` (the gradient of a bias added to the convolution's NHWC
  output) -> the two outputs of
  ``_Conv2DBackpropFilterWithBias(x, sizes, dy)``, as TensorFlow's oneDNN build does
  (``_MklConv2DBackpropFilterWithBias``). The reference computes both as before, bit
  for bit; a backend's kernel sums the bias gradient in its own order.

* ``MaxPool(r)`` and its gradient ``MaxPoolGrad(r, MaxPool(r), g)`` (or
  ``_MaxPoolReluGrad``) -> ``_MaxPoolWithRoute(r)``, which also records each
  window's winning tap (a byte per output), and ``_MaxPoolGradRoute(route, g)``:
  the gradient no longer reads ``r`` (4x the pooled size at 2x2 windows) again.

* ``Mean`` of a softmax cross entropy's loss and the gradient the mean's and the
  cross entropy's gradient functions build for the logits (and the Sum of it over
  the batch, a bias gradient) -> ``_SoftmaxCrossEntropyMean``: TF1's classifier
  loss as one op instead of five or six small steps (see :func:`_xent_means`).

Unlike the rules of ``simplify`` these join several consumers of one value, which a
one-node-at-a-time rewrite cannot: the pass finds them, makes the fused node,
redirects the users and puts the nodes back in topological order.
"""

from __future__ import annotations

import heapq
import math
from typing import Any

import numpy as np

from graphflow.compiler.ir import Node, Program, Value
from graphflow.compiler.options import CompilerOptions
from graphflow.compiler.pass_manager import Pass
from graphflow.framework import dtypes as _dt
from graphflow.framework import op_def as _op_def


def _bias_sum(s: Node, dy: Value) -> bool:
    """Whether ``s`` sums the rank-4 NHWC ``dy`` over N, H and W: ``Sum`` over those
    axes, or ``BiasAddGrad``."""
    if s.type not in ("Sum", "BiasAddGrad") or s.control_inputs:
        return False
    (src,) = s.inputs
    if src[0] is not dy[0] or src[1] != dy[1] or s.dtypes[0] is not dy[0].dtypes[dy[1]]:
        return False
    if s.type == "BiasAddGrad":
        return s.attrs.get("data_format") == "NHWC"
    axis = s.attrs.get("axis")
    return axis is not None and sorted(a % 4 for a in axis) == [0, 1, 2] and len(axis) == 3


def _toposort(nodes: list[Node]) -> list[Node]:
    """``nodes`` in an order where every node follows its inputs and control inputs,
    keeping the given order wherever it already does."""
    pos = {n.id: k for k, n in enumerate(nodes)}
    waits = {n.id: 0 for n in nodes}
    after: dict[int, list[Node]] = {}
    for n in nodes:
        for p in {p.id for p, _ in n.inputs} | {c.id for c in n.control_inputs}:
            if p in pos:
                waits[n.id] += 1
                after.setdefault(p, []).append(n)
    ready = [(pos[n.id], n.id, n) for n in nodes if waits[n.id] == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        _, _, n = heapq.heappop(ready)
        out.append(n)
        for u in after.get(n.id, ()):
            waits[u.id] -= 1
            if waits[u.id] == 0:
                heapq.heappush(ready, (pos[u.id], u.id, u))
    assert len(out) == len(nodes), "remap made a cycle"
    return out


_POOL_ATTRS = ("ksize", "strides", "padding", "data_format")


def _routes(program: Program, protected: set[int], repl: dict, dropped: set[int],
            made: list[tuple[Node, Node]]) -> None:
    """MaxPool(r) with its gradient MaxPoolGrad(r, MaxPool(r), g) (or _MaxPoolReluGrad)
    -> _MaxPoolWithRoute(r) and _MaxPoolGradRoute(route, g)."""
    pools: dict[int, Node] = {}  # MaxPool id -> its _MaxPoolWithRoute
    for gnode in program.nodes:
        if gnode.type not in ("MaxPoolGrad", "_MaxPoolReluGrad") or gnode.control_inputs \
                or gnode.id in protected:
            continue
        r, m, g = gnode.inputs
        pool = m[0]
        if (pool.type != "MaxPool" or m[1] != 0 or pool.control_inputs or pool.id in protected
                or pool.inputs[0][0] is not r[0] or pool.inputs[0][1] != r[1]
                or any(pool.attrs.get(k) != gnode.attrs.get(k) for k in _POOL_ATTRS)
                or pool.attrs.get("data_format") != "NHWC"):
            continue
        ksize = pool.attrs["ksize"]
        size = r[0].shapes[r[1]].values
        # A route is a byte: a tap index below NO_ROUTE. (nn_ops loads on first use,
        # not with the compiler; a graph with a MaxPool has loaded it.)
        from graphflow.ops.nn_ops import NO_ROUTE

        if ksize[1] * ksize[2] >= NO_ROUTE or size is None or None in size[1:3]:
            continue
        positive = gnode.type == "_MaxPoolReluGrad"
        routed = pools.get(pool.id)
        if routed is None:
            routed = program.new_node(
                "_MaxPoolWithRoute", _op_def.lookup("_MaxPoolWithRoute"),
                {**pool.attrs, "positive": positive}, [r], [pool.dtypes[0], _dt.uint8],
                [pool.shapes[0], pool.shapes[0]], name=f"{pool.name}/with_route",
                origin=pool.origin, seq=pool.seq)
            pools[pool.id] = routed
            repl[(pool.id, 0)] = (routed, 0)
            dropped.add(pool.id)
            made.append((routed, pool))
        elif routed.attrs["positive"] != positive:
            continue
        grad = program.new_node(
            "_MaxPoolGradRoute", _op_def.lookup("_MaxPoolGradRoute"),
            {**{k: pool.attrs[k] for k in _POOL_ATTRS}, "orig_size": tuple(size[1:3])},
            [(routed, 1), g], list(gnode.dtypes), list(gnode.shapes),
            name=f"{gnode.name}/route", origin=gnode.origin, seq=gnode.seq)
        repl[(gnode.id, 0)] = (grad, 0)
        dropped.add(gnode.id)
        made.append((grad, gnode))


_XENTS = ("SparseSoftmaxCrossEntropyWithLogits", "SoftmaxCrossEntropyWithLogits")


def _scalar_const(v: Value) -> float | None:
    """The value of a one-element float constant, else None."""
    n, i = v
    if n.type != "Const" or i != 0:
        return None
    a = n.attrs.get("value")
    if not isinstance(a, np.ndarray) or a.size != 1 or a.dtype.kind != "f":
        return None
    return float(a.reshape(-1)[0])


def _xent_means(program: Program, protected: set[int], repl: dict, dropped: set[int],
                made: list[tuple[Node, Node]], after: dict[int, Node]) -> None:
    """``Mean`` of a softmax cross entropy's loss, with the gradient the mean's and the
    cross entropy's gradient functions build for the logits (TF1's shape-agnostic mean
    gradient: Shape, Size, Cast, RealDiv, Maximum, BroadcastTo, RealDiv, ExpandDims,
    Mul) -> ``_SoftmaxCrossEntropyMean(logits, labels, upstream)``, which also sums the
    gradient over the batch when a Sum does (the bias gradient of the layer making the
    logits). The classification loss of nearly every TF1 model: five or six small
    steps of a training step (~0.3 ms of a 5.5 ms mlp step) become one. Control inputs
    on the Mean move to the fused op (``after``): constant folding leaves one on a
    constant it folded from the mean's size."""
    targets = {t.id for t in program.targets}
    users: dict[tuple[int, int], list[Node]] = {}
    for n in program.nodes:
        for p, i in n.inputs:
            users.setdefault((p.id, i), []).append(n)
    fetched = {(p.id, i) for p, i in program.outputs}

    def only(v: Value, *types: str) -> Node | None:
        """The one user of ``v``, when it is of one of ``types`` and may be replaced."""
        us = users.get((v[0].id, v[1]), [])
        if (len(us) != 1 or us[0].type not in types or (v[0].id, v[1]) in fetched
                or us[0].id in protected or us[0].control_inputs or us[0].id in dropped):
            return None
        return us[0]

    for x in program.nodes:
        if x.type not in _XENTS or x.id in protected or x.control_inputs or x.id in dropped:
            continue
        dims = x.shapes[0].values
        if not dims or (x.id, 0) in fetched:  # (a rank-0 loss has no batch to average)
            continue
        loss_users = users.get((x.id, 0), [])
        by_type = {u.type: u for u in loss_users}
        if (len(loss_users) != 3 or set(by_type) != {"Mean", "Shape", "Size"}
                or any((u.id in targets if u.type == "Mean" else u.id in protected)
                       or u.control_inputs or u.id in dropped for u in loss_users)):
            continue
        mean, shape, size = by_type["Mean"], by_type["Shape"], by_type["Size"]
        axis = mean.attrs.get("axis")
        if mean.attrs.get("keep_dims") or not (
                axis is None or sorted(a % len(dims) for a in axis) == list(range(len(dims)))):
            continue
        d = x.dtypes[0]
        # The count: Maximum(RealDiv(Cast(Size(loss)), divisor), floor).
        cast = only((size, 0), "Cast")
        if not cast or cast.dtypes[0] is not d:
            continue
        div = only((cast, 0), "RealDiv")
        if not div or div.inputs[0][0] is not cast:
            continue
        divisor = _scalar_const(div.inputs[1])
        count = only((div, 0), "Maximum")
        if divisor is None or not count or count.inputs[0][0] is not div:
            continue
        floor = _scalar_const(count.inputs[1])
        # The gradient: Mul(ExpandDims(RealDiv(BroadcastTo(upstream, Shape(loss)), count),
        # -1), backprop), the Mul's operands in either order.
        bcast = only((shape, 0), "BroadcastTo")
        if floor is None or not bcast or bcast.inputs[1][0] is not shape:
            continue
        upstream = bcast.inputs[0]
        up_dims = upstream[0].shapes[upstream[1]].values
        if (up_dims is None or None in up_dims or math.prod(up_dims) != 1
                or len(up_dims) > len(dims) or upstream[0].dtypes[upstream[1]] is not d):
            continue
        scaled = only((bcast, 0), "RealDiv")
        if (not scaled or scaled.inputs[0][0] is not bcast
                or scaled.inputs[1][0] is not count or only((count, 0), "RealDiv") is not scaled):
            continue
        expand = only((scaled, 0), "ExpandDims")
        if not expand or expand.attrs.get("axis") not in (-1, len(dims)):
            continue
        mul = only((expand, 0), "Mul")
        if not mul or only((x, 1), "Mul") is not mul:
            continue
        # The bias gradient of the layer making the logits, a sum over the batch dims,
        # comes out of the same pass.
        batch = list(range(len(dims)))
        sums = [u for u in users.get((mul.id, 0), []) if u.type == "Sum"
                and u.id not in protected and not u.control_inputs and u.id not in dropped
                and not u.attrs.get("keep_dims") and u.attrs.get("axis") is not None
                and sorted(a % (len(dims) + 1) for a in u.attrs["axis"]) == batch]
        op = "_SoftmaxCrossEntropyMean"
        fused = program.new_node(
            op, _op_def.lookup(op),
            {"xent": x.type, "axis": axis, "size_dtype": size.dtypes[0].name,
             "divisor": divisor, "floor": floor,
             "sum_axis": sums[0].attrs["axis"] if sums else None},
            [x.inputs[0], x.inputs[1], upstream], [d] * (2 + len(sums[:1])),
            [mean.shapes[0], mul.shapes[0]] + [u.shapes[0] for u in sums[:1]],
            # Named for the cross entropy: its errors (a label out of range) name the op
            # and line the user wrote.
            name=f"{x.name}/mean", origin=x.origin, seq=x.seq)
        repl[(mean.id, 0)] = (fused, 0)
        repl[(mul.id, 0)] = (fused, 1)
        after[mean.id] = fused
        if sums:
            repl[(sums[0].id, 0)] = (fused, 2)
            dropped.add(sums[0].id)
        dropped |= {x.id, mean.id, shape.id, size.id, cast.id, div.id, count.id, bcast.id,
                    scaled.id, expand.id, mul.id}
        made.append((fused, x))


def remap(program: Program) -> int:
    """Applies the fusions above to ``program``; returns how many fused ops it made."""
    users = program.users()
    protected = program.control_users() | {t.id for t in program.targets}
    repl: dict[tuple[int, int], Value] = {}
    dropped: set[int] = set()
    made: list[tuple[Node, Node]] = []  # (fused node, the node whose place it takes)
    after: dict[int, Node] = {}  # a dropped node's id -> the node control inputs wait for
    _routes(program, protected, repl, dropped, made)
    _xent_means(program, protected, repl, dropped, made, after)
    for w in program.nodes:
        if (w.type != "Conv2DBackpropFilter" or w.control_inputs or w.id in protected
                or w.attrs.get("data_format", "NHWC") != "NHWC"):
            continue
        dy = w.inputs[2]
        sums = [u for u, _ in users.get(dy[0].id, ()) if u.id not in protected
                and u.id not in dropped and _bias_sum(u, dy)]
        if not sums:
            continue
        s = sums[0]
        op = "_Conv2DBackpropFilterWithBias"
        fused = program.new_node(
            op, _op_def.lookup(op), {**w.attrs, "bias_op": s.type,
                                     "keep_dims": bool(s.attrs.get("keep_dims"))},
            list(w.inputs), [w.dtypes[0], s.dtypes[0]], [w.shapes[0], s.shapes[0]],
            name=f"{w.name}/with_bias", origin=w.origin, seq=w.seq)
        repl[(w.id, 0)] = (fused, 0)
        repl[(s.id, 0)] = (fused, 1)
        dropped |= {w.id, s.id}
        made.append((fused, w))
    if not made:
        return 0
    place = {w.id: f for f, w in made}
    nodes = []
    for n in program.nodes:
        if n.id in place:
            nodes.append(place[n.id])
        elif n.id in dropped:
            continue
        else:
            nodes.append(n)
    for n in nodes:
        n.inputs[:] = [repl.get((p.id, i), (p, i)) for p, i in n.inputs]
        if after and any(c.id in after for c in n.control_inputs):
            waits = {c.id: c for c in (after.get(c.id, c) for c in n.control_inputs)}
            n.control_inputs[:] = list(waits.values())
    program.outputs = [repl.get((p.id, i), (p, i)) for p, i in program.outputs]
    program.nodes = _toposort(nodes)
    program.compact()  # the constants only the replaced ops read
    return len(made)


class Remap(Pass):
    """Applies :func:`remap` (see the module docstring)."""

    name = "remap"

    def run(self, program: Program, options: CompilerOptions) -> dict[str, Any]:
        return {"fused": remap(program)}
