"""Bearer keys, roles and tenants on every endpoint.

Another tenant's schedule, run or webhook is a 404 — never visible, never changeable —
whether addressed by id or by name.
"""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import API, Caller, assert_problem, new_schedule
from fastapi.testclient import TestClient

from duetime.keys import ApiKeyService

OPEN_PATHS = {f"{API}/healthz", f"{API}/readyz"}
FULL_BODY = {"name": "nightly", "job": "duetime.noop", "trigger": "0 4 * * *"}

#: (method, path template, body) of every endpoint that addresses one object.
OBJECT_ENDPOINTS: list[tuple[str, str, Any]] = [
    ("GET", "/schedules/{s}", None),
    ("PUT", "/schedules/{s}", FULL_BODY),
    ("PATCH", "/schedules/{s}", {"priority": 3}),
    ("DELETE", "/schedules/{s}", None),
    ("POST", "/schedules/{s}/pause", None),
    ("POST", "/schedules/{s}/resume", None),
    ("POST", "/schedules/{s}/trigger", None),
    ("POST", "/schedules/{s}/action", {"action": "pause"}),
    ("GET", "/schedules/{s}/runs", None),
    ("GET", "/schedules/{s}/next-runs", None),
    ("GET", "/runs/{r}", None),
    ("POST", "/runs/{r}/rerun", None),
    ("POST", "/runs/{r}/cancel", None),
    ("GET", "/webhooks/{w}", None),
    ("PATCH", "/webhooks/{w}", {"enabled": False}),
    ("DELETE", "/webhooks/{w}", None),
]


def _operations(client: TestClient) -> list[tuple[str, str]]:
    spec = client.get(f"{API}/openapi.json").json()
    ops = []
    for path, item in spec["paths"].items():
        for method in item:
            ops.append((method.upper(), path))
    return ops


def test_every_operation_but_probes_needs_a_key(client: TestClient) -> None:
    ops = _operations(client)
    assert len(ops) >= 25
    for method, path in ops:
        url = path.replace("{id}", "x")
        resp = client.request(method, url)
        if path in OPEN_PATHS:
            assert resp.status_code in (200, 503), (method, path)
            continue
        assert_problem(resp, 401)
        assert resp.headers["www-authenticate"].startswith("Bearer"), (method, path)
        bad = client.request(method, url, headers={"Authorization": "Bearer dtk_wrong"})
        assert_problem(bad, 401)


def test_revoked_key_stops_working(client: TestClient, keys: ApiKeyService) -> None:
    created = keys.create("acme", "viewer")
    caller = Caller(client, created.secret)
    assert caller.get("/schedules").status_code == 200
    keys.revoke(created.key.id)
    assert_problem(caller.get("/schedules"), 401)


@pytest.fixture
def other_tenant_objects(make_caller: Any) -> dict[str, Any]:
    owner = make_caller("acme", "admin")
    schedule = new_schedule(owner)
    run = owner.post("/schedules/nightly/trigger").json()
    hook = owner.post("/webhooks", json={"url": "https://example.com/hook"}).json()
    return {"owner": owner, "schedule": schedule, "run": run, "hook": hook}


def _fill(template: str, objects: dict[str, Any], by_name: bool) -> str:
    s = objects["schedule"]["name"] if by_name else objects["schedule"]["id"]
    return template.format(s=s, r=objects["run"]["id"], w=objects["hook"]["id"])


@pytest.mark.parametrize("by_name", [False, True], ids=["by-id", "by-name"])
def test_other_tenants_objects_are_404_and_unchanged(
    make_caller: Any, other_tenant_objects: dict[str, Any], by_name: bool
) -> None:
    intruder = make_caller("globex", "admin")
    owner: Caller = other_tenant_objects["owner"]
    for method, template, body in OBJECT_ENDPOINTS:
        path = _fill(template, other_tenant_objects, by_name)
        resp = intruder.request(method, path, json=body)
        assert resp.status_code == 404, (method, template, resp.status_code, resp.text)
    schedule = owner.get("/schedules/nightly").json()
    assert schedule == other_tenant_objects["schedule"]
    runs = owner.get("/runs").json()["items"]
    assert [r["id"] for r in runs] == [other_tenant_objects["run"]["id"]]
    assert runs[0]["state"] == "pending"
    assert owner.get(f"/webhooks/{other_tenant_objects['hook']['id']}").status_code == 200


