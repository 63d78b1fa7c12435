"""The compiler's internal IR: a flat, topologically ordered list of nodes.

The user's Graph is never touched (DESIGN principle 2): :func:`lower` copies what
a run needs into a :class:`Program`, and passes rewrite that copy. A node keeps
its registration (``op_def``), its attributes, its inputs as ``(node, index)``
pairs, its control inputs, its outputs' dtypes and static shapes, and a
back-reference (``origin``) to the user's Operation that it came from, so
run-time errors still name the user's op and source line.

Fed tensors become :data:`FEED` nodes, the program's parameters; they are kept
in ``Program.inputs``, not in ``Program.nodes``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from graphflow.framework import dtypes as _dt
from graphflow.framework.op_def import SOURCE, OpDef
from graphflow.framework.tensor_shape import TensorShape

Value = tuple["Node", int]
"""One output of a node: ``(node, output_index)``."""


class _FeedDef(OpDef):
    """A fed tensor: a program input. Not registered, so graphs never contain it."""

    type = "Feed"
    kind = SOURCE

    def infer(self, op: Any) -> list:
        raise NotImplementedError("Feed nodes exist only in the compiler's IR")

    def reference(self, op: Any, inputs: list, ctx: Any) -> Any:
        raise NotImplementedError("Feed values are bound by the executor")


FEED = _FeedDef()


class OutputView:
    """The ``Tensor``-like view of a node output that reference functions may inspect."""

    __slots__ = ("op", "value_index", "dtype", "shape")

    def __init__(self, op: Any, value_index: int, dtype: _dt.DType, shape: TensorShape) -> None:
        self.op = op
        self.value_index = value_index
        self.dtype = dtype
        self.shape = shape

    @property
    def name(self) -> str:
        return f"{self.op.name}:{self.value_index}"


class OpView:
    """What ``OpDef.reference`` receives for a node the compiler made.

    Nodes lowered unchanged pass the user's Operation itself (so random streams
    and variable storage stay keyed by the user's op names); nodes a pass built
    pass this view, which offers the same read-only protocol.
    """

    __slots__ = ("_node",)

    def __init__(self, node: Node) -> None:
        self._node = node

    @property
    def name(self) -> str:
        return self._node.name

    @property
    def type(self) -> str:
        return self._node.type

    @property
    def op_def(self) -> OpDef:
        return self._node.op_def

    _op_def = op_def

    @property
    def _attrs(self) -> dict[str, Any]:
        return self._node.attrs

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._node.attrs)

    def get_attr(self, name: str) -> Any:
        try:
            return self._node.attrs[name]
        except KeyError:
            raise ValueError(f"Operation {self.name!r} ({self.type}) has no attr named "
                             f"{name!r}") from None

    @property
    def inputs(self) -> list[OutputView]:
        return [OutputView(OpView(n), i, n.dtypes[i], n.shapes[i]) for n, i in self._node.inputs]

    @property
    def outputs(self) -> list[OutputView]:
        n = self._node
        return [OutputView(self, i, d, s) for i, (d, s) in enumerate(zip(n.dtypes, n.shapes))]

    def source_line(self) -> str | None:
        origin = self._node.origin
        return origin.source_line() if origin is not None else None


class Node:
    """One operation of a :class:`Program`.

    Attributes:
      id: unique within the program.
      type: the op type string (an ``op_def`` registration, or ``"Feed"``).
      op_def: the registration; passes read ``kind``, ``stateful``, ``ref_inputs``.
      attrs: attribute dict. Shared with the user's Operation when lowered, so
        passes replace it, never mutate it.
      inputs: list of :data:`Value` ``(node, index)``.
      control_inputs: nodes that must run before this one.
      dtypes, shapes: per output.
      origin: the user's Operation this node computes or was rewritten from (for
        errors, source lines and scheduling ties), or None.
      name: a readable name; the user's op name for lowered nodes.
      seq: scheduling tie-breaker: the origin op's creation index.
      regions: sub-programs of a control-flow node (``cond`` / ``while_loop``,
        to come); empty for every node today.
    """

    __slots__ = ("id", "type", "op_def", "attrs", "inputs", "control_inputs", "dtypes",
                 "shapes", "origin", "name", "seq", "regions", "_ref_op", "_nbytes")

    def __init__(self, node_id: int, op_type: str, op_def: OpDef, attrs: dict[str, Any],
                 inputs: list[Value], dtypes: list[_dt.DType], shapes: list[TensorShape], *,
                 name: str, origin: Any = None, seq: int = 0,
                 control_inputs: list[Node] | None = None, ref_op: Any = None) -> None:
        self.id = node_id
        self.type = op_type
        self.op_def = op_def
        self.attrs = attrs
        self.inputs = inputs
        self.control_inputs = control_inputs or []
        self.dtypes = dtypes
        self.shapes = shapes
        self.origin = origin
        self.name = name
        self.seq = seq
        self.regions: tuple[Program, ...] = ()
        self._ref_op = ref_op
        self._nbytes: list[int | None] | None = None

    @property
    def kind(self) -> str:
        return self.op_def.kind

    @property
    def stateful(self) -> bool:
        return self.op_def.stateful

    @property
    def is_writer(self) -> bool:
        """Writes a variable: scheduled after every ready non-writer (see ``lower``)."""
        return bool(self.op_def.ref_inputs) and self.op_def.stateful

    @property
    def produces_ref(self) -> bool:
        """Evaluates to a variable handle (``VarRef``), not to a value."""
        return self.type == "VariableV2"

    @property
    def num_outputs(self) -> int:
        return len(self.dtypes)

    def nbytes(self, i: int) -> int | None:
        """Bytes of output ``i`` from its static shape, or None if a dim is unknown."""
        if self._nbytes is None:
            self._nbytes = [static_nbytes(d, s) for d, s in zip(self.dtypes, self.shapes)]
        return self._nbytes[i]

    def ref_op(self) -> Any:
        """The object handed to ``OpDef.reference`` as its ``op`` argument."""
        if self._ref_op is None:
            self._ref_op = OpView(self)
        return self._ref_op

    def describe(self) -> str:
        return f"{self.name} ({self.type})"

    def __repr__(self) -> str:
        return f"<Node %{self.id} {self.type} '{self.name}'>"


# --- attribute freezing: hashable, exact keys for CSE and structural comparison -----------
_ARRAY_KEY_MAX_BYTES = 1 << 16


def freeze(value: Any) -> Any:
    """A hashable key equal for attribute values that behave identically.

    Floats are keyed by their exact bits (``0.0`` and ``-0.0`` differ); arrays by
    dtype, shape and bytes (large arrays by identity, so hashing stays cheap).
    """
    if isinstance(value, np.ndarray):
        if value.nbytes > _ARRAY_KEY_MAX_BYTES:
            return ("ndarray-id", id(value))
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return (type(value).__name__, value)
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, np.generic):
        return freeze(np.asarray(value))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(freeze(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, freeze(v)) for k, v in value.items())))
    if isinstance(value, TensorShape):
        return ("shape", value.values)
    if isinstance(value, _dt.DType):
        return ("dtype", value.name)
    return ("obj", id(value))


def freeze_attrs(attrs: dict[str, Any]) -> tuple:
    return tuple(sorted((k, freeze(v)) for k, v in attrs.items()))


def static_nbytes(dtype: _dt.DType, shape: TensorShape) -> int | None:
    """Bytes of a value of this dtype and static shape, or None if a dim is unknown."""
    n = shape.num_elements()
    return None if n is None else n * dtype.np.itemsize


# --- the program ----------------------------------------------------------------------------
class Program:
    """A compiler-internal program: what one ``Session.run`` signature computes.

    Attributes:
      nodes: the nodes in a topological order (inputs and control inputs first).
      inputs: ``(feed node, user Tensor)`` per fed tensor.
      outputs: one :data:`Value` per fetched tensor, in fetch order.
      targets: nodes fetched as operations (run for their effects).
      groups: the fusion partition, set by the fusion pass (None before).
      plan: the Plan, set by the schedule pass (None before).
      graph_ops: how many ops the user's graph had when lowered (for reports).
    """

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.inputs: list[tuple[Node, Any]] = []
        self.outputs: list[Value] = []
        self.targets: list[Node] = []
        self.groups: list[Any] | None = None
        self.plan: Any = None
        self.graph_ops = 0
        self._next_id = 0

    # --- building -----------------------------------------------------------------------
    def new_node(self, op_type: str, op_def: OpDef, attrs: dict[str, Any], inputs: list[Value],
                 dtypes: list[_dt.DType], shapes: list[TensorShape], **kw: Any) -> Node:
        """A new node with a fresh id; the caller places it in ``nodes``."""
        node = Node(self._next_id, op_type, op_def, attrs, inputs, dtypes, shapes, **kw)
        self._next_id += 1
        return node

    # --- queries --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def count(self, op_type: str) -> int:
        """How many nodes of ``op_type`` the program has."""
        return sum(1 for n in self.nodes if n.type == op_type)

    def types(self) -> list[str]:
        """The node types in program order."""
        return [n.type for n in self.nodes]

    def users(self) -> dict[int, list[tuple[Node, int]]]:
        """``node id -> [(user, input position), ...]`` over data inputs."""
        out: dict[int, list[tuple[Node, int]]] = {}
        for n in self.nodes:
            for pos, (p, _) in enumerate(n.inputs):
                out.setdefault(p.id, []).append((n, pos))
        return out

    def control_users(self) -> set[int]:
        """Ids of nodes some other node names as a control input."""
        return {c.id for n in self.nodes for c in n.control_inputs}

    # --- maintenance ----------------------------------------------------------------------
    def compact(self) -> int:
        """Drops nodes no output or target needs (dead code); returns how many.

        ``nodes`` stays in its (topological) order. Stateful nodes are dropped
        too when nothing needs them: the old interpreter never ran them either.
        """
        # One backward sweep: ``nodes`` is topological, so users come after producers.
        live = {v[0].id for v in self.outputs}
        live.update(t.id for t in self.targets)
        for n in reversed(self.nodes):
            if n.id in live:
                for p, _ in n.inputs:
                    live.add(p.id)
                for c in n.control_inputs:
                    live.add(c.id)
        before = len(self.nodes)
        self.nodes = [n for n in self.nodes if n.id in live]
        return before - len(self.nodes)

    def clone(self) -> Program:
        """A deep copy of the nodes and fusion groups (attrs dicts and arrays are shared)."""
        new = Program()
        new.graph_ops = self.graph_ops
        new._next_id = self._next_id
        mapping: dict[int, Node] = {}

        def dup(n: Node) -> Node:
            c = Node(n.id, n.type, n.op_def, n.attrs, [], list(n.dtypes), list(n.shapes),
                     name=n.name, origin=n.origin, seq=n.seq, ref_op=n._ref_op)
            c.regions = tuple(r.clone() for r in n.regions)
            mapping[n.id] = c
            return c

        new.inputs = [(dup(f), t) for f, t in self.inputs]
        for n in self.nodes:
            dup(n)
        for n in self.nodes:
            c = mapping[n.id]
            c.inputs = [(mapping[p.id], i) for p, i in n.inputs]
            c.control_inputs = [mapping[p.id] for p in n.control_inputs]
        new.nodes = [mapping[n.id] for n in self.nodes]
        new.outputs = [(mapping[p.id], i) for p, i in self.outputs]
        new.targets = [mapping[n.id] for n in self.targets]
        if self.groups is not None:
            # Fusion groups too, so a drawing of this stage can outline the kernels.
            new.groups = []
            for g in self.groups:
                c = copy.copy(g)
                c.nodes = [mapping[n.id] for n in g.nodes]
                c.inputs = [(mapping[p.id], i) for p, i in g.inputs]
                c.outputs = [(mapping[p.id], i) for p, i in g.outputs]
                new.groups.append(c)
        return new

    # --- comparison and display --------------------------------------------------------
    def structural_key(self) -> tuple:
        """A key equal for programs that compute the same thing the same way.

        Node ids and names are ignored; nodes are numbered in the order a walk
        from the outputs and targets first meets them, and compared by type,
        attributes (constants by value), inputs and control inputs. Used by
        tests in the style of TVM's ``assert_structural_equal``.
        """
        index: dict[int, int] = {}
        feeds = {f.id: k for k, (f, _) in enumerate(self.inputs)}
        entries: list[tuple] = []

        def visit(root: Node) -> int:
            stack: list[tuple[Node, bool]] = [(root, False)]
            while stack:
                n, ready = stack.pop()
                if n.id in index:
                    continue
                if n.id in feeds:
                    index[n.id] = len(entries)
                    entries.append(("Feed", feeds[n.id]))
                    continue
                if not ready:
                    stack.append((n, True))
                    for p in reversed([p for p, _ in n.inputs] + n.control_inputs):
                        if p.id not in index:
                            stack.append((p, False))
                    continue
                index[n.id] = len(entries)
                entries.append((n.type, freeze_attrs(n.attrs),
                                tuple((index[p.id], i) for p, i in n.inputs),
                                tuple(sorted(index[c.id] for c in n.control_inputs))))
            return index[root.id]

        outs = tuple((visit(p), i) for p, i in self.outputs)
        targets = tuple(visit(t) for t in self.targets)
        return tuple(entries), outs, targets

    def to_text(self) -> str:
        """One line per node: ``%id = Type(inputs) {attrs} : dtype[shape]  # origin``."""
        lines = []
        for f, t in self.inputs:
            lines.append(f"input %{f.id} : {_type_str(f, 0)}  # feed {t.name}")
        for n in self.nodes:
            args = ", ".join(f"%{p.id}" + (f":{i}" if p.num_outputs > 1 else "")
                             for p, i in n.inputs)
            if n.control_inputs:
                args += (", " if args else "") + ", ".join(f"^%{c.id}" for c in n.control_inputs)
            attrs = _attrs_str(n.attrs)
            outs = ", ".join(_type_str(n, i) for i in range(n.num_outputs)) or "()"
            lines.append(f"%{n.id} = {n.type}({args}){attrs} : {outs}  # {n.name}")
        outs = ", ".join(f"%{p.id}:{i}" for p, i in self.outputs)
        tgts = ", ".join(f"%{t.id}" for t in self.targets)
        lines.append(f"return ({outs})" + (f" after {tgts}" if tgts else ""))
        return "\n".join(lines)

    __str__ = to_text

    def __repr__(self) -> str:
        return f"<compiler.Program with {len(self.nodes)} nodes>"


def _type_str(n: Node, i: int) -> str:
    s = n.shapes[i]
    dims = "?" if s.ndims is None else ",".join("?" if d is None else str(d) for d in s.values)
    return f"{n.dtypes[i].name}[{dims}]"


def _attrs_str(attrs: dict[str, Any]) -> str:
    if not attrs:
        return ""
    parts = []
    for k, v in sorted(attrs.items()):
        if isinstance(v, np.ndarray):
            v = repr(v.tolist()) if v.size <= 6 else f"<{v.dtype}{list(v.shape)}>"
        elif isinstance(v, _dt.DType):
            v = v.name
        else:
            v = repr(v) if not isinstance(v, TensorShape) else str(v)
        parts.append(f"{k}={v}")
    return " {" + ", ".join(parts) + "}"


def iter_values(nodes: Iterable[Node]) -> Iterator[Value]:
    for n in nodes:
        for i in range(n.num_outputs):
            yield (n, i)
