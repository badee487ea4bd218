"""The engine's fixed batch writes, bound as tuples on the DBAPI cursor.

SQLAlchemy's executemany builds every row's parameters through the compiled statement (a
dict per row, one bind processor call per value): most of the engine's cost per run. The
statements here never change, so their SQL text is built once per dialect from the table
definition, and each row is bound as a tuple converted by the same rules as the column
types (:class:`~duetime.store.tables.UTCDateTime`, JSON). SQLite runs one prepared
statement per row (``executemany``); PostgreSQL runs one statement per batch, its rows
passed as one array per column (``unnest``). They still run through
``Connection.exec_driver_sql``: same transaction, same error wrapping, same event hooks.

Only for values the engine built itself from checked text (the NUL check is skipped, see
:data:`~duetime.store.sqlalchemy.TRUSTED_OPTION`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from duetime.store import tables as t
from duetime.store.sqlalchemy import TRUSTED_OPTION

Converter = Callable[[Any], Any]
_MISS = object()
_TRUSTED = {TRUSTED_OPTION: True}
_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def _sqlite_instant(value: datetime | None) -> str | None:
    """UTCDateTime's SQLite text (naive UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} cannot be stored; use tz-aware UTC")
    return t.sqlite_text(value)


def _pg_instant(value: datetime | None) -> datetime | None:
    """UTCDateTime on PostgreSQL: an aware instant as it is."""
    if value is not None and value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} cannot be stored; use tz-aware UTC")
    return value


def _json_text(value: Any) -> str:
    """sa.JSON's encoding: ``None`` is stored as JSON ``null``, like SQLAlchemy does."""
    if value is None:
        return "null"
    if not value and type(value) in (dict, list):
        return "{}" if type(value) is dict else "[]"
    return json.dumps(value)


def _converter(column: sa.Column[Any], dialect: str) -> Converter | None:
    """How a Python value of ``column`` is bound on ``dialect`` (None: as it is)."""
    if isinstance(column.type, t.UTCDateTime):
        return _sqlite_instant if dialect == "sqlite" else _pg_instant
    if isinstance(column.type, sa.JSON):
        return _json_text
    return None


@dataclass(frozen=True)
class BulkStatement:
    """One fixed statement: its SQL text and the (key, converter) of each placeholder."""

    sql: str
    keys: tuple[str, ...]
    converters: tuple[Converter | None, ...]
    #: Bound once as one array per placeholder (PostgreSQL ``unnest``), not once per row.
    columnar: bool = False

    def __post_init__(self) -> None:
        if len(self.keys) < 2:  # itemgetter of one key returns the bare value, not a tuple
            raise ValueError("a bulk statement binds at least two keys")

    def rows(self, values: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        """Bind tuples of ``values`` (dicts holding every key)."""
        take = itemgetter(*self.keys)
        converted = [(i, conv) for i, conv in enumerate(self.converters) if conv is not None]
        if not converted:
            return [take(row) for row in values]
        out = []
        done: dict[datetime, Any] = {}  # a batch repeats its instants (created_at, now, …)
        for row in values:
            bound = list(take(row))
            for i, conv in converted:
                value = bound[i]
                if type(value) is not datetime:
                    bound[i] = conv(value)
                    continue
                hit = done.get(value, _MISS)
                if hit is _MISS:
                    hit = done[value] = conv(value)
                bound[i] = hit
            out.append(tuple(bound))
        return out

    def execute(self, conn: sa.Connection, values: Sequence[Mapping[str, Any]]) -> int:
        """Execute once per row of ``values``; return the rows changed in all."""
        if not values:
            return 0
        rows = self.rows(values)
        if self.columnar:
            arrays = tuple(list(column) for column in zip(*rows, strict=True))
            result = conn.exec_driver_sql(self.sql, arrays, execution_options=_TRUSTED)
        else:
            result = conn.exec_driver_sql(self.sql, rows, execution_options=_TRUSTED)
        return int(result.rowcount)


def insert_statement(table: sa.Table, dialect: str, *, conflict: str = "") -> BulkStatement:
    """INSERT of every column of ``table`` (dict keys = column names), then ``conflict``.

    On PostgreSQL one statement inserts the whole batch from arrays (``unnest``).
    """
    columns = list(table.columns)
    names = ", ".join(f'"{c.name}"' for c in columns)
    keys = tuple(c.name for c in columns)
    converters = tuple(_converter(c, dialect) for c in columns)
    if dialect == "postgresql":
        picks = ", ".join(_pg_value(c, c.name) for c in columns)
        source = _pg_unnest([(c, c.name) for c in columns])
        sql = f"INSERT INTO {table.name} ({names}) SELECT {picks} FROM {source} {conflict}"
        return BulkStatement(sql.rstrip(), keys, converters, columnar=True)
    marks = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks}) {conflict}".rstrip()
    return BulkStatement(sql, keys, converters)


def update_statement(
    table: sa.Table,
    dialect: str,
    *,
    set_columns: Mapping[str, str],
    where_columns: Mapping[str, str],
) -> BulkStatement:
    """UPDATE ``table`` SET column = :key ... WHERE column = :key ...

    ``set_columns`` and ``where_columns`` map a column name to the row key it takes (keys
    are distinct). Every compared value is a parameter, never a literal: with a literal
    that a partial index matches, PostgreSQL's generic plan of the prepared statement may
    pick that index over the key's. On PostgreSQL one statement updates the whole batch
    (``UPDATE … FROM unnest(…)``); a key column must then name each row once.
    """
    ordered = [
        (table.c[column], key) for column, key in [*set_columns.items(), *where_columns.items()]
    ]
    keys = tuple(key for _, key in ordered)
    converters = tuple(_converter(column, dialect) for column, _ in ordered)
    if dialect == "postgresql":
        sets = ", ".join(f'"{c}" = {_pg_value(table.c[c], k)}' for c, k in set_columns.items())
        matches = " AND ".join(f'{table.name}."{c}" = v."{k}"' for c, k in where_columns.items())
        sql = f"UPDATE {table.name} SET {sets} FROM {_pg_unnest(ordered)} WHERE {matches}"
        return BulkStatement(sql, keys, converters, columnar=True)
    sets = ", ".join(f'"{c}" = ?' for c in set_columns)
    wheres = " AND ".join(f'"{c}" = ?' for c in where_columns)
    sql = f"UPDATE {table.name} SET {sets} WHERE {wheres}"
    return BulkStatement(sql, keys, converters)


def _pg_unnest(placeholders: Sequence[tuple[sa.Column[Any], str]]) -> str:
    """``unnest(%b::type[], …) AS v("key", …)``: one array parameter per placeholder.

    The arrays travel in psycopg's binary format (``%b``): its text format quotes and
    escapes every element through regular expressions, a third of a batch's CPU. JSON
    travels as text (cast back by :func:`_pg_value`).
    """
    arrays = ", ".join(f"%b::{_pg_element(column)}[]" for column, _ in placeholders)
    names = ", ".join(f'"{key}"' for _, key in placeholders)
    return f"unnest({arrays}) AS v({names})"


def _pg_element(column: sa.Column[Any]) -> str:
    return "TEXT" if isinstance(column.type, sa.JSON) else str(column.type.compile(dialect=_PG))


def _pg_value(column: sa.Column[Any], key: str) -> str:
    """The unnested value of ``key`` as ``column``'s type."""
    return f'v."{key}"::JSON' if isinstance(column.type, sa.JSON) else f'v."{key}"'
