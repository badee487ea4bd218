"""The engine of ``duetime run`` in its own process (docs/decisions/0009-engine-process.md).

The API process (the parent) starts ``duetime scheduler run`` as a child and keeps a socket
pair with it:

* parent → child: one byte per committed change made through the API, so the engine wakes
  at once instead of at its next ``PRAGMA data_version`` check;
* child → parent: one byte once the engine is built (readiness);
* end-of-file on the child's side: the parent is gone (even after ``kill -9``), so the
  engine stops gracefully instead of living on as an orphan.

The child is restarted with a logged warning and exponential back-off when it dies while
the parent still runs; if the very first start fails, ``duetime run`` exits 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from duetime.errors import DuetimeError

if TYPE_CHECKING:
    from duetime.config import Settings

log = logging.getLogger("duetime.run")

#: How long the first engine process gets to build its engine before ``run`` gives up.
READY_TIMEOUT_SECONDS = 60.0
#: Restart back-off after an unexpected exit: 1 s, 2 s, 4 s … capped at 30 s.
RESTART_FIRST_DELAY_SECONDS = 1.0
RESTART_MAX_DELAY_SECONDS = 30.0
#: An engine process that ran this long before dying restarts with the first delay again.
RESTART_RESET_AFTER_SECONDS = 60.0
#: Beyond the shutdown grace, how long the engine may take to record its stop before SIGKILL.
STOP_MARGIN_SECONDS = 15.0
#: What the child sends once its engine is built.
READY_BYTE = b"R"
#: What the parent sends for each change worth waking the engine for.
WAKE_BYTE = b"w"
#: How much one read takes off the socket (wake-ups coalesce: one read, one wake).
READ_BYTES = 4096


class EngineStartError(DuetimeError, RuntimeError):
    """The engine process exited (or hung) before it was ready."""


def child_command(settings: Settings, fd: int) -> list[str]:
    """The ``duetime scheduler run`` command line of the engine child.

    The database URL goes through the environment (a password in argv is visible in ``ps``);
    every other setting the child reads from the same environment and ``duetime.toml``.
    """
    args = [
        sys.executable,
        "-m",
        "duetime.cli.main",
        "scheduler",
        "run",
        "--concurrency",
        str(settings.concurrency),
        "--executor",
        settings.executor,
        "--supervisor-fd",
        str(fd),
    ]
    if settings.jobs:
        args += ["--jobs", ",".join(settings.jobs)]
    return args


class EngineProcess:
    """Start, wake, watch, restart and stop the engine child of ``duetime run``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self.restarts = 0

    # ------------------------------------------------------------ lifecycle
    def start(self, ready_timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Start the child, wait until its engine is ready, then watch it from a thread."""
        self._spawn()
        self._wait_ready(ready_timeout)
        self._watcher = threading.Thread(
            target=self._watch, name="duetime-engine-watch", daemon=True
        )
        self._watcher.start()

    def stop(self) -> int | None:
        """Stop the child gracefully (SIGTERM, its shutdown grace, then SIGKILL); its exit code."""
        self._stopping.set()
        with self._lock:
            proc, sock = self._proc, self._sock
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(self.settings.shutdown_grace_seconds + STOP_MARGIN_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("engine process %d did not stop in time; killing it", proc.pid)
            proc.kill()
            code = proc.wait()
        if sock is not None:
            sock.close()
        if self._watcher is not None:
            self._watcher.join(timeout=1.0)
        return code

    def alive(self) -> bool:
        """True while the engine child runs (and is not being stopped)."""
        proc = self._proc
        return proc is not None and proc.poll() is None and not self._stopping.is_set()

    @property
    def pid(self) -> int | None:
        """The current child's process id."""
        proc = self._proc
        return None if proc is None else proc.pid

    def wake(self) -> None:
        """Wake the engine now (thread-safe, never blocks; a full socket is a pending wake)."""
        sock = self._sock
        if sock is None:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            sock.send(WAKE_BYTE)

    # ------------------------------------------------------------ internals
    def _spawn(self) -> None:
        ours, theirs = socket.socketpair()
        env = {**os.environ, "DUETIME_DATABASE_URL": self.settings.database_url}
        try:
            proc = subprocess.Popen(
                child_command(self.settings, theirs.fileno()),
                env=env,
                pass_fds=(theirs.fileno(),),
                # Its own process group: a terminal's Ctrl-C reaches only us, and we stop it.
                process_group=0,
            )
        finally:
            theirs.close()
        ours.setblocking(False)
        with self._lock:
            old = self._sock
            self._proc, self._sock = proc, ours
        if old is not None:
            old.close()
        log.info(
            "engine process %d started",
            proc.pid,
            extra={"event": "run.engine_started", "pid": proc.pid},
        )

    def _wait_ready(self, timeout: float) -> None:
        proc, sock = self._proc, self._sock
        assert proc is not None
        assert sock is not None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([sock], [], [], min(left, 0.2))
            if readable:
                with contextlib.suppress(BlockingIOError):
                    if sock.recv(READ_BYTES):
                        return
            if proc.poll() is not None:
                raise EngineStartError(
                    f"the engine process exited with code {proc.returncode} before it was "
                    "ready (its error is above)"
                )
        proc.kill()
        proc.wait()
        raise EngineStartError(f"the engine process was not ready within {timeout:g} s")

    def _watch(self) -> None:
        """Restart the child with back-off whenever it exits while we are not stopping."""
        delay = RESTART_FIRST_DELAY_SECONDS
        while not self._stopping.is_set():
            proc = self._proc
            assert proc is not None
            started = time.monotonic()
            code = proc.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= RESTART_RESET_AFTER_SECONDS:
                delay = RESTART_FIRST_DELAY_SECONDS
            log.warning(
                "engine process %d exited unexpectedly with code %s; restarting in %g s",
                proc.pid,
                code,
                delay,
                extra={"event": "run.engine_exited", "pid": proc.pid, "code": code},
            )
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, RESTART_MAX_DELAY_SECONDS)
            self._restart()

    def _restart(self) -> None:
        try:
            self._spawn()
        except OSError as exc:  # fork failed (memory, process limit): try again later
            log.warning("cannot start the engine process: %s", exc)
            return
        self.restarts += 1
        if self._stopping.is_set():  # stop() may have read the previous child: end this one
            proc = self._proc
            assert proc is not None
            proc.send_signal(signal.SIGTERM)


# ------------------------------------------------------------------ the child's side


def follow_supervisor(
    loop: asyncio.AbstractEventLoop,
    fd: int,
    *,
    wake: Sequence[Callable[[], None]],
    stop: asyncio.Event,
) -> None:
    """In the engine child: report ready, wake on each byte, stop when the parent is gone."""
    os.set_inheritable(fd, False)  # job subprocesses must not keep the parent "alive"
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)

    def readable() -> None:
        try:
            data = sock.recv(READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            for callback in wake:
                callback()
            return
        log.warning(
            "the supervising duetime run is gone; stopping",
            extra={"event": "engine.supervisor_gone"},
        )
        loop.remove_reader(sock)
        sock.close()
        stop.set()

    loop.add_reader(sock, readable)
    with contextlib.suppress(OSError):
        sock.send(READY_BYTE)
