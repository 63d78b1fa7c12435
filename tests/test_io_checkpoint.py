"""Checkpoints (Saver), meta graphs and freezing; crashes and damage leave files usable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphflow as gf
from graphflow.io import Saver, latest_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model():
    w = gf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="w")
    b = gf.Variable(np.zeros(3, np.float64), name="layer/b")
    n = gf.Variable(7, name="count")
    return w, b, n


def _set(sess, var, value):
    var.load(value, sess)


def test_save_and_restore(tmp_path):
    w, b, n = _model()
    saver = Saver()
    with gf.Session() as sess:
        sess.run(gf.global_variables_initializer())
        _set(sess, b, [1.0, 2.0, 3.0])
        prefix = saver.save(sess, str(tmp_path / "model.ckpt"))
        assert prefix == str(tmp_path / "model.ckpt")
        _set(sess, w, np.ones((2, 3)))
        _set(sess, b, np.zeros(3))
        _set(sess, n, 0)
        saver.restore(sess, prefix)
        got = sess.run([w, b, n])
    np.testing.assert_array_equal(got[0], np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(got[1], [1.0, 2.0, 3.0])
    assert got[2] == 7 and got[1].dtype == np.float64
    names = sorted(os.listdir(tmp_path))
    assert names[0] == "checkpoint" and "model.ckpt.index" in names
    assert "model.ckpt.meta" in names and any(".data-" in f for f in names)
    state = open(tmp_path / "checkpoint", encoding="utf-8").read()
    assert 'model_checkpoint_path: "model.ckpt"' in state
    assert latest_checkpoint(str(tmp_path)) == prefix
    assert gf.io.list_variables(str(tmp_path)) == [("count", []), ("layer/b", [3]),
                                                   ("w", [2, 3])]
    np.testing.assert_array_equal(gf.io.load_variable(prefix, "layer/b"), [1.0, 2.0, 3.0])


def test_global_step_max_to_keep_and_state_file(tmp_path):
    w, _, _ = _model()
    step = gf.Variable(0, name="global_step", trainable=False)
    saver = Saver(max_to_keep=2)
    base = str(tmp_path / "m")
    with gf.Session() as sess:
        sess.run(gf.global_variables_initializer())
        paths = []
        for i in range(1, 5):
            _set(sess, step, i * 10)
            paths.append(saver.save(sess, base, global_step=step if i % 2 else i * 10))
    assert paths == [f"{base}-{i * 10}" for i in range(1, 5)]
    assert saver.last_checkpoints == paths[2:]
    assert not gf.io.checkpoint_exists(paths[0]) and not gf.io.checkpoint_exists(paths[1])
    assert not [f for f in os.listdir(tmp_path) if f.startswith(("m-10.", "m-20."))]
    state = gf.io.get_checkpoint_state(str(tmp_path))
    assert state.model_checkpoint_path == paths[-1]
    assert state.all_model_checkpoint_paths == paths[2:]
    assert latest_checkpoint(str(tmp_path)) == paths[-1]
    keep_all = Saver([w], max_to_keep=None)
    with gf.Session() as sess:
        sess.run(gf.global_variables_initializer())
        for i in range(3):
            keep_all.save(sess, str(tmp_path / "all"), global_step=i, write_meta_graph=False)
    assert all(gf.io.checkpoint_exists(str(tmp_path / f"all-{i}")) for i in range(3))


def test_partial_restore_and_custom_keys(tmp_path):
    w, b, n = _model()
    with gf.Session() as sess:
        sess.run(gf.global_variables_initializer())
        prefix = Saver({"weights": w, "bias": b}).save(sess, str(tmp_path / "c"))
        assert sorted(gf.io.load_checkpoint(prefix).get_variable_to_shape_map()) == \
            ["bias", "weights"]
        _set(sess, w, np.full((2, 3), 5.0))
        _set(sess, b, np.full(3, 5.0))
        Saver({"weights": w}).restore(sess, prefix)
        got_w, got_b = sess.run([w, b])
    np.testing.assert_array_equal(got_w, np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(got_b, np.full(3, 5.0))


def test_restore_errors_leave_variables_unchanged(tmp_path):
    w, b, n = _model()
    with gf.Session() as sess:
        sess.run(gf.global_variables_initializer())
        prefix = Saver([w, b]).save(sess, str(tmp_path / "c"))
    g2 = gf.Graph()
    with g2.as_default():
        w2 = gf.Variable(np.zeros((2, 3), np.float32), name="w")
        other = gf.Variable(np.zeros(2), name="other")
        wrong_shape = gf.Variable(np.zeros((3, 2), np.float32), name="ws")
        wrong_dtype = gf.Variable(np.zeros(3, np.float32), name="wd")
        with gf.Session(graph=g2) as sess:
            sess.run(gf.global_variables_initializer())
            with pytest.raises(gf.errors.NotFoundError, match="Key other not found"):
                Saver([w2, other]).restore(sess, prefix)
            with pytest.raises(gf.errors.InvalidArgumentError, match=r"shape \[2, 3\]"):
                Saver({"w": wrong_shape}).restore(sess, prefix)
            with pytest.raises(gf.errors.InvalidArgumentError, match="float64"):
                Saver({"layer/b": wrong_dtype}).restore(sess, prefix)
            np.testing.assert_array_equal(sess.run(w2), np.zeros((2, 3)))
            with pytest.raises(ValueError, match="None"):
                Saver([w2]).restore(sess, None)
            with pytest.raises(gf.errors.NotFoundError, match="not a valid checkpoint"):
                Saver([w2]).restore(sess, str(tmp_path / "nothing"))


def test_save_errors(tmp_path):
    w, _, _ = _model()
    with pytest.raises(ValueError, match="No variables to save"):
        with gf.Graph().as_default():
            Saver()
    with gf.Graph().as_default():
        elsewhere = gf.Variable(1.0, name="v")
    with pytest.raises(ValueError, match="different graphs"):
        Saver([w, elsewhere])
    with gf.Session() as sess:
        with pytest.raises(gf.errors.FailedPreconditionError, match="uninitialized value w"):
            Saver([w]).save(sess, str(tmp_path / "x"))
        sess.run(gf.global_variables_initializer())
        with pytest.raises(gf.errors.NotFoundError, match="Parent directory"):
            Saver([w]).save(sess, str(tmp_path / "missing" / "x"))
    with pytest.raises(TypeError):
        Saver([gf.constant(1.0)])


def test_damaged_checkpoints_are_data_loss(tmp_path):
    w, b, n = _model()
    with gf.Session() as sess:
        sess.run(gf.global_variables_initializer())
        prefix = Saver().save(sess, str(tmp_path / "c"))
        (data,) = [tmp_path / f for f in os.listdir(tmp_path) if ".data-" in f and
                   "meta" not in f]
        raw = data.read_bytes()
        data.write_bytes(raw[:5] + bytes([raw[5] ^ 4]) + raw[6:])
        with pytest.raises(gf.errors.DataLossError, match="checksum mismatch"):
            Saver().restore(sess, prefix)
        data.write_bytes(raw[:-3])
        with pytest.raises(gf.errors.DataLossError, match="truncated"):
            Saver().restore(sess, prefix)
        data.write_bytes(raw)
        index = tmp_path / "c.index"
        good = index.read_bytes()
        for pos in range(0, len(good), 7):
            index.write_bytes(good[:pos] + bytes([good[pos] ^ 0x20]) + good[pos + 1:])
            with pytest.raises(gf.errors.DataLossError):
                Saver().restore(sess, prefix)
        index.write_bytes(good[: len(good) // 2])
        with pytest.raises(gf.errors.DataLossError):
            Saver().restore(sess, prefix)
        index.write_bytes(good)
        Saver().restore(sess, prefix)
    (tmp_path / "checkpoint").write_bytes(b"model_checkpoint_path: \xff\n")
    with pytest.warns(UserWarning, match="invalid UTF-8"):
        assert latest_checkpoint(str(tmp_path)) is None


# --- crashes ---------------------------------------------------------------------------
_CHILD = textwrap.dedent("""
    import os, sys
    import numpy as np
    import graphflow as gf
    from graphflow.io import files

    mode, ckdir = sys.argv[1], sys.argv[2]
    w = gf.Variable(np.zeros((128, 128), np.float32), name="w")
    b = gf.Variable(np.zeros(64, np.int64), name="b")
    saver = gf.io.Saver(max_to_keep=2)
    sess = gf.Session()
    sess.run(gf.global_variables_initializer())

    def save(step, **kw):
        w.load(np.full((128, 128), step, np.float32), sess)
        b.load(np.full(64, step, np.int64), sess)
        return saver.save(sess, os.path.join(ckdir, "model.ckpt"), **kw)

    if mode == "loop":
        step = 1
        while True:
            save(step, global_step=step)
            print(step, flush=True)
            step += 1
    save(1, global_step=None if mode == "replace" else 1)
    if mode == "fsync":          # dies after writing the data, before any rename
        os.fsync = lambda fd: os._exit(17)
    else:                        # dies after the data file's rename, before the index's
        real = os.replace
        calls = []
        def replace(a, b):
            calls.append(b)
            if b.endswith(".index"):
                os._exit(17)
            real(a, b)
        os.replace = replace
    save(2, global_step=None if mode == "replace" else 2)
    print("survived", flush=True)
