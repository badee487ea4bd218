"""One write transaction shared by many store calls, so a manifest load is all or nothing.

:func:`shared_write` yields a copy of the store whose ``write()`` and ``read()`` both reuse
one open write transaction: every facade operation made through it (create, update, delete
of schedules) lands in that transaction, reads see its uncommitted rows, and nothing is
visible to others until it commits. An error anywhere rolls all of it back.

:func:`bulk_write` is the fast variant used by manifest loads: its store view runs the
facade's own code (validation, trigger planning, change computation) unchanged, but
``create_schedule`` and ``modify_schedule`` only *collect* the rows and changes; ``flush()``
writes them with a few ``executemany`` statements instead of one round trip per schedule.
"""

from __future__ import annotations

import copy
import functools
import operator
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from duetime.errors import ConflictError, NotFoundError, ValidationError, VersionMismatchError
from duetime.models import RunState, Schedule
from duetime.store import tables as t
from duetime.store.rows import row_to_schedule
from duetime.store.sqlalchemy import ScheduleChanges, SQLAlchemyStore, _tenant_is

#: Rows per statement batch (PostgreSQL ``IN`` lists and insert chunks).
CHUNK = 1000


class RollbackRequested(Exception):
    """Raised inside :func:`shared_write` to discard everything written (dry runs)."""


def _reusing(conn: sa.Connection) -> Callable[[], AbstractContextManager[sa.Connection]]:
    def transaction() -> AbstractContextManager[sa.Connection]:
        return nullcontext(conn)

    return transaction


@contextmanager
def shared_write(store: SQLAlchemyStore, *, rollback: bool = False) -> Iterator[SQLAlchemyStore]:
    """Yield a store view whose writes and reads share one transaction; commit on exit.

    With ``rollback`` the transaction is rolled back instead (everything was checked by the
    real code paths, nothing is kept).
    """
    try:
        with store.write() as conn:
            shared = copy.copy(store)
            object.__setattr__(shared, "write", _reusing(conn))
            object.__setattr__(shared, "read", _reusing(conn))
            yield shared
            if rollback:
                raise RollbackRequested
    except RollbackRequested:
        pass


# ------------------------------------------------------------------ bulk writes


@dataclass(slots=True)
class _Change:
    current: Schedule
    changes: ScheduleChanges


class BulkStore:
    """Collects the facade's schedule writes inside one transaction; :meth:`flush` writes them.

    Reads (``read``/``write``/``job_type``) go to the shared transaction. ``create_schedule``
    and ``modify_schedule`` have the store's signatures and checks (NotFoundError, version
    check) but buffer their effect; the facade's return value is not used by loads.
    """

    def __init__(self, shared: SQLAlchemyStore, conn: sa.Connection) -> None:
        self._shared = shared
        self.conn = conn
        self.dialect = shared.dialect
        self.clock = shared.clock
        self.current: dict[str, Schedule] = {}
        self.inserts: list[dict[str, Any]] = []
        self.changes: list[_Change] = []
        self.job_type = functools.cache(shared.job_type)
        self.written = False
        self._inserter: _RowInserter | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._shared, name)

    def write(self) -> AbstractContextManager[sa.Connection]:
        """The shared transaction."""
        return nullcontext(self.conn)

    read = write

    def live_schedules(self, tenant: str) -> list[Schedule]:
        """Every live schedule of ``tenant`` (``*`` = all), read in the transaction."""
        found = live_schedules(self.conn, tenant)
        self.current = {item.id: item for item in found}
        return found

    def lock(self, ids: Iterable[str]) -> None:
        """PostgreSQL: lock and re-read the schedules about to change (SQLite holds the lock)."""
        if self.dialect != "postgresql":
            return
        s = t.schedules
        wanted = list(ids)
        for start in range(0, len(wanted), CHUNK):
            query = sa.select(s).where(s.c.id.in_(wanted[start : start + CHUNK]))
            for row in self.conn.execute(query.with_for_update()):
                self.current[row.id] = row_to_schedule(row)

    def create_schedule(self, values: Mapping[str, Any]) -> Any:
        """Buffer a new schedule row (names were checked against the transaction's rows)."""
        self.inserts.append(dict(values))

    def modify_schedule(
        self,
        tenant: str,
        name_or_id: str,
        change: Callable[[Schedule], ScheduleChanges | None],
        *,
        expected_version: int | None = None,
    ) -> Schedule:
        """Buffer ``change(schedule)`` for a live schedule read by :meth:`live_schedules`."""
        current = self.current.get(name_or_id)
        if current is None or current.deleted_at is not None:
            raise NotFoundError(f"schedule {name_or_id!r} not found in tenant {tenant!r}")
        if expected_version is not None and expected_version != current.version:
            raise VersionMismatchError(
                f"schedule {current.name!r} is at version {current.version}",
                current_version=current.version,
            )
        changes = change(current)
        if changes is not None:
            self.changes.append(_Change(current, changes))
        return current

    def discard(self) -> None:
        """Forget what was buffered (a problem was found; nothing will be written)."""
        self.inserts.clear()
        self.changes.clear()

    def flush(self) -> None:
        """Write every buffered change and insert with ``executemany``; then clear the buffer."""
        now = self.clock.now()
        _update(self.conn, self.changes, now)
        cancel = [c.current.id for c in self.changes if c.changes.cancel_pending]
        _cancel_pending(self.conn, cancel, now)
        if self.inserts:
            if self._inserter is None:
                self._inserter = _RowInserter(self.conn.dialect)
            self._inserter.insert(self.conn, self.inserts)
        if self.changes or self.inserts:
            self.written = True
        self.discard()

    def finish(self) -> None:
        """Signal the change once (engines wake) if anything was written."""
        if self.written:
            self._shared.changed(self.conn)


