"""Each rewrite fires where it is exact (or, for stabilisation, intended) and not elsewhere.

Tests compare a Before graph, after one pass, with an Expected graph lowered with
no passes, structurally (TVM Relax pass-test style): same node types, attributes,
constants and wiring; names and ids are ignored.
"""

from __future__ import annotations

import numpy as np
import pytest

import graphflow as gf
from graphflow import compiler


def after(fetches, feeds=(), passes=("simplify",), **limits):
    """The IR after the last of ``passes``, with only those passes on."""
    opts = {"default": False, **{p: True for p in passes}, **limits}
    return compiler.explain(fetches, list(feeds), options=opts).program(passes[-1])


def lowered(fetches, feeds=()):
    """The IR with every optional pass off."""
    return compiler.explain(fetches, list(feeds), options={"default": False}).program("prune")


def build(fn):
    """Runs ``fn()`` in a fresh graph; returns its (fetches, feeds)."""
    with gf.Graph().as_default():
        return fn()


def assert_rewrites_to(before, expected, passes=("simplify",), **limits):
    b_fetch, b_feeds = build(before)
    e_fetch, e_feeds = build(expected)
    got = after(b_fetch, b_feeds, passes, **limits)
    want = lowered(e_fetch, e_feeds)
    assert got.structural_key() == want.structural_key(), f"got:\n{got}\n\nwanted:\n{want}"


def assert_unchanged(before, passes=("simplify",), **limits):
    fetch, feeds = build(before)
    got = after(fetch, feeds, passes, **limits)
    want = lowered(fetch, feeds)
    assert got.structural_key() == want.structural_key(), f"changed:\n{got}\n\nwas:\n{want}"


def ph(shape=(None, 3), dtype=gf.float32, name="x"):
    return gf.placeholder(dtype, list(shape) if shape is not None else None, name=name)


# --- pass manager and report ----------------------------------------------------------------
def test_report_lists_every_pass_with_times_and_node_counts():
    x = ph()
    y = gf.exp(x * 1.0)
    e = compiler.explain(y, [x])
    names = [r.name for r in e.report.records]
    assert names == list(compiler.PASS_NAMES)
    assert all(r.enabled and r.seconds >= 0 for r in e.report.records)
    simplify = e.report["simplify"]
    assert simplify.nodes_before > simplify.nodes_after
    assert simplify.details["fired"] == {"mul_one": 1}
    text = str(e)
    assert "simplify" in text and "memory_plan" in text and "steps" in text
    assert [name for name, _ in e.stages][0] == "lower"


def test_disabled_passes_are_reported_and_do_nothing():
    x = ph()
    y = gf.exp(x * 1.0)
    e = compiler.explain(y, [x], options={"simplify": False})
    rec = e.report["simplify"]
    assert not rec.enabled and rec.nodes_before == rec.nodes_after
    assert e.program().count("Mul") == 1


def test_unknown_option_names_are_errors():
    with pytest.raises(ValueError, match="Unknown optimizer option"):
        compiler.CompilerOptions.make(None, {"constant_fold": False})
    with pytest.raises(ValueError, match="cannot be switched off"):
        compiler.CompilerOptions.make(None, {"prune": False})
    with pytest.raises(TypeError):
        compiler.CompilerOptions.make(None, {"max_group_size": 0})


def test_user_graph_is_never_changed():
    x = ph()
    y = gf.log(gf.nn.softmax(gf.transpose(gf.transpose(x * 1.0))))
    g = gf.get_default_graph()
    ops = [(op.name, op.type, [t.name for t in op.inputs]) for op in g.get_operations()]
    version = g.version
    with gf.Session() as s:
        s.run(y, {x: np.ones((2, 3))})
    compiler.explain(y, [x])
    assert g.version == version
    assert [(op.name, op.type, [t.name for t in op.inputs]) for op in g.get_operations()] == ops


# --- prune ------------------------------------------------------------------------------------
def test_prune_keeps_only_what_fetches_need_and_stops_at_feeds():
    x = ph()
    y = gf.exp(x)
    z = gf.tanh(y)
    gf.sin(x)  # not needed
    e = compiler.explain(z, [y])
    assert e.program("prune").types() == ["Tanh"]
    assert e.report["prune"].nodes_before == len(gf.get_default_graph().get_operations())


def test_prune_keeps_control_dependencies():
    v = gf.Variable(1.0)
    up = v.assign_add(1.0)
    with gf.control_dependencies([up]):
        r = v.read_value()
    prog = after(r, (), ("cse",))
    assert "AssignAdd" in prog.types()


# --- constant folding ------------------------------------------------------------------------
def test_folding_fires_on_constant_subgraphs():
    def before():
        x = ph()
        c = gf.exp(gf.constant([1.0, 2.0, 3.0])) * 2.0
        return [x + c], [x]

    def expected():
        x = ph()
        c = gf.constant(np.exp(np.array([1, 2, 3], np.float32)) * np.float32(2))
        return [x + c], [x]

    assert_rewrites_to(before, expected, ("constant_folding",))


def test_folding_uses_the_reference_functions_bit_for_bit():
    c = gf.constant(np.linspace(-3, 3, 7, dtype=np.float32))
    y = gf.nn.softplus(gf.sin(c) * 3.0)
    prog = after(y, (), ("constant_folding",))
    assert prog.types() == ["Const"]
    with gf.Session(backend="interpreter") as s:
        want = s.run(y)
    np.testing.assert_array_equal(prog.nodes[0].attrs["value"], want)


