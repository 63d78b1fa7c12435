"""Graphs to GraphDefs and back; graph files (binary or text, with side files).

``graph.as_graph_def()`` records every op with its name, type, inputs (``x``,
``x:1``, ``^ctrl``), device and attributes; :func:`import_graph_def` rebuilds
the ops through ``Graph.create_op``, so each is checked by its registration
exactly as when it was first built. Loading never runs code from the file: op
types are looked up in the op registry and attribute values are plain data.
"""

from __future__ import annotations

import heapq
import os
from typing import Any

from graphflow.framework import errors, op_def
from graphflow.framework.graph import (
    Graph,
    Operation,
    Tensor,
    get_default_graph,
)
from graphflow.io import files, text_format
from graphflow.io.messages import AttrValue, GraphDef, ListValue, NodeDef, VersionDef
from graphflow.io.tensors import attr_to_proto, proto_to_attr, proto_to_shape, shape_to_proto
from graphflow.io.wire import Message, serialize_chunks

#: The GraphDef version this graphflow produces, and the oldest it can consume.
GRAPH_DEF_VERSION = 1
GRAPH_DEF_VERSION_MIN_CONSUMER = 0
GRAPH_DEF_VERSION_MIN_PRODUCER = 0

#: Keep at most this many bytes of tensor data inside a graph file when writing with
#: ``large_tensor_threshold=None``; the largest tensors beyond it go to the side file,
#: so the message stays far below protobuf's 2 GiB limit.
INLINE_TENSOR_BUDGET = 1 << 30

_OUTPUT_SHAPES = "_output_shapes"


# --- Graph -> GraphDef ---------------------------------------------------------------
def _input_name(t: Tensor) -> str:
    return t.op.name if t.value_index == 0 else f"{t.op.name}:{t.value_index}"


def graph_to_graph_def(graph: Graph, from_version: int | None = None,
                       add_shapes: bool = False) -> GraphDef:
    """The GraphDef of ``graph`` (``Graph.as_graph_def``).

    Args:
      graph: the graph.
      from_version: not supported (TF1 returns only ops added since a version).
      add_shapes: if True, record each op's static output shapes in an
        ``_output_shapes`` attr; importing restores them.

    Returns:
      A GraphDef with one NodeDef per op, in creation order.

    Raises:
      errors.UnimplementedError: if ``from_version`` is given.
      errors.InvalidArgumentError: if an op attr holds a value no file can store.
    """
    if from_version is not None:
        raise errors.UnimplementedError(None, None, "as_graph_def(from_version=...) is not "
                                                    "supported; export the whole graph")
    nodes = []
    for op in graph.get_operations():
        inputs = [_input_name(t) for t in op.inputs]
        inputs += ["^" + c.name for c in op.control_inputs]
        attr = {}
        for k, v in op._attrs.items():
            attr[k] = attr_to_proto(v, f"node {op.name!r} ({op.type}) attr {k!r}")
        if add_shapes:
            attr[_OUTPUT_SHAPES] = AttrValue(
                list=ListValue(shape=[shape_to_proto(t.shape) for t in op.outputs]))
        nodes.append(NodeDef(name=op.name, op=op.type, input=inputs, device=op.device or "",
                             attr=attr))
    return GraphDef(node=nodes, versions=VersionDef(
        producer=GRAPH_DEF_VERSION, min_consumer=GRAPH_DEF_VERSION_MIN_CONSUMER))


# --- GraphDef -> Graph ---------------------------------------------------------------
def _source(graph_def: Message) -> str:
    return getattr(graph_def, "_source", None) or "GraphDef"


def _check_versions(graph_def: GraphDef, source: str) -> None:
    v = graph_def.versions
    if v is None:
        return
    if v.min_consumer > GRAPH_DEF_VERSION:
        raise errors.InvalidArgumentError(
            None, None, f"{source}: GraphDef min consumer version {v.min_consumer} is above "
                        f"this graphflow's version {GRAPH_DEF_VERSION}; upgrade graphflow")
    if v.producer < GRAPH_DEF_VERSION_MIN_PRODUCER:
        raise errors.InvalidArgumentError(
            None, None, f"{source}: GraphDef producer version {v.producer} is below the "
                        f"oldest supported version {GRAPH_DEF_VERSION_MIN_PRODUCER}")
    if GRAPH_DEF_VERSION in v.bad_consumers:
        raise errors.InvalidArgumentError(
            None, None, f"{source}: GraphDef disallows consumer version {GRAPH_DEF_VERSION}")


