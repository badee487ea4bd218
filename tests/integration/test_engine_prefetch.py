"""Prefetch (docs/decisions/0008): short runs are claimed beyond the free slots and queued.

The wrapper is tested against a controllable inner executor with a fake timer (how long
runs take decides the queue depth); the engine tests run it on both backends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from test_engine_helpers import SLOW, add_schedule, make_engine, runs_of

from duetime.clock import FakeClock
from duetime.engine.prefetch import (
    HANDOVER_LEAD_SECONDS,
    MAX_PREFETCH,
    PREFETCH_SECONDS,
    STALE_SECONDS,
    UNKNOWN_DEPTH_PER_SLOT,
    PrefetchExecutor,
)
from duetime.executors.base import ExecutionRequest, Outcome
from duetime.models import RunState
from duetime.store.sqlalchemy import SQLAlchemyStore

T0 = datetime(2030, 1, 1, tzinfo=UTC)

pytestmark = pytest.mark.anyio


class Timer:
    """A stopwatch the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class HeldExecutor:
    """Two slots; submitted requests stay running until ``finish`` reports them."""

    name = "held"

    def __init__(self, concurrency: int = 2) -> None:
        self.concurrency = concurrency
        self.running_requests: dict[str, ExecutionRequest] = {}
        self.started: list[str] = []
        self.callback: object = None

    def start(self, on_outcome: object) -> None:
        self.callback = on_outcome

    @property
    def free_slots(self) -> int:
        return self.concurrency - len(self.running_requests)

    def submit(self, request: ExecutionRequest) -> None:
        if self.free_slots <= 0:
            raise RuntimeError("no free slot")
        self.running_requests[request.run_id] = request
        self.started.append(request.run_id)

    def finish(self, run_id: str) -> None:
        request = self.running_requests.pop(run_id)
        outcome = Outcome(run_id=run_id, lease_token=request.lease_token, state=RunState.SUCCEEDED)
        self.callback(outcome)  # type: ignore[operator]

    def cancel(self, run_id: str) -> bool:
        return False

    def running(self) -> list[str]:
        return list(self.running_requests)

    def shutdown(self, grace_seconds: float) -> None:
        pass


def request(run_id: str) -> ExecutionRequest:
    return ExecutionRequest(
        run_id=run_id,
        job="j",
        parameters={},
        attempt=1,
        lease_token=f"token-{run_id}",
        timeout_seconds=None,
        scheduled_for=T0,
    )


class OnTimeExecutor(HeldExecutor):
    """A held executor that says it waits for ``not_before`` itself."""

    starts_on_time = True


def wrapper(
    duration: float | None, clock: FakeClock | None = None, inner: HeldExecutor | None = None
) -> tuple[PrefetchExecutor, HeldExecutor, list[Outcome]]:
    """A started wrapper whose runs so far took ``duration`` seconds (None: none ran yet)."""
    inner, timer, outcomes = inner or HeldExecutor(), Timer(), []
    prefetch = PrefetchExecutor(inner, clock or FakeClock(T0), concurrency=2, timer=timer)
    prefetch.start(outcomes.append)
    if duration is not None:
        prefetch.submit(request("warm-up"))
        timer.now += duration
        inner.finish("warm-up")
    return prefetch, inner, outcomes


def test_before_any_run_finished_the_queue_is_optimistic() -> None:
    prefetch, inner, _ = wrapper(None)
    assert prefetch.free_slots == inner.free_slots + 2 * UNKNOWN_DEPTH_PER_SLOT


def test_runs_waiting_too_long_for_a_slot_are_taken_back() -> None:
    clock = FakeClock(T0)
    prefetch, inner, _ = wrapper(None, clock)
    for run_id in ("a", "b", "waits", "later"):
        prefetch.submit(request(run_id), available_at=None)
    clock.advance(STALE_SECONDS / 2)
    assert prefetch.take_stale() == []
    clock.advance(STALE_SECONDS)
    assert sorted(r.run_id for r in prefetch.take_stale()) == ["later", "waits"]
    assert prefetch.running() == ["a", "b"]
    assert prefetch.free_slots == inner.free_slots  # runs were slow: no more optimism


def test_a_run_waiting_for_its_instant_is_not_stale() -> None:
    clock = FakeClock(T0)
    prefetch, _, _ = wrapper(None, clock)
    for run_id in ("a", "b"):
        prefetch.submit(request(run_id))
    prefetch.submit(request("ahead"), available_at=T0 + timedelta(seconds=5))
    clock.advance(STALE_SECONDS * 3)
    assert prefetch.take_stale() == []


def test_fast_runs_open_the_queue_up_to_its_cap() -> None:
    prefetch, _, _ = wrapper(0.0001)
    assert prefetch.free_slots == 2 + MAX_PREFETCH


def test_queue_depth_is_what_the_slots_start_within_the_window() -> None:
    prefetch, _, _ = wrapper(0.1)  # 2 slots × 0.25 s / 0.1 s = 5 runs may wait
    assert prefetch.free_slots == 2 + int(2 * PREFETCH_SECONDS / 0.1)


def test_long_runs_get_no_prefetch() -> None:
    prefetch, _, _ = wrapper(60.0)
    assert prefetch.free_slots == 2


