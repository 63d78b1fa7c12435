"""Graph files: Graph -> GraphDef -> file -> Graph gives the same ops, names and results."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphflow as gf
from graphflow.io import graph_io
from graphflow.io import messages as m
from graphflow.io.wire import serialize_chunks

# Quick in CI; GRAPHFLOW_FUZZ_EXAMPLES=100000 for a long run.
FUZZ_EXAMPLES = int(os.environ.get("GRAPHFLOW_FUZZ_EXAMPLES", "200"))
FEEDS = {
    "x:0": np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32),
    "img:0": np.random.default_rng(1).standard_normal((2, 5, 5, 3)).astype(np.float32),
    "labels:0": np.array([0, 2, 1, 2], np.int64),
    "anything:0": np.arange(5, dtype=np.int32),
}


def build_model() -> tuple[gf.Graph, list[str], list[str]]:
    """A graph using many ops; returns it, the tensor names to fetch and the train ops."""
    g = gf.Graph()
    with g.as_default():
        gf.set_random_seed(7)
        x = gf.placeholder(gf.float32, [None, 6], name="x")
        img = gf.placeholder(gf.float32, [None, 5, 5, 3], name="img")
        labels = gf.placeholder(gf.int64, [None], name="labels")
        anything = gf.placeholder(gf.int32, None, name="anything")
        fetch = []
        for d in (gf.float16, gf.float32, gf.float64):
            c = gf.constant(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1 / 3],
                                     d.as_numpy_dtype), name=f"const_{d.name}")
            fetch.append(c * 2)
        for d in (gf.int8, gf.int16, gf.int32, gf.int64, gf.uint8):
            info = np.iinfo(d.as_numpy_dtype)
            fetch.append(gf.constant([info.min, 0, info.max], d, name=f"const_{d.name}"))
        fetch.append(gf.logical_not(gf.constant([True, False], name="const_bool")))
        fetch += [gf.constant(np.zeros((0, 3), np.float32), name="empty"),
                  gf.constant(3.5, gf.float64, name="scalar"),
                  gf.reduce_sum(anything) + 1, gf.shape(anything)]
        w = gf.Variable(gf.random_normal([6, 3], stddev=0.5, seed=3), name="dense/w")
        b = gf.Variable(gf.zeros([3]), name="dense/b")
        h = gf.nn.bias_add(gf.matmul(x, w), b)
        for act in (gf.nn.relu, gf.nn.elu, gf.nn.selu, gf.nn.gelu, gf.nn.softplus,
                    gf.nn.log_softmax, gf.sigmoid, gf.tanh):
            fetch.append(act(h))
        fetch.append(gf.nn.leaky_relu(h, alpha=0.1))
        loss = gf.reduce_mean(gf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                                             logits=h))
        fetch.append(loss)
        mean, var = gf.nn.moments(h, axes=[0])
        fetch.append(gf.nn.batch_normalization(h, mean, var, 0.1, 1.2, 1e-3))
        fetch.append(gf.nn.dropout(h, rate=0.5, seed=11))
        fetch.append(gf.random_uniform([2, 2], seed=5) + gf.truncated_normal([2, 2], seed=6))
        k = gf.Variable(gf.random_normal([3, 3, 3, 4], seed=9), name="conv/k")
        conv = gf.nn.conv2d(img, k, strides=[1, 1, 1, 1], padding="SAME")
        fetch += [gf.nn.max_pool(conv, [1, 2, 2, 1], [1, 2, 2, 1], "VALID"),
                  gf.nn.avg_pool(conv, [1, 3, 3, 1], [1, 1, 1, 1], "SAME")]
        fetch += [x[1:, ::2], x[..., -1], x[:, None, 2], gf.gather(x, [3, 0]),
                  gf.gather_nd(x, [[0, 1], [2, 3]]), gf.slice(x, [0, 1], [2, 3]),
                  gf.strided_slice(x, [0, 0], [4, 6], [2, 3])]
        fetch += [gf.concat([x, x], axis=1), *gf.split(x, 2, axis=1), *gf.unstack(x, num=4),
                  gf.one_hot(labels, 3), gf.pad(x, [[1, 0], [0, 2]]), gf.tile(x, [1, 2]),
                  gf.range(0, 10, 3), gf.cast(x > 0, gf.int32), gf.argmax(x, axis=1),
                  gf.where(x > 0, x, -x), gf.reduce_max(x, axis=[0, 1], keepdims=True),
                  gf.reduce_prod(x, axis=()), gf.transpose(x), gf.reshape(x, [-1, 3]),
                  gf.expand_dims(x, 0), gf.squeeze(gf.expand_dims(x, 2), [2]),
                  gf.stack([x, x], axis=1), gf.clip_by_value(x, -0.5, 0.5),
                  gf.placeholder_with_default(gf.constant([1.0, 2.0]), [None], name="pwd")]
        gw, gk = gf.gradients(loss + gf.reduce_sum(conv), [w, k])
        fetch += [gw, gk]
        step = gf.train.get_or_create_global_step()
        train = gf.train.AdamOptimizer(0.01).minimize(loss, global_step=step, name="train")
        with gf.control_dependencies([train]):
            after = gf.identity(loss, name="after_train")
        gf.global_variables_initializer()
    return g, [t.name for t in fetch], [train.name, after.name]


def run_model(g: gf.Graph, fetches: list[str], train_ops: list[str]) -> list[np.ndarray]:
    with gf.Session(graph=g) as sess:
        sess.run(g.get_operation_by_name("init"))
        out = sess.run(fetches, FEEDS)
        for _ in range(2):
            out.append(sess.run(train_ops[1], FEEDS))
        out += sess.run(["dense/w:0", "conv/k:0", "global_step:0"])
    return out


def assert_bit_identical(a: list, b: list) -> None:
    assert len(a) == len(b)
    for i, (u, v) in enumerate(zip(a, b)):
        u, v = np.asarray(u), np.asarray(v)
        assert u.dtype == v.dtype and u.shape == v.shape, i
        assert u.tobytes() == v.tobytes(), i


@pytest.fixture(scope="module")
def model():
    g, fetches, train_ops = build_model()
    return g, fetches, train_ops, run_model(g, fetches, train_ops)


def _load_via(how: str, gd: gf.GraphDef, tmp_path) -> gf.GraphDef:
    if how == "bytes":
        return gf.GraphDef.FromString(gd.SerializeToString())
    if how == "text":
        path = gf.io.write_graph(gd, str(tmp_path), "g.pbtxt", as_text=True)
        return gf.io.read_graph(path)
    if how == "side_file":
        path = gf.io.write_graph(gd, str(tmp_path), "g.gfpb", large_tensor_threshold=16)
        assert len(gf.io.files.side_file_glob(path)) == 1
        return gf.io.read_graph(path)
    path = gf.io.write_graph(gd, str(tmp_path), "g.gfpb")
    return gf.io.read_graph(path)


@pytest.mark.parametrize("how", ["bytes", "file", "text", "side_file"])
def test_round_trip_gives_identical_graph_and_results(model, how, tmp_path):
    g, fetches, train_ops, expected = model
    gd = g.as_graph_def()
    loaded = _load_via(how, gd, tmp_path)
    assert loaded == gd
    g2 = gf.Graph()
    with g2.as_default():
        assert gf.import_graph_def(loaded, name="") is None
    assert [(o.name, o.type) for o in g2.get_operations()] == \
        [(o.name, o.type) for o in g.get_operations()]
    assert g2.as_graph_def() == gd
    assert_bit_identical(run_model(g2, fetches, train_ops), expected)


def test_add_shapes_restores_refined_static_shapes():
    x = gf.placeholder(gf.float32, [None, None], name="x")
    x.set_shape([None, 4])
    gf.identity(x, name="y")
    gd = gf.get_default_graph().as_graph_def(add_shapes=True)
    g2 = gf.Graph()
    with g2.as_default():
        gf.import_graph_def(gf.GraphDef.FromString(gd.SerializeToString()), name="")
    assert g2.get_tensor_by_name("x:0").shape.as_list() == [None, 4]
    assert g2.get_tensor_by_name("y:0").shape.as_list() == [None, 4]
    assert g2.get_operation_by_name("x").get_attr("shape").as_list() == [None, None]


def test_import_with_prefix_input_map_and_return_elements():
    src = gf.Graph()
    with src.as_default():
        x = gf.placeholder(gf.float32, [None], name="x")
        gate = gf.no_op(name="gate")
        with gf.control_dependencies([gate]):
            y = gf.multiply(x, 3.0, name="y")
        gf.add(y, 1.0, name="z")
    gd = src.as_graph_def()
    g = gf.Graph()
    with g.as_default():
        a = gf.constant([1.0, 2.0], name="a")
        mine = gf.no_op(name="mine")
        z_t, z_op, y_op = gf.import_graph_def(
            gd, input_map={"x:0": a, "^gate": mine}, return_elements=["z:0", "z", "y"])
        assert z_t.name == "import/z:0" and z_op.name == "import/z"
        assert y_op.control_inputs == [mine] and y_op.inputs[0] is a
        again = gf.import_graph_def(gd, input_map={"x": a}, return_elements=["z:0"],
                                    name="net")
        third = gf.import_graph_def(gd, input_map={"x": a}, return_elements=["z:0"],
                                    name="net")
        assert again[0].name == "net/z:0" and third[0].name == "net_1/z:0"
        with gf.Session() as sess:
            np.testing.assert_array_equal(sess.run(z_t), [4.0, 7.0])
        with pytest.raises(ValueError, match="not found in graph_def"):
            gf.import_graph_def(gd, input_map={"nope:0": a}, name="bad")
        with pytest.raises(ValueError, match="not found in graph_def"):
            gf.import_graph_def(gd, return_elements=["z:1"], name="bad2")
        with pytest.raises(gf.errors.InvalidArgumentError, match="already has an op"):
            gf.import_graph_def(gd, input_map={"x": a}, name="")
            gf.import_graph_def(gd, input_map={"x": a}, name="")


def test_write_graph_forms(tmp_path):
    gf.matmul(gf.placeholder(gf.float32, [2, 2], name="p"), gf.eye(2), name="mm")
    g = gf.get_default_graph()
    binary = gf.io.write_graph(g, str(tmp_path / "sub"), "model.gfpb")
    text = gf.io.write_graph(g, str(tmp_path), "model.pbtxt", as_text=True)
    direct = gf.io.write_graph(g, str(tmp_path / "direct.gfpb"))   # DESIGN.md's two-arg form
    content = open(text, encoding="utf-8").read()
    assert 'op: "MatMul"' in content and content.rstrip().splitlines()[-1].startswith("# crc32c")
    for path in (binary, text, direct):
        assert gf.io.read_graph(path) == g.as_graph_def()
    assert not any(".tmp" in f for f in os.listdir(tmp_path))
    with pytest.raises(TypeError):
        gf.io.write_graph("not a graph", str(tmp_path), "x.gfpb")


def test_large_tensors_go_to_a_side_file(tmp_path, monkeypatch):
    big = np.arange(10_000, dtype=np.float64)
    gf.constant(big, name="big")
    gf.constant([1.0, 2.0], name="small")
    g = gf.get_default_graph()
    path = gf.io.write_graph(g, str(tmp_path), "m.gfpb", large_tensor_threshold=1000)
    sides = gf.io.files.side_file_glob(path)
    assert len(sides) == 1 and os.path.getsize(path) < 1000
    assert os.path.getsize(sides[0]) >= big.nbytes
    gd = gf.io.read_graph(path)
    np.testing.assert_array_equal(gf.make_ndarray(gd.node[0].attr["value"].tensor), big)
    # Writing again replaces the side file and removes the stale one.
    gf.io.write_graph(g, str(tmp_path), "m.gfpb", large_tensor_threshold=1000)
    assert len(gf.io.files.side_file_glob(path)) == 1
    # The automatic mode keeps the inline total within the budget, largest tensor first.
    monkeypatch.setattr(graph_io, "INLINE_TENSOR_BUDGET", 100)
    auto = gf.io.write_graph(g, str(tmp_path), "auto.gfpb")
    assert len(gf.io.files.side_file_glob(auto)) == 1
    assert gf.io.read_graph(auto) == g.as_graph_def()
    # Bytes alone cannot be imported: the side file must be found via read_graph.
    raw = gf.GraphDef.FromString(open(path, "rb").read())
    with pytest.raises(gf.errors.InvalidArgumentError, match="side file"):
        with gf.Graph().as_default():
            gf.import_graph_def(raw)


def test_damaged_side_files_are_detected(tmp_path):
    gf.constant(np.arange(1000, dtype=np.int32), name="big")
    path = gf.io.write_graph(gf.get_default_graph(), str(tmp_path), "m.gfpb",
                             large_tensor_threshold=10)
    (side,) = gf.io.files.side_file_glob(path)
    data = open(side, "rb").read()
    with open(side, "wb") as f:
        f.write(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    with pytest.raises(gf.errors.DataLossError, match="checksum mismatch in side file"):
        gf.io.read_graph(path)
    with open(side, "wb") as f:
        f.write(data[:-8])
    with pytest.raises(gf.errors.DataLossError, match="truncated"):
        gf.io.read_graph(path)
    os.remove(side)
    with pytest.raises(gf.errors.NotFoundError):
        gf.io.read_graph(path)


def test_side_file_names_cannot_escape_the_directory(tmp_path):
    t = m.TensorProto(dtype=1, tensor_shape=gf.io.tensors.shape_to_proto([2]),
                      external=m.ExternalData(location="../../etc/passwd", length=8))
    gd = m.GraphDef(node=[m.NodeDef(name="c", op="Const", attr={
        "value": m.AttrValue(tensor=t), "dtype": m.AttrValue(type=1)})])
    path = tmp_path / "evil.gfpb"
    path.write_bytes(gd.SerializeToString())
    with pytest.raises(gf.errors.InvalidArgumentError, match="not a plain file name"):
        gf.io.read_graph(str(path))


def _small_graph_file(tmp_path) -> str:
    x = gf.placeholder(gf.float32, [None, 2], name="x")
    gf.nn.softmax(gf.matmul(x, gf.constant([[1.0, 2.0], [3.0, 4.0]])), name="y")
    return gf.io.write_graph(gf.get_default_graph(), str(tmp_path), "g.gfpb")


def test_truncation_and_bit_flips_are_data_loss(tmp_path):
    path = _small_graph_file(tmp_path)
    data = open(path, "rb").read()
    damaged = tmp_path / "damaged.gfpb"
    for cut in range(0, len(data), 3):
        damaged.write_bytes(data[:cut])
        with pytest.raises(gf.errors.DataLossError):
            gf.io.read_graph(str(damaged))
    for pos in range(0, len(data), 5):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << (pos % 8)
        damaged.write_bytes(bytes(flipped))
        with pytest.raises(gf.errors.DataLossError, match="byte offset"):
            gf.io.read_graph(str(damaged))


def test_damaged_text_files_are_data_loss(tmp_path):
    gf.placeholder(gf.float32, [3], name="x")
    path = gf.io.write_graph(gf.get_default_graph(), str(tmp_path), "g.pbtxt", as_text=True)
    text = open(path, "rb").read()
    (tmp_path / "cut.pbtxt").write_bytes(text[:-20])
    with pytest.raises(gf.errors.DataLossError, match="CRC32C line"):
        gf.io.read_graph(str(tmp_path / "cut.pbtxt"))
    (tmp_path / "flip.pbtxt").write_bytes(text.replace(b'"x"', b'"y"'))
    with pytest.raises(gf.errors.DataLossError, match="checksum mismatch"):
        gf.io.read_graph(str(tmp_path / "flip.pbtxt"))
    body = text.split(b"\n", 1)[1].rsplit(b"# crc32c", 1)[0]   # hand-written: no framing
    (tmp_path / "hand.pbtxt").write_bytes(body)
    assert gf.io.read_graph(str(tmp_path / "hand.pbtxt")).node[0].name == "x"


def test_missing_file_and_directory_errors(tmp_path):
    with pytest.raises(gf.errors.NotFoundError, match="nope.gfpb"):
        gf.io.read_graph(str(tmp_path / "nope.gfpb"))
    with pytest.raises(gf.errors.InvalidArgumentError, match="directory"):
        gf.io.read_graph(str(tmp_path))


# --- invalid content (well-formed protobuf that graphflow must refuse) --------------------
def _node(name, op, inputs=(), **attrs):
    return m.NodeDef(name=name, op=op, input=list(inputs), attr=attrs)


def _const(name="c", **tensor):
    t = m.TensorProto(**tensor)
    return _node(name, "Const", value=m.AttrValue(tensor=t),
                 dtype=m.AttrValue(type=tensor.get("dtype", 1)))


def _shape(*dims):
    return m.TensorShapeProto(dim=[m.Dim(size=d) for d in dims])


@pytest.mark.parametrize("nodes,error,match", [
    ([_node("a", "Frobnicate")], gf.errors.NotFoundError, "'Frobnicate' is not registered"),
    ([_const(dtype=7, tensor_shape=_shape(1))], gf.errors.InvalidArgumentError,
     r"dtype enum 7 \(DT_STRING\)"),
    ([_const(dtype=1234, tensor_shape=_shape(1))], gf.errors.InvalidArgumentError,
     "dtype enum 1234"),
    ([_const(dtype=1, tensor_shape=_shape(-5))], gf.errors.InvalidArgumentError,
     "size -5"),
    ([_const(dtype=1, tensor_shape=_shape(3), tensor_content=b"\x00" * 8)],
     gf.errors.InvalidArgumentError, "needs 12 bytes, but its tensor_content has 8"),
    ([_const(dtype=1, tensor_shape=_shape(1000000, 1000000), float_val=[1.0])],
     gf.errors.InvalidArgumentError, "refusing to expand"),
    ([_const(dtype=1, tensor_shape=_shape(2), float_val=[1.0, 2.0, 3.0])],
     gf.errors.InvalidArgumentError, "2 elements but 3 values"),
    ([_const(dtype=6, tensor_shape=_shape(1), int_val=[300])],
     gf.errors.InvalidArgumentError, "out of range for int8"),
    ([_node("a", "NoOp"), _node("a", "NoOp")], gf.errors.InvalidArgumentError,
     "duplicate node name"),
    ([_node("a", "Identity", ["ghost"])], gf.errors.InvalidArgumentError,
     "'ghost' is not a node"),
    ([_node("a", "Identity", ["b"]), _node("b", "Identity", ["a"])],
     gf.errors.InvalidArgumentError, "cycle"),
    ([_node("a", "NoOp"), _node("b", "Identity", ["a:x"])], gf.errors.InvalidArgumentError,
     "bad output index"),
    ([_node("a", "NoOp"), _node("b", "Identity", ["a:3"])], gf.errors.InvalidArgumentError,
     "a:3 does not exist"),
    ([_node("bad:name", "NoOp")], gf.errors.InvalidArgumentError, "not a valid node name"),
    ([_node("p", "Placeholder", dtype=m.AttrValue())], gf.errors.InvalidArgumentError,
     "has no value"),
    ([_node("p", "Placeholder", dtype=m.AttrValue(type=1),
            shape=m.AttrValue(s=b"oops"))], gf.errors.InvalidArgumentError,
     "cannot rebuild the op"),
    ([_const("a", dtype=1, tensor_shape=_shape(2, 3), tensor_content=bytes(24)),
      _node("mm", "MatMul", ["a", "a"], transpose_a=m.AttrValue(b=False),
            transpose_b=m.AttrValue(b=False))],
     gf.errors.InvalidArgumentError, "node 'mm' \\(MatMul\\): cannot rebuild"),
])
def test_invalid_content_gives_clear_errors(nodes, error, match):
    gd = m.GraphDef(node=nodes)
    data = gd.SerializeToString()
    with pytest.raises(error, match=match):
        gf.import_graph_def(gf.GraphDef.FromString(data))


def test_version_checks():
    gd = m.GraphDef(versions=m.VersionDef(producer=5, min_consumer=99))
    with pytest.raises(gf.errors.InvalidArgumentError, match="min consumer version 99"):
        gf.import_graph_def(gd)
    gd = m.GraphDef(versions=m.VersionDef(producer=1, bad_consumers=[gf.io.GRAPH_DEF_VERSION]))
    with pytest.raises(gf.errors.InvalidArgumentError, match="disallows consumer"):
        gf.import_graph_def(gd)


def test_declared_terabyte_tensor_in_a_tiny_file_is_refused(tmp_path):
    t = m.TensorProto(dtype=1, tensor_shape=_shape(1 << 20, 1 << 20))
    gd = m.GraphDef(node=[_const(dtype=1, tensor_shape=_shape(1 << 20, 1 << 20))])
    path = tmp_path / "tiny.gfpb"
    path.write_bytes(gd.SerializeToString())
    assert os.path.getsize(path) < 100 and t.tensor_shape.dim[0].size == 1 << 20
    with pytest.raises(gf.errors.InvalidArgumentError, match="declares 4398046511104 bytes"):
        gf.import_graph_def(gf.io.read_graph(str(path)))


# --- fuzzing the whole path: bytes -> GraphDef -> import ----------------------------------
def _unchecked_seed() -> bytes:
    g = gf.Graph()
    with g.as_default():
        x = gf.placeholder(gf.float32, [None, 3], name="x")
        w = gf.Variable(np.ones((3, 2), np.float32), name="w")
        y = gf.nn.softmax(gf.matmul(x, w))
        gf.reduce_sum(y[:, 1:], axis=[0], keepdims=True)
        gf.concat([y, y], 1)
    chunks, _ = serialize_chunks(g.as_graph_def(add_shapes=True), checksum=False)
    return b"".join(chunks)  # no checksum, so mutations reach the semantic checks


_SEED = _unchecked_seed()


@settings(max_examples=FUZZ_EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_SEED) - 1), st.integers(0, 255)),
                min_size=1, max_size=3),
       st.sampled_from(["flip", "cut", "insert"]), st.integers(0, len(_SEED)))
def test_fuzz_mutated_graph_files_load_or_raise_graphflow_errors(edits, mode, at):
    data = bytearray(_SEED)
    for pos, byte in edits:
        if mode == "insert":
            data.insert(pos, byte)
        else:
            data[pos] ^= byte or 1
    if mode == "cut":
        data = data[:at]
    g = gf.Graph()
    try:
        gd = gf.GraphDef.FromString(bytes(data))
        with g.as_default():
            gf.import_graph_def(gd)
    except gf.errors.OpError:
        pass
