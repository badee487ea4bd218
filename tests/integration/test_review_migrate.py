"""Review findings on migrations: concurrent ``duetime migrate`` / ``run --migrate`` on SQLite."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from duetime.store.migrate import current_revision, head_revision, upgrade_database

PROCESSES = 3


def _upgrade(url: str, barrier: Any, results: Any) -> None:
    barrier.wait(timeout=30)
    try:
        upgrade_database(url)
        results.put("ok")
    except Exception as exc:  # reported to the parent
        results.put(repr(exc))


def test_processes_migrating_one_new_sqlite_file_at_once_all_succeed(tmp_path: Path) -> None:
    """Deferred BEGIN made all but one fail with "database is locked" (no busy wait)."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_upgrade, args=(url, barrier, results)) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=10)
    assert outcomes == ["ok"] * PROCESSES
    assert current_revision(url) == head_revision()
