"""DateTrigger: one fire at run_at, then never again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from duetime.triggers.date import DateTrigger, date_in_past_ok

RUN_AT = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)


def test_fires_once_then_none() -> None:
    trigger = DateTrigger(RUN_AT)
    assert trigger.next_fire_time(RUN_AT - timedelta(days=30)) == RUN_AT
    assert trigger.next_fire_time(RUN_AT - timedelta(microseconds=1)) == RUN_AT
    assert trigger.next_fire_time(RUN_AT) is None  # strictly after: it has fired
    assert trigger.next_fire_time(RUN_AT + timedelta(days=1)) is None


def test_naive_run_at_is_read_in_the_zone() -> None:
    trigger = DateTrigger(datetime(2026, 6, 1, 9, 30), "America/New_York")
    assert trigger.run_at == datetime(2026, 6, 1, 13, 30, tzinfo=UTC)
    assert trigger.run_at.tzinfo is UTC


def test_naive_run_at_in_a_gap_fires_at_the_gap_end() -> None:
    # 2026-03-29 02:30 does not exist in Stockholm; the clock jumps at 01:00 UTC.
    trigger = DateTrigger(datetime(2026, 3, 29, 2, 30), "Europe/Stockholm")
    assert trigger.run_at == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_outside_the_window_it_never_fires() -> None:
    before = DateTrigger(RUN_AT, start_at=RUN_AT + timedelta(seconds=1))
    assert before.next_fire_time(RUN_AT - timedelta(days=1)) is None
    after = DateTrigger(RUN_AT, end_at=RUN_AT - timedelta(seconds=1))
    assert after.next_fire_time(RUN_AT - timedelta(days=1)) is None
    inside = DateTrigger(RUN_AT, start_at=RUN_AT, end_at=RUN_AT)
    assert inside.next_fire_time(RUN_AT - timedelta(days=1)) == RUN_AT


def test_to_spec_and_describe() -> None:
    trigger = DateTrigger(datetime(2026, 6, 1, 11, 30), "Europe/Stockholm", jitter=0)
    assert trigger.to_spec() == {
        "version": 1,
        "type": "date",
        "run_at": "2026-06-01T09:30:00+00:00",
    }
    assert trigger.describe() == "once at 2026-06-01T09:30:00+00:00"
    assert DateTrigger(RUN_AT, jitter=2.5).to_spec()["jitter"] == 2.5


@pytest.mark.parametrize(
    ("run_at_offset", "grace", "ok"),
    [
        (timedelta(seconds=10), 60, True),  # future
        (timedelta(seconds=-30), 60, True),  # past, within grace
        (timedelta(seconds=-60), 60, True),  # exactly at the grace limit
        (timedelta(seconds=-61), 60, False),  # past grace
        (timedelta(days=-365), None, True),  # no limit
        (timedelta(seconds=-1), 0, False),
    ],
)
def test_date_in_past_ok(run_at_offset: timedelta, grace: float | None, ok: bool) -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert date_in_past_ok(now + run_at_offset, now, grace) is ok
