"""``gf.losses``: TF1's ``tf.losses`` — weighted losses, reductions and loss collections."""

from __future__ import annotations

from typing import Any

from graphflow.framework import dtypes as _dt
from graphflow.framework.graph import GraphKeys, Tensor, get_default_graph
from graphflow.ops import array_ops, math_ops, nn_ops
from graphflow.ops.building import op_scope, to_tensor


class Reduction:
    """How a weighted loss tensor is reduced (TF1's ``tf.losses.Reduction``)."""

    NONE = "none"
    SUM = "weighted_sum"
    SUM_OVER_BATCH_SIZE = "weighted_sum_over_batch_size"
    MEAN = "weighted_mean"
    SUM_BY_NONZERO_WEIGHTS = "weighted_sum_by_nonzero_weights"
    SUM_OVER_NONZERO_WEIGHTS = SUM_BY_NONZERO_WEIGHTS

    @classmethod
    def all(cls) -> tuple[str, ...]:
        return (cls.NONE, cls.SUM, cls.MEAN, cls.SUM_OVER_BATCH_SIZE,
                cls.SUM_BY_NONZERO_WEIGHTS)

    @classmethod
    def validate(cls, key: str) -> None:
        if key not in cls.all():
            raise ValueError(f"Invalid Reduction Key {key!r}")


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    return math_ops.div_no_nan(num, den)


def _num_present(losses: Tensor, weights: Tensor) -> Tensor:
    present = math_ops.where_v2(math_ops.equal(weights, 0.0), array_ops.zeros_like(weights),
                                array_ops.ones_like(weights))
    present = math_ops.multiply(present, array_ops.ones_like(losses))
    return math_ops.reduce_sum(present)


