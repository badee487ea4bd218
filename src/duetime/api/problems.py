"""RFC 9457 problem details: every API error is ``application/problem+json``.

Shape: ``{"type", "title", "status", "detail", "errors": [{"field", "message"}]}`` plus
``current_version`` on 412. Also the request-body size limit (413) as pure ASGI middleware.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from duetime import errors

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://duetime.dev/problems/"
#: Largest request body accepted (DESIGN: 1 MiB) — larger bodies get 413.
MAX_BODY_BYTES = 1024 * 1024

log = logging.getLogger("duetime.api")

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Validation failed",
    500: "Internal server error",
    503: "Service unavailable",
}

_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    412: "version-mismatch",
    413: "body-too-large",
    415: "unsupported-media-type",
    422: "validation-failed",
    500: "internal-error",
    503: "unavailable",
}


class ApiProblem(Exception):
    """An error the API answers with a problem document (raised by routes and deps)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: Sequence[dict[str, str]] = (),
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}
        self.extra = extra or {}


def problem_body(
    status: int,
    detail: str,
    *,
    errors: Sequence[dict[str, str]] = (),
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the JSON document of a problem."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + _SLUGS.get(status, str(status)),
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "errors": list(errors),
    }
    body.update(extra or {})
    return body


def problem_response(
    status: int,
    detail: str,
    *,
    errors: Sequence[dict[str, str]] = (),
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """Return a ``application/problem+json`` response."""
    body = problem_body(status, detail, errors=errors, extra=extra)
    return Response(
        content=json.dumps(body, default=str),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _loc_to_field(loc: Sequence[Any]) -> str:
    """``("body", "trigger", "expression")`` → ``trigger.expression``; query/path keep the name."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    """Return ``[{field, message}]`` from FastAPI's validation errors."""
    out = []
    for err in exc.errors():
        message = str(err.get("msg", "invalid value"))
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, errors.ValidationError):
            field = ctx_error.field or _loc_to_field(err["loc"])
            out.append({"field": field, "message": ctx_error.message})
            continue
        out.append({"field": _loc_to_field(err.get("loc", ())), "message": message})
    return out


def _duetime_status(exc: errors.DuetimeError) -> int:
    """Map a duetime error class to its HTTP status."""
    table: list[tuple[type[errors.DuetimeError], int]] = [
        (errors.ValidationError, 422),
        (errors.NotFoundError, 404),
        (errors.ConflictError, 409),
        (errors.VersionMismatchError, 412),
        (errors.PermissionDeniedError, 403),
        (errors.SchemaOutdatedError, 503),
        (errors.ConfigurationError, 503),
    ]
    for cls, status in table:
        if isinstance(exc, cls):
            return status
    return 400


def duetime_problem(exc: errors.DuetimeError) -> Response:
    """Return the problem response for a duetime error."""
    status = _duetime_status(exc)
    if isinstance(exc, errors.ValidationError):
        field = exc.field or "body"
        return problem_response(status, str(exc), errors=[{"field": field, "message": exc.message}])
    if isinstance(exc, errors.VersionMismatchError):
        return version_mismatch(str(exc), exc.current_version)
    return problem_response(status, str(exc))


def version_mismatch(detail: str, current_version: int | None) -> Response:
    """Return a 412 carrying the current version (body and ETag)."""
    headers = {"ETag": f'"{current_version}"'} if current_version is not None else None
    return problem_response(
        412, detail, headers=headers, extra={"current_version": current_version}
    )


async def _on_api_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiProblem)
    return problem_response(
        exc.status, exc.detail, errors=exc.errors, headers=exc.headers, extra=exc.extra
    )


async def _on_duetime_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.DuetimeError)
    return duetime_problem(exc)


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    found = validation_errors(exc)
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in found[:5]) or "invalid request"
    return problem_response(422, detail, errors=found)


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem_response(exc.status_code, str(exc.detail), headers=headers or None)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "__none__"})
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _on_database_unavailable(request: Request, exc: Exception) -> Response:
    log.warning(
        "database unavailable: %s", type(exc).__name__, extra={"event": "api.db_unavailable"}
    )
    return problem_response(
        503, "the database is busy or unreachable; retry shortly", headers={"Retry-After": "1"}
    )


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", extra={"event": "api.error", "path": request.url.path})
    return problem_response(500, "an unexpected error occurred; see the server log")


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem document."""
    app.add_exception_handler(ApiProblem, _on_api_problem)
    app.add_exception_handler(errors.DuetimeError, _on_duetime_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(OperationalError, _on_database_unavailable)
    app.add_exception_handler(Exception, _on_unexpected)


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes with 413 (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check Content-Length, then count streamed bytes while buffering the body."""
        if scope["type"] != "http" or scope["method"] in {"GET", "HEAD", "OPTIONS"}:
            await self.app(scope, receive, send)
            return
        if self._declared_too_large(scope):
            await self._reject(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._reject(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(messages, receive), send)

    def _declared_too_large(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    return int(value) > self.limit
                except ValueError:
                    return False
        return False

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body exceeds {self.limit} bytes"
        response = problem_response(413, detail, errors=[{"field": "body", "message": detail}])
        await response(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """Return a ``receive`` that yields the buffered messages, then the real stream."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
