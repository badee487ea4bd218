"""The SQLAlchemy store: SQLite (embedded default) and PostgreSQL through psycopg 3.

Transactions: SQLite writes use ``BEGIN IMMEDIATE`` (WAL, synchronous=NORMAL, busy_timeout);
PostgreSQL runs READ COMMITTED with row locks. The facade's CRUD SQL lives here; the
engine's claim SQL lives in :mod:`duetime.store.claims`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from duetime.clock import Clock
from duetime.errors import ConfigurationError

log = logging.getLogger(__name__)

#: NOTIFY channel every write that changed schedules or runs signals (PostgreSQL).
CHANGES_CHANNEL = "duetime_changes"

#: How long SQLite waits on a lock inside one statement before giving up (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000

#: ``BEGIN IMMEDIATE`` attempts on "database is locked" (on top of busy_timeout).
SQLITE_BEGIN_ATTEMPTS = 8
SQLITE_BEGIN_BACKOFF_SECONDS = 0.05

_WRITE_OPTION = "duetime_write"
_CHANGED_KEY = "duetime_changed"

Dialect = Literal["sqlite", "postgresql"]


def normalize_url(url: str) -> str:
    """Return ``url`` with PostgreSQL URLs routed to psycopg 3; refuse unknown backends."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"database_url {url!r} is not a database URL") from exc
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise ConfigurationError(
            f"database_url {parsed.render_as_string(hide_password=True)!r}: "
            "only sqlite:/// and postgresql:// are supported"
        )
    return parsed.render_as_string(hide_password=False)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _sqlite_on_begin)
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: sa.Connection) -> None:
    write = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def create_store_engine(url: str) -> sa.Engine:
    """Create an Engine configured for duetime (pragmas, explicit BEGIN on SQLite)."""
    url = normalize_url(url)
    if sa.make_url(url).get_backend_name() == "sqlite":
        database = sa.make_url(url).database
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
        if not database or database == ":memory:":
            kwargs["poolclass"] = sa.pool.StaticPool
        engine = sa.create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, isolation_level="READ COMMITTED")


def _is_locked(exc: OperationalError) -> bool:
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    return "database is locked" in text or "database is busy" in text


class SQLAlchemyStore:
    """Access to one duetime database (see DESIGN §3, §4 and docs/decisions)."""

    def __init__(self, url: str, *, clock: Clock) -> None:
        self.url = normalize_url(url)
        self.engine = create_store_engine(self.url)
        name = self.engine.dialect.name
        self.dialect: Dialect = "postgresql" if name == "postgresql" else "sqlite"
        self.clock = clock
        self._listeners: list[Callable[[], None]] = []
        self._listeners_lock = threading.Lock()

    # ------------------------------------------------------------ transactions
    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """One write transaction; commits on exit, rolls back on error."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{_WRITE_OPTION: True})
            trans = self._begin(conn)
            try:
                yield conn
            except BaseException:
                conn.info.pop(_CHANGED_KEY, None)
                trans.rollback()
                raise
            trans.commit()
            if conn.info.pop(_CHANGED_KEY, False):
                self._notify_listeners()

    def _begin(self, conn: sa.Connection) -> sa.RootTransaction:
        """Begin, retrying SQLite's "database is locked" with exponential backoff."""
        for attempt in range(SQLITE_BEGIN_ATTEMPTS):
            try:
                return conn.begin()
            except OperationalError as exc:
                if self.dialect != "sqlite" or not _is_locked(exc):
                    raise
                if attempt == SQLITE_BEGIN_ATTEMPTS - 1:
                    raise
                log.warning("sqlite database is locked; retrying BEGIN (attempt %d)", attempt + 1)
                time.sleep(SQLITE_BEGIN_BACKOFF_SECONDS * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """One read transaction (a consistent snapshot)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def changed(self, conn: sa.Connection) -> None:
        """Signal that this write transaction changed schedules or runs."""
        conn.info[_CHANGED_KEY] = True
        if self.dialect == "postgresql":
            conn.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": CHANGES_CHANNEL})

    def add_change_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (no arguments) after every committed change made through us."""
        with self._listeners_lock:
            self._listeners.append(callback)

    def remove_change_listener(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback``."""
        with self._listeners_lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    def _notify_listeners(self) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for callback in listeners:
            try:
                callback()
            except Exception:
                log.exception("change listener failed")

    # ------------------------------------------------------------ housekeeping
    def check_schema(self) -> None:
        """Raise SchemaOutdatedError unless the database is at the newest revision."""
        from duetime.store.migrate import check_engine_schema

        check_engine_schema(self.engine)

    def db_now(self) -> datetime:
        """Return the database's current time (PostgreSQL) or the clock's (SQLite)."""
        if self.dialect != "postgresql":
            return self.clock.now()
        with self.engine.connect() as conn:
            value = conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
        instant: datetime = value
        return instant

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
