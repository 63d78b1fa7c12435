"""Neural-network ops: activations, softmax, losses, convolution, pooling, normalization.

Names, signatures and semantics follow TF1's ``tf.nn``. Each op is one
registration below; the public functions build those ops, or compose
primitives the way TF1 does (dropout, moments, batch_normalization,
sigmoid_cross_entropy_with_logits). The activations' ops (Relu, Elu, ...) are
registered in :mod:`graphflow.ops.math_ops`; their public functions live here.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from graphflow.framework import dtypes as _dt
from graphflow.framework import errors
from graphflow.framework import op_def as _op_def
from graphflow.framework.graph import Tensor
from graphflow.framework.op_def import (
    BROADCAST,
    OPAQUE,
    REDUCTION,
    OpDef,
    register,
    shape_error,
)
from graphflow.framework.tensor_shape import TensorShape, as_shape, unknown_shape
from graphflow.ops import array_ops, math_ops, random_ops, rules
from graphflow.ops.building import is_tensor_like, make, normalize_axis, op_scope, to_tensor
from graphflow.ops.constant_op import constant_value, constant_value_as_shape

F = _dt.FLOATS
NUM = _dt.NUMERIC
LABEL_INTS = (_dt.int32, _dt.int64)
_FORMATS = ("NHWC", "NCHW")


def _acc_dtype(x: np.ndarray) -> np.dtype:
    """The dtype to compute in: float16 accumulates in float32 (as TF's CPU kernels)."""
    return np.dtype(np.float32) if x.dtype == np.float16 else x.dtype


def _invalid(message: str) -> errors.InvalidArgumentError:
    """A run-time error; the interpreter adds the op and the user's source line."""
    return errors.InvalidArgumentError(None, None, message)


# --- activations (ops registered in math_ops) ----------------------------------------
def _activation(op_type: str, features: Any, name: str | None,
                attrs: dict[str, Any] | None = None) -> Tensor:
    with op_scope(name, op_type, [features]) as scope:
        return make(op_type, [to_tensor(features, name="features")], attrs, name=scope)


def relu(features: Any, name: str | None = None) -> Tensor:
    """Rectified linear: ``max(features, 0)`` (TF1's ``tf.nn.relu``).

    Args:
      features: a Tensor of a signed numeric type.
      name: op name (default ``Relu``).

    Returns:
      A Tensor of the shape and dtype of ``features``.
    """
    return _activation("Relu", features, name)


def relu6(features: Any, name: str | None = None) -> Tensor:
    """Rectified linear capped at 6: ``min(max(features, 0), 6)`` (TF1's ``tf.nn.relu6``).

    Args:
      features: a Tensor of a signed numeric type.
      name: op name (default ``Relu6``).

    Returns:
      A Tensor of the shape and dtype of ``features``.
    """
    return _activation("Relu6", features, name)


def elu(features: Any, name: str | None = None) -> Tensor:
    """Exponential linear: ``features`` if > 0 else ``exp(features) - 1`` (``tf.nn.elu``).

    Args:
      features: a float Tensor.
      name: op name (default ``Elu``).

    Returns:
      A Tensor of the shape and dtype of ``features``.
    """
    return _activation("Elu", features, name)


def selu(features: Any, name: str | None = None) -> Tensor:
    """Scaled exponential linear (Klambauer et al. 2017) (TF1's ``tf.nn.selu``).

    ``scale * features`` if > 0 else ``scale * alpha * (exp(features) - 1)``,
    with ``alpha ~ 1.6733`` and ``scale ~ 1.0507``.

    Args:
      features: a float Tensor.
      name: op name (default ``Selu``).

    Returns:
      A Tensor of the shape and dtype of ``features``.
    """
    return _activation("Selu", features, name)


def softplus(features: Any, name: str | None = None) -> Tensor:
    """``log(exp(features) + 1)``, stable for large inputs (TF1's ``tf.nn.softplus``).

    Args:
      features: a float Tensor.
      name: op name (default ``Softplus``).

    Returns:
      A Tensor of the shape and dtype of ``features``.
    """
    return _activation("Softplus", features, name)


def softsign(features: Any, name: str | None = None) -> Tensor:
    """``features / (abs(features) + 1)`` (TF1's ``tf.nn.softsign``).

    Args:
      features: a float Tensor.
      name: op name (default ``Softsign``).

    Returns:
      A Tensor of the shape and dtype of ``features``.
    """
    return _activation("Softsign", features, name)


def leaky_relu(features: Any, alpha: float = 0.2, name: str | None = None) -> Tensor:
    """Leaky rectified linear: ``features`` if > 0 else ``alpha * features``.

    TF1's ``tf.nn.leaky_relu``: integer features are cast to float32 first.

    Args:
      features: a numeric Tensor.
      alpha: slope of the activation for negative inputs (a Python float).
      name: op name (default ``LeakyRelu``).

    Returns:
      A float Tensor of the shape of ``features``.
    """
    with op_scope(name, "LeakyRelu", [features]) as scope:
        x = to_tensor(features, name="features")
        if x.dtype.is_integer:
            x = math_ops.cast(x, _dt.float32)
        if isinstance(alpha, np.ndarray):
            alpha = alpha.item()
        return make("LeakyRelu", [x], {"alpha": float(alpha)}, name=scope)


def gelu(features: Any, approximate: bool = False, name: str | None = None) -> Tensor:
    """Gaussian error linear unit: ``features * Phi(features)`` (``tf.nn.gelu``).

    Args:
      features: a float Tensor.
      approximate: use the tanh approximation
        ``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))``.
      name: op name (default ``Gelu``).

    Returns:
      A Tensor of the shape and dtype of ``features``.

    Raises:
      TypeError: if ``features`` is not a float tensor.
    """
    return _activation("Gelu", features, name, {"approximate": bool(approximate)})


# --- softmax ------------------------------------------------------------------------
def _np_log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """Stable log-softmax: the max is subtracted before exponentiating."""
    x = x.astype(_acc_dtype(x), copy=False)
    shifted = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _np_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    x = x.astype(_acc_dtype(x), copy=False)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True, initial=-np.inf))
    return e / np.sum(e, axis=axis, keepdims=True)


def _expand_softmax(op: Any, logits: Tensor) -> list[Tensor]:
    """Softmax from primitives: ``exp(x - max) / sum(exp(x - max))``."""
    axis = op.get_attr("axis")
    m = array_ops.stop_gradient(math_ops.reduce_max(logits, axis, keepdims=True))
    e = math_ops.exp(math_ops.subtract(logits, m))
    return [math_ops.realdiv(e, math_ops.reduce_sum(e, axis, keepdims=True))]


def _expand_log_softmax(op: Any, logits: Tensor) -> list[Tensor]:
    """LogSoftmax from primitives: ``(x - max) - log(sum(exp(x - max)))``."""
    axis = op.get_attr("axis")
    m = array_ops.stop_gradient(math_ops.reduce_max(logits, axis, keepdims=True))
    shifted = math_ops.subtract(logits, m)
    lse = math_ops.log(math_ops.reduce_sum(math_ops.exp(shifted), axis, keepdims=True))
    return [math_ops.subtract(shifted, lse)]


class _SoftmaxOp(OpDef):
    """Normalizes over attr ``axis``; the output has the input's shape and dtype."""

    kind = OPAQUE

    def infer(self, op):
        x = op.inputs[0]
        rules.check_dtype(x, F, "input 'logits'")
        rules.require_rank_at_least(x, 1, "input 'logits'")
        normalize_axis(op.get_attr("axis"), x.shape.ndims, "axis")
        return [(x.dtype, x.shape)]


@register
class Softmax(_SoftmaxOp):
    composite = staticmethod(_expand_softmax)

    @staticmethod
    def grad(op, dy):
        # TF1's _SoftmaxGrad: (dy - sum(dy * s)) * s along the softmax axis.
        s = op.outputs[0]
        axis = op.get_attr("axis")
        return [math_ops.multiply(math_ops.subtract(dy, _sum_keepdims(dy * s, axis)), s)]

    def reference(self, op, inputs, ctx):
        x = inputs[0]
        return _np_softmax(x, op.get_attr("axis")).astype(x.dtype)


@register
class LogSoftmax(_SoftmaxOp):
    composite = staticmethod(_expand_log_softmax)

    @staticmethod
    def grad(op, dy):
        # TF1's _LogSoftmaxGrad: dy - sum(dy) * exp(log_softmax).
        axis = op.get_attr("axis")
        return [math_ops.subtract(dy, _sum_keepdims(dy, axis) * math_ops.exp(op.outputs[0]))]

    def reference(self, op, inputs, ctx):
        x = inputs[0]
        return _np_log_softmax(x, op.get_attr("axis")).astype(x.dtype)


def _axis_alias(axis: Any, dim: Any, default: int = -1) -> int:
    if axis is not None and dim is not None:
        raise errors.GraphValueError(None, None, "Cannot specify both 'axis' and 'dim'")
    a = axis if axis is not None else dim
    if a is None:
        return default
    if is_tensor_like(a):
        v = constant_value(to_tensor(a))
        if v is None:
            raise errors.ShapeError(None, None, "axis must be known when the graph is built")
        a = v
    return int(a)


def _softmax_fn(op_type: str, logits: Any, axis: Any, name: str | None, dim: Any) -> Tensor:
    a = _axis_alias(axis, dim)
    with op_scope(name, op_type, [logits]) as scope:
        x = to_tensor(logits, name="logits")
        r = x.shape.ndims
        if r is not None and r >= 1:
            a = normalize_axis(a, r, f"{op_type} axis")
        return make(op_type, [x], {"axis": a}, name=scope)


def softmax(logits: Any, axis: int | None = None, name: str | None = None,
            dim: int | None = None) -> Tensor:
    """Softmax activations: ``exp(logits) / reduce_sum(exp(logits), axis)`` (``tf.nn.softmax``).

    Computed stably (the max along ``axis`` is subtracted first), so logits of
    1e4 give finite results; a NaN or +inf in a slice makes that slice NaN, as TF.

    Args:
      logits: a non-empty float Tensor (float16, float32 or float64).
      axis: the dimension softmax is performed on; default -1, the last.
      name: op name (default ``Softmax``).
      dim: deprecated alias for ``axis``.

    Returns:
      A Tensor of the shape and dtype of ``logits``.

    Raises:
      ValueError: if ``axis`` is out of range or ``logits`` is a scalar.
      TypeError: if ``logits`` is not a float tensor.
    """
    return _softmax_fn("Softmax", logits, axis, name, dim)


def log_softmax(logits: Any, axis: int | None = None, name: str | None = None,
                dim: int | None = None) -> Tensor:
    """Log-softmax: ``logits - log(reduce_sum(exp(logits), axis))`` (``tf.nn.log_softmax``).

    Args:
      logits: a non-empty float Tensor (float16, float32 or float64).
      axis: the dimension it is performed on; default -1, the last.
      name: op name (default ``LogSoftmax``).
      dim: deprecated alias for ``axis``.

    Returns:
      A Tensor of the shape and dtype of ``logits``.

    Raises:
      ValueError: if ``axis`` is out of range or ``logits`` is a scalar.
      TypeError: if ``logits`` is not a float tensor.
    """
    return _softmax_fn("LogSoftmax", logits, axis, name, dim)


# --- bias_add / l2_loss ---------------------------------------------------------------
@register
class BiasAdd(OpDef):
    """Adds 1-D ``bias`` along the channel dim: last (NHWC) or 1 (NCHW)."""

    kind = BROADCAST

    @staticmethod
    def grad(op, dy):
        # TF1's _BiasAddGrad: the value's gradient passes through; the bias's is
        # summed over every dim but the channels (the BiasAddGrad op).
        return [dy, _bias_add_grad(dy, op.get_attr("data_format"))]

    def infer(self, op):
        x, b = op.inputs
        rules.check_dtype(x, NUM, "input 'value'")
        d = rules.same_dtype(x, b)
        fmt = op.get_attr("data_format")
        if fmt not in _FORMATS:
            raise shape_error(f"data_format must be 'NHWC' or 'NCHW', got {fmt!r}")
        rules.require_rank_at_least(x, 3 if fmt == "NCHW" else 2, "input 'value'")
        rules.require_rank(b, 1, "input 'bias'")
        dims = x.shape.values
        if dims is None:
            return [(d, unknown_shape())]
        c = 1 if fmt == "NCHW" else len(dims) - 1
        nb = b.shape.values[0] if b.shape.ndims == 1 else None
        if dims[c] is not None and nb is not None and dims[c] != nb:
            raise shape_error(f"Dimensions must be equal, but are {dims[c]} and {nb}: the bias "
                              f"{b.name} of shape {b.shape} must match dimension {c} (the "
                              f"channels in {fmt}) of value {x.name} of shape {x.shape}")
        out = list(dims)
        out[c] = dims[c] if dims[c] is not None else nb
        return [(d, TensorShape(out))]

    def reference(self, op, inputs, ctx):
        x, b = inputs
        c = 1 if op.get_attr("data_format") == "NCHW" else x.ndim - 1
        if b.shape[0] != x.shape[c]:
            raise _invalid(f"Must provide as many biases as the channel dimension of the input "
                           f"tensor: {b.shape[0]} vs. {x.shape[c]} in {list(x.shape)}")
        shape = [1] * x.ndim
        shape[c] = -1
        return x + b.reshape(shape)


