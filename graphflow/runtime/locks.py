"""A readers-writer lock for Session runs.

Runs that only read (inference, evaluation) hold it shared and run at once: the
compiled kernels release the GIL, so they use every core. A run that writes
state (variable updates, random streams) holds it alone, so every run sees the
variables either before or after another run's updates, never half of them.
"""

from __future__ import annotations

import threading

__all__ = ["SharedLock"]


class SharedLock:
    """Many holders in shared mode, or one in exclusive mode.

    A waiting writer keeps new readers out, so a stream of reads cannot starve an
    update. Not reentrant.

    The shared fast path takes no lock: a reader registers by appending to a list
    (atomic in CPython) and only then looks at the writer flag; a writer sets the
    flag and only then waits for the list to empty. Whichever comes second sees the
    other, so a reader and a writer never both proceed. Readers that meet the flag
    deregister, wake a writer that may be waiting for them, and wait their turn.
    """

    __slots__ = ("_cond", "_readers", "_writing", "_writer_lock")

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers: list[None] = []  # one entry per reader inside
        self._writing = False  # a writer holds the lock or waits for readers to leave
        self._writer_lock = threading.Lock()  # one writer at a time

    def acquire_shared(self) -> None:
        """Blocks while a writer holds or waits for the lock, then holds it shared."""
        readers = self._readers
        while True:
            readers.append(None)
            if not self._writing:
                return
            readers.pop()
            with self._cond:
                self._cond.notify_all()  # a writer may be waiting for this reader
                while self._writing:
                    self._cond.wait()

    def release_shared(self) -> None:
        """Releases one shared hold."""
        self._readers.pop()
        if self._writing:
            self.wake_writer()

    def wake_writer(self) -> None:
        """Wakes a writer waiting for readers to leave (after a reader left)."""
        with self._cond:
            self._cond.notify_all()

    def acquire_exclusive(self) -> None:
        """Blocks until no reader or other writer holds the lock, then holds it alone."""
        self._writer_lock.acquire()
        with self._cond:
            self._writing = True
            while self._readers:
                self._cond.wait()

    def release_exclusive(self) -> None:
        """Releases the exclusive hold."""
        with self._cond:
            self._writing = False
            self._cond.notify_all()
        self._writer_lock.release()
