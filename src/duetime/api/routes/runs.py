"""``/runs``: history across schedules, one run, rerun and cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from duetime.api.deps import Operator, SchedulerDep, Viewer
from duetime.api.responses import COMMON_ERRORS, NOT_FOUND, run_page_response, run_response
from duetime.api.schemas import (
    RunListQuery,
    RunOut,
    RunPage,
)
from duetime.api.views import RunFilters, run_page, tenant_view, view_for_filter

router = APIRouter(prefix="/runs", tags=["runs"], responses=COMMON_ERRORS)


@router.get("", response_model=RunPage, responses=NOT_FOUND, summary="List runs")
def list_runs(
    principal: Viewer, scheduler: SchedulerDep, q: Annotated[RunListQuery, Query()]
) -> Response:
    """Runs of the caller's tenant, newest first, keyset-paginated."""
    view = view_for_filter(scheduler, principal, q.tenant)
    if view is None:
        return run_page_response([], None)
    filters = RunFilters(
        schedule=q.schedule, states=q.state, job=q.job, since=q.since, until=q.until
    )
    return run_page(view, filters, q.limit, q.cursor)


@router.get("/{id}", response_model=RunOut, responses=NOT_FOUND, summary="Get a run")
def get_run(id: str, principal: Viewer, scheduler: SchedulerDep) -> Response:
    """One run with its result or error and traceback."""
    run = tenant_view(scheduler, principal).get_run(id)
    return run_response(run)


@router.post(
    "/{id}/rerun", response_model=RunOut, status_code=201, responses=NOT_FOUND, summary="Rerun"
)
def rerun(id: str, principal: Operator, scheduler: SchedulerDep) -> Response:
    """Run the same job and parameters again (kind ``rerun``)."""
    run = tenant_view(scheduler, principal).rerun(id)
    return run_response(run, status=201)


@router.post(
    "/{id}/cancel",
    response_model=RunOut,
    responses={**NOT_FOUND, 409: {"description": "the run already finished"}},
    summary="Cancel",
)
def cancel(id: str, principal: Operator, scheduler: SchedulerDep) -> Response:
    """Cancel a pending run; ask the engine to stop a running one."""
    run = tenant_view(scheduler, principal).cancel(id)
    return run_response(run)
