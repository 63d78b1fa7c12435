"""Graph images: a Graph as DOT (``to_dot``) and as an SVG, PNG or PDF file (``render``).

    dot = gf.viz.to_dot(graph, fetches=[loss], max_depth=2)   # a graphviz.Digraph
    gf.viz.render(graph, "model.svg")                           # needs Graphviz's `dot`

Drawing goes in two steps. A *view* builder turns what is drawn into a small
backend-neutral model (:class:`_View`: nodes with a style kind, merged edges, nested
clusters); :func:`_emit` turns any view into DOT. A Graph is drawn by
:func:`_graph_view`; the compiler's Plan, when it exists, gets its own view builder
(fusion groups as clusters, library kernels marked, nodes coloured by profiled time)
and one more branch in :func:`to_dot`.

Every piece of user text (op names, scope names, attribute values) reaches DOT
through :func:`_html` (HTML-like labels) or :func:`_esc_tooltip` (tooltips), so
quotes, braces, backslashes, ``<>`` and any unicode draw as themselves.

``to_dot`` needs only the ``graphviz`` Python package; ``render`` also needs the
system ``dot`` program and says how to install it when it is missing. In Jupyter the
returned Digraph displays itself, and importing graphflow inside IPython registers an
SVG formatter so a ``gf.Graph`` displays itself too.
"""

from __future__ import annotations

import contextlib
import math
import os
import pathlib
import sys
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphflow.framework import errors
from graphflow.framework.graph import Graph, Operation, Tensor, get_default_graph

if TYPE_CHECKING:  # graphviz is imported lazily: `import graphflow` should not pay for it
    import graphviz

__all__ = ["to_dot", "render"]

# File suffix -> Graphviz output format. ".dot"/".gv" write the DOT text (no `dot` needed).
_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}

_INSTALL_HINT = (
    "Rendering graph images needs Graphviz's `dot` program, which was not found on PATH. "
    "Install Graphviz: `apt-get install graphviz` (Debian/Ubuntu), `dnf install graphviz` "
    "(Fedora), `brew install graphviz` (macOS), `conda install graphviz`, or see "
    "https://graphviz.org/download/. gf.viz.to_dot(...) works without it.")

# --- styles -------------------------------------------------------------------------------
# One entry per node kind: a pastel fill with a darker border of the same hue, and
# shapes that tell the kinds apart in greyscale too (gradient ops: by their cluster).
_FONT = "Helvetica"
_NODE_STYLES: dict[str, dict[str, str]] = {
    "op": {"shape": "box", "style": "rounded,filled", "fillcolor": "#dbe8f7",
           "color": "#5b84b1"},
    "placeholder": {"shape": "invhouse", "style": "filled", "fillcolor": "#fde0b6",
                    "color": "#d08a1e"},
    "variable": {"shape": "cylinder", "style": "filled", "fillcolor": "#d5ecd0",
                 "color": "#4e9a47"},
    "constant": {"shape": "box", "style": "filled", "fillcolor": "#efefef",
                 "color": "#a8a8a8", "fontsize": "9"},
    "gradient": {"shape": "box", "style": "rounded,filled", "fillcolor": "#eddcf4",
                 "color": "#8e5ba8"},
    "update": {"shape": "box", "style": "filled", "fillcolor": "#f8d3ce",
               "color": "#c0392b", "peripheries": "2"},
    "scope": {"shape": "box3d", "style": "filled", "fillcolor": "#e4e7eb",
              "color": "#6b7280"},
    "gradient_scope": {"shape": "box3d", "style": "filled", "fillcolor": "#eddcf4",
                       "color": "#8e5ba8"},
    # The compiled view: library kernels (matmul, conv, ...) that run as their own call.
    "library": {"shape": "box", "style": "filled,bold", "fillcolor": "#fff2b3",
                "color": "#b8860b", "peripheries": "2"},
}
_CLUSTER_FILLS = ("#f5f7fa", "#eaeef3", "#dfe5ec")  # alternates with nesting depth
_EDGE_STYLES: dict[str, dict[str, str]] = {
    "data": {},
    "ref": {"color": "#c0392b", "fontcolor": "#c0392b"},
    "control": {"style": "dashed", "color": "#9a9a9a", "arrowhead": "odot"},
}
_GRAPH_ATTR = {"rankdir": "TB", "fontname": _FONT, "fontsize": "11", "nodesep": "0.3",
               "ranksep": "0.4", "newrank": "true", "labeljust": "l", "margin": "0.1"}
