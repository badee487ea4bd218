"""The data version of a SQLite database: a value that changes with every committed write.

``PRAGMA data_version`` on one connection changes whenever *another* connection commits to
the database — a connection of this process's pool, of the engine's child process, of the
CLI — and never for anything else worth a cache's attention (DESIGN §4 reads are pure
functions of the committed data). :class:`DataVersion` keeps one dedicated, long-lived,
never-writing connection for it, so every commit by anyone is another connection's commit.
Reading it costs a few microseconds (no I/O beyond the WAL index in shared memory), which
makes it a cheap, *exact* validator for caches of read answers.

PostgreSQL has no such cheap exact counter: :meth:`DataVersion.for_url` answers None there
(and for in-memory SQLite, whose one shared connection leaves no second one to ask).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from urllib.request import pathname2url

import sqlalchemy as sa

log = logging.getLogger("duetime.store")

#: A reader waits at most this long for SQLite's locks (a WAL reader almost never waits);
#: it is read on the API's event loop, and a failed read only means "do not cache".
_BUSY_TIMEOUT_SECONDS = 0.1

#: (generation, data_version): the generation counts re-opened connections, whose
#: ``data_version`` numbering starts over, so a value is never reused for other data.
Version = tuple[int, int]


class DataVersion:
    """The data version of one SQLite database file, read on a dedicated connection."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._generation = 0

    @classmethod
    def for_url(cls, url: str) -> DataVersion | None:
        """A reader for a SQLite file URL; None for PostgreSQL and in-memory SQLite."""
        parsed = sa.make_url(url)
        if parsed.get_backend_name() != "sqlite":
            return None
        database = parsed.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        if parsed.query:  # URI options (mode=ro, …): not worth reproducing here
            return None
        return cls(database)

    def current(self) -> Version | None:
        """The version now; None when it cannot be read (callers then must not cache)."""
        with self._lock:
            try:
                conn = self._connection()
                row = conn.execute("PRAGMA data_version").fetchone()
            except sqlite3.Error:
                log.warning("cannot read the data version of %s", self.path, exc_info=True)
                self._drop()
                return None
            return (self._generation, int(row[0]))

    def close(self) -> None:
        """Close the dedicated connection (a later read opens a new one)."""
        with self._lock:
            self._drop()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # autocommit (isolation_level=None): each PRAGMA is its own read transaction,
            # so it sees every commit that finished before it, never an old snapshot.
            self._conn = sqlite3.connect(
                f"file:{pathname2url(self.path)}?mode=rw",  # never create a missing file
                uri=True,
                timeout=_BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
            self._generation += 1
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
