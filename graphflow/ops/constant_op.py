"""Constants, placeholders and the conversion of Python/NumPy values to tensors."""

from __future__ import annotations

from typing import Any

import numpy as np

from graphflow.framework import dtypes as _dt
from graphflow.framework import errors
from graphflow.framework.graph import Tensor, register_tensor_conversion_function
from graphflow.framework.op_def import SOURCE, OpDef, register, shape_error
from graphflow.framework.tensor_shape import TensorShape, as_shape
from graphflow.ops.building import make, op_scope

_INT32 = np.iinfo(np.int32)


def _infer_np_dtype(value: Any) -> np.dtype:
    """TF1's choice of dtype for a Python value: float32 / int32 unless NumPy says otherwise."""
    if isinstance(value, (np.ndarray, np.generic)):
        if value.dtype.kind in "biuf":
            d = _dt.as_dtype(value.dtype) if value.dtype in _dt._BY_NP else None
            if d is None:
                raise TypeError(f"Unsupported NumPy dtype {value.dtype}")
            return value.dtype
        raise TypeError(f"Cannot make a tensor from a NumPy array of dtype {value.dtype}")
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        return np.dtype(np.float32)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < _INT32.min or arr.max() > _INT32.max):
            return np.dtype(np.int64)
        return np.dtype(np.int32)
    if arr.dtype.kind == "b":
        return np.dtype(np.bool_)
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise TypeError(f"Cannot convert {value!r} to a numeric tensor")
    raise TypeError(f"Unsupported value {value!r} (NumPy dtype {arr.dtype})")


def to_numpy(value: Any, dtype: _dt.DType | None, python_floats_to_int: bool = False
             ) -> np.ndarray:
    """Converts a Python/NumPy value to an array of ``dtype`` without losing data.

    Raises:
      TypeError: if the value does not fit the dtype (a non-integral or, unless
        ``python_floats_to_int``, any Python float, or an out-of-range int into an
        int type, a number into bool, ...), as TF1 does.
    """
    try:
        src = np.asarray(value)
    except ValueError as e:  # ragged nested lists
        raise TypeError(f"Cannot convert {value!r} to a tensor: {e}") from None
    if src.dtype == object or src.dtype.kind in "USVmMc":
        raise TypeError(f"Cannot convert {value!r} to a numeric tensor")
    if dtype is None:
        dtype = _dt.as_dtype(_infer_np_dtype(value))
    target = dtype.np
    if src.dtype == target:
        return src
    if src.size == 0 and not isinstance(value, (np.ndarray, np.generic)):
        return src.astype(target)  # an empty Python list takes any dtype (NumPy makes it float)
    k, tk = src.dtype.kind, target.kind
    bad = None
    if tk == "b" and k != "b":
        bad = "a number cannot become a bool"
    elif k == "b" and tk != "b":
        bad = "a bool cannot become a number"
    elif tk in "iu" and k == "f":
        from_numpy = isinstance(value, (np.ndarray, np.generic)) or python_floats_to_int
        if not from_numpy:
            bad = "Python floats do not convert to integer tensors"
        elif not np.all(np.isfinite(src)) or not np.all(np.equal(np.floor(src), src)):
            bad = "it is not integral"
        src = src.astype(np.float64)
    if bad is None and tk in "iu" and src.size:
        info = np.iinfo(target)
        if src.min() < info.min or src.max() > info.max:
            bad = f"it is out of range for {dtype.name}"
    if bad is not None:
        shown = value if src.size <= 8 else f"array of shape {src.shape}"
        raise TypeError(f"Expected {dtype.name}, got {shown!r} of type "
                        f"'{type(value).__name__}' instead: {bad}.")
    return src.astype(target)


@register
class Const(OpDef):
    """A constant tensor; attr ``value`` holds a read-only array."""

    kind = SOURCE

    def infer(self, op):
        v = op.get_attr("value")
        return [(op.get_attr("dtype"), TensorShape(v.shape))]

    def reference(self, op, inputs, ctx):
        return op.get_attr("value")


@register
class Placeholder(OpDef):
    """A value that must be fed; attrs ``dtype`` and ``shape``."""

    kind = SOURCE

    def infer(self, op):
        return [(op.get_attr("dtype"), op.get_attr("shape"))]

    def reference(self, op, inputs, ctx):
        shape = op.get_attr("shape")
        dims = "<unknown>" if shape.ndims is None else \
            "[" + ",".join("?" if d is None else str(d) for d in shape.values) + "]"
        raise errors.InvalidArgumentError(
            None, op,
            f"You must feed a value for placeholder tensor '{op.name}' with dtype "
            f"{op.get_attr('dtype').name} and shape {dims}")


@register
class PlaceholderWithDefault(OpDef):
    """Passes its input through unless fed; attr ``shape`` may be less specific."""

    kind = "opaque"
    grad = staticmethod(lambda op, dy: [dy])  # TF1: _IdGrad

    def infer(self, op):
        x = op.inputs[0]
        shape = op.get_attr("shape")
        if not shape.is_compatible_with(x.shape):
            raise shape_error(f"default value of shape {x.shape} is not compatible with the "
                              f"placeholder shape {shape}")
        return [(x.dtype, shape)]

    def reference(self, op, inputs, ctx):
        return inputs[0]


