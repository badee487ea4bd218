"""``duetime cron validate|next``: check a cron expression and preview its fires."""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from duetime.clock import SystemClock
from duetime.errors import ValidationError
from duetime.triggers.cron import CronTrigger
from duetime.triggers.tz import ensure_aware, zone_name

app = typer.Typer(help="Validate cron expressions and preview their fires.", no_args_is_help=True)

#: Exit code for bad usage or input (DESIGN §4).
EXIT_BAD_INPUT = 2
#: Fires shown by ``validate``.
PREVIEW_COUNT = 5
#: Most fires ``next --count`` lists.
MAX_COUNT = 1000

ExprArg = Annotated[str, typer.Argument(help='Cron expression, e.g. "*/15 9-17 * * 1-5".')]
TzOpt = Annotated[str, typer.Option("--tz", help="IANA time zone of the wall clock.")]


def _fail(message: str) -> typer.Exit:
    """Print a one-line error on stderr; return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_BAD_INPUT)


def _build(expression: str, tz: str) -> CronTrigger:
    return CronTrigger(expression, tz)


def _fires(trigger: CronTrigger, after: datetime, count: int) -> list[datetime]:
    fires: list[datetime] = []
    current: datetime | None = after
    while len(fires) < count and current is not None:
        current = trigger.next_fire_time(current)
        if current is not None:
            fires.append(current)
    return fires


@app.command()
def validate(expression: ExprArg, tz: TzOpt = "UTC") -> None:
    """Say whether EXPRESSION is valid, describe it and show its next fires."""
    try:
        trigger = _build(expression, tz)
    except ValidationError as exc:
        typer.echo(f"invalid: {exc.message}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    console = Console()
    console.print(f"valid: [bold]{trigger.expression}[/bold] ({zone_name(trigger.timezone)})")
    console.print(trigger.describe())
    fires = _fires(trigger, SystemClock().now(), PREVIEW_COUNT)
    if not fires:
        console.print("no future fires")
        return
    table = Table("#", "UTC", f"local ({zone_name(trigger.timezone)})")
    for n, fire in enumerate(fires, 1):
        table.add_row(str(n), _iso(fire), _iso(fire.astimezone(trigger.timezone)))
    console.print(table)


@app.command("next")
def next_(
    expression: ExprArg,
    tz: TzOpt = "UTC",
    after: Annotated[
        str | None,
        typer.Option("--after", help="ISO-8601 instant (naive = in --tz); default now."),
    ] = None,
    count: Annotated[str, typer.Option("--count", help=f"How many fires (1–{MAX_COUNT}).")] = "5",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List the next fires of EXPRESSION after --after (default now), in --tz."""
    try:
        trigger = _build(expression, tz)
    except ValidationError as exc:
        raise _fail(exc.message) from None
    number = _parse_count(count)
    start = _parse_after(after, trigger.timezone)
    fires = [f.astimezone(trigger.timezone) for f in _fires(trigger, start, number)]
    if as_json:
        typer.echo(json.dumps([_iso(f) for f in fires]))
        return
    for fire in fires:
        typer.echo(_iso(fire))


def _parse_count(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise _fail(f"--count must be a whole number, not {text!r}") from None
    if not 1 <= number <= MAX_COUNT:
        raise _fail(f"--count must be between 1 and {MAX_COUNT}, not {number}")
    return number


def _parse_after(text: str | None, zone: tzinfo) -> datetime:
    if text is None:
        return SystemClock().now()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(
            f"--after {text!r} is not an ISO-8601 date-time (e.g. 2030-01-01T09:00:00+01:00)"
        ) from None
    try:
        return ensure_aware(value, zone)
    except OverflowError:
        raise _fail(f"--after {text!r} is out of the supported range of years") from None


def _iso(moment: datetime) -> str:
    return moment.isoformat()
