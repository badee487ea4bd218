"""Review finding: DESIGN §1 says duetime.cleanup_history is scheduled daily by default,
but nothing created that schedule, and the job ignored DUETIME_HISTORY_RETENTION_DAYS."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from duetime.cli.main import app
from duetime.clock import FakeClock
from duetime.executors.base import ExecutionRequest
from duetime.jobs import default_registry
from duetime.jobs.execute import execute_request
from duetime.models import RunKind, RunState
from duetime.scheduler import Scheduler
from duetime.store import rows

START = datetime(2030, 1, 1, tzinfo=UTC)
NAME = "duetime.cleanup_history"


def test_migrating_creates_the_daily_retention_schedule_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    s = Scheduler(url, clock=FakeClock(START), migrate=True)
    try:
        everyone = s.for_tenant("*")
        built_in = everyone.get_schedule(NAME)
        assert (built_in.tenant, built_in.job, built_in.state) == ("*", NAME, "active")
        assert built_in.next_run_at == datetime(2030, 1, 1, 3, 30, tzinfo=UTC)
        assert s.list_schedules().items == []  # tenants do not see the system schedule
        assert s.ensure_default_schedules() == []
        everyone.delete_schedule(NAME)
        assert s.ensure_default_schedules() == []  # an operator's delete is kept
    finally:
        s.close()


def test_duetime_init_creates_it_too(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'init.db'}"
    result = CliRunner().invoke(app, ["init", "--database", url])
    assert result.exit_code == 0, result.output
    assert f"created built-in schedule {NAME}" in result.output
    s = Scheduler(url, tenant="*")
    try:
        assert s.get_schedule(NAME).tenant == "*"
    finally:
        s.close()


def _old_run(s: Scheduler, tenant: str) -> None:
    schedule = s.for_tenant(tenant).add_schedule("nightly", "duetime.noop", "0 3 * * *")
    old = datetime(2020, 1, 1, tzinfo=UTC)
    values = rows.new_run_values(
        schedule=schedule, tenant=tenant, job="duetime.noop", parameters={},
        kind=RunKind.MANUAL, scheduled_for=old, available_at=old, now=old, max_attempts=1,
        timeout=60.0, priority=0, executor="default", max_recoveries=0, retry_backoff=10.0,
        state=RunState.SUCCEEDED,
    )  # fmt: skip
    s.store.insert_run(values)


def test_the_built_in_run_cleans_every_tenant_with_configured_retention(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUETIME_HISTORY_KEEP_LAST", "0")
    s = Scheduler(sqlite_url)
    try:
        _old_run(s, "a")
        _old_run(s, "b")
        request = ExecutionRequest(
            run_id="r", job=NAME, parameters={}, attempt=1, lease_token="t",
            timeout_seconds=60, scheduled_for=START, tenant="*", database_url=sqlite_url,
        )  # fmt: skip
        outcome = execute_request(request, default_registry)
        assert outcome.state is RunState.SUCCEEDED, outcome.error
        assert outcome.result == {"deleted": 2}
        assert s.for_tenant("*").get_runs().items == []
    finally:
        s.close()


def test_init_with_a_broken_jobs_module_still_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating the built-in schedule must not make init depend on DUETIME_JOBS."""
    monkeypatch.setenv("DUETIME_JOBS", "no_such_module_for_duetime")
    url = f"sqlite:///{tmp_path / 'init.db'}"
    result = CliRunner().invoke(app, ["init", "--database", url])
    assert result.exit_code == 0, result.output
    assert f"created built-in schedule {NAME}" in result.output
