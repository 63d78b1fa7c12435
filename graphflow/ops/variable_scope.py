"""Variable sharing with TF1's semantics: ``variable_scope``, ``get_variable``, ``AUTO_REUSE``.

Each graph keeps a store of the variables made by ``get_variable`` (by full name)
and the current variable scope. Variable names ignore name scopes and follow
variable scopes only; re-entering a variable scope opens a fresh name scope
(``scope_1/``), exactly as TF1 does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from graphflow.framework import dtypes as _dt
from graphflow.framework.graph import Graph, GraphKeys, Tensor, get_default_graph
from graphflow.framework.tensor_shape import TensorShape, as_shape


class _ReuseMode:
    def __repr__(self) -> str:
        return "AUTO_REUSE"


AUTO_REUSE = _ReuseMode()


class VariableScope:
    """A variable scope: its name, reuse flag and defaults for ``get_variable``."""

    def __init__(self, reuse: Any, name: str = "", initializer: Any = None,
                 regularizer: Any = None, dtype: Any = _dt.float32,
                 name_scope: str = "", custom_getter: Any = None,
                 constraint: Any = None) -> None:
        self._name = name
        self._reuse = reuse
        self._initializer = initializer
        self._regularizer = regularizer
        self._dtype = _dt.as_dtype(dtype)
        self._name_scope = name_scope
        self._custom_getter = custom_getter
        self._constraint = constraint

    @property
    def name(self) -> str:
        return self._name

    @property
    def original_name_scope(self) -> str:
        return self._name_scope

    @property
    def reuse(self) -> Any:
        return self._reuse

    @property
    def initializer(self) -> Any:
        return self._initializer

    @property
    def regularizer(self) -> Any:
        return self._regularizer

    @property
    def dtype(self) -> _dt.DType:
        return self._dtype

    @property
    def custom_getter(self) -> Any:
        return self._custom_getter

    @property
    def constraint(self) -> Any:
        return self._constraint

    def reuse_variables(self) -> None:
        """Makes later ``get_variable`` calls in this scope reuse existing variables."""
        self._reuse = True

    def set_initializer(self, initializer: Any) -> None:
        self._initializer = initializer

    def set_regularizer(self, regularizer: Any) -> None:
        self._regularizer = regularizer

    def set_dtype(self, dtype: Any) -> None:
        self._dtype = _dt.as_dtype(dtype)

    def get_variable(self, name: str, shape: Any = None, dtype: Any = None,
                     initializer: Any = None, regularizer: Any = None, reuse: Any = None,
                     trainable: bool | None = None, collections: Any = None,
                     validate_shape: bool = True, constraint: Any = None, **kwargs: Any) -> Any:
        """``get_variable`` in this scope; see :func:`get_variable`."""
        full = f"{self._name}/{name}" if self._name else name
        def pick(given: Any, default: Any) -> Any:
            return given if given is not None else default

        init = pick(initializer, self._initializer)
        if dtype is None and not _is_value(init):
            dtype = self._dtype  # a value initializer keeps its own dtype, as in TF1
        return _store().get(
            full, shape, dtype, init,
            pick(regularizer, self._regularizer), pick(reuse, self._reuse), trainable,
            collections, validate_shape, pick(constraint, self._constraint))

    def __repr__(self) -> str:
        return f"<VariableScope name={self._name!r} reuse={self._reuse!r}>"


class _VarStore:
    """Per-graph state: variables made by get_variable, the scope stack and name counts."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.vars: dict[str, Any] = {}
        self.scope = VariableScope(False)
        self.counts: dict[str, int] = {}

    def get(self, name: str, shape: Any, dtype: Any, initializer: Any, regularizer: Any,
            reuse: Any, trainable: bool | None, collections: Any, validate_shape: bool,
            constraint: Any) -> Any:
        from graphflow.ops.state_ops import Variable

        dtype = None if dtype is None else _dt.as_dtype(dtype)
        shape = None if shape is None else as_shape(shape)
        if name in self.vars:
            if reuse is False or reuse is None:
                raise ValueError(
                    f"Variable {name} already exists, disallowed. Did you mean to set "
                    "reuse=True or reuse=tf.AUTO_REUSE in VarScope?")
            v = self.vars[name]
            if shape is not None and not shape.is_compatible_with(v.shape):
                raise ValueError(f"Trying to share variable {name}, but specified shape "
                                 f"{shape} and found shape {v.shape}.")
            if dtype is not None and dtype is not v.dtype:
                raise ValueError(f"Trying to share variable {name}, but specified dtype "
                                 f"{dtype.name} and found dtype {v.dtype.name}.")
            return v
        if reuse is True:
            raise ValueError(
                f"Variable {name} does not exist, or was not created with tf.get_variable(). "
                "Did you mean to set reuse=tf.AUTO_REUSE in VarScope?")
        init_fn = self._initial_value(name, shape, dtype, initializer)
        if trainable is None:
            trainable = True
        if collections is None:
            collections = [GraphKeys.GLOBAL_VARIABLES]
        g = self.graph
        # Variable names follow variable scopes only: create them from the root name scope.
        with g.as_default(), g.name_scope(None):
            v = Variable(init_fn, trainable=trainable, collections=collections,
                         validate_shape=validate_shape, name=name, dtype=dtype,
                         constraint=constraint)
            if v.op.name != name:
                raise ValueError(f"Variable name {name!r} is taken by another op; got "
                                 f"{v.op.name!r}")
            self.vars[name] = v
            if regularizer is not None:
                with g.name_scope(f"{name}/Regularizer/"):
                    loss = regularizer(v)
                if loss is not None:
                    g.add_to_collection(GraphKeys.REGULARIZATION_LOSSES, loss)
        return v

    @staticmethod
    def _initial_value(name: str, shape: TensorShape | None, dtype: _dt.DType | None,
                       initializer: Any) -> Callable[[], Any]:
        from graphflow.framework.graph import convert_to_tensor
        from graphflow.ops.init_ops import GlorotUniform, Zeros

        if _is_value(initializer):
            if shape is not None and isinstance(initializer, Tensor) and \
                    not shape.is_compatible_with(initializer.shape):
                raise ValueError(f"Shape of initializer {initializer.shape} for variable "
                                 f"{name} does not match shape {shape}")
            value = initializer
            return lambda: convert_to_tensor(value, dtype=dtype)
        if shape is None or not shape.is_fully_defined():
            raise ValueError(f"Shape of a new variable ({name}) must be fully defined, but "
                             f"instead was {shape}.")
        if initializer is None:
            initializer = GlorotUniform() if dtype.is_floating else Zeros()
        elif isinstance(initializer, type):
            initializer = initializer()
        dims = list(shape.values)

        def make() -> Any:
            g = get_default_graph()
            with g.name_scope("Initializer"):
                return initializer(dims, dtype=dtype)

        return make