""")


def _restore_all(ckdir: str, prefix: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    prefix = prefix or latest_checkpoint(ckdir)
    g = gf.Graph()
    with g.as_default():
        w = gf.Variable(np.zeros((128, 128), np.float32), name="w")
        b = gf.Variable(np.zeros(64, np.int64), name="b")
        with gf.Session(graph=g) as sess:
            Saver().restore(sess, prefix)
            return sess.run([w, b])


def _child(mode: str, ckdir: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", _CHILD, mode, ckdir], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.parametrize("mode", ["fsync", "rename", "replace"])
def test_process_dying_mid_save_leaves_previous_checkpoint(tmp_path, mode):
    proc = _child(mode, str(tmp_path))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 17, err
    assert "survived" not in out
    prefix = str(tmp_path / ("model.ckpt" if mode == "replace" else "model.ckpt-1"))
    assert latest_checkpoint(str(tmp_path)) == prefix
    w, b = _restore_all(str(tmp_path))
    assert (w == 1).all() and (b == 1).all()


def test_sigkill_during_repeated_saves_leaves_a_consistent_checkpoint(tmp_path):
    proc = _child("loop", str(tmp_path))
    last = 0
    try:
        while last < 4:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            last = int(line)
        time.sleep(0.003 * (last % 5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    w, b = _restore_all(str(tmp_path))
    step = int(w[0, 0])
    assert step >= last and (w == step).all() and (b == step).all()


# --- meta graphs: resuming training from files alone ----------------------------------------
def _train_graph():
    rng = np.random.default_rng(3)
    xs = rng.standard_normal((8, 4)).astype(np.float32)
    ys = (xs @ np.array([1.0, -2.0, 0.5, 3.0], np.float32) > 0).astype(np.int64)
    x = gf.placeholder(gf.float32, [None, 4], name="x")
    y = gf.placeholder(gf.int64, [None], name="y")
    w = gf.Variable(gf.random_normal([4, 2], seed=1), name="w")
    logits = gf.matmul(x, w, name="logits")
    loss = gf.reduce_mean(gf.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                                         logits=logits),
                          name="loss")
    step = gf.train.get_or_create_global_step()
    train = gf.train.MomentumOptimizer(0.1, 0.9).minimize(loss, global_step=step)
    gf.add_to_collection("inputs", x)
    gf.add_to_collection("notes", "labels are 0/1")
    gf.add_to_collection("sizes", 4)
    return {"x:0": xs, "y:0": ys}, loss, train


def test_resume_training_from_meta_graph_and_checkpoint(tmp_path):
    feeds, loss, train = _train_graph()
    with gf.Session() as sess:
        sess.run(gf.global_variables_initializer())
        for _ in range(3):
            sess.run(train, feeds)
        prefix = Saver().save(sess, str(tmp_path / "model"), global_step=3)
        expected = [sess.run([train, loss], feeds)[1] for _ in range(3)]
        expected_w = sess.run("w:0")
    gf.reset_default_graph()
    saver = gf.io.import_meta_graph(latest_checkpoint(str(tmp_path)) + ".meta")
    g = gf.get_default_graph()
    (train2,) = g.get_collection(gf.GraphKeys.TRAIN_OP)
    assert [v.name for v in g.get_collection(gf.GraphKeys.TRAINABLE_VARIABLES)] == ["w:0"]
    assert g.get_collection("notes") == ["labels are 0/1"] and g.get_collection("sizes") == [4]
    assert g.get_collection("inputs")[0] is g.get_tensor_by_name("x:0")
    with gf.Session() as sess:
        saver.restore(sess, prefix)
        assert sess.run("global_step:0") == 3
        got = [sess.run([train2, "loss:0"], feeds)[1] for _ in range(3)]
        assert np.asarray(got).tobytes() == np.asarray(expected).tobytes()
        assert sess.run("w:0").tobytes() == expected_w.tobytes()
        # The recreated Variable objects work like the originals.
        (w,) = g.get_collection(gf.GraphKeys.TRAINABLE_VARIABLES)
        sess.run(w.initializer)
        assert sess.run(w).shape == (4, 2) and w.trainable


def test_meta_graph_text_form_and_import_scope(tmp_path):
    _train_graph()
    path = str(tmp_path / "m.meta.pbtxt")
    gf.io.export_meta_graph(path, as_text=True)
    assert "variable_list" in open(path, encoding="utf-8").read()
    gf.reset_default_graph()
    saver = gf.io.import_meta_graph(path, import_scope="restored")
    g = gf.get_default_graph()
    assert g.get_collection(gf.GraphKeys.TRAIN_OP)[0].name.startswith("restored/")
    assert saver is not None
    with gf.Session() as sess:
        sess.run(gf.global_variables_initializer())
        assert sess.run("restored/w:0").shape == (4, 2)


# --- freezing ------------------------------------------------------------------------------
def test_freeze_runs_without_a_checkpoint(tmp_path):
    feeds, loss, train = _train_graph()
    gf.nn.softmax(gf.get_default_graph().get_tensor_by_name("logits:0"), name="probs")
    with gf.Session() as sess:
        sess.run(gf.global_variables_initializer())
        sess.run(train, feeds)
        expected = sess.run("probs:0", feeds)
        frozen = gf.graph_util.convert_variables_to_constants(
            sess, sess.graph.as_graph_def(), ["probs"])
        with pytest.raises(gf.errors.InvalidArgumentError, match="Cannot freeze"):
            gf.graph_util.convert_variables_to_constants(
                sess, sess.graph.as_graph_def(), [train.name])
    assert "VariableV2" not in {n.op for n in frozen.node}
    assert "Momentum" not in str([n.op for n in frozen.node])
    path = gf.io.write_graph(frozen, str(tmp_path), "frozen.gfpb")
    gf.reset_default_graph()
    gf.import_graph_def(gf.io.read_graph(path), name="")
    with gf.Session() as sess:
        got = sess.run("probs:0", {"x:0": feeds["x:0"]})
    assert got.tobytes() == expected.tobytes()
    g = gf.Graph()
    with g.as_default():
        gf.identity(gf.Variable(1.0, name="v"), name="out")
        with gf.Session(graph=g) as sess, pytest.raises(gf.errors.FailedPreconditionError):
            gf.graph_util.convert_variables_to_constants(sess, g.as_graph_def(), ["out"])


def test_extract_sub_graph_and_remove_training_nodes():
    x = gf.placeholder(gf.float32, [2], name="x")
    y = gf.identity(gf.identity(x, name="i1"), name="i2")
    gf.add(y, 1.0, name="z")
    gf.negative(x, name="unrelated")
    gd = gf.get_default_graph().as_graph_def()
    sub = gf.graph_util.extract_sub_graph(gd, ["z"])
    assert [n.name for n in sub.node] == ["x", "i1", "i2", "z/y", "z"]
    slim = gf.graph_util.remove_training_nodes(sub, protected_nodes=["z"])
    assert [n.name for n in slim.node] == ["x", "z/y", "z"]
    assert slim.node[-1].input[0] == "x"
    with pytest.raises(ValueError, match="not in graph"):
        gf.graph_util.extract_sub_graph(gd, ["nope"])


# --- fuzzing meta graphs and checkpoint indexes ------------------------------------------
FUZZ_EXAMPLES = int(os.environ.get("GRAPHFLOW_FUZZ_EXAMPLES", "200")) // 2


def _unchecked_seeds(tmp_path_factory) -> tuple[bytes, bytes, str]:
    from graphflow.io.wire import serialize_chunks

    ckdir = str(tmp_path_factory.mktemp("fuzz"))
    g = gf.Graph()
    with g.as_default():
        _train_graph()
        with gf.Session(graph=g) as sess:
            sess.run(gf.global_variables_initializer())
            saver = Saver()
            prefix = saver.save(sess, os.path.join(ckdir, "m"))
            meta = saver.export_meta_graph()
    index = gf.io.messages.CheckpointIndex.FromString(open(prefix + ".index", "rb").read())

    def raw(msg):  # no checksum, so mutations reach the semantic checks
        return b"".join(serialize_chunks(msg, checksum=False)[0])

    return raw(meta), raw(index), prefix


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return _unchecked_seeds(tmp_path_factory)


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for pos, byte in edits:
        out[pos % len(out)] ^= byte or 1
    return bytes(out)


@settings(max_examples=FUZZ_EXAMPLES, suppress_health_check=[HealthCheck.too_slow,
                                                             HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1,
                max_size=3), st.booleans())
def test_fuzz_meta_graphs_and_indexes_load_or_raise_graphflow_errors(seeds, edits, which):
    meta_seed, index_seed, prefix = seeds
    g = gf.Graph()
    try:
        if which:
            meta = gf.MetaGraphDef.FromString(_mutate(meta_seed, edits))
            with g.as_default():
                saver = gf.io.import_meta_graph(meta)
                if saver is not None:
                    saver.as_saver_def()
        else:
            fuzzed = os.path.join(os.path.dirname(prefix), "fuzzed")
            with open(fuzzed + ".index", "wb") as f:
                f.write(_mutate(index_seed, edits))
            reader = gf.io.CheckpointReader(fuzzed)
            reader.get_variable_to_shape_map()
            reader.get_variable_to_dtype_map()
            reader.read(sorted(reader.entries))
    except gf.errors.OpError:
        pass
