"""The reference backend: evaluates with NumPy, op by op (DESIGN principle 3).

Two executables follow one evaluation rule (:func:`run_op` / :func:`eval_node`):

* :class:`PlanExecutable` runs a compiled :class:`~graphflow.compiler.Plan`:
  each step (a fusion group) is evaluated op by op with the ops' reference
  functions, reading and writing the plan's buffers. This is what
  ``Session(backend="reference")`` runs.
* :class:`ReferenceExecutable` is the direct interpreter over the user's graph,
  with no compiler in between (``Session(backend="interpreter")``): the oracle
  compiled plans are tested against.

Both favour clarity and exact NumPy semantics over speed.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from graphflow.compiler.ir import Node, OpView
from graphflow.compiler.lower import execution_order
from graphflow.compiler.plan import KernelStep, Plan
from graphflow.framework import errors
from graphflow.framework.graph import Operation, Tensor
from graphflow.ops.state_ops import VarRef
from graphflow.runtime import fperr

__all__ = ["NodeEval", "PlanExecutable", "ReferenceExecutable", "RunState", "eval_node",
           "execution_order", "fits_shape", "run_op"]


class RunState:
    """Per-session state ops read and write: variable values and random streams."""

    def __init__(self) -> None:
        self.variables: dict[str, np.ndarray] = {}
        # Storage arrays a compiled backend created and may update in place (name ->
        # array); an entry counts only while it is still the variable's value.
        self.owned: dict[str, np.ndarray] = {}
        self._rngs: dict[str, np.random.Generator] = {}

    def rng(self, op: Operation) -> np.random.Generator:
        """The random stream of ``op`` in this session: seeded ops repeat across sessions."""
        g = self._rngs.get(op.name)
        if g is None:
            seed, seed2 = op.get_attr("seed"), op.get_attr("seed2")
            if seed == 0 and seed2 == 0:
                g = np.random.default_rng()
            else:
                g = np.random.Generator(np.random.PCG64([int(seed), int(seed2)]))
            self._rngs[op.name] = g
        return g


class ReferenceExecutable:
    """Evaluates a fixed set of fetches from a fixed set of feeds, op by op, on the graph."""

    def __init__(self, fetch_tensors: list[Tensor], target_ops: list[Operation],
                 feed_tensors: list[Tensor]) -> None:
        self.fetch_tensors = fetch_tensors
        self.feed_tensors = feed_tensors
        roots = [t.op for t in fetch_tensors if t not in set(feed_tensors)] + target_ops
        self.order = execution_order(roots, set(feed_tensors))
        # Runs that change state (variables, random streams) exclude all other runs.
        self.exclusive = any(op._op_def.stateful and op.type != "VariableV2"
                             for op in self.order)

    def close(self) -> None:
        """Frees what the executable keeps between runs (the NumPy backends keep nothing)."""

    def run(self, feeds: dict[Tensor, np.ndarray], state: RunState) -> list[Any]:
        values: dict[Tensor, Any] = dict(feeds)
        with np.errstate(all="ignore"):
            for op in self.order:
                run_op(op, values, state)
        out = []
        for t in self.fetch_tensors:
            v = values[t]
            if isinstance(v, VarRef):
                v = v.read(t.op)
            out.append(v)
        return out


def run_op(op: Operation, values: dict[Tensor, Any], state: RunState) -> None:
    """Evaluates one op, reading its inputs from and writing its outputs to ``values``."""
    opdef = op._op_def
    refs = opdef.ref_inputs
    args = []
    for i, t in enumerate(op._inputs):
        v = values[t]
        if isinstance(v, VarRef) and i not in refs:
            v = v.read(op)
        args.append(v)
    try:
        result = opdef.reference(op, args, state)
    except errors.OpError as e:
        if e.op is not None:
            raise
        raise type(e)(None, op, f"{op.type} op '{op.name}': {e.message}") from None
    except (ValueError, TypeError, IndexError, ArithmeticError, MemoryError) as e:
        raise errors.InvalidArgumentError(
            None, op, f"{op.type} op '{op.name}' failed: {_reason(e, args)}") from None
    outs = op._outputs
    if len(outs) == 1:
        result = [result]
    elif len(outs) == 0:
        return
    for t, v in zip(outs, result):
        if not isinstance(v, VarRef):
            v = np.asarray(v)
            if v.dtype != t.dtype.np:
                v = v.astype(t.dtype.np)
            if not t.shape.is_compatible_with(v.shape):
                raise errors.InternalError(
                    None, op, f"{op.type} op '{op.name}' produced shape {v.shape} for "
                              f"{t.name}, whose static shape is {t.shape}")
        values[t] = v


def _reason(e: Exception, args: list[Any]) -> str:
    """The message for an op's failure; NumPy's broadcast error in TF1's words."""
    if isinstance(e, ValueError) and "could not be broadcast" in str(e):
        return "Incompatible shapes: " + " vs. ".join(str(list(np.shape(a))) for a in args
                                                      if not isinstance(a, VarRef))
    return str(e)


