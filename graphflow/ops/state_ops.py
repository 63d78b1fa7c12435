"""Variables: the VariableV2 op, assignments, initializers and the Variable class."""

from __future__ import annotations

from typing import Any

import numpy as np

from graphflow.framework import dtypes as _dt
from graphflow.framework import errors
from graphflow.framework.graph import (
    GraphKeys,
    Operation,
    Tensor,
    convert_to_tensor,
    get_default_graph,
    register_tensor_conversion_function,
)
from graphflow.framework.op_def import SOURCE, OpDef, dtype_error, register, shape_error
from graphflow.framework.tensor_shape import TensorShape, as_shape
from graphflow.ops.building import make, op_scope


class VarRef:
    """What a VariableV2 op evaluates to: a handle to the variable's storage.

    Ops listed in ``OpDef.ref_inputs`` receive the handle; every other consumer
    gets the value as of the moment it runs.
    """

    __slots__ = ("store", "op")

    def __init__(self, store: dict, op: Operation) -> None:
        self.store = store
        self.op = op

    def read(self, reader: Operation | None = None) -> np.ndarray:
        try:
            return self.store[self.op.name]
        except KeyError:
            raise errors.FailedPreconditionError(
                None, reader or self.op,
                f"Attempting to use uninitialized value {self.op.name}") from None

    def write(self, value: np.ndarray) -> None:
        self.store[self.op.name] = value


@register
class VariableV2(OpDef):
    """Holds a variable's state across runs of a session."""

    kind = SOURCE
    stateful = True

    def infer(self, op):
        return [(op.get_attr("dtype"), op.get_attr("shape"))]

    def reference(self, op, inputs, ctx):
        return VarRef(ctx.variables, op)


