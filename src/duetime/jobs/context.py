"""The run context a handler receives as ``ctx``: ids, a structured logger, cancellation, locks."""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, cast

from duetime.errors import ConfigurationError
from duetime.jobs.secrets import redact, redact_text

#: Logger that job records go to (``duetime.job.<job name>``).
JOB_LOGGER_PREFIX = "duetime.job"
#: Step of cooperative waits when cancellation is only observable by polling.
CANCEL_POLL_SECONDS = 0.05
_STD_KWARGS = ("exc_info", "stack_info", "stacklevel", "extra")

LockFactory = Callable[[str, float, str], AbstractContextManager[Any]]


class CancelSignal(Protocol):
    """Something that says whether a run should stop (``threading.Event`` fits)."""

    def is_set(self) -> bool:
        """True once the run should stop."""
        ...

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for the signal; return whether it is set."""
        ...


class PolledCancel:
    """Adapts a ``() -> bool`` callable to :class:`CancelSignal` (waits poll it)."""

    def __init__(self, probe: Callable[[], bool]) -> None:
        self._probe = probe
        self._sleeper = threading.Event()

    def is_set(self) -> bool:
        """Return the probe's answer."""
        return bool(self._probe())

    def wait(self, timeout: float | None = None) -> bool:
        """Poll the probe every few milliseconds for up to ``timeout`` seconds."""
        remaining = float("inf") if timeout is None else max(0.0, timeout)
        while not self.is_set() and remaining > 0:
            step = min(CANCEL_POLL_SECONDS, remaining)
            self._sleeper.wait(step)
            remaining -= step
        return self.is_set()


def as_cancel_signal(cancelled: Callable[[], bool] | CancelSignal | None) -> CancelSignal:
    """Return a :class:`CancelSignal` for an event, a callable, or None (never cancelled)."""
    if cancelled is None:
        return threading.Event()
    if isinstance(cancelled, threading.Event | PolledCancel):
        return cancelled
    if hasattr(cancelled, "is_set") and hasattr(cancelled, "wait"):
        return cast(CancelSignal, cancelled)
    return PolledCancel(cancelled)


class RunLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """``ctx.log.info("sending", recipient=...)``: keyword arguments become structured fields.

    Each record carries ``event`` (the message), ``fields`` (the keywords) and the run's ids
    (``run_id``, ``schedule``, ``schedule_id``, ``tenant``, ``job``, ``attempt``). Secret values
    resolved for the run are masked in the message and the fields.
    """

    def __init__(
        self, logger: logging.Logger, ids: Mapping[str, Any], secret_values: Iterable[str] = ()
    ) -> None:
        super().__init__(logger, dict(ids))
        self._secrets = [v for v in secret_values if v]

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        """Log ``msg`` (formatted with ``args``) with the remaining keywords as fields."""
        if not self.isEnabledFor(level):
            return
        std = {k: kwargs.pop(k) for k in _STD_KWARGS if k in kwargs}
        text = str(msg) % args if args else str(msg)
        text = redact_text(text, self._secrets)
        fields = redact(kwargs, self._secrets)
        extra = {**(self.extra or {}), **std.pop("extra", {}), "event": text, "fields": fields}
        shown = " ".join([text, *(f"{k}={v!r}" for k, v in fields.items())])
        std.setdefault("stacklevel", 2)
        self.logger.log(level, shown, extra=extra, **std)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        """Unused: :meth:`log` does the work (kept for LoggerAdapter compatibility)."""
        return msg, kwargs


class RunContext:
    """What a handler receives as ``ctx``."""

    def __init__(
        self,
        *,
        run_id: str,
        job: str,
        scheduled_for: datetime,
        schedule: str | None = None,
        schedule_id: str | None = None,
        tenant: str = "default",
        attempt: int = 1,
        max_attempts: int = 1,
        database_url: str | None = None,
        cancel_signal: CancelSignal | None = None,
        secret_values: Iterable[str] = (),
        on_heartbeat: Callable[[], None] | None = None,
        lock_factory: LockFactory | None = None,
    ) -> None:
        self.run_id = run_id
        self.job = job
        self.scheduled_for = scheduled_for
        self.schedule = schedule
        self.schedule_id = schedule_id
        self.tenant = tenant
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.database_url = database_url
        self._cancel = cancel_signal or threading.Event()
        self._on_heartbeat = on_heartbeat
        self._lock_factory = lock_factory
        self._secret_values = secret_values
        self._log: RunLogger | None = None

    @property
    def log(self) -> RunLogger:
        """The run's logger (made on first use: most handlers never log)."""
        if self._log is None:
            self._log = RunLogger(
                logging.getLogger(f"{JOB_LOGGER_PREFIX}.{self.job}"),
                self._ids(),
                self._secret_values,
            )
        return self._log

    def _ids(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "schedule": self.schedule,
            "schedule_id": self.schedule_id,
            "tenant": self.tenant,
            "job": self.job,
            "attempt": self.attempt,
        }

    @property
    def cancelled(self) -> bool:
        """True once the run timed out or was cancelled (cooperative handlers should return)."""
        return self._cancel.is_set()

    def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds`` unless cancelled first; return True when cancelled."""
        return self._cancel.wait(max(0.0, seconds))

    def heartbeat(self) -> None:
        """Signal progress (the engine renews leases on its own; this feeds liveness hooks)."""
        if self._on_heartbeat is not None:
            self._on_heartbeat()

    def lock(self, key: str, ttl: float = 60) -> AbstractContextManager[Any]:
        """A distributed lock on ``key`` shared by every process using this database."""
        owner = f"run:{self.run_id}"
        if self._lock_factory is not None:
            return self._lock_factory(key, ttl, owner)
        if not self.database_url:
            raise ConfigurationError("ctx.lock() needs the run's database_url (none was given)")
        locks = importlib.import_module("duetime.store.locks")  # lazy: keeps workers light
        lock: AbstractContextManager[Any] = locks.DistributedLock(
            self.database_url, key, ttl_seconds=ttl, owner=owner
        )
        return lock

    def __repr__(self) -> str:
        return f"RunContext(run_id={self.run_id!r}, job={self.job!r}, attempt={self.attempt})"
