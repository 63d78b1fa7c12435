"""The pass manager: one explicit, ordered list of passes, each timed and reported.

A pass is an object with a ``name`` and ``run(program, options) -> dict`` that
rewrites the compiler's Program in place and returns counts for the report.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from graphflow.compiler.ir import Program
from graphflow.compiler.options import CompilerOptions


class Pass:
    """Base of compiler passes.

    Attributes:
      name: how options and reports name the pass.
      required: True if the pipeline cannot work without it (it ignores options).
    """

    name = ""
    required = False

    def run(self, program: Program, options: CompilerOptions) -> dict[str, Any]:
        """Rewrites ``program`` in place; returns details for the report."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<Pass {self.name}>"


@dataclass
class PassRecord:
    """What one pass did: enabled or not, time taken, nodes before and after."""

    name: str
    enabled: bool
    seconds: float = 0.0
    nodes_before: int = 0
    nodes_after: int = 0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class CompileReport:
    """The passes of one compilation, in order; ``str()`` renders a table."""

    records: list[PassRecord] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.records)

    def __getitem__(self, name: str) -> PassRecord:
        for r in self.records:
            if r.name == name:
                return r
        raise KeyError(name)

    def __str__(self) -> str:
        rows = [f"{'pass':<18}{'on':<5}{'ms':>9}{'nodes':>15}  details"]
        for r in self.records:
            nodes = f"{r.nodes_before} -> {r.nodes_after}"
            det = ", ".join(f"{k}={v}" for k, v in r.details.items())
            rows.append(f"{r.name:<18}{'yes' if r.enabled else 'no':<5}"
                        f"{r.seconds * 1e3:>9.2f}{nodes:>15}  {det}")
        rows.append(f"{'total':<23}{self.seconds * 1e3:>9.2f}")
        return "\n".join(rows)


class PassManager:
    """Runs passes in order on a Program.

    Args:
      passes: the pipeline, in order. The default pipeline is
        :func:`graphflow.compiler.default_passes`.
    """

    def __init__(self, passes: Sequence[Pass]) -> None:
        self.passes = list(passes)

    def run(self, program: Program, options: CompilerOptions, report: CompileReport,
            snapshots: list[tuple[str, Program]] | None = None) -> Program:
        """Runs every enabled pass, recording each in ``report``.

        Args:
          program: rewritten in place.
          options: which passes run, and their limits.
          report: gets one record per pass (disabled passes too).
          snapshots: if given, gets ``(pass name, copy of the program)`` after
            each pass that ran.

        Returns:
          ``program``.
        """
        for p in self.passes:
            on = p.required or options.enabled(p.name)
            rec = PassRecord(p.name, on, nodes_before=len(program.nodes))
            if on:
                t0 = time.perf_counter()
                rec.details = p.run(program, options) or {}
                rec.seconds = time.perf_counter() - t0
                if snapshots is not None:
                    snapshots.append((p.name, program.clone()))
            rec.nodes_after = len(program.nodes)
            report.records.append(rec)
        return program
