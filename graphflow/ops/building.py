"""Helpers public op functions use to convert arguments and add ops to the graph."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from graphflow.framework import dtypes as _dt
from graphflow.framework import errors
from graphflow.framework.graph import (
    Graph,
    Operation,
    Tensor,
    convert_to_tensor,
    get_default_graph,
)


def _graph_element(v: Any) -> Any:
    conv = getattr(v, "_as_graph_element", None)
    return conv() if conv is not None else v


def graph_of(values: Sequence[Any] = ()) -> Graph:
    """The graph the given tensors live in, else the default graph (as TF1)."""
    for v in values:
        v = _graph_element(v)
        if isinstance(v, (Tensor, Operation)):
            return v.graph
    return get_default_graph()


@contextlib.contextmanager
def op_scope(name: str | None, default_name: str, values: Sequence[Any] = ()) -> Iterator[str]:
    """TF1's ``name_scope(name, default_name, values)``: yields a scope ending in ``/``.

    An op created with ``name=scope`` takes the scope's name exactly, so ``a + 1``
    makes ``add/y`` (the constant) and ``add`` (the op), as TF1 does.
    """
    g = graph_of(values)
    with g.as_default(), g.name_scope(name or default_name) as scope:
        yield scope


def is_tensor_like(v: Any) -> bool:
    return isinstance(_graph_element(v), Tensor)


def to_tensor(v: Any, dtype: Any = None, name: str | None = None) -> Tensor:
    return convert_to_tensor(v, dtype=dtype, name=name)


def to_tensors(values: Sequence[Any], names: Sequence[str] | None = None,
               dtype: Any = None) -> list[Tensor]:
    """Converts values that must share one dtype.

    The dtype comes from ``dtype``, else from the first value that already is a
    Tensor (so ``gf.add(1, x_float)`` converts 1 to float, as TF1 does).
    """
    source_name = None
    if dtype is None:
        for v, n in zip(values, names or [None] * len(values)):
            v = _graph_element(v)
            if isinstance(v, Tensor):
                dtype, source_name = v.dtype, n or v.name
                break
    names = names or [None] * len(values)
    out = []
    for v, n in zip(values, names):
        e = _graph_element(v)
        if isinstance(e, Tensor) and dtype is not None and e.dtype is not _dt.as_dtype(dtype):
            op_name = get_default_graph().get_name_scope() or "op"
            against = f"'{source_name}'" if source_name else "the requested dtype"
            raise errors.DTypeError(
                None, None,
                f"{op_name}: input {n and repr(n) or ''} ({e.name}) has dtype {e.dtype.name}, "
                f"which does not match {_dt.as_dtype(dtype).name} of {against}; TF1 never "
                "converts implicitly, use gf.cast")
        try:
            out.append(convert_to_tensor(v, dtype=dtype, name=n))
        except errors.DTypeError:
            raise
        except (TypeError, ValueError) as exc:
            op_name = get_default_graph().get_name_scope() or "op"
            raise errors.DTypeError(None, None, f"{op_name}: input {n or ''}: {exc}") from None
    return out


def make(op_type: str, inputs: Sequence[Tensor], attrs: dict[str, Any] | None = None,
         name: str | None = None) -> Any:
    """Adds an op and returns its single output, or the list of outputs."""
    g = inputs[0].graph if inputs else get_default_graph()
    op = g.create_op(op_type, list(inputs), attrs, name=name)
    outs = op.outputs
    if len(outs) == 1:
        return outs[0]
    return outs if outs else op


def make_op(op_type: str, inputs: Sequence[Tensor], attrs: dict[str, Any] | None = None,
            name: str | None = None, graph: Graph | None = None) -> Operation:
    """Adds an op and returns the Operation."""
    g = graph or (inputs[0].graph if inputs else get_default_graph())
    return g.create_op(op_type, list(inputs), attrs, name=name)


def normalize_axis(axis: Any, rank: int | None, what: str = "axis") -> int:
    """A Python axis in [-rank, rank) made non-negative (rank None: returned as is)."""
    from graphflow.framework.op_def import shape_error

    axis = int(axis)
    if rank is None:
        return axis
    if not -rank <= axis < rank:
        raise shape_error(f"{what} {axis} is out of range for a tensor of rank {rank}")
    return axis % rank


def base_dtype(v: Any) -> _dt.DType:
    return _dt.as_dtype(v)
