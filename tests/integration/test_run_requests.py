"""Run-now requests committed together (Scheduler.commit_triggers / insert_schedule_runs).

Each request is judged on its own inside the one transaction (live schedule, version,
tenant, parameters); a database failure of the batch retries each request alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from duetime.clock import FakeClock
from duetime.errors import (
    InvalidParametersError,
    NotFoundError,
    ValidationError,
    VersionMismatchError,
)
from duetime.jobs.registry import JobRegistry
from duetime.models import Run, RunKind, RunState
from duetime.scheduler import Scheduler
from duetime.store.sqlalchemy import RunRequest

START = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def sched(db_url: str) -> Iterator[Scheduler]:
    scheduler = Scheduler(db_url, clock=FakeClock(START))
    yield scheduler
    scheduler.close()


def _runs(s: Scheduler) -> list[Run]:
    return s.for_tenant("*").get_runs(limit=500).items


def _count_writes(s: Scheduler, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the store's write transactions from now on."""
    store = s.store
    write = store.write
    calls: list[int] = []

    def counted() -> AbstractContextManager[sa.Connection]:
        calls.append(1)
        return write()

    monkeypatch.setattr(store, "write", counted)
    return calls


def test_each_request_is_judged_alone_in_one_transaction(
    sched: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme, other = sched.for_tenant("acme"), sched.for_tenant("other")
    ok = acme.add_schedule("ok", "duetime.sleep", "0 3 * * *", parameters={"seconds": 0})
    acme.add_schedule("gone", "duetime.noop", "0 3 * * *")
    acme.delete_schedule("gone")
    acme.add_schedule("edited", "duetime.noop", "0 3 * * *")
    acme.update_schedule("edited", priority=3)  # version 2
    other.add_schedule("theirs", "duetime.noop", "0 3 * * *")
    changes: list[int] = []
    sched.store.add_change_listener(lambda: changes.append(1))
    writes = _count_writes(sched, monkeypatch)
    results = sched.commit_triggers(
        [
            acme.prepare_trigger("ok"),
            acme.prepare_trigger("gone"),
            acme.prepare_trigger("edited", expected_version=1),
            acme.prepare_trigger("theirs"),  # another tenant's: not found, like elsewhere
            acme.prepare_trigger("ok", {"seconds": "x"}),
            acme.prepare_trigger(ok.id, {"seconds": 2}, expected_version=1),
        ]
    )
    grouped = sched.store.dialect == "sqlite"  # PostgreSQL: a transaction per request
    assert len(writes) == (1 if grouped else 6)  # SQLite: one transaction for all six
    assert len(changes) == (1 if grouped else 2)  # SQLite: one change signal (one wake-up)
    first, gone, stale, theirs, invalid, second = results
    assert isinstance(first, Run)
    assert first.kind == RunKind.MANUAL
    assert first.state == RunState.PENDING
    assert first.parameters == {"seconds": 0}
    assert isinstance(gone, NotFoundError)
    assert isinstance(stale, VersionMismatchError)
    assert stale.current_version == 2
    assert isinstance(theirs, NotFoundError)
    assert isinstance(invalid, InvalidParametersError)
    assert invalid.field == "parameters.seconds"
    assert isinstance(second, Run)
    assert second.parameters == {"seconds": 2}
    assert sorted(r.id for r in _runs(sched)) == sorted([first.id, second.id])


def test_trigger_raises_what_refused_it(sched: Scheduler) -> None:
    sched.add_schedule("nightly", "duetime.noop", "0 3 * * *")
    with pytest.raises(VersionMismatchError):
        sched.trigger("nightly", expected_version=2)
    with pytest.raises(ValidationError) as caught:
        sched.trigger("nightly", expected_version=0)  # refused before any transaction
    assert caught.value.field == "expected_version"
    sched.delete_schedule("nightly")
    with pytest.raises(NotFoundError):
        sched.trigger("nightly")
    assert _runs(sched) == []


def test_a_database_failure_retries_each_request_alone(sched: Scheduler) -> None:
    """Two requests building the same run id: the batch's INSERT fails and rolls back,
    then each request runs alone, so the first one's run is created and only the second
    gets the error."""
    schedule = sched.add_schedule("nightly", "duetime.noop", "0 3 * * *")
    first = sched.prepare_trigger("nightly")
    fixed_id = "00000000-0000-4000-8000-000000000001"

    def same_id(request: RunRequest) -> RunRequest:
        def build(found: Any) -> Mapping[str, Any]:
            return {**request.build(found), "id": fixed_id}

        return RunRequest(request.tenant, request.name_or_id, build, request.expected_version)

    results = sched.commit_triggers([same_id(first), same_id(sched.prepare_trigger(schedule.id))])
    created, failed = results
    assert isinstance(created, Run)
    assert created.id == fixed_id
    assert isinstance(failed, sa.exc.IntegrityError)
    assert [r.id for r in _runs(sched)] == [fixed_id]


def test_a_tenant_spanning_view_triggers_any_tenant(sched: Scheduler) -> None:
    theirs = sched.for_tenant("other").add_schedule("theirs", "duetime.noop", "0 3 * * *")
    (run,) = sched.for_tenant("*").commit_triggers(
        [sched.for_tenant("*").prepare_trigger("theirs")]
    )
    assert isinstance(run, Run)
    assert run.tenant == "other"
    assert run.schedule_id == theirs.id


def test_a_batch_reads_each_schedule_once_and_inserts_its_runs_together(
    sched: Scheduler,
) -> None:
    nightly = sched.add_schedule(
        "nightly", "duetime.sleep", "0 3 * * *", parameters={"seconds": 0}
    ).id
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    sa.event.listen(sched.store.engine, "before_cursor_execute", seen)
    try:
        results = sched.commit_triggers(
            [
                sched.prepare_trigger(nightly),
                sched.prepare_trigger(nightly, expected_version=2),
                sched.prepare_trigger(nightly, {"seconds": 3}, expected_version=1),
            ]
        )
    finally:
        sa.event.remove(sched.store.engine, "before_cursor_execute", seen)
    ok, stale, override = results
    assert isinstance(ok, Run)
    assert isinstance(stale, VersionMismatchError)
    assert isinstance(override, Run)
    assert override.parameters == {"seconds": 3}
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    inserts = [s for s in statements if "INSERT INTO duetime_runs" in s]
    grouped = sched.store.dialect == "sqlite"  # PostgreSQL: a transaction per request
    assert len([s for s in reads if "duetime_schedules" in s]) == (1 if grouped else 3)
    assert len(inserts) == (1 if grouped else 2)
    assert {r.id for r in _runs(sched)} == {ok.id, override.id}


def test_a_busy_database_fails_the_whole_batch_without_retries(
    sched: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retrying each request alone would wait out the busy database once per request."""
    sched.add_schedule("nightly", "duetime.noop", "0 3 * * *")
    writes: list[int] = []
    busy = sa.exc.OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))

    def locked() -> Any:
        writes.append(1)
        raise busy

    monkeypatch.setattr(sched.store, "write", locked)
    results = sched.commit_triggers([sched.prepare_trigger("nightly") for _ in range(3)])
    assert results == [busy, busy, busy]
    assert len(writes) == (1 if sched.store.dialect == "sqlite" else 3)


def test_a_failure_after_the_commit_is_not_retried(
    sched: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retrying after a commit could insert every run twice: the error is each answer."""
    sched.add_schedule("nightly", "duetime.noop", "0 3 * * *")
    write = sched.store.write
    after = RuntimeError("lost after the commit")

    @contextmanager
    def failing_after_commit() -> Iterator[sa.Connection]:
        with write() as conn:
            yield conn
        raise after

    monkeypatch.setattr(sched.store, "write", failing_after_commit)
    results = sched.commit_triggers([sched.prepare_trigger("nightly") for _ in range(2)])
    assert results == [after, after]
    monkeypatch.undo()
    assert len(_runs(sched)) == 2  # each stored once


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_run_now_reads_its_job_type_on_its_own_connection(db_url: str) -> None:
    """A job type this process does not register is read inside the run-now transaction,
    on its connection: with a pool of one, a second checkout would wait for the pool."""
    publisher = Scheduler(db_url, clock=FakeClock(START))
    publisher.publish_job_types()
    publisher.add_schedule("nightly", "duetime.sleep", "0 3 * * *")
    publisher.close()
    remote = Scheduler(db_url, clock=FakeClock(START), registry=JobRegistry())
    try:
        remote.store.engine.dispose()
        remote.store.engine = sa.create_engine(
            remote.store.engine.url, pool_size=1, max_overflow=0, pool_timeout=2
        )
        run = remote.trigger("nightly", {"seconds": 2})
        assert run.parameters == {"seconds": 2.0}
    finally:
        remote.close()
