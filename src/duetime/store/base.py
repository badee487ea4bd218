"""The Store seam: what the engine and the facade need from a database.

:class:`~duetime.store.sqlalchemy.SQLAlchemyStore` is the one implementation (SQLite and
PostgreSQL). The engine's claim SQL lives in :mod:`duetime.store.claims` and takes the
store's transactions; the facade's CRUD methods are part of the store itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

import sqlalchemy as sa

from duetime.clock import Clock
from duetime.models import Page, Run, Schedule


@runtime_checkable
class Store(Protocol):
    """A duetime database: transactions, change signals and the facade's queries."""

    url: str
    dialect: Literal["sqlite", "postgresql"]
    clock: Clock

    def write(self) -> AbstractContextManager[sa.Connection]:
        """One write transaction (SQLite ``BEGIN IMMEDIATE``; PostgreSQL READ COMMITTED)."""
        ...

    def read(self) -> AbstractContextManager[sa.Connection]:
        """One read transaction."""
        ...

    def changed(self, conn: sa.Connection) -> None:
        """Signal that the current write transaction changed schedules or runs."""
        ...

    def add_change_listener(
        self, callback: Callable[[], None], *, except_thread: int | None = None
    ) -> None:
        """Call ``callback`` after every committed change made through this store."""
        ...

    def check_schema(self) -> None:
        """Raise SchemaOutdatedError unless the schema is at the newest revision."""
        ...

    def db_now(self) -> datetime:
        """The database's current time (the clock's on SQLite)."""
        ...

    def dispose(self) -> None:
        """Release connections."""
        ...

    def create_schedule(self, values: Mapping[str, Any]) -> Schedule:
        """Insert a schedule row (ConflictError on a taken name)."""
        ...

    def get_schedule(
        self, tenant: str, name_or_id: str, *, include_deleted: bool = False
    ) -> Schedule:
        """Return a schedule by id or name."""
        ...

    def list_schedules(
        self,
        tenant: str,
        *,
        state: str | None = None,
        job: str | None = None,
        enabled: bool | None = None,
        name_prefix: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Schedule]:
        """Return one keyset page of live schedules."""
        ...

    def insert_run(self, values: Mapping[str, Any]) -> Run:
        """Insert one run row."""
        ...

    def get_run(self, tenant: str, run_id: str) -> Run:
        """Return a run by id."""
        ...

    def list_runs(
        self,
        tenant: str,
        *,
        schedule_id: str | None = None,
        states: Iterable[str] | None = None,
        since: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Run]:
        """Return one keyset page of runs, newest first."""
        ...

    def request_cancel(self, tenant: str, run_id: str) -> Run:
        """Cancel a pending run or flag a running one."""
        ...

    def publish_job_types(self, job_types: Iterable[Any], *, published_by: str | None) -> int:
        """Upsert job type publications."""
        ...
