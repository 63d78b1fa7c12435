"""Random expression graphs: the reference Session agrees with NumPy evaluated alongside.

Each node is built twice, once as graph ops and once as NumPy on the fed values,
so a wrong shape rule, dtype rule or reference evaluation anywhere shows up.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import graphflow as gf

UNARY = [
    (gf.negative, np.negative), (gf.abs, np.abs), (gf.tanh, np.tanh),
    (gf.square, np.square), (gf.exp, lambda v: np.exp(v)),
    (gf.nn.relu, lambda v: np.maximum(v, 0)), (gf.floor, np.floor),
    (lambda t: gf.log1p(gf.abs(t)), lambda v: np.log1p(np.abs(v))),
]
BINARY = [
    (gf.add, np.add), (gf.subtract, np.subtract), (gf.multiply, np.multiply),
    (gf.maximum, np.maximum), (gf.minimum, np.minimum),
    (lambda a, b: a / (gf.abs(b) + 1), lambda a, b: a / (np.abs(b) + 1)),
    (lambda a, b: gf.where_v2(a > b, a, b), lambda a, b: np.where(a > b, a, b)),
]


@st.composite
def programs(draw):
    """A list of steps over a growing pool of (graph builder, numpy evaluator) values."""
    steps = []
    n = draw(st.integers(1, 8))
    for _ in range(n):
        kind = draw(st.sampled_from(["unary", "binary", "reduce"]))
        if kind == "unary":
            steps.append(("unary", draw(st.integers(0, len(UNARY) - 1)), draw(st.integers(0, 99))))
        elif kind == "binary":
            steps.append(("binary", draw(st.integers(0, len(BINARY) - 1)),
                          draw(st.integers(0, 99)), draw(st.integers(0, 99))))
        else:
            steps.append(("reduce", draw(st.sampled_from([0, 1])), draw(st.booleans()),
                          draw(st.integers(0, 99))))
    return steps


@given(programs(), st.integers(0, 4), st.integers(0, 4), st.sampled_from([np.float32,
                                                                         np.float64]),
       st.integers(0, 2**31 - 1))
def test_random_graph_matches_numpy(steps, rows, cols, dtype, seed):
    gf.reset_default_graph()
    rng = np.random.default_rng(seed)
    xv = (rng.standard_normal((rows, cols)) * 3).astype(dtype)
    yv = (rng.standard_normal((cols,)) * 3).astype(dtype)
    x = gf.placeholder(dtype, [None, cols])
    y = gf.placeholder(dtype, [cols])
    pool = [(x, xv), (y, yv)]
    for step in steps:
        if step[0] == "unary":
            _, k, i = step
            t, v = pool[i % len(pool)]
            g, f = UNARY[k]
            pool.append((g(t), f(v).astype(dtype)))
        elif step[0] == "binary":
            _, k, i, j = step
            (t1, v1), (t2, v2) = pool[i % len(pool)], pool[j % len(pool)]
            g, f = BINARY[k]
            try:
                with np.errstate(all="ignore"):
                    value = np.asarray(f(v1, v2)).astype(dtype)
            except ValueError:
                # Shapes that agree statically ([None, c] and [None]) but not in the fed
                # values: the run must fail with the op's error, as NumPy does.
                with gf.Session() as sess, pytest.raises(gf.errors.InvalidArgumentError):
                    sess.run(g(t1, t2), {x: xv, y: yv})
                return
            pool.append((g(t1, t2), value))
        else:
            _, axis, keep, i = step
            t, v = pool[i % len(pool)]
            if v.ndim == 0:
                continue
            axis = axis % v.ndim
            pool.append((gf.reduce_sum(t, axis=axis, keepdims=keep),
                         np.sum(v, axis=axis, keepdims=keep, dtype=dtype)))
    fetches = [t for t, _ in pool[2:]] or [x]
    expected = [v for _, v in pool[2:]] or [xv]
    with np.errstate(all="ignore"), gf.Session() as sess:
        got = sess.run(fetches, {x: xv, y: yv})
    for t, g, e in zip(fetches, got, expected):
        g = np.asarray(g)
        assert g.dtype == e.dtype
        assert g.shape == e.shape and t.shape.is_compatible_with(g.shape)
        np.testing.assert_allclose(g, e, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=0, equal_nan=True)
