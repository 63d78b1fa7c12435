"""Graph, Operation and Tensor: the symbolic program users build.

Names, scoping and collections follow TF1 exactly (``Add``, ``Add_1``,
``scope/op``); the default graph is a per-thread stack.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from graphflow.framework import dtypes as _dt
from graphflow.framework import errors, op_def, source
from graphflow.framework.tensor_shape import TensorShape, as_shape

_VALID_OP_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/>]*$")
_VALID_SCOPE_NAME = re.compile(r"^[A-Za-z0-9_.\-/>]*$")


class GraphKeys:
    """Standard collection names, as TF1's ``tf.GraphKeys``."""

    GLOBAL_VARIABLES = "variables"
    LOCAL_VARIABLES = "local_variables"
    MODEL_VARIABLES = "model_variables"
    TRAINABLE_VARIABLES = "trainable_variables"
    MOVING_AVERAGE_VARIABLES = "moving_average_variables"
    REGULARIZATION_LOSSES = "regularization_losses"
    LOSSES = "losses"
    UPDATE_OPS = "update_ops"
    SUMMARIES = "summaries"
    TRAIN_OP = "train_op"
    GLOBAL_STEP = "global_step"
    INIT_OP = "init_op"
    LOCAL_INIT_OP = "local_init_op"
    READY_OP = "ready_op"
    SAVERS = "savers"
    ACTIVATIONS = "activations"
    WEIGHTS = "weights"
    BIASES = "biases"
    CONCATENATED_VARIABLES = "concatenated_variables"
    TABLE_INITIALIZERS = "table_initializer"
    ASSET_FILEPATHS = "asset_filepaths"
    QUEUE_RUNNERS = "queue_runners"
    COND_CONTEXT = "cond_context"
    WHILE_CONTEXT = "while_context"
    VARIABLES = GLOBAL_VARIABLES


class Tensor:
    """A symbolic value: output ``value_index`` of an Operation.

    Tensors hash and compare by identity (as in TF1); use ``gf.equal`` for
    elementwise comparison.
    """

    __slots__ = ("_op", "_value_index", "_dtype", "_shape", "_consumers", "__weakref__")

    # Make NumPy defer to our reflected operators (np.float32(2) * t).
    __array_priority__ = 100

    def __init__(self, op: Operation, value_index: int, dtype: _dt.DType, shape: TensorShape):
        self._op = op
        self._value_index = value_index
        self._dtype = dtype
        self._shape = shape
        self._consumers: list[Operation] = []

    @property
    def op(self) -> Operation:
        return self._op

    @property
    def value_index(self) -> int:
        return self._value_index

    @property
    def dtype(self) -> _dt.DType:
        return self._dtype

    @property
    def graph(self) -> Graph:
        return self._op.graph

    @property
    def name(self) -> str:
        return f"{self._op.name}:{self._value_index}"

    @property
    def device(self) -> str:
        return self._op.device

    @property
    def shape(self) -> TensorShape:
        return self._shape

    def get_shape(self) -> TensorShape:
        """The static shape (TF1's ``Tensor.get_shape``)."""
        return self._shape

    def set_shape(self, shape: Any) -> None:
        """Refines the static shape; raises ValueError if incompatible."""
        shape = as_shape(shape)
        if not self._shape.is_compatible_with(shape):
            raise errors.ShapeError(
                None, self._op,
                f"Tensor {self.name} has shape {self._shape}, incompatible with {shape}")
        self._shape = self._shape.merge_with(shape)
        self._op.graph._bump()

    def consumers(self) -> list[Operation]:
        return list(self._consumers)

    def eval(self, feed_dict: dict | None = None, session: Any = None) -> Any:
        """Evaluates this tensor in ``session`` (default: the default session)."""
        from graphflow.runtime.session import _session_for

        return _session_for(session, self.graph).run(self, feed_dict)

    def __repr__(self) -> str:
        return f"<gf.Tensor '{self.name}' shape={self._shape} dtype={self._dtype.name}>"

    __str__ = __repr__

    # Identity hashing in C: tensors key the feed and fetch dicts of every run.
    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def __bool__(self) -> bool:
        raise TypeError(
            "Using a graphflow Tensor as a Python bool is not allowed. Use `if t is not None:` "
            "to test for None, or gf.cond to branch on a tensor's value.")

    def __iter__(self) -> Iterator[Tensor]:
        dims = self._shape.values
        if dims is None or not dims or dims[0] is None:
            raise TypeError(f"Cannot iterate over tensor {self.name} of shape {self._shape}: "
                            "the first dimension must be statically known.")
        for i in range(dims[0]):
            yield self[i]

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        raise TypeError(
            f"Cannot convert a symbolic graphflow Tensor ({self.name}) to a NumPy array; "
            "run it in a Session to get its value.")

    def __index__(self) -> int:
        raise TypeError(f"Tensor {self.name} cannot be used as a Python index")

    # Operators (+ - * / ...) and __getitem__ are installed by graphflow.ops.


