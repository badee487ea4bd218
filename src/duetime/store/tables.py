"""SQLAlchemy Core tables (prefix ``duetime_``). The single source of the schema.

Instants are stored in UTC by :class:`UTCDateTime` (``timestamptz`` on PostgreSQL, an ISO
string on SQLite whose lexical order is time order) and always come back tz-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import DateTime, TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

#: Alembic's own bookkeeping table, prefixed like every other duetime table.
VERSION_TABLE = "duetime_alembic_version"


#: Length of UTCDateTime's SQLite text, ``YYYY-MM-DD HH:MM:SS.ffffff`` (naive UTC).
_SQLITE_TEXT_LENGTH = 26


def sqlite_text(value: datetime) -> str:
    """UTCDateTime's SQLite text of an aware instant (naive UTC with microseconds)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:_SQLITE_TEXT_LENGTH]  # without "+00:00"


class UTCDateTime(TypeDecorator[datetime]):
    """A tz-aware UTC datetime on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        """Store UTC; SQLite gets a naive UTC value (ISO text)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored; use tz-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Any:
        """On SQLite one direct conversion (the engine binds several instants per run).

        The text is SQLAlchemy's SQLite format (``YYYY-MM-DD HH:MM:SS.ffffff``, naive UTC).
        """
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError(f"naive datetime {value!r} cannot be stored; use tz-aware UTC")
            return sqlite_text(value)

        return process

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """On SQLite parse the stored text directly into an aware UTC datetime."""
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def process(value: Any) -> datetime | None:
            if value is None:
                return None
            if type(value) is str and len(value) == _SQLITE_TEXT_LENGTH:
                return datetime.fromisoformat(value + "+00:00")  # 6x cheaper than .replace()
            instant = value if isinstance(value, datetime) else datetime.fromisoformat(value)
            return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return tz-aware UTC."""
        if value is None:
            return None
        if isinstance(value, str):  # pragma: no cover - raw text from SQLite functions
            value = datetime.fromisoformat(value)
        instant: datetime = value
        return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


def _partial(where: str) -> dict[str, Any]:
    """Index keyword arguments: the same partial-index WHERE on SQLite and PostgreSQL."""
    return {"sqlite_where": text(where), "postgresql_where": text(where)}


def _id(name: str = "id", **kw: Any) -> Column[str]:
    return Column(name, String(36), **kw)


schedules = Table(
    "duetime_schedules",
    metadata,
    _id(primary_key=True),
    Column("tenant", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text),
    Column("job", String(200), nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("trigger", JSON, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("start_date", UTCDateTime),
    Column("end_date", UTCDateTime),
    Column("enabled", Boolean, nullable=False),
    Column("state", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("max_instances", Integer, nullable=False),
    Column("overlap", String(16), nullable=False),
    Column("misfire_grace_time", Float),
    Column("coalesce", Boolean, nullable=False),
    Column("max_attempts", Integer),
    Column("max_recoveries", Integer, nullable=False),
    Column("retry_backoff", Float, nullable=False),
    Column("timeout", Float),
    Column("chain", JSON, nullable=False),
    Column("executor", String(64), nullable=False),
    Column("sla_seconds", Integer, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("source", String(16), nullable=False),
    Column("created_by", String(64)),  # "<tenant>:<role>" of the creator (duetime.shell rule)
    Column("next_run_at", UTCDateTime),
    Column("last_run_at", UTCDateTime),
    Column("last_run_state", String(16)),
    Column("version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime),
    Index(
        "uq_duetime_schedules_tenant_name_live",
        "tenant",
        "name",
        unique=True,
        **_partial("deleted_at IS NULL"),
    ),
    Index(
        "ix_duetime_schedules_due",
        "next_run_at",
        "priority",
        **_partial("state = 'active' AND deleted_at IS NULL"),
    ),
    Index(  # the due read's segments of priority above and below 0 (usually empty)
        "ix_duetime_schedules_due_prioritized",
        "next_run_at",  # searched by due time (migration 0006), however many are prioritized
        "priority",
        **_partial("state = 'active' AND deleted_at IS NULL AND priority != 0"),
    ),
    Index("ix_duetime_schedules_tenant_created", "tenant", "created_at", "id"),
)

runs = Table(
    "duetime_runs",
    metadata,
    _id(primary_key=True),
    _id("schedule_id"),
    Column("schedule_name", String(200)),
    Column("tenant", String(200), nullable=False),
    Column("job", String(200), nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("executor", String(64), nullable=False),
    Column("scheduled_for", UTCDateTime, nullable=False),
    Column("available_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("attempt", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("recovery", Integer, nullable=False),
    Column("max_recoveries", Integer, nullable=False),
    Column("retry_backoff", Float, nullable=False),
    Column("parent_run_id", String(36)),
    Column("worker", String(200)),
    Column("lease_token", String(36)),
    Column("lease_expires_at", UTCDateTime),
    Column("cancel_requested", Boolean, nullable=False),
    Column("duration_ms", Integer),
    Column("lateness_ms", Integer),
    Column("result", JSON),
    Column("error", JSON),
    Column("missed_count", Integer),
    Column("missed_until", UTCDateTime),
    Column("timeout", Float),
    Index(
        "uq_duetime_runs_scheduled_fire",
        "schedule_id",
        "scheduled_for",
        unique=True,
        **_partial("kind = 'scheduled'"),
    ),
    Index(
        "ix_duetime_runs_claim",
        "available_at",
        "priority",
        **_partial("state = 'pending'"),
    ),
    Index(  # the claim's order: each priority segment is one range scan, no backlog scan
        "ix_duetime_runs_claim_priority",
        "priority",
        "available_at",
        **_partial("state = 'pending'"),
    ),
    Index(
        "ix_duetime_runs_leases",
        "lease_expires_at",
        **_partial("state = 'running'"),
    ),
    Index(  # the engine's "which running runs must stop" (usually none)
        "ix_duetime_runs_cancel_requested",
        "cancel_requested",  # with state: an equality search the planner prefers to a scan
        "state",
        **_partial("state = 'running' AND cancel_requested = true"),
    ),
    Index("ix_duetime_runs_schedule_state", "schedule_id", "state"),
    Index("ix_duetime_runs_schedule_created", "schedule_id", "created_at", "id"),
    Index("ix_duetime_runs_tenant_created", "tenant", "created_at", "id"),
)

job_types = Table(
    "duetime_job_types",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("description", Text),
    Column("parameter_schema", JSON, nullable=False),
    Column("defaults", JSON, nullable=False),
    Column("module", String(300)),
    Column("timeout", Float),  # the @job default (seconds), for processes that cannot import it
    Column("max_attempts", Integer),
    Column("published_by", String(200)),
    Column("updated_at", UTCDateTime, nullable=False),
)

instances = Table(
    "duetime_instances",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("hostname", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("executor", String(64), nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("version", String(32), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime),
)

locks = Table(
    "duetime_locks",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("owner_token", String(64), nullable=False),
    Column("owner", String(200)),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)
