"""Accept the schedule shapes users bring from other schedulers; emit the canonical one.

DESIGN §2 shortcuts (``cron``, ``cron_expression``, ``interval_seconds|minutes|hours|days``,
APScheduler's ``trigger`` + ``trigger_kwargs``, a ``recurrence`` block) and field aliases
(``job_type``, ``job_name``, ``is_enabled``, ``timeout_seconds``) all collapse into the §1
field names with a single ``trigger`` value. The trigger itself is normalised later by the
facade (``duetime.triggers.spec.normalize_spec``); this module only gathers it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from duetime.errors import ValidationError

#: Alias → canonical field name.
FIELD_ALIASES = {
    "job_type": "job",
    "job_name": "name",
    "is_enabled": "enabled",
    "timeout_seconds": "timeout",
    "cron_expression": "cron",
}

_INTERVAL_SHORTCUTS = {
    "interval_seconds": "seconds",
    "interval_minutes": "minutes",
    "interval_hours": "hours",
    "interval_days": "days",
}

#: APScheduler trigger names that ``trigger`` + ``trigger_kwargs`` may carry.
APSCHEDULER_TRIGGERS = ("cron", "interval", "date", "calendarinterval")

_RECURRENCE_FIELDS = ("timezone", "start_date", "end_date")


def normalize_schedule_input(data: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``data`` with aliases renamed and every trigger shortcut folded into ``trigger``."""
    if not isinstance(data, Mapping):
        raise ValidationError("expected a JSON object", field="body")
    out = _rename_aliases(dict(data))
    _fold_recurrence(out)
    candidates = _trigger_candidates(out)
    if len(candidates) > 1:
        names = ", ".join(name for name, _ in candidates)
        raise ValidationError(f"give the trigger once, not as {names}", field="trigger")
    if candidates:
        out["trigger"] = candidates[0][1]
    return out


def _rename_aliases(data: dict[str, Any]) -> dict[str, Any]:
    for alias, canonical in FIELD_ALIASES.items():
        if alias not in data:
            continue
        if canonical in data and data[canonical] != data[alias]:
            raise ValidationError(
                f"{alias!r} is an alias of {canonical!r}; give only one", field=alias
            )
        data[canonical] = data.pop(alias)
    return data


def _fold_recurrence(data: dict[str, Any]) -> None:
    """Lift a manifest-style ``recurrence: {cron, timezone, start_date, end_date}`` block."""
    block = data.pop("recurrence", None)
    if block is None:
        return
    if not isinstance(block, Mapping):
        raise ValidationError("recurrence must be an object", field="recurrence")
    block = _rename_aliases(dict(block))
    for key in _RECURRENCE_FIELDS:
        if key in block:
            data.setdefault(key, block.pop(key))
    if "cron" in block:
        data.setdefault("cron", block.pop("cron"))
    if block:
        raise ValidationError(
            f"unknown recurrence field(s): {', '.join(sorted(block))}", field="recurrence"
        )


def _trigger_candidates(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """Pop every way the trigger may have been given and return them, named."""
    found: list[tuple[str, Any]] = []
    kwargs = data.pop("trigger_kwargs", None)
    trigger = data.pop("trigger", None)
    if isinstance(trigger, str) and trigger.strip().lower() in APSCHEDULER_TRIGGERS:
        found.append(("trigger", _apscheduler_spec(trigger.strip().lower(), kwargs)))
    elif kwargs is not None:
        raise ValidationError(
            "trigger_kwargs needs trigger set to one of " + ", ".join(APSCHEDULER_TRIGGERS),
            field="trigger_kwargs",
        )
    elif trigger is not None:
        found.append(("trigger", trigger))
    if "cron" in data:
        found.append(("cron", _cron_spec(data.pop("cron"))))
    interval = _interval_spec(data)
    if interval is not None:
        found.append(("interval_*", interval))
    return found


def _apscheduler_spec(name: str, kwargs: Any) -> dict[str, Any]:
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping):
        raise ValidationError("trigger_kwargs must be an object", field="trigger_kwargs")
    return {"trigger": name, "trigger_kwargs": dict(kwargs)}


def _cron_spec(expression: Any) -> dict[str, Any]:
    if not isinstance(expression, str):
        raise ValidationError("cron must be a string expression", field="cron")
    return {"type": "cron", "expression": expression}


def _interval_spec(data: dict[str, Any]) -> dict[str, Any] | None:
    spec: dict[str, Any] = {}
    for shortcut, unit in _INTERVAL_SHORTCUTS.items():
        if shortcut in data:
            value = data.pop(shortcut)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationError("must be a number", field=shortcut)
            spec[unit] = value
    return {"type": "interval", **spec} if spec else None


def reject_nul(value: Any, field: str) -> None:
    """Refuse NUL characters anywhere in ``value`` (PostgreSQL cannot store them)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationError("must not contain NUL characters", field=field)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            reject_nul(key, field)
            reject_nul(item, f"{field}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            reject_nul(item, f"{field}.{index}")
