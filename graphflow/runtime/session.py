"""Session: runs fetches of a graph with feeds, keeping variables across runs."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphflow import compiler
from graphflow.framework import errors
from graphflow.framework.graph import Graph, Tensor, get_default_graph
from graphflow.ops.constant_op import to_numpy
from graphflow.runtime.fetches import flatten_fetches, split_targets
from graphflow.runtime.locks import SharedLock
from graphflow.runtime.reference import (
    PlanExecutable,
    ReferenceExecutable,
    RunState,
    fits_shape,
)

# "reference": compile to a Plan, evaluate it with NumPy. "interpreter": evaluate the
# graph op by op with no compiler in between (the oracle compiled plans are tested against).
# "cpu": compile the plan's elementwise fusion groups into Numba loops (graphflow.kernels.cpu,
# imported only when chosen; graphflow itself never imports numba).
BACKENDS = ("reference", "interpreter", "cpu")
_MAX_CACHED_PLANS = 256

_default_sessions = threading.local()


def _session_stack() -> list[Session]:
    s = getattr(_default_sessions, "stack", None)
    if s is None:
        s = _default_sessions.stack = []
    return s


def get_default_session() -> Session | None:
    """The innermost session of ``with sess.as_default()`` (or ``with Session()``)."""
    stack = _session_stack()
    return stack[-1] if stack else None


def _session_for(session: Session | None, graph: Graph) -> Session:
    s = session or get_default_session()
    if s is None:
        raise ValueError("Cannot evaluate tensor using `eval()`: No default session is "
                         "registered. Use `with sess.as_default()` or pass session=sess.")
    if s.graph is not graph:
        raise ValueError("Cannot use the given session to evaluate tensor: the tensor's graph "
                         "is different from the session's graph.")
    return s


class Session:
    """Runs operations of a graph (TF1's ``tf.Session``).

    Each distinct (fetches, fed tensors, graph version) is compiled once into a
    :class:`graphflow.compiler.Plan` (see ``gf.compiler``), cached, and run.

    Args:
      target: accepted for TF1 compatibility; must be empty.
      graph: the graph to run (default: the default graph).
      config: a ``gf.ConfigProto``; its ``graph_options.optimizer_options``
        switch constant folding and common-subexpression elimination.
      backend: ``"cpu"`` (the default) runs the compiled plan on the CPU:
        fusion groups as generated Numba loops (kernels cached on disk;
        loops under ``GRAPHFLOW_JIT_MIN_SIZE`` elements, default 4096, run
        NumPy instead of compiling), library kernels for convolutions, pools
        and softmax, in-place optimizer updates, the rest like
        ``"reference"``; ``"reference"`` runs the compiled plan with NumPy,
        op by op within each fusion group; ``"interpreter"`` runs the graph op
        by op without compiling (the oracle). ``GRAPHFLOW_BACKEND`` changes
        the default.
      device: where compiled backends run; unused by the reference backend.
      fast_math: for ``backend="cpu"``: True (the default) uses graphflow's
        vectorisable exp/log/tanh/... in generated kernels, False uses libm
        (``GRAPHFLOW_MATH=libm`` changes the default).
      optimizer_options: compiler passes to switch, e.g.
        ``{"constant_folding": False}`` or ``{"default": False}`` (all optional
        passes off); see :class:`graphflow.compiler.CompilerOptions`.

    Raises:
      ValueError: for an unknown backend or optimizer option.
    """

    def __init__(self, target: str = "", graph: Graph | None = None, config: Any = None,
                 backend: str | None = None, device: str | None = None,
                 optimizer_options: Any = None, fast_math: bool | None = None) -> None:
        if target:
            raise ValueError(f"graphflow runs in-process; target must be empty, got {target!r}")
        if backend is None:
            backend = os.environ.get("GRAPHFLOW_BACKEND") or "cpu"
        if backend not in BACKENDS:
            raise ValueError(f"Unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
        self._graph = graph or get_default_graph()
        self._config = config
        self._backend = backend
        self._fast_math = fast_math
        self._device = device
        self._compiler_options = compiler.CompilerOptions.make(config, optimizer_options)
        self._state = RunState()
        self._closed = False
        self._lock = threading.RLock()  # the plan caches
        self._run_lock = SharedLock()  # reading runs share it, writing runs hold it alone
        self._cache: dict[Any, Any] = {}
        # (fetches, feed keys) -> _Call: repeated runs skip fetch and feed-key resolution.
        self._fast: dict[Any, _Call] = {}
        self._default_ctx: list[Any] = []

    # --- properties & lifecycle -----------------------------------------
    @property
    def graph(self) -> Graph:
        return self._graph

    @property
    def graph_def(self) -> Any:
        """The session graph as a GraphDef (TF1's ``Session.graph_def``)."""
        return self._graph.as_graph_def()

    @property
    def backend(self) -> str:
        return self._backend

    @property
    def compiler_options(self) -> compiler.CompilerOptions:
        """The compiler options this session's plans are built with."""
        return self._compiler_options

    @property
    def sess_str(self) -> str:
        return ""

    def close(self) -> None:
        """Frees the session's state; later runs raise RuntimeError."""
        self._closed = True
        self._state = RunState()
        for exe in self._cache.values():
            exe.close()
        self._cache.clear()
        self._fast.clear()

    def __enter__(self) -> Session:
        g_ctx = self._graph.as_default()
        s_ctx = self.as_default()
        g_ctx.__enter__()
        s_ctx.__enter__()
        self._default_ctx.append((g_ctx, s_ctx))
        return self

    def __exit__(self, *exc: Any) -> None:
        g_ctx, s_ctx = self._default_ctx.pop()
        s_ctx.__exit__(*exc)
        g_ctx.__exit__(*exc)
        self.close()

    def as_default(self) -> Any:
        """A context manager making this the default session for ``Tensor.eval``."""
        import contextlib

        @contextlib.contextmanager
        def ctx():
            stack = _session_stack()
            stack.append(self)
            try:
                yield self
            finally:
                if stack and stack[-1] is self:
                    stack.pop()

        return ctx()

    # --- running --------------------------------------------------------
    def run(self, fetches: Any, feed_dict: dict | None = None, options: Any = None,
            run_metadata: Any = None) -> Any:
        """Runs the ops needed for ``fetches`` and returns their values.

        Args:
          fetches: a Tensor, Operation, Variable, name, or nested list/tuple/
            namedtuple/dict of them. Operations give None.
          feed_dict: maps tensors (any tensor, not only placeholders), their
            names, or Variables' tensors to values that replace them.
          options: a ``gf.RunOptions``; a ``trace_level`` above NO_TRACE with a
            ``run_metadata`` records per-kernel times (compiled backends).
          run_metadata: a ``gf.RunMetadata`` to fill when tracing.

        Returns:
          NumPy values with the structure of ``fetches``.

        Raises:
          RuntimeError: if the session is closed or its graph is empty.
          TypeError / ValueError: for bad fetches or feed keys/values.
          errors.InvalidArgumentError: a placeholder not fed, or an op failing.
          errors.FailedPreconditionError: an uninitialized variable read.
        """
        if options is None and run_metadata is None:
            # The fast path: a fetch structure and feed keys seen before (_fast_call,
            # inlined: this is most of a tiny graph's run).
            kind = type(fetches)
            if kind is list or kind is tuple:
                fetches_key = (kind, *fetches)
            else:
                fetches_key = fetches
            try:
                call = self._fast.get((fetches_key, tuple(feed_dict) if feed_dict else ()))
            except TypeError:  # unhashable: nested structures
                call = None
            if (call is not None and call.version == self._graph.version
                    and type(feed_dict) in _FAST_FEED_TYPES):
                return call.fn(self, feed_dict.values() if feed_dict else ())
        if self._closed:
            raise RuntimeError("Attempted to use a closed Session.")
        elements, rebuild = flatten_fetches(self._graph, fetches)
        feeds = self._convert_feeds(feed_dict)
        tensors, targets = split_targets(elements)
        key = (tuple(id(t) for t in tensors), tuple(id(o) for o in targets),
               tuple(sorted(id(t) for t in feeds)), self._graph.version)
        with self._lock:
            exe = self._cache.get(key)
            if exe is None:
                exe = self._compile(tensors, targets, list(feeds))
                if len(self._cache) > _MAX_CACHED_PLANS:
                    self._cache.clear()
                    self._fast.clear()
                self._cache[key] = exe
        exclusive = exe.exclusive
        lock = self._run_lock
        lock.acquire_exclusive() if exclusive else lock.acquire_shared()
        try:
            if _tracing(options, run_metadata) and not isinstance(exe, ReferenceExecutable):
                trace: list[Any] = []
                values = exe.run(feeds, self._state, trace=trace)
                run_metadata.step_stats = _step_stats(exe.plan, trace)
            else:
                values = exe.run(feeds, self._state)
        finally:
            lock.release_exclusive() if exclusive else lock.release_shared()
        call = _Call(exe, list(feeds), tensors, elements, rebuild, self._graph.version,
                     single=type(fetches) not in (list, tuple, dict) and len(elements) == 1)
        fast_key = _fast_key(fetches, feed_dict)
        if fast_key is not None and len(feeds) == len(feed_dict or ()):
            self._fast[fast_key] = call
        return call.results(values)

    def _fast_call(self, fetches: Any, feed_dict: dict | None) -> _Call | None:
        """The compiled call for a fetch structure and feed keys seen before, if still valid."""
        key = _fast_key(fetches, feed_dict)
        if key is None:
            return None
        call = self._fast.get(key)
        if call is None or call.version != self._graph.version or self._closed:
            return None
        return call

    def _compile(self, tensors: list[Tensor], targets: list[Any], feeds: list[Tensor]) -> Any:
        if self._backend == "interpreter":
            return ReferenceExecutable(tensors, targets, feeds)
        plan = compiler.build_plan(tensors, targets, feeds, self._compiler_options, self._graph)
        if self._backend == "cpu":
            from graphflow.kernels.cpu import CpuExecutable

            return CpuExecutable(plan, fast_math=self._fast_math)
        return PlanExecutable(plan)

    def _convert_feeds(self, feed_dict: dict | None) -> dict[Tensor, np.ndarray]:
        out: dict[Tensor, np.ndarray] = {}
        if not feed_dict:
            return out
        if not isinstance(feed_dict, dict):
            raise TypeError(f"feed_dict must be a dict, got {type(feed_dict).__name__}")
        for key, value in feed_dict.items():
            try:
                t = self._graph.as_graph_element(key, allow_tensor=True, allow_operation=False)
            except (TypeError, ValueError, KeyError) as e:
                raise TypeError(f"Cannot interpret feed_dict key {key!r} as a Tensor: "
                                f"{e.args[0] if e.args else e}") from None
            if t.op.type == "VariableV2":
                raise errors.GraphValueError(
                    None, t.op, f"Cannot feed variable {t.op.name} directly; feed its value "
                                f"tensor {t.op.name}/read:0 or use Variable.load")
            out[t] = _convert_feed(t, key, value)
        return out

    def make_callable(self, fetches: Any, feed_list: Sequence[Any] | None = None,
                      accept_options: bool = False) -> Callable[..., Any]:
        """A function ``f(*feed_values)`` that runs ``fetches`` with ``feed_list`` fed."""
        feed_list = list(feed_list or [])
        n = len(feed_list)
        compiled: list[Any] = []  # the _Call, once the first call has resolved everything

        def call(*args: Any, **kw: Any) -> Any:
            if len(args) != n:
                raise ValueError(f"Expected {n} feed values, got {len(args)}")
            if kw.get("options") is None and kw.get("run_metadata") is None:
                if compiled and compiled[0].version == self._graph.version:
                    return compiled[0].fn(self, args)
                result = self.run(fetches, dict(zip(feed_list, args)))
                c = self._fast_call(fetches, dict.fromkeys(feed_list))
                if c is not None:
                    compiled[:] = [c]
                return result
            return self.run(fetches, dict(zip(feed_list, args)), kw.get("options"),
                            kw.get("run_metadata"))

        return call

    def _load_variable(self, variable: Any, value: Any) -> None:
        arr = to_numpy(value, variable.dtype)
        if not variable.shape.is_compatible_with(arr.shape):
            raise ValueError(f"Cannot load a value of shape {arr.shape} into variable "
                             f"{variable.op.name} of shape {variable.shape}")
        self._run_lock.acquire_exclusive()
        try:
            self._state.variables[variable.op.name] = np.array(arr, copy=True)
        finally:
            self._run_lock.release_exclusive()

    def list_devices(self) -> list[str]:
        return ["/device:CPU:0"]


class InteractiveSession(Session):
    """A Session that makes itself the default on creation (TF1's ``tf.InteractiveSession``)."""

    def __init__(self, target: str = "", graph: Graph | None = None, config: Any = None,
                 backend: str | None = None, device: str | None = None,
                 optimizer_options: Any = None, fast_math: bool | None = None) -> None:
        super().__init__(target, graph, config, backend, device, optimizer_options, fast_math)
        self._ctx = self.as_default()
        self._ctx.__enter__()

    def close(self) -> None:
        super().close()
        if getattr(self, "_ctx", None) is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None


def _convert_feed(t: Tensor, key: Any, value: Any) -> np.ndarray:
    """``value`` as an array for tensor ``t``; raises TF1's errors for bad values.

    Not copied: executables never write into feeds, and fetched arrays that share
    memory with a feed are copied (see ``PlanExecutable.run``).
    """
    if isinstance(value, Tensor) or hasattr(value, "_as_graph_element"):
        raise TypeError(f"The value of a feed cannot be a graphflow Tensor ({key!r}). "
                        "Acceptable feed values are Python scalars, lists and NumPy arrays.")
    try:
        arr = to_numpy(value, t.dtype, python_floats_to_int=True)
    except TypeError as e:
        raise errors.GraphTypeError(
            None, t.op, f"Cannot feed a value to tensor {t.name} of dtype "
                        f"{t.dtype.name}: {e}") from None
    if not t.shape.is_compatible_with(arr.shape):
        raise errors.GraphValueError(
            None, t.op, f"Cannot feed value of shape {arr.shape} for Tensor "
                        f"'{t.name}', which has shape '{t.shape}'")
    return arr


def _fast_key(fetches: Any, feed_dict: dict | None) -> Any:
    """A hashable key for a fetch structure and feed keys, or None (nested structures)."""
    try:
        kind = type(fetches)
        if kind is list or kind is tuple:
            f = (kind, *fetches)
        else:
            f = fetches
        k = (f, tuple(feed_dict) if feed_dict else ())
        hash(k)
    except TypeError:
        return None
    if type(feed_dict) not in _FAST_FEED_TYPES:
        return None
    return k


_FAST_FEED_TYPES = (dict, type(None))


class _Call:
    """One compiled run signature: feed tensors in feed-key order, executable, fetches."""

    __slots__ = ("exe", "feed_tensors", "checks", "slots", "rebuild", "version", "copy_all",
                 "single", "exclusive", "order", "fn")

    def __init__(self, exe: Any, feed_tensors: list[Tensor], tensors: list[Tensor],
                 elements: list[Any], rebuild: Any, version: int, single: bool = False) -> None:
        self.exe = exe
        self.exclusive = exe.exclusive
        self.feed_tensors = feed_tensors
        # Per feed: (tensor, dtype, static dims or None): arrays that match skip conversion.
        self.checks = [(t, t.dtype.np, t.shape.values) for t in feed_tensors]
        index = {id(t): k for k, t in enumerate(tensors)}
        self.slots = [index.get(id(e)) for e in elements]
        self.rebuild = rebuild
        self.version = version
        # The interpreter returns values that may be graph constants or variable storage.
        self.copy_all = isinstance(exe, ReferenceExecutable)
        # One tensor fetched, not in a structure: its value is the result.
        self.single = single and self.slots[0] is not None and not self.copy_all
        # Compiled plans take their inputs as a list: the position of each in the feeds
        # (True: the same order), or None (the interpreter takes the feed dict).
        self.order: Any = None
        if not self.copy_all:
            pos = {id(t): j for j, t in enumerate(feed_tensors)}
            order = [pos[id(t)] for t in exe.input_tensors]
            self.order = True if order == list(range(len(feed_tensors))) else order
        self.fn = self._make_fn()

    def __call__(self, session: Session, values: Any) -> Any:
        return self.fn(session, values)

    def _make_fn(self) -> Any:
        """``fn(session, feed values in feed-key order)``: this signature's whole run as
        one generated function (feed checks unrolled, the lock's fast path inline, the
        plan's inputs passed in its order), the Session's fast path for repeated runs."""
        ns: dict[str, Any] = {"ndarray": np.ndarray, "generic": np.generic,
                              "asarray": np.asarray, "array": np.array, "fits": fits_shape,
                              "convert": _convert_feed, "exe": self.exe, "call": self}
        n = len(self.checks)
        names = [f"v{j}" for j in range(n)]
        lines = ["def fn(session, values):"]
        if n:
            lines += ["    try:", f"        {', '.join(names)}, = values", "    except ValueError:",
                      "        raise ValueError('feed_dict changed size during the run') "
                      "from None"]
        for j, (t, dt, dims) in enumerate(self.checks):
            ns[f"t{j}"], ns[f"dt{j}"], ns[f"dims{j}"] = t, dt, dims
            v = f"v{j}"
            bad_shape = ("" if dims is None else
                         f" or ({v}.shape != dims{j} and not fits({v}.shape, dims{j}))")
            lines += [f"    k = type({v})", "    if k is ndarray:",
                      f"        if ({v}.dtype is not dt{j} and {v}.dtype != dt{j}){bad_shape}:",
                      f"            {v} = convert(t{j}, t{j}, {v})"]
            if dt.kind == "f" and not dims:  # a Python float for a float scalar
                lines += ["    elif k is float:", f"        {v} = array({v}, dt{j})"]
            if not dims:  # a NumPy scalar of the right dtype
                lines += [f"    elif isinstance({v}, generic) and ({v}.dtype is dt{j} "
                          f"or {v}.dtype == dt{j}):", f"        {v} = asarray({v})"]
            lines += ["    else:", f"        {v} = convert(t{j}, t{j}, {v})"]
        lines += ["    if session._closed:",
                  "        raise RuntimeError('Attempted to use a closed Session.')"]
        if self.order is None:
            ns["tensors"] = self.feed_tensors
            run = f"exe.run(dict(zip(tensors, [{', '.join(names)}])), session._state)"
        else:
            order = range(n) if self.order is True else self.order
            run = f"exe.run_inputs([{''.join(f'v{j}, ' for j in order)}], session._state)"
        lines.append("    lock = session._run_lock")
        if self.exclusive:
            lines += ["    lock.acquire_exclusive()", "    try:", f"        out = {run}",
                      "    finally:", "        lock.release_exclusive()"]
        else:
            # SharedLock.acquire_shared/release_shared, their lock-free paths inline.
            lines += ["    readers = lock._readers", "    readers.append(None)",
                      "    if lock._writing:", "        readers.pop()",
                      "        lock.acquire_shared()", "    try:", f"        out = {run}",
                      "    finally:", "        readers.pop()", "        if lock._writing:",
                      "            lock.wake_writer()"]
        if self.single:
            lines += [f"    v = out[{self.slots[0]}]", "    if type(v) is not ndarray:",
                      "        v = asarray(v)", "    return v[()] if v.ndim == 0 else v"]
        else:
            lines.append("    return call.results(out)")
        exec(compile("\n".join(lines), "<graphflow run>", "exec"), ns)
        return ns["fn"]

    def results(self, values: list[Any]) -> Any:
        flat = []
        for k in self.slots:
            if k is None:
                flat.append(None)
                continue
            v = values[k]
            if self.copy_all:
                v = np.array(v, copy=True)
            elif type(v) is not np.ndarray:
                v = np.asarray(v)
            flat.append(v[()] if v.ndim == 0 else v)
        return self.rebuild(flat)


def _tracing(options: Any, run_metadata: Any) -> bool:
    return run_metadata is not None and getattr(options, "trace_level", 0) > 0


def _step_stats(plan: Any, trace: list[Any]) -> list[Any]:
    from graphflow.runtime.config import StepStats

    index = {id(s): i for i, s in enumerate(plan.steps)}
    out = []
    for step, kernel, start, end in trace:
        if getattr(kernel, "untraced", False):
            continue  # a step an earlier kernel ran (with the next line's ops)
        # A kernel running several steps' work at once names all their ops.
        nodes = getattr(kernel, "traced_nodes", None) or step.nodes
        out.append(StepStats(index[id(step)], nodes[0].name if nodes else "",
                             [n.type for n in nodes], [n.name for n in nodes],
                             type(kernel).__name__ != "_CompiledKernel", start, end - start))
    return out
