"""The facade: the one client the CLI, API and dashboard use (DESIGN §4 Python).

``Scheduler`` validates every input (errors are :class:`~duetime.errors.ValidationError`
subclasses naming the field), writes through :class:`~duetime.store.sqlalchemy.SQLAlchemyStore`
and drives an :class:`~duetime.engine.Engine` when asked to run jobs. ``AsyncScheduler`` is
the same surface with ``await``.

Trust: code and CLI callers are local operators and are trusted as ``*:admin`` (the creator
recorded for the ``duetime.shell`` rule) unless they pass ``created_by``; the API passes the
caller's ``<tenant>:<role>``.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import math
import signal
import threading
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import pydantic
import sqlalchemy as sa

from duetime.clock import Clock, OffsetClock, SystemClock
from duetime.config import Settings, load_settings
from duetime.errors import (
    ConfigurationError,
    ConflictError,
    InvalidParametersError,
    InvalidTriggerError,
    NotFoundError,
    UnknownJobError,
    UnknownTimezoneError,
    ValidationError,
)
from duetime.jobs.schema import MAX_JSON_DEPTH, json_depth
from duetime.models import (
    SCHEDULE_DEFAULTS,
    Overlap,
    Page,
    Run,
    RunKind,
    RunState,
    Schedule,
    ScheduleState,
    Source,
)
from duetime.store import rows
from duetime.store.sqlalchemy import (
    ALL_TENANTS,
    RunRequest,
    ScheduleChanges,
    SQLAlchemyStore,
    normalize_url,
)
from duetime.triggers import build_trigger, date_in_past_ok, normalize_spec
from duetime.triggers.base import Trigger
from duetime.triggers.tz import ensure_aware, get_zone

if TYPE_CHECKING:
    from duetime.keys import ApiKey, ApiKeyService, CreatedKey
    from duetime.manifest import Plan
    from duetime.webhooks import Webhook, WebhookService

T = TypeVar("T")

#: Names: 1–200 characters, no control characters, no leading/trailing spaces.
MAX_NAME_LENGTH = 200
#: Largest JSON encoding (bytes) of ``parameters`` and of ``labels``.
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_DESCRIPTION_LENGTH = 10_000
MAX_CHAIN_LENGTH = 50
MAX_NEXT_FIRE_COUNT = 1000
#: ``status()`` lists this many upcoming fires.
STATUS_NEXT_FIRES = 10
#: An instance counts as alive while its heartbeat is younger than this many heartbeats.
ALIVE_HEARTBEATS = 3
#: Who code and CLI callers are (trusted local operators).
TRUSTED_CREATOR = "*:admin"
EXECUTOR_NAMES = ("default", "process", "thread", "asyncio", "celery")
_PRIORITY_LIMIT = 1_000_000
_MAX_SECONDS = 366 * 24 * 3600.0  # backoff, grace and timeout bounds: one year
#: Retention ages beyond a century would reach before year 1 (OverflowError).
MAX_RETENTION_DAYS = 36_500.0

#: Built-in schedules of every database (tenant ``*``): (name, job, cron in UTC).
DEFAULT_SCHEDULES = (("duetime.cleanup_history", "duetime.cleanup_history", "30 3 * * *"),)
#: Fields nobody sets: the store computes them.
READ_ONLY_FIELDS = frozenset(
    {"id", "tenant", "state", "next_run_at", "last_run_at", "last_run_state", "version"}
    | {"created_at", "updated_at", "deleted_at", "created_by"}
)
#: Fields whose change recomputes ``next_run_at`` from now.
TIMING_FIELDS = frozenset({"trigger", "timezone", "start_date", "end_date"})


# ---------------------------------------------------------------- field validation


def check_name(value: object, field: str = "name") -> str:
    """Return a valid schedule (or tenant) name; ValidationError otherwise."""
    if not isinstance(value, str):
        raise ValidationError(f"must be a string, got {type(value).__name__}", field=field)
    if not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise ValidationError(f"must be 1–{MAX_NAME_LENGTH} characters long", field=field)
    if not value.isascii() or not value.isprintable():  # ASCII: printable ⇔ no Cc character
        _check_control_characters(value, field)
    if value != value.strip():
        raise ValidationError("must not start or end with whitespace", field=field)
    return value


def _check_control_characters(value: str, field: str) -> None:
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value):
        raise ValidationError("must not contain control characters", field=field)


def _bool(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"must be true or false, got {value!r}", field=field)
    return value


def _int(field: str, value: object, low: int, high: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"must be an integer, got {value!r}", field=field)
    if not low <= value <= high:
        raise ValidationError(f"must be from {low} to {high}, got {value}", field=field)
    return value


def _seconds(field: str, value: object, *, low: float = 0.0, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"must be a number of seconds, got {value!r}", field=field)
    number = float(value)
    too_low = number <= low if strict else number < low
    if not math.isfinite(number) or too_low or number > _MAX_SECONDS:
        bound = f"> {low:g}" if strict else f"≥ {low:g}"
        raise ValidationError(f"must be {bound} and ≤ {_MAX_SECONDS:.0f} seconds", field=field)
    return number


def _days(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"must be a number of days, got {value!r}", field=field)
    if not (math.isfinite(value) and 0 <= value <= MAX_RETENTION_DAYS):
        raise ValidationError(f"must be from 0 to {MAX_RETENTION_DAYS:g} days", field=field)
    return float(value)


def _json_object(field: str, value: object) -> dict[str, Any]:
    if type(value) is dict and not value:
        return {}  # the common case, exactly what the checks below return for it
    if not isinstance(value, Mapping):
        raise ValidationError(f"must be an object, got {type(value).__name__}", field=field)
    if json_depth(value) > MAX_JSON_DEPTH:
        raise ValidationError(f"nests deeper than {MAX_JSON_DEPTH} levels", field=field)
    try:
        encoded = json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"must be JSON: {exc}", field=field) from exc
    if len(encoded.encode()) > MAX_PAYLOAD_BYTES:
        raise ValidationError(f"is larger than {MAX_PAYLOAD_BYTES // 1024} KiB", field=field)
    result: dict[str, Any] = json.loads(encoded)
    return result


def _choice(field: str, value: object, choices: Iterable[str]) -> str:
    options = list(choices)
    if not isinstance(value, str) or value not in options:
        raise ValidationError(f"must be one of {', '.join(options)}; got {value!r}", field=field)
    return value


def _executor(field: str, value: object) -> str:
    if isinstance(value, str) and value.startswith("celery:") and len(value) > len("celery:"):
        queue = value.split(":", 1)[1]
        if queue.strip() == queue and queue.isprintable() and len(value) <= 64:
            return value
    return _choice(field, value, EXECUTOR_NAMES)


def _description(field: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION_LENGTH:
        raise ValidationError(
            f"must be a string of at most {MAX_DESCRIPTION_LENGTH} characters", field=field
        )
    if "\0" in value:
        raise ValidationError("must not contain NUL characters", field=field)
    return value


def _chain(field: str, value: object) -> list[str]:
    if not isinstance(value, list | tuple) or len(value) > MAX_CHAIN_LENGTH:
        raise ValidationError(
            f"must be a list of at most {MAX_CHAIN_LENGTH} schedule names", field=field
        )
    return [check_name(item, f"{field}.{index}") for index, item in enumerate(value)]


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda field, value: None if value is None else check(field, value)


_OVERLAPS = tuple(o.value for o in Overlap)
_SOURCES = tuple(s.value for s in Source)
_FIELD_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "description": _description,
    "enabled": _bool,
    "coalesce": _bool,
    "priority": lambda f, v: _int(f, v, -_PRIORITY_LIMIT, _PRIORITY_LIMIT),
    "max_instances": lambda f, v: _int(f, v, 1, 100),
    "max_attempts": _optional(lambda f, v: _int(f, v, 1, 1000)),
    "max_recoveries": lambda f, v: _int(f, v, 0, 100),
    "sla_seconds": lambda f, v: _int(f, v, 0, int(_MAX_SECONDS)),
    "misfire_grace_time": _optional(_seconds),
    "retry_backoff": _seconds,
    "timeout": _optional(lambda f, v: _seconds(f, v, strict=True)),
    "overlap": lambda f, v: _choice(f, v, _OVERLAPS),
    "source": lambda f, v: _choice(f, v, _SOURCES),
    "executor": _executor,
    "chain": _chain,
    "labels": _json_object,
}


def validate_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate plain §1 fields; unknown and read-only names are refused by name."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key in READ_ONLY_FIELDS:
            raise ValidationError("is read-only", field=key)
        check = _FIELD_CHECKS.get(key)
        if check is None:
            raise ValidationError("is not a schedule field", field=key)
        out[key] = check(key, value)
    return out


def _instant(field: str, value: object, zone: str) -> datetime | None:
    """Parse an optional datetime (ISO string or datetime); naive values are read in ``zone``."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValidationError(f"{value!r} is not an ISO 8601 datetime", field=field) from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time())  # a date means its midnight, like "2030-02-01"
    if not isinstance(value, datetime):
        raise ValidationError(f"must be a datetime, got {type(value).__name__}", field=field)
    try:
        return ensure_aware(value, get_zone(zone))
    except OverflowError:
        raise ValidationError(f"{value.isoformat()} is out of range", field=field) from None


