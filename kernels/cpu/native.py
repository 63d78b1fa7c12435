"""Compiled Numba kernels called from native code: pool jobs, with nothing compiled.

Numba compiles a kernel to a native function with its own calling convention:
``i32 f(ret*, excinfo**, args...)``, returning 0 or an error status, with each
array argument passed as the members of its struct (meminfo, parent, item count,
item size, data, then per dimension its extent, then its strides). A trampoline
``void t(int64 *block)`` made here once per argument layout (a few lines of LLVM
IR, compiled in milliseconds) unpacks a block into those arguments and calls the
kernel at the address the block holds. A kernel the dispatcher has compiled, or
loaded from Numba's disk cache, thus becomes a job for the native pool
(:mod:`pool`) as it is. A Numba ``cfunc`` around the kernel (what :mod:`entries`
makes) would compile the kernel's body again into a module of its own: done for
the mlp bench's epilogues, that took the time to its second step with an empty
kernel cache from 2.45 s to 4.71 s.

A block holds the kernel's address, then per array its data address, element
count, item size, extents and strides (bytes), then each int, then a slot the
trampoline writes the kernel's status into. Arrays are passed without a meminfo:
the kernel borrows them, as it does from its dispatcher, and Numba's reference
counting skips a null meminfo.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from typing import Any

import llvmlite.binding as llvm
import numpy as np

__all__ = ["Job", "job", "kernel_address", "trampoline"]

_lock = threading.Lock()
_trampolines: dict[tuple[tuple[int, ...], int], int] = {}
_engines: list[Any] = []  # kept alive: they own the trampolines' machine code


def kernel_address(dispatcher: Any, args: Sequence[Any]) -> int | None:
    """The address of the machine code ``dispatcher`` runs for ``args``, or None.

    Only for a kernel returning nothing, compiled (or loaded from the disk cache)
    already for exactly these argument types (each array's dtype, rank, layout and
    writability), arrays first, then ints (typed int64).
    """
    from numba import types

    try:
        sig = tuple(dispatcher.typeof_pyval(a) for a in args)
        cres = dispatcher.overloads.get(sig)
    except Exception:  # not a Numba dispatcher, or an argument Numba cannot type
        return None
    if cres is None or cres.signature.return_type != types.none:
        return None
    arrays = sum(isinstance(t, types.Array) for t in sig)
    if not all(isinstance(t, types.Array) for t in sig[:arrays]) or any(
            t != types.int64 for t in sig[arrays:]):
        return None
    try:
        return int(cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name))
    except Exception:
        return None


def _ir(ranks: tuple[int, ...], ints: int) -> str:
    """The trampoline for a kernel of arrays of ``ranks`` followed by ``ints`` ints."""
    loads, call = [], ["i8* %retp", "i8** %exc"]
    at = 1

    def word(name: str) -> str:
        nonlocal at
        loads.append(f"  %{name}.p = getelementptr i64, i64* %b, i64 {at}\n"
                     f"  %{name} = load i64, i64* %{name}.p\n")
        at += 1
        return f"i64 %{name}"

    loads.append("  %fn.i.p = getelementptr i64, i64* %b, i64 0\n"
                 "  %fn.i = load i64, i64* %fn.i.p\n")
    for j, rank in enumerate(ranks):
        word(f"d{j}.i")
        loads.append(f"  %d{j} = inttoptr i64 %d{j}.i to i8*\n")
        count, size = word(f"n{j}"), word(f"z{j}")
        dims = [word(f"e{j}.{d}") for d in range(rank)] + [word(f"s{j}.{d}")
                                                           for d in range(rank)]
        call += ["i8* null", "i8* null", count, size, f"i8* %d{j}"] + dims
    call += [word(f"k{j}") for j in range(ints)]
    sig = ", ".join(c.split(" ")[0] for c in call)
    return f"""define void @gf_trampoline(i64* %b) {{
entry:
  %ret = alloca [4 x i64], align 8
  %exc = alloca i8*, align 8
  store i8* null, i8** %exc
  %retp = bitcast [4 x i64]* %ret to i8*
{''.join(loads)}  %fn = inttoptr i64 %fn.i to i32 ({sig})*
  %st = call i32 %fn({', '.join(call)})
  %st.p = getelementptr i64, i64* %b, i64 {at}
  %st64 = sext i32 %st to i64
  store i64 %st64, i64* %st.p
  ret void
}}
"""


def trampoline(ranks: tuple[int, ...], ints: int) -> int:
    """The address of ``void t(int64 *block)`` calling a kernel of arrays of ``ranks``
    then ``ints`` ints (see the module doc for the block), made on first use."""
    with _lock:
        address = _trampolines.get((ranks, ints))
        if address is None:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            machine = llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(
                opt=2)
            mod = llvm.parse_assembly(_ir(ranks, ints))
            mod.verify()
            engine = llvm.create_mcjit_compiler(mod, machine)
            engine.finalize_object()
            _engines.append(engine)
            address = _trampolines[(ranks, ints)] = engine.get_function_address(
                "gf_trampoline")
    return address


class Job:
    """Calls of one compiled kernel over arrays and ints, as blocks for a trampoline:
    one row per call.

    Args:
      kernel: the kernel's address (:func:`kernel_address`).
      calls: per call, its arguments: arrays, then ints; of the same types in every
        call (those :func:`kernel_address` found the kernel for).

    Attributes:
      fn: the trampoline's address.
      blocks: the blocks, one row per call.
    """

    def __init__(self, kernel: int, calls: Sequence[Sequence[Any]]) -> None:
        arrays = sum(isinstance(a, np.ndarray) for a in calls[0])
        ranks = tuple(a.ndim for a in calls[0][:arrays])
        ints = len(calls[0]) - arrays
        self.fn = trampoline(ranks, ints)
        self.blocks = np.zeros((len(calls), 2 + 3 * arrays + 2 * sum(ranks) + ints), np.int64)
        for row, args in zip(self.blocks, calls):
            words = [kernel]
            for a in args[:arrays]:
                words += [a.ctypes.data, a.size, a.itemsize, *a.shape, *a.strides]
            row[:-1] = words + list(args[arrays:])
        self._section: Any = None

    def run(self) -> bool:
        """Runs every call on the native pool (one section; the caller's thread takes
        part); returns whether every kernel succeeded (False: run the whole call
        another way, which raises its error)."""
        if self._section is None:
            from graphflow.kernels.cpu import pool

            self._section = pool.Section(self.fn, self.blocks)
        self._section.run()
        return not self.failed()

    def failed(self) -> bool:
        """Whether some call's kernel returned an error status in the last run."""
        return bool(self.blocks[:, -1].any())

    def run_here(self) -> None:
        """Runs every call on this thread, in order."""
        f = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(self.fn)
        for row in self.blocks:
            f(row.ctypes.data)


def job(dispatcher: Any, calls: Sequence[Sequence[Any]]) -> Job | None:
    """The :class:`Job` of ``calls`` (each a piece's arguments) of a Numba kernel, or None
    unless one overload it has compiled (or loaded) takes every piece as it is."""
    found = {kernel_address(dispatcher, c) for c in calls}
    if len(found) != 1 or None in found:
        return None
    return Job(found.pop(), calls)
