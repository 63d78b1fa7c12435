"""Workload mlp: one Adam(1e-3) step of a 784-512-512-10 ReLU MLP, batch 256, float32.

The loss is the mean sparse softmax cross-entropy. Every framework starts
from the same Glorot weights (zero biases) and is fed the same batch as host
NumPy arrays each step; a step returns the loss computed before its update
(as ``sess.run([train, loss])`` does in TF1), so the second step's value is
the loss after one update, which is compared across frameworks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from common import Case, adam_numpy, builders, glorot, softmax_xent_numpy
from frameworks import GF_BACKEND, graphflow_session, import_jax, import_pytensor, import_tf

# (batch, input, hidden, classes)
SHAPES = {"full": (256, 784, 512, 10), "quick": (16, 784, 32, 10)}
LR = 1e-3
NAMES = ["w1", "b1", "w2", "b2", "w3", "b3"]


def weights(size: str) -> dict[str, np.ndarray]:
    _, n_in, n_hid, n_out = SHAPES[size]
    rng = np.random.default_rng(1)
    return {"w1": glorot(rng, (n_in, n_hid)), "b1": np.zeros(n_hid, np.float32),
            "w2": glorot(rng, (n_hid, n_hid)), "b2": np.zeros(n_hid, np.float32),
            "w3": glorot(rng, (n_hid, n_out)), "b3": np.zeros(n_out, np.float32)}


def batch(size: str) -> tuple[np.ndarray, np.ndarray]:
    b, n_in, _, n_out = SHAPES[size]
    rng = np.random.default_rng(2)
    return rng.random((b, n_in), dtype=np.float32), rng.integers(0, n_out, b, dtype=np.int64)


def _tf_like_model(tf: Any, size: str) -> tuple:
    """The TF1 program, for TensorFlow or graphflow (the same code, another import)."""
    w0 = weights(size)
    xs, _ = batch(size)
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [None, xs.shape[1]], name="x")
        y = tf.placeholder(tf.int64, [None], name="y")
        p = {k: tf.Variable(v, name=k) for k, v in w0.items()}
        h = tf.nn.relu(tf.matmul(x, p["w1"]) + p["b1"])
        h = tf.nn.relu(tf.matmul(h, p["w2"]) + p["b2"])
        logits = tf.matmul(h, p["w3"]) + p["b3"]
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        train = tf.train.AdamOptimizer(LR).minimize(loss)
        init = tf.global_variables_initializer()
    return g, x, y, train, loss, init


def _case(sess: Any, size: str, x: Any, y: Any, train: Any, loss: Any, init: Any) -> Case:
    xs, ys = batch(size)
    sess.run(init)
    feeds = {x: xs, y: ys}
    return Case(step=lambda: float(sess.run([train, loss], feeds)[1]), close=sess.close)


def _build_graphflow(size: str, framework: str) -> Case:
    import graphflow as gf

    g, *model = _tf_like_model(gf, size)
    return _case(graphflow_session(g, GF_BACKEND[framework]), size, *model)


def build_tensorflow(size: str) -> Case:
    tf = import_tf()
    g, *model = _tf_like_model(tf, size)
    return _case(tf.Session(graph=g), size, *model)


def jax_loss(jax: Any, p: dict, x: Any, y: Any) -> Any:
    jnp = jax.numpy
    h = jax.nn.relu(x @ p["w1"] + p["b1"])
    h = jax.nn.relu(h @ p["w2"] + p["b2"])
    logits = h @ p["w3"] + p["b3"]
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def jax_adam_step(jax: Any, loss_fn: Any) -> Any:
    """A jitted ``(params, (m, v, t), x, y) -> (params, state, loss)`` with TF1's Adam.

    params and state are donated, so XLA may update them in place as
    graphflow and TF do with their variables.
    """
    jnp = jax.numpy

    def step(p: dict, state: tuple, x: Any, y: Any) -> tuple:
        m, v, t = state
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        t = t + 1
        lr_t = LR * jnp.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        m = {k: 0.9 * m[k] + 0.1 * g[k] for k in p}
        v = {k: 0.999 * v[k] + 0.001 * g[k] * g[k] for k in p}
        p = {k: p[k] - lr_t * m[k] / (jnp.sqrt(v[k]) + 1e-8) for k in p}
        return p, (m, v, t), loss

    return jax.jit(step, donate_argnums=(0, 1))


def build_jax(size: str) -> Case:
    jax = import_jax()
    jnp = jax.numpy
    xs, ys = batch(size)
    p = {k: jnp.asarray(v) for k, v in weights(size).items()}
    state = [p, ({k: jnp.zeros_like(v) for k, v in p.items()},
                 {k: jnp.zeros_like(v) for k, v in p.items()}, jnp.float32(0))]
    f = jax_adam_step(jax, lambda p, x, y: jax_loss(jax, p, x, y))

    def step() -> float:
        state[0], state[1], loss = f(state[0], state[1], xs, ys)
        return float(loss)

    return Case(step=step)


def pytensor_adam(pytensor: Any, loss: Any, params: list) -> list:
    """TF1's Adam as PyTensor updates (slots are shared variables)."""
    import pytensor.tensor as pt

    t = pytensor.shared(np.float32(0), name="t")
    t1 = t + 1
    lr_t = LR * pt.sqrt(1 - np.float32(0.999) ** t1) / (1 - np.float32(0.9) ** t1)
    updates = [(t, t1)]
    for p, g in zip(params, pytensor.grad(loss, params)):
        m = pytensor.shared(np.zeros_like(p.get_value()))
        v = pytensor.shared(np.zeros_like(p.get_value()))
        m1 = 0.9 * m + 0.1 * g
        v1 = 0.999 * v + 0.001 * g * g
        updates += [(m, m1), (v, v1), (p, p - lr_t * m1 / (pt.sqrt(v1) + 1e-8))]
    return updates


