"""The CPU backend (Session(backend="cpu")): generated Numba loops agree with the reference.

Numba compile time is the cost here: one kernel cache dir is shared by the whole
module, example counts are small, and graphs reuse a few expression shapes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphflow as gf
from graphflow.kernels.cpu import backend, library, threads, winograd

# One kernel cache per module: its kernels compile once, away from the user's cache.
pytestmark = pytest.mark.usefixtures("module_kernel_cache")


@pytest.fixture(autouse=True)
def _compile_every_loop(monkeypatch):
    # The backend leaves loops under JIT_MIN_SIZE elements to NumPy; these tests use small
    # arrays and are about the generated kernels.
    monkeypatch.setattr(backend, "JIT_MIN_SIZE", 0)


def run_both(fetches, feeds):
    """(cpu results, reference results, the cpu executable)."""
    with np.errstate(all="ignore"):
        with gf.Session(backend="cpu") as s:
            got = s.run(fetches, feeds)
            exe = next(iter(s._cache.values()))
        with gf.Session(backend="reference") as s:
            want = s.run(fetches, feeds)
    return got, want, exe


def assert_match(got, want):
    if not isinstance(got, list):
        got, want = [got], [want]
    for a, b in zip(got, want):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, a.shape, b.dtype, b.shape)
        if a.dtype.kind in "biu":
            np.testing.assert_array_equal(a, b)
        else:
            rtol = 2e-6 if a.dtype == np.float32 else 1e-13
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol, equal_nan=True)
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
            np.testing.assert_array_equal(np.isposinf(a), np.isposinf(b))
            np.testing.assert_array_equal(np.isneginf(a), np.isneginf(b))


def test_ew_chain_fuses_and_matches():
    x = gf.placeholder(gf.float32, [None])
    y = gf.placeholder(gf.float32, [None])
    z = gf.tanh(x * 0.5 + y) * gf.sigmoid(x) + x * x - y / (1 + gf.abs(x))
    rng = np.random.default_rng(0)
    xs = (rng.standard_normal(1000) * 4).astype(np.float32)
    ys = (rng.standard_normal(1000) * 4).astype(np.float32)
    xs[:4] = [np.nan, np.inf, -np.inf, 0.0]
    got, want, exe = run_both(z, {x: xs, y: ys})
    assert_match(got, want)
    assert exe.fused, "the elementwise groups should run as generated kernels"
    assert len(exe.fused) == len(exe.plan.steps) == 1, exe.plan.to_text()


def test_large_loops_split_across_threads_match(monkeypatch):
    monkeypatch.setattr(backend, "PARALLEL_MIN_SIZE", 8)
    monkeypatch.setenv("GRAPHFLOW_NUM_THREADS", "3")
    x = gf.placeholder(gf.float32, [None, None])
    y = gf.placeholder(gf.float32, [None])
    w = gf.placeholder(gf.float32, [None, None, None])
    v = gf.placeholder(gf.float32, [None, 1, None])
    flat = gf.tanh(x) * 2.0 - x
    bcast = gf.sin(x) * y
    middle = gf.sin(w) * v  # broadcast in the middle: the rank-N loop
    rng = np.random.default_rng(1)
    xs = rng.standard_normal((7, 5)).astype(np.float32)
    ys = rng.standard_normal(5).astype(np.float32)
    ws = rng.standard_normal((7, 3, 5)).astype(np.float32)
    vs = rng.standard_normal((7, 1, 5)).astype(np.float32)
    calls = []
    real, real_scaled = threads.run_chunks, threads.run_scaled_chunks
    monkeypatch.setattr(threads, "run_chunks",
                        lambda fn, a, chunks, whole: calls.append(chunks) or real(fn, a, chunks,
                                                                                   whole))
    monkeypatch.setattr(threads, "run_scaled_chunks",
                        lambda fn, a, chunks, scales, extra: calls.append(("rows", chunks))
                        or real_scaled(fn, a, chunks, scales, extra))
    for z in (flat, bcast, middle):
        got, want, _ = run_both(z, {x: xs, y: ys, w: ws, v: vs})
        assert_match(got, want)
    assert [(0, 12), (12, 24), (24, 35)] in calls  # the flat loop over 35 elements
    assert ("rows", [(0, 3), (3, 6), (6, 7)]) in calls  # the bias-like broadcast, by rows
    assert [(0, 3), (3, 6), (6, 7)] in calls  # the rank-N loop, by its first axis


@pytest.mark.parametrize("shapes", [
    [(6, 4), (4,)],  # a row broadcast down the rows (bias)
    [(6, 4), (6, 1)],  # a column broadcast along each row
    [(2, 3, 4), (4,), (2, 3, 1), ()],  # rows of two dims, a scalar
    [(2, 3, 4), (3, 4), (1, 3, 4)],  # rows of the first dim, cols 3*4
    [(5, 1), (5, 4)],  # an input narrower than the output is a column
])
def test_row_column_broadcast_loops_match(shapes):
    rng = np.random.default_rng(len(shapes))
    phs = [gf.placeholder(gf.float32, [None] * len(s)) for s in shapes]
    z = phs[0] * 2.0
    for p in phs[1:]:
        z = gf.tanh(z) - p / (1.0 + gf.abs(p))
    feeds = {p: rng.standard_normal(s).astype(np.float32) for p, s in zip(phs, shapes)}
    got, want, exe = run_both(z, feeds)
    assert_match(got, want)
    assert any(k[0] == "rc" for fk in exe.fused for k in fk._fns), [
        list(fk._fns) for fk in exe.fused]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_loops_with_narrow_outputs_store_them_in_a_second_pass(dtype):
    # A bias + relu whose mask is fetched too (bool beside float), a comparison of an
    # input and a logical op of both: the bool outputs take a second loop per row.
    rng = np.random.default_rng(11)
    x = gf.placeholder(dtype, [None, 40])
    b = gf.placeholder(dtype, [40])
    a = gf.nn.relu(x + b)
    mask = gf.greater(a, 0.0)
    less = gf.less(x, b)
    both = gf.logical_and(mask, less)
    xs = rng.standard_normal((30, 40)).astype(dtype)
    xs[0, :3] = [np.nan, np.inf, -np.inf]
    bs = rng.standard_normal(40).astype(dtype)
    got, want, exe = run_both([a, mask, less, both], {x: xs, b: bs})
    assert_match(got, want)
    sources = [codegen_source for fk in exe.fused for codegen_source in _rowcol_sources(fk)]
    assert any(src.count("for j in range(cols)") == 2 for src in sources), sources
    # The narrow output needs an exp the wide one does not store: one loop.
    s = x + b
    got, want, exe = run_both([s, gf.greater(gf.exp(s), 1.0)], {x: xs, b: bs})
    assert_match(got, want)
    sources = [src for fk in exe.fused for src in _rowcol_sources(fk)]
    assert sources and all(src.count("for j in range(cols)") == 1 for src in sources)
    assert all(src.count("for j in range(cols)") == 1
               for fk in exe.fused for src in _rowcol_sources(fk))


def _rowcol_sources(fk) -> list[str]:
    from graphflow.kernels.cpu import codegen

    widths = [d.itemsize for d in fk.out_dtypes]
    return [codegen.rowcol_source(fk.body, key[1], len(fk.out_buffers), fk.fast_math, widths)
            for key in fk._fns if key[0] == "rc"]


@pytest.mark.parametrize("fast_math", [True, False])
def test_loop_weight_counts_transcendental_calls_in_both_maths(fast_math):
    from graphflow.kernels.cpu import codegen

    x = gf.placeholder(gf.float32, [None])
    y = gf.tanh(x) * gf.sigmoid(x) + x / 3.0
    with gf.Session(backend="cpu", fast_math=fast_math) as s:
        s.run(y, {x: np.ones(5, np.float32)})
        exe = next(iter(s._cache.values()))
    (fk,) = exe.fused
    # 1 + 5 per call (tanh, sigmoid) + 1 per division.
    assert codegen.body_weight(fk.body) == 12, fk.body


def test_small_loops_run_numpy_without_compiling(monkeypatch):
    monkeypatch.setattr(backend, "JIT_MIN_SIZE", 100)
    x = gf.placeholder(gf.float64, [None])
    z = gf.exp(x) * 3.0 + 1.0
    with gf.Session(backend="cpu") as s:
        small = s.run(z, {x: np.arange(10.0)})
        exe = next(iter(s._cache.values()))
        assert exe.fused and not exe.fused[0].dispatchers
        big = s.run(z, {x: np.arange(200.0)})
        assert exe.fused[0].dispatchers
    np.testing.assert_array_equal(small, np.exp(np.arange(10.0)) * 3.0 + 1.0)
    np.testing.assert_allclose(big, np.exp(np.arange(200.0)) * 3.0 + 1.0, rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_table_with_nan_inf(dtype):
    x = gf.placeholder(dtype, [None])
    vals = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, -0.5, 2.5, -3.5, 1e30, -1e30, 7.0],
                    dtype=dtype)
    fns = [gf.exp, gf.expm1, gf.log, gf.log1p, gf.sin, gf.cos, gf.tanh, gf.sigmoid, gf.sqrt,
           gf.rsqrt, gf.erf, gf.floor, gf.ceil, gf.round, gf.sign, gf.abs, gf.negative,
           gf.square, gf.reciprocal, gf.nn.relu, gf.nn.softplus, gf.nn.softsign]
    outs = [f(x) + 1 for f in fns]
    outs += [gf.maximum(x, 1.0) * 2, gf.minimum(x, 1.0) * 2, gf.pow(gf.abs(x), 0.5) + 0]
    got, want, exe = run_both(outs, {x: vals})
    assert_match(got, want)
    assert len(exe.fused) >= len(fns)


def test_broadcasting_and_scalars():
    a = gf.placeholder(gf.float64, [None, 1, 3])
    b = gf.placeholder(gf.float64, [4, 1])
    c = gf.placeholder(gf.float64, [])
    z = gf.tanh(a * b + c) - b * c
    w = gf.where_v2(a > b, a, c) * 2
    rng = np.random.default_rng(1)
    feeds = {a: rng.standard_normal((2, 1, 3)), b: rng.standard_normal((4, 1)),
             c: np.float64(0.25)}
    got, want, exe = run_both([z, w], feeds)
    assert_match(got, want)
    assert exe.fused
    # Scalar only (rank 0).
    got, want, _ = run_both(gf.exp(c) * c + 1, {c: np.float64(1.5)})
    assert_match(got, want)


def test_non_contiguous_and_variable_inputs():
    x = gf.placeholder(gf.float32, [3, 4])
    v = gf.Variable(np.arange(4, dtype=np.float32), name="v")
    z = gf.nn.relu(x - v) * 3
    xs = np.asfortranarray(np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32))
    with gf.Session(backend="cpu") as s:
        s.run(gf.global_variables_initializer())
        got = s.run(z, {x: xs})
    np.testing.assert_allclose(got, np.maximum(xs - np.arange(4, dtype=np.float32), 0) * 3,
                               rtol=1e-6)


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 5)])
def test_size_zero_dims(shape):
    x = gf.placeholder(gf.float32, [None] * len(shape))
    z = gf.exp(x) * 2 + x
    got, want, _ = run_both(z, {x: np.zeros(shape, np.float32)})
    assert_match(got, want)


def test_int32_and_bool():
    a = gf.placeholder(gf.int32, [None])
    b = gf.placeholder(gf.int32, [None])
    s = a * b + gf.abs(a) - gf.maximum(a, b)
    big = gf.square(a) * 3  # wraps around like NumPy
    t = gf.logical_and(a > b, gf.logical_not(gf.equal(a, 0)))
    u = gf.logical_or(t, a < 0)
    av = np.array([1, -2, 3, 2**31 - 1, -2**31, 0, 7], np.int32)
    bv = np.array([4, 5, -6, 2, 3, 0, 7], np.int32)
    got, want, exe = run_both([s, big, t, u], {a: av, b: bv})
    assert_match(got, want)
    assert exe.fused


def test_mixed_with_matmul_and_reductions():
    x = gf.placeholder(gf.float32, [None, 5])
    w = gf.constant(np.random.default_rng(3).standard_normal((5, 3)).astype(np.float32))
    h = gf.tanh(gf.matmul(x * 2 + 1, w))
    z = gf.reduce_sum(h * h, axis=1) + gf.reduce_max(x, axis=1)
    xs = np.random.default_rng(4).standard_normal((6, 5)).astype(np.float32)
    got, want, exe = run_both([h, z], {x: xs})
    assert_match(got, want)
    assert exe.fused and len(exe.fused) < len(exe.plan.steps)


def test_runtime_shape_mismatch_raises_like_reference():
    a = gf.placeholder(gf.float32, [None])
    b = gf.placeholder(gf.float32, [None])
    z = gf.exp(a + b)
    with gf.Session(backend="cpu") as s, pytest.raises(gf.errors.InvalidArgumentError):
        s.run(z, {a: np.ones(3, np.float32), b: np.ones(4, np.float32)})


UNARY = [gf.negative, gf.abs, gf.tanh, gf.square, gf.exp, gf.nn.relu, gf.floor,
         lambda t: gf.log1p(gf.abs(t))]
BINARY = [gf.add, gf.subtract, gf.multiply, gf.maximum, gf.minimum,
          lambda a, b: a / (gf.abs(b) + 1), lambda a, b: gf.where_v2(a > b, a, b)]


@st.composite
def programs(draw):
    steps = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["unary", "binary", "binary", "reduce"]))
        if kind == "unary":
            steps.append(("unary", draw(st.integers(0, len(UNARY) - 1)), draw(st.integers(0, 99))))
        elif kind == "binary":
            steps.append(("binary", draw(st.integers(0, len(BINARY) - 1)),
                          draw(st.integers(0, 99)), draw(st.integers(0, 99))))
        else:
            steps.append(("reduce", draw(st.sampled_from([0, 1])), draw(st.integers(0, 99))))
    return steps


@settings(max_examples=12, deadline=None)
@given(programs(), st.integers(0, 3), st.integers(0, 3),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**31 - 1))
def test_random_graphs_match_reference(steps, rows, cols, dtype, seed):
    gf.reset_default_graph()
    rng = np.random.default_rng(seed)
    x = gf.placeholder(dtype, [None, cols])
    y = gf.placeholder(dtype, [cols])
    pool = [x, y]
    for step in steps:
        if step[0] == "unary":
            pool.append(UNARY[step[1]](pool[step[2] % len(pool)]))
        elif step[0] == "binary":
            pool.append(BINARY[step[1]](pool[step[2] % len(pool)], pool[step[3] % len(pool)]))
        else:
            t = pool[step[2] % len(pool)]
            if t.shape.ndims:
                pool.append(gf.reduce_sum(t, axis=step[1] % t.shape.ndims))
    xv = (rng.standard_normal((rows, cols)) * 3).astype(dtype)
    yv = (rng.standard_normal((cols,)) * 3).astype(dtype)
    fetches, feeds = pool[2:] or [x], {x: xv, y: yv}
    try:
        got, want, _ = run_both(fetches, feeds)
    except gf.errors.InvalidArgumentError:
        # Shapes that agree statically ([None, c] and a reduced [None]) but not in the
        # fed values: both backends must refuse the run.
        for backend in ("cpu", "reference"):
            with gf.Session(backend=backend) as s, pytest.raises(
                    gf.errors.InvalidArgumentError, match="broadcast|shape|Incompatible"):
                s.run(fetches, feeds)
        return
    assert_match(got, want)


_CHILD = textwrap.dedent("""
    import json
    import numpy as np
    import graphflow as gf
    from graphflow.kernels.cpu import cache
    x = gf.placeholder(gf.float32, [None])
    z = gf.tanh(x * 0.25 + 1) * gf.sigmoid(x) - x
    with gf.Session(backend="cpu") as s:
        out = s.run(z, {x: np.linspace(-3, 3, 11, dtype=np.float32)})
        exe = next(iter(s._cache.values()))
        st = cache.compile_stats([f for k in exe.fused for f in k.dispatchers])
    ref = np.tanh(np.linspace(-3, 3, 11) * 0.25 + 1) / (1 + np.exp(-np.linspace(-3, 3, 11)))
    ok = bool(np.allclose(out, ref - np.linspace(-3, 3, 11), atol=1e-5))
    print(json.dumps(dict(st, written=cache.stats["written"], ok=ok)))
