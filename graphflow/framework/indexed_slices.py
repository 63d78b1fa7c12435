"""``IndexedSlices``: a sparse gradient, rows ``values`` at ``indices`` of a ``dense_shape`` tensor.

TF1's ``tf.IndexedSlices``. The gradient of ``gather(params, ids)`` (and so of
``embedding_lookup``) with respect to ``params`` is one: only the gathered rows
are non-zero, so ``gf.gradients`` returns the gathered rows' gradients and their
row numbers instead of a params-sized array. Optimizers apply it row by row
(``ScatterSub``, ``SparseApply*``); anything else converts it to a dense tensor
with ``UnsortedSegmentSum`` (``gf.convert_to_tensor`` does that), duplicate
indices adding up.

``Session.run`` of an IndexedSlices returns an :class:`IndexedSlicesValue`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from graphflow.framework import dtypes as _dt
from graphflow.framework import errors
from graphflow.framework.graph import Tensor, register_tensor_conversion_function
from graphflow.framework.tensor_shape import TensorShape, unknown_shape


class IndexedSlicesValue(NamedTuple):
    """The value of an :class:`IndexedSlices` fetched with ``Session.run`` (TF1's namedtuple)."""

    values: np.ndarray
    indices: np.ndarray
    dense_shape: np.ndarray | None


class IndexedSlices:
    """A sparse representation of a tensor: slices ``values`` at rows ``indices``.

    The dense tensor it stands for has shape ``dense_shape`` and
    ``dense[indices[i], ...] += values[i, ...]`` (rows may repeat: they add).

    Args:
      values: a Tensor of shape ``[N] + dense_shape[1:]``.
      indices: a 1-D int32/int64 Tensor of N row numbers.
      dense_shape: an optional 1-D int Tensor, the dense tensor's shape.

    Raises:
      TypeError: if ``values`` or ``indices`` is not a Tensor, or indices are not ints.
    """

    def __init__(self, values: Tensor, indices: Tensor, dense_shape: Tensor | None = None) -> None:
        if not isinstance(values, Tensor) or not isinstance(indices, Tensor):
            raise TypeError("IndexedSlices needs Tensors for values and indices, got "
                            f"{type(values).__name__} and {type(indices).__name__}")
        if indices.dtype not in (_dt.int32, _dt.int64):
            raise TypeError(f"IndexedSlices indices must be int32 or int64, got "
                            f"{indices.dtype.name}")
        if dense_shape is not None and not isinstance(dense_shape, Tensor):
            raise TypeError("IndexedSlices dense_shape must be a Tensor or None, got "
                            f"{type(dense_shape).__name__}")
        self._values = values
        self._indices = indices
        self._dense_shape = dense_shape

    @property
    def values(self) -> Tensor:
        """The slices: a Tensor of shape ``[N] + dense_shape[1:]``."""
        return self._values

    @property
    def indices(self) -> Tensor:
        """The row of each slice: a 1-D int Tensor of length N."""
        return self._indices

    @property
    def dense_shape(self) -> Tensor | None:
        """The shape of the dense tensor, a 1-D int Tensor (or None)."""
        return self._dense_shape

    @property
    def name(self) -> str:
        return self._values.name

    @property
    def dtype(self) -> _dt.DType:
        return self._values.dtype

    @property
    def op(self) -> Any:
        return self._values.op

    @property
    def graph(self) -> Any:
        return self._values.graph

    @property
    def device(self) -> str:
        return ""

    @property
    def shape(self) -> TensorShape:
        """The static shape of the dense tensor, as far as it is known."""
        from graphflow.ops.constant_op import constant_value_as_shape

        if self._dense_shape is None:
            return unknown_shape()
        s = constant_value_as_shape(self._dense_shape)
        v = self._values.shape
        if s.ndims is not None and v.ndims is not None and s.ndims == v.ndims:
            s = TensorShape([s.values[0]] + list(v.values[1:])).merge_with(s)
        return s

    def get_shape(self) -> TensorShape:
        return self.shape

    def consumers(self) -> list[Any]:
        return self._values.consumers() + self._indices.consumers()

    def __neg__(self) -> IndexedSlices:
        from graphflow.ops.math_ops import negative

        return IndexedSlices(negative(self._values), self._indices, self._dense_shape)

    def __str__(self) -> str:
        shape = f", dense_shape={self._dense_shape}" if self._dense_shape is not None else ""
        return f"IndexedSlices(indices={self._indices}, values={self._values}{shape})"

    __repr__ = __str__

    def __bool__(self) -> bool:
        raise TypeError("Using a graphflow IndexedSlices as a Python bool is not allowed.")


def _rows(s: IndexedSlices) -> Any:
    """The number of rows of the dense tensor: an int if known at build time, else a tensor."""
    from graphflow.ops.constant_op import constant_value

    value = constant_value(s.dense_shape)
    if value is not None:
        return int(value[0])
    return s.dense_shape[0]


def to_dense(s: IndexedSlices, name: str | None = None) -> Tensor:
    """The dense tensor ``s`` stands for: ``unsorted_segment_sum(values, indices, rows)``.

    TF1's ``_IndexedSlicesToTensor``; repeated indices add up.

    Args:
      s: the IndexedSlices.
      name: op name.

    Returns:
      A Tensor of shape ``dense_shape``.

    Raises:
      ValueError: if ``s`` has no ``dense_shape``.
    """
    from graphflow.ops.segment_ops import unsorted_segment_sum

    if s.dense_shape is None:
        raise errors.GraphValueError(
            None, None, f"Tensor conversion requested for IndexedSlices without dense_shape: "
                        f"{s.name}")
    out = unsorted_segment_sum(s.values, s.indices, _rows(s), name=name)
    shape = s.shape
    if shape.ndims is not None:
        out.set_shape(shape)
    return out


def _to_tensor(value: IndexedSlices, dtype: Any = None, name: str | None = None,
               as_ref: bool = False) -> Tensor:
    if dtype is not None and _dt.as_dtype(dtype) is not value.dtype:
        raise errors.DTypeError(
            None, None, f"Tensor conversion requested dtype {_dt.as_dtype(dtype).name} for "
                        f"IndexedSlices with dtype {value.dtype.name}")
    return to_dense(value, name=name)


register_tensor_conversion_function(IndexedSlices, _to_tensor)


def concat_slices(parts: list[IndexedSlices]) -> IndexedSlices:
    """One IndexedSlices holding all of ``parts`` (TF1's aggregation of sparse gradients).

    The values and indices are concatenated (indices cast to int64 if their
    dtypes differ); the dense shape is the first part's.
    """
    from graphflow.ops.array_ops import concat
    from graphflow.ops.math_ops import cast

    idx = [p.indices for p in parts]
    if len({i.dtype for i in idx}) > 1:
        idx = [cast(i, _dt.int64) for i in idx]
    return IndexedSlices(concat([p.values for p in parts], 0), concat(idx, 0),
                         parts[0].dense_shape)


def convert_to_tensor_or_indexed_slices(value: Any, dtype: Any = None,
                                        name: str | None = None) -> Any:
    """``value`` if it is an IndexedSlices, else ``gf.convert_to_tensor(value)`` (TF1's)."""
    from graphflow.framework.graph import convert_to_tensor

    if isinstance(value, IndexedSlices):
        if dtype is not None and _dt.as_dtype(dtype) is not value.dtype:
            raise errors.DTypeError(
                None, None, f"Tensor conversion requested dtype {_dt.as_dtype(dtype).name} "
                            f"for IndexedSlices with dtype {value.dtype.name}")
        return value
    return convert_to_tensor(value, dtype=dtype, name=name)


__all__ = ["IndexedSlices", "IndexedSlicesValue", "concat_slices",
           "convert_to_tensor_or_indexed_slices", "to_dense"]