def check_timezone(value: object) -> str:
    """Return a valid IANA zone name (UnknownTimezoneError, field ``timezone``)."""
    if not isinstance(value, str):
        raise UnknownTimezoneError(
            f"must be an IANA zone name, got {type(value).__name__}", field="timezone"
        )
    get_zone(value)
    return value


def check_creator(value: object) -> str:
    """Return a ``<tenant>:<role>`` creator string."""
    if not isinstance(value, str) or ":" not in value or len(value) > 64:
        raise ValidationError("must be '<tenant>:<role>' (e.g. '*:admin')", field="created_by")
    return value


# ---------------------------------------------------------------- trigger planning


def plan_trigger(
    spec: object,
    *,
    timezone: str,
    start_at: datetime | None,
    end_at: datetime | None,
    anchor_default: datetime,
    now: datetime,
    misfire_grace_time: float | None,
    memo: TriggerMemo | None = None,
) -> tuple[dict[str, Any], datetime]:
    """Return the normalised spec and the first fire after ``now``; refuse one that never fires.

    A one-off date in the past is accepted within ``misfire_grace_time`` (it fires at once).
    ``memo`` (bulk loads) reuses the trigger built for an identical spec, zone and window.
    """
    if not isinstance(spec, str | Mapping):
        raise InvalidTriggerError("must be a cron string or a trigger object", field="trigger")
    if start_at is not None and end_at is not None and end_at < start_at:
        raise InvalidTriggerError("must not be before start_date", field="end_date")
    anchor_at = start_at or anchor_default
    built = _built_trigger(spec, timezone, start_at, end_at, anchor_at, memo)
    normalized, trigger, first = built.normalized, built.trigger, built.next_fire_time(now)
    if first is not None:
        return normalized, first
    if normalized.get("type") == "date":
        return normalized, _past_date_fire(normalized, trigger, now, misfire_grace_time)
    if end_at is not None and end_at <= now:
        raise InvalidTriggerError("is in the past: the schedule would never fire", field="end_date")
    raise InvalidTriggerError("never fires after now", field="trigger")


@dataclass(slots=True)
class _BuiltTrigger:
    """A normalised spec, its trigger, and the last fire time asked of it (bulk loads)."""

    normalized: dict[str, Any]
    trigger: Trigger
    asked: datetime | None = None
    answer: datetime | None = None

    def next_fire_time(self, now: datetime) -> datetime | None:
        """``trigger.next_fire_time(now)``; the last answer while ``now`` has not reached it.

        A fire is the first one after ``asked``, so none lies in ``[asked, answer)``: for a
        ``now`` in there the first fire after it is ``answer`` again (schedules of one load
        are planned microseconds apart, the fire is usually hours away).
        """
        asked, answer = self.asked, self.answer
        if asked is not None and answer is not None and asked <= now < answer:
            return answer
        self.asked, self.answer = now, self.trigger.next_fire_time(now)
        return self.answer


#: Triggers built during one bulk load, by spec, zone and window.
TriggerMemo = dict[tuple[Any, ...], _BuiltTrigger]
#: Plain JSON scalars keyed as they are (floats are keyed by ``hex()``: -0.0 == 0.0).
_MEMO_SCALARS = frozenset({str, int, bool, type(None)})


def _built_trigger(
    spec: str | Mapping[str, Any],
    timezone: str,
    start_at: datetime | None,
    end_at: datetime | None,
    anchor_at: datetime,
    memo: TriggerMemo | None,
) -> _BuiltTrigger:
    """Normalise and build ``spec``; with ``memo``, an identical spec is built only once.

    Only specs whose normal form has no anchor (cron, date and their and/or) are kept: an
    anchor filled in from ``anchor_at`` (the creation time) differs per schedule. Schedules
    planned through one memo share the normalised dict: the bulk rows it goes into are only
    serialised.
    """
    key = _memo_key(spec, timezone, start_at, end_at) if memo is not None else None
    known = memo.get(key) if memo is not None and key is not None else None
    if known is not None:
        return known
    normalized = normalize_spec(spec, timezone=timezone, start_at=anchor_at, now=anchor_at)
    built = _BuiltTrigger(
        normalized, build_trigger(normalized, timezone, start_at=start_at, end_at=end_at)
    )
    if memo is not None and key is not None and not _has_anchor(normalized):
        memo[key] = built
    return built


def _memo_key(
    spec: object, timezone: str, start_at: datetime | None, end_at: datetime | None
) -> tuple[Any, ...] | None:
    """A hashable, type-exact key for a plain-JSON spec and its window; None otherwise."""
    try:
        return (_frozen(spec), timezone, repr(start_at), repr(end_at))
    except TypeError:
        return None


