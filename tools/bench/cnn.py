"""Workload cnn: one SGD(0.01) step of a small convnet on NHWC 28x28x1, batch 64, float32.

conv 5x5x32 (SAME, bias) - relu - maxpool 2x2/2 - conv 5x5x64 (SAME, bias) -
relu - maxpool 2x2/2 - flatten (7*7*64) - dense 10 (bias) - mean sparse
softmax cross-entropy. Same weights, batch and step/loss convention as mlp.

NumPy and PyTensor have no NHWC conv2d op, so both build the convolution
from an im2col (25 shifted slices of the padded input) and one matmul, and
max pooling from a reshape and a max; NumPy's backward pass is hand-written
the same way (col2im adds the 25 slices back). PyTensor 3 removed its conv2d
and pool ops, hence the same im2col written in PyTensor ops (its gradient is
PyTensor's own).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from common import Case, builders, glorot, softmax_xent_numpy
from frameworks import GF_BACKEND, graphflow_session, import_jax, import_pytensor, import_tf

# (batch, image side, conv1 channels, conv2 channels)
SHAPES = {"full": (64, 28, 32, 64), "quick": (4, 28, 4, 8)}
K = 5          # kernel side
CLASSES = 10
LR = 0.01


def weights(size: str) -> dict[str, np.ndarray]:
    _, side, c1, c2 = SHAPES[size]
    rng = np.random.default_rng(3)
    flat = (side // 4) ** 2 * c2
    return {"k1": glorot(rng, (K, K, 1, c1)), "c1": np.zeros(c1, np.float32),
            "k2": glorot(rng, (K, K, c1, c2)), "c2": np.zeros(c2, np.float32),
            "w": glorot(rng, (flat, CLASSES)), "b": np.zeros(CLASSES, np.float32)}


def batch(size: str) -> tuple[np.ndarray, np.ndarray]:
    n, side, _, _ = SHAPES[size]
    rng = np.random.default_rng(4)
    return (rng.random((n, side, side, 1), dtype=np.float32),
            rng.integers(0, CLASSES, n, dtype=np.int64))


def _tf_like_model(tf: Any, size: str) -> tuple:
    """The graph in TF1's API; graphflow and tf.compat.v1 both accept it unchanged."""
    w0 = weights(size)
    xs, ys = batch(size)
    x = tf.placeholder(tf.float32, [None, *xs.shape[1:]], name="x")
    y = tf.placeholder(tf.int64, [None], name="y")
    p = {k: tf.Variable(v, name=k) for k, v in w0.items()}
    one, two = [1, 1, 1, 1], [1, 2, 2, 1]
    h = tf.nn.relu(tf.nn.conv2d(x, p["k1"], one, "SAME") + p["c1"])
    h = tf.nn.max_pool(h, two, two, "VALID")
    h = tf.nn.relu(tf.nn.conv2d(h, p["k2"], one, "SAME") + p["c2"])
    h = tf.nn.max_pool(h, two, two, "VALID")
    logits = tf.matmul(tf.reshape(h, [-1, w0["w"].shape[0]]), p["w"]) + p["b"]
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
    train = tf.train.GradientDescentOptimizer(LR).minimize(loss)
    return train, loss, tf.global_variables_initializer(), {x: xs, y: ys}


def _build_graphflow(size: str, framework: str) -> Case:
    import graphflow as gf

    g = gf.Graph()
    with g.as_default():
        train, loss, init, feeds = _tf_like_model(gf, size)
    sess = graphflow_session(g, GF_BACKEND[framework])
    sess.run(init)
    return Case(step=lambda: float(sess.run([train, loss], feeds)[1]), close=sess.close)


def build_tensorflow(size: str) -> Case:
    tf = import_tf()
    g = tf.Graph()
    with g.as_default():
        train, loss, init, feeds = _tf_like_model(tf, size)
    sess = tf.Session(graph=g)
    sess.run(init)
    return Case(step=lambda: float(sess.run([train, loss], feeds)[1]), close=sess.close)


def build_jax(size: str) -> Case:
    jax = import_jax()
    jnp, lax = jax.numpy, jax.lax
    xs, ys = batch(size)

    def loss_fn(p: dict, x: Any, y: Any) -> Any:
        dn = ("NHWC", "HWIO", "NHWC")
        win = (1, 2, 2, 1)
        h = jax.nn.relu(lax.conv_general_dilated(x, p["k1"], (1, 1), "SAME",
                                                 dimension_numbers=dn) + p["c1"])
        h = lax.reduce_window(h, -jnp.inf, lax.max, win, win, "VALID")
        h = jax.nn.relu(lax.conv_general_dilated(h, p["k2"], (1, 1), "SAME",
                                                 dimension_numbers=dn) + p["c2"])
        h = lax.reduce_window(h, -jnp.inf, lax.max, win, win, "VALID")
        logits = h.reshape(h.shape[0], -1) @ p["w"] + p["b"]
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def sgd(p: dict, x: Any, y: Any) -> tuple:
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        return {k: p[k] - LR * g[k] for k in p}, loss

    f = jax.jit(sgd, donate_argnums=(0,))
    state = [{k: jnp.asarray(v) for k, v in weights(size).items()}]

    def step() -> float:
        state[0], loss = f(state[0], xs, ys)
        return float(loss)

    return Case(step=step)


