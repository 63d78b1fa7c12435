"""A thread pool whose hand-offs never touch the GIL: native jobs on native workers.

:mod:`threads`' pool runs Python callables: a worker leaving its spin has to take
the GIL, and when the caller holds it (it usually does, between kernel calls) the
worker sleeps on the GIL's futex until the caller lets go, which costs an idle
vCPU's wake-up. On the 2-vCPU VMs this was measured on, a parallel section of two
empty jobs cost 45-114 us there, against 7-9 us here: too much to split a 100 us
loop.

Here a job is a native function ``void f(int64 *args)`` and its argument block
(a Numba ``cfunc``, see :mod:`entries`; a piece of an OpenBLAS call, see
:func:`blas_callback`). The workers are Python threads that call, once, a
compiled loop which never returns (ctypes releases the GIL for it): idle, they
spin on a sequence word for :data:`threads.SPIN_US`, then keep checking it
between ``sched_yield`` calls for :data:`YIELD_US` (as OpenBLAS's own workers
do), then sleep on it with ``futex``. A section is one compiled call too: the
caller publishes the job list, wakes sleepers if there are any, claims jobs like
any worker (a compare-and-swap on a word that carries the section's generation, so
a late worker cannot claim from a finished section), and waits for every job to
finish. Jobs are claimed, not assigned: when a worker is slow to wake, the caller
runs its share. The caller claims from the front of the list and the workers from
the back, so with a job per thread the split is the same every time (each core
updates the same half of a variable every step). One section runs at a time; a
second caller meanwhile runs its jobs itself, in order, except OpenBLAS's, whose
jobs wait for each other: that call waits for the pool. So a job must never call
into a BLAS that runs on the pool.

Linux on x86-64 and AArch64 only (``futex``); elsewhere :func:`available` is False
and callers keep their other paths.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys
import threading
from typing import Any

import llvmlite.binding as llvm
import numpy as np

from graphflow.kernels.cpu import spin, threads

__all__ = ["Section", "available", "blas_callback", "capacity", "run_table"]

# Word offsets (int64) in the pool's control block; each on its own cache line.
_NEXT, _SEQ, _DONE, _SLEEPERS, _COUNT, _JOBS, _SPINS, _CAPACITY, _YIELD, _STOP, _BUSY = (
    0, 8, 16, 24, 32, 33, 34, 35, 36, 40, 48)
_WORDS = 56
_MAX_JOBS = 1 << 24  # the claim word's job counters are 24 bits wide

_ARCH = platform.machine().lower()
# (futex, sched_yield) system call numbers.
_SYSCALLS = {"x86_64": (202, 24), "amd64": (202, 24), "aarch64": (98, 124),
             "arm64": (98, 124)}
_FUTEX_WAIT, _FUTEX_WAKE = 128, 129  # the _PRIVATE variants

# After SPIN_US of spinning, how long an idle worker keeps checking between
# sched_yield calls before it sleeps: OpenBLAS's workers spin for ~0.1 s, and a
# pool that runs OpenBLAS's work must answer as fast (a sleeping worker made
# every product of a training step wait ~0.1 ms for its wake-up: 7% per step).
# Yielding, it leaves its core to any other thread that wants it.
YIELD_US = float(os.environ.get("GRAPHFLOW_POOL_YIELD_US", "100000"))

_lock = threading.Lock()
_engine: Any = None
_fns: dict[str, Any] = {}
_pool: _Pool | None = None


def _module(futex: int, sched_yield: int, x86: bool) -> str:
    pause = "  call void @llvm.x86.sse2.pause()\n" if x86 else ""
    decl = "declare void @llvm.x86.sse2.pause()\n" if x86 else ""

    def word(name: str, at: int) -> str:
        return f"  %{name} = getelementptr i64, i64* %w, i64 {at}\n"

    def counted(label: str, start: str, end: str, body: str, done: str) -> str:
        # for (%{label} = start; < end; ++) body, with the counter in the alloca %i;
        # then branches to ``done``.
        return f"""  store i64 {start}, i64* %i, align 8
  br label %{label}.loop
{label}.loop:
  %{label} = load i64, i64* %i, align 8
  %{label}.more = icmp slt i64 %{label}, {end}
  br i1 %{label}.more, label %{label}.body, label %{done}
{label}.body:
{body}  %{label}.next = add i64 %{label}, 1
  store i64 %{label}.next, i64* %i, align 8
  br label %{label}.loop
