"""Finding and importing the competing frameworks, configured the same way everywhere.

Imports are lazy: a workload imports a framework only inside its builder, so
a missing framework costs nothing and is reported as "not installed".
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from typing import Any

from common import MODULES


def installed(framework: str) -> bool:
    """Whether the framework's module can be found (without importing it)."""
    return importlib.util.find_spec(MODULES[framework]) is not None


def version(module: str) -> str | None:
    """The installed distribution version of ``module`` (None when not installed)."""
    dist = {"tensorflow": "tensorflow-cpu"}.get(module, module)
    for name in (dist, module):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def import_tf() -> Any:
    """``tensorflow.compat.v1``; TF's C++ log chatter is silenced (stderr only, not threads)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf.compat.v1


def import_jax() -> Any:
    """``jax`` on the CPU (a GPU would not be a like-for-like comparison here)."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    return jax


# PyTensor's compile mode: PyTensor's own default (NUMBA in PyTensor 3) unless
# $BENCH_PYTENSOR_MODE names another (e.g. CVM, the C backend). NUMBA runs the steps faster
# than CVM here, but its cold compile is slow (90 s for the mlp step, 8 min for the cnn's
# on this 2-core machine); PyTensor caches it on disk, so only a first ever run pays.
PYTENSOR_MODE_ENV = "BENCH_PYTENSOR_MODE"


def import_pytensor() -> Any:
    """``pytensor`` with floatX = float32 (Python-float constants stay float32) and our mode."""
    import pytensor

    pytensor.config.floatX = "float32"
    mode = os.environ.get(PYTENSOR_MODE_ENV, "default")
    if mode != "default":
        pytensor.config.mode = mode
    return pytensor


def pytensor_mode() -> str:
    """PyTensor's default compile mode and linker (C, Numba, ...), for the header."""
    pytensor = import_pytensor()
    from pytensor.compile.mode import get_default_mode

    mode = get_default_mode()
    return f"{pytensor.config.mode} ({type(mode.linker).__name__})"


def graphflow_session(graph: Any, backend: str) -> Any:
    """A graphflow Session on ``graph``; ``backend`` is "cpu" or "reference"."""
    import graphflow as gf

    return gf.Session(graph=graph, backend=backend)


GF_BACKEND = {"graphflow-cpu": "cpu", "graphflow-ref": "reference"}
