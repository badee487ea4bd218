"""Helpers shared by the job-layer tests (imported by name: this directory is on sys.path)."""

from __future__ import annotations

from datetime import UTC, datetime

from duetime.executors.base import ExecutionRequest


def make_request(job: str, run_id: str = "run-1", **parameters: object) -> ExecutionRequest:
    """A request for ``job`` with ``parameters``."""
    return ExecutionRequest(
        run_id=run_id,
        job=job,
        parameters=dict(parameters),
        attempt=1,
        lease_token="lease",
        timeout_seconds=None,
        scheduled_for=datetime(2030, 1, 1, tzinfo=UTC),
        schedule_name="nightly",
        tenant="acme",
        schedule_id="sched-1",
    )
