"""gf.viz: DOT structure, styles, collapsing, fetch restriction, escaping and rendering."""

from __future__ import annotations

import html
import re
import shutil

import graphviz
import numpy as np
import pytest

import graphflow as gf
from graphflow import viz

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz's `dot` is not installed (apt-get install graphviz)")

# --- reading DOT text back ------------------------------------------------------------------
_NODE = re.compile(r'^\s*([ns]\d+) \[label=<(.*)> tooltip="((?:[^"\\]|\\.)*)" (.*)\]$')
_EDGE = re.compile(r"^\s*(\S+) -> (\S+) \[(.*)\]$")
_CLUSTER = re.compile(r"^\s*subgraph (cluster_\d+) \{$")


def _text(html_label: str) -> str:
    """The visible text of an HTML-like label, lines joined by newlines."""
    parts = re.split(r"<BR/>", html_label)
    return "\n".join(html.unescape(re.sub(r"<[^>]*>", "", p)) for p in parts)


def parse(dot: graphviz.Digraph) -> dict:
    """Nodes (id -> (text, attrs, cluster path)), edges and clusters of to_dot's output."""
    nodes, edges, clusters, stack = {}, [], [], []
    for line in dot.source.splitlines():
        if m := _CLUSTER.match(line):
            stack.append(m.group(1))
            clusters.append(tuple(stack))
        elif line.strip() == "}" and stack:
            stack.pop()
        elif m := _NODE.match(line):
            nodes[m.group(1)] = (_text(m.group(2)), m.group(4), tuple(stack))
        elif m := _EDGE.match(line):
            edges.append((m.group(1), m.group(2), m.group(3)))
    return {"nodes": nodes, "edges": edges, "clusters": clusters}


def node_by_text(parsed: dict, text: str) -> str:
    hits = [k for k, (t, _, _) in parsed["nodes"].items() if t == text]
    assert len(hits) == 1, (text, [t for t, _, _ in parsed["nodes"].values()])
    return hits[0]


def edge_label(attrs: str) -> str | None:
    m = re.search(r'label="((?:[^"\\]|\\.)*)"', attrs)
    return m.group(1) if m else None


def mlp():
    """A small model with scopes, variables, placeholders, constants and a control edge."""
    g = gf.Graph()
    with g.as_default():
        x = gf.placeholder(gf.float32, [None, 4], name="x")
        with gf.name_scope("dense"):
            w = gf.Variable(gf.zeros([4, 3]), name="w")
            h = gf.nn.relu(gf.matmul(x, w))
        with gf.name_scope("loss"):
            loss = gf.reduce_sum(h)
        step = gf.Variable(0, name="step", trainable=False)
        with gf.control_dependencies([loss]):
            inc = gf.assign_add(step, 1)
    return g, x, w, h, loss, step, inc


# --- structure --------------------------------------------------------------------------------
def test_every_op_is_a_node_and_every_input_an_edge():
    g, *_ = mlp()
    dot = viz.to_dot(g)
    assert isinstance(dot, graphviz.Digraph)
    p = parse(dot)
    ops = g.get_operations()
    assert len(p["nodes"]) == len(ops)
    data = {(t.op.name, op.name) for op in ops for t in op.inputs}
    control = {(c.name, op.name) for op in ops for c in op.control_inputs}
    dashed = [e for e in p["edges"] if "style=dashed" in e[2]]
    assert len(p["edges"]) == len(data) + len(control)
    assert len(dashed) == len(control) == 2  # AssignAdd and its `value` constant
    # Type, then the name relative to the enclosing cluster (once if it equals the type).
    texts = sorted(t.split("\n") for t, _, _ in p["nodes"].values())
    assert sorted(t[0] for t in texts) == sorted(op.type for op in ops)
    for op in ops:
        assert any(t[0] == op.type and op.name.endswith(t[-1]) for t in texts), op.name


