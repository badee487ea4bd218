"""The engine cycle on both backends, driven by a FakeClock and a synchronous fake executor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from test_engine_helpers import (
    FAIL,
    OK,
    SLOW,
    FakeRegistry,
    add_schedule,
    by_state,
    get_schedule,
    make_engine,
    pause,
    resume,
    runs_of,
    seconds,
    update_schedule,
)

from duetime.clock import FakeClock
from duetime.executors.base import Outcome
from duetime.models import RunKind, RunState
from duetime.store import claims
from duetime.store.sqlalchemy import SQLAlchemyStore
from duetime.triggers.spec import build_trigger

T0 = datetime(2030, 1, 1, tzinfo=UTC)

pytestmark = pytest.mark.anyio


async def test_fires_and_runs_each_minute(store: SQLAlchemyStore, clock: FakeClock) -> None:
    sid = add_schedule(store, "every-minute", "* * * * *", now=clock.now())
    engine, executor = make_engine(store, clock)
    for _ in range(3):
        clock.advance(60)
        await engine.tick()
    runs = runs_of(store, sid)
    assert [r.scheduled_for for r in runs] == [T0 + timedelta(minutes=m) for m in (1, 2, 3)]
    assert all(r.state is RunState.SUCCEEDED and r.kind is RunKind.SCHEDULED for r in runs)
    assert all(r.result == {"ok": True} and r.worker == engine.instance_id for r in runs)
    row = get_schedule(store, sid)
    assert row["next_run_at"] == T0 + timedelta(minutes=4)
    assert row["last_run_state"] == "succeeded"
    assert len(executor.submitted) == 3


async def test_year_of_downtime_is_one_missed_row_and_one_run(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    sid = add_schedule(store, "per-second", "* * * * * *", now=clock.now())
    engine, _ = make_engine(store, clock)
    clock.advance(days=365)
    await engine.tick()
    runs = runs_of(store, sid)
    assert by_state(runs) == {"missed": 1, "succeeded": 1}
    missed = next(r for r in runs if r.state is RunState.MISSED)
    assert missed.scheduled_for == T0 + seconds(1)
    assert missed.missed_until == clock.now() - seconds(61)
    assert missed.missed_count == 365 * 86400 - 61
    ran = next(r for r in runs if r.state is RunState.SUCCEEDED)
    assert ran.scheduled_for == clock.now()
    assert get_schedule(store, sid)["next_run_at"] == clock.now() + seconds(1)


async def test_no_coalesce_runs_each_fire_within_grace(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    sid = add_schedule(
        store, "each", "* * * * *", now=clock.now(), coalesce=False, misfire_grace_time=300.0,
        overlap="buffer_all", max_instances=10,
    )  # fmt: skip
    engine, _ = make_engine(store, clock)
    clock.advance(minutes=10)
    await engine.tick()
    await engine.tick()
    runs = runs_of(store, sid)
    assert by_state(runs) == {"missed": 1, "succeeded": 6}
    missed = next(r for r in runs if r.state is RunState.MISSED)
    assert missed.missed_count == 4


async def test_retries_with_backoff(store: SQLAlchemyStore, clock: FakeClock) -> None:
    sid = add_schedule(
        store, "flaky", "0 * * * *", now=clock.now(), job=FAIL, max_attempts=3, retry_backoff=10.0
    )
    engine, _ = make_engine(store, clock)
    clock.advance(hours=1)
    await engine.tick()
    first, retry = runs_of(store, sid)
    assert first.state is RunState.FAILED
    assert first.error is not None
    assert retry.kind is RunKind.RETRY
    assert retry.attempt == 2
    assert retry.parent_run_id == first.id
    assert retry.state is RunState.PENDING
    delay = (retry.available_at - clock.now()).total_seconds()
    assert 9.0 <= delay <= 11.0
    clock.advance(8.9)
    await engine.tick()
    assert runs_of(store, sid)[1].state is RunState.PENDING
    clock.advance(2.2)
    await engine.tick()
    runs = runs_of(store, sid)
    assert [r.attempt for r in runs] == [1, 2, 3]
    delay = (runs[2].available_at - clock.now()).total_seconds()
    assert 18.0 <= delay <= 22.0
    clock.advance(23)
    await engine.tick()
    runs = runs_of(store, sid)
    assert len(runs) == 3  # attempts used up: no fourth
    assert all(r.state is RunState.FAILED for r in runs)


async def test_unknown_job_fails_the_run_and_keeps_the_schedule(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    sid = add_schedule(store, "ghost", "* * * * *", now=clock.now(), job="not.registered")
    engine, executor = make_engine(store, clock)
    clock.advance(60)
    await engine.tick()
    (run,) = runs_of(store, sid)
    assert run.state is RunState.FAILED
    assert run.error is not None
    assert run.error.type == "UnknownJobError"
    assert "'not.registered' is not registered" in run.error.message
    row = get_schedule(store, sid)
    assert row["state"] == "active"
    assert row["next_run_at"] == T0 + timedelta(minutes=2)
    assert executor.submitted == []


async def test_dead_worker_is_recovered_without_using_an_attempt(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    sid = add_schedule(store, "long", "0 * * * *", now=clock.now(), job=SLOW, max_recoveries=1)
    dead, dead_executor = make_engine(store, clock, lease_seconds=30.0)
    alive, alive_executor = make_engine(store, clock, lease_seconds=30.0)
    clock.advance(hours=1)
    await dead.tick()  # starts the run, then "dies"
    (run,) = runs_of(store, sid)
    assert run.state is RunState.RUNNING
    assert run.worker == dead.instance_id
    clock.advance(31)
    await alive.tick()  # recovers the run
    await alive.tick()  # starts its recovery
    lost, recovery = runs_of(store, sid)
    assert lost.state is RunState.FAILED
    assert lost.error is not None
    assert lost.error.type == "WorkerLost"
    assert recovery.kind is RunKind.RECOVERY
    assert recovery.attempt == 1
    assert recovery.recovery == 1
    assert recovery.state is RunState.RUNNING
    assert recovery.worker == alive.instance_id
    # the dead worker's late outcome is fenced off by its stale lease token
    dead_executor.complete(run.id, RunState.SUCCEEDED)
    await dead.tick()
    assert runs_of(store, sid)[0].state is RunState.FAILED
    # the recovery is lost too: max_recoveries=1 is used up, no third run
    clock.advance(31)
    await dead.tick()
    runs = runs_of(store, sid)
    assert len(runs) == 2
    assert runs[1].state is RunState.FAILED
    assert alive_executor.running() == [recovery.id]


async def test_stale_lease_token_changes_nothing(store: SQLAlchemyStore, clock: FakeClock) -> None:
    from duetime.executors.base import Outcome

    sid = add_schedule(store, "fenced", "0 * * * *", now=clock.now(), job=SLOW)
    engine, executor = make_engine(store, clock)
    clock.advance(hours=1)
    await engine.tick()
    (run,) = runs_of(store, sid)
    stale = Outcome(run_id=run.id, lease_token="not-the-token", state=RunState.SUCCEEDED)
    assert claims.finish_runs(store, [stale], now=clock.now()).run_ids == []
    assert runs_of(store, sid)[0].state is RunState.RUNNING
    executor.complete(run.id, RunState.SUCCEEDED)
    await engine.tick()
    assert runs_of(store, sid)[0].state is RunState.SUCCEEDED


async def test_shutdown_interrupts_and_recovers(store: SQLAlchemyStore, clock: FakeClock) -> None:
    sid = add_schedule(store, "long", "0 * * * *", now=clock.now(), job=SLOW, max_attempts=1)
    engine, _ = make_engine(store, clock, shutdown_grace_seconds=0.0)
    clock.advance(hours=1)
    await engine.tick()
    await engine._shutdown()
    interrupted, recovery = runs_of(store, sid)
    assert interrupted.state is RunState.FAILED
    assert interrupted.error is not None
    assert interrupted.error.type == "Interrupted"
    assert recovery.kind is RunKind.RECOVERY
    assert recovery.state is RunState.PENDING
    assert recovery.attempt == 1
    assert recovery.max_attempts == 1
    assert recovery.recovery == 1
    other, _ = make_engine(store, clock)
    await other.tick()
    assert runs_of(store, sid)[1].state is RunState.RUNNING


async def test_chain_fires_named_schedules_after_success(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    later = datetime(2099, 1, 1, tzinfo=UTC)
    b = add_schedule(store, "b", {"type": "date", "run_at": later.isoformat()}, now=clock.now())
    a = add_schedule(store, "a", "0 * * * *", now=clock.now(), chain=["b", "missing"])
    f = add_schedule(store, "f", "0 * * * *", now=clock.now(), job=FAIL, chain=["b"])
    engine, _ = make_engine(store, clock)
    clock.advance(hours=1)
    await engine.tick()
    await engine.tick()
    (chained,) = runs_of(store, b)
    assert chained.kind is RunKind.CHAIN
    assert chained.state is RunState.SUCCEEDED
    assert chained.parent_run_id == runs_of(store, a)[0].id
    assert len(runs_of(store, f)) == 1  # a failure chains nothing


async def test_cancel_running_run(store: SQLAlchemyStore, clock: FakeClock) -> None:
    sid = add_schedule(store, "c", "0 * * * *", now=clock.now(), job=SLOW, max_attempts=3)
    engine, executor = make_engine(store, clock)
    clock.advance(hours=1)
    await engine.tick()
    (run,) = runs_of(store, sid)
    store.request_cancel("default", run.id)
    await engine.tick()
    (run,) = runs_of(store, sid)
    assert run.state is RunState.CANCELLED  # and not retried although attempts remain
    assert executor.running() == []


@pytest.mark.parametrize(
    ("overlap", "expected"),
    [
        ("skip", {"running": 1, "skipped": 3}),
        ("buffer_one", {"running": 1, "pending": 1, "skipped": 2}),
        ("buffer_all", {"running": 1, "pending": 3}),
        ("replace", {"cancelled": 3, "running": 1}),
    ],
)
async def test_overlap_policies(
    store: SQLAlchemyStore, clock: FakeClock, overlap: str, expected: dict[str, int]
) -> None:
    sid = add_schedule(store, "o", "* * * * *", now=clock.now(), job=SLOW, overlap=overlap)
    engine, _ = make_engine(store, clock)
    for _ in range(4):
        clock.advance(60)
        await engine.tick()
        await engine.tick()
    runs = runs_of(store, sid)
    assert by_state(runs) == expected
    if overlap == "replace":
        assert runs[-1].state is RunState.RUNNING  # the newest fire runs
        assert all(r.kind is RunKind.SCHEDULED for r in runs)  # cancelled ones not retried


async def test_max_instances_across_two_engines(store: SQLAlchemyStore, clock: FakeClock) -> None:
    sid = add_schedule(
        store, "m", "* * * * *", now=clock.now(), job=SLOW, overlap="buffer_all", max_instances=2
    )
    a, _ = make_engine(store, clock)
    b, _ = make_engine(store, clock)
    for _ in range(4):
        clock.advance(60)
        await a.tick()
        await b.tick()
    assert by_state(runs_of(store, sid)) == {"running": 2, "pending": 2}


async def test_priority_and_concurrency(store: SQLAlchemyStore, clock: FakeClock) -> None:
    low = add_schedule(store, "low", "0 * * * *", now=clock.now(), job=SLOW, priority=0)
    high = add_schedule(store, "high", "0 * * * *", now=clock.now(), job=SLOW, priority=5)
    mid = add_schedule(store, "mid", "0 * * * *", now=clock.now(), job=SLOW, priority=1)
    engine, executor = make_engine(store, clock, concurrency=2)
    clock.advance(hours=1)
    await engine.tick()
    first_two = [runs_of(store, s)[0].id for s in (high, mid)]
    assert [r.run_id for r in executor.submitted] == first_two  # by priority
    (queued,) = runs_of(store, low)  # claimed too, waiting here for a slot
    executor.complete_all()
    await engine.tick()
    assert executor.submitted[-1].run_id == queued.id


async def test_busy_engine_with_long_runs_fires_due_schedules_as_pending(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    first = add_schedule(store, "first", "0 * * * *", now=clock.now(), job=SLOW)
    second = add_schedule(store, "second", "0 * * * *", now=clock.now(), job=SLOW)
    engine, executor = make_engine(store, clock, concurrency=1)
    clock.advance(hours=1)
    await engine.tick()  # one slot: `first` starts; `second` is claimed and waits here
    assert [r.job for r in executor.submitted] == [SLOW]
    clock.advance(10)
    await engine.tick()  # it waited too long for the slot: given back for other engines
    assert runs_of(store, first)[0].state is RunState.RUNNING
    assert runs_of(store, second)[0].state is RunState.PENDING
    assert runs_of(store, second)[0].scheduled_for == T0 + timedelta(hours=1)


async def test_one_off_completes_and_end_date_completes(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    at = T0 + timedelta(minutes=60)
    once = add_schedule(store, "once", {"type": "date", "run_at": at.isoformat()}, now=clock.now())
    until = add_schedule(
        store, "until", "0 * * * *", now=clock.now(), end_date=T0 + timedelta(hours=2)
    )
    engine, _ = make_engine(store, clock)
    for _ in range(4):
        clock.advance(hours=1)
        await engine.tick()
    assert [r.state for r in runs_of(store, once)] == [RunState.SUCCEEDED]
    assert len(runs_of(store, until)) == 2
    for sid in (once, until):
        row = get_schedule(store, sid)
        assert row["state"] == "completed"
        assert row["next_run_at"] is None


async def test_start_date_holds_fires(store: SQLAlchemyStore, clock: FakeClock) -> None:
    start = T0 + timedelta(days=2)
    sid = add_schedule(store, "later", "0 0 * * *", now=clock.now(), start_date=start)
    engine, _ = make_engine(store, clock)
    clock.advance(days=1)
    await engine.tick()
    assert runs_of(store, sid) == []
    clock.advance(days=1)
    await engine.tick()
    assert [r.scheduled_for for r in runs_of(store, sid)] == [start]


async def test_pause_resume_keeps_interval_grid_without_burst(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    spec = {"type": "interval", "minutes": 10, "anchor": (T0 + seconds(7)).isoformat()}
    sid = add_schedule(store, "grid", spec, now=clock.now())
    engine, _ = make_engine(store, clock)
    clock.advance(seconds=7)
    await engine.tick()
    pause(store, sid, clock.now())
    clock.advance(hours=5, minutes=3)
    await engine.tick()
    assert len(runs_of(store, sid)) == 1
    resume(store, sid, clock.now())
    await engine.tick()
    assert len(runs_of(store, sid)) == 1  # no burst of old fires, nothing missed
    clock.advance(minutes=7)
    await engine.tick()
    runs = runs_of(store, sid)
    assert len(runs) == 2
    assert runs[1].state is RunState.SUCCEEDED
    assert runs[1].scheduled_for == T0 + timedelta(hours=5, minutes=10, seconds=7)


async def test_edit_trigger_and_soft_delete(store: SQLAlchemyStore, clock: FakeClock) -> None:
    sid = add_schedule(store, "edit", "0 * * * *", now=clock.now())
    engine, _ = make_engine(store, clock)
    clock.advance(hours=1)
    await engine.tick()
    spec = {"type": "cron", "expression": "*/15 * * * *"}
    trigger = build_trigger(spec, "UTC")
    update_schedule(store, sid, trigger=spec, next_run_at=trigger.next_fire_time(clock.now()))
    clock.advance(minutes=15)
    await engine.tick()
    assert [r.scheduled_for.minute for r in runs_of(store, sid)] == [0, 15]
    update_schedule(store, sid, deleted_at=clock.now())
    clock.advance(hours=2)
    await engine.tick()
    assert len(runs_of(store, sid)) == 2


async def test_dst_spring_forward_fires_once_a_day(store: SQLAlchemyStore) -> None:
    clock = FakeClock(datetime(2030, 3, 29, 12, tzinfo=UTC))
    sid = add_schedule(store, "nightly", "30 2 * * *", now=clock.now(), timezone="Europe/Stockholm")
    engine, _ = make_engine(store, clock)
    for _ in range(4 * 24):
        clock.advance(hours=1)
        await engine.tick()
    fires = [r.scheduled_for for r in runs_of(store, sid)]
    assert fires == [
        datetime(2030, 3, 30, 1, 30, tzinfo=UTC),  # 02:30 CET
        datetime(2030, 3, 31, 1, 0, tzinfo=UTC),  # the gap: 03:00 CEST
        datetime(2030, 4, 1, 0, 30, tzinfo=UTC),  # 02:30 CEST
        datetime(2030, 4, 2, 0, 30, tzinfo=UTC),
    ]


async def test_run_pending_without_a_running_engine(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    sid = add_schedule(store, "p", "0 * * * *", now=clock.now(), job=FAIL, max_attempts=2)
    engine, _ = make_engine(store, clock)
    clock.advance(hours=1)
    started = await engine.run_pending()
    assert [r.state for r in started] == [RunState.FAILED]
    runs = runs_of(store, sid)
    assert runs[1].kind is RunKind.RETRY
    assert runs[1].state is RunState.PENDING
    assert await engine.run_pending() == []


async def test_replaced_runs_are_not_retried(store: SQLAlchemyStore, clock: FakeClock) -> None:
    sid = add_schedule(
        store, "r", "* * * * *", now=clock.now(), job=SLOW, overlap="replace", max_attempts=5
    )
    engine, executor = make_engine(store, clock)
    clock.advance(60)
    await engine.tick()
    clock.advance(60)
    await engine.tick()
    await engine.tick()
    runs = runs_of(store, sid)
    assert [r.state for r in runs] == [RunState.CANCELLED, RunState.RUNNING]
    assert executor.running() == [runs[1].id]


def test_registry_default_names() -> None:
    assert {j.name for j in FakeRegistry().all()} == {OK, FAIL, SLOW}


async def test_calendar_month_end_across_months(store: SQLAlchemyStore, clock: FakeClock) -> None:
    spec = {"type": "calendar", "months": 1, "hour": 9, "anchor": "2030-01-31"}
    sid = add_schedule(
        store, "month-end", spec, now=clock.now(), timezone="Europe/Stockholm",
        misfire_grace_time=None,
    )  # fmt: skip
    engine, _ = make_engine(store, clock)
    for _ in range(6 * 100):  # 100 days, four hours at a time (no grace limit: late is fine)
        clock.advance(hours=4)
        await engine.tick()
    fires = [r.scheduled_for for r in runs_of(store, sid)]
    assert all(r.state is RunState.SUCCEEDED for r in runs_of(store, sid))
    assert fires == [
        datetime(2030, 1, 31, 8, tzinfo=UTC),  # 09:00 CET
        datetime(2030, 2, 28, 8, tzinfo=UTC),  # clamped to the last day
        datetime(2030, 3, 31, 7, tzinfo=UTC),  # 09:00 CEST, after the DST change
    ]


async def test_worker_process_lost_is_recovered_not_retried(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    from duetime.models import RunError

    sid = add_schedule(store, "crashy", "0 * * * *", now=clock.now(), job=SLOW, max_attempts=2)
    engine, executor = make_engine(store, clock)
    clock.advance(hours=1)
    await engine.tick()
    (run,) = runs_of(store, sid)
    lost = RunError("WorkerLost", "worker process exited with code -11 (SIGSEGV)")
    executor.complete(run.id, RunState.FAILED, error=lost)
    await engine.tick()
    first, follow = runs_of(store, sid)
    assert first.state is RunState.FAILED
    assert follow.kind is RunKind.RECOVERY
    assert follow.attempt == 1


async def test_sleep_is_zero_for_work_that_became_due_during_the_cycle(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    at = T0 + timedelta(minutes=1)
    add_schedule(store, "due", {"type": "date", "run_at": at.isoformat()}, now=clock.now())
    engine, executor = make_engine(store, clock, lookahead_seconds=1.0, heartbeat_seconds=10.0)
    clock.set(at - seconds(1.5))
    await engine.tick()  # nothing is due yet: the fire is 1.5 s away, the lookahead 1 s
    assert engine._seconds_until_due() == pytest.approx(1.0)  # wakes half a lookahead early
    clock.advance(1.1)  # that instant passed after the cycle looked: due now
    assert engine._seconds_until_due() == 0.0
    await engine.tick()  # fires it and claims it ahead: it waits here for its instant
    (run,) = runs_of(store)
    assert run.state is RunState.RUNNING
    assert executor.submitted == []
    clock.advance(0.3)  # 0.1 s before its instant
    engine.executor.pump()  # what the prefetch timer thread does: not before its instant
    assert executor.submitted == []
    clock.advance(0.1)
    engine.executor.pump()
    assert [r.run_id for r in executor.submitted] == [run.id]


async def test_sleep_ignores_runs_held_back_by_max_instances(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    add_schedule(store, "held", "* * * * *", now=clock.now(), job=SLOW, overlap="buffer_all")
    engine, _ = make_engine(store, clock, heartbeat_seconds=10.0)
    for _ in range(2):
        clock.advance(60)
        await engine.tick()
    assert by_state(runs_of(store)) == {"running": 1, "pending": 1}
    clock.advance(1)
    await engine.tick()
    assert engine._seconds_until_due() > 5  # the pending run waits for a change, no spin


async def test_lookahead_does_not_judge_overlap_before_the_instant(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    spec = {"type": "interval", "seconds": 10, "anchor": T0.isoformat()}
    sid = add_schedule(store, "ahead", spec, now=clock.now(), job=SLOW)
    engine, executor = make_engine(store, clock, lookahead_seconds=1.0)
    clock.set(T0 + seconds(9.5))
    await engine.tick()  # fires T0+10 s ahead: no run is active
    clock.set(T0 + seconds(10))
    await engine.tick()  # starts it
    (first,) = runs_of(store, sid)
    assert first.state is RunState.RUNNING
    clock.set(T0 + seconds(19.2))
    await engine.tick()
    assert len(runs_of(store, sid)) == 1  # T0+20 s is not judged (skipped) a second early
    executor.complete(first.id)
    clock.set(T0 + seconds(19.5))
    await engine.tick()  # writes the outcome
    await engine.tick()  # now fires T0+20 s ahead (and claims it: it waits for its instant)
    second = runs_of(store, sid)[1]
    assert (second.state, second.scheduled_for) == (RunState.RUNNING, T0 + seconds(20))
    assert executor.inflight == {}
    clock.set(T0 + seconds(20))
    await engine.tick()
    clock.set(T0 + seconds(30))
    await engine.tick()  # at the instant the run of T0+20 s is still running: skip
    third = runs_of(store, sid)[2]
    assert (third.state, third.scheduled_for) == (RunState.SKIPPED, T0 + seconds(30))


async def test_buffer_all_fires_ahead_even_with_an_active_run(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    spec = {"type": "interval", "seconds": 10, "anchor": T0.isoformat()}
    sid = add_schedule(store, "queue", spec, now=clock.now(), job=SLOW, overlap="buffer_all")
    engine, _ = make_engine(store, clock, lookahead_seconds=1.0)
    clock.set(T0 + seconds(10))
    await engine.tick()
    clock.set(T0 + seconds(19.5))
    await engine.tick()
    runs = runs_of(store, sid)
    assert [(r.state, r.scheduled_for) for r in runs] == [
        (RunState.RUNNING, T0 + seconds(10)),
        (RunState.PENDING, T0 + seconds(20)),  # kept waiting, made a lookahead early
    ]


async def test_the_request_carries_the_schedule_name_for_ctx_schedule(
    store: SQLAlchemyStore, clock: FakeClock
) -> None:
    sid = add_schedule(store, "named", "* * * * *", now=clock.now())
    engine, executor = make_engine(store, clock)
    clock.advance(60)
    await engine.tick()
    (request,) = executor.submitted
    assert (request.schedule_id, request.schedule_name) == (sid, "named")
    assert runs_of(store, sid)[0].schedule_name == "named"


@pytest.mark.parametrize("gone", ["deleted", "paused"])
async def test_a_failure_of_a_deleted_or_paused_schedule_gets_no_retry(
    store: SQLAlchemyStore, clock: FakeClock, gone: str
) -> None:
    """The outcome is written, but no retry: the schedule stopped while its run ran."""
    sid = add_schedule(store, "flaky", "0 * * * *", now=clock.now(), job=FAIL, max_attempts=3)
    clock.advance(hours=1)
    claim = claims.DirectClaim(worker="w", slots=1, lease_seconds=60)
    (run,) = claims.fire_due(store, now=clock.now(), lookahead_seconds=0, claim=claim)
    assert run.state is RunState.RUNNING
    assert run.lease_token is not None
    if gone == "deleted":
        update_schedule(store, sid, deleted_at=clock.now())
    else:
        update_schedule(store, sid, state="paused")
    failed = Outcome(run_id=run.id, lease_token=run.lease_token, state=RunState.FAILED)
    done = claims.finish_runs(store, [failed], now=clock.now())
    assert done.run_ids == [run.id]
    assert done.follow_ups == 0
    assert [r.state for r in runs_of(store, sid)] == [RunState.FAILED]