def constant(value: Any, dtype: Any = None, shape: Any = None, name: str = "Const",
             verify_shape: bool = False) -> Tensor:
    """Creates a constant tensor (TF1's ``tf.constant``).

    Args:
      value: a Python scalar, nested list, or NumPy array.
      dtype: the element type; inferred as TF1 does when None (Python floats
        give float32, Python ints int32).
      shape: optional shape; a scalar value is broadcast to it, a value with
        the same number of elements is reshaped to it, and fewer values are
        padded with the last one (TF1); more values are an error.
      name: the op name.
      verify_shape: if True, ``value`` must already have ``shape``.

    Returns:
      A Tensor produced by a ``Const`` op.

    Raises:
      TypeError: if the value does not fit ``dtype``.
      ValueError: if the value does not fit ``shape``.
    """
    d = None if dtype is None else _dt.as_dtype(dtype)
    try:
        arr = to_numpy(value, d)
    except TypeError as e:
        raise errors.DTypeError(None, None, f"constant '{name}': {e}") from None
    if d is None:
        d = _dt.as_dtype(arr.dtype)
    if shape is not None:
        target = as_shape(shape)
        if not target.is_fully_defined():
            raise errors.ShapeError(None, None, f"constant '{name}': shape {target} must be "
                                                "fully defined")
        tshape = tuple(target.values)
        if arr.shape != tshape:
            if verify_shape:
                raise errors.ShapeError(None, None, f"constant '{name}': expected shape "
                                                    f"{tshape}, value has shape {arr.shape}")
            n = int(np.prod(tshape, dtype=np.int64))
            if arr.size == 1:
                arr = np.broadcast_to(arr.reshape(()), tshape)
            elif arr.size == n:
                arr = arr.reshape(tshape)
            elif 0 < arr.size < n:
                # TF1: fewer values than the shape holds repeat the last value.
                flat = arr.reshape(-1)
                arr = np.concatenate([flat, np.repeat(flat[-1:], n - flat.size)]).reshape(tshape)
            else:
                raise errors.ShapeError(
                    None, None, f"constant '{name}': cannot make a tensor of shape {tshape} "
                                f"from {arr.size} values")
    arr = np.array(arr, dtype=d.np, copy=True)
    arr.flags.writeable = False
    return make("Const", [], {"value": arr, "dtype": d}, name=name)


def placeholder(dtype: Any, shape: Any = None, name: str | None = None) -> Tensor:
    """A tensor that must be fed at run time (TF1's ``tf.placeholder``).

    Args:
      dtype: element type.
      shape: static shape; None for any shape, None entries for any size.
      name: op name (default ``Placeholder``).

    Returns:
      A Tensor.
    """
    return make("Placeholder", [], {"dtype": _dt.as_dtype(dtype), "shape": as_shape(shape)},
                name=name or "Placeholder")


def placeholder_with_default(input: Any, shape: Any, name: str | None = None) -> Tensor:
    """A tensor that is ``input`` unless fed (TF1's ``tf.placeholder_with_default``).

    Args:
      input: the default value.
      shape: the static shape of the result, compatible with ``input``'s.
      name: op name.

    Returns:
      A Tensor.
    """
    from graphflow.framework.graph import convert_to_tensor

    with op_scope(name, "PlaceholderWithDefault", [input]) as scope:
        x = convert_to_tensor(input, name="input")
        return make("PlaceholderWithDefault", [x], {"shape": as_shape(shape)}, name=scope)


def _convert_value(value: Any, dtype: Any = None, name: str | None = None, as_ref: bool = False):
    return constant(value, dtype=dtype, name=name or "Const")


def _convert_sequence(value: Any, dtype: Any = None, name: str | None = None, as_ref: bool = False):
    # TF1 packs lists holding tensors (e.g. reshape(x, [gf.shape(x)[0], -1])).
    def has_tensor(v: Any) -> bool:
        if isinstance(v, (list, tuple)):
            return any(has_tensor(i) for i in v)
        return isinstance(getattr(v, "_as_graph_element", lambda: v)(), Tensor)

    if has_tensor(value):
        from graphflow.ops.array_ops import stack

        return stack(list(value), name=name or "packed", dtype=dtype)
    return constant(value, dtype=dtype, name=name or "Const")


register_tensor_conversion_function((list, tuple), _convert_sequence)
register_tensor_conversion_function((int, float, bool, np.ndarray, np.generic), _convert_value)


def constant_value(t: Tensor) -> np.ndarray | None:
    """The value of ``t`` if it can be computed at build time, else None (TF1's
    ``tensor_util.constant_value``). Used by shape inference."""
    if not isinstance(t, Tensor):
        return None
    op = t.op
    typ = op.type
    if typ == "Const":
        return op.get_attr("value")
    if typ in ("Identity", "StopGradient"):
        return constant_value(op.inputs[0])
    if typ == "Shape":
        s = op.inputs[0].shape
        if s.is_fully_defined():
            return np.array(s.values, dtype=t.dtype.np)
        return None
    if typ == "Size":
        n = op.inputs[0].shape.num_elements()
        return None if n is None else np.array(n, dtype=t.dtype.np)
    if typ == "Rank":
        r = op.inputs[0].shape.ndims
        return None if r is None else np.array(r, dtype=np.int32)
    if typ == "Cast":
        v = constant_value(op.inputs[0])
        return None if v is None else v.astype(t.dtype.np)
    if typ == "Pack":
        vals = [constant_value(i) for i in op.inputs]
        if any(v is None for v in vals):
            return None
        return np.stack(vals, axis=op.get_attr("axis"))
    return None


def constant_value_as_shape(t: Tensor) -> TensorShape:
    """A (partial) static shape from a 1-D shape tensor (TF1's helper of that name).

    What is known of the value comes from ``array_ops._partial_value``, the one
    place that follows shapes, stacks, concats, slices and gathers at build time.
    """
    from graphflow.framework.tensor_shape import unknown_shape
    from graphflow.ops.array_ops import _partial_value

    v = _partial_value(t)
    if v is not None and v.ndim == 1:
        return TensorShape([None if d is None or int(d) < 0 else int(d) for d in v])
    n = t.shape.values[0] if t.shape.ndims == 1 else None
    return unknown_shape(n)
