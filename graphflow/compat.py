"""``gf.compat.v1``: the whole graphflow API, for code written as ``tf.compat.v1.X``."""

import graphflow as v1  # noqa: F401
