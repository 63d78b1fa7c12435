"""Op registrations and the public op functions.

Importing this package registers the core ops and installs Tensor's operators. The
neural-network ops (``nn_ops``, behind ``gf.nn``) and the optimizer update ops
(``training_ops``, behind ``gf.train``) are imported on first use instead: by importing
them or their public namespace, or by looking one of their ops up by type string
(``framework.op_def.lookup``, which graph files use), so every op stays findable.
"""

from graphflow.framework import op_def as _op_def
from graphflow.ops import (  # noqa: F401  (imported for their registrations)
    array_ops,
    broadcast_ops,
    constant_op,
    control_flow_ops,
    indexing_ops,
    init_ops,
    linalg_ops,
    math_ops,
    random_ops,
    segment_ops,
    state_ops,
)
from graphflow.ops import operators as _operators

_operators.install()

_DEFERRED = ("nn_ops", "training_ops")
for _name in _DEFERRED:
    _op_def.defer_module(f"{__name__}.{_name}")


def __getattr__(name: str):
    """Imports a deferred op module on first access as ``graphflow.ops.<name>`` (PEP 562)."""
    if name not in _DEFERRED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return importlib.import_module(f"{__name__}.{name}")


def __dir__() -> list[str]:
    """The package's names, including the op modules not imported yet."""
    return sorted(set(globals()) | set(_DEFERRED))
