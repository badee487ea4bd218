"""Helpers of the API tests: a key-bound client and problem assertions."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

API = "/api/v1"


class Caller:
    """A client bound to one key: ``caller.get("/schedules")`` adds the prefix and header."""

    def __init__(self, client: TestClient, secret: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {secret}"}

    def request(self, method: str, path: str, **kw: Any) -> Any:
        headers = {**self.headers, **kw.pop("headers", {})}
        return self.client.request(method, API + path, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Any:
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


def new_schedule(caller: Caller, name: str = "nightly", **fields: Any) -> dict[str, Any]:
    body = {"name": name, "job": "duetime.noop", "trigger": "0 3 * * *", **fields}
    resp = caller.post("/schedules", json=body)
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


def assert_problem(resp: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "errors"} <= set(body)
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body
