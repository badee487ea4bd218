"""duetime — a durable job scheduler: cron with exact DST semantics, exactly-once firing."""

from __future__ import annotations

from duetime.errors import (
    ConflictError,
    DuetimeError,
    InvalidCronError,
    InvalidTriggerError,
    NotFoundError,
    UnknownTimezoneError,
    ValidationError,
    VersionMismatchError,
)

__version__ = "0.1.0"

__all__ = [
    "ConflictError",
    "DuetimeError",
    "InvalidCronError",
    "InvalidTriggerError",
    "NotFoundError",
    "UnknownTimezoneError",
    "ValidationError",
    "VersionMismatchError",
    "__version__",
]