""")


def _child(cache_dir):
    env = dict(os.environ, GRAPHFLOW_CACHE_DIR=str(cache_dir), OPENBLAS_NUM_THREADS="1",
               GRAPHFLOW_JIT_MIN_SIZE="0")
    r = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_second_process_compiles_nothing_and_damage_is_recovered(tmp_path):
    first = _child(tmp_path)
    assert first["ok"] and first["cache_misses"] >= 1 and first["written"] >= 1
    second = _child(tmp_path)
    assert second["ok"]
    assert second["cache_misses"] == 0 and second["written"] == 0 and second["cache_hits"] >= 1
    kdir = tmp_path / "kernels"
    # A truncated kernel module is rewritten.
    for p in kdir.glob("gf_*.py"):
        p.write_text("def kernel(:\n")
    third = _child(tmp_path)
    assert third["ok"] and third["written"] >= 1
    # Garbage in Numba's cache files: recompiled, not a crash.
    for p in (kdir / "__pycache__").iterdir():
        p.write_bytes(b"\x00garbage")
    fourth = _child(tmp_path)
    assert fourth["ok"]


_CONV_CHILD = textwrap.dedent("""
    import json
    import numpy as np
    import graphflow as gf
    from graphflow.kernels.cpu import convkernels
    lanes = convkernels.lanes(np.float32)
    rng = np.random.default_rng(0)
    xv = rng.standard_normal((2, 6, 7, 3), dtype=np.float32)
    fv = rng.standard_normal((3, 3, 3, lanes), dtype=np.float32)
    x = gf.placeholder(gf.float32, [None, 6, 7, 3])
    y = gf.nn.conv2d(x, gf.constant(fv), [1, 1, 1, 1], "SAME")
    with gf.Session(backend="cpu") as s:
        out = s.run(y, {x: xv})
    with gf.Session(backend="reference") as s:
        ref = s.run(y, {x: xv})
    ok = bool(np.allclose(out, ref, rtol=1e-5, atol=1e-5))
    print(json.dumps(dict(convkernels.stats, ok=ok)))