def test_folding_materialises_known_shapes():
    x = ph((4, 3))
    y = gf.cast(gf.shape(x), gf.float32) * gf.reduce_sum(x)
    prog = after(y, [x], ("constant_folding",))
    assert prog.count("Shape") == 0 and prog.count("Cast") == 0


def test_folding_never_touches_random_stateful_sources_or_large_results():
    r = gf.random_uniform([3], seed=1)
    assert after(r + 1.0, (), ("constant_folding",)).count("RandomUniform") == 1
    v = gf.Variable([1.0, 2.0])
    assert after(v * 2.0, (), ("constant_folding",)).count("Mul") == 1
    p = ph((2,), name="p")  # unfed: evaluating it must still raise
    assert after(p + 1.0, (), ("constant_folding",)).count("Placeholder") == 1
    big = gf.fill([100, 100], 1.0)  # 40 kB
    assert after(big, (), ("constant_folding",), fold_max_bytes=1 << 12).count("Fill") == 1
    assert after(big, (), ("constant_folding",)).count("Fill") == 0
    huge = gf.fill([1000, 1000], 1.0)  # 4 MB: over the default cap of 1 MiB
    assert after(huge, (), ("constant_folding",)).count("Fill") == 1


def test_folding_leaves_failing_ops_to_the_run():
    y = gf.floordiv(gf.constant(1), gf.constant(0))
    assert after(y, (), ("constant_folding",)).count("FloorDiv") == 1
    with gf.Session() as s:
        with pytest.raises(gf.errors.InvalidArgumentError, match="FloorDiv") as info:
            s.run(y)
    assert "test_compiler_passes.py" in str(info.value)


def test_folded_shapes_still_run_their_producer():
    # As Grappler: the folded shape keeps a control input on the tensor's producer, so
    # errors the producer must raise are still raised.
    x = ph((2, 3))
    v = gf.Variable(gf.zeros([2, 2]))
    i = ph((2,), gf.int32, name="i")
    shapes = [gf.shape(x), gf.shape(v), gf.cast(gf.shape(gf.floordiv(i, i)), gf.float32) * 2.0]
    for s in shapes:
        prog = after(s, [i], ("constant_folding",))
        assert prog.count("Shape") == 0 and prog.types()[-1] == "Const"
        assert prog.nodes[-1].control_inputs
    with gf.Session() as s:
        with pytest.raises(gf.errors.InvalidArgumentError, match="must feed"):
            s.run(shapes[0])
        with pytest.raises(gf.errors.FailedPreconditionError):
            s.run(shapes[1])
        with pytest.raises(gf.errors.InvalidArgumentError, match="FloorDiv"):
            s.run(shapes[2], {i: [0, 1]})
        np.testing.assert_array_equal(s.run(shapes[2], {i: [1, 1]}), [4.0])


# --- CSE --------------------------------------------------------------------------------------
def test_cse_merges_identical_pure_computations():
    def before():
        x = ph()
        a = gf.tanh(x) * 2.0
        b = gf.tanh(x) * 2.0
        return [a + b], [x]

    def expected():
        x = ph()
        a = gf.tanh(x) * 2.0
        return [a + a], [x]

    assert_rewrites_to(before, expected, ("cse",))


def test_cse_keeps_random_ops_unfed_placeholders_and_signed_zeros_apart():
    a = gf.random_uniform([2], seed=3)
    b = gf.random_uniform([2], seed=3)
    assert after(a + b, (), ("cse",)).count("RandomUniform") == 2
    x = ph((2,), name="p1")
    y = ph((2,), name="p2")
    assert after(x + y, (), ("cse",)).count("Placeholder") == 2
    z = ph(name="z")
    pos = z * gf.constant(0.0)
    neg = z * gf.constant(-0.0)
    assert after(pos + neg, [z], ("cse",)).count("Mul") == 2


def test_cse_respects_control_dependencies():
    v = gf.Variable(1.0)
    r1 = v.read_value()
    up = v.assign_add(1.0)
    with gf.control_dependencies([up]):
        r2 = v.read_value()
    prog = after([r1, r2], (), ("cse",))
    assert prog.count("Identity") == 2
    with gf.Session() as s:
        s.run(v.initializer)
        assert s.run([r1, r2]) == [1.0, 2.0]


# --- algebraic simplification ---------------------------------------------------------------
def test_mul_by_one_and_div_by_one():
    assert_rewrites_to(lambda: ([gf.exp(ph() * 1.0)], []), lambda: ([gf.exp(ph())], []))
    assert_rewrites_to(lambda: ([gf.exp(1.0 * ph())], []), lambda: ([gf.exp(ph())], []))
    assert_rewrites_to(lambda: ([gf.exp(ph() / 1.0)], []), lambda: ([gf.exp(ph())], []))
    assert_rewrites_to(
        lambda: ([gf.exp(ph() * gf.ones([1, 1]))], []), lambda: ([gf.exp(ph())], []))


def test_mul_by_one_that_broadcasts_is_kept():
    # x [?, 1] * ones [3] has shape [?, 3]: removing the product would change the shape.
    assert_unchanged(lambda: ([ph((None, 1)) * gf.ones([3])], []))
    assert_unchanged(lambda: ([gf.exp(ph() * 1.0001)], []))


