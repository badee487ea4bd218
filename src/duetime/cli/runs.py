"""``duetime runs list|show|rerun|cancel``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from duetime.cli.common import (
    DatabaseOpt,
    JsonOpt,
    TenantOpt,
    console,
    emit_json,
    fmt_instant,
    handle_errors,
    iter_pages,
    jsonable,
    parse_duration,
    parse_instant,
    plain,
    run_table,
    schedule_names,
    scheduler_session,
)
from duetime.errors import NotFoundError, ValidationError
from duetime.models import Run, RunState

app = typer.Typer(help="Inspect, re-run and cancel runs.", no_args_is_help=True)

RunArg = Annotated[str, typer.Argument(help="Run id (or a unique prefix).", show_default=False)]

#: How many recent runs a short id prefix is looked up in.
PREFIX_SEARCH_LIMIT = 2000
MIN_PREFIX = 4


def parse_since(text: str, now: datetime) -> datetime:
    """Return the instant ``--since`` names: a duration ago (``1h``, ``2d``) or ISO 8601."""
    try:
        return now - timedelta(seconds=parse_duration(text, field="--since"))
    except ValidationError:
        pass
    instant = parse_instant(text, field="--since")
    if instant.tzinfo is None:
        raise ValidationError(
            f"{text!r} has no UTC offset: add one (2030-01-31T09:00:00+00:00) or use 1h, 2d",
            field="--since",
        )
    return instant


def _check_states(states: list[str] | None) -> list[str] | None:
    if not states:
        return None
    allowed = [s.value for s in RunState]
    for state in states:
        if state not in allowed:
            raise ValidationError(
                f"unknown run state {state!r} (one of {', '.join(allowed)})", field="--state"
            )
    return states


@app.command("list")
@handle_errors
def list_runs(
    schedule: Annotated[str | None, typer.Option("--schedule", "-s", help="Id or name.")] = None,
    state: Annotated[
        list[str] | None, typer.Option("--state", help="Only runs in this state (repeatable).")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Created since: 1h, 2d or ISO 8601.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: JsonOpt = False,
    database: DatabaseOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """List runs, newest first."""
    states = _check_states(state)
    with scheduler_session(database, tenant) as scheduler:
        since_at = parse_since(since, scheduler.clock.now()) if since else None
        items = _fetch_runs(scheduler, schedule, states, since_at, limit)
        names = schedule_names(scheduler) if items and not as_json else {}
    if as_json:
        emit_json({"items": jsonable(items)})
        return
    console.print(run_table(items, title=f"{len(items)} run(s)", names=names))


def _fetch_runs(
    scheduler: Any,
    schedule: str | None,
    states: list[str] | None,
    since_at: datetime | None,
    limit: int,
) -> list[Run]:
    found: list[Run] = []
    for state in states or [None]:  # type: ignore[list-item]
        found.extend(
            iter_pages(
                scheduler.get_runs, limit=limit, schedule=schedule, state=state, since=since_at
            )
        )
    found.sort(key=lambda r: (r.created_at, r.id), reverse=True)
    return found[:limit]


def resolve_run(scheduler: Any, ref: str) -> Run:
    """Return the run with id ``ref``, or the one recent run whose id starts with it."""
    try:
        run: Run = scheduler.get_run(ref)
        return run
    except NotFoundError:
        if len(ref) < MIN_PREFIX or len(ref) >= len("00000000-0000-0000-0000-000000000000"):
            raise
    matches: list[Run] = [
        r for r in iter_pages(scheduler.get_runs, limit=PREFIX_SEARCH_LIMIT) if r.id.startswith(ref)
    ]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValidationError(f"run id prefix {ref!r} is ambiguous; give more of it", field="run")
    raise NotFoundError(f"run {ref!r} not found")


@app.command("show")
@handle_errors
def show(
    run_id: RunArg,
    as_json: JsonOpt = False,
    database: DatabaseOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """Show one run, with its error and traceback."""
    with scheduler_session(database, tenant) as scheduler:
        run = resolve_run(scheduler, run_id)
    if as_json:
        emit_json(run)
        return
    console.print(_detail(run))
    if run.error is not None:
        console.print(f"[red]{plain(run.error.type)}: {plain(run.error.message)}[/]")
        if run.error.traceback:
            console.print(run.error.traceback.rstrip(), markup=False, soft_wrap=True)


def _detail(run: Run) -> Table:
    table = Table(title=f"run {run.id}", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in jsonable(run).items():
        if key == "error":
            continue
        if key.endswith("_at") or key in ("scheduled_for", "missed_until"):
            value = fmt_instant(getattr(run, key)) + (" UTC" if getattr(run, key) else "")
        shown = json.dumps(value) if isinstance(value, dict | list) else str(value)
        table.add_row(key, "-" if value is None else plain(shown))
    return table


@app.command("rerun")
@handle_errors
def rerun(
    run_id: RunArg,
    as_json: JsonOpt = False,
    database: DatabaseOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """Run a finished run again with the same parameters (kind ``rerun``)."""
    with scheduler_session(database, tenant) as scheduler:
        original = resolve_run(scheduler, run_id)
        run = scheduler.rerun(original.id)
    if as_json:
        emit_json(run)
        return
    console.print(f"run [bold]{run.id}[/] re-runs {original.id}: {run.state}")


@app.command("cancel")
@handle_errors
def cancel(
    run_id: RunArg,
    as_json: JsonOpt = False,
    database: DatabaseOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """Cancel a pending run, or ask the engine to stop a running one."""
    with scheduler_session(database, tenant) as scheduler:
        run = scheduler.cancel(resolve_run(scheduler, run_id).id)
    if as_json:
        emit_json(run)
        return
    note = " (cancellation requested)" if run.state == RunState.RUNNING else ""
    console.print(f"run [bold]{run.id}[/]: {run.state}{note}")
