"""The CPU backend: a Plan whose elementwise fusion groups run as generated Numba loops.

:class:`CpuExecutable` is the reference :class:`PlanExecutable` with each
qualifying :class:`KernelStep` (see :mod:`.codegen`) replaced by a
:class:`FusedKernel`; every other step (library ops, reductions, unsupported
dtypes or expressions) keeps the reference evaluation of its ops. A fused
kernel that meets a run-time case it does not handle (inputs whose shapes do not
broadcast, an output smaller than the loop) runs the reference evaluation for
that call, which also produces the reference's error messages.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphflow.compiler.plan import KernelStep, Plan
from graphflow.kernels.cpu import cache, codegen
from graphflow.ops.state_ops import VarRef
from graphflow.runtime.reference import PlanExecutable, RunState, _CompiledKernel, _user_op

__all__ = ["CpuExecutable", "FusedKernel"]


class FusedKernel:
    """One elementwise fusion group run as one generated Numba loop over its output."""

    def __init__(self, step: KernelStep, body: list[str], fallback: _CompiledKernel,
                 fast_math: bool = codegen.DEFAULT_FAST_MATH) -> None:
        self.step = step
        self.fast_math = fast_math
        self.body = body
        self.fallback = fallback
        self.in_buffers = list(step.in_buffers)
        self.out_buffers = list(step.out_buffers)
        self.out_dtypes = [n.dtypes[i].np for n, i in step.outputs]
        self.in_users = []  # a user op per input, to read variable handles
        for v in step.inputs:
            user = next(n for n in step.nodes if any(p.id == v[0].id and i == v[1]
                                                     for p, i in n.inputs))
            self.in_users.append(user)
        # Per output: the group inputs it depends on (its shape is their broadcast).
        deps: dict[int, set[int]] = {}
        pos = {(n.id, i): j for j, (n, i) in enumerate(step.inputs)}
        for n in step.nodes:
            s: set[int] = set()
            for p, i in n.inputs:
                if (p.id, i) in pos:
                    s.add(pos[(p.id, i)])
                else:
                    s |= deps[p.id]
            deps[n.id] = s
        self.out_deps = [sorted(deps[n.id]) for n, _ in step.outputs]
        self._fns: dict[tuple, Any] = {}

    def _kernel(self, rank: int, dtypes: tuple) -> Any:
        key = (rank, dtypes)
        fn = self._fns.get(key)
        if fn is None:
            src = codegen.kernel_source(self.body, len(self.in_buffers), len(self.out_buffers),
                                        rank, self.fast_math)
            fn = self._fns[key] = cache.load_kernel(src, f"{rank}:{dtypes}")
        return fn

    @property
    def dispatchers(self) -> list[Any]:
        return list(self._fns.values())

    def run(self, env: list[Any], state: RunState) -> None:
        args = []
        for b, user in zip(self.in_buffers, self.in_users):
            v = env[b]
            if isinstance(v, VarRef):
                v = v.read(_user_op(user))
            args.append(np.asarray(v))
        shapes = [a.shape for a in args]
        try:
            shape = np.broadcast_shapes(*shapes)
        except ValueError:
            return self.fallback.run(env, state)
        for d in self.out_deps:
            if np.broadcast_shapes(*[shapes[j] for j in d]) != shape:
                return self.fallback.run(env, state)
        outs = [np.empty(shape, dt) for dt in self.out_dtypes]
        if all(s == shape for s in shapes) and all(a.flags.c_contiguous for a in args):
            # One flat loop over contiguous memory.
            flat_in = [a.reshape(-1) for a in args]
            flat_out = [o.reshape(-1) for o in outs]
            fn = self._kernel(1, tuple(a.dtype.str for a in args))
            cache.call_kernel(fn, flat_in + flat_out)
        elif len(shape) == 0:
            fn = self._kernel(1, tuple(a.dtype.str for a in args))
            cache.call_kernel(fn, [a.reshape(1) for a in args] + [o.reshape(1) for o in outs])
        else:
            views = [np.broadcast_to(a, shape) for a in args]
            fn = self._kernel(len(shape), tuple(a.dtype.str for a in args))
            cache.call_kernel(fn, views + outs)
        for b, o in zip(self.out_buffers, outs):
            env[b] = o


class CpuExecutable(PlanExecutable):
    """Runs a Plan with generated Numba kernels for elementwise groups (reference otherwise).

    Args:
      plan: the compiled plan.
      fast_math: use graphflow's vectorisable math functions (True) or libm
        (False); None takes the default (GRAPHFLOW_MATH=libm selects libm).

    Attributes:
      fused: the steps that run as generated kernels.
    """

    def __init__(self, plan: Plan, fast_math: bool | None = None) -> None:
        super().__init__(plan)
        if fast_math is None:
            fast_math = codegen.DEFAULT_FAST_MATH
        self.fused: list[FusedKernel] = []
        steps = [s for s in plan.steps if isinstance(s, KernelStep)]
        for k, (step, ref) in enumerate(zip(steps, self._kernels)):
            body = lower_step(step)
            if body is not None:
                fk = FusedKernel(step, body, ref, fast_math)
                self._kernels[k] = fk
                self.fused.append(fk)


def lower_step(step: KernelStep) -> list[str] | None:
    """The generated loop body of a step, or None when it runs the reference evaluation."""
    if step.is_writer or not step.outputs or not step.inputs:
        return None
    return codegen.group_body(step.nodes, step.inputs, step.outputs)
