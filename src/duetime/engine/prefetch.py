"""Prefetch: claim runs before a slot frees or their instant comes (docs/decisions/0008).

An engine with 10 slots running jobs that take a millisecond would otherwise claim and
finish 10 runs per transaction, and would start a run only after the database round trip
that claims it. :class:`PrefetchExecutor` wraps any executor with a small local queue:

- **Ahead of a free slot**: the engine may claim as many runs as its slots are expected to
  *start* within ``PREFETCH_SECONDS``, judged from how long this engine's recent runs really
  took; the queue hands each one to the executor the moment a slot frees, from the
  executor's own thread. Long jobs get no such room, so replicas still share them fairly.
- **Ahead of its instant**: a run claimed within the lookahead waits here until its
  ``available_at`` and is handed over by a timer thread at that instant (not after a
  database round trip), so starts are punctual. An executor that ``starts_on_time`` gets
  it ``HANDOVER_LEAD_SECONDS`` early with the instant as ``not_before``: its worker waits
  for the instant itself, so one thread wakes at the instant, not a timer and then a worker
  (each wake-up of a thread has its own delay on a busy or virtual machine).

Queued runs are ``running`` in the database under this engine's lease (leases are renewed;
a crash recovers them like any other run); their ``started_at`` / ``lateness_ms`` are
rewritten with the real start when they finish. A queued run whose cancellation is
requested ends ``cancelled`` without starting; on shutdown the engine takes the queue back
(:meth:`PrefetchExecutor.take_queued`) and returns those runs to ``pending``.

Lock order: the wrapper never calls the inner executor while holding its own lock, so an
inner executor may report outcomes while holding its lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from duetime.clock import Clock
from duetime.engine.runqueue import ReadyEntry as _ReadyEntry
from duetime.engine.runqueue import RunQueue
from duetime.executors._common import CANCELLED_ERROR
from duetime.executors.base import ExecutionRequest, Executor, Outcome, OutcomeCallback
from duetime.models import RunError, RunState

#: What :meth:`PrefetchExecutor.submit_many` takes: (request, priority, available_at).
Entry = tuple[ExecutionRequest, int, datetime | None]

#: The queue holds at most what the slots are expected to start within this many seconds.
PREFETCH_SECONDS = 0.25
#: Never more than this many runs queued beyond the slots.
MAX_PREFETCH = 1000
#: Weight of the newest run in the moving average of run durations.
DURATION_WEIGHT = 0.2
#: Before any run has finished, the queue may hold this many runs per slot (optimistic:
#: runs that then wait too long are given back, see STALE_SECONDS).
UNKNOWN_DEPTH_PER_SLOT = 10
#: A run ready this long without a free slot is given back to ``pending`` for other engines.
STALE_SECONDS = 1.0
#: Longest sleep of the timer thread between two looks at the clock (a FakeClock may move).
TIMER_TICK_SECONDS = 0.2
#: How long before its instant a run goes to an executor that ``starts_on_time``: more than
#: the timer thread's own wake-up delay (a few ms at worst), little enough that the slot it
#: holds while its worker waits is not missed.
HANDOVER_LEAD_SECONDS = 0.01


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
        self._cond = threading.Condition(threading.Lock())
        self._queue = RunQueue()
        self._dispatched: dict[str, float] = {}
        self._average: float | None = None
        self._callback: OutcomeCallback | None = None
        self._stopping = False
        self._timer = timer
        self._pumping = threading.local()  # a synchronous executor reports inside submit()
        self._timer_thread: threading.Thread | None = None
        self._slow = False  # runs went stale before any finished: assume long ones
        on_time = getattr(inner, "starts_on_time", False)
        self._lead = timedelta(seconds=HANDOVER_LEAD_SECONDS if on_time else 0.0)

    # ------------------------------------------------------------ Executor protocol
    def start(self, on_outcome: OutcomeCallback) -> None:
        """Start the inner executor and the timer thread."""
        self._callback = on_outcome
        self.inner.start(self._on_outcome)
        self._timer_thread = threading.Thread(
            target=self._release_on_time, name="duetime-prefetch-timer", daemon=True
        )
        self._timer_thread.start()

    @property
    def free_slots(self) -> int:
        """Free slots of the inner executor plus the room left in the queue."""
        free = self.inner.free_slots
        with self._cond:
            if self._stopping:
                return 0
            return max(0, free + self._depth() - len(self._queue))

    def known_short(self) -> bool:
        """True once recent runs show the slots start queued runs within moments."""
        with self._cond:
            return self._depth() > 0

    def known_long(self) -> bool:
        """True once recent runs show they take longer than the prefetch window."""
        with self._cond:
            return self._average is not None and self._depth() == 0

    def wants_more(self) -> bool:
        """True when a quarter of all room (slots and queue) is free: worth a claim now."""
        free = self.inner.free_slots
        with self._cond:
            depth = self._depth()
            room = free + depth - len(self._queue)
            return not self._stopping and room >= max(1, (self._concurrency + depth) // 4)

    def submit(
        self, request: ExecutionRequest, priority: int = 0, available_at: datetime | None = None
    ) -> None:
        """Queue ``request`` (higher ``priority`` first; not before ``available_at``)."""
        self.submit_many([(request, priority, available_at)])

    def submit_many(self, entries: Sequence[Entry]) -> None:
        """Queue several ``(request, priority, available_at)`` under one lock, then hand over.

        One lock round per batch, not per run: the executor's threads take the same lock,
        and every contended acquire costs the engine thread a trip through the GIL.
        """
        with self._cond:
            if self._stopping:
                raise RuntimeError("executor is not accepting work (shutting down)")
            now = self._clock.now()
            earliest = self._queue.next_instant()
            wake_timer = False
            for request, priority, available_at in entries:
                instant = available_at if available_at is not None and available_at > now else None
                self._queue.add(request, priority, instant, now)
                if instant is not None and (earliest is None or instant < earliest):
                    earliest, wake_timer = instant, True
            if wake_timer:
                self._cond.notify_all()  # the timer sleeps until a later instant: wake it
        self.pump()

    def cancel(self, run_id: str) -> bool:
        """Cancel a queued run (it never starts) or ask the inner executor to stop it."""
        with self._cond:
            request = self._queue.remove(run_id)
        if request is None:
            return self.inner.cancel(run_id)
        self._report_cancelled(request)
        return True

    def running(self) -> list[str]:
        """Runs executing or queued here."""
        with self._cond:
            queued = self._queue.ids()
        return self.inner.running() + queued

    def shutdown(self, grace_seconds: float) -> None:
        """Stop queueing, then shut the inner executor down (queued runs: see take_queued)."""
        self._stop()
        self.inner.shutdown(grace_seconds)

    # ------------------------------------------------------------ engine helpers
    def take_queued(self) -> list[ExecutionRequest]:
        """Stop dispatching and return the runs still queued (they never started)."""
        with self._cond:
            taken = self._queue.take_all()
        self._stop()
        return taken

    def take_stale(self) -> list[ExecutionRequest]:
        """Take back runs ready for ``STALE_SECONDS`` without a slot (to give them back)."""
        now = self._clock.now()
        with self._cond:
            stale = self._queue.take_stale(now - timedelta(seconds=STALE_SECONDS))
            if stale and self._average is None:
                self._slow = True
        return stale

    def pump(self) -> None:
        """Hand ready queued runs to the inner executor while it has free slots."""
        if getattr(self._pumping, "active", False):
            return  # re-entered from an outcome reported inside submit(): the outer loop goes on
        self._pumping.active = True
        try:
            self._pump()
        finally:
            self._pumping.active = False

    # ------------------------------------------------------------ internals
    def _pump(self) -> None:
        while (free := self.inner.free_slots) > 0:
            with self._cond:
                if self._stopping:
                    return
                now = self._clock.now()
                self._queue.release_due(now, self._lead)
                taken: list[_ReadyEntry] = []
                while len(taken) < free and (entry := self._queue.pop_ready()) is not None:
                    taken.append(entry)
                    self._dispatched[entry[2].run_id] = self._timer() + _wait(entry[2], now)
            if not taken:
                return
            for index, entry in enumerate(taken):
                try:
                    self.inner.submit(entry[2])
                except RuntimeError:  # a slot taken meanwhile (or shutting down): keep them
                    self._put_back(taken[index:])
                    return

    def _put_back(self, entries: list[_ReadyEntry]) -> None:
        with self._cond:
            for entry in entries:
                self._dispatched.pop(entry[2].run_id, None)
                if not self._stopping:
                    self._queue.put_back(entry)

    def _stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def _release_on_time(self) -> None:
        """Timer thread: hand over each waiting run at its ``available_at``."""
        while True:
            with self._cond:
                if self._stopping:
                    return
                self._queue.release_due(self._clock.now(), self._lead)
                ready = self._queue.has_ready()
            if ready:
                self.pump()  # without a free slot, the next outcome pumps them
            with self._cond:
                if self._stopping:
                    return
                instant = self._queue.next_instant()
                if instant is None:
                    self._cond.wait()  # nothing waits for its instant: a submit or stop wakes us
                    continue
                until = (instant - self._lead - self._clock.now()).total_seconds()
                wait = max(0.0, min(TIMER_TICK_SECONDS, until))
                if wait > 0:
                    self._cond.wait(wait)

    def _depth(self) -> int:
        """How many runs may wait here: what the slots start within PREFETCH_SECONDS."""
        if self._average is None:
            return 0 if self._slow else self._concurrency * UNKNOWN_DEPTH_PER_SLOT
        expected = self._concurrency * PREFETCH_SECONDS / max(self._average, 1e-6)
        return min(MAX_PREFETCH, int(expected))

    def _on_outcome(self, outcome: Outcome) -> None:
        with self._cond:
            dispatched = self._dispatched.pop(outcome.run_id, None)
            if dispatched is not None:
                took = max(0.0, self._timer() - dispatched)  # 0 if cancelled before its instant
                last = self._average
                self._average = took if last is None else last + DURATION_WEIGHT * (took - last)
        if self._callback is not None:
            self._callback(outcome)
        self.pump()

    def _report_cancelled(self, request: ExecutionRequest) -> None:
        outcome = Outcome(
            run_id=request.run_id,
            lease_token=request.lease_token,
            state=RunState.CANCELLED,
            started_at=None,
            finished_at=self._clock.now(),
            error=RunError(type=CANCELLED_ERROR, message="cancelled on request before it started"),
        )
        if self._callback is not None:
            self._callback(outcome)


def _wait(request: ExecutionRequest, now: datetime) -> float:
    """Seconds a run handed over now waits for its ``not_before`` (not part of its duration)."""
    if request.not_before is None:
        return 0.0
    return max(0.0, (request.not_before - now).total_seconds())
