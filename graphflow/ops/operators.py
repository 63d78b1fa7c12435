"""Python operators on Tensor and Variable, named as TF1 names them (``a + b`` -> ``add``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphflow.framework.graph import Tensor
from graphflow.ops import math_ops
from graphflow.ops.building import make, op_scope, to_tensors
from graphflow.ops.state_ops import Variable


def _binary(op_type: str, name: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    def build(x: Any, y: Any) -> Tensor:
        with op_scope(None, name, [x, y]) as scope:
            a, b = to_tensors([x, y], ["x", "y"])
            return make(op_type, [a, b], name=scope)

    def fwd(self: Any, other: Any) -> Tensor:
        return build(self, other)

    def rev(self: Any, other: Any) -> Tensor:
        with op_scope(None, name, [self, other]) as scope:
            b, a = to_tensors([self, other], ["y", "x"])
            return make(op_type, [a, b], name=scope)

    return fwd, rev


def _truediv(self: Any, other: Any) -> Tensor:
    return math_ops.truediv(self, other)


def _rtruediv(self: Any, other: Any) -> Tensor:
    with op_scope(None, "truediv", [self, other]) as scope:
        b, a = to_tensors([self, other], ["y", "x"])
        return math_ops.truediv(a, b, name=scope)


def _matmul(self: Any, other: Any) -> Tensor:
    return math_ops.matmul(self, other, name="matmul")


def _rmatmul(self: Any, other: Any) -> Tensor:
    with op_scope(None, "matmul", [self, other]) as scope:
        b, a = to_tensors([self, other])
        return math_ops.matmul(a, b, name=scope)


def _getitem(self: Any, key: Any) -> Tensor:
    from graphflow.ops.indexing_ops import slice_helper

    return slice_helper(self, key)


_TABLE: dict[str, Any] = {}
for _dunder, _type, _name in [
    ("add", "Add", "add"), ("sub", "Sub", "sub"), ("mul", "Mul", "mul"),
    ("floordiv", "FloorDiv", "floordiv"), ("mod", "FloorMod", "mod"), ("pow", "Pow", "pow"),
    ("and", "LogicalAnd", "and"), ("or", "LogicalOr", "or"),
]:
    _f, _r = _binary(_type, _name)
    _TABLE[f"__{_dunder}__"] = _f
    _TABLE[f"__r{_dunder}__"] = _r

for _dunder, _type in [("lt", "Less"), ("le", "LessEqual"), ("gt", "Greater"),
                       ("ge", "GreaterEqual")]:
    _TABLE[f"__{_dunder}__"] = _binary(_type, _type)[0]

_TABLE.update({
    "__truediv__": _truediv, "__rtruediv__": _rtruediv,
    "__matmul__": _matmul, "__rmatmul__": _rmatmul,
    "__neg__": lambda self: math_ops.negative(self),
    "__abs__": lambda self: math_ops.abs(self),
    "__invert__": lambda self: math_ops.logical_not(self),
    "__xor__": lambda self, other: math_ops.logical_xor(self, other, name="xor"),
    "__rxor__": lambda self, other: math_ops.logical_xor(other, self, name="xor"),
    "__getitem__": _getitem,
})


def _on_variable(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(self: Variable, *args: Any) -> Any:
        return fn(self.value(), *args)

    return wrapped


def install() -> None:
    """Installs the operators on Tensor and Variable."""
    for name, fn in _TABLE.items():
        setattr(Tensor, name, fn)
        setattr(Variable, name, _on_variable(fn))
