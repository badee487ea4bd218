"""The FastAPI application factory: ``create_app(scheduler)``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI

from duetime import __version__
from duetime.api.problems import BodyLimitMiddleware, install_problem_handlers
from duetime.api.routes import runs, schedules, system, webhooks
from duetime.keys import ApiKeyService
from duetime.webhooks import WebhookService

API_PREFIX = "/api/v1"

_DESCRIPTION = """\
The duetime REST API. Authenticate with `Authorization: Bearer <key>` (create keys with
`duetime api-key create`). `{id}` of a schedule also accepts its name. Lists take `limit`
(≤ 500) and the opaque `cursor` of the previous page. Errors are
`application/problem+json` with `errors: [{field, message}]`. Updates honour
`If-Match: "<version>"` (or `expected_version` / `expected_updated_at`) and answer 412 with
the current version when it is stale.
"""


def create_app(scheduler: Any, *, keys: ApiKeyService | None = None) -> FastAPI:
    """Build the API over one facade; the caller owns the scheduler's lifecycle."""
    app = FastAPI(
        title="duetime",
        version=__version__,
        description=_DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.scheduler = scheduler
    app.state.keys = keys or ApiKeyService(scheduler.store)
    app.state.webhooks = WebhookService(scheduler.store)
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware)
    api = APIRouter(prefix=API_PREFIX)
    for module in (schedules, runs, system, webhooks):
        api.include_router(module.router)
    api.include_router(system.probes)
    app.include_router(api)
    app.include_router(system.probes, include_in_schema=False)
    return app