""")


def test_conv_kernels_machine_code_is_cached_across_processes(tmp_path):
    env = dict(os.environ, GRAPHFLOW_CACHE_DIR=str(tmp_path), OPENBLAS_NUM_THREADS="1",
               GRAPHFLOW_JIT_WARMUP="0")

    def child():
        r = subprocess.run([sys.executable, "-c", _CONV_CHILD], env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.strip().splitlines()[-1])

    first = child()
    assert first["ok"] and first["compiled"] >= 1 and first["loaded"] == 0
    second = child()
    assert second["ok"] and second["compiled"] == 0 and second["loaded"] == first["compiled"]
    for p in (tmp_path / "kernels").glob("obj_*.o"):  # damaged: compiled again, not loaded
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))
    third = child()
    assert third["ok"] and third["compiled"] == first["compiled"] and third["loaded"] == 0
    assert child()["loaded"] == first["compiled"]  # and the entries were rewritten


def test_two_processes_fill_one_cache_at_once(tmp_path):
    env = dict(os.environ, GRAPHFLOW_CACHE_DIR=str(tmp_path), OPENBLAS_NUM_THREADS="1",
               GRAPHFLOW_JIT_MIN_SIZE="0")
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["ok"]
    assert not list((tmp_path / "kernels").glob("*.tmp"))
    assert _child(tmp_path)["cache_misses"] == 0


def test_fast_math_session_option_selects_libm(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHFLOW_CACHE_DIR", str(tmp_path / "cache"))
    x = gf.placeholder(gf.float32, [None], name="x")
    y = gf.tanh(x) * gf.exp(-x) + gf.nn.softplus(x)
    xv = np.linspace(-20, 20, 101, dtype=np.float32)
    with gf.Session(backend="reference") as s:
        want = s.run(y, {x: xv})
    sources = {}
    for fast in (True, False):
        with gf.Session(backend="cpu", fast_math=fast) as s:
            got = s.run(y, {x: xv})
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)
        sources[fast] = "\n".join(p.read_text() for p in (tmp_path / "cache").rglob("gf_*.py"))
    assert "import FASTMATH as _TABLE" in sources[True]
    assert "import LIBM as _TABLE" in sources[False]


OPTIMIZERS = {
    "sgd": lambda: gf.train.GradientDescentOptimizer(0.1),
    "momentum": lambda: gf.train.MomentumOptimizer(0.1, 0.9, use_nesterov=True),
    "adam": lambda: gf.train.AdamOptimizer(0.01),
    "rmsprop": lambda: gf.train.RMSPropOptimizer(0.01, momentum=0.5, centered=True),
    "adagrad": lambda: gf.train.AdagradOptimizer(0.1),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizers_update_variables_in_place_like_the_reference(name):
    rng = np.random.default_rng(3)
    x = gf.placeholder(gf.float64, [8, 5])
    w = gf.Variable(rng.standard_normal((5, 3)), name="w")
    b = gf.Variable(np.zeros(3), name="b")
    loss = gf.reduce_mean(gf.square(gf.tanh(gf.matmul(x, w) + b) - 0.5))
    train = OPTIMIZERS[name]().minimize(loss)
    xs = rng.standard_normal((8, 5))
    results = {}
    for backend_name in ("cpu", "reference"):
        with gf.Session(backend=backend_name) as s:
            s.run(gf.global_variables_initializer())
            losses = [s.run([train, loss], {x: xs})[1] for _ in range(5)]
            results[backend_name] = (losses, s.run([w, b]))
            if backend_name == "cpu":
                exe = next(e for e in s._cache.values() if getattr(e, "updates", None))
                assert len(exe.updates) == 2
    (cl, (cw, cb)), (rl, (rw, rb)) = results["cpu"], results["reference"]
    np.testing.assert_allclose(cl, rl, rtol=1e-13)
    np.testing.assert_allclose(cw, rw, rtol=1e-13)
    np.testing.assert_allclose(cb, rb, rtol=1e-13)


def _fed_adam(shapes):
    """Adam applying fed gradients to variables of ``shapes`` (one update step each)."""
    rng = np.random.default_rng(8)
    vs = [gf.Variable(rng.standard_normal(s).astype(np.float32), name=f"v{k}")
          for k, s in enumerate(shapes)]
    gs = [gf.placeholder(gf.float32, None, name=f"g{k}") for k in range(len(shapes))]
    train = gf.train.AdamOptimizer(0.01).apply_gradients(list(zip(gs, vs)))
    return vs, gs, train


def test_neighbouring_updates_run_as_one_group_bit_for_bit():
    from graphflow.kernels.cpu import backend

    shapes = [(5, 3), (3,), (), (4, 2)]
    vs, gs, train = _fed_adam(shapes)
    rng = np.random.default_rng(9)
    feeds = [{g: rng.standard_normal(s).astype(np.float32) for g, s in zip(gs, shapes)}
             for _ in range(3)]
    feeds[1][gs[0]][0, 0] = np.nan  # NaN and inf gradients go through as the reference's
    feeds[2][gs[3]][1, 1] = np.inf
    results = {}
    for name in ("cpu", "reference"):
        with gf.Session(backend=name) as s:
            s.run(gf.global_variables_initializer())
            for f in feeds:
                s.run(train, f)
            results[name] = s.run(vs)
            if name == "cpu":
                exe = next(e for e in s._cache.values() if getattr(e, "updates", None))
                groups = [k for k in exe._kernels if isinstance(k, backend.UpdateGroupKernel)]
                assert [len(k.members) for k in groups] == [4]
    for got, want in zip(results["cpu"], results["reference"]):
        np.testing.assert_array_equal(got, want)


def test_update_group_members_keep_their_own_errors_and_copies():
    shapes = [(5, 3), (3,)]
    vs, gs, train = _fed_adam(shapes)
    rng = np.random.default_rng(10)
    good = {g: rng.standard_normal(s).astype(np.float32) for g, s in zip(gs, shapes)}
    bad = {**good, gs[1]: np.zeros(4, np.float32)}  # the second gradient's shape is wrong
    # A gradient that is the variable's own storage takes the member's private-copy path.
    own = gf.train.AdamOptimizer(0.01, name="Own").apply_gradients(
        [(gf.identity(vs[0]), vs[0]), (gs[1], vs[1])])
    results = {}
    for name in ("cpu", "reference"):
        with gf.Session(backend=name) as s:
            s.run(gf.global_variables_initializer())
            for _ in range(2):
                s.run(train, good)
            with pytest.raises(gf.errors.InvalidArgumentError) as err:
                s.run(train, bad)
            assert "ApplyAdam" in str(err.value) and "[3]" in str(err.value)
            after_error = s.run(vs)
            for _ in range(2):
                s.run(own, good)
            results[name] = (after_error, s.run(vs))
    for got, want in zip(results["cpu"], results["reference"]):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def test_in_place_updates_never_change_arrays_already_handed_out():
    w = gf.Variable(np.ones((4, 3), np.float32), name="w")
    x = gf.placeholder(gf.float32, [None, 4])
    loss = gf.reduce_sum(gf.matmul(x, w))
    train = gf.train.GradientDescentOptimizer(0.5).minimize(loss)
    view = gf.reshape(w, [-1])  # a view of the variable's array in the reference
    reset = w.assign(np.full((4, 3), 2.0, np.float32))
    xs = np.ones((2, 4), np.float32)
    with gf.Session(backend="cpu") as s:
        s.run(gf.global_variables_initializer())
        before = s.run(w)
        s.run(train, {x: xs})
        assert (before == 1).all()
        held = s.run(w)
        _, v, after = s.run([train, view, w], {x: xs})
        np.testing.assert_array_equal(v, held.reshape(-1))  # read before this run's update
        np.testing.assert_array_equal(after, held - 1.0)
        assigned = s.run(reset)
        s.run(train, {x: xs})
        assert (assigned == 2).all() and (held == 0).all()
        np.testing.assert_array_equal(s.run(w), np.ones((4, 3)))


@pytest.mark.parametrize("name", ["momentum", "adagrad", "sgd"])
def test_sparse_updates_of_embeddings_match_the_reference(name):
    rng = np.random.default_rng(4)
    ids = gf.placeholder(gf.int32, [None])
    table = gf.Variable(rng.standard_normal((10, 4)), name="table")
    loss = gf.reduce_sum(gf.square(gf.nn.embedding_lookup(table, ids)))
    train = OPTIMIZERS[name]().minimize(loss)
    feed = {ids: np.array([1, 3, 3, 7], np.int32)}  # a repeated row
    results = []
    for backend_name in ("cpu", "reference"):
        with gf.Session(backend=backend_name) as s:
            s.run(gf.global_variables_initializer())
            for _ in range(3):
                s.run(train, feed)
            results.append(s.run(table))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cnn_training_step_with_library_kernels_and_epilogues_matches(dtype):
    rng = np.random.default_rng(5)
    x = gf.placeholder(dtype, [None, 8, 8, 1])
    labels = gf.placeholder(gf.int32, [None])
    f1 = gf.Variable((rng.standard_normal((3, 3, 1, 4)) * 0.5).astype(dtype))
    b1 = gf.Variable(np.full(4, 0.1, dtype))
    h = gf.nn.relu(gf.nn.bias_add(gf.nn.conv2d(x, f1, [1, 1, 1, 1], "SAME"), b1))
    h = gf.nn.max_pool(h, [1, 2, 2, 1], [1, 2, 2, 1], "VALID")
    h = gf.nn.avg_pool(h, [1, 2, 2, 1], [1, 2, 2, 1], "SAME")
    w = gf.Variable((rng.standard_normal((16, 3)) * 0.3).astype(dtype))
    logits = gf.matmul(gf.reshape(h, [-1, 16]), w)
    loss = gf.reduce_mean(gf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=logits))
    probs = gf.nn.softmax(logits)
    train = gf.train.GradientDescentOptimizer(0.5).minimize(loss)
    feed = {x: rng.standard_normal((5, 8, 8, 1)).astype(dtype),
            labels: rng.integers(0, 3, 5).astype(np.int32)}
    results = {}
    for name in ("cpu", "reference"):
        with gf.Session(backend=name) as s:
            s.run(gf.global_variables_initializer())
            steps = [s.run([train, loss, probs], feed)[1:] for _ in range(3)]
            results[name] = steps + [s.run([f1, b1, w])]
            if name == "cpu":
                exe = next(e for e in s._cache.values() if getattr(e, "updates", None))
                kinds = {a.anchor.type for a in exe.anchored if a.library is not None}
                want = {"Conv2D", "_MaxPoolWithRoute", "AvgPool", "_MaxPoolGradRoute"}
                assert want <= kinds, kinds
                conv = next(a for a in exe.anchored if a.anchor.type == "Conv2D")
                assert [n.type for n in conv.step.nodes] == ["Conv2D", "BiasAdd", "Relu"]
                assert conv.store_epilogue is not None  # (4 channels: declined at run time)
    tol = 2e-5 if dtype == np.float32 else 1e-11
    for got, want in zip(results["cpu"], results["reference"]):
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_warmup_runs_the_reference_first_then_the_kernels(monkeypatch):
    monkeypatch.setattr(backend, "JIT_WARMUP", 1)
    x = gf.placeholder(gf.float32, [None])
    z = gf.tanh(x * 0.5 + 1) * gf.sigmoid(x) - x * x
    xs = np.linspace(-5, 5, 257, dtype=np.float32)
    with gf.Session(backend="reference") as s:
        want = s.run(z, {x: xs})
    with gf.Session(backend="cpu") as s:
        first = s.run(z, {x: xs})
        exe = next(iter(s._cache.values()))
        assert not exe.lowered and not exe.fused
        second = s.run(z, {x: xs})
        assert exe.lowered and exe.fused and exe.fused[0].dispatchers
    np.testing.assert_array_equal(first, want)  # the reference evaluation, bit for bit
    assert_match(second, want)


def test_warmup_switch_keeps_training_state(monkeypatch):
    # Variables written by the reference runs are then updated in place by the kernels.
    monkeypatch.setattr(backend, "JIT_WARMUP", 2)
    rng = np.random.default_rng(3)
    xs = rng.standard_normal((16, 5)).astype(np.float32)
    ys = rng.standard_normal((16, 1)).astype(np.float32)
    losses = {}
    for name in ("cpu", "reference"):
        gf.reset_default_graph()
        x = gf.placeholder(gf.float32, [None, 5])
        w = gf.Variable(np.full((5, 1), 0.1, np.float32))
        loss = gf.reduce_mean(gf.square(gf.matmul(x, w) - ys))
        train = gf.train.AdamOptimizer(0.05).minimize(loss)
        with gf.Session(backend=name) as s:
            s.run(gf.global_variables_initializer())
            losses[name] = [s.run([train, loss], {x: xs})[1] for _ in range(5)]
            losses[name].append(s.run(w))
            if name == "cpu":
                exe = next(e for e in s._cache.values() if getattr(e, "updates", None))
                assert exe.lowered
    for a, b in zip(losses["cpu"], losses["reference"]):
        np.testing.assert_allclose(a, b, rtol=1e-5)


def test_first_run_imports_no_numba():
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import graphflow as gf
        x = gf.placeholder(gf.float32, [None])
        v = gf.Variable(np.ones(3, np.float32))
        y = gf.reduce_sum(gf.tanh(x * v))
        with gf.Session(backend="cpu") as s:
            s.run(v.initializer)
            print(s.run(y, {x: np.ones(3, np.float32)}), "numba" in sys.modules)
    """)
    env = dict(os.environ, GRAPHFLOW_JIT_WARMUP="1")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    value, imported = r.stdout.split()
    assert np.isclose(float(value), 3 * np.tanh(1.0)) and imported == "False"


