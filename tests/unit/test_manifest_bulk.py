"""The bulk manifest path on SQLite and PostgreSQL: buffered facade writes, executemany flushes."""

from __future__ import annotations

import gc
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from duetime import manifest
from duetime.errors import VersionMismatchError
from duetime.jobs import job
from duetime.manifest import ManifestError, load_manifest
from duetime.models import Schedule
from duetime.scheduler import Scheduler
from duetime.store import manifest_ops
from duetime.store import tables as t
from duetime.store.sqlalchemy import ScheduleChanges

CRON = "*/5 * * * *"


@job("bulk_test.echo")
def echo(word: str = "hi") -> dict[str, str]:
    """Return the word (a job for bulk manifest tests)."""
    return {"word": word}


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Write every 2 schedules, so loads span several flushes."""
    monkeypatch.setattr(manifest, "_APPLY_CHUNK", 2)


def entry(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "job": "bulk_test.echo", "cron": CRON, **fields}


def live(scheduler: Scheduler) -> dict[str, Schedule]:
    found: dict[str, Schedule] = {}
    cursor = None
    while True:
        page = scheduler.list_schedules(limit=500, cursor=cursor)
        found.update((s.name, s) for s in page.items)
        cursor = page.next_cursor
        if not cursor:
            return found


def run_states(scheduler: Scheduler) -> list[str]:
    with scheduler.store.read() as conn:
        return sorted(conn.execute(sa.select(t.runs.c.state)).scalars())


def test_create_update_unchanged_delete_and_prune_across_flushes(
    scheduler: Scheduler, small_chunks: None
) -> None:
    first = [entry(n) for n in ("a", "b", "c", "d", "e")]
    assert load_manifest(scheduler, {"schedules": first}).counts()["create"] == 5
    before = live(scheduler)
    assert all(s.version == 1 and s.source.value == "manifest" for s in before.values())
    assert all(s.next_run_at is not None and s.state.value == "active" for s in before.values())
    scheduler.trigger("e")  # a pending run the prune must cancel
    second = [
        entry("a"),
        entry("b", description="now described"),
        entry("c", enabled=False),
        entry("f", parameters={"word": "new"}),
    ]
    plan = load_manifest(scheduler, {"schedules": second}, prune=True)
    assert plan.counts() == {"create": 1, "update": 2, "unchanged": 1, "delete": 2}
    after = live(scheduler)
    assert set(after) == {"a", "b", "c", "f"}
    assert after["a"] == before["a"]
    assert after["b"].description == "now described"
    assert after["b"].version == 2
    assert after["b"].updated_at is not None
    assert after["b"].updated_at >= before["b"].updated_at
    assert after["b"].next_run_at == before["b"].next_run_at  # not a timing change
    assert (after["c"].enabled, after["c"].state.value, after["c"].next_run_at) == (
        False,
        "paused",
        None,
    )
    assert after["f"].parameters == {"word": "new"}
    assert run_states(scheduler) == ["cancelled"]
    with scheduler.store.read() as conn:
        deleted = conn.execute(
            sa.select(t.schedules.c.name).where(t.schedules.c.deleted_at.is_not(None))
        ).scalars()
        assert sorted(deleted) == ["d", "e"]


def test_rows_match_what_add_schedule_writes(scheduler: Scheduler) -> None:
    fields: dict[str, Any] = {
        "description": "parity",
        "parameters": {"word": "x"},
        "priority": 7,
        "max_instances": 3,
        "overlap": "buffer_one",
        "misfire_grace_time": 30.0,
        "coalesce": False,
        "max_attempts": 4,
        "max_recoveries": 1,
        "retry_backoff": 2.5,
        "timeout": 60.0,
        "executor": "thread",
        "sla_seconds": 5,
        "labels": {"team": "ops"},
        "start_date": "2030-01-01T00:00:00+00:00",
        "timezone": "Europe/Paris",
        "enabled": False,
    }
    load_manifest(scheduler, {"schedules": [entry("bulk", **fields)]})
    by_bulk = live(scheduler)["bulk"]
    single = dict(fields, start_date=datetime(2030, 1, 1, tzinfo=UTC), source="manifest")
    params, zone = single.pop("parameters"), single.pop("timezone")
    by_facade = scheduler.add_schedule(
        "single", "bulk_test.echo", CRON, timezone=zone, parameters=params, **single
    )
    skip = {"id", "name", "created_at", "updated_at"}
    bulk_fields = {k: v for k, v in by_bulk.to_dict().items() if k not in skip}
    assert bulk_fields == {k: v for k, v in by_facade.to_dict().items() if k not in skip}


def test_a_bad_entry_in_a_later_chunk_keeps_nothing(
    scheduler: Scheduler, small_chunks: None
) -> None:
    load_manifest(scheduler, {"schedules": [entry("kept"), entry("gone")]})
    before = live(scheduler)
    bad = [entry("kept", description="x"), entry("n1"), entry("n2"), entry("n3")]
    bad.append(entry("n4", parameters={"word": 5}))  # fails in the facade's job validation
    bad.append(entry("n5", cron="99 * * * *"))  # fails while reading
    with pytest.raises(ManifestError) as info:
        load_manifest(scheduler, {"schedules": bad}, prune=True)
    assert "schedules[5].cron" in str(info.value)
    assert live(scheduler) == before
    past = {"type": "date", "run_at": "2001-01-01T00:00:00+00:00"}
    late = [entry("n1"), entry("n2"), entry("n3"), entry("n4", cron=None, trigger=past)]
    late[3].pop("cron")
    with pytest.raises(ManifestError, match=r"schedules\[3\]\.trigger\.run_at"):
        load_manifest(scheduler, {"schedules": late})  # refused by the facade, after 2 flushes
    assert live(scheduler) == before


def test_dry_run_changes_nothing(scheduler: Scheduler, small_chunks: None) -> None:
    load_manifest(scheduler, {"schedules": [entry("a"), entry("b"), entry("c")]})
    scheduler.trigger("c")
    before = live(scheduler)
    changed = [entry("a", priority=5), entry("b", enabled=False), entry("new")]
    plan = load_manifest(scheduler, {"schedules": changed}, prune=True, dry_run=True)
    assert plan.counts() == {"create": 1, "update": 2, "unchanged": 0, "delete": 1}
    assert not plan.applied
    assert live(scheduler) == before
    assert run_states(scheduler) == ["pending"]


def test_progress_is_reported_as_chunks_are_written(
    scheduler: Scheduler, small_chunks: None
) -> None:
    seen: list[tuple[int, int]] = []
    load_manifest(
        scheduler,
        {"schedules": [entry("a"), entry("b"), entry("c")]},
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_garbage_collection_is_restored_after_a_load(scheduler: Scheduler) -> None:
    assert gc.isenabled()
    load_manifest(scheduler, {"schedules": [entry("a")]})
    assert gc.isenabled()
    with pytest.raises(ManifestError):
        load_manifest(scheduler, {"schedules": [entry("a", cron="nope")]})
    assert gc.isenabled()


def test_a_concurrent_edit_fails_the_flush(scheduler: Scheduler) -> None:
    load_manifest(scheduler, {"schedules": [entry("a")]})
    current = scheduler.get_schedule("a")
    scheduler.update_schedule("a", description="edited elsewhere")  # version 2 now
    stale = manifest_ops._Change(current, ScheduleChanges({"description": "mine"}))
    with pytest.raises(VersionMismatchError), scheduler.store.write() as conn:
        manifest_ops._update(conn, [stale], datetime.now(UTC))
    assert scheduler.get_schedule("a").description == "edited elsewhere"


def test_five_thousand_schedules_load_and_reload(scheduler: Scheduler) -> None:
    entries = [
        {"name": f"s{i:05d}", "job": "bulk_test.echo", "cron": f"{i % 60} {i % 24} * * *"}
        for i in range(5000)
    ]
    plan = load_manifest(scheduler, {"schedules": entries})
    assert plan.counts()["create"] == 5000
    stored = live(scheduler)
    assert len(stored) == 5000
    now = datetime.now(UTC)
    for i in (0, 1234, 4999):
        item = stored[f"s{i:05d}"]
        assert item.next_run_at is not None
        assert (item.next_run_at.minute, item.next_run_at.hour) == (i % 60, i % 24)
        assert now - timedelta(minutes=1) < item.next_run_at <= now + timedelta(days=1)
    assert load_manifest(scheduler, {"schedules": entries}).counts()["unchanged"] == 5000


def test_driver_inserts_keep_the_store_nul_rule() -> None:
    from duetime.errors import ValidationError

    manifest_ops._refuse_nul([("ok", None, 1)])
    with pytest.raises(ValidationError, match="NUL"):
        manifest_ops._refuse_nul([("ok",), ("bad\0text", 2)])


def test_many_updates_of_the_same_columns_go_in_one_statement(scheduler: Scheduler) -> None:
    names = [f"u{i}" for i in range(7)]
    load_manifest(scheduler, {"schedules": [entry(n) for n in names]})
    plan = load_manifest(scheduler, {"schedules": [entry(n, priority=3) for n in names]})
    assert plan.counts()["update"] == 7
    assert {(s.priority, s.version) for s in live(scheduler).values()} == {(3, 2)}


def test_an_unchanged_reload_takes_no_write_lock(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from duetime.store import sqlalchemy as store_module

    monkeypatch.setattr(store_module, "SQLITE_BUSY_TIMEOUT_MS", 200)  # fail fast if it waits
    monkeypatch.setattr(store_module, "SQLITE_BEGIN_ATTEMPTS", 1)
    data = {"schedules": [entry("a"), entry("b")]}
    with Scheduler(sqlite_url) as facade:
        load_manifest(facade, data)
        blocker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # an engine busy writing
        try:
            assert load_manifest(facade, data).counts()["unchanged"] == 2
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()


def test_inserted_values_convert_exactly_as_one_by_one(scheduler: Scheduler) -> None:
    """Shared conversions keep values of equal hash apart (-0.0/0.0, True/1, zones)."""
    dialect = scheduler.store.engine.dialect
    inserter = manifest_ops._RowInserter(dialect)
    shared: dict[str, Any] = {}
    instant = datetime(2030, 1, 1, tzinfo=UTC)
    paris = instant.astimezone(ZoneInfo("Europe/Paris"))
    variants = [
        {"misfire_grace_time": -0.0, "labels": {"a": True}, "next_run_at": instant},
        {"misfire_grace_time": 0.0, "labels": {"a": 1}, "next_run_at": paris},
        {"misfire_grace_time": 0.0, "labels": shared, "trigger": {"nested": {"x": [1, 2.5]}}},
        {"misfire_grace_time": None, "labels": shared, "parameters": {"k": None}},
    ]
    columns = {c.key: c for c in t.schedules.c}
    rows = [dict.fromkeys(inserter.keys) | variant for variant in variants]
    expected = [
        tuple(_convert(columns[key], dialect, row[key]) for key in inserter.keys) for row in rows
    ]
    for _ in range(2):  # the second batch reuses the memo
        bound = inserter.bound_rows(rows)
        # repr: exact types and signs (PostgreSQL's Json wrappers show what they wrap)
        assert [[repr(v) for v in row] for row in bound] == [
            [repr(v) for v in row] for row in expected
        ]


def _convert(column: sa.Column[Any], dialect: sa.Dialect, value: Any) -> Any:
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return value if process is None else process(value)


@pytest.mark.parametrize(
    "spec",
    [
        "0 3 * * *",
        "*/5 * * * *",
        {"type": "cron", "expression": "0 3 * * *", "jitter": 0.0},
        {"type": "cron", "expression": "0 3 * * *", "jitter": -0.0},
        {"type": "interval", "minutes": 5},
        {"type": "or", "triggers": ["0 3 * * *", {"type": "interval", "hours": 1}]},
        {"type": "date", "run_at": "2030-06-01T00:00:00+00:00"},
    ],
)
def test_a_trigger_memo_plans_exactly_as_without(spec: Any) -> None:
    from duetime.scheduler import TriggerMemo, plan_trigger

    memo: TriggerMemo = {}
    base = datetime(2030, 1, 1, tzinfo=UTC)
    for minutes in (0, 7, 3, 4.9999, 5, 20, 20, 6 * 60, 26 * 60):  # past fires, back in time
        now = base + timedelta(minutes=minutes)
        kwargs: dict[str, Any] = {
            "timezone": "Europe/Paris",
            "start_at": None,
            "end_at": None,
            "anchor_default": now,
            "now": now,
            "misfire_grace_time": 60.0,
        }
        assert plan_trigger(spec, memo=memo, **kwargs) == plan_trigger(spec, **kwargs)
    anchored = "anchor" in json.dumps(plan_trigger(spec, **kwargs)[0])
    assert len(memo) == (0 if anchored else 1)


def test_trigger_memo_keys_keep_types_apart() -> None:
    from duetime.scheduler import _memo_key

    keys = [
        _memo_key(spec, "UTC", None, None)
        for spec in ({"a": 1}, {"a": True}, {"a": 1.0}, {"a": -0.0}, {"a": 0.0}, {1: "a"})
    ]
    assert len(set(keys)) == len(keys)
    assert _memo_key({"a": datetime(2030, 1, 1, tzinfo=UTC)}, "UTC", None, None) is None
