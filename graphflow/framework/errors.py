"""Error classes, named and arranged as TF1's ``tf.errors``.

Build-time shape and dtype errors are also ``ValueError``/``TypeError`` so code
written against TF1 (which raises those) catches them unchanged.
"""

from __future__ import annotations

from typing import Any

OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
ABORTED = 10
OUT_OF_RANGE = 11
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
DATA_LOSS = 15


class OpError(Exception):
    """Base of all graphflow errors (TF1's ``tf.errors.OpError``).

    Args:
      node_def: unused; kept for TF1 signature compatibility.
      op: the Operation the error is about, or None.
      message: what went wrong.
      error_code: one of the codes in this module.
    """

    error_code = UNKNOWN

    def __init__(self, node_def: Any = None, op: Any = None, message: str = "",
                 error_code: int | None = None) -> None:
        if error_code is not None:
            self.error_code = error_code
        self._op = op
        self._message = message
        # Without an op, point at the user's line that led here (build-time errors).
        self._frame = None
        if op is None:
            from graphflow.framework import source

            self._frame = source.user_frame()
        super().__init__(self._full_message())

    def _full_message(self) -> str:
        if self._op is None:
            from graphflow.framework import source

            where = source.format_frame(self._frame)
            return f"{self._message}\n  [[at {where}]]" if where else self._message
        return f"{self._message}\n{describe_op(self._op)}"

    @property
    def message(self) -> str:
        return self._message

    @property
    def op(self) -> Any:
        return self._op

    @property
    def node_def(self) -> Any:
        """Always None: graphflow errors carry the Operation itself (see ``op``)."""
        return None

    def __str__(self) -> str:
        return self._full_message()


def describe_op(op: Any) -> str:
    """One line naming an op, its type and the user's source line that built it."""
    where = op.source_line() if hasattr(op, "source_line") else None
    text = f"  [[node {op.name} ({op.type})"
    if where:
        text += f" defined at {where}"
    return text + "]]"


def _make(name: str, code: int, *extra: type) -> type:
    return type(name, (OpError, *extra), {"error_code": code, "__module__": __name__})


CancelledError = _make("CancelledError", CANCELLED)
UnknownError = _make("UnknownError", UNKNOWN)
InvalidArgumentError = _make("InvalidArgumentError", INVALID_ARGUMENT)
DeadlineExceededError = _make("DeadlineExceededError", DEADLINE_EXCEEDED)
NotFoundError = _make("NotFoundError", NOT_FOUND)
AlreadyExistsError = _make("AlreadyExistsError", ALREADY_EXISTS)
PermissionDeniedError = _make("PermissionDeniedError", PERMISSION_DENIED)
ResourceExhaustedError = _make("ResourceExhaustedError", RESOURCE_EXHAUSTED)
FailedPreconditionError = _make("FailedPreconditionError", FAILED_PRECONDITION)
AbortedError = _make("AbortedError", ABORTED)
OutOfRangeError = _make("OutOfRangeError", OUT_OF_RANGE)
UnimplementedError = _make("UnimplementedError", UNIMPLEMENTED)
InternalError = _make("InternalError", INTERNAL)
UnavailableError = _make("UnavailableError", UNAVAILABLE)
DataLossError = _make("DataLossError", DATA_LOSS)

# Raised while a graph is built: TF1 raises ValueError / TypeError there.
ShapeError = type("ShapeError", (InvalidArgumentError, ValueError), {"__module__": __name__})
DTypeError = type("DTypeError", (InvalidArgumentError, TypeError), {"__module__": __name__})
# Bad arguments to the graph-building API (a name, a fetch, a feed key).
GraphValueError = type("GraphValueError", (InvalidArgumentError, ValueError),
                       {"__module__": __name__})
GraphTypeError = type("GraphTypeError", (InvalidArgumentError, TypeError),
                      {"__module__": __name__})
