"""Helpers for testing your own job types without an engine or a database.

>>> from duetime.testing import run_job
>>> run_job("send_report", recipient="ops@example.com")      # doctest: +SKIP
{'sent': True}

``run_job`` validates the parameters like schedule creation does, resolves
``{"$secret": ...}`` references from the environment, calls the handler with a fake
:class:`~duetime.jobs.RunContext` (``ctx.lock()`` is an in-process lock) and returns what it
returned — exceptions propagate, so ``pytest.raises`` works. ``execute_job`` gives the result
the engine would record instead (state, JSON-checked result, error with traceback).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from uuid import uuid4

from duetime import errors
from duetime.clock import SystemClock
from duetime.executors.base import ExecutionRequest
from duetime.jobs.context import RunContext
from duetime.jobs.execute import ExecutionResult, execute_request
from duetime.jobs.registry import JobRegistry, default_registry
from duetime.jobs.schema import coerce_parameters
from duetime.jobs.secrets import resolve_secrets

__all__ = ["FakeLocks", "execute_job", "fake_locks", "make_context", "run_job", "run_job_in"]


class FakeLocks:
    """In-process stand-ins for ``DistributedLock``: one non-blocking lock per key."""

    def __init__(self) -> None:
        self._held: dict[str, str] = {}
        self._guard = threading.Lock()

    @contextmanager
    def __call__(self, key: str, ttl: float, owner: str) -> Iterator[None]:
        """Hold ``key`` for the block; raise like the real lock when it is already held."""
        with self._guard:
            if key in self._held:
                raise _lock_not_acquired(key, self._held[key])
            self._held[key] = owner
        try:
            yield
        finally:
            with self._guard:
                self._held.pop(key, None)

    def held(self) -> list[str]:
        """Keys currently held."""
        with self._guard:
            return sorted(self._held)


def _lock_not_acquired(key: str, owner: str) -> Exception:
    cls = getattr(errors, "LockNotAcquired", errors.JobError)
    return cls(f"lock {key!r} is held by {owner}")


#: Locks shared by every fake context of this process.
fake_locks = FakeLocks()


def make_context(
    job: str = "test",
    *,
    run_id: str | None = None,
    schedule: str | None = None,
    schedule_id: str | None = None,
    tenant: str = "default",
    attempt: int = 1,
    max_attempts: int = 1,
    scheduled_for: datetime | None = None,
    database_url: str | None = None,
    cancel_event: threading.Event | None = None,
) -> RunContext:
    """A run context for calling a handler directly (set ``cancel_event`` to cancel it)."""
    return RunContext(
        run_id=run_id or f"test-{uuid4().hex[:12]}",
        job=job,
        scheduled_for=scheduled_for or SystemClock().now(),
        schedule=schedule,
        schedule_id=schedule_id,
        tenant=tenant,
        attempt=attempt,
        max_attempts=max_attempts,
        database_url=database_url,
        cancel_signal=cancel_event or threading.Event(),
        lock_factory=None if database_url else fake_locks,
    )


def run_job(name: str, /, **params: Any) -> Any:
    """Validate ``params``, call job ``name``'s handler with a fake context, return its value."""
    return run_job_in(default_registry, name, params)


def run_job_in(
    registry: JobRegistry,
    name: str,
    params: dict[str, Any],
    *,
    ctx: RunContext | None = None,
) -> Any:
    """Like :func:`run_job`, with an explicit registry and optionally your own context."""
    job_type = registry.get(name)
    validated = job_type.validate(params)
    resolved, _ = resolve_secrets(validated)
    kwargs = coerce_parameters(job_type.signature, resolved)
    args = [ctx or make_context(name)] if job_type.takes_ctx else []
    value = job_type.func(*args, **kwargs)
    return asyncio.run(value) if asyncio.iscoroutine(value) else value


def execute_job(
    name: str,
    parameters: dict[str, Any] | None = None,
    *,
    registry: JobRegistry | None = None,
    database_url: str | None = None,
) -> ExecutionResult:
    """Execute job ``name`` as a worker would; the result the engine would record."""
    request = ExecutionRequest(
        run_id=f"test-{uuid4().hex[:12]}",
        job=name,
        parameters=dict(parameters or {}),
        attempt=1,
        lease_token="test",
        timeout_seconds=None,
        scheduled_for=SystemClock().now(),
        database_url=database_url,
    )
    return execute_request(
        request, registry or default_registry, lock_factory=None if database_url else fake_locks
    )
