"""CalendarIntervalTrigger: calendar steps from an anchor at a wall-clock time."""

from __future__ import annotations

import calendar as cal
import itertools
from datetime import UTC, date, datetime, time, timedelta

import pytest
from helpers_triggers import fires
from hypothesis import given, settings
from hypothesis import strategies as st

from duetime.errors import InvalidTriggerError
from duetime.triggers.calendar import CalendarIntervalTrigger
from duetime.triggers.tz import get_zone, resolve_wall, to_wall

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def local(trigger: CalendarIntervalTrigger, instants: list[datetime]) -> list[datetime]:
    return [to_wall(t, trigger.zone) for t in instants]


def daily_0230_stockholm(policy: str) -> CalendarIntervalTrigger:
    """Daily at 02:30 Stockholm time: the wall time both DST changes of 2026 hit."""
    return CalendarIntervalTrigger(
        days=1,
        hour=2,
        minute=30,
        anchor=date(2026, 3, 1),
        timezone="Europe/Stockholm",
        dst_policy=policy,
    )


def test_month_end_clamps_from_the_anchor_over_14_months() -> None:
    trigger = CalendarIntervalTrigger(months=1, hour=3, anchor=date(2028, 1, 31))
    got = [t.date() for t in fires(trigger, EPOCH, 14)]
    assert got == [
        date(2028, 1, 31),
        date(2028, 2, 29),  # leap year
        date(2028, 3, 31),  # back to 31: counted from the anchor, not cumulative
        date(2028, 4, 30),
        date(2028, 5, 31),
        date(2028, 6, 30),
        date(2028, 7, 31),
        date(2028, 8, 31),
        date(2028, 9, 30),
        date(2028, 10, 31),
        date(2028, 11, 30),
        date(2028, 12, 31),
        date(2029, 1, 31),
        date(2029, 2, 28),
    ]
    assert {t.time() for t in fires(trigger, EPOCH, 14)} == {time(3, 0)}


def test_yearly_from_feb_29() -> None:
    trigger = CalendarIntervalTrigger(years=1, anchor=date(2024, 2, 29))
    got = [t.date() for t in fires(trigger, EPOCH, 6)]
    assert got == [
        date(2024, 2, 29),
        date(2025, 2, 28),
        date(2026, 2, 28),
        date(2027, 2, 28),
        date(2028, 2, 29),
        date(2029, 2, 28),
    ]


def test_weekly_on_the_anchor_weekday() -> None:
    trigger = CalendarIntervalTrigger(weeks=1, hour=8, minute=15, anchor=date(2026, 1, 5))
    got = fires(trigger, datetime(2026, 3, 1, tzinfo=UTC), 5)
    assert [t.weekday() for t in got] == [0] * 5  # Mondays
    assert got[0] == datetime(2026, 3, 2, 8, 15, tzinfo=UTC)
    assert all(b - a == timedelta(weeks=1) for a, b in itertools.pairwise(got))


def test_every_two_months_and_three_days() -> None:
    trigger = CalendarIntervalTrigger(months=2, days=3, anchor=date(2026, 1, 30))
    got = [t.date() for t in fires(trigger, EPOCH, 3)]
    # k=1: Mar 30 + 3 days; k=2: May 30 + 6 days
    assert got == [date(2026, 1, 30), date(2026, 4, 2), date(2026, 6, 5)]