@register
class BiasAddGrad(OpDef):
    """The bias gradient of BiasAdd: ``out_backprop`` summed over all dims but the channels.

    Its own gradient broadcasts the incoming 1-D gradient back along the
    channel dim (TF1's ``_BiasAddGradGrad``, with broadcast_to for tile).
    """

    kind = REDUCTION

    @staticmethod
    def grad(op, dg):
        dy = op.inputs[0]
        fmt = op.get_attr("data_format")
        g = dg
        if fmt == "NCHW":
            r = dy.shape.ndims
            if r is not None:
                g = array_ops.reshape(dg, [-1] + [1] * (r - 2))
            else:
                ones = array_ops.fill(array_ops.reshape(array_ops.rank(dy) - 2, [1]), 1)
                g = array_ops.reshape(dg, array_ops.concat([[-1], ones], 0))
        from graphflow.ops.broadcast_ops import _shape_of, broadcast_to

        return [broadcast_to(g, _shape_of(dy))]

    def infer(self, op):
        dy = op.inputs[0]
        rules.check_dtype(dy, NUM, "input 'out_backprop'")
        fmt = op.get_attr("data_format")
        if fmt not in _FORMATS:
            raise shape_error(f"data_format must be 'NHWC' or 'NCHW', got {fmt!r}")
        rules.require_rank_at_least(dy, 3 if fmt == "NCHW" else 2, "input 'out_backprop'")
        dims = dy.shape.values
        c = None if dims is None else dims[1 if fmt == "NCHW" else -1]
        return [(dy.dtype, TensorShape([c]))]

    def reference(self, op, inputs, ctx):
        dy = inputs[0]
        return _sum_but(dy, 1 if op.get_attr("data_format") == "NCHW" else dy.ndim - 1)


def _sum_but(dy: np.ndarray, c: int) -> np.ndarray:
    """BiasAddGrad's sum of ``dy`` over every axis but ``c``."""
    axes = tuple(i for i in range(dy.ndim) if i != c)
    return np.sum(dy.astype(_acc_dtype(dy), copy=False), axis=axes).astype(dy.dtype)


def conv_bias_grad(dy: np.ndarray, bias_op: str, keep_dims: bool) -> np.ndarray:
    """The bias gradient of a ``_Conv2DBackpropFilterWithBias`` from its NHWC
    out_backprop, as the op it replaced (``Sum`` or ``BiasAddGrad``) computes it."""
    if bias_op == "BiasAddGrad":
        return _sum_but(dy, 3)
    return _op_def.lookup("Sum").reduce(dy, (0, 1, 2), keep_dims)


def _bias_add_grad(out_backprop: Tensor, data_format: str, name: str | None = None) -> Tensor:
    """Builds a ``BiasAddGrad`` op (TF's ``gen_nn_ops.bias_add_grad``)."""
    with op_scope(name, "BiasAddGrad", [out_backprop]) as scope:
        return make("BiasAddGrad", [out_backprop], {"data_format": data_format}, name=scope)


def bias_add(value: Any, bias: Any, data_format: str | None = None,
             name: str | None = None) -> Tensor:
    """Adds ``bias`` to ``value`` along its channel dimension (TF1's ``tf.nn.bias_add``).

    A special case of ``gf.add`` where ``bias`` is 1-D; it broadcasts against
    the last dimension (``N...C``) or dimension 1 (``NC...``).

    Args:
      value: a numeric Tensor of rank >= 2 (>= 3 for ``NC...``).
      bias: a 1-D Tensor of value's dtype whose size is value's channel count.
      data_format: ``"N...C"`` (default, e.g. ``"NHWC"``) or ``"NC..."`` (e.g. ``"NCHW"``).
      name: op name (default ``BiasAdd``).

    Returns:
      A Tensor of the shape and dtype of ``value``.

    Raises:
      ValueError: for a bad data_format or shapes that do not fit.
      TypeError: if the dtypes differ.
    """
    if data_format is None:
        fmt = "NHWC"
    elif data_format.startswith("NC"):
        fmt = "NCHW"
    elif data_format.startswith("N") and data_format.endswith("C"):
        fmt = "NHWC"
    else:
        raise errors.GraphValueError(None, None, f"bias_add: data_format must be of the form "
                                                 f"`N...C` or `NC...`, got {data_format!r}")
    with op_scope(name, "BiasAdd", [value, bias]) as scope:
        x = to_tensor(value, name="input")
        b = to_tensor(bias, dtype=x.dtype if not is_tensor_like(bias) else None, name="bias")
        return make("BiasAdd", [x, b], {"data_format": fmt}, name=scope)


def _expand_l2_loss(op: Any, t: Tensor) -> list[Tensor]:
    """L2Loss from primitives: ``reduce_sum(square(t)) / 2``."""
    s = math_ops.reduce_sum(math_ops.square(t))
    return [math_ops.realdiv(s, np.array(2, t.dtype.np))]


@register
class L2Loss(OpDef):
    """``sum(t ** 2) / 2`` as a scalar."""

    kind = REDUCTION
    composite = staticmethod(_expand_l2_loss)

    @staticmethod
    def grad(op, dy):
        return [math_ops.multiply(op.inputs[0], dy)]  # TF1's _L2LossGrad

    def infer(self, op):
        t = op.inputs[0]
        rules.check_dtype(t, F, "input 't'")
        return [(t.dtype, TensorShape([]))]

    def reference(self, op, inputs, ctx):
        t = inputs[0]
        acc = t.astype(_acc_dtype(t), copy=False)
        return (np.sum(np.square(acc)) / 2).astype(t.dtype)


def l2_loss(t: Any, name: str | None = None) -> Tensor:
    """Half the squared L2 norm of ``t``: ``sum(t ** 2) / 2`` (TF1's ``tf.nn.l2_loss``).

    Args:
      t: a float Tensor, typically a weight matrix.
      name: op name (default ``L2Loss``).

    Returns:
      A scalar Tensor of t's dtype.
    """
    with op_scope(name, "L2Loss", [t]) as scope:
        return make("L2Loss", [to_tensor(t, name="t")], name=scope)


# --- cross entropies ------------------------------------------------------------------
@register
class SoftmaxCrossEntropyWithLogits(OpDef):
    """Inputs ``(features, labels)`` of one (broadcast) shape, classes on the last dim.

    Outputs the loss (the shape without the class dim) and the backprop
    ``softmax(features) - labels`` (the full shape), as TF's op of that name;
    graphflow also accepts ranks other than 2.

    Gradient (TF1's ``_SoftmaxCrossEntropyWithLogitsGrad``): the features get
    ``d_loss[..., None] * backprop``, plus, when the backprop output itself is
    differentiated (second order), the softmax Jacobian applied to its gradient;
    the labels get ``-d_loss[..., None] * log_softmax(features)``. graphflow
    also passes the backprop output's gradient to the labels (``-d_backprop``;
    TF omits it, which makes TF's mixed second derivatives in labels zero).
    """

    kind = OPAQUE

    @staticmethod
    def grad(op, d_loss, d_backprop):
        from graphflow.autodiff import unbroadcast

        logits, labels = op.inputs
        g_logits = _broadcast_mul(d_loss, op.outputs[1])
        g_labels = _broadcast_mul(d_loss, math_ops.negative(log_softmax(logits)))
        if not _is_zeros(d_backprop):
            g_logits = math_ops.add(g_logits, _softmax_jvp(d_backprop, logits))
            g_labels = math_ops.subtract(g_labels, d_backprop)
        return [unbroadcast(g_logits, logits, labels), unbroadcast(g_labels, labels, logits)]

    def infer(self, op):
        logits, labels = op.inputs
        rules.check_dtype(logits, F, "input 'features'")
        d = rules.same_dtype(logits, labels)
        rules.require_rank_at_least(logits, 1, "input 'features'")
        rules.require_rank_at_least(labels, 1, "input 'labels'")
        shape = rules.broadcast(logits, labels)
        if shape.ndims is None:
            return [(d, unknown_shape()), (d, unknown_shape())]
        return [(d, shape[:-1]), (d, shape)]

    def reference(self, op, inputs, ctx):
        logits, labels = inputs
        try:
            logits, labels = np.broadcast_arrays(logits, labels)
        except ValueError:
            raise _invalid(f"logits and labels must be broadcastable: logits_size="
                           f"{list(logits.shape)} labels_size={list(labels.shape)}") from None
        log_p = _np_log_softmax(logits, -1)
        labels = labels.astype(log_p.dtype, copy=False)
        loss = -np.sum(labels * log_p, axis=-1)
        backprop = np.exp(log_p) - labels
        return [loss.astype(logits.dtype), backprop.astype(logits.dtype)]


@register
class SparseSoftmaxCrossEntropyWithLogits(OpDef):
    """Inputs ``(features [..., C], labels [...])``; labels index the class dim.

    Outputs the loss (labels' shape) and the backprop ``softmax - one_hot``
    (features' shape). A label outside ``[0, C)`` is an InvalidArgumentError
    at run time, as on TF's CPU.

    Gradient: the features get ``d_loss[..., None] * backprop`` plus the
    second-order term of the dense op (TF 2's rule; TF 1.15 raised an error
    on second derivatives instead); the integer labels get None.
    """

    kind = OPAQUE

    @staticmethod
    def grad(op, d_loss, d_backprop):
        logits = op.inputs[0]
        g = _broadcast_mul(d_loss, op.outputs[1])
        if not _is_zeros(d_backprop):
            g = math_ops.add(g, _softmax_jvp(d_backprop, logits))
        return [g, None]

    def infer(self, op):
        logits, labels = op.inputs
        rules.check_dtype(logits, F, "input 'features'")
        rules.check_dtype(labels, LABEL_INTS, "input 'labels'")
        rules.require_rank_at_least(logits, 1, "input 'features'")
        fr, lr = logits.shape.ndims, labels.shape.ndims
        if fr is not None and lr is not None and lr != fr - 1:
            raise shape_error(f"Rank mismatch: Rank of labels (received {lr}) should equal rank "
                              f"of logits minus 1 (received {fr}); labels {labels.name} has "
                              f"shape {labels.shape}, logits {logits.name} has shape "
                              f"{logits.shape}")
        if fr is None:
            batch = labels.shape
            classes: Any = None
        else:
            batch = logits.shape[:-1]
            classes = logits.shape.values[-1]
            if not batch.is_compatible_with(labels.shape):
                raise shape_error(
                    f"Shape mismatch: The shape of labels (received {labels.shape}) should "
                    f"equal the shape of logits except for the last dimension (received "
                    f"{logits.shape})")
            batch = batch.merge_with(labels.shape)
        full = batch.concatenate([classes]) if batch.ndims is not None else unknown_shape()
        return [(logits.dtype, batch), (logits.dtype, full)]

    def reference(self, op, inputs, ctx):
        logits, labels = inputs
        if labels.shape != logits.shape[:-1]:
            raise _invalid(f"labels shape {list(labels.shape)} must equal logits shape "
                           f"{list(logits.shape)} without its last dimension")
        n = logits.shape[-1]
        bad = (labels < 0) | (labels >= n)
        if np.any(bad):
            shown = " ".join(str(v) for v in labels.ravel()[:20])
            more = " ..." if labels.size > 20 else ""
            raise _invalid(f"Received a label value of {labels[bad].ravel()[0]} which is "
                           f"outside the valid range of [0, {n}).  Label values: {shown}{more}")
        log_p = _np_log_softmax(logits, -1)
        idx = labels[..., None].astype(np.intp)
        picked = np.take_along_axis(log_p, idx, axis=-1)
        backprop = np.exp(log_p)
        np.put_along_axis(backprop, idx, np.take_along_axis(backprop, idx, axis=-1) - 1, -1)
        return [(-picked[..., 0]).astype(logits.dtype), backprop.astype(logits.dtype)]


