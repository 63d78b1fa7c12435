"""gf.train: minimize/compute/apply, the global step, clipping, schedules, training behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest

import graphflow as gf

OPTIMIZERS = {
    "sgd": lambda: gf.train.GradientDescentOptimizer(0.1),
    "momentum": lambda: gf.train.MomentumOptimizer(0.05, 0.9),
    "nesterov": lambda: gf.train.MomentumOptimizer(0.05, 0.9, use_nesterov=True),
    "adam": lambda: gf.train.AdamOptimizer(0.05),
    "rmsprop": lambda: gf.train.RMSPropOptimizer(0.01, momentum=0.5),
    "centered_rmsprop": lambda: gf.train.RMSPropOptimizer(0.01, centered=True),
    "adagrad": lambda: gf.train.AdagradOptimizer(0.3),
}


def _logistic_problem(seed=0, n=64, d=5):
    """A linearly separable binary problem and a logistic-regression loss on it."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x @ rng.normal(size=(d, 1)) > 0).astype(np.float32)
    w = gf.Variable(np.zeros((d, 1), np.float32), name="w")
    b = gf.Variable(np.zeros((1,), np.float32), name="b")
    logits = gf.matmul(gf.constant(x), w) + b
    loss = gf.reduce_mean(gf.nn.sigmoid_cross_entropy_with_logits(labels=gf.constant(y),
                                                                   logits=logits))
    return w, b, loss


# --- training behaviour -------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_small_model_learns(name):
    w, b, loss = _logistic_problem()
    train = OPTIMIZERS[name]().minimize(loss)
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        first = s.run(loss)
        losses = [s.run([train, loss])[1] for _ in range(60)]
        last = s.run(loss)
    assert first == pytest.approx(math.log(2), rel=1e-5)
    assert losses[0] == first
    assert last < 0.6 * first, (name, first, last)


def test_fetching_train_op_and_loss_gives_the_loss_before_the_update():
    w = gf.Variable(np.float32(3.0), name="w")
    loss = gf.square(w)
    train = gf.train.GradientDescentOptimizer(0.25).minimize(loss)
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        _, l0 = s.run([train, loss])
        assert l0 == 9.0
        assert s.run(w) == 1.5  # 3 - 0.25 * 2 * 3
        l1, _ = s.run([loss, train])
        assert l1 == 2.25
        assert s.run(loss) == pytest.approx(0.5625)


def test_non_trainable_and_unlisted_variables_are_untouched():
    w = gf.Variable(np.ones(3, np.float32), name="w")
    b = gf.Variable(np.ones(3, np.float32), name="b")
    scale = gf.Variable(np.float32(2.0), trainable=False, name="scale")
    loss = gf.reduce_sum(gf.square(w * scale + b))
    train_all = gf.train.GradientDescentOptimizer(0.01).minimize(loss)
    train_w = gf.train.GradientDescentOptimizer(0.01).minimize(loss, var_list=[w])
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        s.run(train_all)
        assert s.run(scale) == 2.0
        assert not np.allclose(s.run(b), 1.0)
        b_before = s.run(b)
        s.run(train_w)
        np.testing.assert_array_equal(s.run(b), b_before)
        assert s.run(scale) == 2.0


def test_minimize_with_var_list_and_global_step():
    w = gf.Variable(np.ones(2, np.float32), name="w")
    b = gf.Variable(np.ones(2, np.float32), name="b")
    loss = gf.reduce_sum(gf.square(w)) + gf.reduce_sum(gf.square(b))
    step = gf.train.get_or_create_global_step()
    train = gf.train.GradientDescentOptimizer(0.5).minimize(loss, global_step=step,
                                                           var_list=(w,))
    assert train.type == "AssignAdd" and train.name == "GradientDescent"
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        assert s.run(step) == 0
        for i in range(1, 4):
            s.run(train)
            assert s.run(step) == i
            assert gf.train.global_step(s, step) == i
        np.testing.assert_array_equal(s.run(w), [0, 0])
        np.testing.assert_array_equal(s.run(b), [1, 1])


