"""The protobuf wire format, driven by message schemas declared in Python.

A :class:`Message` subclass lists its :class:`Field` s (number, name, kind); this
module encodes such messages to the protobuf binary format and decodes them back.
It is a small protobuf runtime for ``graphflow.proto`` with the safety graphflow's
files need (DESIGN principle 5):

* decoding never allocates more than the input justifies: every length prefix is
  checked against the bytes that remain before anything is sliced or allocated;
* nesting is bounded (:data:`MAX_DEPTH`), varints longer than 10 bytes, truncated
  data, invalid field numbers, wire types that do not match the schema and
  invalid UTF-8 in string fields are all :class:`errors.DataLossError` naming the
  source, the byte offset and the field path;
* unknown fields (written by a newer graphflow, or by anyone) are skipped;
* nothing in the data is ever executed or used to look up Python names.

Encoding is canonical: fields in number order, proto3 defaults omitted, repeated
numbers packed, map entries sorted by key, so the bytes equal those of Google's
pure-Python protobuf with ``deterministic=True`` (a file's root message adds its
``format_version`` first and its CRC32C last, see :func:`serialize_chunks`).
"""

from __future__ import annotations

import math
import operator
import struct
from typing import Any, ClassVar

import numpy as np

from graphflow.framework import errors
from graphflow.io.crc import crc32c

MAX_DEPTH = 64
_MAX_FIELD_NUMBER = (1 << 29) - 1

_VARINT_KINDS = frozenset({"int32", "int64", "uint32", "uint64", "bool", "enum"})
_WIRE_TYPES = {
    "int32": 0, "int64": 0, "uint32": 0, "uint64": 0, "bool": 0, "enum": 0,
    "double": 1, "fixed64": 1, "float": 5, "fixed32": 5,
    "string": 2, "bytes": 2, "message": 2, "map": 2,
}
_FIXED_NP = {"float": "<f4", "double": "<f8", "fixed32": "<u4", "fixed64": "<u8"}
_NATIVE_NP = {"float": np.float32, "double": np.float64, "fixed32": np.uint32,
              "fixed64": np.uint64, "int32": np.int32, "int64": np.int64,
              "uint32": np.uint32, "uint64": np.uint64, "bool": np.bool_, "enum": np.int32}
_RANGES = {
    "int32": (-(1 << 31), (1 << 31) - 1), "enum": (-(1 << 31), (1 << 31) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1), "uint32": (0, (1 << 32) - 1),
    "uint64": (0, (1 << 64) - 1), "fixed32": (0, (1 << 32) - 1),
    "fixed64": (0, (1 << 64) - 1),
}


class Field:
    """One field of a message schema.

    Args:
      number: the field number.
      name: the Python attribute and text-format name.
      kind: ``int32 int64 uint32 uint64 bool enum float double fixed32 fixed64
        string bytes message map``.
      repeated: a repeated field (a list; packed on the wire for numbers).
      message: the Message class of a ``message`` field or a map's values.
      enum: for ``enum`` fields, a dict of value name -> number.
      oneof: the name of the oneof group the field belongs to.
      key, value: a map's key kind and value kind.
      numpy: decode a repeated number field into a NumPy array (tensor values).
    """

    __slots__ = ("number", "name", "kind", "repeated", "message", "enum", "enum_names",
                 "oneof", "key", "value", "numpy", "wire_type", "packed", "entry")

    def __init__(self, number: int, name: str, kind: str, repeated: bool = False,
                 message: Any = None, enum: dict[str, int] | None = None,
                 oneof: str | None = None, key: str | None = None, value: str | None = None,
                 numpy: bool = False) -> None:
        self.number = number
        self.name = name
        self.kind = kind
        self.repeated = repeated
        self.message = message
        self.enum = enum
        self.enum_names = {v: k for k, v in (enum or {}).items()}
        self.oneof = oneof
        self.key = key
        self.value = value
        self.numpy = numpy
        self.wire_type = _WIRE_TYPES[kind]
        self.packed = repeated and self.wire_type != 2
        self.entry = None
        if kind == "map":
            self.entry = _map_entry_class(name, key or "string", value or "message", message)

    def default(self) -> Any:
        """The value of the field when it is not set."""
        if self.kind == "map":
            return {}
        if self.repeated:
            return []
        return _SCALAR_DEFAULTS.get(self.kind)

    def __repr__(self) -> str:
        return f"<Field {self.number} {self.name}: {self.kind}>"


