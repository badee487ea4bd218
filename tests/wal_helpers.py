"""Helpers of the SQLite WAL tests (checkpointer, data_version): a WAL database, polling."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from duetime.store.checkpoint import THREAD_NAME

#: Every wait polls with this deadline (a slow CI machine, never a fixed sleep).
DEADLINE_SECONDS = 10.0


def wal_database(path: Path) -> Path:
    """Create a WAL-mode database with an empty table ``t (x INTEGER)``; return its path."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.close()  # the last connection checkpoints: the table is in the file, the WAL empty
    return path


def eventually(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; fail after DEADLINE_SECONDS naming ``what``."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {DEADLINE_SECONDS} s: {what}")
        time.sleep(0.005)


def rows_in_database_file(path: Path) -> int | None:
    """Rows of ``t`` in the main database file alone (what checkpoints copied out of the WAL)."""
    copy = path.with_name(f"copy-{os.getpid()}-{time.monotonic_ns()}.db")
    shutil.copyfile(path, copy)
    try:
        conn = sqlite3.connect(copy)
        try:
            return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError:  # no table yet, or a copy torn by a checkpoint in progress
        return None
    finally:
        copy.unlink()


def checkpointer_threads() -> set[threading.Thread]:
    """The live WAL checkpointer threads of this process."""
    return {t for t in threading.enumerate() if t.name == THREAD_NAME}