def test_global_step_increments_after_the_updates():
    w = gf.Variable(np.float32(1.0), name="w")
    step = gf.train.get_or_create_global_step()
    train = gf.train.AdamOptimizer(0.1).minimize(gf.square(w), global_step=step)
    g = gf.get_default_graph()
    update = g.get_operation_by_name("Adam/update")
    assert update.type == "NoOp" and update in train.control_inputs
    assert g.get_operation_by_name("Adam/update_w/ApplyAdam") in update.control_inputs


def test_compute_and_apply_split():
    w = gf.Variable(np.array([3.0, -4.0], np.float32), name="w")
    u = gf.Variable(np.float32(1.0), name="u")
    loss = gf.reduce_sum(gf.square(w))
    opt = gf.train.GradientDescentOptimizer(0.1)
    gvs = opt.compute_gradients(loss)
    assert [v for _, v in gvs] == [w, u]
    assert gvs[1][0] is None  # u does not affect the loss
    clipped = [(gf.clip_by_norm(g, 1.0), v) for g, v in gvs if g is not None]
    train = opt.apply_gradients(clipped, name="clipped_step")
    assert train.name == "clipped_step"
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        np.testing.assert_allclose(s.run(gvs[0][0]), [6.0, -8.0])
        s.run(train)
        np.testing.assert_allclose(s.run(w), [3.0 - 0.06, -4.0 + 0.08], rtol=1e-6)
        assert s.run(u) == 1.0


def test_apply_gradients_with_global_step_and_a_partial_none():
    w = gf.Variable(np.float32(1.0), name="w")
    b = gf.Variable(np.float32(1.0), name="b")
    step = gf.train.create_global_step()
    opt = gf.train.MomentumOptimizer(0.1, 0.9)
    train = opt.apply_gradients([(gf.constant(2.0), w), (None, b)], global_step=step)
    assert opt.get_slot(b, "momentum") is None  # no slot for a variable without a gradient
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        s.run(train)
        s.run(train)
        assert s.run(w) == pytest.approx(1.0 - 0.1 * 2.0 - 0.1 * (0.9 * 2.0 + 2.0))
        assert s.run(b) == 1.0 and s.run(step) == 2


def test_grad_loss_and_gate_graph():
    w = gf.Variable(np.array([1.0, 2.0], np.float32), name="w")
    y = w * 3.0
    opt = gf.train.GradientDescentOptimizer(1.0)
    gvs = opt.compute_gradients(y, grad_loss=gf.constant([1.0, -1.0]),
                                gate_gradients=gf.train.Optimizer.GATE_GRAPH)
    assert gvs[0][0].op.type == "Identity"  # gated by tuple()
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        np.testing.assert_allclose(s.run(gvs[0][0]), [3.0, -3.0])


def test_hyperparameters_may_be_tensors_or_callables():
    w = gf.Variable(np.float64(1.0), name="w")
    lr = gf.placeholder(gf.float32, [], name="lr")
    train = gf.train.GradientDescentOptimizer(lr).minimize(2.0 * w)
    train2 = gf.train.MomentumOptimizer(lambda: 0.5, lambda: 0.0).minimize(2.0 * w)
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        s.run(train, {lr: 0.25})
        assert s.run(w) == 0.5
        s.run(train2)
        assert s.run(w) == -0.5


def test_constraint_is_applied_after_the_update():
    w = gf.Variable(np.array([1.0, 2.0], np.float32), name="w",
                    constraint=lambda t: gf.clip_by_value(t, 0.0, 1.5))
    train = gf.train.GradientDescentOptimizer(1.0).minimize(-gf.reduce_sum(w))
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        s.run(train)
        np.testing.assert_allclose(s.run(w), [1.5, 1.5])


