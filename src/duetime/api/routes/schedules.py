"""``/schedules``: CRUD, actions, history and the next-fire preview."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from duetime.api.auth import Principal
from duetime.api.batching import TriggerBatcher
from duetime.api.deps import Admin, IfMatch, Operator, SchedulerDep, Viewer, expected_version
from duetime.api.problems import ApiProblem
from duetime.api.responses import (
    COMMON_ERRORS,
    NOT_FOUND,
    PRECONDITION,
    etag,
    model_response,
    run_response,
    schedule_page_response,
    schedule_response,
)
from duetime.api.schemas import (
    DEFAULT_LIST_LIMIT,
    MAX_LIST_LIMIT,
    MAX_PREVIEW_COUNT,
    ActionRequest,
    FireTime,
    Instant,
    NextRuns,
    PreconditionBody,
    RunOut,
    RunPage,
    ScheduleCreate,
    ScheduleListQuery,
    ScheduleOut,
    SchedulePage,
    SchedulePatch,
    ScheduleReplace,
    TriggerRequest,
)
from duetime.api.views import (
    PUT_DEFAULTS,
    RunFilters,
    local_iso,
    run_page,
    tenant_view,
    view_for_filter,
)
from duetime.models import RunState

router = APIRouter(prefix="/schedules", tags=["schedules"], responses=COMMON_ERRORS)

Limit = Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT, description="Page size (≤ 500).")]
Cursor = Annotated[
    str | None, Query(max_length=500, description="`next_cursor` of the previous page.")
]
IdOrName = Annotated[str, "the schedule's id or name"]

_ONE = {**NOT_FOUND}
_WRITE = {**NOT_FOUND, **PRECONDITION}


@router.get("", response_model=SchedulePage, summary="List schedules")
def list_schedules(
    principal: Viewer, scheduler: SchedulerDep, q: Annotated[ScheduleListQuery, Query()]
) -> Response:
    """Live schedules of the caller's tenant, oldest first, keyset-paginated."""
    view = view_for_filter(scheduler, principal, q.tenant)
    if view is None:
        return schedule_page_response([], None)
    page = view.list_schedules(
        state=q.state.value if q.state else None,
        job=q.job,
        enabled=q.enabled,
        name_prefix=q.name_prefix,
        since=q.since,
        until=q.until,
        limit=q.limit,
        cursor=q.cursor,
    )
    return schedule_page_response(page.items, page.next_cursor)


@router.post(
    "",
    response_model=ScheduleOut,
    status_code=201,
    summary="Create a schedule",
    responses={409: {"description": "the name is taken in this tenant"}},
)
def create_schedule(principal: Admin, scheduler: SchedulerDep, body: ScheduleCreate) -> Response:
    """Create a schedule (any accepted input shape; the answer is canonical)."""
    tenant = principal.tenant_for_create(body.tenant)
    fields = {k: v for k, v in body.changes().items() if k not in _IDENTITY}
    schedule = scheduler.for_tenant(tenant).add_schedule(
        body.name, body.job, body.trigger, source="api", created_by=principal.label, **fields
    )
    headers = {**etag(schedule), "Location": f"/api/v1/schedules/{schedule.id}"}
    return schedule_response(schedule, status=201, headers=headers)


_IDENTITY = ("name", "job", "trigger", "tenant")


@router.get("/{id}", response_model=ScheduleOut, responses=_ONE, summary="Get a schedule")
def get_schedule(id: IdOrName, principal: Viewer, scheduler: SchedulerDep) -> Response:
    """One schedule by id or name."""
    schedule = tenant_view(scheduler, principal).get_schedule(id)
    return schedule_response(schedule, headers=etag(schedule))


@router.put("/{id}", response_model=ScheduleOut, responses=_WRITE, summary="Replace a schedule")
def replace_schedule(
    id: IdOrName,
    principal: Admin,
    scheduler: SchedulerDep,
    body: ScheduleReplace,
    if_match: IfMatch = None,
) -> Response:
    """Replace every editable field; omitted optional fields return to their defaults."""
    view = tenant_view(scheduler, principal)
    current = view.get_schedule(id)
    _same_tenant(body.tenant, current.tenant)
    changes = {**PUT_DEFAULTS, "timezone": scheduler.settings.timezone, **body.changes()}
    changes.update(name=body.name, job=body.job, trigger=body.trigger)
    changes.pop("tenant", None)
    return _update(view, principal, current, changes, if_match, body)


