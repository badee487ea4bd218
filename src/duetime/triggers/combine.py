"""AndTrigger and OrTrigger: combinations of other triggers.

Children share the schedule's time zone; ``start_at`` / ``end_at`` and ``jitter`` belong to
the combination, not to its children.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from duetime.errors import InvalidTriggerError
from duetime.triggers.base import (
    MAX_SEARCH_YEARS,
    RESOLUTION,
    SPEC_VERSION,
    FireWindow,
    Trigger,
    as_zone,
)
from duetime.triggers.interval import json_number
from duetime.triggers.jitter import check_jitter

#: An AndTrigger gives up (returns None) after this many rounds of advancing its children.
MAX_AND_ITERATIONS = 10_000

#: A combination holds at most this many children.
MAX_CHILDREN = 50

#: The default AndTrigger threshold, in seconds.
DEFAULT_THRESHOLD_SECONDS = 1.0

_SEARCH_SPAN = timedelta(days=366 * MAX_SEARCH_YEARS)


def _check_children(children: Sequence[Trigger]) -> tuple[Trigger, ...]:
    if not children:
        raise InvalidTriggerError("needs at least one trigger", field="triggers")
    if len(children) > MAX_CHILDREN:
        raise InvalidTriggerError(
            f"{len(children)} triggers exceed the maximum of {MAX_CHILDREN}", field="triggers"
        )
    return tuple(children)


def _describe(child: Trigger) -> str:
    describe = getattr(child, "describe", None)
    return str(describe()) if callable(describe) else type(child).__name__


class AndTrigger:
    """Fires when every child fires within ``threshold`` seconds; at the latest of them.

    The search advances all children past ``latest − threshold`` until they agree. It
    stops — returning None — after :data:`MAX_AND_ITERATIONS` rounds or once it passes
    :data:`~duetime.triggers.base.MAX_SEARCH_YEARS` beyond ``after``, so children that
    never coincide cost a bounded amount of time.
    """

    def __init__(
        self,
        triggers: Sequence[Trigger],
        *,
        threshold: float = DEFAULT_THRESHOLD_SECONDS,
        timezone: str | tzinfo = "UTC",
        jitter: float = 0.0,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
    ) -> None:
        self.triggers = _check_children(triggers)
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise InvalidTriggerError(
                f"must be a number of seconds, got {threshold!r}", field="threshold"
            )
        if not math.isfinite(threshold) or not 0 <= threshold <= _SEARCH_SPAN.total_seconds():
            raise InvalidTriggerError(
                f"must be a finite number of seconds ≥ 0, got {threshold!r}", field="threshold"
            )
        self.threshold = float(threshold)
        self._threshold = timedelta(seconds=threshold)
        self.jitter = check_jitter(jitter)
        self.window = FireWindow.of(start_at, end_at, as_zone(timezone))

    def next_fire_time(self, after: datetime) -> datetime | None:
        """Return the first instant where all children fire within ``threshold``."""
        cursor = self.window.floor(after)
        try:
            horizon = cursor + _SEARCH_SPAN
        except OverflowError:
            horizon = datetime.max.replace(tzinfo=UTC)
        for _ in range(MAX_AND_ITERATIONS):
            fires = [child.next_fire_time(cursor) for child in self.triggers]
            if any(fire is None for fire in fires):
                return None
            known = [fire for fire in fires if fire is not None]
            latest, earliest = max(known), min(known)
            if latest > horizon:
                return None
            if latest - earliest <= self._threshold:
                return self.window.admit(latest)
            if self.window.end_at is not None and latest - self._threshold > self.window.end_at:
                return None
            cursor = latest - self._threshold - RESOLUTION  # every child must reach here
        return None

    def to_spec(self) -> dict[str, Any]:
        """Return ``{"version":1,"type":"and","triggers":[...],"threshold":s}``."""
        spec: dict[str, Any] = {
            "version": SPEC_VERSION,
            "type": "and",
            "triggers": [child.to_spec() for child in self.triggers],
            "threshold": json_number(self.threshold),
        }
        if self.jitter:
            spec["jitter"] = self.jitter
        return spec

    def describe(self) -> str:
        """Return e.g. ``when all of (a; b) fire within 1 s``."""
        inner = "; ".join(_describe(child) for child in self.triggers)
        return f"when all of ({inner}) fire within {self.threshold:g} s"


class OrTrigger:
    """Fires whenever any child fires (equal instants fire once)."""

    def __init__(
        self,
        triggers: Sequence[Trigger],
        *,
        timezone: str | tzinfo = "UTC",
        jitter: float = 0.0,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
    ) -> None:
        self.triggers = _check_children(triggers)
        self.jitter = check_jitter(jitter)
        self.window = FireWindow.of(start_at, end_at, as_zone(timezone))

    def next_fire_time(self, after: datetime) -> datetime | None:
        """Return the earliest of the children's next fires."""
        floor = self.window.floor(after)
        fires = [child.next_fire_time(floor) for child in self.triggers]
        known = [fire for fire in fires if fire is not None]
        return self.window.admit(min(known)) if known else None

    def to_spec(self) -> dict[str, Any]:
        """Return ``{"version":1,"type":"or","triggers":[...]}``."""
        spec: dict[str, Any] = {
            "version": SPEC_VERSION,
            "type": "or",
            "triggers": [child.to_spec() for child in self.triggers],
        }
        if self.jitter:
            spec["jitter"] = self.jitter
        return spec

    def describe(self) -> str:
        """Return e.g. ``when any of (a; b) fires``."""
        inner = "; ".join(_describe(child) for child in self.triggers)
        return f"when any of ({inner}) fires"
