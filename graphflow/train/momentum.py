"""MomentumOptimizer (TF1's ``tf.train.MomentumOptimizer``)."""

from __future__ import annotations

from typing import Any

from graphflow.framework.graph import Operation, Tensor
from graphflow.framework.indexed_slices import IndexedSlices
from graphflow.ops import training_ops
from graphflow.ops.state_ops import Variable
from graphflow.train.optimizer import Optimizer, _cast_like


class MomentumOptimizer(Optimizer):
    """Gradient descent with momentum, TF1's formulation.

    ``accum = momentum * accum + grad``; ``var -= learning_rate * accum``. With
    ``use_nesterov``: ``var -= learning_rate * (grad + momentum * accum)``.
    The accumulator is the slot ``"momentum"`` (variable ``<var>/Momentum``).
    A sparse gradient updates only its rows of both (``SparseApplyMomentum``).

    Args:
      learning_rate: a float, a scalar Tensor or a callable returning one.
      momentum: a float, a scalar Tensor or a callable returning one.
      use_locking: accepted for TF1 compatibility.
      name: name scope of the update ops (default ``"Momentum"``).
      use_nesterov: use Nesterov momentum.
    """

    def __init__(self, learning_rate: Any, momentum: Any, use_locking: bool = False,
                 name: str = "Momentum", use_nesterov: bool = False) -> None:
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._momentum = momentum
        self._use_nesterov = use_nesterov

    def _create_slots(self, var_list: list[Variable]) -> None:
        for v in var_list:
            self._zeros_slot(v, "momentum", self._name)

    def _prepare(self) -> None:
        self._learning_rate_tensor = self._hyper(self._learning_rate, "learning_rate")
        self._momentum_tensor = self._hyper(self._momentum, "momentum")

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        mom = self.get_slot(var, "momentum")
        return training_ops.apply_momentum(
            var, mom, _cast_like(self._learning_rate_tensor, var), grad,
            _cast_like(self._momentum_tensor, var), use_locking=self._use_locking,
            use_nesterov=self._use_nesterov).op

    def _apply_sparse(self, grad: IndexedSlices, var: Variable) -> Operation:
        mom = self.get_slot(var, "momentum")
        return training_ops.sparse_apply_momentum(
            var, mom, _cast_like(self._learning_rate_tensor, var), grad.values, grad.indices,
            _cast_like(self._momentum_tensor, var), use_locking=self._use_locking,
            use_nesterov=self._use_nesterov).op