def compute_weighted_loss(losses: Any, weights: Any = 1.0, scope: str | None = None,
                          loss_collection: str | None = GraphKeys.LOSSES,
                          reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Multiplies ``losses`` by ``weights`` and reduces them (TF1's function).

    Args:
      losses: a float tensor.
      weights: a tensor broadcastable to ``losses``.
      scope: name scope.
      loss_collection: collection the result is added to (None: none).
      reduction: a :class:`Reduction` key.

    Returns:
      The reduced loss: a scalar, or ``losses``'s shape for ``NONE``.

    Raises:
      ValueError: for an unknown reduction or unbroadcastable weights.
    """
    Reduction.validate(reduction)
    with op_scope(scope, "weighted_loss", [losses, weights]):
        losses = to_tensor(losses)
        input_dtype = losses.dtype
        if not input_dtype.is_floating:
            raise TypeError(f"losses must be a float tensor, got {input_dtype.name}")
        w = to_tensor(weights, dtype=input_dtype)
        weighted = math_ops.multiply(losses, w)
        if reduction == Reduction.NONE:
            loss = weighted
        else:
            loss = math_ops.reduce_sum(weighted)
            if reduction == Reduction.MEAN:
                loss = _safe_div(loss, math_ops.reduce_sum(
                    math_ops.multiply(array_ops.ones_like(losses), w)))
            elif reduction == Reduction.SUM_BY_NONZERO_WEIGHTS:
                loss = _safe_div(loss, _num_present(losses, w))
            elif reduction == Reduction.SUM_OVER_BATCH_SIZE:
                loss = _safe_div(loss, math_ops.cast(array_ops.size(losses), input_dtype))
        if loss_collection:
            add_loss(loss, loss_collection)
        return loss


def add_loss(loss: Tensor, loss_collection: str = GraphKeys.LOSSES) -> None:
    """Adds ``loss`` to a loss collection."""
    if loss_collection:
        get_default_graph().add_to_collection(loss_collection, loss)


def get_losses(scope: str | None = None, loss_collection: str = GraphKeys.LOSSES) -> list:
    """The losses in ``loss_collection``, optionally filtered by scope."""
    return get_default_graph().get_collection(loss_collection, scope)


def get_regularization_losses(scope: str | None = None) -> list:
    """The tensors in REGULARIZATION_LOSSES."""
    return get_default_graph().get_collection(GraphKeys.REGULARIZATION_LOSSES, scope)


def get_regularization_loss(scope: str | None = None,
                            name: str = "total_regularization_loss") -> Tensor:
    """The sum of the regularization losses (0.0 if there are none)."""
    losses = get_regularization_losses(scope)
    if losses:
        return math_ops.add_n(losses, name=name)
    from graphflow.ops.constant_op import constant

    return constant(0.0, name=name)


def get_total_loss(add_regularization_losses: bool = True, name: str = "total_loss",
                   scope: str | None = None) -> Tensor:
    """The sum of the collected losses and, by default, the regularization losses.

    Raises:
      ValueError: if there are no losses.
    """
    losses = get_losses(scope)
    if add_regularization_losses:
        losses = losses + get_regularization_losses(scope)
    if not losses:
        raise ValueError("No losses found; add some with gf.losses.* or add_loss")
    return math_ops.add_n(losses, name=name)


def _prepare(labels: Any, predictions: Any) -> tuple[Tensor, Tensor]:
    p = to_tensor(predictions, name="predictions")
    lab = to_tensor(labels, name="labels")
    if lab.dtype is not p.dtype:
        lab = math_ops.cast(lab, p.dtype)
    if not p.shape.is_compatible_with(lab.shape):
        raise ValueError(f"labels shape {lab.shape} must match predictions shape {p.shape}")
    return lab, p


def absolute_difference(labels: Any, predictions: Any, weights: Any = 1.0,
                        scope: str | None = None, loss_collection: str = GraphKeys.LOSSES,
                        reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Weighted ``|labels - predictions|``."""
    with op_scope(scope, "absolute_difference", [predictions, labels, weights]) as s:
        lab, p = _prepare(labels, predictions)
        return compute_weighted_loss(math_ops.abs(p - lab), weights, s, loss_collection,
                                     reduction)


def mean_squared_error(labels: Any, predictions: Any, weights: Any = 1.0,
                       scope: str | None = None, loss_collection: str = GraphKeys.LOSSES,
                       reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Weighted ``(labels - predictions)**2``."""
    with op_scope(scope, "mean_squared_error", [predictions, labels, weights]) as s:
        lab, p = _prepare(labels, predictions)
        return compute_weighted_loss(math_ops.squared_difference(p, lab), weights, s,
                                     loss_collection, reduction)


def huber_loss(labels: Any, predictions: Any, weights: Any = 1.0, delta: float = 1.0,
               scope: str | None = None, loss_collection: str = GraphKeys.LOSSES,
               reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Weighted Huber loss: quadratic within ``delta``, linear beyond."""
    with op_scope(scope, "huber_loss", [predictions, labels, weights]) as s:
        lab, p = _prepare(labels, predictions)
        err = math_ops.abs(p - lab)
        quad = math_ops.minimum(err, delta)
        lin = err - quad
        losses = 0.5 * quad * quad + delta * lin
        return compute_weighted_loss(losses, weights, s, loss_collection, reduction)


def log_loss(labels: Any, predictions: Any, weights: Any = 1.0, epsilon: float = 1e-7,
             scope: str | None = None, loss_collection: str = GraphKeys.LOSSES,
             reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Weighted binary log loss of probabilities ``predictions``."""
    with op_scope(scope, "log_loss", [predictions, labels, weights]) as s:
        lab, p = _prepare(labels, predictions)
        losses = -(lab * math_ops.log(p + epsilon)) - (1.0 - lab) * math_ops.log(
            1.0 - p + epsilon)
        return compute_weighted_loss(losses, weights, s, loss_collection, reduction)


def hinge_loss(labels: Any, logits: Any, weights: Any = 1.0, scope: str | None = None,
               loss_collection: str = GraphKeys.LOSSES,
               reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Weighted hinge loss with labels in {0, 1}."""
    with op_scope(scope, "hinge_loss", [logits, labels, weights]) as s:
        lab, z = _prepare(labels, logits)
        signed = 2.0 * lab - 1.0
        losses = nn_ops.relu(1.0 - signed * z)
        return compute_weighted_loss(losses, weights, s, loss_collection, reduction)


def sigmoid_cross_entropy(multi_class_labels: Any, logits: Any, weights: Any = 1.0,
                          label_smoothing: float = 0, scope: str | None = None,
                          loss_collection: str = GraphKeys.LOSSES,
                          reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Weighted sigmoid cross-entropy; labels smoothed toward 1/2."""
    with op_scope(scope, "sigmoid_cross_entropy_loss", [logits, multi_class_labels, weights]) as s:
        lab, z = _prepare(multi_class_labels, logits)
        if label_smoothing > 0:
            lab = lab * (1 - label_smoothing) + 0.5 * label_smoothing
        losses = nn_ops.sigmoid_cross_entropy_with_logits(labels=lab, logits=z)
        return compute_weighted_loss(losses, weights, s, loss_collection, reduction)


def softmax_cross_entropy(onehot_labels: Any, logits: Any, weights: Any = 1.0,
                          label_smoothing: float = 0, scope: str | None = None,
                          loss_collection: str = GraphKeys.LOSSES,
                          reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Weighted softmax cross-entropy over the last axis; labels smoothed toward uniform."""
    with op_scope(scope, "softmax_cross_entropy_loss", [logits, onehot_labels, weights]) as s:
        lab, z = _prepare(onehot_labels, logits)
        if label_smoothing > 0:
            n = z.shape.values[-1] if z.shape.ndims else None
            if n is None:
                n = math_ops.cast(array_ops.shape(z)[-1], z.dtype)
            lab = lab * (1 - label_smoothing) + label_smoothing / n
        losses = nn_ops.softmax_cross_entropy_with_logits_v2(
            labels=array_ops.stop_gradient(lab), logits=z)
        return compute_weighted_loss(losses, weights, s, loss_collection, reduction)


def sparse_softmax_cross_entropy(labels: Any, logits: Any, weights: Any = 1.0,
                                 scope: str | None = None,
                                 loss_collection: str = GraphKeys.LOSSES,
                                 reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Weighted softmax cross-entropy with integer class ``labels``."""
    with op_scope(scope, "sparse_softmax_cross_entropy_loss", [logits, labels, weights]) as s:
        z = to_tensor(logits, name="logits")
        lab = to_tensor(labels, name="labels")
        if lab.dtype not in (_dt.int32, _dt.int64):
            lab = math_ops.cast(lab, _dt.int64)
        losses = nn_ops.sparse_softmax_cross_entropy_with_logits(labels=lab, logits=z)
        return compute_weighted_loss(losses, weights, s, loss_collection, reduction)


def cosine_distance(labels: Any, predictions: Any, axis: int | None = None,
                    weights: Any = 1.0, scope: str | None = None,
                    loss_collection: str = GraphKeys.LOSSES,
                    reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS,
                    dim: int | None = None) -> Tensor:
    """Weighted ``1 - sum(labels * predictions, axis)`` of unit-normalised inputs.

    Raises:
      ValueError: if no axis is given.
    """
    axis = axis if axis is not None else dim
    if axis is None:
        raise ValueError("You must specify 'axis'.")
    with op_scope(scope, "cosine_distance_loss", [predictions, labels, weights]) as s:
        lab, p = _prepare(labels, predictions)
        losses = 1.0 - math_ops.reduce_sum(p * lab, axis=axis, keepdims=True)
        return compute_weighted_loss(losses, weights, s, loss_collection, reduction)


__all__ = [
    "Reduction", "absolute_difference", "add_loss", "compute_weighted_loss", "cosine_distance",
    "get_losses", "get_regularization_loss", "get_regularization_losses", "get_total_loss",
    "hinge_loss", "huber_loss", "log_loss", "mean_squared_error", "sigmoid_cross_entropy",
    "softmax_cross_entropy", "sparse_softmax_cross_entropy",
]
