"""Gradient clipping by norm: ``clip_by_norm``, ``global_norm``, ``clip_by_global_norm``.

Composed from existing ops exactly as TF1 composes them, so the graphs (and
their op names) match TF1's. ``clip_by_value`` lives in math_ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from graphflow.framework.graph import Tensor
from graphflow.ops.building import op_scope, to_tensor


def _as_sequence(t_list: Any) -> list[Any]:
    if not isinstance(t_list, Sequence) or isinstance(t_list, str):
        raise TypeError("t_list should be a sequence")
    return list(t_list)


def clip_by_norm(t: Any, clip_norm: Any, axes: Any = None, name: str | None = None) -> Tensor:
    """Scales ``t`` so that its L2 norm is at most ``clip_norm`` (TF1's ``tf.clip_by_norm``).

    ``t * clip_norm / max(l2norm(t), clip_norm)``, the norm taken over ``axes``
    (all dims if None); a zero ``t`` stays zero and has finite gradients.

    Args:
      t: a float Tensor.
      clip_norm: a positive scalar.
      axes: dims to compute the norm over (None: all).
      name: op name.

    Returns:
      The clipped Tensor, of t's shape.
    """
    from graphflow.ops.array_ops import identity, ones_like
    from graphflow.ops.math_ops import maximum, reduce_sum, sqrt, where

    with op_scope(name, "clip_by_norm", [t, clip_norm]) as scope:
        values = to_tensor(t, name="t")
        l2sum = reduce_sum(values * values, axes, keepdims=True)
        pred = l2sum > 0
        # The double where keeps the gradient finite where the norm is 0.
        l2sum_safe = where(pred, l2sum, ones_like(l2sum))
        l2norm = where(pred, sqrt(l2sum_safe), l2sum)
        intermediate = values * clip_norm
        values.shape.merge_with(intermediate.shape)  # no accidental broadcasting
        return identity(intermediate / maximum(l2norm, clip_norm), name=scope)


def global_norm(t_list: Sequence[Any], name: str | None = None) -> Tensor:
    """``sqrt(sum(l2norm(t)**2 for t in t_list))``, None entries ignored (TF1's
    ``tf.global_norm``).

    Args:
      t_list: a sequence of float Tensors of one dtype (or None).
      name: scope name.

    Returns:
      A scalar Tensor.

    Raises:
      TypeError: if ``t_list`` is not a sequence.
      ValueError: if it holds no tensor.
    """
    from graphflow.ops.array_ops import stack
    from graphflow.ops.constant_op import constant
    from graphflow.ops.math_ops import reduce_sum, sqrt
    from graphflow.ops.nn_ops import l2_loss

    t_list = _as_sequence(t_list)
    with op_scope(name, "global_norm", [t for t in t_list if t is not None]):
        values = [to_tensor(t, name=f"t_{i}") if t is not None else None
                  for i, t in enumerate(t_list)]
        half_squared_norms = [l2_loss(v) for v in values if v is not None]
        if not half_squared_norms:
            raise ValueError("global_norm: t_list holds no tensors (only None)")
        half_squared_norm = reduce_sum(stack(half_squared_norms))
        return sqrt(half_squared_norm * constant(2.0, dtype=half_squared_norm.dtype),
                    name="global_norm")


def clip_by_global_norm(t_list: Sequence[Any], clip_norm: Any, use_norm: Any = None,
                        name: str | None = None) -> tuple[list[Tensor | None], Tensor]:
    """Scales all of ``t_list`` by ``clip_norm / max(global_norm, clip_norm)`` (TF1's
    ``tf.clip_by_global_norm``).

    Clipping by the joint norm keeps the direction of the whole update, which
    per-tensor clipping does not. A non-finite norm makes every result NaN, as TF1.

    Args:
      t_list: a sequence of float Tensors (None entries are passed through).
      clip_norm: a positive scalar.
      use_norm: a precomputed global norm (computed if None).
      name: scope name.

    Returns:
      ``(list_clipped, global_norm)``.

    Raises:
      TypeError: if ``t_list`` is not a sequence.
    """
    from graphflow.ops.array_ops import identity
    from graphflow.ops.constant_op import constant
    from graphflow.ops.math_ops import cast, minimum

    t_list = _as_sequence(t_list)
    if use_norm is None:
        use_norm = global_norm(t_list, name)
    else:
        use_norm = to_tensor(use_norm)
    real = [t for t in t_list if t is not None]
    with op_scope(name, "clip_by_global_norm", real + [clip_norm]) as scope:
        scale_for_finite = clip_norm * minimum(
            1.0 / use_norm, constant(1.0, dtype=use_norm.dtype) / clip_norm)
        # A no-op for a finite norm; NaN for an infinite or NaN one.
        scale = scale_for_finite + (use_norm - use_norm)
        values = [to_tensor(t, name=f"t_{i}") if t is not None else None
                  for i, t in enumerate(t_list)]
        clipped: list[Tensor | None] = []
        for i, v in enumerate(values):
            if v is None:
                clipped.append(None)
            else:
                clipped.append(identity(v * cast(scale, v.dtype), name=f"{scope}_{i}"))
    return clipped, use_norm