"""

    def posted(tag: str, otherwise: str, then: str = "go") -> str:
        # To ``then`` if the sequence word moved past the worker's last seen value.
        return f"""  %s.{tag} = load atomic i32, i32* %seqp seq_cst, align 4
  %cur.{tag} = load i32, i32* %seen, align 4
  %moved.{tag} = icmp ne i32 %s.{tag}, %cur.{tag}
  br i1 %moved.{tag}, label %{then}, label %{otherwise}
"""

    def spun(tag: str, again: str, enough: str) -> str:
        # One more spin counted in %i: back to ``again`` until %spins, then ``enough``.
        return f"""  %iv.{tag} = load i64, i64* %i, align 8
  %iv1.{tag} = add i64 %iv.{tag}, 1
  store i64 %iv1.{tag}, i64* %i, align 8
  %more.{tag} = icmp slt i64 %iv1.{tag}, %spins
  br i1 %more.{tag}, label %{again}, label %{enough}
"""

    def call_job(table: str, index: str, tag: str) -> str:
        # Calls job ``index`` of a table of (function, block) address pairs.
        return f"""  %k.{tag} = shl i64 {index}, 1
  %fp.{tag} = getelementptr i64, i64* {table}, i64 %k.{tag}
  %f.i.{tag} = load i64, i64* %fp.{tag}, align 8
  %k1.{tag} = add i64 %k.{tag}, 1
  %ap.{tag} = getelementptr i64, i64* {table}, i64 %k1.{tag}
  %a.i.{tag} = load i64, i64* %ap.{tag}, align 8
  %f.{tag} = inttoptr i64 %f.i.{tag} to void (i64*)*
  %a.{tag} = inttoptr i64 %a.i.{tag} to i64*
  call void %f.{tag}(i64* %a.{tag})
"""

    # Loop bodies of the OpenBLAS callback (below).
    fill = """  %b0 = shl i64 %f, 2
  %q0 = getelementptr i64, i64* %blk, i64 %b0
  store i64 %dojob.i, i64* %q0, align 8
  %b1 = add i64 %b0, 1
  %q1 = getelementptr i64, i64* %blk, i64 %b1
  store i64 %f, i64* %q1, align 8
  %off = mul i64 %f, %elsize
  %dj = add i64 %data.i, %off
  %b2 = add i64 %b0, 2
  %q2 = getelementptr i64, i64* %blk, i64 %b2
  store i64 %dj, i64* %q2, align 8
  %b3 = add i64 %b0, 3
  %q3 = getelementptr i64, i64* %blk, i64 %b3
  store i64 %dd, i64* %q3, align 8
  %t0 = shl i64 %f, 1
  %r0 = getelementptr i64, i64* %jobs, i64 %t0
  store i64 %job.i, i64* %r0, align 8
  %t1 = add i64 %t0, 1
  %r1 = getelementptr i64, i64* %jobs, i64 %t1
  %q0.i = ptrtoint i64* %q0 to i64
  store i64 %q0.i, i64* %r1, align 8
"""
    spawn = """  %sb = shl i64 %s, 2
  %sq = getelementptr i64, i64* %blk, i64 %sb
  %sa = bitcast i64* %sq to i8*
  %tid = getelementptr i64, i64* %table, i64 %s
  %cr = call i32 @gf_pthread_create(i64* %tid, i8* null, i8* (i8*)* @blas_thread, i8* %sa)
"""
    join = """  %ut = getelementptr i64, i64* %table, i64 %u
  %tv = load i64, i64* %ut, align 8
  %jr = call i32 @gf_pthread_join(i64 %tv, i8** null)
"""

    return f"""{decl}declare i64 @llvm.readcyclecounter()
declare i64 @gf_syscall(i64, ...)
declare i32 @gf_pthread_create(i64*, i8*, i8* (i8*)*, i8*)
declare i32 @gf_pthread_join(i64, i8**)

@gf_pool_block = global i64* null

