"""``duetime init`` and ``duetime migrate``: create or upgrade the database schema.

Both are idempotent. ``init`` also runs :data:`INIT_HOOKS` (the first admin key is created
by such a hook; see :func:`register_init_hook`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
import typer

from duetime.cli.common import EXIT_FAILURE, DatabaseOpt, fail, handle_errors
from duetime.store.migrate import current_revision, upgrade_database
from duetime.store.sqlalchemy import normalize_url

#: Called by ``duetime init`` after the schema is current, with the database URL; each
#: returns lines to print (e.g. the first admin key). Later features append to it.
InitHook = Callable[[str], list[str]]
INIT_HOOKS: list[InitHook] = []


def register_init_hook(hook: InitHook) -> InitHook:
    """Run ``hook(database_url)`` at the end of every ``duetime init``."""
    if hook not in INIT_HOOKS:
        INIT_HOOKS.append(hook)
    return hook


def describe_location(url: str) -> str:
    """Return where a database lives: a SQLite file's absolute path, or the URL sans password."""
    parsed = sa.make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            return "SQLite in memory"
        return f"SQLite file {Path(database).resolve()}"
    return f"PostgreSQL {parsed.render_as_string(hide_password=True)}"


def _database_url(database: str | None) -> str:
    from duetime.config import load_settings

    return load_settings(database_url=database).database_url


def _upgrade(url: str) -> str:
    """Migrate ``url`` to head and return a one-line account of what happened."""
    try:
        before = current_revision(url)
        after = upgrade_database(url)
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        fail(f"cannot open the database ({describe_location(url)}): {reason}", EXIT_FAILURE)
    if before is None:
        return f"schema created at revision {after}"
    if before == after:
        return f"schema already at revision {after} (nothing to do)"
    return f"schema migrated from revision {before} to {after}"


@handle_errors
def init(database: DatabaseOpt = None) -> None:
    """Create (or migrate) the database; safe to run again."""
    url = _migrate(database)
    for hook in INIT_HOOKS:
        for line in hook(url):
            typer.echo(line)


@handle_errors
def migrate(database: DatabaseOpt = None) -> None:
    """Upgrade the database schema to this duetime's newest revision."""
    _migrate(database)


def _migrate(database: str | None) -> str:
    """Upgrade the schema, add the built-in schedules, say what happened; the URL used."""
    url = _database_url(database)
    typer.echo(f"database: {describe_location(url)}")
    typer.echo(_upgrade(url))
    _ensure_default_schedules(url)
    return url


def _ensure_default_schedules(url: str) -> None:
    """Create the built-in schedules (daily retention) once; say so when one was created."""
    from duetime.errors import DuetimeError
    from duetime.scheduler import Scheduler

    try:  # the built-ins need no user job modules: a broken DUETIME_JOBS must not stop init
        scheduler = Scheduler(url, jobs=[])
    except DuetimeError as exc:
        typer.echo(f"warning: built-in schedules not checked: {exc}")
        return
    try:
        for schedule in scheduler.ensure_default_schedules():
            typer.echo(
                f"created built-in schedule {schedule.name} ({schedule.trigger['expression']} UTC)"
            )
    finally:
        scheduler.close()


def register(app: typer.Typer) -> None:
    """Add the database commands to the top-level app."""
    app.command("init")(init)
    app.command("migrate")(migrate)
