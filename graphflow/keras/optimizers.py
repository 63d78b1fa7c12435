"""``gf.keras.optimizers``: Keras's optimizer names and arguments over ``gf.train``.

Each class is a ``gf.train`` optimizer (TF1's update ops and slot names) taking
Keras's argument names and defaults, with ``get_config`` so models save their
training setup. ``get("adam")`` etc. give the Keras defaults.
"""

from __future__ import annotations

from typing import Any

from graphflow.framework.indexed_slices import IndexedSlices
from graphflow.ops import training_ops
from graphflow.ops.indexing_ops import scatter_sub
from graphflow.train.adagrad import AdagradOptimizer
from graphflow.train.adam import AdamOptimizer
from graphflow.train.momentum import MomentumOptimizer
from graphflow.train.optimizer import Optimizer, _cast_like
from graphflow.train.rmsprop import RMSPropOptimizer


def _lr(learning_rate: Any, kwargs: dict[str, Any]) -> Any:
    lr = kwargs.pop("lr", None)
    for k in ("decay", "clipnorm", "clipvalue"):
        if kwargs.pop(k, None):
            raise NotImplementedError(f"Keras optimizer argument {k!r} is not supported")
    if kwargs:
        raise TypeError(f"Unexpected keyword arguments: {sorted(kwargs)}")
    return learning_rate if lr is None else lr


def _number(v: Any) -> Any:
    if isinstance(v, (int, float, bool)) or v is None:
        return v
    raise ValueError(f"Optimizer hyperparameter {v!r} is not a number and cannot be saved")


class SGD(MomentumOptimizer):
    """Gradient descent, with optional (Nesterov) momentum.

    Args:
      learning_rate: the step size (default 0.01); ``lr`` is accepted too.
      momentum: 0 for plain gradient descent (no slot), else TF1's momentum.
      nesterov: Nesterov momentum.
      name: the optimizer's name scope.
    """

    def __init__(self, learning_rate: Any = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, name: str = "SGD", **kwargs: Any) -> None:
        super().__init__(_lr(learning_rate, kwargs), momentum, name=name,
                         use_nesterov=nesterov)
        self._plain = not isinstance(momentum, (int, float)) or momentum == 0

    def _create_slots(self, var_list):
        if not self._plain:
            super()._create_slots(var_list)

    def _apply_dense(self, grad, var):
        if self._plain:
            return training_ops.apply_gradient_descent(
                var, _cast_like(self._learning_rate_tensor, var), grad).op
        return super()._apply_dense(grad, var)

    def _apply_sparse_duplicate_indices(self, grad: IndexedSlices, var: Any) -> Any:
        if self._plain:
            values = grad.values * _cast_like(self._learning_rate_tensor, var)
            return scatter_sub(var, grad.indices, values)
        return super()._apply_sparse_duplicate_indices(grad, var)

    def get_config(self) -> dict[str, Any]:
        return {"name": self._name, "learning_rate": _number(self._learning_rate),
                "momentum": _number(self._momentum), "nesterov": self._use_nesterov}


class Adam(AdamOptimizer):
    """Adam with Keras's defaults (``epsilon=1e-7``) and TF1's "epsilon hat" update.

    Args:
      learning_rate: default 0.001; ``lr`` is accepted too.
      beta_1, beta_2: the moment decays.
      epsilon: added to ``sqrt(v)``.
      amsgrad: must be False.
      name: the optimizer's name scope.
    """

    def __init__(self, learning_rate: Any = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, name: str = "Adam",
                 **kwargs: Any) -> None:
        if amsgrad:
            raise NotImplementedError("Adam(amsgrad=True) is not supported")
        super().__init__(_lr(learning_rate, kwargs), beta_1, beta_2, epsilon, name=name)

    def get_config(self) -> dict[str, Any]:
        return {"name": self._name, "learning_rate": _number(self._lr),
                "beta_1": _number(self._beta1), "beta_2": _number(self._beta2),
                "epsilon": _number(self._epsilon), "amsgrad": False}


class RMSprop(RMSPropOptimizer):
    """RMSProp with Keras's argument names and defaults (TF1's update rule).

    Args:
      learning_rate: default 0.001; ``lr`` is accepted too.
      rho: the decay of the squared-gradient average.
      momentum: momentum of the update.
      epsilon: default 1e-7.
      centered: normalize by the centred second moment.
      name: the optimizer's name scope.
    """

    def __init__(self, learning_rate: Any = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, name: str = "RMSprop",
                 **kwargs: Any) -> None:
        super().__init__(_lr(learning_rate, kwargs), decay=rho, momentum=momentum,
                         epsilon=epsilon, centered=centered, name=name)

    def get_config(self) -> dict[str, Any]:
        return {"name": self._name, "learning_rate": _number(self._learning_rate),
                "rho": _number(self._decay), "momentum": _number(self._momentum),
                "epsilon": _number(self._epsilon), "centered": self._centered}


class Adagrad(AdagradOptimizer):
    """Adagrad with Keras's argument names (TF1's update rule, which has no epsilon).

    Args:
      learning_rate: default 0.001; ``lr`` is accepted too.
      initial_accumulator_value: the accumulators' start, > 0.
      epsilon: accepted for Keras compatibility; TF1's Adagrad update has none.
      name: the optimizer's name scope.
    """

    def __init__(self, learning_rate: Any = 0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, name: str = "Adagrad", **kwargs: Any) -> None:
        super().__init__(_lr(learning_rate, kwargs), initial_accumulator_value, name=name)
        self._keras_epsilon = epsilon

    def get_config(self) -> dict[str, Any]:
        return {"name": self._name, "learning_rate": _number(self._learning_rate),
                "initial_accumulator_value": _number(self._initial_accumulator_value),
                "epsilon": _number(self._keras_epsilon)}


_CLASSES: dict[str, type[Optimizer]] = {"SGD": SGD, "Adam": Adam, "RMSprop": RMSprop,
                                        "Adagrad": Adagrad}
_NAMES = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop, "adagrad": Adagrad}


def get(identifier: Any) -> Optimizer:
    """An optimizer from a Keras name (``"sgd"``, ``"adam"``, ``"rmsprop"``,
    ``"adagrad"``), a serialized dict, or an optimizer object (returned as is).

    Raises:
      ValueError: for an unknown name or object.
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Unknown optimizer: {identifier!r}; known: "
                             f"{', '.join(sorted(_NAMES))}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}")


def serialize(optimizer: Any) -> dict[str, Any] | None:
    """``{"class_name", "config"}`` for a Keras optimizer; None for others (not saved)."""
    if type(optimizer) in _CLASSES.values():
        try:
            return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}
        except ValueError:
            return None
    return None


def deserialize(config: dict[str, Any]) -> Optimizer:
    """A new optimizer from :func:`serialize` output.

    Raises:
      ValueError: for an unknown class or malformed config.
    """
    cls = _CLASSES.get(config.get("class_name")) if isinstance(config, dict) else None
    cfg = config.get("config") if isinstance(config, dict) else None
    if cls is None or not isinstance(cfg, dict):
        raise ValueError(f"Unknown or malformed optimizer config: {config!r}")
    return cls(**cfg)


__all__ = ["SGD", "Adagrad", "Adam", "Optimizer", "RMSprop", "deserialize", "get", "serialize"]
