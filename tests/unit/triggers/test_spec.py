"""The spec layer: every accepted shape → one normalised, versioned, round-tripping spec."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger as APSCronTrigger
from apscheduler.triggers.interval import IntervalTrigger as APSIntervalTrigger
from helpers_triggers import fires
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from duetime.errors import (
    InvalidCronError,
    InvalidTriggerError,
    UnknownTimezoneError,
    ValidationError,
)
from duetime.triggers import (
    AndTrigger,
    CalendarIntervalTrigger,
    DateTrigger,
    IntervalTrigger,
    OrTrigger,
    build_trigger,
    normalize_spec,
)
from duetime.triggers.tz import get_zone

NOW = datetime(2026, 1, 1, tzinfo=UTC)
A = "2026-01-01T00:00:00+00:00"


def cron(expression: str, **extra: Any) -> dict[str, Any]:
    spec = {
        "version": 1,
        "type": "cron",
        "expression": expression,
        "dst_policy": "cron",
        "weekdays": "posix",
        "day_match": "vixie",
    }
    spec.update(extra)
    return spec


def aps_cron(expression: str, **extra: Any) -> dict[str, Any]:
    return cron(expression, weekdays="iso", day_match="and", **extra)


def interval(anchor: str = A, **units: float) -> dict[str, Any]:
    spec: dict[str, Any] = {"version": 1, "type": "interval"}
    spec.update({u: units.pop(u, 0) for u in ("weeks", "days", "hours", "minutes", "seconds")})
    spec["anchor"] = anchor
    spec.update(units)
    return spec


def calendar(anchor: str, **fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"version": 1, "type": "calendar"}
    for key in ("years", "months", "weeks", "days", "hour", "minute", "second"):
        spec[key] = fields.pop(key, 0)
    spec["anchor"] = anchor
    spec["dst_policy"] = fields.pop("dst_policy", "cron")
    spec.update(fields)
    return spec


def date_spec(run_at: str, **extra: Any) -> dict[str, Any]:
    return {"version": 1, "type": "date", "run_at": run_at, **extra}


NORMALISATION_TABLE: list[tuple[Any, dict[str, Any], dict[str, Any]]] = [
    # cron string and cron shapes
    ("0 3 * * *", {}, cron("0 3 * * *")),
    ({"cron": "0 3 * * *", "jitter": 30}, {}, cron("0 3 * * *", jitter=30.0)),
    (
        {"cron_expression": "0 9 * * 1-5", "dst_policy": "once", "weekdays": "iso"},
        {},
        cron("0 9 * * 1-5", dst_policy="once", weekdays="iso"),
    ),
    (
        {"type": "cron", "expression": "30 2 * * *", "dst_policy": "instant", "jitter": 0},
        {},
        cron("30 2 * * *", dst_policy="instant"),
    ),
    # interval
    ({"type": "interval", "hours": 12}, {}, interval(hours=12)),
    ({"interval_minutes": 15}, {}, interval(minutes=15)),
    ({"interval_hours": 1, "interval_seconds": 90}, {}, interval(hours=1, seconds=90)),
    ({"interval_days": 1.0}, {}, interval(days=1)),
    (
        {"interval_days": 1, "anchor": "2026-03-01T06:00:00"},
        {"timezone": "Europe/Stockholm"},
        interval("2026-03-01T05:00:00+00:00", days=1),
    ),
    (
        {"type": "interval", "hours": 1},
        {"start_at": datetime(2026, 2, 1, 12, tzinfo=UTC)},
        interval("2026-02-01T12:00:00+00:00", hours=1),
    ),
    # date
    (
        {"type": "date", "run_at": "2026-06-01T09:30:00Z"},
        {},
        date_spec("2026-06-01T09:30:00+00:00"),
    ),
    (
        {"type": "date", "run_date": "2026-06-01 11:30", "jitter": 1.5},
        {"timezone": "Europe/Stockholm"},
        date_spec("2026-06-01T09:30:00+00:00", jitter=1.5),
    ),
    # calendar
    (
        {"type": "calendar", "months": 1, "hour": 3, "anchor": "2026-01-31"},
        {},
        calendar("2026-01-31", months=1, hour=3),
    ),
    (  # anchor defaults to the creation date *in the schedule's zone*
        {"type": "calendar", "weeks": 2, "dst_policy": "once"},
        {"timezone": "America/Los_Angeles"},
        calendar("2025-12-31", weeks=2, dst_policy="once"),
    ),
    # and / or
    (
        {"type": "and", "triggers": ["0 * * * *", {"interval_minutes": 90}], "threshold": 2},
        {},
        {
            "version": 1,
            "type": "and",
            "triggers": [cron("0 * * * *"), interval(minutes=90)],
            "threshold": 2,
        },
    ),
    (
        {"type": "and", "triggers": ["0 * * * *"]},
        {},
        {"version": 1, "type": "and", "triggers": [cron("0 * * * *")], "threshold": 1},
    ),
    (
        {
            "type": "or",
            "triggers": [{"cron": "0 9 * * *"}, {"type": "date", "run_at": "2026-02-01"}],
            "jitter": 5,
        },
        {},
        {
            "version": 1,
            "type": "or",
            "triggers": [cron("0 9 * * *"), date_spec("2026-02-01T00:00:00+00:00")],
            "jitter": 5.0,
        },
    ),
    # APScheduler shapes
    (
        {"trigger": "cron", "trigger_kwargs": {"day_of_week": "mon-fri", "hour": 9, "minute": 30}},
        {},
        aps_cron("0 30 9 * * mon-fri"),
    ),
    ({"trigger": "cron", "trigger_kwargs": {"day_of_week": 0}}, {}, aps_cron("0 0 0 * * 0")),
    ({"trigger": "cron", "trigger_kwargs": {"day": "last"}}, {}, aps_cron("0 0 0 L * *")),
    ({"trigger": "cron", "hour": "*/2"}, {}, aps_cron("0 0 */2 * * *")),
    (
        {"trigger": "cron", "trigger_kwargs": {"day": "last fri", "hour": 17, "jitter": 60}},
        {},
        aps_cron("0 0 17 * * 4L", jitter=60.0),
    ),
    ({"trigger": "cron", "trigger_kwargs": {"day": "2nd mon"}}, {}, aps_cron("0 0 0 * * 0#2")),
    (
        {"trigger": "cron", "trigger_kwargs": {"year": 2027, "month": 6, "day": 15}},
        {},
        aps_cron("0 0 0 15 6 * 2027"),
    ),
    (
        {"trigger": "cron", "trigger_kwargs": {"minute": "*/5", "second": None}},
        {},
        aps_cron("0 */5 * * * *"),
    ),
    (
        {"trigger": "interval", "trigger_kwargs": {"minutes": 5, "start_date": "2026-01-01 08:00"}},
        {"timezone": "Europe/Stockholm"},
        interval("2026-01-01T07:00:00+00:00", minutes=5),
    ),
    ({"trigger": "interval", "seconds": 30}, {}, interval(seconds=30)),
    (
        {"trigger": "date", "trigger_kwargs": {"run_date": "2026-06-01T09:30:00+02:00"}},
        {},
        date_spec("2026-06-01T07:30:00+00:00"),
    ),
    (
        {
            "trigger": "calendarinterval",
            "trigger_kwargs": {"months": 1, "hour": 3, "start_date": "2026-01-31"},
        },
        {},
        calendar("2026-01-31", months=1, hour=3),
    ),
    # an already-normalised spec is a fixed point
    (interval(hours=2), {}, interval(hours=2)),
]


@pytest.mark.parametrize(("shape", "options", "expected"), NORMALISATION_TABLE)
def test_normalisation_table(shape: Any, options: dict[str, Any], expected: dict[str, Any]) -> None:
    normalised = normalize_spec(shape, now=NOW, **options)
    assert normalised == expected
    assert json.loads(json.dumps(normalised)) == normalised
    timezone = options.get("timezone", "UTC")
    assert build_trigger(normalised, timezone).to_spec() == normalised


def test_apscheduler_mon_fri_fires_monday_to_friday() -> None:
    trigger = build_trigger({"trigger": "cron", "trigger_kwargs": {"day_of_week": "mon-fri"}})
    got = fires(trigger, NOW, 10)  # strictly after Thursday 2026-01-01 00:00
    assert [t.weekday() for t in got] == [4, 0, 1, 2, 3, 4, 0, 1, 2, 3]
    assert {t.time().isoformat() for t in got} == {"00:00:00"}


def test_apscheduler_day_of_week_0_is_monday() -> None:
    trigger = build_trigger({"trigger": "cron", "trigger_kwargs": {"day_of_week": 0, "hour": 6}})
    got = fires(trigger, NOW, 3)
    assert got == [datetime(2026, 1, d, 6, tzinfo=UTC) for d in (5, 12, 19)]


def test_apscheduler_day_last_is_the_month_end() -> None:
    trigger = build_trigger({"trigger": "cron", "trigger_kwargs": {"day": "last"}})
    got = [t.date() for t in fires(trigger, NOW, 3)]
    assert got == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31)]


def test_plain_cron_days_are_vixie_or() -> None:
    # Not an APScheduler shape: POSIX weekdays and Vixie's OR of the day fields.
    trigger = build_trigger("0 0 13 * 5")  # the 13th, or any Friday
    got = [t.date() for t in fires(trigger, NOW, 4)]
    assert got == [date(2026, 1, 2), date(2026, 1, 9), date(2026, 1, 13), date(2026, 1, 16)]


APS_FIELD_VALUES = {
    "second": st.sampled_from([0, 30, "*/20", "5-10/5"]),
    "minute": st.sampled_from([0, 15, "*/30", "10,40", "0-5"]),
    "hour": st.sampled_from([0, 3, 23, "*/6", "9-17", "*"]),
    "day": st.sampled_from(
        [1, 15, 28, "*/10", "last", "1st mon", "2nd fri", "last sun", "5th wed"]
    ),
    "month": st.sampled_from([1, 2, "*/3", "jan-mar", "feb,aug", "*"]),
    "day_of_week": st.sampled_from([0, 6, "mon-fri", "sat,sun", "*/2", "tue", "*"]),
    "year": st.sampled_from([2026, "2026-2028", "*"]),
}


@settings(max_examples=120, deadline=None)
@given(
    kwargs=st.fixed_dictionaries({}, optional=APS_FIELD_VALUES),
    after=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 6, 1)),
)
def test_apscheduler_cron_matches_apscheduler(kwargs: dict[str, Any], after: datetime) -> None:
    day = str(kwargs.get("day", ""))
    assume(" " not in day or str(kwargs.get("day_of_week", "*")) == "*")
    after = after.replace(tzinfo=UTC)
    theirs = APSCronTrigger(timezone=UTC, **kwargs)
    refused: InvalidTriggerError | None = None
    try:
        ours = build_trigger({"trigger": "cron", "trigger_kwargs": kwargs})
    except InvalidTriggerError as err:
        refused = err
    if refused is not None:  # refused at creation: APScheduler never fires either
        assert "can never fire" in refused.message
        assert theirs.get_next_fire_time(None, after) is None
        return
    expected: list[datetime] = []
    cursor = after
    for _ in range(5):
        nxt = theirs.get_next_fire_time(None, cursor + timedelta(microseconds=1))
        if nxt is None:
            break
        expected.append(nxt.astimezone(UTC))
        cursor = nxt
    assert fires(ours, after, 5) == expected, kwargs


@settings(max_examples=60, deadline=None)
@given(
    seconds=st.integers(1, 10**6),
    start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
    after=st.datetimes(min_value=datetime(2019, 1, 1), max_value=datetime(2031, 1, 1)),
)
def test_apscheduler_interval_matches_apscheduler(
    seconds: int, start: datetime, after: datetime
) -> None:
    start, after = start.replace(tzinfo=UTC), after.replace(tzinfo=UTC, microsecond=0)
    ours = build_trigger(
        {"trigger": "interval", "trigger_kwargs": {"seconds": seconds, "start_date": start}}
    )
    theirs = APSIntervalTrigger(seconds=seconds, start_date=start, timezone=UTC)
    expected = theirs.get_next_fire_time(None, after + timedelta(microseconds=1))
    assert ours.next_fire_time(after) == expected


def test_build_trigger_returns_the_right_classes() -> None:
    from duetime.triggers.cron import CronTrigger

    a = "2026-01-01T00:00:00Z"
    assert isinstance(build_trigger("* * * * *"), CronTrigger)
    assert isinstance(build_trigger({"interval_hours": 1, "anchor": a}), IntervalTrigger)
    assert isinstance(build_trigger({"type": "date", "run_at": a}), DateTrigger)
    assert isinstance(
        build_trigger({"type": "calendar", "days": 1, "anchor": "2026-01-01"}),
        CalendarIntervalTrigger,
    )
    assert isinstance(build_trigger({"type": "and", "triggers": ["* * * * *"]}), AndTrigger)
    assert isinstance(build_trigger({"type": "or", "triggers": ["* * * * *"]}), OrTrigger)


def test_build_trigger_applies_zone_start_and_end() -> None:
    trigger = build_trigger(
        "0 9 * * *",
        "Europe/Stockholm",
        start_at=datetime(2026, 7, 2),  # naive: read in the zone
        end_at=datetime(2026, 7, 4, 9, 0),
    )
    assert fires(trigger, NOW, 5) == [
        datetime(2026, 7, 2, 7, tzinfo=UTC),
        datetime(2026, 7, 3, 7, tzinfo=UTC),
        datetime(2026, 7, 4, 7, tzinfo=UTC),
    ]


def test_start_and_end_bound_combinations_not_children() -> None:
    trigger = build_trigger(
        {"type": "or", "triggers": ["0 * * * *", {"interval_minutes": 30}]},
        start_at=NOW + timedelta(hours=1),
        end_at=NOW + timedelta(hours=2),
    )
    # the interval child is anchored at start_at; the window bounds the whole
    assert fires(trigger, NOW, 5) == [NOW + timedelta(minutes=m) for m in (60, 90, 120)]


def test_anchor_defaults() -> None:
    spec = {"interval_hours": 6}
    with pytest.raises(InvalidTriggerError) as info:
        build_trigger(spec)
    assert info.value.field == "trigger.anchor"
    start = NOW + timedelta(minutes=7)
    assert build_trigger(spec, start_at=start).next_fire_time(NOW) == start
    assert normalize_spec(spec, now=NOW)["anchor"] == NOW.isoformat()
    assert normalize_spec(spec, start_at=start, now=NOW)["anchor"] == start.isoformat()
    with pytest.raises(InvalidTriggerError):
        normalize_spec(spec)  # neither start_at nor now: refused, never invented


def test_calendar_anchor_from_start_at_in_zone() -> None:
    spec = {"type": "calendar", "months": 1, "hour": 8}
    start = datetime(2026, 1, 30, 23, 30, tzinfo=UTC)  # Jan 31 in Stockholm
    assert normalize_spec(spec, timezone="Europe/Stockholm", start_at=start)["anchor"] == (
        "2026-01-31"
    )


def test_unknown_timezone() -> None:
    with pytest.raises(UnknownTimezoneError) as info:
        build_trigger("0 3 * * *", "Mars/Olympus_Mons")
    assert info.value.field == "timezone"
    with pytest.raises(UnknownTimezoneError):
        normalize_spec("0 3 * * *", timezone="Nowhere/Land")


def test_timezone_may_be_a_tzinfo() -> None:
    zone = get_zone("Asia/Tokyo")
    trigger = build_trigger("0 9 * * *", zone)
    assert trigger.next_fire_time(NOW - timedelta(seconds=1)) == NOW  # 09:00 JST = 00:00 UTC


A_ISO = "2026-01-01T00:00:00Z"
BAD_SPECS: list[tuple[Any, str]] = [
    (42, "trigger"),
    ([], "trigger"),
    ({}, "trigger.type"),
    ({"type": "weekly"}, "trigger.type"),
    ({"type": 5}, "trigger.type"),
    ({"type": "cron"}, "trigger.expression"),
    ({"type": "cron", "expression": 5}, "trigger.expression"),
    ({"type": "cron", "expression": "0 3 * * *", "colour": "red"}, "trigger.colour"),
    ({"type": "cron", "expression": "0 25 * * *"}, "trigger.expression"),
    ({"type": "cron", "expression": "0 0 30 2 *"}, "trigger.expression"),
    ({"type": "cron", "expression": "* * * * *", "dst_policy": "sometimes"}, "trigger.dst_policy"),
    ({"type": "cron", "expression": "* * * * *", "weekdays": 1}, "trigger.weekdays"),
    ({"type": "cron", "expression": "* * * * *", "version": 2}, "trigger.version"),
    ("0 3 * *", "trigger"),
    ({"cron": "nope"}, "trigger.cron"),
    ({"cron_expression": "0 3 * * 9"}, "trigger.cron_expression"),
    ({"cron_expression": "0 3 * * *", "cron": "0 3 * * *"}, "trigger.cron"),
    ({"cron": "* * * * *", "jitter": -1}, "trigger.jitter"),
    ({"cron": "* * * * *", "jitter": "5"}, "trigger.jitter"),
    ({"cron": "* * * * *", "anchor": A_ISO}, "trigger.anchor"),
    ({"type": "interval", "anchor": A_ISO}, "trigger"),
    ({"type": "interval", "hours": -1, "anchor": A_ISO}, "trigger.hours"),
    ({"type": "interval", "hours": "12", "anchor": A_ISO}, "trigger.hours"),
    ({"type": "interval", "hours": None, "anchor": A_ISO}, "trigger.hours"),
    ({"type": "interval", "hours": 1}, "trigger.anchor"),
    ({"type": "interval", "hours": 1, "anchor": "yesterday"}, "trigger.anchor"),
    ({"type": "interval", "hours": 1, "anchor": 1700000000}, "trigger.anchor"),
    ({"type": "interval", "hours": 1, "anchor": A_ISO, "run_at": A_ISO}, "trigger.run_at"),
    ({"interval_minutes": -5, "anchor": A_ISO}, "trigger.interval_minutes"),
    ({"interval_minutes": 5, "every": "day"}, "trigger.every"),
    ({"type": "date"}, "trigger.run_at"),
    ({"type": "date", "run_at": 12}, "trigger.run_at"),
    ({"type": "date", "run_at": "2026-13-01"}, "trigger.run_at"),
    ({"type": "date", "run_at": A_ISO, "run_date": A_ISO}, "trigger.run_date"),
    ({"type": "calendar", "months": 1, "hour": 24, "anchor": "2026-01-01"}, "trigger.hour"),
    ({"type": "calendar", "months": 1, "anchor": "2026-02-30"}, "trigger.anchor"),
    ({"type": "calendar", "months": -1, "anchor": "2026-01-01"}, "trigger.months"),
    ({"type": "calendar", "anchor": "2026-01-01"}, "trigger"),
    (
        {"type": "calendar", "days": 1, "anchor": "2026-01-01", "dst_policy": 3},
        "trigger.dst_policy",
    ),
    ({"type": "and", "triggers": "0 * * * *"}, "trigger.triggers"),
    ({"type": "and"}, "trigger.triggers"),
    ({"type": "and", "triggers": []}, "trigger.triggers"),
    ({"type": "and", "triggers": ["0 * * * *"], "threshold": -1}, "trigger.threshold"),
    ({"type": "or", "triggers": ["0 * * * *"], "threshold": 1}, "trigger.threshold"),
    (
        {"type": "or", "triggers": ["0 * * * *", {"type": "interval", "hours": 1}]},
        "trigger.triggers.1.anchor",
    ),
    ({"type": "or", "triggers": [{"cron": "0 * * * *", "jitter": 5}]}, "trigger.triggers.0.jitter"),
    (
        {"type": "or", "triggers": [{"type": "and", "triggers": ["bad"]}]},
        "trigger.triggers.0.triggers.0",
    ),
    (
        {
            "type": "or",
            "triggers": [
                {
                    "type": "or",
                    "triggers": [
                        {
                            "type": "or",
                            "triggers": [
                                {
                                    "type": "or",
                                    "triggers": [{"type": "or", "triggers": ["* * * * *"]}],
                                }
                            ],
                        }
                    ],
                }
            ],
        },
        "trigger.triggers.0.triggers.0.triggers.0.triggers.0.triggers",
    ),
    ({"trigger": "cron", "trigger_kwargs": {"week": 5}}, "trigger.trigger_kwargs.week"),
    ({"trigger": "cron", "trigger_kwargs": {"hour": 25}}, "trigger.trigger_kwargs.hour"),
    (
        {"trigger": "cron", "trigger_kwargs": {"day_of_week": "funday"}},
        "trigger.trigger_kwargs.day_of_week",
    ),
    ({"trigger": "cron", "trigger_kwargs": {"month": 2, "day": 30}}, "trigger.trigger_kwargs"),
    (
        {"trigger": "cron", "trigger_kwargs": {"hour": 3, "timezone": "Europe/Paris"}},
        "trigger.trigger_kwargs.timezone",
    ),
    (
        {"trigger": "cron", "trigger_kwargs": {"start_date": "2026-01-01"}},
        "trigger.trigger_kwargs.start_date",
    ),
    (
        {"trigger": "cron", "trigger_kwargs": {"day": "last fri", "day_of_week": "mon"}},
        "trigger.trigger_kwargs.day",
    ),
    ({"trigger": "cron", "trigger_kwargs": {"day": "1,last fri"}}, "trigger.trigger_kwargs.day"),
    ({"trigger": "cron", "trigger_kwargs": {"day": "first monday"}}, "trigger.trigger_kwargs.day"),
    ({"trigger": "cron", "trigger_kwargs": {"minute": -1}}, "trigger.trigger_kwargs.minute"),
    ({"trigger": "cron", "trigger_kwargs": {"minute": 1.5}}, "trigger.trigger_kwargs.minute"),
    ({"trigger": "cron", "trigger_kwargs": {"hour": 3}, "extra": 1}, "trigger.extra"),
    ({"trigger": "cron", "trigger_kwargs": [1]}, "trigger.trigger_kwargs"),
    ({"trigger": "cron", "hour": "3 4"}, "trigger.hour"),
    ({"trigger": "crontab"}, "trigger.trigger"),
    (
        {"trigger": "interval", "trigger_kwargs": {"hours": 1, "end_date": A_ISO}},
        "trigger.trigger_kwargs.end_date",
    ),
    (
        {"trigger": "interval", "trigger_kwargs": {"hours": -2, "start_date": A_ISO}},
        "trigger.trigger_kwargs.hours",
    ),
    ({"trigger": "interval", "trigger_kwargs": {"hours": 2}}, "trigger.trigger_kwargs.start_date"),
    ({"trigger": "date", "trigger_kwargs": {}}, "trigger.trigger_kwargs.run_date"),
    (
        {"trigger": "date", "trigger_kwargs": {"run_date": "soon"}},
        "trigger.trigger_kwargs.run_date",
    ),
    (
        {
            "trigger": "calendarinterval",
            "trigger_kwargs": {"months": 1, "hour": 99, "start_date": "2026-01-01"},
        },
        "trigger.trigger_kwargs.hour",
    ),
]


@pytest.mark.parametrize(("spec", "field"), BAD_SPECS)
def test_bad_specs_name_the_field(spec: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        build_trigger(spec)
    err = info.value
    assert isinstance(err, InvalidTriggerError | InvalidCronError)
    assert err.field == field
    assert err.message  # says why
    assert str(err).startswith(f"{field}: ")


# -- round trip ------------------------------------------------------------------------------

ZONES = st.sampled_from(["UTC", "Europe/Stockholm", "America/Santiago", "Asia/Kolkata"])
JITTER = st.one_of(st.just(0), st.integers(1, 600), st.floats(0.5, 100.0))
DATETIMES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1))


def _iso(value: datetime, aware: bool) -> str:
    return (value.replace(tzinfo=UTC) if aware else value).isoformat()


def with_jitter(spec: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda s, j: {**s, "jitter": j} if j else s, spec, JITTER)


CRON_EXPRESSIONS = st.sampled_from(
    [
        "0 3 * * *",
        "*/15 * * * *",
        "30 2 * * 1-5",
        "0 0 L * *",
        "0 9 * * MON#2",
        "@hourly",
        "0 0 12 * * ?",
        "0 30 9 ? * 6L 2026-2040",
        "0 0 1W * *",
    ]
)
POLICIES = st.sampled_from(["cron", "instant", "once"])

CRON_SHAPES = st.one_of(
    CRON_EXPRESSIONS,
    st.builds(lambda e, p: {"cron": e, "dst_policy": p}, CRON_EXPRESSIONS, POLICIES),
    st.builds(lambda e: {"cron_expression": e, "day_match": "and"}, CRON_EXPRESSIONS),
    st.builds(
        lambda e, p, w: {"type": "cron", "expression": e, "dst_policy": p, "weekdays": w},
        CRON_EXPRESSIONS,
        POLICIES,
        st.sampled_from(["posix", "iso"]),
    ),
)
INTERVAL_SHAPES = st.one_of(
    st.builds(
        lambda u, n, a, aware: {"type": "interval", u: n, "anchor": _iso(a, aware)},
        st.sampled_from(["weeks", "days", "hours", "minutes", "seconds"]),
        st.integers(1, 500),
        DATETIMES,
        st.booleans(),
    ),
    st.builds(
        lambda u, n: {f"interval_{u}": n},
        st.sampled_from(["seconds", "minutes", "hours", "days"]),
        st.one_of(st.integers(1, 1000), st.floats(1.0, 1000.0)),
    ),
    st.builds(
        lambda n, s: {"trigger": "interval", "trigger_kwargs": {"minutes": n, "start_date": s}},
        st.integers(1, 1000),
        DATETIMES.map(lambda d: d.isoformat()),
    ),
)
DATE_SHAPES = st.one_of(
    st.builds(
        lambda d, aware: {"type": "date", "run_at": _iso(d, aware)}, DATETIMES, st.booleans()
    ),
    st.builds(lambda d: {"type": "date", "run_date": d.isoformat()}, DATETIMES),
    st.builds(
        lambda d: {"trigger": "date", "trigger_kwargs": {"run_date": d.isoformat()}}, DATETIMES
    ),
)
CALENDAR_SHAPES = st.one_of(
    st.builds(
        lambda y, m, w, d, h, a, p: {
            "type": "calendar",
            "years": y,
            "months": m,
            "weeks": w,
            "days": d or int(y + m + w == 0),
            "hour": h,
            "anchor": a.isoformat(),
            "dst_policy": p,
        },
        st.integers(0, 3),
        st.integers(0, 13),
        st.integers(0, 4),
        st.integers(0, 40),
        st.integers(0, 23),
        st.dates(date(2000, 1, 1), date(2060, 1, 1)),
        POLICIES,
    ),
    st.builds(
        lambda m, h: {"trigger": "calendarinterval", "trigger_kwargs": {"months": m, "hour": h}},
        st.integers(1, 12),
        st.integers(0, 23),
    ),
)
APS_CRON_SHAPES = st.builds(
    lambda kw: {"trigger": "cron", "trigger_kwargs": kw},
    st.fixed_dictionaries({}, optional={k: v for k, v in APS_FIELD_VALUES.items() if k != "day"}),
)
LEAVES = st.one_of(CRON_SHAPES, INTERVAL_SHAPES, DATE_SHAPES, CALENDAR_SHAPES, APS_CRON_SHAPES)
COMBINED = st.one_of(
    st.builds(
        lambda ts, th: {"type": "and", "triggers": ts, "threshold": th},
        st.lists(LEAVES, min_size=1, max_size=3),
        st.one_of(st.integers(0, 60), st.floats(0, 5)),
    ),
    st.builds(lambda ts: {"type": "or", "triggers": ts}, st.lists(LEAVES, min_size=1, max_size=3)),
)
ANY_SPEC = st.one_of(
    with_jitter(st.one_of(INTERVAL_SHAPES, DATE_SHAPES, CALENDAR_SHAPES, COMBINED)),
    CRON_SHAPES,
    APS_CRON_SHAPES,
)


@settings(max_examples=300, deadline=None)
@given(spec=ANY_SPEC, zone=ZONES, after=DATETIMES)
def test_every_spec_round_trips(spec: Any, zone: str, after: datetime) -> None:
    normalised = normalize_spec(spec, timezone=zone, now=NOW)
    assert json.loads(json.dumps(normalised)) == normalised  # plain JSON
    assert normalised["version"] == 1
    rebuilt = build_trigger(normalised, zone)
    assert rebuilt.to_spec() == normalised
    assert normalize_spec(normalised, timezone=zone) == normalised  # idempotent
    # the normalised spec fires exactly like the shape it came from
    original = build_trigger(spec, zone, start_at=NOW)
    windowed = build_trigger(normalised, zone, start_at=NOW)
    after = after.replace(tzinfo=UTC)
    assert fires(windowed, after, 3) == fires(original, after, 3)
