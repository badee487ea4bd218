"""Schedules over HTTP: input shapes, reads by id or name, pagination, edits, errors."""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import Caller, assert_problem, new_schedule

from duetime.api.problems import MAX_BODY_BYTES


def test_create_answers_canonical_shape_with_etag_and_location(admin: Caller) -> None:
    resp = admin.post(
        "/schedules",
        json={"name": "nightly", "job": "duetime.noop", "trigger": "0 3 * * *", "priority": 4},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert resp.headers["etag"] == '"1"'
    assert resp.headers["location"] == f"/api/v1/schedules/{body['id']}"
    assert body["tenant"] == "acme"
    assert body["source"] == "api"
    assert body["priority"] == 4
    assert body["trigger"]["type"] == "cron"
    assert body["trigger"]["expression"] == "0 3 * * *"
    assert body["next_run_at"] == "2030-01-01T03:00:00Z"
    assert body["state"] == "active"


def test_aliases_from_other_schedulers_are_accepted(admin: Caller) -> None:
    resp = admin.post(
        "/schedules",
        json={
            "job_name": "legacy",
            "job_type": "duetime.noop",
            "is_enabled": False,
            "timeout_seconds": 30,
            "cron_expression": "*/5 * * * *",
        },
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["name"], body["job"], body["enabled"], body["timeout"]) == (
        "legacy",
        "duetime.noop",
        False,
        30.0,
    )
    assert body["state"] == "paused"
    assert body["trigger"]["expression"] == "*/5 * * * *"
    assert not {"job_type", "job_name", "is_enabled", "timeout_seconds"} & set(body)


def test_apscheduler_trigger_kwargs_shape(admin: Caller) -> None:
    body = new_schedule(
        admin, trigger="cron", trigger_kwargs={"day_of_week": "0", "hour": "9", "minute": "0"}
    )
    assert body["trigger"]["type"] == "cron"
    assert body["trigger"]["weekdays"] == "iso"
    assert body["next_run_at"] == "2030-01-07T09:00:00Z"  # Monday: APScheduler's 0


def test_interval_shortcut(admin: Caller) -> None:
    resp = admin.post(
        "/schedules", json={"name": "every15", "job": "duetime.noop", "interval_minutes": 15}
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["trigger"]["type"] == "interval"
    assert body["next_run_at"] == "2030-01-01T00:15:00Z"


def test_get_by_id_and_by_name(admin: Caller) -> None:
    created = new_schedule(admin, "Nightly Product Validation")
    by_id = admin.get(f"/schedules/{created['id']}")
    by_name = admin.get("/schedules/Nightly Product Validation")
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json() == by_name.json() == created
    assert by_name.headers["etag"] == '"1"'
    assert_problem(admin.get("/schedules/nope"), 404)


def test_pagination_walks_every_schedule_once(admin: Caller) -> None:
    names = [f"job-{i}" for i in range(7)]
    for name in names:
        new_schedule(admin, name)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = admin.get("/schedules", params=params).json()
        assert len(page["items"]) <= 3
        seen += [s["name"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(names)
    assert len(seen) == len(set(seen))
    assert_problem(admin.get("/schedules", params={"cursor": "garbage"}), 422)
    assert_problem(admin.get("/schedules", params={"limit": 501}), 422, "limit")


def test_list_filters(admin: Caller) -> None:
    new_schedule(admin, "report-a")
    new_schedule(admin, "report-b", enabled=False)
    new_schedule(admin, "cleanup", job="duetime.sleep", parameters={"seconds": 0})

    def names(**params: Any) -> list[str]:
        return sorted(s["name"] for s in admin.get("/schedules", params=params).json()["items"])

    assert names(name_prefix="report") == ["report-a", "report-b"]
    assert names(enabled="false") == ["report-b"]
    assert names(state="active") == ["cleanup", "report-a"]
    assert names(job="duetime.sleep") == ["cleanup"]
    assert_problem(admin.get("/schedules", params={"colour": "red"}), 422, "colour")
    assert_problem(admin.get("/runs", params={"colour": "red"}), 422, "colour")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"trigger": "0 0 32 * *"}, "trigger"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"job": "no.such.job"}, "job"),
        ({"job": "duetime.sleep", "parameters": {"nope": 1}}, "parameters"),
        ({"name": "bad\nname"}, "name"),
        ({"name": " edge"}, "name"),
        ({"colour": "blue"}, "colour"),
        ({"max_instances": 0}, "max_instances"),
        ({"overlap": "sometimes"}, "overlap"),
        ({"description": "nul\x00"}, "description"),
    ],
)
def test_invalid_input_is_422_naming_the_field(
    admin: Caller, fields: dict[str, Any], field: str
) -> None:
    body = {"name": "x", "job": "duetime.noop", "trigger": "0 3 * * *", **fields}
    problem = assert_problem(admin.post("/schedules", json=body), 422)
    reported = [e["field"] for e in problem["errors"]]
    assert any(f == field or f.startswith(field + ".") for f in reported), reported


def test_duplicate_name_is_409(admin: Caller) -> None:
    new_schedule(admin)
    body = {"name": "nightly", "job": "duetime.noop", "trigger": "0 4 * * *"}
    assert_problem(admin.post("/schedules", json=body), 409)


