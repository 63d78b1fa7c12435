"""``gf.keras.activations``: activation functions by Keras name (``"relu"``, ``"softmax"``...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphflow.framework.graph import Tensor
from graphflow.ops import math_ops, nn_ops


def linear(x: Tensor) -> Tensor:
    """The identity (Keras's ``"linear"``)."""
    return x


def relu(x: Tensor) -> Tensor:
    """``max(x, 0)``."""
    return nn_ops.relu(x)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """Softmax over ``axis``."""
    return nn_ops.softmax(x, axis=axis)


def sigmoid(x: Tensor) -> Tensor:
    """``1 / (1 + exp(-x))``."""
    return math_ops.sigmoid(x)


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    return math_ops.tanh(x)


def elu(x: Tensor) -> Tensor:
    """Exponential linear unit."""
    return nn_ops.elu(x)


def selu(x: Tensor) -> Tensor:
    """Scaled exponential linear unit."""
    return nn_ops.selu(x)


def softplus(x: Tensor) -> Tensor:
    """``log(1 + exp(x))``."""
    return nn_ops.softplus(x)


def softsign(x: Tensor) -> Tensor:
    """``x / (1 + |x|)``."""
    return nn_ops.softsign(x)


def exponential(x: Tensor) -> Tensor:
    """``exp(x)``."""
    return math_ops.exp(x)


def relu6(x: Tensor) -> Tensor:
    """``min(max(x, 0), 6)``."""
    return nn_ops.relu6(x)


_BY_NAME: dict[str, Callable[..., Tensor]] = {
    f.__name__: f for f in (linear, relu, softmax, sigmoid, tanh, elu, selu, softplus,
                            softsign, exponential, relu6)}
# gf.nn / gf.math functions given directly serialize under their Keras name.
_ALIASES = {nn_ops.relu: "relu", nn_ops.softmax: "softmax", math_ops.sigmoid: "sigmoid",
            math_ops.tanh: "tanh", nn_ops.elu: "elu", nn_ops.selu: "selu",
            nn_ops.softplus: "softplus", nn_ops.softsign: "softsign",
            math_ops.exp: "exponential", nn_ops.relu6: "relu6"}


def get(identifier: Any) -> Callable[..., Tensor] | None:
    """The activation function for a Keras name, a function, or None (linear).

    Raises:
      ValueError: for an unknown name or a non-callable.
    """
    if identifier is None:
        return None
    if isinstance(identifier, str):
        try:
            return _BY_NAME[identifier]
        except KeyError:
            raise ValueError(f"Unknown activation function: {identifier!r}; known: "
                             f"{', '.join(sorted(_BY_NAME))}") from None
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret activation function identifier: {identifier!r}")


def serialize(fn: Any) -> str:
    """The Keras name of an activation function (``"linear"`` for None).

    Raises:
      ValueError: for a function that has no Keras name (it cannot be saved).
    """
    if fn is None:
        return "linear"
    if _BY_NAME.get(getattr(fn, "__name__", "")) is fn:
        return fn.__name__
    if fn in _ALIASES:
        return _ALIASES[fn]
    raise ValueError(f"Activation {fn!r} has no Keras name and cannot be serialized; use one "
                     f"of {', '.join(sorted(_BY_NAME))}")


def deserialize(name: str) -> Callable[..., Tensor] | None:
    """The activation function named ``name``."""
    fn = get(name)
    return None if fn is linear else fn


__all__ = sorted(_BY_NAME) + ["deserialize", "get", "serialize"]
