"""Trigger specs: every accepted JSON shape → a trigger → the one normalised, versioned spec.

Accepted shapes (DESIGN §2):

* a cron string: ``"0 3 * * *"``;
* typed objects: ``{"type": "cron" | "interval" | "date" | "calendar" | "and" | "or", ...}``;
* shortcuts: ``{"cron": EXPR}`` / ``{"cron_expression": EXPR}`` (+ ``dst_policy``,
  ``weekdays``, ``day_match``) and ``{"interval_seconds" | "interval_minutes" |
  "interval_hours" | "interval_days" | "interval_weeks": N}`` (+ ``anchor``);
* APScheduler: ``{"trigger": "cron" | "interval" | "date" | "calendarinterval",
  "trigger_kwargs": {...}}`` (or the kwargs next to ``trigger``), with APScheduler's
  meanings;
* ``jitter`` (seconds) on any top-level shape.

**Anchors.** Interval and calendar triggers count from an ``anchor``. When a spec has none,
:func:`build_trigger` uses ``start_at`` (the schedule's start_date) and refuses the spec if
that is missing too; :func:`normalize_spec` fills in ``start_at``, else ``now`` (the creation
time), so a stored spec always carries its anchor and its grid never moves.

Errors are :class:`~duetime.errors.InvalidTriggerError` (or ``InvalidCronError``) whose
``field`` is ``trigger.<key>`` — the key the user wrote (``trigger.cron_expression``,
``trigger.trigger_kwargs.week``, ``trigger.triggers.1.anchor``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, time, tzinfo
from typing import Any

from duetime.errors import InvalidTriggerError, ValidationError
from duetime.triggers.base import SPEC_VERSION, Trigger, as_zone
from duetime.triggers.calendar import CALENDAR_UNITS, TIME_FIELDS, CalendarIntervalTrigger
from duetime.triggers.combine import AndTrigger, OrTrigger
from duetime.triggers.date import DateTrigger
from duetime.triggers.interval import INTERVAL_UNITS, IntervalTrigger
from duetime.triggers.jitter import check_jitter
from duetime.triggers.tz import ensure_aware, to_wall

Spec = str | Mapping[str, Any]

#: The field prefix of every spec error (the schedule's ``trigger`` field).
FIELD = "trigger"

#: and/or triggers nest at most this deep.
MAX_DEPTH = 5

_CRON_OPTIONS = ("dst_policy", "weekdays", "day_match")
_COMMON = frozenset({"version", "type", "jitter"})
_INTERVAL_SHORTCUTS = {f"interval_{unit}": unit for unit in INTERVAL_UNITS}


@dataclass(frozen=True, slots=True)
class _Context:
    """What building needs besides the spec: the zone, anchor default and window."""

    zone: tzinfo
    anchor_default: datetime | None
    start_at: datetime | None = None
    end_at: datetime | None = None
    depth: int = 0

    def child(self) -> _Context:
        return replace(self, start_at=None, end_at=None, depth=self.depth + 1)


def build_trigger(
    spec: Spec,
    timezone: str | tzinfo = "UTC",
    *,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
) -> Trigger:
    """Build a trigger from any accepted shape; naive datetimes are read in ``timezone``.

    An interval/calendar spec without ``anchor`` is anchored at ``start_at``; without both
    it is refused (``trigger.anchor``) — store :func:`normalize_spec` output instead.
    """
    zone = as_zone(timezone)
    start = ensure_aware(start_at, zone) if start_at is not None else None
    end = ensure_aware(end_at, zone) if end_at is not None else None
    return _prefixed(spec, _Context(zone, start, start, end))


def normalize_spec(
    spec: Spec,
    *,
    timezone: str | tzinfo = "UTC",
    start_at: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Validate ``spec`` and return its canonical versioned JSON (what is stored).

    A missing anchor becomes ``start_at``, else ``now``. The result round-trips:
    ``build_trigger(normalize_spec(x), tz).to_spec() == normalize_spec(x, timezone=tz)``.
    """
    zone = as_zone(timezone)
    default = start_at if start_at is not None else now
    anchor = ensure_aware(default, zone) if default is not None else None
    return _prefixed(spec, _Context(zone, anchor)).to_spec()