_SCALAR_DEFAULTS: dict[str, Any] = {
    "int32": 0, "int64": 0, "uint32": 0, "uint64": 0, "enum": 0, "fixed32": 0, "fixed64": 0,
    "bool": False, "float": 0.0, "double": 0.0, "string": "", "bytes": b"", "message": None,
}


def _map_entry_class(name: str, key_kind: str, value_kind: str, value_message: Any) -> type:
    fields = (Field(1, "key", key_kind), Field(2, "value", value_kind, message=value_message))
    return schema(f"{name}Entry", *fields, map_entry=True)(type(f"{name}Entry", (Message,), {}))


def schema(full_name: str, *fields: Field, root_format_version: int = 0,
           map_entry: bool = False) -> Any:
    """Class decorator declaring a Message subclass's fields.

    Args:
      full_name: the message's name in ``graphflow.proto`` (``AttrValue.ListValue``).
      *fields: its fields.
      root_format_version: for the root message of a file, the format version
        graphflow writes; such messages have ``format_version`` and ``crc32c``
        fields and carry a checksum when serialized.
      map_entry: a synthesized map-entry message (key and value always written).

    Returns:
      The decorator.
    """

    def deco(cls: type) -> type:
        cls._FULL_NAME = full_name
        cls._FIELDS = tuple(sorted(fields, key=lambda f: f.number))
        cls._BY_NAME = {f.name: f for f in fields}
        cls._BY_NUMBER = {f.number: f for f in fields}
        oneofs: dict[str, list[str]] = {}
        for f in cls._FIELDS:
            if f.oneof:
                oneofs.setdefault(f.oneof, []).append(f.name)
        cls._ONEOFS = {k: tuple(v) for k, v in oneofs.items()}
        cls._FORMAT_VERSION = root_format_version
        cls._MAP_ENTRY = map_entry
        return cls

    return deco


