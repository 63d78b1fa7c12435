"""Shared pieces of the benchmark suite: the Case protocol, timing, RSS and weights.

Every workload module (``ew``, ``mlp``, ``cnn``, ``overhead``) exposes
``BUILDERS``: a dict from framework name to a function ``build(size) -> Case``.
A :class:`Case` owns whatever the framework needs (a Session, a jitted
function, ...) and offers ``step()``, one unit of the measured work.
"""

from __future__ import annotations

import math
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Column order of the table; graphflow-cpu is the baseline of every ratio.
FRAMEWORKS = ["graphflow-cpu", "graphflow-ref", "numpy", "tensorflow", "jax", "pytensor"]
BASELINE = "graphflow-cpu"

# The importable module behind each framework name (for "not installed").
MODULES = {"graphflow-cpu": "graphflow", "graphflow-ref": "graphflow", "numpy": "numpy",
           "tensorflow": "tensorflow", "jax": "jax", "pytensor": "pytensor",
           "copy": "numpy"}

SIZES = ("full", "quick")


@dataclass
class Case:
    """One framework's implementation of one workload, ready to run.

    ``step`` does one unit of work and returns its result already on the host
    (a NumPy array or a Python float), so asynchronous frameworks are timed to
    completion. ``extra`` holds further named callables timed the same way
    (e.g. the overhead workload's ``make_callable`` variant). ``note`` says how
    this framework's version differs from the others, if it does.
    """

    step: Callable[[], Any]
    extra: dict[str, Callable[[], Any]] = field(default_factory=dict)
    note: str = ""
    close: Callable[[], None] = lambda: None


Builder = Callable[[str], Case]


def builders(graphflow: Callable[[str, str], Case], numpy: Builder, tensorflow: Builder,
             jax: Builder, pytensor: Builder, **extra: Builder) -> dict[str, Builder]:
    """A workload's ``BUILDERS``: framework name -> ``builder(size) -> Case``.

    Args:
      graphflow: ``builder(size, framework)`` for both graphflow columns
        (``graphflow-cpu`` and ``graphflow-ref``).
      numpy, tensorflow, jax, pytensor: one builder each.
      **extra: further columns (ew's ``copy``).
    """
    out: dict[str, Builder] = {
        fw: (lambda size, fw=fw: graphflow(size, fw)) for fw in ("graphflow-cpu", "graphflow-ref")}
    out.update(numpy=numpy, tensorflow=tensorflow, jax=jax, pytensor=pytensor, **extra)
    return out


def calls_per_sample(fn: Callable[[], Any], min_sample_s: float = 0.02) -> int:
    """How many calls of ``fn`` make one sample of at least ``min_sample_s`` (one call timed)."""
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    return max(1, math.ceil(min_sample_s / one)) if one > 0 else 1000


def sample(fn: Callable[[], Any], number: int) -> float:
    """Seconds per call of ``fn``, averaged over ``number`` calls in a row."""
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def summarize(samples: list[float], number: int) -> dict:
    """The JSON entry of a list of samples (seconds per call)."""
    return {"median_s": statistics.median(samples), "min_s": min(samples),
            "samples": len(samples), "number": number}


def time_per_call(fn: Callable[[], Any], repeat: int, min_sample_s: float = 0.02) -> dict:
    """Median seconds per call of ``fn`` over ``repeat`` samples (after the caller's warm-up).

    Calls shorter than ``min_sample_s`` are batched ``number`` at a time per
    sample so the clock's resolution and the loop do not dominate.
    """
    number = calls_per_sample(fn, min_sample_s)
    return summarize([sample(fn, number) for _ in range(repeat)], number)


def _status_mib(field: str) -> float | None:
    """A ``Vm*`` field of /proc/self/status in MiB (None off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def peak_rss_mib() -> float:
    """This process's peak resident set size since start or :func:`reset_peak_rss`, MiB.

    VmHWM rather than ``ru_maxrss``: Linux carries ``ru_maxrss`` over from the
    parent through fork and exec, so a worker would report run.py's size.
    """
    hwm = _status_mib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    """This process's resident set size now, MiB (0 where unavailable)."""
    return _status_mib("VmRSS") or 0.0


def reset_peak_rss() -> bool:
    """Restart the peak at the current RSS (Linux's clear_refs "5"); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def glorot(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Glorot-uniform float32 weights (fan in/out as TF computes them for dense and conv)."""
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def adam_numpy(params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
               m: dict[str, np.ndarray], v: dict[str, np.ndarray], t: int,
               lr: float = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
    """TF1's Adam update in place (``t`` is the 1-based step number)."""
    lr_t = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
    for k, g in grads.items():
        m[k] *= b1
        m[k] += (1 - b1) * g
        v[k] *= b2
        v[k] += (1 - b2) * (g * g)
        params[k] -= lr_t * m[k] / (np.sqrt(v[k]) + eps)


def softmax_xent_numpy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean sparse softmax cross-entropy and its gradient with respect to ``logits``."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(len(labels))
    loss = float(np.mean(np.log(s[:, 0]) - z[rows, labels]))
    d = e / s
    d[rows, labels] -= 1
    d /= len(labels)
    return loss, d