_NODE_ATTR = {"fontname": _FONT, "fontsize": "10", "height": "0.3", "margin": "0.12,0.04"}
_EDGE_ATTR = {"fontname": _FONT, "fontsize": "8", "fontcolor": "#606060", "color": "#555555",
              "arrowsize": "0.6"}

# Updates of state: optimizers' Apply* ops and the Assign family (ops with ref inputs).
_UPDATE_PREFIXES = ("Assign", "Apply", "ResourceApply")
_REF_READERS = frozenset({"IsVariableInitialized"})  # ref inputs, but only read


# --- the view model -------------------------------------------------------------------------
@dataclass
class _Node:
    id: str
    kind: str          # a key of _NODE_STYLES
    label: str         # an HTML-like label body (already escaped)
    tooltip: str       # plain text (escaped on emission)
    cluster: tuple[str, ...]
    fill: str | None = None  # overrides the kind's fill (the profiled view's heat)


@dataclass
class _Edge:
    src: str
    dst: str
    kind: str          # a key of _EDGE_STYLES
    label: str | None  # plain text made by graphflow (dtypes, shapes, counts)
    count: int = 1


@dataclass
class _View:
    """What to draw, independent of DOT syntax: nodes, edges and nested clusters.

    ``clusters`` maps a cluster path (a tuple of scope components) to its label;
    every prefix of a path in use is itself a cluster.
    """

    nodes: list[_Node] = field(default_factory=list)
    edges: list[_Edge] = field(default_factory=list)
    clusters: dict[tuple[str, ...], str] = field(default_factory=dict)


# --- escaping -------------------------------------------------------------------------------
def _printable(s: str) -> str:
    """``s`` with control characters shown as escapes, so no name can break a layout."""
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in s)


# Graphviz reads backslash escapes (\N: the node's id, \G, \l, ...) in HTML-like label
# text (after decoding entities) and in escString labels, so a literal backslash is
# written twice there, and four times in tooltips, which it unescapes twice; all of
# them decode entities such as &amp; (checked against dot 2.43's SVG).
def _html(s: Any) -> str:
    """Escapes text for the inside of a DOT HTML-like label."""
    s = _printable(str(s))
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("\\", "\\\\"))


def _esc(s: str) -> str:
    """Escapes text for a quoted DOT escString attribute (an edge label)."""
    import graphviz

    # graphviz.escape doubles backslashes; quote() escapes quotes; dot decodes entities.
    return graphviz.escape(_printable(s).replace("&", "&amp;"))


def _esc_tooltip(s: str) -> str:
    """Escapes text for a quoted DOT tooltip."""
    import graphviz

    return graphviz.nohtml(_printable(s).replace("&", "&amp;").replace("\\", "\\" * 4))


# --- labels -----------------------------------------------------------------------------------
def _format_shape(shape: Any) -> str:
    """``[?,784]`` as TF1's messages write shapes; ``[]`` a scalar, ``<unknown>`` no rank."""
    if shape.ndims is None:
        return "<unknown>"
    return "[" + ",".join("?" if d is None else str(d) for d in shape.values) + "]"


def _tensor_label(t: Tensor, ref: bool) -> str:
    text = f"{t.dtype.name}{'_ref' if ref else ''} {_format_shape(t.shape)}"
    if len(t.op.outputs) > 1:
        text = f":{t.value_index} {text}"
    return text


def _op_label(op: Operation, shown_name: str) -> str:
    label = f"<B>{_html(op.type)}</B><BR/>"
    if op.type == "Const":
        value = op.attrs.get("value")
        if value is not None and getattr(value, "size", 2) == 1:
            label += f'<FONT POINT-SIZE="9">= {_html(_short_value(value))}</FONT><BR/>'
    if shown_name == op.type:  # a default name says nothing the type does not
        return label[:-len("<BR/>")]
    return label + f'<FONT POINT-SIZE="9" COLOR="#4a4a4a">{_html(shown_name)}</FONT>'


