"""Conversions between graphflow values and messages: dtypes, shapes, tensors, attrs.

Everything read from a file is validated here before it is used: dtype enums must
name a graphflow dtype, dims must be -1 or more, and a tensor's declared size must
match the bytes actually present before any array is allocated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from graphflow.framework import dtypes as _dt
from graphflow.framework import errors
from graphflow.framework.tensor_shape import TensorShape, as_shape
from graphflow.io.messages import (
    DATA_TYPES,
    AttrValue,
    Dim,
    ExternalData,
    ListValue,
    TensorProto,
    TensorShapeProto,
)

#: Largest tensor (in bytes) a TensorProto may describe with fewer values than elements
#: (TF's "repeat the last value" form). Anything larger must carry all of its bytes.
MAX_FILL_BYTES = 1 << 26

_DT_TO_ENUM = {
    _dt.float32: 1, _dt.float64: 2, _dt.int32: 3, _dt.uint8: 4, _dt.int16: 5, _dt.int8: 6,
    _dt.int64: 9, _dt.bool_: 10, _dt.float16: 19,
}
_ENUM_TO_DT = {v: k for k, v in _DT_TO_ENUM.items()}
_TF_ONLY_TYPES = {7: "DT_STRING", 8: "DT_COMPLEX64", 11: "DT_QINT8", 12: "DT_QUINT8",
                  13: "DT_QINT32", 14: "DT_BFLOAT16", 17: "DT_UINT16", 18: "DT_COMPLEX128",
                  20: "DT_RESOURCE", 21: "DT_VARIANT", 22: "DT_UINT32", 23: "DT_UINT64"}
_ENUM_NAMES = {v: k for k, v in DATA_TYPES.items()} | _TF_ONLY_TYPES

# Which typed-value field of TensorProto holds each dtype's values.
_VALUE_FIELD = {
    _dt.float32: "float_val", _dt.float64: "double_val", _dt.int32: "int_val",
    _dt.int16: "int_val", _dt.int8: "int_val", _dt.uint8: "int_val", _dt.int64: "int64_val",
    _dt.bool_: "bool_val", _dt.float16: "half_val",
}


def _invalid(where: str, what: str) -> errors.InvalidArgumentError:
    return errors.InvalidArgumentError(None, None, f"{where}: {what}")


def dtype_to_enum(dtype: Any) -> int:
    """The ``DataType`` enum value of a graphflow dtype.

    Raises:
      TypeError: if ``dtype`` is not a graphflow dtype.
    """
    return _DT_TO_ENUM[_dt.as_dtype(dtype)]


def enum_to_dtype(value: int, where: str = "") -> _dt.DType:
    """The graphflow dtype of a ``DataType`` enum value.

    Args:
      value: the enum value read from a file.
      where: what is being read, for the error message.

    Returns:
      The DType.

    Raises:
      errors.InvalidArgumentError: for DT_INVALID or a type graphflow does not have.
    """
    d = _ENUM_TO_DT.get(value)
    if d is None:
        name = _ENUM_NAMES.get(value, "not a known DataType")
        raise _invalid(where or "DataType", f"unsupported dtype enum {value} ({name}); "
                       f"graphflow has {', '.join(x.name for x in _DT_TO_ENUM)}")
    return d


def shape_to_proto(shape: Any) -> TensorShapeProto:
    """A TensorShapeProto for a (partially known) static shape.

    Args:
      shape: a TensorShape, list or tuple (None for unknown dims or rank).

    Returns:
      The TensorShapeProto (unknown dims as -1).
    """
    shape = as_shape(shape)
    if shape.ndims is None:
        return TensorShapeProto(unknown_rank=True)
    return TensorShapeProto(dim=[Dim(size=-1 if d is None else int(d)) for d in shape.values])


def proto_to_shape(proto: TensorShapeProto | None, where: str = "") -> TensorShape:
    """The static shape a TensorShapeProto describes.

    Raises:
      errors.InvalidArgumentError: for dims below -1, or dims with unknown_rank.
    """
    if proto is None:
        return TensorShape([])
    if proto.unknown_rank:
        if proto.dim:
            raise _invalid(where or "shape", "a shape with unknown rank cannot list dims")
        return TensorShape(None)
    dims = []
    for i, d in enumerate(proto.dim):
        if d.size < -1:
            raise _invalid(where or "shape", f"dimension {i} has size {d.size}; sizes are "
                                             ">= 0, or -1 for unknown")
        dims.append(None if d.size == -1 else d.size)
    return TensorShape(dims)


def _le(dtype: np.dtype) -> np.dtype:
    return dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype


def array_bytes(arr: np.ndarray) -> memoryview:
    """The little-endian row-major bytes of ``arr``, without a copy when possible.

    Args:
      arr: a NumPy array.

    Returns:
      A memoryview of bytes.
    """
    a = np.ascontiguousarray(arr, dtype=_le(arr.dtype))
    return memoryview(a.reshape(-1).view(np.uint8))


def make_tensor_proto(values: Any, dtype: Any = None, shape: Any = None) -> TensorProto:
    """A TensorProto holding ``values`` (TF1's ``tf.make_tensor_proto``).

    Args:
      values: a NumPy array, Python scalar or nested list.
      dtype: the element type; inferred as ``gf.constant`` does when None.
      shape: optional shape; a single value is broadcast to it, as many values are
        reshaped to it.

    Returns:
      A TensorProto with ``tensor_content`` set.

    Raises:
      TypeError: if the values do not fit ``dtype``.
      ValueError: if the values do not fit ``shape``.
    """
    from graphflow.ops.constant_op import to_numpy

    arr = to_numpy(values, None if dtype is None else _dt.as_dtype(dtype))
    d = _dt.as_dtype(arr.dtype)
    if shape is not None:
        target = tuple(as_shape(shape).as_list())
        if arr.size == 1:
            arr = np.broadcast_to(arr.reshape(()), target)
        elif arr.size == int(np.prod(target, dtype=np.int64)):
            arr = arr.reshape(target)
        else:
            raise ValueError(f"Cannot make a tensor of shape {target} from {arr.size} values")
    return TensorProto(dtype=_DT_TO_ENUM[d], tensor_shape=shape_to_proto(arr.shape),
                       tensor_content=array_bytes(arr))


def tensor_nbytes(tensor: TensorProto, where: str) -> tuple[_dt.DType, tuple[int, ...], int]:
    """The dtype, shape and byte size a TensorProto declares, all validated.

    Raises:
      errors.InvalidArgumentError: for an unsupported dtype or a shape that is not
        fully defined.
    """
    dtype = enum_to_dtype(tensor.dtype, where)
    shape = proto_to_shape(tensor.tensor_shape, where)
    if not shape.is_fully_defined():
        raise _invalid(where, f"a tensor value must have a fully defined shape, got {shape}")
    dims = tuple(shape.as_list())
    numel = 1
    for d in dims:
        numel *= d
    return dtype, dims, numel * dtype.size


def make_ndarray(tensor: TensorProto, where: str = "tensor",
                 external: Callable[[ExternalData, int, str], Any] | None = None
                 ) -> np.ndarray:
    """The value of a TensorProto as a read-only NumPy array (TF1's ``tf.make_ndarray``).

    Args:
      tensor: the TensorProto.
      where: what is being read (file and node), for error messages.
      external: reads the bytes of a tensor stored outside the message:
        ``external(ref, nbytes, where) -> buffer``; None if none may be.

    Returns:
      A read-only ndarray in native byte order.

    Raises:
      errors.InvalidArgumentError: for an unsupported dtype, a bad shape, or values
        that do not fit the declared size.
      errors.DataLossError: if external bytes are damaged.
    """
    dtype, dims, nbytes = tensor_nbytes(tensor, where)
    numel = nbytes // dtype.size if dtype.size else 0
    le = _le(dtype.np)
    if tensor.external is not None:
        if external is None:
            raise _invalid(where, f"the tensor's bytes are in the side file "
                                  f"{tensor.external.location!r}; load the file with "
                                  "gf.io.read_graph(path) so the side file can be found")
        if tensor.external.length != nbytes:
            raise _invalid(where, f"tensor of dtype {dtype.name} and shape {list(dims)} needs "
                                  f"{nbytes} bytes, but its side-file reference holds "
                                  f"{tensor.external.length}")
        buf = external(tensor.external, nbytes, where)
        arr = np.frombuffer(buf, dtype=le, count=numel).reshape(dims)
    elif len(tensor.tensor_content) or (numel == 0 and not _has_values(tensor)):
        content = tensor.tensor_content
        if len(content) != nbytes:
            raise _invalid(where, f"tensor of dtype {dtype.name} and shape {list(dims)} needs "
                                  f"{nbytes} bytes, but its tensor_content has {len(content)}")
        arr = np.frombuffer(content, dtype=le, count=numel).reshape(dims)
    else:
        arr = _from_values(tensor, dtype, dims, numel, nbytes, where)
    if arr.dtype != dtype.np:
        arr = arr.astype(dtype.np)
    if arr.flags.writeable:
        arr.flags.writeable = False
    return arr


def _has_values(tensor: TensorProto) -> bool:
    return any(len(getattr(tensor, name)) for name in set(_VALUE_FIELD.values()))


def _from_values(tensor: TensorProto, dtype: _dt.DType, dims: tuple[int, ...], numel: int,
                 nbytes: int, where: str) -> np.ndarray:
    field = _VALUE_FIELD[dtype]
    for other in set(_VALUE_FIELD.values()) - {field}:
        if len(getattr(tensor, other)):
            raise _invalid(where, f"a {dtype.name} tensor holds values in {other}; they "
                                  f"belong in {field}")
    values = np.asarray(getattr(tensor, field))
    count = values.size
    if count > numel:
        raise _invalid(where, f"tensor of shape {list(dims)} has {numel} elements but "
                              f"{count} values")
    if count < numel and nbytes > MAX_FILL_BYTES:
        raise _invalid(where, f"tensor of shape {list(dims)} declares {nbytes} bytes but "
                              f"holds only {count} values; refusing to expand beyond "
                              f"{MAX_FILL_BYTES} bytes")
    if dtype is _dt.float16:
        if count and (values.min() < 0 or values.max() > 0xFFFF):
            raise _invalid(where, "half_val entries must be 16-bit patterns")
        values = values.astype(np.uint16).view(np.float16)
    elif dtype.is_integer and count:
        info = np.iinfo(dtype.np)
        if values.min() < info.min or values.max() > info.max:
            raise _invalid(where, f"values out of range for {dtype.name}")
    values = values.astype(dtype.np)
    if count == numel:
        return values.reshape(dims)
    fill = values[-1] if count else np.zeros((), dtype.np)
    out = np.full(numel, fill, dtype=dtype.np)
    out[:count] = values
    return out.reshape(dims)


# --- attribute values ---------------------------------------------------------------
def _kind(v: Any) -> str | None:
    if isinstance(v, (bool, np.bool_)):
        return "b"
    if isinstance(v, (int, np.integer)):
        return "i"
    if isinstance(v, (float, np.floating)):
        return "d"
    if isinstance(v, str):
        return "s"
    if isinstance(v, _dt.DType):
        return "type"
    if isinstance(v, TensorShape):
        return "shape"
    if isinstance(v, np.ndarray):
        return "tensor"
    return None


def _scalar_attr(kind: str, v: Any) -> Any:
    if kind == "b":
        return bool(v)
    if kind == "i":
        v = int(v)
        if not -(1 << 63) <= v < (1 << 63):
            raise ValueError(f"integer {v} does not fit in 64 bits")
        return v
    if kind == "d":
        return float(v)
    if kind == "s":
        return v.encode("utf-8")
    if kind == "type":
        return _DT_TO_ENUM[v]
    if kind == "shape":
        return shape_to_proto(v)
    if kind == "tensor":
        if v.dtype not in _dt._BY_NP:
            raise ValueError(f"arrays of NumPy dtype {v.dtype} cannot be stored")
        return make_tensor_proto(v)
    raise AssertionError(kind)


def attr_to_proto(value: Any, where: str = "attr") -> AttrValue:
    """The AttrValue of an op attribute.

    Args:
      value: None, a bool, int, float, str, DType, TensorShape, NumPy array, or a
        tuple/list of one of those kinds (empty allowed).
      where: the node and attr, for error messages.

    Returns:
      An AttrValue.

    Raises:
      errors.InvalidArgumentError: for a value of another type.
    """
    try:
        if value is None:
            return AttrValue(none=True)
        kind = _kind(value)
        if kind is not None:
            field = "d" if kind == "d" else kind
            return AttrValue(**{field: _scalar_attr(kind, value)})
        if isinstance(value, (tuple, list)):
            kinds = {_kind(v) for v in value}
            if None in kinds or len(kinds) > 1:
                raise ValueError(f"lists must hold values of one supported kind, got "
                                 f"{sorted({type(v).__name__ for v in value})}")
            lv = ListValue()
            if kinds:
                (kind,) = kinds
                setattr(lv, kind, [_scalar_attr(kind, v) for v in value])
            return AttrValue(list=lv)
        raise ValueError(f"values of type {type(value).__name__} cannot be stored in a graph "
                         "file")
    except (ValueError, TypeError, KeyError) as e:
        raise _invalid(where, str(e)) from None


def proto_to_attr(av: AttrValue, where: str = "attr",
                  external: Callable[[ExternalData, int, str], Any] | None = None) -> Any:
    """The Python value of an AttrValue (the inverse of :func:`attr_to_proto`).

    Raises:
      errors.InvalidArgumentError: for an empty AttrValue, a list mixing kinds, or an
        invalid dtype, shape or tensor inside it.
    """
    case = av.WhichOneof("value")
    if case is None:
        raise _invalid(where, "the attr has no value")
    if case == "none":
        return None
    if case == "list":
        lv = av.list
        present = [f.name for f in lv._FIELDS if len(getattr(lv, f.name))]
        if len(present) > 1:
            raise _invalid(where, f"a list attr mixes kinds {present}")
        if not present:
            return ()
        kind = present[0]
        return tuple(_attr_scalar(kind, v, f"{where}[{i}]", external)
                     for i, v in enumerate(getattr(lv, kind)))
    return _attr_scalar(case, getattr(av, case), where, external)


def _attr_scalar(kind: str, v: Any, where: str, external: Any) -> Any:
    if kind == "s":
        try:
            return bytes(v).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(v)
    if kind == "i":
        return int(v)
    if kind in ("f", "d"):
        return float(v)
    if kind == "b":
        return bool(v)
    if kind == "type":
        return enum_to_dtype(int(v), where)
    if kind == "shape":
        return proto_to_shape(v, where)
    if kind == "tensor":
        return make_ndarray(v, where, external)
    raise AssertionError(kind)