class Message:
    """Base class of schema-driven messages, with Google protobuf's method names.

    Fields are plain attributes: scalars, lists for repeated fields, dicts for
    maps and Message instances (None when unset) for message fields. Setting a
    member of a oneof selects it and clears the others.
    """

    _FULL_NAME: ClassVar[str] = ""
    _FIELDS: ClassVar[tuple[Field, ...]] = ()
    _BY_NAME: ClassVar[dict[str, Field]] = {}
    _BY_NUMBER: ClassVar[dict[int, Field]] = {}
    _ONEOFS: ClassVar[dict[str, tuple[str, ...]]] = {}
    _FORMAT_VERSION: ClassVar[int] = 0
    _MAP_ENTRY: ClassVar[bool] = False

    def __init__(self, **fields: Any) -> None:
        object.__setattr__(self, "_which", {})
        for f in self._FIELDS:
            object.__setattr__(self, f.name, f.default())
        for k, v in fields.items():
            setattr(self, k, v)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        f = self._BY_NAME.get(name)
        if f is None:
            raise AttributeError(f"{self._FULL_NAME} has no field named {name!r}; it has "
                                 f"{', '.join(x.name for x in self._FIELDS)}")
        if f.oneof:
            if value is None and f.kind == "message":
                if self._which.get(f.oneof) == name:
                    del self._which[f.oneof]
            else:
                for other in self._ONEOFS[f.oneof]:
                    if other != name:
                        object.__setattr__(self, other, self._BY_NAME[other].default())
                self._which[f.oneof] = name
        object.__setattr__(self, name, value)

    # --- Google protobuf's API --------------------------------------------------
    def WhichOneof(self, oneof_group: str) -> str | None:  # noqa: N802 - protobuf's name
        """The name of the field set in ``oneof_group``, or None.

        Raises:
          ValueError: if the message has no such oneof.
        """
        if oneof_group not in self._ONEOFS:
            raise ValueError(f"{self._FULL_NAME} has no oneof named {oneof_group!r}")
        return self._which.get(oneof_group)

    def HasField(self, field_name: str) -> bool:  # noqa: N802 - protobuf's name
        """Whether a message field (or oneof member) is set.

        Raises:
          ValueError: for a repeated or unknown field, or a proto3 scalar outside a oneof.
        """
        f = self._BY_NAME.get(field_name)
        if f is None:
            if field_name in self._ONEOFS:
                return field_name in self._which
            raise ValueError(f"{self._FULL_NAME} has no field named {field_name!r}")
        if f.oneof:
            return self._which.get(f.oneof) == field_name
        if f.kind == "message" and not f.repeated:
            return getattr(self, field_name) is not None
        raise ValueError(f"Field {self._FULL_NAME}.{field_name} has no presence")

    def ClearField(self, field_name: str) -> None:  # noqa: N802 - protobuf's name
        """Resets a field to its default value."""
        f = self._BY_NAME[field_name]
        if f.oneof and self._which.get(f.oneof) == field_name:
            del self._which[f.oneof]
        object.__setattr__(self, field_name, f.default())

    def Clear(self) -> None:  # noqa: N802 - protobuf's name
        """Resets every field."""
        self._which.clear()
        for f in self._FIELDS:
            object.__setattr__(self, f.name, f.default())

    def CopyFrom(self, other: Message) -> None:  # noqa: N802 - protobuf's name
        """Makes this message a copy of ``other`` (of the same type)."""
        if type(other) is not type(self):
            raise TypeError(f"CopyFrom expects a {self._FULL_NAME}, got {type(other).__name__}")
        if other is self:
            return
        self.Clear()
        self.MergeFromString(other.SerializeToString())

    def SerializeToString(self, deterministic: bool = True) -> bytes:  # noqa: N802
        """The message in the protobuf binary format.

        A file's root message (GraphDef, MetaGraphDef, CheckpointIndex) starts with
        its ``format_version`` and ends with the CRC32C of all preceding bytes.

        Args:
          deterministic: accepted for protobuf compatibility; output is always canonical.

        Returns:
          bytes.

        Raises:
          errors.InvalidArgumentError: if a field holds a value its type cannot encode.
        """
        chunks, _ = serialize_chunks(self)
        return b"".join(chunks)

    def ByteSize(self) -> int:  # noqa: N802 - protobuf's name
        """The size of :meth:`SerializeToString`'s result."""
        return serialize_chunks(self)[1]

    def ParseFromString(self, data: Any) -> int:  # noqa: N802 - protobuf's name
        """Replaces this message's content with ``data`` decoded.

        Returns:
          The number of bytes read.

        Raises:
          errors.DataLossError: if the data is damaged (with the byte offset).
        """
        self.Clear()
        return self.MergeFromString(data)

    def MergeFromString(self, data: Any, source: str | None = None) -> int:  # noqa: N802
        """Merges ``data`` decoded into this message (protobuf merge semantics).

        Args:
          data: bytes-like.
          source: a name for error messages (e.g. the file's path).

        Returns:
          The number of bytes read.

        Raises:
          errors.DataLossError: if the data is damaged (with the byte offset).
        """
        if not isinstance(data, bytes):
            try:
                data = bytes(memoryview(data))
            except TypeError:
                raise TypeError(f"Expected bytes, got {type(data).__name__}") from None
        ctx = _Ctx(data, source or "<bytes>", type(self))
        _decode_into(self, ctx, 0, len(data), 0)
        if self._FORMAT_VERSION:
            _verify_checksum(self, ctx)
        return len(data)

    @classmethod
    def FromString(cls, data: Any) -> Any:  # noqa: N802 - protobuf's name
        """A new message decoded from ``data``.

        Raises:
          errors.DataLossError: if the data is damaged (with the byte offset).
        """
        msg = cls()
        msg.MergeFromString(data)
        return msg

    # --- Python protocol ---------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        for f in self._FIELDS:
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.numpy or isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if not np.array_equal(np.asarray(a), np.asarray(b)):
                    return False
            elif a != b:
                return False
        return self._which == other._which

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        from graphflow.io.text_format import message_to_string

        return f"{self._FULL_NAME} {{\n{message_to_string(self, indent=1)}}}"

    def __str__(self) -> str:
        from graphflow.io.text_format import message_to_string

        return message_to_string(self)


# --- encoding ----------------------------------------------------------------------
def _encode_error(msg: Message, f: Field, why: str) -> errors.InvalidArgumentError:
    return errors.InvalidArgumentError(
        None, None, f"Cannot encode field {msg._FULL_NAME}.{f.name} ({f.kind}): {why}")


def _varint_bytes(v: int) -> bytes:
    if 0 <= v < 0x80:
        return bytes((v,))
    out = bytearray()
    while v > 0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint_bytes((number << 3) | wire_type)


