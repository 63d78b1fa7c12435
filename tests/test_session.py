"""Session semantics: fetch structures, feeds, variables, errors, sharing, threads."""

from __future__ import annotations

import collections
import threading
import time

import numpy as np
import pytest

import graphflow as gf


def test_fetch_structures_keep_their_shape():
    a = gf.constant(1.0)
    b = gf.constant([2, 3])
    Pair = collections.namedtuple("Pair", "x y")
    with gf.Session() as s:
        assert s.run(a) == 1.0 and isinstance(s.run(a), np.float32)
        out = s.run({"a": a, "nested": [b, (a, Pair(a, b))], "op": a.op})
        assert out["a"] == 1.0 and out["op"] is None
        np.testing.assert_array_equal(out["nested"][0], [2, 3])
        assert isinstance(out["nested"][1], tuple)
        pair = out["nested"][1][1]
        assert isinstance(pair, Pair) and pair.x == 1.0
        assert s.run("Const:0") == 1.0
        assert s.run(["Const:0", "Const"]) == [1.0, None]
        assert s.run([]) == []


def test_bad_fetches():
    a = gf.constant(1.0)
    with gf.Session() as s:
        with pytest.raises(TypeError):
            s.run(None)
        with pytest.raises(TypeError):
            s.run(3)
        with pytest.raises(ValueError):
            s.run("missing:0")
        other = gf.Graph()
        with other.as_default():
            c = gf.constant(1.0)
        with pytest.raises(ValueError):
            s.run(c)
    assert a is not None


def test_feeds_any_tensor_and_converts_like_tf1():
    x = gf.placeholder(gf.float32, [None, 2], name="x")
    y = x * 2
    z = y + 1
    with gf.Session() as s:
        np.testing.assert_array_equal(s.run(z, {x: [[1, 2]]}), [[3, 5]])
        # Feed an intermediate: x is not needed then.
        np.testing.assert_array_equal(s.run(z, {y: np.ones((1, 2), np.float32)}), [[2, 2]])
        assert s.run(z, {"x:0": [[0, 0]]}).dtype == np.float32
        # Python ints feed a float placeholder; the result keeps the placeholder's dtype.
        assert s.run(x, {x: [[1, 2]]}).dtype == np.float32


def test_feed_errors_are_clear():
    x = gf.placeholder(gf.float32, [None, 2], name="x")
    i = gf.placeholder(gf.int32, [], name="i")
    y = x + 1
    with gf.Session() as s:
        with pytest.raises(ValueError, match=r"Cannot feed value of shape \(3,\).*'x:0'"):
            s.run(y, {x: [1, 2, 3]})
        with pytest.raises(TypeError, match="int32"):
            s.run(i, {i: 1.5})
        with pytest.raises(TypeError):
            s.run(y, {"nope:0": 1})
        with pytest.raises(TypeError, match="feed"):
            s.run(y, {x: gf.constant([[1.0, 2.0]])})
        with pytest.raises(gf.errors.InvalidArgumentError, match="must feed a value for "
                                                                 "placeholder tensor 'x'"):
            s.run(y)
        assert s.run(i, {i: 2.0}) == 2  # integral floats are not data loss


def test_feed_does_not_alias_callers_array():
    x = gf.placeholder(gf.float32, [2])
    y = gf.identity(x)
    data = np.array([1, 2], np.float32)
    with gf.Session() as s:
        out = s.run(y, {x: data})
        out[0] = 100
        assert data[0] == 1
        again = s.run(y, {x: data})
        assert again[0] == 1


def test_shared_work_runs_once():
    counter = gf.Variable(0, name="counter")
    inc = gf.assign_add(counter, 1)
    a = inc * 2
    b = inc * 3
    with gf.Session() as s:
        s.run(counter.initializer)
        assert s.run([a, b]) == [2, 3]
        assert s.run(counter) == 1


def test_variables_live_in_the_session():
    v = gf.Variable([1.0, 2.0], name="v")
    with gf.Session() as s1, gf.Session() as s2:
        s1.run(v.initializer)
        s2.run(v.initializer)
        s1.run(v.assign([5.0, 6.0]))
        np.testing.assert_array_equal(s1.run(v), [5, 6])
        np.testing.assert_array_equal(s2.run(v), [1, 2])