def test_scopes_are_nested_clusters():
    g, *_ = mlp()
    dot = viz.to_dot(g)
    p = parse(dot)
    # dense, dense/w (the variable with its Assign and read), loss, step and
    # step/initial_value; AssignAdd holds only its op and a constant, so it is no cluster.
    assert len(p["clusters"]) == 5
    assert sorted(len(c) for c in p["clusters"]) == [1, 1, 1, 2, 2]
    assert dot.source.count("subgraph") == 5
    matmul = node_by_text(p, "MatMul")
    variable = node_by_text(p, "VariableV2\nw")
    assert len(p["nodes"][matmul][2]) == 1   # dense
    assert len(p["nodes"][variable][2]) == 2  # dense/w
    assert p["nodes"][node_by_text(p, "AssignAdd")][2] == ()
    assert p["nodes"][node_by_text(p, "Const\n= 1\nAssignAdd/value")][2] == ()


def test_node_styles_by_kind():
    g = gf.Graph()
    with g.as_default():
        x = gf.placeholder(gf.float32, [2], name="x")
        v = gf.Variable([1.0, 2.0], name="v")
        y = gf.multiply(x, v, name="y")
        with gf.name_scope("gradients"):
            gy = gf.identity(y, name="y_grad")
        gf.assign_sub(v, gy, name="update")
    p = parse(viz.to_dot(g))

    def attrs(text):
        return p["nodes"][node_by_text(p, text)][1]

    kinds = {
        "Placeholder\nx": viz._NODE_STYLES["placeholder"],
        "VariableV2\nv": viz._NODE_STYLES["variable"],
        "Mul\ny": viz._NODE_STYLES["op"],
        "Identity\ny_grad": viz._NODE_STYLES["gradient"],
        "AssignSub\nupdate": viz._NODE_STYLES["update"],
        "Assign": viz._NODE_STYLES["update"],
    }
    for text, style in kinds.items():
        assert f'fillcolor="{style["fillcolor"]}"' in attrs(text), text
    const = next(a for t, a, _ in p["nodes"].values() if t.startswith("Const"))
    assert f'fillcolor="{viz._NODE_STYLES["constant"]["fillcolor"]}"' in const
    fills = {s["fillcolor"] for k, s in viz._NODE_STYLES.items() if "scope" not in k}
    assert len(fills) == 7  # six kinds of graph op, plus library kernels in the compiled view


def test_edges_carry_dtype_and_static_shape():
    g, x, w, h, loss, step, inc = mlp()
    p = parse(viz.to_dot(g))
    labels = {(p["nodes"][a][0], p["nodes"][b][0]): edge_label(attrs)
              for a, b, attrs in p["edges"]}
    assert labels[("Placeholder\nx", "MatMul")] == "float32 [?,4]"
    assert labels[("MatMul", "Relu")] == "float32 [?,3]"
    assert labels[("Relu", "Sum")] == "float32 [?,3]"
    assert labels[("Sum", "AssignAdd")] is None  # control dependency: no tensor
    assert labels[("VariableV2\nstep", "AssignAdd")] == "int32_ref []"
    assert labels[("VariableV2\nw", "Identity\nread")] == "float32 [4,3]"
    plain = parse(viz.to_dot(g, edge_labels=False))
    assert all(edge_label(attrs) is None for _, _, attrs in plain["edges"])


def test_unknown_rank_and_multi_output_labels():
    g = gf.Graph()
    with g.as_default():
        x = gf.placeholder(gf.float32, None, name="x")
        a, b = gf.split(gf.placeholder(gf.float32, [4, 2], name="y"), 2)
        gf.identity(x, name="ix")
        gf.add(a, b, name="sum")
    p = parse(viz.to_dot(g))
    labels = [edge_label(attrs) for _, _, attrs in p["edges"]]
    assert "float32 <unknown>" in labels
    assert "2 tensors" in labels  # both outputs of Split feed `sum`: one merged edge


