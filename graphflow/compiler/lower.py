"""Lowering: the user's Graph -> a :class:`~graphflow.compiler.ir.Program` (the prune pass).

Only the ops the fetches need are copied (control dependencies kept); fed
tensors become program inputs and their producers are left out.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

from graphflow.compiler.ir import FEED, Node, Program
from graphflow.framework import errors
from graphflow.framework.graph import Operation, Tensor


def execution_order(targets: Sequence[Operation], fed: set[Tensor]) -> list[Operation]:
    """Ops needed for ``targets`` in dependency order, not running producers of fed tensors.

    Among ops that are ready, ops writing a variable (``ref_inputs``) run last, so a
    read that does not depend on a write sees the value from before the run's
    writes: fetching ``[train_op, loss]`` gives the loss before the update, as TF1.

    Raises:
      errors.InvalidArgumentError: if the needed subgraph has a cycle.
    """
    # Tensors hash in Python (Tensor.__hash__); ids keep this loop in C for big graphs.
    fed_ids = {id(t) for t in fed}
    needed: dict[Operation, list[Operation]] = {}
    stack = list(targets)
    while stack:
        op = stack.pop()
        if op in needed:
            continue
        deps = list(dict.fromkeys(
            [t._op for t in op._inputs if id(t) not in fed_ids] + op._control_inputs))
        needed[op] = deps
        stack.extend(d for d in deps if d not in needed)
    waiting = {op: len(deps) for op, deps in needed.items()}
    users: dict[Operation, list[Operation]] = {op: [] for op in needed}
    for op, deps in needed.items():
        for d in deps:
            users[d].append(op)
    ready: list[tuple[int, int, Operation]] = []
    for op, n in waiting.items():
        if n == 0:
            heapq.heappush(ready, (_is_writer(op), op._id, op))
    order: list[Operation] = []
    while ready:
        _, _, op = heapq.heappop(ready)
        order.append(op)
        for u in users[op]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (_is_writer(u), u._id, u))
    if len(order) != len(needed):
        stuck = sorted((op for op in needed if waiting[op] > 0), key=lambda o: o._id)
        raise errors.InvalidArgumentError(
            None, stuck[0], "Graph has a cycle through " + ", ".join(o.name for o in stuck[:5]))
    return order


def _is_writer(op: Operation) -> int:
    return 1 if op._op_def.ref_inputs and op._op_def.stateful else 0


def lower(fetch_tensors: Sequence[Tensor], target_ops: Sequence[Operation],
          feed_tensors: Sequence[Tensor], graph: Any = None) -> Program:
    """Copies what ``fetch_tensors`` and ``target_ops`` need into a new Program.

    Args:
      fetch_tensors: tensors whose values are wanted, in order.
      target_ops: operations to run for their effects.
      feed_tensors: tensors whose values are given (program inputs).
      graph: the graph, only to record its size in reports.

    Returns:
      The Program; ``nodes`` in a topological order, depth first from the fetches.

    Raises:
      errors.InvalidArgumentError: if the needed subgraph has a cycle.
    """
    fed_ids = {id(t) for t in feed_tensors}
    roots = [t.op for t in fetch_tensors if id(t) not in fed_ids] + list(target_ops)
    feed_node: dict[int, Node] = {}  # id(Tensor) -> Feed node
    prog = Program()
    prog.graph_ops = len(graph.get_operations()) if graph is not None else 0
    for t in feed_tensors:
        f = prog.new_node("Feed", FEED, {}, [], [t.dtype], [t.shape], name=t.name,
                          origin=t.op, seq=-1)
        feed_node[id(t)] = f
        prog.inputs.append((f, t))
    # Depth-first from the roots; a node is made once its inputs and control inputs are,
    # so ``nodes`` comes out topologically sorted. (The interpreter's writers-last order
    # is not needed here: the schedule pass orders the Plan's steps that way.)
    node_of: dict[Operation, Node] = {}
    visiting: set[Operation] = set()
    next_id = prog._next_id
    nodes = prog.nodes
    for root in roots:
        if root in node_of:
            continue
        stack: list[tuple[Operation, bool]] = [(root, False)]
        while stack:
            op, expanded = stack.pop()
            if expanded:
                visiting.discard(op)
                if feed_node:
                    inputs = []
                    for t in op._inputs:
                        f = feed_node.get(id(t))
                        inputs.append((f, 0) if f is not None else
                                      (node_of[t._op], t._value_index))
                else:
                    inputs = [(node_of[t._op], t._value_index) for t in op._inputs]
                outs = op._outputs
                ctrl = op._control_inputs
                node = Node(next_id, op._type, op._op_def, op._attrs, inputs,
                            [t._dtype for t in outs], [t._shape for t in outs],
                            name=op._name, origin=op, seq=op._id,
                            control_inputs=[node_of[c] for c in ctrl] if ctrl else None,
                            ref_op=op)
                next_id += 1
                node_of[op] = node
                nodes.append(node)
                continue
            if op in node_of:
                continue  # pushed by two consumers; made by the first
            visiting.add(op)
            stack.append((op, True))
            deps = [t._op for t in op._inputs if id(t) not in fed_ids] + op._control_inputs
            for d in reversed(deps):
                if d in node_of:
                    continue
                if d in visiting:  # expanded, not made: d is on the current path
                    stuck = sorted(visiting, key=lambda o: o._id)
                    raise errors.InvalidArgumentError(
                        None, stuck[0],
                        "Graph has a cycle through " + ", ".join(o.name for o in stuck[:5]))
                stack.append((d, False))
    prog._next_id = next_id
    for t in fetch_tensors:
        f = feed_node.get(id(t))
        prog.outputs.append((f, 0) if f is not None else (node_of[t.op], t._value_index))
    prog.targets = [node_of[op] for op in target_ops]
    return prog