def test_adding_negative_zero_is_removed_but_positive_zero_is_not():
    assert_rewrites_to(lambda: ([gf.exp(ph() + gf.constant(-0.0))], []),
                       lambda: ([gf.exp(ph())], []))
    assert_rewrites_to(lambda: ([gf.exp(ph() - 0.0)], []), lambda: ([gf.exp(ph())], []))
    # -0.0 + 0.0 is +0.0: both forms must stay.
    assert_unchanged(lambda: ([gf.exp(ph() + 0.0)], []))
    assert_unchanged(lambda: ([gf.exp(ph() - gf.constant(-0.0))], []))
    # Integers have no signed zero.
    assert_rewrites_to(lambda: ([gf.abs(ph(dtype=gf.int32) + 0)], []),
                       lambda: ([gf.abs(ph(dtype=gf.int32))], []))


def test_signed_zero_is_preserved_by_the_whole_pipeline():
    x = ph((3,))
    y = (x + 0.0) * 1.0 - 0.0
    data = np.array([-0.0, 0.0, -1.0], np.float32)
    with gf.Session() as s:
        got = s.run(y, {x: data})
    with gf.Session(backend="interpreter") as s:
        want = s.run(y, {x: data})
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    assert not np.signbit(got[0])  # -0.0 + 0.0 == +0.0


def test_add_of_negation_becomes_subtraction():
    assert_rewrites_to(lambda: ([ph(name="a") + (-ph(name="b"))], []),
                       lambda: ([ph(name="a") - ph(name="b")], []))
    assert_rewrites_to(lambda: ([ph(name="a") - (-ph(name="b"))], []),
                       lambda: ([ph(name="a") + ph(name="b")], []))


def test_double_negation():
    neg = gf.negative
    assert_rewrites_to(lambda: ([gf.exp(neg(neg(ph())))], []), lambda: ([gf.exp(ph())], []))
    assert_rewrites_to(lambda: ([gf.exp(neg(neg(neg(ph()))))], []),
                       lambda: ([gf.exp(neg(ph()))], []))


def test_transpose_of_transpose():
    shape = (2, 3, 4)
    assert_rewrites_to(lambda: ([gf.transpose(gf.transpose(ph(shape)))], []),
                       lambda: ([ph(shape)], []))
    assert_rewrites_to(
        lambda: ([gf.transpose(gf.transpose(ph(shape), [1, 0, 2]), [0, 2, 1])], []),
        lambda: ([gf.transpose(ph(shape), [1, 2, 0])], []))
    assert_rewrites_to(lambda: ([gf.exp(gf.transpose(ph(shape), [0, 1, 2]))], []),
                       lambda: ([gf.exp(ph(shape))], []))
    assert_unchanged(lambda: ([gf.transpose(ph(shape), [1, 0, 2])], []))


def test_transpose_chain_values():
    x = ph((2, 3, 4))
    y = gf.transpose(gf.transpose(x, [1, 0, 2]), [2, 0, 1])
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    with gf.Session() as s:
        np.testing.assert_array_equal(s.run(y, {x: data}),
                                      data.transpose(1, 0, 2).transpose(2, 0, 1))


def test_reshape_chains():
    assert_rewrites_to(lambda: ([gf.reshape(gf.reshape(ph((2, 6)), [3, 4]), [4, 3])], []),
                       lambda: ([gf.reshape(ph((2, 6)), [4, 3])], []))
    assert_rewrites_to(lambda: ([gf.exp(gf.reshape(ph((2, 6)), [2, 6]))], []),
                       lambda: ([gf.exp(ph((2, 6)))], []))
    # An unknown dim: the reshape may change the runtime shape, so it stays.
    assert_unchanged(lambda: ([gf.exp(gf.reshape(ph((None, 6)), [-1, 6]))], []))


def test_reshape_dropping_kept_dims_becomes_the_reduction_without_keep_dims():
    # A bias gradient's reshape(sum(g, [0], keep_dims=True), shape(b)).
    assert_rewrites_to(
        lambda: ([gf.reshape(gf.reduce_sum(ph((None, 5)), axis=0, keepdims=True), [5])], []),
        lambda: ([gf.reduce_sum(ph((None, 5)), axis=0)], []))
    assert_rewrites_to(
        lambda: ([gf.reshape(gf.reduce_max(ph((4, 1, 6)), axis=[-1, 0], keepdims=True),
                             [1])], []),
        lambda: ([gf.reduce_max(ph((4, 1, 6)), axis=[-1, 0])], []))
    assert_rewrites_to(
        lambda: ([gf.reshape(gf.reduce_mean(ph((2, 3)), keepdims=True), [])], []),
        lambda: ([gf.reduce_mean(ph((2, 3)))], []))

    def read_twice():
        r = gf.reduce_sum(ph((None, 5)), axis=0, keepdims=True)
        return [gf.reshape(r, [5]), r * 2.0], []

    assert_unchanged(read_twice)  # the kept-dims value is needed too: no second sum
    # Other target shapes: a different layout, or an unknown kept dim.
    assert_unchanged(lambda: ([gf.reshape(gf.reduce_sum(ph((4, 5)), axis=0, keepdims=True),
                                          [5, 1])], []))
    assert_unchanged(lambda: ([gf.reshape(gf.reduce_sum(ph((4, None)), axis=0,
                                                         keepdims=True), [-1])], []))


