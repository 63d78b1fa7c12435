"""Property test: random expression graphs give the same results with all passes on as
with none, and as the direct interpreter, bit for bit (NaN, inf and signed zeros too).

The generator extends tests/test_random_graphs.py with constants (so folding, CSE and
the exact algebraic rules fire), identities, negations, casts and transposes. It never
builds the patterns the stabilisation pass rewrites (those change results on purpose
and are tested in test_compiler_passes.py), so every optimisation here must be exact.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import graphflow as gf

UNARY = [
    gf.negative, gf.abs, gf.tanh, gf.square, gf.exp, gf.nn.relu, gf.floor, gf.sigmoid,
    lambda t: gf.log1p(gf.abs(t)), gf.identity, gf.stop_gradient,
    lambda t: gf.negative(gf.negative(t)),
    lambda t: gf.cast(gf.cast(t, gf.float64), t.dtype),   # exact round trip for float32
    lambda t: gf.cast(gf.cast(t, gf.float16), t.dtype),   # lossy: must stay
    lambda t: gf.transpose(gf.transpose(t)) if t.shape.ndims == 2 else t,
]
BINARY = [
    gf.add, gf.subtract, gf.multiply, gf.maximum, gf.minimum,
    lambda a, b: a / (gf.abs(b) + 1),
    lambda a, b: gf.where_v2(a > b, a, b),
    lambda a, b: a + (-b),
    lambda a, b: a - (-b),
]
# Constants the exact rules look for, and others; none of them is 1 next to Add/Sub or Log,
# so no stabilisation pattern can form.
CONST_OPS = [
    lambda t, c: t * c, lambda t, c: c * t, lambda t, c: t + c, lambda t, c: t - c,
    lambda t, c: t / c,
]
CONSTS = [0.0, -0.0, 2.0, 0.5, -3.0]
MUL_CONSTS = [1.0, -1.0, 2.0]


@st.composite
def programs(draw):
    steps = []
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["unary", "binary", "reduce", "const", "constexpr"]))
        if kind == "unary":
            steps.append((kind, draw(st.integers(0, len(UNARY) - 1)), draw(st.integers(0, 99))))
        elif kind == "binary":
            steps.append((kind, draw(st.integers(0, len(BINARY) - 1)),
                          draw(st.integers(0, 99)), draw(st.integers(0, 99))))
        elif kind == "reduce":
            steps.append((kind, draw(st.sampled_from([0, 1])), draw(st.booleans()),
                          draw(st.sampled_from(["sum", "max", "mean"])),
                          draw(st.integers(0, 99))))
        elif kind == "const":
            op = draw(st.integers(0, len(CONST_OPS) - 1))
            pool = MUL_CONSTS if op < 2 else CONSTS
            steps.append((kind, op, draw(st.sampled_from(pool)), draw(st.booleans()),
                          draw(st.integers(0, 99))))
        else:  # an expression of constants only: folded away
            steps.append((kind, draw(st.integers(0, len(UNARY) - 1)),
                          draw(st.sampled_from(CONSTS + MUL_CONSTS)),
                          draw(st.integers(0, 99))))
    return steps


def build(steps, dtype, cols):
    x = gf.placeholder(dtype, [None, cols], name="x")
    y = gf.placeholder(dtype, [cols], name="y")
    pool = [x, y]
    for step in steps:
        kind = step[0]
        if kind == "unary":
            pool.append(UNARY[step[1]](pool[step[2] % len(pool)]))
        elif kind == "binary":
            pool.append(BINARY[step[1]](pool[step[2] % len(pool)], pool[step[3] % len(pool)]))
        elif kind == "reduce":
            _, axis, keep, how, i = step
            t = pool[i % len(pool)]
            if t.shape.ndims == 0:
                continue
            fn = {"sum": gf.reduce_sum, "max": gf.reduce_max, "mean": gf.reduce_mean}[how]
            pool.append(fn(t, axis=axis % t.shape.ndims, keepdims=keep))
        elif kind == "const":
            _, op, value, vector, i = step
            c = gf.constant(np.full([cols] if vector else [], value, dtype.np))
            pool.append(CONST_OPS[op](pool[i % len(pool)], c))
        else:
            _, k, value, i = step
            c = gf.constant(np.array(value, dtype.np))
            pool.append(UNARY[k](c) * pool[i % len(pool)])
    return x, y, pool


def special_values(rng, shape, dtype):
    v = (rng.standard_normal(shape) * 3).astype(dtype)
    if v.size:
        mask = rng.random(shape) < 0.2
        v[mask] = rng.choice(np.array([np.nan, np.inf, -np.inf, -0.0, 0.0], dtype),
                             size=int(mask.sum()))
    return v


def assert_bitwise_equal(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, what
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    np.testing.assert_array_equal(nan_a, nan_b, err_msg=what)
    np.testing.assert_array_equal(a[~nan_a], b[~nan_b], err_msg=what)
    np.testing.assert_array_equal(np.signbit(a[~nan_a]), np.signbit(b[~nan_b]), err_msg=what)


@given(programs(), st.integers(0, 4), st.integers(1, 4),
       st.sampled_from([gf.float32, gf.float64]), st.booleans(), st.integers(0, 2**31 - 1))
def test_all_passes_on_equals_none_and_the_interpreter(steps, rows, cols, dtype, fetch_all,
                                                       seed):
    gf.reset_default_graph()
    x, y, pool = build(steps, dtype, cols)
    fetches = pool[2:] if fetch_all else pool[-1:]
    rng = np.random.default_rng(seed)
    feed = {x: special_values(rng, (rows, cols), dtype.np),
            y: special_values(rng, (cols,), dtype.np)}
    results = {}
    configs = {"all": dict(backend="reference"),
               "none": dict(backend="reference", optimizer_options={"default": False}),
               "interpreter": dict(backend="interpreter")}
    with np.errstate(all="ignore"):
        for name, kw in configs.items():
            with gf.Session(**kw) as s:
                try:
                    results[name] = s.run(fetches, feed)
                except gf.errors.OpError as e:  # e.g. [?, 2] + [?] with 3 rows
                    results[name] = type(e)
    if isinstance(results["interpreter"], type):
        assert results["all"] is results["none"] is results["interpreter"]
        return
    for name in ("all", "none"):
        for k, (got, want) in enumerate(zip(results[name], results["interpreter"])):
            assert_bitwise_equal(got, want, f"{name}: fetch {k} ({fetches[k].name})")
    plan = gf.compiler.explain(fetches, feed).plan
    plan.check()


@given(programs(), st.integers(0, 2**31 - 1))
def test_fusion_groups_form_an_acyclic_partition(steps, seed):
    gf.reset_default_graph()
    x, y, pool = build(steps, gf.float32, 3)
    e = gf.compiler.explain(pool[-1], [x, y], options={"max_group_size": 3})
    prog = e.program("fusion")
    plan = e.plan
    seen = {}
    for k, step in enumerate(plan.steps):
        assert len(step.nodes) <= 3
        for n in step.nodes:
            assert n.id not in seen
            seen[n.id] = k
    # Every input a step reads was produced by an earlier step (or is resident/fed).
    for k, step in enumerate(plan.steps):
        for p, _ in step.inputs:
            if p.id in seen:
                assert seen[p.id] < k
    assert all(n.id in seen or n.type in ("Const", "VariableV2") for n in prog.nodes)


@st.composite
def stateful_programs(draw):
    """Steps over two variables: reads, pure ops, writes, control dependencies."""
    steps = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["read", "read_after", "pure", "pure", "mix", "assign",
                                     "assign_add", "assign_sub"]))
        steps.append((kind, draw(st.integers(0, 1)), draw(st.integers(0, 99)),
                      draw(st.integers(0, 99)), draw(st.integers(0, len(BINARY) - 1))))
    fetch = draw(st.lists(st.integers(0, 99), min_size=1, max_size=4))
    return steps, fetch


@given(stateful_programs(), st.sampled_from([1, 3, 64]))
def test_variable_reads_and_writes_keep_their_order(program, group_size):
    steps, fetch = program
    gf.reset_default_graph()
    v = [gf.Variable(np.array([1.0, -2.0, 3.0]), name="a"),
         gf.Variable(np.array([0.5, 0.25, -1.0]), name="b")]
    x = gf.placeholder(gf.float64, [3], name="x")
    pool, ops = [x], []
    for kind, var, i, j, k in steps:
        a, b = pool[i % len(pool)], pool[j % len(pool)]
        if kind == "read":
            pool.append(v[var].value() * 1.0)
        elif kind == "read_after" and ops:
            with gf.control_dependencies([ops[i % len(ops)]]):
                pool.append(v[var].read_value())
        elif kind == "pure":
            pool.append(BINARY[k](a, gf.tanh(b)))
        elif kind == "mix":  # a fresh read combined with anything, e.g. a write's result
            pool.append(BINARY[k](gf.square(v[var].read_value()), a))
        elif kind in ("assign", "assign_add", "assign_sub"):
            t = getattr(gf, kind)(v[var], a * 0.5)
            ops.append(t.op)
            pool.append(t)
    fetches = [pool[f % len(pool)] for f in fetch] + ops[:1]
    data = {x: np.array([0.1, -0.2, 0.3])}
    results = []
    for kw in ({"backend": "interpreter"},
               {"optimizer_options": {"max_group_size": group_size}}):
        with gf.Session(**kw) as s:
            s.run(gf.global_variables_initializer())
            out = [s.run(fetches, data) for _ in range(2)]
            results.append((out, s.run(v)))
    (want, want_v), (got, got_v) = results
    for run_got, run_want in zip(got, want):
        for g_, w_ in zip(run_got, run_want):
            if w_ is None:
                assert g_ is None
            else:
                assert_bitwise_equal(g_, w_, "fetch")
    for g_, w_ in zip(got_v, want_v):
        assert_bitwise_equal(g_, w_, "variable")
