"""Slicing and gathering: slice, strided_slice (``t[...]``), gather, gather_nd, scatter_nd,
unique, and the row updates of variables scatter_add / scatter_sub / scatter_update.

gather's gradient with respect to ``params`` along axis 0 is an IndexedSlices
(TF1's ``_GatherV2Grad``); other axes give a dense gradient.
"""

from __future__ import annotations

import builtins
import math
import sys
from typing import Any, NamedTuple

import numpy as np

from graphflow.framework import dtypes as _dt
from graphflow.framework import errors
from graphflow.framework.graph import Tensor
from graphflow.framework.op_def import (
    INJECTIVE,
    OPAQUE,
    OpDef,
    dtype_error,
    register,
    shape_error,
)
from graphflow.framework.tensor_shape import Dimension, TensorShape, unknown_shape
from graphflow.ops import rules
from graphflow.ops.array_ops import (
    _dim_or_tensor,
    _dims_or_tensors,
    _int_vector,
    _is_tensorish,
    _partial_list,
    _partial_scalar,
    _require_scalar,
    _require_vector,
    _run_error,
    _shape_vector,
    ones_like,
    pad,
    reshape,
    shape,
    stack,
    transpose,
)
from graphflow.ops.building import make, op_scope, to_tensor
from graphflow.ops.constant_op import constant, constant_value, constant_value_as_shape

__all__ = ["gather", "gather_nd", "scatter_add", "scatter_nd", "scatter_sub", "scatter_update",
           "slice", "slice_helper", "strided_slice", "unique"]

_PySlice = builtins.slice  # ``slice`` below is TF1's op function
_INDEX_DTYPES = (_dt.int32, _dt.int64)
_NEW_AXIS = -1
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def _index_inputs(ts: list[Tensor], names: tuple[str, ...]) -> int | None:
    """Checks 1-D int index vectors of one dtype and equal length; returns the length."""
    for t, what in zip(ts, names):
        rules.check_dtype(t, _INDEX_DTYPES, what)
    rules.same_dtype(*ts)
    lengths = [_require_vector(t, what) for t, what in zip(ts, names)]
    known = {n for n in lengths if n is not None}
    if len(known) > 1:
        raise shape_error(
            f"Expected {', '.join(names)} to be 1-D tensors of equal size, got shapes "
            + ", ".join(str(t.shape) for t in ts))
    return known.pop() if known else None


# --- Slice ------------------------------------------------------------------------------
def _slice_dim(i: int, dim: int | None, b: int | None, s: int | None, fail: Any) -> int | None:
    """Output size of dimension ``i`` of Slice (None if unknown); raises ``fail(msg)``."""
    if b is not None and b < 0 or b is not None and dim is not None and b > dim:
        raise fail(f"Expected begin[{i}] in [0, {dim}], but got {b}")
    if s is not None and s < -1:
        raise fail(f"Expected size[{i}] >= -1, but got {s}")
    if s == -1:
        return None if dim is None or b is None else dim - b
    if s is not None and b is not None and dim is not None and b + s > dim:
        raise fail(f"Expected size[{i}] in [0, {dim - b}], but got {s}")
    return s


@register
class Slice(OpDef):
    """Extracts ``input[begin[i] : begin[i] + size[i]]`` per dim; size -1 means to the end."""

    kind = INJECTIVE

    @staticmethod
    def grad(op, dy):
        # TF1: pad dy with begin zeros before and shape(x) - shape(y) - begin after.
        x, begin, _ = op.inputs
        y = op.outputs[0]
        bv = constant_value(begin)
        it = begin.dtype
        if bv is not None and x.shape.is_fully_defined() and y.shape.is_fully_defined():
            rows = [[int(b), int(dx - dn - b)]
                    for b, dx, dn in zip(bv, x.shape.values, y.shape.values)]
            paddings = constant(np.array(rows, dtype=it.np).reshape(-1, 2), dtype=it)
        else:
            after = shape(x, out_type=it) - shape(y, out_type=it) - begin
            paddings = stack([begin, after], axis=1)
        g = pad(dy, paddings)
        if x.shape.ndims is not None:
            g.set_shape(x.shape)
        return [g, None, None]

    def infer(self, op):
        x, begin, size = op.inputs
        n = _index_inputs([begin, size], ("begin", "size"))
        r = x.shape.ndims
        if r is not None and n is not None and n != r:
            raise shape_error(f"Expected begin and size to have {r} elements (the rank of "
                              f"{x.name}, shape {x.shape}), got {n}")
        r = r if r is not None else n
        if r is None:
            return [(x.dtype, unknown_shape())]
        dims = x.shape.values or (None,) * r
        bs = _partial_list(begin) or [None] * r
        ss = _partial_list(size) or [None] * r
        out = [_slice_dim(i, d, b, s, shape_error) for i, (d, b, s) in enumerate(zip(dims, bs, ss))]
        return [(x.dtype, TensorShape(out))]

    def reference(self, op, inputs, ctx):
        x, begin, size = inputs
        if begin.shape != (x.ndim,) or size.shape != (x.ndim,):
            raise _run_error(f"Expected begin and size arguments to be 1-D tensors of size "
                             f"{x.ndim}, but got shapes {list(begin.shape)} and "
                             f"{list(size.shape)} instead.")
        index = []
        for i, (d, b, s) in enumerate(zip(x.shape, begin.tolist(), size.tolist())):
            n = _slice_dim(i, d, b, s, _run_error)
            index.append(_PySlice(b, b + n))
        return x[tuple(index)]


