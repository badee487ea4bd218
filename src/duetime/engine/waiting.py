"""How the engine sleeps: until its next due instant or a change, never a fixed poll.

Changes arrive three ways: the in-process event (``store.add_change_listener`` and
:meth:`Waker.wake`), PostgreSQL ``LISTEN duetime_changes`` on a dedicated connection, and on
SQLite ``PRAGMA data_version`` read every 0.25 s from a dedicated connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import TYPE_CHECKING

import sqlalchemy as sa

from duetime.store.data_version import DataVersion, Version
from duetime.store.sqlalchemy import CHANGES_CHANNEL

if TYPE_CHECKING:
    from duetime.store.sqlalchemy import SQLAlchemyStore

log = logging.getLogger(__name__)

#: SQLite has no notifications: ``PRAGMA data_version`` is read this often while sleeping.
SQLITE_CHANGE_CHECK_SECONDS = 0.25  # another process's change waits ≤ 0.25 s; idle ~0.3 %

#: How long the LISTEN thread blocks before it checks whether it should stop.
LISTEN_TIMEOUT_SECONDS = 1.0

#: Pause before the LISTEN thread reconnects after losing its connection.
LISTEN_RETRY_SECONDS = 2.0


class Waker:
    """A wake-up flag the loop awaits, settable from any thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._pending = threading.Event()

    def bind(self) -> None:
        """Attach to the running event loop (call from inside it)."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        if self._pending.is_set():
            self._event.set()

    def wake(self) -> None:
        """Wake the loop at once (thread-safe); cheap when a wake-up is already on its way."""
        if self._pending.is_set():  # cleared by the loop before it reads what woke it
            return
        self._pending.set()
        loop, event = self._loop, self._event
        if loop is None or event is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed between check and call
            loop.call_soon_threadsafe(event.set)

    def wake_later(self, delay: float) -> None:
        """Wake the loop ``delay`` seconds from now (thread-safe)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self.wake()
            return
        with contextlib.suppress(RuntimeError):  # the loop closed between check and call
            loop.call_soon_threadsafe(loop.call_later, delay, self.wake)

    def clear(self) -> None:
        """Forget earlier wake-ups (called before a cycle reads the database)."""
        self._pending.clear()
        if self._event is not None:
            self._event.clear()

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a wake-up; return True if woken."""
        if self._event is None:
            self.bind()
        assert self._event is not None
        if timeout <= 0:
            return self._event.is_set()
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True


class SQLiteChangeWatcher:
    """Reads the database's data version (:class:`DataVersion`): it moves when others commit."""

    def __init__(self, store: SQLAlchemyStore) -> None:
        database = sa.make_url(store.url).database or ""
        self._versions = DataVersion(database) if database and database != ":memory:" else None
        self._version = self._read()

    def _read(self) -> Version | None:
        return self._versions.current() if self._versions is not None else None

    def changed(self) -> bool:
        """True when another connection committed since the last call (or it cannot tell)."""
        if self._versions is None:
            return False
        version = self._read()
        moved = version is None or version != self._version
        self._version = version
        return moved

    def close(self) -> None:
        """Close the watcher's connection."""
        if self._versions is not None:
            self._versions.close()


class PostgresListener:
    """``LISTEN duetime_changes`` on a dedicated psycopg connection, in its own thread."""

    def __init__(self, store: SQLAlchemyStore, waker: Waker, *, ignore: str = "") -> None:
        url = sa.make_url(store.url).set(drivername="postgresql")
        self._ignore = ignore  # the engine's own changes: it knows what it wrote
        self._dsn = url.render_as_string(hide_password=False)
        self._waker = waker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="duetime-listen", daemon=True)

    def start(self) -> None:
        """Start listening."""
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (returns within about a second)."""
        self._stop.set()
        self._thread.join(timeout=LISTEN_TIMEOUT_SECONDS * 3)

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANGES_CHANNEL}")
                    self._waker.wake()  # changes may have happened while we were not listening
                    self._listen(conn)
            except psycopg.Error as exc:
                log.warning(
                    "LISTEN connection lost: %s", exc, extra={"event": "engine.listen_lost"}
                )
                self._stop.wait(LISTEN_RETRY_SECONDS)

    def _listen(self, conn: object) -> None:
        import psycopg

        assert isinstance(conn, psycopg.Connection)
        while not self._stop.is_set():
            for notify in conn.notifies(timeout=LISTEN_TIMEOUT_SECONDS, stop_after=1):
                if not self._ignore or notify.payload != self._ignore:
                    self._waker.wake()
