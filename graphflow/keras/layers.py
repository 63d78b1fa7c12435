"""``gf.keras.layers``: Keras layers over graphflow's ``gf.layers``.

A Keras layer gets its name when it is made (``dense``, ``dense_1``, ... per
graph, as TF1's Keras) and creates its variables in a variable scope of that
name on its first call, so in graph mode its weights are named as TF1 Keras
names them: ``dense/kernel:0``, ``dense/bias:0``, ``embedding/embeddings:0``.
(If a variable scope of that name is already taken, the scope is made unique,
``dense_1/kernel``, while the layer keeps its name.) Calling a layer again
reuses its weights.

Each call on a tensor records a node (inputs, outputs) so that a functional
:class:`~graphflow.keras.Model` can find its layers from its inputs and outputs,
and ``get_config``/``from_config`` give the JSON-able description models are
saved with. Dropout and BatchNormalization follow the graph's learning phase
(``gf.keras.backend.learning_phase()``) unless called with ``training=``;
BatchNormalization's moving-average updates are in ``layer.updates`` (not in
the UPDATE_OPS collection, as in TF1's Keras) and ``Model.fit`` runs them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graphflow import layers as _gfl
from graphflow.framework import dtypes as _dt
from graphflow.framework.graph import Tensor, get_default_graph
from graphflow.framework.tensor_shape import TensorShape
from graphflow.keras import activations, backend, initializers, regularizers
from graphflow.ops import array_ops, math_ops, nn_ops
from graphflow.ops.building import graph_of


class Node:
    """One call of a layer: the tensors it consumed and produced."""

    def __init__(self, layer: Any, inputs: list[Tensor], outputs: list[Tensor],
                 arguments: dict[str, Any]) -> None:
        self.layer = layer
        self.input_tensors = inputs
        self.output_tensors = outputs
        self.arguments = arguments
        hist = backend._state(outputs[0].graph).history if outputs else {}
        self.inbound = [hist[t] for t in inputs]

    @property
    def inbound_layers(self) -> list[Any]:
        return [h[0] for h in self.inbound]


def _constraint_config(c: Any) -> None:
    if c is not None:
        raise ValueError(f"Constraint {c!r} cannot be serialized; save models without "
                         "constraints, or rebuild them in code")


def _format(fmt: str) -> str:
    return "channels_last" if fmt == "NHWC" else "channels_first"


class Layer(_gfl.Layer):
    """Base class of Keras layers (TF1's ``tf.keras.layers.Layer`` in graph mode).

    Args:
      trainable: whether the weights are trainable.
      name: the layer name (default: the snake-case class name made unique per graph).
      dtype: the weights' dtype.
      input_shape: the shape of one sample (first layer of a Sequential model).
      batch_input_shape: the shape with the batch dim.
      batch_size: the batch dim for ``input_shape``.
      input_dim: ``input_shape=(input_dim,)``.
    """

    def __init__(self, trainable: bool = True, name: str | None = None, dtype: Any = None,
                 **kwargs: Any) -> None:
        kw = self._keras_setup(name, kwargs)
        _gfl.Layer.__init__(self, trainable=trainable, dtype=dtype, **kw)

    # --- Keras bookkeeping ------------------------------------------------------------
    def _keras_setup(self, name: str | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Pops the Keras-only arguments and names the layer; returns the rest."""
        input_shape = kwargs.pop("input_shape", None)
        batch_input_shape = kwargs.pop("batch_input_shape", None)
        batch_size = kwargs.pop("batch_size", None)
        input_dim = kwargs.pop("input_dim", None)
        for k in ("weights", "autocast"):
            if kwargs.pop(k, None) is not None:
                raise NotImplementedError(f"Keras layer argument {k!r} is not supported")
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        if batch_input_shape is None and input_shape is not None:
            batch_input_shape = (batch_size, *tuple(input_shape))
        self._batch_input_shape = (tuple(None if d is None else int(d)
                                         for d in batch_input_shape)
                                   if batch_input_shape is not None else None)
        base = _gfl._snake(type(self).__name__)
        if name is None:
            name = backend.unique_object_name(base)
        else:
            backend._reserve_name(name)
        self._keras_name = name
        self._inbound_nodes: list[Node] = []
        return kwargs

    @property
    def name(self) -> str:
        return self._keras_name

    def _scope_context(self) -> Any:
        from graphflow.ops.variable_scope import _store, get_variable_scope, variable_scope

        if self._scope is not None:
            return variable_scope(self._scope, reuse=True)
        # The layer's name, or if a scope of that name exists, the first free ``name_<i>``
        # (TF1's _get_unique_variable_scope): the layer keeps its name, the scope moves.
        used = _store().counts
        parent = get_variable_scope().name
        prefix = f"{parent}/" if parent else ""
        name = self._keras_name
        if used.get(prefix + name):
            i = 1
            while used.get(f"{prefix}{name}_{i}"):
                i += 1
            name = f"{name}_{i}"
        return variable_scope(name)

    def add_weight(self, name: str, shape: Any, dtype: Any = None, initializer: Any = None,
                   regularizer: Any = None, trainable: bool = True,
                   constraint: Any = None) -> Any:
        """Creates a weight ``<scope>/<name>``; initializer and regularizer may be Keras
        names (``"zeros"``, ``"glorot_uniform"``, ``"l2"``) or objects."""
        return _gfl.Layer.add_weight(self, name, shape, dtype, initializers.get(initializer),
                                     regularizers.get(regularizer), trainable, constraint)

    def add_update(self, updates: Any, inputs: Any = None) -> None:
        """Records update ops on the layer (Keras layers leave UPDATE_OPS alone)."""
        items = updates if isinstance(updates, (list, tuple)) else [updates]
        self._updates.extend(items)

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """Applies the layer (building it first) and records the call as a node."""
        flat = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        g = graph_of(flat)
        with g.as_default():
            outputs = _gfl.Layer.__call__(self, inputs, *args, **kwargs)
        in_ts = [t for t in flat if isinstance(t, Tensor)]
        hist = backend._state(g).history
        if in_ts and len(in_ts) == len(flat) and all(t in hist for t in in_ts):
            outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
            node = Node(self, in_ts, outs, {k: v for k, v in kwargs.items()
                                            if isinstance(v, (bool, int, float, str))})
            self._inbound_nodes.append(node)
            for i, t in enumerate(outs):
                hist[t] = (self, len(self._inbound_nodes) - 1, i)
        return outputs

    # --- shapes and weights ---------------------------------------------------------
    def _node_tensor(self, attr: str) -> Any:
        if not self._inbound_nodes:
            raise AttributeError(f"Layer {self.name} has never been called and thus has no "
                                 f"defined {attr}.")
        ts = getattr(self._inbound_nodes[0], f"{attr}_tensors")
        return ts[0] if len(ts) == 1 else ts

    @property
    def input(self) -> Any:
        """The input tensor of the layer's first call."""
        return self._node_tensor("input")

    @property
    def output(self) -> Any:
        """The output tensor of the layer's first call."""
        return self._node_tensor("output")

    @property
    def input_shape(self) -> Any:
        t = self.input
        return [tuple(x.shape.values) for x in t] if isinstance(t, list) else \
            tuple(t.shape.values)

    @property
    def output_shape(self) -> Any:
        t = self.output
        return [tuple(x.shape.values) for x in t] if isinstance(t, list) else \
            tuple(t.shape.values)

    def count_params(self) -> int:
        """The number of scalars in the layer's weights.

        Raises:
          ValueError: if the layer is not built yet.
        """
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on {self.name}, but the layer "
                             "isn't built. You can build it manually via: "
                             f"`{self.name}.build(batch_input_shape)`.")
        return int(sum(int(np.prod(w.shape.as_list())) for w in self.weights))

    def get_weights(self) -> list[np.ndarray]:
        """The weights' values in the graph's Keras session."""
        return backend.batch_get_value(self.weights)

    def set_weights(self, weights: list[Any]) -> None:
        """Writes values into the weights, in the order of ``layer.weights``.

        Raises:
          ValueError: for the wrong number of arrays or a shape mismatch.
        """
        params = self.weights
        if len(params) != len(weights):
            raise ValueError(f"You called `set_weights(weights)` on layer {self.name} with a "
                             f"weight list of length {len(weights)}, but the layer was "
                             f"expecting {len(params)} weights.")
        for p, w in zip(params, weights):
            if not p.shape.is_compatible_with(np.shape(w)):
                raise ValueError(f"Layer weight shape {p.shape} not compatible with provided "
                                 f"weight shape {np.shape(w)}")
        backend.batch_set_value(list(zip(params, weights)))

    # --- serialization --------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The JSON-able arguments that rebuild this layer (see :meth:`from_config`)."""
        cfg: dict[str, Any] = {"name": self.name, "trainable": self.trainable,
                               "dtype": (self.dtype or _dt.float32).name}
        if self._batch_input_shape is not None:
            cfg["batch_input_shape"] = list(self._batch_input_shape)
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """A new layer from :meth:`get_config` output."""
        return cls(**config)


