"""Learning-rate schedules as graph ops on the global step (TF1's learning_rate_decay).

Each returns a scalar Tensor that is recomputed from ``global_step`` whenever it
runs; pass it as an optimizer's ``learning_rate``.
"""

from __future__ import annotations

import math
from typing import Any

from graphflow.framework.graph import Tensor, convert_to_tensor
from graphflow.ops import math_ops
from graphflow.ops.building import op_scope


def _check_step(global_step: Any, what: str) -> None:
    if global_step is None:
        raise ValueError(f"global_step is required for {what}.")


def _start(learning_rate: Any, global_step: Any) -> tuple[Tensor, Tensor]:
    lr = convert_to_tensor(learning_rate, name="learning_rate")
    return lr, math_ops.cast(global_step, lr.dtype)


def exponential_decay(learning_rate: Any, global_step: Any, decay_steps: Any, decay_rate: Any,
                      staircase: bool = False, name: str | None = None) -> Tensor:
    """``learning_rate * decay_rate ^ (global_step / decay_steps)``.

    Args:
      learning_rate: the initial learning rate (a float scalar).
      global_step: the step (an integer Variable or Tensor); must not be None.
      decay_steps: steps per decay period.
      decay_rate: the factor per period.
      staircase: decay in whole periods (``floor`` of the exponent).
      name: scope name (default ``ExponentialDecay``).

    Returns:
      A scalar Tensor of the learning rate's dtype.

    Raises:
      ValueError: if ``global_step`` is None.
    """
    _check_step(global_step, "exponential_decay")
    with op_scope(name, "ExponentialDecay",
                  [learning_rate, global_step, decay_steps, decay_rate]) as scope:
        lr, step = _start(learning_rate, global_step)
        decay_steps = math_ops.cast(decay_steps, lr.dtype)
        decay_rate = math_ops.cast(decay_rate, lr.dtype)
        p = step / decay_steps
        if staircase:
            p = math_ops.floor(p)
        return math_ops.multiply(lr, math_ops.pow(decay_rate, p), name=scope)


def natural_exp_decay(learning_rate: Any, global_step: Any, decay_steps: Any,
                      decay_rate: Any, staircase: bool = False,
                      name: str | None = None) -> Tensor:
    """``learning_rate * exp(-decay_rate * global_step / decay_steps)`` (``floor`` of
    the ratio if ``staircase``).

    Raises:
      ValueError: if ``global_step`` is None.
    """
    _check_step(global_step, "natural_exp_decay")
    with op_scope(name, "NaturalExpDecay",
                  [learning_rate, global_step, decay_steps, decay_rate]) as scope:
        lr, step = _start(learning_rate, global_step)
        p = step / math_ops.cast(decay_steps, lr.dtype)
        if staircase:
            p = math_ops.floor(p)
        decay = math_ops.exp(math_ops.negative(math_ops.cast(decay_rate, lr.dtype)) * p)
        return math_ops.multiply(lr, decay, name=scope)


def inverse_time_decay(learning_rate: Any, global_step: Any, decay_steps: Any,
                       decay_rate: Any, staircase: bool = False,
                       name: str | None = None) -> Tensor:
    """``learning_rate / (1 + decay_rate * global_step / decay_steps)`` (``floor`` of the
    ratio if ``staircase``).

    Raises:
      ValueError: if ``global_step`` is None.
    """
    _check_step(global_step, "inverse_time_decay")
    with op_scope(name, "InverseTimeDecay",
                  [learning_rate, global_step, decay_steps, decay_rate]) as scope:
        lr, step = _start(learning_rate, global_step)
        p = step / math_ops.cast(decay_steps, lr.dtype)
        if staircase:
            p = math_ops.floor(p)
        denom = math_ops.add(math_ops.cast(1, lr.dtype),
                             math_ops.multiply(math_ops.cast(decay_rate, lr.dtype), p))
        return math_ops.divide(lr, denom, name=scope)