def _prefixed(spec: Spec, ctx: _Context) -> Trigger:
    try:
        return _build(spec, ctx)
    except ValidationError as err:
        if err.field == "timezone":
            raise
        raise err.with_field(FIELD) from err


def _build(spec: object, ctx: _Context) -> Trigger:
    if isinstance(spec, str):
        return _cron(spec, {}, 0.0, ctx, field_of={"expression": None})
    if not isinstance(spec, Mapping):
        raise InvalidTriggerError(f"must be a cron string or an object, got {type(spec).__name__}")
    if "type" in spec:
        return _typed(spec, ctx)
    if "trigger" in spec:
        return _apscheduler(spec, ctx)
    if "cron" in spec or "cron_expression" in spec:
        return _cron_shortcut(spec, ctx)
    if any(key in _INTERVAL_SHORTCUTS for key in spec):
        return _interval_shortcut(spec, ctx)
    raise InvalidTriggerError(
        "missing: say which trigger (type cron|interval|date|calendar|and|or, "
        "a cron / interval_* shortcut, or an APScheduler 'trigger')",
        field="type",
    )


# -- helpers -------------------------------------------------------------------------------


def _check_keys(spec: Mapping[str, Any], allowed: frozenset[str] | set[str], kind: str) -> None:
    for key in spec:
        if key not in allowed:
            raise InvalidTriggerError(
                f"unknown key ({kind} triggers take: {', '.join(sorted(allowed))})",
                field=str(key),
            )
    version = spec.get("version", SPEC_VERSION)
    if isinstance(version, bool) or version != SPEC_VERSION:
        raise InvalidTriggerError(
            f"unsupported spec version {version!r} (this duetime reads {SPEC_VERSION})",
            field="version",
        )


def _jitter(spec: Mapping[str, Any], ctx: _Context) -> float:
    if "jitter" not in spec:
        return 0.0
    if ctx.depth:
        raise InvalidTriggerError(
            "jitter belongs on the outermost trigger, not on a child", field="jitter"
        )
    return check_jitter(spec["jitter"])