@register
class SoftmaxCrossEntropyMean(OpDef):
    """Made by the compiler only (the ``remap`` pass): the mean of a softmax cross
    entropy over all of its loss, and the gradient the mean's and the cross entropy's
    gradient functions build for the logits, as one op.

    Inputs ``(features [..., C], labels, upstream)``: the cross entropy's inputs (attr
    ``xent`` names the op: sparse labels or a distribution) and the mean's upstream
    gradient (one element). Outputs ``(mean loss [], features gradient [..., C])``, and
    with attr ``sum_axis`` (the batch dims) that gradient's Sum over them ``[C]``.
    The mean is the Mean op's over attr ``axis`` (all of the loss). The gradient is
    what the replaced ops compute, in their order and dtype: the count
    ``max(cast(size(loss)) / divisor, floor)`` (attrs: the size's dtype and the mean
    gradient's constants), then ``(broadcast(upstream) / count)[..., None] * backprop``; the
    reference runs exactly those NumPy operations, so it matches them bit for bit.
    """

    type = "_SoftmaxCrossEntropyMean"
    kind = OPAQUE
    grad = None

    def infer(self, op):
        logits = op.inputs[0]
        rules.check_dtype(logits, F, "input 'features'")
        out = [(logits.dtype, TensorShape([])), (logits.dtype, logits.shape)]
        if op.get_attr("sum_axis") is not None:
            out.append((logits.dtype, logits.shape[-1:] if logits.shape.ndims is not None
                        else unknown_shape()))
        return out

    def reference(self, op, inputs, ctx):
        logits, labels, upstream = inputs
        xent = _op_def.lookup(op.get_attr("xent"))
        loss, backprop = xent.reference(op, [logits, labels], ctx)
        d = loss.dtype
        mean = _op_def.lookup("Mean").reduce(loss, op.get_attr("axis"), False)
        size = np.array(loss.size, dtype=np.dtype(op.get_attr("size_dtype")))
        count = np.maximum(np.true_divide(size.astype(d), np.array(op.get_attr("divisor"), d)),
                           np.array(op.get_attr("floor"), d))
        up = np.broadcast_to(upstream, loss.shape)
        g = np.multiply(np.expand_dims(np.true_divide(up, count), -1), backprop)
        g = g.astype(d, copy=False)
        out = [np.asarray(mean, d), g]
        if op.get_attr("sum_axis") is not None:
            out.append(_op_def.lookup("Sum").reduce(g, op.get_attr("sum_axis"), False))
        return out


def _ensure_xent_args(name: str, sentinel: Any, labels: Any, logits: Any) -> None:
    if sentinel is not None:
        raise errors.GraphValueError(None, None, f"Only call `{name}` with named arguments "
                                                 "(labels=..., logits=..., ...)")
    if labels is None or logits is None:
        raise errors.GraphValueError(None, None, f"{name}: both labels and logits must be "
                                                 "provided.")


def softmax_cross_entropy_with_logits_v2(labels: Any, logits: Any, axis: int | None = None,
                                         name: str | None = None,
                                         dim: int | None = None) -> Tensor:
    """Softmax cross entropy between ``logits`` and a distribution ``labels``.

    TF1's ``tf.nn.softmax_cross_entropy_with_logits_v2``: for each slice along
    ``axis``, ``-sum(labels * log_softmax(logits))``, computed stably (logits
    of 1e4 give finite results). Each row of ``labels`` should be a valid
    probability distribution. Gradients will flow into ``labels`` too.
    float16 logits are computed in float32 and the loss is cast back.

    Args:
      labels: a Tensor of logits' shape (or broadcastable to it); cast to
        logits' dtype.
      logits: a float Tensor of unscaled log probabilities.
      axis: the class dimension; default -1, the last.
      name: op name (default ``softmax_cross_entropy_with_logits``).
      dim: deprecated alias for ``axis``.

    Returns:
      A Tensor of logits' shape without ``axis``, of logits' dtype.

    Raises:
      ValueError: if the shapes do not fit or ``axis`` is out of range.
      TypeError: if ``logits`` is not a float tensor.
    """
    a = _axis_alias(axis, dim)
    with op_scope(name, "softmax_cross_entropy_with_logits", [logits, labels]) as scope:
        x = to_tensor(logits, name="logits")
        y = to_tensor(labels, name="labels")
        half = x.dtype is _dt.float16
        precise = math_ops.cast(x, _dt.float32) if half else x
        if y.dtype is not precise.dtype:
            y = math_ops.cast(y, precise.dtype)
        r = precise.shape.ndims
        if r is None and a != -1:
            raise errors.ShapeError(None, None, "softmax_cross_entropy_with_logits: an axis "
                                                "other than -1 needs logits of known rank")
        if r is not None and r >= 1:
            a = normalize_axis(a, r, "softmax_cross_entropy_with_logits axis")
            if a != r - 1:
                perm = [i for i in range(r) if i != a] + [a]
                precise = array_ops.transpose(precise, perm)
                y = array_ops.transpose(y, perm)
        cost, _ = make("SoftmaxCrossEntropyWithLogits", [precise, y],
                       name=None if half else scope)
        if half:
            return math_ops.cast(cost, _dt.float16, name=scope)
        return cost


def softmax_cross_entropy_with_logits(_sentinel: Any = None, labels: Any = None,
                                      logits: Any = None, dim: int = -1,
                                      name: str | None = None,
                                      axis: int | None = None) -> Tensor:
    """Softmax cross entropy; no gradient flows into ``labels`` (TF1's deprecated form).

    TF1's ``tf.nn.softmax_cross_entropy_with_logits``: ``labels`` pass through
    ``stop_gradient``, then as :func:`softmax_cross_entropy_with_logits_v2`.

    Args:
      _sentinel: used to prevent positional arguments; leave None.
      labels: a distribution over classes of logits' shape.
      logits: a float Tensor of unscaled log probabilities.
      dim: the class dimension; default -1, the last.
      name: op name (default ``softmax_cross_entropy_with_logits_sg``).
      axis: alias for ``dim``.

    Returns:
      A Tensor of logits' shape without the class dimension.

    Raises:
      ValueError: if called with positional arguments, without labels or
        logits, or with shapes that do not fit.
    """
    _ensure_xent_args("softmax_cross_entropy_with_logits", _sentinel, labels, logits)
    if axis is not None:
        dim = axis
    with op_scope(name, "softmax_cross_entropy_with_logits_sg", [logits, labels]) as scope:
        labels = array_ops.stop_gradient(labels, name="labels_stop_gradient")
    return softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits, axis=dim,
                                                name=scope)


def sparse_softmax_cross_entropy_with_logits(_sentinel: Any = None, labels: Any = None,
                                             logits: Any = None,
                                             name: str | None = None) -> Tensor:
    """Softmax cross entropy between ``logits`` and integer class ``labels``.

    TF1's ``tf.nn.sparse_softmax_cross_entropy_with_logits``: for labels of
    rank r and logits of rank r+1, ``-log_softmax(logits)[..., labels]``,
    computed stably. float16 logits are computed in float32.

    Args:
      _sentinel: used to prevent positional arguments; leave None.
      labels: an int32/int64 Tensor of logits' shape without the last dim,
        each entry in ``[0, num_classes)``.
      logits: a float Tensor of unscaled log probabilities ``[..., num_classes]``.
      name: op name (default ``SparseSoftmaxCrossEntropyWithLogits``).

    Returns:
      A Tensor of labels' shape and logits' dtype.

    Raises:
      ValueError: if ranks or shapes do not fit (at build time).
      TypeError: for bad dtypes.
      gf.errors.InvalidArgumentError: at run time, for a label out of range.
    """
    _ensure_xent_args("sparse_softmax_cross_entropy_with_logits", _sentinel, labels, logits)
    with op_scope(name, "SparseSoftmaxCrossEntropyWithLogits", [labels, logits]) as scope:
        y = to_tensor(labels, name="labels")
        x = to_tensor(logits, name="logits")
        if x.shape.ndims == 0:
            raise errors.ShapeError(None, None, f"sparse_softmax_cross_entropy_with_logits: "
                                                f"logits cannot be scalars - received shape "
                                                f"{x.shape}")
        half = x.dtype is _dt.float16
        precise = math_ops.cast(x, _dt.float32) if half else x
        cost, _ = make("SparseSoftmaxCrossEntropyWithLogits", [precise, y],
                       name=None if half else scope)
        if half:
            return math_ops.cast(cost, _dt.float16, name=scope)
        return cost


def sigmoid_cross_entropy_with_logits(_sentinel: Any = None, labels: Any = None,
                                      logits: Any = None, name: str | None = None) -> Tensor:
    """Sigmoid cross entropy of independent binary ``labels`` (TF1's function of that name).

    With ``x = logits`` and ``z = labels``, ``z * -log(sigmoid(x)) + (1 - z) *
    -log(1 - sigmoid(x))``, built from primitives in TF1's stable form
    ``max(x, 0) - x * z + log1p(exp(-abs(x)))``.

    Args:
      _sentinel: used to prevent positional arguments; leave None.
      labels: a Tensor of logits' shape and dtype, values in [0, 1].
      logits: a float Tensor.
      name: op name (default ``logistic_loss``).

    Returns:
      A Tensor of logits' shape: the elementwise logistic losses.

    Raises:
      ValueError: if logits and labels differ in shape.
    """
    _ensure_xent_args("sigmoid_cross_entropy_with_logits", _sentinel, labels, logits)
    with op_scope(name, "logistic_loss", [logits, labels]) as scope:
        x = to_tensor(logits, name="logits")
        z = to_tensor(labels, dtype=None if is_tensor_like(labels) else x.dtype, name="labels")
        if not z.shape.is_compatible_with(x.shape):
            raise errors.ShapeError(None, None, f"logits and labels must have the same shape "
                                                f"({x.shape} vs {z.shape})")
        zeros = array_ops.zeros_like(x, dtype=x.dtype)
        cond = math_ops.greater_equal(x, zeros)
        relu_logits = math_ops.where(cond, x, zeros)
        neg_abs_logits = math_ops.where(cond, math_ops.negative(x), x)
        return math_ops.add(math_ops.subtract(relu_logits, math_ops.multiply(x, z)),
                            math_ops.log1p(math_ops.exp(neg_abs_logits)), name=scope)


# --- windows: convolution and pooling ---------------------------------------------------
def _spatial_axes(fmt: str) -> tuple[int, int, int]:
    """Indices of (height, width, channels) in a 4-D tensor of ``fmt``."""
    return (1, 2, 3) if fmt == "NHWC" else (2, 3, 1)


def _check_format(fmt: Any) -> str:
    if fmt not in _FORMATS:
        raise shape_error(f"data_format must be 'NHWC' or 'NCHW', got {fmt!r}")
    return fmt


def _check_window(values: Any, what: str, fmt: str) -> tuple[int, int]:
    """Validates a 4-element strides/ksize/dilations attr; returns its (h, w) entries."""
    v = list(values)
    if len(v) != 4:
        raise shape_error(f"{what} must have 4 elements (one per dimension of {fmt}), got {v}")
    h, w, c = _spatial_axes(fmt)
    if v[0] != 1 or v[c] != 1:
        raise shape_error(f"{what} {v}: the current implementation does not support {what} "
                          f"in the batch and depth dimensions")
    if v[h] < 1 or v[w] < 1:
        raise shape_error(f"{what} {v} must be >= 1 in the spatial dimensions")
    return v[h], v[w]


def _check_padding(op: Any, fmt: str, allow_explicit: bool) -> tuple[str, tuple, tuple]:
    """Validates attr ``padding`` (and ``explicit_paddings``); returns (padding, ph, pw)."""
    padding = op.get_attr("padding")
    allowed = ("SAME", "VALID", "EXPLICIT") if allow_explicit else ("SAME", "VALID")
    if padding not in allowed:
        extra = " or a list of 4 [before, after] pairs" if allow_explicit else ""
        raise shape_error(f"padding must be 'SAME' or 'VALID'{extra}; got {padding!r}")
    if padding != "EXPLICIT":
        return padding, (0, 0), (0, 0)
    p = list(op.get_attr("explicit_paddings"))
    h, w, c = _spatial_axes(fmt)
    if len(p) != 8 or any(int(i) < 0 for i in p):
        raise shape_error(f"explicit paddings must be 4 pairs of non-negative ints, got {p}")
    if p[0] or p[1] or p[2 * c] or p[2 * c + 1]:
        raise shape_error(f"explicit paddings {p} must be 0 in the batch and depth dimensions")
    return padding, (p[2 * h], p[2 * h + 1]), (p[2 * w], p[2 * w + 1])


