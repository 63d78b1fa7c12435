"""Fusion partitioning: group ops into kernels by the op-kind ladder (TVM Relax style).

Every node that computes something at run time lands in exactly one
:class:`Group`; each group becomes one step (one kernel) of the Plan. Constants
and variables are *resident* (bound before the run) and belong to no group.

Which nodes may share a group, by op kind (``framework.op_def``):

* ELEMENTWISE / BROADCAST ops chain when they keep the group's loop shape (a
  larger consumer would recompute the group's values per broadcast element);
  INJECTIVE ops (reshape, transpose, slices, gathers) join such chains;
* sibling groups merge: when an elementwise op joins one producer group, its
  other elementwise producer groups of the same shape join too, so
  ``f(x) * g(x) + h(y)`` is one loop, not one per branch;
* a REDUCTION may take an elementwise/injective chain as its prologue, and
  elementwise ops that consume its result as an epilogue (one reduction per
  group);
* an OPAQUE library op (matmul, conv, softmax, ...) starts its own group and
  may take an elementwise epilogue (bias, activation), never a prologue. After
  a matrix product (:data:`REDUCING_ANCHORS`) a reduction over the epilogue's
  loop may join too, then elementwise ops of the reduced value: a BLAS product
  stores its result unchanged, so its epilogue is a pass of its own, and the
  reduction (a bias gradient of the activation gradient the product makes)
  folds into that pass. Other library ops may apply a bias/relu epilogue as
  they store (a convolution does), which a reduction in the group would stop:
  their reductions read the stored result, as before;
* an epilogue keeps the shape of the reduction's or library op's result, so a
  kernel is the anchor plus one loop over its output;
* stateful ops, sources, ops with several outputs or none stand alone.

Constraints on every merge:

* **acyclic**: groups must form a DAG, so a node joins a producer's group only
  if no other group it depends on already depends on that group;
* **no recomputation**: nodes are never duplicated, so an expensive producer
  shared by several consumers is computed once and its value materialised;
* **size cap**: at most ``max_group_size`` nodes per group;
* **same phase**: only nodes that run between the same variable writes share a
  group (see :func:`phases`), so fusing never moves a variable read across a
  write.
"""

from __future__ import annotations

from typing import Any

from graphflow.compiler.ir import Node, Program, Value
from graphflow.compiler.options import CompilerOptions
from graphflow.compiler.pass_manager import Pass
from graphflow.framework.op_def import (
    BROADCAST,
    ELEMENTWISE,
    INJECTIVE,
    OPAQUE,
    REDUCTION,
)

# Group patterns, from most to least fusible.
ELEMENTWISE_GROUP = "elementwise"
INJECTIVE_GROUP = "injective"
REDUCTION_GROUP = "reduction"
OPAQUE_GROUP = "opaque"
SINGLE = "single"  # a node that fuses with nothing (stateful, source, multi-output)

_EMPTY: frozenset[int] = frozenset()
# Opaque ops after which a reduction may join the epilogue (see the module docstring).
REDUCING_ANCHORS = frozenset({"MatMul", "BatchMatMulV2"})
_MAX_CANDIDATES = 3  # producer groups a node tries to join


def is_resident(n: Node) -> bool:
    """Constants and variable handles: bound before the run, in no group."""
    return n.type in ("Const", "VariableV2")


def node_class(n: Node) -> str:
    """``"E"`` elementwise/broadcast, ``"I"`` injective, ``"R"`` reduction,
    ``"O"`` opaque library op, ``"X"`` stands alone."""
    if n.stateful or n.regions or n.num_outputs != 1:
        return "X"
    k = n.kind
    if k in (ELEMENTWISE, BROADCAST):
        return "E"
    if k == INJECTIVE:
        return "I"
    if k == REDUCTION:
        return "R"
    if k == OPAQUE:
        return "O"
    return "X"


def phases(program: Program) -> dict[int, frozenset[int]]:
    """node id -> the ids of the variable writers it depends on (transitively).

    The reference schedule runs every ready non-writer before any writer, so a
    node runs right after the last writer it depends on: nodes with the same
    set run between the same writes and see the same variable values, whatever
    their grouping.
    """
    out: dict[int, frozenset[int]] = {}
    interned: dict[frozenset[int], frozenset[int]] = {_EMPTY: _EMPTY}
    for n in program.nodes:
        acc: frozenset[int] | None = None
        for p in [q for q, _ in n.inputs] + n.control_inputs:
            s = out.get(p.id, _EMPTY)
            if p.is_writer:
                s = s | {p.id}
            if s:
                acc = s if acc is None or acc is s else acc | s
        if acc is None:
            out[n.id] = _EMPTY
        else:
            out[n.id] = interned.setdefault(acc, acc)
    return out


