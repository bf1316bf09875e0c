"""Hit/miss/build counters, buffered in memory and persisted best effort.

A cache hit must stay far cheaper than a compile, so counting one only bumps
numbers in memory; the deltas are added to stats.json every FLUSH_EVERY
events, on flush() (which KernelCache.stats() calls) and at interpreter exit.
Stats are never worth an error: any failure keeps the deltas for a later try.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import tempfile
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

import filelock

from .safety import make_private_dirs, read_regular

COUNTERS = ("hits", "misses", "builds", "build_seconds", "build_seconds_saved", "corrupt_dropped",
            # the remote tier's (remote.py); zero without one
            "remote_hits", "remote_misses", "remote_writes", "remote_errors",
            "remote_auth_failures", "remote_corrupt")  # fmt: skip
FLUSH_EVERY = 64
LOCK_TIMEOUT = 0.5  # seconds; a busy stats file is not worth waiting for

_live: weakref.WeakSet[Stats] = weakref.WeakSet()


def _zero() -> dict[str, float]:
    return dict.fromkeys(COUNTERS, 0)


class Stats:
    def __init__(self, path: Path, trusted: Callable[[], bool] = lambda: True):
        self.path = path
        self._trusted = trusted  # never read or write stats in a folder the cache distrusts
        self.session = _zero()  # everything counted by this instance
        self._pending = _zero()  # counted but not yet in stats.json
        self._events = 0
        self._mutex = threading.Lock()  # a build worker thread may count too
        _live.add(self)

    def add(self, **deltas: float) -> None:
        with self._mutex:
            for name, value in deltas.items():
                self.session[name] += value
                self._pending[name] += value
            self._events += 1
            due = self._events >= FLUSH_EVERY
        if due:
            self.flush()

    def flush(self) -> bool:
        """Add the pending deltas to stats.json; True if nothing is left pending."""
        # Take the deltas out under the mutex but do the file work outside it, so a
        # thread counting a hit never waits on another thread's disk I/O.
        with self._mutex:
            pending, self._pending = self._pending, _zero()
            self._events = 0
        if not any(pending.values()):
            return True
        try:
            if not self._trusted():
                raise PermissionError("untrusted cache folder")
            make_private_dirs(self.path.parent)
            with filelock.FileLock(f"{self.path}.lock", timeout=LOCK_TIMEOUT):
                totals = self.read()
                for name, value in pending.items():
                    totals[name] += value
                _write_atomically(self.path, json.dumps(totals, indent=1).encode())
        except (OSError, filelock.Timeout):
            with self._mutex:  # put them back for a later try
                for name, value in pending.items():
                    self._pending[name] += value
            return False
        return True

    def read(self) -> dict[str, float]:
        """The persisted totals; zeros for a missing or damaged file."""
        totals = _zero()
        if not self._trusted():
            return totals
        try:
            stored = json.loads(read_regular(self.path, limit=1 << 20)[0])
        except (OSError, ValueError, RecursionError):  # RecursionError: [[[[... nested JSON
            return totals
        if isinstance(stored, dict):
            for name in COUNTERS:
                if _count(stored.get(name)):
                    totals[name] = stored[name]
        return totals

    def totals(self) -> dict[str, float]:
        """Persisted totals plus whatever could not be persisted yet."""
        totals = self.read()
        with self._mutex:
            for name, value in self._pending.items():
                totals[name] += value
        return totals


def _count(value) -> bool:
    """Whether a stored counter is usable: a finite number >= 0 (not a bool, inf, NaN or -5)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < math.inf


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@atexit.register
def _flush_all() -> None:
    for stats in list(_live):
        stats.flush()
