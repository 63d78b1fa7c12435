"""variable_scope / get_variable sharing rules and the initializers' statistics."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run

import graphflow as gf


def test_scopes_name_variables_and_ops():
    with gf.name_scope("ns"):
        with gf.variable_scope("foo"):
            w = gf.get_variable("w", [2, 3])
            c = gf.constant(1.0)
    # get_variable ignores name scopes; ops follow both.
    assert w.name == "foo/w:0"
    assert c.op.name == "ns/foo/Const"
    assert w in gf.global_variables() and w in gf.trainable_variables()


def test_reuse_rules_match_tf1():
    with gf.variable_scope("s"):
        w = gf.get_variable("w", [2])
    with pytest.raises(ValueError, match="already exists"):
        with gf.variable_scope("s"):
            gf.get_variable("w", [2])
    with pytest.raises(ValueError, match="does not exist"):
        with gf.variable_scope("s", reuse=True):
            gf.get_variable("v", [2])
    with gf.variable_scope("s", reuse=True):
        assert gf.get_variable("w") is w
        with gf.variable_scope("inner", reuse=False):
            # reuse stays on inside a reusing scope
            assert gf.get_variable_scope().reuse is True
    with pytest.raises(ValueError, match="shape"):
        with gf.variable_scope("s", reuse=True):
            gf.get_variable("w", [3])
    with pytest.raises(ValueError, match="dtype"):
        with gf.variable_scope("s", reuse=True):
            gf.get_variable("w", [2], dtype=gf.float64)
    with gf.variable_scope("s", reuse=gf.AUTO_REUSE):
        assert gf.get_variable("w", [2]) is w
        fresh = gf.get_variable("fresh", [1])
    assert fresh.name == "s/fresh:0"


def test_reuse_variables_and_reentering_a_scope_object():
    with gf.variable_scope("model") as scope:
        w = gf.get_variable("w", [1])
        scope.reuse_variables()
        assert gf.get_variable("w") is w
    with gf.variable_scope(scope, reuse=True):
        assert gf.get_variable("w") is w
        assert gf.constant(0).op.name.startswith("model/")


def test_default_names_are_uniquified():
    names = []
    for _ in range(3):
        with gf.variable_scope(None, default_name="dense"):
            names.append(gf.get_variable("kernel", [1]).op.name)
    assert names == ["dense/kernel", "dense_1/kernel", "dense_2/kernel"]
    with pytest.raises(ValueError):
        with gf.variable_scope(None):
            pass


def test_scope_initializer_regularizer_and_dtype_defaults():
    def reg(v):
        return gf.reduce_sum(gf.cast(v, gf.float32)) * 0.5

    with gf.variable_scope("r", initializer=gf.constant_initializer(2), regularizer=reg):
        v = gf.get_variable("v", [3])
        i = gf.get_variable("i", [2], dtype=gf.int32)
    losses = gf.get_collection(gf.GraphKeys.REGULARIZATION_LOSSES)
    assert len(losses) == 2
    out = run([v, i, losses[0]])
    np.testing.assert_array_equal(out[0], [2, 2, 2])
    np.testing.assert_array_equal(out[1], [2, 2])
    assert out[2] == 3.0


def test_initializer_values_and_tensors():
    a = gf.get_variable("a", initializer=gf.constant([1.0, 2.0]))
    b = gf.get_variable("b", initializer=np.array([[1, 2]], np.int64))
    z = gf.get_variable("z", [2], dtype=gf.int32)
    assert a.shape.as_list() == [2] and b.dtype == gf.int64
    out = run([a, b, z])
    np.testing.assert_array_equal(out[2], [0, 0])
    with pytest.raises(ValueError, match="fully defined"):
        gf.get_variable("bad", [None, 2])
    t = gf.get_variable("t", [1], trainable=False)
    assert t not in gf.trainable_variables()


def _sample(init, shape, dtype=gf.float32):
    gf.reset_default_graph()
    gf.set_random_seed(7)
    v = gf.get_variable("v", shape, dtype=dtype, initializer=init)
    return run(v)


def test_initializer_statistics():
    fan_in, fan_out = 200, 300
    x = _sample(gf.glorot_uniform_initializer(), [fan_in, fan_out])
    limit = np.sqrt(6 / (fan_in + fan_out))
    assert np.abs(x).max() <= limit and abs(x.std() - limit / np.sqrt(3)) < 0.01 * limit * 5
    x = _sample(gf.glorot_normal_initializer(), [fan_in, fan_out])
    assert abs(x.std() - np.sqrt(2 / (fan_in + fan_out))) < 0.005
    x = _sample(gf.initializers.he_normal(), [fan_in, fan_out])
    assert abs(x.std() - np.sqrt(2 / fan_in)) < 0.005
    x = _sample(gf.initializers.he_uniform(), [fan_in, fan_out])
    assert np.abs(x).max() <= np.sqrt(6 / fan_in)
    x = _sample(gf.variance_scaling_initializer(scale=3.0, mode="fan_out",
                                                distribution="untruncated_normal"), [50, 400])
    assert abs(x.std() - np.sqrt(3 / 400)) < 0.005
    # conv kernels count their receptive field into the fans
    x = _sample(gf.variance_scaling_initializer(2.0, "fan_in", "truncated_normal"),
                [5, 5, 16, 32])
    assert abs(x.std() - np.sqrt(2 / (5 * 5 * 16))) < 0.01
    x = _sample(gf.random_normal_initializer(1.0, 0.5), [100, 100])
    assert abs(x.mean() - 1) < 0.02 and abs(x.std() - 0.5) < 0.02
    x = _sample(gf.truncated_normal_initializer(0.0, 1.0), [100, 100])
    assert np.abs(x).max() <= 2.0
    x = _sample(gf.random_uniform_initializer(-3, 3), [100, 100])
    assert x.min() >= -3 and x.max() < 3
    assert (_sample(gf.ones_initializer(), [2]) == 1).all()
    assert (_sample(gf.zeros_initializer(), [2]) == 0).all()


@pytest.mark.parametrize("shape", [[4, 3], [3, 4], [2, 3, 4]])
def test_orthogonal_initializer(shape):
    x = _sample(gf.orthogonal_initializer(gain=2.0), shape, gf.float64)
    m = x.reshape(-1, shape[-1])
    if m.shape[0] >= m.shape[1]:
        np.testing.assert_allclose(m.T @ m, 4 * np.eye(m.shape[1]), atol=1e-10)
    else:
        np.testing.assert_allclose(m @ m.T, 4 * np.eye(m.shape[0]), atol=1e-10)
    with pytest.raises(ValueError):
        _sample(gf.orthogonal_initializer(), [3])


def test_seeded_initializers_are_deterministic():
    a = _sample(gf.glorot_uniform_initializer(seed=3), [3, 3])
    b = _sample(gf.glorot_uniform_initializer(seed=3), [3, 3])
    c = _sample(gf.glorot_uniform_initializer(seed=4), [3, 3])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_initializer_config_round_trip():
    init = gf.variance_scaling_initializer(2.0, "fan_avg", "uniform", seed=1)
    again = type(init).from_config(init.get_config())
    assert again.get_config() == init.get_config()
    with pytest.raises(ValueError):
        gf.variance_scaling_initializer(mode="fan_sideways")


def test_qr_op_reconstructs_its_input():
    a = np.random.default_rng(0).standard_normal((5, 3))
    q, r = gf.qr(a)
    qv, rv = run([q, r])
    np.testing.assert_allclose(qv @ rv, a, atol=1e-12)
    assert q.shape.as_list() == [5, 3] and r.shape.as_list() == [3, 3]


def test_default_names_skip_names_taken_explicitly():
    with gf.variable_scope("dense_1"):
        gf.get_variable("kernel", [1])
    names = []
    for _ in range(2):
        with gf.variable_scope(None, default_name="dense"):
            names.append(gf.get_variable("kernel", [1]).op.name)
    assert names == ["dense/kernel", "dense_2/kernel"]