# --- collapsing ------------------------------------------------------------------------------
def test_max_depth_collapses_scopes_into_counted_nodes():
    g, *_ = mlp()
    p = parse(viz.to_dot(g, max_depth=1))
    assert p["clusters"] == []
    texts = sorted(t for t, _, _ in p["nodes"].values())
    # 14 ops: x; dense/{zeros, w, w/Assign, w/read, MatMul, Relu}; loss/Sum;
    # step/{initial_value/initial_value, Assign, read} and step; AssignAdd(/value).
    # A scope with a single op shows the op rather than "1 op".
    assert texts == ["AssignAdd", "Const\n= 1\nAssignAdd/value", "Placeholder\nx",
                     "Sum\nloss/Sum", "dense\n6 ops", "step\n4 ops"]
    # Edges between collapsed nodes are merged: at most one per (pair, kind).
    keys = [(a, b, "dashed" in attrs) for a, b, attrs in p["edges"]]
    assert len(keys) == len(set(keys))
    assert all(a != b for a, b, _ in p["edges"])
    dense, loss, step = (node_by_text(p, t) for t in ("dense\n6 ops", "Sum\nloss/Sum",
                                                       "step\n4 ops"))
    x, inc = node_by_text(p, "Placeholder\nx"), node_by_text(p, "AssignAdd")
    assert {(a, b) for a, b, _ in p["edges"]} == {
        (x, dense), (dense, loss), (step, inc), (loss, inc),
        (node_by_text(p, "Const\n= 1\nAssignAdd/value"), inc),
        (loss, node_by_text(p, "Const\n= 1\nAssignAdd/value"))}
    assert "shape=box3d" in p["nodes"][dense][1]


def test_max_depth_two_keeps_outer_clusters():
    g, *_ = mlp()
    p = parse(viz.to_dot(g, max_depth=2))
    assert p["clusters"] and all(len(c) == 1 for c in p["clusters"])
    w = node_by_text(p, "w\n3 ops")  # dense/w: VariableV2, Assign, read
    assert len(p["nodes"][w][2]) == 1
    assert node_by_text(p, "MatMul")


def test_merged_edges_count_tensors():
    g = gf.Graph()
    with g.as_default():
        with gf.name_scope("a"):
            x = gf.placeholder(gf.float32, [3], name="x")
            y = gf.placeholder(gf.float32, [3], name="y")
        with gf.name_scope("b"):
            gf.add(x, y)
            gf.multiply(x, y)
    p = parse(viz.to_dot(g, max_depth=1))
    (edge,) = p["edges"]
    assert edge_label(edge[2]) == "2 tensors" and "penwidth=2.00" in edge[2]


def test_gradient_scopes_collapse_in_gradient_colour():
    g = gf.Graph()
    with g.as_default(), gf.name_scope("gradients"):
        gf.identity(gf.constant(1.0))
    p = parse(viz.to_dot(g, max_depth=1))
    (attrs,) = [a for _, a, _ in p["nodes"].values()]
    assert viz._NODE_STYLES["gradient_scope"]["fillcolor"] in attrs


def test_bad_max_depth_and_inputs():
    g, *_ = mlp()
    for bad in (0, -1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="max_depth"):
            viz.to_dot(g, max_depth=bad)
    with pytest.raises(ValueError, match="rankdir"):
        viz.to_dot(g, rankdir="up")
    x = g.get_operation_by_name("x").outputs[0]
    with pytest.raises(TypeError, match="fetches=") as e:
        viz.to_dot(x)
    assert isinstance(e.value, gf.errors.OpError)
    for bad in ("model.gfpb", object(), 3):
        with pytest.raises(TypeError, match="compiled Plan"):
            viz.to_dot(bad)


def test_default_graph_and_gf_namespace():
    gf.placeholder(gf.float32, [1], name="x")
    assert gf.viz.to_dot is viz.to_dot
    assert len(parse(gf.viz.to_dot())["nodes"]) == 1
    assert len(parse(gf.viz.to_dot(None))["nodes"]) == 1


# --- fetches ----------------------------------------------------------------------------------
def test_fetches_restrict_to_needed_ops():
    g, x, w, h, loss, step, inc = mlp()
    p = parse(viz.to_dot(g, fetches=h))
    texts = {t for t, _, _ in p["nodes"].values()}
    assert texts == {"Placeholder\nx", "VariableV2\nw", "Identity\nread", "MatMul", "Relu"}
    # Control inputs are needed too; names, Variables and nested structures work.
    p = parse(viz.to_dot(g, fetches={"step": [inc.op.name], "w": (w,)}))
    texts = {t for t, _, _ in p["nodes"].values()}
    assert {"AssignAdd", "Sum", "Relu", "VariableV2\nstep", "VariableV2\nw"} <= texts
    assert "Assign" not in texts  # initializers are not needed by the increment
    assert any("style=dashed" in attrs for _, _, attrs in p["edges"])
    # Collapsed counts only count what is drawn.
    p = parse(viz.to_dot(g, fetches=[loss], max_depth=1))
    assert "dense\n4 ops" in {t for t, _, _ in p["nodes"].values()}


