"""Matrix decompositions: QR (used by the orthogonal initializer)."""

from __future__ import annotations

from typing import Any

import numpy as np

from graphflow.framework import dtypes as _dt
from graphflow.framework.graph import Tensor
from graphflow.framework.op_def import OPAQUE, OpDef, register
from graphflow.framework.tensor_shape import TensorShape, unknown_shape
from graphflow.ops import rules
from graphflow.ops.building import make, op_scope, to_tensor


@register
class Qr(OpDef):
    """QR decomposition of the last two dims; attr ``full_matrices``. Outputs q, r."""

    kind = OPAQUE

    def infer(self, op):
        x = op.inputs[0]
        rules.check_dtype(x, (_dt.float32, _dt.float64), "input")
        rules.require_rank_at_least(x, 2, "input")
        if x.shape.ndims is None:
            return [(x.dtype, unknown_shape()), (x.dtype, unknown_shape())]
        *batch, m, n = x.shape.values
        if op.get_attr("full_matrices"):
            k_q, k_r = m, m
        else:
            k_q = k_r = None if m is None or n is None else min(m, n)
        return [(x.dtype, TensorShape(batch + [m, k_q])),
                (x.dtype, TensorShape(batch + [k_r, n]))]

    def reference(self, op, inputs, ctx):
        mode = "complete" if op.get_attr("full_matrices") else "reduced"
        q, r = np.linalg.qr(inputs[0], mode=mode)
        return [q, r]


def qr(input: Any, full_matrices: bool = False, name: str | None = None) -> list[Tensor]:
    """QR decomposition ``input = q @ r`` of the last two dims (TF1's ``tf.linalg.qr``).

    Args:
      input: a float tensor of rank >= 2.
      full_matrices: compute the full-size q and r.
      name: op name.

    Returns:
      ``[q, r]``.
    """
    with op_scope(name, "Qr", [input]) as scope:
        x = to_tensor(input, name="input")
        return make("Qr", [x], {"full_matrices": bool(full_matrices)}, name=scope)


__all__ = ["qr"]
