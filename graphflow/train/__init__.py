"""``gf.train``: optimizers, the global step and learning-rate schedules (TF1's ``tf.train``).

``optimizer.minimize(loss)`` adds gradient and update ops to the graph and returns
the train op; run it in a Session. Update ops are single registered ops
(``ApplyAdam`` ...) that write the variable and its slots.
"""

from graphflow.io import (
    CheckpointReader,
    Saver,
    checkpoint_exists,
    export_meta_graph,
    get_checkpoint_state,
    import_meta_graph,
    latest_checkpoint,
    list_variables,
    load_checkpoint,
    load_variable,
    remove_checkpoint,
    update_checkpoint_state,
    write_graph,
)
from graphflow.train.adagrad import AdagradOptimizer
from graphflow.train.adam import AdamOptimizer
from graphflow.train.gradient_descent import GradientDescentOptimizer
from graphflow.train.learning_rate_decay import (
    cosine_decay,
    exponential_decay,
    inverse_time_decay,
    natural_exp_decay,
    piecewise_constant,
    polynomial_decay,
)
from graphflow.train.momentum import MomentumOptimizer
from graphflow.train.optimizer import Optimizer
from graphflow.train.rmsprop import RMSPropOptimizer
from graphflow.train.training_util import (
    assert_global_step,
    create_global_step,
    get_global_step,
    get_or_create_global_step,
    global_step,
)

NewCheckpointReader = CheckpointReader

__all__ = [
    "CheckpointReader",
    "NewCheckpointReader",
    "Saver",
    "checkpoint_exists",
    "export_meta_graph",
    "get_checkpoint_state",
    "import_meta_graph",
    "latest_checkpoint",
    "list_variables",
    "load_checkpoint",
    "load_variable",
    "remove_checkpoint",
    "update_checkpoint_state",
    "write_graph",
    "AdagradOptimizer",
    "AdamOptimizer",
    "GradientDescentOptimizer",
    "MomentumOptimizer",
    "Optimizer",
    "RMSPropOptimizer",
    "assert_global_step",
    "cosine_decay",
    "create_global_step",
    "exponential_decay",
    "get_global_step",
    "get_or_create_global_step",
    "global_step",
    "inverse_time_decay",
    "natural_exp_decay",
    "piecewise_constant",
    "polynomial_decay",
]