def test_groups_with_shape_ops_fuse_their_elementwise_runs():
    x = gf.placeholder(gf.float32, [None])
    w = gf.placeholder(gf.float32, [None, 8])
    v = gf.Variable(np.linspace(-1, 1, 8, dtype=np.float32))
    z = gf.exp(gf.expand_dims(gf.tanh(x) * 2.0, 1) * w) + v
    z2 = gf.reshape(gf.sigmoid(w) * 3.0, [-1]) - 1.0
    z3 = gf.broadcast_to(gf.tanh(x)[:, None], gf.shape(w)) * w
    rng = np.random.default_rng(5)
    xs = rng.standard_normal(300).astype(np.float32)
    ws = rng.standard_normal((300, 8)).astype(np.float32)
    xs[:3] = [np.nan, np.inf, -np.inf]
    with np.errstate(all="ignore"):
        with gf.Session(backend="cpu") as s:
            s.run(v.initializer)
            got = s.run([z, z2, z3], {x: xs, w: ws})
            exe = max(s._cache.values(), key=lambda e: len(e.plan.steps))
        with gf.Session(backend="reference") as s:
            s.run(v.initializer)
            want = s.run([z, z2, z3], {x: xs, w: ws})
    assert_match(got, want)
    assert exe.split and all(sk.fused for sk in exe.split)
    kinds = {type(p).__name__ for sk in exe.split for p in sk.parts}
    assert kinds == {"FusedKernel", "NodeEval"}