def slice(input_: Any, begin: Any, size: Any, name: str | None = None) -> Tensor:  # noqa: A001
    """Extracts a slice of ``input_`` (TF1's ``tf.slice``).

    ``output[i0, ...] = input_[begin[0] + i0, ...]`` with ``size[j]`` elements
    along dim j; ``size[j] == -1`` takes everything from ``begin[j]`` on.

    Args:
      input_: a tensor of rank R.
      begin: R ints (list or 1-D int32/int64 tensor), each in ``[0, dim]``.
      size: R ints, each in ``[0, dim - begin]`` or -1.
      name: op name.

    Returns:
      A tensor of ``input_``'s dtype.

    Raises:
      ValueError: if begin/size do not fit the input (when known at build time).
      errors.InvalidArgumentError: at run time, for the same reasons.
    """
    with op_scope(name, "Slice", [input_, begin, size]) as scope:
        x = to_tensor(input_, name="input")
        b, s = _int_vectors([begin, size], ("begin", "size"))
        return make("Slice", [x, b, s], name=scope)


def _int_vectors(values: list[Any], names: tuple[str, ...]) -> list[Tensor]:
    """Converts lists/tensors of indices; Python lists take a tensor's dtype if one is given."""
    want = next((to_tensor(v).dtype for v in values if _is_tensorish(v)), _dt.int32)
    out = []
    for v, what in zip(values, names):
        if _is_tensorish(v):
            out.append(to_tensor(v))
        elif isinstance(v, (list, tuple)) and any(_is_tensorish(i) for i in v):
            out.append(stack(list(v), name=what, dtype=want))
        else:
            try:
                out.append(to_tensor(v, dtype=want, name=what))
            except TypeError as e:
                raise errors.DTypeError(None, None, f"{what}: {e}") from None
    return out


# --- StridedSlice -----------------------------------------------------------------------
def _expand_spec(rank: int, n: int, masks: dict[str, int], fail: Any
                 ) -> tuple[list[tuple[int | None, bool, bool, bool]], list[int]]:
    """TF's sparse-to-dense expansion of a strided-slice spec of ``n`` entries.

    Returns ``dense``, one ``(sparse_index or None, begin_masked, end_masked, shrink)``
    per input dim (None: filled in by the ellipsis), and ``order``: the dense dims
    and new axes (``_NEW_AXIS``) in the order the spec lists them.
    """
    ellipsis = masks["ellipsis_mask"]
    new_axis = masks["new_axis_mask"]
    if ellipsis & (ellipsis - 1):
        raise fail("Multiple ellipses in slice spec not allowed")
    seen = False
    add_after = 0
    for i in range(n):
        if seen and new_axis >> i & 1:
            add_after += 1
        if ellipsis >> i & 1:
            seen = True
    if not seen:  # an implicit ellipsis at the end covers the remaining dims
        ellipsis |= 1 << n
        n += 1
    dense: list[tuple[int | None, bool, bool, bool]] = []
    order: list[int] = []
    for i in range(n):
        if ellipsis >> i & 1:
            stop = min(rank - (n - i) + 1 + add_after, rank)
            while len(dense) < stop:
                order.append(len(dense))
                dense.append((None, True, True, False))
        elif new_axis >> i & 1:
            order.append(_NEW_AXIS)
        else:
            if len(dense) == rank:
                raise fail(f"Index out of range using input dim {rank}; input has only {rank} "
                           "dims")
            order.append(len(dense))
            dense.append((i, bool(masks["begin_mask"] >> i & 1),
                          bool(masks["end_mask"] >> i & 1),
                          bool(masks["shrink_axis_mask"] >> i & 1)))
    return dense, order


