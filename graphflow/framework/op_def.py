"""The op registry: one :class:`OpDef` per op type (DESIGN principle 1).

An OpDef declares everything about an op: its inputs, its dtype/shape rule
(``infer``), its NumPy reference evaluation (``reference``), its fusion kind,
whether it is stateful, and (added by later stages) its gradient and scalar
kernel expression. Backends look ops up here by type string.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphflow.framework import errors

# Fusion ladder (TVM Relax's op kinds): lower kinds fuse more freely.
ELEMENTWISE = "elementwise"
BROADCAST = "broadcast"
INJECTIVE = "injective"
REDUCTION = "reduction"
OPAQUE = "opaque"
SOURCE = "source"  # constants, placeholders, variables, random: no tensor inputs

_REGISTRY: dict[str, OpDef] = {}

# Op modules that `import graphflow` does not import (see graphflow/ops/__init__.py). Every
# way of finding an op by its type string goes through lookup() or registered_types(), which
# import these first when needed, so a graph file naming one of their ops still loads.
_DEFERRED_MODULES: list[str] = []


class OpDef:
    """Base class of op registrations.

    Subclasses set class attributes and override :meth:`infer` and
    :meth:`reference`; :func:`register` instantiates and records them.

    Attributes:
      type: the TF1 op type string, e.g. ``"MatMul"``.
      kind: fusion kind, one of the module constants.
      stateful: True if evaluating has side effects or is nondeterministic
        (never folded, merged or pruned when fetched).
      ref_inputs: indices of inputs that take a variable reference rather
        than a value (Assign's first input).
      grad: gradient rule, a ``staticmethod`` ``grad(op, *dys) -> list`` that
        builds graph ops: one gradient (or None) per input, given one gradient
        per output (outputs nobody differentiated get zeros). None means no
        gradient is defined: differentiating through a float output then raises.
      not_differentiable: True for ops through which no gradient flows by
        definition (random ops, shape queries, argmax); autodiff skips them.
      composite: for composite ops, a ``staticmethod`` ``expand(op, *inputs)
        -> outputs`` building the op from primitives, or None.
      scalar: for elementwise ops, the scalar expression used by kernel
        generators (a format string over input names), or None.
      plain_reference: when :meth:`reference` is exactly ``f(*inputs)`` (it needs
        neither the op's attributes nor run state), that ``f``, which hot paths
        call directly; else None.
    """

    type: str = ""
    kind: str = OPAQUE
    stateful: bool = False
    ref_inputs: tuple[int, ...] = ()
    grad: Callable[..., Any] | None = None
    not_differentiable: bool = False
    composite: Callable[..., Any] | None = None
    scalar: str | None = None
    plain_reference: Callable[..., Any] | None = None

    def infer(self, op: Any) -> list[tuple[Any, Any]]:
        """Returns ``[(dtype, TensorShape), ...]`` for the op's outputs.

        Raises:
          errors.ShapeError / errors.DTypeError: on invalid inputs; the graph
            adds the op's name and the user's source line.
        """
        raise NotImplementedError(self.type)

    def reference(self, op: Any, inputs: list[Any], ctx: Any) -> Any:
        """Evaluates the op with NumPy: returns one array or a list of arrays."""
        raise NotImplementedError(self.type)

    def __repr__(self) -> str:
        return f"<OpDef {self.type}>"


def register(cls: type) -> type:
    """Class decorator: registers an OpDef subclass under ``cls.type``."""
    if not cls.type:
        cls.type = cls.__name__
    if cls.type in _REGISTRY:
        raise ValueError(f"Op type {cls.type!r} is registered twice")
    _REGISTRY[cls.type] = cls()
    return cls


def defer_module(module_name: str) -> None:
    """Registers an op module to be imported on the first lookup that needs it.

    Args:
      module_name: the module's full name, e.g. ``"graphflow.ops.nn_ops"``.
    """
    if module_name not in _DEFERRED_MODULES:
        _DEFERRED_MODULES.append(module_name)


def _load_deferred() -> None:
    import importlib

    for name in list(_DEFERRED_MODULES):
        importlib.import_module(name)
        # Dropped only once imported, so a failed import is retried by the next lookup.
        if name in _DEFERRED_MODULES:
            _DEFERRED_MODULES.remove(name)


def lookup(op_type: str) -> OpDef:
    """The registration of ``op_type``.

    Raises:
      errors.NotFoundError: if no op of that type is registered.
    """
    try:
        return _REGISTRY[op_type]
    except KeyError:
        pass
    if _DEFERRED_MODULES:
        _load_deferred()
        if op_type in _REGISTRY:
            return _REGISTRY[op_type]
    raise errors.NotFoundError(None, None, f"Op type not registered: {op_type!r}")


def registered_types() -> list[str]:
    """The type strings of all registered ops, sorted."""
    _load_deferred()
    return sorted(_REGISTRY)


def shape_error(message: str) -> errors.ShapeError:
    """A build-time shape error; the graph adds the op and source line."""
    return errors.ShapeError(None, None, message)


def dtype_error(message: str) -> errors.DTypeError:
    """A build-time dtype error; the graph adds the op and source line."""
    return errors.DTypeError(None, None, message)
