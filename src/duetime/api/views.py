"""Helpers shared by routes: the caller's tenant view of the facade, run pages, zones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.responses import Response

from duetime.api.auth import Principal
from duetime.api.responses import run_page_response
from duetime.keys import ALL_TENANTS
from duetime.models import SCHEDULE_FIELD_DEFAULTS, RunState
from duetime.triggers.tz import get_zone

#: What PUT resets an omitted optional field to (DESIGN §1 defaults; timezone = instance's).
PUT_DEFAULTS = SCHEDULE_FIELD_DEFAULTS


def tenant_view(scheduler: Any, principal: Principal) -> Any:
    """The facade scoped to the caller's tenant (``*`` sees every tenant)."""
    return scheduler.for_tenant(principal.tenant)


def view_for_filter(scheduler: Any, principal: Principal, tenant: str | None) -> Any | None:
    """The view a ``?tenant=`` filter asks for; None when the caller may not see it."""
    if tenant is None:
        return tenant_view(scheduler, principal)
    if principal.all_tenants or tenant == principal.tenant:
        return scheduler.for_tenant(tenant if tenant != ALL_TENANTS else principal.tenant)
    return None


@dataclass(frozen=True, slots=True)
class RunFilters:
    """Filters of a run listing."""

    schedule: str | None = None
    states: Sequence[RunState] | None = None
    job: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def run_page(view: Any, filters: RunFilters, limit: int, cursor: str | None) -> Response:
    """List runs through the facade and answer a RunPage."""
    page = view.get_runs(
        schedule=filters.schedule,
        state=[s.value for s in filters.states] if filters.states else None,
        job=filters.job,
        since=filters.since,
        until=filters.until,
        limit=limit,
        cursor=cursor,
    )
    return run_page_response(page.items, page.next_cursor)


def local_iso(at: datetime, timezone: str) -> str:
    """``at`` as ISO 8601 in ``timezone`` (with its offset)."""
    return at.astimezone(get_zone(timezone)).isoformat()
