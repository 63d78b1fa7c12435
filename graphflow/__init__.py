"""graphflow: a define-then-run deep-learning framework with TensorFlow 1.x's API.

``import graphflow as tf`` runs a TF1 graph-mode program; build a graph of
placeholders, variables and ops, then evaluate it with a :class:`Session`.
"""

import sys as _sys  # noqa: I001  (order kept: the star imports below may shadow each other)

from graphflow import compat, initializers
from graphflow import ops as _ops  # noqa: F401  (registers ops, installs operators)
from graphflow.framework import errors
from graphflow.framework.dtypes import (
    DType,
    as_dtype,
    double,
    float16,
    float32,
    float64,
    half,
    int8,
    int16,
    int32,
    int64,
    uint8,
)
from graphflow.framework.dtypes import (
    bool_ as bool,  # noqa: A004 - TF1 name
)
from graphflow.framework.graph import (
    Graph,
    GraphKeys,
    Operation,
    Tensor,
    convert_to_tensor,
    get_default_graph,
    register_tensor_conversion_function,
    reset_default_graph,
)
from graphflow.framework.tensor_shape import Dimension, TensorShape, dimension_value
from graphflow.ops.array_ops import *  # noqa: F401,F403
from graphflow.ops.array_ops import (
    concat,
    expand_dims,
    fill,
    identity,
    ones,
    ones_like,
    rank,
    reshape,
    shape,
    size,
    squeeze,
    stack,
    stop_gradient,
    transpose,
    zeros,
    zeros_like,
)
from graphflow.ops.broadcast_ops import broadcast_to
from graphflow.ops.constant_op import constant, placeholder, placeholder_with_default
from graphflow.ops.control_flow_ops import group, no_op, tuple  # noqa: A004
from graphflow.ops.indexing_ops import *  # noqa: F401,F403
from graphflow.ops.init_ops import *  # noqa: F401,F403
from graphflow.ops.linalg_ops import qr
from graphflow.ops.variable_scope import *  # noqa: F401,F403
from graphflow.ops.math_ops import (
    abs,  # noqa: A004
    add,
    add_n,
    argmax,
    argmin,
    cast,
    ceil,
    clip_by_value,
    cos,
    cumprod,
    cumsum,
    div,
    div_no_nan,
    divide,
    equal,
    erf,
    exp,
    expm1,
    floor,
    floor_div,
    floordiv,
    floormod,
    greater,
    greater_equal,
    is_finite,
    is_inf,
    is_nan,
    less,
    less_equal,
    log,
    log1p,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    matmul,
    maximum,
    minimum,
    mod,
    multiply,
    negative,
    not_equal,
    pow,  # noqa: A004
    realdiv,
    reciprocal,
    reduce_all,
    reduce_any,
    reduce_logsumexp,
    reduce_max,
    reduce_mean,
    reduce_min,
    reduce_prod,
    reduce_sum,
    round,  # noqa: A004
    rsqrt,
    scalar_mul,
    sigmoid,
    sign,
    sin,
    sqrt,
    square,
    squared_difference,
    subtract,
    tan,
    tanh,
    tensordot,
    to_float,
    to_int32,
    to_int64,
    truediv,
    truncatediv,
    where,
    where_v2,
)
from graphflow.ops.segment_ops import *  # noqa: F401,F403
from graphflow.ops.random_ops import (
    get_seed,
    random_normal,
    random_uniform,
    set_random_seed,
    truncated_normal,
)
from graphflow.ops.state_ops import (
    Variable,
    assign,
    assign_add,
    assign_sub,
    global_variables,
    global_variables_initializer,
    is_variable_initialized,
    local_variables,
    local_variables_initializer,
    model_variables,
    trainable_variables,
    variables_initializer,
)
from graphflow.runtime.config import (
    ConfigProto,
    GPUOptions,
    GraphOptions,
    OptimizerOptions,
    RunMetadata,
    RunOptions,
)

sub = subtract
mul = multiply
neg = negative
initialize_all_variables = global_variables_initializer
all_variables = global_variables
newaxis = None

