"""Job types: the ``@job`` decorator, the registry and job-module imports (DESIGN §1)."""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from duetime.errors import ConfigurationError, UnknownJobError
from duetime.jobs.schema import (
    SignatureSchema,
    build_signature_schema,
    validate_against_schema,
    validate_parameters,
)

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "JobRegistry",
    "JobType",
    "default_registry",
    "import_job_modules",
    "job",
    "validate_against_schema",
]


@dataclass(frozen=True)
class JobType:
    """A registered handler: its name, settings defaults and parameter schema."""

    name: str
    func: Callable[..., Any]
    timeout: float | None = None
    max_attempts: int | None = None
    description: str | None = None
    signature: SignatureSchema = field(repr=False, compare=False, default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.signature is None:
            object.__setattr__(self, "signature", build_signature_schema(self.func, self.name))

    @property
    def is_async(self) -> bool:
        """True for ``async def`` handlers."""
        return inspect.iscoroutinefunction(self.func)

    @property
    def takes_ctx(self) -> bool:
        """True when the handler's first parameter is the run context."""
        return self.signature.takes_ctx

    @property
    def module(self) -> str:
        """The module that defines the handler."""
        return str(getattr(self.func, "__module__", "") or "")

    @property
    def parameter_schema(self) -> dict[str, Any]:
        """JSON schema of the parameters."""
        return self.signature.json_schema

    @property
    def defaults(self) -> dict[str, Any]:
        """Default parameter values (JSON)."""
        return self.signature.defaults

    def validate(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Return the validated, JSON-ready parameters; InvalidParametersError otherwise."""
        return validate_parameters(self.signature, parameters)

    def publication(self) -> dict[str, Any]:
        """The row published to ``duetime_job_types``."""
        return {
            "name": self.name,
            "description": self.description,
            "parameter_schema": self.parameter_schema,
            "defaults": self.defaults,
            "module": self.module,
        }


class JobRegistry:
    """Job types by name (thread-safe)."""

    def __init__(self) -> None:
        self._types: dict[str, JobType] = {}
        self._lock = threading.Lock()

    def register(self, job_type: JobType) -> None:
        """Add ``job_type``; the same name from a different function is a ConfigurationError."""
        with self._lock:
            existing = self._types.get(job_type.name)
            if existing is not None and not _same_function(existing.func, job_type.func):
                raise ConfigurationError(
                    f"job type {job_type.name!r} is already registered by "
                    f"{_qualname(existing.func)}; cannot register {_qualname(job_type.func)}"
                )
            self._types[job_type.name] = job_type

    def get(self, name: str) -> JobType:
        """Return the job type ``name``; UnknownJobError when nobody registered it."""
        found = self.find(name)
        if found is None:
            known = ", ".join(sorted(self._types)) or "none"
            raise UnknownJobError(f"unknown job type {name!r}; registered: {known}", field="job")
        return found

    def find(self, name: str) -> JobType | None:
        """Return the job type ``name`` or None.

        No lock: one ``dict.get`` is atomic, and every run looks its job up (the engine and
        each executor thread), so a lock here was contended on every run.
        """
        return self._types.get(name)

    def all(self) -> list[JobType]:
        """Every job type, sorted by name."""
        with self._lock:
            return sorted(self._types.values(), key=lambda t: t.name)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests and reloads)."""
        with self._lock:
            self._types.pop(name, None)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._types


def _same_function(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """A module re-imported (reload, ``__main__`` vs its name) defines an equal function anew."""
    return a is b or (_qualname(a) == _qualname(b) and _code_site(a) == _code_site(b))


def _code_site(func: Callable[..., Any]) -> tuple[str, int] | None:
    code = getattr(inspect.unwrap(func), "__code__", None)
    return (code.co_filename, code.co_firstlineno) if code is not None else None


def _qualname(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


#: The registry ``@job`` uses unless told otherwise; built-ins are registered on import.
default_registry = JobRegistry()


def job(
    name: str | None = None,
    *,
    timeout: float | None = None,
    max_attempts: int | None = None,
    description: str | None = None,
    registry: JobRegistry | None = None,
) -> Callable[[F], F]:
    """Register the decorated function as job type ``name`` (default: module.qualname)."""
    if callable(name):
        raise ConfigurationError('use @job() or @job("name"), not bare @job')
    _check_settings(timeout, max_attempts)

    def decorate(func: F) -> F:
        job_name = name or f"{func.__module__}.{func.__qualname__}"
        doc = description or _first_line(func.__doc__)
        job_type = JobType(job_name, func, timeout, max_attempts, doc)
        (registry or default_registry).register(job_type)
        return func

    return decorate


def _check_settings(timeout: float | None, max_attempts: int | None) -> None:
    if timeout is not None and timeout <= 0:
        raise ConfigurationError(f"@job timeout must be > 0 seconds, got {timeout!r}")
    if max_attempts is not None and max_attempts < 1:
        raise ConfigurationError(f"@job max_attempts must be >= 1, got {max_attempts!r}")


def _first_line(doc: str | None) -> str | None:
    lines = [line.strip() for line in (doc or "").strip().splitlines()]
    return lines[0] if lines and lines[0] else None


def import_job_modules(modules: Iterable[str]) -> None:
    """Import each module so its ``@job`` decorators run; ConfigurationError names a failure."""
    for module in modules:
        module = module.strip()
        if not module:
            continue
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise ConfigurationError(
                f"cannot import job module {module!r} (DUETIME_JOBS): {type(exc).__name__}: {exc}"
            ) from exc
