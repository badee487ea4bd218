"""``duetime load FILE... [--prune] [--dry-run]``: apply schedule manifests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from duetime.cli.common import (
    DatabaseOpt,
    JsonOpt,
    TenantOpt,
    console,
    emit_json,
    handle_errors,
    plain,
    progress_bar,
    scheduler_session,
)
from duetime.manifest import Plan, PlanItem, load_manifest

#: How long a value may be in the diff column before it is shortened.
MAX_VALUE_CHARS = 80

_ACTION_STYLE = {"create": "green", "update": "yellow", "delete": "red", "unchanged": "dim"}


def register(app: typer.Typer) -> None:
    """Add ``load`` to the top-level app."""
    app.command("load")(load)


@handle_errors
def load(
    files: Annotated[
        list[Path], typer.Argument(help="Manifest files (YAML or JSON).", show_default=False)
    ],
    prune: Annotated[
        bool, typer.Option("--prune", help="Delete manifest schedules missing from the files.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing.")
    ] = False,
    as_json: JsonOpt = False,
    database: DatabaseOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """Create or update schedules from manifests, all files in one transaction."""
    with scheduler_session(database, tenant) as scheduler, progress_bar("applying") as update:
        plan = load_manifest(
            scheduler, [str(f) for f in files], prune=prune, dry_run=dry_run, progress=update
        )
    if as_json:
        emit_json(plan.to_dict())
        return
    print_plan(plan)


def print_plan(plan: Plan) -> None:
    """Print the plan as a table plus a one-line summary."""
    shown = [item for item in plan.items if item.action != "unchanged" or len(plan.items) < 50]
    if shown:
        table = Table(title_justify="left")
        for column in ("action", "schedule", "changes"):
            table.add_column(column, overflow="fold")
        for item in shown:
            style = _ACTION_STYLE[item.action]
            table.add_row(f"[{style}]{item.action}[/]", plain(item.name), plain(_changes(item)))
        console.print(table)
    summary = ", ".join(_count_phrase(a, n, plan.dry_run) for a, n in plan.counts().items())
    prefix = "dry run (nothing changed): " if plan.dry_run else ""
    console.print(prefix + summary)


def _count_phrase(action: str, count: int, dry_run: bool) -> str:
    if action == "unchanged":
        return f"{count} unchanged"
    return f"{count} to {action}" if dry_run else f"{count} {_past(action)}"


def _past(action: str) -> str:
    return {"create": "created", "update": "updated", "delete": "deleted"}.get(action, action)


def _changes(item: PlanItem) -> str:
    if item.action != "update":
        return item.where or ""
    return "\n".join(f"{c.field}: {_short(c.old)} → {_short(c.new)}" for c in item.changes)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"
