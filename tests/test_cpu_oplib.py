"""Every op with a scalar expression runs as a generated CPU kernel and matches the reference.

The registry drives the test: each op with an ``OpDef.scalar`` expression is built for
every dtype it accepts, on values with NaN, infinities, signed zeros, huge and tiny
magnitudes and a broadcast second operand. Ops of one output dtype are chained into one
expression so that each dtype costs one or two compiled kernels, not one per op.
"""

from __future__ import annotations

import string

import numpy as np
import pytest

import graphflow as gf
from graphflow.framework import errors
from graphflow.framework import op_def as _op_def
from graphflow.kernels.cpu import backend
from graphflow.ops.building import make

SCALAR_OPS = sorted(t for t in _op_def.registered_types()
                    if _op_def.lookup(t).scalar is not None)
# Ops the code generator declines, by design: floor division and modulo (NumPy's
# floor semantics, and integer division by zero is a hardware trap in compiled code,
# an error in the reference) run through the reference.
NOT_LOWERED = {"FloorDiv", "FloorMod"}
INT_NOT_LOWERED = {"Div", "RealDiv", "Reciprocal", "Pow"}  # integer division and powers


@pytest.fixture(autouse=True)
def _compile_every_loop(monkeypatch, tmp_path_factory):
    monkeypatch.setattr(backend, "JIT_MIN_SIZE", 0)


def _values(dtype: np.dtype, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind == "i":
        v = rng.integers(-50, 50, shape).astype(dtype)
        v[v == 0] = -7  # integer division by zero is an error (tested elsewhere)
        v.flat[:2] = [np.iinfo(dtype).max, np.iinfo(dtype).min + 1][: v.size]
        return v
    v = (rng.standard_normal(shape) * 3).astype(dtype)
    special = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e-30, 0.5, 88.5, -104.0]
    v.flat[: len(special)] = special[: v.size]
    return v


def _build(op_type: str, x, y, c):
    fields = {f for _, f, _, _ in string.Formatter().parse(_op_def.lookup(op_type).scalar) if f}
    n = len(fields)
    args = {1: [x], 2: [x, y], 3: [c, x, y]}[n]
    try:
        return make(op_type, args)
    except (TypeError, ValueError, errors.OpError):
        return None  # the op rejects this dtype when the graph is built


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.bool_],
                         ids=lambda d: np.dtype(d).name)
def test_scalar_ops_match_the_reference_as_compiled_kernels(dtype):
    dtype = np.dtype(dtype)
    x = gf.placeholder(dtype, [4, 6], name="x")
    y = gf.placeholder(dtype, [6], name="y")  # broadcast along rows
    c = gf.placeholder(gf.bool, [4, 6], name="c")
    built = {}
    for t in SCALAR_OPS:
        out = _build(t, x, y, c)
        if out is not None:
            built[t] = out
    assert built, "no op accepts this dtype"
    # Chain same-dtype outputs (30 per chain, under the fusion group cap) so each chain
    # is one fused kernel with every op's value as an output.
    skip = NOT_LOWERED | (INT_NOT_LOWERED if dtype.kind in "iu" else set())
    fetches = list(built.values())
    by_dtype: dict[object, list] = {}
    for op_type, t in built.items():
        if op_type not in skip:  # a declined op would keep its whole chain on the reference
            by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        for k in range(0, len(group), 30):
            part = group[k:k + 30]
            acc = part[0]
            for t in part[1:]:
                acc = gf.logical_or(acc, t) if acc.dtype == gf.bool else acc + t
            fetches.append(acc)
    yv = _values(dtype, (6,), 2)
    if dtype.kind in "iu":
        yv = np.abs(yv) % 5 + 1  # negative integer powers are errors too
    feeds = {x: _values(dtype, (4, 6), 1), y: yv,
             c: _values(np.dtype(bool), (4, 6), 3)}
    with np.errstate(all="ignore"):
        with gf.Session(backend="reference") as s:
            want = s.run(fetches, feeds)
        with gf.Session(backend="cpu") as s:
            got = s.run(fetches, feeds)
            exe = next(iter(s._cache.values()))
    lowered = {n.type for k in exe.fused for n in k.step.nodes}
    # Identity and StopGradient are removed by the compiler before fusion.
    present = {n.type for step in exe.plan.steps for n in step.nodes}
    missing = (set(built) & present) - lowered - skip
    assert not missing, f"not compiled for {dtype.name}: {sorted(missing)}"
    names = list(built) + ["chain"] * (len(fetches) - len(built))
    for name, a, b in zip(names, got, want):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        if a.dtype.kind == "f":
            # 4 ulp: graphflow's vectorised exp/log/tanh/erf/pow (tests/test_fastmath.py).
            rtol = 4 * np.finfo(a.dtype).eps
            np.testing.assert_allclose(a, b, rtol=rtol, atol=np.finfo(a.dtype).tiny,
                                       equal_nan=True, err_msg=name)
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
            np.testing.assert_array_equal(np.isinf(a), np.isinf(b), err_msg=name)
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)
