"""Op registrations and the public op functions.

Importing this package registers every op and installs Tensor's operators.
"""

from graphflow.ops import (  # noqa: F401  (imported for their registrations)
    array_ops,
    broadcast_ops,
    constant_op,
    control_flow_ops,
    indexing_ops,
    init_ops,
    linalg_ops,
    math_ops,
    nn_ops,
    random_ops,
    segment_ops,
    state_ops,
    training_ops,
)
from graphflow.ops import operators as _operators

_operators.install()