def test_uninitialized_variable_is_a_failed_precondition():
    v = gf.Variable(1.0, name="w")
    with gf.Session() as s:
        with pytest.raises(gf.errors.FailedPreconditionError, match="uninitialized value w"):
            s.run(v + 1)
        assert not s.run(gf.is_variable_initialized(v))
        s.run(gf.global_variables_initializer())
        assert s.run(gf.is_variable_initialized(v))


def test_train_op_and_loss_fetched_together_see_the_old_value():
    v = gf.Variable(3.0)
    loss = v * v
    update = gf.assign_sub(v, 1.0)
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        _, value = s.run([update, loss])
        assert value == 9.0
        assert s.run(v) == 2.0


def test_read_value_under_control_dependency_sees_the_update():
    v = gf.Variable(1.0)
    up = v.assign_add(10.0)
    with gf.control_dependencies([up]):
        after = v.read_value()
    with gf.Session() as s:
        s.run(v.initializer)
        assert s.run(after) == 11.0


def test_variable_api():
    v = gf.Variable(gf.zeros([2, 3]), name="kernel")
    assert v.name == "kernel:0" and v.op.name == "kernel" and v.op.type == "VariableV2"
    assert v.shape.as_list() == [2, 3] and v.dtype == gf.float32
    assert v.initializer.name == "kernel/Assign"
    assert v.value().name == "kernel/read:0"
    w = gf.Variable(lambda: gf.ones([2]), name="lazy")
    u = gf.Variable(v.initialized_value() + 1, name="derived")
    with gf.Session() as s:
        s.run(gf.global_variables_initializer())
        np.testing.assert_array_equal(s.run(u), np.ones((2, 3)))
        np.testing.assert_array_equal(w.eval(), [1, 1])
        v.load(np.full((2, 3), 7.0), s)
        assert s.run(v)[0, 0] == 7.0
        with pytest.raises(ValueError):
            v.load(np.zeros(4), s)
        with pytest.raises(gf.errors.InvalidArgumentError):
            s.run(gf.assign(v, gf.placeholder_with_default(np.zeros((1, 3), np.float32),
                                                           [None, 3])))
    with pytest.raises(ValueError):
        gf.assign(v, gf.zeros([3, 3]))
    with pytest.raises(TypeError):
        gf.assign(v, gf.zeros([2, 3], gf.float64))


def test_variable_with_validate_shape_false_may_change_shape():
    p = gf.placeholder(gf.float32, [None])
    v = gf.Variable(gf.zeros([2]), validate_shape=False)
    grow = gf.assign(v, p, validate_shape=False)
    with gf.Session() as s:
        s.run(v.initializer)
        s.run(grow, {p: [1, 2, 3]})
        np.testing.assert_array_equal(s.run(v.read_value()), [1, 2, 3])


def test_runtime_error_names_op_and_line():
    x = gf.placeholder(gf.int32, [None])
    y = gf.floordiv(x, x)
    with gf.Session() as s:
        with pytest.raises(gf.errors.InvalidArgumentError) as info:
            s.run(y, {x: [0, 1]})
    text = str(info.value)
    assert "FloorDiv" in text and "test_session.py" in text and "gf.floordiv(x, x)" in text


@pytest.mark.parametrize("backend", ["cpu", "interpreter"])
def test_repeated_runs_check_feeds_and_closing(backend):
    # The second and later runs of a signature take the generated fast path.
    x = gf.placeholder(gf.float32, [None, 2])
    y = gf.placeholder(gf.float64, [])
    z = gf.reduce_sum(x) * gf.cast(y, gf.float32)
    s = gf.Session(backend=backend)
    f = s.make_callable(z, [x, y])
    for _ in range(2):
        assert s.run(z, {x: np.ones((3, 2), np.float32), y: 2.0}) == 12.0
        assert s.run(z, {y: np.float64(1.0), x: [[1, 2]]}) == 3.0  # other key order
        assert f(np.ones((1, 2), np.float32), np.float64(3)) == 6.0
        with pytest.raises(ValueError, match="shape"):
            s.run(z, {x: np.ones((3, 3), np.float32), y: 2.0})
        with pytest.raises(TypeError):
            s.run(z, {x: np.ones((3, 2), np.float32), y: "a"})
        assert s.run(z, {x: np.ones((2, 2), np.float64), y: np.float32(1)}) == 4.0  # cast
    s.close()
    with pytest.raises(RuntimeError, match="closed"):
        s.run(z, {x: np.ones((3, 2), np.float32), y: 2.0})
    with pytest.raises(RuntimeError, match="closed"):
        f(np.ones((1, 2), np.float32), 3.0)