def test_reshape_of_kept_dims_values():
    x = ph((None, 5))
    ys = [gf.reshape(gf.reduce_sum(x, axis=0, keepdims=True), [5]),
          gf.reshape(gf.reduce_max(x, axis=[1, 0], keepdims=True), [])]
    data = np.random.default_rng(3).standard_normal((7, 5)).astype(np.float32)
    data[2, 1] = np.nan
    with gf.Session() as s:
        got = s.run(ys, {x: data})
    np.testing.assert_allclose(got[0], data.sum(axis=0), rtol=1e-5)
    assert got[0].shape == (5,) and got[1].shape == () and np.isnan(got[1])


def test_cast_chains_only_when_the_first_cast_is_lossless():
    assert_rewrites_to(
        lambda: ([gf.cast(gf.cast(ph(dtype=gf.int32), gf.float64), gf.float32)], []),
        lambda: ([gf.cast(ph(dtype=gf.int32), gf.float32)], []))
    assert_rewrites_to(
        lambda: ([gf.cast(gf.cast(ph(dtype=gf.float32), gf.float64), gf.float32)], []),
        lambda: ([ph(dtype=gf.float32)], []))
    # float64 -> float32 rounds: the chain must stay.
    assert_unchanged(
        lambda: ([gf.cast(gf.cast(ph(dtype=gf.float64), gf.float32), gf.float64)], []))
    assert_unchanged(
        lambda: ([gf.cast(gf.cast(ph(dtype=gf.int64), gf.float64), gf.int64)], []))


def test_lossy_cast_chain_values():
    x = ph((2,), dtype=gf.float64)
    y = gf.cast(gf.cast(x, gf.float32), gf.float64)
    data = np.array([0.1, 1e300])
    with gf.Session() as s:
        got = s.run(y, {x: data})
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(got, data.astype(np.float32).astype(np.float64))


def test_identity_removal():
    assert_rewrites_to(lambda: ([gf.exp(gf.identity(gf.stop_gradient(ph())))], []),
                       lambda: ([gf.exp(ph())], []))


def test_identity_of_a_variable_is_a_read_and_stays():
    v = gf.Variable(3.0)
    r = gf.identity(v.value())
    prog = after(r, (), ("simplify",))
    assert prog.count("Identity") == 1
    # The read must happen before the update, as TF1: the loss is the old value.
    loss = v.value() * 1.0
    update = gf.assign_sub(v, 1.0)
    with gf.Session() as s:
        s.run(v.initializer)
        _, value = s.run([update, loss])
    assert value == 3.0


def test_identity_with_control_inputs_stays():
    x = ph()
    n = gf.no_op()
    with gf.control_dependencies([n]):
        y = gf.identity(x)
    assert after(gf.exp(y), [x]).count("Identity") == 1


# --- numerical stabilisation -------------------------------------------------------------
def test_log_softmax_fires():
    assert_rewrites_to(lambda: ([gf.log(gf.nn.softmax(ph()))], []),
                       lambda: ([gf.nn.log_softmax(ph())], []), ("stabilize",))


def test_log1p_fires_and_broadcasting_one_is_kept():
    assert_rewrites_to(lambda: ([gf.log(1.0 + ph())], []), lambda: ([gf.log1p(ph())], []),
                       ("stabilize",))
    assert_rewrites_to(lambda: ([gf.log(ph() + 1.0)], []), lambda: ([gf.log1p(ph())], []),
                       ("stabilize",))
    assert_unchanged(lambda: ([gf.log(ph((None, 1)) + gf.ones([3]))], []), ("stabilize",))
    assert_unchanged(lambda: ([gf.log(ph() + 2.0)], []), ("stabilize",))


def test_expm1_fires():
    assert_rewrites_to(lambda: ([gf.exp(ph()) - 1.0], []), lambda: ([gf.expm1(ph())], []),
                       ("stabilize",))
    assert_unchanged(lambda: ([1.0 - gf.exp(ph())], []), ("stabilize",))


def test_log_sigmoid_fires():
    assert_rewrites_to(lambda: ([gf.log(gf.sigmoid(ph()))], []),
                       lambda: ([-gf.nn.softplus(-ph())], []), ("stabilize",))


def _classic_xent():
    logits = ph(name="logits")
    labels = ph(name="labels")
    y = gf.nn.softmax(logits)
    return [-gf.reduce_sum(labels * gf.log(y), axis=1)], [logits, labels]


def test_softmax_cross_entropy_pattern_becomes_one_op():
    def expected():
        logits = ph(name="logits")
        labels = ph(name="labels")
        return [gf.nn.softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits)], [
            logits, labels]

    assert_rewrites_to(_classic_xent, expected, ("stabilize",))
    # The minus may sit inside, on either factor.
    for variant in (lambda lab, y: gf.reduce_sum(-lab * gf.nn.log_softmax(y), axis=1),
                    lambda lab, y: gf.reduce_sum(gf.nn.log_softmax(y) * -lab, axis=-1),
                    lambda lab, y: gf.reduce_sum(-(lab * gf.nn.log_softmax(y)), axis=1)):
        def before(variant=variant):
            logits, labels = ph(name="logits"), ph(name="labels")
            return [variant(labels, logits)], [logits, labels]

        assert_rewrites_to(before, expected, ("stabilize",))


def test_softmax_cross_entropy_without_minus_keeps_its_sign():
    logits, labels = ph(name="logits"), ph(name="labels")
    y = gf.reduce_sum(labels * gf.nn.log_softmax(logits), axis=1)
    prog = after(y, [logits, labels], ("stabilize",))
    assert prog.types() == ["SoftmaxCrossEntropyWithLogits", "Neg"]
    lv = np.array([[1.0, 2.0, 3.0]], np.float32)
    yv = np.array([[0.2, 0.3, 0.5]], np.float32)
    with gf.Session() as s:
        got = s.run(y, {logits: lv, labels: yv})
    np.testing.assert_allclose(got, np.sum(yv * (lv - np.log(np.sum(np.exp(lv)))), axis=1),
                               rtol=1e-6)


