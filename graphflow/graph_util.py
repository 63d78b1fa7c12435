"""``gf.graph_util``: TF1's helpers for GraphDefs, including freezing a trained graph."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from graphflow.framework import errors
from graphflow.io.messages import AttrValue, GraphDef, NodeDef
from graphflow.io.tensors import enum_to_dtype, make_tensor_proto

_WRITERS = ("Assign", "AssignAdd", "AssignSub", "IsVariableInitialized")


def _node_name(text: str) -> str:
    if text.startswith("^"):
        text = text[1:]
    name, sep, idx = text.rpartition(":")
    return name if sep and idx.isdigit() else text


def extract_sub_graph(graph_def: GraphDef, dest_nodes: Iterable[str]) -> GraphDef:
    """The part of ``graph_def`` that ``dest_nodes`` depend on (TF1's ``extract_sub_graph``).

    Args:
      graph_def: the GraphDef.
      dest_nodes: names of the nodes to keep, with everything they need (data
        and control inputs).

    Returns:
      A new GraphDef with those nodes, in their original order.

    Raises:
      TypeError: if ``graph_def`` is not a GraphDef or ``dest_nodes`` is a string.
      ValueError: if a destination node is not in the graph.
    """
    if not isinstance(graph_def, GraphDef):
        raise TypeError(f"graph_def must be a GraphDef, got {type(graph_def).__name__}")
    if isinstance(dest_nodes, str):
        raise TypeError("dest_nodes must be a list of node names, not a string")
    by_name = {n.name: n for n in graph_def.node}
    keep: set[str] = set()
    stack = []
    for d in dest_nodes:
        name = _node_name(d)
        if name not in by_name:
            raise errors.GraphValueError(None, None, f"{d!r} is not in graph")
        stack.append(name)
    while stack:
        name = stack.pop()
        if name in keep:
            continue
        keep.add(name)
        for i in by_name[name].input:
            src = _node_name(i)
            if src not in by_name:
                raise errors.GraphValueError(None, None, f"node {name!r} has input {i!r}, "
                                                         "which is not in graph")
            stack.append(src)
    return GraphDef(node=[n for n in graph_def.node if n.name in keep],
                    versions=graph_def.versions)


def convert_variables_to_constants(sess: Any, input_graph_def: GraphDef,
                                   output_node_names: list[str],
                                   variable_names_whitelist: Iterable[str] | None = None,
                                   variable_names_blacklist: Iterable[str] | None = None
                                   ) -> GraphDef:
    """Freezes a trained graph: variables become constants holding their values in ``sess``.

    Only what ``output_node_names`` need is kept (initializers and training ops
    go), so the result runs with no checkpoint (TF1's
    ``tf.graph_util.convert_variables_to_constants``).

    Args:
      sess: the Session holding the variables' values.
      input_graph_def: the graph, usually ``sess.graph.as_graph_def()``.
      output_node_names: the nodes to keep (e.g. ``["softmax"]``).
      variable_names_whitelist: if given, only these variables are converted.
      variable_names_blacklist: variables not to convert.

    Returns:
      The frozen GraphDef.

    Raises:
      ValueError: if an output node is not in the graph.
      errors.FailedPreconditionError: if a converted variable is not initialized.
      errors.InvalidArgumentError: if a kept op writes a converted variable.
    """
    sub = extract_sub_graph(input_graph_def, output_node_names)
    allow = None if variable_names_whitelist is None else set(variable_names_whitelist)
    deny = set(variable_names_blacklist or ())
    converted: set[str] = set()
    nodes = []
    state = sess._state.variables
    for node in sub.node:
        if node.op == "VariableV2" and (allow is None or node.name in allow) and \
                node.name not in deny:
            with sess._lock:
                value = state.get(node.name)
            if value is None:
                raise errors.FailedPreconditionError(
                    None, None, f"Attempting to use uninitialized value {node.name}")
            dtype_attr = node.attr.get("dtype")
            if dtype_attr is not None and dtype_attr.WhichOneof("value") == "type":
                dtype = enum_to_dtype(dtype_attr.type, f"node {node.name!r}")
            else:
                dtype = None
            tensor = make_tensor_proto(value, dtype)
            nodes.append(NodeDef(name=node.name, op="Const", device=node.device, attr={
                "dtype": AttrValue(type=tensor.dtype), "value": AttrValue(tensor=tensor)}))
            converted.add(node.name)
        else:
            nodes.append(node)
    for node in nodes:
        if node.op in _WRITERS and node.input and _node_name(node.input[0]) in converted:
            raise errors.InvalidArgumentError(
                None, None, f"Cannot freeze: node {node.name!r} ({node.op}) uses variable "
                            f"{_node_name(node.input[0])!r} as a variable; choose outputs "
                            "that do not update or test variables")
    return GraphDef(node=nodes, versions=sub.versions)


def remove_training_nodes(input_graph: GraphDef,
                          protected_nodes: Iterable[str] | None = None) -> GraphDef:
    """Removes Identity and StopGradient nodes that only pass a value through.

    Consumers are rewired to the node's input. Nodes in ``protected_nodes``, and
    nodes with control inputs or that are control inputs of others, are kept.

    Args:
      input_graph: the GraphDef.
      protected_nodes: names never removed (e.g. the outputs).

    Returns:
      A new GraphDef.
    """
    protected = set(protected_nodes or ())
    control_targets = {i[1:] for n in input_graph.node for i in n.input if i.startswith("^")}
    bypass: dict[str, str] = {}
    for n in input_graph.node:
        if n.op in ("Identity", "StopGradient") and n.name not in protected and \
                n.name not in control_targets and len(n.input) == 1 and \
                not n.input[0].startswith("^"):
            bypass[n.name] = n.input[0]

    def resolve(text: str) -> str:
        if text.endswith(":0"):
            text = text[:-2]
        seen = 0
        while text in bypass and seen <= len(bypass):
            text = bypass[text]
            seen += 1
        return text

    nodes = []
    for n in input_graph.node:
        if n.name in bypass:
            continue
        inputs = [i if i.startswith("^") else resolve(i) for i in n.input]
        nodes.append(NodeDef(name=n.name, op=n.op, input=inputs, device=n.device,
                             attr=dict(n.attr)))
    return GraphDef(node=nodes, versions=input_graph.versions)
