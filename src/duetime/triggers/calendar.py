"""CalendarIntervalTrigger: every N calendar units at a wall-clock time in a zone.

Fire k falls on ``anchor + k·(years, months)`` — the day clamped to the month's last day —
plus ``k·(weeks·7 + days)`` days, at ``hour:minute:second`` local time. Dates are always
computed from the anchor, never from the previous fire, so a Jan 31 anchor with
``months=1`` gives Feb 28 (29) → Mar 31 → Apr 30, not Feb 28 → Mar 28.

Calendar triggers are *fixed-time* under ``dst_policy`` (DESIGN §2): ``"cron"`` fires a
wall time in a gap once at the gap's end and an overlapped one at its first pass;
``"instant"`` skips gaps and fires both passes; ``"once"`` skips gaps and fires the first.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from duetime.errors import InvalidTriggerError
from duetime.triggers.base import (
    DST_POLICIES,
    MAX_SEARCH_YEARS,
    SPEC_VERSION,
    FireWindow,
    as_zone,
)
from duetime.triggers.jitter import check_jitter
from duetime.triggers.tz import resolve_wall, to_wall, zone_name

#: The step units of a calendar trigger, in spec order.
CALENDAR_UNITS = ("years", "months", "weeks", "days")

#: The wall-clock fields and their inclusive upper bounds.
TIME_FIELDS = {"hour": 23, "minute": 59, "second": 59}

_MONTHS_PER_YEAR = 12
_DAYS_PER_WEEK = 7
#: The fewest days each unit can span (a clamped month is never shorter than 28 days).
_MIN_DAYS = {"years": 365, "months": 28, "weeks": _DAYS_PER_WEEK, "days": 1}
#: Start the scan this many local days before ``after``: UTC offsets differ by < 2 days.
_SCAN_MARGIN = timedelta(days=2)
#: Once on the right date, a fire is found within a few steps (each step ≥ 1 day).
_MAX_SCAN_STEPS = 16


def _check_int(value: object, field: str, low: int, high: int) -> int:
    """Return ``value`` as an int in [low, high] or raise naming ``field``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTriggerError(f"must be a whole number, got {value!r}", field=field)
    if not low <= value <= high:
        raise InvalidTriggerError(f"{value} is out of range {low}–{high}", field=field)
    return value


class CalendarIntervalTrigger:
    """Every ``years/months/weeks/days`` from ``anchor`` (a date), at a wall-clock time."""

    def __init__(
        self,
        *,
        years: int = 0,
        months: int = 0,
        weeks: int = 0,
        days: int = 0,
        hour: int = 0,
        minute: int = 0,
        second: int = 0,
        anchor: date,
        timezone: str | tzinfo = "UTC",
        dst_policy: str = "cron",
        jitter: float = 0.0,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
    ) -> None:
        self.zone = as_zone(timezone)
        limit = MAX_SEARCH_YEARS * 366
        steps = {"years": years, "months": months, "weeks": weeks, "days": days}
        self.steps = {unit: _check_int(v, unit, 0, limit) for unit, v in steps.items()}
        step_days = sum(_MIN_DAYS[unit] * n for unit, n in self.steps.items())
        if step_days == 0:
            raise InvalidTriggerError("set at least one of years, months, weeks or days > 0")
        if step_days > limit:
            raise InvalidTriggerError(f"the step exceeds {MAX_SEARCH_YEARS} years")
        self._min_step_days = step_days
        clock = {"hour": hour, "minute": minute, "second": second}
        hms = [_check_int(clock[name], name, 0, top) for name, top in TIME_FIELDS.items()]
        self.time = time(hms[0], hms[1], hms[2])
        if isinstance(anchor, datetime) or not isinstance(anchor, date):
            raise InvalidTriggerError(f"must be a date, got {anchor!r}", field="anchor")
        self.anchor = anchor
        if dst_policy not in DST_POLICIES:
            raise InvalidTriggerError(
                f"unknown policy {dst_policy!r} (use one of {', '.join(DST_POLICIES)})",
                field="dst_policy",
            )
        self.dst_policy = dst_policy
        self.jitter = check_jitter(jitter)
        self.window = FireWindow.of(start_at, end_at, self.zone)

    def date_at(self, k: int) -> date | None:
        """Return the date of fire ``k`` (None beyond year 9999)."""
        a = self.anchor
        month_index = (
            a.month - 1 + k * (self.steps["years"] * _MONTHS_PER_YEAR + self.steps["months"])
        )
        year, month = a.year + month_index // _MONTHS_PER_YEAR, month_index % _MONTHS_PER_YEAR + 1
        if year > date.max.year:
            return None
        day = min(a.day, calendar.monthrange(year, month)[1])
        shift = k * (self.steps["weeks"] * _DAYS_PER_WEEK + self.steps["days"])
        try:
            return date(year, month, day) + timedelta(days=shift)
        except OverflowError:
            return None

    def instants_on(self, day: date) -> tuple[datetime, ...]:
        """Return the UTC instants of the wall time on ``day`` under the DST policy."""
        res = resolve_wall(datetime.combine(day, self.time), self.zone)
        if res.is_gap:
            return (res.gap_end,) if self.dst_policy == "cron" and res.gap_end else ()
        if res.is_overlap and self.dst_policy != "instant":
            return res.instants[:1]
        return res.instants

    def next_fire_time(self, after: datetime) -> datetime | None:
        """Return the first fire strictly after ``after`` (None when there is none)."""
        floor = self.window.floor(after)
        k = self._first_k_on_or_after(to_wall(floor, self.zone).date() - _SCAN_MARGIN)
        for _ in range(_MAX_SCAN_STEPS):
            day = None if k is None else self.date_at(k)
            if k is None or day is None:
                return None
            try:
                instants = self.instants_on(day)
            except OverflowError:  # the wall time lies past the end of the calendar
                return None
            for fire in instants:
                if fire > floor:
                    return self.window.admit(fire)
            k += 1
        return None  # pragma: no cover - each step moves ≥ 1 day, so the loop always returns

    def _first_k_on_or_after(self, target: date) -> int | None:
        """Binary-search the first k whose date is ≥ ``target`` (None if past year 9999)."""
        if target <= self.anchor:
            return 0
        lo, hi = 0, (target - self.anchor).days // self._min_step_days + 1
        hi_date = self.date_at(hi)
        if hi_date is None:
            return None
        if hi_date < target:  # pragma: no cover - _MIN_DAYS are true lower bounds
            raise AssertionError("calendar step lower bound violated")
        while lo < hi:
            mid = (lo + hi) // 2
            mid_date = self.date_at(mid)
            if mid_date is not None and mid_date >= target:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def to_spec(self) -> dict[str, Any]:
        """Return the normalised ``{"type":"calendar", ...}`` spec."""
        spec: dict[str, Any] = {"version": SPEC_VERSION, "type": "calendar"}
        spec.update(self.steps)
        spec.update(hour=self.time.hour, minute=self.time.minute, second=self.time.second)
        spec["anchor"] = self.anchor.isoformat()
        spec["dst_policy"] = self.dst_policy
        if self.jitter:
            spec["jitter"] = self.jitter
        return spec

    def describe(self) -> str:
        """Return e.g. ``every 1 month from 2026-01-31 at 03:00:00 Europe/Stockholm``."""
        parts = [f"{n} {unit[:-1] if n == 1 else unit}" for unit, n in self.steps.items() if n]
        return (
            f"every {' '.join(parts)} from {self.anchor.isoformat()} at "
            f"{self.time.isoformat()} {zone_name(self.zone)}"
        )
