"""The duetime exception hierarchy.

DuetimeError
├── ConfigurationError (ValueError)          bad settings
├── ValidationError (ValueError)             bad user input; ``field`` names the culprit
│   ├── InvalidCronError                     a cron expression that cannot be parsed
│   ├── InvalidTriggerError                  a trigger spec that cannot be built / never fires
│   ├── UnknownTimezoneError                 an IANA zone that does not exist
│   ├── UnknownJobError                      a job type nobody registered
│   └── InvalidParametersError               parameters that do not fit the job signature
├── NotFoundError (LookupError)              a schedule / run / key that does not exist
├── ConflictError                            a unique name already taken
├── VersionMismatchError                     optimistic concurrency failure (expected_version)
├── SchemaOutdatedError                      database at an older revision: run ``duetime migrate``
├── PermissionDeniedError (PermissionError)  role or tenant does not allow it
├── LockNotAcquiredError                     a DistributedLock held by another live owner
└── JobError                                 raised inside a run (timeout, lost worker, bad result)
"""

from __future__ import annotations


class DuetimeError(Exception):
    """Base of every error duetime raises on purpose."""


class ConfigurationError(DuetimeError, ValueError):
    """Settings that cannot work (bad URL, bad executor name...)."""


class ValidationError(DuetimeError, ValueError):
    """User input that is not acceptable; ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def with_field(self, field: str) -> ValidationError:
        """Return a copy whose field is prefixed by ``field`` (``trigger.expression``)."""
        joined = f"{field}.{self.field}" if self.field else field
        err = type(self).__new__(type(self))
        ValidationError.__init__(err, self.message, field=joined)
        return err


class InvalidCronError(ValidationError):
    """A cron expression that cannot be parsed or names values out of range."""


class InvalidTriggerError(ValidationError):
    """A trigger spec that cannot be built, or that can never fire."""


class UnknownTimezoneError(ValidationError):
    """A time zone name that is not in the IANA database."""


class UnknownJobError(ValidationError):
    """A job type that is not registered (nor published by any engine)."""


class InvalidParametersError(ValidationError):
    """Parameters that do not fit the job's signature."""


class NotFoundError(DuetimeError, LookupError):
    """A schedule, run, key or webhook that does not exist (in this tenant)."""


class ConflictError(DuetimeError):
    """A unique constraint (schedule name per tenant) would be violated."""


class VersionMismatchError(DuetimeError):
    """``expected_version`` did not match; ``current_version`` is the stored one."""

    def __init__(self, message: str, *, current_version: int | None = None) -> None:
        super().__init__(message)
        self.current_version = current_version


class SchemaOutdatedError(DuetimeError):
    """The database schema is older than this duetime: run ``duetime migrate``."""


class PermissionDeniedError(DuetimeError, PermissionError):
    """The caller's role or tenant does not allow the operation."""


class LockNotAcquiredError(DuetimeError):
    """A :class:`~duetime.store.locks.DistributedLock` is held by another, unexpired owner."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class JobError(DuetimeError):
    """Raised on behalf of a run: timeout, lost worker, unserialisable result."""
