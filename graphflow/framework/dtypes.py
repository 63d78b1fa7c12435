"""The dtypes graphflow supports, with TF1's names and conversion rules."""

from __future__ import annotations

from typing import Any

import numpy as np


class DType:
    """A tensor element type (TF1's ``tf.DType``).

    Attributes:
      name: TF1 name, e.g. ``"float32"``.
      as_numpy_dtype: the NumPy scalar type.
    """

    __slots__ = ("name", "as_numpy_dtype", "_np")

    def __init__(self, name: str, np_type: type) -> None:
        self.name = name
        self.as_numpy_dtype = np_type
        self._np = np.dtype(np_type)

    @property
    def np(self) -> np.dtype:
        """The ``numpy.dtype`` of this type."""
        return self._np

    @property
    def base_dtype(self) -> DType:
        return self

    @property
    def is_floating(self) -> bool:
        return self._np.kind == "f"

    @property
    def is_integer(self) -> bool:
        return self._np.kind in "iu"

    @property
    def is_bool(self) -> bool:
        return self._np.kind == "b"

    @property
    def is_numeric(self) -> bool:
        return not self.is_bool

    @property
    def is_unsigned(self) -> bool:
        return self._np.kind == "u"

    @property
    def size(self) -> int:
        return self._np.itemsize

    @property
    def min(self) -> Any:
        if self.is_bool:
            return False
        return np.finfo(self._np).min if self.is_floating else np.iinfo(self._np).min

    @property
    def max(self) -> Any:
        if self.is_bool:
            return True
        return np.finfo(self._np).max if self.is_floating else np.iinfo(self._np).max

    def is_compatible_with(self, other: Any) -> bool:
        return as_dtype(other) is self

    def __repr__(self) -> str:
        return f"tf.{self.name}"

    def __str__(self) -> str:
        return f"<dtype: '{self.name}'>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DType):
            return self is other
        try:
            return as_dtype(other) is self
        except TypeError:
            return False

    def __hash__(self) -> int:
        return hash(self.name)

    def __reduce__(self):  # dtypes are singletons, also across copy/deepcopy
        return as_dtype, (self.name,)


float16 = DType("float16", np.float16)
float32 = DType("float32", np.float32)
float64 = DType("float64", np.float64)
int8 = DType("int8", np.int8)
int16 = DType("int16", np.int16)
int32 = DType("int32", np.int32)
int64 = DType("int64", np.int64)
uint8 = DType("uint8", np.uint8)
bool_ = DType("bool", np.bool_)
half = float16
double = float64

ALL = (float16, float32, float64, int8, int16, int32, int64, uint8, bool_)
FLOATS = (float16, float32, float64)
INTS = (int8, int16, int32, int64, uint8)
SIGNED = (float16, float32, float64, int8, int16, int32, int64)
NUMERIC = FLOATS + INTS
REALS = NUMERIC

_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update({"float": float32, "double": float64, "half": float16})
_BY_NP = {d.np: d for d in ALL}


def as_dtype(type_value: Any) -> DType:
    """Converts ``type_value`` to a :class:`DType`.

    Args:
      type_value: a DType, a NumPy dtype or scalar type, a Python type
        (``float`` -> float32, ``int`` -> int32, ``bool``), or a TF1 name.

    Returns:
      The matching DType.

    Raises:
      TypeError: if the value names no supported type.
    """
    if isinstance(type_value, DType):
        return type_value
    if isinstance(type_value, str):
        d = _BY_NAME.get(type_value)
        if d is not None:
            return d
    elif type_value is float:
        return float32
    elif type_value is int:
        return int32
    elif type_value is bool:
        return bool_
    else:
        try:
            d = _BY_NP.get(np.dtype(type_value))
        except TypeError:
            d = None
        if d is not None:
            return d
    raise TypeError(
        f"Cannot convert {type_value!r} to a graphflow dtype; supported: "
        + ", ".join(d.name for d in ALL)
    )
