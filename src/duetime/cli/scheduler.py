"""``duetime scheduler run``: the engine alone (one loop per ``--database``)."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from typing import TYPE_CHECKING, Annotated

import sqlalchemy as sa
import typer

from duetime.cli.common import EXIT_FAILURE, err_console, fail, handle_errors, settings_for
from duetime.errors import SchemaOutdatedError

if TYPE_CHECKING:
    from duetime.clock import Clock
    from duetime.config import Settings
    from duetime.engine import Engine
    from duetime.models import Run

app = typer.Typer(help="Run the scheduling engine.", no_args_is_help=True)

DatabaseOpt = Annotated[
    list[str] | None,
    typer.Option("--database", "-d", help="Database URL; repeat for one loop per database."),
]
OnceOpt = Annotated[
    bool, typer.Option("--once", help="Fire what is due, run it, wait for it, then exit.")
]
ConcurrencyOpt = Annotated[
    int | None, typer.Option("--concurrency", min=1, help="Runs executing at once (per loop).")
]
ExecutorOpt = Annotated[str | None, typer.Option("--executor", help="process, thread or asyncio.")]
JobsOpt = Annotated[
    str | None, typer.Option("--jobs", help="Comma-separated job modules to import.")
]
SupervisorOpt = Annotated[
    int | None,
    typer.Option(
        "--supervisor-fd",
        hidden=True,
        help="Socket to the supervising `duetime run` (wake-ups in, readiness out).",
    ),
]


@app.command("run")
@handle_errors
def run(
    database: DatabaseOpt = None,
    once: OnceOpt = False,
    concurrency: ConcurrencyOpt = None,
    executor: ExecutorOpt = None,
    jobs: JobsOpt = None,
    supervisor_fd: SupervisorOpt = None,
) -> None:
    """Run the engine until SIGTERM/SIGINT (or, with --once, until due runs finish)."""
    from duetime.engine.logs import configure_logging
    from duetime.heap import freeze_startup_heap

    module_list = [m.strip() for m in jobs.split(",") if m.strip()] if jobs else None
    settings = settings_for(concurrency=concurrency, executor=executor, jobs=module_list)
    configure_logging(settings.log_format)
    urls = list(database or [settings.database_url])
    engines = [_build_engine(url, settings) for url in urls]
    try:
        if once:
            _report(asyncio.run(_run_once(engines)))
        else:
            freeze_startup_heap()  # no full collection walks the start-up heap again
            asyncio.run(_serve(engines, supervisor_fd))
    finally:
        for engine in engines:
            engine.store.dispose()


def _clock_for(url: str) -> Clock:
    """SystemClock on SQLite; on PostgreSQL one corrected to the database's now()."""
    from duetime.clock import OffsetClock, SystemClock
    from duetime.store.sqlalchemy import normalize_url

    backend = sa.make_url(normalize_url(url)).get_backend_name()
    return OffsetClock() if backend == "postgresql" else SystemClock()


def _build_engine(url: str, settings: Settings) -> Engine:
    """Open the database (refusing an outdated schema) and build its engine and executor."""
    from duetime.engine import Engine
    from duetime.engine.leases import sample_clock_offset
    from duetime.executors.factory import create_executor
    from duetime.jobs.registry import default_registry
    from duetime.store.sqlalchemy import SQLAlchemyStore

    clock = _clock_for(url)
    store = SQLAlchemyStore(url, clock=clock)
    try:
        store.check_schema()
    except SchemaOutdatedError as exc:
        store.dispose()
        fail(str(exc), EXIT_FAILURE)
    sample_clock_offset(store, clock)
    executor = create_executor(
        settings.executor,
        concurrency=settings.concurrency,
        registry=default_registry,
        jobs_modules=list(settings.jobs),
        clock=clock,
    )
    per_db = settings.model_copy(update={"database_url": url})
    return Engine(store, registry=default_registry, executor=executor, clock=clock, settings=per_db)


async def _serve(engines: list[Engine], supervisor_fd: int | None = None) -> None:
    """Run every engine's loop until SIGTERM/SIGINT, then stop them gracefully.

    Under ``duetime run`` (``supervisor_fd``) the engines also wake on every byte the API
    process sends, and stop gracefully when it goes away (the socket reads end-of-file).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if supervisor_fd is not None:
        from duetime.cli.engine_process import follow_supervisor

        follow_supervisor(loop, supervisor_fd, wake=[e.wake for e in engines], stop=stop)
    await asyncio.gather(*(engine.run(stop) for engine in engines))


async def _run_once(engines: list[Engine]) -> list[Run]:
    """Fire due schedules, run the due runs and wait for them, database by database."""
    runs: list[Run] = []
    for engine in engines:
        try:
            runs.extend(await engine.run_pending())
        finally:
            await asyncio.to_thread(
                engine.executor.shutdown, engine.settings.shutdown_grace_seconds
            )
    return runs


def _report(runs: list[Run]) -> None:
    """Print what ``--once`` ran; exit 1 when a run did not succeed."""
    states = Counter(run.state.value for run in runs)
    summary = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "nothing due"
    typer.echo(f"ran {len(runs)} run(s): {summary}")
    if any(state != "succeeded" for state in states):
        err_console.print("error: some runs did not succeed", markup=False)
        raise typer.Exit(EXIT_FAILURE)
