"""Atomic If-Match on actions, and the created_at / job filters of the listings."""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import Caller, assert_problem, new_schedule

from duetime.clock import FakeClock
from duetime.scheduler import Scheduler


def _edit_before_write(scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make another caller edit the schedule just before the next run-now transaction."""
    store = scheduler.store
    insert = store.insert_schedule_runs

    def edit_then_insert(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(store, "insert_schedule_runs", insert)
        scheduler.for_tenant("acme").update_schedule("nightly", priority=7)
        return insert(*args, **kwargs)

    monkeypatch.setattr(store, "insert_schedule_runs", edit_then_insert)


@pytest.mark.parametrize("action", ["pause", "resume", "trigger"])
def test_stale_if_match_on_actions_is_412_and_changes_nothing(admin: Caller, action: str) -> None:
    new_schedule(admin)
    admin.patch("/schedules/nightly", json={"priority": 1})  # version 2
    problem = assert_problem(
        admin.post(f"/schedules/nightly/{action}", headers={"If-Match": '"1"'}), 412
    )
    assert problem["current_version"] == 2
    assert admin.get("/schedules/nightly").json()["version"] == 2
    assert admin.get("/runs").json()["items"] == []


def test_if_match_on_trigger_is_checked_where_the_run_is_written(
    admin: Caller, scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_schedule(admin)
    _edit_before_write(scheduler, monkeypatch)
    resp = admin.post("/schedules/nightly/trigger", headers={"If-Match": '"1"'})
    assert assert_problem(resp, 412)["current_version"] == 2
    assert admin.get("/runs").json()["items"] == []


def test_body_expected_version_on_action_and_delete(admin: Caller) -> None:
    new_schedule(admin)
    stale = admin.post("/schedules/nightly/action", json={"action": "pause", "expected_version": 5})
    assert assert_problem(stale, 412)["current_version"] == 1
    ok = admin.post("/schedules/nightly/action", json={"action": "pause", "expected_version": 1})
    assert ok.status_code == 200
    assert ok.json()["state"] == "paused"
    gone = admin.request("DELETE", "/schedules/nightly", json={"expected_version": 1})
    assert assert_problem(gone, 412)["current_version"] == 2
    assert admin.delete("/schedules/nightly", headers={"If-Match": '"2"'}).status_code == 204


def test_schedule_created_window(admin: Caller, clock: FakeClock) -> None:
    for name in ("a", "b", "c"):
        new_schedule(admin, name)
        clock.advance(hours=1)
    listed = admin.get(
        "/schedules", params={"since": "2030-01-01T01:00:00Z", "until": "2030-01-01T02:00:00Z"}
    )
    assert [s["name"] for s in listed.json()["items"]] == ["b"]
    naive = admin.get("/schedules", params={"until": "2030-01-01T02:00:00"})
    assert_problem(naive, 422, "until")


def test_runs_by_job_and_until(admin: Caller, clock: FakeClock) -> None:
    new_schedule(admin, "quiet")
    new_schedule(admin, "nap", job="duetime.sleep", parameters={"seconds": 0})
    first = admin.post("/schedules/quiet/trigger").json()
    clock.advance(minutes=5)
    admin.post("/schedules/nap/trigger")
    by_job = admin.get("/runs", params={"job": "duetime.sleep"}).json()["items"]
    assert [r["job"] for r in by_job] == ["duetime.sleep"]
    before = admin.get("/runs", params={"until": "2030-01-01T00:05:00Z"}).json()["items"]
    assert [r["id"] for r in before] == [first["id"]]
    of_nap = admin.get("/schedules/nap/runs", params={"until": "2030-01-01T00:05:00Z"})
    assert of_nap.json()["items"] == []
