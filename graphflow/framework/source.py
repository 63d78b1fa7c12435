"""Where in the user's code an op was created, for error messages."""

from __future__ import annotations

import linecache
import os
import sys

# Frames inside the graphflow package are ours; the first frame outside it is the user's.
_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def user_frame() -> tuple[str, int, str] | None:
    """(filename, lineno, function) of the innermost caller outside graphflow."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(_PKG_DIR):
        f = f.f_back
    if f is None:
        return None
    return (f.f_code.co_filename, f.f_lineno, f.f_code.co_name)


def format_frame(frame: tuple[str, int, str] | None) -> str | None:
    """``file:line (in fn): source text`` for a frame from :func:`user_frame`."""
    if frame is None:
        return None
    filename, lineno, func = frame
    text = linecache.getline(filename, lineno).strip()
    where = f"{filename}:{lineno}"
    if func and func != "<module>":
        where += f" in {func}"
    return f"{where}: {text}" if text else where
