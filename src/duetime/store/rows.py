"""Row <-> domain conversion and the one place a run's insert dict is built."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any, TypeVar

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
_RUN_READ_FIELDS = tuple(Run.__dataclass_fields__)
T = TypeVar("T")


def _as_dict(row: Any) -> dict[str, Any]:
    """Copy a SQLAlchemy Row (or any mapping) into a plain dict, once.

    Key lookups on a dict are several times cheaper than on a Row's mapping, and a
    listing converts every field of every row.
    """
    as_dict = getattr(row, "_asdict", None)
    if as_dict is not None:
        values: dict[str, Any] = as_dict()
        return values
    if not isinstance(row, Mapping):
        raise TypeError(f"expected a row or mapping, got {type(row).__name__}")
    return dict(row)


def row_to_schedule(row: Any) -> Schedule:
    """Build a :class:`Schedule` from a ``duetime_schedules`` row."""
    m = _as_dict(row)
    return _schedule_from({name: m[name] for name in _SCHEDULE_FIELDS if name in m})


def _schedule_from(values: dict[str, Any]) -> Schedule:
    """Finish ``values`` (the row's Schedule fields, a dict of our own) into a Schedule."""
    values["parameters"] = dict(values["parameters"] or {})
    values["trigger"] = dict(values["trigger"] or {})
    values["chain"] = list(values["chain"] or [])
    values["labels"] = dict(values["labels"] or {})
    values["overlap"] = Overlap(values["overlap"])
    values["source"] = Source(values["source"])
    values["state"] = ScheduleState(values["state"])
    last = values.get("last_run_state")
    values["last_run_state"] = RunState(last) if last else None
    return Schedule(**values)


def _reader(
    keys: Sequence[str], fields: tuple[str, ...], finish: Callable[[dict[str, Any]], T]
) -> Callable[[Sequence[Any]], T]:
    """A converter of result rows with these ``keys``: one tuple pick per row, no lookups."""
    present, positions = _positions(tuple(keys), fields)
    if len(positions) == 1:  # itemgetter of one index returns the bare value
        return lambda row: finish({present[0]: row[positions[0]]})
    pick = itemgetter(*positions)
    return lambda row: finish(dict(zip(present, pick(row), strict=True)))


@functools.lru_cache(maxsize=64)
def _positions(
    keys: tuple[str, ...], fields: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The ``fields`` among ``keys`` and their positions (a listing's columns repeat)."""
    present = tuple(name for name in fields if name in keys)
    return present, tuple(keys.index(name) for name in present)


def schedule_reader(keys: Sequence[str]) -> Callable[[Sequence[Any]], Schedule]:
    """:func:`row_to_schedule` for many rows of one result (``keys`` = its column names)."""
    return _reader(keys, _SCHEDULE_FIELDS, _schedule_from)


#: What firing reads of a due schedule (not its description, labels, chain or history);
#: ``trigger`` and ``parameters`` come as their JSON text.
DUE_FIELDS = (
    "id", "tenant", "name", "job", "parameters", "trigger", "timezone", "start_date",
    "end_date", "priority", "max_instances", "overlap", "misfire_grace_time", "coalesce",
    "max_attempts", "max_recoveries", "retry_backoff", "timeout", "executor", "state",
    "next_run_at",
)  # fmt: skip


def due_schedule_reader(keys: Sequence[str]) -> Callable[[Sequence[Any]], tuple[Schedule, str]]:
    """Rows of :data:`DUE_FIELDS` -> (a Schedule with just those fields, its trigger text)."""
    return _reader(keys, DUE_FIELDS, _due_schedule_from)


def _due_schedule_from(values: dict[str, Any]) -> tuple[Schedule, str]:
    text = values["trigger"]
    values["trigger"] = dict(_decoded_object(text))
    parameters = values["parameters"]
    values["parameters"] = {} if parameters == "{}" else dict(json.loads(parameters) or {})
    values["overlap"] = Overlap(values["overlap"])
    values["state"] = ScheduleState(values["state"])
    return Schedule(**values), text


@functools.lru_cache(maxsize=4096)
def _decoded_object(text: str) -> dict[str, Any]:
    """A trigger's JSON (schedules of one shape share it; callers get a copy)."""
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


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
    m = _as_dict(row)
    values = {name: m[name] for name in _RUN_READ_FIELDS if name in m}
    return _run_from(values)


def _run_from(values: dict[str, Any]) -> Run:
    """Finish ``values`` (the row's Run fields and ``error``) into a Run."""
    parameters = values["parameters"]
    values["parameters"] = dict(parameters) if parameters else {}
    values["kind"] = _RUN_KINDS[values["kind"]]
    values["state"] = _RUN_STATES[values["state"]]
    values["cancel_requested"] = bool(values.get("cancel_requested", False))
    error = values.get("error")
    values["error"] = _run_error(error) if error else None
    return Run(**values)


#: Stored text -> enum member without Enum.__call__ (a run row is read for every fire).
_RUN_KINDS = {kind.value: kind for kind in RunKind}
_RUN_STATES = {state.value: state for state in RunState}

_RUN_FIELDS_OF = itemgetter(*_RUN_READ_FIELDS)
_KIND_AT, _STATE_AT, _ERROR_AT, _CANCEL_AT = (
    _RUN_READ_FIELDS.index(name) for name in ("kind", "state", "error", "cancel_requested")
)


def run_from_insert(values: Mapping[str, Any]) -> Run:
    """The Run an insert dict of :func:`new_run_values` stands for, once inserted.

    Every field is in ``values`` (ours, not a result row): picked by position, built by
    position, no copies (the engine builds one for every run it fires; keyword arguments
    and the dict copies of :func:`row_to_run` took twice as long).
    """
    fields = list(_RUN_FIELDS_OF(values))
    fields[_KIND_AT] = _RUN_KINDS[fields[_KIND_AT]]
    fields[_STATE_AT] = _RUN_STATES[fields[_STATE_AT]]
    error = fields[_ERROR_AT]
    fields[_ERROR_AT] = _run_error(error) if error else None
    fields[_CANCEL_AT] = bool(fields[_CANCEL_AT])
    return Run(*fields)


def run_reader(keys: Sequence[str]) -> Callable[[Sequence[Any]], Run]:
    """:func:`row_to_run` for many rows of one result (``keys`` = its column names)."""
    return _reader(keys, _RUN_READ_FIELDS, _run_from)


def _schedule_ref(schedule: Schedule | Any | None) -> tuple[str | None, str | None]:
    """Return ``(schedule_id, schedule_name)`` of a Schedule, a row, or None."""
    if schedule is None:
        return None, None
    if isinstance(schedule, Schedule):
        return schedule.id, schedule.name
    m = _as_dict(schedule)
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
        "id": new_uuid(),
        "schedule_id": schedule_id,
        "schedule_name": schedule_name,
        "tenant": tenant,
        "job": job,
        "parameters": dict(parameters),
        "kind": kind.value if type(kind) is RunKind else RunKind(kind).value,
        "state": state.value if type(state) is RunState else RunState(state).value,
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
    if extra:
        unknown = extra.keys() - values.keys()
        if unknown:
            raise TypeError(f"unknown run column(s): {', '.join(sorted(unknown))}")
        values.update(extra)
    return values


def new_uuid() -> str:
    """A random (version 4) UUID as text, like ``str(uuid.uuid4())`` at 40 % of its cost."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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
