"""Graph core: names, scopes, control dependencies, collections, shapes, dtypes."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import graphflow as gf
from graphflow.framework.tensor_shape import broadcast_shapes


# --- names -------------------------------------------------------------------------
def test_default_names_follow_tf1():
    a = gf.constant(1.0)
    b = gf.constant(2.0)
    assert a.op.name == "Const" and b.op.name == "Const_1"
    assert a.name == "Const:0"
    assert (a + b).op.name == "add"
    assert (a + b).op.name == "add_1"
    # Uniquifying ignores case, as in TF1: "Add" is taken by "add".
    assert gf.add(a, b).op.name == "Add_2"
    assert gf.matmul([[1.0]], [[2.0]]).op.name == "MatMul"
    assert (a * b).op.type == "Mul"
    assert (-a).op.name == "Neg"


def test_name_uniquifying_is_case_insensitive_like_tf1():
    gf.constant(1, name="foo")
    assert gf.constant(1, name="Foo").op.name == "Foo_1"


def test_name_scopes_nest_reset_and_reenter():
    with gf.name_scope("outer"):
        with gf.name_scope("inner") as scope:
            assert scope == "outer/inner/"
            assert gf.constant(1).op.name == "outer/inner/Const"
        with gf.name_scope(None):
            assert gf.constant(1).op.name == "Const"
        with gf.name_scope("outer/inner/"):
            assert gf.constant(1).op.name == "outer/inner/Const_1"
    with gf.name_scope("outer") as scope:
        assert scope == "outer_1/"


def test_name_scope_default_name_and_binary_constant_names():
    x = gf.placeholder(gf.float32, name="x")
    y = x + 1
    g = gf.get_default_graph()
    assert g.get_operation_by_name("add/y").type == "Const"
    assert y.op.inputs[1].op.name == "add/y"
    with gf.name_scope(None, "default") as scope:
        assert scope == "default/"


def test_invalid_names_are_rejected():
    with pytest.raises(ValueError, match="not a valid"):
        gf.constant(1, name="bad name!")
    with pytest.raises(ValueError):
        with gf.name_scope("bad scope!"):
            pass


def test_lookup_by_name():
    x = gf.placeholder(gf.float32, name="x")
    g = gf.get_default_graph()
    assert g.get_tensor_by_name("x:0") is x
    assert g.get_operation_by_name("x") is x.op
    with pytest.raises(KeyError):
        g.get_operation_by_name("nope")
    with pytest.raises(KeyError):
        g.get_tensor_by_name("x:1")
    with pytest.raises(ValueError, match="Tensor names"):
        g.get_tensor_by_name("x")


# --- graphs ------------------------------------------------------------------------------
def test_as_default_and_reset():
    g = gf.Graph()
    with g.as_default():
        c = gf.constant(1.0)
        assert gf.get_default_graph() is g
        with pytest.raises(AssertionError):
            gf.reset_default_graph()
    assert c.graph is g
    assert gf.get_default_graph() is not g
    old = gf.get_default_graph()
    gf.reset_default_graph()
    assert gf.get_default_graph() is not old


def test_default_graph_is_per_thread():
    g = gf.Graph()
    seen = []
    with g.as_default():
        t = threading.Thread(target=lambda: seen.append(gf.get_default_graph()))
        t.start()
        t.join()
    assert seen[0] is not g


def test_ops_from_two_graphs_do_not_mix():
    g1, g2 = gf.Graph(), gf.Graph()
    with g1.as_default():
        a = gf.constant(1.0)
    with g2.as_default():
        b = gf.constant(1.0)
        with pytest.raises(ValueError, match="different graph"):
            gf.add(b, a)


def test_version_changes_when_graph_changes_and_finalize():
    g = gf.get_default_graph()
    v0 = g.version
    x = gf.constant(1.0)
    assert g.version > v0
    v1 = g.version
    x.set_shape([])
    assert g.version > v1
    g.finalize()
    assert g.finalized
    with pytest.raises(RuntimeError, match="finalized"):
        gf.constant(2.0)


def test_control_dependencies_nest_and_clear():
    a = gf.constant(1.0, name="a")
    b = gf.constant(2.0, name="b")
    with gf.control_dependencies([a]):
        c = gf.identity(b)
        with gf.control_dependencies([b.op]):
            d = gf.identity(a)
            with gf.control_dependencies(None):
                e = gf.identity(a)
    assert c.op.control_inputs == [a.op]
    # A control input that is already a data input is dropped, as in TF1.
    assert set(d.op.control_inputs) == {b.op}
    assert e.op.control_inputs == []


def test_collections():
    g = gf.get_default_graph()
    v = gf.Variable(1.0, name="v")
    w = gf.Variable(2.0, name="scope/w", trainable=False)
    assert gf.global_variables() == [v, w]
    assert gf.trainable_variables() == [v]
    assert g.get_collection(gf.GraphKeys.GLOBAL_VARIABLES, scope="scope") == [w]
    gf.add_to_collection("mine", 1)
    gf.add_to_collections(["mine", "other"], 2)
    assert gf.get_collection("mine") == [1, 2]
    ref = gf.get_collection_ref("mine")
    ref.append(3)
    assert g.get_collection("mine") == [1, 2, 3]
    assert "other" in g.get_all_collection_keys()
    g.clear_collection("other")
    assert g.get_collection("other") == []


# --- tensors -----------------------------------------------------------------------------
def test_tensor_properties_and_protocols():
    x = gf.placeholder(gf.float32, [2, None], name="x")
    assert x.dtype == gf.float32 and x.dtype == "float32" and x.dtype == np.float32
    assert x.shape.as_list() == [2, None]
    assert x.get_shape()[0].value == 2
    assert x.consumers() == []
    y = x * 2
    assert x.consumers() == [y.op]
    with pytest.raises(TypeError, match="bool"):
        bool(x)
    with pytest.raises(TypeError):
        np.asarray(x)
    assert len(list(x)) == 2
    assert {x: 1}[x] == 1
    x.set_shape([2, 3])
    assert x.shape.as_list() == [2, 3]
    with pytest.raises(ValueError):
        x.set_shape([3, 3])


def test_build_errors_name_op_shapes_and_source_line():
    a = gf.placeholder(gf.float32, [2, 3])
    b = gf.placeholder(gf.float32, [4, 5])
    with pytest.raises(gf.errors.InvalidArgumentError) as info:
        gf.matmul(a, b)
    err = info.value
    assert isinstance(err, ValueError)
    text = str(err)
    assert "MatMul" in text and "(2, 3)" in text and "(4, 5)" in text
    assert "test_graph.py" in text and "gf.matmul(a, b)" in text
    with pytest.raises(TypeError) as info:
        a + gf.constant(1)
    assert isinstance(info.value, gf.errors.OpError)
    assert "int32" in str(info.value) and "float32" in str(info.value)
    with pytest.raises(ValueError, match="broadcast"):
        a + gf.placeholder(gf.float32, [3, 2])


# --- shapes and dtypes -----------------------------------------------------------------------
def test_tensor_shape_api():
    s = gf.TensorShape([None, 3])
    assert s.ndims == 2 and s.rank == 2
    assert s.as_list() == [None, 3]
    assert not s.is_fully_defined() and s.num_elements() is None
    assert s.is_compatible_with([5, 3]) and not s.is_compatible_with([5, 4])
    assert s.merge_with([5, None]).as_list() == [5, 3]
    with pytest.raises(ValueError):
        s.merge_with([5, 4])
    assert gf.TensorShape([2, 3]).num_elements() == 6
    unknown = gf.TensorShape(None)
    assert unknown.ndims is None and unknown.is_compatible_with([1, 2, 3])
    with pytest.raises(ValueError):
        unknown.as_list()
    assert str(s) == "(?, 3)"
    assert s.concatenate([4]).as_list() == [None, 3, 4]
    assert s[1:].as_list() == [3]
    assert int(s[1]) == 3 and s[0].value is None
    assert gf.TensorShape([]).num_elements() == 1
    assert gf.Dimension(3) == 3 and (gf.Dimension(None) == 3) is None


def test_broadcast_shapes_rules():
    S = gf.TensorShape
    assert broadcast_shapes(S([2, 1]), S([3])).as_list() == [2, 3]
    assert broadcast_shapes(S([None, 3]), S([1])).as_list() == [None, 3]
    assert broadcast_shapes(S([None]), S([4])).as_list() == [4]
    assert broadcast_shapes(S([None]), S([1])).as_list() == [None]
    assert broadcast_shapes(S([2]), S([3])) is None
    assert broadcast_shapes(S(None), S([3])).ndims is None


def test_dtypes():
    assert gf.as_dtype(np.float64) is gf.float64
    assert gf.as_dtype("float") is gf.float32
    assert gf.as_dtype(float) is gf.float32 and gf.as_dtype(int) is gf.int32
    assert gf.float32.is_floating and gf.int64.is_integer and gf.bool.is_bool
    assert gf.int32.max == 2**31 - 1
    with pytest.raises(TypeError):
        gf.as_dtype("complex128")
