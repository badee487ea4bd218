"""The domain: schedules, runs, their states and kinds. No I/O.

Enum values are the exact strings stored in the database and shown by the API and CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RunState(StrEnum):
    """Where a run is in its life (DESIGN §1)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    MISSED = "missed"
    SKIPPED = "skipped"

    @property
    def is_terminal(self) -> bool:
        """True for states a run never leaves."""
        return self not in (RunState.PENDING, RunState.RUNNING)


#: States that count against ``max_instances`` and overlap decisions.
ACTIVE_RUN_STATES = (RunState.PENDING, RunState.RUNNING)


class RunKind(StrEnum):
    """Why a run exists."""

    SCHEDULED = "scheduled"
    MANUAL = "manual"
    RETRY = "retry"
    RECOVERY = "recovery"
    CHAIN = "chain"
    RERUN = "rerun"


class ScheduleState(StrEnum):
    """Whether a schedule fires."""

    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"


class Overlap(StrEnum):
    """What happens to a fire when ``max_instances`` runs are already active (DESIGN §3.3)."""

    SKIP = "skip"
    BUFFER_ONE = "buffer_one"
    BUFFER_ALL = "buffer_all"
    REPLACE = "replace"


class Source(StrEnum):
    """Who created a schedule."""

    API = "api"
    CLI = "cli"
    MANIFEST = "manifest"
    CODE = "code"


#: Schedule fields (API names) a caller may set, with the value an omitted one means (§1).
#: The one source of these defaults: the facade, the manifest and the API's PUT import it.
SCHEDULE_FIELD_DEFAULTS: dict[str, Any] = {
    "description": None,
    "parameters": {},
    "start_date": None,
    "end_date": None,
    "enabled": True,
    "priority": 0,
    "max_instances": 1,
    "overlap": Overlap.SKIP.value,
    "misfire_grace_time": 60.0,
    "coalesce": True,
    "max_attempts": None,
    "max_recoveries": 3,
    "retry_backoff": 10.0,
    "timeout": None,
    "chain": [],
    "executor": "default",
    "sla_seconds": 60,
    "labels": {},
}
#: Settable fields a new schedule is not given a default for (it leaves them unset).
_ARGUMENT_FIELDS = frozenset({"parameters", "start_date", "end_date"})
#: §1 fields a schedule is created with unless told otherwise.
SCHEDULE_DEFAULTS: dict[str, Any] = {
    **{k: v for k, v in SCHEDULE_FIELD_DEFAULTS.items() if k not in _ARGUMENT_FIELDS},
    "source": Source.CODE.value,
}


@dataclass(frozen=True, slots=True)
class Schedule:
    """A job type bound to a trigger (DESIGN §1 fields, API names)."""

    id: str
    tenant: str
    name: str
    job: str
    trigger: dict[str, Any]
    timezone: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    start_date: datetime | None = None
    end_date: datetime | None = None
    enabled: bool = True
    priority: int = 0
    max_instances: int = 1
    overlap: Overlap = Overlap.SKIP
    misfire_grace_time: float | None = 60.0
    coalesce: bool = True
    max_attempts: int | None = None
    max_recoveries: int = 3
    retry_backoff: float = 10.0
    timeout: float | None = None
    chain: list[str] = field(default_factory=list)
    executor: str = "default"
    sla_seconds: int = 60
    labels: dict[str, Any] = field(default_factory=dict)
    source: Source = Source.API
    state: ScheduleState = ScheduleState.ACTIVE
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    last_run_state: RunState | None = None
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict (datetimes left as objects)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class RunError:
    """A run's failure: exception type, message and full traceback."""

    type: str
    message: str
    traceback: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """Return the JSON shape stored and shown."""
        return {"type": self.type, "message": self.message, "traceback": self.traceback}


@dataclass(frozen=True, slots=True)
class Run:
    """One execution attempt (DESIGN §1)."""

    id: str
    schedule_id: str | None
    tenant: str
    job: str
    kind: RunKind
    state: RunState
    scheduled_for: datetime
    available_at: datetime
    created_at: datetime
    parameters: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempt: int = 1
    max_attempts: int = 1
    recovery: int = 0
    parent_run_id: str | None = None
    worker: str | None = None
    lease_token: str | None = None
    lease_expires_at: datetime | None = None
    duration_ms: int | None = None
    lateness_ms: int | None = None
    result: Any = None
    error: RunError | None = None
    missed_count: int | None = None
    missed_until: datetime | None = None
    timeout: float | None = None
    executor: str = "default"
    cancel_requested: bool = False
    schedule_name: str | None = None  # the schedule's name when the run was created

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict (error as its dict)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["error"] = self.error.to_dict() if self.error else None
        return out


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """A page of a keyset-paginated listing; ``next_cursor`` is None on the last page."""

    items: list[T]
    next_cursor: str | None = None
