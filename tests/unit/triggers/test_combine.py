"""AndTrigger / OrTrigger: combinations with bounded searches."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

import pytest
from helpers_triggers import fires
from hypothesis import given, settings
from hypothesis import strategies as st

from duetime.errors import InvalidTriggerError
from duetime.triggers.calendar import CalendarIntervalTrigger
from duetime.triggers.combine import MAX_AND_ITERATIONS, AndTrigger, OrTrigger
from duetime.triggers.date import DateTrigger
from duetime.triggers.interval import IntervalTrigger

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def every(seconds: float, offset: float = 0, *, end_at: datetime | None = None) -> IntervalTrigger:
    return IntervalTrigger(seconds=seconds, anchor=T0 + timedelta(seconds=offset), end_at=end_at)


def test_and_fires_where_children_coincide() -> None:
    trigger = AndTrigger([every(6 * 3600), every(4 * 3600)], threshold=0)
    hours = [(t - T0) / timedelta(hours=1) for t in fires(trigger, T0, 4)]
    assert hours == [12, 24, 36, 48]  # lcm(6 h, 4 h)


def test_and_threshold_fires_at_the_latest_child() -> None:
    # Children 30 s apart: outside a 10 s threshold, inside a 60 s one.
    pair = [every(3600), every(3600, offset=30)]
    assert AndTrigger(pair, threshold=60).next_fire_time(T0) == T0 + timedelta(seconds=3630)
    strict = AndTrigger(pair, threshold=10)
    started = time.monotonic()
    assert strict.next_fire_time(T0) is None
    assert time.monotonic() - started < 5


def test_and_never_coinciding_children_return_none_in_bounded_time() -> None:
    # 2 h grids offset by 1 h never meet; the search must give up, not hang.
    trigger = AndTrigger([every(7200), every(7200, offset=3600)], threshold=1)
    started = time.monotonic()
    assert trigger.next_fire_time(T0) is None
    assert time.monotonic() - started < 5


def test_and_with_a_finished_child_is_finished() -> None:
    trigger = AndTrigger([every(60), DateTrigger(T0 + timedelta(minutes=5))], threshold=0)
    assert fires(trigger, T0, 3) == [T0 + timedelta(minutes=5)]


def test_and_mixes_wall_clock_and_elapsed_children() -> None:
    # Every 10 days (elapsed) and monthly on the 11th at 00:00 (calendar).
    monthly = CalendarIntervalTrigger(months=1, anchor=date(2026, 1, 11))
    trigger = AndTrigger([every(10 * 86400), monthly], threshold=0)
    # brute force over the first year
    wanted = []
    day = T0
    while day < T0 + timedelta(days=366):
        if (day - T0).days % 10 == 0 and day.day == 11:
            wanted.append(day)
        day += timedelta(days=1)
    assert fires(trigger, T0 - timedelta(seconds=1), len(wanted)) == wanted


def test_and_respects_start_and_end() -> None:
    start, end = T0 + timedelta(hours=13), T0 + timedelta(hours=40)
    trigger = AndTrigger(
        [every(6 * 3600), every(4 * 3600)], threshold=0, start_at=start, end_at=end
    )
    assert fires(trigger, T0, 5) == [T0 + timedelta(hours=24), T0 + timedelta(hours=36)]


def test_or_is_the_earliest_child_and_dedupes() -> None:
    trigger = OrTrigger([every(3 * 3600), every(2 * 3600)])
    hours = [(t - T0) / timedelta(hours=1) for t in fires(trigger, T0, 6)]
    assert hours == [2, 3, 4, 6, 8, 9]  # 6 h appears once


def test_or_continues_after_a_child_ends() -> None:
    trigger = OrTrigger([DateTrigger(T0 + timedelta(minutes=1)), every(3600)])
    assert fires(trigger, T0, 3) == [
        T0 + timedelta(minutes=1),
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=2),
    ]


def test_or_of_finished_children_is_none() -> None:
    trigger = OrTrigger([DateTrigger(T0), DateTrigger(T0 + timedelta(1))])
    assert trigger.next_fire_time(T0 + timedelta(2)) is None


def test_or_respects_end() -> None:
    trigger = OrTrigger([every(3600)], end_at=T0 + timedelta(hours=2))
    assert fires(trigger, T0, 5) == [T0 + timedelta(hours=1), T0 + timedelta(hours=2)]


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: AndTrigger([]), "triggers"),
        (lambda: OrTrigger([]), "triggers"),
        (lambda: OrTrigger([every(1)] * 51), "triggers"),
        (lambda: AndTrigger([every(1)], threshold=-1), "threshold"),
        (lambda: AndTrigger([every(1)], threshold="1"), "threshold"),
        (lambda: AndTrigger([every(1)], threshold=float("inf")), "threshold"),
        (lambda: OrTrigger([every(1)], jitter=-2), "jitter"),
    ],
)
def test_bad_combinations_are_refused(build: object, field: str) -> None:
    with pytest.raises(InvalidTriggerError) as info:
        build()  # type: ignore[operator]
    assert info.value.field == field


def test_specs_and_descriptions() -> None:
    trigger = AndTrigger([every(60), every(90)], threshold=1.5, jitter=2)
    spec = trigger.to_spec()
    assert spec["type"] == "and"
    assert spec["threshold"] == 1.5
    assert spec["jitter"] == 2.0
    assert spec["triggers"] == [every(60).to_spec(), every(90).to_spec()]
    assert AndTrigger([every(60)]).to_spec()["threshold"] == 1
    assert OrTrigger([every(60)]).to_spec() == {
        "version": 1,
        "type": "or",
        "triggers": [every(60).to_spec()],
    }
    assert trigger.describe().startswith("when all of (every 60 seconds")
    assert OrTrigger([every(60), every(90)]).describe().startswith("when any of (")


def brute_and(periods: list[int], offsets: list[int], threshold: int, horizon: int) -> int | None:
    """First t in (0, horizon] (seconds from T0) where all grids fire within threshold."""
    for latest in range(1, horizon + 1):
        if all(
            any(
                t >= off and (t - off) % p == 0 and t > 0
                for t in range(latest - threshold, latest + 1)
            )
            for p, off in zip(periods, offsets, strict=True)
        ) and any(
            (latest - off) % p == 0 and latest >= off
            for p, off in zip(periods, offsets, strict=True)
        ):
            return latest
    return None


@settings(max_examples=60, deadline=None)
@given(
    grids=st.lists(st.tuples(st.integers(2, 40), st.integers(0, 30)), min_size=2, max_size=3),
    threshold=st.integers(0, 3),
)
def test_and_matches_brute_force(grids: list[tuple[int, int]], threshold: int) -> None:
    periods = [p for p, _ in grids]
    offsets = [o for _, o in grids]
    horizon = 3000
    trigger = AndTrigger(
        [every(p, o) for p, o in grids], threshold=threshold, end_at=T0 + timedelta(seconds=horizon)
    )
    got = trigger.next_fire_time(T0)
    expected = brute_and(periods, offsets, threshold, horizon)
    assert (None if got is None else int((got - T0).total_seconds())) == expected


class CountingTrigger:
    """Wraps a trigger and counts next_fire_time calls."""

    def __init__(self, inner: IntervalTrigger) -> None:
        self.inner = inner
        self.calls = 0

    def next_fire_time(self, after: datetime) -> datetime | None:
        self.calls += 1
        return self.inner.next_fire_time(after)

    def to_spec(self) -> dict[str, object]:
        return self.inner.to_spec()


def test_never_coinciding_search_stops_at_the_iteration_cap() -> None:
    a, b = CountingTrigger(every(7200)), CountingTrigger(every(7200, offset=3600))
    assert AndTrigger([a, b], threshold=1).next_fire_time(T0) is None
    assert a.calls == b.calls == MAX_AND_ITERATIONS