__version__ = "0.1.0"

# Names loaded on first access (PEP 562), so that `import graphflow` pays only for the
# graph core and the ops. Everything here is reachable exactly as before: `gf.keras`,
# `from graphflow import keras`, `import graphflow.keras`, `gf.Session`, dir(gf), `import *`.
# name -> (module, attribute); attribute None means the name is the submodule itself.
# Op lookup by type string never depends on this table (see graphflow/ops/__init__.py).
_LAZY = {  # `tuple` here is gf.tuple, so no annotation
    name: ("graphflow." + name, None)
    for name in ("autodiff", "compiler", "graph_util", "io", "keras", "layers", "losses",
                 "math", "nn", "test", "train", "viz")
}
_LAZY.update({
    name: (module, name)
    for module, names in {
        "graphflow.autodiff": ("gradients",),
        "graphflow.framework.indexed_slices": (
            "IndexedSlices", "IndexedSlicesValue", "convert_to_tensor_or_indexed_slices"),
        "graphflow.io": (
            "AttrValue", "GraphDef", "MetaGraphDef", "NodeDef", "TensorProto",
            "import_graph_def", "make_ndarray", "make_tensor_proto"),
        "graphflow.ops.clip_ops": ("clip_by_global_norm", "clip_by_norm", "global_norm"),
        "graphflow.runtime.session": ("InteractiveSession", "Session", "get_default_session"),
    }.items()
    for name in names
})


def __getattr__(name: str):
    """Imports a lazily loaded submodule or name on first access (PEP 562)."""
    entry = _LAZY.get(name)
    if entry is None:
        raise AttributeError(f"module 'graphflow' has no attribute {name!r}")
    import importlib

    module_name, attr = entry
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    """The module's names, including those not loaded yet."""
    return sorted(set(globals()) | set(_LAZY))


def name_scope(name: str | None, default_name: str | None = None, values=None):
    """Opens a name scope in the default graph (TF1's ``tf.name_scope``).

    Args:
      name: the scope name; None uses ``default_name``; "" resets to the root.
      default_name: used when ``name`` is None.
      values: tensors whose graph is used.

    Returns:
      A context manager yielding the scope string (ending in ``/``).
    """
    from graphflow.ops.building import graph_of

    g = graph_of(values or [])
    if name is None and default_name is not None:
        name = default_name
    return _scope_in(g, name)


def _scope_in(g: Graph, name: str | None):
    import contextlib

    @contextlib.contextmanager
    def ctx():
        with g.as_default(), g.name_scope(name) as scope:
            yield scope

    return ctx()


def control_dependencies(control_inputs):
    """Ops created inside run after ``control_inputs`` (TF1's ``tf.control_dependencies``)."""
    return get_default_graph().control_dependencies(control_inputs)


def get_collection(key: str, scope: str | None = None) -> list:
    """Items of collection ``key`` in the default graph, optionally filtered by scope."""
    return get_default_graph().get_collection(key, scope)


def get_collection_ref(key: str) -> list:
    """The mutable list of collection ``key`` in the default graph."""
    return get_default_graph().get_collection_ref(key)


def add_to_collection(name: str, value) -> None:
    """Adds ``value`` to collection ``name`` of the default graph."""
    get_default_graph().add_to_collection(name, value)


def add_to_collections(names, value) -> None:
    """Adds ``value`` to each collection in ``names`` of the default graph."""
    get_default_graph().add_to_collections(names, value)


def device(device_name):
    """Accepted for TF1 compatibility; placement is the Session's choice."""
    return get_default_graph().device(device_name)


# `from graphflow import *` exports what it did before the lazy names existed; it loads them.
__all__ = sorted({n for n in globals() if not n.startswith("_")} | set(_LAZY))

# Inside IPython, importing graphflow makes a Graph display as an image (see graphflow.viz);
# outside it, viz and its imports stay unloaded.
if "IPython" in _sys.modules:
    from graphflow import viz