class InputLayer(Layer):
    """The entry point of a model: a placeholder of ``batch_input_shape``.

    Args:
      input_shape: the shape of one sample.
      batch_size: the batch dim (None: any).
      dtype: the placeholder's dtype (default float32).
      input_tensor: use this tensor instead of a new placeholder.
      sparse: must be False.
      name: the layer (and placeholder) name, default ``input_1``, ``input_2``...
      batch_input_shape: the full shape, instead of ``input_shape``/``batch_size``.
    """

    def __init__(self, input_shape: Any = None, batch_size: int | None = None,
                 dtype: Any = None, input_tensor: Any = None, sparse: bool = False,
                 name: str | None = None, batch_input_shape: Any = None,
                 **kwargs: Any) -> None:
        from graphflow.ops.constant_op import placeholder

        if sparse:
            raise NotImplementedError("sparse inputs are not supported")
        if name is None:
            name = f"input_{backend.get_uid('input')}"
        if input_tensor is not None:
            dtype = dtype or input_tensor.dtype
            batch_input_shape = batch_input_shape or input_tensor.shape.values
        if input_shape is not None and batch_input_shape is None:
            batch_input_shape = (batch_size, *tuple(input_shape))
        if batch_input_shape is None:
            raise ValueError("An InputLayer needs `input_shape` or `batch_input_shape`")
        Layer.__init__(self, name=name, dtype=dtype or backend.floatx(),
                       batch_input_shape=batch_input_shape, **kwargs)
        if input_tensor is None:
            g = get_default_graph()
            with g.as_default(), g.control_dependencies(None), g.name_scope(None):
                input_tensor = placeholder(self.dtype, list(self._batch_input_shape),
                                           name=name)
        self.built = True
        self.is_placeholder = True
        node = Node(self, [], [input_tensor], {})
        self._inbound_nodes.append(node)
        backend._state(input_tensor.graph).history[input_tensor] = (self, 0, 0)

    def get_config(self) -> dict[str, Any]:
        return {"batch_input_shape": list(self._batch_input_shape), "dtype": self.dtype.name,
                "sparse": False, "name": self.name}


