"""Execute one request in the current process: the part every executor shares.

Resolve secrets, build the run context, coerce parameters, call the handler (awaiting it when
async), check the result (JSON, at most ``MAX_RESULT_BYTES``) and turn exceptions into
:class:`RunError` s. Timing and timeouts are the executor's business, not this module's.
"""

from __future__ import annotations

import asyncio
import json
import traceback as tb
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from duetime.executors.base import MAX_RESULT_BYTES, ExecutionRequest, Outcome
from duetime.jobs.context import CancelSignal, LockFactory, RunContext, as_cancel_signal
from duetime.jobs.registry import JobRegistry, JobType
from duetime.jobs.schema import MAX_JSON_DEPTH, coerce_parameters, json_depth
from duetime.jobs.secrets import redact, redact_text, resolve_secrets
from duetime.models import RunError, RunState

#: Error types of failures that are not exceptions raised by the handler.
RESULT_ERROR = "ResultError"
UNKNOWN_JOB_ERROR = "UnknownJobError"
INVALID_PARAMETERS_ERROR = "InvalidParametersError"
_LISTED_JOBS = 20
#: Longest stored error message and traceback (characters; longer ones keep head / tail).
MAX_ERROR_MESSAGE_CHARS = 8 * 1024
MAX_TRACEBACK_CHARS = 64 * 1024
_CUT = "\n… ({} characters cut) …\n"


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """How a handler call ended (the executor adds timing and builds the :class:`Outcome`)."""

    state: RunState
    result: Any = None
    error: RunError | None = None

    def to_outcome(
        self, request: ExecutionRequest, started_at: datetime | None, finished_at: datetime | None
    ) -> Outcome:
        """Return the outcome of ``request`` with these timings."""
        return Outcome(
            run_id=request.run_id,
            lease_token=request.lease_token,
            state=self.state,
            started_at=started_at,
            finished_at=finished_at,
            result=self.result,
            error=self.error,
        )


def failure(
    error_type: str,
    message: str,
    traceback: str | None = None,
    state: RunState = RunState.FAILED,
) -> ExecutionResult:
    """An unsuccessful result with a synthetic error."""
    return ExecutionResult(state, None, RunError(error_type, message, traceback))


def exception_name(exc: BaseException) -> str:
    """The qualified name of an exception's class (``ValueError``, ``mypkg.errors.Boom``)."""
    cls = type(exc)
    module = cls.__module__
    return (
        cls.__qualname__ if module in {"builtins", "__main__"} else f"{module}.{cls.__qualname__}"
    )


def error_result(exc: BaseException, secret_values: list[str] | None = None) -> ExecutionResult:
    """A failed result for ``exc``: type, message and full traceback, secrets masked."""
    secrets = secret_values or []
    text = redact_text("".join(tb.format_exception(exc)), secrets)
    message = redact_text(str(exc), secrets)
    return failure(
        exception_name(exc),
        _shorten(message, MAX_ERROR_MESSAGE_CHARS),
        _shorten(text, MAX_TRACEBACK_CHARS),
    )


