"""What every ``duetime`` command shares: options, the facade, errors → exit codes, output.

Exit codes (DESIGN §4): 0 ok, 1 failure, 2 bad usage or input. Every expected error is
printed as one line on stderr (``error: <what is wrong>``), never as a traceback; set
``DUETIME_DEBUG=1`` to see the traceback of an unexpected one.
"""

from __future__ import annotations

import enum
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields, is_dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, ParamSpec, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from duetime.errors import (
    ConfigurationError,
    ConflictError,
    DuetimeError,
    NotFoundError,
    ValidationError,
    VersionMismatchError,
)
from duetime.manifest import parse_duration as parse_duration

if TYPE_CHECKING:
    from duetime.config import Settings
    from duetime.scheduler import Scheduler

P = ParamSpec("P")
R = TypeVar("R")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

#: Errors that mean "the input was wrong" (exit 2); every other DuetimeError is exit 1.
BAD_INPUT_ERRORS: tuple[type[BaseException], ...] = (
    ValidationError,
    NotFoundError,
    ConflictError,
    VersionMismatchError,
    ConfigurationError,
)

DEBUG_ENV = "DUETIME_DEBUG"

#: Width of tables written to a pipe or file (a terminal uses its own width).
PIPE_WIDTH = 200


def _width() -> int | None:
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return None
    return PIPE_WIDTH


#: Rich output for humans (stdout) and for errors and progress (stderr).
console = Console(highlight=False, soft_wrap=False, width=_width())
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

# ------------------------------------------------------------------ shared options

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database",
        "-d",
        help="Database URL (default: DUETIME_DATABASE_URL, duetime.toml, sqlite:///duetime.db).",
        show_default=False,
    ),
]
TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", help="Tenant to act in (default: DUETIME_TENANT or 'default')."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def settings_for(**overrides: Any) -> Settings:
    """Return the settings with the given flags (None = not given) applied."""
    from duetime.config import load_settings

    return load_settings(**overrides)


def open_scheduler(database: str | None = None, tenant: str | None = None) -> Scheduler:
    """Build the facade the CLI acts through (the CLI never issues SQL itself)."""
    from duetime.scheduler import Scheduler

    return Scheduler(settings=settings_for(database_url=database, tenant=tenant))


@contextmanager
def scheduler_session(
    database: str | None = None, tenant: str | None = None
) -> Iterator[Scheduler]:
    """Yield a facade for one command and release its connections afterwards."""
    scheduler = open_scheduler(database, tenant)
    try:
        yield scheduler
    finally:
        scheduler.close()


# ------------------------------------------------------------------ errors → exit codes


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    for line in str(message).strip().splitlines() or ["failed"]:
        err_console.print(f"error: {line}", markup=False)
    raise typer.Exit(code)


def exit_code_for(exc: BaseException) -> int:
    """Return the exit code an exception maps to (2 for bad input, else 1)."""
    if isinstance(exc, BAD_INPUT_ERRORS):
        return EXIT_BAD_INPUT
    if _is_pydantic_validation(exc):
        return EXIT_BAD_INPUT
    return EXIT_FAILURE


def _is_pydantic_validation(exc: BaseException) -> bool:
    try:
        import pydantic
    except ImportError:  # pragma: no cover - pydantic is a dependency
        return False
    return isinstance(exc, pydantic.ValidationError)


def describe_error(exc: BaseException) -> str:
    """Return a one-line (per problem) description of ``exc`` for the terminal."""
    if isinstance(exc, DuetimeError):
        return str(exc) or type(exc).__name__
    if _is_pydantic_validation(exc):
        return _pydantic_message(exc)
    database = _database_message(exc)
    if database is not None:
        return database
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"unexpected {type(exc).__name__}: {first} (set {DEBUG_ENV}=1 for the traceback)"


def _database_message(exc: BaseException) -> str | None:
    """Return ``database error: <driver message>`` for driver errors (unreachable, locked...)."""
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError):
        return None
    lines = str(exc.orig or exc).strip().splitlines()
    return f"database error: {lines[0] if lines else type(exc).__name__}"