def test_softmax_cross_entropy_not_over_the_class_axis_is_kept():
    assert_unchanged(lambda: ([gf.reduce_sum(ph(name="l") * gf.nn.log_softmax(ph()), axis=0)],
                              []), ("stabilize",))
    assert_unchanged(lambda: ([gf.reduce_sum(
        ph((None, 3), name="l") * gf.nn.log_softmax(ph((None, 1))), axis=1)], []),
        ("stabilize",))


def test_stabilised_forms_give_finite_correct_results_where_naive_forms_overflow():
    x = ph((2, 3), gf.float32)
    labels = ph((2, 3), gf.float32, name="labels")
    big = np.array([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 0.0]], np.float32)
    lab = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]], np.float32)
    tiny = np.array([[1e-10, -1e-10, 1e-30], [3e-8, 0.0, -0.0]], np.float32)
    fetches = {
        "log_softmax": gf.log(gf.nn.softmax(x)),
        "xent": -gf.reduce_sum(labels * gf.log(gf.nn.softmax(x)), axis=1),
        "log_sigmoid": gf.log(gf.sigmoid(x)),
    }
    feed = {x: big, labels: lab}
    with gf.Session() as s:
        got = s.run(fetches, feed)
        small = s.run({"log1p": gf.log(1.0 + x), "expm1": gf.exp(x) - 1.0}, {x: tiny})
    with gf.Session(backend="interpreter") as s:
        naive = s.run(fetches, feed)
    assert not np.all(np.isfinite(naive["log_softmax"]))  # the naive form overflows
    b64 = big.astype(np.float64)
    lse = np.log(np.sum(np.exp(b64 - b64.max(1, keepdims=True)), 1, keepdims=True)) + \
        b64.max(1, keepdims=True)
    np.testing.assert_allclose(got["log_softmax"], b64 - lse, rtol=1e-6)
    np.testing.assert_allclose(got["xent"], -np.sum(lab * (b64 - lse), axis=1), rtol=1e-6)
    np.testing.assert_allclose(got["log_sigmoid"], -np.logaddexp(0, -b64), rtol=1e-6)
    for name in got:
        assert np.all(np.isfinite(got[name])), name
    t64 = tiny.astype(np.float64)
    np.testing.assert_allclose(small["log1p"], np.log1p(t64), rtol=1e-6)
    np.testing.assert_allclose(small["expm1"], np.expm1(t64), rtol=1e-6)
    assert small["log1p"][0, 0] != 0  # log(1 + 1e-10) rounds to 0 in float32


def test_an_operand_filled_to_another_operands_shape_becomes_its_scalar():
    def before():
        c, dy = ph(dtype=gf.bool, name="c"), ph(name="dy")
        return gf.where_v2(c, dy, gf.zeros_like(dy)), [c, dy]

    def expected():
        c, dy = ph(dtype=gf.bool, name="c"), ph(name="dy")
        return gf.where_v2(c, dy, gf.constant(0.0)), [c, dy]

    assert_rewrites_to(before, expected)
    fetch, feeds = build(before)
    assert compiler.explain(fetch, feeds).report["simplify"].details["fired"] == {
        "fill_operand": 1}


def test_fills_of_other_or_larger_shapes_are_kept():
    def other_tensor():
        x, y = ph(name="x"), ph(name="y")
        return x * gf.fill(gf.shape(y), 2.0), [x, y]  # y's shape may differ from x's

    def larger_than_operand():
        x = ph(shape=(3,), name="x")
        return x + gf.fill([4, 3], 1.0), [x]  # the fill broadcasts x to [4, 3]

    assert_unchanged(other_tensor)
    assert_unchanged(larger_than_operand)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_relu_gradients_without_zeros_match_the_interpreter(backend):
    x = ph(shape=(None, 5), dtype=gf.float64)
    dx = gf.gradients(gf.reduce_sum(gf.nn.relu(x) * 3.0), x)[0]
    xs = np.array([[-1.0, 0.0, -0.0, 2.0, np.nan]] * 3)
    with gf.Session(backend="interpreter") as s:
        want = s.run(dx, {x: xs})
    with gf.Session(backend=backend) as s:
        got = s.run(dx, {x: xs})
    np.testing.assert_array_equal(got, want)


# --- relu after max pooling: one gradient op ------------------------------------------------
def _relu_pool_grad(ksize, strides, padding, shape=(None, 6, 7, 3), relu=True):
    x, w = ph(shape=shape, name="x"), ph(shape=None, name="w")
    m = gf.nn.max_pool(gf.nn.relu(x) if relu else x, ksize, strides, padding)
    return gf.gradients(gf.reduce_sum(m * w), x)[0], [x, w]


def test_relu_after_max_pool_has_one_gradient_op():
    fetch, feeds = build(lambda: _relu_pool_grad([1, 2, 2, 1], [1, 2, 2, 1], "VALID"))
    report = compiler.explain(fetch, feeds).report["simplify"].details["fired"]
    assert report["relu_max_pool_grad"] == 1
    types = [n.type for n in after(fetch, feeds).nodes]
    assert "_MaxPoolReluGrad" in types
    assert "MaxPoolGrad" not in types and "Greater" not in types


