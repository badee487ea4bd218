"""planning.py: due fires, misfire/coalesce, overlap, backoff — pure, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duetime import planning
from duetime.models import Overlap, RunState
from duetime.triggers.cron import CronTrigger
from duetime.triggers.date import DateTrigger
from duetime.triggers.interval import IntervalTrigger

T0 = datetime(2030, 1, 1, tzinfo=UTC)


class CountingTrigger:
    """Wraps a trigger and counts ``next_fire_time`` calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0
        self.interval = getattr(inner, "interval", None)  # planning counts interval fires exactly

    def next_fire_time(self, after: datetime) -> datetime | None:
        self.calls += 1
        result: datetime | None = self.inner.next_fire_time(after)
        return result

    def to_spec(self) -> dict[str, Any]:
        return dict(self.inner.to_spec())


def every_second() -> CountingTrigger:
    return CountingTrigger(CronTrigger("* * * * * *"))


def brute_force(trigger: Any, next_run_at: datetime, horizon: datetime) -> list[datetime]:
    fires, fire = [], next_run_at
    while fire is not None and fire <= horizon:
        fires.append(fire)
        fire = trigger.next_fire_time(fire)
    return fires


def test_year_of_downtime_per_second_is_one_missed_row_in_bounded_calls() -> None:
    trigger = every_second()
    now = T0 + timedelta(days=365)
    plan = planning.plan_fires(trigger, next_run_at=T0, now=now, misfire_grace_time=60)
    assert plan.missed is not None
    assert plan.missed.first == T0
    assert plan.missed.last == now - timedelta(seconds=61)
    assert plan.missed.count == 365 * 86400 - 60
    assert plan.run_fires == [now]
    assert plan.next_run_at == now + timedelta(seconds=1)
    assert trigger.calls < 2 * planning.MAX_COUNTED_FIRES  # not 31 million


def test_year_of_downtime_interval_count_is_exact_and_cheap() -> None:
    trigger = CountingTrigger(IntervalTrigger(seconds=1, anchor=T0))
    now = T0 + timedelta(days=365, microseconds=500)
    plan = planning.plan_fires(trigger, next_run_at=T0, now=now, misfire_grace_time=60)
    assert plan.missed is not None
    assert plan.missed.count == 365 * 86400 - 59  # the fire at now - 60 s is 500 µs too old
    assert trigger.calls < 200


def test_no_grace_limit_with_coalesce_runs_only_the_latest() -> None:
    trigger = every_second()
    now = T0 + timedelta(days=30)
    plan = planning.plan_fires(trigger, next_run_at=T0, now=now, misfire_grace_time=None)
    assert plan.missed is None
    assert plan.run_fires == [now]
    assert trigger.calls < 200


def test_without_coalesce_each_fire_in_grace_runs() -> None:
    trigger = CronTrigger("* * * * *")
    now = T0 + timedelta(minutes=10, seconds=30)
    plan = planning.plan_fires(
        trigger, next_run_at=T0, now=now, misfire_grace_time=300, coalesce=False
    )
    assert plan.run_fires == [T0 + timedelta(minutes=m) for m in range(6, 11)]
    assert plan.missed == planning.MissedFires(T0, T0 + timedelta(minutes=5), 6)


def test_without_coalesce_at_most_100_runs_rest_missed() -> None:
    trigger = every_second()
    now = T0 + timedelta(days=2)
    plan = planning.plan_fires(
        trigger, next_run_at=T0, now=now, misfire_grace_time=None, coalesce=False
    )
    assert len(plan.run_fires) == planning.MAX_CATCHUP_RUNS
    assert plan.run_fires[-1] == now
    assert plan.run_fires[0] == now - timedelta(seconds=99)
    assert plan.missed is not None
    assert plan.missed.last == now - timedelta(seconds=100)
    assert plan.missed.count == 2 * 86400 - 99
    assert trigger.calls < 3000


