"""The SQLAlchemy store: SQLite (embedded default) and PostgreSQL through psycopg 3.

Transactions: SQLite writes use ``BEGIN IMMEDIATE`` (WAL, synchronous=NORMAL, busy_timeout);
PostgreSQL runs READ COMMITTED with row locks. The facade's CRUD SQL lives here; the
engine's claim SQL lives in :mod:`duetime.store.claims`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError

from duetime.clock import Clock
from duetime.errors import (
    ConfigurationError,
    ConflictError,
    DuetimeError,
    NotFoundError,
    ValidationError,
    VersionMismatchError,
)
from duetime.models import ACTIVE_RUN_STATES, Page, Run, RunState, Schedule, ScheduleState
from duetime.store import tables as t
from duetime.store.checkpoint import WAL_AUTOCHECKPOINT_BACKSTOP_PAGES, WalCheckpointer
from duetime.store.rows import row_to_run, row_to_schedule, run_reader, schedule_reader
from duetime.store.sqlite_lock import SQLiteWriteLock

log = logging.getLogger(__name__)

#: NOTIFY channel every write that changed schedules or runs signals (PostgreSQL).
CHANGES_CHANNEL = "duetime_changes"

#: How long SQLite waits on a lock inside one statement before giving up (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000

#: ``BEGIN IMMEDIATE`` attempts on "database is locked" (on top of busy_timeout).
SQLITE_BEGIN_ATTEMPTS = 8
SQLITE_BEGIN_BACKOFF_SECONDS = 0.05

#: Connection execution option that makes SQLite begin with BEGIN IMMEDIATE.
WRITE_OPTION = "duetime_write"
_CHANGED_KEY = "duetime_changed"

Dialect = Literal["sqlite", "postgresql"]

T = TypeVar("T")

#: The tenant of admin keys that span every tenant.
ALL_TENANTS = "*"

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
CLEANUP_BATCH_SIZE = 1000
#: Schedules read per page by recalculate_next_runs.
RECALCULATE_PAGE_SIZE = 500

_ACTIVE = [state.value for state in ACTIVE_RUN_STATES]
_TERMINAL = [state.value for state in RunState if state.is_terminal]


#: ``user:password@`` in a URL that could not be parsed (masked before it is shown).
_CREDENTIALS = re.compile(r"(//[^/@:]*:)[^@]*@")


def normalize_url(url: str) -> str:
    """Return ``url`` with PostgreSQL URLs routed to psycopg 3; refuse unknown backends."""
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a non-numeric port
        shown = _CREDENTIALS.sub(r"\1***@", url)
        raise ConfigurationError(f"database_url {shown!r} is not a database URL") from None
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
        # Checkpoints run on the store's WalCheckpointer thread, off the write lock; the
        # automatic one inside a writer's COMMIT is only a backstop (see its constant).
        cursor.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_BACKSTOP_PAGES}")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: sa.Connection) -> None:
    write = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


#: Execution option of statements whose text parameters were checked when first stored.
TRUSTED_OPTION = "duetime_trusted"


def change_origin(thread: int | None = None) -> str:
    """The NOTIFY payload of changes committed by ``thread`` (default: this one)."""
    return f"{os.getpid()}:{thread if thread is not None else threading.get_ident()}"


class _RolledBack(Exception):
    """A run-now batch failed before its commit: nothing of it was stored."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _has_nul(parameters: Any) -> bool:
    """Tell whether any text in ``parameters`` (nested lists, tuples, dicts) holds a NUL.

    Checks concrete types only (no ABC ``isinstance``): this runs on every statement.
    """
    if isinstance(parameters, dict):
        parameters = parameters.values()
    elif not isinstance(parameters, list | tuple):
        return False
    for value in parameters:
        if type(value) is str:
            if "\0" in value:
                return True
        elif isinstance(value, dict | list | tuple) and _has_nul(value):
            return True
    return False


def _refuse_nul(
    _conn: Any, _cursor: Any, _statement: str, parameters: Any, _context: Any, _many: bool
) -> None:
    """PostgreSQL cannot store NUL in text (a DataError); refuse it the same way on SQLite.

    Statements marked :data:`TRUSTED_OPTION` (the engine's batches, which copy text already
    checked when it was stored and put job output only into JSON) skip the walk.
    """
    if _context is not None and _context.execution_options.get(TRUSTED_OPTION):
        return
    if _has_nul(parameters):
        raise ValidationError("text must not contain NUL (\\0) characters")


def create_store_engine(url: str) -> sa.Engine:
    """Create an Engine configured for duetime (pragmas, explicit BEGIN on SQLite)."""
    url = normalize_url(url)
    engine = _create_engine(url)
    event.listen(engine, "before_cursor_execute", _refuse_nul)
    return engine


