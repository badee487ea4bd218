"""Job types, cron validation, status, the fire step, metrics and health probes."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, PlainTextResponse, Response

from duetime.api.deps import Operator, SchedulerDep, Viewer
from duetime.api.responses import COMMON_ERRORS, model_response
from duetime.api.schemas import (
    CronValidateRequest,
    CronValidation,
    FieldError,
    FireTime,
    JobTypeList,
    JobTypeOut,
    RunList,
    RunOut,
)
from duetime.api.views import local_iso
from duetime.errors import ValidationError
from duetime.keys import ALL_TENANTS
from duetime.triggers.spec import build_trigger

router = APIRouter(responses=COMMON_ERRORS)
probes = APIRouter(tags=["health"])

PROMETHEUS_MEDIA_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/jobs", response_model=JobTypeList, tags=["jobs"], summary="Job types")
def list_jobs(principal: Viewer, scheduler: SchedulerDep) -> Response:
    """Job types (registered here or published by engines) with their parameter schema."""
    items = [JobTypeOut.model_validate(_job_dict(j)) for j in scheduler.job_types()]
    return model_response(JobTypeList(items=items))


def _job_dict(job: Any) -> dict[str, Any]:
    if isinstance(job, dict):
        return job
    return {
        "name": job.name,
        "description": getattr(job, "description", None),
        "parameter_schema": job.parameter_schema,
        "defaults": job.defaults,
        "module": getattr(job, "module", None),
        "timeout": getattr(job, "timeout", None),
        "max_attempts": getattr(job, "max_attempts", None),
    }


@router.post("/cron/validate", response_model=CronValidation, tags=["cron"], summary="Check cron")
def validate_cron(
    body: CronValidateRequest, principal: Viewer, scheduler: SchedulerDep
) -> Response:
    """Is the expression valid? Its description and next fires (UTC and local) if so."""
    spec = {
        "type": "cron",
        "expression": body.expression,
        "dst_policy": body.dst_policy,
        "weekdays": body.weekdays,
        "day_match": body.day_match,
    }
    answer = CronValidation(valid=False, expression=body.expression, timezone=body.timezone)
    try:
        trigger = build_trigger(spec, body.timezone)
    except ValidationError as exc:
        answer.errors = [FieldError(field=_cron_field(exc.field), message=exc.message)]
        return model_response(answer)
    answer.valid = True
    answer.description = getattr(trigger, "describe", lambda: None)()
    after = body.after or scheduler.clock.now()
    answer.next = [
        FireTime(at=at, local=local_iso(at, body.timezone))
        for at in _fires(trigger, after, body.count)
    ]
    return model_response(answer)


def _cron_field(field: str | None) -> str:
    if not field or field in ("trigger", "trigger.expression"):
        return "expression"
    return field.removeprefix("trigger.")


def _fires(trigger: Any, after: datetime, count: int) -> Iterator[datetime]:
    for _ in range(count):
        nxt = trigger.next_fire_time(after)
        if nxt is None:
            return
        yield nxt
        after = nxt


@router.get("/status", tags=["status"], summary="Instance status")
def status(principal: Viewer, scheduler: SchedulerDep) -> dict[str, Any]:
    """Engines, schedules by state, recent outcomes (from the facade's ``status()``)."""
    result: dict[str, Any] = tenant_scoped(scheduler, principal.tenant).status()
    return result


def tenant_scoped(scheduler: Any, tenant: str) -> Any:
    """The facade for ``tenant``."""
    return scheduler.for_tenant(tenant)


@router.post(
    "/check-schedules", response_model=RunList, tags=["engine"], summary="Run the fire step"
)
def check_schedules(principal: Operator, scheduler: SchedulerDep) -> Response:
    """Fire due schedules now (DESIGN §3.1 step 1), wake the engine; return the runs created.

    The API never executes jobs: an engine starts the runs. Runs of other tenants are
    created too (firing is global) but only the caller's are returned.
    """
    runs = scheduler.check_schedules()
    mine = [r for r in runs if principal.tenant in (ALL_TENANTS, r.tenant)]
    return model_response(RunList(items=[RunOut.of(r) for r in mine]))


@router.get("/metrics/lifecycle", tags=["metrics"], summary="Lifecycle metrics")
def lifecycle(principal: Viewer, scheduler: SchedulerDep) -> dict[str, Any]:
    """Schedules by state and run outcomes as JSON (the numbers behind the dashboard)."""
    data = tenant_scoped(scheduler, principal.tenant).status()
    keys = ("tenant", "schedules", "queue_depth", "queue_due", "running", "last_24h")
    out = {key: data.get(key) for key in keys}
    out["failures_24h"] = data.get("failures_24h", 0)
    out["instances_alive"] = sum(1 for i in data.get("instances", []) if i.get("alive"))
    return out


@router.get(
    "/metrics",
    tags=["metrics"],
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(principal: Viewer, scheduler: SchedulerDep) -> Response:
    """The numbers of ``/status`` in the Prometheus text format."""
    data = tenant_scoped(scheduler, principal.tenant).status()
    data["instances_alive"] = sum(1 for i in data.get("instances", []) if i.get("alive"))
    return Response(content=prometheus_text(data), media_type=PROMETHEUS_MEDIA_TYPE)


def prometheus_text(data: dict[str, Any], prefix: str = "duetime") -> str:
    """Flatten the numeric leaves of ``data`` into Prometheus gauges."""
    lines = []
    for name, value in sorted(_numeric_leaves(data, prefix)):
        lines.append(f"# TYPE {name} gauge")
        lines.append(f"{name} {value}")
    return "\n".join(lines) + "\n"


def _numeric_leaves(data: Any, name: str) -> Iterator[tuple[str, float]]:
    if isinstance(data, bool):
        yield name, float(data)
    elif isinstance(data, int | float):
        if math.isfinite(data):
            yield name, float(data)
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _numeric_leaves(value, f"{name}_{_metric_part(str(key))}")


def _metric_part(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_").lower() or "x"


@probes.get("/healthz", summary="Liveness", include_in_schema=True)
def healthz() -> dict[str, str]:
    """The process answers (no auth, no database)."""
    return {"status": "ok"}


@probes.get("/readyz", summary="Readiness", responses={503: {"description": "not ready"}})
async def readyz(request: Request) -> Response:
    """The database answers and its schema is current (no auth)."""
    scheduler = request.app.state.scheduler
    try:
        await run_in_threadpool(scheduler.store.check_schema)
    except Exception as exc:  # any failure means "not ready"; the detail says why
        body = {"status": "unavailable", "detail": type(exc).__name__}
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ok"})
