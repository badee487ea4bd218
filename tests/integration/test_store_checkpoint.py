"""SQLAlchemyStore's WAL checkpoints: on a thread of their own, off the write lock (SQLite)."""

from __future__ import annotations

import gc
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from duetime.clock import SystemClock
from duetime.store import checkpoint
from duetime.store.checkpoint import WAL_AUTOCHECKPOINT_BACKSTOP_PAGES
from duetime.store.locks import DistributedLock
from duetime.store.migrate import upgrade_database
from duetime.store.sqlalchemy import SQLAlchemyStore
from wal_helpers import DEADLINE_SECONDS, checkpointer_threads, eventually, rows_in_database_file

#: Far fewer WAL pages than any automatic checkpoint (SQLite's default 1,000 included):
#: only the background thread can have copied these commits into the database file.
COMMITS = 100


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "duetime.db"


@pytest.fixture
def store(path: Path) -> Iterator[SQLAlchemyStore]:
    s = SQLAlchemyStore(f"sqlite:///{path}", clock=SystemClock())
    yield s
    s.dispose()


def insert(store: SQLAlchemyStore, count: int) -> None:
    with store.write() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    for i in range(count):
        with store.write() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (?)", (i,))


def test_store_connections_keep_only_a_backstop_autocheckpoint(store: SQLAlchemyStore) -> None:
    with store.read() as conn:
        pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert pages == WAL_AUTOCHECKPOINT_BACKSTOP_PAGES
    assert pages > 1000  # well above SQLite's default, which a writer's COMMIT would run


def test_commits_reach_the_database_file_through_the_background_thread(
    store: SQLAlchemyStore, path: Path
) -> None:
    before = checkpointer_threads()
    with store.read() as conn:
        conn.exec_driver_sql("SELECT 1")
    assert checkpointer_threads() == before  # not started by construction nor by reads
    insert(store, COMMITS)
    assert len(checkpointer_threads() - before) == 1
    eventually(lambda: rows_in_database_file(path) == COMMITS, "the WAL checkpointed")


def test_dispose_stops_the_thread_and_leaks_nothing(tmp_path: Path) -> None:
    def cycle(i: int) -> None:
        store = SQLAlchemyStore(f"sqlite:///{tmp_path / f'{i % 3}.db'}", clock=SystemClock())
        insert(store, 2)
        assert len(checkpointer_threads() - before) == 1
        store.dispose()

    before = checkpointer_threads()
    cycle(0)  # lazily imported modules, caches: counted after one round
    gc.collect()
    fds = open_fds()
    threads = threading.active_count()
    for i in range(1, 40):
        cycle(i)
    gc.collect()
    assert checkpointer_threads() - before == set()
    assert threading.active_count() == threads
    assert open_fds() == fds


def test_a_store_collected_undisposed_stops_its_thread(path: Path) -> None:
    before = checkpointer_threads()
    store = SQLAlchemyStore(f"sqlite:///{path}", clock=SystemClock())
    insert(store, 1)
    ours = checkpointer_threads() - before
    assert len(ours) == 1
    del store
    gc.collect()
    eventually(lambda: not any(t.is_alive() for t in ours), "the thread ended")


def test_a_disposed_store_checkpoints_again_after_its_next_write(
    store: SQLAlchemyStore, path: Path
) -> None:
    insert(store, 1)
    store.dispose()
    before = checkpointer_threads()
    insert(store, COMMITS)
    assert len(checkpointer_threads() - before) == 1
    eventually(lambda: rows_in_database_file(path) == COMMITS + 1, "the WAL checkpointed")