# --- errors --------------------------------------------------------------------------------
def test_no_variables_to_optimize():
    loss = gf.reduce_sum(gf.constant([1.0, 2.0]))
    with pytest.raises(ValueError, match="No variables to optimize"):
        gf.train.GradientDescentOptimizer(0.1).minimize(loss)
    with pytest.raises(ValueError, match="No variables to optimize"):
        gf.train.AdamOptimizer().compute_gradients(loss, var_list=[])


def test_no_gradient_for_any_variable():
    w = gf.Variable(np.float32(1.0), name="w")
    gf.Variable(np.float32(1.0), name="v")
    loss = gf.constant(3.0) * 2.0
    with pytest.raises(ValueError, match="No gradients provided for any variable"):
        gf.train.GradientDescentOptimizer(0.1).minimize(loss)
    # Through an integer path no gradient flows either.
    loss2 = gf.cast(gf.cast(w, gf.int32), gf.float32)
    with pytest.raises(ValueError, match="No gradients provided for any variable"):
        gf.train.AdamOptimizer().minimize(loss2, var_list=[w])
    with pytest.raises(ValueError, match="No gradients provided for any variable"):
        gf.train.AdamOptimizer().apply_gradients([(None, w)])
    with pytest.raises(ValueError, match="No variables provided"):
        gf.train.AdamOptimizer().apply_gradients([])


def test_invalid_arguments():
    w = gf.Variable(np.float32(1.0), name="w")
    opt = gf.train.GradientDescentOptimizer(0.1)
    with pytest.raises(ValueError, match="Invalid type int32"):
        opt.minimize(gf.constant(1), var_list=[w])
    with pytest.raises(ValueError, match="gate_gradients"):
        opt.minimize(gf.square(w), gate_gradients=7)
    t = gf.constant(2.0)
    with pytest.raises(NotImplementedError, match="Tensor"):
        opt.apply_gradients([(gf.constant(1.0), t)])
    with pytest.raises(TypeError, match="unsupported type"):
        opt.compute_gradients(gf.square(w), var_list=["w"])


# --- global step -----------------------------------------------------------------------------
def test_global_step_helpers():
    assert gf.train.get_global_step() is None
    with gf.name_scope("somewhere"):
        step = gf.train.get_or_create_global_step()
    assert step.op.name == "global_step" and step.dtype == gf.int64
    assert step.shape == gf.TensorShape([]) and not step.trainable
    assert gf.get_collection(gf.GraphKeys.GLOBAL_STEP) == [step]
    assert step in gf.global_variables() and step not in gf.trainable_variables()
    assert gf.train.get_or_create_global_step() is step
    assert gf.train.get_global_step() is step
    with pytest.raises(ValueError, match="already exists"):
        gf.train.create_global_step()
    other = gf.Graph()
    with other.as_default():
        assert gf.train.get_global_step() is None
    s2 = gf.train.create_global_step(other)
    assert s2.graph is other and gf.train.get_global_step(other) is s2


def test_global_step_found_by_name_and_checked():
    step = gf.Variable(np.int32(0), name="global_step", trainable=False)
    assert gf.train.get_global_step() is step.op.outputs[0]
    gf.reset_default_graph()
    gf.Variable(np.float32(0), name="global_step")
    with pytest.raises(TypeError, match="integer"):
        gf.train.get_global_step()
    gf.reset_default_graph()
    gf.add_to_collection(gf.GraphKeys.GLOBAL_STEP, gf.Variable(np.zeros(2, np.int64)))
    with pytest.raises(TypeError, match="scalar"):
        gf.train.get_global_step()


# --- clipping ----------------------------------------------------------------------------------
def _np_norm(*ts):
    return math.sqrt(sum(float(np.sum(np.square(t.astype(np.float64)))) for t in ts))


