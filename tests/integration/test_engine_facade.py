"""The engine under the facade's lifecycle operations (pause, resume, edit, delete), FakeClock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from test_engine_helpers import OK, SLOW, FakeExecutor, make_settings, runs_of

from duetime.clock import FakeClock
from duetime.engine import Engine
from duetime.jobs.registry import JobRegistry, job
from duetime.models import RunKind, RunState
from duetime.scheduler import Scheduler

T0 = datetime(2030, 1, 1, tzinfo=UTC)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _registry() -> JobRegistry:
    registry = JobRegistry()
    for name in (OK, SLOW):
        job(name, registry=registry)(lambda: None)
    return registry


@pytest.fixture
def setup(db_url: str) -> Iterator[tuple[Scheduler, Engine, FakeExecutor, FakeClock]]:
    clock = FakeClock(T0)
    registry = _registry()
    scheduler = Scheduler(database_url=db_url, clock=clock, registry=registry, executor="thread")
    executor = FakeExecutor(clock)
    engine = Engine(
        scheduler.store, registry=registry, executor=executor, clock=clock, settings=make_settings()
    )
    try:
        yield scheduler, engine, executor, clock
    finally:
        scheduler.close()


async def test_pause_resume_edit_delete_through_the_facade(
    setup: tuple[Scheduler, Engine, FakeExecutor, FakeClock],
) -> None:
    scheduler, engine, _, clock = setup
    sid = scheduler.add_schedule("grid", OK, {"type": "interval", "minutes": 10}).id
    clock.advance(minutes=10)
    await engine.tick()
    scheduler.pause("grid")
    clock.advance(hours=3, minutes=2)
    await engine.tick()
    assert len(scheduler.get_runs(schedule="grid").items) == 1
    resumed = scheduler.resume("grid")
    assert resumed.next_run_at == T0 + timedelta(hours=3, minutes=20)  # the grid, after now
    await engine.tick()
    assert len(scheduler.get_runs(schedule="grid").items) == 1  # no burst of old fires
    clock.advance(minutes=8)
    await engine.tick()
    assert len(scheduler.get_runs(schedule="grid").items) == 2
    scheduler.update_schedule("grid", trigger="*/5 * * * *")
    clock.advance(minutes=5)
    await engine.tick()
    newest = scheduler.get_runs(schedule="grid").items[0]
    assert newest.scheduled_for == T0 + timedelta(hours=3, minutes=25)
    scheduler.delete_schedule("grid")
    clock.advance(hours=1)
    await engine.tick()
    runs = runs_of(scheduler.store, sid)
    assert len(runs) == 3  # soft-deleted: history kept, nothing fired after the delete
    assert max(r.scheduled_for for r in runs) == T0 + timedelta(hours=3, minutes=25)


async def test_pause_cancels_pending_and_run_now_works_while_paused(
    setup: tuple[Scheduler, Engine, FakeExecutor, FakeClock],
) -> None:
    scheduler, engine, executor, clock = setup
    scheduler.add_schedule("long", SLOW, "* * * * *", overlap="buffer_all")
    for _ in range(2):
        clock.advance(60)
        await engine.tick()
    states = sorted(r.state.value for r in scheduler.get_runs(schedule="long").items)
    assert states == ["pending", "running"]
    scheduler.pause("long")
    states = sorted(r.state.value for r in scheduler.get_runs(schedule="long").items)
    assert states == ["cancelled", "running"]  # running runs finish
    manual = scheduler.trigger("long")
    executor.complete_all()
    await engine.tick()  # writes the outcome: the slot (max_instances 1) frees
    await engine.tick()
    assert scheduler.get_run(manual.id).state is RunState.RUNNING
    assert scheduler.get_run(manual.id).kind is RunKind.MANUAL
