"""The on-disk kernel cache: one small generated module per kernel, compiled with cache=True.

A kernel's key is a SHA-256 of its *key parts* (:data:`KEY_PARTS`): a hash of the
generated loop (the op structure), a hash of the prelude before it (fast-math or
libm tables, fastmath.py's hash), the signature (rank and argument dtypes), the
graphflow, Numba, llvmlite and Python versions, and the CPU name (Numba's
machine code is CPU-specific). The module is written to
``<cache dir>/gf_<key>.py`` (temp file + ``os.replace``, so concurrent writers
never expose a half-written file) and imported from there; Numba's own
``cache=True`` stores the machine code in ``__pycache__`` beside it, so a second
process with the same cache dir loads the kernel without compiling. The cache
dir is ``$GRAPHFLOW_CACHE_DIR`` or ``~/.cache/graphflow`` (``$XDG_CACHE_HOME``
respected). A damaged entry (wrong text, failing import, unreadable Numba
cache) is rewritten and recompiled instead of raising.

Beside each module, ``gf_<key>.json`` (the manifest, also written atomically)
records the key parts and the creation time, so that a miss can be explained:
:func:`explain_miss` names the parts in which the closest cached entries differ,
and ``GRAPHFLOW_EXPLAIN_CACHE_MISSES=1`` logs that explanation for every miss
(logger ``graphflow.kernels.cache``, level INFO). :func:`entries` lists the
manifests. A missing or damaged manifest never stops a kernel from loading: its
parts count as unknown (the loop and prelude hashes are recovered from the
module's text) and the next load of that kernel rewrites it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import pickle
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import llvmlite
import numba
from llvmlite import binding as _llvm
from numba.core import config as _numba_config

import graphflow

__all__ = ["KEY_PARTS", "cache_dir", "call_kernel", "clear", "compile_stats", "entries",
           "explain_miss", "kernel_key", "key_parts", "load_kernel", "object_path",
           "read_object", "stats", "write_object"]

logger = logging.getLogger("graphflow.kernels.cache")

_lock = threading.Lock()
_loaded: dict[str, Any] = {}

# Counters for tests and benchmarks: modules written this process, kernels loaded
# (imported), misses (kernels whose module was not on disk yet, or differed).
stats = {"written": 0, "loaded": 0, "misses": 0}

# The parts a kernel's key is made of, in hashing order (and in explanations).
KEY_PARTS = ("loop", "prelude", "signature", "graphflow", "numba", "llvmlite", "python",
             "cpu")
_LABELS = {"graphflow": "graphflow version", "numba": "numba version",
           "llvmlite": "llvmlite version", "python": "python version", "cpu": "CPU"}
_MANIFEST_FORMAT = 1
_EXPLAIN_ENV = "GRAPHFLOW_EXPLAIN_CACHE_MISSES"

# The kernel definition (with its decorators) starts the loop; everything above it is
# the prelude (codegen._PRELUDES: imports, math tables, helpers).
_KERNEL_DEF = re.compile(r"^(?:@[^\n]*\n)*def kernel\(", re.MULTILINE)
_FASTMATH_LINE = re.compile(r"^# fastmath (\S+)", re.MULTILINE)
_MATH_TABLE = re.compile(r"import (FASTMATH|LIBM) as _TABLE")
_MATH_NAMES = {"FASTMATH": "fast-math", "LIBM": "libm"}


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


@functools.cache
def _cpu_name() -> str:
    # The name Numba compiles for: NUMBA_CPU_NAME (e.g. "generic", for caches shared
    # between machines) overrides the host's.
    return _numba_config.CPU_NAME or _llvm.get_host_cpu_name()


def _environment() -> dict[str, str]:
    """The key parts that come from the installation and the machine, read at each call
    (so upgrades in a long-lived process and tests' monkeypatches are seen)."""
    return {"graphflow": str(getattr(graphflow, "__version__", "0")),
            "numba": str(numba.__version__), "llvmlite": str(llvmlite.__version__),
            "python": sys.version, "cpu": _cpu_name()}


def _split(source: str) -> tuple[str, str]:
    """``(prelude, loop)`` of a kernel module; no ``def kernel`` means no prelude."""
    m = _KERNEL_DEF.search(source)
    at = m.start() if m else 0
    return source[:at], source[at:]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _prelude_info(prelude: str) -> dict[str, str | None]:
    """What a human recognises in a prelude: the math table and fastmath.py's hash."""
    fm = _FASTMATH_LINE.search(prelude)
    table = _MATH_TABLE.search(prelude)
    return {"math": table.group(1) if table else None, "fastmath": fm.group(1) if fm else None}


def key_parts(source: str, signature: str) -> dict[str, str]:
    """The parts of the cache key of a kernel, as recorded in its manifest.

    Args:
      source: the kernel module's source (see ``codegen.kernel_source``).
      signature: the argument rank and dtypes, e.g. ``"1:('<f4', '<f4')"``.

    Returns:
      A dict with one string per name in :data:`KEY_PARTS`.
    """
    prelude, loop = _split(source)
    return {"loop": _sha(loop), "prelude": _sha(prelude), "signature": signature,
            **_environment()}


def _digest(parts: dict[str, Any], names: Any = KEY_PARTS) -> str:
    h = hashlib.sha256()
    for name in names:
        h.update(f"{name}={parts[name]}".encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def kernel_key(source: str, signature: str) -> str:
    """The cache key of a kernel: a hash of :func:`key_parts`.

    Args:
      source: the kernel module's source.
      signature: the argument rank and dtypes.

    Returns:
      32 hex digits; the kernel's module is ``gf_<key>.py`` in :func:`cache_dir`.
    """
    return _digest(key_parts(source, signature))


def _write_atomic(path: Path, data: str | bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        if isinstance(data, bytes):
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


_OBJECT_MAGIC = b"graphflow-object-1\n"


def object_path(text: str) -> Path:
    """Where machine code compiled from ``text`` (e.g. an LLVM IR module) is cached: keyed
    by the text and the environment (versions, CPU) like a kernel."""
    parts = {"text": text, **_environment(), "features": _llvm.get_host_cpu_features().flatten()}
    return cache_dir() / f"obj_{_digest(parts, sorted(parts))}.o"


def read_object(path: Path) -> bytes | None:
    """The cached object code at ``path``, or None when it is missing or damaged (its
    checksum does not match: a damaged entry is compiled again, never loaded)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head = len(_OBJECT_MAGIC)
    if data[:head] != _OBJECT_MAGIC or len(data) < head + 32:
        return None
    digest, body = data[head:head + 32], data[head + 32:]
    return body if hashlib.sha256(body).digest() == digest else None


def write_object(path: Path, body: bytes) -> None:
    """Stores object code at ``path`` atomically, with its checksum."""
    _write_atomic(path, _OBJECT_MAGIC + hashlib.sha256(body).digest() + body)


def _timestamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _write_manifest(path: Path, key: str, parts: dict[str, str], source: str,
                    created: float | None = None) -> None:
    manifest = {"format": _MANIFEST_FORMAT, "key": key,
                "created": _timestamp(time.time() if created is None else created),
                "parts": parts, "prelude_info": _prelude_info(_split(source)[0])}
    try:
        _write_atomic(path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    except OSError:
        # The manifest only explains misses: a read-only or full disk must not stop the
        # kernel from loading.
        logger.debug("could not write kernel cache manifest %s", path, exc_info=True)


def _read_manifest(path: Path, key: str) -> dict[str, Any] | None:
    """The manifest at ``path`` if it is well-formed and belongs to ``key``, else None."""
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(m, dict) or m.get("format") != _MANIFEST_FORMAT or m.get("key") != key:
        return None
    parts = m.get("parts")
    if not isinstance(parts, dict) or not all(isinstance(parts.get(n), str) for n in KEY_PARTS):
        return None
    info = m.get("prelude_info")
    if not isinstance(info, dict):
        info = {}
    return {"key": key, "created": str(m.get("created", "unknown")),
            "parts": {n: parts[n] for n in KEY_PARTS},
            "prelude_info": {k: info.get(k) if isinstance(info.get(k), str) else None
                             for k in ("math", "fastmath")}}


def _entry(d: Path, key: str) -> dict[str, Any]:
    """One cache entry's manifest; a missing or damaged one yields unknown (None) parts
    except the loop and prelude hashes, which the module's own text still tells."""
    module = d / f"gf_{key}.py"
    manifest = d / f"gf_{key}.json"
    m = _read_manifest(manifest, key)
    if m is not None:
        m["manifest"] = "ok"
    else:
        m = {"key": key, "created": "unknown", "parts": dict.fromkeys(KEY_PARTS),
             "prelude_info": {"math": None, "fastmath": None},
             "manifest": "damaged" if manifest.exists() else "missing"}
        try:
            text = module.read_text(encoding="utf-8")
            m["created"] = _timestamp(module.stat().st_mtime)
        except (OSError, UnicodeDecodeError):
            text = None
        if text is not None:
            prelude, loop = _split(text)
            m["parts"].update(loop=_sha(loop), prelude=_sha(prelude))
            m["prelude_info"] = _prelude_info(prelude)
    m["module"] = str(module)
    return m


def entries() -> list[dict[str, Any]]:
    """The kernels in the cache directory, from their manifests (for tools and a CLI).

    Returns:
      One dict per ``gf_<key>.py`` module, sorted by key: ``key``, ``module`` (path),
      ``created`` (ISO 8601 UTC, or ``"unknown"``), ``parts`` (:data:`KEY_PARTS` -> str,
      None where unknown), ``prelude_info`` (``math``: ``"FASTMATH"``/``"LIBM"``,
      ``fastmath``: fastmath.py's hash; None where unknown) and ``manifest``
      (``"ok"``, ``"missing"`` or ``"damaged"``).
    """
    d = cache_dir()
    return [_entry(d, p.stem[3:]) for p in sorted(d.glob("gf_*.py"))]


# --- Numba's own cache of the compiled code ---------------------------------------------

def _numba_cache_path(module: Path) -> Path:
    """Where Numba keeps ``module``'s compiled code: ``__pycache__`` beside it, or under
    ``$NUMBA_CACHE_DIR`` when that is set (Numba's locators, in their order)."""
    if _numba_config.CACHE_DIR:
        from numba.core import caching
        locator = getattr(caching, "_CacheLocator", None)
        if locator is not None and hasattr(locator, "get_suitable_cache_subpath"):
            return Path(_numba_config.CACHE_DIR) / locator.get_suitable_cache_subpath(
                str(module))
    return module.parent / "__pycache__"


def _purge_numba_cache(d: Path, name: str) -> None:
    pyc = _numba_cache_path(d / f"{name}.py")
    if pyc.is_dir():
        for p in pyc.glob(f"{name}.*"):
            try:
                p.unlink()
            except OSError:
                pass


def _magic_tuple() -> tuple:
    """This process's (target triple, CPU name, CPU features): the part of Numba's cache
    index keys that says which machine the code was compiled for."""
    try:
        from numba.core.registry import cpu_target
        return tuple(cpu_target.target_context.codegen().magic_tuple())
    except Exception:  # an internal API: fall back to comparing CPU names only
        return (None, _cpu_name(), None)


def _stamp_fresh(stamp: Any, module: Path) -> bool:
    """Whether Numba's source stamp matches the module: a content hash (Numba >= 0.61)
    or ``(mtime, size)`` (older Numba)."""
    try:
        data = module.read_bytes()
        st = module.stat()
    except OSError:
        return False
    return stamp in (hashlib.sha256(data).digest(), (st.st_mtime, st.st_size))


def _numba_status(module: Path) -> tuple[str, bool]:
    """A phrase on Numba's compiled code for ``module``'s ``kernel``, and whether this CPU
    can load it without compiling.

    Numba names the index ``<module>.<function>-<line>.py<XY><abiflags>.nbi`` (data in
    ``.<n>.nbc`` files); the index pickles ``{(signature, (triple, cpu, features),
    bytecode hashes): data file}`` after a pickled Numba version.
    """
    pyc = _numba_cache_path(module)
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}{getattr(sys, 'abiflags', '')}"
    indexes = sorted(pyc.glob(f"{module.stem}.kernel-*.{tag}.nbi")) if pyc.is_dir() else []
    if not indexes:
        return "Numba has no compiled code for it yet (it compiles on the first call)", False
    here = _magic_tuple()
    count = 0
    other_cpus: set[str] = set()
    same_cpu_other_features = False
    for index in indexes:
        try:
            # Unpickling is as trusted as importing the module beside it, which we do
            # anyway; Numba itself unpickles this file when the kernel is first called.
            with open(index, "rb") as f:
                version = pickle.load(f)
                if version != numba.__version__:
                    return (f"Numba's compiled code was written by numba {version} and "
                            "will be recompiled", False)
                stamp, overloads = pickle.loads(f.read())
        except Exception:
            return f"Numba's cache index {index.name} is unreadable (it will recompile)", False
        if not _stamp_fresh(stamp, module):
            return ("Numba's compiled code is stale (the module changed after it was "
                    "compiled) and will be recompiled", False)
        for k in overloads:
            magic = k[1] if isinstance(k, tuple) and len(k) > 1 else ()
            cpu = magic[1] if isinstance(magic, tuple) and len(magic) > 2 else None
            if cpu != here[1]:
                other_cpus.add(str(cpu))
            elif here[2] is not None and magic[2] != here[2]:
                same_cpu_other_features = True
            else:
                count += 1
    if count:
        return (f"Numba's compiled code for this CPU ({here[1]}) is cached "
                f"({count} signature{'s' if count > 1 else ''})", True)
    if same_cpu_other_features:
        return (f"Numba's compiled code is cached for CPU {here[1]} but with other CPU "
                "features, so it will be recompiled", False)
    if other_cpus:
        return (f"Numba's compiled code is cached only for other CPUs "
                f"({', '.join(sorted(other_cpus))}), so this CPU ({here[1]}) compiles it",
                False)
    return "Numba has no compiled code for it yet (it compiles on the first call)", False


# --- explaining misses ------------------------------------------------------------------

def _differences(parts: dict[str, str], info: dict[str, Any], other: dict[str, Any]
                 ) -> tuple[list[str], list[str]]:
    """The key parts in which a cached entry ``other`` differs from ``parts`` (as phrases),
    and the names of those its manifest does not record."""
    diffs: list[str] = []
    unknown: list[str] = []
    theirs = other["parts"]
    for name in KEY_PARTS:
        mine, cached = parts[name], theirs.get(name)
        if cached is None:
            unknown.append(_LABELS.get(name, name))
        elif mine == cached:
            continue
        elif name == "loop":
            diffs.append("different loop structure")
        elif name == "prelude":
            diffs.append(_prelude_difference(info, other["prelude_info"]))
        elif name == "signature":
            rank, _, dtypes = mine.partition(":")
            crank, _, cdtypes = cached.partition(":")
            what = ("rank and dtypes" if rank != crank and dtypes != cdtypes
                    else "rank" if rank != crank else "dtypes")
            diffs.append(f"different {what}: {mine} vs {cached} (cached)")
        else:
            diffs.append(f"{_LABELS[name]} {mine} != {cached} (cached)")
    return diffs, unknown


def _prelude_difference(mine: dict[str, Any], cached: dict[str, Any]) -> str:
    if mine.get("math") and cached.get("math") and mine["math"] != cached["math"]:
        return (f"different fast-math prelude: {_MATH_NAMES[mine['math']]} vs "
                f"{_MATH_NAMES[cached['math']]} (cached)")
    if mine.get("fastmath") and cached.get("fastmath") and mine["fastmath"] != cached["fastmath"]:
        return (f"different fast-math prelude: fastmath.py {mine['fastmath']} vs "
                f"{cached['fastmath']} (cached), i.e. fastmath.py changed")
    return "different prelude (the module's imports and helpers)"


def explain_miss(source: str, signature: str) -> str:
    """Why the kernel of ``(source, signature)`` is (or is not) in the disk cache.

    When it is not cached, the closest cached entries (same loop structure, else same
    signature) are compared part by part (:data:`KEY_PARTS`) and the differences named,
    e.g. ``numba version 0.61.0 != 0.60.0 (cached)`` or ``different dtypes: ...``; parts
    a damaged manifest does not record are named as unknown. When it is cached, says so,
    and whether Numba's compiled code for it exists for this CPU (a second process
    then compiles nothing). Reads the cache only; never compiles or writes.

    Args:
      source: the kernel module's source (as given to :func:`load_kernel`).
      signature: the argument rank and dtypes (as given to :func:`load_kernel`).

    Returns:
      One readable paragraph.
    """
    parts = key_parts(source, signature)
    key = _digest(parts)
    d = cache_dir()
    module = d / f"gf_{key}.py"
    name = f"gf_{key}"
    try:
        text: str | None = module.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = None
    if text == source:
        e = _entry(d, key)
        when = f"created {e['created']}" if e["manifest"] == "ok" else (
            f"manifest {e['manifest']}, module written {e['created']}")
        status, _ = _numba_status(module)
        return f"Kernel {name} ({signature}) is cached in {d} ({when}); {status}."
    if text is not None:
        return (f"Kernel {name} ({signature}) has an entry in {d} but its module is damaged "
                "(its text is not the generated source); it will be rewritten and compiled.")
    info = _prelude_info(_split(source)[0])
    others = [e for e in entries() if e["key"] != key]
    same_loop = [e for e in others if e["parts"]["loop"] == parts["loop"]]
    same_sig = [e for e in others if e["parts"]["signature"] == signature]
    head = f"Kernel {name} ({signature}) is not cached in {d}"
    if not same_loop:
        tail = ""
        if same_sig:
            n = len(same_sig)
            tail = (f"; {n} cached kernel{'s share' if n > 1 else ' shares'} its signature "
                    f"{signature} but {'have other loops' if n > 1 else 'has another loop'}")
        unreadable = sum(e["parts"]["loop"] is None for e in others)
        if unreadable:
            tail += f"; {unreadable} entr{'ies' if unreadable > 1 else 'y'} could not be read"
        return f"{head}: no kernel with this loop structure has been cached{tail}."

    def closeness(e: dict[str, Any]) -> tuple:
        diffs, unknown = _differences(parts, info, e)
        return (len(diffs), len(unknown), e["manifest"] != "ok")

    best = min(same_loop, key=closeness)
    diffs, unknown = _differences(parts, info, best)
    msg = (f"{head}. The closest entry, gf_{best['key']} (created {best['created']}), has the "
            "same loop structure")
    if diffs:
        msg += f" but differs in: {'; '.join(diffs)}"
    if unknown:
        msg += (f"; its manifest is {best['manifest']}, so these parts are unknown: "
                 f"{', '.join(unknown)}")
    if len(same_loop) > 1:
        n = len(same_loop) - 1
        msg += f". {n} other cached kernel{'s' if n > 1 else ''} share this loop structure"
    return msg + "."


def _explaining() -> bool:
    return os.environ.get(_EXPLAIN_ENV, "").strip().lower() not in ("", "0", "false", "no")


# --- loading ----------------------------------------------------------------------------

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


def load_kernel(source: str, signature: str) -> Any:
    """The ``kernel`` function of ``source``: from memory, from disk, or freshly written.

    With ``GRAPHFLOW_EXPLAIN_CACHE_MISSES=1``, each miss (and each hit whose machine code
    Numba will have to compile for this CPU) is explained in an INFO record of the
    ``graphflow.kernels.cache`` logger (:func:`explain_miss`).

    Args:
      source: a module defining ``kernel`` (see ``codegen.kernel_source``).
      signature: the argument rank and dtypes, part of the cache key.

    Returns:
      The Numba dispatcher ``kernel`` (compiled, or loaded from Numba's cache, on its
      first call).
    """
    parts = key_parts(source, signature)
    key = _digest(parts)
    with _lock:
        fn = _loaded.get(key)
        if fn is not None:
            return fn
        d = cache_dir()
        name = f"gf_{key}"
        path = d / f"{name}.py"
        manifest = d / f"{name}.json"
        try:
            ok = path.read_text(encoding="utf-8") == source
        except (OSError, UnicodeDecodeError):
            ok = False
        explaining = _explaining()
        if not ok:
            stats["misses"] += 1
            if explaining:
                logger.info("%s", explain_miss(source, signature))
            _purge_numba_cache(d, name)
            _write_atomic(path, source)
            stats["written"] += 1
            _write_manifest(manifest, key, parts, source)
        else:
            if _read_manifest(manifest, key) is None:
                # Repair a lost or damaged manifest; the module's age is the best guess
                # of when the entry was created.
                try:
                    created = path.stat().st_mtime
                except OSError:
                    created = None
                _write_manifest(manifest, key, parts, source, created)
            if explaining:
                status, ready = _numba_status(path)
                if not ready:
                    logger.info("Kernel %s (%s) is cached but %s.", name, signature, status)
        try:
            mod = _import(path, name)
        except Exception:
            _purge_numba_cache(d, name)
            _write_atomic(path, source)
            stats["written"] += 1
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
