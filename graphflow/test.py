"""``gf.test``: gradient checking against finite differences (TF1's ``tf.test`` helpers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from graphflow.autodiff import gradients
from graphflow.framework.graph import Tensor, convert_to_tensor
from graphflow.framework.indexed_slices import IndexedSlices


def _session_for(graph: Any) -> tuple[Any, bool]:
    from graphflow.runtime.session import Session, get_default_session

    sess = get_default_session()
    if sess is not None and sess.graph is graph:
        return sess, False
    return Session(graph=graph), True


def compute_gradient(x: Any, x_shape: Sequence[int], y: Tensor, y_shape: Sequence[int],
                     x_init_value: Any = None, delta: float = 1e-3, init_targets: Any = None,
                     extra_feed_dict: dict | None = None) -> Any:
    """Symbolic and numeric Jacobians of ``y`` with respect to ``x`` (TF1's function).

    The symbolic Jacobian runs ``gf.gradients`` once per element of ``y`` with a
    one-hot ``grad_ys``; the numeric one uses central differences of step
    ``delta``. Both are ``[x_size, y_size]`` arrays.

    Args:
      x: a Tensor (fed with ``x_init_value``) or a list of Tensors.
      x_shape: the shape of x (a list of shapes for a list).
      y: the output Tensor.
      y_shape: its shape.
      x_init_value: the point to differentiate at (random normal if None).
      delta: finite-difference step.
      init_targets: ops to run first (e.g. variable initializers).
      extra_feed_dict: more feeds.

    Returns:
      ``(theoretical, numerical)``, or a list of such pairs for a list of xs.
    """
    if isinstance(x, (list, tuple)):
        inits = x_init_value if x_init_value is not None else [None] * len(x)
        return [compute_gradient(xi, si, y, y_shape, vi, delta, init_targets, extra_feed_dict)
                for xi, si, vi in zip(x, x_shape, inits)]
    x_shape = tuple(int(d) for d in x_shape)
    y_shape = tuple(int(d) for d in y_shape)
    np_dtype = x.dtype.np
    if x_init_value is None:
        x_init_value = np.random.default_rng(0).standard_normal(x_shape)
    # A C-ordered copy: perturbing its flat view must perturb the array that is fed.
    x0 = np.array(x_init_value, dtype=np_dtype, order="C").reshape(x_shape)
    from graphflow.ops.constant_op import placeholder

    with y.graph.as_default():
        dy = placeholder(y.dtype, y_shape, name="compute_gradient_dy")
        (grad,) = gradients(y, [x], grad_ys=dy)
        if isinstance(grad, IndexedSlices):
            grad = convert_to_tensor(grad)  # a sparse gradient's dense Jacobian, as TF1's checker
    sess, own = _session_for(y.graph)
    try:
        if init_targets:
            sess.run(init_targets)
        feeds = dict(extra_feed_dict or {})
        nx, ny = x0.size, int(np.prod(y_shape, dtype=np.int64))
        theory = np.zeros((nx, ny), dtype=np_dtype)
        if grad is not None:
            for j in range(ny):
                onehot = np.zeros(ny, dtype=y.dtype.np)
                onehot[j] = 1
                g = sess.run(grad, {**feeds, x: x0, dy: onehot.reshape(y_shape)})
                theory[:, j] = np.asarray(g).reshape(-1)
        numeric = np.zeros((nx, ny), dtype=np_dtype)
        flat = x0.reshape(-1)
        for i in range(nx):
            orig = flat[i]
            flat[i] = orig + delta
            plus = np.asarray(sess.run(y, {**feeds, x: x0}), dtype=np.float64)
            flat[i] = orig - delta
            minus = np.asarray(sess.run(y, {**feeds, x: x0}), dtype=np.float64)
            flat[i] = orig
            numeric[i, :] = ((plus - minus) / (2 * delta)).reshape(-1)
        return theory, numeric
    finally:
        if own:
            sess.close()


def compute_gradient_error(x: Any, x_shape: Sequence[int], y: Tensor, y_shape: Sequence[int],
                           x_init_value: Any = None, delta: float = 1e-3,
                           init_targets: Any = None, extra_feed_dict: dict | None = None
                           ) -> float:
    """The largest absolute difference between symbolic and numeric Jacobians.

    Args: as :func:`compute_gradient`.

    Returns:
      A float; for a list of xs, the largest over all of them.
    """
    grads = compute_gradient(x, x_shape, y, y_shape, x_init_value, delta, init_targets,
                             extra_feed_dict)
    if isinstance(grads, tuple):
        grads = [grads]
    err = 0.0
    for theory, numeric in grads:
        if theory.size:
            err = max(err, float(np.max(np.abs(theory - numeric))))
    return err


def check_gradients(fn: Any, args: Sequence[np.ndarray], delta: float = 1e-6,
                    atol: float = 1e-6, rtol: float = 1e-5, order: int = 1) -> None:
    """Checks gradients of ``fn(*tensors)`` at ``args`` against finite differences.

    Builds a fresh graph with one float64 placeholder per arg, so it is the
    one-line check graphflow's own tests use for every differentiable op.
    With ``order=2`` it also checks the gradient of ``sum(gradient * w)`` for a
    fixed random ``w`` (a Hessian-vector product), i.e. second derivatives.

    Args:
      fn: builds the output from placeholders.
      args: float64 arrays: the point to check at.
      delta: finite-difference step.
      atol, rtol: tolerances.
      order: 1 or 2.

    Raises:
      AssertionError: naming the argument whose Jacobian differs.
    """
    from graphflow.framework.graph import Graph
    from graphflow.ops.constant_op import constant, placeholder
    from graphflow.ops.math_ops import multiply, reduce_sum

    g = Graph()
    with g.as_default():
        phs = [placeholder(np.asarray(a).dtype, np.shape(a)) for a in args]
        out = fn(*phs)
        targets = [out]
        if order == 2:
            grads = gradients(out, phs)
            rng = np.random.default_rng(1)
            terms = []
            for gi in grads:
                if gi is not None:
                    w = constant(rng.standard_normal(gi.shape.as_list()), dtype=gi.dtype)
                    terms.append(reduce_sum(multiply(gi, w)))
            if not terms:
                raise AssertionError("no first-order gradient to differentiate again")
            targets = [terms[0] if len(terms) == 1 else sum(terms[1:], terms[0])]
        for target in targets:
            ys = target.shape.as_list()
            feeds = {p: np.asarray(a) for p, a in zip(phs, args)}
            for i, (p, a) in enumerate(zip(phs, args)):
                others = {q: v for q, v in feeds.items() if q is not p}
                theory, numeric = compute_gradient(p, np.shape(a), target, ys,
                                                   x_init_value=np.array(a, copy=True),
                                                   delta=delta, extra_feed_dict=others)
                if not np.allclose(theory, numeric, atol=atol, rtol=rtol):
                    worst = float(np.max(np.abs(theory - numeric)))
                    raise AssertionError(
                        f"order-{order} gradient of argument {i} differs from finite "
                        f"differences by {worst:.3g}\nsymbolic:\n{theory}\nnumeric:\n{numeric}")
