"""problem+json rendering, validation error fields and the 1 MiB body limit."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from duetime import errors
from duetime.api.problems import (
    MAX_BODY_BYTES,
    BodyLimitMiddleware,
    install_problem_handlers,
)
from duetime.api.schemas import ScheduleCreate


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware)

    @app.post("/echo")
    def echo(body: ScheduleCreate) -> dict[str, Any]:
        return {"name": body.name}

    @app.get("/missing")
    def missing() -> None:
        raise errors.NotFoundError("no schedule 'x'")

    @app.get("/stale")
    def stale() -> None:
        raise errors.VersionMismatchError("version 1 expected, found 3", current_version=3)

    @app.get("/cron")
    def cron() -> None:
        raise errors.InvalidCronError("bad minute", field="trigger.expression")

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    return app


client = TestClient(_app(), raise_server_exceptions=False)


def _assert_problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = resp.json()
    assert {"type", "title", "status", "detail", "errors"} <= set(body)
    assert body["status"] == status
    return body


def test_not_found() -> None:
    body = _assert_problem(client.get("/missing"), 404)
    assert "no schedule" in body["detail"]


def test_version_mismatch_carries_current_version() -> None:
    resp = client.get("/stale")
    body = _assert_problem(resp, 412)
    assert body["current_version"] == 3
    assert resp.headers["etag"] == '"3"'


def test_domain_validation_error_names_field() -> None:
    body = _assert_problem(client.get("/cron"), 422)
    assert body["errors"] == [{"field": "trigger.expression", "message": "bad minute"}]


def test_request_validation_names_fields() -> None:
    body = _assert_problem(client.post("/echo", json={"name": "a", "trigger": "* * * * *"}), 422)
    assert "job" in [e["field"] for e in body["errors"]]


def test_unknown_field_is_refused() -> None:
    resp = client.post("/echo", json={"name": "a", "job": "j", "cron": "* * * * *", "colour": 1})
    body = _assert_problem(resp, 422)
    assert "colour" in [e["field"] for e in body["errors"]]


def test_validator_error_keeps_its_field() -> None:
    resp = client.post("/echo", json={"name": " a", "job": "j", "cron": "* * * * *"})
    body = _assert_problem(resp, 422)
    assert body["errors"][0]["field"] == "name"


def test_aliases_accepted_by_schema() -> None:
    resp = client.post(
        "/echo", json={"job_name": "a", "job_type": "j", "cron_expression": "* * * * *"}
    )
    assert resp.status_code == 200
    assert resp.json() == {"name": "a"}


def test_unexpected_error_is_a_500_problem_without_internals() -> None:
    body = _assert_problem(client.get("/boom"), 500)
    assert "secret internals" not in body["detail"]


def test_body_over_one_mib_is_413() -> None:
    big = b'{"name": "' + b"a" * MAX_BODY_BYTES + b'"}'
    body = _assert_problem(client.post("/echo", content=big), 413)
    assert body["errors"][0]["field"] == "body"


def test_streamed_body_over_limit_is_413() -> None:
    def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 65536

    _assert_problem(client.post("/echo", content=chunks()), 413)


def test_body_under_limit_passes() -> None:
    resp = client.post("/echo", json={"name": "a", "job": "j", "cron": "* * * * *"})
    assert resp.status_code == 200


def test_database_unavailable_is_503_with_retry_after() -> None:
    from sqlalchemy.exc import OperationalError

    app = _app()

    @app.get("/locked")
    def locked() -> None:
        raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))

    resp = TestClient(app, raise_server_exceptions=False).get("/locked")
    _assert_problem(resp, 503)
    assert resp.headers["retry-after"] == "1"
