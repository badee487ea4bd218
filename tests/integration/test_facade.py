"""The Scheduler facade: CRUD, validation, lifecycle and runs on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from duetime.clock import FakeClock
from duetime.errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
    VersionMismatchError,
)
from duetime.jobs.registry import JobRegistry, default_registry, job
from duetime.models import RunKind, RunState, Schedule, ScheduleState
from duetime.scheduler import Scheduler
from duetime.store import tables

START = datetime(2030, 1, 1, tzinfo=UTC)


def make_registry() -> JobRegistry:
    """Built-ins plus a job with a typed signature and settings defaults."""
    registry = JobRegistry()
    for job_type in default_registry.all():
        registry.register(job_type)

    @job("report", timeout=300, max_attempts=3, registry=registry)
    def report(recipient: str, days: int = 7) -> dict[str, Any]:
        return {"sent": recipient, "days": days}

    return registry


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def sched(db_url: str, clock: FakeClock) -> Iterator[Scheduler]:
    scheduler = Scheduler(db_url, clock=clock, registry=make_registry())
    yield scheduler
    scheduler.close()


def add(s: Scheduler, name: str = "nightly", trigger: Any = "0 3 * * *", **kw: Any) -> Schedule:
    kw.setdefault("parameters", {"recipient": "ops@example.com"})
    return s.add_schedule(name, kw.pop("job", "report"), trigger, **kw)


def set_run_state(s: Scheduler, run_id: str, state: RunState) -> None:
    with s.store.write() as conn:
        conn.execute(
            sa.update(tables.runs).where(tables.runs.c.id == run_id).values(state=state.value)
        )


# ---------------------------------------------------------------- create & read


def test_add_schedule_stores_normalised_trigger_and_first_fire(sched: Scheduler) -> None:
    created = add(sched, description="d", labels={"team": "ops"}, priority=5)
    assert created.next_run_at == START.replace(hour=3)
    assert created.trigger["type"] == "cron"
    assert created.trigger["version"] == 1
    assert (created.version, created.state, created.source) == (1, "active", "code")
    assert created.parameters == {"recipient": "ops@example.com"}
    fetched = sched.get_schedule("nightly")
    assert fetched == created
    assert sched.get_schedule(created.id) == created


def test_interval_anchor_is_creation_time_or_start_date(sched: Scheduler, clock: FakeClock) -> None:
    clock.advance(minutes=7)
    plain = add(sched, "a", {"interval_minutes": 30})
    assert plain.next_run_at == START + timedelta(minutes=37)
    assert plain.trigger["anchor"] == (START + timedelta(minutes=7)).isoformat()
    start = START + timedelta(hours=5)
    anchored = add(sched, "b", {"type": "interval", "hours": 1}, start_date=start)
    assert anchored.next_run_at == start


def test_names_are_unique_per_live_tenant_and_reusable_after_delete(sched: Scheduler) -> None:
    first = add(sched)
    with pytest.raises(ConflictError, match="nightly"):
        add(sched)
    other = add(sched.for_tenant("acme"))
    assert other.tenant == "acme"
    sched.delete_schedule("nightly")
    again = add(sched)
    assert again.id != first.id
    assert sched.get_schedule("nightly").id == again.id


BAD_NAMES = ["", " lead", "trail ", "tab\there", "nul\x00", "x" * 201, 42]


def test_bad_names_are_refused(sched: Scheduler) -> None:
    for name in BAD_NAMES:
        with pytest.raises(ValidationError) as info:
            add(sched, name)
        assert info.value.field == "name", name


def test_good_names_are_accepted(sched: Scheduler) -> None:
    for name in ("Nightly Product Validation", "x" * 200, "ünïcødé-✓"):
        assert add(sched, name).name == name


BAD_INPUT = [
    ({"job": "nope"}, "job"),
    ({"parameters": {"recipient": "x", "days": "many"}}, "parameters.days"),
    ({"parameters": {}}, "parameters.recipient"),
    ({"parameters": {"recipient": "x", "bogus": 1}}, "parameters.bogus"),
    ({"parameters": {"recipient": "x" * 70_000}}, "parameters"),
    ({"parameters": "text"}, "parameters"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"trigger": "61 * * * *"}, "trigger"),
    ({"trigger": {"type": "weekly"}}, "trigger.type"),
    ({"trigger": {"cron_expression": "0 0 30 2 *"}}, "trigger.cron_expression"),
    ({"trigger": 5}, "trigger"),
    ({"max_instances": 0}, "max_instances"),
    ({"max_instances": 101}, "max_instances"),
    ({"max_instances": True}, "max_instances"),
    ({"priority": "high"}, "priority"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"max_recoveries": -1}, "max_recoveries"),
    ({"retry_backoff": -1}, "retry_backoff"),
    ({"timeout": 0}, "timeout"),
    ({"misfire_grace_time": float("nan")}, "misfire_grace_time"),
    ({"overlap": "queue"}, "overlap"),
    ({"executor": "gpu"}, "executor"),
    ({"executor": "celery:"}, "executor"),
    ({"coalesce": "yes"}, "coalesce"),
    ({"enabled": 1}, "enabled"),
    ({"sla_seconds": -5}, "sla_seconds"),
    ({"labels": ["a"]}, "labels"),
    ({"chain": "other"}, "chain"),
    ({"chain": ["ok", " bad"]}, "chain.1"),
    ({"chain": ["nightly"]}, "chain"),
    ({"start_date": "yesterday"}, "start_date"),
    ({"start_date": START + timedelta(days=2), "end_date": START + timedelta(days=1)}, "end_date"),
    ({"end_date": START - timedelta(days=1)}, "end_date"),
    ({"state": "paused"}, "state"),
    ({"version": 3}, "version"),
    ({"colour": "red"}, "colour"),
    ({"created_by": "nobody"}, "created_by"),
]


def test_bad_input_names_the_field(sched: Scheduler) -> None:
    """One database per backend for the whole table (each case must leave nothing behind)."""
    wrong = []
    for kwargs, field in BAD_INPUT:
        try:
            add(sched, **kwargs)
        except ValidationError as err:
            if err.field != field:
                wrong.append(f"{kwargs}: field {err.field!r}, expected {field!r} ({err})")
        else:
            wrong.append(f"{kwargs}: accepted")
    assert wrong == []
    assert sched.list_schedules().items == []


def test_accepts_every_documented_field(sched: Scheduler) -> None:
    created = add(
        sched,
        timezone="Europe/Stockholm",
        description="nightly report",
        start_date="2030-01-02T00:00:00",
        end_date=START + timedelta(days=30),
        enabled=True,
        priority=-3,
        max_instances=100,
        overlap="buffer_all",
        misfire_grace_time=None,
        coalesce=False,
        max_attempts=4,
        max_recoveries=0,
        retry_backoff=2.5,
        timeout=12,
        chain=["other"],
        executor="celery:reports",
        sla_seconds=0,
        labels={"team": "ops"},
        source="manifest",
    )
    assert created.start_date == datetime(2030, 1, 1, 23, tzinfo=UTC)  # naive = Stockholm
    assert created.next_run_at == datetime(2030, 1, 2, 2, tzinfo=UTC)  # 03:00 CET
    assert (created.overlap, created.executor, created.source) == (
        "buffer_all",
        "celery:reports",
        "manifest",
    )
    assert created.misfire_grace_time is None
    assert created.timeout == 12.0


def test_date_trigger_in_the_past_within_grace_fires_at_once(
    sched: Scheduler, clock: FakeClock
) -> None:
    past = START - timedelta(seconds=30)
    created = add(sched, "once", {"type": "date", "run_at": past.isoformat()})
    assert created.next_run_at == past
    assert created.state == ScheduleState.ACTIVE
    with pytest.raises(ValidationError) as info:
        add(sched, "late", {"type": "date", "run_at": (START - timedelta(minutes=2)).isoformat()})
    assert info.value.field == "trigger.run_at"
    unlimited = add(
        sched,
        "any",
        {"type": "date", "run_at": (START - timedelta(days=9)).isoformat()},
        misfire_grace_time=None,
    )
    assert unlimited.next_run_at == START - timedelta(days=9)


def test_shell_needs_an_admin_of_every_tenant(sched: Scheduler) -> None:
    params = {"argv": ["echo", "hi"]}
    with pytest.raises(ValidationError) as info:
        sched.add_schedule(
            "sh", "duetime.shell", "@daily", parameters=params, created_by="acme:admin"
        )
    assert info.value.field == "job"
    assert (
        sched.add_schedule("sh", "duetime.shell", "@daily", parameters=params).job
        == "duetime.shell"
    )


def test_published_job_types_validate_parameters_without_the_module(
    sched: Scheduler, db_url: str, clock: FakeClock
) -> None:
    elsewhere = JobRegistry()

    @job("remote.only", timeout=42, registry=elsewhere)
    def remote(count: int) -> None:
        return None

    sched.store.publish_job_types(elsewhere.all(), published_by="engine-1")
    created = sched.add_schedule("r", "remote.only", "@hourly", parameters={"count": 3})
    assert created.job == "remote.only"
    with pytest.raises(ValidationError) as info:
        sched.add_schedule("r2", "remote.only", "@hourly", parameters={"count": "x"})
    assert info.value.field == "parameters.count"
    run = sched.trigger("r")
    assert run.timeout == 42.0  # the published @job default
    names = [row["name"] for row in sched.job_types()]
    assert "remote.only" in names
    assert "report" in names


# ---------------------------------------------------------------- update


def test_update_bumps_version_and_honours_expected_version(sched: Scheduler) -> None:
    created = add(sched)
    updated = sched.update_schedule("nightly", expected_version=1, priority=9, description="x")
    assert (updated.version, updated.priority, updated.description) == (2, 9, "x")
    assert updated.next_run_at == created.next_run_at
    with pytest.raises(VersionMismatchError) as info:
        sched.update_schedule("nightly", expected_version=1, priority=1)
    assert info.value.current_version == 2
    assert sched.get_schedule("nightly").priority == 9


def test_update_without_changes_keeps_the_version(sched: Scheduler) -> None:
    created = add(sched)
    same = sched.update_schedule("nightly", priority=0, trigger="0 3 * * *")
    assert same.version == created.version


def test_trigger_edit_recomputes_next_run_from_now(sched: Scheduler, clock: FakeClock) -> None:
    add(sched)
    clock.advance(hours=4)
    updated = sched.update_schedule("nightly", trigger={"cron": "30 * * * *"})
    assert updated.next_run_at == START + timedelta(hours=4, minutes=30)
    tz = sched.update_schedule("nightly", timezone="America/New_York", trigger="0 3 * * *")
    assert tz.next_run_at == datetime(2030, 1, 1, 8, tzinfo=UTC)
    assert tz.version == 3


def test_update_validates_like_create(sched: Scheduler) -> None:
    add(sched)
    add(sched, "other")
    for changes, field in [
        ({"max_instances": 0}, "max_instances"),
        ({"parameters": {"recipient": "y", "days": "x"}}, "parameters.days"),
        ({"job": "nope"}, "job"),
        ({"trigger": "bad"}, "trigger"),
        ({"name": ""}, "name"),
        ({"id": "x"}, "id"),
    ]:
        with pytest.raises(ValidationError) as info:
            sched.update_schedule("nightly", **changes)
        assert info.value.field == field
    with pytest.raises(ConflictError):
        sched.update_schedule("nightly", name="other")
    assert sched.get_schedule("nightly").version == 1


def test_runs_keep_their_snapshot_when_the_schedule_changes(sched: Scheduler) -> None:
    add(sched, timeout=60, max_attempts=2)
    run = sched.trigger("nightly")
    sched.update_schedule("nightly", timeout=5, max_attempts=9, parameters={"recipient": "b"})
    again = sched.get_run(run.id)
    assert (again.timeout, again.max_attempts) == (60.0, 2)
    assert again.parameters["recipient"] == "ops@example.com"


# ---------------------------------------------------------------- lifecycle


def test_delete_is_soft_and_cancels_pending_runs(sched: Scheduler) -> None:
    created = add(sched)
    pending = sched.trigger("nightly")
    running = sched.trigger("nightly")
    set_run_state(sched, running.id, RunState.RUNNING)
    deleted = sched.delete_schedule("nightly")
    assert deleted.deleted_at == START
    with pytest.raises(NotFoundError):
        sched.get_schedule(created.id)
    assert sched.list_schedules().items == []
    assert sched.get_run(pending.id).state == "cancelled"
    assert sched.get_run(running.id).state == "running"
    history = sched.get_runs(schedule=created.id).items
    assert {r.id for r in history} == {pending.id, running.id}
    with pytest.raises(NotFoundError):
        sched.delete_schedule("nightly")


def test_pause_cancels_pending_and_resume_keeps_the_interval_grid(
    sched: Scheduler, clock: FakeClock
) -> None:
    add(sched, "grid", {"interval_hours": 1})
    pending = sched.trigger("grid")
    clock.advance(minutes=20)
    paused = sched.pause("grid")
    assert (paused.state, paused.enabled, paused.next_run_at) == ("paused", False, None)
    assert sched.get_run(pending.id).state == RunState.CANCELLED
    assert sched.pause("grid").version == paused.version  # idempotent
    clock.advance(hours=2, minutes=10)  # now 02:30
    resumed = sched.resume("grid")
    assert (resumed.state, resumed.enabled) == ("active", True)
    assert resumed.next_run_at == START + timedelta(hours=3)  # on the grid, no burst
    assert sched.resume("grid").version == resumed.version


def test_manual_run_works_on_paused_schedule_and_snapshots_job_defaults(
    sched: Scheduler,
) -> None:
    add(sched)
    sched.pause("nightly")
    run = sched.trigger("nightly", parameters={"days": 2})
    assert (run.kind, run.state) == (RunKind.MANUAL, RunState.PENDING)
    assert run.parameters == {"recipient": "ops@example.com", "days": 2}
    assert (run.timeout, run.max_attempts) == (300.0, 3)  # the @job defaults
    assert run.scheduled_for == run.available_at == START
    with pytest.raises(ValidationError) as info:
        sched.trigger("nightly", parameters={"days": "many"})
    assert info.value.field == "parameters.days"


def test_update_enabled_false_pauses_and_true_resumes(sched: Scheduler, clock: FakeClock) -> None:
    add(sched)
    run = sched.trigger("nightly")
    paused = sched.update_schedule("nightly", enabled=False)
    assert (paused.state, paused.next_run_at) == ("paused", None)
    assert sched.get_run(run.id).state == "cancelled"
    clock.advance(hours=5)
    active = sched.update_schedule("nightly", enabled=True)
    assert active.next_run_at == datetime(2030, 1, 2, 3, tzinfo=UTC)


def test_rerun_and_cancel(sched: Scheduler) -> None:
    add(sched)
    first = sched.trigger("nightly")
    with pytest.raises(ConflictError):
        sched.rerun(first.id)
    set_run_state(sched, first.id, RunState.FAILED)
    again = sched.rerun(first.id)
    assert (again.kind, again.parent_run_id, again.parameters) == (
        "rerun",
        first.id,
        first.parameters,
    )
    assert sched.cancel(again.id).state == "cancelled"
    assert sched.cancel(again.id).state == "cancelled"  # idempotent
    running = sched.trigger("nightly")
    set_run_state(sched, running.id, RunState.RUNNING)
    asked = sched.cancel(running.id)
    assert (asked.state, asked.cancel_requested) == ("running", True)
    with pytest.raises(ConflictError):
        sched.cancel(first.id)
    with pytest.raises(NotFoundError):
        sched.cancel("00000000-0000-0000-0000-000000000000")


def test_tenants_are_isolated(sched: Scheduler) -> None:
    mine = add(sched)
    acme = sched.for_tenant("acme")
    with pytest.raises(NotFoundError):
        acme.get_schedule(mine.id)
    run = sched.trigger("nightly")
    with pytest.raises(NotFoundError):
        acme.get_run(run.id)
    with pytest.raises(NotFoundError):
        acme.pause("nightly")
    add(acme, "theirs")
    everyone = sched.for_tenant("*")
    assert {s.name for s in everyone.list_schedules().items} == {"nightly", "theirs"}
    with pytest.raises(ValidationError) as info:
        add(everyone, "x")
    assert info.value.field == "tenant"


# ---------------------------------------------------------------- listings


def test_schedule_pages_cover_everything_once(sched: Scheduler, clock: FakeClock) -> None:
    names = {f"job-{i:02d}" for i in range(23)}
    for name in sorted(names):
        add(sched, name)
        if name.endswith("3"):
            clock.advance(1)  # mix equal and distinct created_at
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = sched.list_schedules(limit=5, cursor=cursor)
        seen += [s.name for s in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 5
    assert sorted(seen) == sorted(names)
    assert len(seen) == len(set(seen))


def test_schedule_filters(sched: Scheduler) -> None:
    add(sched, "a_1")
    add(sched, "ab1")
    add(sched, "b", job="duetime.noop", parameters={})
    sched.pause("ab1")
    assert [s.name for s in sched.list_schedules(name_prefix="a_").items] == ["a_1"]
    assert [s.name for s in sched.list_schedules(state="paused").items] == ["ab1"]
    assert [s.name for s in sched.list_schedules(job="duetime.noop").items] == ["b"]
    assert {s.name for s in sched.list_schedules(enabled=True).items} == {"a_1", "b"}
    for kwargs, field in [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"state": "asleep"}, "state"),
    ]:
        with pytest.raises(ValidationError) as info:
            sched.list_schedules(**kwargs)
        assert info.value.field == field


def test_run_pages_newest_first_with_filters(sched: Scheduler, clock: FakeClock) -> None:
    add(sched)
    add(sched, "other")
    ids = []
    for _ in range(11):
        ids.append(sched.trigger("nightly").id)
        clock.advance(1)
    other = sched.trigger("other")
    set_run_state(sched, ids[0], RunState.SUCCEEDED)
    seen: list[str] = []
    cursor = None
    while True:
        page = sched.get_runs(schedule="nightly", limit=4, cursor=cursor)
        seen += [r.id for r in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert seen == list(reversed(ids))
    assert [r.id for r in sched.get_runs(state="succeeded").items] == [ids[0]]
    assert len(sched.get_runs(state=["pending", "succeeded"]).items) == 12
    recent = sched.get_runs(since=START + timedelta(seconds=10)).items
    assert [r.id for r in recent] == [other.id, ids[10]]
    with pytest.raises(ValidationError) as info:
        sched.get_runs(state="done")
    assert info.value.field == "state"


def test_next_fire_times_from_now(sched: Scheduler, clock: FakeClock) -> None:
    add(sched, trigger="0 3 * * *", timezone="Europe/Stockholm")
    clock.advance(hours=5)
    fires = sched.next_fire_times("nightly", 3)
    assert fires == [datetime(2030, 1, d, 2, tzinfo=UTC) for d in (2, 3, 4)]
    with pytest.raises(ValidationError) as info:
        sched.next_fire_times("nightly", 0)
    assert info.value.field == "count"


def test_runs_of_a_deleted_name_stay_reachable_and_names_resolve_live_first(
    sched: Scheduler,
) -> None:
    old = add(sched)
    old_run = sched.trigger("nightly")
    sched.delete_schedule("nightly")
    assert [r.id for r in sched.get_runs(schedule="nightly").items] == [old_run.id]
    new = add(sched)
    new_run = sched.trigger("nightly")
    assert [r.id for r in sched.get_runs(schedule="nightly").items] == [new_run.id]
    assert [r.id for r in sched.get_runs(schedule=old.id).items] == [old_run.id]
    assert new.id != old.id
    add(sched.for_tenant("acme"))
    everyone = sched.for_tenant("*")
    with pytest.raises(ValidationError) as info:
        everyone.get_schedule("nightly")
    assert info.value.field == "schedule"
    assert everyone.get_schedule(new.id).tenant == "default"


def _race(count: int, action: Any) -> list[Any]:
    """Run ``action(i)`` in ``count`` threads released together; return results/exceptions."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def worker(index: int) -> None:
        barrier.wait(timeout=30)
        try:
            results[index] = action(index)
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_edits_with_one_expected_version_let_exactly_one_win(
    sched: Scheduler,
) -> None:
    add(sched)
    # priority i + 1: a thread setting the current priority (0) would be a successful no-op
    results = _race(
        6, lambda i: sched.update_schedule("nightly", expected_version=1, priority=i + 1)
    )
    winners = [r for r in results if isinstance(r, Schedule)]
    losers = [r for r in results if isinstance(r, VersionMismatchError)]
    assert (len(winners), len(losers)) == (1, 5)
    assert all(err.current_version == 2 for err in losers)
    assert sched.get_schedule("nightly").priority == winners[0].priority


def test_concurrent_creates_of_one_name_let_exactly_one_win(sched: Scheduler) -> None:
    results = _race(6, lambda i: add(sched, "same", priority=i))
    assert sum(isinstance(r, Schedule) for r in results) == 1
    assert sum(isinstance(r, ConflictError) for r in results) == 5
    assert len(sched.list_schedules().items) == 1


def test_resending_an_unchanged_trigger_keeps_a_due_fire(
    sched: Scheduler, clock: FakeClock
) -> None:
    created = add(sched, trigger={"interval_minutes": 10})
    once = add(
        sched, "once", {"type": "date", "run_at": (START + timedelta(minutes=1)).isoformat()}
    )
    clock.advance(minutes=25)  # both are due and not fired yet (no engine)
    same = sched.update_schedule("nightly", trigger=dict(created.trigger))
    assert (same.version, same.next_run_at) == (1, START + timedelta(minutes=10))
    again = sched.update_schedule("once", trigger=dict(once.trigger), priority=2)
    assert (again.version, again.next_run_at, again.priority) == (2, once.next_run_at, 2)
    moved = sched.update_schedule("nightly", trigger={"interval_minutes": 7})
    assert moved.next_run_at == START + timedelta(minutes=28)  # creation-time grid, from now