def _frozen(value: object) -> Any:
    if isinstance(value, dict):
        types = (*map(type, value), *map(type, value.values()))
        if _MEMO_SCALARS.issuperset(types):  # flat (the common case): one tuple, exact types
            return (dict, tuple(value.items()), types)
    if isinstance(value, Mapping):
        return (dict, tuple((_frozen(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return (type(value), tuple(_frozen(v) for v in value))
    if type(value) is float:
        return (float, value.hex())
    if type(value) in _MEMO_SCALARS:
        return (type(value), value)
    raise TypeError(f"not plain JSON: {type(value).__name__}")


def _has_anchor(value: object) -> bool:
    if isinstance(value, dict):
        return "anchor" in value or any(_has_anchor(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_anchor(v) for v in value)
    return False


def _past_date_fire(
    spec: Mapping[str, Any], trigger: Trigger, now: datetime, grace: float | None
) -> datetime:
    run_at = datetime.fromisoformat(spec["run_at"])
    in_window = trigger.next_fire_time(run_at - timedelta(microseconds=1)) == run_at
    if not in_window:
        raise InvalidTriggerError(
            "run_at lies outside start_date/end_date: it would never fire", field="trigger.run_at"
        )
    if not date_in_past_ok(run_at, now, grace):
        raise InvalidTriggerError(
            f"{run_at.isoformat()} is in the past by more than misfire_grace_time "
            f"({grace:g} s); pick a future time",
            field="trigger.run_at",
        )
    return run_at


def schedule_trigger(schedule: Schedule) -> Trigger:
    """Rebuild a stored schedule's trigger."""
    return build_trigger(
        schedule.trigger,
        schedule.timezone,
        start_at=schedule.start_date,
        end_at=schedule.end_date,
    )


def _state_for(enabled: bool, next_run_at: datetime | None) -> tuple[str, datetime | None]:
    if next_run_at is None:
        return ScheduleState.COMPLETED.value, None
    if not enabled:
        return ScheduleState.PAUSED.value, None
    return ScheduleState.ACTIVE.value, next_run_at


# ---------------------------------------------------------------- the shared core


class _Core:
    """What every tenant view of one Scheduler shares: settings, store, registry, engine."""

    #: Set on the copy a manifest load works through (see :func:`plan_trigger`).
    trigger_memo: TriggerMemo | None = None

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None,
        registry: Any,
        migrate: bool,
    ) -> None:
        from duetime.jobs.registry import default_registry, import_job_modules
        from duetime.store.migrate import upgrade_database

        self.settings = settings
        if migrate:
            upgrade_database(settings.database_url)
        import_job_modules(settings.jobs)
        self.registry = registry if registry is not None else default_registry
        self.clock: Clock = clock or _default_clock(settings.database_url)
        self.store = SQLAlchemyStore(settings.database_url, clock=self.clock)
        try:
            self.store.check_schema()
        except Exception:
            self.store.dispose()
            raise
        if clock is None:
            self._sample_clock()
        self.engine: Any = None
        #: Liveness of an engine this process supervises in a child process (``duetime run``).
        self.engine_process: Callable[[], bool] | None = None
        self.lock = threading.RLock()

    def _sample_clock(self) -> None:
        if self.store.dialect == "postgresql" and isinstance(self.clock, OffsetClock):
            offset = (self.store.db_now() - SystemClock().now()).total_seconds()
            self.clock.set_offset(offset)

    def new_engine(self) -> Any:
        """Build an engine (and its executor) for this database."""
        factory = importlib.import_module("duetime.executors.factory")
        engine_module = importlib.import_module("duetime.engine")
        executor = factory.create_executor(
            self.settings.executor,
            concurrency=self.settings.concurrency,
            registry=self.registry,
            jobs_modules=list(self.settings.jobs),
            clock=self.clock,
        )
        return engine_module.Engine(
            self.store,
            registry=self.registry,
            executor=executor,
            clock=self.clock,
            settings=self.settings,
            database_url_for_jobs=self.store.url,
        )

    def retire(self, engine: Any) -> None:
        """Release a temporary engine (run_pending): its workers, listener and instance row."""
        try:
            engine.executor.shutdown(self.settings.shutdown_grace_seconds)
        finally:
            self.store.remove_change_listener(engine.wake)
            self.store.stop_instance(engine.instance_id, self.clock.now())


def _default_clock(database_url: str) -> Clock:
    """SystemClock on SQLite; on PostgreSQL a clock corrected to the database's now()."""
    backend = sa.make_url(normalize_url(database_url)).get_backend_name()
    return OffsetClock() if backend == "postgresql" else SystemClock()


def _settings_from(settings: Settings | None, overrides: Mapping[str, Any]) -> Settings:
    """Resolve (and validate) settings; ConfigurationError names the offending setting."""
    clean = {key: value for key, value in overrides.items() if value is not None}
    try:
        if settings is None:
            resolved = load_settings(**clean)
        elif clean:  # model_copy(update=...) would skip validation
            resolved = type(settings).model_validate({**settings.model_dump(), **clean})
        else:
            resolved = settings
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ConfigurationError(f"invalid settings: {problems}") from None
    _check_engine_executor(resolved.executor)
    return resolved


def _check_engine_executor(name: str) -> None:
    """Refuse an instance executor no engine could build (celery is left to the engine)."""
    from duetime.executors.factory import EXECUTOR_NAMES as BUILDABLE

    kind = name.strip().lower()
    if kind not in BUILDABLE and kind.split(":", 1)[0] != "celery":
        raise ConfigurationError(
            f"executor: unknown executor {name!r}; choose one of: {', '.join(BUILDABLE)}"
        )


def _run_blocking(make: Callable[[], Any]) -> Any:
    """Run the coroutine ``make()`` to completion, even when called from a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="duetime-run-pending")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


# ---------------------------------------------------------------- the facade


class Scheduler:
    """Schedules, runs and the engine of one database, scoped to one tenant."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        timezone: str | None = None,
        concurrency: int | None = None,
        executor: str | None = None,
        jobs: Iterable[str] | None = None,
        tenant: str | None = None,
        clock: Clock | None = None,
        settings: Settings | None = None,
        registry: Any = None,
        migrate: bool = False,
    ) -> None:
        overrides = {
            "database_url": database_url,
            "timezone": timezone,
            "concurrency": concurrency,
            "executor": executor,
            "jobs": list(jobs) if jobs is not None else None,
            "tenant": tenant,
        }
        resolved = _settings_from(settings, overrides)
        check_timezone(resolved.timezone)
        self._core = _Core(resolved, clock, registry, migrate)
        self.tenant = check_name(resolved.tenant, "tenant")
        if migrate:
            self.ensure_default_schedules()

    @classmethod
    def _view(cls, core: _Core, tenant: str) -> Scheduler:
        view = cls.__new__(cls)
        view._core = core
        view.tenant = tenant
        return view

    def for_tenant(self, tenant: str) -> Scheduler:
        """Return a view of the same database scoped to ``tenant`` (``*`` = every tenant)."""
        return type(self)._view(self._core, check_name(tenant, "tenant"))

    # -- properties
    @property
    def store(self) -> SQLAlchemyStore:
        """The underlying store (for the engine, API and tests)."""
        return self._core.store

    @property
    def settings(self) -> Settings:
        """The resolved settings."""
        return self._core.settings

    @property
    def clock(self) -> Clock:
        """The clock every operation reads ``now`` from."""
        return self._core.clock

    @property
    def registry(self) -> Any:
        """The job registry used for validation and execution."""
        return self._core.registry

    def _now(self) -> datetime:
        return self._core.clock.now()

    # -- jobs
    def _check_job(self, job: object, parameters: object, *, by: str) -> tuple[str, dict[str, Any]]:
        """Return (job, validated parameters); the job must be registered or published."""
        if not isinstance(job, str) or not job or len(job) > MAX_NAME_LENGTH or "\0" in job:
            raise UnknownJobError("must be a job type name", field="job")
        params = _json_object("parameters", {} if parameters is None else parameters)
        if _shell_requires_admin(job) and by != TRUSTED_CREATOR:
            raise ValidationError(f"only an admin of tenant '*' may schedule {job!r}", field="job")
        job_type = self.registry.find(job)
        if job_type is not None:
            validated = job_type.validate(params)
        else:
            validated = self._validate_published(job, params)
        return job, _json_object("parameters", validated)

    def _validate_published(self, job: str, params: dict[str, Any]) -> dict[str, Any]:
        from duetime.jobs.registry import validate_against_schema

        published = self.store.job_type(job)
        if published is None:
            known = ", ".join(sorted(t.name for t in self.registry.all())) or "none"
            raise UnknownJobError(
                f"unknown job type {job!r} (registered here: {known}; none published by that "
                "name — add its module to DUETIME_JOBS)",
                field="job",
            )
        try:
            result: dict[str, Any] = validate_against_schema(published["parameter_schema"], params)
        except InvalidParametersError:
            raise
        return result

    def _settings_source(self, job: str) -> Any:
        found = self.registry.find(job)
        if found is not None:
            return found
        return self.store.job_type(job)

    def job_types(self) -> list[dict[str, Any]]:
        """Job types known here (registry) and published by engines, by name."""
        published = {row["name"]: row for row in self.store.job_types()}
        for job_type in self.registry.all():
            row = dict(job_type.publication())
            row.update(timeout=job_type.timeout, max_attempts=job_type.max_attempts)
            published[job_type.name] = {**published.get(job_type.name, {}), **row}
        return [published[name] for name in sorted(published)]

    def publish_job_types(self, *, published_by: str | None = None) -> int:
        """Publish this process's job types to ``duetime_job_types``."""
        return self.store.publish_job_types(self.registry.all(), published_by=published_by)

    # -- schedules
    def add_schedule(
        self,
        name: str,
        job: str,
        trigger: str | Mapping[str, Any],
        *,
        timezone: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        created_by: str = TRUSTED_CREATOR,
        **fields: Any,
    ) -> Schedule:
        """Validate and create a schedule; ConflictError when the name is taken."""
        if self.tenant == ALL_TENANTS:
            raise ValidationError("pick a concrete tenant to create schedules in", field="tenant")
        return self._create(
            self.tenant, name, job, trigger, timezone, parameters, created_by, fields
        )

    def _create(
        self,
        tenant: str,
        name: str,
        job: str,
        trigger: str | Mapping[str, Any],
        timezone: str | None,
        parameters: Mapping[str, Any] | None,
        created_by: str,
        fields: dict[str, Any],
    ) -> Schedule:
        now = self._now()
        zone = check_timezone(timezone if timezone is not None else self.settings.timezone)
        start_at = _instant("start_date", fields.pop("start_date", None), zone)
        end_at = _instant("end_date", fields.pop("end_date", None), zone)
        record = {**SCHEDULE_DEFAULTS, **validate_fields(fields)}
        name = check_name(name)
        creator = check_creator(created_by)
        job, params = self._check_job(job, parameters, by=creator)
        _check_chain_target(record["chain"], name)
        spec, first = plan_trigger(
            trigger,
            timezone=zone,
            start_at=start_at,
            end_at=end_at,
            anchor_default=now,
            now=now,
            misfire_grace_time=record["misfire_grace_time"],
            memo=self._core.trigger_memo,
        )
        state, next_run_at = _state_for(record["enabled"], first)
        record.update(
            name=name,
            job=job,
            parameters=params,
            trigger=spec,
            timezone=zone,
            start_date=start_at,
            end_date=end_at,
            state=state,
            next_run_at=next_run_at,
            created_by=creator,
        )
        return self.store.create_schedule(_new_schedule_row(record, tenant, now))

    def ensure_default_schedules(self) -> list[Schedule]:
        """Create the built-in schedules (daily retention) unless they exist or were deleted.

        They belong to tenant ``*`` (they span every tenant; only ``*`` admins see them).
        Idempotent; an operator's pause, edit or delete is kept.
        """
        created: list[Schedule] = []
        for name, job, trigger in DEFAULT_SCHEDULES:
            if self.store.schedule_name_used(ALL_TENANTS, name):
                continue
            try:
                created.append(
                    self._create(ALL_TENANTS, name, job, trigger, "UTC", {}, TRUSTED_CREATOR, {})
                )
            except ConflictError:
                continue  # another process created it meanwhile
        return created

    def get_schedule(self, name_or_id: str) -> Schedule:
        """Return a live schedule by name or id (NotFoundError otherwise)."""
        return self.store.get_schedule(self.tenant, name_or_id)

    def list_schedules(
        self,
        *,
        state: str | None = None,
        job: str | None = None,
        enabled: bool | None = None,
        name_prefix: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Schedule]:
        """Return live schedules, oldest first; pass ``next_cursor`` back for the next page.

        ``since``/``until`` keep schedules created in [since, until).
        """
        _check_window(since, until)
        if state is not None:
            state = _choice("state", state, [s.value for s in ScheduleState])
        if enabled is not None:
            enabled = _bool("enabled", enabled)
        return self.store.list_schedules(
            self.tenant,
            state=state,
            job=job,
            enabled=enabled,
            name_prefix=name_prefix,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )

    def update_schedule(
        self,
        name_or_id: str,
        *,
        expected_version: int | None = None,
        edited_by: str = TRUSTED_CREATOR,
        **changes: Any,
    ) -> Schedule:
        """Validate and apply ``changes``; timing edits recompute ``next_run_at`` from now."""
        expected_version = _version(expected_version)
        editor = check_creator(edited_by)
        now = self._now()
        return self.store.modify_schedule(
            self.tenant,
            name_or_id,
            lambda current: self._edit(current, changes, now, editor),
            expected_version=expected_version,
        )

    def _edit(
        self, current: Schedule, changes: Mapping[str, Any], now: datetime, editor: str
    ) -> ScheduleChanges | None:
        changes = dict(changes)
        if "source" in changes:
            raise ValidationError(
                "is read-only: it records who created the schedule", field="source"
            )
        values: dict[str, Any] = {}
        if "name" in changes:
            values["name"] = check_name(changes.pop("name"))
        if "timezone" in changes:
            values["timezone"] = check_timezone(changes.pop("timezone"))
        zone = values.get("timezone", current.timezone)
        for key in ("start_date", "end_date"):
            if key in changes:
                values[key] = _instant(key, changes.pop(key), zone)
        trigger = changes.pop("trigger", None)
        job = changes.pop("job", None)
        parameters = changes.pop("parameters", None)
        values.update(validate_fields(changes))
        if job is not None or parameters is not None or _shell_requires_admin(current.job):
            values["job"], values["parameters"] = self._check_job(
                job if job is not None else current.job,
                parameters if parameters is not None else current.parameters,
                by=editor,
            )
        if trigger is not None:
            values["trigger"] = trigger
        merged = {**current.to_dict(), **values}
        _check_chain_target(merged["chain"], merged["name"])
        return _timing_changes(current, merged, values, now)

    def delete_schedule(self, name_or_id: str, *, expected_version: int | None = None) -> Schedule:
        """Soft-delete: the name becomes reusable, pending runs are cancelled, history stays.

        With ``expected_version`` a schedule at another version is left alone
        (VersionMismatchError), judged in the same transaction as the delete.
        """
        now = self._now()
        return self.store.modify_schedule(
            self.tenant,
            name_or_id,
            lambda _current: ScheduleChanges(
                {"deleted_at": now, "next_run_at": None}, cancel_pending=True
            ),
            expected_version=_version(expected_version),
        )

    def pause(self, name_or_id: str, *, expected_version: int | None = None) -> Schedule:
        """Stop firing; pending runs are cancelled, running ones finish (see delete_schedule)."""
        return self.store.modify_schedule(
            self.tenant, name_or_id, _pause_changes, expected_version=_version(expected_version)
        )

    def resume(self, name_or_id: str, *, expected_version: int | None = None) -> Schedule:
        """Fire again from the next fire after now (an interval keeps its grid; no burst)."""
        now = self._now()
        return self.store.modify_schedule(
            self.tenant,
            name_or_id,
            lambda current: _resume_changes(current, now),
            expected_version=_version(expected_version),
        )

    def next_fire_times(self, name_or_id: str, count: int = 5) -> list[datetime]:
        """Return the schedule's next ``count`` fires after now (UTC)."""
        count = _int("count", count, 1, MAX_NEXT_FIRE_COUNT)
        trigger = schedule_trigger(self.get_schedule(name_or_id))
        fires: list[datetime] = []
        after = self._now()
        while len(fires) < count:
            fire = trigger.next_fire_time(after)
            if fire is None:
                break
            fires.append(fire)
            after = fire
        return fires

    def recalculate_next_runs(self) -> int:
        """Recompute ``next_run_at`` of every active schedule (not yet due ones); return changes."""
        changed = 0
        page = self.store.active_schedules(self.tenant)
        while page:
            for schedule in page:
                change = functools.partial(_recalculated, now=self._now())
                try:
                    updated = self.store.modify_schedule(schedule.tenant, schedule.id, change)
                except NotFoundError:
                    continue  # deleted meanwhile
                moved = (updated.next_run_at, updated.state) != (
                    schedule.next_run_at,
                    schedule.state,
                )
                changed += moved
            page = self.store.active_schedules(self.tenant, after_id=page[-1].id)
        return changed

    # -- runs
    def trigger(
        self,
        name_or_id: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        triggered_by: str = TRUSTED_CREATOR,
        expected_version: int | None = None,
    ) -> Run:
        """Create a ``manual`` run available now (works on a paused schedule).

        Overriding parameters of a privileged job (``duetime.shell``) needs the same
        ``*:admin`` caller that creating it does. With ``expected_version`` the run is
        created only while the schedule is at that version (VersionMismatchError otherwise),
        checked in the transaction that inserts the run.
        """
        request = self.prepare_trigger(
            name_or_id, parameters, triggered_by=triggered_by, expected_version=expected_version
        )
        (result,) = self.commit_triggers([request])
        if isinstance(result, Exception):
            raise result
        return result

    def prepare_trigger(
        self,
        name_or_id: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        triggered_by: str = TRUSTED_CREATOR,
        expected_version: int | None = None,
    ) -> RunRequest:
        """A run-now request of :meth:`trigger` for :meth:`commit_triggers` (not yet run).

        The schedule is read, checked and the parameters validated only when it commits.
        """
        expected_version = _version(expected_version)

        def build(schedule: Schedule) -> dict[str, Any]:
            params = dict(schedule.parameters)
            if parameters is not None:
                params.update(_json_object("parameters", parameters))
                by = check_creator(triggered_by)
                _job, params = self._check_job(schedule.job, params, by=by)
            return self._new_run_values(schedule, RunKind.MANUAL, params)

        return RunRequest(self.tenant, name_or_id, build, expected_version)

    def commit_triggers(self, requests: Sequence[RunRequest]) -> list[Run | Exception]:
        """Create the runs of several :meth:`prepare_trigger` requests in one transaction.

        Returns each request's run or the error that refused it (the others still commit):
        concurrent run-now requests share one write and one commit (group commit).
        """
        return self.store.insert_schedule_runs(requests)

    def _new_run_values(
        self, schedule: Schedule, kind: RunKind, parameters: Mapping[str, Any], **extra: Any
    ) -> dict[str, Any]:
        """The row of a run of ``schedule`` available now (settings resolved and snapshotted)."""
        now = self._now()
        resolved = rows.resolve_run_settings(schedule, self._settings_source(schedule.job))
        return rows.new_run_values(
            schedule=schedule,
            tenant=schedule.tenant,
            job=schedule.job,
            parameters=parameters,
            kind=kind,
            scheduled_for=now,
            available_at=now,
            now=now,
            max_attempts=resolved["max_attempts"],
            timeout=resolved["timeout"],
            priority=schedule.priority,
            executor=schedule.executor,
            max_recoveries=schedule.max_recoveries,
            retry_backoff=schedule.retry_backoff,
            **extra,
        )

    def rerun(self, run_id: str) -> Run:
        """Run a finished run again (kind ``rerun``, ``parent_run_id`` set)."""
        original = self.get_run(run_id)
        if not original.state.is_terminal:
            raise ConflictError(f"run {run_id} is still {original.state}; cancel it first")
        if original.schedule_id is None:
            raise ConflictError(f"run {run_id} has no schedule to run again")
        schedule = self.store.get_schedule(self.tenant, original.schedule_id, include_deleted=True)
        if schedule.deleted_at is not None:
            raise ConflictError(f"schedule {schedule.name!r} of run {run_id} was deleted")
        values = self._new_run_values(
            schedule, RunKind.RERUN, original.parameters, parent_run_id=original.id
        )
        return self.store.insert_run(values)

    def cancel(self, run_id: str) -> Run:
        """Cancel a pending run, or ask the engine to stop a running one."""
        return self.store.request_cancel(self.tenant, run_id)

    def get_run(self, run_id: str) -> Run:
        """Return a run by id (NotFoundError otherwise)."""
        return self.store.get_run(self.tenant, run_id)

    def get_runs(
        self,
        schedule: str | None = None,
        state: str | Iterable[str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
        *,
        job: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[Run]:
        """Return runs, newest first, optionally of one schedule (name or id), job and state(s).

        ``since``/``until`` keep runs created in [since, until).
        """
        schedule_id = None
        if schedule is not None:
            schedule_id = self.store.get_schedule(self.tenant, schedule, include_deleted=True).id
        states = None
        if state is not None:
            given = [state] if isinstance(state, str) else list(state)
            states = [_choice("state", s, [r.value for r in RunState]) for s in given]
        _check_window(since, until)
        return self.store.list_runs(
            self.tenant,
            schedule_id=schedule_id,
            states=states,
            job=job,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )

    # -- operations
    def status(self) -> dict[str, Any]:
        """Instances with heartbeats, schedules by state, queue, running, upcoming, failures."""
        now = self._now()
        counts = self.store.status_counts(self.tenant, now=now, next_count=STATUS_NEXT_FIRES)
        alive_after = now - timedelta(seconds=ALIVE_HEARTBEATS * self.settings.heartbeat_seconds)
        instances = self.store.list_instances(since=now - timedelta(days=1))
        for instance in instances:
            instance["alive"] = (
                instance["stopped_at"] is None and instance["heartbeat_at"] >= alive_after
            )
        recent = counts["last_24h"]
        failures = recent.get(RunState.FAILED.value, 0) + recent.get(RunState.TIMED_OUT.value, 0)
        return {
            "tenant": self.tenant,
            "now": now,
            "instances": instances,
            **counts,
            "failures_24h": failures,
            "engine_running": self.engine_running,
        }

    def cleanup_history(
        self, older_than_days: float | None = None, keep_last: int | None = None
    ) -> int:
        """Delete this tenant's finished runs past retention (``*`` view: every tenant).

        The last ``keep_last`` finished runs of each live schedule are always kept.
        """
        days = self.settings.history_retention_days if older_than_days is None else older_than_days
        keep = self.settings.history_keep_last if keep_last is None else keep_last
        days = _days("older_than_days", days)
        keep = _int("keep_last", keep, 0, 1_000_000)
        return self.store.cleanup_history(
            now=self._now(), older_than_days=days, keep_last=keep, tenant=self.tenant
        )

    def check_schedules(self) -> list[Run]:
        """Fire every due schedule now (DESIGN §3.1 step 1) and wake a running engine."""
        claims = importlib.import_module("duetime.store.claims")
        created: list[Run] = claims.fire_due(
            self.store,
            now=self._now(),
            lookahead_seconds=self.settings.lookahead_seconds,
            registry=self.registry,
        )
        self._wake()
        return created

    def _wake(self) -> None:
        engine = self._core.engine
        if engine is not None:
            engine.wake()

    # -- manifests, API keys, webhooks
    def load_manifest(
        self, path_or_data: Any, *, prune: bool = False, dry_run: bool = False
    ) -> Plan:
        """Upsert the schedules of manifest file(s) or data in one transaction; return the Plan."""
        from duetime.manifest import load_manifest

        return load_manifest(self, path_or_data, prune=prune, dry_run=dry_run)

    def _keys(self) -> ApiKeyService:
        from duetime.keys import ApiKeyService

        return ApiKeyService(self.store)

    def _webhooks(self) -> WebhookService:
        from duetime.webhooks import WebhookService

        return WebhookService(self.store)

    def _scope(self) -> str | None:
        """This view's tenant for key/webhook queries (None = every tenant)."""
        return None if self.tenant == ALL_TENANTS else self.tenant

    def create_api_key(self, role: str, *, name: str | None = None) -> CreatedKey:
        """Create an API key of this tenant; the secret is in the result only."""
        return self._keys().create(self.tenant, role, name=name)

    def list_api_keys(self, *, include_revoked: bool = False) -> list[ApiKey]:
        """API keys of this tenant (``*`` view: every tenant's)."""
        return self._keys().list(self._scope(), include_revoked=include_revoked)

    def revoke_api_key(self, ref: str) -> ApiKey:
        """Revoke this tenant's key by id or shown prefix (NotFoundError otherwise)."""
        return self._keys().revoke(ref, tenant=self._scope())

    def create_webhook(
        self,
        url: str,
        events: list[str],
        *,
        description: str | None = None,
        enabled: bool = True,
    ) -> Webhook:
        """Subscribe ``url`` to ``events`` in this tenant; the result carries the secret."""
        if self.tenant == ALL_TENANTS:
            raise ValidationError("pick a concrete tenant to create webhooks in", field="tenant")
        return self._webhooks().create(
            self.tenant, url, events, description=description, enabled=enabled
        )

    def list_webhooks(self) -> list[Webhook]:
        """Webhooks of this tenant, oldest first."""
        return self._webhooks().list(self._scope())

    def get_webhook(self, webhook_id: str) -> Webhook:
        """One webhook of this tenant (NotFoundError otherwise)."""
        return self._webhooks().get(self._scope(), webhook_id)

    def update_webhook(
        self, webhook_id: str, *, expected_version: int | None = None, **changes: Any
    ) -> Webhook:
        """Edit url/events/description/enabled (VersionMismatchError when stale)."""
        return self._webhooks().update(
            self._scope(), webhook_id, changes, expected_version=expected_version
        )

    def delete_webhook(self, webhook_id: str) -> None:
        """Remove one of this tenant's webhooks."""
        self._webhooks().delete(self._scope(), webhook_id)

    # -- engine
    @property
    def engine_running(self) -> bool:
        """True while an engine started by :meth:`start` runs in this process, or one this
        process supervises (:meth:`attach_engine_process`) is alive."""
        probe = self._core.engine_process
        return self._core.engine is not None or (probe is not None and probe())

    def attach_engine_process(self, alive: Callable[[], bool] | None) -> None:
        """Report the engine a supervising process (``duetime run``) keeps in a child.

        ``alive`` tells whether that engine is up; while it is, :meth:`run_pending` only fires
        (the child starts the runs). None detaches it.
        """
        self._core.engine_process = alive

    def run_pending(self) -> list[Run]:
        """Fire due schedules; without a running engine also run due runs and wait for them."""
        if self.engine_running:
            return self.check_schedules()
        engine = self._core.new_engine()
        try:
            runs: list[Run] = _run_blocking(engine.run_pending)
        finally:
            self._core.retire(engine)
        return runs

    def start(self) -> None:
        """Start the engine in a background thread (idempotent)."""
        with self._core.lock:
            if self._core.engine is not None:
                return
            engine = self._core.new_engine()
            engine.start_background()
            self._core.engine = engine

    def stop(self, wait: bool = True) -> None:
        """Stop the background engine (gracefully when ``wait``)."""
        with self._core.lock:
            engine, self._core.engine = self._core.engine, None
        if engine is not None:
            engine.stop(wait=wait)
            self.store.remove_change_listener(engine.wake)

    def run_forever(self) -> None:
        """Run the engine in this thread until SIGTERM/SIGINT."""
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        handled = threading.current_thread() is threading.main_thread()
        previous = {sig: signal.getsignal(sig) for sig in signals} if handled else {}
        for sig in previous:
            loop.add_signal_handler(sig, stop.set)
        try:
            engine = self._core.new_engine()
            with self._core.lock:
                self._core.engine = engine
            try:
                await engine.run(stop)
            finally:
                with self._core.lock:
                    self._core.engine = None
                self.store.remove_change_listener(engine.wake)
        finally:
            for sig, handler in previous.items():  # the caller's loop may live on: give back
                loop.remove_signal_handler(sig)
                if handler is not None:
                    signal.signal(sig, handler)

    def close(self) -> None:
        """Stop the engine (if any) and release database connections."""
        self.stop()
        self.store.dispose()

    def __enter__(self) -> Scheduler:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ---------------------------------------------------------------- schedule changes


def _shell_requires_admin(job: str) -> bool:
    from duetime.jobs.builtins import shell_requires_admin

    return shell_requires_admin(job)


def _new_schedule_row(record: Mapping[str, Any], tenant: str, now: datetime) -> dict[str, Any]:
    """Add the bookkeeping columns of a brand-new schedule to validated ``record``."""
    return {
        **record,
        "id": str(uuid.uuid4()),
        "tenant": tenant,
        "last_run_at": None,
        "last_run_state": None,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "deleted_at": None,
    }


def _check_chain_target(chain: list[str], name: str) -> None:
    if name in chain:
        raise ValidationError("a schedule cannot chain to itself", field="chain")


def _timing_changes(
    current: Schedule, merged: Mapping[str, Any], values: dict[str, Any], now: datetime
) -> ScheduleChanges | None:
    """Recompute timing when a timing field or ``enabled`` changed; drop unchanged values."""
    anchor_default = current.created_at or now
    timing = _timing_changed(current, merged, values, anchor_default)
    first: datetime | None = None
    if timing:
        values["trigger"], first = plan_trigger(
            values.get("trigger", current.trigger),
            timezone=merged["timezone"],
            start_at=merged["start_date"],
            end_at=merged["end_date"],
            anchor_default=anchor_default,
            now=now,
            misfire_grace_time=merged["misfire_grace_time"],
        )
    enabled = merged["enabled"]
    if timing or enabled != current.enabled:
        if not timing:
            first = schedule_trigger(current).next_fire_time(now)
        values["state"], values["next_run_at"] = _state_for(enabled, first)
    cancel = current.enabled and not enabled
    current_values = current.to_dict()
    diff = {k: v for k, v in values.items() if current_values.get(k) != v}
    return ScheduleChanges(diff, cancel_pending=cancel) if diff else None


def _timing_changed(
    current: Schedule, merged: Mapping[str, Any], values: dict[str, Any], anchor: datetime
) -> bool:
    """True when the edit really changes the trigger, zone or window (``values`` normalised).

    Re-sending an unchanged trigger (a manifest reload) must not move ``next_run_at``.
    """
    if not any(key in values for key in TIMING_FIELDS):
        return False
    if "trigger" in values:
        spec = values["trigger"]
        if not isinstance(spec, str | Mapping):
            raise InvalidTriggerError("must be a cron string or a trigger object", field="trigger")
        start = merged["start_date"] or anchor
        values["trigger"] = normalize_spec(
            spec, timezone=merged["timezone"], start_at=start, now=start
        )
    return any(
        values.get(key, getattr(current, key)) != getattr(current, key) for key in TIMING_FIELDS
    )


def _version(expected_version: object) -> int | None:
    """Validate an optional ``expected_version`` (a positive integer)."""
    if expected_version is None:
        return None
    return _int("expected_version", expected_version, 1, 2**31 - 1)


def _check_window(since: object, until: object) -> None:
    """``since``/``until`` must be tz-aware datetimes (either may be None)."""
    for field, value in (("since", since), ("until", until)):
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            raise ValidationError("must be a tz-aware datetime", field=field)


def _pause_changes(current: Schedule) -> ScheduleChanges | None:
    if not current.enabled:
        return None
    state = current.state
    if state == ScheduleState.ACTIVE:
        state = ScheduleState.PAUSED
    return ScheduleChanges(
        {"enabled": False, "state": state.value, "next_run_at": None}, cancel_pending=True
    )


def _resume_changes(current: Schedule, now: datetime) -> ScheduleChanges | None:
    if current.enabled and current.state != ScheduleState.PAUSED:
        return None
    state, next_run_at = _state_for(True, schedule_trigger(current).next_fire_time(now))
    return ScheduleChanges({"enabled": True, "state": state, "next_run_at": next_run_at})


def _recalculated(current: Schedule, now: datetime) -> ScheduleChanges | None:
    if current.state != ScheduleState.ACTIVE or (
        current.next_run_at is not None and current.next_run_at <= now
    ):
        return None  # paused meanwhile, or due: the fire step owns it
    state, next_run_at = _state_for(True, schedule_trigger(current).next_fire_time(now))
    if next_run_at == current.next_run_at and state == current.state.value:
        return None
    return ScheduleChanges({"state": state, "next_run_at": next_run_at}, bump_version=False)


# ---------------------------------------------------------------- async facade


class AsyncScheduler:
    """The :class:`Scheduler` surface with ``await`` (blocking calls run in a thread)."""

    def __init__(self, database_url: str | None = None, **kwargs: Any) -> None:
        self._sync = Scheduler(database_url, **kwargs)

    @classmethod
    def wrap(cls, scheduler: Scheduler) -> AsyncScheduler:
        """Return an async facade over an existing Scheduler (or tenant view)."""
        view = cls.__new__(cls)
        view._sync = scheduler
        return view

    @property
    def sync(self) -> Scheduler:
        """The wrapped synchronous facade."""
        return self._sync

    @property
    def tenant(self) -> str:
        """The tenant this view is scoped to."""
        return self._sync.tenant

    def attach_engine_process(self, alive: Callable[[], bool] | None) -> None:
        """See :meth:`Scheduler.attach_engine_process` (a plain setter, nothing to await)."""
        self._sync.attach_engine_process(alive)

    def for_tenant(self, tenant: str) -> AsyncScheduler:
        """Return a view scoped to ``tenant``."""
        return AsyncScheduler.wrap(self._sync.for_tenant(tenant))

    @property
    def engine_running(self) -> bool:
        """True while an engine started by :meth:`start` runs in this process."""
        return self._sync.engine_running

    async def publish_job_types(self, *, published_by: str | None = None) -> int:
        """See :meth:`Scheduler.publish_job_types`."""
        return await self._call(self._sync.publish_job_types, published_by=published_by)

    async def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(method, *args, **kwargs)

    async def add_schedule(self, *args: Any, **kwargs: Any) -> Schedule:
        """See :meth:`Scheduler.add_schedule`."""
        return await self._call(self._sync.add_schedule, *args, **kwargs)

    async def update_schedule(self, *args: Any, **kwargs: Any) -> Schedule:
        """See :meth:`Scheduler.update_schedule`."""
        return await self._call(self._sync.update_schedule, *args, **kwargs)

    async def delete_schedule(
        self, name_or_id: str, *, expected_version: int | None = None
    ) -> Schedule:
        """See :meth:`Scheduler.delete_schedule`."""
        return await self._call(
            self._sync.delete_schedule, name_or_id, expected_version=expected_version
        )

    async def pause(self, name_or_id: str, *, expected_version: int | None = None) -> Schedule:
        """See :meth:`Scheduler.pause`."""
        return await self._call(self._sync.pause, name_or_id, expected_version=expected_version)

    async def resume(self, name_or_id: str, *, expected_version: int | None = None) -> Schedule:
        """See :meth:`Scheduler.resume`."""
        return await self._call(self._sync.resume, name_or_id, expected_version=expected_version)

    async def get_schedule(self, name_or_id: str) -> Schedule:
        """See :meth:`Scheduler.get_schedule`."""
        return await self._call(self._sync.get_schedule, name_or_id)

    async def list_schedules(self, **kwargs: Any) -> Page[Schedule]:
        """See :meth:`Scheduler.list_schedules`."""
        return await self._call(self._sync.list_schedules, **kwargs)

    async def trigger(
        self,
        name_or_id: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        triggered_by: str = TRUSTED_CREATOR,
        expected_version: int | None = None,
    ) -> Run:
        """See :meth:`Scheduler.trigger`."""
        return await self._call(
            self._sync.trigger,
            name_or_id,
            parameters,
            triggered_by=triggered_by,
            expected_version=expected_version,
        )

    def prepare_trigger(
        self,
        name_or_id: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        triggered_by: str = TRUSTED_CREATOR,
        expected_version: int | None = None,
    ) -> RunRequest:
        """See :meth:`Scheduler.prepare_trigger` (no I/O: not awaited)."""
        return self._sync.prepare_trigger(
            name_or_id, parameters, triggered_by=triggered_by, expected_version=expected_version
        )

    async def commit_triggers(self, requests: Sequence[RunRequest]) -> list[Run | Exception]:
        """See :meth:`Scheduler.commit_triggers`."""
        return await self._call(self._sync.commit_triggers, requests)

    async def rerun(self, run_id: str) -> Run:
        """See :meth:`Scheduler.rerun`."""
        return await self._call(self._sync.rerun, run_id)

    async def cancel(self, run_id: str) -> Run:
        """See :meth:`Scheduler.cancel`."""
        return await self._call(self._sync.cancel, run_id)

    async def get_run(self, run_id: str) -> Run:
        """See :meth:`Scheduler.get_run`."""
        return await self._call(self._sync.get_run, run_id)

    async def get_runs(self, *args: Any, **kwargs: Any) -> Page[Run]:
        """See :meth:`Scheduler.get_runs`."""
        return await self._call(self._sync.get_runs, *args, **kwargs)

    async def next_fire_times(self, name_or_id: str, count: int = 5) -> list[datetime]:
        """See :meth:`Scheduler.next_fire_times`."""
        return await self._call(self._sync.next_fire_times, name_or_id, count)

    async def status(self) -> dict[str, Any]:
        """See :meth:`Scheduler.status`."""
        return await self._call(self._sync.status)

    async def job_types(self) -> list[dict[str, Any]]:
        """See :meth:`Scheduler.job_types`."""
        return await self._call(self._sync.job_types)

    async def cleanup_history(
        self, older_than_days: float | None = None, keep_last: int | None = None
    ) -> int:
        """See :meth:`Scheduler.cleanup_history`."""
        return await self._call(self._sync.cleanup_history, older_than_days, keep_last)

    async def recalculate_next_runs(self) -> int:
        """See :meth:`Scheduler.recalculate_next_runs`."""
        return await self._call(self._sync.recalculate_next_runs)

    async def check_schedules(self) -> list[Run]:
        """See :meth:`Scheduler.check_schedules`."""
        return await self._call(self._sync.check_schedules)

    async def run_pending(self) -> list[Run]:
        """See :meth:`Scheduler.run_pending` (runs on this event loop when no engine runs)."""
        if self._sync.engine_running:
            return await self.check_schedules()
        core = self._sync._core
        engine = core.new_engine()
        try:
            runs: list[Run] = await engine.run_pending()
        finally:
            await asyncio.to_thread(core.retire, engine)
        return runs

    async def ensure_default_schedules(self) -> list[Schedule]:
        """See :meth:`Scheduler.ensure_default_schedules`."""
        return await self._call(self._sync.ensure_default_schedules)

    async def load_manifest(
        self, path_or_data: Any, *, prune: bool = False, dry_run: bool = False
    ) -> Plan:
        """See :meth:`Scheduler.load_manifest`."""
        return await self._call(
            self._sync.load_manifest, path_or_data, prune=prune, dry_run=dry_run
        )

    async def create_api_key(self, role: str, *, name: str | None = None) -> CreatedKey:
        """See :meth:`Scheduler.create_api_key`."""
        return await self._call(self._sync.create_api_key, role, name=name)

    async def list_api_keys(self, *, include_revoked: bool = False) -> list[ApiKey]:
        """See :meth:`Scheduler.list_api_keys`."""
        return await self._call(self._sync.list_api_keys, include_revoked=include_revoked)

    async def revoke_api_key(self, ref: str) -> ApiKey:
        """See :meth:`Scheduler.revoke_api_key`."""
        return await self._call(self._sync.revoke_api_key, ref)

    async def create_webhook(self, url: str, events: list[str], **kwargs: Any) -> Webhook:
        """See :meth:`Scheduler.create_webhook`."""
        return await self._call(self._sync.create_webhook, url, events, **kwargs)

    async def list_webhooks(self) -> list[Webhook]:
        """See :meth:`Scheduler.list_webhooks`."""
        return await self._call(self._sync.list_webhooks)

    async def get_webhook(self, webhook_id: str) -> Webhook:
        """See :meth:`Scheduler.get_webhook`."""
        return await self._call(self._sync.get_webhook, webhook_id)

    async def update_webhook(self, webhook_id: str, **kwargs: Any) -> Webhook:
        """See :meth:`Scheduler.update_webhook`."""
        return await self._call(self._sync.update_webhook, webhook_id, **kwargs)

    async def delete_webhook(self, webhook_id: str) -> None:
        """See :meth:`Scheduler.delete_webhook`."""
        await self._call(self._sync.delete_webhook, webhook_id)

    async def start(self) -> None:
        """See :meth:`Scheduler.start`."""
        await self._call(self._sync.start)

    async def stop(self, wait: bool = True) -> None:
        """See :meth:`Scheduler.stop`."""
        await self._call(self._sync.stop, wait)

    async def run_forever(self) -> None:
        """Run the engine on this loop until SIGTERM/SIGINT."""
        await self._sync._serve()

    async def close(self) -> None:
        """Stop the engine and release connections."""
        await self._call(self._sync.close)

    async def __aenter__(self) -> AsyncScheduler:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
