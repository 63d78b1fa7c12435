"""Shape and layout ops: shape/size/rank, reshape, transpose, concat, stack, fills."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from graphflow.framework import dtypes as _dt
from graphflow.framework import errors
from graphflow.framework.graph import Tensor
from graphflow.framework.op_def import INJECTIVE, OPAQUE, OpDef, register, shape_error
from graphflow.framework.tensor_shape import Dimension, TensorShape, as_shape, unknown_shape
from graphflow.ops import rules
from graphflow.ops.building import (
    make,
    make_op,
    normalize_axis,
    op_scope,
    to_tensor,
    to_tensors,
)
from graphflow.ops.constant_op import constant, constant_value, constant_value_as_shape


def _int_list_attr(op: Any, name: str) -> list[int]:
    return list(op.get_attr(name))


# --- metadata ---------------------------------------------------------------------
class _MetaOp(OpDef):
    kind = OPAQUE
    not_differentiable = True  # TF1: NotDifferentiable("Shape"/"Size"/"Rank")

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

    @staticmethod
    def grad(op, dy):
        return [_reshape_to_input(op, dy), None]

    def infer(self, op):
        x, s = op.inputs
        rules.check_dtype(s, (_dt.int32, _dt.int64), "shape")
        if s.shape.ndims is not None and s.shape.ndims != 1:
            raise shape_error(f"shape must be a 1-D tensor, got shape {s.shape}")
        v = constant_value(s)
        if v is None:
            partial = _reshape_partial_shape(x, s)
            return [(x.dtype, partial if partial is not None else constant_value_as_shape(s))]
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
        # Python ints: exact products (no int64 wrap-around) and much cheaper than
        # np.prod on a list, which mattered: reshapes run on every training step.
        dims = [int(d) for d in np.asarray(s).tolist()]
        if -1 in dims:
            known = math.prod(d for d in dims if d != -1)
            if known == 0 or x.size % known:
                raise errors.InvalidArgumentError(
                    None, None, f"Input to reshape is a tensor with {x.size} values, but the "
                                f"requested shape {dims} does not divide it")
        elif math.prod(dims) != x.size:
            raise errors.InvalidArgumentError(
                None, None, f"Input to reshape is a tensor with {x.size} values, but the "
                            f"requested shape has {math.prod(dims)}")
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

    @staticmethod
    def grad(op, dy):
        perm = _int_list_attr(op, "perm")
        return [transpose(dy, [int(i) for i in np.argsort(perm)])]

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

    @staticmethod
    def grad(op, dy):
        # TF1 slices dy at each input's offset; SplitV along the axis is the same slices
        # and needs neither the rank nor the other dims.
        a = op.get_attr("axis")
        sizes = [_dim_or_tensor(t, a) for t in op.inputs]
        return list(split(dy, _int_vector(sizes), axis=a, num=len(sizes)))

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

    @staticmethod
    def grad(op, dy):
        return list(unstack(dy, num=len(op.inputs), axis=op.get_attr("axis")))

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
    """Stacks equally shaped tensors along a new ``axis`` (TF1's ``tf.stack``).

    Raises:
      ValueError: if ``values`` is empty or shapes differ.
    """
    if not list(values):
        raise errors.ShapeError(None, None, "stack needs at least one value; got an empty "
                                            "list")
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

    @staticmethod
    def grad(op, dy):
        return [_reshape_to_input(op, dy)]

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

    @staticmethod
    def grad(op, dy):
        return [_reshape_to_input(op, dy)]

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

    @staticmethod
    def grad(op, dy):
        from graphflow.ops.math_ops import reduce_sum

        return [None, reduce_sum(dy)]

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
        fill_value = constant(np.array(value, dtype=d.np), dtype=d, name="Const")
        return make("Fill", [_shape_input(shape), fill_value], name=scope)


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
        fill_value = constant(np.array(value, dtype=d.np), dtype=d, name="Const")
        return make("Fill", [shape(x), fill_value], name=scope)


def zeros_like(tensor: Any, dtype: Any = None, name: str | None = None,
               optimize: bool = True) -> Tensor:
    """Zeros of ``tensor``'s shape (and dtype unless given)."""
    return _like(tensor, 0, dtype, name, "zeros_like")


def ones_like(tensor: Any, dtype: Any = None, name: str | None = None,
              optimize: bool = True) -> Tensor:
    """Ones of ``tensor``'s shape (and dtype unless given)."""
    return _like(tensor, 1, dtype, name, "ones_like")


# ===================================================================================
# Unstack, split, tile, pad, range, eye and one_hot.
# ===================================================================================
_INDEX_DTYPES = (_dt.int32, _dt.int64)


# --- build-time values of small int tensors -------------------------------------------
def _partial_value(t: Tensor) -> np.ndarray | None:
    """What is known of ``t``'s value when the graph is built.

    Returns an object array of ``t``'s shape whose elements are Python numbers
    or None (unknown), or None when not even the shape is known. Follows
    constants, shapes (``gf.shape(x)`` of partly known x), Pack, ConcatV2,
    Identity and Cast between ints, and slicing or gathering of such values,
    so ``[gf.shape(x)[0], 2]`` is known to be ``[x.shape[0], 2]``.
    """
    v = constant_value(t)
    if v is not None:
        return np.asarray(v).astype(object)
    op = t.op
    typ = op.type
    out: np.ndarray | None = None
    if typ == "Shape":
        dims = op.inputs[0].shape.values
        if dims is not None:
            out = np.array(list(dims) if dims else [], dtype=object).reshape(len(dims))
    elif typ in ("Identity", "StopGradient"):
        out = _partial_value(op.inputs[0])
    elif typ == "Cast" and t.dtype.is_integer and op.inputs[0].dtype.is_integer:
        out = _partial_value(op.inputs[0])
    elif typ in ("Pack", "ConcatV2"):
        parts = [_partial_value(i) for i in op.inputs]
        if all(p is not None for p in parts):
            fn = np.stack if typ == "Pack" else np.concatenate
            out = fn(parts, axis=op.get_attr("axis"))
    elif typ in ("StridedSlice", "Slice", "GatherV2"):
        src = _partial_value(op.inputs[0])
        args = [constant_value(i) for i in op.inputs[1:]]
        if src is not None and all(a is not None for a in args):
            try:
                out = np.asarray(op.op_def.reference(op, [src, *args], None), dtype=object)
            except (errors.OpError, ValueError, TypeError, IndexError):
                out = None
    if out is not None and t.shape.is_compatible_with(out.shape):
        return out
    if t.shape.is_fully_defined():
        return np.full(t.shape.values, None, dtype=object)
    return None


def _partial_list(t: Tensor) -> list[Any] | None:
    """The elements of a 1-D tensor known at build time (None: unknown), or None."""
    v = _partial_value(t)
    if v is None or v.ndim != 1:
        return None
    return [None if e is None else int(e) for e in v.tolist()]


def _partial_scalar(t: Tensor) -> Any:
    """The value of a scalar tensor if known at build time, else None."""
    v = _partial_value(t)
    if v is None or v.size != 1:
        return None
    return v.reshape(()).item()


def _require_vector(t: Tensor, what: str) -> int | None:
    """Checks ``t`` is 1-D; returns its static length (or None)."""
    r = t.shape.ndims
    if r is not None and r != 1:
        raise shape_error(f"{what} must be a 1-D tensor, got shape {t.shape}")
    return None if r is None else t.shape.values[0]


def _require_scalar(t: Tensor, what: str) -> None:
    if t.shape.ndims not in (None, 0):
        raise shape_error(f"{what} must be a scalar, got shape {t.shape}")


def _outputs(values: list[np.ndarray]) -> Any:
    """A multi-output reference result: the interpreter takes a lone output unwrapped."""
    return values[0] if len(values) == 1 else values


def _run_error(message: str) -> errors.InvalidArgumentError:
    """A run-time error; the interpreter adds the op's name and source line."""
    return errors.InvalidArgumentError(None, None, message)


# --- reshape to a partly known shape --------------------------------------------------
def _dim_of_shape(t: Tensor) -> tuple[Tensor, int] | None:
    """``(x, k)`` if scalar ``t`` is ``gf.shape(x)[k]`` (a shrinking StridedSlice of Shape)."""
    op = t.op
    if op.type != "StridedSlice" or op.inputs[0].op.type != "Shape":
        return None
    if op.get_attr("shrink_axis_mask") != 1 or any(
            op.get_attr(m) for m in ("ellipsis_mask", "new_axis_mask", "begin_mask")):
        return None
    begin, strides = constant_value(op.inputs[1]), constant_value(op.inputs[3])
    x = op.inputs[0].op.inputs[0]
    r = x.shape.ndims
    if begin is None or strides is None or begin.shape != (1,) or int(strides[0]) != 1 \
            or r is None or not -r <= int(begin[0]) < r:
        return None
    return x, int(begin[0]) % r


def _reshape_partial_shape(x: Tensor, s: Tensor) -> TensorShape | None:
    """The static result of reshaping ``x`` to a partly known 1-D ``s``, or None.

    As TF1, a -1 is resolved when every other output dim is known, or when the
    unknown ones are ``gf.shape(x)[k]`` of x's own unknown dims (they cancel), so
    ``reshape(x, [gf.shape(x)[0], -1])`` of x ``(?, 3, 4)`` is ``(?, 12)``.
    """
    if s.op.type == "Pack" and s.shape.ndims == 1 and s.op.get_attr("axis") == 0:
        elems: list[Any] = []
        for e in s.op.inputs:
            c = _partial_scalar(e)
            elems.append(int(c) if c is not None else _dim_of_shape(e))
    else:
        known = _partial_list(s)
        if known is None:
            return None
        elems = list(known)
    minus: int | None = None
    if sum(1 for e in elems if e == -1) == 1 and x.shape.ndims is not None:
        in_dims = x.shape.values
        unknown_in = sorted(k for k, d in enumerate(in_dims) if d is None)
        cancelled = sorted(e[1] for e in elems if isinstance(e, tuple) and e[0] is x)
        if not any(e is None or isinstance(e, tuple) and e[0] is not x for e in elems) and \
                cancelled == unknown_in:
            known_in = int(np.prod([d for d in in_dims if d is not None], dtype=np.int64))
            known_out = int(np.prod([e for e in elems if isinstance(e, int) and e != -1],
                                    dtype=np.int64))
            if known_out and known_in % known_out == 0:
                minus = known_in // known_out
    return TensorShape([minus if e == -1 else e if isinstance(e, int) and e >= 0 else None
                        for e in elems])


# --- unstack ------------------------------------------------------------------------
@register
class Unpack(OpDef):
    """Splits its input along attr ``axis`` into attr ``num`` tensors of rank r-1."""

    kind = OPAQUE

    @staticmethod
    def grad(op, *dys):
        return [stack(list(dys), axis=op.get_attr("axis"))]

    def infer(self, op):
        x = op.inputs[0]
        num, axis = op.get_attr("num"), op.get_attr("axis")
        dims = x.shape.values
        if dims is None:
            return [(x.dtype, unknown_shape())] * num
        a = axis + len(dims) if axis < 0 else axis
        if dims[a] is not None and dims[a] != num:
            raise shape_error(f"dimension {axis} of {x.name} (shape {x.shape}) must be {num} "
                              f"to unstack it into {num} tensors")
        out = TensorShape(dims[:a] + dims[a + 1:])
        return [(x.dtype, out)] * num

    def reference(self, op, inputs, ctx):
        x = inputs[0]
        num, axis = op.get_attr("num"), op.get_attr("axis")
        if not -x.ndim <= axis < x.ndim:
            raise _run_error(f"axis {axis} is out of range for an input of shape {list(x.shape)}")
        if x.shape[axis] != num:
            raise _run_error(f"Input shape axis {axis} must equal {num}, got shape "
                             f"{list(x.shape)}")
        moved = np.moveaxis(x, axis, 0)
        return _outputs([moved[i] for i in range(num)])


def unstack(value: Any, num: int | None = None, axis: int = 0,
            name: str = "unstack") -> list[Tensor]:
    """Unpacks dimension ``axis`` of ``value`` into a list of tensors (TF1's ``tf.unstack``).

    Args:
      value: a tensor of rank R > 0.
      num: the length of dimension ``axis``; inferred from the static shape if None.
      axis: the dimension to unstack along, in ``[-R, R)``.
      name: op name.

    Returns:
      A list of ``num`` tensors of rank R-1.

    Raises:
      ValueError: if ``axis`` is out of range, or ``num`` is None and cannot be inferred.
    """
    with op_scope(name, "unstack", [value]) as scope:
        x = to_tensor(value, name="value")
        r = x.shape.ndims
        a = int(axis)
        if r is not None:
            if r == 0:
                raise errors.ShapeError(None, None, f"{scope[:-1]}: cannot unstack a scalar")
            a = normalize_axis(a, r, f"{scope[:-1]}: axis")
        if num is None:
            num = None if r is None else x.shape.values[a]
            if num is None:
                raise errors.ShapeError(None, None, f"{scope[:-1]}: Cannot infer num from shape "
                                                    f"{x.shape}")
        if int(num) < 0:
            raise errors.ShapeError(None, None, f"{scope[:-1]}: num must be >= 0, got {num}")
        op = make_op("Unpack", [x], {"num": int(num), "axis": a}, name=scope)
        return op.outputs


# --- split --------------------------------------------------------------------------
def _split_axis(op: Any, axis_t: Tensor, x: Tensor) -> int | None:
    """The static, non-negative split axis, or None if unknown."""
    rules.check_dtype(axis_t, _INDEX_DTYPES, "split_dim")
    _require_scalar(axis_t, "split_dim")
    a = _partial_scalar(axis_t)
    r = x.shape.ndims
    if a is None or r is None:
        return None
    if not -r <= a < r:
        raise shape_error(f"split_dim {a} is out of range for input {x.name} of shape {x.shape}")
    return a % r


def _split_run_axis(axis: Any, x: np.ndarray) -> int:
    a = int(axis)
    if not -x.ndim <= a < x.ndim:
        raise _run_error(f"-input rank(-{x.ndim}) <= split_dim < input rank ({x.ndim}), but got "
                         f"{a}")
    return a % x.ndim


@register
class Split(OpDef):
    """Splits input 1 into attr ``num_split`` equal parts along scalar input 0."""

    kind = OPAQUE

    @staticmethod
    def grad(op, *dys):
        return [None, concat(list(dys), _static_grad_axis(op.inputs[0], "Split"))]

    def infer(self, op):
        axis_t, x = op.inputs
        n = op.get_attr("num_split")
        a = _split_axis(op, axis_t, x)
        dims = x.shape.values
        if dims is None:
            return [(x.dtype, unknown_shape())] * n
        if a is None:
            return [(x.dtype, unknown_shape(len(dims)))] * n
        d = dims[a]
        if d is not None and d % n:
            raise shape_error(f"Dimension {a} of {x.name} (shape {x.shape}) must be evenly "
                              f"divisible by {n} but is {d}")
        out = list(dims)
        out[a] = None if d is None else d // n
        return [(x.dtype, TensorShape(out))] * n

    def reference(self, op, inputs, ctx):
        axis, x = inputs
        n = op.get_attr("num_split")
        a = _split_run_axis(axis, x)
        if x.shape[a] % n:
            raise _run_error(f"Number of ways to split should evenly divide the split dimension, "
                             f"but got split_dim {a} (size = {x.shape[a]}) and num_split {n}")
        return _outputs(np.split(x, n, axis=a))


@register
class SplitV(OpDef):
    """Splits input 0 into pieces of the sizes in input 1 (one may be -1) along input 2."""

    kind = OPAQUE

    @staticmethod
    def grad(op, *dys):
        return [concat(list(dys), _static_grad_axis(op.inputs[2], "SplitV")), None, None]

    def infer(self, op):
        x, sizes_t, axis_t = op.inputs
        n = op.get_attr("num_split")
        rules.check_dtype(sizes_t, _INDEX_DTYPES, "size_splits")
        length = _require_vector(sizes_t, "size_splits")
        if length is not None and length != n:
            raise shape_error(f"size_splits has {length} elements but num_split is {n}")
        a = _split_axis(op, axis_t, x)
        dims = x.shape.values
        if dims is None:
            return [(x.dtype, unknown_shape())] * n
        if a is None:
            return [(x.dtype, unknown_shape(len(dims)))] * n
        sizes = _partial_list(sizes_t) or [None] * n
        if sum(1 for s in sizes if s == -1) > 1:
            raise shape_error(f"size_splits {sizes} can contain at most one -1")
        if any(s is not None and s < -1 for s in sizes):
            raise shape_error(f"size_splits {sizes} must be >= 0 (or one -1)")
        d = dims[a]
        known = [s for s in sizes if s is not None and s != -1]
        if d is not None and sum(known) > d or (
                d is not None and len(known) == n and sum(known) != d):
            raise shape_error(f"The specified sizes {sizes} must sum to dimension {a} of "
                              f"{x.name} (shape {x.shape}), which is {d}")
        if -1 in sizes and len(known) == n - 1 and d is not None:
            sizes = [d - sum(known) if s == -1 else s for s in sizes]
        outs = []
        for s in sizes:
            dd = list(dims)
            dd[a] = None if s is None or s == -1 else s
            outs.append((x.dtype, TensorShape(dd)))
        return outs

    def reference(self, op, inputs, ctx):
        x, sizes, axis = inputs
        a = _split_run_axis(axis, x)
        sizes = [int(s) for s in sizes]
        d = x.shape[a]
        if len(sizes) != op.get_attr("num_split"):
            raise _run_error(f"size_splits has {len(sizes)} elements, expected "
                             f"{op.get_attr('num_split')}")
        if sum(1 for s in sizes if s == -1) > 1 or any(s < -1 for s in sizes):
            raise _run_error(f"size_splits {sizes} must be >= 0 with at most one -1")
        known = sum(s for s in sizes if s != -1)
        if -1 in sizes:
            if known > d:
                raise _run_error(f"The specified sizes {sizes} add up to more than dimension "
                                 f"{a} of the input (size {d})")
            sizes = [d - known if s == -1 else s for s in sizes]
        elif known != d:
            raise _run_error(f"Determined shape must either match input shape along split_dim "
                             f"exactly if fully specified, or be less than the size of the "
                             f"input along split_dim if not fully specified. Got: {sizes} for "
                             f"dimension {a} of size {d}")
        return _outputs(np.split(x, np.cumsum(sizes)[:-1], axis=a))


def split(value: Any, num_or_size_splits: Any, axis: Any = 0, num: int | None = None,
          name: str = "split") -> list[Tensor]:
    """Splits ``value`` along ``axis`` into sub-tensors (TF1's ``tf.split``).

    Args:
      value: the tensor to split.
      num_or_size_splits: an int N (N equal parts, op ``Split``) or a 1-D list or
        tensor of sizes, one of which may be -1 (op ``SplitV``).
      axis: the dimension to split along (an int or scalar int tensor).
      num: the number of outputs when it cannot be inferred from ``num_or_size_splits``.
      name: op name.

    Returns:
      A list of tensors.

    Raises:
      ValueError: if the sizes do not fit the dimension, or ``num`` cannot be inferred.
    """
    with op_scope(name, "split", [value, num_or_size_splits, axis]) as scope:
        x = to_tensor(value, name="value")
        if isinstance(num_or_size_splits, (int, np.integer, Dimension)) and not isinstance(
                num_or_size_splits, bool):
            n = int(num_or_size_splits)
            if n < 1:
                raise errors.ShapeError(None, None, f"{scope[:-1]}: num_split must be >= 1, got "
                                                    f"{n}")
            a = to_tensor(axis, dtype=None if _is_tensorish(axis) else _dt.int32,
                          name="split_dim")
            return make_op("Split", [a, x], {"num_split": n}, name=scope).outputs
        sizes = _shape_input(num_or_size_splits) if not _is_tensorish(num_or_size_splits) \
            else to_tensor(num_or_size_splits)
        if num is None:
            length = sizes.shape.values[0] if sizes.shape.ndims == 1 else None
            if length is None:
                raise errors.ShapeError(None, None, f"{scope[:-1]}: Cannot infer num from shape "
                                                    f"{sizes.shape} of num_or_size_splits")
            num = length
        a = to_tensor(axis, dtype=None if _is_tensorish(axis) else _dt.int32, name="split_dim")
        return make_op("SplitV", [x, sizes, a], {"num_split": int(num)}, name=scope).outputs


# --- tile ---------------------------------------------------------------------------
def _mul_dim(d: int | None, m: int | None) -> int | None:
    """TF's static ``d * m``: 0 and 1 are absorbing/neutral even if the other is unknown."""
    if d == 0 or m == 0:
        return 0
    if d == 1:
        return m
    if m == 1:
        return d
    return None if d is None or m is None else d * m


@register
class Tile(OpDef):
    """Repeats input 0 ``multiples[i]`` times along each dim i."""

    kind = INJECTIVE

    @staticmethod
    def grad(op, dy):
        # TF1: reshape dy to [m0, d0, m1, d1, ...] and sum over the even (tiled) dims.
        from graphflow.ops.math_ops import reduce_sum

        x, m = op.inputs
        r = x.shape.ndims
        if r is None:
            r = m.shape.values[0] if m.shape.ndims == 1 else None
        if r is None:
            raise errors.ShapeError(None, op, "the gradient of Tile needs the rank of its "
                                              "input or the length of multiples")
        if r == 0:
            return [dy, None]
        dims = _dims_or_tensors(x, m.dtype, r)
        known = _partial_list(m) or [None] * r
        mults = [k if k is not None else m[i] for i, k in enumerate(known)]
        split_shape = [v for pair in zip(mults, dims) for v in pair]
        g = reduce_sum(reshape(dy, _int_vector(split_shape, m.dtype)),
                       axis=list(range(0, 2 * r, 2)))
        if x.shape.ndims is not None:
            g.set_shape(x.shape)
        return [g, None]

    def infer(self, op):
        x, m = op.inputs
        rules.check_dtype(m, _INDEX_DTYPES, "multiples")
        n = _require_vector(m, "multiples")
        r = x.shape.ndims
        if r is not None and n is not None and n != r:
            raise shape_error(f"multiples has {n} elements but input {x.name} has rank {r} "
                              f"(shape {x.shape})")
        r = r if r is not None else n
        if r is None:
            return [(x.dtype, unknown_shape())]
        mults = _partial_list(m) or [None] * r
        if any(v is not None and v < 0 for v in mults):
            raise shape_error(f"Expected multiples argument to be non-negative, got {mults}")
        dims = x.shape.values or (None,) * r
        return [(x.dtype, TensorShape([_mul_dim(d, v) for d, v in zip(dims, mults)]))]

    def reference(self, op, inputs, ctx):
        x, m = inputs
        if m.shape != (x.ndim,):
            raise _run_error(f"Expected multiples argument to be a vector of length {x.ndim} "
                             f"but got length {m.size}")
        if np.any(m < 0):
            raise _run_error(f"Expected multiples argument to be non-negative, got "
                             f"{m.tolist()}")
        return np.tile(x, [int(v) for v in m]) if x.ndim else x.copy()


def tile(input: Any, multiples: Any, name: str | None = None) -> Tensor:
    """Repeats ``input`` ``multiples[i]`` times along dim i (TF1's ``tf.tile``).

    Args:
      input: a tensor of rank R.
      multiples: R non-negative ints, a list or 1-D int32/int64 tensor.
      name: op name.

    Returns:
      A tensor of shape ``input.shape * multiples``.

    Raises:
      ValueError: if ``multiples`` does not have R elements or has negative ones.
    """
    with op_scope(name, "Tile", [input, multiples]) as scope:
        x = to_tensor(input, name="input")
        m = to_tensor(multiples) if _is_tensorish(multiples) else _shape_input(multiples)
        return make("Tile", [x, m], name=scope)


# --- pad ----------------------------------------------------------------------------
def _padding_rows(x: Tensor, p: Tensor) -> tuple[int | None, list[list[int | None]]]:
    """Checks an int ``[rank, 2]`` paddings input against ``x``; returns the rank (None
    if unknown) and what is known of each ``[before, after]`` row (None entries unknown)."""
    rules.check_dtype(p, _INDEX_DTYPES, "paddings")
    ps = p.shape.values
    if ps is not None and (len(ps) != 2 or ps[1] not in (None, 2)):
        raise shape_error(f"paddings must be a matrix with 2 columns, got shape {p.shape}")
    r = x.shape.ndims
    n = ps[0] if ps is not None else None
    if r is not None and n is not None and n != r:
        raise shape_error(f"The first dimension of paddings must be the rank of the input "
                          f"{x.name}: paddings has shape {p.shape}, input shape {x.shape}")
    r = r if r is not None else n
    if r is None:
        return None, []
    pv = _partial_value(p)
    rows = pv.tolist() if pv is not None and pv.shape == (r, 2) else [[None, None]] * r
    return r, rows


# --- pad ----------------------------------------------------------------------------
class _PadBase(OpDef):
    """Shared rule of Pad, PadV2 and MirrorPad: input 1 is an int ``[rank, 2]`` paddings."""

    kind = INJECTIVE

    def limit(self, op: Any) -> int | None:
        """How far padding may reach relative to the dim (MirrorPad); None: unlimited."""
        return None

    def infer(self, op):
        x, p = op.inputs[:2]
        r, rows = _padding_rows(x, p)
        if r is None:
            return [(x.dtype, unknown_shape())]
        dims = x.shape.values or (None,) * r
        limit = self.limit(op)
        out = []
        for i, (d, (lo, hi)) in enumerate(zip(dims, rows)):
            for v in (lo, hi):
                if v is not None and v < 0:
                    raise shape_error(f"paddings must be non-negative, got {rows[i]} for "
                                      f"dimension {i}")
                if v is not None and d is not None and limit is not None and v > d - limit:
                    raise shape_error(f"{op.get_attr('mode')} paddings {rows[i]} of dimension {i} "
                                      f"must be {'less than' if limit else 'no greater than'} "
                                      f"its size {d}")
            out.append(None if d is None or lo is None or hi is None else d + lo + hi)
        return [(x.dtype, TensorShape(out))]

    def check(self, op: Any, x: np.ndarray, p: np.ndarray) -> list[tuple[int, int]]:
        if p.shape != (x.ndim, 2):
            raise _run_error(f"The first dimension of paddings must be the rank of inputs "
                             f"{list(p.shape)}, {list(x.shape)}")
        pairs = [(int(a), int(b)) for a, b in p]
        limit = self.limit(op)
        for i, (a, b) in enumerate(pairs):
            if a < 0 or b < 0:
                raise _run_error(f"Paddings must be non-negative: {a} {b}")
            if limit is not None and max(a, b) > x.shape[i] - limit:
                how = "less than" if limit else "no greater than"
                raise _run_error(f"paddings must be {how} the dimension size: {a}, {b} for "
                                 f"dimension {i} of size {x.shape[i]}")
        return pairs


def _np_pad(x: np.ndarray, pairs: list[tuple[int, int]], **kw: Any) -> np.ndarray:
    # np.pad rejects scalars and mirror-pads of empty dims even when nothing is added.
    if not any(a or b for a, b in pairs):
        return x
    return np.pad(x, pairs, **kw)


def _pad_grad(op: Any, dy: Tensor) -> Tensor:
    """TF1's Pad/PadV2 gradient: the slice of dy where the input was."""
    from graphflow.ops.indexing_ops import slice as slice_

    x, p = op.inputs[:2]
    pv = _partial_value(p)
    r = x.shape.ndims
    if pv is not None and pv.ndim == 2 and all(v is not None for v in pv[:, 0]):
        begin: Any = [int(v) for v in pv[:, 0]]
    else:
        begin = p[:, 0]
    g = slice_(dy, begin, _shape_vector(x, p.dtype))
    if r is not None:
        g.set_shape(x.shape)
    return g


@register
class Pad(_PadBase):
    """Pads with zeros."""

    @staticmethod
    def grad(op, dy):
        return [_pad_grad(op, dy), None]

    def reference(self, op, inputs, ctx):
        x, p = inputs
        return _np_pad(x, self.check(op, x, p), mode="constant")


@register
class PadV2(_PadBase):
    """Pads with the scalar input 2."""

    @staticmethod
    def grad(op, dy):
        return [_pad_grad(op, dy), None, None]  # TF1 gives constant_values no gradient

    def infer(self, op):
        x, _, c = op.inputs
        rules.same_dtype(x, c)
        _require_scalar(c, "constant_values")
        return super().infer(op)

    def reference(self, op, inputs, ctx):
        x, p, c = inputs
        return _np_pad(x, self.check(op, x, p), mode="constant", constant_values=c)


@register
class MirrorPad(_PadBase):
    """Pads by mirroring; attr ``mode`` is REFLECT (edge excluded) or SYMMETRIC."""

    @staticmethod
    def grad(op, dy):
        return [_mirror_pad_grad(dy, op.inputs[1], op.get_attr("mode")), None]

    def limit(self, op):
        return 1 if op.get_attr("mode") == "REFLECT" else 0

    def reference(self, op, inputs, ctx):
        x, p = inputs
        return _np_pad(x, self.check(op, x, p), mode=op.get_attr("mode").lower())


@register
class MirrorPadGrad(OpDef):
    """The adjoint of MirrorPad: folds the mirrored borders of input 0 back onto the interior.

    Inputs ``dy`` (the padded shape) and the int ``[rank, 2]`` paddings; attr ``mode``.
    Each padded element adds into the interior element it was copied from.
    """

    kind = OPAQUE

    @staticmethod
    def grad(op, dy):
        return [make("MirrorPad", [dy, op.inputs[1]], {"mode": op.get_attr("mode")}), None]

    def infer(self, op):
        g, p = op.inputs
        r, rows = _padding_rows(g, p)
        if r is None:
            return [(g.dtype, unknown_shape())]
        limit = 1 if op.get_attr("mode") == "REFLECT" else 0
        out = []
        for i, (d, (lo, hi)) in enumerate(zip(g.shape.values or (None,) * r, rows)):
            if any(v is not None and v < 0 for v in (lo, hi)):
                raise shape_error(f"paddings must be non-negative, got {rows[i]} for "
                                  f"dimension {i}")
            n_i = None if d is None or lo is None or hi is None else d - lo - hi
            if n_i is not None and (n_i < 0 or max(lo, hi) > n_i - limit):
                raise shape_error(f"{op.get_attr('mode')} paddings {rows[i]} do not fit "
                                  f"dimension {i} of size {d} of {g.name}")
            out.append(n_i)
        return [(g.dtype, TensorShape(out))]

    def reference(self, op, inputs, ctx):
        g, p = inputs
        if p.shape != (g.ndim, 2):
            raise _run_error(f"paddings must have shape [{g.ndim}, 2], got {list(p.shape)}")
        mode = op.get_attr("mode").lower()
        limit = 1 if mode == "reflect" else 0
        out = g
        for i, (a, b) in enumerate((int(a), int(b)) for a, b in p):
            n = out.shape[i] - a - b
            if a < 0 or b < 0 or n < 0 or max(a, b) > n - limit:
                raise _run_error(f"paddings {[a, b]} do not fit dimension {i} of size "
                                 f"{out.shape[i]} in {mode.upper()} mode")
            if not a and not b:
                continue
            source = np.pad(np.arange(n), (a, b), mode=mode)  # where each element came from
            acc = np.zeros(out.shape[:i] + (n,) + out.shape[i + 1:], dtype=out.dtype)
            np.add.at(acc, (slice(None),) * i + (source,), out)
            out = acc
        return out


def _mirror_pad_grad(dy: Tensor, paddings: Tensor, mode: str, name: str | None = None
                     ) -> Tensor:
    """Builds a ``MirrorPadGrad`` op (TF's ``gen_array_ops.mirror_pad_grad``)."""
    with op_scope(name, "MirrorPadGrad", [dy, paddings]) as scope:
        return make("MirrorPadGrad", [dy, paddings], {"mode": mode}, name=scope)


def pad(tensor: Any, paddings: Any, mode: str = "CONSTANT", name: str | None = None,
        constant_values: Any = 0) -> Tensor:
    """Pads ``tensor`` (TF1's ``tf.pad``).

    Args:
      tensor: a tensor of rank R.
      paddings: an int ``[R, 2]`` list or tensor: ``paddings[i] = [before, after]``.
      mode: ``"CONSTANT"`` (op ``Pad``, or ``PadV2`` when ``constant_values`` is not 0),
        ``"REFLECT"`` or ``"SYMMETRIC"`` (op ``MirrorPad``); case-insensitive.
      name: op name.
      constant_values: the scalar to pad with in CONSTANT mode, of ``tensor``'s dtype.

    Returns:
      The padded tensor.

    Raises:
      ValueError: for an unknown mode, or paddings that do not fit the tensor.
    """
    m = str(mode).upper()
    if m not in ("CONSTANT", "REFLECT", "SYMMETRIC"):
        raise errors.GraphValueError(None, None, f"pad: Unknown padding mode: {mode}")
    default = {"CONSTANT": "Pad", "REFLECT": "MirrorPad", "SYMMETRIC": "MirrorPad"}[m]
    plain = m == "CONSTANT" and not _is_tensorish(constant_values) and \
        np.all(np.asarray(constant_values) == 0)
    if m == "CONSTANT" and not plain:
        default = "PadV2"
    with op_scope(name, default, [tensor, paddings, constant_values]) as scope:
        x = to_tensor(tensor, name="input")
        if _is_tensorish(paddings):
            p = to_tensor(paddings)
        elif not _has_tensor(paddings) and np.size(paddings) == 0:
            p = constant(np.zeros((0, 2), np.int32), name="paddings")  # a scalar's paddings
        else:
            p = _shape_input(paddings)
        if m != "CONSTANT":
            return make("MirrorPad", [x, p], {"mode": m}, name=scope)
        if plain:
            return make("Pad", [x, p], name=scope)
        c = to_tensors([constant_values], ["constant_values"], dtype=x.dtype)[0]
        return make("PadV2", [x, p, c], name=scope)


# --- range --------------------------------------------------------------------------
_RANGE_DTYPES = (_dt.int32, _dt.int64, _dt.float32, _dt.float64)


def _range_size(start: Any, limit: Any, delta: Any, dtype: _dt.DType,
                fail: Any) -> int:
    """The number of elements of Range, computed in ``dtype`` as TF does."""
    if dtype.is_integer:
        s, lim, d = int(start), int(limit), int(delta)
    else:
        s, lim, d = (dtype.np.type(v) for v in (start, limit, delta))
    if d == 0:
        raise fail("Requires delta != 0")
    if s > lim and d > 0:
        raise fail(f"Requires start <= limit when delta > 0: {s}/{lim}")
    if s < lim and d < 0:
        raise fail(f"Requires start >= limit when delta < 0: {s}/{lim}")
    if dtype.is_integer:
        return (abs(lim - s) + abs(d) - 1) // abs(d)
    return int(np.ceil(np.abs((lim - s) / d)))


@register
class Range(OpDef):
    """``[start, start + delta, ...)`` up to ``limit`` (exclusive); three scalar inputs."""

    kind = OPAQUE
    not_differentiable = True  # TF1: NotDifferentiable("Range")

    def infer(self, op):
        start, limit, delta = op.inputs
        d = rules.same_dtype(start, limit, delta)
        rules.check_dtype(start, _RANGE_DTYPES, "start")
        for t, what in zip(op.inputs, ("start", "limit", "delta")):
            _require_scalar(t, what)
        vals = [_partial_scalar(t) for t in op.inputs]
        if vals[2] is not None and vals[2] == 0:
            raise shape_error("Requires delta != 0")
        if any(v is None for v in vals):
            return [(d, TensorShape([None]))]
        return [(d, TensorShape([_range_size(*vals, d, shape_error)]))]

    def reference(self, op, inputs, ctx):
        start, limit, delta = inputs
        dt = op.outputs[0].dtype
        n = _range_size(start, limit, delta, dt, _run_error)
        if dt.is_integer:
            return (start + delta * np.arange(n, dtype=dt.np)).astype(dt.np)
        steps = np.full(n, delta, dtype=dt.np)
        if n:
            steps[0] = start
        return np.add.accumulate(steps, dtype=dt.np)  # start, start+delta, ... as TF sums


def _range(start: Any, limit: Any = None, delta: Any = 1, dtype: Any = None,
           name: str = "range") -> Tensor:
    """A 1-D tensor ``[start, start + delta, ...)`` stopping before ``limit`` (TF1's ``tf.range``).

    Args:
      start: the first value; with ``limit`` None, it is the limit and start is 0.
      limit: the exclusive end.
      delta: the step, non-zero.
      dtype: the result dtype; when None the widest of the arguments' dtypes
        (int32 < int64 < float32 < float64), so ``range(5)`` is int32 and
        ``range(0., 1., .25)`` float32.
      name: op name.

    Returns:
      A 1-D tensor.

    Raises:
      ValueError: if delta is 0 or points away from limit (when known at build time).
      TypeError: for arguments that are not int32/int64/float32/float64.
    """
    if limit is None:
        start, limit = 0, start
    with op_scope(name, "Range", [start, limit, delta]) as scope:
        want = None if dtype is None else _dt.as_dtype(dtype)
        ts = []
        for v, what in zip((start, limit, delta), ("start", "limit", "delta")):
            try:
                ts.append(to_tensor(v, dtype=want, name=what))
            except TypeError as e:
                raise errors.DTypeError(None, None, f"{scope[:-1]}: {what}: {e}") from None
        if want is None:
            for t in ts:
                if t.dtype not in _RANGE_DTYPES:
                    raise errors.DTypeError(
                        None, None, f"{scope[:-1]}: {t.name} has dtype {t.dtype.name}; range "
                                    "takes int32, int64, float32 or float64")
            want = max((t.dtype for t in ts), key=_RANGE_DTYPES.index)
            from graphflow.ops.math_ops import cast

            ts = [cast(t, want) for t in ts]
        return make("Range", ts, name=scope)


# ``range`` is the public name; it is served by __getattr__ below rather than bound as a
# module global, so the builtin ``range`` keeps working inside this module.
_range.__name__ = _range.__qualname__ = "range"


# --- one_hot ------------------------------------------------------------------------
@register
class OneHot(OpDef):
    """One-hot encoding: inputs indices, depth, on_value, off_value; attr ``axis``."""

    kind = OPAQUE
    not_differentiable = True  # TF1: NotDifferentiable("OneHot")

    def infer(self, op):
        idx, depth, on, off = op.inputs
        rules.check_dtype(idx, (_dt.uint8, _dt.int32, _dt.int64), "indices")
        rules.check_dtype(depth, (_dt.int32,), "depth")
        _require_scalar(depth, "depth")
        _require_scalar(on, "on_value")
        _require_scalar(off, "off_value")
        d = rules.same_dtype(on, off)
        axis = op.get_attr("axis")
        dims = idx.shape.values
        if dims is not None and not -1 <= axis <= len(dims):
            raise shape_error(f"Expected axis to be -1 or between [0, {len(dims) + 1}). But "
                              f"received: {axis}")
        if axis < -1:
            raise shape_error(f"Expected axis to be -1 or non-negative, got {axis}")
        n = _partial_scalar(depth)
        if n is not None and n < 0:
            raise shape_error(f"depth must be non-negative, got: {n}")
        if dims is None:
            return [(d, unknown_shape())]
        out = list(dims)
        out.insert(len(dims) if axis == -1 else axis, n)
        return [(d, TensorShape(out))]

    def reference(self, op, inputs, ctx):
        idx, depth, on, off = inputs
        n = int(depth)
        if n < 0:
            raise _run_error(f"depth must be non-negative, got: {n}")
        axis = op.get_attr("axis")
        hot = idx.astype(np.int64)[..., None] == np.arange(n, dtype=np.int64)
        out = np.where(hot, on, off).astype(on.dtype)
        return np.moveaxis(out, -1, idx.ndim if axis == -1 else axis)


def one_hot(indices: Any, depth: Any, on_value: Any = None, off_value: Any = None,
            axis: int | None = None, dtype: Any = None, name: str | None = None) -> Tensor:
    """A one-hot tensor (TF1's ``tf.one_hot``).

    Locations given by ``indices`` take ``on_value`` and all others ``off_value``;
    an index outside ``[0, depth)`` (negative ones included) gives a row of ``off_value``.

    Args:
      indices: a uint8/int32/int64 tensor of indices.
      depth: a scalar int, the size of the one-hot dimension.
      on_value: scalar for the hot locations (default 1).
      off_value: scalar for the others (default 0).
      axis: where the new dimension goes; -1 (default) appends it.
      dtype: the result dtype; default: the dtype of on_value/off_value, else float32.
      name: op name.

    Returns:
      A tensor of rank ``rank(indices) + 1``.

    Raises:
      TypeError: if on_value, off_value and dtype disagree.
      ValueError: if ``axis`` or ``depth`` is out of range.
    """
    with op_scope(name, "one_hot", [indices, depth, on_value, off_value]) as scope:
        want = None if dtype is None else _dt.as_dtype(dtype)
        values = {}
        for key, v in (("on_value", on_value), ("off_value", off_value)):
            if v is None:
                continue
            if _is_tensorish(v):
                t = to_tensor(v)
            else:
                try:
                    t = to_tensor(v, dtype=want, name=key)
                except TypeError as e:
                    raise errors.DTypeError(None, None, f"{scope[:-1]}: {key}: {e}") from None
            if want is not None and t.dtype is not want:
                raise errors.DTypeError(None, None, f"{scope[:-1]}: dtype {t.dtype.name} of "
                                                    f"{key} does not match dtype parameter "
                                                    f"{want.name}")
            values[key] = t
        if want is None:
            want = next((t.dtype for t in values.values()), _dt.float32)
        on = values.get("on_value")
        off = values.get("off_value")
        if on is None:
            on = constant(np.ones((), want.np), dtype=want, name="on_value")
        if off is None:
            off = constant(np.zeros((), want.np), dtype=want, name="off_value")
        if on.dtype is not off.dtype:
            raise errors.DTypeError(None, None, f"{scope[:-1]}: dtype {on.dtype.name} of "
                                                f"on_value does not match dtype "
                                                f"{off.dtype.name} of off_value")
        idx = to_tensor(indices, name="indices")
        dep = to_tensor(depth, dtype=None if _is_tensorish(depth) else _dt.int32, name="depth")
        return make("OneHot", [idx, dep, on, off], {"axis": -1 if axis is None else int(axis)},
                    name=scope)


# --- eye ------------------------------------------------------------------------------
def eye(num_rows: Any, num_columns: Any = None, batch_shape: Any = None,
        dtype: Any = _dt.float32, name: str | None = None) -> Tensor:
    """An identity matrix, or a batch of them (TF1's ``tf.eye``).

    Built from primitives: ``cast(equal(range(rows)[:, None], range(cols)), dtype)``,
    tiled over ``batch_shape``.

    Args:
      num_rows: a non-negative int (or scalar int tensor): rows of each matrix.
      num_columns: columns (default: ``num_rows``).
      batch_shape: a list of ints (or 1-D int tensor of known length); the result
        has shape ``batch_shape + [num_rows, num_columns]``.
      dtype: the element type.
      name: scope name (default ``eye``).

    Returns:
      A tensor with ones on the main diagonal of each matrix and zeros elsewhere.

    Raises:
      TypeError: if num_rows/num_columns are not integers.
      ValueError: if they are negative.
    """
    from graphflow.ops.math_ops import cast, equal

    with op_scope(name, "eye", [num_rows, num_columns, batch_shape]) as scope:
        def size_tensor(v: Any, what: str) -> Any:
            if _is_tensorish(v):
                return cast(to_tensor(v, name=what), _dt.int32)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise errors.DTypeError(None, None, f"{scope[:-1]}: {what} must be a "
                                                    f"non-negative integer, got {v!r}")
            if v < 0:
                raise errors.ShapeError(None, None, f"{scope[:-1]}: {what} must be "
                                                    f"non-negative, got {v}")
            return int(v)

        rows = size_tensor(num_rows, "num_rows")
        cols = rows if num_columns is None else size_tensor(num_columns, "num_columns")
        d = _dt.as_dtype(dtype)
        hot = equal(expand_dims(_range(rows), 1), _range(cols))
        batch = [] if batch_shape is None else batch_shape
        if not _is_tensorish(batch) and len(batch) == 0:
            out = cast(hot, d, name=scope)
            return out if out is not hot else identity(hot, name=scope)
        b = to_tensor(batch) if _is_tensorish(batch) else _shape_input(batch)
        k = b.shape.values[0] if b.shape.ndims == 1 else None
        if k is None:
            raise errors.ShapeError(None, None, f"{scope[:-1]}: batch_shape must have a length "
                                                "known when the graph is built")
        one = reshape(cast(hot, d), [1] * k + [rows, cols])
        return tile(one, concat([b, constant([1, 1], dtype=b.dtype)], 0), name=scope)


# --- gradient helpers ---------------------------------------------------------------
# Gradient rules build graph ops; these give shapes as Python ints where the static
# shape knows them and as int tensors (``gf.shape(x)[i]``) where it does not.
def _reshape_to_input(op: Any, dy: Tensor) -> Tensor:
    """``dy`` reshaped to the shape of ``op.inputs[0]`` (TF1's ``_ReshapeToInput``)."""
    return reshape(dy, _shape_vector(op.inputs[0]))


def _shape_vector(t: Tensor, dtype: Any = _dt.int32) -> Tensor:
    """``t``'s shape as a 1-D int tensor: a constant when static, else ``gf.shape``."""
    d = _dt.as_dtype(dtype)
    if t.shape.is_fully_defined():
        return constant(np.array(t.shape.values, dtype=d.np).reshape(-1), dtype=d)
    return shape(t, out_type=d)


def _dims_or_tensors(t: Tensor, dtype: Any = _dt.int32, rank_: int | None = None
                     ) -> list[Any]:
    """``t``'s dims: ints where static, scalar tensors ``shape(t)[i]`` where not."""
    dims = t.shape.values
    if dims is None:
        s = shape(t, out_type=dtype)
        return [s[i] for i in range(rank_ or 0)]
    s = None
    out: list[Any] = []
    for i, d in enumerate(dims):
        if d is None:
            if s is None:
                s = shape(t, out_type=dtype)
            out.append(s[i])
        else:
            out.append(d)
    return out


def _dim_or_tensor(t: Tensor, axis: int, dtype: Any = _dt.int32) -> Any:
    """Dim ``axis`` of ``t``: an int if static, else the scalar tensor ``shape(t)[axis]``."""
    dims = t.shape.values
    if dims is not None and dims[axis] is not None:
        return dims[axis]
    return shape(t, out_type=dtype)[axis]


def _int_vector(items: Sequence[Any], dtype: Any = _dt.int32) -> Tensor:
    """A 1-D int tensor from ints and scalar int tensors (a constant if all are ints)."""
    from graphflow.ops.math_ops import cast

    d = _dt.as_dtype(dtype)
    if all(not isinstance(v, Tensor) for v in items):
        return constant(np.array([int(v) for v in items], dtype=d.np).reshape(-1), dtype=d)
    return stack([cast(v, d) if isinstance(v, Tensor) else int(v) for v in items], dtype=d)


def _static_grad_axis(axis_t: Tensor, what: str) -> int:
    a = _partial_scalar(axis_t)
    if a is None:
        raise errors.ShapeError(None, axis_t.op, f"the gradient of {what} needs its axis "
                                                 "known when the graph is built")
    return int(a)


# --- names --------------------------------------------------------------------------
# Ops defined in graphflow.ops.indexing_ops that TF1 keeps in array_ops; looked up
# lazily (indexing_ops imports this module).
_FROM_INDEXING = ("gather", "gather_nd", "scatter_nd", "slice", "strided_slice")


def __getattr__(name: str) -> Any:
    if name == "range":
        return _range
    if name in _FROM_INDEXING:
        from graphflow.ops import indexing_ops

        return getattr(indexing_ops, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "concat", "expand_dims", "eye", "fill", "identity", "one_hot", "ones", "ones_like", "pad",
    "range", "rank", "reshape", "shape", "size", "split", "squeeze", "stack", "stop_gradient",
    "tile", "transpose", "unstack", "zeros", "zeros_like",
]
