"""Random tensors with TF1's graph-level and op-level seeds: same seeds, same numbers."""

from __future__ import annotations

from typing import Any

import numpy as np

from graphflow.framework import dtypes as _dt
from graphflow.framework import errors
from graphflow.framework.graph import Tensor, get_default_graph
from graphflow.framework.op_def import SOURCE, OpDef, register
from graphflow.ops import rules
from graphflow.ops.building import make, op_scope, to_tensor
from graphflow.ops.constant_op import constant_value_as_shape

DEFAULT_GRAPH_SEED = 87654321
_MAXINT32 = 2**31 - 1


def set_random_seed(seed: int | None) -> None:
    """Sets the graph-level seed of the default graph (TF1's ``tf.set_random_seed``)."""
    get_default_graph().seed = None if seed is None else int(seed)


def get_seed(op_seed: int | None) -> tuple[int | None, int | None]:
    """The (graph seed, op seed) pair an op uses, by TF1's rules.

    With a graph seed and no op seed, the op seed is derived from the number of
    ops in the graph so far, so rebuilding the same program repeats the numbers.
    """
    g = get_default_graph()
    global_seed = g.seed
    if global_seed is not None:
        if op_seed is None:
            op_seed = g._next_seed_id()
        seeds = (int(global_seed), int(op_seed))
    elif op_seed is not None:
        seeds = (DEFAULT_GRAPH_SEED, int(op_seed))
    else:
        seeds = (None, None)
    if seeds == (0, 0):
        seeds = (0, _MAXINT32)
    return seeds


class _RandomOp(OpDef):
    kind = SOURCE
    stateful = True

    def infer(self, op):
        s = op.inputs[0]
        rules.check_dtype(s, (_dt.int32, _dt.int64), "shape")
        return [(op.get_attr("dtype"), constant_value_as_shape(s))]

    def dims(self, shape: np.ndarray) -> tuple[int, ...]:
        dims = tuple(int(d) for d in np.ravel(shape))
        if any(d < 0 for d in dims):
            raise errors.InvalidArgumentError(None, None, f"shape {list(dims)} must be >= 0")
        return dims


@register
class RandomStandardNormal(_RandomOp):
    def reference(self, op, inputs, ctx):
        return ctx.rng(op).standard_normal(self.dims(inputs[0])).astype(
            op.get_attr("dtype").np)


@register
class RandomUniform(_RandomOp):
    """Uniform on [0, 1)."""

    def reference(self, op, inputs, ctx):
        return ctx.rng(op).random(self.dims(inputs[0])).astype(op.get_attr("dtype").np)