def test_split_groups_report_errors_of_their_shape_ops():
    x = gf.placeholder(gf.float32, [None])
    n = gf.placeholder(gf.int32, [])
    z = gf.reshape(gf.tanh(x) * 2.0, gf.stack([n, -1])) + 1.0
    with gf.Session(backend="cpu") as s:
        np.testing.assert_allclose(s.run(z, {x: np.zeros(6, np.float32), n: 2}),
                                   np.ones((2, 3), np.float32))
        with pytest.raises(gf.errors.InvalidArgumentError, match="Reshape"):
            s.run(z, {x: np.zeros(7, np.float32), n: 2})
        assert any(e.split for e in s._cache.values() if hasattr(e, "split"))


_CONV_EPILOGUES = {
    "add": lambda c, b: gf.nn.relu(c + b),
    "add_on_the_left": lambda c, b: gf.nn.relu(b + c),
    "bias_add": lambda c, b: gf.nn.relu(gf.nn.bias_add(c, b)),
    "relu_only": lambda c, b: gf.nn.relu(c),
    "bias_only": lambda c, b: c + b,
}


@pytest.mark.parametrize("form", sorted(_CONV_EPILOGUES))
def test_conv_bias_and_relu_are_applied_by_the_conv_kernel(form):
    rng = np.random.default_rng(8)
    x = gf.placeholder(gf.float32, [None, 6, 7, 3])
    f = gf.Variable(rng.standard_normal((3, 3, 3, 16)).astype(np.float32))
    b = gf.Variable(rng.standard_normal(16).astype(np.float32))
    y = _CONV_EPILOGUES[form](gf.nn.conv2d(x, f, [1, 1, 1, 1], "SAME"), b)
    xs = rng.standard_normal((2, 6, 7, 3)).astype(np.float32)
    xs[0, 1, 1, 1] = np.nan
    calls = []

    def spy(*args):
        out = library.conv2d_epilogue(*args)
        calls.append(out is not None)
        return out

    with mock.patch.dict(library.STORE_EPILOGUE, {"Conv2D": spy}):
        with gf.Session() as s:
            s.run(gf.global_variables_initializer())
            got = s.run(y, {x: xs})
    with gf.Session(backend="reference") as s:
        s.run(gf.global_variables_initializer())
        want = s.run(y, {x: xs})
    assert calls == [True]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.array_equal(np.isnan(got), np.isnan(want))