def _shorten(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters: its head and tail around a note of what was cut."""
    if len(text) <= limit:
        return text
    keep = limit - len(_CUT.format(len(text)))
    head, tail = keep // 4, keep - keep // 4
    return text[:head] + _CUT.format(len(text) - head - tail) + text[-tail:]


def check_result(value: Any, secret_values: list[str] | None = None) -> ExecutionResult:
    """A succeeded result when ``value`` is JSON of at most MAX_RESULT_BYTES, else ResultError."""
    if value is None:  # most handlers return nothing: no encoding round trip
        return ExecutionResult(RunState.SUCCEEDED, None)
    try:
        encoded = json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        return failure(
            RESULT_ERROR,
            f"the handler returned a {type(value).__name__} that is not JSON ({exc}); "
            "return None, a number, a string, a list or a dict of those",
        )
    if json_depth(value) > MAX_JSON_DEPTH:
        return failure(
            RESULT_ERROR,
            f"the result nests lists/objects deeper than {MAX_JSON_DEPTH} levels; flatten it",
        )
    size = len(encoded.encode("utf-8"))
    if size > MAX_RESULT_BYTES:
        return failure(
            RESULT_ERROR,
            f"the result is {size} bytes of JSON, more than the {MAX_RESULT_BYTES}-byte limit; "
            "store large outputs elsewhere and return a reference",
        )
    return ExecutionResult(RunState.SUCCEEDED, redact(json.loads(encoded), secret_values or []))


@dataclass(frozen=True)
class PreparedCall:
    """A handler ready to be called: its job type, context and keyword arguments."""

    job_type: JobType
    ctx: RunContext
    kwargs: dict[str, Any]
    secret_values: list[str]

    def call(self) -> Any:
        """Call the handler (returns a coroutine for async handlers)."""
        if self.job_type.takes_ctx:
            return self.job_type.func(self.ctx, **self.kwargs)
        return self.job_type.func(**self.kwargs)


def prepare_call(
    request: ExecutionRequest,
    registry: JobRegistry,
    *,
    cancelled: Callable[[], bool] | CancelSignal | None = None,
    on_heartbeat: Callable[[], None] | None = None,
    lock_factory: LockFactory | None = None,
    unknown_job_hint: str | None = None,
) -> PreparedCall | ExecutionResult:
    """Resolve the job, secrets and parameters; an ExecutionResult when that already fails."""
    job_type = registry.find(request.job)
    if job_type is None:
        return _unknown_job(request.job, registry, unknown_job_hint)
    try:
        resolved, secrets = resolve_secrets(request.parameters)
    except Exception as exc:
        return error_result(exc)
    try:
        kwargs = coerce_parameters(job_type.signature, resolved)
    except Exception as exc:
        return error_result(exc, secrets)
    ctx = RunContext(
        run_id=request.run_id,
        job=request.job,
        scheduled_for=request.scheduled_for,
        schedule=request.schedule_name,
        schedule_id=request.schedule_id,
        tenant=request.tenant,
        attempt=request.attempt,
        max_attempts=request.max_attempts,
        database_url=request.database_url,
        cancel_signal=as_cancel_signal(cancelled),
        secret_values=secrets,
        on_heartbeat=on_heartbeat,
        lock_factory=lock_factory,
    )
    return PreparedCall(job_type, ctx, kwargs, secrets)


def _unknown_job(name: str, registry: JobRegistry, hint: str | None) -> ExecutionResult:
    names = [t.name for t in registry.all()]
    known = ", ".join(names[:_LISTED_JOBS]) or "none"
    if len(names) > _LISTED_JOBS:
        known += f", … ({len(names) - _LISTED_JOBS} more)"
    message = (
        f"job type {name!r} is not registered in this worker; set DUETIME_JOBS to the module "
        f"that defines it (registered here: {known})"
    )
    return failure(UNKNOWN_JOB_ERROR, f"{message}; {hint}" if hint else message)


def execute_request(
    request: ExecutionRequest,
    registry: JobRegistry,
    *,
    cancelled: Callable[[], bool] | CancelSignal | None = None,
    on_heartbeat: Callable[[], None] | None = None,
    lock_factory: LockFactory | None = None,
    unknown_job_hint: str | None = None,
) -> ExecutionResult:
    """Run ``request`` to completion in this thread; never raises for anything the job does."""
    prepared = prepare_call(
        request,
        registry,
        cancelled=cancelled,
        on_heartbeat=on_heartbeat,
        lock_factory=lock_factory,
        unknown_job_hint=unknown_job_hint,
    )
    if isinstance(prepared, ExecutionResult):
        return prepared
    return run_prepared(prepared)


def run_prepared(prepared: PreparedCall) -> ExecutionResult:
    """Call a prepared handler in this thread (``asyncio.run`` for async ones)."""
    try:
        value = prepared.call()
        if asyncio.iscoroutine(value):
            value = asyncio.run(value)
    except BaseException as exc:  # a job's failure is data, SystemExit included
        return error_result(exc, prepared.secret_values)
    return check_result(value, prepared.secret_values)


async def run_prepared_async(prepared: PreparedCall) -> ExecutionResult:
    """Await an async handler on the running loop; CancelledError propagates."""
    try:
        value = prepared.call()
        if asyncio.iscoroutine(value):
            value = await value
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        return error_result(exc, prepared.secret_values)
    return check_result(value, prepared.secret_values)


def with_state(result: ExecutionResult, state: RunState) -> ExecutionResult:
    """Return ``result`` with another state."""
    return replace(result, state=state)
