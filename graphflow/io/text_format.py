"""Protobuf text format for graphflow's messages: human-readable graph files.

The writer produces the form Google's ``text_format`` writes (``name: value``
lines, ``field { ... }`` blocks, C-escaped strings); the parser reads that form
back, including ``<...>`` blocks, ``[a, b]`` lists, comments and adjacent string
literals. Parsing is schema-driven and bounded in depth; any problem is an
:class:`errors.DataLossError` naming the source, line and column.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from graphflow.framework import errors
from graphflow.io.wire import _RANGES, MAX_DEPTH, Field, Message

# --- writing -------------------------------------------------------------------------
_ESCAPES = {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", ord('"'): '\\"',
            ord("'"): "\\'", ord("\\"): "\\\\"}
_BYTE_TEXT = [_ESCAPES.get(b, chr(b) if 32 <= b < 127 else f"\\{b:03o}") for b in range(256)]


def _quote(data: Any) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return '"' + "".join(_BYTE_TEXT[b] for b in bytes(data)) + '"'


def _format_float(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(float(v))


def _format_scalar(f: Field, v: Any) -> str:
    kind = f.kind
    if kind in ("string", "bytes"):
        return _quote(v)
    if kind == "bool":
        return "true" if v else "false"
    if kind == "enum":
        return f.enum_names.get(int(v), str(int(v)))
    if kind in ("float", "double"):
        return _format_float(v)
    return str(int(v))


def message_to_string(msg: Message, indent: int = 0) -> str:
    """The text form of ``msg`` (fields set, in number order).

    Args:
      msg: the message.
      indent: the indentation level (two spaces each) of its fields.

    Returns:
      The text, one field per line, ending with a newline (or "" if empty).
    """
    lines: list[str] = []
    _write(msg, indent, lines)
    return "".join(line + "\n" for line in lines)


def _write(msg: Message, indent: int, lines: list[str]) -> None:
    pad = "  " * indent
    which = msg._which
    for f in msg._FIELDS:
        v = getattr(msg, f.name)
        if f.kind == "map":
            for k in sorted(v):
                lines.append(f"{pad}{f.name} {{")
                entry = f.entry(key=k, value=v[k])
                _write_entry(entry, indent + 1, lines)
                lines.append(f"{pad}}}")
            continue
        if f.repeated:
            items = v.tolist() if isinstance(v, np.ndarray) else v
            for item in items:
                _write_value(f, item, pad, indent, lines)
            continue
        if f.oneof:
            if which.get(f.oneof) != f.name:
                continue
        elif f.kind == "message":
            if v is None:
                continue
        elif not v and not (f.kind in ("float", "double") and math.copysign(1.0, v) < 0):
            continue
        _write_value(f, v, pad, indent, lines)


def _write_entry(entry: Message, indent: int, lines: list[str]) -> None:
    pad = "  " * indent
    key_f, value_f = entry._FIELDS
    lines.append(f"{pad}key: {_format_scalar(key_f, entry.key)}")
    value = entry.value
    if value_f.kind == "message" and value is None:
        value = value_f.message()
    _write_value(value_f, value, pad, indent, lines)


def _write_value(f: Field, v: Any, pad: str, indent: int, lines: list[str]) -> None:
    if f.kind == "message":
        lines.append(f"{pad}{f.name} {{")
        _write(v, indent + 1, lines)
        lines.append(f"{pad}}}")
    else:
        lines.append(f"{pad}{f.name}: {_format_scalar(f, v)}")


# --- parsing ---------------------------------------------------------------------------
_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\n\f\v]+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)[fF]?)
  | (?P<ident>-?[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<symbol>[{}<>:\[\],;])
""", re.VERBOSE)

