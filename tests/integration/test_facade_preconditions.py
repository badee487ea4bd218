"""Facade: expected_version on pause/resume/delete/trigger, and created_at windows on lists."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from duetime.clock import FakeClock
from duetime.errors import NotFoundError, ValidationError, VersionMismatchError
from duetime.models import ScheduleState
from duetime.scheduler import AsyncScheduler, Scheduler

START = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def sched(db_url: str, clock: FakeClock) -> Iterator[Scheduler]:
    scheduler = Scheduler(db_url, clock=clock)
    yield scheduler
    scheduler.close()


def _bump(s: Scheduler, name: str = "nightly") -> None:
    s.update_schedule(name, priority=s.get_schedule(name).priority + 1)


def _run_count(s: Scheduler) -> int:
    return len(s.get_runs(limit=500).items)


def test_stale_version_changes_nothing(sched: Scheduler) -> None:
    sched.add_schedule("nightly", "duetime.noop", "0 3 * * *")
    _bump(sched)  # version 2
    actions = [
        lambda: sched.pause("nightly", expected_version=1),
        lambda: sched.resume("nightly", expected_version=1),
        lambda: sched.trigger("nightly", expected_version=1),
        lambda: sched.delete_schedule("nightly", expected_version=1),
    ]
    for action in actions:
        with pytest.raises(VersionMismatchError) as caught:
            action()
        assert caught.value.current_version == 2
    current = sched.get_schedule("nightly")
    assert (current.version, current.state) == (2, ScheduleState.ACTIVE)
    assert _run_count(sched) == 0


def test_current_version_acts(sched: Scheduler) -> None:
    sched.add_schedule("nightly", "duetime.noop", "0 3 * * *")
    assert sched.pause("nightly", expected_version=1).state == ScheduleState.PAUSED
    assert sched.resume("nightly", expected_version=2).state == ScheduleState.ACTIVE
    assert sched.trigger("nightly", expected_version=3).schedule_id is not None
    sched.delete_schedule("nightly", expected_version=3)
    with pytest.raises(NotFoundError):
        sched.get_schedule("nightly")


def test_invalid_expected_version_names_the_field(sched: Scheduler) -> None:
    sched.add_schedule("nightly", "duetime.noop", "0 3 * * *")
    with pytest.raises(ValidationError) as caught:
        sched.pause("nightly", expected_version=0)
    assert caught.value.field == "expected_version"


def test_trigger_checks_the_version_when_inserting_the_run(
    sched: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edit after trigger was asked for, before its write, is a mismatch, not a run of v1."""
    sched.add_schedule("nightly", "duetime.noop", "0 3 * * *")
    insert = sched.store.insert_schedule_runs

    def edit_then_insert(*args: Any, **kwargs: Any) -> Any:
        _bump(sched)  # lands after the request was prepared, before its transaction
        return insert(*args, **kwargs)

    monkeypatch.setattr(sched.store, "insert_schedule_runs", edit_then_insert)
    with pytest.raises(VersionMismatchError) as caught:
        sched.trigger("nightly", expected_version=1)
    assert caught.value.current_version == 2
    assert _run_count(sched) == 0


def test_async_scheduler_takes_expected_version(sched: Scheduler) -> None:
    sched.add_schedule("nightly", "duetime.noop", "0 3 * * *")
    facade = AsyncScheduler.wrap(sched)

    async def scenario() -> None:
        with pytest.raises(VersionMismatchError):
            await facade.pause("nightly", expected_version=9)
        assert (await facade.pause("nightly", expected_version=1)).version == 2
        assert (await facade.resume("nightly", expected_version=2)).version == 3
        await facade.trigger("nightly", expected_version=3)
        with pytest.raises(VersionMismatchError):
            await facade.delete_schedule("nightly", expected_version=2)
        await facade.delete_schedule("nightly", expected_version=3)

    asyncio.run(scenario())
    assert _run_count(sched) == 1


def test_list_schedules_created_window(sched: Scheduler, clock: FakeClock) -> None:
    for name in ("a", "b", "c"):
        sched.add_schedule(name, "duetime.noop", "0 3 * * *")
        clock.advance(hours=1)

    def names(**window: Any) -> list[str]:
        return [s.name for s in sched.list_schedules(**window).items]

    assert names(since=START + timedelta(hours=1)) == ["b", "c"]
    assert names(until=START + timedelta(hours=1)) == ["a"]  # until is exclusive
    assert names(since=START, until=START + timedelta(hours=2)) == ["a", "b"]
    with pytest.raises(ValidationError) as caught:
        sched.list_schedules(until=datetime(2030, 1, 1))  # naive on purpose
    assert caught.value.field == "until"


def test_get_runs_by_job_and_until(sched: Scheduler, clock: FakeClock) -> None:
    sched.add_schedule("quiet", "duetime.noop", "0 3 * * *")
    sched.add_schedule("nap", "duetime.sleep", "0 4 * * *", parameters={"seconds": 0})
    first = sched.trigger("quiet")
    clock.advance(minutes=5)
    sched.trigger("nap")
    later = sched.trigger("quiet")
    assert [r.id for r in sched.get_runs(job="duetime.noop").items] == [later.id, first.id]
    assert [r.job for r in sched.get_runs(job="duetime.sleep").items] == ["duetime.sleep"]
    before = sched.get_runs(until=START + timedelta(minutes=5)).items
    assert [r.id for r in before] == [first.id]
    window = sched.get_runs(job="duetime.noop", since=START + timedelta(minutes=1))
    assert [r.id for r in window.items] == [later.id]
    with pytest.raises(ValidationError) as caught:
        sched.get_runs(until="2030-01-01")  # type: ignore[arg-type]
    assert caught.value.field == "until"
