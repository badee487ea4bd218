"""``duetime schedules list|show|add|edit|delete|pause|resume|trigger``."""

from __future__ import annotations

import json
from collections.abc import Mapping
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
    fmt_seconds,
    handle_errors,
    iter_pages,
    jsonable,
    parse_duration,
    parse_instant,
    parse_params,
    plain,
    schedule_json,
    schedule_table,
    scheduler_session,
)
from duetime.errors import ValidationError
from duetime.models import Schedule

app = typer.Typer(help="Create, inspect and change schedules.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Schedule id or name.", show_default=False)]

# ------------------------------------------------------------------ options shared by add/edit

CronOpt = Annotated[str | None, typer.Option("--cron", help="Cron expression ('0 3 * * *').")]
IntervalOpt = Annotated[
    str | None, typer.Option("--interval", help="Fixed interval: 90s, 15m, 2h, 1d.")
]
AtOpt = Annotated[str | None, typer.Option("--at", help="One-off at an ISO 8601 date-time.")]
TriggerOpt = Annotated[
    str | None, typer.Option("--trigger", help="A trigger spec as JSON (any accepted shape).")
]
TzOpt = Annotated[str | None, typer.Option("--tz", "--timezone", help="IANA time zone.")]
ParamOpt = Annotated[
    list[str] | None, typer.Option("--param", "-p", help="Parameter key=value (repeatable).")
]
ParamsJsonOpt = Annotated[
    str | None, typer.Option("--params-json", help="All parameters as a JSON object.")
]
LabelOpt = Annotated[list[str] | None, typer.Option("--label", help="Label key=value.")]
DescriptionOpt = Annotated[str | None, typer.Option("--description", help="Free text.")]
MaxAttemptsOpt = Annotated[int | None, typer.Option("--max-attempts", min=1)]
TimeoutOpt = Annotated[str | None, typer.Option("--timeout", help="Run timeout: 90s, 5m, 2h.")]
OverlapOpt = Annotated[
    str | None, typer.Option("--overlap", help="skip | buffer_one | buffer_all | replace.")
]
ChainOpt = Annotated[
    list[str] | None, typer.Option("--chain", help="Schedule fired after a success (repeatable).")
]
MaxInstancesOpt = Annotated[int | None, typer.Option("--max-instances", min=1, max=100)]
PriorityOpt = Annotated[int | None, typer.Option("--priority")]
BackoffOpt = Annotated[str | None, typer.Option("--retry-backoff", help="Retry delay: 10s.")]
GraceOpt = Annotated[
    str | None, typer.Option("--misfire-grace", help="Misfire grace time: 60s, or 'none'.")
]
CoalesceOpt = Annotated[bool | None, typer.Option("--coalesce/--no-coalesce")]
ExecutorOpt = Annotated[
    str | None, typer.Option("--executor", help="default|process|thread|asyncio|celery[:Q].")
]
StartOpt = Annotated[str | None, typer.Option("--start", help="No fire before (ISO 8601).")]
EndOpt = Annotated[str | None, typer.Option("--end", help="No fire after (ISO 8601).")]
JitterOpt = Annotated[str | None, typer.Option("--jitter", help="Random delay up to: 30s.")]
MaxRecoveriesOpt = Annotated[int | None, typer.Option("--max-recoveries", min=0)]
SlaOpt = Annotated[str | None, typer.Option("--sla", help="Start-lateness SLA: 60s.")]


def trigger_from_options(
    cron: str | None,
    interval: str | None,
    at: str | None,
    trigger: str | None,
    jitter: str | None = None,
) -> dict[str, Any] | None:
    """Return the trigger spec the options describe (None when none was given)."""
    given = [
        name
        for name, v in (
            ("--cron", cron),
            ("--interval", interval),
            ("--at", at),
            ("--trigger", trigger),
        )
        if v is not None
    ]
    if len(given) > 1:
        raise ValidationError(f"give one of {', '.join(given)}, not several", field="trigger")
    spec: dict[str, Any] | None = None
    if cron is not None:
        spec = {"type": "cron", "expression": cron}
    elif interval is not None:
        seconds = parse_duration(interval, field="--interval")
        spec = {"type": "interval", "seconds": seconds}
    elif at is not None:
        spec = {"type": "date", "run_at": parse_instant(at, field="--at").isoformat()}
    elif trigger is not None:
        spec = _json_object(trigger, "--trigger")
    if spec is not None and jitter is not None:
        spec["jitter"] = parse_duration(jitter, field="--jitter")
    return spec


