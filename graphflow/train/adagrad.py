"""AdagradOptimizer (TF1's ``tf.train.AdagradOptimizer``)."""

from __future__ import annotations

from typing import Any

from graphflow.framework.graph import Operation, Tensor
from graphflow.framework.indexed_slices import IndexedSlices
from graphflow.ops import training_ops
from graphflow.ops.state_ops import Variable
from graphflow.train.optimizer import Optimizer, _cast_like


class AdagradOptimizer(Optimizer):
    """Adagrad: ``accum += grad^2``; ``var -= learning_rate * grad / sqrt(accum)``.

    The accumulator is the slot ``"accumulator"`` (variable ``<var>/Adagrad``),
    starting at ``initial_accumulator_value``. A sparse gradient updates only its
    rows (``SparseApplyAdagrad``).

    Args:
      learning_rate: a float, a scalar Tensor or a callable returning one.
      initial_accumulator_value: the accumulators' starting value; must be positive.
      use_locking: accepted for TF1 compatibility.
      name: name scope of the update ops (default ``"Adagrad"``).

    Raises:
      ValueError: if ``initial_accumulator_value`` is not positive.
    """

    def __init__(self, learning_rate: Any, initial_accumulator_value: float = 0.1,
                 use_locking: bool = False, name: str = "Adagrad") -> None:
        if initial_accumulator_value <= 0.0:
            raise ValueError(f"initial_accumulator_value must be positive: "
                             f"{initial_accumulator_value}")
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._initial_accumulator_value = initial_accumulator_value

    def _create_slots(self, var_list: list[Variable]) -> None:
        for v in var_list:
            self._get_or_make_slot_with_value(v, self._initial_accumulator_value,
                                              "accumulator", self._name)

    def _prepare(self) -> None:
        self._learning_rate_tensor = self._hyper(self._learning_rate, "learning_rate")

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        acc = self.get_slot(var, "accumulator")
        return training_ops.apply_adagrad(var, acc, _cast_like(self._learning_rate_tensor, var),
                                          grad, use_locking=self._use_locking).op

    def _apply_sparse(self, grad: IndexedSlices, var: Variable) -> Operation:
        acc = self.get_slot(var, "accumulator")
        return training_ops.sparse_apply_adagrad(
            var, acc, _cast_like(self._learning_rate_tensor, var), grad.values, grad.indices,
            use_locking=self._use_locking).op