def _pydantic_message(exc: Any) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or str(exc)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command so duetime errors become one line on stderr and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, click.exceptions.Exit, click.ClickException, typer.Abort):
            raise
        except KeyboardInterrupt:
            err_console.print("interrupted", markup=False)
            raise typer.Exit(130) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            fail(describe_error(exc), exit_code_for(exc))

    return wrapper


# ------------------------------------------------------------------ input parsing


def parse_param(item: str) -> tuple[str, Any]:
    """Split ``k=v``; ``v`` is read as JSON when it parses (``7``, ``true``, ``[1]``), else text."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValidationError(f"bad parameter {item!r}: use key=value", field="param")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """Return a parameters dict from repeated ``--param k=v`` options."""
    return dict(parse_param(item) for item in items or [])


def parse_instant(text: str, *, field: str) -> datetime:
    """Parse an ISO-8601 instant (naive values are returned naive, for the schedule's zone)."""
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"bad date-time {text!r}: use ISO 8601 such as 2030-01-31T09:00 or "
            "2030-01-31T09:00:00+01:00",
            field=field,
        ) from None


# ------------------------------------------------------------------ output


def jsonable(value: Any) -> Any:
    """Return ``value`` as JSON-ready data (dataclasses, enums, datetimes, Pages)."""
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        data = to_dict() if callable(to_dict) else _dataclass_dict(value)
        return jsonable(data)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def _dataclass_dict(value: Any) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in fields(value)}


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (plain text: safe to pipe into jq)."""
    sys.stdout.write(json.dumps(jsonable(data), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def page_json(page: Any) -> dict[str, Any]:
    """Return a Page as ``{"items": [...], "next_cursor": ...}``."""
    return {
        "items": jsonable(list(page.items)),
        "next_cursor": getattr(page, "next_cursor", None),
    }


def plain(value: object) -> str:
    """Return ``value`` as text that rich prints literally (user data is never markup)."""
    return escape(str(value))


def fmt_instant(value: datetime | None, zone: Any = None) -> str:
    """Return ``value`` as ``YYYY-MM-DD HH:MM:SS`` in ``zone`` (UTC by default), or ``-``."""
    if value is None:
        return "-"
    shown = value.astimezone(zone) if zone is not None else value
    return shown.strftime("%Y-%m-%d %H:%M:%S")


def fmt_seconds(seconds: float | None) -> str:
    """Return a compact human duration (``1h30m``, ``90s`` → ``1m30s``), or ``-``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:g}s"
    total = round(seconds)
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, total = divmod(total, size)
        if amount:
            out.append(f"{amount}{unit}")
    return "".join(out)


# ------------------------------------------------------------------ listings

#: The largest page the facade serves (DESIGN §4: limit ≤ 500).
PAGE_LIMIT = 500
SHORT_ID = 8


def iter_pages(fetch: Callable[..., Any], *, limit: int, **filters: Any) -> Iterator[Any]:
    """Yield up to ``limit`` items from a keyset-paginated facade listing."""
    given = {k: v for k, v in filters.items() if v is not None}
    cursor: str | None = None
    remaining = limit
    while remaining > 0:
        page = fetch(limit=min(PAGE_LIMIT, remaining), cursor=cursor, **given)
        yield from page.items[:remaining]
        remaining -= len(page.items)
        cursor = page.next_cursor
        if not cursor or not page.items:
            return


def describe_trigger(spec: Mapping[str, Any], timezone: str = "UTC") -> str:
    """Return a short human description of a stored trigger spec."""
    try:
        from duetime.triggers.spec import build_trigger

        trigger = build_trigger(dict(spec), timezone)
        describe = getattr(trigger, "describe", None)
        if callable(describe):
            text = str(describe())
            return text.split(" from ")[0] if spec.get("type") == "interval" else text
    except (DuetimeError, ValueError, TypeError):
        pass
    if spec.get("type") == "cron":
        return str(spec.get("expression"))
    return json.dumps({k: v for k, v in spec.items() if k != "version" and v})