@pytest.mark.parametrize("relu", [True, False])
def test_remap_routes_a_max_pool_gradient(relu):
    # The pool records each window's winner; its gradient reads those, not the input.
    fetch, feeds = build(lambda: _relu_pool_grad([1, 2, 2, 1], [1, 2, 2, 1], "VALID",
                                                  relu=relu))
    types = after(fetch, feeds, ("simplify", "remap")).types()
    assert "_MaxPoolWithRoute" in types and "_MaxPoolGradRoute" in types
    assert not {"MaxPool", "MaxPoolGrad", "_MaxPoolReluGrad"} & set(types)
    # Without a static height and width the gradient's shape is unknown: not routed.
    fetch, feeds = build(lambda: _relu_pool_grad([1, 2, 2, 1], [1, 2, 2, 1], "VALID",
                                                  shape=(None, None, None, 3), relu=relu))
    assert "_MaxPoolGradRoute" not in after(fetch, feeds, ("simplify", "remap")).types()


def test_relu_max_pool_grad_needs_the_pool_input_above_a_positive_zero():
    def select(cond, zero):
        def fn():
            x, y, g = ph(shape=(2, 4, 4, 3), name="x"), ph(shape=(2, 4, 4, 3), name="y"), \
                ph(shape=(2, 2, 2, 3), name="g")
            r = gf.nn.relu(x)
            m = gf.nn.max_pool(r, [1, 2, 2, 1], [1, 2, 2, 1], "VALID")
            mpg = gf.gradients(m, r, grad_ys=g)[0]  # MaxPoolGrad(r, m, g)
            return gf.where_v2(cond(r, y), mpg, gf.constant(zero)), [x, y, g]
        return fn

    assert_unchanged(select(lambda r, y: r > 0, -0.0))  # the select gives -0.0
    assert_unchanged(select(lambda r, y: r > 1, 0.0))
    assert_unchanged(select(lambda r, y: r >= 0, 0.0))
    assert_unchanged(select(lambda r, y: y > 0, 0.0))  # not the pool's input


_POOLS = [([1, 2, 2, 1], [1, 2, 2, 1], "VALID"),   # windows tile the input
          ([1, 3, 3, 1], [1, 3, 3, 1], "VALID"),   # ... with a remainder no window reads
          ([1, 2, 2, 1], [1, 2, 2, 1], "SAME"),    # ... with a padded last window
          ([1, 3, 3, 1], [1, 2, 2, 1], "SAME"),    # overlapping windows
          ([1, 2, 3, 1], [1, 1, 2, 1], "VALID")]


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("pool", _POOLS)
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_relu_max_pool_grad_matches_the_interpreter(pool, backend, relu):
    # Ties (at relu's zeros and above), NaN, inf, -0.0 in the input; NaN and -0.0 in the
    # gradient: the fused ops (_MaxPoolReluGrad, then remap's routes) must agree with
    # where(r > 0, MaxPoolGrad(r, ...), 0), or MaxPoolGrad, bit for bit.
    rng = np.random.default_rng(7)
    with gf.Graph().as_default():
        dx, (x, w) = _relu_pool_grad(*pool, relu=relu)
        values = np.array([-1.0, 0.0, -0.0, 1.0, 2.0, np.nan, np.inf, -np.inf, 0.5],
                          np.float32)
        xs = rng.choice(values, (4, 6, 7, 3)).astype(np.float32)
        xs[0] = rng.standard_normal((6, 7, 3))
        pooled = gf.nn.max_pool(x, *pool).shape.as_list()[1:]
        ws = rng.choice(np.array([1.0, -2.0, -0.0, 0.25, np.nan], np.float32), [4, *pooled])
        with gf.Session(backend="interpreter") as s:
            want = s.run(dx, {x: xs, w: ws})
        with gf.Session(backend=backend) as s:
            got = s.run(dx, {x: xs, w: ws})
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(np.signbit(got), np.signbit(want))


# --- remap: a filter gradient and its bias's gradient as one op -----------------------------
def _conv_bias_grads(bias_add, data_format="NHWC", oc=16):
    x = ph(shape=(None, 6, 7, 3), name="x")
    f = gf.constant(np.random.default_rng(0).standard_normal((3, 3, 3, oc)).astype(np.float32))
    b = gf.constant(np.linspace(-1, 1, oc).astype(np.float32))
    c = gf.nn.conv2d(x, f, [1, 1, 1, 1], "SAME")
    y = gf.nn.bias_add(c, b) if bias_add else c + b
    w = ph(shape=None, name="w")
    return gf.gradients(gf.reduce_sum(gf.nn.relu(y) * w), [f, b]), [x, w]


@pytest.mark.parametrize("bias_add", [False, True])
def test_remap_fuses_a_filter_gradient_with_its_bias_gradient(bias_add):
    fetch, feeds = build(lambda: _conv_bias_grads(bias_add))
    assert compiler.explain(fetch, feeds).report["remap"].details == {"fused": 1}
    types = after(fetch, feeds, ("remap",)).types()
    assert "_Conv2DBackpropFilterWithBias" in types
    assert "Conv2DBackpropFilter" not in types
    assert "Sum" not in types and "BiasAddGrad" not in types