def test_lists_and_status_show_only_own_tenant(
    make_caller: Any, other_tenant_objects: dict[str, Any], clock: Any
) -> None:
    intruder = make_caller("globex", "admin")
    new_schedule(intruder, "mine")
    names = [s["name"] for s in intruder.get("/schedules").json()["items"]]
    assert names == ["mine"]
    assert intruder.get("/schedules", params={"tenant": "acme"}).json()["items"] == []
    assert intruder.get("/runs").json()["items"] == []
    assert intruder.get("/runs", params={"tenant": "acme"}).json()["items"] == []
    assert intruder.get("/webhooks").json()["items"] == []
    status = intruder.get("/status").json()
    assert status["schedules"]["active"] == 1
    assert all(f["name"] == "mine" for f in status["next_fires"])
    clock.advance(hours=4)
    fired = intruder.post("/check-schedules").json()["items"]
    assert {r["tenant"] for r in fired} == {"globex"}


def test_star_admin_spans_tenants(make_caller: Any, other_tenant_objects: dict[str, Any]) -> None:
    root = make_caller("*", "admin")
    assert root.get("/schedules/nightly").status_code == 200
    assert root.get(f"/runs/{other_tenant_objects['run']['id']}").status_code == 200
    created = root.post("/schedules", json={**FULL_BODY, "tenant": "globex"})
    assert created.status_code == 201, created.text
    assert created.json()["tenant"] == "globex"
    listed = root.get("/schedules", params={"tenant": "globex"}).json()["items"]
    assert [s["tenant"] for s in listed] == ["globex"]
    assert len(root.get("/schedules").json()["items"]) == 2


def test_bound_key_cannot_create_in_another_tenant(admin: Caller) -> None:
    resp = admin.post("/schedules", json={**FULL_BODY, "tenant": "globex"})
    assert_problem(resp, 403, "tenant")


#: (method, path, body, least role) — the role table of DESIGN §4.
ROLE_TABLE: list[tuple[str, str, Any, str]] = [
    ("GET", "/schedules", None, "viewer"),
    ("GET", "/schedules/nightly", None, "viewer"),
    ("GET", "/schedules/nightly/runs", None, "viewer"),
    ("GET", "/schedules/nightly/next-runs", None, "viewer"),
    ("GET", "/runs", None, "viewer"),
    ("GET", "/jobs", None, "viewer"),
    ("GET", "/status", None, "viewer"),
    ("GET", "/metrics", None, "viewer"),
    ("GET", "/webhooks", None, "viewer"),
    ("POST", "/cron/validate", {"expression": "* * * * *"}, "viewer"),
    ("POST", "/schedules/nightly/pause", None, "operator"),
    ("POST", "/schedules/nightly/resume", None, "operator"),
    ("POST", "/schedules/nightly/trigger", None, "operator"),
    ("POST", "/schedules/nightly/action", {"action": "disable"}, "operator"),
    ("POST", "/check-schedules", None, "operator"),
    ("POST", "/runs/{r}/cancel", None, "operator"),
    ("POST", "/runs/{r}/rerun", None, "operator"),
    ("POST", "/schedules", {**FULL_BODY, "name": "new"}, "admin"),
    ("PATCH", "/schedules/nightly", {"priority": 2}, "admin"),
    ("PUT", "/schedules/nightly", FULL_BODY, "admin"),
    ("POST", "/webhooks", {"url": "https://example.com/x"}, "admin"),
    ("DELETE", "/schedules/nightly", None, "admin"),
]
_RANK = {"viewer": 0, "operator": 1, "admin": 2}


def test_role_table(make_caller: Any) -> None:
    admin = make_caller("acme", "admin")
    callers = {role: make_caller("acme", role) for role in _RANK}
    new_schedule(admin)
    run_id = admin.post("/schedules/nightly/trigger").json()["id"]
    admin.post(f"/runs/{run_id}/cancel")
    for method, template, body, least in ROLE_TABLE:
        path = template.format(r=run_id)
        for role, caller in callers.items():
            resp = caller.request(method, path, json=body)
            allowed = _RANK[role] >= _RANK[least]
            if allowed:
                assert resp.status_code < 400, (method, path, role, resp.text)
            else:
                assert_problem(resp, 403)


def test_operator_cannot_rewrite_a_privileged_jobs_parameters(make_caller: Any) -> None:
    root = make_caller("*", "admin")
    body = {
        "name": "backup",
        "job": "duetime.shell",
        "parameters": {"argv": ["true"]},
        "trigger": "0 3 * * *",
        "tenant": "acme",
    }
    created = root.post("/schedules", json=body)
    assert created.status_code == 201, created.text
    operator = make_caller("acme", "operator")
    swapped = operator.post("/schedules/backup/trigger", json={"parameters": {"argv": ["id"]}})
    assert_problem(swapped, 422, "job")
    plain = operator.post("/schedules/backup/trigger")
    assert plain.status_code == 201, plain.text
    assert plain.json()["parameters"] == {"argv": ["true"]}
    acme_admin = make_caller("acme", "admin")
    assert_problem(acme_admin.post("/schedules", json={**body, "name": "b2"}), 422, "job")
