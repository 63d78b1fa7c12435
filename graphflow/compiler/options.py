"""Compiler options: which passes run, and their limits.

Sessions take them as TF1's ``gf.ConfigProto(graph_options=gf.GraphOptions(
optimizer_options=gf.OptimizerOptions(...)))`` and/or a plain dict::

    gf.Session(optimizer_options={"constant_folding": False, "max_group_size": 16})
    gf.Session(optimizer_options={"default": False})   # every optional pass off
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Passes, in pipeline order. "prune" and "schedule" always run: without them there is
# no program to run (an unpruned graph would evaluate placeholders nobody fed).
PASS_NAMES = ("prune", "constant_folding", "cse", "simplify", "stabilize", "remap",
              "fusion", "schedule", "memory_plan")
REQUIRED_PASSES = ("prune", "schedule")
_ALIASES = {
    "common_subexpression_elimination": "cse",
    "arithmetic": "simplify",
    "algebraic_simplification": "simplify",
    "numerical_stabilization": "stabilize",
    "stabilization": "stabilize",
    "fuse": "fusion",
    "memory": "memory_plan",
}


@dataclass
class CompilerOptions:
    """What the pass manager runs.

    Attributes:
      passes: pass name -> enabled; names missing here use ``default``.
      default: whether optional passes not named in ``passes`` run.
      fold_max_bytes: constant folding never makes a constant larger than this.
      max_group_size: the most ops one fusion group (one kernel) may hold, so a
        backend's compile time per kernel stays bounded.
      convexity_budget: nodes the fusion pass may visit to prove one merge keeps
        a group convex; a merge that needs more is not made.
    """

    passes: dict[str, bool] = field(default_factory=dict)
    default: bool = True
    fold_max_bytes: int = 1 << 20
    max_group_size: int = 64
    convexity_budget: int = 512

    def enabled(self, name: str) -> bool:
        if name in REQUIRED_PASSES:
            return True
        return self.passes.get(name, self.default)

    @classmethod
    def make(cls, config: Any = None, optimizer_options: Any = None) -> CompilerOptions:
        """Options from a Session's ``config`` (ConfigProto) and ``optimizer_options``.

        Args:
          config: a ``gf.ConfigProto``, or None. ``graph_options.optimizer_options``
            maps ``do_constant_folding`` and ``do_common_subexpression_elimination``
            to the passes of those names; ``opt_level=OptimizerOptions.L0`` turns both
            off, as in TF1.
          optimizer_options: a :class:`CompilerOptions`, a ``gf.OptimizerOptions``,
            or a dict of pass names (or ``"default"``) to bools plus the numeric
            limits ``fold_max_bytes``, ``max_group_size``, ``convexity_budget``.
            It overrides ``config``.

        Raises:
          ValueError: for an unknown pass or option name.
          TypeError: for a value of the wrong type.
        """
        if isinstance(optimizer_options, CompilerOptions):
            return optimizer_options
        opts = cls()
        tf_opts = None
        graph_options = getattr(config, "graph_options", None) if config is not None else None
        if graph_options is not None:
            tf_opts = getattr(graph_options, "optimizer_options", None)
        if optimizer_options is not None and not isinstance(optimizer_options, dict):
            tf_opts, optimizer_options = optimizer_options, None
        if tf_opts is not None:
            _apply_tf1(opts, tf_opts)
        if optimizer_options:
            _apply_dict(opts, optimizer_options)
        return opts


def _apply_tf1(opts: CompilerOptions, tf_opts: Any) -> None:
    if getattr(tf_opts, "opt_level", 0) == -1:  # OptimizerOptions.L0: no optimizations
        opts.passes["constant_folding"] = False
        opts.passes["cse"] = False
        return
    if hasattr(tf_opts, "do_constant_folding"):
        opts.passes["constant_folding"] = bool(tf_opts.do_constant_folding)
    if hasattr(tf_opts, "do_common_subexpression_elimination"):
        opts.passes["cse"] = bool(tf_opts.do_common_subexpression_elimination)


_NUMERIC = ("fold_max_bytes", "max_group_size", "convexity_budget")


def _apply_dict(opts: CompilerOptions, d: dict[str, Any]) -> None:
    if "default" in d:
        opts.default = bool(d["default"])
        if not opts.default:
            # "default": False means every optional pass off unless named below.
            opts.passes = {}
    for key, value in d.items():
        if key == "default":
            continue
        if key in _NUMERIC:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TypeError(f"optimizer option {key!r} must be a positive int, got "
                                f"{value!r}")
            setattr(opts, key, value)
            continue
        name = _ALIASES.get(key, key)
        if name not in PASS_NAMES:
            known = ", ".join(PASS_NAMES[1:6] + PASS_NAMES[7:] + _NUMERIC)
            raise ValueError(f"Unknown optimizer option {key!r}; known: default, {known}")
        if name in REQUIRED_PASSES:
            if not value:
                raise ValueError(f"The {name!r} pass cannot be switched off: a run needs it")
            continue
        opts.passes[name] = bool(value)
