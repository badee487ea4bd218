"""A thread-safe hand-off of outcomes from executor threads to the engine loop."""

from __future__ import annotations

import threading
from collections.abc import Callable

from duetime.executors.base import Outcome


class OutcomeInbox:
    """Collects outcomes from any thread; the loop drains them in batches."""

    def __init__(self, on_arrival: Callable[[int], None]) -> None:
        self._items: list[Outcome] = []
        self._lock = threading.Lock()
        self._on_arrival = on_arrival

    def put(self, outcome: Outcome) -> None:
        """Accept one outcome (executor callback); tell ``on_arrival`` how many now wait."""
        with self._lock:
            self._items.append(outcome)
            waiting = len(self._items)
        self._on_arrival(waiting)

    def drain(self, limit: int = 1000) -> list[Outcome]:
        """Take up to ``limit`` outcomes, oldest first."""
        with self._lock:
            batch, self._items = self._items[:limit], self._items[limit:]
        return batch

    def requeue(self, outcomes: list[Outcome]) -> None:
        """Put back outcomes whose write failed (a transient database error)."""
        with self._lock:
            self._items[:0] = outcomes

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
