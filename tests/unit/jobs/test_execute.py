"""execute_request: results, errors with tracebacks, result limits, unknown jobs, async handlers."""

from __future__ import annotations

import threading

import pytest
from jobs_helpers import make_request

from duetime.executors.base import MAX_RESULT_BYTES
from duetime.jobs import RunContext, default_registry, import_job_modules, job
from duetime.jobs.execute import execute_request
from duetime.jobs.registry import JobRegistry
from duetime.models import RunState

import_job_modules(["fixtures_jobs.demo"])


class PaymentDeclined(Exception):
    """A domain error of some job."""


def test_success_with_coerced_parameters() -> None:
    result = execute_request(make_request("fx.add", a="2", b=3), default_registry)
    assert result.state is RunState.SUCCEEDED
    assert result.result["sum"] == 5


def test_async_handler_gets_ctx() -> None:
    result = execute_request(make_request("fx.async_add", run_id="r-9", a=1), default_registry)
    assert result.result == {"sum": 2, "run_id": "r-9"}


def test_exception_has_type_message_and_full_traceback() -> None:
    result = execute_request(make_request("fx.boom", value=3), default_registry)
    assert result.state is RunState.FAILED
    assert result.error is not None
    assert (result.error.type, result.error.message) == ("ValueError", "bad value 3")
    traceback = result.error.traceback or ""
    assert "the line the traceback must show" in traceback
    assert "in boom" in traceback
    assert "in _explode" in traceback


def test_custom_exception_type_is_qualified(registry: JobRegistry) -> None:
    @job("pay", registry=registry)
    def pay() -> None:
        raise PaymentDeclined("card expired")

    result = execute_request(make_request("pay"), registry)
    assert result.error is not None
    assert result.error.type == f"{__name__}.PaymentDeclined"


def test_system_exit_is_a_failure_not_an_exit() -> None:
    result = execute_request(make_request("fx.sys_exit"), default_registry)
    assert result.state is RunState.FAILED
    assert result.error is not None
    assert result.error.type == "SystemExit"


@pytest.mark.parametrize("kind", ["set", "datetime"])
def test_non_json_result_is_a_result_error(kind: str) -> None:
    result = execute_request(make_request("fx.not_json", kind=kind), default_registry)
    assert result.state is RunState.FAILED
    assert result.error is not None
    assert result.error.type == "ResultError"
    assert "not JSON" in result.error.message


def test_too_large_result_is_a_result_error() -> None:
    result = execute_request(make_request("fx.big", size=MAX_RESULT_BYTES), default_registry)
    assert result.error is not None
    assert result.error.type == "ResultError"
    assert f"{MAX_RESULT_BYTES + 2} bytes" in result.error.message
    ok = execute_request(make_request("fx.big", size=MAX_RESULT_BYTES - 2), default_registry)
    assert ok.state is RunState.SUCCEEDED


def test_nan_is_not_json(registry: JobRegistry) -> None:
    job("nan", registry=registry)(lambda: float("nan"))
    result = execute_request(make_request("nan"), registry)
    assert result.error is not None
    assert result.error.type == "ResultError"


def test_unknown_job_fails_clearly() -> None:
    result = execute_request(make_request("fx.missing"), default_registry)
    assert result.state is RunState.FAILED
    assert result.error is not None
    assert result.error.type == "UnknownJobError"
    assert "job type 'fx.missing' is not registered in this worker" in result.error.message
    assert "DUETIME_JOBS" in result.error.message


def test_parameters_that_no_longer_fit_fail_the_run() -> None:
    result = execute_request(make_request("fx.add", a="x"), default_registry)
    assert result.error is not None
    assert result.error.type == "duetime.errors.InvalidParametersError"
    assert "parameters.a" in result.error.message


def test_ctx_fields_and_cancel_callable(registry: JobRegistry) -> None:
    seen: dict[str, object] = {}

    @job("look", registry=registry)
    def look(ctx: RunContext) -> None:
        seen.update(
            run=ctx.run_id, schedule=ctx.schedule, sid=ctx.schedule_id, tenant=ctx.tenant,
            attempt=ctx.attempt, cancelled=ctx.cancelled, when=ctx.scheduled_for.isoformat(),
        )  # fmt: skip

    execute_request(make_request("look"), registry, cancelled=lambda: True)
    assert seen == {
        "run": "run-1", "schedule": "nightly", "sid": "sched-1", "tenant": "acme",
        "attempt": 1, "cancelled": True, "when": "2030-01-01T00:00:00+00:00",
    }  # fmt: skip


def test_ctx_sleep_returns_early_when_cancelled(registry: JobRegistry) -> None:
    event = threading.Event()

    @job("nap", registry=registry)
    def nap(ctx: RunContext) -> bool:
        event.set()  # cancel ourselves: the wait below must return at once
        return ctx.sleep(30)

    result = execute_request(make_request("nap"), registry, cancelled=event)
    assert result.result is True


def test_ctx_lock_without_database_is_a_configuration_error(registry: JobRegistry) -> None:
    @job("locker", registry=registry)
    def locker(ctx: RunContext) -> None:
        with ctx.lock("k"):
            pass

    result = execute_request(make_request("locker"), registry)
    assert result.error is not None
    assert "database_url" in result.error.message