class Group:
    """A fusion group: nodes evaluated together as one kernel.

    Attributes:
      id: index in creation order.
      nodes: members in topological order.
      pattern: one of the ``*_GROUP`` constants or ``SINGLE``.
      phase: the writers every member depends on (see :func:`phases`).
      preds: ids of groups this one consumes from.
      inputs: values the group reads from outside (set by :func:`finish_groups`).
      outputs: values used outside the group or fetched (same).
    """

    __slots__ = ("id", "nodes", "pattern", "phase", "min_pos", "max_pos", "post", "preds",
                 "succs", "inputs", "outputs", "closed", "anchor_shape", "dead")

    def __init__(self, gid: int, node: Node, pattern: str, phase: frozenset[int],
                 pos: int, closed: bool) -> None:
        self.id = gid
        self.nodes = [node]
        self.pattern = pattern
        self.phase = phase
        self.min_pos = pos
        self.max_pos = pos
        # Ids of members after the reduction/opaque anchor (the anchor included).
        self.post: set[int] = {node.id} if pattern in (REDUCTION_GROUP, OPAQUE_GROUP) else set()
        # Static output shape of the reduction / opaque op (epilogues must keep it).
        self.anchor_shape = node.shapes[0].values if self.post else None
        self.preds: set[int] = set()
        self.succs: set[int] = set()
        self.dead = False  # merged into another group
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.closed = closed

    @property
    def is_writer(self) -> bool:
        return len(self.nodes) == 1 and self.nodes[0].is_writer

    @property
    def seq(self) -> int:
        return min(n.seq for n in self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        return f"<Group {self.id} {self.pattern}: {' '.join(n.type for n in self.nodes)}>"


def partition(program: Program, options: CompilerOptions | None, fuse: bool = True
              ) -> list[Group]:
    """Partitions the non-resident nodes of ``program`` into groups.

    Args:
      program: the program (its nodes in topological order).
      options: ``max_group_size`` and ``convexity_budget`` come from here.
      fuse: False gives one group per node (fusion switched off).

    Returns:
      The groups in creation order (a topological order of the group DAG).
    """
    max_size = options.max_group_size if options else 64
    budget = options.convexity_budget if options else 512
    phase = phases(program)
    pos = {n.id: i for i, n in enumerate(program.nodes)}
    groups: list[Group] = []
    group_of: dict[int, Group] = {}

    def new_group(n: Node, pattern: str, closed: bool) -> Group:
        g = Group(len(groups), n, pattern, phase[n.id], pos[n.id], closed)
        groups.append(g)
        group_of[n.id] = g
        return g

    def reaches(src: Group, target: Group) -> bool | None:
        """True if ``src`` depends on ``target`` (None: gave up)."""
        stack = [src]
        seen = {src.id}
        while stack:
            h = stack.pop()
            if h is target:
                return True
            if len(seen) > budget:
                return None
            for pid in h.preds:
                if pid not in seen:
                    q = groups[pid]
                    seen.add(pid)
                    # A group ending before target starts cannot depend on it.
                    if q.max_pos >= target.min_pos:
                        stack.append(q)
        return False

    def deps_of(n: Node) -> list[Node]:
        return [p for p, _ in n.inputs] + n.control_inputs

    def can_join(g: Group, n: Node, cls: str) -> bool:
        if g.closed or len(g.nodes) >= max_size or g.phase is not phase[n.id]:
            return False
        if cls == "E":
            if g.pattern in (REDUCTION_GROUP, OPAQUE_GROUP):
                # Epilogue only: everything n reads from g comes after the anchor, and n
                # keeps the anchor's output shape (one loop over the anchor's result).
                if any(group_of.get(p.id) is g and p.id not in g.post for p, _ in n.inputs):
                    return False
                if n.shapes[0].values != g.anchor_shape:
                    return False
            elif g.pattern == ELEMENTWISE_GROUP:
                # One loop shape per group: a larger consumer would recompute the
                # group's smaller-shaped values once per element it broadcasts to.
                shape = n.shapes[0].values
                if shape is None or shape != g.nodes[0].shapes[0].values:
                    return False
        elif cls == "I":
            if g.pattern not in (ELEMENTWISE_GROUP, INJECTIVE_GROUP):
                return False
        elif cls == "R":
            if g.pattern == OPAQUE_GROUP:
                # Over the anchor's loop (everything read from g after the anchor, of its
                # shape), once per group; later epilogue nodes read only the reduction.
                if (g.nodes[0].type not in REDUCING_ANCHORS or len(n.inputs) != 1
                        or any(node_class(m) == "R" for m in g.nodes)):
                    return False
                p, i = n.inputs[0]
                if (group_of.get(p.id) is not g or p.id not in g.post
                        or g.anchor_shape is None or p.shapes[i].values != g.anchor_shape):
                    return False
            elif g.pattern not in (ELEMENTWISE_GROUP, INJECTIVE_GROUP):
                return False
        else:
            return False
        for p in deps_of(n):
            h = group_of.get(p.id)
            if h is None or h is g or h.max_pos < g.min_pos:
                continue  # a group that ended before g began cannot depend on g
            r = reaches(h, g)
            if r is None or r:
                return False
        return True

    def mergeable(g: Group, h: Group, n: Node) -> bool:
        """Whether sibling group ``h`` may join ``g`` (acyclicity is checked apart)."""
        if (h.pattern != ELEMENTWISE_GROUP or h.closed or h.phase is not g.phase
                or len(g.nodes) + len(h.nodes) > max_size):
            return False
        # One loop over n's shape: h must not be computed on a smaller (broadcast) shape,
        # which the merged loop would recompute per element.
        shape = n.shapes[0].values
        return shape is not None and all(m.shapes[0].values == shape for m in h.nodes)

    def merge(g: Group, h: Group) -> None:
        for m in h.nodes:
            group_of[m.id] = g
        g.nodes = sorted(g.nodes + h.nodes, key=lambda m: pos[m.id])
        g.min_pos = min(g.min_pos, h.min_pos)
        g.max_pos = max(g.max_pos, h.max_pos)
        g.preds = (g.preds | h.preds) - {g.id, h.id}
        for q in h.preds:
            groups[q].succs.discard(h.id)
            groups[q].succs.add(g.id)
        for q in h.succs:
            if q != g.id:
                groups[q].preds.discard(h.id)
                groups[q].preds.add(g.id)
        g.succs = (g.succs | h.succs) - {g.id, h.id}
        h.dead = True
        h.nodes = []
        h.preds = set()
        h.succs = set()

    for n in program.nodes:
        if is_resident(n):
            continue
        cls = node_class(n)
        joined = None
        if fuse and cls in ("E", "I", "R"):
            # The latest producer group first: its merge is the likeliest to stay acyclic
            # and the cheapest to prove so. A few tries bound the work for wide nodes.
            cands = {g.id: g for g in (group_of.get(p.id) for p, _ in n.inputs) if g}
            for g in sorted(cands.values(), key=lambda g: -g.max_pos)[:_MAX_CANDIDATES]:
                if can_join(g, n, cls):
                    joined = g
                    break
        if joined is not None:
            g = joined
            g.nodes.append(n)
            g.max_pos = pos[n.id]
            group_of[n.id] = g
            if cls == "R" and g.pattern == OPAQUE_GROUP:
                g.post = {n.id}
                g.anchor_shape = n.shapes[0].values
            elif cls == "R":
                g.pattern = REDUCTION_GROUP
                g.post.add(n.id)
                g.anchor_shape = n.shapes[0].values
            elif cls == "I" and g.pattern == ELEMENTWISE_GROUP:
                g.pattern = INJECTIVE_GROUP
            elif g.post:
                g.post.add(n.id)
        else:
            pattern = {"E": ELEMENTWISE_GROUP, "I": INJECTIVE_GROUP, "R": REDUCTION_GROUP,
                       "O": OPAQUE_GROUP}.get(cls, SINGLE)
            g = new_group(n, pattern, closed=cls == "X" or not fuse)
        for p in deps_of(n):
            h = group_of.get(p.id)
            if h is not None and h is not g:
                g.preds.add(h.id)
                h.succs.add(g.id)
        if joined is not None and g.pattern == ELEMENTWISE_GROUP:
            # Sibling merge: n also consumes other elementwise groups; pulling them in
            # makes a chain like f(x) * g(x) + h(y) one loop instead of one per branch.
            for p, _ in n.inputs:
                h = group_of.get(p.id)
                if (h is not None and h is not g and mergeable(g, h, n)
                        and not any(reaches(groups[q], h) is not False
                                    for q in g.preds if q != h.id)):
                    merge(g, h)
    live = [g for g in groups if not g.dead]
    renumber = {g.id: k for k, g in enumerate(live)}
    for k, g in enumerate(live):
        g.id = k
        g.preds = {renumber[q] for q in g.preds}
        g.succs = {renumber[q] for q in g.succs}
    finish_groups(program, live, group_of)
    return live


def finish_groups(program: Program, groups: list[Group], group_of: dict[int, Group]) -> None:
    """Fills each group's external ``inputs`` and ``outputs``."""
    needed_outside: set[tuple[int, int]] = {(p.id, i) for p, i in program.outputs}
    for n in program.nodes:
        g = group_of.get(n.id)
        for p, i in n.inputs:
            if group_of.get(p.id) is not g:
                needed_outside.add((p.id, i))
    for g in groups:
        members = {n.id for n in g.nodes}
        seen: set[tuple[int, int]] = set()
        for n in g.nodes:
            for p, i in n.inputs:
                if p.id not in members and (p.id, i) not in seen:
                    seen.add((p.id, i))
                    g.inputs.append((p, i))
        g.outputs = [(n, i) for n in g.nodes for i in range(n.num_outputs)
                     if (n.id, i) in needed_outside]


class Fusion(Pass):
    """Partitions the program into fusion groups (``program.groups``)."""

    name = "fusion"

    def run(self, program: Program, options: CompilerOptions) -> dict[str, Any]:
        program.groups = partition(program, options, fuse=True)
        fused = sum(len(g) for g in program.groups if len(g) > 1)
        by_pattern: dict[str, int] = {}
        for g in program.groups:
            by_pattern[g.pattern] = by_pattern.get(g.pattern, 0) + 1
        return {"groups": len(program.groups), "fused_nodes": fused,
                "largest": max((len(g) for g in program.groups), default=0),
                **dict(sorted(by_pattern.items()))}