def _json_object(text: str, field: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        if field == "--trigger" and not text.strip().startswith("{"):
            return {"type": "cron", "expression": text}
        raise ValidationError(f"invalid JSON: {exc}", field=field) from None
    if isinstance(value, str) and field == "--trigger":
        return {"type": "cron", "expression": value}
    if not isinstance(value, dict):
        raise ValidationError("expected a JSON object", field=field)
    return value


#: The add/edit parameters that set schedule fields (read by ``field_options``).
FIELD_OPTIONS = (
    "description",
    "max_attempts",
    "timeout",
    "overlap",
    "chain",
    "max_instances",
    "priority",
    "retry_backoff",
    "misfire_grace",
    "coalesce",
    "executor",
    "start",
    "end",
    "max_recoveries",
    "sla",
    "label",
)


def _field_opts(params: Mapping[str, Any]) -> dict[str, Any]:
    """Pick the field options out of a command's parameters (add and edit share them)."""
    return {name: params[name] for name in FIELD_OPTIONS}


def field_options(**opts: Any) -> dict[str, Any]:
    """Return the schedule fields (API names) set by add/edit options; None = not given."""
    out: dict[str, Any] = {}
    simple = (
        "description",
        "max_attempts",
        "overlap",
        "max_instances",
        "priority",
        "coalesce",
        "executor",
        "max_recoveries",
    )
    out.update({k: opts[k] for k in simple if opts.get(k) is not None})
    for key, flag in (("timeout", "--timeout"), ("retry_backoff", "--retry-backoff")):
        if opts.get(key) is not None:
            out[key] = parse_duration(opts[key], field=flag)
    if opts.get("sla") is not None:
        out["sla_seconds"] = int(parse_duration(opts["sla"], field="--sla"))
    if opts.get("misfire_grace") is not None:
        grace = opts["misfire_grace"]
        out["misfire_grace_time"] = (
            None if grace.lower() == "none" else parse_duration(grace, field="--misfire-grace")
        )
    if opts.get("chain"):
        out["chain"] = list(opts["chain"])
    if opts.get("label"):
        out["labels"] = parse_params(opts["label"])
    for key, flag in (("start", "--start"), ("end", "--end")):
        if opts.get(key) is not None:
            out[f"{key}_date"] = parse_instant(opts[key], field=flag)
    return out


def parameters_from(params: list[str] | None, params_json: str | None) -> dict[str, Any] | None:
    """Merge ``--params-json`` and ``--param k=v`` (the latter win); None when neither given."""
    if params_json is None and not params:
        return None
    base = _json_object(params_json, "--params-json") if params_json is not None else {}
    base.update(parse_params(params))
    return base


# ------------------------------------------------------------------ commands


@app.command("list")
@handle_errors
def list_schedules(
    state: Annotated[str | None, typer.Option(help="active | paused | completed.")] = None,
    job: Annotated[str | None, typer.Option(help="Only schedules of this job type.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many.")] = 500,
    as_json: JsonOpt = False,
    database: DatabaseOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """List schedules (oldest first)."""
    with scheduler_session(database, tenant) as scheduler:
        items = list(iter_pages(scheduler.list_schedules, limit=limit, state=state, job=job))
    if as_json:
        emit_json({"items": [schedule_json(s) for s in items]})
        return
    console.print(schedule_table(items, title=f"{len(items)} schedule(s)"))


@app.command("show")
@handle_errors
def show(
    name: NameArg,
    count: Annotated[int, typer.Option("--next", min=0, max=100, help="Next fires.")] = 5,
    as_json: JsonOpt = False,
    database: DatabaseOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """Show one schedule with its next fire times."""
    with scheduler_session(database, tenant) as scheduler:
        schedule = scheduler.get_schedule(name)
        fires = scheduler.next_fire_times(schedule.id, count) if count else []
    if as_json:
        emit_json({**schedule_json(schedule), "next_fire_times": jsonable(fires)})
        return
    console.print(_detail_table(schedule, fires))


def _detail_table(schedule: Schedule, fires: list[Any]) -> Table:
    table = Table(title=f"schedule {plain(schedule.name)}", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    data = schedule_json(schedule)
    for key, value in data.items():
        if key in ("timeout", "retry_backoff", "misfire_grace_time") and value is not None:
            value = fmt_seconds(value)
        shown = json.dumps(value) if isinstance(value, dict | list) else str(value)
        table.add_row(key, "-" if value is None else plain(shown))
    for index, fire in enumerate(fires):
        table.add_row("next fires" if index == 0 else "", fmt_instant(fire) + " UTC")
    return table


@app.command("add")
@handle_errors
def add(
    name: Annotated[str, typer.Argument(help="Unique name in the tenant.", show_default=False)],
    job: Annotated[str, typer.Option("--job", "-j", help="Job type name.", show_default=False)],
    cron: CronOpt = None,
    interval: IntervalOpt = None,
    at: AtOpt = None,
    trigger: TriggerOpt = None,
    tz: TzOpt = None,
    param: ParamOpt = None,
    params_json: ParamsJsonOpt = None,
    description: DescriptionOpt = None,
    max_attempts: MaxAttemptsOpt = None,
    timeout: TimeoutOpt = None,
    overlap: OverlapOpt = None,
    chain: ChainOpt = None,
    max_instances: MaxInstancesOpt = None,
    priority: PriorityOpt = None,
    retry_backoff: BackoffOpt = None,
    misfire_grace: GraceOpt = None,
    coalesce: CoalesceOpt = None,
    executor: ExecutorOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    jitter: JitterOpt = None,
    max_recoveries: MaxRecoveriesOpt = None,
    sla: SlaOpt = None,
    label: LabelOpt = None,
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
    as_json: JsonOpt = False,
    database: DatabaseOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """Create a schedule (one of --cron, --interval, --at or --trigger)."""
    spec = trigger_from_options(cron, interval, at, trigger, jitter)
    if spec is None:
        raise ValidationError("give one of --cron, --interval, --at or --trigger", field="trigger")
    fields = field_options(**_field_opts(locals()))
    if paused:
        fields["enabled"] = False
    with scheduler_session(database, tenant) as scheduler:
        schedule = scheduler.add_schedule(
            name,
            job,
            spec,
            timezone=tz,
            parameters=parameters_from(param, params_json),
            source="cli",
            **fields,
        )
    _report(schedule, "created", as_json)


def _report(schedule: Schedule, verb: str, as_json: bool) -> None:
    if as_json:
        emit_json(schedule_json(schedule))
        return
    next_at = fmt_instant(schedule.next_run_at)
    console.print(
        f"{verb} schedule [bold]{plain(schedule.name)}[/] ({schedule.id}); state {schedule.state}; "
        f"next run {next_at} UTC"
    )


@app.command("edit")
@handle_errors
def edit(
    name: NameArg,
    job: Annotated[str | None, typer.Option("--job", "-j", help="Job type name.")] = None,
    rename: Annotated[str | None, typer.Option("--name", help="New name.")] = None,
    cron: CronOpt = None,
    interval: IntervalOpt = None,
    at: AtOpt = None,
    trigger: TriggerOpt = None,
    tz: TzOpt = None,
    param: ParamOpt = None,
    params_json: ParamsJsonOpt = None,
    description: DescriptionOpt = None,
    max_attempts: MaxAttemptsOpt = None,
    timeout: TimeoutOpt = None,
    overlap: OverlapOpt = None,
    chain: ChainOpt = None,
    max_instances: MaxInstancesOpt = None,
    priority: PriorityOpt = None,
    retry_backoff: BackoffOpt = None,
    misfire_grace: GraceOpt = None,
    coalesce: CoalesceOpt = None,
    executor: ExecutorOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    jitter: JitterOpt = None,
    max_recoveries: MaxRecoveriesOpt = None,
    sla: SlaOpt = None,
    label: LabelOpt = None,
    expected_version: Annotated[
        int | None, typer.Option("--expected-version", help="Refuse if the version moved on.")
    ] = None,
    as_json: JsonOpt = False,
    database: DatabaseOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """Change fields of a schedule (only the options given)."""
    changes = field_options(**_field_opts(locals()))
    spec = trigger_from_options(cron, interval, at, trigger, jitter)
    extra = {
        "trigger": spec,
        "timezone": tz,
        "job": job,
        "name": rename,
        "parameters": parameters_from(param, params_json),
    }
    changes.update({k: v for k, v in extra.items() if v is not None})
    if not changes and jitter is None:
        raise ValidationError("nothing to change: give at least one option", field="options")
    with scheduler_session(database, tenant) as scheduler:
        if spec is None and jitter is not None:  # new jitter on the current trigger
            current = dict(scheduler.get_schedule(name).trigger)
            current["jitter"] = parse_duration(jitter, field="--jitter")
            changes["trigger"] = current
        schedule = scheduler.update_schedule(name, expected_version=expected_version, **changes)
    _report(schedule, "updated", as_json)


def _simple_action(verb: str, method: str, doc: str) -> None:
    @app.command(verb, help=doc)
    @handle_errors
    def command(
        name: NameArg,
        as_json: JsonOpt = False,
        database: DatabaseOpt = None,
        tenant: TenantOpt = None,
    ) -> None:
        with scheduler_session(database, tenant) as scheduler:
            result = getattr(scheduler, method)(name)
            schedule = result if isinstance(result, Schedule) else None
        if as_json:
            emit_json(schedule_json(schedule) if schedule else {"name": name, "done": verb})
            return
        past = {"delete": "deleted", "pause": "paused", "resume": "resumed"}[verb]
        console.print(f"{past} schedule [bold]{plain(schedule.name if schedule else name)}[/]")


_simple_action("delete", "delete_schedule", "Delete a schedule (soft: its history stays).")
_simple_action("pause", "pause", "Pause a schedule (its pending runs are cancelled).")
_simple_action("resume", "resume", "Resume a paused schedule from now (no burst of old fires).")


@app.command("trigger")
@handle_errors
def trigger_now(
    name: NameArg,
    param: ParamOpt = None,
    params_json: ParamsJsonOpt = None,
    as_json: JsonOpt = False,
    database: DatabaseOpt = None,
    tenant: TenantOpt = None,
) -> None:
    """Run a schedule now (a manual run; works on a paused schedule too)."""
    from duetime.cli.overview import force_run

    force_run(name, parameters_from(param, params_json), as_json, database, tenant)