def test_queued_runs_start_as_slots_free_highest_priority_first() -> None:
    prefetch, inner, outcomes = wrapper(0.001)
    for run_id, priority in (("a", 0), ("b", 0), ("low", -1), ("high", 5), ("c", 0)):
        prefetch.submit(request(run_id), priority)
    assert inner.started[1:] == ["a", "b"]
    assert sorted(prefetch.running()) == ["a", "b", "c", "high", "low"]
    inner.finish("a")
    assert inner.started[-1] == "high"
    inner.finish("b")
    inner.finish("high")
    assert inner.started[-2:] == ["c", "low"]
    assert [o.run_id for o in outcomes[1:]] == ["a", "b", "high"]


def test_cancel_of_a_queued_run_reports_cancelled_without_starting_it() -> None:
    prefetch, inner, outcomes = wrapper(0.001)
    for run_id in ("a", "b", "queued"):
        prefetch.submit(request(run_id))
    assert prefetch.cancel("queued") is True
    assert outcomes[-1].run_id == "queued"
    assert outcomes[-1].state is RunState.CANCELLED
    inner.finish("a")
    assert "queued" not in inner.started


def test_take_queued_stops_dispatching() -> None:
    prefetch, inner, _ = wrapper(0.001)
    for run_id in ("a", "b", "q1", "q2"):
        prefetch.submit(request(run_id))
    taken = prefetch.take_queued()
    assert [r.run_id for r in taken] == ["q1", "q2"]
    inner.finish("a")
    assert inner.started[-1] == "b"
    assert prefetch.free_slots == 0
    with pytest.raises(RuntimeError):
        prefetch.submit(request("late"))


@pytest.mark.parametrize("inner_type", [HeldExecutor, OnTimeExecutor])
def test_a_run_for_later_is_handed_over_at_its_instant_or_just_before(
    inner_type: type[HeldExecutor],
) -> None:
    """An executor that ``starts_on_time`` gets the run HANDOVER_LEAD_SECONDS early, with
    its instant as ``not_before``; any other executor gets it at the instant, as it is."""
    clock = FakeClock(T0)
    prefetch, inner, _ = wrapper(0.001, clock, inner_type())
    instant = T0 + timedelta(seconds=5)
    prefetch.submit(request("later"), available_at=instant)
    lead = HANDOVER_LEAD_SECONDS if inner_type is OnTimeExecutor else 0.0
    clock.advance(5 - lead - 0.001)
    prefetch.pump()
    assert "later" not in inner.started
    clock.advance(0.001)
    prefetch.pump()
    assert "later" in inner.started
    handed = inner.running_requests["later"]
    assert handed.not_before == (instant if lead else None)


def test_a_run_handed_over_early_counts_its_duration_from_its_instant() -> None:
    """The wait for ``not_before`` is not run time: the queue depth stays what it was."""
    clock = FakeClock(T0)
    timer = Timer()
    inner = OnTimeExecutor()
    prefetch = PrefetchExecutor(inner, clock, concurrency=2, timer=timer)
    prefetch.start([].append)
    prefetch.submit(request("later"), available_at=T0 + timedelta(seconds=HANDOVER_LEAD_SECONDS))
    timer.now += HANDOVER_LEAD_SECONDS + 0.1  # waited for its instant, then ran for 0.1 s
    inner.finish("later")
    assert prefetch.free_slots == 2 + int(2 * PREFETCH_SECONDS / 0.1)


# ---------------------------------------------------------------- the engine with prefetch


async def test_engine_claims_beyond_free_slots_once_runs_are_quick(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    ids = [add_schedule(store, f"s{i}", "* * * * *", now=clock.now()) for i in range(12)]
    engine, executor = make_engine(store, clock, concurrency=2)
    clock.advance(60)
    await engine.tick()  # no measure yet: only the free slots are claimed
    await engine.tick()  # those runs finished at once: the rest are claimed in one go
    runs = [runs_of(store, sid)[0] for sid in ids]
    assert all(r.state is RunState.SUCCEEDED for r in runs)
    assert len(executor.submitted) == 12


async def test_finished_run_records_its_real_start_not_its_claim(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    sid = add_schedule(store, "late-start", "* * * * *", now=clock.now(), job=SLOW)
    engine, executor = make_engine(store, clock, concurrency=1)
    clock.advance(60)
    await engine.tick()
    claimed = runs_of(store, sid)[0]
    clock.advance(3)  # the executor reports a start 3 s after the claim (as a queued run does)
    executor.complete(claimed.id)
    await engine.tick()
    done = runs_of(store, sid)[0]
    assert done.started_at == claimed.started_at + timedelta(seconds=3)
    assert done.lateness_ms == 3000
    assert done.duration_ms == 0


async def test_shutdown_gives_queued_runs_back_as_pending(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    ids = [add_schedule(store, f"s{i}", "* * * * *", now=clock.now(), job=SLOW) for i in range(4)]
    engine, executor = make_engine(store, clock, concurrency=1)
    prefetch = engine.executor
    prefetch._average = 0.0001  # as if recent runs were quick: the queue opens
    clock.advance(60)
    await engine.tick()
    assert all(runs_of(store, sid)[0].state is RunState.RUNNING for sid in ids)
    assert len(executor.submitted) == 1
    await engine._shutdown()
    states = sorted(runs_of(store, sid)[0].state.value for sid in ids)
    assert states.count("pending") == 3
    pending = [runs_of(store, sid)[0] for sid in ids]
    assert all(r.worker is None and r.lease_token is None for r in pending if r.state == "pending")
