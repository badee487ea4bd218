"""Crash safety for real: SIGKILL ``duetime scheduler run`` mid-run on SQLite, restart, check.

Guarantees checked after the restart:
1. every schedule and run accepted before the kill is still there;
2. the runs orphaned by the kill were recovered (``failed`` "worker lost" + a ``recovery``
   run with the same attempt: no attempt used);
3. fires missed while the engine was down were handled per DESIGN §3.2 (one ``missed`` row,
   the latest fire within the grace runs);
4. no (schedule, scheduled_for) has two ``scheduled`` runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from duetime.store import tables as t
from duetime.store.migrate import upgrade_database
from duetime.store.rows import row_to_run

pytestmark = pytest.mark.slow

#: Short leases so a killed engine's runs are recoverable within seconds.
ENGINE_ENV = {
    "DUETIME_LEASE_SECONDS": "2",
    "DUETIME_HEARTBEAT_SECONDS": "0.5",
    "DUETIME_SHUTDOWN_GRACE_SECONDS": "1",
    "DUETIME_EXECUTOR": "thread",
    "DUETIME_LOG_FORMAT": "json",
}
WAIT_SECONDS = 40.0
POLL_SECONDS = 0.1
#: How long the engine stays dead: longer than the tick schedule's misfire grace (1 s).
DOWNTIME_SECONDS = 3.5


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_SECONDS) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(POLL_SECONDS)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, sa.Engine]]:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    upgrade_database(url)
    engine = sa.create_engine(url)
    yield url, engine
    engine.dispose()


def start_engine(url: str, cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **ENGINE_ENV}
    env.pop("DUETIME_DATABASE_URL", None)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "duetime.cli.main", "scheduler", "run", "--database", url],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def add_schedules(url: str) -> None:
    from duetime import Scheduler

    with_facade = Scheduler(database_url=url, executor="thread")
    try:
        with_facade.add_schedule(
            "slow",
            "duetime.sleep",
            {"type": "interval", "seconds": 1},
            parameters={"seconds": 120},
            max_instances=2,
            max_attempts=1,
        )
        with_facade.add_schedule(
            "tick",
            "duetime.noop",
            {"type": "interval", "seconds": 1},
            misfire_grace_time=1,
            max_instances=5,
        )
    finally:
        with_facade.close()


def all_runs(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.runs, t.schedules.c.name.label("sched")).join(
                t.schedules, t.schedules.c.id == t.runs.c.schedule_id
            )
        )
        return [(row.sched, row_to_run(row)) for row in rows]


def schedule_ids(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(t.schedules.c.id)).scalars())


def test_sigkill_then_restart_keeps_every_guarantee(
    database: tuple[str, sa.Engine], tmp_path: Path
) -> None:
    url, db = database
    add_schedules(url)
    log = tmp_path / "engine.log"
    first = start_engine(url, tmp_path, log)
    try:
        wait_for(
            "two slow runs running and a tick run done",
            lambda: (
                sum(1 for n, r in all_runs(db) if n == "slow" and r.state == "running") == 2
                and any(n == "tick" and r.state == "succeeded" for n, r in all_runs(db))
            ),
        )
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    killed_at = datetime.now(UTC)
    accepted_schedules = schedule_ids(db)
    accepted_runs = {r.id: r for _, r in all_runs(db)}
    orphans = {rid for rid, r in accepted_runs.items() if r.state == "running"}
    assert len(orphans) >= 2

    time.sleep(DOWNTIME_SECONDS)  # the engine is down: fires are being missed on purpose
    second = start_engine(url, tmp_path, log)
    try:
        recovered = wait_for("every orphan recovered", lambda: _recoveries(db, orphans))
        missed = wait_for("the downtime's missed row", lambda: _missed_after(db, killed_at))
        wait_for("a tick run after the restart", lambda: _tick_ran_after(db, killed_at))
    finally:
        second.send_signal(signal.SIGTERM)
        code = second.wait(30)
    assert code == 0, log.read_text()[-3000:]

    runs = {r.id: r for _, r in all_runs(db)}
    assert accepted_schedules <= schedule_ids(db)  # 1. nothing accepted was lost
    assert set(accepted_runs) <= set(runs)
    for orphan_id in orphans:  # 2. recovered, no attempt used
        lost = runs[orphan_id]
        assert lost.state == "failed"
        assert lost.error is not None
        assert lost.error.type == "WorkerLost"
    for recovery in recovered:
        assert recovery.kind == "recovery"
        assert recovery.recovery == 1
        assert recovery.attempt == runs[recovery.parent_run_id].attempt
    assert missed.missed_count >= 1  # 3. one row for the fires outside the grace
    assert missed.missed_until is not None
    assert _duplicate_fires(db) == []  # 4. exactly-once firing


def _recoveries(db: sa.Engine, orphans: set[str]) -> list[Any]:
    runs = [r for _, r in all_runs(db)]
    found = [r for r in runs if r.kind == "recovery" and r.parent_run_id in orphans]
    return found if {r.parent_run_id for r in found} == orphans else []


def _missed_after(db: sa.Engine, killed_at: datetime) -> Any:
    for name, run in all_runs(db):
        if name == "tick" and run.state == "missed" and run.scheduled_for >= killed_at:
            return run
    return None


def _tick_ran_after(db: sa.Engine, killed_at: datetime) -> bool:
    return any(
        name == "tick" and run.state == "succeeded" and run.scheduled_for >= killed_at
        for name, run in all_runs(db)
    )


def _duplicate_fires(db: sa.Engine) -> list[Any]:
    r = t.runs.c
    with db.connect() as conn:
        return list(
            conn.execute(
                sa.select(r.schedule_id, r.scheduled_for, sa.func.count())
                .where(r.kind == "scheduled")
                .group_by(r.schedule_id, r.scheduled_for)
                .having(sa.func.count() > 1)
            )
        )
