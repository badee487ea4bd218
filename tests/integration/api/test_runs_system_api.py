"""Runs, the fire step, job types, cron validation, status, metrics, probes, webhooks."""

from __future__ import annotations

from typing import Any

from api_helpers import API, Caller, assert_problem, new_schedule
from fastapi.testclient import TestClient

from duetime.clock import FakeClock


def test_runs_list_get_cancel_rerun(admin: Caller) -> None:
    new_schedule(admin)
    run = admin.post("/schedules/nightly/trigger").json()
    assert admin.get(f"/runs/{run['id']}").json() == run
    assert [
        r["id"] for r in admin.get("/runs", params={"schedule": "nightly"}).json()["items"]
    ] == [run["id"]]
    assert admin.get("/runs", params={"state": "succeeded"}).json()["items"] == []
    cancelled = admin.post(f"/runs/{run['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    rerun = admin.post(f"/runs/{run['id']}/rerun")
    assert rerun.status_code == 201, rerun.text
    assert (rerun.json()["kind"], rerun.json()["parent_run_id"]) == ("rerun", run["id"])
    states = admin.get("/runs", params={"state": ["pending", "cancelled"]}).json()["items"]
    assert sorted(r["state"] for r in states) == ["cancelled", "pending"]
    assert_problem(admin.get("/runs/00000000-0000-0000-0000-000000000000"), 404)
    assert_problem(admin.get("/runs", params={"state": "exploded"}), 422, "state.0")


def test_runs_pagination(admin: Caller) -> None:
    new_schedule(admin)
    ids = {admin.post("/schedules/nightly/trigger").json()["id"] for _ in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = admin.get("/runs", params=params).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids)


def test_check_schedules_fires_due_and_returns_runs(admin: Caller, clock: FakeClock) -> None:
    new_schedule(admin)
    assert admin.post("/check-schedules").json()["items"] == []
    clock.advance(hours=3)
    fired = admin.post("/check-schedules")
    assert fired.status_code == 200, fired.text
    items = fired.json()["items"]
    assert [(r["kind"], r["scheduled_for"]) for r in items] == [
        ("scheduled", "2030-01-01T03:00:00Z")
    ]
    assert admin.post("/check-schedules").json()["items"] == []
    assert admin.get("/schedules/nightly").json()["next_run_at"] == "2030-01-02T03:00:00Z"


def test_jobs_lists_builtins_with_schema(admin: Caller) -> None:
    items = {j["name"]: j for j in admin.get("/jobs").json()["items"]}
    assert "duetime.noop" in items
    assert items["duetime.sleep"]["parameter_schema"]["type"] == "object"
    assert items["duetime.noop"]["module"].startswith("duetime.jobs")
    assert {"timeout", "max_attempts", "defaults"} <= set(items["duetime.noop"])


def test_cron_validate(admin: Caller) -> None:
    ok = admin.post(
        "/cron/validate",
        json={"expression": "30 2 * * *", "timezone": "Europe/Stockholm", "count": 2},
    ).json()
    assert ok["valid"] is True
    assert ok["description"]
    assert [n["local"] for n in ok["next"]] == [
        "2030-01-01T02:30:00+01:00",
        "2030-01-02T02:30:00+01:00",
    ]
    bad = admin.post("/cron/validate", json={"expression": "61 * * * *"}).json()
    assert bad["valid"] is False
    assert bad["errors"][0]["field"] == "expression"
    zone = admin.post("/cron/validate", json={"expression": "* * * * *", "timezone": "X/Y"})
    assert zone.json()["errors"][0]["field"] == "timezone"


def test_status_metrics_lifecycle(admin: Caller) -> None:
    new_schedule(admin)
    status = admin.get("/status").json()
    assert status["schedules"]["active"] == 1
    metrics = admin.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "duetime_schedules_active 1.0" in metrics.text
    lifecycle = admin.get("/metrics/lifecycle").json()
    assert lifecycle["schedules"]["active"] == 1
    assert lifecycle["failures_24h"] == 0


def test_probes_and_openapi_without_auth(client: TestClient) -> None:
    for path in ("/healthz", "/readyz", f"{API}/healthz", f"{API}/readyz"):
        resp = client.get(path)
        assert resp.status_code == 200, path
        assert resp.json()["status"] == "ok"
    spec = client.get(f"{API}/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert "/api/v1/schedules/{id}/next-runs" in spec["paths"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert client.get(f"{API}/docs").status_code == 200


def test_webhooks_crud(admin: Caller) -> None:
    created = admin.post(
        "/webhooks", json={"url": "https://example.com/h", "events": ["run.failed"]}
    )
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["secret"]
    assert "secret" not in admin.get(f"/webhooks/{hook['id']}").json()
    assert [h["id"] for h in admin.get("/webhooks").json()["items"]] == [hook["id"]]
    edited = admin.patch(f"/webhooks/{hook['id']}", json={"enabled": False})
    assert (edited.json()["enabled"], edited.json()["version"]) == (False, 2)
    stale = admin.patch(
        f"/webhooks/{hook['id']}", json={"enabled": True}, headers={"If-Match": '"1"'}
    )
    assert_problem(stale, 412)
    assert_problem(admin.post("/webhooks", json={"url": "ftp://x"}), 422, "url")
    assert_problem(admin.post("/webhooks", json={"url": "https://x", "events": ["nope"]}), 422)
    assert admin.delete(f"/webhooks/{hook['id']}").status_code == 204
    assert_problem(admin.get(f"/webhooks/{hook['id']}"), 404)