class _RowInserter:
    """INSERTs schedule rows with one driver ``executemany`` per batch in the open transaction.

    The column types' own bind processors (JSON, UTC datetimes) convert the values, so rows
    are stored exactly as ``conn.execute(insert(schedules), rows)`` would store them, without
    its per-row bookkeeping; the store's NUL rule is applied here since its cursor hook is
    bypassed. Conversion goes column by column and is shared by equal values for the whole
    load (its rows repeat defaults, a few triggers and their next fire times).
    """

    #: Converted values kept per column type; the memo is emptied when it grows past this.
    MAX_MEMO = 50_000

    def __init__(self, dialect: sa.Dialect) -> None:
        columns = list(t.schedules.c)
        compiled = sa.insert(t.schedules).compile(
            dialect=dialect, column_keys=[c.key for c in columns]
        )
        by_key = {c.key: c for c in columns}
        self.positional = compiled.positional
        if compiled.positional:
            self.keys = [compiled.binds[name].key for name in compiled.positiontup or ()]
        else:
            self.keys = [c.key for c in columns]
        self.sql = str(compiled)
        self.processors: list[tuple[int, Callable[[Any], Any], dict[Any, Any]]] = []
        memos: dict[str, dict[Any, Any]] = {}
        for index, key in enumerate(self.keys):
            process = _bind_processor(by_key[key], dialect)
            if process is not None:  # columns of one type (created_at, updated_at) share a memo
                memo = memos.setdefault(repr(by_key[key].type), {})
                self.processors.append((index, process, memo))

    def insert(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        """Convert and INSERT ``rows``; ConflictError when a name was taken meanwhile."""
        values = self.bound_rows(rows)
        params: list[Any] = (
            values if self.positional else [dict(zip(self.keys, v, strict=True)) for v in values]
        )
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(self.sql, params)
        except conn.dialect.loaded_dbapi.IntegrityError as exc:
            raise ConflictError(
                "a schedule of this manifest was created by someone else meanwhile; load again"
            ) from exc
        finally:
            cursor.close()

    def bound_rows(self, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """The rows' values in statement order, converted, NUL rule checked."""
        if not rows:
            return []
        get = operator.itemgetter(*self.keys)
        try:
            table = [get(row) for row in rows]
        except KeyError:
            table = [tuple(row.get(k) for k in self.keys) for row in rows]
        columns = list(zip(*table, strict=True))
        converted: dict[int, dict[int, Any]] = {}  # by memo: this batch's values by id
        for index, process, memo in self.processors:
            if len(memo) > self.MAX_MEMO:
                memo.clear()
            by_id = converted.setdefault(id(memo), {})
            columns[index] = _converted(columns[index], process, memo, by_id)
        _refuse_nul(columns)
        return list(zip(*columns, strict=True))


def _converted(
    column: tuple[Any, ...],
    process: Callable[[Any], Any],
    memo: dict[Any, Any],
    by_id: dict[int, Any],
) -> tuple[Any, ...]:
    """``process`` applied to every value: once per distinct object, once per equal value.

    ``by_id`` holds the batch's converted objects (alive while it runs, so ids are unique)
    and is shared by columns of one type: ``created_at`` and ``updated_at`` are one object.
    """
    distinct = dict(zip(map(id, column), column, strict=True))
    for ident, value in distinct.items():
        if ident in by_id:
            continue
        kind = type(value)
        key = (kind, value) if kind in _MEMO_SCALARS else _memo_key(value)
        if key is None:
            by_id[ident] = process(value)
        elif key in memo:
            by_id[ident] = memo[key]
        else:
            by_id[ident] = memo[key] = process(value)
    return tuple(map(by_id.__getitem__, map(id, column)))


#: Values whose conversion is shared by equal values of the same type.
_MEMO_SCALARS = frozenset({type(None), bool, int, str, datetime})
#: Types a flat JSON object may hold and still be shared (floats: -0.0 == 0.0).
_FLAT_JSON = frozenset({type(None), bool, int, str})


def _memo_key(value: Any) -> Any:
    """A type-exact key for ``value``'s converted form; None when it gets none."""
    kind = type(value)
    if kind in _MEMO_SCALARS:
        return (kind, value)
    if kind is float:
        return (kind, value.hex())  # keeps -0.0 apart from 0.0
    if kind is dict or kind is list:
        if not value:
            return (kind,)
        if kind is dict:
            types = (*map(type, value), *map(type, value.values()))
            if _FLAT_JSON.issuperset(types):
                return (kind, tuple(value.items()), types)
    return None


def _refuse_nul(columns: list[tuple[Any, ...]]) -> None:
    """The store's NUL rule (PostgreSQL cannot store NUL in text), for values sent to the driver."""
    for column in columns:
        try:
            text = "".join(column)
        except TypeError:  # not only text: check the text values
            text = "".join([value for value in column if isinstance(value, str)])
        if "\0" in text:
            raise ValidationError("text must not contain NUL (\\0) characters")


def _bind_processor(column: sa.Column[Any], dialect: sa.Dialect) -> Callable[[Any], Any] | None:
    processor: Callable[[Any], Any] | None = column.type.dialect_impl(dialect).bind_processor(
        dialect
    )
    return processor


def live_schedules(conn: sa.Connection, tenant: str) -> list[Schedule]:
    """Every live schedule of ``tenant`` (``*`` = all), in one query."""
    s = t.schedules
    query = sa.select(s).where(_tenant_is(s, tenant), s.c.deleted_at.is_(None))
    return [row_to_schedule(row) for row in conn.execute(query)]


def _update(conn: sa.Connection, changes: list[_Change], now: datetime) -> None:
    """UPDATE … WHERE id AND version, one executemany per set of changed columns."""
    s = t.schedules
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for item in changes:
        values = dict(item.changes.values)
        if item.changes.bump_version:
            values.update(version=item.current.version + 1, updated_at=now)
        values.update(b_id=item.current.id, b_version=item.current.version)
        groups[tuple(sorted(values))].append(values)
    statement = sa.update(s).where(
        s.c.id == sa.bindparam("b_id"), s.c.version == sa.bindparam("b_version")
    )
    for rows in groups.values():
        result = conn.execute(statement, rows)
        if result.rowcount != len(rows):
            raise VersionMismatchError(
                "schedules changed concurrently while the manifest was loading; retry",
                current_version=None,
            )


def _cancel_pending(conn: sa.Connection, schedule_ids: list[str], now: datetime) -> None:
    """Mark pending runs of these schedules ``cancelled`` (pause, delete)."""
    r = t.runs
    for start in range(0, len(schedule_ids), CHUNK):
        conn.execute(
            sa.update(r)
            .where(
                r.c.schedule_id.in_(schedule_ids[start : start + CHUNK]),
                r.c.state == RunState.PENDING.value,
            )
            .values(state=RunState.CANCELLED.value, finished_at=now)
        )


@contextmanager
def bulk_write(store: SQLAlchemyStore, *, rollback: bool = False) -> Iterator[BulkStore]:
    """Yield a :class:`BulkStore` on one write transaction; commit on exit (or roll back)."""
    with shared_write(store, rollback=rollback) as shared, shared.write() as conn:
        bulk = BulkStore(shared, conn)
        yield bulk
        bulk.finish()