def _check_int(msg: Message, f: Field, v: Any) -> int:
    if isinstance(v, (bool, np.bool_)) and f.kind != "bool":
        raise _encode_error(msg, f, f"expected an integer, got the bool {v!r}")
    try:
        v = operator.index(v)
    except TypeError:
        raise _encode_error(msg, f, f"expected an integer, got {type(v).__name__}") from None
    lo, hi = _RANGES[f.kind]
    if not lo <= v <= hi:
        raise _encode_error(msg, f, f"{v} is out of range [{lo}, {hi}]")
    return v


def _scalar_payload(msg: Message, f: Field, v: Any) -> bytes:
    kind = f.kind
    if kind == "bool":
        if not isinstance(v, (bool, np.bool_)):
            raise _encode_error(msg, f, f"expected a bool, got {type(v).__name__}")
        return b"\x01" if v else b"\x00"
    if kind in ("int32", "int64", "enum", "uint32", "uint64"):
        v = _check_int(msg, f, v)
        return _varint_bytes(v & 0xFFFFFFFFFFFFFFFF)
    if kind in ("fixed32", "fixed64"):
        return struct.pack("<I" if kind == "fixed32" else "<Q", _check_int(msg, f, v))
    if kind in ("float", "double"):
        try:
            fv = float(v)
        except (TypeError, ValueError):
            raise _encode_error(msg, f, f"expected a number, got {type(v).__name__}") from None
        if kind == "float":
            return np.array(fv, dtype="<f4").tobytes()
        return struct.pack("<d", fv)
    if kind == "string":
        if not isinstance(v, str):
            raise _encode_error(msg, f, f"expected a str, got {type(v).__name__}")
        try:
            data = v.encode("utf-8")
        except UnicodeEncodeError as e:
            raise _encode_error(msg, f, f"not valid Unicode: {e}") from None
        return _varint_bytes(len(data)) + data
    raise AssertionError(kind)


