"""Heartbeats: renew the leases of runs this engine executes and keep its clock honest.

A lease lasts ``lease_seconds`` (30 s) and is renewed every ``heartbeat_seconds`` (10 s). On
PostgreSQL each heartbeat also re-samples the offset between this machine's clock and the
database's ``now()`` into the engine's :class:`~duetime.clock.OffsetClock`, so replicas with
skewed clocks neither fire early nor steal leases.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from duetime.clock import Clock, OffsetClock
from duetime.store import claims

if TYPE_CHECKING:
    from duetime.store.sqlalchemy import SQLAlchemyStore

log = logging.getLogger(__name__)


class LeaseBook:
    """The runs this engine executes: ``{run_id: lease_token}`` (thread-safe)."""

    def __init__(self) -> None:
        self._leases: dict[str, str] = {}
        self._lock = threading.Lock()

    def hold(self, run_id: str, token: str) -> None:
        """Remember a lease we now hold."""
        with self._lock:
            self._leases[run_id] = token

    def release(self, run_id: str) -> None:
        """Forget a lease (its outcome was written or it was lost)."""
        with self._lock:
            self._leases.pop(run_id, None)

    def snapshot(self) -> dict[str, str]:
        """Return a copy of the held leases."""
        with self._lock:
            return dict(self._leases)

    def __len__(self) -> int:
        with self._lock:
            return len(self._leases)


def sample_clock_offset(store: SQLAlchemyStore, clock: Clock) -> float | None:
    """Correct an OffsetClock to the database's ``now()`` (PostgreSQL); return the offset."""
    if store.dialect != "postgresql" or not isinstance(clock, OffsetClock):
        return None
    before = clock.now()
    db_now = store.db_now()
    after = clock.now()
    midpoint = before + (after - before) / 2
    offset = clock.offset_seconds + (db_now - midpoint).total_seconds()
    clock.set_offset(offset)
    return offset


def renew(store: SQLAlchemyStore, book: LeaseBook, clock: Clock, lease_seconds: float) -> list[str]:
    """Renew every held lease; forget and return the ones lost (recovered elsewhere)."""
    held: Mapping[str, str] = book.snapshot()
    lost = claims.renew_leases(store, held, now=clock.now(), lease_seconds=lease_seconds)
    for run_id in lost:
        book.release(run_id)
        log.warning(
            "lease lost; the run's outcome will be ignored",
            extra={"event": "run.lease_lost", "run_id": run_id},
        )
    return lost
