"""Prefetch: claim short runs in batches larger than the free slots (docs/decisions/0008).

An engine with 10 slots running jobs that take a millisecond would otherwise claim and
finish 10 runs per transaction. :class:`PrefetchExecutor` wraps any executor with a small
local queue: the engine may claim as many runs as the slots are expected to *start* within
``PREFETCH_SECONDS`` (judged from how long this engine's recent runs really took), and the
queue hands each one to the executor the moment a slot frees — from the executor's own
thread, without a round trip through the engine loop.

Long jobs get no prefetch (their expected starts within the window round down to zero), so
several replicas still share long work fairly. Queued runs are ``running`` in the database
under this engine's lease (leases are renewed; a crash recovers them like any other run);
their ``started_at`` / ``lateness_ms`` are rewritten with the real start when they finish.
A queued run whose cancellation is requested ends ``cancelled`` without starting; on
shutdown the engine takes the queue back (:meth:`PrefetchExecutor.take_queued`) and returns
those runs to ``pending``.

Lock order: this wrapper never calls the inner executor while holding its own lock, so an
inner executor may report outcomes while holding its lock.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from itertools import count

from duetime.clock import Clock
from duetime.executors._common import CANCELLED_ERROR
from duetime.executors.base import ExecutionRequest, Executor, Outcome, OutcomeCallback
from duetime.models import RunError, RunState

#: The queue holds at most what the slots are expected to start within this many seconds.
PREFETCH_SECONDS = 0.25
#: Never more than this many runs queued beyond the slots.
MAX_PREFETCH = 1000
#: Weight of the newest run in the moving average of run durations.
DURATION_WEIGHT = 0.2


class PrefetchExecutor:
    """Wraps an executor with a bounded local queue of claimed runs (module docstring)."""

    def __init__(
        self,
        inner: Executor,
        clock: Clock,
        *,
        concurrency: int,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self._clock = clock
        self._concurrency = concurrency
        self._lock = threading.Lock()
        self._queue: list[tuple[int, int, ExecutionRequest]] = []
        self._queued: set[str] = set()
        self._order = count()
        self._dispatched: dict[str, float] = {}
        self._average: float | None = None
        self._callback: OutcomeCallback | None = None
        self._stopping = False
        self._timer = timer
        self._pumping = threading.local()  # a synchronous executor reports inside submit()

    # ------------------------------------------------------------ Executor protocol
    def start(self, on_outcome: OutcomeCallback) -> None:
        """Start the inner executor; outcomes reach ``on_outcome`` through this wrapper."""
        self._callback = on_outcome
        self.inner.start(self._on_outcome)

    @property
    def free_slots(self) -> int:
        """Free slots of the inner executor plus the room left in the queue."""
        free = self.inner.free_slots
        with self._lock:
            if self._stopping:
                return 0
            return max(0, free + self._depth() - len(self._queue))

    def submit(self, request: ExecutionRequest, priority: int = 0) -> None:
        """Queue ``request`` (higher ``priority`` first) and start what the slots can take."""
        with self._lock:
            if self._stopping:
                raise RuntimeError("executor is not accepting work (shutting down)")
            heapq.heappush(self._queue, (-priority, next(self._order), request))
            self._queued.add(request.run_id)
        self.pump()

    def cancel(self, run_id: str) -> bool:
        """Cancel a queued run (it never starts) or ask the inner executor to stop it."""
        with self._lock:
            request = self._remove(run_id)
        if request is None:
            return self.inner.cancel(run_id)
        self._report_cancelled(request)
        return True

    def running(self) -> list[str]:
        """Runs executing or queued here."""
        with self._lock:
            queued = list(self._queued)
        return self.inner.running() + queued

    def shutdown(self, grace_seconds: float) -> None:
        """Stop queueing, then shut the inner executor down (queued runs: see take_queued)."""
        with self._lock:
            self._stopping = True
        self.inner.shutdown(grace_seconds)

    # ------------------------------------------------------------ engine helpers
    def take_queued(self) -> list[ExecutionRequest]:
        """Stop dispatching and return the runs still queued (they never started)."""
        with self._lock:
            self._stopping = True
            taken = [entry[2] for entry in sorted(self._queue)]
            self._queue.clear()
            self._queued.clear()
        return taken

    def pump(self) -> None:
        """Hand queued runs to the inner executor while it has free slots."""
        if getattr(self._pumping, "active", False):
            return  # re-entered from an outcome reported inside submit(): the outer loop goes on
        self._pumping.active = True
        try:
            self._pump()
        finally:
            self._pumping.active = False

    def _pump(self) -> None:
        while True:
            if self.inner.free_slots <= 0:
                return
            with self._lock:
                if not self._queue or self._stopping:
                    return
                entry = heapq.heappop(self._queue)
                request = entry[2]
                self._queued.discard(request.run_id)
                self._dispatched[request.run_id] = self._timer()
            try:
                self.inner.submit(request)
            except RuntimeError:  # a slot taken meanwhile (or shutting down): keep it queued
                with self._lock:
                    self._dispatched.pop(request.run_id, None)
                    if not self._stopping:
                        heapq.heappush(self._queue, entry)
                        self._queued.add(request.run_id)
                return

    # ------------------------------------------------------------ internals
    def _depth(self) -> int:
        """How many runs may wait here: what the slots start within PREFETCH_SECONDS."""
        if self._average is None:
            return 0
        expected = self._concurrency * PREFETCH_SECONDS / max(self._average, 1e-6)
        return min(MAX_PREFETCH, int(expected))

    def _on_outcome(self, outcome: Outcome) -> None:
        with self._lock:
            dispatched = self._dispatched.pop(outcome.run_id, None)
            if dispatched is not None:
                took = self._timer() - dispatched
                last = self._average
                self._average = took if last is None else last + DURATION_WEIGHT * (took - last)
        if self._callback is not None:
            self._callback(outcome)
        self.pump()

    def _remove(self, run_id: str) -> ExecutionRequest | None:
        """Take ``run_id`` out of the queue (lock held); None when it is not queued."""
        if run_id not in self._queued:
            return None
        for index, entry in enumerate(self._queue):
            if entry[2].run_id == run_id:
                self._queue.pop(index)
                heapq.heapify(self._queue)
                self._queued.discard(run_id)
                return entry[2]
        return None

    def _report_cancelled(self, request: ExecutionRequest) -> None:
        now = self._clock.now()
        outcome = Outcome(
            run_id=request.run_id,
            lease_token=request.lease_token,
            state=RunState.CANCELLED,
            started_at=None,
            finished_at=now,
            error=RunError(type=CANCELLED_ERROR, message="cancelled on request before it started"),
        )
        if self._callback is not None:
            self._callback(outcome)
