"""Elementwise math, comparisons, casts, reductions and matrix products.

Each op is one registration: a row of the unary/binary tables below, or a class.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphflow.framework import dtypes as _dt
from graphflow.framework import errors
from graphflow.framework.graph import Tensor
from graphflow.framework.op_def import (
    BROADCAST,
    ELEMENTWISE,
    OPAQUE,
    REDUCTION,
    OpDef,
    register,
    shape_error,
)
from graphflow.framework.tensor_shape import TensorShape, unknown_shape
from graphflow.ops import rules
from graphflow.ops.building import make, op_scope, to_tensor, to_tensors

F = _dt.FLOATS
NUM = _dt.NUMERIC
SIGNED = _dt.SIGNED
INTS = _dt.INTS
BOOL = (_dt.bool_,)
ALL = _dt.ALL


# --- unary elementwise --------------------------------------------------------
class UnaryOp(OpDef):
    """Elementwise op of one input; output dtype = input dtype unless ``out_dtype``."""

    kind = ELEMENTWISE
    dtypes: tuple = F
    out_dtype: _dt.DType | None = None
    fn: Callable[..., Any]

    def infer(self, op):
        x = op.inputs[0]
        rules.check_dtype(x, self.dtypes, "input 'x'")
        return [(self.out_dtype or x.dtype, x.shape)]

    def reference(self, op, inputs, ctx):
        return self.fn(inputs[0])

    @property
    def plain_reference(self):
        return self.fn if type(self).reference is UnaryOp.reference else None


def unary(op_type: str, fn: Callable[..., Any], dtypes: tuple = F,
          out_dtype: _dt.DType | None = None, scalar: str | None = None,
          grad: Callable[..., Any] | None = None) -> type:
    """Registers an elementwise unary op (one row of the table).

    ``grad(op, dy)`` returns the input's gradient as a one-element list.
    """
    cls = type(op_type, (UnaryOp,), {"type": op_type, "fn": staticmethod(fn),
                                     "dtypes": dtypes, "out_dtype": out_dtype,
                                     "scalar": scalar, "__module__": __name__,
                                     "grad": None if grad is None else staticmethod(grad)})
    return register(cls)


def _int_zero_check(y: np.ndarray) -> None:
    if y.dtype.kind in "iu" and np.any(y == 0):
        raise errors.InvalidArgumentError(None, None, "Integer division by zero")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Stable for large |x|: never exponentiates a positive number.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


_erf_obj = np.frompyfunc(math.erf, 1, 1)


def _erf(x: np.ndarray) -> np.ndarray:
    # np.asarray: on a 0-d input the ufunc returns a bare Python float.
    return np.asarray(_erf_obj(x.astype(np.float64)), dtype=np.float64).astype(x.dtype)


def _reciprocal(x: np.ndarray) -> np.ndarray:
    _int_zero_check(x)
    return np.reciprocal(x)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

unary("Neg", np.negative, SIGNED, scalar="-{x}", grad=lambda op, dy: [-dy])
unary("Abs", np.abs, SIGNED, scalar="abs({x})",
      grad=lambda op, dy: [dy * sign(op.inputs[0])])
unary("Sign", np.sign, SIGNED, scalar="sign({x})", grad=lambda op, dy: [_zeros(dy)])
unary("Square", np.square, SIGNED, scalar="{x}*{x}",
      grad=lambda op, dy: [dy * (2.0 * op.inputs[0])])
unary("Sqrt", np.sqrt, scalar="sqrt({x})", grad=lambda op, dy: [dy * 0.5 / op.outputs[0]])
unary("Rsqrt", lambda x: 1 / np.sqrt(x), scalar="1/sqrt({x})",
      grad=lambda op, dy: [dy * -0.5 * op.outputs[0] * op.outputs[0] * op.outputs[0]])
unary("Reciprocal", _reciprocal, SIGNED, scalar="1/{x}",
      grad=lambda op, dy: [-dy * op.outputs[0] * op.outputs[0]])
unary("Exp", np.exp, scalar="exp({x})", grad=lambda op, dy: [dy * op.outputs[0]])
unary("Expm1", np.expm1, scalar="expm1({x})",
      grad=lambda op, dy: [dy * (op.outputs[0] + 1.0)])
unary("Log", np.log, scalar="log({x})", grad=lambda op, dy: [dy / op.inputs[0]])
unary("Log1p", np.log1p, scalar="log1p({x})",
      grad=lambda op, dy: [dy / (1.0 + op.inputs[0])])
unary("Sin", np.sin, scalar="sin({x})", grad=lambda op, dy: [dy * cos(op.inputs[0])])
unary("Cos", np.cos, scalar="cos({x})", grad=lambda op, dy: [-(dy * sin(op.inputs[0]))])
unary("Tan", np.tan, scalar="tan({x})",
      grad=lambda op, dy: [dy * (1.0 + op.outputs[0] * op.outputs[0])])
unary("Tanh", np.tanh, scalar="tanh({x})",
      grad=lambda op, dy: [dy * (1.0 - op.outputs[0] * op.outputs[0])])
unary("Sigmoid", _sigmoid, scalar="sigmoid({x})",
      grad=lambda op, dy: [dy * op.outputs[0] * (1.0 - op.outputs[0])])
unary("Softplus", lambda x: np.logaddexp(np.zeros((), x.dtype), x), scalar="softplus({x})",
      grad=lambda op, dy: [dy * sigmoid(op.inputs[0])])
unary("Softsign", lambda x: x / (1 + np.abs(x)), scalar="{x}/(1+abs({x}))",
      grad=lambda op, dy: [dy / square(1.0 + abs(op.inputs[0]))])
unary("Erf", _erf, scalar="erf({x})",
      grad=lambda op, dy: [dy * (2 / math.sqrt(math.pi)) * exp(-square(op.inputs[0]))])
unary("Floor", np.floor, scalar="floor({x})", grad=lambda op, dy: [None])
unary("Ceil", np.ceil, scalar="ceil({x})", grad=lambda op, dy: [None])
unary("Round", np.round, scalar="round({x})", grad=lambda op, dy: [None])
unary("IsNan", np.isnan, out_dtype=_dt.bool_)
unary("IsInf", np.isinf, out_dtype=_dt.bool_)
unary("IsFinite", np.isfinite, out_dtype=_dt.bool_)
unary("LogicalNot", np.logical_not, BOOL, scalar="not {x}")
unary("Relu", lambda x: np.maximum(x, np.zeros((), x.dtype)), SIGNED, scalar="max({x}, 0)",
      grad=lambda op, dy: [where_v2(op.outputs[0] > 0, dy, _zeros(dy))])
unary("Relu6", lambda x: np.minimum(np.maximum(x, 0), 6).astype(x.dtype), SIGNED,
      grad=lambda op, dy: [where_v2(logical_and(op.inputs[0] > 0, op.inputs[0] < 6), dy,
                                    _zeros(dy))])
unary("Elu", lambda x: np.where(x > 0, x, np.expm1(x)).astype(x.dtype),
      grad=lambda op, dy: [where_v2(op.outputs[0] > 0, dy, dy * (op.outputs[0] + 1.0))])
unary("Selu", lambda x: (_SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(x)))
      .astype(x.dtype),
      grad=lambda op, dy: [where_v2(op.outputs[0] > 0, dy * _SELU_SCALE,
                                    dy * (op.outputs[0] + _SELU_SCALE * _SELU_ALPHA))])


@register
class LeakyRelu(UnaryOp):
    """``x if x > 0 else alpha * x``; attr ``alpha``."""

    @staticmethod
    def grad(op, dy):
        return [where_v2(op.inputs[0] > 0, dy, dy * op.get_attr("alpha"))]

    def reference(self, op, inputs, ctx):
        x = inputs[0]
        return np.where(x > 0, x, x * x.dtype.type(op.get_attr("alpha"))).astype(x.dtype)


@register
class Gelu(UnaryOp):
    """Gaussian error linear unit; attr ``approximate`` selects the tanh form."""

    @staticmethod
    def grad(op, dy):
        x = op.inputs[0]
        if op.get_attr("approximate"):
            c = math.sqrt(2 / math.pi)
            t = tanh(c * (x + 0.044715 * x * x * x))
            d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * (c * (1.0 + 3 * 0.044715 * x * x))
        else:
            d = 0.5 * (1.0 + erf(x * (1 / math.sqrt(2)))) + x * exp(-0.5 * x * x) * (
                1 / math.sqrt(2 * math.pi))
        return [dy * d]

    def reference(self, op, inputs, ctx):
        x = inputs[0]
        x64 = x.astype(np.float64)
        if op.get_attr("approximate"):
            c = math.sqrt(2 / math.pi)
            y = 0.5 * x64 * (1 + np.tanh(c * (x64 + 0.044715 * x64 ** 3)))
        else:
            y = 0.5 * x64 * (1 + _erf(x64 / math.sqrt(2)))
        return y.astype(x.dtype)


@register
class Identity(UnaryOp):
    dtypes = ALL
    fn = staticmethod(lambda x: x)
    scalar = "{x}"
    grad = staticmethod(lambda op, dy: [dy])


@register
class StopGradient(UnaryOp):
    dtypes = ALL
    fn = staticmethod(lambda x: x)
    scalar = "{x}"
    not_differentiable = True


@register
class Cast(OpDef):
    """Converts to attr ``DstT`` (floats truncate toward zero into ints, as C/TF)."""

    kind = ELEMENTWISE

    @staticmethod
    def grad(op, dy):
        src = op.inputs[0].dtype
        if src.is_floating and op.get_attr("DstT").is_floating:
            return [cast(dy, src)]
        return [None]

    def infer(self, op):
        return [(op.get_attr("DstT"), op.inputs[0].shape)]

    def reference(self, op, inputs, ctx):
        return inputs[0].astype(op.get_attr("DstT").np)


# --- binary elementwise -------------------------------------------------------
class BinaryOp(OpDef):
    """Broadcasting op of two inputs of one dtype."""

    kind = BROADCAST
    dtypes: tuple = NUM
    out_dtype: _dt.DType | None = None
    fn: Callable[..., Any]

    def infer(self, op):
        x, y = op.inputs
        rules.check_dtype(x, self.dtypes, "input 'x'")
        d = rules.same_dtype(x, y)
        return [(self.out_dtype or d, rules.broadcast(x, y))]

    def reference(self, op, inputs, ctx):
        return self.fn(*inputs)

    @property
    def plain_reference(self):
        return self.fn if type(self).reference is BinaryOp.reference else None


def binary(op_type: str, fn: Callable[..., Any], dtypes: tuple = NUM,
           out_dtype: _dt.DType | None = None, scalar: str | None = None,
           grad: Callable[..., Any] | None = None) -> type:
    """Registers a broadcasting binary op (one row of the table).

    ``grad(op, dy)`` returns ``[dx, dy]`` already summed to the inputs' shapes.
    """
    cls = type(op_type, (BinaryOp,), {"type": op_type, "fn": staticmethod(fn),
                                      "dtypes": dtypes, "out_dtype": out_dtype,
                                      "scalar": scalar, "__module__": __name__,
                                      "grad": None if grad is None else staticmethod(grad)})
    return register(cls)


def _floordiv(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    _int_zero_check(y)
    return np.floor_divide(x, y)


def _floormod(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    _int_zero_check(y)
    return np.mod(x, y)


def _truncdiv(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    _int_zero_check(y)
    if x.dtype.kind in "iu":
        q = np.abs(x) // np.abs(y)
        return np.where((x < 0) ^ (y < 0), -q, q).astype(np.result_type(x, y))
    return np.trunc(x / y)


def _pow(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if x.dtype.kind in "iu" and np.any(y < 0):
        raise errors.InvalidArgumentError(
            None, None, "Integers to negative integer powers are not allowed")
    return np.power(x, y)


binary("Add", np.add, scalar="{x}+{y}", grad=lambda op, dy: _both(op, dy, dy))
binary("Sub", np.subtract, scalar="{x}-{y}", grad=lambda op, dy: _both(op, dy, -dy))
binary("Mul", np.multiply, scalar="{x}*{y}",
       grad=lambda op, dy: _both(op, dy * op.inputs[1], op.inputs[0] * dy))
binary("RealDiv", np.true_divide, F, scalar="{x}/{y}", grad=lambda op, dy: _div_grad(op, dy))
binary("Div", lambda x, y: _truncdiv(x, y) if x.dtype.kind in "iu" else x / y,
       scalar="{x}/{y}", grad=lambda op, dy: _div_grad(op, dy))
binary("FloorDiv", _floordiv, scalar="floordiv({x}, {y})", grad=lambda op, dy: [None, None])
binary("TruncateDiv", _truncdiv, grad=lambda op, dy: [None, None])
binary("FloorMod", _floormod, scalar="floormod({x}, {y})",
       grad=lambda op, dy: _both(op, dy, -dy * floordiv(op.inputs[0], op.inputs[1])))
binary("Pow", _pow, scalar="pow({x}, {y})", grad=lambda op, dy: _pow_grad(op, dy))
binary("Maximum", np.maximum, scalar="max({x}, {y})",
       grad=lambda op, dy: _select_grad(op, dy, op.inputs[0] >= op.inputs[1]))
binary("Minimum", np.minimum, scalar="min({x}, {y})",
       grad=lambda op, dy: _select_grad(op, dy, op.inputs[0] <= op.inputs[1]))
binary("SquaredDifference", lambda x, y: np.square(x - y), scalar="({x}-{y})*({x}-{y})",
       grad=lambda op, dy: _sqdiff_grad(op, dy))
binary("Equal", np.equal, ALL, _dt.bool_, scalar="{x}=={y}")
binary("NotEqual", np.not_equal, ALL, _dt.bool_, scalar="{x}!={y}")
binary("Less", np.less, NUM, _dt.bool_, scalar="{x}<{y}")
binary("LessEqual", np.less_equal, NUM, _dt.bool_, scalar="{x}<={y}")
binary("Greater", np.greater, NUM, _dt.bool_, scalar="{x}>{y}")
binary("GreaterEqual", np.greater_equal, NUM, _dt.bool_, scalar="{x}>={y}")
binary("LogicalAnd", np.logical_and, BOOL, scalar="{x} and {y}")
binary("LogicalOr", np.logical_or, BOOL, scalar="{x} or {y}")


@register
class Select(OpDef):
    """TF1 ``where(cond, x, y)``: cond has x's shape, or is a vector over x's first dim."""

    kind = BROADCAST

    @staticmethod
    def grad(op, dy):
        c = op.inputs[0]
        zero = _zeros(dy)
        return [None, where(c, dy, zero), where(c, zero, dy)]

    def infer(self, op):
        c, x, y = op.inputs
        rules.check_dtype(c, BOOL, "condition")
        d = rules.same_dtype(x, y)
        if not x.shape.is_compatible_with(y.shape):
            raise shape_error(f"x and y must have the same shape, got {x.shape} and {y.shape}")
        shape = x.shape.merge_with(y.shape)
        cr, xr = c.shape.ndims, shape.ndims
        if cr is not None and xr is not None and cr != 0 and not (
                c.shape.is_compatible_with(shape) or
                (cr == 1 and xr >= 1 and c.shape[0].is_compatible_with(shape[0]))):
            raise shape_error(f"condition of shape {c.shape} must be a scalar, have the shape "
                              f"of x {shape}, or be a vector of length x.shape[0]")
        return [(d, shape)]

    def reference(self, op, inputs, ctx):
        c, x, y = inputs
        if c.ndim == 1 and x.ndim > 1:
            if c.shape[0] != x.shape[0]:
                raise errors.InvalidArgumentError(
                    None, None, f"condition of length {c.shape[0]} does not match x's first "
                                f"dimension {x.shape[0]}")
            c = c.reshape(c.shape + (1,) * (x.ndim - 1))
        elif c.shape != x.shape and c.ndim != 0:
            raise errors.InvalidArgumentError(
                None, None, f"condition shape {c.shape} and x shape {x.shape} differ")
        if x.shape != y.shape:
            raise errors.InvalidArgumentError(
                None, None, f"x shape {x.shape} and y shape {y.shape} differ")
        return np.where(c, x, y)


@register
class SelectV2(OpDef):
    """``where_v2(cond, x, y)``: all three broadcast together."""

    kind = BROADCAST
    scalar = "{x} if {c} else {y}"

    @staticmethod
    def grad(op, dy):
        from graphflow.autodiff import unbroadcast

        c, x, y = op.inputs
        zero = _zeros(dy)
        return [None, unbroadcast(where_v2(c, dy, zero), x, c, y),
                unbroadcast(where_v2(c, zero, dy), y, c, x)]

    def infer(self, op):
        c, x, y = op.inputs
        rules.check_dtype(c, BOOL, "condition")
        d = rules.same_dtype(x, y)
        return [(d, rules.broadcast(c, x, y))]

    def reference(self, op, inputs, ctx):
        return np.where(*inputs)


@register
class Where(OpDef):
    """Coordinates of true elements: int64 ``[num_true, rank]``."""

    not_differentiable = True

    def infer(self, op):
        c = op.inputs[0]
        r = c.shape.ndims
        return [(_dt.int64, TensorShape([None, r]))]

    def reference(self, op, inputs, ctx):
        c = inputs[0]
        return np.argwhere(c.astype(bool)).astype(np.int64)  # [num_true, rank], also rank 0


# --- reductions ---------------------------------------------------------------
class ReduceOp(OpDef):
    """Reduces attr ``axis`` (tuple of ints, or None for all) keeping dims if ``keep_dims``."""

    kind = REDUCTION
    dtypes: tuple = NUM

    def infer(self, op):
        x = op.inputs[0]
        rules.check_dtype(x, self.dtypes, "input")
        axes = op.get_attr("axis")
        return [(x.dtype, rules.reduce_shape(x.shape, axes, op.get_attr("keep_dims")))]

    def reference(self, op, inputs, ctx):
        x = inputs[0]
        axes = op.get_attr("axis")
        return self.reduce(x, axes, op.get_attr("keep_dims"))

    def reduce(self, x, axes, keepdims):
        raise NotImplementedError


def _mean(x: np.ndarray, axes: Any, keepdims: bool) -> np.ndarray:
    if x.dtype.kind in "iu":
        s = np.sum(x, axis=axes, keepdims=keepdims, dtype=x.dtype)
        n = x.size // max(s.size, 1) if x.size else 0
        if n == 0:
            return np.zeros_like(s)
        q = np.abs(s) // n
        return np.where(s < 0, -q, q).astype(x.dtype)
    if x.size == 0:
        return np.sum(x, axis=axes, keepdims=keepdims) * np.array(np.nan, x.dtype)
    return np.mean(x, axis=axes, keepdims=keepdims, dtype=x.dtype)


def _extreme(fn: Callable[..., Any], low: bool) -> Callable[..., Any]:
    def reduce(x: np.ndarray, axes: Any, keepdims: bool) -> np.ndarray:
        d = _dt.as_dtype(x.dtype)
        if x.dtype.kind == "f":
            init = np.inf if low else -np.inf
        else:
            init = d.max if low else d.min
        return fn(x, axis=axes, keepdims=keepdims, initial=init)

    return reduce


def reduction(op_type: str, fn: Callable[..., Any], dtypes: tuple = NUM,
              grad: Callable[..., Any] | None = None) -> type:
    """Registers a reduction op (one row of the table)."""
    cls = type(op_type, (ReduceOp,), {"type": op_type, "dtypes": dtypes,
                                      "reduce": staticmethod(fn), "__module__": __name__,
                                      "grad": None if grad is None else staticmethod(grad)})
    return register(cls)


reduction("Sum", lambda x, a, k: np.sum(x, axis=a, keepdims=k, dtype=x.dtype),
          grad=lambda op, dy: [_sum_grad(op, dy)])
reduction("Prod", lambda x, a, k: np.prod(x, axis=a, keepdims=k, dtype=x.dtype),
          grad=lambda op, dy: [_prod_grad(op, dy)])
reduction("Mean", _mean, grad=lambda op, dy: [_mean_grad(op, dy)])
reduction("Max", _extreme(np.max, False), grad=lambda op, dy: [_extreme_grad(op, dy)])
reduction("Min", _extreme(np.min, True), grad=lambda op, dy: [_extreme_grad(op, dy)])
reduction("Any", lambda x, a, k: np.any(x, axis=a, keepdims=k), BOOL)
reduction("All", lambda x, a, k: np.all(x, axis=a, keepdims=k), BOOL)


class ArgReduce(OpDef):
    kind = REDUCTION
    not_differentiable = True

    def infer(self, op):
        x = op.inputs[0]
        rules.check_dtype(x, NUM, "input")
        axis = op.get_attr("axis")
        dims = x.shape.values
        if dims is None:
            shape = unknown_shape()
        else:
            shape = TensorShape(dims[:axis] + dims[axis + 1:])
            if dims[axis] == 0:
                raise shape_error(f"cannot reduce over the empty axis {axis} of shape {x.shape}")
        return [(op.get_attr("output_type"), shape)]

    def reference(self, op, inputs, ctx):
        x = inputs[0]
        axis = op.get_attr("axis")
        if x.shape[axis] == 0:
            raise errors.InvalidArgumentError(
                None, None, f"Reduction axis {axis} is empty in shape {list(x.shape)}")
        fn = np.argmax if self.type == "ArgMax" else np.argmin
        return fn(x, axis=axis).astype(op.get_attr("output_type").np)


@register
class ArgMax(ArgReduce):
    pass


@register
class ArgMin(ArgReduce):
    pass


# --- matrix products ------------------------------------------------------------
@register
class MatMul(OpDef):
    """2-D matrix product with attrs ``transpose_a`` / ``transpose_b``."""

    kind = OPAQUE

    @staticmethod
    def grad(op, dy):
        a, b = op.inputs
        return _matmul_grads(a, b, dy, op.get_attr("transpose_a"), op.get_attr("transpose_b"))

    def infer(self, op):
        a, b = op.inputs
        rules.check_dtype(a, NUM, "input 'a'")
        d = rules.same_dtype(a, b)
        rules.require_rank(a, 2, "input 'a'")
        rules.require_rank(b, 2, "input 'b'")
        ad = a.shape.values or (None, None)
        bd = b.shape.values or (None, None)
        if op.get_attr("transpose_a"):
            ad = ad[::-1]
        if op.get_attr("transpose_b"):
            bd = bd[::-1]
        if ad[1] is not None and bd[0] is not None and ad[1] != bd[0]:
            raise shape_error(f"Dimensions must be equal, but are {ad[1]} and {bd[0]}: "
                              f"input shapes {a.shape} and {b.shape} (transpose_a="
                              f"{op.get_attr('transpose_a')}, transpose_b="
                              f"{op.get_attr('transpose_b')})")
        return [(d, TensorShape([ad[0], bd[1]]))]

    def reference(self, op, inputs, ctx):
        a, b = inputs
        if op.get_attr("transpose_a"):
            a = a.T
        if op.get_attr("transpose_b"):
            b = b.T
        return np.matmul(a, b)


@register
class BatchMatMulV2(OpDef):
    """Batched matrix product over the last two dims, batch dims broadcast."""

    kind = OPAQUE

    @staticmethod
    def grad(op, dy):
        from graphflow.autodiff import unbroadcast

        a, b = op.inputs
        ga, gb = _matmul_grads(a, b, dy, op.get_attr("adj_x"), op.get_attr("adj_y"))
        return [unbroadcast(ga, a, b), unbroadcast(gb, b, a)]

    def infer(self, op):
        a, b = op.inputs
        rules.check_dtype(a, NUM, "input 'x'")
        d = rules.same_dtype(a, b)
        rules.require_rank_at_least(a, 2, "input 'x'")
        rules.require_rank_at_least(b, 2, "input 'y'")
        if a.shape.ndims is None or b.shape.ndims is None:
            return [(d, unknown_shape())]
        ad, bd = list(a.shape.values), list(b.shape.values)
        if op.get_attr("adj_x"):
            ad[-2:] = ad[-2:][::-1]
        if op.get_attr("adj_y"):
            bd[-2:] = bd[-2:][::-1]
        if ad[-1] is not None and bd[-2] is not None and ad[-1] != bd[-2]:
            raise shape_error(f"Dimensions must be equal, but are {ad[-1]} and {bd[-2]}: "
                              f"input shapes {a.shape} and {b.shape}")
        batch = rules.broadcast_shapes_or_error(TensorShape(ad[:-2]), TensorShape(bd[:-2]),
                                                a, b)
        return [(d, batch.concatenate([ad[-2], bd[-1]]))]

    def reference(self, op, inputs, ctx):
        a, b = inputs
        if op.get_attr("adj_x"):
            a = np.swapaxes(a, -1, -2)
        if op.get_attr("adj_y"):
            b = np.swapaxes(b, -1, -2)
        return np.matmul(a, b)


# --- cumulative sums and products ---------------------------------------------------
def _cumulate(x: np.ndarray, axis: int, exclusive: bool, reverse: bool,
              fn: Callable[..., Any], identity: float) -> np.ndarray:
    if reverse:
        x = np.flip(x, axis)
    out = fn(x, axis=axis, dtype=x.dtype)
    if exclusive:
        pad = [(0, 0)] * x.ndim
        pad[axis] = (1, 0)
        out = np.pad(out, pad, constant_values=identity)
        out = np.delete(out, -1, axis=axis) if out.shape[axis] else out
    if reverse:
        out = np.flip(out, axis)
    return out


class _CumulativeOp(OpDef):
    """Running sum/product along attr ``axis``; attrs ``exclusive`` and ``reverse``."""

    kind = OPAQUE
    fn: Callable[..., Any]
    identity: float

    def infer(self, op):
        x = op.inputs[0]
        rules.check_dtype(x, NUM, "x")
        return [(x.dtype, x.shape)]

    def reference(self, op, inputs, ctx):
        x = inputs[0]
        return _cumulate(x, op.get_attr("axis"), op.get_attr("exclusive"),
                         op.get_attr("reverse"), type(self).fn, self.identity)


@register
class Cumsum(_CumulativeOp):
    fn = staticmethod(np.cumsum)
    identity = 0

    @staticmethod
    def grad(op, dy):
        return [cumsum(dy, op.get_attr("axis"), exclusive=op.get_attr("exclusive"),
                       reverse=not op.get_attr("reverse"))]


@register
class Cumprod(_CumulativeOp):
    fn = staticmethod(np.cumprod)
    identity = 1

    @staticmethod
    def grad(op, dy):
        # TF1's rule; like TF1's it is not defined where x has zeros.
        x, y = op.inputs[0], op.outputs[0]
        s = cumsum(dy * y, op.get_attr("axis"), exclusive=op.get_attr("exclusive"),
                   reverse=not op.get_attr("reverse"))
        return [s / x]


def _cumulative(op_type: str, x: Any, axis: Any, exclusive: bool, reverse: bool,
                name: str | None) -> Tensor:
    with op_scope(name, op_type, [x]) as scope:
        t = to_tensor(x, name="x")
        a = _axes(t, axis)
        if a is None or len(a) != 1:
            raise errors.ShapeError(None, None, f"{op_type}: axis must be one int")
        return make(op_type, [t], {"axis": a[0], "exclusive": bool(exclusive),
                                   "reverse": bool(reverse)}, name=scope)


def cumsum(x: Any, axis: Any = 0, exclusive: bool = False, reverse: bool = False,
           name: str | None = None) -> Tensor:
    """Cumulative sum along ``axis`` (TF1's ``tf.cumsum``).

    Args:
      x: a numeric tensor.
      axis: the axis (a Python int).
      exclusive: leave out the current element (the first output is 0).
      reverse: accumulate from the end.
      name: op name.

    Returns:
      A tensor of x's shape and dtype.
    """
    return _cumulative("Cumsum", x, axis, exclusive, reverse, name)


def cumprod(x: Any, axis: Any = 0, exclusive: bool = False, reverse: bool = False,
            name: str | None = None) -> Tensor:
    """Cumulative product along ``axis`` (TF1's ``tf.cumprod``); arguments as :func:`cumsum`."""
    return _cumulative("Cumprod", x, axis, exclusive, reverse, name)


# --- public functions ---------------------------------------------------------
def _unary_fn(op_type: str) -> Callable[..., Tensor]:
    def fn(x: Any, name: str | None = None) -> Tensor:
        with op_scope(name, op_type, [x]) as scope:
            return make(op_type, [to_tensor(x, name="x")], name=scope)

    fn.__name__ = fn.__qualname__ = op_type.lower()
    fn.__doc__ = (f"Elementwise ``{op_type}`` (TF1 semantics).\n\n    Args:\n      x: a "
                  f"Tensor or value.\n      name: op name.\n\n    Returns:\n      A Tensor of x's "
                  f"shape.\n")
    return fn


def _binary_fn(op_type: str, default_name: str | None = None) -> Callable[..., Tensor]:
    def fn(x: Any, y: Any, name: str | None = None) -> Tensor:
        with op_scope(name, default_name or op_type, [x, y]) as scope:
            a, b = to_tensors([x, y], ["x", "y"])
            return make(op_type, [a, b], name=scope)

    fn.__name__ = fn.__qualname__ = (default_name or op_type).lower()
    fn.__doc__ = (f"Elementwise ``{op_type}`` with broadcasting (TF1 semantics).\n\n    Args:\n"
                  f"      x: a Tensor or value.\n      y: a Tensor or value of x's dtype.\n"
                  f"      name: op name.\n\n    Returns:\n      A Tensor of the broadcast "
                  f"shape.\n")
    return fn


negative = _unary_fn("Neg")
abs = _unary_fn("Abs")  # noqa: A001 - TF1 name
sign = _unary_fn("Sign")
square = _unary_fn("Square")
sqrt = _unary_fn("Sqrt")
rsqrt = _unary_fn("Rsqrt")
reciprocal = _unary_fn("Reciprocal")
exp = _unary_fn("Exp")
expm1 = _unary_fn("Expm1")
log = _unary_fn("Log")
log1p = _unary_fn("Log1p")
sin = _unary_fn("Sin")
cos = _unary_fn("Cos")
tan = _unary_fn("Tan")
tanh = _unary_fn("Tanh")
sigmoid = _unary_fn("Sigmoid")
erf = _unary_fn("Erf")
floor = _unary_fn("Floor")
ceil = _unary_fn("Ceil")
_round = _unary_fn("Round")


def round(x: Any, name: str | None = None) -> Tensor:  # noqa: A001 - TF1 name
    """Rounds half to even (TF1's ``tf.round``); integer tensors are returned as they are."""
    t = to_tensor(x, name="x")
    return t if t.dtype.is_integer else _round(t, name=name)
is_nan = _unary_fn("IsNan")
is_inf = _unary_fn("IsInf")
is_finite = _unary_fn("IsFinite")
logical_not = _unary_fn("LogicalNot")

add = _binary_fn("Add")
subtract = _binary_fn("Sub")
multiply = _binary_fn("Mul")
floordiv = _binary_fn("FloorDiv", "floordiv")
floor_div = _binary_fn("FloorDiv")
truncatediv = _binary_fn("TruncateDiv")
floormod = _binary_fn("FloorMod")
mod = floormod
truncatemod = None  # not provided
maximum = _binary_fn("Maximum")
minimum = _binary_fn("Minimum")
squared_difference = _binary_fn("SquaredDifference")
equal = _binary_fn("Equal")
not_equal = _binary_fn("NotEqual")
less = _binary_fn("Less")
less_equal = _binary_fn("LessEqual")
greater = _binary_fn("Greater")
greater_equal = _binary_fn("GreaterEqual")
logical_and = _binary_fn("LogicalAnd")
logical_or = _binary_fn("LogicalOr")
del truncatemod


def pow(x: Any, y: Any, name: str | None = None) -> Tensor:  # noqa: A001 - TF1 name
    """``x ** y`` elementwise (TF1's ``tf.pow``).

    Args:
      x: a Tensor or value.
      y: a Tensor or value of x's dtype.
      name: op name.

    Returns:
      A Tensor of the broadcast shape.
    """
    with op_scope(name, "Pow", [x, y]) as scope:
        a, b = to_tensors([x, y], ["x", "y"])
        return make("Pow", [a, b], name=scope)


def logical_xor(x: Any, y: Any, name: str = "LogicalXor") -> Tensor:
    """``x ^ y`` for bool tensors, built as TF1 builds it: the final ``LogicalAnd`` is
    named ``name`` and its helper ops sit beside it (no extra scope)."""
    from graphflow.ops.building import graph_of

    with graph_of([x, y]).as_default():
        a, b = to_tensors([x, y], ["x", "y"])
        return logical_and(logical_or(a, b), logical_not(logical_and(a, b)), name=name)


def truediv(x: Any, y: Any, name: str | None = None) -> Tensor:
    """Division that is true division for integers too (TF1's ``tf.truediv``).

    int8/int16/uint8 become float32, int32/int64 become float64, as TF1 does.

    Args:
      x: a Tensor or value.
      y: a Tensor or value of x's dtype.
      name: op name.

    Returns:
      A float Tensor of the broadcast shape.
    """
    with op_scope(name, "truediv", [x, y]) as scope:
        a, b = to_tensors([x, y], ["x", "y"])
        rules_dtype = a.dtype
        if b.dtype is not rules_dtype:
            raise errors.DTypeError(None, None, f"truediv: x and y must have the same dtype, "
                                                f"got {a.dtype.name} and {b.dtype.name}")
        if rules_dtype.is_integer:
            target = _dt.float64 if rules_dtype in (_dt.int32, _dt.int64) else _dt.float32
            a, b = cast(a, target), cast(b, target)
        elif rules_dtype.is_bool:
            raise errors.DTypeError(None, None, "truediv is not defined for bool tensors")
        return make("RealDiv", [a, b], name=scope)


def divide(x: Any, y: Any, name: str | None = None) -> Tensor:
    """``x / y`` (TF1's ``tf.divide``): true division."""
    if name is not None:
        return truediv(x, y, name=name)
    return truediv(x, y)


def div(x: Any, y: Any, name: str | None = None) -> Tensor:
    """Python-2 style division (TF1's ``tf.div``): ``RealDiv`` for floats, ``FloorDiv``
    (flooring, as Python 2's ``/``) for integers."""
    with op_scope(name, "div", [x, y]) as scope:
        a, b = to_tensors([x, y], ["x", "y"])
        op_type = "RealDiv" if a.dtype.is_floating else "FloorDiv"
        return make(op_type, [a, b], name=scope)


realdiv = _binary_fn("RealDiv")


def div_no_nan(x: Any, y: Any, name: str | None = None) -> Tensor:
    """``x / y``, or 0 where ``y`` is 0."""
    with op_scope(name, "div_no_nan", [x, y]) as scope:
        a, b = to_tensors([x, y], ["x", "y"])
        zero = zeros_like_value(b)
        safe = where_v2(equal(b, zero), ones_like_value(b), b)
        return where_v2(equal(b, zero), zeros_like_value(make("RealDiv", [a, safe])),
                        make("RealDiv", [a, safe]), name=scope)


def zeros_like_value(t: Tensor) -> Tensor:
    from graphflow.ops.array_ops import zeros_like

    return zeros_like(t)


def ones_like_value(t: Tensor) -> Tensor:
    from graphflow.ops.array_ops import ones_like

    return ones_like(t)


def cast(x: Any, dtype: Any, name: str | None = None) -> Tensor:
    """Converts ``x`` to ``dtype`` (TF1's ``tf.cast``); a no-op if already of it.

    Args:
      x: a Tensor or value.
      dtype: target dtype.
      name: op name.

    Returns:
      A Tensor of ``dtype``.
    """
    d = _dt.as_dtype(dtype)
    if isinstance(x, Tensor) and x.dtype is d:
        return x
    with op_scope(name, "Cast", [x]) as scope:
        t = to_tensor(x, name="x")
        if t.dtype is d:
            return t
        return make("Cast", [t], {"SrcT": t.dtype, "DstT": d, "Truncate": False}, name=scope)


def to_float(x: Any, name: str = "ToFloat") -> Tensor:
    """Casts to float32."""
    return cast(x, _dt.float32, name=name)


def to_int32(x: Any, name: str = "ToInt32") -> Tensor:
    """Casts to int32."""
    return cast(x, _dt.int32, name=name)


def to_int64(x: Any, name: str = "ToInt64") -> Tensor:
    """Casts to int64."""
    return cast(x, _dt.int64, name=name)


def where(condition: Any, x: Any = None, y: Any = None, name: str | None = None) -> Tensor:
    """TF1's ``tf.where``.

    With only ``condition``: the int64 coordinates ``[num_true, rank]`` of its
    true elements. With ``x`` and ``y``: elements of ``x`` where condition is
    true, else of ``y``; condition has x's shape, or is a vector over x's first
    dimension (TF1 ``Select`` semantics; use :func:`where_v2` to broadcast).

    Raises:
      ValueError: if exactly one of ``x`` and ``y`` is given.
    """
    if x is None and y is None:
        with op_scope(name, "Where", [condition]) as scope:
            c = to_tensor(condition, name="condition")
            if c.dtype is not _dt.bool_:
                c = cast(c, _dt.bool_)
            return make("Where", [c], name=scope)
    if x is None or y is None:
        raise ValueError("x and y must both be non-None or both be None.")
    with op_scope(name, "Select", [condition, x, y]) as scope:
        c = to_tensor(condition, name="condition")
        a, b = to_tensors([x, y], ["x", "y"])
        return make("Select", [c, a, b], name=scope)


def where_v2(condition: Any, x: Any = None, y: Any = None, name: str | None = None) -> Tensor:
    """``tf.where_v2``: like :func:`where` but condition, x and y broadcast together."""
    if x is None and y is None:
        return where(condition, name=name)
    if x is None or y is None:
        raise ValueError("x and y must both be non-None or both be None.")
    with op_scope(name, "SelectV2", [condition, x, y]) as scope:
        c = to_tensor(condition, name="condition")
        a, b = to_tensors([x, y], ["x", "y"])
        return make("SelectV2", [c, a, b], name=scope)


def clip_by_value(t: Any, clip_value_min: Any, clip_value_max: Any,
                  name: str | None = None) -> Tensor:
    """Clips ``t`` to ``[clip_value_min, clip_value_max]`` (TF1's ``tf.clip_by_value``).

    Built as TF1 builds it: ``Maximum(Minimum(t, max), min)``; NaN stays NaN.
    """
    with op_scope(name, "clip_by_value", [t, clip_value_min, clip_value_max]) as scope:
        x, lo, hi = to_tensors([t, clip_value_min, clip_value_max], ["t", "clip_value_min",
                                                                      "clip_value_max"])
        t_min = minimum(x, hi)
        out = maximum(t_min, lo, name=scope)
        if x.shape.ndims is not None and out.shape != x.shape:
            raise errors.ShapeError(None, out.op, f"clip_by_value: the clip values must not "
                                                  f"change t's shape {x.shape}; got {out.shape}")
        return out


# --- reductions: public functions --------------------------------------------------
def _axes(x: Tensor, axis: Any) -> tuple[int, ...] | None:
    if axis is None:
        return None
    from graphflow.ops.constant_op import constant_value

    if isinstance(axis, Tensor) or hasattr(axis, "_as_graph_element"):
        v = constant_value(to_tensor(axis))
        if v is None:
            raise errors.ShapeError(None, None, "reduction axis must be known when the graph "
                                                "is built (a Python int/list or a constant)")
        axis = v.tolist()
    if isinstance(axis, (list, tuple, np.ndarray)):
        items = [int(a) for a in np.ravel(axis)]
    else:
        items = [int(axis)]
    r = x.shape.ndims
    out = []
    for a in items:
        if r is not None:
            if not -r <= a < r:
                raise errors.ShapeError(
                    None, None, f"Invalid reduction dimension {a} for input {x.name} of "
                                f"shape {x.shape}")
            a = a % r
        elif a < 0:
            raise errors.ShapeError(None, None, "negative reduction axes need a known rank")
        if a not in out:
            out.append(a)
    if r == 0:
        return ()
    return tuple(sorted(out))


def _reduce_fn(op_type: str, tf_name: str, dtypes_hint: str) -> Callable[..., Tensor]:
    def fn(input_tensor: Any, axis: Any = None, keepdims: bool | None = None,
           name: str | None = None, reduction_indices: Any = None,
           keep_dims: bool | None = None) -> Tensor:
        if axis is None:
            axis = reduction_indices
        keep = bool(keepdims if keepdims is not None else keep_dims)
        with op_scope(name, op_type, [input_tensor]) as scope:
            x = to_tensor(input_tensor, name="input_tensor")
            return make(op_type, [x], {"axis": _axes(x, axis), "keep_dims": keep}, name=scope)

    fn.__name__ = fn.__qualname__ = tf_name
    fn.__doc__ = (f"Reduces by ``{op_type}`` over ``axis`` (TF1's ``tf.{tf_name}``).\n\n"
                  f"    Args:\n      input_tensor: a {dtypes_hint} Tensor.\n      axis: int or "
                  f"list of ints; None reduces all dims.\n      keepdims: keep reduced dims with "
                  f"size 1.\n      name: op name.\n      reduction_indices, keep_dims: "
                  f"deprecated TF1 aliases.\n\n    Returns:\n      The reduced Tensor.\n")
    return fn


reduce_sum = _reduce_fn("Sum", "reduce_sum", "numeric")
reduce_mean = _reduce_fn("Mean", "reduce_mean", "numeric")
reduce_max = _reduce_fn("Max", "reduce_max", "numeric")
reduce_min = _reduce_fn("Min", "reduce_min", "numeric")
reduce_prod = _reduce_fn("Prod", "reduce_prod", "numeric")
reduce_any = _reduce_fn("Any", "reduce_any", "bool")
reduce_all = _reduce_fn("All", "reduce_all", "bool")


def reduce_logsumexp(input_tensor: Any, axis: Any = None, keepdims: bool | None = None,
                     name: str | None = None, reduction_indices: Any = None,
                     keep_dims: bool | None = None) -> Tensor:
    """``log(sum(exp(x)))`` over ``axis``, computed stably (TF1's ``tf.reduce_logsumexp``).

    Built from primitives as TF1 does: the max is subtracted (with its gradient
    stopped) before exponentiating; infinite maxima are replaced by 0.
    """
    if axis is None:
        axis = reduction_indices
    keep = bool(keepdims if keepdims is not None else keep_dims)
    with op_scope(name, "ReduceLogSumExp", [input_tensor]) as scope:
        from graphflow.ops.array_ops import reshape, stop_gradient, zeros_like

        x = to_tensor(input_tensor, name="input_tensor")
        raw_max = reduce_max(x, axis, keepdims=True)
        my_max = stop_gradient(where_v2(is_finite(raw_max), raw_max, zeros_like(raw_max)))
        result = log(reduce_sum(exp(x - my_max), axis, keepdims=keep))
        if not keep:
            my_max = reshape(my_max, _shape_tensor_like(result))
        return add(result, my_max, name=scope)


def _shape_tensor_like(t: Tensor) -> Any:
    from graphflow.ops.array_ops import shape

    if t.shape.is_fully_defined():
        return list(t.shape.values)
    return shape(t)


def argmax(input: Any, axis: Any = None, name: str | None = None, dimension: Any = None,
           output_type: Any = _dt.int64) -> Tensor:
    """Index of the largest value along ``axis`` (default 0); ties give the first."""
    return _arg("ArgMax", input, axis if axis is not None else dimension, name, output_type)


def argmin(input: Any, axis: Any = None, name: str | None = None, dimension: Any = None,
           output_type: Any = _dt.int64) -> Tensor:
    """Index of the smallest value along ``axis`` (default 0); ties give the first."""
    return _arg("ArgMin", input, axis if axis is not None else dimension, name, output_type)


def _arg(op_type: str, input: Any, axis: Any, name: str | None, output_type: Any) -> Tensor:
    with op_scope(name, op_type, [input]) as scope:
        x = to_tensor(input, name="input")
        axes = _axes(x, 0 if axis is None else axis)
        if x.shape.ndims == 0:
            raise errors.ShapeError(None, None, f"{op_type}: input {x.name} must have rank >= 1")
        ot = _dt.as_dtype(output_type)
        if ot not in (_dt.int32, _dt.int64):
            raise errors.DTypeError(None, None, f"{op_type}: output_type must be int32 or int64")
        return make(op_type, [x], {"axis": axes[0], "output_type": ot}, name=scope)


def matmul(a: Any, b: Any, transpose_a: bool = False, transpose_b: bool = False,
           adjoint_a: bool = False, adjoint_b: bool = False, a_is_sparse: bool = False,
           b_is_sparse: bool = False, name: str | None = None) -> Tensor:
    """Matrix product ``a @ b`` (TF1's ``tf.matmul``).

    Rank-2 inputs give a ``MatMul`` op; higher ranks a ``BatchMatMulV2`` over
    the last two dims with broadcast batch dims.

    Args:
      a, b: numeric tensors of one dtype, rank >= 2.
      transpose_a, transpose_b: transpose the last two dims first.
      adjoint_a, adjoint_b: the same for real dtypes.
      name: op name.

    Returns:
      The product.

    Raises:
      ValueError: if the inner dims differ or a rank is below 2.
    """
    with op_scope(name, "MatMul", [a, b]) as scope:
        x, y = to_tensors([a, b], ["a", "b"])
        ta = transpose_a or adjoint_a
        tb = transpose_b or adjoint_b
        ra, rb = x.shape.ndims, y.shape.ndims
        if ra == 2 and rb == 2:
            return make("MatMul", [x, y], {"transpose_a": bool(ta), "transpose_b": bool(tb)},
                        name=scope)
        return make("BatchMatMulV2", [x, y], {"adj_x": bool(ta), "adj_y": bool(tb)}, name=scope)


def tensordot(a: Any, b: Any, axes: Any, name: str | None = None) -> Tensor:
    """Contracts ``axes`` of ``a`` with ``axes`` of ``b`` (TF1's ``tf.tensordot``).

    Built as TF1 builds it: transpose and reshape both to matrices, MatMul,
    reshape to the free dims.

    Args:
      a, b: tensors of one dtype with known ranks.
      axes: an int N (last N of a with first N of b) or a pair of lists.
      name: scope name.

    Returns:
      A Tensor with a's free dims followed by b's.
    """
    from graphflow.ops.array_ops import reshape, transpose

    with op_scope(name, "Tensordot", [a, b]) as scope:
        x, y = to_tensors([a, b], ["a", "b"])
        ra, rb = x.shape.ndims, y.shape.ndims
        if ra is None or rb is None:
            raise errors.ShapeError(None, None, "tensordot needs inputs of known rank")
        if isinstance(axes, (int, np.integer)):
            n = int(axes)
            if n < 0 or n > min(ra, rb):
                raise errors.ShapeError(None, None, f"tensordot: axes={n} is out of range for "
                                                    f"ranks {ra} and {rb}")
            a_axes, b_axes = list(range(ra - n, ra)), list(range(n))
        else:
            a_axes, b_axes = axes
            a_axes = [int(i) % ra for i in np.ravel(a_axes)]
            b_axes = [int(i) % rb for i in np.ravel(b_axes)]
            if len(a_axes) != len(b_axes):
                raise errors.ShapeError(None, None, "tensordot: the two axes lists must have "
                                                    "the same length")
        adims, bdims = x.shape.values, y.shape.values
        for i, j in zip(a_axes, b_axes):
            if adims[i] is not None and bdims[j] is not None and adims[i] != bdims[j]:
                raise errors.ShapeError(None, None, f"tensordot: dimension {i} of a ({adims[i]}) "
                                                    f"differs from dimension {j} of b "
                                                    f"({bdims[j]})")
        a_free = [i for i in range(ra) if i not in a_axes]
        b_free = [i for i in range(rb) if i not in b_axes]

        def prod(dims: Sequence[int | None]) -> int:
            p = 1
            for d in dims:
                if d is None:
                    return -1
                p *= d
            return p

        at = transpose(x, a_free + a_axes) if a_free + a_axes != list(range(ra)) else x
        bt = transpose(y, b_axes + b_free) if b_axes + b_free != list(range(rb)) else y
        k = prod([adims[i] for i in a_axes])
        if k == -1:
            k = prod([bdims[i] for i in b_axes])
        am = reshape(at, [prod([adims[i] for i in a_free]), k])
        bm = reshape(bt, [k, prod([bdims[i] for i in b_free])])
        free = [adims[i] for i in a_free] + [bdims[i] for i in b_free]
        prodm = matmul(am, bm)
        if all(d is not None for d in free):
            return reshape(prodm, free, name=scope)
        from graphflow.ops.array_ops import concat, gather, shape

        sa, sb = shape(x), shape(y)
        out_shape = concat([gather(sa, a_free), gather(sb, b_free)], 0)
        out = reshape(prodm, out_shape, name=scope)
        out.set_shape(free)  # the known free dims, as TF1's tensordot sets them
        return out


def add_n(inputs: Sequence[Any], name: str | None = None) -> Tensor:
    """Sum of a list of tensors of one shape and dtype (TF1's ``tf.add_n``)."""
    if not inputs:
        raise ValueError("inputs must be a non-empty list of tensors")
    with op_scope(name, "AddN", inputs) as scope:
        ts = to_tensors(list(inputs))
        if len(ts) == 1:
            from graphflow.ops.array_ops import identity

            return identity(ts[0], name=scope)
        return make("AddN", ts, name=scope)


@register
class AddN(OpDef):
    """Sum of N inputs of one dtype and shape."""

    kind = ELEMENTWISE

    @staticmethod
    def grad(op, dy):
        return [dy] * len(op.inputs)

    def infer(self, op):
        ts = op.inputs
        d = rules.same_dtype(*ts)
        rules.check_dtype(ts[0], NUM, "inputs")
        shape = ts[0].shape
        for t in ts[1:]:
            if not shape.is_compatible_with(t.shape):
                raise shape_error(f"all inputs must have the same shape, got {ts[0].shape} and "
                                  f"{t.shape}")
            shape = shape.merge_with(t.shape)
        return [(d, shape)]

    def reference(self, op, inputs, ctx):
        out = inputs[0].copy()
        for x in inputs[1:]:
            if x.shape != out.shape:
                raise errors.InvalidArgumentError(None, None, f"AddN inputs have different "
                                                              f"shapes {out.shape} and {x.shape}")
            out = out + x
        return out


def scalar_mul(scalar: Any, x: Any, name: str | None = None) -> Tensor:
    """``scalar * x`` for a Python or 0-d scalar (TF1's ``tf.scalar_mul``).

    Raises:
      ValueError: if ``scalar`` is not 0-d.
    """
    x = to_tensor(x, name="x")
    with x.graph.as_default():
        s = to_tensor(scalar, dtype=x.dtype, name="scalar")
    if s.shape.ndims != 0:
        raise errors.ShapeError(None, None, f"Only scalar multiply works, got shape {s.shape}")
    return multiply(s, x, name=name)




# --- gradient helpers (used by the registrations above) ------------------------------
def _zeros(t: Tensor) -> Tensor:
    from graphflow.ops.array_ops import zeros_like

    return zeros_like(t)


def _both(op: Any, gx: Tensor, gy: Tensor) -> list[Tensor]:
    from graphflow.autodiff import unbroadcast

    x, y = op.inputs
    return [unbroadcast(gx, x, y), unbroadcast(gy, y, x)]


def _div_grad(op: Any, dy: Tensor) -> list[Tensor | None]:
    x, y = op.inputs
    if not x.dtype.is_floating:
        return [None, None]
    return _both(op, dy / y, -dy * (x / y) / y)


def _pow_grad(op: Any, dy: Tensor) -> list[Tensor]:
    x, y = op.inputs
    z = op.outputs[0]
    gx = dy * y * pow(x, y - 1.0)
    # d/dy x**y = x**y log x, taken as 0 where x <= 0 (as TF1) to avoid NaNs.
    log_x = where_v2(x > 0, log(where_v2(x > 0, x, _ones(x))), _zeros(x))
    return _both(op, gx, dy * z * log_x)


def _ones(t: Tensor) -> Tensor:
    from graphflow.ops.array_ops import ones_like

    return ones_like(t)


def _select_grad(op: Any, dy: Tensor, x_wins: Tensor) -> list[Tensor]:
    zero = _zeros(dy)
    return _both(op, where_v2(x_wins, dy, zero), where_v2(x_wins, zero, dy))


def _sqdiff_grad(op: Any, dy: Tensor) -> list[Tensor]:
    x, y = op.inputs
    d = dy * (2.0 * (x - y))
    return _both(op, d, -d)


def _matmul_grads(a: Tensor, b: Tensor, dy: Tensor, ta: bool, tb: bool) -> list[Tensor]:
    # TF1's table: each case keeps the products' transposes inside matmul.
    if not ta and not tb:
        return [matmul(dy, b, transpose_b=True), matmul(a, dy, transpose_a=True)]
    if not ta and tb:
        return [matmul(dy, b), matmul(dy, a, transpose_a=True)]
    if ta and not tb:
        return [matmul(b, dy, transpose_b=True), matmul(a, dy)]
    return [matmul(b, dy, transpose_a=True, transpose_b=True),
            matmul(dy, a, transpose_a=True, transpose_b=True)]


def _kept_shape(x: Tensor, axes: tuple[int, ...] | None) -> Any:
    """The shape of ``x`` with reduced ``axes`` set to 1 (a list, or a tensor if dynamic)."""
    from graphflow.ops.array_ops import fill, reshape, shape, stack
    from graphflow.ops.array_ops import rank as rank_of

    dims = x.shape.values
    if dims is None:
        if axes is not None:
            raise errors.ShapeError(None, None, "gradient of a reduction over given axes "
                                                "needs the input's rank")
        return fill(reshape(rank_of(x), [1]), 1)
    kept = [1 if axes is None or i in axes else d for i, d in enumerate(dims)]
    if all(d is not None for d in kept):
        return kept
    s = shape(x)
    return stack([s[i] if d is None else d for i, d in enumerate(kept)])


def _sum_grad(op: Any, dy: Tensor) -> Tensor:
    from graphflow.ops.array_ops import reshape
    from graphflow.ops.broadcast_ops import _shape_of, broadcast_to

    x = op.inputs[0]
    axes = op.get_attr("axis")
    g = reshape(dy, _kept_shape(x, axes))
    return broadcast_to(g, _shape_of(x))


def _mean_grad(op: Any, dy: Tensor) -> Tensor:
    from graphflow.ops.array_ops import size

    x, y = op.inputs[0], op.outputs[0]
    g = _sum_grad(op, dy)
    nx, ny = x.shape.num_elements(), y.shape.num_elements()
    if nx is not None and ny is not None:
        return g * (1.0 / max(nx // max(ny, 1), 1)) if nx else g
    count = cast(size(x), x.dtype) / maximum(cast(size(y), x.dtype), 1.0)
    return g / maximum(count, 1.0)


def _extreme_grad(op: Any, dy: Tensor) -> Tensor:
    # TF1: the gradient is split evenly between tied extremes.
    from graphflow.ops.array_ops import reshape

    x, y = op.inputs[0], op.outputs[0]
    axes = op.get_attr("axis")
    kept = _kept_shape(x, axes)
    hit = cast(equal(x, reshape(y, kept)), x.dtype)
    count = reduce_sum(hit, axes, keepdims=True)
    return hit / count * reshape(dy, kept)


def _prod_grad(op: Any, dy: Tensor) -> Tensor:
    # TF1's rule: the product of all other elements, from exclusive cumulative products
    # from both sides, so zeros in x are handled exactly.
    from graphflow.ops.array_ops import reshape, shape, transpose
    from graphflow.ops.broadcast_ops import _shape_of, broadcast_to

    x = op.inputs[0]
    rank = x.shape.ndims
    if rank is None:
        raise errors.ShapeError(None, None, "the gradient of reduce_prod needs the input's "
                                            "rank")
    axes = op.get_attr("axis")
    reduced = list(range(rank)) if axes is None else list(axes)
    other = [i for i in range(rank) if i not in reduced]
    perm = reduced + other
    grad = broadcast_to(reshape(dy, _kept_shape(x, axes)), _shape_of(x))
    if rank == 0:
        return grad
    xt = transpose(x, perm) if perm != list(range(rank)) else x
    dims = x.shape.values
    if all(d is not None for d in dims):
        n_red = int(np.prod([dims[i] for i in reduced], dtype=np.int64))
        flat = reshape(xt, [n_red, -1])
    else:
        from graphflow.ops.array_ops import stack

        other_n = reduce_prod(stack([shape(x)[i] for i in other])) if other else 1
        flat = reshape(xt, [-1, other_n])
    both = cumprod(flat, 0, exclusive=True) * cumprod(flat, 0, exclusive=True, reverse=True)
    back = reshape(both, shape(xt) if not x.shape.is_fully_defined() else
                   [dims[i] for i in perm])
    if perm != list(range(rank)):
        inverse = [perm.index(i) for i in range(rank)]
        back = transpose(back, inverse)
    return grad * back
