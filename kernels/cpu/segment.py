"""Neighbouring remembered kernels run as their calls alone: a plan's steady state.

A :class:`memo.Memo` saves a kernel the decisions of its full path, but the
kernel still runs a little Python of its own each step: its ``run`` method reads
its inputs from the run's environment, the memo compares each with the array it
bound, and the outputs go back into the environment. Each of those lines runs
right after the kernel before it has evicted the interpreter's caches.

A :class:`Segment` covers a run of neighbouring steps whose kernels may keep
memos (``CpuExecutable._enable_memos`` decides). After a run it splits them into
groups of neighbours that all ended that run holding a memo of the inputs they
read, and the kernels without one. A group knows which of its inputs come from
outside it (feeds, variables, values of earlier steps): those are the only ones
a later run compares (another array of the same layout, the next batch, rebinds
the memos that read it). Every other input is the output of an earlier memo of
the group, the same array on every run. If they all match, the group's memos'
calls run one after the other and their outputs are stored at the end;
otherwise each of its kernels takes its own path, and the group learns again
from that run. In the mlp bench step (784-512-512-10, batch 256) its nine
products and the loss run as one group; as two groups (the products only),
they saved ~0.6% of the step (paired runs in one process).
"""

from __future__ import annotations

from typing import Any

from graphflow.runtime.reference import RunState

__all__ = ["Segment", "segmentable"]


def segmentable(kernel: Any) -> bool:
    """Whether ``kernel`` may be part of a :class:`Segment`: it may remember its calls
    (see ``CpuExecutable._enable_memos``; a kernel with ``remembers`` False never
    does) and says where its memo's inputs come from and where its memo's outputs go
    (``memo_sources``, ``memo_stores()``: per output, its buffer and its index in the
    memo's ``outs``, which a call may replace)."""
    return (bool(getattr(kernel, "memo_ok", False)) and hasattr(kernel, "memo_sources")
            and getattr(kernel, "remembers", True))


class _Group:
    """Neighbouring kernels of a segment that all hold memos: their calls alone while
    the inputs from outside the group match."""

    def __init__(self, kernels: list[Any], outputs: list[list[int]]) -> None:
        self.kernels = kernels
        # Per kernel: the positions of its memo's inputs that come from outside the
        # group (no earlier kernel of it writes their buffer), with the buffers.
        written: set[int] = set()
        self._outside: list[list[tuple[int, int]]] = []
        for k, outs in zip(kernels, outputs):
            self._outside.append([(i, b) for i, b in enumerate(k.memo_sources)
                                  if b not in written])
            written.update(outs)
        # (kernel, memo) per kernel, (memo, input position, buffer) per outside input,
        # the memos in order, and (buffer, memo's outs, index) per output: the fast path.
        self._fast: tuple | None = None
        self.repeats = 0

    def run(self, env: list[Any], state: RunState) -> bool:
        """Runs the group's steps; returns False if some kernel ended without a memo of
        the inputs it read (the group has no fast path then)."""
        fast = self._fast
        if fast is not None:
            owners, checks, memos, stores = fast
            # A memo replaced meanwhile (a traced run calls the kernels themselves).
            for k, m in owners:
                if k._memo is not m:
                    break
            else:
                for m, i, b in checks:
                    x = env[b]
                    if not m.holds(i, x) and not m.accept(i, x):
                        break
                else:
                    for m in memos:
                        m.call(m.args)
                    for b, outs, k in stores:
                        env[b] = outs[k]
                    self.repeats += 1
                    return True
        ins = []
        for k in self.kernels:
            ins.append([env[b] for b in k.memo_sources])
            k.run(env, state)
        self._fast = self.learn(ins)
        return self._fast is not None

    def learn(self, ins: list[list[Any]]) -> tuple | None:
        """The fast path after a run in which the kernels read ``ins`` (per kernel, its
        memo's inputs), or None if some kernel did not end with a memo of them."""
        owners, checks, stores = [], [], []
        for k, values, outside in zip(self.kernels, ins, self._outside):
            m = k._memo
            if m is None or not all(m.holds(i, x) for i, x in enumerate(values)):
                return None
            owners.append((k, m))
            checks += [(m, i, b) for i, b in outside]
            stores += [(b, m.outs, j) for b, j in k.memo_stores()]
        return owners, checks, [m for _, m in owners], stores


class Segment:
    """Neighbouring steps whose kernels may remember their calls, run as groups of
    memos' calls (see the module doc).

    Args:
      kernels: the kernels of consecutive steps, in order; each :func:`segmentable`.
      outputs: per kernel, the buffers its step writes.

    Attributes:
      kernels: as given.
      groups: the groups of the last split (None before the first run, or when a
        group lost its memos: the next run splits again).
    """

    def __init__(self, kernels: list[Any], outputs: list[list[int]]) -> None:
        self.kernels = kernels
        self._outputs = outputs
        self.groups: list[_Group] | None = None
        self._parts: list[Any] = []  # per group or lone kernel: its run(env, state)

    def run(self, env: list[Any], state: RunState) -> None:
        """Runs the segment's steps."""
        if self.groups is None:
            ins = []
            for k in self.kernels:
                ins.append([env[b] for b in k.memo_sources])
                k.run(env, state)
            self._split(ins)
            return
        for part in self._parts:
            if part(env, state) is False:
                self.groups = None

    def _split(self, ins: list[list[Any]]) -> None:
        """Groups the kernels that hold memos of the inputs ``ins`` they just read."""
        held = [k._memo is not None and all(k._memo.holds(i, x) for i, x in enumerate(v))
                for k, v in zip(self.kernels, ins)]
        self.groups, self._parts = [], []
        j, n = 0, len(self.kernels)
        while j < n:
            end = j
            while end < n and held[end]:
                end += 1
            if end - j >= 2:
                group = _Group(self.kernels[j:end], self._outputs[j:end])
                group._fast = group.learn(ins[j:end])
                self.groups.append(group)
                self._parts.append(group.run)
            else:
                end = max(end, j + 1)
                self._parts += [k.run for k in self.kernels[j:end]]
            j = end
