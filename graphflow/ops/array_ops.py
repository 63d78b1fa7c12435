"""Shape and layout ops: shape/size/rank, reshape, transpose, concat, stack, fills."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from graphflow.framework import dtypes as _dt
from graphflow.framework import errors
from graphflow.framework.graph import Tensor
from graphflow.framework.op_def import INJECTIVE, OPAQUE, OpDef, register, shape_error
from graphflow.framework.tensor_shape import TensorShape, as_shape, unknown_shape
from graphflow.ops import rules
from graphflow.ops.building import make, normalize_axis, op_scope, to_tensor, to_tensors
from graphflow.ops.constant_op import constant, constant_value, constant_value_as_shape


def _int_list_attr(op: Any, name: str) -> list[int]:
    return list(op.get_attr(name))


# --- metadata ---------------------------------------------------------------------
class _MetaOp(OpDef):
    kind = OPAQUE

    def out_type(self, op):
        return op.get_attr("out_type")


@register
class Shape(_MetaOp):
    def infer(self, op):
        r = op.inputs[0].shape.ndims
        return [(self.out_type(op), TensorShape([r]))]

    def reference(self, op, inputs, ctx):
        return np.array(inputs[0].shape, dtype=self.out_type(op).np)


@register
class Size(_MetaOp):
    def infer(self, op):
        return [(self.out_type(op), TensorShape([]))]

    def reference(self, op, inputs, ctx):
        return np.array(inputs[0].size, dtype=self.out_type(op).np)


@register
class Rank(_MetaOp):
    def infer(self, op):
        return [(_dt.int32, TensorShape([]))]

    def reference(self, op, inputs, ctx):
        return np.array(inputs[0].ndim, dtype=np.int32)


def shape(input: Any, name: str | None = None, out_type: Any = _dt.int32) -> Tensor:
    """The dynamic shape of ``input`` as a 1-D tensor (TF1's ``tf.shape``)."""
    with op_scope(name, "Shape", [input]) as scope:
        x = to_tensor(input, name="input")
        return make("Shape", [x], {"out_type": _dt.as_dtype(out_type)}, name=scope)


def size(input: Any, name: str | None = None, out_type: Any = _dt.int32) -> Tensor:
    """The number of elements of ``input`` (TF1's ``tf.size``)."""
    with op_scope(name, "Size", [input]) as scope:
        x = to_tensor(input, name="input")
        return make("Size", [x], {"out_type": _dt.as_dtype(out_type)}, name=scope)


def rank(input: Any, name: str | None = None) -> Tensor:
    """The rank of ``input`` as an int32 scalar (TF1's ``tf.rank``)."""
    with op_scope(name, "Rank", [input]) as scope:
        x = to_tensor(input, name="input")
        return make("Rank", [x], name=scope)


# --- identity ---------------------------------------------------------------------
def identity(input: Any, name: str | None = None) -> Tensor:
    """Returns a tensor with the same value (TF1's ``tf.identity``)."""
    with op_scope(name, "Identity", [input]) as scope:
        return make("Identity", [to_tensor(input, name="input")], name=scope)


def stop_gradient(input: Any, name: str | None = None) -> Tensor:
    """The value of ``input``, through which no gradient flows."""
    with op_scope(name, "StopGradient", [input]) as scope:
        return make("StopGradient", [to_tensor(input, name="input")], name=scope)


# --- reshape ----------------------------------------------------------------------
@register
class Reshape(OpDef):
    """Reshape to the 1-D int ``shape`` input; one entry may be -1."""

    kind = INJECTIVE

    def infer(self, op):
        x, s = op.inputs
        rules.check_dtype(s, (_dt.int32, _dt.int64), "shape")
        if s.shape.ndims is not None and s.shape.ndims != 1:
            raise shape_error(f"shape must be a 1-D tensor, got shape {s.shape}")
        v = constant_value(s)
        if v is None:
            return [(x.dtype, constant_value_as_shape(s))]
        dims = [int(d) for d in v]
        if sum(1 for d in dims if d == -1) > 1:
            raise shape_error(f"only one dimension of the new shape {dims} may be -1")
        if any(d < -1 for d in dims):
            raise shape_error(f"new shape {dims} has a negative dimension")
        n = x.shape.num_elements()
        known = int(np.prod([d for d in dims if d != -1], dtype=np.int64))
        if -1 in dims:
            if n is None:
                out = [None if d == -1 else d for d in dims]
            else:
                if known == 0 or n % known:
                    raise shape_error(f"cannot reshape a tensor with {n} elements to shape "
                                      f"{dims}")
                out = [n // known if d == -1 else d for d in dims]
        else:
            if n is not None and n != known:
                raise shape_error(f"cannot reshape a tensor with {n} elements (shape {x.shape}) "
                                  f"to shape {dims} ({known} elements)")
            out = dims
        return [(x.dtype, TensorShape(out))]

    def reference(self, op, inputs, ctx):
        x, s = inputs
        dims = [int(d) for d in s]
        if -1 in dims:
            known = int(np.prod([d for d in dims if d != -1], dtype=np.int64))
            if known == 0 or x.size % known:
                raise errors.InvalidArgumentError(
                    None, None, f"Input to reshape is a tensor with {x.size} values, but the "
                                f"requested shape {dims} does not divide it")
        elif int(np.prod(dims, dtype=np.int64)) != x.size:
            raise errors.InvalidArgumentError(
                None, None, f"Input to reshape is a tensor with {x.size} values, but the "
                            f"requested shape has {int(np.prod(dims, dtype=np.int64))}")
        return x.reshape(dims)


def reshape(tensor: Any, shape: Any, name: str | None = None) -> Tensor:
    """Reshapes ``tensor`` (TF1's ``tf.reshape``).

    Args:
      tensor: the input.
      shape: a list (may contain one -1 and tensors) or a 1-D int tensor.
      name: op name.

    Returns:
      A Tensor of the new shape.

    Raises:
      ValueError: if the element counts cannot match.
    """
    with op_scope(name, "Reshape", [tensor]) as scope:
        x = to_tensor(tensor, name="tensor")
        s = to_tensor(list(shape.as_list()) if isinstance(shape, TensorShape) else shape,
                      name="shape", dtype=None if _is_tensorish(shape) else _dt.int32)
        return make("Reshape", [x, s], name=scope)


def _is_tensorish(v: Any) -> bool:
    return isinstance(v, Tensor) or hasattr(v, "_as_graph_element")


# --- transpose ------------------------------------------------------------------
@register
class Transpose(OpDef):
    """Permutes dims by attr ``perm``."""

    kind = INJECTIVE

    def infer(self, op):
        x = op.inputs[0]
        perm = _int_list_attr(op, "perm")
        r = x.shape.ndims
        if r is not None and sorted(perm) != list(range(r)):
            raise shape_error(f"perm {perm} is not a permutation of the {r} dims of {x.name} "
                              f"(shape {x.shape})")
        if r is None:
            return [(x.dtype, unknown_shape(len(perm)))]
        dims = x.shape.values
        return [(x.dtype, TensorShape([dims[p] for p in perm]))]

    def reference(self, op, inputs, ctx):
        return np.transpose(inputs[0], op.get_attr("perm"))


def transpose(a: Any, perm: Any = None, name: str = "transpose", conjugate: bool = False) -> Tensor:
    """Permutes the dims of ``a`` (TF1's ``tf.transpose``); default reverses them.

    Raises:
      ValueError: if ``perm`` is not a permutation of a's dims, or the rank
        is unknown and no ``perm`` is given.
    """
    with op_scope(name, "transpose", [a]) as scope:
        x = to_tensor(a, name="a")
        if perm is None:
            r = x.shape.ndims
            if r is None:
                raise errors.ShapeError(None, None, "transpose without perm needs a known rank")
            perm = list(range(r))[::-1]
        elif _is_tensorish(perm):
            v = constant_value(to_tensor(perm))
            if v is None:
                raise errors.ShapeError(None, None, "transpose: perm must be known when the "
                                                    "graph is built")
            perm = v.tolist()
        perm = tuple(int(p) for p in np.ravel(perm))
        r = x.shape.ndims
        if r is not None:
            perm = tuple(p % r if r else p for p in perm) if all(-r <= p < r for p in perm) \
                else perm
        return make("Transpose", [x], {"perm": perm}, name=scope)


# --- concat / stack -----------------------------------------------------------------
@register
class ConcatV2(OpDef):
    """Concatenates its inputs along attr ``axis``."""

    kind = INJECTIVE

    def infer(self, op):
        ts = op.inputs
        d = rules.same_dtype(*ts)
        axis = op.get_attr("axis")
        ranks = {t.shape.ndims for t in ts} - {None}
        if len(ranks) > 1:
            raise shape_error("all inputs must have the same rank, got shapes " +
                              ", ".join(str(t.shape) for t in ts))
        if not ranks:
            return [(d, unknown_shape())]
        r = ranks.pop()
        out: list[int | None] = [None] * r
        total: int | None = 0
        for t in ts:
            dims = t.shape.values
            if dims is None:
                total = None
                continue
            for i, v in enumerate(dims):
                if i == axis:
                    total = None if total is None or v is None else total + v
                elif v is not None:
                    if out[i] is not None and out[i] != v:
                        raise shape_error(
                            f"dimension {i} of the inputs must match except on axis {axis}; "
                            "got shapes " + ", ".join(str(x.shape) for x in ts))
                    out[i] = v
        out[axis] = total
        return [(d, TensorShape(out))]

    def reference(self, op, inputs, ctx):
        return np.concatenate(inputs, axis=op.get_attr("axis"))


def concat(values: Sequence[Any], axis: int, name: str = "concat") -> Tensor:
    """Concatenates tensors along ``axis`` (TF1's ``tf.concat``).

    Raises:
      ValueError: if ranks differ or other dims do not match.
    """
    if not isinstance(values, (list, tuple)):
        values = [values]
    with op_scope(name, "concat", values) as scope:
        ts = to_tensors(list(values))
        r = next((t.shape.ndims for t in ts if t.shape.ndims is not None), None)
        a = _static_int(axis, "concat axis")
        if r is None and a < 0:
            raise errors.ShapeError(None, None, "concat with a negative axis needs a known rank")
        if r is not None:
            a = normalize_axis(a, r, "concat axis")
        if len(ts) == 1:
            return identity(ts[0], name=scope)
        return make("ConcatV2", ts, {"axis": a}, name=scope)


def _static_int(v: Any, what: str) -> int:
    if _is_tensorish(v):
        c = constant_value(to_tensor(v))
        if c is None:
            raise errors.ShapeError(None, None, f"{what} must be known when the graph is built")
        return int(c)
    return int(v)


@register
class Pack(OpDef):
    """Stacks N tensors of one shape along new attr ``axis``."""

    kind = INJECTIVE

    def infer(self, op):
        ts = op.inputs
        d = rules.same_dtype(*ts)
        shape = ts[0].shape
        for t in ts[1:]:
            if not shape.is_compatible_with(t.shape):
                raise shape_error("all inputs must have the same shape, got " +
                                  ", ".join(str(x.shape) for x in ts))
            shape = shape.merge_with(t.shape)
        if shape.ndims is None:
            return [(d, unknown_shape())]
        dims = list(shape.values)
        dims.insert(op.get_attr("axis"), len(ts))
        return [(d, TensorShape(dims))]

    def reference(self, op, inputs, ctx):
        return np.stack(inputs, axis=op.get_attr("axis"))


def stack(values: Sequence[Any], axis: int = 0, name: str = "stack", dtype: Any = None) -> Tensor:
    """Stacks equally shaped tensors along a new ``axis`` (TF1's ``tf.stack``)."""
    with op_scope(name, "stack", list(values)) as scope:
        ts = to_tensors(list(values), dtype=dtype)
        r = ts[0].shape.ndims
        a = int(axis)
        if r is not None:
            a = normalize_axis(a, r + 1, "stack axis")
        return make("Pack", ts, {"axis": a}, name=scope)


# --- expand / squeeze -------------------------------------------------------------
@register
class ExpandDims(OpDef):
    """Inserts a dim of size 1 at attr ``axis``."""

    kind = INJECTIVE

    def infer(self, op):
        x = op.inputs[0]
        if x.shape.ndims is None:
            return [(x.dtype, unknown_shape())]
        dims = list(x.shape.values)
        dims.insert(op.get_attr("axis"), 1)
        return [(x.dtype, TensorShape(dims))]

    def reference(self, op, inputs, ctx):
        return np.expand_dims(inputs[0], op.get_attr("axis"))


def expand_dims(input: Any, axis: Any = None, name: str | None = None, dim: Any = None) -> Tensor:
    """Inserts a dimension of size 1 at ``axis`` (TF1's ``tf.expand_dims``)."""
    if axis is None:
        axis = dim
    if axis is None:
        raise ValueError("expand_dims: axis must be given")
    with op_scope(name, "ExpandDims", [input]) as scope:
        x = to_tensor(input, name="input")
        a = _static_int(axis, "expand_dims axis")
        r = x.shape.ndims
        if r is not None:
            a = normalize_axis(a, r + 1, "expand_dims axis")
        elif a < 0:
            raise errors.ShapeError(None, None, "expand_dims with negative axis needs a known "
                                                "rank")
        return make("ExpandDims", [x], {"axis": a}, name=scope)


@register
class Squeeze(OpDef):
    """Removes size-1 dims listed in attr ``squeeze_dims`` (all if empty)."""

    kind = INJECTIVE

    def infer(self, op):
        x = op.inputs[0]
        axes = op.get_attr("squeeze_dims")
        dims = x.shape.values
        if dims is None:
            return [(x.dtype, unknown_shape())]
        if axes:
            for a in axes:
                if dims[a] is not None and dims[a] != 1:
                    raise shape_error(f"cannot squeeze dim {a} of size {dims[a]} "
                                      f"(shape {x.shape})")
            return [(x.dtype, TensorShape([d for i, d in enumerate(dims) if i not in axes]))]
        if any(d is None for d in dims):
            return [(x.dtype, unknown_shape())]
        return [(x.dtype, TensorShape([d for d in dims if d != 1]))]

    def reference(self, op, inputs, ctx):
        x = inputs[0]
        axes = op.get_attr("squeeze_dims")
        if axes:
            for a in axes:
                if x.shape[a] != 1:
                    raise errors.InvalidArgumentError(
                        None, None, f"Can not squeeze dim[{a}], expected a dimension of 1, got "
                                    f"{x.shape[a]}")
            return np.squeeze(x, axis=tuple(axes))
        return np.squeeze(x)


def squeeze(input: Any, axis: Any = None, name: str | None = None,
            squeeze_dims: Any = None) -> Tensor:
    """Removes dims of size 1 (TF1's ``tf.squeeze``)."""
    if axis is None:
        axis = squeeze_dims
    with op_scope(name, "Squeeze", [input]) as scope:
        x = to_tensor(input, name="input")
        if axis is None:
            axes: tuple[int, ...] = ()
        else:
            items = [axis] if isinstance(axis, (int, np.integer)) else list(axis)
            r = x.shape.ndims
            if r is None and any(int(a) < 0 for a in items):
                raise errors.ShapeError(None, None, "squeeze with negative axes needs a known "
                                                    "rank")
            axes = tuple(sorted({normalize_axis(a, r, "squeeze axis") for a in items}))
        return make("Squeeze", [x], {"squeeze_dims": axes}, name=scope)


# --- fills --------------------------------------------------------------------------
@register
class Fill(OpDef):
    """A tensor of shape ``dims`` filled with scalar ``value``."""

    kind = OPAQUE

    def infer(self, op):
        dims, value = op.inputs
        rules.check_dtype(dims, (_dt.int32, _dt.int64), "dims")
        if value.shape.ndims not in (None, 0):
            raise shape_error(f"value must be a scalar, got shape {value.shape}")
        return [(value.dtype, constant_value_as_shape(dims))]

    def reference(self, op, inputs, ctx):
        dims, value = inputs
        if np.any(dims < 0):
            raise errors.InvalidArgumentError(None, None, f"dims {dims.tolist()} must be >= 0")
        return np.full([int(d) for d in dims], value, dtype=value.dtype)


def fill(dims: Any, value: Any, name: str | None = None) -> Tensor:
    """A tensor of shape ``dims`` filled with ``value`` (TF1's ``tf.fill``)."""
    with op_scope(name, "Fill", [dims, value]) as scope:
        d = _shape_input(dims)
        v = to_tensor(value, name="value")
        return make("Fill", [d, v], name=scope)


def _shape_input(shape: Any) -> Tensor:
    if isinstance(shape, TensorShape):
        shape = shape.as_list()
    if _is_tensorish(shape):
        return to_tensor(shape)
    return to_tensor(shape, dtype=None if _has_tensor(shape) else _dt.int32, name="shape")


def _has_tensor(v: Any) -> bool:
    if isinstance(v, (list, tuple)):
        return any(_has_tensor(i) for i in v)
    return _is_tensorish(v)


def _filled(shape: Any, value: float, dtype: Any, name: str | None, default: str) -> Tensor:
    d = _dt.as_dtype(dtype)
    static = None
    if not _has_tensor(shape):
        s = as_shape(shape.as_list() if isinstance(shape, TensorShape) else
                     ([int(i) for i in np.ravel(shape)] if not isinstance(shape, int) else [shape]))
        if s.is_fully_defined():
            static = tuple(s.values)
    with op_scope(name, default, []) as scope:
        if static is not None and int(np.prod(static, dtype=np.int64)) <= 1000:
            return constant(np.full(static, value, dtype=d.np), dtype=d, name=scope)
        return make("Fill", [_shape_input(shape), constant(value, dtype=d, name="Const")],
                    name=scope)


def zeros(shape: Any, dtype: Any = _dt.float32, name: str | None = None) -> Tensor:
    """A tensor of zeros (TF1's ``tf.zeros``)."""
    return _filled(shape, 0, dtype, name, "zeros")


def ones(shape: Any, dtype: Any = _dt.float32, name: str | None = None) -> Tensor:
    """A tensor of ones (TF1's ``tf.ones``)."""
    return _filled(shape, 1, dtype, name, "ones")


def _like(tensor: Any, value: float, dtype: Any, name: str | None, default: str) -> Tensor:
    with op_scope(name, default, [tensor]) as scope:
        x = to_tensor(tensor, name="tensor")
        d = _dt.as_dtype(dtype) if dtype is not None else x.dtype
        if x.shape.is_fully_defined():
            return _filled(list(x.shape.values), value, d, scope, default)
        return make("Fill", [shape(x), constant(value, dtype=d, name="Const")], name=scope)


def zeros_like(tensor: Any, dtype: Any = None, name: str | None = None,
               optimize: bool = True) -> Tensor:
    """Zeros of ``tensor``'s shape (and dtype unless given)."""
    return _like(tensor, 0, dtype, name, "zeros_like")


def ones_like(tensor: Any, dtype: Any = None, name: str | None = None,
              optimize: bool = True) -> Tensor:
    """Ones of ``tensor``'s shape (and dtype unless given)."""
    return _like(tensor, 1, dtype, name, "ones_like")


