"""Pydantic request/response models of the REST API (separate from storage tables).

Requests accept the shapes users bring (see :mod:`duetime.api.normalize`); responses always
use the canonical DESIGN §1 field names.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from duetime.api.normalize import normalize_schedule_input, reject_nul
from duetime.errors import ValidationError
from duetime.models import Overlap, Run, RunKind, RunState, Schedule, ScheduleState, Source

#: Bounds that keep every integer inside what both databases store (32-bit columns).
INT32_MAX = 2**31 - 1
MAX_SECONDS = 10 * 365 * 24 * 3600
MAX_LIST_LIMIT = 500
DEFAULT_LIST_LIMIT = 50
MAX_PREVIEW_COUNT = 100

OverlapName = Literal["skip", "buffer_one", "buffer_all", "replace"]
TriggerValue = dict[str, Any] | str

#: Request bodies: unknown fields refused, no lax coercion ("5" is not 5), like the schema says.
_FORBID = ConfigDict(extra="forbid", strict=True)


def _iso_instant(value: Any) -> Any:
    """Accept ISO 8601 strings (and datetimes from Python callers) only."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("must be an ISO 8601 date-time such as 2030-01-01T03:00:00Z")


#: A request datetime: an ISO 8601 string (naive values are read in the schedule's zone).
Instant = Annotated[datetime, BeforeValidator(_iso_instant)]


def check_name(value: str, field: str = "name") -> str:
    """Names: 1–200 characters, no control characters, no leading/trailing spaces."""
    if not 1 <= len(value) <= 200:
        raise ValidationError("must be 1–200 characters", field=field)
    if value != value.strip():
        raise ValidationError("must not start or end with spaces", field=field)
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValidationError("must not contain control characters", field=field)
    return value


class _ScheduleFields(BaseModel):
    """Optional §1 fields shared by create, replace and patch bodies."""

    model_config = _FORBID

    tenant: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    parameters: dict[str, Any] | None = None
    timezone: str | None = Field(None, min_length=1, max_length=64)
    start_date: Instant | None = None
    end_date: Instant | None = None
    enabled: bool | None = None
    priority: int | None = Field(None, ge=-1_000_000, le=1_000_000)
    max_instances: int | None = Field(None, ge=1, le=100)
    overlap: OverlapName | None = None
    misfire_grace_time: float | None = Field(None, ge=0, le=MAX_SECONDS)
    coalesce: bool | None = None
    max_attempts: int | None = Field(None, ge=1, le=1000)
    max_recoveries: int | None = Field(None, ge=0, le=1000)
    retry_backoff: float | None = Field(None, ge=0, le=MAX_SECONDS)
    timeout: float | None = Field(None, gt=0, le=MAX_SECONDS)
    chain: list[str] | None = Field(None, max_length=100)
    executor: str | None = Field(None, min_length=1, max_length=64)
    sla_seconds: int | None = Field(None, ge=0, le=MAX_SECONDS)
    labels: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = normalize_schedule_input(data)
            for key, value in data.items():
                reject_nul(value, key)
        return data

    @field_validator("chain")
    @classmethod
    def _chain_names(cls, value: list[str] | None) -> list[str] | None:
        for index, name in enumerate(value or []):
            check_name(name, f"chain.{index}")
        return value

    def changes(self) -> dict[str, Any]:
        """Return the fields the client set (explicit nulls included)."""
        return {k: getattr(self, k) for k in self.model_fields_set if k not in _PRECONDITIONS}


_PRECONDITIONS = ("expected_version", "expected_updated_at")


class _Preconditions(BaseModel):
    model_config = _FORBID

    expected_version: int | None = Field(None, ge=1, le=INT32_MAX)
    expected_updated_at: Instant | None = None


class ScheduleCreate(_ScheduleFields):
    """POST /schedules body: ``name``, ``job`` and a trigger are required."""

    name: str = Field(min_length=1, max_length=200)
    job: str = Field(min_length=1, max_length=200)
    trigger: TriggerValue

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)


class ScheduleReplace(ScheduleCreate, _Preconditions):
    """PUT /schedules/{id} body: the full schedule; omitted optional fields reset to defaults."""


class SchedulePatch(_ScheduleFields, _Preconditions):
    """PATCH /schedules/{id} body: only the fields given change."""

    name: str | None = Field(None, min_length=1, max_length=200)
    job: str | None = Field(None, min_length=1, max_length=200)
    trigger: TriggerValue | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)


class PreconditionBody(_Preconditions):
    """Optional body of DELETE and actions: the version the client last saw."""

    model_config = _FORBID