def test_closed_session_and_context_defaults():
    c = gf.constant(2.0)
    s = gf.Session()
    s.close()
    with pytest.raises(RuntimeError, match="closed"):
        s.run(c)
    with pytest.raises(ValueError, match="default session"):
        c.eval()
    with gf.Session() as s2:
        assert gf.get_default_session() is s2
        assert c.eval() == 2.0
    sess = gf.InteractiveSession()
    assert c.eval() == 2.0
    sess.close()
    assert gf.get_default_session() is None


def test_session_on_explicit_graph_and_unknown_backend():
    g = gf.Graph()
    with g.as_default():
        c = gf.constant(5)
    with gf.Session(graph=g) as s:
        assert s.run(c) == 5
    with pytest.raises(ValueError, match="backend"):
        gf.Session(backend="tpu")


def test_results_are_fresh_arrays():
    v = gf.Variable([1.0, 2.0])
    c = gf.constant([1.0, 2.0])
    with gf.Session() as s:
        s.run(v.initializer)
        a = s.run(v)
        a[0] = 50
        assert s.run(v)[0] == 1.0
        k = s.run(c)
        k[0] = 50
        assert s.run(c)[0] == 1.0


def test_concurrent_runs_give_correct_results():
    x = gf.placeholder(gf.float64, [None])
    y = gf.reduce_sum(x * x)
    results = {}
    with gf.Session() as s:
        def work(i):
            data = np.arange(i, dtype=np.float64)
            results[i] = (s.run(y, {x: data}), float(np.sum(data * data)))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(1, 40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert all(a == b for a, b in results.values())
    assert len(results) == 39


def test_make_callable():
    x = gf.placeholder(gf.float32, [])
    y = x * 3
    with gf.Session() as s:
        f = s.make_callable(y, [x])
        assert f(2.0) == 6.0


def test_group_and_tuple():
    v = gf.Variable(0)
    a = gf.assign_add(v, 1)
    b = gf.assign_add(v, 10)
    g = gf.group(a, b)
    assert g.type == "NoOp"
    t = gf.tuple([gf.constant(1), gf.constant(2)])
    with gf.Session() as s:
        s.run(v.initializer)
        assert s.run(g) is None
        assert s.run(v) == 11
        assert s.run(t) == [1, 2]


def test_cycle_through_control_inputs_is_reported():
    a = gf.constant(1.0)
    b = gf.identity(a)
    a.op._add_control_input(b.op)
    with gf.Session() as s:
        with pytest.raises(gf.errors.InvalidArgumentError, match="cycle"):
            s.run(b)


def test_tf1_config_objects_are_accepted():
    cfg = gf.ConfigProto(allow_soft_placement=True, gpu_options=gf.GPUOptions(allow_growth=True))
    assert cfg.gpu_options.allow_growth and cfg.allow_soft_placement
    assert cfg.graph_options.optimizer_options.do_constant_folding
    c = gf.constant(1.0)
    with gf.Session(config=cfg) as s:
        md = gf.RunMetadata()
        assert s.run(c, options=gf.RunOptions(trace_level=gf.RunOptions.FULL_TRACE),
                     run_metadata=md) == 1.0


def test_session_graph_def():
    gf.constant(1.0, name="c")
    with gf.Session() as s:
        assert [n.name for n in s.graph_def.node] == ["c"]


@pytest.mark.parametrize("backend", ["reference", "cpu", "interpreter"])
def test_returned_arrays_never_share_memory_with_feeds_constants_or_variables(backend):
    x = gf.placeholder(gf.float32, [3], name="x")
    c = gf.constant(np.arange(3, dtype=np.float32))
    v = gf.Variable(np.ones(3, np.float32), name="v")
    r = gf.reshape(x, [3, 1])
    fed = np.array([5.0, 6.0, 7.0], np.float32)
    with gf.Session(backend=backend) as s:
        s.run(v.initializer)
        gx, gc, gv, gr = s.run([x, c, v, r], {x: fed})
        for a in (gx, gc, gv, gr):
            a[...] = -1
        np.testing.assert_array_equal(fed, [5, 6, 7])
        np.testing.assert_array_equal(s.run(c), [0, 1, 2])
        np.testing.assert_array_equal(s.run(v), [1, 1, 1])
        fed[0] = 9  # a later change to the caller's array is seen by later runs only
        np.testing.assert_array_equal(s.run(x * 1, {x: fed}), [9, 6, 7])


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_variable_reads_inlined_in_the_runner_keep_order_and_checks(backend):
    from graphflow.runtime import reference

    v = gf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="v")
    eye = gf.constant(np.eye(3, dtype=np.float32))
    # The products keep each read a step of its own (an elementwise consumer fuses it).
    before = gf.matmul(v, eye) * 2.0  # v/read, before the update below
    step = gf.assign_add(v, gf.ones([2, 3]))
    with gf.control_dependencies([step]):
        after = gf.matmul(v.read_value(), eye)  # a read after the update, same run
    with gf.Session(backend=backend) as s:
        for _ in range(2):  # the first run and the compiled one
            with pytest.raises(gf.errors.FailedPreconditionError, match="uninitialized value v"):
                s.run(before)
        s.run(v.initializer)
        for k in range(3):
            b, a = s.run([before, after])
            np.testing.assert_array_equal(b, 2 * (np.arange(6).reshape(2, 3) + k))
            np.testing.assert_array_equal(a, np.arange(6).reshape(2, 3) + k + 1)
        v.load(np.full((2, 3), 4.0), s)
        np.testing.assert_array_equal(s.run(before), np.full((2, 3), 8.0))
        # An int value stored by hand (not through an op) takes the kernel, which casts.
        s._state.variables["v"] = np.ones((2, 3), np.int64)
        got = s.run(before)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, np.full((2, 3), 2.0))
        inlined = [step.nodes[0].name for exe in s._cache.values()
                   for step, k in zip(exe.plan.steps, exe._kernels)
                   if reference._pass_through(step, k) is not None]
        assert "v/read" in inlined


