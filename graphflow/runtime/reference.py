"""The reference interpreter: runs ops one by one with NumPy (DESIGN principle 3).

It is the oracle every compiled backend is tested against, so it favours
clarity and exact NumPy semantics over speed.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np

from graphflow.framework import errors
from graphflow.framework.graph import Operation, Tensor
from graphflow.ops.state_ops import VarRef


def execution_order(targets: list[Operation], fed: set[Tensor]) -> list[Operation]:
    """Ops needed for ``targets`` in dependency order, not running producers of fed tensors.

    Among ops that are ready, ops writing a variable (``ref_inputs``) run last, so a
    read that does not depend on a write sees the value from before the run's
    writes: fetching ``[train_op, loss]`` gives the loss before the update, as TF1.

    Raises:
      errors.InvalidArgumentError: if the needed subgraph has a cycle.
    """
    needed: dict[Operation, list[Operation]] = {}
    stack = list(targets)
    while stack:
        op = stack.pop()
        if op in needed:
            continue
        deps = list(dict.fromkeys(
            [t.op for t in op._inputs if t not in fed] + list(op._control_inputs)))
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


class RunState:
    """Per-session state ops read and write: variable values and random streams."""

    def __init__(self) -> None:
        self.variables: dict[str, np.ndarray] = {}
        self._rngs: dict[str, np.random.Generator] = {}

    def rng(self, op: Operation) -> np.random.Generator:
        """The random stream of ``op`` in this session: seeded ops repeat across sessions."""
        g = self._rngs.get(op.name)
        if g is None:
            seed, seed2 = op.get_attr("seed"), op.get_attr("seed2")
            if seed == 0 and seed2 == 0:
                g = np.random.default_rng()
            else:
                g = np.random.Generator(np.random.PCG64([int(seed), int(seed2)]))
            self._rngs[op.name] = g
        return g


class ReferenceExecutable:
    """Evaluates a fixed set of fetches from a fixed set of feeds, op by op."""

    def __init__(self, fetch_tensors: list[Tensor], target_ops: list[Operation],
                 feed_tensors: list[Tensor]) -> None:
        self.fetch_tensors = fetch_tensors
        self.feed_tensors = feed_tensors
        roots = [t.op for t in fetch_tensors if t not in set(feed_tensors)] + target_ops
        self.order = execution_order(roots, set(feed_tensors))

    def run(self, feeds: dict[Tensor, np.ndarray], state: RunState) -> list[Any]:
        values: dict[Tensor, Any] = dict(feeds)
        with np.errstate(all="ignore"):
            for op in self.order:
                run_op(op, values, state)
        out = []
        for t in self.fetch_tensors:
            v = values[t]
            if isinstance(v, VarRef):
                v = v.read(t.op)
            out.append(v)
        return out


def run_op(op: Operation, values: dict[Tensor, Any], state: RunState) -> None:
    """Evaluates one op, reading its inputs from and writing its outputs to ``values``."""
    opdef = op._op_def
    refs = opdef.ref_inputs
    args = []
    for i, t in enumerate(op._inputs):
        v = values[t]
        if isinstance(v, VarRef) and i not in refs:
            v = v.read(op)
        args.append(v)
    try:
        result = opdef.reference(op, args, state)
    except errors.OpError as e:
        if e.op is not None:
            raise
        raise type(e)(None, op, f"{op.type} op '{op.name}': {e.message}") from None
    except (ValueError, TypeError, IndexError, ArithmeticError, MemoryError) as e:
        raise errors.InvalidArgumentError(
            None, op, f"{op.type} op '{op.name}' failed: {e}") from None
    outs = op._outputs
    if len(outs) == 1:
        result = [result]
    elif len(outs) == 0:
        return
    for t, v in zip(outs, result):
        if not isinstance(v, VarRef):
            v = np.asarray(v)
            if v.dtype != t.dtype.np:
                v = v.astype(t.dtype.np)
            if not t.shape.is_compatible_with(v.shape):
                raise errors.InternalError(
                    None, op, f"{op.type} op '{op.name}' produced shape {v.shape} for "
                              f"{t.name}, whose static shape is {t.shape}")
        values[t] = v
