"""Build an executor by name (``process``, ``thread``, ``asyncio``)."""

from __future__ import annotations

from duetime.clock import Clock
from duetime.errors import ConfigurationError
from duetime.executors.asyncio import AsyncioExecutor
from duetime.executors.base import Executor
from duetime.executors.process import ProcessExecutor
from duetime.executors.thread import ThreadExecutor
from duetime.jobs.registry import JobRegistry, import_job_modules

#: Executor names this process can build.
EXECUTOR_NAMES = ("process", "thread", "asyncio")
_LATER = ("celery",)


def create_executor(
    name: str,
    *,
    concurrency: int,
    registry: JobRegistry,
    jobs_modules: list[str],
    clock: Clock,
) -> Executor:
    """Return a new, unstarted executor; ConfigurationError for unknown names or bad modules.

    The job modules are imported here too, so a broken module fails the engine at start-up
    rather than every run. Process workers import them again and use the default registry.
    """
    if concurrency < 1:
        raise ConfigurationError(f"concurrency must be >= 1, got {concurrency}")
    kind = name.strip().lower()
    import_job_modules(jobs_modules)
    if kind == "process":
        return ProcessExecutor(
            concurrency=concurrency, jobs_modules=jobs_modules, clock=clock, registry=registry
        )
    if kind == "thread":
        return ThreadExecutor(concurrency=concurrency, registry=registry, clock=clock)
    if kind == "asyncio":
        return AsyncioExecutor(concurrency=concurrency, registry=registry, clock=clock)
    if kind.split(":", 1)[0] in _LATER:
        raise ConfigurationError(f"executor {name!r} is not available yet in this engine")
    raise ConfigurationError(
        f"unknown executor {name!r}; choose one of: {', '.join(EXECUTOR_NAMES)}"
    )