def test_patch_honours_if_match(admin: Caller) -> None:
    new_schedule(admin)
    ok = admin.patch("/schedules/nightly", json={"priority": 5}, headers={"If-Match": '"1"'})
    assert ok.status_code == 200, ok.text
    assert ok.json()["version"] == 2
    assert ok.headers["etag"] == '"2"'
    stale = admin.patch("/schedules/nightly", json={"priority": 6}, headers={"If-Match": '"1"'})
    problem = assert_problem(stale, 412)
    assert problem["current_version"] == 2
    assert stale.headers["etag"] == '"2"'
    assert admin.get("/schedules/nightly").json()["priority"] == 5


def test_patch_honours_body_preconditions(admin: Caller) -> None:
    created = new_schedule(admin)
    stale = admin.patch("/schedules/nightly", json={"priority": 1, "expected_version": 7})
    assert assert_problem(stale, 412)["current_version"] == 1
    wrong_time = admin.patch(
        "/schedules/nightly",
        json={"priority": 1, "expected_updated_at": "2029-01-01T00:00:00Z"},
    )
    assert assert_problem(wrong_time, 412)["current_version"] == 1
    right = admin.patch(
        "/schedules/nightly",
        json={"priority": 1, "expected_updated_at": created["updated_at"]},
    )
    assert right.status_code == 200, right.text
    assert right.json()["priority"] == 1


def test_patch_trigger_recomputes_next_run(admin: Caller) -> None:
    new_schedule(admin)
    resp = admin.patch("/schedules/nightly", json={"cron": "30 1 * * *"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["next_run_at"] == "2030-01-01T01:30:00Z"


def test_put_replaces_and_resets_omitted_fields(admin: Caller) -> None:
    new_schedule(admin, priority=9, labels={"team": "a"})
    body = {"name": "nightly", "job": "duetime.noop", "trigger": "0 5 * * *"}
    resp = admin.put("/schedules/nightly", json=body, headers={"If-Match": '"1"'})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert (out["priority"], out["labels"], out["version"]) == (0, {}, 2)
    assert out["next_run_at"] == "2030-01-01T05:00:00Z"
    assert_problem(admin.put("/schedules/nightly", json=body, headers={"If-Match": '"1"'}), 412)


def test_delete_with_and_without_precondition(admin: Caller) -> None:
    new_schedule(admin)
    assert_problem(admin.delete("/schedules/nightly", headers={"If-Match": '"3"'}), 412)
    assert admin.get("/schedules/nightly").status_code == 200
    resp = admin.delete("/schedules/nightly", headers={"If-Match": '"1"'})
    assert resp.status_code == 204
    assert_problem(admin.get("/schedules/nightly"), 404)
    assert_problem(admin.delete("/schedules/nightly"), 404)


def test_actions_pause_resume_and_trigger(admin: Caller) -> None:
    new_schedule(admin)
    paused = admin.post("/schedules/nightly/pause")
    assert paused.status_code == 200, paused.text
    assert (paused.json()["state"], paused.json()["enabled"]) == ("paused", False)
    run = admin.post("/schedules/nightly/trigger", json={"parameters": {}})
    assert run.status_code == 201, run.text
    assert (run.json()["kind"], run.json()["state"]) == ("manual", "pending")
    enabled = admin.post("/schedules/nightly/action", json={"action": "enable"})
    assert enabled.json()["state"] == "active"
    disabled = admin.post("/schedules/nightly/action", json={"action": "disable"})
    assert disabled.json()["state"] == "paused"
    triggered = admin.post("/schedules/nightly/action", json={"action": "trigger"})
    assert triggered.status_code == 201
    assert triggered.json()["kind"] == "manual"
    stale = admin.post("/schedules/nightly/resume", headers={"If-Match": '"1"'})
    assert_problem(stale, 412)
    assert_problem(admin.post("/schedules/nightly/action", json={"action": "explode"}), 422)


def test_schedule_runs_and_next_runs_in_zone(admin: Caller) -> None:
    new_schedule(admin, timezone="Europe/Stockholm")
    admin.post("/schedules/nightly/trigger")
    runs = admin.get("/schedules/nightly/runs").json()
    assert [r["kind"] for r in runs["items"]] == ["manual"]
    preview = admin.get("/schedules/nightly/next-runs", params={"count": 2}).json()
    assert preview["timezone"] == "Europe/Stockholm"
    assert [i["at"] for i in preview["items"]] == ["2030-01-01T02:00:00Z", "2030-01-02T02:00:00Z"]
    assert preview["items"][0]["local"] == "2030-01-01T03:00:00+01:00"
    assert_problem(admin.get("/schedules/nightly/next-runs", params={"count": 0}), 422, "count")


def test_body_over_one_mib_is_413(admin: Caller) -> None:
    big = {"name": "x", "job": "duetime.noop", "trigger": "0 3 * * *"}
    big["description"] = "a" * (MAX_BODY_BYTES + 1)
    assert_problem(admin.post("/schedules", json=big), 413)


def test_trigger_parameters_with_nul_are_422_naming_the_field(admin: Caller) -> None:
    new_schedule(admin, job="duetime.http", parameters={"url": "https://example.com/"})
    for path, body in (
        ("/schedules/nightly/trigger", {"parameters": {"url": "https://x/\x00"}}),
        ("/schedules/nightly/action", {"action": "trigger", "parameters": {"url": "a\x00"}}),
    ):
        assert_problem(admin.post(path, json=body), 422, "parameters.url")
    assert admin.get("/runs").json()["items"] == []
