"""ThreadExecutor keeps at most ``concurrency`` long-lived worker threads and reuses them."""

from __future__ import annotations

import threading

from executor_helpers import Outcomes, request

from duetime.executors.thread import ThreadExecutor
from duetime.jobs import job
from duetime.jobs.registry import JobRegistry
from duetime.models import RunState

CONCURRENCY = 3


def _registry(threads_seen: set[threading.Thread]) -> JobRegistry:
    registry = JobRegistry()

    @job("where", registry=registry)
    def where() -> str:
        threads_seen.add(threading.current_thread())
        return threading.current_thread().name

    return registry


def _workers() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("duetime-thread-")}


def test_runs_reuse_worker_threads() -> None:
    """Many sequential runs execute on at most ``concurrency`` threads, not one each."""
    seen: set[threading.Thread] = set()
    before = _workers()
    executor = ThreadExecutor(concurrency=CONCURRENCY, registry=_registry(seen))
    outcomes = Outcomes()
    executor.start(outcomes)
    for i in range(20):
        executor.submit(request(f"r{i}", "where"))
        assert outcomes.wait(f"r{i}").state is RunState.SUCCEEDED
    assert 1 <= len(seen) <= CONCURRENCY
    assert len(_workers() - before) <= CONCURRENCY
    outcomes.assert_once_each()
    executor.shutdown(1.0)


def test_shutdown_ends_idle_workers() -> None:
    """After shutdown the idle worker threads exit (no thread leak per executor)."""
    seen: set[threading.Thread] = set()
    executor = ThreadExecutor(concurrency=CONCURRENCY, registry=_registry(seen))
    outcomes = Outcomes()
    executor.start(outcomes)
    for i in range(CONCURRENCY):
        executor.submit(request(f"r{i}", "where"))
    for i in range(CONCURRENCY):
        outcomes.wait(f"r{i}")
    executor.shutdown(1.0)
    assert seen
    for thread in seen:
        thread.join(timeout=5.0)
        assert not thread.is_alive()
