"""Cron calendar semantics: month edges, special day items, names, years, bounds (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from duetime.errors import InvalidTriggerError
from duetime.triggers.base import Trigger
from duetime.triggers.cron import CronTrigger


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def dates(expr: str, after: str, count: int = 3, **kwargs: str) -> list[str]:
    trigger = CronTrigger(expr, **kwargs)  # type: ignore[arg-type]
    current: datetime | None = utc(after)
    out: list[str] = []
    for _ in range(count):
        assert current is not None
        current = trigger.next_fire_time(current)
        out.append("None" if current is None else current.strftime("%Y-%m-%d %H:%M:%S %a"))
    return out


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        # leap days, years apart
        ("0 0 29 2 *", "2026-03-01", ["2028-02-29 00:00:00 Tue", "2032-02-29 00:00:00 Sun"]),
        ("0 0 29 2 *", "2096-03-01", ["2104-02-29 00:00:00 Fri"]),  # 2100 is not leap
        # the 31st skips short months
        ("0 0 31 * *", "2026-04-01", ["2026-05-31 00:00:00 Sun", "2026-07-31 00:00:00 Fri"]),
        # L: last day of the month
        (
            "0 0 L * *",
            "2026-01-31T00:00:00",
            ["2026-02-28 00:00:00 Sat", "2026-03-31 00:00:00 Tue"],
        ),
        ("0 0 L 2 *", "2027-03-01", ["2028-02-29 00:00:00 Tue"]),
        # NW: nearest weekday, never leaving the month
        ("0 0 1W * *", "2026-07-31", ["2026-08-03 00:00:00 Mon", "2026-09-01 00:00:00 Tue"]),
        ("0 0 1W 3 *", "2026-01-01", ["2026-03-02 00:00:00 Mon"]),
        ("0 0 31W * *", "2026-04-01", ["2026-05-29 00:00:00 Fri", "2026-07-31 00:00:00 Fri"]),
        ("0 0 31W 1 *", "2025-12-31", ["2026-01-30 00:00:00 Fri"]),
        ("0 0 15W * *", "2026-08-01", ["2026-08-14 00:00:00 Fri", "2026-09-15 00:00:00 Tue"]),
        ("0 0 15W 2 *", "2026-01-01", ["2026-02-16 00:00:00 Mon"]),
        # LW: last weekday
        ("0 0 LW * *", "2026-01-01", ["2026-01-30 00:00:00 Fri", "2026-02-27 00:00:00 Fri"]),
        ("0 0 LW 5 *", "2026-01-01", ["2026-05-29 00:00:00 Fri"]),
        # D#n: months without a fifth Friday are skipped
        ("0 0 * * 5#5", "2026-02-01", ["2026-05-29 00:00:00 Fri", "2026-07-31 00:00:00 Fri"]),
        ("0 0 * * MON#1", "2026-01-01", ["2026-01-05 00:00:00 Mon", "2026-02-02 00:00:00 Mon"]),
        # DL: last weekday D of the month
        ("0 0 * * FRIL", "2026-06-01", ["2026-06-26 00:00:00 Fri", "2026-07-31 00:00:00 Fri"]),
        ("0 0 * * 5L", "2026-06-01", ["2026-06-26 00:00:00 Fri"]),
        ("0 0 * * 0L", "2026-01-01", ["2026-01-25 00:00:00 Sun"]),
        # names, case-insensitive; 7 = Sunday; SUN closing a range
        ("0 0 * jan,Jul sun", "2026-01-01", ["2026-01-04 00:00:00 Sun"]),
        ("0 0 1 feb-apr *", "2026-03-15", ["2026-04-01 00:00:00 Wed", "2027-02-01 00:00:00 Mon"]),
        ("0 0 * * 7", "2026-01-01", ["2026-01-04 00:00:00 Sun"]),
        ("0 0 * * SAT-SUN", "2026-01-01", ["2026-01-03 00:00:00 Sat", "2026-01-04 00:00:00 Sun"]),
        (
            "0 0 * * 1/2",
            "2026-01-05",
            ["2026-01-07 00:00:00 Wed", "2026-01-09 00:00:00 Fri", "2026-01-12 00:00:00 Mon"],
        ),
        # ? is *
        ("0 0 ? * MON", "2026-01-01", ["2026-01-05 00:00:00 Mon"]),
        ("0 0 1 * ?", "2026-01-01", ["2026-02-01 00:00:00 Sun"]),
        # 5-5 is just 5 (a croniter bug to avoid)
        ("5-5 * * * *", "2026-01-01", ["2026-01-01 00:05:00 Thu", "2026-01-01 01:05:00 Thu"]),
        # N/M: from N every M up to the maximum
        (
            "50/5 * * * *",
            "2026-01-01",
            ["2026-01-01 00:50:00 Thu", "2026-01-01 00:55:00 Thu", "2026-01-01 01:50:00 Thu"],
        ),
        (
            "10-20/5 3 * * *",
            "2026-01-01",
            ["2026-01-01 03:10:00 Thu", "2026-01-01 03:15:00 Thu", "2026-01-01 03:20:00 Thu"],
        ),
        # seconds and years
        (
            "*/20 * * * * *",
            "2026-01-01T00:00:00",
            ["2026-01-01 00:00:20 Thu", "2026-01-01 00:00:40 Thu"],
        ),
        ("0 0 0 1 1 * 2030", "2026-06-01", ["2030-01-01 00:00:00 Tue", "None"]),
        ("0 0 12 * * * 2028-2032/2", "2029-12-31T13:00:00", ["2030-01-01 12:00:00 Tue"]),
        (
            "0 0 0 29 2 ? 2030-2040",
            "2026-01-01",
            ["2032-02-29 00:00:00 Sun", "2036-02-29 00:00:00 Fri"],
        ),
        # macros
        ("@yearly", "2026-06-01", ["2027-01-01 00:00:00 Fri"]),
        ("@annually", "2026-06-01", ["2027-01-01 00:00:00 Fri"]),
        ("@monthly", "2026-06-01T00:00:00", ["2026-07-01 00:00:00 Wed"]),
        ("@weekly", "2026-06-01", ["2026-06-07 00:00:00 Sun"]),
        ("@daily", "2026-06-01T00:00:00", ["2026-06-02 00:00:00 Tue"]),
        ("@midnight", "2026-06-01T00:00:00", ["2026-06-02 00:00:00 Tue"]),
        ("@HOURLY", "2026-06-01T00:00:00", ["2026-06-01 01:00:00 Mon"]),
    ],
)
def test_calendar(expr: str, after: str, expected: list[str]) -> None:
    assert dates(expr, after, len(expected)) == expected


def test_iso_weekdays_count_from_monday() -> None:
    assert dates("0 0 * * 0", "2026-01-01", 1, weekdays="iso") == ["2026-01-05 00:00:00 Mon"]
    assert dates("0 0 * * 6", "2026-01-01", 1, weekdays="iso") == ["2026-01-04 00:00:00 Sun"]
    assert dates("0 0 * * 0-4", "2026-01-02", 2, weekdays="iso") == [
        "2026-01-05 00:00:00 Mon",
        "2026-01-06 00:00:00 Tue",
    ]
    # names mean the named day whatever the numbering
    assert dates("0 0 * * SAT-SUN", "2026-01-01", 2, weekdays="iso") == [
        "2026-01-03 00:00:00 Sat",
        "2026-01-04 00:00:00 Sun",
    ]
    assert dates("0 0 * * 4#1", "2026-01-01", 1, weekdays="iso") == ["2026-01-02 00:00:00 Fri"]
    # @weekly stays Sunday
    assert dates("@weekly", "2026-01-01", 1, weekdays="iso") == ["2026-01-04 00:00:00 Sun"]


def test_vixie_day_match_ors_two_restricted_day_fields() -> None:
    # the 13th OR any Friday
    assert dates("0 0 13 * 5", "2026-02-01", 3) == [
        "2026-02-06 00:00:00 Fri",
        "2026-02-13 00:00:00 Fri",
        "2026-02-20 00:00:00 Fri",
    ]
    assert dates("0 0 13 * 5", "2026-04-05", 2) == [
        "2026-04-10 00:00:00 Fri",
        "2026-04-13 00:00:00 Mon",
    ]


def test_vixie_star_day_field_means_both_must_match() -> None:
    # day-of-month starts with '*': odd days that are Mondays
    assert dates("0 0 */2 * 1", "2026-01-01", 3) == [
        "2026-01-05 00:00:00 Mon",
        "2026-01-19 00:00:00 Mon",
        "2026-02-09 00:00:00 Mon",
    ]


def test_and_day_match_requires_both() -> None:
    assert dates("0 0 13 * 5", "2026-01-01", 3, day_match="and") == [
        "2026-02-13 00:00:00 Fri",
        "2026-03-13 00:00:00 Fri",
        "2026-11-13 00:00:00 Fri",
    ]


def test_strictly_after() -> None:
    trigger = CronTrigger("0 3 * * *")
    fire = utc("2026-01-01T03:00:00")
    assert trigger.next_fire_time(fire) == utc("2026-01-02T03:00:00")
    assert trigger.next_fire_time(fire - timedelta(microseconds=1)) == fire
    assert trigger.next_fire_time(fire + timedelta(microseconds=1)) == utc("2026-01-02T03:00:00")
    seconds = CronTrigger("* * * * * *")
    half = utc("2026-01-01T00:00:00") + timedelta(microseconds=500_000)
    assert seconds.next_fire_time(half) == utc("2026-01-01T00:00:01")


def test_result_is_utc_whatever_the_zone_of_after() -> None:
    trigger = CronTrigger("0 9 * * *", "Europe/Stockholm")
    after = datetime.fromisoformat("2026-01-01T10:00:00+09:00")  # 01:00Z
    nxt = trigger.next_fire_time(after)
    assert nxt == utc("2026-01-01T08:00:00")
    assert nxt is not None
    assert nxt.tzinfo is UTC


def test_naive_after_is_read_in_the_trigger_zone() -> None:
    trigger = CronTrigger("0 9 * * *", "Europe/Stockholm")
    assert trigger.next_fire_time(datetime(2026, 1, 1, 8, 59)) == utc("2026-01-01T08:00:00")
    assert trigger.next_fire_time(datetime(2026, 1, 1, 9, 0)) == utc("2026-01-02T08:00:00")


def test_start_at_and_end_at_bound_the_fires() -> None:
    start = utc("2026-01-10T00:00:00")
    end = utc("2026-01-12T03:00:00")
    trigger = CronTrigger("0 3 * * *", start_at=start, end_at=end)
    assert trigger.next_fire_time(utc("2026-01-01T00:00:00")) == utc("2026-01-10T03:00:00")
    assert trigger.next_fire_time(utc("2026-01-11T03:00:00")) == end  # end_at is inclusive
    assert trigger.next_fire_time(end) is None
    exact = CronTrigger("0 3 * * *", start_at=utc("2026-01-10T03:00:00"))
    assert exact.next_fire_time(utc("2026-01-01T00:00:00")) == utc("2026-01-10T03:00:00")


def test_start_at_naive_is_read_in_the_zone() -> None:
    trigger = CronTrigger("0 * * * *", "Europe/Stockholm", start_at=datetime(2026, 1, 10, 5, 0))
    assert trigger.next_fire_time(utc("2026-01-01T00:00:00")) == utc("2026-01-10T04:00:00")


def test_year_entirely_in_the_past_parses_but_never_fires() -> None:
    trigger = CronTrigger("0 0 0 1 1 * 2020")
    assert trigger.next_fire_time(utc("2026-01-01T00:00:00")) is None


def test_search_is_bounded_to_max_search_years() -> None:
    trigger = CronTrigger("0 0 0 1 1 * 2190")
    assert trigger.next_fire_time(utc("2026-01-01T00:00:00")) is None
    assert trigger.next_fire_time(utc("2100-01-01T00:00:00")) == utc("2190-01-01T00:00:00")


@pytest.mark.parametrize(
    "expr",
    ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *", "0 0 0 29 2 * 2025", "0 0 0 30 2 ? *"],
)
def test_calendar_impossible_expressions_are_refused(expr: str) -> None:
    with pytest.raises(InvalidTriggerError, match="can never fire") as info:
        CronTrigger(expr)
    assert info.value.field == "expression"


def test_feb_30_or_a_weekday_is_possible_under_vixie_but_not_under_and() -> None:
    assert CronTrigger("0 0 30 2 1").next_fire_time(utc("2026-01-01T00:00:00")) == utc(
        "2026-02-02T00:00:00"
    )
    with pytest.raises(InvalidTriggerError):
        CronTrigger("0 0 30 2 1", day_match="and")


def test_pacific_apia_skipped_day() -> None:
    # 2011-12-30 did not exist in Samoa: 2011-12-29 23:59:59-10:00 -> 2011-12-31 00:00+14:00
    after = datetime.fromisoformat("2011-12-29T12:00:00-10:00")
    fixed = CronTrigger("0 12 * * *", "Pacific/Apia")
    nxt = fixed.next_fire_time(after)
    assert nxt is not None
    assert nxt.astimezone(fixed.timezone).isoformat() == "2011-12-31T00:00:00+14:00"
    once = CronTrigger("0 12 * * *", "Pacific/Apia", dst_policy="once")
    nxt = once.next_fire_time(after)
    assert nxt is not None
    assert nxt.astimezone(once.timezone).isoformat() == "2011-12-31T12:00:00+14:00"


def test_fixed_offset_zone() -> None:
    from datetime import timezone

    trigger = CronTrigger("0 9 * * *", timezone(timedelta(hours=5, minutes=30)))
    assert trigger.next_fire_time(utc("2026-01-01T00:00:00")) == utc("2026-01-01T03:30:00")


def test_is_a_trigger() -> None:
    assert isinstance(CronTrigger("* * * * *"), Trigger)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Stockholm"])
@pytest.mark.parametrize(
    "after",
    [
        datetime.max.replace(tzinfo=UTC),
        datetime(9999, 12, 30, tzinfo=UTC),
        datetime(9998, 12, 31, 23, 59, tzinfo=UTC),
        datetime.min.replace(tzinfo=UTC) + timedelta(days=2),
    ],
)
def test_extreme_instants_do_not_crash_or_hang(zone: str, after: datetime) -> None:
    trigger = CronTrigger("0 0 1 1 *", zone)
    nxt = trigger.next_fire_time(after)
    assert nxt is None or nxt > after
