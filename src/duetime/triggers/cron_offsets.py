"""UTC-offset tables of time zones, as integer seconds, for the cron evaluator.

The cron evaluator works on integer epoch seconds and needs, for an instant, the zone's
offset and the neighbouring transitions. ``zoneinfo`` does not expose its transitions, so
:class:`OffsetTable` finds them by probing ``utcoffset()`` every few hours and bisecting
each change to the second (any size of change: 30 minutes, 2 hours, a skipped day). Years
are probed lazily, once per zone and process, then every look-up is a ``bisect``.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from datetime import UTC, datetime, timedelta, timezone, tzinfo

#: Distance between two offset probes. Two transitions closer than this would be missed;
#: tzdata has none since 1970.
PROBE_SECONDS = 6 * 3600
_YEAR_MIN, _YEAR_MAX = 2, 9997
#: Most years one table spans; a request further away restarts the table there.
MAX_SPAN_YEARS = 400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _year_start(year: int) -> int:
    return int((datetime(year, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds())


def year_of(instant: int) -> int:
    """Return the UTC year of epoch second ``instant`` (clamped to the supported range)."""
    try:
        year = (_EPOCH + timedelta(seconds=instant)).year
    except OverflowError:
        return _YEAR_MIN if instant < 0 else _YEAR_MAX
    return min(max(year, _YEAR_MIN), _YEAR_MAX)


class OffsetTable:
    """Transitions of one zone: ``trans[i]`` is the first second with offset ``offs[i + 1]``.

    ``state`` is ``(trans, offs, lo, hi)``, valid for instants in ``[lo, hi)``; it is
    replaced as a whole when years are added, so readers never see half a table.
    """

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self._years: dict[int, list[tuple[int, int]]] = {}
        self._first_offset: dict[int, int] = {}
        self._lock = threading.Lock()
        self.state: tuple[list[int], list[int], int, int] = ([], [0], 0, 0)

    def offset(self, instant: int) -> int:
        """Return the zone's offset at epoch second ``instant``, in seconds."""
        moment = datetime.fromtimestamp(instant, self.tz)
        off = moment.utcoffset()
        return int(off.total_seconds()) if off is not None else 0

    def cover(self, instant: int) -> tuple[list[int], list[int], int, int]:
        """Make the table cover the UTC years around ``instant``; return the new state.

        The covered years stay contiguous; a request far (> ``MAX_SPAN_YEARS``) from them
        starts a new range.
        """
        year = year_of(instant)
        with self._lock:
            lo, hi = max(year - 1, _YEAR_MIN), min(year + 1, _YEAR_MAX)
            if self._years:
                lo, hi = min(lo, min(self._years)), max(hi, max(self._years))
                if hi - lo > MAX_SPAN_YEARS:
                    self._years.clear()
                    lo, hi = max(year - 1, _YEAR_MIN), min(year + 1, _YEAR_MAX)
            for y in range(lo, hi + 1):
                if y not in self._years:
                    self._years[y] = self._probe_year(y)
            self._rebuild()
            return self.state

    def _probe_year(self, year: int) -> list[tuple[int, int]]:
        start, end = _year_start(year), _year_start(year + 1)
        found: list[tuple[int, int]] = []
        prev_t, prev_off = start, self.offset(start)
        self._first_offset[year] = prev_off
        t = start
        while t < end:
            t = min(t + PROBE_SECONDS, end)
            off = self.offset(t)
            if off != prev_off:
                at = self._bisect(prev_t, t, prev_off)
                found.append((at, self.offset(at)))
            prev_t, prev_off = t, off
        return found

    def _bisect(self, lo: int, hi: int, base: int) -> int:
        """First second in (lo, hi] whose offset differs from ``base``."""
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.offset(mid) == base:
                lo = mid
            else:
                hi = mid
        return hi

    def _rebuild(self) -> None:
        years = sorted(self._years)
        trans: list[int] = []
        offs = [self._first_offset[years[0]]]
        for y in years:
            for at, off in self._years[y]:
                trans.append(at)
                offs.append(off)
        self.state = (trans, offs, _year_start(years[0]), _year_start(years[-1] + 1))


def locate(trans: list[int], instant: int) -> int:
    """Index ``i`` such that ``instant`` has offset ``offs[i]``."""
    return bisect_right(trans, instant)


_TABLES: dict[tzinfo, OffsetTable] = {}
_TABLES_LOCK = threading.Lock()


def fixed_offset(tz: tzinfo) -> int | None:
    """Return the offset in seconds of a fixed-offset zone (UTC, ``timezone(...)``), else None."""
    if tz is UTC or isinstance(tz, timezone):
        off = tz.utcoffset(None)
        return int(off.total_seconds()) if off is not None else 0
    return None


def table_for(tz: tzinfo) -> OffsetTable:
    """Return the shared :class:`OffsetTable` of ``tz``."""
    table = _TABLES.get(tz)
    if table is None:
        with _TABLES_LOCK:
            table = _TABLES.setdefault(tz, OffsetTable(tz))
    return table
