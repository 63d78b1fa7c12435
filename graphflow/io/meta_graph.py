"""Meta graphs: a graph with its collections and saver, to resume training from files.

Collection items are stored by name: Tensors and Operations as ``node_list``
(``"x:0"``, ``"train"``), Variables as ``variable_list`` (the names of their
VariableV2 op, initializer, snapshot and initial value), strings and numbers
as plain lists. Importing rebuilds the graph, then the collections, with the
Variable objects recreated around the imported ops.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from graphflow.framework import errors
from graphflow.framework.graph import Graph, Operation, Tensor, get_default_graph
from graphflow.io import graph_io
from graphflow.io.messages import (
    BytesList,
    CollectionDef,
    FloatList,
    GraphDef,
    Int64List,
    MetaGraphDef,
    MetaInfoDef,
    NodeDef,
    NodeList,
    SaverDef,
    VariableDef,
    VariableList,
)
from graphflow.ops.state_ops import Variable

META_GRAPH_VERSION = "graphflow-1"


def _graphflow_version() -> str:
    import graphflow

    return getattr(graphflow, "__version__", "")


def variable_to_def(v: Variable) -> VariableDef:
    """The VariableDef naming ``v``'s ops and tensors.

    Args:
      v: a Variable.

    Returns:
      A VariableDef.
    """
    init = v.initial_value
    return VariableDef(variable_name=v.name, initializer_name=v.initializer.name,
                       snapshot_name=v.value().name,
                       initial_value_name=init.name if init is not None else "",
                       trainable=bool(v.trainable))


def variable_from_def(graph: Graph, vdef: VariableDef, prefix: str = "",
                      source: str = "MetaGraphDef") -> Variable:
    """A Variable object around ops already in ``graph`` (TF1's ``Variable(variable_def=)``).

    Args:
      graph: the graph holding the imported ops.
      vdef: the VariableDef.
      prefix: the import scope prepended to every name (``"scope/"`` or "").
      source: the file, for error messages.

    Returns:
      A Variable that reads, assigns and initializes through the existing ops.

    Raises:
      errors.InvalidArgumentError: if a named op or tensor is missing or of the
        wrong type.
    """
    def find(name: str, tensor: bool) -> Any:
        full = prefix + name
        try:
            el = graph.as_graph_element(full, allow_tensor=tensor, allow_operation=not tensor)
        except (KeyError, ValueError, TypeError) as e:
            raise errors.InvalidArgumentError(
                None, None, f"{source}: variable {vdef.variable_name!r} refers to {full!r}, "
                            f"which is not in the graph ({e})") from None
        if tensor != isinstance(el, Tensor):
            raise errors.InvalidArgumentError(
                None, None, f"{source}: variable {vdef.variable_name!r}: {full!r} should name "
                            f"a {'tensor' if tensor else 'operation'}")
        return el

    ref = find(vdef.variable_name, True)
    if ref.op.type != "VariableV2":
        raise errors.InvalidArgumentError(
            None, None, f"{source}: {vdef.variable_name!r} is a {ref.op.type} output, not a "
                        "variable")
    v = Variable.__new__(Variable)
    v._variable = ref
    v._initializer_op = find(vdef.initializer_name, False)
    v._snapshot = find(vdef.snapshot_name, True)
    v._initial_value = find(vdef.initial_value_name, True) if vdef.initial_value_name else None
    v._trainable = bool(vdef.trainable)
    v._constraint = None
    v._graph = graph
    return v


def _collection_to_proto(key: str, items: list[Any]) -> CollectionDef | None:
    if all(isinstance(i, Variable) for i in items):
        return CollectionDef(variable_list=VariableList(value=[variable_to_def(i)
                                                               for i in items]))
    if all(isinstance(i, (Tensor, Operation)) for i in items):
        return CollectionDef(node_list=NodeList(value=[i.name for i in items]))
    if all(isinstance(i, (str, bytes)) for i in items):
        return CollectionDef(bytes_list=BytesList(
            value=[i.encode("utf-8") if isinstance(i, str) else i for i in items]))
    if all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        if all(-(1 << 63) <= i < (1 << 63) for i in items):
            return CollectionDef(int64_list=Int64List(value=list(items)))
    if all(isinstance(i, float) for i in items):
        return CollectionDef(float_list=FloatList(value=list(items)))
    kinds = sorted({type(i).__name__ for i in items})
    warnings.warn(f"Collection {key!r} holds items of types {kinds} that a meta graph cannot "
                  "store; it is not exported", stacklevel=3)
    return None


def export_meta_graph(filename: str | None = None, meta_info_def: MetaInfoDef | None = None,
                      graph_def: GraphDef | None = None, saver_def: SaverDef | None = None,
                      collection_list: list[str] | None = None, as_text: bool = False,
                      graph: Graph | None = None, export_scope: str | None = None,
                      clear_devices: bool = False, clear_extraneous_savers: bool = False,
                      strip_default_attrs: bool = False, save_debug_info: bool = False,
                      large_tensor_threshold: int | None = None, **kwargs: Any
                      ) -> MetaGraphDef:
    """Exports a graph with its collections (TF1's ``tf.train.export_meta_graph``).

    Args:
      filename: if given, the MetaGraphDef is written there atomically (large
        tensors in a side file, as :func:`write_graph`).
      meta_info_def: a MetaInfoDef to store (default: versions filled in).
      graph_def: the graph to store (default: ``graph.as_graph_def(add_shapes=True)``).
      saver_def: a SaverDef to store (``Saver.as_saver_def()``).
      collection_list: names of collections to store (default: all).
      as_text: write the text form.
      graph: the graph (default: the default graph).
      export_scope: not supported; must be None.
      clear_devices: drop device strings.
      clear_extraneous_savers, strip_default_attrs, save_debug_info: accepted for
        TF1 compatibility.
      large_tensor_threshold: as for :func:`write_graph`.
      **kwargs: accepted for TF1 compatibility.

    Returns:
      The MetaGraphDef.

    Raises:
      errors.UnimplementedError: if ``export_scope`` is given.
      errors.InvalidArgumentError: if an op attr holds a value no file can store.
      errors.OpError: if the file cannot be written.
    """
    if export_scope:
        raise errors.UnimplementedError(None, None, "export_meta_graph(export_scope=...) is "
                                                    "not supported")
    graph = graph or get_default_graph()
    if graph_def is None:
        graph_def = graph.as_graph_def(add_shapes=True)
    if clear_devices:
        graph_def = GraphDef(versions=graph_def.versions, node=[
            NodeDef(name=n.name, op=n.op, input=list(n.input), attr=n.attr)
            for n in graph_def.node])
    info = meta_info_def or MetaInfoDef()
    if not info.meta_graph_version:
        info.meta_graph_version = META_GRAPH_VERSION
    if not info.graphflow_version:
        info.graphflow_version = _graphflow_version()
    collections = {}
    keys = collection_list if collection_list is not None else graph.get_all_collection_keys()
    for key in keys:
        items = graph.get_collection(key)
        if items:
            cd = _collection_to_proto(key, items)
            if cd is not None:
                collections[key] = cd
    meta = MetaGraphDef(meta_info_def=info, graph_def=graph_def, saver_def=saver_def,
                        collection_def=collections)
    if filename is not None:
        graph_io.write_message_file(meta, os.fspath(filename), as_text, large_tensor_threshold)
    return meta


def read_meta_graph_file(filename: str) -> MetaGraphDef:
    """Reads a MetaGraphDef file (binary or text), with its side file.

    Raises:
      errors.NotFoundError: if the file does not exist.
      errors.DataLossError: if it is damaged.
    """
    return graph_io.read_message_file(filename, MetaGraphDef)


def import_meta_graph(meta_graph_or_file: MetaGraphDef | str, clear_devices: bool = False,
                      import_scope: str | None = None, input_map: dict | None = None,
                      **kwargs: Any) -> Any:
    """Imports a meta graph into the default graph (TF1's ``tf.train.import_meta_graph``).

    Args:
      meta_graph_or_file: a MetaGraphDef or the path of a meta graph file.
      clear_devices: drop device strings.
      import_scope: a name scope for the imported names (made unique).
      input_map: as for :func:`import_graph_def`.
      **kwargs: accepted for TF1 compatibility.

    Returns:
      A ``Saver`` for the imported variables (configured by the stored SaverDef),
      or None if there are no variables.

    Raises:
      errors.NotFoundError: if the file does not exist.
      errors.DataLossError: if it is damaged.
      errors.InvalidArgumentError: if its content is invalid.
    """
    from graphflow.io.saver import Saver

    if isinstance(meta_graph_or_file, MetaGraphDef):
        meta = meta_graph_or_file
    else:
        meta = read_meta_graph_file(meta_graph_or_file)
    source = getattr(meta, "_source", None) or "MetaGraphDef"
    graph = get_default_graph()
    gd = meta.graph_def or GraphDef()
    if getattr(gd, "_source", None) is None:
        object.__setattr__(gd, "_source", source)
    _, prefix = graph_io._import(graph, gd, input_map, import_scope or "", clear_devices)
    variables: dict[str, Variable] = {}

    def var_of(vdef: VariableDef) -> Variable:
        v = variables.get(vdef.variable_name)
        if v is None:
            v = variables[vdef.variable_name] = variable_from_def(graph, vdef, prefix, source)
        return v

    for key in sorted(meta.collection_def):
        cd = meta.collection_def[key]
        kind = cd.WhichOneof("kind")
        if kind is None:
            continue
        values = getattr(cd, kind).value
        for value in values:
            if kind == "variable_list":
                item: Any = var_of(value)
            elif kind == "node_list":
                try:
                    item = graph.as_graph_element(prefix + value)
                except (KeyError, ValueError, TypeError) as e:
                    raise errors.InvalidArgumentError(
                        None, None, f"{source}: collection {key!r} names {value!r}, which is "
                                    f"not in the graph ({e})") from None
            elif kind == "bytes_list":
                try:
                    item = bytes(value).decode("utf-8")
                except UnicodeDecodeError:
                    item = bytes(value)
            else:
                item = value
            graph.add_to_collection(key, item)
    if meta.saver_def is not None and meta.saver_def.variables:
        var_list = {}
        by_op = {v.op.name: v for v in variables.values()}
        for ckpt_key, op_name in sorted(meta.saver_def.variables.items()):
            v = by_op.get(prefix + op_name)
            if v is None:
                try:
                    v = graph.get_operation_by_name(prefix + op_name)
                except (KeyError, TypeError) as e:
                    raise errors.InvalidArgumentError(
                        None, None, f"{source}: saver variable {op_name!r} is not in the graph "
                                    f"({e})") from None
                if v.type != "VariableV2":
                    raise errors.InvalidArgumentError(
                        None, None, f"{source}: saver variable {op_name!r} is a {v.type} op, "
                                    "not a variable")
            var_list[ckpt_key] = v
        return Saver(var_list=var_list, saver_def=meta.saver_def)
    global_vars = graph.get_collection("variables")
    if global_vars:
        return Saver(var_list=global_vars)
    return None