def _short_value(value: Any) -> str:
    item = value.reshape(()).item() if hasattr(value, "reshape") else value
    text = f"{item:.6g}" if isinstance(item, float) else str(item)
    return text if len(text) <= 12 else text[:11] + "\u2026"


def _op_kind(op: Operation, scope: tuple[str, ...]) -> str:
    t = op.type
    if t in ("Placeholder", "PlaceholderWithDefault"):
        return "placeholder"
    if t in ("VariableV2", "Variable", "VarHandleOp"):
        return "variable"
    if t == "Const":
        return "constant"
    if t.startswith(_UPDATE_PREFIXES) or (op.op_def.ref_inputs and t not in _REF_READERS):
        return "update"
    if _in_gradients(scope):
        return "gradient"
    return "op"


def _in_gradients(scope: tuple[str, ...]) -> bool:
    return any(part.startswith("gradients") for part in scope)


# --- Graph -> view ------------------------------------------------------------------------
def _needed_ops(graph: Graph, fetches: Any) -> list[Operation]:
    """The ops of ``graph`` that running ``fetches`` needs (inputs and control inputs)."""
    from graphflow.runtime.fetches import flatten_fetches

    elements, _ = flatten_fetches(graph, fetches)
    needed: set[Operation] = set()
    stack = [e.op if isinstance(e, Tensor) else e for e in elements]
    while stack:
        op = stack.pop()
        if op in needed:
            continue
        needed.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return [op for op in graph.get_operations() if op in needed]


def _op_scopes(ops: list[Operation]) -> list[tuple[str, ...]]:
    """The scope path each op is drawn in (its name's components, without the last).

    As in TensorBoard, an op named like a scope belongs inside it: a Variable ``w``
    with ``w/read`` and ``w/Assign``, or ``random_normal`` with the ops that make it.
    A scope holding nothing but such an op and its constants (``mul`` and ``mul/y``
    from ``x * 1.5``) is not drawn: its ops stay in the enclosing scope.
    """
    parts = [tuple(op.name.split("/")) for op in ops]
    prefixes = {p[:k] for p in parts for k in range(1, len(p))}
    scopes = [p if p in prefixes else p[:-1] for p in parts]
    members: dict[tuple[str, ...], list[int]] = {}
    for i, scope in enumerate(scopes):
        members.setdefault(scope, []).append(i)
    has_subscopes = {scope[:k] for scope in members for k in range(1, len(scope))}
    for scope, indices in members.items():
        if scope and scope not in has_subscopes and any(parts[i] == scope for i in indices) \
                and all(parts[i] == scope or ops[i].type == "Const" for i in indices):
            for i in indices:
                scopes[i] = scope[:-1]
    return scopes


