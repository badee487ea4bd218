"""A backlog held back by its schedule's ``max_instances`` never starves other schedules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_engine_helpers import OK, SLOW, add_schedule, make_engine, runs_of, schedule_obj

from duetime.clock import FakeClock
from duetime.engine.loop import READ_PAST_SECONDS
from duetime.models import RunKind, RunState
from duetime.store import claims, rows
from duetime.store.sqlalchemy import SQLAlchemyStore

SLOTS = 2

pytestmark = pytest.mark.anyio


def _pending(store: SQLAlchemyStore, schedule_id: str, at: timedelta, clock: FakeClock) -> None:
    schedule = schedule_obj(store, schedule_id)
    instant = clock.now() + at
    store.insert_run(
        rows.new_run_values(
            schedule=schedule,
            tenant="default",
            job=schedule.job,
            parameters={},
            kind=RunKind.MANUAL,
            scheduled_for=instant,
            available_at=instant,
            now=clock.now(),
            max_attempts=1,
            timeout=None,
            priority=0,
            executor="default",
            max_recoveries=3,
            retry_backoff=10.0,
        )
    )


def _claim(store: SQLAlchemyStore, clock: FakeClock, slots: int = SLOTS) -> list[str]:
    started = claims.claim_runs(store, now=clock.now(), worker="w", slots=slots, lease_seconds=60)
    return [run.schedule_id or "" for run in started]


def _blocked_backlog(store: SQLAlchemyStore, clock: FakeClock, name: str, first_ms: int) -> str:
    """A schedule running its one instance, with more pending runs than a claim reads."""
    busy = add_schedule(store, name, "0 0 1 1 *", now=clock.now(), max_instances=1)
    _pending(store, busy, timedelta(seconds=-10), clock)  # older than every other run
    assert _claim(store, clock, slots=1) == [busy]
    for ms in range(1, 2 * SLOTS * claims.CANDIDATES_PER_SLOT):
        _pending(store, busy, timedelta(seconds=-10, milliseconds=first_ms + ms), clock)
    return busy


@pytest.mark.parametrize("backlogs", [1, claims.CLAIM_ROUNDS - 1])
def test_runs_behind_blocked_backlogs_are_claimed(
    store: SQLAlchemyStore, clock: FakeClock, backlogs: int
) -> None:
    """Older pending runs held back by max_instances fill every candidate read: the claim
    reads past their schedules and starts the younger run of another schedule."""
    for i in range(backlogs):
        _blocked_backlog(store, clock, f"busy{i}", first_ms=100 * i)
    other = add_schedule(store, "other", "0 0 1 1 *", now=clock.now())
    _pending(store, other, timedelta(seconds=1), clock)
    clock.advance(2)
    assert _claim(store, clock) == [other]
    assert [r.state for r in runs_of(store, other)] == [RunState.RUNNING]


def test_a_claim_in_rounds_starts_each_run_once(store: SQLAlchemyStore, clock: FakeClock) -> None:
    """Runs chosen in an earlier round are not read again by a later one."""
    roomy = add_schedule(store, "roomy", "0 0 1 1 *", now=clock.now(), max_instances=3)
    for ms in range(3):
        _pending(store, roomy, timedelta(milliseconds=ms), clock)
    _blocked_backlog(store, clock, "busy", first_ms=10)
    other = add_schedule(store, "other", "0 0 1 1 *", now=clock.now())
    _pending(store, other, timedelta(seconds=1), clock)
    clock.advance(2)
    started = _claim(store, clock, slots=5)
    assert sorted(started) == sorted([roomy, roomy, roomy, other])
    assert [r.state for r in runs_of(store, roomy)] == [RunState.RUNNING] * 3


async def test_the_engine_reads_past_held_back_runs_every_quarter_second(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    """Reading past walks the whole held-back backlog: the engine does it at most every
    READ_PAST_SECONDS, so a run behind the backlog waits at most that long."""
    engine, executor = make_engine(store, clock, concurrency=2)
    busy = add_schedule(store, "busy", "0 0 1 1 *", now=clock.now(), job=SLOW, max_instances=1)
    _pending(store, busy, timedelta(seconds=-10), clock)
    await engine.tick()  # busy runs its one instance (slow: it keeps running)
    assert [r.state for r in runs_of(store, busy)] == [RunState.RUNNING]
    for ms in range(engine.executor.free_slots * claims.CANDIDATES_PER_SLOT + 5):
        _pending(store, busy, timedelta(seconds=-9, milliseconds=ms), clock)
    other = add_schedule(store, "other", "0 0 1 1 *", now=clock.now(), job=OK)
    _pending(store, other, timedelta(seconds=-1), clock)
    await engine.tick()  # the last read past was moments ago: only the backlog is read
    assert [r.state for r in runs_of(store, other)] == [RunState.PENDING]
    clock.advance(READ_PAST_SECONDS)
    await engine.tick()
    assert [r.state for r in runs_of(store, other)] == [RunState.SUCCEEDED]
    assert len(executor.inflight) == 1
