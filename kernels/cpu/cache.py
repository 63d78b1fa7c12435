"""The on-disk kernel cache: one small generated module per kernel, compiled with cache=True.

A kernel's key is a SHA-256 of its generated source, the argument dtypes and
ranks, and the graphflow, Numba and Python versions. The module is written to
``<cache dir>/gf_<key>.py`` (temp file + ``os.replace``, so concurrent writers
never expose a half-written file) and imported from there; Numba's own
``cache=True`` stores the machine code in ``__pycache__`` beside it, so a second
process with the same cache dir loads the kernel without compiling. The cache
dir is ``$GRAPHFLOW_CACHE_DIR`` or ``~/.cache/graphflow`` (``$XDG_CACHE_HOME``
respected). A damaged entry (wrong text, failing import, unreadable Numba
cache) is rewritten and recompiled instead of raising.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numba

import graphflow

_lock = threading.Lock()
_loaded: dict[str, Any] = {}

# Counters for tests and benchmarks: modules written this process, kernels compiled.
stats = {"written": 0, "loaded": 0}


def cache_dir() -> Path:
    """The kernel cache directory (created on first use)."""
    env = os.environ.get("GRAPHFLOW_CACHE_DIR")
    if env:
        d = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = Path(base) / "graphflow"
    d = d / "kernels"
    d.mkdir(parents=True, exist_ok=True)
    return d


def kernel_key(source: str, signature: str) -> str:
    h = hashlib.sha256()
    for part in (source, signature, getattr(graphflow, "__version__", "0"), numba.__version__,
                 sys.version):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    stats["written"] += 1


def _import(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return mod


def _purge_numba_cache(d: Path, name: str) -> None:
    pyc = d / "__pycache__"
    if pyc.is_dir():
        for p in pyc.glob(f"{name}.*"):
            try:
                p.unlink()
            except OSError:
                pass


def load_kernel(source: str, signature: str) -> Any:
    """The ``kernel`` function of ``source``: from memory, from disk, or freshly written."""
    key = kernel_key(source, signature)
    with _lock:
        fn = _loaded.get(key)
        if fn is not None:
            return fn
        d = cache_dir()
        name = f"gf_{key}"
        path = d / f"{name}.py"
        try:
            ok = path.read_text(encoding="utf-8") == source
        except (OSError, UnicodeDecodeError):
            ok = False
        if not ok:
            _purge_numba_cache(d, name)
            _write_atomic(path, source)
        try:
            mod = _import(path, name)
        except Exception:
            _purge_numba_cache(d, name)
            _write_atomic(path, source)
            mod = _import(path, name)
        stats["loaded"] += 1
        fn = _loaded[key] = mod.kernel
        return fn


def call_kernel(fn: Any, args: list[Any]) -> None:
    """Calls a kernel; a damaged Numba cache file is dropped and the kernel recompiled."""
    try:
        fn(*args)
    except Exception:
        # An unreadable index/data file in __pycache__: recompile without the disk cache.
        mod = sys.modules.get(fn.__module__)
        path = Path(mod.__file__) if mod is not None and getattr(mod, "__file__", None) else None
        if path is None:
            raise
        _purge_numba_cache(path.parent, path.stem)
        fn.recompile()
        fn(*args)


def compile_stats(fns: list[Any]) -> dict[str, int]:
    """Numba's cache hits / misses summed over kernel dispatchers."""
    hits = misses = 0
    for f in fns:
        s = f.stats
        hits += sum(s.cache_hits.values())
        misses += sum(s.cache_misses.values())
    return {"cache_hits": hits, "cache_misses": misses}


def clear() -> None:
    """Forgets loaded kernels and deletes the cache directory's kernels (tests)."""
    with _lock:
        _loaded.clear()
        shutil.rmtree(cache_dir(), ignore_errors=True)
