"""duetime.testing: run_job / execute_job / fake locks for users' own tests."""

from __future__ import annotations

import pytest

from duetime.errors import DuetimeError, InvalidParametersError, UnknownJobError
from duetime.jobs import RunContext, default_registry, import_job_modules, job
from duetime.models import RunState
from duetime.testing import execute_job, fake_locks, make_context, run_job, run_job_in

import_job_modules(["fixtures_jobs.demo"])


def test_run_job_returns_the_handler_value() -> None:
    assert run_job("fx.add", a=2, b=5)["sum"] == 7
    assert run_job("fx.async_add", a=1)["sum"] == 2


def test_run_job_validates_and_propagates_exceptions() -> None:
    with pytest.raises(InvalidParametersError):
        run_job("fx.add", a="x")
    with pytest.raises(ValueError, match="bad value 1"):
        run_job("fx.boom", value=1)
    with pytest.raises(UnknownJobError):
        run_job("fx.unknown")


def test_run_job_resolves_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUETIME_SECRET_T", "abcd")
    assert run_job("fx.echo_secret", token={"$secret": "T"})["length"] == 4


def test_execute_job_gives_the_recorded_result() -> None:
    result = execute_job("fx.not_json")
    assert result.state is RunState.FAILED
    assert result.error is not None
    assert result.error.type == "ResultError"


def test_fake_lock_excludes_a_second_holder() -> None:
    @job("fx.locking", registry=None)
    def locking(ctx: RunContext) -> list[str]:
        with ctx.lock("job:settlement", ttl=10):
            inner = make_context("other")
            with pytest.raises(DuetimeError, match="job:settlement"), inner.lock("job:settlement"):
                pass
            return fake_locks.held()

    try:
        assert run_job("fx.locking") == ["job:settlement"]
        assert fake_locks.held() == []
    finally:
        default_registry.unregister("fx.locking")


def test_run_job_in_with_own_context(registry: object) -> None:
    ctx = make_context("x", run_id="r-1", tenant="t1")
    assert run_job_in(default_registry, "fx.async_add", {"a": 1}, ctx=ctx)["run_id"] == "r-1"
