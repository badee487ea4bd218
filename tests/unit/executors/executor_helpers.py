"""Helpers for executor tests: requests, and an outcome collector one can wait on."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from duetime.executors.base import ExecutionRequest, Outcome

#: Upper bound of any wait in these tests (a failure, never a pause).
WAIT_SECONDS = 10.0


def request(
    run_id: str, job: str, timeout: float | None = None, **parameters: Any
) -> ExecutionRequest:
    """A request for ``job``."""
    return ExecutionRequest(
        run_id=run_id,
        job=job,
        parameters=parameters,
        attempt=1,
        lease_token=f"lease-{run_id}",
        timeout_seconds=timeout,
        scheduled_for=datetime(2030, 1, 1, tzinfo=UTC),
    )


class Outcomes:
    """The ``on_outcome`` callback: collects outcomes, lets tests wait for them."""

    def __init__(self) -> None:
        self.items: list[Outcome] = []
        self._cond = threading.Condition()

    def __call__(self, outcome: Outcome) -> None:
        with self._cond:
            self.items.append(outcome)
            self._cond.notify_all()

    def wait(self, run_id: str, timeout: float = WAIT_SECONDS) -> Outcome:
        """The outcome of ``run_id``, waiting up to ``timeout`` seconds for it."""
        with self._cond:
            found = self._cond.wait_for(lambda: self._find(run_id), timeout)
        if not found:
            raise AssertionError(f"no outcome for {run_id} within {timeout} s: {self.items}")
        return found

    def _find(self, run_id: str) -> Outcome | None:
        return next((o for o in self.items if o.run_id == run_id), None)

    def counts(self) -> Counter[str]:
        """How many outcomes each run got."""
        with self._cond:
            return Counter(o.run_id for o in self.items)

    def assert_once_each(self) -> None:
        """Every run got exactly one outcome."""
        assert all(n == 1 for n in self.counts().values()), self.counts()


def wait_until(predicate: Any, timeout: float = WAIT_SECONDS) -> None:
    """Wait until ``predicate()`` is true (polling an Event-timed loop), else fail."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        pause.wait(0.01)
    raise AssertionError("condition not reached in time")
