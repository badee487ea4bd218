"""The prefetch queue's data: claimed runs waiting for their instant, then for a slot.

Not thread-safe on its own: :class:`~duetime.engine.prefetch.PrefetchExecutor` holds its
lock around every call.
"""

from __future__ import annotations

import dataclasses
import heapq
from datetime import datetime, timedelta
from itertools import count

from duetime.executors.base import ExecutionRequest

ReadyEntry = tuple[int, int, ExecutionRequest]  # (-priority, arrival, request)
_Waiting = tuple[datetime, int, int, ExecutionRequest]  # (available_at, -priority, arrival, …)
_NO_LEAD = timedelta(0)


class RunQueue:
    """Runs not yet handed to the executor: ``waiting`` (before available_at), ``ready``."""

    def __init__(self) -> None:
        self._ready: list[ReadyEntry] = []
        self._waiting: list[_Waiting] = []
        self._ids: set[str] = set()
        self._arrival = count()
        self._eligible: dict[str, datetime] = {}  # when each ready run could have started

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._ids

    def ids(self) -> list[str]:
        """Every queued run id."""
        return list(self._ids)

    def add(
        self,
        request: ExecutionRequest,
        priority: int,
        available_at: datetime | None,
        now: datetime,
    ) -> None:
        """Queue ``request``; it becomes ready at ``available_at`` (None: ready ``now``)."""
        self._ids.add(request.run_id)
        arrival = next(self._arrival)
        if available_at is None:
            self._eligible[request.run_id] = now
            heapq.heappush(self._ready, (-priority, arrival, request))
        else:
            heapq.heappush(self._waiting, (available_at, -priority, arrival, request))

    def put_back(self, entry: ReadyEntry) -> None:
        """Return a ready entry taken by :meth:`pop_ready` (its hand-over failed)."""
        self._ids.add(entry[2].run_id)
        heapq.heappush(self._ready, entry)

    def release_due(self, now: datetime, ahead: timedelta = _NO_LEAD) -> None:
        """Move the runs whose instant has come, or comes within ``ahead``, to ``ready``.

        A run released before its instant carries it as ``not_before``: the executor that
        takes it waits for the instant itself.
        """
        while self._waiting and self._waiting[0][0] <= now + ahead:
            available, neg_priority, arrival, request = heapq.heappop(self._waiting)
            if available > now:
                request = dataclasses.replace(request, not_before=available)
            self._eligible[request.run_id] = available
            heapq.heappush(self._ready, (neg_priority, arrival, request))

    def pop_ready(self) -> ReadyEntry | None:
        """Take the highest-priority ready run (None when none is ready)."""
        if not self._ready:
            return None
        entry = heapq.heappop(self._ready)
        self._ids.discard(entry[2].run_id)
        self._eligible.pop(entry[2].run_id, None)
        return entry

    def has_ready(self) -> bool:
        """True when a run waits only for a slot."""
        return bool(self._ready)

    def next_instant(self) -> datetime | None:
        """The earliest instant a waiting run becomes ready."""
        return self._waiting[0][0] if self._waiting else None

    def remove(self, run_id: str) -> ExecutionRequest | None:
        """Take ``run_id`` out wherever it waits; None when it is not queued."""
        if run_id not in self._ids:
            return None
        self._ids.discard(run_id)
        self._eligible.pop(run_id, None)
        for index, ready in enumerate(self._ready):
            if ready[2].run_id == run_id:
                self._ready.pop(index)
                heapq.heapify(self._ready)
                return ready[2]
        for index, waiting in enumerate(self._waiting):
            if waiting[3].run_id == run_id:
                self._waiting.pop(index)
                heapq.heapify(self._waiting)
                return waiting[3]
        return None  # pragma: no cover - ids and heaps agree

    def take_all(self) -> list[ExecutionRequest]:
        """Empty the queue; return its runs, ready ones first (priority order)."""
        taken = [entry[2] for entry in sorted(self._ready)]
        taken += [entry[3] for entry in sorted(self._waiting)]
        self._ready.clear()
        self._waiting.clear()
        self._ids.clear()
        self._eligible.clear()
        return taken

    def take_stale(self, before: datetime) -> list[ExecutionRequest]:
        """Take the ready runs that could have started before ``before`` but are still here."""
        stale = [rid for rid, since in self._eligible.items() if since < before]
        return [r for r in (self.remove(rid) for rid in stale) if r is not None]
