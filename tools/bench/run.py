#!/usr/bin/env python3
"""graphflow's benchmark suite: graphflow against NumPy, TensorFlow, JAX and PyTensor.

Measures in one run, each (workload, framework) in its own worker process
(see worker.py), graphflow's compiled backend (``Session(backend="cpu")``)
and its NumPy reference backend side by side with NumPy (always) and with
TensorFlow (``tf.compat.v1`` Graph + Session), JAX (``jax.jit``) and PyTensor
(``pytensor.function`` in its default mode, or --pytensor-mode) where they are installed;
a missing one is reported as "not installed". Workloads (README.md has more):

  ew         tanh(x*0.5+y)*sigmoid(x) + x*x - y/(1+abs(x)), float32[10M], and a
             plain copy of the same bytes (the memory floor)
  mlp        one Adam step, 784-512-512-10 ReLU MLP, batch 256
  cnn        one SGD step, conv5x5x32-relu-pool-conv5x5x64-relu-pool-dense10, batch 64
  overhead   per-call cost of running x*2+1 on a fed float32 scalar
  first-run  a fresh process from start to its first mlp step, and to its
             second: cold (empty kernel cache) and warm (the same cache again)
  memory     RSS of the mlp and cnn steps: baseline after build, peak during steps

Times are medians of --repeat samples after two warm-up calls, the frameworks
of a row alive at once and sampled in turns; ratios are to graphflow-cpu in the
same row. Results are checked against NumPy (ew output,
the mlp/cnn losses before and after one step from identical weights). Thread
settings are the machine's defaults and are printed in the header.

Run from the repository root::

    .venv/bin/python tools/bench/run.py --quick                 # smoke test, seconds
    /work/bench-venv/bin/python tools/bench/run.py               # everything, full size
    python tools/bench/run.py --only ew,mlp --frameworks graphflow-cpu,jax --repeat 11
    python tools/bench/run.py --json /tmp/bench.json

The JSON file (default /tmp/graphflow-bench-<time>.json) holds every
number, the header and the checks.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BASELINE, FRAMEWORKS, summarize
from frameworks import PYTENSOR_MODE_ENV, installed, version
from report import fmt_time, table
from worker import MARKER

HERE = Path(__file__).resolve().parent
WORKLOADS = ["ew", "mlp", "cnn", "overhead", "first-run", "memory"]
THREAD_ENV = ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
              "NUMBA_NUM_THREADS", "XLA_FLAGS", "GRAPHFLOW_CACHE_DIR", "PYTENSOR_FLAGS"]
# Loss agreement with NumPy: float32 sums in different orders differ by ~1e-6.
LOSS_ATOL = 1e-4


def spawn(args: list[str], timeout: float, env: dict[str, str] | None = None) -> dict:
    """Run worker.py with ``args``; its JSON result plus ``wall_s``, or a status entry."""
    cmd = [sys.executable, str(HERE / "worker.py"), *args]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "error": f"no result within {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            return {"status": "ok", "wall_s": wall, **json.loads(line[len(MARKER):])}
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return {"status": "error", "error": (err[-1] if err else f"exit {proc.returncode}")[:300]}


def available(fw: str) -> dict | None:
    """None when ``fw`` can run, else the entry that says why not."""
    return None if installed(fw) else {"status": "not installed"}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def describe(entry: dict) -> str:
    if entry.get("status") != "ok":
        return f"{entry.get('status')}: {entry.get('error', '')}"
    if "median_s" in entry:
        return f"{fmt_time(entry['median_s'])} (first call {fmt_time(entry['first_call_s'])})"
    return ""


class Server:
    """A ``worker.py serve`` process: one framework's case, timed one sample per request."""

    def __init__(self, workload: str, fw: str, args: argparse.Namespace) -> None:
        self.timeout = args.timeout
        self.err = tempfile.TemporaryFile(mode="w+")  # a pipe could fill up and block it
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "worker.py"), "serve", workload, fw,
             "--size", args.size, "--sample-s", str(args.sample_s),
             "--warmup-s", str(args.warmup_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True)

    def reply(self) -> dict:
        """The worker's next JSON line, or a status entry if it died or timed out."""
        deadline = time.monotonic() + self.timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.close()
                    return {"status": "timeout", "error": f"no result within {self.timeout:.0f} s"}
                line = self.proc.stdout.readline()
                if not line:
                    self.proc.wait()
                    self.err.seek(0)
                    err = [ln for ln in self.err.read().splitlines() if ln.strip()]
                    msg = err[-1] if err else f"exit {self.proc.returncode}"
                    self.close()
                    return {"status": "error", "error": msg[:300]}
                if line.startswith(MARKER):
                    return {"status": "ok", **json.loads(line[len(MARKER):])}

    def sample(self, name: str) -> dict:
        self.proc.stdin.write(f"sample {name}\n")
        self.proc.stdin.flush()
        return self.reply()

    def close(self) -> None:
        if self.err.closed:
            return
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.err.close()


