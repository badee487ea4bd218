"""The trigger protocol: ``next_fire_time(after)`` and ``to_spec()``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol, runtime_checkable

from duetime.errors import InvalidTriggerError
from duetime.triggers.tz import ensure_aware, get_zone

#: Every search for a next fire stops this many years after its start instant.
MAX_SEARCH_YEARS = 100

#: The version written into every normalised trigger spec.
SPEC_VERSION = 1

#: DST policies for wall-clock triggers (DESIGN §2).
DST_POLICIES = ("cron", "instant", "once")


@runtime_checkable
class Trigger(Protocol):
    """Computes fire instants. Pure: never reads the clock."""

    def next_fire_time(self, after: datetime) -> datetime | None:
        """Return the first fire strictly after ``after`` (tz-aware UTC), or None if none."""
        ...

    def to_spec(self) -> dict[str, Any]:
        """Return the normalised, versioned JSON spec that rebuilds this trigger."""
        ...


#: Instants have microsecond resolution: "at or after start_at" = "after start_at - 1 µs".
RESOLUTION = timedelta(microseconds=1)


def as_zone(timezone: str | tzinfo) -> tzinfo:
    """Return ``timezone`` as a tzinfo (IANA names go through :func:`tz.get_zone`)."""
    return get_zone(timezone) if isinstance(timezone, str) else timezone


@dataclass(frozen=True, slots=True)
class FireWindow:
    """The ``start_at`` / ``end_at`` bounds every trigger honours (both inclusive, UTC).

    Triggers search strictly after :meth:`floor` and pass their candidate through
    :meth:`admit`, so a fire never precedes ``start_at`` nor follows ``end_at``.
    """

    start_at: datetime | None = None
    end_at: datetime | None = None
    zone: tzinfo = UTC

    @classmethod
    def of(cls, start_at: datetime | None, end_at: datetime | None, zone: tzinfo) -> FireWindow:
        """Build a window; naive bounds are read in ``zone``."""
        start = ensure_aware(start_at, zone) if start_at is not None else None
        end = ensure_aware(end_at, zone) if end_at is not None else None
        if start is not None and end is not None and end < start:
            raise InvalidTriggerError(
                f"end_date {end.isoformat()} is before start_date {start.isoformat()}",
                field="end_date",
            )
        return cls(start, end, zone)

    def floor(self, after: datetime) -> datetime:
        """Return the instant to search strictly after (``after``, or just before start).

        A naive ``after`` is read in the trigger's zone, as :class:`CronTrigger` does.
        """
        after = ensure_aware(after, self.zone)
        if self.start_at is not None and after < self.start_at:
            return self.start_at - RESOLUTION
        return after

    def admit(self, fire: datetime | None) -> datetime | None:
        """Return ``fire`` unless it lies after ``end_at`` (then None: no more fires)."""
        if fire is None or (self.end_at is not None and fire > self.end_at):
            return None
        return fire
