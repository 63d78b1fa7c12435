"""gf.losses against NumPy: each loss, each reduction, weights, collections."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run

import graphflow as gf

R = gf.losses.Reduction
rng = np.random.default_rng(0)
LAB = rng.uniform(0, 1, (4, 3))
PRED = rng.uniform(0.05, 0.95, (4, 3))
W = np.array([[1.0], [0.0], [2.0], [0.5]])


def _reduce(per, w, reduction):
    weighted = per * w
    if reduction == R.NONE:
        return weighted
    total = weighted.sum()
    if reduction == R.SUM:
        return total
    if reduction == R.MEAN:
        return total / np.sum(np.ones_like(per) * w)
    if reduction == R.SUM_OVER_BATCH_SIZE:
        return total / per.size
    return total / np.count_nonzero(np.ones_like(per) * w)


CASES = {
    "mean_squared_error": (lambda lab, p, **k: gf.losses.mean_squared_error(lab, p, **k),
                           lambda lab, p: (p - lab) ** 2),
    "absolute_difference": (lambda lab, p, **k: gf.losses.absolute_difference(lab, p, **k),
                            lambda lab, p: np.abs(p - lab)),
    "huber_loss": (lambda lab, p, **k: gf.losses.huber_loss(lab, p * 4, delta=0.5, **k),
                   lambda lab, p: np.where(np.abs(4 * p - lab) <= 0.5,
                                           0.5 * (4 * p - lab) ** 2,
                                           0.5 * 0.25 + 0.5 * (np.abs(4 * p - lab) - 0.5))),
    "log_loss": (lambda lab, p, **k: gf.losses.log_loss(lab, p, **k),
                 lambda lab, p: -lab * np.log(p + 1e-7) - (1 - lab) * np.log(1 - p + 1e-7)),
    "sigmoid_cross_entropy": (
        lambda lab, p, **k: gf.losses.sigmoid_cross_entropy(lab, p, **k),
        lambda lab, z: np.maximum(z, 0) - z * lab + np.log1p(np.exp(-np.abs(z)))),
    "hinge_loss": (lambda lab, p, **k: gf.losses.hinge_loss(np.round(lab), p, **k),
                   lambda lab, z: np.maximum(0, 1 - (2 * np.round(lab) - 1) * z)),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("reduction", R.all())
def test_losses_and_reductions(name, reduction):
    build, ref = CASES[name]
    loss = build(LAB, PRED, weights=W, reduction=reduction)
    np.testing.assert_allclose(run(loss), _reduce(ref(LAB, PRED), W, reduction), rtol=2e-6)


def test_softmax_losses_with_label_smoothing():
    logits = rng.standard_normal((5, 4))
    labels = np.eye(4)[[0, 1, 3, 2, 0]]
    smooth = labels * 0.8 + 0.2 / 4
    ls = logits - logits.max(1, keepdims=True)
    logp = ls - np.log(np.exp(ls).sum(1, keepdims=True))
    got = run(gf.losses.softmax_cross_entropy(labels, logits, label_smoothing=0.2))
    np.testing.assert_allclose(got, np.mean(-(smooth * logp).sum(1)), rtol=1e-6)
    sparse = run(gf.losses.sparse_softmax_cross_entropy(np.array([0, 1, 3, 2, 0]), logits))
    np.testing.assert_allclose(sparse, np.mean(-(labels * logp).sum(1)), rtol=1e-6)


def test_cosine_distance_and_missing_axis():
    a = rng.standard_normal((3, 4))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = rng.standard_normal((3, 4))
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    got = run(gf.losses.cosine_distance(a, b, axis=1))
    np.testing.assert_allclose(got, np.mean(1 - (a * b).sum(1)), rtol=1e-6)
    with pytest.raises(ValueError, match="axis"):
        gf.losses.cosine_distance(a, b)


def test_collections_and_totals():
    a = gf.losses.mean_squared_error([1.0], [2.0])
    gf.losses.absolute_difference([1.0], [3.0], loss_collection=None)
    assert gf.losses.get_losses() == [a]
    gf.add_to_collection(gf.GraphKeys.REGULARIZATION_LOSSES, gf.constant(0.5))
    assert run(gf.losses.get_regularization_loss()) == 0.5
    assert run(gf.losses.get_total_loss()) == 1.5
    assert run(gf.losses.get_total_loss(add_regularization_losses=False)) == 1.0


def test_empty_totals_and_bad_reduction():
    assert run(gf.losses.get_regularization_loss()) == 0.0
    with pytest.raises(ValueError):
        gf.losses.get_total_loss()
    with pytest.raises(ValueError, match="Reduction"):
        gf.losses.mean_squared_error([1.0], [2.0], reduction="average")


def test_losses_are_differentiable():
    gf.test.check_gradients(
        lambda p: gf.losses.huber_loss(gf.constant(LAB), p, weights=gf.constant(W)),
        [PRED * 3])
    gf.test.check_gradients(
        lambda z: gf.losses.sigmoid_cross_entropy(gf.constant(LAB), z), [PRED])
