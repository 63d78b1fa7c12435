"""Optimizer update ops: ``ApplyGradientDescent``, ``ApplyAdam``, ... (TF1's training_ops).

Each op is one registration whose ``update`` is the TF1 kernel's formula in NumPy.
The variable and its slots are ref inputs (``VarRef`` handles); the reference
evaluation writes their new arrays through the handles, replacing the stored
arrays, never mutating them, so values read earlier in the same run keep theirs.
The op's output is the variable's new value, as TF1's ``out`` ref.

The ``SparseApply*`` ops apply the same formulas to the rows ``indices`` of the
variable and its slots only (for sparse gradients, ``IndexedSlices``).
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
from graphflow.framework.tensor_shape import TensorShape
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


# --- sparse updates (TF1's SparseApply* kernels) -----------------------------------------
class SparseApplyOp(ApplyOp):
    """Base of the sparse update ops: the dense op's formula applied to rows ``indices``.

    ``grad`` has shape ``[N] + var.shape[1:]`` and ``indices`` is a 1-D int vector of
    N rows; only those rows of the variable and its slots change. Rows are updated
    in the order of ``indices``, one after another, as TF's kernels do, so a repeated
    row is updated once per occurrence (optimizers sum duplicates first). ``dense``
    names the ApplyOp whose ``update`` formula is applied to the gathered rows.
    """

    dense: type[ApplyOp] = ApplyOp

    def infer(self, op):
        args = op.inputs
        if len(args) != len(self.inputs):
            raise shape_error(f"{self.type} takes {len(self.inputs)} inputs "
                              f"({', '.join(self.inputs)}), got {len(args)}")
        var = args[0]
        rules.check_dtype(var, _dt.FLOATS, "input 'var'")
        rows = None
        for i, (what, t) in enumerate(zip(self.inputs, args)):
            if what == "indices":
                rules.check_dtype(t, (_dt.int32, _dt.int64), "indices")
                if t.shape.ndims not in (None, 1):
                    raise shape_error(f"indices must be one-dimensional: {t.shape}")
                rows = t.shape.values[0] if t.shape.ndims == 1 else None
                continue
            if i in self.ref_inputs and t.op.type != "VariableV2":
                raise dtype_error(f"input '{what}' must be a variable, got {t.name} "
                                  f"(a {t.op.type} output)")
            if t.dtype is not var.dtype:
                raise dtype_error(f"input '{what}' ({t.name}) has dtype {t.dtype.name}, but "
                                  f"'var' ({var.name}) has {var.dtype.name}")
            if i in self.ref_inputs:
                if not var.shape.is_compatible_with(t.shape):
                    raise shape_error(f"var and {what} do not have the same shape: "
                                      f"{var.shape} {t.shape}")
            elif what != self.grad_input and t.shape.ndims not in (None, 0):
                raise shape_error(f"{what} is not a scalar: {t.shape}")
        grad = args[self.inputs.index(self.grad_input)]
        vd = var.shape.values
        if vd is not None:
            if not vd:
                raise shape_error(f"var must be at least 1 dimensional: {var.shape}")
            want = TensorShape([rows] + list(vd[1:]))
            if not grad.shape.is_compatible_with(want):
                raise shape_error(f"grad must have shape [len(indices)] + var.shape[1:] = "
                                  f"{want}, got {grad.shape}")
        return [(var.dtype, var.shape)]

    def reference(self, op, inputs, ctx):
        values: dict[str, Any] = {}
        refs: list[VarRef] = []
        for i, (what, v) in enumerate(zip(self.inputs, inputs)):
            if i in self.ref_inputs:
                refs.append(v)
                v = v.read(op)
            values[what] = np.asarray(v)
        var = values["var"]
        indices = values.pop("indices")
        grad = values[self.grad_input]
        if indices.ndim != 1:
            raise errors.InvalidArgumentError(
                None, op, f"indices must be one-dimensional: {list(indices.shape)}")
        if grad.shape != indices.shape + var.shape[1:]:
            raise errors.InvalidArgumentError(
                None, op, f"grad must have shape [len(indices)] + var.shape[1:] = "
                          f"{list(indices.shape + var.shape[1:])}, got {list(grad.shape)}")
        for i, what in enumerate(self.inputs):
            if i in self.ref_inputs and values[what].shape != var.shape:
                raise errors.InvalidArgumentError(
                    None, op, f"var and {what} do not have the same shape"
                              f"{list(var.shape)} {list(values[what].shape)}")
        bad = (indices < 0) | (indices >= var.shape[0])
        if np.any(bad):
            k = int(np.argmax(bad))
            raise errors.InvalidArgumentError(
                None, op, f"indices[{k}] = {int(indices[k])} is not in [0, {var.shape[0]})")
        names = [self.inputs[i] for i in self.ref_inputs]
        state = [np.array(values[n], copy=True) for n in names]
        idx = indices.astype(np.int64)
        # Distinct rows update together; a repeated row is applied once per occurrence.
        batches = [idx] if np.unique(idx).size == idx.size else [idx[k:k + 1] for k in
                                                                  range(idx.size)]
        start = 0
        for rows in batches:
            args = dict(values)
            args[self.grad_input] = grad[start:start + rows.size]
            for n, arr in zip(names, state):
                args[n] = arr[rows]
            new = self.dense.update(self, op, **args)
            for arr, value in zip(state, new):
                arr[rows] = value
            start += rows.size
        for ref, value in zip(refs, state):
            ref.write(np.array(value, dtype=ref.op.outputs[0].dtype.np, copy=True))
        return state[0]


@register
class SparseApplyMomentum(SparseApplyOp):
    """ApplyMomentum on rows ``indices``: ``accum[i] = accum[i] * momentum + grad``,
    ``var[i] -= lr * accum[i]`` (Nesterov as ApplyMomentum)."""

    inputs = ("var", "accum", "lr", "grad", "indices", "momentum")
    ref_inputs = (0, 1)
    dense = ApplyMomentum


@register
class SparseApplyAdagrad(SparseApplyOp):
    """ApplyAdagrad on rows ``indices``: ``accum[i] += grad^2``, ``var[i] -= lr * grad /
    sqrt(accum[i])``."""

    inputs = ("var", "accum", "lr", "grad", "indices")
    ref_inputs = (0, 1)
    dense = ApplyAdagrad


@register
class SparseApplyRMSProp(SparseApplyOp):
    """ApplyRMSProp on rows ``indices`` (untouched rows keep their ``ms`` and ``mom``)."""

    inputs = ("var", "ms", "mom", "lr", "rho", "momentum", "epsilon", "grad", "indices")
    ref_inputs = (0, 1, 2)
    dense = ApplyRMSProp


@register
class SparseApplyCenteredRMSProp(SparseApplyOp):
    """ApplyCenteredRMSProp on rows ``indices``."""

    inputs = ("var", "mg", "ms", "mom", "lr", "rho", "momentum", "epsilon", "grad", "indices")
    ref_inputs = (0, 1, 2, 3)
    dense = ApplyCenteredRMSProp


# --- public functions (TF1's generated ``training_ops.apply_*``) -------------------------
def _apply(op_type: str, refs: list[Any], values: list[tuple[str, Any]], attrs: dict[str, Any],
           name: str | None) -> Tensor:
    ref_ts = [_ref_of(r) for r in refs]
    with op_scope(name, op_type, ref_ts) as scope:
        dtype = ref_ts[0].dtype
        ts = [convert_to_tensor(v, dtype=None if n == "indices" else dtype, name=n)
              for n, v in values]
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


def sparse_apply_momentum(var: Any, accum: Any, lr: Any, grad: Any, indices: Any,
                          momentum: Any, use_locking: bool = False, use_nesterov: bool = False,
                          name: str | None = None) -> Tensor:
    """Momentum update of rows ``indices`` of ``var`` and ``accum`` (TF1's
    ``SparseApplyMomentum``).

    Args:
      var, accum: float Variables of one shape.
      lr, momentum: scalars of var's dtype.
      grad: the rows' gradients, shape ``[len(indices)] + var.shape[1:]``.
      indices: a 1-D int32/int64 tensor of row numbers.
      use_locking: accepted for TF1 compatibility.
      use_nesterov: Nesterov momentum.
      name: op name.

    Returns:
      The variable's new value.
    """
    return _apply("SparseApplyMomentum", [var, accum],
                  [("lr", lr), ("grad", grad), ("indices", indices), ("momentum", momentum)],
                  {"use_nesterov": bool(use_nesterov)}, name)


def sparse_apply_adagrad(var: Any, accum: Any, lr: Any, grad: Any, indices: Any,
                         use_locking: bool = False, update_slots: bool = True,
                         name: str | None = None) -> Tensor:
    """Adagrad update of rows ``indices`` (TF1's ``SparseApplyAdagrad``); arguments as
    :func:`sparse_apply_momentum`."""
    return _apply("SparseApplyAdagrad", [var, accum],
                  [("lr", lr), ("grad", grad), ("indices", indices)],
                  {"update_slots": bool(update_slots)}, name)


def sparse_apply_rms_prop(var: Any, ms: Any, mom: Any, lr: Any, rho: Any, momentum: Any,
                          epsilon: Any, grad: Any, indices: Any, use_locking: bool = False,
                          name: str | None = None) -> Tensor:
    """RMSProp update of rows ``indices`` (TF1's ``SparseApplyRMSProp``); arguments as
    :func:`apply_rms_prop` plus ``indices``."""
    return _apply("SparseApplyRMSProp", [var, ms, mom],
                  [("lr", lr), ("rho", rho), ("momentum", momentum), ("epsilon", epsilon),
                   ("grad", grad), ("indices", indices)], {}, name)


def sparse_apply_centered_rms_prop(var: Any, mg: Any, ms: Any, mom: Any, lr: Any, rho: Any,
                                   momentum: Any, epsilon: Any, grad: Any, indices: Any,
                                   use_locking: bool = False,
                                   name: str | None = None) -> Tensor:
    """Centred RMSProp update of rows ``indices`` (TF1's ``SparseApplyCenteredRMSProp``)."""
    return _apply("SparseApplyCenteredRMSProp", [var, mg, ms, mom],
                  [("lr", lr), ("rho", rho), ("momentum", momentum), ("epsilon", epsilon),
                   ("grad", grad), ("indices", indices)], {}, name)
