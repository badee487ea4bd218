"""Clocks: the only module that reads the time.

Every other module takes ``now`` from a :class:`Clock`. Tests use :class:`FakeClock` to cross
DST changes, months and years in milliseconds.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """A source of the current instant (tz-aware UTC) and of monotonic time."""

    def now(self) -> datetime:
        """Return the current instant, tz-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Return seconds from an arbitrary origin that never go backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock's time (fake clocks return at once once advanced)."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        """Return the current instant, tz-aware UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Return ``time.monotonic()``."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep on the event loop."""
        await asyncio.sleep(max(0.0, seconds))


class OffsetClock(SystemClock):
    """The system clock corrected by an offset (e.g. to the database's ``now()``).

    ``set_offset`` is called at each heartbeat with the measured skew so replica clocks
    agree with the database that judges leases.
    """

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self._offset = timedelta(seconds=offset_seconds)

    def set_offset(self, offset_seconds: float) -> None:
        """Set the correction added to the system clock."""
        self._offset = timedelta(seconds=offset_seconds)

    @property
    def offset_seconds(self) -> float:
        """The current correction in seconds."""
        return self._offset.total_seconds()

    def now(self) -> datetime:
        """Return the corrected current instant."""
        return datetime.now(UTC) + self._offset


class FakeClock:
    """A clock that moves only when told; ``sleep`` waits until it has been advanced."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2030, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a tz-aware start")
        self._now = start.astimezone(UTC)
        self._mono = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """Return the fake current instant."""
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        """Return fake monotonic seconds."""
        with self._lock:
            return self._mono

    def advance(self, seconds: float = 0.0, **delta: float) -> datetime:
        """Move time forward by ``seconds`` (plus any ``timedelta`` keyword) and return now."""
        step = timedelta(seconds=seconds, **delta)
        if step < timedelta(0):
            raise ValueError("a FakeClock never goes backwards")
        with self._lock:
            self._now += step
            self._mono += step.total_seconds()
            return self._now

    def set(self, instant: datetime) -> datetime:
        """Jump to ``instant`` (must not be earlier than now)."""
        return self.advance((instant.astimezone(UTC) - self.now()).total_seconds())

    async def sleep(self, seconds: float) -> None:
        """Yield to the loop without waiting for real time."""
        await asyncio.sleep(0)
