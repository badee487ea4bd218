"""Serve the API with uvicorn, optionally with the engine in the same process."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import uvicorn

from duetime.api.app import API_PREFIX, create_app
from duetime.errors import ConfigurationError
from duetime.heap import freeze_startup_heap

log = logging.getLogger("duetime.api")

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Threads running route handlers. SQLite serialises writes and the GIL serialises Python,
#: so more threads only queue; few threads keep the engine's thread responsive.
API_THREADS = 4
#: With the engine in the process, hand the GIL over every 0.5 ms instead of Python's 5 ms,
#: so busy request handlers cannot hold the engine's thread off for long (fire lateness):
#: with 4 busy threads a waking thread's delay fell from 19 ms (p50) / 127 ms (p99) to
#: 3 ms / 18 ms on the benchmark machine.
ENGINE_SWITCH_INTERVAL_SECONDS = 0.0005


def serve(
    scheduler: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    with_engine: bool,
    log_level: str = "info",
    access_log: bool = False,
    max_threads: int = API_THREADS,
) -> None:
    """Run the API until SIGINT/SIGTERM; with ``with_engine`` the engine runs alongside.

    The engine starts before the server accepts requests and stops gracefully after the
    server has shut down, so changes made over HTTP wake it at once through the facade.
    """
    app = create_app(scheduler, max_threads=max_threads)
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=access_log, workers=1
    )
    server = uvicorn.Server(config)
    previous_interval = sys.getswitchinterval()
    if with_engine:
        sys.setswitchinterval(ENGINE_SWITCH_INTERVAL_SECONDS)
        scheduler.start()
    freeze_startup_heap()  # full collections paused the event loop 45–80 ms (decision 0012)
    log.info("duetime API on http://%s:%d%s/docs", host, port, API_PREFIX)
    with _absorb_stop_signals():
        try:
            _run(server, host, port)
        finally:
            if with_engine:
                scheduler.stop(wait=True)
            sys.setswitchinterval(previous_interval)


def _run(server: uvicorn.Server, host: str, port: int) -> None:
    """Run uvicorn; a start-up failure (port taken) becomes a ConfigurationError, not exit 3."""
    try:
        server.run()
    except SystemExit:
        if server.started:
            raise
        raise ConfigurationError(
            f"cannot serve on {host}:{port}: the address is in use or not allowed "
            "(pick another --port or --host)"
        ) from None


def _note_stop(sig: int, frame: FrameType | None) -> None:
    log.info("signal %d: stopping", sig)


@contextmanager
def _absorb_stop_signals() -> Iterator[None]:
    """Keep uvicorn's re-raised stop signal from killing us before the engine has stopped.

    uvicorn handles SIGINT/SIGTERM itself, then re-raises the signal to the handlers that
    were in place before it started; those are ours, which only log.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _note_stop) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