def _create_engine(url: str) -> sa.Engine:
    if sa.make_url(url).get_backend_name() == "sqlite":
        database = sa.make_url(url).database
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
        if not database or database == ":memory:":
            kwargs["poolclass"] = sa.pool.StaticPool
        engine = sa.create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    # No pool_pre_ping (a round trip per checkout): a dropped connection fails one
    # transaction, SQLAlchemy invalidates the pool, and callers retry (the engine does).
    return sa.create_engine(url, isolation_level="READ COMMITTED")


def _is_locked(exc: OperationalError) -> bool:
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    return "database is locked" in text or "database is busy" in text


@dataclass(frozen=True, slots=True)
class ScheduleChanges:
    """Column values to write to one schedule, and what else the write implies."""

    values: Mapping[str, Any]
    cancel_pending: bool = False  # cancel the schedule's pending runs (pause, delete)
    bump_version: bool = True  # False for housekeeping (recalculate_next_runs)


@dataclass(frozen=True, slots=True)
class RunRequest:
    """A run to create for a live schedule (:meth:`SQLAlchemyStore.insert_schedule_runs`).

    ``build(schedule)`` returns the run's row for the schedule as read under the write
    lock; it may raise a :class:`DuetimeError` to refuse (validation of parameters).
    """

    tenant: str
    name_or_id: str
    build: Callable[[Schedule], Mapping[str, Any]]
    expected_version: int | None = None