def polynomial_decay(learning_rate: Any, global_step: Any, decay_steps: Any,
                     end_learning_rate: Any = 0.0001, power: Any = 1.0, cycle: bool = False,
                     name: str | None = None) -> Tensor:
    """From ``learning_rate`` to ``end_learning_rate`` over ``decay_steps``::

        step = min(global_step, decay_steps)
        (learning_rate - end_learning_rate) * (1 - step / decay_steps) ^ power
            + end_learning_rate

    With ``cycle``, ``decay_steps`` is instead stretched to the first multiple of
    itself that is at least ``global_step`` (1 at step 0).

    Raises:
      ValueError: if ``global_step`` is None.
    """
    _check_step(global_step, "polynomial_decay")
    from graphflow.ops.array_ops import ones_like

    with op_scope(name, "PolynomialDecay",
                  [learning_rate, global_step, decay_steps, end_learning_rate, power]) as scope:
        lr, step = _start(learning_rate, global_step)
        end_lr = math_ops.cast(end_learning_rate, lr.dtype)
        power = math_ops.cast(power, lr.dtype)
        steps = math_ops.cast(decay_steps, lr.dtype)
        if cycle:
            multiplier = math_ops.where_v2(math_ops.equal(step, 0.0), ones_like(step),
                                           math_ops.ceil(step / steps))
            steps = math_ops.multiply(steps, multiplier)
        else:
            step = math_ops.minimum(step, steps)
        p = math_ops.divide(step, steps)
        return math_ops.add(math_ops.multiply(lr - end_lr, math_ops.pow(1 - p, power)),
                            end_lr, name=scope)


def cosine_decay(learning_rate: Any, global_step: Any, decay_steps: Any, alpha: Any = 0.0,
                 name: str | None = None) -> Tensor:
    """Cosine decay (Loshchilov & Hutter) to ``alpha * learning_rate``::

        step = min(global_step, decay_steps)
        learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * step / decay_steps)) + alpha)

    Raises:
      ValueError: if ``global_step`` is None.
    """
    _check_step(global_step, "cosine_decay")
    with op_scope(name, "CosineDecay", [learning_rate, global_step]) as scope:
        lr, step = _start(learning_rate, global_step)
        steps = math_ops.cast(decay_steps, lr.dtype)
        step = math_ops.minimum(step, steps)
        completed_fraction = step / steps
        cosine_decayed = 0.5 * (1.0 + math_ops.cos(math.pi * completed_fraction))
        decayed = (1 - alpha) * cosine_decayed + alpha
        return math_ops.multiply(lr, decayed, name=scope)


def piecewise_constant(x: Any, boundaries: list[Any], values: list[Any],
                       name: str | None = None) -> Tensor:
    """``values[0]`` while ``x <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < x <= boundaries[i]``, ``values[-1]`` after the last boundary.

    Args:
      x: a scalar Tensor, usually the global step.
      boundaries: increasing values, converted to x's dtype.
      values: one more value than boundaries, all of one dtype.
      name: scope name (default ``PiecewiseConstant``).

    Returns:
      A scalar Tensor of the values' dtype.

    Raises:
      ValueError: if the lengths do not fit or the values' dtypes differ.
    """
    if len(boundaries) != len(values) - 1:
        raise ValueError("The length of boundaries should be 1 less than the length of values")
    with op_scope(name, "PiecewiseConstant", [x]):
        x = convert_to_tensor(x)
        bs = [math_ops.cast(convert_to_tensor(b), x.dtype) for b in boundaries]
        vs = [convert_to_tensor(v) for v in values]
        if any(v.dtype is not vs[0].dtype for v in vs):
            raise ValueError(f"Values must have elements all with the same dtype "
                             f"({', '.join(v.dtype.name for v in vs)}).")
        # The intervals are disjoint and cover every x: a chain of selects picks one.
        out = vs[-1]
        for b, v in zip(reversed(bs), reversed(vs[:-1])):
            out = math_ops.where_v2(x <= b, v, out)
        return out
