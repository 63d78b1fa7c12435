"""One measurement in a fresh process; run.py starts one per (task, workload, framework).

A fresh process per measurement keeps frameworks from disturbing each other
(TF's and XLA's thread pools, allocator state, resident memory) on a small
machine. The result is one JSON object printed on the last stdout line after
``BENCH_JSON``. Run it by hand to look at one case::

    python tools/bench/worker.py time mlp graphflow-cpu [--size quick] [--repeat 5]
    python tools/bench/worker.py first-run mlp jax
    python tools/bench/worker.py memory cnn tensorflow [--steps 5]

Tasks:
  time       build the case, run two warm-up steps (timing the first, which
             compiles), check the result, then the median of ``--repeat``.
  serve      set up as ``time`` does, then time one sample per ``sample NAME``
             line on stdin: run.py takes turns between frameworks this way.
  first-run  the time from this process's first line to its first finished
             step, split into imports, graph build and first step; then the
             second step and the time to it from the first line.
  memory     RSS after build (the baseline) and peak RSS during the first step
             and during ``--steps`` more steps (Linux VmHWM, restarted between).
"""

from __future__ import annotations

import time

T_START = time.perf_counter()  # before any import below: first-run counts them

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

MARKER = "BENCH_JSON "
WORKLOADS = ("ew", "mlp", "cnn", "overhead")


def _import_framework(framework: str) -> None:
    """Import what ``framework`` needs up front, so first-run can tell imports from build."""
    import frameworks

    if framework.startswith("graphflow"):
        import graphflow  # noqa: F401
    elif framework == "tensorflow":
        frameworks.import_tf()
    elif framework == "jax":
        frameworks.import_jax()
    elif framework == "pytensor":
        frameworks.import_pytensor()


def _cache_stats() -> dict | None:
    """graphflow's kernel-cache counters (modules written, kernels loaded), if it ran."""
    cache = sys.modules.get("graphflow.kernels.cpu.cache")
    return dict(cache.stats) if cache is not None and hasattr(cache, "stats") else None


def _start(workload: str, framework: str, size: str) -> tuple[Any, dict]:
    """Builds the case and runs its two warm-up calls: the first timed, both checked."""
    mod = importlib.import_module(workload)
    t0 = time.perf_counter()
    case = mod.BUILDERS[framework](size)
    out: dict[str, Any] = {"build_s": time.perf_counter() - t0, "note": case.note}
    t0 = time.perf_counter()
    first = case.step()
    out["first_call_s"] = time.perf_counter() - t0
    second = case.step()
    if workload in ("mlp", "cnn"):
        # Fresh weights: the first step's loss is the initial one, the second's
        # is after exactly one update; run.py compares both across frameworks.
        out["check"] = {"loss0": float(first), "loss1": float(second)}
    elif hasattr(mod, "check") and framework != "copy":
        out["check"] = mod.check(size, second)
    return case, out


def task_time(workload: str, framework: str, size: str, repeat: int) -> dict:
    from common import time_per_call

    case, out = _start(workload, framework, size)
    out.update(time_per_call(case.step, repeat))
    for name, fn in case.extra.items():
        fn()
        out[name] = time_per_call(fn, repeat)
    case.close()
    return out


def task_serve(workload: str, framework: str, size: str, sample_s: float,
               warmup_s: float) -> None:
    """Interleaved timing for run.py: set up, then time one sample per request.

    Prints the setup result (as ``time`` does, plus ``number``: calls per sample
    of at least ``sample_s`` for each timed callable, ``step`` and the case's
    extras), then answers each stdin line ``sample NAME`` with ``{"s": seconds
    per call}``: untimed calls for ``warmup_s`` first (after the other
    frameworks' turns this framework's threads must wake, its caches fill and
    the others' spinning threads go to sleep), then ``number`` calls timed
    together. ``quit`` or the end of input ends it.
    """
    from common import calls_per_sample, sample

    case, out = _start(workload, framework, size)
    fns = {"step": case.step, **case.extra}
    out["number"] = {name: calls_per_sample(fn, sample_s) for name, fn in fns.items()}
    print(MARKER + json.dumps(out), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        fn = fns[cmd[1]]
        end = time.perf_counter() + warmup_s
        fn()
        while time.perf_counter() < end:
            fn()
        print(MARKER + json.dumps({"s": sample(fn, out["number"][cmd[1]])}), flush=True)
    case.close()


def task_first_run(workload: str, framework: str, size: str) -> dict:
    _import_framework(framework)
    import_s = time.perf_counter() - T_START
    mod = importlib.import_module(workload)
    t0 = time.perf_counter()
    case = mod.BUILDERS[framework](size)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    loss = case.step()
    t1 = time.perf_counter()
    # graphflow's CPU backend builds its kernels on a plan's second run (JIT_WARMUP), so
    # the compile cost shows here, not in the first step: both are reported.
    case.step()
    t2 = time.perf_counter()
    return {"import_s": import_s, "build_s": build_s, "first_step_s": t1 - t0,
            "total_s": t1 - T_START, "second_step_s": t2 - t1, "two_steps_s": t2 - T_START,
            "loss0": float(loss), "gf_cache": _cache_stats()}


def task_memory(workload: str, framework: str, size: str, steps: int) -> dict:
    """RSS around the steps; each peak is restarted where it begins (see common.reset_peak_rss).

    ``first_peak`` includes the first step's compilation (graphflow-cpu, JAX),
    ``step_peak`` the steady state of the next ``steps`` steps; both are
    compared with ``base``, the RSS after imports and graph build.
    """
    from common import current_rss_mib, peak_rss_mib, reset_peak_rss

    _import_framework(framework)
    mod = importlib.import_module(workload)
    after_import = current_rss_mib()
    case = mod.BUILDERS[framework](size)
    build_peak = peak_rss_mib()
    base = current_rss_mib()
    resettable = reset_peak_rss()
    case.step()
    first_peak = peak_rss_mib()
    reset_peak_rss()
    for _ in range(steps):
        case.step()
    step_peak = peak_rss_mib()
    return {"after_import_mib": after_import, "build_peak_mib": build_peak, "base_mib": base,
            "first_peak_mib": first_peak, "step_peak_mib": step_peak,
            "peak_mib": max(build_peak, first_peak, step_peak),
            "step_delta_mib": step_peak - base, "first_delta_mib": first_peak - base,
            "end_mib": current_rss_mib(), "peak_resettable": resettable, "steps": steps}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="One benchmark measurement (see module doc).")
    ap.add_argument("task", choices=["time", "serve", "first-run", "memory"])
    ap.add_argument("workload", choices=WORKLOADS)
    ap.add_argument("framework")
    ap.add_argument("--size", choices=["full", "quick"], default="full")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--sample-s", type=float, default=0.1, help="serve: seconds per sample")
    ap.add_argument("--warmup-s", type=float, default=0.1,
                    help="serve: untimed seconds before each sample")
    args = ap.parse_args(argv)
    if args.task == "serve":
        task_serve(args.workload, args.framework, args.size, args.sample_s, args.warmup_s)
        return 0
    if args.task == "time":
        res = task_time(args.workload, args.framework, args.size, args.repeat)
    elif args.task == "first-run":
        res = task_first_run(args.workload, args.framework, args.size)
    else:
        res = task_memory(args.workload, args.framework, args.size, args.steps)
    print(MARKER + json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
