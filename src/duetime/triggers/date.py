"""DateTrigger: a one-off fire at ``run_at``."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any

from duetime.triggers.base import SPEC_VERSION, FireWindow, as_zone
from duetime.triggers.jitter import check_jitter
from duetime.triggers.tz import ensure_aware


class DateTrigger:
    """Fires once, at ``run_at`` (a naive ``run_at`` is read in ``timezone``).

    A ``run_at`` outside ``[start_at, end_at]`` never fires. Whether a past ``run_at`` is
    acceptable is the caller's decision (it needs ``now``): see :func:`date_in_past_ok`.
    """

    def __init__(
        self,
        run_at: datetime,
        timezone: str | tzinfo = "UTC",
        *,
        jitter: float = 0.0,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
    ) -> None:
        zone = as_zone(timezone)
        self.run_at = ensure_aware(run_at, zone)
        self.jitter = check_jitter(jitter)
        self.window = FireWindow.of(start_at, end_at, zone)

    def next_fire_time(self, after: datetime) -> datetime | None:
        """Return ``run_at`` if it lies strictly after ``after`` (and in the window)."""
        if self.run_at > self.window.floor(after):
            return self.window.admit(self.run_at)
        return None

    def to_spec(self) -> dict[str, Any]:
        """Return ``{"version":1,"type":"date","run_at": ISO UTC}``."""
        spec: dict[str, Any] = {
            "version": SPEC_VERSION,
            "type": "date",
            "run_at": self.run_at.isoformat(),
        }
        if self.jitter:
            spec["jitter"] = self.jitter
        return spec

    def describe(self) -> str:
        """Return e.g. ``once at 2026-01-01T09:00:00+00:00``."""
        return f"once at {self.run_at.isoformat()}"


def date_in_past_ok(run_at: datetime, now: datetime, misfire_grace_time: float | None) -> bool:
    """Tell whether a one-off at ``run_at`` may still be created at ``now``.

    A future ``run_at`` is always fine; a past one only within ``misfire_grace_time``
    seconds (None = no limit), in which case it fires at once.
    """
    if run_at >= now or misfire_grace_time is None:
        return True
    return now - run_at <= timedelta(seconds=misfire_grace_time)
