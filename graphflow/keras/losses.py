"""``gf.keras.losses``: per-sample losses by Keras name, as functions and classes.

A loss function ``fn(y_true, y_pred)`` returns one value per sample (the mean
over the last axis where Keras takes it); a compiled model averages it over the
batch. Probabilities from a ``Softmax``/``Sigmoid`` op are turned back into
their logits for a stable cross-entropy, exactly as TF1's Keras backend does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphflow.framework import dtypes as _dt
from graphflow.framework.graph import Tensor, convert_to_tensor
from graphflow.keras import backend
from graphflow.ops import array_ops, math_ops, nn_ops


def _pair(y_true: Any, y_pred: Any) -> tuple[Tensor, Tensor]:
    y_pred = convert_to_tensor(y_pred)
    y_true = convert_to_tensor(y_true)
    if y_true.dtype is not y_pred.dtype:
        y_true = math_ops.cast(y_true, y_pred.dtype)
    return y_true, y_pred


def mean_squared_error(y_true: Any, y_pred: Any) -> Tensor:
    """``mean((y_pred - y_true)^2, axis=-1)``."""
    y_true, y_pred = _pair(y_true, y_pred)
    return math_ops.reduce_mean(math_ops.squared_difference(y_pred, y_true), axis=-1)


def mean_absolute_error(y_true: Any, y_pred: Any) -> Tensor:
    """``mean(|y_pred - y_true|, axis=-1)``."""
    y_true, y_pred = _pair(y_true, y_pred)
    return math_ops.reduce_mean(math_ops.abs(y_pred - y_true), axis=-1)


def _eps(t: Tensor) -> Tensor:
    from graphflow.ops.constant_op import constant

    return constant(backend.epsilon(), dtype=t.dtype)


def categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False,
                             axis: int = -1) -> Tensor:
    """Cross-entropy with one-hot (or soft) targets, over ``axis``."""
    y_true, y_pred = _pair(y_true, y_pred)
    if from_logits:
        return nn_ops.softmax_cross_entropy_with_logits_v2(labels=y_true, logits=y_pred,
                                                           axis=axis)
    if y_pred.op.type == "Softmax" and len(y_pred.op.inputs) == 1:
        return nn_ops.softmax_cross_entropy_with_logits_v2(
            labels=y_true, logits=y_pred.op.inputs[0], axis=axis)
    y_pred = y_pred / math_ops.reduce_sum(y_pred, axis, keepdims=True)
    eps = _eps(y_pred)
    y_pred = math_ops.clip_by_value(y_pred, eps, 1.0 - eps)
    return -math_ops.reduce_sum(y_true * math_ops.log(y_pred), axis)


def sparse_categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False,
                                    axis: int = -1) -> Tensor:
    """Cross-entropy with integer class targets (shape of y_pred without its last dim,
    or with a trailing 1)."""
    y_pred = convert_to_tensor(y_pred)
    y_true = convert_to_tensor(y_true)
    if axis != -1:
        raise NotImplementedError("sparse_categorical_crossentropy: only axis=-1")
    logits = y_pred
    if not from_logits:
        if y_pred.op.type == "Softmax" and len(y_pred.op.inputs) == 1:
            logits = y_pred.op.inputs[0]
        else:
            eps = _eps(y_pred)
            logits = math_ops.log(math_ops.clip_by_value(y_pred, eps, 1.0 - eps))
    n = logits.shape.values[-1] if logits.shape.ndims else None
    if n is None:
        raise ValueError("sparse_categorical_crossentropy needs the number of classes known")
    labels = array_ops.reshape(math_ops.cast(y_true, _dt.int64), [-1])
    flat = array_ops.reshape(logits, [-1, n])
    res = nn_ops.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=flat)
    rank = logits.shape.ndims
    if rank is not None and rank >= 3:
        return array_ops.reshape(res, array_ops.shape(logits)[:-1])
    return res


def binary_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> Tensor:
    """Mean over the last axis of the element-wise binary cross-entropy."""
    y_true, y_pred = _pair(y_true, y_pred)
    if from_logits:
        logits = y_pred
    elif y_pred.op.type == "Sigmoid" and len(y_pred.op.inputs) == 1:
        logits = y_pred.op.inputs[0]
    else:
        eps = _eps(y_pred)
        p = math_ops.clip_by_value(y_pred, eps, 1.0 - eps)
        logits = math_ops.log(p / (1.0 - p))
    return math_ops.reduce_mean(
        nn_ops.sigmoid_cross_entropy_with_logits(labels=y_true, logits=logits), axis=-1)


class Loss:
    """Base of loss classes: ``loss(y_true, y_pred)`` is the batch mean of :meth:`call`."""

    fn: Callable[..., Tensor] = staticmethod(mean_squared_error)

    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        self.name = name or self.fn.__name__
        self._kwargs = kwargs

    def call(self, y_true: Any, y_pred: Any) -> Tensor:
        """The per-sample losses."""
        return type(self).fn(y_true, y_pred, **self._kwargs)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Tensor:
        per_sample = self.call(y_true, y_pred)
        if sample_weight is not None:
            per_sample = per_sample * sample_weight
        return math_ops.reduce_mean(per_sample)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, **self._kwargs}


class MeanSquaredError(Loss):
    """Mean squared error."""

    fn = staticmethod(mean_squared_error)


class MeanAbsoluteError(Loss):
    """Mean absolute error."""

    fn = staticmethod(mean_absolute_error)


class CategoricalCrossentropy(Loss):
    """Categorical cross-entropy; ``from_logits`` for unnormalized predictions."""

    fn = staticmethod(categorical_crossentropy)

    def __init__(self, from_logits: bool = False, name: str | None = None) -> None:
        super().__init__(name=name, from_logits=bool(from_logits))


class SparseCategoricalCrossentropy(Loss):
    """Sparse categorical cross-entropy; ``from_logits`` for unnormalized predictions."""

    fn = staticmethod(sparse_categorical_crossentropy)

    def __init__(self, from_logits: bool = False, name: str | None = None) -> None:
        super().__init__(name=name, from_logits=bool(from_logits))


class BinaryCrossentropy(Loss):
    """Binary cross-entropy; ``from_logits`` for unnormalized predictions."""

    fn = staticmethod(binary_crossentropy)

    def __init__(self, from_logits: bool = False, name: str | None = None) -> None:
        super().__init__(name=name, from_logits=bool(from_logits))


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error

_FUNCTIONS: dict[str, Callable[..., Tensor]] = {
    "mean_squared_error": mean_squared_error, "mse": mean_squared_error,
    "MSE": mean_squared_error, "mean_absolute_error": mean_absolute_error,
    "mae": mean_absolute_error, "MAE": mean_absolute_error,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "binary_crossentropy": binary_crossentropy,
}
_CLASSES: dict[str, type[Loss]] = {
    c.__name__: c for c in (MeanSquaredError, MeanAbsoluteError, CategoricalCrossentropy,
                            SparseCategoricalCrossentropy, BinaryCrossentropy)}


def get(identifier: Any) -> Callable[..., Tensor]:
    """A per-sample loss function from a Keras name, a Loss object, a dict or a callable.

    Raises:
      ValueError: for an unknown name.
    """
    if isinstance(identifier, str):
        try:
            return _FUNCTIONS[identifier]
        except KeyError:
            raise ValueError(f"Unknown loss function: {identifier!r}; known: "
                             f"{', '.join(sorted(_FUNCTIONS))}") from None
    if isinstance(identifier, dict):
        return deserialize(identifier).call
    if isinstance(identifier, Loss):
        return identifier.call
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret loss function identifier: {identifier!r}")


def serialize(loss: Any) -> Any:
    """A JSON-able form of a loss (a name or a class dict), or None if it has none."""
    if isinstance(loss, str):
        return loss
    if type(loss) in _CLASSES.values():
        return {"class_name": type(loss).__name__, "config": loss.get_config()}
    for name, fn in _FUNCTIONS.items():
        if fn is loss:
            return name
    return None


def deserialize(config: Any) -> Any:
    """A loss from :func:`serialize` output.

    Raises:
      ValueError: for an unknown name or class.
    """
    if isinstance(config, str):
        get(config)
        return config
    if isinstance(config, dict) and config.get("class_name") in _CLASSES:
        cfg = dict(config.get("config") or {})
        return _CLASSES[config["class_name"]](**cfg)
    raise ValueError(f"Unknown loss: {config!r}")


__all__ = ["BinaryCrossentropy", "CategoricalCrossentropy", "Loss", "MAE", "MSE",
           "MeanAbsoluteError", "MeanSquaredError", "SparseCategoricalCrossentropy",
           "binary_crossentropy", "categorical_crossentropy", "deserialize", "get", "mae",
           "mean_absolute_error", "mean_squared_error", "mse", "serialize",
           "sparse_categorical_crossentropy"]
