"""gf.keras: layer names and reuse, layers against NumPy, summary, compile/fit/evaluate/
predict, callbacks, batch-norm updates, save/load, and the graph and session underneath."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

import graphflow as gf

keras = gf.keras
L = gf.keras.layers
rng = np.random.default_rng(0)


def _blobs(n=120, seed=0):
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, 4)).astype(np.float32)
    y = np.argmax(x[:, :3] + 0.1 * r.standard_normal((n, 3)), axis=1)
    return x, y


def _mlp(**dense_kwargs):
    return keras.Sequential([L.Dense(8, activation="relu", input_shape=(4,), **dense_kwargs),
                             L.Dense(3, activation="softmax")])


# --- names, scopes and reuse -------------------------------------------------------------
def test_weights_are_named_like_tf1_keras_in_graph_mode():
    model = keras.Sequential([L.Dense(8, input_shape=(4,)), L.BatchNormalization(),
                              L.Dense(3), L.Activation("relu")])
    assert [w.name for w in model.weights] == [
        "dense/kernel:0", "dense/bias:0", "batch_normalization/gamma:0",
        "batch_normalization/beta:0", "batch_normalization/moving_mean:0",
        "batch_normalization/moving_variance:0", "dense_1/kernel:0", "dense_1/bias:0"]
    assert [layer.name for layer in model.layers] == ["dense", "batch_normalization", "dense_1",
                                                      "activation"]
    assert model.inputs[0].name == "dense_input:0" and model.name == "sequential"
    assert len(model.trainable_weights) == 6 and len(model.non_trainable_weights) == 2
    emb = keras.Sequential([L.Embedding(10, 2, input_length=3)], name="emb")
    assert [w.name for w in emb.weights] == ["embedding/embeddings:0"]
    assert emb.output.shape.as_list() == [None, 3, 2]


def test_layer_names_are_unique_per_graph_and_scopes_move_when_taken():
    a, b = L.Dense(2), L.Dense(2)
    assert (a.name, b.name) == ("dense", "dense_1")
    x = gf.placeholder(gf.float32, [None, 3])
    gf.layers.dense(x, 2, name="fc")            # a TF1 layer takes the scope "fc"
    c = L.Dense(2, name="fc")
    c(x)
    assert c.name == "fc" and c.kernel.op.name == "fc_1/kernel"
    b(x)
    a(x)
    assert a.kernel.op.name == "dense/kernel" and b.kernel.op.name == "dense_1/kernel"
    with gf.Graph().as_default():
        assert L.Dense(2).name == "dense"     # counters are per graph


def test_calling_a_layer_again_reuses_its_weights():
    layer = L.Dense(3)
    i1, i2 = keras.Input((4,)), keras.Input((4,))
    o1, o2 = layer(i1), layer(i2)
    assert len(layer.weights) == 2 and len(gf.global_variables()) == 2
    assert len(layer._inbound_nodes) == 2 and i1.name == "input_1:0" and i2.name == "input_2:0"
    model = keras.Model([i1, i2], [o1, o2])
    xv = rng.standard_normal((2, 4)).astype(np.float32)
    p1, p2 = model.predict([xv, xv])
    np.testing.assert_array_equal(p1, p2)


# --- layers against NumPy ---------------------------------------------------------------
def _apply(layer, x, training=None):
    inp = keras.Input(x.shape[1:], dtype="float64" if x.dtype == np.float64 else None)
    out = layer(inp) if training is None else layer(inp, training=training)
    model = keras.Model(inp, out)
    return model.predict(x), [np.asarray(w) for w in model.get_weights()], model


def test_dense_conv_pool_flatten_activation_reshape_match_numpy():
    x = rng.standard_normal((3, 5)).astype(np.float64)
    y, (k, b), _ = _apply(L.Dense(4, activation="tanh", bias_initializer="ones"), x)
    np.testing.assert_allclose(y, np.tanh(x @ k + b), rtol=1e-10)

    img = rng.standard_normal((2, 4, 4, 2))
    y, (k, b), _ = _apply(L.Conv2D(3, 3, padding="same"), img)
    padded = np.pad(img, ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = np.zeros((2, 4, 4, 3))
    for i in range(4):
        for j in range(4):
            want[:, i, j] = np.einsum("nabc,abcf->nf", padded[:, i:i + 3, j:j + 3], k)
    np.testing.assert_allclose(y, want + b, rtol=1e-10, atol=1e-12)

    y, _, _ = _apply(L.MaxPooling2D(), img)
    np.testing.assert_array_equal(y, img.reshape(2, 2, 2, 2, 2, 2).max(axis=(2, 4)))
    y, _, _ = _apply(L.AveragePooling2D(pool_size=(2, 2), strides=1), img)
    want = np.stack([np.stack([img[:, i:i + 2, j:j + 2].mean(axis=(1, 2)) for j in range(3)], 1)
                     for i in range(3)], 1)
    np.testing.assert_allclose(y, want, rtol=1e-12)
    y, _, _ = _apply(L.Flatten(), img)
    np.testing.assert_array_equal(y, img.reshape(2, -1))
    y, _, _ = _apply(L.Activation("relu"), img)
    np.testing.assert_array_equal(y, np.maximum(img, 0))
    y, _, _ = _apply(L.Reshape((8, -1)), img)
    np.testing.assert_array_equal(y, img.reshape(2, 8, 4))
    y, (k,), _ = _apply(L.Conv2DTranspose(2, 2, strides=2, use_bias=False), img)
    assert y.shape == (2, 8, 8, 2) and k.shape == (2, 2, 2, 2)
    np.testing.assert_allclose(y[:, ::2, ::2], np.einsum("nijc,fc->nijf", img, k[0, 0]),
                               rtol=1e-10)


def test_embedding_matches_numpy_and_casts_float_ids():
    ids = np.array([[0, 3, 3], [9, 1, 0]])
    layer = L.Embedding(10, 4)
    y, (table,), model = _apply(layer, ids.astype(np.float32))
    assert layer.embeddings.name == "embedding/embeddings:0"
    assert np.all(np.abs(table) <= 0.05)        # Keras's "uniform" initializer
    np.testing.assert_array_equal(y, table[ids])
    with pytest.raises(NotImplementedError, match="mask"):
        L.Embedding(3, 2, mask_zero=True)


def test_dropout_and_batch_norm_follow_the_learning_phase():
    x = rng.standard_normal((64, 3)).astype(np.float32) * 2 + 1
    y, _, model = _apply(L.Dropout(0.5, seed=1), x)
    np.testing.assert_array_equal(y, x)             # inference: identity
    lp = keras.backend.learning_phase()
    assert lp.op.type == "PlaceholderWithDefault" and lp.name == "keras_learning_phase:0"
    train = model.session.run(model.output, {model.input: x, lp: True})
    kept = train != 0
    assert 0.3 < kept.mean() < 0.7
    np.testing.assert_allclose(train[kept], 2 * x[kept], rtol=1e-6)

    bn = L.BatchNormalization(momentum=0.5)
    y, (gamma, beta, mean, var), model = _apply(bn, x)
    np.testing.assert_allclose(y, x / np.sqrt(1 + 1e-3), rtol=1e-5)  # moving stats 0 / 1
    assert gf.GraphKeys.UPDATE_OPS not in model.graph.get_all_collection_keys()
    batch = model.session.run(model.output, {model.input: x, lp: True})
    np.testing.assert_allclose(batch, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3), rtol=1e-4,
                               atol=1e-5)


# --- summary ------------------------------------------------------------------------------
def test_summary_matches_tf1_format():
    model = keras.Sequential([L.Conv2D(4, 3, input_shape=(8, 8, 1)), L.BatchNormalization(),
                              L.MaxPooling2D(), L.Flatten(), L.Dense(10)])
    lines = []
    model.summary(print_fn=lines.append)
    assert lines == [
        'Model: "sequential"',
        "_" * 65,
        "Layer (type)                 Output Shape              Param #   ",
        "=" * 65,
        "conv2d (Conv2D)              (None, 6, 6, 4)           40        ",
        "_" * 65,
        "batch_normalization (BatchNo (None, 6, 6, 4)           16        ",
        "_" * 65,
        "max_pooling2d (MaxPooling2D) (None, 3, 3, 4)           0         ",
        "_" * 65,
        "flatten (Flatten)            (None, 36)                0         ",
        "_" * 65,
        "dense (Dense)                (None, 10)                370       ",
        "=" * 65,
        "Total params: 426",
        "Trainable params: 418",
        "Non-trainable params: 8",
        "_" * 65,
    ]
    assert model.count_params() == 426


def test_functional_summary_lists_inputs_and_connections():
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    shared = L.Dense(2, name="shared")
    model = keras.Model([a, b], [shared(a), shared(b)], name="two")
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert lines[0] == 'Model: "two"' and "Connected to" in lines[2]
    assert "a (InputLayer)" in text and "[(None, 3)]" in text
    assert "a[0][0]" in text and "b[0][0]" in text and "Total params: 8" in text
    with pytest.raises(ValueError, match="not yet been built"):
        keras.Sequential([L.Dense(2)]).summary()


# --- compile / fit / evaluate / predict -------------------------------------------------
def test_fit_reduces_the_loss_and_reports_history():
    x, y = _blobs()
    model = _mlp()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    before = model.evaluate(x, y, verbose=0)
    hist = model.fit(x, y, batch_size=16, epochs=15, verbose=0, validation_data=(x, y))
    after = model.evaluate(x, y, verbose=0)
    assert after[0] < 0.6 * before[0] and after[1] > 0.8
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert hist.epoch == list(range(15)) and model.history is hist
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    np.testing.assert_allclose(hist.history["val_loss"][-1], after[0], rtol=1e-5)
    pred = model.predict(x, batch_size=7)
    assert pred.shape == (120, 3)
    np.testing.assert_allclose(pred.sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(after[1], np.mean(pred.argmax(1) == y), rtol=1e-6)
    assert model.metrics_names == ["loss", "accuracy"]


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adagrad",
                                       lambda: keras.optimizers.SGD(0.1, momentum=0.9),
                                       lambda: gf.train.AdamOptimizer(0.01)])
def test_optimizers_by_name_keras_object_or_gf_train(optimizer):
    x, y = _blobs()
    model = _mlp()
    opt = optimizer() if callable(optimizer) else optimizer
    model.compile(opt, "sparse_categorical_crossentropy")
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, verbose=0)
    assert model.evaluate(x, y, verbose=0) < first
    assert isinstance(model.optimizer, gf.train.Optimizer)


@pytest.mark.parametrize("loss,y_fn,out", [
    ("mse", lambda y: np.eye(3)[y], "linear"),
    ("categorical_crossentropy", lambda y: np.eye(3)[y], "softmax"),
    ("binary_crossentropy", lambda y: (y == 0).astype(np.float32), "sigmoid1"),
    (keras.losses.SparseCategoricalCrossentropy(from_logits=True), lambda y: y, "linear"),
    (lambda t, p: gf.reduce_mean(gf.abs(t - p), axis=-1), lambda y: np.eye(3)[y], "linear"),
])
def test_losses_train(loss, y_fn, out):
    # Seeded weights and shuffling: unseeded, about 1 run in 30 stopped just under the
    # accuracy bar (0.6999 with the mean-abs loss) and failed the suite at random.
    gf.set_random_seed(1)
    np.random.seed(1)
    x, y = _blobs()
    units, act = (1, "sigmoid") if out == "sigmoid1" else (3, out)
    model = keras.Sequential([L.Dense(8, activation="relu", input_shape=(4,)),
                              L.Dense(units, activation=act)])
    model.compile(keras.optimizers.Adam(0.02), loss, metrics=["acc"])
    first = model.evaluate(x, y_fn(y), verbose=0)
    model.fit(x, y_fn(y), epochs=10, verbose=0)
    last = model.evaluate(x, y_fn(y), verbose=0)
    assert last[0] < first[0] and last[1] > 0.7


def test_loss_values_match_numpy():
    t = np.array([[0, 1, 0], [1, 0, 0]], np.float64)
    p = np.array([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]])
    run = lambda v: gf.Session().run(v)  # noqa: E731
    np.testing.assert_allclose(run(keras.losses.mse(t, p)), ((t - p) ** 2).mean(-1))
    np.testing.assert_allclose(run(keras.losses.categorical_crossentropy(t, p)),
                               -np.log([0.7, 0.5]), rtol=1e-6)
    np.testing.assert_allclose(run(keras.losses.sparse_categorical_crossentropy([1, 0], p)),
                               -np.log([0.7, 0.5]), rtol=1e-6)
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(-1)
    np.testing.assert_allclose(run(keras.losses.binary_crossentropy(t, p)), bce, rtol=1e-6)
    logits = gf.constant(np.log(p))
    np.testing.assert_allclose(run(keras.losses.categorical_crossentropy(
        t, gf.nn.softmax(logits))), -np.log([0.7, 0.5]), rtol=1e-6)
    np.testing.assert_allclose(run(keras.metrics.sparse_categorical_accuracy(
        np.array([[1], [2]]), p)), [1, 0])


def test_batch_norm_updates_run_with_each_training_step():
    x, y = _blobs()
    x = x * 3 + 2
    model = keras.Sequential([L.BatchNormalization(input_shape=(4,), momentum=0.0),
                              L.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    bn = model.layers[0]
    assert len(model.updates) == 2
    model.fit(x, y, batch_size=120, epochs=1, verbose=0, shuffle=False)
    mean, var = gf.keras.backend.batch_get_value([bn.moving_mean, bn.moving_variance])
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(var, x.var(0), rtol=1e-4)
    # evaluate/predict use the moving statistics and leave them alone
    model.predict(x)
    model.evaluate(x, y, verbose=0)
    np.testing.assert_array_equal(gf.keras.backend.get_value(bn.moving_mean), mean)


def test_train_test_predict_on_batch_and_validation_split(capsys):
    x, y = _blobs()
    model = _mlp()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    loss, acc = model.train_on_batch(x[:10], y[:10])
    assert np.isfinite(loss) and 0 <= acc <= 1
    assert model.test_on_batch(x[:10], y[:10])[0] < loss
    assert model.predict_on_batch(x[:5]).shape == (5, 3)
    hist = model.fit(x, y, epochs=2, validation_split=0.25, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 2/2" in out and "90/90" in out and "val_loss" in out
    assert len(hist.history["val_accuracy"]) == 2


def test_progress_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    x, y = _blobs()
    model = _mlp()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=1)
    assert "120/120" in capsys.readouterr().out


def test_fit_errors():
    x, y = _blobs()
    model = _mlp()
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(x, y)
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="shape"):
        model.fit(x[:, :3], y, verbose=0)
    with pytest.raises(ValueError, match="same number of samples"):
        model.fit(x, y[:5], verbose=0)
    with pytest.raises(ValueError, match="Unknown loss"):
        model.compile("adam", "hinge_of_doom")
    with pytest.raises(ValueError, match="Unknown optimizer"):
        model.compile("adadelta_x", "mse")


def test_sequential_builds_from_data_and_functional_model_checks():
    x, y = _blobs()
    model = keras.Sequential()
    model.add(L.Dense(5, activation="relu"))
    model.add(L.Dense(3, activation="softmax"))
    assert not model.built
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    assert model.built and model.inputs[0].shape.as_list() == [None, 4]
    assert model.weights[0].name == "dense/kernel:0"
    with pytest.raises(ValueError, match="keras.Input"):
        keras.Model(gf.placeholder(gf.float32, [None, 3]), L.Dense(2)(keras.Input((3,))))
    a, b = keras.Input((2,)), keras.Input((2,))
    with pytest.raises(ValueError, match="disconnected"):
        keras.Model(a, L.Dense(1)(b))
    with pytest.raises(TypeError, match="Layer"):
        model.add("dense")


# --- callbacks -------------------------------------------------------------------------------
def test_early_stopping_stops_and_restores_the_best_weights():
    x, y = _blobs()
    model = _mlp()
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=2)
    hist = model.fit(x, y, epochs=20, verbose=0, shuffle=False, callbacks=[stop])
    assert len(hist.epoch) == 3 and stop.stopped_epoch == 2 and model.stop_training

    # A made-up monitored value 3, 1, 2, 4: best after epoch 1, stop after epoch 3.
    model2 = _mlp()
    model2.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    snapshots = []

    def fake(epoch, logs):
        logs["fake"] = [3.0, 1.0, 2.0, 4.0, 0.0][epoch]
        snapshots.append(model2.get_weights())

    stop = keras.callbacks.EarlyStopping(monitor="fake", patience=2, restore_best_weights=True)
    hist = model2.fit(x, y, epochs=10, verbose=0,
                      callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=fake), stop])
    assert hist.epoch == [0, 1, 2, 3] and stop.stopped_epoch == 3 and stop.best == 1.0
    for got, want in zip(model2.get_weights(), snapshots[1]):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(snapshots[1][0], snapshots[3][0])


def test_lambda_and_custom_callbacks():
    x, y = _blobs()
    model = _mlp()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    seen = []

    class StopAtBatch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            assert self.params["epochs"] == 4 and set(logs) == {"batch", "size", "loss",
                                                                "accuracy"}
            if self.epoch == 1 and batch == 1:
                self.model.stop_training = True

    cb = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append((epoch, sorted(logs))),
        on_batch_end=lambda batch, logs: seen.append(("b", batch)) if batch == 0 else None)
    model.fit(x, y, epochs=4, batch_size=30, verbose=0, callbacks=[cb, StopAtBatch()])
    assert seen[0] == ("b", 0) and seen[1] == (0, ["accuracy", "loss"])
    assert seen[-1][0] == 1 and len([s for s in seen if s[0] != "b"]) == 2


# --- saving and loading -----------------------------------------------------------------------
def _conv_model():
    model = keras.Sequential([
        L.Conv2D(4, 3, padding="same", activation="relu", input_shape=(6, 6, 1)),
        L.BatchNormalization(), L.MaxPooling2D(), L.Flatten(), L.Dropout(0.2),
        L.Dense(3, activation="softmax", kernel_regularizer=keras.regularizers.l2(1e-3))])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_save_and_load_give_identical_predictions(tmp_path):
    x = rng.standard_normal((20, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, 20)
    model = _conv_model()
    model.fit(x, y, epochs=2, verbose=0)
    before = model.predict(x)
    path = tmp_path / "saved"
    model.save(str(path))
    assert {"model.json", "weights.index", "weights.meta", "checkpoint"} <= set(
        os.listdir(path))
    text = (path / "model.json").read_text()
    desc = json.loads(text[text.index("\n") + 1:text.rindex("# crc32c")])
    assert desc["model_config"]["class_name"] == "Sequential"
    assert desc["weights"][:2] == ["conv2d/kernel", "conv2d/bias"]
    assert gf.train.list_variables(str(path / "weights"))[0][0] == "batch_normalization/beta"

    # Into the same graph (names taken: scopes move) and into a fresh one.
    same = keras.models.load_model(str(path))
    np.testing.assert_array_equal(same.predict(x), before)
    assert same.weights[0].name == "conv2d_1/kernel:0" and same.layers[0].name == "conv2d"
    with gf.Graph().as_default():
        fresh = keras.models.load_model(str(path))
        np.testing.assert_array_equal(fresh.predict(x), before)
        assert fresh.weights[0].name == "conv2d/kernel:0"
        assert isinstance(fresh.optimizer, keras.optimizers.Adam)
        assert fresh.metrics_names == ["loss", "accuracy"]
        np.testing.assert_allclose(fresh.evaluate(x, y, verbose=0),
                                   model.evaluate(x, y, verbose=0), rtol=1e-5)
        fresh.fit(x, y, epochs=1, verbose=0)   # trains on (fresh optimizer slots)
    # Re-saving over an existing save works; overwrite=False refuses.
    model.save(str(path))
    with pytest.raises(FileExistsError):
        model.save(str(path), overwrite=False)
    # Without the optimizer (or with one that cannot be described) it loads uncompiled.
    model.save(str(tmp_path / "bare"), include_optimizer=False)
    with gf.Graph().as_default():
        bare = keras.models.load_model(str(tmp_path / "bare"))
        np.testing.assert_array_equal(bare.predict(x), before)
        with pytest.raises(RuntimeError, match="compile"):
            bare.evaluate(x, y)
    model.compile(gf.train.AdamOptimizer(), "sparse_categorical_crossentropy")
    with pytest.warns(UserWarning, match="cannot be described"):
        model.save(str(tmp_path / "plain"))


def test_functional_model_round_trips_through_json_and_files(tmp_path):
    inp = keras.Input((5,), name="ids")
    e = L.Embedding(12, 3)(inp)
    h = L.Flatten()(e)
    out = L.Dense(2, activation="sigmoid")(L.Dense(4, activation="elu")(h))
    model = keras.Model(inp, out, name="func")
    model.compile("rmsprop", "binary_crossentropy")
    ids = rng.integers(0, 12, (8, 5)).astype(np.float32)
    labels = rng.integers(0, 2, (8, 2)).astype(np.float32)
    model.fit(ids, labels, epochs=1, verbose=0)
    model.save(str(tmp_path))
    with gf.Graph().as_default():
        loaded = keras.models.load_model(str(tmp_path))
        assert [type(layer).__name__ for layer in loaded.layers] == [
            "InputLayer", "Embedding", "Flatten", "Dense", "Dense"]
        np.testing.assert_array_equal(loaded.predict(ids), model.predict(ids))
        rebuilt = keras.models.model_from_json(model.to_json())
        assert rebuilt.get_config()["layers"][1]["config"] == \
            model.get_config()["layers"][1]["config"]


def test_damaged_or_missing_saves_are_clear_errors(tmp_path):
    with pytest.raises(gf.errors.NotFoundError):
        keras.models.load_model(str(tmp_path / "nothing"))
    model = _mlp()
    model.save(str(tmp_path))
    p = tmp_path / "model.json"
    data = bytearray(p.read_bytes())
    data[200] ^= 1
    p.write_bytes(bytes(data))
    with pytest.raises(gf.errors.DataLossError, match="checksum"):
        keras.models.load_model(str(tmp_path))
    p.write_text('{"format": "something else"}')
    with pytest.raises(gf.errors.DataLossError, match="not a graphflow Keras model"):
        keras.models.load_model(str(tmp_path))
    bad = keras.Sequential([L.Dense(2, input_shape=(3,), activation=lambda t: t * 2)])
    with pytest.raises(ValueError, match="cannot be serialized"):
        bad.save(str(tmp_path / "bad"))


# --- the graph and session underneath ------------------------------------------------------
def test_model_exposes_its_graph_and_session(tmp_path):
    x, y = _blobs()
    with gf.Graph().as_default() as g:
        model = _mlp()
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=1, verbose=0)
    assert model.graph is g and model.session.graph is g
    by_hand = model.session.run(model.output, {model.input: x})
    np.testing.assert_allclose(by_hand, model.predict(x), rtol=1e-6)
    path = gf.train.write_graph(model.graph, str(tmp_path), "model.gfpb")
    assert os.path.exists(path)
    dot = gf.viz.to_dot(model.graph)
    assert "dense" in str(dot)
    ops = {op.type for op in g.get_operations()}
    assert {"ApplyAdam", "Softmax", "MatMul"} <= ops
    # The user's own Session can run it too, after restoring or initializing.
    with gf.Session(graph=g) as s:
        s.run(gf.variables_initializer(model.weights))
        assert s.run(model.output, {model.input: x[:2]}).shape == (2, 3)


def test_embedding_model_trains_with_sparse_updates():
    ids = rng.integers(0, 50, (64, 4))
    y = (ids[:, 0] % 2).astype(np.float32)
    model = keras.Sequential([L.Embedding(50, 8, input_length=4), L.Flatten(),
                              L.Dense(1, activation="sigmoid")])
    model.compile(keras.optimizers.SGD(0.5), "binary_crossentropy", metrics=["accuracy"])
    first = model.evaluate(ids, y, verbose=0)[0]
    model.fit(ids, y, epochs=30, verbose=0)
    assert model.evaluate(ids, y, verbose=0)[0] < first
    types = [op.type for op in model.graph.get_operations()]
    assert "ScatterSub" in types
    unused = sorted(set(range(50)) - set(ids.ravel().tolist()))
    if unused:
        table = model.layers[0].get_weights()[0]  # rows never looked up never move
        assert np.all(np.abs(table[unused]) <= 0.05)


def test_custom_layer_subclass_trains_but_cannot_be_saved(tmp_path):
    class Scale(L.Layer):
        def build(self, input_shape):
            self.w = self.add_weight("w", [int(input_shape[-1])], initializer="ones",
                                     regularizer="l2")

        def call(self, inputs):
            return inputs * self.w

    inp = keras.Input((3,))
    model = keras.Model(inp, L.Dense(1)(Scale()(inp)))
    assert model.weights[0].name == "scale/w:0" and len(model.losses) == 1
    model.compile("sgd", "mse")
    x = rng.standard_normal((16, 3)).astype(np.float32)
    first = model.evaluate(x, x[:, :1], verbose=0)
    model.fit(x, x[:, :1], epochs=5, verbose=0)
    assert model.evaluate(x, x[:, :1], verbose=0) < first
    with pytest.raises(ValueError, match="cannot be serialized"):
        model.save(str(tmp_path))
