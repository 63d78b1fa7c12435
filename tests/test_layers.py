"""gf.layers: TF1 variable names, reuse, shapes, values against NumPy, training flags."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run

import graphflow as gf

rng = np.random.default_rng(0)


def test_dense_names_values_and_uniquifying():
    x = gf.placeholder(gf.float32, [None, 4], name="x")
    y = gf.layers.dense(x, 3, activation=gf.nn.relu)
    z = gf.layers.dense(y, 2, use_bias=False)
    names = [v.op.name for v in gf.global_variables()]
    assert names == ["dense/kernel", "dense/bias", "dense_1/kernel"]
    assert y.shape.as_list() == [None, 3] and y.op.type == "Relu"
    assert y.op.name.startswith("dense/")
    xv = rng.standard_normal((5, 4)).astype(np.float32)
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        k0, b0, k1, yv, zv = s.run([gf.global_variables()[0], gf.global_variables()[1],
                                    gf.global_variables()[2], y, z], {x: xv})
    np.testing.assert_allclose(yv, np.maximum(xv @ k0 + b0, 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(zv, yv @ k1, rtol=1e-5, atol=1e-6)


def test_dense_reuse_by_name_and_by_object():
    x = gf.placeholder(gf.float32, [None, 4])
    a = gf.layers.dense(x, 3, name="fc")
    b = gf.layers.dense(x, 3, name="fc", reuse=True)
    assert len(gf.trainable_variables()) == 2
    with pytest.raises(ValueError, match="already exists"):
        gf.layers.dense(x, 3, name="fc")
    layer = gf.layers.Dense(5)
    layer(x)
    layer(x)
    assert len(layer.trainable_weights) == 2 and len(gf.trainable_variables()) == 4
    xv = rng.standard_normal((2, 4)).astype(np.float32)
    av, bv = run([a, b], {x: xv})
    np.testing.assert_array_equal(av, bv)


def test_dense_on_rank3_and_unknown_last_dim():
    x = gf.placeholder(gf.float32, [2, 3, 4])
    y = gf.layers.dense(x, 5)
    assert y.shape.as_list() == [2, 3, 5]
    with pytest.raises(ValueError, match="last dimension"):
        gf.layers.dense(gf.placeholder(gf.float32, [None, None]), 2)


def _np_conv_same(x, k):
    kh, kw = k.shape[:2]
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    xp = np.pad(x, ((0, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)))
    out = np.zeros(x.shape[:3] + (k.shape[3],))
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            out[:, i, j] = np.tensordot(xp[:, i:i + kh, j:j + kw], k, axes=3)
    return out


def test_conv_pool_flatten_stack():
    x = gf.placeholder(gf.float32, [None, 6, 6, 2])
    c = gf.layers.conv2d(x, 3, 3, padding="same", activation=gf.nn.relu)
    p = gf.layers.max_pooling2d(c, 2, 2)
    a = gf.layers.average_pooling2d(c, 2, 2, padding="same")
    f = gf.layers.flatten(p)
    assert [v.op.name for v in gf.global_variables()] == ["conv2d/kernel", "conv2d/bias"]
    assert gf.global_variables()[0].shape.as_list() == [3, 3, 2, 3]
    assert c.shape.as_list() == [None, 6, 6, 3]
    assert p.shape.as_list() == [None, 3, 3, 3] and a.shape.as_list() == [None, 3, 3, 3]
    assert f.shape.as_list() == [None, 27]
    xv = rng.standard_normal((2, 6, 6, 2)).astype(np.float32)
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        k, b, cv, fv = s.run([gf.global_variables()[0], gf.global_variables()[1], c, f],
                             {x: xv})
    ref = np.maximum(_np_conv_same(xv.astype(np.float64), k.astype(np.float64)) + b, 0)
    np.testing.assert_allclose(cv, ref, rtol=1e-4, atol=1e-5)
    pooled = ref.reshape(2, 3, 2, 3, 2, 3).max(axis=(2, 4))
    np.testing.assert_allclose(fv, pooled.reshape(2, -1), rtol=1e-4, atol=1e-5)


def test_conv_arguments_are_validated():
    x = gf.placeholder(gf.float32, [None, 6, 6, 2])
    with pytest.raises(ValueError, match="padding"):
        gf.layers.conv2d(x, 3, 3, padding="full")
    with pytest.raises(ValueError, match="rank 4"):
        gf.layers.conv2d(gf.placeholder(gf.float32, [None, 6]), 3, 3)
    with pytest.raises(ValueError):
        gf.layers.conv2d(x, 3, (3, 3, 3))


def test_dropout_training_flag_python_and_tensor():
    x = gf.ones([1000])
    assert gf.layers.dropout(x, 0.5, training=False).op.type == "Identity"
    training = gf.placeholder_with_default(False, [])
    y = gf.layers.dropout(x, 0.5, training=training, seed=1)
    off = run(y)
    np.testing.assert_array_equal(off, np.ones(1000))
    on = run(y, {training: True})
    assert set(np.unique(on)) <= {0.0, 2.0} and 300 < np.count_nonzero(on) < 700


def test_batch_normalization_training_inference_and_updates():
    x = gf.placeholder(gf.float64, [None, 3])
    training = gf.placeholder(gf.bool, [])
    y = gf.layers.batch_normalization(x, momentum=0.9, training=training)
    names = sorted(v.op.name for v in gf.global_variables())
    assert names == ["batch_normalization/beta", "batch_normalization/gamma",
                     "batch_normalization/moving_mean", "batch_normalization/moving_variance"]
    assert len(gf.trainable_variables()) == 2
    updates = gf.get_collection(gf.GraphKeys.UPDATE_OPS)
    assert len(updates) == 2
    xv = rng.standard_normal((8, 3)) * 3 + 1
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        out, _ = s.run([y, updates], {x: xv, training: True})
        mu, var = xv.mean(0), xv.var(0)
        np.testing.assert_allclose(out, (xv - mu) / np.sqrt(var + 1e-3), rtol=1e-6)
        by_name = {v.op.name.split("/")[-1]: v for v in gf.global_variables()}
        np.testing.assert_allclose(s.run(by_name["moving_mean"]), 0.1 * mu, rtol=1e-6)
        # Inference uses the moving statistics and updates nothing.
        inf, _ = s.run([y, updates], {x: xv, training: False})
        mv = by_name["moving_variance"]
        mvv = s.run(mv)
        np.testing.assert_allclose(inf, (xv - 0.1 * mu) / np.sqrt(mvv + 1e-3), rtol=1e-6)
        np.testing.assert_allclose(s.run(mv), 0.9 + 0.1 * var, rtol=1e-6)


def test_layer_properties_and_regularizers():
    x = gf.placeholder(gf.float32, [None, 4])
    layer = gf.layers.Dense(2, kernel_regularizer=lambda w: gf.reduce_sum(gf.square(w)),
                            name="reg")
    layer(x)
    assert layer.name == "reg" and len(layer.weights) == 2 and len(layer.losses) == 1
    assert gf.get_collection(gf.GraphKeys.REGULARIZATION_LOSSES) == layer.losses
    frozen = gf.layers.Dense(2, trainable=False)
    frozen(x)
    assert frozen.trainable_weights == [] and len(frozen.non_trainable_weights) == 2
