"""``gf.keras.models``: ``Model`` (functional), ``Sequential``, saving and loading.

A model is a graphflow graph underneath: its layers' ops and variables live in
``model.graph`` (the graph its inputs were made in), ``compile`` adds the
targets, loss and metrics there, and the first ``fit`` adds the optimizer's
gradient and update ops (under ``training/``) grouped with the layers' update
ops (batch norm's moving averages). Everything runs in ``model.session``, the
graph's Keras session (``gf.keras.backend.get_session``), with the learning
phase fed True while training. So a compiled model can be rendered with
``gf.viz.render(model.graph, ...)``, written with ``gf.train.write_graph``, or
run by hand: ``model.session.run(model.outputs[0], {model.inputs[0]: x})``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphflow.framework import dtypes as _dt
from graphflow.framework.graph import Graph, Tensor, get_default_graph
from graphflow.keras import backend, losses, metrics, optimizers
from graphflow.keras import callbacks as cbks
from graphflow.keras import layers as klayers

metrics_module = metrics  # ``compile``'s argument ``metrics`` shadows the module


def _as_list(x: Any) -> list[Any]:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _dedup(items: list[Any]) -> list[Any]:
    seen: set[int] = set()
    out = []
    for i in items:
        if id(i) not in seen:
            seen.add(id(i))
            out.append(i)
    return out


class Model:
    """A model of Keras layers (TF1's ``tf.keras.Model``, functional API).

    ``Model(inputs, outputs)`` takes the layers on the paths from ``inputs``
    (tensors from :func:`~graphflow.keras.Input`) to ``outputs``.

    Args:
      inputs: an input tensor or a list of them.
      outputs: an output tensor of a layer call (or a list).
      name: the model's name (default ``model``, ``model_1``, ...).

    Raises:
      ValueError: if an input is not an ``Input`` tensor, an output is not a
        layer's output, or an output depends on an input not given.
    """

    def __init__(self, inputs: Any = None, outputs: Any = None, name: str | None = None,
                 **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"Unexpected keyword arguments: {sorted(kwargs)}")
        default = "sequential" if isinstance(self, Sequential) else "model"
        self.name = name or backend.unique_object_name(default)
        self.inputs: list[Tensor] = []
        self.outputs: list[Tensor] = []
        self._layers: list[Any] = []
        self._network_nodes: list[tuple[Any, int]] = []
        self._graph: Graph = get_default_graph()
        self.built = False
        self.optimizer: Any = None
        self.loss: Any = None
        self.stop_training = False
        self.history: cbks.History | None = None
        self._compiled = False
        self._metric_ids: list[Any] = []
        self.metrics_names: list[str] = ["loss"]
        self._target: Tensor | None = None
        self.total_loss: Tensor | None = None
        self._metric_tensors: list[Tensor] = []
        self._train_op: Any = None
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ValueError("A functional Model needs both `inputs` and `outputs`")
            self._init_graph_network(inputs, outputs)

    # --- topology ---------------------------------------------------------------------
    def _init_graph_network(self, inputs: Any, outputs: Any) -> None:
        self.inputs = _as_list(inputs)
        self.outputs = _as_list(outputs)
        for t in self.inputs + self.outputs:
            if not isinstance(t, Tensor):
                raise ValueError(f"Model inputs and outputs must be tensors, got {t!r}")
        g = self.inputs[0].graph
        hist = backend._state(g).history
        for t in self.inputs:
            if t not in hist or not isinstance(hist[t][0], klayers.InputLayer):
                raise ValueError(f"Input tensors to a Model must come from `gf.keras.Input`. "
                                 f"Received: {t} (missing previous layer metadata).")
        order: list[tuple[Any, int]] = []
        seen: set[tuple[int, int]] = set()
        stack: list[tuple[Tensor, bool]] = [(t, False) for t in reversed(self.outputs)]
        while stack:  # depth-first, post-order: a node after the nodes it consumes
            t, expanded = stack.pop()
            if t not in hist:
                raise ValueError(f"Output tensors to a Model must be the output of a Keras "
                                 f"layer; {t.name} is not")
            layer, ni, _ = hist[t]
            key = (id(layer), ni)
            if key in seen:
                continue
            node = layer._inbound_nodes[ni]
            if expanded or not node.input_tensors:
                seen.add(key)
                order.append((layer, ni))
                continue
            stack.append((t, True))
            stack.extend((x, False) for x in reversed(node.input_tensors))
        input_layers = {id(hist[t][0]) for t in self.inputs}
        for layer, _ in order:
            if isinstance(layer, klayers.InputLayer) and id(layer) not in input_layers:
                raise ValueError(f"Graph disconnected: cannot obtain value for tensor "
                                 f"{layer.output.name} at layer {layer.name!r}. It is not "
                                 "among the model's inputs.")
        self._network_nodes = order
        self._layers = _dedup([layer for layer, _ in order])
        self._graph = g
        self.built = True

    @property
    def layers(self) -> list[Any]:
        """The model's layers in order (functional models include their InputLayers)."""
        return list(self._layers)

    @property
    def graph(self) -> Graph:
        """The graph holding the model's ops and variables."""
        return self._graph

    @property
    def session(self) -> Any:
        """The graph's Keras session (variables initialized), which ``fit`` and
        ``predict`` run in."""
        return backend.get_session(self._graph)

    @property
    def input(self) -> Any:
        return self.inputs[0] if len(self.inputs) == 1 else self.inputs

    @property
    def output(self) -> Any:
        return self.outputs[0] if len(self.outputs) == 1 else self.outputs

    def get_layer(self, name: str | None = None, index: int | None = None) -> Any:
        """A layer by name or by index in :attr:`layers`.

        Raises:
          ValueError: if there is no such layer.
        """
        if index is not None:
            if len(self.layers) <= index:
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only "
                                 f"has {len(self.layers)} layers.")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}")

    @property
    def weights(self) -> list[Any]:
        """All variables of the layers, each once, in layer order."""
        return _dedup([w for layer in self.layers for w in layer.weights])

    variables = weights

    @property
    def trainable_weights(self) -> list[Any]:
        return _dedup([w for layer in self.layers for w in layer.trainable_weights])

    trainable_variables = trainable_weights

    @property
    def non_trainable_weights(self) -> list[Any]:
        return _dedup([w for layer in self.layers for w in layer.non_trainable_weights])

    @property
    def updates(self) -> list[Any]:
        """The layers' update ops (batch norm's moving averages), run with each training step."""
        return _dedup([u for layer in self.layers for u in layer.updates])

    @property
    def losses(self) -> list[Any]:
        """The layers' regularization losses, added to the compiled loss."""
        return _dedup([v for layer in self.layers for v in layer.losses])

    def count_params(self) -> int:
        """The number of scalars in the model's weights."""
        return int(sum(int(np.prod(w.shape.as_list())) for w in self.weights))

    def get_weights(self) -> list[np.ndarray]:
        """The weights' values (in :attr:`weights` order) from the model's session."""
        if not self.weights:
            return []
        return list(self.session.run(self.weights))

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Writes values into :attr:`weights`, in order.

        Raises:
          ValueError: for the wrong number of arrays or a shape mismatch.
        """
        params = self.weights
        if len(params) != len(weights):
            raise ValueError(f"You called `set_weights(weights)` on model {self.name} with a "
                             f"weight list of length {len(weights)}, but the model was "
                             f"expecting {len(params)} weights.")
        sess = self.session
        for p, w in zip(params, weights):
            if not p.shape.is_compatible_with(np.shape(w)):
                raise ValueError(f"Weight {p.op.name} has shape {p.shape}, not compatible "
                                 f"with the provided shape {np.shape(w)}")
            p.load(np.asarray(w, dtype=p.dtype.np), session=sess)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("Calling a Model on new inputs (nesting models) is not "
                                  "supported; call its layers instead")

    # --- compile ------------------------------------------------------------------------
    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, metrics: Any = None,
                loss_weights: Any = None, sample_weight_mode: Any = None,
                weighted_metrics: Any = None, target_tensors: Any = None,
                **kwargs: Any) -> None:
        """Sets the optimizer, loss and metrics for training.

        Args:
          optimizer: ``"sgd"``, ``"adam"``, ``"rmsprop"``, ``"adagrad"``, a
            ``gf.keras.optimizers`` object or any ``gf.train`` optimizer.
          loss: ``"mse"``, ``"mae"``, ``"categorical_crossentropy"``,
            ``"sparse_categorical_crossentropy"``, ``"binary_crossentropy"``, a
            ``gf.keras.losses`` object, or ``fn(y_true, y_pred)`` giving one loss
            per sample; the batch mean plus the layers' regularization losses
            is minimized.
          metrics: a list of names (``"accuracy"``/``"acc"``, ``"mse"``, ...) or
            ``fn(y_true, y_pred)`` functions.
          loss_weights, sample_weight_mode, weighted_metrics, target_tensors:
            must be None (not supported).

        Raises:
          ValueError: without a loss, or for unknown names.
          NotImplementedError: for the unsupported arguments, or a model with
            several outputs.
        """
        for arg, v in (("loss_weights", loss_weights), ("sample_weight_mode",
                       sample_weight_mode), ("weighted_metrics", weighted_metrics),
                       ("target_tensors", target_tensors)):
            if v is not None:
                raise NotImplementedError(f"compile({arg}=...) is not supported")
        if kwargs:
            raise TypeError(f"Unexpected keyword arguments: {sorted(kwargs)}")
        if loss is None:
            raise ValueError("The model needs a loss: compile(loss=...)")
        losses.get(loss)
        for m in _as_list(metrics):
            if m not in ("accuracy", "acc"):
                metrics_module.get(m)
        with self._graph.as_default():
            self.optimizer = optimizers.get(optimizer)
        self.loss = loss
        self._metric_ids = _as_list(metrics)
        self.metrics_names = ["loss"] + [m if isinstance(m, str) else
                                         getattr(m, "__name__", type(m).__name__)
                                         for m in self._metric_ids]
        self._compiled = True
        self._target = self.total_loss = self._train_op = None
        self._metric_tensors = []
        if self.built:
            self._compile_graph()

    def _is_sparse_loss(self) -> bool:
        if isinstance(self.loss, losses.SparseCategoricalCrossentropy):
            return True
        return losses.get(self.loss) is losses.sparse_categorical_crossentropy

    def _compile_graph(self) -> None:
        """Adds the target placeholder, the loss and the metrics to the graph."""
        from graphflow.ops.constant_op import placeholder
        from graphflow.ops.math_ops import add_n, reduce_mean

        if self.total_loss is not None:
            return
        if len(self.outputs) != 1:
            raise NotImplementedError("compile: models with several outputs are not supported")
        out = self.outputs[0]
        g = self._graph
        out_layer = backend._state(g).history[out][0]
        dims = out.shape.values
        with g.as_default(), g.name_scope(None):
            if self._is_sparse_loss():
                tshape = None if dims is None else [None, *dims[1:-1]]
                target = placeholder(_dt.int64, tshape, name=f"{out_layer.name}_target")
            else:
                tshape = None if dims is None else [None, *dims[1:]]
                target = placeholder(out.dtype, tshape, name=f"{out_layer.name}_target")
            loss_fn = losses.get(self.loss)
            with g.name_scope("loss"):
                per_sample = loss_fn(target, out)
                total = reduce_mean(per_sample, name=f"{out_layer.name}_loss")
                if self.losses:
                    total = add_n([total, *self.losses], name="total_loss")
            tensors = []
            with g.name_scope("metrics"):
                for mid, mname in zip(self._metric_ids, self.metrics_names[1:]):
                    fn = metrics_module.get(mid, self.loss, dims)
                    with g.name_scope(mname):
                        tensors.append(reduce_mean(fn(target, out)))
        self._target = target
        self.total_loss = total
        self._metric_tensors = tensors

    def _make_train_function(self) -> None:
        from graphflow.ops.control_flow_ops import group

        if self._train_op is not None:
            return
        g = self._graph
        with g.as_default(), g.name_scope("training"):
            step = self.optimizer.minimize(self.total_loss, var_list=self.trainable_weights)
            self._train_op = group(step, *self.updates, name="train")

    # --- data ---------------------------------------------------------------------------
    def _build_from_data(self, x: Any) -> None:
        if not self.built:
            raise ValueError("This model has not yet been built; give the first layer an "
                             "input_shape or call build(input_shape)")

    def _standardize_x(self, x: Any) -> list[np.ndarray]:
        if isinstance(x, dict):
            xs = [x[t.op.name] for t in self.inputs]
        else:
            xs = _as_list(x) if isinstance(x, (list, tuple)) and len(self.inputs) > 1 else [x]
        if len(xs) != len(self.inputs):
            raise ValueError(f"The model expects {len(self.inputs)} input arrays, but got "
                             f"{len(xs)}")
        out = []
        for t, a in zip(self.inputs, xs):
            a = np.asarray(a)
            if a.dtype.kind == "f" and not t.dtype.is_floating:
                raise ValueError(f"Input {t.op.name} has dtype {t.dtype.name}; got floats")
            a = a.astype(t.dtype.np, copy=False)
            if not t.shape.is_compatible_with(a.shape):
                raise ValueError(f"Error when checking input: expected {t.op.name} to have "
                                 f"shape {tuple(t.shape.values or ())}, but got an array of "
                                 f"shape {a.shape}")
            out.append(a)
        n = {len(a) for a in out}
        if len(n) > 1:
            raise ValueError(f"All input arrays should have the same number of samples, got "
                             f"{sorted(n)}")
        return out

    def _standardize_y(self, y: Any, n: int) -> np.ndarray:
        assert self._target is not None
        t = self._target
        a = np.asarray(y)
        if a.ndim == 0 or len(a) != n:
            raise ValueError(f"Input arrays should have the same number of samples as target "
                             f"arrays. Found {n} input samples and {len(a)} target samples.")
        dims = t.shape.values
        if dims is not None and all(d is not None for d in dims[1:]):
            want = tuple(dims[1:])
            if a.shape[1:] != want and int(np.prod(a.shape[1:])) == int(np.prod(want)):
                a = a.reshape((n, *want))
        if t.dtype.is_integer and a.dtype.kind == "f" and np.any(a != np.round(a)):
            raise ValueError("Sparse categorical targets must be integers")
        a = a.astype(t.dtype.np, copy=False)
        if not t.shape.is_compatible_with(a.shape):
            raise ValueError(f"Error when checking target: expected {t.op.name} to have shape "
                             f"{tuple(dims or ())}, but got an array of shape {a.shape}")
        return a

    def _feed(self, xs: list[np.ndarray], idx: Any, y: np.ndarray | None = None,
              training: bool = False) -> dict[Tensor, np.ndarray]:
        feed = {t: a[idx] for t, a in zip(self.inputs, xs)}
        if y is not None:
            assert self._target is not None
            feed[self._target] = y[idx]
        lp = backend._state(self._graph).learning_phase
        if training and lp is not None:
            feed[lp] = True
        return feed

    def _check_compiled(self) -> None:
        if not self._compiled:
            raise RuntimeError("You must compile your model before training/testing. Use "
                               "`model.compile(optimizer, loss)`.")

    # --- training and inference ---------------------------------------------------------
    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1,
            verbose: int = 1, callbacks: list[cbks.Callback] | None = None,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: bool = True,
            class_weight: Any = None, sample_weight: Any = None, initial_epoch: int = 0,
            steps_per_epoch: Any = None, validation_steps: Any = None,
            **kwargs: Any) -> cbks.History:
        """Trains the model on NumPy arrays.

        Each epoch shuffles the samples (``shuffle``), runs one training step per
        batch (the optimizer's update, the layers' updates, learning phase True)
        and reports the loss and metrics averaged over the epoch's samples, then
        those of the validation data as ``val_*``.

        Args:
          x: an array, or a list of arrays (one per input).
          y: the targets: class ids for a sparse loss, else arrays shaped like
            the output (a trailing dim of 1 may be left out).
          batch_size: samples per step (default 32).
          epochs: the epoch to stop before (counting from ``initial_epoch``).
          verbose: 0 silent, 1 a progress bar (tqdm if installed) and a line per
            epoch, 2 a line per epoch.
          callbacks: ``gf.keras.callbacks.Callback`` objects.
          validation_split: the fraction of the samples (taken from the end,
            before shuffling) held out for validation.
          validation_data: ``(x_val, y_val)``, used instead of ``validation_split``.
          shuffle: reshuffle the training samples every epoch (NumPy's global RNG).
          initial_epoch: the epoch to start counting from.
          class_weight, sample_weight, steps_per_epoch, validation_steps: must be
            None (not supported).

        Returns:
          A :class:`~graphflow.keras.callbacks.History` (also ``model.history``).

        Raises:
          RuntimeError: if the model is not compiled.
          ValueError: for arrays that do not fit the model.
        """
        for arg, v in (("class_weight", class_weight), ("sample_weight", sample_weight),
                       ("steps_per_epoch", steps_per_epoch),
                       ("validation_steps", validation_steps)):
            if v is not None:
                raise NotImplementedError(f"fit({arg}=...) is not supported")
        if kwargs:
            raise TypeError(f"Unexpected keyword arguments: {sorted(kwargs)}")
        self._check_compiled()
        self._build_from_data(x)
        self._compile_graph()
        batch_size = int(batch_size or 32)
        xs = self._standardize_x(x)
        n = len(xs[0])
        ys = self._standardize_y(y, n)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (list, tuple)) or len(validation_data) not in (
                    2, 3) or (len(validation_data) == 3 and validation_data[2] is not None):
                raise ValueError("validation_data must be (x_val, y_val)")
            val = (validation_data[0], validation_data[1])
        elif validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
            split = int(n * (1.0 - validation_split))
            val = ([a[split:] for a in xs], ys[split:])
            val = (val[0] if len(val[0]) > 1 else val[0][0], val[1])
            xs, ys, n = [a[:split] for a in xs], ys[:split], split
        self._make_train_function()
        sess = self.session
        fetches = [self._train_op, self.total_loss, *self._metric_tensors]
        names = self.metrics_names
        history = cbks.History()
        cb_list = [history, *(callbacks or [])]
        if verbose:
            cb_list.append(cbks.ProgbarLogger(verbose))
        cbl = cbks.CallbackList(cb_list)
        cbl.set_model(self)
        cbl.set_params({"batch_size": batch_size, "epochs": epochs, "steps":
                        -(-n // batch_size), "samples": n, "verbose": verbose,
                        "do_validation": val is not None,
                        "metrics": names + [f"val_{m}" for m in names] if val else names})
        self.stop_training = False
        self.history = history
        cbl.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            cbl.on_epoch_begin(epoch)
            order = np.random.permutation(n) if shuffle else np.arange(n)
            sums = np.zeros(len(names))
            seen = 0
            for b, start in enumerate(range(0, n, batch_size)):
                idx = order[start:start + batch_size]
                cbl.on_train_batch_begin(b, {"batch": b, "size": len(idx)})
                vals = sess.run(fetches, self._feed(xs, idx, ys, training=True))[1:]
                logs = {"batch": b, "size": len(idx)}
                logs.update({k: float(v) for k, v in zip(names, vals)})
                sums += np.asarray(vals, dtype=np.float64) * len(idx)
                seen += len(idx)
                cbl.on_train_batch_end(b, logs)
                if self.stop_training:
                    break
            epoch_logs = {k: float(s / max(seen, 1)) for k, s in zip(names, sums)}
            if val is not None:
                res = self.evaluate(val[0], val[1], batch_size=batch_size, verbose=0)
                res = res if isinstance(res, list) else [res]
                epoch_logs.update({f"val_{k}": float(v) for k, v in zip(names, res)})
            cbl.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        cbl.on_train_end()
        return history

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None,
                 verbose: int = 1, sample_weight: Any = None, steps: Any = None,
                 callbacks: list[cbks.Callback] | None = None, **kwargs: Any) -> Any:
        """The loss and metrics on ``(x, y)``, averaged over samples (learning phase False).

        Args:
          x, y: as for :meth:`fit`.
          batch_size: samples per run (default 32).
          verbose: 1 prints the result.
          sample_weight, steps: must be None.
          callbacks: callbacks whose ``on_test_*`` hooks are called.

        Returns:
          The loss (a float) if there are no metrics, else ``[loss, *metrics]``
          in :attr:`metrics_names` order.

        Raises:
          RuntimeError: if the model is not compiled.
        """
        if sample_weight is not None or steps is not None or kwargs:
            raise NotImplementedError("evaluate: only x, y, batch_size, verbose and callbacks "
                                      "are supported")
        self._check_compiled()
        self._build_from_data(x)
        self._compile_graph()
        batch_size = int(batch_size or 32)
        xs = self._standardize_x(x)
        n = len(xs[0])
        ys = self._standardize_y(y, n)
        sess = self.session
        fetches = [self.total_loss, *self._metric_tensors]
        cbl = cbks.CallbackList(callbacks)
        cbl.set_model(self)
        cbl.on_test_begin()
        sums = np.zeros(len(fetches))
        for b, start in enumerate(range(0, n, batch_size)):
            idx = np.arange(start, min(start + batch_size, n))
            cbl.on_test_batch_begin(b, {"batch": b, "size": len(idx)})
            vals = sess.run(fetches, self._feed(xs, idx, ys))
            sums += np.asarray(vals, dtype=np.float64) * len(idx)
            cbl.on_test_batch_end(b, {"batch": b, "size": len(idx),
                                      **{k: float(v) for k, v in zip(self.metrics_names,
                                                                      vals)}})
        res = [float(s / max(n, 1)) for s in sums]
        cbl.on_test_end()
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in zip(self.metrics_names, res)))
        return res[0] if len(res) == 1 else res

    def predict(self, x: Any, batch_size: int | None = None, verbose: int = 0,
                steps: Any = None, callbacks: list[cbks.Callback] | None = None) -> Any:
        """The model's outputs for ``x``, batch by batch (learning phase False).

        Args:
          x: an array, or a list of arrays (one per input).
          batch_size: samples per run (default 32).
          verbose: ignored (no progress bar for predictions).
          steps: must be None.
          callbacks: callbacks whose ``on_predict_*`` hooks are called.

        Returns:
          An array (a list of arrays for several outputs).
        """
        if steps is not None:
            raise NotImplementedError("predict(steps=...) is not supported")
        self._build_from_data(x)
        batch_size = int(batch_size or 32)
        xs = self._standardize_x(x)
        n = len(xs[0])
        sess = self.session
        cbl = cbks.CallbackList(callbacks)
        cbl.set_model(self)
        cbl.on_predict_begin()
        parts: list[list[np.ndarray]] = [[] for _ in self.outputs]
        for b, start in enumerate(range(0, n, batch_size)):
            idx = np.arange(start, min(start + batch_size, n))
            cbl.on_predict_batch_begin(b, {"batch": b, "size": len(idx)})
            vals = sess.run(self.outputs, self._feed(xs, idx))
            for p, v in zip(parts, vals):
                p.append(np.asarray(v))
            cbl.on_predict_batch_end(b, {"batch": b, "size": len(idx)})
        cbl.on_predict_end()
        outs = [np.concatenate(p) if p else np.zeros((0, *t.shape.values[1:]),
                                                        dtype=t.dtype.np)
                for p, t in zip(parts, self.outputs)]
        return outs[0] if len(outs) == 1 else outs

    def train_on_batch(self, x: Any, y: Any) -> Any:
        """One training step on one batch; returns the loss (and metrics) before the step."""
        self._check_compiled()
        self._build_from_data(x)
        self._compile_graph()
        self._make_train_function()
        xs = self._standardize_x(x)
        ys = self._standardize_y(y, len(xs[0]))
        vals = self.session.run([self._train_op, self.total_loss, *self._metric_tensors],
                                self._feed(xs, slice(None), ys, training=True))[1:]
        res = [float(v) for v in vals]
        return res[0] if len(res) == 1 else res

    def test_on_batch(self, x: Any, y: Any) -> Any:
        """The loss (and metrics) on one batch."""
        self._check_compiled()
        self._build_from_data(x)
        self._compile_graph()
        xs = self._standardize_x(x)
        ys = self._standardize_y(y, len(xs[0]))
        vals = self.session.run([self.total_loss, *self._metric_tensors],
                                self._feed(xs, slice(None), ys))
        res = [float(v) for v in vals]
        return res[0] if len(res) == 1 else res

    def predict_on_batch(self, x: Any) -> Any:
        """The outputs for one batch."""
        self._build_from_data(x)
        xs = self._standardize_x(x)
        vals = self.session.run(self.outputs, self._feed(xs, slice(None)))
        return vals[0] if len(vals) == 1 else vals

    # --- description --------------------------------------------------------------------
    def _model_nodes(self) -> dict[int, list[int]]:
        """Per layer (by id), the indices of its nodes that belong to this model, in order."""
        out: dict[int, list[int]] = {}
        for layer, ni in self._network_nodes:
            out.setdefault(id(layer), []).append(ni)
        return out

    def summary(self, line_length: int | None = None, positions: Sequence[float] | None = None,
                print_fn: Callable[[str], Any] | None = None) -> None:
        """Prints a table of the layers: name (type), output shape, parameter count,
        then the total, trainable and non-trainable parameter counts (TF1's format).

        Args:
          line_length: total width (default 65, or 98 with a "Connected to" column).
          positions: column ends, as fractions of the width or absolute.
          print_fn: called with each line (default ``print``).

        Raises:
          ValueError: if the model is not built yet.
        """
        if not self.built:
            raise ValueError("This model has not yet been built. Build the model first by "
                             "calling `build()` or calling `fit()` with some data, or specify "
                             "an `input_shape` argument in the first layer(s) for automatic "
                             "build.")
        print_fn = print_fn or print
        nodes = self._model_nodes()
        hist = backend._state(self._graph).history
        sequential_like = isinstance(self, Sequential) or all(
            len(nodes.get(id(layer), [])) <= 1 and all(
                len(layer._inbound_nodes[ni].input_tensors) <= 1 for ni in nodes.get(
                    id(layer), [])) for layer in self.layers)
        if sequential_like:
            line_length = line_length or 65
            positions = list(positions or [0.45, 0.85, 1.0])
            header = ["Layer (type)", "Output Shape", "Param #"]
        else:
            line_length = line_length or 98
            positions = list(positions or [0.33, 0.55, 0.67, 1.0])
            header = ["Layer (type)", "Output Shape", "Param #", "Connected to"]
        if positions[-1] <= 1:
            positions = [int(line_length * p) for p in positions]

        def row(fields: list[str]) -> None:
            line = ""
            for i, f in enumerate(fields):
                if i > 0:
                    line = line[:-1] + " "
                line += str(f)
                line = line[:positions[i]]
                line += " " * (positions[i] - len(line))
            print_fn(line)

        print_fn(f'Model: "{self.name}"')
        print_fn("_" * line_length)
        row(header)
        print_fn("=" * line_length)
        layers = self.layers
        for i, layer in enumerate(layers):
            nis = nodes.get(id(layer), [0])
            outs = layer._inbound_nodes[nis[0]].output_tensors if layer._inbound_nodes else []
            shapes = [tuple(t.shape.values) if t.shape.ndims is not None else "?"
                      for t in outs]
            if isinstance(layer, klayers.InputLayer):
                shape = str(shapes)
            else:
                shape = str(shapes[0]) if len(shapes) == 1 else str(shapes)
            fields = [f"{layer.name} ({type(layer).__name__})", shape,
                      str(layer.count_params())]
            if sequential_like:
                row(fields)
            else:
                conns = []
                for ni in nis:
                    for t in layer._inbound_nodes[ni].input_tensors:
                        src, sni, sti = hist[t]
                        conns.append(f"{src.name}[{nodes[id(src)].index(sni)}][{sti}]")
                row(fields + [conns[0] if conns else ""])
                for c in conns[1:]:
                    row(["", "", "", c])
            print_fn("=" * line_length if i == len(layers) - 1 else "_" * line_length)
        trainable = sum(int(np.prod(w.shape.as_list())) for w in self.trainable_weights)
        non_trainable = sum(int(np.prod(w.shape.as_list())) for w in self.non_trainable_weights)
        print_fn(f"Total params: {trainable + non_trainable:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {non_trainable:,}")
        print_fn("_" * line_length)

    def get_config(self) -> dict[str, Any]:
        """The architecture as JSON-able data (Keras's functional-model config).

        Raises:
          ValueError: for a layer, initializer or activation that cannot be serialized.
        """
        nodes = self._model_nodes()
        hist = backend._state(self._graph).history
        layer_cfgs = []
        for layer in self.layers:
            inbound = []
            for ni in nodes.get(id(layer), []):
                node = layer._inbound_nodes[ni]
                if not node.input_tensors:
                    continue
                refs = []
                for t in node.input_tensors:
                    src, sni, sti = hist[t]
                    refs.append([src.name, nodes[id(src)].index(sni), sti, dict(node.arguments)])
                inbound.append(refs)
            cfg = klayers.serialize(layer)
            layer_cfgs.append({**cfg, "name": layer.name, "inbound_nodes": inbound})

        def ref(t: Tensor) -> list[Any]:
            layer, ni, ti = hist[t]
            return [layer.name, nodes[id(layer)].index(ni), ti]

        names = [c["name"] for c in layer_cfgs]
        if len(set(names)) != len(names):
            raise ValueError(f"The layer names of a model must be unique to save it: {names}")
        return {"name": self.name, "layers": layer_cfgs,
                "input_layers": [ref(t) for t in self.inputs],
                "output_layers": [ref(t) for t in self.outputs]}

    def to_json(self, **kwargs: Any) -> str:
        """The architecture as a JSON string (``gf.keras.models.model_from_json`` reads it)."""
        return json.dumps({"class_name": type(self).__name__, "config": self.get_config()},
                          **kwargs)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Model:
        """Rebuilds a functional model from :meth:`get_config` output in the default graph.

        Raises:
          ValueError: for a malformed config.
        """
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("Malformed model config")
        created: dict[str, Any] = {}
        outputs: dict[tuple[str, int], list[Tensor]] = {}
        pending: list[tuple[Any, int, list[Any]]] = []
        for lc in config["layers"]:
            if not isinstance(lc, dict) or not isinstance(lc.get("name"), str):
                raise ValueError(f"Malformed layer entry in model config: {lc!r}")
            layer = klayers.deserialize(lc)
            created[lc["name"]] = layer
            if isinstance(layer, klayers.InputLayer):
                outputs[(lc["name"], 0)] = [layer._inbound_nodes[0].output_tensors[0]]
            nodes = lc.get("inbound_nodes") or []
            if not isinstance(nodes, list):
                raise ValueError(f"Malformed inbound_nodes of layer {lc['name']}")
            for k, node in enumerate(nodes):
                pending.append((layer, k, node))
        while pending:
            progressed = False
            for item in list(pending):
                layer, k, node = item
                try:
                    refs = [(str(r[0]), int(r[1]), int(r[2]),
                             r[3] if len(r) > 3 and isinstance(r[3], dict) else {})
                            for r in node]
                except (TypeError, ValueError, IndexError):
                    raise ValueError(f"Malformed node of layer {layer.name}: {node!r}") from None
                if not all((n, i) in outputs for n, i, _, _ in refs):
                    continue
                ins = [outputs[(n, i)][t] for n, i, t, _ in refs]
                out = layer(ins[0] if len(ins) == 1 else ins, **refs[0][3])
                outputs[(layer.name, k)] = _as_list(out)
                pending.remove(item)
                progressed = True
            if not progressed:
                raise ValueError("Malformed model config: layer nodes refer to missing inputs")

        def get(r: Any) -> Tensor:
            return outputs[(str(r[0]), int(r[1]))][int(r[2])]

        try:
            ins = [get(r) for r in config["input_layers"]]
            outs = [get(r) for r in config["output_layers"]]
        except (KeyError, TypeError, ValueError, IndexError):
            raise ValueError("Malformed model config: bad input_layers/output_layers") from None
        return cls(ins, outs, name=config.get("name"))

    def save(self, filepath: str, overwrite: bool = True, include_optimizer: bool = True,
             save_format: Any = None) -> None:
        """Saves the architecture (JSON), the training config and the weights (a
        graphflow checkpoint) in the directory ``filepath``; see
        :func:`gf.keras.models.save_model`."""
        from graphflow.keras.saving import save_model

        save_model(self, filepath, overwrite=overwrite, include_optimizer=include_optimizer)


class Sequential(Model):
    """A linear stack of layers (TF1's ``tf.keras.Sequential``).

    With an ``input_shape`` on the first layer the model is built as layers
    are added; otherwise on :meth:`build` or the first ``fit``/``predict``
    (from the data's shape).

    Args:
      layers: the layers, in order.
      name: the model's name (default ``sequential``, ...).
    """

    def __init__(self, layers: Sequence[Any] | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        self._seq: list[Any] = []
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> list[Any]:
        """The stacked layers (without the InputLayer)."""
        return list(self._seq)

    def add(self, layer: Any) -> None:
        """Appends a layer (and applies it, if the model is built).

        Raises:
          TypeError: if ``layer`` is not a Keras layer.
        """
        if isinstance(layer, Tensor):
            hist = backend._state(layer.graph).history
            if layer in hist and isinstance(hist[layer][0], klayers.InputLayer):
                layer = hist[layer][0]
        if not isinstance(layer, klayers.Layer):
            raise TypeError(f"The added layer must be an instance of class Layer. Found: "
                            f"{layer!r}")
        if isinstance(layer, klayers.InputLayer):
            if self.inputs or self._seq:
                raise ValueError("An InputLayer can only be added first")
            t = layer._inbound_nodes[0].output_tensors[0]
            self._graph = t.graph
            self.inputs, self.outputs = [t], [t]
            return
        if not self.inputs and not self._seq and layer._batch_input_shape is not None:
            with self._graph.as_default():
                t = klayers.Input(batch_shape=layer._batch_input_shape,
                                  dtype=layer.dtype or backend.floatx(),
                                  name=f"{layer.name}_input")
            self.inputs, self.outputs = [t], [t]
        self._seq.append(layer)
        if self.inputs:
            self.outputs = [layer(self.outputs[0])]
            self._refresh()

    def pop(self) -> None:
        """Removes the last layer.

        Raises:
          TypeError: if there are no layers.
        """
        if not self._seq:
            raise TypeError("There are no layers in the model.")
        self._seq.pop()
        if self.inputs:
            out = self.inputs[0]
            for layer in self._seq:
                # The layer's output from its earlier call in this model.
                for node in layer._inbound_nodes:
                    if len(node.input_tensors) == 1 and node.input_tensors[0] is out:
                        out = node.output_tensors[0]
                        break
                else:
                    out = layer(out)
            self.outputs = [out]
            self._refresh()

    def _refresh(self) -> None:
        self._init_graph_network(self.inputs, self.outputs)
        self._compiled_graph_stale()

    def _compiled_graph_stale(self) -> None:
        self._target = self.total_loss = self._train_op = None
        self._metric_tensors = []

    def _init_graph_network(self, inputs: Any, outputs: Any) -> None:
        seq = getattr(self, "_seq", None)
        super()._init_graph_network(inputs, outputs)
        if seq is not None:
            self._layers = [layer for layer in self._layers
                            if not isinstance(layer, klayers.InputLayer)]

    def build(self, input_shape: Any = None, dtype: Any = None) -> None:
        """Builds the model for inputs of ``input_shape`` (with the batch dim).

        Raises:
          ValueError: if the model has no layers or no input shape is known.
        """
        if self.built:
            return
        if input_shape is None:
            raise ValueError("You must provide an `input_shape` argument.")
        if not self._seq:
            raise ValueError("The model has no layers to build")
        with self._graph.as_default():
            t = klayers.Input(batch_shape=tuple(input_shape),
                              dtype=dtype or self._seq[0].dtype or backend.floatx(),
                              name=f"{self._seq[0].name}_input")
        out = t
        for layer in self._seq:
            out = layer(out)
        self.inputs, self.outputs = [t], [out]
        self._build_input_shape = (list(input_shape), _dt.as_dtype(t.dtype).name)
        self._refresh()
        if self._compiled:
            self._compile_graph()

    def _build_from_data(self, x: Any) -> None:
        if self.built:
            return
        a = np.asarray(x[0] if isinstance(x, (list, tuple)) else x)
        self.build((None, *a.shape[1:]), dtype="int32" if a.dtype.kind == "i" else None)

    def get_config(self) -> dict[str, Any]:
        """``{"name", "layers": [layer configs]}`` (plus the build shape if it came from data)."""
        cfg: dict[str, Any] = {"name": self.name,
                               "layers": [klayers.serialize(layer) for layer in self._seq]}
        built = getattr(self, "_build_input_shape", None)
        if built is not None:
            cfg["build_input_shape"] = built[0]
            cfg["build_input_dtype"] = built[1]
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        """Rebuilds a Sequential model from :meth:`get_config` output in the default graph.

        Raises:
          ValueError: for a malformed config.
        """
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("Malformed Sequential config")
        model = cls(name=config.get("name"))
        for lc in config["layers"]:
            model.add(klayers.deserialize(lc))
        shape = config.get("build_input_shape")
        if not model.built and shape is not None:
            model.build(shape, dtype=config.get("build_input_dtype"))
        return model


def model_from_config(config: dict[str, Any]) -> Model:
    """A model from ``{"class_name": "Sequential"|"Model", "config": ...}``.

    Raises:
      ValueError: for another class name or a malformed config.
    """
    if not isinstance(config, dict):
        raise ValueError("Malformed model config")
    name = config.get("class_name")
    if name == "Sequential":
        return Sequential.from_config(config.get("config"))
    if name in ("Model", "Functional"):
        return Model.from_config(config.get("config"))
    raise ValueError(f"Unknown model class: {name!r}")


def model_from_json(json_string: str) -> Model:
    """A model (new, untrained weights) from :meth:`Model.to_json` output."""
    return model_from_config(json.loads(json_string))


def load_model(filepath: str, compile: bool = True) -> Model:  # noqa: A002 - Keras's name
    """Loads a model saved by ``model.save``; see :func:`graphflow.keras.saving.load_model`."""
    from graphflow.keras.saving import load_model as _load

    return _load(filepath, compile=compile)


def save_model(model: Model, filepath: str, overwrite: bool = True,
               include_optimizer: bool = True) -> None:
    """Saves a model; see :func:`graphflow.keras.saving.save_model`."""
    from graphflow.keras.saving import save_model as _save

    _save(model, filepath, overwrite=overwrite, include_optimizer=include_optimizer)


__all__ = ["Model", "Sequential", "load_model", "model_from_config", "model_from_json",
           "save_model"]
