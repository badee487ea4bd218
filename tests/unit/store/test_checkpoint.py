"""WalCheckpointer on real SQLite files: checkpoints after signals, survives failures, stops."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from duetime.store import checkpoint
from duetime.store.checkpoint import WalCheckpointer
from duetime.store.sqlalchemy import create_store_engine
from wal_helpers import (
    DEADLINE_SECONDS,
    checkpointer_threads,
    eventually,
    rows_in_database_file,
    wal_database,
)

ROWS = 50


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return wal_database(tmp_path / "d.db")


@pytest.fixture
def writer(db: Path) -> Iterator[sqlite3.Connection]:
    """A connection that never checkpoints by itself (it stays open: closing would)."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    yield conn
    conn.close()


def opener(
    db: Path, opened: list[sqlite3.Connection] | None = None
) -> Callable[[], sqlite3.Connection]:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        if opened is not None:
            opened.append(conn)
        return conn

    return connect


def insert(writer: sqlite3.Connection, count: int) -> None:
    for i in range(count):
        writer.execute("INSERT INTO t VALUES (?)", (i,))


def test_signalled_commits_are_checkpointed_by_one_background_thread(
    db: Path, writer: sqlite3.Connection
) -> None:
    before = set(checkpointer_threads())  # other tests' stores may not be collected yet
    cp = WalCheckpointer(opener(db), database=str(db))
    assert not cp.running  # started by the first commit, not before
    try:
        insert(writer, ROWS)
        assert rows_in_database_file(db) == 0  # all of it is still in the WAL
        for _ in range(ROWS):
            cp.committed()
        ours = set(checkpointer_threads()) - before
        assert len(ours) == 1
        assert cp.running
        eventually(lambda: rows_in_database_file(db) == ROWS, "the WAL checkpointed")
        insert(writer, ROWS)
        cp.committed()
        eventually(lambda: rows_in_database_file(db) == 2 * ROWS, "the next commits too")
        assert set(checkpointer_threads()) - before == ours
    finally:
        cp.stop()
    assert not any(thread.is_alive() for thread in ours)


def test_stop_interrupts_the_interval_and_closes_the_connection(
    db: Path, writer: sqlite3.Connection
) -> None:
    opened: list[sqlite3.Connection] = []
    before = set(checkpointer_threads())
    cp = WalCheckpointer(opener(db, opened), database=str(db), interval_seconds=3600)
    insert(writer, 1)
    cp.committed()
    ours = set(checkpointer_threads()) - before
    eventually(lambda: rows_in_database_file(db) == 1, "the first checkpoint")
    cp.committed()  # pending behind the hour-long interval
    started = time.monotonic()
    cp.stop()
    assert time.monotonic() - started < DEADLINE_SECONDS / 2
    assert not cp.running
    assert len(ours) == 1
    assert not any(thread.is_alive() for thread in ours)  # joined
    assert len(opened) == 1
    with pytest.raises(sqlite3.ProgrammingError):
        opened[0].execute("SELECT 1")  # closed
    cp.stop()  # twice is harmless


def test_failures_are_logged_once_per_burst_and_never_end_the_thread(
    db: Path, writer: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    failures_left = [3]
    real = opener(db)

    def flaky() -> sqlite3.Connection:
        if failures_left[0] > 0:
            failures_left[0] -= 1
            raise sqlite3.OperationalError("database is locked")
        return real()

    cp = WalCheckpointer(flaky, database=str(db), interval_seconds=0.01)
    insert(writer, ROWS)
    caplog.set_level(logging.INFO, logger="duetime.store")

    def signal_and_check() -> bool:
        cp.committed()  # as a writer does after each commit
        return rows_in_database_file(db) == ROWS

    try:
        eventually(signal_and_check, "a checkpoint after three failed attempts")
        assert failures_left == [0]

        def events() -> list[str | None]:
            return [getattr(r, "event", None) for r in caplog.records]

        # the thread logs its recovery just after the checkpoint this test sees in the file
        eventually(lambda: "store.checkpoint_recovered" in events(), "the recovery logged")
        assert events().count("store.checkpoint_failed") == 1
        assert events().count("store.checkpoint_recovered") == 1
        assert cp.running
    finally:
        cp.stop()


def test_only_sqlite_files_get_a_checkpointer(tmp_path: Path) -> None:
    urls = {
        f"sqlite:///{tmp_path / 'x.db'}": True,
        "sqlite://": False,
        "sqlite:///:memory:": False,
        "sqlite:///file::memory:?cache=shared&uri=true": False,
        "postgresql://u@127.0.0.1:1/db": False,
    }
    for url, expected in urls.items():
        engine = create_store_engine(url)
        try:
            cp = WalCheckpointer.for_engine(engine, lambda conn: None)
            assert (cp is not None) is expected, url
        finally:
            engine.dispose()


def test_its_connection_opens_the_pools_file_with_the_pools_setup(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'x.db'}")
    seen: list[int] = []

    def setup(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode = WAL")
        seen.append(conn.execute("PRAGMA busy_timeout = 1234").fetchone()[0])

    try:
        cp = WalCheckpointer.for_engine(engine, setup)
        assert cp is not None
        conn = cp._connect()
        try:
            assert seen == [1234]
            path = conn.execute("PRAGMA database_list").fetchone()[2]
            assert Path(path) == tmp_path / "x.db"
            assert checkpoint.passive_checkpoint(conn)[0] == 0  # not busy
        finally:
            conn.close()
        with engine.connect() as pooled:
            assert pooled.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        engine.dispose()