def test_clip_by_norm():
    x = np.array([[3.0, 4.0], [0.0, 0.5]], np.float32)
    with gf.Session() as s:
        out = s.run(gf.clip_by_norm(x, 2.0))
        np.testing.assert_allclose(out, x * 2.0 / _np_norm(x), rtol=1e-6)
        np.testing.assert_allclose(s.run(gf.clip_by_norm(x, 10.0)), x)
        rows = s.run(gf.clip_by_norm(x, 1.0, axes=[1]))
        np.testing.assert_allclose(rows, [[0.6, 0.8], [0.0, 0.5]], rtol=1e-6)
        np.testing.assert_array_equal(s.run(gf.clip_by_norm(np.zeros(3, np.float32), 1.0)), 0)
    # The gradient through a zero tensor stays finite (TF1's double where).
    v = gf.Variable(np.zeros(3, np.float32))
    (g,) = gf.gradients(gf.reduce_sum(gf.clip_by_norm(v, 1.0)), [v])
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        assert np.all(np.isfinite(s.run(g)))


def test_global_norm_and_clip_by_global_norm():
    a = np.array([3.0, 0.0], np.float32)
    b = np.array([[4.0], [12.0]], np.float32)
    norm = _np_norm(a, b)  # 13
    with gf.Session() as s:
        assert s.run(gf.global_norm([a, None, b])) == pytest.approx(norm)
        clipped, n = gf.clip_by_global_norm([a, None, b], 6.5)
        assert clipped[1] is None
        ca, cb, nv = s.run([clipped[0], clipped[2], n])
        assert nv == pytest.approx(norm)
        np.testing.assert_allclose(ca, a * 0.5, rtol=1e-6)
        np.testing.assert_allclose(cb, b * 0.5, rtol=1e-6)
        unclipped, _ = gf.clip_by_global_norm([a, b], 100.0)
        np.testing.assert_allclose(s.run(unclipped[1]), b)
        given, n2 = gf.clip_by_global_norm([a], 1.0, use_norm=gf.constant(2.0))
        np.testing.assert_allclose(s.run(given[0]), a / 2.0)
        assert s.run(n2) == 2.0
        nan, _ = gf.clip_by_global_norm([np.array([np.inf, 1.0], np.float32)], 1.0)
        assert np.all(np.isnan(s.run(nan[0])))
    assert clipped[0].op.name == "clip_by_global_norm/clip_by_global_norm/_0"
    with pytest.raises(TypeError, match="sequence"):
        gf.clip_by_global_norm(gf.constant([1.0]), 1.0)
    with pytest.raises(TypeError, match="sequence"):
        gf.global_norm(gf.constant([1.0]))


def test_clipped_training_step():
    w = gf.Variable(np.array([30.0, 40.0], np.float32), name="w")
    loss = 0.5 * gf.reduce_sum(gf.square(w))
    opt = gf.train.GradientDescentOptimizer(1.0)
    grads, tvars = zip(*opt.compute_gradients(loss))
    clipped, _ = gf.clip_by_global_norm(grads, 5.0)
    train = opt.apply_gradients(zip(clipped, tvars))
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        s.run(train)
        np.testing.assert_allclose(s.run(w), [27.0, 36.0], rtol=1e-6)


# --- learning-rate schedules -----------------------------------------------------------------
STEPS = [0, 1, 5, 10, 15, 20, 25, 100]


def _over_steps(make):
    step = gf.placeholder(gf.int64, [], name="step")
    lr = make(step)
    with gf.Session() as s:
        return [float(s.run(lr, {step: i})) for i in STEPS]


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_decay(staircase):
    got = _over_steps(lambda g: gf.train.exponential_decay(0.1, g, 10, 0.5, staircase=staircase))
    want = [0.1 * 0.5 ** (math.floor(i / 10) if staircase else i / 10) for i in STEPS]
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("staircase", [False, True])
def test_natural_exp_and_inverse_time_decay(staircase):
    got = _over_steps(lambda g: gf.train.natural_exp_decay(0.1, g, 10, 0.5, staircase))
    p = [math.floor(i / 10) if staircase else i / 10 for i in STEPS]
    np.testing.assert_allclose(got, [0.1 * math.exp(-0.5 * q) for q in p], rtol=1e-6)
    got = _over_steps(lambda g: gf.train.inverse_time_decay(0.1, g, 10, 0.5, staircase))
    np.testing.assert_allclose(got, [0.1 / (1 + 0.5 * q) for q in p], rtol=1e-6)


