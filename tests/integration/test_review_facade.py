"""Review findings on the facade: inputs that crashed with non-duetime errors, races, surface."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from duetime.clock import FakeClock
from duetime.config import load_settings
from duetime.errors import ConfigurationError, NotFoundError, ValidationError
from duetime.scheduler import AsyncScheduler, Scheduler
from duetime.store import tables

START = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def sched(sqlite_url: str) -> Iterator[Scheduler]:
    scheduler = Scheduler(sqlite_url, clock=FakeClock(START))
    yield scheduler
    scheduler.close()


@pytest.mark.parametrize(
    ("field", "value", "zone"),
    [
        ("start_date", "0001-01-01T00:00:00", "Asia/Tokyo"),
        ("end_date", "0001-01-01T00:00:00+14:00", "UTC"),
    ],
)
def test_out_of_range_dates_are_validation_errors(
    sched: Scheduler, field: str, value: str, zone: str
) -> None:
    with pytest.raises(ValidationError) as info:
        sched.add_schedule("edge", "duetime.noop", "* * * * *", timezone=zone, **{field: value})
    assert info.value.field == field


def test_cleanup_with_huge_age_is_a_validation_error(sched: Scheduler) -> None:
    with pytest.raises(ValidationError) as info:
        sched.cleanup_history(older_than_days=10**6)
    assert info.value.field == "older_than_days"


def test_engines_publishing_job_types_at_once_do_not_collide(db_url: str) -> None:
    """Publication was update-then-insert: two engines starting together hit the unique key."""
    schedulers = [Scheduler(db_url, clock=FakeClock(START)) for _ in range(8)]
    barrier = threading.Barrier(len(schedulers))
    errors: list[BaseException] = []

    def publish(s: Scheduler) -> None:
        barrier.wait(timeout=10)
        try:
            s.publish_job_types(published_by="engine")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for s in schedulers:
        s.close()
    assert errors == []


def test_public_surface_has_every_design_method() -> None:
    """DESIGN §4: load_manifest and API-key/webhook management on both facades, same names."""
    wanted = {
        "load_manifest",
        "create_api_key",
        "list_api_keys",
        "revoke_api_key",
        "create_webhook",
        "list_webhooks",
        "get_webhook",
        "update_webhook",
        "delete_webhook",
    }
    sync_names = {n for n in dir(Scheduler) if not n.startswith("_")}
    async_names = {n for n in dir(AsyncScheduler) if not n.startswith("_")}
    assert wanted <= sync_names
    properties = {"store", "registry", "settings", "clock"}
    assert sync_names - properties <= async_names


def test_load_manifest_and_keys_through_the_facade(sched: Scheduler) -> None:
    data = {"schedules": [{"name": "m1", "job": "duetime.noop", "trigger": "0 3 * * *"}]}
    plan = sched.load_manifest(data, dry_run=True)
    assert plan.applied is False
    with pytest.raises(NotFoundError):
        sched.get_schedule("m1")
    sched.load_manifest(data)
    assert sched.get_schedule("m1").source == "manifest"
    created = sched.create_api_key("operator", name="ci")
    assert [k.id for k in sched.list_api_keys()] == [created.key.id]
    assert sched.for_tenant("other").list_api_keys() == []
    sched.revoke_api_key(created.key.id)
    assert sched.list_api_keys() == []


def test_webhooks_through_the_facade(sched: Scheduler) -> None:
    hook = sched.create_webhook("https://hooks.example.com/x", ["run.failed"])
    assert sched.get_webhook(hook.id).url == "https://hooks.example.com/x"
    assert sched.for_tenant("other").list_webhooks() == []
    updated = sched.update_webhook(hook.id, expected_version=1, enabled=False)
    assert updated.enabled is False
    sched.delete_webhook(hook.id)
    assert sched.list_webhooks() == []


def test_async_facade_loads_manifests(sqlite_url: str) -> None:
    async def scenario() -> str:
        scheduler = AsyncScheduler(sqlite_url, clock=FakeClock(START))
        try:
            data = {"schedules": [{"name": "m1", "job": "duetime.noop", "trigger": "0 3 * * *"}]}
            await scheduler.load_manifest(data)
            return (await scheduler.get_schedule("m1")).name
        finally:
            await scheduler.close()

    assert asyncio.run(scenario()) == "m1"


def test_non_admin_cannot_trigger_shell_schedule_with_other_parameters(sched: Scheduler) -> None:
    """Run-now with parameters must not let an operator rewrite an admin's shell argv/env."""
    sched.add_schedule("backup", "duetime.shell", "0 3 * * *", parameters={"argv": ["true"]})
    with pytest.raises(ValidationError) as info:
        sched.trigger("backup", {"argv": ["rm", "-rf", "/"]}, triggered_by="default:operator")
    assert info.value.field == "job"
    plain = sched.trigger("backup", triggered_by="default:operator")
    assert plain.parameters["argv"] == ["true"]
    admin = sched.trigger("backup", {"argv": ["date"]})
    assert admin.parameters["argv"] == ["date"]


def test_run_now_racing_a_delete_creates_no_orphan_run(
    sched: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """trigger() read the schedule and inserted the run in two transactions: a delete in
    between left a pending manual run of a deleted schedule that still executed. Now the
    schedule is read in the inserting transaction: a delete just before it is a 404."""
    sched.add_schedule("racy", "duetime.noop", "0 3 * * *")
    original = sched.store.insert_schedule_runs

    def deleted_then_insert(*args: object, **kwargs: object) -> object:
        monkeypatch.setattr(sched.store, "insert_schedule_runs", original)
        sched.delete_schedule("racy")
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sched.store, "insert_schedule_runs", deleted_then_insert)
    with pytest.raises(NotFoundError):
        sched.trigger("racy")
    assert sched.get_runs(state="pending").items == []