def test_nothing_due_keeps_next_run_at() -> None:
    trigger = CronTrigger("0 * * * *")
    plan = planning.plan_fires(trigger, next_run_at=T0 + timedelta(hours=1), now=T0)
    assert plan == planning.FirePlan(next_run_at=T0 + timedelta(hours=1))
    assert not plan.completed


def test_coalesce_folds_the_backlog_but_not_an_upcoming_fire() -> None:
    trigger = CronTrigger("* * * * * *")
    now = T0 + timedelta(seconds=10, microseconds=400_000)
    plan = planning.plan_fires(trigger, next_run_at=T0, now=now, lookahead_seconds=1)
    assert plan.run_fires == [T0 + timedelta(seconds=10), T0 + timedelta(seconds=11)]
    assert plan.missed is None


def test_lookahead_creates_the_run_before_its_instant() -> None:
    trigger = CronTrigger("* * * * *")
    fire = T0 + timedelta(minutes=1)
    plan = planning.plan_fires(
        trigger, next_run_at=fire, now=fire - timedelta(seconds=0.5), lookahead_seconds=1
    )
    assert plan.run_fires == [fire]
    assert plan.next_run_at == fire + timedelta(minutes=1)


def test_one_off_completes() -> None:
    trigger = DateTrigger(T0)
    plan = planning.plan_fires(trigger, next_run_at=T0, now=T0 + timedelta(seconds=5))
    assert plan.run_fires == [T0]
    assert plan.completed


def test_one_off_beyond_grace_is_missed_and_completes() -> None:
    trigger = DateTrigger(T0)
    plan = planning.plan_fires(trigger, next_run_at=T0, now=T0 + timedelta(hours=1))
    assert plan.run_fires == []
    assert plan.missed == planning.MissedFires(T0, T0, 1)
    assert plan.completed


def test_end_date_completes() -> None:
    trigger = CronTrigger("0 * * * *", end_at=T0 + timedelta(hours=2))
    plan = planning.plan_fires(
        trigger, next_run_at=T0 + timedelta(hours=2), now=T0 + timedelta(hours=2)
    )
    assert plan.run_fires == [T0 + timedelta(hours=2)]
    assert plan.completed


def test_dst_spring_forward_fires_once_after_gap() -> None:
    trigger = CronTrigger("30 2 * * *", "Europe/Stockholm")
    night = datetime(2030, 3, 31, 1, 0, tzinfo=UTC)  # 03:00 local, right after the gap
    plan = planning.plan_fires(
        trigger, next_run_at=night, now=night + timedelta(seconds=1), misfire_grace_time=60
    )
    assert plan.run_fires == [night]
    assert plan.next_run_at == datetime(2030, 4, 1, 0, 30, tzinfo=UTC)


@settings(max_examples=150, deadline=None)
@given(
    period=st.integers(min_value=1, max_value=600),
    offset=st.integers(min_value=0, max_value=600),
    downtime=st.integers(min_value=0, max_value=20_000),
    grace=st.one_of(st.none(), st.integers(min_value=0, max_value=5_000)),
    coalesce=st.booleans(),
    lookahead=st.sampled_from([0.0, 1.0, 5.0]),
)
def test_matches_brute_force(
    period: int,
    offset: int,
    downtime: int,
    grace: int | None,
    coalesce: bool,
    lookahead: float,
) -> None:
    trigger = IntervalTrigger(seconds=period, anchor=T0 + timedelta(seconds=offset))
    first = trigger.anchor
    now = first + timedelta(seconds=downtime, microseconds=250)
    horizon = now + timedelta(seconds=lookahead)
    plan = planning.plan_fires(
        trigger,
        next_run_at=first,
        now=now,
        lookahead_seconds=lookahead,
        misfire_grace_time=grace,
        coalesce=coalesce,
    )
    due = brute_force(trigger, first, horizon)
    cutoff = None if grace is None else now - timedelta(seconds=grace)
    in_grace = [f for f in due if (cutoff is None or f >= cutoff) and f <= now]
    upcoming = [f for f in due if f > now]
    backlog_runs = in_grace[-1:] if coalesce else in_grace[-planning.MAX_CATCHUP_RUNS :]
    assert plan.run_fires == backlog_runs + upcoming
    kept = set(in_grace) | set(upcoming)
    expected_missed = [f for f in due if f not in kept]
    if not coalesce:
        expected_missed += in_grace[: -planning.MAX_CATCHUP_RUNS]
    if expected_missed:
        assert plan.missed == planning.MissedFires(
            expected_missed[0], expected_missed[-1], len(expected_missed)
        )
    else:
        assert plan.missed is None
    assert plan.next_run_at == trigger.next_fire_time(due[-1])