@router.patch("/{id}", response_model=ScheduleOut, responses=_WRITE, summary="Edit a schedule")
def patch_schedule(
    id: IdOrName,
    principal: Admin,
    scheduler: SchedulerDep,
    body: SchedulePatch,
    if_match: IfMatch = None,
) -> Response:
    """Change only the fields given."""
    view = tenant_view(scheduler, principal)
    current = view.get_schedule(id)
    _same_tenant(body.tenant, current.tenant)
    changes = {k: v for k, v in body.changes().items() if k != "tenant"}
    return _update(view, principal, current, changes, if_match, body)


def _same_tenant(requested: str | None, actual: str) -> None:
    if requested is not None and requested != actual:
        raise ApiProblem(
            422,
            "a schedule cannot move to another tenant",
            errors=[{"field": "tenant", "message": f"must be {actual!r} or omitted"}],
        )


def _update(
    view: Any,
    principal: Principal,
    current: Any,
    changes: dict[str, Any],
    if_match: str | None,
    body: ScheduleReplace | SchedulePatch,
) -> Response:
    wanted = expected_version(
        if_match,
        body.expected_version,
        body.expected_updated_at,
        (current.version, current.updated_at),
    )
    schedule = view.update_schedule(
        current.id, expected_version=wanted, edited_by=principal.label, **changes
    )
    return schedule_response(schedule, headers=etag(schedule))


def _guarded(
    view: Any,
    id: str,
    if_match: str | None,
    body: PreconditionBody | TriggerRequest | ActionRequest | None,
) -> tuple[str, int | None]:
    """Return the reference to act on and the version it must still be at (None: any).

    The facade checks the version in the transaction that acts, so a change in between
    is a 412, never lost. Only ``expected_updated_at`` needs the schedule read first, to
    turn the instant into the version it names.
    """
    version = body.expected_version if body else None
    updated_at = body.expected_updated_at if body else None
    if updated_at is None:
        return id, expected_version(if_match, version, None, None)
    current = view.get_schedule(id)
    wanted = expected_version(if_match, version, updated_at, (current.version, current.updated_at))
    return str(current.id), wanted


@router.delete("/{id}", status_code=204, responses=_WRITE, summary="Delete a schedule")
def delete_schedule(
    id: IdOrName,
    principal: Admin,
    scheduler: SchedulerDep,
    if_match: IfMatch = None,
    body: Annotated[PreconditionBody | None, Body()] = None,
) -> Response:
    """Soft-delete: pending runs are cancelled, history stays until retention."""
    view = tenant_view(scheduler, principal)
    ref, wanted = _guarded(view, id, if_match, body)
    view.delete_schedule(ref, expected_version=wanted)
    return Response(status_code=204)


def _switch(view: Any, method: str, ref: str, wanted: int | None) -> Response:
    """Pause or resume (``method``) the schedule and answer with it and its ETag."""
    schedule = getattr(view, method)(ref, expected_version=wanted)
    return schedule_response(schedule, headers=etag(schedule))


async def _trigger(
    request: Request,
    view: Any,
    ref: str,
    wanted: int | None,
    parameters: Any,
    principal: Principal,
) -> Response:
    """Create a manual run through the app's group commit (one writer thread)."""
    run_request = view.prepare_trigger(
        ref, parameters, triggered_by=principal.label, expected_version=wanted
    )
    batcher: TriggerBatcher = request.app.state.triggers
    return run_response(await batcher.submit(run_request), status=201)


async def _guarded_async(
    view: Any,
    id: str,
    if_match: str | None,
    body: PreconditionBody | TriggerRequest | ActionRequest | None,
) -> tuple[str, int | None]:
    """:func:`_guarded` from the event loop: only ``expected_updated_at`` reads (in a thread)."""
    if body is not None and body.expected_updated_at is not None:
        return await run_in_threadpool(_guarded, view, id, if_match, body)
    return _guarded(view, id, if_match, body)