def _out_size(size: int, k: int, stride: int, dilation: int, padding: str,
              pads: tuple[int, int]) -> tuple[int, int, int]:
    """(output size, pad before, pad after) of one spatial dim, by TF's rules.

    SAME: ``out = ceil(size / stride)``, ``pad_total = max((out - 1) * stride +
    effective_k - size, 0)``, the smaller half before. VALID/EXPLICIT:
    ``out = (size + pads - effective_k) // stride + 1``, negative if the window
    does not fit.
    """
    ek = (k - 1) * dilation + 1
    if padding == "SAME":
        out = -(-size // stride)
        total = max((out - 1) * stride + ek - size, 0)
        return out, total // 2, total - total // 2
    before, after = pads
    span = size + before + after - ek
    return (span // stride + 1 if span >= 0 else -1), before, after


def _static_out(size: int | None, k: int | None, stride: int, dilation: int, padding: str,
                pads: tuple[int, int], what: str) -> int | None:
    if size is None or (k is None and padding != "SAME"):
        return None
    out = _out_size(size, k or 1, stride, dilation, padding, pads)[0]
    if out < 0:
        ek = (k - 1) * dilation + 1
        raise shape_error(f"Negative dimension size caused by subtracting the {what} window "
                          f"of effective size {ek} from the input size {size} "
                          f"(padding {padding}{'' if padding != 'EXPLICIT' else ' ' + str(pads)})")
    return out


def _windows(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int,
             oh: int, ow: int) -> np.ndarray:
    """A strided view ``[N, oh, ow, C, kh, kw]`` of the windows of padded NHWC ``x``."""
    ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    v = sliding_window_view(x, (ekh, ekw), axis=(1, 2))
    return v[:, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw, :, ::dh, ::dw]


def _to_nhwc(x: np.ndarray, fmt: str) -> np.ndarray:
    return x if fmt == "NHWC" else x.transpose(0, 2, 3, 1)


def _from_nhwc(x: np.ndarray, fmt: str) -> np.ndarray:
    return x if fmt == "NHWC" else x.transpose(0, 3, 1, 2)


def _static_dims(t: Tensor, fmt: str) -> tuple[Any, Any, Any, Any]:
    """(N, H, W, C) static dims of a rank-4 (or unknown rank) tensor in ``fmt``."""
    dims = t.shape.values or (None,) * 4
    h, w, c = _spatial_axes(fmt)
    return dims[0], dims[h], dims[w], dims[c]


def _shape_in(fmt: str, n: Any, h: Any, w: Any, c: Any) -> TensorShape:
    return TensorShape([n, h, w, c] if fmt == "NHWC" else [n, c, h, w])


def _run_out(size: int, k: int, stride: int, dilation: int, padding: str,
             pads: tuple[int, int]) -> tuple[int, int, int]:
    out, before, after = _out_size(size, k, stride, dilation, padding, pads)
    if out < 0:
        raise _invalid(f"Computed output size would be negative: {out} [input_size: {size}, "
                       f"effective_filter_size: {(k - 1) * dilation + 1}, stride: {stride}]")
    return out, before, after


class _ConvOp(OpDef):
    """Conv2D and its two backprops: one set of attrs, one set of checks."""

    kind = OPAQUE

    def config(self, op: Any) -> tuple:
        fmt = _check_format(op.get_attr("data_format"))
        strides = _check_window(op.get_attr("strides"), "strides", fmt)
        dilations = _check_window(op.get_attr("dilations"), "dilations", fmt)
        padding, ph, pw = _check_padding(op, fmt, allow_explicit=True)
        return fmt, strides, dilations, padding, ph, pw

    def check_shapes(self, op: Any, x: TensorShape, f: TensorShape, dy: TensorShape | None
                     ) -> TensorShape:
        """Checks the input/filter/output shapes of a convolution; returns the output's."""
        fmt, (sh, sw), (dh, dw), padding, ph, pw = self.config(op)
        dims = x.values or (None,) * 4
        h, w, c = _spatial_axes(fmt)
        n, h, w, c = dims[0], dims[h], dims[w], dims[c]
        kh, kw, fc, oc = f.values or (None,) * 4
        if kh == 0 or kw == 0:
            raise shape_error(f"filter of shape {f} has an empty spatial window")
        if c is not None and fc is not None and c != fc:
            raise shape_error(f"input depth must equal the filter's input depth, but are {c} "
                              f"and {fc}: input of shape {x} ({fmt}), filter of shape {f} "
                              f"[height, width, in, out]")
        oh = _static_out(h, kh, sh, dh, padding, ph, "filter")
        ow = _static_out(w, kw, sw, dw, padding, pw, "filter")
        out = _shape_in(fmt, n, oh, ow, oc)
        if dy is not None and not out.is_compatible_with(dy):
            raise shape_error(f"out_backprop of shape {dy} does not match the convolution "
                              f"output {out} of an input of shape {x} ({fmt}) and a filter "
                              f"of shape {f}")
        return out

    def run_config(self, op: Any, x_shape: tuple, f_shape: tuple) -> tuple:
        """Run-time sizes: ``(kh, kw, c, oc, (sh, sw), (dh, dw), (oh, pt, pb), (ow, pl, pr))``."""
        fmt, (sh, sw), (dh, dw), padding, ph, pw = self.config(op)
        n, h, w, c = x_shape
        kh, kw, fc, oc = f_shape
        if c != fc:
            raise _invalid(f"input depth must be evenly divisible by filter depth: {c} vs {fc}")
        if kh == 0 or kw == 0:
            raise _invalid(f"filter of shape {list(f_shape)} has an empty spatial window")
        return (kh, kw, c, oc, (sh, sw), (dh, dw), _run_out(h, kh, sh, dh, padding, ph),
                _run_out(w, kw, sw, dw, padding, pw))


def _conv_attrs(op: Any) -> dict[str, Any]:
    return {k: op.get_attr(k) for k in ("strides", "padding", "explicit_paddings", "dilations",
                                        "data_format", "use_cudnn_on_gpu")}


def _shape_tensor(t: Tensor) -> Tensor:
    """``t``'s shape as an int32 tensor: a constant when static, else a Shape op."""
    if t.shape.is_fully_defined():
        return to_tensor(np.array(t.shape.values, np.int32))
    return array_ops.shape(t)


def _sizes_nhwc(sizes: np.ndarray, what: str, fmt: str) -> tuple[int, int, int, int]:
    s = [int(v) for v in np.ravel(sizes)]
    if len(s) != 4 or any(v < 0 for v in s):
        raise _invalid(f"{what} must be 4 non-negative sizes, got {s}")
    return tuple(s) if fmt == "NHWC" else (s[0], s[2], s[3], s[1])


@register
class Conv2D(_ConvOp):
    """2-D convolution of ``input`` [N,H,W,C] (or NCHW) with ``filter`` [kh,kw,C,out].

    Gradient (TF1's ``_Conv2DGrad``): ``Conv2DBackpropInput`` for the input and
    ``Conv2DBackpropFilter`` for the filter, with the same attrs.
    """

    @staticmethod
    def grad(op, dy):
        x, f = op.inputs
        attrs = _conv_attrs(op)
        return [make("Conv2DBackpropInput", [_shape_tensor(x), f, dy], attrs),
                make("Conv2DBackpropFilter", [x, _shape_tensor(f), dy], attrs)]

    def infer(self, op):
        x, f = op.inputs
        rules.check_dtype(x, F, "input")
        d = rules.same_dtype(x, f)
        rules.require_rank(x, 4, "input")
        rules.require_rank(f, 4, "filter")
        fmt, (sh, sw), (dh, dw), padding, ph, pw = self.config(op)
        n, h, w, c = _static_dims(x, fmt)
        kh, kw, fc, oc = f.shape.values or (None,) * 4
        if kh == 0 or kw == 0:
            raise shape_error(f"filter {f.name} of shape {f.shape} has an empty spatial window")
        if c is not None and fc is not None and c != fc:
            raise shape_error(f"input depth must equal the filter's input depth, but are {c} "
                              f"and {fc}: input {x.name} of shape {x.shape} ({fmt}), filter "
                              f"{f.name} of shape {f.shape} [height, width, in, out]")
        oh = _static_out(h, kh, sh, dh, padding, ph, "filter")
        ow = _static_out(w, kw, sw, dw, padding, pw, "filter")
        return [(d, _shape_in(fmt, n, oh, ow, oc))]

    def reference(self, op, inputs, ctx):
        x, f = inputs
        fmt, (sh, sw), (dh, dw), padding, ph, pw = self.config(op)
        x = _to_nhwc(x, fmt)
        n, h, w, c = x.shape
        kh, kw, fc, oc = f.shape
        if c != fc:
            raise _invalid(f"input depth must be evenly divisible by filter depth: {c} vs {fc}")
        if kh == 0 or kw == 0:
            raise _invalid(f"filter of shape {list(f.shape)} has an empty spatial window")
        oh, pt, pb = _run_out(h, kh, sh, dh, padding, ph)
        ow, pl, pr = _run_out(w, kw, sw, dw, padding, pw)
        acc = _acc_dtype(x)
        if oh == 0 or ow == 0:
            out = np.zeros((n, oh, ow, oc), acc)
        else:
            xp = np.pad(x.astype(acc, copy=False), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
            win = _windows(xp, kh, kw, sh, sw, dh, dw, oh, ow)  # [N, oh, ow, C, kh, kw]
            out = np.tensordot(win, f.astype(acc, copy=False), axes=([3, 4, 5], [2, 0, 1]))
        return _from_nhwc(out.astype(x.dtype, copy=False), fmt)


@register
class Conv2DBackpropInput(_ConvOp):
    """The gradient of Conv2D for its input: inputs ``(input_sizes, filter, out_backprop)``.

    ``input_sizes`` is the 1-D int32 shape of Conv2D's input; the output has
    that shape. Equivalently, the transposed convolution of ``out_backprop``.
    Gradient (TF1's ``_Conv2DBackpropInputGrad``): the filter gets
    ``Conv2DBackpropFilter(grad, shape(filter), out_backprop)`` and
    ``out_backprop`` gets ``Conv2D(grad, filter)``.
    """

    @staticmethod
    def grad(op, g):
        _, f, dy = op.inputs
        attrs = _conv_attrs(op)
        return [None, make("Conv2DBackpropFilter", [g, _shape_tensor(f), dy], attrs),
                make("Conv2D", [g, f], attrs)]

    def infer(self, op):
        sizes, f, dy = op.inputs
        rules.check_dtype(sizes, (_dt.int32, _dt.int64), "input_sizes")
        rules.check_dtype(f, F, "filter")
        d = rules.same_dtype(f, dy)
        rules.require_rank(f, 4, "filter")
        rules.require_rank(dy, 4, "out_backprop")
        x = constant_value_as_shape(sizes)
        if x.ndims not in (None, 4):
            raise shape_error(f"input_sizes must have 4 elements, got shape {x}")
        x = x if x.ndims is not None else unknown_shape(4)
        fmt = self.config(op)[0]
        n = dy.shape.values[0] if dy.shape.ndims == 4 else None
        c = f.shape.values[2] if f.shape.ndims == 4 else None
        known = _shape_in(fmt, n, None, None, c)
        if not x.is_compatible_with(known):
            raise shape_error(f"input_sizes {x} ({fmt}) do not match the filter's input "
                              f"channels {c} and the out_backprop batch {n}")
        x = x.merge_with(known)
        self.check_shapes(op, x, f.shape, dy.shape)
        return [(d, x)]

    def reference(self, op, inputs, ctx):
        sizes, f, dy = inputs
        fmt = self.config(op)[0]
        n, h, w, c = _sizes_nhwc(sizes, "input_sizes", fmt)
        dy = _to_nhwc(dy, fmt)
        kh, kw, c, oc, (sh, sw), (dh, dw), (oh, pt, pb), (ow, pl, pr) = self.run_config(
            op, (n, h, w, c), f.shape)
        if dy.shape != (n, oh, ow, oc):
            raise _invalid(f"Conv2DBackpropInput: out_backprop has shape {list(dy.shape)}, "
                           f"expected {[n, oh, ow, oc]} (NHWC)")
        acc = _acc_dtype(dy)
        dxp = np.zeros((n, h + pt + pb, w + pl + pr, c), acc)
        if dy.size and c:
            dy_a, f_a = dy.astype(acc, copy=False), f.astype(acc, copy=False)
            for i in range(kh):  # one vectorised scatter per filter tap
                for j in range(kw):
                    r0, c0 = i * dh, j * dw
                    dxp[:, r0:r0 + (oh - 1) * sh + 1:sh, c0:c0 + (ow - 1) * sw + 1:sw] += (
                        dy_a @ f_a[i, j].T)
        dx = dxp[:, pt:pt + h, pl:pl + w]
        return _from_nhwc(dx.astype(dy.dtype), fmt)


@register
class Conv2DBackpropFilter(_ConvOp):
    """The gradient of Conv2D for its filter: inputs ``(input, filter_sizes, out_backprop)``.

    Gradient (TF1's ``_Conv2DBackpropFilterGrad``): the input gets
    ``Conv2DBackpropInput(shape(input), grad, out_backprop)`` and
    ``out_backprop`` gets ``Conv2D(input, grad)``.
    """

    @staticmethod
    def grad(op, g):
        x, _, dy = op.inputs
        attrs = _conv_attrs(op)
        return [make("Conv2DBackpropInput", [_shape_tensor(x), g, dy], attrs), None,
                make("Conv2D", [x, g], attrs)]

    def infer(self, op):
        x, sizes, dy = op.inputs
        rules.check_dtype(sizes, (_dt.int32, _dt.int64), "filter_sizes")
        rules.check_dtype(x, F, "input")
        d = rules.same_dtype(x, dy)
        rules.require_rank(x, 4, "input")
        rules.require_rank(dy, 4, "out_backprop")
        f = constant_value_as_shape(sizes)
        if f.ndims not in (None, 4):
            raise shape_error(f"filter_sizes must have 4 elements, got shape {f}")
        fmt = self.config(op)[0]
        c = _static_dims(x, fmt)[3]
        oc = _static_dims(dy, fmt)[3]
        known = TensorShape([None, None, c, oc])
        f = known if f.ndims is None else f
        if not f.is_compatible_with(known):
            raise shape_error(f"filter_sizes {f} do not match the input channels {c} and the "
                              f"out_backprop channels {oc}")
        f = f.merge_with(known)
        self.check_shapes(op, x.shape, f, dy.shape)
        return [(d, f)]

    def reference(self, op, inputs, ctx):
        x, sizes, dy = inputs
        fmt = self.config(op)[0]
        x, dy = _to_nhwc(x, fmt), _to_nhwc(dy, fmt)
        fs = tuple(int(v) for v in np.ravel(sizes))
        if len(fs) != 4 or any(v < 0 for v in fs):
            raise _invalid(f"filter_sizes must be 4 non-negative sizes, got {list(fs)}")
        kh, kw, c, oc, (sh, sw), (dh, dw), (oh, pt, pb), (ow, pl, pr) = self.run_config(
            op, x.shape, fs)
        n = x.shape[0]
        if dy.shape != (n, oh, ow, oc):
            raise _invalid(f"Conv2DBackpropFilter: out_backprop has shape {list(dy.shape)}, "
                           f"expected {[n, oh, ow, oc]} (NHWC)")
        acc = _acc_dtype(x)
        if oh == 0 or ow == 0:
            return np.zeros(fs, x.dtype)
        xp = np.pad(x.astype(acc, copy=False), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
        win = _windows(xp, kh, kw, sh, sw, dh, dw, oh, ow)  # [N, oh, ow, C, kh, kw]
        df = np.tensordot(win, dy.astype(acc, copy=False), axes=([0, 1, 2], [0, 1, 2]))
        return df.transpose(1, 2, 0, 3).astype(x.dtype)


@register
class Conv2DBackpropFilterWithBias(Conv2DBackpropFilter):
    """Made by the compiler only (the ``remap`` pass): Conv2DBackpropFilter and the
    gradient of a bias added to the convolution's output, ``Sum(out_backprop, axis=(0, 1,
    2), keep_dims)`` or ``BiasAddGrad(out_backprop)`` (NHWC; attrs ``bias_op`` and
    ``keep_dims`` say which), as one op that reads out_backprop once. Outputs ``(filter
    gradient, bias gradient [out] or [1, 1, 1, out])``; the reference computes both as
    the two ops do.
    """

    type = "_Conv2DBackpropFilterWithBias"
    grad = None

    def infer(self, op):
        ((d, f),) = super().infer(op)
        oc = f.dims[3].value
        return [(d, f), (d, TensorShape([1, 1, 1, oc] if op.get_attr("keep_dims") else [oc]))]

    def reference(self, op, inputs, ctx):
        df = super().reference(op, inputs, ctx)
        return [df, conv_bias_grad(inputs[2], op.get_attr("bias_op"), op.get_attr("keep_dims"))]


def _get_sequence(value: Any, what: str, fmt: str) -> tuple[int, ...]:
    """TF1's ``_get_sequence``: an int, or 1, 2 or 4 ints, as a 4-tuple for ``fmt``."""
    if value is None:
        value = [1]
    elif is_tensor_like(value):
        v = constant_value(to_tensor(value))
        if v is None:
            raise errors.GraphValueError(None, None, f"{what} must be known when the graph is "
                                                     "built")
        value = v.tolist()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, Sequence):
        value = [value]
    try:
        v = [int(i) for i in value]
    except (TypeError, ValueError):
        raise errors.GraphTypeError(None, None, f"{what} must be ints, got {value!r}") from None
    if len(v) == 4:
        return tuple(v)
    if len(v) == 1:
        v = v * 2
    elif len(v) != 2:
        raise errors.GraphValueError(None, None, f"{what} should be of length 1, 2 or 4 but "
                                                 f"was {len(v)}")
    return (1, v[0], v[1], 1) if fmt == "NHWC" else (1, 1, v[0], v[1])


def _data_format(data_format: str | None, what: str) -> str:
    fmt = "NHWC" if data_format is None else data_format
    if fmt not in _FORMATS:
        raise errors.GraphValueError(None, None, f"{what}: data_format must be 'NHWC' or "
                                                 f"'NCHW', got {data_format!r}")
    return fmt


def _convert_padding(padding: Any, what: str) -> tuple[str, tuple[int, ...]]:
    """A padding string, or TF1's explicit ``[[0, 0], [top, bottom], [left, right], [0, 0]]``."""
    if isinstance(padding, str):
        return padding, ()
    try:
        pairs = [[int(a) for a in pair] for pair in padding]
    except (TypeError, ValueError):
        raise errors.GraphValueError(None, None, f"{what}: padding must be 'SAME', 'VALID' "
                                                 f"or a list of 4 pairs, got {padding!r}") from None
    if len(pairs) != 4 or any(len(p) != 2 for p in pairs):
        raise errors.GraphValueError(None, None, f"{what}: explicit padding must be a list of "
                                                 f"4 pairs, got {padding!r}")
    return "EXPLICIT", tuple(i for p in pairs for i in p)


def conv2d(input: Any, filter: Any = None, strides: Any = None, padding: Any = None,
           use_cudnn_on_gpu: bool = True, data_format: str = "NHWC",
           dilations: Any = (1, 1, 1, 1), name: str | None = None,
           filters: Any = None) -> Tensor:
    """2-D convolution (cross-correlation, as TF) of ``input`` with ``filter``.

    TF1's ``tf.nn.conv2d``: ``output[b, i, j, k] = sum_{di, dj, q}
    input[b, strides[1] * i + dilations[1] * di - pad_top, strides[2] * j +
    dilations[2] * dj - pad_left, q] * filter[di, dj, q, k]``, zero outside
    the input. With ``"SAME"`` padding the output has ``ceil(in / stride)``
    rows and ``pad_total = max((out - 1) * stride + (k - 1) * dilation + 1 -
    in, 0)``, the smaller half before; with ``"VALID"`` no padding.

    Args:
      input: a float Tensor ``[batch, in_height, in_width, in_channels]``
        (``[batch, in_channels, in_height, in_width]`` for NCHW).
      filter: a Tensor of input's dtype ``[height, width, in_channels, out_channels]``.
      strides: an int or a list of 1, 2 or 4 ints; batch and depth strides must be 1.
      padding: ``"SAME"``, ``"VALID"``, or explicit ``[[0, 0], [top, bottom],
        [left, right], [0, 0]]`` (in data_format's order).
      use_cudnn_on_gpu: accepted for TF1 compatibility.
      data_format: ``"NHWC"`` (default) or ``"NCHW"``.
      dilations: an int or a list of 1, 2 or 4 ints; dilation rates of the filter.
      name: op name (default ``Conv2D``).
      filters: alias for ``filter``.

    Returns:
      A Tensor of input's dtype ``[batch, out_height, out_width, out_channels]``.

    Raises:
      ValueError: for channel mismatches, bad strides/dilations/padding, or a
        VALID window larger than the (known) input.
      TypeError: for non-float or mismatched dtypes.
    """
    if filter is not None and filters is not None:
        raise errors.GraphValueError(None, None, "conv2d: cannot specify both 'filter' and "
                                                 "'filters'")
    filt = filter if filter is not None else filters
    if filt is None or padding is None:
        raise errors.GraphValueError(None, None, "conv2d: filter and padding must be given")
    fmt = _data_format(data_format, "conv2d")
    pad, explicit = _convert_padding(padding, "conv2d")
    attrs = {"strides": _get_sequence(strides, "conv2d: strides", fmt), "padding": pad,
             "explicit_paddings": explicit,
             "dilations": _get_sequence(dilations, "conv2d: dilations", fmt), "data_format": fmt,
             "use_cudnn_on_gpu": bool(use_cudnn_on_gpu)}
    with op_scope(name, "Conv2D", [input, filt]) as scope:
        x = to_tensor(input, name="input")
        f = to_tensor(filt, dtype=None if is_tensor_like(filt) else x.dtype, name="filter")
        return make("Conv2D", [x, f], attrs, name=scope)


def _conv_backprop_attrs(what: str, strides: Any, padding: Any, use_cudnn_on_gpu: bool,
                         data_format: str | None, dilations: Any) -> dict[str, Any]:
    if strides is None or padding is None:
        raise errors.GraphValueError(None, None, f"{what}: strides and padding must be given")
    fmt = _data_format(data_format, what)
    pad, explicit = _convert_padding(padding, what)
    return {"strides": _get_sequence(strides, f"{what}: strides", fmt), "padding": pad,
            "explicit_paddings": explicit,
            "dilations": _get_sequence(dilations, f"{what}: dilations", fmt),
            "data_format": fmt, "use_cudnn_on_gpu": bool(use_cudnn_on_gpu)}


def _int_shape(v: Any, name: str) -> Tensor:
    if is_tensor_like(v):
        return to_tensor(v, name=name)
    if isinstance(v, TensorShape):
        v = v.as_list()
    return to_tensor(np.asarray(v, np.int32), name=name)


def conv2d_backprop_input(input_sizes: Any, filter: Any = None, out_backprop: Any = None,
                          strides: Any = None, padding: Any = None,
                          use_cudnn_on_gpu: bool = True, data_format: str = "NHWC",
                          dilations: Any = (1, 1, 1, 1), name: str | None = None,
                          filters: Any = None) -> Tensor:
    """The gradient of :func:`conv2d` with respect to its input (TF1's function of that name).

    Args:
      input_sizes: 4 ints (or a 1-D int32 Tensor): the shape of conv2d's input.
      filter: the filter ``[height, width, in_channels, out_channels]``.
      out_backprop: the gradient of conv2d's output, of its shape.
      strides, padding, use_cudnn_on_gpu, data_format, dilations: as :func:`conv2d`.
      name: op name (default ``Conv2DBackpropInput``).
      filters: alias for ``filter``.

    Returns:
      A Tensor of shape ``input_sizes``.
    """
    if filter is not None and filters is not None:
        raise errors.GraphValueError(None, None, "conv2d_backprop_input: cannot specify both "
                                                 "'filter' and 'filters'")
    filt = filter if filter is not None else filters
    attrs = _conv_backprop_attrs("conv2d_backprop_input", strides, padding, use_cudnn_on_gpu,
                                 data_format, dilations)
    with op_scope(name, "Conv2DBackpropInput", [filt, out_backprop]) as scope:
        dy = to_tensor(out_backprop, name="out_backprop")
        f = to_tensor(filt, dtype=None if is_tensor_like(filt) else dy.dtype, name="filter")
        return make("Conv2DBackpropInput", [_int_shape(input_sizes, "input_sizes"), f, dy],
                    attrs, name=scope)


def conv2d_backprop_filter(input: Any, filter_sizes: Any, out_backprop: Any, strides: Any,
                           padding: Any, use_cudnn_on_gpu: bool = True,
                           data_format: str = "NHWC", dilations: Any = (1, 1, 1, 1),
                           name: str | None = None) -> Tensor:
    """The gradient of :func:`conv2d` with respect to its filter (TF1's function of that name).

    Args:
      input: conv2d's input.
      filter_sizes: 4 ints (or a 1-D int32 Tensor): the filter's shape.
      out_backprop: the gradient of conv2d's output, of its shape.
      strides, padding, use_cudnn_on_gpu, data_format, dilations: as :func:`conv2d`.
      name: op name (default ``Conv2DBackpropFilter``).

    Returns:
      A Tensor of shape ``filter_sizes``.
    """
    attrs = _conv_backprop_attrs("conv2d_backprop_filter", strides, padding, use_cudnn_on_gpu,
                                 data_format, dilations)
    with op_scope(name, "Conv2DBackpropFilter", [input, out_backprop]) as scope:
        x = to_tensor(input, name="input")
        dy = to_tensor(out_backprop, dtype=None if is_tensor_like(out_backprop) else x.dtype,
                       name="out_backprop")
        return make("Conv2DBackpropFilter", [x, _int_shape(filter_sizes, "filter_sizes"), dy],
                    attrs, name=scope)


def conv2d_transpose(value: Any = None, filter: Any = None, output_shape: Any = None,
                     strides: Any = None, padding: str = "SAME", data_format: str = "NHWC",
                     name: str | None = None, input: Any = None, filters: Any = None,
                     dilations: Any = None) -> Tensor:
    """The transpose of :func:`conv2d` (TF1's ``tf.nn.conv2d_transpose``).

    The gradient of conv2d with respect to its input: a ``Conv2DBackpropInput`` op.

    Args:
      value: a 4-D Tensor ``[batch, height, width, in_channels]`` (NHWC).
      filter: ``[height, width, output_channels, in_channels]``; its last dim
        must match value's channels.
      output_shape: 4 ints or a 1-D int Tensor: the output's shape.
      strides: an int or a list of 1, 2 or 4 ints.
      padding: ``"SAME"`` or ``"VALID"``.
      data_format: ``"NHWC"`` or ``"NCHW"``.
      name: scope name (default ``conv2d_transpose``).
      input, filters: aliases for ``value`` and ``filter``.
      dilations: an int or a list of 1, 2 or 4 ints.

    Returns:
      A Tensor of ``output_shape``.

    Raises:
      ValueError: if the channels of value, filter and output_shape do not fit.
    """
    value = value if value is not None else input
    filt = filter if filter is not None else filters
    fmt = _data_format(data_format, "conv2d_transpose")
    with op_scope(name, "conv2d_transpose", [value, filt, output_shape]) as scope:
        x = to_tensor(value, name="value")
        f = to_tensor(filt, dtype=None if is_tensor_like(filt) else x.dtype, name="filter")
        sizes = _int_shape(output_shape, "output_shape")
        ch = 3 if fmt == "NHWC" else 1
        xc = x.shape.values[ch] if x.shape.ndims == 4 else None
        fd = f.shape.values if f.shape.ndims == 4 else (None,) * 4
        if xc is not None and fd[3] is not None and xc != fd[3]:
            raise errors.ShapeError(None, None, f"conv2d_transpose: input channels {xc} must "
                                                f"match the filter's in_channels {fd[3]}")
        oc = constant_value_as_shape(sizes)
        if oc.ndims == 4 and oc.values[ch] is not None and fd[2] is not None and (
                oc.values[ch] != fd[2]):
            raise errors.ShapeError(None, None, f"conv2d_transpose: output_shape channels "
                                                f"{oc.values[ch]} must match the filter's "
                                                f"output_channels {fd[2]}")
        attrs = _conv_backprop_attrs("conv2d_transpose", strides, padding, True, fmt,
                                     1 if dilations is None else dilations)
        return make("Conv2DBackpropInput", [sizes, f, x], attrs, name=scope)


class _PoolAttrs(OpDef):
    """Pooling ops and their gradients: attrs ksize, strides, padding, data_format."""

    kind = OPAQUE

    def config(self, op: Any) -> tuple:
        fmt = _check_format(op.get_attr("data_format"))
        ksize = _check_window(op.get_attr("ksize"), "ksize", fmt)
        strides = _check_window(op.get_attr("strides"), "strides", fmt)
        padding, _, _ = _check_padding(op, fmt, allow_explicit=False)
        return fmt, ksize, strides, padding

    def pooled_shape(self, op: Any, x: TensorShape) -> TensorShape:
        """The static output shape of pooling an input of static shape ``x``."""
        fmt, (kh, kw), (sh, sw), padding = self.config(op)
        dims = x.values or (None,) * 4
        h, w, c = _spatial_axes(fmt)
        oh = _static_out(dims[h], kh, sh, 1, padding, (0, 0), "pooling")
        ow = _static_out(dims[w], kw, sw, 1, padding, (0, 0), "pooling")
        return _shape_in(fmt, dims[0], oh, ow, dims[c])

    def geometry(self, op: Any, x_shape: tuple) -> tuple:
        """Run-time ``(k, s, pads, out)`` for an NHWC input of shape ``x_shape``."""
        fmt, (kh, kw), (sh, sw), padding = self.config(op)
        oh, pt, pb = _run_out(x_shape[1], kh, sh, 1, padding, (0, 0))
        ow, pl, pr = _run_out(x_shape[2], kw, sw, 1, padding, (0, 0))
        return (kh, kw), (sh, sw), ((pt, pb), (pl, pr)), (oh, ow)

    def check_grad_shape(self, op: Any, x: TensorShape, g: TensorShape, what: str) -> None:
        out = self.pooled_shape(op, x)
        if not out.is_compatible_with(g):
            raise shape_error(f"{what} of shape {g} does not match the pooled shape {out} of "
                              f"an input of shape {x}")


class _Pool(_PoolAttrs):
    """Pools windows of attr ``ksize`` moving by ``strides`` over H and W."""

    dtypes: tuple = F

    def infer(self, op):
        x = op.inputs[0]
        rules.check_dtype(x, self.dtypes, "input")
        rules.require_rank(x, 4, "input")
        return [(x.dtype, self.pooled_shape(op, x.shape))]

    def reference(self, op, inputs, ctx):
        fmt = self.config(op)[0]
        x = _to_nhwc(inputs[0], fmt)
        n, h, w, c = x.shape
        k, s, pads, (oh, ow) = self.geometry(op, x.shape)
        if oh == 0 or ow == 0 or n == 0 or c == 0:
            out = np.zeros((n, oh, ow, c), x.dtype)
        else:
            out = self.pool(x, k, s, pads, (oh, ow))
        return _from_nhwc(out.astype(x.dtype, copy=False), fmt)

    def pool(self, x: np.ndarray, k: tuple, s: tuple, pads: tuple, out: tuple) -> np.ndarray:
        raise NotImplementedError


def _pool_attrs(op: Any) -> dict[str, Any]:
    return {k: op.get_attr(k) for k in ("ksize", "strides", "padding", "data_format")}


def _scatter_taps(per_tap: Any, shape: tuple, k: tuple, s: tuple, pads: tuple, out: tuple,
                  dtype: Any) -> np.ndarray:
    """Sums window contributions back onto an NHWC input of ``shape``.

    ``per_tap(i, j)`` gives the ``[N, oh, ow, C]`` contribution of window tap
    ``(i, j)``; one vectorised slice-add per tap, then the padding is cut off.
    """
    n, h, w, c = shape
    (pt, pb), (pl, pr) = pads
    (oh, ow), (sh, sw) = out, s
    dxp = np.zeros((n, h + pt + pb, w + pl + pr, c), dtype)
    if oh and ow and n and c:
        for i in range(k[0]):
            for j in range(k[1]):
                dxp[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw] += per_tap(i, j)
    return dxp[:, pt:pt + h, pl:pl + w]


def _max_pool_argmax(x: np.ndarray, k: tuple, s: tuple, pads: tuple, out: tuple,
                     with_max: bool = False) -> Any:
    """For each output of MaxPool of NHWC ``x``: the index ``i * kw + j`` of its window's max
    (and, ``with_max``, that element itself: ``(arg, max)``).

    TF's CPU rule (``SpatialMaxPoolWithArgMaxHelper``): the window's in-bounds
    elements are scanned row by row and an element replaces the current best
    only if strictly greater, so ties go to the first in that order and
    padding never wins.
    """
    (kh, kw), (sh, sw), (oh, ow) = k, s, out
    low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=low)
    inside = np.pad(np.ones(x.shape[1:3], bool), pads)[None, :, :, None]
    win = _windows(xp, kh, kw, sh, sw, 1, 1, oh, ow)  # [N, oh, ow, C, kh, kw]
    valid = _windows(inside, kh, kw, sh, sw, 1, 1, oh, ow)
    best = win[..., 0, 0]
    arg = np.zeros(best.shape, np.intp)
    found = np.broadcast_to(valid[..., 0, 0], best.shape)
    for t in range(1, kh * kw):
        i, j = divmod(t, kw)
        cand, ok = win[..., i, j], valid[..., i, j]
        take = ok & (~found | (best < cand))
        best = np.where(take, cand, best)
        arg = np.where(take, t, arg)
        found = found | ok
    return (arg, best) if with_max else arg


@register
class MaxPool(_Pool):
    """Max over each window; padding never wins (it is the dtype's lowest value).

    Gradient (TF1's ``_MaxPoolGrad``): ``MaxPoolGrad``, which routes each
    output's gradient to its window's maximum (the first one on ties).
    """

    dtypes = NUM

    @staticmethod
    def grad(op, dy):
        return [make("MaxPoolGrad", [op.inputs[0], op.outputs[0], dy], _pool_attrs(op))]

    def pool(self, x, k, s, pads, out):
        low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=low)
        return _windows(xp, k[0], k[1], s[0], s[1], 1, 1, out[0], out[1]).max(axis=(-2, -1))


class _MaxPoolGradOp(_PoolAttrs):
    """Inputs ``(orig_input, orig_output, grad)``; the window maxima come from orig_input."""

    def check(self, op: Any) -> tuple[Any, TensorShape, TensorShape]:
        x, y, g = op.inputs
        rules.check_dtype(x, NUM, "orig_input")
        d = rules.same_dtype(x, y, g)
        for t, what in ((x, "orig_input"), (y, "orig_output"), (g, "grad")):
            rules.require_rank(t, 4, what)
        pooled = self.pooled_shape(op, x.shape)
        if not pooled.is_compatible_with(y.shape):
            raise shape_error(f"orig_output of shape {y.shape} does not match the pooled shape "
                              f"{pooled} of orig_input of shape {x.shape}")
        return d, x.shape, pooled.merge_with(y.shape)

    def run(self, op: Any, inputs: list) -> tuple:
        fmt = self.config(op)[0]
        x, _, g = (_to_nhwc(t, fmt) for t in inputs)
        k, s, pads, out = self.geometry(op, x.shape)
        return fmt, x, g, k, s, pads, out


@register
class MaxPoolGrad(_MaxPoolGradOp):
    """The gradient of MaxPool: ``grad`` (pooled shape) routed to each window's maximum.

    Each output's gradient goes to the first maximum of its window in TF's
    scan order (row by row, in-bounds elements only); gradients of
    overlapping windows add up. orig_output is not read (as TF's CPU kernel).
    Gradient (TF1's ``_MaxPoolGradGrad``): zeros for orig_input and
    orig_output, ``MaxPoolGradGrad`` for grad.
    """

    positive = False  # (_MaxPoolReluGrad: only to maxima above zero)

    @staticmethod
    def grad(op, g):
        x, y, _ = op.inputs
        return [array_ops.zeros_like(x), array_ops.zeros_like(y),
                make("MaxPoolGradGrad", [x, y, g], _pool_attrs(op))]

    def infer(self, op):
        d, x, pooled = self.check(op)
        g = op.inputs[2].shape
        if not pooled.is_compatible_with(g):
            raise shape_error(f"grad of shape {g} must have the pooled shape {pooled}")
        return [(d, x)]

    def reference(self, op, inputs, ctx):
        fmt, x, g, k, s, pads, out = self.run(op, inputs)
        n, h, w, c = x.shape
        if g.shape != (n, out[0], out[1], c):
            raise _invalid(f"MaxPoolGrad: grad has shape {list(g.shape)}, expected "
                           f"{[n, out[0], out[1], c]} (NHWC)")
        if not (out[0] and out[1] and n and c):
            return _from_nhwc(np.zeros(x.shape, g.dtype), fmt)
        arg, best = _max_pool_argmax(x, k, s, pads, out, with_max=True)
        zero = np.zeros((), g.dtype)
        if self.positive:
            g = np.where(best > 0, g, zero)
        dx = _scatter_taps(lambda i, j: np.where(arg == i * k[1] + j, g, zero), x.shape, k, s,
                           pads, out, g.dtype)
        return _from_nhwc(dx, fmt)


@register
class MaxPoolReluGrad(MaxPoolGrad):
    """Made by the compiler only (``simplify``'s ``relu_max_pool_grad`` rule): MaxPoolGrad
    followed by relu's gradient, ``where(orig_input > 0, MaxPoolGrad(orig_input, ...), 0)``
    with orig_input a relu's output, as one op. Each output's gradient goes to its
    window's first maximum only when that maximum is greater than zero (a NaN maximum
    is not): the other elements of the input are zero in both forms.
    """

    type = "_MaxPoolReluGrad"
    grad = None
    positive = True


NO_ROUTE = 255  # a _MaxPoolWithRoute window that routes no gradient


@register
class MaxPoolWithRoute(_Pool):
    """Made by the compiler only (the ``remap`` pass): MaxPool, and per output the tap
    ``i * kw + j`` of its window's first maximum (uint8; ``NO_ROUTE`` with attr
    ``positive`` when that maximum is not above zero) for :class:`MaxPoolGradRoute`, so
    the pool's gradient does not read the input again.
    """

    type = "_MaxPoolWithRoute"
    grad = None

    def infer(self, op):
        ((d, shape),) = super().infer(op)
        return [(d, shape), (_dt.uint8, shape)]

    def reference(self, op, inputs, ctx):
        x = inputs[0]  # NHWC: the remap pass makes it only for NHWC pools
        m = _op_def.lookup("MaxPool").reference(op, inputs, ctx)
        n, h, w, c = x.shape
        k, s, pads, (oh, ow) = self.geometry(op, x.shape)
        if oh == 0 or ow == 0 or n == 0 or c == 0:
            return [m, np.zeros(m.shape, np.uint8)]
        arg, best = _max_pool_argmax(x, k, s, pads, (oh, ow), with_max=True)
        if op.get_attr("positive"):
            arg = np.where(best > 0, arg, NO_ROUTE)
        return [m, arg.astype(np.uint8)]


@register
class MaxPoolGradRoute(_PoolAttrs):
    """Made by the compiler only (the ``remap`` pass): MaxPoolGrad (or _MaxPoolReluGrad)
    from the routes of :class:`MaxPoolWithRoute`: inputs ``(route, grad)``, attr
    ``orig_size`` (the input's H and W). The same sums as the op it replaces.
    """

    type = "_MaxPoolGradRoute"

    def infer(self, op):
        route, g = op.inputs
        dims = g.shape.values or (None,) * 4
        h, w = op.get_attr("orig_size")
        return [(g.dtype, TensorShape([dims[0], h, w, dims[3]]))]

    def reference(self, op, inputs, ctx):
        route, g = inputs
        n, _, _, c = g.shape
        shape = (n, *op.get_attr("orig_size"), c)
        k, s, pads, out = self.geometry(op, shape)
        if g.shape != (n, out[0], out[1], c) or route.shape != g.shape:
            raise _invalid(f"MaxPoolGrad: grad has shape {list(g.shape)}, expected "
                           f"{[n, out[0], out[1], c]} (NHWC)")
        zero = np.zeros((), g.dtype)
        return _scatter_taps(lambda i, j: np.where(route == i * k[1] + j, g, zero), shape, k, s,
                             pads, out, g.dtype)


@register
class MaxPoolGradGrad(_MaxPoolGradOp):
    """The gradient of MaxPoolGrad for its ``grad``: picks ``grad`` (input-shaped) at each
    window's maximum, so the output has the pooled shape. Gradient (TF1's
    ``_MaxPoolGradGradGrad``): zeros for orig_input and orig_output, ``MaxPoolGrad`` for grad.
    """

    @staticmethod
    def grad(op, g):
        x, y, _ = op.inputs
        return [array_ops.zeros_like(x), array_ops.zeros_like(y),
                make("MaxPoolGrad", [x, y, g], _pool_attrs(op))]

    def infer(self, op):
        d, x, pooled = self.check(op)
        g = op.inputs[2].shape
        if not x.is_compatible_with(g):
            raise shape_error(f"grad of shape {g} must have orig_input's shape {x}")
        return [(d, pooled)]

    def reference(self, op, inputs, ctx):
        fmt, x, g, k, s, pads, out = self.run(op, inputs)
        n, h, w, c = x.shape
        if g.shape != x.shape:
            raise _invalid(f"MaxPoolGradGrad: grad has shape {list(g.shape)}, expected "
                           f"orig_input's {list(x.shape)}")
        if not (out[0] and out[1] and n and c):
            return _from_nhwc(np.zeros((n, out[0], out[1], c), g.dtype), fmt)
        arg = _max_pool_argmax(x, k, s, pads, out)
        gp = np.pad(g, ((0, 0), pads[0], pads[1], (0, 0)))
        win = _windows(gp, k[0], k[1], s[0], s[1], 1, 1, out[0], out[1])
        picked = np.take_along_axis(win.reshape(win.shape[:4] + (-1,)), arg[..., None], -1)
        return _from_nhwc(picked[..., 0], fmt)


def _avg_pool_counts(shape: tuple, k: tuple, s: tuple, pads: tuple, out: tuple,
                     dtype: Any) -> np.ndarray:
    """``[1, oh, ow, 1]``: how many in-bounds elements each AvgPool window averages."""
    mask = np.pad(np.ones(shape[1:3], dtype), pads)[None, :, :, None]
    return _windows(mask, k[0], k[1], s[0], s[1], 1, 1, out[0], out[1]).sum(axis=(-2, -1))


@register
class AvgPool(_Pool):
    """Mean over each window's valid (non-padding) elements, as TF.

    Gradient (TF1's ``_AvgPoolGrad``): ``AvgPoolGrad`` of the input's shape.
    """

    @staticmethod
    def grad(op, dy):
        return [make("AvgPoolGrad", [_shape_tensor(op.inputs[0]), dy], _pool_attrs(op))]

    def pool(self, x, k, s, pads, out):
        acc = _acc_dtype(x)
        xp = np.pad(x.astype(acc, copy=False), ((0, 0), pads[0], pads[1], (0, 0)))
        total = _windows(xp, k[0], k[1], s[0], s[1], 1, 1, out[0], out[1]).sum(axis=(-2, -1))
        return total / _avg_pool_counts(x.shape, k, s, pads, out, acc)


@register
class AvgPoolGrad(_PoolAttrs):
    """The gradient of AvgPool: inputs ``(orig_input_shape, grad)``.

    Each output's gradient is spread evenly over its window's in-bounds
    elements (divided by the same count the forward pass divided by).
    Gradient (TF1's ``_AvgPoolGradGrad``): ``AvgPool`` of the incoming gradient.
    """

    @staticmethod
    def grad(op, g):
        return [None, make("AvgPool", [g], _pool_attrs(op))]

    def infer(self, op):
        sizes, g = op.inputs
        rules.check_dtype(sizes, (_dt.int32, _dt.int64), "orig_input_shape")
        rules.check_dtype(g, F, "grad")
        rules.require_rank(g, 4, "grad")
        x = constant_value_as_shape(sizes)
        if x.ndims not in (None, 4):
            raise shape_error(f"orig_input_shape must have 4 elements, got shape {x}")
        fmt = self.config(op)[0]
        n, _, _, c = _static_dims(g, fmt)
        known = _shape_in(fmt, n, None, None, c)
        x = known if x.ndims is None else x
        if not x.is_compatible_with(known):
            raise shape_error(f"orig_input_shape {x} does not match grad of shape {g.shape}")
        x = x.merge_with(known)
        self.check_grad_shape(op, x, g.shape, "grad")
        return [(g.dtype, x)]

    def reference(self, op, inputs, ctx):
        sizes, g = inputs
        fmt = self.config(op)[0]
        shape = _sizes_nhwc(sizes, "orig_input_shape", fmt)
        g = _to_nhwc(g, fmt)
        k, s, pads, out = self.geometry(op, shape)
        if g.shape != (shape[0], out[0], out[1], shape[3]):
            raise _invalid(f"AvgPoolGrad: grad has shape {list(g.shape)}, expected "
                           f"{[shape[0], out[0], out[1], shape[3]]} (NHWC)")
        acc = _acc_dtype(g)
        if not g.size:
            return _from_nhwc(np.zeros(shape, g.dtype), fmt)
        share = g.astype(acc, copy=False) / _avg_pool_counts(shape, k, s, pads, out, acc)
        dx = _scatter_taps(lambda i, j: share, shape, k, s, pads, out, acc)
        return _from_nhwc(dx.astype(g.dtype), fmt)


def _pool_fn(op_type: str, what: str, value: Any, ksize: Any, strides: Any, padding: Any,
             data_format: str | None, name: str | None, input: Any) -> Tensor:
    if value is not None and input is not None:
        raise errors.GraphValueError(None, None, f"{what}: cannot specify both 'value' and "
                                                 "'input'")
    value = value if value is not None else input
    fmt = _data_format(data_format, what)
    k = _get_sequence(ksize, f"{what}: ksize", fmt)
    if any(i == 0 for i in k):
        raise errors.GraphValueError(None, None, f"{what}: ksize cannot be zero.")
    attrs = {"ksize": k, "strides": _get_sequence(strides, f"{what}: strides", fmt),
             "padding": padding, "data_format": fmt}
    with op_scope(name, op_type, [value]) as scope:
        return make(op_type, [to_tensor(value, name="input")], attrs, name=scope)


def max_pool(value: Any, ksize: Any, strides: Any, padding: str, data_format: str = "NHWC",
             name: str | None = None, input: Any = None) -> Tensor:
    """Max pooling over H and W (TF1's ``tf.nn.max_pool``).

    With ``"SAME"`` padding the output has ``ceil(in / stride)`` rows and the
    padded positions never contribute; with ``"VALID"`` windows lie inside the input.

    Args:
      value: a 4-D numeric Tensor in ``data_format``.
      ksize: an int or a list of 1, 2 or 4 ints: the window size.
      strides: an int or a list of 1, 2 or 4 ints: the window step.
      padding: ``"SAME"`` or ``"VALID"``.
      data_format: ``"NHWC"`` (default) or ``"NCHW"``.
      name: op name (default ``MaxPool``).
      input: alias for ``value``.

    Returns:
      A Tensor of value's dtype.

    Raises:
      ValueError: for bad ksize/strides/padding or a VALID window larger than the input.
    """
    return _pool_fn("MaxPool", "max_pool", value, ksize, strides, padding, data_format, name,
                    input)


def avg_pool(value: Any, ksize: Any, strides: Any, padding: str, data_format: str = "NHWC",
             name: str | None = None, input: Any = None) -> Tensor:
    """Average pooling over H and W (TF1's ``tf.nn.avg_pool``).

    Each output is the mean of its window's elements inside the input: with
    ``"SAME"`` padding, border windows divide by their count of non-padded
    elements, as TF does.

    Args:
      value: a 4-D float Tensor in ``data_format``.
      ksize: an int or a list of 1, 2 or 4 ints: the window size.
      strides: an int or a list of 1, 2 or 4 ints: the window step.
      padding: ``"SAME"`` or ``"VALID"``.
      data_format: ``"NHWC"`` (default) or ``"NCHW"``.
      name: op name (default ``AvgPool``).
      input: alias for ``value``.

    Returns:
      A Tensor of value's dtype.

    Raises:
      ValueError: for bad ksize/strides/padding or a VALID window larger than the input.
      TypeError: if ``value`` is not a float tensor.
    """
    return _pool_fn("AvgPool", "avg_pool", value, ksize, strides, padding, data_format, name,
                    input)


# --- dropout ---------------------------------------------------------------------------
def _noise_shape(x: Tensor, noise_shape: Any) -> Any:
    """TF1's ``_get_noise_shape``: x's shape, or noise_shape with None filled from x."""
    if noise_shape is None:
        return array_ops.shape(x)
    if is_tensor_like(noise_shape):
        return noise_shape
    try:
        ns = as_shape(noise_shape)
    except (TypeError, ValueError):
        return noise_shape
    xd = x.shape.values
    if xd is not None and ns.ndims == len(xd):
        return [a if a is not None else b for a, b in zip(ns.values, xd)]
    return ns.as_list() if ns.ndims is not None else noise_shape


def dropout(x: Any, keep_prob: Any = None, noise_shape: Any = None, seed: int | None = None,
            name: str | None = None, rate: Any = None) -> Tensor:
    """Zeroes elements with probability ``rate`` and scales the rest by ``1 / (1 - rate)``.

    TF1's ``tf.nn.dropout``: give exactly one of ``keep_prob`` (deprecated) and
    ``rate = 1 - keep_prob``. Built as TF1 builds it: ``x * (1 / keep_prob) *
    cast(random_uniform(noise_shape) >= rate)``. A Python rate of 0 returns
    ``x`` itself.

    Args:
      x: a float Tensor.
      keep_prob: the probability that each element is kept (deprecated), a
        Python float or a scalar Tensor.
      noise_shape: a 1-D int shape broadcastable to x's shape for the random
        keep/drop mask; None entries take x's dims. Default: x's shape.
      seed: an op-level seed (see ``gf.set_random_seed``).
      name: scope name (default ``dropout``).
      rate: the probability that each element is dropped, a Python float in
        ``[0, 1)`` or a scalar Tensor.

    Returns:
      A Tensor of x's shape and dtype.

    Raises:
      ValueError: if both or neither of ``rate`` and ``keep_prob`` are given,
        if a Python rate is outside ``[0, 1)``, or if x is not a float tensor.
    """
    if keep_prob is not None and rate is not None:
        raise errors.GraphValueError(None, None, "dropout: cannot specify both 'rate' and "
                                                 "'keep_prob'")
    if keep_prob is not None:
        if isinstance(keep_prob, numbers.Real):
            if not 0 < keep_prob <= 1:
                raise errors.GraphValueError(None, None, f"dropout: keep_prob must be a scalar "
                                                         f"tensor or a float in the range (0, "
                                                         f"1], got {keep_prob:g}")
            rate = 1.0 - keep_prob
        elif is_tensor_like(keep_prob):
            rate = keep_prob
        else:
            raise errors.GraphValueError(None, None, f"dropout: keep_prob must be a floating "
                                                     f"point number or Tensor (got "
                                                     f"{keep_prob!r})")
        rate_from_keep = not isinstance(keep_prob, numbers.Real)
    else:
        rate_from_keep = False
    if rate is None:
        raise errors.GraphValueError(None, None, "You must provide a rate to dropout.")
    with op_scope(name, "dropout", [x]) as scope:
        t = to_tensor(x, name="x")
        if not t.dtype.is_floating:
            raise errors.GraphValueError(None, None, f"dropout: x has to be a floating point "
                                                     f"tensor since it's going to be scaled. "
                                                     f"Got a {t.dtype.name} tensor instead.")
        if isinstance(rate, numbers.Real):
            if not 0 <= rate < 1:
                raise errors.GraphValueError(None, None, f"dropout: rate must be a scalar "
                                                         f"tensor or a float in the range [0, "
                                                         f"1), got {rate:g}")
            if rate == 0:
                return t
        if rate_from_keep:
            rate = math_ops.subtract(1.0, to_tensor(rate, name="keep_prob"))
        r = to_tensor(rate, dtype=t.dtype, name="rate")
        if not r.shape.is_compatible_with(TensorShape([])):
            raise errors.ShapeError(None, None, f"dropout: rate must be a scalar, got shape "
                                                f"{r.shape}")
        cv = constant_value(r)
        if cv is not None and cv == 0:
            return t
        random_tensor = random_ops.random_uniform(_noise_shape(t, noise_shape), seed=seed,
                                                  dtype=t.dtype)
        keep = math_ops.subtract(np.array(1, t.dtype.np), r, name="sub")
        scale = math_ops.realdiv(np.array(1, t.dtype.np), keep, name="truediv")
        keep_mask = math_ops.greater_equal(random_tensor, r)
        ret = math_ops.multiply(math_ops.multiply(t, scale, name="mul"),
                                math_ops.cast(keep_mask, t.dtype), name=scope)
        ret.set_shape(t.shape)
        return ret


# --- normalization ---------------------------------------------------------------------
def moments(x: Any, axes: Any, shift: Any = None, name: str | None = None,
            keep_dims: bool | None = None,
            keepdims: bool | None = None) -> tuple[Tensor, Tensor]:
    """Mean and (population) variance of ``x`` over ``axes`` (TF1's ``tf.nn.moments``).

    Built as TF1 builds it: ``mean = reduce_mean(x, axes)`` and ``variance =
    reduce_mean(squared_difference(x, stop_gradient(mean)), axes)``; float16
    inputs are computed in float32 and cast back.

    Args:
      x: a float Tensor.
      axes: ints: the axes to reduce over (e.g. ``[0, 1, 2]`` for batch norm
        of NHWC activations, ``[0]`` for a batch of vectors).
      shift: unused, as in TF1.
      name: scope name (default ``moments``).
      keep_dims: deprecated alias for ``keepdims``.
      keepdims: keep the reduced axes with size 1.

    Returns:
      A ``(mean, variance)`` pair of Tensors.
    """
    if keep_dims is not None and keepdims is not None:
        raise errors.GraphValueError(None, None, "moments: cannot specify both 'keepdims' and "
                                                 "'keep_dims'")
    keep = bool(keepdims if keepdims is not None else keep_dims)
    with op_scope(name, "moments", [x]):
        t = to_tensor(x, name="x")
        y = math_ops.cast(t, _dt.float32) if t.dtype is _dt.float16 else t
        mean = math_ops.reduce_mean(y, axes, keepdims=True, name="mean")
        variance = math_ops.reduce_mean(
            math_ops.squared_difference(y, array_ops.stop_gradient(mean)), axes, keepdims=True,
            name="variance")
        if not keep:
            mean = array_ops.squeeze(mean, axes)
            variance = array_ops.squeeze(variance, axes)
        if t.dtype is _dt.float16:
            return math_ops.cast(mean, _dt.float16), math_ops.cast(variance, _dt.float16)
        return mean, variance


def batch_normalization(x: Any, mean: Any, variance: Any, offset: Any, scale: Any,
                        variance_epsilon: float, name: str | None = None) -> Tensor:
    """Normalizes ``x`` by ``mean`` and ``variance``, then scales and shifts it.

    TF1's ``tf.nn.batch_normalization``: ``scale * (x - mean) /
    sqrt(variance + variance_epsilon) + offset``, built as TF1 builds it:
    ``inv = rsqrt(variance + epsilon) * scale``; ``x * inv + (offset - mean * inv)``.
    All arguments broadcast against ``x``.

    Args:
      x: a float Tensor.
      mean: a mean Tensor.
      variance: a variance Tensor.
      offset: a beta (shift) Tensor, or None.
      scale: a gamma (scale) Tensor, or None.
      variance_epsilon: a small float added to the variance to avoid dividing by zero.
      name: scope name (default ``batchnorm``).

    Returns:
      The normalized, scaled, offset Tensor.
    """
    with op_scope(name, "batchnorm", [x, mean, variance, scale, offset]):
        t = to_tensor(x, name="x")
        m = to_tensor(mean, dtype=None if is_tensor_like(mean) else t.dtype, name="mean")
        v = to_tensor(variance, dtype=None if is_tensor_like(variance) else t.dtype,
                      name="variance")
        inv = math_ops.rsqrt(math_ops.add(v, np.array(variance_epsilon, v.dtype.np)))
        if scale is not None:
            inv = math_ops.multiply(inv, _like(scale, inv))
        mean_inv = math_ops.multiply(m, inv)
        if offset is not None:
            shift = math_ops.subtract(_like(offset, inv), mean_inv)
        else:
            shift = math_ops.negative(mean_inv)
        return math_ops.add(math_ops.multiply(t, math_ops.cast(inv, t.dtype)),
                            math_ops.cast(shift, t.dtype))


def _like(v: Any, t: Tensor) -> Tensor:
    """``v`` as a Tensor; Python/NumPy values take ``t``'s dtype."""
    return to_tensor(v, dtype=None if is_tensor_like(v) else t.dtype)


# --- gradient helpers (used by the registrations above) ----------------------------------
def _is_zeros(t: Tensor) -> bool:
    """True for the zeros autodiff passes for an output nobody differentiated.

    TF's ``_is_zeros_tensor``: a rule may then skip terms that would be zero
    (and keep the graph free of them).
    """
    op = t.op
    if op.type == "Const":
        v = constant_value(t)
        return v is not None and not np.any(v)
    if op.type == "Fill":
        v = constant_value(op.inputs[1])
        return v is not None and not np.any(v)
    return False


def _broadcast_mul(vec: Tensor, mat: Tensor) -> Tensor:
    """TF1's ``_BroadcastMul``: ``vec[..., None] * mat``."""
    if vec.shape.ndims is None:
        col = array_ops.reshape(vec, array_ops.concat([array_ops.shape(vec), [1]], 0))
    else:
        col = array_ops.expand_dims(vec, -1)
    return math_ops.multiply(col, mat)


def _sum_keepdims(t: Tensor, axis: int) -> Tensor:
    """``reduce_sum(t, axis, keepdims=True)``, also for a negative axis of unknown rank.

    Sum needs its axes when the graph is built; for a tensor of unknown rank
    the last axis is summed as the columns of a ``[-1, C]`` reshape instead.
    """
    if axis >= 0 or t.shape.ndims is not None:
        return math_ops.reduce_sum(t, axis, keepdims=True)
    if axis != -1:
        raise errors.ShapeError(None, None, f"the gradient of a softmax over axis {axis} "
                                            "needs an input of known rank")
    s = array_ops.shape(t)
    flat = array_ops.reshape(t, array_ops.stack([-1, s[-1]]))
    return array_ops.reshape(math_ops.reduce_sum(flat, 1, keepdims=True),
                             array_ops.concat([s[:-1], [1]], 0))


def _softmax_jvp(v: Tensor, logits: Tensor) -> Tensor:
    """The softmax Jacobian (symmetric) applied to ``v`` along the last dim.

    ``(v - sum(v * s)) * s`` with ``s = softmax(logits)``: the derivative of the
    cross entropies' backprop output ``softmax - labels`` (TF's second-order
    term, written with reduce_sum where TF uses a batched matmul).
    """
    s = softmax(logits)
    return math_ops.multiply(math_ops.subtract(v, _sum_keepdims(math_ops.multiply(v, s), -1)), s)


# --- embeddings -----------------------------------------------------------------------
def _clip_rows(rows: Tensor, ids: Tensor, max_norm: Any) -> Tensor:
    """TF1's ``_clip``: each embedding (the dims after the ids' dims) clipped to ``max_norm``."""
    from graphflow.ops.clip_ops import clip_by_norm

    if max_norm is None:
        return rows
    ir, rr = ids.shape.ndims, rows.shape.ndims
    if ir is None or rr is None:
        raise errors.ShapeError(None, None, "embedding_lookup with max_norm needs the ranks of "
                                            "ids and params known when the graph is built")
    return clip_by_norm(rows, max_norm, axes=list(range(ir, rr)))


def embedding_lookup(params: Any, ids: Any, partition_strategy: str = "mod",
                     name: str | None = None, validate_indices: bool = True,
                     max_norm: Any = None) -> Tensor:
    """Looks up rows ``ids`` of an embedding table (TF1's ``tf.nn.embedding_lookup``).

    One table is a ``gather`` along axis 0: its gradient with respect to the
    table is an :class:`~graphflow.IndexedSlices` holding only the looked-up
    rows, which optimizers apply row by row, so no table-sized gradient is
    ever computed. A list of tables is one table split by rows into shards:
    with ``"mod"`` id ``i`` lives in shard ``i % n`` at row ``i // n``; with
    ``"div"`` the ids are split into contiguous ranges (the first
    ``total % n`` shards hold one more row).

    Args:
      params: a Tensor or Variable ``[vocab, d...]``, or a list of shards of
        the same trailing dims.
      ids: an int32/int64 Tensor of any shape, values in ``[0, vocab)``.
      partition_strategy: ``"mod"`` or ``"div"``, for a list of shards.
      name: scope name (default ``embedding_lookup``).
      validate_indices: accepted for TF1 compatibility (ids are always checked).
      max_norm: if given, embeddings with a larger L2 norm are scaled down to it.

    Returns:
      A Tensor of shape ``ids.shape + params.shape[1:]`` and params' dtype.

    Raises:
      ValueError: for no params, an unknown ``partition_strategy``, or shards
        whose trailing dims differ.
    """
    from graphflow.ops.indexing_ops import gather

    del validate_indices
    if params is None or (isinstance(params, (list, tuple)) and not params):
        raise ValueError("Need at least one param")
    if partition_strategy not in ("mod", "div"):
        raise ValueError(f"Unrecognized partition strategy: {partition_strategy}")
    plist = list(params) if isinstance(params, (list, tuple)) else [params]
    with op_scope(name, "embedding_lookup", plist + [ids]) as scope:
        ps = [to_tensor(p, name="params") for p in plist]
        ids_t = to_tensor(ids, name="ids")
        rules.check_dtype(ids_t, LABEL_INTS, "ids")
        if len(ps) == 1:
            rows = gather(ps[0], ids_t, name=scope)
            return array_ops.identity(_clip_rows(rows, ids_t, max_norm))
        return array_ops.identity(_clip_rows(
            _sharded_lookup(ps, ids_t, partition_strategy), ids_t, max_norm))


def _sharded_lookup(ps: list[Tensor], ids: Tensor, strategy: str) -> Tensor:
    """Rows of a table split into shards: each shard gathers its own ids (others masked).

    Every shard's gradient stays an IndexedSlices (rows of other shards get zeros).
    """
    from graphflow.ops.indexing_ops import gather

    tail = ps[0].shape.values
    if tail is None:
        raise errors.ShapeError(None, None, "embedding_lookup over several shards needs the "
                                            "rank of params known when the graph is built")
    for p in ps[1:]:
        if p.shape.ndims != len(tail) or not TensorShape(tail[1:]).is_compatible_with(
                p.shape.values[1:]):
            raise errors.ShapeError(None, None, f"embedding_lookup: all shards must have the "
                                                f"same trailing dims, got {ps[0].shape} and "
                                                f"{p.shape}")
    n = len(ps)
    flat = array_ops.reshape(ids, [-1])
    if strategy == "mod":
        assign = flat % n
        new_ids = flat // n
    else:
        sizes = [array_ops._dim_or_tensor(p, 0, ids.dtype) for p in ps]
        total: Any = 0
        for d in sizes:
            total = d + total if isinstance(d, Tensor) else total + d
        per = total // n
        extras = total % n
        assign = math_ops.maximum(flat // (per + 1), (flat - extras) // per)
        new_ids = math_ops.where_v2(assign < extras, flat % (per + 1), (flat - extras) % per)
    result = None
    for k, p in enumerate(ps):
        mine = math_ops.equal(assign, math_ops.cast(k, ids.dtype))
        rows = gather(p, math_ops.where_v2(mine, new_ids, array_ops.zeros_like(new_ids)))
        mask = array_ops.reshape(mine, [-1] + [1] * (len(tail) - 1))
        part = math_ops.where_v2(mask, rows, array_ops.zeros_like(rows))
        result = part if result is None else result + part
    out_shape = array_ops.concat([array_ops.shape(ids), array_ops.shape(ps[0])[1:]], 0)
    out = array_ops.reshape(result, out_shape)
    if ids.shape.ndims is not None:
        out.set_shape(TensorShape(list(ids.shape.values) + list(tail[1:])))
    return out


__all__ = [
    "relu", "relu6", "elu", "selu", "softplus", "softsign", "leaky_relu", "gelu",
    "softmax", "log_softmax", "bias_add", "l2_loss",
    "softmax_cross_entropy_with_logits", "softmax_cross_entropy_with_logits_v2",
    "sparse_softmax_cross_entropy_with_logits", "sigmoid_cross_entropy_with_logits",
    "conv2d", "conv2d_backprop_input", "conv2d_backprop_filter", "conv2d_transpose",
    "max_pool", "avg_pool", "dropout", "moments", "batch_normalization", "embedding_lookup",
]
