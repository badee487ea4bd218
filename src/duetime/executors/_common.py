"""Pieces every in-house executor shares: synthetic outcomes and once-only reporting."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from duetime.clock import Clock, SystemClock
from duetime.executors.base import ExecutionRequest, OutcomeCallback
from duetime.jobs.execute import ExecutionResult, failure
from duetime.jobs.registry import JobRegistry, default_registry
from duetime.models import RunState

logger = logging.getLogger("duetime.executors")

#: Error types of outcomes the executor decides (not raised by the handler).
TIMEOUT_ERROR = "Timeout"
CANCELLED_ERROR = "Cancelled"
INTERRUPTED_ERROR = "Interrupted"
WORKER_LOST_ERROR = "WorkerLost"
INTERRUPTED_MESSAGE = "interrupted by shutdown"
#: Longest wait of a supervisor between two looks at the clock (a FakeClock may have moved).
SUPERVISOR_TICK_SECONDS = 0.2


def timed_out_result(timeout_seconds: float | None, how: str) -> ExecutionResult:
    """The result of a run stopped at its deadline."""
    return failure(
        TIMEOUT_ERROR,
        f"run exceeded its timeout of {timeout_seconds:g} s; {how}",
        None,
        RunState.TIMED_OUT,
    )


def cancelled_result(how: str) -> ExecutionResult:
    """The result of a run stopped on request."""
    return failure(CANCELLED_ERROR, f"cancelled on request; {how}", None, RunState.CANCELLED)


def interrupted_result() -> ExecutionResult:
    """The result of a run stopped by executor shutdown (the engine recovers it)."""
    return failure(INTERRUPTED_ERROR, INTERRUPTED_MESSAGE)


def check_concurrency(concurrency: int) -> int:
    """Return ``concurrency`` when it is at least 1."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    return concurrency


@dataclass(eq=False)
class ActiveRun:
    """A submitted request while it holds a slot."""

    request: ExecutionRequest
    started_at: datetime | None  # None while it waits for ``request.not_before``
    deadline: float | None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    reported: bool = False
    handle: Any = None  # executor-specific (task, thread, worker)


def deadline_for(request: ExecutionRequest, clock: Clock) -> float | None:
    """The monotonic instant at which ``request`` times out, or None without a timeout."""
    if request.timeout_seconds is None or request.timeout_seconds <= 0:
        return None
    return clock.monotonic() + request.timeout_seconds


class OutcomeReporter:
    """Calls ``on_outcome`` at most once per run; a failing callback is logged, not raised."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._callback: OutcomeCallback | None = None
        self._lock = threading.Lock()

    def attach(self, callback: OutcomeCallback) -> None:
        """Set the engine's callback."""
        self._callback = callback

    def claim(self, active: ActiveRun) -> bool:
        """Mark ``active`` reported; False when it already was."""
        with self._lock:
            if active.reported:
                return False
            active.reported = True
            return True

    def report(self, active: ActiveRun, result: ExecutionResult) -> bool:
        """Send ``result`` for ``active`` unless something was sent already."""
        if not self.claim(active):
            return False
        self.send(active, result)
        return True

    def send(self, active: ActiveRun, result: ExecutionResult) -> None:
        """Send ``result`` (the caller has claimed ``active``)."""
        outcome = result.to_outcome(active.request, active.started_at, self._clock.now())
        callback = self._callback
        if callback is None:
            logger.error("outcome of run %s dropped: executor not started", outcome.run_id)
            return
        try:
            callback(outcome)
        except Exception:
            logger.exception("on_outcome failed for run %s", outcome.run_id)


class InProcessSlots:
    """Slot bookkeeping shared by the in-process (thread and asyncio) executors."""

    def __init__(
        self,
        *,
        concurrency: int = 5,
        registry: JobRegistry | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.concurrency = check_concurrency(concurrency)
        self._registry = registry or default_registry
        self._clock = clock or SystemClock()
        self._reporter = OutcomeReporter(self._clock)
        self._active: dict[str, ActiveRun] = {}
        self._cond = threading.Condition()
        self._stopping = False

    def running(self) -> list[str]:
        """Run ids executing and not yet reported."""
        with self._cond:
            return [rid for rid, a in self._active.items() if not a.reported]
