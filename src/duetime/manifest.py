"""Manifests: YAML or JSON files of schedules, validated, compared and applied (DESIGN §4).

``read_manifests`` turns files (or already-parsed data) into :class:`DesiredSchedule` values,
collecting every problem with its file, index and field
(``demo.yaml: schedules[3].cron: day-of-week 8 is out of range 0–7``) before anything is
written. ``compute_plan`` compares them with the stored schedules (pure);
``load_manifest`` applies a plan through the facade's store in one transaction.

Upsert rules (docs/decisions/0004-manifest-upsert.md): a manifest states the whole schedule,
so an omitted field means its default; ``enabled`` is the exception — when omitted, a
schedule paused by an operator stays paused. ``source`` records who created a schedule and is
never changed by a load; ``--prune`` only deletes schedules whose source is ``manifest``.
"""

from __future__ import annotations

import copy
import enum
import gc
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from duetime.errors import InvalidTriggerError, ValidationError
from duetime.models import SCHEDULE_DEFAULTS, SCHEDULE_FIELD_DEFAULTS, Overlap, Schedule, Source
from duetime.triggers.tz import ensure_aware, get_zone

if TYPE_CHECKING:
    from duetime.scheduler import Scheduler
    from duetime.store.manifest_ops import BulkStore

Action = Literal["create", "update", "unchanged", "delete"]

#: The largest parameters object accepted (DESIGN §1).
MAX_PARAMETERS_BYTES = 64 * 1024
#: The most problems reported for one load (the rest are counted).
MAX_PROBLEMS = 50
MAX_NAME_LENGTH = 200
MAX_INSTANCES_LIMIT = 100

#: Schedule fields (API names) a manifest may set, with the value an omitted one means.
FIELD_DEFAULTS = SCHEDULE_FIELD_DEFAULTS
#: Fields compared for the plan, in display order.
COMPARED_FIELDS = ("job", "trigger", "timezone", *FIELD_DEFAULTS)

_INTERVAL_SHORTCUTS = {
    "interval_seconds": "seconds",
    "interval_minutes": "minutes",
    "interval_hours": "hours",
    "interval_days": "days",
}
_CRON_SHORTCUTS = ("cron", "cron_expression")
_TRIGGER_KEYS = ("trigger", *_CRON_SHORTCUTS, "recurrence", *_INTERVAL_SHORTCUTS)
_APSCHEDULER_TRIGGERS = ("cron", "interval", "date", "calendarinterval")
_RECURRENCE_KEYS = ("cron", "timezone", "start_date", "end_date")
_OTHER_KEYS = ("name", "job", "tenant", "timezone", "trigger_kwargs", "jitter")
ALLOWED_KEYS = frozenset((*FIELD_DEFAULTS, *_TRIGGER_KEYS, *_OTHER_KEYS))
_TOP_LEVEL_KEYS = ("schedules", "defaults")
#: Names other schedulers (and the API) use for our fields.
FIELD_ALIASES = {
    "job_type": "job",
    "job_name": "name",
    "is_enabled": "enabled",
    "timeout_seconds": "timeout",
}
_EXECUTOR = re.compile(r"^(default|process|thread|asyncio|celery|celery:[A-Za-z0-9_.\-]+)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Stored trigger keys a manifest may leave out without that being a change.
_TRIGGER_DERIVED_KEYS = frozenset({"version", "anchor"})


# ------------------------------------------------------------------ durations

_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h|d|w)", re.IGNORECASE)
_DURATION_HELP = "use seconds or a number with a unit: 90s, 15m, 2h, 1d, 1h30m"


