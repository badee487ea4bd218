"""Fast JSON responses straight from pydantic (no second validation pass in FastAPI)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from duetime.api.problems import problem_body
from duetime.api.schemas import Problem
from duetime.models import Schedule

JSON_MEDIA_TYPE = "application/json"


def model_response(
    model: BaseModel, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """Serialise ``model`` once with pydantic-core and return it."""
    return Response(
        content=model.model_dump_json(),
        status_code=status,
        media_type=JSON_MEDIA_TYPE,
        headers=headers,
    )


def etag(schedule: Schedule) -> dict[str, str]:
    """The ETag header of a schedule: its version."""
    return {"ETag": f'"{schedule.version}"'}


def _problem_example(status: int, detail: str) -> dict[str, Any]:
    return {
        "model": Problem,
        "content": {"application/problem+json": {"example": problem_body(status, detail)}},
    }


#: OpenAPI documentation of the error answers every authenticated route may give.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _problem_example(400, "There was an error parsing the body"),
    401: _problem_example(401, "missing Authorization: Bearer <key> header"),
    403: _problem_example(403, "this needs the admin role; the key has viewer"),
    422: _problem_example(422, "name: must be 1–200 characters"),
    503: _problem_example(503, "the database is busy or unreachable; retry shortly"),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: _problem_example(404, "schedule 'nightly' not found"),
}
PRECONDITION: dict[int | str, dict[str, Any]] = {
    412: _problem_example(412, "expected version 2, the schedule is at version 3"),
}