# --- compiled plans ---------------------------------------------------------------------
def _user_op(node: Node) -> Any:
    """The user's Operation a node stands for (errors name it and its source line)."""
    return node.origin if node.origin is not None else node.ref_op()


def input_users(step: Any) -> list[Node]:
    """Per input value of ``step``, the first of its nodes that reads it (errors about
    the value, such as an uninitialized variable, name that op)."""
    users = []
    for v in step.inputs:
        users.append(next(n for n in step.nodes
                          if any(p.id == v[0].id and i == v[1] for p, i in n.inputs)))
    return users


def read_inputs(env: list[Any], buffers: list[int], users: list[Node]) -> list[np.ndarray]:
    """The arrays in ``env[buffers]``; variable handles are read for their ``users``."""
    args = []
    for b, user in zip(buffers, users):
        v = env[b]
        if type(v) is not np.ndarray:
            if isinstance(v, VarRef):
                v = v.read(_user_op(user))
            v = np.asarray(v)
        args.append(v)
    return args


def eval_node(node: Node, args: list[Any], state: RunState) -> list[Any]:
    """Evaluates one IR node on its input values; returns one value per output.

    The same rule as :func:`run_op`: variable handles are read (as of now) unless
    the input takes a reference; outputs are cast to the node's dtype and
    checked against its static shape; errors name the user's op and line.
    Steps that evaluate a node on every run use :class:`NodeEval`, which does
    the lookups once.
    """
    return NodeEval(node)(args, state)


class NodeEval:
    """:func:`eval_node` for one node, with its lookups done once: ``f(args, state)``."""

    __slots__ = ("node", "reference", "op", "refs", "outs", "single")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.reference = node.op_def.reference
        self.op = node.ref_op()
        self.refs = frozenset(node.op_def.ref_inputs)
        # Per output: (NumPy dtype, static dims or None).
        self.outs = [(d.np, s.values) for d, s in zip(node.dtypes, node.shapes)]
        self.single = len(self.outs) == 1

    def __call__(self, args: list[Any], state: RunState) -> list[Any]:
        for i, v in enumerate(args):
            if type(v) is VarRef and i not in self.refs:
                args[i] = v.read(_user_op(self.node))
        try:
            result = self.reference(self.op, args, state)
        except errors.OpError as e:
            user = _user_op(self.node)
            if e.op is not None and not isinstance(e.op, OpView):
                raise
            if isinstance(e.op, OpView):
                raise type(e)(None, user, e.message) from None
            raise type(e)(None, user, f"{user.type} op '{user.name}': {e.message}") from None
        except (ValueError, TypeError, IndexError, ArithmeticError, MemoryError) as e:
            user = _user_op(self.node)
            raise errors.InvalidArgumentError(
                None, user, f"{user.type} op '{user.name}' failed: {_reason(e, args)}") from None
        if not self.outs:
            return []
        results = [result] if self.single else list(result)
        for k, (dt, dims) in enumerate(self.outs):
            v = results[k]
            if type(v) is not np.ndarray:
                if isinstance(v, VarRef):
                    continue
                v = np.asarray(v)
            if v.dtype is not dt and v.dtype != dt:
                v = v.astype(dt)
            if dims is not None and v.shape != dims and not fits_shape(v.shape, dims):
                user = _user_op(self.node)
                raise errors.InternalError(
                    None, user, f"{user.type} op '{user.name}' produced shape {v.shape} for "
                                f"output {k}, whose static shape is {self.node.shapes[k]}")
            results[k] = v
        return results


def fits_shape(shape: tuple[int, ...], dims: tuple[int | None, ...] | None) -> bool:
    """Whether a concrete shape matches static dims (a None dim: any size; None: any
    shape)."""
    if dims is None or shape == dims:
        return True
    return len(shape) == len(dims) and all(d is None or d == n for d, n in zip(dims, shape))