def parse_duration(text: str | float, *, field: str | None = "duration") -> float:
    """Return seconds for ``90s``, ``15m``, ``2h``, ``1d``, ``1w``, ``1h30m`` or a plain number."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValidationError(f"bad duration {text!r}: {_DURATION_HELP}", field=field)
    if isinstance(text, int | float):
        return _non_negative(float(text), text, field)
    value = text.strip()
    try:
        return _non_negative(float(value), text, field)
    except ValidationError:
        raise
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if not parts or _DURATION_PART.sub("", value).strip():
        raise ValidationError(f"bad duration {text!r}: {_DURATION_HELP}", field=field)
    return sum(float(num) * _DURATION_UNITS[unit.lower()] for num, unit in parts)


def _non_negative(seconds: float, text: object, field: str | None) -> float:
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        raise ValidationError(f"bad duration {text!r}: must be a finite number ≥ 0", field=field)
    return seconds


# ------------------------------------------------------------------ errors


@dataclass(frozen=True, slots=True)
class ManifestProblem:
    """One thing wrong in a manifest: the file, the field path and the reason."""

    file: str
    field: str | None
    message: str

    def __str__(self) -> str:
        return (
            f"{self.file}: {self.field}: {self.message}"
            if self.field
            else (f"{self.file}: {self.message}")
        )


class ManifestError(ValidationError):
    """A manifest that cannot be loaded; ``problems`` lists every issue found (one per line)."""

    def __init__(self, problems: Sequence[ManifestProblem], *, omitted: int = 0) -> None:
        self.problems = tuple(problems)
        self.omitted = omitted
        first = self.problems[0] if self.problems else None
        super().__init__(str(first) if first else "invalid manifest", field=None)

    @classmethod
    def of(cls, problems: Sequence[ManifestProblem]) -> ManifestError:
        """Return the error for ``problems``, keeping the first ``MAX_PROBLEMS``."""
        return cls(problems[:MAX_PROBLEMS], omitted=max(0, len(problems) - MAX_PROBLEMS))

    def __str__(self) -> str:
        lines = [str(p) for p in self.problems]
        if self.omitted:
            lines.append(f"... and {self.omitted} more problems")
        return "\n".join(lines)


class _Problems:
    """Collects problems for one file; ``check`` runs a validator and records its error."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[ManifestProblem] = []

    def add(self, field_path: str | None, message: str) -> None:
        self.items.append(ManifestProblem(self.file, field_path, message))

    def check(self, field_path: str, func: Callable[[], Any]) -> Any:
        try:
            return func()
        except ValidationError as exc:
            self.add(field_path, exc.message)
        except (TypeError, ValueError) as exc:
            self.add(field_path, str(exc))
        return None


# ------------------------------------------------------------------ desired state


@dataclass(frozen=True, slots=True)
class DesiredSchedule:
    """One schedule as a manifest states it: full field values (API names) and its origin."""

    file: str
    index: int
    name: str
    values: dict[str, Any]
    explicit: frozenset[str] = frozenset()

    @property
    def where(self) -> str:
        """``file: schedules[i]`` — where this schedule is written."""
        return f"{self.file}: schedules[{self.index}]"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field's old and new value in an update."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class PlanItem:
    """What a load does to one schedule."""

    action: Action
    name: str
    changes: tuple[FieldChange, ...] = ()
    where: str | None = None
    schedule_id: str | None = None
    desired: DesiredSchedule | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape printed by ``duetime load --json``."""
        return {
            "action": self.action,
            "name": self.name,
            "id": self.schedule_id,
            "where": self.where,
            "changes": [
                {"field": c.field, "old": _show(c.old), "new": _show(c.new)} for c in self.changes
            ],
        }


@dataclass(slots=True)
class Plan:
    """The result of a load: one item per schedule, and whether it was applied."""

    items: list[PlanItem]
    dry_run: bool = False
    applied: bool = False

    def of(self, action: Action) -> list[PlanItem]:
        """Return the items with ``action``."""
        return [item for item in self.items if item.action == action]

    def counts(self) -> dict[str, int]:
        """Return ``{"create": n, "update": n, "unchanged": n, "delete": n}``."""
        actions: tuple[Action, ...] = ("create", "update", "unchanged", "delete")
        return {action: len(self.of(action)) for action in actions}

    @property
    def has_changes(self) -> bool:
        """True when applying the plan writes anything."""
        return any(item.action != "unchanged" for item in self.items)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape printed by ``duetime load --json``."""
        return {
            "dry_run": self.dry_run,
            "applied": self.applied,
            "counts": self.counts(),
            "items": [item.to_dict() for item in self.items],
        }


