"""Review findings on executors: a slot must not leak when a run cannot be started."""

from __future__ import annotations

import threading

import pytest
from executor_helpers import Outcomes, request

from duetime.executors.thread import ThreadExecutor


def test_thread_that_cannot_start_gives_its_slot_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """submit() took the slot before Thread.start(); when start failed ("can't start new
    thread") the slot was held forever and the run never reported."""
    executor = ThreadExecutor(concurrency=1)
    executor.start(Outcomes())
    original = threading.Thread.start

    def refuse(self: threading.Thread) -> None:
        if self.name.startswith("duetime-thread-"):
            raise RuntimeError("can't start new thread")
        original(self)

    monkeypatch.setattr(threading.Thread, "start", refuse)
    with pytest.raises(RuntimeError, match="can't start"):
        executor.submit(request("r1", "duetime.noop"))
    assert executor.free_slots == 1
    assert executor.running() == []
    monkeypatch.setattr(threading.Thread, "start", original)
    executor.shutdown(1.0)
