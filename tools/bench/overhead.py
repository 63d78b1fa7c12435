"""Workload overhead: the per-call cost of running ``x*2+1`` on a fed float32 scalar.

The work is nothing, so this measures each framework's fixed cost per call:
graphflow and TF ``sess.run(y, {x: v})`` (``step``) and
``sess.make_callable(y, [x])(v)`` (``callable``); a jitted JAX function (the
result is waited for, not copied to NumPy); a PyTensor function (``callable``
is the same with ``trust_input=True``, its documented fast path); and NumPy's
plain expression on a ``np.float32``.
"""

from __future__ import annotations

import numpy as np
from common import Case, builders
from frameworks import GF_BACKEND, graphflow_session, import_jax, import_pytensor, import_tf

VALUE = np.float32(3.0)
EXPECTED = 7.0


def _build_graphflow(size: str, framework: str) -> Case:
    import graphflow as gf

    g = gf.Graph()
    with g.as_default():
        x = gf.placeholder(gf.float32, [], name="x")
        y = x * 2 + 1
    sess = graphflow_session(g, GF_BACKEND[framework])
    fn = sess.make_callable(y, [x])
    return Case(step=lambda: sess.run(y, {x: VALUE}), extra={"callable": lambda: fn(VALUE)},
                close=sess.close)


def build_tensorflow(size: str) -> Case:
    tf = import_tf()
    g = tf.Graph()
    with g.as_default():
        x = tf.placeholder(tf.float32, [], name="x")
        y = x * 2 + 1
    sess = tf.Session(graph=g)
    fn = sess.make_callable(y, [x])
    return Case(step=lambda: sess.run(y, {x: VALUE}), extra={"callable": lambda: fn(VALUE)},
                close=sess.close)


def build_jax(size: str) -> Case:
    jax = import_jax()
    f = jax.jit(lambda x: x * 2 + 1)
    return Case(step=lambda: f(VALUE).block_until_ready())


def build_pytensor(size: str) -> Case:
    pytensor = import_pytensor()
    import pytensor.tensor as pt

    x = pt.scalar("x", dtype="float32")
    f = pytensor.function([x], x * 2 + 1)
    fast = pytensor.function([x], x * 2 + 1)
    fast.trust_input = True
    arr = np.asarray(VALUE)  # trust_input skips conversion, so give it the array it wants
    return Case(step=lambda: f(VALUE), extra={"callable": lambda: fast(arr)})


def build_numpy(size: str) -> Case:
    return Case(step=lambda: VALUE * 2 + 1)


BUILDERS = builders(_build_graphflow, build_numpy, build_tensorflow, build_jax, build_pytensor)


def check(size: str, out: object) -> dict:
    got = float(np.asarray(out))
    return {"ok": got == EXPECTED, "value": got}