def test_wall_time_is_kept_across_dst() -> None:
    trigger = CalendarIntervalTrigger(
        days=1, hour=9, anchor=date(2026, 3, 27), timezone="Europe/Stockholm"
    )
    got = fires(trigger, EPOCH, 4)
    assert [t.hour for t in got] == [8, 8, 7, 7]  # UTC moves by the offset change
    assert [w.hour for w in local(trigger, got)] == [9, 9, 9, 9]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        # 02:30 on 2026-03-29 does not exist; it fires at 03:00 CEST (01:00 UTC) under "cron".
        ("cron", ["03-28 01:30", "03-29 01:00", "03-30 00:30"]),
        ("instant", ["03-28 01:30", "03-30 00:30", "03-31 00:30"]),
        ("once", ["03-28 01:30", "03-30 00:30", "03-31 00:30"]),
    ],
)
def test_stockholm_gap_per_policy(policy: str, expected: list[str]) -> None:
    trigger = daily_0230_stockholm(policy)
    got = fires(trigger, datetime(2026, 3, 27, 12, tzinfo=UTC), 3)
    assert [t.strftime("%m-%d %H:%M") for t in got] == expected


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        # 02:30 on 2026-10-25 happens twice: 00:30 UTC (CEST) and 01:30 UTC (CET).
        ("cron", ["10-24 00:30", "10-25 00:30", "10-26 01:30"]),
        ("instant", ["10-24 00:30", "10-25 00:30", "10-25 01:30", "10-26 01:30"]),
        ("once", ["10-24 00:30", "10-25 00:30", "10-26 01:30"]),
    ],
)
def test_stockholm_overlap_per_policy(policy: str, expected: list[str]) -> None:
    trigger = daily_0230_stockholm(policy)
    got = fires(trigger, datetime(2026, 10, 23, 12, tzinfo=UTC), len(expected))
    assert [t.strftime("%m-%d %H:%M") for t in got] == expected


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        # Santiago skips 00:00–01:00 on 2026-09-06: midnight fires at 01:00 -03 (04:00 UTC).
        ("cron", ["09-05 04:00", "09-06 04:00", "09-07 03:00"]),
        ("instant", ["09-05 04:00", "09-07 03:00", "09-08 03:00"]),
        ("once", ["09-05 04:00", "09-07 03:00", "09-08 03:00"]),
    ],
)
def test_santiago_midnight_gap_per_policy(policy: str, expected: list[str]) -> None:
    trigger = CalendarIntervalTrigger(
        days=1, anchor=date(2026, 1, 1), timezone="America/Santiago", dst_policy=policy
    )
    got = fires(trigger, datetime(2026, 9, 4, 12, tzinfo=UTC), 3)
    assert [t.strftime("%m-%d %H:%M") for t in got] == expected


def test_santiago_overlap_before_midnight() -> None:
    # 23:30 on 2026-04-04 happens twice (02:30 and 03:30 UTC on 04-05).
    def run(policy: str) -> list[str]:
        trigger = CalendarIntervalTrigger(
            days=1,
            hour=23,
            minute=30,
            anchor=date(2026, 1, 1),
            timezone="America/Santiago",
            dst_policy=policy,
        )
        got = fires(trigger, datetime(2026, 4, 5, 0, tzinfo=UTC), 2)
        return [t.strftime("%m-%d %H:%M") for t in got]

    assert run("cron") == ["04-05 02:30", "04-06 03:30"]
    assert run("instant") == ["04-05 02:30", "04-05 03:30"]
    assert run("once") == ["04-05 02:30", "04-06 03:30"]


def test_a_skipped_day_fires_once_at_its_end_under_cron() -> None:
    # Pacific/Apia skipped 2011-12-30 entirely (UTC-10 → UTC+14).
    trigger = CalendarIntervalTrigger(
        days=1, hour=10, anchor=date(2011, 12, 1), timezone="Pacific/Apia"
    )
    got = fires(trigger, datetime(2011, 12, 29, 12, tzinfo=UTC), 3)
    assert local(trigger, got) == [
        datetime(2011, 12, 29, 10),
        datetime(2011, 12, 31, 0),  # the lost 12-30 10:00, at the first instant after the gap
        datetime(2011, 12, 31, 10),
    ]


def test_start_end_and_strictly_after() -> None:
    trigger = CalendarIntervalTrigger(
        days=1,
        anchor=date(2026, 1, 1),
        start_at=datetime(2026, 1, 3, tzinfo=UTC),
        end_at=datetime(2026, 1, 5, tzinfo=UTC),
    )
    got = fires(trigger, EPOCH, 10)
    assert [t.day for t in got] == [3, 4, 5]
    assert trigger.next_fire_time(datetime(2026, 1, 4, tzinfo=UTC)) == datetime(
        2026, 1, 5, tzinfo=UTC
    )


