"""Segment reductions: ``unsorted_segment_sum`` (the dense adjoint of gather)."""

from __future__ import annotations

from typing import Any

import numpy as np

from graphflow.framework import dtypes as _dt
from graphflow.framework.graph import Tensor
from graphflow.framework.op_def import OPAQUE, OpDef, register, shape_error
from graphflow.framework.tensor_shape import TensorShape, unknown_shape
from graphflow.ops import rules
from graphflow.ops.array_ops import (
    _partial_scalar,
    _require_scalar,
    _run_error,
)
from graphflow.ops.building import make, op_scope, to_tensor

__all__ = ["unsorted_segment_sum"]

_INDEX_DTYPES = (_dt.int32, _dt.int64)


@register
class UnsortedSegmentSum(OpDef):
    """Sums slices of ``data`` into ``num_segments`` rows chosen by ``segment_ids``.

    ``output[i, ...] = sum of data[j..., ...] over j with segment_ids[j...] == i``;
    ``segment_ids.shape`` is a prefix of ``data.shape``, negative ids are dropped and
    rows no id selects are 0 (TF1 semantics).
    """

    kind = OPAQUE

    @staticmethod
    def grad(op, dy):
        return [_gather_drop_negatives(dy, op.inputs[1]), None, None]

    def infer(self, op):
        data, ids, num = op.inputs
        rules.check_dtype(data, _dt.NUMERIC, "data")
        rules.check_dtype(ids, _INDEX_DTYPES, "segment_ids")
        rules.check_dtype(num, _INDEX_DTYPES, "num_segments")
        _require_scalar(num, "num_segments")
        n = _partial_scalar(num)
        if n is not None and n < 0:
            raise shape_error(f"num_segments must be non-negative, got {n}")
        dd, idd = data.shape.values, ids.shape.values
        if dd is None or idd is None:
            return [(data.dtype, unknown_shape())]
        k = len(idd)
        if k > len(dd) or not TensorShape(dd[:k]).is_compatible_with(idd):
            raise shape_error(f"data.shape = {data.shape} does not start with "
                              f"segment_ids.shape = {ids.shape}")
        return [(data.dtype, TensorShape([n] + list(dd[k:])))]

    def reference(self, op, inputs, ctx):
        data, ids, num = inputs
        n = int(num)
        if n < 0:
            raise _run_error(f"Input num_segments == {n} must not be negative.")
        k = ids.ndim
        if data.shape[:k] != ids.shape:
            raise _run_error(f"data.shape = {list(data.shape)} does not start with "
                             f"segment_ids.shape = {list(ids.shape)}")
        flat = ids.reshape(-1).astype(np.int64)
        rows = data.reshape((flat.size,) + data.shape[k:])
        bad = flat >= n
        if np.any(bad):
            j = int(np.argmax(bad))
            pos = ",".join(str(int(i)) for i in np.unravel_index(j, ids.shape)) if k else ""
            raise _run_error(f"segment_ids[{pos}] = {int(flat[j])} is out of range [0, {n})")
        keep = flat >= 0
        out = np.zeros((n,) + data.shape[k:], dtype=data.dtype)
        np.add.at(out, flat[keep], rows[keep])
        return out


def unsorted_segment_sum(data: Any, segment_ids: Any, num_segments: Any,
                         name: str | None = None) -> Tensor:
    """Sums ``data`` over segments (TF1's ``tf.math.unsorted_segment_sum``).

    ``output[i, ...] = sum(data[j..., ...] for j where segment_ids[j...] == i)``.

    Args:
      data: a numeric tensor.
      segment_ids: an int32/int64 tensor whose shape is a prefix of ``data``'s;
        negative ids are dropped.
      num_segments: a scalar int (or int32/int64 tensor): the number of rows.
      name: op name.

    Returns:
      A tensor of shape ``[num_segments] + data.shape[rank(segment_ids):]``.

    Raises:
      ValueError: if the shapes do not fit (when known at build time).
      errors.InvalidArgumentError: at run time, for an id >= num_segments.
    """
    with op_scope(name, "UnsortedSegmentSum", [data, segment_ids, num_segments]) as scope:
        d = to_tensor(data, name="data")
        i = to_tensor(segment_ids, name="segment_ids")
        if isinstance(num_segments, Tensor) or hasattr(num_segments, "_as_graph_element"):
            n = to_tensor(num_segments)
        else:
            n = to_tensor(num_segments, dtype=i.dtype if i.dtype in _INDEX_DTYPES else None,
                          name="num_segments")
        return make("UnsortedSegmentSum", [d, i, n], name=scope)


def _gather_drop_negatives(params: Tensor, ids: Tensor) -> Tensor:
    """``gather(params, ids)`` with zeros where ids are negative (TF1's helper of that name).

    TF1 gathers at ``max(ids, 0)`` and masks; gathering from ``params`` with one zero
    row appended, negative ids sent to it, gives the same values and also works when
    ``params`` has no rows.
    """
    from graphflow.ops.array_ops import _dim_or_tensor, concat, pad, rank, stack, zeros
    from graphflow.ops.constant_op import constant
    from graphflow.ops.indexing_ops import gather
    from graphflow.ops.math_ops import less, where_v2

    r = params.shape.ndims
    if r is not None:
        paddings = constant([[0, 1]] + [[0, 0]] * (r - 1), dtype=_dt.int32)
    else:
        rest = zeros(stack([rank(params) - 1, 2]), dtype=_dt.int32)
        paddings = concat([constant([[0, 1]], dtype=_dt.int32), rest], 0)
    padded = pad(params, paddings)
    n = _dim_or_tensor(params, 0, ids.dtype)
    return gather(padded, where_v2(less(ids, 0), n, ids))
