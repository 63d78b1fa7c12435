"""A one-sweep rewriting engine shared by the graph-to-graph passes.

Nodes are visited in topological order. Before a node is visited its inputs
are redirected to whatever replaced their producers, so a rule always sees
its operands already rewritten; a rule returns replacement values for the
node's outputs (or None to keep it). New nodes a rule builds go through the
same rules before they are placed, so rewrites cascade (``T(T(x))`` becoming an
identity transpose becoming ``x``) in a single sweep. Dead nodes are dropped at
the end.

Safety rules every pass inherits:
  * a node some other node names as a control input is never replaced
    (its control users would lose what they wait for), nor a node fetched as
    a target (it must run, errors included);
  * stateful nodes are never replaced;
  * a value is never replaced by a variable handle: consumers of a variable
    read it when *they* run, so the read would move.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphflow.compiler.ir import Node, Program, Value
from graphflow.framework import op_def as _op_def
from graphflow.framework.dtypes import DType
from graphflow.framework.tensor_shape import TensorShape

Rule = Callable[["Rewriter", Node], "list[Value] | None"]

_MAX_DEPTH = 16


class Rewriter:
    """Applies ``visit`` to every node of ``program`` once (see the module docstring).

    Attributes:
      program: the program being rewritten.
      counts: rule name -> how many times it fired.
    """

    def __init__(self, program: Program, visit: Rule) -> None:
        self.program = program
        self.visit = visit
        self.counts: dict[str, int] = {}
        self._repl: dict[tuple[int, int], Value] = {}
        self._out: list[Node] = []
        # Targets are run for themselves, control inputs for their users: neither may go.
        self._protected = program.control_users() | {t.id for t in program.targets}
        self._depth = 0
        self._last_rule = "rewrite"
        self._uses: dict[int, int] | None = None

    # --- used by rules ----------------------------------------------------------------
    def resolve(self, v: Value) -> Value:
        """The value that now stands for ``v``."""
        r = self._repl.get((v[0].id, v[1]))
        while r is not None:
            v = r
            r = self._repl.get((v[0].id, v[1]))
        return v

    def use_count(self, node: Node) -> int:
        """How many data inputs and program outputs read ``node`` in the program as it
        was before the sweep (a rule replacing a node's only consumer removes it)."""
        if self._uses is None:
            uses: dict[int, int] = {}
            for n in self.program.nodes:
                for p, _ in n.inputs:
                    uses[p.id] = uses.get(p.id, 0) + 1
            for p, _ in self.program.outputs:
                uses[p.id] = uses.get(p.id, 0) + 1
            self._uses = uses
        return self._uses.get(node.id, 0)

    def fired(self, rule: str) -> None:
        """Names the rule whose result the visit is about to return (counted if accepted)."""
        self._last_rule = rule

    def make(self, op_type: str, inputs: list[Value], attrs: dict[str, Any] | None = None,
             like: Node | None = None, dtypes: list[DType] | None = None,
             shapes: list[TensorShape] | None = None, name: str | None = None) -> list[Value]:
        """Builds a node, runs the rules on it, places it; returns its output values.

        Args:
          op_type: a registered op type.
          inputs: its inputs.
          attrs: its attributes.
          like: the node it replaces: gives origin, seq, and (by default) the
            output dtypes and shapes.
          dtypes, shapes: output types when they differ from ``like``'s.
          name: default ``<like's name>/<op_type>``.
        """
        assert like is not None or (dtypes is not None and shapes is not None)
        node = self.program.new_node(
            op_type, _op_def.lookup(op_type), attrs or {}, list(inputs),
            list(dtypes if dtypes is not None else like.dtypes),
            list(shapes if shapes is not None else like.shapes),
            name=name or (f"{like.name}/{op_type}" if like is not None else op_type),
            origin=like.origin if like is not None else None,
            seq=like.seq if like is not None else 0)
        return self.add(node)

    def make1(self, *args: Any, **kw: Any) -> Value:
        """:meth:`make` for single-output ops: the one output value."""
        return self.make(*args, **kw)[0]

    # --- the sweep --------------------------------------------------------------------
    def add(self, node: Node) -> list[Value]:
        """Rewrites ``node`` (inputs first) and places it or its replacement."""
        res = self._place(node)
        return res if res is not None else [(node, i) for i in range(len(node.dtypes))]

    def _place(self, node: Node) -> list[Value] | None:
        """:meth:`add` without building the result for a node kept as it is (None)."""
        repl = self._repl
        if repl:
            ins = node.inputs
            for k, v in enumerate(ins):
                if (v[0].id, v[1]) in repl:
                    ins[k] = self.resolve(v)
        if node.id not in self._protected and not node.op_def.stateful and \
                self._depth < _MAX_DEPTH:
            self._depth += 1
            res = self.visit(self, node)
            self._depth -= 1
            if res is not None and _acceptable(node, res):
                self.counts[self._last_rule] = self.counts.get(self._last_rule, 0) + 1
                for i, v in enumerate(res):
                    if v[0] is not node or v[1] != i:
                        repl[(node.id, i)] = v
                return res
        self._out.append(node)
        return None

    def run(self) -> int:
        """Rewrites the whole program; returns how many nodes were dropped or replaced."""
        before = len(self.program.nodes)
        place = self._place
        for node in self.program.nodes:
            place(node)
        p = self.program
        p.nodes = self._out
        p.outputs = [self.resolve(v) for v in p.outputs]
        p.compact()
        return before - len(p.nodes)


def _acceptable(node: Node, res: list[Value]) -> bool:
    if len(res) != node.num_outputs:
        raise AssertionError(f"rule returned {len(res)} values for {node}")
    for i, (p, j) in enumerate(res):
        if p is node and j == i:
            continue
        if p.produces_ref:
            return False
        if p.dtypes[j] is not node.dtypes[i]:
            raise AssertionError(f"rule changed the dtype of {node}:{i}")
    return True


def run_rules(program: Program, rules: list[tuple[str, tuple[str, ...] | None, Rule]]
              ) -> dict[str, Any]:
    """Applies a table of ``(name, op types it matches, rule)`` in one sweep.

    A rule whose op types are None sees every node, after the rules for its type.

    Returns:
      Counts for the report: rewrites, nodes removed, and how often each rule fired.
    """
    by_type: dict[str, list[tuple[str, Rule]]] = {}
    every: list[tuple[str, Rule]] = []
    for name, types, rule in rules:
        if types is None:
            every.append((name, rule))
            continue
        for t in types:
            by_type.setdefault(t, []).append((name, rule))

    def visit(rw: Rewriter, node: Node) -> list[Value] | None:
        for name, rule in (*by_type.get(node.type, ()), *every):
            res = rule(rw, node)
            if res is not None:
                rw.fired(name)
                return res
        return None

    rw = Rewriter(program, visit)
    removed = rw.run()
    return {"rewrites": sum(rw.counts.values()), "removed": removed,
            **({"fired": dict(sorted(rw.counts.items()))} if rw.counts else {})}
