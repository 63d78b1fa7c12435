"""Where a graphflow training step spends its time: per-kernel medians of traced steps.

    python tools/bench/trace.py cnn              # the bench's cnn SGD step, full size
    python tools/bench/trace.py mlp --steps 50 --size quick
    python tools/bench/trace.py cnn --chrome /tmp/cnn.json   # one step for chrome://tracing

Runs the workload's TF1 program on ``gf.Session()`` (the CPU backend), warms it up,
times untraced steps, then traces ``--steps`` more with
``gf.RunOptions(trace_level=FULL_TRACE)`` and prints each plan step's median time,
slowest first, with its ops. Steps one kernel runs together (a pair side by
side, an optimizer's updates) show as one row, on the first step, with all
their ops. A diagnosis tool: ``run.py`` is where the comparisons live.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _program(workload: str, size: str) -> tuple:
    """(graph, fetches, feeds, init) of a workload's TF1 program in graphflow."""
    import graphflow as gf

    if workload == "mlp":
        import mlp

        g, x, y, train, loss, init = mlp._tf_like_model(gf, size)
        xs, ys = mlp.batch(size)
        return g, [train, loss], {x: xs, y: ys}, init
    import cnn

    g = gf.Graph()
    with g.as_default():
        train, loss, init, feeds = cnn._tf_like_model(gf, size)
    return g, [train, loss], feeds, init


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", choices=["mlp", "cnn"])
    ap.add_argument("--size", choices=["full", "quick"], default="full")
    ap.add_argument("--steps", type=int, default=20, help="traced (and untraced) steps")
    ap.add_argument("--top", type=int, default=25, help="rows to print")
    ap.add_argument("--chrome", help="write the last traced step as Chrome trace JSON here")
    args = ap.parse_args(argv)

    import graphflow as gf

    g, fetches, feeds, init = _program(args.workload, args.size)
    with gf.Session(graph=g) as sess:
        sess.run(init)
        for _ in range(5):  # the first runs evaluate with NumPy, then compile
            sess.run(fetches, feeds)
        times = []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            sess.run(fetches, feeds)
            times.append(time.perf_counter() - t0)
        per: dict[tuple, list[float]] = {}
        md = None
        for _ in range(args.steps):
            md = gf.RunMetadata()
            sess.run(fetches, feeds,
                     options=gf.RunOptions(trace_level=gf.RunOptions.FULL_TRACE), run_metadata=md)
            for s in md.step_stats:
                per.setdefault((s.index, s.name, ",".join(s.op_types)), []).append(s.duration)
    rows = sorted(((statistics.median(v), k) for k, v in per.items()), reverse=True)
    total = sum(t for t, _ in rows)
    print(f"{args.workload} ({args.size}): step {statistics.median(times) * 1e3:.2f} ms median "
          f"untraced, {total * 1e3:.2f} ms in {len(rows)} traced kernels")
    print(f"{'us':>8}  {'share':>6}  step  kernel (ops)")
    for t, (index, name, ops) in rows[:args.top]:
        print(f"{t * 1e6:8.0f}  {t / total:6.1%}  {index:4d}  {name} ({ops[:60]})")
    if args.chrome and md is not None:
        md.write_chrome_trace(args.chrome)
        print(f"chrome trace: {args.chrome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
