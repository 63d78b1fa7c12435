"""The CPU kernels' thread pool (kernels/cpu/threads.py) and its spin waits (spin.py)."""

from __future__ import annotations

import ctypes
import threading
import time

import numpy as np
import pytest
from conftest import run_threads

from graphflow.kernels.cpu import spin, threads


def _who(k: int) -> tuple[int, str]:
    return k, threading.current_thread().name


def test_results_come_back_in_order_and_pieces_run_on_the_pool():
    out = threads.run_parallel([(_who, (k,)) for k in range(2)])
    assert [k for k, _ in out] == [0, 1]
    assert out[0][1] == threading.current_thread().name  # the caller runs the first
    assert out[1][1].startswith("graphflow-cpu-")


def test_more_calls_than_threads_are_shared_out():
    out = threads.run_parallel([(_who, (k,)) for k in range(7)])
    assert [k for k, _ in out] == list(range(7))
    assert {name for _, name in out} >= {threading.current_thread().name}


def test_errors_reach_the_caller_after_every_piece_finished():
    done = []

    def slow_ok() -> None:
        time.sleep(0.05)
        done.append(1)

    def bad() -> None:
        raise ValueError("piece failed")

    with pytest.raises(ValueError, match="piece failed"):
        threads.run_parallel([(slow_ok, ()), (bad, ())])
    assert done == [1]
    with pytest.raises(KeyError):
        threads.run_parallel([(lambda: {}["x"], ()), (slow_ok, ())])
    assert done == [1, 1]
    assert [k for k, _ in threads.run_parallel([(_who, (k,)) for k in range(3)])] == [0, 1, 2]


def test_sections_from_many_threads_and_nested_sections_all_finish():
    results: dict[int, list] = {}

    def nested(k: int) -> int:
        return sum(threads.run_parallel([(lambda j=j: j * k, ()) for j in range(3)]))

    def caller(k: int) -> None:
        got = []
        for _ in range(50):
            got.append(threads.run_parallel([(nested, (k,)), (lambda: k, ())]))
        results[k] = got

    run_threads(caller, [(k,) for k in range(4)])
    assert results == {k: [[3 * k, k]] * 50 for k in range(4)}


def test_pieces_after_a_pause_wake_the_sleeping_worker():
    # Longer than the spin: the worker has gone to sleep on the condition.
    time.sleep(max(threads.SPIN_US, 1000) * 2e-6)
    out = threads.run_parallel([(_who, (k,)) for k in range(2)])
    assert out[1][1].startswith("graphflow-cpu-")


def test_spin_waits_return_on_the_store_or_after_their_spins():
    word = np.zeros(1, np.int64)
    addr = word.ctypes.data
    assert spin.until_changed(addr, 0, 1000) == 0  # nothing changed: spins ran out
    assert spin.until_reached(addr, 1, 1000) == 0
    word[0] = 3
    assert spin.until_changed(addr, 0, 10) == 3
    assert spin.until_reached(addr, 2, 10) == 3
    cell = ctypes.c_int64(0)
    setter = threading.Timer(0.01, lambda: setattr(cell, "value", 9))
    setter.start()
    start = time.perf_counter()
    got = spin.until_changed(ctypes.addressof(cell), 0, spin.spins_for(5e6))
    setter.join()
    assert got == 9 and time.perf_counter() - start < 2  # left on the store, not the count
