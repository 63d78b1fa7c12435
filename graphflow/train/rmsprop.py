"""RMSPropOptimizer (TF1's ``tf.train.RMSPropOptimizer``)."""

from __future__ import annotations

from typing import Any

from graphflow.framework.graph import Operation, Tensor
from graphflow.framework.indexed_slices import IndexedSlices
from graphflow.ops import training_ops
from graphflow.ops.state_ops import Variable
from graphflow.train.optimizer import Optimizer, _cast_like


class RMSPropOptimizer(Optimizer):
    """RMSProp, TF1's formulation::

        ms = decay * ms + (1 - decay) * grad^2
        mom = momentum * mom + learning_rate * grad / sqrt(ms + epsilon)
        var -= mom

    With ``centered``, ``mg = decay * mg + (1 - decay) * grad`` is also kept and
    the denominator is ``sqrt(ms - mg^2 + epsilon)``. Slots: ``"rms"``
    (initialised to ones, variable ``<var>/RMSProp``), ``"mg"`` if centred,
    and ``"momentum"``. A sparse gradient updates only its rows of the variable
    and the slots (``SparseApplyRMSProp``), as TF1 does.

    Args:
      learning_rate: a float, a scalar Tensor or a callable returning one.
      decay: discounting factor of the gradient history.
      momentum: momentum of the update.
      epsilon: small value avoiding a zero denominator.
      use_locking: accepted for TF1 compatibility.
      centered: normalise by the estimated variance rather than the second moment.
      name: name scope of the update ops (default ``"RMSProp"``).
    """

    def __init__(self, learning_rate: Any, decay: Any = 0.9, momentum: Any = 0.0,
                 epsilon: Any = 1e-10, use_locking: bool = False, centered: bool = False,
                 name: str = "RMSProp") -> None:
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._decay = decay
        self._momentum = momentum
        self._epsilon = epsilon
        self._centered = centered

    def _create_slots(self, var_list: list[Variable]) -> None:
        for v in var_list:
            self._get_or_make_slot_with_value(v, 1, "rms", self._name)
            if self._centered:
                self._zeros_slot(v, "mg", self._name)
            self._zeros_slot(v, "momentum", self._name)

    def _prepare(self) -> None:
        self._learning_rate_tensor = self._hyper(self._learning_rate, "learning_rate")
        self._decay_tensor = self._hyper(self._decay, "decay")
        self._momentum_tensor = self._hyper(self._momentum, "momentum")
        self._epsilon_tensor = self._hyper(self._epsilon, "epsilon")

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        rms = self.get_slot(var, "rms")
        mom = self.get_slot(var, "momentum")
        hyper = [_cast_like(t, var) for t in (self._learning_rate_tensor, self._decay_tensor,
                                              self._momentum_tensor, self._epsilon_tensor)]
        if self._centered:
            mg = self.get_slot(var, "mg")
            return training_ops.apply_centered_rms_prop(
                var, mg, rms, mom, *hyper, grad, use_locking=self._use_locking).op
        return training_ops.apply_rms_prop(var, rms, mom, *hyper, grad,
                                           use_locking=self._use_locking).op

    def _apply_sparse(self, grad: IndexedSlices, var: Variable) -> Operation:
        rms = self.get_slot(var, "rms")
        mom = self.get_slot(var, "momentum")
        hyper = [_cast_like(t, var) for t in (self._learning_rate_tensor, self._decay_tensor,
                                              self._momentum_tensor, self._epsilon_tensor)]
        if self._centered:
            mg = self.get_slot(var, "mg")
            return training_ops.sparse_apply_centered_rms_prop(
                var, mg, rms, mom, *hyper, grad.values, grad.indices,
                use_locking=self._use_locking).op
        return training_ops.sparse_apply_rms_prop(var, rms, mom, *hyper, grad.values,
                                                  grad.indices, use_locking=self._use_locking).op
