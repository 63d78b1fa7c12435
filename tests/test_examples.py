"""Every example runs to completion as a user would run it (training ones in a short mode)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_"))

# Arguments that make a training example finish in a few seconds on the reference backend,
# and what its output must report.
SHORT_ARGS = {
    "cnn": ["--steps", "5"],
    "linear_regression": ["--steps", "20"],
    "logistic_regression": ["--steps", "20"],
    "mlp": ["--steps", "20"],
}
REPORTS = {"linear_regression": "test MSE"}

# Full runs must reach the accuracy their docstrings promise (the bar: 97%).
FULL_ACCURACY = {"mlp": 0.97, "cnn": 0.97}


def _run(name: str, args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # Tiny matrices: BLAS threads only contend with the test workers.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args],
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("name", NAMES)
def test_example_runs(name):
    proc = _run(name, SHORT_ARGS.get(name, []))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert REPORTS.get(name, "accuracy") in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FULL_ACCURACY))
def test_example_reaches_its_accuracy(name):
    proc = _run(name, [])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    accuracy = float(re.search(r"test accuracy: ([0-9.]+)", proc.stdout).group(1))
    assert accuracy >= FULL_ACCURACY[name], proc.stdout
