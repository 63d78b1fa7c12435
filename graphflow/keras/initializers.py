"""``gf.keras.initializers``: graphflow's initializers under Keras names, with Keras defaults.

``get("glorot_uniform")``, ``get({"class_name": "RandomUniform", "config": {...}})``
or an initializer object; :func:`serialize` gives the dict form saved in model files.
"""

from __future__ import annotations

from typing import Any

from graphflow.ops import init_ops
from graphflow.ops.init_ops import (
    Constant,
    GlorotNormal,
    GlorotUniform,
    Initializer,
    Ones,
    Orthogonal,
    VarianceScaling,
    Zeros,
)


class RandomNormal(init_ops.RandomNormal):
    """Normal values; Keras's defaults ``mean=0``, ``stddev=0.05``."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None,
                 dtype: Any = "float32") -> None:
        super().__init__(mean, stddev, seed, dtype)


class TruncatedNormal(init_ops.TruncatedNormal):
    """Truncated normal values; Keras's defaults ``mean=0``, ``stddev=0.05``."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None,
                 dtype: Any = "float32") -> None:
        super().__init__(mean, stddev, seed, dtype)


class RandomUniform(init_ops.RandomUniform):
    """Uniform values; Keras's defaults ``minval=-0.05``, ``maxval=0.05``."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None,
                 dtype: Any = "float32") -> None:
        super().__init__(minval, maxval, seed, dtype)


def he_normal(seed: int | None = None) -> VarianceScaling:
    """He normal: truncated normal with variance 2 / fan_in."""
    return VarianceScaling(2.0, "fan_in", "truncated_normal", seed)


def he_uniform(seed: int | None = None) -> VarianceScaling:
    """He uniform: limit sqrt(6 / fan_in)."""
    return VarianceScaling(2.0, "fan_in", "uniform", seed)


def lecun_normal(seed: int | None = None) -> VarianceScaling:
    """LeCun normal: truncated normal with variance 1 / fan_in."""
    return VarianceScaling(1.0, "fan_in", "truncated_normal", seed)


def lecun_uniform(seed: int | None = None) -> VarianceScaling:
    """LeCun uniform: limit sqrt(3 / fan_in)."""
    return VarianceScaling(1.0, "fan_in", "uniform", seed)


_CLASSES: dict[str, type[Initializer]] = {
    c.__name__: c for c in (Zeros, Ones, Constant, RandomNormal, TruncatedNormal, RandomUniform,
                            VarianceScaling, GlorotUniform, GlorotNormal, Orthogonal)}
_NAMES: dict[str, Any] = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_normal": RandomNormal,
    "normal": RandomNormal, "truncated_normal": TruncatedNormal,
    "random_uniform": RandomUniform, "uniform": RandomUniform,
    "variance_scaling": VarianceScaling, "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal, "orthogonal": Orthogonal, "he_normal": he_normal,
    "he_uniform": he_uniform, "lecun_normal": lecun_normal, "lecun_uniform": lecun_uniform,
}


def get(identifier: Any) -> Any:
    """An initializer from a Keras name, a serialized dict, an initializer, or None.

    Raises:
      ValueError: for an unknown name or class.
    """
    if identifier is None or isinstance(identifier, Initializer) or (
            callable(identifier) and not isinstance(identifier, (str, dict, type))):
        return identifier
    if isinstance(identifier, str):
        try:
            return _NAMES[identifier]()
        except KeyError:
            raise ValueError(f"Unknown initializer: {identifier!r}") from None
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    raise ValueError(f"Could not interpret initializer identifier: {identifier!r}")


def serialize(init: Any) -> dict[str, Any] | None:
    """``{"class_name": ..., "config": ...}`` for an initializer (None stays None).

    Raises:
      ValueError: for an initializer graphflow cannot rebuild (a plain function).
    """
    if init is None:
        return None
    name = type(init).__name__
    known = set(_CLASSES.values()) | {init_ops.RandomNormal, init_ops.TruncatedNormal,
                                      init_ops.RandomUniform}
    if name not in _CLASSES or type(init) not in known:
        raise ValueError(f"Initializer {init!r} cannot be serialized; use one of "
                         f"{', '.join(sorted(_CLASSES))}")
    return {"class_name": name, "config": init.get_config()}


def deserialize(config: dict[str, Any]) -> Initializer:
    """Rebuilds an initializer from :func:`serialize` output (known classes only).

    Raises:
      ValueError: for an unknown class or malformed config.
    """
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(f"Malformed initializer config: {config!r}")
    cls = _CLASSES.get(config["class_name"])
    if cls is None:
        raise ValueError(f"Unknown initializer class: {config['class_name']!r}")
    kwargs = config.get("config") or {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"Malformed initializer config: {config!r}")
    return cls(**kwargs)


zeros = Zeros
ones = Ones
constant = Constant
glorot_uniform = GlorotUniform
glorot_normal = GlorotNormal
orthogonal = Orthogonal

__all__ = ["Constant", "GlorotNormal", "GlorotUniform", "Initializer", "Ones", "Orthogonal",
           "RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling", "Zeros",
           "constant", "deserialize", "get", "glorot_normal", "glorot_uniform", "he_normal",
           "he_uniform", "lecun_normal", "lecun_uniform", "ones", "orthogonal", "serialize",
           "zeros"]