_SIMPLE_UNESCAPES = {"n": 10, "r": 13, "t": 9, '"': 34, "'": 39, "\\": 92, "a": 7, "b": 8,
                     "f": 12, "v": 11, "?": 63}


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.pos = 0
        self.tok: tuple[str, str, int] | None = None
        self._advance()

    def fail(self, what: str, at: int | None = None) -> errors.DataLossError:
        at = self.tok[2] if at is None and self.tok else (at if at is not None else self.pos)
        line = self.text.count("\n", 0, at) + 1
        col = at - (self.text.rfind("\n", 0, at) + 1) + 1
        return errors.DataLossError(None, None, f"{self.source}:{line}:{col}: {what}")

    def _advance(self) -> None:
        text = self.text
        while self.pos < len(text):
            m = _TOKEN.match(text, self.pos)
            if m is None:
                raise self.fail(f"unexpected character {text[self.pos]!r}", self.pos)
            start = self.pos
            self.pos = m.end()
            if m.lastgroup != "space":
                self.tok = (m.lastgroup, m.group(), start)
                return
        self.tok = None

    def peek(self) -> str | None:
        return None if self.tok is None else self.tok[1]

    def take(self, symbol: str) -> bool:
        if self.tok is not None and self.tok[0] == "symbol" and self.tok[1] == symbol:
            self._advance()
            return True
        return False

    def expect(self, symbol: str) -> None:
        if not self.take(symbol):
            raise self.fail(f"expected {symbol!r}, found {self.peek() or 'end of text'!r}")

    def parse_message(self, msg: Message, closing: str | None, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise self.fail(f"messages nested deeper than {MAX_DEPTH}")
        while True:
            if self.tok is None:
                if closing is not None:
                    raise self.fail(f"expected {closing!r} before the end of the text")
                return
            if closing is not None and self.take(closing):
                return
            kind, name, _ = self.tok
            if kind != "ident":
                raise self.fail(f"expected a field name, found {name!r}")
            f = msg._BY_NAME.get(name)
            if f is None:
                raise self.fail(f"{msg._FULL_NAME} has no field named {name!r}")
            self._advance()
            if f.kind in ("message", "map"):
                self.take(":")
                if self.take("["):
                    if not self.take("]"):
                        while True:
                            self._field_message(msg, f, depth)
                            if self.take("]"):
                                break
                            self.expect(",")
                else:
                    self._field_message(msg, f, depth)
            else:
                self.expect(":")
                if f.repeated and self.take("["):
                    if not self.take("]"):
                        while True:
                            self._store(msg, f, self._scalar(f))
                            if self.take("]"):
                                break
                            self.expect(",")
                else:
                    self._store(msg, f, self._scalar(f))
            if not self.take(","):
                self.take(";")

    def _field_message(self, msg: Message, f: Field, depth: int) -> None:
        if self.take("{"):
            closing = "}"
        elif self.take("<"):
            closing = ">"
        else:
            raise self.fail(f"expected '{{' to open field {f.name!r}")
        sub = f.entry() if f.kind == "map" else f.message()
        self.parse_message(sub, closing, depth + 1)
        if f.kind == "map":
            value = sub.value
            if value is None and f.value == "message":
                value = f.entry._BY_NAME["value"].message()
            getattr(msg, f.name)[sub.key] = value
        elif f.repeated:
            getattr(msg, f.name).append(sub)
        else:
            setattr(msg, f.name, sub)

    def _store(self, msg: Message, f: Field, value: Any) -> None:
        if f.repeated:
            cur = getattr(msg, f.name)
            if isinstance(cur, np.ndarray):
                cur = cur.tolist()
            cur.append(value)
            object.__setattr__(msg, f.name, cur)
        else:
            setattr(msg, f.name, value)

    def _scalar(self, f: Field) -> Any:
        if self.tok is None:
            raise self.fail(f"expected a value for field {f.name!r}")
        kind, text, _ = self.tok
        if f.kind in ("string", "bytes"):
            if kind != "string":
                raise self.fail(f"expected a quoted string for field {f.name!r}")
            data = bytearray()
            while self.tok is not None and self.tok[0] == "string":
                data += self._unescape(self.tok[1][1:-1])
                self._advance()
            if f.kind == "bytes":
                return bytes(data)
            try:
                return bytes(data).decode("utf-8")
            except UnicodeDecodeError:
                raise self.fail(f"invalid UTF-8 in string field {f.name!r}") from None
        self._advance()
        if f.kind == "bool":
            if text in ("true", "True", "t", "1"):
                return True
            if text in ("false", "False", "f", "0"):
                return False
            raise self.fail(f"expected true or false for field {f.name!r}, found {text!r}")
        if f.kind in ("float", "double"):
            low = text.lower().lstrip("+")
            if low in ("inf", "infinity", "inff", "infinityf"):
                return math.inf
            if low in ("-inf", "-infinity", "-inff", "-infinityf"):
                return -math.inf
            if low in ("nan", "nanf", "-nan"):
                return math.nan
            if kind != "number":
                raise self.fail(f"expected a number for field {f.name!r}, found {text!r}")
            try:
                if "x" in low:
                    return float(int(low, 16))
                return float(low.rstrip("f"))
            except (ValueError, OverflowError):
                raise self.fail(f"bad number {text!r} for field {f.name!r}") from None
        if f.kind == "enum" and kind == "ident":
            if text not in f.enum:
                raise self.fail(f"unknown value {text!r} for enum field {f.name!r}")
            return f.enum[text]
        if kind != "number" or text.lower().endswith("f") and "x" not in text.lower():
            raise self.fail(f"expected an integer for field {f.name!r}, found {text!r}")
        try:
            value = _parse_int(text)
        except ValueError:
            raise self.fail(f"bad integer {text!r} for field {f.name!r}") from None
        lo, hi = _RANGES.get(f.kind, (-(1 << 63), (1 << 64) - 1))
        if not lo <= value <= hi:
            raise self.fail(f"{value} is out of range for field {f.name!r} ({f.kind})")
        return value

    def _unescape(self, body: str) -> bytes:
        out = bytearray()
        i = 0
        n = len(body)
        while i < n:
            c = body[i]
            if c != "\\":
                out += c.encode("utf-8", "surrogatepass")
                i += 1
                continue
            i += 1
            if i >= n:
                raise self.fail("string ends with a backslash")
            c = body[i]
            if c in _SIMPLE_UNESCAPES:
                out.append(_SIMPLE_UNESCAPES[c])
                i += 1
            elif c in "01234567":
                j = i
                while j < n and j < i + 3 and body[j] in "01234567":
                    j += 1
                value = int(body[i:j], 8)
                if value > 255:
                    raise self.fail(f"octal escape \\{body[i:j]} is out of range")
                out.append(value)
                i = j
            elif c in "xX":
                j = i + 1
                while j < n and j < i + 3 and body[j] in "0123456789abcdefABCDEF":
                    j += 1
                if j == i + 1:
                    raise self.fail("\\x escape without hex digits")
                out.append(int(body[i + 1:j], 16))
                i = j
            else:
                raise self.fail(f"invalid escape \\{c}")
        return bytes(out)


def _parse_int(text: str) -> int:
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if body.lower().startswith("0x"):
        return sign * int(body[2:], 16)
    if len(body) > 1 and body.startswith("0") and body.isdigit():
        return sign * int(body, 8)
    if not body.isdigit():
        raise ValueError(text)
    return sign * int(body)


def parse(text: Any, message: Message, source: str = "<text>") -> Message:
    """Merges the text form ``text`` into ``message`` and returns it.

    Args:
      text: str, or UTF-8 bytes.
      message: the message to fill.
      source: a name for error messages (e.g. the file's path).

    Returns:
      ``message``.

    Raises:
      errors.DataLossError: for text that is not valid for the message's schema.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise errors.DataLossError(
                None, None, f"{source}: invalid UTF-8 at byte offset {e.start}") from None
    parser = _Parser(text, source)
    parser.parse_message(message, None, 0)
    return message
