"""Native entry points for Numba kernels: jobs the native pool (:mod:`pool`) can run.

A pool job is ``void f(int64 *block)``. :func:`entry` wraps a Numba kernel over 1-D
arrays and scalars as a Numba ``cfunc`` of that shape, generated as a small module
of the kernel cache (:func:`cache.load_kernel`), so its machine code is compiled
once per cache. The block holds, in order, each array's data address and length,
then each scalar (floats as the bits of a float64, whose conversion to float32 is
exact for a float32 value; ints and bools as int64), for a ranged entry the range
``lo, hi`` of the elements to process, then one slot the entry writes the
kernel's result into (0/1 for a bool, 0 when it returns nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from graphflow.kernels.cpu import cache

__all__ = ["entry"]


@intrinsic
def voidptr(typingctx: Any, address: Any) -> Any:
    """The address (an int64) as a ``void*`` for ``carray``."""
    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(types.int64), codegen


@intrinsic
def float_bits(typingctx: Any, bits: Any) -> Any:
    """The float64 whose bits are the int64 ``bits``."""
    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


_FLOAT_KINDS = ("float32", "float64")


def _source(module: str, name: str, arrays: Sequence[str], scalars: Sequence[str],
            returns: bool, ranged: bool) -> str:
    lines = ["from numba import carray, cfunc, types",
             "import numpy as np",
             "from graphflow.kernels.cpu.entries import float_bits, voidptr"]
    if ranged:
        lines.append("from graphflow.kernels.cpu.optimizers import _disjoint, _span")
    lines.append(f"from {module} import {name} as _body")
    lines += ["", "",
              '@cfunc(types.void(types.CPointer(types.int64)), cache=True, nogil=True, '
              'error_model="numpy")',
              "def kernel(p):"]
    names = []
    for j, dt in enumerate(arrays):
        lines.append(f"    a{j} = carray(voidptr(p[{2 * j}]), (p[{2 * j + 1}],), np.{dt})")
        names.append(f"a{j}")
    at = 2 * len(arrays)
    result = at + len(scalars) + (2 if ranged else 0)
    if ranged:
        lo, hi = at + len(scalars), at + len(scalars) + 1
        spans = ", ".join(f"_span(a{j})" for j in range(len(arrays)))
        lines += [f"    if not _disjoint(({spans},)):",
                  f"        p[{result}] = 0",
                  "        return"]
        for j in range(len(arrays)):
            lines.append(f"    a{j} = a{j}[p[{lo}]:p[{hi}]]")
    for j, kind in enumerate(scalars):
        if kind in _FLOAT_KINDS:
            lines.append(f"    s{j} = np.{kind}(float_bits(p[{at + j}]))")
        elif kind == "bool":
            lines.append(f"    s{j} = p[{at + j}] != 0")
        else:
            lines.append(f"    s{j} = np.{kind}(p[{at + j}])")
        names.append(f"s{j}")
    call = f"_body({', '.join(names)})"
    if returns:
        lines.append(f"    p[{result}] = 1 if {call} else 0")
    else:
        lines += [f"    {call}", f"    p[{result}] = 0"]
    return "\n".join(lines) + "\n"


def entry(arrays: Sequence[Any], scalars: Sequence[str], *, module: str, name: str,
          returns: bool = False, ranged: bool = False) -> int:
    """The address of a native entry calling the Numba kernel ``module.name``.

    Args:
      arrays: the dtypes of the kernel's leading array arguments (1-D, C-contiguous).
      scalars: the kinds of the scalar arguments after them: "float32", "float64",
        "int64" or "bool".
      module, name: where the kernel (an importable ``njit`` function) is defined.
      returns: whether the kernel returns a bool to store in the result slot.
      ranged: the block ends with ``lo, hi`` (before the result slot): the kernel
        gets elements ``[lo, hi)`` of each array, and only when the whole arrays do not
        overlap; when they do, the entry writes nothing and stores 0 (each piece of
        a split call decides alike, so none writes).

    Returns:
      The address of ``void f(int64 *block)`` (see the module doc for the block).
    """
    arrays = [np.dtype(a).name for a in arrays]
    source = _source(module, name, arrays, scalars, returns, ranged)
    fn = cache.load_kernel(source, "entry:" + ",".join(arrays) + ":" + ",".join(scalars)
                           + (":ranged" if ranged else ""))
    return fn.address
