"""Shared test setup: a fresh default graph per test, hypothesis profiles, run helpers."""

from __future__ import annotations

import os

# The CPU backend evaluates a plan's first run with NumPy and builds its kernels on the
# second (JIT_WARMUP); most tests run a graph once and are there to exercise the kernels.
os.environ.setdefault("GRAPHFLOW_JIT_WARMUP", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

import graphflow as gf  # noqa: E402

settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow],
    derandomize=True)
settings.register_profile(
    "dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("GRAPHFLOW_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="module")
def module_kernel_cache(tmp_path_factory):
    """Points GRAPHFLOW_CACHE_DIR at a kernel cache shared by one test module."""
    d = tmp_path_factory.mktemp("gf_kernel_cache")
    old = os.environ.get("GRAPHFLOW_CACHE_DIR")
    os.environ["GRAPHFLOW_CACHE_DIR"] = str(d)
    yield d
    if old is None:
        os.environ.pop("GRAPHFLOW_CACHE_DIR", None)
    else:
        os.environ["GRAPHFLOW_CACHE_DIR"] = old


@pytest.fixture(autouse=True)
def _fresh_default_graph():
    gf.reset_default_graph()
    yield
    gf.reset_default_graph()


def run(fetches, feed_dict=None, graph=None):
    """Runs ``fetches`` in a fresh reference Session (variables initialized first)."""
    with gf.Session(graph=graph, backend="reference") as sess:
        init = sess.graph.get_collection(gf.GraphKeys.GLOBAL_VARIABLES)
        if init:
            sess.run(gf.variables_initializer(init))
        return sess.run(fetches, feed_dict)


def assert_same(actual, expected, rtol=1e-6, atol=0.0):
    """Values, dtype and shape must match NumPy's; NaN matches NaN."""
    expected = np.asarray(expected)
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype} != {expected.dtype}"
    if expected.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)


def run_threads(target, arg_sets, timeout=60.0):
    """Runs ``target(*args)`` on a thread per ``args`` at once; fails (instead of hanging)
    if any has not returned within ``timeout`` seconds."""
    import threading

    ts = [threading.Thread(target=target, args=args, daemon=True) for args in arg_sets]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout)
    assert not any(t.is_alive() for t in ts), "a thread did not return"
