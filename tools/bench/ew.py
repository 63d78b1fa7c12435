"""Workload ew: ``tanh(x*0.5+y)*sigmoid(x) + x*x - y/(1+abs(x))`` on float32[N].

Every framework gets the two host NumPy arrays and returns a host array (as
``Session.run`` does), so feed/transfer costs count everywhere. The "copy"
case is the memory floor: x and y copied into one preallocated 2N buffer,
i.e. the same input bytes read and as many written, with no arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from common import Case, builders
from frameworks import GF_BACKEND, graphflow_session, import_jax, import_pytensor, import_tf

N = {"full": 10_000_000, "quick": 100_000}


def inputs(size: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = N[size]
    return rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)


def numpy_ew(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # Python float constants keep float32 under NumPy 2's promotion rules.
    return np.tanh(x * 0.5 + y) * (1 / (1 + np.exp(-x))) + x * x - y / (1 + np.abs(x))


def build_numpy(size: str) -> Case:
    x, y = inputs(size)
    return Case(step=lambda: numpy_ew(x, y))


def build_copy(size: str) -> Case:
    x, y = inputs(size)
    n = len(x)
    buf = np.empty(2 * n, np.float32)

    def copy() -> np.ndarray:
        np.copyto(buf[:n], x)
        np.copyto(buf[n:], y)
        return buf

    return Case(step=copy, note="copy x,y into a preallocated 2N buffer")


def _tf_like(tf: Any, size: str) -> tuple:
    """The TF1 program, for TensorFlow or graphflow (the same code, another import)."""
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [None], name="x")
        y = tf.placeholder(tf.float32, [None], name="y")
        z = tf.tanh(x * 0.5 + y) * tf.sigmoid(x) + x * x - y / (1 + tf.abs(x))
    xs, ys = inputs(size)
    return g, z, {x: xs, y: ys}


def _build_graphflow(size: str, framework: str) -> Case:
    import graphflow as gf

    g, z, feeds = _tf_like(gf, size)
    sess = graphflow_session(g, GF_BACKEND[framework])
    return Case(step=lambda: sess.run(z, feeds), close=sess.close)


def build_tensorflow(size: str) -> Case:
    tf = import_tf()
    g, z, feeds = _tf_like(tf, size)
    sess = tf.Session(graph=g)
    return Case(step=lambda: sess.run(z, feeds), close=sess.close)


def build_jax(size: str) -> Case:
    jax = import_jax()
    jnp = jax.numpy
    xs, ys = inputs(size)

    @jax.jit
    def f(x: Any, y: Any) -> Any:
        return jnp.tanh(x * 0.5 + y) * jax.nn.sigmoid(x) + x * x - y / (1 + jnp.abs(x))

    return Case(step=lambda: np.asarray(f(xs, ys)))


def build_pytensor(size: str) -> Case:
    pytensor = import_pytensor()
    import pytensor.tensor as pt

    xs, ys = inputs(size)
    x = pt.vector("x", dtype="float32")
    y = pt.vector("y", dtype="float32")
    z = pt.tanh(x * 0.5 + y) * pt.sigmoid(x) + x * x - y / (1 + pt.abs(x))
    f = pytensor.function([x, y], z)
    return Case(step=lambda: f(xs, ys))


# copy: the memory floor, shown as its own row.
BUILDERS = builders(_build_graphflow, build_numpy, build_tensorflow, build_jax, build_pytensor,
                    copy=build_copy)


def check(size: str, out: Any) -> dict:
    """Max abs difference of a framework's output from NumPy's (float32 both)."""
    x, y = inputs(size)
    ref = numpy_ew(x, y)
    out = np.asarray(out)
    if out.shape != ref.shape:
        return {"ok": False, "detail": f"shape {out.shape} != {ref.shape}"}
    err = float(np.max(np.abs(out.astype(np.float64) - ref)))
    return {"ok": bool(err <= 1e-4), "max_abs_diff": err, "dtype": str(out.dtype)}
