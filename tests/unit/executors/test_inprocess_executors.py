"""Thread and asyncio executors: one conformance suite (cooperative timeouts and cancel)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from executor_helpers import WAIT_SECONDS, Outcomes, request, wait_until

from duetime.clock import FakeClock, SystemClock
from duetime.executors.asyncio import AsyncioExecutor
from duetime.executors.base import Executor
from duetime.executors.thread import ThreadExecutor
from duetime.jobs import RunContext, job
from duetime.jobs.registry import JobRegistry
from duetime.models import RunState

CONCURRENCY = 2


class Jobs:
    """A registry of handlers the tests steer with events."""

    def __init__(self) -> None:
        self.registry = JobRegistry()
        self.release = threading.Event()
        self.started = threading.Event()
        self.saw_cancel = threading.Event()
        reg = self.registry

        @job("ok", registry=reg)
        def ok(x: int = 1) -> dict[str, int]:
            return {"x": x}

        @job("async_ok", registry=reg)
        async def async_ok(ctx: RunContext) -> str:
            await asyncio.sleep(0)
            return ctx.run_id

        @job("boom", registry=reg)
        def boom() -> None:
            raise KeyError("missing thing")

        @job("coop", registry=reg)
        def coop(ctx: RunContext) -> bool:
            self.started.set()
            cancelled = ctx.sleep(WAIT_SECONDS)
            if cancelled:
                self.saw_cancel.set()
            return cancelled

        @job("stubborn", registry=reg)
        def stubborn(ctx: RunContext) -> str:
            self.started.set()
            self.release.wait(WAIT_SECONDS)  # ignores ctx.cancelled on purpose
            if ctx.cancelled:
                self.saw_cancel.set()
            return "late"

        @job("async_forever", registry=reg)
        async def async_forever() -> None:
            self.started.set()
            try:
                await asyncio.sleep(WAIT_SECONDS)
            except asyncio.CancelledError:
                self.saw_cancel.set()
                raise


@pytest.fixture
def jobs() -> Jobs:
    return Jobs()


def _make(kind: str, jobs: Jobs, clock: Any = None) -> Executor:
    cls = ThreadExecutor if kind == "thread" else AsyncioExecutor
    return cls(concurrency=CONCURRENCY, registry=jobs.registry, clock=clock or SystemClock())


@pytest.fixture(params=["thread", "asyncio"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def outcomes() -> Outcomes:
    return Outcomes()


@pytest.fixture
def executor(kind: str, jobs: Jobs, outcomes: Outcomes) -> Iterator[Executor]:
    ex = _make(kind, jobs)
    ex.start(outcomes)
    yield ex
    jobs.release.set()
    ex.shutdown(1.0)
    outcomes.assert_once_each()


def test_success_sync_and_async(executor: Executor, outcomes: Outcomes) -> None:
    executor.submit(request("a", "ok", x=5))
    executor.submit(request("b", "async_ok"))
    a, b = outcomes.wait("a"), outcomes.wait("b")
    assert executor.free_slots == CONCURRENCY  # freed before the outcome is reported
    assert (a.state, a.result, a.lease_token) == (RunState.SUCCEEDED, {"x": 5}, "lease-a")
    assert (b.state, b.result) == (RunState.SUCCEEDED, "b")
    assert a.started_at is not None
    assert a.finished_at is not None
    assert a.started_at <= a.finished_at


def test_exception_becomes_failed_outcome(executor: Executor, outcomes: Outcomes) -> None:
    executor.submit(request("e", "boom"))
    outcome = outcomes.wait("e")
    assert outcome.state is RunState.FAILED
    assert outcome.error is not None
    assert outcome.error.type == "KeyError"
    assert 'raise KeyError("missing thing")' in (outcome.error.traceback or "")


def test_concurrency_limit(executor: Executor, outcomes: Outcomes, jobs: Jobs) -> None:
    assert executor.free_slots == CONCURRENCY
    executor.submit(request("c1", "coop"))
    executor.submit(request("c2", "coop"))
    assert executor.free_slots == 0
    assert sorted(executor.running()) == ["c1", "c2"]
    with pytest.raises(RuntimeError, match="no free slot"):
        executor.submit(request("c3", "coop"))
    assert executor.cancel("c1")
    assert executor.cancel("c2")
    assert outcomes.wait("c1").state is RunState.CANCELLED
    assert outcomes.wait("c2").state is RunState.CANCELLED
    wait_until(lambda: executor.free_slots == CONCURRENCY)


def test_timeout_is_cooperative(executor: Executor, outcomes: Outcomes, jobs: Jobs) -> None:
    executor.submit(request("t", "stubborn", timeout=0.2))
    outcome = outcomes.wait("t")
    assert outcome.state is RunState.TIMED_OUT
    assert outcome.error is not None
    assert "timeout of 0.2 s" in outcome.error.message
    assert executor.running() == []
    assert executor.free_slots == CONCURRENCY - 1  # held until the handler returns
    jobs.release.set()
    wait_until(lambda: executor.free_slots == CONCURRENCY)
    assert jobs.saw_cancel.is_set()  # ctx.cancelled was true when it returned
    assert outcomes.counts()["t"] == 1  # the late "late" result is discarded


def test_timeout_stops_cooperative_handler(
    executor: Executor, outcomes: Outcomes, jobs: Jobs
) -> None:
    executor.submit(request("t", "coop", timeout=0.2))
    assert outcomes.wait("t").state is RunState.TIMED_OUT
    assert jobs.saw_cancel.wait(WAIT_SECONDS)
    wait_until(lambda: executor.free_slots == CONCURRENCY)


def test_cancel(executor: Executor, outcomes: Outcomes, jobs: Jobs) -> None:
    executor.submit(request("k", "coop"))
    assert jobs.started.wait(WAIT_SECONDS)
    assert executor.cancel("k")
    assert not executor.cancel("k")
    assert not executor.cancel("unknown")
    outcome = outcomes.wait("k")
    assert outcome.state is RunState.CANCELLED
    assert jobs.saw_cancel.wait(WAIT_SECONDS)


def test_shutdown_interrupts_what_runs(kind: str, jobs: Jobs, outcomes: Outcomes) -> None:
    ex = _make(kind, jobs)
    ex.start(outcomes)
    ex.submit(request("quick", "ok"))
    ex.submit(request("long", "stubborn"))
    assert jobs.started.wait(WAIT_SECONDS)
    ex.shutdown(0.2)
    assert outcomes.wait("quick").state is RunState.SUCCEEDED
    long = outcomes.wait("long")
    assert long.state is RunState.FAILED
    assert long.error is not None
    assert (long.error.type, long.error.message) == ("Interrupted", "interrupted by shutdown")
    assert ex.free_slots == 0
    with pytest.raises(RuntimeError, match="not accepting"):
        ex.submit(request("after", "ok"))
    jobs.release.set()
    outcomes.assert_once_each()


def test_timeouts_follow_the_given_clock(kind: str, jobs: Jobs, outcomes: Outcomes) -> None:
    clock = FakeClock()
    ex = _make(kind, jobs, clock)
    ex.start(outcomes)
    try:
        ex.submit(request("f", "coop", timeout=30))
        assert jobs.started.wait(WAIT_SECONDS)
        with pytest.raises(AssertionError):
            outcomes.wait("f", timeout=0.3)  # real time passes, fake time does not
        clock.advance(31)
        assert outcomes.wait("f").state is RunState.TIMED_OUT
    finally:
        ex.shutdown(1.0)


def test_async_task_is_cancelled_at_timeout(jobs: Jobs, outcomes: Outcomes) -> None:
    ex = _make("asyncio", jobs)
    ex.start(outcomes)
    try:
        ex.submit(request("a", "async_forever", timeout=0.2))
        assert outcomes.wait("a").state is RunState.TIMED_OUT
        assert jobs.saw_cancel.wait(WAIT_SECONDS)
        wait_until(lambda: ex.free_slots == CONCURRENCY)
    finally:
        ex.shutdown(1.0)


def test_failing_callback_does_not_break_the_executor(kind: str, jobs: Jobs) -> None:
    seen = Outcomes()
    calls: list[str] = []

    def flaky(outcome: Any) -> None:
        calls.append(outcome.run_id)
        if len(calls) == 1:
            raise RuntimeError("engine hiccup")
        seen(outcome)

    ex = _make(kind, jobs)
    ex.start(flaky)
    try:
        ex.submit(request("one", "ok"))
        wait_until(lambda: calls == ["one"])
        ex.submit(request("two", "ok"))
        assert seen.wait("two").state is RunState.SUCCEEDED
    finally:
        ex.shutdown(1.0)


def test_submit_before_start_and_duplicates(kind: str, jobs: Jobs, outcomes: Outcomes) -> None:
    ex = _make(kind, jobs)
    assert ex.free_slots == 0
    with pytest.raises(RuntimeError):
        ex.submit(request("x", "ok"))
    ex.start(outcomes)
    try:
        ex.submit(request("d", "coop"))
        with pytest.raises(RuntimeError, match="already executing"):
            ex.submit(request("d", "coop"))
        ex.cancel("d")
    finally:
        ex.shutdown(1.0)