def Input(shape: Any = None, batch_size: int | None = None, name: str | None = None,  # noqa: N802
          dtype: Any = None, sparse: bool = False, tensor: Any = None,
          batch_shape: Any = None, **kwargs: Any) -> Tensor:
    """A placeholder to build a functional model on (TF1's ``tf.keras.Input``).

    Args:
      shape: the shape of one sample, e.g. ``(8, 8, 1)``.
      batch_size: the batch dim (None: any).
      name: the input's name (default ``input_1``, ...).
      dtype: default float32.
      sparse: must be False.
      tensor: wrap this tensor instead of making a placeholder.
      batch_shape: the full shape, instead of ``shape``/``batch_size``.

    Returns:
      The input tensor (a ``Placeholder`` output).

    Raises:
      ValueError: if neither ``shape`` nor ``batch_shape`` nor ``tensor`` is given.
    """
    if shape is None and batch_shape is None and tensor is None:
        raise ValueError("Please provide to Input either a `shape` or a `tensor` argument.")
    layer = InputLayer(input_shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse,
                       input_tensor=tensor, name=name, batch_input_shape=batch_shape, **kwargs)
    return layer._inbound_nodes[0].output_tensors[0]


class Dense(Layer, _gfl.Dense):
    """``activation(inputs @ kernel + bias)``; weights ``<name>/kernel`` and ``<name>/bias``.

    Args:
      units: the output size.
      activation: a Keras activation name or function (None: linear).
      use_bias: add a bias.
      kernel_initializer, bias_initializer: Keras names, dicts or initializers.
      kernel_regularizer, bias_regularizer, activity_regularizer: penalties
        added to the model's loss.
      kernel_constraint, bias_constraint: functions applied after each update.
      **kwargs: ``name``, ``trainable``, ``dtype``, ``input_shape``, ...
    """

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None,
                 bias_constraint: Any = None, name: str | None = None, trainable: bool = True,
                 dtype: Any = None, **kwargs: Any) -> None:
        kw = self._keras_setup(name, kwargs)
        _gfl.Dense.__init__(self, units, activations.get(activation), use_bias,
                            initializers.get(kernel_initializer),
                            initializers.get(bias_initializer),
                            regularizers.get(kernel_regularizer),
                            regularizers.get(bias_regularizer),
                            regularizers.get(activity_regularizer), kernel_constraint,
                            bias_constraint, trainable, dtype=dtype, **kw)

    def get_config(self) -> dict[str, Any]:
        _constraint_config(self.kernel_constraint)
        _constraint_config(self.bias_constraint)
        return {**super().get_config(), "units": self.units,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                **self._init_reg_config()}

    def _init_reg_config(self) -> dict[str, Any]:
        return {"kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": None, "bias_constraint": None}


