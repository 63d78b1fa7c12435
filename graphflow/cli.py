"""The ``graphflow`` command: graph files from the shell.

    graphflow inspect model.gfpb                  # ops, inputs, outputs, variables
    graphflow render model.gfpb -o model.svg      # an image (SVG, PNG, PDF or DOT)
    graphflow optimize model.gfpb -o opt.gfpb     # the compiler's passes, with a report
    graphflow run frozen.gfpb --feed x=x.npy --fetch probs

Every subcommand reads a graph file (``write_graph``) or a meta graph file
(``export_meta_graph``, ``Saver.save``), binary or text; the kind is detected.
Bad input ends the command with one line ``graphflow: error: ...`` on stderr and
exit status 1 (2 for bad command-line usage); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import json
import os
import re
import sys
import tempfile
import textwrap
import traceback
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from graphflow.framework import errors
from graphflow.framework.graph import Graph, GraphKeys, Operation, Tensor

__all__ = ["main"]

PROG = "graphflow"

# Ops that produce values from nothing: never listed as a graph's outputs.
_SOURCE_TYPES = ("Placeholder", "PlaceholderWithDefault", "Const", "VariableV2")
_GRADIENT_SCOPE = re.compile(r"^gradients(_\d+)?$")
_SAVE_SCOPE = re.compile(r"^save(_\d+)?$")
_INIT_NAME = re.compile(r"^(init|init_\d+|init_all_tables|local_init(_op)?)$")
_TEXT_SUFFIXES = (".pbtxt", ".txt", ".prototxt")
_IMAGE_SUFFIXES = (".svg", ".png", ".pdf", ".dot", ".gv")
# Results with more elements print as a one-line summary (use --out for the values).
_PRINT_MAX_ELEMENTS = 100


class CommandError(Exception):
    """A failure the command reports as one line (exit status 1)."""

    exit_code = 1


class UsageError(CommandError):
    """Bad command-line usage (exit status 2)."""

    exit_code = 2


# --- reading graph files ------------------------------------------------------------------
@dataclasses.dataclass
class GraphFile:
    """A graph file as read from disk.

    Attributes:
      path: the file.
      kind: ``"GraphDef"`` or ``"MetaGraphDef"``.
      encoding: ``"binary"`` or ``"text"``.
      format_version: the file format version recorded in the file, or None.
      graph_def: the GraphDef (a meta graph's ``graph_def``).
      meta: the MetaGraphDef, or None for a plain graph file.
    """

    path: str
    kind: str
    encoding: str
    format_version: int | None
    graph_def: Any
    meta: Any = None


def _peek(path: str, n: int = 128) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def _format_version(head: bytes) -> int | None:
    """The ``format_version`` a graphflow file records first (field 100), or None."""
    if head.startswith(b"\xa0\x06"):  # tag of field 100, varint
        value, shift = 0, 0
        for b in head[2:12]:
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7
        return None
    m = re.match(rb"# graphflow text format (\d+):", head)
    return int(m.group(1)) if m else None


def read_graph_file(path: str) -> GraphFile:
    """Reads a graph or meta graph file, binary or text, detecting which it is.

    Args:
      path: the file.

    Returns:
      A :class:`GraphFile`.

    Raises:
      errors.NotFoundError: if the file does not exist.
      errors.DataLossError: if it is damaged (or is neither kind of file).
      errors.InvalidArgumentError: if its content is invalid.
    """
    from graphflow.io import graph_io
    from graphflow.io.messages import GraphDef, MetaGraphDef

    if os.path.isdir(path):
        raise CommandError(f"{path} is a directory, not a graph file")
    head = _peek(path)
    if head.startswith(b"# graphflow text format"):
        first_line = head.split(b"\n", 1)[0]
        order = [MetaGraphDef] if b"MetaGraphDef" in first_line else [GraphDef]
    elif path.endswith(".meta"):
        order = [MetaGraphDef, GraphDef]
    else:
        order = [GraphDef, MetaGraphDef]
    first_error: errors.OpError | None = None
    for cls in order:
        try:
            message = graph_io.read_message_file(path, cls)
        except (errors.DataLossError, errors.InvalidArgumentError) as e:
            first_error = first_error or e
            continue
        if cls is GraphDef:
            # A meta graph read as a GraphDef decodes its MetaInfoDef as a node without
            # an op type; a real GraphDef never has one.
            if any(not n.op for n in message.node) and len(order) > 1:
                first_error = first_error or errors.DataLossError(
                    None, None, f"{path}: a node has no op type; the data is damaged or is "
                                "not a GraphDef")
                continue
            gd, meta = message, None
        else:
            gd, meta = message.graph_def or GraphDef(), message
        text = head.startswith(b"# graphflow text format") or path.endswith(_TEXT_SUFFIXES)
        return GraphFile(path, cls.__name__, "text" if text else "binary",
                         _format_version(head), gd, meta)
    assert first_error is not None
    if re.search(r"\.(index|data-[0-9a-f]+)$", path):
        raise CommandError(f"{path} is part of a checkpoint, not a graph file: pass the meta "
                           "graph (PREFIX.meta) and --checkpoint PREFIX")
    raise first_error


def load_graph(gfile: GraphFile, with_saver: bool = False) -> tuple[Graph, Any]:
    """Builds a new Graph from a graph file (every op checked by its registration).

    Args:
      gfile: from :func:`read_graph_file`.
      with_saver: for a meta graph, import its collections and return its Saver.

    Returns:
      ``(graph, saver)``; ``saver`` is None unless ``with_saver`` and the file is a
      meta graph with variables.
    """
    from graphflow.io import import_graph_def, import_meta_graph

    graph = Graph()
    saver = None
    with graph.as_default():
        if gfile.meta is not None and with_saver:
            saver = import_meta_graph(gfile.meta)
        else:
            import_graph_def(gfile.graph_def, name="")
    return graph, saver


# --- names --------------------------------------------------------------------------------
def _unknown(graph: Graph, name: str, source: str) -> CommandError:
    names = [op.name for op in graph.get_operations()]
    close = difflib.get_close_matches(name.split(":")[0], names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return CommandError(f"{source} has no node named {name!r}{hint}")


def resolve(graph: Graph, name: str, source: str, allow_op: bool = True) -> Tensor | Operation:
    """The tensor or op ``name`` refers to: ``op:i`` a tensor, ``op`` its output 0 if it has one.

    Args:
      graph: the graph.
      name: ``"op"`` or ``"op:index"``.
      source: the file, for messages.
      allow_op: whether an op without outputs may be returned.

    Raises:
      CommandError: if there is no such node or output.
    """
    op_name, sep, idx = name.rpartition(":")
    if sep and idx.isdigit():
        try:
            op = graph.get_operation_by_name(op_name)
        except KeyError:
            raise _unknown(graph, name, source) from None
        if int(idx) >= len(op.outputs):
            raise CommandError(f"{source}: {name!r} does not exist: {op_name} ({op.type}) has "
                               f"{len(op.outputs)} output(s)")
        return op.outputs[int(idx)]
    try:
        op = graph.get_operation_by_name(name)
    except KeyError:
        raise _unknown(graph, name, source) from None
    if op.outputs:
        return op.outputs[0]
    if not allow_op:
        raise CommandError(f"{source}: {name} ({op.type}) has no outputs to feed")
    return op


def _scope0(op: Operation) -> str:
    return op.name.split("/", 1)[0]


def _is_initializer(op: Operation) -> bool:
    """A variable initializer (``v/Assign`` of its VariableV2) or an ``init`` op."""
    if op.type == "Assign" and op.inputs and op.inputs[0].op.type == "VariableV2" and \
            op.name == op.inputs[0].op.name + "/Assign":
        return True
    if op.type == "NoOp" and not op.inputs:
        if _INIT_NAME.match(op.name.rsplit("/", 1)[-1]):
            return True
        return bool(op.control_inputs) and all(_is_initializer(c) for c in op.control_inputs)
    return False


def graph_endpoints(graph: Graph) -> tuple[list[Tensor], list[Operation]]:
    """The outputs of a graph: what nothing in it consumes.

    Returns:
      ``(tensors, targets)``: outputs of unconsumed ops that compute values, and
      unconsumed ops run for their effects (a ``train`` op, an update). Sources
      (placeholders, constants, variables), initializers, variable reads and
      leftovers of gradient or save scopes are not outputs.
    """
    consumed: set[Operation] = set()
    for op in graph.get_operations():
        consumed.update(t.op for t in op.inputs)
        consumed.update(op.control_inputs)
    tensors: list[Tensor] = []
    targets: list[Operation] = []
    for op in graph.get_operations():
        if op in consumed or op.type in _SOURCE_TYPES or _is_initializer(op):
            continue
        scope = _scope0(op)
        if "/" in op.name and (_GRADIENT_SCOPE.match(scope) or _SAVE_SCOPE.match(scope)):
            continue
        if op.type in ("Identity", "Snapshot") and op.inputs and \
                op.inputs[0].op.type == "VariableV2":
            continue  # a variable's read snapshot (optimizer slots have unused ones)
        writer = bool(op.op_def.ref_inputs) and op.op_def.stateful
        if not op.outputs or writer:
            targets.append(op)
        else:
            tensors.extend(op.outputs)
    return tensors, targets


def _needed(fetches: Sequence[Tensor | Operation], fed: set[Tensor]) -> list[Operation]:
    """The ops running ``fetches`` evaluates, stopping at fed tensors."""
    seen: set[Operation] = set()
    order: list[Operation] = []
    stack = [f.op if isinstance(f, Tensor) else f for f in fetches
             if not (isinstance(f, Tensor) and f in fed)]
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        order.append(op)
        stack.extend(t.op for t in op.inputs if t not in fed)
        stack.extend(op.control_inputs)
    return order


# --- formatting ---------------------------------------------------------------------------
def _shape_list(shape: Any) -> list[int | None] | None:
    return None if shape.ndims is None else list(shape.as_list())


def _shape_str(shape: Any) -> str:
    return _shape_str_list(_shape_list(shape))


def _shape_str_list(dims: list[int | None] | None) -> str:
    if dims is None:
        return "<unknown rank>"
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    if not rows:
        return []
    ncols = max(len(r) for r in rows)
    rows = [r + [""] * (ncols - len(r)) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(ncols)]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _one_line(text: str) -> str:
    return "; ".join(s.strip() for s in str(text).strip().splitlines() if s.strip())


# --- inspect ------------------------------------------------------------------------------
def _trainable_names(gfile: GraphFile) -> set[str] | None:
    if gfile.meta is None:
        return None
    cd = gfile.meta.collection_def.get(GraphKeys.TRAINABLE_VARIABLES)
    if cd is None or cd.WhichOneof("kind") != "variable_list":
        return set()
    return {v.variable_name.split(":")[0] for v in cd.variable_list.value}


def describe(gfile: GraphFile) -> dict[str, Any]:
    """What ``graphflow inspect`` reports about a graph file, as plain data."""
    info: dict[str, Any] = {"file": gfile.path, "kind": gfile.kind, "encoding": gfile.encoding,
                            "format_version": gfile.format_version}
    v = gfile.graph_def.versions
    info["versions"] = None if v is None else {"producer": v.producer,
                                               "min_consumer": v.min_consumer}
    if gfile.meta is not None:
        mi = gfile.meta.meta_info_def
        info["meta_info"] = None if mi is None else {
            "meta_graph_version": mi.meta_graph_version,
            "graphflow_version": mi.graphflow_version, "tags": list(mi.tags)}
        info["collections"] = sorted(gfile.meta.collection_def)
    types = Counter(n.op for n in gfile.graph_def.node)
    info["num_ops"] = len(gfile.graph_def.node)
    info["op_types"] = dict(sorted(types.items(), key=lambda kv: (-kv[1], kv[0])))
    graph, _ = load_graph(gfile)
    ops = graph.get_operations()
    info["inputs"] = [{"name": op.outputs[0].name, "op": op.type,
                       "dtype": op.outputs[0].dtype.name,
                       "shape": _shape_list(op.outputs[0].shape)}
                      for op in ops if op.type in ("Placeholder", "PlaceholderWithDefault")]
    tensors, targets = graph_endpoints(graph)
    info["outputs"] = [{"name": t.name, "op": t.op.type, "dtype": t.dtype.name,
                        "shape": _shape_list(t.shape)} for t in tensors]
    info["targets"] = [{"name": op.name, "op": op.type} for op in targets]
    trainable = _trainable_names(gfile)
    variables = []
    total = 0
    total_trainable = 0
    for op in ops:
        if op.type != "VariableV2":
            continue
        t = op.outputs[0]
        size = t.shape.num_elements()
        entry = {"name": op.name, "dtype": t.dtype.name, "shape": _shape_list(t.shape),
                 "size": size}
        if trainable is not None:
            entry["trainable"] = op.name in trainable
        variables.append(entry)
        total += size or 0
        if trainable is not None and op.name in trainable:
            total_trainable += size or 0
    info["variables"] = variables
    info["num_parameters"] = total
    info["num_trainable_parameters"] = total_trainable if trainable is not None else None
    consts = [op for op in ops if op.type == "Const"]
    info["constants"] = {"count": len(consts), "num_values": sum(
        op.outputs[0].shape.num_elements() or 0 for op in consts)}
    return info


def _print_inspect(info: dict[str, Any]) -> None:
    out = [f"{info['file']}: {info['kind']}, {info['encoding']}, format version "
           f"{info['format_version'] if info['format_version'] is not None else 'unrecorded'}"]
    v = info["versions"]
    if v is not None:
        out.append(f"  producer {v['producer']}, min consumer {v['min_consumer']}")
    mi = info.get("meta_info")
    if mi:
        out.append(f"  meta graph {mi['meta_graph_version'] or '?'}, written by graphflow "
                   f"{mi['graphflow_version'] or '?'}" +
                   (f", tags {', '.join(mi['tags'])}" if mi["tags"] else ""))
    if info.get("collections"):
        out.append(f"  collections: {', '.join(info['collections'])}")
    out.append(f"\nops: {info['num_ops']} ({len(info['op_types'])} types)")
    out += _table([[k, str(n)] for k, n in info["op_types"].items()])
    out.append(f"\ninputs: {len(info['inputs'])}")
    out += _table([[i["name"], i["dtype"], _shape_str_list(i["shape"])] +
                   ([i["op"]] if i["op"] != "Placeholder" else []) for i in info["inputs"]])
    out.append(f"\noutputs: {len(info['outputs'])}")
    out += _table([[o["name"], o["op"], o["dtype"], _shape_str_list(o["shape"])]
                   for o in info["outputs"]])
    if info["targets"]:
        out.append(f"\ntargets (run for their effects): {len(info['targets'])}")
        out += _table([[t["name"], t["op"]] for t in info["targets"]])
    variables = info["variables"]
    line = f"\nvariables: {len(variables)}, {info['num_parameters']:,} parameters"
    if info["num_trainable_parameters"] is not None:
        line += f" ({info['num_trainable_parameters']:,} trainable)"
    out.append(line)
    out += _table([[v["name"], v["dtype"], _shape_str_list(v["shape"]),
                    f"{v['size']:,}" if v["size"] is not None else "?"] +
                   (["trainable"] if v.get("trainable") else []) for v in variables])
    c = info["constants"]
    out.append(f"\nconstants: {c['count']}, {c['num_values']:,} values")
    print("\n".join(out))


def cmd_inspect(args: argparse.Namespace) -> int:
    gfile = read_graph_file(args.file)
    info = describe(gfile)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_inspect(info)
    return 0


# --- compiling: optimize and render --optimized -------------------------------------------
def _compiler() -> Any:
    try:
        from graphflow import compiler
    except ImportError as e:  # pragma: no cover - the compiler ships with graphflow
        raise CommandError(f"the graph compiler is not available yet ({e})") from None
    if not hasattr(compiler, "explain"):  # pragma: no cover
        raise CommandError("the graph compiler is not available yet (no gf.compiler.explain)")
    return compiler


def _fetch_list(graph: Graph, names: Sequence[str] | None, source: str
                ) -> list[Tensor | Operation]:
    if names:
        out: list[Tensor | Operation] = []
        for n in names:
            el = resolve(graph, n, source)
            if el not in out:
                out.append(el)
        return out
    tensors, targets = graph_endpoints(graph)
    if not tensors and not targets:
        raise CommandError(f"{source}: cannot tell the graph's outputs (every op is consumed "
                           "by another); name them with --fetch")
    return [*tensors, *targets]


def _compiler_options(passes: Sequence[str] | None) -> Any:
    """CompilerOptions running only ``passes`` (plus the required ones); None runs all."""
    compiler = _compiler()
    if passes is None or "all" in passes:
        return compiler.CompilerOptions()
    spec: dict[str, Any] = {"default": False}
    for p in passes:
        if p == "none":
            continue
        if p in ("prune", "schedule"):
            continue  # always run
        spec[p] = True
    try:
        return compiler.CompilerOptions.make(None, spec)
    except (ValueError, TypeError):
        bad = [p for p in spec if p != "default" and p not in compiler.PASS_NAMES]
        raise UsageError(f"--passes: unknown pass {(bad or list(spec))[-1]!r}; the passes are "
                         f"{', '.join(compiler.PASS_NAMES)} (or all, none)") from None


def optimize_graph(graph: Graph, fetches: Sequence[Tensor | Operation], options: Any
                   ) -> tuple[Graph, Any, list[str]]:
    """Runs the compiler on ``fetches`` and rebuilds the optimised program as a Graph.

    Placeholders are fed (as a run feeds them). Fusion, scheduling and memory
    planning do not change which ops there are; their results are in the report.

    Returns:
      ``(graph, explanation, notes)``: the optimised graph (fetched names kept
      where possible), the compiler's :class:`Explanation`, and notes on names
      that could not be kept.
    """
    compiler = _compiler()
    needed = set(_needed(fetches, set()))
    feeds = [op.outputs[0] for op in graph.get_operations()
             if op.type == "Placeholder" and op in needed]
    explanation = compiler.explain(list(fetches), feed_dict=feeds, graph=graph,
                                   options=options)
    new, notes = program_to_graph(explanation.program(), fetches)
    return new, explanation, notes


def program_to_graph(program: Any, fetches: Sequence[Tensor | Operation]
                     ) -> tuple[Graph, list[str]]:
    """A new Graph computing what a compiler Program computes, op for op.

    Args:
      program: a ``gf.compiler.Program`` (after any passes).
      fetches: what the program was compiled for (its outputs, then its targets,
        in the order ``explain`` was given them), to keep their names.

    Returns:
      ``(graph, notes)``.

    Raises:
      CommandError: if an op cannot be rebuilt (e.g. a control-flow region).
    """
    graph = Graph()
    reserved = {t.op.name for _, t in program.inputs}
    for n in program.nodes:
        if n.origin is not None and n.origin.name == n.name and n.origin.type == n.type:
            reserved.add(n.name)
    used: set[str] = set()

    def pick(name: str, keep: bool) -> str:
        """``name`` if free (or reserved for this node), else ``name_N``."""
        if name not in used and (keep or name not in reserved):
            used.add(name)
            return name
        i = 1
        while f"{name}_{i}" in reserved or f"{name}_{i}" in used:
            i += 1
        used.add(f"{name}_{i}")
        return f"{name}_{i}"

    made: dict[int, Operation] = {}
    with graph.as_default():
        for f, t in program.inputs:
            made[f.id] = graph.create_op(t.op.type, [], t.op.attrs,
                                         name=pick(t.op.name, True) + "/")
        for n in program.nodes:
            if n.regions:
                raise CommandError(f"cannot write {n.name} ({n.type}): control-flow regions "
                                   "cannot be written as a graph yet")
            keep = n.name in reserved and n.origin is not None and n.origin.name == n.name
            name = pick(n.name, keep)
            inputs = [made[p.id].outputs[i] for p, i in n.inputs]
            try:
                with graph.control_dependencies([made[c.id] for c in n.control_inputs]):
                    op = graph.create_op(n.type, inputs, dict(n.attrs), name=name + "/")
            except errors.OpError as e:
                raise CommandError(f"cannot rebuild {n.name} ({n.type}) of the optimised "
                                   f"program: {_one_line(e.message)}") from None
            for t, shape in zip(op.outputs, n.shapes):
                if t.shape.is_compatible_with(shape) and shape != t.shape:
                    t.set_shape(t.shape.merge_with(shape))
            made[n.id] = op
        notes: list[str] = []
        tensors = [f for f in fetches if isinstance(f, Tensor)]
        for want, (p, i) in zip(tensors, program.outputs):
            t = made[p.id].outputs[i]
            if t.name == want.name:
                continue
            name = want.op.name
            if name in used or want.value_index != 0:
                name = pick(name, False)
            used.add(name)
            ident = graph.create_op("Identity", [t], {}, name=name + "/")
            if ident.outputs[0].name != want.name:
                notes.append(f"{want.name} is now {ident.outputs[0].name}")
    return graph, notes


def _write_graph_file(graph_def: Any, path: str) -> None:
    from graphflow.io import write_graph

    write_graph(graph_def, path, as_text=path.endswith(_TEXT_SUFFIXES))


def _report_text(explanation: Any) -> str:
    parts = [str(explanation.report)]
    if explanation.plan is not None:
        parts.append(explanation.plan.summary())
    return "\n".join(parts)


def cmd_optimize(args: argparse.Namespace) -> int:
    options = _compiler_options(args.passes)
    gfile = read_graph_file(args.file)
    graph, _ = load_graph(gfile)
    fetches = _fetch_list(graph, args.fetch, args.file)
    new, explanation, notes = optimize_graph(graph, fetches, options)
    _write_graph_file(new.as_graph_def(), args.output)
    print(_report_text(explanation))
    print(f"\nfetches: {', '.join(f.name for f in fetches)}")
    for note in notes:
        print(f"note: {note}")
    nvars = sum(1 for op in new.get_operations() if op.type == "VariableV2")
    if nvars:
        print(f"note: the optimised graph reads {nvars} variable(s) but has no initializers: "
              "run it with --checkpoint, or freeze the graph first")
    print(f"wrote {args.output}: {len(new.get_operations())} ops "
          f"(from {len(graph.get_operations())})")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from graphflow import viz

    _check_image_suffix(args.output)
    gfile = read_graph_file(args.file)
    graph, _ = load_graph(gfile)
    if args.optimized:
        fetches = _fetch_list(graph, args.fetch, args.file)
        options = _compiler_options(None)
        drawn, _, _ = optimize_graph(graph, fetches, options)
        path = viz.render(drawn, args.output, max_depth=args.depth)
        what = f"optimised graph of {', '.join(f.name for f in fetches)}"
    else:
        fetches = [resolve(graph, n, args.file) for n in args.fetch] if args.fetch else None
        path = viz.render(graph, args.output, fetches=fetches, max_depth=args.depth)
        what = "graph" if fetches is None else \
            f"what {', '.join(f.name for f in fetches)} needs"
    print(f"wrote {path} ({what})")
    return 0


def _check_image_suffix(path: str) -> None:
    if not path.lower().endswith(_IMAGE_SUFFIXES):
        raise UsageError(f"cannot tell the image format of {path!r}: use a file name ending in "
                         f"one of {', '.join(_IMAGE_SUFFIXES)}")


# --- run ----------------------------------------------------------------------------------
def _parse_feed(spec: str) -> tuple[str, str]:
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise UsageError(f"--feed {spec!r}: expected NAME=FILE.npy")
    return name, path


def _load_npy(path: str, name: str) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise CommandError(f"feed {name}: cannot read {path}: {e.strerror or e}") from None
    if magic.startswith(b"PK\x03\x04"):
        raise CommandError(f"feed {name}: {path} is an .npz archive; give one .npy file per "
                           "feed")
    if magic != b"\x93NUMPY":
        raise CommandError(f"feed {name}: {path} is not a .npy file (no NumPy header); write "
                           "one with np.save")
    try:
        value = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise CommandError(f"feed {name}: {path} is not a .npy file of numbers "
                           f"({_one_line(e)})") from None
    except OSError as e:
        raise CommandError(f"feed {name}: cannot read {path}: {e.strerror or e}") from None
    except Exception as e:  # a damaged header raises various errors
        raise CommandError(f"feed {name}: {path} is not a valid .npy file ({_one_line(e)})"
                           ) from None
    return value


def _convert_feed(t: Tensor, value: np.ndarray, path: str) -> np.ndarray:
    """``value`` as ``t``'s dtype, if that loses nothing; checks the shape."""
    target = t.dtype.np
    src = value.dtype
    what = f"feed {t.op.name}: {path} holds {src.name}"
    if src != target:
        k, tk = src.kind, target.kind
        if not ((k == tk and k in "fb") or (k in "iu" and tk in "iuf")):
            raise CommandError(f"{what} values, but {t.name} is {t.dtype.name}; convert them "
                               f"with .astype(np.{target.name})")
        if tk in "iu" and value.size:
            info = np.iinfo(target)
            if value.min() < info.min or value.max() > info.max:
                raise CommandError(f"{what} values outside the range of {t.name}'s dtype "
                                   f"{t.dtype.name}")
        converted = value.astype(target)
        if k in "iu" and tk == "f" and not np.can_cast(src, target, "safe") and \
                not np.array_equal(converted.astype(src), value):
            raise CommandError(f"{what} values that {t.dtype.name} ({t.name}) cannot represent "
                               "exactly")
        value = converted
    if not t.shape.is_compatible_with(value.shape):
        raise CommandError(f"feed {t.op.name}: {path} holds an array of shape "
                           f"{_shape_str_list(list(value.shape))}, but {t.name} has shape "
                           f"{_shape_str(t.shape)}")
    return value


def _output_file(out_dir: str, name: str) -> str:
    op_name, _, idx = name.rpartition(":")
    base = op_name.replace("/", "__") + ("" if idx == "0" else f".{idx}")
    return os.path.join(out_dir, base + ".npy")


def _save_npy(path: str, value: np.ndarray) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, value, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _summary(value: np.ndarray) -> str:
    parts = [f"{value.dtype.name} {_shape_str_list(list(value.shape))}"]
    if value.size and value.dtype.kind in "iuf":
        finite = value[np.isfinite(value)] if value.dtype.kind == "f" else value
        if finite.size:
            parts.append(f"min {finite.min():.6g}  max {finite.max():.6g}  "
                         f"mean {finite.mean(dtype=np.float64):.6g}")
        if finite.size != value.size:
            parts.append(f"{int(np.isnan(value).sum())} nan, "
                         f"{int(np.isinf(value).sum())} inf")
    elif value.size and value.dtype.kind == "b":
        parts.append(f"{int(value.sum())} true of {value.size}")
    return "  ".join(parts)


def _format_value(value: Any) -> str:
    arr = np.asarray(value)
    if arr.size > _PRINT_MAX_ELEMENTS:
        return _summary(arr) + "  (use --out DIR for all values)"
    header = f"{arr.dtype.name} {_shape_str_list(list(arr.shape))}"
    body = np.array2string(arr, threshold=_PRINT_MAX_ELEMENTS, max_line_width=100)
    return f"{header}\n{body}" if arr.ndim else f"{header}  {body}"


def _checkpoint_hint(gfile: GraphFile) -> str:
    if gfile.path.endswith(".meta") and os.path.isfile(gfile.path[:-5] + ".index"):
        return f" (e.g. --checkpoint {gfile.path[:-5]})"
    return ""


def _resolve_checkpoint(path: str) -> str:
    from graphflow.io import latest_checkpoint

    if os.path.isdir(path):
        prefix = latest_checkpoint(path)
        if prefix is None:
            raise CommandError(f"--checkpoint {path}: the directory has no checkpoint")
        return prefix
    return path


def cmd_run(args: argparse.Namespace) -> int:
    from graphflow.io.saver import Saver
    from graphflow.runtime.session import Session

    feed_specs = [_parse_feed(s) for s in args.feed or []]
    names = [n for n, _ in feed_specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"--feed {dup[0]} is given more than once")
    gfile = read_graph_file(args.file)
    graph, saver = load_graph(gfile, with_saver=args.checkpoint is not None)
    source = args.file
    feeds: dict[Tensor, np.ndarray] = {}
    for name, path in feed_specs:
        t = resolve(graph, name, source, allow_op=False)
        assert isinstance(t, Tensor)
        if t.op.type == "VariableV2":
            raise CommandError(f"feed {name}: cannot feed variable {t.op.name}; restore it "
                               "with --checkpoint")
        if t in feeds:
            raise UsageError(f"--feed {name}: {t.name} is fed more than once")
        feeds[t] = _convert_feed(t, _load_npy(path, name), path)
    fetches = _fetch_list(graph, args.fetch, source)
    if not args.fetch:
        fetches = [f for f in fetches if isinstance(f, Tensor)]
        if not fetches:
            raise CommandError(f"{source}: the graph has no outputs to fetch; name them with "
                               "--fetch")
    needed_set = set(_needed(fetches, set(feeds)))
    needed = [op for op in graph.get_operations() if op in needed_set]  # graph order
    what = ", ".join(f.name for f in fetches)
    for op in needed:
        if op.type == "Placeholder":
            t = op.outputs[0]
            raise CommandError(f"fetching {what} needs placeholder {op.name} "
                               f"({t.dtype.name} {_shape_str(t.shape)}): pass "
                               f"--feed {op.name}=FILE.npy")
    variables = [op for op in graph.get_operations() if op.type == "VariableV2"]
    if args.checkpoint is not None and not variables:
        warnings.warn(f"{source} has no variables; --checkpoint is ignored", stacklevel=1)
    if args.checkpoint is None:
        need_vars = [op for op in needed if op.type == "VariableV2"]
        if need_vars:
            raise CommandError(f"fetching {what} needs variable {need_vars[0].name}, which "
                               f"only a checkpoint can set: pass --checkpoint "
                               f"PREFIX{_checkpoint_hint(gfile)}")
    paths: dict[str, str] = {}  # fetched tensor name -> .npy file
    if args.out:
        by_path: dict[str, str] = {}
        for f in fetches:
            if isinstance(f, Tensor):
                path = _output_file(args.out, f.name)
                if path in by_path:
                    raise CommandError(f"{f.name} and {by_path[path]} would both be written to "
                                       f"{path}")
                by_path[path] = f.name
                paths[f.name] = path
    with Session(graph=graph) as sess:
        if args.checkpoint is not None and variables:
            if saver is None:
                saver = Saver(var_list={op.name: op for op in variables})
            saver.restore(sess, _resolve_checkpoint(args.checkpoint))
        values = sess.run(list(fetches), feed_dict=feeds)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    for f, v in zip(fetches, values):
        if isinstance(f, Operation):
            print(f"{f.name}: ran")
        elif args.out:
            _save_npy(paths[f.name], np.asarray(v))
            print(f"{f.name} -> {paths[f.name]}")
        else:
            print(f"{f.name}: {_format_value(v)}")
    return 0


# --- the parser ---------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


_DESCRIPTION = """\
Inspect, draw, optimise and run graphflow graph files from the shell.

FILE is a graph file (gf.train.write_graph) or a meta graph file
(gf.train.export_meta_graph, Saver.save's PREFIX.meta), binary or text.
Names are op names ("probs") or tensor names ("probs:0"); an op name means its
first output when it has outputs."""

_EPILOG = """\
examples:
  graphflow inspect model.gfpb
  graphflow render model.gfpb -o model.svg --depth 1
  graphflow optimize model.gfpb -o model.opt.gfpb
  graphflow run frozen.gfpb --feed x=x.npy --fetch probs

exit status: 0 success, 1 failure (bad file, unknown name, bad feed), 2 usage error."""


def _para(text: str) -> str:
    """``text`` wrapped for ``--help`` (descriptions are printed as they are)."""
    return textwrap.fill(text, width=79)


def build_parser() -> argparse.ArgumentParser:
    """The ``graphflow`` argument parser."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's default must not override `graphflow --debug CMD`.
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog=PROG, description=_DESCRIPTION, epilog=_EPILOG,
                                     formatter_class=fmt)
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show the full traceback of an error")
    from graphflow import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "inspect", parents=[common], formatter_class=fmt,
        help="summarise a graph file: ops, inputs, outputs, variables",
        description=_para("Summarise a graph file: its format and versions, ops by type, inputs "
                    "(placeholders with dtype and shape), outputs (values nothing in the graph "
                    "consumes) and targets (ops run for their effects, such as a train op), "
                    "variables with shapes and parameter counts, and constants."),
        epilog="example:\n  graphflow inspect model.gfpb --json | jq .num_parameters")
    p.add_argument("file", metavar="FILE", help="graph or meta graph file")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser(
        "render", parents=[common], formatter_class=fmt,
        help="draw a graph as SVG, PNG, PDF or DOT",
        description=_para("Draw a graph with gf.viz.render. The output's suffix picks the format: "
                    ".svg, .png, .pdf (these need Graphviz's `dot` program) or .dot/.gv (the "
                    "DOT text)."),
        epilog="examples:\n  graphflow render model.gfpb -o model.svg --depth 1\n"
               "  graphflow render model.gfpb -o probs.png --fetch probs\n"
               "  graphflow render model.gfpb -o opt.svg --optimized")
    p.add_argument("file", metavar="FILE", help="graph or meta graph file")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="the image to write (.svg, .png, .pdf, .dot, .gv)")
    p.add_argument("--depth", type=_positive_int, metavar="N",
                   help="collapse name scopes nested deeper than N into single nodes")
    p.add_argument("--fetch", nargs="+", action="extend", metavar="NAME",
                   help="draw only what computing these tensors or ops needs")
    p.add_argument("--optimized", action="store_true",
                   help="draw the graph after the compiler's graph passes, compiled for "
                        "--fetch (default: the graph's outputs and targets) with placeholders "
                        "fed; fusion groups are not outlined yet")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser(
        "optimize", parents=[common], formatter_class=fmt,
        help="run the compiler's passes and write the optimised graph",
        description=_para("Compile the graph as Session.run would (placeholders fed) and write the "
                    "result as a graph file, with a report of what each pass did. The graph "
                    "passes (pruning, constant folding, CSE, simplification, stabilisation) "
                    "change the ops; fusion, scheduling and memory planning do not (their "
                    "results are in the report). Fetched names keep working in the written "
                    "graph. A .pbtxt/.txt output is written as text."),
        epilog="examples:\n  graphflow optimize model.gfpb -o opt.gfpb\n"
               "  graphflow optimize model.gfpb -o opt.pbtxt --fetch probs "
               "--passes constant_folding cse")
    p.add_argument("file", metavar="FILE", help="graph or meta graph file")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="the graph file to write")
    p.add_argument("--passes", nargs="+", action="extend", metavar="PASS",
                   help="run only these optional passes (constant_folding, cse, simplify, "
                        "stabilize, fusion, memory_plan; or all, none); prune and schedule "
                        "always run. Default: all")
    p.add_argument("--fetch", nargs="+", action="extend", metavar="NAME",
                   help="what to keep (default: the graph's outputs and targets)")
    p.set_defaults(func=cmd_optimize)

    p = sub.add_parser(
        "run", parents=[common], formatter_class=fmt,
        help="run a graph on arrays from .npy files",
        description=_para("Run a graph (usually a frozen one) with values fed from .npy files and "
                    "print the fetched values (a summary for large arrays), or write them as "
                    ".npy files into --out. A feed must fit the fed tensor's shape, and its "
                    "dtype must be the tensor's or convert to it: floats to a float type, "
                    "integers to an integer type (values in range) or a float type (values "
                    "exact), bools only to bool. A graph with variables needs --checkpoint."),
        epilog="examples:\n  graphflow run frozen.gfpb --feed x=x.npy --fetch probs\n"
               "  graphflow run model.ckpt.meta --checkpoint model.ckpt --feed x=x.npy "
               "--fetch probs --out results/")
    p.add_argument("file", metavar="FILE", help="graph or meta graph file")
    p.add_argument("--feed", nargs="+", action="extend", metavar="NAME=FILE.npy",
                   help="feed tensor NAME the array in FILE.npy")
    p.add_argument("--fetch", nargs="+", action="extend", metavar="NAME",
                   help="tensors or ops to compute (default: the graph's outputs)")
    p.add_argument("--checkpoint", metavar="PREFIX",
                   help="restore the variables from this checkpoint (a prefix such as "
                        "ckpt/model.ckpt-100, or a directory: its latest checkpoint)")
    p.add_argument("--out", metavar="DIR",
                   help="write each fetched value to DIR/<name>.npy instead of printing it")
    p.set_defaults(func=cmd_run)
    return parser


# --- main ---------------------------------------------------------------------------------
def _error_text(e: BaseException) -> str:
    if isinstance(e, errors.OpError):
        op = e.op
        where = f" (node {op.name}, {op.type})" if op is not None and \
            getattr(op, "name", "") not in e.message else ""
        return _one_line(e.message) + where
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{e.strerror or e}"
    if isinstance(e, CommandError):
        return _one_line(str(e))
    return f"{type(e).__name__}: {_one_line(str(e))} (run with --debug for the traceback)"


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
             line: Any = None) -> None:
        print(f"{PROG}: warning: {_one_line(str(message))}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        old = warnings.showwarning
        warnings.showwarning = show
        try:
            yield
        finally:
            warnings.showwarning = old


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``graphflow`` command.

    Args:
      argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
      The exit status: 0 on success, 1 on failure, 2 for a usage error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error (argparse printed it)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    debug = bool(getattr(args, "debug", False))
    try:
        with _one_line_warnings():
            return int(args.func(args))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`graphflow inspect model.gfpb | head`): not an error.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as e:
        if debug:
            traceback.print_exc()
        code = e.exit_code if isinstance(e, CommandError) else 1
        print(f"{PROG}: error: {_error_text(e)}", file=sys.stderr)
        return code
