"""Variable initializers with TF1's names, defaults and statistics (``tf.*_initializer``).

An initializer is called as ``init(shape, dtype=None, partition_info=None)`` and
returns a graph Tensor; random ones take their seed through TF1's seed rules.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from graphflow.framework import dtypes as _dt
from graphflow.framework.graph import Tensor


def _dtype(dtype: Any, default: _dt.DType) -> _dt.DType:
    return _dt.as_dtype(dtype) if dtype is not None else default


def _static_shape(shape: Any) -> list[int]:
    from graphflow.framework.tensor_shape import as_shape

    s = as_shape(shape)
    if not s.is_fully_defined():
        raise ValueError(f"initializers need a fully defined shape, got {s}")
    return list(s.values)


class Initializer:
    """Base class (TF1's ``tf.keras.initializers.Initializer`` v1 flavour)."""

    def __call__(self, shape: Any, dtype: Any = None, partition_info: Any = None) -> Tensor:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, for serialization."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Initializer:
        """Rebuilds an initializer from :meth:`get_config` output."""
        return cls(**config)


class Zeros(Initializer):
    """All zeros."""

    def __init__(self, dtype: Any = _dt.float32) -> None:
        self.dtype = _dt.as_dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        from graphflow.ops.array_ops import zeros

        return zeros(_static_shape(shape), _dtype(dtype, self.dtype))

    def get_config(self):
        return {"dtype": self.dtype.name}


class Ones(Zeros):
    """All ones."""

    def __call__(self, shape, dtype=None, partition_info=None):
        from graphflow.ops.array_ops import ones

        return ones(_static_shape(shape), _dtype(dtype, self.dtype))


class Constant(Initializer):
    """A constant value, broadcast or reshaped to the shape as ``gf.constant`` does."""

    def __init__(self, value: Any = 0, dtype: Any = _dt.float32,
                 verify_shape: bool = False) -> None:
        self.value = value
        self.dtype = _dt.as_dtype(dtype)
        self.verify_shape = verify_shape

    def __call__(self, shape, dtype=None, partition_info=None, verify_shape=None):
        from graphflow.ops.constant_op import constant

        verify = self.verify_shape if verify_shape is None else verify_shape
        return constant(self.value, dtype=_dtype(dtype, self.dtype), shape=_static_shape(shape),
                        verify_shape=verify)

    def get_config(self):
        value = self.value.tolist() if isinstance(self.value, np.ndarray) else self.value
        return {"value": value, "dtype": self.dtype.name, "verify_shape": self.verify_shape}


class RandomNormal(Initializer):
    """Normal values with ``mean`` and ``stddev``."""

    def __init__(self, mean: float = 0.0, stddev: float = 1.0, seed: int | None = None,
                 dtype: Any = _dt.float32) -> None:
        self.mean, self.stddev, self.seed = mean, stddev, seed
        self.dtype = _dt.as_dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        from graphflow.ops.random_ops import random_normal

        return random_normal(_static_shape(shape), self.mean, self.stddev,
                             _dtype(dtype, self.dtype), seed=self.seed)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed,
                "dtype": self.dtype.name}


class TruncatedNormal(RandomNormal):
    """Normal values redrawn beyond two standard deviations."""

    def __call__(self, shape, dtype=None, partition_info=None):
        from graphflow.ops.random_ops import truncated_normal

        return truncated_normal(_static_shape(shape), self.mean, self.stddev,
                                _dtype(dtype, self.dtype), seed=self.seed)


class RandomUniform(Initializer):
    """Uniform values on ``[minval, maxval)`` (maxval defaults to 1 for floats)."""

    def __init__(self, minval: float = 0, maxval: float | None = None, seed: int | None = None,
                 dtype: Any = _dt.float32) -> None:
        self.minval, self.maxval, self.seed = minval, maxval, seed
        self.dtype = _dt.as_dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        from graphflow.ops.random_ops import random_uniform

        return random_uniform(_static_shape(shape), self.minval, self.maxval,
                              _dtype(dtype, self.dtype), seed=self.seed)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed,
                "dtype": self.dtype.name}


