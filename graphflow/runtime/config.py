"""Session and run options with TF1's names (``gf.ConfigProto``, ``gf.RunOptions``, ...).

TF1 programs pass these to ``Session`` and ``run``; graphflow keeps the values so
code that sets or reads them works. Options about devices, threads and memory
placement do not change how the reference backend runs.
"""

from __future__ import annotations

from typing import Any


class _Options:
    """A record of keyword options; unknown names are kept, as protobuf messages would
    reject them only at serialization time, which graphflow never does for these."""

    _defaults: dict[str, Any] = {}

    def __init__(self, **kwargs: Any) -> None:
        for k, v in self._defaults.items():
            setattr(self, k, v() if callable(v) else v)
        for k, v in kwargs.items():
            setattr(self, k, v)

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({items})"


class GPUOptions(_Options):
    """TF1's ``tf.GPUOptions``."""

    _defaults = {"allow_growth": False, "per_process_gpu_memory_fraction": 0.0,
                 "visible_device_list": ""}


class OptimizerOptions(_Options):
    """TF1's ``tf.OptimizerOptions``."""

    L1 = 0
    L0 = -1
    _defaults = {"opt_level": 0, "do_constant_folding": True,
                 "do_common_subexpression_elimination": True, "do_function_inlining": True,
                 "global_jit_level": 0}


class GraphOptions(_Options):
    """TF1's ``tf.GraphOptions``."""

    _defaults = {"optimizer_options": OptimizerOptions, "infer_shapes": False,
                 "place_pruned_graph": False, "enable_bfloat16_sendrecv": False}


class ConfigProto(_Options):
    """TF1's ``tf.ConfigProto``: options for a Session."""

    _defaults = {"allow_soft_placement": False, "log_device_placement": False,
                 "intra_op_parallelism_threads": 0, "inter_op_parallelism_threads": 0,
                 "gpu_options": GPUOptions, "graph_options": GraphOptions,
                 "device_count": dict, "operation_timeout_in_ms": 0}


class RunOptions(_Options):
    """TF1's ``tf.RunOptions`` with its trace levels."""

    NO_TRACE = 0
    SOFTWARE_TRACE = 1
    HARDWARE_TRACE = 2
    FULL_TRACE = 3
    _defaults = {"trace_level": 0, "timeout_in_ms": 0, "output_partition_graphs": False,
                 "report_tensor_allocations_upon_oom": False}


class StepStats:
    """One traced kernel: which step of the plan, its ops, and when it ran.

    Attributes:
      index: position of the step in the plan.
      name: the step's first op name (its kernel's name in traces).
      op_types: the types of the ops the kernel evaluates (fused ops: several).
      op_names: their names.
      compiled: True if the step ran as a generated kernel, False if op by op.
      start, duration: seconds (``time.perf_counter``) and seconds.
    """

    __slots__ = ("index", "name", "op_types", "op_names", "compiled", "start", "duration")

    def __init__(self, index: int, name: str, op_types: list[str], op_names: list[str],
                 compiled: bool, start: float, duration: float) -> None:
        self.index = index
        self.name = name
        self.op_types = op_types
        self.op_names = op_names
        self.compiled = compiled
        self.start = start
        self.duration = duration

    def __repr__(self) -> str:
        return (f"<StepStats {self.index} {self.name} [{' '.join(self.op_types)}] "
                f"{self.duration * 1e6:.1f} us>")


class RunMetadata(_Options):
    """TF1's ``tf.RunMetadata``: filled with per-kernel times by a traced run.

    ``sess.run(..., options=gf.RunOptions(trace_level=gf.RunOptions.FULL_TRACE),
    run_metadata=md)`` records one :class:`StepStats` per kernel of the compiled
    plan in ``md.step_stats`` (a new traced run replaces them).
    """

    _defaults = {"step_stats": list, "partition_graphs": list, "cost_graph": None}

    def chrome_trace(self) -> str:
        """The trace as Chrome trace-event JSON (chrome://tracing, Perfetto)."""
        import json

        if not self.step_stats:
            return json.dumps({"traceEvents": []})
        t0 = min(s.start for s in self.step_stats)
        events = [{
            "name": s.name, "cat": "compiled" if s.compiled else "reference", "ph": "X",
            "ts": (s.start - t0) * 1e6, "dur": s.duration * 1e6, "pid": 0, "tid": 0,
            "args": {"step": s.index, "ops": s.op_names, "op_types": s.op_types},
        } for s in self.step_stats]
        return json.dumps({"traceEvents": events, "displayTimeUnit": "ms"})

    def write_chrome_trace(self, path: str) -> None:
        """Writes :meth:`chrome_trace` to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.chrome_trace())

    def summary_by_op_type(self) -> dict[str, float]:
        """Seconds per op type, slowest first; a fused kernel's time is split evenly
        among its ops (a kernel has no finer timing)."""
        totals: dict[str, float] = {}
        for s in self.step_stats:
            share = s.duration / max(len(s.op_types), 1)
            for t in s.op_types:
                totals[t] = totals.get(t, 0.0) + share
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))

    def time_by_op_name(self) -> dict[str, float]:
        """Seconds per op name (fused kernels split evenly), for colouring graph images."""
        out: dict[str, float] = {}
        for s in self.step_stats:
            share = s.duration / max(len(s.op_names), 1)
            for n in s.op_names:
                out[n] = out.get(n, 0.0) + share
        return out