def test_remap_leaves_other_sums_alone():
    def other_axes():
        x, dy = ph(shape=(2, 5, 5, 3), name="x"), ph(shape=(2, 5, 5, 4), name="dy")
        df = gf.nn.conv2d_backprop_filter(x, [3, 3, 3, 4], dy, [1, 1, 1, 1], "SAME")
        return [df, gf.reduce_sum(dy, [0, 1]), gf.reduce_sum(dy * 2.0, [0, 1, 2])], [x, dy]

    fetch, feeds = build(other_axes)
    assert compiler.explain(fetch, feeds).report["remap"].details == {"fused": 0}


@pytest.mark.parametrize("bias_add", [False, True])
@pytest.mark.parametrize("oc", [3, 16])  # the im2col path and the register-blocked kernel
def test_remapped_gradients_match_the_interpreter(bias_add, oc):
    rng = np.random.default_rng(2)
    with gf.Graph().as_default():
        grads, (x, w) = _conv_bias_grads(bias_add, oc=oc)
        xs = rng.standard_normal((4, 6, 7, 3)).astype(np.float32)
        ws = rng.standard_normal((4, 6, 7, oc)).astype(np.float32)
        ws[1, 2:4, :, 0] = np.inf  # infinite gradients: NaN and inf where the ops give them
        got = {}
        for backend in ("interpreter", "reference", "cpu"):
            with gf.Session(backend=backend) as s:
                got[backend] = s.run(grads, {x: xs, w: ws})
    for want, ref, cpu in zip(got["interpreter"], got["reference"], got["cpu"]):
        np.testing.assert_array_equal(ref, want)  # the reference: bit for bit
        assert cpu.shape == want.shape
        np.testing.assert_allclose(cpu, want, rtol=1e-5, atol=1e-4)
        assert np.array_equal(np.isnan(cpu), np.isnan(want))


# --- remap: a cross entropy's mean and its gradient as one op -------------------------------
def _xent_mean(sparse=True, dtype=gf.float32, classes=5, upstream=False, also=None):
    """(fetches, feeds): the mean cross entropy of a dense layer's logits and its gradients
    for the weights, the bias and the logits (TF1's classifier loss)."""
    rng = np.random.default_rng(3)
    x = ph(shape=(None, 4), dtype=dtype, name="x")
    w = gf.constant(rng.standard_normal((4, classes)).astype(dtype.as_numpy_dtype))
    b = gf.constant(np.linspace(-1, 1, classes).astype(dtype.as_numpy_dtype))
    logits = gf.matmul(x, w) + b
    if sparse:
        y = gf.placeholder(gf.int32, [None], name="y")
        xent = gf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
    else:
        y = ph(shape=(None, classes), dtype=dtype, name="y")
        xent = gf.nn.softmax_cross_entropy_with_logits_v2(labels=gf.stop_gradient(y),
                                                          logits=logits)
    loss = gf.reduce_mean(xent)
    feeds = [x, y]
    total = loss
    if upstream:  # the mean's gradient is then a value of the run, not a constant
        s = ph(shape=(), dtype=dtype, name="s")
        total, feeds = loss * s, feeds + [s]
    fetches = [loss, *gf.gradients(total, [w, b, logits])]
    if also is not None:
        fetches.append(also(xent, loss))
    return fetches, feeds


def _xent_mean_feeds(feeds, rows, sparse, dtype, rng, classes=5):
    d = dtype.as_numpy_dtype
    xs = (rng.standard_normal((rows, 4)) * 3).astype(d)
    if rows > 3:
        xs[1] *= 1e4  # large magnitudes
    if rows == 7:  # a NaN and an inf row (NaN in every weight's and the bias's gradient)
        xs[2, 0] = np.nan
        xs[3, 1] = np.inf
    if sparse:
        ys = rng.integers(0, classes, rows).astype(np.int32)
    else:
        ys = rng.dirichlet(np.ones(classes), rows).astype(d)
    values = [xs, ys, np.array(0.5, d)]
    return dict(zip(feeds, values))


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("upstream", [False, True])
def test_remap_fuses_a_cross_entropy_mean_with_its_gradient(sparse, upstream):
    fetch, feeds = build(lambda: _xent_mean(sparse, upstream=upstream))
    ex = compiler.explain(fetch, feeds)
    assert ex.report["remap"].details == {"fused": 1}
    types = ex.program("remap").types()
    assert "_SoftmaxCrossEntropyMean" in types
    # (The dense op's gradient is summed to the logits' shape after: a Shape of those.)
    for gone in ("Mean", "Size", "BroadcastTo", "ExpandDims",
                 "SparseSoftmaxCrossEntropyWithLogits", "SoftmaxCrossEntropyWithLogits"):
        assert gone not in types
    assert types.count("Shape") == (0 if sparse else 1)
    # The bias gradient (a Sum of the logits' gradient over the batch) comes with it.
    assert types.count("Sum") == (0 if sparse else 1)