def test_far_future_ends_with_none() -> None:
    trigger = CalendarIntervalTrigger(years=50, anchor=date(9900, 1, 1))
    assert trigger.next_fire_time(datetime(9950, 6, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, None),
        ({"months": -1}, "months"),
        ({"months": 1.5}, "months"),
        ({"days": "1"}, "days"),
        ({"years": 101}, None),
        ({"days": 1, "hour": 24}, "hour"),
        ({"days": 1, "minute": 60}, "minute"),
        ({"days": 1, "second": -1}, "second"),
        ({"days": 1, "dst_policy": "never"}, "dst_policy"),
        ({"days": 1, "jitter": -1}, "jitter"),
    ],
)
def test_bad_fields_are_refused(kwargs: dict[str, object], field: str | None) -> None:
    with pytest.raises(InvalidTriggerError) as info:
        CalendarIntervalTrigger(**kwargs, anchor=date(2026, 1, 1))  # type: ignore[arg-type]
    assert info.value.field == field


def test_anchor_must_be_a_date() -> None:
    with pytest.raises(InvalidTriggerError) as info:
        CalendarIntervalTrigger(days=1, anchor=datetime(2026, 1, 1, tzinfo=UTC))
    assert info.value.field == "anchor"


def test_to_spec_and_describe() -> None:
    trigger = CalendarIntervalTrigger(
        months=1, hour=3, anchor=date(2026, 1, 31), timezone="Europe/Stockholm"
    )
    assert trigger.to_spec() == {
        "version": 1,
        "type": "calendar",
        "years": 0,
        "months": 1,
        "weeks": 0,
        "days": 0,
        "hour": 3,
        "minute": 0,
        "second": 0,
        "anchor": "2026-01-31",
        "dst_policy": "cron",
    }
    assert trigger.describe() == "every 1 month from 2026-01-31 at 03:00:00 Europe/Stockholm"


def reference_fires(
    trigger: CalendarIntervalTrigger, after: datetime, count: int
) -> list[datetime]:
    """Brute force: enumerate k = 0, 1, 2, … with plain calendar arithmetic."""
    a, s = trigger.anchor, trigger.steps
    out: list[datetime] = []
    k = 0
    while len(out) < count:
        months = a.month - 1 + k * (12 * s["years"] + s["months"])
        year, month = a.year + months // 12, months % 12 + 1
        day = min(a.day, cal.monthrange(year, month)[1])
        d = date(year, month, day) + timedelta(days=k * (7 * s["weeks"] + s["days"]))
        res = resolve_wall(datetime.combine(d, trigger.time), trigger.zone)
        if res.is_gap:
            candidates = [res.gap_end] if trigger.dst_policy == "cron" else []
        elif res.is_overlap and trigger.dst_policy != "instant":
            candidates = [res.instants[0]]
        else:
            candidates = list(res.instants)
        out.extend(
            t for t in candidates if t is not None and t > after and (not out or t > out[-1])
        )
        k += 1
    return out


@settings(max_examples=150, deadline=None)
@given(
    years=st.integers(0, 2),
    months=st.integers(0, 14),
    weeks=st.integers(0, 3),
    days=st.integers(0, 40),
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 30, 59]),
    anchor=st.dates(min_value=date(1990, 1, 1), max_value=date(2040, 12, 31)),
    after_days=st.integers(-400, 4000),
    zone=st.sampled_from(["UTC", "Europe/Stockholm", "America/Santiago", "Australia/Lord_Howe"]),
    policy=st.sampled_from(["cron", "instant", "once"]),
)
def test_matches_brute_force(
    years: int,
    months: int,
    weeks: int,
    days: int,
    hour: int,
    minute: int,
    anchor: date,
    after_days: int,
    zone: str,
    policy: str,
) -> None:
    if years == months == weeks == days == 0:
        days = 1
    trigger = CalendarIntervalTrigger(
        years=years,
        months=months,
        weeks=weeks,
        days=days,
        hour=hour,
        minute=minute,
        anchor=anchor,
        timezone=zone,
        dst_policy=policy,
    )
    after = datetime.combine(anchor, time(12), tzinfo=get_zone(zone)) + timedelta(days=after_days)
    after = after.astimezone(UTC)
    assert fires(trigger, after, 3) == reference_fires(trigger, after, 3)
