"""Cron parsing: accepted syntax, error messages, options, spec and description."""

from __future__ import annotations

from datetime import tzinfo

import pytest

from duetime.errors import InvalidCronError, InvalidTriggerError, UnknownTimezoneError
from duetime.triggers.cron import CronTrigger, parse_cron


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 0 32 * *", 'day-of-month 32 is out of range 1–31 in "0 0 32 * *"'),
        ("0 0 0 * *", 'day-of-month 0 is out of range 1–31 in "0 0 0 * *"'),
        ("60 * * * *", 'minute 60 is out of range 0–59 in "60 * * * *"'),
        ("* 24 * * *", 'hour 24 is out of range 0–23 in "* 24 * * *"'),
        ("* * * 13 *", 'month 13 is out of range 1–12 in "* * * 13 *"'),
        ("* * * 0 *", 'month 0 is out of range 1–12 in "* * * 0 *"'),
        ("* * * * 8", 'day-of-week 8 is out of range 0–7 in "* * * * 8"'),
        ("60 * * * * *", 'second 60 is out of range 0–59 in "60 * * * * *"'),
        ("0 0 0 1 1 * 1969", 'year 1969 is out of range 1970–2199 in "0 0 0 1 1 * 1969"'),
        ("0 0 1-40 * *", 'day-of-month 40 is out of range 1–31 in "0 0 1-40 * *"'),
        ("*/0 * * * *", "minute step 0 in '*/0' must be at least 1"),
        ("* */x * * *", "hour step 'x' in '*/x' is not a number"),
        ("5-3 * * * *", "minute range '5-3' is reversed (5 comes after 3)"),
        ("* * * DEC-JAN *", "month range 'DEC-JAN' is reversed (DEC comes after JAN)"),
        ("* * * FOO *", "month name 'FOO' is not one of JAN–DEC"),
        ("* * * * FOO", "day-of-week name 'FOO' is not one of SUN–SAT"),
        ("* * * * 5#6", "day-of-week occurrence #6 in '5#6' is out of range 1–5"),
        ("* * * * 5#0", "day-of-week occurrence #0 in '5#0' is out of range 1–5"),
        ("* * * * 9L", "day-of-week 9 is out of range 0–7"),
        ("* * 0W * *", "day-of-month 0 is out of range 1–31"),
        ("* * 32W * *", "day-of-month 32 is out of range 1–31"),
        ("a * * * *", "minute value 'a' in 'a' is not a number"),
        ("1,,2 * * * *", "minute field '1,,2' has an empty list item"),
        ("1- * * * *", "minute item '1-' is missing a number"),
        ("? * * * *", "minute field cannot be '?'"),
        ("* * * *", "expected 5 fields"),
        ("* * * *", "got 4"),
        ("* * * * * * * *", "got 8"),
        ("@fortnightly", "unknown macro '@fortnightly'"),
        ("* * * * MON#x", "day-of-week value 'MON#x' in 'MON#x' is not a number"),
    ],
)
def test_errors_name_the_field_and_the_reason(expr: str, message: str) -> None:
    with pytest.raises(InvalidCronError) as info:
        parse_cron(expr)
    assert message in info.value.message
    assert info.value.field == "expression"
    assert isinstance(info.value, ValueError)


def test_exact_message_for_day_of_month_out_of_range() -> None:
    with pytest.raises(InvalidCronError) as info:
        CronTrigger("0 0 32 * *")
    assert str(info.value) == 'expression: day-of-month 32 is out of range 1–31 in "0 0 32 * *"'


def test_empty_expression() -> None:
    with pytest.raises(InvalidCronError, match="must not be empty"):
        parse_cron("   ")