def test_remap_leaves_cross_entropy_means_it_cannot_replace():
    cases = [
        lambda xent, loss: xent,  # the per-example loss fetched too
        lambda xent, loss: gf.reduce_sum(xent),  # another reader of the loss
        lambda xent, loss: gf.gradients(loss, xent)[0] * 2.0,  # the gradient read elsewhere
    ]
    for also in cases:
        fetch, feeds = build(lambda also=also: _xent_mean(also=also))
        assert compiler.explain(fetch, feeds).report["remap"].details == {"fused": 0}

    def kept_dims():
        x, y = ph(shape=(None, 5), name="x"), gf.placeholder(gf.int32, [None], name="y")
        xent = gf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=x)
        loss = gf.reduce_mean(xent, keepdims=True)
        return [loss, gf.gradients(loss, x)[0]], [x, y]

    def part_of_the_loss():  # a mean over one of the loss's two dims
        x, y = ph(shape=(None, 3, 5), name="x"), gf.placeholder(gf.int32, [None, 3], name="y")
        xent = gf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=x)
        loss = gf.reduce_sum(gf.reduce_mean(xent, axis=1))
        return [loss, gf.gradients(loss, x)[0]], [x, y]

    for fn in (kept_dims, part_of_the_loss):
        fetch, feeds = build(fn)
        assert compiler.explain(fetch, feeds).report["remap"].details == {"fused": 0}


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("dtype", [gf.float32, gf.float64])
@pytest.mark.parametrize("rows", [0, 1, 7, 300])
def test_remapped_cross_entropy_mean_matches_the_interpreter(sparse, dtype, rows):
    rng = np.random.default_rng(rows)
    with gf.Graph().as_default():
        fetches, feeds = _xent_mean(sparse, dtype, upstream=True)
        fed = _xent_mean_feeds(feeds, rows, sparse, dtype, rng)
        got = {}
        for backend in ("interpreter", "reference", "cpu"):
            with gf.Session(backend=backend) as s:
                got[backend] = [s.run(fetches, fed) for _ in range(2)][-1]  # cpu: compiled
    tol = 2e-5 if dtype == gf.float32 else 1e-12
    if rows == 7:  # the NaN row's gradient is NaN in every weight: the logits' show it
        assert np.isnan(got["cpu"][3][2]).all() and np.isfinite(got["cpu"][3][4:]).all()
    for want, ref, cpu in zip(got["interpreter"], got["reference"], got["cpu"]):
        np.testing.assert_array_equal(ref, want)  # the reference: bit for bit
        assert cpu.shape == want.shape and cpu.dtype == want.dtype
        finite = want[np.isfinite(want)]
        scale = float(np.abs(finite).max()) if finite.size else 0.0
        np.testing.assert_allclose(cpu, want, rtol=tol, atol=tol * scale)
        assert np.array_equal(np.isnan(cpu), np.isnan(want))


def test_remapped_cross_entropy_mean_on_many_rows_and_threads():
    # Enough rows for the compiled pass to split across threads: partial sums combine.
    rng = np.random.default_rng(11)
    with gf.Graph().as_default():
        fetches, feeds = _xent_mean(True, gf.float32, classes=12)
        fed = _xent_mean_feeds(feeds, 5000, True, gf.float32, rng, classes=12)
        got = {}
        for backend in ("interpreter", "cpu"):
            with gf.Session(backend=backend) as s:
                got[backend] = [s.run(fetches, fed) for _ in range(2)][-1]
    for want, cpu in zip(got["interpreter"], got["cpu"]):
        np.testing.assert_allclose(cpu, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_remapped_cross_entropy_mean_reports_bad_labels_as_the_op_does(backend):
    with gf.Graph().as_default():
        fetches, feeds = _xent_mean(True)
        fed = _xent_mean_feeds(feeds, 6, True, gf.float32, np.random.default_rng(0))
        fed[feeds[1]][4] = 5  # one past the last class
        with gf.Session(backend="interpreter") as s:
            with pytest.raises(gf.errors.InvalidArgumentError) as want:
                s.run(fetches, fed)
        with gf.Session(backend=backend) as s:
            for _ in range(2):
                with pytest.raises(gf.errors.InvalidArgumentError) as got:
                    s.run(fetches, fed)
                assert "outside the valid range of [0, 5)" in str(got.value)
                assert str(want.value).split(":")[-1] in str(got.value)


def test_remapped_cross_entropy_mean_keeps_control_dependencies_on_the_loss():
    with gf.Graph().as_default():
        v = gf.Variable(0.0)
        fetches, feeds = _xent_mean(True)
        with gf.control_dependencies([fetches[0]]):  # after the loss
            bump = v.assign_add(1.0)
        ex = compiler.explain([*fetches, bump], feeds)
        assert ex.report["remap"].details == {"fused": 1}
        (add,) = [n for n in ex.program("remap").nodes if n.type == "AssignAdd"]
        assert [c.type for c in add.control_inputs] == ["_SoftmaxCrossEntropyMean"]
        fed = _xent_mean_feeds(feeds, 6, True, gf.float32, np.random.default_rng(1))
        with gf.Session(backend="cpu") as s:
            s.run(v.initializer)
            for _ in range(2):
                s.run([*fetches, bump], fed)
            assert s.run(v) == 2.0


def test_cross_entropy_mean_of_one_example_is_left_alone():
    def one():
        x, y = ph(shape=(5,), name="x"), gf.placeholder(gf.int32, [], name="y")
        xent = gf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=x)
        loss = gf.reduce_mean(xent)
        return [loss, gf.gradients(loss, x)[0]], [x, y]

    fetch, feeds = build(one)
    assert compiler.explain(fetch, feeds).report["remap"].details == {"fused": 0}
    with gf.Graph().as_default():
        (loss, grad), (x, y) = one()
        xs, ys = np.linspace(-1, 1, 5).astype(np.float32), np.int32(3)
        with gf.Session(backend="interpreter") as s:
            want = s.run([loss, grad], {x: xs, y: ys})
        with gf.Session(backend="cpu") as s:
            got = s.run([loss, grad], {x: xs, y: ys})
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6)