def _show(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# ------------------------------------------------------------------ reading files


@dataclass(frozen=True, slots=True)
class _Options:
    """What validation needs besides the data: defaults, the load instant, a trigger memo."""

    default_timezone: str
    tenant: str
    now: datetime
    #: validate_trigger results of this read, by (spec, zone, bounds): schedules sharing a
    #: trigger (the common case in big manifests) are proven once and share one dict, which
    #: nothing changes (100,000 copies cost time and tens of MB).
    triggers: dict[Any, dict[str, Any]] = field(default_factory=dict)


ManifestInput = str | Path | Mapping[str, Any] | Sequence[Any]


def read_manifests(
    sources: ManifestInput | Sequence[ManifestInput],
    *,
    now: datetime,
    default_timezone: str = "UTC",
    tenant: str = "default",
) -> list[DesiredSchedule]:
    """Parse and validate every file (or data object); raise ManifestError listing all problems.

    ``now`` anchors interval triggers written without an anchor while they are validated.
    """
    opts = _Options(default_timezone, tenant, now, {})
    problems: list[ManifestProblem] = []
    desired: list[DesiredSchedule] = []
    for label, data in _documents(sources, problems):
        collector = _Problems(label)
        desired.extend(_read_document(data, collector, opts))
        problems.extend(collector.items)
    problems.extend(_duplicate_names(desired))
    if problems:
        raise ManifestError.of(problems)
    return desired


def _documents(
    sources: ManifestInput | Sequence[ManifestInput], problems: list[ManifestProblem]
) -> Iterable[tuple[str, Any]]:
    items: Sequence[Any]
    if isinstance(sources, str | Path | Mapping) or _is_schedule_list(sources):
        items = [sources]
    else:
        items = list(sources)
    for number, item in enumerate(items):
        if isinstance(item, str | Path):
            label = str(item)
            try:
                yield label, parse_document(_read_text(Path(item)), label)
            except ManifestError as exc:
                problems.extend(exc.problems)
        else:
            yield ("<data>" if len(items) == 1 else f"<data {number}>"), item


def _is_schedule_list(value: Any) -> bool:
    return isinstance(value, Sequence) and any(isinstance(v, Mapping) for v in value)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _single(str(path), "file not found") from None
    except IsADirectoryError:
        raise _single(str(path), "is a directory, not a manifest file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _single(str(path), f"cannot read: {exc}") from None


def _single(file: str, message: str, field_path: str | None = None) -> ManifestError:
    return ManifestError([ManifestProblem(file, field_path, message)])


#: libyaml's parser when PyYAML was built with it (several times faster), else pure Python.
_SAFE_LOADER: Any = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
#: Mapping keys with a meaning of their own (``<<: *defaults``, ``=``): left to PyYAML.
_SPECIAL_KEY_TAGS = frozenset({"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"})


class _Recursive(Exception):
    """A node that contains itself (``&a [*a]``): PyYAML's own construction handles it."""


class _ManifestLoader(_SAFE_LOADER):  # type: ignore[misc]
    """The safe loader, building plain strings, mappings and lists itself.

    PyYAML's constructor spends most of a big manifest's load on per-node bookkeeping; here
    nodes tagged str/map/seq become ``str``/``dict``/``list`` directly and every other node
    (numbers, booleans, null, dates, merge keys, other tags) goes through PyYAML's safe
    constructor, so the data — and every error — is what ``yaml.safe_load`` gives.
    """

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        built: dict[int, Any] = {}
        try:
            return self._plain(node, built, set())
        except _Recursive:
            self._forget()
            return self.construct_document(node)
        finally:
            self._forget()

    def _forget(self) -> None:
        constructed: dict[Any, Any] = {}
        recursive: dict[Any, Any] = {}
        self.constructed_objects, self.recursive_objects = constructed, recursive

    def _plain(self, node: yaml.Node, built: dict[int, Any], open_ids: set[int]) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return node.value if node.tag == _STR_TAG else self.construct_object(node, deep=True)
        ident = id(node)  # an alias (*name) is the same node: one object, as PyYAML makes
        if ident in built:
            return built[ident]
        if ident in open_ids:
            raise _Recursive
        open_ids.add(ident)
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP_TAG:
            data: Any = self._mapping(node, built, open_ids)
        elif isinstance(node, yaml.SequenceNode) and node.tag == _SEQ_TAG:
            data = [self._plain(item, built, open_ids) for item in node.value]
        else:
            data = self.construct_object(node, deep=True)
        open_ids.discard(ident)
        built[ident] = data
        return data

    def _mapping(self, node: yaml.MappingNode, built: dict[int, Any], open_ids: set[int]) -> Any:
        data: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _STR_TAG:
                key = key_node.value
            elif isinstance(key_node, yaml.ScalarNode) and key_node.tag not in _SPECIAL_KEY_TAGS:
                key = self.construct_object(key_node, deep=True)
            else:  # merge keys, collection keys (PyYAML's errors for unhashable ones)
                return self.construct_object(node, deep=True)
            data[key] = self._plain(value_node, built, open_ids)
        return data


def parse_document(text: str, label: str) -> Any:
    """Parse YAML or JSON text (JSON for ``.json`` files); errors name the line and column."""
    if label.endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise _single(
                label, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
    try:
        return yaml.load(text, Loader=_ManifestLoader)  # a safe loader (C or Python)
    except yaml.YAMLError as exc:
        raise _single(label, _yaml_message(exc)) from None


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"invalid YAML: {problem}"


def _read_document(data: Any, problems: _Problems, opts: _Options) -> list[DesiredSchedule]:
    entries, defaults = _entries_of(data, problems)
    desired = []
    for index, raw in enumerate(entries):
        merged = {**defaults, **raw} if isinstance(raw, Mapping) else raw
        item = _read_entry(merged, index, problems, opts)
        if item is not None:
            desired.append(item)
    return desired


def _entries_of(data: Any, problems: _Problems) -> tuple[list[Any], dict[str, Any]]:
    if isinstance(data, list):
        return data, {}
    if not isinstance(data, Mapping):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        problems.add(None, f"expected a mapping with a 'schedules:' list, got {kind}")
        return [], {}
    for key in data:
        if key not in _TOP_LEVEL_KEYS:
            problems.add(str(key), f"unknown top-level key (allowed: {', '.join(_TOP_LEVEL_KEYS)})")
    entries = data.get("schedules")
    defaults = data.get("defaults") or {}
    if not isinstance(entries, list):
        problems.add("schedules", "must be a list of schedule objects")
        entries = []
    if not isinstance(defaults, Mapping):
        problems.add("defaults", "must be a mapping of schedule fields")
        defaults = {}
    return entries, dict(defaults)


def _duplicate_names(desired: list[DesiredSchedule]) -> list[ManifestProblem]:
    seen: dict[str, DesiredSchedule] = {}
    problems = []
    for item in desired:
        first = seen.setdefault(item.name, item)
        if first is not item:
            problems.append(
                ManifestProblem(
                    item.file,
                    f"schedules[{item.index}].name",
                    f"{item.name!r} is already defined in {first.where}",
                )
            )
    return problems


# ------------------------------------------------------------------ one schedule entry


def _read_entry(
    raw: Any, index: int, problems: _Problems, opts: _Options
) -> DesiredSchedule | None:
    prefix = f"schedules[{index}]"
    if not isinstance(raw, Mapping):
        problems.add(prefix, f"expected a schedule object, got {type(raw).__name__}")
        return None
    before = len(problems.items)
    raw = _unalias(raw, prefix, problems)
    _check_keys(raw, prefix, problems)
    _check_tenant(raw, prefix, problems, opts.tenant)
    name = problems.check(f"{prefix}.name", lambda: check_name(raw.get("name")))
    job = problems.check(f"{prefix}.job", lambda: _required_text(raw.get("job"), "job"))
    values: dict[str, Any] = {"job": job}
    values.update(_plain_fields(raw, prefix, problems))
    values.update(_trigger_fields(raw, prefix, problems, opts))
    if len(problems.items) > before or name is None:
        return None
    explicit = frozenset(k for k in raw if k in FIELD_DEFAULTS)
    if "enabled" not in explicit:
        values.pop("enabled", None)
    return DesiredSchedule(problems.file, index, name, values, explicit)


def _unalias(raw: Mapping[str, Any], prefix: str, problems: _Problems) -> dict[str, Any]:
    out = dict(raw)
    if not out.keys() & FIELD_ALIASES.keys():
        return out
    for alias, canonical in FIELD_ALIASES.items():
        if alias not in out:
            continue
        value = out.pop(alias)
        if canonical in out and out[canonical] != value:
            problems.add(f"{prefix}.{alias}", f"is an alias of {canonical!r}; give only one")
        out.setdefault(canonical, value)
    return out


def _check_keys(raw: Mapping[str, Any], prefix: str, problems: _Problems) -> None:
    for key in raw:
        if key not in ALLOWED_KEYS:
            hint = _closest(str(key), ALLOWED_KEYS)
            suffix = f" (did you mean {hint!r}?)" if hint else ""
            problems.add(f"{prefix}.{key}", f"unknown field{suffix}")


def _closest(key: str, allowed: Iterable[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.75)
    return matches[0] if matches else None


def _check_tenant(raw: Mapping[str, Any], prefix: str, problems: _Problems, tenant: str) -> None:
    given = raw.get("tenant")
    if given is not None and given != tenant:
        problems.add(
            f"{prefix}.tenant",
            f"{given!r} differs from the tenant being loaded, {tenant!r} (use --tenant)",
        )


def check_name(value: Any) -> str:
    """Return a valid schedule name: 1–200 chars, no control characters or edge spaces."""
    if not isinstance(value, str) or not value:
        raise ValidationError("is required (a non-empty string)", field="name")
    if len(value) > MAX_NAME_LENGTH:
        raise ValidationError(f"is longer than {MAX_NAME_LENGTH} characters", field="name")
    if value != value.strip():
        raise ValidationError(f"{value!r} has leading or trailing spaces", field="name")
    if _CONTROL.search(value):
        raise ValidationError(f"{value!r} contains control characters", field="name")
    return value


def _required_text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("is required (a non-empty string)", field=name)
    return value


# ------------------------------------------------------------------ plain fields


def _plain_fields(raw: Mapping[str, Any], prefix: str, problems: _Problems) -> dict[str, Any]:
    values = dict(FIELD_DEFAULTS)
    if not raw.keys() & _FIELD_CHECKS.keys():  # nothing but name, job and trigger (common)
        return _without_dates(values)
    for key, check in _FIELD_CHECKS.items():
        if key in raw:
            values[key] = problems.check(f"{prefix}.{key}", partial(check, raw[key]))
    return _without_dates(values)


def _without_dates(values: dict[str, Any]) -> dict[str, Any]:
    values.pop("start_date", None)
    values.pop("end_date", None)
    return values


def _text_or_none(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"expected text, got {type(value).__name__}")


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping, got {type(value).__name__}")
    return {str(k): _json_ready(v) for k, v in value.items()}


def _parameters(value: Any) -> dict[str, Any]:
    params = _object({} if value is None else value)
    size = len(json.dumps(params).encode())
    if size > MAX_PARAMETERS_BYTES:
        raise ValueError(f"is {size} bytes of JSON, more than {MAX_PARAMETERS_BYTES}")
    return params


def _json_ready(value: Any) -> Any:
    """YAML gives datetimes and dates; parameters and labels are stored as JSON."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _integer(low: int | None = None, high: int | None = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"{low}–{high}" if high is not None else f"≥ {low}"
            raise ValueError(f"{value} is out of range {bounds}")
        return value

    return check


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else check(value)


def _seconds(minimum_exclusive: bool = False) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        seconds = parse_duration(value, field=None)
        if minimum_exclusive and seconds <= 0:
            raise ValueError(f"{value!r} must be more than 0 seconds")
        return seconds

    return check


def _whole_seconds(value: Any) -> int:
    return int(_seconds()(value))


def _overlap(value: Any) -> str:
    allowed = [o.value for o in Overlap]
    if value not in allowed:
        raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _executor(value: Any) -> str:
    if not isinstance(value, str) or not _EXECUTOR.match(value):
        raise ValueError(
            f"{value!r} is not one of default, process, thread, asyncio, celery, celery:QUEUE"
        )
    return value


def _chain(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("expected a list of schedule names")
    return list(value)


_FIELD_CHECKS: dict[str, Callable[[Any], Any]] = {
    "description": _text_or_none,
    "parameters": _parameters,
    "enabled": _boolean,
    "priority": _integer(),
    "max_instances": _integer(1, MAX_INSTANCES_LIMIT),
    "overlap": _overlap,
    "misfire_grace_time": _optional(_seconds()),
    "coalesce": _boolean,
    "max_attempts": _optional(_integer(1)),
    "max_recoveries": _integer(0),
    "retry_backoff": _seconds(),
    "timeout": _optional(_seconds(minimum_exclusive=True)),
    "chain": _chain,
    "executor": _executor,
    "sla_seconds": _whole_seconds,
    "labels": lambda v: _object({} if v is None else v),
}


# ------------------------------------------------------------------ trigger, zone, dates


@dataclass(frozen=True, slots=True)
class _TriggerSource:
    """Where a trigger was written, to name the right field in an error."""

    spec: dict[str, Any]
    key: str
    shortcut: bool
    recurrence: Mapping[str, Any] = field(default_factory=dict)


def _trigger_fields(
    raw: Mapping[str, Any], prefix: str, problems: _Problems, opts: _Options
) -> dict[str, Any]:
    source = _trigger_source(raw, prefix, problems)
    rec = source.recurrence if source else {}
    zone_field = "recurrence.timezone" if "timezone" in rec else "timezone"
    zone_name = rec.get("timezone", raw.get("timezone", opts.default_timezone))
    zone = problems.check(f"{prefix}.{zone_field}", lambda: _zone(zone_name))
    bounds: dict[str, datetime | None] = {}
    for key in ("start_date", "end_date"):
        value, where = (rec[key], f"recurrence.{key}") if key in rec else (raw.get(key), key)
        if value is None:  # the common case: no bound (nothing to check)
            bounds[key] = None
            continue
        bounds[key] = problems.check(f"{prefix}.{where}", partial(_instant, value, zone))
    if source is None or zone is None:
        return {}
    trigger = _normalised_trigger(source, prefix, problems, zone_name, bounds, opts)
    return {"trigger": trigger, "timezone": zone_name, **bounds}


def _zone(name: Any) -> Any:
    if not isinstance(name, str):
        raise ValidationError(f"expected an IANA zone name, got {name!r}", field="timezone")
    return get_zone(name)


def _instant(value: Any, zone: Any) -> datetime | None:
    if value is None:
        return None
    if zone is None:
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date-time") from None
    else:
        raise ValueError(f"expected an ISO 8601 date-time, got {value!r}")
    return ensure_aware(moment, zone).astimezone(UTC)


def _trigger_source(
    raw: Mapping[str, Any], prefix: str, problems: _Problems
) -> _TriggerSource | None:
    given = [k for k in _TRIGGER_KEYS if k in raw]
    kinds = {("interval" if k in _INTERVAL_SHORTCUTS else k) for k in given}
    if len(kinds) != 1:
        choices = (
            "trigger, cron, cron_expression, recurrence or interval_seconds|minutes|hours|days"
        )
        message = f"give exactly one of {choices}"
        problems.add(
            prefix,
            f"no trigger: {message}"
            if not kinds
            else f"several triggers ({', '.join(given)}): {message}",
        )
        return None
    source = problems.check(f"{prefix}.{given[0]}", lambda: _source_of(raw, given))
    if source is not None and "jitter" in raw:
        jitter = problems.check(f"{prefix}.jitter", lambda: _seconds()(raw["jitter"]))
        source.spec["jitter"] = jitter
    return source  # type: ignore[no-any-return]


def _source_of(raw: Mapping[str, Any], given: list[str]) -> _TriggerSource:
    key = given[0]
    if key in _INTERVAL_SHORTCUTS:
        spec: dict[str, Any] = {"type": "interval"}
        for name in given:
            spec[_INTERVAL_SHORTCUTS[name]] = raw[name]
        return _TriggerSource(spec, key, shortcut=True)
    if key in _CRON_SHORTCUTS:
        return _TriggerSource({"type": "cron", "expression": raw[key]}, key, shortcut=True)
    if key == "recurrence":
        return _recurrence_source(raw["recurrence"])
    return _explicit_source(raw["trigger"], raw.get("trigger_kwargs"))


def _recurrence_source(rec: Any) -> _TriggerSource:
    if not isinstance(rec, Mapping):
        raise ValueError("expected a mapping {cron, timezone, start_date, end_date}")
    unknown = [k for k in rec if k not in _RECURRENCE_KEYS]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (allowed: {', '.join(_RECURRENCE_KEYS)})")
    if "cron" not in rec:
        raise ValueError("needs a 'cron' expression")
    spec = {"type": "cron", "expression": rec["cron"]}
    return _TriggerSource(spec, "recurrence.cron", shortcut=True, recurrence=dict(rec))


def _explicit_source(trigger: Any, kwargs: Any) -> _TriggerSource:
    if isinstance(trigger, str) and trigger in _APSCHEDULER_TRIGGERS:
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise ValueError("trigger_kwargs must be a mapping")
        spec = {"trigger": trigger, "trigger_kwargs": dict(kwargs or {})}
        return _TriggerSource(spec, "trigger_kwargs", shortcut=False)
    if isinstance(trigger, str):
        return _TriggerSource({"type": "cron", "expression": trigger}, "trigger", shortcut=True)
    if isinstance(trigger, Mapping):
        return _TriggerSource(_object(trigger), "trigger", shortcut=False)
    raise ValueError("expected a trigger object, a cron string or an APScheduler trigger name")


def _normalised_trigger(
    source: _TriggerSource,
    prefix: str,
    problems: _Problems,
    timezone: str,
    bounds: Mapping[str, datetime | None],
    opts: _Options,
) -> dict[str, Any] | None:
    key = _trigger_key(source.spec, timezone, bounds)
    known = opts.triggers.get(key) if key else None
    if known is not None:
        return known
    try:
        normalised = validate_trigger(source.spec, timezone, bounds, now=opts.now)
    except ValidationError as exc:
        problems.add(f"{prefix}.{_trigger_error_field(source, exc.field)}", exc.message)
        return None
    except (TypeError, ValueError) as exc:
        problems.add(f"{prefix}.{source.key}", str(exc))
        return None
    if key:
        opts.triggers[key] = normalised
    return normalised


#: Value types of a flat spec keyed as it is (floats go through JSON: -0.0 == 0.0).
_FLAT_KEY_TYPES = frozenset({str, int, bool, type(None)})


def _trigger_key(spec: Any, timezone: str, bounds: Mapping[str, datetime | None]) -> Any:
    """A memo key for a trigger's validation; None when the spec is not plain JSON."""
    window = (timezone, str(bounds.get("start_date")), str(bounds.get("end_date")))
    if type(spec) is dict:  # the common {"type": "cron", "expression": ...}: type-exact tuple
        types = (*map(type, spec), *map(type, spec.values()))
        if _FLAT_KEY_TYPES.issuperset(types):
            return (tuple(spec.items()), types, window)
    try:
        return json.dumps([spec, *window], sort_keys=True)
    except (TypeError, ValueError):
        return None


def _trigger_error_field(source: _TriggerSource, err_field: str | None) -> str:
    """Map a trigger error's field back to the key the user wrote."""
    inner = err_field or ""
    inner = inner.removeprefix("trigger.").removeprefix("trigger_kwargs.")
    if inner in ("start_date", "end_date", "timezone"):
        return f"recurrence.{inner}" if inner in source.recurrence else inner
    if source.shortcut or inner in ("", "trigger", "trigger_kwargs"):
        return source.key
    return f"{source.key}.{inner}"


def validate_trigger(
    spec: dict[str, Any],
    timezone: str,
    bounds: Mapping[str, datetime | None],
    *,
    now: datetime,
) -> dict[str, Any]:
    """Normalise ``spec`` (any accepted shape), proving it can fire; keep anchors as written.

    An interval/calendar trigger written without an anchor (and without a start_date) is
    returned without one: the facade anchors it at creation, and a reload is not a change.
    """
    from duetime.triggers.spec import build_trigger, normalize_spec

    start, end = bounds.get("start_date"), bounds.get("end_date")
    try:
        normalised = normalize_spec(spec, timezone=timezone, start_at=start)
        anchored = True
    except InvalidTriggerError as exc:
        if not (exc.field or "").endswith("anchor") or not exc.message.startswith("required"):
            raise
        normalised = normalize_spec(spec, timezone=timezone, start_at=start, now=now)
        anchored = False
    build_trigger(normalised, timezone, start_at=start, end_at=end)
    if not anchored:
        _drop_default_anchors(normalised, spec)
    return normalised


def _drop_default_anchors(normalised: dict[str, Any], written: Any) -> None:
    """Remove the anchors validation filled in where the user wrote none (and/or children too)."""
    if not isinstance(written, Mapping):
        return
    if "anchor" not in written:
        normalised.pop("anchor", None)
    children, written_children = normalised.get("triggers"), written.get("triggers")
    if isinstance(children, list) and isinstance(written_children, list):
        for child, written_child in zip(children, written_children, strict=False):
            if isinstance(child, dict):
                _drop_default_anchors(child, written_child)


# ------------------------------------------------------------------ the plan


def compute_plan(
    desired: Sequence[DesiredSchedule],
    existing: Iterable[Schedule],
    *,
    prune: bool = False,
    dry_run: bool = False,
) -> Plan:
    """Compare the desired schedules with the stored ones of the tenant (pure)."""
    stored = {s.name: s for s in existing if s.deleted_at is None}
    items = [_plan_one(item, stored.get(item.name)) for item in desired]
    if prune:
        wanted = {item.name for item in desired}
        items.extend(
            PlanItem("delete", s.name, schedule_id=s.id)
            for s in sorted(stored.values(), key=lambda s: s.name)
            if s.name not in wanted and s.source == Source.MANIFEST
        )
    return Plan(items, dry_run=dry_run)


def _plan_one(item: DesiredSchedule, current: Schedule | None) -> PlanItem:
    if current is None:
        return PlanItem("create", item.name, where=item.where, desired=item)
    changes = diff_fields(item.values, current)
    action: Action = "update" if changes else "unchanged"
    return PlanItem(action, item.name, changes, item.where, current.id, item)


def diff_fields(values: Mapping[str, Any], current: Schedule) -> tuple[FieldChange, ...]:
    """Return the fields whose desired value differs from the stored schedule's."""
    changes = []
    for name in COMPARED_FIELDS:
        if name not in values:
            continue
        old, new = getattr(current, name), values[name]
        same = _same_trigger(new, old) if name == "trigger" else _same(new, old)
        if not same:
            changes.append(FieldChange(name, _plain(old), new))
    return tuple(changes)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _same(new: Any, old: Any) -> bool:
    if isinstance(new, datetime) and isinstance(old, datetime):
        return new == old
    return bool(_plain(new) == _plain(old))


def _same_trigger(new: Any, old: Any) -> bool:
    if not isinstance(new, Mapping) or not isinstance(old, Mapping):
        return bool(new == old)
    for key in set(new) | set(old):
        if key in _TRIGGER_DERIVED_KEYS and key not in new:
            continue
        if key == "triggers" and isinstance(new.get(key), list):
            if not _same_children(new[key], old.get(key)):
                return False
        elif new.get(key) != old.get(key):
            return False
    return True


def _same_children(new: list[Any], old: Any) -> bool:
    if not isinstance(old, list) or len(old) != len(new):
        return False
    return all(_same_trigger(n, o) for n, o in zip(new, old, strict=True))


# ------------------------------------------------------------------ applying


def load_manifest(
    scheduler: Scheduler,
    sources: ManifestInput | Sequence[ManifestInput],
    *,
    prune: bool = False,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Plan:
    """Validate, plan and apply manifests through the facade, all in one transaction.

    A dry run applies the plan too — so job parameters, past one-off dates and every other
    check of the real path are made — and then rolls it back. Any problem raises
    :class:`ManifestError` and changes nothing. ``progress(done, total)`` is called as
    schedules are written.
    """
    with _gc_paused():
        desired = read_manifests(
            sources,
            now=scheduler.clock.now(),
            default_timezone=scheduler.settings.timezone,
            tenant=scheduler.tenant,
        )
        desired = _validated_parameters(scheduler, desired)
        return _plan_and_apply(scheduler, desired, prune, dry_run, progress)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause automatic garbage collection during a load.

    A big manifest allocates hundreds of thousands of long-lived, acyclic objects; the
    collector's repeated full scans of them made loading quadratic (100,000 YAML entries:
    13 s with collection, 2.5 s without).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _plan_and_apply(
    scheduler: Scheduler,
    desired: list[DesiredSchedule],
    prune: bool,
    dry_run: bool,
    progress: Callable[[int, int], None] | None,
) -> Plan:
    from duetime.store.manifest_ops import bulk_write, live_schedules

    with scheduler.store.read() as conn:  # an unchanged reload takes no write lock
        plan = compute_plan(desired, live_schedules(conn, scheduler.tenant), prune=prune)
    if not plan.has_changes:
        plan.dry_run, plan.applied = dry_run, not dry_run
        return plan
    with bulk_write(scheduler.store, rollback=dry_run) as bulk:  # re-read under the lock
        existing = bulk.live_schedules(scheduler.tenant)
        plan = compute_plan(desired, existing, prune=prune, dry_run=dry_run)
        if plan.has_changes:
            _apply(scheduler, plan, bulk, progress=progress)
    plan.applied = not dry_run
    return plan


def _validated_parameters(
    scheduler: Scheduler, desired: list[DesiredSchedule]
) -> list[DesiredSchedule]:
    """Validate parameters of known job types as the facade will (so ``"8"`` vs ``8.0`` is
    not a change on every reload); unknown job types are left to the facade."""
    problems: list[ManifestProblem] = []
    out: list[DesiredSchedule] = []
    for item in desired:
        job_type = scheduler.registry.find(item.values["job"])
        if job_type is None:
            out.append(item)
            continue
        try:
            params = job_type.validate(dict(item.values.get("parameters") or {}))
        except ValidationError as exc:
            where = f"schedules[{item.index}].{exc.field or 'parameters'}"
            problems.append(ManifestProblem(item.file, where, exc.message))
            continue
        item.values["parameters"] = params  # this load's own dict
        out.append(item)
    if problems:
        raise ManifestError.of(problems)
    return out


#: Schedules handled between two bulk writes (and progress reports).
_APPLY_CHUNK = 2000


def _apply(
    scheduler: Scheduler,
    plan: Plan,
    bulk: BulkStore,
    *,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Run the facade's add/update/delete for every item against ``bulk``, writing in chunks.

    The facade validates each item exactly as for a single call; ``bulk`` buffers the rows
    and changes and writes them with ``executemany``. Every problem is collected (nothing
    more is written after the first) and raised together, rolling the transaction back.
    """
    order: tuple[Action, ...] = ("delete", "update", "create")
    todo = [item for action in order for item in plan.of(action)]
    bulk.lock(str(item.schedule_id) for item in todo if item.action != "create")
    view = _view_on(scheduler, bulk)
    problems: list[ManifestProblem] = []
    for start in range(0, len(todo), _APPLY_CHUNK):
        chunk = todo[start : start + _APPLY_CHUNK]
        for item in chunk:
            _apply_item(view, item, problems)
        if problems:
            bulk.discard()
            continue
        bulk.flush()
        if progress is not None:
            for done in range(start + 1, start + len(chunk) + 1):
                progress(done, len(todo))
    if problems:
        raise ManifestError(problems[:MAX_PROBLEMS], omitted=max(0, len(problems) - MAX_PROBLEMS))


def _view_on(scheduler: Scheduler, store: Any) -> Scheduler:
    """A tenant view of ``scheduler`` whose store is ``store`` (one shared transaction)."""
    core = copy.copy(scheduler._core)
    core.store = store
    core.trigger_memo = {}  # schedules sharing a trigger (the common case) build it once
    return type(scheduler)._view(core, scheduler.tenant)


def _apply_item(view: Scheduler, item: PlanItem, problems: list[ManifestProblem]) -> None:
    try:
        if item.action == "delete":
            view.delete_schedule(str(item.schedule_id))
        elif item.action == "update":
            changes = {c.field: c.new for c in item.changes}
            view.update_schedule(str(item.schedule_id), **changes)
        elif item.action == "create" and item.desired is not None:
            _create(view, item.desired)
    except ValidationError as exc:
        desired = item.desired
        file = desired.file if desired else "<database>"
        prefix = f"schedules[{desired.index}]" if desired else item.name
        path = f"{prefix}.{exc.field}" if exc.field else prefix
        problems.append(ManifestProblem(file, path, exc.message))


def _create(view: Scheduler, desired: DesiredSchedule) -> None:
    explicit = desired.explicit
    values = {
        k: v
        for k, v in desired.values.items()
        if (k in explicit or k not in _FACADE_DEFAULTED)
        and not _is_default(k, v, SCHEDULE_DEFAULTS)
    }
    job, trigger, zone = values.pop("job"), values.pop("trigger"), values.pop("timezone")
    parameters = values.pop("parameters", None)
    view.add_schedule(
        desired.name,
        job,
        trigger,
        timezone=zone,
        parameters=parameters,
        source=Source.MANIFEST.value,
        **values,
    )


def _is_default(key: str, value: Any, defaults: Mapping[str, Any]) -> bool:
    """True when ``value`` is exactly the facade's default for ``key`` (same type and value).

    Such fields are left out of ``add_schedule``: it fills in the same default, so the row is
    identical and the (valid by definition) default is not validated 100,000 times.
    """
    if key not in defaults:
        return False
    default = defaults[key]
    return type(value) is type(default) and bool(value == default)


#: Fields a manifest leaves at the facade's own default unless it writes them (values of the
#: fields not in ``DesiredSchedule.explicit`` are ``FIELD_DEFAULTS``').
_FACADE_DEFAULTED = frozenset(
    k for k, v in FIELD_DEFAULTS.items() if _is_default(k, v, SCHEDULE_DEFAULTS)
)