def test_bad_fetches():
    g, *_ = mlp()
    with pytest.raises(ValueError):
        viz.to_dot(g, fetches="missing:0")
    with pytest.raises(ValueError):
        viz.to_dot(g, fetches=gf.Graph().as_graph_element(
            gf.Graph().create_op("NoOp", [], name="n")))
    with pytest.raises(TypeError):
        viz.to_dot(g, fetches=[3])


# --- escaping ---------------------------------------------------------------------------------
WEIRD = 'we"ird {braces} [x]|y \\back\\slash\\N\\l <b>&amp; ünïcödé €\tend\\'


def weird_graph():
    g = gf.Graph()
    with g.as_default():
        x = gf.placeholder(gf.float32, [2], name="x")
        # A name ending in "/" is taken as is, as graph files may carry any name.
        op = g.create_op("Identity", [x], name=f"sc\u00f6pe/{WEIRD}/")
    return g, op


def test_labels_are_escaped_in_dot_text():
    g, op = weird_graph()
    dot = viz.to_dot(g)
    p = parse(dot)
    shown = WEIRD.replace("\t", "\\t")  # control characters appear as escapes
    ident = next(k for k, (t, _, _) in p["nodes"].items() if t.startswith("Identity"))
    label_html = re.match(r".*label=<(.*)> tooltip", dot.source.split(f"\t{ident} [")[1]).group(1)
    assert "<b>" not in label_html and "&lt;b&gt;" in label_html
    # Backslashes are doubled so that graphviz's \N, \l, ... escapes do not fire.
    assert _text(label_html).split("\n")[1] == shown.replace("\\", "\\\\")
    assert any(c == ("cluster_0",) for c in p["clusters"])
    assert "sc\u00f6pe" in dot.source


@needs_dot
def test_any_name_renders_as_itself(tmp_path):
    g, op = weird_graph()
    out = viz.render(g, tmp_path / "weird.svg", full_names=True)
    svg = out.read_text(encoding="utf-8")
    shown = op.name.replace("\t", "\\t")  # control characters appear as escapes
    texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
    assert shown in texts
    titles = [html.unescape(t) for t in re.findall(r'xlink:title="([^"]*)"', svg)]
    assert shown + " (Identity)" in titles


# --- rendering --------------------------------------------------------------------------------
@needs_dot
@pytest.mark.parametrize("suffix,magic", [
    (".svg", None), (".png", b"\x89PNG\r\n\x1a\n"), (".pdf", b"%PDF-"), (".PNG", b"\x89PNG")])
def test_render_by_suffix(tmp_path, suffix, magic):
    g, *_ = mlp()
    path = tmp_path / f"model{suffix}"
    out = gf.viz.render(g, str(path))
    assert out == path and path.stat().st_size > 100
    data = path.read_bytes()
    if magic is None:
        assert b"<svg" in data[:1000] and b"MatMul" in data
    else:
        assert data.startswith(magic)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left


@needs_dot
def test_render_accepts_a_digraph_and_options(tmp_path):
    g, x, w, h, *_ = mlp()
    dot = viz.to_dot(g, fetches=[h])
    svg = viz.render(dot, tmp_path / "a.svg").read_text()
    assert "Relu" in svg and "AssignAdd" not in svg
    svg = viz.render(g, tmp_path / "b.svg", fetches=[h], max_depth=1, rankdir="LR").read_text()
    assert "dense" in svg and "Relu" not in svg
    with pytest.raises(ValueError, match="fetches"):
        viz.render(dot, tmp_path / "c.svg", max_depth=1)