def _usable_name(name: str) -> bool:
    """Whether an op may have this name: what graph building makes always passes.

    Names made through name scopes may hold any character, so only what would
    break the ``op:index`` / ``^op`` / ``scope/`` syntax is refused.
    """
    return (bool(name) and ":" not in name and not name.startswith("^") and
            not name.endswith("/") and "\x00" not in name)


def _parse_input(text: str, where: str) -> tuple[str, int, bool]:
    """``(node_name, output_index, is_control)`` of an input string."""
    if not isinstance(text, str) or not text:
        raise errors.InvalidArgumentError(None, None, f"{where}: empty input name")
    if text.startswith("^"):
        return text[1:], -1, True
    name, sep, idx = text.rpartition(":")
    if not sep:
        return text, 0, False
    if not idx.isdigit() or not idx.isascii() or len(idx) > 9 or (len(idx) > 1 and
                                                                    idx[0] == "0"):
        raise errors.InvalidArgumentError(None, None,
                                          f"{where}: input {text!r} has a bad output index")
    return name, int(idx), False


class _Importer:
    """Rebuilds the nodes of a GraphDef in a graph (one import)."""

    def __init__(self, graph: Graph, graph_def: GraphDef, input_map: dict | None,
                 clear_devices: bool) -> None:
        self.graph = graph
        self.graph_def = graph_def
        self.source = _source(graph_def)
        self.clear_devices = clear_devices
        self.created: dict[str, Operation] = {}
        self.tensor_map: dict[str, Tensor] = {}
        self.control_map: dict[str, Operation] = {}
        self.used_keys: set[str] = set()
        for key, value in (input_map or {}).items():
            self._add_mapping(key, value)

    def _add_mapping(self, key: Any, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"input_map keys must be tensor names (strings), got {key!r}")
        if key.startswith("^"):
            if not isinstance(value, Operation):
                raise TypeError(f"input_map[{key!r}] must be an Operation")
            if value.graph is not self.graph:
                raise errors.GraphValueError(None, None, f"input_map[{key!r}] is from another "
                                                         "graph")
            self.control_map[key[1:]] = value
            return
        conv = getattr(value, "_as_graph_element", None)
        if conv is not None:
            value = conv()
        if not isinstance(value, Tensor):
            raise TypeError(f"input_map[{key!r}] must be a Tensor, got {type(value).__name__}")
        if value.graph is not self.graph:
            raise errors.GraphValueError(None, None, f"input_map[{key!r}] is from another graph")
        name, idx, _ = _parse_input(key, "input_map")
        self.tensor_map[f"{name}:{idx}"] = value

    def _fail(self, node: NodeDef | None, what: str,
              cls: type = errors.InvalidArgumentError) -> errors.OpError:
        where = self.source if node is None else \
            f"{self.source}: node {node.name!r} ({node.op})"
        return cls(None, None, f"{where}: {what}")

    def order(self) -> list[tuple[NodeDef, list[tuple[str, int, bool]]]]:
        """The nodes with parsed inputs, each after the nodes it depends on."""
        nodes = self.graph_def.node
        index: dict[str, int] = {}
        for i, node in enumerate(nodes):
            if not _usable_name(node.name):
                raise self._fail(node, f"{node.name!r} is not a valid node name")
            if node.name in index:
                raise self._fail(node, "duplicate node name")
            index[node.name] = i
        parsed = []
        deps: list[set[int]] = []
        for node in nodes:
            where = f"{self.source}: node {node.name!r} ({node.op})"
            ins = [_parse_input(s, where) for s in node.input]
            d: set[int] = set()
            for name, idx, control in ins:
                mapped = (name in self.control_map) if control else \
                    (f"{name}:{idx}" in self.tensor_map)
                if mapped:
                    continue
                if name not in index:
                    raise self._fail(node, f"input {name!r} is not a node of the graph")
                d.add(index[name])
            parsed.append(ins)
            deps.append(d)
        users: list[list[int]] = [[] for _ in nodes]
        waiting = [len(d) for d in deps]
        for i, d in enumerate(deps):
            for j in d:
                users[j].append(i)
        ready = [i for i, n in enumerate(waiting) if n == 0]
        heapq.heapify(ready)
        out = []
        while ready:
            i = heapq.heappop(ready)
            out.append((nodes[i], parsed[i]))
            for u in users[i]:
                waiting[u] -= 1
                if waiting[u] == 0:
                    heapq.heappush(ready, u)
        if len(out) != len(nodes):
            stuck = [nodes[i].name for i, n in enumerate(waiting) if n > 0]
            raise self._fail(None, "the graph has a cycle through nodes " +
                             ", ".join(repr(s) for s in stuck[:5]))
        return out

    def run(self, prefix: str) -> None:
        graph = self.graph
        for node, ins in self.order():
            full = prefix + node.name
            if not _usable_name(full):
                raise self._fail(node, f"{full!r} is not a valid node name")
            if full in graph._ops_by_name:
                raise self._fail(node, f"the graph already has an op named {full!r}; import "
                                       "with a name prefix (name='import')")
            try:
                op_def.lookup(node.op)
            except errors.NotFoundError:
                raise self._fail(node, f"op type {node.op!r} is not registered in graphflow",
                                 errors.NotFoundError) from None
            attrs = {}
            for key in sorted(node.attr):
                if key == _OUTPUT_SHAPES:
                    continue
                attrs[key] = proto_to_attr(node.attr[key], f"{self.source}: node "
                                                           f"{node.name!r} attr {key!r}")
            inputs, controls = [], []
            for name, idx, control in ins:
                if control:
                    op = self.control_map.get(name)
                    if op is None:
                        op = self.created[name]
                    else:
                        self.used_keys.add("^" + name)
                    controls.append(op)
                    continue
                t = self.tensor_map.get(f"{name}:{idx}")
                if t is not None:
                    self.used_keys.add(f"{name}:{idx}")
                else:
                    src = self.created[name]
                    if idx >= len(src.outputs):
                        raise self._fail(node, f"input {name}:{idx} does not exist; "
                                               f"{src.name} has {len(src.outputs)} outputs")
                    t = src.outputs[idx]
                inputs.append(t)
            try:
                op = graph.create_op(node.op, inputs, attrs, name=full + "/")
            except Exception as e:  # the registration's own check, on data from a file
                msg = e.message if isinstance(e, errors.OpError) else f"{type(e).__name__}: {e}"
                raise self._fail(node, f"cannot rebuild the op: {msg}") from None
            for c in controls:
                op._add_control_input(c)
            if node.device and not self.clear_devices:
                op._device = node.device
            self._mark_scopes(full)
            self._restore_shapes(node, op)
            self.created[node.name] = op

    def _mark_scopes(self, full: str) -> None:
        parts = full.split("/")
        for i in range(1, len(parts)):
            self.graph.unique_name_mark("/".join(parts[:i]))

    def _restore_shapes(self, node: NodeDef, op: Operation) -> None:
        av = node.attr.get(_OUTPUT_SHAPES)
        if av is None:
            return
        where = f"{self.source}: node {node.name!r} attr {_OUTPUT_SHAPES!r}"
        if av.WhichOneof("value") != "list" or len(av.list.shape) != len(op.outputs):
            raise self._fail(node, f"{_OUTPUT_SHAPES} must list one shape per output "
                                   f"({len(op.outputs)})")
        for t, sp in zip(op.outputs, av.list.shape):
            shape = proto_to_shape(sp, where)
            if not t.shape.is_compatible_with(shape):
                raise self._fail(node, f"recorded shape {shape} of {t.name} is incompatible "
                                       f"with its inferred shape {t.shape}")
            if shape != t.shape:
                t.set_shape(shape)

    def unused_keys(self) -> list[str]:
        keys = [k for k in self.tensor_map if k not in self.used_keys]
        keys += ["^" + k for k in self.control_map if "^" + k not in self.used_keys]
        return keys


