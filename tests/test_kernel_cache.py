"""The kernel cache's manifests and miss explanations (kernels/cpu/cache.py).

Loading a kernel imports its module but compiles nothing (Numba compiles on the first
call), so only ``test_cached_kernel_and_numba_code_for_this_cpu`` pays for a compile.
"""

from __future__ import annotations

import json
import logging
import re

import llvmlite
import numba
import numpy as np
import pytest

from graphflow.kernels.cpu import cache, codegen

F4 = "1:('<f4', '<f4')"
F8 = "1:('<f8', '<f8')"

# A hand-written kernel module: a prelude line like codegen's, then the loop.
_TINY = """\
# fastmath {tag}
from numba import njit


@njit(cache=True)
def kernel(a0, o0):
    for i0 in range(o0.shape[0]):
        o0[i0] = a0[i0] {op}
"""


def tiny(op: str = "+ 1", tag: str = "aaaa") -> str:
    return _TINY.format(op=op, tag=tag)


def real(fast_math: bool) -> str:
    return codegen.kernel_source(["t0 = np.float32(np.tanh(x0))", "r0 = t0"], 1, 1, 1,
                                 fast_math)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """A fresh cache dir and an empty in-memory table (keys do not depend on the dir)."""
    monkeypatch.setenv("GRAPHFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(cache._EXPLAIN_ENV, raising=False)
    monkeypatch.setattr(cache, "_loaded", {})
    return tmp_path / "cache" / "kernels"


def reload(source: str, signature: str):
    """Loads from disk as a new process would (nothing in memory)."""
    cache._loaded.clear()
    return cache.load_kernel(source, signature)


def test_manifest_records_key_parts(_own_cache):
    src = tiny()
    misses = cache.stats["misses"]
    cache.load_kernel(src, F4)
    key = cache.kernel_key(src, F4)
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    m = json.loads((_own_cache / f"gf_{key}.json").read_text())
    assert m["key"] == key and m["parts"] == cache.key_parts(src, F4)
    assert set(m["parts"]) == set(cache.KEY_PARTS)
    assert m["parts"]["numba"] == numba.__version__
    assert m["parts"]["llvmlite"] == llvmlite.__version__
    assert m["parts"]["cpu"] and m["prelude_info"]["fastmath"] == "aaaa"
    assert cache.stats["misses"] == misses + 1
    reload(src, F4)  # a disk hit is no miss
    assert cache.stats["misses"] == misses + 1
    [e] = cache.entries()
    assert e["key"] == key and e["manifest"] == "ok" and e["parts"] == m["parts"]
    assert not list(_own_cache.glob("*.tmp"))


def test_key_parts_split_prelude_from_loop():
    a, b = cache.key_parts(tiny(tag="aaaa"), F4), cache.key_parts(tiny(tag="bbbb"), F4)
    assert a["loop"] == b["loop"] and a["prelude"] != b["prelude"]
    c = cache.key_parts(tiny(op="* 2"), F4)
    assert c["loop"] != a["loop"] and c["prelude"] == a["prelude"]


def test_key_covers_llvmlite_version_and_cpu(monkeypatch):
    src = tiny()
    key = cache.kernel_key(src, F4)
    version = llvmlite.__version__
    monkeypatch.setattr(llvmlite, "__version__", "0.0.1")
    assert cache.kernel_key(src, F4) != key
    monkeypatch.setattr(llvmlite, "__version__", version)
    assert cache.kernel_key(src, F4) == key
    monkeypatch.setattr(cache, "_cpu_name", lambda: "some-other-cpu")
    assert cache.kernel_key(src, F4) != key


def test_explains_changed_signature():
    src = tiny()
    cache.load_kernel(src, F4)
    text = cache.explain_miss(src, F8)
    assert "not cached" in text and "same loop structure" in text
    assert f"different dtypes: {F8} vs {F4} (cached)" in text
    assert "different rank" in cache.explain_miss(src, "2:('<f4', '<f4')")


def test_explains_changed_prelude():
    cache.load_kernel(real(True), F4)
    assert "different fast-math prelude: libm vs fast-math (cached)" in cache.explain_miss(
        real(False), F4)
    # fastmath.py edited: only the '# fastmath <hash>' line differs.
    edited = re.sub(r"^# fastmath \S+", "# fastmath 0123456789abcdef", real(True))
    text = cache.explain_miss(edited, F4)
    assert "fastmath.py 0123456789abcdef vs" in text and "fastmath.py changed" in text


def test_explains_new_numba_version(monkeypatch):
    src = tiny()
    cache.load_kernel(src, F4)
    real_version = numba.__version__
    monkeypatch.setattr(numba, "__version__", "0.0.1")
    text = cache.explain_miss(src, F4)
    assert f"numba version 0.0.1 != {real_version} (cached)" in text
    assert "dtypes" not in text and "prelude" not in text


def test_explains_unknown_loop_structure():
    cache.load_kernel(tiny(), F4)
    text = cache.explain_miss(tiny(op="* 3"), F4)
    assert "no kernel with this loop structure has been cached" in text
    assert "1 cached kernel shares its signature" in text


@pytest.mark.parametrize("damage", ["{not json", "[]", '{"format": 1, "key": "x"}', None])
def test_damaged_manifest_never_breaks_loading(_own_cache, damage):
    src = tiny()
    cache.load_kernel(src, F4)
    manifest = _own_cache / f"gf_{cache.kernel_key(src, F4)}.json"
    if damage is None:
        manifest.unlink()
    else:
        manifest.write_text(damage)
    [e] = cache.entries()
    assert e["manifest"] == ("missing" if damage is None else "damaged")
    assert e["parts"]["loop"] == cache.key_parts(src, F4)["loop"]  # from the module
    assert e["parts"]["numba"] is None
    text = cache.explain_miss(src, F8)
    assert "same loop structure" in text and "these parts are unknown: signature" in text
    assert "is cached" in cache.explain_miss(src, F4)
    written = cache.stats["written"]
    assert reload(src, F4) is not None  # loads, and repairs the manifest
    assert cache.stats["written"] == written
    assert cache.entries()[0]["manifest"] == "ok"


def test_damaged_module_is_explained_and_rewritten(_own_cache):
    src = tiny()
    cache.load_kernel(src, F4)
    (_own_cache / f"gf_{cache.kernel_key(src, F4)}.py").write_text("def kernel(:\n")
    assert "module is damaged" in cache.explain_miss(src, F4)
    assert reload(src, F4) is not None
    assert "is cached" in cache.explain_miss(src, F4)


def test_cached_kernel_and_numba_code_for_this_cpu(_own_cache, monkeypatch):
    src = tiny()
    fn = cache.load_kernel(src, F4)
    assert "Numba has no compiled code for it yet" in cache.explain_miss(src, F4)
    a = np.arange(4, dtype=np.float32)
    out = np.empty_like(a)
    fn(a, out)  # the only compile of this file
    np.testing.assert_array_equal(out, a + 1)
    assert list((_own_cache / "__pycache__").glob("gf_*.kernel-*.nbi"))
    text = cache.explain_miss(src, F4)
    assert "is cached" in text and f"for this CPU ({cache._cpu_name()}) is cached" in text
    with monkeypatch.context() as m:
        m.setattr(cache, "_magic_tuple", lambda: ("triple", "other-cpu", "+f"))
        assert "only for other CPUs" in cache.explain_miss(src, F4)
    for index in (_own_cache / "__pycache__").glob("gf_*.nbi"):
        index.write_bytes(b"\x00garbage")
    assert "unreadable" in cache.explain_miss(src, F4)


def test_logging_is_opt_in(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="graphflow.kernels.cache")
    src = tiny()
    cache.load_kernel(src, F4)
    assert not caplog.records
    monkeypatch.setenv("GRAPHFLOW_EXPLAIN_CACHE_MISSES", "1")
    cache.load_kernel(src, F8)
    reload(src, F4)  # a hit whose machine code Numba has not cached yet
    msgs = [r.getMessage() for r in caplog.records]
    assert all(r.name == "graphflow.kernels.cache" and r.levelno == logging.INFO
               for r in caplog.records)
    assert len(msgs) == 2
    assert "different dtypes" in msgs[0]
    assert "is cached but Numba has no compiled code" in msgs[1]
