"""Kept for old commands: the ew benchmark now lives in run.py (``--only ew``).

    .venv/bin/python tools/bench/ew_bench.py [run.py options]

is ``run.py --only ew`` with graphflow's two backends and NumPy (and the
copy floor); pass ``--frameworks`` to add TF, JAX or PyTensor.
"""

from __future__ import annotations

import sys

import run

if __name__ == "__main__":
    defaults = ["--only", "ew", "--frameworks", "graphflow-cpu,graphflow-ref,numpy"]
    sys.exit(run.main(defaults + sys.argv[1:]))