@register
class TruncatedNormal(_RandomOp):
    """Standard normal, values beyond 2 stddev redrawn (as TF1)."""

    def reference(self, op, inputs, ctx):
        rng = ctx.rng(op)
        shape = self.dims(inputs[0])
        out = rng.standard_normal(shape)
        bad = np.abs(out) > 2
        while bad.any():
            out[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(out) > 2
        return out.astype(op.get_attr("dtype").np)


@register
class RandomUniformInt(_RandomOp):
    """Integers uniform on [minval, maxval)."""

    def infer(self, op):
        s, lo, hi = op.inputs
        rules.check_dtype(lo, (_dt.int32, _dt.int64), "minval")
        rules.same_dtype(lo, hi)
        return [(lo.dtype, constant_value_as_shape(s))]

    def reference(self, op, inputs, ctx):
        s, lo, hi = inputs
        if not lo < hi:
            raise errors.InvalidArgumentError(None, None, f"Need minval < maxval: {lo} >= {hi}")
        return ctx.rng(op).integers(int(lo), int(hi), self.dims(s)).astype(op.outputs[0]
                                                                           .dtype.np)


def _seed_attrs(seed: int | None) -> dict[str, int]:
    s1, s2 = get_seed(seed)
    return {"seed": s1 or 0, "seed2": s2 or 0}


def _shape_tensor(shape: Any) -> Tensor:
    from graphflow.ops.array_ops import _shape_input

    return _shape_input(shape)


def _float_dtype(dtype: Any, fn: str) -> _dt.DType:
    d = _dt.as_dtype(dtype)
    if not d.is_floating:
        raise errors.DTypeError(None, None, f"{fn}: dtype must be a float type, got {d.name}")
    return d


def random_normal(shape: Any, mean: Any = 0.0, stddev: Any = 1.0, dtype: Any = _dt.float32,
                  seed: int | None = None, name: str | None = None) -> Tensor:
    """Normal random values (TF1's ``tf.random_normal``).

    Args:
      shape: output shape (list or 1-D int tensor).
      mean, stddev: scalars or tensors broadcast against the output.
      dtype: a float dtype.
      seed: op-level seed; see :func:`set_random_seed`.
      name: scope name.

    Returns:
      ``RandomStandardNormal * stddev + mean``, as TF1 builds it.
    """
    d = _float_dtype(dtype, "random_normal")
    with op_scope(name, "random_normal", [shape, mean, stddev]) as scope:
        s = _shape_tensor(shape)
        m = to_tensor(mean, dtype=d, name="mean")
        sd = to_tensor(stddev, dtype=d, name="stddev")
        rnd = make("RandomStandardNormal", [s], {"dtype": d, **_seed_attrs(seed)})
        from graphflow.ops.math_ops import add, multiply

        return add(multiply(rnd, sd, name="mul"), m, name=scope)


def truncated_normal(shape: Any, mean: Any = 0.0, stddev: Any = 1.0, dtype: Any = _dt.float32,
                     seed: int | None = None, name: str | None = None) -> Tensor:
    """Normal random values, redrawn beyond two standard deviations (``tf.truncated_normal``)."""
    d = _float_dtype(dtype, "truncated_normal")
    with op_scope(name, "truncated_normal", [shape, mean, stddev]) as scope:
        s = _shape_tensor(shape)
        m = to_tensor(mean, dtype=d, name="mean")
        sd = to_tensor(stddev, dtype=d, name="stddev")
        rnd = make("TruncatedNormal", [s], {"dtype": d, **_seed_attrs(seed)})
        from graphflow.ops.math_ops import add, multiply

        return add(multiply(rnd, sd, name="mul"), m, name=scope)


def random_uniform(shape: Any, minval: Any = 0, maxval: Any = None, dtype: Any = _dt.float32,
                   seed: int | None = None, name: str | None = None) -> Tensor:
    """Uniform random values on ``[minval, maxval)`` (TF1's ``tf.random_uniform``).

    For float dtypes ``maxval`` defaults to 1; integer dtypes need ``maxval``.

    Raises:
      ValueError: if an integer dtype is given without ``maxval``.
    """
    d = _dt.as_dtype(dtype)
    with op_scope(name, "random_uniform", [shape, minval, maxval]) as scope:
        s = _shape_tensor(shape)
        if d.is_integer:
            if maxval is None:
                raise ValueError(f"Must specify maxval for integer dtype {d.name}")
            lo = to_tensor(minval, dtype=d, name="min")
            hi = to_tensor(maxval, dtype=d, name="max")
            return make("RandomUniformInt", [s, lo, hi], _seed_attrs(seed), name=scope)
        d = _float_dtype(d, "random_uniform")
        lo = to_tensor(minval, dtype=d, name="min")
        hi = to_tensor(1 if maxval is None else maxval, dtype=d, name="max")
        rnd = make("RandomUniform", [s], {"dtype": d, **_seed_attrs(seed)})
        from graphflow.ops.math_ops import add, multiply, subtract

        return add(multiply(rnd, subtract(hi, lo, name="sub"), name="mul"), lo, name=scope)


__all__ = ["set_random_seed", "get_seed", "random_normal", "truncated_normal", "random_uniform"]