def _is_value(initializer: Any) -> bool:
    return isinstance(initializer, (Tensor, np.ndarray, np.generic, list, tuple, int, float)) \
        or hasattr(initializer, "_as_graph_element")


def _store(graph: Graph | None = None) -> _VarStore:
    g = graph or get_default_graph()
    st = getattr(g, "_var_store", None)
    if st is None:
        st = _VarStore(g)
        g._var_store = st
    return st


def get_variable_scope() -> VariableScope:
    """The current variable scope of the default graph."""
    return _store().scope


def get_variable(name: str, shape: Any = None, dtype: Any = None, initializer: Any = None,
                 regularizer: Any = None, trainable: bool | None = None,
                 collections: Any = None, caching_device: Any = None, partitioner: Any = None,
                 validate_shape: bool = True, use_resource: Any = None,
                 custom_getter: Any = None, constraint: Any = None,
                 synchronization: Any = None, aggregation: Any = None) -> Any:
    """Gets an existing variable or creates a new one (TF1's ``tf.get_variable``).

    The full name is the current variable scope plus ``name``. Whether an
    existing variable may be returned, or a new one created, follows the
    scope's ``reuse``: False creates (error if it exists), True reuses (error if
    missing), ``gf.AUTO_REUSE`` does either.

    Args:
      name: the variable's name within the scope.
      shape: its shape (needed unless ``initializer`` is a value).
      dtype: its dtype (default: the scope's, float32).
      initializer: an initializer, a Tensor or a value; default: the scope's
        initializer, else ``glorot_uniform_initializer`` for floats and zeros
        otherwise.
      regularizer: ``fn(variable) -> Tensor`` added to REGULARIZATION_LOSSES.
      trainable: add to TRAINABLE_VARIABLES (default True).
      collections: collections to add it to (default GLOBAL_VARIABLES).
      validate_shape: as for ``gf.Variable``.
      constraint: kept on the variable.
      caching_device, partitioner, use_resource, custom_getter, synchronization,
        aggregation: accepted for TF1 compatibility.

    Returns:
      The Variable.

    Raises:
      ValueError: when reuse rules forbid the request, or shapes/dtypes
        disagree with the existing variable.
    """
    return get_variable_scope().get_variable(
        name, shape, dtype, initializer, regularizer, trainable=trainable,
        collections=collections, validate_shape=validate_shape, constraint=constraint)


