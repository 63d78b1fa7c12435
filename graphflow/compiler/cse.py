"""Common-subexpression elimination: one node per distinct pure computation.

Two nodes merge when they have the same type, attributes (exactly: ``0.0`` and
``-0.0`` differ, constants compare by value), inputs and control inputs.
Stateful nodes (variables, assignments, random ops) never merge: two random
ops with equal attributes still draw different numbers. Variable reads merge
only with reads of the same variable after the same control inputs, which run
between the same writes (see ``fusion.phases``) and so see the same value.
"""

from __future__ import annotations

from graphflow.compiler.ir import Node, Value, freeze_attrs
from graphflow.compiler.options import CompilerOptions
from graphflow.compiler.pass_manager import Pass
from graphflow.compiler.rewrite import Rewriter
from graphflow.framework.op_def import SOURCE


class CommonSubexpressionElimination(Pass):
    """Replaces a node by an earlier identical one."""

    name = "cse"

    def run(self, program, options: CompilerOptions):
        seen: dict[tuple, Node] = {}
        merged = 0

        def visit(rw: Rewriter, n: Node) -> list[Value] | None:
            nonlocal merged
            if n.num_outputs == 0 or (n.kind == SOURCE and n.type != "Const"):
                return None  # e.g. two unfed placeholders: the error must name the right one
            key = (n.type, freeze_attrs(n.attrs) if n.attrs else (),
                   tuple([(p.id, i) for p, i in n.inputs]),
                   tuple(sorted([c.id for c in n.control_inputs])) if n.control_inputs else ())
            other = seen.get(key)
            if other is None:
                seen[key] = n
                return None
            merged += 1
            rw.fired("merged")
            return [(other, i) for i in range(n.num_outputs)]

        removed = Rewriter(program, visit).run()
        return {"merged": merged, "removed": removed}
