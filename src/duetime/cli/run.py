"""``duetime run``: the REST API in this process, the engine in a supervised child process.

The API never executes jobs (DESIGN §3.1): the engine runs as ``duetime scheduler run`` in a
child this command starts, wakes on the API's changes, restarts if it dies and stops with
it (:mod:`duetime.cli.engine_process`, docs/decisions/0009-engine-process.md). With
``--engine-only``, or without the API extra, the engine runs in this process alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from duetime.cli.common import (
    DatabaseOpt,
    console,
    handle_errors,
    settings_for,
)
from duetime.errors import ConfigurationError

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: Libraries whose INFO lines say nothing an operator needs.
QUIET_LOGGERS = ("alembic",)


def register(app: typer.Typer) -> None:
    """Add ``run`` to the top-level app."""
    app.command("run")(run)


def find_server() -> tuple[Callable[..., None] | None, str]:
    """Return ``duetime.api.server.serve`` and "", or None and why the API is unavailable."""
    try:
        from duetime.api.server import serve
    except ImportError as exc:
        return None, f"the REST API is not available ({exc}; install duetime[api])"
    return serve, ""


def _check_executor(name: str) -> None:
    """Refuse an unknown executor before anything starts (and before the banner)."""
    from duetime.executors.factory import EXECUTOR_NAMES

    if name.strip().lower() not in EXECUTOR_NAMES:
        raise ConfigurationError(
            f"unknown executor {name!r}; choose one of: {', '.join(EXECUTOR_NAMES)}"
        )


def _configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


@handle_errors
def run(
    host: Annotated[str | None, typer.Option("--host", help="API interface (127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="API port (8000).")] = None,
    migrate: Annotated[
        bool, typer.Option("--migrate", help="Create/upgrade the database schema first.")
    ] = False,
    engine_only: Annotated[
        bool, typer.Option("--engine-only", help="Do not serve the API.")
    ] = False,
    load: Annotated[
        list[Path] | None,
        typer.Option("--load", help="Apply this manifest before starting (repeatable)."),
    ] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", min=1)] = None,
    executor: Annotated[str | None, typer.Option("--executor")] = None,
    database: DatabaseOpt = None,
) -> None:
    """Run the engine (in a child process) with the REST API (engine alone without the API)."""
    from duetime.scheduler import Scheduler

    settings = settings_for(
        database_url=database,
        api_host=host,
        api_port=port,
        concurrency=concurrency,
        executor=executor,
    )
    _check_executor(settings.executor)
    _configure_logging()
    scheduler = Scheduler(settings=settings, migrate=migrate)
    serve, why = (None, "--engine-only") if engine_only else find_server()
    try:
        if load:
            _load(scheduler, load)
        _announce(settings, serve is not None, why)
        if serve is not None:
            _serve_with_engine_process(scheduler, settings, serve)
        else:
            scheduler.run_forever()
    except KeyboardInterrupt:
        console.print("duetime: stopped", markup=False)
    finally:
        scheduler.close()


def _serve_with_engine_process(scheduler: Any, settings: Any, serve: Callable[..., None]) -> None:
    """Start the engine child, serve the API until stopped, then stop the child gracefully."""
    from duetime.cli.engine_process import EngineProcess

    engine = EngineProcess(settings)
    try:
        engine.start()
        scheduler.attach_engine_process(engine.alive)
        scheduler.store.add_change_listener(engine.wake)
        serve(scheduler, host=settings.api_host, port=settings.api_port, with_engine=False)
    finally:
        scheduler.store.remove_change_listener(engine.wake)
        scheduler.attach_engine_process(None)
        engine.stop()


def _load(scheduler: Any, files: list[Path]) -> None:
    from duetime.manifest import load_manifest

    plan = load_manifest(scheduler, [str(f) for f in files])
    past = {"create": "created", "update": "updated", "delete": "deleted"}
    counts = ", ".join(f"{n} {past.get(a, a)}" for a, n in plan.counts().items())
    console.print(f"duetime: loaded {len(files)} manifest(s): {counts}", markup=False)


def _announce(settings: Any, with_api: bool, why: str) -> None:
    jobs = ", ".join(settings.jobs) or "built-ins only (set DUETIME_JOBS)"
    console.print(
        f"duetime: engine on {settings.database_url} — executor {settings.executor}, "
        f"{settings.concurrency} slot(s), jobs: {jobs}",
        markup=False,
    )
    if with_api:
        base = f"http://{settings.api_host}:{settings.api_port}"
        console.print(f"duetime: API {base}/api/v1/  docs {base}/api/v1/docs", markup=False)
    else:
        console.print(f"duetime: engine only: {why}", markup=False)
    console.print("duetime: stop with Ctrl-C (running jobs get a graceful shutdown)", markup=False)