def test_repeated_runs_take_the_fast_path_and_see_graph_changes():
    x = gf.placeholder(gf.float32, [], name="x")
    y = x * 2.0
    with gf.Session() as s:
        assert s.run(y, {x: 1.0}) == 2.0
        assert s.run(y, {"x:0": 2.0}) == 4.0
        assert s.run([y, y + 1], {x: 3.0}) == [6.0, 7.0]
        assert s.run((y,), {x: 1.5}) == (3.0,)
        assert s.run({"a": y}, {x: 1.0}) == {"a": 2.0}
        assert len(s._fast) == 4  # the dict fetch is not hashable: always the full path
        z = y + 10.0  # the graph changed: cached calls are re-resolved
        assert s.run([y, z], {x: 1.0}) == [2.0, 12.0]
        with pytest.raises(gf.errors.InvalidArgumentError):
            s.run(y, {x: np.zeros(3, np.float32)})
        with pytest.raises(TypeError):
            s.run(y, {x: "a"})
        assert s.run(y, {x: np.float32(4)}) == 8.0
        assert s.run(y, {x: 4}) == 8.0


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_concurrent_runs_from_threads_are_correct(backend):
    import threading

    x = gf.placeholder(gf.float64, [None])
    counter = gf.Variable(0.0, dtype=gf.float64)
    bump = gf.assign_add(counter, 1.0)
    y = gf.reduce_sum(gf.tanh(x) * 2.0 + x)
    errors_seen = []
    with gf.Session(backend=backend) as s:
        s.run(counter.initializer)

        def work(seed):
            rng = np.random.default_rng(seed)
            for _ in range(50):
                xs = rng.standard_normal(100)
                got = s.run([y, bump], {x: xs})[0]
                if not np.isclose(got, np.sum(np.tanh(xs) * 2 + xs), rtol=1e-12):
                    errors_seen.append(seed)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors_seen
        assert s.run(counter) == 200.0