@router.post("/{id}/pause", response_model=ScheduleOut, responses=_WRITE, summary="Pause")
def pause_schedule(
    id: IdOrName,
    principal: Operator,
    scheduler: SchedulerDep,
    if_match: IfMatch = None,
    body: Annotated[PreconditionBody | None, Body()] = None,
) -> Response:
    """Stop firing; pending runs are cancelled, running ones finish."""
    view = tenant_view(scheduler, principal)
    return _switch(view, "pause", *_guarded(view, id, if_match, body))


@router.post("/{id}/resume", response_model=ScheduleOut, responses=_WRITE, summary="Resume")
def resume_schedule(
    id: IdOrName,
    principal: Operator,
    scheduler: SchedulerDep,
    if_match: IfMatch = None,
    body: Annotated[PreconditionBody | None, Body()] = None,
) -> Response:
    """Fire again from the next fire after now (no burst of old fires)."""
    view = tenant_view(scheduler, principal)
    return _switch(view, "resume", *_guarded(view, id, if_match, body))


@router.post(
    "/{id}/trigger", response_model=RunOut, status_code=201, responses=_WRITE, summary="Run now"
)
async def trigger_schedule(
    request: Request,
    id: IdOrName,
    principal: Operator,
    if_match: IfMatch = None,
    body: Annotated[TriggerRequest | None, Body()] = None,
) -> Response:
    """Create a ``manual`` run now (also on a paused schedule)."""
    view = tenant_view(request.app.state.scheduler, principal)
    ref, wanted = await _guarded_async(view, id, if_match, body)
    parameters = body.parameters if body else None
    return await _trigger(request, view, ref, wanted, parameters, principal)


@router.post(
    "/{id}/action",
    responses={**_WRITE, 201: {"model": RunOut, "description": "trigger: the run created"}},
    response_model=ScheduleOut,
    summary="Trigger, pause, resume, enable or disable",
)
async def schedule_action(
    request: Request,
    id: IdOrName,
    principal: Operator,
    body: ActionRequest,
    if_match: IfMatch = None,
) -> Response:
    """One endpoint for the actions (enable = resume, disable = pause)."""
    view = tenant_view(request.app.state.scheduler, principal)
    ref, wanted = await _guarded_async(view, id, if_match, body)
    if body.action == "trigger":
        return await _trigger(request, view, ref, wanted, body.parameters, principal)
    method = "pause" if body.action in ("pause", "disable") else "resume"
    return await run_in_threadpool(_switch, view, method, ref, wanted)


@router.get("/{id}/runs", response_model=RunPage, responses=_ONE, summary="A schedule's runs")
def schedule_runs(
    id: IdOrName,
    principal: Viewer,
    scheduler: SchedulerDep,
    limit: Limit = DEFAULT_LIST_LIMIT,
    cursor: Cursor = None,
    state: Annotated[list[RunState] | None, Query()] = None,
    since: Annotated[Instant | None, Query(description="created at or after")] = None,
    until: Annotated[Instant | None, Query(description="created before")] = None,
) -> Response:
    """Runs of one schedule, newest first."""
    view = tenant_view(scheduler, principal)
    schedule = view.get_schedule(id)
    filters = RunFilters(schedule=schedule.id, states=state, since=since, until=until)
    return run_page(view, filters, limit, cursor)


@router.get("/{id}/next-runs", response_model=NextRuns, responses=_ONE, summary="Next fires")
def next_runs(
    id: IdOrName,
    principal: Viewer,
    scheduler: SchedulerDep,
    count: Annotated[int, Query(ge=1, le=MAX_PREVIEW_COUNT)] = 10,
) -> Response:
    """The next ``count`` fires, in UTC and in the schedule's zone."""
    view = tenant_view(scheduler, principal)
    schedule = view.get_schedule(id)
    fires = view.next_fire_times(schedule.id, count)
    items = [FireTime(at=at, local=local_iso(at, schedule.timezone)) for at in fires]
    out = NextRuns(
        schedule_id=schedule.id, name=schedule.name, timezone=schedule.timezone, items=items
    )
    return model_response(out)
