"""Waiting for another thread's store without sleeping and without holding the GIL.

Waking a thread that sleeps on a lock costs the OS a wake-up of an idle core:
about 70-130 us on the 2-vCPU VMs this was measured on (a hypervisor exit),
per hand-off of a kernel piece to the pool and again per hand-back. Spinning
on a memory word for a while before sleeping (as OpenMP's and Eigen's pools
do) turns that into a few hundred nanoseconds when the next piece comes soon,
which is the case inside a run. The loops are two tiny LLVM IR functions
called through ctypes (which releases the GIL), with ``pause`` on x86.
"""

from __future__ import annotations

import ctypes
import threading
import time
from typing import Any

import llvmlite.binding as llvm

__all__ = ["until_changed", "until_reached", "spins_for"]

_lock = threading.Lock()
_fns: dict[str, Any] = {}
_engine: Any = None
_per_us = 0.0


def _module(x86: bool) -> str:
    pause = "  call void @llvm.x86.sse2.pause()\n" if x86 else ""
    decl = "declare void @llvm.x86.sse2.pause()\n\n" if x86 else ""

    def fn(name: str, cond: str) -> str:
        # Returns the word's last value: on leaving early, the value that ended the wait.
        return (f"define i64 @{name}(i64* %p, i64 %v, i64 %n) {{\n"
                "entry:\n  br label %loop\n"
                "loop:\n  %i = phi i64 [0, %entry], [%i1, %next]\n"
                "  %x = load atomic i64, i64* %p monotonic, align 8\n"
                f"  %stop = {cond}\n"
                "  br i1 %stop, label %done, label %next\n"
                f"next:\n{pause}  %i1 = add i64 %i, 1\n"
                "  %more = icmp slt i64 %i1, %n\n"
                "  br i1 %more, label %loop, label %done\n"
                "done:\n  ret i64 %x\n}\n")

    return (decl + fn("until_changed", "icmp ne i64 %x, %v") + "\n"
            + fn("until_reached", "icmp sge i64 %x, %v"))


def _load() -> dict[str, Any]:
    global _engine, _per_us
    with _lock:
        if not _fns:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            triple = llvm.get_process_triple()
            machine = llvm.Target.from_triple(triple).create_target_machine(opt=2)
            mod = llvm.parse_assembly(_module(triple.startswith(("x86_64", "i686", "i386"))))
            mod.verify()
            _engine = llvm.create_mcjit_compiler(mod, machine)
            _engine.finalize_object()
            proto = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                                     ctypes.c_int64)
            for name in ("until_changed", "until_reached"):
                _fns[name] = proto(_engine.get_function_address(name))
            # Iterations per microsecond: a pause takes 10 to 140 cycles by CPU.
            word = ctypes.c_int64(0)
            n = 20000
            start = time.perf_counter()
            _fns["until_changed"](ctypes.addressof(word), 0, n)
            _per_us = n / max((time.perf_counter() - start) * 1e6, 1e-3)
    return _fns


def spins_for(microseconds: float) -> int:
    """The iteration count that makes a wait last about ``microseconds``."""
    _load()
    return max(1, int(_per_us * microseconds))


def until_changed(address: int, value: int, spins: int) -> int:
    """Spins until the int64 at ``address`` differs from ``value`` or ``spins`` run out.

    Returns:
      The word's last value read (``value`` if the spins ran out).
    """
    return _load()["until_changed"](address, value, spins)


def until_reached(address: int, value: int, spins: int) -> int:
    """Spins until the int64 at ``address`` is at least ``value`` or ``spins`` run out.

    Returns:
      The word's last value read.
    """
    return _load()["until_reached"](address, value, spins)
