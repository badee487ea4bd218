"""Review finding: NUL characters in text reached PostgreSQL, whose DataError became a 500."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from duetime.clock import FakeClock
from duetime.errors import ValidationError
from duetime.scheduler import Scheduler


@pytest.fixture
def sched(db_url: str) -> Iterator[Scheduler]:
    scheduler = Scheduler(db_url, clock=FakeClock(datetime(2030, 1, 1, tzinfo=UTC)))
    yield scheduler
    scheduler.close()


CALLS: dict[str, Callable[[Scheduler], Any]] = {
    "description": lambda s: s.add_schedule("a", "duetime.noop", "0 3 * * *", description="a\0"),
    "job": lambda s: s.add_schedule("a", "duetime.no\0op", "0 3 * * *"),
    "get_schedule": lambda s: s.get_schedule("a\0"),
    "get_run": lambda s: s.get_run("r\0"),
    "cancel": lambda s: s.cancel("r\0"),
    "list_by_job": lambda s: s.list_schedules(job="x\0"),
    "list_by_prefix": lambda s: s.list_schedules(name_prefix="x\0"),
    "api_key_name": lambda s: s.create_api_key("viewer", name="k\0"),
    "webhook_get": lambda s: s.get_webhook("w\0"),
}


@pytest.mark.parametrize("call", list(CALLS), ids=list(CALLS))
def test_nul_characters_are_validation_errors(sched: Scheduler, call: str) -> None:
    with pytest.raises(ValidationError):
        CALLS[call](sched)


@pytest.mark.parametrize("field", ["description", "job"])
def test_nul_in_schedule_fields_names_the_field(sched: Scheduler, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        CALLS[field](sched)
    assert info.value.field == field