def _string(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidTriggerError(f"must be a string, got {type(value).__name__}", field=field)
    return value


def _datetime(value: object, field: str, zone: tzinfo) -> datetime:
    """Parse an ISO 8601 datetime (or take a datetime); naive ones are read in ``zone``."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidTriggerError(
                f"{value!r} is not an ISO 8601 datetime (e.g. 2026-01-31T03:00:00+00:00)",
                field=field,
            ) from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if not isinstance(value, datetime):
        raise InvalidTriggerError(
            f"must be an ISO 8601 datetime string, got {type(value).__name__}", field=field
        )
    try:
        return ensure_aware(value, zone)
    except OverflowError:
        raise InvalidTriggerError(f"{value.isoformat()} is out of range", field=field) from None


def _date(value: object, field: str, zone: tzinfo) -> date:
    """Parse an ISO date; a datetime (string) gives its date in ``zone``."""
    if isinstance(value, str) and len(value.strip()) == len("YYYY-MM-DD"):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return to_wall(_datetime(value, field, zone), zone).date()
    except InvalidTriggerError:
        raise InvalidTriggerError(
            f"{value!r} is not an ISO 8601 date (e.g. 2026-01-31)", field=field
        ) from None


def _anchor(spec: Mapping[str, Any], key: str, ctx: _Context) -> datetime:
    if key in spec:
        return _datetime(spec[key], key, ctx.zone)
    if ctx.anchor_default is None:
        raise InvalidTriggerError(
            "required: give an anchor, or a start_date for the schedule", field=key
        )
    return ctx.anchor_default


def _calendar_anchor(spec: Mapping[str, Any], key: str, ctx: _Context) -> date:
    if key in spec:
        return _date(spec[key], key, ctx.zone)
    return to_wall(_anchor(spec, key, ctx), ctx.zone).date()


def _refield(err: ValidationError, field_of: Mapping[str, str | None]) -> ValidationError:
    """Rename the error's field to the key the user wrote."""
    if err.field is not None and err.field in field_of:
        renamed = field_of[err.field]
        copy = type(err).__new__(type(err))
        ValidationError.__init__(copy, err.message, field=renamed)
        return copy
    return err


def _remapping(build: Callable[[], Trigger], field_of: Mapping[str, str | None]) -> Trigger:
    try:
        return build()
    except ValidationError as err:
        raise _refield(err, field_of) from err


# -- typed shapes --------------------------------------------------------------------------


def _typed(spec: Mapping[str, Any], ctx: _Context) -> Trigger:
    kind = spec["type"]
    builders: dict[str, Callable[[Mapping[str, Any], _Context], Trigger]] = {
        "cron": _typed_cron,
        "interval": _typed_interval,
        "date": _typed_date,
        "calendar": _typed_calendar,
        "and": _typed_and,
        "or": _typed_or,
    }
    if not isinstance(kind, str) or kind not in builders:
        raise InvalidTriggerError(
            f"unknown trigger type {kind!r} (use one of {', '.join(builders)})", field="type"
        )
    return builders[kind](spec, ctx)


def _typed_cron(spec: Mapping[str, Any], ctx: _Context) -> Trigger:
    _check_keys(spec, _COMMON | {"expression", *_CRON_OPTIONS}, "cron")
    if "expression" not in spec:
        raise InvalidTriggerError("required: a cron expression", field="expression")
    expression = _string(spec["expression"], "expression")
    options = {key: _string(spec[key], key) for key in _CRON_OPTIONS if key in spec}
    return _cron(expression, options, _jitter(spec, ctx), ctx, field_of={})


def _cron(
    expression: str,
    options: Mapping[str, str],
    jitter: float,
    ctx: _Context,
    *,
    field_of: Mapping[str, str | None],
) -> Trigger:
    from duetime.triggers.cron import CronTrigger  # lazy: cron.py is its own module

    def build() -> Trigger:
        return CronTrigger(
            expression,
            ctx.zone,
            jitter=jitter,
            start_at=ctx.start_at,
            end_at=ctx.end_at,
            **options,
        )

    return _remapping(build, field_of)


def _typed_interval(spec: Mapping[str, Any], ctx: _Context) -> Trigger:
    _check_keys(spec, _COMMON | {*INTERVAL_UNITS, "anchor"}, "interval")
    units = {unit: spec[unit] for unit in INTERVAL_UNITS if unit in spec}
    return _anchored(
        IntervalTrigger, units, _anchor(spec, "anchor", ctx), _jitter(spec, ctx), ctx, {}
    )


def _anchored(
    kind: Callable[..., Trigger],
    values: Mapping[str, Any],
    anchor: date,
    jitter: float,
    ctx: _Context,
    field_of: Mapping[str, str | None],
) -> Trigger:
    """Build an anchored (interval or calendar) trigger in the spec's zone and window."""
    return _remapping(
        lambda: kind(
            **values,
            anchor=anchor,
            timezone=ctx.zone,
            jitter=jitter,
            start_at=ctx.start_at,
            end_at=ctx.end_at,
        ),
        field_of,
    )


def _typed_date(spec: Mapping[str, Any], ctx: _Context) -> Trigger:
    _check_keys(spec, _COMMON | {"run_at", "run_date"}, "date")
    if "run_at" in spec and "run_date" in spec:
        raise InvalidTriggerError("give run_at or run_date, not both", field="run_date")
    key = "run_date" if "run_date" in spec else "run_at"
    if key not in spec:
        raise InvalidTriggerError("required: when to run (ISO 8601 datetime)", field=key)
    run_at = _datetime(spec[key], key, ctx.zone)
    return DateTrigger(
        run_at, ctx.zone, jitter=_jitter(spec, ctx), start_at=ctx.start_at, end_at=ctx.end_at
    )


def _typed_calendar(spec: Mapping[str, Any], ctx: _Context) -> Trigger:
    fields = {*CALENDAR_UNITS, *TIME_FIELDS}
    _check_keys(spec, _COMMON | fields | {"anchor", "dst_policy"}, "calendar")
    values = {key: spec[key] for key in fields if key in spec}
    if "dst_policy" in spec:
        values["dst_policy"] = _string(spec["dst_policy"], "dst_policy")
    return _anchored(
        CalendarIntervalTrigger,
        values,
        _calendar_anchor(spec, "anchor", ctx),
        _jitter(spec, ctx),
        ctx,
        {},
    )


def _children(spec: Mapping[str, Any], ctx: _Context) -> list[Trigger]:
    if ctx.depth + 1 >= MAX_DEPTH:
        raise InvalidTriggerError(
            f"and/or triggers nest at most {MAX_DEPTH} deep", field="triggers"
        )
    if "triggers" not in spec:
        raise InvalidTriggerError("required: a list of triggers", field="triggers")
    items = spec["triggers"]
    if not isinstance(items, list | tuple):
        raise InvalidTriggerError(
            f"must be a list of triggers, got {type(items).__name__}", field="triggers"
        )
    children = []
    for index, item in enumerate(items):
        try:
            children.append(_build(item, ctx.child()))
        except ValidationError as err:
            raise err.with_field(f"triggers.{index}") from err
    return children


def _typed_and(spec: Mapping[str, Any], ctx: _Context) -> Trigger:
    _check_keys(spec, _COMMON | {"triggers", "threshold"}, "and")
    children = _children(spec, ctx)
    extra = {"threshold": spec["threshold"]} if "threshold" in spec else {}
    return AndTrigger(
        children,
        timezone=ctx.zone,
        jitter=_jitter(spec, ctx),
        start_at=ctx.start_at,
        end_at=ctx.end_at,
        **extra,
    )


def _typed_or(spec: Mapping[str, Any], ctx: _Context) -> Trigger:
    _check_keys(spec, _COMMON | {"triggers"}, "or")
    return OrTrigger(
        _children(spec, ctx),
        timezone=ctx.zone,
        jitter=_jitter(spec, ctx),
        start_at=ctx.start_at,
        end_at=ctx.end_at,
    )


# -- shortcuts -----------------------------------------------------------------------------


def _cron_shortcut(spec: Mapping[str, Any], ctx: _Context) -> Trigger:
    if "cron" in spec and "cron_expression" in spec:
        raise InvalidTriggerError("give cron or cron_expression, not both", field="cron")
    key = "cron" if "cron" in spec else "cron_expression"
    _check_keys(spec, {key, "jitter", *_CRON_OPTIONS}, "cron")
    expression = _string(spec[key], key)
    options = {opt: _string(spec[opt], opt) for opt in _CRON_OPTIONS if opt in spec}
    return _cron(expression, options, _jitter(spec, ctx), ctx, field_of={"expression": key})


def _interval_shortcut(spec: Mapping[str, Any], ctx: _Context) -> Trigger:
    _check_keys(spec, {*_INTERVAL_SHORTCUTS, "anchor", "jitter"}, "interval")
    units = {unit: spec[key] for key, unit in _INTERVAL_SHORTCUTS.items() if key in spec}
    field_of: dict[str, str | None] = {unit: key for key, unit in _INTERVAL_SHORTCUTS.items()}
    return _anchored(
        IntervalTrigger, units, _anchor(spec, "anchor", ctx), _jitter(spec, ctx), ctx, field_of
    )


# -- APScheduler ---------------------------------------------------------------------------

#: APScheduler's CronTrigger fields, most significant first, and their defaults for the
#: fields below the least significant one given (above it, or when none is given: ``*``).
_APS_CRON_FIELDS = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
_APS_CRON_DEFAULTS = dict(
    zip(_APS_CRON_FIELDS, ("*", "1", "1", "*", "*", "0", "0", "0"), strict=True)
)
_APS_WEEKDAYS = {
    name: index for index, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
}
_APS_NTH = {"1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5}
_APS_SCHEDULE_FIELDS = {
    "start_date": "the schedule's start_date",
    "end_date": "the schedule's end_date",
    "timezone": "the schedule's timezone",
}
_NO_SPACE = re.compile(r"^\S+$")
#: APScheduler numbers weekdays from Monday = 0 and ANDs all its day fields.
_APS_CRON_OPTIONS = {"weekdays": "iso", "day_match": "and"}


def _apscheduler(spec: Mapping[str, Any], ctx: _Context) -> Trigger:
    kind = spec["trigger"]
    builders: dict[str, Callable[[Mapping[str, Any], str, _Context], Trigger]] = {
        "cron": _aps_cron,
        "interval": _aps_interval,
        "date": _aps_date,
        "calendarinterval": _aps_calendar,
    }
    if not isinstance(kind, str) or kind not in builders:
        raise InvalidTriggerError(
            f"unknown APScheduler trigger {kind!r} (use one of {', '.join(builders)})",
            field="trigger",
        )
    if "trigger_kwargs" in spec:
        _check_keys(spec, {"trigger", "trigger_kwargs", "jitter"}, "APScheduler")
        kwargs, prefix = spec["trigger_kwargs"], "trigger_kwargs"
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, Mapping):
            raise InvalidTriggerError(
                f"must be an object, got {type(kwargs).__name__}", field=prefix
            )
        if "jitter" in spec:  # jitter may sit next to the kwargs, as on every shape
            if "jitter" in kwargs:
                raise InvalidTriggerError(
                    "give jitter once, not also in trigger_kwargs", field="jitter"
                )
            kwargs = {**kwargs, "jitter": spec["jitter"]}
    else:
        kwargs, prefix = {k: v for k, v in spec.items() if k != "trigger"}, ""
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    try:
        return builders[kind](kwargs, kind, ctx)
    except ValidationError as err:
        raise (err.with_field(prefix) if prefix else err) from err


def _aps_check(kwargs: Mapping[str, Any], allowed: set[str], kind: str) -> None:
    for key in kwargs:
        if key in _APS_SCHEDULE_FIELDS and key not in allowed:
            raise InvalidTriggerError(
                f"not part of a duetime trigger: set {_APS_SCHEDULE_FIELDS[key]} instead",
                field=key,
            )
        if key == "week" and kind == "cron" and str(kwargs[key]).strip() != "*":
            raise InvalidTriggerError(
                "APScheduler's ISO week-number field is not supported "
                "(use day/day_of_week, or a calendar trigger with weeks=N)",
                field=key,
            )
    _check_keys(kwargs, allowed, f"APScheduler {kind}")


def _aps_cron(kwargs: Mapping[str, Any], kind: str, ctx: _Context) -> Trigger:
    _aps_check(kwargs, {*_APS_CRON_FIELDS, "jitter"}, kind)
    given = {name: _aps_field(kwargs[name], name) for name in _APS_CRON_FIELDS if name in kwargs}
    fields: dict[str, str] = {}
    remaining, below_last_given = set(given), False
    for name in _APS_CRON_FIELDS:  # APScheduler 3.11's rule, field by field
        if name in given:
            remaining.discard(name)
            fields[name], below_last_given = given[name], not remaining
        else:
            fields[name] = _APS_CRON_DEFAULTS[name] if below_last_given else "*"
    fields["day"], fields["day_of_week"] = _aps_days(fields["day"], fields["day_of_week"])
    try:
        return _cron(
            _aps_expression(fields), _APS_CRON_OPTIONS, _jitter(kwargs, ctx), ctx, field_of={}
        )
    except ValidationError as err:
        if err.field == "expression":  # name the kwarg at fault, not the whole expression
            raise _refield(err, {"expression": _aps_culprit(given)}) from err
        raise


def _aps_expression(fields: Mapping[str, str]) -> str:
    """Return the 6-field (7 with a year) cron expression of APScheduler cron fields."""
    parts = [fields[name] for name in ("second", "minute", "hour", "day", "month", "day_of_week")]
    if fields.get("year", "*") != "*":
        parts.append(fields["year"])
    return " ".join(parts)


def _aps_culprit(given: Mapping[str, str]) -> str | None:
    """Return the first given field that is invalid on its own (None if only together)."""
    from duetime.triggers.cron_parse import parse_cron  # lazy, like the cron trigger

    for name, value in given.items():
        alone = dict.fromkeys(_APS_CRON_FIELDS, "*")
        alone[name] = value
        try:
            alone["day"], alone["day_of_week"] = _aps_days(alone["day"], alone["day_of_week"])
            parse_cron(_aps_expression(alone), weekdays=_APS_CRON_OPTIONS["weekdays"])
        except ValidationError:
            return name
    return None


def _aps_field(value: object, name: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise InvalidTriggerError(f"must be ≥ 0, got {value}", field=name)
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise InvalidTriggerError(
            f"must be a number or an APScheduler expression string, got {value!r}", field=name
        )
    text = " ".join(value.lower().split())
    if name != "day" and not _NO_SPACE.match(text):
        raise InvalidTriggerError(f"{value!r} is not a valid expression", field=name)
    return text


def _aps_days(day: str, day_of_week: str) -> tuple[str, str]:
    """Translate APScheduler day expressions (``last``, ``last fri``, ``2nd mon``)."""
    plain: list[str] = []
    weekday: list[str] = []
    for part in day.split(","):
        words = part.split()
        if words == ["last"]:
            plain.append("L")
        elif (
            len(words) == 2
            and words[1] in _APS_WEEKDAYS
            and (words[0] == "last" or words[0] in _APS_NTH)
        ):
            iso = _APS_WEEKDAYS[words[1]]
            weekday.append(f"{iso}L" if words[0] == "last" else f"{iso}#{_APS_NTH[words[0]]}")
        elif len(words) == 1:
            plain.append(part)
        else:
            raise InvalidTriggerError(f"{part!r} is not a valid day expression", field="day")
    if not weekday:
        return ",".join(plain), day_of_week
    if plain:
        raise InvalidTriggerError(
            "cannot mix month days with 'last <weekday>' / '<nth> <weekday>' in one field",
            field="day",
        )
    if day_of_week != "*":
        raise InvalidTriggerError(
            "'last <weekday>' / '<nth> <weekday>' cannot be combined with day_of_week",
            field="day",
        )
    return "*", ",".join(weekday)


def _aps_interval(kwargs: Mapping[str, Any], kind: str, ctx: _Context) -> Trigger:
    _aps_check(kwargs, {*INTERVAL_UNITS, "start_date", "jitter"}, kind)
    units = {unit: kwargs[unit] for unit in INTERVAL_UNITS if unit in kwargs}
    anchor = _anchor(kwargs, "start_date", ctx)
    return _anchored(IntervalTrigger, units, anchor, _jitter(kwargs, ctx), ctx, {})


def _aps_date(kwargs: Mapping[str, Any], kind: str, ctx: _Context) -> Trigger:
    _aps_check(kwargs, {"run_date", "jitter"}, kind)
    if "run_date" not in kwargs:
        raise InvalidTriggerError("required: when to run (ISO 8601 datetime)", field="run_date")
    run_at = _datetime(kwargs["run_date"], "run_date", ctx.zone)
    return DateTrigger(
        run_at, ctx.zone, jitter=_jitter(kwargs, ctx), start_at=ctx.start_at, end_at=ctx.end_at
    )


def _aps_calendar(kwargs: Mapping[str, Any], kind: str, ctx: _Context) -> Trigger:
    fields = {*CALENDAR_UNITS, *TIME_FIELDS}
    _aps_check(kwargs, {*fields, "start_date", "jitter"}, kind)
    values = {key: kwargs[key] for key in fields if key in kwargs}
    anchor = _calendar_anchor(kwargs, "start_date", ctx)
    return _anchored(CalendarIntervalTrigger, values, anchor, _jitter(kwargs, ctx), ctx, {})
