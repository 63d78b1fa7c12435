"""``gf.layers``: TF1's ``tf.layers`` — layer objects and their functional forms.

Dense, Conv2D, Conv2DTranspose, MaxPooling2D, AveragePooling2D, Flatten,
Dropout and BatchNormalization, each also as a function (``gf.layers.dense``...).

A layer creates its variables with ``get_variable`` inside a variable scope named
after it (``dense``, ``dense_1``, ...; variables ``dense/kernel``, ``dense/bias``),
so checkpoints line up with TF1's by name. Calling a layer object again reuses
its variables.
"""

from __future__ import annotations

import re
from typing import Any

from graphflow.framework import dtypes as _dt
from graphflow.framework.graph import GraphKeys, Tensor, get_default_graph
from graphflow.framework.tensor_shape import TensorShape
from graphflow.ops import array_ops, math_ops, nn_ops, state_ops
from graphflow.ops.building import to_tensor
from graphflow.ops.constant_op import constant
from graphflow.ops.init_ops import Ones, Zeros
from graphflow.ops.variable_scope import VariableScope, get_variable, variable_scope


def _snake(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def _pair(v: Any, what: str) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    t = tuple(int(i) for i in v)
    if len(t) != 2:
        raise ValueError(f"{what} must be an int or a pair of ints, got {v!r}")
    return t  # type: ignore[return-value]


def _data_format(fmt: str) -> str:
    if fmt in ("channels_last", "NHWC"):
        return "NHWC"
    if fmt in ("channels_first", "NCHW"):
        return "NCHW"
    raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got {fmt!r}")


def _padding(p: str) -> str:
    up = p.upper()
    if up not in ("SAME", "VALID"):
        raise ValueError(f"padding must be 'valid' or 'same', got {p!r}")
    return up


def _training_switch(training: Any, when_training: Any, otherwise: Any) -> Tensor:
    """``when_training`` if ``training`` else ``otherwise``; a bool tensor selects at run time."""
    if isinstance(training, bool):
        return when_training() if training else otherwise()
    flag = to_tensor(training, dtype=_dt.bool_)
    return math_ops.where_v2(flag, when_training(), otherwise())


class Layer:
    """Base class of layers (TF1's ``tf.layers.Layer``).

    Args:
      trainable: whether the layer's weights are trainable.
      name: the layer's scope name (default: the snake-case class name, made unique).
      dtype: dtype of the weights (default: the first input's float dtype).
      _reuse: reuse the variables of an existing scope of the same name.
    """

    def __init__(self, trainable: bool = True, name: str | None = None, dtype: Any = None,
                 _reuse: Any = None, **kwargs: Any) -> None:
        self.trainable = trainable
        self._name = name
        self._base_name = _snake(type(self).__name__)
        self.dtype = _dt.as_dtype(dtype) if dtype is not None else None
        self._reuse = _reuse
        self._scope: VariableScope | None = None
        self.built = False
        self._trainable_weights: list[Any] = []
        self._non_trainable_weights: list[Any] = []
        self._updates: list[Any] = []
        self._losses: list[Any] = []
        self.input_spec = None

    @property
    def name(self) -> str:
        return self._scope.name if self._scope is not None else (self._name or self._base_name)

    @property
    def scope_name(self) -> str:
        return self.name

    @property
    def trainable_weights(self) -> list[Any]:
        return list(self._trainable_weights) if self.trainable else []

    trainable_variables = trainable_weights

    @property
    def non_trainable_weights(self) -> list[Any]:
        if self.trainable:
            return list(self._non_trainable_weights)
        return list(self._trainable_weights) + list(self._non_trainable_weights)

    non_trainable_variables = non_trainable_weights

    @property
    def weights(self) -> list[Any]:
        return self.trainable_weights + self.non_trainable_weights

    variables = weights

    @property
    def updates(self) -> list[Any]:
        return list(self._updates)

    @property
    def losses(self) -> list[Any]:
        return list(self._losses)

    def add_weight(self, name: str, shape: Any, dtype: Any = None, initializer: Any = None,
                   regularizer: Any = None, trainable: bool = True,
                   constraint: Any = None) -> Any:
        """Creates (or, when reusing, fetches) a variable in the layer's scope."""
        d = _dt.as_dtype(dtype) if dtype is not None else (self.dtype or _dt.float32)
        trainable = trainable and self.trainable
        v = get_variable(name, shape=shape, dtype=d, initializer=initializer,
                         regularizer=None, trainable=trainable, constraint=constraint)
        if regularizer is not None and v not in self.weights:
            g = get_default_graph()
            with g.name_scope(f"{v.op.name}/Regularizer/"):
                loss = regularizer(v)
            if loss is not None:
                g.add_to_collection(GraphKeys.REGULARIZATION_LOSSES, loss)
                self._losses.append(loss)
        if v not in self._trainable_weights and v not in self._non_trainable_weights:
            (self._trainable_weights if trainable else self._non_trainable_weights).append(v)
        return v

    def add_update(self, updates: Any, inputs: Any = None) -> None:
        """Records update ops and adds them to UPDATE_OPS, as TF1 layers do."""
        items = updates if isinstance(updates, (list, tuple)) else [updates]
        g = get_default_graph()
        for u in items:
            self._updates.append(u)
            g.add_to_collection(GraphKeys.UPDATE_OPS, u)

    def build(self, input_shape: TensorShape) -> None:
        """Creates the weights; called once, on the first call."""
        self.built = True

    def call(self, inputs: Tensor, **kwargs: Any) -> Any:
        """The layer's computation."""
        return inputs

    def compute_output_shape(self, input_shape: Any) -> TensorShape:
        raise NotImplementedError(f"{type(self).__name__}.compute_output_shape")

    def _scope_context(self) -> Any:
        """The variable scope to build and call in: a new one first, then the same again."""
        if self._scope is None:
            return variable_scope(self._name, default_name=self._base_name, reuse=self._reuse)
        return variable_scope(self._scope, reuse=True)

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """Builds the layer on first use and applies it to ``inputs``."""
        g = get_default_graph()
        with g.as_default():
            with self._scope_context() as scope:
                self._scope = scope
                x = inputs if isinstance(inputs, (list, tuple)) else to_tensor(inputs)
                if not self.built:
                    if self.dtype is None and isinstance(x, Tensor) and x.dtype.is_floating:
                        self.dtype = x.dtype  # weights follow the first input, as in TF1
                    self.build(x.shape if isinstance(x, Tensor) else [i.shape for i in x])
                    self.built = True
                return self.call(x, *args, **kwargs)

    def apply(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        return self.__call__(inputs, *args, **kwargs)


class Dense(Layer):
    """``activation(inputs @ kernel + bias)`` over the last axis."""

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = None, bias_initializer: Any = Zeros(),
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None,
                 bias_constraint: Any = None, trainable: bool = True, name: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(trainable=trainable, name=name, **kwargs)
        self.units = int(units)
        self.activation = activation
        self.use_bias = use_bias
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = kernel_regularizer
        self.bias_regularizer = bias_regularizer
        self.activity_regularizer = activity_regularizer
        self.kernel_constraint = kernel_constraint
        self.bias_constraint = bias_constraint

    def build(self, input_shape):
        last = TensorShape(input_shape)[-1].value
        if last is None:
            raise ValueError("The last dimension of the inputs to `Dense` should be defined. "
                             "Found `None`.")
        self.kernel = self.add_weight("kernel", [last, self.units],
                                      initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.bias = self.add_weight("bias", [self.units], initializer=self.bias_initializer,
                                    regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint) if self.use_bias else None

    def call(self, inputs):
        rank = inputs.shape.ndims
        if rank is not None and rank > 2:
            out = math_ops.tensordot(inputs, self.kernel, [[rank - 1], [0]])
        else:
            out = math_ops.matmul(inputs, self.kernel)
        if self.bias is not None:
            out = nn_ops.bias_add(out, self.bias)
        if self.activation is not None:
            out = self.activation(out)
        if self.activity_regularizer is not None:
            self._add_activity_loss(out)
        return out

    def _add_activity_loss(self, out: Tensor) -> None:
        loss = self.activity_regularizer(out)
        get_default_graph().add_to_collection(GraphKeys.REGULARIZATION_LOSSES, loss)
        self._losses.append(loss)


class Conv2D(Dense):
    """2-D convolution with a ``[kh, kw, in, filters]`` kernel, then bias and activation."""

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", data_format: str = "channels_last",
                 dilation_rate: Any = (1, 1), activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = None, bias_initializer: Any = Zeros(),
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None,
                 bias_constraint: Any = None, trainable: bool = True, name: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(filters, activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, bias_constraint, trainable, name, **kwargs)
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.padding = _padding(padding)
        self.data_format = _data_format(data_format)
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")

    def _channels(self, input_shape: Any) -> int:
        s = TensorShape(input_shape)
        if s.ndims != 4:
            raise ValueError(f"Inputs to {type(self).__name__} should have rank 4, got shape "
                             f"{s}")
        c = s[-1 if self.data_format == "NHWC" else 1].value
        if c is None:
            raise ValueError("The channel dimension of the inputs should be defined. "
                             "Found `None`.")
        return c

    def build(self, input_shape):
        c = self._channels(input_shape)
        self.kernel = self.add_weight("kernel", [*self.kernel_size, c, self.filters],
                                      initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.bias = self.add_weight("bias", [self.filters], initializer=self.bias_initializer,
                                    regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint) if self.use_bias else None

    def call(self, inputs):
        fmt = self.data_format
        strides = [1, *self.strides, 1] if fmt == "NHWC" else [1, 1, *self.strides]
        dil = [1, *self.dilation_rate, 1] if fmt == "NHWC" else [1, 1, *self.dilation_rate]
        out = nn_ops.conv2d(inputs, self.kernel, strides=strides, padding=self.padding,
                            data_format=fmt, dilations=dil)
        if self.bias is not None:
            out = nn_ops.bias_add(out, self.bias, data_format=fmt)
        if self.activation is not None:
            out = self.activation(out)
        if self.activity_regularizer is not None:
            self._add_activity_loss(out)
        return out


def _deconv_length(n: int | None, k: int, padding: str, stride: int, dilation: int = 1,
                   output_padding: int | None = None) -> int | None:
    """The output length of a transposed convolution (Keras's ``deconv_output_length``)."""
    if n is None:
        return None
    k = k + (k - 1) * (dilation - 1)
    if output_padding is None:
        return n * stride + max(k - stride, 0) if padding == "VALID" else n * stride
    pad = k // 2 if padding == "SAME" else 0
    return (n - 1) * stride + k - 2 * pad + output_padding


class Conv2DTranspose(Conv2D):
    """Transposed 2-D convolution ("deconvolution") with a ``[kh, kw, filters, in]`` kernel.

    The output has ``filters`` channels; each spatial size is ``in * stride`` for
    ``"same"`` and ``in * stride + max(k - stride, 0)`` for ``"valid"``, or with
    ``output_padding`` ``(in - 1) * stride + k - 2 * pad + output_padding``.
    Built on ``gf.nn.conv2d_transpose`` (a ``Conv2DBackpropInput`` op), then bias
    and activation, as TF1's ``tf.layers.Conv2DTranspose``.

    Args:
      filters: output channels.
      kernel_size, strides: ints or pairs.
      padding: ``"valid"`` or ``"same"``.
      data_format: ``"channels_last"`` or ``"channels_first"``.
      activation, use_bias, *_initializer, *_regularizer, *_constraint,
        trainable, name: as for :class:`Dense`.
      output_padding: an int or pair (each less than its stride), or None.
      dilation_rate: an int or pair.

    Raises:
      ValueError: if an output padding is not less than its stride.
    """

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", data_format: str = "channels_last",
                 activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = None, bias_initializer: Any = Zeros(),
                 kernel_regularizer: Any = None, bias_regularizer: Any = None,
                 activity_regularizer: Any = None, kernel_constraint: Any = None,
                 bias_constraint: Any = None, trainable: bool = True, name: str | None = None,
                 output_padding: Any = None, dilation_rate: Any = (1, 1),
                 **kwargs: Any) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, bias_constraint, trainable, name, **kwargs)
        self.output_padding = None if output_padding is None else _pair(output_padding,
                                                                        "output_padding")
        if self.output_padding is not None:
            for p, s in zip(self.output_padding, self.strides):
                if p >= s:
                    raise ValueError(f"Stride {self.strides} must be greater than output "
                                     f"padding {self.output_padding}")

    def build(self, input_shape):
        c = self._channels(input_shape)
        self.kernel = self.add_weight("kernel", [*self.kernel_size, self.filters, c],
                                      initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.bias = self.add_weight("bias", [self.filters], initializer=self.bias_initializer,
                                    regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint) if self.use_bias else None

    def _out_dims(self, h: int | None, w: int | None) -> tuple[int | None, int | None]:
        op = self.output_padding or (None, None)
        return (_deconv_length(h, self.kernel_size[0], self.padding, self.strides[0],
                               self.dilation_rate[0], op[0]),
                _deconv_length(w, self.kernel_size[1], self.padding, self.strides[1],
                               self.dilation_rate[1], op[1]))

    def compute_output_shape(self, input_shape: Any) -> TensorShape:
        s = TensorShape(input_shape)
        if s.ndims != 4:
            raise ValueError(f"Inputs to Conv2DTranspose should have rank 4, got shape {s}")
        d = s.values
        if self.data_format == "NHWC":
            oh, ow = self._out_dims(d[1], d[2])
            return TensorShape([d[0], oh, ow, self.filters])
        oh, ow = self._out_dims(d[2], d[3])
        return TensorShape([d[0], self.filters, oh, ow])

    def call(self, inputs):
        fmt = self.data_format
        static = self.compute_output_shape(inputs.shape)
        sv = list(static.values)
        if not all(v is not None for v in sv):
            # Unknown sizes follow the same formula on the run-time input shape.
            dyn = array_ops.shape(inputs)
            hx = 1 if fmt == "NHWC" else 2
            oh, ow = self._out_dims(dyn[hx], dyn[hx + 1])
            sv[0] = dyn[0] if sv[0] is None else sv[0]
            sv[hx] = oh if sv[hx] is None else sv[hx]
            sv[hx + 1] = ow if sv[hx + 1] is None else sv[hx + 1]
            shape_t: Any = array_ops.stack([v if isinstance(v, Tensor) else
                                            constant(v, dtype=_dt.int32) for v in sv])
        else:
            shape_t = sv
        strides = [1, *self.strides, 1] if fmt == "NHWC" else [1, 1, *self.strides]
        dil = [1, *self.dilation_rate, 1] if fmt == "NHWC" else [1, 1, *self.dilation_rate]
        out = nn_ops.conv2d_transpose(inputs, self.kernel, shape_t, strides=strides,
                                      padding=self.padding, data_format=fmt, dilations=dil)
        out.set_shape(static)
        if self.bias is not None:
            out = nn_ops.bias_add(out, self.bias, data_format=fmt)
        if self.activation is not None:
            out = self.activation(out)
        if self.activity_regularizer is not None:
            self._add_activity_loss(out)
        return out


class _Pooling2D(Layer):
    _op = "max"

    def __init__(self, pool_size: Any, strides: Any, padding: str = "valid",
                 data_format: str = "channels_last", name: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.pool_size = _pair(pool_size, "pool_size")
        self.strides = _pair(strides, "strides")
        self.padding = _padding(padding)
        self.data_format = _data_format(data_format)

    def call(self, inputs):
        fmt = self.data_format
        k = [1, *self.pool_size, 1] if fmt == "NHWC" else [1, 1, *self.pool_size]
        s = [1, *self.strides, 1] if fmt == "NHWC" else [1, 1, *self.strides]
        fn = nn_ops.max_pool if self._op == "max" else nn_ops.avg_pool
        return fn(inputs, k, s, self.padding, data_format=fmt)


class MaxPooling2D(_Pooling2D):
    """2-D max pooling."""


class AveragePooling2D(_Pooling2D):
    """2-D average pooling (padding excluded from the average, as TF1)."""

    _op = "avg"


class Flatten(Layer):
    """Flattens all but the first dimension."""

    def call(self, inputs):
        dims = inputs.shape.values
        if dims is not None and all(d is not None for d in dims[1:]):
            n = 1
            for d in dims[1:]:
                n *= d
            return array_ops.reshape(inputs, [-1 if dims[0] is None else dims[0], n])
        return array_ops.reshape(inputs, [array_ops.shape(inputs)[0], -1])


class Dropout(Layer):
    """Dropout at ``rate`` when ``training`` (a bool or a bool tensor); identity otherwise."""

    def __init__(self, rate: float = 0.5, noise_shape: Any = None, seed: int | None = None,
                 name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.rate = rate
        self.noise_shape = noise_shape
        self.seed = seed

    def call(self, inputs, training=False):
        return _training_switch(
            training,
            lambda: nn_ops.dropout(inputs, rate=self.rate, noise_shape=self.noise_shape,
                                   seed=self.seed),
            lambda: array_ops.identity(inputs))


class BatchNormalization(Layer):
    """Batch normalization with moving averages updated through UPDATE_OPS (TF1 semantics).

    In training, the batch statistics normalize and the moving averages move
    toward them by ``1 - momentum`` when the UPDATE_OPS run; at inference the
    moving averages normalize.
    """

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer: Any = Zeros(),
                 gamma_initializer: Any = Ones(), moving_mean_initializer: Any = Zeros(),
                 moving_variance_initializer: Any = Ones(), beta_regularizer: Any = None,
                 gamma_regularizer: Any = None, beta_constraint: Any = None,
                 gamma_constraint: Any = None, trainable: bool = True, name: str | None = None,
                 **kwargs: Any) -> None:
        for k in ("renorm", "fused", "virtual_batch_size", "adjustment"):
            kwargs.pop(k, None)
        super().__init__(trainable=trainable, name=name, **kwargs)
        self.axis = axis
        self.momentum = momentum
        self.epsilon = epsilon
        self.center, self.scale = center, scale
        self.beta_initializer, self.gamma_initializer = beta_initializer, gamma_initializer
        self.moving_mean_initializer = moving_mean_initializer
        self.moving_variance_initializer = moving_variance_initializer
        self.beta_regularizer, self.gamma_regularizer = beta_regularizer, gamma_regularizer
        self.beta_constraint, self.gamma_constraint = beta_constraint, gamma_constraint

    def build(self, input_shape):
        s = TensorShape(input_shape)
        if s.ndims is None:
            raise ValueError("BatchNormalization needs inputs of known rank")
        self._axis = self.axis % s.ndims
        n = s[self._axis].value
        if n is None:
            raise ValueError(f"Axis {self.axis} of the input to BatchNormalization should "
                             "have a defined dimension")
        self.gamma = self.add_weight("gamma", [n], initializer=self.gamma_initializer,
                                     regularizer=self.gamma_regularizer,
                                     constraint=self.gamma_constraint) if self.scale else None
        self.beta = self.add_weight("beta", [n], initializer=self.beta_initializer,
                                    regularizer=self.beta_regularizer,
                                    constraint=self.beta_constraint) if self.center else None
        self.moving_mean = self.add_weight("moving_mean", [n],
                                           initializer=self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", [n],
                                               initializer=self.moving_variance_initializer,
                                               trainable=False)

    def call(self, inputs, training=False):
        rank = inputs.shape.ndims
        reduce_axes = [i for i in range(rank) if i != self._axis]
        bshape = [1] * rank
        bshape[self._axis] = -1

        def param(v: Any) -> Any:
            if v is None:
                return None
            return v if self._axis == rank - 1 else array_ops.reshape(v, bshape)

        mean, variance = nn_ops.moments(inputs, reduce_axes)
        if isinstance(training, bool) and not training:
            use_mean, use_var = self.moving_mean.value(), self.moving_variance.value()
        else:
            use_mean = _training_switch(training, lambda: mean, self.moving_mean.value)
            use_var = _training_switch(training, lambda: variance, self.moving_variance.value)
            decay = 1.0 - self.momentum
            for var, stat in ((self.moving_mean, mean), (self.moving_variance, variance)):
                # TF1's assign_moving_average; with a False training tensor the delta is 0.
                delta = (var.value() - stat) * decay
                if not isinstance(training, bool):
                    delta = math_ops.where_v2(to_tensor(training, dtype=_dt.bool_), delta,
                                              array_ops.zeros_like(delta))
                self.add_update(state_ops.assign_sub(var, delta).op)
        return nn_ops.batch_normalization(inputs, param(use_mean), param(use_var),
                                          param(self.beta), param(self.gamma), self.epsilon)


# --- functional forms ---------------------------------------------------------------
def dense(inputs: Any, units: int, activation: Any = None, use_bias: bool = True,
          kernel_initializer: Any = None, bias_initializer: Any = Zeros(),
          kernel_regularizer: Any = None, bias_regularizer: Any = None,
          activity_regularizer: Any = None, kernel_constraint: Any = None,
          bias_constraint: Any = None, trainable: bool = True, name: str | None = None,
          reuse: Any = None) -> Tensor:
    """Densely connected layer (TF1's ``tf.layers.dense``).

    Args:
      inputs: tensor of rank >= 2 with a known last dimension.
      units: output size.
      activation: function applied to the output, or None.
      use_bias: add a bias vector.
      kernel_initializer: default glorot_uniform (get_variable's default).
      bias_initializer: default zeros.
      kernel_regularizer, bias_regularizer, activity_regularizer: functions
        whose results go to REGULARIZATION_LOSSES.
      kernel_constraint, bias_constraint: kept on the variables.
      trainable: add the variables to TRAINABLE_VARIABLES.
      name: scope name (default ``dense``, made unique).
      reuse: reuse the variables of a previous layer with the same name.

    Returns:
      The output tensor.

    Raises:
      ValueError: if the last input dimension is unknown.
    """
    layer = Dense(units, activation, use_bias, kernel_initializer, bias_initializer,
                  kernel_regularizer, bias_regularizer, activity_regularizer,
                  kernel_constraint, bias_constraint, trainable, name, _reuse=reuse)
    return layer(inputs)


def conv2d(inputs: Any, filters: int, kernel_size: Any, strides: Any = (1, 1),
           padding: str = "valid", data_format: str = "channels_last",
           dilation_rate: Any = (1, 1), activation: Any = None, use_bias: bool = True,
           kernel_initializer: Any = None, bias_initializer: Any = Zeros(),
           kernel_regularizer: Any = None, bias_regularizer: Any = None,
           activity_regularizer: Any = None, kernel_constraint: Any = None,
           bias_constraint: Any = None, trainable: bool = True, name: str | None = None,
           reuse: Any = None) -> Tensor:
    """2-D convolution layer (TF1's ``tf.layers.conv2d``); kernel ``[kh, kw, in, filters]``.

    Args:
      inputs: a rank-4 tensor (NHWC for ``channels_last``).
      filters: number of output channels.
      kernel_size, strides, dilation_rate: ints or pairs.
      padding: ``"valid"`` or ``"same"``.
      data_format: ``"channels_last"`` or ``"channels_first"``.
      activation, use_bias, *_initializer, *_regularizer, *_constraint,
        trainable, name, reuse: as for :func:`dense`.

    Returns:
      The output tensor.
    """
    layer = Conv2D(filters, kernel_size, strides, padding, data_format, dilation_rate,
                   activation, use_bias, kernel_initializer, bias_initializer,
                   kernel_regularizer, bias_regularizer, activity_regularizer,
                   kernel_constraint, bias_constraint, trainable, name, _reuse=reuse)
    return layer(inputs)


def conv2d_transpose(inputs: Any, filters: int, kernel_size: Any, strides: Any = (1, 1),
                     padding: str = "valid", data_format: str = "channels_last",
                     activation: Any = None, use_bias: bool = True,
                     kernel_initializer: Any = None, bias_initializer: Any = Zeros(),
                     kernel_regularizer: Any = None, bias_regularizer: Any = None,
                     activity_regularizer: Any = None, kernel_constraint: Any = None,
                     bias_constraint: Any = None, trainable: bool = True,
                     name: str | None = None, reuse: Any = None) -> Tensor:
    """Transposed 2-D convolution layer (TF1's ``tf.layers.conv2d_transpose``).

    The kernel is ``[kh, kw, filters, in_channels]`` (variables
    ``conv2d_transpose/kernel`` and ``conv2d_transpose/bias``).

    Args:
      inputs: a rank-4 tensor (NHWC for ``channels_last``).
      filters: number of output channels.
      kernel_size, strides: ints or pairs.
      padding: ``"valid"`` or ``"same"``.
      data_format: ``"channels_last"`` or ``"channels_first"``.
      activation, use_bias, *_initializer, *_regularizer, *_constraint,
        trainable, name, reuse: as for :func:`dense`.

    Returns:
      The output tensor: spatial dims ``in * stride`` (``"same"``) or
      ``in * stride + max(kernel - stride, 0)`` (``"valid"``).
    """
    layer = Conv2DTranspose(filters, kernel_size, strides, padding, data_format, activation,
                            use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                            bias_regularizer, activity_regularizer, kernel_constraint,
                            bias_constraint, trainable, name, _reuse=reuse)
    return layer(inputs)


def max_pooling2d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                  data_format: str = "channels_last", name: str | None = None) -> Tensor:
    """2-D max pooling (TF1's ``tf.layers.max_pooling2d``)."""
    return MaxPooling2D(pool_size, strides, padding, data_format, name)(inputs)


def average_pooling2d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                      data_format: str = "channels_last", name: str | None = None) -> Tensor:
    """2-D average pooling (TF1's ``tf.layers.average_pooling2d``)."""
    return AveragePooling2D(pool_size, strides, padding, data_format, name)(inputs)


def flatten(inputs: Any, name: str | None = None, data_format: str = "channels_last") -> Tensor:
    """Flattens all dims but the first (TF1's ``tf.layers.flatten``)."""
    return Flatten(name=name)(inputs)


def dropout(inputs: Any, rate: float = 0.5, noise_shape: Any = None, seed: int | None = None,
            training: Any = False, name: str | None = None) -> Tensor:
    """Dropout when ``training`` (TF1's ``tf.layers.dropout``; ``training`` may be a tensor)."""
    return Dropout(rate, noise_shape, seed, name)(inputs, training=training)


def batch_normalization(inputs: Any, axis: int = -1, momentum: float = 0.99,
                        epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                        beta_initializer: Any = Zeros(), gamma_initializer: Any = Ones(),
                        moving_mean_initializer: Any = Zeros(),
                        moving_variance_initializer: Any = Ones(),
                        beta_regularizer: Any = None, gamma_regularizer: Any = None,
                        beta_constraint: Any = None, gamma_constraint: Any = None,
                        training: Any = False, trainable: bool = True,
                        name: str | None = None, reuse: Any = None, **kwargs: Any) -> Tensor:
    """Batch normalization (TF1's ``tf.layers.batch_normalization``).

    The moving-average updates are added to ``UPDATE_OPS``; run them with the
    train op, as TF1 users do::

        with gf.control_dependencies(gf.get_collection(gf.GraphKeys.UPDATE_OPS)):
            train_op = optimizer.minimize(loss)

    Args:
      inputs: the input tensor.
      axis: the feature axis.
      momentum: moving-average momentum.
      epsilon: added to the variance.
      center, scale: learn beta / gamma.
      training: a Python bool or a bool tensor.
      name, reuse, trainable, *_initializer, *_regularizer, *_constraint: as
        for :func:`dense`.

    Returns:
      The normalized tensor.
    """
    layer = BatchNormalization(axis, momentum, epsilon, center, scale, beta_initializer,
                               gamma_initializer, moving_mean_initializer,
                               moving_variance_initializer, beta_regularizer,
                               gamma_regularizer, beta_constraint, gamma_constraint,
                               trainable, name, _reuse=reuse, **kwargs)
    return layer(inputs, training=training)


__all__ = [
    "AveragePooling2D", "BatchNormalization", "Conv2D", "Conv2DTranspose", "Dense", "Dropout",
    "Flatten", "Layer", "MaxPooling2D", "average_pooling2d", "batch_normalization", "conv2d",
    "conv2d_transpose", "dense", "dropout", "flatten", "max_pooling2d",
]
