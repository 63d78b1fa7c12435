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


class RunMetadata(_Options):
    """TF1's ``tf.RunMetadata``: filled by runs that trace (a later backend's job)."""

    _defaults = {"step_stats": None, "partition_graphs": list, "cost_graph": None}
