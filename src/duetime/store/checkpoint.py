"""SQLite WAL checkpoints on a thread of their own, off the write lock.

With SQLite's default ``wal_autocheckpoint`` (1,000 pages) the checkpoint runs inside the
``COMMIT`` of whichever writer crosses the threshold, while that writer still holds
duetime's write lock (:mod:`duetime.store.sqlite_lock`): with ``synchronous=NORMAL`` it
fsyncs the WAL and the database file, so one commit every ~1,000 pages takes far longer and
every other writer, of every process, waits behind it (docs/decisions/0011).

:class:`WalCheckpointer` moves that work to one daemon thread per store, with a dedicated
connection outside the SQLAlchemy pool. The store signals it after each committed write
transaction (an :class:`threading.Event` set; nothing at all while it is already set); the
thread runs ``PRAGMA wal_checkpoint(PASSIVE)`` — which never waits for, nor blocks, readers
or writers — at most once per :data:`CHECKPOINT_INTERVAL_SECONDS`. Its fsyncs happen with
the GIL released and no duetime lock held. Connections keep an automatic checkpoint at
:data:`WAL_AUTOCHECKPOINT_BACKSTOP_PAGES` for processes without a running checkpointer.

A failed checkpoint is logged once per run of consecutive failures and retried on the next
signal with a new connection; it never reaches a writer. Neither does a thread that cannot
start (a thread or memory limit): the commit has happened, the automatic checkpoint stands
in, and the start is tried again :data:`START_RETRY_SECONDS` later.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

log = logging.getLogger("duetime.store")

#: The checkpointer runs at most this often (seconds between the end of one checkpoint and
#: the start of the next). Every checkpoint that copies pages costs two fsyncs (the WAL,
#: then the database file); at 0.1 s that is at most 10 checkpoints a second, however many
#: commits (the engine commits hundreds of batches a second under load), and the pages that
#: every batch rewrites (schedule rows, index pages) are copied once per interval, not once
#: per commit. Longer lets the WAL grow for longer before it can be restarted (several MB
#: at full write rate already), which slows reads that look pages up in it.
CHECKPOINT_INTERVAL_SECONDS = 0.1

#: ``wal_autocheckpoint`` of every duetime SQLite connection: a backstop, not the mechanism.
#: 10,000 pages is ~40 MB of WAL at the default 4 KiB page size, ten times SQLite's
#: default. It bounds the WAL, and the time readers spend searching it, where no
#: checkpointer runs (a CLI command, a migration) or it is stalled or failing; 0 would let
#: the WAL grow without limit there. It also restarts the WAL under sustained writes: a
#: writer reuses the WAL from its start only if every frame was checkpointed when it
#: began, which a checkpoint off the lock rarely achieves while commits keep arriving.
#: Then the commit that crosses 10,000 frames checkpoints what the thread has not copied
#: yet (at most one interval's frames) inside its turn, and the next writer restarts the
#: WAL: one such commit per 10,000 frames instead of one full checkpoint per 1,000.
WAL_AUTOCHECKPOINT_BACKSTOP_PAGES = 10_000

#: How long :meth:`WalCheckpointer.stop` waits for a checkpoint in progress to finish.
STOP_TIMEOUT_SECONDS = 10.0

#: After the thread could not start, commits wait this long before trying again.
START_RETRY_SECONDS = 5.0

THREAD_NAME = "duetime-checkpoint"

CheckpointResult = tuple[int, int, int]


def passive_checkpoint(conn: sqlite3.Connection) -> CheckpointResult:
    """Run one PASSIVE checkpoint: (busy, frames in the WAL, frames checkpointed).

    ``busy`` is 1 when another connection (another process's checkpointer) was
    checkpointing: not an error, that one does the work.
    """
    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(row[0]), int(row[1]), int(row[2])


@dataclass(eq=False)
class _Worker:
    """One checkpointer thread, its signals and its connection (owned by that thread)."""

    pid: int
    wake: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    conn: sqlite3.Connection | None = None

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                log.debug("closing the checkpoint connection failed", exc_info=True)


#: Every checkpointer of this process, so a forked child can forget its parent's threads.
_LIVE: weakref.WeakSet[WalCheckpointer] = weakref.WeakSet()
#: Workers inherited from a parent process: kept referenced forever, never closed (an
#: SQLite connection must not be used, nor closed, on the other side of a fork).
_INHERITED: list[_Worker] = []


class WalCheckpointer:
    """Checkpoints one SQLite database in the background after signalled commits."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        database: str,
        interval_seconds: float = CHECKPOINT_INTERVAL_SECONDS,
    ) -> None:
        self._connect = connect
        self.database = database
        self.interval_seconds = interval_seconds
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._failures = 0
        self._no_start_until = 0.0  # monotonic: after a failed thread start
        _LIVE.add(self)

    @classmethod
    def for_engine(
        cls, engine: sa.Engine, setup: Callable[[sqlite3.Connection], None]
    ) -> WalCheckpointer | None:
        """A checkpointer of ``engine``'s SQLite file; None for PostgreSQL and in-memory.

        Its connection opens the same file as the pool does (the dialect's own connect
        arguments) and is set up by ``setup`` (the pool's pragmas).
        """
        if engine.dialect.name != "sqlite":
            return None
        cargs, cparams = engine.dialect.create_connect_args(engine.url)
        database = str(cargs[0]) if cargs else ""
        if not database or ":memory:" in database or "mode=memory" in database:
            return None  # no file, no WAL
        args: tuple[Any, ...] = tuple(cargs)
        params: dict[str, Any] = {**cparams, "check_same_thread": False}

        def connect() -> sqlite3.Connection:
            conn: sqlite3.Connection = sqlite3.connect(*args, **params)
            try:
                setup(conn)
            except BaseException:
                conn.close()
                raise
            return conn

        return cls(connect, database=database)

    @property
    def running(self) -> bool:
        """Whether this process has a live checkpointer thread for the database."""
        worker = self._worker
        return (
            worker is not None
            and worker.pid == os.getpid()
            and worker.thread is not None
            and worker.thread.is_alive()
        )

    def committed(self) -> None:
        """A write transaction committed: checkpoint soon (starts the thread on first use).

        Called after every commit: while a signal is pending it returns after one flag test.
        """
        worker = self._worker
        if worker is not None and worker.wake.is_set():
            return
        with self._lock:
            worker = self._worker
            if worker is not None and worker.pid != os.getpid():
                self._forget_inherited()  # forked without the at-fork hook having run
                worker = None
            if worker is None:
                worker = self._worker = self._start_or_none()
                if worker is None:
                    return
        worker.wake.set()

    def stop(self, *, wait: bool = True) -> None:
        """Stop the thread and close its connection; a later commit starts a new one."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is None or worker.thread is None:
            return
        if worker.pid != os.getpid():  # the parent's: neither stop nor close it here
            _INHERITED.append(worker)
            return
        worker.stop.set()
        worker.wake.set()
        if not wait or worker.thread is threading.current_thread():
            return
        worker.thread.join(STOP_TIMEOUT_SECONDS)
        if worker.thread.is_alive():
            log.warning(
                "the WAL checkpoint of %s did not finish within %.0f s; left to finish alone",
                self.database,
                STOP_TIMEOUT_SECONDS,
                extra={"event": "store.checkpoint_stop_timeout", "database": self.database},
            )

    # ------------------------------------------------------------ the thread
    def _start_or_none(self) -> _Worker | None:
        """Start the thread (under ``_lock``); None when it cannot start now.

        Called after a commit: an error here would tell the writer its committed
        transaction failed.
        """
        if time.monotonic() < self._no_start_until:
            return None
        try:
            return self._start()
        except RuntimeError:  # "can't start new thread"
            self._no_start_until = time.monotonic() + START_RETRY_SECONDS
            self._failed()
            return None

    def _start(self) -> _Worker:
        worker = _Worker(pid=os.getpid())
        worker.thread = threading.Thread(
            target=self._run, args=(worker,), name=THREAD_NAME, daemon=True
        )
        worker.thread.start()
        return worker

    def _run(self, worker: _Worker) -> None:
        try:
            while True:
                worker.wake.wait()
                if worker.stop.is_set():
                    return
                worker.wake.clear()  # commits from now on ask for the next checkpoint
                self._checkpoint(worker)
                if worker.stop.wait(self.interval_seconds):
                    return
        finally:
            worker.close()

    def _checkpoint(self, worker: _Worker) -> None:
        try:
            if worker.conn is None:
                worker.conn = self._connect()
            passive_checkpoint(worker.conn)
        except Exception:  # never end the thread, never reach a writer
            worker.close()  # the next attempt opens a new connection
            self._failed()
            return
        if self._failures:
            log.info(
                "WAL checkpoints of %s work again after %d failed attempts",
                self.database,
                self._failures,
                extra={"event": "store.checkpoint_recovered", "database": self.database},
            )
            self._failures = 0

    def _failed(self) -> None:
        self._failures += 1
        if self._failures == 1:  # once per run of consecutive failures
            log.warning(
                "WAL checkpoint of %s failed; retrying after a later commit "
                "(SQLite's automatic checkpoint remains as a backstop)",
                self.database,
                exc_info=True,
                extra={"event": "store.checkpoint_failed", "database": self.database},
            )

    # ------------------------------------------------------------ fork
    def _forget_inherited(self) -> None:
        """In a forked child: drop the parent's thread (it does not exist here)."""
        if self._worker is not None:
            _INHERITED.append(self._worker)
            self._worker = None


def _after_fork_in_child() -> None:
    for checkpointer in list(_LIVE):
        checkpointer._lock = threading.Lock()  # the parent's may have been held at the fork
        checkpointer._forget_inherited()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
