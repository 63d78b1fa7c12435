"""The `graphflow` command, run as a subprocess on graph files saved in a tmp dir.

Each subprocess costs about a second (importing graphflow), so checks are grouped
and independent commands run concurrently.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import graphflow as gf
from graphflow import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz's `dot` is not installed (apt-get install graphviz)")


def gf_cmd(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    """Runs ``python -m graphflow ARGS`` in ``cwd``."""
    env = dict(os.environ, PYTHONWARNINGS="default")
    return subprocess.run([sys.executable, "-m", "graphflow", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=env)


def gf_many(cmds: list[tuple[str, ...]], cwd: pathlib.Path) -> list[subprocess.CompletedProcess]:
    """Runs several commands concurrently; results in order."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda c: gf_cmd(*c, cwd=cwd), cmds))


def ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, (r.args, r.stdout, r.stderr)
    return r.stdout


def one_line_error(r: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """Asserts exit status ``code`` and a single ``graphflow: error:`` line naming ``words``."""
    lines = r.stderr.splitlines()
    assert r.returncode == code, (r.args, r.returncode, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("graphflow: error: "), (r.args, r.stderr)
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


# --- the files ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """An MLP trained one Adam step: graph file (binary, text), meta graph + checkpoint,
    frozen graph, inputs, the expected probabilities, and damaged files."""
    d = tmp_path_factory.mktemp("cli")
    g = gf.Graph()
    with g.as_default():
        gf.set_random_seed(1)
        x = gf.placeholder(gf.float32, [None, 4], name="x")
        y = gf.placeholder(gf.int64, [None], name="y")
        hidden = gf.layers.dense(x, 8, activation=gf.nn.relu)
        logits = gf.layers.dense(hidden, 3)
        probs = gf.nn.softmax(logits, name="probs")
        loss = gf.reduce_mean(gf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=logits), name="loss")
        gf.train.AdamOptimizer(0.05).minimize(loss, name="train")
        init = gf.global_variables_initializer()
        saver = gf.train.Saver()
        xs = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
        ys = np.argmax(xs[:, :3], axis=1)
        with gf.Session(graph=g) as sess:
            sess.run(init)
            sess.run("train", {x: xs, y: ys})
            expected = sess.run(probs, {x: xs})
            (d / "ckpt").mkdir()
            saver.save(sess, str(d / "ckpt" / "model.ckpt"))
            frozen = gf.graph_util.convert_variables_to_constants(
                sess, g.as_graph_def(), ["probs"])
        gf.train.write_graph(g, str(d / "model.gfpb"))
        gf.train.write_graph(g, str(d), "model.pbtxt", as_text=True)
        gf.train.write_graph(frozen, str(d / "frozen.gfpb"))
    np.save(d / "x.npy", xs)
    np.save(d / "x64.npy", xs.astype(np.float64))         # converts to float32 without loss
    np.save(d / "bad_shape.npy", np.zeros((5, 3), np.float32))
    np.save(d / "bad_dtype.npy", np.zeros((5, 4), np.bool_))
    data = (d / "frozen.gfpb").read_bytes()
    (d / "truncated.gfpb").write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0x20
    (d / "bitflip.gfpb").write_bytes(bytes(flipped))
    (d / "junk.gfpb").write_bytes(b"this is not a graph\n")
    return {"dir": d, "expected": expected, "xs": xs}


# --- inspect --------------------------------------------------------------------------------
def test_inspect_graph_meta_text_and_frozen(files):
    d = files["dir"]
    text, meta, pbtxt, frozen = gf_many([
        ("inspect", "model.gfpb"), ("inspect", "ckpt/model.ckpt.meta", "--json"),
        ("inspect", "model.pbtxt", "--json"), ("inspect", "frozen.gfpb", "--json")], d)
    out = ok(text)
    assert "GraphDef, binary, format version 1" in out
    assert re.search(r"^  x:0\s+float32\s+\[\?, 4\]$", out, re.M)
    assert re.search(r"^  y:0\s+int64\s+\[\?\]$", out, re.M)
    assert re.search(r"^outputs: 1\n  probs:0\s+Softmax\s+float32\s+\[\?, 3\]$", out, re.M)
    assert re.search(r"^  train\s+NoOp$", out, re.M)       # a target; `init` is not listed
    assert not re.search(r"^  init\b", out, re.M) and "gradients/" not in out
    assert re.search(r"^  ApplyAdam\s+4$", out, re.M)
    # 4*8 + 8 + 8*3 + 3 = 67 weights, two Adam slots each, and two beta powers.
    assert "variables: 14, 203 parameters" in out
    assert re.search(r"^  dense/kernel\s+float32\s+\[4, 8\]\s+32$", out, re.M)

    info = json.loads(ok(meta))
    assert info["kind"] == "MetaGraphDef" and info["format_version"] == 1
    assert info["meta_info"]["meta_graph_version"] == "graphflow-1"
    assert [i["name"] for i in info["inputs"]] == ["x:0", "y:0"]
    assert info["inputs"][0]["shape"] == [None, 4]
    assert [o["name"] for o in info["outputs"]] == ["probs:0"]
    assert [t["name"] for t in info["targets"]] == ["train"]
    assert info["num_parameters"] == 203 and info["num_trainable_parameters"] == 67
    assert {v["name"] for v in info["variables"] if v["trainable"]} == {
        "dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"}

    num_ops = info["num_ops"]
    info = json.loads(ok(pbtxt))
    assert info["kind"] == "GraphDef" and info["encoding"] == "text"
    assert info["num_ops"] == num_ops and len(info["variables"]) == 14
    assert info["num_trainable_parameters"] is None   # a GraphDef has no collections

    info = json.loads(ok(frozen))
    assert info["variables"] == [] and info["num_parameters"] == 0
    assert info["constants"]["num_values"] == 67
    assert [i["name"] for i in info["inputs"]] == ["x:0"]
    assert [o["name"] for o in info["outputs"]] == ["probs:0"]


# --- run ------------------------------------------------------------------------------------
def test_run_frozen_meta_checkpoint_and_out(files):
    d, expected = files["dir"], files["expected"]
    printed, default, to_dir, meta, graph_dir = gf_many([
        ("run", "frozen.gfpb", "--feed", "x=x.npy", "--fetch", "probs", "dense/Relu:0"),
        ("run", "frozen.gfpb", "--feed", "x=x64.npy"),
        ("run", "frozen.gfpb", "--feed", "x=x.npy", "--fetch", "probs:0", "dense/MatMul",
         "--out", "out_frozen"),
        ("run", "ckpt/model.ckpt.meta", "--checkpoint", "ckpt/model.ckpt", "--feed",
         "x=x.npy", "--fetch", "probs", "--out", "out_meta"),
        ("run", "model.gfpb", "--checkpoint", "ckpt", "--feed", "x=x.npy", "--fetch",
         "probs")], d)
    out = ok(printed)
    assert out.startswith("probs:0: float32 [5, 3]\n")
    shown = np.array([[float(v) for v in re.findall(r"[-\d.e]+", line)]
                      for line in out.splitlines()[1:6]])
    np.testing.assert_allclose(shown, expected, rtol=1e-5)
    # 5x8 = 40 values print in full; the summary line is for big arrays.
    assert "dense/Relu:0: float32 [5, 8]" in out
    assert ok(default).startswith("probs:0: float32 [5, 3]\n")   # default fetch: the outputs

    assert "probs:0 -> out_frozen/probs.npy" in ok(to_dir)
    np.testing.assert_allclose(np.load(d / "out_frozen" / "probs.npy"), expected, rtol=1e-6)
    assert np.load(d / "out_frozen" / "dense__MatMul.npy").shape == (5, 8)
    ok(meta)
    np.testing.assert_allclose(np.load(d / "out_meta" / "probs.npy"), expected, rtol=1e-6)
    assert ok(graph_dir).startswith("probs:0: float32 [5, 3]\n")


def test_run_prints_summary_of_big_arrays(tmp_path):
    g = gf.Graph()
    with g.as_default():
        x = gf.placeholder(gf.float32, [None], name="x")
        gf.multiply(x, 2.0, name="double")
    gf.train.write_graph(g, str(tmp_path / "g.gfpb"))
    np.save(tmp_path / "x.npy", np.arange(1000, dtype=np.float32))
    out = ok(gf_cmd("run", "g.gfpb", "--feed", "x=x.npy", cwd=tmp_path))
    assert out.strip() == ("double:0: float32 [1000]  min 0  max 1998  mean 999  "
                           "(use --out DIR for all values)")


# --- render ---------------------------------------------------------------------------------
@needs_dot
def test_render_svg_png_optimized_and_dot(files):
    d = files["dir"]
    results = gf_many([
        ("render", "model.gfpb", "-o", "model.svg", "--depth", "1"),
        ("render", "ckpt/model.ckpt.meta", "-o", "probs.png", "--fetch", "probs"),
        ("render", "model.gfpb", "-o", "opt.svg", "--optimized", "--fetch", "probs"),
        ("render", "frozen.gfpb", "-o", "frozen.dot")], d)
    for r in results:
        assert ok(r).startswith("wrote ")
    svg = (d / "model.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert (d / "probs.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    opt = (d / "opt.svg").read_text()
    assert "<svg" in opt and "Softmax" in opt and "ApplyAdam" not in opt
    dot = (d / "frozen.dot").read_text()
    assert dot.startswith("digraph") and "MatMul" in dot


# --- optimize -------------------------------------------------------------------------------
def test_optimize_writes_a_runnable_graph_with_report(files):
    d, expected = files["dir"], files["expected"]
    full, some, training = gf_many([
        ("optimize", "frozen.gfpb", "-o", "frozen.opt.gfpb"),
        ("optimize", "frozen.gfpb", "-o", "frozen.cf.pbtxt", "--passes", "constant_folding"),
        ("optimize", "model.gfpb", "-o", "train.opt.gfpb")], d)
    out = ok(full)
    for name in gf.compiler.PASS_NAMES:
        assert re.search(rf"^{name}\s+yes", out, re.M), name
    m = re.search(r"^wrote frozen\.opt\.gfpb: (\d+) ops \(from 15\)$", out, re.M)
    assert m and int(m.group(1)) < 15
    out = ok(some)
    assert re.search(r"^simplify\s+no", out, re.M) and re.search(r"^fusion\s+no", out, re.M)
    assert (d / "frozen.cf.pbtxt").read_text().startswith("# graphflow text format")
    out = ok(training)
    assert "fetches: probs:0, train" in out and "no initializers" in out

    opt, cf, restored = gf_many([
        ("run", "frozen.opt.gfpb", "--feed", "x=x.npy", "--out", "out_opt"),
        ("run", "frozen.cf.pbtxt", "--feed", "x=x.npy", "--out", "out_cf"),
        ("run", "train.opt.gfpb", "--checkpoint", "ckpt/model.ckpt", "--feed", "x=x.npy",
         "--fetch", "probs", "--out", "out_train")], d)
    for r, sub in ((opt, "out_opt"), (cf, "out_cf"), (restored, "out_train")):
        ok(r)
        np.testing.assert_allclose(np.load(d / sub / "probs.npy"), expected, rtol=1e-6)
    with gf.Graph().as_default():
        gd = gf.io.read_graph(str(d / "frozen.opt.gfpb"))
    assert sorted(n.op for n in gd.node).count("Identity") == 0   # reads were folded


def test_optimize_keeps_fetched_names_of_replaced_ops(tmp_path):
    g = gf.Graph()
    with g.as_default():
        x = gf.placeholder(gf.float32, [2], name="x")
        gf.add(gf.constant([1.0, 2.0]), gf.constant([3.0, 4.0]), name="folded")
        gf.multiply(x, 1.0, name="same")
    gf.train.write_graph(g, str(tmp_path / "g.gfpb"))
    np.save(tmp_path / "x.npy", np.array([5.0, 6.0], np.float32))
    ok(gf_cmd("optimize", "g.gfpb", "-o", "opt.gfpb", cwd=tmp_path))
    gd = gf.io.read_graph(str(tmp_path / "opt.gfpb"))
    ops = {n.name: n.op for n in gd.node}
    assert "folded" in ops and "same" in ops    # fetched names still work...
    assert "Add" not in ops.values() and "Mul" not in ops.values()   # ...the ops are gone
    out = ok(gf_cmd("run", "opt.gfpb", "--feed", "x=x.npy", "--fetch", "folded", "same",
                    cwd=tmp_path))
    assert out == "folded:0: float32 [2]\n[4. 6.]\nsame:0: float32 [2]\n[5. 6.]\n"


# --- bad input ------------------------------------------------------------------------------
def test_bad_input_gives_one_line_errors(files):
    d = files["dir"]
    cases = [
        (("inspect", "missing.gfpb"), 1, ("missing.gfpb", "No such file")),
        (("inspect", "truncated.gfpb"), 1, ("truncated.gfpb", "damaged")),
        (("run", "bitflip.gfpb", "--feed", "x=x.npy"), 1, ("bitflip.gfpb", "checksum")),
        (("run", "frozen.gfpb", "--feed", "x=x.npy", "--fetch", "prob"), 1,
         ("no node named 'prob'", "did you mean probs")),
        (("run", "frozen.gfpb", "--feed", "x=bad_shape.npy"), 1,
         ("shape [5, 3]", "x:0 has shape [?, 4]")),
        (("run", "frozen.gfpb", "--feed", "x=bad_dtype.npy"), 1, ("bool", "float32")),
        (("optimize", "frozen.gfpb", "-o", "o.gfpb", "--passes", "nopass"), 2,
         ("unknown pass 'nopass'",)),
    ]
    results = gf_many([c for c, _, _ in cases], d)
    for (_, code, words), r in zip(cases, results):
        one_line_error(r, code, *words)
    assert not (d / "o.gfpb").exists()


def test_more_bad_input_in_process(files, capsys, monkeypatch):
    """The same main() as the subprocesses run, without paying for a process per case."""
    monkeypatch.chdir(files["dir"])
    cases = [
        (("render", "junk.gfpb", "-o", "junk.svg"), 1, ("junk.gfpb", "not a GraphDef")),
        (("inspect", "ckpt/model.ckpt.index"), 1, ("part of a checkpoint",)),
        (("inspect", "ckpt"), 1, ("is a directory",)),
        (("render", "model.gfpb", "-o", "r.svg", "--fetch", "nothere"), 1,
         ("no node named 'nothere'",)),
        (("optimize", "frozen.gfpb", "-o", "o.gfpb", "--fetch", "probs:1"), 1,
         ("'probs:1' does not exist", "1 output(s)")),
        (("run", "frozen.gfpb", "--feed", "z=x.npy"), 1, ("no node named 'z'",)),
        (("run", "frozen.gfpb", "--feed", "x=nofile.npy"), 1, ("nofile.npy",)),
        (("run", "frozen.gfpb", "--feed", "x=junk.gfpb"), 1, ("not a .npy file",)),
        (("run", "frozen.gfpb"), 1, ("needs placeholder x", "--feed x=")),
        (("run", "ckpt/model.ckpt.meta", "--feed", "x=x.npy", "--fetch", "probs"), 1,
         ("needs variable dense/kernel", "--checkpoint ckpt/model.ckpt")),
        (("run", "model.gfpb", "--feed", "x=x.npy", "--fetch", "probs", "--checkpoint",
          "nockpt/model"), 1, ("not a valid checkpoint",)),
        (("run", "frozen.gfpb", "--feed", "x=x.npy", "--feed", "x=x64.npy"), 2,
         ("more than once",)),
        (("run", "frozen.gfpb", "--feed", "x"), 2, ("NAME=FILE.npy",)),
        (("render", "frozen.gfpb", "-o", "image.jpg"), 2, ("image format",)),
    ]
    for args, code, words in cases:
        assert cli.main(list(args)) == code, args
        err = capsys.readouterr().err
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("graphflow: error: "), (args, err)
        for w in words:
            assert w in lines[0], (args, w, lines[0])
    assert not (files["dir"] / "junk.svg").exists()
    assert not (files["dir"] / "o.gfpb").exists()
    # A warning is one line too, and does not fail the run.
    assert cli.main(["run", "frozen.gfpb", "--feed", "x=x.npy", "--checkpoint", "ckpt"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "graphflow: warning: frozen.gfpb has no variables; --checkpoint is " \
                           "ignored\n"
    assert captured.out.startswith("probs:0: float32 [5, 3]\n")


def test_usage_errors_and_help_in_process(files, capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("inspect", "render", "optimize", "run"):
        assert cmd in out
    for cmd in ("inspect", "render", "optimize", "run"):
        assert cli.main([cmd, "--help"]) == 0
        assert "examples:" in capsys.readouterr().out or cmd == "inspect"
    assert cli.main(["--version"]) == 0
    for argv in ([], ["frob"], ["inspect"], ["render", "f.gfpb", "-o", "a.svg", "--depth", "0"],
                 ["optimize", "f.gfpb"]):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.splitlines()[-1].startswith("graphflow") and "Traceback" not in err


def test_debug_shows_the_traceback_and_console_script(files):
    r = gf_cmd("--debug", "inspect", "truncated.gfpb", cwd=files["dir"])
    assert r.returncode == 1 and "Traceback" in r.stderr
    assert r.stderr.splitlines()[-1].startswith("graphflow: error: truncated.gfpb")
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^\[project\.scripts\]\ngraphflow = "graphflow\.cli:main"$', text, re.M)