def test_conv_epilogue_stays_a_pass_when_the_conv_result_is_read_too():
    rng = np.random.default_rng(9)
    x = gf.placeholder(gf.float32, [None, 5, 5, 2])
    f = gf.constant(rng.standard_normal((3, 3, 2, 16)).astype(np.float32))
    c = gf.nn.conv2d(x, f, [1, 1, 1, 1], "VALID")
    y = gf.nn.relu(c + 1.0)
    xs = rng.standard_normal((2, 5, 5, 2)).astype(np.float32)
    with gf.Session() as s:
        got_c, got_y = s.run([c, y], {x: xs})
        exe = next(iter(s._cache.values()))
        assert all(a.store_epilogue is None for a in exe.anchored)
    np.testing.assert_array_equal(got_y, np.maximum(got_c + np.float32(1), 0))


def _two_conv_training(rng, dtype):
    x = gf.placeholder(dtype, [None, 9, 9, 3])
    f1 = gf.Variable((rng.standard_normal((3, 3, 3, 16)) * 0.3).astype(dtype))
    f2 = gf.Variable((rng.standard_normal((3, 3, 16, 16)) * 0.3).astype(dtype))
    b2 = gf.Variable(np.full(16, 0.1, dtype))
    h = gf.nn.relu(gf.nn.conv2d(x, f1, [1, 1, 1, 1], "SAME"))
    h = gf.nn.relu(gf.nn.conv2d(h, f2, [1, 1, 1, 1], "SAME") + b2)
    loss = gf.reduce_mean(gf.square(h))
    train = gf.train.GradientDescentOptimizer(0.1).minimize(loss)
    return x, loss, train, [f1, f2, b2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_convolutions_two_gradients_run_side_by_side(dtype):
    # The second conv's input and filter gradients are independent: one PairKernel runs
    # them at once (each on its own copy of the buffer list, since the memory plan
    # hands the filter gradient buffers the input gradient reads last). Same bits as
    # one after the other; close to the reference.
    rng = np.random.default_rng(12)
    x, loss, train, params = _two_conv_training(rng, dtype)
    xs = rng.standard_normal((4, 9, 9, 3)).astype(dtype)
    results = {}
    for name, concurrent in (("paired", backend._CONCURRENT), ("one by one", frozenset()),
                             ("reference", None)):
        with mock.patch.object(backend, "_CONCURRENT", concurrent or frozenset()):
            with gf.Session(backend="reference" if concurrent is None else "cpu") as s:
                s.run(gf.global_variables_initializer())
                losses = [s.run([train, loss], {x: xs})[1] for _ in range(3)]
                results[name] = losses + s.run(params)
                if concurrent:
                    exe = next(e for e in s._cache.values() if getattr(e, "updates", None))
                    (pair,) = exe.paired
                    assert {pair.first.anchor.type, pair.second.anchor.type} == {
                        "Conv2DBackpropInput", "_Conv2DBackpropFilterWithBias"}
    for a, b, r in zip(results["paired"], results["one by one"], results["reference"]):
        np.testing.assert_array_equal(a, b)
        tol = 1e-4 if dtype == np.float32 else 1e-10
        np.testing.assert_allclose(a, r, rtol=tol, atol=tol)


def test_an_error_in_a_paired_step_is_raised_after_both():
    rng = np.random.default_rng(13)
    x, loss, train, _ = _two_conv_training(rng, np.float32)
    xs = rng.standard_normal((2, 9, 9, 3)).astype(np.float32)
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        s.run(train, {x: xs})
        exe = next(e for e in s._cache.values() if getattr(e, "updates", None))
        (pair,) = exe.paired
        ran = []

        def boom(env, state):
            raise gf.errors.InvalidArgumentError(None, None, "boom")

        def other(env, state, run=pair.second.run):
            ran.append(True)
            run(env, state)

        with mock.patch.object(pair.first, "run", boom), \
                mock.patch.object(pair.second, "run", other):
            with pytest.raises(gf.errors.InvalidArgumentError, match="boom"):
                s.run(train, {x: xs})
        assert ran == [True]


@settings(max_examples=15)
@given(n=st.integers(1, 3), h=st.integers(3, 11), w=st.integers(3, 11),
       c=st.sampled_from([1, 3, 16]), oc=st.sampled_from([3, 16, 32]), k=st.integers(1, 4),
       stride=st.integers(1, 2), padding=st.sampled_from(["SAME", "VALID"]),
       pool=st.sampled_from([(2, 2), (3, 2), (2, 1)]), bias_add=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_random_conv_relu_pool_training_matches_the_reference(n, h, w, c, oc, k, stride,
                                                             padding, pool, bias_add, seed):
    # Everything the compiler and the CPU backend do to a conv layer at once: relu's
    # gradient joined to the pool's, the pool's routes, the bias's gradient fused with the
    # filter's, bias + relu stored by the conv kernel, padding skipped, the second conv's
    # two gradients side by side. One SGD step, float64, against the reference.
    if padding == "VALID" and (h < k or w < k):
        return
    rng = np.random.default_rng(seed)
    g = gf.Graph()
    with g.as_default():
        x = gf.placeholder(gf.float64, [None, h, w, c])
        f1 = gf.Variable(rng.standard_normal((k, k, c, oc)) * 0.5)
        b1 = gf.Variable(rng.standard_normal(oc) * 0.1)
        f2 = gf.Variable(rng.standard_normal((2, 2, oc, 16)) * 0.5)
        s = [1, stride, stride, 1]
        conv = gf.nn.conv2d(x, f1, s, padding)
        hid = gf.nn.relu(gf.nn.bias_add(conv, b1) if bias_add else conv + b1)
        win, step = pool
        hid = gf.nn.max_pool(hid, [1, win, win, 1], [1, step, step, 1], "SAME")
        out = gf.nn.relu(gf.nn.conv2d(hid, f2, [1, 1, 1, 1], "SAME"))
        loss = gf.reduce_sum(out * out)
        train = gf.train.GradientDescentOptimizer(1e-3).minimize(loss)
        params = [f1, b1, f2]
        init = gf.global_variables_initializer()
    xs = rng.standard_normal((n, h, w, c))
    got = {}
    for backend_name in ("cpu", "reference"):
        with gf.Session(graph=g, backend=backend_name) as sess:
            sess.run(init)
            got[backend_name] = [sess.run([train, loss], {x: xs})[1]] + sess.run(params)
    for a, b in zip(got["cpu"], got["reference"]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


@settings(max_examples=6)
@given(n=st.integers(1, 3), h=st.integers(4, 12), w=st.integers(4, 12),
       padding=st.sampled_from(["SAME", "VALID"]), bias_add=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_random_winograd_training_matches_the_reference(n, h, w, padding, bias_add, seed):
    # 5x5 float32 convolutions of whole vectors of channels go the Winograd way in every
    # form (the forward with bias + relu stored, the input and filter gradients side by
    # side, the filter gradient with the bias's): one SGD step against the reference,
    # within float32 rounding (Winograd's is 5-20x a direct sum's).
    if padding == "VALID" and (h < 9 or w < 9):
        return
    rng = np.random.default_rng(seed)
    lanes = 16
    g = gf.Graph()
    with g.as_default():
        x = gf.placeholder(gf.float32, [None, h, w, lanes])
        f1 = gf.Variable((rng.standard_normal((5, 5, lanes, 2 * lanes)) * 0.2).astype(np.float32))
        b1 = gf.Variable((rng.standard_normal(2 * lanes) * 0.1).astype(np.float32))
        f2 = gf.Variable((rng.standard_normal((5, 5, 2 * lanes, lanes)) * 0.2).astype(np.float32))
        conv = gf.nn.conv2d(x, f1, [1, 1, 1, 1], padding)
        hid = gf.nn.relu(gf.nn.bias_add(conv, b1) if bias_add else conv + b1)
        hid = gf.nn.max_pool(hid, [1, 2, 2, 1], [1, 1, 1, 1], "SAME")
        out = gf.nn.relu(gf.nn.conv2d(hid, f2, [1, 1, 1, 1], "SAME"))
        loss = gf.reduce_sum(out * out)
        train = gf.train.GradientDescentOptimizer(1e-4).minimize(loss)
        params = [f1, b1, f2]
        init = gf.global_variables_initializer()
    xs = rng.standard_normal((n, h, w, lanes)).astype(np.float32)
    got = {}
    real = (winograd.kernel, winograd.wgrad_kernel)
    used = []
    with mock.patch.object(library, "_WINOGRAD_MIN_WORK", 0), \
            mock.patch.object(winograd, "kernel", lambda *a: used.append("win") or real[0](*a)), \
            mock.patch.object(winograd, "wgrad_kernel",
                              lambda *a: used.append("wgw") or real[1](*a)):
        for backend_name in ("cpu", "reference"):
            with gf.Session(graph=g, backend=backend_name) as sess:
                sess.run(init)
                got[backend_name] = [sess.run([train, loss], {x: xs})[1]] + sess.run(params)
    assert used.count("win") >= 3 and used.count("wgw") >= 2  # conv x2, input grad; wgrad x2
    for a, b in zip(got["cpu"], got["reference"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(np.abs(b).max()))
