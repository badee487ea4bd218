"""ThreadExecutor honours ``not_before``: the worker waits for the instant itself."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

from executor_helpers import Outcomes, request, wait_until

from duetime.clock import FakeClock
from duetime.executors.thread import ThreadExecutor
from duetime.jobs import job
from duetime.jobs.registry import JobRegistry
from duetime.models import RunState


def _setup(clock: FakeClock) -> tuple[ThreadExecutor, Outcomes, list[str], threading.Event]:
    registry = JobRegistry()
    started: list[str] = []
    release = threading.Event()

    @job("held", registry=registry)
    def held(ctx: object) -> None:
        started.append(clock.now().isoformat())
        release.wait(10)

    executor = ThreadExecutor(concurrency=2, registry=registry, clock=clock)
    outcomes = Outcomes()
    executor.start(outcomes)
    return executor, outcomes, started, release


def test_the_handler_starts_at_not_before_and_its_timeout_counts_from_there() -> None:
    clock = FakeClock()
    executor, outcomes, started, release = _setup(clock)
    instant = clock.now() + timedelta(seconds=10)
    executor.submit(dataclasses.replace(request("r", "held", timeout=1.0), not_before=instant))
    assert executor.free_slots == 1  # the slot is held while the worker waits
    threading.Event().wait(0.05)
    assert started == []
    clock.advance(10)
    wait_until(lambda: started == [instant.isoformat()])
    clock.advance(0.5)
    threading.Event().wait(0.05)
    assert outcomes.items == []  # 10.5 s after the hand-over, 0.5 s after the start
    clock.advance(0.6)
    outcome = outcomes.wait("r")
    assert outcome.state is RunState.TIMED_OUT
    assert outcome.started_at == instant
    release.set()
    executor.shutdown(1.0)


def test_a_run_cancelled_while_it_waits_never_starts() -> None:
    clock = FakeClock()
    executor, outcomes, started, release = _setup(clock)
    instant = clock.now() + timedelta(seconds=10)
    executor.submit(dataclasses.replace(request("r", "held"), not_before=instant))
    assert executor.cancel("r") is True
    outcome = outcomes.wait("r")
    assert outcome.state is RunState.CANCELLED
    assert outcome.started_at is None
    wait_until(lambda: executor.free_slots == 2)
    clock.advance(20)
    threading.Event().wait(0.05)
    assert started == []
    outcomes.assert_once_each()
    release.set()
    executor.shutdown(1.0)


def test_a_not_before_already_past_starts_at_once() -> None:
    clock = FakeClock()
    executor, outcomes, started, release = _setup(clock)
    past = clock.now() - timedelta(seconds=1)
    executor.submit(dataclasses.replace(request("r", "held"), not_before=past))
    wait_until(lambda: len(started) == 1)
    release.set()
    assert outcomes.wait("r").state is RunState.SUCCEEDED
    executor.shutdown(1.0)