def test_render_dot_text_needs_no_dot(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    g, *_ = mlp()
    text = viz.render(g, tmp_path / "model.gv").read_text(encoding="utf-8")
    assert text == viz.to_dot(g).source
    with pytest.raises(ValueError, match=r"\.svg"):
        viz.render(g, tmp_path / "model.jpeg")


def test_missing_dot_says_what_to_install(tmp_path, monkeypatch):
    g, *_ = mlp()
    target = tmp_path / "model.svg"
    target.write_text("previous")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert parse(viz.to_dot(g))["nodes"]  # drawing DOT needs no `dot`
    with pytest.raises(gf.errors.NotFoundError, match="apt-get install graphviz") as e:
        viz.render(g, target)
    assert "`dot`" in e.value.message
    assert target.read_text() == "previous"  # nothing half-written
    assert viz._graph_svg(g) is None  # Jupyter falls back to the text repr


# --- Jupyter ----------------------------------------------------------------------------------
class _FakeFormatter:
    def __init__(self):
        self.registered = {}

    def for_type(self, typ, func):
        self.registered[typ] = func


class _FakeShell:
    def __init__(self):
        self.display_formatter = type("DF", (), {})()
        self.display_formatter.formatters = {"image/svg+xml": _FakeFormatter()}


def test_digraph_displays_itself_in_jupyter():
    g, *_ = mlp()
    assert hasattr(viz.to_dot(g), "_repr_mimebundle_")


@needs_dot
def test_graphs_display_inline_in_ipython():
    shell = _FakeShell()
    assert viz._install_ipython_display(shell)
    func = shell.display_formatter.formatters["image/svg+xml"].registered[gf.Graph]
    g, *_ = mlp()
    svg = func(g)
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert func(gf.Graph()) is None
    assert not viz._install_ipython_display(object())
    assert not viz._install_ipython_display()  # no IPython running here


# --- size -------------------------------------------------------------------------------------
def big_graph(scopes: int = 50, per_scope: int = 34):
    g = gf.Graph()
    with g.as_default():
        h = gf.placeholder(gf.float32, [None, 8], name="x")
        for i in range(scopes):
            with gf.name_scope(f"block{i}"):
                for _ in range(per_scope):
                    h = gf.tanh(h * 1.5)  # 3 ops: the constant, Mul, Tanh
    return g


@needs_dot
def test_five_thousand_ops_render_collapsed(tmp_path):
    g = big_graph()
    assert len(g.get_operations()) > 5000
    p = parse(viz.to_dot(g, max_depth=1))
    assert len(p["nodes"]) == 51 and len(p["edges"]) == 50
    assert {t for t, _, _ in p["nodes"].values()} >= {"block0\n102 ops", "block49\n102 ops"}
    out = viz.render(g, tmp_path / "big.svg", max_depth=1)
    assert "block49" in out.read_text()


def test_five_thousand_ops_expanded_dot_text():
    g = big_graph()
    p = parse(viz.to_dot(g))
    assert len(p["nodes"]) == len(g.get_operations())
    assert len(p["clusters"]) == 50


def test_compiled_view_draws_each_fused_kernel_as_a_cluster(tmp_path):
    x = gf.placeholder(gf.float32, [None, 4], name="x")
    w = gf.Variable(np.ones((4, 3), np.float32), name="w")
    y = gf.reduce_sum(gf.tanh(gf.matmul(x, w) * 2.0 + 1.0) * gf.sigmoid(x[:, :3]), axis=1)
    explanation = gf.compiler.explain(y, {x: None})
    plan = explanation.plan
    fused = [s for s in plan.steps if len(getattr(s, "nodes", [])) > 1]
    assert fused, "the expression should fuse"
    dot = viz.to_dot(explanation)
    source = dot.source
    assert source.count("subgraph cluster_") == sum(
        1 for s in plan.steps if getattr(s, "nodes", None)
        and not (len(s.nodes) == 1 and s.nodes[0].kind == "opaque"))
    # every IR node is drawn once; the library kernel is marked
    nodes = parse(dot)["nodes"]
    assert len(nodes) == len(plan.program.nodes) + len(plan.program.inputs) - sum(
        1 for f, _ in plan.program.inputs if f in plan.program.nodes)
    assert "#fff2b3" in source  # the library-kernel style (MatMul)
    assert viz.to_dot(plan).source == source
    out = tmp_path / "plan.svg"
    viz.render(explanation, out)
    assert "<svg" in out.read_text()