def pytensor_xent(logits: Any, y: Any) -> Any:
    import pytensor.tensor as pt
    from pytensor.tensor.special import log_softmax

    return -pt.mean(log_softmax(logits, axis=1)[pt.arange(y.shape[0]), y])


def build_pytensor(size: str) -> Case:
    pytensor = import_pytensor()
    import pytensor.tensor as pt

    xs, ys = batch(size)
    p = {k: pytensor.shared(v, name=k) for k, v in weights(size).items()}
    x = pt.matrix("x", dtype="float32")
    y = pt.vector("y", dtype="int64")
    h = pt.maximum(x @ p["w1"] + p["b1"], 0)
    h = pt.maximum(h @ p["w2"] + p["b2"], 0)
    loss = pytensor_xent(h @ p["w3"] + p["b3"], y)
    f = pytensor.function([x, y], loss, updates=pytensor_adam(pytensor, loss, list(p.values())))
    return Case(step=lambda: float(f(xs, ys)))


def build_numpy(size: str) -> Case:
    """Hand-written forward, backward and Adam; intermediates are reused where NumPy allows."""
    p = weights(size)
    xs, ys = batch(size)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    t = [0]

    def step() -> float:
        a1 = xs @ p["w1"] + p["b1"]
        h1 = np.maximum(a1, 0)
        a2 = h1 @ p["w2"] + p["b2"]
        h2 = np.maximum(a2, 0)
        loss, d3 = softmax_xent_numpy(h2 @ p["w3"] + p["b3"], ys)
        g = {"w3": h2.T @ d3, "b3": d3.sum(0)}
        d2 = d3 @ p["w3"].T
        d2 *= a2 > 0
        g["w2"], g["b2"] = h1.T @ d2, d2.sum(0)
        d1 = d2 @ p["w2"].T
        d1 *= a1 > 0
        g["w1"], g["b1"] = xs.T @ d1, d1.sum(0)
        t[0] += 1
        adam_numpy(p, g, m, v, t[0], LR)
        return loss

    return Case(step=step)


BUILDERS = builders(_build_graphflow, build_numpy, build_tensorflow, build_jax, build_pytensor)
