"""jitter_offset: deterministic, uniform in [0, jitter], identical across processes."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from duetime.errors import InvalidTriggerError
from duetime.triggers.jitter import MAX_JITTER_SECONDS, check_jitter, jitter_offset

FIRE = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)
SCHEDULE = "6f1c2a0e-9d55-4d8e-8f0a-2b3c4d5e6f70"


@given(
    schedule_id=st.text(max_size=40),
    scheduled_for=st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    jitter=st.floats(min_value=0, max_value=MAX_JITTER_SECONDS, allow_nan=False),
)
def test_offset_is_within_range_and_deterministic(
    schedule_id: str, scheduled_for: datetime, jitter: float
) -> None:
    offset = jitter_offset(schedule_id, scheduled_for, jitter)
    assert timedelta(0) <= offset
    assert offset.total_seconds() <= jitter
    assert jitter_offset(schedule_id, scheduled_for, jitter) == offset


def test_same_instant_in_another_zone_gives_the_same_offset() -> None:
    elsewhere = FIRE.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert jitter_offset(SCHEDULE, elsewhere, 300) == jitter_offset(SCHEDULE, FIRE, 300)


def test_offset_depends_on_schedule_and_fire() -> None:
    base = jitter_offset(SCHEDULE, FIRE, 3600)
    others = {jitter_offset(SCHEDULE, FIRE + timedelta(minutes=i), 3600) for i in range(1, 20)} | {
        jitter_offset(f"{SCHEDULE}-{i}", FIRE, 3600) for i in range(20)
    }
    assert len(others | {base}) > 30  # practically all distinct


def test_offsets_spread_uniformly() -> None:
    samples = [
        jitter_offset(SCHEDULE, FIRE + timedelta(minutes=i), 100).total_seconds()
        for i in range(4000)
    ]
    buckets = [0] * 10
    for value in samples:
        buckets[min(int(value // 10), 9)] += 1
    assert all(300 < count < 500 for count in buckets), buckets  # ~400 each
    assert 45 < sum(samples) / len(samples) < 55


def test_zero_jitter_is_zero() -> None:
    assert jitter_offset(SCHEDULE, FIRE, 0) == timedelta(0)


def test_naive_fire_is_refused() -> None:
    with pytest.raises(ValueError, match="tz-aware"):
        jitter_offset(SCHEDULE, datetime(2026, 1, 1), 5)


def test_same_value_in_another_process() -> None:
    code = (
        "from datetime import datetime, UTC;"
        "from duetime.triggers.jitter import jitter_offset;"
        f"print(jitter_offset({SCHEDULE!r}, datetime(2026, 5, 1, 3, 0, tzinfo=UTC), 600)"
        ".total_seconds())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # a different str-hash seed must not matter
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()
    assert float(out) == jitter_offset(SCHEDULE, FIRE, 600).total_seconds()


def test_known_value_is_stable() -> None:
    # Pinned: changing the hash would move every replica's jitter after an upgrade.
    assert jitter_offset(SCHEDULE, FIRE, 600) == timedelta(microseconds=PINNED_MICROS)


PINNED_MICROS = 207_318_712


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "5", True, None, 10**7])
def test_check_jitter_refuses(bad: object) -> None:
    with pytest.raises(InvalidTriggerError) as info:
        check_jitter(bad)
    assert info.value.field == "jitter"


def test_check_jitter_accepts_numbers() -> None:
    assert check_jitter(0) == 0.0
    assert check_jitter(2) == 2.0
    assert check_jitter(0.25) == 0.25
