"""Traced runs: RunOptions(trace_level=FULL_TRACE) fills RunMetadata per kernel."""

from __future__ import annotations

import json

import numpy as np
import pytest

import graphflow as gf

TRACE = gf.RunOptions(trace_level=gf.RunOptions.FULL_TRACE)


def _model():
    x = gf.placeholder(gf.float32, [None, 4], name="x")
    w = gf.Variable(np.ones((4, 3), np.float32), name="w")
    y = gf.reduce_sum(gf.tanh(gf.matmul(x, w) * 2.0 + 1.0), axis=1, name="y")
    return x, w, y


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_trace_records_each_kernel(backend, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHFLOW_CACHE_DIR", str(tmp_path / "cache"))
    x, w, y = _model()
    md = gf.RunMetadata()
    with gf.Session(backend=backend) as sess:
        sess.run(w.initializer)
        plain = sess.run(y, {x: np.ones((5, 4))}, run_metadata=md)
        assert md.step_stats == []  # no trace level, nothing recorded
        traced = sess.run(y, {x: np.ones((5, 4))}, options=TRACE, run_metadata=md)
    np.testing.assert_array_equal(plain, traced)
    stats = md.step_stats
    assert stats and all(s.duration >= 0 for s in stats)
    assert [s.index for s in stats] == sorted(s.index for s in stats)
    types = [t for s in stats for t in s.op_types]
    assert {"MatMul", "Tanh", "Sum"} <= set(types)
    summary = md.summary_by_op_type()
    assert set(summary) == set(types)
    assert sum(summary.values()) == pytest.approx(sum(s.duration for s in stats))
    trace = json.loads(md.chrome_trace())
    assert len(trace["traceEvents"]) == len(stats)
    assert all(e["ph"] == "X" and e["dur"] >= 0 for e in trace["traceEvents"])
    path = tmp_path / "trace.json"
    md.write_chrome_trace(str(path))
    assert json.loads(path.read_text()) == trace


def test_a_kernel_running_several_steps_names_all_their_ops():
    # The CPU backend runs an optimizer's updates as one step: a trace shows its time on
    # the first update's step, with every update's op.
    x, w, y = _model()
    b = gf.Variable(np.zeros(3, np.float32), name="b")
    loss = gf.reduce_mean(gf.square(gf.matmul(x, w) + b))
    train = gf.train.AdamOptimizer(0.1).minimize(loss)
    md = gf.RunMetadata()
    with gf.Session(backend="cpu") as sess:
        sess.run(gf.global_variables_initializer())
        for _ in range(2):
            sess.run(train, {x: np.ones((5, 4))}, options=TRACE, run_metadata=md)
    updates = [s for s in md.step_stats if "ApplyAdam" in s.op_types]
    assert len(updates) == 1 and updates[0].op_types == ["ApplyAdam", "ApplyAdam"]
    assert sorted(updates[0].op_names) == ["Adam/update_b/ApplyAdam", "Adam/update_w/ApplyAdam"]
    assert updates[0].compiled


def test_profiled_compiled_view_is_coloured_by_time():
    x, w, y = _model()
    md = gf.RunMetadata()
    with gf.Session() as sess:
        sess.run(w.initializer)
        sess.run(y, {x: np.ones((5, 4))}, options=TRACE, run_metadata=md)
    explanation = gf.compiler.explain(y, {x: None})
    plain = gf.viz.to_dot(explanation).source
    profiled = gf.viz.to_dot(explanation, run_metadata=md).source
    assert "\u00b5s" in profiled and "\u00b5s" not in plain
    assert f'fillcolor="{gf.viz._heat(1.0)}"' in profiled  # the slowest op is red
