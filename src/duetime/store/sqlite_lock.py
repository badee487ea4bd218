"""One SQLite writer at a time, handed over at once (threads and processes).

SQLite lets one writer in; the others wait in its busy handler, which sleeps up to 100 ms
between attempts, so under contention a waiting writer misses free moments and its latency
tail reaches seconds (the API's trigger requests against the engine's writes). This lock
serialises the write transactions of every duetime process on the file: threads on a
re-entrant lock, processes on ``flock()`` of ``<database>-writelock``, which the kernel hands
to the next waiter as soon as it is released (and releases if its holder dies). Where
``fcntl`` does not exist (Windows) only threads are serialised; SQLite's own locking still
guarantees correctness everywhere — this only makes waiting fair and fast.
"""

from __future__ import annotations

import os
import threading
import weakref
from types import TracebackType

import sqlalchemy as sa

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class SQLiteWriteLock:
    """A re-entrant write lock for one SQLite database file (see module docstring)."""

    def __init__(self, url: str) -> None:
        self._lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        database = sa.make_url(url).database or ""
        if fcntl is not None and database and database != ":memory:":
            try:
                self._fd = os.open(database + "-writelock", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:  # a read-only directory: threads only
                self._fd = None
            else:
                weakref.finalize(self, os.close, self._fd)

    def __enter__(self) -> None:
        self._lock.acquire()
        self._depth += 1
        if self._depth == 1 and self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._depth -= 1
                self._lock.release()
                raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._lock.release()