def local_instant(value: datetime | None, timezone: str) -> datetime | None:
    """Return ``value`` on the wall clock of ``timezone`` (None stays None)."""
    if value is None:
        return None
    from duetime.triggers.tz import get_zone

    try:
        return value.astimezone(get_zone(timezone))
    except DuetimeError:
        return value


def schedule_json(schedule: Any) -> dict[str, Any]:
    """Return a schedule's JSON with its next run on its own wall clock and a description."""
    data: dict[str, Any] = jsonable(schedule)
    local = local_instant(schedule.next_run_at, schedule.timezone)
    data["next_run_local"] = local.isoformat() if local else None
    data["trigger_description"] = describe_trigger(schedule.trigger, schedule.timezone)
    return data


def _local_cell(value: datetime | None, timezone: str) -> str:
    local = local_instant(value, timezone)
    if local is None:
        return "-"
    return f"{local.strftime('%Y-%m-%d %H:%M:%S')} {local.tzname() or timezone}"


def schedule_table(items: list[Any], *, title: str | None = None) -> Table:
    """One row per schedule: id, name, source, next run UTC and local, trigger, state, last."""
    table = Table(title=title, title_justify="left")
    for column in (
        "id",
        "name",
        "source",
        "next run (UTC)",
        "next run (local)",
        "trigger",
        "state",
        "last state",
    ):
        table.add_column(column, overflow="fold")
    for s in items:
        table.add_row(
            s.id[:SHORT_ID],
            plain(s.name),
            str(jsonable(s.source)),
            fmt_instant(s.next_run_at),
            _local_cell(s.next_run_at, s.timezone),
            plain(describe_trigger(s.trigger, s.timezone)),
            _state_cell(str(jsonable(s.state))),
            _state_cell(str(jsonable(s.last_run_state)) if s.last_run_state else "-"),
        )
    return table


_STATE_STYLES = {
    "succeeded": "green",
    "active": "green",
    "running": "cyan",
    "pending": "cyan",
    "failed": "red",
    "timed_out": "red",
    "missed": "yellow",
    "skipped": "yellow",
    "paused": "yellow",
    "cancelled": "magenta",
}


def _state_cell(state: str) -> str:
    style = _STATE_STYLES.get(state)
    return f"[{style}]{state}[/]" if style else state


def schedule_names(scheduler: Any) -> dict[str, str]:
    """Return ``{schedule id: name}`` of the live schedules (to label runs)."""
    listing = iter_pages(scheduler.list_schedules, limit=MAX_NAMED_SCHEDULES)
    return {s.id: s.name for s in listing}


#: Schedules looked up to label runs with names.
MAX_NAMED_SCHEDULES = 10_000


def run_table(
    items: list[Any], *, title: str | None = None, names: Mapping[str, str] | None = None
) -> Table:
    """One row per run: id, schedule, job, kind, state, attempt, scheduled, duration."""
    table = Table(title=title, title_justify="left")
    for column in (
        "id",
        "schedule",
        "job",
        "kind",
        "state",
        "attempt",
        "scheduled for (UTC)",
        "started (UTC)",
        "duration",
    ):
        table.add_column(column, overflow="fold")
    for r in items:
        duration = "-" if r.duration_ms is None else fmt_seconds(r.duration_ms / 1000)
        table.add_row(
            r.id[:SHORT_ID],
            plain((names or {}).get(r.schedule_id or "") or (r.schedule_id or "-")[:SHORT_ID]),
            plain(r.job),
            str(jsonable(r.kind)),
            _state_cell(str(jsonable(r.state))),
            f"{r.attempt}/{r.max_attempts}",
            fmt_instant(r.scheduled_for),
            fmt_instant(r.started_at),
            duration,
        )
    return table


@contextmanager
def spinner(message: str) -> Iterator[None]:
    """Show a rich spinner on stderr while a long operation runs (terminals only)."""
    if not err_console.is_terminal:
        yield
        return
    with err_console.status(message):
        yield


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """Yield ``update(done, total)`` driving a rich progress bar on stderr (terminals only)."""
    if not err_console.is_terminal:
        yield lambda done, total: None
        return
    from rich.progress import Progress

    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update