@settings(max_examples=60, deadline=None)
@given(
    minutes=st.integers(min_value=0, max_value=3 * 24 * 60),
    grace=st.one_of(st.none(), st.integers(min_value=0, max_value=4 * 3600)),
    coalesce=st.booleans(),
)
def test_cron_across_dst_matches_brute_force(
    minutes: int, grace: int | None, coalesce: bool
) -> None:
    trigger = CronTrigger("*/7 * * * *", "America/New_York")
    first = trigger.next_fire_time(datetime(2030, 3, 9, 12, 0, tzinfo=UTC))
    assert first is not None
    now = first + timedelta(minutes=minutes)
    plan = planning.plan_fires(
        trigger, next_run_at=first, now=now, misfire_grace_time=grace, coalesce=coalesce
    )
    due = brute_force(trigger, first, now)
    cutoff = None if grace is None else now - timedelta(seconds=grace)
    in_grace = [f for f in due if cutoff is None or f >= cutoff]
    expected_runs = in_grace[-1:] if coalesce else in_grace[-planning.MAX_CATCHUP_RUNS :]
    assert plan.run_fires == expected_runs
    missed = [f for f in due if f not in expected_runs and (not coalesce or f not in in_grace)]
    assert (plan.missed.count if plan.missed else 0) == len(missed)


@pytest.mark.parametrize(
    ("policy", "max_instances", "active", "new", "states", "replaced"),
    [
        (Overlap.SKIP, 1, 0, 1, ["pending"], 0),
        (Overlap.SKIP, 1, 1, 1, ["skipped"], 0),
        (Overlap.SKIP, 2, 1, 2, ["pending", "skipped"], 0),
        (Overlap.BUFFER_ONE, 1, 1, 1, ["pending"], 0),
        (Overlap.BUFFER_ONE, 1, 2, 1, ["skipped"], 0),
        (Overlap.BUFFER_ONE, 1, 0, 3, ["pending", "pending", "skipped"], 0),
        (Overlap.BUFFER_ALL, 1, 5, 2, ["pending", "pending"], 0),
        (Overlap.REPLACE, 1, 0, 1, ["pending"], 0),
        (Overlap.REPLACE, 1, 1, 1, ["pending"], 1),
        (Overlap.REPLACE, 2, 2, 1, ["pending"], 1),
    ],
)
def test_overlap(
    policy: Overlap, max_instances: int, active: int, new: int, states: list[str], replaced: int
) -> None:
    decision = planning.decide_overlap(
        policy, max_instances=max_instances, active=active, new_fires=new
    )
    assert decision.states == [RunState(s) for s in states]
    assert decision.replace_count == replaced


def test_retry_delay_doubles_with_jitter_and_cap() -> None:
    for attempt, base in [(2, 10), (3, 20), (4, 40), (5, 80)]:
        delay = planning.retry_delay(10, attempt, f"run-{attempt}").total_seconds()
        assert base * 0.9 <= delay <= base * 1.1
    assert planning.retry_delay(10, 30, "x").total_seconds() <= 3600
    assert planning.retry_delay(10, 3, "same") == planning.retry_delay(10, 3, "same")
    delays = {planning.retry_delay(10, 2, f"r{i}") for i in range(20)}
    assert len(delays) > 1


def test_available_at_adds_deterministic_jitter() -> None:
    at = planning.available_at("sched", T0, 30)
    assert T0 <= at <= T0 + timedelta(seconds=30)
    assert at == planning.available_at("sched", T0, 30)
    assert planning.available_at("sched", T0, 0) == T0
