"""Broadcasting a tensor to a shape, and its adjoint: summing a tensor down to a shape.

``SumToShape`` is what gradients of broadcasting ops need when the static shapes
cannot tell which dims were broadcast (two unknown dims may be 1 or N at run time).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphflow.framework import dtypes as _dt
from graphflow.framework import errors
from graphflow.framework.graph import Tensor
from graphflow.framework.op_def import BROADCAST, REDUCTION, OpDef, register, shape_error
from graphflow.framework.tensor_shape import broadcast_shapes
from graphflow.ops import rules
from graphflow.ops.building import make, op_scope, to_tensor
from graphflow.ops.constant_op import constant_value_as_shape


def sum_to_shape_np(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sums ``x`` over the dims that broadcasting ``shape`` to ``x.shape`` added or stretched."""
    lead = x.ndim - len(shape)
    if lead < 0:
        raise errors.InvalidArgumentError(None, None, f"cannot sum shape {x.shape} to the "
                                                      f"larger rank of {shape}")
    axes = list(range(lead))
    for i, d in enumerate(shape):
        xd = x.shape[lead + i]
        if d == 1 and xd != 1:
            axes.append(lead + i)
        elif d != xd:
            raise errors.InvalidArgumentError(
                None, None, f"shape {list(shape)} does not broadcast to {list(x.shape)}")
    return np.sum(x, axis=tuple(axes), dtype=x.dtype).reshape(shape)


@register
class BroadcastTo(OpDef):
    """Broadcasts ``input`` to the 1-D int ``shape`` input (NumPy rules)."""

    kind = BROADCAST

    @staticmethod
    def grad(op, dy):
        return [sum_to_shape(dy, _shape_of(op.inputs[0])), None]

    def infer(self, op):
        x, s = op.inputs
        rules.check_dtype(s, (_dt.int32, _dt.int64), "shape")
        target = constant_value_as_shape(s)
        out = broadcast_shapes(x.shape, target)
        if out is None or (x.shape.ndims is not None and target.ndims is not None and
                           x.shape.ndims > target.ndims):
            raise shape_error(f"cannot broadcast {x.name} of shape {x.shape} to {target}")
        return [(x.dtype, target.merge_with(out) if target.ndims is not None else target)]

    def reference(self, op, inputs, ctx):
        x, s = inputs
        return np.broadcast_to(x, tuple(int(d) for d in s)).copy()


@register
class SumToShape(OpDef):
    """Sums input 0 down to the 1-D int ``shape`` input: the adjoint of BroadcastTo."""

    kind = REDUCTION

    @staticmethod
    def grad(op, dy):
        return [broadcast_to(dy, _shape_of(op.inputs[0])), None]

    def infer(self, op):
        x, s = op.inputs
        rules.check_dtype(s, (_dt.int32, _dt.int64), "shape")
        return [(x.dtype, constant_value_as_shape(s))]

    def reference(self, op, inputs, ctx):
        x, s = inputs
        return sum_to_shape_np(x, tuple(int(d) for d in s))


def _shape_of(t: Tensor) -> Any:
    if t.shape.is_fully_defined():
        return list(t.shape.values)
    from graphflow.ops.array_ops import shape

    return shape(t)


def broadcast_to(input: Any, shape: Any, name: str | None = None) -> Tensor:
    """Broadcasts ``input`` to ``shape`` (TF's ``tf.broadcast_to``).

    Args:
      input: a Tensor.
      shape: a list of ints or a 1-D int tensor.
      name: op name.

    Returns:
      A Tensor of ``shape``.

    Raises:
      ValueError: if ``input`` cannot broadcast to ``shape``.
    """
    from graphflow.ops.array_ops import _shape_input

    with op_scope(name, "BroadcastTo", [input, shape]) as scope:
        x = to_tensor(input, name="input")
        return make("BroadcastTo", [x, _shape_input(shape)], name=scope)


def sum_to_shape(x: Tensor, shape: Any, name: str | None = None) -> Tensor:
    """Sums ``x`` down to ``shape`` (graphflow op ``SumToShape``); a no-op if equal.

    Decided statically where the static shapes allow it (a plain ``Sum`` and
    ``Reshape``); only dims unknown on both sides need the run-time op.
    """
    from graphflow.ops.array_ops import _shape_input, reshape
    from graphflow.ops.math_ops import reduce_sum

    if isinstance(shape, Tensor):
        target = constant_value_as_shape(shape)
    else:
        from graphflow.framework.tensor_shape import as_shape

        target = as_shape(shape)
    xs = x.shape
    if xs.ndims is not None and target.ndims is not None:
        lead = xs.ndims - target.ndims
        if lead >= 0:
            axes = list(range(lead))
            decided = True
            for i, d in enumerate(target.values):
                xd = xs.values[lead + i]
                if d == 1:
                    if xd != 1:
                        axes.append(lead + i)
                elif d is None and xd is None:
                    decided = False
                    break
            if decided:
                if not axes and xs.is_compatible_with(target) and xs.ndims == target.ndims:
                    return x
                with op_scope(name, "SumToShape", [x]):
                    y = reduce_sum(x, axis=axes, keepdims=True) if axes else x
                    if lead or y.shape != target:
                        y = reshape(y, shape if isinstance(shape, Tensor) else
                                    _shape_input(shape))
                    return y
    with op_scope(name, "SumToShape", [x, shape]) as scope:
        return make("SumToShape", [x, _shape_input(shape)], name=scope)


__all__ = ["broadcast_to"]
