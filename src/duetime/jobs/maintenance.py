"""Maintenance job types: history retention and next-run recalculation via the facade."""

from __future__ import annotations

import importlib
from typing import Any

from duetime.errors import ConfigurationError
from duetime.jobs.context import RunContext
from duetime.jobs.registry import job


def _scheduler(ctx: RunContext) -> Any:
    if not ctx.database_url:
        raise ConfigurationError(f"{ctx.job} needs the run's database_url (none was given)")
    facade = importlib.import_module("duetime.scheduler")  # lazy: it imports the whole stack
    return facade.Scheduler(database_url=ctx.database_url, tenant=ctx.tenant)


def _close(scheduler: Any) -> None:
    close = getattr(scheduler, "close", None)
    if callable(close):
        close()


def _as_result(value: Any, key: str) -> Any:
    return {key: value} if isinstance(value, int | float) else value


@job("duetime.cleanup_history", description="Delete old run history (retention).")
def cleanup_history(
    ctx: RunContext, older_than_days: float | None = None, keep_last: int | None = None
) -> Any:
    """Delete runs older than ``older_than_days``, always keeping the last ``keep_last``.

    Unset values come from the settings (``DUETIME_HISTORY_RETENTION_DAYS``, default 30;
    keep 100). A run of tenant ``*`` (the built-in daily schedule) cleans every tenant.
    """
    if (older_than_days is not None and older_than_days < 0) or (
        keep_last is not None and keep_last < 0
    ):
        raise ValueError("older_than_days and keep_last must be >= 0")
    scheduler = _scheduler(ctx)
    try:
        done = scheduler.cleanup_history(older_than_days=older_than_days, keep_last=keep_last)
    finally:
        _close(scheduler)
    return _as_result(done, "deleted")


@job("duetime.recalculate_next_runs", description="Recompute every schedule's next_run_at.")
def recalculate_next_runs(ctx: RunContext) -> Any:
    """Recompute ``next_run_at`` of the schedules (after a tzdata update, for instance)."""
    scheduler = _scheduler(ctx)
    try:
        done = scheduler.recalculate_next_runs()
    finally:
        _close(scheduler)
    return _as_result(done, "updated")
