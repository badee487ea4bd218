"""The FastAPI application factory: ``create_app(scheduler)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from duetime import __version__
from duetime.api.batching import TriggerBatcher
from duetime.api.problems import BodyLimitMiddleware, install_problem_handlers
from duetime.api.read_cache import Authenticator, ReadCacheMiddleware
from duetime.api.routes import runs, schedules, system, webhooks
from duetime.keys import ApiKeyService
from duetime.store.data_version import DataVersion

API_PREFIX = "/api/v1"

_DESCRIPTION = """\
The duetime REST API. Authenticate with `Authorization: Bearer <key>` (create keys with
`duetime api-key create`). `{id}` of a schedule also accepts its name. Lists take `limit`
(≤ 500) and the opaque `cursor` of the previous page. Errors are
`application/problem+json` with `errors: [{field, message}]`. Updates honour
`If-Match: "<version>"` (or `expected_version` / `expected_updated_at`) and answer 412 with
the current version when it is stale.
"""


def _lifespan(
    max_threads: int | None, versions: DataVersion | None, triggers: TriggerBatcher
) -> Any:
    """Cap the worker threads sync routes run on (None = anyio's 40); at shutdown stop the
    run-now writer thread and close the data version's connection."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if max_threads is not None:
            anyio.to_thread.current_default_thread_limiter().total_tokens = max_threads
        try:
            yield
        finally:
            triggers.close()
            if versions is not None:
                versions.close()

    return lifespan


def create_app(
    scheduler: Any, *, keys: ApiKeyService | None = None, max_threads: int | None = None
) -> FastAPI:
    """Build the API over one facade; the caller owns the scheduler's lifecycle.

    ``max_threads`` caps the threads that run (blocking) route handlers: fewer threads
    contend less for the GIL with an engine running in the same process. On a SQLite file
    database, keys and repeated reads are cached exactly (decision 0010).
    """
    versions = DataVersion.for_url(scheduler.store.url)
    grouped = scheduler.store.dialect == "sqlite"  # one write lock to share (0012)
    triggers = TriggerBatcher(scheduler.commit_triggers, grouped=grouped)
    app = FastAPI(
        lifespan=_lifespan(max_threads, versions, triggers),
        title="duetime",
        version=__version__,
        description=_DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.scheduler = scheduler
    app.state.keys = keys or ApiKeyService(scheduler.store)
    app.state.auth = auth = Authenticator(app.state.keys, versions)
    app.state.triggers = triggers
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware)
    if versions is not None:  # outermost: a hit skips everything below
        app.add_middleware(ReadCacheMiddleware, auth=auth, versions=versions)
    for module in (schedules, runs, system, webhooks):  # flat: one routing level per request
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(system.probes, prefix=API_PREFIX)
    app.include_router(system.probes, include_in_schema=False)
    app.openapi = lambda: _openapi_with_bearer(app)  # type: ignore[method-assign]
    return app


_OPEN_OPERATIONS = (f"{API_PREFIX}/healthz", f"{API_PREFIX}/readyz")
_BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key: `duetime api-key create` prints one.",
}


def _openapi_with_bearer(app: FastAPI) -> dict[str, Any]:
    """The generated document plus the bearer scheme on every operation but the probes.

    Authentication is one plain dependency (fast); this declares it to clients.
    """
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schema.setdefault("components", {})["securitySchemes"] = {"HTTPBearer": _BEARER_SCHEME}
    for path, item in schema["paths"].items():
        if path in _OPEN_OPERATIONS:
            continue
        for operation in item.values():
            operation["security"] = [{"HTTPBearer": []}]
    app.openapi_schema = schema
    return schema
