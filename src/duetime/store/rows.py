"""Row <-> domain conversion and the one place a run's insert dict is built."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from duetime.models import (
    Overlap,
    Run,
    RunError,
    RunKind,
    RunState,
    Schedule,
    ScheduleState,
    Source,
)

#: Instance defaults used when neither the schedule nor the ``@job`` sets a value.
DEFAULT_TIMEOUT_SECONDS = 1800.0
DEFAULT_MAX_ATTEMPTS = 1

_SCHEDULE_FIELDS = tuple(Schedule.__dataclass_fields__)
_RUN_FIELDS = tuple(f for f in Run.__dataclass_fields__ if f != "error")


def _mapping(row: Any) -> Mapping[str, Any]:
    """Return a SQLAlchemy Row (or any mapping) as a read-only mapping."""
    mapping = getattr(row, "_mapping", row)
    if not isinstance(mapping, Mapping):
        raise TypeError(f"expected a row or mapping, got {type(row).__name__}")
    return mapping


def row_to_schedule(row: Any) -> Schedule:
    """Build a :class:`Schedule` from a ``duetime_schedules`` row."""
    m = _mapping(row)
    values = {name: m[name] for name in _SCHEDULE_FIELDS if name in m}
    values["parameters"] = dict(m["parameters"] or {})
    values["trigger"] = dict(m["trigger"] or {})
    values["chain"] = list(m["chain"] or [])
    values["labels"] = dict(m["labels"] or {})
    values["overlap"] = Overlap(m["overlap"])
    values["source"] = Source(m["source"])
    values["state"] = ScheduleState(m["state"])
    last = m.get("last_run_state")
    values["last_run_state"] = RunState(last) if last else None
    return Schedule(**values)


def _run_error(value: Any) -> RunError | None:
    if not value:
        return None
    if isinstance(value, RunError):
        return value
    return RunError(
        type=str(value.get("type", "Error")),
        message=str(value.get("message", "")),
        traceback=value.get("traceback"),
    )


def row_to_run(row: Any) -> Run:
    """Build a :class:`Run` from a ``duetime_runs`` row."""
    m = _mapping(row)
    values = {name: m[name] for name in _RUN_FIELDS if name in m}
    values["parameters"] = dict(m["parameters"] or {})
    values["kind"] = RunKind(m["kind"])
    values["state"] = RunState(m["state"])
    values["cancel_requested"] = bool(m.get("cancel_requested", False))
    return Run(error=_run_error(m.get("error")), **values)


def _schedule_ref(schedule: Schedule | Any | None) -> tuple[str | None, str | None]:
    """Return ``(schedule_id, schedule_name)`` of a Schedule, a row, or None."""
    if schedule is None:
        return None, None
    if isinstance(schedule, Schedule):
        return schedule.id, schedule.name
    m = _mapping(schedule)
    return m["id"], m.get("name")


def new_run_values(
    *,
    schedule: Schedule | Any | None,
    tenant: str,
    job: str,
    parameters: Mapping[str, Any],
    kind: RunKind,
    scheduled_for: datetime,
    available_at: datetime,
    now: datetime,
    max_attempts: int,
    timeout: float | None,
    priority: int,
    executor: str,
    max_recoveries: int,
    retry_backoff: float,
    attempt: int = 1,
    recovery: int = 0,
    parent_run_id: str | None = None,
    state: RunState = RunState.PENDING,
    **extra: Any,
) -> dict[str, Any]:
    """Return a full insert dict for ``tables.runs`` with a fresh uuid4 id."""
    schedule_id, schedule_name = _schedule_ref(schedule)
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "schedule_id": schedule_id,
        "schedule_name": schedule_name,
        "tenant": tenant,
        "job": job,
        "parameters": dict(parameters),
        "kind": RunKind(kind).value,
        "state": RunState(state).value,
        "priority": int(priority),
        "executor": executor,
        "scheduled_for": scheduled_for,
        "available_at": available_at,
        "created_at": now,
        "started_at": None,
        "finished_at": None,
        "attempt": int(attempt),
        "max_attempts": int(max_attempts),
        "recovery": int(recovery),
        "max_recoveries": int(max_recoveries),
        "retry_backoff": float(retry_backoff),
        "parent_run_id": parent_run_id,
        "worker": None,
        "lease_token": None,
        "lease_expires_at": None,
        "cancel_requested": False,
        "duration_ms": None,
        "lateness_ms": None,
        "result": None,
        "error": None,
        "missed_count": None,
        "missed_until": None,
        "timeout": timeout,
    }
    unknown = set(extra) - set(values)
    if unknown:
        raise TypeError(f"unknown run column(s): {', '.join(sorted(unknown))}")
    values.update(extra)
    return values


def _job_defaults(registry_or_job_type: Any, job: str) -> Mapping[str, Any]:
    """Return ``{"timeout", "max_attempts"}`` defaults of ``job`` from whatever we were given.

    Accepts a registry (``find(name)``), a job type (``.timeout`` / ``.max_attempts``), a
    published ``duetime_job_types`` defaults mapping, or None.
    """
    source = registry_or_job_type
    if source is None:
        return {}
    if hasattr(source, "find") and not isinstance(source, Mapping):
        source = source.find(job)
        if source is None:
            return {}
    if isinstance(source, Mapping):
        return source
    return {
        "timeout": getattr(source, "timeout", None),
        "max_attempts": getattr(source, "max_attempts", None),
    }


def resolve_run_settings(schedule: Schedule, registry_or_job_type: Any) -> dict[str, Any]:
    """Resolve ``max_attempts`` and ``timeout``: schedule field → ``@job`` default → instance."""
    defaults = _job_defaults(registry_or_job_type, schedule.job)
    max_attempts = schedule.max_attempts or defaults.get("max_attempts") or DEFAULT_MAX_ATTEMPTS
    timeout = schedule.timeout
    if timeout is None:
        timeout = defaults.get("timeout")
    if timeout is None:
        timeout = DEFAULT_TIMEOUT_SECONDS
    return {"max_attempts": int(max_attempts), "timeout": float(timeout)}
