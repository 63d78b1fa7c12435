"""``gf.keras.regularizers``: L1/L2 weight penalties added to a model's loss."""

from __future__ import annotations

from typing import Any

from graphflow.framework.graph import Tensor


class Regularizer:
    """Base class: ``regularizer(weight) -> scalar penalty``."""

    def __call__(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {}


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x^2)``.

    Args:
      l1: the L1 factor.
      l2: the L2 factor.
    """

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = float(l1)
        self.l2 = float(l2)

    def __call__(self, x: Tensor) -> Tensor:
        from graphflow.framework.graph import convert_to_tensor
        from graphflow.ops.constant_op import constant
        from graphflow.ops.math_ops import abs as _abs
        from graphflow.ops.math_ops import reduce_sum, square

        x = convert_to_tensor(x)
        out = constant(0.0, dtype=x.dtype)
        if self.l1:
            out = out + self.l1 * reduce_sum(_abs(x))
        if self.l2:
            out = out + self.l2 * reduce_sum(square(x))
        return out

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


def l1(l: float = 0.01) -> L1L2:  # noqa: E741 - Keras's argument name
    """An L1 penalty ``l * sum(|x|)``."""
    return L1L2(l1=l)


def l2(l: float = 0.01) -> L1L2:  # noqa: E741
    """An L2 penalty ``l * sum(x^2)``."""
    return L1L2(l2=l)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    """Both penalties."""
    return L1L2(l1=l1, l2=l2)


def get(identifier: Any) -> Any:
    """A regularizer from None, a serialized dict, ``"l1"``/``"l2"``/``"l1_l2"``, or a callable.

    Raises:
      ValueError: for anything else.
    """
    if identifier is None or callable(identifier):
        return identifier
    if isinstance(identifier, str):
        fns = {"l1": l1, "l2": l2, "l1_l2": l1_l2}
        if identifier in fns:
            return fns[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") == "L1L2":
        cfg = identifier.get("config") or {}
        if isinstance(cfg, dict):
            return L1L2(**cfg)
    raise ValueError(f"Could not interpret regularizer identifier: {identifier!r}")


def serialize(reg: Any) -> dict[str, Any] | None:
    """The dict form of a regularizer (None stays None).

    Raises:
      ValueError: for a regularizer graphflow cannot rebuild.
    """
    if reg is None:
        return None
    if type(reg) is L1L2:
        return {"class_name": "L1L2", "config": reg.get_config()}
    raise ValueError(f"Regularizer {reg!r} cannot be serialized; use gf.keras.regularizers.L1L2")


__all__ = ["L1L2", "Regularizer", "get", "l1", "l1_l2", "l2", "serialize"]
