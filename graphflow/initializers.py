"""``gf.initializers``: TF1's ``tf.initializers`` namespace."""

from graphflow.ops.init_ops import (
    Constant as constant,
)
from graphflow.ops.init_ops import (
    GlorotNormal as glorot_normal,
)
from graphflow.ops.init_ops import (
    GlorotUniform as glorot_uniform,
)
from graphflow.ops.init_ops import (
    Initializer,
    he_normal,
    he_uniform,
    lecun_normal,
    lecun_uniform,
)
from graphflow.ops.init_ops import (
    Ones as ones,
)
from graphflow.ops.init_ops import (
    Orthogonal as orthogonal,
)
from graphflow.ops.init_ops import (
    RandomNormal as random_normal,
)
from graphflow.ops.init_ops import (
    RandomUniform as random_uniform,
)
from graphflow.ops.init_ops import (
    TruncatedNormal as truncated_normal,
)
from graphflow.ops.init_ops import (
    VarianceScaling as variance_scaling,
)
from graphflow.ops.init_ops import (
    Zeros as zeros,
)


def global_variables():
    """An op initializing all global variables (TF1's ``tf.initializers.global_variables``)."""
    from graphflow.ops.state_ops import global_variables_initializer

    return global_variables_initializer()


__all__ = ["Initializer", "constant", "glorot_normal", "glorot_uniform", "he_normal",
           "he_uniform", "lecun_normal", "lecun_uniform", "ones", "orthogonal", "random_normal",
           "random_uniform", "truncated_normal", "variance_scaling", "zeros",
           "global_variables"]
