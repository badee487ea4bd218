"""SQLAlchemyStore: transactions, change signals, job types, instances and locks (both backends)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import sqlalchemy as sa

from duetime.clock import FakeClock
from duetime.errors import ConfigurationError, LockNotAcquiredError, ValidationError
from duetime.jobs.registry import JobRegistry, job
from duetime.store import tables
from duetime.store.locks import DistributedLock
from duetime.store.sqlalchemy import CHANGES_CHANNEL, SQLAlchemyStore, normalize_url

START = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[SQLAlchemyStore]:
    s = SQLAlchemyStore(db_url, clock=clock)
    yield s
    s.dispose()


def _instance(instance_id: str, now: datetime, concurrency: int = 0) -> dict[str, object]:
    return {
        "id": instance_id,
        "hostname": "h",
        "pid": 1,
        "executor": "thread",
        "concurrency": concurrency,
        "version": "0.1.0",
        "started_at": now,
        "heartbeat_at": now,
        "stopped_at": None,
    }


class _UndoError(Exception):
    pass


def _write_then_fail(store: SQLAlchemyStore, work: Callable[[sa.Connection], object]) -> None:
    with store.write() as conn:
        work(conn)
        raise _UndoError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u:p@h:5433/db", "postgresql+psycopg://u:p@h:5433/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_normalize_url_routes_postgres_to_psycopg(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://h/db", "not a url", "redis://h"])
def test_normalize_url_refuses_other_backends(url: str) -> None:
    with pytest.raises(ConfigurationError):
        normalize_url(url)


def test_listeners_run_after_commit_only(store: SQLAlchemyStore) -> None:
    calls: list[str] = []
    store.add_change_listener(lambda: calls.append("x"))
    with store.write() as conn:
        store.changed(conn)
        assert calls == []  # not before commit
    assert calls == ["x"]
    with pytest.raises(_UndoError):
        _write_then_fail(store, store.changed)
    with store.write() as conn:
        conn.execute(sa.select(1))
    assert calls == ["x"]  # neither a rolled-back nor an unchanged transaction signals


def test_writes_commit_and_errors_roll_back(store: SQLAlchemyStore, clock: FakeClock) -> None:
    with store.write() as conn:
        conn.execute(sa.insert(tables.instances).values(**_instance("a", START)))
    with pytest.raises(_UndoError):
        _write_then_fail(
            store,
            lambda conn: conn.execute(sa.insert(tables.instances).values(**_instance("b", START))),
        )
    assert [row["id"] for row in store.list_instances()] == ["a"]


def test_postgres_notifies_other_processes(pg_url: str, clock: FakeClock) -> None:
    store = SQLAlchemyStore(pg_url, clock=clock)
    plain = sa.make_url(pg_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(plain, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANGES_CHANNEL}")
        with store.write() as conn:
            conn.execute(sa.select(1))  # a write without changed(): no notification
        with store.write() as conn:
            store.changed(conn)
        received = list(listener.notifies(timeout=5, stop_after=1))
        extra = list(listener.notifies(timeout=0.2))
    store.dispose()
    assert [n.channel for n in received] == [CHANGES_CHANNEL]
    assert extra == []


def test_sqlite_pragmas(sqlite_url: str, clock: FakeClock) -> None:
    store = SQLAlchemyStore(sqlite_url, clock=clock)
    with store.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    store.dispose()


def test_concurrent_read_modify_write_loses_nothing(store: SQLAlchemyStore) -> None:
    """BEGIN IMMEDIATE (SQLite) / FOR UPDATE (PostgreSQL) serialise writers."""
    with store.write() as conn:
        conn.execute(sa.insert(tables.instances).values(**_instance("counter", START)))
    i = tables.instances
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(15):
                with store.write() as conn:
                    query = sa.select(i.c.concurrency).where(i.c.id == "counter")
                    if store.dialect == "postgresql":
                        query = query.with_for_update()
                    value = conn.execute(query).scalar_one()
                    conn.execute(
                        sa.update(i).where(i.c.id == "counter").values(concurrency=value + 1)
                    )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert store.list_instances()[0]["concurrency"] == 60


def test_db_now(store: SQLAlchemyStore, clock: FakeClock) -> None:
    if store.dialect == "sqlite":
        assert store.db_now() == clock.now()
    else:
        drift = abs((store.db_now() - datetime.now(UTC)).total_seconds())
        assert drift < 60


def test_publish_job_types_upserts(store: SQLAlchemyStore, clock: FakeClock) -> None:
    registry = JobRegistry()

    @job("pub.one", timeout=9, max_attempts=2, registry=registry)
    def one(x: int, y: str = "a") -> None:
        return None

    assert store.publish_job_types(registry.all(), published_by="e1") == 1
    clock.advance(5)
    store.publish_job_types(registry.all(), published_by="e2")
    rows = store.job_types()
    assert len(rows) == 1
    row = rows[0]
    assert (row["name"], row["timeout"], row["max_attempts"]) == ("pub.one", 9.0, 2)
    assert (row["published_by"], row["updated_at"]) == ("e2", START + timedelta(seconds=5))
    assert row["defaults"] == {"y": "a"}
    assert "x" in row["parameter_schema"]["properties"]
    assert store.job_type("pub.one") == row
    assert store.job_type("nope") is None


def test_instances_register_heartbeat_stop(store: SQLAlchemyStore, clock: FakeClock) -> None:
    store.register_instance(_instance("e1", START))
    store.register_instance(_instance("e1", START, concurrency=5))  # re-register replaces
    later = clock.advance(10)
    store.heartbeat_instance("e1", later)
    [row] = store.list_instances()
    assert (row["heartbeat_at"], row["concurrency"], row["stopped_at"]) == (later, 5, None)
    store.stop_instance("e1", later)
    assert store.list_instances()[0]["stopped_at"] == later
    assert store.list_instances(since=later + timedelta(seconds=1)) == []


# ---------------------------------------------------------------- locks


def _expire_all(store: SQLAlchemyStore, clock: FakeClock) -> None:
    """Make every lock expired by the clock that judges it."""
    if store.dialect == "sqlite":
        clock.advance(hours=2)
        return
    with store.write() as conn:
        conn.execute(sa.text("UPDATE duetime_locks SET expires_at = now() - interval '1 second'"))


def test_lock_excludes_other_owners_until_released(db_url: str, store: SQLAlchemyStore) -> None:
    first = DistributedLock(db_url, "job:settle", ttl_seconds=60, owner="a", store=store)
    second = DistributedLock(db_url, "job:settle", ttl_seconds=60, owner="b", store=store)
    other_key = DistributedLock(db_url, "job:other", ttl_seconds=60, owner="b", store=store)
    first.acquire()
    first.acquire()  # re-entrant for the same owner token
    with pytest.raises(LockNotAcquiredError) as info:
        second.acquire()
    assert info.value.key == "job:settle"
    other_key.acquire()
    first.release()
    second.acquire()
    assert second.held


def test_expired_lock_can_be_taken_and_the_loser_cannot_renew(
    db_url: str, store: SQLAlchemyStore, clock: FakeClock
) -> None:
    first = DistributedLock(db_url, "k", ttl_seconds=3600, owner="a", store=store)
    second = DistributedLock(db_url, "k", ttl_seconds=3600, owner="b", store=store)
    first.acquire()
    first.renew()
    _expire_all(store, clock)
    second.acquire()
    with pytest.raises(LockNotAcquiredError):
        first.renew()
    first.release()  # not ours any more: a no-op
    with pytest.raises(LockNotAcquiredError):
        DistributedLock(db_url, "k", ttl_seconds=5, owner="c", store=store).acquire()


def test_renew_extends_the_lease(sqlite_url: str, clock: FakeClock) -> None:
    store = SQLAlchemyStore(sqlite_url, clock=clock)
    lock = DistributedLock(sqlite_url, "k", ttl_seconds=60, owner="a", store=store)
    lock.acquire()
    clock.advance(50)
    lock.renew()
    clock.advance(50)  # 100 s after acquiring, 50 s after renewing
    with pytest.raises(LockNotAcquiredError):
        DistributedLock(sqlite_url, "k", ttl_seconds=60, owner="b", store=store).acquire()
    clock.advance(11)
    DistributedLock(sqlite_url, "k", ttl_seconds=60, owner="b", store=store).acquire()
    store.dispose()


def test_postgres_lock_expiry_follows_the_database_clock(pg_url: str, clock: FakeClock) -> None:
    """A process clock far in the future (2030) neither stretches nor steals a lease."""
    store = SQLAlchemyStore(pg_url, clock=clock)
    DistributedLock(pg_url, "k", ttl_seconds=60, owner="a", store=store).acquire()
    with store.read() as conn:
        expires_at, db_now = conn.execute(sa.select(tables.locks.c.expires_at, sa.func.now())).one()
    store.dispose()
    assert timedelta(seconds=59) <= expires_at - db_now <= timedelta(seconds=61)
    assert expires_at < clock.now()


def test_lock_as_context_manager_with_its_own_connection(db_url: str) -> None:
    with DistributedLock(db_url, "ctx", ttl_seconds=30, owner="run:1") as lock:
        assert lock.held
        with pytest.raises(LockNotAcquiredError):  # noqa: SIM117
            with DistributedLock(db_url, "ctx", ttl_seconds=30, owner="run:2"):
                pass
    with DistributedLock(db_url, "ctx", ttl_seconds=30, owner="run:2") as again:
        assert again.held


@pytest.mark.parametrize(
    ("key", "ttl", "field"), [("", 5, "key"), ("k", 0, "ttl"), ("k", "5", "ttl")]
)
def test_lock_arguments_are_validated(db_url: str, key: str, ttl: object, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        DistributedLock(db_url, key, ttl_seconds=ttl, owner="x")  # type: ignore[arg-type]
    assert info.value.field == field
