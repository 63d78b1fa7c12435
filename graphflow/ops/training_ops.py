"""Optimizer update ops: ``ApplyGradientDescent``, ``ApplyAdam``, ... (TF1's training_ops).

Each op is one registration whose ``update`` is the TF1 kernel's formula in NumPy.
The variable and its slots are ref inputs (``VarRef`` handles); the reference
evaluation writes their new arrays through the handles, replacing the stored
arrays, never mutating them, so values read earlier in the same run keep theirs.
The op's output is the variable's new value, as TF1's ``out`` ref.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphflow.framework import dtypes as _dt
from graphflow.framework import errors
from graphflow.framework.graph import Tensor, convert_to_tensor
from graphflow.framework.op_def import (
    OPAQUE,
    OpDef,
    dtype_error,
    lookup,
    register,
    shape_error,
)
from graphflow.ops import rules
from graphflow.ops.building import make, op_scope
from graphflow.ops.state_ops import VarRef, _ref_of


class ApplyOp(OpDef):
    """Base of the update ops: ``inputs`` names the TF1 inputs in order.

    The first ``len(ref_inputs)`` inputs are variables (the trained variable,
    then its slots), ``grad_input`` names the gradient, and every other input
    is a scalar hyperparameter of the variable's dtype. Subclasses define
    ``update(op, **inputs)`` returning the new values of the ref inputs, in order.
    """

    kind = OPAQUE
    stateful = True
    not_differentiable = True
    inputs: tuple[str, ...] = ()
    grad_input = "grad"

    def infer(self, op):
        args = op.inputs
        if len(args) != len(self.inputs):
            raise shape_error(f"{self.type} takes {len(self.inputs)} inputs "
                              f"({', '.join(self.inputs)}), got {len(args)}")
        var = args[0]
        rules.check_dtype(var, _dt.FLOATS, "input 'var'")
        shape = var.shape
        for i, (what, t) in enumerate(zip(self.inputs, args)):
            if i in self.ref_inputs and t.op.type != "VariableV2":
                raise dtype_error(f"input '{what}' must be a variable, got {t.name} "
                                  f"(a {t.op.type} output)")
            if t.dtype is not var.dtype:
                raise dtype_error(f"input '{what}' ({t.name}) has dtype {t.dtype.name}, but "
                                  f"'var' ({var.name}) has {var.dtype.name}")
            if i in self.ref_inputs or what == self.grad_input:
                if not shape.is_compatible_with(t.shape):
                    raise shape_error(f"var and {what} do not have the same shape: "
                                      f"{var.shape} {t.shape}")
                shape = shape.merge_with(t.shape)
            elif t.shape.ndims not in (None, 0):
                raise shape_error(f"{what} is not a scalar: {t.shape}")
        return [(var.dtype, var.shape)]

    def update(self, op: Any, **inputs: np.ndarray) -> tuple[np.ndarray, ...]:
        raise NotImplementedError(self.type)

    def reference(self, op, inputs, ctx):
        values: dict[str, np.ndarray] = {}
        refs: list[VarRef] = []
        for i, (what, v) in enumerate(zip(self.inputs, inputs)):
            if i in self.ref_inputs:
                refs.append(v)
                v = v.read(op)
            values[what] = np.asarray(v)
        var = values["var"]
        for i, what in enumerate(self.inputs):
            v = values[what]
            if i in self.ref_inputs or what == self.grad_input:
                if v.shape != var.shape:
                    raise errors.InvalidArgumentError(
                        None, op, f"var and {what} do not have the same shape"
                                  f"{list(var.shape)} {list(v.shape)}")
            elif v.ndim != 0:
                raise errors.InvalidArgumentError(
                    None, op, f"{what} is not a scalar: {list(v.shape)}")
        new = self.update(op, **values)
        out = None
        for ref, value in zip(refs, new):
            # Replace, never mutate: arrays already handed out keep their values.
            value = np.array(value, dtype=ref.op.outputs[0].dtype.np, copy=True)
            ref.write(value)
            out = value if out is None else out
        return out


@register
class ApplyGradientDescent(ApplyOp):
    """``var -= alpha * delta``."""

    inputs = ("var", "alpha", "delta")
    ref_inputs = (0,)
    grad_input = "delta"

    def update(self, op, var, alpha, delta):
        return (var - alpha * delta,)


@register
class ApplyMomentum(ApplyOp):
    """``accum = accum * momentum + grad``; ``var -= lr * accum``, or with attr
    ``use_nesterov`` ``var -= lr * grad + lr * momentum * accum``."""

    inputs = ("var", "accum", "lr", "grad", "momentum")
    ref_inputs = (0, 1)

    def update(self, op, var, accum, lr, grad, momentum):
        accum = accum * momentum + grad
        if op.get_attr("use_nesterov"):
            var = var - (grad * lr + accum * momentum * lr)
        else:
            var = var - accum * lr
        return var, accum


@register
class ApplyAdam(ApplyOp):
    """Adam with TF1's "epsilon hat": ``lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)``,
    ``m += (grad - m) * (1 - beta1)``, ``v += (grad^2 - v) * (1 - beta2)``,
    ``var -= lr_t * m / (sqrt(v) + epsilon)`` (``use_nesterov``: ``m`` replaced by
    ``beta1 * m + (1 - beta1) * grad``)."""

    inputs = ("var", "m", "v", "beta1_power", "beta2_power", "lr", "beta1", "beta2",
              "epsilon", "grad")
    ref_inputs = (0, 1, 2)

    def update(self, op, var, m, v, beta1_power, beta2_power, lr, beta1, beta2, epsilon,
               grad):
        one = np.ones((), var.dtype)
        alpha = lr * np.sqrt(one - beta2_power) / (one - beta1_power)
        m = m + (grad - m) * (one - beta1)
        v = v + (np.square(grad) - v) * (one - beta2)
        if op.get_attr("use_nesterov"):
            var = var - (grad * (one - beta1) + beta1 * m) * alpha / (np.sqrt(v) + epsilon)
        else:
            var = var - m * alpha / (np.sqrt(v) + epsilon)
        return var, m, v


@register
class ApplyRMSProp(ApplyOp):
    """``ms += (grad^2 - ms) * (1 - rho)``; ``mom = mom * momentum + lr * grad /
    sqrt(ms + epsilon)``; ``var -= mom``."""

    inputs = ("var", "ms", "mom", "lr", "rho", "momentum", "epsilon", "grad")
    ref_inputs = (0, 1, 2)

    def update(self, op, var, ms, mom, lr, rho, momentum, epsilon, grad):
        one = np.ones((), var.dtype)
        ms = ms + (np.square(grad) - ms) * (one - rho)
        mom = mom * momentum + grad * lr / np.sqrt(ms + epsilon)
        return var - mom, ms, mom


@register
class ApplyCenteredRMSProp(ApplyOp):
    """RMSProp normalised by the centred second moment: also ``mg += (grad - mg) *
    (1 - rho)``, and the denominator is ``sqrt(ms - mg^2 + epsilon)``."""

    inputs = ("var", "mg", "ms", "mom", "lr", "rho", "momentum", "epsilon", "grad")
    ref_inputs = (0, 1, 2, 3)

    def update(self, op, var, mg, ms, mom, lr, rho, momentum, epsilon, grad):
        one = np.ones((), var.dtype)
        ms = ms + (np.square(grad) - ms) * (one - rho)
        mg = mg + (grad - mg) * (one - rho)
        denom = ms - np.square(mg) + epsilon
        mom = mom * momentum + grad * lr / np.sqrt(denom)
        return var - mom, mg, ms, mom


@register
class ApplyAdagrad(ApplyOp):
    """``accum += grad^2`` (if attr ``update_slots``); ``var -= lr * grad / sqrt(accum)``."""

    inputs = ("var", "accum", "lr", "grad")
    ref_inputs = (0, 1)

    def update(self, op, var, accum, lr, grad):
        if op.get_attr("update_slots"):
            accum = accum + np.square(grad)
        return var - grad * lr / np.sqrt(accum), accum


# --- public functions (TF1's generated ``training_ops.apply_*``) -------------------------
def _apply(op_type: str, refs: list[Any], values: list[tuple[str, Any]], attrs: dict[str, Any],
           name: str | None) -> Tensor:
    ref_ts = [_ref_of(r) for r in refs]
    with op_scope(name, op_type, ref_ts) as scope:
        dtype = ref_ts[0].dtype
        ts = [convert_to_tensor(v, dtype=dtype, name=n) for n, v in values]
        order = lookup(op_type).inputs
        by_name = dict(zip(order[:len(ref_ts)], ref_ts))
        by_name.update({n: t for (n, _), t in zip(values, ts)})
        return make(op_type, [by_name[n] for n in order], {"use_locking": False, **attrs},
                    name=scope)


def apply_gradient_descent(var: Any, alpha: Any, delta: Any, use_locking: bool = False,
                           name: str | None = None) -> Tensor:
    """``var -= alpha * delta`` (TF1's ``ApplyGradientDescent``); returns the new value.

    Args:
      var: a float Variable (or its VariableV2 tensor).
      alpha: scalar learning rate of var's dtype.
      delta: the change, of var's shape.
      use_locking: accepted for TF1 compatibility.
      name: op name.
    """
    return _apply("ApplyGradientDescent", [var], [("alpha", alpha), ("delta", delta)], {},
                  name)


def apply_momentum(var: Any, accum: Any, lr: Any, grad: Any, momentum: Any,
                   use_locking: bool = False, use_nesterov: bool = False,
                   name: str | None = None) -> Tensor:
    """Momentum update of ``var`` and its ``accum`` slot (TF1's ``ApplyMomentum``)."""
    return _apply("ApplyMomentum", [var, accum],
                  [("lr", lr), ("grad", grad), ("momentum", momentum)],
                  {"use_nesterov": bool(use_nesterov)}, name)


def apply_adam(var: Any, m: Any, v: Any, beta1_power: Any, beta2_power: Any, lr: Any,
               beta1: Any, beta2: Any, epsilon: Any, grad: Any, use_locking: bool = False,
               use_nesterov: bool = False, name: str | None = None) -> Tensor:
    """Adam update of ``var`` and its ``m``, ``v`` slots (TF1's ``ApplyAdam``)."""
    return _apply("ApplyAdam", [var, m, v],
                  [("beta1_power", beta1_power), ("beta2_power", beta2_power), ("lr", lr),
                   ("beta1", beta1), ("beta2", beta2), ("epsilon", epsilon), ("grad", grad)],
                  {"use_nesterov": bool(use_nesterov)}, name)


def apply_rms_prop(var: Any, ms: Any, mom: Any, lr: Any, rho: Any, momentum: Any,
                   epsilon: Any, grad: Any, use_locking: bool = False,
                   name: str | None = None) -> Tensor:
    """RMSProp update of ``var`` and its ``ms``, ``mom`` slots (TF1's ``ApplyRMSProp``)."""
    return _apply("ApplyRMSProp", [var, ms, mom],
                  [("lr", lr), ("rho", rho), ("momentum", momentum), ("epsilon", epsilon),
                   ("grad", grad)], {}, name)


def apply_centered_rms_prop(var: Any, mg: Any, ms: Any, mom: Any, lr: Any, rho: Any,
                            momentum: Any, epsilon: Any, grad: Any, use_locking: bool = False,
                            name: str | None = None) -> Tensor:
    """Centred RMSProp update (TF1's ``ApplyCenteredRMSProp``)."""
    return _apply("ApplyCenteredRMSProp", [var, mg, ms, mom],
                  [("lr", lr), ("rho", rho), ("momentum", momentum), ("epsilon", epsilon),
                   ("grad", grad)], {}, name)


def apply_adagrad(var: Any, accum: Any, lr: Any, grad: Any, use_locking: bool = False,
                  update_slots: bool = True, name: str | None = None) -> Tensor:
    """Adagrad update of ``var`` and its ``accum`` slot (TF1's ``ApplyAdagrad``)."""
    return _apply("ApplyAdagrad", [var, accum], [("lr", lr), ("grad", grad)],
                  {"update_slots": bool(update_slots)}, name)
