"""Job types: the ``@job`` decorator, the registry, the run context and the built-ins."""

from __future__ import annotations

from duetime.jobs import builtins as _builtins
from duetime.jobs import maintenance as _maintenance
from duetime.jobs.context import RunContext
from duetime.jobs.registry import (
    JobRegistry,
    JobType,
    default_registry,
    import_job_modules,
    job,
    validate_against_schema,
)

__all__ = [
    "JobRegistry",
    "JobType",
    "RunContext",
    "default_registry",
    "import_job_modules",
    "job",
    "validate_against_schema",
]

del _builtins, _maintenance
