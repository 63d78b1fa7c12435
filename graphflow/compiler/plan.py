"""The Plan: a backend-neutral program of kernels over buffers.

A Plan is what the compiler hands a backend: an ordered list of steps, each
reading and writing numbered buffers. Today every step is a
:class:`KernelStep` (one fusion group: a small list of IR nodes a backend turns
into one kernel, and the reference backend evaluates op by op). Control flow
(``cond`` / ``while_loop``) will add :class:`RegionStep`, which holds sub-plans
and reads/writes buffers like any other step, so passes and the memory plan
treat it as one opaque step and nothing else changes.

Buffers are of four kinds: ``feed`` (bound to fed arrays), ``const`` (bound to
constants once, when the plan is loaded), ``variable`` (bound to the session's
variable handles at the start of a run) and ``temp`` (written by steps; the
memory plan lets values whose lifetimes do not overlap share one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphflow.compiler.fusion import Group
from graphflow.compiler.ir import Node, Program, Value, static_nbytes
from graphflow.framework.dtypes import DType
from graphflow.framework.tensor_shape import TensorShape

FEED, CONST, VARIABLE, TEMP = "feed", "const", "variable", "temp"


@dataclass
class Buffer:
    """A storage slot.

    Attributes:
      id: index into the run's buffer table.
      kind: ``feed``, ``const``, ``variable`` or ``temp``.
      dtype, shape: of the first value stored (temp buffers may later hold
        other values of at most ``nbytes``).
      nbytes: capacity in bytes, or None when a shape is only known at run time.
    """

    id: int
    kind: str
    dtype: DType
    shape: TensorShape
    nbytes: int | None


@dataclass
class Assignment:
    """One value living in a buffer from step ``first`` to step ``last`` (inclusive).

    ``last == len(plan.steps)`` means the value is fetched (alive at the end).
    ``inplace_of`` names the input value whose buffer the step overwrote.
    """

    value: Value
    buffer: int
    first: int
    last: int
    inplace_of: Value | None = None


class Step:
    """Base of plan steps: reads ``in_buffers``, writes ``out_buffers``."""

    in_buffers: list[int]
    out_buffers: list[int]

    @property
    def is_writer(self) -> bool:
        return False


class KernelStep(Step):
    """One fusion group run as one kernel.

    Attributes:
      group: the fusion group (nodes in evaluation order, pattern).
      inputs: values read from outside the group, parallel to ``in_buffers``.
      outputs: values the group makes for others, parallel to ``out_buffers``.
      inplace: output position -> input position whose buffer it overwrites.
    """

    def __init__(self, group: Group) -> None:
        self.group = group
        self.inputs: list[Value] = list(group.inputs)
        self.outputs: list[Value] = list(group.outputs)
        self.in_buffers: list[int] = []
        self.out_buffers: list[int] = []
        self.inplace: dict[int, int] = {}

    @property
    def nodes(self) -> list[Node]:
        return self.group.nodes

    @property
    def pattern(self) -> str:
        return self.group.pattern

    @property
    def is_writer(self) -> bool:
        return self.group.is_writer

    def __repr__(self) -> str:
        body = " ".join(n.type for n in self.group.nodes)
        return (f"<KernelStep {self.group.pattern} [{body}] in={self.in_buffers} "
                f"out={self.out_buffers}>")


class RegionStep(Step):
    """A control-flow step holding sub-plans (``cond`` branches, a ``while_loop`` body).

    Reserved for the control-flow issue: the schedule and memory plan treat it
    as one step reading ``in_buffers`` and writing ``out_buffers``; a backend
    runs the chosen sub-plan with those buffers as its inputs and outputs.
    """

    def __init__(self, node: Node, sub_plans: list[Plan]) -> None:
        self.node = node
        self.sub_plans = sub_plans
        self.in_buffers = []
        self.out_buffers = []


@dataclass
class Plan:
    """A compiled ``Session.run`` signature (see the module docstring).

    Attributes:
      program: the optimised IR the steps evaluate.
      steps: in execution order.
      buffers: the buffer table.
      inputs: ``(user Tensor, buffer)`` per fed tensor.
      constants: ``(buffer, array)`` bound when the plan is loaded.
      variables: ``(buffer, VariableV2 node)`` bound at the start of each run.
      outputs: one buffer per fetched tensor, in fetch order.
      buffer_of: ``(node id, output index) -> buffer`` for every stored value.
      assignments: every stored temp value with its buffer and lifetime.
      naive_bytes: bytes of all intermediate values, as op-by-op evaluation
        allocates them (None entries: unknown shapes, not counted).
      peak_bytes: bytes of all temp buffers: what the plan allocates.
      live_peak_bytes: the most bytes of temp values alive at once (a lower
        bound any buffer assignment must meet).
      report: the :class:`~graphflow.compiler.pass_manager.CompileReport`.
    """

    program: Program
    steps: list[Step] = field(default_factory=list)
    buffers: list[Buffer] = field(default_factory=list)
    inputs: list[tuple[Any, int]] = field(default_factory=list)
    constants: list[tuple[int, np.ndarray]] = field(default_factory=list)
    variables: list[tuple[int, Node]] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    buffer_of: dict[tuple[int, int], int] = field(default_factory=dict)
    assignments: list[Assignment] = field(default_factory=list)
    naive_bytes: int = 0
    peak_bytes: int = 0
    live_peak_bytes: int = 0
    unknown_size_values: int = 0
    report: Any = None

    def new_buffer(self, kind: str, v: Value) -> int:
        n, i = v
        b = Buffer(len(self.buffers), kind, n.dtypes[i], n.shapes[i],
                   static_nbytes(n.dtypes[i], n.shapes[i]))
        self.buffers.append(b)
        return b.id

    def check(self) -> None:
        """Raises AssertionError if a buffer holds two values alive at once.

        A value may take over its input's buffer at the step that reads that
        input for the last time only when the step marks it in place.
        """
        by_buffer: dict[int, list[Assignment]] = {}
        for a in self.assignments:
            by_buffer.setdefault(a.buffer, []).append(a)
        for b, items in by_buffer.items():
            items.sort(key=lambda a: (a.first, a.last))
            for prev, cur in zip(items, items[1:]):
                if cur.first > prev.last:
                    continue
                ok = (cur.first == prev.last and cur.inplace_of is not None and
                      cur.inplace_of[0].id == prev.value[0].id and
                      cur.inplace_of[1] == prev.value[1])
                if not ok:
                    raise AssertionError(
                        f"buffer {b} holds {prev.value[0].name}:{prev.value[1]} (steps "
                        f"{prev.first}-{prev.last}) and {cur.value[0].name}:{cur.value[1]} "
                        f"(steps {cur.first}-{cur.last}) at once")

    def summary(self) -> str:
        """A short text: steps, buffers and memory figures."""
        temps = sum(1 for b in self.buffers if b.kind == TEMP)
        return (f"{len(self.steps)} steps, {temps} temp buffers for "
                f"{len(self.assignments)} values; planned {self.peak_bytes} B, live peak "
                f"{self.live_peak_bytes} B, naive {self.naive_bytes} B")

    def to_text(self) -> str:
        """One line per step: pattern, ops, buffers read and written."""
        lines = [self.summary()]
        for i, s in enumerate(self.steps):
            if isinstance(s, KernelStep):
                ops = " -> ".join(n.type for n in s.nodes)
                ip = f" inplace={s.inplace}" if s.inplace else ""
                lines.append(f"{i:4d} {s.pattern:<12} {ops}  in={s.in_buffers} "
                             f"out={s.out_buffers}{ip}")
            else:
                lines.append(f"{i:4d} {type(s).__name__}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()