def test_piecewise_constant():
    got = _over_steps(lambda g: gf.train.piecewise_constant(g, [5, 15], [1.0, 0.5, 0.1]))
    want = [1.0 if i <= 5 else 0.5 if i <= 15 else 0.1 for i in STEPS]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(ValueError, match="1 less"):
        gf.train.piecewise_constant(gf.constant(1), [5], [1.0])
    with pytest.raises(ValueError, match="same dtype"):
        gf.train.piecewise_constant(gf.constant(1), [5], [1.0, 2])


@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_cosine_decay(alpha):
    got = _over_steps(lambda g: gf.train.cosine_decay(0.1, g, 20, alpha=alpha))
    want = [0.1 * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * min(i, 20) / 20)) + alpha)
            for i in STEPS]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cycle", [False, True])
@pytest.mark.parametrize("power", [1.0, 0.5])
def test_polynomial_decay(cycle, power):
    got = _over_steps(lambda g: gf.train.polynomial_decay(0.1, g, 10, 0.01, power=power,
                                                          cycle=cycle))
    want = []
    for i in STEPS:
        steps = 10.0
        if cycle:
            steps *= 1.0 if i == 0 else math.ceil(i / 10)
            step = i
        else:
            step = min(i, 10)
        want.append((0.1 - 0.01) * (1 - step / steps) ** power + 0.01)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_schedules_need_a_global_step():
    for fn in (gf.train.exponential_decay, gf.train.inverse_time_decay,
               gf.train.natural_exp_decay):
        with pytest.raises(ValueError, match="global_step is required"):
            fn(0.1, None, 10, 0.5)
    with pytest.raises(ValueError, match="global_step is required"):
        gf.train.cosine_decay(0.1, None, 10)
    with pytest.raises(ValueError, match="global_step is required"):
        gf.train.polynomial_decay(0.1, None, 10)


def test_a_schedule_drives_the_optimizer():
    w = gf.Variable(np.float32(0.0), name="w")
    step = gf.train.get_or_create_global_step()
    lr = gf.train.exponential_decay(1.0, step, 1, 0.5, staircase=True)
    train = gf.train.GradientDescentOptimizer(lr).minimize(-w, global_step=step)
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        for _ in range(4):
            s.run(train)
        assert s.run(w) == pytest.approx(1 + 0.5 + 0.25 + 0.125)
        assert s.run(step) == 4


def test_variables_of_unknown_shape_get_slots_of_their_run_time_shape():
    init = gf.placeholder_with_default(np.ones(3, np.float32), [None])
    w = gf.Variable(init, validate_shape=False, name="w")
    opt = gf.train.AdagradOptimizer(0.5)
    train = opt.minimize(gf.reduce_sum(gf.square(w)))
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        s.run(train)
        w1, acc = s.run([w, opt.get_slot(w, "accumulator")])
    np.testing.assert_allclose(acc, [4.1] * 3, rtol=1e-6)
    np.testing.assert_allclose(w1, 1 - 0.5 * 2 / np.sqrt(4.1), rtol=1e-6)


def test_tf1_names_are_exported():
    assert gf.compat.v1.train.AdamOptimizer is gf.train.AdamOptimizer
    for name in ("GradientDescentOptimizer", "MomentumOptimizer", "AdamOptimizer",
                 "RMSPropOptimizer", "AdagradOptimizer", "Optimizer", "exponential_decay",
                 "piecewise_constant", "cosine_decay", "polynomial_decay",
                 "inverse_time_decay", "get_or_create_global_step", "get_global_step",
                 "create_global_step", "global_step"):
        assert hasattr(gf.train, name), name
    for name in ("clip_by_global_norm", "clip_by_norm", "global_norm"):
        assert callable(getattr(gf, name)), name