def _graph_view(graph: Graph, fetches: Any, max_depth: int | None, edge_labels: bool,
                full_names: bool) -> _View:
    ops = graph.get_operations() if fetches is None else _needed_ops(graph, fetches)

    scopes = _op_scopes(ops)
    # Below max_depth, a scope's ops become one node; a scope with a single op there
    # shows that op itself, which says more than "1 op".
    drawn_in: list[tuple[str, ...] | None] = list(scopes)  # None: inside a collapsed node
    groups: dict[tuple[str, ...], list[int]] = {}
    if max_depth is not None:
        for index, scope in enumerate(scopes):
            if len(scope) >= max_depth:
                groups.setdefault(scope[:max_depth], []).append(index)
        for key, indices in groups.items():
            for index in indices:
                drawn_in[index] = key[:-1] if len(indices) == 1 else None

    view = _View()
    node_of: dict[Operation, str] = {}
    for index, op in enumerate(ops):
        cluster = drawn_in[index]
        if cluster is None:
            continue
        parts = tuple(op.name.split("/"))
        if full_names or not cluster:
            shown = op.name
        elif parts == cluster:
            shown = parts[-1]
        else:
            shown = "/".join(parts[len(cluster):])
        node_id = f"n{index}"
        node_of[op] = node_id
        view.nodes.append(_Node(node_id, _op_kind(op, scopes[index]), _op_label(op, shown),
                                f"{op.name} ({op.type})", cluster))

    collapsed = {key: indices for key, indices in groups.items() if len(indices) > 1}
    for number, (key, indices) in enumerate(collapsed.items()):
        node_id = f"s{number}"
        for index in indices:
            node_of[ops[index]] = node_id
        n = len(indices)
        title = "/".join(key) if full_names else key[-1]
        label = (f"<B>{_html(title)}</B><BR/>"
                 f'<FONT POINT-SIZE="9" COLOR="#4a4a4a">{n} ops</FONT>')
        kind = "gradient_scope" if _in_gradients(key) else "scope"
        view.nodes.append(_Node(node_id, kind, label,
                                f"{'/'.join(key)} ({n} ops, collapsed)", key[:-1]))

    for node in view.nodes:
        for depth in range(1, len(node.cluster) + 1):
            path = node.cluster[:depth]
            if path not in view.clusters:
                view.clusters[path] = "/".join(path) if full_names else path[-1]

    # Edges between the same two drawn nodes merge into one (per kind), counting the
    # tensors or control dependencies they stand for; edges inside one node disappear.
    merged: dict[tuple[str, str, str], dict[Any, bool]] = {}
    for op in ops:
        dst = node_of[op]
        refs = op.op_def.ref_inputs
        for i, t in enumerate(op.inputs):
            src = node_of[t.op]
            if src != dst:
                kind = "ref" if i in refs else "data"
                merged.setdefault((src, dst, kind), {})[t] = True
        for c in op.control_inputs:
            src = node_of[c]
            if src != dst:
                merged.setdefault((src, dst, "control"), {})[c] = True
    for (src, dst, kind), items in merged.items():
        label = None
        if edge_labels and kind != "control":
            tensors = list(items)
            label = (_tensor_label(tensors[0], kind == "ref") if len(tensors) == 1
                     else f"{len(tensors)} tensors")
        view.edges.append(_Edge(src, dst, kind, label, len(items)))
    return view


# --- view -> DOT --------------------------------------------------------------------------
def _heat(fraction: float) -> str:
    """A fill from pale yellow (little time) to red (the slowest op)."""
    f = min(max(fraction, 0.0), 1.0)
    r, g, b = 255, int(245 - 175 * f), int(200 - 170 * f)
    return f"#{r:02x}{g:02x}{b:02x}"


def _plan_view(plan: Any, edge_labels: bool, run_metadata: Any = None) -> _View:
    """The compiled view: each kernel step of a Plan as one cluster of the ops it fused.

    Ops outside every step (feeds, constants, variables) are drawn at the top
    level; library ops (kind OPAQUE: matmul, conv, ...) are marked, and a step
    holding only one is drawn as that node rather than as a cluster.
    """
    from graphflow.framework.op_def import OPAQUE

    view = _View()
    program = plan.program
    times = run_metadata.time_by_op_name() if run_metadata is not None else {}
    slowest = max(times.values(), default=0.0) or 1.0
    cluster_of: dict[int, tuple[str, ...]] = {}
    library: set[int] = set()
    for i, step in enumerate(plan.steps):
        nodes = getattr(step, "nodes", None)
        if not nodes:
            continue
        if len(nodes) == 1 and nodes[0].kind == OPAQUE:
            library.add(nodes[0].id)
            continue
        path = (f"kernel {i}",)
        view.clusters[path] = f"kernel {i}: {step.pattern}, {len(nodes)} op" + (
            "s" if len(nodes) > 1 else "")
        for n in nodes:
            cluster_of[n.id] = path
    feeds = [f for f, _ in program.inputs]
    fed = {f.id for f in feeds}
    for n in feeds + [n for n in program.nodes if n.id not in fed]:
        if n.id in fed or n.type in ("Feed", "Placeholder", "PlaceholderWithDefault"):
            kind = "placeholder"
        elif n.type == "VariableV2":
            kind = "variable"
        elif n.type == "Const":
            kind = "constant"
        elif n.id in library or n.kind == OPAQUE:
            kind = "library"
        elif n.is_writer:
            kind = "update"
        else:
            kind = "op"
        label = f"<B>{_html(n.type)}</B>"
        if n.name and n.name != n.type:
            label += f'<BR/><FONT POINT-SIZE="9" COLOR="#4a4a4a">{_html(n.name)}</FONT>'
        tooltip, fill = f"{n.name} ({n.type})", None
        seconds = times.get(n.name)
        if seconds is not None:
            label += f'<BR/><FONT POINT-SIZE="9">{seconds * 1e6:.0f} \u00b5s</FONT>'
            tooltip += f": {seconds * 1e6:.1f} us in the profiled run"
            fill = _heat(seconds / slowest)
        view.nodes.append(_Node(f"n{n.id}", kind, label, tooltip, cluster_of.get(n.id, ()),
                                fill))
        for src, index in n.inputs:
            text = None
            if edge_labels:
                text = f"{src.dtypes[index].name} {_format_shape(src.shapes[index])}"
            view.edges.append(_Edge(f"n{src.id}", f"n{n.id}",
                                    "ref" if src.produces_ref else "data", text))
        for c in n.control_inputs:
            view.edges.append(_Edge(f"n{c.id}", f"n{n.id}", "control", None))
    return view


