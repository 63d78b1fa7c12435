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

    Writers waiting keep new readers out, so a stream of reads cannot starve an
    update. Not reentrant.
    """

    __slots__ = ("_mutex", "_cond", "_readers", "_writers")

    def __init__(self) -> None:
        # The fast paths take the mutex directly (a C-level ``with``); waiting goes
        # through the condition built on it.
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._readers = 0  # holding shared; -1 while a writer holds the lock
        self._writers = 0  # holding or waiting

    def acquire_shared(self) -> None:
        """Blocks while a writer holds or waits for the lock, then holds it shared."""
        with self._mutex:
            if not self._writers:
                self._readers += 1
                return
            while self._writers:
                self._cond.wait()
            self._readers += 1

    def release_shared(self) -> None:
        """Releases one shared hold."""
        with self._mutex:
            self._readers -= 1
            if not self._readers and self._writers:
                self._cond.notify_all()

    def acquire_exclusive(self) -> None:
        """Blocks until no reader or other writer holds the lock, then holds it alone."""
        with self._mutex:
            self._writers += 1
            while self._readers:  # readers, or -1: another writer
                self._cond.wait()
            self._readers = -1

    def release_exclusive(self) -> None:
        """Releases the exclusive hold."""
        with self._mutex:
            self._readers = 0
            self._writers -= 1
            self._cond.notify_all()
