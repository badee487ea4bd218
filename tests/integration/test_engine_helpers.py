"""Shared pieces of the engine tests: a synchronous fake executor, a fake registry, schedule rows.

(No tests here; the name keeps it among the engine helper's files.)
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from duetime.clock import FakeClock
from duetime.config import Settings
from duetime.engine import Engine
from duetime.executors.base import ExecutionRequest, Outcome, OutcomeCallback
from duetime.models import Run, RunError, RunState
from duetime.store import tables as t
from duetime.store.rows import row_to_run, row_to_schedule
from duetime.store.sqlalchemy import SQLAlchemyStore
from duetime.triggers.spec import build_trigger, normalize_spec

#: Job names the fake executor understands.
OK, FAIL, SLOW = "ok", "fail", "slow"


@dataclass
class FakeJob:
    """A job type as the registry hands it out."""

    name: str
    timeout: float | None = None
    max_attempts: int | None = None

    def publication(self) -> dict[str, Any]:
        return {"name": self.name, "parameter_schema": {}, "defaults": {}, "module": "tests"}


class FakeRegistry:
    """Knows ``ok``, ``fail`` and ``slow`` (plus any names given)."""

    def __init__(self, *names: str) -> None:
        self.jobs = {n: FakeJob(n) for n in (OK, FAIL, SLOW, *names)}

    def find(self, name: str) -> FakeJob | None:
        return self.jobs.get(name)

    def all(self) -> list[FakeJob]:
        return list(self.jobs.values())


class FakeExecutor:
    """Synchronous: ``ok`` succeeds and ``fail`` fails at once; ``slow`` runs until told."""

    name = "fake"

    def __init__(self, clock: FakeClock, concurrency: int = 5) -> None:
        self.clock = clock
        self.concurrency = concurrency
        self.on_outcome: OutcomeCallback | None = None
        self.inflight: dict[str, ExecutionRequest] = {}
        self.submitted: list[ExecutionRequest] = []
        self.lock = threading.Lock()

    def start(self, on_outcome: OutcomeCallback) -> None:
        self.on_outcome = on_outcome

    @property
    def free_slots(self) -> int:
        with self.lock:
            return self.concurrency - len(self.inflight)

    def submit(self, request: ExecutionRequest) -> None:
        with self.lock:
            self.submitted.append(request)
            if request.job == SLOW:
                self.inflight[request.run_id] = request
                return
        state = RunState.SUCCEEDED if request.job == OK else RunState.FAILED
        error = None if state is RunState.SUCCEEDED else RunError("RuntimeError", "boom")
        self._report(request, state, error=error, result={"ok": True} if error is None else None)

    def complete(self, run_id: str, state: RunState = RunState.SUCCEEDED, **kw: Any) -> None:
        with self.lock:
            request = self.inflight.pop(run_id)
        self._report(request, state, **kw)

    def complete_all(self, state: RunState = RunState.SUCCEEDED) -> None:
        for run_id in list(self.inflight):
            self.complete(run_id, state)

    def cancel(self, run_id: str) -> bool:
        if run_id not in self.inflight:
            return False
        self.complete(run_id, RunState.CANCELLED)
        return True

    def running(self) -> list[str]:
        with self.lock:
            return list(self.inflight)

    def shutdown(self, grace_seconds: float) -> None:
        for run_id in list(self.inflight):
            error = RunError("Interrupted", "interrupted by shutdown")
            self.complete(run_id, RunState.FAILED, error=error)

    def _report(
        self,
        request: ExecutionRequest,
        state: RunState,
        *,
        error: RunError | None = None,
        result: Any = None,
    ) -> None:
        now = self.clock.now()
        assert self.on_outcome is not None
        self.on_outcome(
            Outcome(
                run_id=request.run_id,
                lease_token=request.lease_token,
                state=state,
                started_at=now,
                finished_at=now,
                result=result,
                error=error,
            )
        )


def make_settings(**overrides: Any) -> Settings:
    return Settings(**{"lookahead_seconds": 0.0, "executor": "thread", **overrides})


def make_engine(
    store: SQLAlchemyStore,
    clock: FakeClock,
    *,
    concurrency: int = 5,
    registry: FakeRegistry | None = None,
    **settings: Any,
) -> tuple[Engine, FakeExecutor]:
    executor = FakeExecutor(clock, concurrency)
    engine = Engine(
        store,
        registry=registry or FakeRegistry(),
        executor=executor,
        clock=clock,
        settings=make_settings(concurrency=concurrency, **settings),
    )
    return engine, executor


@contextmanager
def open_store(url: str, clock: FakeClock) -> Iterator[SQLAlchemyStore]:
    store = SQLAlchemyStore(url, clock=clock)
    try:
        yield store
    finally:
        store.dispose()


def add_schedule(
    store: SQLAlchemyStore,
    name: str,
    trigger: Any,
    *,
    now: datetime,
    job: str = OK,
    tenant: str = "default",
    timezone: str = "UTC",
    **fields: Any,
) -> str:
    """Insert a schedule row the way the facade does (normalised trigger, next_run_at)."""
    spec = {"type": "cron", "expression": trigger} if isinstance(trigger, str) else trigger
    start, end = fields.get("start_date"), fields.get("end_date")
    spec = normalize_spec(spec, timezone=timezone, start_at=start, now=now)
    built = build_trigger(spec, timezone, start_at=start, end_at=end)
    first = built.next_fire_time(now)
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()), "tenant": tenant, "name": name, "description": None,
        "job": job, "parameters": {}, "trigger": spec, "timezone": timezone,
        "start_date": None, "end_date": None, "enabled": True,
        "state": "active" if first else "completed", "priority": 0, "max_instances": 1,
        "overlap": "skip", "misfire_grace_time": 60.0, "coalesce": True, "max_attempts": None,
        "max_recoveries": 3, "retry_backoff": 10.0, "timeout": None, "chain": [],
        "executor": "default", "sla_seconds": 60, "labels": {}, "source": "api",
        "created_by": None, "next_run_at": first, "last_run_at": None, "last_run_state": None,
        "version": 1, "created_at": now, "updated_at": now, "deleted_at": None,
    }  # fmt: skip
    values.update(fields)
    store.create_schedule(values)
    return str(values["id"])


def update_schedule(store: SQLAlchemyStore, schedule_id: str, **values: Any) -> None:
    with store.write() as conn:
        conn.execute(sa.update(t.schedules).where(t.schedules.c.id == schedule_id).values(values))
        store.changed(conn)


def pause(store: SQLAlchemyStore, schedule_id: str, now: datetime) -> None:
    """What the facade's pause does: state paused, pending runs cancelled."""
    with store.write() as conn:
        conn.execute(
            sa.update(t.schedules).where(t.schedules.c.id == schedule_id).values(state="paused")
        )
        store.cancel_pending_runs(conn, schedule_id, now)
        store.changed(conn)


