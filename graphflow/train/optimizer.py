"""The Optimizer base class (TF1's ``tf.train.Optimizer``) and slot variables.

``minimize`` = ``compute_gradients`` (``gf.gradients`` of the loss with respect
to the variables) + ``apply_gradients`` (one update op per variable, from the
subclass's ``_apply_dense``, grouped into the returned train op). Everything
is added to the user's graph, where it can be inspected, saved and rendered.

A sparse gradient (an :class:`~graphflow.IndexedSlices`, e.g. of an embedding
table) is applied with ``_apply_sparse_duplicate_indices``: by default its
duplicate rows are summed (``Unique`` + ``UnsortedSegmentSum`` over the gathered
rows only) and ``_apply_sparse`` updates just those rows, as TF1 does.

Graph layout, as TF1 builds it for ``AdamOptimizer().minimize(loss)``::

    gradients/...                     the gradient ops
    w/Adam, w/Adam_1, beta1_power     slot and non-slot variables (not trainable)
    Adam/learning_rate, ...           hyperparameters as constants
    Adam/update_w/ApplyAdam           one update op per variable
    Adam                              the train op (a NoOp, or the global step's AssignAdd)
"""

from __future__ import annotations

from typing import Any

from graphflow.autodiff import gradients
from graphflow.framework import dtypes as _dt
from graphflow.framework.graph import (
    Graph,
    GraphKeys,
    Operation,
    Tensor,
    convert_to_tensor,
    get_default_graph,
)
from graphflow.framework.indexed_slices import IndexedSlices
from graphflow.ops.building import op_scope
from graphflow.ops.control_flow_ops import group
from graphflow.ops.control_flow_ops import tuple as _tuple
from graphflow.ops.state_ops import Variable, assign_add

_VALID_DTYPES = (_dt.float16, _dt.float32, _dt.float64)


def _flatten(x: Any) -> list[Any]:
    if isinstance(x, (list, tuple)):
        return [i for e in x for i in _flatten(e)]
    if isinstance(x, dict):
        return [i for k in sorted(x) for i in _flatten(x[k])]
    return [x]


def create_slot(primary: Variable, val: Any, name: str) -> Variable:
    """A non-trainable variable beside ``primary``, named ``<primary op name>/<name>``.

    ``val`` is the initial value, or a callable returning it (built inside the
    slot's scope). The name is made unique as TF1 makes it: the second slot
    called ``Adam`` of ``w`` is ``w/Adam_1``.
    """
    g = primary.graph
    # Outside any control-dependency context and name scope (TF1's init_scope and
    # variable_scope): slots are named after their variable, wherever minimize is called.
    with g.as_default(), g.control_dependencies(None), g.name_scope(None):
        return Variable(val, trainable=False, name=f"{primary.op.name}/{name}",
                        collections=[GraphKeys.GLOBAL_VARIABLES],
                        validate_shape=primary.shape.is_fully_defined())


def create_zeros_slot(primary: Variable, name: str, dtype: Any = None) -> Variable:
    """A slot of zeros with ``primary``'s shape (TF1's ``slot_creator.create_zeros_slot``)."""
    return create_slot_with_value(primary, 0, name, dtype)


def create_slot_with_value(primary: Variable, value: float, name: str,
                           dtype: Any = None) -> Variable:
    """A slot filled with ``value``, of ``primary``'s shape and (default) dtype."""
    from graphflow.ops.array_ops import fill, ones, shape, zeros
    from graphflow.ops.constant_op import constant

    d = _dt.as_dtype(dtype) if dtype is not None else primary.dtype

    def init() -> Tensor:
        if primary.shape.is_fully_defined():
            dims = primary.shape.as_list()
            if value == 0:
                return zeros(dims, d)
            if value == 1:
                return ones(dims, d)
            return fill(dims, constant(value, dtype=d))
        # An unknown shape: taken from the primary's initial value when it runs.
        return fill(shape(primary.initialized_value()), constant(value, dtype=d))

    return create_slot(primary, init, name)