def measure_times(workload: str, frameworks: list[str], args: argparse.Namespace) -> dict:
    """Every framework's case alive at once, timed in turns: round r times one sample of
    each (the order rotating by one per round), so a slow spell of the shared machine
    falls on all of them rather than on whichever ran then. Before each sample the
    worker calls for ``--warmup-s`` untimed: its threads wake from their idle wait, its
    caches refill, and the previous framework's spinning threads (OpenBLAS's spin for
    ~0.1 s after a call) go to sleep before the clock starts."""
    out: dict[str, dict] = {}
    live: dict[str, Server] = {}
    names = frameworks + (["copy"] if workload == "ew" else [])
    for fw in names:
        entry = available(fw)
        if entry is None:
            t0 = time.perf_counter()
            server = Server(workload, fw, args)
            entry = server.reply()
            entry["setup_wall_s"] = time.perf_counter() - t0
            if entry["status"] == "ok":
                live[fw] = server
        out[fw] = entry
        if entry["status"] != "ok":
            log(f"[{workload}] {fw}: {describe(entry)}")
    samples: dict[tuple[str, str], list[float]] = {
        (fw, name): [] for fw in live for name in out[fw]["number"]}
    order = list(live)
    for r in range(args.repeat if order else 0):
        for fw in order[r % len(order):] + order[:r % len(order)]:
            if fw not in live:
                continue  # died this round
            for name in out[fw]["number"]:
                got = live[fw].sample(name)
                if got["status"] != "ok":
                    out[fw] = got
                    live.pop(fw).close()
                    break
                samples[fw, name].append(got["s"])
    for fw, server in live.items():
        server.close()
        e = out[fw]
        number = e.pop("number")
        for name, n in number.items():
            stats = summarize(samples[fw, name], n)
            stats["samples_s"] = samples[fw, name]
            base = samples.get((BASELINE, name))
            if base and fw != BASELINE:
                # Round by round: both samples taken within a second of each other.
                ratios = sorted(a / b for a, b in zip(samples[fw, name], base))
                stats["paired_ratio"] = statistics.median(ratios)
                stats["paired_ratio_quartiles"] = [ratios[len(ratios) // 4],
                                                   ratios[(3 * len(ratios)) // 4]]
            if name == "step":
                e.update(stats)
            else:
                e[name] = stats
        log(f"[{workload}] {fw}: {describe(e)}")
    return out


def check_agreement(workload: str, cells: dict) -> None:
    """Mark each cell's ``agree``: ew/overhead by its own check, mlp/cnn against NumPy's losses."""
    numpy = cells.get("numpy", {})
    ref = numpy.get("check") if numpy.get("status") == "ok" else None
    for e in cells.values():
        if e.get("status") != "ok" or "check" not in e:
            continue
        c = e["check"]
        if "ok" in c:
            e["agree"] = dict(c)
        elif ref is not None:
            d0, d1 = abs(c["loss0"] - ref["loss0"]), abs(c["loss1"] - ref["loss1"])
            e["agree"] = {"ok": d0 <= LOSS_ATOL and d1 <= LOSS_ATOL,
                          "loss0_diff": d0, "loss1_diff": d1}


def measure_first_run(frameworks: list[str], args: argparse.Namespace) -> dict:
    """Cold then warm: the same fresh cache dirs (graphflow, JAX, PyTensor) twice.

    TensorFlow and NumPy have no compilation cache, so their cold and warm
    differ only by the OS's file cache.
    """
    out = {}
    precompile_graphflow()
    for fw in frameworks:
        if (entry := available(fw)) is not None:
            out[fw] = entry
            continue
        with tempfile.TemporaryDirectory(prefix="gf-bench-cache-") as d:
            env = {"GRAPHFLOW_CACHE_DIR": os.path.join(d, "graphflow"),
                   "JAX_COMPILATION_CACHE_DIR": os.path.join(d, "jax"),
                   # Cache every compiled JAX program, however small or quick.
                   "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                   "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
                   "PYTENSOR_FLAGS": ",".join(
                       filter(None, [os.environ.get("PYTENSOR_FLAGS"),
                                     f"base_compiledir={os.path.join(d, 'pytensor')}"]))}
            entry = {"status": "ok"}
            for phase in ("cold", "warm"):
                entry[phase] = spawn(["first-run", "mlp", fw, "--size", args.size],
                                     args.timeout, env)
                e = entry[phase]
                log(f"[first-run {phase}] {fw}: " + (
                    f"start to first step {fmt_time(e['total_s'])} (the step "
                    f"{fmt_time(e['first_step_s'])}), "
                    f"start to second step {fmt_time(e['two_steps_s'])}"
                    if e["status"] == "ok" else describe(e)))
        out[fw] = entry
    return out


def precompile_graphflow() -> None:
    """Writes graphflow's bytecode (.pyc), as ``pip install`` does for the other frameworks.

    An editable install under PYTHONDONTWRITEBYTECODE=1 would otherwise compile
    every graphflow module from source in each fresh process (about 0.8 s here),
    which first-run would count against graphflow alone.
    """
    code = ("import compileall, graphflow, graphflow.kernels\n"
            "for m in (graphflow, graphflow.kernels):\n"
            "    for p in m.__path__:\n"
            "        compileall.compile_dir(p, quiet=1)\n")
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True)


def measure_memory(frameworks: list[str], args: argparse.Namespace) -> dict:
    out: dict[str, dict] = {}
    for w in ("mlp", "cnn"):
        out[w] = {}
        for fw in frameworks:
            entry = available(fw) or spawn(["memory", w, fw, "--size", args.size,
                                            "--steps", str(args.steps)], args.timeout)
            out[w][fw] = entry
            log(f"[memory {w}] {fw}: " + (
                f"base {entry['base_mib']:.0f} MiB, first step +{entry['first_delta_mib']:.0f}, "
                f"later steps +{entry['step_delta_mib']:.0f}, peak {entry['peak_mib']:.0f} MiB"
                if entry["status"] == "ok" else describe(entry)))
    return out


def header(args: argparse.Namespace) -> dict:
    """Machine, thread settings and versions: what a number needs to be reproducible."""
    info: dict = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
                  "python": sys.version.split()[0], "executable": sys.executable,
                  "platform": platform.platform(), "cpu_count": os.cpu_count(),
                  "size": args.size, "repeat": args.repeat,
                  # Other work on the machine skews every number: say how busy it was.
                  "loadavg_start": os.getloadavg()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(ln.split(":", 1)[1].strip() for ln in f
                               if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info["env"] = {k: os.environ.get(k, "unset") for k in THREAD_ENV}
    try:
        import numba

        info["numba_num_threads"] = numba.config.NUMBA_NUM_THREADS
        info["numba"] = numba.__version__
    except ImportError:
        info["numba"] = None
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - only a label; its format varies between NumPy versions
        info["numpy_blas"] = "unknown"
    info["versions"] = {m: version(m) for m in ("numpy", "graphflow", "tensorflow", "jax",
                                                "jaxlib", "pytensor")}
    if installed("pytensor"):
        try:
            from frameworks import pytensor_mode

            info["pytensor_mode"] = pytensor_mode()
        except Exception as e:  # noqa: BLE001 - a broken install still gets its header line
            info["pytensor_mode"] = f"unknown ({e})"
    try:
        rev = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        info["graphflow_commit"] = rev.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        info["graphflow_commit"] = None
    return info


def print_header(info: dict) -> None:
    v = info["versions"]
    print(f"graphflow bench  {info['date']}  size={info['size']}  repeat={info['repeat']}  "
          f"commit={info.get('graphflow_commit')}")
    print(f"machine: {info.get('cpu', '?')}, os.cpu_count()={info['cpu_count']}, "
          f"{info['platform']}, python {info['python']}; load average at start "
          f"{info['loadavg_start'][0]:.2f}, at end {info['loadavg_end'][0]:.2f}")
    print(f"threads: numba NUMBA_NUM_THREADS={info.get('numba_num_threads')}, "
          + ", ".join(f"{k}={val}" for k, val in info["env"].items()))
    print("versions: " + ", ".join(f"{k} {val or 'not installed'}" for k, val in v.items())
          + f"; numba {info.get('numba')}; numpy BLAS {info.get('numpy_blas')}"
          + (f"; pytensor mode {info['pytensor_mode']}" if "pytensor_mode" in info else ""))


def disagreements(results: dict) -> list[str]:
    out = []
    for w in ("ew", "mlp", "cnn", "overhead"):
        for fw, e in results.get(w, {}).items():
            if not e.get("agree", {}).get("ok", True):
                out.append(f"  {w} {fw}: {json.dumps(e['agree'])}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("--only", default=",".join(WORKLOADS),
                    help=f"comma-separated workloads (default: all of {','.join(WORKLOADS)})")
    ap.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                    help="comma-separated frameworks (default: all)")
    ap.add_argument("--repeat", type=int, default=None, help="timed samples (default 7; quick 3)")
    ap.add_argument("--steps", type=int, default=None,
                    help="steps for the memory measurement (default 10; quick 2)")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    ap.add_argument("--sample-s", type=float, default=0.1,
                    help="seconds of calls per timed sample (default 0.1)")
    ap.add_argument("--warmup-s", type=float, default=0.1,
                    help="seconds of untimed calls before each sample (default 0.1; see "
                         "measure_times)")
    ap.add_argument("--timeout", type=float, default=1800,
                    help="seconds before one worker process is given up (default 1800)")
    ap.add_argument("--pytensor-mode", default="default",
                    help="PyTensor compile mode: 'default' (PyTensor's own: NUMBA in 3.x), "
                         "NUMBA, CVM (the C backend), ...")
    ap.add_argument("--json", type=Path, default=None,
                    help="where to write the results (default /tmp/graphflow-bench-<time>.json)")
    args = ap.parse_args(argv)
    args.size = "quick" if args.quick else "full"
    args.repeat = args.repeat or (3 if args.quick else 7)
    args.steps = args.steps or (2 if args.quick else 10)
    only = [w.strip() for w in args.only.split(",") if w.strip()]
    fws = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    for name, given, known in (("workload", only, WORKLOADS), ("framework", fws, FRAMEWORKS)):
        if bad := [x for x in given if x not in known]:
            ap.error(f"unknown {name} {', '.join(bad)}; choose from {', '.join(known)}")
    fws = [f for f in FRAMEWORKS if f in fws]  # table order

    os.environ[PYTENSOR_MODE_ENV] = args.pytensor_mode  # workers inherit it
    info = header(args)
    results: dict = {}
    for w in only:
        if w in ("ew", "mlp", "cnn", "overhead"):
            results[w] = measure_times(w, fws, args)
            check_agreement(w, results[w])
        elif w == "first-run":
            results[w] = measure_first_run(fws, args)
        else:
            results[w] = measure_memory(fws, args)

    info["loadavg_end"] = os.getloadavg()
    print_header(info)
    print(f"cells: median time and its ratio to {BASELINE} in the same row "
          "(<1x faster, >1x slower than graphflow-cpu); ! = disagrees with NumPy")
    print("\n".join(table(results, fws)))
    if "ew" in results and results["ew"].get("copy", {}).get("status") == "ok":
        print(f"copy floor: x and y copied into a preallocated buffer, "
              f"{fmt_time(results['ew']['copy']['median_s'])}")
    if "memory" in results:
        print("RSS: peak = the process's peak RSS (imports, build, steps); (+step) = peak RSS "
              "during the steps after the first minus RSS after build; JSON has the rest")
    bad = disagreements(results)
    print("agreement with NumPy: " + ("all checked results agree" if not bad else "DISAGREE"))
    for line in bad:
        print(line)
    errors = [f"  {w} {fw}: {e.get('status')}: {e.get('error')}"
              for w, cells in results.items()
              for fw, e in _flat_cells(cells)
              if e.get("status") not in ("ok", "not installed")]
    if errors:
        print("failed measurements:")
        print("\n".join(errors))

    path = args.json or Path(tempfile.gettempdir()) / (
        f"graphflow-bench-{datetime.datetime.now():%Y%m%d-%H%M%S}.json")
    path.write_text(json.dumps({"header": info, "results": results}, indent=1))
    print(f"results: {path}")
    return 0


def _flat_cells(cells: dict) -> list[tuple[str, dict]]:
    """(framework, entry) pairs of a workload's results, looking inside memory/first-run."""
    out = []
    for key, e in cells.items():
        if not isinstance(e, dict):
            continue
        if key in ("mlp", "cnn"):  # memory: one more level
            out += [(f"{key} {fw}", x) for fw, x in e.items()]
        elif "cold" in e:
            out += [(f"{key} {ph}", e[ph]) for ph in ("cold", "warm") if ph in e]
        else:
            out.append((key, e))
    return out


if __name__ == "__main__":
    sys.exit(main())