class Operation:
    """A node of the graph: an op type, inputs, attributes and outputs."""

    __slots__ = ("_graph", "_name", "_type", "_inputs", "_control_inputs", "_attrs",
                 "_outputs", "_id", "_frame", "_op_def", "_control_outputs", "_device",
                 "__weakref__")

    def __init__(self, graph: Graph, op_type: str, name: str, inputs: list[Tensor],
                 attrs: dict[str, Any], frame: Any):
        self._graph = graph
        self._type = op_type
        self._name = name
        self._inputs = tuple(inputs)
        self._control_inputs: list[Operation] = []
        self._control_outputs: list[Operation] = []
        self._attrs = attrs
        self._outputs: tuple[Tensor, ...] = ()
        self._id = -1
        self._frame = frame
        self._op_def = op_def.lookup(op_type)
        self._device = ""

    @property
    def name(self) -> str:
        return self._name

    @property
    def type(self) -> str:
        return self._type

    @property
    def graph(self) -> Graph:
        return self._graph

    @property
    def inputs(self) -> tuple[Tensor, ...]:
        return self._inputs

    @property
    def outputs(self) -> list[Tensor]:
        return list(self._outputs)

    @property
    def control_inputs(self) -> list[Operation]:
        return list(self._control_inputs)

    @property
    def op_def(self) -> op_def.OpDef:
        return self._op_def

    @property
    def attrs(self) -> dict[str, Any]:
        """A copy of the attribute dict (graphflow extension)."""
        return dict(self._attrs)

    @property
    def device(self) -> str:
        return self._device

    @property
    def traceback(self) -> Any:
        return self._frame

    def source_line(self) -> str | None:
        """``file:line: code`` of the user's line that created this op."""
        return source.format_frame(self._frame)

    def get_attr(self, name: str) -> Any:
        """The value of attribute ``name``.

        Raises:
          ValueError: if the op has no such attribute.
        """
        try:
            return self._attrs[name]
        except KeyError:
            raise ValueError(f"Operation {self._name!r} ({self._type}) has no attr named "
                             f"{name!r}; it has {sorted(self._attrs)}") from None

    def values(self) -> tuple[Tensor, ...]:
        return self._outputs

    def _add_control_input(self, op: Operation) -> None:
        if op not in self._control_inputs:
            self._control_inputs.append(op)
            op._control_outputs.append(self)
            self._graph._bump()

    def _add_control_inputs(self, ops: Iterable[Operation]) -> None:
        for op in ops:
            self._add_control_input(op)

    def run(self, feed_dict: dict | None = None, session: Any = None) -> None:
        """Runs this op in ``session`` (default: the default session)."""
        from graphflow.runtime.session import _session_for

        _session_for(session, self._graph).run(self, feed_dict)

    def __repr__(self) -> str:
        return f"<gf.Operation '{self._name}' type={self._type}>"


