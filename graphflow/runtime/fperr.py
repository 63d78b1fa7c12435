"""Floating-point error state for a run: NumPy warnings off, as TF1 kernels never warn.

``np.errstate(all="ignore")`` costs a few microseconds per ``with`` (it builds its
state object each time), which is a good part of a tiny graph's run. NumPy 2 keeps
that state in a context variable; setting it to a state built once costs a tenth.
If NumPy's internals change, this falls back to ``np.errstate``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = ["ignore", "restore"]

try:
    from numpy._core._ufunc_config import _extobj_contextvar, _make_extobj

    # C callables, no Python frame: ignore() -> token, restore(token).
    ignore = functools.partial(_extobj_contextvar.set, _make_extobj(all="ignore"))
    restore = _extobj_contextvar.reset

except (ImportError, AttributeError, TypeError):  # pragma: no cover - other NumPy versions
    def ignore() -> Any:
        """Turns NumPy floating-point warnings off; returns what :func:`restore` takes."""
        state = np.errstate(all="ignore")
        state.__enter__()
        return state

    def restore(token: Any) -> None:
        """Puts back the error state that :func:`ignore` replaced."""
        token.__exit__(None, None, None)
