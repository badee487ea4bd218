"""Facade operations: status, retention, recalculation, firing, the engine seam, async, schema."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from duetime.clock import FakeClock
from duetime.errors import SchemaOutdatedError, ValidationError
from duetime.jobs.registry import JobRegistry, default_registry, job
from duetime.models import RunKind, RunState
from duetime.scheduler import AsyncScheduler, Scheduler
from duetime.store import rows, tables

START = datetime(2030, 1, 1, tzinfo=UTC)


def make_registry(done: threading.Event | None = None) -> JobRegistry:
    registry = JobRegistry()
    for job_type in default_registry.all():
        registry.register(job_type)

    @job("ops.echo", registry=registry)
    def echo(value: int = 0) -> dict[str, int]:
        if done is not None:
            done.set()
        return {"value": value}

    return registry


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def sched(db_url: str, clock: FakeClock) -> Iterator[Scheduler]:
    scheduler = Scheduler(db_url, clock=clock, registry=make_registry(), executor="thread")
    yield scheduler
    scheduler.close()


def insert_runs(
    s: Scheduler, schedule_name: str, count: int, *, created_at: datetime, state: RunState
) -> list[str]:
    schedule = s.get_schedule(schedule_name)
    ids = []
    with s.store.write() as conn:
        for index in range(count):
            at = created_at + timedelta(seconds=index)
            values = rows.new_run_values(
                schedule=schedule,
                tenant=schedule.tenant,
                job=schedule.job,
                parameters={},
                kind=RunKind.MANUAL,
                scheduled_for=at,
                available_at=at,
                now=at,
                max_attempts=1,
                timeout=None,
                priority=0,
                executor="default",
                max_recoveries=3,
                retry_backoff=10,
                state=state,
            )
            conn.execute(sa.insert(tables.runs).values(**values))
            ids.append(values["id"])
    return ids


def test_cleanup_keeps_recent_runs_and_the_last_n_per_schedule(
    sched: Scheduler, clock: FakeClock
) -> None:
    sched.add_schedule("busy", "ops.echo", "@hourly")
    sched.add_schedule("quiet", "ops.echo", "@hourly")
    sched.add_schedule("gone", "ops.echo", "@hourly")
    old = START - timedelta(days=60)
    busy_old = insert_runs(sched, "busy", 130, created_at=old, state=RunState.SUCCEEDED)
    insert_runs(sched, "busy", 5, created_at=START - timedelta(days=1), state=RunState.FAILED)
    insert_runs(sched, "busy", 3, created_at=old, state=RunState.PENDING)
    insert_runs(sched, "quiet", 20, created_at=old, state=RunState.SUCCEEDED)
    insert_runs(sched, "gone", 10, created_at=old, state=RunState.SUCCEEDED)
    sched.delete_schedule("gone")
    deleted = sched.store.cleanup_history(
        now=START, older_than_days=30, keep_last=100, batch_size=7
    )
    # busy: 135 finished, keep the newest 100 (5 recent + 95 old) -> 35 old go; gone: all 10
    assert deleted == 35 + 10
    remaining = {r.id for r in sched.get_runs(schedule="busy", limit=500).items}
    assert set(busy_old[:35]).isdisjoint(remaining)
    assert set(busy_old[35:]) <= remaining
    assert len(remaining) == 95 + 5 + 3  # pending runs are never deleted
    assert len(sched.get_runs(schedule="quiet", limit=500).items) == 20
    assert sched.cleanup_history() == 0  # settings defaults: 30 days, keep 100
    assert sched.cleanup_history(older_than_days=0, keep_last=0) == 95 + 5 + 20
    with pytest.raises(ValidationError) as info:
        sched.cleanup_history(keep_last=-1)
    assert info.value.field == "keep_last"


def test_cleanup_purges_deleted_schedules_without_history(
    sched: Scheduler, clock: FakeClock
) -> None:
    created = sched.add_schedule("tmp", "ops.echo", "@hourly")
    sched.delete_schedule("tmp")
    clock.advance(days=31)
    sched.cleanup_history()
    with sched.store.read() as conn:
        left = conn.execute(
            sa.select(tables.schedules.c.id).where(tables.schedules.c.id == created.id)
        ).all()
    assert left == []


def test_status_reports_counts_and_upcoming_fires(sched: Scheduler, clock: FakeClock) -> None:
    sched.add_schedule("a", "ops.echo", "0 3 * * *")
    sched.add_schedule("b", "ops.echo", "0 1 * * *")
    sched.add_schedule("c", "ops.echo", "@hourly", enabled=False)
    sched.trigger("a")
    insert_runs(sched, "a", 2, created_at=START - timedelta(hours=1), state=RunState.RUNNING)
    failed = insert_runs(
        sched, "b", 3, created_at=START - timedelta(hours=2), state=RunState.FAILED
    )
    with sched.store.write() as conn:
        conn.execute(
            sa.update(tables.runs)
            .where(tables.runs.c.id.in_(failed))
            .values(finished_at=START - timedelta(hours=1))
        )
    sched.store.register_instance(
        {
            "id": "engine-1",
            "hostname": "h",
            "pid": 1,
            "executor": "thread",
            "concurrency": 5,
            "version": "0.1.0",
            "started_at": START,
            "heartbeat_at": START,
            "stopped_at": None,
        }
    )
    status = sched.status()
    assert status["schedules"] == {"active": 2, "paused": 1, "completed": 0}
    assert (status["queue_depth"], status["queue_due"], status["running"]) == (1, 1, 2)
    assert status["failures_24h"] == 3
    assert [f["name"] for f in status["next_fires"]] == ["b", "a"]
    assert status["instances"][0]["id"] == "engine-1"
    assert status["instances"][0]["alive"] is True
    clock.advance(minutes=5)
    assert sched.status()["instances"][0]["alive"] is False
    assert sched.for_tenant("other").status()["schedules"]["active"] == 0


def test_recalculate_leaves_due_schedules_and_fixes_others(
    sched: Scheduler, clock: FakeClock
) -> None:
    sched.add_schedule("due", "ops.echo", "0 1 * * *")
    wrong = sched.add_schedule("wrong", "ops.echo", "0 3 * * *")
    s = tables.schedules
    with sched.store.write() as conn:
        conn.execute(
            sa.update(s).where(s.c.id == wrong.id).values(next_run_at=START + timedelta(days=9))
        )
    clock.advance(hours=2)  # "due" (01:00) is due and not fired yet
    assert sched.recalculate_next_runs() == 1
    assert sched.get_schedule("wrong").next_run_at == START.replace(hour=3)
    assert sched.get_schedule("wrong").version == wrong.version  # housekeeping, not an edit
    assert sched.get_schedule("due").next_run_at == START.replace(hour=1)
    assert sched.recalculate_next_runs() == 0


def test_check_schedules_fires_due_schedules(sched: Scheduler, clock: FakeClock) -> None:
    created = sched.add_schedule("tick", "ops.echo", {"interval_minutes": 10})
    assert sched.check_schedules() == []
    clock.advance(minutes=10)
    [run] = sched.check_schedules()
    assert (run.kind, run.schedule_id, run.scheduled_for) == (
        "scheduled",
        created.id,
        START + timedelta(minutes=10),
    )
    assert sched.get_schedule("tick").next_run_at == START + timedelta(minutes=20)


def test_run_pending_without_engine_runs_due_work_to_completion(
    sched: Scheduler, clock: FakeClock
) -> None:
    sched.add_schedule("tick", "ops.echo", {"interval_minutes": 10}, parameters={"value": 4})
    clock.advance(minutes=10)
    [run] = sched.run_pending()
    assert run.state == RunState.SUCCEEDED
    assert run.result == {"value": 4}
    assert sched.run_pending() == []
    assert all(i["stopped_at"] is not None for i in sched.store.list_instances())


def test_background_engine_runs_a_manual_run(db_url: str) -> None:
    done = threading.Event()
    with Scheduler(db_url, registry=make_registry(done), executor="thread") as sched:
        assert sched.engine_running
        run = sched.trigger(sched.add_schedule("now", "ops.echo", "@yearly").id)
        assert done.wait(30)
        finished = _wait_for_state(sched, run.id)
        assert finished.state == RunState.SUCCEEDED
    assert not sched.engine_running


def _wait_for_state(sched: Scheduler, run_id: str) -> Any:
    """Wait (up to 30 s) for the run to reach a terminal state, woken by store changes."""
    changed = threading.Event()
    sched.store.add_change_listener(changed.set)
    for _ in range(300):
        run = sched.get_run(run_id)
        if run.state.is_terminal:
            return run
        changed.wait(0.1)
        changed.clear()
    raise AssertionError(f"run {run_id} did not finish")


def test_async_scheduler_mirrors_the_sync_surface(db_url: str, clock: FakeClock) -> None:
    async def scenario() -> None:
        asched = AsyncScheduler(db_url, clock=clock, registry=make_registry(), executor="thread")
        try:
            created = await asched.add_schedule("a", "ops.echo", "@hourly")
            assert (await asched.get_schedule("a")).id == created.id
            assert (await asched.pause("a")).state == "paused"
            assert (await asched.resume("a")).state == "active"
            run = await asched.trigger("a", {"value": 2})
            assert (await asched.get_run(run.id)).parameters == {"value": 2}
            assert [s.name for s in (await asched.list_schedules()).items] == ["a"]
            assert len((await asched.get_runs(schedule="a")).items) == 1
            assert len(await asched.next_fire_times("a", 2)) == 2
            assert (await asched.cancel(run.id)).state == "cancelled"
            assert (await asched.status())["schedules"]["active"] == 1
            clock.advance(hours=1)
            [fired] = await asched.run_pending()
            assert fired.state == RunState.SUCCEEDED
            other = asched.for_tenant("x")
            assert (await other.list_schedules()).items == []
            assert (await asched.delete_schedule("a")).deleted_at is not None
        finally:
            await asched.close()

    asyncio.run(scenario())


def test_facade_changes_wake_in_process_listeners(sched: Scheduler) -> None:
    woken: list[int] = []
    sched.store.add_change_listener(lambda: woken.append(1))
    sched.add_schedule("a", "ops.echo", "@hourly")
    sched.pause("a")
    sched.trigger("a")
    assert len(woken) == 3


def test_scheduler_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    with pytest.raises(SchemaOutdatedError, match="duetime init"):
        Scheduler(url)
    assert not (tmp_path / "fresh.db").exists()  # checking never creates a stray file
    (tmp_path / "fresh.db").touch()
    with pytest.raises(SchemaOutdatedError, match=r"no duetime schema.*duetime init"):
        Scheduler(url)
    with Scheduler(url, migrate=True, executor="thread") as sched:
        assert sched.list_schedules().items == []


RUN_FOREVER = """
import sys
from duetime.scheduler import Scheduler
scheduler = Scheduler(sys.argv[1], executor="thread")
scheduler.run_forever()
scheduler.close()
print("stopped cleanly")
"""


@pytest.mark.slow
def test_run_forever_stops_gracefully_on_sigterm(sqlite_url: str, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    watcher = Scheduler(sqlite_url, executor="thread")
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_FOREVER, sqlite_url],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pause = threading.Event()
        for _ in range(300):  # up to 30 s for the engine to register itself
            if watcher.store.list_instances() or proc.poll() is not None:
                break
            pause.wait(0.1)
        assert watcher.store.list_instances(), proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        watcher.close()
    assert proc.returncode == 0, err
    assert "stopped cleanly" in out
    after = Scheduler(sqlite_url)
    [instance] = after.store.list_instances()
    after.close()
    assert instance["stopped_at"] is not None


def test_cleanup_is_scoped_to_the_tenant(sched: Scheduler) -> None:
    acme = sched.for_tenant("acme")
    acme.add_schedule("theirs", "ops.echo", "@hourly")
    sched.add_schedule("ours", "ops.echo", "@hourly")
    old = START - timedelta(days=90)
    insert_runs(acme, "theirs", 4, created_at=old, state=RunState.SUCCEEDED)
    insert_runs(sched, "ours", 4, created_at=old, state=RunState.SUCCEEDED)
    assert sched.cleanup_history(keep_last=0) == 4
    assert len(acme.get_runs().items) == 4
    assert sched.for_tenant("*").cleanup_history(keep_last=1) == 3