def _bytes_like(msg: Message, f: Field, v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return v
    if isinstance(v, memoryview):
        return v.cast("B") if v.format != "B" or v.ndim != 1 else v
    raise _encode_error(msg, f, f"expected bytes, got {type(v).__name__}")


def _is_default(f: Field, v: Any) -> bool:
    if f.kind == "message":
        return v is None
    if f.kind in ("float", "double"):
        return v == 0 and math.copysign(1.0, v) > 0
    if f.kind == "bytes":
        return len(v) == 0
    return not v


def _packed_payload(msg: Message, f: Field, values: Any) -> bytes:
    if f.kind in _FIXED_NP:
        if f.kind in ("fixed32", "fixed64"):
            values = [_check_int(msg, f, v) for v in values]
        try:
            return np.asarray(values, dtype=_FIXED_NP[f.kind]).tobytes()
        except (TypeError, ValueError, OverflowError) as e:
            raise _encode_error(msg, f, str(e)) from None
    parts = []
    for v in (values.tolist() if isinstance(values, np.ndarray) else values):
        if f.kind == "bool":
            parts.append(b"\x01" if v else b"\x00")
        else:
            parts.append(_varint_bytes(_check_int(msg, f, v) & 0xFFFFFFFFFFFFFFFF))
    return b"".join(parts)


def _encode_fields(msg: Message, out: list[Any], skip: frozenset[int] = frozenset()) -> int:
    """Appends the encoded fields of ``msg`` to ``out``; returns their byte count."""
    total = 0
    which = msg._which
    entry_mode = msg._MAP_ENTRY
    for f in msg._FIELDS:
        if f.number in skip:
            continue
        v = getattr(msg, f.name)
        if f.kind == "map":
            if not isinstance(v, dict):
                raise _encode_error(msg, f, f"expected a dict, got {type(v).__name__}")
            try:
                keys = sorted(v)
            except TypeError:
                raise _encode_error(msg, f, "map keys must all be of one type") from None
            tag = _tag(f.number, 2)
            for k in keys:
                entry = f.entry(key=k, value=v[k])
                sub: list[Any] = []
                n = _encode_fields(entry, sub)
                head = tag + _varint_bytes(n)
                out.append(head)
                out.extend(sub)
                total += len(head) + n
            continue
        if f.repeated:
            if v is None or len(v) == 0:
                continue
            if f.packed:
                payload = _packed_payload(msg, f, v)
                head = _tag(f.number, 2) + _varint_bytes(len(payload))
                out.append(head)
                out.append(payload)
                total += len(head) + len(payload)
            else:
                for item in v:
                    total += _encode_one(msg, f, item, out)
            continue
        if f.oneof:
            if which.get(f.oneof) != f.name:
                continue
        elif not entry_mode and _is_default(f, v):
            continue
        if entry_mode and f.kind == "message" and v is None:
            v = f.message()
        total += _encode_one(msg, f, v, out)
    return total


def _encode_one(msg: Message, f: Field, v: Any, out: list[Any]) -> int:
    if f.kind == "message":
        if not isinstance(v, f.message):
            raise _encode_error(msg, f, f"expected a {f.message._FULL_NAME}, got "
                                        f"{type(v).__name__}")
        sub: list[Any] = []
        n = _encode_fields(v, sub)
        head = _tag(f.number, 2) + _varint_bytes(n)
        out.append(head)
        out.extend(sub)
        return len(head) + n
    if f.kind == "bytes":
        data = _bytes_like(msg, f, v)
        head = _tag(f.number, 2) + _varint_bytes(len(data))
        out.append(head)
        out.append(data)
        return len(head) + len(data)
    chunk = _tag(f.number, f.wire_type) + _scalar_payload(msg, f, v)
    out.append(chunk)
    return len(chunk)


def serialize_chunks(msg: Message, checksum: bool = True) -> tuple[list[Any], int]:
    """Encodes ``msg`` as a list of byte chunks (large tensor bytes are not copied).

    Args:
      msg: the message.
      checksum: for a file's root message, write ``format_version`` first and the
        CRC32C of all preceding bytes last.

    Returns:
      ``(chunks, total_length)``.

    Raises:
      errors.InvalidArgumentError: if a field holds a value its type cannot encode.
    """
    out: list[Any] = []
    if not (checksum and msg._FORMAT_VERSION):
        return out, _encode_fields(msg, out)
    fv, crc_field = msg._BY_NAME["format_version"], msg._BY_NAME["crc32c"]
    # format_version goes first (protobuf allows any field order): a file cut short
    # anywhere still starts with it, so the missing checksum is noticed.
    head = _tag(fv.number, 0) + _varint_bytes(msg._FORMAT_VERSION)
    out.append(head)
    n = len(head) + _encode_fields(msg, out, skip=frozenset((fv.number, crc_field.number)))
    crc = 0
    for c in out:
        crc = crc32c(c, crc)
    tail = _tag(crc_field.number, 5) + struct.pack("<I", crc)
    out.append(tail)
    return out, n + len(tail)


# --- decoding ----------------------------------------------------------------------
class _Ctx:
    __slots__ = ("data", "source", "root", "path", "crc_tag_pos", "crc_end")

    def __init__(self, data: bytes, source: str, root: type) -> None:
        self.data = data
        self.source = source
        self.root = root
        self.path: list[str] = [root._FULL_NAME]
        self.crc_tag_pos: int | None = None
        self.crc_end = 0

    def fail(self, pos: int, what: str) -> errors.DataLossError:
        where = ".".join(self.path)
        return errors.DataLossError(
            None, None, f"{self.source}: {what} at byte offset {pos} (in {where}); the "
                        f"data is damaged or is not a {self.root._FULL_NAME}")


def _varint(ctx: _Ctx, pos: int, end: int) -> tuple[int, int]:
    data = ctx.data
    if pos >= end:
        raise ctx.fail(pos, "data ends inside a varint")
    b = data[pos]
    if b < 0x80:
        return b, pos + 1
    start = pos
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise ctx.fail(start, "data ends inside a varint")
        b = data[pos]
        pos += 1
        if shift == 63 and b > 1:
            raise ctx.fail(start, "varint longer than 10 bytes" if b >= 0x80 else
                           "varint does not fit in 64 bits")
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _from_varint(kind: str, v: int) -> Any:
    if kind == "bool":
        return v != 0
    if kind in ("int32", "enum"):
        return _signed(v, 32)
    if kind == "int64":
        return _signed(v, 64)
    if kind == "uint32":
        return v & 0xFFFFFFFF
    return v


def _skip(ctx: _Ctx, pos: int, end: int, wire_type: int, number: int, depth: int) -> int:
    if wire_type == 0:
        return _varint(ctx, pos, end)[1]
    if wire_type in (1, 5):
        size = 8 if wire_type == 1 else 4
        if end - pos < size:
            raise ctx.fail(pos, f"data ends inside a {size}-byte field {number}")
        return pos + size
    if wire_type == 2:
        n, pos = _varint(ctx, pos, end)
        if n > end - pos:
            raise ctx.fail(pos, f"length prefix of field {number} claims {n} bytes but only "
                                f"{end - pos} remain")
        return pos + n
    if wire_type == 3:  # a group: skip up to its matching end-group tag
        open_groups = [number]
        while open_groups:
            if len(open_groups) + depth > MAX_DEPTH:
                raise ctx.fail(pos, f"groups nested deeper than {MAX_DEPTH}")
            tag_pos = pos
            tag, pos = _varint(ctx, pos, end)
            num, wt = tag >> 3, tag & 7
            if num == 0:
                raise ctx.fail(tag_pos, "invalid field number 0")
            if wt == 4:
                if num != open_groups[-1]:
                    raise ctx.fail(tag_pos, f"end of group {num} does not match group "
                                            f"{open_groups[-1]}")
                open_groups.pop()
            elif wt == 3:
                open_groups.append(num)
            else:
                pos = _skip(ctx, pos, end, wt, num, depth)
        return pos
    raise ctx.fail(pos, f"invalid wire type {wire_type} for field {number}")


def _packed_varints(ctx: _Ctx, pos: int, end: int) -> np.ndarray:
    """Decodes a run of varints with NumPy (uint64), checking every one."""
    b = np.frombuffer(ctx.data, dtype=np.uint8, count=end - pos, offset=pos)
    if b.size == 0:
        return np.zeros(0, np.uint64)
    stops = np.flatnonzero(b < 0x80)
    if stops.size == 0 or stops[-1] != b.size - 1:
        raise ctx.fail(end, "data ends inside a varint")
    starts = np.empty_like(stops)
    starts[0] = 0
    starts[1:] = stops[:-1] + 1
    lengths = stops - starts + 1
    longest = int(lengths.max())
    if longest > 10:
        bad = int(starts[np.argmax(lengths > 10)])
        raise ctx.fail(pos + bad, "varint longer than 10 bytes")
    values = np.zeros(stops.size, np.uint64)
    for k in range(longest):
        sel = lengths > k
        byte = b[starts[sel] + k]
        if k == 9 and np.any(byte > 1):
            bad = int(starts[sel][np.argmax(byte > 1)])
            raise ctx.fail(pos + bad, "varint does not fit in 64 bits")
        values[sel] |= (byte & 0x7F).astype(np.uint64) << np.uint64(7 * k)
    return values


def _convert_varints(kind: str, raw: np.ndarray) -> np.ndarray:
    if kind == "bool":
        return raw != 0
    if kind in ("int32", "enum"):
        return (raw & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.int32)
    if kind == "int64":
        return raw.view(np.int64)
    if kind == "uint32":
        return (raw & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    return raw


def _append_repeated(msg: Message, f: Field, values: Any) -> None:
    cur = getattr(msg, f.name)
    if f.numpy:
        arr = np.asarray(values, dtype=_NATIVE_NP[f.kind]).reshape(-1)
        if isinstance(cur, np.ndarray) or len(cur):
            arr = np.concatenate([np.asarray(cur, dtype=_NATIVE_NP[f.kind]), arr])
        object.__setattr__(msg, f.name, arr)
    elif isinstance(values, np.ndarray):
        cur.extend(values.tolist())
    else:
        cur.append(values)


def _decode_into(msg: Message, ctx: _Ctx, pos: int, end: int, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ctx.fail(pos, f"messages nested deeper than {MAX_DEPTH}")
    data = ctx.data
    by_number = msg._BY_NUMBER
    is_root = depth == 0 and msg._FORMAT_VERSION
    while pos < end:
        tag_pos = pos
        tag, pos = _varint(ctx, pos, end)
        number, wt = tag >> 3, tag & 7
        if number == 0 or number > _MAX_FIELD_NUMBER:
            raise ctx.fail(tag_pos, f"invalid field number {number}")
        f = by_number.get(number)
        if f is None:
            pos = _skip(ctx, pos, end, wt, number, depth)
            continue
        if wt == 2 and (f.wire_type == 2 or f.repeated):
            n, pos = _varint(ctx, pos, end)
            if n > end - pos:
                raise ctx.fail(pos, f"length prefix of field '{f.name}' claims {n} bytes but "
                                    f"only {end - pos} remain")
            sub_end = pos + n
            kind = f.kind
            if kind == "message" or kind == "map":
                _decode_submessage(msg, f, ctx, pos, sub_end, depth)
            elif kind == "string":
                try:
                    value = data[pos:sub_end].decode("utf-8")
                except UnicodeDecodeError as e:
                    raise ctx.fail(pos + e.start, f"invalid UTF-8 in string field "
                                                  f"'{f.name}'") from None
                _store(msg, f, value)
            elif kind == "bytes":
                _store(msg, f, data[pos:sub_end])
            elif kind in _FIXED_NP:  # packed fixed-width numbers
                width = 4 if kind in ("float", "fixed32") else 8
                if n % width:
                    raise ctx.fail(pos, f"packed field '{f.name}' has {n} bytes, not a "
                                        f"multiple of {width}")
                arr = np.frombuffer(data, dtype=_FIXED_NP[kind], count=n // width, offset=pos)
                _append_repeated(msg, f, arr.astype(_NATIVE_NP[kind]))
            else:  # packed varints
                _append_repeated(msg, f, _convert_varints(kind, _packed_varints(ctx, pos,
                                                                                sub_end)))
            pos = sub_end
            continue
        if wt != f.wire_type:
            raise ctx.fail(tag_pos, f"field '{f.name}' ({f.kind}) has wire type {wt}, "
                                    f"expected {f.wire_type}")
        if wt == 0:
            raw, pos = _varint(ctx, pos, end)
            value = _from_varint(f.kind, raw)
        else:
            width = 4 if wt == 5 else 8
            if end - pos < width:
                raise ctx.fail(pos, f"data ends inside field '{f.name}'")
            value = np.frombuffer(data, dtype=_FIXED_NP[f.kind], count=1, offset=pos)[0].item()
            if is_root and number == msg._BY_NAME["crc32c"].number:
                ctx.crc_tag_pos = tag_pos
                ctx.crc_end = pos + width
            pos += width
        _store(msg, f, value)


def _store(msg: Message, f: Field, value: Any) -> None:
    if f.repeated:
        _append_repeated(msg, f, value)
    else:
        setattr(msg, f.name, value)


def _decode_submessage(msg: Message, f: Field, ctx: _Ctx, pos: int, end: int,
                       depth: int) -> None:
    if f.kind == "map":
        entry = f.entry()
        ctx.path.append(f.name)
        _decode_into(entry, ctx, pos, end, depth + 1)
        ctx.path.pop()
        value = entry.value
        if value is None and f.value == "message":
            value = f.message()
        getattr(msg, f.name)[entry.key] = value
        return
    if f.repeated:
        cur = getattr(msg, f.name)
        sub = f.message()
        ctx.path.append(f"{f.name}[{len(cur)}]")
        _decode_into(sub, ctx, pos, end, depth + 1)
        ctx.path.pop()
        cur.append(sub)
        return
    sub = getattr(msg, f.name)
    if sub is None or (f.oneof and msg._which.get(f.oneof) != f.name):
        sub = f.message()
    ctx.path.append(f.name)
    _decode_into(sub, ctx, pos, end, depth + 1)
    ctx.path.pop()
    setattr(msg, f.name, sub)


def _verify_checksum(msg: Message, ctx: _Ctx) -> None:
    data = ctx.data
    if ctx.crc_tag_pos is None:
        if msg.format_version:
            raise ctx.fail(len(data), "the CRC32C checksum field is missing (the file was "
                                      "truncated or damaged)")
    else:
        if ctx.crc_end != len(data):
            raise ctx.fail(ctx.crc_end, "data follows the CRC32C checksum field, which must "
                                        "come last")
        want = msg.crc32c
        got = crc32c(memoryview(data)[:ctx.crc_tag_pos])
        if got != want:
            raise errors.DataLossError(
                None, None, f"{ctx.source}: checksum mismatch: bytes 0..{ctx.crc_tag_pos} have "
                            f"CRC32C {got:#010x}, but the file records {want:#010x} at byte "
                            f"offset {ctx.crc_tag_pos}; the data is damaged")
    if msg.format_version > msg._FORMAT_VERSION:
        raise errors.InvalidArgumentError(
            None, None, f"{ctx.source}: {msg._FULL_NAME} format version {msg.format_version} "
                        f"was written by a newer graphflow; this one reads versions up to "
                        f"{msg._FORMAT_VERSION}")
    # Framing, not content: a decoded message equals the one that was written.
    object.__setattr__(msg, "format_version", 0)
    object.__setattr__(msg, "crc32c", 0)