def import_graph_def(graph_def: GraphDef, input_map: dict[str, Any] | None = None,
                     return_elements: list[str] | None = None, name: str | None = None,
                     op_dict: Any = None, producer_op_list: Any = None) -> list[Any] | None:
    """Imports the ops of ``graph_def`` into the default graph (TF1's ``tf.import_graph_def``).

    Args:
      graph_def: a GraphDef (e.g. from :func:`read_graph` or ``GraphDef.FromString``).
      input_map: maps input names of ``graph_def`` (``"x:0"``, ``"x"``, or
        ``"^x"`` for a control input) to Tensors (Operations for ``^``) of the
        default graph, used instead.
      return_elements: names in ``graph_def`` (``"op"`` or ``"op:0"``) whose
        imported Operations / Tensors are returned.
      name: prefix for the imported names (made unique as a name scope);
        default ``"import"``; ``""`` keeps the names unchanged.
      op_dict, producer_op_list: accepted for TF1 compatibility; unused.

    Returns:
      A list of Operations/Tensors matching ``return_elements``, or None.

    Raises:
      TypeError: if ``graph_def`` is not a GraphDef or ``input_map`` is malformed.
      ValueError: if ``input_map`` keys or ``return_elements`` are not in ``graph_def``.
      errors.NotFoundError: for an op type graphflow does not have.
      errors.InvalidArgumentError: for a node that is invalid (bad name, input,
        attribute, or one its registration rejects), naming the file and node.
    """
    graph = get_default_graph()
    importer, _ = _import(graph, graph_def, input_map, name, clear_devices=False)
    if return_elements is None:
        return None
    return [_return_element(importer, r) for r in return_elements]


