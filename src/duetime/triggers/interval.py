"""IntervalTrigger: fires at ``anchor + k·interval`` in elapsed time (DST plays no part)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from duetime.errors import InvalidTriggerError
from duetime.triggers.base import MAX_SEARCH_YEARS, SPEC_VERSION, FireWindow, as_zone
from duetime.triggers.jitter import check_jitter
from duetime.triggers.tz import ensure_aware

#: The units of an interval, in spec order.
INTERVAL_UNITS = ("weeks", "days", "hours", "minutes", "seconds")

#: The longest interval accepted: a longer one could not fire within a search bound.
MAX_INTERVAL = timedelta(days=366 * MAX_SEARCH_YEARS)
#: Shorter intervals would write a run (or a skipped row) on every engine cycle.
MIN_INTERVAL = timedelta(seconds=1)


def json_number(value: float) -> int | float:
    """Return integral numbers as int, so ``1.0`` and ``1`` normalise alike."""
    return int(value) if float(value).is_integer() else value


class IntervalTrigger:
    """Every ``weeks/days/hours/minutes/seconds`` counted from ``anchor`` (elapsed time).

    The grid is ``anchor + k·interval`` for every integer k ≥ 0; ``next_fire_time`` is
    computed in O(1), without stepping. ``timezone`` is only used to read a naive anchor.
    """

    def __init__(
        self,
        *,
        weeks: float = 0,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
        anchor: datetime,
        timezone: str | tzinfo = "UTC",
        jitter: float = 0.0,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
    ) -> None:
        zone = as_zone(timezone)
        self.units = dict(zip(INTERVAL_UNITS, (weeks, days, hours, minutes, seconds), strict=True))
        self.interval = _interval_of(self.units)
        self.anchor = ensure_aware(anchor, zone)
        self.jitter = check_jitter(jitter)
        self.window = FireWindow.of(start_at, end_at, zone)

    def next_fire_time(self, after: datetime) -> datetime | None:
        """Return the first grid instant strictly after ``after`` (None past ``end_at``)."""
        floor = self.window.floor(after)
        if floor < self.anchor:
            return self.window.admit(self.anchor)
        steps = (floor - self.anchor) // self.interval + 1
        try:
            fire = self.anchor + steps * self.interval
        except OverflowError:
            return None
        return self.window.admit(fire)

    def to_spec(self) -> dict[str, Any]:
        """Return ``{"version":1,"type":"interval", <units>, "anchor": ISO UTC}``."""
        spec: dict[str, Any] = {"version": SPEC_VERSION, "type": "interval"}
        spec.update({unit: json_number(self.units[unit]) for unit in INTERVAL_UNITS})
        spec["anchor"] = self.anchor.isoformat()
        if self.jitter:
            spec["jitter"] = self.jitter
        return spec

    def describe(self) -> str:
        """Return e.g. ``every 1 day 12 hours from 2026-01-01T00:00:00+00:00``."""
        parts = [
            f"{json_number(value)} {unit[:-1] if value == 1 else unit}"
            for unit, value in self.units.items()
            if value
        ]
        return f"every {' '.join(parts)} from {self.anchor.astimezone(UTC).isoformat()}"


def _interval_of(units: dict[str, float]) -> timedelta:
    """Validate the units and return their sum; it must be > 0 and ≤ 100 years."""
    for unit, value in units.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidTriggerError(f"must be a number, got {type(value).__name__}", field=unit)
        if not value >= 0 or value == float("inf"):
            raise InvalidTriggerError(f"must be a finite number ≥ 0, got {value!r}", field=unit)
    try:
        total = timedelta(**units)
    except OverflowError:
        total = MAX_INTERVAL * 2
    if total > MAX_INTERVAL:
        raise InvalidTriggerError(
            f"the interval exceeds {MAX_SEARCH_YEARS} years (the search bound)"
        )
    if total <= timedelta(0):
        raise InvalidTriggerError(
            "the interval must be longer than 0 (set weeks, days, hours, minutes or seconds)"
        )
    if total < MIN_INTERVAL:
        raise InvalidTriggerError(
            f"the interval must be at least 1 second (cron's finest step), got {total}"
        )
    return total
