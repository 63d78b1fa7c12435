"""``gf.nn``: TF1's ``tf.nn`` namespace."""

from graphflow.ops.math_ops import sigmoid, tanh  # noqa: F401
from graphflow.ops.nn_ops import *  # noqa: F401,F403