def _import(graph: Graph, graph_def: GraphDef, input_map: dict | None, name: str | None,
            clear_devices: bool) -> tuple[_Importer, str]:
    if not isinstance(graph_def, GraphDef):
        raise TypeError(f"graph_def must be a GraphDef, got {type(graph_def).__name__}")
    _check_versions(graph_def, _source(graph_def))
    importer = _Importer(graph, graph_def, input_map, clear_devices)
    with graph.as_default(), graph.name_scope(name if name is not None else "import") as scope:
        with graph.control_dependencies(None):
            importer.run(scope)
    unused = importer.unused_keys()
    if unused:
        raise errors.GraphValueError(None, None, f"Attempted to map inputs that were not found "
                                                 f"in graph_def: {unused}")
    return importer, scope


def _return_element(importer: _Importer, r: Any) -> Any:
    if not isinstance(r, str):
        raise TypeError(f"return_elements must be names, got {r!r}")
    op_name, sep, idx = r.rpartition(":")
    if not sep:
        op_name = r
    op = importer.created.get(op_name)
    if op is None:
        raise errors.GraphValueError(None, None,
                                     f"Requested return_element {r!r} not found in graph_def.")
    if not sep:
        return op
    if not idx.isdigit() or int(idx) >= len(op.outputs):
        raise errors.GraphValueError(None, None,
                                     f"Requested return_element {r!r} not found in graph_def.")
    return op.outputs[int(idx)]


# --- large tensors -------------------------------------------------------------------
def _tensor_slots(msg: Message) -> list[tuple[Any, str, int | None]]:
    """Every TensorProto inside a GraphDef: (holder, field, list index)."""
    found = []
    for node in msg.node:
        for av in node.attr.values():
            case = av.WhichOneof("value")
            if case == "tensor":
                found.append((av, "tensor", None))
            elif case == "list":
                for i in range(len(av.list.tensor)):
                    found.append((av.list, "tensor", i))
    return found