def test_a_failing_checkpoint_never_reaches_writers(
    store: SQLAlchemyStore,
    path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real = checkpoint.passive_checkpoint
    failed = threading.Event()
    broken = [True]

    def disk_error(conn: sqlite3.Connection) -> checkpoint.CheckpointResult:
        if broken[0]:
            failed.set()
            raise sqlite3.OperationalError("disk I/O error")
        return real(conn)

    monkeypatch.setattr(checkpoint, "passive_checkpoint", disk_error)
    caplog.set_level(logging.WARNING, logger="duetime.store")
    insert(store, COMMITS)  # every write commits, whatever the checkpointer meets
    assert failed.wait(DEADLINE_SECONDS)
    for _ in range(3):  # more failed attempts: still one warning for the burst
        failed.clear()
        insert(store, 1)
        assert failed.wait(DEADLINE_SECONDS)
    warnings = [r for r in caplog.records if getattr(r, "event", None) == "store.checkpoint_failed"]
    assert len(warnings) == 1
    assert "disk I/O error" in caplog.text
    assert not rows_in_database_file(path)  # nothing checkpointed meanwhile (not even t)
    broken[0] = False
    insert(store, 1)  # the thread kept going: the next commit is checkpointed
    eventually(lambda: rows_in_database_file(path) == COMMITS + 4, "the WAL checkpointed")


def test_a_checkpointer_that_cannot_start_never_reaches_writers(
    store: SQLAlchemyStore,
    path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real_start = threading.Thread.start
    refused: list[str] = []

    def start(thread: threading.Thread) -> None:
        if thread.name == checkpoint.THREAD_NAME and not refused:
            refused.append(thread.name)
            raise RuntimeError("can't start new thread")  # a thread or memory limit
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    monkeypatch.setattr(checkpoint, "START_RETRY_SECONDS", 3600.0)
    caplog.set_level(logging.WARNING, logger="duetime.store")
    changes: list[int] = []
    store.add_change_listener(lambda: changes.append(1))
    before = checkpointer_threads()
    for i in range(3):  # each write commits, returns and tells the listeners
        with store.write() as conn:
            conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
            conn.exec_driver_sql("INSERT INTO t VALUES (?)", (i,))
            store.changed(conn)
    assert refused
    assert len(changes) == 3
    with store.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 3
    warnings = [r for r in caplog.records if getattr(r, "event", None) == "store.checkpoint_failed"]
    assert len(warnings) == 1
    assert "can't start new thread" in caplog.text
    assert checkpointer_threads() == before  # not retried at every commit
    checkpointer = store._checkpointer
    assert checkpointer is not None
    checkpointer._no_start_until = 0.0  # the retry delay has passed
    insert(store, 1)
    eventually(lambda: rows_in_database_file(path) == 4, "the WAL checkpointed after a retry")


def test_an_in_memory_store_has_no_checkpointer() -> None:
    before = checkpointer_threads()
    store = SQLAlchemyStore("sqlite://", clock=SystemClock())
    try:
        insert(store, 3)
        assert checkpointer_threads() == before
    finally:
        store.dispose()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_starts_a_checkpointer_of_its_own(
    store: SQLAlchemyStore, path: Path
) -> None:
    insert(store, 1)
    eventually(lambda: rows_in_database_file(path) == 1, "the parent's checkpoint")
    pid = os.fork()
    if pid == 0:  # the child: its parent's thread does not exist here
        status = 1
        try:
            store.engine.dispose(close=False)  # never use the parent's connections
            checkpointer = store._checkpointer
            assert checkpointer is not None
            assert not checkpointer.running
            assert checkpointer._worker is None
            insert(store, COMMITS)
            assert len(checkpointer_threads()) == 1
            eventually(lambda: rows_in_database_file(path) == COMMITS + 1, "child's checkpoint")
            status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_lock_with_a_store_of_its_own_starts_no_checkpoint_thread(
    store: SQLAlchemyStore, path: Path
) -> None:
    insert(store, 1)  # the schema's table t; the locks table comes from the migration
    url = f"sqlite:///{path}"
    upgrade_database(url)
    before = checkpointer_threads()
    with DistributedLock(url, "job:settle", ttl_seconds=60, owner="a") as lock:
        assert lock.held
        assert checkpointer_threads() == before  # one thread and connection per lock, before
    short_lived = SQLAlchemyStore(url, clock=SystemClock(), checkpoints=False)
    try:
        insert(short_lived, 1)
        assert checkpointer_threads() == before
    finally:
        short_lived.dispose()
