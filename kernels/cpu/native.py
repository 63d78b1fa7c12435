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

A block holds the kernel's address, then per array its data address, length and
item size, then each int, then a slot the trampoline writes the kernel's status
into. Arrays are 1-D and contiguous (the flat and row-by-column loops of
:mod:`codegen`), passed without a meminfo: the kernel borrows them, as it does
from its dispatcher, and Numba's reference counting skips a null meminfo.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from typing import Any

import llvmlite.binding as llvm
import numpy as np

__all__ = ["Job", "kernel_address", "trampoline"]

_lock = threading.Lock()
_trampolines: dict[tuple[int, int], int] = {}
_engines: list[Any] = []  # kept alive: they own the trampolines' machine code


def kernel_address(dispatcher: Any, args: Sequence[Any]) -> int | None:
    """The address of the machine code ``dispatcher`` runs for ``args``, or None.

    Only for a kernel returning nothing, compiled (or loaded from the disk cache)
    already for exactly these argument types, all of them 1-D C-contiguous arrays
    or ints (typed int64).
    """
    from numba import types

    try:
        sig = tuple(dispatcher.typeof_pyval(a) for a in args)
        cres = dispatcher.overloads.get(sig)
    except Exception:  # not a Numba dispatcher, or an argument Numba cannot type
        return None
    if cres is None or cres.signature.return_type != types.none:
        return None
    for t in sig:
        if not (t == types.int64 or (isinstance(t, types.Array) and t.ndim == 1
                                     and t.layout == "C")):
            return None
    try:
        return int(cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name))
    except Exception:
        return None


def _ir(arrays: int, ints: int) -> str:
    """The trampoline for a kernel of ``arrays`` 1-D arrays followed by ``ints`` ints."""
    loads, call = [], ["i8* %retp", "i8** %exc"]

    def word(name: str, at: int) -> None:
        loads.append(f"  %{name}.p = getelementptr i64, i64* %b, i64 {at}\n"
                     f"  %{name} = load i64, i64* %{name}.p\n")

    word("fn.i", 0)
    for j in range(arrays):
        word(f"d{j}.i", 1 + 3 * j)
        word(f"n{j}", 2 + 3 * j)
        word(f"s{j}", 3 + 3 * j)
        loads.append(f"  %d{j} = inttoptr i64 %d{j}.i to i8*\n")
        call += ["i8* null", "i8* null", f"i64 %n{j}", f"i64 %s{j}", f"i8* %d{j}",
                 f"i64 %n{j}", f"i64 %s{j}"]
    for j in range(ints):
        word(f"k{j}", 1 + 3 * arrays + j)
        call.append(f"i64 %k{j}")
    sig = ", ".join(c.split(" ")[0] for c in call)
    return f"""define void @gf_trampoline(i64* %b) {{
entry:
  %ret = alloca [4 x i64], align 8
  %exc = alloca i8*, align 8
  store i8* null, i8** %exc
  %retp = bitcast [4 x i64]* %ret to i8*
{''.join(loads)}  %fn = inttoptr i64 %fn.i to i32 ({sig})*
  %st = call i32 %fn({', '.join(call)})
  %st.p = getelementptr i64, i64* %b, i64 {1 + 3 * arrays + ints}
  %st64 = sext i32 %st to i64
  store i64 %st64, i64* %st.p
  ret void
}}
"""


def trampoline(arrays: int, ints: int) -> int:
    """The address of ``void t(int64 *block)`` calling a kernel of ``arrays`` 1-D arrays
    then ``ints`` ints (see the module doc for the block), made on first use."""
    with _lock:
        address = _trampolines.get((arrays, ints))
        if address is None:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            machine = llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(
                opt=2)
            mod = llvm.parse_assembly(_ir(arrays, ints))
            mod.verify()
            engine = llvm.create_mcjit_compiler(mod, machine)
            engine.finalize_object()
            _engines.append(engine)
            address = _trampolines[(arrays, ints)] = engine.get_function_address(
                "gf_trampoline")
    return address


class Job:
    """Calls of one compiled kernel over 1-D arrays and ints, as blocks for a
    trampoline: one row per call.

    Args:
      kernel: the kernel's address (:func:`kernel_address`).
      calls: per call, its arguments: 1-D C-contiguous arrays, then ints; the same
        kinds in every call.

    Attributes:
      fn: the trampoline's address.
      blocks: the blocks, one row per call.
    """

    def __init__(self, kernel: int, calls: Sequence[Sequence[Any]]) -> None:
        arrays = sum(isinstance(a, np.ndarray) for a in calls[0])
        ints = len(calls[0]) - arrays
        self.fn = trampoline(arrays, ints)
        self.blocks = np.zeros((len(calls), 2 + 3 * arrays + ints), np.int64)
        for row, args in zip(self.blocks, calls):
            row[0] = kernel
            for j, a in enumerate(args[:arrays]):
                row[1 + 3 * j: 4 + 3 * j] = (a.ctypes.data, a.shape[0], a.itemsize)
            row[1 + 3 * arrays: 1 + 3 * arrays + ints] = args[arrays:]

    def failed(self) -> bool:
        """Whether some call's kernel returned an error status in the last run."""
        return bool(self.blocks[:, -1].any())

    def run_here(self) -> None:
        """Runs every call on this thread, in order."""
        f = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(self.fn)
        for row in self.blocks:
            f(row.ctypes.data)
