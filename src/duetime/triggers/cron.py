"""The cron trigger: cron expressions evaluated on a zone's wall clock (DESIGN §2).

How a next fire is found (see docs/decisions/0001-cron-evaluator.md):

* Everything is integer epoch seconds. The zone's transitions come from a lazily built,
  shared :class:`~duetime.triggers.cron_offsets.OffsetTable`; between two transitions the
  offset is constant, so wall time = instant + offset is monotonic there (a *segment*).
* Inside a segment, :meth:`CronTrigger._next_wall` jumps field by field (year, month, day,
  hour, minute, second) through precomputed next-value tables — never minute by minute.
* At a transition the DST policy decides: a spring-forward *gap* makes wall times vanish
  (fixed-time expressions under ``dst_policy="cron"`` fire once at the gap's end); a
  fall-back *overlap* repeats wall times (skipped unless the expression is non-fixed under
  ``"cron"`` or the policy is ``"instant"``).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from duetime.errors import InvalidTriggerError, UnknownTimezoneError
from duetime.triggers.base import DST_POLICIES, MAX_SEARCH_YEARS, SPEC_VERSION
from duetime.triggers.cron_describe import describe_cron
from duetime.triggers.cron_offsets import fixed_offset, table_for
from duetime.triggers.cron_parse import (
    DAY_MATCH_MODES,
    WEEKDAY_CONVENTIONS,
    CronExpression,
    parse_cron,
)
from duetime.triggers.jitter import check_jitter
from duetime.triggers.tz import ensure_aware, get_zone

__all__ = ["CronExpression", "CronTrigger", "parse_cron"]

_DAY = 86400
_HOUR = 3600
_MINUTE = 60
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MONTH_CACHE_LIMIT = 4096
#: Last year searched: datetime stops at 9999 and a fire needs room for the zone offset.
_LAST_YEAR = 9998
#: Year from which the construction-time "can it ever fire?" check searches when the
#: expression has no year field; 400 years hold every Gregorian calendar pattern.
_PROBE_YEAR = 2000
_CALENDAR_CYCLE_YEARS = 400


class CronTrigger:
    """Fires at the wall-clock times a cron expression names, in ``timezone``.

    ``dst_policy``: ``"cron"`` (Debian cron), ``"instant"`` or ``"once"``; ``weekdays``:
    ``"posix"`` (0 and 7 = Sunday) or ``"iso"`` (0 = Monday … 6 = Sunday); ``day_match``:
    ``"vixie"`` (day-of-month OR day-of-week when both are restricted) or ``"and"``.
    ``jitter`` (seconds) is carried for the planner, which adds it to ``available_at``.
    """

    def __init__(
        self,
        expression: str,
        timezone: str | tzinfo = "UTC",
        *,
        dst_policy: str = "cron",
        weekdays: str = "posix",
        day_match: str = "vixie",
        jitter: float = 0.0,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
    ) -> None:
        _check_choice("dst_policy", dst_policy, DST_POLICIES)
        _check_choice("weekdays", weekdays, WEEKDAY_CONVENTIONS)
        _check_choice("day_match", day_match, DAY_MATCH_MODES)
        self.timezone: tzinfo = _zone(timezone)
        self.parsed = parse_cron(expression, weekdays=weekdays)
        self.expression = self.parsed.expression
        self.dst_policy = dst_policy
        self.weekdays = weekdays
        self.day_match = day_match
        self.jitter = check_jitter(jitter)
        self.start_at = None if start_at is None else ensure_aware(start_at, self.timezone)
        self.end_at = None if end_at is None else ensure_aware(end_at, self.timezone)
        self.is_fixed_time = self.parsed.is_fixed_time
        non_fixed_rule = dst_policy == "instant" or (
            dst_policy == "cron" and not self.is_fixed_time
        )
        self._skip_repeats = not non_fixed_rule
        self._gap_fire = dst_policy == "cron" and self.is_fixed_time
        self._start_ts = None if self.start_at is None else math.ceil(self.start_at.timestamp())
        self._end_ts = None if self.end_at is None else math.floor(self.end_at.timestamp())
        self._fixed_off = fixed_offset(self.timezone)
        self._table = None if self._fixed_off is not None else table_for(self.timezone)
        self._months: dict[int, tuple[int, list[int]]] = {}
        self._check_can_fire()

    # -- public API -------------------------------------------------------------------------

    def next_fire_time(self, after: datetime) -> datetime | None:
        """Return the first fire strictly after ``after`` (tz-aware UTC), or None.

        A naive ``after`` is read in the trigger's zone. The search stops
        ``MAX_SEARCH_YEARS`` after ``after`` and then returns None.
        """
        if after.tzinfo is None:
            after = ensure_aware(after, self.timezone)
        start = math.floor(after.timestamp()) + 1
        if self._start_ts is not None and start < self._start_ts:
            start = self._start_ts
        limit_year = min(after.year + MAX_SEARCH_YEARS, _LAST_YEAR)
        if self._fixed_off is not None:
            wall = self._next_wall(start + self._fixed_off, limit_year)
            fire = None if wall is None else wall - self._fixed_off
        else:
            fire = self._next_zoned(start, limit_year)
        if fire is None or (self._end_ts is not None and fire > self._end_ts):
            return None
        try:
            return datetime.fromtimestamp(fire, UTC)
        except (OverflowError, ValueError, OSError):
            return None

    def to_spec(self) -> dict[str, Any]:
        """Return the normalised spec (the zone is a schedule field, not part of it)."""
        spec: dict[str, Any] = {
            "version": SPEC_VERSION,
            "type": "cron",
            "expression": self.expression,
            "dst_policy": self.dst_policy,
            "weekdays": self.weekdays,
            "day_match": self.day_match,
        }
        if self.jitter:
            spec["jitter"] = self.jitter
        return spec

    def describe(self) -> str:
        """Return a plain-language description, e.g. ``at 03:00, every day``."""
        return describe_cron(self.parsed, day_match=self.day_match)

    def __repr__(self) -> str:
        return (
            f"CronTrigger({self.expression!r}, timezone={self.timezone!s}, "
            f"dst_policy={self.dst_policy!r}, weekdays={self.weekdays!r}, "
            f"day_match={self.day_match!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronTrigger):
            return NotImplemented
        return (
            self.to_spec() == other.to_spec()
            and self.timezone == other.timezone
            and (self.start_at, self.end_at) == (other.start_at, other.end_at)
        )

    def __hash__(self) -> int:
        return hash((self.expression, self.dst_policy, self.weekdays, self.day_match))

    # -- evaluation -------------------------------------------------------------------------

    def _next_zoned(self, start: int, limit_year: int) -> int | None:
        """First fire instant >= ``start`` in a zone with transitions (epoch seconds)."""
        assert self._table is not None
        trans, offs, lo, hi = self._table.state
        if not lo <= start < hi:
            trans, offs, lo, hi = self._table.cover(start)
            if not lo <= start < hi:  # beyond the years datetime supports
                return None
        i = bisect_left(trans, start + 1)  # == bisect_right(trans, start)
        off = offs[i]
        wall_from = start + off
        if i:
            seg_start, prev_off = trans[i - 1], offs[i - 1]
            if prev_off > off and self._skip_repeats:
                wall_from = max(wall_from, seg_start + prev_off)
            elif prev_off < off and self._gap_fire and seg_start == start:
                wall = self._next_wall(start + prev_off, limit_year)
                if wall is not None and wall < start + off:
                    return start
        count = len(trans)
        while True:
            wall = self._next_wall(wall_from, limit_year)
            if wall is None:
                return None
            if i == count:  # no known transition after this one: extend the table
                if wall - off < hi:
                    return wall - off
                if self._table.cover(wall - off)[3] <= wall - off:
                    return None  # beyond the years datetime supports
                return self._next_zoned(start, limit_year)
            seg_end = trans[i]
            if wall < seg_end + off:
                return wall - off
            new_off = offs[i + 1]
            if new_off > off:  # spring forward: walls [seg_end+off, seg_end+new_off) vanish
                if self._gap_fire and wall < seg_end + new_off:
                    return seg_end
                wall_from = seg_end + new_off
            else:  # fall back: walls [seg_end+new_off, seg_end+off) happen again
                wall_from = seg_end + (off if self._skip_repeats else new_off)
            off = new_off
            i += 1

    def _next_wall(self, wall: int, limit_year: int) -> int | None:
        """First matching wall time >= ``wall`` (seconds since 1970-01-01 on the wall clock)."""
        days, rest = divmod(wall, _DAY)
        try:
            day = date.fromordinal(days + _EPOCH_ORDINAL)
        except (ValueError, OverflowError):
            return None
        y, mo, d = day.year, day.month, day.day
        h, rest = divmod(rest, _HOUR)
        mi, s = divmod(rest, _MINUTE)
        p = self.parsed
        mon_nxt, hour_nxt, min_nxt, sec_nxt = p.mon_nxt, p.hour_nxt, p.min_nxt, p.sec_nxt
        years = p.years
        months = self._months
        while y <= limit_year:
            if years is not None and y not in years:
                k = bisect_left(years, y)
                if k == len(years):
                    return None
                y, mo, d, h, mi, s = years[k], 1, 1, 0, 0, 0
                continue
            m2 = mon_nxt[mo]
            if m2 < 0:
                y, mo, d, h, mi, s = y + 1, 1, 1, 0, 0, 0
                continue
            if m2 != mo:
                mo, d, h, mi, s = m2, 1, 0, 0, 0
            month = months.get(y * 16 + mo)
            if month is None:
                month = self._month(y, mo)
            d2 = month[1][d]
            if d2 < 0:
                mo, d, h, mi, s = mo + 1, 1, 0, 0, 0
                continue
            if d2 != d:
                d, h, mi, s = d2, 0, 0, 0
            h2 = hour_nxt[h]
            if h2 < 0:
                d, h, mi, s = d + 1, 0, 0, 0
                continue
            if h2 != h:
                h, mi, s = h2, 0, 0
            m2 = min_nxt[mi]
            if m2 < 0:
                h, mi, s = h + 1, 0, 0
                continue
            if m2 != mi:
                mi, s = m2, 0
            s2 = sec_nxt[s]
            if s2 < 0:
                mi, s = mi + 1, 0
                continue
            return (month[0] + d - 1) * _DAY + h * _HOUR + mi * _MINUTE + s2
        return None

    def _month(self, year: int, month: int) -> tuple[int, list[int]]:
        if len(self._months) >= _MONTH_CACHE_LIMIT:
            self._months.clear()
        found = self.parsed.month_days(year, month, self.day_match)
        self._months[year * 16 + month] = found
        return found

    def _check_can_fire(self) -> None:
        """Refuse an expression whose wall times never exist (``0 0 30 2 *``)."""
        years = self.parsed.years
        first = years[0] if years is not None else _PROBE_YEAR
        last = years[-1] if years is not None else _PROBE_YEAR + _CALENDAR_CYCLE_YEARS
        wall = (date(first, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY
        if self._next_wall(wall, last) is None:
            raise InvalidTriggerError(
                f'cron expression "{self.expression}" can never fire: no calendar date '
                "matches its day, month (and year) fields",
                field="expression",
            )


def _zone(timezone: object) -> tzinfo:
    if isinstance(timezone, tzinfo):
        return timezone
    if isinstance(timezone, str):
        return get_zone(timezone)
    raise UnknownTimezoneError(
        f"time zone must be an IANA name or a tzinfo, not {timezone!r}", field="timezone"
    )


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidTriggerError(
            f"{name} must be one of {', '.join(repr(a) for a in allowed)}, not {value!r}",
            field=name,
        )
