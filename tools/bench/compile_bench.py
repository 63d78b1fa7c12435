#!/usr/bin/env python3
"""How long the compiler takes on a 10,000-node graph, pass by pass.

The graph is a stack of blocks, each like a small network layer and its
update: a matmul, bias add, activation, a reduction, a few elementwise
chains with constants (so folding, CSE and simplification have work), a
log-softmax pattern for the stabiliser, and a variable update.

Usage::

    .venv/bin/python tools/bench/compile_bench.py [--nodes 10000] [--repeat 5]

Prints the median total (wall and CPU time) over the repeats and each pass's
median wall time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import graphflow as gf


def build(target_nodes: int) -> tuple[gf.Graph, list, list, list]:
    """A graph of about ``target_nodes`` ops; returns it with fetches, targets and feeds."""
    g = gf.Graph()
    with g.as_default():
        x = gf.placeholder(gf.float32, [32, 64], name="x")
        h = x
        losses = []
        updates = []
        i = 0
        while len(g.get_operations()) < target_nodes:
            with gf.name_scope(f"block{i}"):
                w = gf.Variable(np.full((64, 64), 0.01, np.float32), name="w")
                b = gf.Variable(np.zeros(64, np.float32), name="b")
                z = gf.nn.relu(gf.matmul(h, w) + b)
                scale = gf.constant(2.0) * gf.constant(0.5)        # folds to 1.0
                z = z * scale + gf.constant(-0.0)                  # simplifies away
                t = gf.tanh(z) * gf.sigmoid(z) - gf.square(z)      # elementwise chain
                t2 = gf.tanh(z) * gf.sigmoid(z)                    # CSE with the above
                s = gf.log(gf.nn.softmax(t + t2))                  # -> log_softmax
                losses.append(gf.reduce_mean(gf.reduce_sum(s, axis=1)))
                updates.append(gf.assign_sub(w, 0.001 * gf.matmul(h, z, transpose_a=True)))
                h = gf.transpose(gf.transpose(z))                  # transposes cancel
            i += 1
        loss = gf.add_n(losses)
        train = gf.group(*updates)
    return g, [loss], [train], [x]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    g, fetches, targets, feeds = build(args.nodes)
    n_ops = len(g.get_operations())
    totals = []
    cpu = []
    per_pass: dict[str, list[float]] = {}
    plan = None
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        plan = gf.compiler.build_plan(fetches, targets, feeds, graph=g)
        totals.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        for rec in plan.report.records:
            per_pass.setdefault(rec.name, []).append(rec.seconds)
    # CPU time too: on a shared machine wall time includes waiting for a core.
    print(f"graph: {n_ops} ops; compile (median of {args.repeat}): "
          f"{statistics.median(totals) * 1e3:.1f} ms wall, "
          f"{statistics.median(cpu) * 1e3:.1f} ms CPU")
    for rec in plan.report.records:
        print(f"  {rec.name:<18}{statistics.median(per_pass[rec.name]) * 1e3:8.1f} ms   "
              f"{rec.nodes_before:>6} -> {rec.nodes_after:<6}")
    print(f"  plan: {plan.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