class Graph:
    """A dataflow graph (TF1's ``tf.Graph``)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ops: list[Operation] = []
        self._ops_by_name: dict[str, Operation] = {}
        self._names_in_use: dict[str, int] = {}
        self._name_stack = ""
        self._control_deps: list[list[Operation] | None] = []
        self._collections: dict[str, list[Any]] = {}
        self._version = 0
        self._finalized = False
        self.seed: int | None = None
        self._last_seed_id = 0

    # --- identity & versioning ------------------------------------------
    @property
    def version(self) -> int:
        """Changes whenever the graph changes; compiled plans are keyed by it."""
        return self._version

    def _bump(self) -> None:
        self._version += 1

    @property
    def finalized(self) -> bool:
        return self._finalized

    def finalize(self) -> None:
        """Makes the graph read-only: adding ops afterwards raises RuntimeError."""
        self._finalized = True

    def _unsafe_unfinalize(self) -> None:
        self._finalized = False

    @contextlib.contextmanager
    def as_default(self) -> Iterator[Graph]:
        """Makes this the default graph inside a ``with`` block."""
        _graph_stack().append(self)
        try:
            yield self
        finally:
            stack = _graph_stack()
            if stack and stack[-1] is self:
                stack.pop()

    # --- names ----------------------------------------------------------
    def get_name_scope(self) -> str:
        return self._name_stack

    def unique_name(self, name: str, mark_as_used: bool = True) -> str:
        """``name`` under the current scope, suffixed ``_N`` if already taken (as TF1)."""
        if self._name_stack:
            name = f"{self._name_stack}/{name}"
        name_key = name.lower()
        i = self._names_in_use.get(name_key, 0)
        if mark_as_used:
            self._names_in_use[name_key] = i + 1
        if i > 0:
            base_key = name_key
            while name_key in self._names_in_use:
                name_key = f"{base_key}_{i}"
                i += 1
            if mark_as_used:
                self._names_in_use[name_key] = 1
            name = f"{name}_{i - 1}"
        return name

    @contextlib.contextmanager
    def name_scope(self, name: str | None) -> Iterator[str]:
        """Opens a name scope; yields the scope string ending with ``/`` (or "")."""
        old = self._name_stack
        if not name:
            new_stack = ""
        elif name.endswith("/"):
            if not _VALID_SCOPE_NAME.match(name):
                raise errors.GraphValueError(None, None, f"'{name}' is not a valid scope name")
            new_stack = name[:-1]
        else:
            if not _VALID_SCOPE_NAME.match(name) or (not old and not _VALID_OP_NAME.match(name)):
                raise errors.GraphValueError(None, None, f"'{name}' is not a valid scope name")
            new_stack = self.unique_name(name)
        self._name_stack = new_stack
        try:
            yield "" if not new_stack else new_stack + "/"
        finally:
            self._name_stack = old

    # --- control dependencies -------------------------------------------
    @contextlib.contextmanager
    def control_dependencies(self, control_inputs: Iterable[Any] | None) -> Iterator[None]:
        """Ops created inside run after ``control_inputs`` (None clears them)."""
        if control_inputs is None:
            entry = None
        else:
            entry = []
            for c in control_inputs:
                op = _as_op(c)
                if op.graph is not self:
                    raise errors.GraphValueError(
                        None, None, f"Control input {op.name} is from a different graph")
                entry.append(op)
        self._control_deps.append(entry)
        try:
            yield
        finally:
            self._control_deps.pop()

    def _current_control_deps(self) -> list[Operation]:
        out: list[Operation] = []
        for entry in reversed(self._control_deps):
            if entry is None:
                break
            for op in entry:
                if op not in out:
                    out.append(op)
        return out

    # --- op creation ----------------------------------------------------
    def create_op(self, op_type: str, inputs: list[Tensor], attrs: dict[str, Any] | None = None,
                  name: str | None = None) -> Operation:
        """Adds an op of ``op_type``; infers its outputs' dtypes and shapes.

        Args:
          op_type: a registered op type string.
          inputs: Tensors of this graph.
          attrs: attribute values.
          name: the op name; made unique under the current scope. A name ending
            in ``/`` (a scope from :meth:`name_scope`) is used as is.

        Returns:
          The new Operation.

        Raises:
          RuntimeError: if the graph is finalized.
          ValueError / TypeError (graphflow InvalidArgumentError subclasses):
            if the inputs do not fit the op, naming the op and source line.
        """
        with self._lock:
            if self._finalized:
                raise RuntimeError("Graph is finalized and cannot be modified.")
            for t in inputs:
                if not isinstance(t, Tensor):
                    raise errors.GraphTypeError(
                        None, None, f"{op_type}: inputs must be Tensors, got {type(t).__name__}")
                if t.graph is not self:
                    raise errors.GraphValueError(
                        None, None,
                        f"{op_type}: input {t.name} is from a different graph. Build all "
                        "tensors of one computation in the same graph.")
            if name is None:
                name = op_type
            if name.endswith("/"):
                name = name[:-1]
                if name in self._ops_by_name:
                    raise errors.GraphValueError(
                        None, None, f"Duplicate node name in graph: {name!r}")
                self.unique_name_mark(name)
            else:
                if not _VALID_OP_NAME.match(name):
                    raise errors.GraphValueError(None, None, f"'{name}' is not a valid node name")
                name = self.unique_name(name)
            op = Operation(self, op_type, name, list(inputs), dict(attrs or {}),
                           source.user_frame())
            try:
                outs = op._op_def.infer(op)
            except (errors.ShapeError, errors.DTypeError) as e:
                if e.op is not None:
                    raise
                raise type(e)(None, op, f"{op_type} op '{name}': {e.message}") from None
            op._outputs = tuple(
                Tensor(op, i, dt, as_shape(shape)) for i, (dt, shape) in enumerate(outs))
            op._id = len(self._ops)
            self._ops.append(op)
            self._ops_by_name[name] = op
            for t in inputs:
                t._consumers.append(op)
            input_ops = {t.op for t in inputs}
            for c in self._current_control_deps():
                if c not in input_ops:
                    op._control_inputs.append(c)
                    c._control_outputs.append(op)
            self._bump()
            return op

    def unique_name_mark(self, full_name: str) -> None:
        """Records ``full_name`` as used (for names produced by a name scope)."""
        key = full_name.lower()
        self._names_in_use.setdefault(key, 1)

    # --- lookup -----------------------------------------------------------
    def get_operations(self) -> list[Operation]:
        return list(self._ops)

    def get_operation_by_name(self, name: str) -> Operation:
        """The op called ``name``.

        Raises:
          KeyError: if there is none (TF1 raises KeyError too).
          TypeError: if ``name`` is not a string.
        """
        if not isinstance(name, str):
            raise TypeError(f"Operation names are strings, got {type(name).__name__}")
        try:
            return self._ops_by_name[name]
        except KeyError:
            raise KeyError(f"The name {name!r} refers to an Operation not in the graph.") from None

    def get_tensor_by_name(self, name: str) -> Tensor:
        """The tensor called ``name`` (``op_name:index``).

        Raises:
          ValueError: if ``name`` is not of the form ``op:index``.
          KeyError: if the op or output does not exist.
        """
        if not isinstance(name, str):
            raise TypeError(f"Tensor names are strings, got {type(name).__name__}")
        op_name, sep, idx = name.rpartition(":")
        if not sep or not idx.isdigit():
            raise ValueError(
                f"The name {name!r} looks like an (invalid) Operation name, not a Tensor. "
                "Tensor names must be of the form \"<op_name>:<output_index>\".")
        op = self.get_operation_by_name(op_name)
        i = int(idx)
        if i >= len(op._outputs):
            raise KeyError(f"The name {name!r} refers to a Tensor which does not exist. "
                           f"The operation {op_name!r} has {len(op._outputs)} outputs.")
        return op._outputs[i]

    def as_graph_element(self, obj: Any, allow_tensor: bool = True,
                         allow_operation: bool = True) -> Any:
        """Resolves a Tensor, Operation, Variable or name to an element of this graph."""
        if isinstance(obj, str):
            if ":" in obj and allow_tensor:
                return self.get_tensor_by_name(obj)
            if allow_operation:
                return self.get_operation_by_name(obj)
            raise ValueError(f"Name {obj!r} does not name a Tensor")
        conv = getattr(obj, "_as_graph_element", None)
        if conv is not None:
            obj = conv()
        if isinstance(obj, Tensor) and allow_tensor:
            if obj.graph is not self:
                raise ValueError(f"Tensor {obj.name} is not an element of this graph.")
            return obj
        if isinstance(obj, Operation) and allow_operation:
            if obj.graph is not self:
                raise ValueError(f"Operation {obj.name} is not an element of this graph.")
            return obj
        if allow_tensor and allow_operation:
            wanted = "Tensor or Operation"
        else:
            wanted = "Tensor" if allow_tensor else "Operation"
        raise TypeError(f"Can not convert a {type(obj).__name__} into a {wanted}.")

    # --- collections ----------------------------------------------------
    def add_to_collection(self, name: str, value: Any) -> None:
        self._collections.setdefault(name, []).append(value)

    def add_to_collections(self, names: Any, value: Any) -> None:
        if isinstance(names, str):
            names = [names]
        for n in dict.fromkeys(names):
            self.add_to_collection(n, value)

    def get_collection_ref(self, name: str) -> list[Any]:
        return self._collections.setdefault(name, [])

    def get_collection(self, name: str, scope: str | None = None) -> list[Any]:
        """A copy of collection ``name``, filtered by ``re.match(scope, item.name)``."""
        items = self._collections.get(name, [])
        if scope is None:
            return list(items)
        pattern = re.compile(scope)
        return [i for i in items if hasattr(i, "name") and pattern.match(i.name)]

    def get_all_collection_keys(self) -> list[str]:
        return [k for k, v in self._collections.items() if v]

    def clear_collection(self, name: str) -> None:
        self._collections.pop(name, None)

    # --- misc -----------------------------------------------------------
    def _next_seed_id(self) -> int:
        return len(self._ops)

    @contextlib.contextmanager
    def device(self, device_name: Any) -> Iterator[None]:
        """Accepted for TF1 compatibility; placement is chosen by the Session."""
        yield

    @contextlib.contextmanager
    def colocate_with(self, op: Any, ignore_existing: bool = False) -> Iterator[None]:
        yield

    def is_fetchable(self, tensor_or_op: Any) -> bool:
        return True

    def is_feedable(self, tensor: Tensor) -> bool:
        return True

    def as_graph_def(self, from_version: int | None = None, add_shapes: bool = False) -> Any:
        """A serializable GraphDef of this graph (TF1's ``Graph.as_graph_def``).

        Args:
          from_version: not supported; must be None.
          add_shapes: if True, record each op's static output shapes (attr
            ``_output_shapes``); importing restores them.

        Returns:
          A ``gf.GraphDef`` with one NodeDef per op, in creation order.

        Raises:
          errors.InvalidArgumentError: if an op attr holds a value no file can store.
        """
        from graphflow.io.graph_io import graph_to_graph_def

        return graph_to_graph_def(self, from_version=from_version, add_shapes=add_shapes)

    def __repr__(self) -> str:
        return f"<gf.Graph with {len(self._ops)} ops at {id(self):#x}>"


def _as_op(x: Any) -> Operation:
    if isinstance(x, Operation):
        return x
    if isinstance(x, Tensor):
        return x.op
    conv = getattr(x, "_as_graph_element", None)
    if conv is not None:
        return _as_op(conv())
    op = getattr(x, "op", None)
    if isinstance(op, Operation):
        return op
    raise errors.GraphTypeError(None, None,
                                f"Can not convert a {type(x).__name__} into an Operation.")


# --- the default graph --------------------------------------------------------
_state = threading.local()
_global_default: list[Graph | None] = [None]


def _graph_stack() -> list[Graph]:
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    return stack


def get_default_graph() -> Graph:
    """The innermost graph of ``with g.as_default()``, else the global default graph."""
    stack = _graph_stack()
    if stack:
        return stack[-1]
    if _global_default[0] is None:
        _global_default[0] = Graph()
    return _global_default[0]


def reset_default_graph() -> None:
    """Clears the global default graph (TF1 semantics).

    Raises:
      AssertionError: if called inside a ``with graph.as_default()`` block.
    """
    if _graph_stack():
        raise AssertionError("Do not use reset_default_graph() to clear a nested graph; "
                             "it is only for the global default graph.")
    _global_default[0] = Graph()


# --- conversion to Tensor -----------------------------------------------------
_conversion_registry: list[tuple[type, Callable[..., Tensor]]] = []


def register_tensor_conversion_function(base_type: type, conversion_func: Callable[..., Any],
                                        priority: int = 100) -> None:
    """Registers ``conversion_func(value, dtype, name, as_ref)`` for ``base_type``."""
    _conversion_registry.append((base_type, conversion_func))


def convert_to_tensor(value: Any, dtype: Any = None, name: str | None = None,
                      preferred_dtype: Any = None, dtype_hint: Any = None) -> Tensor:
    """Converts a Tensor, Variable, array or Python value to a Tensor.

    Args:
      value: the value.
      dtype: required dtype; a Tensor of another dtype raises.
      name: name for a new constant.
      preferred_dtype: dtype to try for Python/NumPy values when ``dtype`` is None.

    Returns:
      A Tensor.

    Raises:
      TypeError (DTypeError): if the value cannot have ``dtype``.
    """
    preferred_dtype = preferred_dtype or dtype_hint
    if isinstance(value, Tensor):
        if dtype is not None and _dt.as_dtype(dtype) is not value.dtype:
            raise errors.DTypeError(
                None, value.op,
                f"Tensor conversion requested dtype {_dt.as_dtype(dtype).name} for Tensor "
                f"{value.name} with dtype {value.dtype.name}")
        return value
    for base, fn in _conversion_registry:
        if isinstance(value, base):
            if dtype is None and preferred_dtype is not None:
                try:
                    return fn(value, dtype=preferred_dtype, name=name)
                except (TypeError, ValueError):
                    pass
            return fn(value, dtype=dtype, name=name)
    raise errors.DTypeError(None, None, f"Cannot convert {value!r} to a Tensor")
