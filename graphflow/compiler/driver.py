"""The compiler's entry points: ``build_plan`` for sessions, ``explain`` for people."""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from graphflow.compiler.cse import CommonSubexpressionElimination
from graphflow.compiler.fold import ConstantFolding
from graphflow.compiler.fusion import Fusion
from graphflow.compiler.ir import Program
from graphflow.compiler.lower import lower
from graphflow.compiler.options import CompilerOptions
from graphflow.compiler.pass_manager import CompileReport, Pass, PassManager, PassRecord
from graphflow.compiler.plan import Plan
from graphflow.compiler.remap import Remap
from graphflow.compiler.schedule import MemoryPlan, Schedule
from graphflow.compiler.simplify import AlgebraicSimplification
from graphflow.compiler.stabilize import NumericalStabilization
from graphflow.framework.graph import Graph, Operation, Tensor, get_default_graph


class Prune(Pass):
    """Drops nodes nothing fetched needs.

    Lowering (``lower.lower``) already copies only what the fetches need; the
    report charges that time to this pass, and counts the graph's ops before.
    """

    name = "prune"
    required = True

    def run(self, program: Program, options: CompilerOptions) -> dict[str, Any]:
        return {"removed": program.compact()}


def default_passes() -> list[Pass]:
    """The pipeline, in order. Each optional pass can be switched off by its name."""
    return [Prune(), ConstantFolding(), CommonSubexpressionElimination(),
            AlgebraicSimplification(), NumericalStabilization(), Remap(), Fusion(), Schedule(),
            MemoryPlan()]


def build_plan(fetch_tensors: Sequence[Tensor], target_ops: Sequence[Operation],
               feed_tensors: Sequence[Tensor], options: CompilerOptions | None = None,
               graph: Graph | None = None,
               snapshots: list[tuple[str, Program]] | None = None) -> Plan:
    """Compiles one run signature into a Plan.

    Args:
      fetch_tensors: tensors to compute, in order.
      target_ops: operations to run for their effects.
      feed_tensors: tensors whose values the run gives.
      options: which passes run (default: all).
      graph: the graph, for the report's node count.
      snapshots: if given, receives ``(pass name, program copy)`` after each pass.

    Returns:
      The Plan, with its ``report``.

    Raises:
      errors.InvalidArgumentError: if the needed part of the graph has a cycle.
    """
    options = options or CompilerOptions()
    report = CompileReport()
    # Compiling allocates many small objects and frees few, so the cyclic garbage
    # collector would only re-walk the graph and the IR again and again (a fifth of
    # the compile time on big graphs); it runs again right after.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        program = lower(fetch_tensors, target_ops, feed_tensors, graph)
        lower_seconds = time.perf_counter() - t0
        if snapshots is not None:
            snapshots.append(("lower", program.clone()))
        PassManager(default_passes()).run(program, options, report, snapshots)
    finally:
        if gc_was_enabled:
            gc.enable()
    prune: PassRecord = report.records[0]
    prune.seconds += lower_seconds
    prune.nodes_before = program.graph_ops
    plan = program.plan
    plan.report = report
    return plan


@dataclass
class Explanation:
    """What :func:`explain` returns.

    Attributes:
      report: the per-pass report (time, nodes before/after, details).
      stages: ``(pass name, Program)`` after lowering and after each pass that ran,
        for printing or drawing before/after graphs.
      plan: the final Plan (steps, buffers, memory figures).
    """

    report: CompileReport
    stages: list[tuple[str, Program]] = field(default_factory=list)
    plan: Plan | None = None

    def program(self, after: str | None = None) -> Program:
        """The IR after pass ``after`` (default: the last stage)."""
        if after is None:
            return self.stages[-1][1]
        for name, prog in self.stages:
            if name == after:
                return prog
        raise KeyError(f"No stage {after!r}; stages: {[n for n, _ in self.stages]}")

    def __str__(self) -> str:
        parts = [str(self.report)]
        if self.plan is not None:
            parts.append(self.plan.to_text())
        return "\n\n".join(parts)


def explain(fetches: Any, feed_dict: Any = None, graph: Graph | None = None,
            options: Any = None) -> Explanation:
    """Compiles ``fetches`` as ``Session.run`` would and shows what each pass did.

    Args:
      fetches: anything ``Session.run`` accepts as fetches.
      feed_dict: a dict whose keys are the fed tensors (values are ignored), or
        a list of tensors.
      graph: the graph (default: the fetches' graph, else the default graph).
      options: a :class:`CompilerOptions`, or a dict as ``Session``'s
        ``optimizer_options`` (e.g. ``{"stabilize": False}``).

    Returns:
      An :class:`Explanation`: ``print()`` it for the report and the plan.
    """
    from graphflow.runtime.fetches import flatten_fetches, split_targets

    graph = graph or _graph_of(fetches) or get_default_graph()
    elements, _ = flatten_fetches(graph, fetches)
    tensors, targets = split_targets(elements)
    feeds = []
    for key in (feed_dict or []):
        t = graph.as_graph_element(key, allow_tensor=True, allow_operation=False)
        if t not in feeds:
            feeds.append(t)
    opts = CompilerOptions.make(None, options)
    stages: list[tuple[str, Program]] = []
    plan = build_plan(tensors, targets, feeds, opts, graph, snapshots=stages)
    return Explanation(plan.report, stages, plan)


def _graph_of(fetches: Any) -> Graph | None:
    if isinstance(fetches, (list, tuple)):
        for f in fetches:
            g = _graph_of(f)
            if g is not None:
                return g
        return None
    if isinstance(fetches, dict):
        return _graph_of(list(fetches.values()))
    conv = getattr(fetches, "_as_graph_element", None)
    if conv is not None:
        fetches = conv()
    if isinstance(fetches, (Tensor, Operation)):
        return fetches.graph
    return None
