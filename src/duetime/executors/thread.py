"""ThreadExecutor: handlers run in threads of this process (cooperative timeouts)."""

from __future__ import annotations

import queue
import threading
from itertools import count

from duetime.clock import Clock
from duetime.executors._common import (
    SUPERVISOR_TICK_SECONDS,
    ActiveRun,
    InProcessSlots,
    cancelled_result,
    deadline_for,
    interrupted_result,
    timed_out_result,
)
from duetime.executors.base import ExecutionRequest, OutcomeCallback
from duetime.jobs.execute import error_result, execute_request
from duetime.jobs.registry import JobRegistry

_CO_OP = "the handler was asked to stop (ctx.cancelled) and keeps its slot until it returns"


class ThreadExecutor(InProcessSlots):
    """Runs requests on up to ``concurrency`` long-lived daemon worker threads.

    Workers start on demand (one per slot at most) and are reused: a run costs a queue
    hand-over, not a thread start.

    Timeouts and cancellation are **cooperative**: a thread cannot be killed. At the deadline
    (measured with ``clock.monotonic()``) the run is reported ``timed_out`` at once and
    ``ctx.cancelled`` becomes true; a cancel reports ``cancelled`` the same way. The handler's
    slot stays taken until the handler actually returns, and whatever it returns then is
    discarded. Handlers that may run long should check ``ctx.cancelled`` or wait with
    ``ctx.sleep()``. Use the process executor for jobs that must be stopped by force.

    A request with ``not_before`` holds its slot from the hand-over and its worker waits for
    that instant itself: only the thread that runs the handler wakes at the instant (a timer
    thread that then wakes a worker adds a second wake-up, and its delay, to the start).
    """

    name = "thread"
    starts_on_time = True

    def __init__(
        self,
        *,
        concurrency: int = 5,
        registry: JobRegistry | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(concurrency=concurrency, registry=registry, clock=clock)
        self._started = False
        self._watcher: threading.Thread | None = None
        self._ids = count(1)
        self._queue: queue.SimpleQueue[ActiveRun | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        #: The monotonic instant the deadline watcher looks next (None: it is not waiting).
        self._watch_until: float | None = None

    def start(self, on_outcome: OutcomeCallback) -> None:
        """Start the deadline watcher; outcomes go to ``on_outcome``."""
        with self._cond:
            if self._started:
                raise RuntimeError("executor already started")
            self._reporter.attach(on_outcome)
            self._started = True
        self._watcher = threading.Thread(
            target=self._watch, name="duetime-thread-deadlines", daemon=True
        )
        self._watcher.start()

    @property
    def free_slots(self) -> int:
        """Slots not held by a handler (timed-out handlers still hold theirs)."""
        with self._cond:
            if not self._started or self._stopping:
                return 0
            return self.concurrency - len(self._active)

    def submit(self, request: ExecutionRequest) -> None:
        """Hand ``request`` to a worker thread; RuntimeError when no slot is free."""
        with self._cond:
            self._check_can_accept(request)
            active = self._active_run(request)
            self._active[request.run_id] = active
            self._wake_watcher_for(active.deadline)
            try:
                self._ensure_worker()
            except BaseException:  # e.g. "can't start new thread": give the slot back
                self._active.pop(request.run_id, None)
                self._cond.notify_all()
                raise
        self._queue.put(active)

    def _active_run(self, request: ExecutionRequest) -> ActiveRun:
        """The slot's record; a run handed over before its instant has no start or deadline yet."""
        if request.not_before is not None and request.not_before > self._clock.now():
            return ActiveRun(request, None, None)
        return ActiveRun(request, self._clock.now(), deadline_for(request, self._clock))

    def _ensure_worker(self) -> None:
        """Start one more worker while fewer workers exist than held slots (lock held)."""
        if len(self._workers) >= len(self._active):
            return
        worker = threading.Thread(
            target=self._work, name=f"duetime-thread-{next(self._ids)}", daemon=True
        )
        worker.start()
        self._workers.append(worker)

    def _work(self) -> None:
        """Worker thread: execute queued runs until a ``None`` tells it to stop."""
        while (active := self._queue.get()) is not None:
            active.handle = threading.current_thread()
            self._run(active)

    def _check_can_accept(self, request: ExecutionRequest) -> None:
        if not self._started or self._stopping:
            raise RuntimeError("executor is not accepting work (not started or shutting down)")
        if request.run_id in self._active:
            raise RuntimeError(f"run {request.run_id} is already executing here")
        if len(self._active) >= self.concurrency:
            raise RuntimeError(f"no free slot (concurrency {self.concurrency})")

    def _run(self, active: ActiveRun) -> None:
        try:
            if self._wait_for_instant(active):
                result = execute_request(
                    active.request, self._registry, cancelled=active.cancel_event
                )
            else:  # cancelled or shut down while waiting: that outcome is reported already
                result = interrupted_result()
        except BaseException as exc:  # never lose an outcome
            result = error_result(exc)
        finally:
            with self._cond:  # free the slot first: the engine refills it on the outcome
                self._active.pop(active.request.run_id, None)
                if self._stopping:  # only shutdown waits for slots to free
                    self._cond.notify_all()
        self._reporter.report(active, result)

    def _wait_for_instant(self, active: ActiveRun) -> bool:
        """Hold a run handed over early until its ``not_before``; False if stopped meanwhile.

        Waits on the run's cancel event in steps of at most SUPERVISOR_TICK_SECONDS (the
        clock may be a FakeClock). The start and the timeout's deadline count from the
        instant, not from the hand-over.
        """
        if active.started_at is not None:
            return True
        instant = active.request.not_before
        assert instant is not None
        while (left := (instant - self._clock.now()).total_seconds()) > 0:
            if active.cancel_event.wait(min(left, SUPERVISOR_TICK_SECONDS)):
                return False
        with self._cond:
            active.started_at = self._clock.now()
            active.deadline = deadline_for(active.request, self._clock)
            self._wake_watcher_for(active.deadline)
        return not active.cancel_event.is_set()

    def cancel(self, run_id: str) -> bool:
        """Ask the run to stop and report it ``cancelled`` now (its slot frees on return)."""
        with self._cond:
            active = self._active.get(run_id)
        if active is None or not self._reporter.claim(active):
            return False
        active.cancel_event.set()
        self._reporter.send(active, cancelled_result(_CO_OP))
        return True

    # ------------------------------------------------------------------ deadlines
    def _wake_watcher_for(self, deadline: float | None) -> None:
        """Wake the deadline watcher if ``deadline`` comes before its next look (lock held).

        Only then: most runs carry the default timeout, far beyond the watcher's next look
        (at most SUPERVISOR_TICK_SECONDS away), and waking it for every run costs a thread
        switch and a trip through the GIL for nothing.
        """
        if deadline is None:
            return
        until = self._watch_until
        if until is None or deadline < until:
            self._cond.notify_all()

    def _watch(self) -> None:
        while True:
            with self._cond:
                if self._stopping and not self._active:
                    return
                expired = self._expired()
                if not expired:
                    wait = self._wait_seconds()
                    self._watch_until = self._clock.monotonic() + wait
                    self._cond.wait(wait)
                    self._watch_until = None
                    continue
            for active in expired:
                self._time_out(active)

    def _expired(self) -> list[ActiveRun]:
        now = self._clock.monotonic()
        return [
            a
            for a in self._active.values()
            if not a.reported and a.deadline is not None and a.deadline <= now
        ]

    def _wait_seconds(self) -> float:
        deadlines = [a.deadline for a in self._active.values() if a.deadline and not a.reported]
        if not deadlines:
            return SUPERVISOR_TICK_SECONDS
        remaining = min(deadlines) - self._clock.monotonic()
        return max(0.0, min(remaining, SUPERVISOR_TICK_SECONDS))

    def _time_out(self, active: ActiveRun) -> None:
        if self._reporter.claim(active):
            active.cancel_event.set()
            result = timed_out_result(active.request.timeout_seconds, _CO_OP)
            self._reporter.send(active, result)

    # ------------------------------------------------------------------ shutdown
    def shutdown(self, grace_seconds: float) -> None:
        """Stop accepting, wait up to ``grace_seconds``, then report the rest ``Interrupted``."""
        with self._cond:
            if not self._started:
                return
            self._stopping = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._active, timeout=max(0.0, grace_seconds))
            leftovers = list(self._active.values())
        for active in leftovers:
            if self._reporter.claim(active):
                active.cancel_event.set()
                self._reporter.send(active, interrupted_result())
        with self._cond:
            self._active.clear()  # abandoned threads are daemons; their results are ignored
            self._cond.notify_all()
            workers, self._workers = self._workers, []
        for _ in workers:  # each worker takes one and exits (a busy one when it returns)
            self._queue.put(None)
        if self._watcher is not None:
            self._watcher.join(timeout=SUPERVISOR_TICK_SECONDS * 5)