class Conv2D(Layer, _gfl.Conv2D):
    """2-D convolution with a ``[kh, kw, in, filters]`` kernel, then bias and activation.

    Args:
      filters: output channels.
      kernel_size, strides, dilation_rate: ints or pairs.
      padding: ``"valid"`` or ``"same"``.
      data_format: ``"channels_last"`` (default) or ``"channels_first"``.
      activation, use_bias, *_initializer, *_regularizer, *_constraint: as :class:`Dense`.
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", data_format: str | None = None,
                 dilation_rate: Any = (1, 1), activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None,
                 bias_constraint: Any = None, name: str | None = None, trainable: bool = True,
                 dtype: Any = None, **kwargs: Any) -> None:
        kw = self._keras_setup(name, kwargs)
        _gfl.Conv2D.__init__(self, filters, kernel_size, strides, padding,
                             data_format or "channels_last", dilation_rate,
                             activations.get(activation), use_bias,
                             initializers.get(kernel_initializer),
                             initializers.get(bias_initializer),
                             regularizers.get(kernel_regularizer),
                             regularizers.get(bias_regularizer),
                             regularizers.get(activity_regularizer), kernel_constraint,
                             bias_constraint, trainable, dtype=dtype, **kw)

    def get_config(self) -> dict[str, Any]:
        _constraint_config(self.kernel_constraint)
        _constraint_config(self.bias_constraint)
        return {**Layer.get_config(self), "filters": self.filters,
                "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding.lower(), "data_format": _format(self.data_format),
                "dilation_rate": list(self.dilation_rate),
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                **Dense._init_reg_config(self)}


class Conv2DTranspose(Layer, _gfl.Conv2DTranspose):
    """Transposed 2-D convolution with a ``[kh, kw, filters, in]`` kernel.

    Args: as :class:`Conv2D`, plus ``output_padding`` (an int or pair, or None).
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", output_padding: Any = None,
                 data_format: str | None = None, dilation_rate: Any = (1, 1),
                 activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None,
                 bias_constraint: Any = None, name: str | None = None, trainable: bool = True,
                 dtype: Any = None, **kwargs: Any) -> None:
        kw = self._keras_setup(name, kwargs)
        _gfl.Conv2DTranspose.__init__(
            self, filters, kernel_size, strides, padding, data_format or "channels_last",
            activations.get(activation), use_bias, initializers.get(kernel_initializer),
            initializers.get(bias_initializer), regularizers.get(kernel_regularizer),
            regularizers.get(bias_regularizer), regularizers.get(activity_regularizer),
            kernel_constraint, bias_constraint, trainable, output_padding=output_padding,
            dilation_rate=dilation_rate, dtype=dtype, **kw)

    def get_config(self) -> dict[str, Any]:
        cfg = Conv2D.get_config(self)
        cfg["output_padding"] = None if self.output_padding is None else list(
            self.output_padding)
        return cfg


class _Pooling2D(Layer):
    _gf_class: Any = None

    def __init__(self, pool_size: Any = (2, 2), strides: Any = None, padding: str = "valid",
                 data_format: str | None = None, name: str | None = None,
                 **kwargs: Any) -> None:
        kw = self._keras_setup(name, kwargs)
        self._gf_class.__init__(self, pool_size, pool_size if strides is None else strides,
                                padding, data_format or "channels_last", **kw)

    def get_config(self) -> dict[str, Any]:
        return {**Layer.get_config(self), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding.lower(),
                "data_format": _format(self.data_format)}


class MaxPooling2D(_Pooling2D, _gfl.MaxPooling2D):
    """2-D max pooling; ``strides`` defaults to ``pool_size`` (Keras)."""

    _gf_class = _gfl.MaxPooling2D


