"""The global step: a scalar int64 variable counting training steps (TF1's training_util)."""

from __future__ import annotations

from typing import Any

from graphflow.framework import dtypes as _dt
from graphflow.framework.graph import Graph, GraphKeys, Tensor, get_default_graph
from graphflow.ops.state_ops import Variable


def global_step(sess: Any, global_step_tensor: Any) -> int:
    """The current value of ``global_step_tensor`` in ``sess``, as a Python int.

    Args:
      sess: a Session.
      global_step_tensor: the global step Variable or Tensor (or its name).
    """
    return int(sess.run(global_step_tensor))


def assert_global_step(global_step_tensor: Any) -> None:
    """Raises TypeError unless ``global_step_tensor`` is an integer scalar Variable or Tensor."""
    if not isinstance(global_step_tensor, (Variable, Tensor)):
        raise TypeError(f'Existing "global_step" must be a Variable or Tensor: '
                        f"{global_step_tensor}.")
    if not global_step_tensor.dtype.is_integer:
        raise TypeError(f'Existing "global_step" does not have integer type: '
                        f"{global_step_tensor.dtype.name}")
    shape = global_step_tensor.shape
    if shape.ndims != 0 and shape.is_fully_defined():
        raise TypeError(f'Existing "global_step" is not scalar: {shape}')


def get_global_step(graph: Graph | None = None) -> Any:
    """The global step of ``graph`` (default graph), or None if it has none.

    Looks in the GLOBAL_STEP collection, then for a tensor called ``global_step:0``.

    Raises:
      TypeError: if the global step found is not an integer scalar.
    """
    graph = graph or get_default_graph()
    found = graph.get_collection(GraphKeys.GLOBAL_STEP)
    if len(found) == 1:
        step = found[0]
    elif not found:
        try:
            step = graph.get_tensor_by_name("global_step:0")
        except KeyError:
            return None
    else:
        return None  # TF1 logs "Multiple tensors in global_step collection." and gives up
    assert_global_step(step)
    return step


def create_global_step(graph: Graph | None = None) -> Variable:
    """Creates the global step of ``graph``: int64 scalar variable ``global_step`` = 0.

    It is not trainable and belongs to the GLOBAL_VARIABLES and GLOBAL_STEP
    collections; it is created at the root name scope whatever scope is open.

    Raises:
      ValueError: if the graph already has a global step.
    """
    graph = graph or get_default_graph()
    if get_global_step(graph) is not None:
        raise ValueError('"global_step" already exists.')
    from graphflow.ops.array_ops import zeros

    with graph.as_default(), graph.control_dependencies(None), graph.name_scope(None):
        return Variable(lambda: zeros([], dtype=_dt.int64), trainable=False,
                        name=GraphKeys.GLOBAL_STEP,
                        collections=[GraphKeys.GLOBAL_VARIABLES, GraphKeys.GLOBAL_STEP])


def get_or_create_global_step(graph: Graph | None = None) -> Any:
    """The global step of ``graph`` (default graph), created if it has none."""
    graph = graph or get_default_graph()
    step = get_global_step(graph)
    if step is None:
        step = create_global_step(graph)
    return step
