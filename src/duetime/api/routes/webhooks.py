"""``/webhooks``: CRUD of a tenant's webhook subscriptions (admin writes, viewer reads)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from duetime.api.deps import Admin, IfMatch, SchedulerDep, Viewer, parse_if_match
from duetime.api.responses import COMMON_ERRORS, NOT_FOUND, PRECONDITION, model_response
from duetime.api.views import tenant_view
from duetime.webhooks import Webhook

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=COMMON_ERRORS)

Url = Annotated[str, Field(min_length=1, max_length=2000, pattern=r"^https?://[^\s\x00]+$")]
Events = Annotated[list[Annotated[str, Field(max_length=64)]], Field(min_length=1, max_length=20)]
Description = Annotated[str | None, Field(max_length=2000, pattern=r"^[^\x00]*$")]


class WebhookCreate(BaseModel):
    """POST /webhooks body."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: Url
    events: Events = Field(default_factory=lambda: ["*"])
    description: Description = None
    enabled: bool = True
    tenant: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[^\x00]*$")


class WebhookPatch(BaseModel):
    """PATCH /webhooks/{id} body."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: Url | None = None
    events: Events | None = None
    description: Description = None
    enabled: bool | None = None
    expected_version: int | None = Field(None, ge=1, le=2**31 - 1)


class WebhookOut(BaseModel):
    """A webhook subscription."""

    id: str
    tenant: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    version: int
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookOut):
    """The answer to POST: the HMAC signing secret is shown this once."""

    secret: str


class WebhookList(BaseModel):
    """GET /webhooks."""

    items: list[WebhookOut]


def _out(hook: Webhook) -> dict[str, Any]:
    return {f: getattr(hook, f) for f in WebhookOut.model_fields}


@router.get("", response_model=WebhookList, summary="List webhooks")
def list_webhooks(principal: Viewer, scheduler: SchedulerDep) -> Response:
    """The caller's tenant's webhooks."""
    items = [WebhookOut(**_out(h)) for h in tenant_view(scheduler, principal).list_webhooks()]
    return model_response(WebhookList(items=items))


@router.post("", response_model=WebhookCreated, status_code=201, summary="Create a webhook")
def create_webhook(principal: Admin, scheduler: SchedulerDep, body: WebhookCreate) -> Response:
    """Subscribe a URL to events; the signing secret is returned only here."""
    tenant = principal.tenant_for_create(body.tenant)
    hook = scheduler.for_tenant(tenant).create_webhook(
        body.url, body.events, description=body.description, enabled=body.enabled
    )
    return model_response(WebhookCreated(**_out(hook), secret=hook.secret or ""), status=201)


@router.get("/{id}", response_model=WebhookOut, responses=NOT_FOUND, summary="Get a webhook")
def get_webhook(id: str, principal: Viewer, scheduler: SchedulerDep) -> Response:
    """One webhook."""
    hook = tenant_view(scheduler, principal).get_webhook(id)
    return model_response(WebhookOut(**_out(hook)), headers={"ETag": f'"{hook.version}"'})


@router.patch(
    "/{id}", response_model=WebhookOut, responses={**NOT_FOUND, **PRECONDITION}, summary="Edit"
)
def patch_webhook(
    id: str,
    principal: Admin,
    scheduler: SchedulerDep,
    body: WebhookPatch,
    if_match: IfMatch = None,
) -> Response:
    """Change the fields given."""
    wanted = parse_if_match(if_match) or body.expected_version
    changes = body.model_dump(exclude_unset=True, exclude={"expected_version"})
    hook = tenant_view(scheduler, principal).update_webhook(id, expected_version=wanted, **changes)
    return model_response(WebhookOut(**_out(hook)), headers={"ETag": f'"{hook.version}"'})


@router.delete("/{id}", status_code=204, responses=NOT_FOUND, summary="Delete a webhook")
def delete_webhook(id: str, principal: Admin, scheduler: SchedulerDep) -> Response:
    """Remove the subscription."""
    tenant_view(scheduler, principal).delete_webhook(id)
    return Response(status_code=204)