class AveragePooling2D(_Pooling2D, _gfl.AveragePooling2D):
    """2-D average pooling; ``strides`` defaults to ``pool_size`` (Keras)."""

    _gf_class = _gfl.AveragePooling2D


class Flatten(Layer, _gfl.Flatten):
    """Flattens each sample to a vector."""

    def __init__(self, data_format: str | None = None, name: str | None = None,
                 **kwargs: Any) -> None:
        kw = self._keras_setup(name, kwargs)
        _gfl.Flatten.__init__(self, **kw)
        self.data_format = data_format or "channels_last"

    def call(self, inputs):
        if self.data_format == "channels_first" and inputs.shape.ndims and \
                inputs.shape.ndims > 2:
            perm = [0, *range(2, inputs.shape.ndims), 1]
            inputs = array_ops.transpose(inputs, perm)
        return _gfl.Flatten.call(self, inputs)

    def get_config(self) -> dict[str, Any]:
        return {**Layer.get_config(self), "data_format": self.data_format}


def _training(training: Any, inputs: Any) -> Any:
    if training is None:
        t = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        return backend.learning_phase(t.graph)
    return training


class Dropout(Layer, _gfl.Dropout):
    """Dropout at ``rate`` while training (the learning phase, or ``training=``).

    Args:
      rate: fraction of units dropped.
      noise_shape: shape of the keep/drop mask (broadcast to the input).
      seed: op-level seed.
    """

    def __init__(self, rate: float, noise_shape: Any = None, seed: int | None = None,
                 name: str | None = None, **kwargs: Any) -> None:
        kw = self._keras_setup(name, kwargs)
        _gfl.Dropout.__init__(self, rate, noise_shape, seed, **kw)

    def call(self, inputs, training=None):
        return _gfl.Dropout.call(self, inputs, training=_training(training, inputs))

    def get_config(self) -> dict[str, Any]:
        return {**Layer.get_config(self), "rate": self.rate,
                "noise_shape": None if self.noise_shape is None else list(self.noise_shape),
                "seed": self.seed}