def _emit(view: _View, rankdir: str, name: str) -> graphviz.Digraph:
    """Writes ``view`` into a new Digraph.

    Statements go straight into the Digraph's ``body`` (its documented list of
    lines): graphviz's ``node()``/``edge()`` re-quote every attribute of every
    node, which made a 5,000-op graph take seconds. Style attributes are quoted
    once per kind; labels and tooltips are escaped by :func:`_html`, :func:`_esc`
    and :func:`_esc_tooltip`, and quoted by graphviz's own ``quote``.
    """
    import graphviz
    from graphviz.quoting import a_list, quote

    dot = graphviz.Digraph(name=name, graph_attr={**_GRAPH_ATTR, "rankdir": rankdir},
                           node_attr=_NODE_ATTR, edge_attr=_EDGE_ATTR)
    children: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for path in view.clusters:
        children.setdefault(path[:-1], []).append(path)
    nodes_in: dict[tuple[str, ...], list[_Node]] = {}
    for node in view.nodes:
        nodes_in.setdefault(node.cluster, []).append(node)
    cluster_ids = {path: f"cluster_{i}" for i, path in enumerate(view.clusters)}
    node_styles = {kind: a_list(kwargs=style) for kind, style in _NODE_STYLES.items()}
    edge_styles = {kind: a_list(kwargs=style) for kind, style in _EDGE_STYLES.items()}
    body = dot.body

    def fill(path: tuple[str, ...], indent: str) -> None:
        for child in children.get(path, ()):
            body.append(f"{indent}subgraph {cluster_ids[child]} {{\n")
            attrs = a_list(kwargs={
                "label": f"<<B>{_html(view.clusters[child])}</B>>",
                "tooltip": _esc_tooltip("/".join(child)), "style": "rounded,filled",
                "fillcolor": _CLUSTER_FILLS[(len(child) - 1) % len(_CLUSTER_FILLS)],
                "color": "#b4bcc8", "fontcolor": "#333333"})
            body.append(f"{indent}\tgraph [{attrs}]\n")
            fill(child, indent + "\t")
            body.append(f"{indent}}}\n")
        for node in nodes_in.get(path, ()):
            heat = f' fillcolor="{node.fill}"' if node.fill else ""
            body.append(f"{indent}{node.id} [label={quote(f'<{node.label}>')} "
                        f"tooltip={quote(_esc_tooltip(node.tooltip))} "
                        f"{node_styles[node.kind]}{heat}]\n")

    fill((), "\t")
    for edge in view.edges:
        attrs = edge_styles[edge.kind]
        if edge.label is not None:
            attrs += f" label={quote(_esc(edge.label))}"
        if edge.count > 1:
            attrs += f" penwidth={min(1.0 + math.log2(edge.count), 4.0):.2f}"
        body.append(f"\t{edge.src} -> {edge.dst} [{attrs.strip()}]\n")
    return dot


