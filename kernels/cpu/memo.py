"""A kernel's last call, repeated while nothing about it changed: the steady-state path.

In a training step most of the Python that runs between two kernels decides again
what it decided on the step before: the dispatch key, the compiled loop, the views
of each input, fresh output buffers. It runs right after a product or a large loop
has evicted the interpreter's caches, and there it is slow: in the mlp step
(784-512-512-10, batch 256) the interpreter was ~14% of the main thread's samples
under ``perf``, and replaying the step's recorded kernel calls with their
arguments bound took 4.35 ms against 5.94 ms for the step itself (same process,
alternating).

A :class:`Memo` keeps a kernel's call with its arguments bound (the views of
its inputs, its output arrays) and repeats it while every input is the same
array object of the same shape as last time; an input that is another array of
the same shape, dtype and strides (the next batch, fed anew) only rebinds the
arguments. Anything else takes the kernel's full path, which then remembers
its new call.

The outputs are written in place on every run, so a memo is only made where no
array of an earlier run can still be held: the plan's runs exclude each other (a
training step, which writes variables), and every output buffer is read only by
kernels that neither keep their inputs nor return them, and is not fetched (see
``CpuExecutable._enable_memos`` in backend.py).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Memo"]


class Memo:
    """One kernel call over fixed output arrays, repeated while its inputs match.

    Args:
      inputs: the arrays the call was made from.
      outs: its output arrays, written in place by every repeat.
      prepare: ``prepare(inputs, outs) -> args``: the call's arguments for inputs
        of the same shapes, dtypes and strides.
      call: ``call(args)``: the kernel call itself.
      args: ``prepare(inputs, outs)`` when the caller has it already.

    Attributes:
      outs: the output arrays.
      args: the bound arguments; ``call(args)`` repeats the call.
    """

    __slots__ = ("_refs", "_sigs", "outs", "args", "prepare", "call")

    def __init__(self, inputs: list[np.ndarray], outs: list[np.ndarray],
                 prepare: Callable[[list[np.ndarray], list[np.ndarray]], Any],
                 call: Callable[[Any], None], args: Any = None) -> None:
        self._refs = [weakref.ref(x) for x in inputs]
        self._sigs = [(x.shape, x.dtype, x.strides) for x in inputs]
        self.outs = outs
        self.prepare = prepare
        self.call = call
        self.args = prepare(inputs, outs) if args is None else args

    @staticmethod
    def applies(inputs: list[Any]) -> bool:
        """Whether a call over ``inputs`` can be remembered (all are NumPy arrays)."""
        return all(type(x) is np.ndarray for x in inputs)

    def run(self, inputs: list[Any]) -> bool:
        """Repeats the call on ``inputs`` if they match; returns whether it ran (its
        results are then in :attr:`outs`)."""
        rebind = False
        for x, r, sig in zip(inputs, self._refs, self._sigs):
            if r() is x:
                if x.shape != sig[0]:  # reshaped in place since
                    return False
            elif type(x) is not np.ndarray or (x.shape, x.dtype, x.strides) != sig:
                return False
            else:
                rebind = True
        if rebind:
            self.args = self.prepare(inputs, self.outs)
            self._refs = [weakref.ref(x) for x in inputs]
        self.call(self.args)
        return True

    def holds(self, i: int, x: Any) -> bool:
        """Whether input ``i`` is ``x`` as last bound (the same array, not reshaped)."""
        return self._refs[i]() is x and x.shape == self._sigs[i][0]

    def accept(self, i: int, x: Any) -> bool:
        """Takes ``x`` as input ``i`` from now on if :meth:`run` would (rebinding the
        arguments when it is another array); the other inputs stay as last bound.

        Returns:
          Whether the memo now holds ``x`` (False: ``x`` needs the kernel's full path,
          or another input's array is gone).
        """
        if self.holds(i, x):
            return True
        if type(x) is not np.ndarray or (x.shape, x.dtype, x.strides) != self._sigs[i]:
            return False
        inputs = [r() for r in self._refs]
        inputs[i] = x
        if any(v is None for v in inputs):
            return False
        self.args = self.prepare(inputs, self.outs)
        self._refs[i] = weakref.ref(x)
        return True
