"""graphflow's files are real protobuf: Google's library reads ours and we read theirs.

``graphflow.proto`` is compiled with grpcio-tools' protoc into a temporary
directory; the generated module is then compared with graphflow's own schema and
used to parse and write bytes.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import subprocess
import sys

import google.protobuf  # noqa: F401  (dev extra; a missing one must fail, not skip)
import numpy as np
import pytest
from grpc_tools import protoc

import graphflow as gf
from graphflow.io import messages as m
from graphflow.io.wire import serialize_chunks

PROTO = pathlib.Path(gf.io.__file__).parent / "graphflow.proto"

_KIND_OF_TYPE = {  # google.protobuf FieldDescriptor.TYPE_* -> graphflow kind
    1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64",
    7: "fixed32", 8: "bool", 9: "string", 11: "message", 12: "bytes", 13: "uint32",
    14: "enum", 15: "sfixed32", 16: "sfixed64", 17: "sint32", 18: "sint64",
}


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    out = tmp_path_factory.mktemp("pb")
    rc = protoc.main(["protoc", f"-I{PROTO.parent}", f"--python_out={out}", str(PROTO)])
    assert rc == 0, "protoc failed to compile graphflow.proto"
    sys.path.insert(0, str(out))
    try:
        module = importlib.import_module("graphflow_pb2")
    finally:
        sys.path.remove(str(out))
    module._out_dir = str(out)
    return module


def _build_graph() -> gf.Graph:
    g = gf.Graph()
    with g.as_default():
        x = gf.placeholder(gf.float32, [None, 3], name="x")
        w = gf.Variable(np.arange(6, dtype=np.float32).reshape(3, 2) / 7, name="w")
        y = gf.nn.leaky_relu(gf.matmul(x, w) + 1.0, alpha=0.3, name="y")
        gf.reduce_sum(y[:, 1:2], axis=None, name="s")
        gf.transpose(y, perm=[1, 0], name="t")
        for d in (gf.float16, gf.float64, gf.int8, gf.int16, gf.int32, gf.int64, gf.uint8,
                  gf.bool):
            gf.constant(np.ones((2,), d.as_numpy_dtype), name=f"c_{d.name}")
        gf.placeholder(gf.int64, None, name="any_shape")
    return g


def test_schema_matches_graphflow_proto(pb):
    for cls in m.ALL_MESSAGES:
        desc = pb.DESCRIPTOR.message_types_by_name.get(cls._FULL_NAME)
        if desc is None:
            outer, _, inner = cls._FULL_NAME.partition(".")
            desc = pb.DESCRIPTOR.message_types_by_name[outer].nested_types_by_name[inner]
        theirs = {f.number: f for f in desc.fields}
        assert set(theirs) == set(cls._BY_NUMBER), cls._FULL_NAME
        for number, f in cls._BY_NUMBER.items():
            t = theirs[number]
            assert t.name == f.name, (cls._FULL_NAME, number)
            rep = getattr(t, "is_repeated", None)
            repeated = (rep() if callable(rep) else rep) if rep is not None else \
                t.label == t.LABEL_REPEATED
            if f.kind == "map":
                assert repeated and t.message_type.GetOptions().map_entry
                continue
            assert _KIND_OF_TYPE[t.type] == f.kind, (cls._FULL_NAME, f.name)
            assert repeated == f.repeated, (cls._FULL_NAME, f.name)
            oneof = t.containing_oneof.name if t.containing_oneof else None
            assert oneof == f.oneof, (cls._FULL_NAME, f.name)
    enum = pb.DESCRIPTOR.enum_types_by_name["DataType"]
    assert {v.name: v.number for v in enum.values} == m.DATA_TYPES


def _view(gd) -> list:
    """A plain-Python view of a GraphDef, Google's or graphflow's (same API)."""
    out = []
    for n in gd.node:
        attrs = {}
        for k, v in n.attr.items():
            case = v.WhichOneof("value")
            if case == "tensor":
                attrs[k] = ("tensor", v.tensor.dtype, [d.size for d in v.tensor.tensor_shape.dim],
                            bytes(v.tensor.tensor_content))
            elif case == "shape":
                attrs[k] = ("shape", v.shape.unknown_rank, [d.size for d in v.shape.dim])
            elif case == "list":
                attrs[k] = ("list", list(v.list.i), list(v.list.d), list(v.list.b),
                            [[d.size for d in s.dim] for s in v.list.shape])
            else:
                attrs[k] = (case, getattr(v, case))
        out.append((n.name, n.op, list(n.input), n.device, attrs))
    return out


def test_google_protobuf_parses_our_graph_to_the_same_content(pb):
    gd = _build_graph().as_graph_def(add_shapes=True)
    data = gd.SerializeToString()
    theirs = pb.GraphDef.FromString(data)
    assert _view(theirs) == _view(gd)
    assert theirs.versions.producer == gf.io.GRAPH_DEF_VERSION
    assert theirs.format_version == m.GRAPH_FORMAT_VERSION
    assert theirs.crc32c == gf.io.crc32c(data[:-6])
    # Rewritten by Google (which moves format_version to its place in field order),
    # the stale checksum is noticed; with the framing fields cleared it reads back.
    with pytest.raises(gf.errors.DataLossError, match="checksum mismatch"):
        gf.GraphDef.FromString(theirs.SerializeToString(deterministic=True))
    theirs.ClearField("format_version")
    theirs.ClearField("crc32c")
    assert gf.GraphDef.FromString(theirs.SerializeToString(deterministic=True)) == gd


def test_we_parse_what_google_protobuf_writes(pb):
    theirs = pb.GraphDef()
    theirs.versions.producer = 1
    x = theirs.node.add(name="x", op="Placeholder")
    x.attr["dtype"].type = pb.DT_DOUBLE
    x.attr["shape"].shape.dim.add(size=-1)
    c = theirs.node.add(name="c", op="Const")
    c.attr["dtype"].type = pb.DT_DOUBLE
    c.attr["value"].tensor.dtype = pb.DT_DOUBLE
    c.attr["value"].tensor.tensor_shape.dim.add(size=3)
    c.attr["value"].tensor.double_val.extend([1.5, -2.0, 4.25])
    k = theirs.node.add(name="k", op="Const")   # TF's "repeat the last value" form
    k.attr["dtype"].type = pb.DT_DOUBLE
    k.attr["value"].tensor.dtype = pb.DT_DOUBLE
    k.attr["value"].tensor.tensor_shape.dim.add(size=3)
    k.attr["value"].tensor.double_val.append(0.5)
    theirs.node.add(name="y", op="Mul", input=["x", "c"])
    theirs.node.add(name="z", op="Add", input=["y", "k"])
    ours = gf.GraphDef.FromString(theirs.SerializeToString())
    assert _view(ours) == _view(theirs)
    gf.import_graph_def(ours, name="")
    with gf.Session() as sess:
        got = sess.run("z:0", {"x:0": np.array([1.0, 2.0, 3.0])})
    np.testing.assert_array_equal(got, np.array([1.5, -4.0, 12.75]) + 0.5)


def test_meta_graph_and_checkpoint_index_parse_in_google_protobuf(pb, tmp_path):
    g = _build_graph()
    with g.as_default(), gf.Session(graph=g) as sess:
        sess.run(gf.global_variables_initializer())
        saver = gf.io.Saver()
        prefix = saver.save(sess, str(tmp_path / "model.ckpt"), global_step=3)
    meta = pb.MetaGraphDef.FromString((tmp_path / "model.ckpt-3.meta").read_bytes())
    assert meta.collection_def["variables"].variable_list.value[0].variable_name == "w:0"
    assert dict(meta.saver_def.variables) == {"w": "w"}
    index = pb.CheckpointIndex.FromString(pathlib.Path(prefix + ".index").read_bytes())
    assert index.global_step == 3 and index.entry[0].name == "w"
    assert list(index.entry[0].tensor.tensor_shape.dim[i].size for i in range(2)) == [3, 2]


def test_bytes_equal_googles_pure_python_deterministic_encoding(pb, tmp_path):
    # upb orders map keys its own way; the pure-Python runtime sorts them like C++
    # and graphflow do, so there the encodings must agree byte for byte.
    gd = _build_graph().as_graph_def(add_shapes=True)
    path = tmp_path / "g.pb"
    path.write_bytes(b"".join(serialize_chunks(gd, checksum=False)[0]))
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import graphflow_pb2 as pb; "
            "d = open(sys.argv[2], 'rb').read(); "
            "print(pb.GraphDef.FromString(d).SerializeToString(deterministic=True) == d)")
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    res = subprocess.run([sys.executable, "-c", code, pb._out_dir, str(path)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "True", res.stderr