class TriggerRequest(_Preconditions):
    """POST /schedules/{id}/trigger body: optional parameter overrides for this run."""

    model_config = _FORBID

    parameters: dict[str, Any] | None = None

    @field_validator("parameters")
    @classmethod
    def _no_nul(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        reject_nul(value, "parameters")
        return value


class ActionRequest(_Preconditions):
    """POST /schedules/{id}/action body."""

    model_config = _FORBID

    action: Literal["trigger", "pause", "resume", "enable", "disable"]
    parameters: dict[str, Any] | None = None

    @field_validator("parameters")
    @classmethod
    def _no_nul(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        reject_nul(value, "parameters")
        return value


class CronValidateRequest(BaseModel):
    """POST /cron/validate body."""

    model_config = _FORBID

    expression: str = Field(min_length=1, max_length=1000)
    timezone: str = Field("UTC", min_length=1, max_length=64)
    count: int = Field(5, ge=0, le=MAX_PREVIEW_COUNT)
    after: Instant | None = None
    dst_policy: Literal["cron", "instant", "once"] = "cron"
    weekdays: Literal["posix", "iso"] = "posix"
    day_match: Literal["vixie", "and"] = "vixie"


class ScheduleListQuery(BaseModel):
    """Query parameters of GET /schedules (one model: validated in one pass)."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(DEFAULT_LIST_LIMIT, ge=1, le=MAX_LIST_LIMIT, description="Page size.")
    cursor: str | None = Field(
        None, max_length=500, description="`next_cursor` of the previous page."
    )
    tenant: str | None = Field(None, max_length=200, description="Only this tenant.")
    state: ScheduleState | None = None
    job: str | None = Field(None, max_length=200)
    enabled: bool | None = None
    name_prefix: str | None = Field(None, max_length=200, description="Names starting so.")
    since: Instant | None = Field(None, description="Created at or after.")
    until: Instant | None = Field(None, description="Created before.")


class RunListQuery(BaseModel):
    """Query parameters of GET /runs (unknown parameters are refused, not ignored)."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(DEFAULT_LIST_LIMIT, ge=1, le=MAX_LIST_LIMIT, description="Page size.")
    cursor: str | None = Field(
        None, max_length=500, description="`next_cursor` of the previous page."
    )
    tenant: str | None = Field(None, max_length=200, description="Only this tenant.")
    schedule: str | None = Field(None, max_length=200, description="A schedule's id or name.")
    state: list[RunState] | None = Field(None, description="One or more states.")
    job: str | None = Field(None, max_length=200, description="Only runs of this job type.")
    since: Instant | None = Field(None, description="Created at or after.")
    until: Instant | None = Field(None, description="Created before.")


# ------------------------------------------------------------------------ responses


class RunErrorOut(BaseModel):
    """A run's failure."""

    type: str
    message: str
    traceback: str | None = None


class ScheduleOut(BaseModel):
    """A schedule, canonical field names (DESIGN §1)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    tenant: str
    name: str
    description: str | None
    job: str
    parameters: dict[str, Any]
    trigger: dict[str, Any]
    timezone: str
    start_date: datetime | None
    end_date: datetime | None
    enabled: bool
    priority: int
    max_instances: int
    overlap: Overlap
    misfire_grace_time: float | None
    coalesce: bool
    max_attempts: int | None
    max_recoveries: int
    retry_backoff: float
    timeout: float | None
    chain: list[str]
    executor: str
    sla_seconds: int
    labels: dict[str, Any]
    source: Source
    state: ScheduleState
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_run_state: RunState | None
    version: int
    created_at: datetime | None
    updated_at: datetime | None
    deleted_at: datetime | None

    @classmethod
    def of(cls, schedule: Schedule) -> ScheduleOut:
        """Build from the domain object."""
        return cls.model_validate(schedule, from_attributes=True)


class RunOut(BaseModel):
    """A run, canonical field names (DESIGN §1)."""

    id: str
    schedule_id: str | None
    tenant: str
    job: str
    parameters: dict[str, Any]
    kind: RunKind
    state: RunState
    scheduled_for: datetime
    available_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempt: int
    max_attempts: int
    recovery: int
    parent_run_id: str | None
    worker: str | None
    lease_token: str | None
    lease_expires_at: datetime | None
    duration_ms: int | None
    lateness_ms: int | None
    result: Any
    error: RunErrorOut | None
    missed_count: int | None
    missed_until: datetime | None
    timeout: float | None
    priority: int
    executor: str
    cancel_requested: bool
    schedule_name: str | None = None

    @classmethod
    def of(cls, run: Run) -> RunOut:
        """Build from the domain object."""
        return cls.model_validate(run.to_dict())


class SchedulePage(BaseModel):
    """A page of schedules; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[ScheduleOut]
    next_cursor: str | None


class RunPage(BaseModel):
    """A page of runs; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[RunOut]
    next_cursor: str | None


class RunList(BaseModel):
    """Runs created by an operation (``POST /check-schedules``)."""

    items: list[RunOut]


class FireTime(BaseModel):
    """One upcoming fire: the UTC instant and the same instant in the schedule's zone."""

    at: datetime
    local: str


class NextRuns(BaseModel):
    """GET /schedules/{id}/next-runs."""

    schedule_id: str
    name: str
    timezone: str
    items: list[FireTime]


class FieldError(BaseModel):
    """One offending field."""

    field: str
    message: str


class CronValidation(BaseModel):
    """POST /cron/validate answer: ``valid`` plus a description and a preview, or the error."""

    valid: bool
    expression: str
    timezone: str
    description: str | None = None
    next: list[FireTime] = Field(default_factory=list)
    errors: list[FieldError] = Field(default_factory=list)


class JobTypeOut(BaseModel):
    """A job type with its parameter JSON schema and defaults."""

    name: str
    description: str | None = None
    parameter_schema: dict[str, Any] = Field(default_factory=dict)
    defaults: dict[str, Any] = Field(default_factory=dict)
    module: str | None = None
    timeout: float | None = Field(None, description="The @job default (seconds).")
    max_attempts: int | None = Field(None, description="The @job default.")


class JobTypeList(BaseModel):
    """GET /jobs."""

    items: list[JobTypeOut]


class Problem(BaseModel):
    """An ``application/problem+json`` error document."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] = Field(default_factory=list)
    current_version: int | None = None