class SQLAlchemyStore:
    """Access to one duetime database (see DESIGN §3, §4 and docs/decisions)."""

    def __init__(self, url: str, *, clock: Clock, checkpoints: bool = True) -> None:
        """Open ``url``; ``checkpoints=False`` for a short-lived store (no checkpoint thread:
        SQLite's automatic checkpoint remains)."""
        self.url = normalize_url(url)
        self.engine = create_store_engine(self.url)
        name = self.engine.dialect.name
        self.dialect: Dialect = "postgresql" if name == "postgresql" else "sqlite"
        self.clock = clock
        self._listeners: list[tuple[Callable[[], None], int | None]] = []
        self._listeners_lock = threading.Lock()
        #: The run-now transaction open on this thread: ``build`` callbacks read job types
        #: on it instead of checking out a second connection while holding one.
        self._building = threading.local()
        self._write_lock: AbstractContextManager[None] = (
            SQLiteWriteLock(self.url) if self.dialect == "sqlite" else nullcontext()
        )
        #: WAL checkpoints after commits, on a thread started by the first one (SQLite
        #: files only); stopped by dispose(), or when the store is collected undisposed.
        self._checkpointer = (
            WalCheckpointer.for_engine(self.engine, lambda conn: _sqlite_on_connect(conn, None))
            if checkpoints
            else None
        )
        if self._checkpointer is not None:
            weakref.finalize(self, self._checkpointer.stop, wait=False)

    # ------------------------------------------------------------ transactions
    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """One write transaction; commits on exit, rolls back on error.

        On SQLite, writers of every duetime process take turns through
        :class:`~duetime.store.sqlite_lock.SQLiteWriteLock` (fair, no busy-wait sleeps).
        """
        with self._write_lock, self.engine.connect() as conn:
            conn = conn.execution_options(**{WRITE_OPTION: True})
            trans = self._begin(conn)
            try:
                yield conn
            except BaseException:
                conn.info.pop(_CHANGED_KEY, None)
                trans.rollback()
                raise
            trans.commit()
            if self._checkpointer is not None:
                self._checkpointer.committed()
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
            conn.execute(
                sa.text("SELECT pg_notify(:channel, :origin)"),
                {"channel": CHANGES_CHANNEL, "origin": change_origin()},
            )

    def add_change_listener(
        self, callback: Callable[[], None], *, except_thread: int | None = None
    ) -> None:
        """Call ``callback`` (no arguments) after every committed change made through us.

        Changes committed by the thread ``except_thread`` (the engine's own loop, which
        knows what it just wrote) do not call it.
        """
        with self._listeners_lock:
            self._listeners.append((callback, except_thread))

    def remove_change_listener(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback``."""
        with self._listeners_lock:
            self._listeners = [entry for entry in self._listeners if entry[0] != callback]

    def _notify_listeners(self) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        me = threading.get_ident()
        for callback, except_thread in listeners:
            if except_thread == me:
                continue
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
        """Stop the WAL checkpointer (SQLite) and close every pooled connection.

        The store stays usable: a later write starts a new checkpointer, as a later
        checkout opens new pooled connections.
        """
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.engine.dispose()

    # ------------------------------------------------------------ schedules
    def create_schedule(self, values: Mapping[str, Any]) -> Schedule:
        """Insert a schedule row; ConflictError when its name is taken in the tenant."""
        try:
            with self.write() as conn:
                conn.execute(sa.insert(t.schedules).values(**values))
                self.changed(conn)
        except IntegrityError as exc:
            raise _name_conflict(values["tenant"], values["name"]) from exc
        return row_to_schedule(values)

    def get_schedule(
        self, tenant: str, name_or_id: str, *, include_deleted: bool = False
    ) -> Schedule:
        """Return a live schedule by id or name (NotFoundError otherwise)."""
        with self.read() as conn:
            return row_to_schedule(
                self._schedule_row(conn, tenant, name_or_id, include_deleted=include_deleted)
            )

    def _schedule_row(
        self,
        conn: sa.Connection,
        tenant: str,
        name_or_id: str,
        *,
        include_deleted: bool = False,
        for_update: bool = False,
    ) -> sa.Row[Any]:
        s = t.schedules
        lock = for_update and self.dialect == "postgresql"
        by_id = _schedule_by_id(tenant == ALL_TENANTS, include_deleted, lock)
        row = conn.execute(by_id, {"tenant": tenant, "ref": name_or_id}).first()
        if row is not None:
            return row
        query = sa.select(s).where(_tenant_is(s, tenant))
        if not include_deleted:
            query = query.where(s.c.deleted_at.is_(None))
        # live first, then the most recently deleted of that name
        by_name = query.where(s.c.name == name_or_id).order_by(
            s.c.deleted_at.is_(None).desc(), s.c.deleted_at.desc(), s.c.created_at.desc()
        )
        if for_update and self.dialect == "postgresql":
            by_name = by_name.with_for_update()
        found = conn.execute(by_name.limit(2)).all()
        if not found:
            raise NotFoundError(f"schedule {name_or_id!r} not found in tenant {tenant!r}")
        if len(found) > 1 and _ambiguous(found[0], found[1]):
            raise ValidationError(
                f"schedules named {name_or_id!r} exist in several tenants; use the id",
                field="schedule",
            )
        return found[0]

    def schedule_name_used(self, tenant: str, name: str) -> bool:
        """True when ``tenant`` (exactly, ``*`` included) has or had a schedule named ``name``."""
        s = t.schedules
        query = sa.select(s.c.id).where(s.c.tenant == tenant, s.c.name == name).limit(1)
        with self.read() as conn:
            return conn.execute(query).first() is not None

    def list_schedules(
        self,
        tenant: str,
        *,
        state: str | None = None,
        job: str | None = None,
        enabled: bool | None = None,
        name_prefix: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Schedule]:
        """Return live schedules, oldest first, one keyset page at a time.

        ``since``/``until`` bound ``created_at`` to the half-open window [since, until).
        """
        s = t.schedules
        query = sa.select(s).where(_tenant_is(s, tenant), s.c.deleted_at.is_(None))
        if state is not None:
            query = query.where(s.c.state == state)
        if job is not None:
            query = query.where(s.c.job == job)
        if enabled is not None:
            query = query.where(s.c.enabled == enabled)
        if name_prefix:
            escaped = name_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(s.c.name.like(f"{escaped}%", escape="\\"))
        query = _created_within(query, s, since, until)
        query = _after_cursor(query, s, cursor, descending=False)
        return self._page(query, s, limit, schedule_reader, descending=False)

    def _page(
        self,
        query: sa.Select[Any],
        table: sa.Table,
        limit: int,
        reader: Callable[[Sequence[str]], Callable[[Any], T]],
        *,
        descending: bool,
    ) -> Page[T]:
        limit = check_limit(limit)
        keys = (table.c.created_at, table.c.id)
        order = [k.desc() for k in keys] if descending else list(keys)
        with self.read() as conn:
            result = conn.execute(query.order_by(*order).limit(limit + 1))
            columns, found = list(result.keys()), result.all()
        more = len(found) > limit
        found = found[:limit]
        next_cursor = encode_cursor(found[-1].created_at, found[-1].id) if more else None
        convert = reader(columns)
        return Page([convert(row) for row in found], next_cursor)

    def modify_schedule(
        self,
        tenant: str,
        name_or_id: str,
        change: Callable[[Schedule], ScheduleChanges | None],
        *,
        expected_version: int | None = None,
    ) -> Schedule:
        """Apply ``change(schedule)`` to a live schedule in one write transaction.

        ``change`` returns the :class:`ScheduleChanges` to write (None = nothing to do).
        VersionMismatchError when ``expected_version`` is stale; ConflictError when a
        rename collides with another live schedule of the tenant.
        """
        name = name_or_id
        try:
            with self.write() as conn:
                current = row_to_schedule(
                    self._schedule_row(conn, tenant, name_or_id, for_update=True)
                )
                name = current.name
                check_version(current, expected_version)
                changes = change(current)
                if changes is None:
                    return current
                name = changes.values.get("name", name)
                return self._apply_changes(conn, current, changes)
        except IntegrityError as exc:
            raise _name_conflict(tenant, name) from exc

    def _apply_changes(
        self, conn: sa.Connection, current: Schedule, changes: ScheduleChanges
    ) -> Schedule:
        now = self.clock.now()
        s = t.schedules
        values = dict(changes.values)
        if changes.bump_version:
            values.update(version=current.version + 1, updated_at=now)
        updated = conn.execute(
            sa.update(s)
            .where(s.c.id == current.id, s.c.version == current.version)
            .values(**values)
        )
        if updated.rowcount != 1:  # the row is locked (PG) or the database is (SQLite)
            raise VersionMismatchError(
                f"schedule {current.name!r} changed concurrently; retry",
                current_version=current.version + 1,
            )
        if changes.cancel_pending:
            self.cancel_pending_runs(conn, current.id, now)
        self.changed(conn)
        return row_to_schedule(conn.execute(sa.select(s).where(s.c.id == current.id)).one())

    def cancel_pending_runs(self, conn: sa.Connection, schedule_id: str, now: datetime) -> int:
        """Mark every pending run of a schedule ``cancelled`` (inside a write transaction)."""
        r = t.runs
        result = conn.execute(
            sa.update(r)
            .where(r.c.schedule_id == schedule_id, r.c.state == RunState.PENDING.value)
            .values(state=RunState.CANCELLED.value, finished_at=now)
        )
        return int(result.rowcount)

    def active_schedules(
        self, tenant: str, *, after_id: str | None = None, limit: int | None = None
    ) -> list[Schedule]:
        """Live, active schedules of ``tenant`` (``*`` = all) in id order, one page at a time."""
        s = t.schedules
        query = sa.select(s).where(
            _tenant_is(s, tenant), s.c.deleted_at.is_(None), s.c.state == ScheduleState.ACTIVE.value
        )
        if after_id is not None:
            query = query.where(s.c.id > after_id)
        query = query.order_by(s.c.id).limit(limit or RECALCULATE_PAGE_SIZE)
        with self.read() as conn:
            return [row_to_schedule(row) for row in conn.execute(query)]

    # ------------------------------------------------------------ runs
    def insert_run(self, values: Mapping[str, Any]) -> Run:
        """Insert one run row (from :func:`rows.new_run_values`) and signal the change.

        The run's schedule must still be live in the same transaction (NotFoundError
        otherwise): a delete racing a rerun leaves no orphan pending run. Run-now requests,
        which also check a version, go through :meth:`insert_schedule_runs`.
        """
        with self.write() as conn:
            if values.get("schedule_id") is not None:
                self._lock_live_schedule(conn, values["schedule_id"])
            _run_insert(self.dialect).execute(conn, [values])
            self.changed(conn)
        return row_to_run(values)

    def insert_schedule_runs(self, requests: Sequence[RunRequest]) -> list[Run | Exception]:
        """Insert the run of each request in one write transaction (group commit).

        Returns, in order, each request's run or the exception that refused it. Each
        request's schedule (by id or name, in its tenant) is read under the write lock
        (PostgreSQL: ``FOR UPDATE``), so it is live and, with ``expected_version``, at that
        version when its run is inserted. A request whose read, check or ``build`` raises a
        :class:`DuetimeError` writes nothing; the others still commit. A database that is
        busy or unreachable (OperationalError) fails every request alike. Any other failure
        before the commit rolls the whole batch back and each request is retried in a
        transaction of its own, so one request's bad row never fails another; a failure of
        the commit itself is every request's answer (retrying could insert runs twice).

        Only SQLite shares one transaction among requests (its writers queue on one lock
        anyway). On PostgreSQL each request has its own: a transaction holding several
        schedules' row locks, taken in arrival order, could deadlock with a claim or with
        another batch.
        """
        if len(requests) > 1 and self.dialect == "sqlite":
            try:
                return self._insert_schedule_runs(requests)
            except _RolledBack as failed:
                log.warning(
                    "a batch of %d runs failed (%s); retrying one by one", len(requests), failed
                )
            except Exception as exc:  # busy, unreachable, or the commit failed: no retry
                return [exc] * len(requests)
        return [self._insert_schedule_run(request) for request in requests]

    def _insert_schedule_run(self, request: RunRequest) -> Run | Exception:
        try:
            return self._insert_schedule_runs([request])[0]
        except _RolledBack as failed:
            return failed.error
        except Exception as exc:
            return exc

    def _insert_schedule_runs(self, requests: Sequence[RunRequest]) -> list[Run | Exception]:
        """One transaction for ``requests``; a failure inside it raises :class:`_RolledBack`."""
        with self.write() as conn:
            self._building.conn = conn
            try:
                results = self._insert_in(conn, requests)
            except OperationalError:
                raise  # busy or unreachable: the same for every request
            except Exception as exc:
                raise _RolledBack(exc) from exc  # write() rolls back: nothing was stored
            finally:
                self._building.conn = None
        return results

    def _insert_in(
        self, conn: sa.Connection, requests: Sequence[RunRequest]
    ) -> list[Run | Exception]:
        results: list[Mapping[str, Any] | Exception] = []
        schedules: dict[tuple[str, str], Schedule] = {}
        for request in requests:
            try:
                schedule = self._schedule_for(conn, request, schedules)
                check_version(schedule, request.expected_version)
                results.append(request.build(schedule))
            except DuetimeError as exc:
                results.append(exc)
        rows = [result for result in results if not isinstance(result, Exception)]
        if rows:
            _run_insert(self.dialect).execute(conn, rows)  # one statement for the batch
            self.changed(conn)
        return [r if isinstance(r, Exception) else row_to_run(r) for r in results]

    def _schedule_for(
        self, conn: sa.Connection, request: RunRequest, seen: dict[tuple[str, str], Schedule]
    ) -> Schedule:
        """The request's live schedule, read under the write lock once per transaction.

        Requests of one batch that name the same schedule share its read: nothing else
        can change it while this transaction holds the write lock (PostgreSQL: the row
        lock), and this transaction only inserts runs.
        """
        ref = (request.tenant, request.name_or_id)
        found = seen.get(ref)
        if found is None:
            row = self._schedule_row(conn, request.tenant, request.name_or_id, for_update=True)
            found = seen[ref] = row_to_schedule(row)
        return found

    def _lock_live_schedule(self, conn: sa.Connection, schedule_id: str) -> None:
        s = t.schedules
        query = sa.select(s.c.id).where(s.c.id == schedule_id, s.c.deleted_at.is_(None))
        if self.dialect == "postgresql":
            query = query.with_for_update()
        if conn.execute(query).first() is None:
            raise NotFoundError(f"schedule {schedule_id} was deleted")

    def get_run(self, tenant: str, run_id: str) -> Run:
        """Return a run by id (NotFoundError when absent or another tenant's)."""
        r = t.runs
        with self.read() as conn:
            row = conn.execute(sa.select(r).where(r.c.id == run_id, _tenant_is(r, tenant))).first()
        if row is None:
            raise NotFoundError(f"run {run_id!r} not found in tenant {tenant!r}")
        return row_to_run(row)

    def list_runs(
        self,
        tenant: str,
        *,
        schedule_id: str | None = None,
        states: Iterable[str] | None = None,
        job: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[Run]:
        """Return runs, newest first, one keyset page at a time (created in [since, until))."""
        r = t.runs
        query = sa.select(r).where(_tenant_is(r, tenant))
        if schedule_id is not None:
            query = query.where(r.c.schedule_id == schedule_id)
        if states is not None:
            query = query.where(r.c.state.in_(list(states)))
        if job is not None:
            query = query.where(r.c.job == job)
        query = _created_within(query, r, since, until)
        query = _after_cursor(query, r, cursor, descending=True)
        return self._page(query, r, limit, run_reader, descending=True)

    def request_cancel(self, tenant: str, run_id: str) -> Run:
        """Cancel a pending run, or ask the engine to stop a running one.

        Cancelling a cancelled run is a no-op; any other finished run is a ConflictError.
        """
        r = t.runs
        with self.write() as conn:
            row = conn.execute(sa.select(r).where(r.c.id == run_id, _tenant_is(r, tenant))).first()
            if row is None:
                raise NotFoundError(f"run {run_id!r} not found in tenant {tenant!r}")
            changes = _cancel_changes(row_to_run(row), self.clock.now())
            if changes:
                where = sa.and_(r.c.id == run_id, r.c.state == row.state)
                if conn.execute(sa.update(r).where(where).values(**changes)).rowcount != 1:
                    raise ConflictError(f"run {run_id} changed state while cancelling; retry")
                self.changed(conn)
            return row_to_run(conn.execute(sa.select(r).where(r.c.id == run_id)).one())

    # ------------------------------------------------------------ job types
    def publish_job_types(self, job_types: Iterable[Any], *, published_by: str | None) -> int:
        """Upsert each job type's publication into ``duetime_job_types``; return the count."""
        now = self.clock.now()
        rows = [_publication_row(job_type, published_by, now) for job_type in job_types]
        with self.write() as conn:
            for row in rows:
                conn.execute(self._upsert_job_type(row))
        return len(rows)

    def _upsert_job_type(self, row: dict[str, Any]) -> Any:
        """INSERT ... ON CONFLICT (name) DO UPDATE: engines starting together cannot collide."""
        insert = sqlite_insert if self.dialect == "sqlite" else pg_insert
        statement = insert(t.job_types).values(**row)
        changes = {key: statement.excluded[key] for key in row if key != "name"}
        return statement.on_conflict_do_update(index_elements=["name"], set_=changes)

    def job_types(self) -> list[dict[str, Any]]:
        """Every published job type (name, description, parameter_schema, defaults...)."""
        jt = t.job_types
        with self.read() as conn:
            found = conn.execute(sa.select(jt).order_by(jt.c.name)).all()
        return [dict(row._mapping) for row in found]

    def job_type(self, name: str) -> dict[str, Any] | None:
        """Return one published job type, or None.

        Inside a run-now transaction on this thread (a ``build`` callback), read on its
        connection: a second one checked out while holding the first could wait on a pool
        emptied by requests doing the same.
        """
        query = sa.select(t.job_types).where(t.job_types.c.name == name)
        building: sa.Connection | None = getattr(self._building, "conn", None)
        if building is not None:
            row = building.execute(query).first()
        else:
            with self.read() as conn:
                row = conn.execute(query).first()
        return dict(row._mapping) if row is not None else None

    # ------------------------------------------------------------ instances
    def register_instance(self, values: Mapping[str, Any]) -> None:
        """Insert or replace this engine's ``duetime_instances`` row."""
        i = t.instances
        with self.write() as conn:
            conn.execute(sa.delete(i).where(i.c.id == values["id"]))
            conn.execute(sa.insert(i).values(**values))

    def heartbeat_instance(self, instance_id: str, now: datetime) -> None:
        """Record that the instance is alive."""
        i = t.instances
        with self.write() as conn:
            conn.execute(sa.update(i).where(i.c.id == instance_id).values(heartbeat_at=now))

    def stop_instance(self, instance_id: str, now: datetime) -> None:
        """Record a clean stop."""
        i = t.instances
        with self.write() as conn:
            conn.execute(
                sa.update(i).where(i.c.id == instance_id).values(heartbeat_at=now, stopped_at=now)
            )

    def list_instances(self, *, since: datetime | None = None) -> list[dict[str, Any]]:
        """Instances with a heartbeat at or after ``since`` (all when None), newest first."""
        i = t.instances
        query = sa.select(i).order_by(i.c.heartbeat_at.desc())
        if since is not None:
            query = query.where(i.c.heartbeat_at >= since)
        with self.read() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    # ------------------------------------------------------------ retention & status
    def cleanup_history(
        self,
        *,
        now: datetime,
        older_than_days: float,
        keep_last: int,
        tenant: str = ALL_TENANTS,
        batch_size: int = CLEANUP_BATCH_SIZE,
    ) -> int:
        """Delete finished runs older than the cutoff beyond the last ``keep_last`` per schedule.

        Runs of deleted schedules keep no minimum. Work goes schedule by schedule along the
        (schedule_id, created_at, id) index, deleting in batches (one transaction each);
        soft-deleted schedules past the cutoff with no runs left are purged too.
        """
        cutoff = now - timedelta(days=older_than_days)
        total = 0
        for schedule_id, live in self._schedules_with_old_runs(tenant, cutoff):
            boundary = None
            if live and keep_last > 0:
                boundary = self._keep_boundary(schedule_id, keep_last)
                if boundary is None:
                    continue  # fewer than keep_last finished runs: all are kept
            total += self._delete_old_runs(schedule_id, cutoff, boundary, batch_size)
        self._purge_deleted_schedules(tenant, cutoff)
        return total

    def _schedules_with_old_runs(
        self, tenant: str, cutoff: datetime
    ) -> list[tuple[str | None, bool]]:
        r, s = t.runs, t.schedules
        live = sa.and_(s.c.id.is_not(None), s.c.deleted_at.is_(None))
        query = (
            sa.select(r.c.schedule_id, live)
            .select_from(r.outerjoin(s, s.c.id == r.c.schedule_id))
            .where(_tenant_is(r, tenant), r.c.created_at < cutoff, r.c.state.in_(_TERMINAL))
            .distinct()
        )
        with self.read() as conn:
            return [(row[0], bool(row[1])) for row in conn.execute(query)]

    def _keep_boundary(
        self, schedule_id: str | None, keep_last: int
    ) -> tuple[datetime, str] | None:
        """The (created_at, id) of the ``keep_last``-th newest finished run, or None."""
        r = t.runs
        query = (
            sa.select(r.c.created_at, r.c.id)
            .where(_schedule_is(schedule_id), r.c.state.in_(_TERMINAL))
            .order_by(r.c.created_at.desc(), r.c.id.desc())
            .offset(keep_last - 1)
            .limit(1)
        )
        with self.read() as conn:
            row = conn.execute(query).first()
        return (row[0], row[1]) if row is not None else None

    def _delete_old_runs(
        self,
        schedule_id: str | None,
        cutoff: datetime,
        boundary: tuple[datetime, str] | None,
        batch_size: int,
    ) -> int:
        r = t.runs
        query = sa.select(r.c.id).where(
            _schedule_is(schedule_id), r.c.state.in_(_TERMINAL), r.c.created_at < cutoff
        )
        if boundary is not None:
            at, row_id = boundary
            query = query.where(
                sa.or_(r.c.created_at < at, sa.and_(r.c.created_at == at, r.c.id < row_id))
            )
        total = 0
        while True:
            with self.write() as conn:
                batch = list(conn.execute(query.limit(batch_size)).scalars())
                if batch:
                    conn.execute(sa.delete(r).where(r.c.id.in_(batch)))
            total += len(batch)
            if len(batch) < batch_size:
                return total

    def _purge_deleted_schedules(self, tenant: str, cutoff: datetime) -> None:
        s, r = t.schedules, t.runs
        has_runs = sa.exists().where(r.c.schedule_id == s.c.id)
        gone = sa.and_(s.c.deleted_at.is_not(None), s.c.deleted_at < cutoff, ~has_runs)
        with self.write() as conn:
            conn.execute(sa.delete(s).where(_tenant_is(s, tenant), gone))

    def status_counts(self, tenant: str, *, now: datetime, next_count: int) -> dict[str, Any]:
        """Counts for ``status()``: schedules by state, queue, running, recent outcomes."""
        s, r = t.schedules, t.runs
        with self.read() as conn:
            by_state = _count_by(conn, s.c.state, _tenant_is(s, tenant), s.c.deleted_at.is_(None))
            active = _count_by(conn, r.c.state, _tenant_is(r, tenant), r.c.state.in_(_ACTIVE))
            recent = _count_by(
                conn, r.c.state, _tenant_is(r, tenant), r.c.finished_at >= now - timedelta(days=1)
            )
            due = conn.execute(
                sa.select(sa.func.count()).where(
                    _tenant_is(r, tenant),
                    r.c.state == RunState.PENDING.value,
                    r.c.available_at <= now,
                )
            ).scalar_one()
            upcoming = conn.execute(_upcoming_query(tenant, next_count)).all()
        return {
            "schedules": {state.value: by_state.get(state.value, 0) for state in ScheduleState},
            "queue_depth": active.get(RunState.PENDING.value, 0),
            "queue_due": int(due),
            "running": active.get(RunState.RUNNING.value, 0),
            "last_24h": recent,
            "next_fires": [dict(row._mapping) for row in upcoming],
        }


def _count_by(
    conn: sa.Connection, column: sa.ColumnElement[Any], *where: sa.ColumnElement[bool]
) -> dict[str, int]:
    query = sa.select(column, sa.func.count()).where(*where).group_by(column)
    return {str(key): int(count) for key, count in conn.execute(query).all()}


def _upcoming_query(tenant: str, limit: int) -> sa.Select[Any]:
    s = t.schedules
    return (
        sa.select(s.c.id, s.c.tenant, s.c.name, s.c.job, s.c.next_run_at)
        .where(
            _tenant_is(s, tenant),
            s.c.deleted_at.is_(None),
            s.c.state == ScheduleState.ACTIVE.value,
            s.c.next_run_at.is_not(None),
        )
        .order_by(s.c.next_run_at, s.c.priority.desc())
        .limit(limit)
    )


# ---------------------------------------------------------------- helpers


@functools.cache
def _run_insert(dialect: str) -> Any:
    """The INSERT of full run rows, bound as tuples (:mod:`duetime.store.bulk`), built once.

    SQLAlchemy's ``insert().values(**row)`` cost ~0.3 ms per run (coercions, a cache key),
    and even a prebuilt Core INSERT processes every row's parameters through the compiled
    statement; this runs inside the write lock. Every value is built by the facade from
    the stored schedule or checked parameters (JSON text cannot hold a raw NUL), so the
    NUL walk of :data:`TRUSTED_OPTION` statements is skipped, as for the engine's runs.
    """
    from duetime.store.bulk import insert_statement  # bulk imports this module

    return insert_statement(t.runs, dialect)


@functools.cache
def _schedule_by_id(all_tenants: bool, include_deleted: bool, for_update: bool) -> sa.Select[Any]:
    """SELECT of one schedule by id (binds ``ref`` and ``tenant``), built once per variant.

    Building the statement per call (coercions, a fresh cache key) cost more than running it.
    """
    s = t.schedules
    query = sa.select(s).where(s.c.id == sa.bindparam("ref"))
    if not all_tenants:
        query = query.where(s.c.tenant == sa.bindparam("tenant"))
    if not include_deleted:
        query = query.where(s.c.deleted_at.is_(None))
    return query.with_for_update() if for_update else query


def _tenant_is(table: sa.Table, tenant: str) -> sa.ColumnElement[bool]:
    if tenant == ALL_TENANTS:
        return sa.true()
    return table.c.tenant == tenant


def _schedule_is(schedule_id: str | None) -> sa.ColumnElement[bool]:
    column = t.runs.c.schedule_id
    return column.is_(None) if schedule_id is None else column == schedule_id


def check_limit(limit: int) -> int:
    """Validate a page size (1–500)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationError(f"must be an integer from 1 to {MAX_PAGE_SIZE}", field="limit")
    return limit


def encode_cursor(created_at: datetime, row_id: str) -> str:
    """Return the opaque keyset cursor after (created_at, id)."""
    raw = json.dumps([created_at.astimezone(UTC).isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Return (created_at, id) of a cursor; ValidationError(field='cursor') when malformed."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        instant = datetime.fromisoformat(created)
        if instant.tzinfo is None or not isinstance(row_id, str):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationError("is not a cursor returned by this listing", field="cursor") from exc
    return instant, row_id


def _created_within(
    query: sa.Select[Any], table: sa.Table, since: datetime | None, until: datetime | None
) -> sa.Select[Any]:
    """Keep rows created in [since, until) (either bound optional)."""
    if since is not None:
        query = query.where(table.c.created_at >= since)
    if until is not None:
        query = query.where(table.c.created_at < until)
    return query


def _after_cursor(
    query: sa.Select[Any], table: sa.Table, cursor: str | None, *, descending: bool
) -> sa.Select[Any]:
    if not cursor:
        return query
    created_at, row_id = decode_cursor(cursor)
    c_at, c_id = table.c.created_at, table.c.id
    if descending:
        return query.where(sa.or_(c_at < created_at, sa.and_(c_at == created_at, c_id < row_id)))
    return query.where(sa.or_(c_at > created_at, sa.and_(c_at == created_at, c_id > row_id)))


def _ambiguous(first: sa.Row[Any], second: sa.Row[Any]) -> bool:
    """Two equally live schedules of one name in different tenants (a ``*`` view)."""
    same_liveness = (first.deleted_at is None) == (second.deleted_at is None)
    return same_liveness and first.tenant != second.tenant


def check_version(current: Schedule, expected: int | None) -> None:
    """Raise VersionMismatchError unless ``current`` is at ``expected`` (None: any)."""
    if expected is not None and expected != current.version:
        raise VersionMismatchError(
            f"schedule {current.name!r} is at version {current.version}, not {expected}",
            current_version=current.version,
        )


def _name_conflict(tenant: str, name: str) -> ConflictError:
    return ConflictError(f"a schedule named {name!r} already exists in tenant {tenant!r}")


def _cancel_changes(run: Run, now: datetime) -> dict[str, Any]:
    if run.state == RunState.PENDING:
        return {"state": RunState.CANCELLED.value, "finished_at": now}
    if run.state == RunState.RUNNING:
        return {} if run.cancel_requested else {"cancel_requested": True}
    if run.state == RunState.CANCELLED:
        return {}
    raise ConflictError(f"run {run.id} already ended ({run.state}); nothing to cancel")


def _publication_row(job_type: Any, published_by: str | None, now: datetime) -> dict[str, Any]:
    pub = dict(job_type.publication())
    return {
        "name": pub["name"],
        "description": pub.get("description"),
        "parameter_schema": pub.get("parameter_schema") or {},
        "defaults": pub.get("defaults") or {},
        "module": pub.get("module"),
        "timeout": getattr(job_type, "timeout", None),
        "max_attempts": getattr(job_type, "max_attempts", None),
        "published_by": published_by,
        "updated_at": now,
    }
