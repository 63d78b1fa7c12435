"""Benchmark ew: ``tanh(x*0.5+y)*sigmoid(x) + x*x - y/(1+abs(x))`` on float32[N].

Times, side by side in one process: NumPy (the same expression on arrays),
``Session(backend="reference")``, ``Session(backend="cpu")`` (generated Numba
kernels; the first, compiling run is reported apart) and a plain copy of the
same bytes (x and y copied into one buffer: the memory floor). Prints the
median of ``--repeat`` runs and ratios to NumPy and to the floor.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python tools/bench/ew_bench.py [--n 10000000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import graphflow as gf


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def numpy_ew(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.tanh(x * 0.5 + y) * _sigmoid(x) + x * x - y / (1 + np.abs(x))


def timeit(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    xs = rng.standard_normal(args.n, dtype=np.float32)
    ys = rng.standard_normal(args.n, dtype=np.float32)

    x = gf.placeholder(gf.float32, [None], name="x")
    y = gf.placeholder(gf.float32, [None], name="y")
    z = gf.tanh(x * 0.5 + y) * gf.sigmoid(x) + x * x - y / (1 + gf.abs(x))
    feeds = {x: xs, y: ys}

    results: dict[str, float] = {}
    # The memory floor: a plain copy of the input bytes (x and y into one 2N buffer).
    buf = np.empty(2 * args.n, np.float32)

    def copy():
        np.copyto(buf[:args.n], xs)
        np.copyto(buf[args.n:], ys)

    results["copy x,y"] = timeit(copy, args.repeat)
    results["numpy"] = timeit(lambda: numpy_ew(xs, ys), args.repeat)
    with gf.Session(backend="reference") as s:
        ref = s.run(z, feeds)
        results["graphflow reference"] = timeit(lambda: s.run(z, feeds), args.repeat)
    with gf.Session(backend="cpu") as s:
        t0 = time.perf_counter()
        got = s.run(z, feeds)
        first = time.perf_counter() - t0
        results["graphflow cpu"] = timeit(lambda: s.run(z, feeds), args.repeat)
        exe = next(iter(s._cache.values()))
        n_fused, n_steps = len(exe.fused), len(exe.plan.steps)
    err = float(np.max(np.abs(got - ref)))

    base = results["numpy"]
    floor = results["copy x,y"]
    print(f"ew on float32[{args.n}], median of {args.repeat} "
          f"(cpu: {n_fused}/{n_steps} steps fused; first run incl. compile/cache load "
          f"{first * 1e3:.0f} ms; max |cpu - reference| = {err:.2e})")
    print(f"{'':24s}{'ms':>10s}{'vs numpy':>10s}{'vs copy':>10s}")
    for name, t in results.items():
        print(f"{name:24s}{t * 1e3:10.2f}{t / base:10.2f}{t / floor:10.2f}")


if __name__ == "__main__":
    main()
