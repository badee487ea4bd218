"""Review findings on the facade: inputs that crashed with non-duetime errors, races, surface."""

from __future__ import annotations

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
