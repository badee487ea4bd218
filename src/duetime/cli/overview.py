"""``duetime show-schedule``, ``force``, ``status`` and ``cleanup``: the operator's overview."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from duetime.cli.common import (
    DatabaseOpt,
    JsonOpt,
    TenantOpt,
    console,
    emit_json,
    err_console,
    fmt_instant,
    handle_errors,
    iter_pages,
    jsonable,
    parse_duration,
    parse_params,
    plain,
    run_table,
    schedule_json,
    schedule_names,
    schedule_table,
    scheduler_session,
    spinner,
)
from duetime.clock import SystemClock
from duetime.models import RunState

#: Every schedule shown by show-schedule, at most.
MAX_OVERVIEW_SCHEDULES = 10_000
#: How often ``force --wait`` looks at the run.
WAIT_POLL_SECONDS = 0.2
RECENT_FAILURES = 10
FAILED_STATES = (RunState.FAILED.value, RunState.TIMED_OUT.value)
DAY = timedelta(days=1)


def register(app: typer.Typer) -> None:
    """Add show-schedule, force, status and cleanup to the top-level app."""
    app.command("show-schedule")(show_schedule)
    app.command("force")(force)
    app.command("status")(status)
    app.command("cleanup")(cleanup)


@handle_errors
def show_schedule(
    as_json: JsonOpt = False,
    database: DatabaseOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """One table of every schedule: id, name, source, next run (UTC and local), trigger, state."""
    with scheduler_session(database, tenant) as scheduler:
        items = list(iter_pages(scheduler.list_schedules, limit=MAX_OVERVIEW_SCHEDULES))
    if as_json:
        emit_json({"items": [schedule_json(s) for s in items]})
        return
    if not items:
        console.print("no schedules yet: add one with `duetime schedules add` or `duetime load`")
        return
    console.print(schedule_table(items, title=f"{len(items)} schedule(s)"))


@handle_errors
def force(
    name: Annotated[str, typer.Argument(help="Schedule id or name.", show_default=False)],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Override parameter key=value.")
    ] = None,
    wait: Annotated[
        str | None, typer.Option("--wait", help="Wait up to this long for the run: 30s.")
    ] = None,
    as_json: JsonOpt = False,
    database: DatabaseOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """Run a schedule now (a manual run; an engine starts it)."""
    params = parse_params(param) if param else None
    timeout = parse_duration(wait, field="--wait") if wait is not None else None
    force_run(name, params, as_json, database, tenant, wait_seconds=timeout)


def force_run(
    name: str,
    parameters: dict[str, Any] | None,
    as_json: bool,
    database: str | None,
    tenant: str | None,
    *,
    wait_seconds: float | None = None,
) -> None:
    """Create a manual run of ``name`` and report it (optionally waiting for its end)."""
    with scheduler_session(database, tenant) as scheduler:
        run = scheduler.trigger(name, parameters)
        if wait_seconds is not None:
            run = _wait_for(scheduler, run, wait_seconds)
    if as_json:
        emit_json(run)
    else:
        console.print(
            f"run [bold]{run.id}[/] of {plain(name)}: {run.state} "
            f"(see `duetime runs show {run.id}`)"
        )
    if wait_seconds is not None and run.state != RunState.SUCCEEDED:
        raise typer.Exit(1)


def _wait_for(scheduler: Any, run: Any, seconds: float) -> Any:
    clock = SystemClock()
    deadline = clock.monotonic() + seconds
    pause = threading.Event()
    with spinner(f"waiting for run {run.id[:8]}"):
        while not RunState(run.state).is_terminal:
            if clock.monotonic() >= deadline:
                err_console.print(f"run {run.id} is still {run.state} after {seconds:g}s")
                raise typer.Exit(1)
            pause.wait(WAIT_POLL_SECONDS)
            run = scheduler.get_run(run.id)
    return run


@handle_errors
def status(
    as_json: JsonOpt = False,
    database: DatabaseOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """Instances, queue depth, next due fires and failures in the last 24 h."""
    with scheduler_session(database, tenant) as scheduler:
        info = scheduler.status()
        failures = _recent_failures(scheduler)
        names = schedule_names(scheduler) if failures else {}
    if as_json:
        emit_json({**info, "recent_failures": failures})
        return
    _print_status(info)
    if failures:
        console.print(run_table(failures, title="failures in the last 24 h", names=names))
    else:
        console.print("no failures in the last 24 h")


def _recent_failures(scheduler: Any) -> list[Any]:
    since = scheduler.clock.now() - DAY if hasattr(scheduler, "clock") else None
    found: list[Any] = []
    for state in FAILED_STATES:
        page = scheduler.get_runs(state=state, limit=RECENT_FAILURES)
        found.extend(r for r in page.items if since is None or r.created_at >= since)
    found.sort(key=lambda r: r.created_at, reverse=True)
    return found[:RECENT_FAILURES]


def _print_status(info: dict[str, Any]) -> None:
    instances = info.get("instances") or []
    table = Table(title=f"{len(instances)} engine instance(s)", title_justify="left")
    columns = ("id", "alive", "host", "pid", "executor", "slots", "heartbeat (UTC)", "stopped")
    for column in columns:
        table.add_column(column, overflow="fold")
    for inst in instances:
        table.add_row(
            plain(inst.get("id")),
            "[green]yes[/]" if inst.get("alive") else "[red]no[/]",
            plain(inst.get("hostname")),
            str(inst.get("pid")),
            plain(inst.get("executor")),
            str(inst.get("concurrency")),
            fmt_instant(inst.get("heartbeat_at")),
            fmt_instant(inst.get("stopped_at")),
        )
    console.print(table)
    for key in ("schedules", "queue_depth", "queue_due", "running", "last_24h", "failures_24h"):
        if key in info:
            console.print(f"[bold]{key.replace('_', ' ')}[/]: {_inline(info[key])}")
    fires = info.get("next_fires") or []
    nxt = Table(title="next due fires", title_justify="left")
    for column in ("schedule", "job", "next run (UTC)"):
        nxt.add_column(column)
    for fire in fires:
        nxt.add_row(
            plain(fire.get("name")), plain(fire.get("job")), fmt_instant(fire["next_run_at"])
        )
    console.print(nxt)


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
    return str(value)


@handle_errors
def cleanup(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Delete finished runs older than this: 30d.")
    ] = "30d",
    keep_last: Annotated[
        int | None, typer.Option("--keep-last", min=0, help="Always keep the last N per schedule.")
    ] = None,
    as_json: JsonOpt = False,
    database: DatabaseOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """Delete old run history (always keeping each schedule's last N runs)."""
    days = parse_duration(older_than, field="--older-than") / DAY.total_seconds()
    with scheduler_session(database, tenant) as scheduler, spinner("cleaning up run history"):
        kwargs: dict[str, Any] = {"older_than_days": days}
        if keep_last is not None:
            kwargs["keep_last"] = keep_last
        deleted = scheduler.cleanup_history(**kwargs)
    count = deleted if isinstance(deleted, int) else jsonable(deleted)
    if as_json:
        emit_json({"deleted": count, "older_than_days": days, "keep_last": keep_last})
        return
    console.print(f"deleted {count} run(s) older than {older_than}")
