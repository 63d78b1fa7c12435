"""AdamOptimizer (TF1's ``tf.train.AdamOptimizer``)."""

from __future__ import annotations

from typing import Any

from graphflow.framework.graph import Operation, Tensor, get_default_graph
from graphflow.framework.indexed_slices import IndexedSlices
from graphflow.ops import training_ops
from graphflow.ops.control_flow_ops import group
from graphflow.ops.indexing_ops import scatter_add
from graphflow.ops.math_ops import sqrt
from graphflow.ops.state_ops import Variable, assign, assign_sub
from graphflow.train.optimizer import Optimizer, _cast_like


class AdamOptimizer(Optimizer):
    """Adam (Kingma & Ba), with TF1's "epsilon hat" formulation.

    At step t (counting from 1)::

        lr_t = learning_rate * sqrt(1 - beta2^t) / (1 - beta1^t)
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad^2
        var -= lr_t * m / (sqrt(v) + epsilon)

    ``m`` and ``v`` are the slots ``"m"`` and ``"v"`` (variables ``<var>/Adam``
    and ``<var>/Adam_1``); ``beta1^t`` and ``beta2^t`` are the non-slot
    variables ``beta1_power`` and ``beta2_power``, multiplied by beta1 and beta2
    after every step.

    A sparse gradient follows TF1's ``_apply_sparse`` exactly: ``m`` and ``v``
    are decayed densely (``assign``), the gradient's rows are added with
    ``ScatterAdd``, and ``var`` gets the dense Adam step; this equals the dense
    update with zero gradient rows, while the gradient itself stays sparse.

    Args:
      learning_rate: a float, a scalar Tensor or a callable returning one.
      beta1: decay of the first-moment estimate.
      beta2: decay of the second-moment estimate.
      epsilon: added to ``sqrt(v)`` (TF1's "epsilon hat").
      use_locking: accepted for TF1 compatibility.
      name: name scope of the update ops (default ``"Adam"``).
    """

    def __init__(self, learning_rate: Any = 0.001, beta1: Any = 0.9, beta2: Any = 0.999,
                 epsilon: Any = 1e-8, use_locking: bool = False, name: str = "Adam") -> None:
        super().__init__(use_locking, name)
        self._lr = learning_rate
        self._beta1 = beta1
        self._beta2 = beta2
        self._epsilon = epsilon

    def _get_beta_accumulators(self) -> tuple[Variable, Variable]:
        g = get_default_graph()
        return (self._get_non_slot_variable("beta1_power", graph=g),
                self._get_non_slot_variable("beta2_power", graph=g))

    def _create_slots(self, var_list: list[Variable]) -> None:
        first_var = min(var_list, key=lambda x: x.name)
        self._create_non_slot_variable(self._call_if_callable(self._beta1), "beta1_power",
                                       first_var)
        self._create_non_slot_variable(self._call_if_callable(self._beta2), "beta2_power",
                                       first_var)
        for v in var_list:
            self._zeros_slot(v, "m", self._name)
            self._zeros_slot(v, "v", self._name)

    def _prepare(self) -> None:
        self._lr_t = self._hyper(self._lr, "learning_rate")
        self._beta1_t = self._hyper(self._beta1, "beta1")
        self._beta2_t = self._hyper(self._beta2, "beta2")
        self._epsilon_t = self._hyper(self._epsilon, "epsilon")

    def _apply_dense(self, grad: Tensor, var: Variable) -> Operation:
        m = self.get_slot(var, "m")
        v = self.get_slot(var, "v")
        beta1_power, beta2_power = self._get_beta_accumulators()
        return training_ops.apply_adam(
            var, m, v, _cast_like(beta1_power, var), _cast_like(beta2_power, var),
            _cast_like(self._lr_t, var), _cast_like(self._beta1_t, var),
            _cast_like(self._beta2_t, var), _cast_like(self._epsilon_t, var), grad,
            use_locking=self._use_locking).op

    def _apply_sparse(self, grad: IndexedSlices, var: Variable) -> Operation:
        beta1_power, beta2_power = self._get_beta_accumulators()
        beta1_power = _cast_like(beta1_power, var)
        beta2_power = _cast_like(beta2_power, var)
        lr_t = _cast_like(self._lr_t, var)
        beta1_t = _cast_like(self._beta1_t, var)
        beta2_t = _cast_like(self._beta2_t, var)
        epsilon_t = _cast_like(self._epsilon_t, var)
        lr = lr_t * sqrt(1 - beta2_power) / (1 - beta1_power)
        g = get_default_graph()
        # m_t = beta1 * m + (1 - beta1) * g_t
        m = self.get_slot(var, "m")
        m_scaled_g_values = grad.values * (1 - beta1_t)
        m_t = assign(m, m * beta1_t, use_locking=self._use_locking)
        with g.control_dependencies([m_t]):
            m_t = scatter_add(m, grad.indices, m_scaled_g_values,
                              use_locking=self._use_locking)
        # v_t = beta2 * v + (1 - beta2) * (g_t * g_t)
        v = self.get_slot(var, "v")
        v_scaled_g_values = (grad.values * grad.values) * (1 - beta2_t)
        v_t = assign(v, v * beta2_t, use_locking=self._use_locking)
        with g.control_dependencies([v_t]):
            v_t = scatter_add(v, grad.indices, v_scaled_g_values,
                              use_locking=self._use_locking)
        v_sqrt = sqrt(v_t)
        var_update = assign_sub(var, lr * m_t / (v_sqrt + epsilon_t),
                                use_locking=self._use_locking)
        return group(var_update, m_t, v_t)

    def _finish(self, update_ops: list[Operation], name_scope: str) -> Operation:
        # The beta powers advance once per step, after every variable's update.
        g = get_default_graph()
        with g.control_dependencies(update_ops):
            beta1_power, beta2_power = self._get_beta_accumulators()
            update_beta1 = beta1_power.assign(beta1_power * _cast_like(self._beta1_t,
                                                                       beta1_power),
                                              use_locking=self._use_locking)
            update_beta2 = beta2_power.assign(beta2_power * _cast_like(self._beta2_t,
                                                                       beta2_power),
                                              use_locking=self._use_locking)
        return group(*update_ops, update_beta1, update_beta2, name=name_scope)
