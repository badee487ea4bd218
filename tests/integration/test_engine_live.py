"""The engine on the real clock with the real thread executor: waking, shutdown, the CLI."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_engine_helpers import add_schedule, make_settings, runs_of
from typer.testing import CliRunner

from duetime.cli.main import app
from duetime.clock import SystemClock
from duetime.engine import Engine
from duetime.executors.factory import create_executor
from duetime.jobs import default_registry
from duetime.models import RunKind, RunState
from duetime.store import tables as t
from duetime.store.sqlalchemy import SQLAlchemyStore

#: The loop's longest sleep here: a wake-up much faster than this proves it was a change.
HEARTBEAT_SECONDS = 20.0
WAKE_WITHIN_SECONDS = 3.0
POLL_SECONDS = 0.05


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(POLL_SECONDS)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def live(db_url: str) -> Iterator[tuple[SQLAlchemyStore, Engine]]:
    clock = SystemClock()
    store = SQLAlchemyStore(db_url, clock=clock)
    settings = make_settings(
        heartbeat_seconds=HEARTBEAT_SECONDS, lookahead_seconds=1.0, shutdown_grace_seconds=0.2
    )
    executor = create_executor(
        "thread", concurrency=5, registry=default_registry, jobs_modules=[], clock=clock
    )
    engine = Engine(
        store, registry=default_registry, executor=executor, clock=clock, settings=settings
    )
    engine.start_background()
    try:
        yield store, engine
    finally:
        engine.stop(wait=True)
        store.dispose()


def _succeeded(store: SQLAlchemyStore, sid: str) -> bool:
    return any(r.state is RunState.SUCCEEDED for r in runs_of(store, sid))


def test_wakes_at_once_on_an_in_process_change(live: tuple[SQLAlchemyStore, Engine]) -> None:
    store, engine = live
    assert engine.running
    time.sleep(0.3)  # let the loop go to sleep (nothing is due for a heartbeat interval)
    now = store.clock.now()
    spec = {"type": "date", "run_at": now.isoformat()}
    sid = add_schedule(store, "soon", spec, now=now, job="duetime.noop")
    update_next_run_at(store, sid, now)
    wait_for("the run", lambda: _succeeded(store, sid), WAKE_WITHIN_SECONDS)


def test_wakes_on_a_change_from_another_process(
    live: tuple[SQLAlchemyStore, Engine], db_url: str
) -> None:
    store, _ = live
    other = SQLAlchemyStore(db_url, clock=SystemClock())  # its own pool: NOTIFY / data_version
    try:
        time.sleep(0.3)
        now = other.clock.now()
        spec = {"type": "date", "run_at": now.isoformat()}
        sid = add_schedule(other, "remote", spec, now=now, job="duetime.noop")
        update_next_run_at(other, sid, now)
        wait_for("the run", lambda: _succeeded(store, sid), WAKE_WITHIN_SECONDS)
    finally:
        other.dispose()


def test_graceful_stop_interrupts_and_recovers(live: tuple[SQLAlchemyStore, Engine]) -> None:
    store, engine = live
    now = store.clock.now()
    sid = add_schedule(
        store,
        "long",
        {"type": "date", "run_at": now.isoformat()},
        now=now,
        job="duetime.sleep",
        parameters={"seconds": 60},
    )
    update_next_run_at(store, sid, now)
    wait_for(
        "the run to start",
        lambda: any(r.state is RunState.RUNNING for r in runs_of(store, sid)),
        WAKE_WITHIN_SECONDS,
    )
    started = time.monotonic()
    engine.stop(wait=True)
    assert time.monotonic() - started < 10
    interrupted, recovery = runs_of(store, sid)
    assert interrupted.state is RunState.FAILED
    assert interrupted.error is not None
    assert interrupted.error.type == "Interrupted"
    assert recovery.kind is RunKind.RECOVERY
    assert recovery.state is RunState.PENDING
    assert recovery.attempt == interrupted.attempt


def update_next_run_at(store: SQLAlchemyStore, sid: str, at: Any) -> None:
    """A one-off 'now' (the helper computes fires strictly after now)."""
    with store.write() as conn:
        conn.execute(
            sa.update(t.schedules)
            .where(t.schedules.c.id == sid)
            .values(next_run_at=at, state="active")
        )
        store.changed(conn)


# ------------------------------------------------------------------ CLI


def _due_noop(url: str) -> str:
    store = SQLAlchemyStore(url, clock=SystemClock())
    try:
        now = store.clock.now()
        sid = add_schedule(
            store, f"n-{uuid.uuid4().hex[:6]}", {"type": "date", "run_at": now.isoformat()},
            now=now, job="duetime.noop",
        )  # fmt: skip
        update_next_run_at(store, sid, now)
        return sid
    finally:
        store.dispose()


def test_cli_once_runs_due_runs_of_every_database(tmp_path: Path, sqlite_url: str) -> None:
    from duetime.store.migrate import upgrade_database

    second = f"sqlite:///{tmp_path / 'second.db'}"
    upgrade_database(second)
    first_id, second_id = _due_noop(sqlite_url), _due_noop(second)
    result = CliRunner().invoke(
        app,
        ["scheduler", "run", "--once", "-d", sqlite_url, "-d", second, "--executor", "thread"],
    )
    assert result.exit_code == 0, result.output
    assert "ran 2 run(s): 2 succeeded" in result.output
    for url, sid in ((sqlite_url, first_id), (second, second_id)):
        store = SQLAlchemyStore(url, clock=SystemClock())
        assert [r.state for r in runs_of(store, sid)] == [RunState.SUCCEEDED]
        store.dispose()


def test_cli_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = CliRunner().invoke(app, ["scheduler", "run", "--once", "-d", url])
    assert result.exit_code == 1
    assert "duetime" in result.output
    assert ("migrate" in result.output) or ("init" in result.output)
    assert "Traceback" not in result.output


def test_background_thread_start_and_stop_are_idempotent(sqlite_url: str) -> None:
    clock = SystemClock()
    store = SQLAlchemyStore(sqlite_url, clock=clock)
    executor = create_executor(
        "thread", concurrency=1, registry=default_registry, jobs_modules=[], clock=clock
    )
    engine = Engine(
        store, registry=default_registry, executor=executor, clock=clock, settings=make_settings()
    )
    engine.start_background()
    engine.start_background()
    assert engine.running
    assert any(th.name.startswith("duetime-engine") for th in threading.enumerate())
    engine.stop()
    engine.stop()
    assert not engine.running
    store.dispose()


def test_facade_run_pending_without_and_with_a_running_engine(db_url: str) -> None:
    from duetime import Scheduler

    scheduler = Scheduler(database_url=db_url, executor="thread")
    try:
        scheduler.add_schedule("later", "duetime.noop", "0 0 1 1 *")
        manual = scheduler.trigger("later")
        ran = scheduler.run_pending()  # no engine here: fire, start, wait
        assert [(r.id, r.state) for r in ran] == [(manual.id, RunState.SUCCEEDED)]
        scheduler.start()
        try:
            second = scheduler.trigger("later")
            assert scheduler.run_pending() == []  # the running engine executes it
            wait_for(
                "the engine to run the manual run",
                lambda: scheduler.get_run(second.id).state is RunState.SUCCEEDED,
                WAKE_WITHIN_SECONDS,
            )
        finally:
            scheduler.stop()
    finally:
        scheduler.close()


def test_a_database_error_is_logged_and_the_loop_survives(
    live: tuple[SQLAlchemyStore, Engine],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from duetime.store import claims

    store, engine = live
    real_fire_due = claims.fire_due
    failures = [0]

    def flaky_fire_due(*args: Any, **kwargs: Any) -> Any:
        if failures[0] < 2:
            failures[0] += 1
            raise sa.exc.OperationalError("SELECT 1", {}, Exception("database is restarting"))
        return real_fire_due(*args, **kwargs)

    monkeypatch.setattr(claims, "fire_due", flaky_fire_due)
    caplog.set_level("WARNING", logger="duetime")
    now = store.clock.now()
    spec = {"type": "date", "run_at": now.isoformat()}
    sid = add_schedule(store, "after-outage", spec, now=now, job="duetime.noop")
    update_next_run_at(store, sid, now)
    wait_for("the run after the outage", lambda: _succeeded(store, sid), WAKE_WITHIN_SECONDS)
    assert failures[0] == 2
    assert engine.running
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events.count("engine.db_error") == 2


def test_many_short_runs_all_succeed_once_with_their_real_start(
    live: tuple[SQLAlchemyStore, Engine],
) -> None:
    """Prefetch: 300 due no-op runs through 5 slots; each run once, lateness from its start."""
    store, _ = live
    now = store.clock.now()
    spec = {"type": "date", "run_at": now.isoformat()}
    ids = [add_schedule(store, f"bulk{i}", spec, now=now, job="duetime.noop") for i in range(300)]
    for sid in ids:
        update_next_run_at(store, sid, now)
    wait_for("300 runs", lambda: all(_succeeded(store, sid) for sid in ids), 30)
    runs = [r for sid in ids for r in runs_of(store, sid)]
    assert len(runs) == 300
    for run in runs:
        assert run.started_at is not None
        assert run.available_at <= run.started_at <= run.finished_at  # type: ignore[operator]
        expected = int((run.started_at - run.available_at).total_seconds() * 1000)
        assert abs(run.lateness_ms - expected) <= 1  # type: ignore[operator]


def test_a_run_claimed_ahead_starts_at_its_instant_not_before(
    live: tuple[SQLAlchemyStore, Engine],
) -> None:
    store, _ = live
    time.sleep(0.2)
    at = store.clock.now() + timedelta(seconds=0.7)  # inside the 1 s lookahead
    spec = {"type": "date", "run_at": at.isoformat()}
    sid = add_schedule(store, "punctual", spec, now=store.clock.now(), job="duetime.noop")
    wait_for("the run", lambda: _succeeded(store, sid), WAKE_WITHIN_SECONDS)
    (run,) = runs_of(store, sid)
    assert run.started_at is not None
    assert run.started_at >= at
    assert run.started_at - at < timedelta(seconds=0.5)
