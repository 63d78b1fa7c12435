"""``gf.keras.metrics``: per-sample metric functions; ``"accuracy"`` picks the right one.

As TF1's Keras, ``metrics=["accuracy"]`` (or ``"acc"``) means binary accuracy
for one output unit or a binary cross-entropy loss, sparse categorical
accuracy for a sparse categorical cross-entropy loss, and categorical accuracy
otherwise. A compiled model reports each metric's batch mean, and the epoch's
mean over samples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphflow.framework import dtypes as _dt
from graphflow.framework.graph import Tensor, convert_to_tensor
from graphflow.keras import losses
from graphflow.ops import array_ops, math_ops


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> Tensor:
    """``mean(y_true == (y_pred > threshold), axis=-1)``."""
    y_pred = convert_to_tensor(y_pred)
    y_true = math_ops.cast(convert_to_tensor(y_true), y_pred.dtype)
    hit = math_ops.equal(y_true, math_ops.cast(y_pred > threshold, y_pred.dtype))
    return math_ops.reduce_mean(math_ops.cast(hit, _dt.float32), axis=-1)


def categorical_accuracy(y_true: Any, y_pred: Any) -> Tensor:
    """``argmax(y_true) == argmax(y_pred)`` over the last axis, as floats."""
    hit = math_ops.equal(math_ops.argmax(y_true, axis=-1), math_ops.argmax(y_pred, axis=-1))
    return math_ops.cast(hit, _dt.float32)


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> Tensor:
    """``y_true == argmax(y_pred)`` (a trailing 1 on y_true is squeezed), as floats."""
    y_pred = convert_to_tensor(y_pred)
    y_true = convert_to_tensor(y_true)
    if y_true.shape.ndims is not None and y_true.shape.ndims == y_pred.shape.ndims:
        y_true = array_ops.squeeze(y_true, [-1])
    pred = math_ops.argmax(y_pred, axis=-1)
    if pred.dtype is not y_true.dtype:
        pred = math_ops.cast(pred, y_true.dtype)
    return math_ops.cast(math_ops.equal(y_true, pred), _dt.float32)


mse = MSE = mean_squared_error = losses.mean_squared_error
mae = MAE = mean_absolute_error = losses.mean_absolute_error

_FUNCTIONS: dict[str, Callable[..., Tensor]] = {
    "binary_accuracy": binary_accuracy, "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "mean_squared_error": mean_squared_error, "mse": mean_squared_error,
    "mean_absolute_error": mean_absolute_error, "mae": mean_absolute_error,
    "binary_crossentropy": losses.binary_crossentropy,
    "categorical_crossentropy": losses.categorical_crossentropy,
    "sparse_categorical_crossentropy": losses.sparse_categorical_crossentropy,
}


def get(identifier: Any, loss: Any = None, output_shape: Any = None) -> Callable[..., Tensor]:
    """The metric function for a name or callable; ``"accuracy"``/``"acc"`` depend on the loss.

    Args:
      identifier: a metric name or ``fn(y_true, y_pred)``.
      loss: the model's loss (a name or function), for ``"accuracy"``.
      output_shape: the model output's static shape, for ``"accuracy"``.

    Raises:
      ValueError: for an unknown name.
    """
    if identifier in ("accuracy", "acc"):
        if isinstance(loss, losses.Loss):
            lf: Any = type(loss).fn
        else:
            lf = losses.get(loss) if loss is not None else None
        last = output_shape[-1] if output_shape else None
        if last == 1 or lf is losses.binary_crossentropy:
            return binary_accuracy
        if lf is losses.sparse_categorical_crossentropy:
            return sparse_categorical_accuracy
        return categorical_accuracy
    if isinstance(identifier, str):
        try:
            return _FUNCTIONS[identifier]
        except KeyError:
            raise ValueError(f"Unknown metric function: {identifier!r}") from None
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret metric function identifier: {identifier!r}")


__all__ = ["MAE", "MSE", "binary_accuracy", "categorical_accuracy", "get", "mae",
           "mean_absolute_error", "mean_squared_error", "mse", "sparse_categorical_accuracy"]