def _pytensor_conv_same(pt: Any, x: Any, w: Any, n: int, side: int, cin: int, cout: int) -> Any:
    pad = K // 2
    xp = pt.zeros((n, side + 2 * pad, side + 2 * pad, cin), dtype="float32")
    xp = pt.set_subtensor(xp[:, pad:pad + side, pad:pad + side, :], x)
    cols = pt.stack([xp[:, i:i + side, j:j + side, :] for i in range(K) for j in range(K)], axis=3)
    out = cols.reshape((n * side * side, K * K * cin)) @ w.reshape((K * K * cin, cout))
    return out.reshape((n, side, side, cout))


def _pytensor_pool(x: Any, n: int, side: int, c: int) -> Any:
    return x.reshape((n, side // 2, 2, side // 2, 2, c)).max(axis=(2, 4))


def build_pytensor(size: str) -> Case:
    pytensor = import_pytensor()
    import pytensor.tensor as pt
    from mlp import pytensor_xent

    n, side, c1, c2 = SHAPES[size]
    xs, ys = batch(size)
    p = {k: pytensor.shared(v, name=k) for k, v in weights(size).items()}
    x = pt.tensor4("x", dtype="float32")
    y = pt.vector("y", dtype="int64")
    h = pt.maximum(_pytensor_conv_same(pt, x, p["k1"], n, side, 1, c1) + p["c1"], 0)
    h = _pytensor_pool(h, n, side, c1)
    h = pt.maximum(_pytensor_conv_same(pt, h, p["k2"], n, side // 2, c1, c2) + p["c2"], 0)
    h = _pytensor_pool(h, n, side // 2, c2)
    loss = pytensor_xent(h.reshape((n, -1)) @ p["w"] + p["b"], y)
    params = list(p.values())
    updates = [(q, q - LR * g) for q, g in zip(params, pytensor.grad(loss, params))]
    f = pytensor.function([x, y], loss, updates=updates)
    return Case(step=lambda: float(f(xs, ys)), note="im2col in PyTensor ops")


# --- NumPy: im2col convolution and reshape pooling with a hand-written backward pass.

def _im2col(x: np.ndarray) -> np.ndarray:
    """(N,H,W,C) -> (N*H*W, K*K*C) patches of the SAME-padded input, (kh, kw, c) order."""
    n, h, w, c = x.shape
    pad = K // 2
    xp = np.zeros((n, h + 2 * pad, w + 2 * pad, c), x.dtype)
    xp[:, pad:pad + h, pad:pad + w] = x
    cols = np.empty((n, h, w, K, K, c), x.dtype)
    for i in range(K):
        for j in range(K):
            cols[:, :, :, i, j, :] = xp[:, i:i + h, j:j + w, :]
    return cols.reshape(n * h * w, K * K * c)


def _col2im(dcols: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The adjoint of :func:`_im2col`: add each patch gradient back where it was read."""
    n, h, w, c = shape
    pad = K // 2
    d = dcols.reshape(n, h, w, K, K, c)
    dxp = np.zeros((n, h + 2 * pad, w + 2 * pad, c), dcols.dtype)
    for i in range(K):
        for j in range(K):
            dxp[:, i:i + h, j:j + w, :] += d[:, :, :, i, j, :]
    return dxp[:, pad:pad + h, pad:pad + w]


def _pool(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n, h, w, c = x.shape
    xr = x.reshape(n, h // 2, 2, w // 2, 2, c)
    out = xr.max(axis=(2, 4))
    # Ties only occur at relu's zeros, whose gradient relu drops anyway.
    return out, xr == out[:, :, None, :, None, :]


def _unpool(d: np.ndarray, mask: np.ndarray) -> np.ndarray:
    n, h2, _, w2, _, c = mask.shape
    return (mask * d[:, :, None, :, None, :]).reshape(n, 2 * h2, 2 * w2, c)


def build_numpy(size: str) -> Case:
    p = weights(size)
    xs, ys = batch(size)
    n = xs.shape[0]

    def step() -> float:
        cols1 = _im2col(xs)
        a1 = (cols1 @ p["k1"].reshape(-1, p["k1"].shape[-1])).reshape(*xs.shape[:3], -1)
        a1 += p["c1"]
        r1 = np.maximum(a1, 0)
        h1, m1 = _pool(r1)
        cols2 = _im2col(h1)
        a2 = (cols2 @ p["k2"].reshape(-1, p["k2"].shape[-1])).reshape(*h1.shape[:3], -1)
        a2 += p["c2"]
        r2 = np.maximum(a2, 0)
        h2, m2 = _pool(r2)
        flat = h2.reshape(n, -1)
        loss, dl = softmax_xent_numpy(flat @ p["w"] + p["b"], ys)
        g = {"w": flat.T @ dl, "b": dl.sum(0)}
        da2 = _unpool((dl @ p["w"].T).reshape(h2.shape), m2) * (a2 > 0)
        d2 = da2.reshape(-1, da2.shape[-1])
        g["k2"], g["c2"] = (cols2.T @ d2).reshape(p["k2"].shape), d2.sum(0)
        dh1 = _col2im(d2 @ p["k2"].reshape(-1, d2.shape[1]).T, h1.shape)
        da1 = _unpool(dh1, m1) * (a1 > 0)
        d1 = da1.reshape(-1, da1.shape[-1])
        g["k1"], g["c1"] = (cols1.T @ d1).reshape(p["k1"].shape), d1.sum(0)
        for k, gk in g.items():
            p[k] -= LR * gk
        return loss

    return Case(step=step, note="im2col")


BUILDERS = builders(_build_graphflow, build_numpy, build_tensorflow, build_jax, build_pytensor)
