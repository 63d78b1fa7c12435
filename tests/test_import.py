"""`import graphflow` loads only the graph core and the core ops; the rest loads on first use.

Each check runs in a fresh interpreter, because the test session has long since imported
everything. No timings here (DESIGN principle 7): what is asserted is *what* gets imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np

import graphflow as gf
from graphflow.framework import op_def

# Modules `import graphflow` must not load: optional namespaces, the compiler and runtime
# (loaded with gf.Session), deferred op modules, and third-party packages.
LAZY_MODULES = [
    "graphflow.autodiff", "graphflow.compiler", "graphflow.graph_util", "graphflow.io",
    "graphflow.keras", "graphflow.layers", "graphflow.losses", "graphflow.math", "graphflow.nn",
    "graphflow.ops.clip_ops", "graphflow.ops.nn_ops", "graphflow.ops.training_ops",
    "graphflow.runtime.session", "graphflow.test", "graphflow.train", "graphflow.viz",
    "graphflow.kernels", "numba", "llvmlite", "graphviz",
]


def run_python(code: str) -> dict:
    """Runs ``code`` in a fresh interpreter; returns the JSON object it prints last."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_import_graphflow_leaves_optional_modules_unloaded():
    out = run_python(f"""
        import json, sys
        import graphflow as gf
        print(json.dumps([m for m in {LAZY_MODULES!r} if m in sys.modules]))
    """)
    assert out == []


def test_lazy_names_load_on_first_access():
    out = run_python("""
        import json, sys
        import graphflow as gf
        before = "graphflow.keras" in sys.modules
        dense = gf.keras.layers.Dense(3)
        print(json.dumps({
            "before": before,
            "after": "graphflow.keras" in sys.modules,
            "dense": type(dense).__module__ + "." + type(dense).__name__,
            "adam": gf.train.AdamOptimizer.__name__,
            "relu": gf.nn.relu.__module__,
            "session": gf.Session.__module__,
            "cached": gf.Session is gf.__dict__["Session"],
            "import_graph_def": gf.import_graph_def is gf.io.import_graph_def,
            "math": gf.math.softplus is gf.nn.softplus,
        }))
    """)
    assert out == {
        "before": False, "after": True, "dense": "graphflow.keras.layers.Dense",
        "adam": "AdamOptimizer", "relu": "graphflow.ops.nn_ops",
        "session": "graphflow.runtime.session", "cached": True, "import_graph_def": True,
        "math": True,
    }


def test_every_import_form_reaches_lazy_modules():
    out = run_python("""
        import json
        import graphflow as gf
        from graphflow import keras, viz
        import graphflow.layers
        import graphflow.ops
        ns = {}
        exec("from graphflow import *", ns)
        print(json.dumps({
            "from": [keras is gf.keras, viz is gf.viz],
            "import": graphflow.layers is gf.layers,
            "ops_attr": graphflow.ops.nn_ops.softmax is gf.nn.softmax,
            "dir": sorted({"keras", "viz", "Session", "nn", "train"} - set(dir(gf))),
            "ops_dir": "training_ops" in dir(graphflow.ops),
            "star": sorted({"keras", "Session", "gradients", "name_scope"} - set(ns)),
        }))
    """)
    assert out == {"from": [True, True], "import": True, "ops_attr": True, "dir": [],
                   "ops_dir": True, "star": []}


def test_missing_names_still_raise_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no_such_name"):
        gf.no_such_name  # noqa: B018
    with pytest.raises(AttributeError, match="no_such_module"):
        gf.ops.no_such_module  # noqa: B018


def test_graph_file_with_deferred_ops_loads_in_fresh_process(tmp_path):
    # Softmax is an nn_ops op and ApplyGradientDescent a training_ops one: the reading
    # process has imported neither module when the file names them.
    x = gf.placeholder(gf.float32, [None, 3], name="x")
    w = gf.Variable(np.ones((3, 3), np.float32), name="w")
    y = gf.nn.softmax(gf.matmul(x, w), name="y")
    gf.train.GradientDescentOptimizer(0.1).minimize(gf.reduce_sum(y), name="step")
    path = gf.train.write_graph(gf.get_default_graph(), str(tmp_path / "g.gfpb"))
    out = run_python(f"""
        import json, sys
        import graphflow as gf
        gd = gf.io.read_graph({path!r})
        loaded_early = "graphflow.ops.nn_ops" in sys.modules
        gf.import_graph_def(gd, name="")
        g = gf.get_default_graph()
        feed = {{"x:0": [[1.0, 2.0, 3.0]]}}
        with gf.Session(backend="reference") as sess:
            sess.run("w/Assign")
            y = sess.run("y:0", feed_dict=feed)
            sess.run("step", feed_dict=feed)
        print(json.dumps({{
            "loaded_early": loaded_early,
            "types": sorted({{op.type for op in g.get_operations()}} &
                            {{"Softmax", "ApplyGradientDescent"}}),
            "y": y.tolist(),
        }}))
    """)
    assert out["loaded_early"] is False
    assert out["types"] == ["ApplyGradientDescent", "Softmax"]
    np.testing.assert_allclose(out["y"], [[1 / 3] * 3], rtol=1e-6)


def test_registry_lookup_imports_deferred_op_modules():
    out = run_python("""
        import json, sys
        import graphflow as gf
        from graphflow.framework import op_def
        before = "graphflow.ops.training_ops" in sys.modules
        conv = op_def.lookup("Conv2D").type
        print(json.dumps({
            "before": before,
            "conv": conv,
            "loaded": ["graphflow.ops.nn_ops" in sys.modules,
                       "graphflow.ops.training_ops" in sys.modules],
            "adam": "ApplyAdam" in op_def.registered_types(),
        }))
    """)
    assert out == {"before": False, "conv": "Conv2D", "loaded": [True, True], "adam": True}
    assert "SparseApplyMomentum" in op_def.registered_types()


def test_ipython_still_gets_the_graph_display_on_import():
    out = run_python("""
        import json, sys, types
        sys.modules["IPython"] = types.ModuleType("IPython")  # no shell: nothing to register
        import graphflow
        print(json.dumps("graphflow.viz" in sys.modules))
    """)
    assert out is True