@contextlib.contextmanager
def variable_scope(name_or_scope: Any, default_name: str | None = None, values: Any = None,
                   initializer: Any = None, regularizer: Any = None, caching_device: Any = None,
                   partitioner: Any = None, custom_getter: Any = None, reuse: Any = None,
                   dtype: Any = None, use_resource: Any = None, constraint: Any = None,
                   auxiliary_name_scope: bool = True) -> Iterator[VariableScope]:
    """Opens a variable scope (TF1's ``tf.variable_scope``), with a name scope alongside.

    Args:
      name_or_scope: a name, or a VariableScope to re-enter.
      default_name: used (made unique) when ``name_or_scope`` is None.
      values: tensors whose graph to use.
      initializer, regularizer, dtype, constraint: defaults for get_variable.
      reuse: True, ``gf.AUTO_REUSE``, or None/False (inherit). Inside a reusing
        scope, reuse stays on.
      auxiliary_name_scope: if False, no name scope is opened.
      caching_device, partitioner, custom_getter, use_resource: accepted for
        TF1 compatibility.

    Yields:
      The VariableScope.

    Raises:
      ValueError: if both ``name_or_scope`` and ``default_name`` are None, or
        reuse=True is asked with only a default name.
    """
    from graphflow.ops.building import graph_of

    if name_or_scope is None and default_name is None:
        raise ValueError("If default_name is None then name_or_scope is required")
    g = graph_of(list(values) if values else [])
    st = _store(g)
    parent = st.scope
    if reuse is False:
        reuse = None
    if parent.reuse is True:
        reuse = True
    elif reuse is None:
        reuse = parent.reuse
    if isinstance(name_or_scope, VariableScope):
        full = name_or_scope.name
        name_scope = name_or_scope.original_name_scope
        base = name_or_scope
    else:
        if name_or_scope is None:
            if reuse is True and parent.reuse is not True:
                raise ValueError("reuse=True cannot be used without a name_or_scope")
            prefix = f"{parent.name}/" if parent.name else ""
            key = prefix + default_name
            n = st.counts.get(key, 0)
            local = default_name if n == 0 else f"{default_name}_{n}"
            # Skip names an explicit scope already took (TF1 checks this too).
            while n and prefix + local in st.counts:
                n += 1
                local = f"{default_name}_{n}"
            st.counts[key] = n + 1
        else:
            local = str(name_or_scope)
        full = f"{parent.name}/{local}" if parent.name else local
        prefix = f"{parent.name}/" if parent.name else ""
        st.counts.setdefault(prefix + local, 1)
        name_scope = None
        base = parent
    with g.as_default(), contextlib.ExitStack() as stack:
        if auxiliary_name_scope:
            if name_scope is not None:
                scope_str = stack.enter_context(g.name_scope(name_scope or None))
            else:
                scope_str = stack.enter_context(g.name_scope(full.rsplit("/", 1)[-1]))
        else:
            scope_str = name_scope if name_scope is not None else g.get_name_scope()
        new = VariableScope(
            reuse, full,
            initializer if initializer is not None else base.initializer,
            regularizer if regularizer is not None else base.regularizer,
            dtype if dtype is not None else base.dtype,
            name_scope=name_scope if name_scope is not None else scope_str,
            custom_getter=custom_getter or base.custom_getter,
            constraint=constraint or base.constraint)
        st.scope = new
        try:
            yield new
        finally:
            st.scope = parent


__all__ = ["AUTO_REUSE", "VariableScope", "get_variable", "get_variable_scope",
           "variable_scope"]
