"""Scheduling and memory planning: fusion groups -> an ordered Plan over buffers.

**Schedule.** Groups run in a topological order of the group DAG; among
ready groups, variable writers go last, ties broken by the user's op creation
order. This is the reference interpreter's rule (``lower.execution_order``)
lifted to groups, and because a group only holds nodes of one *phase* (see
``fusion.phases``) every read still happens between the same writes:
``run([train_op, loss])`` returns the loss from before the update.

**Memory plan.** Liveness analysis over the steps: a value is alive from the
step that writes it to the last step that reads it (fetched values to the
end). Walking the steps, each output takes, in order of preference: the
buffer of an input that dies at this step, when the step is an elementwise
kernel and the shapes and dtypes match (marked *in place*); else the smallest
free buffer large enough; else a new buffer. Values of shapes only known at
run time get buffers of their own.
"""

from __future__ import annotations

import bisect
import heapq
from typing import Any

from graphflow.compiler.fusion import ELEMENTWISE_GROUP, Group, is_resident, partition
from graphflow.compiler.ir import Program
from graphflow.compiler.options import CompilerOptions
from graphflow.compiler.pass_manager import Pass
from graphflow.compiler.plan import CONST, FEED, TEMP, VARIABLE, Assignment, KernelStep, Plan


def order_groups(groups: list[Group]) -> list[Group]:
    """Groups in run order: dependencies first, ready writers last, then creation order."""
    succs: dict[int, list[Group]] = {g.id: [] for g in groups}
    waiting = {g.id: len(g.preds) for g in groups}
    for g in groups:
        for p in g.preds:
            succs[p].append(g)
    ready = [(g.is_writer, g.seq, g.id, g) for g in groups if not g.preds]
    heapq.heapify(ready)
    out = []
    while ready:
        *_, g = heapq.heappop(ready)
        out.append(g)
        for s in succs[g.id]:
            waiting[s.id] -= 1
            if waiting[s.id] == 0:
                heapq.heappush(ready, (s.is_writer, s.seq, s.id, s))
    if len(out) != len(groups):
        raise AssertionError("fusion produced a cyclic group graph")
    return out


def build_plan(program: Program, options: CompilerOptions | None,
               assign: bool = True) -> Plan:
    """Orders the program's groups into steps; with ``assign``, gives every value its own
    buffer (else :func:`assign_buffers` must run)."""
    groups = program.groups
    if groups is None:
        groups = program.groups = partition(program, options, fuse=False)
    plan = Plan(program)
    for g in order_groups(groups):
        if all(n.num_outputs == 0 and not n.stateful for n in g.nodes):
            continue  # a NoOp: its ordering role is already in the order
        plan.steps.append(KernelStep(g))
    for f, t in program.inputs:
        b = plan.new_buffer(FEED, (f, 0))
        plan.buffer_of[(f.id, 0)] = b
        plan.inputs.append((t, b))
    for n in program.nodes:
        if is_resident(n):
            kind = CONST if n.type == "Const" else VARIABLE
            b = plan.new_buffer(kind, (n, 0))
            plan.buffer_of[(n.id, 0)] = b
            if kind == CONST:
                plan.constants.append((b, n.attrs["value"]))
            else:
                plan.variables.append((b, n))
    if assign:
        assign_buffers(plan, reuse=False)
    return plan