; The claim word: generation (bits 48-63), jobs claimed from the back (24-47) and
; from the front (0-23). The section's caller claims from the front, workers from
; the back: with a job per thread, job 0 runs on the caller and job k on a worker
; whatever their timing, so consecutive sections split alike (OpenBLAS's job 0
; computes the first rows of a product; the epilogue's first piece reads them
; from the same core's cache).
define private void @claim_jobs(i64* %w, i1 %back) {{
entry:
{word("nextp", _NEXT)}{word("countp", _COUNT)}{word("jobsp", _JOBS)}{word("donep", _DONE)}\
  br label %claim
claim:
  %v = load atomic i64, i64* %nextp seq_cst, align 8
  %f = and i64 %v, 16777215
  %vb = lshr i64 %v, 24
  %b = and i64 %vb, 16777215
  %n = load atomic i64, i64* %countp seq_cst, align 8
  %taken = add i64 %f, %b
  %more = icmp ult i64 %taken, %n
  br i1 %more, label %try, label %out
try:
  %step = select i1 %back, i64 16777216, i64 1
  %v1 = add i64 %v, %step
  %r = cmpxchg i64* %nextp, i64 %v, i64 %v1 seq_cst seq_cst
  %ok = extractvalue {{ i64, i1 }} %r, 1
  br i1 %ok, label %run, label %claim
run:
  %last = sub i64 %n, 1
  %fromback = sub i64 %last, %b
  %idx = select i1 %back, i64 %fromback, i64 %f
  %jobs.i = load atomic i64, i64* %jobsp seq_cst, align 8
  %jobs = inttoptr i64 %jobs.i to i64*
{call_job("%jobs", "%idx", "c")}\
  %old = atomicrmw add i64* %donep, i64 1 seq_cst
  br label %claim
out:
  ret void
}}

define void @gf_pool_worker(i64* %w, i64 %spins) {{
entry:
{word("seqw", _SEQ)}{word("sleepp", _SLEEPERS)}{word("stopp", _STOP)}{word("yieldp", _YIELD)}\
  %seqp = bitcast i64* %seqw to i32*
  %seen = alloca i32, align 4
  %i = alloca i64, align 8
  %t0 = alloca i64, align 8
  ; From 0, the block's first value: a worker that starts late sees every section and
  ; a stop posted before it ran.
  store i32 0, i32* %seen, align 4
  br label %idle
idle:
  store i64 0, i64* %i, align 8
  %now0 = call i64 @llvm.readcyclecounter()
  store i64 %now0, i64* %t0, align 8
  br label %spin
spin:
{posted("s", "spin.next")}\
spin.next:
{pause}{spun("w", "spin", "yield")}\
yield:
{posted("y", "yield.next")}\
yield.next:
  %yr = call i64 (i64, ...) @gf_syscall(i64 {sched_yield})
  %now = call i64 @llvm.readcyclecounter()
  %start = load i64, i64* %t0, align 8
  %spent = sub i64 %now, %start
  %limit = load i64, i64* %yieldp, align 8
  %longer = icmp ult i64 %spent, %limit
  br i1 %longer, label %yield, label %sleep
sleep:
  %a1 = atomicrmw add i64* %sleepp, i64 1 seq_cst
  br label %sleep.loop
sleep.loop:
{posted("z", "futex", "woke")}\
futex:
  %fr = call i64 (i64, ...) @gf_syscall(i64 {futex}, i32* %seqp, i32 {_FUTEX_WAIT}, \
i32 %cur.z, i8* null)
  br label %sleep.loop
woke:
  %a2 = atomicrmw sub i64* %sleepp, i64 1 seq_cst
  br label %go
go:
  %s3 = load atomic i32, i32* %seqp seq_cst, align 4
  store i32 %s3, i32* %seen, align 4
  %stop = load atomic i64, i64* %stopp seq_cst, align 8
  %quit = icmp ne i64 %stop, 0
  br i1 %quit, label %exit, label %work
work:
  call void @claim_jobs(i64* %w, i1 true)
  br label %idle
exit:
  ret void
}}

define i64 @gf_cycles() {{
entry:
  %c = call i64 @llvm.readcyclecounter()
  ret i64 %c
}}

; Runs jobs[0..n) on the pool and returns when all are done. When another section
; holds the pool: with %wait, waits for it (jobs that wait for each other, as
; OpenBLAS's do, need as many threads as jobs); without, runs them here in order.
define private i64 @section(i64* %w, i64* %jobs, i64 %n, i1 %wait) {{
entry:
{word("busyp", _BUSY)}{word("countp", _COUNT)}{word("jobsp", _JOBS)}{word("donep", _DONE)}\
{word("nextp", _NEXT)}{word("seqw", _SEQ)}{word("sleepp", _SLEEPERS)}{word("spinsp", _SPINS)}\
  %seqp = bitcast i64* %seqw to i32*
  %spins = load i64, i64* %spinsp, align 8
  %i = alloca i64, align 8
  br label %acquire
acquire:
  %r = cmpxchg i64* %busyp, i64 0, i64 1 seq_cst seq_cst
  %free = extractvalue {{ i64, i1 }} %r, 1
  br i1 %free, label %post, label %taken
taken:
  br i1 %wait, label %busy.wait, label %inline
busy.wait:
{pause}  %yr0 = call i64 (i64, ...) @gf_syscall(i64 {sched_yield})
  br label %acquire
inline:
{counted("j", "0", "%n", call_job("%jobs", "%j", "i"), "inline.done")}\
inline.done:
  ret i64 0
post:
  %jobs.i = ptrtoint i64* %jobs to i64
  store atomic i64 %jobs.i, i64* %jobsp seq_cst, align 8
  store atomic i64 %n, i64* %countp seq_cst, align 8
  store atomic i64 0, i64* %donep seq_cst, align 8
  %v = load atomic i64, i64* %nextp seq_cst, align 8
  %gen = lshr i64 %v, 48
  %gen1 = add i64 %gen, 1
  %nv = shl i64 %gen1, 48
  store atomic i64 %nv, i64* %nextp seq_cst, align 8
  %old = atomicrmw add i32* %seqp, i32 1 seq_cst
  %sl = load atomic i64, i64* %sleepp seq_cst, align 8
  %asleep = icmp sgt i64 %sl, 0
  br i1 %asleep, label %wake, label %mine
wake:
  %wr = call i64 (i64, ...) @gf_syscall(i64 {futex}, i32* %seqp, i32 {_FUTEX_WAKE}, \
i32 2147483647, i8* null)
  br label %mine
mine:
  call void @claim_jobs(i64* %w, i1 false)
  store i64 0, i64* %i, align 8
  br label %wait.done
wait.done:
  %c = load atomic i64, i64* %donep seq_cst, align 8
  %all = icmp sge i64 %c, %n
  br i1 %all, label %done, label %wait.next
wait.next:
{pause}{spun("c", "wait.done", "yield")}\
yield:
  %yr = call i64 (i64, ...) @gf_syscall(i64 {sched_yield})
  br label %wait.done
done:
  store atomic i64 0, i64* %busyp seq_cst, align 8
  ret i64 1
}}

define i64 @gf_pool_run(i64* %w, i64* %jobs, i64 %n) {{
entry:
  %r = call i64 @section(i64* %w, i64* %jobs, i64 %n, i1 false)
  ret i64 %r
}}

define void @gf_pool_stop(i64* %w) {{
entry:
{word("stopp", _STOP)}{word("seqw", _SEQ)}\
  %seqp = bitcast i64* %seqw to i32*
  store atomic i64 1, i64* %stopp seq_cst, align 8
  %old = atomicrmw add i32* %seqp, i32 1 seq_cst
  %wr = call i64 (i64, ...) @gf_syscall(i64 {futex}, i32* %seqp, i32 {_FUTEX_WAKE}, \
i32 2147483647, i8* null)
  ret void
}}

define void @gf_pool_install(i64* %w) {{
entry:
  store atomic i64* %w, i64** @gf_pool_block seq_cst, align 8
  ret void
}}

; One job of an OpenBLAS call: block [dojob, thread number, job data, dojob data].
define void @gf_blas_job(i64* %a) {{
entry:
  %f.i = load i64, i64* %a, align 8
  %f = inttoptr i64 %f.i to void (i32, i8*, i32)*
  %p1 = getelementptr i64, i64* %a, i64 1
  %t.i = load i64, i64* %p1, align 8
  %t = trunc i64 %t.i to i32
  %p2 = getelementptr i64, i64* %a, i64 2
  %d.i = load i64, i64* %p2, align 8
  %d = inttoptr i64 %d.i to i8*
  %p3 = getelementptr i64, i64* %a, i64 3
  %x.i = load i64, i64* %p3, align 8
  %x = trunc i64 %x.i to i32
  call void %f(i32 %t, i8* %d, i32 %x)
  ret void
}}

define private i8* @blas_thread(i8* %a) {{
entry:
  %b = bitcast i8* %a to i64*
  call void @gf_blas_job(i64* %b)
  ret i8* null
}}

; OpenBLAS's threads callback (openblas_set_threads_callback_function): runs
; dojob(i, jobdata + i*elsize, dojob_data) for every i, all at once (its jobs wait
; for each other), and returns when all are done. On the pool when it has a
; thread per job; else (OpenBLAS set to more threads than the pool has) on a
; thread of its own per job.
define void @gf_blas_callback(i32 %sync, i8* %dojob, i32 %numjobs, i64 %elsize, \
i8* %jobdata, i32 %dojob_data) {{
entry:
  %n = sext i32 %numjobs to i64
  %table = alloca i64, i64 %n, align 8
  %dojob.i = ptrtoint i8* %dojob to i64
  %data.i = ptrtoint i8* %jobdata to i64
  %dd = sext i32 %dojob_data to i64
  %job.i = ptrtoint void (i64*)* @gf_blas_job to i64
  %w = load atomic i64*, i64** @gf_pool_block seq_cst, align 8
  %cells = shl i64 %n, 2
  %blk = alloca i64, i64 %cells, align 8
  %pairs = shl i64 %n, 1
  %jobs = alloca i64, i64 %pairs, align 8
  %i = alloca i64, align 8
{counted("f", "0", "%n", fill, "filled")}\
filled:
  %none = icmp eq i64* %w, null
  br i1 %none, label %threads, label %has.pool
has.pool:
{word("capp", _CAPACITY)}\
  %cap = load i64, i64* %capp, align 8
  %fits = icmp sle i64 %n, %cap
  br i1 %fits, label %pool, label %threads
pool:
  %r = call i64 @section(i64* %w, i64* %jobs, i64 %n, i1 true)
  ret void
threads:
{counted("s", "1", "%n", spawn, "spawned")}\
spawned:
  call void @gf_blas_job(i64* %blk)
{counted("u", "1", "%n", join, "joined")}\
joined:
  ret void
}}
"""


def available() -> bool:
    """Whether native sections can run here: Linux on x86-64/AArch64, more than one
    thread (:func:`threads.num_threads`), and ``GRAPHFLOW_NATIVE_POOL`` not ``0``."""
    return (sys.platform.startswith("linux") and _ARCH in _SYSCALLS
            and threads.num_threads() > 1
            and os.environ.get("GRAPHFLOW_NATIVE_POOL", "1") != "0")


def _load() -> dict[str, Any]:
    global _engine
    with _lock:
        if not _fns:
            futex, sched_yield = _SYSCALLS[_ARCH]
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            libc = ctypes.CDLL(None)
            for name in ("syscall", "pthread_create", "pthread_join"):
                llvm.add_symbol(f"gf_{name}",
                                ctypes.cast(getattr(libc, name), ctypes.c_void_p).value)
            triple = llvm.get_process_triple()
            machine = llvm.Target.from_triple(triple).create_target_machine(opt=2)
            mod = llvm.parse_assembly(_module(futex, sched_yield, _ARCH in ("x86_64", "amd64")))
            mod.verify()
            engine = llvm.create_mcjit_compiler(mod, machine)
            engine.finalize_object()
            _engine = engine
            void_p, i64 = ctypes.c_void_p, ctypes.c_int64
            _fns["worker"] = ctypes.CFUNCTYPE(None, void_p, i64)(
                engine.get_function_address("gf_pool_worker"))
            _fns["run"] = ctypes.CFUNCTYPE(i64, void_p, void_p, i64)(
                engine.get_function_address("gf_pool_run"))
            for name in ("stop", "install"):
                _fns[name] = ctypes.CFUNCTYPE(None, void_p)(
                    engine.get_function_address(f"gf_pool_{name}"))
            _fns["blas_callback"] = engine.get_function_address("gf_blas_callback")
            _fns["cycles"] = ctypes.CFUNCTYPE(i64)(engine.get_function_address("gf_cycles"))
    return _fns


def _cycles_per_us(cycles: Any) -> float:
    """The cycle counter's rate, over ~1 ms."""
    import time

    c0, t0 = cycles(), time.perf_counter()
    while time.perf_counter() - t0 < 1e-3:
        pass
    c1, t1 = cycles(), time.perf_counter()
    return max((c1 - c0) / ((t1 - t0) * 1e6), 1e-3)


class _Pool:
    """The control block and the worker threads of one pool."""

    def __init__(self, workers: int) -> None:
        fns = _load()
        self.words = np.zeros(_WORDS + 8, np.int64)
        # The control block starts on a cache line of its own.
        start = (-self.words.ctypes.data % 64) // 8
        self.block = self.words[start:start + _WORDS]
        self.address = self.block.ctypes.data
        self.block[_SPINS] = spins = spin.spins_for(threads.SPIN_US)
        self.block[_CAPACITY] = workers + 1
        self.block[_YIELD] = int(YIELD_US * _cycles_per_us(fns["cycles"]))
        self._run = fns["run"]
        self.threads = [threading.Thread(target=fns["worker"], args=(self.address, spins),
                                         daemon=True, name=f"graphflow-native-{i}")
                        for i in range(workers)]
        for t in self.threads:
            t.start()

    @property
    def capacity(self) -> int:
        """Jobs that can run at once: the workers and the caller."""
        return int(self.block[_CAPACITY])

    def run(self, jobs: np.ndarray, n: int) -> bool:
        if n >= _MAX_JOBS:
            raise ValueError(f"a section takes fewer than {_MAX_JOBS} jobs, got {n}")
        return bool(self._run(self.address, jobs.ctypes.data, n))

    def stop(self) -> None:
        """Ends the workers (tests: a pool of their own)."""
        _load()["stop"](self.address)
        for t in self.threads:
            t.join()


def _get() -> _Pool:
    global _pool
    p = _pool
    if p is None:
        with _lock:
            p = _pool
        if p is None:
            p = _Pool(threads.num_threads() - 1)
            with _lock:
                if _pool is None:
                    _pool = p
                else:  # another thread made one meanwhile
                    p.stop()
                    p = _pool
    return p


def _forget_after_fork() -> None:
    # A child of fork has none of the parent's threads: it makes its own pool, and
    # until then an OpenBLAS call through the callback runs on threads of its own.
    global _pool
    _pool = None
    if _fns:
        _fns["install"](None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def run_table(fn: int, blocks: np.ndarray) -> None:
    """Runs a section of one job per row of ``blocks``: ``fn(row)`` for each, on the
    pool's workers and the caller; returns when all have finished. Only where
    :func:`available` is True.

    Args:
      fn: the address of a ``void f(int64 *)``.
      blocks: a C-contiguous 2-D int64 array, one argument block per row.
    """
    n, width = blocks.shape
    base = blocks.ctypes.data
    table = np.empty(2 * n, np.int64)
    table[0::2] = fn
    table[1::2] = np.arange(base, base + 8 * width * n, 8 * width, dtype=np.int64)
    _get().run(table, n)


class Section:
    """A section whose jobs never change, ``fn(blocks[i])`` for each row, its job table
    built once: a run is one call. The blocks' contents may change between runs.

    Args:
      fn: the address of a ``void f(int64 *)``.
      blocks: a C-contiguous 2-D int64 array, one argument block per row, kept alive
        by the section.
    """

    def __init__(self, fn: int, blocks: np.ndarray) -> None:
        n, width = blocks.shape
        base = blocks.ctypes.data
        self.blocks = blocks
        self._table = np.empty(2 * n, np.int64)
        self._table[0::2] = fn
        self._table[1::2] = np.arange(base, base + 8 * width * n, 8 * width, dtype=np.int64)
        self._n = n
        self._pool: _Pool | None = None

    def run(self) -> None:
        """Runs every job; returns when all have finished."""
        p = _get()
        if p is not self._pool:  # the first run, or a forked child's new pool
            if self._n >= _MAX_JOBS:
                raise ValueError(f"a section takes fewer than {_MAX_JOBS} jobs, got {self._n}")
            self._pool, self._call = p, functools.partial(p._run, p.address,
                                                          self._table.ctypes.data, self._n)
        self._call()


def blas_callback() -> int:
    """The address of an OpenBLAS threads callback that runs OpenBLAS's parallel work on
    this process's pool (see ``openblas_set_threads_callback_function``), making the
    pool first. A call for more jobs than the pool has threads runs on threads of its
    own."""
    p = _get()
    _load()["install"](p.address)
    return _load()["blas_callback"]


def capacity() -> int:
    """Jobs the pool runs at once (its workers and the caller), making it first."""
    return _get().capacity
