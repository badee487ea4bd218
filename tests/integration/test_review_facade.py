"""Review findings on the facade: inputs that crashed with non-duetime errors, races, surface."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from duetime.clock import FakeClock
from duetime.errors import ValidationError
from duetime.scheduler import Scheduler

START = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def sched(sqlite_url: str) -> Iterator[Scheduler]:
    scheduler = Scheduler(sqlite_url, clock=FakeClock(START))
    yield scheduler
    scheduler.close()


@pytest.mark.parametrize(
    ("field", "value", "zone"),
    [
        ("start_date", "0001-01-01T00:00:00", "Asia/Tokyo"),
        ("end_date", "0001-01-01T00:00:00+14:00", "UTC"),
    ],
)
def test_out_of_range_dates_are_validation_errors(
    sched: Scheduler, field: str, value: str, zone: str
) -> None:
    with pytest.raises(ValidationError) as info:
        sched.add_schedule("edge", "duetime.noop", "* * * * *", timezone=zone, **{field: value})
    assert info.value.field == field


def test_cleanup_with_huge_age_is_a_validation_error(sched: Scheduler) -> None:
    with pytest.raises(ValidationError) as info:
        sched.cleanup_history(older_than_days=10**6)
    assert info.value.field == "older_than_days"


def test_engines_publishing_job_types_at_once_do_not_collide(db_url: str) -> None:
    """Publication was update-then-insert: two engines starting together hit the unique key."""
    schedulers = [Scheduler(db_url, clock=FakeClock(START)) for _ in range(8)]
    barrier = threading.Barrier(len(schedulers))
    errors: list[BaseException] = []

    def publish(s: Scheduler) -> None:
        barrier.wait(timeout=10)
        try:
            s.publish_job_types(published_by="engine")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for s in schedulers:
        s.close()
    assert errors == []
