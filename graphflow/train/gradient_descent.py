"""GradientDescentOptimizer (TF1's ``tf.train.GradientDescentOptimizer``)."""

from __future__ import annotations

from typing import Any

from graphflow.framework.graph import Operation, Tensor
from graphflow.framework.indexed_slices import IndexedSlices
from graphflow.ops import training_ops
from graphflow.ops.indexing_ops import scatter_sub
from graphflow.ops.state_ops import Variable
from graphflow.train.optimizer import Optimizer, _cast_like


class GradientDescentOptimizer(Optimizer):
    """Plain gradient descent: ``var -= learning_rate * grad``.

    A sparse gradient (IndexedSlices) updates only its rows, with one
    ``ScatterSub`` (duplicate rows accumulate), as TF1 does.

    Args:
      learning_rate: a float, a scalar Tensor (e.g. a decay schedule) or a
        callable returning one.
      use_locking: accepted for TF1 compatibility.
      name: name scope of the update ops (default ``"GradientDescent"``).
    """

    def __init__(self, learning_rate: Any, use_locking: bool = False,
                 name: str = "GradientDescent") -> None:
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate
        self._learning_rate_tensor: Tensor | None = None

    def _prepare(self) -> None:
        self._learning_rate_tensor = self._hyper(self._learning_rate, "learning_rate")

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        return training_ops.apply_gradient_descent(
            var, _cast_like(self._learning_rate_tensor, var), grad,
            use_locking=self._use_locking).op

    def _apply_sparse_duplicate_indices(self, grad: IndexedSlices, var: Variable) -> Tensor:
        # Linear in the gradient: duplicates need no summing, ScatterSub accumulates them.
        values = grad.values * _cast_like(self._learning_rate_tensor, var)
        return scatter_sub(var, grad.indices, values, use_locking=self._use_locking)