class Optimizer:
    """Base class of optimizers (TF1's ``tf.train.Optimizer``).

    Subclasses implement ``_create_slots(var_list)``, ``_prepare()`` and
    ``_apply_dense(grad, var)`` (returning the update op), and may override
    ``_finish(update_ops, name)``.

    Args:
      use_locking: accepted for TF1 compatibility (updates never race here).
      name: the name scope of the ops ``apply_gradients`` adds, and of slots.

    Raises:
      ValueError: if ``name`` is empty.
    """

    GATE_NONE = 0
    GATE_OP = 1
    GATE_GRAPH = 2

    def __init__(self, use_locking: bool, name: str) -> None:
        if not name:
            raise ValueError("Must specify the optimizer name")
        self._use_locking = use_locking
        self._name = name
        # slot name -> {variable: slot variable}
        self._slots: dict[str, dict[Any, Variable]] = {}
        # (name, graph) -> variable
        self._non_slot_dict: dict[tuple[str, Graph], Variable] = {}

    def get_name(self) -> str:
        """The optimizer's name."""
        return self._name

    # --- the public API -------------------------------------------------------------
    def minimize(self, loss: Tensor, global_step: Any = None, var_list: Any = None,
                 gate_gradients: int = GATE_OP, aggregation_method: Any = None,
                 colocate_gradients_with_ops: bool = False, name: str | None = None,
                 grad_loss: Tensor | None = None) -> Operation:
        """Adds ops that update ``var_list`` to minimize ``loss``.

        ``compute_gradients`` followed by ``apply_gradients``; call those two
        yourself to process the gradients in between (e.g. clip them).

        Args:
          loss: a float scalar Tensor to minimize.
          global_step: optional integer Variable incremented by one after the
            variables have been updated.
          var_list: Variables to update (default: the graph's
            TRAINABLE_VARIABLES collection).
          gate_gradients: ``GATE_NONE``, ``GATE_OP`` or ``GATE_GRAPH``.
          aggregation_method, colocate_gradients_with_ops: passed to
            ``gf.gradients`` (accepted for TF1 compatibility).
          name: name of the returned op (default: the optimizer's name).
          grad_loss: optional gradient of ``loss`` to start from.

        Returns:
          An Operation that updates the variables (and ``global_step``).

        Raises:
          ValueError: if there are no variables to optimize, or no variable
            receives a gradient from ``loss``.
        """
        grads_and_vars = self.compute_gradients(
            loss, var_list=var_list, gate_gradients=gate_gradients,
            aggregation_method=aggregation_method,
            colocate_gradients_with_ops=colocate_gradients_with_ops, grad_loss=grad_loss)
        vars_with_grad = [v for g, v in grads_and_vars if g is not None]
        if not vars_with_grad:
            raise ValueError(
                "No gradients provided for any variable, check your graph for ops that do not "
                f"support gradients, between variables {[str(v) for _, v in grads_and_vars]} "
                f"and loss {loss}.")
        return self.apply_gradients(grads_and_vars, global_step=global_step, name=name)

    def compute_gradients(self, loss: Tensor, var_list: Any = None,
                          gate_gradients: int = GATE_OP, aggregation_method: Any = None,
                          colocate_gradients_with_ops: bool = False,
                          grad_loss: Tensor | None = None) -> list[tuple[Tensor | None, Any]]:
        """Gradients of ``loss`` for the variables in ``var_list``.

        Args:
          loss: a float Tensor to minimize.
          var_list: Variables (a list or nested structure; default: the graph's
            TRAINABLE_VARIABLES collection).
          gate_gradients: ``GATE_GRAPH`` makes every gradient wait for all of them.
          aggregation_method, colocate_gradients_with_ops: accepted for TF1
            compatibility.
          grad_loss: optional gradient of ``loss`` to start from.

        Returns:
          A list of ``(gradient, variable)`` pairs; the gradient is None for a
          variable ``loss`` does not depend on.

        Raises:
          ValueError: for a bad ``gate_gradients``, a non-float loss or
            variable, or no variables to optimize.
        """
        if callable(loss) and not isinstance(loss, Tensor):
            raise NotImplementedError("graphflow builds graphs: pass the loss tensor, not a "
                                      "callable")
        if gate_gradients not in (self.GATE_NONE, self.GATE_OP, self.GATE_GRAPH):
            raise ValueError("gate_gradients must be one of: Optimizer.GATE_NONE, "
                             f"Optimizer.GATE_OP, Optimizer.GATE_GRAPH.  Not {gate_gradients}")
        loss = convert_to_tensor(loss)
        self._assert_valid_dtypes([loss])
        if grad_loss is not None:
            self._assert_valid_dtypes([convert_to_tensor(grad_loss)])
        if var_list is None:
            var_list = loss.graph.get_collection(GraphKeys.TRAINABLE_VARIABLES)
        else:
            var_list = _flatten(var_list)
        if not var_list:
            raise ValueError("No variables to optimize.")
        for v in var_list:
            if not isinstance(v, (Variable, Tensor)):
                raise TypeError(f"Trying to optimize unsupported type {type(v).__name__}: {v!r}")
        grads = gradients(loss, var_list, grad_ys=grad_loss,
                          gate_gradients=gate_gradients == self.GATE_OP,
                          aggregation_method=aggregation_method,
                          colocate_gradients_with_ops=colocate_gradients_with_ops)
        if gate_gradients == self.GATE_GRAPH:
            with loss.graph.as_default():
                grads = _gated(grads)
        grads_and_vars = list(zip(grads, var_list))
        self._assert_valid_dtypes([v for g, v in grads_and_vars if g is not None])
        return grads_and_vars

    def apply_gradients(self, grads_and_vars: Any, global_step: Any = None,
                        name: str | None = None) -> Operation:
        """Adds ops that apply the gradients to the variables.

        Args:
          grads_and_vars: ``(gradient, variable)`` pairs, as from
            ``compute_gradients``; pairs with a None gradient are skipped.
          global_step: optional integer Variable incremented by one after the
            updates.
          name: name of the returned op (default: the optimizer's name).

        Returns:
          An Operation applying the gradients (and incrementing ``global_step``).

        Raises:
          TypeError: if a gradient is not a Tensor, IndexedSlices or None.
          ValueError: if ``grads_and_vars`` is empty or has no gradient at all.
          NotImplementedError: for a variable that is not a ``gf.Variable``.
          RuntimeError: for a sparse gradient of a variable with a constraint.
        """
        grads_and_vars = tuple(grads_and_vars)
        if not grads_and_vars:
            raise ValueError("No variables provided.")
        converted = []
        for g, v in grads_and_vars:
            if g is not None and not isinstance(g, IndexedSlices):
                try:
                    g = convert_to_tensor(g)
                except (TypeError, ValueError):
                    raise TypeError(f"Gradient must be convertible to a Tensor or None: "
                                    f"{g}") from None
            if not isinstance(v, Variable):
                raise NotImplementedError(f"Trying to update a {type(v).__name__}: only "
                                          f"gf.Variable objects can be updated, got {v!r}")
            converted.append((g, v))
        var_list = [v for g, v in converted if g is not None]
        if not var_list:
            raise ValueError(f"No gradients provided for any variable: "
                             f"{[str(v) for _, v in converted]}.")
        graph = var_list[0].graph
        with graph.as_default():
            with graph.control_dependencies(None):
                self._create_slots(var_list)
            update_ops: list[Operation] = []
            with op_scope(name, self._name, []) as scope:
                self._prepare()
                for grad, var in converted:
                    if grad is None:
                        continue
                    with graph.name_scope("update_" + var.op.name):
                        update_ops.append(self._update(grad, var))
                if global_step is None:
                    apply_updates = self._finish(update_ops, scope)
                else:
                    with graph.control_dependencies([self._finish(update_ops, "update")]):
                        apply_updates = assign_add(global_step, 1, name=scope).op
            train_ops = graph.get_collection_ref(GraphKeys.TRAIN_OP)
            if apply_updates not in train_ops:
                train_ops.append(apply_updates)
        return apply_updates

    def _update(self, grad: Tensor | IndexedSlices, var: Variable) -> Operation:
        if isinstance(grad, IndexedSlices):
            if var.constraint is not None:
                raise RuntimeError("Cannot use a constraint function on a sparse variable.")
            op = self._apply_sparse_duplicate_indices(grad, var)
            return op.op if isinstance(op, Tensor) else op
        op = self._apply_dense(grad, var)
        if isinstance(op, Tensor):
            op = op.op
        if var.constraint is not None:
            with var.graph.control_dependencies([op]):
                # A fresh read, after the update (the snapshot holds the old value).
                op = var.assign(var.constraint(var.read_value())).op
        return op

    # --- slots ----------------------------------------------------------------------
    def get_slot(self, var: Any, name: str) -> Variable | None:
        """The slot ``name`` (e.g. ``"m"``) created for ``var``, or None."""
        named_slots = self._slots.get(name)
        if not named_slots:
            return None
        return named_slots.get(var)

    def get_slot_names(self) -> list[str]:
        """The names of the slots this optimizer creates, sorted (e.g. ``["m", "v"]``)."""
        return sorted(self._slots)

    def variables(self) -> list[Variable]:
        """The variables this optimizer created in the default graph, sorted by name."""
        g = get_default_graph()
        out = [v for (_, vg), v in self._non_slot_dict.items() if vg is g]
        for slots in self._slots.values():
            out.extend(v for v in slots.values() if v.graph is g)
        return sorted(out, key=lambda v: v.name)

    def _slot_dict(self, slot_name: str) -> dict[Any, Variable]:
        return self._slots.setdefault(slot_name, {})

    def _get_or_make_slot_with_value(self, var: Variable, value: float, slot_name: str,
                                     op_name: str) -> Variable:
        named_slots = self._slot_dict(slot_name)
        if var not in named_slots:
            named_slots[var] = create_slot_with_value(var, value, op_name)
        return named_slots[var]

    def _zeros_slot(self, var: Variable, slot_name: str, op_name: str) -> Variable:
        """The zero-initialised slot ``slot_name`` of ``var``, created on first use."""
        return self._get_or_make_slot_with_value(var, 0, slot_name, op_name)

    def _create_non_slot_variable(self, initial_value: Any, name: str,
                                  colocate_with: Variable) -> Variable:
        """A variable of the optimizer itself (e.g. Adam's ``beta1_power``), one per graph."""
        graph = colocate_with.graph
        key = (name, graph)
        v = self._non_slot_dict.get(key)
        if v is None:
            with graph.as_default(), graph.control_dependencies(None):
                v = Variable(initial_value, name=name, trainable=False)
            self._non_slot_dict[key] = v
        return v

    def _get_non_slot_variable(self, name: str, graph: Graph | None = None) -> Variable | None:
        return self._non_slot_dict.get((name, graph or get_default_graph()))

    # --- for subclasses -----------------------------------------------------------------
    def _create_slots(self, var_list: list[Variable]) -> None:
        """Creates the slots ``_apply_dense`` needs for each variable."""

    def _prepare(self) -> None:
        """Converts hyperparameters to tensors, inside the optimizer's name scope."""

    def _apply_dense(self, grad: Tensor, var: Variable) -> Any:
        """Adds the op that applies ``grad`` to ``var``."""
        raise NotImplementedError

    def _apply_sparse_duplicate_indices(self, grad: IndexedSlices, var: Variable) -> Any:
        """Sums the rows of ``grad`` that share an index, then calls ``_apply_sparse``.

        Subclasses whose update is linear in the gradient (gradient descent)
        override this to skip the summing.
        """
        values, indices = _deduplicate_indexed_slices(grad.values, grad.indices)
        return self._apply_sparse(IndexedSlices(values, indices, grad.dense_shape), var)

    def _apply_sparse(self, grad: IndexedSlices, var: Variable) -> Any:
        """Adds the op that applies ``grad`` (distinct indices) to rows of ``var``."""
        raise NotImplementedError(f"{type(self).__name__} cannot apply sparse gradients")

    def _finish(self, update_ops: list[Operation], name_scope: str) -> Operation:
        """Groups the update ops into the op called ``name_scope``."""
        return group(*update_ops, name=name_scope)

    @staticmethod
    def _call_if_callable(param: Any) -> Any:
        return param() if callable(param) else param

    def _hyper(self, value: Any, name: str) -> Tensor:
        """A hyperparameter as a tensor named ``name`` (a callable is called first)."""
        value = self._call_if_callable(value)
        if isinstance(value, (Tensor, Variable)):
            return convert_to_tensor(value)
        return convert_to_tensor(value, name=name)

    def _assert_valid_dtypes(self, tensors: list[Any]) -> None:
        for t in tensors:
            dtype = t.dtype
            if dtype not in _VALID_DTYPES:
                raise ValueError(f"Invalid type {dtype.name} for {t.name}, expected: "
                                 f"{[d.name for d in _VALID_DTYPES]}.")


def _deduplicate_indexed_slices(values: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
    """``(summed_values, unique_indices)``: rows of ``values`` with equal indices summed
    (TF1's helper of that name); only ``len(unique_indices)`` rows are computed."""
    from graphflow.ops.array_ops import shape
    from graphflow.ops.indexing_ops import unique
    from graphflow.ops.segment_ops import unsorted_segment_sum

    unique_indices, new_index_positions = unique(indices)
    summed = unsorted_segment_sum(values, new_index_positions, shape(unique_indices)[0])
    return summed, unique_indices


def _gated(grads: list[Any]) -> list[Any]:
    """``gf.tuple`` over gradients, IndexedSlices included (their parts are gated)."""
    flat: list[Any] = []
    for g in grads:
        if isinstance(g, IndexedSlices):
            flat.extend([g.values, g.indices])
        else:
            flat.append(g)
    gated = iter(_tuple(flat))
    out: list[Any] = []
    for g in grads:
        if isinstance(g, IndexedSlices):
            out.append(IndexedSlices(next(gated), next(gated), g.dense_shape))
        else:
            out.append(next(gated))
    return out


def _cast_like(t: Tensor, var: Variable) -> Tensor:
    from graphflow.ops.math_ops import cast

    return cast(t, var.dtype)
