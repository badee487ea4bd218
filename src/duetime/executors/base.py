"""The executor seam: the engine submits ExecutionRequests and receives Outcomes.

The engine keeps every database connection; executors never touch the store. An executor
calls ``on_outcome`` exactly once per submitted request (from any thread: the engine makes it
thread-safe), whatever the job does — exceptions, timeouts, ``os._exit``, segfaults, results
that are not JSON — are turned into outcomes, never into engine crashes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from operator import attrgetter
from typing import Any, Protocol, runtime_checkable

from duetime.models import RunError, RunState

#: Largest JSON result (encoded, bytes) a run may store.
MAX_RESULT_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ExecutionRequest:
    """Everything a worker needs to execute one run (no database access needed)."""

    run_id: str
    job: str
    parameters: dict[str, Any]
    attempt: int
    lease_token: str
    timeout_seconds: float | None
    scheduled_for: datetime
    schedule_id: str | None = None
    schedule_name: str | None = None
    tenant: str = "default"
    max_attempts: int = 1
    database_url: str | None = None  # for ctx.lock() in the worker
    #: Start the handler at this instant, not before: the engine hands a run over a moment
    #: ahead to an executor whose ``starts_on_time`` is true (docs/decisions/0008).
    not_before: datetime | None = None


#: A request as the tuple of its fields, in order (``ExecutionRequest(*fields)`` again):
#: how it crosses a pipe to a worker process (a frozen dataclass pickles field by field,
#: through ``dataclasses.fields()``, on every send).
request_fields: Callable[[ExecutionRequest], tuple[Any, ...]] = attrgetter(
    *(f.name for f in fields(ExecutionRequest))
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended. ``state`` is terminal: succeeded, failed, timed_out or cancelled."""

    run_id: str
    lease_token: str
    state: RunState
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: Any = None
    error: RunError | None = None
    extra: dict[str, Any] = field(default_factory=dict)


OutcomeCallback = Callable[[Outcome], None]


@runtime_checkable
class Executor(Protocol):
    """Runs requests; reports each one's outcome once through the callback.

    Optional: an executor whose ``submit`` honours ``ExecutionRequest.not_before`` (it waits
    for the instant itself) says so with a true ``starts_on_time`` attribute; the engine then
    hands runs over a moment before their instant. Others get each run at its instant.
    """

    name: str

    def start(self, on_outcome: OutcomeCallback) -> None:
        """Start workers; ``on_outcome`` receives every outcome (may be called from any thread)."""
        ...

    @property
    def free_slots(self) -> int:
        """How many more requests can start now."""
        ...

    def submit(self, request: ExecutionRequest) -> None:
        """Start executing ``request``; raises RuntimeError when no slot is free."""
        ...

    def cancel(self, run_id: str) -> bool:
        """Stop a running request (outcome ``cancelled``); False if it is not running here."""
        ...

    def running(self) -> list[str]:
        """The run ids currently executing."""
        ...

    def shutdown(self, grace_seconds: float) -> None:
        """Stop accepting work, wait up to ``grace_seconds``, then stop what still runs.

        Runs stopped this way are reported as ``failed`` with error type ``Interrupted``
        ("interrupted by shutdown") so the engine recovers them without using an attempt.
        """
        ...