def _strided_dim(i: int, dim: int | None, b: int | None, e: int | None, s: int | None,
                 begin_masked: bool, end_masked: bool, shrink: bool, fail: Any
                 ) -> tuple[int | None, Any]:
    """One dense dim of a strided slice: (size or None, NumPy index or None if unknown)."""
    if s is not None and s == 0:
        raise fail(f"strides[{i}] must be non-zero")
    if shrink and s is not None and s < 0:
        raise fail("only stride 1 allowed on non-range indexing.")
    if shrink:
        if dim is None or b is None:
            return 1, None
        x = b + dim if b < 0 else b
        if not 0 <= x < dim:
            raise fail(f"slice index {b} of dimension {i} out of bounds.")
        return 1, x
    if s is None or dim is None:
        return None, None
    lo, hi = (0, dim) if s > 0 else (-1, dim - 1)

    def canonical(v: int | None, masked: bool, is_end: bool) -> int | None:
        if masked:
            return (hi if is_end else lo) if s > 0 else (lo if is_end else hi)
        if v is None:
            return None
        v = v + dim if v < 0 else v
        return min(max(v, lo), hi)

    cb, ce = canonical(b, begin_masked, False), canonical(e, end_masked, True)
    if cb is None or ce is None:
        return None, None
    interval = ce - cb
    if interval == 0 or (interval < 0) != (s < 0):
        return 0, _PySlice(0, 0)
    return -(-interval // s), _PySlice(cb, None if ce < 0 else ce, s)


def _strided_plan(dims: tuple[int | None, ...], begin: list[Any], end: list[Any],
                  strides: list[Any], masks: dict[str, int], fail: Any
                  ) -> tuple[list[int | None], tuple[Any, ...] | None]:
    """The output shape of a strided slice and, when everything is known, its NumPy index.

    NumPy applies ints, slices and None positionally exactly as the dense spec
    does, so the index reproduces TF's result.
    """
    dense, order = _expand_spec(len(dims), len(begin), masks, fail)
    sizes: list[int | None] = []
    index: list[Any] = []
    for d, (k, bm, em, shrink) in enumerate(dense):
        if k is None:
            sizes.append(dims[d])
            index.append(_PySlice(None))
            continue
        size, ix = _strided_dim(d, dims[d], begin[k], end[k], strides[k], bm, em, shrink, fail)
        sizes.append(size)
        index.append(ix)
    shape = [1 if o == _NEW_AXIS else sizes[o] for o in order
             if o == _NEW_AXIS or not dense[o][3]]
    if any(ix is None for ix in index):
        return shape, None
    return shape, tuple(None if o == _NEW_AXIS else index[o] for o in order)


_MASKS = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")


@register
class StridedSlice(OpDef):
    """``input[begin:end:strides]`` with TF's masks for ``...``, new axes and int indices."""

    kind = INJECTIVE

    @staticmethod
    def grad(op, dy):
        x, begin, end, strides = op.inputs
        masks = {m: op.get_attr(m) for m in _MASKS}
        g = _strided_slice_grad(_shape_vector(x, begin.dtype), begin, end, strides, dy, masks)
        return [g, None, None, None]

    def infer(self, op):
        x, begin, end, strides = op.inputs
        n = _index_inputs([begin, end, strides], ("begin", "end", "strides"))
        masks = {m: op.get_attr(m) for m in _MASKS}
        dims = x.shape.values
        if n is None or dims is None:
            return [(x.dtype, unknown_shape())]
        bs, es, ss = (_partial_list(t) or [None] * n for t in (begin, end, strides))
        shape, _ = _strided_plan(dims, bs, es, ss, masks, shape_error)
        return [(x.dtype, TensorShape(shape))]

    def reference(self, op, inputs, ctx):
        x, begin, end, strides = inputs
        if not begin.shape == end.shape == strides.shape or begin.ndim != 1:
            raise _run_error(f"Expected begin, end, and strides to be 1D equal size tensors, "
                             f"but got shapes {list(begin.shape)}, {list(end.shape)}, and "
                             f"{list(strides.shape)} instead.")
        masks = {m: op.get_attr(m) for m in _MASKS}
        shape, index = _strided_plan(x.shape, begin.tolist(), end.tolist(), strides.tolist(),
                                     masks, _run_error)
        del shape
        return np.asarray(x[index])


@register
class StridedSliceGrad(OpDef):
    """The adjoint of StridedSlice: ``dy`` written into zeros of the 1-D int input ``shape``.

    Inputs ``shape, begin, end, strides, dy`` and the five masks of StridedSlice, as TF.
    """

    kind = OPAQUE

    @staticmethod
    def grad(op, g):
        _, begin, end, strides, _ = op.inputs
        masks = {m: op.get_attr(m) for m in _MASKS}
        return [None, None, None, None, strided_slice(g, begin, end, strides, **masks)]

    def infer(self, op):
        shp, begin, end, strides, dy = op.inputs
        n = _index_inputs([begin, end, strides], ("begin", "end", "strides"))
        rules.check_dtype(shp, _INDEX_DTYPES, "shape")
        rules.same_dtype(shp, begin)
        _require_vector(shp, "shape")
        out = constant_value_as_shape(shp)
        if out.ndims is not None and n is not None:
            bs, es, ss = (_partial_list(t) or [None] * n for t in (begin, end, strides))
            masks = {m: op.get_attr(m) for m in _MASKS}
            sliced, _ = _strided_plan(out.values, bs, es, ss, masks, shape_error)
            if not dy.shape.is_compatible_with(sliced):
                raise shape_error(f"dy {dy.name} has shape {dy.shape}, but slicing shape "
                                  f"{out} gives {TensorShape(sliced)}")
        return [(dy.dtype, out)]

    def reference(self, op, inputs, ctx):
        shp, begin, end, strides, dy = inputs
        dims = tuple(int(d) for d in shp)
        if any(d < 0 for d in dims):
            raise _run_error(f"shape {list(dims)} must be non-negative")
        if not begin.shape == end.shape == strides.shape or begin.ndim != 1:
            raise _run_error(f"Expected begin, end, and strides to be 1D equal size tensors, "
                             f"but got shapes {list(begin.shape)}, {list(end.shape)}, and "
                             f"{list(strides.shape)} instead.")
        masks = {m: op.get_attr(m) for m in _MASKS}
        sliced, index = _strided_plan(dims, begin.tolist(), end.tolist(), strides.tolist(),
                                      masks, _run_error)
        if tuple(sliced) != dy.shape:
            raise _run_error(f"shape of dy {list(dy.shape)} does not match the slice "
                             f"{sliced} of shape {list(dims)}")
        out = np.zeros(dims, dtype=dy.dtype)
        out[index] = dy  # a basic index: every element of dy has its own place
        return out


def _strided_slice_grad(shape_: Tensor, begin: Tensor, end: Tensor, strides: Tensor,
                        dy: Tensor, masks: dict[str, int], name: str | None = None) -> Tensor:
    """Builds a ``StridedSliceGrad`` op (TF's ``array_ops.strided_slice_grad``)."""
    with op_scope(name, "StridedSliceGrad", [shape_, begin, end, strides, dy]) as scope:
        return make("StridedSliceGrad", [shape_, begin, end, strides, dy], dict(masks),
                    name=scope)


def strided_slice(input_: Any, begin: Any, end: Any, strides: Any = None, begin_mask: int = 0,
                  end_mask: int = 0, ellipsis_mask: int = 0, new_axis_mask: int = 0,
                  shrink_axis_mask: int = 0, var: Any = None, name: str | None = None
                  ) -> Tensor:
    """Extracts a strided slice of ``input_`` (TF1's ``tf.strided_slice``).

    Entry i of ``begin``/``end``/``strides`` applies to one dimension, with TF's
    semantics: negative indices count from the end, out-of-range bounds are
    clamped, negative strides walk backwards. Bit i of the masks changes entry i:
    ``begin_mask``/``end_mask`` ignore begin[i]/end[i] (take the widest range),
    ``ellipsis_mask`` makes it ``...`` (at most one bit), ``new_axis_mask`` inserts a
    dimension of size 1, ``shrink_axis_mask`` takes the single index begin[i] and
    removes the dimension. ``t[...]`` builds this op through :func:`slice_helper`.

    Args:
      input_: the tensor to slice.
      begin: 1-D int32/int64 list or tensor.
      end: like ``begin``, of the same length.
      strides: like ``begin``; default all ones.
      begin_mask, end_mask, ellipsis_mask, new_axis_mask, shrink_axis_mask: int bitmasks.
      var: accepted for TF1 compatibility (sliced assignment is not supported).
      name: op name.

    Returns:
      A tensor of ``input_``'s dtype.

    Raises:
      ValueError: for a zero stride, an index out of bounds on a shrunk dimension, more
        than one ellipsis or more indices than dims, when known at build time.
      errors.InvalidArgumentError: at run time, for the same reasons.
    """
    with op_scope(name, "StridedSlice", [input_, begin, end, strides]) as scope:
        x = to_tensor(input_, name="input")
        if strides is None:
            if _is_tensorish(begin):
                strides = ones_like(begin)
            else:
                strides = [1] * len(begin)
        b, e, s = _int_vectors([begin, end, strides], ("begin", "end", "strides"))
        attrs = {m: int(v) for m, v in zip(_MASKS, (begin_mask, end_mask, ellipsis_mask,
                                                     new_axis_mask, shrink_axis_mask))}
        return make("StridedSlice", [x, b, e, s], attrs, name=scope)


# --- Tensor.__getitem__ --------------------------------------------------------------------
_SLICE_TYPE_ERROR = ("Only integers, slices (`:`), ellipsis (`...`), gf.newaxis (`None`) and "
                     "scalar gf.int32/gf.int64 tensors are valid indices")


def _check_index(idx: Any) -> Any:
    """A valid index as an int or a scalar int tensor; TypeError otherwise (TF1's rule)."""
    if isinstance(idx, Dimension):
        if idx.value is None:
            raise errors.DTypeError(None, None, f"strided_slice: {_SLICE_TYPE_ERROR}, got an "
                                                "unknown Dimension")
        return idx.value
    if isinstance(idx, (int, np.integer)):
        return int(idx)
    if _is_tensorish(idx):
        t = to_tensor(idx)
        if t.dtype in _INDEX_DTYPES and t.shape.ndims in (None, 0):
            return t
    raise errors.DTypeError(None, None, f"strided_slice: {_SLICE_TYPE_ERROR}, got {idx!r}")


def slice_helper(tensor: Any, slice_spec: Any, var: Any = None) -> Tensor:
    """``tensor[slice_spec]``: NumPy-style basic indexing as TF1's ``Tensor.__getitem__``.

    Supports ints (negative counting from the end), slices with any start, stop
    and step (negative ones included), ``gf.newaxis``/None, one Ellipsis ``...``,
    and scalar int32/int64 tensors in place of any int. A list key acts as a
    tuple, as in TF1 (not NumPy's integer-array indexing). Builds one
    ``StridedSlice`` op named ``strided_slice``.

    Args:
      tensor: the tensor (or Variable) to index.
      slice_spec: the key.
      var: accepted for TF1 compatibility.

    Returns:
      The sliced tensor.

    Raises:
      TypeError: for an index that is not one of the above (floats, lists of
        lists, non-scalar or non-int tensors, boolean masks).
      ValueError: an int index out of range of a known dim, more indices than
        dims, or more than one Ellipsis.
    """
    if isinstance(slice_spec, bool) or (_is_tensorish(slice_spec)
                                        and to_tensor(slice_spec).dtype is _dt.bool_) or (
            isinstance(slice_spec, np.ndarray) and slice_spec.dtype == np.bool_):
        raise errors.DTypeError(None, None, "strided_slice: boolean mask indexing is not "
                                            f"supported; {_SLICE_TYPE_ERROR}")
    if not isinstance(slice_spec, (list, tuple)):
        slice_spec = [slice_spec]
    begin: list[Any] = []
    end: list[Any] = []
    strides: list[Any] = []
    masks = dict.fromkeys(_MASKS, 0)
    for index, s in enumerate(slice_spec):
        bit = 1 << index
        if isinstance(s, _PySlice):
            if s.start is not None and (_is_tensorish(s.start) or s.start != sys.maxsize):
                begin.append(_check_index(s.start))
            else:
                begin.append(0)
                masks["begin_mask"] |= bit
            if s.stop is not None and (_is_tensorish(s.stop) or s.stop != sys.maxsize):
                end.append(_check_index(s.stop))
            else:
                end.append(0)
                masks["end_mask"] |= bit
            strides.append(1 if s.step is None else _check_index(s.step))
        elif s is Ellipsis:
            begin.append(0)
            end.append(0)
            strides.append(1)
            masks["ellipsis_mask"] |= bit
        elif s is None:
            begin.append(0)
            end.append(0)
            strides.append(1)
            masks["new_axis_mask"] |= bit
        else:
            i = _check_index(s)
            begin.append(i)
            end.append(i + 1)  # TF1 builds ``s + 1`` before opening the scope
            strides.append(1)
            masks["shrink_axis_mask"] |= bit
    with op_scope(None, "strided_slice", [tensor, *begin, *end, *strides]) as scope:
        x = to_tensor(tensor, name="input")
        if begin:
            lists = [begin, end, strides]
            values = [v for lst in lists for v in lst]
            wide = any(t.dtype is _dt.int64 if isinstance(t, Tensor) else
                       not _INT32_MIN <= t <= _INT32_MAX for t in values)
            want = _dt.int64 if wide else _dt.int32
            packed = []
            for lst, nm in zip(lists, ("stack", "stack_1", "stack_2")):
                if any(isinstance(v, Tensor) for v in lst):
                    from graphflow.ops.math_ops import cast

                    items = [cast(v, want) if isinstance(v, Tensor) else v for v in lst]
                    packed.append(stack(items, name=nm, dtype=want))
                else:
                    packed.append(constant(lst, dtype=want, name=nm))
        else:
            empty = constant([], dtype=_dt.int32)
            packed = [empty, empty, empty]
        return make("StridedSlice", [x, *packed], masks, name=scope)


# --- gather ---------------------------------------------------------------------------------
def _gather_check(indices: np.ndarray, limit: int, at: Any = ()) -> None:
    bad = (indices < 0) | (indices >= limit)
    if np.any(bad):
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        pos = ",".join(str(i) for i in tuple(at) + where)
        raise _run_error(f"indices[{pos}] = {int(indices[where])} is not in [0, {limit})")


@register
class GatherV2(OpDef):
    """``params`` indexed by ``indices`` along scalar input ``axis``; attr ``batch_dims``."""

    kind = INJECTIVE

    @staticmethod
    def grad(op, dy):
        sparse = _gather_grad_sparse(op, dy)
        return [sparse if sparse is not None else _gather_grad(op, dy), None, None]

    def infer(self, op):
        params, indices, axis_t = op.inputs
        rules.check_dtype(indices, _INDEX_DTYPES, "indices")
        rules.check_dtype(axis_t, _INDEX_DTYPES, "axis")
        _require_scalar(axis_t, "axis")
        bd = op.get_attr("batch_dims")
        pr, ir = params.shape.ndims, indices.shape.ndims
        if pr is not None and pr == 0:
            raise shape_error(f"params {params.name} must be at least 1 dimensional")
        if bd < 0 and ir is not None:
            bd += ir
        if ir is not None and not 0 <= bd <= ir:
            raise shape_error(f"batch_dims ({op.get_attr('batch_dims')}) must be in [{-ir}, "
                              f"{ir}] for indices of rank {ir}")
        a = _partial_scalar(axis_t)
        if a is not None and pr is not None:
            if not -pr <= a < pr:
                raise shape_error(f"Expected axis in the range [{-pr}, {pr}), but got {a}")
            a %= pr
        if bd < 0 or pr is None or ir is None:
            return [(params.dtype, unknown_shape())]
        if pr <= bd:
            raise shape_error(f"batch_dims ({bd}) must be less than the rank of params "
                              f"({pr})")
        pd, idd = params.shape.values, indices.shape.values
        if not TensorShape(pd[:bd]).is_compatible_with(idd[:bd]):
            raise shape_error(f"the first batch_dims ({bd}) dims of params {params.shape} and "
                              f"indices {indices.shape} must match")
        if a is None:
            return [(params.dtype, unknown_shape(pr + ir - 1 - bd))]
        if a < bd:
            raise shape_error(f"batch_dims ({bd}) must be less than or equal to axis ({a})")
        batch = TensorShape(pd[:bd]).merge_with(idd[:bd]).values
        return [(params.dtype, TensorShape(batch + pd[bd:a] + idd[bd:] + pd[a + 1:]))]

    def reference(self, op, inputs, ctx):
        params, indices, axis = inputs
        a = int(axis)
        if not -params.ndim <= a < params.ndim:
            raise _run_error(f"Expected axis in the range [{-params.ndim}, {params.ndim}), but "
                             f"got {a}")
        a %= params.ndim
        bd = op.get_attr("batch_dims")
        if bd < 0:
            bd += indices.ndim
        if not 0 <= bd <= min(a, indices.ndim) or params.shape[:bd] != indices.shape[:bd]:
            raise _run_error(f"batch_dims {bd} does not fit params of shape "
                             f"{list(params.shape)}, indices of shape {list(indices.shape)} "
                             f"and axis {a}")
        limit = params.shape[a]
        if bd == 0:
            _gather_check(indices, limit)
            return np.take(params, indices, axis=a)
        batch = params.shape[:bd]
        out = np.empty(batch + params.shape[bd:a] + indices.shape[bd:] + params.shape[a + 1:],
                       dtype=params.dtype)
        for b in np.ndindex(*batch):
            _gather_check(indices[b], limit, b)
            out[b] = np.take(params[b], indices[b], axis=a - bd)
        return out


def gather(params: Any, indices: Any, validate_indices: Any = None, name: str | None = None,
           axis: Any = None, batch_dims: int = 0) -> Tensor:
    """Gathers slices of ``params`` along ``axis`` at ``indices`` (TF1's ``tf.gather``).

    The result has shape ``params.shape[:axis] + indices.shape[batch_dims:] +
    params.shape[axis + 1:]``; ``indices`` may have any rank.

    Args:
      params: the tensor to gather from, rank >= 1.
      indices: an int32/int64 tensor of indices in ``[0, params.shape[axis])``.
      validate_indices: ignored, as in TF1 (indices are always checked on CPU).
      name: op name.
      axis: the dimension of ``params`` to gather along (default ``batch_dims``).
      batch_dims: number of leading batch dims shared by params and indices.

    Returns:
      A tensor of ``params``' dtype.

    Raises:
      ValueError: if ``axis`` is out of range (when known at build time).
      errors.InvalidArgumentError: at run time, naming an index out of range.
    """
    del validate_indices
    if axis is None:
        axis = batch_dims
    with op_scope(name, "GatherV2", [params, indices, axis]) as scope:
        p = to_tensor(params, name="params")
        i = to_tensor(indices, name="indices")
        a = to_tensor(axis, name="axis")
        return make("GatherV2", [p, i, a], {"batch_dims": int(batch_dims)}, name=scope)


@register
class GatherNd(OpDef):
    """``params`` indexed by the last dimension of ``indices`` (a partial multi-index)."""

    kind = INJECTIVE

    @staticmethod
    def grad(op, dy):
        params, indices = op.inputs
        g = scatter_nd(indices, dy, _shape_vector(params, indices.dtype))
        if params.shape.ndims is not None:
            g.set_shape(params.shape)
        return [g, None]

    def infer(self, op):
        params, indices = op.inputs
        rules.check_dtype(indices, _INDEX_DTYPES, "indices")
        idd, pd = indices.shape.values, params.shape.values
        if idd is not None and not idd:
            raise shape_error(f"indices {indices.name} must be at least a vector")
        q = idd[-1] if idd else None
        if q is not None and pd is not None and q > len(pd):
            raise shape_error(f"index innermost dimension length must be <= params rank; saw: "
                              f"{q} vs. {len(pd)}")
        if q is None or pd is None or idd is None:
            return [(params.dtype, unknown_shape())]
        return [(params.dtype, TensorShape(idd[:-1] + pd[q:]))]

    def reference(self, op, inputs, ctx):
        params, indices = inputs
        if indices.ndim < 1:
            raise _run_error("indices must be at least a vector")
        q = indices.shape[-1]
        if q > params.ndim:
            raise _run_error(f"index innermost dimension length must be <= params rank; saw: "
                             f"{q} vs. {params.ndim}")
        outer = indices.shape[:-1]
        flat = indices.reshape(math.prod(outer), q).astype(np.int64)
        limits = np.array(params.shape[:q], dtype=np.int64)
        bad = np.any((flat < 0) | (flat >= limits), axis=1)
        if np.any(bad):
            k = int(np.argmax(bad))
            pos = ",".join(str(int(i)) for i in np.unravel_index(k, outer)) if outer else ""
            raise _run_error(f"indices[{pos}] = {flat[k].tolist()} does not index into param "
                             f"shape {list(params.shape)}")
        if q == 0:
            got = np.broadcast_to(params, (flat.shape[0],) + params.shape).copy()
        else:
            got = params[tuple(flat.T)]
        return got.reshape(outer + params.shape[q:])


def gather_nd(params: Any, indices: Any, name: str | None = None, batch_dims: int = 0) -> Tensor:
    """Gathers slices of ``params`` at multi-indices (TF1's ``tf.gather_nd``).

    ``indices[..., :]`` is a (partial) index into the first ``indices.shape[-1]``
    dims of ``params``; the result has shape ``indices.shape[:-1] +
    params.shape[indices.shape[-1]:]``.

    Args:
      params: the tensor to gather from.
      indices: an int32/int64 tensor of rank >= 1.
      name: op name.
      batch_dims: only 0 is supported.

    Returns:
      A tensor of ``params``' dtype.

    Raises:
      ValueError: if ``indices.shape[-1]`` exceeds the rank of params.
      errors.UnimplementedError: for ``batch_dims != 0``.
      errors.InvalidArgumentError: at run time, naming an index out of range.
    """
    if batch_dims != 0:
        raise errors.UnimplementedError(None, None, "gather_nd: batch_dims != 0 is not "
                                                    "supported yet")
    with op_scope(name, "GatherNd", [params, indices]) as scope:
        p = to_tensor(params, name="params")
        i = to_tensor(indices, name="indices")
        return make("GatherNd", [p, i], name=scope)


def _gather_grad_sparse(op: Any, dy: Tensor) -> Any:
    """TF1's ``_GatherV2Grad`` for axis 0 without batch dims: an IndexedSlices, else None.

    The gathered rows' gradients are ``dy`` reshaped to ``[size(indices)] +
    params.shape[1:]``, at rows ``reshape(indices, [-1])`` of a tensor of
    ``params``' shape: nothing params-sized is computed.
    """
    from graphflow.framework.indexed_slices import IndexedSlices
    from graphflow.ops.array_ops import concat, shape, size

    params, indices, axis_t = op.inputs
    if op.get_attr("batch_dims") != 0 or _partial_scalar(axis_t) != 0:
        return None
    params_shape = shape(params)
    pd = params.shape.values
    if pd is not None and all(d is not None and d > 0 for d in pd[1:]):
        tail: Any = list(pd[1:])
        n = indices.shape.num_elements()
        values_shape = _int_vector([-1 if n is None else n] + tail)
    else:
        tail = params_shape[1:]
        values_shape = concat([reshape(size(indices), [1]), tail], 0)
    values = reshape(dy, values_shape)
    flat = reshape(indices, [-1])
    return IndexedSlices(values, flat, params_shape)


def _gather_grad(op: Any, dy: Tensor) -> Tensor:
    """The dense gradient of GatherV2 (TF1's ``_GatherV2Grad`` with its IndexedSlices summed).

    Gathered slices add into the rows they came from, so repeated indices aggregate:
    dy is transposed so the indices' dims lead, summed by ``UnsortedSegmentSum`` into
    ``params.shape[axis]`` rows and transposed back. With batch dims, each batch's
    indices are offset into its own block of rows first.
    """
    from graphflow.ops.array_ops import _range
    from graphflow.ops.segment_ops import unsorted_segment_sum

    params, indices, axis_t = op.inputs
    pr, ir = params.shape.ndims, indices.shape.ndims
    bd = op.get_attr("batch_dims")
    if bd < 0:
        if ir is None:
            raise errors.ShapeError(None, op, "the gradient of gather with batch_dims < 0 "
                                              "needs the rank of indices")
        bd += ir
    a = _partial_scalar(axis_t)
    if a is None:
        raise errors.ShapeError(None, op, "the gradient of gather needs its axis known when "
                                          "the graph is built")
    a = int(a)
    if a < 0:
        if pr is None:
            raise errors.ShapeError(None, op, "the gradient of gather with a negative axis "
                                              "needs the rank of params")
        a += pr
    it = indices.dtype
    n = _dim_or_tensor(params, a, it)
    if a == 0:
        g = unsorted_segment_sum(dy, indices, n)
    else:
        if pr is None or ir is None:
            raise errors.ShapeError(None, op, "the gradient of gather along axis > 0 needs "
                                              "the ranks of params and indices")
        nj = ir - bd
        b_ax = list(range(bd))
        o_ax = list(range(bd, a))
        j_ax = list(range(a, a + nj))
        r_ax = list(range(a + nj, pr - 1 + nj))
        dyt = _transposed(dy, b_ax + j_ax + o_ax + r_ax)  # [B, J, O, R]
        if bd == 0:
            g = unsorted_segment_sum(dyt, indices, n)  # [N, O, R]
            g = _transposed(g, list(range(1, a + 1)) + [0] + list(range(a + 1, pr)))
        else:
            pdims = _dims_or_tensors(params, it)
            batch = pdims[:bd]
            nb = _product(batch)
            offsets = reshape(_range(0, nb, dtype=it) * n, _int_vector(batch + [1] * nj, it))
            g = unsorted_segment_sum(dyt, indices + offsets, nb * n)  # [B*N, O, R]
            g = reshape(g, _int_vector(batch + [n] + pdims[bd:a] + pdims[a + 1:], it))
            no = len(o_ax)
            g = _transposed(g, b_ax + [bd + 1 + i for i in range(no)] + [bd] +
                            list(range(bd + 1 + no, pr)))
    if pr is not None:
        g.set_shape(params.shape)
    return g


def _transposed(t: Tensor, perm: list[int]) -> Tensor:
    return t if perm == sorted(perm) else transpose(t, perm)


def _product(items: list[Any]) -> Any:
    """The product of ints and scalar int tensors (an int if all are ints)."""
    out: Any = 1
    for v in items:
        out = v * out if isinstance(v, Tensor) else out * v
    return out


# --- scatter_nd -----------------------------------------------------------------------------
@register
class ScatterNd(OpDef):
    """Zeros of the 1-D int input ``shape`` with ``updates`` added at ``indices`` (TF's ScatterNd).

    ``indices[..., :]`` is a (partial) index into the first ``indices.shape[-1]`` dims;
    ``updates`` has shape ``indices.shape[:-1] + shape[indices.shape[-1]:]``.
    Repeated indices add up.
    """

    kind = OPAQUE

    @staticmethod
    def grad(op, dy):
        return [None, gather_nd(dy, op.inputs[0]), None]

    def infer(self, op):
        indices, updates, shp = op.inputs
        rules.check_dtype(indices, _INDEX_DTYPES, "indices")
        rules.check_dtype(updates, _dt.NUMERIC, "updates")
        rules.check_dtype(shp, _INDEX_DTYPES, "shape")
        rules.same_dtype(indices, shp)
        _require_vector(shp, "shape")
        out = constant_value_as_shape(shp)
        idd = indices.shape.values
        if idd is not None and not idd:
            raise shape_error(f"indices {indices.name} must be at least a vector")
        q = idd[-1] if idd else None
        if q is not None and out.ndims is not None:
            if q > out.ndims:
                raise shape_error(f"index innermost dimension length must be <= the rank of "
                                  f"shape {out}; saw: {q}")
            expected = TensorShape(list(idd[:-1]) + list(out.values[q:]))
            if not updates.shape.is_compatible_with(expected):
                raise shape_error(f"updates {updates.name} must have shape indices.shape[:-1] "
                                  f"+ shape[{q}:] = {expected}, got {updates.shape}")
        return [(updates.dtype, out)]

    def reference(self, op, inputs, ctx):
        indices, updates, shp = inputs
        dims = tuple(int(d) for d in shp)
        if any(d < 0 for d in dims):
            raise _run_error(f"shape {list(dims)} must be non-negative")
        if indices.ndim < 1:
            raise _run_error("indices must be at least a vector")
        q = indices.shape[-1]
        if q > len(dims):
            raise _run_error(f"index innermost dimension length must be <= the rank of shape "
                             f"{list(dims)}; saw: {q}")
        outer = indices.shape[:-1]
        if updates.shape != outer + dims[q:]:
            raise _run_error(f"updates must have shape {list(outer + dims[q:])} "
                             f"(indices.shape[:-1] + shape[{q}:]), got {list(updates.shape)}")
        flat = indices.reshape(math.prod(outer), q).astype(np.int64)
        bad = np.any((flat < 0) | (flat >= np.array(dims[:q], dtype=np.int64)), axis=1)
        if np.any(bad):
            k = int(np.argmax(bad))
            pos = ",".join(str(int(i)) for i in np.unravel_index(k, outer)) if outer else ""
            raise _run_error(f"indices[{pos}] = {flat[k].tolist()} does not index into shape "
                             f"{list(dims)}")
        out = np.zeros(dims, dtype=updates.dtype)
        values = updates.reshape((flat.shape[0],) + dims[q:])
        if q == 0:
            out += np.sum(values, axis=0, dtype=updates.dtype)
        else:
            np.add.at(out, tuple(flat.T), values)
        return out


def scatter_nd(indices: Any, updates: Any, shape: Any, name: str | None = None) -> Tensor:
    """Scatters ``updates`` into zeros of ``shape`` at ``indices`` (TF1's ``tf.scatter_nd``).

    ``indices[..., :]`` indexes the first ``indices.shape[-1]`` dims of the result;
    values at repeated indices are summed. The adjoint of :func:`gather_nd`.

    Args:
      indices: an int32/int64 tensor of rank >= 1.
      updates: a numeric tensor of shape ``indices.shape[:-1] + shape[indices.shape[-1]:]``.
      shape: the result's shape, a list or 1-D tensor of ``indices``' dtype.
      name: op name.

    Returns:
      A tensor of ``updates``' dtype and shape ``shape``.

    Raises:
      ValueError: if the shapes do not fit (when known at build time).
      errors.InvalidArgumentError: at run time, naming an index out of range.
    """
    with op_scope(name, "ScatterNd", [indices, updates, shape]) as scope:
        i = to_tensor(indices, name="indices")
        u = to_tensor(updates, name="updates")
        if _is_tensorish(shape):
            s = to_tensor(shape)
        else:
            s = to_tensor(list(shape.as_list()) if isinstance(shape, TensorShape) else shape,
                          dtype=i.dtype, name="shape")
        return make("ScatterNd", [i, u, s], name=scope)


# --- unique ---------------------------------------------------------------------------------
class UniqueOutput(NamedTuple):
    """The outputs of :func:`unique`: the distinct values and each input's position in them."""

    y: Tensor
    idx: Tensor


@register
class Unique(OpDef):
    """The distinct elements ``y`` of a vector, in order of first occurrence, and ``idx``
    with ``x == y[idx]``; attr ``out_idx`` is idx's dtype (TF1's Unique)."""

    kind = OPAQUE
    not_differentiable = True

    def infer(self, op):
        (x,) = op.inputs
        _require_vector(x, "x")
        return [(x.dtype, TensorShape([None])), (op.get_attr("out_idx"), x.shape)]

    def reference(self, op, inputs, ctx):
        (x,) = inputs
        if x.ndim != 1:
            raise _run_error(f"unique expects a 1D vector, got shape {list(x.shape)}")
        _, first, inverse = np.unique(x, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")  # distinct values by first occurrence
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        return [x[first[order]], rank[inverse.reshape(-1)].astype(op.get_attr("out_idx").np)]


def unique(x: Any, out_idx: Any = _dt.int32, name: str | None = None) -> UniqueOutput:
    """The distinct elements of a 1-D tensor, in order of first occurrence (TF1's ``tf.unique``).

    Args:
      x: a 1-D tensor.
      out_idx: int32 or int64, the dtype of ``idx``.
      name: op name.

    Returns:
      ``(y, idx)``: ``y`` the distinct values, ``idx`` of x's shape with
      ``x[i] == y[idx[i]]``.
    """
    with op_scope(name, "Unique", [x]) as scope:
        t = to_tensor(x, name="x")
        y, idx = make("Unique", [t], {"out_idx": _dt.as_dtype(out_idx)}, name=scope)
        return UniqueOutput(y, idx)


# --- scatter updates of variables (TF1's ScatterAdd / ScatterSub / ScatterUpdate) ----------
class _ScatterOp(OpDef):
    """``ref[indices[i], ...] op= updates[i, ...]`` on a variable; returns its new value.

    ``updates`` has shape ``indices.shape + ref.shape[1:]``. Repeated indices
    accumulate for add and sub (TF1: "their contributions add"); for update the
    last one wins. The variable's array is replaced, never mutated, as Assign does.
    """

    kind = OPAQUE
    stateful = True
    not_differentiable = True
    ref_inputs = (0,)

    def combine(self, rows: np.ndarray, idx: np.ndarray, updates: np.ndarray) -> None:
        raise NotImplementedError

    def infer(self, op):
        ref, indices, updates = op.inputs
        if ref.op.type != "VariableV2":
            raise dtype_error(f"input 'ref' must be a variable, got {ref.name} "
                              f"(a {ref.op.type} output)")
        rules.check_dtype(indices, _INDEX_DTYPES, "indices")
        if updates.dtype is not ref.dtype:
            raise dtype_error(f"updates {updates.name} has dtype {updates.dtype.name}, but "
                              f"variable {ref.op.name} has {ref.dtype.name}")
        rd, idd = ref.shape.values, indices.shape.values
        if rd is not None and idd is not None:
            if not rd:
                raise shape_error(f"variable {ref.op.name} must be at least 1-D")
            want = TensorShape(list(idd) + list(rd[1:]))
            if not updates.shape.is_compatible_with(want):
                raise shape_error(f"updates {updates.name} must have shape indices.shape + "
                                  f"ref.shape[1:] = {want}, got {updates.shape}")
        return [(ref.dtype, ref.shape)]

    def reference(self, op, inputs, ctx):
        ref, indices, updates = inputs
        var = ref.read(op)
        updates = np.asarray(updates)
        if updates.shape != indices.shape + var.shape[1:]:
            raise _run_error(f"updates must have shape indices.shape + ref.shape[1:] = "
                             f"{list(indices.shape + var.shape[1:])}, got {list(updates.shape)}")
        _gather_check(indices, var.shape[0])
        flat = indices.reshape(-1).astype(np.int64)
        new = np.array(var, copy=True)
        self.combine(new, flat, updates.reshape((flat.size,) + var.shape[1:]))
        ref.write(new)
        return new


@register
class ScatterAdd(_ScatterOp):
    def combine(self, rows, idx, updates):
        np.add.at(rows, idx, updates)


@register
class ScatterSub(_ScatterOp):
    def combine(self, rows, idx, updates):
        np.subtract.at(rows, idx, updates)


@register
class ScatterUpdate(_ScatterOp):
    def combine(self, rows, idx, updates):
        rows[idx] = updates


def _scatter(op_type: str, ref: Any, indices: Any, updates: Any, name: str | None) -> Tensor:
    from graphflow.ops.state_ops import _ref_of

    r = _ref_of(ref)
    with op_scope(name, op_type, [r, indices, updates]) as scope:
        i = to_tensor(indices, name="indices")
        u = to_tensor(updates, dtype=r.dtype, name="updates")
        return make(op_type, [r, i, u], {"use_locking": False}, name=scope)


def scatter_add(ref: Any, indices: Any, updates: Any, use_locking: bool = False,
                name: str | None = None) -> Tensor:
    """Adds ``updates`` to rows ``indices`` of variable ``ref`` (TF1's ``tf.scatter_add``).

    Args:
      ref: a Variable (or its VariableV2 tensor) of rank >= 1.
      indices: an int32/int64 tensor of row numbers; repeated rows accumulate.
      updates: a tensor of shape ``indices.shape + ref.shape[1:]``.
      use_locking: accepted for TF1 compatibility.
      name: op name.

    Returns:
      The variable's new value, once the update has run.

    Raises:
      errors.InvalidArgumentError: at run time, for an index out of range.
    """
    return _scatter("ScatterAdd", ref, indices, updates, name)


def scatter_sub(ref: Any, indices: Any, updates: Any, use_locking: bool = False,
                name: str | None = None) -> Tensor:
    """Subtracts ``updates`` from rows ``indices`` of variable ``ref`` (TF1's
    ``tf.scatter_sub``); repeated rows accumulate. Arguments as :func:`scatter_add`."""
    return _scatter("ScatterSub", ref, indices, updates, name)


def scatter_update(ref: Any, indices: Any, updates: Any, use_locking: bool = True,
                   name: str | None = None) -> Tensor:
    """Sets rows ``indices`` of variable ``ref`` to ``updates`` (TF1's ``tf.scatter_update``);
    for a repeated row the last update wins. Arguments as :func:`scatter_add`."""
    return _scatter("ScatterUpdate", ref, indices, updates, name)