def assign_buffers(plan: Plan, reuse: bool) -> None:
    """Gives every temp value a buffer: its own, or (``reuse``) one from the memory plan."""
    steps = plan.steps
    end = len(steps)
    first: dict[tuple[int, int], int] = {}
    last: dict[tuple[int, int], int] = {}
    for i, s in enumerate(steps):
        for v in s.outputs:
            k = (v[0].id, v[1])
            first[k] = last[k] = i
        for v in s.inputs:
            k = (v[0].id, v[1])
            if k in first:
                last[k] = i
    for v in plan.program.outputs:
        k = (v[0].id, v[1])
        if k in first:
            last[k] = end
    # Drop the temp part of any previous assignment.
    fixed = {k: b for k, b in plan.buffer_of.items() if plan.buffers[b].kind != TEMP}
    plan.buffers = [b for b in plan.buffers if b.kind != TEMP]
    plan.buffer_of = fixed
    plan.assignments = []
    free: list[tuple[int, int]] = []  # (capacity, buffer id), kept sorted
    capacity: dict[int, int] = {}
    live_bytes = live_peak = 0
    unknown = 0
    for i, s in enumerate(steps):
        s.inplace = {}
        dying = [j for j, v in enumerate(s.inputs) if last.get((v[0].id, v[1])) == i]
        donated: set[int] = set()
        s.out_buffers = []
        for o, v in enumerate(s.outputs):
            k = (v[0].id, v[1])
            need = v[0].nbytes(v[1])
            b = None
            inplace_of = None
            if need is None:
                unknown += 1
            elif reuse:
                if s.pattern == ELEMENTWISE_GROUP:
                    for j in dying:
                        u = s.inputs[j]
                        ub = plan.buffer_of.get((u[0].id, u[1]))
                        if (j not in donated and ub is not None and ub in capacity and
                                u[0].dtypes[u[1]] is v[0].dtypes[v[1]] and
                                u[0].shapes[u[1]].values == v[0].shapes[v[1]].values and
                                capacity[ub] >= need):
                            donated.add(j)
                            b, inplace_of = ub, u
                            s.inplace[o] = j
                            live_bytes -= u[0].nbytes(u[1])
                            break
                if b is None:
                    idx = bisect.bisect_left(free, (need, -1))
                    if idx < len(free):
                        b = free.pop(idx)[1]
            if b is None:
                b = plan.new_buffer(TEMP, v)
                if need is not None:
                    capacity[b] = need
            plan.buffer_of[k] = b
            s.out_buffers.append(b)
            plan.assignments.append(Assignment(v, b, i, last[k], inplace_of))
            if need is not None:
                live_bytes += need
        live_peak = max(live_peak, live_bytes)
        released = [s.inputs[j] for j in dying if j not in donated]
        released += [v for v in s.outputs if last[(v[0].id, v[1])] == i]
        for u in dying:
            uv = s.inputs[u]
            if u in donated:
                continue  # already counted out when its buffer was taken over
            if plan.buffers[plan.buffer_of[(uv[0].id, uv[1])]].kind == TEMP:
                live_bytes -= uv[0].nbytes(uv[1]) or 0
        for v in s.outputs:
            if last[(v[0].id, v[1])] == i:
                live_bytes -= v[0].nbytes(v[1]) or 0
        if reuse:
            for u in released:
                ub = plan.buffer_of[(u[0].id, u[1])]
                if ub in capacity and plan.buffers[ub].kind == TEMP:
                    bisect.insort(free, (capacity[ub], ub))
        s.in_buffers = [plan.buffer_of[(v[0].id, v[1])] for v in s.inputs]
    plan.outputs = [plan.buffer_of[(v[0].id, v[1])] for v in plan.program.outputs]
    plan.peak_bytes = sum(capacity.values())
    plan.live_peak_bytes = live_peak
    plan.unknown_size_values = unknown
    naive = 0
    for s in steps:
        for n in s.nodes:
            for i in range(n.num_outputs):
                naive += n.nbytes(i) or 0
    plan.naive_bytes = naive


class Schedule(Pass):
    """Orders fusion groups into Plan steps (``program.plan``); one buffer per value."""

    name = "schedule"
    required = True

    def run(self, program: Program, options: CompilerOptions) -> dict[str, Any]:
        # The memory plan, when on, assigns the buffers: no need to do it twice.
        program.plan = build_plan(program, options, assign=not options.enabled("memory_plan"))
        return {"steps": len(program.plan.steps)}


class MemoryPlan(Pass):
    """Reassigns temp buffers by liveness: reuse of dead buffers and in-place updates."""

    name = "memory_plan"

    def run(self, program: Program, options: CompilerOptions) -> dict[str, Any]:
        plan = program.plan
        assign_buffers(plan, reuse=True)
        temps = sum(1 for b in plan.buffers if b.kind == TEMP)
        return {"buffers": temps, "values": len(plan.assignments),
                "inplace": sum(len(s.inplace) for s in plan.steps),
                "peak_bytes": plan.peak_bytes, "naive_bytes": plan.naive_bytes}
