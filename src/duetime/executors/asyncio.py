"""AsyncioExecutor: handlers run on the executor's own event loop thread."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from typing import Any

from duetime.clock import Clock
from duetime.executors._common import (
    SUPERVISOR_TICK_SECONDS,
    ActiveRun,
    InProcessSlots,
    cancelled_result,
    deadline_for,
    interrupted_result,
    logger,
    timed_out_result,
)
from duetime.executors.base import ExecutionRequest, OutcomeCallback
from duetime.jobs.execute import (
    ExecutionResult,
    PreparedCall,
    error_result,
    prepare_call,
    run_prepared,
    run_prepared_async,
)
from duetime.jobs.registry import JobRegistry

_STOP_HOW = "the task was cancelled and keeps its slot until it finishes"
_LOOP_START_TIMEOUT_SECONDS = 10.0
_UNWIND_SECONDS = 1.0


class AsyncioExecutor(InProcessSlots):
    """Runs handlers on a private event loop in a background thread.

    ``async def`` handlers are awaited as tasks; sync handlers run in daemon threads. At the
    deadline (``clock.monotonic()``) the run is reported ``timed_out``, ``ctx.cancelled``
    becomes true and an async handler's task is cancelled; cancel does the same with
    ``cancelled``. This is **cooperative**: a handler that swallows the cancellation, or a sync
    handler, keeps its slot until it really finishes (its late result is discarded).
    """

    name = "asyncio"

    def __init__(
        self,
        *,
        concurrency: int = 5,
        registry: JobRegistry | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(concurrency=concurrency, registry=registry, clock=clock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self, on_outcome: OutcomeCallback) -> None:
        """Start the loop thread; outcomes go to ``on_outcome``."""
        if self._thread is not None:
            raise RuntimeError("executor already started")
        self._reporter.attach(on_outcome)
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name="duetime-asyncio-executor", daemon=True
        )
        self._thread.start()
        if not ready.wait(_LOOP_START_TIMEOUT_SECONDS):
            raise RuntimeError("the asyncio executor's loop did not start")

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
            _cancel_leftovers(loop)
        finally:
            loop.close()

    @property
    def free_slots(self) -> int:
        """Slots not held by a task."""
        with self._cond:
            if self._loop is None or self._stopping:
                return 0
            return self.concurrency - len(self._active)

    def submit(self, request: ExecutionRequest) -> None:
        """Schedule ``request`` on the loop; RuntimeError when no slot is free."""
        with self._cond:
            loop = self._check_can_accept(request)
            active = ActiveRun(request, self._clock.now(), deadline_for(request, self._clock))
            self._active[request.run_id] = active
        asyncio.run_coroutine_threadsafe(self._guarded(active), loop)

    def _check_can_accept(self, request: ExecutionRequest) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._stopping:
            raise RuntimeError("executor is not accepting work (not started or shutting down)")
        if request.run_id in self._active:
            raise RuntimeError(f"run {request.run_id} is already executing here")
        if len(self._active) >= self.concurrency:
            raise RuntimeError(f"no free slot (concurrency {self.concurrency})")
        return self._loop

    async def _guarded(self, active: ActiveRun) -> None:
        result: ExecutionResult | None
        try:
            result = await self._run(active)
        except asyncio.CancelledError:  # the loop is closing; shutdown reported the run
            result = interrupted_result()
        except Exception as exc:  # never lose an outcome, whatever happened
            logger.exception("asyncio executor failed on run %s", active.request.run_id)
            result = error_result(exc)
        finally:
            with self._cond:  # free the slot first: the engine refills it on the outcome
                self._active.pop(active.request.run_id, None)
                self._cond.notify_all()
        if result is not None:
            self._reporter.report(active, result)

    async def _run(self, active: ActiveRun) -> ExecutionResult | None:
        """Execute; the result to report, or None when the run was stopped (already reported)."""
        prepared = prepare_call(active.request, self._registry, cancelled=active.cancel_event)
        if isinstance(prepared, ExecutionResult):
            return prepared
        work = self._launch(prepared)
        active.handle = work
        await self._supervise(active, work)
        if work.cancelled():
            return None
        try:
            return work.result()
        except BaseException as exc:  # a cancellation the handler raised itself
            return error_result(exc, prepared.secret_values)

    def _launch(self, prepared: PreparedCall) -> asyncio.Future[ExecutionResult]:
        if prepared.job_type.is_async:
            return asyncio.ensure_future(run_prepared_async(prepared))
        return _in_daemon_thread(lambda: run_prepared(prepared))

    async def _supervise(self, active: ActiveRun, work: asyncio.Future[ExecutionResult]) -> None:
        """Wait for ``work``; at the deadline report timed_out and cancel it, then keep waiting."""
        while not work.done():
            if self._past_deadline(active):
                self._stop(active, timed_out_result(active.request.timeout_seconds, _STOP_HOW))
                continue
            await asyncio.wait({work}, timeout=self._wait_seconds(active))

    def _past_deadline(self, active: ActiveRun) -> bool:
        if active.reported or active.deadline is None:
            return False
        return active.deadline <= self._clock.monotonic()

    def _wait_seconds(self, active: ActiveRun) -> float | None:
        if active.reported or active.deadline is None:
            return None if active.reported else SUPERVISOR_TICK_SECONDS
        remaining = active.deadline - self._clock.monotonic()
        return max(0.0, min(remaining, SUPERVISOR_TICK_SECONDS))

    def _stop(self, active: ActiveRun, result: ExecutionResult) -> bool:
        """Report ``result``, set ctx.cancelled and cancel the task (call on the loop)."""
        if not self._reporter.claim(active):
            return False
        active.cancel_event.set()
        if isinstance(active.handle, asyncio.Task):
            active.handle.cancel()
        self._reporter.send(active, result)
        return True

    def cancel(self, run_id: str) -> bool:
        """Cancel a running request: reported ``cancelled`` now, slot freed when it finishes."""
        with self._cond:
            active = self._active.get(run_id)
            loop = self._loop
        if active is None or loop is None or active.reported:
            return False
        future = asyncio.run_coroutine_threadsafe(
            _call(functools.partial(self._stop, active, cancelled_result(_STOP_HOW))), loop
        )
        return bool(future.result(timeout=_LOOP_START_TIMEOUT_SECONDS))

    def shutdown(self, grace_seconds: float) -> None:
        """Stop accepting, wait up to ``grace_seconds``, then interrupt and stop the loop."""
        loop = self._loop
        if loop is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.wait_for(lambda: not self._active, timeout=max(0.0, grace_seconds))
            leftovers = list(self._active.values())
        for active in leftovers:
            done = asyncio.run_coroutine_threadsafe(
                _call(functools.partial(self._stop, active, interrupted_result())), loop
            )
            done.result(timeout=_LOOP_START_TIMEOUT_SECONDS)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=_LOOP_START_TIMEOUT_SECONDS)


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still pending when the loop stops, and let them unwind briefly."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=_UNWIND_SECONDS))


async def _call(func: Callable[[], Any]) -> Any:
    return func()


def _in_daemon_thread(func: Callable[[], ExecutionResult]) -> asyncio.Future[ExecutionResult]:
    """Run ``func`` in a daemon thread (never blocks interpreter exit); a future of its result."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[ExecutionResult] = loop.create_future()

    def settle(result: ExecutionResult) -> None:
        if not future.done():
            future.set_result(result)

    def body() -> None:
        result = func()
        with contextlib.suppress(RuntimeError):  # the loop was closed by shutdown meanwhile
            loop.call_soon_threadsafe(settle, result)

    threading.Thread(target=body, name="duetime-asyncio-sync", daemon=True).start()
    return future
