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

#: Rich output for humans (stdout) and for errors and progress (stderr).
console = Console(highlight=False, soft_wrap=False)
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


def open_scheduler(database: str | None = None, tenant: str | None = None) -> Any:
    """Build the facade the CLI acts through (the CLI never issues SQL itself)."""
    from duetime.scheduler import Scheduler  # type: ignore[import-not-found, unused-ignore]

    settings = settings_for(database_url=database, tenant=tenant)
    return Scheduler(
        database_url=settings.database_url,
        timezone=settings.timezone,
        concurrency=settings.concurrency,
        executor=settings.executor,
        jobs=list(settings.jobs),
        tenant=settings.tenant,
    )


@contextmanager
def scheduler_session(database: str | None = None, tenant: str | None = None) -> Iterator[Any]:
    """Yield a facade for one command and release its connections afterwards."""
    scheduler = open_scheduler(database, tenant)
    try:
        yield scheduler
    finally:
        close = getattr(scheduler, "close", None) or getattr(scheduler, "dispose", None)
        if callable(close):
            close()


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
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"unexpected {type(exc).__name__}: {first} (set {DEBUG_ENV}=1 for the traceback)"


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