class BatchNormalization(Layer, _gfl.BatchNormalization):
    """Batch normalization: batch statistics while training, moving averages otherwise.

    Weights ``gamma``, ``beta`` (trainable) and ``moving_mean``,
    ``moving_variance`` (updated by ``layer.updates``, which ``Model.fit`` runs).

    Args:
      axis: the feature axis.
      momentum: moving-average momentum.
      epsilon: added to the variance.
      center, scale: learn beta / gamma.
      *_initializer, *_regularizer, *_constraint: as :class:`Dense`.
    """

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", moving_mean_initializer: Any = "zeros",
                 moving_variance_initializer: Any = "ones", beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, beta_constraint: Any = None,
                 gamma_constraint: Any = None, name: str | None = None,
                 trainable: bool = True, dtype: Any = None, **kwargs: Any) -> None:
        kw = self._keras_setup(name, kwargs)
        _gfl.BatchNormalization.__init__(
            self, axis, momentum, epsilon, center, scale, initializers.get(beta_initializer),
            initializers.get(gamma_initializer), initializers.get(moving_mean_initializer),
            initializers.get(moving_variance_initializer), regularizers.get(beta_regularizer),
            regularizers.get(gamma_regularizer), beta_constraint, gamma_constraint, trainable,
            dtype=dtype, **kw)

    def call(self, inputs, training=None):
        return _gfl.BatchNormalization.call(self, inputs, training=_training(training, inputs))

    def get_config(self) -> dict[str, Any]:
        _constraint_config(self.beta_constraint)
        _constraint_config(self.gamma_constraint)
        return {**Layer.get_config(self), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(
                    self.moving_variance_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": None, "gamma_constraint": None}


class Embedding(Layer):
    """Rows of an ``[input_dim, output_dim]`` table, looked up by integer ids.

    ``gf.nn.embedding_lookup`` underneath, so the table's gradient is an
    IndexedSlices and optimizers update only the rows a batch used. Float ids
    are cast to int32 first, as Keras does.

    Args:
      input_dim: the vocabulary size (ids lie in ``[0, input_dim)``).
      output_dim: the embedding size.
      embeddings_initializer: default ``"uniform"`` (uniform on [-0.05, 0.05]).
      embeddings_regularizer, activity_regularizer: penalties.
      embeddings_constraint: must be None (sparse updates allow no constraint).
      mask_zero: must be False (masking is not supported).
      input_length: the length of the id sequences (sets the input shape).
    """

    def __init__(self, input_dim: int, output_dim: int,
                 embeddings_initializer: Any = "uniform", embeddings_regularizer: Any = None,
                 activity_regularizer: Any = None, embeddings_constraint: Any = None,
                 mask_zero: bool = False, input_length: int | None = None,
                 name: str | None = None, trainable: bool = True, dtype: Any = None,
                 **kwargs: Any) -> None:
        if mask_zero:
            raise NotImplementedError("Embedding(mask_zero=True): masking is not supported")
        if "input_shape" not in kwargs and "batch_input_shape" not in kwargs:
            kwargs["input_shape"] = (input_length,)
        kw = self._keras_setup(name, kwargs)
        _gfl.Layer.__init__(self, trainable=trainable, dtype=dtype or backend.floatx(), **kw)
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.embeddings_constraint = embeddings_constraint
        self.mask_zero = False
        self.input_length = input_length

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", [self.input_dim, self.output_dim],
                                          initializer=self.embeddings_initializer,
                                          regularizer=self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint)

    def call(self, inputs):
        if inputs.dtype not in (_dt.int32, _dt.int64):
            inputs = math_ops.cast(inputs, _dt.int32)
        out = nn_ops.embedding_lookup(self.embeddings, inputs)
        if self.activity_regularizer is not None:
            _gfl.Dense._add_activity_loss(self, out)
        return out

    def get_config(self) -> dict[str, Any]:
        _constraint_config(self.embeddings_constraint)
        return {**Layer.get_config(self), "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "embeddings_constraint": None, "mask_zero": False,
                "input_length": self.input_length}


class Activation(Layer):
    """Applies an activation function (a Keras name or a function)."""

    def __init__(self, activation: Any, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.activation = activations.get(activation)

    def call(self, inputs):
        return self.activation(inputs) if self.activation is not None else inputs

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class Reshape(Layer):
    """Reshapes each sample to ``target_shape`` (one dim may be -1)."""

    def __init__(self, target_shape: Any, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)

    def call(self, inputs):
        dims = inputs.shape.values
        batch = dims[0] if dims and dims[0] is not None else -1
        if batch == -1 and -1 in self.target_shape:
            batch = array_ops.shape(inputs)[0]
        out = array_ops.reshape(inputs, [batch, *self.target_shape])
        if dims is not None and -1 not in self.target_shape:
            out.set_shape(TensorShape([dims[0], *self.target_shape]))
        return out

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target_shape": list(self.target_shape)}


LAYER_CLASSES: dict[str, type[Layer]] = {
    c.__name__: c for c in (InputLayer, Dense, Conv2D, Conv2DTranspose, MaxPooling2D,
                            AveragePooling2D, Flatten, Dropout, BatchNormalization, Embedding,
                            Activation, Reshape)}
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


def serialize(layer: Layer) -> dict[str, Any]:
    """``{"class_name": ..., "config": layer.get_config()}``.

    Raises:
      ValueError: for a layer class graphflow cannot rebuild by name.
    """
    name = type(layer).__name__
    if LAYER_CLASSES.get(name) is not type(layer):
        raise ValueError(f"Layer {layer.name} of class {name} cannot be serialized; known "
                         f"classes: {', '.join(sorted(LAYER_CLASSES))}")
    return {"class_name": name, "config": layer.get_config()}


def deserialize(config: dict[str, Any]) -> Layer:
    """A new layer from :func:`serialize` output (known classes only; no code runs).

    Raises:
      ValueError: for an unknown class or malformed config.
    """
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(f"Malformed layer config: {config!r}")
    cls = LAYER_CLASSES.get(config["class_name"])
    if cls is None:
        raise ValueError(f"Unknown layer class: {config['class_name']!r}")
    kwargs = config.get("config")
    if not isinstance(kwargs, dict):
        raise ValueError(f"Malformed layer config: {config!r}")
    return cls.from_config(dict(kwargs))


__all__ = ["Activation", "AveragePooling2D", "AvgPool2D", "BatchNormalization", "Conv2D",
           "Conv2DTranspose", "Dense", "Dropout", "Embedding", "Flatten", "Input",
           "InputLayer", "Layer", "MaxPool2D", "MaxPooling2D", "Reshape", "deserialize",
           "serialize"]
