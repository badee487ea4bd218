"""DataVersion: moves with every commit of any other connection, and only then."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from duetime.store.data_version import DataVersion
from wal_helpers import wal_database


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return wal_database(tmp_path / "d.db")


def _commit(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(sql)
    finally:
        conn.close()


def test_only_urls_of_sqlite_files_have_a_version(tmp_path: Path) -> None:
    assert DataVersion.for_url(f"sqlite:///{tmp_path / 'x.db'}") is not None
    assert DataVersion.for_url("sqlite://") is None
    assert DataVersion.for_url("sqlite:///:memory:") is None
    assert DataVersion.for_url("postgresql+psycopg://u@localhost/db") is None


def test_moves_on_every_commit_by_another_connection(db: Path) -> None:
    versions = DataVersion(str(db))
    first = versions.current()
    assert first is not None
    assert versions.current() == first  # nothing committed: it stands still
    _commit(db, "INSERT INTO t VALUES (1)")
    second = versions.current()
    assert second is not None
    assert second != first
    _commit(db, "SELECT count(*) FROM t")  # a read commits nothing
    assert versions.current() == second
    _commit(db, "UPDATE t SET x = 2")
    assert versions.current() not in (first, second)
    versions.close()


def test_an_open_transaction_does_not_move_it_until_it_commits(db: Path) -> None:
    versions = DataVersion(str(db))
    before = versions.current()
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN")
    writer.execute("INSERT INTO t VALUES (1)")
    assert versions.current() == before
    writer.execute("COMMIT")
    writer.close()
    assert versions.current() != before


def test_a_reopened_connection_never_repeats_a_version(db: Path) -> None:
    versions = DataVersion(str(db))
    before = versions.current()
    versions.close()
    assert versions.current() != before  # new generation, though nothing was committed


def test_a_missing_file_has_no_version_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    assert DataVersion(str(missing)).current() is None
    assert not missing.exists()