def externalize(graph_def: GraphDef, writer: files.SideFileWriter,
                threshold: int | None) -> GraphDef:
    """A copy of ``graph_def`` whose large tensors live in ``writer``'s side file.

    Args:
      graph_def: not modified.
      writer: receives the tensor bytes.
      threshold: tensors with more bytes go to the side file; None keeps the
        inline total within :data:`INLINE_TENSOR_BUDGET`, moving the largest first.

    Returns:
      ``graph_def`` itself if nothing moved, else a copy sharing unchanged parts.
    """
    slots = []
    for holder, field, i in _tensor_slots(graph_def):
        t = getattr(holder, field) if i is None else getattr(holder, field)[i]
        if t.external is None:
            slots.append((len(t.tensor_content), holder, field, i, t))
    if threshold is None:
        total = sum(s[0] for s in slots)
        chosen = []
        for s in sorted(slots, key=lambda s: -s[0]):
            if total <= INLINE_TENSOR_BUDGET:
                break
            chosen.append(s)
            total -= s[0]
    else:
        chosen = [s for s in slots if s[0] > threshold]
    if not chosen:
        return graph_def
    replace = {id(s[4]): s for s in chosen}
    out = GraphDef(versions=graph_def.versions)
    for node in graph_def.node:
        attr = dict(node.attr)
        changed = False
        for key, av in node.attr.items():
            new_av = _replace_tensors(av, replace, writer)
            if new_av is not av:
                attr[key] = new_av
                changed = True
        if changed:
            node = NodeDef(name=node.name, op=node.op, input=list(node.input),
                           device=node.device, attr=attr)
        out.node.append(node)
    return out


def _external_copy(t: Any, writer: files.SideFileWriter) -> Any:
    from graphflow.io.messages import TensorProto

    ref = writer.add(t.tensor_content)
    return TensorProto(dtype=t.dtype, tensor_shape=t.tensor_shape,
                       version_number=t.version_number, external=ref)


def _replace_tensors(av: AttrValue, replace: dict, writer: files.SideFileWriter) -> AttrValue:
    case = av.WhichOneof("value")
    if case == "tensor" and id(av.tensor) in replace:
        return AttrValue(tensor=_external_copy(av.tensor, writer))
    if case == "list" and any(id(t) in replace for t in av.list.tensor):
        tensors = [_external_copy(t, writer) if id(t) in replace else t for t in av.list.tensor]
        return AttrValue(list=ListValue(tensor=tensors))
    return av


def resolve_external(graph_def: GraphDef, reader: files.SideFileReader) -> None:
    """Reads every side-file tensor of ``graph_def`` into its ``tensor_content``.

    Raises:
      errors.DataLossError / InvalidArgumentError: for damaged or bad references.
    """
    from graphflow.io.tensors import tensor_nbytes

    for holder, field, i in _tensor_slots(graph_def):
        t = getattr(holder, field) if i is None else getattr(holder, field)[i]
        if t.external is None:
            continue
        where = f"{reader.source}: tensor in {t.external.location!r}"
        _, _, nbytes = tensor_nbytes(t, where)
        buf = reader(t.external, nbytes, where)
        t.tensor_content = memoryview(buf)
        t.external = None


# --- files ---------------------------------------------------------------------------
def _is_text_name(path: str) -> bool:
    return path.endswith((".pbtxt", ".txt", ".prototxt"))


def write_message_file(message: Message, path: str, as_text: bool,
                       large_tensor_threshold: int | None = None) -> None:
    """Writes a GraphDef or MetaGraphDef file (and its side file) atomically.

    Raises:
      errors.InvalidArgumentError: if the message holds a value that cannot be encoded.
      errors.OpError: if the file cannot be written.
    """
    writer = files.SideFileWriter(path)
    if isinstance(message, GraphDef):
        message = externalize(message, writer, large_tensor_threshold)
    else:  # MetaGraphDef: its graph_def
        gd = message.graph_def
        if gd is not None:
            new_gd = externalize(gd, writer, large_tensor_threshold)
            if new_gd is not gd:
                shallow = type(message)()
                for f in message._FIELDS:
                    object.__setattr__(shallow, f.name, getattr(message, f.name))
                shallow.graph_def = new_gd
                message = shallow
    if as_text:
        chunks = [files.frame_text(text_format.message_to_string(message),
                                   message._FULL_NAME)]
    else:
        chunks, _ = serialize_chunks(message)
    writer.commit()
    files.atomic_write(path, chunks)
    writer.remove_stale()