def resume(store: SQLAlchemyStore, schedule_id: str, now: datetime) -> None:
    """What the facade's resume does: next fire after now, same trigger (grid kept)."""
    schedule = get_schedule(store, schedule_id)
    trigger = build_trigger(schedule["trigger"], schedule["timezone"])
    update_schedule(store, schedule_id, state="active", next_run_at=trigger.next_fire_time(now))


def get_schedule(store: SQLAlchemyStore, schedule_id: str) -> dict[str, Any]:
    with store.read() as conn:
        row = conn.execute(sa.select(t.schedules).where(t.schedules.c.id == schedule_id)).one()
    return dict(row._mapping)


def schedule_obj(store: SQLAlchemyStore, schedule_id: str) -> Any:
    return row_to_schedule(get_schedule(store, schedule_id))


def runs_of(store: SQLAlchemyStore, schedule_id: str | None = None) -> list[Run]:
    r = t.runs.c
    query = sa.select(t.runs).order_by(r.created_at, r.scheduled_for, r.attempt, r.recovery)
    if schedule_id is not None:
        query = query.where(t.runs.c.schedule_id == schedule_id)
    with store.read() as conn:
        return [row_to_run(row) for row in conn.execute(query)]


def by_state(runs: list[Run]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.state.value] = counts.get(run.state.value, 0) + 1
    return counts


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)
