"""The graph compiler: prune -> simplify passes -> fuse -> schedule + memory plan = Plan.

``Session.run`` compiles each (fetches, feeds, graph version) it sees into a
:class:`Plan` before anything executes; the user's graph is never changed.
The pipeline is one explicit list (:func:`default_passes`):

* ``prune``: copy only what the fetches need into the compiler's IR (always runs);
* ``constant_folding``: evaluate pure ops on constants with their reference functions;
* ``cse``: merge identical pure computations;
* ``simplify``: IEEE-exact algebra (``x*1``, ``x+(-0.0)``, ``-(-x)``, transposes, ...);
* ``stabilize``: ``log(softmax)`` -> ``log_softmax``, ``log(1+x)`` -> ``log1p``, ...;
* ``remap``: ops reading one large input become one op (a filter gradient and its
  bias's gradient);
* ``fusion``: group ops into kernels by op kind (elementwise < ... < opaque);
* ``schedule``: order the groups into the Plan's steps (always runs);
* ``memory_plan``: share buffers between values whose lifetimes do not overlap.

Switch passes off per session::

    gf.Session(optimizer_options={"constant_folding": False})
    gf.Session(config=gf.ConfigProto(graph_options=gf.GraphOptions(
        optimizer_options=gf.OptimizerOptions(do_common_subexpression_elimination=False))))

and see what they do::

    print(gf.compiler.explain(loss, feed_dict={x: None}))
"""

from graphflow.compiler.driver import Explanation, build_plan, default_passes, explain
from graphflow.compiler.fusion import Group
from graphflow.compiler.ir import Node, Program
from graphflow.compiler.lower import execution_order, lower
from graphflow.compiler.options import PASS_NAMES, CompilerOptions
from graphflow.compiler.pass_manager import CompileReport, Pass, PassManager, PassRecord
from graphflow.compiler.plan import Buffer, KernelStep, Plan, RegionStep, Step

__all__ = [
    "PASS_NAMES", "Buffer", "CompileReport", "CompilerOptions", "Explanation", "Group",
    "KernelStep", "Node", "Pass", "PassManager", "PassRecord", "Plan", "Program", "RegionStep",
    "Step", "build_plan", "default_passes", "execution_order", "explain", "lower",
]
