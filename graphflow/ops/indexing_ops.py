"""Slicing and gathering: slice, strided_slice (``t[...]``), gather, gather_nd."""

from __future__ import annotations

__all__: list[str] = []
