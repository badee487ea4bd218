"""Time-zone helpers shared by wall-clock triggers (cron, calendar).

A wall time in a zone is *normal* (one instant), in a *gap* (skipped by a spring-forward:
no instant) or in an *overlap* (repeated by a fall-back: two instants). Transitions are
detected from ``utcoffset()`` changes, so shifts of any size work (30 minutes on
Australia/Lord_Howe, a skipped day on Pacific/Apia, midnight changes on America/Santiago).
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache

from duetime.errors import UnknownTimezoneError

_ONE_SECOND = timedelta(seconds=1)


@lru_cache(maxsize=512)
def get_zone(name: str) -> tzinfo:
    """Return the IANA zone ``name`` (from the pinned ``tzdata``), or raise a clear error."""
    if not isinstance(name, str) or not name or name != name.strip():
        raise UnknownTimezoneError(f"unknown time zone {name!r}", field="timezone")
    if name.upper() == "UTC":
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise UnknownTimezoneError(
            f"unknown time zone {name!r} (use an IANA name such as 'Europe/Stockholm')",
            field="timezone",
        ) from exc


def zone_name(tz: tzinfo) -> str:
    """Return the IANA name of ``tz`` (``UTC`` for UTC)."""
    if tz is UTC:
        return "UTC"
    key = getattr(tz, "key", None)
    return key if isinstance(key, str) else str(tz)


@dataclass(frozen=True, slots=True)
class WallResolution:
    """How a naive wall time maps to real instants in a zone.

    ``instants`` holds 0 (gap), 1 (normal) or 2 (overlap: first pass, second pass) UTC
    instants. For a gap, ``gap_end`` is the first real instant after the gap (the
    transition instant), where Debian cron runs fixed-time jobs whose time was skipped.
    """

    instants: tuple[datetime, ...]
    gap_end: datetime | None = None

    @property
    def is_gap(self) -> bool:
        """True when the wall time does not exist."""
        return not self.instants

    @property
    def is_overlap(self) -> bool:
        """True when the wall time happens twice."""
        return len(self.instants) == 2


def resolve_wall(wall: datetime, tz: tzinfo) -> WallResolution:
    """Resolve naive ``wall`` in ``tz`` to its real instants (see :class:`WallResolution`)."""
    if tz is UTC:
        return WallResolution((wall.replace(tzinfo=UTC, fold=0),))
    early = wall.replace(tzinfo=tz, fold=0)
    late = wall.replace(tzinfo=tz, fold=1)
    off_early, off_late = early.utcoffset(), late.utcoffset()
    if off_early == off_late:
        return WallResolution((early.astimezone(UTC),))
    u_early, u_late = early.astimezone(UTC), late.astimezone(UTC)
    exists_early = u_early.astimezone(tz).replace(tzinfo=None) == wall
    exists_late = u_late.astimezone(tz).replace(tzinfo=None) == wall
    if exists_early and exists_late:
        first, second = sorted((u_early, u_late))
        return WallResolution((first, second))
    if exists_early or exists_late:  # pragma: no cover - defensive, zoneinfo is consistent
        return WallResolution((u_early if exists_early else u_late,))
    lo, hi = sorted((u_early, u_late))
    return WallResolution((), gap_end=transition_between(lo, hi, tz))


def transition_between(lo: datetime, hi: datetime, tz: tzinfo) -> datetime:
    """Return the first instant in (lo, hi] whose offset differs from lo's (to the second)."""
    base = lo.astimezone(tz).utcoffset()
    while hi - lo > _ONE_SECOND:
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid <= lo:
            mid = lo + _ONE_SECOND
        if mid.astimezone(tz).utcoffset() == base:
            lo = mid
        else:
            hi = mid
    return hi


def to_wall(instant: datetime, tz: tzinfo) -> datetime:
    """Return the naive wall time of ``instant`` in ``tz``."""
    return instant.astimezone(tz).replace(tzinfo=None)


def ensure_aware(value: datetime, tz: tzinfo) -> datetime:
    """Read a naive datetime in ``tz`` (first pass if ambiguous); return tz-aware UTC."""
    if value.tzinfo is None:
        res = resolve_wall(value, tz)
        if res.instants:
            return res.instants[0]
        assert res.gap_end is not None
        return res.gap_end
    return value.astimezone(UTC)
