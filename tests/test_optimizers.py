"""Each optimizer's first steps against a hand computation of TF1's formulas in NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import graphflow as gf
from graphflow.runtime.session import BACKENDS as SESSION_BACKENDS

W0 = np.array([[1.0, -2.0], [0.5, 3.0]])
B0 = np.array([0.25, -0.75])
A = np.array([[1.0, 2.0], [0.5, 4.0]])
C = np.array([[0.3, -1.0], [2.0, 0.1]])
D = np.array([-1.5, 0.5])


def _problem(dtype):
    """loss = 0.5 * sum(A w^2) + sum(C w) + 0.5 * sum(b^2) + sum(D b): grads A w + C, b + D."""
    w = gf.Variable(W0.astype(dtype), name="w")
    b = gf.Variable(B0.astype(dtype), name="b")
    loss = (0.5 * gf.reduce_sum(gf.square(w) * A.astype(dtype)) +
            gf.reduce_sum(w * C.astype(dtype)) +
            0.5 * gf.reduce_sum(gf.square(b)) + gf.reduce_sum(b * D.astype(dtype)))
    return w, b, loss


def _grads(w, b):
    return [A * w + C, b + D]


# The compiled reference backend and, where present, the direct graph interpreter.
BACKENDS = [b for b in ("reference", "interpreter") if b in SESSION_BACKENDS]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def _run(opt, dtype, steps=3, slots=(), backend="reference"):
    """Runs ``steps`` updates; returns the variables (and slots) after each step."""
    w, b, loss = _problem(dtype)
    train = opt.minimize(loss)
    history = []
    with gf.Session(backend=backend) as s:
        s.run(gf.global_variables_initializer())
        for _ in range(steps):
            s.run(train)
            vals = s.run([w, b])
            for name in slots:
                vals += s.run([opt.get_slot(w, name), opt.get_slot(b, name)])
            history.append(vals)
    return history


def _check(history, expected, dtype):
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    for got, want in zip(history, expected):
        for g, e in zip(got, want):
            assert g.dtype == dtype
            np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol)


DTYPES = [np.float64, np.float32]


def f32(x):
    """A Python float hyperparameter as the float32 constant TF1 (and graphflow) makes of it."""
    return float(np.float32(x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_descent(dtype, backend):
    lr = f32(0.1)
    ws = [W0, B0]
    expected = []
    for _ in range(3):
        ws = [x - lr * g for x, g in zip(ws, _grads(*ws))]
        expected.append(ws)
    _check(_run(gf.train.GradientDescentOptimizer(lr), dtype, backend=backend), expected,
           dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum(dtype, nesterov, backend):
    lr, mu = f32(0.05), f32(0.9)
    ws = [W0, B0]
    accs = [np.zeros_like(W0), np.zeros_like(B0)]
    expected = []
    for _ in range(3):
        gs = _grads(*ws)
        accs = [mu * a + g for a, g in zip(accs, gs)]
        if nesterov:
            ws = [x - lr * g - lr * mu * a for x, g, a in zip(ws, gs, accs)]
        else:
            ws = [x - lr * a for x, a in zip(ws, accs)]
        expected.append(ws + accs)
    opt = gf.train.MomentumOptimizer(lr, mu, use_nesterov=nesterov)
    _check(_run(opt, dtype, slots=["momentum"], backend=backend), expected, dtype)
    assert opt.get_slot_names() == ["momentum"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam(dtype, backend):
    lr, b1, b2, eps = map(f32, (0.1, 0.9, 0.999, 1e-8))  # TF1's defaults but the rate
    ws = [W0, B0]
    ms = [np.zeros_like(W0), np.zeros_like(B0)]
    vs = [np.zeros_like(W0), np.zeros_like(B0)]
    # beta1^t, beta2^t live in float32 variables (made from the Python floats) and are
    # multiplied in float32 after each step, as in TF1.
    p1, p2 = np.float32(b1), np.float32(b2)
    expected = []
    for _ in range(3):
        gs = _grads(*ws)
        ms = [b1 * m + (1 - b1) * g for m, g in zip(ms, gs)]
        vs = [b2 * v + (1 - b2) * g * g for v, g in zip(vs, gs)]
        lr_t = lr * np.sqrt(1 - float(p2)) / (1 - float(p1))
        p1, p2 = p1 * np.float32(b1), p2 * np.float32(b2)
        ws = [x - lr_t * m / (np.sqrt(v) + eps) for x, m, v in zip(ws, ms, vs)]
        expected.append(ws + ms + vs)
    opt = gf.train.AdamOptimizer(lr)
    _check(_run(opt, dtype, slots=["m", "v"], backend=backend), expected, dtype)
    assert opt.get_slot_names() == ["m", "v"]


def test_adam_beta_powers_advance_after_each_step():
    w, b, loss = _problem(np.float64)
    opt = gf.train.AdamOptimizer()
    train = opt.minimize(loss)
    b1p, b2p = opt._get_beta_accumulators()
    assert b1p.name == "beta1_power:0" and b2p.name == "beta2_power:0"
    assert b1p.dtype == gf.float32 and not b1p.trainable
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        for t in range(1, 4):
            # The step reads the powers (its snapshot) before it advances them.
            _, p1 = s.run([train, b1p.value()])
            np.testing.assert_allclose(p1, np.float32(0.9) ** t, rtol=1e-6)
            np.testing.assert_allclose(s.run(b1p), np.float32(0.9) ** (t + 1), rtol=1e-6)
        np.testing.assert_allclose(s.run(b2p), np.float32(0.999) ** 4, rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_rmsprop(dtype, centered, mu, backend):
    lr, rho, eps = f32(0.01), f32(0.9), f32(1e-10)
    mu = f32(mu)
    ws = [W0, B0]
    ms = [np.ones_like(W0), np.ones_like(B0)]  # TF1 starts the mean square at one
    mgs = [np.zeros_like(W0), np.zeros_like(B0)]
    moms = [np.zeros_like(W0), np.zeros_like(B0)]
    expected = []
    for _ in range(3):
        gs = _grads(*ws)
        ms = [rho * s + (1 - rho) * g * g for s, g in zip(ms, gs)]
        if centered:
            mgs = [rho * a + (1 - rho) * g for a, g in zip(mgs, gs)]
            denom = [s - a * a + eps for s, a in zip(ms, mgs)]
        else:
            denom = [s + eps for s in ms]
        moms = [mu * m + lr * g / np.sqrt(d) for m, g, d in zip(moms, gs, denom)]
        ws = [x - m for x, m in zip(ws, moms)]
        expected.append(ws + ms + moms + (mgs if centered else []))
    opt = gf.train.RMSPropOptimizer(lr, momentum=mu, centered=centered)
    slots = ["rms", "momentum"] + (["mg"] if centered else [])
    _check(_run(opt, dtype, slots=slots, backend=backend), expected, dtype)
    assert opt.get_slot_names() == sorted(slots)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adagrad(dtype, backend):
    lr = 0.5
    ws = [W0, B0]
    accs = [np.full_like(W0, 0.1), np.full_like(B0, 0.1)]
    expected = []
    for _ in range(3):
        gs = _grads(*ws)
        accs = [a + g * g for a, g in zip(accs, gs)]
        ws = [x - lr * g / np.sqrt(a) for x, g, a in zip(ws, gs, accs)]
        expected.append(ws + accs)
    opt = gf.train.AdagradOptimizer(lr)
    _check(_run(opt, dtype, slots=["accumulator"], backend=backend), expected, dtype)


def test_tf1_defaults():
    adam = gf.train.AdamOptimizer()
    assert (adam._lr, adam._beta1, adam._beta2, adam._epsilon) == (0.001, 0.9, 0.999, 1e-8)
    assert adam.get_name() == "Adam"
    rms = gf.train.RMSPropOptimizer(0.1)
    assert (rms._decay, rms._momentum, rms._epsilon, rms._centered) == (0.9, 0.0, 1e-10, False)
    assert gf.train.AdagradOptimizer(0.1)._initial_accumulator_value == 0.1
    assert gf.train.MomentumOptimizer(0.1, 0.9)._use_nesterov is False
    assert gf.train.GradientDescentOptimizer(0.1).get_name() == "GradientDescent"
    with pytest.raises(ValueError, match="initial_accumulator_value must be positive"):
        gf.train.AdagradOptimizer(0.1, initial_accumulator_value=0.0)
    with pytest.raises(ValueError, match="name"):
        gf.train.GradientDescentOptimizer(0.1, name="")


@pytest.mark.parametrize("make, names, update", [
    (lambda: gf.train.GradientDescentOptimizer(0.1), [], "ApplyGradientDescent"),
    (lambda: gf.train.MomentumOptimizer(0.1, 0.9), ["w/Momentum"], "ApplyMomentum"),
    (lambda: gf.train.AdamOptimizer(), ["beta1_power", "beta2_power", "w/Adam", "w/Adam_1"],
     "ApplyAdam"),
    (lambda: gf.train.RMSPropOptimizer(0.1), ["w/RMSProp", "w/RMSProp_1"], "ApplyRMSProp"),
    (lambda: gf.train.RMSPropOptimizer(0.1, centered=True),
     ["w/RMSProp", "w/RMSProp_1", "w/RMSProp_2"], "ApplyCenteredRMSProp"),
    (lambda: gf.train.AdagradOptimizer(0.1), ["w/Adagrad"], "ApplyAdagrad"),
])
def test_slot_variables_are_named_as_tf1_names_them(make, names, update):
    w = gf.Variable(np.ones(3, np.float32), name="w")
    opt = make()
    train = opt.minimize(gf.reduce_sum(gf.square(w)))
    assert [v.op.name for v in opt.variables()] == names
    for v in opt.variables():
        assert not v.trainable
        assert v in gf.global_variables()
    assert gf.trainable_variables() == [w]
    op = train.graph.get_operation_by_name(f"{opt.get_name()}/update_w/{update}")
    assert op.type == update
    assert op.op_def.stateful and op.op_def.not_differentiable
    assert train.name == opt.get_name() and train.type == "NoOp"
    assert train in gf.get_collection(gf.GraphKeys.TRAIN_OP)


def test_rmsprop_slot_order():
    w = gf.Variable(np.ones(3, np.float32), name="w")
    opt = gf.train.RMSPropOptimizer(0.1, centered=True)
    opt.minimize(gf.reduce_sum(gf.square(w)))
    # TF1 creates rms, then mg, then momentum.
    assert opt.get_slot(w, "rms").op.name == "w/RMSProp"
    assert opt.get_slot(w, "mg").op.name == "w/RMSProp_1"
    assert opt.get_slot(w, "momentum").op.name == "w/RMSProp_2"


def test_slots_are_reused_by_a_second_minimize():
    w = gf.Variable(np.ones(3, np.float32), name="w")
    opt = gf.train.AdamOptimizer()
    opt.minimize(gf.reduce_sum(gf.square(w)))
    m = opt.get_slot(w, "m")
    opt.minimize(gf.reduce_sum(w))
    assert opt.get_slot(w, "m") is m
    assert len(opt.variables()) == 4
    # A second optimizer gets its own, uniquified slots.
    other = gf.train.AdamOptimizer()
    other.minimize(gf.reduce_sum(w))
    assert other.get_slot(w, "m").op.name == "w/Adam_2"
    assert other._get_beta_accumulators()[0].op.name == "beta1_power_1"


def test_slots_ignore_name_scope_and_control_dependencies():
    with gf.name_scope("layer"):
        w = gf.Variable(np.ones(3, np.float32), name="w")
    c = gf.no_op(name="c")
    with gf.name_scope("training"), gf.control_dependencies([c]):
        train = gf.train.MomentumOptimizer(0.1, 0.9).minimize(gf.reduce_sum(gf.square(w)))
    g = gf.get_default_graph()
    slot = g.get_operation_by_name("layer/w/Momentum")
    assert slot.control_inputs == []
    assert g.get_operation_by_name("training/Momentum/update_layer/w/ApplyMomentum")
    assert train.name == "training/Momentum"


def test_update_ops_check_their_inputs():
    from graphflow.ops import training_ops

    w = gf.Variable(np.ones(3, np.float32), name="w")
    with pytest.raises(ValueError, match="same shape"):
        training_ops.apply_gradient_descent(w, 0.1, np.ones(4, np.float32))
    with pytest.raises(TypeError, match="dtype"):
        training_ops.apply_gradient_descent(w, 0.1, gf.constant(np.ones(3)))
    with pytest.raises(ValueError, match="not a scalar"):
        training_ops.apply_gradient_descent(w, [0.1, 0.2, 0.3], np.ones(3, np.float32))
    with pytest.raises(TypeError, match="must be a variable"):
        training_ops.apply_momentum(w, gf.zeros([3]), 0.1, np.ones(3, np.float32), 0.9)
    i = gf.Variable(np.ones(3, np.int32), name="i")
    with pytest.raises(TypeError, match="int32"):
        training_ops.apply_gradient_descent(i, 1, np.ones(3, np.int32))


def test_update_op_writes_new_arrays_and_returns_the_new_value():
    from graphflow.ops import training_ops

    w = gf.Variable(np.ones(3, np.float32), name="w")
    acc = gf.Variable(np.zeros(3, np.float32), name="acc")
    g = gf.placeholder(gf.float32, [None])
    up = training_ops.apply_momentum(w, acc, 0.5, g, 0.9)
    assert up.shape == gf.TensorShape([3]) and up.dtype == gf.float32
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        before = s.run(w)
        out = s.run(up, {g: np.array([1.0, 2.0, 3.0], np.float32)})
        np.testing.assert_allclose(out, [0.5, 0.0, -0.5])
        np.testing.assert_allclose(before, [1, 1, 1])  # the earlier result is untouched
        np.testing.assert_allclose(s.run(acc), [1, 2, 3])
        with pytest.raises(gf.errors.InvalidArgumentError, match="same shape"):
            s.run(up, {g: np.ones(2, np.float32)})


def test_update_of_uninitialized_variable_fails_clearly():
    from graphflow.ops import training_ops

    w = gf.Variable(np.ones(3, np.float32), name="w")
    up = training_ops.apply_gradient_descent(w, 0.1, np.ones(3, np.float32))
    with gf.Session() as s:
        with pytest.raises(gf.errors.FailedPreconditionError, match="uninitialized"):
            s.run(up)
