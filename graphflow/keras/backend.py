"""``gf.keras.backend``: the graph, session and learning phase Keras models run with.

As in TF1's ``tf.keras.backend`` in graph mode, every graph has one learning-phase
tensor (``keras_learning_phase``, a ``placeholder_with_default(False)`` fed True
while training) and one Keras session (a plain ``gf.Session`` on that graph,
created on first use with the Session's default backend, or set with
:func:`set_session`). Variables are initialized lazily: before a model runs,
the graph's global variables that the session holds no value for are
initialized, so values restored from a checkpoint are kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphflow.framework.graph import Graph, GraphKeys, Tensor, get_default_graph

_EPSILON = 1e-7
_FLOATX = "float32"


class _GraphState:
    """Keras's per-graph state: learning phase, session, name counters, init checks."""

    def __init__(self) -> None:
        self.learning_phase: Tensor | None = None
        self.session: Any = None
        self.uids: dict[str, int] = {}
        self.names: set[str] = set()
        self.is_initialized: dict[Any, Tensor] = {}
        self.history: dict[Tensor, tuple[Any, int, int]] = {}
        self.checked_session: Any = None
        self.checked: set[Any] = set()


def _state(graph: Graph | None = None) -> _GraphState:
    g = graph or get_default_graph()
    st = getattr(g, "_keras_state", None)
    if st is None:
        st = _GraphState()
        g._keras_state = st
    return st


def epsilon() -> float:
    """The fuzz factor used by Keras losses (1e-7)."""
    return _EPSILON


def floatx() -> str:
    """The default float dtype of Keras layers and targets: ``"float32"``."""
    return _FLOATX


def get_uid(prefix: str = "", graph: Graph | None = None) -> int:
    """A per-graph counter for ``prefix``, starting at 1 (TF1's ``backend.get_uid``)."""
    st = _state(graph)
    st.uids[prefix] = st.uids.get(prefix, 0) + 1
    return st.uids[prefix]


def unique_object_name(name: str, zero_based: bool = True, graph: Graph | None = None) -> str:
    """``name``, ``name_1``, ... unique among Keras layer names of the graph.

    Args:
      name: the base name (a layer class in snake case, e.g. ``dense``).
      zero_based: the first name has no suffix (``dense``); else ``name_1``.
      graph: the graph (default: the default graph).

    Returns:
      The unique name.
    """
    st = _state(graph)
    while True:
        n = st.uids.get(name, 0)
        st.uids[name] = n + 1
        if zero_based and n == 0:
            cand = name
        else:
            cand = f"{name}_{n if zero_based else n + 1}"
        if cand not in st.names:
            st.names.add(cand)
            return cand


def _reserve_name(name: str, graph: Graph | None = None) -> None:
    _state(graph).names.add(name)


def learning_phase(graph: Graph | None = None) -> Tensor:
    """The graph's learning-phase flag: a bool scalar, False unless fed True (training).

    Dropout and BatchNormalization layers called without ``training=`` switch on
    it; ``Model.fit`` feeds it True.

    Args:
      graph: the graph (default: the default graph).

    Returns:
      The ``keras_learning_phase`` tensor (a ``placeholder_with_default(False, [])``).
    """
    from graphflow.ops.constant_op import placeholder_with_default

    g = graph or get_default_graph()
    st = _state(g)
    if st.learning_phase is None:
        with g.as_default(), g.control_dependencies(None), g.name_scope(None):
            st.learning_phase = placeholder_with_default(False, [], name="keras_learning_phase")
    return st.learning_phase


def get_session(graph: Graph | None = None) -> Any:
    """The Keras session of ``graph`` (created on first use), with variables initialized.

    Args:
      graph: the graph (default: the default graph).

    Returns:
      A ``gf.Session`` on ``graph``; every global variable of the graph without
      a value in it has been initialized.
    """
    from graphflow.runtime.session import Session

    g = graph or get_default_graph()
    st = _state(g)
    if st.session is None or getattr(st.session, "_closed", False):
        st.session = Session(graph=g)
    initialize_variables(st.session)
    return st.session


def set_session(session: Any) -> None:
    """Makes ``session`` the Keras session of its graph (TF1's ``backend.set_session``)."""
    _state(session.graph).session = session


def clear_session() -> None:
    """Closes the default graph's Keras session and resets the default graph."""
    from graphflow.framework.graph import reset_default_graph

    st = getattr(get_default_graph(), "_keras_state", None)
    if st is not None and st.session is not None:
        st.session.close()
    reset_default_graph()


def initialize_variables(session: Any) -> None:
    """Initializes the global variables of the session's graph that hold no value yet.

    Uses one ``IsVariableInitialized`` op per variable (made once), so variables
    restored from a checkpoint or initialized by the user keep their values.
    """
    from graphflow.ops.state_ops import is_variable_initialized

    g = session.graph
    st = _state(g)
    if st.checked_session is not session:
        st.checked_session, st.checked = session, set()
    todo = [v for v in g.get_collection(GraphKeys.GLOBAL_VARIABLES) if v not in st.checked]
    if not todo:
        return
    with g.as_default(), g.control_dependencies(None), g.name_scope(None):
        for v in todo:
            if v not in st.is_initialized:
                st.is_initialized[v] = is_variable_initialized(v)
    flags = session.run([st.is_initialized[v] for v in todo])
    fresh = [v for v, ok in zip(todo, flags) if not ok]
    if fresh:
        session.run([v.initializer for v in fresh])
    # Once it has a value in this session a variable keeps one.
    st.checked.update(todo)


def int_shape(x: Any) -> tuple[int | None, ...] | None:
    """The static shape of a tensor as a tuple (None for unknown dims)."""
    s = x.shape
    return None if s.ndims is None else tuple(s.values)


def dtype(x: Any) -> str:
    """The dtype name of a tensor or variable, e.g. ``"float32"``."""
    return x.dtype.name


def get_value(x: Any) -> np.ndarray:
    """The value of variable ``x`` in its graph's Keras session."""
    return get_session(x.graph).run(x)


def batch_get_value(tensors: list[Any]) -> list[np.ndarray]:
    """The values of several variables, in one run."""
    if not tensors:
        return []
    return list(get_session(tensors[0].graph).run(list(tensors)))


def set_value(x: Any, value: Any) -> None:
    """Writes ``value`` into variable ``x`` in its graph's Keras session."""
    batch_set_value([(x, value)])


def batch_set_value(tuples: list[tuple[Any, Any]]) -> None:
    """Writes ``(variable, value)`` pairs into the Keras session, adding no ops."""
    for x, value in tuples:
        sess = get_session(x.graph)
        x.load(np.asarray(value, dtype=x.dtype.np), session=sess)


__all__ = ["batch_get_value", "batch_set_value", "clear_session", "dtype",
           "epsilon", "floatx", "get_session", "get_uid", "get_value", "int_shape",
           "learning_phase", "set_session", "set_value", "unique_object_name"]