def compute_fans(shape: list[int]) -> tuple[float, float]:
    """TF1's fan-in/fan-out of a weight shape (conv kernels count their receptive field)."""
    if len(shape) < 1:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    receptive = float(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


class VarianceScaling(Initializer):
    """Scale-aware random values (TF1's ``variance_scaling_initializer``).

    Args:
      scale: positive scaling factor.
      mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
      distribution: ``"truncated_normal"`` (TF1's ``"normal"`` means the same),
        ``"untruncated_normal"`` or ``"uniform"``.
      seed: op-level seed.
      dtype: float dtype.

    Raises:
      ValueError: for a non-positive scale or unknown mode/distribution.
    """

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: int | None = None,
                 dtype: Any = _dt.float32) -> None:
        if scale <= 0.0:
            raise ValueError(f"`scale` must be a positive float, got {scale}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"Invalid `mode` argument: {mode!r}")
        distribution = distribution.lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(f"Invalid `distribution` argument: {distribution!r}")
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed
        self.dtype = _dt.as_dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        from graphflow.ops.random_ops import random_normal, random_uniform, truncated_normal

        dims = _static_shape(shape)
        d = _dtype(dtype, self.dtype)
        fan_in, fan_out = compute_fans(dims)
        denom = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}
        scale = self.scale / max(1.0, denom[self.mode])
        if self.distribution == "truncated_normal":
            # 0.8796... is the stddev of a unit normal truncated to [-2, 2].
            stddev = math.sqrt(scale) / 0.87962566103423978
            return truncated_normal(dims, 0.0, stddev, d, seed=self.seed)
        if self.distribution == "untruncated_normal":
            return random_normal(dims, 0.0, math.sqrt(scale), d, seed=self.seed)
        limit = math.sqrt(3.0 * scale)
        return random_uniform(dims, -limit, limit, d, seed=self.seed)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed, "dtype": self.dtype.name}


class GlorotUniform(VarianceScaling):
    """Uniform Glorot/Xavier: the default initializer of ``gf.get_variable``."""

    def __init__(self, seed: int | None = None, dtype: Any = _dt.float32) -> None:
        super().__init__(1.0, "fan_avg", "uniform", seed, dtype)

    def get_config(self):
        return {"seed": self.seed, "dtype": self.dtype.name}


class GlorotNormal(VarianceScaling):
    """Truncated-normal Glorot/Xavier."""

    def __init__(self, seed: int | None = None, dtype: Any = _dt.float32) -> None:
        super().__init__(1.0, "fan_avg", "truncated_normal", seed, dtype)

    def get_config(self):
        return {"seed": self.seed, "dtype": self.dtype.name}


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix scaled by ``gain``, from the QR of a normal matrix.

    Shapes of rank > 2 are flattened to ``[prod(shape[:-1]), shape[-1]]`` first.

    Raises:
      ValueError: for shapes of rank < 2.
    """

    def __init__(self, gain: float = 1.0, seed: int | None = None,
                 dtype: Any = _dt.float32) -> None:
        self.gain, self.seed = gain, seed
        self.dtype = _dt.as_dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        from graphflow.ops.array_ops import eye, reshape, transpose
        from graphflow.ops.linalg_ops import qr
        from graphflow.ops.math_ops import multiply, reduce_sum, sign
        from graphflow.ops.random_ops import random_normal

        dims = _static_shape(shape)
        if len(dims) < 2:
            raise ValueError("The tensor to initialize must be at least two-dimensional")
        d = _dtype(dtype, self.dtype)
        rows, cols = int(np.prod(dims[:-1])), dims[-1]
        flat = [max(rows, cols), min(rows, cols)]
        a = random_normal(flat, dtype=d, seed=self.seed)
        q, r = qr(a)
        # Make the decomposition unique (positive diagonal of r), as TF1 does.
        diag = reduce_sum(multiply(r, eye(flat[1], dtype=d)), axis=0)
        q = multiply(q, sign(diag))
        if rows < cols:
            q = transpose(q)
        q = multiply(q, self.gain)
        return reshape(q, dims)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed, "dtype": self.dtype.name}


def he_normal(seed: int | None = None) -> VarianceScaling:
    """He et al. normal initializer: variance 2 / fan_in, truncated."""
    return VarianceScaling(2.0, "fan_in", "truncated_normal", seed)


def he_uniform(seed: int | None = None) -> VarianceScaling:
    """He et al. uniform initializer: limit sqrt(6 / fan_in)."""
    return VarianceScaling(2.0, "fan_in", "uniform", seed)


def lecun_normal(seed: int | None = None) -> VarianceScaling:
    """LeCun normal initializer: variance 1 / fan_in, truncated."""
    return VarianceScaling(1.0, "fan_in", "truncated_normal", seed)


def lecun_uniform(seed: int | None = None) -> VarianceScaling:
    """LeCun uniform initializer: limit sqrt(3 / fan_in)."""
    return VarianceScaling(1.0, "fan_in", "uniform", seed)


# TF1's lower-case names.
zeros_initializer = Zeros
ones_initializer = Ones
constant_initializer = Constant
random_normal_initializer = RandomNormal
random_uniform_initializer = RandomUniform
truncated_normal_initializer = TruncatedNormal
variance_scaling_initializer = VarianceScaling
glorot_uniform_initializer = GlorotUniform
glorot_normal_initializer = GlorotNormal
orthogonal_initializer = Orthogonal

__all__ = [
    "zeros_initializer", "ones_initializer", "constant_initializer",
    "random_normal_initializer", "random_uniform_initializer", "truncated_normal_initializer",
    "variance_scaling_initializer", "glorot_uniform_initializer", "glorot_normal_initializer",
    "orthogonal_initializer",
]
