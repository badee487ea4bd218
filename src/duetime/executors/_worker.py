"""The body of a process-executor worker (runs in the child process).

Protocol over one duplex pipe (pickled tuples, never stored):
parent → worker: an :class:`ExecutionRequest` as the tuple of its fields
(:data:`~duetime.executors.base.request_fields`), or ``None`` to exit.
worker → parent: ``("ready", pid)``, ``("log", record_dict)``, ``("heartbeat", run_id)``,
``("done", run_id, state, result, error_dict)``.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from duetime.executors.base import ExecutionRequest
from duetime.jobs.secrets import redact, redact_text


class _Channel:
    """Thread-safe sends on the worker's end of the pipe; a broken pipe is ignored."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        """Send ``message`` unless the parent is gone."""
        try:
            with self._lock:
                self.conn.send(message)
        except (OSError, EOFError, ValueError):
            pass


class PipeLogHandler(logging.Handler):
    """Forwards records to the parent, secrets of the current run masked."""

    def __init__(self, channel: _Channel) -> None:
        super().__init__()
        self.channel = channel
        self.secret_values: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Send a picklable copy of ``record``."""
        try:
            self.channel.send(("log", self._as_dict(record)))
        except Exception:
            self.handleError(record)

    def _as_dict(self, record: logging.LogRecord) -> dict[str, Any]:
        data = dict(record.__dict__)
        data["msg"] = redact_text(record.getMessage(), self.secret_values)
        if record.exc_info and not record.exc_text:
            data["exc_text"] = logging.Formatter().formatException(record.exc_info)
        if data.get("exc_text"):
            data["exc_text"] = redact_text(data["exc_text"], self.secret_values)
        data["exc_info"] = None
        data["args"] = ()
        return {k: _picklable(redact(v, self.secret_values)) for k, v in data.items()}


def _picklable(value: Any) -> Any:
    try:
        pickle.dumps(value)
    except Exception:
        return repr(value)
    return value


def _import_jobs(modules: Sequence[str]) -> str | None:
    """Import duetime's and the user's job modules; a hint for run failures when that fails."""
    from duetime.errors import ConfigurationError
    from duetime.jobs.registry import import_job_modules

    try:
        import_job_modules(["duetime.jobs", *modules])
    except ConfigurationError as exc:
        logging.getLogger("duetime.worker").error("%s", exc)
        return f"this worker could not import its job modules: {exc}"
    return None


def _setup_logging(channel: _Channel, level: int) -> PipeLogHandler:
    handler = PipeLogHandler(channel)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def worker_main(
    conn: Connection, modules: Sequence[str], environ: dict[str, str], log_level: int
) -> None:
    """Serve requests one at a time until told to stop or the parent goes away."""
    os.setpgrp()  # a process group of its own: a kill also reaches what the job started
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the engine's to handle
    os.environ.clear()
    os.environ.update(environ)  # the engine's environment when this worker was started
    channel = _Channel(conn)
    handler = _setup_logging(channel, log_level)
    hint = _import_jobs(modules)
    channel.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        _serve_one(ExecutionRequest(*message), channel, handler, hint)


def _serve_one(
    request: ExecutionRequest, channel: _Channel, handler: PipeLogHandler, hint: str | None
) -> None:
    from duetime.jobs.execute import ExecutionResult, prepare_call, run_prepared
    from duetime.jobs.registry import default_registry

    prepared = prepare_call(
        request,
        default_registry,
        on_heartbeat=lambda: channel.send(("heartbeat", request.run_id)),
        unknown_job_hint=hint,
    )
    if isinstance(prepared, ExecutionResult):
        result = prepared
    else:
        handler.secret_values = prepared.secret_values
        try:
            result = run_prepared(prepared)
        finally:
            handler.secret_values = []
    error = result.error.to_dict() if result.error else None
    channel.send(("done", request.run_id, str(result.state), result.result, error))
