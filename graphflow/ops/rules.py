"""Shared dtype/shape rules used by op registrations' ``infer``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from graphflow.framework import dtypes as _dt
from graphflow.framework.op_def import dtype_error, shape_error
from graphflow.framework.tensor_shape import TensorShape, broadcast_shapes, unknown_shape


def check_dtype(t: Any, allowed: Iterable[_dt.DType], what: str = "input") -> _dt.DType:
    """Raises a DTypeError unless ``t.dtype`` is in ``allowed``."""
    allowed = tuple(allowed)
    if t.dtype not in allowed:
        names = ", ".join(d.name for d in allowed)
        raise dtype_error(f"{what} {t.name} has dtype {t.dtype.name}; expected one of: {names}")
    return t.dtype


def same_dtype(*ts: Any) -> _dt.DType:
    """Raises a DTypeError unless all tensors share one dtype (TF1 never promotes)."""
    d = ts[0].dtype
    for t in ts[1:]:
        if t.dtype is not d:
            raise dtype_error(
                f"inputs must have the same dtype, got {ts[0].name} of {d.name} and "
                f"{t.name} of {t.dtype.name}; use gf.cast to convert one of them")
    return d


def broadcast(*ts: Any) -> TensorShape:
    """The broadcast static shape of tensors, or a ShapeError naming the shapes."""
    shape = ts[0].shape
    for t in ts[1:]:
        out = broadcast_shapes(shape, t.shape)
        if out is None:
            shapes = " and ".join(f"{x.name} {x.shape}" for x in ts)
            raise shape_error(f"shapes cannot be broadcast together: {shapes}")
        shape = out
    return shape


def rank_of(t: Any) -> int | None:
    return t.shape.ndims


def require_rank(t: Any, rank: int, what: str = "input") -> None:
    r = t.shape.ndims
    if r is not None and r != rank:
        raise shape_error(f"{what} {t.name} must have rank {rank}, got shape {t.shape}")


def require_rank_at_least(t: Any, rank: int, what: str = "input") -> None:
    r = t.shape.ndims
    if r is not None and r < rank:
        raise shape_error(f"{what} {t.name} must have rank >= {rank}, got shape {t.shape}")


def reduce_shape(shape: TensorShape, axes: tuple[int, ...] | None, keepdims: bool) -> TensorShape:
    """Static shape after reducing ``axes`` (None: all)."""
    dims = shape.values
    if axes is None and not keepdims:
        return TensorShape([])
    if dims is None:
        return unknown_shape()
    if axes is None:
        return TensorShape([1] * len(dims))
    out = []
    for i, d in enumerate(dims):
        if i in axes:
            if keepdims:
                out.append(1)
        else:
            out.append(d)
    return TensorShape(out)


def broadcast_shapes_or_error(a: TensorShape, b: TensorShape, ta: Any, tb: Any) -> TensorShape:
    """Broadcast of two static shapes; a ShapeError naming tensors ``ta``/``tb`` if impossible."""
    out = broadcast_shapes(a, b)
    if out is None:
        raise shape_error(f"shapes {a} (of {ta.name}) and {b} (of {tb.name}) cannot be broadcast")
    return out