def test_iso_weekdays_refuse_7() -> None:
    with pytest.raises(InvalidCronError, match="day-of-week 7 is out of range 0–6"):
        parse_cron("* * * * 7", weekdays="iso")
    assert parse_cron("* * * * 7").weekdays_set == (0,)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"dst_policy": "sometimes"}, "dst_policy"),
        ({"weekdays": "us"}, "weekdays"),
        ({"day_match": "or"}, "day_match"),
        ({"jitter": -1.0}, "jitter"),
        ({"jitter": float("nan")}, "jitter"),
        ({"jitter": 8 * 24 * 3600.0}, "jitter"),
    ],
)
def test_bad_options_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidTriggerError) as info:
        CronTrigger("* * * * *", **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert field in str(info.value)


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", None, 3])
def test_unknown_zone(zone: object) -> None:
    with pytest.raises(UnknownTimezoneError) as info:
        CronTrigger("* * * * *", zone)  # type: ignore[arg-type]
    assert info.value.field == "timezone"


def test_parsed_values() -> None:
    p = parse_cron("*/15 9-17 1,15,L * MON-FRI")
    assert p.minutes == (0, 15, 30, 45)
    assert p.hours == tuple(range(9, 18))
    assert p.days == (1, 15)
    assert p.dom_last
    assert p.weekdays_set == (1, 2, 3, 4, 5)
    assert not p.has_seconds
    assert p.seconds == (0,)
    six = parse_cron("*/20 0 12 * * 5#2,FRIL 2030")
    assert six.seconds == (0, 20, 40)
    assert six.dow_nth == ((5, 2),)
    assert six.dow_last == (5,)
    assert six.years == (2030,)


def test_parse_is_cached_and_strips() -> None:
    assert parse_cron("  0 3 * * *  ") is parse_cron("0 3 * * *")
    assert CronTrigger(" 0 3 * * * ").expression == "0 3 * * *"


def test_to_spec() -> None:
    trigger = CronTrigger("0 3 * * *", "Europe/Stockholm")
    assert trigger.to_spec() == {
        "version": 1,
        "type": "cron",
        "expression": "0 3 * * *",
        "dst_policy": "cron",
        "weekdays": "posix",
        "day_match": "vixie",
    }
    jittered = CronTrigger(
        "0 3 * * 0", dst_policy="once", weekdays="iso", day_match="and", jitter=30
    )
    assert jittered.to_spec() == {
        "version": 1,
        "type": "cron",
        "expression": "0 3 * * 0",
        "dst_policy": "once",
        "weekdays": "iso",
        "day_match": "and",
        "jitter": 30.0,
    }
    assert jittered.jitter == 30.0


def test_spec_round_trip() -> None:
    trigger = CronTrigger("*/5 * * * *", "America/New_York", dst_policy="instant", jitter=2.5)
    spec = trigger.to_spec()
    rebuilt = CronTrigger(
        spec["expression"],
        "America/New_York",
        dst_policy=spec["dst_policy"],
        weekdays=spec["weekdays"],
        day_match=spec["day_match"],
        jitter=spec.get("jitter", 0.0),
    )
    assert rebuilt == trigger
    assert rebuilt.to_spec() == spec


def test_attributes() -> None:
    trigger = CronTrigger("0 3 * * *", "Europe/Stockholm")
    assert isinstance(trigger.timezone, tzinfo)
    assert str(trigger.timezone) == "Europe/Stockholm"
    assert (trigger.dst_policy, trigger.weekdays, trigger.day_match) == ("cron", "posix", "vixie")
    assert trigger.jitter == 0.0
    assert "0 3 * * *" in repr(trigger)


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        ("*/15 9-17 * * 1-5", "every 15 minutes, between 09:00 and 17:59, Monday through Friday"),
        ("0 3 * * *", "at 03:00, every day"),
        ("30 2,14 * * *", "at 02:30 and 14:30, every day"),
        ("* * * * *", "every minute"),
        ("0 * * * *", "at minute 0 past the hour"),
        ("0 */2 * * *", "at minute 0 past the hour, every 2 hours"),
        ("0 0 L * *", "at 00:00, on the last day of the month"),
        ("0 0 LW * *", "at 00:00, on the last weekday of the month"),
        ("0 9 15W * *", "at 09:00, on the weekday nearest day 15 of the month"),
        ("0 0 29 2 *", "at 00:00, on day 29 of the month, in February"),
        ("0 0 * * FRIL", "at 00:00, on the last Friday of the month"),
        ("0 0 * * 5#2", "at 00:00, on the second Friday of the month"),
        ("0 0 1 * 1", "at 00:00, on day 1 of the month or on Monday"),
        ("*/10 * * * * *", "every 10 seconds"),
        ("0 0 0 1 1 * 2030", "at 00:00, on day 1 of the month, in January, in 2030"),
        ("0 8 * 1-3 SAT,SUN", "at 08:00, on Sunday and Saturday, in January through March"),
    ],
)
def test_describe(expr: str, text: str) -> None:
    assert CronTrigger(expr).describe() == text


def test_describe_and_day_match() -> None:
    assert CronTrigger("0 0 13 * 5", day_match="and").describe() == (
        "at 00:00, on day 13 of the month and on Friday"
    )
