"""duetime — a durable job scheduler: cron with exact DST semantics, exactly-once firing."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from duetime.errors import (
    ConflictError,
    DuetimeError,
    InvalidCronError,
    InvalidParametersError,
    InvalidTriggerError,
    LockNotAcquiredError,
    NotFoundError,
    PermissionDeniedError,
    SchemaOutdatedError,
    UnknownJobError,
    UnknownTimezoneError,
    ValidationError,
    VersionMismatchError,
)
from duetime.models import Page, Run, RunKind, RunState, Schedule, ScheduleState

if TYPE_CHECKING:
    from duetime.jobs import RunContext, job
    from duetime.scheduler import AsyncScheduler, Scheduler

__version__ = "0.1.0"

#: Public names imported on first use (they pull in SQLAlchemy and the job machinery).
_LAZY = {
    "Scheduler": "duetime.scheduler",
    "AsyncScheduler": "duetime.scheduler",
    "job": "duetime.jobs",
    "RunContext": "duetime.jobs",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'duetime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AsyncScheduler",
    "ConflictError",
    "DuetimeError",
    "InvalidCronError",
    "InvalidParametersError",
    "InvalidTriggerError",
    "LockNotAcquiredError",
    "NotFoundError",
    "Page",
    "PermissionDeniedError",
    "Run",
    "RunContext",
    "RunKind",
    "RunState",
    "Schedule",
    "ScheduleState",
    "Scheduler",
    "SchemaOutdatedError",
    "UnknownJobError",
    "UnknownTimezoneError",
    "ValidationError",
    "VersionMismatchError",
    "__version__",
    "job",
]