@pytest.mark.parametrize("backend", ["reference", "cpu", "interpreter"])
def test_reading_runs_overlap_and_writing_runs_wait(backend):
    import threading

    x = gf.placeholder(gf.float32, [None])
    v = gf.Variable(np.zeros(3, np.float32))
    read = gf.reduce_sum(v + x)
    write = gf.assign_add(v, np.ones(3, np.float32))
    with gf.Session(backend=backend) as s:
        s.run(v.initializer)
        f = s.make_callable(read, [x])
        results = {}

        def reader():
            results["run"] = s.run(read, {x: np.ones(3, np.float32)})
            results["callable"] = f(np.ones(3, np.float32))

        def writer():
            s.run(write)
            results["written"] = True

        # Another reading run in progress (held here) does not block reads...
        s._run_lock.acquire_shared()
        t = threading.Thread(target=reader)
        t.start()
        t.join(timeout=60)
        assert not t.is_alive() and results["run"] == 3.0 and results["callable"] == 3.0
        # ...but an update waits for it, and then runs.
        t = threading.Thread(target=writer)
        t.start()
        t.join(timeout=0.5)
        assert t.is_alive() and "written" not in results
        s._run_lock.release_shared()
        t.join(timeout=60)
        assert not t.is_alive() and results["written"]
        assert s.run(read, {x: np.zeros(3, np.float32)}) == 3.0


def test_shared_lock_lets_a_waiting_writer_in_before_new_readers():
    import threading

    from graphflow.runtime.locks import SharedLock

    lock = SharedLock()
    order = []
    lock.acquire_shared()
    w = threading.Thread(target=lambda: (lock.acquire_exclusive(), order.append("w"),
                                         lock.release_exclusive()))
    w.start()
    while not lock._writing:  # the writer is waiting
        threading.Event().wait(0.001)
    r = threading.Thread(target=lambda: (lock.acquire_shared(), order.append("r"),
                                         lock.release_shared()))
    r.start()
    r.join(timeout=0.3)
    assert r.is_alive() and not order  # the new reader queues behind the writer
    lock.release_shared()
    w.join(timeout=60)
    r.join(timeout=60)
    assert order == ["w", "r"]


def test_shared_lock_never_lets_a_reader_see_half_an_update():
    import threading

    from graphflow.runtime.locks import SharedLock

    lock = SharedLock()
    state = [0, 0]
    torn = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            lock.acquire_shared()
            a = state[0]
            time.sleep(0)  # let other threads run inside the hold
            b = state[1]
            lock.release_shared()
            if a != b:
                torn.append((a, b))

    def writer():
        for k in range(200):
            lock.acquire_exclusive()
            state[0] = k
            time.sleep(0)
            state[1] = k
            lock.release_exclusive()

    readers = [threading.Thread(target=reader) for _ in range(3)]
    writers = [threading.Thread(target=writer) for _ in range(2)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(timeout=120)
    stop.set()
    for t in readers:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in readers + writers)
    assert not torn and not lock._readers and not lock._writing


def test_make_callable_reuses_the_compiled_call_and_checks_its_inputs():
    x = gf.placeholder(gf.float32, [None], name="x")
    y = gf.reduce_sum(x * 2.0)
    with gf.Session() as s:
        f = s.make_callable([y, x], [x])
        for k in range(3):
            total, echo = f(np.arange(k + 2, dtype=np.float32))
            assert total == 2.0 * sum(range(k + 2)) and echo.shape == (k + 2,)
        assert f([1.0, 2.0])[0] == 6.0  # lists are converted like feed_dict values
        with pytest.raises(ValueError):
            f()
        with pytest.raises(gf.errors.InvalidArgumentError):
            f(np.zeros((2, 2), np.float32))
        md = gf.RunMetadata()
        opts = gf.RunOptions(trace_level=gf.RunOptions.FULL_TRACE)
        assert f(np.ones(2, np.float32), options=opts, run_metadata=md)[0] == 4.0
        assert md.step_stats
