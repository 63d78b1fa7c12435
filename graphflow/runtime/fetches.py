"""Flattening nested fetch structures and rebuilding results in the same shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphflow.framework.graph import Graph, Operation, Tensor
from graphflow.framework.indexed_slices import IndexedSlices, IndexedSlicesValue


def flatten_fetches(graph: Graph, fetches: Any) -> tuple[list[Any], Callable[[list[Any]], Any]]:
    """Returns the unique graph elements to fetch and a function rebuilding the structure.

    Args:
      graph: the session's graph.
      fetches: a Tensor, Operation, Variable, tensor/op name, IndexedSlices
        (fetched as an ``IndexedSlicesValue``), or any nesting of list, tuple,
        namedtuple and dict of these.

    Returns:
      ``(elements, rebuild)``: ``rebuild(values)`` maps values (one per element)
      back into the structure of ``fetches``.

    Raises:
      TypeError: for a fetch of an unsupported type (None included).
      ValueError: for an element of another graph or an unknown name.
    """
    elements: list[Any] = []
    index: dict[int, int] = {}

    def slot(el: Any) -> int:
        k = id(el)
        if k not in index:
            index[k] = len(elements)
            elements.append(el)
        return index[k]

    def build(f: Any) -> Callable[[list[Any]], Any]:
        if f is None:
            raise TypeError("Fetch argument None has invalid type <class 'NoneType'>")
        if isinstance(f, dict):
            builders = {k: build(v) for k, v in f.items()}
            ctor = type(f)
            return lambda vals: ctor((k, b(vals)) for k, b in builders.items())
        if isinstance(f, tuple) and hasattr(f, "_fields"):
            builders = [build(v) for v in f]
            ctor = type(f)
            return lambda vals: ctor(*(b(vals) for b in builders))
        if isinstance(f, (list, tuple)):
            builders = [build(v) for v in f]
            ctor = type(f)
            return lambda vals: ctor(b(vals) for b in builders)
        if isinstance(f, IndexedSlices):
            parts = [build(f.values), build(f.indices)]
            if f.dense_shape is not None:
                parts.append(build(f.dense_shape))
            return lambda vals: IndexedSlicesValue(*(b(vals) for b in parts),
                                                   *([None] * (3 - len(parts))))
        try:
            el = graph.as_graph_element(f)
        except TypeError as e:
            raise TypeError(f"Fetch argument {f!r} has invalid type {type(f)}, must be a "
                            f"string or Tensor. ({e})") from None
        except (KeyError, ValueError) as e:
            raise ValueError(f"Fetch argument {f!r} cannot be interpreted as a Tensor. "
                             f"({e.args[0] if e.args else e})") from None
        i = slot(el)
        if isinstance(el, Operation):
            return lambda vals: None
        return lambda vals: vals[i]

    rebuild = build(fetches)
    return elements, rebuild


def split_targets(elements: list[Any]) -> tuple[list[Tensor], list[Operation]]:
    tensors = [e for e in elements if isinstance(e, Tensor)]
    ops = [e for e in elements if isinstance(e, Operation)]
    return tensors, ops