# --- public API -----------------------------------------------------------------------------
def to_dot(graph_or_plan: Graph | None = None, fetches: Any = None,
           max_depth: int | None = None, *, edge_labels: bool = True,
           full_names: bool = False, rankdir: str = "TB",
           name: str = "graphflow", run_metadata: Any = None) -> graphviz.Digraph:
    """Draws a graph as DOT, like TensorBoard's graph view.

    Each op is a node showing its type and name, styled by what it is:
    placeholders, variables, constants, ordinary ops, gradient ops (under a
    ``gradients*`` scope) and state updates (``Assign*``/``Apply*``, ops with ref
    inputs). Edges carry their tensor's dtype and static shape; control
    dependencies are dashed. Name scopes are clusters; below ``max_depth`` a
    scope collapses to one node showing its op count, and edges between
    collapsed nodes merge (their width grows with the number merged).

    Needs only the ``graphviz`` Python package, not the ``dot`` program. The
    result displays itself in Jupyter (which does need ``dot``).

    Args:
      graph_or_plan: a ``gf.Graph`` (None: the default graph), or the compiled
        view: a Plan or the result of ``gf.compiler.explain(fetches)``, drawn
        with each fused kernel as one cluster of its ops and library kernels
        marked (``fetches`` and ``max_depth`` apply to graphs only).
      fetches: if given, draw only the ops running these fetches needs: a Tensor,
        Operation, Variable, name, or any nesting of lists, tuples and dicts of
        them (as ``Session.run`` accepts).
      max_depth: if given (>= 1), scopes nested deeper than this are drawn as
        single nodes: 1 collapses every top-level scope. None expands all scopes.
      edge_labels: label data edges with dtype and shape.
      full_names: show full op and scope names rather than names relative to the
        enclosing cluster.
      rankdir: Graphviz layout direction: "TB", "BT", "LR" or "RL".
      name: the DOT graph's name.
      run_metadata: for the compiled view, a ``gf.RunMetadata`` from a traced
        run of the same fetches: ops are labelled with and coloured by their
        measured time (a fused kernel's time is split evenly among its ops).

    Returns:
      A ``graphviz.Digraph``; ``.source`` is the DOT text.

    Raises:
      TypeError: if ``graph_or_plan`` is not a Graph, or a fetch has a bad type.
      ValueError: for a bad ``max_depth`` or ``rankdir``, or a fetch from another
        graph or an unknown name.
    """
    if graph_or_plan is None:
        graph_or_plan = get_default_graph()
    if max_depth is not None and (isinstance(max_depth, bool) or not isinstance(max_depth, int)
                                  or max_depth < 1):
        raise errors.GraphValueError(
            None, None, f"max_depth must be None or an int >= 1, got {max_depth!r}")
    if rankdir not in ("TB", "BT", "LR", "RL"):
        raise errors.GraphValueError(
            None, None, f"rankdir must be one of 'TB', 'BT', 'LR', 'RL', got {rankdir!r}")
    from graphflow.compiler.driver import Explanation
    from graphflow.compiler.plan import Plan

    if isinstance(graph_or_plan, Explanation):
        graph_or_plan = graph_or_plan.plan
    if isinstance(graph_or_plan, Graph):
        view = _graph_view(graph_or_plan, fetches, max_depth, edge_labels, full_names)
    elif isinstance(graph_or_plan, Plan):
        view = _plan_view(graph_or_plan, edge_labels, run_metadata)
    else:
        hint = ""
        if isinstance(graph_or_plan, (Tensor, Operation)) or hasattr(
                graph_or_plan, "_as_graph_element"):
            hint = (" To draw what a tensor or op needs, pass its graph and fetches=, e.g. "
                    "gf.viz.to_dot(t.graph, fetches=[t]).")
        raise errors.GraphTypeError(
            None, None,
            f"gf.viz.to_dot draws a gf.Graph or a compiled Plan (gf.compiler.explain(...)); "
            f"got a {type(graph_or_plan).__name__}.{hint}")
    return _emit(view, rankdir, name)