class _CompiledKernel:
    """A KernelStep prepared for evaluation: its nodes evaluated in order by one
    generated function, with each argument's source (a buffer or an earlier node's
    output) resolved when the step is built."""

    __slots__ = ("nodes", "run")

    def __init__(self, step: KernelStep) -> None:
        where = {(v[0].id, v[1]): b for v, b in zip(step.inputs, step.in_buffers)}
        local: dict[int, int] = {n.id: k for k, n in enumerate(step.nodes)}
        self.nodes = step.nodes
        ns: dict[str, Any] = {}
        lines = ["def run(env, state):"]
        for k, n in enumerate(step.nodes):
            ns[f"e{k}"] = NodeEval(n)
            args = ", ".join(f"r{local[p.id]}[{i}]" if p.id in local else f"env[{where[(p.id, i)]}]"
                             for p, i in n.inputs)
            lines.append(f"    r{k} = e{k}([{args}], state)")
        for v, b in zip(step.outputs, step.out_buffers):
            lines.append(f"    env[{b}] = r{local[v[0].id]}[{v[1]}]")
        if len(lines) == 1:
            lines.append("    pass")
        exec(compile("\n".join(lines), "<graphflow step>", "exec"), ns)
        self.run = ns["run"]


class PlanExecutable:
    """Runs a compiled Plan with NumPy: each step's nodes evaluated in order.

    Args:
      plan: from :func:`graphflow.compiler.build_plan`.

    Raises:
      errors.UnimplementedError: if the plan has a step this backend cannot run.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._template: list[Any] = [None] * len(plan.buffers)
        for b, value in plan.constants:
            self._template[b] = value
        self._const_roots = {id(_root(v)) for _, v in plan.constants
                             if type(v) is np.ndarray}
        self._const_buffers = {b for b, _ in plan.constants}
        # Runs that change state (variables, random streams) exclude all other runs.
        self.exclusive = any(s.is_writer or any(n.op_def.stateful and n.type != "VariableV2"
                                                for n in s.nodes) for s in plan.steps)
        self._runner: Any = None
        # Steps a backend runs as one call in untraced runs: first step -> (the step
        # after the last, the call ``f(env, state)``).
        self._segments: dict[int, tuple[int, Any]] = {}
        self._kernels = []
        for s in plan.steps:
            if not isinstance(s, KernelStep):
                raise errors.UnimplementedError(
                    None, None, f"The reference backend cannot run a {type(s).__name__} yet")
            self._kernels.append(_CompiledKernel(s))

    def close(self) -> None:
        """Frees what the executable keeps between runs (the NumPy backends keep nothing)."""

    def run(self, feeds: dict[Tensor, np.ndarray], state: RunState,
            trace: list[Any] | None = None) -> list[Any]:
        """Runs the plan; returns one value per fetched tensor (variables read at the end).

        With ``trace`` (a list), appends ``(step, kernel, start, end)`` per step, times
        from ``time.perf_counter``; untraced runs pay nothing for it.
        """
        values = [feeds[t] for t, _ in self.plan.inputs]
        if trace is None:
            return self.run_inputs(values, state)
        env = self._start(values, state)
        token = fperr.ignore()
        try:
            clock = time.perf_counter
            for step, k in zip(self.plan.steps, self._kernels):
                start = clock()
                k.run(env, state)
                trace.append((step, k, start, clock()))
        finally:
            fperr.restore(token)
        return self._finish(env, values, state)

    @property
    def input_tensors(self) -> list[Tensor]:
        """The fed tensors the plan reads, in the order :meth:`run_inputs` takes them."""
        return [t for t, _ in self.plan.inputs]

    def run_inputs(self, values: list[Any], state: RunState) -> list[Any]:
        """:meth:`run` with the feeds given as arrays in ``input_tensors`` order (already
        converted and checked): the Session's fast path."""
        runner = self._runner
        if runner is None:
            runner = self._runner = self._make_runner()
        return runner(values, state)

    def _start(self, values: list[Any], state: RunState) -> list[Any]:
        env = list(self._template)
        for (_, b), v in zip(self.plan.inputs, values):
            env[b] = v
        for b, node in self.plan.variables:
            env[b] = VarRef(state.variables, node.ref_op())
        return env

    def _finish(self, env: list[Any], feeds: list[Any], state: RunState) -> list[Any]:
        out = []
        shared = False
        for (node, _), b in zip(self.plan.program.outputs, self.plan.outputs):
            v = env[b]
            if isinstance(v, VarRef):
                v = v.read(_user_op(node))
            if type(v) is np.ndarray and v.ndim:
                shared = True
            out.append(v)
        if shared:
            _detach(out, self._const_roots, feeds, state)
        return out

    def _make_runner(self) -> Any:
        """One Python function running the whole plan: each step's kernel bound to a
        local name and called in order, no per-step loop or lookup. Made on the first
        run (and again when a subclass replaces kernels: set ``_runner`` to None)."""
        plan = self.plan
        ns: dict[str, Any] = {"template": self._template, "VarRef": VarRef, "fperr": fperr,
                              "finish": self._finish}
        lines = ["def run(feeds, state):", "    env = template.copy()"]
        for j, (_, b) in enumerate(plan.inputs):
            lines.append(f"    env[{b}] = feeds[{j}]")
        if plan.variables:
            lines.append("    variables = state.variables")
        for j, (b, node) in enumerate(plan.variables):
            ns[f"v{j}"] = node.ref_op()
            lines.append(f"    env[{b}] = VarRef(variables, v{j})")
        lines += ["    token = fperr.ignore()", "    try:", "        pass"]
        ns["ndarray"] = np.ndarray
        skip_to = 0
        for j, (step, k) in enumerate(zip(plan.steps, self._kernels)):
            if j < skip_to:
                continue
            if j in self._segments:  # steps j..end-1 as one call (a backend's segment)
                skip_to, ns[f"k{j}"] = self._segments[j]
                lines.append(f"        k{j}(env, state)")
                continue
            if getattr(k, "ran_earlier", False):  # an earlier slot's kernel ran this step
                continue
            ns[f"k{j}"] = k.run
            read = _pass_through(step, k)
            if read is None:
                lines.append(f"        k{j}(env, state)")
                continue
            # A variable read (Identity of a variable, mostly) inline: a kernel call per
            # read cost 3-18 us in a training step, where a big kernel before it had
            # evicted the interpreter's caches. Anything unusual takes the kernel.
            (a, b), ns[f"dt{j}"], ns[f"shape{j}"] = read
            lines += [f"        v = env[{a}]",
                      "        if type(v) is VarRef:",
                      "            v = v.store.get(v.op.name)",
                      f"        if (type(v) is ndarray and v.dtype is dt{j}"
                      f" and v.shape == shape{j}):",
                      f"            env[{b}] = v",
                      "        else:",
                      f"            k{j}(env, state)"]
        lines += ["    finally:", "        fperr.restore(token)"]
        # Outputs that are 0-d arrays made by this run need no variable read or detach.
        simple = all(node.shapes[i].values == () and b not in self._const_buffers
                     and b not in {v for v, _ in plan.variables}
                     and b not in {v for _, v in plan.inputs}
                     for (node, i), b in zip(plan.program.outputs, plan.outputs))
        if simple:
            lines.append("    return [" + "".join(f"env[{b}], " for b in plan.outputs) + "]")
        else:
            lines.append("    return finish(env, feeds, state)")
        exec(compile("\n".join(lines), f"<graphflow plan runner {id(self):x}>", "exec"), ns)
        return ns["run"]


