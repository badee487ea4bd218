"""The trigger protocol: ``next_fire_time(after)`` and ``to_spec()``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, runtime_checkable

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
