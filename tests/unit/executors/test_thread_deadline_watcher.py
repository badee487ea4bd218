"""ThreadExecutor's deadline watcher is woken only by a deadline before its next look."""

from __future__ import annotations

import threading

import pytest
from executor_helpers import Outcomes, request, wait_until

from duetime.clock import SystemClock
from duetime.executors import thread as thread_module
from duetime.executors.thread import ThreadExecutor
from duetime.jobs import job
from duetime.jobs.registry import JobRegistry
from duetime.models import RunState


def test_an_earlier_deadline_wakes_the_watcher_a_later_one_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # without a wake-up the watcher would sleep a minute: only a notify can time "short" out
    monkeypatch.setattr(thread_module, "SUPERVISOR_TICK_SECONDS", 60.0)
    registry = JobRegistry()
    release = threading.Event()

    @job("held", registry=registry)
    def held(ctx: object) -> None:
        release.wait(30)

    executor = ThreadExecutor(concurrency=3, registry=registry, clock=SystemClock())
    outcomes = Outcomes()
    executor.start(outcomes)
    notified = []
    real_notify = executor._cond.notify_all

    def counting_notify() -> None:
        notified.append(1)
        real_notify()

    monkeypatch.setattr(executor._cond, "notify_all", counting_notify)
    try:
        executor.submit(request("long", "held", timeout=3600.0))
        wait_until(lambda: executor._watch_until is not None)  # it looks again in ~a minute
        before = len(notified)
        executor.submit(request("later", "held", timeout=7200.0))
        assert len(notified) == before  # a deadline after its next look: no wake-up
        executor.submit(request("short", "held", timeout=0.05))
        assert outcomes.wait("short").state is RunState.TIMED_OUT  # well before a minute
    finally:
        release.set()
        executor.shutdown(5.0)