# Ops whose reference hands its input on unchanged (the runner reads a variable through
# one inline; the CPU backend leaves a step of them to the reference, not a copy loop).
PASS_THROUGH = frozenset({"Identity", "StopGradient"})


def _pass_through(step: Any, kernel: Any) -> tuple | None:
    """``((in buffer, out buffer), dtype, shape)`` of a step that is one pass-through op
    of a fully known shape evaluated by the reference, else None."""
    if type(kernel) is not _CompiledKernel or len(step.nodes) != 1:
        return None
    node = step.nodes[0]
    dims = node.shapes[0].values if node.shapes else None
    if (node.type not in PASS_THROUGH or len(step.in_buffers) != 1
            or len(step.out_buffers) != 1 or dims is None or None in dims):
        return None
    return ((step.in_buffers[0], step.out_buffers[0]), node.dtypes[0].np, dims)


def _root(a: np.ndarray) -> np.ndarray:
    """The array owning ``a``'s memory (views chain through ``base``)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _detach(out: list[Any], const_roots: set[int], feeds: list[Any],
            state: RunState) -> None:
    """Copies results that share memory with what outlives the run: variable storage
    (updated later, maybe in place), the plan's constants, the caller's feed arrays."""
    keep = set(const_roots)
    keep.update(id(_root(a)) for a in state.variables.values() if type(a) is np.ndarray)
    keep.update(id(_root(a)) for a in feeds if type(a) is np.ndarray)
    for k, v in enumerate(out):
        if type(v) is np.ndarray and v.ndim and id(_root(v)) in keep:
            out[k] = v.copy()