def test_source_is_read_only_after_creation(sched: Scheduler) -> None:
    """§1 source is read-only (who created it); update_schedule let code rewrite it, which
    also changes what `load --prune` may delete."""
    sched.add_schedule("mine", "duetime.noop", "0 3 * * *", source="cli")
    with pytest.raises(ValidationError) as info:
        sched.update_schedule("mine", source="manifest")
    assert info.value.field == "source"
    assert sched.get_schedule("mine").source == "cli"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"concurrency": 0}, "concurrency"),  # was a pydantic ValidationError (a 500 / traceback)
        ({"concurrency": "many"}, "concurrency"),
        ({"executor": "bogus"}, "executor"),  # was accepted, then failed at start()
    ],
)
def test_bad_constructor_settings_are_configuration_errors(
    sqlite_url: str, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ConfigurationError, match=field):
        Scheduler(sqlite_url, **kwargs)  # type: ignore[arg-type]


def test_overrides_of_explicit_settings_are_validated(sqlite_url: str) -> None:
    """model_copy(update=...) skipped validation: Scheduler(settings=s, concurrency=0) passed."""
    settings = load_settings(database_url=sqlite_url)
    with pytest.raises(ConfigurationError, match="concurrency"):
        Scheduler(settings=settings, concurrency=0)


def test_async_run_forever_restores_signal_handlers(sqlite_url: str) -> None:
    """AsyncScheduler.run_forever ran on the caller's loop and left its SIGINT/SIGTERM
    handlers installed: afterwards Ctrl-C only set a dead event and was swallowed."""
    import os
    import signal

    async def terminate_once_handled() -> None:
        for _ in range(3000):  # wait (≤ 30 s) until run_forever installed its handler
            if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            await asyncio.sleep(0.01)

    async def scenario() -> tuple[object, object]:
        scheduler = AsyncScheduler(sqlite_url, executor="thread")
        before = signal.getsignal(signal.SIGINT)  # asyncio.run's own Ctrl-C handler
        killer = asyncio.create_task(terminate_once_handled())
        try:
            await asyncio.wait_for(scheduler.run_forever(), timeout=30)
            await killer
            return before, signal.getsignal(signal.SIGINT)
        finally:
            await scheduler.close()

    before, after = asyncio.run(scenario())
    assert after == before
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_get_runs_positional_order_follows_design(sched: Scheduler) -> None:
    """§4: get_runs(schedule=None, state=None, limit=100, cursor=None); ``since`` sat third,
    so get_runs("nightly", None, 1) passed 1 as ``since`` and failed."""
    sched.add_schedule("nightly", "duetime.noop", "0 3 * * *")
    sched.trigger("nightly")
    sched.trigger("nightly")
    page = sched.get_runs("nightly", None, 1)
    assert len(page.items) == 1
    assert page.next_cursor is not None


@pytest.mark.parametrize("field", ["labels", "parameters"])
def test_deeply_nested_json_is_refused(sched: Scheduler, field: str) -> None:
    """A 900-level label was stored, then every read of it failed to serialise (API 500)."""
    nested: object = []
    for _ in range(900):
        nested = [nested]
    with pytest.raises(ValidationError) as info:
        sched.add_schedule("deep", "duetime.noop", "0 3 * * *", **{field: {"a": nested}})
    assert info.value.field == field


def test_start_date_accepts_a_date_like_its_iso_string(sched: Scheduler) -> None:
    """ "2030-02-01" was accepted (midnight in the zone) but date(2030, 2, 1) was refused."""
    import datetime as dt

    by_object = sched.add_schedule(
        "a",
        "duetime.noop",
        "0 3 * * *",
        timezone="Europe/Stockholm",
        start_date=dt.date(2030, 2, 1),
    )
    by_text = sched.add_schedule(
        "b", "duetime.noop", "0 3 * * *", timezone="Europe/Stockholm", start_date="2030-02-01"
    )
    assert by_object.start_date == by_text.start_date == datetime(2030, 1, 31, 23, tzinfo=UTC)


def test_recalculate_reads_schedules_in_bounded_pages(
    sched: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """recalculate_next_runs loaded every active schedule of the database into one list."""
    import duetime.store.sqlalchemy as store_module

    monkeypatch.setattr(store_module, "RECALCULATE_PAGE_SIZE", 2)
    for n in range(5):
        sched.add_schedule(f"s{n}", "duetime.noop", "0 3 * * *")
    sizes: list[int] = []
    original = sched.store.active_schedules

    def spy(*args: object, **kwargs: object) -> list[object]:
        page = original(*args, **kwargs)  # type: ignore[arg-type]
        sizes.append(len(page))
        return page  # type: ignore[no-any-return]

    monkeypatch.setattr(sched.store, "active_schedules", spy)
    with sched.store.write() as conn:  # make every next_run_at stale
        conn.execute(sa.update(tables.schedules).values(next_run_at=START + timedelta(days=9)))
    assert sched.recalculate_next_runs() == 5
    assert max(sizes) <= 2
    assert all(s.next_run_at == START.replace(hour=3) for s in sched.list_schedules().items)
