"""Grouping and ordering ops: no_op, group, tuple."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from graphflow.framework.graph import Operation, _as_op, get_default_graph
from graphflow.framework.op_def import OpDef, register
from graphflow.ops.building import graph_of, make, make_op, op_scope


@register
class NoOp(OpDef):
    """Does nothing; used for its control inputs."""

    def infer(self, op):
        return []

    def reference(self, op, inputs, ctx):
        return []


def no_op(name: str | None = None) -> Operation:
    """An op that does nothing (TF1's ``tf.no_op``)."""
    return make_op("NoOp", [], name=name or "NoOp", graph=get_default_graph())


def group(*inputs: Any, name: str | None = None) -> Operation:
    """An op that runs after all ``inputs`` (TF1's ``tf.group``).

    Args:
      *inputs: ops or tensors (nested lists are flattened).
      name: op name.

    Returns:
      A NoOp with a control input on each.
    """
    flat: list[Operation] = []

    def walk(x: Any) -> None:
        if isinstance(x, (list, builtins.tuple)):
            for i in x:
                walk(i)
        elif x is not None:
            op = _as_op(x)
            if op not in flat:
                flat.append(op)

    walk(inputs)
    g = graph_of(flat)
    with g.as_default(), g.control_dependencies(flat):
        return make_op("NoOp", [], name=name or "group_deps", graph=g)


def tuple(tensors: Sequence[Any], name: str | None = None,
          control_inputs: Sequence[Any] | None = None) -> list[Any]:
    """Tensors that are available only after all of ``tensors`` are (TF1's ``tf.tuple``).

    Args:
      tensors: tensors (or None entries, passed through).
      name: scope name.
      control_inputs: extra ops to wait for.

    Returns:
      A list of Identity tensors, one per input.
    """
    real = [t for t in tensors if t is not None]
    with op_scope(name, "tuple", real):
        gate = group(*real, *(control_inputs or []))
        g = graph_of(real)
        out = []
        with g.control_dependencies([gate]):
            for t in tensors:
                if t is None:
                    out.append(None)
                elif isinstance(t, Operation):
                    out.append(group(t))
                else:
                    out.append(make("Identity", [t], name="control_dependency"))
        return out