def read_message_file(path: str, message_class: type, as_text: bool | None = None) -> Any:
    """Reads a GraphDef or MetaGraphDef file written by :func:`write_message_file`.

    Args:
      path: the file.
      message_class: GraphDef or MetaGraphDef.
      as_text: force text (True) or binary (False); None detects it.

    Returns:
      The message, with side-file tensors read into it.

    Raises:
      errors.NotFoundError: if the file does not exist.
      errors.DataLossError: if it (or its side file) is damaged.
      errors.InvalidArgumentError: if its content is invalid.
    """
    path = os.fspath(path)
    data = files.read_file(path)
    if not data:
        raise errors.DataLossError(None, None, f"{path}: the file is empty (graphflow never "
                                               "writes empty files; it was truncated)")
    if as_text is None:
        as_text = data.startswith(files.TEXT_MAGIC) or _is_text_name(path)
    message = message_class()
    if as_text:
        body = files.unframe_text(data, path)
        text_format.parse(body, message, source=path)
    else:
        message.MergeFromString(data, source=path)
    gd = message if isinstance(message, GraphDef) else message.graph_def
    if gd is not None:
        with files.SideFileReader(os.path.dirname(os.path.abspath(path)), path) as reader:
            resolve_external(gd, reader)
        object.__setattr__(gd, "_source", path)
    object.__setattr__(message, "_source", path)
    return message


def write_graph(graph_or_graph_def: Graph | GraphDef, logdir: str, name: str | None = None,
                as_text: bool = False, large_tensor_threshold: int | None = None) -> str:
    """Writes a graph file (TF1's ``tf.train.write_graph``), atomically.

    Args:
      graph_or_graph_def: a Graph or a GraphDef.
      logdir: the directory to write in (created if missing); or, with ``name``
        None, the file's path.
      name: the file name within ``logdir``.
      as_text: write the human-readable text form (with a CRC32C line) instead
        of the binary protobuf form.
      large_tensor_threshold: tensors with more bytes are stored in a side file
        ``<file>.data-<token>`` next to the graph file; None keeps up to
        :data:`INLINE_TENSOR_BUDGET` bytes inline (largest tensors move first),
        so there is no 2 GiB limit.

    Returns:
      The path of the written file.

    Raises:
      TypeError: if the first argument is neither a Graph nor a GraphDef.
      errors.InvalidArgumentError: if an op attr holds a value no file can store.
      errors.OpError: if the file cannot be written.
    """
    if isinstance(graph_or_graph_def, Graph):
        graph_def = graph_or_graph_def.as_graph_def()
    elif isinstance(graph_or_graph_def, GraphDef):
        graph_def = graph_or_graph_def
    else:
        raise TypeError(f"write_graph expects a Graph or GraphDef, got "
                        f"{type(graph_or_graph_def).__name__}")
    logdir = os.fspath(logdir)
    if name is None:
        path = logdir
        directory = os.path.dirname(path)
    else:
        path = os.path.join(logdir, name)
        directory = logdir
    if directory:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as e:
            raise files.os_error(e, directory, "creating directory") from None
    write_message_file(graph_def, path, as_text, large_tensor_threshold)
    return path


def read_graph(path: str, as_text: bool | None = None) -> GraphDef:
    """Reads a graph file written by :func:`write_graph` (or any GraphDef file).

    Args:
      path: the file.
      as_text: force the text (True) or binary (False) form; None detects it from
        graphflow's text header or a ``.pbtxt``/``.txt`` name.

    Returns:
      The GraphDef, with tensors from its side file read in and verified.

    Raises:
      errors.NotFoundError: if the file does not exist.
      errors.DataLossError: if the file or its side file is damaged (truncated,
        bit flips, bad lengths), with the byte offset.
      errors.InvalidArgumentError: for content graphflow cannot use.
    """
    return read_message_file(path, GraphDef, as_text)