class _AssignBase(OpDef):
    stateful = True
    ref_inputs = (0,)

    def infer(self, op):
        ref, value = op.inputs
        if ref.op.type != "VariableV2":
            raise dtype_error(f"input 'ref' must be a variable, got {ref.name} "
                              f"(a {ref.op.type} output)")
        if value.dtype is not ref.dtype:
            raise dtype_error(f"cannot assign a value of dtype {value.dtype.name} to variable "
                              f"{ref.op.name} of dtype {ref.dtype.name}")
        validate = op._attrs.get("validate_shape", True)
        if validate and not ref.shape.is_compatible_with(value.shape):
            raise shape_error(f"cannot assign a value of shape {value.shape} to variable "
                              f"{ref.op.name} of shape {ref.shape}")
        return [(ref.dtype, ref.shape if validate else value.shape)]

    def combine(self, old: np.ndarray, value: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reference(self, op, inputs, ctx):
        ref, value = inputs
        value = np.asarray(value)
        new = self.combine(ref.read(op), value) if self.type != "Assign" else value
        if op._attrs.get("validate_shape", True) or self.type != "Assign":
            want = ref.op.outputs[0].shape
            old = ref.store.get(ref.op.name)
            expect = old.shape if old is not None else None
            if expect is None and want.is_fully_defined():
                expect = tuple(want.values)
            if expect is not None and new.shape != expect:
                raise errors.InvalidArgumentError(
                    None, op, f"Assign requires shapes of both tensors to match. lhs shape= "
                              f"{list(expect)} rhs shape= {list(value.shape)}")
        # Replace, never mutate: arrays already handed out keep their values.
        new = np.array(new, dtype=ref.op.outputs[0].dtype.np, copy=True)
        ref.write(new)
        return new


@register
class Assign(_AssignBase):
    pass


@register
class AssignAdd(_AssignBase):
    def combine(self, old, value):
        return old + value


@register
class AssignSub(_AssignBase):
    def combine(self, old, value):
        return old - value


@register
class IsVariableInitialized(OpDef):
    stateful = True
    ref_inputs = (0,)

    def infer(self, op):
        return [(_dt.bool_, TensorShape([]))]

    def reference(self, op, inputs, ctx):
        ref = inputs[0]
        return np.array(ref.op.name in ref.store)


def _ref_of(ref: Any) -> Tensor:
    if isinstance(ref, Variable):
        return ref._variable
    return ref


def _assign(op_type: str, default: str, ref: Any, value: Any, name: str | None,
            attrs: dict[str, Any] | None = None) -> Tensor:
    r = _ref_of(ref)
    with op_scope(name, default, [r, value]) as scope:
        v = convert_to_tensor(value, dtype=r.dtype, name="value")
        return make(op_type, [r, v], {"use_locking": False, **(attrs or {})}, name=scope)


def assign(ref: Any, value: Any, validate_shape: bool | None = None,
           use_locking: bool | None = None, name: str | None = None) -> Tensor:
    """Assigns ``value`` to variable ``ref`` (TF1's ``tf.assign``).

    Args:
      ref: a Variable (or its VariableV2 tensor).
      value: the new value; same dtype, and same shape when ``validate_shape``.
      validate_shape: if False, the variable may change shape.
      use_locking: accepted for TF1 compatibility.
      name: op name.

    Returns:
      A tensor holding the new value, once the assignment has run.
    """
    vs = True if validate_shape is None else bool(validate_shape)
    return _assign("Assign", "Assign", ref, value, name, {"validate_shape": vs})


def assign_add(ref: Any, value: Any, use_locking: bool | None = None,
               name: str | None = None) -> Tensor:
    """Adds ``value`` to variable ``ref`` (TF1's ``tf.assign_add``); returns the new value."""
    return _assign("AssignAdd", "AssignAdd", ref, value, name)


def assign_sub(ref: Any, value: Any, use_locking: bool | None = None,
               name: str | None = None) -> Tensor:
    """Subtracts ``value`` from variable ``ref`` (TF1's ``tf.assign_sub``); returns the new
    value."""
    return _assign("AssignSub", "AssignSub", ref, value, name)


class Variable:
    """A mutable tensor that lives in a Session across runs (TF1's ``tf.Variable``).

    Args:
      initial_value: a Tensor, a value convertible to one, or a callable
        returning one.
      trainable: if True, also added to TRAINABLE_VARIABLES (optimizers' default).
      collections: collection keys (default ``[GLOBAL_VARIABLES]``).
      validate_shape: if False, the variable may change shape.
      name: the variable's name (default ``Variable``).
      dtype: if given, the initial value is converted to it.
      expected_shape, caching_device, constraint, use_resource, import_scope,
        variable_def: accepted for TF1 compatibility.

    Raises:
      ValueError: if ``initial_value`` is None.
    """

    # Make NumPy defer to our reflected operators (np_array * variable), as Tensor does.
    __array_priority__ = 100

    def __init__(self, initial_value: Any = None, trainable: bool = True,
                 collections: Any = None, validate_shape: bool = True,
                 caching_device: Any = None, name: str | None = None,
                 variable_def: Any = None, dtype: Any = None, expected_shape: Any = None,
                 import_scope: Any = None, constraint: Any = None,
                 use_resource: Any = None, synchronization: Any = None,
                 aggregation: Any = None, shape: Any = None) -> None:
        if initial_value is None:
            raise ValueError("initial_value must be specified.")
        if collections is None:
            collections = [GraphKeys.GLOBAL_VARIABLES]
        if isinstance(collections, str):
            collections = [collections]
        if trainable and GraphKeys.TRAINABLE_VARIABLES not in collections:
            collections = list(collections) + [GraphKeys.TRAINABLE_VARIABLES]
        self._trainable = trainable
        self._constraint = constraint
        init_fn = initial_value if callable(initial_value) else None
        g = get_default_graph()
        # Variables are created outside any control-dependency context, as in TF1.
        with g.control_dependencies(None), op_scope(
                name, "Variable", [] if init_fn else [initial_value]) as scope:
            with g.name_scope("initial_value"):
                init = init_fn() if init_fn else initial_value
                self._initial_value = convert_to_tensor(init, dtype=dtype, name="initial_value")
            vshape = self._initial_value.shape if validate_shape else TensorShape(None)
            if shape is not None:
                vshape = as_shape(shape)
            if validate_shape and not vshape.is_fully_defined():
                raise errors.ShapeError(
                    None, None,
                    f"initial_value of variable '{scope[:-1]}' must have a fully defined "
                    f"shape, got {self._initial_value.shape} (pass validate_shape=False to "
                    "allow an unknown shape)")
            self._variable = make("VariableV2", [], {
                "shape": vshape, "dtype": self._initial_value.dtype,
                "container": "", "shared_name": ""}, name=scope)
            self._initializer_op = assign(self._variable, self._initial_value,
                                          validate_shape=validate_shape, name="Assign").op
            self._snapshot = make("Identity", [self._variable], name="read")
        g.add_to_collections(collections, self)
        self._graph = g

    # --- identity -------------------------------------------------------
    @property
    def name(self) -> str:
        return self._variable.name

    @property
    def op(self) -> Operation:
        return self._variable.op

    @property
    def graph(self) -> Any:
        return self._graph

    @property
    def dtype(self) -> _dt.DType:
        return self._variable.dtype

    @property
    def shape(self) -> TensorShape:
        return self._variable.shape

    def get_shape(self) -> TensorShape:
        return self._variable.shape

    @property
    def device(self) -> str:
        return ""

    @property
    def trainable(self) -> bool:
        return self._trainable

    @property
    def constraint(self) -> Any:
        return self._constraint

    @property
    def initializer(self) -> Operation:
        """The op that assigns the initial value."""
        return self._initializer_op

    @property
    def initial_value(self) -> Tensor:
        return self._initial_value

    def _as_graph_element(self) -> Tensor:
        return self._variable

    def _ref(self) -> Tensor:
        return self._variable

    # --- reading and writing --------------------------------------------
    def value(self) -> Tensor:
        """The snapshot tensor ``<name>/read`` other ops consume."""
        return self._snapshot

    def read_value(self) -> Tensor:
        """A new read of the variable, ordered by the current control dependencies."""
        with op_scope(None, "read", [self._variable]) as scope:
            return make("Identity", [self._variable], name=scope)

    def initialized_value(self) -> Tensor:
        """The value after running this variable's initializer (for other initial values).

        As in TF1 before ``cond`` existed there, the read depends on the initializer;
        within one run the initializer runs once, shared by every reader.
        """
        with self._graph.control_dependencies(None), \
                self._graph.control_dependencies([self._initializer_op]):
            return self.read_value()

    def assign(self, value: Any, use_locking: bool = False, name: str | None = None,
               read_value: bool = True) -> Any:
        """Assigns ``value``; returns the new value (or the op if not read_value)."""
        t = assign(self, value, use_locking=use_locking, name=name)
        return t if read_value else t.op

    def assign_add(self, delta: Any, use_locking: bool = False, name: str | None = None,
                   read_value: bool = True) -> Any:
        """Adds ``delta``; returns the new value (or the op if not read_value)."""
        t = assign_add(self, delta, use_locking=use_locking, name=name)
        return t if read_value else t.op

    def assign_sub(self, delta: Any, use_locking: bool = False, name: str | None = None,
                   read_value: bool = True) -> Any:
        """Subtracts ``delta``; returns the new value (or the op if not read_value)."""
        t = assign_sub(self, delta, use_locking=use_locking, name=name)
        return t if read_value else t.op

    def eval(self, session: Any = None) -> np.ndarray:
        """The variable's current value in ``session`` (default session if None)."""
        return self._snapshot.eval(session=session)

    def load(self, value: Any, session: Any = None) -> None:
        """Writes ``value`` into the variable in ``session`` without adding ops."""
        from graphflow.runtime.session import _session_for

        _session_for(session, self._graph)._load_variable(self, value)

    def set_shape(self, shape: Any) -> None:
        self._variable.set_shape(shape)
        self._snapshot.set_shape(shape)

    def __repr__(self) -> str:
        return (f"<gf.Variable '{self._variable.name}' shape={self.shape} "
                f"dtype={self.dtype.name}>")

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __bool__(self) -> bool:
        raise TypeError("Using a graphflow Variable as a Python bool is not allowed.")


def _variable_to_tensor(v: Variable, dtype: Any = None, name: str | None = None,
                        as_ref: bool = False) -> Tensor:
    if dtype is not None and _dt.as_dtype(dtype) is not v.dtype:
        raise errors.DTypeError(None, None, f"Incompatible type conversion requested to type "
                                            f"'{_dt.as_dtype(dtype).name}' for variable of type "
                                            f"'{v.dtype.name}'")
    return v._variable if as_ref else v._snapshot


register_tensor_conversion_function(Variable, _variable_to_tensor)


def global_variables(scope: str | None = None) -> list[Variable]:
    """Variables in the GLOBAL_VARIABLES collection."""
    return get_default_graph().get_collection(GraphKeys.GLOBAL_VARIABLES, scope)


def local_variables(scope: str | None = None) -> list[Variable]:
    """Variables in the LOCAL_VARIABLES collection."""
    return get_default_graph().get_collection(GraphKeys.LOCAL_VARIABLES, scope)


def trainable_variables(scope: str | None = None) -> list[Variable]:
    """Variables in the TRAINABLE_VARIABLES collection."""
    return get_default_graph().get_collection(GraphKeys.TRAINABLE_VARIABLES, scope)


def model_variables(scope: str | None = None) -> list[Variable]:
    """Variables in the MODEL_VARIABLES collection."""
    return get_default_graph().get_collection(GraphKeys.MODEL_VARIABLES, scope)


def variables_initializer(var_list: list[Variable], name: str = "init") -> Operation:
    """An op that runs the initializers of ``var_list`` (a NoOp if empty)."""
    from graphflow.ops.control_flow_ops import group, no_op

    if var_list:
        return group(*[v.initializer for v in var_list], name=name)
    return no_op(name=name)


def global_variables_initializer() -> Operation:
    """An op that initializes all global variables (name ``init``)."""
    return variables_initializer(global_variables(), name="init")


def local_variables_initializer() -> Operation:
    """An op that initializes all local variables (name ``init_1`` style)."""
    return variables_initializer(local_variables(), name="init")


def is_variable_initialized(variable: Variable) -> Tensor:
    """A bool tensor: whether ``variable`` has a value in the session."""
    return make("IsVariableInitialized", [variable._variable])