def render(graph: Any, path: str | os.PathLike[str], fetches: Any = None,
           max_depth: int | None = None, **kwargs: Any) -> pathlib.Path:
    """Writes a graph image, in the format its file suffix names.

    ``.svg``, ``.png`` and ``.pdf`` run Graphviz's ``dot`` program; ``.dot`` and
    ``.gv`` write the DOT text and need no ``dot``. The file is replaced
    atomically: a failure leaves any previous file untouched.

    Args:
      graph: a ``gf.Graph`` (None: the default graph), or a ``graphviz`` graph
        already made by :func:`to_dot`.
      path: the output file; its suffix picks the format.
      fetches: as in :func:`to_dot`.
      max_depth: as in :func:`to_dot`.
      **kwargs: further keyword arguments of :func:`to_dot`.

    Returns:
      The path written, as a ``pathlib.Path``.

    Raises:
      ValueError: for an unsupported suffix, or options given with a ready-made
        ``graphviz`` graph.
      graphflow.errors.NotFoundError: if the ``dot`` program is not installed;
        the message says how to install it.
      graphflow.errors.InternalError: if ``dot`` fails.
      TypeError: as in :func:`to_dot`.
    """
    import graphviz

    path = pathlib.Path(os.fspath(path))
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise errors.GraphValueError(
            None, None, f"Cannot tell the image format of {str(path)!r}: use a file name "
                        f"ending in one of {', '.join(_FORMATS)}")
    if isinstance(graph, (graphviz.Graph, graphviz.Digraph)):
        if fetches is not None or max_depth is not None or kwargs:
            raise errors.GraphValueError(
                None, None, "fetches, max_depth and to_dot options apply when rendering a "
                            "gf.Graph, not a graphviz graph that is already drawn")
        dot = graph
    else:
        dot = to_dot(graph, fetches=fetches, max_depth=max_depth, **kwargs)
    data = dot.source.encode("utf-8") if fmt == "dot" else _pipe(dot, fmt)
    _atomic_write(path, data)
    return path


def _pipe(dot: graphviz.Digraph, fmt: str) -> bytes:
    """Runs ``dot`` on ``dot``'s source; returns the image bytes."""
    import graphviz

    try:
        return dot.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise errors.NotFoundError(None, None, _INSTALL_HINT) from None
    except graphviz.CalledProcessError as e:
        stderr = e.stderr.decode("utf-8", "replace") if isinstance(e.stderr, bytes) else e.stderr
        raise errors.InternalError(
            None, None, f"Graphviz's dot failed (exit status {e.returncode}): "
                        f"{(stderr or '').strip()}") from None


def _atomic_write(path: pathlib.Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --- Jupyter ------------------------------------------------------------------------------
_AUTO_COLLAPSE_OPS = 200   # larger graphs display collapsed to depth 1
_MAX_DISPLAY_NODES = 1500  # beyond this, fall back to the text repr rather than stall


def _graph_svg(graph: Graph) -> str | None:
    """IPython's SVG formatter for a Graph: None (text repr) when it cannot draw."""
    ops = graph.get_operations()
    if not ops:
        return None
    depth = 1 if len(ops) > _AUTO_COLLAPSE_OPS else None
    view = _graph_view(graph, None, depth, True, False)
    if len(view.nodes) > _MAX_DISPLAY_NODES:
        return None
    try:
        return _pipe(_emit(view, "TB", "graphflow"), "svg").decode("utf-8")
    except errors.OpError:
        return None


def _install_ipython_display(shell: Any = None) -> bool:
    """Makes ``gf.Graph`` display as an image in IPython/Jupyter; True if installed."""
    if shell is None:
        ipython = sys.modules.get("IPython")
        get = getattr(ipython, "get_ipython", None)
        shell = get() if get is not None else None
    formatters = getattr(getattr(shell, "display_formatter", None), "formatters", None)
    if not formatters or "image/svg+xml" not in formatters:
        return False
    formatters["image/svg+xml"].for_type(Graph, _graph_svg)
    return True


_install_ipython_display()
